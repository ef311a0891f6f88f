// SPDX-License-Identifier: GPL-2.0
/*
 * ip-per-task: the sockets of one cgroup use the task's own addresses without a netns.
 *
 *  bind4/6     a wildcard bind becomes a bind to the task IP, so servers listen on it only.
 *  connect4/6  bpf_bind(task IP, port 0) sets the source before the kernel picks one; port 0
 *              keeps the port choice lazy (IP_BIND_ADDRESS_NO_PORT). Loopback is left alone.
 *  sendmsg4/6  unconnected UDP gets the task IP as source unless the application chose one.
 *  post_bind4/6, sock_release   keep tw_ipt_binds = who is bound where, exactly.
 *
 * The hooks follow the cgroup a socket was created in, not its netns: a socket in any netns
 * but the host's is someone else's business (netns wiring) and is left untouched.
 *
 * One loaded copy serves every container (lib/bpf/shared.ts): each program reads its container's
 * addresses from the cgroup storage of the cgroup it is attached to, so a container nested in
 * sub-cgroups still finds its own.
 */
#include "taskwire.h"
#include "ip_per_task.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TW_IPT_MAX_BINDS);
	__uint(map_flags, BPF_F_NO_PREALLOC);  /* host-wide: sized for many tasks, filled by few */
	__type(key, __u64);
	__type(value, struct tw_ipt_bind);
} tw_ipt_binds SEC(".maps");

/* Keyed by the cgroup id alone: one value per cgroup, shared by all attach types (5.9+). */
struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_STORAGE);
	__type(key, __u64);
	__type(value, struct tw_ipt_task);
} tw_ipt_task SEC(".maps");

static __always_inline struct tw_ipt_task *task(void)
{
	return bpf_get_local_storage(&tw_ipt_task, 0);
}

SEC("cgroup/bind6")
int tw_ipt_bind6(struct bpf_sock_addr *ctx)
{
	tw_task_t t = &task()->addr;

	if (!tw_task_have_ip6(t) || !tw_task_in_host_netns(t, ctx))
		return TW_ALLOW;
	if (ctx->user_ip6[0] | ctx->user_ip6[1] | ctx->user_ip6[2] | ctx->user_ip6[3])
		return TW_ALLOW;
	TW_TASK_STORE_IP6(ctx->user_ip6, t);
	return TW_ALLOW;
}

SEC("cgroup/bind4")
int tw_ipt_bind4(struct bpf_sock_addr *ctx)
{
	tw_task_t t = &task()->addr;

	if (!tw_task_have_ip4(t) || !tw_task_in_host_netns(t, ctx))
		return TW_ALLOW;
	if (ctx->user_ip4 == 0)
		ctx->user_ip4 = t->ip4;
	return TW_ALLOW;
}

SEC("cgroup/connect6")
int tw_ipt_connect6(struct bpf_sock_addr *ctx)
{
	tw_task_t t = &task()->addr;
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6 };
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];

	if (!tw_task_in_host_netns(t, ctx) || tw_ip6_is_loopback(w0, w1, w2, w3))
		return TW_ALLOW;
	if (tw_ip6_is_v4mapped(w0, w1, w2)) {
		/* A dual-stack socket reaching IPv4: its source is the v4-mapped task IPv4. */
		if (!tw_task_have_ip4(t) || tw_ip4_is_loopback(w3))
			return TW_ALLOW;
		tw_ip6_set_v4mapped(sa.sin6_addr.in6_u.u6_addr32, t->ip4);
	} else {
		if (!tw_task_have_ip6(t))
			return TW_ALLOW;
		sa.sin6_addr.in6_u.u6_addr32[0] = t->ip6[0];
		sa.sin6_addr.in6_u.u6_addr32[1] = t->ip6[1];
		sa.sin6_addr.in6_u.u6_addr32[2] = t->ip6[2];
		sa.sin6_addr.in6_u.u6_addr32[3] = t->ip6[3];
	}
	/* Fails with EINVAL on a socket that is already bound: the application chose, keep it. */
	bpf_bind(ctx, (struct sockaddr *)&sa, sizeof(sa));
	return TW_ALLOW;
}

