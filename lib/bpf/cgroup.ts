/*
 * Load an object and attach every program it loaded to a cgroup, pinning each link as
 * link_<program> (and the requested maps as map_<name>) in the plugin's pin directory.
 * Links, not PROG_ATTACH: a pinned link survives the hook and is replaceable atomically; the
 * kernel detaches it when the cgroup dies, and unlinking the pin detaches it at poststop.
 */
import { join } from 'node:path';
import { bpfObjectPath } from '../assets';
import { BpfObject } from './object';
import type { CgroupLoad } from '../plugin';

export function loadIntoCgroup(object: string, cgroupFd: number, pinDir: string, opts: CgroupLoad): BpfObject {
  const obj = BpfObject.open(bpfObjectPath(object), opts);
  try {
    for (const m of opts.pinMaps ?? []) obj.pinMap(m, join(pinDir, `map_${m}`));
    opts.beforeAttach?.(obj);
    const skip = new Set(opts.skipPrograms ?? []);
    for (const prog of obj.programs()) {
      if (skip.has(prog.name)) continue;
      const link = prog.attachCgroup(cgroupFd);
      try {
        link.pin(join(pinDir, `link_${prog.name}`));
        link.release(true);
      } catch (err) {
        link.release(false);
        throw err;
      }
    }
    return obj;
  } catch (err) {
    obj.close();
    throw err;
  }
}

/**
 * Swaps the program behind a pinned cgroup link (bpf_link_update): atomic for that hook, the
 * old program runs to completion on packets it already has. ENOLINK = the cgroup is gone.
 */
export function updatePinnedLink(path: string, progFd: number): void {
  const { libbpf, libc } = require('../ffi') as typeof import('../ffi');
  const { checkInt } = require('./libbpf') as typeof import('./libbpf');
  const fd = checkInt(libbpf.objGet(path) as number, `open pinned link ${path}`);
  try {
    checkInt(libbpf.linkUpdate(fd, progFd, null) as number, `update link ${path}`);
  } finally {
    libc.close(fd);
  }
}
