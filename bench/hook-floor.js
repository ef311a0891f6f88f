/*
 * The floor of the hook's stack, for bench/hook-latency.ts: what any hook built on Node, koffi
 * and pino pays before doing anything of its own. It reads the OCI state, loads libbpf through
 * koffi and makes one call, writes one pino line as the hook does (O_APPEND, synchronous), and
 * exits; built and launched exactly like the hook (scripts/bundle.js buildHook, the same
 * launcher and code cache). No taskwire code: the hook's figure minus this one is ours.
 */
'use strict';
const fs = require('node:fs');
const input = globalThis.taskwireHookStdin?.data ?? fs.readFileSync(0);
const state = JSON.parse(input.toString('utf8'));
const koffi = require('koffi');
const objGet = koffi.load('libbpf.so.1').func('int bpf_obj_get(const char *path)');
objGet('/sys/fs/bpf/taskwire-floor-nonexistent');
const pino = require('pino');
const fd = fs.openSync(process.argv[3] || '/dev/null', 'a'); // `createRuntime <log file>`
pino({ base: { pid: process.pid, id: state.id }, timestamp: pino.stdTimeFunctions.isoTime }, { write: (s) => fs.writeSync(fd, s) }).info('done');
globalThis.taskwireHookDidWork = true;
