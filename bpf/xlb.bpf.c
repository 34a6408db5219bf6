/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * xlb.bpf.c - the XDP forwarder of xlb: a layer-4 load balancer for virtual
 * services (VIP, port, protocol), forwarding to real servers by direct
 * routing (DR: Ethernet rewrite), IP-in-IP tunnelling (TUN), NAT (IPVS
 * "masquerade": destination rewritten, replies translated back) or full-NAT
 * (source rewritten too), scheduled by Maglev consistent hashing and kept on
 * their real by a connection table.
 *
 * Maps (their names are the interface to the control plane,
 * src/datapath/xdp/forwarder.ts; layouts in include/xlb_abi.h):
 *   services       HASH   struct xlb_vip_key -> struct xlb_service      (here)
 *   vip_filter     ARRAY  bitmap of the VIP addresses (xlb_abi.h)        (here)
 *   reals          ARRAY  __u32 real id -> struct xlb_real               (here)
 *   config         ARRAY  1 entry, struct xlb_config                     (here)
 *   ifaces         ARRAY  ifindex & (size-1) -> struct xlb_iface (our MAC) (here)
 *   meta, real_meta   ARRAY  the control plane's own state, never read here (here)
 *   maglev_tables  ARRAY_OF_MAPS, service id -> ARRAY slot -> real id    (lib/maglev.h)
 *   conntrack4     LRU_HASH per-CPU lists, xlb_flow_key4 -> xlb_flow     (lib/ct.h)
 *   conntrack      LRU_HASH per-CPU lists, xlb_flow_key -> xlb_flow (IPv6) (lib/ct.h)
 *   nat            LRU_HASH, xlb_flow_key (reply direction) -> xlb_nat    (lib/nat.h)
 *   nat_ports      ARRAY, bitmap of the ports NAT replies come from       (lib/nat.h)
 *   persist        LRU_HASH per-CPU lists, xlb_persist_key -> xlb_persist (lib/persist.h)
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
 *  3. Is the destination a VIP? First the vip_filter bitmap (one inlined
 *     array lookup): the address's bit clear, it is none (PASS_NON_SERVICE,
 *     or step 3b), with no hash lookup at all. The bit set (a VIP's, or an
 *     address that shares one's bit): for a whole TCP/UDP packet whose ports
 *     are present, the service {daddr, dport, proto} is looked up first; found,
 *     the address is a VIP and the packet is balanced with this one hash
 *     lookup. Otherwise (no such service, or other packets) the address marker
 *     {daddr, port 0, proto 0, family} that the control plane keeps for every
 *     VIP address decides. No marker: XDP_PASS, PASS_NON_SERVICE, with no
 *     further transport parsing, so a broken transport header to a non-VIP is
 *     never dropped by us.
 *     Why: the marker lookup first (the design before) cost every balanced
 *     packet two hash lookups. Measured with BPF_PROG_TEST_RUN, repeat=20000
 *     (paths that are the same on their own output), interleaved, medians
 *     over XDP_TX on a shared 2-vCPU VM: established DR +109 -> +82 ns,
 *     IPv6 +109 -> +84 ns, non-service +28 -> +8 ns.
 *     Consequences: a service whose address bit is clear is not served (the
 *     control plane sets the bit before it writes an address's first service
 *     and marker, and clears it after the last are deleted); a service whose
 *     marker is missing is served on its own port (the control plane writes
 *     the marker right after the service, so only for that moment).
 * 3b. Not a VIP, but NAT in use (config.nat_flags & XLB_CFG_F_NAT, which the
 *     control plane sets while a NAT or full-NAT real exists; one array
 *     lookup, inlined by the verifier, is all it costs otherwise): a TCP or
 *     UDP packet that is no fragment may be a real's reply. Only its ports
 *     are read; a source port no NAT real answers from (the nat_ports
 *     bitmap: one more inlined array lookup) is PASS_NON_SERVICE at once;
 *     else the NAT state is looked up by {saddr, daddr, sport, dport, proto,
 *     family} (xlb_nat_reply). No entry, or an expired one
 *     (NAT_EXPIRED): PASS_NON_SERVICE, unchanged. A live entry: the transport
 *     header is checked (as in step 4), the source becomes the VIP and its
 *     port (full-NAT: the destination the client and its port too), the
 *     checksums are updated incrementally, the Ethernet addresses become those
 *     of the client's frame reversed (return to the sender's MAC: no route
 *     lookup), a FIN or RST moves the entry to the short timeout; NAT_REPLY,
 *     and TX when the client's frames came in on this interface, else
 *     REDIRECT to theirs. A translated reply is never passed: its source is
 *     the balancer's own address, a martian to the kernel. Fragments of
 *     replies are passed.
 *     An ICMP/ICMPv6 error (types as in step 4) whose quoted packet, reversed,
 *     is a live entry's key (what a real, or a router on its side, answers a
 *     packet we sent it with) is made to be about the packet the client sent:
 *     from the VIP (full-NAT: to the client), quoting client -> VIP:port,
 *     every checksum updated (outer IPv4 header, quoted IPv4 header, quoted
 *     transport checksum when the quote holds it, ICMP), then sent as a reply
 *     is (xlb_nat_icmp_reply; NAT_ICMP). Not an entry's, or not parsable: not
 *     ours, PASS_NON_SERVICE.
 * 3c. A VIP, but the frame is unicast to another host's MAC (a switch
 *     flooded it: its MAC table lost the VRRP master's port, say): passed
 *     unchanged (PASS_OTHER_HOST), and the kernel drops it as PACKET_OTHERHOST,
 *     as it would for IPVS. Else a backup would balance it too (duplicates at
 *     the reals, and a backup serving before it is master). Only where the
 *     ingress interface's MAC is known (the ifaces map, written when the
 *     control plane attaches); one inlined array lookup, on the VIP path only.
 *  4. By protocol, for a VIP address:
 *     - TCP/UDP, not a fragment: the service {daddr, dport, proto}, else the
 *       all-ports service {daddr, 0, proto}; neither: PASS_NON_SERVICE.
 *       Only for a service is the transport header checked: TCP 20 bytes
 *       (DROP_TRUNCATED), data offset >= 5 (DROP_MALFORMED), its flags read
 *       (SYN without ACK; FIN or RST, for NAT); UDP 8 bytes
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
 *       service: PASS_LOCAL. An error whose flow's real is a NAT or full-NAT
 *       one is translated (xlb_nat_icmp_forward) to be about what the real
 *       sent: quoted source := real:port and outer destination := the real
 *       (full-NAT also quoted destination := the full-NAT address and the
 *       flow's port from the connection table, outer source := the
 *       full-NAT address; a flow the table does not know: PASS_LOCAL),
 *       checksums updated; ICMP_FWD and NAT_ICMP.
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
 *     Connection table (not for XLB_SVC_F_OPS services, not for fragments),
 *     whose entries also hold a full-NAT flow's source port:
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
 *     Persistence (services with persist_timeout != 0; xlb_persist): what
 *     the table did not place goes to the real of the client network's
 *     template {service, client address masked to persist_plen}, when it is
 *     live (seen within the timeout) and its real active and not drained
 *     (PERSIST_HIT; a whole packet refreshes it). Otherwise Maglev chooses by
 *     the hash of the masked client address and a whole packet writes the
 *     template (PERSIST_NEW). Fragments and ICMP errors read templates, never
 *     write them. An established flow (CT_HIT) refreshes its template when
 *     the flow's about-second (persist_seen in its table entry) has changed:
 *     most of its packets pay one clock read; a missing or expired template
 *     is written again with the flow's real. Services without persistence
 *     pay one test of persist_timeout.
 *     Maglev: slot = hash % maglev_size in the service's table; no table,
 *     an empty slot or an inactive real: DROP_NO_REAL.
 *  7. Forwarding by the real's method: DR rewrites the Ethernet addresses;
 *     TUN needs the real's family to be the packet's (else DROP_ENCAP) and
 *     inserts an outer header (lib/encap.h); unknown method: DROP_ENCAP.
 *     NAT and full-NAT (xlb_nat_forward; fragments and another family:
 *     DROP_NAT) first make sure the flow has live NAT state, keyed by what
 *     the real will send back:
 *     - NAT: the key is {real, client, real port, client port}. A live entry
 *       of this flow is refreshed (FIN/RST: short timeout); otherwise (none,
 *       evicted, expired: NAT_EXPIRED, or a TCP SYN: a new connection) it is
 *       written with the VIP, the client, the client frame's MACs and ingress
 *       interface (NAT_CREATED).
 *     - full-NAT: the key is {real, full-NAT address, real port, our port};
 *       no full-NAT address configured: DROP_NAT. The port the connection
 *       table holds is kept while its entry is the flow's (or recreated when
 *       it was lost); else up to XLB_NAT_PORT_TRIES candidates derived from
 *       the 5-tuple hash, in an order fixed per flow, are tried: free
 *       (claimed with BPF_NOEXIST), expired (taken over) or the flow's own
 *       (a retransmitted SYN, a flow the table forgot) is taken; all in use
 *       by live flows: DROP_NAT_NO_PORT. A packet that is no SYN (a flow
 *       under way the table forgot) first looks for the flow's own entry
 *       among all candidates, so that it keeps its port even when an
 *       earlier candidate has come free since.
 *     Then destination := real:port (the real's port, or the packet's when
 *     0), full-NAT also source := full-NAT address:port, checksums updated
 *     incrementally (RFC 1624; UDP checksum 0 stays 0), TTL untouched as in
 *     DR, then DR's Ethernet rewrite.
 *     Then XDP_TX when the real's ifindex is 0 or the ingress interface (TX),
 *     else bpf_redirect to it (REDIRECT).
 *  8. Accounting, only for a forwarded packet: the connection-table write
 *     (also when a full-NAT flow's port changed),
 *     service_stats[service] and real_stats[real] += 1 packet, the frame
 *     length as received in bytes, and 1 conn when an entry was created or
 *     rewritten. A packet dropped after scheduling (DROP_ENCAP) leaves no
 *     entry and no statistics behind.
 *
 * Every packet counts exactly one of the verdict counters (PASS_*, DROP_*,
 * TX, REDIRECT), added at the program's single exit. XLB_CNT_RX is their sum,
 * computed by the control plane (xlb_abi.h): one per-CPU counter add less per
 * packet, worth ~1-2 ns (below).
 *
 * Second performance pass, measured with scripts/bench/repeat-run.ts
 * (BPF_PROG_TEST_RUN repeat=20000, 5 fresh loads x 7 rounds, builds
 * interleaved with XDP_TX; medians over XDP_TX on a shared 2-vCPU VM, ns):
 *                             before  RX not written  + conntrack4
 *   established DR, IPv4 TCP    +84        +82            +80
 *   DR, IPv4 UDP                +82        +81            +79
 *   established DR, IPv6 TCP    +84        +85            +84
 *   non-service                  +8         +7             +7
 * conntrack4 (lib/ct.h) is the IPv4 flows' table under a 16-byte key; its
 * lookup and the IPv6 one must stay two calls (see xlb_ct_lookup): merged
 * into one with a run-time map, the verifier could not inline it, and every
 * packet paid +10 ns.
 * Besides: a whole TCP/UDP packet of a service without XLB_SVC_F_OPS counts
 * one of CT_HIT/CT_MISS/CT_STALE when the table is consulted (even if it is
 * dropped afterwards); a forwarded fragment FRAGMENT_FWD, a forwarded ICMP
 * error ICMP_FWD; a translated reply NAT_REPLY; NAT state written
 * NAT_CREATED, and NAT_EXPIRED once for each expired entry met; a new flow
 * of a persistent service PERSIST_HIT or PERSIST_NEW.
 *
 * The NAT steps and persistence are global functions (xlb_nat_forward,
 * xlb_nat_reply, xlb_nat_icmp_forward, xlb_nat_icmp_reply, xlb_persist): the verifier checks each once,
 * on its own; inlined, every path into them multiplied their branches past
 * its budget of 1M instructions. They take offsets, not packet pointers, and
 * check the frame again. Their stack frames add to the program's: the
 * verifier allows 512 bytes for a call chain; it is 208 + 256 with clang 14
 * (an edit that overflows fails the load with "combined stack size ... Too
 * large": move big locals out of the deepest frame).
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
#include "lib/nat.h"
#include "lib/persist.h"
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

/*
 * vip_filter: the bitmap of VIP addresses (xlb_abi.h), so that traffic that is
 * not ours needs no hash lookup, and a balanced packet can look its service up
 * before the address marker (step 3). The control plane sets an address's bit
 * before it writes the address's first service and marker, and clears it only
 * after it deleted the last ones (recomputed from the addresses left).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XLB_VIP_FILTER_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} vip_filter SEC(".maps");

/* May this address (16-byte form) be a VIP? One inlined array lookup. */
static __always_inline int xlb_vip_maybe(const __u8 *addr)
{
	__u32 x, w[4], word;
	__u64 *bits;

	__builtin_memcpy(w, addr, 16);
	x = w[0] ^ w[1] ^ w[2] ^ w[3];
	x = (x ^ (x >> 16)) & 0xffff;
	word = x >> 6;
	bits = bpf_map_lookup_elem(&vip_filter, &word);
	return bits && (*bits >> (x & 63)) & 1;
}

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
 * ifaces: the MAC of each interface the program is attached to (xlb_abi.h),
 * written by the control plane when it attaches, cleared when it detaches.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XLB_IFACES_SIZE);
	__type(key, __u32);
	__type(value, struct xlb_iface);
} ifaces SEC(".maps");

