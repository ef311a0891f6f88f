/*
 * Fixtures on the real kernel, each with its own undo: a private bpffs, a test cgroup, a host
 * config whose run dir, log and address pools are unique to this run, so that two runs (or two
 * jest workers) never collide.
 */
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { randomBytes, randomInt } from 'node:crypto';
import { cgroup2Mount, cgroupPopulated } from '../../lib/host/discovery';
import type { Layout } from '../../lib/state/paths';

export const ROOT = join(__dirname, '..', '..');
export const NODE = process.execPath;

export function uniq(prefix = 'tw-test'): string {
  return `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

const cleanups: (() => void)[] = [];
/** Registers an undo to run in reverse order by runCleanups (call it in afterAll). */
export function onCleanup(fn: () => void): void {
  cleanups.push(fn);
}
export function runCleanups(): void {
  while (cleanups.length) {
    try {
      cleanups.pop()!();
    } catch (err) {
      console.error('cleanup failed:', err);
    }
  }
}

export function tempDir(prefix = 'tw-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  onCleanup(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

export function privateBpffs(): string {
  const d = tempDir('tw-bpffs-');
  const mnt = join(d, 'bpf');
  mkdirSync(mnt);
  execFileSync('mount', ['-t', 'bpf', 'bpf', mnt]);
  onCleanup(() => execFileSync('umount', ['-l', mnt]));
  return mnt;
}

function killProcesses(dir: string): void {
  if (existsSync(join(dir, 'cgroup.kill'))) writeFileSync(join(dir, 'cgroup.kill'), '1');
  else for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
}

function killCgroup(dir: string): void {
  if (!existsSync(dir)) return;
  killProcesses(dir);
  for (let i = 0; i < 100; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      execFileSync('sleep', ['0.02']);
    }
  }
  rmdirSync(dir);
}

export function tempCgroup(name = uniq()): string {
  const dir = join(cgroup2Mount(), name);
  mkdirSync(dir);
  onCleanup(() => killCgroup(dir));
  return dir;
}

/** Removes a cgroup now (the way a runtime does when a container is deleted). */
export function removeCgroup(dir: string): void {
  killCgroup(dir);
}

/**
 * Kills the processes of a cgroup and waits until it is empty, keeping the cgroup: a container
 * that has stopped, as poststop expects it (lib/pipeline.ts DestroyOptions.unlessRunning).
 */
export async function emptyCgroup(dir: string): Promise<void> {
  killProcesses(dir);
  await eventually(() => !cgroupPopulated(dir), `${dir} empty`);
}

/**
 * Another process holding an flock on `path` (a hook in progress elsewhere), in a process group of
 * its own so the sleep it runs goes with it. Resolves once it holds the lock, to its release;
 * rejects if the holder ends first (flock could not open the file).
 */
export async function holdLock(path: string, mode: 'shared' | 'exclusive'): Promise<() => void> {
  mkdirSync(dirname(path), { recursive: true });
  const holder = spawn('flock', [mode === 'shared' ? '-s' : '-x', path, '-c', 'echo held; exec sleep 60'], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  const release = () => {
    try {
      process.kill(-holder.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  };
  onCleanup(release);
  await new Promise((resolve, reject) => {
    holder.stdout!.once('data', resolve);
    holder.once('exit', (code) => reject(new Error(`flock on ${path} ended before holding it (exit ${code})`)));
  });
  return release;
}

/** A process that sits in `cgroup` until killed; the container's "init". */
export function sleeperIn(cgroup: string): ChildProcess {
  const p = spawn('sh', ['-c', `echo $$ > ${cgroup}/cgroup.procs && exec sleep 600`], { stdio: 'ignore' });
  onCleanup(() => p.kill('SIGKILL'));
  return p;
}

export async function waitInCgroup(cgroup: string, pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (readFileSync(join(cgroup, 'cgroup.procs'), 'utf8').split('\n').includes(String(pid))) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`pid ${pid} never joined ${cgroup}`);
}

export interface TestHost {
  dir: string;
  configPath: string;
  bpffs: string;
  runDir: string;
  /** bpffs and runDir together, as the library takes them. */
  layout: Layout;
  logFile: string;
  /** Unique pool prefixes of this run, inside the example config's allowed prefixes. */
  pool6: string;
  pool4: string;
  config: Record<string, any>;
}

/** The example host config with this run's private bpffs, run dir, log and pools. */
export function testHost(patch: (cfg: Record<string, any>) => void = () => {}): TestHost {
  const dir = tempDir('tw-host-');
  const bpffs = privateBpffs();
  const cfg = JSON.parse(readFileSync(join(ROOT, 'oci-config', 'config.example.json'), 'utf8'));
  const n6 = randomInt(0x100, 0xffff).toString(16);
  // 1,000 IPv4 pools of 62 addresses: concurrent runs (jest workers, other checkouts) rarely meet.
  const n4 = `${randomInt(1, 255)}.${randomInt(0, 4) * 64}`;
  cfg.bpffs = bpffs;
  cfg.runDir = join(dir, 'run');
  cfg.logFile = join(dir, 'taskwire.log');
  cfg.logLevel = 'debug';
  // Twenty hooks at once on two loaded cores can outlast a production deadline; tests of the
  // deadline itself set their own.
  cfg.hookTimeoutMs = 30000;
  cfg.policyDir = join(dir, 'policies');
  cfg.pools = { default: { ip6: `fd00:7a5c:0:${n6}::/112`, ip4: `10.123.${n4}/26` } };
  patch(cfg);
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify(cfg, null, 1));
  return { dir, configPath, bpffs, runDir: cfg.runDir, layout: { bpffs, runDir: cfg.runDir }, logFile: cfg.logFile, pool6: cfg.pools.default.ip6, pool4: cfg.pools.default.ip4, config: cfg };
}

/** Addresses on a device, as `ip -j addr` reports them. */
export function deviceAddresses(dev = 'lo'): string[] {
  const out = JSON.parse(execFileSync('ip', ['-j', 'addr', 'show', 'dev', dev], { encoding: 'utf8' }));
  return out.flatMap((l: any) => l.addr_info.map((a: any) => a.local));
}

/** Polls until fn() is true: the kernel frees programs and links asynchronously. */
export async function eventually(fn: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fn()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for: ${what}`);
}

/** Program names attached to a cgroup (bpftool, the reference view). */
export function cgroupPrograms(cgroup: string): string[] {
  try {
    const out = JSON.parse(execFileSync('bpftool', ['-j', 'cgroup', 'show', cgroup], { encoding: 'utf8' }) || '[]');
    return out.map((p: any) => p.name).sort();
  } catch {
    return [];
  }
}
