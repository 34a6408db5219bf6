/**
 * The benchmark's fixture classes: the frames, the services they hit and the path each must
 * take through bpf/xlb.bpf.c (checked with the program's global counters, so that a bench that
 * measures the wrong path aborts instead of printing a number).
 *
 * Frames are built with the independent builder in test/lib/packets.ts. Flow i of a case has
 * source port SPORT_BASE + i % SPORT_SPAN and the last 16 bits of its source address advanced
 * by floor(i / SPORT_SPAN): the same numbering as the generator (bpf/xlb_gen.bpf.c), so a flow
 * warmed up by one is the flow the other sends.
 *
 * Addresses: 198.18.0.0/15 and fd00::/8 only.
 */
import { eth, ipBytes, ipv4, ipv6, packet, payload, tcp, udp, formatIp } from '../../test/lib/packets.ts';
import type { RealSpec, ServiceSpec, TunnelConfig, XdpForwarder } from '../../src/datapath/xdp/forwarder.ts';
import { XDP_PASS, XDP_TX } from '../../src/datapath/bpf/index.ts';

export const GEN_MAC = '02:00:5e:10:00:01'; // the generator's veth (gen0)
export const LB_MAC = '02:00:5e:10:00:02';  // the balancer's veth (lb0)
export const GEN_IP4 = '198.18.0.1';
export const LB_IP4 = '198.18.0.2';

const CLIENT4 = '198.18.100.1';
/** SYNs come from other clients, so that no SYN meets a flow an established case put in the table */
const CLIENT4_SYN = '198.18.200.1';
const CLIENT6 = 'fd00:1::100:1';
const VIP4_DR = '198.19.0.10';
const VIP4_TUN = '198.19.0.11';
const VIP6_DR = 'fd00:100::10';
const VIP6_TUN = 'fd00:100::11';
const VIP4_NAT = '198.19.0.12';
const VIP4_FULLNAT = '198.19.0.13';
/** the full-NAT source address (natSrc4) */
const NAT_SRC4 = '198.18.5.1';
const NAT_REAL_PORT = 8080;
/** on the LB's segment but not its own: passed to the kernel, which drops it (forwarding is off) */
const NON_SERVICE4 = '198.18.0.250';

export const SPORT_BASE = 20000;
export const SPORT_SPAN = 40000;
const REALS_PER_SERVICE = 8;

export const TUNNEL: TunnelConfig = { tunSrc4: '198.18.4.0', tunSrc4Bits: 8, tunSrc6: 'fd00:4::', tunSrc6Bits: 16, tunTtl: 64 };

/** nat-reply: the real's reply to flow i of a NAT service, whose forward packet (warm(i)) went first */
export type Kind = 'established' | 'syn' | 'pass' | 'nat-reply';

export interface BenchCase {
  name: string;
  /** one line for the output */
  what: string;
  kind: Kind;
  /** the frame of flow i */
  frame(i: number): Buffer;
  verdict: typeof XDP_PASS | typeof XDP_TX;
  /** per-call target, as a ratio to the XDP_TX baseline */
  target?: number;
  /** nat-reply: the forward frame of flow i, sent first so that its NAT state exists */
  warm?(i: number): Buffer;
  /** needs the NAT services (natServices()): programmed for this case alone, so that the other
   * cases run with no NAT real present (a NAT real makes non-service traffic check for replies) */
  nat?: boolean;
  /** measured per call only (the live generator sends one template: no replies to warmed flows,
   * and its balancer agent programs services() alone) */
  perCallOnly?: boolean;
}

/** Source address of flow i: the base with its last 16 bits advanced by floor(i / SPORT_SPAN). */
export function flowSource(base: string, i: number): string {
  const b = ipBytes(base);
  const at = b.length - 2;
  b.writeUInt16BE((b.readUInt16BE(at) + Math.floor(i / SPORT_SPAN)) & 0xffff, at);
  return formatIp(b);
}

export function flowPort(i: number): number {
  return SPORT_BASE + (i % SPORT_SPAN);
}

// TCP options of a typical SYN: MSS 1460, SACK permitted, timestamps, NOP, window scale 7 (20 bytes)
const SYN_OPTIONS = Buffer.from('020405b4' + '0402' + '080a0000000100000000' + '01' + '030307', 'hex');

function frame4(dst: string, proto: 'tcp' | 'udp' | 'syn', dport: number, i: number): Buffer {
  const l2 = eth({ dst: LB_MAC, src: GEN_MAC });
  const l3 = ipv4({ src: flowSource(proto === 'syn' ? CLIENT4_SYN : CLIENT4, i), dst, ttl: 64, df: proto !== 'udp' });
  const sport = flowPort(i);
  if (proto === 'udp') return packet(l2, l3, udp({ sport, dport }), payload(32));
  if (proto === 'syn') return packet(l2, l3, tcp({ sport, dport, flags: 'S', seq: 1000, window: 64240, options: SYN_OPTIONS }));
  return packet(l2, l3, tcp({ sport, dport, flags: 'PA', seq: 5000, ack: 7000, window: 502 }), payload(32));
}

