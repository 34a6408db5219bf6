/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xlb_abi.h - the ONLY structs, enums and limits shared between the BPF
 * programs (bpf/) and the TypeScript control plane (src/datapath/xdp/abi.ts).
 *
 * Rules:
 *  - fixed-width types only, explicit padding, no bitfields, so the layout is
 *    the same for clang -target bpf and for the mirror in abi.ts;
 *  - addresses are stored in network byte order in a 16-byte field; an IPv4
 *    address occupies the first 4 bytes and the other 12 are zero;
 *  - ports are network byte order;
 *  - test/bpf/abi.test.ts compares abi.ts with the BTF of the compiled object,
 *    so a change here that is not mirrored fails the tests.
 */
#ifndef XLB_ABI_H
#define XLB_ABI_H

#include <linux/types.h>

/* ---- limits (defaults; map sizes can be changed before load) ---- */
#define XLB_MAX_SERVICES        1024      /* services map, maglev outer map, service stats */
#define XLB_MAX_REALS           131072    /* reals map and real stats, indexed by real id */
#define XLB_MAGLEV_SIZE_DEFAULT 65537     /* slots per service table; must be prime */
#define XLB_CT_SIZE_DEFAULT     1048576   /* connection table entries */
#define XLB_NAT_SIZE_DEFAULT    1048576   /* NAT state entries (one per NAT or full-NAT connection) */
#define XLB_PERSIST_SIZE_DEFAULT 262144   /* persistence templates (one per persistent service x client net) */

/* Service and real ids are indices; 0 is never allocated so that an all-zero
 * map value means "nothing here". */
#define XLB_ID_NONE 0

/* ---- address families (our own numbering, stable across kernels) ---- */
enum xlb_family {
	XLB_AF_INET  = 4,
	XLB_AF_INET6 = 6,
};

/* ---- forwarding methods (IPVS: lb_kind) ---- */
enum xlb_method {
	XLB_METHOD_DR  = 1, /* rewrite Ethernet addresses toward the real */
	XLB_METHOD_TUN = 2, /* IP-in-IP (4in4, 6in6) toward the real */
	XLB_METHOD_NAT = 3, /* masquerade: destination := real:port; replies translated back */
	XLB_METHOD_FULLNAT = 4, /* NAT, and source := a full-NAT address and a port of ours */
};

/* ---- virtual service key: {address, port, protocol}; port 0 = all ports ---- */
struct xlb_vip_key {
	__u8  addr[16];
	__u16 port;      /* network order; 0 = every port */
	__u8  proto;     /* IPPROTO_TCP or IPPROTO_UDP */
	__u8  family;    /* enum xlb_family */
};

/* service flags */
#define XLB_SVC_F_HASH_SRC_ONLY (1U << 0) /* hash the client address only (IPVS sh) */
#define XLB_SVC_F_OPS           (1U << 1) /* one-packet scheduling: no connection table */

struct xlb_service {
	__u32 id;        /* index into maglev_tables and service_stats; never 0 */
	__u32 flags;     /* XLB_SVC_F_* */
	__u32 persist_timeout; /* IPVS persistence_timeout in seconds; 0 = not persistent */
	__u8  persist_plen;    /* persistence_granularity as a prefix length of the client
				* address (1..32 IPv4, 1..128 IPv6); used when persist_timeout != 0 */
	__u8  pad[3];
};

/* vip_filter: ARRAY of XLB_VIP_FILTER_WORDS __u64 words, a bitmap in which
 * the bit of every VIP address is set (and perhaps others: a set bit only
 * says "look the address up"; a clear one "no VIP"). The bit of an address,
 * in the 16-byte form of struct xlb_vip_key (family not included): x = the
 * xor of its four 32-bit words read in host byte order (little-endian on
 * x86), b = (x ^ (x >> 16)) & 0xffff; bit (b & 63) of word (b >> 6). */
#define XLB_VIP_FILTER_WORDS 1024

