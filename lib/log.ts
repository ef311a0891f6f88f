/*
 * Logging: pino to the host's log file, written synchronously because a hook exits within
 * milliseconds and an async destination would lose the last lines. Nothing goes to stdout
 * (runtimes treat hook output specially); a failing hook prints its one line itself.
 */
import pino, { Logger } from 'pino';

export type { Logger };

export function openLog(file: string | null, level: string, bindings: Record<string, unknown> = {}): Logger {
  if (!file || level === 'silent') return pino({ level: 'silent' });
  try {
    return pino({ level, base: { pid: process.pid, ...bindings }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: file, sync: true, mkdir: true }));
  } catch {
    // A log we cannot open must not stop containers; warnings still reach stderr.
    return pino({ level: 'warn', base: bindings }, pino.destination({ dest: 2, sync: true }));
  }
}

export const silentLog: Logger = pino({ level: 'silent' });
