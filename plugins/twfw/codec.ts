/* Mirrors bpf/include/twfw.h; test/unit/btf-codecs.test.ts checks it against BTF. */
import { array, be16, ip6Addr, struct, u16, u32, u64, u8 } from '../../lib/bpf/codec';

export const BPF_OBJECT = 'twfw';

export const INGRESS = 0;
export const EGRESS = 1;
export const SLOT_DEFAULT_IN = 0;
export const SLOT_DEFAULT_OUT = 1;
export const SLOT_CONTINUE = 2;
export const SLOT_RULE0 = 3;
export const DROP = 0;
export const PASS = 1;
export const MAX_CANDS = 8;
export const MAX_SET_RULES = 8;
export const LAYER_PACKET = 0;
export const LAYER_SOCKET = 1;

export const F_SOCKET = 1;
export const F_RETVAL = 2;
export const F_SETS_IN = 4;
export const F_SETS_OUT = 8;
export const F_RADDR = 16;
export const F_LADDR = 32;
export const F_RULES_IN = 64;
export const F_RULES_OUT = 128;

/** Bits of data in tw_fw_pkey before the protocol, and before the port. */
export const PKEY_DIR_BITS = 72;
export const PKEY_PROTO_BITS = 80;

export const akey = struct('tw_fw_akey', { prefixlen: u32, addr: ip6Addr });
export const pkey = struct('tw_fw_pkey', { prefixlen: u32, rclass: u32, lclass: u32, dir: u8, proto: u8, port: be16 });
export const cands = struct('tw_fw_cands', { n: u32, slot: array(u16, MAX_CANDS) });
export const rule = struct('tw_fw_rule', { action: u8, log: u8, tcp_mask: u8, tcp_value: u8, prob: u32 });
export const setRule = struct('tw_fw_setrule', { slot: u16, dir: u8, proto: u8, bit: u64 });
export const config = struct('tw_fw_config', {
  flags: u32,
  nset: u32,
  log_rate: u64,
  log_burst: u64,
  set: array(setRule, MAX_SET_RULES),
});
export const counter = struct('tw_fw_counter', { packets: u64, bytes: u64 });
export const bucket = struct('tw_fw_bucket', { tokens: u64, last_ns: u64, suppressed: u64 });
export const endpoint = struct('tw_fw_endpoint', { addr: ip6Addr, port: be16, pad: u16 });
export const sockMark = struct('tw_fw_sk', { flags: u32, peer: ip6Addr, peer_port: be16, pad: u16 });
export const event = struct('tw_fw_event', {
  ts_ns: u64,
  cgroup_id: u64,
  len: u32,
  slot: u16,
  dir: u8,
  verdict: u8,
  proto: u8,
  layer: u8,
  tcp_flags: u8,
  pad: u8,
  lport: u16,
  rport: u16,
  laddr: ip6Addr,
  raddr: ip6Addr,
});

export const classValue = u32;
export const setMask = u64;

/** Map names (bpf/twfw.bpf.c). Per policy: RADDR LADDR MATCH RULES CNT. Kept across policies: the rest. */
export const MAPS = {
  raddr: 'tw_fw_raddr',
  laddr: 'tw_fw_laddr',
  match: 'tw_fw_match',
  rules: 'tw_fw_rules',
  cnt: 'tw_fw_cnt',
  events: 'tw_fw_events',
  bucket: 'tw_fw_bucket',
  socks: 'tw_fw_socks',
  setmem: 'tw_fw_setmem',
} as const;

export const PROGRAMS = ['tw_fw_ingress', 'tw_fw_egress', 'tw_fw_connect4', 'tw_fw_connect6', 'tw_fw_sendmsg4', 'tw_fw_sendmsg6'] as const;
export const SOCKET_PROGRAMS = ['tw_fw_connect4', 'tw_fw_connect6', 'tw_fw_sendmsg4', 'tw_fw_sendmsg6'] as const;
