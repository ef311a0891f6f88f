/*
 * Where things are on this host, found rather than assumed: the cgroup2 mount (hybrid hosts
 * mount it at /sys/fs/cgroup/unified), a container's cgroup from /proc/PID/cgroup, bpffs, and
 * the host network namespace's cookie.
 */
import { existsSync, lstatSync, mkdirSync, readFileSync, statfsSync, statSync } from 'node:fs';
import { joinPath } from '../path';
import { SyscallError, TaskwireError } from '../errors';

interface MountEntry {
  mountPoint: string;
  fsType: string;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function mounts(): MountEntry[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const f = line.split(' ');
      const sep = f.indexOf('-');
      return { mountPoint: unescapeMount(f[4]), fsType: f[sep + 1] };
    });
}

let cgroup2Cache: string | undefined;
export function cgroup2Mount(): string {
  if (cgroup2Cache) return cgroup2Cache;
  // The line is found before anything is split: a hook reads this table once, and parsing all
  // of it (hundreds of lines on a container host) was a measurable part of its start-up.
  const line = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((l) => l.includes(' - cgroup2 '));
  if (!line) throw new TaskwireError('SYSTEM', 'no cgroup2 file system is mounted (see /proc/self/mountinfo); taskwire needs cgroup v2');
  cgroup2Cache = unescapeMount(line.split(' ')[4]);
  return cgroup2Cache;
}

/** The v2 cgroup of a process, as a directory under the cgroup2 mount. */
export function cgroupOfPid(pid: number): string {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    throw new TaskwireError('STATE', `process ${pid} does not exist (cannot read /proc/${pid}/cgroup)`);
  }
  const line = text.split('\n').find((l) => l.startsWith('0::'));
  if (!line) throw new TaskwireError('SYSTEM', `process ${pid} has no cgroup v2 membership`);
  return joinPath(cgroup2Mount(), line.slice(3));
}

/** The cgroup id the kernel uses (bpf_get_current_cgroup_id) is the directory's inode. */
export function cgroupId(dir: string): bigint {
  return statSync(dir, { bigint: true }).ino;
}

/**
 * Whether cgroup `dir` has a process in it or in a cgroup below (cgroup.events `populated 1`).
 * One whose events cannot be read counts as populated: nobody destroys a container on a guess.
 */
export function cgroupPopulated(dir: string): boolean {
  try {
    return /^populated 1$/m.test(readFileSync(joinPath(dir, 'cgroup.events'), 'utf8'));
  } catch {
    return true;
  }
}

/**
 * When process `pid` started (clock ticks after boot, /proc/PID/stat field 22): with the pid it
 * names one process for good, across pid reuse. Undefined when there is no such process, or only
 * its zombie.
 */
export function processStart(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // from field 3, the state; comm may hold ') '
  return fields[0] === 'Z' || fields[0] === 'X' ? undefined : fields[19];
}

const BPF_FS_MAGIC = 0xcafe4a11;

/** Whether `dir` lies on a bpffs (one statfs(2), not a walk of the mount table). */
export function isBpffs(dir: string): boolean {
  try {
    return statfsSync(dir).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** Mounts bpffs at `dir` unless it is on one already (a directory made inside a bpffs is). */
export function ensureBpffs(dir: string): void {
  if (isBpffs(dir)) return;
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true });
    if (isBpffs(dir)) return;
  }
  // Loaded lazily: a hook with nothing to do never loads the native module.
  const { libc, errno } = require('../ffi') as typeof import('../ffi');
  // Root only: a bpffs is world-writable (1777) by default, and pins are taskwire's state.
  if (libc.mount('bpf', dir, 'bpf', 0, 'mode=0700') !== 0) throw new SyscallError('SYSTEM', `mount bpffs at ${dir}`, errno());
}

/**
 * Refuses a directory of taskwire's state that someone else could have made or can write: on a
 * bpffs mounted 1777 (the default) any user may create <bpffs>/taskwire before taskwire first
 * runs, and whatever pins it then held would be trusted.
 */
function checkOwnedDir(dir: string): void {
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== process.getuid!() || (st.mode & 0o022) !== 0)
    throw new TaskwireError(
      'STATE',
      `${dir} is ${st.isSymbolicLink() ? 'a symbolic link' : !st.isDirectory() ? 'not a directory' : st.uid !== process.getuid!() ? `owned by uid ${st.uid}` : 'writable by group or others'}: refusing to use it (remove it; taskwire recreates it)`,
    );
}

const SOL_SOCKET = 1;
const SO_NETNS_COOKIE = 71;
const AF_INET6 = 10;
const SOCK_DGRAM = 2;

/** Cookie of the network namespace this process runs in (kernel 5.14+; 0n when unknown). */
export function currentNetnsCookie(): bigint {
  const { libc } = require('../ffi') as typeof import('../ffi');
  const fd = libc.socket(AF_INET6, SOCK_DGRAM, 0) as number;
  if (fd < 0) return 0n;
  try {
    const val = Buffer.alloc(8);
    const len = [8];
    if (libc.getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, val, len) !== 0) return 0n;
    return val.readBigUInt64LE(0);
  } finally {
    libc.close(fd);
  }
}

export function kernelRelease(): string {
  return readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
}

const ownedRoots = new Set<string>();

/**
 * <bpffs>/taskwire, bpffs mounted first: made root's alone, or refused when someone else made it
 * or can write it. The one check for all our pins: only root can add anything under a root-only
 * directory, and the bpffs sticky bit keeps others from renaming it away. Once per process.
 */
export function ensurePinRoot(l: import('../state/paths').Layout): string {
  const { pinRoot } = require('../state/paths') as typeof import('../state/paths');
  const root = pinRoot(l);
  if (ownedRoots.has(root)) return root;
  ensureBpffs(l.bpffs);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  checkOwnedDir(root);
  ownedRoots.add(root);
  return root;
}

/** A plugin's host-wide pin directory (<bpffs>/taskwire/_shared/<plugin>). */
export function ensureSharedPinDir(l: import('../state/paths').Layout, plugin: string): string {
  const { sharedPluginPinDir } = require('../state/paths') as typeof import('../state/paths');
  ensurePinRoot(l);
  const dir = sharedPluginPinDir(l, plugin);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}
