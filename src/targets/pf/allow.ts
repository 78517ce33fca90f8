/**
 * A service's allow list in pf.conf: a const table of the client blocks, translation only `from`
 * it, and a quick block rule for everyone else (pf, pf-openbsd and the pf.conf lines of relayd).
 *
 * Why a block rule: a client outside the list is not translated, so its packets go on to the vip
 * itself — to whatever the balancer runs there, or on to the main ruleset's policy. `block drop in
 * quick … from ! <table> to VIP port P` drops them explicitly, whatever that policy is, and drops
 * (rather than returns) as the Linux targets do and as seed 002's `set block-policy drop` does, so
 * a refused client learns nothing of the service. The rule cannot catch an allowed connection: the
 * filter sees a translated connection with the backend as destination (pf.conf(5) TRANSLATION), and
 * on OpenBSD an allowed one has already matched its quick `pass … rdr-to` rule.
 * Grammar (pf.conf(5) GRAMMAR; sbin/pfctl/parse.y): host = [ "!" ] ( address | "<" string ">" );
 * `table <name> const { … }`; a backslash continues a line, which keeps long tables one entry a line.
 */
import type { Service } from '../../ir/types.js';

/**
 * `lbc-allow_NAME`: service names have no "_", so this never meets a pool table `lbc-NAME` (a service
 * could be named "www-allow"); at most 26 characters, within PF_TABLE_NAME_SIZE.
 */
export const allowTableName = (svc: Service): string => `lbc-allow_${svc.name}`;

/** Entries on one line up to this many; longer lists one entry a line. */
const INLINE_ENTRIES = 4;

/** `table <lbc-allow_NAME> const { … }`, or null without an allow list. */
export function allowTable(svc: Service): string | null {
  if (!svc.allow) return null;
  const entries = svc.allow.map((p) => (p.isHost ? p.address : `${p.address}/${p.prefixLength}`));
  const head = `table <${allowTableName(svc)}> const {`;
  if (entries.length <= INLINE_ENTRIES) return `${head} ${entries.join(', ')} }`;
  return [`${head} \\`, ...entries.map((e, i) => `\t${e}${i < entries.length - 1 ? ',' : ''} \\`), '}'].join('\n');
}

/** The source of a translation or pass rule: the allow table, or any. */
export function allowedSource(svc: Service): string {
  return svc.allow ? `<${allowTableName(svc)}>` : 'any';
}

/** `rule head` with its `from any` replaced by the given source. */
export function fromSource(head: string, source: string): string {
  if (!head.includes(' from any ')) throw new Error(`lbc: no "from any" in pf rule head ${JSON.stringify(head)}`);
  return head.replace(' from any ', ` from ${source} `);
}

/**
 * The block rule for clients outside the list, from a rule head `[on IF] af proto P from any to D port N`.
 * null without an allow list.
 */
export function refusedRule(svc: Service, head: string): string | null {
  if (!svc.allow) return null;
  return `block drop in quick ${fromSource(head, `! <${allowTableName(svc)}>`)}`;
}
