/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * xlb.bpf.c - the XDP forwarder of xlb: a layer-4 load balancer for virtual
 * services (VIP, port, protocol), forwarding to real servers by direct
 * routing (DR: Ethernet rewrite) or IP-in-IP tunnelling (TUN), scheduled by
 * Maglev consistent hashing and kept on their real by a connection table.
 *
 * Maps (their names are the interface to the control plane,
 * src/datapath/xdp/forwarder.ts; layouts in include/xlb_abi.h):
 *   services       HASH   struct xlb_vip_key -> struct xlb_service      (here)
 *   reals          ARRAY  __u32 real id -> struct xlb_real               (here)
 *   config         ARRAY  1 entry, struct xlb_config                     (here)
 *   maglev_tables  ARRAY_OF_MAPS, service id -> ARRAY slot -> real id    (lib/maglev.h)
 *   conntrack      LRU_HASH per-CPU lists, xlb_flow_key -> xlb_flow      (lib/ct.h)
 *   service_stats, real_stats, global_stats   PERCPU_ARRAY              (lib/stats.h)
 * Load-time setting: maglev_size (lib/maglev.h).
 *
 * The path of a packet, and the policy at each step:
 *
 *  1. RX. Ethernet with at most one 802.1Q tag (kept on output). A frame
 *     shorter than its Ethernet header (+ tag) is dropped (DROP_TRUNCATED);
 *     anything but IPv4/IPv6 is passed (PASS_NON_IP).
 *  2. The IP header is parsed and checked: a truncated or malformed IP header
 *     is dropped whatever its destination (the kernel would drop it too).
 *     IPv6: up to 4 extension headers (0, 43, 60, 44) are walked.
 *  3. Is the destination a VIP? One lookup of the address marker
 *     {daddr, port 0, proto 0, family} that the control plane keeps for every
 *     VIP address. None: XDP_PASS, PASS_NON_SERVICE. This is ALL the work
 *     done for traffic that is not ours (no transport parsing, one hash
 *     lookup), so the non-service path is as cheap as it can be, and a broken
 *     transport header to a non-VIP is never dropped by us.
 *     The spec introduces the marker for fragments and ICMP; using it first,
 *     as the VIP filter, turns a miss into one lookup instead of two (port,
 *     then all ports) at the price of one lookup more on balanced packets.
 *     Measured with BPF_PROG_TEST_RUN (repeat=1, one flow): non-service
 *     x1.5 of XDP_TX instead of x1.7-1.8 (target x2), established DR x2.5
 *     instead of x2.2 (target x4). Consequence: a service whose marker is
 *     missing is not served; the control plane writes the marker with every
 *     service and deletes it with the last service of the address.
 *  4. By protocol, for a VIP address:
 *     - TCP/UDP, not a fragment: the service {daddr, dport, proto}, else the
 *       all-ports service {daddr, 0, proto}; neither: PASS_NON_SERVICE.
 *       Only for a service is the transport header checked: TCP 20 bytes
 *       (DROP_TRUNCATED), data offset >= 5 (DROP_MALFORMED); UDP 8 bytes
 *       (DROP_TRUNCATED). Fewer than the 4 port bytes: only an all-ports
 *       service can be meant; dropped as truncated if one exists, else passed.
 *     - TCP/UDP fragments (IPv4 MF or offset != 0; IPv6 fragment header
 *       present): the all-ports service {daddr, 0, proto} takes them with the
 *       address hash and no connection table (FRAGMENT_FWD). Without one the
 *       fragment is dropped (DROP_FRAGMENT): the VIP's ports are balanced,
 *       and later fragments (no ports) could not follow the first.
 *     - ICMP (IPv4 proto 1) and ICMPv6 (IPv6 proto 58) errors (v4 types 3,
 *       11; v6 types 1, 2, 3) quoting a TCP/UDP packet the VIP sent are
 *       parsed (truncated: DROP_TRUNCATED; malformed quoted IP header:
 *       DROP_MALFORMED) and, when the quoted flow belongs to a service,
 *       steered to that flow's real unchanged but for the forwarding method
 *       (ICMP_FWD). Echo, other types, errors about other protocols or no
 *       service: PASS_LOCAL.
 *     - any other protocol, and fragments of protocols that are not balanced
 *       (fragmented ICMP, GRE, ...): PASS_LOCAL (the local stack owns the
 *       VIP address; only balanced protocols' fragments are dropped).
 *  5. The flow key: {saddr, daddr, sport, dport, proto, family, pad 0} of the
 *     client -> VIP direction (for ICMP errors, the quoted packet reversed;
 *     for fragments, ports 0).
 *  6. Choosing the real.
 *     Hashes (lib/hash.h): the scheduling hash covers the client address for
 *     services with XLB_SVC_F_HASH_SRC_ONLY, else both addresses for all-ports
 *     services and fragments (so the fragments and the whole packets of a
 *     flow agree), else the 5-tuple. SRC_ONLY wins over all-ports: it is
 *     port-independent as well, so fragments still agree with whole packets.
 *     The TUN outer-source hash is the 5-tuple hash, or the address hash for
 *     all-ports services and fragments; it is computed only when the tunnel
 *     spreads over > 0 bits and no scheduling hash of the same kind exists.
 *     Connection table (not for XLB_SVC_F_OPS services, not for fragments):
 *     - TCP SYN without ACK: no lookup; scheduled, entry written (a new
 *       connection; a retransmitted SYN is scheduled again). Counted as a
 *       CT_MISS: the ABI defines the counter as "scheduled by Maglev", and a
 *       new connection is by definition not in the table.
 *     - else a lookup: an entry whose real is active and that belongs to this
 *       service (its service id matches: ids are reused after a service is
 *       removed) is a CT_HIT; an entry failing either check is CT_STALE
 *       (rescheduled, rewritten); no entry is a CT_MISS (scheduled, written).
 *     - ICMP errors look the flow up but never write (no CT counters: they
 *       count ICMP_FWD); a miss or stale entry is scheduled by Maglev with
 *       the forward direction's hash.
 *     Maglev: slot = hash % maglev_size in the service's table; no table,
 *     an empty slot or an inactive real: DROP_NO_REAL.
 *  7. Forwarding by the real's method: DR rewrites the Ethernet addresses;
 *     TUN needs the real's family to be the packet's (else DROP_ENCAP) and
 *     inserts an outer header (lib/encap.h); unknown method: DROP_ENCAP.
 *     Then XDP_TX when the real's ifindex is 0 or the ingress interface (TX),
 *     else bpf_redirect to it (REDIRECT).
 *  8. Accounting, only for a forwarded packet: the connection-table write,
 *     service_stats[service] and real_stats[real] += 1 packet, the frame
 *     length as received in bytes, and 1 conn when an entry was created or
 *     rewritten. A packet dropped after scheduling (DROP_ENCAP) leaves no
 *     entry and no statistics behind.
 *
 * Every packet counts XLB_CNT_RX and exactly one of the verdict counters
 * (PASS_*, DROP_*, TX, REDIRECT), added at the program's single exit.
 * Besides: a whole TCP/UDP packet of a service without XLB_SVC_F_OPS counts
 * one of CT_HIT/CT_MISS/CT_STALE when the table is consulted (even if it is
 * dropped afterwards); a forwarded fragment FRAGMENT_FWD, a forwarded ICMP
 * error ICMP_FWD.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xlb_abi.h"
#include "lib/parse.h"
#include "lib/csum.h"
#include "lib/hash.h"
#include "lib/encap.h"
#include "lib/maglev.h"
#include "lib/ct.h"
#include "lib/stats.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * services: BPF_F_NO_PREALLOC, so that its few entries live in slab memory
 * (the kernel's linear map, huge pages) rather than in a vmalloc'd preallocated
 * area (4 KiB pages): every balanced packet looks it up, and on this path TLB
 * misses, not instructions, are the cost. It also means a deleted entry is
 * freed after an RCU grace period instead of being reused at once for another
 * key while a program may still read it. The control plane is the only writer.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, XLB_MAX_SERVICES * 2); /* services + one address marker per VIP */
	__type(key, struct xlb_vip_key);
	__type(value, struct xlb_service);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XLB_MAX_REALS);
	__type(key, __u32);
	__type(value, struct xlb_real);
} reals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xlb_config);
} config SEC(".maps");

