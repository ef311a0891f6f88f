/*
 * ip-per-task: the contract between bpf/ip_per_task.bpf.c and plugins/ip-per-task/codec.ts.
 * Every field is mirrored by a TypeScript codec; test/unit/btf-codecs checks them against BTF.
 */
#ifndef TASKWIRE_IP_PER_TASK_H
#define TASKWIRE_IP_PER_TASK_H

#include <linux/types.h>

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
