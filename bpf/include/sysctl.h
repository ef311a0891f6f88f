/*
 * sysctl control: the contract between bpf/sysctl.bpf.c and plugins/sysctl/codec.ts.
 * Every struct is mirrored by a TypeScript codec; test/unit/btf-codecs checks them against BTF.
 *
 * Names are kept in the kernel's own spelling, the full path below /proc/sys with slashes
 * ("net/ipv4/tcp_mem", as bpf_sysctl_get_name returns without BPF_F_SYSCTL_BASE_NAME); user
 * space turns the dotted spelling into this one before anything reaches a map.
 *
 * A container has up to two policies ("slots"): slot 0 is the host default or the annotation
 * that replaced it, slot 1 (only when the host lets annotations merely tighten) the annotation.
 * An access passes when every slot in use allows it. Slot TW_SC_SLOT_BUNDLE holds the exact
 * (name, value) writes of the bundle's linux.sysctl, which pass whatever the slots say.
 */
#ifndef TASKWIRE_SYSCTL_H
#define TASKWIRE_SYSCTL_H

#include <linux/types.h>

#define TW_SC_NAME_MAX 128     /* bytes of a name incl. its NUL; longer names are "overlong" */
#define TW_SC_VALUE_MAX 64     /* bytes of a written value incl. NUL that a value rule can see */
#define TW_SC_AFFIX_MAX 64     /* bytes of a pattern's literal prefix or suffix incl. NUL */
#define TW_SC_MAX_PATTERNS 32  /* per slot */
#define TW_SC_MAX_VALUES 256   /* value table entries, all slots together */
#define TW_SC_MAX_RULE_VALUES 16
#define TW_SC_MAX_EXACT 4096   /* exact names, all slots together */
#define TW_SC_SLOTS 2
#define TW_SC_SLOT_BUNDLE 2
#define TW_SC_EVENTS_SIZE (64 * 1024)

/* tw_sysctl_rule.write */
#define TW_SC_WRITE_DENY 0
#define TW_SC_WRITE_ANY 1
#define TW_SC_WRITE_VALUES 2   /* only values matching value table [first_value, +nvalues) */

/* tw_sysctl_pattern.kind */
#define TW_SC_PAT_NONE 0       /* end of the slot's list */
#define TW_SC_PAT_STAR 1       /* prefix*suffix, the middle without '/' (one name component) */
#define TW_SC_PAT_GLOBSTAR 2   /* prefix**suffix, the middle anything (any depth) */

/* tw_sysctl_value.kind */
#define TW_SC_VAL_STRING 1     /* the written text, trailing whitespace removed, equals str */
#define TW_SC_VAL_RANGE 2      /* the written text is one integer (kernel syntax) in [lo, hi] */

/* tw_sysctl_config.flags */
#define TW_SC_F_EVENTS (1u << 0) /* denied accesses go to tw_sc_events */
#define TW_SC_F_BUNDLE (1u << 1) /* slot TW_SC_SLOT_BUNDLE has entries */

/* What a matching rule (or a slot's default) lets through. */
struct tw_sysctl_rule {
	__u8 read;         /* 1: reads pass */
	__u8 write;        /* TW_SC_WRITE_* */
	__u8 nvalues;      /* with TW_SC_WRITE_VALUES: how many value table entries */
	__u8 pad;
	__u16 first_value; /* with TW_SC_WRITE_VALUES: index of the first in tw_sc_values */
	__u16 pad2;
};

/* Set once before load, as the .rodata constant tw_sc_cfg. */
struct tw_sysctl_config {
	struct tw_sysctl_rule defaults[TW_SC_SLOTS]; /* per slot: what no rule matched gets */
	__u32 nslots;                                /* slots in use: 1 or 2 */
	__u32 flags;                                 /* TW_SC_F_* */
};

/* Key of the hash tw_sc_exact (value: struct tw_sysctl_rule). */
struct tw_sysctl_key {
	__u32 slot;                 /* 0, 1, or TW_SC_SLOT_BUNDLE */
	char name[TW_SC_NAME_MAX];  /* slash spelling, NUL-padded to the end */
};

/*
 * Element of the array tw_sc_patterns, TW_SC_MAX_PATTERNS per slot (slot s at index
 * s * TW_SC_MAX_PATTERNS), most specific first; the first kind NONE ends a slot's list. A name
 * matches when it starts with prefix, ends with suffix, is at least as long as both together,
 * and for STAR has exactly `seps` slashes (those of prefix and suffix: the wildcard itself
 * spans no '/').
 */
struct tw_sysctl_pattern {
	char prefix[TW_SC_AFFIX_MAX];  /* literal before the wildcard, NUL-padded */
	char suffix[TW_SC_AFFIX_MAX];  /* literal after the wildcard, NUL-padded */
	__u8 prefix_len;
	__u8 suffix_len;
	__u8 kind;                     /* TW_SC_PAT_* */
	__u8 seps;                     /* STAR: slashes in prefix + suffix */
	struct tw_sysctl_rule rule;
};

/* Element of the array tw_sc_values: one allowed written value. */
struct tw_sysctl_value {
	__u32 kind;                 /* TW_SC_VAL_* */
	__u32 len;                  /* STRING: bytes of str without NUL */
	__s64 lo;                   /* RANGE: inclusive bounds, host byte order */
	__s64 hi;
	char str[TW_SC_VALUE_MAX];  /* STRING: the value, NUL-padded */
};

/* tw_sysctl_event.reason */
#define TW_SC_DENY_POLICY 1    /* a slot's rule or default refused the access */
#define TW_SC_DENY_VALUE 2     /* the write's value is not among those allowed */
#define TW_SC_DENY_OVERLONG 3  /* the name does not fit TW_SC_NAME_MAX */

/* Record in the ring buffer tw_sc_events, one per denied access (when TW_SC_F_EVENTS). */
struct tw_sysctl_event {
	__u64 ts_ns;                   /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 cgroup_id;               /* cgroup v2 id of the accessing task */
	__u32 pid;                     /* tgid of the accessing task (host pid namespace) */
	__u8 write;                    /* 1 write, 0 read */
	__u8 reason;                   /* TW_SC_DENY_* */
	__u8 slot;                     /* slot that refused (0 or 1) */
	__u8 pad;
	char comm[16];                 /* task comm, NUL-terminated */
	char name[TW_SC_NAME_MAX];     /* slash spelling, NUL-terminated */
	char value[TW_SC_VALUE_MAX];   /* writes: the start of the written text, NUL-terminated */
};

/* tw_sc_stats (per-CPU array) indexes: counters of denials and of events lost. */
#define TW_SC_STAT_READ_DENIED 0
#define TW_SC_STAT_WRITE_DENIED 1
#define TW_SC_STAT_EVENTS_LOST 2
#define TW_SC_STATS 3

#endif
