/**
 * Fixtures for the decapsulation program (bpf/xlb_decap.bpf.c): {description, setup, input,
 * verdict, output, counter}. Inputs come from the independent builder (test/lib/packets.ts):
 * a tunnel packet is built as Ethernet, outer IP header, inner packet; the expected output of a
 * decapsulation is the same Ethernet header (and tag) followed by the same inner layers, built
 * again without the outer header: never by running the program.
 *
 * `counter` is the one counter besides rx that goes up by one; every other stays as it was.
 * PASS and DROP leave the packet unchanged (no `output`).
 */
import {
  eth, ipv4, ipv6, packet, payload, tcp, truncate, udp,
  ETH_P_ARP, ETH_P_8021Q, IPPROTO, type EthSpec, type Ipv4Spec, type Ipv6Ext, type Ipv6Spec, type Layer,
} from '../lib/packets.ts';
import type { DecapCounterName } from '../../src/datapath/xdp/decap.ts';
import { XDP_DROP, XDP_PASS } from '../../src/datapath/bpf/index.ts';

export { XDP_DROP, XDP_PASS };

// ---------------------------------------------------------------- the network

/** the real server's interface: destination of every input frame */
export const REAL_MAC = '02:00:00:00:01:11';
/** the load balancer (or the last router) */
export const LB_MAC = '02:00:00:00:00:fe';

/** outer sources: the load balancer's tunnel source, in and out of the allowed prefixes */
export const TUN4 = '198.18.255.3';
export const TUN6 = 'fd00:ff::3';
export const OTHER4 = '198.18.254.1';
export const OTHER6 = 'fd00:fe::1';
export const REAL4 = '198.18.1.11';
export const REAL6 = 'fd00:18:1::11';
export const CLIENT4 = '198.18.2.1';
export const CLIENT6 = 'fd00:18:2::1';
export const VIP4 = '198.18.0.11';
export const VIP6 = 'fd00:18::11';

/** allowed outer sources per setup; 'open' has none (every source accepted) */
export const SETUPS = {
  open: [],
  filtered: ['198.18.255.0/24', 'fd00:ff::/64'],
  only4: ['198.18.255.0/24'],
  hosts: [`${TUN4}/32`, `${TUN6}/128`],
} satisfies Record<string, string[]>;
export type SetupName = keyof typeof SETUPS;

export interface Fixture {
  description: string;
  /** default 'open' */
  setup?: SetupName;
  input: Buffer;
  verdict: number;
  /** the expected packet; omitted: the input, unchanged */
  output?: Buffer;
  counter: DecapCounterName;
}

// ---------------------------------------------------------------- builders

const E = (o: Partial<EthSpec> = {}): Layer => eth({ dst: REAL_MAC, src: LB_MAC, ...o });
const outer4 = (o: Partial<Ipv4Spec> = {}): Layer => ipv4({ src: TUN4, dst: REAL4, ...o });
const outer6 = (o: Partial<Ipv6Spec> = {}): Layer => ipv6({ src: TUN6, dst: REAL6, ...o });
const inner4 = (o: Partial<Ipv4Spec> = {}): Layer => ipv4({ src: CLIENT4, dst: VIP4, df: true, tos: 0x10, ...o });
const inner6 = (o: Partial<Ipv6Spec> = {}): Layer => ipv6({ src: CLIENT6, dst: VIP6, trafficClass: 0x28, flowLabel: 0x12345, ...o });

/** inner packets: IP, transport, payload */
const TCP4: (Layer | Buffer)[] = [inner4(), tcp({ sport: 40000, dport: 80, flags: 'PA', seq: 1000, ack: 2000 }), payload(64)];
const UDP4: (Layer | Buffer)[] = [inner4(), udp({ sport: 40001, dport: 53 }), payload(33)];
const TCP6: (Layer | Buffer)[] = [inner6(), tcp({ sport: 40002, dport: 80, flags: 'S' }), payload(10)];
const UDP6: (Layer | Buffer)[] = [inner6(), udp({ sport: 40003, dport: 53 }), payload(100)];

