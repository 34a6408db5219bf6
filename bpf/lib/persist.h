/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * persist.h - persistence templates (IPVS persistence_timeout and
 * persistence_granularity): which real a client network was last sent to.
 *
 *   persist  LRU_HASH, BPF_F_NO_COMMON_LRU (per-CPU LRU lists),
 *            struct xlb_persist_key -> struct xlb_persist, XLB_PERSIST_SIZE_DEFAULT entries
 *
 * The key is {service id, family, client address masked to the service's
 * prefix length}; the value the real and the last time the client network
 * was seen. An entry is live while now - last <= the service's timeout. The
 * program writes entries (xlb_persist in xlb.bpf.c); the control plane only
 * reads them (status, tests) or clears them. A template whose service was
 * removed ages out, and its real, retired, is inactive: a service that gets
 * the id again never follows it.
 */
#ifndef XLB_PERSIST_H
#define XLB_PERSIST_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xlb_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(max_entries, XLB_PERSIST_SIZE_DEFAULT);
	__type(key, struct xlb_persist_key);
	__type(value, struct xlb_persist);
} persist SEC(".maps");

/* An established connection refreshes its template at most this often, so
 * that a long connection keeps its client's template alive (as IPVS keeps a
 * template while it controls connections) without a map write per packet. */
#define XLB_PERSIST_TOUCH_NS 1000000000ULL

/* Keep the first plen bits of a 16-byte network-order address, zero the rest. */
static __always_inline void xlb_persist_mask(__u8 addr[16], __u32 plen)
{
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u32 w, bits = plen > 32U * i ? plen - 32U * i : 0;

		if (bits >= 32)
			continue;
		__builtin_memcpy(&w, addr + 4 * i, 4);
		w &= bits ? bpf_htonl(~0U << (32 - bits)) : 0;
		__builtin_memcpy(addr + 4 * i, &w, 4);
	}
}

/* Whether a template is still live at `now` (signed: another CPU may have
 * written a `last` a little after this CPU's `now`). */
static __always_inline int xlb_persist_live(const struct xlb_persist *t, __u32 timeout, __u64 now)
{
	return (__s64)(now - t->last) <= (__s64)timeout * 1000000000LL;
}

#endif /* XLB_PERSIST_H */
