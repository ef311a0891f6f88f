/* `taskwire fw apply ID POLICY` and `taskwire fw stats ID`: a running container's firewall. */
import type { Command } from 'commander';
import { fwApply, fwStats } from '../../plugins/twfw/ops';
import { cliContext, printJson, printTable } from '../context';

export function registerFw(program: Command): void {
  const fw = program.command('fw').description('the twfw firewall of a running container');
  fw.command('apply')
    .description('replace the policy atomically (inline JSON or @NAME, as in the annotation); faults stay')
    .argument('<id>', 'container id')
    .argument('<policy>', 'inline JSON policy or @NAME')
    .option('--json', 'machine-readable output')
    .action((id: string, policy: string, opts: { json?: boolean }, cmd: Command) => {
      const { host, layout } = cliContext(cmd);
      const st = fwApply(host, layout, id, policy);
      if (opts.json) return printJson({ id, generation: st.generation, source: st.source, rules: st.labels.length - 3, entries: st.entries });
      process.stdout.write(`${id}: policy ${st.source} applied (generation ${st.generation}, ${st.labels.length - 3} rules, ${st.entries.match} match entries)\n`);
    });
  fw.command('stats')
    .description('packets and bytes per rule and per default')
    .argument('<id>', 'container id')
    .option('--json', 'machine-readable output')
    .option('--all', 'list rules that matched nothing too')
    .action((id: string, opts: { json?: boolean; all?: boolean }, cmd: Command) => {
      const { layout } = cliContext(cmd);
      const s = fwStats(layout, id);
      if (opts.json) return printJson(s);
      const rows = s.rules.filter((r) => opts.all || r.slot < 3 || r.packets > 0n);
      printTable(['RULE', 'PACKETS', 'BYTES'], rows.map((r) => [r.rule, String(r.packets), String(r.bytes)]));
      process.stdout.write(`generation ${s.generation}, policy ${s.source}, ${s.faults} fault rule(s), ${s.suppressedEvents} event(s) suppressed by the rate limit\n`);
    });
}
