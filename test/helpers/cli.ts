/* The taskwire CLI as a user runs it: the bundled executable, empty environment, host config given. */
import { spawnSync, SpawnSyncReturns } from 'node:child_process';
import { join } from 'node:path';
import { NODE, ROOT } from './kernel';

export const CLI_BIN = join(ROOT, 'dist', 'taskwire.js');

export function cli(configPath: string, ...args: string[]): SpawnSyncReturns<string> {
  return spawnSync(NODE, [CLI_BIN, '--config', configPath, ...args], { encoding: 'utf8', env: {} });
}

/** stdout of a command that must succeed. */
export function cliOk(configPath: string, ...args: string[]): string {
  const r = cli(configPath, ...args);
  if (r.status !== 0) throw new Error(`taskwire ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}
