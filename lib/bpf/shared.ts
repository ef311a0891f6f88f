/*
 * Objects loaded once per host, linked per container. Opening an object (ELF, BTF, relocations)
 * and verifying its programs was most of a createRuntime hook's kernel time (bench/README.md,
 * hook-latency); a program whose per-container values live in a cgroup storage map
 * (BPF_MAP_TYPE_CGROUP_STORAGE keyed by the cgroup id alone: one value per cgroup, shared by
 * every attach type, made by the kernel when the first program is attached to the cgroup) is the
 * same for every container, so it is loaded and verified once. A later container costs a link
 * per program and one map update.
 *
 *   <bpffs>/taskwire/_shared/objects/<object>-<content id>/
 *       prog_<attach type>_<program>   every program of the object (the attach type in the name:
 *                                      bpf_prog_info does not carry expected_attach_type)
 *       map_<map>                      every named map (host-wide, e.g. ip-per-task's binds)
 *
 * The content id is the object's sha256 (written next to it by the build; computed here when
 * missing), so a rebuild is never taken for the object it replaced. A set is made under an
 * exclusive lock as tmp-<pid>-<time> and renamed into place, so a hook that sees it sees it whole.
 * Hooks link under the same lock held shared, after journaling their reference to the set;
 * `taskwire gc` unloads sets under it held exclusive, re-reading the records: a set is never
 * taken away from a hook that is linking it. Everything lives under <bpffs>/taskwire, which
 * must be root's alone (lib/host/discovery.ts, ensurePinRoot).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { joinPath } from '../path';
import { bpfObjectPath } from '../assets';
import { TaskwireError } from '../errors';
import { bpfSys, libc } from '../ffi';
import { ensurePinRoot } from '../host/discovery';
import { withFileLock } from '../state/lock';
import { Layout, sharedPinDir } from '../state/paths';
import { checkInt } from './libbpf';
import { BpfMap } from './map';

export const sharedObjectsDir = (l: Layout) => joinPath(sharedPinDir(l), 'objects');
/** Held shared by hooks while they link a set, exclusive to make or unload one. */
export const sharedObjectsLock = (l: Layout) => joinPath(l.runDir, 'shared-objects.lock');
/** Where a loaded object's map is pinned; the set may have been unloaded (gc) meanwhile. */
export const sharedMapPath = (dir: string, map: string) => joinPath(dir, `map_${map}`);
/** A loader's directory before it is published (never a set: gc and hooks skip it). */
export const isLoaderTemp = (name: string) => name.startsWith('tmp-');
const PROG_PIN = /^prog_(\d+)_(.+)$/;

interface SharedProgram {
  name: string;
  attachType: number;
  pin: string;
}

/** The set directory for the object as built now. */
export function sharedObjectDir(layout: Layout, object: string): string {
  const file = bpfObjectPath(object);
  let id: string;
  try {
    id = readFileSync(`${file}.id`, 'utf8').trim();
  } catch {
    // Built without the Makefile: hash it here (node:crypto costs a hook a few milliseconds).
    const { createHash } = require('node:crypto') as typeof import('node:crypto');
    id = createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16);
  }
  if (!/^[0-9a-f]{16}$/.test(id)) throw new TaskwireError('SYSTEM', `${file}.id: not an object id (rebuild with make)`);
  return joinPath(sharedObjectsDir(layout), `${object}-${id}`);
}

function programsIn(dir: string): SharedProgram[] {
  const out: SharedProgram[] = [];
  for (const n of readdirSync(dir)) {
    const m = PROG_PIN.exec(n);
    if (m) out.push({ name: m[2], attachType: Number(m[1]), pin: joinPath(dir, n) });
  }
  return out;
}

/**
 * Links every program but those in `skip` to the cgroup and pins each link as link_<program>
 * in pinDir (unlinking the pin detaches it). Returns the programs linked.
 */
