/*
 * Just enough BTF reading for two jobs: finding the offset of a .rodata variable (constants set
 * before load) and comparing a struct's layout with its TypeScript codec.
 */
import { ConfigError } from '../errors';
import { libbpf, readBytes, readCString } from '../ffi';

/** BTF kinds (linux/btf.h BTF_KIND_*) this module and its tests read. */
export const BTF_KIND = { STRUCT: 4, UNION: 5, VAR: 14, DATASEC: 15 } as const;
const TYPE_HDR = 12;

export interface BtfType {
  nameOff: number;
  kind: number;
  vlen: number;
  kflag: boolean;
  sizeOrType: number;
  ptr: unknown;
}

export function typeById(btf: unknown, id: number): BtfType {
  const ptr = libbpf.btfTypeById(btf, id);
  const hdr = readBytes(ptr, TYPE_HDR);
  const info = hdr.readUInt32LE(4);
  return {
    nameOff: hdr.readUInt32LE(0),
    vlen: info & 0xffff,
    kind: (info >>> 24) & 0x1f,
    kflag: info >>> 31 === 1,
    sizeOrType: hdr.readUInt32LE(8),
    ptr,
  };
}

/** Triples following a struct/datasec header: (name_off|type, type|offset, offset|size). */
export function records(t: BtfType): number[][] {
  const raw = readBytes(t.ptr, TYPE_HDR + t.vlen * 12);
  return Array.from({ length: t.vlen }, (_, i) => {
    const o = TYPE_HDR + i * 12;
    return [raw.readUInt32LE(o), raw.readUInt32LE(o + 4), raw.readUInt32LE(o + 8)];
  });
}

export interface BtfMember {
  name: string;
  offset: number;
  size: number;
}

export function structLayout(btf: unknown, name: string): { size: number; members: BtfMember[] } | undefined {
  const id = libbpf.btfFindByNameKind(btf, name, BTF_KIND.STRUCT) as number;
  if (id < 0) return undefined;
  const t = typeById(btf, id);
  const members = records(t).map(([nameOff, type, offset]) => ({
    name: readCString(libbpf.btfNameByOffset(btf, nameOff)),
    offset: (t.kflag ? offset & 0xffffff : offset) / 8,
    size: Number(libbpf.btfResolveSize(btf, type)),
  }));
  return { size: t.sizeOrType, members };
}

/** Offset and size of a global variable in a data section (".rodata", ".bss"). */
export function sectionVariable(btf: unknown, section: string, variable: string): { offset: number; size: number } {
  const id = libbpf.btfFindByNameKind(btf, section, BTF_KIND.DATASEC) as number;
  if (id < 0) throw new ConfigError(`BPF object has no ${section} section`);
  for (const [type, offset, size] of records(typeById(btf, id))) {
    const v = typeById(btf, type);
    if (v.kind === BTF_KIND.VAR && readCString(libbpf.btfNameByOffset(btf, v.nameOff)) === variable) return { offset, size };
  }
  throw new ConfigError(`BPF object has no variable ${variable} in ${section}`);
}
