/* The contract between bpf/netns.bpf.c and plugins/netns/codec.ts (checked against BTF by
 * test/unit/btf-codecs.test.ts). Addresses are kept as 16 bytes in network byte order; IPv4
 * addresses are stored IPv4-mapped (::ffff:a.b.c.d) so one map serves both families. */
#ifndef TW_NETNS_H
#define TW_NETNS_H

#include <linux/types.h>

#define TW_NS_MAX_PORTS 16
#define TW_NS_SVC_HAVE4 1
#define TW_NS_SVC_HAVE6 2

/* Key of tw_ns_eps: a container address. */
struct tw_ns_ep_key {
	/* The container's address, network byte order, IPv4 as ::ffff:a.b.c.d. */
	__u32 addr[4];
};

/* Value of tw_ns_eps: where that container's traffic goes. */
struct tw_ns_ep {
	/* Host-side ifindex of the container's pair (veth host end or netkit primary), in the
	 * host netns; bpf_redirect_peer() on it lands in the container's eth0 ingress. */
	__u32 ifindex;
	/* Reserved, zero. */
	__u32 flags;
};

/* Read-only config of the host services connector (cgroup connect4/6 of one container). */
struct tw_ns_svc_config {
	/* TW_NS_SVC_HAVE4 / TW_NS_SVC_HAVE6: which family's rewrite is on. */
	__u32 flags;
	/* Container's IPv4 gateway (169.254.1.1), network byte order: the address a container
	 * connects to. */
	__u32 gw4;
	/* Where a matching IPv4 connect goes instead: a host address reachable over the pair,
	 * network byte order. */
	__u32 target4;
	/* Container's IPv6 gateway (fe80::1), four words in network byte order. */
	__u32 gw6[4];
	/* Target of a matching IPv6 connect, network byte order. */
	__u32 target6[4];
	/* Allowed ports, each as bpf_sock_addr.user_port holds it: the 16-bit port in network
	 * byte order in the low half of the word. 0 ends the list. */
	__u32 ports[TW_NS_MAX_PORTS];
};

#endif
