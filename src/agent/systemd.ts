/**
 * systemd service units for one spec and target: one that runs `lbc agent`, or one that loads the rules
 * once at boot (`lbc apply`).
 *
 * - Type=notify: the agent reports READY=1 only after its first full round of
 *   health checks and its first ruleset load, so units ordered After= this one
 *   start with balancing in place.
 * - NotifyAccess=all: the notification comes from a systemd-notify(1) child
 *   (see src/agent/notify.ts for why).
 * - KillMode=mixed: SIGTERM goes to the agent only, so a ruleset load it is
 *   finishing (an nft or iptables-restore child) is not killed half-way; the
 *   agent exits 0 once it is done, and stragglers get SIGKILL at the end.
 * - Restart=on-failure: an agent that exits non-zero (its first load failed,
 *   or it crashed) is restarted; the ruleset it loaded last stays in place
 *   meanwhile, so traffic keeps flowing to the backends it last saw alive.
 *
 * Quoting follows systemd.service(5) "Command lines": words split at spaces
 * unless double-quoted, backslash escapes inside quotes, "%" starts a
 * specifier ("%%" is a literal percent) and "$" starts a variable ("$$" is a
 * literal dollar) even inside quotes.
 */
import { LbcError } from '../diagnostics/diagnostic.js';
import { headerLines } from '../targets/text.js';

export interface SystemdUnitOptions {
  /** Absolute path of the lbc executable (default /usr/local/bin/lbc). */
  lbcPath?: string;
  /** Extra arguments after `--target NAME` (e.g. emitter options the CLI understands). */
  extraArgs?: string[];
  /** Seconds before systemd kills a stopping agent (default 30). */
  stopTimeoutSeconds?: number;
}

/** The firewall services that may load a ruleset of their own at boot; the agent starts after them so they do not flush its rules. */
const AFTER_BY_TARGET: Record<string, string[]> = {
  nftables: ['nftables.service'],
  iptables: ['netfilter-persistent.service', 'iptables.service'],
  ip6tables: ['netfilter-persistent.service', 'ip6tables.service'],
};

/**
 * A oneshot unit that loads the spec's rules at boot with `lbc apply` and takes them out with `lbc remove`
 * when stopped: the way to make rules survive a reboot without an agent. It runs after the distribution's
 * own firewall service (which may flush the ruleset when it loads) and before network-pre.target, so the
 * rules are in place before interfaces come up; `systemctl reload` re-applies a changed spec.
 */
export function systemdApplyUnit(specPath: string, target: string, options: Omit<SystemdUnitOptions, 'stopTimeoutSeconds'> = {}): string {
  const lbcPath = options.lbcPath ?? '/usr/local/bin/lbc';
  checkPaths(specPath, lbcPath, target);
  const apply = [lbcPath, 'apply', specPath, '--target', target, ...(options.extraArgs ?? [])];
  const remove = [lbcPath, 'remove', '--target', target];
  const lines = [
    ...headerLines('systemd', specPath).map((l) => `# ${l}`),
    '[Unit]',
    `Description=lbc load-balancing rules (${target}) for ${escapeSpecifiers(printable(specPath))}`,
    'Wants=network-pre.target',
    'Before=network-pre.target',
    ...(AFTER_BY_TARGET[target] ? [`After=${AFTER_BY_TARGET[target].join(' ')}`] : []),
    '',
    '[Service]',
    'Type=oneshot',
    'RemainAfterExit=yes',
    `ExecStart=${apply.map(quoteArg).join(' ')}`,
    `ExecReload=${apply.map(quoteArg).join(' ')}`,
    `ExecStop=${remove.map(quoteArg).join(' ')}`,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ];
  return lines.join('\n');
}

function checkPaths(specPath: string, lbcPath: string, target: string): void {
  if (!specPath.startsWith('/')) fail('LBC4101', `the systemd unit needs an absolute spec path, not "${printable(specPath)}"`, 'systemd starts services in "/", so a relative path would not find the spec');
  if (!lbcPath.startsWith('/')) fail('LBC4101', `the lbc path in a systemd unit must be absolute, not "${printable(lbcPath)}"`);
  if (!/^[a-z][a-z0-9-]*$/.test(target)) fail('LBC4102', `"${printable(target)}" is not a target name`);
}

export function systemdUnit(specPath: string, target: string, options: SystemdUnitOptions = {}): string {
  const lbcPath = options.lbcPath ?? '/usr/local/bin/lbc';
  checkPaths(specPath, lbcPath, target);
  const stop = options.stopTimeoutSeconds ?? 30;
  if (!Number.isInteger(stop) || stop < 1 || stop > 3600) fail('LBC4102', 'stopTimeoutSeconds must be an integer from 1 to 3600');
  const argv = [lbcPath, 'agent', specPath, '--target', target, ...(options.extraArgs ?? [])];
  const after = ['network-online.target', ...(AFTER_BY_TARGET[target] ?? [])];
  const lines = [
    ...headerLines('systemd', specPath).map((l) => `# ${l}`),
    '[Unit]',
    // Description is free text up to the end of the line; specifiers are expanded there too.
    `Description=lbc load-balancing agent (${target}) for ${escapeSpecifiers(printable(specPath))}`,
    'Wants=network-online.target',
    `After=${after.join(' ')}`,
    '',
    '[Service]',
    'Type=notify',
    'NotifyAccess=all',
    `ExecStart=${argv.map(quoteArg).join(' ')}`,
    'Restart=on-failure',
    'RestartSec=2s',
    'KillSignal=SIGTERM',
    'KillMode=mixed',
    `TimeoutStopSec=${stop}s`,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ];
  return lines.join('\n');
}

function fail(code: string, message: string, note?: string): never {
  throw new LbcError([{ code, severity: 'error', message, notes: note ? [note] : undefined }]);
}

function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?');
}

function escapeSpecifiers(s: string): string {
  return s.replace(/%/g, '%%');
}

/** One ExecStart= word. */
export function quoteArg(arg: string): string {
  if (/[\x00-\x1f\x7f]/.test(arg)) fail('LBC4101', `"${printable(arg)}" contains a control character and cannot go into a systemd unit`);
  const escaped = escapeSpecifiers(arg).replace(/\$/g, '$$$$');
  if (/^[A-Za-z0-9_@+=:,.\/-]+$/.test(escaped.replace(/%%|\$\$/g, 'x')) && escaped.length > 0) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}
