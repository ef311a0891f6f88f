/* Crash-safe file replacement: a reader sees the old file or the new one, never a torn write,
 * even if the writer is SIGKILLed at any instruction (temp file, fsync, rename, fsync dir). */
import { closeSync, copyFileSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

function tempBeside(path: string): string {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return join(dir, `.${basename(path)}.${process.pid}.tmp`);
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
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  publish(tmp, path);
}

/** Copies `from` over `to` the same way (mode bits come along with the copy). */
export function copyFileAtomic(from: string, to: string): void {
  const tmp = tempBeside(to);
  copyFileSync(from, tmp);
  syncFile(tmp);
  publish(tmp, to);
}
