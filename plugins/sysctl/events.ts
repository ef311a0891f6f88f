/*
 * Denied sysctl accesses as events, for `taskwire monitor`: each container with events on has
 * the ring buffer <bpffs>/taskwire/<enc id>/sysctl/map_tw_sc_events (one struct tw_sysctl_event
 * per record). A reader opens it with lib/bpf/ringbuf.ts and decodes records here.
 */
import { DENY_REASONS, EVENTS_MAP, sysctlEvent } from './codec';
import { toDots } from './names';

export { EVENTS_MAP };
/** File name of the ring buffer's pin inside the plugin's pin dir. */
export const EVENTS_PIN = `map_${EVENTS_MAP}`;
export const PLUGIN_DIR = 'sysctl';

export interface SysctlEvent {
  kind: 'sysctl';
  /** CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns). */
  monotonicNs: bigint;
  cgroupId: bigint;
  pid: number;
  comm: string;
  op: 'read' | 'write';
  /** Dotted spelling where unambiguous, else the kernel's slash spelling. */
  name: string;
  /** The written text (start of it), for writes. */
  value?: string;
  verdict: 'denied';
  reason: string;
  /** Which policy refused: 0 the first (host, or the annotation's under "replace"), 1 the annotation's under "tighten". */
  policy: number;
}

export const EVENT_SIZE = sysctlEvent.size;

export function decodeSysctlEvent(buf: Buffer): SysctlEvent {
  if (buf.length < sysctlEvent.size) throw new Error(`sysctl event of ${buf.length} bytes, ${sysctlEvent.size} expected`);
  const e = sysctlEvent.decode(buf);
  return {
    kind: 'sysctl',
    monotonicNs: e.ts_ns,
    cgroupId: e.cgroup_id,
    pid: e.pid,
    comm: e.comm,
    op: e.write ? 'write' : 'read',
    name: toDots(e.name),
    ...(e.write ? { value: e.value.replace(/\s+$/, '') } : {}),
    verdict: 'denied',
    reason: DENY_REASONS[e.reason] ?? `reason ${e.reason}`,
    policy: e.slot,
  };
}

/** One line of text: "sysctl write net.ipv4.ip_forward=1 denied (policy) pid 42 (sh)". */
export function formatSysctlEvent(e: Pick<SysctlEvent, 'op' | 'name' | 'value' | 'reason' | 'pid' | 'comm'>): string {
  const what = e.op === 'write' ? `${e.name}=${JSON.stringify(e.value ?? '')}` : e.name;
  return `sysctl ${e.op} ${what} denied (${e.reason}) pid ${e.pid} (${e.comm})`;
}
