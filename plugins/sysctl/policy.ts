/*
 * The sysctl policy compiler: a policy as people write it (oci-config/sysctl-policy.schema.json)
 * → one compiled slot (exact names, ordered patterns, a default), and `evaluate`, the same
 * decision bpf/sysctl.bpf.c makes, for tests, for the bundle check and for explaining a denial.
 *
 * Precedence inside one policy, decided here once so that the order rules are written in rarely
 * matters: an exact name wins; else the pattern with the most literal bytes (prefix + suffix);
 * on a tie '*' before '**', then the earlier rule; else the policy's default.
 */
import { ConfigError } from '../../lib/errors';
import { literalLength, Matcher, matcherText, matches, parseName } from './names';

export type Access = 'allow' | 'read-only' | 'write-only' | 'deny';
export type DefaultAccess = 'allow' | 'read-only' | 'deny';
export type ValueSpec = number | string | { min?: number; max?: number };

export interface RuleSpec {
  name: string | string[];
  access: Access;
  values?: ValueSpec[];
}

export interface PolicySpec {
  default: DefaultAccess;
  rules?: RuleSpec[];
  events?: boolean;
}

export const MAX_PATTERNS = 32; // per slot (TW_SC_MAX_PATTERNS)
export const MAX_RULE_VALUES = 16; // TW_SC_MAX_RULE_VALUES
export const VALUE_MAX = 63; // bytes of a string value (TW_SC_VALUE_MAX - 1)
const S64_MIN = -(2n ** 63n);
const S64_MAX = 2n ** 63n - 1n;

export type CompiledValue = { kind: 'string'; str: string } | { kind: 'range'; lo: bigint; hi: bigint };

export interface CompiledRule {
  read: boolean;
  write: 'deny' | 'any' | 'values';
  values: CompiledValue[];
  /** Where it came from, for messages: "rule 2", "default", "linux.sysctl". */
  source: string;
}

export interface Slot {
  default: CompiledRule;
  exact: Map<string, CompiledRule>;
  patterns: { matcher: Matcher; rule: CompiledRule }[];
  events: boolean;
}

function compileValue(v: ValueSpec, what: string): CompiledValue {
  if (typeof v === 'string') {
    const str = v.replace(/\s+$/, '');
    if (Buffer.byteLength(str) > VALUE_MAX) throw new ConfigError(`${what}: value ${JSON.stringify(v)} is longer than ${VALUE_MAX} bytes`);
    return { kind: 'string', str };
  }
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new ConfigError(`${what}: value ${v} is not an integer`);
    return { kind: 'range', lo: BigInt(v), hi: BigInt(v) };
  }
  const lo = v.min === undefined ? S64_MIN : BigInt(v.min);
  const hi = v.max === undefined ? S64_MAX : BigInt(v.max);
  if (v.min === undefined && v.max === undefined) throw new ConfigError(`${what}: a range needs min, max or both`);
  for (const b of [v.min, v.max]) if (b !== undefined && !Number.isSafeInteger(b)) throw new ConfigError(`${what}: range bound ${b} is not an integer`);
  if (lo > hi) throw new ConfigError(`${what}: range min ${lo} is above max ${hi}`);
  return { kind: 'range', lo, hi };
}

function compileAccess(access: Access, values: ValueSpec[] | undefined, source: string): CompiledRule {
  const read = access === 'allow' || access === 'read-only';
  const writes = access === 'allow' || access === 'write-only';
  if (values !== undefined) {
    if (!writes) throw new ConfigError(`${source}: values are only meaningful when writes are allowed (access allow or write-only, not ${access})`);
    if (values.length === 0) throw new ConfigError(`${source}: values is empty (leave it out to allow any value, or make the rule read-only)`);
    if (values.length > MAX_RULE_VALUES) throw new ConfigError(`${source}: ${values.length} values, at most ${MAX_RULE_VALUES}`);
    return { read, write: 'values', values: values.map((v) => compileValue(v, source)), source };
  }
  return { read, write: writes ? 'any' : 'deny', values: [], source };
}