/* Is this frame unicast to another host's MAC, on an interface whose MAC we
 * know? (The kernel's PACKET_OTHERHOST; a group address, bit 0 of the first
 * byte, is never.) One inlined array lookup. */
static __always_inline int xlb_other_host(struct xdp_md *ctx, const struct ethhdr *eth)
{
	__u32 ifindex = ctx->ingress_ifindex; /* once: three loads after the verifier's rewrite */
	__u32 idx = ifindex & (XLB_IFACES_SIZE - 1);
	struct xlb_iface *ifc = bpf_map_lookup_elem(&ifaces, &idx);
	__u32 d4, m4;
	__u16 d2, m2;

	if (!ifc || ifc->ifindex != ifindex || (eth->h_dest[0] & 1))
		return 0;
	/* (clang has no inline memcmp for BPF) */
	__builtin_memcpy(&d4, eth->h_dest, 4);
	__builtin_memcpy(&d2, eth->h_dest + 4, 2);
	__builtin_memcpy(&m4, ifc->mac, 4);
	__builtin_memcpy(&m2, ifc->mac + 4, 2);
	return d4 != m4 || d2 != m2;
}

/*
 * The control plane's own state (xlb_abi.h: meta, real_meta): never read by
 * the program, here so that they are created, sized and pinned with its maps.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xlb_meta);
} meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XLB_MAX_REALS);
	__type(key, __u32);
	__type(value, struct xlb_real_meta);
} real_meta SEC(".maps");

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
	__u32 l2len;              /* 14, or 18 with a VLAN tag (first in its 8-byte stack slot: the
				   * verifier keeps a spilled constant only there, and TUN needs it) */
	__u32 len;                /* frame length as received */
	__u32 l4_off;             /* KIND_FLOW: offset of the TCP/UDP header, checked (what NAT rewrites) */
	__u32 svc_id;
	__u32 svc_flags;
	__u32 persist_timeout;    /* the service's, seconds; 0 = not persistent */
	__u8  persist_plen;
	__u8  kind;               /* XLB_KIND_* */
	__u8  all_ports;          /* the service matched is an all-ports one */
	__u8  syn_only;           /* TCP SYN without ACK */
	__u8  closing;            /* TCP FIN or RST */
};

