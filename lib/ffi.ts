/*
 * The whole native boundary: the only module that imports koffi. Every libbpf and libc symbol
 * taskwire calls is declared in the two tables below (systemd's bpf-dlopen.c pattern), so a
 * reader can see at a glance what we depend on, and libbpf 1.1 (Debian bookworm) is the floor.
 *
 * libbpf >= 1.0 reports errors as negative errno (int returns) or NULL + errno (pointer returns);
 * callers use the checked wrappers in bpf/*.ts and never touch these tables' raw results.
 */
import koffi from 'koffi';
import { offerImmediateExit } from './process-exit';

// Libraries open, and prototypes are parsed, at first call: the tables below name ~80 functions
// of which a hook calls a dozen (parsing them all took ~1 ms of every hook), and a hook on the
// common path never maps libbpf at all (see "bpf(2) directly" below).
function lazyLib(path: string, beforeLoad: () => void = () => {}): { func(decl: string): koffi.KoffiFunction } {
  let lib: koffi.IKoffiLib | undefined;
  const open = (): koffi.IKoffiLib => {
    beforeLoad();
    return koffi.load(path);
  };
  return {
    func(decl) {
      let fn: koffi.KoffiFunction | undefined;
      return ((...args: unknown[]) => (fn ??= (lib ??= open()).func(decl))(...args)) as koffi.KoffiFunction;
    },
  };
}

// koffi's type names are process-wide while this module may be evaluated more than once (jest
// gives each test file its own module registry): declare each named type only once.
function named<T>(name: string, declare: () => T): T {
  try {
    return declare();
  } catch {
    return koffi.resolve(name) as T;
  }
}

// libbpf's types, declared when libbpf is first mapped (its prototypes name them): each
// declaration costs a hook tens of microseconds it has no use for on the common path.
let libbpfTypes: { PrintFn: koffi.IKoffiCType; SampleFn: koffi.IKoffiCType } | undefined;
function declareLibbpfTypes(): NonNullable<typeof libbpfTypes> {
  if (libbpfTypes) return libbpfTypes;
  for (const t of ['bpf_object', 'bpf_program', 'bpf_map', 'bpf_link', 'btf', 'ring_buffer']) named(t, () => koffi.opaque(t));
  libbpfTypes = {
    // libbpf's print callback passes a va_list; on x86_64 and arm64 that decays to a pointer which
    // libc's vsnprintf formats for us, so verifier logs reach our logger as text.
    PrintFn: named('libbpf_print_fn', () => koffi.proto('int libbpf_print_fn(int level, const char *fmt, void *ap)')),
    // A ring buffer record handed to JavaScript; `data` is valid only during the call.
    SampleFn: named('ring_buffer_sample_fn', () => koffi.proto('int ring_buffer_sample_fn(void *ctx, void *data, size_t size)')),
  };
  return libbpfTypes;
}
const bpf = lazyLib('libbpf.so.1', declareLibbpfTypes);
const c = lazyLib('libc.so.6');

