/**
 * Fixtures for the XDP forwarder (bpf/xlb.bpf.c): {description, setup, input, verdict, output,
 * counter}. Inputs come from the independent builder (test/lib/packets.ts); every expected output
 * is derived from the input by the forwarder's spec, never by running the program:
 *
 *  - DR:  Ethernet dst = the real's mac, src = the real's smac, every other byte unchanged;
 *  - TUN: an outer IPv4 (encap4) or IPv6 (encap6) header after the Ethernet/VLAN header, outer
 *         source = the configured tunnel source (0 spread bits here), outer ttl/hop limit =
 *         TUN_TTL, then the DR MAC rewrite;
 *  - PASS and DROP: the packet unchanged (no `output`).
 *
 * Every forwarding service here has exactly one real, so the expected real does not depend on
 * the program's hash; spreading and stickiness are tested in forwarder.test.ts.
 *
 * `counter` names the global counter that must go up by one (besides rx, and tx/redirect as the
 * verdict says). Forwarded TCP SYNs name none: a SYN is scheduled without a table lookup, and the
 * spec does not say whether that counts as a miss.
 */
import type { CounterName, RealSpec, ServiceSpec, TunnelConfig } from '../../src/datapath/xdp/forwarder.ts';
import {
  encap4, encap6, eth, icmpv4, icmpv6, ipv4, ipv6, packet, payload, tcp, truncate, udp, withMacs,
  ETH_P_ARP, IPPROTO, type Ipv4Spec, type Ipv6Ext, type Ipv6Spec, type Layer, type TcpSpec,
} from '../lib/packets.ts';

import { XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX } from '../../src/datapath/bpf/index.ts';
export { XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX };

/** Counter names come from the ABI mirror (checked against the object's BTF by abi.test.ts). */
export type { CounterName };

// ---------------------------------------------------------------- the network

/** the balancer's interface: destination of every input frame */
export const LB_MAC = '02:00:00:00:00:01';
/** the previous hop (client side router) */
export const PEER_MAC = '02:00:00:00:02:01';
/** source MAC of the egress interface toward the reals */
export const EGRESS_MAC = '02:00:00:00:00:fe';

export const CLIENT4 = '198.18.2.1';
export const CLIENT6 = 'fd00:18:2::1';
export const ROUTER4 = '198.18.3.1';
export const ROUTER6 = 'fd00:18:3::1';
export const NON_VIP4 = '198.18.0.99';
export const NON_VIP6 = 'fd00:18::99';

/** not 64, so that a program ignoring the configured TTL is caught */
export const TUN_TTL = 37;
export const TUN_CONFIG = { tunSrc4: '198.18.255.0', tunSrc4Bits: 0, tunSrc6: 'fd00:ff::', tunSrc6Bits: 0, tunTtl: TUN_TTL } satisfies TunnelConfig;

/** lo: a redirect target that exists on every machine */
export const LO_IFINDEX = 1;

function real(address: string, macLow: string, method: 'dr' | 'tun', ifindex?: number): RealSpec {
  return { address, weight: 1, method, mac: `02:00:00:00:${macLow}`, smac: EGRESS_MAC, ...(ifindex === undefined ? {} : { ifindex }) };
}
const svc = (address: string, port: number, protocol: 'tcp' | 'udp'): ServiceSpec => ({ address, port, protocol });

// VIPs
const V4 = '198.18.0.10';        // DR: tcp/80, udp/53
const V4T = '198.18.0.11';       // TUN: tcp/80, udp/53
const V6 = 'fd00:18::10';        // DR: tcp/80, udp/53
const V6T = 'fd00:18::11';       // TUN: tcp/80, udp/53
const VALL4 = '198.18.0.20';     // all ports: tcp (DR), udp (DR)
const VALL4T = '198.18.0.21';    // all ports: udp (TUN)
const VALL6 = 'fd00:18::20';     // all ports: tcp (DR), udp (TUN)
const VMIX = '198.18.0.22';      // tcp/80 (DR), tcp all ports (DR, another real), udp/53 (DR)
const VNOREAL = '198.18.0.30';   // tcp/80 without reals
const VMISM4 = '198.18.0.31';    // tcp/80, TUN to an IPv6 real
const VMISM6 = 'fd00:18::31';    // tcp/80, TUN to an IPv4 real
const VREDIR4 = '198.18.0.40';   // tcp/80, DR real behind ifindex 1
const VREDIR6 = 'fd00:18::40';   // tcp/80, TUN real behind ifindex 1

