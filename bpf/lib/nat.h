/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * nat.h - NAT and full-NAT mechanics: the state keyed by the reply direction,
 * its timeouts, full-NAT source-port candidates, and the rewrite of a TCP or
 * UDP packet's addresses and ports with its checksums. What to do with a
 * packet (counters, verdicts) is policy and lives in xlb.bpf.c.
 *
 *   nat        LRU_HASH, struct xlb_flow_key (the reply direction) -> struct xlb_nat,
 *              XLB_NAT_SIZE_DEFAULT entries (layouts and the key's meaning: xlb_abi.h)
 *   nat_ports  ARRAY, XLB_NAT_PORT_WORDS x __u64: the bitmap of reply source ports
 *
 * One LRU list for the whole map (no BPF_F_NO_COMMON_LRU, unlike conntrack):
 * a reply may be handled on another CPU than its flow's forward packets, and
 * entries are created on whatever CPU receives the clients; per-CPU lists
 * would cap each CPU at max_entries / CPUs. Entries are written only when a
 * flow starts (or its state was lost), so the shared list's lock is not on
 * the per-packet path.
 *
 * Time: bpf_ktime_get_coarse_ns() (CLOCK_MONOTONIC at tick resolution): a
 * timestamp is refreshed only when it moved by >= 1 s, so a tick is plenty.
 * An entry is live while now - last <= its timeout; the age is signed, so an
 * entry just refreshed by another CPU (last a little after our now) is live.
 * An expired entry is never deleted here: it is treated as absent, may be
 * taken over, and the LRU evicts it when room is needed.
 */
#ifndef XLB_NAT_H
#define XLB_NAT_H

#include <linux/bpf.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "xlb_abi.h"
#include "lib/csum.h"
#include "lib/parse.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XLB_NAT_SIZE_DEFAULT);
	__type(key, struct xlb_flow_key);
	__type(value, struct xlb_nat);
} nat SEC(".maps");

/* The source ports NAT replies come from (xlb_abi.h); the control plane keeps it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XLB_NAT_PORT_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} nat_ports SEC(".maps");

/* May a packet from this source port (network order) be a NAT reply? One
 * array lookup (inlined by the verifier) and a bit test: what traffic that is
 * not ours pays instead of a hash lookup of the NAT state. */
static __always_inline int xlb_nat_port_used(__be16 sport)
{
	__u16 port = bpf_ntohs(sport);
	__u32 word = port >> 6;
	__u64 *bits = bpf_map_lookup_elem(&nat_ports, &word);

	return bits && (*bits >> (port & 63)) & 1;
}

#define XLB_NS_PER_SEC 1000000000ULL

/* The timeout of an entry, in ns: UDP, TCP, or TCP after FIN/RST. */
static __always_inline __s64 xlb_nat_timeout(const struct xlb_config *cfg, __u8 proto, __u16 flags)
{
	__u32 s;

	if (proto == IPPROTO_UDP)
		s = cfg->nat_udp_timeout;
	else if (flags & XLB_NAT_F_CLOSING)
		s = cfg->nat_tcp_fin_timeout;
	else
		s = cfg->nat_tcp_timeout;
	return (__s64)s * XLB_NS_PER_SEC;
}

static __always_inline int xlb_nat_live(const struct xlb_nat *n, const struct xlb_config *cfg, __u8 proto, __u64 now)
{
	return (__s64)(now - n->last) <= xlb_nat_timeout(cfg, proto, n->flags);
}

/*
 * A packet of a live entry's flow (either way): a first FIN or RST moves it to
 * the short timeout, counted from now; otherwise the timestamp moves only when
 * it is >= 1 s old (one store a second, not one a packet).
 */
static __always_inline void xlb_nat_touch(struct xlb_nat *n, int closing, __u64 now)
{
	if (closing && !(n->flags & XLB_NAT_F_CLOSING)) {
		n->flags |= XLB_NAT_F_CLOSING;
		n->last = now;
	} else if ((__s64)(now - n->last) >= (__s64)XLB_NS_PER_SEC) {
		n->last = now;
	}
}

