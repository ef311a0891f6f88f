/*
 * Datapath cost of ip-per-task: TCP connect+accept rate and UDP send rate from a process in a
 * cgroup where the hook attached ip-per-task (io.taskwire.ip-per-task=auto), against the same
 * from a plain cgroup, same run, interleaved rounds. Both talk to the task's own addresses (on
 * lo), so the only difference is the cgroup's programs. The load generator is bench/datapath.c,
 * compiled here with cc: see its header for why C.
 *
 * For UDP over IPv4 the run also measures the kernel's floor under ip-per-task's source rewrite
 * (bench/udp4-floor.bpf.c, two more cgroups): an empty sendmsg4 program, and a one-line one that
 * sets the source. No program that gives unconnected UDP its source address in a cgroup's
 * sendmsg4 hook can cost less than the second.
 */
import { HOOK_BIN } from '../test/helpers/hook';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { tempCgroup, uniq, waitInCgroup } from '../test/helpers/kernel';
import { destroyContainer, layoutOf } from '../lib/pipeline';
import { loadHostConfig } from '../lib/host/config';
import { silentLog } from '../lib/log';
import { readRecord } from '../lib/state/record';
import { BpfObject } from '../lib/bpf/object';
import { benchHost, ROOT, interleave, NODE, onCleanup, ratio, Ratio, rounds, runBench, writeReport } from './lib';

// About a third of a second per run on a 2-core VM: long enough to average out scheduler noise.
const COUNT = { tcp: 10000, udp: 100000 };

function compile(): string {
  const dir = join(ROOT, '.tools', 'bench');
  mkdirSync(dir, { recursive: true });
  const bin = join(dir, 'datapath');
  execFileSync('cc', ['-O2', '-Wall', '-Werror', '-o', bin, join(ROOT, 'bench', 'datapath.c')], { stdio: 'inherit' });
  return bin;
}

/** bench/udp4-floor.bpf.c, built by the Makefile's rule for bench objects, loaded here. */
function floorObject(): BpfObject {
  const out = '.tools/bench/udp4-floor.bpf.o';
  execFileSync('make', ['-s', '-C', ROOT, out], { stdio: 'inherit' });
  const obj = BpfObject.open(join(ROOT, out));
  onCleanup(() => obj.close());
  return obj;
}

/** A cgroup with one program of `obj` linked to it, for the bench's lifetime. */
function cgroupWith(obj: BpfObject, program: string): string {
  const cgroup = tempCgroup(uniq('tw-bench-floor'));
  const fd = openSync(cgroup, 'r');
  try {
    const link = obj.programs().find((p) => p.name === program)!.attachCgroup(fd);
    onCleanup(() => link.release(false));
  } finally {
    closeSync(fd);
  }
  return cgroup;
}