/*
 * BTF anchor: the ABI enums are used only as constants, which leaves them out
 * of the object's BTF; this read-only variable puts them in, so that the
 * control plane's ABI test can compare them. Never read; costs 12 bytes of
 * .rodata and nothing at run time.
 */
const volatile struct xlb_btf_anchor {
	enum xlb_counter counter;
	enum xlb_method  method;
	enum xlb_family  family;
} xlb_btf_anchor;

/* What kind of packet is being balanced. */
#define XLB_KIND_FLOW 0   /* a whole TCP/UDP packet */
#define XLB_KIND_FRAG 1   /* a TCP/UDP fragment: all-ports service, no conntrack */
#define XLB_KIND_ICMP 2   /* an ICMP error about a flow: conntrack read only */

/* A packet on its way to a real: what the balancing steps need. */
struct xlb_pkt {
	struct xlb_flow_key key;  /* the forward flow (client -> VIP); for ICMP, the quoted one reversed */
	void *l3;                 /* the (outer) IP header: what TUN encapsulates */
	__u32 l2len;              /* 14, or 18 with a VLAN tag */
	__u32 len;                /* frame length as received */
	__u32 svc_id;
	__u32 svc_flags;
	__u8  kind;               /* XLB_KIND_* */
	__u8  all_ports;          /* the service matched is an all-ports one */
	__u8  syn_only;           /* TCP SYN without ACK */
};