/* A verdict and the global counter that says why: the counter is added once,
 * at the program's single exit (one copy of the counter code, not one per
 * verdict). */
static __always_inline int xlb_verdict(__u32 *cnt, __u32 counter, int action)
{
	*cnt = counter;
	return action;
}

/* A verdict and its counter in one int, for global functions: (counter << 8) | action. */
#define XLB_PACK(counter, action) ((int)(((counter) << 8) | (action)))

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

/* Offsets passed to the global functions are bounded by this (a single-buffer
 * XDP frame fits in a page); the verifier needs a bound well below 64 KiB. */
#define XLB_MAX_L4_OFF 4096

/* The IP header and a cursor at the transport (or ICMP) header, at the offsets
 * a global function was given: bounded for the verifier, which knows nothing
 * of a global function's arguments. -1 when out of bounds. */
static __always_inline int xlb_headers_at(struct xdp_md *ctx, __u64 l3_off, __u64 l4_off, void **l3,
					  struct xlb_cursor *c)
{
	void *data = (void *)(long)ctx->data;

	if (l3_off > 18 || l4_off > XLB_MAX_L4_OFF)
		return -1;
	*l3 = data + l3_off;
	c->pos = data + l4_off;
	c->end = (void *)(long)ctx->data_end;
	return 0;
}

/* What the NAT step needs from the balancing path, besides the flow (on the
 * caller's stack). */
struct xlb_nat_req {
	__u32 l3_off;             /* offset of the IP header in the frame: 14, or 18 with a tag */
	__u32 l4_off;             /* offset of the TCP/UDP header, checked by the parser */
	__u32 hash;               /* the flow's 5-tuple hash, when has_hash */
	__u16 nat_port;           /* in: the connection table's full-NAT port (0: none); out: the port used */
	__u8  has_hash;
	__u8  syn_only;           /* TCP SYN without ACK: the state starts afresh */
	__u8  closing;            /* TCP FIN or RST */
	__u8  pad[3];
};

/* The reply key's full-NAT port: one from the table that is still the flow's (or
 * free again), else the first of the flow's candidates that is free, expired or
 * the flow's own. Writes the state; returns the port, 0 if none is left. */
