/*
 * Named endpoint sets, shared host-wide. One pinned hash <bpffs>/taskwire/_shared/twfw/
 * map_tw_fw_setmem maps an endpoint (address, port or 0 for any) to a 64-bit mask of the sets it
 * belongs to; every container's object reuses that map (reuseMaps) rather than copying it, so
 * `taskwire set update` changes one map and every container sees the new members on its next
 * packet, at O(changed endpoints) whatever the number of containers. The name → bit registry
 * and the member lists live in <runDir>/twfw/sets.json, changed under a lock.
 *
 * Sets come from the host config (plugins.twfw.sets, registered when first needed) and from
 * `set update`, which wins until the host is rebooted (both the run dir and bpffs are volatile).
 */
import { existsSync } from 'node:fs';
import { joinPath } from '../../lib/path';
import { ConfigError, TaskwireError } from '../../lib/errors';
import { BpfMap } from '../../lib/bpf/map';
import { parseIp } from '../../lib/net/addr';
import { readStateFile, writeFileAtomic } from '../../lib/state/atomic';
import { withFileLock } from '../../lib/state/lock';
import { Layout, sharedPluginPinDir } from '../../lib/state/paths';
import { endpoint, setMask } from './codec';

const BPF_MAP_TYPE_HASH = 1;
export const MAX_SETS = 64;
export const MAX_ENDPOINTS = 65536;
const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;

export interface Endpoint {
  address: string;
  port: number;
}

interface Registry {
  version: 1;
  sets: Record<string, { bit: number; members: string[] }>;
}

export const setsMapPath = (l: Layout) => joinPath(sharedPluginPinDir(l, 'twfw'), 'map_tw_fw_setmem');
export const registryPath = (l: Layout) => joinPath(l.runDir, 'twfw', 'sets.json');
const lockPath = (l: Layout) => joinPath(l.runDir, 'twfw', 'sets.lock');

/** "10.0.0.5", "10.0.0.5:5432", "fd00::5", "[fd00::5]:5432". */
export function parseEndpoint(text: string, what: string): Endpoint {
  let host = text;
  let port = 0;
  const v6 = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(text);
  const v4 = /^([0-9.]+):(\d{1,5})$/.exec(text);
  if (v6) [host, port] = [v6[1], Number(v6[2] ?? 0)];
  else if (v4) [host, port] = [v4[1], Number(v4[2])];
  if (port > 65535) throw new ConfigError(`${what}: port in ${JSON.stringify(text)} is over 65535`);
  return { address: parseIp(host, what).address, port };
}

export function endpointText(e: Endpoint): string {
  const a = e.address.includes(':') ? `[${e.address}]` : e.address;
  return e.port ? `${a}:${e.port}` : e.address.includes(':') ? e.address : a;
}

export function validateSetName(name: string): string {
  if (!NAME_RE.test(name)) throw new ConfigError(`set name ${JSON.stringify(name)} is not valid (lower-case letters, digits, _ and -, up to 32)`);
  return name;
}

/**
 * The registry of set names, bits and members. A damaged one is an error, never an empty
 * registry: the next change would hand out bits that running containers' rules already match on.
 */
function readRegistry(l: Layout): Registry {
  const path = registryPath(l);
  const shaped = (v: unknown): v is Registry => typeof v === 'object' && v !== null && typeof (v as Registry).sets === 'object' && (v as Registry).sets !== null;
  const reg = readStateFile(path, shaped, (detail) => new TaskwireError('STATE', `endpoint set registry ${path} is damaged (${detail || 'not a set registry'}): which bit each set has is unknown, so no set is used or changed until it is repaired`));
  return reg ?? { version: 1, sets: {} };
}

/** Members of each known set (registry first, host config for sets not registered yet); no kernel. */
export function knownSets(l: Layout, hostSets: Record<string, string[]> = {}): Record<string, string[]> {
  const out: Record<string, string[]> = { ...hostSets };
  for (const [name, s] of Object.entries(readRegistry(l).sets)) out[name] = s.members;
  return out;
}

function entryKey(e: Endpoint): Buffer {
  return endpoint.encode({ addr: e.address, port: e.port, pad: 0 });
}

