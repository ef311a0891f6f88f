/*
 * twfw: the contract between bpf/twfw.bpf.c and plugins/twfw/codec.ts (checked against BTF by
 * test/unit/btf-codecs). plugins/twfw/README.md explains the matching order these maps encode.
 *
 * One policy is five maps built together by the compiler (plugins/twfw/compile.ts) and loaded
 * with a fresh copy of the programs; `taskwire fw apply` swaps programs (and so the whole
 * policy) with bpf_link_update. Maps that carry state across policies (events, rate limiter,
 * socket marks, shared endpoint sets) are reused by every generation.
 *
 * Addresses are always 16 bytes in network byte order; IPv4 is stored v4-mapped
 * (::ffff:a.b.c.d), so one trie serves both families and an IPv4 /p is a /(96+p).
 */
#ifndef TASKWIRE_TWFW_H
#define TASKWIRE_TWFW_H

#include <linux/types.h>

#define TW_FW_INGRESS 0
#define TW_FW_EGRESS 1

/* Rule slots: the index into tw_fw_rules and tw_fw_cnt. The defaults are rules too, so a default
 * can be counted, logged and swapped like any rule. Policy rules start at TW_FW_SLOT_RULE0. */
#define TW_FW_SLOT_DEFAULT_IN 0
#define TW_FW_SLOT_DEFAULT_OUT 1
#define TW_FW_SLOT_CONTINUE 2 /* packets of an established flow let through a default drop */
#define TW_FW_SLOT_RULE0 3

/* Actions. Zero is drop so that an unfilled slot (a map being built) fails closed. */
#define TW_FW_DROP 0
#define TW_FW_PASS 1

/* Candidates per match entry: the rules that apply to one region of (addresses, protocol, port),
 * in rule order, up to and including the first rule that has no condition (TCP flags or drop
 * probability). The compiler refuses a policy needing more. */
#define TW_FW_MAX_CANDS 8
/* Set rules per policy: evaluated by a bounded loop with one hash lookup per packet. */
#define TW_FW_MAX_SET_RULES 8

/* Key of the address tries tw_fw_raddr / tw_fw_laddr (LPM, BPF_F_NO_PREALLOC). */
struct tw_fw_akey {
	__u32 prefixlen; /* bits of addr that must match; IPv4 /p is 96 + p */
	__u32 addr[4];   /* network byte order, IPv4 as ::ffff:a.b.c.d */
};

/* Key of tw_fw_match (LPM). The data is compared byte by byte from rclass on, so the fields a
 * rule may leave open (protocol, then port) come last: prefixlen 72 = any protocol, 80 = one
 * protocol, any port; 80 + k = a block of ports sharing their top k bits. rclass, lclass and dir
 * are always matched whole, so their byte order does not matter (host order). */
struct tw_fw_pkey {
	__u32 prefixlen;
	__u32 rclass; /* class of the remote address from tw_fw_raddr; 0 = in no rule's prefix */
	__u32 lclass; /* class of the local address from tw_fw_laddr; 0 = in no rule's prefix */
	__u8 dir;     /* TW_FW_INGRESS or TW_FW_EGRESS */
	__u8 proto;   /* IPPROTO_* */
	__u16 port;   /* destination port of the packet, network byte order */
};

/* Value of tw_fw_match: the candidate rules for that region, in rule order. */
struct tw_fw_cands {
	__u32 n;                       /* used entries of slot */
	__u16 slot[TW_FW_MAX_CANDS];   /* rule slots, ascending = rule order */
};

/* Value of tw_fw_rules (array indexed by slot). */
struct tw_fw_rule {
	__u8 action;    /* TW_FW_PASS or TW_FW_DROP */
	__u8 log;       /* 1: emit an event on tw_fw_events (rate-limited) */
	__u8 tcp_mask;  /* TCP flag bits the rule looks at (FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08
	                 * ACK 0x10 URG 0x20); nonzero only on TCP rules */
	__u8 tcp_value; /* required value of those bits */
	__u32 prob;     /* 0: always; else the rule applies when bpf_get_prandom_u32() < prob
	                 * (drop probability times 2^32); otherwise matching goes on */
};

