/*
 * What the CLI does with a running container's firewall: read counters, decode events, change
 * the policy or its faults. Kept apart from the commands so tests drive the same code.
 */
import { existsSync, readdirSync } from 'node:fs';
import { joinPath } from '../../lib/path';
import { BpfMap } from '../../lib/bpf/map';
import { u32 } from '../../lib/bpf/codec';
import { ConfigError, TaskwireError } from '../../lib/errors';
import type { HostConfig } from '../../lib/host/config';
import { decodeId, Layout, pluginPinDir } from '../../lib/state/paths';
import { applyLive, PLUGIN, readState, TwfwSection, TwfwState } from './apply';
import { bucket, counter, event, LAYER_SOCKET, MAPS, PASS } from './codec';
import { loadPolicy, RuleSpec } from './policy';
import { compileFor } from './index';
import { validate } from '../../lib/schema';
import { monotonicToIso } from '../../lib/events';

export function twfwSection(host: HostConfig): TwfwSection {
  const raw = host.plugins[PLUGIN];
  if (!raw?.enabled) throw new ConfigError(`plugin twfw is not enabled in the host config (${host.path ?? 'no host config file'})`);
  return validate<TwfwSection>('taskwire:twfw/host', { ...raw }, 'host config plugins["twfw"]');
}

export interface RuleStats {
  slot: number;
  rule: string;
  packets: bigint;
  bytes: bigint;
}

export interface FwStats {
  id: string;
  generation: number;
  source: string;
  faults: number;
  suppressedEvents: bigint;
  rules: RuleStats[];
}

function sumPerCpu<T extends Record<string, bigint>>(vals: T[] | undefined, fields: (keyof T)[]): Record<keyof T, bigint> {
  const out = Object.fromEntries(fields.map((f) => [f, 0n])) as Record<keyof T, bigint>;
  for (const v of vals ?? []) for (const f of fields) out[f] += v[f];
  return out;
}

export function fwStats(l: Layout, id: string): FwStats {
  const st = mustState(l, id);
  const pinDir = pluginPinDir(l, id, PLUGIN);
  const cnt = BpfMap.openPinned(joinPath(pinDir, `map_${MAPS.cnt}`));
  const bkt = BpfMap.openPinned(joinPath(pinDir, `map_${MAPS.bucket}`));
  try {
    const rules = st.labels.map((rule, slot) => {
      const s = sumPerCpu(cnt.lookupPerCpu(u32, slot, counter), ['packets', 'bytes']);
      return { slot, rule, packets: s.packets, bytes: s.bytes };
    });
    const b = sumPerCpu(bkt.lookupPerCpu(u32, 0, bucket), ['suppressed']);
    return { id, generation: st.generation, source: st.source, faults: st.faults.length, suppressedEvents: b.suppressed, rules };
  } finally {
    cnt.close();
    bkt.close();
  }
}

function mustState(l: Layout, id: string): TwfwState {
  const st = readState(l, id);
  if (!st) throw new TaskwireError('STATE', `container ${id} has no twfw policy (not running with io.taskwire.twfw?)`);
  return st;
}

/** `fw apply ID POLICY`: POLICY is inline JSON or @NAME, as in the annotation; faults stay. */
export function fwApply(host: HostConfig, l: Layout, id: string, value: string): TwfwState {
  const section = twfwSection(host);
  const { source, spec } = loadPolicy(value, host, section);
  return applyLive(l, section, id, (cur) => ({ source, policy: spec, faults: cur.faults, compiled: compileFor(spec, cur.faults, section, l) }));
}

export interface FaultSpec {
  dropPercent: number;
  direction?: 'ingress' | 'egress' | 'both';
  proto?: RuleSpec['proto'];
  ports?: (number | string)[];
  remote?: string[];
}