function setBit(map: BpfMap, e: Endpoint, bit: number, on: boolean): void {
  const k = entryKey(e);
  const cur = map.lookupRaw(k, 8);
  const mask = cur ? cur.readBigUInt64LE(0) : 0n;
  const next = on ? mask | (1n << BigInt(bit)) : mask & ~(1n << BigInt(bit));
  if (next === mask) return;
  if (next === 0n) map.deleteRaw(k);
  else {
    const v = Buffer.alloc(setMask.size);
    v.writeBigUInt64LE(next);
    map.updateRaw(k, v);
  }
}

function openOrCreateMap(l: Layout, reg: Registry): BpfMap {
  const path = setsMapPath(l);
  if (existsSync(path)) return BpfMap.openPinned(path);
  const { ensureSharedPinDir } = require('../../lib/host/discovery') as typeof import('../../lib/host/discovery');
  ensureSharedPinDir(l, 'twfw');
  const map = BpfMap.create(BPF_MAP_TYPE_HASH, 'tw_fw_setmem', endpoint.size, setMask.size, MAX_ENDPOINTS);
  try {
    // A fresh map after a bpffs remount: the registry still knows every member.
    for (const [name, s] of Object.entries(reg.sets)) for (const m of s.members) setBit(map, parseEndpoint(m, `set ${name}`), s.bit, true);
    map.pin(path);
    return map;
  } catch (err) {
    map.close();
    throw err;
  }
}

function replaceMembers(map: BpfMap, reg: Registry, name: string, members: string[]): void {
  let s = reg.sets[name];
  if (!s) {
    const used = new Set(Object.values(reg.sets).map((x) => x.bit));
    let bit = 0;
    while (used.has(bit)) bit++;
    if (bit >= MAX_SETS) throw new ConfigError(`set ${name}: the host already has ${MAX_SETS} sets`);
    s = reg.sets[name] = { bit, members: [] };
  }
  const next = members.map((m) => parseEndpoint(m, `set ${name}`));
  const nextKeys = new Set(next.map(endpointText));
  // Add before removing, so an endpoint kept in the set is never absent in between.
  for (const e of next) setBit(map, e, s.bit, true);
  for (const m of s.members) if (!nextKeys.has(endpointText(parseEndpoint(m, `set ${name}`)))) setBit(map, parseEndpoint(m, `set ${name}`), s.bit, false);
  s.members = [...nextKeys];
}

/**
 * The shared map, with every set `names` needs registered (from the host config when new);
 * returns the map (caller closes) and each name's bit. Refuses unknown or empty sets.
 */
export function prepareSets(l: Layout, hostSets: Record<string, string[]>, names: string[]): { map: BpfMap; bits: Record<string, number> } {
  return withFileLock(lockPath(l), () => {
    const reg = readRegistry(l);
    const map = openOrCreateMap(l, reg);
    try {
      let changed = false;
      for (const name of names) {
        if (reg.sets[name]) continue;
        if (!hostSets[name]) throw new ConfigError(`set ${name} is not defined (host config plugins.twfw.sets or taskwire set update)`);
        replaceMembers(map, reg, name, hostSets[name]);
        changed = true;
      }
      if (changed) writeFileAtomic(registryPath(l), JSON.stringify(reg, null, 1));
      const bits: Record<string, number> = {};
      for (const name of names) bits[name] = reg.sets[name].bit;
      return { map, bits };
    } catch (err) {
      map.close();
      throw err;
    }
  });
}

/** `taskwire set update NAME ENDPOINTS...`: the new members for every container at once. */
export function updateSet(l: Layout, name: string, members: string[]): { bit: number; members: string[] } {
  validateSetName(name);
  members.forEach((m) => parseEndpoint(m, `set ${name}`));
  return withFileLock(lockPath(l), () => {
    const reg = readRegistry(l);
    const map = openOrCreateMap(l, reg);
    try {
      replaceMembers(map, reg, name, members);
      writeFileAtomic(registryPath(l), JSON.stringify(reg, null, 1));
      return reg.sets[name];
    } finally {
      map.close();
    }
  });
}

export function listSets(l: Layout, hostSets: Record<string, string[]> = {}): { name: string; bit: number | null; members: string[] }[] {
  const reg = readRegistry(l);
  const names = [...new Set([...Object.keys(hostSets), ...Object.keys(reg.sets)])].sort();
  return names.map((n) => ({ name: n, bit: reg.sets[n]?.bit ?? null, members: reg.sets[n]?.members ?? hostSets[n] }));
}
