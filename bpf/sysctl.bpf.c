// SPDX-License-Identifier: GPL-2.0
/*
 * sysctl control: every /proc/sys read and write by a task of the cgroup passes through
 * tw_sc_check, which returns 0 (the kernel then fails the access with EPERM) unless the policy
 * allows it. The policy is compiled by plugins/sysctl/policy.ts into three maps filled before
 * the program is attached; the layout and the meaning of every field is in include/sysctl.h.
 *
 * Order of decisions, the same in plugins/sysctl/policy.ts (evaluate) so tests and `--dry-run`
 * can show what the kernel will do:
 *   1. a name that does not fit TW_SC_NAME_MAX is refused (no real sysctl is that long);
 *   2. a write of exactly a (name, value) of the bundle's linux.sysctl passes;
 *   3. each slot in use picks one rule: its exact name, else its first matching pattern
 *      (user space sorts them most specific first), else its default; every slot must allow.
 *
 * Loops are bounded by constants (the verifier on 6.1 explores each iteration); the pattern
 * wildcard never needs backtracking because a pattern has one wildcard: match prefix, match
 * suffix, and for '*' check that the slashes of the name are exactly those of the literals.
 */
#include "taskwire.h"
#include "sysctl.h"

char LICENSE[] SEC("license") = "GPL";

const volatile struct tw_sysctl_config tw_sc_cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TW_SC_MAX_EXACT);
	__type(key, struct tw_sysctl_key);
	__type(value, struct tw_sysctl_rule);
} tw_sc_exact SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TW_SC_MAX_PATTERNS * TW_SC_SLOTS);
	__type(key, __u32);
	__type(value, struct tw_sysctl_pattern);
} tw_sc_patterns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TW_SC_MAX_VALUES);
	__type(key, __u32);
	__type(value, struct tw_sysctl_value);
} tw_sc_values SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, TW_SC_EVENTS_SIZE);
} tw_sc_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TW_SC_STATS);
	__type(key, __u32);
	__type(value, __u64);
} tw_sc_stats SEC(".maps");

/* Ring buffer records are never a map's declared value: this puts their type into BTF, where
 * the codec check (test/unit/btf-codecs) and readers of the object find it. */
const struct tw_sysctl_event *tw_sc_event_type __attribute__((unused));

/* The written text, read once per write. */
struct written {
	char val[TW_SC_VALUE_MAX];
	int len;       /* without trailing whitespace; -1 when it did not fit val */
	int is_num;    /* the whole text is one integer (kernel syntax, base auto) */
	long num;
};

