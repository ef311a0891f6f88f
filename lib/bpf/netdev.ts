/*
 * Attaching tc programs to network devices, by the best means the kernel has:
 *   tcx (6.6+)       a bpf_link per program (BPF_TCX_INGRESS/EGRESS), pinned like cgroup links:
 *                    unlinking the pin detaches, the device's death detaches.
 *   netkit (6.7+)    a bpf_link on the primary's ifindex (BPF_NETKIT_PRIMARY/PEER).
 *   clsact (before)  the program pinned, then `tc filter ... bpf object-pinned` through iproute2;
 *                    the filter lives as long as the device.
 * ifindexes are those of the caller's netns: these run in the host netns, on host-side devices.
 */
import { spawnSync } from 'node:child_process';
import { TaskwireError } from '../errors';
import { bpfSys, libbpf, libc } from '../ffi';
import { checkInt, helperAvailable } from './libbpf';
import { tcPath } from '../net/iproute';
import type { BpfProgram } from './object';

export const BPF_TCX_INGRESS = 46;
export const BPF_TCX_EGRESS = 47;
export const BPF_NETKIT_PRIMARY = 54;
export const BPF_NETKIT_PEER = 55;
const BPF_PROG_TYPE_SCHED_CLS = 3;
const BPF_FUNC_redirect_neigh = 152;
const BPF_FUNC_redirect_peer = 155;

export type TcxDir = 'ingress' | 'egress';

/** Creates a tcx/netkit link for `prog` on `ifindex` and pins it at `pinPath`. */
export function attachDeviceLink(prog: BpfProgram, ifindex: number, attachType: number, pinPath: string): void {
  const fd = checkInt(bpfSys.linkCreate(prog.fd, ifindex, attachType), `attach ${prog.name} to ifindex ${ifindex} (attach type ${attachType})`);
  try {
    checkInt(bpfSys.objPin(fd, pinPath), `pin link of ${prog.name} at ${pinPath}`);
  } finally {
    libc.close(fd); // the pin holds the link now
  }
}

export function attachTcx(prog: BpfProgram, ifindex: number, dir: TcxDir, pinPath: string): void {
  attachDeviceLink(prog, ifindex, dir === 'ingress' ? BPF_TCX_INGRESS : BPF_TCX_EGRESS, pinPath);
}

/** clsact + cls_bpf (direct-action) for kernels without tcx; the program is pinned at progPin. */
export function attachClsact(prog: BpfProgram, device: string, dir: TcxDir, progPin: string): void {
  checkInt(bpfSys.objPin(prog.fd, progPin), `pin program ${prog.name} at ${progPin}`);
  const tc = tcPath();
  const steps = [
    ['qdisc', 'replace', 'dev', device, 'clsact'],
    ['filter', 'add', 'dev', device, dir, 'pref', '1', 'bpf', 'direct-action', 'object-pinned', progPin],
  ];
  for (const args of steps) {
    const r = spawnSync(tc, args, { env: {}, encoding: 'utf8', timeout: 5000 });
    if (r.status !== 0) throw new TaskwireError('NETLINK', `tc ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
  }
}

export interface DeviceBpfFeatures {
  tcx: boolean;
  redirectPeer: boolean;
  redirectNeigh: boolean;
}

/**
 * What the kernel offers for device programs, without changing anything: tcx answers
 * BPF_PROG_QUERY for BPF_TCX_INGRESS on lo (older kernels say EINVAL), helpers by libbpf's probe.
 */
export function probeDeviceBpf(): DeviceBpfFeatures {
  const helper = (id: number) => helperAvailable(BPF_PROG_TYPE_SCHED_CLS, id);
  return { tcx: tcxAvailable(), redirectPeer: helper(BPF_FUNC_redirect_peer), redirectNeigh: helper(BPF_FUNC_redirect_neigh) };
}

/** The hook's question, without loading probe programs: one BPF_PROG_QUERY. */
export function tcxAvailable(): boolean {
  const attachFlags = [0];
  const cnt = [0];
  return (libbpf.progQuery(1, BPF_TCX_INGRESS, 0, attachFlags, null, cnt) as number) === 0;
}

/** Ids of the programs attached to a device at a tcx/netkit attach point (for tests and `inspect`). */
export function deviceProgramIds(ifindex: number, attachType: number): number[] {
  const ids = new Uint32Array(64);
  const attachFlags = [0];
  const cnt = [ids.length];
  const rc = libbpf.progQuery(ifindex, attachType, 0, attachFlags, ids, cnt) as number;
  checkInt(rc, `query programs of ifindex ${ifindex} (attach type ${attachType})`);
  return [...ids.subarray(0, cnt[0])];
}
