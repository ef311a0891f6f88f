/*
 * The one place that knows the on-host layout, used by hooks and CLI alike:
 *
 *   <bpffs>/taskwire/<enc id>/<plugin>/{link_<prog>, map_<map>}   pins (bpffs refuses dots)
 *   <runDir>/containers/<enc id>.json                             the record of what was done
 *   <runDir>/ipam/<address>, <runDir>/ipam.lock                   address allocations, one file each
 *   <runDir>/containers.lock                                      held shared by hooks, exclusive by gc
 *   <runDir>/locks/<enc id>.lock                                  held by the hook creating or destroying <id>
 *
 * Container ids come from whoever creates the container: they are validated (no path
 * separators, no leading dot, bounded length) and encoded reversibly ('.' and '%' as %XX).
 */
import { joinPath } from '../path';
import { TaskwireError } from '../errors';

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.+:-]{0,199}$/;

export function validateContainerId(id: unknown): string {
  if (typeof id !== 'string' || !ID_RE.test(id))
    throw new TaskwireError('STATE', `container id ${JSON.stringify(id)} is not valid (allowed: letters, digits, _ . + : -, up to 200, not starting with a dot)`);
  return id;
}

export function encodeId(id: string): string {
  return validateContainerId(id).replace(/[.%:]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

export function decodeId(enc: string): string {
  return enc.replace(/%([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

export interface Layout {
  bpffs: string;
  runDir: string;
}

export const pinRoot = (l: Layout) => joinPath(l.bpffs, 'taskwire');
export const containerPinDir = (l: Layout, id: string) => joinPath(pinRoot(l), encodeId(id));
export const pluginPinDir = (l: Layout, id: string, plugin: string) => joinPath(containerPinDir(l, id), plugin);
export const recordDir = (l: Layout) => joinPath(l.runDir, 'containers');
export const recordPath = (l: Layout, id: string) => joinPath(recordDir(l), `${encodeId(id)}.json`);
export const ipamDir = (l: Layout) => joinPath(l.runDir, 'ipam');
export const ipamLockPath = (l: Layout) => joinPath(l.runDir, 'ipam.lock');
/**
 * Held shared while a hook creates or destroys a container, exclusive while gc decides a
 * container is dead and removes it: a container created under a reused id between the decision
 * and the removal would otherwise lose its state to gc. Taken before ipam.lock and
 * shared-objects.lock, never while holding either.
 */
export const containersLockPath = (l: Layout) => joinPath(l.runDir, 'containers.lock');
/**
 * Held (exclusive, under the containers lock held shared) while a hook creates or destroys
 * container `id`: runc removes a container's state before it runs its poststop, so `runc run`
 * can reuse the id while the old container's poststop still runs; this orders the two. The file
 * exists while the lock is held or waited for (lib/state/lock.ts withTransientLock); gc removes
 * one a hook killed while holding it left.
 */
export const containerLockPath = (l: Layout, id: string) => joinPath(containerLocksDir(l), `${encodeId(id)}.lock`);
/** What is left in it when no hook runs was left by a hook killed while holding a lock (gc removes it). */
export const containerLocksDir = (l: Layout) => joinPath(l.runDir, 'locks');
/** Where allocations were kept before they had a file each (lib/state/ipam.ts moves them). */
export const legacyIpamPath = (l: Layout) => joinPath(l.runDir, 'ipam.json');
/** Shared, host-wide objects (named endpoint sets, policies) live beside the containers. */
export const sharedPinDir = (l: Layout) => joinPath(pinRoot(l), '_shared');
export const sharedPluginPinDir = (l: Layout, plugin: string) => joinPath(sharedPinDir(l), plugin);
