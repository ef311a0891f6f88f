/*
 * Host-wide pieces of the netns datapath, shared by all containers and created by whichever
 * hook needs them first (under a lock, so twenty hooks at once make them once):
 *   <bpffs>/taskwire/_shared/netns/map_tw_ns_eps      container address → host-side ifindex
 *   <bpffs>/taskwire/_shared/netns/link_up_<device>   tw_ns_to_ctr on an uplink's tcx ingress
 * Each container's map entries are journaled and removed at its poststop. The pieces themselves
 * live as long as some live container uses netns: each container journals a 'netns-shared'
 * resource before touching them, and releasing it (its poststop, a failed create, or gc) removes
 * them all, under the same lock, when no other live container with netns is left. Unpinning an
 * uplink's link detaches its program (nothing else holds the link).
 */
import type { ReleaseContext } from '../../lib/resources';
import type { Resource } from '../../lib/state/record';
import { existsSync, rmSync } from 'node:fs';
import { joinPath } from '../../lib/path';
import { BpfMap } from '../../lib/bpf/map';
import { Layout, sharedPluginPinDir } from '../../lib/state/paths';
import { withFileLock } from '../../lib/state/lock';
import { DamagedRecord, listRecords } from '../../lib/state/record';
import { EPS_MAP } from './codec';

export const sharedDir = (l: Layout) => sharedPluginPinDir(l, 'netns');
export const epsMapPath = (l: Layout) => joinPath(sharedDir(l), `map_${EPS_MAP}`);
const lockPath = (l: Layout) => joinPath(l.runDir, 'netns.lock');
export const uplinkPinPath = (l: Layout, dev: string) => joinPath(sharedDir(l), `link_up_${dev}`);

/** Runs fn under the netns lock with the shared map's fd, or -1 when fn must create and pin it. */
export function withSharedState<T>(l: Layout, fn: (epsFd: number) => T): T {
  return withFileLock(lockPath(l), () => {
    const { ensureSharedPinDir } = require('../../lib/host/discovery') as typeof import('../../lib/host/discovery');
    ensureSharedPinDir(l, 'netns');
    const map = existsSync(epsMapPath(l)) ? BpfMap.openPinned(epsMapPath(l)) : null;
    try {
      return fn(map ? map.fd : -1);
    } finally {
      map?.close();
    }
  });
}

/** The resource a container journals before it uses (and maybe creates) the shared pieces. */
export const SHARED_KIND = 'netns-shared';

/**
 * Ids of live containers (other than `exceptId`) that use or are about to use the shared pieces.
 * A damaged record counts as a user: what its container uses is unknown.
 */
export function netnsUsers(l: Layout, exceptId?: string): string[] {
  // lib/container.ts, not lib/inventory.ts's isAlive: a netns poststop must not load the CLI's inventory.
  const { recordedState } = require('../../lib/container') as typeof import('../../lib/container');
  const damaged: DamagedRecord[] = [];
  const users = listRecords(l, damaged)
    .filter((r) => r.id !== exceptId && (r.plugins.some((p) => p.name === 'netns') || r.resources.some((x) => x.kind === SHARED_KIND)))
    .filter((r) => recordedState(r) === 'running')
    .map((r) => r.id);
  return [...users, ...damaged.map((d) => d.id).filter((id) => id !== exceptId)];
}

/**
 * Release of the 'netns-shared' resource: a container's use of the host-wide pins (shared
 * endpoint map, uplink links); they go when no other live container uses them. `id` is the
 * user; none (gc) = any.
 */
export function releaseSharedResource(r: Resource, ctx: ReleaseContext): void {
  if (releaseSharedIfUnused(ctx.layout, r.id as string | undefined)) ctx.log.info('netns shared pins removed: no live netns container left');
}

/**
 * Removes the shared map and the uplink links when no live container other than `exceptId`
 * uses netns. Under the lock: a container that journals its use after our check takes the lock
 * after us and recreates them. Returns whether anything was removed.
 */
function releaseSharedIfUnused(l: Layout, exceptId?: string): boolean {
  if (!existsSync(sharedDir(l))) return false;
  return withFileLock(lockPath(l), () => {
    if (!existsSync(sharedDir(l)) || netnsUsers(l, exceptId).length) return false;
    rmSync(sharedDir(l), { recursive: true, force: true });
    return true;
  });
}
