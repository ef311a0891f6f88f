/*
 * Any pinned map, decoded through the BTF the kernel holds for it (clang -g puts BTF in our
 * objects; bpf_map_info names the key and value types). Where one of our plugin codecs knows the
 * struct by name (plugins/<name>/codec.ts), the codec decodes it, so addresses come out as text
 * exactly as the plugin means them; everything else is decoded generically: integers as
 * numbers (bigint past 2^53), char arrays as strings, arrays, structs, enums by name. Per-CPU
 * values are summed over CPUs field by field (counters are what per-CPU maps hold).
 * Maps without BTF, or types we cannot decode, come out as hex.
 */
import { BtfType, records, typeById } from './bpf/btf';
import type { StructCodec } from './bpf/codec';
import { BpfMap, numPossibleCpus } from './bpf/map';
import { libbpf, readBytes, readCString } from './ffi';
import { containerObjects, kindOfFd, mapInfo, sharedObjectMaps, type MapInfo, withPinned } from './introspect';
import { registry } from '../plugins/index';
import { existsSync } from 'node:fs';
import { ConfigError } from './errors';
import { containerPinDir, Layout } from './state/paths';
import { readRecord } from './state/record';

const K = { INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8, VOLATILE: 9, CONST: 10, RESTRICT: 11, VAR: 14, DATASEC: 15, FLOAT: 16, DECL_TAG: 17, TYPE_TAG: 18, ENUM64: 19 };
const INT_SIGNED = 1;
const INT_CHAR = 2;
const INT_BOOL = 4;

// Map types whose entries get_next_key cannot list: event channels, and the local storages, whose
// values live on each socket/inode/task/cgroup rather than in the map.
const NOT_DUMPABLE: Record<number, string> = { 4: 'perf event array', 27: 'ring buffer', 31: 'user ring buffer', 3: 'program array', 22: 'queue', 23: 'stack', 30: 'bloom filter', 24: 'socket-local storage', 28: 'inode-local storage', 29: 'task-local storage', 32: 'cgroup-local storage' };
const PER_CPU = new Set([5, 6, 10, 21]);

export type Decoded = number | bigint | string | boolean | null | Decoded[] | { [k: string]: Decoded };

let codecCache: Map<string, StructCodec> | undefined;
/** Every struct codec our plugins export, by C struct name. */
export function pluginCodecs(): Map<string, StructCodec> {
  if (codecCache) return codecCache;
  codecCache = new Map();
  for (const { name } of registry) {
    let mod: Record<string, unknown>;
    try {
      // A pattern esbuild bundles as "every plugins/*/codec.ts", and jest resolves from source.
      mod = require(`../plugins/${name}/codec.ts`);
    } catch {
      continue;
    }
    for (const v of Object.values(mod))
      if (v && typeof v === 'object' && 'cName' in v && 'layout' in v) codecCache.set((v as StructCodec).cName, v as StructCodec);
  }
  return codecCache;
}

/** Makes codec output printable: bigints that fit become numbers, Buffers hex. */
function plain(v: unknown): Decoded {
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (Buffer.isBuffer(v)) return v.toString('hex');
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v as Decoded;
}

export class BtfDecoder {
  constructor(
    private readonly btf: unknown,
    private readonly codecs = pluginCodecs(),
  ) {}

  private type(id: number): BtfType {
    return typeById(this.btf, id);
  }

  private name(t: BtfType): string {
    return t.nameOff ? readCString(libbpf.btfNameByOffset(this.btf, t.nameOff)) : '';
  }

  /** Skips typedefs and qualifiers. */
  private resolve(id: number): { id: number; t: BtfType } {
    for (let i = 0; i < 32; i++) {
      const t = this.type(id);
      if (![K.TYPEDEF, K.VOLATILE, K.CONST, K.RESTRICT, K.TYPE_TAG].includes(t.kind)) return { id, t };
      id = t.sizeOrType;
    }
    throw new Error(`BTF type ${id}: qualifier chain too long`);
  }

