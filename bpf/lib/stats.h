/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * stats.h - counters: global (one per enum xlb_counter), per service and per
 * real. All per-CPU arrays, so the program adds without atomics and the
 * control plane sums the CPUs.
 *
 *   global_stats   PERCPU_ARRAY  __u32 (enum xlb_counter) -> __u64, XLB_CNT_MAX
 *   service_stats  PERCPU_ARRAY  __u32 service id -> struct xlb_stats, XLB_MAX_SERVICES
 *   real_stats     PERCPU_ARRAY  __u32 real id    -> struct xlb_stats, XLB_MAX_REALS
 */
#ifndef XLB_STATS_H
#define XLB_STATS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xlb_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XLB_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} global_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XLB_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct xlb_stats);
} service_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XLB_MAX_REALS);
	__type(key, __u32);
	__type(value, struct xlb_stats);
} real_stats SEC(".maps");

/* Add one to a global counter. */
static __always_inline void xlb_count(__u32 counter)
{
	__u64 *v = bpf_map_lookup_elem(&global_stats, &counter);

	if (v)
		*v += 1;
}

/* One forwarded packet of `bytes` bytes; `conns` is 1 when it opened a
 * connection-table entry. Ids beyond the arrays are ignored. */
static __always_inline void xlb_stats_add(void *map, __u32 id, __u64 bytes, __u64 conns)
{
	struct xlb_stats *s = bpf_map_lookup_elem(map, &id);

	if (s) {
		s->packets += 1;
		s->bytes += bytes;
		s->conns += conns;
	}
}

#endif /* XLB_STATS_H */
