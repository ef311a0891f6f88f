/*
 * The policy language (plugins/twfw/README.md): shape by JSON Schema (oci-config/twfw-policy),
 * meaning here. Every refusal is one line naming the rule ("rule 3 (web): ..."), because a
 * policy with 10,000 rules is only fixable if the message says where.
 *
 * A normalized rule has its direction, action and conditions as numbers and 128-bit prefixes
 * (IPv4 v4-mapped), ready for the compiler; nothing here touches the kernel.
 */
import { ConfigError } from '../../lib/errors';
import { ipBytes, ipFromBytes, parseCidr, parseIp } from '../../lib/net/addr';
import { validate } from '../../lib/schema';
import type { HostConfig } from '../../lib/host/config';
import { isPolicyRef } from '../../lib/host/policy-file';
import { loadPolicyAnnotation, PolicyAccess } from '../../lib/host/annotation-json';
import { DROP, EGRESS, INGRESS, PASS } from './codec';

export type ActionText = 'pass' | 'drop' | 'log' | 'pass+log' | 'drop+log';

export interface RuleSpec {
  name?: string;
  direction: 'ingress' | 'egress';
  action: ActionText;
  proto?: 'tcp' | 'udp' | 'icmp' | 'icmpv6' | 'any';
  ports?: (number | string)[];
  remote?: string[];
  local?: string[];
  set?: string;
  tcpFlags?: string;
  probability?: number;
}

export interface PolicySpec {
  defaults?: { ingress?: ActionText; egress?: ActionText };
  rules?: RuleSpec[];
}

/** A prefix in the 128-bit space: IPv4 a.b.c.d/p is ::ffff:a.b.c.d/(96+p). */
export interface Prefix {
  bits: bigint;
  len: number;
}

export interface NRule {
  /** Position in the combined list (faults first): the rule order. */
  index: number;
  label: string;
  dir: number;
  action: number;
  log: boolean;
  proto: number | null;
  ports: [number, number][] | null;
  remote: Prefix[] | null;
  local: Prefix[] | null;
  set: string | null;
  tcpMask: number;
  tcpValue: number;
  /** 0 = always; else applies when prandom_u32 < prob. */
  prob: number;
}

export interface NPolicy {
  defaults: { ingress: { action: number; log: boolean }; egress: { action: number; log: boolean } };
  rules: NRule[];
}

export interface TwfwLimits {
  maxRules: number;
  maxPrefixes: number;
  maxEntries: number;
}

const PROTO: Record<string, number | null> = { tcp: 6, udp: 17, icmp: 1, icmpv6: 58, any: null };
const FLAGS: Record<string, number> = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10, urg: 0x20 };
const V4_MAPPED = 0xffffn << 32n;
const MASK128 = (1n << 128n) - 1n;

export function maskBits(bits: bigint, len: number): bigint {
  return len === 0 ? 0n : bits & (MASK128 ^ ((1n << BigInt(128 - len)) - 1n));
}

export function addrBits(address: string, family: 4 | 6): bigint {
  if (family === 4) return V4_MAPPED | BigInt(address.split('.').reduce((n, o) => n * 256 + Number(o), 0));
  let v = 0n;
  for (const b of ipBytes(address)) v = (v << 8n) | BigInt(b);
  return v;
}

/** An address (a host prefix) or a prefix, as 128-bit bits (IPv4 v4-mapped) and length. */
export function parsePrefix(text: string, what: string): Prefix {
  const { family, address, prefixLen: len } = text.includes('/') ? parseCidr(text, what) : { ...parseIp(text, what), prefixLen: undefined };
  const bits = addrBits(address, family);
  const full = (family === 4 ? 96 : 0) + (len ?? (family === 4 ? 32 : 128));
  if (maskBits(bits, full) !== bits) throw new ConfigError(`${what}: ${JSON.stringify(text)} has host bits set (did you mean ${prefixText({ bits: maskBits(bits, full), len: full })}?)`);
  return { bits, len: full };
}

export function prefixText(p: Prefix): string {
  const bytes: number[] = [];
  for (let i = 15; i >= 0; i--) bytes.push(Number((p.bits >> BigInt(i * 8)) & 0xffn));
  if (p.len >= 96 && (p.bits >> 32n) === 0xffffn) return `${bytes.slice(12).join('.')}/${p.len - 96}`;
  return `${ipFromBytes(Uint8Array.from(bytes))}/${p.len}`;
}

function parseAction(a: ActionText): { action: number; log: boolean } {
  return { action: a === 'drop' || a === 'drop+log' ? DROP : PASS, log: a.includes('log') };
}

