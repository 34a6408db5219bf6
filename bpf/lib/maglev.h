/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * maglev.h - Maglev table lookup (Eisenbud et al., NSDI 2016).
 *
 *   maglev_tables  ARRAY_OF_MAPS, __u32 service id -> inner table, XLB_MAX_SERVICES
 *   inner table    ARRAY, __u32 slot -> __u32 real id (0 = empty), maglev_size slots,
 *                  BPF_F_MMAPABLE: the control plane fills a new one through mmap
 *   maglev_size    load-time setting in .rodata: the number of slots (a prime);
 *                  the control plane sets it together with the inner template's
 *                  max_entries before load.
 *
 * The control plane builds a complete new inner table for every change and
 * swaps it into the outer slot with one update, so a lookup sees either the
 * old or the new table, never a mix.
 */
#ifndef XLB_MAGLEV_H
#define XLB_MAGLEV_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xlb_abi.h"

struct xlb_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);	/* filled by one memory copy */
	__uint(max_entries, XLB_MAGLEV_SIZE_DEFAULT);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, XLB_MAX_SERVICES);
	__type(key, __u32);
	__array(values, struct xlb_maglev_inner);
} maglev_tables SEC(".maps");

const volatile __u32 maglev_size = XLB_MAGLEV_SIZE_DEFAULT;

/*
 * xlb_maglev_pick - the real id in slot hash % maglev_size of a service's
 * table; 0 when the service has no table or the slot is empty (a service
 * without reals has an all-zero table).
 */
static __always_inline __u32 xlb_maglev_pick(__u32 service_id, __u32 hash)
{
	__u32 slot = hash % maglev_size;
	__u32 *real_id;
	void *table;

	table = bpf_map_lookup_elem(&maglev_tables, &service_id);
	if (!table)
		return XLB_ID_NONE;
	real_id = bpf_map_lookup_elem(table, &slot);
	if (!real_id)
		return XLB_ID_NONE;
	return *real_id;
}

#endif /* XLB_MAGLEV_H */