/** One policy → one slot. `what` prefixes every message ("annotation policy", "host policy"). */
export function compilePolicy(p: PolicySpec, what: string): Slot {
  const slot: Slot = { default: compileAccess(p.default, undefined, 'default'), exact: new Map(), patterns: [], events: p.events ?? false };
  const seen = new Map<string, string>();
  (p.rules ?? []).forEach((r, i) => {
    const source = `rule ${i + 1}`;
    const rule = compileAccess(r.access, r.values, `${what} ${source}`);
    rule.source = source;
    for (const raw of ([] as string[]).concat(r.name)) {
      const m = parseName(raw, `${what} ${source}`);
      const key = `${m.kind}:${matcherText(m)}`;
      if (seen.has(key)) throw new ConfigError(`${what} ${source}: ${matcherText(m)} is already named by ${seen.get(key)}`);
      seen.set(key, source);
      if (m.kind === 'exact') slot.exact.set(m.name, rule);
      else slot.patterns.push({ matcher: m, rule });
    }
  });
  if (slot.patterns.length > MAX_PATTERNS)
    throw new ConfigError(`${what}: ${slot.patterns.length} wildcard names, at most ${MAX_PATTERNS} (name sysctls exactly where you can)`);
  // Array.prototype.sort is stable: equal specificity keeps the written order.
  slot.patterns.sort((a, b) => literalLength(b.matcher) - literalLength(a.matcher) || (a.matcher.kind === 'star' ? 0 : 1) - (b.matcher.kind === 'star' ? 0 : 1));
  return slot;
}

/** The rule one slot applies to a slash-spelled name. */
export function ruleFor(slot: Slot, name: string): CompiledRule {
  return slot.exact.get(name) ?? slot.patterns.find((p) => matches(p.matcher, name))?.rule ?? slot.default;
}

/**
 * The kernel's reading of a written integer (bpf_strtol, base 0, like proc_dointvec): leading
 * whitespace, optional '-', then 0x hex, 0 octal or decimal; the whole trimmed text or nothing.
 */
export function writtenInteger(text: string): bigint | undefined {
  const m = /^\s*(-?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(text);
  if (!m) return undefined;
  const digits = m[2];
  const mag = /^0[xX]/.test(digits) ? BigInt(digits) : digits.length > 1 && digits[0] === '0' ? BigInt(`0o${digits.slice(1)}`) : BigInt(digits);
  const v = m[1] ? -mag : mag;
  return v < S64_MIN || v > S64_MAX ? undefined : v;
}

export function valueAllowed(rule: CompiledRule, written: string): boolean {
  if (rule.write !== 'values') return rule.write === 'any';
  const text = written.replace(/[ \n\t\r]+$/, '');
  if (Buffer.byteLength(text) > VALUE_MAX) return false;
  const n = writtenInteger(text);
  return rule.values.some((v) => (v.kind === 'string' ? v.str === text : n !== undefined && n >= v.lo && n <= v.hi));
}

export interface SysctlAccess {
  /** Slash spelling. */
  name: string;
  write: boolean;
  /** The written text, for writes. */
  value?: string;
}

export interface Verdict {
  allowed: boolean;
  reason?: 'policy' | 'value' | 'overlong';
  /** Index of the slot that refused, and the rule that decided there. */
  slot?: number;
  rule?: string;
}

/** What the kernel side decides for one access, given the slots in use and the bundle's writes. */
export function evaluate(slots: Slot[], bundle: Map<string, CompiledRule>, a: SysctlAccess): Verdict {
  if (Buffer.byteLength(a.name) > 127) return { allowed: false, reason: 'overlong', slot: 0 };
  const b = bundle.get(a.name);
  if (a.write && b && valueAllowed(b, a.value ?? '')) return { allowed: true };
  for (const [i, slot] of slots.entries()) {
    const r = ruleFor(slot, a.name);
    if (!a.write && !r.read) return { allowed: false, reason: 'policy', slot: i, rule: r.source };
    if (a.write && r.write === 'deny') return { allowed: false, reason: 'policy', slot: i, rule: r.source };
    if (a.write && !valueAllowed(r, a.value ?? '')) return { allowed: false, reason: 'value', slot: i, rule: r.source };
  }
  return { allowed: true };
}

/** The bundle's linux.sysctl, slash-spelled name → value (trailing whitespace removed). */
export function bundleSysctls(sysctl: Record<string, unknown> | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const [raw, value] of Object.entries(sysctl ?? {})) {
    const what = `bundle config.json linux.sysctl[${JSON.stringify(raw)}]`;
    if (typeof value !== 'string') throw new ConfigError(`${what} is not a string`);
    const m = parseName(raw, what);
    if (m.kind !== 'exact') throw new ConfigError(`${what}: not a sysctl name`);
    const v = compileValue(value, what) as { str: string };
    out.set(m.name, v.str);
  }
  return out;
}

/** Those (name, value) pairs as write exceptions: exactly that value, nothing else. */
export function bundleRules(sysctls: Map<string, string>): Map<string, CompiledRule> {
  return new Map([...sysctls].map(([name, str]) => [name, { read: false, write: 'values', values: [{ kind: 'string', str }], source: 'linux.sysctl' }]));
}
