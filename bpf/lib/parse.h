/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * parse.h - cursor-based, bounds-checked packet parsing for XDP.
 *
 * A struct xlb_cursor holds the current read position and the end of the
 * packet. Every parser:
 *   - checks that the whole header it reads lies before the end BEFORE it reads
 *     a byte of it (the verifier demands it, and so does rule 4 of the design);
 *   - returns XLB_P_OK and advances the cursor past what it consumed, or
 *     returns a negative code and leaves the cursor where it was:
 *       XLB_P_TRUNC  a header ends beyond the packet     (DROP_TRUNCATED)
 *       XLB_P_BAD    a field makes the header invalid     (DROP_MALFORMED)
 *   - never writes to the packet.
 * What the caller does with a failure (drop, or pass because the packet is
 * not ours) is policy and lives in xlb.bpf.c, not here.
 */
#ifndef XLB_PARSE_H
#define XLB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmpv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Not <linux/icmp.h>: it includes <linux/if.h> and so libc's <sys/socket.h>, which a BPF build
 * can only compile with the 32-bit libc headers installed. The header size and the two types
 * the parser looks at are all it needs. */
struct xlb_icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 rest;
};
#define XLB_ICMP_DEST_UNREACH  3
#define XLB_ICMP_TIME_EXCEEDED 11

#define XLB_P_OK     0
#define XLB_P_TRUNC  (-1)
#define XLB_P_BAD    (-2)

/* At most this many IPv6 extension headers are walked (RFC 8200 order is not
 * enforced; the limit keeps the program bounded). */
#define XLB_IPV6_MAX_EXT 4

#define XLB_ETH_P_8021Q 0x8100

/* IPv4 frag_off: MF flag and the 13-bit offset; DF. */
#define XLB_IP_MF      0x2000
#define XLB_IP_DF      0x4000
#define XLB_IP_OFFMASK 0x1fff

struct xlb_cursor {
	void *pos;
	void *end;
};

struct xlb_vlan_hdr {
	__be16 tci;
	__be16 proto;   /* EtherType of what follows the tag */
};

/* IPv6 fragment header (RFC 8200 4.5); not in the uapi headers. */
struct xlb_ipv6_frag_hdr {
	__u8   nexthdr;
	__u8   reserved;
	__be16 frag_off;  /* offset (13 bits, in 8-octet units) << 3 | res (2) | M (1) */
	__be32 id;
};
#define XLB_IP6_OFFMASK 0xfff8

/* The first four bytes of TCP and UDP headers. */
struct xlb_ports {
	__be16 src;
	__be16 dst;
};

/*
 * xlb_parse_eth - Ethernet header with at most one 802.1Q tag.
 *
 * Accepts: a 14-byte Ethernet header; if its EtherType is 0x8100, a 4-byte
 * tag after it (the tag stays in the frame; it is not removed). A second tag
 * (or 802.1ad 0x88a8) is not followed: its EtherType is returned as is, which
 * the caller treats as "not IP".
 * Returns XLB_P_OK with *proto = the EtherType of the payload (network order)
 * and the cursor at the payload; XLB_P_TRUNC if the frame ends inside the
 * Ethernet header or the tag.
 */
static __always_inline int xlb_parse_eth(struct xlb_cursor *c, __be16 *proto)
{
	struct ethhdr *eth = c->pos;
	struct xlb_vlan_hdr *vlan;
	__be16 type;

	if ((void *)(eth + 1) > c->end)
		return XLB_P_TRUNC;
	type = eth->h_proto;
	if (type == bpf_htons(XLB_ETH_P_8021Q)) {
		vlan = (void *)(eth + 1);
		if ((void *)(vlan + 1) > c->end)
			return XLB_P_TRUNC;
		*proto = vlan->proto;
		c->pos = vlan + 1;
		return XLB_P_OK;
	}
	*proto = type;
	c->pos = eth + 1;
	return XLB_P_OK;
}

/*
 * xlb_parse_ipv4 - IPv4 header with options.
 *
 * Checks, in this order: 20 bytes present (XLB_P_TRUNC); version 4 and
 * ihl >= 5 (XLB_P_BAD); ihl * 4 bytes present (XLB_P_TRUNC). The header
 * checksum, total length and options are not checked (the packet is forwarded
 * unchanged; a receiver checks them).
 * Returns XLB_P_OK with *iph = the header and the cursor after the options.
 */
