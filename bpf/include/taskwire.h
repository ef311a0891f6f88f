/* Definitions every taskwire BPF program shares. Kernel UAPI headers lack the socket-level
 * constants (they live in libc's headers, which BPF programs cannot include), so they are here. */
#ifndef TASKWIRE_H
#define TASKWIRE_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#define TW_ALLOW 1
#define TW_DENY 0

/* Addresses are kept as four 32-bit words in network byte order: the layout of user_ip6[],
 * msg_src_ip6[] and bpf_sock.src_ip6[], so they compare and copy word by word (the verifier
 * refuses narrower or wider accesses to those context fields). */
static __always_inline int tw_ip6_is_zero(const __u32 a[4])
{
	return (a[0] | a[1] | a[2] | a[3]) == 0;
}

/* ::1 */
static __always_inline int tw_ip6_is_loopback(__u32 w0, __u32 w1, __u32 w2, __u32 w3)
{
	return w0 == 0 && w1 == 0 && w2 == 0 && w3 == bpf_htonl(1);
}

/* ::ffff:a.b.c.d */
static __always_inline int tw_ip6_is_v4mapped(__u32 w0, __u32 w1, __u32 w2)
{
	return w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff);
}

/* a = ::ffff:ip4 (ip4 in network byte order): how IPv4 addresses sit in 128-bit keys and sockets */
static __always_inline void tw_ip6_set_v4mapped(__u32 a[4], __u32 ip4_be)
{
	a[0] = 0;
	a[1] = 0;
	a[2] = bpf_htonl(0xffff);
	a[3] = ip4_be;
}

/* 127.0.0.0/8 */
static __always_inline int tw_ip4_is_loopback(__u32 ip4_be)
{
	return (bpf_ntohl(ip4_be) >> 24) == 127;
}

#endif
