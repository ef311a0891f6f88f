/*
 * The hook dispatcher: owns argv, stdin, the deadline and the exit policy, so the entry point is
 * one line and tests can drive every stage in-process.
 *
 *   createRuntime | prestart   attach; any failure → everything undone, one line on stderr, exit 1
 *   poststop                   undo, unless the recorded container's process still runs (a newer
 *                              container under a reused id); exit 0 even when something could not
 *                              be undone (gc's job)
 *
 * The stage comes from argv (runtimes disagree on `status`). A container without io.taskwire.*
 * annotations costs a stdin read, a JSON parse and a glance at the host config for plugins it
 * applies to every container (applyToAll): no validation, no native module.
 */
import { existsSync, readSync } from 'node:fs';
import { oneLine, TaskwireError } from './errors';

export const STAGES = ['createRuntime', 'prestart', 'poststop'] as const;
export type Stage = (typeof STAGES)[number];

export interface HookIo {
  /** A stream, or a file descriptor (the executable passes 0: see readInput). */
  stdin: NodeJS.ReadableStream | number;
  stderr: { write(s: string): unknown };
  env: NodeJS.ProcessEnv;
}

const USAGE = `usage: taskwire-hook <createRuntime|prestart|poststop> [--config FILE]
Reads the OCI state on stdin. Meant to be named in a bundle's config.json hooks or a hooks.d file
(see taskwire install). Exit 0: done; exit 1: the container must not start (one line on stderr);
exit 2: bad invocation.`;

/**
 * The OCI state from a descriptor, read synchronously: touching process.stdin builds a stream
 * (net, tty, stream modules) that costs a hook more than everything it does with the state. A
 * runtime hands hooks a blocking pipe; should a descriptor be non-blocking (EAGAIN), the rest is
 * read through the stream.
 */
