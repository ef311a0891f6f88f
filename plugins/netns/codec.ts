/* Mirrors bpf/include/netns.h; test/unit/btf-codecs.test.ts checks it against BTF. */
import { array, ip6Addr, struct, u32 } from '../../lib/bpf/codec';

export const BPF_OBJECT = 'netns';

export const SVC_HAVE4 = 1;
export const SVC_HAVE6 = 2;
export const MAX_PORTS = 16;

export const EPS_MAP = 'tw_ns_eps';
export const SVC_CONST = 'tw_ns_svc';

/** Programs by role; the cgroup ones are the host services connector. */
export const PROG = {
  fromCtr: 'tw_ns_from_ctr',
  toCtr: 'tw_ns_to_ctr',
  nkPrimary: 'tw_ns_nk_prim',
  conn4: 'tw_ns_conn4',
  conn6: 'tw_ns_conn6',
} as const;
export const DEVICE_PROGS = [PROG.fromCtr, PROG.toCtr, PROG.nkPrimary];
export const CGROUP_PROGS = [PROG.conn4, PROG.conn6];

export const epKey = struct('tw_ns_ep_key', { addr: ip6Addr });
export const epValue = struct('tw_ns_ep', { ifindex: u32, flags: u32 });

export const svcConfig = struct('tw_ns_svc_config', {
  flags: u32,
  gw4: u32,
  target4: u32,
  gw6: array(u32, 4),
  target6: array(u32, 4),
  ports: array(u32, MAX_PORTS),
});

/** A port as bpf_sock_addr.user_port holds it on a little-endian host: htons in the low half. */
export function userPort(port: number): number {
  return ((port & 0xff) << 8) | (port >> 8);
}
