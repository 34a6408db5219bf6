/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ct.h - the connection table: which real a flow was scheduled to.
 *
 *   conntrack4 LRU_HASH, BPF_F_NO_COMMON_LRU (per-CPU LRU lists),
 *              struct xlb_flow_key4 -> struct xlb_flow, XLB_CT_SIZE_DEFAULT entries (IPv4)
 *   conntrack  the same, struct xlb_flow_key -> struct xlb_flow (IPv6)
 *
 * The key is the forward-direction flow {client address, VIP, client port,
 * VIP port, protocol, family}, the padding zero; IPv4 flows are kept in their
 * own map under the compact 16-byte key (no family: the map says it), which
 * the kernel hashes in one jhash round instead of three and compares in two
 * words instead of five (established DR over IPv4 ~2 ns faster: the figures
 * are in the header of xlb.bpf.c). Each table holds up to the configured size
 * (ForwarderOptions.ctSize). The value is the real, the
 * service, and for full-NAT the source port chosen for the flow (lib/nat.h). Entries are never deleted by
 * the program: the LRU evicts the least recently used ones when the table is
 * full, and an entry whose real is no longer active is rewritten (CT_STALE).
 * Per-CPU LRU lists scale without a shared lock; a flow whose packets arrive
 * on several CPUs (no RSS affinity) may be evicted a little earlier, which
 * only costs a reschedule to the same real while the Maglev table is unchanged.
 */
#ifndef XLB_CT_H
#define XLB_CT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xlb_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(max_entries, XLB_CT_SIZE_DEFAULT);
	__type(key, struct xlb_flow_key4);
	__type(value, struct xlb_flow);
} conntrack4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(max_entries, XLB_CT_SIZE_DEFAULT);
	__type(key, struct xlb_flow_key);
	__type(value, struct xlb_flow);
} conntrack SEC(".maps");

/* The compact key of an IPv4 flow. */
static __always_inline void xlb_ct_key4(struct xlb_flow_key4 *k4, const struct xlb_flow_key *key)
{
	__builtin_memcpy(k4->saddr, key->saddr, 4);
	__builtin_memcpy(k4->daddr, key->daddr, 4);
	__builtin_memcpy(&k4->sport, &key->sport, 4); /* sport and dport */
	k4->proto = key->proto;
	k4->pad[0] = 0;
	k4->pad[1] = 0;
	k4->pad[2] = 0;
}

/* The entry of a flow, or NULL. A hit marks the entry as recently used.
 * The two lookups must stay two calls: clang would otherwise merge them into
 * one call whose map is chosen at run time, which the verifier cannot inline
 * (a generic helper call: +10 ns per packet, measured). The empty asm
 * statements differ, so neither call can be sunk into a common one. */
static __always_inline struct xlb_flow *xlb_ct_lookup(const struct xlb_flow_key *key)
{
	struct xlb_flow *f;

	if (key->family == XLB_AF_INET) {
		struct xlb_flow_key4 k4;

		xlb_ct_key4(&k4, key);
		f = bpf_map_lookup_elem(&conntrack4, &k4);
		asm volatile("/* conntrack4 */" : "+r"(f));
		return f;
	}
	f = bpf_map_lookup_elem(&conntrack, key);
	asm volatile("/* conntrack */" : "+r"(f));
	return f;
}

/* Create or overwrite the entry of a flow (nat_port: full-NAT's source port,
 * network order, else 0). A failure (only -ENOMEM when
 * every LRU list is busy) is ignored: the next packet is scheduled again and,
 * while the table is unchanged, lands on the same real. */
static __always_inline void xlb_ct_store(const struct xlb_flow_key *key, __u32 real_id, __u32 service_id,
					 __u16 nat_port)
{
	struct xlb_flow v = { .real_id = real_id, .service_id = service_id, .nat_port = nat_port };

	long err;

	/* two calls, as in xlb_ct_lookup: each a direct call to its map's update */
	if (key->family == XLB_AF_INET) {
		struct xlb_flow_key4 k4;

		xlb_ct_key4(&k4, key);
		err = bpf_map_update_elem(&conntrack4, &k4, &v, BPF_ANY);
		asm volatile("/* conntrack4 */" : "+r"(err));
		return;
	}
	err = bpf_map_update_elem(&conntrack, key, &v, BPF_ANY);
	asm volatile("/* conntrack */" : "+r"(err));
}

#endif /* XLB_CT_H */
