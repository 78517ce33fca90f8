/**
 * A simulator of the nat-table part of lbc's iptables output, for new connections: it walks the rules of
 * LBC-PREROUTING and the chains they jump to the way ip_tables.c does (first match wins, a user chain that
 * falls off its end returns to the rule after the jump), and keeps one nth counter per rule as
 * xt_statistic.c does (it moves only when the packet reaches the match; --every N --packet P matches the
 * arrivals ≡ P mod N). The matches it knows: -d ADDR/LEN (IPv4), -p, --dport N[:M], statistic nth,
 * mark VALUE[/MASK]; the targets: user chains, DNAT (returns --to-destination), REDIRECT (returns
 * "local:PORT"). Anything else is an error, so a rule form the simulator does not understand cannot pass
 * a test by accident.
 */

type Match = (pkt: Packet, rule: Rule) => boolean;
interface Rule {
  matches: Match[];
  jump: string | null;
  result: string | null;
  /** Evaluations of this rule's nth match, per rule as in the kernel. */
  count: number;
  text: string;
}
export interface Packet {
  daddr: string;
  proto: string;
  dport: number;
  mark: number;
}

function v4(a: string): number {
  return a.split('.').reduce((s, o) => s * 256 + Number(o), 0);
}

function parseRule(tokens: string[], text: string): Rule {
  const rule: Rule = { matches: [], jump: null, result: null, count: 0, text };
  for (let i = 0; i < tokens.length; i++) {
    const a = tokens[i];
    const v = tokens[i + 1];
    if (a === '-d') {
      const [net, len] = v.split('/');
      const span = 2 ** (32 - Number(len ?? 32));
      const base = Math.floor(v4(net) / span);
      rule.matches.push((p) => Math.floor(v4(p.daddr) / span) === base);
      i++;
    } else if (a === '-p') {
      rule.matches.push((p) => p.proto === v);
      i++;
    } else if (a === '-m' && (v === 'tcp' || v === 'udp' || v === 'statistic' || v === 'mark')) {
      i++;
    } else if (a === '--dport') {
      const [lo, hi] = v.split(':').map(Number);
      rule.matches.push((p) => p.dport >= lo && p.dport <= (hi ?? lo));
      i++;
    } else if (a === '--mode' && v === 'nth') {
      if (tokens[i + 2] !== '--every' || tokens[i + 4] !== '--packet') throw new Error(`nth form not simulated: ${text}`);
      const every = Number(tokens[i + 3]);
      const packet = Number(tokens[i + 5]);
      if (!(every >= 2 && packet >= 0 && packet < every)) throw new Error(`nth values the kernel would refuse: ${text}`);
      rule.matches.push((_, r) => r.count++ % every === packet);
      i += 5;
    } else if (a === '--mark') {
      const [value, mask] = v.split('/').map((x) => Number(x));
      const m = mask ?? 0xffffffff;
      rule.matches.push((p) => ((p.mark & m) >>> 0) === value);
      i++;
    } else if (a === '-j') {
      if (v.startsWith('LBC-')) rule.jump = v;
      else if (v === 'DNAT' && tokens[i + 2] === '--to-destination') rule.result = tokens[i + 3];
      else if (v === 'REDIRECT' && tokens[i + 2] === '--to-ports') rule.result = `local:${tokens[i + 3]}`;
      else throw new Error(`target not simulated: ${text}`);
      break;
    } else {
      throw new Error(`match not simulated: ${a} in ${text}`);
    }
  }
  return rule;
}

export class NatSim {
  private chains = new Map<string, Rule[]>();
  /** Rules evaluated by the last connect(). */
  walked = 0;

  constructor(rulesFile: string) {
    let table = '';
    for (const line of rulesFile.split('\n')) {
      if (line.startsWith('*')) table = line.slice(1);
      else if (table === 'nat' && line.startsWith(':')) this.chains.set(line.slice(1).split(' ')[0], []);
      else if (table === 'nat' && line.startsWith('-A ')) {
        const t = line.split(' ');
        const chain = this.chains.get(t[1]);
        if (!chain) throw new Error(`rule before its chain's declaration: ${line}`);
        chain.push(parseRule(t.slice(2), line));
      }
    }
  }

  /** The backend a new connection reaches ("ADDR:PORT" or "local:PORT"), or null when no rule translates it. */
  connect(daddr: string, proto: string, dport: number, mark = 0, entry = 'LBC-PREROUTING'): string | null {
    this.walked = 0;
    return this.visit(entry, { daddr, proto, dport, mark }, 0);
  }

  private visit(chain: string, pkt: Packet, depth: number): string | null {
    if (depth > 16) throw new Error('jump loop');
    const rules = this.chains.get(chain);
    if (!rules) throw new Error(`jump to an undeclared chain ${chain}`);
    for (const r of rules) {
      this.walked++;
      // Matches in the order written; the first that fails ends the rule (ipt_do_table).
      if (!r.matches.every((m) => m(pkt, r))) continue;
      if (r.result !== null) return r.result;
      if (r.jump) {
        const res = this.visit(r.jump, pkt, depth + 1);
        if (res !== null) return res;
      }
    }
    return null;
  }
}