static __always_inline __be16 xlb_nat_port(struct xlb_nat_req *req, const struct xlb_flow_key *key,
					   struct xlb_flow_key *rk, struct xlb_nat *v, const struct xlb_config *cfg,
					   __u64 now)
{
	__u8 proto = key->proto;
	struct xlb_nat *n;
	__u32 hash;

	if (req->nat_port) {
		rk->dport = req->nat_port;
		n = bpf_map_lookup_elem(&nat, rk);
		if (n && xlb_nat_live(n, cfg, proto, now)) {
			if (xlb_nat_is_flow(n, key)) {
				if (!req->syn_only) {
					xlb_nat_touch(n, req->closing, now);
				} else if (!bpf_map_update_elem(&nat, rk, v, BPF_ANY)) {
					xlb_count(XLB_CNT_NAT_CREATED);
				}
				return rk->dport;
			}
			/* another flow has taken the port since: choose again */
		} else {
			/* evicted or expired: recreated with the same port */
			if (n)
				xlb_count(XLB_CNT_NAT_EXPIRED);
			if (!bpf_map_update_elem(&nat, rk, v, n ? BPF_ANY : BPF_NOEXIST)) {
				xlb_count(XLB_CNT_NAT_CREATED);
				return rk->dport;
			}
		}
	}
	/* Candidates in a fixed order for the flow, so that a retransmitted SYN, or
	 * a flow whose table entry was evicted, finds its own port again: free
	 * (claimed with NOEXIST, so two CPUs cannot both claim it), expired (taken
	 * over), or the flow's own. */
	hash = req->has_hash ? req->hash : xlb_flow_hash(key, XLB_HASH_5TUPLE);
	if (!req->syn_only) {
		/* a flow under way the table forgot (a rare path): its own port first,
		 * even behind a candidate that has come free since it was chosen */
#pragma clang loop unroll(disable)
		for (__u32 i = 0; i < XLB_NAT_PORT_TRIES; i++) {
			rk->dport = bpf_htons(xlb_nat_port_candidate(hash, i));
			n = bpf_map_lookup_elem(&nat, rk);
			if (n && xlb_nat_live(n, cfg, proto, now) && xlb_nat_is_flow(n, key)) {
				xlb_nat_touch(n, req->closing, now);
				return rk->dport;
			}
		}
	}
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < XLB_NAT_PORT_TRIES; i++) {
		rk->dport = bpf_htons(xlb_nat_port_candidate(hash, i));
		n = bpf_map_lookup_elem(&nat, rk);
		if (n && xlb_nat_live(n, cfg, proto, now)) {
			if (!xlb_nat_is_flow(n, key))
				continue;
			if (!req->syn_only)
				xlb_nat_touch(n, req->closing, now);
			else if (!bpf_map_update_elem(&nat, rk, v, BPF_ANY))
				xlb_count(XLB_CNT_NAT_CREATED);
			return rk->dport;
		}
		if (n)
			xlb_count(XLB_CNT_NAT_EXPIRED);
		if (!bpf_map_update_elem(&nat, rk, v, n ? BPF_ANY : BPF_NOEXIST)) {
			xlb_count(XLB_CNT_NAT_CREATED);
			return rk->dport;
		}
	}
	return 0;
}

/*
 * Step 7 for a NAT or full-NAT real: the NAT state, then the rewrite of the
 * addresses and ports toward the real (the caller rewrites the MACs).
 * Returns 0, or the counter of the drop.
 *
 * A global function: the verifier checks it once, on its own, instead of once
 * for every path that reaches it (inlined, the program's paths multiplied by
 * its branches exceeded the verifier's budget). So it takes offsets, not
 * packet pointers, and checks the frame again itself.
 */
__noinline int xlb_nat_forward(struct xdp_md *ctx, struct xlb_nat_req *req, const struct xlb_flow_key *key,
			       const struct xlb_real *real)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct xlb_flow_key rk = {};
	struct xlb_config *cfg;
	struct xlb_nat *n, v;
	__be16 rport, lport;
	__u32 zero = 0, l3_off, l4_off;
	int v6, full;
	__u8 proto;
	__u64 now;

	if (!req || !key || !real || real->family != key->family)
		return XLB_CNT_DROP_NAT;
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return XLB_CNT_DROP_NAT;
	/* read once: the bounds the verifier learns are those of the values used */
	l3_off = req->l3_off;
	l4_off = req->l4_off;
	if (data + sizeof(struct ethhdr) > data_end || l3_off > 18 || l4_off > XLB_MAX_L4_OFF)
		return XLB_CNT_DROP_TRUNCATED; /* the parser checked them; for the verifier */
	v6 = key->family == XLB_AF_INET6;
	full = real->method == XLB_METHOD_FULLNAT;
	proto = key->proto;

	rport = real->port ? real->port : key->dport;
	__builtin_memcpy(rk.saddr, real->addr, 16);
	rk.sport = rport;
	rk.proto = proto;
	rk.family = key->family;
	now = bpf_ktime_get_coarse_ns();
	/* what is written when the state is new, lost or expired, or on a SYN */
	xlb_nat_entry(&v, key, data, ctx->ingress_ifindex,
		      (full ? XLB_NAT_F_FULL : 0) | (req->closing ? XLB_NAT_F_CLOSING : 0), now);

	if (!full) {
		/* NAT: the reply key follows from the flow and the real */
		__builtin_memcpy(rk.daddr, key->saddr, 16);
		rk.dport = key->sport;
		lport = key->sport;
		n = bpf_map_lookup_elem(&nat, &rk);
		if (n && !req->syn_only && xlb_nat_live(n, cfg, proto, now) && xlb_nat_is_flow(n, key)) {
			xlb_nat_touch(n, req->closing, now);
		} else {
			/* new (a SYN starts afresh), evicted, expired, or another VIP's flow from
			 * the same client port to the same real: (re)written, the latest wins */
			if (n && !xlb_nat_live(n, cfg, proto, now))
				xlb_count(XLB_CNT_NAT_EXPIRED);
			if (!bpf_map_update_elem(&nat, &rk, &v, BPF_ANY))
				xlb_count(XLB_CNT_NAT_CREATED);
		}
		req->nat_port = 0;
	} else {
		/* full-NAT: the source is ours, the port the table's or a free one */
		if (v6)
			__builtin_memcpy(rk.daddr, cfg->nat_src6, 16);
		else
			__builtin_memcpy(rk.daddr, cfg->nat_src4, 4);
		if (xlb_addr_is_zero(rk.daddr)) /* none configured (the control plane refuses such reals) */
			return XLB_CNT_DROP_NAT;
		lport = xlb_nat_port(req, key, &rk, &v, cfg, now);
		if (!lport)
			return XLB_CNT_DROP_NAT_NO_PORT;
		req->nat_port = lport;
	}

	/* the packet: destination := real:rport; full-NAT: source := ours:lport */
	if (xlb_nat_rewrite(data + l3_off, data + l4_off, data_end, v6, proto,
			    full ? rk.daddr : key->saddr, lport, real->addr, rport))
		return XLB_CNT_DROP_TRUNCATED;
	return 0;
}

