/*
 * ip-per-task: the contract between bpf/ip_per_task.bpf.c and plugins/ip-per-task/codec.ts.
 * Every field is mirrored by a TypeScript codec; test/unit/btf-codecs checks them against BTF.
 */
#ifndef TASKWIRE_IP_PER_TASK_H
#define TASKWIRE_IP_PER_TASK_H

#include <linux/types.h>

#define TW_IPT_HAVE_IP6 (1u << 0)
#define TW_IPT_HAVE_IP4 (1u << 1)

/* Set once before load, as the .rodata constant tw_ipt_cfg. */
struct tw_ipt_config {
	__u32 ip6[4];             /* task IPv6, network byte order; valid with TW_IPT_HAVE_IP6 */
	__u32 ip4;                /* task IPv4, network byte order; valid with TW_IPT_HAVE_IP4 */
	__u32 flags;              /* TW_IPT_HAVE_* */
	__u64 host_netns_cookie;  /* sockets in any other netns are left alone; 0 = no check */
};

/* Value of the pinned hash map tw_ipt_binds, keyed by socket cookie (__u64): one entry per
 * bound socket of the task, added at post_bind, removed at sock_release. */
struct tw_ipt_bind {
	__u32 addr[4];  /* bound address, network byte order; IPv4 as ::ffff:a.b.c.d */
	__u16 port;     /* host byte order */
	__u8 protocol;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family;    /* AF_INET or AF_INET6 */
};

#define TW_IPT_MAX_BINDS 16384

#endif
