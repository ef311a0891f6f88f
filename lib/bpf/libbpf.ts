/*
 * Checked calls into libbpf: every wrapper throws a SyscallError naming the errno and what was
 * being done, so no caller ever inspects a raw return value. libbpf's own messages (verifier
 * output included) are kept in a ring of recent lines and forwarded to the logger.
 */
import { ErrorCode, SyscallError } from '../errors';
import { errno, isNull, libbpf, registerPrint } from '../ffi';

type LogSink = (level: 'warn' | 'info' | 'debug', text: string) => void;
let sink: LogSink = () => {};
const recent: string[] = [];
const RECENT_LINES = 200;
let total = 0;

// Registered before the first object is opened, not at load: a hook that only links programs
// loaded earlier (lib/bpf/shared.ts) never hears from libbpf, and a koffi callback costs it
// most of a millisecond.
let printing = false;
function capturePrint(): void {
  if (printing) return;
  printing = true;
  registerPrint((level, text) => {
    for (const line of text.split('\n')) {
      if (!line) continue;
      recent.push(line);
      total++;
      if (recent.length > RECENT_LINES) recent.shift();
    }
    sink(level === 0 ? 'warn' : level === 1 ? 'info' : 'debug', text.trimEnd());
  });
}

export function setLibbpfLogSink(fn: LogSink): void {
  sink = fn;
}

/** Call before anything libbpf may explain at length (opening, loading an object). */
export function logMark(): number {
  capturePrint();
  return total;
}

/** Lines libbpf printed since the mark; attached to load failures (verifier output). */
export function libbpfLogSince(mark: number): string {
  const n = Math.min(total - mark, recent.length);
  return n > 0 ? recent.slice(-n).join('\n') : '';
}

export function checkInt(rc: number, what: string, code: ErrorCode = 'BPF'): number {
  if (rc < 0) throw new SyscallError(code, what, -rc);
  return rc;
}

export function checkPtr<T>(ptr: T | null, what: string, code: ErrorCode = 'BPF'): T {
  if (isNull(ptr)) throw new SyscallError(code, what, errno() || 22);
  return ptr as T;
}

export function libbpfVersion(): string {
  return `${libbpf.major()}.${libbpf.minor()}`;
}

const helperCache = new Map<string, boolean>();
/** Whether programs of `progType` may call helper `helperId` on this kernel (libbpf's probe, cached). */
export function helperAvailable(progType: number, helperId: number): boolean {
  const key = `${progType}/${helperId}`;
  let ok = helperCache.get(key);
  if (ok === undefined) helperCache.set(key, (ok = (libbpf.probeHelper(progType, helperId, null) as number) === 1));
  return ok;
}
