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
import { pluginResourceKinds } from '../plugins/index';

export interface ReleaseContext {
  layout: Layout;
  log: Logger;
}

type Release = (r: Resource, ctx: ReleaseContext) => void;

const kinds = new Map<string, Release>();
/** Kinds undone all at once, after the others of the same releaseAll (see registerBatchKind). */
const batchKinds = new Map<string, (rs: Resource[], ctx: ReleaseContext) => void>();

export function registerResourceKind(kind: string, release: Release): void {
  kinds.set(kind, release);
}

/**
 * A kind whose resources are cheaper undone together than one by one (one lock, one rewrite of
 * a shared file). They are released after every other resource of the same call, so nothing
 * that depends on them is still in place.
 */
export function registerBatchKind(kind: string, release: (rs: Resource[], ctx: ReleaseContext) => void): void {
  batchKinds.set(kind, release);
}

/** Pins: unlinking a link's pin detaches it (we hold no other reference); a map's frees it. */
registerResourceKind('pin-dir', (r) => rmSync(r.path as string, { recursive: true, force: true }));

registerResourceKind('address', (r) => {
  const { removeAddress } = require('./net/netlink') as typeof import('./net/netlink');
  removeAddress(r.device as string, r.address as string, r.prefixLen as number);
});

/** Address allocations: a container's IPv6 and IPv4 under one lock, after its addresses are off the host. */
registerBatchKind('ipam', (rs, ctx) => {
  const { releaseAddresses } = require('./state/ipam') as typeof import('./state/ipam');
  releaseAddresses(ctx.layout, rs.map((r) => ({ address: r.address as string, owner: r.owner as string })));
});

/**
 * A network device pair by its host end (netns plugin); the peer goes with it. The netns plugin
 * journals the random name before creating the pair, then again with its ifindex once it exists.
 */
registerResourceKind('netdev', (r) => {
  const { deleteLink } = require('./net/rtnetlink-link') as typeof import('./net/rtnetlink-link');
  const { linkIndex } = require('./net/netlink') as typeof import('./net/netlink');
  const name = r.name as string;
  if (typeof r.ifindex === 'number') {
    deleteLink(name, r.ifindex);
    return;
  }
  // Name only: the hook stopped between journaling the name and journaling the ifindex. Delete
  // only what that window can leave: a veth/netkit under our tw<8 hex> pattern whose host end is
  // still down (it is created down and brought up only after the ifindex is journaled), so a
  // device of somebody else's that took the name (EEXIST on our create) is never touched.
  const ifindex = linkIndex(name);
  if (!ifindex || !/^tw[0-9a-f]{8}$/.test(name)) return;
  const { ipJson } = require('./net/iproute') as typeof import('./net/iproute');
  let link: { ifindex: number; flags?: string[]; linkinfo?: { info_kind?: string } } | undefined;
  try {
    link = ipJson<typeof link[]>(['-d', 'link', 'show', 'dev', name])[0];
  } catch (err) {
    if (linkIndex(name) === 0) return; // gone meanwhile
    throw err;
  }
  if (!link || link.ifindex !== ifindex || link.flags?.includes('UP')) return;
  if (!['veth', 'netkit'].includes(link.linkinfo?.info_kind ?? '')) return;
  deleteLink(name, ifindex);
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

/**
 * A container's use of a host-wide loaded object (lib/bpf/shared.ts): nothing to undo, its links
 * went with the pin dir; the set stays loaded for the next container and `taskwire gc` removes
 * the sets no record refers to.
 */
registerResourceKind('shared-object', () => {});

/** A plain file of ours (twfw's policy state under the run dir); gone already is fine. */
registerResourceKind('file', (r) => rmSync(r.path as string, { force: true }));

/** Undoes resources newest first; returns the failures (each already logged). */
export function releaseAll(resources: Resource[], ctx: ReleaseContext): Error[] {
  const errors: Error[] = [];
  const attempt = (what: Resource | Resource[], release: () => void) => {
    try {
      release();
      ctx.log.debug({ resource: what }, 'released');
    } catch (err) {
      ctx.log.warn({ resource: what, err }, 'could not release');
      errors.push(err as Error);
    }
  };
  for (const r of [...resources].reverse()) {
    if (batchKinds.has(r.kind)) continue;
    const release = kinds.get(r.kind) ?? pluginResourceKinds[r.kind]?.();
    attempt(r, () => {
      if (!release) throw new Error(`no release function for resource kind ${r.kind}`);
      release(r, ctx);
    });
  }
  for (const [kind, release] of batchKinds) {
    const rs = resources.filter((r) => r.kind === kind);
    if (rs.length) attempt(rs, () => release(rs, ctx));
  }
  return errors;
}
