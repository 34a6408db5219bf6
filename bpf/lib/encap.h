/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * encap.h - rewriting a frame toward a real: Ethernet addresses (DR) and
 * IP-in-IP encapsulation (TUN: IPv4-in-IPv4, RFC 2003; IPv6-in-IPv6, RFC 2473).
 *
 * The encapsulation keeps the Ethernet header and its 802.1Q tag, if any, in
 * front and inserts the outer IP header between them and the packet:
 *
 *   before:  [dst src (tag) type][inner IP ...]
 *   after:   [dmac smac (tag) type][outer IP][inner IP ...]
 *
 * The outer header is of the inner packet's family (the caller checks that
 * the real's family is the same), so the EtherType does not change.
 */
#ifndef XLB_ENCAP_H
#define XLB_ENCAP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xlb_abi.h"
#include "lib/csum.h"
#include "lib/parse.h"

#define XLB_TUN_TTL_DEFAULT 64

/* struct xlb_real keeps dmac and smac next to each other, in the order of an
 * Ethernet header, so one 12-byte copy writes both. */
_Static_assert(__builtin_offsetof(struct xlb_real, smac) == __builtin_offsetof(struct xlb_real, dmac) + 6,
	       "xlb_real: smac must follow dmac");

/* DR: Ethernet destination = the real's dmac, source = its smac. The caller
 * has checked the 14 bytes of the Ethernet header. */
static __always_inline void xlb_set_macs(void *eth, const struct xlb_real *real)
{
	__builtin_memcpy(eth, real->dmac, 2 * ETH_ALEN);
}

/* base with its low `bits` bits (0..32) replaced by the low bits of hash;
 * host order in and out. */
static __always_inline __u32 xlb_spread(__u32 base, __u32 bits, __u32 hash)
{
	__u32 mask;

	if (bits == 0)
		return base;
	mask = bits >= 32 ? 0xffffffffU : (1U << bits) - 1;
	return (base & ~mask) | (hash & mask);
}

/*
 * Make room for an outer header of `outer` bytes in front of the IP packet
 * that starts at l2len (14, or 18 with a tag), and move the Ethernet header:
 * the new frame starts with the real's dmac and smac, then the old tag (if
 * any) and EtherType. Returns a pointer to where the outer header goes, or
 * NULL if the headroom cannot be grown (frame unchanged) or, after the frame
 * has grown, if it is too short (the caller has checked the headers, so this
 * only happens on adjust_head failure; the checks are for the verifier).
 *
 * The tag/type copy is always the 6 bytes at old offset 12..18: without a tag
 * the last 4 of them are the start of the inner IP header, copied into where
 * the outer header goes and then overwritten by it. No branch on the tag.
 */
static __always_inline void *xlb_push_outer(struct xdp_md *ctx, __u32 l2len, const int outer,
					    const struct xlb_real *real)
{
	void *data, *end;

	if (bpf_xdp_adjust_head(ctx, -outer))
		return NULL;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	/* l2len is 14 or 18: bound it for the verifier */
	if (l2len > sizeof(struct ethhdr) + sizeof(struct xlb_vlan_hdr))
		return NULL;
	if (data + outer + l2len + outer > end) /* new L2, outer header, inner header's first bytes */
		return NULL;
	__builtin_memcpy(data, real->dmac, 2 * ETH_ALEN);
	__builtin_memcpy(data + 2 * ETH_ALEN, data + outer + 2 * ETH_ALEN, 6);
	return data + l2len;
}

/*
 * xlb_encap4 - IPv4-in-IPv4 toward real->addr.
 *
 * ip4 is the inner IPv4 header (checked by the parser), at offset l2len.
 * Outer header: version 4, ihl 5, tos = inner tos, tot_len = inner tot_len +
 * 20, id 0, DF copied from the inner header (no other flag, offset 0), ttl =
 * cfg->tun_ttl (64 if 0), protocol 4, source = cfg->tun_src4 with its low
 * cfg->tun_src4_bits bits replaced by the low bits of hash (so that receivers'
 * RSS spreads flows over queues), destination = the real, header checksum.
 * Then the Ethernet addresses of the real.
 * Returns 0, or -1 when the inner tot_len leaves no room for 20 more bytes or
 * xlb_push_outer fails. The frame may have grown by then, so on -1 the caller
 * drops the packet, whatever the frame holds.
 */