async function readInput(stdin: HookIo['stdin'], readStdin: (s: NodeJS.ReadableStream) => Promise<string>): Promise<Buffer> {
  if (typeof stdin !== 'number') return Buffer.from(await readStdin(stdin));
  const chunks: Buffer[] = [];
  const buf = Buffer.allocUnsafe(64 * 1024);
  for (;;) {
    let n: number;
    try {
      n = readSync(stdin, buf, 0, buf.length, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EOF') break;
      if (code !== 'EAGAIN') throw err;
      chunks.push(Buffer.from(await readStdin(process.stdin)));
      break;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks);
}

/**
 * Start-up timing for bench/hook-latency.ts: milliseconds per phase, the first ("node+bundle")
 * from process start to the dispatcher. Logged at debug level. process.uptime and hrtime rather
 * than `performance`, whose first use loads perf_hooks (most of a millisecond).
 */
function phaseClock() {
  let last = process.hrtime.bigint();
  const phases: Record<string, number> = { 'node+bundle': +(process.uptime() * 1000).toFixed(2) };
  return {
    phases,
    mark(name: string) {
      const now = process.hrtime.bigint();
      phases[name] = Number((now - last) / 10000n) / 100;
      last = now;
    },
  };
}

/**
 * `<stage> [--config FILE]` and -h/--help, parsed by hand: util.parseArgs loads its own module
 * (most of a millisecond of a hook's start-up) for these three options.
 */
function parseHookArgs(argv: string[]): { positionals: string[]; config?: string; help: boolean } {
  const out: { positionals: string[]; config?: string; help: boolean } = { positionals: [], help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a === '-h' || a === '--help') out.help = true;
    else if (a === '--config') {
      if (i + 1 >= argv.length) throw new Error(`option --config needs a file`);
      out.config = argv[++i];
    } else if (a.startsWith('--config=')) out.config = a.slice('--config='.length);
    else if (a.startsWith('-') && a !== '-') throw new Error(`unknown option ${JSON.stringify(a)}`);
    else out.positionals.push(a);
  }
  return out;
}

/**
 * Tells scripts/hook-launcher.js that this run went through real work, so its code cache is worth
 * keeping, and, for a createRuntime, which plugins ran: its cache is named by the plugins its
 * annotations asked for, and only once these cover them.
 */
function markWorkDone(plugins?: string[]): void {
  const g = globalThis as { taskwireHookDidWork?: boolean; taskwireHookPlugins?: string[] };
  g.taskwireHookDidWork = true;
  if (plugins) g.taskwireHookPlugins = plugins;
}

export async function runHook(argv: string[], io: HookIo): Promise<number> {
  const clock = phaseClock();
  let parsed;
  try {
    parsed = parseHookArgs(argv);
  } catch (err) {
    io.stderr.write(`taskwire-hook: ${oneLine(err)}\n${USAGE}\n`);
    return 2;
  }
  if (parsed.help) {
    io.stderr.write(`${USAGE}\n`);
    return 0;
  }
  const stage = parsed.positionals[0] as Stage;
  if (!STAGES.includes(stage) || parsed.positionals.length !== 1) {
    io.stderr.write(`taskwire-hook: expected one stage (${STAGES.join(', ')}), got ${JSON.stringify(parsed.positionals.join(' '))}\n`);
    return 2;
  }

  const started = Date.now();
  let id = '?';
  try {
    const { parseState, readStdin } = await import('./oci');
    // The launcher (scripts/hook-launcher.js) may have read stdin already, to pick its cache.
    const early = io.stdin === 0 ? (globalThis as { taskwireHookStdin?: { data: Buffer; complete: boolean } }).taskwireHookStdin : undefined;
    const input = early?.complete ? early.data : Buffer.concat([early?.data ?? Buffer.alloc(0), await readInput(io.stdin, readStdin)]);
    const state = parseState(input.toString('utf8'));
    id = state.id;
    clock.mark('stdin');
    const { taskwireAnnotations } = await import('../plugins/index');
    const { appliesToAll, configPath, loadHostConfig, loadHostPaths, peekAppliesToAll } = await import('./host/config');
    const wanted = taskwireAnnotations(state.annotations).length > 0;
    clock.mark('load core');

    if (stage === 'poststop') {
      const host = loadHostPaths(configPath(parsed.config, io.env));
      const { recordPath, validateContainerId } = await import('./state/paths');
      validateContainerId(state.id);
      const layout = { bpffs: host.bpffs, runDir: host.runDir };
      if (!wanted && !existsSync(recordPath(layout, state.id))) return 0;
      clock.mark('host config');
      const { openLog } = await import('./log');
      const log = openLog(host.logFile, host.logLevel, { stage, id });
      clock.mark('open log');
      try {
        const { destroyContainer } = await import('./pipeline');
        const r = destroyContainer(layout, state.id, log, { unlessRunning: true });
        markWorkDone();
        clock.mark('destroy');
        log.debug({ phases: clock.phases }, 'timing');
        log.info({ found: r.found, running: r.running, left: r.errors.length, ms: Date.now() - started }, 'poststop done');
      } catch (err) {
        // gc leaves a damaged record alone (and lists it) until someone repairs it.
        const damaged = err instanceof (await import('./state/record')).DamagedRecordError;
        log.error({ err }, damaged ? 'poststop left the container alone: its record is damaged; repair it (taskwire gc lists it)' : 'poststop failed; taskwire gc will finish the job');
      }
      return 0;
    }

    const cfgPath = configPath(parsed.config, io.env);
    if (!wanted && !peekAppliesToAll(cfgPath)) return 0;
    let host;
    try {
      host = loadHostConfig(cfgPath);
    } catch (err) {
      // A container that asked for nothing is not failed for a host config it does not need;
      // one that asked for something is (below, through the same error).
      if (!wanted) return 0;
      throw err;
    }
    clock.mark('host config');
    if (!wanted && !appliesToAll(host)) return 0;
    const { openLog } = await import('./log');
    const log = openLog(host.logFile, host.logLevel, { stage, id });
    clock.mark('open log');
    const { setLibbpfLogSink } = await import('./bpf/libbpf');
    setLibbpfLogSink((level, text) => log[level]({ libbpf: true }, text));
    clock.mark('load koffi'); // libbpf itself is mapped only if an object is opened (lib/ffi.ts)
    try {
      const { selectPlugins, createContainer } = await import('./pipeline');
      const { resolveContainer } = await import('./container');
      const selected = selectPlugins(state.annotations ?? {}, host, state.id);
      const container = resolveContainer(state);
      clock.mark('select plugins');
      const rec = createContainer({ container, host, log, selected, stage, deadline: started + host.hookTimeoutMs });
      markWorkDone(selected.map((s) => s.def.name));
      clock.mark('create');
      log.debug({ phases: clock.phases }, 'timing');
      log.info({ plugins: rec.plugins.map((p) => p.name), ms: Date.now() - started }, 'container ready');
      return 0;
    } catch (err) {
      log.error({ err }, 'refused');
      throw err;
    }
  } catch (err) {
    const prefix = err instanceof TaskwireError ? '' : 'internal error: ';
    io.stderr.write(`taskwire: ${id}: ${prefix}${oneLine(err)}\n`);
    return stage === 'poststop' ? 0 : 1;
  }
}
