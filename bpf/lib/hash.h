/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * hash.h - Bob Jenkins' lookup3 hash over 32-bit words ("hashword"), written
 * for the BPF target: always inlined, loops over a constant number of words
 * so that the compiler unrolls them.
 *
 * xlb_hash_words(k, n, seed) follows lookup3's hashword(): the state starts at
 * 0xdeadbeef + 4n + seed, full groups of three words go through mix(), the
 * last one to three words through final(); the result is c. Keys are read
 * as host-order words: the value only has to be stable on this machine (the
 * control plane never recomputes it; it only maps hash % M to a slot).
 */
#ifndef XLB_HASH_H
#define XLB_HASH_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include "xlb_abi.h"

/* Seed of every flow hash. Any constant works; changing it moves flows. */
#define XLB_HASH_SEED 0x786c6231U /* "xlb1" */

static __always_inline __u32 xlb_rol32(__u32 x, int k)
{
	return (x << k) | (x >> (32 - k));
}

/* lookup3 mix(): reversible mixing of three words. */
#define XLB_HASH_MIX(a, b, c)					\
	do {							\
		a -= c; a ^= xlb_rol32(c, 4);  c += b;		\
		b -= a; b ^= xlb_rol32(a, 6);  a += c;		\
		c -= b; c ^= xlb_rol32(b, 8);  b += a;		\
		a -= c; a ^= xlb_rol32(c, 16); c += b;		\
		b -= a; b ^= xlb_rol32(a, 19); a += c;		\
		c -= b; c ^= xlb_rol32(b, 4);  b += a;		\
	} while (0)

/* lookup3 final(): final mixing of three words into c. */
#define XLB_HASH_FINAL(a, b, c)					\
	do {							\
		c ^= b; c -= xlb_rol32(b, 14);			\
		a ^= c; a -= xlb_rol32(c, 11);			\
		b ^= a; b -= xlb_rol32(a, 25);			\
		c ^= b; c -= xlb_rol32(b, 16);			\
		a ^= c; a -= xlb_rol32(c, 4);			\
		b ^= a; b -= xlb_rol32(a, 14);			\
		c ^= b; c -= xlb_rol32(b, 24);			\
	} while (0)

/*
 * xlb_hash_words - lookup3 hashword() of n 32-bit words.
 * n must be a compile-time constant >= 1 (the loop is unrolled).
 */
static __always_inline __u32 xlb_hash_words(const __u32 *k, const int n, __u32 seed)
{
	__u32 a, b, c;
	int i = 0;

	a = b = c = 0xdeadbeefU + ((__u32)n << 2) + seed;
#pragma unroll
	for (; i + 3 < n; i += 3) {
		a += k[i];
		b += k[i + 1];
		c += k[i + 2];
		XLB_HASH_MIX(a, b, c);
	}
	/* the last 1..3 words (lookup3: a switch that falls through) */
	if (n - i == 3)
		c += k[i + 2];
	if (n - i >= 2)
		b += k[i + 1];
	a += k[i];
	XLB_HASH_FINAL(a, b, c);
	return c;
}

/* What a flow hash covers (see xlb_flow_hash). */
#define XLB_HASH_5TUPLE 0   /* addresses, ports, protocol */
#define XLB_HASH_ADDRS  1   /* source and destination addresses */
#define XLB_HASH_SRC    2   /* source (client) address */

/*
 * xlb_flow_hash - the flow hash of a connection-table key.
 *
 * The words hashed are {saddr, daddr, ports} for IPv4 (3 words, one final()
 * round) and {saddr[4], daddr[4], ports} for IPv6 (9 words, two mix() rounds
 * and a final()), where ports is the 4 raw bytes of sport and dport as they
 * lie in the key (network order), read as one host-order word; what the kind
 * leaves out is zero:
 *   XLB_HASH_5TUPLE  everything, seed + proto;
 *   XLB_HASH_ADDRS   ports zero,              seed + 0x100;
 *   XLB_HASH_SRC     daddr and ports zero,    seed + 0x200.
 * One word layout per family keeps one copy of the hash code per call site
 * (the kind is a run-time value), which matters more to the program's size
 * and instruction cache than the few words hashed in vain.
 */
static __always_inline __u32 xlb_flow_hash(const struct xlb_flow_key *key, int kind)
{
	__u32 seed = XLB_HASH_SEED + (kind == XLB_HASH_5TUPLE ? key->proto : (__u32)kind << 8);
	__u32 w[9] = {};

	if (key->family == XLB_AF_INET) {
		__builtin_memcpy(&w[0], key->saddr, 4);
		if (kind != XLB_HASH_SRC)
			__builtin_memcpy(&w[1], key->daddr, 4);
		if (kind == XLB_HASH_5TUPLE)
			__builtin_memcpy(&w[2], &key->sport, 4); /* sport and dport */
		return xlb_hash_words(w, 3, seed);
	}
	__builtin_memcpy(&w[0], key->saddr, 16);
	if (kind != XLB_HASH_SRC)
		__builtin_memcpy(&w[4], key->daddr, 16);
	if (kind == XLB_HASH_5TUPLE)
		__builtin_memcpy(&w[8], &key->sport, 4);
	return xlb_hash_words(w, 9, seed);
}

#endif /* XLB_HASH_H */