export const libbpf = {
  major: bpf.func('uint32 libbpf_major_version(void)'),
  minor: bpf.func('uint32 libbpf_minor_version(void)'),
  setPrint: bpf.func('void *libbpf_set_print(libbpf_print_fn *fn)'),
  probeProgType: bpf.func('int libbpf_probe_bpf_prog_type(int prog_type, const void *opts)'),
  probeMapType: bpf.func('int libbpf_probe_bpf_map_type(int map_type, const void *opts)'),
  probeHelper: bpf.func('int libbpf_probe_bpf_helper(int prog_type, int helper_id, const void *opts)'),

  objOpenFile: bpf.func('bpf_object *bpf_object__open_file(const char *path, const void *opts)'),
  objLoad: bpf.func('int bpf_object__load(bpf_object *obj)'),
  objClose: bpf.func('void bpf_object__close(bpf_object *obj)'),
  objBtf: bpf.func('btf *bpf_object__btf(const bpf_object *obj)'),
  objFindProg: bpf.func('bpf_program *bpf_object__find_program_by_name(const bpf_object *obj, const char *name)'),
  objNextProg: bpf.func('bpf_program *bpf_object__next_program(const bpf_object *obj, bpf_program *prev)'),
  objFindMap: bpf.func('bpf_map *bpf_object__find_map_by_name(const bpf_object *obj, const char *name)'),
  objNextMap: bpf.func('bpf_map *bpf_object__next_map(const bpf_object *obj, const bpf_map *prev)'),

  progName: bpf.func('const char *bpf_program__name(const bpf_program *prog)'),
  progSection: bpf.func('const char *bpf_program__section_name(const bpf_program *prog)'),
  progFd: bpf.func('int bpf_program__fd(const bpf_program *prog)'),
  progSetAutoload: bpf.func('int bpf_program__set_autoload(bpf_program *prog, bool autoload)'),
  progAutoload: bpf.func('bool bpf_program__autoload(const bpf_program *prog)'),
  progExpectedAttachType: bpf.func('int bpf_program__expected_attach_type(const bpf_program *prog)'),
  progAttachCgroup: bpf.func('bpf_link *bpf_program__attach_cgroup(const bpf_program *prog, int cgroup_fd)'),
  progAttachNetns: bpf.func('bpf_link *bpf_program__attach_netns(const bpf_program *prog, int netns_fd)'),

  linkPin: bpf.func('int bpf_link__pin(bpf_link *link, const char *path)'),
  linkFd: bpf.func('int bpf_link__fd(const bpf_link *link)'),
  linkDisconnect: bpf.func('void bpf_link__disconnect(bpf_link *link)'),
  linkDestroy: bpf.func('int bpf_link__destroy(bpf_link *link)'),

  mapName: bpf.func('const char *bpf_map__name(const bpf_map *map)'),
  mapFd: bpf.func('int bpf_map__fd(const bpf_map *map)'),
  mapType: bpf.func('int bpf_map__type(const bpf_map *map)'),
  mapKeySize: bpf.func('uint32 bpf_map__key_size(const bpf_map *map)'),
  mapValueSize: bpf.func('uint32 bpf_map__value_size(const bpf_map *map)'),
  mapSetMaxEntries: bpf.func('int bpf_map__set_max_entries(bpf_map *map, uint32 max)'),
  mapReuseFd: bpf.func('int bpf_map__reuse_fd(bpf_map *map, int fd)'),
  mapPin: bpf.func('int bpf_map__pin(bpf_map *map, const char *path)'),
  mapInitialValue: bpf.func('void *bpf_map__initial_value(bpf_map *map, _Out_ size_t *psize)'),
  mapSetInitialValue: bpf.func('int bpf_map__set_initial_value(bpf_map *map, const void *data, size_t size)'),

  btfFindByNameKind: bpf.func('int btf__find_by_name_kind(const btf *btf, const char *name, uint32 kind)'),
  btfTypeById: bpf.func('const void *btf__type_by_id(const btf *btf, uint32 id)'),
  btfNameByOffset: bpf.func('const char *btf__name_by_offset(const btf *btf, uint32 offset)'),
  btfResolveSize: bpf.func('int64 btf__resolve_size(const btf *btf, uint32 type_id)'),
  btfLoadFromKernelById: bpf.func('btf *btf__load_from_kernel_by_id(uint32 id)'),
  btfFree: bpf.func('void btf__free(btf *btf)'),
  btfParse: bpf.func('btf *btf__parse(const char *path, void *btf_ext)'),

  mapLookup: bpf.func('int bpf_map_lookup_elem(int fd, const void *key, _Out_ void *value)'),
  mapDelete: bpf.func('int bpf_map_delete_elem(int fd, const void *key)'),
  mapNextKey: bpf.func('int bpf_map_get_next_key(int fd, const void *key, _Out_ void *next)'),
  // twfw: policies of 10,000+ entries load in one call per map where the kernel allows it.
  mapUpdateBatch: bpf.func('int bpf_map_update_batch(int fd, const void *keys, const void *values, _Inout_ uint32 *count, const void *opts)'),
  // twfw: host-wide maps (shared endpoint sets) that no single object owns.
  mapCreate: bpf.func('int bpf_map_create(int map_type, const char *map_name, uint32 key_size, uint32 value_size, uint32 max_entries, const void *opts)'),
  progQuery: bpf.func(
    'int bpf_prog_query(int target_fd, int type, uint32 query_flags, _Out_ uint32 *attach_flags, _Out_ uint32 *ids, _Inout_ uint32 *cnt)',
  ),
  progGetFdById: bpf.func('int bpf_prog_get_fd_by_id(uint32 id)'),
  mapGetFdById: bpf.func('int bpf_map_get_fd_by_id(uint32 id)'),
  linkGetFdById: bpf.func('int bpf_link_get_fd_by_id(uint32 id)'),
  linkGetNextId: bpf.func('int bpf_link_get_next_id(uint32 start, _Out_ uint32 *next)'),
  linkUpdate: bpf.func('int bpf_link_update(int link_fd, int new_prog_fd, const void *opts)'),
  linkDetach: bpf.func('int bpf_link_detach(int link_fd)'),
  enableStats: bpf.func('int bpf_enable_stats(int type)'),
  ringbufNew: bpf.func('ring_buffer *ring_buffer__new(int map_fd, ring_buffer_sample_fn *sample_cb, void *ctx, const void *opts)'),
  ringbufConsume: bpf.func('int ring_buffer__consume(ring_buffer *rb)'),
  ringbufPoll: bpf.func('int ring_buffer__poll(ring_buffer *rb, int timeout_ms)'),
  ringbufFree: bpf.func('void ring_buffer__free(ring_buffer *rb)'),
  // Names of kernel enums as libbpf knows them (NULL past what this libbpf knows): for the CLI.
  progTypeStr: bpf.func('const char *libbpf_bpf_prog_type_str(int t)'),
  mapTypeStr: bpf.func('const char *libbpf_bpf_map_type_str(int t)'),
  linkTypeStr: bpf.func('const char *libbpf_bpf_link_type_str(int t)'),
  attachTypeStr: bpf.func('const char *libbpf_bpf_attach_type_str(int t)'),
  // An opened (not loaded) object's programs, for `doctor` to probe what each one needs.
  progType: bpf.func('int bpf_program__type(const bpf_program *prog)'),
  progInsns: bpf.func('const void *bpf_program__insns(const bpf_program *prog)'),
  progInsnCnt: bpf.func('size_t bpf_program__insn_cnt(const bpf_program *prog)'),
};

