/*
 * Shared benchmark helpers. Every figure taskwire publishes is a ratio against a baseline taken
 * in the same run, in interleaved rounds: this machine is shared and its load drifts by a factor
 * of two within a minute, so absolute times mean little, while a subject and its baseline run
 * seconds apart see the same load. Per-round ratios (paired) are summarised by their median, its
 * 95% confidence interval and the interquartile range; a goal is judged with the interval
 * (bench/stats.ts).
 *
 * Results go to bench/results/<name>.json (all samples) and to one section of
 * bench/results/README.md (the table the project README links to).
 */
import { spawnSync, SpawnSyncOptions } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { runCleanups, onCleanup, tempDir, testHost, TestHost } from '../test/helpers/kernel';
import { medianInterval, MedianInterval, stats, Stats, verdict, Verdict } from './stats';

export { onCleanup, runCleanups };

/** The checkout. Benches run bundled from .tools/bench/, so scripts/bench.sh passes it as TW_ROOT. */
export const ROOT = process.env.TW_ROOT ?? join(__dirname, '..');
export const RESULTS = process.env.TW_BENCH_RESULTS ?? join(ROOT, 'bench', 'results');
export const NODE = process.execPath;

/** Rounds from TW_BENCH_ROUNDS (quick runs while developing), else the bench's default. */
export function rounds(fallback: number): number {
  const n = Number(process.env.TW_BENCH_ROUNDS);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

export { stats } from './stats';

/** Wall time of fn in milliseconds. */
export function timeMs(fn: () => void): number {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

export interface RunResult {
  ms: number;
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion and times it (spawn cost included, the same for every variant). */
export function timeCommand(cmd: string, args: string[], opts: SpawnSyncOptions = {}): RunResult {
  let r!: ReturnType<typeof spawnSync>;
  const ms = timeMs(() => {
    r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  });
  if (r.error) throw r.error;
  return { ms, status: r.status, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
}

/**
 * A variant measured once per round. `run` returns its measurement (ms, a rate...); `setup` and
 * `teardown` run outside the measurement.
 */
export interface Variant<C = unknown> {
  name: string;
  setup?: (round: number) => C;
  run: (ctx: C, round: number) => number;
  teardown?: (ctx: C) => void;
}

/**
 * Runs every variant once per round, rotating which goes first so that no variant always follows
 * the same one (caches, CPU frequency, a neighbour's burst). Returns samples by variant name.
 */
export function interleave(n: number, variants: Variant<any>[], warmup = 2): Record<string, number[]> {
  const out: Record<string, number[]> = Object.fromEntries(variants.map((v) => [v.name, []]));
  for (let round = -warmup; round < n; round++) {
    const start = ((round % variants.length) + variants.length) % variants.length;
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(start + k) % variants.length];
      const ctx = v.setup?.(round);
      let value: number;
      try {
        value = v.run(ctx, round);
      } finally {
        v.teardown?.(ctx);
      }
      if (round >= 0) out[v.name].push(value);
    }
  }
  return out;
}

export interface Ratio {
  /** What is compared, e.g. "hook createRuntime / node -e 0". */
  label: string;
  subject: Stats;
  baseline: Stats;
  /** Per-round subject/baseline. */
  ratio: Stats;
  unit: string;
  /** 95% confidence interval of the median ratio (bench/stats.ts), when there are enough rounds. */
  ci?: MedianInterval;
  /** The goal, as a bound on the median ratio. */
  goal?: { op: '<=' | '>='; value: number };
  /** The goal judged with the interval: 'on the line' when the bound lies inside it. */
  verdict?: Verdict;
}

/** Pairs round i of subject with round i of baseline. */
export function ratio(label: string, subject: number[], baseline: number[], unit: string, goal?: Ratio['goal']): Ratio {
  if (subject.length !== baseline.length) throw new Error(`${label}: ${subject.length} vs ${baseline.length} samples`);
  const ratios = subject.map((s, i) => s / baseline[i]);
  const r = stats(ratios);
  const ci = medianInterval(ratios);
  return { label, subject: stats(subject), baseline: stats(baseline), ratio: r, ci, unit, goal, verdict: goal && verdict(goal, r.median, ci) };
}

const fmt = (x: number, d = 2) => (Math.abs(x) >= 1000 ? x.toFixed(0) : x.toFixed(d));

// Rounded outward, so that the printed interval never looks inside a bound the verdict says it crosses.
const ciText = (r: Ratio) => (r.ci ? `${(Math.floor(r.ci.lo * 100) / 100).toFixed(2)}-${(Math.ceil(r.ci.hi * 100) / 100).toFixed(2)}` : '');
const verdictText = (r: Ratio) => (r.verdict === 'not met' ? 'NOT met' : (r.verdict ?? ''));

export function ratioLine(r: Ratio): string {
  const goal = r.goal ? `; goal ${r.goal.op} ${r.goal.value}: ${verdictText(r)}` : '';
  const ci = r.ci ? `, 95% CI ${ciText(r)}` : '';
  return (
    `${r.label}: ${r.ratio.median.toFixed(2)}x (median of ${r.ratio.n}${ci}, IQR ${r.ratio.q1.toFixed(2)}-${r.ratio.q3.toFixed(2)}; ` +
    `${fmt(r.subject.median)} vs ${fmt(r.baseline.median)} ${r.unit}${goal})`
  );
}

export function machine(): Record<string, unknown> {
  let kernel = '';
  try {
    kernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
  } catch {}
  return { node: process.version, kernel, cpus: cpus().length, cpu: cpus()[0]?.model, loadavg: loadavg().map((l) => +l.toFixed(2)) };
}

export interface Report {
  /** File stem: bench/results/<name>.json and the README section's key. */
  name: string;
  title: string;
  /** One paragraph: what is measured against what, and how. */
  method: string;
  ratios: Ratio[];
  /** Extra tables (e.g. a phase breakdown): header row then rows. */
  tables?: { title: string; rows: string[][] }[];
  samples: Record<string, number[]>;
  extra?: Record<string, unknown>;
}

function mdTable(rows: string[][]): string {
  const [head, ...body] = rows;
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...body.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function section(r: Report, when: string): string {
  const rows = [
    ['measure', 'ratio (median)', '95% CI of the median', 'IQR', 'subject median', 'baseline median', 'goal', ''],
    ...r.ratios.map((x) => [
      x.label,
      `${x.ratio.median.toFixed(2)}x`,
      ciText(x),
      `${x.ratio.q1.toFixed(2)}-${x.ratio.q3.toFixed(2)}`,
      `${fmt(x.subject.median)} ${x.unit}`,
      `${fmt(x.baseline.median)} ${x.unit}`,
      x.goal ? `${x.goal.op} ${x.goal.value}` : '',
      x.verdict === 'not met' ? '**not met**' : (x.verdict ?? ''),
    ]),
  ];
  const m = machine();
  const parts = [
    `## ${r.title}`,
    '',
    r.method,
    '',
    mdTable(rows),
    ...(r.tables ?? []).flatMap((t) => ['', `${t.title}:`, '', mdTable(t.rows)]),
    '',
    `<sub>${when}; node ${m.node}, kernel ${m.kernel}, ${m.cpus} CPUs, load ${(m.loadavg as number[]).join(' ')}; ` +
      `samples in [${r.name}.json](${r.name}.json)</sub>`,
  ];
  return parts.join('\n');
}

const README_HEAD = `# Benchmark results

Written by \`scripts/bench.sh\` (one section per \`bench/*.ts\`). Every figure is a ratio against
a baseline measured in the same run, in interleaved rounds; see bench/README.md for the method.
`;

/** Writes bench/results/<name>.json and replaces this bench's section of bench/results/README.md. */
export function writeReport(r: Report): void {
  mkdirSync(RESULTS, { recursive: true });
  const when = new Date().toISOString();
  writeFileSync(join(RESULTS, `${r.name}.json`), JSON.stringify({ name: r.name, title: r.title, when, machine: machine(), method: r.method, ratios: r.ratios, tables: r.tables ?? [], extra: r.extra ?? {}, samples: r.samples }, null, 1) + '\n');
  const readme = join(RESULTS, 'README.md');
  const begin = `<!-- bench:${r.name} -->`;
  const end = `<!-- /bench:${r.name} -->`;
  const block = `${begin}\n${section(r, when)}\n${end}`;
  let text = existsSync(readme) ? readFileSync(readme, 'utf8') : README_HEAD;
  const at = text.indexOf(begin);
  const stop = text.indexOf(end);
  if (at >= 0 && stop > at) text = text.slice(0, at) + block + text.slice(stop + end.length);
  else text = `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(readme, text);
  for (const x of r.ratios) console.log(ratioLine(x));
  console.log(`wrote ${join(RESULTS, `${r.name}.json`)}`);
}

export interface BenchHost extends TestHost {
  /** A tmpfs at the run dir, as /run is on a systemd host. */
  runTmpfs: boolean;
}

/**
 * The example host config with a private bpffs, unique pools (test/helpers/kernel.ts testHost),
 * and the run dir on its own tmpfs: taskwire's default run dir is /run/taskwire, a tmpfs on any
 * systemd host, where the journal's fsyncs cost nothing. On this build machine / is one ext4
 * volume, so without this the benchmark would time disk flushes no production host does.
 * TW_BENCH_RUNDIR_DISK=1 keeps the run dir on disk to see that cost.
 */
export function benchHost(patch: (cfg: Record<string, any>) => void = () => {}): BenchHost {
  const onDisk = process.env.TW_BENCH_RUNDIR_DISK === '1';
  let runDir = '';
  if (!onDisk) {
    runDir = join(tempDir('tw-bench-run-'), 'run');
    mkdirSync(runDir);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'mode=0755,size=64m', 'tw-bench', runDir]);
    onCleanup(() => execFileSync('umount', ['-l', runDir]));
  }
  const h = testHost((cfg) => {
    if (!onDisk) cfg.runDir = runDir;
    cfg.logLevel = 'info';
    patch(cfg);
  });
  return { ...h, runTmpfs: !onDisk };
}

/** Runs the cleanups however the bench ends (error, ^C). */
export function cleanupOnExit(): void {
  process.on('exit', runCleanups);
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.on(sig, () => {
      runCleanups();
      process.exit(130);
    });
}

/**
 * Runs a bench's main: root check, cleanups however it ends, and an explicit exit afterwards, so
 * that a child process or socket a bench forgot to unref cannot keep it (and its cgroups,
 * mounts and addresses) alive after the report is written.
 */
export function runBench(main: () => Promise<void>): void {
  requireRoot();
  cleanupOnExit();
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err instanceof Error ? err.stack : err);
      process.exit(1);
    },
  );
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    console.error('this benchmark needs root (cgroups, bpffs, BPF programs)');
    process.exit(2);
  }
}
