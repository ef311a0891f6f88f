/*
 * Hook latency: wall time of the real hook executable (dist/taskwire-hook.js, empty environment,
 * OCI state on stdin, as a runtime runs it) for createRuntime and poststop of a container with
 * io.taskwire.ip-per-task=auto, against `node -e 0` with the same Node binary: the floor any
 * Node hook pays. Each round uses a fresh cgroup with a process in it; rounds interleave the
 * hook and the baseline. A few extra rounds with logLevel debug collect the hook's own phase
 * timings (lib/hook.ts logs them) to show where the time goes.
 */
import { HOOK_BIN } from '../test/helpers/hook';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { sharedObjectsDir } from '../lib/bpf/shared';
import { join } from 'node:path';
import { tempCgroup, uniq, waitInCgroup, removeCgroup } from '../test/helpers/kernel';
import { destroyContainer } from '../lib/pipeline';
import { silentLog } from '../lib/log';
import { listRecords } from '../lib/state/record';
import { claimAddressesFor, releaseAddresses } from '../lib/state/ipam';
import { parseCidr } from '../lib/net/addr';
import { benchHost, interleave, NODE, onCleanup, ratio, ROOT, rounds, runBench, stats, timeCommand, writeReport } from './lib';

const ANNOTATION = { 'io.taskwire.ip-per-task': 'auto' };
const BUSY_ADDRESSES = 1000;

interface Box {
  id: string;
  cgroup: string;
  pid: number;
}

async function box(): Promise<Box> {
  const cgroup = tempCgroup(uniq('tw-bench'));
  const p = spawn('sh', ['-c', `echo $$ > ${cgroup}/cgroup.procs && exec sleep 600`], { stdio: 'ignore' });
  p.unref(); // killed with its cgroup; must not keep the bench alive
  await waitInCgroup(cgroup, p.pid!);
  return { id: uniq('tw.bench'), cgroup, pid: p.pid! };
}

function state(b: Box, annotations: Record<string, string>): string {
  return JSON.stringify({ ociVersion: '1.0.2', id: b.id, status: 'creating', pid: b.pid, bundle: '/tmp', annotations });
}

/** The state runc hands poststop: the container deleted, no pid. */
function stoppedState(id: string): string {
  return JSON.stringify({ ociVersion: '1.0.2', id, status: 'stopped', bundle: '/tmp', annotations: ANNOTATION });
}

/**
 * poststop as runc runs it (../shared/docs/HOOK-CONTRACT.md): after the container is deleted, so
 * its cgroup is already gone (its links auto-detached), and with no pid in the state.
 */
function deleteThenPoststop(b: Box, config: string): number {
  removeCgroup(b.cgroup);
  return runHook('poststop', stoppedState(b.id), config);
}

function runHook(stage: string, input: string, config: string): number {
  const r = timeCommand(NODE, [HOOK_BIN, stage, '--config', config], { input, env: {}, cwd: '/' });
  if (r.status !== 0 || r.stderr) throw new Error(`hook ${stage} failed (${r.status}): ${r.stderr}`);
  return r.ms;
}