/* A verdict and the global counter that says why: the counter is added once,
 * at the program's single exit (one copy of the counter code, not one per
 * verdict). */
static __always_inline int xlb_verdict(__u32 *cnt, __u32 counter, int action)
{
	*cnt = counter;
	return action;
}

/* A parser failure to a verdict: truncated or malformed header, dropped. */
static __always_inline int xlb_parse_drop(__u32 *cnt, int rc)
{
	return xlb_verdict(cnt, rc == XLB_P_BAD ? XLB_CNT_DROP_MALFORMED : XLB_CNT_DROP_TRUNCATED, XDP_DROP);
}

/* The real with this id if it is in use, else NULL. */
static __always_inline struct xlb_real *xlb_real_get(__u32 real_id)
{
	struct xlb_real *r;

	if (real_id == XLB_ID_NONE)
		return NULL;
	r = bpf_map_lookup_elem(&reals, &real_id);
	if (!r || !(r->flags & XLB_REAL_F_ACTIVE))
		return NULL;
	return r;
}

/*
 * Steps 6-8 of the header comment: choose the real, rewrite the frame toward
 * it, account, return the verdict.
 */
static __always_inline int xlb_balance(struct xdp_md *ctx, struct xlb_pkt *p, __u32 *cnt)
{
	int hashed_kind = -1, tun_kind, sched_kind;
	int use_ct, store = 0, ret;
	struct xlb_real *real = NULL;
	struct xlb_config *cfg;
	__u32 real_id = XLB_ID_NONE;
	__u32 hash = 0, zero = 0;

	tun_kind = (p->all_ports || p->kind == XLB_KIND_FRAG) ? XLB_HASH_ADDRS : XLB_HASH_5TUPLE;
	sched_kind = (p->svc_flags & XLB_SVC_F_HASH_SRC_ONLY) ? XLB_HASH_SRC : tun_kind;
	use_ct = !(p->svc_flags & XLB_SVC_F_OPS) && p->kind != XLB_KIND_FRAG;

	/* the connection table */
	if (use_ct) {
		__u32 counter = XLB_CNT_CT_MISS;

		/* a SYN opens a new connection: a miss without looking */
		if (!(p->kind == XLB_KIND_FLOW && p->syn_only)) {
			struct xlb_flow *f = xlb_ct_lookup(&p->key);

			if (f) {
				counter = XLB_CNT_CT_STALE;
				if (f->service_id == p->svc_id) {
					real_id = f->real_id;
					real = xlb_real_get(real_id);
					if (real)
						counter = XLB_CNT_CT_HIT;
				}
			}
		}
		if (p->kind == XLB_KIND_FLOW)
			xlb_count(counter);
	}

	/* Maglev, for everything the table did not place */
	if (!real) {
		hash = xlb_flow_hash(&p->key, sched_kind);
		hashed_kind = sched_kind;
		real_id = xlb_maglev_pick(p->svc_id, hash);
		real = xlb_real_get(real_id);
		if (!real)
			return xlb_verdict(cnt, XLB_CNT_DROP_NO_REAL, XDP_DROP);
		store = use_ct && p->kind == XLB_KIND_FLOW;
	}

	/* the frame, toward the real */
	if (real->method == XLB_METHOD_DR) {
		void *data = (void *)(long)ctx->data;
		void *data_end = (void *)(long)ctx->data_end;

		if (data + sizeof(struct ethhdr) > data_end) /* checked by the parser; for the verifier */
			return xlb_verdict(cnt, XLB_CNT_DROP_TRUNCATED, XDP_DROP);
		xlb_set_macs(data, real);
	} else if (real->method == XLB_METHOD_TUN) {
		__u32 bits;

		if (real->family != p->key.family)
			return xlb_verdict(cnt, XLB_CNT_DROP_ENCAP, XDP_DROP);
		cfg = bpf_map_lookup_elem(&config, &zero);
		if (!cfg)
			return xlb_verdict(cnt, XLB_CNT_DROP_ENCAP, XDP_DROP);
		bits = p->key.family == XLB_AF_INET ? cfg->tun_src4_bits : cfg->tun_src6_bits;
		if (bits && hashed_kind != tun_kind)
			hash = xlb_flow_hash(&p->key, tun_kind);
		if (p->key.family == XLB_AF_INET)
			ret = xlb_encap4(ctx, p->l3, p->l2len, real, cfg, hash);
		else
			ret = xlb_encap6(ctx, p->l3, p->l2len, real, cfg, hash);
		if (ret)
			return xlb_verdict(cnt, XLB_CNT_DROP_ENCAP, XDP_DROP);
	} else {
		return xlb_verdict(cnt, XLB_CNT_DROP_ENCAP, XDP_DROP);
	}

	/* accounting */
	if (store)
		xlb_ct_store(&p->key, real_id, p->svc_id);
	if (p->kind == XLB_KIND_FRAG)
		xlb_count(XLB_CNT_FRAGMENT_FWD);
	else if (p->kind == XLB_KIND_ICMP)
		xlb_count(XLB_CNT_ICMP_FWD);
	xlb_stats_add(&service_stats, p->svc_id, p->len, store);
	xlb_stats_add(&real_stats, real_id, p->len, store);

	if (real->ifindex == 0 || real->ifindex == ctx->ingress_ifindex)
		return xlb_verdict(cnt, XLB_CNT_TX, XDP_TX);
	*cnt = XLB_CNT_REDIRECT;
	return bpf_redirect(real->ifindex, 0);
}