function linkPrograms(programs: SharedProgram[], cgroupFd: number, pinDir: string, skip: string[] = []): string[] {
  const linked: string[] = [];
  for (const p of programs) {
    if (skip.includes(p.name)) continue;
    const progFd = checkInt(bpfSys.objGet(p.pin), `open shared program ${p.pin}`);
    try {
      const linkFd = checkInt(bpfSys.linkCreate(progFd, cgroupFd, p.attachType), `attach ${p.name} to cgroup`);
      try {
        checkInt(bpfSys.objPin(linkFd, joinPath(pinDir, `link_${p.name}`)), `pin link of ${p.name}`);
      } finally {
        libc.close(linkFd);
      }
    } finally {
      libc.close(progFd);
    }
    linked.push(p.name);
  }
  return linked;
}

export interface SharedLink {
  dir: string;
  programs: string[];
  /** The maps asked for, open: the caller fills and closes them. */
  maps: Record<string, BpfMap>;
}

/**
 * Links `object`'s host-wide copy (loaded first if need be) to a cgroup. `journal(dir)` records
 * the container's reference before anything is linked; `maps` are opened while the set is held.
 */
export function linkShared(
  layout: Layout,
  object: string,
  link: { cgroupFd: number; pinDir: string; skip?: string[]; maps?: string[]; journal: (dir: string) => void },
): SharedLink {
  const dir = sharedObjectDir(layout, object);
  ensurePinRoot(layout);
  for (let attempt = 0; attempt < 3; attempt++) {
    if (!existsSync(dir)) {
      withFileLock(sharedObjectsLock(layout), () => {
        if (!existsSync(dir)) loadAndPin(bpfObjectPath(object), dir);
      });
    }
    const done = withFileLock(
      sharedObjectsLock(layout),
      () => {
        if (!existsSync(dir)) return null; // unloaded by gc in between: load it again
        link.journal(dir);
        const programs = linkPrograms(programsIn(dir), link.cgroupFd, link.pinDir, link.skip);
        const maps: Record<string, BpfMap> = {};
        try {
          for (const m of link.maps ?? []) maps[m] = BpfMap.openPinned(sharedMapPath(dir, m));
        } catch (err) {
          for (const m of Object.values(maps)) m.close();
          throw err;
        }
        return { dir, programs, maps };
      },
      'shared',
    );
    if (done) return done;
  }
  throw new TaskwireError('STATE', `${dir} keeps disappearing while being linked (a gc loop?)`);
}

function loadAndPin(file: string, dir: string): void {
  const { BpfObject } = require('./object') as typeof import('./object');
  // Tells scripts/hook-launcher.js not to keep this run's code cache: every later run would pay
  // to deserialize loader code it never runs.
  (globalThis as { taskwireHookColdRun?: boolean }).taskwireHookColdRun = true;
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true, mode: 0o700 });
  // Leftovers of loaders that died half way (the exclusive lock is ours: none is running).
  for (const n of readdirSync(parent)) if (isLoaderTemp(n)) rmSync(joinPath(parent, n), { recursive: true, force: true });
  const obj = BpfObject.open(file);
  // bpffs refuses dots in names.
  const tmp = joinPath(parent, `tmp-${process.pid}-${Date.now()}`);
  try {
    mkdirSync(tmp, { mode: 0o700 });
    for (const p of obj.programs()) checkInt(bpfSys.objPin(p.fd, joinPath(tmp, `prog_${p.expectedAttachType}_${p.name}`)), `pin program ${p.name}`);
    for (const m of obj.mapNames()) obj.pinMap(m, joinPath(tmp, `map_${m}`));
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    obj.close();
  }
}

/** Unloads a set (gc): under the exclusive lock, and only if `unused()` still says so there. */
export function unloadShared(layout: Layout, name: string, unused: (dir: string) => boolean): boolean {
  if (isLoaderTemp(name) || basename(name) !== name) return false;
  const dir = joinPath(sharedObjectsDir(layout), name);
  return withFileLock(sharedObjectsLock(layout), () => {
    if (!existsSync(dir) || !unused(dir)) return false;
    // Unpinning the programs unloads those no link holds; maps go with their last user.
    rmSync(dir, { recursive: true, force: true });
    return true;
  });
}
