/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * xlb_decap.bpf.c - decapsulation on a real server: the receiving end of the
 * forwarder's TUN method (bpf/xlb.bpf.c, lib/encap.h), for kernels or hosts
 * without ipip/ip6tnl devices. Attached (XDP) to the real's interface, it
 * removes the outer IP header of IP-in-IP packets and passes the inner packet
 * to the stack, which delivers it to the VIP the real holds on lo.
 *
 * Maps (their names are the interface to src/datapath/xdp/decap.ts, which
 * pins them; layouts in include/xlb_decap_abi.h):
 *   decap_stats   PERCPU_ARRAY  __u32 (enum xlb_decap_counter) -> __u64
 *   decap_config  ARRAY         1 entry, struct xlb_decap_config
 *   decap_src4    LPM_TRIE      struct xlb_decap_src4_key -> __u8 (allowed outer sources)
 *   decap_src6    LPM_TRIE      struct xlb_decap_src6_key -> __u8
 *
 * What a tunnel packet is: an IPv4 packet with protocol 4 (IPv4) or 41 (IPv6),
 * or an IPv6 packet whose last Next Header, after at most 4 extension headers
 * (hop-by-hop, routing, destination options, fragment), is 41 or 4. So 4in4,
 * 6in6 (what the forwarder sends), 6in4 and 4in6 are all handled; only the
 * outer header decides, the inner family must then match its protocol number.
 *
 * The path of a packet, and the policy at each step:
 *
 *  1. Ethernet with at most one 802.1Q tag (kept: the inner packet leaves with
 *     the same tag). A frame shorter than that, and anything but IPv4/IPv6:
 *     PASS, untouched.
 *  2. Identification. Only what is identified as a tunnel packet is checked
 *     and possibly dropped; everything else passes untouched, malformed or
 *     not (the kernel's own checks deal with it, as they would without us):
 *     - an IPv4 frame too short for the 20-byte fixed header, or whose
 *       protocol is neither 4 nor 41: PASS;
 *     - an IPv6 frame too short for the 40-byte header, whose extension
 *       header chain ends beyond the frame (the protocol cannot be known), or
 *       whose last Next Header is neither 41 nor 4: PASS. That includes a
 *       chain of more than 4 extension headers: the walk stops at an
 *       extension header type, which is not 41 or 4.
 *  3. The outer header of a tunnel packet, in this order:
 *     IPv4: version 4 and ihl >= 5, else DROP_MALFORMED; the ihl * 4 bytes
 *       (options included) in the frame, else DROP_TRUNCATED; total length at
 *       least the header, else DROP_MALFORMED; total length within the frame,
 *       else DROP_TRUNCATED (a frame longer than the total length carries
 *       Ethernet padding: allowed). The header checksum is not checked.
 *     IPv6: version 6, else DROP_MALFORMED; 40 + payload length within the
 *       frame, else DROP_TRUNCATED; the extension headers within the payload
 *       length, else DROP_MALFORMED. A payload length of 0 (jumbogram) is
 *       therefore malformed: a frame on this path never needs one.
 *  4. Allowed sources, when the control plane has turned the filter on
 *     (XLB_DECAP_F_FILTER_SRC; it does so whenever the allow list is not
 *     empty): the outer source must match a prefix of its family in
 *     decap_src4 / decap_src6, else DROP_SOURCE. This comes before the
 *     fragment check: a tunnel packet from a source that is not allowed is
 *     dropped whatever it is.
 *  5. Fragments are never decapsulated: an outer IPv4 header with MF or an
 *     offset, or an outer IPv6 fragment header: PASS_FRAGMENT, untouched.
 *     (Reassembly belongs to the kernel, which has no tunnel device here and
 *     so drops the reassembled packet; the forwarder copies DF from the inner
 *     header, so tunnel fragments only appear when a path MTU is too small.)
 *  6. The inner header, which must lie within what the outer header announces:
 *     IPv4 (protocol 4): 20 bytes in the frame, else DROP_TRUNCATED; version 4
 *       and ihl >= 5, else DROP_MALFORMED; ihl * 4 bytes in the frame, else
 *       DROP_TRUNCATED; ihl * 4 <= total length <= the outer payload, else
 *       DROP_MALFORMED.
 *     IPv6 (protocol 41): 40 bytes in the frame, else DROP_TRUNCATED; version 6
 *       and 40 + payload length <= the outer payload, else DROP_MALFORMED.
 *     Nothing beyond the inner IP header is looked at.
 *  7. ECN (RFC 6040, normal mode, as the kernel's own tunnels do): when the
 *     outer header carries CE (congestion experienced, set on the way from
 *     the load balancer, which copies the inner ECN field to the outer one),
 *     an ECN-capable inner packet (ECT(0), ECT(1)) is marked CE too (IPv4:
 *     the header checksum updated, RFC 1624); an inner packet that is not
 *     ECN-capable is dropped (DROP_ECN), as the RFC says, so the congestion
 *     signal is not lost silently. Any other outer value changes nothing.
 *  8. Decapsulation: the Ethernet addresses and tag are saved, the head is
 *     moved past the outer header (and its options / extension headers) with
 *     bpf_xdp_adjust_head, then the saved header is written in front of the
 *     inner packet with the EtherType of the inner family (saved first and
 *     written after the adjust, at fixed offsets from the new start). The
 *     adjust cannot fail once the headers have been checked (the frame keeps
 *     at least an Ethernet and an inner IP header); if it does, ABORTED,
 *     XDP_ABORTED. The inner packet is not changed otherwise: its TTL stays
 *     as the load balancer forwarded it. XDP_PASS, counted DECAP4 or DECAP6
 *     by the outer family. Trailing Ethernet padding stays; the stack trims it.
 *
 * Every packet counts XLB_DECAP_CNT_RX and exactly one other counter, added
 * at the program's single exit: RX is the sum of the others.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xlb_decap_abi.h"
#include "lib/parse.h"
#include "lib/csum.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XLB_DECAP_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} decap_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xlb_decap_config);
} decap_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, XLB_DECAP_MAX_PREFIXES);
	__type(key, struct xlb_decap_src4_key);
	__type(value, __u8);
} decap_src4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, XLB_DECAP_MAX_PREFIXES);
	__type(key, struct xlb_decap_src6_key);
	__type(value, __u8);
} decap_src6 SEC(".maps");

