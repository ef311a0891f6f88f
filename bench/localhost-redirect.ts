/*
 * localhost-redirect: loopback connect+accept rate of a client inside a task with the redirect
 * on ([::1]:P → task IP:P, its own server), against a plain host process connecting to a host
 * server on [::1] with no program at all, in interleaved rounds of the same run. A third
 * variant, the task connecting to a host loopback service (programs run, nothing redirected),
 * shows the cost of the pass-through path; a fourth, a client in a fresh cgroup without programs,
 * is the control for "in another cgroup"; a fifth, the task connecting to its own server at the
 * task IP directly (same server, same path, no rewrite), isolates what the rewrite costs. Each sample: one client process making `count`
 * sequential connects, each until the server accepted and echoed a byte, then reset (RST, so
 * no TIME_WAIT piles up); the rate is timed inside the client, so process start-up is excluded.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { startTask } from '../test/helpers/task';
import { tempCgroup, uniq } from '../test/helpers/kernel';
import { benchHost, interleave, NODE, onCleanup, ratio, rounds, runBench, writeReport } from './lib';

const ROOT = process.env.TW_ROOT ?? join(__dirname, '..');
const CHILD = join(ROOT, 'test', 'helpers', 'net-child.js');
const COUNT = Number(process.env.TW_BENCH_CONNECTS) || 1000;

/** Connects per second of one client loop, in `cgroup` (or on the host). */
function connectRate(cgroup: string | null, host: string, port: number): number {
  const cmd = JSON.stringify({ op: 'tcp-connect-loop', host, port, count: COUNT });
  const r = cgroup
    ? spawnSync('sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, NODE, CHILD, cmd], { encoding: 'utf8' })
    : spawnSync(NODE, [CHILD, cmd], { encoding: 'utf8' });
  const e = JSON.parse(r.stdout.trim().split('\n').pop() || '{}');
  if (e.event !== 'done') throw new Error(`client loop failed: ${r.stdout}${r.stderr}`);
  return COUNT / (Number(e.ns) / 1e9);
}

/** A quiet echo server (test/helpers/net-child.js, found from TW_ROOT: this file runs bundled); resolves to its port. */
async function listen(cgroup: string | null, host: string, extra: Record<string, unknown> = {}): Promise<number> {
  const argv = [CHILD, JSON.stringify({ op: 'tcp-listen', host, port: 0, quiet: true, ...extra })];
  const p = cgroup ? spawn('sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, NODE, ...argv], { stdio: ['ignore', 'pipe', 'inherit'] }) : spawn(NODE, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
  onCleanup(() => p.kill('SIGKILL'));
  const [line] = (await once(createInterface({ input: p.stdout! }), 'line')) as [string];
  const e = JSON.parse(line);
  if (e.event !== 'listening') throw new Error(`server on ${host}: ${line}`);
  return e.port;
}

async function main(): Promise<void> {
  const host = benchHost();
  const task = await startTask(host, { 'io.taskwire.ip-per-task': 'auto', 'io.taskwire.localhost-redirect': 'true' }, 'tw.bench.lr');
  const taskPort = await listen(task.cgroup, '::', { ipv6Only: true });
  const hostPort = await listen(null, '::1');
  // The task's server sits on the task IP only: a [::1] connect that were not redirected would be refused and stop the bench.
  const ip6 = task.summary<{ ip6: string }>('ip-per-task').ip6;
  const n = rounds(20);
  // Control: a fresh cgroup without programs, to tell the cost of the programs from that of the cgroup.
  const bare = tempCgroup(uniq('tw-bench-lr'));

  const samples = interleave(n, [
    { name: 'host process → [::1], no programs', run: () => connectRate(null, '::1', hostPort) },
    { name: 'task → [::1] redirected to its own server', run: () => connectRate(task.cgroup, '::1', taskPort) },
    { name: 'task → host [::1] service (not redirected)', run: () => connectRate(task.cgroup, '::1', hostPort) },
    { name: 'bare cgroup → host [::1], no programs', run: () => connectRate(bare, '::1', hostPort) },
    { name: 'task → its own server at [task IP] directly', run: () => connectRate(task.cgroup, ip6, taskPort) },
  ]);
  const base = samples['host process → [::1], no programs'];
  writeReport({
    name: 'localhost-redirect',
    title: 'localhost-redirect: loopback connect+accept rate',
    method:
      `Sequential TCP connects to [::1]:P (${COUNT} per sample, each until the server accepted and echoed one byte, then reset), ` +
      `timed inside one Node client process, ${n} interleaved rounds. Subject: client and server in a task with ` +
      `ip-per-task (auto) + localhost-redirect, the server on [::] (moved to the task IP ${ip6}), so every connect is ` +
      `rewritten to it. Baseline: host client and server on [::1] in a cgroup without programs. Ratio = connects/s over baseline.`,
    ratios: [
      ratio('task [::1] redirected / host [::1] plain', samples['task → [::1] redirected to its own server'], base, 'conn/s', { op: '>=', value: 0.95 }),
      ratio('task → host [::1] (pass-through) / host [::1] plain', samples['task → host [::1] service (not redirected)'], base, 'conn/s'),
      ratio('bare cgroup → host [::1] / host [::1] plain (control)', samples['bare cgroup → host [::1], no programs'], base, 'conn/s'),
      ratio('task [::1] redirected / task [task IP] direct (the rewrite alone)', samples['task → [::1] redirected to its own server'], samples['task → its own server at [task IP] directly'], 'conn/s'),
    ],
    samples,
    extra: { connectsPerSample: COUNT, taskIp6: ip6 },
  });
}

// runBench exits when main is done: the server children would otherwise keep the process alive.
runBench(main);
