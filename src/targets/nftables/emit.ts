/**
 * Text of the nftables ruleset: one `nft -f` file holding lbc's `table inet lbc` (both families).
 * The layout and the reasons for it are in layout.ts; this module only spells it.
 */
import type { IR, Service } from '../../ir/types.js';
import { hasSeveralPorts, primaries } from '../../ir/types.js';
import { portsText } from '../../ir/ports.js';
import type { OutputFile } from '../target.js';
import { renderTemplate } from '../template.js';
import { commentText, headerLines } from '../text.js';
import { buildAssociations, renderAssociations } from './associations.js';
import { buildSourceNat, type SourceNatLayout } from './source-nat.js';
import { buildLayout, hashSeed, hex32, reducedWeights, STICKY_SET_SIZE, type Hook, type Layout, type SharedMap } from './layout.js';

export const RULES_FILE = 'nftables.nft';
export const TABLE = 'inet lbc';

/**
 * Numeric priorities: -100 is NF_IP_PRI_NAT_DST (the `dstnat` keyword), written as a number because
 * nft before 1.0.9 accepts `dstnat` on the prerouting hook only (nft(8), CHAINS, table of priority names).
 */
const HOOKS: Record<Hook, { chain: string; hook: string; comment: string }> = {
  pre: { chain: 'prerouting', hook: 'prerouting', comment: 'Connections arriving from the network.' },
  out: { chain: 'output', hook: 'output', comment: 'Connections made on this host (services with local: true).' },
};

function vipText(svc: Service): string {
  const at = svc.vip ? (svc.vip.isHost ? svc.vip.address : `${svc.vip.address}/${svc.vip.prefixLength}`) : 'any local address';
  if (hasSeveralPorts(svc)) return `${at} ports ${portsText(svc.ports)} (one rotation for all)`;
  const host = svc.family === 'ipv6' && svc.vip?.isHost ? `[${at}]` : at;
  return svc.vip ? `${host}:${svc.port}` : `${at} port ${svc.port}`;
}

function serviceComments(svc: Service, shared: SharedMap | null = null): string[] {
  const prim = primaries(svc);
  const w = reducedWeights(prim.map((b) => b.weight));
  const sum = w.reduce((a, x) => a + x, 0);
  let how = `${svc.mode}`;
  if (svc.mode === 'hash') how += ` on ${svc.hashFields.join(', ')} (seed ${hex32(shared?.seed ?? hashSeed(svc.name))})`;
  const parts = [`service ${svc.name}: ${svc.protocol} ${vipText(svc)}`, `${how} over ${prim.length} backend${prim.length === 1 ? '' : 's'}`];
  if (svc.interface) parts.push(`arriving on ${svc.interface}`);
  if (svc.sticky) parts.push(`sticky ${svc.sticky.timeoutSeconds}s`);
  if (svc.local) parts.push('also for local connections');
  if (svc.allow) parts.push(`only from the ${svc.allow.length} client block${svc.allow.length === 1 ? '' : 's'} of @allow_${svc.name}`);
  // In a shared map the element lines already say which backend owns each slot; one comment line per
  // service keeps a 10,000-service file about half as large (and as quick to diff on apply).
  if (shared) parts.push(w.every((x) => x === 1) ? 'one slot each' : `slots ${w.join(', ')} in backend order`);
  const lines = [parts.join(', ')];
  if (!shared) {
    prim.forEach((b, i) => {
      const where = b.keepsPort
        ? `${b.address ?? 'local'}, on the client's port`
        : b.address === null ? `local port ${b.port}` : svc.family === 'ipv6' ? `[${b.address}]:${b.port}` : `${b.address}:${b.port}`;
      lines.push(`  backend ${b.index}: ${where}, share ${w[i]}/${sum}`);
    });
  }
  for (const b of svc.backends.filter((x) => x.backup)) {
    const where = b.address === null ? `local port ${b.port}` : `${b.address} port ${b.port}`;
    lines.push(`  backup ${b.index}: ${where}, no traffic while a primary is up (lbc agent recompiles)`);
  }
  return lines.map(commentText);
}

const KIND_TEXT: Record<Layout['dispatch'][number]['kind'], string> = {
  host: 'on a host vip',
  hostr: 'on a host vip with a port range (an interval map, after the plain one)',
  cidr: 'on a CIDR vip',
  any: 'without vip',
  anyr: 'without vip with a port range (an interval map, after the plain one)',
};

