/*
 * Policy → maps. The rule order ("first matching rule wins") is turned into lookups whose
 * number does not depend on the policy's size:
 *
 *  1. Remote prefixes of all rules go in one LPM trie. Each prefix's value is its *class*: the
 *     set of rule prefixes that contain it (itself and its ancestors), so the longest match on a
 *     packet's address tells exactly which rule prefixes contain the address. Local likewise.
 *  2. For every (remote class, local class, direction) the rules that apply are known; they are
 *     split by protocol and by elementary port interval (ports decomposed into aligned blocks),
 *     and each region stores its candidate rules in rule order, cut after the first rule without
 *     a condition. A region nobody mentions is absent: the LPM falls back to the less specific
 *     entry (any port, then any protocol), whose candidates are by construction a subset.
 *  3. Set rules (remote = a named endpoint set) are few by limit and merged in rule order at run
 *     time after one hash lookup of the packet's remote endpoint.
 *
 * Output is packed little-endian buffers laid out as bpf/include/twfw.h says, ready for batch
 * updates. Identical candidate lists are compiled once (a 10,000-prefix rule is one template).
 */
import { ConfigError } from '../../lib/errors';
import { F_LADDR, F_RADDR, F_RULES_IN, F_RULES_OUT, F_SETS_IN, F_SETS_OUT, F_SOCKET, INGRESS, MAX_CANDS, MAX_SET_RULES, PKEY_DIR_BITS, PKEY_PROTO_BITS, SLOT_CONTINUE, SLOT_DEFAULT_IN, SLOT_DEFAULT_OUT, SLOT_RULE0 } from './codec';
import { maskBits, NPolicy, NRule, Prefix, TwfwLimits } from './policy';

export const AKEY_SIZE = 20;
export const PKEY_SIZE = 16;
export const CANDS_SIZE = 4 + 2 * MAX_CANDS;
export const RULE_SIZE = 8;
/** Compile work allowed per match entry the host allows (see compilePolicy). */
const COMPILE_WORK_PER_ENTRY = 8;
const MIN_COMPILE_WORK = 1_000_000;

export interface Packed {
  count: number;
  keys: Buffer;
  values: Buffer;
}

export interface CompiledSetRule {
  slot: number;
  dir: number;
  proto: number;
  set: string;
}

export interface CompiledPolicy {
  /** Rule slots (defaults and continue included). */
  slots: number;
  /** tw_fw_rules values by slot. */
  rules: Buffer;
  raddr: Packed;
  laddr: Packed;
  match: Packed;
  setRules: CompiledSetRule[];
  flags: number;
  /** By slot: what fw stats and monitor call the rule. */
  labels: string[];
  classes: { remote: number; local: number };
}

interface Classes {
  entries: { p: Prefix; cls: number }[];
  /** Rule indexes per class, ascending; class 0 = address in no rule prefix. */
  rulesOf: number[][];
  /** Rules with no condition on this side. */
  any: number[];
}

function classify(rules: NRule[], side: 'remote' | 'local'): Classes {
  const byKey = new Map<string, { p: Prefix; rules: number[] }>();
  const any: number[] = [];
  for (const r of rules) {
    const ps = r[side];
    if (ps === null) {
      any.push(r.index);
      continue;
    }
    for (const p of ps) {
      const k = `${p.len}/${p.bits}`;
      let e = byKey.get(k);
      if (!e) byKey.set(k, (e = { p, rules: [] }));
      if (e.rules[e.rules.length - 1] !== r.index) e.rules.push(r.index);
    }
  }
  const lens = [...new Set([...byKey.values()].map((e) => e.p.len))].sort((a, b) => a - b);
  const classOf = new Map<string, number>();
  const rulesOf: number[][] = [[]];
  const entries: { p: Prefix; cls: number }[] = [];
  for (const [key, e] of byKey) {
    let ckey = key;
    let rs = e.rules;
    if (lens.length > 1) {
      const anc: string[] = [];
      for (const len of lens) {
        if (len > e.p.len) break;
        const k = len === e.p.len ? key : `${len}/${maskBits(e.p.bits, len)}`;
        if (byKey.has(k)) anc.push(k);
      }
      if (anc.length > 1) {
        ckey = anc.join('|');
        rs = [...new Set(anc.flatMap((k) => byKey.get(k)!.rules))].sort((a, b) => a - b);
      }
    }
    let cls = classOf.get(ckey);
    if (cls === undefined) {
      cls = rulesOf.length;
      classOf.set(ckey, cls);
      rulesOf.push(rs);
    }
    entries.push({ p: e.p, cls });
  }
  return { entries, rulesOf, any };
}