// reals (one per service; MACs distinct so a wrong choice shows)
const R = {
  v4tcp: real('198.18.1.1', '01:01', 'dr'),
  v4udp: real('198.18.1.2', '01:02', 'dr'),
  v4ttcp: real('198.18.1.11', '01:11', 'tun'),
  v4tudp: real('198.18.1.12', '01:12', 'tun'),
  v6tcp: real('fd00:18:1::1', '06:01', 'dr'),
  v6udp: real('fd00:18:1::2', '06:02', 'dr'),
  v6ttcp: real('fd00:18:1::11', '06:11', 'tun'),
  v6tudp: real('fd00:18:1::12', '06:12', 'tun'),
  all4tcp: real('198.18.1.20', '01:20', 'dr'),
  all4udp: real('198.18.1.21', '01:21', 'dr'),
  all4tudp: real('198.18.1.22', '01:22', 'tun'),
  all6tcp: real('fd00:18:1::20', '06:20', 'dr'),
  all6tudp: real('fd00:18:1::21', '06:21', 'tun'),
  mix80: real('198.18.1.23', '01:23', 'dr'),
  mixAll: real('198.18.1.24', '01:24', 'dr'),
  mixUdp: real('198.18.1.25', '01:25', 'dr'),
  mism4: real('fd00:18:1::31', '06:31', 'tun'),
  mism6: real('198.18.1.31', '01:31', 'tun'),
  redir4: real('198.18.1.40', '01:40', 'dr', LO_IFINDEX),
  redir6: real('fd00:18:1::40', '06:40', 'tun', LO_IFINDEX),
};

export interface Setup {
  config: TunnelConfig;
  services: { service: ServiceSpec; reals: RealSpec[] }[];
}

export const SETUPS = {
  main: {
    config: TUN_CONFIG,
    services: [
      { service: svc(V4, 80, 'tcp'), reals: [R.v4tcp] },
      { service: svc(V4, 53, 'udp'), reals: [R.v4udp] },
      { service: svc(V4T, 80, 'tcp'), reals: [R.v4ttcp] },
      { service: svc(V4T, 53, 'udp'), reals: [R.v4tudp] },
      { service: svc(V6, 80, 'tcp'), reals: [R.v6tcp] },
      { service: svc(V6, 53, 'udp'), reals: [R.v6udp] },
      { service: svc(V6T, 80, 'tcp'), reals: [R.v6ttcp] },
      { service: svc(V6T, 53, 'udp'), reals: [R.v6tudp] },
      { service: svc(VALL4, 0, 'tcp'), reals: [R.all4tcp] },
      { service: svc(VALL4, 0, 'udp'), reals: [R.all4udp] },
      { service: svc(VALL4T, 0, 'udp'), reals: [R.all4tudp] },
      { service: svc(VALL6, 0, 'tcp'), reals: [R.all6tcp] },
      { service: svc(VALL6, 0, 'udp'), reals: [R.all6tudp] },
      { service: svc(VMIX, 80, 'tcp'), reals: [R.mix80] },
      { service: svc(VMIX, 0, 'tcp'), reals: [R.mixAll] },
      { service: svc(VMIX, 53, 'udp'), reals: [R.mixUdp] },
      { service: svc(VNOREAL, 80, 'tcp'), reals: [] },
      { service: svc(VMISM4, 80, 'tcp'), reals: [R.mism4] },
      { service: svc(VMISM6, 80, 'tcp'), reals: [R.mism6] },
      { service: svc(VREDIR4, 80, 'tcp'), reals: [R.redir4] },
      { service: svc(VREDIR6, 80, 'tcp'), reals: [R.redir6] },
    ],
  },
  /** every service of `main` removed again */
  none: { config: TUN_CONFIG, services: [] },
} satisfies Record<string, Setup>;
export type SetupName = keyof typeof SETUPS;