function parsePorts(ports: (number | string)[], what: string): [number, number][] {
  return ports.map((p) => {
    const [lo, hi] = typeof p === 'number' ? [p, p] : p.split('-').map(Number);
    if (hi > 65535 || lo > 65535) throw new ConfigError(`${what}: port ${p} is over 65535`);
    if (lo > hi) throw new ConfigError(`${what}: port range ${p} is empty (low end above high end)`);
    return [lo, hi];
  });
}

function parseFlags(text: string): { mask: number; value: number } {
  const parts = text === 'new' ? ['syn', '!ack'] : text.split(',');
  let mask = 0;
  let value = 0;
  for (const p of parts) {
    const neg = p.startsWith('!');
    const bit = FLAGS[neg ? p.slice(1) : p];
    mask |= bit;
    if (!neg) value |= bit;
  }
  return { mask, value };
}

/** Turns rule specs into normalized rules (indexes from `first`), refusing nonsense by rule. */
export function normalizeRules(specs: RuleSpec[], first: number, labelOf: (i: number, r: RuleSpec) => string): NRule[] {
  return specs.map((r, i) => {
    const label = labelOf(i, r);
    const what = `rule ${label}`;
    const proto = PROTO[r.proto ?? 'any'];
    if (r.ports && proto !== 6 && proto !== 17) throw new ConfigError(`${what}: ports need proto tcp or udp`);
    if (r.tcpFlags && proto !== 6) throw new ConfigError(`${what}: tcpFlags need proto tcp`);
    if (r.set !== undefined && r.remote) throw new ConfigError(`${what}: give either remote or set, not both`);
    if (r.set !== undefined && (r.local || r.ports)) throw new ConfigError(`${what}: a set rule takes its addresses and ports from the set; remove local/ports`);
    const { action, log } = parseAction(r.action);
    if (r.probability !== undefined && action !== DROP) throw new ConfigError(`${what}: probability is for drop rules only`);
    const flags = r.tcpFlags ? parseFlags(r.tcpFlags) : { mask: 0, value: 0 };
    const prob = r.probability === undefined || r.probability >= 1 ? 0 : Math.max(1, Math.floor(r.probability * 2 ** 32));
    return {
      index: first + i,
      label,
      dir: r.direction === 'ingress' ? INGRESS : EGRESS,
      action,
      log,
      proto,
      ports: r.ports ? parsePorts(r.ports, what) : null,
      remote: r.remote ? r.remote.map((p) => parsePrefix(p, `${what} remote`)) : null,
      local: r.local ? r.local.map((p) => parsePrefix(p, `${what} local`)) : null,
      set: r.set ?? null,
      tcpMask: flags.mask,
      tcpValue: flags.value,
      prob,
    };
  });
}

/** Schema errors point at /rules/N/...: say "rule N (name)" instead. */
export function validatePolicy(raw: unknown, what: string): PolicySpec {
  try {
    return validate<PolicySpec>('taskwire:twfw-policy', raw, what);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const m = / at \/rules\/(\d+)(\S*) /.exec(err.message);
    if (!m) throw err;
    const rule = (raw as PolicySpec).rules?.[Number(m[1])];
    const field = m[2] ? ` field ${m[2].slice(1)}` : '';
    throw new ConfigError(`${what}: rule ${ruleLabel(Number(m[1]), rule)}${field} ${err.message.slice(err.message.indexOf(m[0]) + m[0].length)}`);
  }
}

export function ruleLabel(i: number, r: { name?: string } | undefined): string {
  return r?.name ? `${i} (${r.name})` : String(i);
}

export function normalizePolicy(spec: PolicySpec, faults: RuleSpec[] = []): NPolicy {
  const rules = [
    ...normalizeRules(faults, 0, (i, r) => r.name ?? `fault#${i}`),
    ...normalizeRules(spec.rules ?? [], faults.length, (i, r) => ruleLabel(i, r)),
  ];
  return {
    defaults: {
      ingress: parseAction(spec.defaults?.ingress ?? 'pass'),
      egress: parseAction(spec.defaults?.egress ?? 'pass'),
    },
    rules,
  };
}

export interface PolicySource {
  /** "inline" or "@NAME". */
  source: string;
  spec: PolicySpec;
}

/**
 * The annotation (or a `fw apply` argument): inline JSON or @NAME, under the host's `inline` and
 * `policies` controls (lib/host/annotation-json.ts, shared with sysctl).
 */
export function loadPolicy(value: string, host: HostConfig, access: PolicyAccess): PolicySource {
  const spec = loadPolicyAnnotation(value, { host, section: access, schemaId: 'taskwire:twfw-policy', what: 'policy', check: validatePolicy });
  return { source: isPolicyRef(value) ? value.trim() : 'inline', spec };
}
