/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * baseline.bpf.c - tiny programs for the native addon's tests and as benchmark baselines.
 *
 *  xdp_tx       XDP_TX, touches nothing: the baseline every XDP cost is quoted against.
 *  xdp_pass     XDP_PASS: harmless to attach to a real interface.
 *  xdp_setting  returns the load-time setting `test_setting` (7 unless changed before load),
 *               so a test can prove that writing '.rodata' before load works.
 *  tc_pass      TC_ACT_OK: for the TC attach tests.
 *
 * Maps (for map-operation tests, never used by the programs):
 *  test_hash    HASH u32 -> u64, 16 entries
 *  test_percpu  PERCPU_ARRAY u32 -> u64, 4 entries
 *  test_outer   ARRAY_OF_MAPS, 2 slots, inner template ARRAY u32 -> u32 (4 entries)
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 test_setting = 7;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} test_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} test_percpu SEC(".maps");

struct test_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct test_inner);
} test_outer SEC(".maps");

SEC("xdp")
int xdp_tx(struct xdp_md *ctx)
{
	return XDP_TX;
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int xdp_setting(struct xdp_md *ctx)
{
	return test_setting;
}

SEC("tc")
int tc_pass(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
