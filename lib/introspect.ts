/*
 * What the kernel says about a container's pinned objects: each pin opened and asked with
 * bpf_obj_get_info_by_fd. A pinned link leads to its program (run count, run time, JIT size);
 * a pinned map gives its shape, BTF ids and (from fdinfo) the memory charged for it. This is the
 * data behind `taskwire ls`, `stats` and `inspect`, read-only: nothing here changes state.
 *
 * Run-time counters only move while kernel BPF stats are on (sysctl kernel.bpf_stats_enabled,
 * or an fd from bpf_enable_stats(BPF_STATS_RUN_TIME) that keeps them on until closed), because
 * they cost a clock read per program run; `withRunTimeStats` holds that fd for a sample.
 */
import { pinsOf } from './inventory';
import { closeSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import { joinPath } from './path';
import { SyscallError } from './errors';
import { addressOf, bpfSys, libbpf } from './ffi';
import { checkInt } from './bpf/libbpf';
import { enumName, fdinfo, infoByFd, mapInfo, type MapInfo } from './bpf/info';
import { containerPinDir, Layout } from './state/paths';

export { enumName, mapInfo, type MapInfo };

export type PinKind = 'link' | 'map' | 'prog' | 'unknown';

export interface LinkInfo {
  id: number;
  type: string;
  progId: number;
  /** cgroup:<id>, netns:<inode>, ifindex:<n> (tcx, netkit, xdp), as far as the kernel tells. */
  target: string;
  attachType: string | null;
}

export interface ProgInfo {
  id: number;
  name: string;
  type: string;
  tag: string;
  jitedBytes: number;
  xlatedBytes: number;
  runCnt: bigint;
  runTimeNs: bigint;
  verifiedInsns: number;
  mapIds: number[];
  /** Memory charged for the program (fdinfo memlock), bytes. */
  memlock: number;
}

export interface PinnedObject {
  /** Path relative to the container's pin dir, e.g. ip-per-task/link_tw_ipt_bind4. */
  rel: string;
  path: string;
  plugin: string;
  kind: PinKind;
  /** The program's full name: the kernel keeps 15 characters, our link pins keep all. */
  program?: string;
  link?: LinkInfo;
  prog?: ProgInfo;
  map?: MapInfo;
  error?: string;
}

const PROG_INFO_SIZE = 232;
const LINK_INFO_SIZE = 48;
const LINK_CGROUP = 3;
const LINK_NETNS = 5;
const LINK_XDP = 6;
const LINK_TCX = 11;
const LINK_NETKIT = 13;

export function kindOfFd(fd: number): PinKind {
  const target = readlinkSync(`/proc/self/fd/${fd}`);
  if (target.includes('bpf-map')) return 'map';
  if (target.includes('bpf-prog')) return 'prog';
  if (target.includes('bpf_link') || target.includes('bpf-link')) return 'link';
  return 'unknown';
}

export function linkInfo(fd: number): LinkInfo {
  const b = infoByFd(fd, LINK_INFO_SIZE, 'link info');
  const type = b.readUInt32LE(0);
  let target = '';
  let attach: number | null = null;
  if (type === LINK_CGROUP) {
    target = `cgroup:${b.readBigUInt64LE(16)}`;
    attach = b.readUInt32LE(24);
  } else if (type === LINK_NETNS) {
    target = `netns:${b.readUInt32LE(16)}`;
    attach = b.readUInt32LE(20);
  } else if (type === LINK_XDP) target = `ifindex:${b.readUInt32LE(16)}`;
  else if (type === LINK_TCX || type === LINK_NETKIT) {
    target = `ifindex:${b.readUInt32LE(16)}`;
    attach = b.readUInt32LE(20);
  }
  return {
    id: b.readUInt32LE(4),
    type: enumName(libbpf.linkTypeStr, type),
    progId: b.readUInt32LE(8),
    target,
    attachType: attach === null ? null : enumName(libbpf.attachTypeStr, attach),
  };
}

export function progInfo(fd: number): ProgInfo {
  // First ask how many maps it uses, then again with room for their ids.
  const first = infoByFd(fd, PROG_INFO_SIZE, 'program info');
  const nMaps = first.readUInt32LE(52);
  const ids = Buffer.alloc(4 * Math.max(nMaps, 1));
  let b = first;
  if (nMaps > 0) {
    b = infoByFd(fd, PROG_INFO_SIZE, 'program info', (buf) => {
      buf.writeUInt32LE(nMaps, 52);
      buf.writeBigUInt64LE(addressOf(ids), 56);
    });
  }
  const name = b.subarray(64, 80);
  const end = name.indexOf(0);
  return {
    id: b.readUInt32LE(4),
    name: name.subarray(0, end < 0 ? 16 : end).toString('utf8'),
    type: enumName(libbpf.progTypeStr, b.readUInt32LE(0)),
    tag: b.subarray(8, 16).toString('hex'),
    jitedBytes: b.readUInt32LE(16),
    xlatedBytes: b.readUInt32LE(20),
    runTimeNs: b.readBigUInt64LE(192),
    runCnt: b.readBigUInt64LE(200),
    verifiedInsns: b.readUInt32LE(216),
    mapIds: Array.from({ length: nMaps }, (_, i) => ids.readUInt32LE(i * 4)),
    memlock: Number(fdinfo(fd).memlock ?? 0),
  };
}

/** Runs fn with an fd open on a pinned object; the fd is closed after. */
export function withPinned<T>(path: string, fn: (fd: number) => T): T {
  const fd = checkInt(bpfSys.objGet(path), `open pin ${path}`);
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

export function withProgById<T>(id: number, fn: (fd: number) => T): T {
  const fd = checkInt(libbpf.progGetFdById(id) as number, `open program id ${id}`);
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

export function describePin(path: string, rel: string): PinnedObject {
  const plugin = rel.includes('/') ? rel.split('/')[0] : '';
  try {
    return withPinned(path, (fd) => {
      const kind = kindOfFd(fd);
      const o: PinnedObject = { rel, path, plugin, kind };
      if (kind === 'map') o.map = mapInfo(fd);
      else if (kind === 'prog') o.prog = progInfo(fd);
      else if (kind === 'link') {
        o.link = linkInfo(fd);
        // A link whose cgroup died is defunct but still names its program while pinned.
        if (o.link.progId) o.prog = withProgById(o.link.progId, progInfo);
      }
      if (o.prog) {
        const pin = rel.split('/').pop()!.replace(/^link_/, '');
        o.program = pin.startsWith(o.prog.name) ? pin : o.prog.name;
      }
      return o;
    });
  } catch (err) {
    return { rel, path, plugin, kind: 'unknown', error: err instanceof Error ? err.message : String(err) };
  }
}

/** Every pinned object of a container, with what the kernel says about it. */
export function containerObjects(layout: Layout, id: string): PinnedObject[] {
  const dir = containerPinDir(layout, id);
  return pinsOf(layout, id).map((rel) => describePin(joinPath(dir, rel), rel));
}

/** The maps of a host-wide loaded object (lib/bpf/shared.ts), named _shared/objects/<set>/map_<name>. */
export function sharedObjectMaps(dir: string): PinnedObject[] {
  const rel = `_shared/objects/${basename(dir)}`;
  return readdirSync(dir)
    .filter((n) => n.startsWith('map_'))
    .sort()
    .map((n) => describePin(joinPath(dir, n), `${rel}/${n}`));
}

/** Whether the kernel counts run time right now (someone holds stats on, or the sysctl). */
export function runTimeStatsOn(): boolean {
  try {
    return readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim() === '1';
  } catch {
    return false;
  }
}

const BPF_STATS_RUN_TIME = 0;

/** Keeps kernel BPF run-time stats on while fn runs (the fd turns them off when closed). */
export async function withRunTimeStats<T>(fn: () => Promise<T>): Promise<T> {
  const rc = libbpf.enableStats(BPF_STATS_RUN_TIME) as number;
  if (rc < 0) throw new SyscallError('BPF', 'enable BPF run-time stats', -rc);
  try {
    return await fn();
  } finally {
    closeSync(rc);
  }
}

export interface ProgramCost {
  plugin: string;
  program: string;
  pin: string;
  attached: boolean;
  target: string;
  prog: ProgInfo;
}

export interface ContainerCost {
  id: string;
  programs: ProgramCost[];
  /** Every map the container's programs use or its pins hold, once each. */
  maps: { id: number; name: string; type: string; memlock: number; pinned: boolean }[];
  programBytes: number;
  mapBytes: number;
}

/** A link is defunct once its cgroup or netns is gone: the kernel then reports target 0. */
export function isAttached(link: LinkInfo): boolean {
  return !/:0$/.test(link.target);
}

/** What a container costs the host: its programs (with run stats) and the memory of its maps. */
export function containerCost(layout: Layout, id: string): ContainerCost {
  const objs = containerObjects(layout, id);
  const programs: ProgramCost[] = [];
  const maps = new Map<number, ContainerCost['maps'][number]>();
  for (const o of objs) {
    if (o.map) maps.set(o.map.id, { id: o.map.id, name: o.map.name, type: o.map.type, memlock: o.map.memlock, pinned: true });
    if (o.prog) programs.push({ plugin: o.plugin, program: o.program!, pin: o.rel, attached: o.link ? isAttached(o.link) : false, target: o.link?.target ?? '', prog: o.prog });
  }
  for (const p of programs)
    for (const mid of p.prog.mapIds) {
      if (maps.has(mid)) continue;
      const fd = libbpf.mapGetFdById(mid) as number;
      if (fd < 0) continue; // freed meanwhile
      try {
        const m = mapInfo(fd);
        maps.set(mid, { id: mid, name: m.name, type: m.type, memlock: m.memlock, pinned: false });
      } finally {
        closeSync(fd);
      }
    }
  const list = [...maps.values()].sort((a, b) => a.id - b.id);
  return {
    id,
    programs,
    maps: list,
    programBytes: programs.reduce((n, p) => n + p.prog.memlock, 0),
    mapBytes: list.reduce((n, m) => n + m.memlock, 0),
  };
}
