import type { Command } from 'commander';
import { registerGc } from './gc';
import { registerLs } from './ls';

/** Every subcommand, in the order `taskwire --help` lists them. */
export function registerCommands(program: Command): void {
  registerLs(program);
  registerGc(program);
}