static __always_inline int xlb_parse_ipv4(struct xlb_cursor *c, struct iphdr **iph)
{
	struct iphdr *ip = c->pos;
	__u32 hlen;

	if ((void *)(ip + 1) > c->end)
		return XLB_P_TRUNC;
	if (ip->version != 4 || ip->ihl < 5)
		return XLB_P_BAD;
	hlen = ip->ihl * 4;
	if (c->pos + hlen > c->end)
		return XLB_P_TRUNC;
	*iph = ip;
	c->pos += hlen;
	return XLB_P_OK;
}

/* The fragment bits of an IPv4 header: non-zero for any fragment (MF set or
 * offset != 0); an unfragmented packet with DF gives 0. */
static __always_inline int xlb_ipv4_is_fragment(const struct iphdr *ip)
{
	return (ip->frag_off & bpf_htons(XLB_IP_MF | XLB_IP_OFFMASK)) != 0;
}

/* Only the offset: non-zero for fragments after the first (no L4 header). */
static __always_inline int xlb_ipv4_is_later_fragment(const struct iphdr *ip)
{
	return (ip->frag_off & bpf_htons(XLB_IP_OFFMASK)) != 0;
}

/* IPv6 fragment state reported by xlb_ipv6_skip_ext. */
#define XLB_FRAG_NONE  0
#define XLB_FRAG_FIRST 1   /* fragment header with offset 0: headers follow */
#define XLB_FRAG_LATER 2   /* offset != 0: only payload follows */

/*
 * xlb_ipv6_skip_ext - walk IPv6 extension headers.
 *
 * On entry *nexthdr is the Next Header of the IPv6 header and the cursor is
 * right after that header. Walks at most XLB_IPV6_MAX_EXT headers of the types
 * hop-by-hop (0), routing (43) and destination options (60) (length
 * (hdrlen + 1) * 8) and fragment (44, 8 bytes); each must lie completely in
 * the packet (else XLB_P_TRUNC). A fragment header sets *frag; if its offset
 * is not 0 the walk stops after it, because what follows is the middle of the
 * original payload, not headers.
 * Any other Next Header (TCP, UDP, ICMPv6, ESP, no-next-header, ...) ends the
 * walk; so does the limit, in which case *nexthdr is still an extension header
 * type and the caller sees a protocol no service balances.
 * Returns XLB_P_OK with *nexthdr = the protocol of what follows and the cursor
 * at it.
 */
static __always_inline int xlb_ipv6_skip_ext(struct xlb_cursor *c, __u8 *nexthdr, __u8 *frag)
{
	void *pos = c->pos;
	__u8 nh = *nexthdr;
	__u8 fr = XLB_FRAG_NONE;

#pragma unroll
	for (int i = 0; i < XLB_IPV6_MAX_EXT; i++) {
		if (nh == IPPROTO_FRAGMENT) {
			struct xlb_ipv6_frag_hdr *fh = pos;

			if ((void *)(fh + 1) > c->end)
				return XLB_P_TRUNC;
			nh = fh->nexthdr;
			pos = fh + 1;
			if (fh->frag_off & bpf_htons(XLB_IP6_OFFMASK)) {
				fr = XLB_FRAG_LATER;
				break;
			}
			fr = XLB_FRAG_FIRST;
		} else if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS) {
			struct ipv6_opt_hdr *oh = pos;
			__u32 len;

			if ((void *)(oh + 1) > c->end)
				return XLB_P_TRUNC;
			len = ((__u32)oh->hdrlen + 1) * 8;
			if (pos + len > c->end)
				return XLB_P_TRUNC;
			nh = oh->nexthdr;
			pos += len;
		} else {
			break;
		}
	}
	c->pos = pos;
	*nexthdr = nh;
	*frag = fr;
	return XLB_P_OK;
}

/*
 * xlb_parse_ipv6 - IPv6 header and its extension headers.
 *
 * Checks: 40 bytes present (XLB_P_TRUNC); version 6 (XLB_P_BAD); then the
 * extension headers as xlb_ipv6_skip_ext describes. The payload length is not
 * checked.
 * Returns XLB_P_OK with *ip6h = the header, *nexthdr = the upper-layer
 * protocol, *frag = XLB_FRAG_*, the cursor at the upper-layer header.
 */