  size(id: number): number {
    return Number(libbpf.btfResolveSize(this.btf, id));
  }

  /** Name of the struct a type id resolves to, if it is one (for headers and codec lookup). */
  typeName(id: number): string {
    const { t } = this.resolve(id);
    const n = this.name(this.type(id)) || this.name(t);
    return t.kind === K.STRUCT ? `struct ${this.name(t)}` : n || `kind ${t.kind}`;
  }

  decode(id: number, b: Buffer, off = 0, fieldName = ''): Decoded {
    const { id: rid, t } = this.resolve(id);
    switch (t.kind) {
      case K.INT: {
        const enc = readBytes(t.ptr, 4, 12).readUInt32LE(0);
        const bits = enc & 0xff;
        const flags = (enc >>> 24) & 0x0f;
        return this.int(b, off, t.sizeOrType, (flags & INT_SIGNED) !== 0, (flags & INT_BOOL) !== 0, bits);
      }
      case K.ENUM:
      case K.ENUM64: {
        const raw = this.int(b, off, t.sizeOrType, false, false, t.sizeOrType * 8);
        const width = t.kind === K.ENUM ? 8 : 12;
        const members = readBytes(t.ptr, 12 + t.vlen * width);
        for (let i = 0; i < t.vlen; i++) {
          const o = 12 + i * width;
          const val = t.kind === K.ENUM ? BigInt(members.readUInt32LE(o + 4)) : members.readBigUInt64LE(o + 4);
          if (val === BigInt(raw as number)) return readCString(libbpf.btfNameByOffset(this.btf, members.readUInt32LE(o)));
        }
        return raw;
      }
      case K.ARRAY: {
        const a = readBytes(t.ptr, 12, 12);
        const elem = a.readUInt32LE(0);
        const n = a.readUInt32LE(8);
        const esz = this.size(elem);
        const e = this.resolve(elem).t;
        if (e.kind === K.INT) {
          const enc = readBytes(e.ptr, 4, 12).readUInt32LE(0);
          if (esz === 1 && ((enc >>> 24) & INT_CHAR || /name|comm|str|path/i.test(fieldName))) {
            const s = b.subarray(off, off + n);
            const end = s.indexOf(0);
            return s.subarray(0, end < 0 ? n : end).toString('utf8');
          }
          const addr = addressText(fieldName, b.subarray(off, off + esz * n));
          if (addr) return addr;
        }
        return Array.from({ length: n }, (_, i) => this.decode(elem, b, off + i * esz));
      }
      case K.STRUCT:
      case K.UNION: {
        const codec = this.codecs.get(this.name(t));
        if (codec && codec.size === t.sizeOrType) return plain(codec.read(b, off));
        const out: Record<string, Decoded> = {};
        for (const [nameOff, type, offset] of records(t)) {
          const name = readCString(libbpf.btfNameByOffset(this.btf, nameOff)) || `_${Object.keys(out).length}`;
          const bitOff = t.kflag ? offset & 0xffffff : offset;
          const bitSize = t.kflag ? offset >>> 24 : 0;
          if (bitSize) out[name] = this.bits(b, off, bitOff, bitSize);
          else out[name] = this.decode(type, b, off + bitOff / 8, name);
        }
        return out;
      }
      case K.DATASEC: {
        const out: Record<string, Decoded> = {};
        for (const [varId, offset] of records(t)) {
          const v = this.type(varId);
          out[this.name(v)] = this.decode(v.sizeOrType, b, off + offset, this.name(v));
        }
        return out;
      }
      case K.VAR:
        return this.decode(t.sizeOrType, b, off, this.name(t));
      case K.PTR:
        return `0x${b.readBigUInt64LE(off).toString(16)}`;
      case K.FLOAT:
        return t.sizeOrType === 4 ? b.readFloatLE(off) : b.readDoubleLE(off);
      default:
        return b.subarray(off, off + Math.max(0, this.size(rid))).toString('hex');
    }
  }

