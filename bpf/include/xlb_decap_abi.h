/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xlb_decap_abi.h - the ONLY structs, enums and limits shared between the
 * decapsulation program (bpf/xlb_decap.bpf.c, run on real servers) and its
 * control side (src/datapath/xdp/decap-abi.ts mirrors this file).
 *
 * The same rules as xlb_abi.h: fixed-width types, explicit padding, no
 * bitfields, addresses in network byte order. test/bpf/decap-abi.test.ts
 * compares the mirror with the BTF of the compiled object and with the
 * #defines here, so a change that is not mirrored fails the tests.
 */
#ifndef XLB_DECAP_ABI_H
#define XLB_DECAP_ABI_H

#include <linux/types.h>

/* Allowed outer source prefixes, per family (LPM trie sizes). */
#define XLB_DECAP_MAX_PREFIXES 1024

/* decap_config flags */
#define XLB_DECAP_F_FILTER_SRC (1U << 0) /* tunnel packets must come from an allowed prefix */

/* ---- runtime configuration: decap_config map, key 0 ---- */
struct xlb_decap_config {
	__u32 flags;     /* XLB_DECAP_F_* */
};

/* ---- allowed outer sources: LPM trie keys (struct bpf_lpm_trie_key layout) ---- */
struct xlb_decap_src4_key {
	__u32 prefixlen; /* 0..32 */
	__u8  addr[4];   /* network order; bits past prefixlen are zero */
};

struct xlb_decap_src6_key {
	__u32 prefixlen; /* 0..128 */
	__u8  addr[16];
};

/* ---- counters: one slot each in the decap_stats per-CPU array ----
 * Every packet counts RX and exactly one of the others. */
enum xlb_decap_counter {
	XLB_DECAP_CNT_RX = 0,           /* every packet the program saw */
	XLB_DECAP_CNT_DECAP4,           /* outer IPv4 removed (4in4, 6in4), passed to the stack */
	XLB_DECAP_CNT_DECAP6,           /* outer IPv6 removed (6in6, 4in6), passed to the stack */
	XLB_DECAP_CNT_PASS,             /* not a tunnel packet: passed untouched */
	XLB_DECAP_CNT_PASS_FRAGMENT,    /* a fragment of a tunnel packet: passed untouched, never decapsulated */
	XLB_DECAP_CNT_DROP_TRUNCATED,   /* a tunnel packet whose headers end beyond the frame */
	XLB_DECAP_CNT_DROP_MALFORMED,   /* a tunnel packet with a bad version, header or length field */
	XLB_DECAP_CNT_DROP_SOURCE,      /* a tunnel packet from an outer source that is not allowed */
	XLB_DECAP_CNT_DROP_ECN,         /* outer ECN CE on an inner packet that is not ECN-capable (RFC 6040) */
	XLB_DECAP_CNT_ABORTED,          /* a helper failed where it cannot (a bug): XDP_ABORTED */
	XLB_DECAP_CNT_MAX,
};

#endif /* XLB_DECAP_ABI_H */
