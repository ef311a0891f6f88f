/* A container as the hooks see it: validated id plus where its cgroup and netns are. */
import { readlinkSync, statSync } from 'node:fs';
import { TaskwireError } from './errors';
import { cgroup2Mount, cgroupId, cgroupOfPid, cgroupPopulated, processStart } from './host/discovery';
import { validateContainerId } from './state/paths';
import type { OciState } from './oci';
import type { ContainerRecord } from './state/record';

export interface Container {
  id: string;
  pid: number;
  bundle: string;
  annotations: Record<string, string>;
  cgroupDir: string;
  cgroupId: bigint;
  /** When the container's process started (see ContainerRecord.pidStart). */
  pidStart: string;
  /** /proc/PID/ns/net and its identity (net:[inode]), to tell host netns from a private one. */
  netnsPath: string;
  netnsId: string;
}

export function resolveContainer(state: OciState): Container {
  const id = validateContainerId(state.id);
  if (!state.pid) throw new TaskwireError('STATE', `container ${id}: the runtime gave no pid; taskwire needs it at createRuntime/prestart`);
  const cgroupDir = cgroupOfPid(state.pid);
  const netnsPath = `/proc/${state.pid}/ns/net`;
  return {
    id,
    pid: state.pid,
    bundle: state.bundle,
    annotations: state.annotations ?? {},
    cgroupDir,
    cgroupId: cgroupId(cgroupDir),
    pidStart: processStart(state.pid) ?? '',
    netnsPath,
    netnsId: readlinkSync(netnsPath),
  };
}

/**
 * Whether the container a record describes is the one running now: its process (the pid and
 * start time recorded at createRuntime) is alive in the record's cgroup or below. Not merely
 * "its cgroup has processes": those may be leftovers a runtime failed to kill, or another
 * container's given the same cgroup. Records of earlier versions (no start time) never are.
 */
export function recordedProcessRuns(rec: ContainerRecord): boolean {
  if (!rec.pidStart || !rec.pid || processStart(rec.pid) !== rec.pidStart) return false;
  try {
    const now = cgroupOfPid(rec.pid);
    return now === rec.cgroup || now.startsWith(`${rec.cgroup}/`);
  } catch {
    return false; // gone since
  }
}

function underCgroup2(dir: string): boolean {
  try {
    return dir.startsWith(`${cgroup2Mount()}/`);
  } catch {
    return false; // no cgroup2 mount seen here
  }
}

/**
 * What became of the container a record describes. 'gone': its cgroup is not there, or is
 * another cgroup now. 'stopped': its cgroup has no process left, in it or below, so neither has
 * the container (a runtime has yet to delete it, or failed to remove the cgroup; a cgroup shared
 * with others stays populated while they run). Otherwise 'running', also when
 * the cgroup cannot be looked at (EACCES), or lies outside the cgroup2 mount this process sees
 * (the record was written in another mount namespace: gone from here is not gone): gc, and the
 * netns plugin's count of users, must never take a container's state on a guess.
 */
export function recordedState(rec: ContainerRecord): 'running' | 'stopped' | 'gone' {
  let ino: bigint | undefined;
  try {
    ino = statSync(rec.cgroup, { bigint: true, throwIfNoEntry: false })?.ino;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOTDIR') return 'running';
  }
  // Found as recorded: its own cgroup, wherever the mount. Only a miss needs the mount table.
  if (ino !== undefined && ino.toString() === rec.cgroupId) return cgroupPopulated(rec.cgroup) ? 'running' : 'stopped';
  return underCgroup2(rec.cgroup) ? 'gone' : 'running';
}

export function hostNetnsId(): string {
  return readlinkSync('/proc/self/ns/net');
}
