/**
 * The BSD host files lbc writes for a balancer tier's node, read back for tests:
 *   freebsdTier(rc.conf text)          CARP aliases and pfsync settings (rcconf.ts)
 *   parseAssignments(text, what)       loader.conf and any sh-assignment file
 *   parseSysctlConf(text)              sysctl.conf
 *   parseHostnameIf(text, ifname)      OpenBSD hostname.carpN / hostname.pfsync0 (hostname-if.ts)
 * Each throws HostConfError with line and column for text the system would not read as intended.
 */
export { freebsdTier, parseAssignments, parseSysctlConf, HostConfError } from './rcconf.js';
export type { Assignment, FreebsdCarpAlias, FreebsdTier, HostConfProblem, SysctlSetting, Word } from './rcconf.js';
export { parseHostnameIf } from './hostname-if.js';
export type { CarpNode, HostnameIf, OpenbsdCarp, OpenbsdPfsync } from './hostname-if.js';
