import type { Command, } from 'commander';
import { InvalidArgumentError } from 'commander';
import { dumpPinnedMap, inspectContainer, PinnedMapDump } from '../../lib/map-decode';
import { cliContext, printJson, printTable } from '../context';
import { bytes, flat } from '../format';

export function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number >= 1');
  return n;
}

function printDump(d: PinnedMapDump): void {
  const m = d.map;
  const types = `key ${d.keyType ?? `${m.keySize} bytes`}, value ${d.valueType ?? `${m.valueSize} bytes`}${d.perCpu ? ' (summed over CPUs)' : ''}`;
  process.stdout.write(`${d.rel}: ${m.type} map ${m.name} (id ${m.id}), ${types}, ${d.entries.length}${d.truncated ? '+' : ''}/${m.maxEntries} entries, ${bytes(m.memlock)}\n`);
  if (d.note) process.stdout.write(`  ${d.note}\n`);
  else if (d.entries.length) printTable(['  KEY', 'VALUE'], d.entries.map((e) => [`  ${flat(e.key)}`, flat(e.value)]));
  if (d.truncated) process.stdout.write(`  (more entries; raise --limit)\n`);
}

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description("decode a container's pinned maps through their BTF and taskwire's codecs (or one map by pin path)")
    .argument('<id|path>', 'container id, or the path of a pinned map')
    .argument('[map]', 'only this map: its pin (plugin/map_name), pin name, or kernel name')
    .option('--limit <n>', 'entries per map at most', positiveInt, 1000)
    .option('--json', 'machine-readable output')
    .action((target: string, map: string | undefined, opts: { limit: number; json?: boolean }, cmd: Command) => {
      let dumps: PinnedMapDump[];
      if (target.startsWith('/')) dumps = [dumpPinnedMap(target, target, opts.limit)];
      else dumps = inspectContainer(cliContext(cmd).layout, target, map, opts.limit);
      if (opts.json) return printJson(dumps);
      if (!dumps.length) process.stdout.write(`${target}: no pinned maps\n`);
      dumps.forEach((d, i) => {
        if (i) process.stdout.write('\n');
        printDump(d);
      });
    });
}
