/*
 * The task's own addresses, the contract shared by every object that acts on "the task IP"
 * (ip-per-task, localhost-redirect). Each such object includes this header, which defines the
 * .rodata constant tw_task; user space fills it before load through lib/bpf/task-addr.ts, whose
 * codec test/unit/btf-codecs.test.ts checks against each object's BTF.
 */
#ifndef TASKWIRE_TASK_ADDR_H
#define TASKWIRE_TASK_ADDR_H

#include <linux/types.h>

#define TW_TASK_HAVE_IP6 (1u << 0)
#define TW_TASK_HAVE_IP4 (1u << 1)

struct tw_task_addr {
	__u32 ip6[4];             /* task IPv6, network byte order; valid with TW_TASK_HAVE_IP6 */
	__u32 ip4;                /* task IPv4, network byte order; valid with TW_TASK_HAVE_IP4 */
	__u32 flags;              /* TW_TASK_HAVE_* */
	__u64 host_netns_cookie;  /* sockets in any other netns are left alone; 0 = no check */
};

#ifdef __BPF__
const volatile struct tw_task_addr tw_task = {};

/* The hooks follow the cgroup a socket was created in, not its netns: a socket living in any
 * netns but the host's belongs to netns wiring, not to the task-IP plugins. */
static __always_inline int tw_task_in_host_netns(void *ctx)
{
	return tw_task.host_netns_cookie == 0 || bpf_get_netns_cookie(ctx) == tw_task.host_netns_cookie;
}

static __always_inline int tw_task_have_ip6(void) { return tw_task.flags & TW_TASK_HAVE_IP6; }
static __always_inline int tw_task_have_ip4(void) { return tw_task.flags & TW_TASK_HAVE_IP4; }

/* Word stores, one per ctx field element: the verifier refuses wider or narrower ctx writes. */
#define TW_TASK_STORE_IP6(dst)                  \
	do {                                    \
		(dst)[0] = tw_task.ip6[0];      \
		(dst)[1] = tw_task.ip6[1];      \
		(dst)[2] = tw_task.ip6[2];      \
		(dst)[3] = tw_task.ip6[3];      \
	} while (0)
#endif

#endif