export interface Fixture {
  description: string;
  /** default 'main' */
  setup?: SetupName;
  input: Buffer;
  verdict: number;
  /** the expected packet; omitted: the input, unchanged */
  output?: Buffer;
  /** the global counter that goes up by one */
  counter?: CounterName;
  /** ingress interface of the run: an ifindex, or 'other' = some existing interface that is not lo.
   *  Omitted: the kernel's default for a test run, which is lo (ifindex 1). */
  ingress?: number | 'other';
}

// ---------------------------------------------------------------- input builders

const E = (vlan?: number): Layer => eth({ dst: LB_MAC, src: PEER_MAC, ...(vlan === undefined ? {} : { vlan }) });

interface FlowOpts { vlan?: number; ip?: Partial<Ipv4Spec>; ip6?: Partial<Ipv6Spec>; tcp?: Partial<TcpSpec>; data?: Buffer; src?: string; sport?: number }

function tcp4(dst: string, dport: number, flags: string, o: FlowOpts = {}): Buffer {
  return packet(
    E(o.vlan),
    ipv4({ src: o.src ?? CLIENT4, dst, df: true, id: 0x1c46, ...o.ip }),
    tcp({ sport: o.sport ?? 40000, dport, flags, seq: 0x1000, ack: flags.includes('A') ? 0x2000 : 0, ...o.tcp }),
    o.data ?? (flags.includes('S') ? Buffer.alloc(0) : payload(32)),
  );
}

function udp4(dst: string, dport: number, o: FlowOpts = {}): Buffer {
  return packet(E(o.vlan), ipv4({ src: o.src ?? CLIENT4, dst, id: 0x2d57, ...o.ip }), udp({ sport: o.sport ?? 50000, dport }), o.data ?? payload(24));
}

function tcp6(dst: string, dport: number, flags: string, o: FlowOpts = {}): Buffer {
  return packet(
    E(o.vlan),
    ipv6({ src: o.src ?? CLIENT6, dst, ...o.ip6 }),
    tcp({ sport: o.sport ?? 40000, dport, flags, seq: 0x1000, ack: flags.includes('A') ? 0x2000 : 0, ...o.tcp }),
    o.data ?? (flags.includes('S') ? Buffer.alloc(0) : payload(32)),
  );
}

function udp6(dst: string, dport: number, o: FlowOpts = {}): Buffer {
  return packet(E(o.vlan), ipv6({ src: o.src ?? CLIENT6, dst, ...o.ip6 }), udp({ sport: o.sport ?? 50000, dport }), o.data ?? payload(24));
}

/** An IPv4 fragment: `first` carries the UDP/TCP header, the others only data. Offsets in 8-octet units. */
function frag4(dst: string, proto: 'tcp' | 'udp', f: { offset: number; more: boolean }, dport = 80): Buffer {
  const ip: Ipv4Spec = { src: CLIENT4, dst, id: 0x7777, mf: f.more, fragOffset: f.offset, proto: IPPROTO[proto === 'tcp' ? 'TCP' : 'UDP'] };
  if (f.offset !== 0) return packet(E(), ipv4(ip), payload(64, 0x40));
  const l4 = proto === 'tcp' ? tcp({ sport: 40000, dport, flags: 'PA', seq: 1, ack: 1 }) : udp({ sport: 50000, dport });
  // the transport checksum covers the whole datagram; as a fragment only its start is here
  return packet(E(), ipv4(ip), l4, payload(64));
}

function frag6(dst: string, proto: 'tcp' | 'udp', f: { offset: number; more: boolean }, before: Ipv6Ext[] = [], dport = 80): Buffer {
  const fh: Ipv6Ext = { type: 'fragment', offset: f.offset, more: f.more, id: 0x01020304 };
  const ip: Ipv6Spec = { src: CLIENT6, dst, nextHeader: IPPROTO[proto === 'tcp' ? 'TCP' : 'UDP'], extHeaders: [...before, fh] };
  if (f.offset !== 0) return packet(E(), ipv6(ip), payload(64, 0x40));
  const l4 = proto === 'tcp' ? tcp({ sport: 40000, dport, flags: 'PA', seq: 1, ack: 1 }) : udp({ sport: 50000, dport });
  return packet(E(), ipv6(ip), l4, payload(64));
}