/* ifaces: ARRAY of XLB_IFACES_SIZE struct xlb_iface (a power of two), the
 * MAC of each interface the program is attached to, at index
 * ifindex & (XLB_IFACES_SIZE - 1). A frame for a VIP that comes in on an
 * interface whose entry is there (entry.ifindex == the ingress ifindex) and
 * is unicast to another MAC is not balanced (PASS_OTHER_HOST): it was
 * flooded to us, and the kernel drops it as PACKET_OTHERHOST. No entry (or
 * another interface's, same index): no such check. The control plane writes
 * the entry when it attaches, clears it when it detaches. */
#define XLB_IFACES_SIZE 256

struct xlb_iface {
	__u32 ifindex;   /* the interface the entry is for; 0 = none */
	__u8  mac[6];    /* its MAC */
	__u8  pad[2];
};

/* ---- real server, indexed by real id (one id per service x real) ---- */
#define XLB_REAL_F_ACTIVE  (1U << 0) /* entry in use; cleared when the real is removed */
#define XLB_REAL_F_DRAINED (1U << 1) /* weight 0: keeps its connections, but a persistence
				      * template no longer sends new ones to it; the only
				      * bit the control plane changes in place (one byte) */

struct xlb_real {
	__u8  addr[16];  /* real's address: TUN outer destination, NAT new destination */
	__u8  dmac[6];   /* next hop MAC (the real itself for DR) */
	__u8  smac[6];   /* source MAC for the egress interface */
	__u32 ifindex;   /* egress interface; 0 = back out of the ingress (XDP_TX) */
	__u8  family;    /* enum xlb_family of addr */
	__u8  method;    /* enum xlb_method */
	__u16 flags;     /* XLB_REAL_F_* */
	__u16 port;      /* NAT, full-NAT: the real's port, network order; 0 = the packet's (VIP's) port */
	__u8  pad[2];
};

/* ---- connection table (LRU hash, per-CPU LRU lists) ----
 * Two maps with the same value: conntrack4 for IPv4 flows, keyed by the
 * compact struct xlb_flow_key4 (16 bytes: one jhash round and a short key
 * compare), and conntrack for IPv6 flows, keyed by struct xlb_flow_key
 * (family XLB_AF_INET6). Each holds up to the configured table size. */
struct xlb_flow_key {
	__u8  saddr[16];
	__u8  daddr[16];
	__u16 sport;     /* network order */
	__u16 dport;     /* network order */
	__u8  proto;
	__u8  family;
	__u8  pad[2];
};

struct xlb_flow_key4 {
	__u8  saddr[4];
	__u8  daddr[4];
	__u16 sport;     /* network order */
	__u16 dport;     /* network order */
	__u8  proto;
	__u8  pad[3];    /* zero */
};

struct xlb_flow {
	__u32 real_id;
	__u32 service_id;
	__u16 nat_port;  /* full-NAT: the source port chosen for the flow, network order; else 0 */
	__u16 persist_seen; /* persistent services: the low 16 bits of bpf_ktime_get_coarse_ns() >> 30
			     * (about seconds) when the flow last refreshed its template; 0 when new */
};

/* ---- NAT state (LRU hash), keyed by the reply direction ----
 *
 * Key: a struct xlb_flow_key of what the real sends back: {saddr = real,
 * daddr = client (NAT) or the full-NAT address (full-NAT), sport = the real's
 * port, dport = the client's port (NAT) or the chosen source port (full-NAT),
 * proto, family, pad 0}. So {full-NAT address, port, real, real port, proto}
 * is unique by construction.
 * Value: what translates a reply back (source := vaddr:vport; full-NAT also
 * destination := caddr:cport) and sends it to where the client's packets came
 * from; also what identifies the forward flow (caddr, cport, vaddr, vport).
 */
#define XLB_NAT_F_FULL    (1U << 0) /* full-NAT: the reply's destination is rewritten too */
#define XLB_NAT_F_CLOSING (1U << 1) /* TCP FIN or RST seen (either way): the short timeout applies */