/*
 * BTF anchor: puts enum xlb_decap_counter (used only as constants) into the
 * object's BTF for the ABI test, as xlb.bpf.c does for its enums. Never read.
 */
const volatile struct xlb_decap_btf_anchor {
	enum xlb_decap_counter counter;
} xlb_decap_btf_anchor;

static __always_inline void decap_count(__u32 counter)
{
	__u64 *v = bpf_map_lookup_elem(&decap_stats, &counter);

	if (v)
		*v += 1;
}

/* A verdict and the counter that says why (added once, at the single exit). */
static __always_inline int decap_verdict(__u32 *cnt, __u32 counter, int action)
{
	*cnt = counter;
	return action;
}

/* A parser failure of a tunnel packet: dropped as truncated or malformed. */
static __always_inline int decap_parse_drop(__u32 *cnt, int rc)
{
	return decap_verdict(cnt, rc == XLB_P_BAD ? XLB_DECAP_CNT_DROP_MALFORMED : XLB_DECAP_CNT_DROP_TRUNCATED,
			     XDP_DROP);
}

static __always_inline int decap_is_tunnel(__u8 proto)
{
	return proto == IPPROTO_IPIP || proto == IPPROTO_IPV6;
}

/* Step 4: 1 when the source filter is off or addr (4 or 16 bytes) is in an
 * allowed prefix of its family. */
static __always_inline int decap_source_allowed(const void *addr, int v6)
{
	struct xlb_decap_config *cfg;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&decap_config, &zero);
	if (!cfg || !(cfg->flags & XLB_DECAP_F_FILTER_SRC))
		return 1;
	if (v6) {
		struct xlb_decap_src6_key k = { .prefixlen = 128 };

		__builtin_memcpy(k.addr, addr, 16);
		return bpf_map_lookup_elem(&decap_src6, &k) != NULL;
	} else {
		struct xlb_decap_src4_key k = { .prefixlen = 32 };

		__builtin_memcpy(k.addr, addr, 4);
		return bpf_map_lookup_elem(&decap_src4, &k) != NULL;
	}
}

/* ECN codepoints (RFC 3168): the low two bits of the IPv4 tos / IPv6 traffic class */
#define DECAP_ECN_MASK    3
#define DECAP_ECN_NOT_ECT 0
#define DECAP_ECN_CE      3

