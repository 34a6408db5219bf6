/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xlb_gen.bpf.c - traffic generator and sink for `make bench-datapath` (scripts/bench/).
 *
 * Not part of the forwarder. Two programs:
 *
 *  xlb_gen   run with BPF_PROG_TEST_RUN and BPF_F_TEST_XDP_LIVE_FRAMES in the generator's
 *            namespace. Live frames recycle their pages without restoring the bytes, so what
 *            the balancer wrote into a frame (MACs, an outer header) is what would be sent next:
 *            this program therefore writes the WHOLE frame from the template in gen_config on
 *            every run, then varies the flow (source port, and the low 16 bits of the source
 *            address once the ports of a span are used up) over gen_config.nflows flows, fixes
 *            the checksums incrementally (RFC 1624) and redirects the frame to
 *            gen_config.ifindex (the veth whose peer has the balancer attached).
 *
 *  xlb_sink  attached to that veth: counts what comes back (XDP_TX from the balancer) and drops
 *            it. It must be attached anyway, since a veth accepts XDP frames only when its peer
 *            has NAPI, i.e. an XDP program.
 *
 * gen_stats (per-CPU): [0] frames generated (also the flow sequence), [1] frames sunk.
 * The layout of struct gen_cfg is mirrored in scripts/bench/gen-config.ts.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define GEN_FRAME_MAX 128 /* template bytes; a multiple of 8 */

struct gen_cfg {
	__u8  frame[GEN_FRAME_MAX]; /* the frame of flow 0, checksums valid */
	__u32 len;                  /* frame length: 8..GEN_FRAME_MAX, == the test-run data size */
	__u32 ifindex;              /* redirect target */
	__u32 nflows;               /* flow of run n = n % nflows; 0 or 1 = one flow */
	__u16 sport_off;            /* offset of the L4 source port */
	__u16 saddr_off;            /* offset of the last 16 bits of the source address */
	__u16 l4csum_off;           /* offset of the L4 checksum; 0 = leave it */
	__u16 ipcsum_off;           /* offset of the IPv4 header checksum; 0 = none (IPv6) */
	__u16 sport_base;           /* host order: source port of flow 0 */
	__u16 sport_span;           /* source ports per source address, >= 1 */
	__u16 saddr_base;           /* host order: last 16 bits of flow 0's source address */
	__u16 udp;                  /* 1: L4 is UDP, a computed checksum of 0 is sent as 0xffff */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_cfg);
} gen_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} gen_stats SEC(".maps");

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for one 16-bit word; all in network order. */
static __always_inline __u16 csum_replace16(__u16 csum, __u16 old, __u16 new)
{
	__u32 s = (__u16)~csum;

	s += (__u16)~old;
	s += new;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* The 16-bit word at a template offset: offsets are even and inside the written bytes. */
static __always_inline __u16 *word_at(void *data, void *data_end, __u32 off)
{
	__u16 *p;

	off &= GEN_FRAME_MAX - 2;
	p = data + off;
	if ((void *)(p + 1) > data_end)
		return 0;
	return p;
}

SEC("xdp")
int xlb_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 k0 = 0;
	struct gen_cfg *cfg = bpf_map_lookup_elem(&gen_config, &k0);
	__u64 *seq = bpf_map_lookup_elem(&gen_stats, &k0);
	__u16 *sport, *saddr, *csum;
	__u16 old_sport, old_saddr, new_sport, new_saddr, span;
	__u32 flow, len;
	__u64 n;

	if (!cfg || !seq)
		return XDP_ABORTED;

	/* 1. the whole frame, from the template: 8-byte words, then the last 8 bytes again
	 *    (overlapping) when the length is not a multiple of 8 */
	len = cfg->len;
	if (len < 8 || len > GEN_FRAME_MAX || data + len > data_end)
		return XDP_ABORTED;
#pragma unroll
	for (int i = 0; i < GEN_FRAME_MAX / 8; i++) {
		if (i * 8 + 8 > len)
			break;
		if (data + i * 8 + 8 > data_end)
			return XDP_ABORTED;
		((__u64 *)data)[i] = ((__u64 *)cfg->frame)[i];
	}
	if (len & 7) {
		__u32 off = (len - 8) & (GEN_FRAME_MAX - 1);
		void *p = data + off;

		if (p + 8 > data_end)
			return XDP_ABORTED;
		__builtin_memcpy(p, cfg->frame + off, 8);
	}

	/* 2. this run's flow */
	n = *seq;
	*seq = n + 1;
	flow = cfg->nflows > 1 ? (__u32)(n % cfg->nflows) : 0;
	span = cfg->sport_span ? cfg->sport_span : 1;
	new_sport = bpf_htons((__u16)(cfg->sport_base + flow % span));
	new_saddr = bpf_htons((__u16)(cfg->saddr_base + flow / span));

	sport = word_at(data, data_end, cfg->sport_off);
	saddr = word_at(data, data_end, cfg->saddr_off);
	if (!sport || !saddr)
		return XDP_ABORTED;
	old_sport = *sport;
	old_saddr = *saddr;
	*sport = new_sport;
	*saddr = new_saddr;

	/* 3. checksums: the L4 one covers the pseudo-header (source address) and the port */
	if (cfg->ipcsum_off) {
		csum = word_at(data, data_end, cfg->ipcsum_off);
		if (!csum)
			return XDP_ABORTED;
		*csum = csum_replace16(*csum, old_saddr, new_saddr);
	}
	if (cfg->l4csum_off) {
		__u16 c;

		csum = word_at(data, data_end, cfg->l4csum_off);
		if (!csum)
			return XDP_ABORTED;
		c = csum_replace16(*csum, old_saddr, new_saddr);
		c = csum_replace16(c, old_sport, new_sport);
		if (cfg->udp && c == 0)
			c = 0xffff;
		*csum = c;
	}

	return bpf_redirect(cfg->ifindex, 0);
}

SEC("xdp")
int xlb_sink(struct xdp_md *ctx)
{
	__u32 k1 = 1;
	__u64 *count = bpf_map_lookup_elem(&gen_stats, &k1);

	if (count)
		*count += 1;
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