/** Fault rules go before the policy's rules: they act first and, when the dice say no, pass on. */
export function faultRules(f: FaultSpec, n: number): RuleSpec[] {
  if (!(f.dropPercent > 0 && f.dropPercent <= 100)) throw new ConfigError(`--drop ${f.dropPercent}: must be a percentage in (0, 100]`);
  const dirs = f.direction === 'both' || !f.direction ? (['ingress', 'egress'] as const) : [f.direction];
  return dirs.map((direction) => ({
    name: `fault#${n}${dirs.length > 1 ? `-${direction}` : ''}`,
    direction,
    action: 'drop' as const,
    probability: f.dropPercent / 100,
    ...(f.proto ? { proto: f.proto } : {}),
    ...(f.ports ? { ports: f.ports } : {}),
    ...(f.remote ? { remote: f.remote } : {}),
  }));
}

export function faultAdd(host: HostConfig, l: Layout, id: string, f: FaultSpec): TwfwState {
  const section = twfwSection(host);
  return applyLive(l, section, id, (cur) => {
    const n = new Set(cur.faults.map((r) => r.name!.replace(/-(ingress|egress)$/, ''))).size + 1;
    const faults = [...cur.faults, ...faultRules(f, n)];
    return { source: cur.source, policy: cur.policy, faults, compiled: compileFor(cur.policy, faults, section, l) };
  });
}

export function faultClear(host: HostConfig, l: Layout, id: string): TwfwState {
  const section = twfwSection(host);
  return applyLive(l, section, id, (cur) => ({ source: cur.source, policy: cur.policy, faults: [], compiled: compileFor(cur.policy, [], section, l) }));
}

/** Containers with a twfw state file (monitor without an id follows them all). */
export function twfwContainers(l: Layout): string[] {
  const dir = joinPath(l.runDir, 'twfw');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json') && f !== 'sets.json')
    .map((f) => decodeId(f.slice(0, -5)));
}

export const eventsPath = (l: Layout, id: string) => joinPath(pluginPinDir(l, id, PLUGIN), `map_${MAPS.events}`);

const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6' };
const FLAG_NAMES = ['fin', 'syn', 'rst', 'psh', 'ack', 'urg'];

export interface FwEvent {
  time: string;
  container: string;
  direction: 'ingress' | 'egress';
  verdict: 'pass' | 'drop';
  layer: 'packet' | 'socket';
  proto: string;
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
  tcpFlags?: string;
  len: number;
  rule: string;
  slot: number;
}

export function decodeEvent(buf: Buffer, container: string, labels: string[]): FwEvent {
  const e = event.decode(buf);
  const flags = FLAG_NAMES.filter((_, i) => e.tcp_flags & (1 << i)).join(',');
  return {
    time: monotonicToIso(e.ts_ns),
    container,
    direction: e.dir === 0 ? 'ingress' : 'egress',
    verdict: e.verdict === PASS ? 'pass' : 'drop',
    layer: e.layer === LAYER_SOCKET ? 'socket' : 'packet',
    proto: PROTO_NAMES[e.proto] ?? String(e.proto),
    local: e.laddr,
    localPort: e.lport,
    remote: e.raddr,
    remotePort: e.rport,
    ...(e.proto === 6 ? { tcpFlags: flags } : {}),
    len: e.len,
    rule: labels[e.slot] ?? `slot ${e.slot}`,
    slot: e.slot,
  };
}

export function formatEvent(e: FwEvent): string {
  const ep = (a: string, p: number) => (a.includes(':') ? `[${a}]` : a) + (p ? `:${p}` : '');
  const arrow = e.direction === 'egress' ? `${ep(e.local, e.localPort)} -> ${ep(e.remote, e.remotePort)}` : `${ep(e.remote, e.remotePort)} -> ${ep(e.local, e.localPort)}`;
  return `${e.time} ${e.container} ${e.direction} ${e.verdict.toUpperCase()} ${e.proto}${e.tcpFlags ? `[${e.tcpFlags}]` : ''} ${arrow} rule ${e.rule}${e.layer === 'socket' ? ' (at connect/sendmsg)' : ''}`;
}