export function renderLayout(ir: IR, layout: Layout, sourceNat: SourceNatLayout | null = null): string {
  const sets = layout.services.flatMap((c) =>
    c.sets.map((s) => ({ name: s.name, type: s.type, timeout: `${s.timeoutSeconds}s`, size: STICKY_SET_SIZE })),
  );
  const sharedMaps = layout.shared.map((m) => {
    const fam = m.family === 'ipv4' ? 'IPv4' : 'IPv6';
    const how = m.mode === 'random' ? 'at random' : `by hash on ${m.hashFields.join(', ')}`;
    const local = m.hook === 'out' ? ', for local connections' : '';
    return {
      name: m.name,
      comments: [
        `${fam} services on a host vip balanced ${how}${local}, without a chain of their own.`,
        `Key: vip . protocol . port . slot in [0, ${m.slots}); each backend owns as many slots as its reduced weight.`,
        ...(m.mode === 'hash'
          ? [
              'One jhash seed for the whole map, derived from the field list (a service here has no seed of its own).',
              'The typeof names symhash only for the key type (a 32-bit integer): nft 1.0.6 cannot list a typeof holding jhash.',
            ]
          : []),
        ...m.services.flatMap((s) => serviceComments(s, m)),
      ],
      type: m.type,
      interval: false,
      elements: m.entries.map((e) => `${e.key} : ${e.value}`),
    };
  });
  const maps = layout.dispatch.map((m) => ({
    name: m.name,
    comments: [`${m.family === 'ipv4' ? 'IPv4' : 'IPv6'} services ${KIND_TEXT[m.kind]}${m.hook === 'out' ? ', for local connections' : ''}.`],
    type: `type ${m.type}`,
    interval: m.interval,
    elements: m.entries.map((e) => `${e.key} : ${e.verdict}`),
  }));
  const chains = [
    ...layout.services.map((c) => ({
      name: c.name,
      comments: serviceComments(c.service),
      rules: [...c.guard, ...c.stickyRules, ...c.selection.map((r) => (r.condition ? `${r.condition} ${r.action}` : r.action))],
    })),
    ...layout.interfaceChains.map((c) => ({
      name: c.name,
      comments: ['Services sharing one vip, protocol and port, told apart by inbound interface.'],
      rules: c.rules,
    })),
  ];
  const hooks = (['pre', 'out'] as Hook[])
    .map((h) => ({
      name: HOOKS[h].chain,
      hook: HOOKS[h].hook,
      comment: `${HOOKS[h].comment} ${layout.shared.some((m) => m.hook === h) ? 'Shared selection maps and host vips' : 'Host vips'} first, then CIDR vips (longest prefix first), then services without vip.`,
      // Per family, the shared maps' rules come right before the family's dispatch maps: a service
      // they hold is a host vip no other service shares, so it is matched before any CIDR or vip-less one.
      priority: -100,
      rules: (['ipv4', 'ipv6'] as const).flatMap((f) => [
        ...layout.shared.filter((m) => m.hook === h && m.family === f).map((m) => m.rule),
        ...layout.dispatch.filter((m) => m.hook === h && m.family === f).map((m) => m.rule),
      ]),
    }))
    .filter((h) => h.rules.length > 0);
  if (sourceNat) {
    // source-nat.ts: 100 is NF_IP_PRI_NAT_SRC (the srcnat keyword).
    for (const m of sourceNat.maps) maps.push({ name: m.name, comments: ['Source NAT by the backend a connection was sent to (address . protocol . port).'], type: m.type, interval: false, elements: m.elements });
    for (const c of sourceNat.chains) chains.push({ name: c.name, comments: [], rules: c.rules });
    hooks.push({ name: 'postrouting', hook: 'postrouting', comment: 'Source NAT of what is sent to the backends of services with source-nat.', priority: 100, rules: sourceNat.rules });
  }
  const allowSets = layout.allowSets.map((a) => ({ ...a, comment: `Clients service ${a.service} balances (its allow list); the first rule of its chain drops everyone else.` }));
  return renderTemplate('nftables', 'ruleset', { header: headerLines('nftables', ir.file), sets, allowSets, maps: [...sharedMaps, ...maps], chains, hooks });
}

export function emitNftables(ir: IR): OutputFile[] {
  // Services with UDP associations live in their own table (associations.ts), which loads keep.
  const assoc = buildAssociations(ir.services);
  const plain = assoc ? ir.services.filter((s) => !s.associations) : ir.services;
  const main = renderLayout(ir, buildLayout(plain), buildSourceNat(plain));
  return [{ name: RULES_FILE, content: assoc ? `${main}${renderAssociations(assoc)}` : main }];
}