/*
 * Step 7 for an ICMP error about a flow whose real is a NAT or full-NAT one:
 * the error (about a reply the client got from VIP:port) is made to be about
 * what the real sent: quoted source := real:port, outer destination := the
 * real; full-NAT also quoted destination := full-NAT address:the flow's port
 * (from the connection table) and outer source := the full-NAT address.
 * Checksums updated; the caller rewrites the MACs. Returns 0, or
 * XLB_PACK(counter, action): a full-NAT flow the table does not know cannot
 * be translated (PASS_LOCAL). Global.
 */
__noinline int xlb_nat_icmp_forward(struct xdp_md *ctx, struct xlb_nat_req *req, const struct xlb_flow_key *key,
				    const struct xlb_real *real)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct xlb_config *cfg;
	struct xlb_cursor c;
	struct xlb_quoted q;
	const __u8 *laddr;
	__u32 zero = 0;
	__be16 rport;
	int v6, rc;
	void *l3;

	if (!req || !key || !real || real->family != key->family)
		return XLB_PACK(XLB_CNT_DROP_NAT, XDP_DROP);
	if (xlb_headers_at(ctx, req->l3_off, req->l4_off, &l3, &c))
		return XLB_PACK(XLB_CNT_DROP_TRUNCATED, XDP_DROP);
	v6 = key->family == XLB_AF_INET6;
	rc = v6 ? xlb_parse_icmp6_error(&c, &q) : xlb_parse_icmp4_error(&c, &q);
	if (rc || l3 + (v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr)) > data_end) /* parsed by the caller */
		return XLB_PACK(XLB_CNT_DROP_TRUNCATED, XDP_DROP);
	rport = real->port ? real->port : key->dport;
	if (real->method == XLB_METHOD_FULLNAT) {
		cfg = bpf_map_lookup_elem(&config, &zero);
		if (!cfg || !req->nat_port)
			return XLB_PACK(XLB_CNT_PASS_LOCAL, XDP_PASS);
		laddr = v6 ? cfg->nat_src6 : cfg->nat_src4;
		rc = xlb_nat_icmp_rewrite(l3, c.pos, &q, data_end, v6, laddr, real->addr,
					  real->addr, rport, laddr, req->nat_port);
	} else {
		/* the outer source stays: passed as itself (a zero change) */
		rc = xlb_nat_icmp_rewrite(l3, c.pos, &q, data_end, v6, v6 ? l3 + 8 : l3 + 12, real->addr,
					  real->addr, rport, q.daddr, q.dport);
	}
	if (rc)
		return XLB_PACK(XLB_CNT_DROP_TRUNCATED, XDP_DROP);
	xlb_count(XLB_CNT_NAT_ICMP);
	return 0;
}

/* What xlb_persist is asked to do. */
#define XLB_PERSIST_PICK    0 /* a new flow: the template's real, else Maglev and a new template */
#define XLB_PERSIST_PICK_RO 1 /* a fragment or ICMP error: the same choice, nothing written */
#define XLB_PERSIST_TOUCH   2 /* an established flow on real_id: keep its template alive */

struct xlb_persist_req {
	__u32 svc_id;
	__u32 timeout;            /* seconds, > 0 */
	__u32 real_id;            /* TOUCH: the flow's real */
	__u8  plen;
	__u8  mode;               /* XLB_PERSIST_* */
	__u8  pad[2];
};

/* The template's real if it may take a new flow: active and not drained. */
static __always_inline __u32 xlb_persist_usable(const struct xlb_persist *t)
{
	__u32 real_id = t->real_id;
	struct xlb_real *r = xlb_real_get(real_id);

	if (!r || (r->flags & XLB_REAL_F_DRAINED))
		return XLB_ID_NONE;
	return real_id;
}

/*
 * Step 6 for a persistent service (persist_timeout != 0). The template key is
 * {service, family, client address masked to the prefix length}.
 *  PICK: a live template whose real is active and not drained gives the real
 *    (PERSIST_HIT) and is refreshed. Otherwise Maglev chooses, by the hash of
 *    the masked client address (so the members of a client network agree even
 *    without a template, and fragments agree with whole packets), and the
 *    template is written (PERSIST_NEW): created with BPF_NOEXIST, so that when
 *    two CPUs race on a client's first flows the second one takes the first
 *    one's template instead of overwriting it.
 *  PICK_RO: the same choice, no write, no counter.
 *  TOUCH: the template is refreshed at most once a second while it is the
 *    flow's real's; a missing or expired one is written again with the flow's
 *    real; a live one of another real (the client has moved on) is left alone.
 * Returns the real id (PICK, PICK_RO; 0: none) or 0 (TOUCH). Global, like
 * xlb_nat_forward: its frame does not add to the NAT functions'.
 */
