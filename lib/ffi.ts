/*
 * The whole native boundary: the only module that imports koffi. Every libbpf and libc symbol
 * taskwire calls is declared in the two tables below (systemd's bpf-dlopen.c pattern), so a
 * reader can see at a glance what we depend on, and libbpf 1.1 (Debian bookworm) is the floor.
 *
 * libbpf >= 1.0 reports errors as negative errno (int returns) or NULL + errno (pointer returns);
 * callers use the checked wrappers in bpf/*.ts and never touch these tables' raw results.
 */
import koffi from 'koffi';

// Libraries open, and prototypes are parsed, at first call: the tables below name ~80 functions
// of which a hook calls a dozen (parsing them all took ~1 ms of every hook), and poststop (flock,
// netlink) never needs libbpf mapped at all (bench/README.md, hook-latency).
function lazyLib(path: string): { func(decl: string): koffi.KoffiFunction } {
  let lib: koffi.IKoffiLib | undefined;
  return {
    func(decl) {
      let fn: koffi.KoffiFunction | undefined;
      return ((...args: unknown[]) => (fn ??= (lib ??= koffi.load(path)).func(decl))(...args)) as koffi.KoffiFunction;
    },
  };
}
const bpf = lazyLib('libbpf.so.1');
const c = lazyLib('libc.so.6');

// koffi's type names are process-wide while this module may be evaluated more than once (jest
// gives each test file its own module registry): declare each named type only once.
function named<T>(name: string, declare: () => T): T {
  try {
    return declare();
  } catch {
    return koffi.resolve(name) as T;
  }
}
named('bpf_object', () => koffi.opaque('bpf_object'));
named('bpf_program', () => koffi.opaque('bpf_program'));
named('bpf_map', () => koffi.opaque('bpf_map'));
named('bpf_link', () => koffi.opaque('bpf_link'));
named('btf', () => koffi.opaque('btf'));

// libbpf's print callback passes a va_list; on x86_64 and arm64 that decays to a pointer which
// libc's vsnprintf formats for us, so verifier logs reach our logger as text.
const PrintFn = named('libbpf_print_fn', () => koffi.proto('int libbpf_print_fn(int level, const char *fmt, void *ap)'));
// A ring buffer record handed to JavaScript; `data` is valid only during the call.
const SampleFn = named('ring_buffer_sample_fn', () => koffi.proto('int ring_buffer_sample_fn(void *ctx, void *data, size_t size)'));
named('ring_buffer', () => koffi.opaque('ring_buffer'));

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

  objGet: bpf.func('int bpf_obj_get(const char *path)'),
  objPin: bpf.func('int bpf_obj_pin(int fd, const char *path)'),
  objGetInfoByFd: bpf.func('int bpf_obj_get_info_by_fd(int fd, _Inout_ void *info, _Inout_ uint32 *len)'),
  mapUpdate: bpf.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64 flags)'),
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
  // tcx and netkit links: libbpf 1.1 has no attach helpers for them, but passes unknown attach
  // types through with target_fd = ifindex and zeroed options (append after existing programs).
  linkCreate: bpf.func('int bpf_link_create(int prog_fd, int target_fd, int attach_type, const void *opts)'),
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
  recv: c.func('intptr recv(int fd, _Out_ void *buf, size_t len, int flags)'),
  getsockopt: c.func('int getsockopt(int fd, int level, int name, _Out_ void *val, _Inout_ uint32 *len)'),
  setsockopt: c.func('int setsockopt(int fd, int level, int name, const void *val, uint32 len)'),
  ifNameToIndex: c.func('uint32 if_nametoindex(const char *name)'),
  vsnprintf: c.func('int vsnprintf(_Out_ uint8_t *buf, size_t size, const char *fmt, void *ap)'),
  mount: c.func('int mount(const char *src, const char *target, const char *fstype, unsigned long flags, const char *data)'),
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
  }, koffi.pointer(PrintFn));
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
  }, koffi.pointer(SampleFn));
  return { cb, unregister: () => koffi.unregister(cb) };
}
