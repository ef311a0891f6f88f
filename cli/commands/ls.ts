import type { Command } from 'commander';
import { listContainers } from '../../lib/inventory';
import { cliContext, printJson, printTable } from '../context';

function addresses(plugins: { summary: Record<string, unknown> }[]): string {
  const out: string[] = [];
  for (const p of plugins) for (const k of ['ip6', 'ip4']) if (typeof p.summary[k] === 'string') out.push(p.summary[k] as string);
  return out.join(',') || '-';
}

export function registerLs(program: Command): void {
  program
    .command('ls')
    .description('list the containers taskwire manages: plugins, addresses, pinned programs')
    .option('--json', 'machine-readable output')
    .action((opts: { json?: boolean }, cmd: Command) => {
      const { layout } = cliContext(cmd);
      const list = listContainers(layout);
      if (opts.json) return printJson(list);
      printTable(
        ['CONTAINER', 'STATE', 'PLUGINS', 'ADDRESSES', 'PROGRAMS'],
        list.map((c) => [
          c.id,
          !c.complete ? 'partial' : c.alive ? 'running' : 'gone',
          c.plugins.map((p) => p.name).join(',') || '-',
          addresses(c.plugins),
          String(c.pins.filter((p) => p.split('/').pop()!.startsWith('link_')).length),
        ]),
      );
    });
}