__noinline __u32 xlb_persist(struct xlb_persist_req *req, const struct xlb_flow_key *key)
{
	struct xlb_persist_key pk = {};
	struct xlb_flow_key mk = {};
	struct xlb_persist *t, v = {};
	__u32 real_id, timeout;
	__u64 now;

	if (!req || !key)
		return XLB_ID_NONE;
	timeout = req->timeout;
	pk.service_id = req->svc_id;
	pk.family = key->family;
	__builtin_memcpy(pk.addr, key->saddr, 16);
	xlb_persist_mask(pk.addr, req->plen);
	now = bpf_ktime_get_coarse_ns();

	t = bpf_map_lookup_elem(&persist, &pk);
	if (req->mode == XLB_PERSIST_TOUCH) {
		if (t && xlb_persist_live(t, timeout, now)) {
			if (t->real_id == req->real_id && (__s64)(now - t->last) >= (__s64)XLB_PERSIST_TOUCH_NS)
				t->last = now;
			return XLB_ID_NONE;
		}
		v.last = now;
		v.real_id = req->real_id;
		bpf_map_update_elem(&persist, &pk, &v, BPF_ANY);
		return XLB_ID_NONE;
	}
	if (t && xlb_persist_live(t, timeout, now)) {
		real_id = xlb_persist_usable(t);
		if (real_id) {
			if (req->mode == XLB_PERSIST_PICK) {
				t->last = now;
				xlb_count(XLB_CNT_PERSIST_HIT);
			}
			return real_id;
		}
	}
	/* no usable template: Maglev by the masked client address */
	__builtin_memcpy(mk.saddr, pk.addr, 16);
	mk.family = key->family;
	real_id = xlb_maglev_pick(req->svc_id, xlb_flow_hash(&mk, XLB_HASH_SRC));
	if (req->mode != XLB_PERSIST_PICK || !xlb_real_get(real_id))
		return real_id;
	v.last = now;
	v.real_id = real_id;
	if (!bpf_map_update_elem(&persist, &pk, &v, t ? BPF_ANY : BPF_NOEXIST)) {
		xlb_count(XLB_CNT_PERSIST_NEW);
		return real_id;
	}
	/* another CPU wrote this client's template meanwhile: follow it if it is usable */
	t = bpf_map_lookup_elem(&persist, &pk);
	if (t && xlb_persist_live(t, timeout, now)) {
		__u32 theirs = xlb_persist_usable(t);

		if (theirs) {
			xlb_count(XLB_CNT_PERSIST_HIT);
			return theirs;
		}
	}
	return real_id;
}

/*
 * Steps 6-8 of the header comment: choose the real, rewrite the frame toward
 * it, account, return the verdict.
 */
static __always_inline int xlb_balance(struct xdp_md *ctx, struct xlb_pkt *p, __u32 *cnt)
{
	int hashed_kind = -1, tun_kind, sched_kind;
	int use_ct, store = 0, ret;
	__be16 ct_port = 0, nat_port = 0;
	struct xlb_flow *f = NULL;
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
			f = xlb_ct_lookup(&p->key);

			if (f) {
				counter = XLB_CNT_CT_STALE;
				if (f->service_id == p->svc_id) {
					real_id = f->real_id;
					real = xlb_real_get(real_id);
					if (real) {
						counter = XLB_CNT_CT_HIT;
						ct_port = f->nat_port;
					}
				}
			}
		}
		if (p->kind == XLB_KIND_FLOW)
			xlb_count(counter);
	}

	/* persistence: the client network's template; an established flow refreshes
	 * it when the flow's second (persist_seen) has changed, so that most of its
	 * packets pay one clock read and no template lookup */
	if (p->persist_timeout) {
		struct xlb_persist_req preq = {
			.svc_id = p->svc_id,
			.timeout = p->persist_timeout,
			.real_id = real_id,
			.plen = p->persist_plen,
			.mode = real ? XLB_PERSIST_TOUCH : p->kind == XLB_KIND_FLOW ? XLB_PERSIST_PICK : XLB_PERSIST_PICK_RO,
		};

		if (!real) {
			real_id = xlb_persist(&preq, &p->key);
			real = xlb_real_get(real_id);
			if (!real)
				return xlb_verdict(cnt, XLB_CNT_DROP_NO_REAL, XDP_DROP);
			store = use_ct && p->kind == XLB_KIND_FLOW;
		} else if (f && p->kind == XLB_KIND_FLOW) {
			__u16 now_s = bpf_ktime_get_coarse_ns() >> 30;

			if (f->persist_seen != now_s) {
				f->persist_seen = now_s;
				xlb_persist(&preq, &p->key);
			}
		}
	}

	/* Maglev, for everything the table (or a template) did not place */
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
	} else if (real->method == XLB_METHOD_NAT || real->method == XLB_METHOD_FULLNAT) {
		void *data = (void *)(long)ctx->data;
		void *data_end = (void *)(long)ctx->data_end;
		__u32 drop;

		struct xlb_nat_req req = {
			.l3_off = p->l2len,
			.l4_off = p->l4_off,
			.hash = hash,
			.nat_port = ct_port,
			.has_hash = hashed_kind == XLB_HASH_5TUPLE,
			.syn_only = p->syn_only,
			.closing = p->closing,
		};

		if (p->kind == XLB_KIND_ICMP) {
			ret = xlb_nat_icmp_forward(ctx, &req, &p->key, real);
			if (ret) {
				*cnt = (__u32)ret >> 8;
				return ret & 0xff;
			}
		} else if (p->kind == XLB_KIND_FLOW) {
			drop = xlb_nat_forward(ctx, &req, &p->key, real);
			if (drop)
				return xlb_verdict(cnt, drop, XDP_DROP);
			nat_port = req.nat_port;
		} else { /* fragments: no ports to translate */
			return xlb_verdict(cnt, XLB_CNT_DROP_NAT, XDP_DROP);
		}
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		if (data + sizeof(struct ethhdr) > data_end) /* for the verifier */
			return xlb_verdict(cnt, XLB_CNT_DROP_TRUNCATED, XDP_DROP);
		xlb_set_macs(data, real);
	} else {
		return xlb_verdict(cnt, XLB_CNT_DROP_ENCAP, XDP_DROP);
	}

	/* accounting; a full-NAT flow whose port changed is written again */
	if (store || (use_ct && p->kind == XLB_KIND_FLOW && nat_port != ct_port))
		xlb_ct_store(&p->key, real_id, p->svc_id, nat_port);
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