/** The reply of a NAT real (VIP4_NAT's, port NAT_REAL_PORT) to flow i: real -> client. */
function natReply4(i: number): Buffer {
  const l2 = eth({ dst: LB_MAC, src: natReal(0).mac });
  const l3 = ipv4({ src: natReal(0).address, dst: flowSource(CLIENT4, i), ttl: 64, df: true });
  return packet(l2, l3, tcp({ sport: NAT_REAL_PORT, dport: flowPort(i), flags: 'A', seq: 7000, ack: 5032, window: 502 }), payload(32));
}

function frame6(dst: string, proto: 'tcp' | 'udp', dport: number, i: number): Buffer {
  const l2 = eth({ dst: LB_MAC, src: GEN_MAC });
  const l3 = ipv6({ src: flowSource(CLIENT6, i), dst, hopLimit: 64 });
  const sport = flowPort(i);
  if (proto === 'udp') return packet(l2, l3, udp({ sport, dport }), payload(32));
  return packet(l2, l3, tcp({ sport, dport, flags: 'PA', seq: 5000, ack: 7000, window: 502 }), payload(32));
}

export const CASES: readonly BenchCase[] = [
  {
    name: 'tcp-established-dr', kind: 'established', verdict: XDP_TX, target: 4,
    what: 'IPv4 TCP data segment of a flow in the connection table, DR',
    frame: (i) => frame4(VIP4_DR, 'tcp', 80, i),
  },
  {
    name: 'tcp-established-tun', kind: 'established', verdict: XDP_TX, target: 4,
    what: 'IPv4 TCP data segment of a flow in the connection table, TUN (4in4)',
    frame: (i) => frame4(VIP4_TUN, 'tcp', 80, i),
  },
  {
    name: 'tcp-syn-dr', kind: 'syn', verdict: XDP_TX,
    what: 'IPv4 TCP SYN of a new flow (Maglev lookup, connection-table insert), DR',
    frame: (i) => frame4(VIP4_DR, 'syn', 80, i),
  },
  {
    name: 'udp-dr', kind: 'established', verdict: XDP_TX,
    what: 'IPv4 UDP datagram of a flow in the connection table, DR',
    frame: (i) => frame4(VIP4_DR, 'udp', 53, i),
  },
  {
    name: 'udp-tun', kind: 'established', verdict: XDP_TX,
    what: 'IPv4 UDP datagram of a flow in the connection table, TUN (4in4)',
    frame: (i) => frame4(VIP4_TUN, 'udp', 53, i),
  },
  {
    name: 'ipv6-tcp-established-dr', kind: 'established', verdict: XDP_TX, target: 4,
    what: 'IPv6 TCP data segment of a flow in the connection table, DR',
    frame: (i) => frame6(VIP6_DR, 'tcp', 80, i),
  },
  {
    name: 'ipv6-tcp-established-tun', kind: 'established', verdict: XDP_TX, target: 4,
    what: 'IPv6 TCP data segment of a flow in the connection table, TUN (6in6)',
    frame: (i) => frame6(VIP6_TUN, 'tcp', 80, i),
  },
  {
    name: 'pass-non-service', kind: 'pass', verdict: XDP_PASS, target: 2,
    what: 'IPv4 TCP segment to an address with no service: passed to the kernel',
    frame: (i) => frame4(NON_SERVICE4, 'tcp', 22, i),
  },
  {
    name: 'tcp-established-nat', kind: 'established', verdict: XDP_TX, nat: true, perCallOnly: true,
    what: `IPv4 TCP data segment of a flow in the connection table, NAT (VIP:80 -> real:${NAT_REAL_PORT})`,
    frame: (i) => frame4(VIP4_NAT, 'tcp', 80, i),
  },
  {
    name: 'tcp-established-fullnat', kind: 'established', verdict: XDP_TX, nat: true, perCallOnly: true,
    what: `IPv4 TCP data segment of a flow in the connection table, full-NAT (VIP:80 -> real:${NAT_REAL_PORT}, source natSrc4)`,
    frame: (i) => frame4(VIP4_FULLNAT, 'tcp', 80, i),
  },
  {
    name: 'nat-reply', kind: 'nat-reply', verdict: XDP_TX, nat: true, perCallOnly: true,
    what: `IPv4 TCP reply of a NAT real (real:${NAT_REAL_PORT} -> client) translated back to VIP:80`,
    frame: natReply4,
    warm: (i) => frame4(VIP4_NAT, 'tcp', 80, i),
  },
  {
    name: 'pass-non-service-nat', kind: 'pass', verdict: XDP_PASS, nat: true, perCallOnly: true,
    what: 'pass-non-service with a NAT real present (the reply check: the nat_ports bitmap)',
    frame: (i) => frame4(NON_SERVICE4, 'tcp', 22, i),
  },
];