static __always_inline int xlb_parse_ipv6(struct xlb_cursor *c, struct ipv6hdr **ip6h,
					  __u8 *nexthdr, __u8 *frag)
{
	struct ipv6hdr *ip6 = c->pos;
	struct xlb_cursor sub;
	int rc;

	if ((void *)(ip6 + 1) > c->end)
		return XLB_P_TRUNC;
	if (ip6->version != 6)
		return XLB_P_BAD;
	sub.pos = ip6 + 1;
	sub.end = c->end;
	*nexthdr = ip6->nexthdr;
	rc = xlb_ipv6_skip_ext(&sub, nexthdr, frag);
	if (rc)
		return rc;
	*ip6h = ip6;
	c->pos = sub.pos;
	return XLB_P_OK;
}

/*
 * xlb_parse_ports - the source and destination ports of TCP or UDP.
 *
 * Needs the first 4 bytes of the transport header (XLB_P_TRUNC otherwise);
 * does not check the rest of the header (see xlb_check_tcp/xlb_check_udp).
 * The cursor does not move.
 */
static __always_inline int xlb_parse_ports(const struct xlb_cursor *c, __be16 *sport, __be16 *dport)
{
	struct xlb_ports *p = c->pos;

	if ((void *)(p + 1) > c->end)
		return XLB_P_TRUNC;
	*sport = p->src;
	*dport = p->dst;
	return XLB_P_OK;
}

/* TCP flags: byte 13 of the header (RFC 9293) */
#define XLB_TCP_FIN 0x01
#define XLB_TCP_SYN 0x02
#define XLB_TCP_RST 0x04
#define XLB_TCP_ACK 0x10

/*
 * xlb_check_tcp - a TCP header that can be balanced (or translated).
 *
 * Needs the fixed 20-byte header (XLB_P_TRUNC), data offset >= 5 (XLB_P_BAD).
 * Options are not parsed and need not be present in full.
 * Returns XLB_P_OK with *flags = the flags byte (XLB_TCP_*).
 */
static __always_inline int xlb_check_tcp(const struct xlb_cursor *c, __u8 *flags)
{
	struct tcphdr *th = c->pos;

	if ((void *)(th + 1) > c->end)
		return XLB_P_TRUNC;
	if (th->doff < 5)
		return XLB_P_BAD;
	*flags = ((__u8 *)th)[13];
	return XLB_P_OK;
}

/* SYN without ACK: a new connection. */
static __always_inline int xlb_tcp_syn_only(__u8 flags)
{
	return (flags & (XLB_TCP_SYN | XLB_TCP_ACK)) == XLB_TCP_SYN;
}

/*
 * xlb_check_udp - a UDP header: the 8 bytes must be present (XLB_P_TRUNC).
 * Length and checksum are not checked.
 */
static __always_inline int xlb_check_udp(const struct xlb_cursor *c)
{
	struct udphdr *uh = c->pos;

	if ((void *)(uh + 1) > c->end)
		return XLB_P_TRUNC;
	return XLB_P_OK;
}

/*
 * The packet quoted by an ICMP error: what a VIP sent to a client (or, for
 * NAT, what a real was sent). Addresses in the 16-byte form of xlb_abi.h
 * (IPv4 in the first 4 bytes, the rest zero); ports in network order.
 */
struct xlb_quoted {
	void  *ip;          /* the quoted IP header: its fixed part is in the packet */
	void  *l4;          /* its transport header: the first 8 bytes are in the packet */
	__u8   saddr[16];   /* the VIP */
	__u8   daddr[16];   /* the client */
	__be16 sport;       /* the VIP's port */
	__be16 dport;       /* the client's port */
	__u8   proto;
};

/* A further result of the ICMP parsers: not an error about a TCP/UDP packet
 * whose ports are known (echo, other types, other quoted protocols, a quoted
 * non-first fragment). The caller passes it to the local stack. */
#define XLB_P_NOT_FLOW 1

/*
 * xlb_parse_icmp4_error - an ICMPv4 error and the packet it quotes.
 *
 * The cursor is at the ICMP header. Errors are type 3 (destination
 * unreachable, any code) and 11 (time exceeded); anything else, or a packet
 * too short to hold the type byte, is XLB_P_NOT_FLOW (not ours to check).
 * For an error, in this order:
 *   the 8-byte ICMP header present                   else XLB_P_TRUNC
 *   the quoted IPv4 header: 20 bytes                  else XLB_P_TRUNC
 *                           version 4 and ihl >= 5    else XLB_P_BAD
 *                           ihl * 4 bytes             else XLB_P_TRUNC
 *   quoted protocol TCP or UDP, not a later fragment  else XLB_P_NOT_FLOW
 *   the first 8 bytes of its transport header          else XLB_P_TRUNC
 * Returns XLB_P_OK with *q filled. The cursor does not move.
 */
