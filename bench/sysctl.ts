/*
 * sysctl control: the cost of reading a sysctl inside a cgroup with the policy attached, against
 * the same read in a cgroup without it. A child process (test/integration/sysctl-child.js) joins
 * the cgroup and preads /proc/sys/kernel/ostype N times from one open file, timing the loop
 * itself (process start is not measured). Three cgroups, interleaved in every round:
 *   baseline    no program
 *   example     the example host config's policy (read-only default, a few exact names)
 *   worst       two stacked policies (tighten) of 32 wildcard names each, none matching the
 *               name read: every pattern of both slots is tried before the default applies
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { startTask } from '../test/helpers/task';
import { benchHost, interleave, NODE, ratio, rounds, runBench, writeReport } from './lib';

const ROOT = process.env.TW_ROOT ?? join(__dirname, '..');
const CHILD = join(ROOT, 'test', 'integration', 'sysctl-child.js');
const NAME = 'kernel.ostype';
const READS = 20000;

function nsPerRead(cgroup: string): number {
  const r = spawnSync(NODE, [CHILD, cgroup, JSON.stringify([{ op: 'read-loop', name: NAME, n: READS }])], { encoding: 'utf8' });
  const [res] = JSON.parse(r.stdout || '[{}]');
  if (r.status !== 0 || !res?.ok) throw new Error(`sysctl child failed: ${r.stderr || JSON.stringify(res)}`);
  return res.nsPerOp;
}

const patterns = (tag: string) =>
  Array.from({ length: 32 }, (_, i) => ({ name: i % 2 ? `net.${tag}${i}.*.x` : `vm.${tag}${i}_**`, access: 'deny' }));

async function main(): Promise<void> {
  const host = benchHost((cfg) => {
    cfg.plugins.sysctl.annotations = 'tighten';
    cfg.plugins.sysctl.events = false;
  });
  const worstHost = benchHost((cfg) => {
    cfg.plugins.sysctl = { enabled: true, annotations: 'tighten', policy: { default: 'allow', rules: patterns('h') } };
  });
  const base = await startTask(host, {}, 'tw.bench.sc');
  const example = await startTask(host, { 'io.taskwire.sysctl': 'default' }, 'tw.bench.sc');
  const worst = await startTask(worstHost, { 'io.taskwire.sysctl': JSON.stringify({ default: 'allow', rules: patterns('a') }) }, 'tw.bench.sc');
  const n = rounds(15);
  const samples = interleave(n, [
    { name: 'baseline', run: () => nsPerRead(base.cgroup) },
    { name: 'example', run: () => nsPerRead(example.cgroup) },
    { name: 'worst', run: () => nsPerRead(worst.cgroup) },
  ]);
  writeReport({
    name: 'sysctl',
    title: 'sysctl control: reading a sysctl under a policy',
    method:
      `ns per pread of /proc/sys/${NAME.replaceAll('.', '/')} (${READS} reads from one open file, timed inside a child process in the cgroup), ` +
      `with the sysctl program attached against a cgroup without it, ${n} interleaved rounds. "example": the example host config's policy; ` +
      '"worst": two stacked policies (tighten) of 32 wildcard names each, none matching, so every pattern is tried. Ratios per round, median and IQR.',
    ratios: [
      ratio('read, example policy / no policy', samples.example, samples.baseline, 'ns'),
      ratio('read, 2 x 32 patterns, none matching / no policy', samples.worst, samples.baseline, 'ns'),
    ],
    samples,
  });
}

runBench(main);
