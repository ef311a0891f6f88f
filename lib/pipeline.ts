/*
 * The path of one container through taskwire:
 *   select  annotations + host config → validated plugin configs, nothing touched yet
 *   create  plugins in order; every resource journaled in the record; any failure undoes all
 *   destroy the record, undone newest first; idempotent; unknown ids succeed
 */
import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import type { Logger } from 'pino';
import { ConfigError, TaskwireError } from './errors';
import type { Container } from './container';
import type { HostConfig } from './host/config';
import type { CgroupLoad, JournalWhen, PluginContext, PluginDef } from './plugin';
import { releaseAll } from './resources';
import { validate } from './schema';
import { isoTime } from './time';
import { containerLockPath, containerPinDir, containersLockPath, Layout, pluginPinDir } from './state/paths';
import { withFileLock, withTransientLock } from './state/lock';
import { ContainerRecord, readRecord, removeRecord, Resource, writeRecord } from './state/record';
import { ANNOTATION_PREFIX, registry, taskwireAnnotations } from '../plugins/index';
import type { BpfObject } from './bpf/object';

export interface Selected {
  def: PluginDef<any, any, any>;
  value: string;
  config: unknown;
  section: { enabled: boolean };
}

/** Annotations → validated configs, in execution order. Throws ConfigError naming the annotation. */
export function selectPlugins(annotations: Record<string, string>, host: HostConfig, id: string): Selected[] {
  const keys = new Set(taskwireAnnotations(annotations));
  for (const k of keys) {
    if (!registry.some((e) => ANNOTATION_PREFIX + e.name === k))
      throw new ConfigError(`annotation ${k}: no such taskwire plugin (known: ${registry.map((e) => e.name).join(', ')})`);
  }
  const selected: Selected[] = [];
  for (const entry of registry) {
    const key = ANNOTATION_PREFIX + entry.name;
    const { applyToAll, ...raw } = host.plugins[entry.name] ?? { enabled: false };
    // The host's applyToAll is the value of an annotation the container did not bring.
    const value = keys.has(key) ? annotations[key] : raw.enabled ? applyToAll : undefined;
    if (value === undefined) continue;
    if (!raw.enabled) throw new ConfigError(`annotation ${key}: plugin ${entry.name} is not enabled on this host (${host.path ?? 'no host config file'})`);
    const def = entry.load();
    const section = validate<{ enabled: boolean }>(def.hostSchema, raw, `host config plugins["${entry.name}"]`);
    for (const r of def.requires ?? [])
      if (!selected.some((s) => s.def.name === r)) throw new ConfigError(`annotation ${key}: plugin ${entry.name} requires ${ANNOTATION_PREFIX}${r} as well`);
    let config: unknown;
    try {
      config = def.parse(value, { host, section, id });
    } catch (err) {
      if (err instanceof ConfigError) throw new ConfigError(`annotation ${key}: ${err.message}`);
      throw err;
    }
    selected.push({ def, value, config, section });
  }
  return selected;
}

export interface CreateOptions {
  container: Container;
  host: HostConfig;
  log: Logger;
  selected: Selected[];
  stage: string;
  deadline: number;
}

export function layoutOf(host: HostConfig): Layout {
  return { bpffs: host.bpffs, runDir: host.runDir };
}

/**
 * The locks a hook holds while it creates or destroys container `id`: the containers lock shared
 * (gc holds it exclusive), then the id's own lock (paths.ts containerLockPath).
 */
function withContainerLocks<T>(layout: Layout, id: string, fn: () => T): T {
  return withFileLock(containersLockPath(layout), () => withTransientLock(containerLockPath(layout, id), fn), 'shared');
}

export function createContainer(o: CreateOptions): ContainerRecord {
  const layout = layoutOf(o.host);
  return withContainerLocks(layout, o.container.id, () => create(layout, o));
}

