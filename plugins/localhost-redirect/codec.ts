/* Mirrors bpf/include/localhost_redirect.h; test/unit/btf-codecs.test.ts checks it against BTF. */
import { array, struct, u32, u64 } from '../../lib/bpf/codec';

export const BPF_OBJECT = 'localhost_redirect';

export const HAVE_IP6 = 1;
export const HAVE_IP4 = 2;
export const REFUSE_HOST = 4;

export const lrConfig = struct('tw_lr_config', {
  ip6: array(u32, 4),
  ip4: u32,
  flags: u32,
  host_netns_cookie: u64,
});

/** Socket-local storage of redirected sockets; kernel-only, mirrored so the layouts cannot drift. */
export const lrOrig = struct('tw_lr_orig', {
  ip6: array(u32, 4),
  ip4: u32,
  flags: u32,
});
