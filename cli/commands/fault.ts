/* `taskwire fault add ID --drop PCT [match...]` / `taskwire fault clear ID`: fault injection. */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { faultAdd, faultClear } from '../../plugins/twfw/ops';
import { cliContext, printJson } from '../context';

const list = (v: string, prev: string[] = []) => [...prev, ...v.split(',').filter(Boolean)];

export function registerFault(program: Command): void {
  const fault = program.command('fault').description('fault injection on a running container (twfw)');
  fault
    .command('add')
    .description('drop a percentage of matching packets, before the policy is consulted')
    .argument('<id>', 'container id')
    .requiredOption('--drop <pct>', 'percentage of matching packets to drop (0-100]', (v) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0 || n > 100) throw new InvalidArgumentError('a percentage in (0, 100]');
      return n;
    })
    .option('--direction <dir>', 'ingress, egress or both', 'both')
    .option('--proto <proto>', 'tcp, udp, icmp, icmpv6')
    .option('--port <ports>', 'destination ports or ranges (lo-hi), comma-separated; needs --proto tcp|udp', list)
    .option('--remote <prefixes>', 'remote prefixes, comma-separated', list)
    .option('--json', 'machine-readable output')
    .action((id: string, o: { drop: number; direction: string; proto?: string; port?: string[]; remote?: string[]; json?: boolean }, cmd: Command) => {
      const { host, layout } = cliContext(cmd);
      if (!['ingress', 'egress', 'both'].includes(o.direction)) throw new InvalidArgumentError(`--direction ${o.direction}: ingress, egress or both`);
      const st = faultAdd(host, layout, id, {
        dropPercent: o.drop,
        direction: o.direction as 'ingress' | 'egress' | 'both',
        proto: o.proto as never,
        ports: o.port?.map((p) => (/^\d+$/.test(p) ? Number(p) : p)),
        remote: o.remote,
      });
      if (o.json) return printJson({ id, generation: st.generation, faults: st.faults });
      process.stdout.write(`${id}: ${st.faults.length} fault rule(s) active (generation ${st.generation})\n`);
    });
  fault
    .command('clear')
    .description('remove every fault rule')
    .argument('<id>', 'container id')
    .action((id: string, _o: unknown, cmd: Command) => {
      const { host, layout } = cliContext(cmd);
      const st = faultClear(host, layout, id);
      process.stdout.write(`${id}: faults cleared (generation ${st.generation})\n`);
    });
}