function create(layout: Layout, o: CreateOptions): ContainerRecord {
  const { container: c } = o;
  const stale = readRecord(layout, c.id);
  // Two runtimes (or two runc --root) may each run a container of this id on one host; the
  // recorded process, not its cgroup, tells whether the record is this very container's.
  if (stale && (stale.pid !== c.pid || stale.pidStart !== c.pidStart) && stillRuns(stale))
    throw new TaskwireError('STATE', `the id is taken: a running container has it (process ${stale.pid} in cgroup ${stale.cgroup}, since ${stale.createdAt}); delete that one first`);
  if (stale) {
    o.log.warn({ stale: stale.createdAt }, 'a record of an earlier container with this id remained; undoing it first');
    // What could not be undone stays in that record for gc; a new record would hide it.
    const left = destroyHeld(layout, c.id, o.log).errors;
    if (left.length)
      throw new TaskwireError('STATE', `an earlier container with id ${c.id} left state that could not be undone (${left.map((e) => e.message).join('; ')}); see taskwire gc`);
  }
  const rec: ContainerRecord = {
    version: 1,
    id: c.id,
    createdAt: isoTime(),
    stage: o.stage,
    pid: c.pid,
    bundle: c.bundle,
    cgroup: c.cgroupDir,
    cgroupId: c.cgroupId.toString(),
    pidStart: c.pidStart,
    netns: c.netnsId,
    complete: false,
    plugins: [],
    resources: [],
  };
  const outputs = new Map<string, unknown>();
  const objects: BpfObject[] = [];
  let cgroupFd = -1;
  const openCgroup = (): number => (cgroupFd = cgroupFd < 0 ? openSync(c.cgroupDir, 'r') : cgroupFd);
  let pinRootMade = false;

  const acquire = <T>(resource: Resource | Resource[], create: () => T, when: JournalWhen = 'before'): T => {
    const list = Array.isArray(resource) ? resource : [resource];
    if (when === 'before') {
      rec.resources.push(...list);
      writeRecord(layout, rec);
      return create();
    }
    const out = create();
    rec.resources.push(...list);
    if (when === 'after') writeRecord(layout, rec);
    return out;
  };

  // Each write is a temp file, fsync, rename. The first comes before anything is done: `taskwire
  // gc` takes an address or pins without a record for leftovers of a dead container, so the
  // record must exist before the first address is reserved. The last plugin's summary goes out
  // with `complete`.
  try {
    writeRecord(layout, rec);
    for (const [i, s] of o.selected.entries()) {
      const pinDir = pluginPinDir(layout, c.id, s.def.name);
      // `also`: resources to journal with the pin dir, in the same write (or on their own once it exists).
      const ensurePinDir = (also: Resource[] = []): string => {
        if (!pinRootMade) {
          const { ensurePinRoot } = require('./host/discovery') as typeof import('./host/discovery');
          ensurePinRoot(layout);
          acquire([{ kind: 'pin-dir', path: containerPinDir(layout, c.id) }, ...also], () => mkdirSync(containerPinDir(layout, c.id), { mode: 0o700 }));
          pinRootMade = true;
        } else if (also.length) acquire(also, () => undefined);
        if (!existsSync(pinDir)) mkdirSync(pinDir, { mode: 0o700 });
        return pinDir;
      };
      const ctx: PluginContext<any> = {
        host: o.host,
        section: s.section,
        id: c.id,
        container: c,
        layout,
        log: o.log.child({ plugin: s.def.name }),
        pinDir,
        outputs,
        acquire,
        ensurePinDir,
        checkDeadline: () => {
          if (Date.now() > o.deadline) throw new TaskwireError('SYSTEM', `hook deadline of ${o.host.hookTimeoutMs} ms passed (in ${s.def.name})`);
        },
        loadIntoCgroup: (object: string, opts: CgroupLoad = {}) => {
          ensurePinDir();
          const { loadIntoCgroup } = require('./bpf/cgroup') as typeof import('./bpf/cgroup');
          const obj = loadIntoCgroup(object, openCgroup(), pinDir, opts);
          objects.push(obj);
          return obj;
        },
        attachShared: (object: string, opts: { skipPrograms?: string[]; maps?: string[] } = {}) => {
          const { linkShared } = require('./bpf/shared') as typeof import('./bpf/shared');
          return linkShared(layout, object, {
            cgroupFd: openCgroup(),
            pinDir,
            skip: opts.skipPrograms,
            maps: opts.maps,
            // The container's reference to the set, journaled (with the pin dir the links go in)
            // before anything is linked: gc never unloads a set a record names.
            journal: (dir) => ensurePinDir([{ kind: 'shared-object', path: dir }]),
          });
        },
      };
      ctx.checkDeadline();
      const summary = s.def.attach(ctx, s.config);
      outputs.set(s.def.name, summary);
      rec.plugins.push({ name: s.def.name, summary });
      rec.complete = i === o.selected.length - 1;
      writeRecord(layout, rec);
      o.log.info({ plugin: s.def.name, summary }, 'attached');
    }
    if (!rec.complete) {
      rec.complete = true; // no plugin selected
      writeRecord(layout, rec);
    }
    return rec;
  } catch (err) {
    o.log.error({ err }, 'create failed; undoing');
    const left = [...releaseAll(rec.resources, { layout, log: o.log }), ...releaseUnjournaled(layout, c.id, o.log)];
    // What could not be undone stays for poststop and gc, with the resources journaled 'later'.
    if (left.length === 0) removeRecord(layout, c.id);
    else {
      try {
        writeRecord(layout, rec);
      } catch (e) {
        o.log.error({ err: e }, 'could not journal what remains to undo');
      }
    }
    throw err;
  } finally {
    for (const obj of objects) obj.close();
    if (cgroupFd >= 0) closeSync(cgroupFd);
  }
}