  private int(b: Buffer, off: number, size: number, signed: boolean, bool: boolean, bits: number): Decoded {
    let v: bigint;
    if (size === 1) v = BigInt(signed ? b.readInt8(off) : b.readUInt8(off));
    else if (size === 2) v = BigInt(signed ? b.readInt16LE(off) : b.readUInt16LE(off));
    else if (size === 4) v = BigInt(signed ? b.readInt32LE(off) : b.readUInt32LE(off));
    else if (size === 8) v = signed ? b.readBigInt64LE(off) : b.readBigUInt64LE(off);
    else return b.subarray(off, off + size).toString('hex');
    if (bits < size * 8 && bits > 0) v &= (1n << BigInt(bits)) - 1n;
    if (bool) return v !== 0n;
    return plain(v);
  }

  private bits(b: Buffer, off: number, bitOff: number, bitSize: number): Decoded {
    let v = 0n;
    for (let i = 0; i < bitSize; i++) {
      const bit = bitOff + i;
      if ((b[off + (bit >> 3)] >> (bit & 7)) & 1) v |= 1n << BigInt(i);
    }
    return plain(v);
  }
}

/*
 * Generic decoding sees only bytes; a field whose name says it holds an address (ip6, addr,
 * saddr, daddr...) and has an address's size is shown as one. Structs with a codec skip this.
 */
function addressText(field: string, raw: Buffer): string | null {
  if (!/(^|_)(ip6?|ip4|addr6?|addr4|saddr6?|daddr6?|src6?|dst6?)$/i.test(field)) return null;
  const { ip4Addr, ip6Addr } = require('./bpf/codec') as typeof import('./bpf/codec');
  if (raw.length === 16) return ip6Addr.read(raw, 0);
  if (raw.length === 4 && /4$|^(ip|addr|saddr|daddr|src|dst)$/i.test(field.split('_').pop()!)) return ip4Addr.read(raw, 0);
  return null;
}

/** Sums per-CPU decoded values field by field; strings (addresses, names) keep the first. */
export function sumDecoded(values: Decoded[]): Decoded {
  const [first, ...rest] = values;
  if (typeof first === 'number' || typeof first === 'bigint') {
    let big = false;
    let acc = 0n;
    for (const v of values) {
      acc += BigInt(v as number | bigint);
      if (typeof v === 'bigint') big = true;
    }
    return big || acc > BigInt(Number.MAX_SAFE_INTEGER) ? acc : Number(acc);
  }
  if (Array.isArray(first)) return first.map((_, i) => sumDecoded(values.map((v) => (v as Decoded[])[i])));
  if (first && typeof first === 'object') {
    const out: Record<string, Decoded> = {};
    for (const k of Object.keys(first)) out[k] = sumDecoded(values.map((v) => (v as Record<string, Decoded>)[k]));
    return out;
  }
  void rest;
  return first;
}

export interface MapDump {
  map: MapInfo;
  keyType: string | null;
  valueType: string | null;
  perCpu: boolean;
  entries: { key: Decoded; value: Decoded }[];
  /** More entries exist than were read. */
  truncated: boolean;
  /** Why nothing could be listed (ring buffers and the like), if so. */
  note?: string;
}

type Entry = { key: Decoded; value: Decoded };

