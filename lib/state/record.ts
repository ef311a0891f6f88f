/*
 * The record of one container: what taskwire did for it, in order, so that poststop and gc can
 * undo exactly that. It is rewritten atomically after every step (a journal), so a hook killed
 * at any instruction leaves a record that names everything it may have created.
 */
import { rmSync } from 'node:fs';
import { joinPath } from '../path';
import { listDir, readStateFile, writeFileAtomic } from './atomic';
import { oneLine, TaskwireError } from '../errors';
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
  /** When `pid` started (/proc/PID/stat field 22): the pair names the container's process for good. */
  pidStart?: string;
  netns: string | null;
  complete: boolean;
  plugins: PluginRecord[];
  resources: Resource[];
}

export function writeRecord(l: Layout, rec: ContainerRecord): void {
  writeFileAtomic(recordPath(l, rec.id), JSON.stringify(rec, null, 1));
}

/** A record file that cannot be read or is not a record: its container's state is unknown. */
export class DamagedRecordError extends TaskwireError {
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super('STATE', `record ${path} is damaged (${detail}): what its container holds is left alone; see taskwire gc`);
  }
}

/** The record of `id`, or undefined when there is none; DamagedRecordError when the file is not one. */
export function readRecord(l: Layout, id: string): ContainerRecord | undefined {
  const path = recordPath(l, id);
  return readStateFile(path, (r): r is ContainerRecord => recordShaped(r, id), (detail) => new DamagedRecordError(path, detail || `not a taskwire record of container ${JSON.stringify(id)}`));
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
  /** 'damaged': what the file holds is not a record; 'unreadable': reading it failed (EACCES, EIO). */
  reason: 'damaged' | 'unreadable';
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
    const id = decodeId(n.slice(0, -5));
    try {
      const r = readRecord(l, id); // a name no valid id encodes to throws here too
      if (r) records.push(r); // else removed meanwhile
    } catch (err) {
      // Either way its container's state is unknown, and nothing of it is acted on. A failed
      // system call (EACCES, EIO) is not damage; a name no valid id encodes to is.
      const unreadable = typeof (err as NodeJS.ErrnoException).syscall === 'string';
      damaged.push({ id, path: joinPath(recordDir(l), n), error: err instanceof DamagedRecordError ? err.detail : oneLine(err), reason: unreadable ? 'unreadable' : 'damaged' });
    }
  }
  return records.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}