/* The live NAT entry of reply key rk, or NULL (NAT_EXPIRED counted for an
 * expired one). */
static __always_inline struct xlb_nat *xlb_nat_live_entry(const struct xlb_flow_key *rk, __u64 now)
{
	struct xlb_nat *n = bpf_map_lookup_elem(&nat, rk);
	struct xlb_config *cfg;
	__u32 zero = 0;

	if (!n)
		return NULL;
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return NULL;
	if (!xlb_nat_live(n, cfg, rk->proto, now)) {
		xlb_count(XLB_CNT_NAT_EXPIRED);
		return NULL;
	}
	return n;
}

/* A translated reply or error back where the client's frames came from: the
 * Ethernet addresses of the client's frame reversed, XDP_TX on the client's
 * interface, else a redirect there. Returns XLB_PACK(counter, action). */
static __always_inline int xlb_nat_send_back(struct xdp_md *ctx, const struct xlb_nat *n, __u32 counter)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (data + sizeof(struct ethhdr) > data_end)
		return XLB_PACK(XLB_CNT_DROP_TRUNCATED, XDP_DROP);
	__builtin_memcpy(data, n->dmac, 2 * ETH_ALEN);
	xlb_count(counter);
	if (n->ifindex == ctx->ingress_ifindex)
		return XLB_PACK(XLB_CNT_TX, XDP_TX);
	return XLB_PACK(XLB_CNT_REDIRECT, bpf_redirect(n->ifindex, 0));
}

/*
 * Step 3b: a TCP/UDP packet (not a fragment) for an address that is no VIP,
 * while NAT is in use: is it a real's reply to a NAT or full-NAT flow? Its
 * {saddr, daddr, sport, dport, proto, family} is the key of the NAT state. No
 * live entry: not ours (PASS_NON_SERVICE, plus NAT_EXPIRED for an expired one).
 * A live entry: the transport header is checked as a service's would be, the
 * source becomes the VIP and its port (full-NAT: the destination the client
 * and its port), the Ethernet addresses those the client's frames came with,
 * reversed, and the frame goes back out where the client's came in (TX) or is
 * redirected there (REDIRECT). Never passed once translated: its source is a
 * local address of ours, which the kernel would drop as a martian.
 * l3_off, l4_off: where the IP and transport headers are; family: XLB_AF_*.
 * (64-bit arguments: the verifier knows nothing of a global function's
 * arguments, and a 32-bit one is bounds-checked zero-extended in one register
 * while another, unchecked, is used.)
 * Returns XLB_PACK(counter, action). Global, like xlb_nat_forward.
 */
__noinline int xlb_nat_reply(struct xdp_md *ctx, __u64 l3_off, __u64 l4_off, __u64 family, __u64 proto)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct xlb_flow_key rk = {};
	struct xlb_cursor c;
	struct xlb_nat *n;
	__u8 tcp_flags = 0;
	void *l3;
	__u64 now;
	int rc, full;

	if (xlb_headers_at(ctx, l3_off, l4_off, &l3, &c))
		return XLB_PACK(XLB_CNT_DROP_TRUNCATED, XDP_DROP); /* checked by the caller; for the verifier */
	if (xlb_parse_ports(&c, &rk.sport, &rk.dport))
		return XLB_PACK(XLB_CNT_PASS_NON_SERVICE, XDP_PASS);
	if (family == XLB_AF_INET6) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > data_end)
			return XLB_PACK(XLB_CNT_DROP_TRUNCATED, XDP_DROP);
		__builtin_memcpy(rk.saddr, &ip6->saddr, 16);
		__builtin_memcpy(rk.daddr, &ip6->daddr, 16);
	} else {
		struct iphdr *ip4 = l3;

		if ((void *)(ip4 + 1) > data_end)
			return XLB_PACK(XLB_CNT_DROP_TRUNCATED, XDP_DROP);
		__builtin_memcpy(rk.saddr, &ip4->saddr, 4);
		__builtin_memcpy(rk.daddr, &ip4->daddr, 4);
	}
	rk.proto = proto;
	rk.family = family;
	now = bpf_ktime_get_coarse_ns();
	n = xlb_nat_live_entry(&rk, now);
	if (!n)
		return XLB_PACK(XLB_CNT_PASS_NON_SERVICE, XDP_PASS);

	/* ours: the transport header must be sound */
	rc = proto == IPPROTO_TCP ? xlb_check_tcp(&c, &tcp_flags) : xlb_check_udp(&c);
	if (rc)
		return XLB_PACK(rc == XLB_P_BAD ? XLB_CNT_DROP_MALFORMED : XLB_CNT_DROP_TRUNCATED, XDP_DROP);
	full = n->flags & XLB_NAT_F_FULL;
	if (xlb_nat_rewrite(l3, c.pos, data_end, family == XLB_AF_INET6, proto, n->vaddr, n->vport,
			    full ? n->caddr : rk.daddr, full ? n->cport : rk.dport))
		return XLB_PACK(XLB_CNT_DROP_TRUNCATED, XDP_DROP);
	xlb_nat_touch(n, (tcp_flags & (XLB_TCP_FIN | XLB_TCP_RST)) != 0, now);
	return xlb_nat_send_back(ctx, n, XLB_CNT_NAT_REPLY);
}

/*
 * Step 3b for ICMP: an ICMP or ICMPv6 error (not a fragment) to an address
 * that is no VIP, while NAT is in use: about a packet a NAT or full-NAT real
 * was sent? The quoted packet reversed is a reply key. A live entry: the error
 * is made to be about the packet the client sent (quoted destination :=
 * VIP:port; full-NAT: quoted source := client:port), from the VIP (outer
 * source; full-NAT: outer destination := the client), checksums updated, and
 * sent where the client's frames came from, as a reply is (NAT_ICMP, TX or
 * REDIRECT). Anything else, a malformed error included: not ours,
 * PASS_NON_SERVICE (NAT_EXPIRED for an expired entry).
 * l4_off: the ICMP header. Returns XLB_PACK(counter, action). Global.
 */
