import type { Command } from 'commander';
import { registerDoctor } from './doctor';
import { registerGc } from './gc';
import { registerInspect } from './inspect';
import { registerInstall } from './install';
import { registerLs } from './ls';
import { registerStats } from './stats';
import { registerFw } from './fw';
import { registerFault } from './fault';
import { registerSet } from './set';
import { registerMonitor } from './monitor';

/** Every subcommand, in the order `taskwire --help` lists them. */
export function registerCommands(program: Command): void {
  registerLs(program);
  registerInspect(program);
  registerStats(program);
  registerFw(program);
  registerFault(program);
  registerSet(program);
  registerMonitor(program);
  registerGc(program);
  registerDoctor(program);
  registerInstall(program);
}
