/*
 * The task's own addresses, the contract shared by every object that acts on "the task IP"
 * (ip-per-task, localhost-redirect). user space encodes it through lib/bpf/task-addr.ts, whose
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
/* The helpers take the task's addresses by pointer: ip-per-task keeps them in cgroup storage
 * (one loaded object for every container), localhost-redirect in its .rodata constant tw_task
 * (define TW_TASK_ADDR_RODATA before including this header). Volatile, so that a constant the
 * loader fills is never folded to its zero initializer. */
typedef const volatile struct tw_task_addr *tw_task_t;

/* The hooks follow the cgroup a socket was created in, not its netns: a socket living in any
 * netns but the host's belongs to netns wiring, not to the task-IP plugins. */
static __always_inline int tw_task_in_host_netns(tw_task_t t, void *ctx)
{
	return t->host_netns_cookie == 0 || bpf_get_netns_cookie(ctx) == t->host_netns_cookie;
}

static __always_inline int tw_task_have_ip6(tw_task_t t) { return t->flags & TW_TASK_HAVE_IP6; }
static __always_inline int tw_task_have_ip4(tw_task_t t) { return t->flags & TW_TASK_HAVE_IP4; }

/* Word stores, one per ctx field element: the verifier refuses wider or narrower ctx writes. */
#define TW_TASK_STORE_IP6(dst, t)               \
	do {                                    \
		(dst)[0] = (t)->ip6[0];         \
		(dst)[1] = (t)->ip6[1];         \
		(dst)[2] = (t)->ip6[2];         \
		(dst)[3] = (t)->ip6[3];         \
	} while (0)

#ifdef TW_TASK_ADDR_RODATA
const volatile struct tw_task_addr tw_task = {};
#endif
#endif

#endif
