/*
 * The task's own addresses as the BPF objects of ip-per-task and localhost-redirect read them:
 * the .rodata constant tw_task of bpf/include/task_addr.h, one definition on each side. Plugins
 * re-export taskAddr from their codec.ts so the BTF check covers every object that embeds it.
 */
import { array, struct, u32, u64 } from './codec';
import { ip4Word, ip6Words } from '../net/addr';

export const TASK_HAVE_IP6 = 1;
export const TASK_HAVE_IP4 = 2;

export const taskAddr = struct('tw_task_addr', {
  ip6: array(u32, 4),
  ip4: u32,
  flags: u32,
  host_netns_cookie: u64,
});

/** The `rodata` entry for an object that includes task_addr.h. */
export function taskAddrConstant(addrs: { ip6: string | null; ip4: string | null }) {
  const { currentNetnsCookie } = require('../host/discovery') as typeof import('../host/discovery');
  return {
    tw_task: {
      codec: taskAddr,
      value: {
        ip6: addrs.ip6 ? ip6Words(addrs.ip6) : [0, 0, 0, 0],
        ip4: addrs.ip4 ? ip4Word(addrs.ip4) : 0,
        flags: (addrs.ip6 ? TASK_HAVE_IP6 : 0) | (addrs.ip4 ? TASK_HAVE_IP4 : 0),
        host_netns_cookie: currentNetnsCookie(),
      },
    },
  };
}
