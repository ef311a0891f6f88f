/*
 * flock(2) on a file under the run directory. Chosen over lock-file libraries because the kernel
 * drops the lock when the holder dies (a SIGKILLed hook never leaves a stale lock) and it needs
 * no heartbeat. Node has no flock, hence the one libc call.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { SyscallError } from '../errors';
import { errno, libc } from '../ffi';

const LOCK_SH = 1;
const LOCK_EX = 2;
const EINTR = 4;

/** Runs fn holding an flock on `path`: exclusive by default, or shared with other shared holders. */
export function withFileLock<T>(path: string, fn: () => T, mode: 'exclusive' | 'shared' = 'exclusive'): T {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const fd = openSync(path, 'a', 0o600);
  try {
    for (;;) {
      if (libc.flock(fd, mode === 'shared' ? LOCK_SH : LOCK_EX) === 0) break;
      const e = errno();
      if (e !== EINTR) throw new SyscallError('SYSTEM', `lock ${path}`, e);
    }
    return fn();
  } finally {
    closeSync(fd); // closing the descriptor releases the lock
  }
}
