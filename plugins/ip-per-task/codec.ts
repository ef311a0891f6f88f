/* Mirrors bpf/include/ip_per_task.h; test/unit/btf-codecs.test.ts checks it against BTF. */
import { ip6Addr, struct, u16, u64, u8 } from '../../lib/bpf/codec';
import { taskAddr } from '../../lib/bpf/task-addr';

export const BPF_OBJECT = 'ip_per_task';

/** The task's addresses, shared with localhost-redirect's object (its .rodata tw_task). */
export { taskAddr };

/** The cgroup storage tw_ipt_task, keyed by the container cgroup's id. */
export const TASK_MAP = 'tw_ipt_task';
export const taskKey = u64;
export const taskValue = struct('tw_ipt_task', {
  addr: taskAddr,
  cgroup_id: u64,
  binds: u64,
});

/** Host-wide: every task's bound sockets, keyed by socket cookie. */
export const BINDS_MAP = 'tw_ipt_binds';
export const bindKey = u64;
export const bindValue = struct('tw_ipt_bind', {
  cgroup_id: u64,
  addr: ip6Addr,
  port: u16,
  protocol: u8,
  family: u8,
});