SEC("cgroup/connect4")
int tw_ipt_connect4(struct bpf_sock_addr *ctx)
{
	tw_task_t t = &task()->addr;
	struct sockaddr_in sa = { .sin_family = AF_INET };

	if (!tw_task_have_ip4(t) || !tw_task_in_host_netns(t, ctx) || tw_ip4_is_loopback(ctx->user_ip4))
		return TW_ALLOW;
	sa.sin_addr.s_addr = t->ip4;
	bpf_bind(ctx, (struct sockaddr *)&sa, sizeof(sa));
	return TW_ALLOW;
}

SEC("cgroup/sendmsg6")
int tw_ipt_sendmsg6(struct bpf_sock_addr *ctx)
{
	tw_task_t t = &task()->addr;
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];

	/* v4-mapped destinations go through udp_sendmsg and so through sendmsg4 below; setting a
	 * v4-mapped source here would fail with ENOTSUPP. */
	if (!tw_task_have_ip6(t) || !tw_task_in_host_netns(t, ctx) || tw_ip6_is_loopback(w0, w1, w2, w3) || tw_ip6_is_v4mapped(w0, w1, w2))
		return TW_ALLOW;
	if (ctx->msg_src_ip6[0] | ctx->msg_src_ip6[1] | ctx->msg_src_ip6[2] | ctx->msg_src_ip6[3])
		return TW_ALLOW;
	TW_TASK_STORE_IP6(ctx->msg_src_ip6, t);
	return TW_ALLOW;
}

SEC("cgroup/sendmsg4")
int tw_ipt_sendmsg4(struct bpf_sock_addr *ctx)
{
	tw_task_t t = &task()->addr;

	if (!tw_task_have_ip4(t) || !tw_task_in_host_netns(t, ctx) || tw_ip4_is_loopback(ctx->user_ip4))
		return TW_ALLOW;
	if (ctx->msg_src_ip4 == 0)
		ctx->msg_src_ip4 = t->ip4;
	return TW_ALLOW;
}

static __always_inline int record_bind(struct bpf_sock *sk, int family)
{
	struct tw_ipt_task *tt = task();
	tw_task_t t = &tt->addr;
	struct tw_ipt_bind b = {
		.cgroup_id = tt->cgroup_id,
		.port = sk->src_port,
		.protocol = sk->protocol,
		.family = family,
	};
	__u64 cookie;

	if (!tt->cgroup_id || !tw_task_in_host_netns(t, sk) || tt->binds >= TW_IPT_MAX_BINDS_PER_TASK)
		return TW_ALLOW;
	if (family == AF_INET6) {
		b.addr[0] = sk->src_ip6[0];
		b.addr[1] = sk->src_ip6[1];
		b.addr[2] = sk->src_ip6[2];
		b.addr[3] = sk->src_ip6[3];
	} else {
		tw_ip6_set_v4mapped(b.addr, sk->src_ip4);
	}
	cookie = bpf_get_socket_cookie(sk);
	if (bpf_map_update_elem(&tw_ipt_binds, &cookie, &b, BPF_NOEXIST) == 0)
		__sync_fetch_and_add(&tt->binds, 1);
	return TW_ALLOW;
}

SEC("cgroup/post_bind6")
int tw_ipt_post_bind6(struct bpf_sock *sk)
{
	return record_bind(sk, AF_INET6);
}

SEC("cgroup/post_bind4")
int tw_ipt_post_bind4(struct bpf_sock *sk)
{
	return record_bind(sk, AF_INET);
}

SEC("cgroup/sock_release")
int tw_ipt_release(struct bpf_sock *sk)
{
	struct tw_ipt_task *tt = task();
	__u64 cookie = bpf_get_socket_cookie(sk);

	/* The entry is this task's when the innermost task's program got there first: the one that
	 * deletes it gives the count back. */
	if (bpf_map_delete_elem(&tw_ipt_binds, &cookie) == 0 && tt->binds)
		__sync_fetch_and_add(&tt->binds, -1);
	return TW_ALLOW;
}
