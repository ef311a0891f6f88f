/*
 * Event sources: a plugin that logs to a pinned BPF ring buffer per container describes it here,
 * and `taskwire monitor` follows every source as one stream. A source knows which containers have
 * its ring, where the pin is, how to decode a record and how to print it on one line; the reader
 * (lib/bpf/ringbuf.ts), the container scan and the output are the monitor's.
 *
 * decoder() is asked again on every scan (about once a second), so a source whose decoding depends
 * on state that changes while the container runs (twfw's rule labels after `fw apply`) reads it
 * there, not per record.
 */
import { existsSync, readdirSync } from 'node:fs';
import { joinPath } from './path';
import { decodeId, Layout, pinRoot } from './state/paths';

/** What every decoded event carries; sources add their own fields after these. */
export interface MonitorEvent {
  /** ISO 8601 wall clock. */
  time: string;
  container: string;
  /** The plugin that logged it (the source's name, what `monitor --plugin` filters on). */
  plugin: string;
  /** What happened, within the plugin (twfw: "log", sysctl: "denied"). */
  kind: string;
}

export interface EventSource<E extends MonitorEvent = MonitorEvent> {
  plugin: string;
  /** Containers that may have this source's ring now (a ring pinned later is picked up next scan). */
  containers(l: Layout): string[];
  ringPath(l: Layout, id: string): string;
  /** A decoder for one container's records, or undefined while the container is not ready. */
  decoder(l: Layout, id: string): ((data: Buffer) => E) | undefined;
  /** One line of text, starting with time and container. */
  format(e: E): string;
}

/** Checks a source's shape against the interface while keeping its own event type. */
export const defineEventSource = <E extends MonitorEvent>(s: EventSource<E>): EventSource<E> => s;

/*
 * bpf_ktime_get_ns is CLOCK_MONOTONIC, as is process.hrtime: the offset to the wall clock is
 * measured once per process, so events of one run are ordered as the kernel saw them.
 */
const wallOffsetNs = BigInt(Date.now()) * 1000000n - process.hrtime.bigint();

export function monotonicToIso(ns: bigint): string {
  return new Date(Number((ns + wallOffsetNs) / 1000000n)).toISOString();
}

/** Containers whose pin dir holds <plugin>/<pin> (for sources without a state file of their own). */
export function containersWithPin(l: Layout, plugin: string, pin: string): string[] {
  const root = pinRoot(l);
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((d) => !d.startsWith('_') && existsSync(joinPath(root, d, plugin, pin)))
    .map(decodeId);
}
