/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * csum.h - the Internet checksum (RFC 1071) of small, fixed-size headers.
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

#endif /* XLB_CSUM_H */
