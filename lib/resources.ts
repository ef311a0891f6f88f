/*
 * How each kind of recorded resource is undone. Release functions must succeed when the thing
 * is already gone (poststop may run twice, after a failed create, or after the kernel already
 * dropped the cgroup), and throw only for a real failure. Plugins with resources of their own
 * (netns devices, for example) register a kind here rather than keeping private teardown code.
 */
import { rmSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Layout } from './state/paths';
import type { Resource } from './state/record';

export interface ReleaseContext {
  layout: Layout;
  log: Logger;
}

type Release = (r: Resource, ctx: ReleaseContext) => void;

const kinds = new Map<string, Release>();

export function registerResourceKind(kind: string, release: Release): void {
  kinds.set(kind, release);
}

/** Pins: unlinking a link's pin detaches it (we hold no other reference); a map's frees it. */
registerResourceKind('pin-dir', (r) => rmSync(r.path as string, { recursive: true, force: true }));

registerResourceKind('address', (r) => {
  const { removeAddress } = require('./net/netlink') as typeof import('./net/netlink');
  removeAddress(r.device as string, r.address as string, r.prefixLen as number);
});

registerResourceKind('ipam', (r, ctx) => {
  const { releaseAddress } = require('./state/ipam') as typeof import('./state/ipam');
  releaseAddress(ctx.layout, r.address as string, r.owner as string);
});

/** A network device pair by its host end (netns plugin); the peer goes with it. */
registerResourceKind('netdev', (r) => {
  const { deleteLink } = require('./net/rtnetlink-link') as typeof import('./net/rtnetlink-link');
  deleteLink(r.name as string, r.ifindex as number);
});

/** One key (hex) in a pinned, shared map; a gone map or key counts as removed. */
registerResourceKind('map-entry', (r) => {
  const { BpfMap } = require('./bpf/map') as typeof import('./bpf/map');
  const { isErrno } = require('./errors') as typeof import('./errors');
  let map;
  try {
    map = BpfMap.openPinned(r.path as string);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return;
    throw err;
  }
  try {
    map.deleteRaw(Buffer.from(r.key as string, 'hex'));
  } finally {
    map.close();
  }
});

/** A plain file of ours (twfw's policy state under the run dir); gone already is fine. */
registerResourceKind('file', (r) => rmSync(r.path as string, { force: true }));

/** Undoes resources newest first; returns the failures (each already logged). */
export function releaseAll(resources: Resource[], ctx: ReleaseContext): Error[] {
  const errors: Error[] = [];
  for (const r of [...resources].reverse()) {
    const release = kinds.get(r.kind);
    try {
      if (!release) throw new Error(`no release function for resource kind ${r.kind}`);
      release(r, ctx);
      ctx.log.debug({ resource: r }, 'released');
    } catch (err) {
      ctx.log.warn({ resource: r, err }, 'could not release');
      errors.push(err as Error);
    }
  }
  return errors;
}
