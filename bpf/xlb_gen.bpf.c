/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xlb_gen.bpf.c - traffic generator and sink for the benchmarks (scripts/bench/, scripts/gen.ts).
 *
 * Not part of the forwarder. Three programs:
 *
 *  xlb_gen   run with BPF_PROG_TEST_RUN and BPF_F_TEST_XDP_LIVE_FRAMES in the generator's
 *            namespace. Live frames recycle their pages without restoring the bytes, so what
 *            the balancer wrote into a frame (MACs, an outer header) is what would be sent next:
 *            this program therefore writes the whole header part of the frame (the first
 *            gen_config.len bytes, at most GEN_FRAME_MAX) from the template on every run, then
 *            varies the flow (source port, and the low 16 bits of the source address once the
 *            ports of a span are used up) over gen_config.nflows flows, fixes the checksums
 *            incrementally (RFC 1624) and redirects the frame to gen_config.ifindex (a veth
 *            whose peer has NAPI). With gen_config.gap_ns, frames are paced in the program
 *            (a test run costs too much set-up to pace from user space by small batches). A
 *            frame longer than the template gets the rest of its bytes from the test run's data
 *            (the caller passes the whole frame, payload zero-filled): nothing on the measured
 *            paths writes beyond the headers. Every GEN_STAMP_EVERY frames it notes the clock.
 *
 *  xlb_sink  counts what arrives and drops it; ARP and IPv6 neighbour discovery go up the stack
 *            (counted apart) so that a namespace with a sink keeps resolving neighbours. Attached
 *            to a veth, it also gives the veth NAPI, which a veth needs to accept XDP frames.
 *            While the per-CPU sample budget (gen_stats[GEN_ST_SAMPLE_LEFT]) is not 0, it copies
 *            the first GEN_SAMPLE_MAX bytes of each frame into sink_samples (slot = budget - 1),
 *            so that a bench can check what the path under test delivered.
 *
 *  xdp_redirect_floor
 *            the end-to-end benchmark's floor (scripts/bench-e2e.ts), attached to the balancer's
 *            ingress in place of xlb: writes the Ethernet addresses floor_dmac / floor_smac and
 *            redirects to floor_ifindex (load-time settings); no parsing, no lookup: what any XDP
 *            forwarder costs at least. (It lives here, not in baseline.bpf.c, whose program and
 *            variable list the addon's tests pin down.)
 *
 * gen_stats (per-CPU): see GEN_ST_*; [GEN_ST_GENERATED] is also the generator's flow sequence;
 * the T0/T1 marks give a run's rate over wall time: (T1_SEQ - T0_SEQ) / (T1_NS - T0_NS).
 * The layout of struct gen_cfg is mirrored in scripts/bench/gen-config.ts, the GEN_ST_* slots and
 * struct gen_sample there as well.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define GEN_FRAME_MAX 128 /* template bytes; a multiple of 8 */

/* gen_stats slots */
#define GEN_ST_GENERATED   0 /* frames generated (the flow sequence) */
#define GEN_ST_SUNK        1 /* frames the sink counted and dropped */
#define GEN_ST_SINK_PASSED 2 /* ARP / neighbour discovery the sink passed to the stack */
#define GEN_ST_SAMPLE_LEFT 3 /* frames the sink still copies into sink_samples */
#define GEN_ST_NEXT_NS     4 /* paced generator: when the next frame is due (bpf_ktime_get_ns) */
#define GEN_ST_T0_NS       5 /* the clock at the first frame after it was set to 0 ... */
#define GEN_ST_T0_SEQ      6 /* ... and that frame's sequence number */
#define GEN_ST_T1_NS       7 /* the clock at the last frame whose sequence is a multiple of */
#define GEN_ST_T1_SEQ      8 /* GEN_STAMP_EVERY, and that sequence number */
#define GEN_ST_MAX         9

/* The generator reads the clock every GEN_STAMP_EVERY frames (and at a run's first), so that a
 * rate can be taken over wall time however the test run was preempted. */
#define GEN_STAMP_EVERY 64

/* A paced generator that falls behind (the frames' processing ran on its CPU, or it was
 * preempted) catches up by sending at once, as long as it is at most this many gaps late (a
 * burst of at most a veth ring); later, it starts over from "now" (e.g. after a test run's set-up). */
#define GEN_PACE_SLACK 256

#define GEN_SAMPLE_SLOTS 64
#define GEN_SAMPLE_MAX   128

struct gen_sample {
	__u32 len;                  /* the frame's length (the copy holds at most GEN_SAMPLE_MAX) */
	__u32 pad;
	__u8  data[GEN_SAMPLE_MAX];
};

const volatile __u32 floor_ifindex = 0;
const volatile __u8 floor_dmac[6] = {};
const volatile __u8 floor_smac[6] = {};

struct gen_cfg {
	__u8  frame[GEN_FRAME_MAX]; /* the frame of flow 0, checksums valid */
	__u32 len;                  /* template bytes written: 8..GEN_FRAME_MAX, <= the test-run data size */
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
	__u32 gap_ns;               /* paced: ns between two frames (per CPU); 0 = full speed. The
	                             * program spins with bottom halves off: keep it small (<= 1 ms) */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_cfg);
} gen_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GEN_ST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} gen_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GEN_SAMPLE_SLOTS);
	__type(key, __u32);
	__type(value, struct gen_sample);
} sink_samples SEC(".maps");

