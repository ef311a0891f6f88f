/*
 * The record of one container: what taskwire did for it, in order, so that poststop and gc can
 * undo exactly that. It is rewritten atomically after every step (a journal), so a hook killed
 * at any instruction leaves a record that names everything it may have created.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { listDir, readJsonFile, writeFileAtomic } from './atomic';
import { decodeId, Layout, recordDir, recordPath, validateContainerId } from './paths';

/** Something to undo. `kind` selects the release function in lib/resources.ts. */
export interface Resource {
  kind: string;
  [field: string]: unknown;
}

export interface PluginRecord {
  name: string;
  /** What the plugin did, for `taskwire ls` and the demo (addresses, programs, device...). */
  summary: Record<string, unknown>;
}

export interface ContainerRecord {
  version: 1;
  id: string;
  createdAt: string;
  stage: string;
  pid: number;
  bundle: string;
  cgroup: string;
  cgroupId: string;
  /**
   * At createRuntime the container's process was alone in its cgroup, so the cgroup's processes
   * are the container's: it has stopped when none is left. Not so where a runtime shares the
   * caller's cgroup (podman --cgroups=disabled); absent in records of earlier versions.
   */
  ownCgroup?: boolean;
  netns: string | null;
  complete: boolean;
  plugins: PluginRecord[];
  resources: Resource[];
}

export function writeRecord(l: Layout, rec: ContainerRecord): void {
  writeFileAtomic(recordPath(l, rec.id), JSON.stringify(rec, null, 1));
}

export function readRecord(l: Layout, id: string): ContainerRecord | undefined {
  return readJsonFile<ContainerRecord>(recordPath(l, id));
}

export function removeRecord(l: Layout, id: string): void {
  rmSync(recordPath(l, id), { force: true });
}

/**
 * A file among the records that does not parse (taskwire writes whole files only, so it was
 * damaged after): its container's state is unknown, so it is reported and never acted on.
 */
export interface DamagedRecord {
  id: string;
  path: string;
  error: string;
}

/**
 * Whether what a record file holds has the fields every reader relies on. Not a schema check
 * with ajv: the file is taskwire's own, written whole; this only tells one damaged after from one
 * that is not.
 */
function recordShaped(r: unknown, id: string): r is ContainerRecord {
  const o = r as Partial<ContainerRecord> | null;
  return (
    typeof o === 'object' && o !== null && o.id === id && typeof o.createdAt === 'string' && typeof o.cgroup === 'string' &&
    typeof o.cgroupId === 'string' && Array.isArray(o.plugins) && Array.isArray(o.resources)
  );
}

/** Every record, oldest first; a file that is not one goes to `damaged` instead of throwing. */
export function listRecords(l: Layout, damaged: DamagedRecord[] = []): ContainerRecord[] {
  const records: ContainerRecord[] = [];
  for (const n of listDir(recordDir(l))) {
    if (!n.endsWith('.json') || n.startsWith('.')) continue;
    const path = join(recordDir(l), n);
    const id = decodeId(n.slice(0, -5));
    try {
      validateContainerId(id);
      const r = readJsonFile<unknown>(path);
      if (r === undefined) continue; // removed meanwhile
      if (!recordShaped(r, id)) throw new Error(`not a taskwire record of container ${JSON.stringify(id)}`);
      records.push(r);
    } catch (err) {
      damaged.push({ id, path, error: (err as Error).message });
    }
  }
  return records.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}