static __always_inline int is_space(char c)
{
	return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

static __always_inline void read_written(struct bpf_sysctl *ctx, struct written *w)
{
	int n = bpf_sysctl_get_new_value(ctx, w->val, sizeof(w->val));
	int i;

	w->len = -1;
	if (n < 0 || n >= TW_SC_VALUE_MAX)
		return;
	for (i = 0; i < TW_SC_VALUE_MAX; i++) {
		if (n == 0 || !is_space(w->val[(n - 1) & (TW_SC_VALUE_MAX - 1)]))
			break;
		n--;
	}
	w->len = n;
	if (n > 0 && bpf_strtol(w->val, sizeof(w->val), 0, &w->num) == n)
		w->is_num = 1;
}

static __always_inline int value_matches(const struct tw_sysctl_value *v, const struct written *w)
{
	int i;

	if (v->kind == TW_SC_VAL_RANGE)
		return w->is_num && w->num >= v->lo && w->num <= v->hi;
	if (v->kind != TW_SC_VAL_STRING || (int)v->len != w->len)
		return 0;
	for (i = 0; i < TW_SC_VALUE_MAX; i++) {
		if (i >= w->len)
			break;
		if (v->str[i] != w->val[i])
			return 0;
	}
	return 1;
}

static __always_inline int write_allowed(const struct tw_sysctl_rule *r, const struct written *w)
{
	int i;

	if (r->write == TW_SC_WRITE_ANY)
		return 1;
	if (r->write != TW_SC_WRITE_VALUES || w->len < 0)
		return 0;
	for (i = 0; i < TW_SC_MAX_RULE_VALUES; i++) {
		__u32 idx = r->first_value + i;
		const struct tw_sysctl_value *v;

		if (i >= r->nvalues)
			break;
		v = bpf_map_lookup_elem(&tw_sc_values, &idx);
		if (v && value_matches(v, w))
			return 1;
	}
	return 0;
}

static __always_inline int pattern_matches(const struct tw_sysctl_pattern *p, const char *name, int nlen, int nseps)
{
	int plen = p->prefix_len, slen = p->suffix_len, off, i;

	if (plen + slen > nlen || (p->kind == TW_SC_PAT_STAR && p->seps != nseps))
		return 0;
	for (i = 0; i < TW_SC_AFFIX_MAX; i++) {
		if (i >= plen)
			break;
		if (name[i] != p->prefix[i])
			return 0;
	}
	off = nlen - slen;
	for (i = 0; i < TW_SC_AFFIX_MAX; i++) {
		if (i >= slen)
			break;
		if (name[(off + i) & (TW_SC_NAME_MAX - 1)] != p->suffix[i])
			return 0;
	}
	return 1;
}

/* The rule slot `slot` applies to this name: exact, else first matching pattern, else default. */
static __always_inline struct tw_sysctl_rule slot_rule(__u32 slot, struct tw_sysctl_key *key, int nlen, int nseps)
{
	const struct tw_sysctl_rule *r;
	int i;

	key->slot = slot;
	r = bpf_map_lookup_elem(&tw_sc_exact, key);
	if (r)
		return *r;
	for (i = 0; i < TW_SC_MAX_PATTERNS; i++) {
		__u32 idx = slot * TW_SC_MAX_PATTERNS + i;
		const struct tw_sysctl_pattern *p = bpf_map_lookup_elem(&tw_sc_patterns, &idx);

		if (!p || p->kind == TW_SC_PAT_NONE)
			break;
		if (pattern_matches(p, key->name, nlen, nseps))
			return p->rule;
	}
	return tw_sc_cfg.defaults[slot & 1];
}

static __always_inline int deny(struct bpf_sysctl *ctx, const struct tw_sysctl_key *key, const struct written *w, int write, int reason, int slot)
{
	__u32 stat = write ? TW_SC_STAT_WRITE_DENIED : TW_SC_STAT_READ_DENIED;
	struct tw_sysctl_event *e;
	__u64 *n;

	n = bpf_map_lookup_elem(&tw_sc_stats, &stat);
	if (n)
		*n += 1;
	if (!(tw_sc_cfg.flags & TW_SC_F_EVENTS))
		return TW_DENY;
	e = bpf_ringbuf_reserve(&tw_sc_events, sizeof(*e), 0);
	if (!e) {
		stat = TW_SC_STAT_EVENTS_LOST;
		n = bpf_map_lookup_elem(&tw_sc_stats, &stat);
		if (n)
			*n += 1;
		return TW_DENY;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->write = write;
	e->reason = reason;
	e->slot = slot;
	e->pad = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	__builtin_memcpy(e->name, key->name, sizeof(e->name));
	e->name[TW_SC_NAME_MAX - 1] = 0;
	__builtin_memcpy(e->value, w->val, sizeof(e->value));
	e->value[TW_SC_VALUE_MAX - 1] = 0;
	bpf_ringbuf_submit(e, 0);
	return TW_DENY;
}

SEC("cgroup/sysctl")
int tw_sc_check(struct bpf_sysctl *ctx)
{
	struct tw_sysctl_key key = {};
	struct written w = {};
	int write = ctx->write;
	int nlen, nseps = 0, i;
	__u32 slot;

	nlen = bpf_sysctl_get_name(ctx, key.name, sizeof(key.name), 0);
	if (write)
		read_written(ctx, &w);
	if (nlen < 0 || nlen >= TW_SC_NAME_MAX)
		return deny(ctx, &key, &w, write, TW_SC_DENY_OVERLONG, 0);

	if (write && (tw_sc_cfg.flags & TW_SC_F_BUNDLE)) {
		const struct tw_sysctl_rule *r;

		key.slot = TW_SC_SLOT_BUNDLE;
		r = bpf_map_lookup_elem(&tw_sc_exact, &key);
		if (r && write_allowed(r, &w))
			return TW_ALLOW;
	}

	for (i = 0; i < TW_SC_NAME_MAX; i++) {
		if (i >= nlen)
			break;
		if (key.name[i] == '/')
			nseps++;
	}

	for (slot = 0; slot < TW_SC_SLOTS; slot++) {
		struct tw_sysctl_rule r;

		if (slot >= tw_sc_cfg.nslots)
			break;
		r = slot_rule(slot, &key, nlen, nseps);
		if (!write) {
			if (!r.read)
				return deny(ctx, &key, &w, write, TW_SC_DENY_POLICY, slot);
		} else if (r.write == TW_SC_WRITE_DENY) {
			return deny(ctx, &key, &w, write, TW_SC_DENY_POLICY, slot);
		} else if (!write_allowed(&r, &w)) {
			return deny(ctx, &key, &w, write, TW_SC_DENY_VALUE, slot);
		}
	}
	return TW_ALLOW;
}
