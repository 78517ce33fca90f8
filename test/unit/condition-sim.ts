/**
 * A small interpreter for the mangle/nat rules --target iptables-condition
 * emits: it understands exactly the matches and targets the emitter uses
 * (mark, condition, statistic nth/random, MARK, CONNMARK, DNAT/REDIRECT,
 * RETURN, DROP, -j/-g) with xt_statistic's counter and probability semantics,
 * and throws on anything else, so a rule it does not understand fails a test
 * instead of being skipped.
 */

export interface Rule {
  chain: string;
  matches: Match[];
  target: Target;
  /** For nth: the kernel counter (xt_statistic.c: count = every - packet, every stored as n-1). */
  counter?: { every: number; count: number };
}

type Match =
  | { kind: 'mark'; value: number; mask: number; invert: boolean }
  | { kind: 'condition'; name: string; invert: boolean }
  | { kind: 'nth'; every: number; packet: number }
  | { kind: 'random'; p31: number }
  | { kind: 'service' };

type Target =
  | { kind: 'jump'; chain: string; goto: boolean }
  | { kind: 'return' }
  | { kind: 'drop' }
  | { kind: 'setmark'; value: number; mask: number }
  | { kind: 'connmark'; op: 'restore' | 'save' }
  | { kind: 'dnat'; to: string };

export interface Tables {
  mangle: Map<string, Rule[]>;
  nat: Map<string, Rule[]>;
}

function num(s: string): number {
  return Number(s);
}

function parseRule(line: string): Rule {
  const t = line.trim().split(/\s+/);
  if (t[0] !== '-A') throw new Error(`not an -A line: ${line}`);
  const chain = t[1];
  const matches: Match[] = [];
  let target: Target | null = null;
  let i = 2;
  let invert = false;
  while (i < t.length) {
    const w = t[i];
    if (w === '!') {
      invert = true;
      i++;
      continue;
    }
    if (w === '-i' || w === '-d' || w === '-p') {
      matches.push({ kind: 'service' });
      i += 2;
    } else if (w === '-m') {
      const mod = t[i + 1];
      i += 2;
      if (mod === 'tcp' || mod === 'udp') {
        if (t[i] !== '--dport') throw new Error(`unexpected ${t[i]} in ${line}`);
        i += 2;
      } else if (mod === 'addrtype') {
        i += 2;
      } else if (mod === 'mark') {
        if (t[i] === '!') {
          invert = true;
          i++;
        }
        if (t[i] !== '--mark') throw new Error(line);
        const [v, m] = t[i + 1].split('/');
        matches.push({ kind: 'mark', value: num(v), mask: m === undefined ? 0xffffffff : num(m), invert });
        invert = false;
        i += 2;
      } else if (mod === 'condition') {
        if (t[i] === '!') {
          invert = true;
          i++;
        }
        if (t[i] !== '--condition') throw new Error(line);
        matches.push({ kind: 'condition', name: t[i + 1], invert });
        invert = false;
        i += 2;
      } else if (mod === 'statistic') {
        if (t[i] !== '--mode') throw new Error(line);
        if (t[i + 1] === 'nth') {
          if (t[i + 2] !== '--every' || t[i + 4] !== '--packet') throw new Error(line);
          matches.push({ kind: 'nth', every: num(t[i + 3]), packet: num(t[i + 5]) });
          i += 6;
        } else if (t[i + 1] === 'random') {
          if (t[i + 2] !== '--probability') throw new Error(line);
          // libxt_statistic.c: probability stored as lround(2^31 * p); kernel compares 31 random bits.
          matches.push({ kind: 'random', p31: Math.round(0x80000000 * Number(t[i + 3])) });
          i += 4;
        } else throw new Error(line);
      } else throw new Error(`unknown match ${mod} in ${line}`);
    } else if (w === '-j' || w === '-g') {
      const tg = t[i + 1];
      const rest = t.slice(i + 2);
      if (tg === 'RETURN') target = { kind: 'return' };
      else if (tg === 'DROP') target = { kind: 'drop' };
      else if (tg === 'MARK') {
        if (rest[0] !== '--set-xmark') throw new Error(line);
        const [v, m] = rest[1].split('/');
        target = { kind: 'setmark', value: num(v), mask: num(m) };
      } else if (tg === 'CONNMARK') {
        target = { kind: 'connmark', op: rest[0] === '--restore-mark' ? 'restore' : rest[0] === '--save-mark' ? 'save' : (() => { throw new Error(line); })() };
      } else if (tg === 'DNAT') target = { kind: 'dnat', to: rest[1] };
      else if (tg === 'REDIRECT') target = { kind: 'dnat', to: `local:${rest[1]}` };
      else if (tg.startsWith('LBC-')) target = { kind: 'jump', chain: tg, goto: w === '-g' };
      else throw new Error(`unknown target ${tg} in ${line}`);
      break;
    } else throw new Error(`unknown word ${w} in ${line}`);
  }
  if (!target) throw new Error(`no target: ${line}`);
  const rule: Rule = { chain, matches, target };
  const nth = matches.find((m) => m.kind === 'nth');
  if (nth && nth.kind === 'nth') rule.counter = { every: nth.every - 1, count: nth.every - 1 - nth.packet };
  return rule;
}

