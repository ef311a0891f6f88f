/* A container as the hooks see it: validated id plus where its cgroup and netns are. */
import { readlinkSync } from 'node:fs';
import { TaskwireError } from './errors';
import { cgroupId, cgroupOfPid } from './host/discovery';
import { validateContainerId } from './state/paths';
import type { OciState } from './oci';

export interface Container {
  id: string;
  pid: number;
  bundle: string;
  annotations: Record<string, string>;
  cgroupDir: string;
  cgroupId: bigint;
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
    netnsPath,
    netnsId: readlinkSync(netnsPath),
  };
}

export function hostNetnsId(): string {
  return readlinkSync('/proc/self/ns/net');
}
