#!/usr/bin/env node
/*
 * The taskwire command. Each subcommand is a small module under cli/commands; this file only
 * wires them into commander and owns the exit policy: 0 success, 1 failure (one line on stderr),
 * 2 usage error.
 */
import { Command, CommanderError } from 'commander';
import { oneLine } from '../lib/errors';
import { registerCommands } from './commands';

export async function main(argv: string[]): Promise<number> {
  const program = new Command('taskwire')
    .description('BPF networking and isolation for containers, as OCI hooks: inspect and operate it')
    .option('--config <file>', 'host config (default: $TASKWIRE_CONFIG or /etc/taskwire/config.json)')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  registerCommands(program);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return (process.exitCode as number | undefined) ?? 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    process.stderr.write(`taskwire: ${oneLine(err)}\n`);
    return 1;
  }
}

if (require.main === module) main(process.argv.slice(2)).then((code) => process.exit(code));
