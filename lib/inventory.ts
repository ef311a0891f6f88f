/*
 * What taskwire manages on this host, read from the records and the pins: the data behind
 * `taskwire ls` and `taskwire gc`. A container is alive while its cgroup directory exists with
 * the same inode (cgroup id) it had at create time (a reused name is a different cgroup) and has
 * processes (lib/container.ts recordedState).
 */
import { existsSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import { relative } from 'node:path';
import { joinPath } from './path';
import type { Logger } from 'pino';
import { isLoaderTemp, sharedObjectsDir, unloadShared } from './bpf/shared';
import { destroyHeld } from './pipeline';
import { recordedState } from './container';
import { abandonedTempFiles, listDir, processAlive, tempWriter } from './state/atomic';
import { ipamEntries } from './state/ipam';
import { releaseAll } from './resources';
import { containerLocksDir, containerPinDir, containersLockPath, decodeId, Layout, pinRoot } from './state/paths';
import { isLockHeld, withFileLock } from './state/lock';
import { ContainerRecord, DamagedRecord, listRecords, readRecord } from './state/record';

export interface ContainerView {
  id: string;
  alive: boolean;
  /** lib/container.ts recordedState: running, stopped (its cgroup empty) or gone. */
  state: 'running' | 'stopped' | 'gone';
  complete: boolean;
  createdAt: string;
  cgroup: string;
  cgroupId: string;
  plugins: { name: string; summary: Record<string, unknown> }[];
  pins: string[];
  /** Host-wide loaded objects (lib/bpf/shared.ts) its programs are linked from. */
  sharedObjects: string[];
}

/** The host-wide loaded objects (lib/bpf/shared.ts) a record says its container links. */
export const sharedObjectsOf = (r: ContainerRecord): string[] => r.resources.filter((x) => x.kind === 'shared-object').map((x) => x.path as string);
const liveSharedObjects = (records: ContainerRecord[]) => new Set(records.filter(isAlive).flatMap(sharedObjectsOf));

const isAlive = (rec: ContainerRecord): boolean => recordedState(rec) === 'running';

/** A container's pins, relative to its pin dir (plugin/link_x, plugin/map_y), sorted. */
export function pinsOf(layout: Layout, id: string): string[] {
  const dir = containerPinDir(layout, id);
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => !d.isDirectory())
    .map((d) => joinPath(d.parentPath ?? (d as any).path, d.name).slice(dir.length + 1))
    .sort();
}

export function listContainers(layout: Layout, damaged?: DamagedRecord[]): ContainerView[] {
  return listRecords(layout, damaged).map((r) => {
    const state = recordedState(r);
    return {
      id: r.id,
      alive: state === 'running',
      state,
      complete: r.complete,
      createdAt: r.createdAt,
      cgroup: r.cgroup,
      cgroupId: r.cgroupId,
      plugins: r.plugins,
      pins: pinsOf(layout, r.id),
      sharedObjects: sharedObjectsOf(r),
    };
  });
}

export interface GcItem {
  id: string;
  why: string;
}

/** What gc would remove: records of dead containers, pins and addresses without a record. */
export function gcCandidates(layout: Layout): GcItem[] {
  return survey(layout).items;
}

/** gcCandidates, and the damaged records gc reports instead of collecting anything of theirs. */
function survey(layout: Layout): { items: GcItem[]; damaged: DamagedRecord[] } {
  const items: GcItem[] = [];
  // Pins and allocations are read before the records: a hook writes its record before it makes
  // either, so one starting meanwhile has its record in the list below.
  const dirs = listDir(pinRoot(layout)).filter((n) => !n.startsWith('_'));
  const allocations = Object.entries(ipamEntries(layout));
  const damaged: DamagedRecord[] = [];
  const records = listRecords(layout, damaged);
  // A damaged record's container may be alive: its pins and addresses are not orphans.
  const known = new Set([...records, ...damaged].map((r) => r.id));
  const running: ContainerRecord[] = [];
  for (const r of records) {
    const state = recordedState(r);
    if (state === 'running') running.push(r);
    else items.push({ id: r.id, why: state === 'gone' ? `cgroup ${r.cgroup} is gone` : `cgroup ${r.cgroup} has no process left` });
  }
  for (const enc of dirs) {
    const id = decodeId(enc);
    if (!known.has(id)) items.push({ id, why: 'pins without a record' });
  }
  for (const [address, e] of allocations)
    if (!known.has(e.owner) && !items.some((i) => i.id === e.owner)) items.push({ id: e.owner, why: `address ${address} without a record` });
  // Loaded objects stay for the next container (lib/bpf/shared.ts); gc unloads those no live
  // container is linked from, such as earlier builds. After the dead, like the netns pins.
  const used = new Set(running.flatMap(sharedObjectsOf));
  const sets = listDir(sharedObjectsDir(layout)).filter((n) => !isLoaderTemp(n));
  // What a damaged record links is unknown: no set is unloaded while one is there.
  if (!damaged.length)
    for (const n of sets)
      if (!used.has(joinPath(sharedObjectsDir(layout), n))) items.push({ id: `${SHARED_OBJECT_ITEM}${n}`, why: 'loaded BPF object no live container is linked from' });
  // Host-wide pins outlive their last user when its poststop never ran; last, after the dead.
  const netnsShared = require('../plugins/netns/shared') as typeof import('../plugins/netns/shared');
  if (existsSync(netnsShared.sharedDir(layout)) && netnsShared.netnsUsers(layout).length === 0)
    items.push({ id: NETNS_SHARED_ITEM, why: 'netns endpoint map and uplink links with no live netns container' });
  // Half-written files of hooks killed before their rename (lib/state/atomic.ts), in the run dir
  // and the directories in it (records, allocations, plugins' state).
  for (const dir of runDirs(layout))
    for (const t of abandonedTempFiles(dir)) items.push({ id: `${TEMP_ITEM}${relative(layout.runDir, t.path)}`, why: `temp file of process ${t.pid}, which is gone` });
  // Hooks unlink their id lock as they let go of it: one there now is held by a hook at work
  // (not listed), or was left by a hook killed holding it (the kernel let go of its lock). gc
  // removes it under the containers lock, when no hook can be taking it.
  for (const name of listDir(containerLocksDir(layout)))
    if (!isLockHeld(joinPath(containerLocksDir(layout), name))) items.push({ id: `${LOCK_ITEM}${name}`, why: 'id lock file left by a hook killed while holding it' });
  return { items, damaged };
}

