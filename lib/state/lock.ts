/*
 * flock(2) on a file under the run directory. Chosen over lock-file libraries because the kernel
 * drops the lock when the holder dies (a SIGKILLed hook never leaves a stale lock) and it needs
 * no heartbeat. Node has no flock, hence the one libc call.
 */
import { closeSync, fstatSync, mkdirSync, openSync, statSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { SyscallError } from '../errors';
import { errno, libc } from '../ffi';

const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const EINTR = 4;

/** flock(2) retried on EINTR: 0, or the errno it failed with. */
function flockOp(fd: number, op: number): number {
  for (;;) {
    if (libc.flock(fd, op) === 0) return 0;
    const e = errno();
    if (e !== EINTR) return e;
  }
}

function flockFd(fd: number, path: string, mode: 'exclusive' | 'shared'): void {
  const e = flockOp(fd, mode === 'shared' ? LOCK_SH : LOCK_EX);
  if (e) throw new SyscallError('SYSTEM', `lock ${path}`, e);
}

/** Runs fn holding an flock on `path`: exclusive by default, or shared with other shared holders. */
export function withFileLock<T>(path: string, fn: () => T, mode: 'exclusive' | 'shared' = 'exclusive'): T {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const fd = openSync(path, 'a', 0o600);
  try {
    flockFd(fd, path, mode);
    return fn();
  } finally {
    closeSync(fd); // closing the descriptor releases the lock
  }
}

/**
 * Whether some process may hold an exclusive flock on `path` now: false when the file is gone or
 * nobody holds it, true when somebody does or it cannot be told (the file cannot be opened or
 * probed), so that a caller listing free lock files lists only those surely free. A look, not a
 * claim: the probe is a shared lock taken without waiting and let go at once, so a hook that
 * asks for the file meanwhile waits for it a few microseconds at most.
 */
export function isLockHeld(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
  try {
    return flockOp(fd, LOCK_SH | LOCK_NB) !== 0;
  } finally {
    closeSync(fd);
  }
}

/**
 * withFileLock, exclusive, on a lock file that exists only while someone holds or waits for it
 * (one per container id: they would otherwise pile up). The holder unlinks the file before it
 * lets go, so a waiter that then gets the lock may hold an unlinked file that a newcomer can no
 * longer open: each taker checks after flock that `path` still names the file it locked, and
 * starts again if not.
 */
export function withTransientLock<T>(path: string, fn: () => T): T {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  for (;;) {
    const fd = openSync(path, 'a', 0o600);
    try {
      flockFd(fd, path, 'exclusive');
      const current = statSync(path, { bigint: true, throwIfNoEntry: false })?.ino;
      if (current !== fstatSync(fd, { bigint: true }).ino) continue; // closed in finally; take the new file
      try {
        return fn();
      } finally {
        try {
          unlinkSync(path); // not rmSync: its option checking costs a hook's first call ~50 µs more
        } catch {
          // A read-only or failing run dir: a lock file left over is harmless (gc removes it),
          // and must not turn what fn did or threw into another outcome.
        }
      }
    } finally {
      closeSync(fd);
    }
  }
}