/** The real k of the NAT services (one address list for NAT and full-NAT). */
function natReal(k: number): RealSpec & { mac: string } {
  return { address: `198.18.6.${11 + k}`, weight: 1, method: 'nat', port: NAT_REAL_PORT, mac: `02:00:5e:30:00:${(0x11 + k).toString(16).padStart(2, '0')}`, smac: LB_MAC };
}

/** The configuration the NAT cases add to TUNNEL: the full-NAT source address. */
export const NAT_CONFIG = { ...TUNNEL, natSrc4: NAT_SRC4 };

/** The services of the NAT cases: VIP4_NAT:80 to NAT reals, VIP4_FULLNAT:80 to full-NAT ones, real port 8080.
 * The NAT service has one real, so that every flow's reply comes from the address natReply4 uses. */
export function natServices(): { service: ServiceSpec; reals: RealSpec[] }[] {
  return [
    { service: { address: VIP4_NAT, port: 80, protocol: 'tcp' }, reals: [natReal(0)] },
    {
      service: { address: VIP4_FULLNAT, port: 80, protocol: 'tcp' },
      reals: Array.from({ length: REALS_PER_SERVICE }, (_, k) => ({ ...natReal(k), method: 'fullnat' as const })),
    },
  ];
}

/** The services every case needs, programmed once into a forwarder. */
export function services(): { service: ServiceSpec; reals: RealSpec[] }[] {
  const reals = (prefix: string, method: 'dr' | 'tun', sep: string): RealSpec[] =>
    Array.from({ length: REALS_PER_SERVICE }, (_, k) => ({
      address: `${prefix}${sep}${11 + k}`,
      weight: 1,
      method,
      mac: `02:00:5e:20:00:${(0x11 + k).toString(16).padStart(2, '0')}`,
      smac: LB_MAC,
    }));
  const dr4 = reals('198.18.2', 'dr', '.');
  const tun4 = reals('198.18.3', 'tun', '.');
  const dr6 = reals('fd00:2:', 'dr', ':');
  const tun6 = reals('fd00:3:', 'tun', ':');
  return [
    { service: { address: VIP4_DR, port: 80, protocol: 'tcp' }, reals: dr4 },
    { service: { address: VIP4_TUN, port: 80, protocol: 'tcp' }, reals: tun4 },
    { service: { address: VIP4_DR, port: 53, protocol: 'udp' }, reals: dr4 },
    { service: { address: VIP4_TUN, port: 53, protocol: 'udp' }, reals: tun4 },
    { service: { address: VIP6_DR, port: 80, protocol: 'tcp' }, reals: dr6 },
    { service: { address: VIP6_TUN, port: 80, protocol: 'tcp' }, reals: tun6 },
  ];
}

export type Counters = Record<string, bigint>;

/**
 * The forwarder's global counters plus `svc_conns`: the connections scheduled by Maglev and
 * written to the table, summed over the bench's services (service_stats.conns), with the NAT
 * services when they are programmed (withNat).
 */
export function readCounters(fw: XdpForwarder, withNat = false): Counters {
  let conns = 0n;
  for (const s of withNat ? [...services(), ...natServices()] : services()) conns += fw.serviceStats(s.service).conns;
  return { ...fw.counters(), svc_conns: conns };
}

export function counterDelta(before: Counters, after: Counters): Counters {
  const d: Counters = {};
  for (const k of Object.keys(after)) d[k] = after[k]! - (before[k] ?? 0n);
  return d;
}

/**
 * Check that n packets took the case's path: every one seen (rx), the expected verdict counter
 * and connection-table outcome, and nothing else (no drops, stale entries, redirects, passes).
 * Established: n table hits, no connection scheduled. SYN: n connections scheduled and written
 * (svc_conns), no hit; ct_miss counts them too, or (an earlier policy of the program) not at all.
 * Returns a description of what is wrong, or null.
 */
export function checkPath(c: BenchCase, d: Counters, n: number): string | null {
  const N = BigInt(n);
  const want: Record<string, bigint | bigint[]> = { rx: N };
  if (c.kind === 'pass') {
    want.pass_non_service = N;
  } else if (c.kind === 'nat-reply') {
    want.tx = N;
    want.nat_reply = N;
  } else {
    want.tx = N;
    if (c.kind === 'established') { want.ct_hit = N; want.svc_conns = 0n; }
    else { want.svc_conns = N; want.ct_miss = [N, 0n]; }
  }
  const wrong: string[] = [];
  for (const [k, v] of Object.entries(want)) {
    const got = d[k] ?? 0n;
    const ok = Array.isArray(v) ? v.includes(got) : got === v;
    if (!ok) wrong.push(`${k} ${got} (expected ${Array.isArray(v) ? v.join(' or ') : v})`);
  }
  for (const [k, v] of Object.entries(d)) {
    if (!(k in want) && v !== 0n) wrong.push(`${k} ${v} (expected 0)`);
  }
  return wrong.length ? `${c.name}: ${n} packets did not take the expected path: ${wrong.join(', ')}` : null;
}