/* nat_ports: ARRAY of XLB_NAT_PORT_WORDS __u64 words, a bitmap of the source
 * ports replies of NAT and full-NAT reals come from: port p (host order) is
 * bit (p & 63) of word (p >> 6). Only a TCP/UDP packet from such a port is
 * looked up in the NAT state; a real answering from any port (all-ports
 * service, port 0) sets every bit. */
#define XLB_NAT_PORT_WORDS 1024

/* full-NAT source ports: chosen in [MIN, MAX], at most TRIES candidates per new flow */
#define XLB_NAT_PORT_MIN   1024
#define XLB_NAT_PORT_MAX   65535
#define XLB_NAT_PORT_TRIES 8

struct xlb_nat {
	__u64 last;      /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) of the last refresh */
	__u8  vaddr[16]; /* the VIP */
	__u8  caddr[16]; /* the client */
	__u16 vport;     /* network order */
	__u16 cport;     /* network order */
	__u8  dmac[6];   /* the reply's destination MAC: the source MAC of the client's frame */
	__u8  smac[6];   /* the reply's source MAC: the destination MAC of the client's frame (ours) */
	__u32 ifindex;   /* where the client's frame came in: XDP_TX there, else redirect */
	__u16 flags;     /* XLB_NAT_F_* */
	__u8  pad[2];
};

/* ---- persistence templates (LRU hash, per-CPU LRU lists) ----
 *
 * IPVS persistence: a client network (the client address masked to the
 * service's persist_plen) keeps going to one real for every new connection
 * to the service while it keeps coming within persist_timeout. Key: the
 * service and the masked client; value: the real and when the client was
 * last seen (refreshed by its new connections, and at most once a second by
 * its established ones).
 */
struct xlb_persist_key {
	__u32 service_id;
	__u8  family;    /* enum xlb_family */
	__u8  pad[3];
	__u8  addr[16];  /* the client address, masked */
};

struct xlb_persist {
	__u64 last;      /* bpf_ktime_get_coarse_ns() (CLOCK_MONOTONIC) when last seen */
	__u32 real_id;
	__u8  pad[4];
};

/* ---- statistics (per-CPU arrays; the control plane sums the CPUs) ---- */
struct xlb_stats {
	__u64 packets;
	__u64 bytes;
	__u64 conns;     /* flows scheduled (connection table misses) */
};

/* Global counters, one slot each in the global_stats per-CPU array.
 * Every packet counts exactly one of the counters tagged [verdict], at the
 * program's single exit. XLB_CNT_RX, every packet the program saw, is not
 * written by the program (one per-CPU add less per packet): the control plane
 * reports it as the sum of the [verdict] counters; its slot stays 0. */
enum xlb_counter {
	XLB_CNT_RX = 0,              /* every packet the program saw: the sum of the [verdict] ones */
	XLB_CNT_PASS_NON_IP,         /* [verdict] not IPv4/IPv6 (ARP, LLDP, ...) */
	XLB_CNT_PASS_NON_SERVICE,    /* [verdict] IP, but no virtual service matches */
	XLB_CNT_PASS_LOCAL,          /* [verdict] for a VIP but not balanced (ICMP echo, other protocols) */
	XLB_CNT_DROP_TRUNCATED,      /* [verdict] a header ends beyond the packet */
	XLB_CNT_DROP_MALFORMED,      /* [verdict] bad IHL, IP version, TCP data offset, ... */
	XLB_CNT_DROP_NO_REAL,        /* [verdict] service has no table or an empty slot */
	XLB_CNT_DROP_FRAGMENT,       /* [verdict] fragment for a VIP without an all-ports service */
	XLB_CNT_DROP_ENCAP,          /* [verdict] headroom or family mismatch for encapsulation */
	XLB_CNT_FRAGMENT_FWD,        /* fragment forwarded by the address-only hash */
	XLB_CNT_ICMP_FWD,            /* ICMP error steered to the flow's real */
	XLB_CNT_CT_HIT,              /* connection table hit with a live real */
	XLB_CNT_CT_MISS,             /* connection table miss: scheduled by Maglev */
	XLB_CNT_CT_STALE,            /* hit, but the real was removed: rescheduled */
	XLB_CNT_TX,                  /* [verdict] XDP_TX */
	XLB_CNT_REDIRECT,            /* [verdict] XDP_REDIRECT */
	XLB_CNT_DROP_NAT,            /* [verdict] a NAT real cannot take it: fragment, other family, no full-NAT address */
	XLB_CNT_DROP_NAT_NO_PORT,    /* [verdict] full-NAT: every candidate source port is in use */
	XLB_CNT_NAT_CREATED,         /* NAT state written: a new flow, or one whose state was evicted or expired */
	XLB_CNT_NAT_EXPIRED,         /* an expired NAT entry was met (and treated as absent) */
	XLB_CNT_NAT_REPLY,           /* a real's reply translated back and sent toward the client */
	XLB_CNT_NAT_ICMP,            /* an ICMP error about a NAT flow translated (either direction) */
	XLB_CNT_PERSIST_HIT,         /* a new flow of a persistent service sent to its client's template real */
	XLB_CNT_PERSIST_NEW,         /* a template written: none, expired, or its real gone or drained */
	XLB_CNT_PASS_OTHER_HOST,     /* [verdict] for a VIP, but unicast to another MAC (flooded): the kernel drops it */
	XLB_CNT_MAX,
};