export interface DestroyResult {
  found: boolean;
  /** Left alone: the recorded container process still runs (DestroyOptions.unlessRunning). */
  running?: boolean;
  errors: Error[];
}

export interface DestroyOptions {
  /**
   * poststop's rule: a runtime runs poststop once the container is deleted, its process gone. A
   * record whose container process still runs is a newer container's under the same id (runc
   * removes a container's state before its poststop, so `runc run` may reuse the id meanwhile):
   * it is left alone, for that container's own poststop.
   */
  unlessRunning?: boolean;
}

/** Undoes everything recorded for `id`. Safe to call twice and for ids we never saw. */
export function destroyContainer(layout: Layout, id: string, log: Logger, opts: DestroyOptions = {}): DestroyResult {
  return withContainerLocks(layout, id, () => destroyHeld(layout, id, log, opts));
}

/**
 * destroyContainer for a caller holding the containers lock (either way): flock on a second
 * descriptor of the same file would wait for the caller's own exclusive hold.
 */
export function destroyHeld(layout: Layout, id: string, log: Logger, opts: DestroyOptions = {}): DestroyResult {
  const rec = readRecord(layout, id);
  if (rec && opts.unlessRunning && stillRuns(rec)) {
    log.warn({ pid: rec.pid, cgroup: rec.cgroup, createdAt: rec.createdAt }, 'the container recorded under this id still runs: a newer container under a reused id; left alone');
    return { found: true, running: true, errors: [] };
  }
  const pinDir: Resource = { kind: 'pin-dir', path: containerPinDir(layout, id) };
  const errors = releaseAll([pinDir, ...(rec?.resources ?? [])], { layout, log });
  // A complete record names every allocation: the sweep, which reads all of the host's, is for
  // what a hook left half done (or a record that is gone).
  if (!rec?.complete) errors.push(...releaseUnjournaled(layout, id, log));
  if (errors.length === 0) removeRecord(layout, id);
  return { found: rec !== undefined, errors };
}

/** lib/container.ts recordedProcessRuns, loaded only when there is a record to ask about. */
function stillRuns(rec: ContainerRecord): boolean {
  if (!rec.pid || !existsSync(`/proc/${rec.pid}`)) return false; // the usual poststop: nothing more to load
  const { recordedProcessRuns } = require('./container') as typeof import('./container');
  return recordedProcessRuns(rec);
}

/**
 * Addresses allocated but never journaled (claimAddresses journals allocations and their
 * placement with the record's next write; a hook killed before it leaves them): the allocation
 * file names the owner and the device, so nothing of ours outlives the container.
 */
function releaseUnjournaled(layout: Layout, id: string, log: Logger): Error[] {
  const { ipamEntries } = require('./state/ipam') as typeof import('./state/ipam');
  const { hostPrefixLen } = require('./net/addr') as typeof import('./net/addr');
  const orphans = Object.entries(ipamEntries(layout))
    .filter(([, e]) => e.owner === id)
    .flatMap(([address, e]): Resource[] => [
      { kind: 'ipam', address, owner: id },
      { kind: 'address', device: e.device, address, prefixLen: hostPrefixLen(address) },
    ]);
  return releaseAll(orphans, { layout, log });
}