/* Two 16-byte ABI addresses are equal (2-byte alignment suffices). */
static __always_inline int xlb_addr_eq(const void *a, const void *b)
{
	const __u16 *x = a, *y = b;
	__u16 d = 0;

#pragma unroll
	for (int i = 0; i < 8; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

static __always_inline int xlb_addr_is_zero(const void *a)
{
	const __u16 *x = a;
	__u16 d = 0;

#pragma unroll
	for (int i = 0; i < 8; i++)
		d |= x[i];
	return d == 0;
}

/* The entry belongs to this forward flow (client -> VIP). */
static __always_inline int xlb_nat_is_flow(const struct xlb_nat *n, const struct xlb_flow_key *fwd)
{
	return n->cport == fwd->sport && n->vport == fwd->dport &&
	       xlb_addr_eq(n->caddr, fwd->saddr) && xlb_addr_eq(n->vaddr, fwd->daddr);
}

/*
 * The entry of forward flow fwd, whose frame is eth (its MACs are where replies
 * go back: dmac := its source, smac := its destination) and came in on
 * ifindex. Built once per packet; the caller writes it with
 * bpf_map_update_elem under whatever reply key it settles on.
 */
static __always_inline void xlb_nat_entry(struct xlb_nat *v, const struct xlb_flow_key *fwd, const struct ethhdr *eth,
					  __u32 ifindex, __u16 flags, __u64 now)
{
	v->last = now;
	__builtin_memcpy(v->vaddr, fwd->daddr, 16);
	__builtin_memcpy(v->caddr, fwd->saddr, 16);
	v->vport = fwd->dport;
	v->cport = fwd->sport;
	__builtin_memcpy(v->dmac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(v->smac, eth->h_dest, ETH_ALEN);
	v->ifindex = ifindex;
	v->flags = flags;
	v->pad[0] = 0;
	v->pad[1] = 0;
}

/*
 * Candidate i (0 .. XLB_NAT_PORT_TRIES-1) for a full-NAT source port, from the
 * forward flow's 5-tuple hash: spread over [XLB_NAT_PORT_MIN, XLB_NAT_PORT_MAX]
 * by a multiplicative mix, so probes do not cluster as linear probing would.
 * Host order.
 */
static __always_inline __u16 xlb_nat_port_candidate(__u32 hash, __u32 i)
{
	__u32 x = hash + i * 0x9e3779b9U;

	x ^= x >> 16;
	x *= 0x85ebca6bU;
	x ^= x >> 13;
	return XLB_NAT_PORT_MIN + x % (XLB_NAT_PORT_MAX - XLB_NAT_PORT_MIN + 1);
}

/*
 * xlb_nat_rewrite - set the source and destination address and port of a TCP
 * or UDP packet, with the IPv4 header checksum and the transport checksum
 * (its pseudo-header) updated incrementally; TTL and everything else stay.
 *
 * l3 is the IPv4 (v6 = 0) or IPv6 header, l4 the transport header, both
 * checked by the parser (the TCP header's 20 bytes, UDP's 8); saddr and daddr
 * are 16-byte ABI addresses (IPv4 in the first 4 bytes) that must not point
 * into the packet, ports are in network order. Passing a side's current
 * address and port leaves it as it is (a zero change). Returns 0, or -1 if a
 * header is not within the packet (for the verifier: the parser checked it;
 * nothing is written then).
 */
static __always_inline int xlb_nat_rewrite(void *l3, void *l4, void *end, int v6, __u8 proto,
					   const __u8 *saddr, __be16 sport, const __u8 *daddr, __be16 dport)
{
	struct xlb_ports *ports = l4;
	__u16 *check;
	__u32 diff;

	if (proto == IPPROTO_TCP) {
		if (l4 + 20 > end)
			return -1;
		check = l4 + 16;
	} else {
		if (l4 + 8 > end)
			return -1;
		check = l4 + 6;
	}
	if (v6) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > end)
			return -1;
		diff = xlb_csum_replace_addr(0, &ip6->saddr, saddr, 1);
		diff = xlb_csum_replace_addr(diff, &ip6->daddr, daddr, 1);
	} else {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > end)
			return -1;
		diff = xlb_csum_replace_addr(0, &ip->saddr, saddr, 0);
		diff = xlb_csum_replace_addr(diff, &ip->daddr, daddr, 0);
		ip->check = xlb_csum_update(ip->check, diff);
	}
	/* the transport checksum: the pseudo-header's addresses and the ports */
	diff = xlb_csum_diff16(diff, ports->src, sport);
	diff = xlb_csum_diff16(diff, ports->dst, dport);
	ports->src = sport;
	ports->dst = dport;
	*check = proto == IPPROTO_TCP ? xlb_csum_update(*check, diff) : xlb_csum_update_udp(*check, diff);
	return 0;
}