function mergeSorted(a: number[], b: number[]): number[] {
  if (!a.length) return b;
  if (!b.length) return a;
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i] < b[j])) out.push(a[i++]);
    else if (i >= a.length || b[j] < a[i]) out.push(b[j++]);
    else {
      out.push(a[i++]);
      j++;
    }
  }
  return out;
}

interface Region {
  prefixlen: number;
  proto: number;
  port: number;
  slots: number[];
}

const conditional = (r: NRule) => r.tcpMask !== 0 || r.prob !== 0;

/** Candidates in rule order, up to the first unconditional one. */
function candidates(list: NRule[]): number[] {
  const out: number[] = [];
  for (const r of list) {
    if (out.length === MAX_CANDS)
      throw new ConfigError(`rule ${r.label}: more than ${MAX_CANDS} rules with conditions (tcpFlags, probability) overlap before it; merge some or narrow their prefixes or ports`);
    out.push(SLOT_RULE0 + r.index);
    if (!conditional(r)) break;
  }
  return out;
}

/** Aligned port blocks covering [lo, hi]: [start, prefix bits of 16]. */
export function portBlocks(lo: number, hi: number): [number, number][] {
  const out: [number, number][] = [];
  let a = lo;
  while (a <= hi) {
    let size = a === 0 ? 65536 : a & -a;
    while (size > hi - a + 1) size >>= 1;
    out.push([a, 16 - Math.log2(size)]);
    a += size;
  }
  return out;
}

function regions(list: NRule[]): Region[] {
  const out: Region[] = [];
  const anyProto = list.filter((r) => r.proto === null);
  if (anyProto.length) out.push({ prefixlen: PKEY_DIR_BITS, proto: 0, port: 0, slots: candidates(anyProto) });
  const protos = [...new Set(list.filter((r) => r.proto !== null).map((r) => r.proto as number))];
  for (const proto of protos) {
    const pr = list.filter((r) => r.proto === proto || r.proto === null);
    const portless = pr.filter((r) => r.ports === null);
    if (pr.some((r) => r.proto === proto && r.ports === null)) out.push({ prefixlen: PKEY_PROTO_BITS, proto, port: 0, slots: candidates(portless) });
    const portRules = pr.filter((r) => r.ports !== null);
    if (!portRules.length) continue;
    const bounds = [...new Set(portRules.flatMap((r) => r.ports!.flatMap(([lo, hi]) => [lo, hi + 1])))].sort((a, b) => a - b);
    let runStart = -1;
    let runKey = '';
    let runCover: NRule[] = [];
    const flush = (end: number) => {
      if (runStart < 0 || !runCover.length) return;
      const slots = candidates(mergeRules(runCover, portless));
      for (const [port, bits] of portBlocks(runStart, end)) out.push({ prefixlen: PKEY_PROTO_BITS + bits, proto, port, slots });
    };
    for (let i = 0; i < bounds.length - 1; i++) {
      const a = bounds[i];
      const cover = portRules.filter((r) => r.ports!.some(([lo, hi]) => lo <= a && a <= hi));
      const key = cover.map((r) => r.index).join(',');
      if (key !== runKey || runStart < 0) {
        flush(a - 1);
        runStart = a;
        runKey = key;
        runCover = cover;
      }
    }
    flush(bounds[bounds.length - 1] - 1);
  }
  return out;
}

function mergeRules(a: NRule[], b: NRule[]): NRule[] {
  return [...new Set([...a, ...b])].sort((x, y) => x.index - y.index);
}

