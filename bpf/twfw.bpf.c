// SPDX-License-Identifier: GPL-2.0
/*
 * twfw: a per-container firewall on the container's cgroup.
 *
 *  ingress/egress (cgroup_skb)  every IP packet of the task's sockets: classify, count, log, verdict.
 *  connect4/6, sendmsg4/6       the same egress decision before a packet exists, so a refused
 *                               connect fails at once (ECONNREFUSED where bpf_set_retval exists,
 *                               EPERM otherwise) instead of timing out.
 *
 * Classification costs a fixed number of lookups whatever the policy size: remote address → class
 * (LPM), local address → class (LPM), (classes, direction, protocol, port) → candidate rules (LPM),
 * then at most TW_FW_MAX_CANDS candidates and TW_FW_MAX_SET_RULES set rules, in rule order.
 *
 * Established flows survive a default drop without a connection table: the kernel already found
 * the task's socket for the packet (cgroup_skb runs per socket), and the socket's state says
 * whether the packet continues a flow that a rule or default let start (see continues()).
 */
#include "taskwire.h"
#include <linux/ip.h>
#include <linux/ipv6.h>
#include "twfw.h"

char LICENSE[] SEC("license") = "GPL";

const volatile struct tw_fw_config tw_fw_cfg = {};
/* Never read: puts struct tw_fw_event in the object's BTF (ring buffer maps carry no value type),
 * so the codec check covers it too. */
const volatile struct tw_fw_event tw_fw_event_btf = {};

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_LISTEN 10
#define TCP_NEW_SYN_RECV 12
#define TH_SYN 0x02
#define TH_ACK 0x10
#define ECONNREFUSED 111

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1);
	__type(key, struct tw_fw_akey);
	__type(value, __u32);
} tw_fw_raddr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1);
	__type(key, struct tw_fw_akey);
	__type(value, __u32);
} tw_fw_laddr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1);
	__type(key, struct tw_fw_pkey);
	__type(value, struct tw_fw_cands);
} tw_fw_match SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TW_FW_SLOT_RULE0);
	__type(key, __u32);
	__type(value, struct tw_fw_rule);
} tw_fw_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TW_FW_SLOT_RULE0);
	__type(key, __u32);
	__type(value, struct tw_fw_counter);
} tw_fw_cnt SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} tw_fw_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tw_fw_bucket);
} tw_fw_bucket SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tw_fw_sk);
} tw_fw_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); /* always replaced by the host-wide pinned map */
	__type(key, struct tw_fw_endpoint);
	__type(value, __u64);
} tw_fw_setmem SEC(".maps");

/* One packet or socket call, as the rules see it. Addresses v4-mapped, network order. */
struct flow {
	__u32 laddr[4];
	__u32 raddr[4];
	__u16 lport; /* network order */
	__u16 rport;
	__u8 proto;
	__u8 tcp_flags;
	__u8 dir;
	__u8 layer;
	__u32 len;
};

struct verdict {
	__u32 slot;
	__u8 action;
	__u8 log;
	__u8 undecided; /* socket level only: a probability rule was reached, leave it to packets */
};

static __always_inline __u32 addr_class(void *trie, const __u32 a[4])
{
	struct tw_fw_akey k = { .prefixlen = 128, .addr = { a[0], a[1], a[2], a[3] } };
	__u32 *c = bpf_map_lookup_elem(trie, &k);

	return c ? *c : 0;
}

/* Does the rule in `slot` apply to this flow, given its conditions? 1 yes, 0 no, -1 undecidable
 * at socket level (a probability). */
static __always_inline int rule_applies(struct tw_fw_rule *r, const struct flow *f)
{
	if (r->tcp_mask && (f->tcp_flags & r->tcp_mask) != r->tcp_value)
		return 0;
	if (r->prob) {
		if (f->layer == TW_FW_LAYER_SOCKET)
			return -1;
		if (bpf_get_prandom_u32() >= r->prob)
			return 0;
	}
	return 1;
}

static __always_inline __u64 set_membership(const struct flow *f)
{
	struct tw_fw_endpoint k = { .addr = { f->raddr[0], f->raddr[1], f->raddr[2], f->raddr[3] } };
	__u64 mask = 0, *m;

	k.port = f->dir == TW_FW_EGRESS ? f->rport : f->lport;
	m = bpf_map_lookup_elem(&tw_fw_setmem, &k);
	if (m)
		mask |= *m;
	k.port = 0;
	m = bpf_map_lookup_elem(&tw_fw_setmem, &k);
	if (m)
		mask |= *m;
	return mask;
}

