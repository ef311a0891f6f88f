/*
 * What a plugin is: data plus two functions. `parse` turns the annotation into a validated
 * config under the host's limits without touching the kernel (so a bad annotation fails before
 * anything happens); `attach` does the work through the PluginContext, registering every
 * resource it creates so the core can undo it. There is no detach: the record is the detach.
 */
import type { Logger } from 'pino';
import type { Container } from './container';
import type { HostConfig } from './host/config';
import type { Layout } from './state/paths';
import type { Resource } from './state/record';
import type { BpfObject, OpenOptions } from './bpf/object';
import type { SharedLink } from './bpf/shared';

export interface ParseContext<H> {
  host: HostConfig;
  /** This plugin's validated host section (plugins[name] in the host config). */
  section: H;
  /** The container id, for error messages. */
  id: string;
}

export interface CgroupLoad extends OpenOptions {
  /** Maps to pin under the plugin's pin dir as map_<name>. */
  pinMaps?: string[];
  /** Runs after load, before any program is attached: fill policy maps so no access ever sees them empty. */
  beforeAttach?: (obj: BpfObject) => void;
}

export type JournalWhen = 'before' | 'after' | 'later';

export interface PluginContext<H> extends ParseContext<H> {
  container: Container;
  layout: Layout;
  log: Logger;
  /** Pin directory of this plugin for this container (created on first use). */
  pinDir: string;
  /** Creates pinDir (journaling the container's pin dir once, with `also` in the same write) for pins made outside loadIntoCgroup; returns it. */
  ensurePinDir(also?: Resource[]): string;
  /** Results published by plugins that ran earlier (by plugin name). */
  outputs: ReadonlyMap<string, unknown>;
  /**
   * Records `resource` (or several, in one write) in the container's record and runs `create`.
   * `journal` says when the record is written:
   *  - 'before' (the default): before acting, for things only we could have made (our own pins);
   *  - 'after': once created, where a failed create must not be undone (an address that may be
   *    somebody else's);
   *  - 'later': once created, with the record's next write, for what the allocation file already
   *    names by owner (an address claimed there and put on a host device: lib/pipeline.ts undoes
   *    such leftovers of a hook that died before that write). Saves the hook a write.
   */
  acquire<T>(resource: Resource | Resource[], create: () => T, journal?: JournalWhen): T;
  /** Loads a BPF object from build/bpf and attaches all its loaded programs to the container's cgroup. */
  loadIntoCgroup(object: string, opts?: CgroupLoad): BpfObject;
  /**
   * Links the programs of an object loaded once per host (lib/bpf/shared.ts; loaded now if this
   * is the first container) to the container's cgroup, pinning the links in pinDir, and opens the
   * object's `maps` (per-container values go in its cgroup storage map; the caller closes them).
   */
  attachShared(object: string, opts?: { skipPrograms?: string[]; maps?: string[] }): SharedLink;
  /** Throws when the hook's own deadline has passed. */
  checkDeadline(): void;
}

export interface PluginDef<A = unknown, H = { enabled: boolean }, O extends Record<string, unknown> = Record<string, unknown>> {
  name: string;
  /** The annotation that enables it, io.taskwire.<name>. */
  annotation: string;
  summary: string;
  /** Plugins that must run before this one (and be enabled with it). */
  requires?: string[];
  /** Schema id of its host config section. */
  hostSchema: string;
  parse(value: string, ctx: ParseContext<H>): A;
  attach(ctx: PluginContext<H>, config: A): O;
}

export function definePlugin<A, H extends { enabled: boolean }, O extends Record<string, unknown>>(def: PluginDef<A, H, O>): PluginDef<A, H, O> {
  if (def.annotation !== `io.taskwire.${def.name}`) throw new Error(`plugin ${def.name}: annotation must be io.taskwire.${def.name}`);
  return def;
}
