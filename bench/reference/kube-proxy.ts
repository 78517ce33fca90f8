/**
 * Reference layout (a): the iptables layout kube-proxy's iptables mode uses, reduced to its shape:
 *   KUBE-SERVICES   one rule per service (linear dispatch): -d VIP/32 -p tcp --dport P -j KUBE-SVC-…
 *   KUBE-SVC-…      the random-probability cascade, p_i = 1/(n-i) printed with 10 decimals, -j KUBE-SEP-…
 *   KUBE-SEP-…      one chain per endpoint holding the DNAT
 * Written from the layout description (kube-proxy pkg/proxy/iptables/proxier.go builds the same chain
 * shapes); comments, masquerade marks and the firewall/nodeport chains are left out, which only makes
 * the reference cheaper to load than the real thing. Chain names are hashes of the service/endpoint,
 * as kube-proxy's are, so they do not sort by position.
 */
import { createHash } from 'node:crypto';
import type { GenService } from '../lib/gen.js';

function chainName(prefix: string, key: string): string {
  return `${prefix}-${createHash('sha256').update(key).digest('base64url').replace(/[-_]/g, 'X').slice(0, 16).toUpperCase()}`;
}

export function kubeProxyRules(services: GenService[]): string {
  const decl: string[] = [':KUBE-SERVICES - [0:0]'];
  const rules: string[] = [];
  const dispatch: string[] = [];
  for (const s of services) {
    const svc = chainName('KUBE-SVC', s.name);
    decl.push(`:${svc} - [0:0]`);
    dispatch.push(`-A KUBE-SERVICES -d ${s.vip}/32 -p tcp -m tcp --dport ${s.port} -j ${svc}`);
    const n = s.backends.length;
    s.backends.forEach((b, i) => {
      const sep = chainName('KUBE-SEP', `${s.name}/${b.address}:${b.port}`);
      decl.push(`:${sep} - [0:0]`);
      const prob = i < n - 1 ? `-m statistic --mode random --probability ${(1 / (n - i)).toFixed(10)} ` : '';
      rules.push(`-A ${svc} ${prob}-j ${sep}`);
      rules.push(`-A ${sep} -p tcp -m tcp -j DNAT --to-destination ${b.address}:${b.port}`);
    });
  }
  return ['*nat', ...decl, '-A PREROUTING -j KUBE-SERVICES', ...dispatch, ...rules, 'COMMIT', ''].join('\n');
}
