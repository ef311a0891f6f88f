/*
 * localhost-redirect: the contract between bpf/localhost_redirect.bpf.c and
 * plugins/localhost-redirect/codec.ts. Every struct is mirrored by a TypeScript codec;
 * test/unit/btf-codecs checks them against BTF.
 */
#ifndef TASKWIRE_LOCALHOST_REDIRECT_H
#define TASKWIRE_LOCALHOST_REDIRECT_H

#include <linux/types.h>

/* A loopback connect/send with no task socket behind it fails with ECONNREFUSED instead of
 * reaching the host's own loopback services. */
#define TW_LR_REFUSE_HOST  (1u << 2)

/* Set once before load, as the .rodata constant tw_lr_cfg. */
struct tw_lr_config {
	__u32 flags;              /* TW_LR_REFUSE_HOST */
};

#define TW_LR_ORIG_IP6 (1u << 0)
#define TW_LR_ORIG_IP4 (1u << 1)

/* Value of the socket-local storage tw_lr_orig: set on a socket whose connect or sendmsg this
 * plugin redirected, so getpeername/recvmsg translate back for that socket and no other. Never
 * read from user space; it dies with the socket. */
struct tw_lr_orig {
	__u32 ip6[4];  /* the IPv6 loopback address the application asked for (::1), network byte order */
	__u32 ip4;     /* the IPv4 loopback address the application asked for (127.x.y.z), network byte order */
	__u32 flags;   /* TW_LR_ORIG_*: which of the two is set */
};

#endif
