// SPDX-License-Identifier: GPL-2.0
/*
 * localhost-redirect: a task reaches its own services on localhost, and only its own.
 *
 * ip-per-task moves the task's servers off the wildcard onto the task IP, so [::1]:P and
 * 127.0.0.1:P no longer reach them. Here:
 *
 *  connect4/6   TCP or connected UDP to loopback:P becomes task IP:P when a socket of the task
 *               is bound to task IP:P; otherwise it is left alone (a host service on loopback
 *               stays reachable) or, with TW_LR_REFUSE_HOST, refused with ECONNREFUSED.
 *  sendmsg4/6   the same for unconnected UDP, per datagram.
 *  getpeername4/6, recvmsg4/6   translate task IP back to the loopback address the application
 *               asked for, only on sockets marked in tw_lr_orig when they were redirected, so a
 *               reply "comes from" where the request went and UDP clients do not drop it.
 *
 * How we know the task listens on P: statelessly, bpf_sk_lookup_tcp/udp for task IP:P at
 * connect time, not a listener table kept by sock_ops (TCP_LISTEN_CB + STATE_CB on
 * LISTEN→CLOSE). Why:
 *  - sock_ops runs for every TCP socket of the task at several points of its life (connect,
 *    established, RTO/RWND init...), so it taxes all the task's connections to serve the rare
 *    loopback one; the lookup costs one listening-hash probe, only on loopback connects.
 *  - the kernel's socket table is always exact: no stale entry after a crash between LISTEN and
 *    CLOSE, no map to size or fill up, nothing to clean up, and it covers UDP (sock_ops does
 *    not see UDP at all; a table would need post_bind + sock_release as well).
 *  - it sees sockets that existed before the programs were attached.
 * The lookup (BPF_F_CURRENT_NETNS) searches the netns of the connecting socket, which is the
 * host's: sockets in another netns are skipped by tw_task_in_host_netns() before any lookup. A match
 * must be bound exactly to task IP:P; a host wildcard listener that the lookup also finds is
 * not the task's and is left to plain loopback.
 *
 * Composition with ip-per-task: both plugins attach connect4/6 and sendmsg4/6 to the same
 * cgroup; the kernel runs every program of the cgroup (multi-attach links) on the same context,
 * in attach order (ip-per-task first). The result does not depend on that order:
 *  ip-per-task first: it leaves a loopback destination alone; we rewrite it to the task IP; the
 *    kernel then picks the source for a local destination as that very address (IPv6 rule 1,
 *    "prefer same address"; IPv4 the local route's src), i.e. the task IP.
 *  ours first: ip-per-task sees the task IP as destination and binds the source to the task IP.
 * test/integration/localhost-redirect.test.ts checks the source the server sees.
 */
#include "taskwire.h"
#define TW_TASK_ADDR_RODATA
#include "task_addr.h"
#include "localhost_redirect.h"

char LICENSE[] SEC("license") = "GPL";

#define TW_ECONNREFUSED 111

const volatile struct tw_lr_config tw_lr_cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tw_lr_orig);
} tw_lr_orig SEC(".maps");

/* True when the found socket is the task's own server on exactly that address and port. */
static __always_inline int is_task_server(struct bpf_sock *sk, int tcp, __u16 port)
{
	return sk->src_port == port && (!tcp || sk->state == BPF_TCP_LISTEN);
}

static __always_inline struct bpf_sock *lookup(struct bpf_sock_addr *ctx, struct bpf_sock_tuple *t, __u32 len, int tcp)
{
	if (tcp)
		return bpf_sk_lookup_tcp(ctx, t, len, BPF_F_CURRENT_NETNS, 0);
	return bpf_sk_lookup_udp(ctx, t, len, BPF_F_CURRENT_NETNS, 0);
}

/* Is a socket of the task bound to task IPv4:port (port in network byte order)? */
static __always_inline int task_has4(struct bpf_sock_addr *ctx, int tcp, __u16 port_be)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	int found;

	t.ipv4.daddr = tw_task.ip4;
	t.ipv4.dport = port_be;
	sk = lookup(ctx, &t, sizeof(t.ipv4), tcp);
	if (!sk)
		return 0;
	found = sk->src_ip4 == tw_task.ip4 && is_task_server(sk, tcp, bpf_ntohs(port_be));
	bpf_sk_release(sk);
	return found;
}

static __always_inline int task_has6(struct bpf_sock_addr *ctx, int tcp, __u16 port_be)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	int found;

	t.ipv6.daddr[0] = tw_task.ip6[0];
	t.ipv6.daddr[1] = tw_task.ip6[1];
	t.ipv6.daddr[2] = tw_task.ip6[2];
	t.ipv6.daddr[3] = tw_task.ip6[3];
	t.ipv6.dport = port_be;
	sk = lookup(ctx, &t, sizeof(t.ipv6), tcp);
	if (!sk)
		return 0;
	found = sk->src_ip6[0] == tw_task.ip6[0] && sk->src_ip6[1] == tw_task.ip6[1] &&
		sk->src_ip6[2] == tw_task.ip6[2] && sk->src_ip6[3] == tw_task.ip6[3] &&
		is_task_server(sk, tcp, bpf_ntohs(port_be));
	bpf_sk_release(sk);
	return found;
}

