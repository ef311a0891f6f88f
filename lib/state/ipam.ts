/*
 * Address allocation shared by every hook on the host, under the run directory: one file per
 * address claimed (<runDir>/ipam/<address>, naming its owner and device so `gc` can undo it),
 * changed only under flock, so twenty hooks starting at once still get distinct addresses.
 * Explicit addresses are registered too, which is how "in use by another container" is detected.
 *
 * A file per address rather than one file of them all: a hook claims or releases in a few
 * syscalls however many containers the host runs. With one JSON file, each claim parsed and
 * rewrote every allocation of the host (1,000 took a createRuntime ~10 ms more).
 *
 * Pools are handed out round robin from the offset last handed out (ipam/cursor-<prefix>), as
 * CNI's host-local does: an address just released is not the next container's (its peers may
 * still hold connections to it), and a claim on a busy host looks at the next slot or two.
 *
 * Allocations of earlier versions (one ipam.json) are moved here at the first claim; the old
 * file stays as ipam.json.migrated. A taskwire older than this one reads only ipam.json: going
 * back to it while containers run needs their allocations moved back by hand.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { joinPath } from '../path';
import { TaskwireError } from '../errors';
import { Cidr, cidrToString, nthAddress, parseIp, prefixSize } from '../net/addr';
import { isoTime } from '../time';
import { listDir, readJsonFile, writeFileAtomic } from './atomic';
import { withFileLock } from './lock';
import { ipamDir, ipamLockPath, Layout, legacyIpamPath } from './paths';

export interface IpamEntry {
  owner: string;
  device: string;
  since: string;
}

type IpamState = Record<string, IpamEntry>;

// Addresses are their own file names: IPv6 text has no '/', and no dot leads one.
const entryPath = (l: Layout, address: string) => joinPath(ipamDir(l), address);
const cursorPath = (l: Layout, prefix: Cidr) => joinPath(ipamDir(l), `cursor-${cidrToString(prefix).replace('/', '_')}`);
/** An entry's file name is an address in canonical text; anything else there is not ours to read. */
function isEntryName(n: string): boolean {
  if (n.startsWith('.') || n.startsWith('cursor-')) return false;
  try {
    return parseIp(n, 'allocation').address === n;
  } catch {
    return false;
  }
}

/** A JSON file of the store, or undefined; an unreadable one is an IPAM error naming it. */
function readStoreFile<T>(path: string): T | undefined {
  try {
    return readJsonFile<T>(path);
  } catch (err) {
    throw new TaskwireError('IPAM', `address allocations: ${path} is unreadable: ${(err as Error).message}`);
  }
}

function readEntry(l: Layout, address: string): IpamEntry | undefined {
  return readStoreFile<IpamEntry>(entryPath(l, address));
}

function writeEntry(l: Layout, address: string, e: IpamEntry): void {
  writeFileAtomic(entryPath(l, address), JSON.stringify(e));
}

/** The allocations of an ipam.json that earlier versions kept (none: no such file). */
function legacyEntries(l: Layout): IpamState {
  return readStoreFile<{ addresses?: IpamState }>(legacyIpamPath(l))?.addresses ?? {};
}

/** Allocations kept in one ipam.json by earlier versions become files, once, under the lock. */
function migrateLegacy(l: Layout): void {
  const legacy = legacyIpamPath(l);
  if (!existsSync(legacy)) return;
  for (const [address, e] of Object.entries(legacyEntries(l))) if (!existsSync(entryPath(l, address))) writeEntry(l, address, e);
  renameSync(legacy, `${legacy}.migrated`);
}

function locked<T>(l: Layout, fn: () => T): T {
  return withFileLock(ipamLockPath(l), () => {
    migrateLegacy(l);
    return fn();
  });
}

/**
 * Every allocation on the host (gc, the undo sweep, the CLI): a directory read. Entries that
 * cannot be read are left out (a claim still counts them as taken); a directory that cannot be
 * read is an error, not an empty host.
 */
