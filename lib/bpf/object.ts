/*
 * A BPF object file on its way into the kernel: open, set constants, size and share maps, load,
 * then hand out programs and maps. Closing the object releases this process's descriptors only;
 * what was pinned stays, which is how state outlives the hook.
 */
import { SyscallError, VerifierError } from '../errors';
import { isNull, libbpf, libc, readBytes, readCString } from '../ffi';
import { sectionVariable } from './btf';
import { checkInt, checkPtr, libbpfLogSince, logMark } from './libbpf';
import { BpfMap } from './map';
import type { StructCodec } from './codec';

export class BpfProgram {
  constructor(
    readonly obj: BpfObject,
    readonly ptr: unknown,
    readonly name: string,
    readonly section: string,
  ) {}

  get fd(): number {
    return checkInt(libbpf.progFd(this.ptr), `program ${this.name}: no fd (not loaded?)`);
  }

  setAutoload(on: boolean): void {
    checkInt(libbpf.progSetAutoload(this.ptr, on), `program ${this.name}: set autoload`);
  }

  /** The attach type libbpf derived from the section name (enum bpf_attach_type). */
  get expectedAttachType(): number {
    return libbpf.progExpectedAttachType(this.ptr) as number;
  }

  /** Attaches through a bpf_link (BPF_F_ALLOW_MULTI semantics) and returns it, not yet pinned. */
  attachCgroup(cgroupFd: number): BpfLink {
    const link = checkPtr(libbpf.progAttachCgroup(this.ptr, cgroupFd), `attach ${this.name} (${this.section}) to cgroup`);
    return new BpfLink(link, this.name);
  }
}

export class BpfLink {
  constructor(
    private ptr: unknown,
    readonly progName: string,
  ) {}

  get fd(): number {
    return libbpf.linkFd(this.ptr) as number;
  }

  pin(path: string): void {
    checkInt(libbpf.linkPin(this.ptr, path), `pin link of ${this.progName} at ${path}`);
  }

  /**
   * Drops our handle; a pinned link stays attached, an unpinned one detaches. A disconnected
   * libbpf link no longer closes its descriptor on destroy, so we close it: a long-lived
   * process (the CLI, tests) must not keep links alive after their pins are gone.
   */
  release(keepAttached: boolean): void {
    if (isNull(this.ptr)) return;
    if (keepAttached) {
      const fd = libbpf.linkFd(this.ptr) as number;
      libbpf.linkDisconnect(this.ptr);
      libbpf.linkDestroy(this.ptr);
      if (fd >= 0) libc.close(fd);
    } else libbpf.linkDestroy(this.ptr);
    this.ptr = null;
  }
}

export interface OpenOptions {
  /** Values for `const volatile` globals, by variable name, encoded by their codec. */
  rodata?: Record<string, { codec: StructCodec<any>; value: object } | Buffer>;
  /** Programs not to load (features the kernel lacks, or not wanted by this config). */
  skipPrograms?: string[];
  /** Map sizes by map name. */
  maxEntries?: Record<string, number>;
  /** Use an existing pinned map instead of creating one, by map name → fd. */
  reuseMaps?: Record<string, number>;
}

export class BpfObject {
  private closed = false;

  private constructor(
    private readonly ptr: unknown,
    readonly path: string,
  ) {}

  static open(path: string, opts: OpenOptions = {}): BpfObject {
    logMark(); // libbpf's messages about the ELF and BTF reach the log too
    const obj = new BpfObject(checkPtr(libbpf.objOpenFile(path, null), `open BPF object ${path}`), path);
    try {
      for (const [name, v] of Object.entries(opts.rodata ?? {})) obj.setConstant(name, Buffer.isBuffer(v) ? v : v.codec.encode(v.value));
      for (const name of opts.skipPrograms ?? []) obj.program(name).setAutoload(false);
      for (const [name, n] of Object.entries(opts.maxEntries ?? {}))
        checkInt(libbpf.mapSetMaxEntries(obj.mapPtr(name), n), `map ${name}: set max entries ${n}`);
      for (const [name, fd] of Object.entries(opts.reuseMaps ?? {}))
        checkInt(libbpf.mapReuseFd(obj.mapPtr(name), fd), `map ${name}: reuse pinned map`);
      obj.load();
      return obj;
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  private setConstant(variable: string, value: Buffer): void {
    const { offset, size } = sectionVariable(libbpf.objBtf(this.ptr), '.rodata', variable);
    if (value.length !== size) throw new SyscallError('BPF', `constant ${variable}: ${value.length} bytes given, ${size} expected`, 22);
    const map = this.mapPtr('.rodata');
    const psize = [0];
    const init = checkPtr(libbpf.mapInitialValue(map, psize), `.rodata of ${this.path}`);
    const data = readBytes(init, Number(psize[0]));
    value.copy(data, offset);
    checkInt(libbpf.mapSetInitialValue(map, data, data.length), `set .rodata of ${this.path}`);
  }

  private load(): void {
    const mark = logMark();
    const rc = libbpf.objLoad(this.ptr) as number;
    if (rc < 0) {
      const log = libbpfLogSince(mark);
      throw new VerifierError(`load BPF object ${this.path.split('/').pop()}`, -rc, log);
    }
  }

  private mapPtr(name: string): unknown {
    return checkPtr(libbpf.objFindMap(this.ptr, name), `BPF object ${this.path}: map ${name}`);
  }

  /** The programs this object loads (those skipped with skipPrograms are not listed). */
  programs(): BpfProgram[] {
    const out: BpfProgram[] = [];
    for (let p = libbpf.objNextProg(this.ptr, null); !isNull(p); p = libbpf.objNextProg(this.ptr, p))
      if (libbpf.progAutoload(p)) out.push(new BpfProgram(this, p, readCString(libbpf.progName(p)), readCString(libbpf.progSection(p))));
    return out;
  }

  /** Named maps (not the .rodata/.bss sections libbpf turns into maps). */
  mapNames(): string[] {
    const out: string[] = [];
    for (let m = libbpf.objNextMap(this.ptr, null); !isNull(m); m = libbpf.objNextMap(this.ptr, m)) {
      const name = readCString(libbpf.mapName(m));
      if (!name.includes('.')) out.push(name);
    }
    return out;
  }

  program(name: string): BpfProgram {
    const p = checkPtr(libbpf.objFindProg(this.ptr, name), `BPF object ${this.path}: program ${name}`);
    return new BpfProgram(this, p, name, readCString(libbpf.progSection(p)));
  }

  /** A loaded map of this object; its fd lives as long as the object. */
  map(name: string): BpfMap {
    const m = this.mapPtr(name);
    return BpfMap.borrow(checkInt(libbpf.mapFd(m), `map ${name}: fd`), name);
  }

  pinMap(name: string, path: string): void {
    checkInt(libbpf.mapPin(this.mapPtr(name), path), `pin map ${name} at ${path}`);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    libbpf.objClose(this.ptr);
  }
}
