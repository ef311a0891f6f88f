/*
 * ip-per-task: the container's sockets use its own addresses without a netns. The address is
 * put on a host device (lo by default: this needs no dummy driver) without DAD, so binds to it
 * work the moment the container starts; the BPF side is bpf/ip_per_task.bpf.c.
 *
 * Annotation io.taskwire.ip-per-task:
 *   "fd00:7a5c::10"                        an IPv6 address
 *   "auto"                                 one address per family the host pool has
 *   {"ip6": "...|auto", "ip4": "...|auto"} either or both
 * Explicit addresses must lie in the host's allowedPrefixes; auto ones come from its pool.
 */
import { TaskwireError } from '../../lib/errors';
import { parseAnnotationJson } from '../../lib/host/annotation-json';
import { definePlugin } from '../../lib/plugin';
import { validate } from '../../lib/schema';
import { taskAddrValue } from '../../lib/bpf/task-addr';
import { hostPrefixLen } from '../../lib/net/addr';
import { AddressRequest, claimAddresses, resolveAddressRequest } from '../../lib/net/task-address';
import { BPF_OBJECT, TASK_MAP, taskKey, taskValue } from './codec';

export interface IptHostSection {
  enabled: boolean;
  device?: string;
  pool?: string;
  allowedPrefixes?: string[];
}

export interface IptSummary extends Record<string, unknown> {
  ip6: string | null;
  ip4: string | null;
  device: string;
  programs: string[];
}

const V4_ONLY_PROGRAMS = ['tw_ipt_bind4', 'tw_ipt_connect4', 'tw_ipt_sendmsg4'];
const V6_ONLY_PROGRAMS = ['tw_ipt_bind6', 'tw_ipt_sendmsg6'];

function parseValue(value: string): { req: AddressRequest; bareAuto: boolean } {
  const v = value.trim();
  if (v === 'auto') return { req: { ip6: 'auto', ip4: 'auto' }, bareAuto: true };
  if (v.startsWith('{')) {
    return { req: validate<AddressRequest>('taskwire:ip-per-task/annotation', parseAnnotationJson(v), 'value'), bareAuto: false };
  }
  return { req: { ip6: v }, bareAuto: false };
}

export default definePlugin<AddressRequest, IptHostSection, IptSummary>({
  name: 'ip-per-task',
  annotation: 'io.taskwire.ip-per-task',
  summary: "the container's sockets bind to, connect from and send from its own IPv6/IPv4 address",
  hostSchema: 'taskwire:ip-per-task/host',

  parse(value, { host, section }) {
    const { req, bareAuto } = parseValue(value);
    return resolveAddressRequest(req, bareAuto, host, section.pool ?? 'default', section.allowedPrefixes);
  },

  attach(ctx, req) {
    const device = ctx.section.device ?? 'lo';
    const { addAddress } = require('../../lib/net/netlink') as typeof import('../../lib/net/netlink');
    const addrs = claimAddresses(ctx, req, ctx.section.pool ?? 'default', device, {
      resource: (address) => ({ kind: 'address', device, address, prefixLen: hostPrefixLen(address) }),
      create: (address) => addAddress(device, address, hostPrefixLen(address)),
    });

    // A family the task has no address in gets no rewriting programs: every cgroup hook that
    // exists costs its sockets something (a sendmsg hook takes the socket lock per datagram).
    // connect6 stays for v4-mapped destinations, post_bind and release for the binds map.
    const skip = [...(addrs.ip4 ? [] : V4_ONLY_PROGRAMS), ...(addrs.ip6 ? [] : V6_ONLY_PROGRAMS)];
    // Loaded once per host; this container's addresses go in its cgroup storage, which the
    // links just created. Until this update the programs see zeros and leave sockets alone;
    // the container's process has not run yet.
    const { programs, maps } = ctx.attachShared(BPF_OBJECT, { skipPrograms: skip, maps: [TASK_MAP] });
    const task = maps[TASK_MAP];
    try {
      const { mapShape } = require('../../lib/bpf/info') as typeof import('../../lib/bpf/info');
      const size = mapShape(task.fd).valueSize;
      if (size !== taskValue.size) throw new TaskwireError('SYSTEM', `${TASK_MAP}: values of ${size} bytes, this taskwire writes ${taskValue.size} (BPF objects and code from different builds: run make)`);
      const cgroupId = ctx.container.cgroupId;
      task.update(taskKey, cgroupId, taskValue, { addr: taskAddrValue(addrs), cgroup_id: cgroupId, binds: 0n });
    } finally {
      task.close();
    }
    return { ...addrs, device, programs };
  },
});
