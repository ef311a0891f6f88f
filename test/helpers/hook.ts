/* Drives the hook: in-process through the dispatcher (fast, debuggable) or as the bundled
 * executable with an empty environment, the way podman runs poststop. */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { runHook } from '../../lib/hook';
import { NODE, ROOT } from './kernel';

export interface HookResult {
  code: number;
  stderr: string;
}

export interface StateInput {
  id: string;
  pid?: number;
  bundle?: string;
  annotations?: Record<string, string>;
  status?: string;
}

function stateJson(s: StateInput): string {
  return JSON.stringify({ ociVersion: '1.0.2', status: 'creating', bundle: '/tmp', ...s });
}

export async function hook(stage: string, state: StateInput, configPath: string): Promise<HookResult> {
  let stderr = '';
  const code = await runHook([stage, '--config', configPath], {
    stdin: Readable.from([stateJson(state)]),
    stderr: { write: (s: string) => (stderr += s) },
    env: {},
  });
  return { code, stderr };
}

export const HOOK_BIN = join(ROOT, 'dist', 'taskwire-hook.js');

export function hookBinary(stage: string, state: StateInput, configPath: string): HookResult {
  const r = spawnSync(NODE, [HOOK_BIN, stage, '--config', configPath], { input: stateJson(state), env: {}, cwd: '/', encoding: 'utf8' });
  return { code: r.status ?? -1, stderr: r.stderr };
}

/** hookBinary without blocking, so that many hooks can run at once (concurrency tests). */
export function hookBinaryAsync(stage: string, state: StateInput, configPath: string): Promise<HookResult> {
  return new Promise((resolve) => {
    const p = spawn(NODE, [HOOK_BIN, stage, '--config', configPath], { env: {}, cwd: '/', stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    p.stdin.end(stateJson(state));
    p.on('close', (code) => resolve({ code: code ?? -1, stderr }));
  });
}
