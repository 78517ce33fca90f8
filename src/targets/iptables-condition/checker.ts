/**
 * The generated health checker for --target iptables-condition: a POSIX sh
 * script that probes every health-checked backend, applies rise/fall like the
 * agent (src/health/state.ts: the first result decides at once, then `fall`
 * failures take an up backend down and `rise` successes bring a down one back)
 * and writes "1" (down) or "0" (up) into the backend's condition file.
 *
 * POSIX sh has no networking, so every probe goes through one tool: nc with
 * -z and -w, i.e. OpenBSD netcat (FreeBSD/OpenBSD base, Debian's
 * netcat-openbsd). `/dev/tcp` would be bash-only. HTTP is spoken by hand over
 * nc with the same request the agent sends (HTTP/1.0, Host, Connection: close),
 * so the verdict is the status line's code exactly as in src/health/check.ts;
 * a banner check compares the start of the first line, as the agent does.
 * nc -w takes whole seconds, so timeouts are rounded up.
 */
import type { Backend, HealthCheck, IR, Service } from '../../ir/types.js';
import { renderTemplate } from '../template.js';
import { commentText, headerLines } from '../text.js';
import { gcd } from '../iptables/slots.js';
import { conditionName } from './plan.js';

export const CHECKER_FILE = 'lbc-condition-check.sh';

/** A shell word that stands for exactly `s` (single quotes; a quote inside becomes '\''). */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A printf(1) format that prints exactly `s` (which may hold CR, LF and TAB). */
export function printfFormat(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/%/g, '%%').replace(/\r/g, '\\r').replace(/\n/g, '\\n').replace(/\t/g, '\\t');
}

function probeAddress(svc: Service, b: Backend): string {
  if (b.address !== null) return b.address;
  return svc.family === 'ipv6' ? '::1' : '127.0.0.1';
}

function endpoint(svc: Service, b: Backend): string {
  const a = probeAddress(svc, b);
  return a.includes(':') ? `[${a}]` : a;
}

function checkCommand(svc: Service, b: Backend, hc: HealthCheck): string {
  const addr = shellQuote(probeAddress(svc, b));
  const port = hc.port ?? b.port;
  const secs = Math.max(1, Math.ceil(hc.timeoutMs / 1000));
  switch (hc.check) {
    case 'tcp':
      return `check_tcp ${addr} ${port} ${secs}`;
    case 'http': {
      const h = hc.http ?? { path: '/', status: 200, host: null, method: 'GET' as const };
      const host = h.host ?? (port === 80 ? endpoint(svc, b) : `${endpoint(svc, b)}:${port}`);
      const req = `${h.method} ${h.path} HTTP/1.0\r\nHost: ${host}\r\nUser-Agent: lbc-check\r\nAccept: */*\r\nConnection: close\r\n\r\n`;
      return `check_http ${addr} ${port} ${secs} ${shellQuote(printfFormat(req))} ${h.status}`;
    }
    case 'banner': {
      const bn = hc.banner ?? { send: null, expect: '' };
      return `check_banner ${addr} ${port} ${secs} ${shellQuote(printfFormat(bn.send ?? ''))} ${shellQuote(bn.expect)}`;
    }
    case 'icmp':
    case 'udp':
      // Refused by the capability table (index.ts): the checker speaks TCP through netcat only.
      throw new Error(`lbc: iptables-condition has no ${hc.check} check; the capability table should have refused it`);
  }
}

interface CheckedBackend {
  n: number;
  label: string;
  condition: string;
  command: string;
  every: number;
  rise: number;
  fall: number;
  describe: string;
}

/** sleep(1) operand: whole seconds are POSIX; a fraction needs GNU, BusyBox or BSD sleep. */
function seconds(ms: number): string {
  return String(ms / 1000);
}

export function checkerScript(ir: IR): string | null {
  const checked: { svc: Service; b: Backend; hc: HealthCheck }[] = [];
  for (const svc of ir.services) for (const b of svc.backends) if (b.health) checked.push({ svc, b, hc: b.health });
  if (checked.length === 0) return null;
  const tick = checked.reduce((g, c) => gcd(g, c.hc.intervalMs), 0);
  const backends: CheckedBackend[] = checked.map(({ svc, b, hc }, n) => ({
    n,
    label: shellQuote(`${svc.name} ${endpoint(svc, b)}:${hc.port ?? b.port}`),
    condition: conditionName(svc, b),
    command: checkCommand(svc, b, hc),
    every: hc.intervalMs / tick,
    rise: hc.rise,
    fall: hc.fall,
    describe: commentText(
      `service ${svc.name} backend ${b.index} (${b.backup ? 'backup' : 'primary'}): ${hc.check} every ${hc.intervalMs}ms, timeout ${hc.timeoutMs}ms, rise ${hc.rise}, fall ${hc.fall}`,
    ),
  }));
  return renderTemplate('iptables-condition', 'checker.sh', {
    header: headerLines('iptables-condition', ir.file).map(commentText),
    tick: seconds(tick),
    fractionalSleep: tick % 1000 !== 0,
    backends,
  });
}
