/**
 * IPFilter grammars for the files lbc's `ipnat` target writes.
 *
 * API:
 * - parseIpnat(text): IpnatFile — the `rdr` subset of ipnat.conf (ipnat(5),
 *   FreeBSD sbin/ipf/ipnat/ipnat_y.y). Throws GrammarError (with every problem's
 *   line and column) for text ipnat would refuse or that lies outside the subset;
 *   messages ipnat prints but loads anyway (an ignored `sticky`) are in `warnings`.
 * - parseIpf(text): IpfFile — filter rules of ipf.conf as lbc writes them
 *   (ipf(5), sbin/ipf/common/ipf_y.y). Throws GrammarError likewise.
 * - ipnatMeaning(file): IpnatMeaning — per left side (interface, family,
 *   protocol, destination prefix, ports): single or rotating pool, stickiness,
 *   members with their turns per rotation, and the destination the filter
 *   will see; `problems` lists what does not do what it seems to.
 * - ipfMeaning(file): IpfMeaning — the inbound pass rules as (interface,
 *   family, protocol, destination prefix, port range, keep state, quick).
 * - filterCoverage(nat, filter): string[] — translated destinations no pass
 *   rule admits, and pass rules that admit nothing translated.
 */
export { GrammarError, type GrammarProblem, type MaskedAddress, type AddrFamily } from './common.js';
export { parseIpnat, type IpnatFile, type IpnatRdr, type IpnatDestination } from './ipnat.js';
export { parseIpf, type IpfFile, type IpfRule, type IpfEndpoint, type IpfPortMatch } from './ipf.js';
export {
  ipnatMeaning, ipfMeaning, filterCoverage, passAdmits,
  type IpnatMeaning, type RedirectMeaning, type PoolMember, type PoolDestination, type IpfMeaning, type PassMeaning,
} from './meaning.js';
