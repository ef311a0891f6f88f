/* `taskwire set update NAME ENDPOINTS...` / `taskwire set show`: named endpoint sets (twfw). */
import type { Command } from 'commander';
import { listSets, updateSet } from '../../plugins/twfw/sets';
import { twfwSection } from '../../plugins/twfw/ops';
import { cliContext, printJson, printTable } from '../context';

export function registerSet(program: Command): void {
  const set = program.command('set').description('named endpoint sets shared by every container (twfw)');
  set
    .command('update')
    .description('replace the members of a set (IP, IP:port, [IPv6]:port); every container using it sees them at once')
    .argument('<name>', 'set name')
    .argument('<endpoints...>', 'members')
    .action((name: string, endpoints: string[], _o: unknown, cmd: Command) => {
      const { host, layout } = cliContext(cmd);
      twfwSection(host);
      const s = updateSet(layout, name, endpoints);
      process.stdout.write(`set ${name}: ${s.members.length} member(s)\n`);
    });
  set
    .command('show')
    .description('list the sets and their members')
    .option('--json', 'machine-readable output')
    .action((o: { json?: boolean }, cmd: Command) => {
      const { host, layout } = cliContext(cmd);
      const sets = listSets(layout, twfwSection(host).sets);
      if (o.json) return printJson(sets);
      printTable(['SET', 'STATE', 'MEMBERS'], sets.map((s) => [s.name, s.bit === null ? 'config (not loaded yet)' : 'live', s.members.join(' ')]));
    });
}
