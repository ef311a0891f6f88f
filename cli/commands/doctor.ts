import type { Command } from 'commander';
import { styleText } from 'node:util';
import { Check, runDoctor } from '../../lib/doctor';
import { cliContext, printJson } from '../context';

const MARK: Record<Check['status'], [string, Parameters<typeof styleText>[0]]> = {
  ok: ['ok', 'green'],
  fallback: ['fallback', 'yellow'],
  missing: ['MISSING', 'red'],
  info: ['info', 'dim'],
};

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check this host: kernel, cgroup v2, bpffs, libbpf, what each plugin needs, runtimes, installed hooks')
    .option('--hooks-dir <dir>', 'also look for hooks here (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--json', 'machine-readable output')
    .action((opts: { hooksDir: string[]; json?: boolean }, cmd: Command) => {
      const { host } = cliContext(cmd);
      const checks = runDoctor({ host, hooksDirs: opts.hooksDir });
      const missing = checks.filter((c) => c.status === 'missing');
      if (opts.json) printJson({ ok: missing.length === 0, checks });
      else {
        let area = '';
        for (const c of checks) {
          if (c.area !== area) process.stdout.write(`${area ? '\n' : ''}${(area = c.area)}\n`);
          const [word, colour] = MARK[c.status];
          const mark = process.stdout.isTTY ? styleText(colour, word.padEnd(8)) : word.padEnd(8);
          process.stdout.write(`  ${mark} ${c.name}: ${c.detail}\n`);
          if (c.fix && c.status !== 'ok') process.stdout.write(`           fix: ${c.fix}\n`);
        }
        process.stdout.write(`\n${missing.length ? `${missing.length} missing` : 'nothing missing'}\n`);
      }
      if (missing.length) process.exitCode = 1;
    });
}
