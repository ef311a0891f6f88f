/* Mirrors bpf/include/ip_per_task.h; test/unit/btf-codecs.test.ts checks it against BTF. */
import { ip6Addr, struct, u16, u64, u8 } from '../../lib/bpf/codec';

export const BPF_OBJECT = 'ip_per_task';

/** The task's addresses (.rodata tw_task), shared with localhost-redirect's object. */
export { taskAddr } from '../../lib/bpf/task-addr';

export const bindKey = u64; // socket cookie

export const bindValue = struct('tw_ipt_bind', {
  addr: ip6Addr,
  port: u16,
  protocol: u8,
  family: u8,
});

export const BINDS_MAP = 'tw_ipt_binds';