static __always_inline void decide(const struct flow *f, struct verdict *v)
{
	struct tw_fw_pkey pk = {
		.prefixlen = 96,
		.dir = f->dir,
		.proto = f->proto,
		.port = f->dir == TW_FW_EGRESS ? f->rport : f->lport,
	};
	struct tw_fw_cands *c = 0;

	if (tw_fw_cfg.flags & (f->dir == TW_FW_EGRESS ? TW_FW_F_RULES_OUT : TW_FW_F_RULES_IN)) {
		if (tw_fw_cfg.flags & TW_FW_F_RADDR)
			pk.rclass = addr_class(&tw_fw_raddr, f->raddr);
		if (tw_fw_cfg.flags & TW_FW_F_LADDR)
			pk.lclass = addr_class(&tw_fw_laddr, f->laddr);
		c = bpf_map_lookup_elem(&tw_fw_match, &pk);
	}
	__u32 n, i = 0, j = 0, nset = 0;
	__u64 members = 0;
	struct tw_fw_rule *r;

	n = c ? c->n : 0;
	v->slot = f->dir == TW_FW_EGRESS ? TW_FW_SLOT_DEFAULT_OUT : TW_FW_SLOT_DEFAULT_IN;
	v->undecided = 0;
	if ((f->dir == TW_FW_EGRESS && (tw_fw_cfg.flags & TW_FW_F_SETS_OUT)) ||
	    (f->dir == TW_FW_INGRESS && (tw_fw_cfg.flags & TW_FW_F_SETS_IN))) {
		nset = tw_fw_cfg.nset;
		members = set_membership(f);
	}

	/* Merge the candidates and the set rules by slot (= rule order); the first that applies wins. */
	for (int k = 0; k < TW_FW_MAX_CANDS + TW_FW_MAX_SET_RULES; k++) {
		__u32 slot;
		int take_set = 0;

		if (j < nset && j < TW_FW_MAX_SET_RULES) {
			if (i >= n || i >= TW_FW_MAX_CANDS || !c || tw_fw_cfg.set[j].slot < c->slot[i & (TW_FW_MAX_CANDS - 1)])
				take_set = 1;
		} else if (i >= n || i >= TW_FW_MAX_CANDS || !c) {
			break;
		}
		if (take_set) {
			const volatile struct tw_fw_setrule *s = &tw_fw_cfg.set[j & (TW_FW_MAX_SET_RULES - 1)];

			j++;
			slot = s->slot;
			if (s->dir != f->dir || (s->proto && s->proto != f->proto) || !(members & s->bit))
				continue;
		} else {
			slot = c->slot[i & (TW_FW_MAX_CANDS - 1)];
			i++;
		}
		r = bpf_map_lookup_elem(&tw_fw_rules, &slot);
		if (!r)
			continue;
		int ok = rule_applies(r, f);
		if (ok < 0) {
			v->undecided = 1;
			return;
		}
		if (ok) {
			v->slot = slot;
			v->action = r->action;
			v->log = r->log;
			return;
		}
	}
	r = bpf_map_lookup_elem(&tw_fw_rules, &v->slot);
	v->action = r ? r->action : TW_FW_DROP;
	v->log = r ? r->log : 0;
}

static __always_inline void count(__u32 slot, __u32 len)
{
	struct tw_fw_counter *c = bpf_map_lookup_elem(&tw_fw_cnt, &slot);

	if (c) {
		c->packets++;
		c->bytes += len;
	}
}

/* Token bucket per CPU: no lock, and a flood on one CPU cannot starve the others' events. */
static __always_inline int may_log(void)
{
	__u32 zero = 0;
	struct tw_fw_bucket *b = bpf_map_lookup_elem(&tw_fw_bucket, &zero);
	__u64 now = bpf_ktime_get_ns(), cap = tw_fw_cfg.log_burst * 1000000000ull;

	if (!b)
		return 0;
	if (b->last_ns == 0)
		b->tokens = cap;
	else
		b->tokens += (now - b->last_ns) * tw_fw_cfg.log_rate;
	if (b->tokens > cap)
		b->tokens = cap;
	b->last_ns = now;
	if (b->tokens < 1000000000ull) {
		b->suppressed++;
		return 0;
	}
	b->tokens -= 1000000000ull;
	return 1;
}

