/* Mirrors bpf/include/localhost_redirect.h; test/unit/btf-codecs.test.ts checks it against BTF. */
import { array, struct, u32 } from '../../lib/bpf/codec';

export const BPF_OBJECT = 'localhost_redirect';

export const REFUSE_HOST = 4;

/** The task's addresses (.rodata tw_task), as ip-per-task gave them. */
export { taskAddr } from '../../lib/bpf/task-addr';

export const lrConfig = struct('tw_lr_config', {
  flags: u32,
});

/** Socket-local storage of redirected sockets; kernel-only, mirrored so the layouts cannot drift. */
export const lrOrig = struct('tw_lr_orig', {
  ip6: array(u32, 4),
  ip4: u32,
  flags: u32,
});
