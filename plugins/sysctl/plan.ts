/*
 * Compiled slots → the exact contents of the BPF maps and the .rodata config (a pure plan, so it
 * can be tested and shown without a kernel), and `applyPlan`, which writes a plan into a loaded
 * object before its program is attached.
 */
import { ConfigError } from '../../lib/errors';
import type { BpfObject } from '../../lib/bpf/object';
import {
  EXACT_MAP, F_BUNDLE, F_EVENTS, MAX_EXACT, MAX_PATTERNS, MAX_VALUES, PAT, PATTERNS_MAP, SLOT_BUNDLE, sysctlConfig, sysctlKey, sysctlPattern, sysctlRule, sysctlValue, u32Key, VAL, VALUES_MAP, WRITE,
} from './codec';
import type { CompiledRule, Slot } from './policy';

type Rule = ReturnType<typeof sysctlRule.decode>;

export interface Plan {
  config: { defaults: Rule[]; nslots: number; flags: number };
  exact: { slot: number; name: string; rule: Rule }[];
  patterns: { index: number; pattern: ReturnType<typeof sysctlPattern.decode> }[];
  values: ReturnType<typeof sysctlValue.decode>[];
}

export function makePlan(slots: Slot[], bundle: Map<string, CompiledRule>, events: boolean): Plan {
  if (slots.length < 1 || slots.length > 2) throw new Error(`sysctl: ${slots.length} policy slots (1 or 2 expected)`);
  const values: Plan['values'] = [];
  const encode = (r: CompiledRule): Rule => {
    const first = values.length;
    for (const v of r.values)
      values.push(v.kind === 'string' ? { kind: VAL.string, len: Buffer.byteLength(v.str), lo: 0n, hi: 0n, str: v.str } : { kind: VAL.range, len: 0, lo: v.lo, hi: v.hi, str: '' });
    return { read: r.read ? 1 : 0, write: WRITE[r.write], nvalues: r.values.length, pad: 0, first_value: r.values.length ? first : 0, pad2: 0 };
  };
  const exact: Plan['exact'] = [];
  const patterns: Plan['patterns'] = [];
  slots.forEach((s, slot) => {
    for (const [name, r] of s.exact) exact.push({ slot, name, rule: encode(r) });
    s.patterns.forEach(({ matcher: m, rule }, i) => {
      if (m.kind === 'exact') return;
      patterns.push({
        index: slot * MAX_PATTERNS + i,
        pattern: { prefix: m.prefix, suffix: m.suffix, prefix_len: Buffer.byteLength(m.prefix), suffix_len: Buffer.byteLength(m.suffix), kind: PAT[m.kind], seps: m.seps, rule: encode(rule) },
      });
    });
  });
  for (const [name, r] of bundle) exact.push({ slot: SLOT_BUNDLE, name, rule: encode(r) });
  if (exact.length > MAX_EXACT) throw new ConfigError(`sysctl policies name ${exact.length} sysctls exactly, at most ${MAX_EXACT}`);
  if (values.length > MAX_VALUES) throw new ConfigError(`sysctl policies list ${values.length} allowed values in all, at most ${MAX_VALUES}`);
  const defaults = [encode(slots[0].default), slots[1] ? encode(slots[1].default) : encode({ read: true, write: 'any', values: [], source: '' })];
  return {
    config: { defaults, nslots: slots.length, flags: (events ? F_EVENTS : 0) | (bundle.size ? F_BUNDLE : 0) },
    exact,
    patterns,
    values,
  };
}

/** Map sizes for BpfObject.open: just what the plan needs (hash entries are preallocated). */
export function planMaxEntries(plan: Plan): Record<string, number> {
  return { [EXACT_MAP]: Math.max(1, plan.exact.length), [VALUES_MAP]: Math.max(1, plan.values.length) };
}

export function planRodata(plan: Plan) {
  return { tw_sc_cfg: { codec: sysctlConfig, value: plan.config } };
}

export function applyPlan(obj: BpfObject, plan: Plan): void {
  const exact = obj.map(EXACT_MAP);
  for (const e of plan.exact) exact.update(sysctlKey, { slot: e.slot, name: e.name }, sysctlRule, e.rule);
  const patterns = obj.map(PATTERNS_MAP);
  for (const p of plan.patterns) patterns.update(u32Key, p.index, sysctlPattern, p.pattern);
  const values = obj.map(VALUES_MAP);
  plan.values.forEach((v, i) => values.update(u32Key, i, sysctlValue, v));
}
