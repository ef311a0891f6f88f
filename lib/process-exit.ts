/*
 * How the hook process ends (hooks/taskwire-hook.ts). Everything a hook writes goes out
 * synchronously (stderr by writeSync, pino through lib/log.ts's descriptor), so once the 'exit'
 * listeners have run (the launcher saves its code cache in one) nothing is left to do but what
 * Node's own teardown does: join V8's platform threads, tear down the heap, run the static
 * destructors of every native module. That took a hook about 0.9 ms, more than any single step
 * of a createRuntime (bench/README.md), so the hook ends with _exit(2) instead.
 *
 * _exit comes through koffi, which only lib/ffi.ts loads: it offers it here when it loads, and a
 * hook that never needed the native layer (no annotation, bad arguments) exits the usual way
 * rather than load koffi to leave.
 */
let immediate: ((code: number) => void) | undefined;

/** Called by lib/ffi.ts when it loads. */
export function offerImmediateExit(exit: (code: number) => void): void {
  immediate = exit;
}

/**
 * Node writes some of its output at teardown: coverage (NODE_V8_COVERAGE), --cpu-prof and
 * --heap-prof profiles, V8's buffered --trace-* and --prof logs. A hook run with any of them
 * (from its command line or NODE_OPTIONS) exits the usual way; a runtime runs `node hook.js`.
 */
function diagnosticsWanted(): boolean {
  return process.execArgv.length > 0 || !!process.env.NODE_OPTIONS || !!process.env.NODE_V8_COVERAGE;
}

/** process.exit(code), ending in _exit(2) after the 'exit' listeners when the native layer is loaded. */
export function exitProcess(code: number): never {
  const exit = immediate;
  if (exit && !diagnosticsWanted()) process.once('exit', () => exit(typeof process.exitCode === 'number' ? process.exitCode : code));
  process.exit(code);
}