export function parseRestore(text: string): Tables {
  const tables: Tables = { mangle: new Map(), nat: new Map() };
  let cur: Map<string, Rule[]> | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line === '*mangle') cur = tables.mangle;
    else if (line === '*nat') cur = tables.nat;
    else if (line.startsWith('*')) throw new Error(`unexpected table ${line}`);
    else if (line === 'COMMIT') cur = null;
    else if (line.startsWith(':')) {
      if (!cur) throw new Error('chain outside a table');
      const name = line.slice(1).split(' ')[0];
      if (name.length > 28) throw new Error(`chain name too long: ${name}`);
      cur.set(name, []);
    } else {
      if (!cur) throw new Error('rule outside a table');
      const r = parseRule(line);
      const list = cur.get(r.chain);
      if (!list) throw new Error(`rule for undeclared chain ${r.chain}`);
      if (r.target.kind === 'jump' && !cur.has(r.target.chain)) throw new Error(`jump to undeclared chain ${r.target.chain}`);
      list.push(r);
    }
  }
  return tables;
}

/** Random draws: a function giving, for a random rule, whether it matched. */
export type Chooser = (p31: number) => boolean;

interface Packet {
  mark: number;
  ctmark: number;
  dropped: boolean;
}

/** Walks `chain` like ipt_do_table: matches in order, first false ends the rule; -g replaces the frame. */
function walk(tables: Map<string, Rule[]>, start: string, pkt: Packet, cond: (name: string) => boolean, choose: Chooser): void {
  const stack: { chain: string; at: number }[] = [];
  let chain = start;
  let at = 0;
  for (let steps = 0; steps < 100000; steps++) {
    const rules = tables.get(chain)!;
    if (at >= rules.length) {
      const f = stack.pop();
      if (!f) return;
      chain = f.chain;
      at = f.at;
      continue;
    }
    const r = rules[at++];
    let ok = true;
    for (const m of r.matches) {
      if (m.kind === 'service') continue;
      if (m.kind === 'mark') ok = ((pkt.mark & m.mask) === m.value) !== m.invert;
      else if (m.kind === 'condition') ok = cond(m.name) !== m.invert;
      else if (m.kind === 'nth') {
        const c = r.counter!;
        if (c.count === c.every) {
          c.count = 0;
          ok = true;
        } else {
          c.count++;
          ok = false;
        }
      } else if (m.kind === 'random') ok = choose(m.p31);
      if (!ok) break;
    }
    if (!ok) continue;
    const tg = r.target;
    if (tg.kind === 'return') {
      const f = stack.pop();
      if (!f) return;
      chain = f.chain;
      at = f.at;
    } else if (tg.kind === 'drop') {
      pkt.dropped = true;
      return;
    } else if (tg.kind === 'setmark') pkt.mark = (pkt.mark & ~tg.mask) ^ tg.value;
    else if (tg.kind === 'connmark') {
      if (tg.op === 'restore') pkt.mark = (pkt.mark & ~0xff0000) | (pkt.ctmark & 0xff0000);
      else pkt.ctmark = (pkt.ctmark & ~0xff0000) | (pkt.mark & 0xff0000);
    } else if (tg.kind === 'jump') {
      if (!tg.goto) stack.push({ chain, at });
      chain = tg.chain;
      at = 0;
    } else throw new Error('DNAT in mangle');
  }
  throw new Error('walk did not end');
}

/** The backend ("addr:port" or "local:port") a new connection to `service` goes to, or null when dropped. */
export function newConnection(t: Tables, service: string, cond: (name: string) => boolean, choose: Chooser): string | null {
  const pkt: Packet = { mark: 0, ctmark: 0, dropped: false };
  walk(t.mangle, `LBC-${service}`, pkt, cond, choose);
  if (pkt.dropped) return null;
  for (const r of t.nat.get(`LBC-${service}-dnat`)!) {
    const m = r.matches.find((x) => x.kind === 'mark');
    if (m && m.kind === 'mark' && (pkt.mark & m.mask) === m.value && r.target.kind === 'dnat') return r.target.to;
  }
  throw new Error(`marked ${pkt.mark.toString(16)} but no DNAT rule matched`);
}

/**
 * Exact outcome distribution of one new connection in random mode: every
 * random rule forks the walk (the tables hold no nth rules then).
 */
export function distribution(t: Tables, service: string, cond: (name: string) => boolean): Map<string | null, number> {
  const out = new Map<string | null, number>();
  // Enumerate decision sequences depth-first: each run follows a fixed prefix of choices.
  const explore = (prefix: boolean[], prob: number) => {
    let k = 0;
    let forked = false;
    let p = prob;
    const choose: Chooser = (p31) => {
      const q = p31 / 0x80000000;
      if (k < prefix.length) {
        const c = prefix[k++];
        return c;
      }
      // First new fork: explore both branches from scratch, abandon this run.
      forked = true;
      explore([...prefix, true], p * q);
      explore([...prefix, false], p * (1 - q));
      throw new Forked();
    };
    // Probability of the prefix is carried in `prob`; recompute nothing.
    try {
      const r = newConnection(t, service, cond, choose);
      if (!forked) out.set(r, (out.get(r) ?? 0) + p);
    } catch (e) {
      if (!(e instanceof Forked)) throw e;
    }
  };
  explore([], 1);
  return out;
}

class Forked extends Error {}