/** What a real answered the client with (src = VIP:port), as quoted in an ICMP error: its first `quote` bytes. */
function reply4(vip: string, port: number, proto: 'tcp' | 'udp', quote: number): Buffer {
  const l4 = proto === 'tcp' ? tcp({ sport: port, dport: 40000, flags: 'PA', seq: 0x2000, ack: 0x1020 }) : udp({ sport: port, dport: 50000 });
  return truncate(packet(ipv4({ src: vip, dst: CLIENT4, df: true, id: 0x5151 }), l4, payload(1452)), quote);
}

function reply6(vip: string, port: number, proto: 'tcp' | 'udp', quote: number): Buffer {
  const l4 = proto === 'tcp' ? tcp({ sport: port, dport: 40000, flags: 'PA', seq: 0x2000, ack: 0x1020 }) : udp({ sport: port, dport: 50000 });
  return truncate(packet(ipv6({ src: vip, dst: CLIENT6, flowLabel: 0xabcde }), l4, payload(1432)), quote);
}

/** ICMPv4 error from a router on the path to the client, about a packet a real sent from the VIP. */
function icmpErr4(vip: string, type: number, code: number, rest: number, quoted: Buffer, vlan?: number): Buffer {
  return packet(E(vlan), ipv4({ src: ROUTER4, dst: vip, tos: 0xc0, ttl: 62, id: 0x0e0e }), icmpv4({ type, code, rest }), quoted);
}

function icmpErr6(vip: string, type: number, code: number, rest: number, quoted: Buffer): Buffer {
  return packet(E(), ipv6({ src: ROUTER6, dst: vip, hopLimit: 62 }), icmpv6({ type, code, rest }), quoted);
}

// ---------------------------------------------------------------- expected outputs

const dr = (frame: Buffer, r: RealSpec): Buffer => withMacs(frame, r.mac, r.smac);
const tun4 = (frame: Buffer, r: RealSpec): Buffer => dr(encap4(frame, { outerSrc: TUN_CONFIG.tunSrc4, outerDst: r.address, ttl: TUN_TTL }), r);
const tun6 = (frame: Buffer, r: RealSpec): Buffer => dr(encap6(frame, { outerSrc: TUN_CONFIG.tunSrc6, outerDst: r.address, hopLimit: TUN_TTL }), r);

function forwardDr(description: string, input: Buffer, r: RealSpec, counter?: CounterName): Fixture {
  return { description, input, verdict: XDP_TX, output: dr(input, r), ...(counter ? { counter } : {}) };
}
function forwardTun4(description: string, input: Buffer, r: RealSpec, counter?: CounterName): Fixture {
  return { description, input, verdict: XDP_TX, output: tun4(input, r), ...(counter ? { counter } : {}) };
}
function forwardTun6(description: string, input: Buffer, r: RealSpec, counter?: CounterName): Fixture {
  return { description, input, verdict: XDP_TX, output: tun6(input, r), ...(counter ? { counter } : {}) };
}
const pass = (description: string, input: Buffer, counter: CounterName, setup?: SetupName): Fixture =>
  ({ description, input, verdict: XDP_PASS, counter, ...(setup ? { setup } : {}) });
const drop = (description: string, input: Buffer, counter: CounterName): Fixture => ({ description, input, verdict: XDP_DROP, counter });

// IPv4 options: Router Alert (RFC 2113) and a NOP NOP NOP EOL word: ihl 7
const IPV4_OPTIONS = Buffer.from([0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00]);
// the longest IPv4 header: 39 NOPs and an EOL
const OPTIONS_40 = Buffer.concat([Buffer.alloc(39, 0x01), Buffer.from([0x00])]);
// a hop-by-hop header with a Router Alert option (RFC 2711) and PadN
const HBH_RA: Ipv6Ext = { type: 'hopByHop', options: Buffer.from([0x05, 0x02, 0x00, 0x00, 0x01, 0x00]) };

// ---------------------------------------------------------------- the table

