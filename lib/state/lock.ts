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
const EWOULDBLOCK = 11;

function flockFd(fd: number, path: string, mode: 'exclusive' | 'shared'): void {
  for (;;) {
    if (libc.flock(fd, mode === 'shared' ? LOCK_SH : LOCK_EX) === 0) return;
    const e = errno();
    if (e !== EINTR) throw new SyscallError('SYSTEM', `lock ${path}`, e);
  }
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
 * Whether some process holds an exclusive flock on `path` now (false when the file is gone). A
 * look, not a claim: the probe is a shared lock taken without waiting and let go at once, so a
 * hook that asks for the file meanwhile waits for it a few microseconds at most.
 */
export function isLockHeld(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  try {
    for (;;) {
      if (libc.flock(fd, LOCK_SH | LOCK_NB) === 0) return false;
      const e = errno();
      if (e === EWOULDBLOCK) return true;
      if (e !== EINTR) throw new SyscallError('SYSTEM', `probe lock ${path}`, e);
    }
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
