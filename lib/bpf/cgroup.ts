/*
 * Load an object and attach every program it loaded to a cgroup, pinning each link as
 * link_<program> (and the requested maps as map_<name>) in the plugin's pin directory.
 * Links, not PROG_ATTACH: a pinned link survives the hook and is replaceable atomically; the
 * kernel detaches it when the cgroup dies, and unlinking the pin detaches it at poststop.
 */
import { joinPath } from '../path';
import { bpfObjectPath } from '../assets';
import { BpfObject } from './object';
import type { CgroupLoad } from '../plugin';

export function loadIntoCgroup(object: string, cgroupFd: number, pinDir: string, opts: CgroupLoad): BpfObject {
  const obj = BpfObject.open(bpfObjectPath(object), opts);
  try {
    for (const m of opts.pinMaps ?? []) obj.pinMap(m, joinPath(pinDir, `map_${m}`));
    opts.beforeAttach?.(obj);
    const skip = new Set(opts.skipPrograms ?? []);
    for (const prog of obj.programs()) {
      if (skip.has(prog.name)) continue;
      const link = prog.attachCgroup(cgroupFd);
      try {
        link.pin(joinPath(pinDir, `link_${prog.name}`));
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
 * A pinned bpf_link held open for a program swap (bpf_link_update: atomic for that hook, the old
 * program finishes what it has), remembering the program it ran when opened so that a failed
 * multi-link swap can put every link back. ENOLINK on update = the cgroup is gone.
 */
export class PinnedLink {
  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly originalProg: number,
  ) {}

  static open(path: string): PinnedLink {
    const { bpfSys, libbpf, libc } = require('../ffi') as typeof import('../ffi');
    const { checkInt } = require('./libbpf') as typeof import('./libbpf');
    const { linkInfo } = require('../introspect') as typeof import('../introspect');
    const fd = checkInt(bpfSys.objGet(path), `open pinned link ${path}`);
    try {
      return new PinnedLink(path, fd, checkInt(libbpf.progGetFdById(linkInfo(fd).progId) as number, `open the program of link ${path}`));
    } catch (err) {
      libc.close(fd);
      throw err;
    }
  }

  update(progFd: number): void {
    const { libbpf } = require('../ffi') as typeof import('../ffi');
    const { checkInt } = require('./libbpf') as typeof import('./libbpf');
    checkInt(libbpf.linkUpdate(this.fd, progFd, null) as number, `update link ${this.path}`);
  }

  /** Back to the program it had when opened; returns the errno on failure, 0 on success. */
  restore(): number {
    const { libbpf } = require('../ffi') as typeof import('../ffi');
    const rc = libbpf.linkUpdate(this.fd, this.originalProg, null) as number;
    return rc < 0 ? -rc : 0;
  }

  close(): void {
    const { libc } = require('../ffi') as typeof import('../ffi');
    libc.close(this.fd);
    libc.close(this.originalProg);
  }
}