function packAddrs(c: Classes): Packed {
  const n = c.entries.length;
  const keys = Buffer.alloc(n * AKEY_SIZE);
  const values = Buffer.alloc(n * 4);
  c.entries.forEach(({ p, cls }, i) => {
    const o = i * AKEY_SIZE;
    keys.writeUInt32LE(p.len, o);
    keys.writeBigUInt64BE(p.bits >> 64n, o + 4);
    keys.writeBigUInt64BE(p.bits & 0xffffffffffffffffn, o + 12);
    values.writeUInt32LE(cls, i * 4);
  });
  return { count: n, keys, values };
}

export function compilePolicy(policy: NPolicy, limits: TwfwLimits): CompiledPolicy {
  const { rules } = policy;
  if (rules.length > limits.maxRules) throw new ConfigError(`rule ${rules[limits.maxRules].label}: over the host's limit of ${limits.maxRules} rules`);
  const setRules = rules.filter((r) => r.set !== null);
  if (setRules.length > MAX_SET_RULES) throw new ConfigError(`rule ${setRules[MAX_SET_RULES].label}: over the limit of ${MAX_SET_RULES} set rules per policy`);
  const prefixRules = rules.filter((r) => r.set === null);

  let prefixes = 0;
  for (const r of prefixRules) {
    prefixes += (r.remote?.length ?? 0) + (r.local?.length ?? 0);
    if (prefixes > limits.maxPrefixes) throw new ConfigError(`rule ${r.label}: the policy has more than the host's limit of ${limits.maxPrefixes} prefixes`);
  }
  const byIndex = { get: (i: number) => rules[i] };
  const remote = classify(prefixRules, 'remote');
  const local = classify(prefixRules, 'local');

  // Only (remote class, local class) pairs sharing a rule can have entries; walking every pair
  // instead costs remote × local classes even when almost none match (10,000 disjoint rules took
  // seconds). So each remote class visits just the local classes of its own rules, found through
  // an index rule → local classes, plus every local class when one of its rules has no local side.
  const localClassesOf = new Map<number, number[]>();
  local.rulesOf.forEach((rs, lc) => {
    for (const i of rs) {
      let l = localClassesOf.get(i);
      if (!l) localClassesOf.set(i, (l = []));
      l.push(lc);
    }
  });
  const localAny = new Set(local.any);
  const allLocal = Array.from({ length: local.rulesOf.length }, (_, lc) => lc);
  const templates = new Map<string, Region[]>();
  const keyParts: { rc: number; lc: number; dir: number; regions: Region[] }[] = [];
  let entries = 0;
  // Rule indexes looked at: bounded by the entries produced, but a cap keeps a hostile policy
  // from stalling the hook in case some shape still escapes that bound.
  let work = 0;
  const workLimit = Math.max(MIN_COMPILE_WORK, COMPILE_WORK_PER_ENTRY * limits.maxEntries);
  const charge = (n: number, at: number) => {
    work += n;
    if (work > workLimit)
      throw new ConfigError(`policy is too costly to compile (over ${workLimit} rule visits, at rule ${byIndex.get(at)!.label}); too many rules overlap both in remote and in local prefixes`);
  };
  for (let rc = 0; rc < remote.rulesOf.length; rc++) {
    const rrules = mergeSorted(remote.rulesOf[rc], remote.any);
    if (!rrules.length) continue;
    charge(rrules.length, rrules[0]);
    // Per local class, the rules of this remote class that name it, in rule order.
    const shared = new Map<number, number[]>();
    const withAnyLocal: number[] = [];
    for (const i of rrules) {
      if (localAny.has(i)) withAnyLocal.push(i);
      const lcs = localClassesOf.get(i);
      if (!lcs) continue;
      charge(lcs.length, i);
      for (const lc of lcs) {
        let l = shared.get(lc);
        if (!l) shared.set(lc, (l = []));
        l.push(i);
      }
    }
    const lcs = withAnyLocal.length ? allLocal : [...shared.keys()].sort((a, b) => a - b);
    for (const lc of lcs) {
      const applicable = mergeSorted(shared.get(lc) ?? [], withAnyLocal);
      charge(applicable.length, applicable[0]);
      for (const dir of [INGRESS, 1]) {
        const list = applicable.filter((i) => byIndex.get(i)!.dir === dir);
        if (!list.length) continue;
        const tkey = `${dir}:${list.join(',')}`;
        let regs = templates.get(tkey);
        if (!regs) templates.set(tkey, (regs = regions(list.map((i) => byIndex.get(i)!))));
        keyParts.push({ rc, lc, dir, regions: regs });
        entries += regs.length;
        if (entries > limits.maxEntries)
          throw new ConfigError(`policy compiles to more than the host's limit of ${limits.maxEntries} match entries (at rule ${byIndex.get(list[list.length - 1])!.label}); overlapping prefixes times port ranges multiply`);
      }
    }
  }

  const keys = Buffer.alloc(entries * PKEY_SIZE);
  const values = Buffer.alloc(entries * CANDS_SIZE);
  let n = 0;
  for (const { rc, lc, dir, regions: regs } of keyParts) {
    for (const g of regs) {
      const o = n * PKEY_SIZE;
      keys.writeUInt32LE(g.prefixlen, o);
      keys.writeUInt32LE(rc, o + 4);
      keys.writeUInt32LE(lc, o + 8);
      keys.writeUInt8(dir, o + 12);
      keys.writeUInt8(g.proto, o + 13);
      keys.writeUInt16BE(g.port, o + 14);
      const v = n * CANDS_SIZE;
      values.writeUInt32LE(g.slots.length, v);
      g.slots.forEach((s, i) => values.writeUInt16LE(s, v + 4 + 2 * i));
      n++;
    }
  }

  const slots = SLOT_RULE0 + rules.length;
  const ruleBuf = Buffer.alloc(slots * RULE_SIZE);
  const writeRule = (slot: number, action: number, log: boolean, mask = 0, value = 0, prob = 0) => {
    const o = slot * RULE_SIZE;
    ruleBuf.writeUInt8(action, o);
    ruleBuf.writeUInt8(log ? 1 : 0, o + 1);
    ruleBuf.writeUInt8(mask, o + 2);
    ruleBuf.writeUInt8(value, o + 3);
    ruleBuf.writeUInt32LE(prob, o + 4);
  };
  writeRule(SLOT_DEFAULT_IN, policy.defaults.ingress.action, policy.defaults.ingress.log);
  writeRule(SLOT_DEFAULT_OUT, policy.defaults.egress.action, policy.defaults.egress.log);
  writeRule(SLOT_CONTINUE, 1, false);
  for (const r of rules) writeRule(SLOT_RULE0 + r.index, r.action, r.log, r.tcpMask, r.tcpValue, r.prob);

  const labels = ['default ingress', 'default egress', 'established', ...rules.map((r) => r.label)];
  let flags = rules.some((r) => r.dir !== INGRESS && r.local) ? 0 : F_SOCKET;
  if (prefixRules.some((r) => r.remote)) flags |= F_RADDR;
  if (prefixRules.some((r) => r.local)) flags |= F_LADDR;
  if (prefixRules.some((r) => r.dir === INGRESS)) flags |= F_RULES_IN;
  if (prefixRules.some((r) => r.dir !== INGRESS)) flags |= F_RULES_OUT;
  if (setRules.some((r) => r.dir === INGRESS)) flags |= F_SETS_IN;
  if (setRules.some((r) => r.dir !== INGRESS)) flags |= F_SETS_OUT;

  return {
    slots,
    rules: ruleBuf,
    raddr: packAddrs(remote),
    laddr: packAddrs(local),
    match: { count: n, keys, values },
    setRules: setRules.map((r) => ({ slot: SLOT_RULE0 + r.index, dir: r.dir, proto: r.proto ?? 0, set: r.set! })),
    flags,
    labels,
    classes: { remote: remote.rulesOf.length - 1, local: local.rulesOf.length - 1 },
  };
}