/** RFC 2473 Tunnel Encapsulation Limit (option 4, length 1, limit 4) and a PadN: a 6-byte option area */
const ENCAP_LIMIT = Buffer.from([4, 1, 4, 1, 1, 0]);
/** IPv4 options: Router Alert (RFC 2113) then NOPs, 40 bytes: the largest header, ihl 15 */
const OPTIONS_40 = Buffer.concat([Buffer.from([0x94, 4, 0, 0]), Buffer.alloc(36, 1)]);

/** A decapsulated packet: input = L2 + outer + inner, output = the same L2 + inner. */
function decap(description: string, l2: Partial<EthSpec>, outer: Layer, inner: (Layer | Buffer)[], counter: DecapCounterName,
  setup?: SetupName): Fixture {
  return {
    description, setup, verdict: XDP_PASS, counter,
    input: packet(E(l2), outer, ...inner),
    output: packet(E(l2), ...inner),
  };
}

const unchanged = (description: string, input: Buffer, verdict: number, counter: DecapCounterName, setup?: SetupName): Fixture =>
  ({ description, setup, input, verdict, counter });

const pass = (d: string, input: Buffer, setup?: SetupName) => unchanged(d, input, XDP_PASS, 'pass', setup);
const fragment = (d: string, input: Buffer) => unchanged(d, input, XDP_PASS, 'pass_fragment');
const truncated = (d: string, input: Buffer) => unchanged(d, input, XDP_DROP, 'drop_truncated');
const malformed = (d: string, input: Buffer, setup?: SetupName) => unchanged(d, input, XDP_DROP, 'drop_malformed', setup);
const badSource = (d: string, input: Buffer, setup: SetupName) => unchanged(d, input, XDP_DROP, 'drop_source', setup);
const badEcn = (d: string, input: Buffer) => unchanged(d, input, XDP_DROP, 'drop_ecn');

/**
 * ECN (RFC 6040, normal mode): an outer CE marks an ECN-capable inner packet CE. The expected
 * inner header is built with the CE codepoint (the builder computes its checksum afresh).
 * `inner` gives the inner header's fields before, `ce` the same header marked.
 */
function ecnMarked(description: string, outer: Layer, inner: Layer, ce: Layer, l2: Partial<EthSpec> = {}): Fixture {
  const rest = [udp({ sport: 5000, dport: 53 }), payload(12)];
  return {
    description, verdict: XDP_PASS, counter: outer.kind === 'ipv4' ? 'decap4' : 'decap6',
    input: packet(E(l2), outer, inner, ...rest),
    output: packet(E(l2), ce, ...rest),
  };
}
const ECT0 = 0x02;
const ECT1 = 0x01;
const CE = 0x03;
/** inner IPv4 headers whose checksums differ, so that the incremental update meets carries */
const CHECKSUM_IDS = [0, 1, 0x1234, 0x7fff, 0xbeef, 0xfffe, 0xffff];

const ext = (...e: Ipv6Ext[]) => ({ extHeaders: e });

/** A tunnel packet with its Ethernet padding (frames are padded to 60 bytes): the outer length is shorter than the frame. */
function padded(): Fixture {
  const inner: (Layer | Buffer)[] = [inner4(), udp({ sport: 7, dport: 7 })];
  const pad = Buffer.alloc(6, 0);
  return {
    description: '4in4 UDP without payload and 6 bytes of Ethernet padding: decapsulated, the padding kept',
    verdict: XDP_PASS, counter: 'decap4',
    input: Buffer.concat([packet(E(), outer4(), ...inner), pad]),
    output: Buffer.concat([packet(E(), ...inner), pad]),
  };
}

// ---------------------------------------------------------------- the fixtures

