/* Mirrors bpf/include/ip_per_task.h; test/unit/btf-codecs.test.ts checks it against BTF. */
import { array, ip6Addr, struct, u16, u32, u64, u8 } from '../../lib/bpf/codec';

export const BPF_OBJECT = 'ip_per_task';

export const HAVE_IP6 = 1;
export const HAVE_IP4 = 2;

export const iptConfig = struct('tw_ipt_config', {
  ip6: array(u32, 4),
  ip4: u32,
  flags: u32,
  host_netns_cookie: u64,
});

export const bindKey = u64; // socket cookie

export const bindValue = struct('tw_ipt_bind', {
  addr: ip6Addr,
  port: u16,
  protocol: u8,
  family: u8,
});

export const BINDS_MAP = 'tw_ipt_binds';
