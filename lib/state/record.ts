/*
 * The record of one container: what taskwire did for it, in order, so that poststop and gc can
 * undo exactly that. It is rewritten atomically after every step (a journal), so a hook killed
 * at any instruction leaves a record that names everything it may have created.
 */
import { readdirSync, rmSync } from 'node:fs';
import { readJsonFile, writeFileAtomic } from './atomic';
import { decodeId, Layout, recordDir, recordPath } from './paths';

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

export function listRecords(l: Layout): ContainerRecord[] {
  let names: string[];
  try {
    names = readdirSync(recordDir(l));
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.json') && !n.startsWith('.'))
    .map((n) => readRecord(l, decodeId(n.slice(0, -5))))
    .filter((r): r is ContainerRecord => r !== undefined)
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}
