// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel's floor for ip-per-task's UDP source rewrite (bench/datapath.ts): what any cgroup
 * sendmsg4 program costs a datagram before doing anything (tw_fl_noop4: the hook's dispatch
 * under the socket lock), and what setting the source costs (tw_fl_src4 sets it to the
 * destination, the address the kernel would pick itself for the bench's local destination, so
 * the only difference is the kernel checking a given source is local: __ip_dev_find).
 * Built by the Makefile's rule for bench objects (the flags of bpf/), never installed.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("cgroup/sendmsg4")
int tw_fl_noop4(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("cgroup/sendmsg4")
int tw_fl_src4(struct bpf_sock_addr *ctx)
{
	if (ctx->msg_src_ip4 == 0)
		ctx->msg_src_ip4 = ctx->user_ip4;
	return 1;
}