/* One set rule, in the .rodata constant (a set rule's remote side is a named endpoint set). */
struct tw_fw_setrule {
	__u16 slot;   /* its rule slot (rule order against tw_fw_match candidates) */
	__u8 dir;
	__u8 proto;   /* IPPROTO_*, 0 = any */
	__u64 bit;    /* the set's bit in tw_fw_setmem values */
};

/* Flags of struct tw_fw_config. */
#define TW_FW_F_SOCKET (1u << 0)  /* decide egress at connect/sendmsg too (no local-prefix rules) */
#define TW_FW_F_RETVAL (1u << 1)  /* bpf_set_retval exists: refused connects get ECONNREFUSED */
#define TW_FW_F_SETS_IN (1u << 2) /* some set rule is ingress */
#define TW_FW_F_SETS_OUT (1u << 3)/* some set rule is egress */
/* What the policy uses at all, so a packet skips lookups that cannot match. */
#define TW_FW_F_RADDR (1u << 4)   /* some rule has remote prefixes */
#define TW_FW_F_LADDR (1u << 5)   /* some rule has local prefixes */
#define TW_FW_F_RULES_IN (1u << 6)/* some prefix rule is ingress */
#define TW_FW_F_RULES_OUT (1u << 7)/* some prefix rule is egress */

/* Set once per policy before load, as the .rodata constant tw_fw_cfg. */
struct tw_fw_config {
	__u32 flags;      /* TW_FW_F_* */
	__u32 nset;       /* used entries of set */
	__u64 log_rate;   /* events per second per CPU the token bucket refills */
	__u64 log_burst;  /* bucket size, events */
	struct tw_fw_setrule set[TW_FW_MAX_SET_RULES];
};

/* Value of tw_fw_cnt (per-CPU array indexed by slot); user space sums the CPUs. */
struct tw_fw_counter {
	__u64 packets; /* packets, or refused connect/sendmsg calls at socket level */
	__u64 bytes;   /* IP packet bytes (skb->len); 0 for socket-level refusals */
};

/* Value of tw_fw_bucket (per-CPU array, one entry): the log rate limiter. */
struct tw_fw_bucket {
	__u64 tokens;     /* in 1e-9 events, at most log_burst * 1e9 */
	__u64 last_ns;    /* bpf_ktime_get_ns() of the last refill */
	__u64 suppressed; /* events dropped by the limiter (shown by fw stats) */
};

/* Key of the host-wide shared hash tw_fw_setmem: one endpoint of one or more sets. */
struct tw_fw_endpoint {
	__u32 addr[4]; /* network byte order, IPv4 v4-mapped */
	__u16 port;    /* network byte order; 0 = any port of that address */
	__u16 pad;
};
/* Its value is a __u64: bit b set = the endpoint belongs to the set registered as bit b. */

/* Value of the socket storage tw_fw_socks: what the task did with one socket. */
#define TW_FW_SK_PEER (1u << 0)
struct tw_fw_sk {
	__u32 flags;    /* TW_FW_SK_* */
	__u32 peer[4];  /* last destination an unconnected UDP send was allowed to (network order) */
	__u16 peer_port;/* its port, network byte order */
	__u16 pad;
};

/* Where a verdict was taken. */
#define TW_FW_LAYER_PACKET 0
#define TW_FW_LAYER_SOCKET 1

/* A record on the ring buffer tw_fw_events. */
struct tw_fw_event {
	__u64 ts_ns;     /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u64 cgroup_id; /* the container's cgroup */
	__u32 len;       /* packet bytes; 0 at socket level */
	__u16 slot;      /* the rule slot that decided */
	__u8 dir;        /* TW_FW_INGRESS / TW_FW_EGRESS */
	__u8 verdict;    /* TW_FW_PASS / TW_FW_DROP */
	__u8 proto;      /* IPPROTO_* */
	__u8 layer;      /* TW_FW_LAYER_* */
	__u8 tcp_flags;  /* as in struct tw_fw_rule */
	__u8 pad;
	__u16 lport;     /* local port, host byte order */
	__u16 rport;     /* remote port, host byte order */
	__u32 laddr[4];  /* local address, network order, IPv4 v4-mapped */
	__u32 raddr[4];  /* remote address */
};

#endif
