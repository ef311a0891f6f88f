/*
 * ip-per-task: the contract between bpf/ip_per_task.bpf.c and plugins/ip-per-task/codec.ts.
 * Every field is mirrored by a TypeScript codec; test/unit/btf-codecs checks them against BTF.
 *
 * The object is loaded once per host (lib/bpf/shared.ts); what differs per container is in the
 * cgroup storage tw_ipt_task, and the binds of every container share one map.
 */
#ifndef TASKWIRE_IP_PER_TASK_H
#define TASKWIRE_IP_PER_TASK_H

#include <linux/types.h>
#include "task_addr.h"

/* Value of the cgroup storage tw_ipt_task (keyed by the container cgroup's id), written by the
 * hook right after the links exist; all zero until then, which the programs read as "no address,
 * record nothing". */
struct tw_ipt_task {
	struct tw_task_addr addr;
	__u64 cgroup_id;  /* the container's cgroup (the storage's own key): tags its binds */
	__u64 binds;      /* its entries in tw_ipt_binds (atomic; capped by TW_IPT_MAX_BINDS_PER_TASK) */
};

/* Value of the pinned host-wide hash map tw_ipt_binds, keyed by socket cookie (__u64): one entry
 * per bound socket of any task, added at post_bind, removed at sock_release. A socket of a task
 * nested in another task's cgroup is recorded once, for the innermost (BPF_NOEXIST). */
struct tw_ipt_bind {
	__u64 cgroup_id;  /* the container whose socket it is (struct tw_ipt_task.cgroup_id) */
	__u32 addr[4];    /* bound address, network byte order; IPv4 as ::ffff:a.b.c.d */
	__u16 port;       /* host byte order */
	__u8 protocol;    /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family;      /* AF_INET or AF_INET6 */
};

/* One task can fill at most its share of the host-wide map; further binds go unrecorded. */
#define TW_IPT_MAX_BINDS_PER_TASK 16384
#define TW_IPT_MAX_BINDS 262144

#endif