static __always_inline void emit(const struct flow *f, const struct verdict *v, __u64 cgroup_id)
{
	struct tw_fw_event *e;

	if (!may_log())
		return;
	e = bpf_ringbuf_reserve(&tw_fw_events, sizeof(*e), 0);
	if (!e)
		return;
	e->ts_ns = bpf_ktime_get_ns();
	e->cgroup_id = cgroup_id;
	e->len = f->len;
	e->slot = v->slot;
	e->dir = f->dir;
	e->verdict = v->action;
	e->proto = f->proto;
	e->layer = f->layer;
	e->tcp_flags = f->tcp_flags;
	e->pad = 0;
	e->lport = bpf_ntohs(f->lport);
	e->rport = bpf_ntohs(f->rport);
	__builtin_memcpy(e->laddr, f->laddr, sizeof(e->laddr));
	__builtin_memcpy(e->raddr, f->raddr, sizeof(e->raddr));
	bpf_ringbuf_submit(e, 0);
}

/* Reads the IP and transport headers; returns 0 for packets the firewall ignores (not IP). */
static __always_inline int parse(struct __sk_buff *skb, struct flow *f, int egress)
{
	__u32 src[4] = {}, dst[4] = {};
	__u32 l4off;
	__u8 proto;

	if (skb->protocol == bpf_htons(0x0800)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return 0;
		tw_ip6_set_v4mapped(src, ip.saddr);
		tw_ip6_set_v4mapped(dst, ip.daddr);
		proto = ip.protocol;
		l4off = ip.ihl * 4;
		/* Only a first fragment carries ports; later ones match port-less rules. */
		if (ip.frag_off & bpf_htons(0x1fff))
			proto = proto == IPPROTO_TCP || proto == IPPROTO_UDP ? 255 : proto;
	} else if (skb->protocol == bpf_htons(0x86DD)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return 0;
		__builtin_memcpy(src, &ip6.saddr, 16);
		__builtin_memcpy(dst, &ip6.daddr, 16);
		proto = ip6.nexthdr;
		l4off = sizeof(ip6);
	} else {
		return 0;
	}
	f->proto = proto;
	f->len = skb->len;
	__u16 ports[2] = {};
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		if (bpf_skb_load_bytes(skb, l4off, ports, sizeof(ports)))
			ports[0] = ports[1] = 0;
		if (proto == IPPROTO_TCP) {
			__u8 fl = 0;

			if (!bpf_skb_load_bytes(skb, l4off + 13, &fl, 1))
				f->tcp_flags = fl & 0x3f;
		}
	}
	if (egress) {
		__builtin_memcpy(f->laddr, src, 16);
		__builtin_memcpy(f->raddr, dst, 16);
		f->lport = ports[0];
		f->rport = ports[1];
	} else {
		__builtin_memcpy(f->laddr, dst, 16);
		__builtin_memcpy(f->raddr, src, 16);
		f->lport = ports[1];
		f->rport = ports[0];
	}
	return 1;
}

/*
 * Does this packet continue a flow that the policy already let start? Only then may it pass a
 * default drop. The kernel demultiplexed it to (ingress) or from (egress) one of the task's
 * sockets, which is what makes these checks safe without a connection table:
 *  TCP egress   anything but a bare SYN (a connection attempt is judged; SYN-ACKs, data, FIN and
 *               RST of accepted or connected sockets are not).
 *  TCP ingress  anything reaching a non-listening socket (its 4-tuple matched a connection the
 *               task opened or accepted), and non-SYN segments at a listener (the handshake's
 *               last ACK, which the kernel accepts only for a pending request or a valid cookie,
 *               i.e. after a SYN the policy let in and a SYN-ACK the task sent).
 *  UDP ingress  a connected socket (the kernel delivers to it only from its peer), or a datagram
 *               from the last destination an unconnected socket was allowed to send to.
 */
