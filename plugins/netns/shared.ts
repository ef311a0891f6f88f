/*
 * Host-wide pieces of the netns datapath, shared by all containers and created by whichever
 * hook needs them first (under a lock, so twenty hooks at once make them once):
 *   <bpffs>/taskwire/_shared/netns/map_tw_ns_eps      container address → host-side ifindex
 *   <bpffs>/taskwire/_shared/netns/link_up_<device>   tw_ns_to_ctr on an uplink's tcx ingress
 * They outlive containers on purpose (an empty map and an uplink program that finds nothing
 * cost nothing); each container's map entries are journaled and removed at its poststop.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap } from '../../lib/bpf/map';
import { Layout, sharedPinDir } from '../../lib/state/paths';
import { withFileLock } from '../../lib/state/lock';
import { EPS_MAP } from './codec';

export const sharedDir = (l: Layout) => join(sharedPinDir(l), 'netns');
export const epsMapPath = (l: Layout) => join(sharedDir(l), `map_${EPS_MAP}`);
export const uplinkPinPath = (l: Layout, dev: string) => join(sharedDir(l), `link_up_${dev}`);

/** Runs fn under the netns lock with the shared map's fd, or -1 when fn must create and pin it. */
export function withSharedState<T>(l: Layout, fn: (epsFd: number) => T): T {
  return withFileLock(join(l.runDir, 'netns.lock'), () => {
    const { ensureBpffs } = require('../../lib/host/discovery') as typeof import('../../lib/host/discovery');
    ensureBpffs(l.bpffs);
    mkdirSync(sharedDir(l), { recursive: true, mode: 0o700 });
    const map = existsSync(epsMapPath(l)) ? BpfMap.openPinned(epsMapPath(l)) : null;
    try {
      return fn(map ? map.fd : -1);
    } finally {
      map?.close();
    }
  });
}