export const libc = {
  close: c.func('int close(int fd)'),
  flock: c.func('int flock(int fd, int op)'),
  socket: c.func('int socket(int domain, int type, int protocol)'),
  sendto: c.func('intptr sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32 addrlen)'),
  recvfrom: c.func('intptr recvfrom(int fd, _Out_ void *buf, size_t len, int flags, _Out_ void *addr, _Inout_ uint32 *addrlen)'),
  getsockopt: c.func('int getsockopt(int fd, int level, int name, _Out_ void *val, _Inout_ uint32 *len)'),
  setsockopt: c.func('int setsockopt(int fd, int level, int name, const void *val, uint32 len)'),
  ifNameToIndex: c.func('uint32 if_nametoindex(const char *name)'),
  vsnprintf: c.func('int vsnprintf(_Out_ uint8_t *buf, size_t size, const char *fmt, void *ap)'),
  mount: c.func('int mount(const char *src, const char *target, const char *fstype, unsigned long flags, const char *data)'),
  syscall: c.func('long syscall(long number, ...)'),
  fcntl: c.func('int fcntl(int fd, int cmd, ...)'),
  exitImmediately: c.func('void _exit(int status)'),
};

offerImmediateExit((code) => libc.exitImmediately(code));

/*
 * bpf(2) directly, for the commands a hook issues on its common path (open a pinned object, pin,
 * link to a cgroup or device, update an element, read an object's info). libbpf's
 * wrappers for these do nothing more than fill `union bpf_attr` and make the syscall, but mapping
 * libbpf (with libelf and libz) cost each hook 0.35-0.6 ms, more than all of its bpf calls
 * together (bench/README.md). The attr layouts are kernel UAPI, checked against the kernel's BTF
 * by test/unit/bpf-attr.test.ts. Like libbpf's, each returns the fd or 0, or -errno, and never
 * hands out descriptors 0-2 (a runtime may start a hook with stdio closed).
 */
