/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * csum.h - the Internet checksum (RFC 1071) of small, fixed-size headers, and
 * its incremental update (RFC 1624) when some 16-bit words change.
 *
 * The one's-complement sum does not depend on byte order as long as the words
 * are loaded and the result stored the same way, so the header's 16-bit words
 * are summed as the CPU loads them and the folded complement is stored back
 * with a 16-bit store: the bytes in the packet come out in network order.
 */
#ifndef XLB_CSUM_H
#define XLB_CSUM_H

#include <linux/types.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

/* Fold a 32-bit sum of 16-bit words to 16 bits (two carries suffice for a
 * sum of fewer than 65537 words). */
static __always_inline __u16 xlb_csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/*
 * xlb_ipv4_csum_set - compute and store the header checksum of a 20-byte IPv4
 * header (no options) that is otherwise complete. The caller has checked that
 * the 20 bytes are in the packet.
 */
static __always_inline void xlb_ipv4_csum_set(struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u32 sum = 0;

	ip->check = 0;
#pragma unroll
	for (int i = 0; i < (int)(sizeof(*ip) / 2); i++)
		sum += w[i];
	ip->check = (__u16)~xlb_csum_fold(sum);
}

/*
 * Incremental update, RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), summed over
 * every changed word m -> m'. A "diff" is the running sum of ~m + m' (fewer
 * than 2^16 terms, so a __u32 cannot overflow); xlb_csum_update applies it.
 * The result equals a checksum computed from scratch (both are the complement
 * of a folded sum in 1..0xffff), so a computed 0x0000 stays 0x0000: UDP's
 * "0 means 0xffff" is the caller's (xlb_csum_update_udp).
 */
static __always_inline __u32 xlb_csum_diff16(__u32 diff, __u16 old, __u16 new)
{
	return diff + (__u16)~old + new;
}

/* Replace one 16-bit word in place and add the change to diff. */
static __always_inline __u32 xlb_csum_replace16(__u32 diff, __u16 *field, __u16 new)
{
	diff = xlb_csum_diff16(diff, *field, new);
	*field = new;
	return diff;
}

/* Replace an address in place, word by word (2 words for IPv4, 8 for IPv6),
 * and add the change to diff. Each word is read, summed and written before
 * the next is read, which keeps register pressure (and BPF stack spills) low.
 * Both pointers need only 2-byte alignment. */
static __always_inline __u32 xlb_csum_replace_addr(__u32 diff, void *field, const void *new, int v6)
{
	__u16 *f = field;
	const __u16 *n = new;

#pragma unroll
	for (int i = 0; i < 8; i++) {
		__u16 w;

		if (i >= 2 && !v6)
			break;
		w = n[i];
		diff = xlb_csum_diff16(diff, f[i], w);
		f[i] = w;
	}
	return diff;
}

static __always_inline __u16 xlb_csum_update(__u16 check, __u32 diff)
{
	return (__u16)~xlb_csum_fold((__u16)~check + diff);
}

/* UDP (RFC 768): a checksum of 0 means "none" and stays 0 (IPv4; in IPv6 it
 * is invalid anyway and is left alone too); a computed 0 is sent as 0xffff. */
static __always_inline __u16 xlb_csum_update_udp(__u16 check, __u32 diff)
{
	__u16 c;

	if (check == 0)
		return 0;
	c = xlb_csum_update(check, diff);
	return c ? c : 0xffff;
}

#endif /* XLB_CSUM_H */