/* The ECN field of an IPv6 header: traffic class bits 0-1, i.e. bits 4-5 of its second byte. */
static __always_inline __u8 decap_ipv6_ecn(const struct ipv6hdr *ip6)
{
	return (((const __u8 *)ip6)[1] >> 4) & DECAP_ECN_MASK;
}

/* Mark an IPv4 header CE and update its checksum for the changed 16-bit word
 * (RFC 1624: HC' = ~(~HC + ~m + m')). The caller has checked the 20 bytes. */
static __always_inline void decap_ipv4_set_ce(struct iphdr *ip)
{
	__u16 *word = (__u16 *)ip;      /* version/ihl and tos */
	__u16 old = *word;

	ip->tos |= DECAP_ECN_CE;
	ip->check = (__u16)~xlb_csum_fold((__u32)(__u16)~ip->check + (__u16)~old + *word);
}

/* Steps 1-8 of the header comment. */
static __always_inline int decap_handle(struct xdp_md *ctx, __u32 *cnt)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct xlb_cursor c = { .pos = data, .end = data_end };
	__u32 frame_len = data_end - data;
	__u32 l2len, outer_len, payload, counter;
	__u8 macs[2 * ETH_ALEN];
	__be16 eth_proto, inner_type, tci = 0;
	void *l3, *inner;
	__u8 proto, outer_ecn;
	int rc;

	/* 1. Ethernet */
	if (xlb_parse_eth(&c, &eth_proto))
		return decap_verdict(cnt, XLB_DECAP_CNT_PASS, XDP_PASS);
	l3 = c.pos;
	l2len = sizeof(struct ethhdr);
	if (l3 != data + sizeof(struct ethhdr)) {
		l2len += sizeof(struct xlb_vlan_hdr);
		tci = ((struct xlb_vlan_hdr *)(data + sizeof(struct ethhdr)))->tci;
	}
	__builtin_memcpy(macs, data, sizeof(macs));

	if (eth_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		__u32 hlen, tot;

		/* 2. a tunnel packet? */
		if ((void *)(ip + 1) > data_end || !decap_is_tunnel(ip->protocol))
			return decap_verdict(cnt, XLB_DECAP_CNT_PASS, XDP_PASS);
		proto = ip->protocol;
		/* 3. the outer header */
		rc = xlb_parse_ipv4(&c, &ip);
		if (rc)
			return decap_parse_drop(cnt, rc);
		hlen = ip->ihl * 4;
		tot = bpf_ntohs(ip->tot_len);
		if (tot < hlen)
			return decap_verdict(cnt, XLB_DECAP_CNT_DROP_MALFORMED, XDP_DROP);
		if (l2len + tot > frame_len)
			return decap_verdict(cnt, XLB_DECAP_CNT_DROP_TRUNCATED, XDP_DROP);
		/* 4. the source */
		if (!decap_source_allowed(&ip->saddr, 0))
			return decap_verdict(cnt, XLB_DECAP_CNT_DROP_SOURCE, XDP_DROP);
		/* 5. fragments */
		if (xlb_ipv4_is_fragment(ip))
			return decap_verdict(cnt, XLB_DECAP_CNT_PASS_FRAGMENT, XDP_PASS);
		payload = tot - hlen;
		outer_ecn = ip->tos & DECAP_ECN_MASK;
		counter = XLB_DECAP_CNT_DECAP4;
	} else if (eth_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		__u32 plen, ext;
		__u8 frag;

		/* 2. a tunnel packet? */
		if ((void *)(ip6 + 1) > data_end)
			return decap_verdict(cnt, XLB_DECAP_CNT_PASS, XDP_PASS);
		c.pos = ip6 + 1;
		proto = ip6->nexthdr;
		if (xlb_ipv6_skip_ext(&c, &proto, &frag) || !decap_is_tunnel(proto))
			return decap_verdict(cnt, XLB_DECAP_CNT_PASS, XDP_PASS);
		/* 3. the outer header */
		if (ip6->version != 6)
			return decap_verdict(cnt, XLB_DECAP_CNT_DROP_MALFORMED, XDP_DROP);
		plen = bpf_ntohs(ip6->payload_len);
		if (l2len + sizeof(*ip6) + plen > frame_len)
			return decap_verdict(cnt, XLB_DECAP_CNT_DROP_TRUNCATED, XDP_DROP);
		ext = c.pos - (void *)(ip6 + 1);
		if (ext > plen)
			return decap_verdict(cnt, XLB_DECAP_CNT_DROP_MALFORMED, XDP_DROP);
		/* 4. the source */
		if (!decap_source_allowed(&ip6->saddr, 1))
			return decap_verdict(cnt, XLB_DECAP_CNT_DROP_SOURCE, XDP_DROP);
		/* 5. fragments */
		if (frag != XLB_FRAG_NONE)
			return decap_verdict(cnt, XLB_DECAP_CNT_PASS_FRAGMENT, XDP_PASS);
		payload = plen - ext;
		outer_ecn = decap_ipv6_ecn(ip6);
		counter = XLB_DECAP_CNT_DECAP6;
	} else {
		return decap_verdict(cnt, XLB_DECAP_CNT_PASS, XDP_PASS);
	}

	/* 6. the inner header */
	inner = c.pos;
	if (proto == IPPROTO_IPIP) {
		struct iphdr *in;
		__u32 tot;

		rc = xlb_parse_ipv4(&c, &in);
		if (rc)
			return decap_parse_drop(cnt, rc);
		tot = bpf_ntohs(in->tot_len);
		if (tot < in->ihl * 4 || tot > payload)
			return decap_verdict(cnt, XLB_DECAP_CNT_DROP_MALFORMED, XDP_DROP);
		/* 7. ECN */
		if (outer_ecn == DECAP_ECN_CE) {
			__u8 ecn = in->tos & DECAP_ECN_MASK;

			if (ecn == DECAP_ECN_NOT_ECT)
				return decap_verdict(cnt, XLB_DECAP_CNT_DROP_ECN, XDP_DROP);
			if (ecn != DECAP_ECN_CE)
				decap_ipv4_set_ce(in);
		}
		inner_type = bpf_htons(ETH_P_IP);
	} else {
		struct ipv6hdr *in6 = inner;

		if ((void *)(in6 + 1) > data_end)
			return decap_verdict(cnt, XLB_DECAP_CNT_DROP_TRUNCATED, XDP_DROP);
		if (in6->version != 6 || sizeof(*in6) + bpf_ntohs(in6->payload_len) > payload)
			return decap_verdict(cnt, XLB_DECAP_CNT_DROP_MALFORMED, XDP_DROP);
		/* 7. ECN */
		if (outer_ecn == DECAP_ECN_CE) {
			__u8 ecn = decap_ipv6_ecn(in6);

			if (ecn == DECAP_ECN_NOT_ECT)
				return decap_verdict(cnt, XLB_DECAP_CNT_DROP_ECN, XDP_DROP);
			((__u8 *)in6)[1] |= DECAP_ECN_CE << 4;
		}
		inner_type = bpf_htons(ETH_P_IPV6);
	}

	/* 8. strip: the head moves to where the L2 header goes in front of the inner packet */
	outer_len = inner - l3;
	if (bpf_xdp_adjust_head(ctx, outer_len))
		return decap_verdict(cnt, XLB_DECAP_CNT_ABORTED, XDP_ABORTED);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	/* the frame still holds the L2 header and a whole inner IP header: for the verifier */
	if (data + sizeof(struct ethhdr) + sizeof(struct xlb_vlan_hdr) > data_end)
		return decap_verdict(cnt, XLB_DECAP_CNT_ABORTED, XDP_ABORTED);
	__builtin_memcpy(data, macs, sizeof(macs));
	if (l2len == sizeof(struct ethhdr)) {
		((struct ethhdr *)data)->h_proto = inner_type;
	} else {
		struct xlb_vlan_hdr *tag = data + sizeof(struct ethhdr);

		((struct ethhdr *)data)->h_proto = bpf_htons(XLB_ETH_P_8021Q);
		tag->tci = tci;
		tag->proto = inner_type;
	}
	return decap_verdict(cnt, counter, XDP_PASS);
}

SEC("xdp")
int xlb_decap(struct xdp_md *ctx)
{
	__u32 cnt = XLB_DECAP_CNT_MAX;
	int action;

	decap_count(XLB_DECAP_CNT_RX);
	action = decap_handle(ctx, &cnt);
	decap_count(cnt);
	return action;
}
