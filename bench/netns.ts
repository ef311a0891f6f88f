/*
 * netns datapath benchmark: TCP request/response rate and bulk throughput between a client and
 * a container, side by side in one run, interleaved rounds, ratios per round (bench/lib.ts):
 *   plain  veth routed by the host stack (the pair the hook built, its programs removed)
 *   bpf    veth with our programs: bpf_redirect_peer from the uplink into the container,
 *          FIB lookup + bpf_redirect_neigh out of it (what io.taskwire.netns gives without netkit)
 * Both containers are wired by the real createRuntime hook, get addresses from the same /24 and
 * sit the same number of hops from the client:
 *   client netns ─veth(up0|twbup)─ "host" netns ─veth(tw…|eth0)─ container netns
 * That is the shape redirect_peer is for (a packet arriving on a host device's ingress for a
 * container); a socket in the host netns itself has no ingress to redirect from (hostRr, ≈1.0).
 * Measures: rr (unpinned: the scheduler places client and server, and a run is fast when they
 * share a CPU and slow when not, so its samples are bimodal), rr1cpu (client and server pinned
 * to one CPU: every transaction is two context switches plus the datapath, softirqs included,
 * the measure where the datapath weighs most), rr2cpu (pinned to different CPUs: each transaction
 * pays two cross-CPU wake-ups, a VM exit each here), stream, hostRr. After the rounds, a check with kernel.bpf_stats_enabled (only then: run counting would
 * slow the bpf variant down) proves which path each variant took: program runs, the host
 * stack's forwarded datagrams, the host end's transmitted packets, per transaction.
 * The kernel's own figure for redirect_peer (TCP_RR 32.7k → 90.0k, commit 9aa1206e8f48) is pod →
 * remote pod through a NIC, bpf_redirect() vs bpf_redirect_peer(); plugins/netns/README.md says
 * why the gain on an all-veth host is far smaller.
 * Everything runs inside a private netns of the bench's own (re-exec under `unshare -n`), so
 * forwarding sysctls and devices never touch the host. Load and sockets are C (netns-rr.c).
 *   scripts/bench.sh netns        (TW_BENCH_ROUNDS=N, TW_BENCH_SECONDS=S for quick runs)
 */
import { hookBinary, StateInput } from '../test/helpers/hook';
import { readRecord } from '../lib/state/record';
import { destroyContainer } from '../lib/pipeline';
import { silentLog } from '../lib/log';
import { epsMapPath, uplinkPinPath } from '../plugins/netns/shared';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { cleanupOnExit, interleave, onCleanup, ratio, ROOT, rounds, runCleanups, Variant, writeReport } from './lib';
import { tempDir } from '../test/helpers/kernel';
import { BpfMap } from '../lib/bpf/map';
import { containerPinDir } from '../lib/state/paths';
import { epKey } from '../plugins/netns/codec';

const SECS = Number(process.env.TW_BENCH_SECONDS ?? 1.5);
const PORT = 5001;
const SRC_ROOT = process.env.TW_ROOT ?? ROOT;

if (process.env.TW_BENCH_INNER !== '1') {
  const r = spawnSync('unshare', ['-n', process.execPath, ...process.execArgv, process.argv[1], ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, TW_BENCH_INNER: '1' } });
  process.exit(r.status ?? 1);
}

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });
const ip = (...args: string[]) => sh('ip', args);
const inNs = (pid: number, cmd: string[]) => sh('nsenter', [`--net=/proc/${pid}/ns/net`, ...cmd]);
const sleep = (s: number) => execFileSync('sleep', [String(s)]);
const PIN_CPU = String(cpus().length - 1);
const ALL_CPUS = `0-${cpus().length - 1}`;

/** A process in a netns of its own (optionally in a cgroup), alive until the bench ends. */
function netnsProc(cgroup?: string): number {
  const p = cgroup
    ? spawn('sh', ['-c', `echo $$ > ${cgroup}/cgroup.procs && exec unshare -n sleep 3600`], { stdio: 'ignore' })
    : spawn('unshare', ['-n', 'sleep', '3600'], { stdio: 'ignore' });
  onCleanup(() => p.kill('SIGKILL'));
  const self = readlinkSync('/proc/self/ns/net');
  for (let i = 0; i < 200; i++) {
    try {
      if (readlinkSync(`/proc/${p.pid}/ns/net`) !== self) return p.pid!;
    } catch {}
    sleep(0.02);
  }
  throw new Error('unshare -n did not happen');
}