/** Reads and decodes up to `limit` entries of a map given by fd (those `keep` accepts, if given). */
export function dumpMapFd(fd: number, label: string, limit = 1000, keep?: (e: Entry, info: MapInfo) => boolean): MapDump {
  const info = mapInfo(fd);
  const perCpu = PER_CPU.has(info.typeId);
  const base: MapDump = { map: info, keyType: null, valueType: null, perCpu, entries: [], truncated: false };
  if (NOT_DUMPABLE[info.typeId]) return { ...base, note: `${NOT_DUMPABLE[info.typeId]}: entries cannot be listed` };
  let btf: unknown = null;
  if (info.btfId) btf = libbpf.btfLoadFromKernelById(info.btfId);
  try {
    const dec = btf ? new BtfDecoder(btf) : null;
    const keyDec = (b: Buffer): Decoded => (dec && info.btfKeyTypeId ? dec.decode(info.btfKeyTypeId, b) : keyHex(b));
    const valDec = (b: Buffer, off: number): Decoded => (dec && info.btfValueTypeId ? dec.decode(info.btfValueTypeId, b, off) : b.subarray(off, off + info.valueSize).toString('hex'));
    base.keyType = dec && info.btfKeyTypeId ? dec.typeName(info.btfKeyTypeId) : null;
    base.valueType = dec && info.btfValueTypeId ? dec.typeName(info.btfValueTypeId) : null;
    const map = BpfMap.borrow(fd, label);
    const stride = Math.ceil(info.valueSize / 8) * 8;
    const ncpu = numPossibleCpus();
    for (const k of map.keysRaw(info.keySize)) {
      if (base.entries.length >= limit) {
        base.truncated = true;
        break;
      }
      const v = map.lookupRaw(k, perCpu ? stride * ncpu : info.valueSize);
      if (!v) continue; // removed while we iterated
      const value = perCpu ? sumDecoded(Array.from({ length: ncpu }, (_, i) => valDec(v, i * stride))) : valDec(v, 0);
      const e = { key: info.keySize ? keyDec(k) : null, value };
      if (!keep || keep(e, info)) base.entries.push(e);
    }
    return base;
  } finally {
    if (btf) libbpf.btfFree(btf);
  }
}

function keyHex(b: Buffer): Decoded {
  return b.length === 4 ? b.readUInt32LE(0) : b.toString('hex');
}

export interface PinnedMapDump extends MapDump {
  /** Pin path, and the path relative to the container's pin dir (plugin/map_name). */
  path: string;
  rel: string;
}

/** Decodes a map at a pin path. */
export function dumpPinnedMap(path: string, rel = path, limit?: number, keep?: (e: Entry, info: MapInfo) => boolean): PinnedMapDump {
  return withPinned(path, (fd) => {
    if (kindOfFd(fd) !== 'map') throw new ConfigError(`${path} is not a pinned map`);
    return { path, rel, ...dumpMapFd(fd, path, limit, keep) };
  });
}

/**
 * A host-wide map shown for one container: its entries only, told by the cgroup id in the key
 * (cgroup storage) or in the value's cgroup_id field (lib/bpf/shared.ts).
 */
const ofCgroup = (cgroupId: string) => (e: Entry, info: MapInfo) =>
  info.type.startsWith('cgroup_storage') ? String(e.key) === cgroupId : String((e.value as Record<string, Decoded> | null)?.cgroup_id) === cgroupId;

/**
 * Every pinned map of a container (or the ones whose pin or kernel name is `only`), decoded:
 * its own pins, then the maps of host-wide loaded objects it is linked from, filtered to it
 * (named _shared/objects/<set>/map_<name>).
 */
export function inspectContainer(layout: Layout, id: string, only?: string, limit?: number): PinnedMapDump[] {
  const dir = containerPinDir(layout, id);
  const rec = readRecord(layout, id);
  if (!existsSync(dir) && !rec) throw new ConfigError(`no container ${JSON.stringify(id)} is managed here (see taskwire ls)`);
  const { sharedObjectsOf } = require('./inventory') as typeof import('./inventory');
  const shared = (rec ? sharedObjectsOf(rec) : []).filter((dir) => existsSync(dir)).flatMap(sharedObjectMaps);
  const maps = [...containerObjects(layout, id).filter((o) => o.kind === 'map'), ...shared];
  const wanted = only
    ? maps.filter((o) => [o.rel, o.rel.split('/').pop(), o.rel.split('/').pop()!.replace(/^map_/, ''), o.map?.name].includes(only))
    : maps;
  if (only && !wanted.length)
    throw new ConfigError(`container ${id} has no pinned map ${JSON.stringify(only)} (pinned: ${maps.map((m) => m.rel).join(', ') || 'none'})`);
  return wanted.map((o) => dumpPinnedMap(o.path, o.rel, limit, shared.includes(o) ? ofCgroup(rec!.cgroupId) : undefined));
}
