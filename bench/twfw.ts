/*
 * twfw benchmark: 1-byte TCP request/response rate of a client in a container cgroup against a
 * server on the host, side by side in one run, interleaved rounds:
 *   none      the client's cgroup has no firewall
 *   fw10      twfw with 10 prefix rules (9 drop prefixes that do not match + the pass rule that
 *             does), default drop both ways: every packet goes through the classification
 *   fw10k     the same with 10,000 prefix rules
 *   iptables  no twfw; the same 10,000 rules as an iptables chain (Debian's iptables, nf_tables
 *             backend) jumped to from OUTPUT for this cgroup only (-m cgroup --path)
 * Everything runs in a private network namespace of the bench's own (re-exec under unshare -n),
 * so the iptables rules never touch the host's firewall. The load generator is C
 * (bench/netns-rr.c) so the figures measure the datapath, not a runtime. Also measured: the time
 * to compile and swap in a 10,000-prefix policy on a running container (`fw apply`).
 *   scripts/bench.sh twfw          (TW_BENCH_ROUNDS=N, TW_BENCH_SECONDS=S for quick runs)
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { benchHost, interleave, onCleanup, ratio, ROOT, rounds, runBench, stats, writeReport } from './lib';
import { tempDir } from '../test/helpers/kernel';
import { cgroupWithProcess, startTask } from '../test/helpers/task';
import { loadHostConfig } from '../lib/host/config';
import { fwApply } from '../plugins/twfw/ops';

const SECS = Number(process.env.TW_BENCH_SECONDS ?? 2);
const PORT = 5301;
const SRC_ROOT = process.env.TW_ROOT ?? ROOT;

if (process.env.TW_BENCH_INNER !== '1') {
  const r = spawnSync('unshare', ['-n', process.execPath, ...process.execArgv, process.argv[1], ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, TW_BENCH_INNER: '1' } });
  process.exit(r.status ?? 1);
}

const prefix = (i: number) => `10.${(i >> 8) & 255}.${i & 255}.0/24`;

function policy(n: number): string {
  const rules: object[] = Array.from({ length: n - 1 }, (_, i) => ({ direction: 'egress', action: 'drop', remote: [prefix(i)] }));
  rules.push({ name: 'server', direction: 'egress', action: 'pass', proto: 'tcp', ports: [PORT], remote: ['127.0.0.1/32'] });
  return JSON.stringify({ defaults: { ingress: 'drop', egress: 'drop' }, rules });
}

function iptablesChain(cgroupPath: string, n: number): void {
  const lines = ['*filter', ':TWFW - [0:0]'];
  for (let i = 0; i < n - 1; i++) lines.push(`-A TWFW -d ${prefix(i)} -j DROP`);
  lines.push(`-A TWFW -d 127.0.0.1/32 -p tcp --dport ${PORT} -j ACCEPT`, '-A TWFW -j DROP', `-A OUTPUT -m cgroup --path ${cgroupPath} -j TWFW`, 'COMMIT', '');
  execFileSync('iptables-restore', ['--noflush'], { input: lines.join('\n') });
}

async function main(): Promise<void> {
  execFileSync('ip', ['link', 'set', 'lo', 'up']);
  const dir = tempDir('tw-bench-twfw-');
  const tool = join(dir, 'rr');
  execFileSync('gcc', ['-O2', '-o', tool, join(SRC_ROOT, 'bench', 'netns-rr.c')]);
  const server = spawn(tool, ['server', String(PORT)], { stdio: ['ignore', 'pipe', 'inherit'] });
  onCleanup(() => server.kill('SIGKILL'));
  await new Promise<void>((res) => createInterface({ input: server.stdout! }).once('line', () => res()));

  const host = benchHost((c) => {
    c.plugins.twfw.maxRules = 20000;
  });
  const none = await cgroupWithProcess();
  const fw10 = await startTask(host, { 'io.taskwire.twfw': policy(10) }, 'bench.fw10');
  const t0 = process.hrtime.bigint();
  const fw10k = await startTask(host, { 'io.taskwire.twfw': policy(10000) }, 'bench.fw10k');
  const createMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const ipt = await cgroupWithProcess();
  iptablesChain(ipt.cgroup.split('/').pop()!, 10000);

  // Swapping a 10,000-prefix policy into a running container: compile + load + fill + link update.
  const cfg = loadHostConfig(host.configPath);
  const layout = host.layout;
  const applyMs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = process.hrtime.bigint();
    fwApply(cfg, layout, fw10k.id, policy(10000));
    applyMs.push(Number(process.hrtime.bigint() - t) / 1e6);
  }

  const rr = (cgroup: string) => {
    const out = execFileSync('sh', ['-c', `echo $$ > "$0/cgroup.procs" && exec "$1" rr 127.0.0.1 ${PORT} ${SECS}`, cgroup, tool], { encoding: 'utf8' });
    return Number(out.trim());
  };
  const cg = { none: none.cgroup, fw10: fw10.cgroup, fw10k: fw10k.cgroup, iptables: ipt.cgroup };
  const n = rounds(15);
  const samples = interleave(
    n,
    Object.entries(cg).map(([name, c]) => ({ name, run: () => rr(c) })),
    1,
  );
  for (const [k, v] of Object.entries(samples)) if (v.some((x) => !(x > 0))) throw new Error(`${k}: a round moved no traffic (${v.join(', ')})`);

  writeReport({
    name: 'twfw',
    title: 'twfw: TCP request/response through the firewall',
    method:
      `1-byte TCP request/response (bench/netns-rr.c, TCP_NODELAY) from a client in a container cgroup to a server on the host, over loopback inside a private netns, ${SECS} s per run, ${n} interleaved rounds. ` +
      'Policies: N-1 egress drop prefixes that do not match plus one pass rule that does, defaults drop (replies pass as an established flow). ' +
      'iptables: the same 10,000 rules as a chain jumped to from OUTPUT with -m cgroup for the client cgroup only. Ratios are per round.',
    ratios: [
      ratio('10 prefix rules / no firewall', samples.fw10, samples.none, 'tx/s', { op: '>=', value: 0.97 }),
      ratio('10,000 prefix rules / no firewall', samples.fw10k, samples.none, 'tx/s', { op: '>=', value: 0.95 }),
      ratio('iptables 10,000 rules / no firewall', samples.iptables, samples.none, 'tx/s'),
      ratio('twfw / iptables, 10,000 rules', samples.fw10k, samples.iptables, 'tx/s', { op: '>=', value: 1 }),
    ],
    tables: [
      {
        title: 'Loading 10,000 prefixes (absolute, this machine)',
        rows: [
          ['what', 'median ms', 'min-max ms'],
          ['createRuntime hook with the policy (in-process, compile + load + attach)', createMs.toFixed(0), '-'],
          ['fw apply to a running container (compile + load + fill + link update)', stats(applyMs).median.toFixed(0), `${stats(applyMs).min.toFixed(0)}-${stats(applyMs).max.toFixed(0)}`],
        ],
      },
    ],
    samples: { ...samples, applyMs },
    extra: { createMs, applyMs, secondsPerRun: SECS },
  });
  writeFileSync(join(dir, 'done'), '');
}

runBench(main);