static __always_inline struct tw_lr_orig *mark(struct bpf_sock_addr *ctx)
{
	return bpf_sk_storage_get(&tw_lr_orig, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
}

/* Not the task's: reach the host's loopback, or refuse if the host config says so. */
static __always_inline int not_ours(void)
{
	if (!(tw_lr_cfg.flags & TW_LR_REFUSE_HOST))
		return TW_ALLOW;
	bpf_set_retval(-TW_ECONNREFUSED);
	return TW_DENY;
}

static __always_inline int redirect4(struct bpf_sock_addr *ctx)
{
	__u32 dst = ctx->user_ip4;
	struct tw_lr_orig *o;

	if (!tw_task_have_ip4(&tw_task) || !tw_task_in_host_netns(&tw_task, ctx) || !tw_ip4_is_loopback(dst))
		return TW_ALLOW;
	if (!task_has4(ctx, ctx->protocol == IPPROTO_TCP, (__u16)ctx->user_port))
		return not_ours();
	o = mark(ctx);
	if (o) {
		o->ip4 = dst;
		o->flags |= TW_LR_ORIG_IP4;
	}
	ctx->user_ip4 = tw_task.ip4;
	return TW_ALLOW;
}

static __always_inline int redirect6(struct bpf_sock_addr *ctx)
{
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
	int tcp = ctx->protocol == IPPROTO_TCP;
	__u16 port = (__u16)ctx->user_port;
	struct tw_lr_orig *o;

	if (!tw_task_in_host_netns(&tw_task, ctx))
		return TW_ALLOW;
	if (tw_ip6_is_v4mapped(w0, w1, w2)) {
		/* A dual-stack socket reaching IPv4 loopback: its server is the task's IPv4 one. */
		if (!tw_task_have_ip4(&tw_task) || !tw_ip4_is_loopback(w3))
			return TW_ALLOW;
		if (!task_has4(ctx, tcp, port))
			return not_ours();
		o = mark(ctx);
		if (o) {
			o->ip4 = w3;
			o->flags |= TW_LR_ORIG_IP4;
		}
		ctx->user_ip6[3] = tw_task.ip4;
		return TW_ALLOW;
	}
	if (!tw_task_have_ip6(&tw_task) || !tw_ip6_is_loopback(w0, w1, w2, w3))
		return TW_ALLOW;
	if (!task_has6(ctx, tcp, port))
		return not_ours();
	o = mark(ctx);
	if (o) {
		o->ip6[0] = w0;
		o->ip6[1] = w1;
		o->ip6[2] = w2;
		o->ip6[3] = w3;
		o->flags |= TW_LR_ORIG_IP6;
	}
	TW_TASK_STORE_IP6(ctx->user_ip6, &tw_task);
	return TW_ALLOW;
}

SEC("cgroup/connect6")
int tw_lr_connect6(struct bpf_sock_addr *ctx)
{
	return redirect6(ctx);
}

SEC("cgroup/connect4")
int tw_lr_connect4(struct bpf_sock_addr *ctx)
{
	return redirect4(ctx);
}

SEC("cgroup/sendmsg6")
int tw_lr_sendmsg6(struct bpf_sock_addr *ctx)
{
	return redirect6(ctx);
}

SEC("cgroup/sendmsg4")
int tw_lr_sendmsg4(struct bpf_sock_addr *ctx)
{
	return redirect4(ctx);
}

/* Peer address task IP → the loopback address asked for, on redirected sockets only. Sockets
 * this plugin never touched have no storage and keep what the kernel says. */
static __always_inline void translate6(struct bpf_sock_addr *ctx)
{
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
	struct tw_lr_orig *o = bpf_sk_storage_get(&tw_lr_orig, ctx->sk, 0, 0);

	if (!o)
		return;
	if (tw_ip6_is_v4mapped(w0, w1, w2)) {
		if ((o->flags & TW_LR_ORIG_IP4) && tw_task_have_ip4(&tw_task) && w3 == tw_task.ip4)
			ctx->user_ip6[3] = o->ip4;
		return;
	}
	if (!(o->flags & TW_LR_ORIG_IP6) || !tw_task_have_ip6(&tw_task))
		return;
	if (w0 != tw_task.ip6[0] || w1 != tw_task.ip6[1] || w2 != tw_task.ip6[2] || w3 != tw_task.ip6[3])
		return;
	ctx->user_ip6[0] = o->ip6[0];
	ctx->user_ip6[1] = o->ip6[1];
	ctx->user_ip6[2] = o->ip6[2];
	ctx->user_ip6[3] = o->ip6[3];
}

static __always_inline void translate4(struct bpf_sock_addr *ctx)
{
	struct tw_lr_orig *o = bpf_sk_storage_get(&tw_lr_orig, ctx->sk, 0, 0);

	if (o && (o->flags & TW_LR_ORIG_IP4) && tw_task_have_ip4(&tw_task) && ctx->user_ip4 == tw_task.ip4)
		ctx->user_ip4 = o->ip4;
}

SEC("cgroup/getpeername6")
int tw_lr_peer6(struct bpf_sock_addr *ctx)
{
	translate6(ctx);
	return TW_ALLOW;
}

SEC("cgroup/getpeername4")
int tw_lr_peer4(struct bpf_sock_addr *ctx)
{
	translate4(ctx);
	return TW_ALLOW;
}

SEC("cgroup/recvmsg6")
int tw_lr_recvmsg6(struct bpf_sock_addr *ctx)
{
	translate6(ctx);
	return TW_ALLOW;
}

SEC("cgroup/recvmsg4")
int tw_lr_recvmsg4(struct bpf_sock_addr *ctx)
{
	translate4(ctx);
	return TW_ALLOW;
}
