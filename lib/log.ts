/*
 * Logging: pino to the host's log file, written synchronously because a hook exits within
 * milliseconds and an async destination would lose the last lines. Nothing goes to stdout
 * (runtimes treat hook output specially); a failing hook prints its one line itself.
 *
 * Loading pino costs a hook about 6 ms of start-up (bench/results/README.md); a hand-written
 * writer was tried and measured, and pino kept: one well-kept logger for hook and CLI.
 */
import pino, { Logger } from 'pino';

export type { Logger };

/**
 * A silent logger's destination: pino's default one is built on process.stdout, and touching
 * process.stdout builds a stream (a pipe's is a net.Socket): 2-5 ms of a hook's start-up for a
 * logger that never writes.
 */
const nowhere = { write(): void {} };

export function openLog(file: string | null, level: string, bindings: Record<string, unknown> = {}): Logger {
  if (!file || level === 'silent') return pino({ level: 'silent' }, nowhere);
  try {
    return pino({ level, base: { pid: process.pid, ...bindings }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: file, sync: true, mkdir: true }));
  } catch {
    // A log we cannot open must not stop containers; warnings still reach stderr.
    return pino({ level: 'warn', base: bindings }, pino.destination({ dest: 2, sync: true }));
  }
}

export const silentLog: Logger = pino({ level: 'silent' }, nowhere);
