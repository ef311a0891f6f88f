import type { Command } from 'commander';
import { gc } from '../../lib/inventory';
import { cliContext, printJson } from '../context';

export function registerGc(program: Command): void {
  program
    .command('gc')
    .description('remove what belongs to containers that no longer exist (records, pins, addresses, files half written by a killed hook)')
    .option('--dry-run', 'show what would be removed, remove nothing')
    .option('--json', 'machine-readable output')
    .action((opts: { dryRun?: boolean; json?: boolean }, cmd: Command) => {
      const { layout, log } = cliContext(cmd);
      const r = gc(layout, log, Boolean(opts.dryRun));
      if (opts.json) printJson({ dryRun: Boolean(opts.dryRun), ...r });
      else {
        for (const i of r.removed) process.stdout.write(`${opts.dryRun ? 'would remove' : 'removed'} ${i.id} (${i.why})\n`);
        for (const f of r.failed) process.stderr.write(`taskwire gc: ${f.id}: ${f.error}\n`);
        if (!r.removed.length && !r.failed.length) process.stdout.write('nothing to collect\n');
      }
      if (r.failed.length) process.exitCode = 1;
    });
}
