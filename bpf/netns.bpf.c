/* netns wiring: the datapath of a container that has its own network namespace.
 *
 *   tw_ns_from_ctr  tc/tcx ingress of the host end of a veth, or the netkit peer program: a
 *                   packet leaving the container. Another container of this host: straight into
 *                   its netns (bpf_redirect_peer). Anything routed elsewhere: FIB lookup and
 *                   bpf_redirect_neigh to the out device, skipping the host stack's forwarding
 *                   path. Local or unroutable destinations: left to the host stack.
 *   tw_ns_to_ctr    tcx ingress of a host uplink: a packet for a container goes from the uplink
 *                   straight into the container's netns (bpf_redirect_peer: no second pass through
 *                   the backlog; kernel commit 9aa1206e8f48).
 *   tw_ns_nk_prim   netkit primary (host → container through the host stack): passes. Having a
 *                   program there is what lifts netkit's default policy.
 *   tw_ns_conn4/6   cgroup connect hooks: the host services connector. gateway:port with an
 *                   allowed port becomes target:port (a host address reached over the pair).
 *
 * Every tc program returns -1 (TC_ACT_UNSPEC, TCX_NEXT, NETKIT_NEXT) when it has no opinion,
 * which means "go on" under tcx, cls_bpf direct-action and netkit alike.
 */
#include "taskwire.h"
#include "netns.h"
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <stddef.h>

#define TW_NEXT -1

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct tw_ns_ep_key);
	__type(value, struct tw_ns_ep);
} tw_ns_eps SEC(".maps");

const volatile struct tw_ns_svc_config tw_ns_svc = {};

static __always_inline struct tw_ns_ep *ep_of4(__u32 daddr)
{
	struct tw_ns_ep_key k = { .addr = { 0, 0, bpf_htonl(0xffff), daddr } };
	return bpf_map_lookup_elem(&tw_ns_eps, &k);
}

static __always_inline struct tw_ns_ep *ep_of6(const struct in6_addr *d)
{
	struct tw_ns_ep_key k;
	__builtin_memcpy(k.addr, d->in6_u.u6_addr32, 16);
	return bpf_map_lookup_elem(&tw_ns_eps, &k);
}

/* A forwarded packet loses one TTL; ip_decrease_ttl() with an incremental checksum update. */
static __always_inline int dec_ttl4(struct __sk_buff *skb, struct iphdr *ip)
{
	__u16 old = *(__u16 *)&ip->ttl;
	ip->ttl--;
	__u16 new = *(__u16 *)&ip->ttl;
	return bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), old, new, 2);
}

static __always_inline int redirect4(struct __sk_buff *skb, int use_fib)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > end || ip->ttl <= 1)
		return TW_NEXT;
	struct tw_ns_ep *ep = ep_of4(ip->daddr);
	if (ep) {
		__u32 ifindex = ep->ifindex;
		if (dec_ttl4(skb, ip) < 0)
			return TW_NEXT;
		return bpf_redirect_peer(ifindex, 0);
	}
	if (!use_fib)
		return TW_NEXT;
	struct bpf_fib_lookup fib = {
		.family = AF_INET,
		.tos = ip->tos,
		.l4_protocol = ip->protocol,
		.tot_len = bpf_ntohs(ip->tot_len),
		.ipv4_src = ip->saddr,
		.ipv4_dst = ip->daddr,
		.ifindex = skb->ifindex,
	};
	int rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TW_NEXT; /* local, blackhole, forwarding off...: the stack knows best */
	struct bpf_redir_neigh nh = { .nh_family = AF_INET, .ipv4_nh = fib.ipv4_dst };
	if (dec_ttl4(skb, ip) < 0)
		return TW_NEXT;
	return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
}

static __always_inline int redirect6(struct __sk_buff *skb, int use_fib)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	if ((void *)(ip6 + 1) > end || ip6->hop_limit <= 1)
		return TW_NEXT;
	__u8 first = ip6->daddr.in6_u.u6_addr8[0];
	if (first == 0xff || (first == 0xfe && (ip6->daddr.in6_u.u6_addr8[1] & 0xc0) == 0x80))
		return TW_NEXT; /* multicast (NDP) and link-local stay with the stack */
	struct tw_ns_ep *ep = ep_of6(&ip6->daddr);
	if (ep) {
		__u32 ifindex = ep->ifindex;
		ip6->hop_limit--;
		return bpf_redirect_peer(ifindex, 0);
	}
	if (!use_fib)
		return TW_NEXT;
	struct bpf_fib_lookup fib = {
		.family = AF_INET6,
		.l4_protocol = ip6->nexthdr,
		.tot_len = bpf_ntohs(ip6->payload_len),
		.ifindex = skb->ifindex,
	};
	__builtin_memcpy(fib.ipv6_src, ip6->saddr.in6_u.u6_addr32, 16);
	__builtin_memcpy(fib.ipv6_dst, ip6->daddr.in6_u.u6_addr32, 16);
	int rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TW_NEXT;
	struct bpf_redir_neigh nh = { .nh_family = AF_INET6 };
	__builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, 16);
	ip6->hop_limit--;
	return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
}

static __always_inline int dispatch(struct __sk_buff *skb, int use_fib)
{
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return redirect4(skb, use_fib);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return redirect6(skb, use_fib);
	return TW_NEXT;
}

SEC("tc")
int tw_ns_from_ctr(struct __sk_buff *skb)
{
	return dispatch(skb, 1);
}

SEC("tc")
int tw_ns_to_ctr(struct __sk_buff *skb)
{
	return dispatch(skb, 0);
}

SEC("tc")
int tw_ns_nk_prim(struct __sk_buff *skb)
{
	return TW_NEXT;
}

static __always_inline int port_allowed(__u32 port)
{
	for (int i = 0; i < TW_NS_MAX_PORTS; i++) {
		__u32 p = tw_ns_svc.ports[i];
		if (p == 0)
			return 0;
		if (p == port)
			return 1;
	}
	return 0;
}

SEC("cgroup/connect4")
int tw_ns_conn4(struct bpf_sock_addr *ctx)
{
	if (!(tw_ns_svc.flags & TW_NS_SVC_HAVE4) || ctx->user_ip4 != tw_ns_svc.gw4)
		return TW_ALLOW;
	if (port_allowed(ctx->user_port))
		ctx->user_ip4 = tw_ns_svc.target4;
	return TW_ALLOW;
}

SEC("cgroup/connect6")
int tw_ns_conn6(struct bpf_sock_addr *ctx)
{
	if (!(tw_ns_svc.flags & TW_NS_SVC_HAVE6))
		return TW_ALLOW;
	if (ctx->user_ip6[0] != tw_ns_svc.gw6[0] || ctx->user_ip6[1] != tw_ns_svc.gw6[1] ||
	    ctx->user_ip6[2] != tw_ns_svc.gw6[2] || ctx->user_ip6[3] != tw_ns_svc.gw6[3])
		return TW_ALLOW;
	if (port_allowed(ctx->user_port)) {
		ctx->user_ip6[0] = tw_ns_svc.target6[0];
		ctx->user_ip6[1] = tw_ns_svc.target6[1];
		ctx->user_ip6[2] = tw_ns_svc.target6[2];
		ctx->user_ip6[3] = tw_ns_svc.target6[3];
	}
	return TW_ALLOW;
}

char LICENSE[] SEC("license") = "GPL";