const SYS_BPF_BY_ARCH: Record<string, number> = { x64: 321, arm64: 280 };
export const BPF_CMD = { MAP_UPDATE_ELEM: 2, OBJ_PIN: 6, OBJ_GET: 7, OBJ_GET_INFO_BY_FD: 15, LINK_CREATE: 28 } as const;
const FD_RETURNING = new Set<number>([BPF_CMD.OBJ_GET, BPF_CMD.LINK_CREATE]);
const F_DUPFD_CLOEXEC = 1030;

/**
 * The parts of `union bpf_attr` these commands fill: byte offsets of each field (named as in
 * the kernel's BTF: a named member's fields as "member.field") and the size passed, which ends
 * with the last field used (the kernel takes a shorter attr as zero-filled).
 */
export const BPF_ATTR = {
  elem: { size: 32, fields: { map_fd: 0, key: 8, value: 16, flags: 24 } },
  obj: { size: 16, fields: { pathname: 0, bpf_fd: 8, file_flags: 12 } },
  info: { size: 16, fields: { 'info.bpf_fd': 0, 'info.info_len': 4, 'info.info': 8 } },
  link_create: { size: 16, fields: { 'link_create.prog_fd': 0, 'link_create.target_fd': 4, 'link_create.attach_type': 8, 'link_create.flags': 12 } },
} as const;

// The buffers attr points into, held where no optimisation can drop them until the call returned.
const inFlight: Buffer[][] = [];

function sysBpf(cmd: number, attr: Buffer, pointees: Buffer[] = []): number {
  const nr = SYS_BPF_BY_ARCH[process.arch];
  if (nr === undefined) throw new Error(`bpf(2) syscall number unknown for ${process.arch} (taskwire supports x64 and arm64)`);
  inFlight.push(pointees);
  let rc: number;
  let e: number;
  try {
    rc = Number(libc.syscall(nr, 'int', cmd, 'void *', attr, 'uint32', attr.length));
    e = koffi.errno();
  } finally {
    inFlight.pop();
  }
  if (rc < 0) return -e;
  if (rc > 2 || !FD_RETURNING.has(cmd)) return rc;
  const fd = libc.fcntl(rc, F_DUPFD_CLOEXEC, 'int', 3) as number;
  const dupErr = koffi.errno();
  libc.close(rc);
  return fd < 0 ? -dupErr : fd;
}

const { elem, obj, info, link_create: linkAttr } = BPF_ATTR;

/** OBJ_GET and OBJ_PIN's attr: a path (the C string, which must outlive the call) and an fd. */
function objAttr(path: string, fd = 0): { attr: Buffer; path: Buffer } {
  const p = Buffer.from(`${path}\0`, 'utf8');
  const attr = Buffer.alloc(obj.size);
  attr.writeBigUInt64LE(addressOf(p), obj.fields.pathname);
  attr.writeUInt32LE(fd, obj.fields.bpf_fd);
  return { attr, path: p };
}

