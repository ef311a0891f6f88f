/*
 * bpf_obj_get_info_by_fd and what it returns for a map: the one definition of struct
 * bpf_map_info's layout on this side. Kept apart from lib/introspect.ts (the CLI's view of pins,
 * links and programs) so that a hook checking a map's shape loads only this.
 */
import { readFileSync } from 'node:fs';
import { bpfSys, libbpf, readCString } from '../ffi';
import { checkInt } from './libbpf';

export interface MapInfo {
  id: number;
  name: string;
  type: string;
  typeId: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  btfId: number;
  btfKeyTypeId: number;
  btfValueTypeId: number;
  /** Memory charged for the map (fdinfo memlock), bytes. */
  memlock: number;
}

const MAP_INFO_SIZE = 88;

/** A kernel enum value by libbpf's name for it (#N past what this libbpf knows). */
export function enumName(fn: (t: number) => unknown, t: number): string {
  const s = fn(t);
  return s ? readCString(s) : `#${t}`;
}

export function infoByFd(fd: number, size: number, what: string, prepare?: (b: Buffer) => void): Buffer {
  const buf = Buffer.alloc(size);
  prepare?.(buf);
  checkInt(bpfSys.objGetInfoByFd(fd, buf), what);
  return buf;
}

/** /proc/self/fdinfo of a descriptor, as key → value text. */
export function fdinfo(fd: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

/** struct bpf_map_info alone: one syscall (a hook checking a map's shape needs no more). */
export function mapShape(fd: number): Omit<MapInfo, 'type' | 'memlock'> {
  const b = infoByFd(fd, MAP_INFO_SIZE, 'map info');
  const name = b.subarray(24, 40);
  const end = name.indexOf(0);
  return {
    id: b.readUInt32LE(4),
    name: name.subarray(0, end < 0 ? 16 : end).toString('utf8'),
    typeId: b.readUInt32LE(0),
    keySize: b.readUInt32LE(8),
    valueSize: b.readUInt32LE(12),
    maxEntries: b.readUInt32LE(16),
    flags: b.readUInt32LE(20),
    btfId: b.readUInt32LE(64),
    btfKeyTypeId: b.readUInt32LE(68),
    btfValueTypeId: b.readUInt32LE(72),
  };
}

/** The shape, with libbpf's name for its type and the memory charged for it (fdinfo). */
export function mapInfo(fd: number): MapInfo {
  const shape = mapShape(fd);
  return { ...shape, type: enumName(libbpf.mapTypeStr, shape.typeId), memlock: Number(fdinfo(fd).memlock ?? 0) };
}
