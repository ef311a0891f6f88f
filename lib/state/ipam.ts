/*
 * Address allocation shared by every hook on the host: a JSON file under the run directory,
 * read and rewritten under flock, so twenty hooks starting at once still get distinct
 * addresses. Explicit addresses are registered too, which is how "in use by another
 * container" is detected. Each entry names its owner and device so `gc` can undo it.
 */
import { readFileSync } from 'node:fs';
import { TaskwireError } from '../errors';
import { Cidr, cidrToString, nthAddress, prefixSize } from '../net/addr';
import { writeFileAtomic } from './atomic';
import { withFileLock } from './lock';
import { ipamLockPath, ipamPath, Layout } from './paths';

export interface IpamEntry {
  owner: string;
  device: string;
  since: string;
}

type IpamState = Record<string, IpamEntry>;

function read(l: Layout): IpamState {
  try {
    return JSON.parse(readFileSync(ipamPath(l), 'utf8')).addresses ?? {};
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new TaskwireError('IPAM', `address allocations ${ipamPath(l)} are unreadable: ${(err as Error).message}`);
  }
}

function write(l: Layout, s: IpamState): void {
  writeFileAtomic(ipamPath(l), JSON.stringify({ version: 1, addresses: s }, null, 1));
}

export function ipamEntries(l: Layout): IpamState {
  return read(l);
}

/** Claims a given address for `owner`; refuses one held by another owner. */
export function reserveAddress(l: Layout, address: string, owner: string, device: string): void {
  withFileLock(ipamLockPath(l), () => {
    const s = read(l);
    const held = s[address];
    if (held && held.owner !== owner) throw new TaskwireError('IPAM', `address ${address} is in use by container ${held.owner}`);
    s[address] = { owner, device, since: new Date().toISOString() };
    write(l, s);
  });
}

/** Claims the first free address of a prefix (skipping the network and, for IPv4, broadcast). */
export function allocateAddress(l: Layout, prefix: Cidr, owner: string, device: string, isTaken: (a: string) => boolean = () => false): string {
  return withFileLock(ipamLockPath(l), () => {
    const s = read(l);
    const size = prefixSize(prefix);
    const last = prefix.family === 4 ? size - 2n : size - 1n;
    const limit = last < 65536n ? last : 65536n; // a scan bound: pools are sized for hosts, not the internet
    for (let n = 1n; n <= limit; n++) {
      const a = nthAddress(prefix, n);
      if (s[a] || isTaken(a)) continue;
      s[a] = { owner, device, since: new Date().toISOString() };
      write(l, s);
      return a;
    }
    throw new TaskwireError('IPAM', `no free address left in ${cidrToString(prefix)}`);
  });
}

/** Releases an address if `owner` holds it; a missing entry counts as released. */
export function releaseAddress(l: Layout, address: string, owner: string): boolean {
  return releaseAddresses(l, [{ address, owner }]) === 1;
}

/** Releases several (a container's IPv6 and IPv4) under one lock; returns how many it held. */
export function releaseAddresses(l: Layout, entries: { address: string; owner: string }[]): number {
  return withFileLock(ipamLockPath(l), () => {
    const s = read(l);
    const held = entries.filter((e) => s[e.address]?.owner === e.owner);
    for (const e of held) delete s[e.address];
    if (held.length) write(l, s);
    return held.length;
  });
}
