/*
 * The floor of the hook's stack, for bench/hook-latency.ts: what any hook built on Node, koffi
 * and pino pays before doing anything of its own. It reads the OCI state, loads koffi and makes
 * one bpf(2) call through libc (as the hook's common path does: lib/ffi.ts), writes one pino line
 * as the hook does (O_APPEND, synchronous), and exits as the hook does (lib/process-exit.ts:
 * _exit(2) once the 'exit' listeners ran); built and launched exactly like the hook
 * (scripts/bundle.js buildHook, the same launcher and code cache). No taskwire code: the hook's
 * figure minus this one is ours.
 */
'use strict';
const fs = require('node:fs');
const input = globalThis.taskwireHookStdin?.data ?? fs.readFileSync(0);
const state = JSON.parse(input.toString('utf8'));
const koffi = require('koffi');
const libc = koffi.load('libc.so.6');
const syscall = libc.func('long syscall(long number, ...)');
const path = Buffer.from('/sys/fs/bpf/taskwire-floor-nonexistent\0');
const attr = Buffer.alloc(16);
attr.writeBigUInt64LE(BigInt(koffi.address(path)), 0);
syscall(process.arch === 'arm64' ? 280 : 321, 'int', 7 /* BPF_OBJ_GET */, 'void *', attr, 'uint32', attr.length); // ENOENT
const pino = require('pino');
const fd = fs.openSync(process.argv[3] || '/dev/null', 'a'); // `createRuntime <log file>`
pino({ base: { pid: process.pid, id: state.id }, timestamp: pino.stdTimeFunctions.isoTime }, { write: (s) => fs.writeSync(fd, s) }).info('done');
// Reported as the hook reports them (lib/hook.ts markWorkDone): the launcher keeps a
// createRuntime's code cache only for plugins the run says it ran.
globalThis.taskwireHookDidWork = true;
globalThis.taskwireHookPlugins = Object.keys(state.annotations ?? {})
  .filter((k) => k.startsWith('io.taskwire.'))
  .map((k) => k.slice('io.taskwire.'.length));
const exitImmediately = libc.func('void _exit(int status)');
process.once('exit', () => exitImmediately(0));
process.exit(0);