__noinline int xlb_nat_icmp_reply(struct xdp_md *ctx, __u64 l3_off, __u64 l4_off, __u64 family)
{
	void *data_end = (void *)(long)ctx->data_end;
	int v6 = family == XLB_AF_INET6;
	struct xlb_flow_key rk = {};
	struct xlb_cursor c;
	struct xlb_quoted q;
	struct xlb_nat *n;
	void *l3;
	int full, rc;

	if (xlb_headers_at(ctx, l3_off, l4_off, &l3, &c))
		return XLB_PACK(XLB_CNT_DROP_TRUNCATED, XDP_DROP); /* checked by the caller; for the verifier */
	rc = v6 ? xlb_parse_icmp6_error(&c, &q) : xlb_parse_icmp4_error(&c, &q);
	if (rc)
		return XLB_PACK(XLB_CNT_PASS_NON_SERVICE, XDP_PASS);
	/* the quoted packet went client (or full-NAT address) -> real: its reverse is the key */
	__builtin_memcpy(rk.saddr, q.daddr, 16);
	__builtin_memcpy(rk.daddr, q.saddr, 16);
	rk.sport = q.dport;
	rk.dport = q.sport;
	rk.proto = q.proto;
	rk.family = family;
	n = xlb_nat_live_entry(&rk, bpf_ktime_get_coarse_ns());
	if (!n)
		return XLB_PACK(XLB_CNT_PASS_NON_SERVICE, XDP_PASS);
	if (l3 + (v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr)) > data_end)
		return XLB_PACK(XLB_CNT_DROP_TRUNCATED, XDP_DROP);
	full = n->flags & XLB_NAT_F_FULL;
	/* NAT: the outer destination (the client) stays: passed as itself (a zero change) */
	if (xlb_nat_icmp_rewrite(l3, c.pos, &q, data_end, v6, n->vaddr, full ? n->caddr : (v6 ? l3 + 24 : l3 + 16),
				 full ? n->caddr : q.saddr, full ? n->cport : q.sport, n->vaddr, n->vport))
		return XLB_PACK(XLB_CNT_DROP_TRUNCATED, XDP_DROP);
	return xlb_nat_send_back(ctx, n, XLB_CNT_NAT_ICMP);
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
	int rc, maybe_vip;

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

	/* 3. a VIP? Not when the address's filter bit is clear. Else, for a whole
	 * TCP/UDP packet, its service {daddr, dport, proto} first: found, the
	 * address is a VIP (one hash lookup per balanced packet); otherwise the
	 * address marker {daddr, 0, 0, family} decides. */
	maybe_vip = xlb_vip_maybe(vk.addr);
	svc = NULL;
	if (maybe_vip && (proto == IPPROTO_TCP || proto == IPPROTO_UDP) && !frag &&
	    !xlb_parse_ports(&c, &sport, &dport)) {
		vk.port = dport;
		vk.proto = proto;
		svc = bpf_map_lookup_elem(&services, &vk);
		vk.port = 0;
		vk.proto = 0;
	}
	if (!svc && !(maybe_vip && bpf_map_lookup_elem(&services, &vk))) {
		/* 3b. not a VIP: while NAT is in use, perhaps a reply to translate */
		__u32 zero = 0;
		struct xlb_config *cfg = bpf_map_lookup_elem(&config, &zero);

		if (cfg && (cfg->nat_flags & XLB_CFG_F_NAT) && !frag) {
			rc = -1;
			if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
				/* only from a port NAT reals answer from */
				if (xlb_parse_ports(&c, &sport, &dport) || !xlb_nat_port_used(sport))
					return xlb_verdict(cnt, XLB_CNT_PASS_NON_SERVICE, XDP_PASS);
				rc = xlb_nat_reply(ctx, p.l2len, (long)c.pos - (long)data, vk.family, proto);
			}
			else if ((proto == IPPROTO_ICMP && ip4) || (proto == IPPROTO_ICMPV6 && ip6))
				rc = xlb_nat_icmp_reply(ctx, p.l2len, (long)c.pos - (long)data, vk.family);
			if (rc >= 0) {
				*cnt = (__u32)rc >> 8;
				return rc & 0xff;
			}
		}
		return xlb_verdict(cnt, XLB_CNT_PASS_NON_SERVICE, XDP_PASS);
	}
	/* 3c. for a VIP, but flooded to us (unicast to another MAC): not ours to
	 * balance; the kernel drops it (PACKET_OTHERHOST) */
	if (xlb_other_host(ctx, data))
		return xlb_verdict(cnt, XLB_CNT_PASS_OTHER_HOST, XDP_PASS);
	__builtin_memset(&p.key, 0, sizeof(p.key));
	p.all_ports = 0;
	p.syn_only = 0;
	p.closing = 0;
	p.l4_off = 0;

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
			/* {daddr, dport, proto} was looked up in step 3; else all ports */
			p.all_ports = dport == 0;
			if (!svc && dport != 0) {
				svc = bpf_map_lookup_elem(&services, &vk);
				p.all_ports = 1;
			}
			if (!svc)
				return xlb_verdict(cnt, XLB_CNT_PASS_NON_SERVICE, XDP_PASS);
			/* a service's packet: its transport header must be sound */
			p.l4_off = (long)c.pos - (long)data;
			if (proto == IPPROTO_TCP) {
				__u8 tcp_flags = 0;

				rc = xlb_check_tcp(&c, &tcp_flags);
				p.syn_only = xlb_tcp_syn_only(tcp_flags);
				p.closing = (tcp_flags & (XLB_TCP_FIN | XLB_TCP_RST)) != 0;
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
		p.l4_off = (long)c.pos - (long)data;
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
	p.persist_timeout = svc->persist_timeout;
	p.persist_plen = svc->persist_plen;
	return xlb_balance(ctx, &p, cnt);
}

SEC("xdp")
int xlb_xdp(struct xdp_md *ctx)
{
	__u32 cnt = XLB_CNT_MAX;
	int action;

	/* no XLB_CNT_RX: the control plane sums the verdict counters (xlb_abi.h) */
	action = xlb_handle(ctx, &cnt);
	xlb_count(cnt);
	return action;
}
