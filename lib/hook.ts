/*
 * The hook dispatcher: owns argv, stdin, the deadline and the exit policy, so the entry point is
 * one line and tests can drive every stage in-process.
 *
 *   createRuntime | prestart   attach; any failure → everything undone, one line on stderr, exit 1
 *   poststop                   undo; exit 0 even when something could not be undone (gc's job)
 *
 * The stage comes from argv (runtimes disagree on `status`). A container without io.taskwire.*
 * annotations costs a stdin read and a JSON parse: no host config, no native module.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { oneLine, TaskwireError } from './errors';

export const STAGES = ['createRuntime', 'prestart', 'poststop'] as const;
export type Stage = (typeof STAGES)[number];

export interface HookIo {
  stdin: NodeJS.ReadableStream;
  stderr: { write(s: string): unknown };
  env: NodeJS.ProcessEnv;
}

const USAGE = `usage: taskwire-hook <createRuntime|prestart|poststop> [--config FILE]
Reads the OCI state on stdin. Meant to be named in a bundle's config.json hooks or a hooks.d file
(see taskwire install). Exit 0: done; exit 1: the container must not start (one line on stderr);
exit 2: bad invocation.`;

export async function runHook(argv: string[], io: HookIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    io.stderr.write(`taskwire-hook: ${oneLine(err)}\n${USAGE}\n`);
    return 2;
  }
  if (parsed.values.help) {
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
    const state = parseState(await readStdin(io.stdin));
    id = state.id;
    const { taskwireAnnotations } = await import('./pipeline');
    const { configPath, loadHostConfig } = await import('./host/config');
    const wanted = taskwireAnnotations(state.annotations).length > 0;

    if (stage === 'poststop') {
      const host = loadHostConfig(configPath(parsed.values.config, io.env));
      const { recordPath, validateContainerId } = await import('./state/paths');
      validateContainerId(state.id);
      const layout = { bpffs: host.bpffs, runDir: host.runDir };
      if (!wanted && !existsSync(recordPath(layout, state.id))) return 0;
      const { openLog } = await import('./log');
      const log = openLog(host.logFile, host.logLevel, { stage, id });
      try {
        const { destroyContainer } = await import('./pipeline');
        const r = destroyContainer(layout, state.id, log);
        log.info({ found: r.found, left: r.errors.length, ms: Date.now() - started }, 'poststop done');
      } catch (err) {
        log.error({ err }, 'poststop failed; taskwire gc will finish the job');
      }
      return 0;
    }

    if (!wanted) return 0;
    const host = loadHostConfig(configPath(parsed.values.config, io.env));
    const { openLog } = await import('./log');
    const log = openLog(host.logFile, host.logLevel, { stage, id });
    const { setLibbpfLogSink } = await import('./bpf/libbpf');
    setLibbpfLogSink((level, text) => log[level]({ libbpf: true }, text));
    try {
      const { selectPlugins, createContainer } = await import('./pipeline');
      const { resolveContainer } = await import('./container');
      const selected = selectPlugins(state.annotations ?? {}, host, state.id);
      const container = resolveContainer(state);
      const rec = createContainer({ container, host, log, selected, stage, deadline: started + host.hookTimeoutMs });
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