static __always_inline int xlb_encap4(struct xdp_md *ctx, struct iphdr *ip4, __u32 l2len,
				      const struct xlb_real *real, const struct xlb_config *cfg, __u32 hash)
{
	__u8 tos = ip4->tos;
	__u16 tot_len = bpf_ntohs(ip4->tot_len);
	__be16 df = ip4->frag_off & bpf_htons(XLB_IP_DF);
	__u32 src;
	struct iphdr *o;

	if (tot_len > 0xffff - sizeof(struct iphdr))
		return -1;
	__builtin_memcpy(&src, cfg->tun_src4, 4);
	src = bpf_htonl(xlb_spread(bpf_ntohl(src), cfg->tun_src4_bits, hash));

	o = xlb_push_outer(ctx, l2len, sizeof(struct iphdr), real);
	if (!o)
		return -1;
	*(__u8 *)o = 0x45;              /* version 4, ihl 5 */
	o->tos = tos;
	o->tot_len = bpf_htons(tot_len + sizeof(struct iphdr));
	o->id = 0;
	o->frag_off = df;
	o->ttl = cfg->tun_ttl ? cfg->tun_ttl : XLB_TUN_TTL_DEFAULT;
	o->protocol = IPPROTO_IPIP;
	o->saddr = src;
	__builtin_memcpy(&o->daddr, real->addr, 4);
	xlb_ipv4_csum_set(o);
	return 0;
}

/*
 * xlb_encap6 - IPv6-in-IPv6 toward real->addr.
 *
 * ip6 is the inner IPv6 header (checked by the parser), at offset l2len.
 * Outer header: version 6, traffic class and flow label of the inner header
 * (its first 4 bytes), payload_len = inner payload_len + 40, next header 41,
 * hop limit = cfg->tun_ttl (64 if 0), source = cfg->tun_src6 with the low
 * cfg->tun_src6_bits bits (0..32, within its last 4 bytes) replaced by the low
 * bits of hash, destination = the real. Then the Ethernet addresses of the real.
 * Returns 0, or -1 when the inner payload_len leaves no room for 40 more
 * bytes or xlb_push_outer fails. As with xlb_encap4, the frame may have grown
 * by then: on -1 the caller drops the packet.
 */
static __always_inline int xlb_encap6(struct xdp_md *ctx, struct ipv6hdr *ip6, __u32 l2len,
				      const struct xlb_real *real, const struct xlb_config *cfg, __u32 hash)
{
	__u32 first = *(__u32 *)ip6;    /* version, traffic class, flow label */
	__u16 plen = bpf_ntohs(ip6->payload_len);
	__u32 low;
	struct ipv6hdr *o;

	if (plen > 0xffff - sizeof(struct ipv6hdr))
		return -1;
	__builtin_memcpy(&low, &cfg->tun_src6[12], 4);
	low = bpf_htonl(xlb_spread(bpf_ntohl(low), cfg->tun_src6_bits, hash));

	o = xlb_push_outer(ctx, l2len, sizeof(struct ipv6hdr), real);
	if (!o)
		return -1;
	*(__u32 *)o = first;
	o->payload_len = bpf_htons(plen + sizeof(struct ipv6hdr));
	o->nexthdr = IPPROTO_IPV6;
	o->hop_limit = cfg->tun_ttl ? cfg->tun_ttl : XLB_TUN_TTL_DEFAULT;
	__builtin_memcpy(&o->saddr, cfg->tun_src6, 12);
	__builtin_memcpy((__u8 *)&o->saddr + 12, &low, 4);
	__builtin_memcpy(&o->daddr, real->addr, 16);
	return 0;
}

#endif /* XLB_ENCAP_H */