static __always_inline int xlb_parse_icmp4_error(const struct xlb_cursor *c, struct xlb_quoted *q)
{
	struct xlb_icmphdr *ic = c->pos;
	struct xlb_cursor in;
	struct iphdr *ip;
	__u8 *type = c->pos;
	__u8 *l4;
	int rc;

	if ((void *)(type + 1) > c->end)
		return XLB_P_NOT_FLOW;
	if (*type != XLB_ICMP_DEST_UNREACH && *type != XLB_ICMP_TIME_EXCEEDED)
		return XLB_P_NOT_FLOW;
	if ((void *)(ic + 1) > c->end)
		return XLB_P_TRUNC;
	in.pos = ic + 1;
	in.end = c->end;
	rc = xlb_parse_ipv4(&in, &ip);
	if (rc)
		return rc;
	if ((ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP) || xlb_ipv4_is_later_fragment(ip))
		return XLB_P_NOT_FLOW;
	l4 = in.pos;
	if ((void *)(l4 + 8) > c->end)
		return XLB_P_TRUNC;
	__builtin_memset(q, 0, sizeof(*q));
	q->ip = ip;
	q->l4 = l4;
	__builtin_memcpy(q->saddr, &ip->saddr, 4);
	__builtin_memcpy(q->daddr, &ip->daddr, 4);
	q->sport = ((struct xlb_ports *)l4)->src;
	q->dport = ((struct xlb_ports *)l4)->dst;
	q->proto = ip->protocol;
	return XLB_P_OK;
}

/*
 * xlb_parse_icmp6_error - an ICMPv6 error and the packet it quotes.
 *
 * The cursor is at the ICMPv6 header. Errors are type 1 (destination
 * unreachable), 2 (packet too big) and 3 (time exceeded); anything else, or a
 * packet too short to hold the type byte, is XLB_P_NOT_FLOW.
 * For an error, in this order:
 *   the 8-byte ICMPv6 header present                  else XLB_P_TRUNC
 *   the quoted IPv6 header and extension headers as xlb_parse_ipv6
 *                                                      (XLB_P_TRUNC, XLB_P_BAD)
 *   quoted protocol TCP or UDP, not a later fragment  else XLB_P_NOT_FLOW
 *   the first 8 bytes of its transport header          else XLB_P_TRUNC
 * Returns XLB_P_OK with *q filled. The cursor does not move.
 */
static __always_inline int xlb_parse_icmp6_error(const struct xlb_cursor *c, struct xlb_quoted *q)
{
	struct icmp6hdr *ic = c->pos;
	struct xlb_cursor in;
	struct ipv6hdr *ip6;
	__u8 *type = c->pos;
	__u8 nh, frag;
	__u8 *l4;
	int rc;

	if ((void *)(type + 1) > c->end)
		return XLB_P_NOT_FLOW;
	if (*type != ICMPV6_DEST_UNREACH && *type != ICMPV6_PKT_TOOBIG && *type != ICMPV6_TIME_EXCEED)
		return XLB_P_NOT_FLOW;
	if ((void *)(ic + 1) > c->end)
		return XLB_P_TRUNC;
	in.pos = ic + 1;
	in.end = c->end;
	rc = xlb_parse_ipv6(&in, &ip6, &nh, &frag);
	if (rc)
		return rc;
	if ((nh != IPPROTO_TCP && nh != IPPROTO_UDP) || frag == XLB_FRAG_LATER)
		return XLB_P_NOT_FLOW;
	l4 = in.pos;
	if ((void *)(l4 + 8) > c->end)
		return XLB_P_TRUNC;
	q->ip = ip6;
	q->l4 = l4;
	__builtin_memcpy(q->saddr, &ip6->saddr, 16);
	__builtin_memcpy(q->daddr, &ip6->daddr, 16);
	q->sport = ((struct xlb_ports *)l4)->src;
	q->dport = ((struct xlb_ports *)l4)->dst;
	q->proto = nh;
	return XLB_P_OK;
}

#endif /* XLB_PARSE_H */