function runDirs(layout: Layout): string[] {
  try {
    return [layout.runDir, ...readdirSync(layout.runDir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => joinPath(layout.runDir, d.name))];
  } catch {
    return [];
  }
}

const NETNS_SHARED_ITEM = '_shared/netns';
const SHARED_OBJECT_ITEM = '_shared/objects/';
const TEMP_ITEM = '_tmp/';
const LOCK_ITEM = '_locks/';

export function gc(layout: Layout, log: Logger, dryRun: boolean): { removed: GcItem[]; failed: { id: string; error: string }[] } {
  const removed: GcItem[] = [];
  const failed: { id: string; error: string }[] = [];
  const { items, damaged } = survey(layout);
  // For a person to look at, dry run or not.
  for (const d of damaged)
    failed.push({ id: `_damaged/${d.id}`, error: `record ${d.path} ${d.reason === 'damaged' ? 'is damaged' : 'cannot be read'} (${d.error}); left alone: repair it (once it is removed, gc takes whatever is under this id)` });
  for (const item of items) {
    if (dryRun) {
      removed.push(item);
      continue;
    }
    // One item that cannot be collected (a damaged record, say) must not stop the others.
    let errors: Error[] | null;
    try {
      errors = collect(layout, log, item);
    } catch (err) {
      errors = [err as Error];
    }
    if (errors === null) continue;
    if (errors.length) failed.push({ id: item.id, error: errors.map((e) => e.message).join('; ') });
    else removed.push(item);
  }
  return { removed, failed };
}

/** Removes one candidate if it still is one: the errors, or null when it no longer is. */
function collect(layout: Layout, log: Logger, item: GcItem): Error[] | null {
  if (item.id.startsWith(SHARED_OBJECT_ITEM))
    // Under the set lock, with the records read again there: a hook may have linked it since.
    return unloadShared(layout, item.id.slice(SHARED_OBJECT_ITEM.length), (dir) => {
      const damaged: DamagedRecord[] = [];
      const records = listRecords(layout, damaged);
      return damaged.length === 0 && !liveSharedObjects(records).has(dir);
    })
      ? []
      : null;
  if (item.id === NETNS_SHARED_ITEM) return releaseAll([{ kind: 'netns-shared' }], { layout, log });
  // The decision is taken again, and carried out, with no hook creating or destroying a
  // container meanwhile (lib/state/paths.ts, containersLockPath): the candidates are a
  // snapshot, and an id can be reused the moment its container is deleted.
  return withFileLock(containersLockPath(layout), () => {
    if (item.id.startsWith(LOCK_ITEM)) {
      // Hooks take an id lock only holding this one shared: nobody holds or waits for it now.
      const path = joinPath(containerLocksDir(layout), item.id.slice(LOCK_ITEM.length));
      try {
        unlinkSync(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null; // its holder was done, and unlinked it
        throw err;
      }
      return [];
    }
    if (item.id.startsWith(TEMP_ITEM)) {
      // Hooks write records and allocations holding this lock shared, so none is writing now;
      // and its pid may run again by now, as another process.
      const path = joinPath(layout.runDir, item.id.slice(TEMP_ITEM.length));
      if (processAlive(tempWriter(path)!)) return null;
      rmSync(path, { force: true });
      return [];
    }
    // A container that started since the candidates were read has a live record now.
    const now = readRecord(layout, item.id);
    if (now && isAlive(now)) return null;
    return destroyHeld(layout, item.id, log).errors;
  });
}