async function main(): Promise<void> {
  execFileSync('test', ['-f', HOOK_BIN]);
  const host = benchHost();
  // A busy host: its allocation store holds 1,000 addresses (what as many containers leave).
  // A hook's claim and release must cost the same there (lib/state/ipam.ts).
  const busy = benchHost();
  const fillers = claimAddressesFor(busy.layout, Array.from({ length: BUSY_ADDRESSES }, () => ({ prefix: parseCidr(busy.pool6, 'pool') })), 'bench-filler', 'nowhere');
  onCleanup(() => releaseAddresses(busy.layout, fillers.map((address) => ({ address, owner: 'bench-filler' }))));
  // A round that failed half way leaves a record (and addresses on the device): undo it.
  onCleanup(() => {
    for (const { layout } of [host, busy]) for (const r of listRecords(layout)) destroyContainer(layout, r.id, silentLog());
  });
  const debugConfig = join(host.dir, 'config-debug.json');
  writeFileSync(debugConfig, JSON.stringify({ ...host.config, logLevel: 'debug', logFile: join(host.dir, 'debug.log') }));
  const n = rounds(30);

  // The stack's floor (bench/hook-floor.js): Node + koffi/libbpf + pino through the same launcher.
  // Built inside the checkout, where its bundle finds koffi's package as the hook's does.
  const floorDir = join(ROOT, '.tools', 'bench', 'hook-floor');
  rmSync(floorDir, { recursive: true, force: true });
  mkdirSync(floorDir, { recursive: true });
  // koffi beside the bundle's directory, where scripts/koffi-direct.js looks first for the hook
  // (dist/../node_modules): without it the floor would pay for a node_modules walk the hook skips.
  const beside = join(floorDir, '..', 'node_modules');
  if (!existsSync(beside)) symlinkSync(join(ROOT, 'node_modules'), beside);
  const { buildHook } = require(join(ROOT, 'scripts', 'bundle.js')) as { buildHook: (entry: string, outDir: string) => Promise<void> };
  await buildHook(join(ROOT, 'bench', 'hook-floor.js'), floorDir);
  const floorLog = join(host.dir, 'floor.log');

  // Boxes are made before the rounds (cgroup + process, not timed) so that every variant of a
  // round runs back to back.
  const boxes: Box[] = [];
  for (let i = 0; i < 4 * (n + 2); i++) boxes.push(await box());
  const pending = [...boxes];
  const pair: Record<string, number[]> = { createRuntime: [], poststop: [], 'createRuntime alone': [], 'poststop alone': [], 'createRuntime busy': [], 'poststop busy': [] };

  // A host that runs taskwire runs containers: one stays up through the rounds. Its programs
  // keep the kernel's cgroup-BPF static keys on, as every other container's do on such a host;
  // the first sock_addr program attached on a host where none is pays for patching them in (and
  // the last detach for patching them out), a kernel cost measured by the "alone" variant.
  const resident = await box();
  const startResident = () => runHook('createRuntime', state(resident, ANNOTATION), host.configPath);
  // Not poststop, which leaves a container that still has processes alone; not timed anyway.
  const stopResident = () => destroyContainer(host.layout, resident.id, silentLog());
  startResident();
  const createThenPoststop = (c: string, p: string, config = host.configPath) => (_c: unknown, round: number) => {
    const b = pending.shift()!;
    const created = runHook('createRuntime', state(b, ANNOTATION), config);
    const stopped = deleteThenPoststop(b, config);
    if (round >= 0) {
      pair[c].push(created);
      pair[p].push(stopped);
    }
    return created + stopped;
  };

  const samples = interleave(n, [
    { name: 'node -e 0', run: () => timeCommand(NODE, ['-e', '0'], { input: '{}', env: {}, cwd: '/' }).ms },
    {
      name: 'stack floor',
      run: () => {
        const r = timeCommand(NODE, [join(floorDir, 'taskwire-hook.js'), 'createRuntime', floorLog], { input: state(boxes[0], ANNOTATION), env: {}, cwd: '/' });
        if (r.status !== 0) throw new Error(`stack floor failed: ${r.stderr}`);
        return r.ms;
      },
    },
    { name: 'hook createRuntime+poststop', run: createThenPoststop('createRuntime', 'poststop') },
    { name: 'hook createRuntime+poststop, busy host', run: createThenPoststop('createRuntime busy', 'poststop busy', busy.configPath) },
    {
      name: 'hook createRuntime+poststop, the only container on the host',
      setup: () => stopResident(),
      run: createThenPoststop('createRuntime alone', 'poststop alone'),
      teardown: () => startResident(),
    },
    {
      // The first container on a host (or the first after gc or an upgrade) loads and verifies
      // the object that every later container only links (lib/bpf/shared.ts).
      name: 'hook createRuntime, first on the host',
      setup: () => rmSync(sharedObjectsDir(host.layout), { recursive: true, force: true }),
      run: () => {
        const b = pending.shift()!;
        const input = state(b, ANNOTATION);
        const c = runHook('createRuntime', input, host.configPath);
        deleteThenPoststop(b, host.configPath);
        return c;
      },
    },
    {
      name: 'hook createRuntime, no annotations',
      run: () => runHook('createRuntime', state({ id: uniq('tw.bench.none'), cgroup: '', pid: 1 }, {}), host.configPath),
    },
  ]);
  samples['hook createRuntime'] = pair.createRuntime;
  samples['hook poststop'] = pair.poststop;
  samples['hook createRuntime, the only container'] = pair['createRuntime alone'];
  samples['hook poststop, the only container'] = pair['poststop alone'];
  samples['hook createRuntime, busy host'] = pair['createRuntime busy'];
  samples['hook poststop, busy host'] = pair['poststop busy'];
  const base = samples['node -e 0'];

  // Phase breakdown: the hook logs {phases} at debug level; a separate config so the timed
  // rounds above pay nothing for debug logging.
  const phaseRounds = Math.min(10, n);
  for (let i = 0; i < phaseRounds; i++) {
    const b = await box();
    const input = state(b, ANNOTATION);
    runHook('createRuntime', input, debugConfig);
    deleteThenPoststop(b, debugConfig);
  }
  const phases: Record<string, Record<string, number[]>> = {};
  for (const line of readFileSync(join(host.dir, 'debug.log'), 'utf8').split('\n')) {
    if (!line.includes('"phases"')) continue;
    const e = JSON.parse(line);
    const by = (phases[e.stage] ??= {});
    for (const [k, v] of Object.entries(e.phases as Record<string, number>)) (by[k] ??= []).push(v);
  }
  const phaseRows = [['stage', 'phase', 'median ms', 'IQR ms']];
  for (const [stage, by] of Object.entries(phases))
    for (const [k, v] of Object.entries(by)) {
      const s = stats(v);
      phaseRows.push([stage, k, s.median.toFixed(1), `${s.q1.toFixed(1)}-${s.q3.toFixed(1)}`]);
    }

  writeReport({
    name: 'hook-latency',
    title: 'Hook latency',
    method:
      `Wall time of \`node dist/taskwire-hook.js <stage>\` (empty environment, OCI state on stdin) for a container with ` +
      `\`io.taskwire.ip-per-task=auto\` in a fresh cgroup with a process (poststop after the cgroup is removed and without a pid, as runc runs it), against \`node -e 0\` (same Node binary), ` +
      `${n} interleaved rounds, on a host where another container with ip-per-task runs throughout (the "only container" lines: none does; the "allocated" lines: a second host whose allocation store already holds ${BUSY_ADDRESSES.toLocaleString('en')} addresses). The object ip-per-task links is loaded once per host, so the createRuntime figure is a host that already runs a container; the first container's figure is measured separately (its loaded object removed before each of those runs). Private bpffs; run dir on ${host.runTmpfs ? 'a tmpfs (as /run is)' : 'disk'}; log level info. ` +
      `Ratios are per round, summarised by median, its 95% confidence interval and IQR; a goal whose bound lies inside the interval is "on the line". The stack floor is bench/hook-floor.js built and launched like the hook: reading the state, koffi and one bpf(2) call through libc, one pino line, no taskwire code; the hook's figure above it is taskwire's own work.`,
    ratios: [
      ratio('hook createRuntime / node -e 0', samples['hook createRuntime'], base, 'ms', { op: '<=', value: 1.3 }),
      ratio('hook poststop / node -e 0', samples['hook poststop'], base, 'ms', { op: '<=', value: 1.3 }),
      ratio('hook createRuntime, the only container on the host / node -e 0', samples['hook createRuntime, the only container'], base, 'ms'),
      ratio('hook poststop, the only container on the host / node -e 0', samples['hook poststop, the only container'], base, 'ms'),
      ratio(`hook createRuntime, ${BUSY_ADDRESSES.toLocaleString('en')} addresses allocated on the host / node -e 0`, samples['hook createRuntime, busy host'], base, 'ms'),
      ratio(`hook poststop, ${BUSY_ADDRESSES.toLocaleString('en')} addresses allocated on the host / node -e 0`, samples['hook poststop, busy host'], base, 'ms'),
      ratio('stack floor: read the state, koffi + one bpf(2) call, one pino line (bench/hook-floor.js) / node -e 0', samples['stack floor'], base, 'ms'),
      ratio('hook createRuntime that loads and verifies the object (first container, or first after gc or an upgrade) / node -e 0', samples['hook createRuntime, first on the host'], base, 'ms'),
      ratio('hook createRuntime without annotations / node -e 0', samples['hook createRuntime, no annotations'], base, 'ms'),
    ],
    tables: phaseRows.length > 1 ? [{ title: `Where the hook's time goes (median of ${phaseRounds} extra rounds at log level debug; "node+bundle" is process start to the first line of the hook)`, rows: phaseRows }] : [],
    samples,
    extra: { runDirTmpfs: host.runTmpfs, phases },
  });
}

runBench(main);