/* ---- runtime configuration: config map, key 0 ---- */
struct xlb_config {
	/* TUN outer source, chosen per flow so that receivers' RSS spreads flows:
	 * IPv4: base with the low tun_src4_bits bits replaced by the flow hash;
	 * IPv6: base with the low tun_src6_bits bits (at most 32) replaced. */
	__u8  tun_src4[4];
	__u8  tun_src6[16];
	__u8  tun_src4_bits;
	__u8  tun_src6_bits;
	__u8  tun_ttl;          /* outer TTL / hop limit; 0 means 64 */
	__u8  pad;
	/* full-NAT source addresses; all zero = none (the control plane refuses
	 * full-NAT reals of that family) */
	__u8  nat_src4[4];
	__u8  nat_src6[16];
	__u32 nat_flags;        /* XLB_CFG_F_* */
	/* NAT state timeouts in seconds (the control plane writes IPVS's defaults) */
	__u32 nat_tcp_timeout;      /* TCP */
	__u32 nat_tcp_fin_timeout;  /* TCP after a FIN or RST */
	__u32 nat_udp_timeout;      /* UDP */
};

/* config.nat_flags */
#define XLB_CFG_F_NAT (1U << 0) /* a NAT or full-NAT real exists: look replies up in the NAT state */

/* ---- control-plane state, never read by the program ----
 *
 * What the control plane needs, beyond what the program reads, to take its
 * own programming back from the maps: a new process that adopts an
 * instance's pinned maps (hitless restart, src/datapath/xdp/forwarder.ts)
 * rebuilds its services and reals from services, reals, config, nat_ports,
 * vip_filter and these two maps.
 *
 * XLB_ABI_VERSION: bump it on any change of meaning of a struct, map or flag
 * here that keeps the layouts (a layout change is caught without it: the
 * control plane also stores a fingerprint of the layouts). Pinned maps of
 * another version are not adopted. */
#define XLB_ABI_VERSION 1

/* meta: ARRAY, 1 entry (key 0), written once when the maps are created */
struct xlb_meta {
	__u32 abi_version;   /* XLB_ABI_VERSION of whoever created the maps */
	__u32 maglev_size;   /* the program's load-time maglev_size: the size of every table */
	__u64 layout_hash;   /* the control plane's fingerprint of the ABI layouts (abi.ts) */
};

/* real_meta: ARRAY indexed by real id, as reals; written with the real's
 * entry, zeroed when the real is retired */
struct xlb_real_meta {
	__u32 service_id;    /* the service the real belongs to (one id per service x real) */
	__u32 weight;        /* its weight (the Maglev table's input; 0 = drained) */
};

#endif /* XLB_ABI_H */