/** Runs the generator inside `cgroup` (the shell joins it, then execs) and returns ops/s. */
function rate(bin: string, cgroup: string, mode: 'tcp' | 'udp', family: 4 | 6, addr: string): number {
  const r = spawnSync('sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, bin, mode, String(family), addr, String(COUNT[mode])], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`datapath ${mode}${family} in ${cgroup} failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout).rate;
}

async function main(): Promise<void> {
  const bin = compile();
  const host = benchHost();
  const layout = layoutOf(loadHostConfig(host.configPath));

  // The task: a cgroup with a process, through the real hook executable.
  const withIpt = tempCgroup(uniq('tw-bench-ipt'));
  const sleeper = spawn('sh', ['-c', `echo $$ > ${withIpt}/cgroup.procs && exec sleep 3600`], { stdio: 'ignore' });
  sleeper.unref();
  onCleanup(() => sleeper.kill('SIGKILL'));
  await waitInCgroup(withIpt, sleeper.pid!);
  const id = uniq('tw.bench.dp');
  const state = JSON.stringify({ ociVersion: '1.0.2', id, status: 'creating', pid: sleeper.pid, bundle: '/tmp', annotations: { 'io.taskwire.ip-per-task': 'auto' } });
  onCleanup(() => destroyContainer(layout, id, silentLog()));
  const c = spawnSync(NODE, [HOOK_BIN, 'createRuntime', '--config', host.configPath], { input: state, env: {}, encoding: 'utf8' });
  if (c.status !== 0) throw new Error(`createRuntime failed: ${c.stderr}`);
  const summary = readRecord(layout, id)!.plugins.find((p) => p.name === 'ip-per-task')!.summary as { ip6: string; ip4: string };
  const plain = tempCgroup(uniq('tw-bench-plain'));
  const floor = floorObject();
  const emptyHook = cgroupWith(floor, 'tw_fl_noop4');
  const sourceHook = cgroupWith(floor, 'tw_fl_src4');

  const cases = [
    { key: 'tcp6', mode: 'tcp', family: 6, addr: summary.ip6, what: 'TCP connect+accept /s, IPv6' },
    { key: 'tcp4', mode: 'tcp', family: 4, addr: summary.ip4, what: 'TCP connect+accept /s, IPv4' },
    { key: 'udp6', mode: 'udp', family: 6, addr: summary.ip6, what: 'UDP sendto /s, IPv6' },
    { key: 'udp4', mode: 'udp', family: 4, addr: summary.ip4, what: 'UDP sendto /s, IPv4' },
  ] as const;
  const n = rounds(20);
  const variants = [
    ...cases.flatMap((k) => [
      { name: `${k.key} ip-per-task`, run: () => rate(bin, withIpt, k.mode, k.family, k.addr) },
      { name: `${k.key} plain`, run: () => rate(bin, plain, k.mode, k.family, k.addr) },
    ]),
    { name: 'udp4 empty sendmsg4 program', run: () => rate(bin, emptyHook, 'udp', 4, summary.ip4) },
    { name: 'udp4 one-line source rewrite', run: () => rate(bin, sourceHook, 'udp', 4, summary.ip4) },
  ];
  const samples = interleave(n, variants, 1);

  const ratios: Ratio[] = [
    ...cases.map((k) =>
      ratio(`${k.what}: ip-per-task / plain cgroup`, samples[`${k.key} ip-per-task`], samples[`${k.key} plain`], 'ops/s', { op: '>=', value: 0.97 }),
    ),
    ratio('UDP sendto /s, IPv4: an empty sendmsg4 program / plain cgroup (the hook itself: dispatch under the socket lock)', samples['udp4 empty sendmsg4 program'], samples['udp4 plain'], 'ops/s'),
    ratio('UDP sendto /s, IPv4: a one-line sendmsg4 program setting the source / plain cgroup (the floor of any such rewrite)', samples['udp4 one-line source rewrite'], samples['udp4 plain'], 'ops/s'),
    ratio('UDP sendto /s, IPv4: ip-per-task / the one-line source rewrite (what ip-per-task adds above that floor)', samples['udp4 ip-per-task'], samples['udp4 one-line source rewrite'], 'ops/s'),
  ];
  writeReport({
    name: 'datapath',
    title: 'Datapath (ip-per-task)',
    method:
      `Operations per second of a C loop (bench/datapath.c: ${COUNT.tcp} TCP socket+connect+accept+close, or ${COUNT.udp} ` +
      `unconnected 64-byte sendto) in a cgroup with ip-per-task attached by the real hook, against the same loop in a plain ` +
      `cgroup, both to the task's own addresses on lo; ${n} interleaved rounds. Ratios are per round (median, its 95% confidence interval, IQR; a goal whose bound lies inside the interval is "on the line"); ` +
      `above 1 means the ip-per-task cgroup was faster. For UDP over IPv4, two more cgroups carry bench/udp4-floor.bpf.c's ` +
      `programs: an empty sendmsg4 program, and one that only sets the source (to the destination, the address the kernel ` +
      `picks itself for a local destination, so that only the kernel's check of a given source differs): the floor under ` +
      `any program that gives unconnected UDP its source in that hook.`,
    ratios,
    samples,
    extra: { addresses: summary, counts: COUNT },
  });
}

runBench(main);