struct pace_wait {
	__u64 until;
};

static long pace_spin(__u32 i, void *arg)
{
	struct pace_wait *w = arg;

	return bpf_ktime_get_ns() >= w->until; /* 1 stops the loop */
}

/*
 * Pacing: wait (spinning in bpf_loop, at most 2^23 clock reads per frame) until this CPU's next
 * frame is due, then move the due time on by gap_ns. A late frame goes at once (catching up);
 * the first frame, or one more than GEN_PACE_SLACK gaps late, restarts the schedule from now.
 */
static __always_inline void pace(__u32 gap_ns)
{
	__u32 k = GEN_ST_NEXT_NS;
	__u64 *next = bpf_map_lookup_elem(&gen_stats, &k);
	struct pace_wait w;
	__u64 now;

	if (!next)
		return;
	now = bpf_ktime_get_ns();
	if (*next == 0 || now > *next + (__u64)gap_ns * GEN_PACE_SLACK) {
		*next = now + gap_ns;
		return;
	}
	if (now < *next) {
		w.until = *next;
		bpf_loop(1 << 23, pace_spin, &w, 0);
	}
	*next += gap_ns;
}

static __always_inline void stamp_at(__u32 slot, __u64 v)
{
	__u64 *p = bpf_map_lookup_elem(&gen_stats, &slot);

	if (p)
		*p = v;
}

/* Wall-clock marks of this CPU's run (GEN_ST_T0_* / GEN_ST_T1_*). */
static __always_inline void stamp(__u64 n)
{
	__u32 k = GEN_ST_T0_NS;
	__u64 *t0 = bpf_map_lookup_elem(&gen_stats, &k);
	__u64 now;

	if (!t0)
		return;
	if (*t0 && (n % GEN_STAMP_EVERY))
		return;
	now = bpf_ktime_get_ns();
	if (!*t0) {
		*t0 = now;
		stamp_at(GEN_ST_T0_SEQ, n);
	}
	if (n % GEN_STAMP_EVERY == 0) {
		stamp_at(GEN_ST_T1_NS, now);
		stamp_at(GEN_ST_T1_SEQ, n);
	}
}

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
	__u32 k0 = GEN_ST_GENERATED;
	struct gen_cfg *cfg = bpf_map_lookup_elem(&gen_config, &k0);
	__u64 *seq = bpf_map_lookup_elem(&gen_stats, &k0);
	__u16 *sport, *saddr, *csum;
	__u16 old_sport, old_saddr, new_sport, new_saddr, span;
	__u32 flow, len;
	__u64 n;

	if (!cfg || !seq)
		return XDP_ABORTED;
	if (cfg->gap_ns)
		pace(cfg->gap_ns);

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
	stamp(n);
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

/* ARP, or an ICMPv6 neighbour discovery message (router/neighbour solicitation and advertisement,
 * redirect: types 133..137) right after a fixed IPv6 header. */
static __always_inline int is_neighbour_discovery(void *data, void *data_end)
{
	__u8 *p = data;

	if (data + 14 > data_end)
		return 0;
	if (p[12] == 0x08 && p[13] == 0x06)
		return 1;
	if (p[12] != 0x86 || p[13] != 0xdd || data + 14 + 40 + 1 > data_end)
		return 0;
	return p[14 + 6] == 58 && p[14 + 40] >= 133 && p[14 + 40] <= 137;
}

SEC("xdp")
int xlb_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 k = GEN_ST_SUNK;
	__u64 *count;
	__u64 *left;
	struct gen_sample *s;
	__u64 n;

	if (is_neighbour_discovery(data, data_end)) {
		k = GEN_ST_SINK_PASSED;
		count = bpf_map_lookup_elem(&gen_stats, &k);
		if (count)
			*count += 1;
		return XDP_PASS;
	}
	count = bpf_map_lookup_elem(&gen_stats, &k);
	if (count)
		*count += 1;

	k = GEN_ST_SAMPLE_LEFT;
	left = bpf_map_lookup_elem(&gen_stats, &k);
	if (!left || *left == 0)
		return XDP_DROP;
	*left -= 1;
	k = (__u32)*left & (GEN_SAMPLE_SLOTS - 1);
	s = bpf_map_lookup_elem(&sink_samples, &k);
	if (!s)
		return XDP_DROP;
	n = data_end - data;
	s->len = n;
	/* the length in one 64-bit register, bounded where the verifier sees it; a longer frame:
	 * its first GEN_SAMPLE_MAX bytes */
	asm volatile("" : "+r"(n));
	if (n < 1 || n > GEN_SAMPLE_MAX)
		n = GEN_SAMPLE_MAX;
	bpf_xdp_load_bytes(ctx, 0, s->data, n);
	return XDP_DROP;
}

SEC("xdp")
int xdp_redirect_floor(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *eth = data;

	if (data + 12 > data_end)
		return XDP_DROP;
#pragma unroll
	for (int i = 0; i < 6; i++) {
		eth[i] = floor_dmac[i];
		eth[6 + i] = floor_smac[i];
	}
	return bpf_redirect(floor_ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