static __always_inline int continues(struct __sk_buff *skb, const struct flow *f)
{
	struct bpf_sock *sk;

	if (f->proto == IPPROTO_TCP) {
		if (f->dir == TW_FW_EGRESS)
			return (f->tcp_flags & (TH_SYN | TH_ACK)) != TH_SYN;
		sk = skb->sk;
		if (!sk)
			return 0;
		if (sk->state == TCP_LISTEN)
			return !(f->tcp_flags & TH_SYN);
		return 1;
	}
	if (f->proto == IPPROTO_UDP && f->dir == TW_FW_INGRESS) {
		sk = skb->sk;
		if (!sk)
			return 0;
		sk = bpf_sk_fullsock(sk);
		if (!sk)
			return 0;
		if (sk->state == TCP_ESTABLISHED)
			return 1;
		struct tw_fw_sk *m = bpf_sk_storage_get(&tw_fw_socks, sk, 0, 0);
		return m && (m->flags & TW_FW_SK_PEER) && m->peer_port == f->rport &&
		       m->peer[0] == f->raddr[0] && m->peer[1] == f->raddr[1] &&
		       m->peer[2] == f->raddr[2] && m->peer[3] == f->raddr[3];
	}
	return 0;
}

static __always_inline int filter_skb(struct __sk_buff *skb, int egress)
{
	struct flow f = { .dir = egress ? TW_FW_EGRESS : TW_FW_INGRESS, .layer = TW_FW_LAYER_PACKET };
	struct verdict v = {};

	if (!parse(skb, &f, egress))
		return TW_ALLOW;
	decide(&f, &v);
	if (v.action == TW_FW_DROP && v.slot < TW_FW_SLOT_RULE0 && continues(skb, &f)) {
		v.slot = TW_FW_SLOT_CONTINUE;
		v.action = TW_FW_PASS;
		v.log = 0;
	}
	count(v.slot, f.len);
	if (v.log)
		emit(&f, &v, bpf_skb_cgroup_id(skb));
	return v.action == TW_FW_PASS ? TW_ALLOW : TW_DENY;
}

SEC("cgroup_skb/ingress")
int tw_fw_ingress(struct __sk_buff *skb)
{
	return filter_skb(skb, 0);
}

SEC("cgroup_skb/egress")
int tw_fw_egress(struct __sk_buff *skb)
{
	return filter_skb(skb, 1);
}

/* Socket level: the egress decision for a destination, before any packet. Local addresses are
 * unknown here, so this runs only for policies without local-prefix rules (TW_FW_F_SOCKET). */
static __always_inline int socket_level(struct bpf_sock_addr *ctx, int v6, int is_connect)
{
	struct flow f = { .dir = TW_FW_EGRESS, .layer = TW_FW_LAYER_SOCKET };
	struct verdict v = {};
	struct tw_fw_sk *m;

	if (v6) {
		f.raddr[0] = ctx->user_ip6[0];
		f.raddr[1] = ctx->user_ip6[1];
		f.raddr[2] = ctx->user_ip6[2];
		f.raddr[3] = ctx->user_ip6[3];
	} else {
		tw_ip6_set_v4mapped(f.raddr, ctx->user_ip4);
	}
	f.rport = (__u16)ctx->user_port;
	f.proto = ctx->protocol;
	if (f.proto == IPPROTO_TCP)
		f.tcp_flags = TH_SYN;
	if (tw_fw_cfg.flags & TW_FW_F_SOCKET) {
		decide(&f, &v);
		if (!v.undecided && v.action == TW_FW_DROP) {
			count(v.slot, 0);
			if (v.log)
				emit(&f, &v, bpf_get_current_cgroup_id());
			if (is_connect && f.proto == IPPROTO_TCP && (tw_fw_cfg.flags & TW_FW_F_RETVAL))
				bpf_set_retval(-ECONNREFUSED);
			return TW_DENY;
		}
	}
	/* A send not refused here: the peer's replies continue this flow (continues()). */
	if (!is_connect && f.proto == IPPROTO_UDP && ctx->sk) {
		m = bpf_sk_storage_get(&tw_fw_socks, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (m) {
			m->flags |= TW_FW_SK_PEER;
			__builtin_memcpy(m->peer, f.raddr, sizeof(m->peer));
			m->peer_port = f.rport;
		}
	}
	return TW_ALLOW;
}

SEC("cgroup/connect4")
int tw_fw_connect4(struct bpf_sock_addr *ctx)
{
	return socket_level(ctx, 0, 1);
}

SEC("cgroup/connect6")
int tw_fw_connect6(struct bpf_sock_addr *ctx)
{
	return socket_level(ctx, 1, 1);
}

SEC("cgroup/sendmsg4")
int tw_fw_sendmsg4(struct bpf_sock_addr *ctx)
{
	return socket_level(ctx, 0, 0);
}

SEC("cgroup/sendmsg6")
int tw_fw_sendmsg6(struct bpf_sock_addr *ctx)
{
	return socket_level(ctx, 1, 0);
}