export const FIXTURES: Fixture[] = [
  // --- DR
  forwardDr('DR IPv4 TCP SYN', tcp4(V4, 80, 'S'), R.v4tcp),
  forwardDr('DR IPv4 TCP established (ACK with data), not in the table', tcp4(V4, 80, 'PA'), R.v4tcp, 'ct_miss'),
  forwardDr('DR IPv4 UDP', udp4(V4, 53), R.v4udp, 'ct_miss'),
  forwardDr('DR IPv6 TCP SYN', tcp6(V6, 80, 'S'), R.v6tcp),
  forwardDr('DR IPv6 TCP established', tcp6(V6, 80, 'A'), R.v6tcp, 'ct_miss'),
  forwardDr('DR IPv6 UDP', udp6(V6, 53), R.v6udp, 'ct_miss'),
  forwardDr('DR IPv4 with options (ihl 7): forwarded byte-identical', tcp4(V4, 80, 'S', { ip: { options: IPV4_OPTIONS } }), R.v4tcp),
  forwardDr('DR IPv6 hop-by-hop + destination options before TCP', tcp6(V6, 80, 'S', { ip6: { extHeaders: [HBH_RA, { type: 'dstOpts' }] } }), R.v6tcp),
  forwardDr('DR IPv6 routing header (segments left 0) before UDP', udp6(V6, 53, { ip6: { extHeaders: [{ type: 'routing' }] } }), R.v6udp, 'ct_miss'),
  forwardDr('DR IPv6 hop-by-hop, routing, destination options before TCP', tcp6(V6, 80, 'A', { ip6: { extHeaders: [{ type: 'hopByHop' }, { type: 'routing' }, { type: 'dstOpts' }] } }), R.v6tcp, 'ct_miss'),
  forwardDr('DR VLAN-tagged IPv4 TCP SYN (tag kept)', tcp4(V4, 80, 'S', { vlan: 100 }), R.v4tcp),
  forwardDr('DR VLAN-tagged IPv6 UDP (tag kept)', udp6(V6, 53, { vlan: 4094 }), R.v6udp, 'ct_miss'),

  // --- TUN
  forwardTun4('TUN IPv4 TCP SYN (DF, tos 0x10)', tcp4(V4T, 80, 'S', { ip: { tos: 0x10 } }), R.v4ttcp),
  forwardTun4('TUN IPv4 TCP established', tcp4(V4T, 80, 'PA'), R.v4ttcp, 'ct_miss'),
  forwardTun4('TUN IPv4 UDP (no DF, tos 0xb8)', udp4(V4T, 53, { ip: { tos: 0xb8 } }), R.v4tudp, 'ct_miss'),
  forwardTun6('TUN IPv6 TCP SYN (traffic class 0x28, flow label 0x12345)', tcp6(V6T, 80, 'S', { ip6: { trafficClass: 0x28, flowLabel: 0x12345 } }), R.v6ttcp),
  forwardTun6('TUN IPv6 UDP', udp6(V6T, 53, { ip6: { flowLabel: 0xfffff } }), R.v6tudp, 'ct_miss'),
  forwardTun4('TUN VLAN-tagged IPv4 TCP SYN (outer header after the tag)', tcp4(V4T, 80, 'S', { vlan: 100 }), R.v4ttcp),
  forwardTun6('TUN VLAN-tagged IPv6 UDP (outer header after the tag)', udp6(V6T, 53, { vlan: 7 }), R.v6tudp, 'ct_miss'),
  forwardTun4('TUN IPv4 with options (outer length counts them)', tcp4(V4T, 80, 'PA', { ip: { options: IPV4_OPTIONS } }), R.v4ttcp, 'ct_miss'),
  forwardTun6('TUN IPv6 hop-by-hop before UDP', udp6(V6T, 53, { ip6: { extHeaders: [HBH_RA] } }), R.v6tudp, 'ct_miss'),

  // --- service lookup
  forwardDr('lookup: the port-specific service wins over the all-ports one', tcp4(VMIX, 80, 'S'), R.mix80),
  forwardDr('lookup: the all-ports service takes another port', tcp4(VMIX, 8080, 'S'), R.mixAll),
  forwardDr('lookup: all-ports UDP service', udp4(VALL4, 4789), R.all4udp, 'ct_miss'),
  forwardTun6('lookup: all-ports IPv6 UDP service (TUN)', udp6(VALL6, 4789), R.all6tudp, 'ct_miss'),

  // --- not for a service: passed untouched
  pass('IPv4 TCP to an address that is no VIP', tcp4(NON_VIP4, 80, 'S'), 'pass_non_service'),
  pass('IPv6 TCP to an address that is no VIP', tcp6(NON_VIP6, 80, 'S'), 'pass_non_service'),
  pass('IPv4 TCP to another port of a VIP', tcp4(V4, 443, 'S'), 'pass_non_service'),
  pass('IPv4 UDP to the port of a TCP-only service', udp4(V4, 80), 'pass_non_service'),
  pass('IPv6 UDP to another port of a VIP', udp6(V6, 5353), 'pass_non_service'),
  pass('ARP request', packet(eth({ dst: 'ff:ff:ff:ff:ff:ff', src: PEER_MAC, type: ETH_P_ARP }),
    Buffer.from('0001080006040001020000000201c6120201000000000000c612000a', 'hex')), 'pass_non_ip'),
  pass('LLDP (EtherType 88cc)', packet(eth({ dst: '01:80:c2:00:00:0e', src: PEER_MAC, type: 0x88cc }), payload(46)), 'pass_non_ip'),
  pass('VLAN-tagged ARP', packet(eth({ dst: 'ff:ff:ff:ff:ff:ff', src: PEER_MAC, vlan: 100, type: ETH_P_ARP }),
    Buffer.from('0001080006040001020000000201c6120201000000000000c612000a', 'hex')), 'pass_non_ip'),
  pass('a second 802.1Q tag is not followed (at most one tag)', packet(eth({ dst: LB_MAC, src: PEER_MAC, vlan: 100, type: 0x8100 }),
    Buffer.from([0x00, 0xc8, 0x08, 0x00]), truncate(tcp4(V4, 80, 'S'), 54).subarray(14)), 'pass_non_ip'),
  pass('ICMP echo request to a VIP', packet(E(), ipv4({ src: CLIENT4, dst: V4 }), icmpv4({ type: 8, code: 0, rest: 0x00420001 }), payload(56)), 'pass_local'),
  pass('ICMPv6 echo request to a VIP', packet(E(), ipv6({ src: CLIENT6, dst: V6 }), icmpv6({ type: 128, code: 0, rest: 0x00420001 }), payload(56)), 'pass_local'),
  pass('ICMP echo request to an address that is no VIP', packet(E(), ipv4({ src: CLIENT4, dst: NON_VIP4 }), icmpv4({ type: 8, code: 0, rest: 0x00420001 }), payload(56)), 'pass_non_service'),
  pass('GRE to a VIP (a protocol no service balances)', packet(E(), ipv4({ src: CLIENT4, dst: V4, proto: IPPROTO.GRE }), payload(24)), 'pass_local'),
  pass('TCP SYN to a VIP after its services were removed', tcp4(V4, 80, 'S'), 'pass_non_service', 'none'),

  // --- truncated and malformed
  drop('Ethernet: 802.1Q tag cut short (16 bytes)', truncate(tcp4(V4, 80, 'S', { vlan: 100 }), 16), 'drop_truncated'),
  drop('IPv4 header cut at 19 bytes', truncate(tcp4(V4, 80, 'S'), 14 + 19), 'drop_truncated'),
  drop('IPv4 header with 40 bytes of options (ihl 15) cut at 40 bytes', truncate(tcp4(V4, 80, 'S', { ip: { options: OPTIONS_40 } }), 14 + 40), 'drop_truncated'),
  drop('IPv4 ihl 4', tcp4(V4, 80, 'S', { ip: { ihl: 4 } }), 'drop_malformed'),
  drop('IPv4 version 5 in an IPv4 frame', tcp4(V4, 80, 'S', { ip: { version: 5 } }), 'drop_malformed'),
  drop('IPv6 header cut at 30 bytes', truncate(tcp6(V6, 80, 'S'), 14 + 30), 'drop_truncated'),
  drop('IPv4 TCP to a service cut at 12 bytes of TCP header', truncate(tcp4(V4, 80, 'S'), 14 + 20 + 12), 'drop_truncated'),
  drop('IPv4 UDP to a service cut at 6 bytes of UDP header', truncate(udp4(V4, 53), 14 + 20 + 6), 'drop_truncated'),
  drop('IPv6 TCP to a service cut at 10 bytes of TCP header', truncate(tcp6(V6, 80, 'S'), 14 + 40 + 10), 'drop_truncated'),
  drop('IPv4 TCP to a service with data offset 4', tcp4(V4, 80, 'S', { tcp: { dataOffset: 4 } }), 'drop_malformed'),
  drop('IPv6 TCP to a service with data offset 3', tcp6(V6, 80, 'A', { tcp: { dataOffset: 3 } }), 'drop_malformed'),
  pass('IPv4 TCP cut at 12 bytes to a port that is no service: not dropped', truncate(tcp4(V4, 443, 'S'), 14 + 20 + 12), 'pass_non_service'),
  pass('IPv4 TCP data offset 4 to an address that is no VIP: not dropped', tcp4(NON_VIP4, 80, 'S', { tcp: { dataOffset: 4 } }), 'pass_non_service'),
  pass('IPv4 UDP cut at 6 bytes to an address that is no VIP: not dropped', truncate(udp4(NON_VIP4, 53), 14 + 20 + 6), 'pass_non_service'),

  // --- fragments
  forwardDr('IPv4 first fragment to an all-ports TCP service', frag4(VALL4, 'tcp', { offset: 0, more: true }), R.all4tcp, 'fragment_fwd'),
  forwardDr('IPv4 middle fragment to an all-ports TCP service', frag4(VALL4, 'tcp', { offset: 185, more: true }), R.all4tcp, 'fragment_fwd'),
  forwardTun4('IPv4 last fragment to an all-ports UDP service (TUN)', frag4(VALL4T, 'udp', { offset: 370, more: false }), R.all4tudp, 'fragment_fwd'),
  forwardDr('IPv4 TCP fragment to a VIP with a port and an all-ports TCP service: the all-ports one', frag4(VMIX, 'tcp', { offset: 185, more: true }), R.mixAll, 'fragment_fwd'),
  drop('IPv4 first fragment to a VIP with port-specific services only (port matches)', frag4(V4, 'tcp', { offset: 0, more: true }), 'drop_fragment'),
  drop('IPv4 middle fragment to a VIP with port-specific services only', frag4(V4, 'tcp', { offset: 185, more: true }), 'drop_fragment'),
  drop('IPv4 UDP fragment to a VIP whose all-ports service is TCP', frag4(VMIX, 'udp', { offset: 0, more: true }, 53), 'drop_fragment'),
  pass('IPv4 fragment to an address that is no VIP', frag4(NON_VIP4, 'tcp', { offset: 0, more: true }), 'pass_non_service'),
  forwardDr('IPv6 first fragment to an all-ports TCP service', frag6(VALL6, 'tcp', { offset: 0, more: true }), R.all6tcp, 'fragment_fwd'),
  forwardTun6('IPv6 middle fragment to an all-ports UDP service (TUN)', frag6(VALL6, 'udp', { offset: 185, more: true }), R.all6tudp, 'fragment_fwd'),
  forwardDr('IPv6 hop-by-hop then fragment header to an all-ports service', frag6(VALL6, 'tcp', { offset: 370, more: false }, [{ type: 'hopByHop' }]), R.all6tcp, 'fragment_fwd'),
  forwardDr('IPv6 four extension headers (hop-by-hop, routing, destination options, fragment) walked to the fragment',
    frag6(VALL6, 'tcp', { offset: 0, more: true }, [{ type: 'hopByHop' }, { type: 'routing' }, { type: 'dstOpts' }]), R.all6tcp, 'fragment_fwd'),
  drop('IPv6 fragment to a VIP with port-specific services only', frag6(V6, 'tcp', { offset: 0, more: true }), 'drop_fragment'),
  pass('IPv6 fragment to an address that is no VIP', frag6(NON_VIP6, 'udp', { offset: 0, more: true }), 'pass_non_service'),

  // --- ICMP errors about a service's flow: to the flow's real, unchanged but for the method
  forwardDr('ICMP fragmentation needed for a DR TCP flow', icmpErr4(V4, 3, 4, 1400, reply4(V4, 80, 'tcp', 20 + 20 + 32)), R.v4tcp, 'icmp_fwd'),
  forwardTun4('ICMP fragmentation needed for a TUN TCP flow', icmpErr4(V4T, 3, 4, 1400, reply4(V4T, 80, 'tcp', 20 + 20 + 32)), R.v4ttcp, 'icmp_fwd'),
  forwardDr('ICMP fragmentation needed quoting only 8 bytes of TCP (RFC 792)', icmpErr4(V4, 3, 4, 1400, reply4(V4, 80, 'tcp', 20 + 8)), R.v4tcp, 'icmp_fwd'),
  forwardDr('ICMP time exceeded for a DR UDP flow', icmpErr4(V4, 11, 0, 0, reply4(V4, 53, 'udp', 20 + 8 + 24)), R.v4udp, 'icmp_fwd'),
  forwardDr('VLAN-tagged ICMP port unreachable for a DR UDP flow', icmpErr4(V4, 3, 3, 0, reply4(V4, 53, 'udp', 20 + 8 + 24), 100), R.v4udp, 'icmp_fwd'),
  forwardDr('ICMPv6 packet too big for a DR TCP flow', icmpErr6(V6, 2, 0, 1280, reply6(V6, 80, 'tcp', 40 + 20 + 32)), R.v6tcp, 'icmp_fwd'),
  forwardTun6('ICMPv6 packet too big for a TUN TCP flow', icmpErr6(V6T, 2, 0, 1280, reply6(V6T, 80, 'tcp', 40 + 20 + 32)), R.v6ttcp, 'icmp_fwd'),
  forwardDr('ICMPv6 destination unreachable for a DR UDP flow', icmpErr6(V6, 1, 4, 0, reply6(V6, 53, 'udp', 40 + 8 + 24)), R.v6udp, 'icmp_fwd'),
  forwardDr('ICMPv6 time exceeded for a DR UDP flow', icmpErr6(V6, 3, 0, 0, reply6(V6, 53, 'udp', 40 + 8 + 24)), R.v6udp, 'icmp_fwd'),

  pass('ICMP parameter problem (type 12) to a VIP: not an error that is steered', icmpErr4(V4, 12, 0, 0x14000000, reply4(V4, 80, 'tcp', 20 + 20 + 32)), 'pass_local'),
  pass('ICMPv6 parameter problem (type 4) to a VIP: not an error that is steered', icmpErr6(V6, 4, 0, 6, reply6(V6, 80, 'tcp', 40 + 20 + 32)), 'pass_local'),
  pass('ICMP fragmentation needed quoting a VIP port that is no service', icmpErr4(V4, 3, 4, 1400, reply4(V4, 81, 'tcp', 20 + 20 + 32)), 'pass_local'),

  // --- no way to forward
  drop('TUN from an IPv4 VIP to an IPv6 real', tcp4(VMISM4, 80, 'S'), 'drop_encap'),
  drop('TUN from an IPv6 VIP to an IPv4 real', tcp6(VMISM6, 80, 'S'), 'drop_encap'),
  drop('service without reals', tcp4(VNOREAL, 80, 'S'), 'drop_no_real'),

  // --- egress interface
  { description: 'DR to a real behind another interface (lo): XDP_REDIRECT', input: tcp4(VREDIR4, 80, 'S'), ingress: 'other',
    verdict: XDP_REDIRECT, output: dr(tcp4(VREDIR4, 80, 'S'), R.redir4), counter: 'redirect' },
  { description: 'TUN IPv6 TCP to a real behind another interface (lo): XDP_REDIRECT', input: tcp6(VREDIR6, 80, 'S'), ingress: 'other',
    verdict: XDP_REDIRECT, output: tun6(tcp6(VREDIR6, 80, 'S'), R.redir6), counter: 'redirect' },
  { description: 'DR to a real behind the ingress interface itself (lo, the test-run default): XDP_TX', input: tcp4(VREDIR4, 80, 'S'),
    verdict: XDP_TX, output: dr(tcp4(VREDIR4, 80, 'S'), R.redir4), counter: 'tx' },
  { description: 'DR to a real behind the ingress interface (ingress ifindex 1 given): XDP_TX', input: tcp4(VREDIR4, 80, 'S'), ingress: LO_IFINDEX,
    verdict: XDP_TX, output: dr(tcp4(VREDIR4, 80, 'S'), R.redir4), counter: 'tx' },
];
