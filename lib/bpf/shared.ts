/*
 * Objects loaded once per host, attached per container. Opening an object (ELF, BTF, relocations)
 * and verifying its programs was most of a createRuntime hook's kernel time (bench/results,
 * hook-latency); a program whose per-container values live in a cgroup storage map
 * (BPF_MAP_TYPE_CGROUP_STORAGE keyed by the cgroup id alone: one value per cgroup, shared by
 * every attach type, allocated by the kernel when the first program is attached and freed with
 * the last link) is the same for every container, so it is loaded and verified once. A later
 * container costs a link per program and one map update.
 *
 *   <bpffs>/taskwire/_shared/objects/<object>-<size>-<mtime>/
 *       prog_<attach type>_<program>   every program of the object (the attach type in the name:
 *                                      bpf_prog_info does not carry expected_attach_type)
 *       map_<map>                      every named map (host-wide, e.g. ip-per-task's binds)
 *
 * The directory is made under a lock as a temporary one and renamed into place, so a hook that
 * sees it sees it whole. A rebuilt object gets a new directory; containers keep the programs
 * they were linked to, and `taskwire gc` removes sets no live container's record names.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { bpfObjectPath } from '../assets';
import { libbpf, libc } from '../ffi';
import { ensureBpffs } from '../host/discovery';
import { withFileLock } from '../state/lock';
import { Layout, sharedPinDir } from '../state/paths';
import { checkInt } from './libbpf';
import { BpfMap } from './map';

export const sharedObjectsDir = (l: Layout) => join(sharedPinDir(l), 'objects');
const PROG_PIN = /^prog_(\d+)_(.+)$/;
/** Where a loaded object's map is pinned; the object may have been unloaded (gc) meanwhile. */
export const sharedMapPath = (dir: string, map: string) => join(dir, `map_${map}`);

export interface SharedProgram {
  name: string;
  attachType: number;
  pin: string;
}

export class SharedObject {
  private constructor(
    readonly dir: string,
    readonly programs: SharedProgram[],
  ) {}

  /** The loaded set for this build of `object`, loading it first if no hook has yet. */
  static ensure(layout: Layout, object: string): SharedObject {
    const file = bpfObjectPath(object);
    const st = statSync(file);
    const dir = join(sharedObjectsDir(layout), `${object}-${st.size}-${Math.floor(st.mtimeMs)}`);
    if (!existsSync(dir)) {
      ensureBpffs(layout.bpffs);
      withFileLock(join(layout.runDir, 'shared-objects.lock'), () => {
        if (!existsSync(dir)) loadAndPin(file, dir);
      });
    }
    return SharedObject.open(dir);
  }

  static open(dir: string): SharedObject {
    const programs: SharedProgram[] = [];
    for (const n of readdirSync(dir)) {
      const m = PROG_PIN.exec(n);
      if (m) programs.push({ name: m[2], attachType: Number(m[1]), pin: join(dir, n) });
    }
    return new SharedObject(dir, programs);
  }

  openMap(name: string): BpfMap {
    return BpfMap.openPinned(sharedMapPath(this.dir, name));
  }

  /**
   * Links every program but those in `skip` to the cgroup and pins each link as link_<program>
   * in pinDir (unlinking the pin detaches it). Returns the programs linked.
   */
  attachCgroup(cgroupFd: number, pinDir: string, skip: string[] = []): string[] {
    const linked: string[] = [];
    for (const p of this.programs) {
      if (skip.includes(p.name)) continue;
      const progFd = checkInt(libbpf.objGet(p.pin), `open shared program ${p.pin}`);
      try {
        const linkFd = checkInt(libbpf.linkCreate(progFd, cgroupFd, p.attachType, null), `attach ${p.name} to cgroup`);
        try {
          checkInt(libbpf.objPin(linkFd, join(pinDir, `link_${p.name}`)), `pin link of ${p.name}`);
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
}

function loadAndPin(file: string, dir: string): void {
  const { BpfObject } = require('./object') as typeof import('./object');
  const parent = join(dir, '..');
  mkdirSync(parent, { recursive: true, mode: 0o700 });
  // bpffs refuses dots in names; the pid keeps a crashed loader's leftover apart.
  const tmp = join(parent, `tmp-${process.pid}-${Date.now()}`);
  mkdirSync(tmp, { mode: 0o700 });
  const obj = BpfObject.open(file);
  try {
    for (const p of obj.programs()) checkInt(libbpf.objPin(p.fd, join(tmp, `prog_${p.expectedAttachType}_${p.name}`)), `pin program ${p.name}`);
    for (const m of obj.mapNames()) obj.pinMap(m, join(tmp, `map_${m}`));
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    obj.close();
  }
  // Leftovers of loaders that died half way (the lock is ours, so none is in progress).
  for (const n of readdirSync(parent)) if (n.startsWith('tmp-')) rmSync(join(parent, n), { recursive: true, force: true });
}