export const bpfSys = {
  /** bpf_obj_get: an fd for the pinned object at `path`. */
  objGet(path: string): number {
    const a = objAttr(path);
    return sysBpf(BPF_CMD.OBJ_GET, a.attr, [a.path]);
  },
  /** bpf_obj_pin: pins `fd` at `path` in a bpffs. */
  objPin(fd: number, path: string): number {
    const a = objAttr(path, fd);
    return sysBpf(BPF_CMD.OBJ_PIN, a.attr, [a.path]);
  },
  /**
   * bpf_link_create without options: cgroup links, and tcx/netkit links appended after what is
   * attached (libbpf 1.1 has no attach helpers for those and passes them through the same way).
   */
  linkCreate(progFd: number, targetFd: number, attachType: number): number {
    const attr = Buffer.alloc(linkAttr.size);
    attr.writeUInt32LE(progFd, linkAttr.fields['link_create.prog_fd']);
    attr.writeUInt32LE(targetFd, linkAttr.fields['link_create.target_fd']);
    attr.writeUInt32LE(attachType, linkAttr.fields['link_create.attach_type']);
    return sysBpf(BPF_CMD.LINK_CREATE, attr);
  },
  /** bpf_map_update_elem. */
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number): number {
    const attr = Buffer.alloc(elem.size);
    attr.writeUInt32LE(fd, elem.fields.map_fd);
    attr.writeBigUInt64LE(addressOf(key), elem.fields.key);
    attr.writeBigUInt64LE(addressOf(value), elem.fields.value);
    attr.writeBigUInt64LE(BigInt(flags), elem.fields.flags);
    return sysBpf(BPF_CMD.MAP_UPDATE_ELEM, attr, [key, value]);
  },
  /** bpf_obj_get_info_by_fd: fills `buf` (its length is what the kernel may write); 0 or -errno. */
  objGetInfoByFd(fd: number, buf: Buffer): number {
    const attr = Buffer.alloc(info.size);
    attr.writeUInt32LE(fd, info.fields['info.bpf_fd']);
    attr.writeUInt32LE(buf.length, info.fields['info.info_len']);
    attr.writeBigUInt64LE(addressOf(buf), info.fields['info.info']);
    return sysBpf(BPF_CMD.OBJ_GET_INFO_BY_FD, attr, [buf]);
  },
};

export function errno(): number {
  return koffi.errno();
}

/** Reads `len` bytes at a native pointer (BTF records, map initial values). */
export function readBytes(ptr: unknown, len: number, offset = 0): Buffer {
  const bytes = koffi.decode(ptr, offset, koffi.array('uint8', len)) as number[];
  return Buffer.from(bytes);
}

/** koffi already turns `const char *` returns into strings; this also accepts raw pointers. */
export function readCString(ptr: unknown): string {
  if (typeof ptr === 'string') return ptr;
  return koffi.decode(ptr, 'const char *') as string;
}

export function registerPrint(fn: (level: number, text: string) => void): void {
  const buf = Buffer.alloc(4096);
  const cb = koffi.register((level: number, fmt: string, ap: unknown) => {
    const n = libc.vsnprintf(buf, buf.length, fmt, ap) as number;
    fn(level, buf.subarray(0, Math.max(0, Math.min(n, buf.length - 1))).toString('utf8'));
    return 0;
  }, koffi.pointer(declareLibbpfTypes().PrintFn));
  libbpf.setPrint(cb);
}

export function isNull(ptr: unknown): boolean {
  return ptr === null || ptr === undefined;
}

/** Address of a Buffer, for info structs that carry user pointers (bpf_prog_info.map_ids). */
export function addressOf(buf: Buffer): bigint {
  return BigInt(koffi.address(buf) as bigint);
}

/** A ring buffer sample callback; unregister it after ring_buffer__free. */
export function registerSample(fn: (data: Buffer) => void): { cb: unknown; unregister(): void } {
  const cb = koffi.register((_ctx: unknown, data: unknown, size: number | bigint) => {
    fn(readBytes(data, Number(size)));
    return 0;
  }, koffi.pointer(declareLibbpfTypes().SampleFn));
  return { cb, unregister: () => koffi.unregister(cb) };
}