export const FIXTURES: readonly Fixture[] = [
  // decapsulated
  decap('4in4 TCP', {}, outer4(), TCP4, 'decap4'),
  decap('4in4 UDP', {}, outer4(), UDP4, 'decap4'),
  decap('4in4 with the outer DF and tos of the forwarder', {}, outer4({ df: true, tos: 0x10, ttl: 37 }), TCP4, 'decap4'),
  decap('6in6 TCP', {}, outer6(), TCP6, 'decap6'),
  decap('6in6 UDP', {}, outer6({ trafficClass: 0x28, flowLabel: 0x12345, hopLimit: 37 }), UDP6, 'decap6'),
  decap('6in4: IPv6 inside IPv4 (protocol 41); the EtherType becomes IPv6', {}, outer4(), UDP6, 'decap4'),
  decap('4in6: IPv4 inside IPv6 (next header 4); the EtherType becomes IPv4', {}, outer6(), TCP4, 'decap6'),
  decap('4in4 with an 802.1Q tag: the tag (VLAN 10, priority 3) is kept', { vlan: 10, pcp: 3 }, outer4(), TCP4, 'decap4'),
  decap('6in6 with an 802.1Q tag', { vlan: 4094 }, outer6(), UDP6, 'decap6'),
  decap('6in4 with an 802.1Q tag: the tag is kept, its EtherType becomes IPv6', { vlan: 7 }, outer4(), TCP6, 'decap4'),
  decap('4in6 with an 802.1Q tag', { vlan: 1 }, outer6(), UDP4, 'decap6'),
  decap('4in4, outer IPv4 options (4 bytes, ihl 6) removed with the header', {}, outer4({ options: Buffer.from([0x94, 4, 0, 0]) }), TCP4, 'decap4'),
  decap('4in4, outer IPv4 options (40 bytes, ihl 15) removed with the header', {}, outer4({ options: OPTIONS_40 }), UDP4, 'decap4'),
  decap('4in4 with VLAN and outer options', { vlan: 20 }, outer4({ options: OPTIONS_40 }), TCP4, 'decap4'),
  decap('4in4, inner IPv4 options are the inner packet\'s: kept', {}, outer4(),
    [inner4({ options: OPTIONS_40 }), udp({ sport: 1, dport: 2 }), payload(8)], 'decap4'),
  decap('4in4, the inner packet is a fragment (only outer fragments matter)', {}, outer4(),
    [inner4({ df: false, mf: true, id: 77 }), udp({ sport: 1, dport: 2 }), payload(16)], 'decap4'),
  decap('6in6, outer destination options (RFC 2473 tunnel encapsulation limit) removed', {},
    outer6(ext({ type: 'dstOpts', options: ENCAP_LIMIT })), TCP6, 'decap6'),
  decap('6in6, outer hop-by-hop, routing and destination options removed', {},
    outer6(ext({ type: 'hopByHop' }, { type: 'routing' }, { type: 'dstOpts', options: ENCAP_LIMIT })), UDP6, 'decap6'),
  decap('4in6 with outer extension headers and VLAN', { vlan: 99 }, outer6(ext({ type: 'dstOpts', options: ENCAP_LIMIT })), UDP4, 'decap6'),
  padded(),

  // not tunnel packets: passed untouched, whatever they look like
  pass('IPv4 TCP', packet(E(), ...TCP4)),
  pass('IPv6 UDP', packet(E(), ...UDP6)),
  pass('ARP', packet(E({ type: ETH_P_ARP }), payload(28))),
  pass('802.1Q-tagged IPv4 UDP', packet(E({ vlan: 5 }), ...UDP4)),
  pass('a second 802.1Q tag (QinQ) is not followed', packet(E({ vlan: 5, type: ETH_P_8021Q }), payload(40))),
  pass('a frame ending inside its 802.1Q tag', truncate(packet(E({ vlan: 5 }), ...UDP4), 16)),
  pass('IPv4 GRE (protocol 47)', packet(E(), ipv4({ src: TUN4, dst: REAL4, proto: IPPROTO.GRE }), payload(24))),
  pass('IPv4 shorter than its 20-byte header, protocol 4: cannot be identified', truncate(packet(E(), outer4(), ...TCP4), 14 + 19)),
  pass('IPv4 with ihl 3, protocol TCP: not ours to check', packet(E(), ipv4({ src: CLIENT4, dst: REAL4, ihl: 3 }), tcp({ sport: 1, dport: 2 }))),
  pass('an IPv4 UDP fragment (not a tunnel fragment)', packet(E(), inner4({ df: false, mf: true, id: 5 }), udp({ sport: 1, dport: 2 }), payload(40))),
  pass('IPv6 shorter than its 40-byte header', truncate(packet(E(), outer6(), ...TCP6), 14 + 39)),
  pass('IPv6 whose extension header ends beyond the frame: the protocol is unknown',
    truncate(packet(E(), outer6(ext({ type: 'dstOpts', options: Buffer.concat([ENCAP_LIMIT, Buffer.from([1, 6, 0, 0, 0, 0, 0, 0])]) })), ...TCP6), 14 + 40 + 8)),
  pass('IPv6 with 5 extension headers before next header 41: the limit (4) is reached first',
    packet(E(), outer6(ext({ type: 'dstOpts' }, { type: 'dstOpts' }, { type: 'dstOpts' }, { type: 'dstOpts' }, { type: 'dstOpts' })), ...TCP6)),
  pass('an IPv6 UDP fragment (not a tunnel fragment)', packet(E(), inner6(ext({ type: 'fragment', offset: 0, more: true, id: 3 })), udp({ sport: 1, dport: 2 }), payload(40))),

  // fragments of tunnel packets: passed, never decapsulated
  fragment('4in4, the outer header\'s first fragment (MF)', packet(E(), outer4({ mf: true, id: 7 }), ...TCP4)),
  fragment('4in4, a later fragment (offset 100, protocol 4)', packet(E(), outer4({ proto: IPPROTO.IPIP, fragOffset: 100, id: 7 }), payload(40))),
  fragment('6in6, outer fragment header, first fragment', packet(E(), outer6(ext({ type: 'fragment', offset: 0, more: true, id: 9 })), ...TCP6)),
  fragment('6in6, a later fragment (next header 41 in the fragment header)',
    packet(E(), outer6({ nextHeader: IPPROTO.IPV6, ...ext({ type: 'fragment', offset: 100, more: false, id: 9 }) }), payload(40))),
  fragment('4in6, a fragment after destination options', packet(E(), outer6(ext({ type: 'dstOpts' }, { type: 'fragment', offset: 0, more: true, id: 1 })), ...UDP4)),

  // truncated tunnel packets
  truncated('4in4, outer options end beyond the frame (ihl 15, 24 bytes)', truncate(packet(E(), outer4({ options: OPTIONS_40 }), ...TCP4), 14 + 24)),
  truncated('4in4, the frame is 10 bytes shorter than the outer total length', truncate(packet(E(), outer4(), ...TCP4), 14 + 20 + 20 + 20 + 54)),
  truncated('4in4, outer total length 1000 in a short frame', packet(E(), outer4({ totalLength: 1000 }), ...UDP4)),
  truncated('4in4, inner header 10 bytes long (outer length consistent)', packet(E(), outer4({ proto: IPPROTO.IPIP }), payload(10))),
  truncated('4in4, inner options end beyond the frame', packet(E(), outer4({ proto: IPPROTO.IPIP }), ipv4({ src: CLIENT4, dst: VIP4, proto: 17, ihl: 15 }))),
  truncated('6in6, outer payload length beyond the frame', packet(E(), outer6({ payloadLength: 2000 }), ...UDP6)),
  truncated('6in6, the frame cut inside the inner payload', truncate(packet(E(), outer6(), ...UDP6), 14 + 40 + 40 + 8 + 50)),
  truncated('6in6, inner header 20 bytes long (outer length consistent)', packet(E(), outer6({ nextHeader: IPPROTO.IPV6 }), payload(20))),
  truncated('6in4, inner IPv6 header 30 bytes long', packet(E(), outer4({ proto: IPPROTO.IPV6 }), payload(30))),

  // malformed tunnel packets
  malformed('4in4, outer ihl 4', packet(E(), outer4({ ihl: 4 }), ...TCP4)),
  malformed('4in4, outer version 5', packet(E(), outer4({ version: 5 }), ...TCP4)),
  malformed('4in4, outer total length 16, less than its header', packet(E(), outer4({ totalLength: 16 }), ...TCP4)),
  malformed('4in4, outer total length 40, less than its options (ihl 15)', packet(E(), outer4({ options: OPTIONS_40, totalLength: 40 }), ...TCP4)),
  malformed('protocol 4 but the inner packet is IPv6', packet(E(), outer4({ proto: IPPROTO.IPIP }), ...UDP6)),
  malformed('4in4, inner ihl 4', packet(E(), outer4(), inner4({ ihl: 4 }), udp({ sport: 1, dport: 2 }))),
  malformed('4in4, inner total length beyond the outer payload', packet(E(), outer4(), inner4({ totalLength: 200 }), udp({ sport: 1, dport: 2 }), payload(20))),
  malformed('4in4, inner total length 12, less than its header', packet(E(), outer4(), inner4({ totalLength: 12 }), udp({ sport: 1, dport: 2 }))),
  malformed('6in6, outer version 4 in an IPv6 frame', packet(E(), outer6({ version: 4 }), ...UDP6)),
  malformed('6in6, outer extension headers longer than the payload length', packet(E(), outer6({ payloadLength: 4, ...ext({ type: 'dstOpts' }) }), ...UDP6)),
  malformed('6in6, outer payload length 0 (a jumbogram is not expected here)', packet(E(), outer6({ payloadLength: 0 }), ...UDP6)),
  malformed('next header 41 but the inner packet is IPv4', packet(E(), outer6({ nextHeader: IPPROTO.IPV6 }), ...UDP4)),
  malformed('6in6, inner payload length beyond the outer payload', packet(E(), outer6(), inner6({ payloadLength: 500 }), udp({ sport: 1, dport: 2 }))),
  malformed('6in4, inner version 5', packet(E(), outer4(), inner6({ version: 5 }), udp({ sport: 1, dport: 2 }))),

  // ECN (RFC 6040)
  ...CHECKSUM_IDS.flatMap((id) => [ECT0, ECT1].map((ect) => ecnMarked(
    `ECN: outer CE, inner IPv4 ${ect === ECT0 ? 'ECT(0)' : 'ECT(1)'} (id 0x${id.toString(16)}): marked CE, checksum updated`,
    outer4({ tos: 0xb8 | CE }), inner4({ id, tos: 0xb8 | ect }), inner4({ id, tos: 0xb8 | CE }),
  ))),
  ecnMarked('ECN: outer CE, inner IPv4 with options, ECT(0): marked CE', outer4({ tos: CE }),
    inner4({ tos: ECT0, options: OPTIONS_40, ttl: 3 }), inner4({ tos: CE, options: OPTIONS_40, ttl: 3 })),
  ecnMarked('ECN: outer CE, inner IPv4 already CE: unchanged', outer4({ tos: CE }), inner4({ tos: 0x10 | CE }), inner4({ tos: 0x10 | CE })),
  ecnMarked('ECN: outer ECT(0), inner IPv4 Not-ECT: unchanged', outer4({ tos: ECT0 }), inner4({ tos: 0x10 }), inner4({ tos: 0x10 })),
  ecnMarked('ECN: outer ECT(1), inner IPv4 ECT(0): unchanged', outer4({ tos: ECT1 }), inner4({ tos: ECT0 }), inner4({ tos: ECT0 })),
  ecnMarked('ECN: 6in6, outer CE, inner ECT(1): marked CE, flow label kept', outer6({ trafficClass: 0x28 | CE }),
    inner6({ trafficClass: 0x28 | ECT1 }), inner6({ trafficClass: 0x28 | CE })),
  ecnMarked('ECN: 6in6, outer CE, inner ECT(0), VLAN', outer6({ trafficClass: CE }),
    inner6({ trafficClass: 0xfc | ECT0, flowLabel: 0xfffff }), inner6({ trafficClass: 0xfc | CE, flowLabel: 0xfffff }), { vlan: 8 }),
  ecnMarked('ECN: 4in6, outer CE, inner IPv4 ECT(0): marked CE', outer6({ trafficClass: CE }), inner4({ tos: ECT0 }), inner4({ tos: CE })),
  ecnMarked('ECN: 6in4, outer CE, inner IPv6 ECT(1): marked CE', outer4({ tos: CE }), inner6({ trafficClass: ECT1 }), inner6({ trafficClass: CE })),
  ecnMarked('ECN: 6in6, outer ECT(0), inner Not-ECT: unchanged', outer6({ trafficClass: ECT0 }), inner6(), inner6()),
  badEcn('ECN: outer CE, inner IPv4 Not-ECT: dropped', packet(E(), outer4({ tos: CE }), ...TCP4)),
  badEcn('ECN: 6in6, outer CE, inner Not-ECT: dropped', packet(E(), outer6({ trafficClass: CE }), ...UDP6)),
  badEcn('ECN: 4in6, outer CE, inner Not-ECT: dropped', packet(E(), outer6({ trafficClass: 0x20 | CE }), ...UDP4)),

  // allowed sources
  decap('filtered: 4in4 from an allowed source', {}, outer4(), TCP4, 'decap4', 'filtered'),
  decap('filtered: 6in6 from an allowed source', {}, outer6(), UDP6, 'decap6', 'filtered'),
  decap('filtered: 4in6 from an allowed IPv6 source', {}, outer6(), TCP4, 'decap6', 'filtered'),
  decap('filtered: 6in4 from an allowed IPv4 source, VLAN', { vlan: 3 }, outer4(), UDP6, 'decap4', 'filtered'),
  badSource('filtered: 4in4 from a source outside the prefixes', packet(E(), outer4({ src: OTHER4 }), ...TCP4), 'filtered'),
  badSource('filtered: 6in6 from a source outside the prefixes', packet(E(), outer6({ src: OTHER6 }), ...UDP6), 'filtered'),
  badSource('filtered: 6in4 from a source outside the prefixes', packet(E(), outer4({ src: OTHER4 }), ...UDP6), 'filtered'),
  badSource('filtered: a tunnel fragment from a source not allowed is dropped, not passed', packet(E(), outer4({ src: OTHER4, mf: true }), ...TCP4), 'filtered'),
  malformed('filtered: a malformed outer header is malformed before its source is looked at', packet(E(), outer4({ src: OTHER4, ihl: 4 }), ...TCP4), 'filtered'),
  pass('filtered: traffic that is not tunnelled passes from any source', packet(E(), ipv4({ src: OTHER4, dst: REAL4 }), udp({ sport: 1, dport: 2 })), 'filtered'),
  decap('only IPv4 prefixes: 4in4 from one of them', {}, outer4(), UDP4, 'decap4', 'only4'),
  badSource('only IPv4 prefixes: every IPv6 tunnel packet is dropped', packet(E(), outer6(), ...UDP6), 'only4'),
  decap('host prefixes: the /32 itself', {}, outer4(), UDP4, 'decap4', 'hosts'),
  decap('host prefixes: the /128 itself', {}, outer6(), UDP6, 'decap6', 'hosts'),
  badSource('host prefixes: the next IPv4 address', packet(E(), outer4({ src: '198.18.255.4' }), ...UDP4), 'hosts'),
  badSource('host prefixes: the next IPv6 address', packet(E(), outer6({ src: 'fd00:ff::4' }), ...UDP6), 'hosts'),
];
