/**
 * systemd readiness notification (sd_notify(3) protocol) without libsystemd.
 *
 * The protocol is one datagram of "KEY=VALUE\n" lines sent to the AF_UNIX
 * SOCK_DGRAM socket named by $NOTIFY_SOCKET. Node cannot open AF_UNIX datagram
 * sockets (node:dgram is UDP only, node:net is stream only), and a native
 * addon would be a build dependency for one message. So the agent runs
 * systemd-notify(1), which ships with systemd wherever a notify socket exists.
 *
 * Consequence for the unit: systemd accepts the message from a process that is
 * not the main PID only with NotifyAccess=all (systemd.service(5)). When
 * running as root, systemd-notify also forges the sender as its parent (our
 * PID) through SCM_CREDENTIALS, but the unit does not rely on that. Since
 * systemd 246 systemd-notify waits (a BARRIER=1 round trip) until the manager
 * has processed the message, so its early exit does not lose the message
 * (the attribution race described in systemd-notify(1)).
 */
import { execFile } from 'node:child_process';

export interface Notifier {
  /** Send "KEY=VALUE" fields; never rejects (failures are logged). */
  send(fields: string[]): Promise<void>;
}

/** A notifier when $NOTIFY_SOCKET is set (we run under systemd with Type=notify), else null. */
export function notifierFromEnv(env: NodeJS.ProcessEnv, log: (line: string) => void, command = 'systemd-notify'): Notifier | null {
  if (!env.NOTIFY_SOCKET) return null;
  let warned = false;
  return {
    send(fields) {
      return new Promise((resolve) => {
        // Values are single-line by construction; a newline would split a field into a second one.
        const clean = fields.map((f) => f.replace(/[\r\n]/g, ' '));
        execFile(command, clean, { timeout: 10_000, env }, (err, _stdout, stderr) => {
          if (err && !warned) {
            warned = true;
            const code = (err as NodeJS.ErrnoException).code;
            log(
              code === 'ENOENT'
                ? `lbc-agent: NOTIFY_SOCKET is set but ${command} was not found; systemd will not see ${clean.join(' ')}`
                : `lbc-agent: ${command} failed: ${String(stderr).trim() || err.message}`,
            );
          }
          resolve();
        });
      });
    },
  };
}