export function ipamEntries(l: Layout): IpamState {
  // The old file first: a migration between the two reads then cannot hide an allocation.
  const out: IpamState = legacyEntries(l);
  let names: string[];
  try {
    names = listDir(ipamDir(l)).filter(isEntryName);
  } catch (err) {
    throw new TaskwireError('IPAM', `address allocations ${ipamDir(l)} are unreadable: ${(err as Error).message}`);
  }
  for (const n of names) {
    try {
      const e = readEntry(l, n);
      if (e) out[n] = e;
    } catch {
      /* unreadable entry: see above */
    }
  }
  return out;
}

/** An address to claim: a given one, or the next free one of a pool prefix not `isTaken`. */
export type Claim = { address: string } | { prefix: Cidr; isTaken?: (a: string) => boolean };

/** The offset last handed out; a cursor that is missing or damaged starts the pool over (it is a hint). */
function readCursor(path: string): bigint {
  if (!existsSync(path)) return 0n;
  const text = readFileSync(path, 'utf8').trim();
  return /^[0-9]{1,20}$/.test(text) ? BigInt(text) : 0n;
}

/** The address claimed, and whether this claim made its entry (not one the owner held already). */
function claimOne(l: Layout, c: Claim, e: IpamEntry): { address: string; made: boolean } {
  if ('address' in c) {
    const held = readEntry(l, c.address);
    if (held && held.owner !== e.owner) throw new TaskwireError('IPAM', `address ${c.address} is in use by container ${held.owner}`);
    if (!held) writeEntry(l, c.address, e);
    return { address: c.address, made: !held };
  }
  const { prefix, isTaken = () => false } = c;
  const size = prefixSize(prefix);
  const last = prefix.family === 4 ? size - 2n : size - 1n; // offsets 1..last: no network address, no IPv4 broadcast
  const slots = last < 65536n ? last : 65536n; // a bound: pools are sized for hosts, not the internet
  const cursor = cursorPath(l, prefix);
  const after = readCursor(cursor) % slots;
  for (let i = 1n; i <= slots; i++) {
    const n = ((after + i - 1n) % slots) + 1n;
    const a = nthAddress(prefix, n);
    if (isTaken(a) || existsSync(entryPath(l, a))) continue;
    writeEntry(l, a, e);
    // A hint, not state: lost in a crash, the next claim starts lower and skips what is taken.
    writeFileSync(cursor, `${n}\n`, { mode: 0o600 });
    return { address: a, made: true };
  }
  throw new TaskwireError('IPAM', `no free address left in ${cidrToString(prefix)}`);
}

/**
 * Claims one address per request for `owner` in one locked transaction (a container's IPv6 and
 * IPv4 together): all of them, or none if one cannot be had.
 */
export function claimAddressesFor(l: Layout, claims: Claim[], owner: string, device: string): string[] {
  return locked(l, () => {
    const e: IpamEntry = { owner, device, since: isoTime() };
    const out: string[] = [];
    const made: string[] = []; // files this call created, removed again if a later claim fails
    try {
      for (const c of claims) {
        const r = claimOne(l, c, e);
        out.push(r.address);
        if (r.made) made.push(r.address);
      }
      return out;
    } catch (err) {
      for (const a of made) rmSync(entryPath(l, a), { force: true });
      throw err;
    }
  });
}

/** Claims a given address for `owner`; refuses one held by another owner. */
export function reserveAddress(l: Layout, address: string, owner: string, device: string): void {
  claimAddressesFor(l, [{ address }], owner, device);
}

/** Releases an address if `owner` holds it; a missing entry counts as released. */
export function releaseAddress(l: Layout, address: string, owner: string): boolean {
  return releaseAddresses(l, [{ address, owner }]) === 1;
}

/** Releases several (a container's IPv6 and IPv4) under one lock; returns how many it held. */
export function releaseAddresses(l: Layout, entries: { address: string; owner: string }[]): number {
  return locked(l, () => {
    let held = 0;
    for (const { address, owner } of entries) {
      if (readEntry(l, address)?.owner !== owner) continue;
      rmSync(entryPath(l, address), { force: true });
      held++;
    }
    return held;
  });
}
