/*
 * Logging: pino to the host's log file, written synchronously because a hook exits within
 * milliseconds and an async destination would lose the last lines. Nothing goes to stdout
 * (runtimes treat hook output specially); a failing hook prints its one line itself.
 *
 * pino does the logging (levels, child bindings, serializers, JSON) for hook and CLI alike; a
 * hand-written logger was tried and dropped. Only its destination is ours (appendTo below).
 */
import { mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import pino, { Logger } from 'pino';
import { isoTime } from './time';

export type { Logger };

/**
 * A silent logger's destination: pino's default one is built on process.stdout, and touching
 * process.stdout builds a stream (a pipe's is a net.Socket): 2-5 ms of a hook's start-up for a
 * logger that never writes.
 */
const nowhere = { write(): void {} };

/**
 * pino's destination: each line one write(2) to a descriptor, the file opened O_APPEND (lines of
 * concurrent hooks never interleave). pino.destination() is sonic-boom, whose buffering and
 * asynchronous machinery a hook that writes a few lines synchronously and exits never uses, and
 * which cost it about half a millisecond to load and build (bench/results, hook-latency).
 */
function appendTo(fd: number): { write(line: string): void } {
  return {
    write(line) {
      try {
        writeSync(fd, line);
      } catch {
        // A full disk or a closed pipe loses the line, never the hook: its undo path logs first.
      }
    },
  };
}

/** Timestamps as pino's isoTime writes them, without its toISOString (lib/time.ts). */
export function openLog(file: string | null, level: string, bindings: Record<string, unknown> = {}): Logger {
  if (!file || level === 'silent') return silentLog();
  let fd: number;
  try {
    mkdirSync(dirname(file), { recursive: true });
    fd = openSync(file, 'a', 0o640);
  } catch {
    // A log we cannot open must not stop containers; warnings still reach stderr.
    return pino({ level: 'warn', base: bindings }, appendTo(2));
  }
  return pino({ level, base: { pid: process.pid, ...bindings }, timestamp: () => `,"time":"${isoTime()}"` }, appendTo(fd));
}

let silent: Logger | undefined;

/**
 * A logger that drops everything (tests, benches, library callers without a log). Made at first
 * use: a pino instance built when this module loads cost every hook about 0.5 ms for nothing.
 */
export function silentLog(): Logger {
  return (silent ??= pino({ level: 'silent', base: null }, nowhere));
}
