import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { ConfigError } from '../../lib/errors';
import { ContainerCost, containerCost, runTimeStatsOn, withRunTimeStats } from '../../lib/introspect';
import { containerPinDir } from '../../lib/state/paths';
import { DamagedRecord, listRecords, readRecord } from '../../lib/state/record';
import { existsSync } from 'node:fs';
import { cliContext, printJson, printTable, warnDamaged } from '../context';
import { bytes, nanos } from '../format';

function seconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 3600) throw new InvalidArgumentError('expected seconds between 0 and 3600');
  return n;
}

export interface ProgramStats {
  container: string;
  plugin: string;
  program: string;
  id: number;
  type: string;
  attached: boolean;
  runs: number;
  runTimeNs: number;
  avgNs: number | null;
  jitedBytes: number;
  memlock: number;
}

/** Per program: counters now, or their growth since `before` (same program id). */
export function programStats(after: ContainerCost[], before?: ContainerCost[]): ProgramStats[] {
  const prev = new Map(before?.flatMap((c) => c.programs.map((p) => [p.prog.id, p.prog] as const)) ?? []);
  return after.flatMap((c) =>
    c.programs.map((p) => {
      const b = prev.get(p.prog.id);
      const runs = Number(p.prog.runCnt - (b?.runCnt ?? 0n));
      const runTimeNs = Number(p.prog.runTimeNs - (b?.runTimeNs ?? 0n));
      return {
        container: c.id,
        plugin: p.plugin,
        program: p.program,
        id: p.prog.id,
        type: p.prog.type,
        attached: p.attached,
        runs,
        runTimeNs,
        avgNs: runs ? Math.round(runTimeNs / runs) : null,
        jitedBytes: p.prog.jitedBytes,
        memlock: p.prog.memlock,
      };
    }),
  );
}

export function registerStats(program: Command): void {
  program
    .command('stats')
    .description('what BPF costs the host per container: runs, run time, ns per run, JIT size, map memory')
    .argument('[id]', 'only this container')
    .option('--sample <seconds>', 'turn kernel BPF run-time stats on and count over this window (0: counters as they are)', seconds, 1)
    .option('--json', 'machine-readable output')
    .action(async (id: string | undefined, opts: { sample: number; json?: boolean }, cmd: Command) => {
      const { layout } = cliContext(cmd);
      let ids: string[];
      if (id) {
        if (!readRecord(layout, id) && !existsSync(containerPinDir(layout, id))) throw new ConfigError(`no container ${JSON.stringify(id)} is managed here (see taskwire ls)`);
        ids = [id];
      } else {
        const damaged: DamagedRecord[] = [];
        ids = listRecords(layout, damaged).map((r) => r.id);
        warnDamaged(cmd, damaged, 'its container is not measured');
      }
      const measure = () => ids.map((i) => containerCost(layout, i));
      const wasOn = runTimeStatsOn();
      let costs: ContainerCost[];
      let rows: ProgramStats[];
      if (opts.sample > 0) {
        if (process.stderr.isTTY && opts.sample >= 1) process.stderr.write(`sampling for ${opts.sample} s...\n`);
        ({ costs, rows } = await withRunTimeStats(async () => {
          const before = measure();
          await new Promise((r) => setTimeout(r, opts.sample * 1000));
          const after = measure();
          return { costs: after, rows: programStats(after, before) };
        }));
      } else {
        costs = measure();
        rows = programStats(costs);
      }
      const window = opts.sample > 0 ? { seconds: opts.sample } : null;
      const containers = costs.map((c) => ({ id: c.id, programs: c.programs.length, programBytes: c.programBytes, maps: c.maps, mapBytes: c.mapBytes }));
      if (opts.json) return printJson({ window, statsWereOn: wasOn, programs: rows, containers });
      if (!costs.length) return void process.stdout.write('no containers\n');
      process.stdout.write(
        window
          ? `runs during a ${opts.sample} s sample (kernel BPF run-time stats on for it${wasOn ? ', and already on' : ''})\n`
          : `runs since load, counted only while kernel BPF run-time stats are on (now ${wasOn ? 'on' : 'off'})\n`,
      );
      printTable(
        ['CONTAINER', 'PLUGIN', 'PROGRAM', 'TYPE', 'ATTACHED', 'RUNS', 'RUN TIME', 'NS/RUN', 'JIT'],
        rows.map((r) => [r.container, r.plugin, r.program, r.type, r.attached ? 'yes' : 'no', String(r.runs), nanos(r.runTimeNs), r.avgNs === null ? '-' : String(r.avgNs), bytes(r.jitedBytes)]),
      );
      process.stdout.write('\n');
      printTable(
        ['CONTAINER', 'PROGRAMS', 'PROGRAM MEMORY', 'MAPS', 'MAP MEMORY'],
        containers.map((c) => [c.id, String(c.programs), bytes(c.programBytes), String(c.maps.length), bytes(c.mapBytes)]),
      );
    });
}