/** The host's cgroup2 mount (hybrid hosts have it at /sys/fs/cgroup/unified). */
function cgroup2(): string {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')).find((f) => f[f.indexOf('-') + 1] === 'cgroup2')![4];
}

/** Ip ForwDatagrams of this (the bench's "host") netns: what the host stack forwarded. */
function forwarded(): number {
  const [head, vals] = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Ip:'));
  return Number(vals.split(/\s+/)[head.split(/\s+/).indexOf('ForwDatagrams')]);
}
const txPackets = (dev: string) => JSON.parse(ip('-j', '-s', 'link', 'show', 'dev', dev))[0].stats64.tx.packets as number;
const linkProgId = (pin: string) => JSON.parse(sh('bpftool', ['-j', 'link', 'show', 'pinned', pin])).prog_id as number;
const progRuns = (id: number) => (JSON.parse(sh('bpftool', ['-j', 'prog', 'show', 'id', String(id)])).run_cnt as number | undefined) ?? 0;

function main(): void {
  cleanupOnExit();
  const dir = tempDir('tw-bench-netns-');
  const tool = join(dir, 'netns-rr');
  sh('gcc', ['-O2', '-o', tool, join(SRC_ROOT, 'bench', 'netns-rr.c')]);
  const bpffs = join(dir, 'bpf');
  mkdirSync(bpffs);
  sh('mount', ['-t', 'bpf', 'bpf', bpffs]);
  onCleanup(() => sh('umount', ['-l', bpffs]));
  const cgroup = join(cgroup2(), `tw-bench-netns-${process.pid}`);
  mkdirSync(cgroup);
  onCleanup(() => {
    writeFileSync(join(cgroup, 'cgroup.kill'), '1');
    for (let i = 0; i < 50; i++) {
      try {
        return rmdirSync(cgroup);
      } catch {
        sleep(0.05);
      }
    }
  });

  // The bench's own "host": forwarding on (a private netns), an uplink to a client netns.
  ip('link', 'set', 'lo', 'up');
  writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
  const client = netnsProc();
  ip('link', 'add', 'twbup', 'type', 'veth', 'peer', 'name', 'up0', 'netns', String(client));
  ip('addr', 'add', '10.201.0.1/24', 'dev', 'twbup');
  ip('link', 'set', 'twbup', 'up');
  inNs(client, ['ip', 'link', 'set', 'lo', 'up']);
  inNs(client, ['ip', 'addr', 'add', '10.201.0.2/24', 'dev', 'up0']);
  inNs(client, ['ip', 'link', 'set', 'up0', 'up']);
  inNs(client, ['ip', 'route', 'add', 'default', 'via', '10.201.0.1']);

  const layout = { bpffs, runDir: join(dir, 'run') };
  const cfg = JSON.parse(readFileSync(join(SRC_ROOT, 'oci-config', 'config.example.json'), 'utf8'));
  Object.assign(cfg, { ...layout, logFile: join(dir, 'log'), logLevel: 'warn', policyDir: join(dir, 'pol') });
  cfg.pools = { default: { ip4: '10.202.0.0/24' } };
  cfg.plugins.netns.uplinks = ['twbup'];
  cfg.plugins.netns.allowedPrefixes = ['10.202.0.0/24'];
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  const hookRun = (stage: string, state: StateInput) => {
    const r = hookBinary(stage, state, join(dir, 'config.json'));
    if (r.code !== 0) throw new Error(`${stage}: ${r.stderr}`);
  };
  const wire = (name: string) => {
    const pid = netnsProc(cgroup);
    const id = `bench-${name}-${process.pid}`;
    hookRun('createRuntime', { id, pid, annotations: { 'io.taskwire.netns': '{"device":"veth"}' } });
    onCleanup(() => destroyContainer(layout, id, silentLog())); // not poststop: the container's processes are still up at cleanup
    const s = readRecord(layout, id)!.plugins[0].summary;
    // nsenter execs the server (no fork), so this pid is the server's: its CPU affinity is ours to set.
    const srv = spawn('nsenter', [`--net=/proc/${pid}/ns/net`, tool, 'server', String(PORT)], { stdio: 'ignore' });
    onCleanup(() => srv.kill('SIGKILL'));
    return { id, ip4: s.ip4 as string, host: s.hostDevice as string, attach: s.attach as string, server: srv.pid!, pinDir: join(containerPinDir(layout, id), 'netns') };
  };
  const bpf = wire('bpf');
  const plain = wire('plain');
  // Plain: drop the pair's program (unlinking the pin detaches the tcx link) and its endpoint
  // entry (so the uplink program finds nothing for it): what is left is veth routed by the stack.
  for (const f of readdirSync(plain.pinDir)) unlinkSync(join(plain.pinDir, f));
  const eps = BpfMap.openPinned(epsMapPath(layout));
  eps.delete(epKey, { addr: plain.ip4 });
  eps.close();
  // The bound on any redirect: a server netns on a veth pair straight from the client netns, no
  // host netns between them at all. bpf_redirect_peer can at best remove the host hop, so its gain
  // over plain cannot exceed direct / plain.
  const directNs = netnsProc();
  ip('link', 'add', 'twbd0', 'netns', String(client), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', String(directNs));
  inNs(client, ['ip', 'addr', 'add', '10.203.0.1/30', 'dev', 'twbd0']);
  inNs(client, ['ip', 'link', 'set', 'twbd0', 'up']);
  inNs(directNs, ['ip', 'link', 'set', 'lo', 'up']);
  inNs(directNs, ['ip', 'addr', 'add', '10.203.0.2/30', 'dev', 'eth0']);
  inNs(directNs, ['ip', 'link', 'set', 'eth0', 'up']);
  const directSrv = spawn('nsenter', [`--net=/proc/${directNs}/ns/net`, tool, 'server', String(PORT)], { stdio: 'ignore' });
  onCleanup(() => directSrv.kill('SIGKILL'));
  const direct = { ...plain, id: 'direct', ip4: '10.203.0.2', server: directSrv.pid! };
  sleep(0.3); // the servers listen

  type Ctr = typeof bpf;
  const tool1 = (mode: string, target: string, pin: boolean) => Number(inNs(client, [...(pin ? ['taskset', '-c', PIN_CPU] : []), tool, mode, target, String(PORT), String(SECS)]).trim());
  const measures: Record<string, { run: (c: Ctr) => number; setup?: (c: Ctr) => void; teardown?: (c: Ctr) => void }> = {
    rr: { run: (c) => tool1('rr', c.ip4, false) },
    rr1cpu: {
      setup: (c) => sh('taskset', ['-pc', PIN_CPU, String(c.server)]),
      run: (c) => tool1('rr', c.ip4, true),
      teardown: (c) => sh('taskset', ['-pc', ALL_CPUS, String(c.server)]),
    },
    rr2cpu: {
      setup: (c) => sh('taskset', ['-pc', '0', String(c.server)]),
      run: (c) => tool1('rr', c.ip4, true),
      teardown: (c) => sh('taskset', ['-pc', ALL_CPUS, String(c.server)]),
    },
    stream: { run: (c) => tool1('stream', c.ip4, false) },
    hostRr: { run: (c) => Number(sh(tool, ['rr', c.ip4, String(PORT), String(SECS)]).trim()) },
  };
  const withDirect = ['rr', 'rr1cpu'];
  const variants: Variant<Ctr>[] = Object.entries(measures).flatMap(([m, v]) =>
    ([['plain', plain], ['bpf', bpf], ...(withDirect.includes(m) ? [['direct', direct] as const] : [])] as const).map(([name, c]) => ({
      name: `${m}:${name}`,
      setup: () => (v.setup?.(c), c),
      run: () => v.run(c),
      teardown: () => v.teardown?.(c),
    })),
  );
  const n = rounds(15);
  const samples = interleave(n, variants, 1);

  // Which path each variant took, with run counting on for this check only.
  const statsWas = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  const restore = () => writeFileSync('/proc/sys/kernel/bpf_stats_enabled', statsWas);
  onCleanup(restore);
  writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '1');
  const progs = { toCtr: linkProgId(uplinkPinPath(layout, 'twbup')), fromCtr: linkProgId(join(bpf.pinDir, 'link_tw_ns_from_ctr')) };
  const path: Record<string, Record<string, number>> = {};
  for (const [name, c] of [['plain', plain], ['bpf', bpf]] as const) {
    const before = { fw: forwarded(), tx: txPackets(c.host), to: progRuns(progs.toCtr), from: progRuns(progs.fromCtr) };
    const tx = tool1('rr', c.ip4, false) * SECS;
    const per = (x: number) => Number((x / tx).toFixed(3));
    path[name] = {
      transactions: Math.round(tx),
      upToCtrRunsPerTx: per(progRuns(progs.toCtr) - before.to),
      hostEndFromCtrRunsPerTx: per(progRuns(progs.fromCtr) - before.from),
      stackForwardedPerTx: per(forwarded() - before.fw),
      hostEndTxPacketsPerTx: per(txPackets(c.host) - before.tx),
    };
  }
  restore();

  const unit = { rr: 'tx/s', rr1cpu: 'tx/s', rr2cpu: 'tx/s', stream: 'MB/s', hostRr: 'tx/s' } as Record<string, string>;
  const scale = (m: string, xs: number[]) => (m === 'stream' ? xs.map((x) => x / 1e6) : xs);
  const label: Record<string, string> = {
    rr: 'TCP_RR client netns → container, bpf / plain',
    rr1cpu: 'TCP_RR, client and server on one CPU, bpf / plain',
    rr2cpu: 'TCP_RR, client and server on different CPUs, bpf / plain',
    stream: 'TCP stream client netns → container, bpf / plain',
    hostRr: 'TCP_RR host netns socket → container, bpf / plain (no ingress to redirect from)',
  };
  writeReport({
    name: 'netns',
    title: 'netns: veth with BPF redirects vs plain veth routed by the stack',
    method:
      `Topology: client netns —veth— host netns —veth— container netns, both containers wired by the real createRuntime hook (device veth, tcx on this kernel), addresses from one /24, the same hops. ` +
      `bpf: tw_ns_to_ctr on the uplink's tcx ingress (bpf_redirect_peer into the container) and tw_ns_from_ctr on the host end's (FIB lookup + bpf_redirect_neigh out). plain: the same pair with its program and endpoint entry removed, routed by the host stack. ` +
      `1-byte TCP request/response and 64 KiB stream (bench/netns-rr.c, TCP_NODELAY), ${SECS} s per sample, ${n} interleaved rounds, ratios per round. rr is unpinned; rr1cpu pins client and server to CPU ${PIN_CPU}; rr2cpu the client to CPU ${PIN_CPU} and the server to CPU 0. ` +
      `bound: a third server netns on a veth pair straight from the client netns (no host netns, no routing hop, no program): no redirect of the host hop can beat it, so bpf / plain cannot exceed bound / plain. ` +
      `The path check below ran after the rounds with kernel.bpf_stats_enabled=1 (restored to ${statsWas}).`,
    ratios: [
      ...Object.keys(measures).map((m) => ratio(label[m], scale(m, samples[`${m}:bpf`]), scale(m, samples[`${m}:plain`]), unit[m], m.startsWith('rr') ? { op: '>=', value: 1.5 } : undefined)),
      ...withDirect.map((m) => ratio(`bound: ${label[m].replace('bpf / plain', 'no host hop at all (client netns straight on the server\'s veth) / plain')}`, samples[`${m}:direct`], samples[`${m}:plain`], unit[m])),
    ],
    tables: [
      {
        title: 'Path taken (one extra unpinned rr sample per variant; per transaction)',
        rows: [
          ['variant', 'transactions', 'tw_ns_to_ctr runs (uplink)', 'tw_ns_from_ctr runs (host end)', 'forwarded by the host stack', 'host end tx packets'],
          ...Object.entries(path).map(([k, v]) => [k, String(v.transactions), String(v.upToCtrRunsPerTx), String(v.hostEndFromCtrRunsPerTx), String(v.stackForwardedPerTx), String(v.hostEndTxPacketsPerTx)]),
        ],
      },
    ],
    samples,
    extra: { attach: bpf.attach, secondsPerSample: SECS, pinCpu: PIN_CPU, path, pinsLeftOnPlain: readdirSync(plain.pinDir).length },
  });
}

try {
  main();
} finally {
  runCleanups();
}
