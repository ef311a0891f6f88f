/* Mirrors bpf/include/sysctl.h; test/unit/btf-codecs.test.ts checks it against BTF. */
import { array, cstring, s64, struct, u16, u32, u64, u8 } from '../../lib/bpf/codec';

export const BPF_OBJECT = 'sysctl';
export const PROGRAM = 'tw_sc_check';

export const NAME_BYTES = 128;
export const VALUE_BYTES = 64;
export const AFFIX_BYTES = 64;
export const MAX_PATTERNS = 32;
export const MAX_VALUES = 256;
export const MAX_EXACT = 4096;
export const SLOT_BUNDLE = 2;
export const EVENTS_SIZE = 64 * 1024;

export const WRITE = { deny: 0, any: 1, values: 2 } as const;
export const PAT = { none: 0, star: 1, globstar: 2 } as const;
export const VAL = { string: 1, range: 2 } as const;
export const F_EVENTS = 1;
export const F_BUNDLE = 2;
export const DENY_REASONS: Record<number, string> = { 1: 'policy', 2: 'value', 3: 'overlong' };
export const STAT = { readDenied: 0, writeDenied: 1, eventsLost: 2 } as const;

export const EXACT_MAP = 'tw_sc_exact';
export const PATTERNS_MAP = 'tw_sc_patterns';
export const VALUES_MAP = 'tw_sc_values';
export const EVENTS_MAP = 'tw_sc_events';
export const STATS_MAP = 'tw_sc_stats';

export const sysctlRule = struct('tw_sysctl_rule', {
  read: u8,
  write: u8,
  nvalues: u8,
  pad: u8,
  first_value: u16,
  pad2: u16,
});

export const sysctlConfig = struct('tw_sysctl_config', {
  defaults: array(sysctlRule, 2),
  nslots: u32,
  flags: u32,
});

export const sysctlKey = struct('tw_sysctl_key', {
  slot: u32,
  name: cstring(NAME_BYTES),
});

export const sysctlPattern = struct('tw_sysctl_pattern', {
  prefix: cstring(AFFIX_BYTES),
  suffix: cstring(AFFIX_BYTES),
  prefix_len: u8,
  suffix_len: u8,
  kind: u8,
  seps: u8,
  rule: sysctlRule,
});

export const sysctlValue = struct('tw_sysctl_value', {
  kind: u32,
  len: u32,
  lo: s64,
  hi: s64,
  str: cstring(VALUE_BYTES),
});

export const sysctlEvent = struct('tw_sysctl_event', {
  ts_ns: u64,
  cgroup_id: u64,
  pid: u32,
  write: u8,
  reason: u8,
  slot: u8,
  pad: u8,
  comm: cstring(16),
  name: cstring(NAME_BYTES),
  value: cstring(VALUE_BYTES),
});

export const u32Key = u32;
export const statValue = u64;