/*
 * xlb_nat_icmp_rewrite - translate an ICMP or ICMPv6 error about a TCP/UDP
 * flow: the outer source and destination, and the quoted packet's addresses
 * and ports, with every checksum that covers them updated incrementally:
 *   the quoted transport checksum (pseudo-header and ports), when the quote
 *     holds it (TCP: 18 bytes; RFC 792 only promises 8); UDP 0 stays 0;
 *   the quoted IPv4 header checksum;
 *   the outer IPv4 header checksum;
 *   the ICMP checksum: every changed word of the quote (ICMPv6: and of the
 *     outer addresses, its pseudo-header). The quote starts 8 bytes into the
 *     ICMP message and IP headers are multiples of 4 bytes, so each changed
 *     field is aligned on the checksum's 16-bit words.
 * l3: the outer IPv4/IPv6 header; icmp: the ICMP header (8 bytes); q: what
 * the parser found (q->ip's fixed header and q->l4's 8 bytes in the packet).
 * New addresses (16-byte ABI form; an IPv4 one needs only its 4 bytes) and
 * ports (network order): outer osaddr, odaddr; quoted qsaddr:qsport,
 * qdaddr:qdport. An address may point at the very field it replaces (no
 * change): each word is read just before it is written.
 * Returns 0, or -1 when a header is not within the packet (the parser
 * checked them; checked again for the verifier; nothing written then).
 */
static __always_inline int xlb_nat_icmp_rewrite(void *l3, void *icmp, const struct xlb_quoted *q, void *end, int v6,
						const __u8 *osaddr, const __u8 *odaddr,
						const __u8 *qsaddr, __be16 qsport, const __u8 *qdaddr, __be16 qdport)
{
	struct xlb_ports *ports = q->l4;
	__u16 *qcheck = NULL, *icheck = icmp + 2;
	__u32 dq, dicmp, dout;
	__u16 old;

	if (icmp + 8 > end || q->l4 + 8 > end)
		return -1;
	if (q->proto == IPPROTO_TCP) {
		if (q->l4 + 18 <= end)
			qcheck = q->l4 + 16;
	} else {
		qcheck = q->l4 + 6;
	}
	if (v6) {
		struct ipv6hdr *ip6 = l3, *qip6 = q->ip;

		if ((void *)(ip6 + 1) > end || (void *)(qip6 + 1) > end)
			return -1;
		dq = xlb_csum_replace_addr(0, &qip6->saddr, qsaddr, 1);
		dq = xlb_csum_replace_addr(dq, &qip6->daddr, qdaddr, 1);
		dout = xlb_csum_replace_addr(0, &ip6->saddr, osaddr, 1);
		dout = xlb_csum_replace_addr(dout, &ip6->daddr, odaddr, 1);
		dicmp = dout; /* the ICMPv6 pseudo-header */
	} else {
		struct iphdr *ip = l3, *qip = q->ip;

		if ((void *)(ip + 1) > end || (void *)(qip + 1) > end)
			return -1;
		dq = xlb_csum_replace_addr(0, &qip->saddr, qsaddr, 0);
		dq = xlb_csum_replace_addr(dq, &qip->daddr, qdaddr, 0);
		old = qip->check;
		qip->check = xlb_csum_update(old, dq);
		dicmp = xlb_csum_diff16(0, old, qip->check);
		dout = xlb_csum_replace_addr(0, &ip->saddr, osaddr, 0);
		dout = xlb_csum_replace_addr(dout, &ip->daddr, odaddr, 0);
		ip->check = xlb_csum_update(ip->check, dout);
	}
	/* dq: the quoted addresses and ports, all part of the ICMP message too */
	dq = xlb_csum_replace16(dq, &ports->src, qsport);
	dq = xlb_csum_replace16(dq, &ports->dst, qdport);
	dicmp += dq;
	if (qcheck) {
		old = *qcheck;
		*qcheck = q->proto == IPPROTO_TCP ? xlb_csum_update(old, dq) : xlb_csum_update_udp(old, dq);
		dicmp = xlb_csum_diff16(dicmp, old, *qcheck);
	}
	*icheck = xlb_csum_update(*icheck, dicmp);
	return 0;
}

#endif /* XLB_NAT_H */