/* Look up {addr, port, proto}, then {addr, 0, proto}; *all_ports says which
 * matched. vk holds the address and family; its port and proto are set here. */
static __always_inline struct xlb_service *xlb_service_get(struct xlb_vip_key *vk, __be16 port, __u8 proto,
							   __u8 *all_ports)
{
	struct xlb_service *svc;

	vk->port = port;
	vk->proto = proto;
	svc = bpf_map_lookup_elem(&services, vk);
	*all_ports = port == 0;
	if (!svc && port != 0) {
		vk->port = 0;
		svc = bpf_map_lookup_elem(&services, vk);
		*all_ports = 1;
	}
	return svc;
}

/* Steps 1-5 of the header comment; xlb_balance does the rest. */
static __always_inline int xlb_handle(struct xdp_md *ctx, __u32 *cnt)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct xlb_cursor c = { .pos = data, .end = data_end };
	struct xlb_vip_key vk = {};
	struct xlb_pkt p;       /* filled once the destination is a VIP */
	struct xlb_service *svc;
	struct iphdr *ip4 = NULL;
	struct ipv6hdr *ip6 = NULL;
	__be16 eth_proto, sport, dport;
	__u8 proto, frag;
	int rc;

	/* 1. Ethernet */
	if (xlb_parse_eth(&c, &eth_proto))
		return xlb_verdict(cnt, XLB_CNT_DROP_TRUNCATED, XDP_DROP);
	p.l2len = c.pos == data + sizeof(struct ethhdr) ? sizeof(struct ethhdr)
						      : sizeof(struct ethhdr) + sizeof(struct xlb_vlan_hdr);
	p.len = data_end - data;

	/* 2. IP */
	if (eth_proto == bpf_htons(ETH_P_IP)) {
		rc = xlb_parse_ipv4(&c, &ip4);
		if (rc)
			return xlb_parse_drop(cnt, rc);
		proto = ip4->protocol;
		frag = xlb_ipv4_is_fragment(ip4);
		p.l3 = ip4;
		vk.family = XLB_AF_INET;
		__builtin_memcpy(vk.addr, &ip4->daddr, 4);
	} else if (eth_proto == bpf_htons(ETH_P_IPV6)) {
		rc = xlb_parse_ipv6(&c, &ip6, &proto, &frag);
		if (rc)
			return xlb_parse_drop(cnt, rc);
		p.l3 = ip6;
		vk.family = XLB_AF_INET6;
		__builtin_memcpy(vk.addr, &ip6->daddr, 16);
	} else {
		return xlb_verdict(cnt, XLB_CNT_PASS_NON_IP, XDP_PASS);
	}

	/* 3. a VIP? The address marker {daddr, 0, 0, family}: the one lookup
	 * that traffic which is not ours pays */
	if (!bpf_map_lookup_elem(&services, &vk))
		return xlb_verdict(cnt, XLB_CNT_PASS_NON_SERVICE, XDP_PASS);
	__builtin_memset(&p.key, 0, sizeof(p.key));
	p.all_ports = 0;
	p.syn_only = 0;

	/* 4. by protocol */
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		vk.proto = proto;
		if (frag) {
			/* fragments: the all-ports service, or dropped */
			svc = bpf_map_lookup_elem(&services, &vk);
			if (!svc)
				return xlb_verdict(cnt, XLB_CNT_DROP_FRAGMENT, XDP_DROP);
			p.kind = XLB_KIND_FRAG;
			p.all_ports = 1;
		} else {
			if (xlb_parse_ports(&c, &sport, &dport)) {
				/* no ports: only an all-ports service can be meant */
				if (bpf_map_lookup_elem(&services, &vk))
					return xlb_verdict(cnt, XLB_CNT_DROP_TRUNCATED, XDP_DROP);
				return xlb_verdict(cnt, XLB_CNT_PASS_NON_SERVICE, XDP_PASS);
			}
			svc = xlb_service_get(&vk, dport, proto, &p.all_ports);
			if (!svc)
				return xlb_verdict(cnt, XLB_CNT_PASS_NON_SERVICE, XDP_PASS);
			/* a service's packet: its transport header must be sound */
			if (proto == IPPROTO_TCP) {
				int syn_only = 0;

				rc = xlb_check_tcp(&c, &syn_only);
				p.syn_only = syn_only;
			} else {
				rc = xlb_check_udp(&c);
			}
			if (rc)
				return xlb_parse_drop(cnt, rc);
			p.key.sport = sport;
			p.key.dport = dport;
			p.kind = XLB_KIND_FLOW;
		}
		if (ip4) {
			__builtin_memcpy(p.key.saddr, &ip4->saddr, 4);
			__builtin_memcpy(p.key.daddr, &ip4->daddr, 4);
		} else if (ip6) {
			__builtin_memcpy(p.key.saddr, &ip6->saddr, 16);
			__builtin_memcpy(p.key.daddr, &ip6->daddr, 16);
		}
		p.key.proto = proto;
	} else if ((proto == IPPROTO_ICMP && ip4) || (proto == IPPROTO_ICMPV6 && ip6)) {
		struct xlb_quoted q;

		if (frag)
			return xlb_verdict(cnt, XLB_CNT_PASS_LOCAL, XDP_PASS);
		rc = ip4 ? xlb_parse_icmp4_error(&c, &q) : xlb_parse_icmp6_error(&c, &q);
		if (rc == XLB_P_NOT_FLOW)
			return xlb_verdict(cnt, XLB_CNT_PASS_LOCAL, XDP_PASS);
		if (rc)
			return xlb_parse_drop(cnt, rc);
		/* the quoted packet went VIP -> client: the flow is its reverse */
		__builtin_memcpy(p.key.saddr, q.daddr, 16);
		__builtin_memcpy(p.key.daddr, q.saddr, 16);
		p.key.sport = q.dport;
		p.key.dport = q.sport;
		p.key.proto = q.proto;
		__builtin_memcpy(vk.addr, q.saddr, 16);
		svc = xlb_service_get(&vk, q.sport, q.proto, &p.all_ports);
		if (!svc)
			return xlb_verdict(cnt, XLB_CNT_PASS_LOCAL, XDP_PASS);
		p.kind = XLB_KIND_ICMP;
	} else {
		return xlb_verdict(cnt, XLB_CNT_PASS_LOCAL, XDP_PASS);
	}
	p.key.family = vk.family;

	p.svc_id = svc->id;
	p.svc_flags = svc->flags;
	return xlb_balance(ctx, &p, cnt);
}

SEC("xdp")
int xlb_xdp(struct xdp_md *ctx)
{
	__u32 cnt = XLB_CNT_MAX;
	int action;

	xlb_count(XLB_CNT_RX);
	action = xlb_handle(ctx, &cnt);
	xlb_count(cnt);
	return action;
}
