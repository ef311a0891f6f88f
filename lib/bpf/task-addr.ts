/*
 * The task's own addresses as the BPF objects of ip-per-task and localhost-redirect read them:
 * struct tw_task_addr of bpf/include/task_addr.h (in ip-per-task's cgroup storage, in
 * localhost-redirect's .rodata constant tw_task), one definition on each side. Plugins re-export
 * taskAddr from their codec.ts so the BTF check covers every object that embeds it.
 */
import { ip4Addr, ip6Addr, struct, u32, u64 } from './codec';

export const TASK_HAVE_IP6 = 1;
export const TASK_HAVE_IP4 = 2;

// The addresses as text through address codecs (network byte order, as the C side stores them
// in __u32 words), so `taskwire inspect` shows them as addresses.
export const taskAddr = struct('tw_task_addr', {
  ip6: ip6Addr,
  ip4: ip4Addr,
  flags: u32,
  host_netns_cookie: u64,
});

type TaskAddrs = { ip6: string | null; ip4: string | null };

/** struct tw_task_addr for these addresses, with the host's netns cookie. */
export function taskAddrValue(addrs: TaskAddrs) {
  const { currentNetnsCookie } = require('../host/discovery') as typeof import('../host/discovery');
  return {
    ip6: addrs.ip6 ?? '::',
    ip4: addrs.ip4 ?? '0.0.0.0',
    flags: (addrs.ip6 ? TASK_HAVE_IP6 : 0) | (addrs.ip4 ? TASK_HAVE_IP4 : 0),
    host_netns_cookie: currentNetnsCookie(),
  };
}

/** The `rodata` entry for an object that defines TW_TASK_ADDR_RODATA. */
export function taskAddrConstant(addrs: TaskAddrs) {
  return { tw_task: { codec: taskAddr, value: taskAddrValue(addrs) } };
}
