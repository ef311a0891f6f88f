/* Crash-safe file replacement: a reader sees the old file or the new one, never a torn write,
 * even if the writer is SIGKILLed at any instruction (temp file, fsync, rename, fsync dir). */
import { closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { joinPath } from '../path';

function tempBeside(path: string): string {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return joinPath(dir, `.${basename(path)}.${process.pid}.tmp`);
}

const TEMP_NAME = /^\..+\.(\d+)\.tmp$/;

/** The pid of the process writing a temp file tempBeside named, or undefined for other files. */
export function tempWriter(path: string): number | undefined {
  const m = TEMP_NAME.exec(basename(path));
  return m ? Number(m[1]) : undefined;
}

/** Whether `pid` names a running process (EPERM: it runs, as somebody else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Temp files of writers that died before their rename (killed mid-write): names as tempBeside
 * makes them, whose writer's pid no longer runs. A reused pid keeps its file: gc tries again later.
 */
export function abandonedTempFiles(dir: string): { path: string; pid: number }[] {
  return listDir(dir).flatMap((n) => {
    const pid = tempWriter(n);
    return pid !== undefined && !processAlive(pid) ? [{ path: joinPath(dir, n), pid }] : [];
  });
}

function syncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Renames a fully written and synced temp file over `path`, then syncs the directory entry. */
function publish(tmp: string, path: string): void {
  renameSync(tmp, path);
  syncFile(dirname(path));
}

export function writeFileAtomic(path: string, data: string, mode = 0o600): void {
  const tmp = tempBeside(path);
  const fd = openSync(tmp, 'w', mode);
  try {
    // writeFileSync on a descriptor writes until all is written: a single writeSync may write
    // less (a full /run, a file size limit), and a short file must never be renamed into place.
    writeFileSync(fd, data);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  publish(tmp, path);
}

/**
 * The names in a directory of ours, or none when it is not there (not made yet). Any other
 * error is thrown: an unreadable list of records must not read as "no records" to gc.
 */
export function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * A JSON file written by writeFileAtomic, or undefined when there is none (or it went in
 * between). A stat first: most such reads find nothing (a create asks for a record that is not
 * there), and a process's first thrown ENOENT costs about 55 µs. Other errors are the caller's.
 */
export function readJsonFile<T>(path: string): T | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * readJsonFile for a state file whose loss would do harm: one that is there but does not parse,
 * or parses to something `shaped` refuses (damaged by hand or by the disk), is never read as
 * absent, since the next write would then replace what it held with a fresh start. `damaged`
 * makes the error for the caller's kind of file, from the parser's message ('' for a bad shape).
 */
export function readStateFile<T>(path: string, shaped: (v: unknown) => v is T, damaged: (detail: string) => Error): T | undefined {
  let v: unknown;
  try {
    v = readJsonFile<unknown>(path);
  } catch (err) {
    // Only what the file holds makes it damaged; a read that failed (EACCES, EIO) says so itself.
    if (err instanceof SyntaxError) throw damaged(err.message);
    throw err;
  }
  if (v === undefined) return undefined;
  if (!shaped(v)) throw damaged('');
  return v;
}

/** Copies `from` over `to` the same way (mode bits come along with the copy). */
export function copyFileAtomic(from: string, to: string): void {
  const tmp = tempBeside(to);
  copyFileSync(from, tmp);
  syncFile(tmp);
  publish(tmp, to);
}
