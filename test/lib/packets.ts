/**
 * An independent packet builder for tests, written from the RFCs (791, 8200, 793, 768, 792, 4443,
 * 1071, 2003, 2473) and never from src/: tests must not check a codec against itself.
 *
 * Building: a packet is a list of layers, outermost first, composed by `packet(...)`:
 *
 *   packet(eth({ dst, src, vlan: 10 }), ipv4({ src, dst, df: true }), tcp({ sport, dport, flags: 'S' }), payload)
 *
 * Each layer is encoded from the innermost out, so lengths (IPv4 total length, IPv6 payload
 * length, UDP length) and checksums (IPv4 header; TCP, UDP and ICMPv6 with their pseudo-header;
 * ICMPv4) are always computed from the bytes that follow. Protocol numbers and the Ethernet type
 * are inferred from the next layer unless given. Every computed field has an override
 * (`ihl`, `version`, `totalLength`, `checksum`, `dataOffset`, ...) for building malformed packets;
 * `truncate` cuts a finished packet.
 *
 * Expected outputs are derived from an input with `withMacs`, `encap4` and `encap6`, each written
 * from the forwarder's spec (see their comments).
 *
 * Assertions: `assertFrameEqual` fails with both packets decoded on one line and hex-dumped side
 * by side, the first differing offset named; `parseFrame` decodes what the behaviour tests need
 * (MACs, outer and inner addresses, ports). The decoder never throws on short input.
 */
import assert from 'node:assert/strict';

// ---------------------------------------------------------------- addresses

export function ipv4Bytes(text: string): Buffer {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) {
    throw new Error(`'${text}' is not an IPv4 address`);
  }
  return Buffer.from(parts.map(Number));
}

export function ipv6Bytes(text: string): Buffer {
  const bad = (): never => { throw new Error(`'${text}' is not an IPv6 address`); };
  const halves = text.split('::');
  if (halves.length > 2) bad();
  const groups = (s: string | undefined): string[] => (s ? s.split(':') : []);
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  const fill = 8 - head.length - tail.length;
  if (halves.length === 1 ? fill !== 0 : fill < 1) bad();
  const all = [...head, ...Array<string>(halves.length === 2 ? fill : 0).fill('0'), ...tail];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) bad();
    out.writeUInt16BE(parseInt(g, 16), i * 2);
  });
  return out;
}

/** 4 bytes for dotted IPv4, 16 for IPv6. */
export function ipBytes(text: string): Buffer {
  return text.includes(':') ? ipv6Bytes(text) : ipv4Bytes(text);
}

export function macBytes(text: string): Buffer {
  const parts = text.split(':');
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) throw new Error(`'${text}' is not a MAC address`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export function formatMac(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}

/** IPv4 dotted quad for 4 bytes; IPv6 with the longest zero run compressed (RFC 5952) for 16. */
export function formatIp(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((b[i] ?? 0) << 8) | (b[i + 1] ?? 0));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j === i ? i + 1 : j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

// ---------------------------------------------------------------- checksums (RFC 1071)

/** The 16-bit one's complement sum of the bytes, taken as big-endian 16-bit words; an odd last byte is padded with zero. */
export function onesComplementSum(data: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < data.length; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (data.length % 2 === 1) sum += data[data.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The Internet checksum of the concatenated parts: the complement of their one's complement sum. */
export function internetChecksum(...parts: Uint8Array[]): number {
  return ~onesComplementSum(Buffer.concat(parts)) & 0xffff;
}

/**
 * Pseudo-header for upper-layer checksums: RFC 793/768 (IPv4: src, dst, zero, protocol, 16-bit
 * length) and RFC 8200 section 8.1 (IPv6: src, dst, 32-bit length, three zero bytes, next header).
 */
export function pseudoHeader(src: Buffer, dst: Buffer, proto: number, length: number): Buffer {
  if (src.length === 4) {
    const b = Buffer.alloc(12);
    src.copy(b, 0); dst.copy(b, 4);
    b[9] = proto;
    b.writeUInt16BE(length, 10);
    return b;
  }
  const b = Buffer.alloc(40);
  src.copy(b, 0); dst.copy(b, 16);
  b.writeUInt32BE(length, 32);
  b[39] = proto;
  return b;
}

/** Checksum of an upper-layer segment (its checksum field zeroed) with the pseudo-header of src/dst. */
export function transportChecksum(src: string | Buffer, dst: string | Buffer, proto: number, segment: Buffer): number {
  const s = typeof src === 'string' ? ipBytes(src) : src;
  const d = typeof dst === 'string' ? ipBytes(dst) : dst;
  return internetChecksum(pseudoHeader(s, d, proto, segment.length), segment);
}

// ---------------------------------------------------------------- layers

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_IPV6 = 0x86dd;
export const IPPROTO = { HOPOPTS: 0, ICMP: 1, IPIP: 4, TCP: 6, UDP: 17, IPV6: 41, ROUTING: 43, FRAGMENT: 44, GRE: 47, ICMPV6: 58, NONE: 59, DSTOPTS: 60 } as const;

export interface EthSpec {
  dst: string;
  src: string;
  /** one 802.1Q tag with this VLAN id */
  vlan?: number;
  /** priority code point of the tag */
  pcp?: number;
  /** EtherType; by default from the next layer (IPv4, IPv6) */
  type?: number;
}

export interface Ipv4Spec {
  src: string;
  dst: string;
  /** by default from the next layer */
  proto?: number;
  ttl?: number;          // 64
  tos?: number;          // 0
  id?: number;           // 0
  df?: boolean;
  mf?: boolean;
  /** fragment offset in 8-octet units, as carried in the header */
  fragOffset?: number;
  /** options, padded by the caller to a multiple of 4 bytes */
  options?: Buffer;
  // overrides, for malformed packets
  version?: number;
  ihl?: number;
  totalLength?: number;
  checksum?: number;
}

export type Ipv6Ext =
  | { type: 'hopByHop'; options?: Buffer }
  | { type: 'dstOpts'; options?: Buffer }
  | { type: 'routing'; routingType?: number; segmentsLeft?: number; data?: Buffer }
  /** offset in 8-octet units */
  | { type: 'fragment'; offset: number; more: boolean; id: number };

export interface Ipv6Spec {
  src: string;
  dst: string;
  /** upper-layer protocol after the extension headers; by default from the next layer */
  nextHeader?: number;
  hopLimit?: number;     // 64
  trafficClass?: number; // 0
  flowLabel?: number;    // 0
  extHeaders?: Ipv6Ext[];
  // overrides
  version?: number;
  payloadLength?: number;
}

export type TcpFlags = string; // letters from 'FSRPAUEC', e.g. 'S', 'SA', 'A', 'PA', 'FA', 'R', or ''

export interface TcpSpec {
  sport: number;
  dport: number;
  flags?: TcpFlags;      // 'A'
  seq?: number;
  ack?: number;
  window?: number;       // 65535
  urgent?: number;
  /** options, padded by the caller to a multiple of 4 bytes */
  options?: Buffer;
  // overrides
  dataOffset?: number;
  checksum?: number;
}

export interface UdpSpec {
  sport: number;
  dport: number;
  // overrides
  length?: number;
  checksum?: number;
}

export interface IcmpSpec {
  type: number;
  code: number;
  /** the second 32-bit word: echo id<<16|seq, next-hop MTU (ICMPv4 3/4), MTU (ICMPv6 2), NA flags, ... */
  rest?: number;
  // override
  checksum?: number;
}

export type Layer =
  | { kind: 'eth'; spec: EthSpec }
  | { kind: 'ipv4'; spec: Ipv4Spec }
  | { kind: 'ipv6'; spec: Ipv6Spec }
  | { kind: 'tcp'; spec: TcpSpec }
  | { kind: 'udp'; spec: UdpSpec }
  | { kind: 'icmpv4'; spec: IcmpSpec }
  | { kind: 'icmpv6'; spec: IcmpSpec };

export const eth = (spec: EthSpec): Layer => ({ kind: 'eth', spec });
export const ipv4 = (spec: Ipv4Spec): Layer => ({ kind: 'ipv4', spec });
export const ipv6 = (spec: Ipv6Spec): Layer => ({ kind: 'ipv6', spec });
export const tcp = (spec: TcpSpec): Layer => ({ kind: 'tcp', spec });
export const udp = (spec: UdpSpec): Layer => ({ kind: 'udp', spec });
export const icmpv4 = (spec: IcmpSpec): Layer => ({ kind: 'icmpv4', spec });
export const icmpv6 = (spec: IcmpSpec): Layer => ({ kind: 'icmpv6', spec });

/** Bytes of a given length with a recognisable pattern (0x00, 0x01, ... wrapping). */
export function payload(length: number, start = 0): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = (start + i) & 0xff;
  return b;
}

/** Compose layers (outermost first; a Buffer is raw bytes) into one packet. */
export function packet(...layers: (Layer | Buffer)[]): Buffer {
  let tail: Buffer = Buffer.alloc(0);
  for (let i = layers.length - 1; i >= 0; i--) {
    const l = layers[i]!;
    if (Buffer.isBuffer(l)) { tail = Buffer.concat([l, tail]); continue; }
    const next = layers[i + 1];
    switch (l.kind) {
      case 'eth': tail = encodeEth(l.spec, next, tail); break;
      case 'ipv4': tail = encodeIpv4(l.spec, next, tail); break;
      case 'ipv6': tail = encodeIpv6(l.spec, next, tail); break;
      case 'tcp': tail = encodeTcp(l.spec, enclosingIp(layers, i), tail); break;
      case 'udp': tail = encodeUdp(l.spec, enclosingIp(layers, i), tail); break;
      case 'icmpv4': tail = encodeIcmp(l.spec, null, tail); break;
      case 'icmpv6': tail = encodeIcmp(l.spec, enclosingIp(layers, i), tail); break;
    }
  }
  return tail;
}

/** The first `length` bytes of a packet, as a new buffer. */
export function truncate(frame: Buffer, length: number): Buffer {
  if (length > frame.length) throw new Error(`cannot truncate a ${frame.length}-byte packet to ${length} bytes`);
  return Buffer.from(frame.subarray(0, length));
}

function protoOf(next: Layer | Buffer | undefined, what: string): number {
  if (next === undefined || Buffer.isBuffer(next)) throw new Error(`${what}: give the protocol explicitly (the next layer is raw bytes)`);
  switch (next.kind) {
    case 'ipv4': return IPPROTO.IPIP;
    case 'ipv6': return IPPROTO.IPV6;
    case 'tcp': return IPPROTO.TCP;
    case 'udp': return IPPROTO.UDP;
    case 'icmpv4': return IPPROTO.ICMP;
    case 'icmpv6': return IPPROTO.ICMPV6;
    case 'eth': throw new Error(`${what}: Ethernet cannot follow an IP header here`);
  }
}

/** src/dst of the nearest IP layer before index i: the addresses of an upper-layer pseudo-header. */
function enclosingIp(layers: (Layer | Buffer)[], i: number): { src: Buffer; dst: Buffer } {
  for (let j = i - 1; j >= 0; j--) {
    const l = layers[j]!;
    if (!Buffer.isBuffer(l) && (l.kind === 'ipv4' || l.kind === 'ipv6')) {
      return { src: ipBytes(l.spec.src), dst: ipBytes(l.spec.dst) };
    }
  }
  throw new Error('a TCP, UDP or ICMPv6 layer needs an IP layer before it (for the pseudo-header)');
}

function encodeEth(s: EthSpec, next: Layer | Buffer | undefined, rest: Buffer): Buffer {
  let type = s.type;
  if (type === undefined) {
    if (next && !Buffer.isBuffer(next) && next.kind === 'ipv4') type = ETH_P_IP;
    else if (next && !Buffer.isBuffer(next) && next.kind === 'ipv6') type = ETH_P_IPV6;
    else throw new Error('eth: give the EtherType (type) when the next layer is not IPv4 or IPv6');
  }
  const tag = s.vlan !== undefined;
  const h = Buffer.alloc(tag ? 18 : 14);
  macBytes(s.dst).copy(h, 0);
  macBytes(s.src).copy(h, 6);
  if (tag) {
    h.writeUInt16BE(ETH_P_8021Q, 12);
    h.writeUInt16BE((((s.pcp ?? 0) & 7) << 13) | (s.vlan! & 0xfff), 14);
    h.writeUInt16BE(type, 16);
  } else {
    h.writeUInt16BE(type, 12);
  }
  return Buffer.concat([h, rest]);
}

function encodeIpv4(s: Ipv4Spec, next: Layer | Buffer | undefined, rest: Buffer): Buffer {
  const options = s.options ?? Buffer.alloc(0);
  if (options.length % 4 !== 0 || options.length > 40) throw new Error('ipv4: options must be padded to a multiple of 4 bytes, at most 40');
  const hlen = 20 + options.length;
  const h = Buffer.alloc(hlen);
  h[0] = ((s.version ?? 4) << 4) | ((s.ihl ?? hlen / 4) & 0xf);
  h[1] = s.tos ?? 0;
  h.writeUInt16BE(s.totalLength ?? hlen + rest.length, 2);
  h.writeUInt16BE(s.id ?? 0, 4);
  h.writeUInt16BE((s.df ? 0x4000 : 0) | (s.mf ? 0x2000 : 0) | ((s.fragOffset ?? 0) & 0x1fff), 6);
  h[8] = s.ttl ?? 64;
  h[9] = s.proto ?? protoOf(next, 'ipv4');
  ipv4Bytes(s.src).copy(h, 12);
  ipv4Bytes(s.dst).copy(h, 16);
  options.copy(h, 20);
  h.writeUInt16BE(s.checksum ?? internetChecksum(h), 10);
  return Buffer.concat([h, rest]);
}

const EXT_NUMBER = { hopByHop: IPPROTO.HOPOPTS, routing: IPPROTO.ROUTING, fragment: IPPROTO.FRAGMENT, dstOpts: IPPROTO.DSTOPTS } as const;

function encodeExt(e: Ipv6Ext, nextHeader: number): Buffer {
  switch (e.type) {
    case 'hopByHop':
    case 'dstOpts': {
      // default: one PadN option filling the header to 8 bytes (RFC 8200 section 4.2)
      const opts = e.options ?? Buffer.from([1, 4, 0, 0, 0, 0]);
      if ((2 + opts.length) % 8 !== 0) throw new Error(`ipv6 ${e.type}: options must make the header a multiple of 8 bytes`);
      return Buffer.concat([Buffer.from([nextHeader, (2 + opts.length) / 8 - 1]), opts]);
    }
    case 'routing': {
      const data = e.data ?? Buffer.alloc(4);
      if ((4 + data.length) % 8 !== 0) throw new Error('ipv6 routing: data must make the header a multiple of 8 bytes');
      return Buffer.concat([Buffer.from([nextHeader, (4 + data.length) / 8 - 1, e.routingType ?? 253, e.segmentsLeft ?? 0]), data]);
    }
    case 'fragment': {
      const b = Buffer.alloc(8);
      b[0] = nextHeader;
      b.writeUInt16BE(((e.offset & 0x1fff) << 3) | (e.more ? 1 : 0), 2);
      b.writeUInt32BE(e.id >>> 0, 4);
      return b;
    }
  }
}

function encodeIpv6(s: Ipv6Spec, next: Layer | Buffer | undefined, rest: Buffer): Buffer {
  const exts = s.extHeaders ?? [];
  const upper = s.nextHeader ?? protoOf(next, 'ipv6');
  const encoded: Buffer[] = [];
  for (let i = exts.length - 1; i >= 0; i--) {
    const following = exts[i + 1];
    encoded.unshift(encodeExt(exts[i]!, following ? EXT_NUMBER[following.type] : upper));
  }
  const extBytes = Buffer.concat(encoded);
  const h = Buffer.alloc(40);
  h.writeUInt32BE((((s.version ?? 6) << 28) | ((s.trafficClass ?? 0) << 20) | ((s.flowLabel ?? 0) & 0xfffff)) >>> 0, 0);
  h.writeUInt16BE(s.payloadLength ?? extBytes.length + rest.length, 4);
  h[6] = exts[0] ? EXT_NUMBER[exts[0].type] : upper;
  h[7] = s.hopLimit ?? 64;
  ipv6Bytes(s.src).copy(h, 8);
  ipv6Bytes(s.dst).copy(h, 24);
  return Buffer.concat([h, extBytes, rest]);
}

const TCP_FLAG_BITS: Record<string, number> = { F: 0x01, S: 0x02, R: 0x04, P: 0x08, A: 0x10, U: 0x20, E: 0x40, C: 0x80 };

export function tcpFlagBits(flags: TcpFlags): number {
  let bits = 0;
  for (const c of flags) {
    const b = TCP_FLAG_BITS[c];
    if (b === undefined) throw new Error(`tcp: unknown flag '${c}' in '${flags}' (use FSRPAUEC)`);
    bits |= b;
  }
  return bits;
}

function encodeTcp(s: TcpSpec, ip: { src: Buffer; dst: Buffer }, rest: Buffer): Buffer {
  const options = s.options ?? Buffer.alloc(0);
  if (options.length % 4 !== 0 || options.length > 40) throw new Error('tcp: options must be padded to a multiple of 4 bytes, at most 40');
  const h = Buffer.alloc(20 + options.length);
  h.writeUInt16BE(s.sport, 0);
  h.writeUInt16BE(s.dport, 2);
  h.writeUInt32BE((s.seq ?? 0) >>> 0, 4);
  h.writeUInt32BE((s.ack ?? 0) >>> 0, 8);
  h[12] = ((s.dataOffset ?? h.length / 4) & 0xf) << 4;
  h[13] = tcpFlagBits(s.flags ?? 'A');
  h.writeUInt16BE(s.window ?? 65535, 14);
  h.writeUInt16BE(s.urgent ?? 0, 18);
  options.copy(h, 20);
  const segment = Buffer.concat([h, rest]);
  segment.writeUInt16BE(s.checksum ?? internetChecksum(pseudoHeader(ip.src, ip.dst, IPPROTO.TCP, segment.length), segment), 16);
  return segment;
}

function encodeUdp(s: UdpSpec, ip: { src: Buffer; dst: Buffer }, rest: Buffer): Buffer {
  const segment = Buffer.concat([Buffer.alloc(8), rest]);
  segment.writeUInt16BE(s.sport, 0);
  segment.writeUInt16BE(s.dport, 2);
  segment.writeUInt16BE(s.length ?? segment.length, 4);
  // RFC 768: a computed checksum of zero is sent as all ones (zero means "no checksum")
  const sum = internetChecksum(pseudoHeader(ip.src, ip.dst, IPPROTO.UDP, segment.length), segment) || 0xffff;
  segment.writeUInt16BE(s.checksum ?? sum, 6);
  return segment;
}

/** ICMPv4 (no pseudo-header, RFC 792) when ip is null; ICMPv6 (pseudo-header, RFC 4443) otherwise. */
function encodeIcmp(s: IcmpSpec, ip: { src: Buffer; dst: Buffer } | null, rest: Buffer): Buffer {
  const msg = Buffer.concat([Buffer.alloc(8), rest]);
  msg[0] = s.type;
  msg[1] = s.code;
  msg.writeUInt32BE((s.rest ?? 0) >>> 0, 4);
  const sum = ip ? internetChecksum(pseudoHeader(ip.src, ip.dst, IPPROTO.ICMPV6, msg.length), msg) : internetChecksum(msg);
  msg.writeUInt16BE(s.checksum ?? sum, 2);
  return msg;
}

// ---------------------------------------------------------------- expected outputs, from the spec

/** Offset of the IP header: after the Ethernet header and at most one 802.1Q tag. */
export function l3Offset(frame: Buffer): number {
  return frame.length >= 14 && frame.readUInt16BE(12) === ETH_P_8021Q ? 18 : 14;
}

/** The frame with its Ethernet destination and source replaced (DR; the outer MACs of TUN). */
export function withMacs(frame: Buffer, dst: string, src: string): Buffer {
  const out = Buffer.from(frame);
  macBytes(dst).copy(out, 0);
  macBytes(src).copy(out, 6);
  return out;
}

/**
 * IPv4-in-IPv4 (RFC 2003) as the forwarder's spec has it: an outer IPv4 header inserted after the
 * Ethernet/VLAN header (whose EtherType stays IPv4) with version 4, ihl 5, tos = inner tos,
 * total length = inner total length + 20, id 0, DF iff the inner header has DF, the given ttl,
 * protocol 4 and a correct header checksum.
 */
export function encap4(frame: Buffer, o: { outerSrc: string; outerDst: string; ttl: number }): Buffer {
  const off = l3Offset(frame);
  const inner = frame.subarray(off);
  if (inner.length < 20 || inner[0]! >> 4 !== 4) throw new Error('encap4: the frame does not carry an IPv4 packet');
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h[1] = inner[1]!;
  h.writeUInt16BE(inner.readUInt16BE(2) + 20, 2);
  h.writeUInt16BE(0, 4);
  h.writeUInt16BE(inner.readUInt16BE(6) & 0x4000, 6);
  h[8] = o.ttl;
  h[9] = IPPROTO.IPIP;
  ipv4Bytes(o.outerSrc).copy(h, 12);
  ipv4Bytes(o.outerDst).copy(h, 16);
  h.writeUInt16BE(internetChecksum(h), 10);
  return Buffer.concat([frame.subarray(0, off), h, inner]);
}

/**
 * IPv6-in-IPv6 (RFC 2473) as the forwarder's spec has it: an outer IPv6 header inserted after the
 * Ethernet/VLAN header with version 6, the inner traffic class and flow label, payload length =
 * inner payload length + 40, next header 41, the given hop limit.
 */
export function encap6(frame: Buffer, o: { outerSrc: string; outerDst: string; hopLimit: number }): Buffer {
  const off = l3Offset(frame);
  const inner = frame.subarray(off);
  if (inner.length < 40 || inner[0]! >> 4 !== 6) throw new Error('encap6: the frame does not carry an IPv6 packet');
  const h = Buffer.alloc(40);
  inner.copy(h, 0, 0, 4); // version, traffic class, flow label
  h.writeUInt16BE(inner.readUInt16BE(4) + 40, 4);
  h[6] = IPPROTO.IPV6;
  h[7] = o.hopLimit;
  ipv6Bytes(o.outerSrc).copy(h, 8);
  ipv6Bytes(o.outerDst).copy(h, 24);
  return Buffer.concat([frame.subarray(0, off), h, inner]);
}

// ---------------------------------------------------------------- decoding, for assertions

export interface ParsedIp {
  version: 4 | 6;
  src: string;
  dst: string;
  /** upper-layer protocol (after IPv6 extension headers) */
  proto: number;
  ttl: number;
  /** IPv4 tos / IPv6 traffic class */
  tos: number;
  fragment: boolean;
  /** offset of the upper-layer header in the frame */
  l4: number;
  sport?: number;
  dport?: number;
  /** ICMP type/code */
  icmp?: { type: number; code: number };
  tcpFlags?: number;
}

export interface ParsedFrame {
  dst: string;
  src: string;
  vlan?: number;
  ethertype: number;
  ip?: ParsedIp;
  /** the packet inside an IP-in-IP outer header */
  inner?: ParsedIp;
}

function parseIp(b: Buffer, off: number): ParsedIp | undefined {
  const version = b.length > off ? b[off]! >> 4 : 0;
  if (version === 4) {
    if (b.length < off + 20) return undefined;
    const ihl = (b[off]! & 0xf) * 4;
    const frag = b.readUInt16BE(off + 6);
    const ip: ParsedIp = {
      version: 4, src: formatIp(b.subarray(off + 12, off + 16)), dst: formatIp(b.subarray(off + 16, off + 20)),
      proto: b[off + 9]!, ttl: b[off + 8]!, tos: b[off + 1]!, fragment: (frag & 0x3fff) !== 0, l4: off + ihl,
    };
    if ((frag & 0x1fff) === 0) parseL4(b, ip);
    return ip;
  }
  if (version === 6) {
    if (b.length < off + 40) return undefined;
    let proto = b[off + 6]!;
    let l4 = off + 40;
    let fragment = false;
    let firstFragment = true;
    for (let n = 0; n < 8 && [0, 43, 44, 60].includes(proto) && b.length >= l4 + 8; n++) {
      if (proto === 44) {
        fragment = true;
        firstFragment = b.readUInt16BE(l4 + 2) >> 3 === 0;
        proto = b[l4]!;
        l4 += 8;
      } else {
        proto = b[l4]!;
        l4 += (b[l4 + 1]! + 1) * 8;
      }
    }
    const ip: ParsedIp = {
      version: 6, src: formatIp(b.subarray(off + 8, off + 24)), dst: formatIp(b.subarray(off + 24, off + 40)),
      proto, ttl: b[off + 7]!, tos: (b.readUInt16BE(off) >> 4) & 0xff, fragment, l4,
    };
    if (firstFragment) parseL4(b, ip);
    return ip;
  }
  return undefined;
}

function parseL4(b: Buffer, ip: ParsedIp): void {
  if ((ip.proto === IPPROTO.TCP || ip.proto === IPPROTO.UDP) && b.length >= ip.l4 + 4) {
    ip.sport = b.readUInt16BE(ip.l4);
    ip.dport = b.readUInt16BE(ip.l4 + 2);
    if (ip.proto === IPPROTO.TCP && b.length >= ip.l4 + 14) ip.tcpFlags = b[ip.l4 + 13]!;
  } else if ((ip.proto === IPPROTO.ICMP || ip.proto === IPPROTO.ICMPV6) && b.length >= ip.l4 + 2) {
    ip.icmp = { type: b[ip.l4]!, code: b[ip.l4 + 1]! };
  }
}

/** Decode what the assertions need. Never throws: fields it cannot reach are left out. */
export function parseFrame(frame: Buffer): ParsedFrame {
  const out: ParsedFrame = {
    dst: formatMac(frame.subarray(0, 6)), src: formatMac(frame.subarray(6, 12)),
    ethertype: frame.length >= 14 ? frame.readUInt16BE(12) : -1,
  };
  let off = 14;
  if (out.ethertype === ETH_P_8021Q) {
    if (frame.length < 18) return out;
    out.vlan = frame.readUInt16BE(14) & 0xfff;
    out.ethertype = frame.readUInt16BE(16);
    off = 18;
  }
  if (out.ethertype !== ETH_P_IP && out.ethertype !== ETH_P_IPV6) return out;
  out.ip = parseIp(frame, off);
  if (out.ip && !out.ip.fragment && (out.ip.proto === IPPROTO.IPIP || out.ip.proto === IPPROTO.IPV6)) {
    out.inner = parseIp(frame, out.ip.l4);
  }
  return out;
}

function describeIp(ip: ParsedIp): string {
  const name: Record<number, string> = { 1: 'ICMP', 4: 'IPIP', 6: 'TCP', 17: 'UDP', 41: 'IPv6', 58: 'ICMPv6' };
  let s = `IPv${ip.version} ${ip.src} > ${ip.dst} ttl ${ip.ttl} ${name[ip.proto] ?? `proto ${ip.proto}`}`;
  if (ip.fragment) s += ' (fragment)';
  if (ip.sport !== undefined) s += ` ${ip.sport} > ${ip.dport}`;
  if (ip.tcpFlags !== undefined) s += ` [${Object.entries(TCP_FLAG_BITS).filter(([, v]) => ip.tcpFlags! & v).map(([k]) => k).join('')}]`;
  if (ip.icmp) s += ` type ${ip.icmp.type} code ${ip.icmp.code}`;
  return s;
}

/** One line: MACs, VLAN, IP addresses and ports, and the inner packet of a tunnel. */
export function describe(frame: Buffer): string {
  if (frame.length < 14) return `${frame.length}-byte runt`;
  const p = parseFrame(frame);
  let s = `${frame.length}B ${p.src} > ${p.dst}`;
  if (p.vlan !== undefined) s += ` vlan ${p.vlan}`;
  if (p.ip) s += ` ${describeIp(p.ip)}`;
  else s += ` type 0x${p.ethertype.toString(16).padStart(4, '0')}`;
  if (p.inner) s += ` | ${describeIp(p.inner)}`;
  return s;
}

function hexLine(b: Buffer, from: number): string {
  const cells: string[] = [];
  for (let i = from; i < from + 16; i++) cells.push(i < b.length ? b[i]!.toString(16).padStart(2, '0') : '  ');
  return cells.join(' ');
}

/** Both packets side by side, 16 bytes a line; lines that differ are marked with '!'. */
export function hexCompare(actual: Buffer, expected: Buffer): string {
  const lines = ['      actual' + ' '.repeat(39) + '   expected'];
  for (let off = 0; off < Math.max(actual.length, expected.length); off += 16) {
    const a = hexLine(actual, off);
    const e = hexLine(expected, off);
    lines.push(`${a === e ? ' ' : '!'}${off.toString(16).padStart(4, '0')} ${a} | ${e}`);
  }
  return lines.join('\n');
}

export function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** Assert two packets are byte-identical; on mismatch, show where, and both decoded and in hex. */
export function assertFrameEqual(actual: Buffer, expected: Buffer, what = 'packet'): void {
  const at = firstDifference(actual, expected);
  if (at < 0) return;
  const message = [
    `${what}: differs from the expected packet at offset ${at} (0x${at.toString(16)}); ` +
      `actual ${actual.length} bytes, expected ${expected.length} bytes`,
    `  actual:   ${describe(actual)}`,
    `  expected: ${describe(expected)}`,
    hexCompare(actual, expected),
  ].join('\n');
  throw new assert.AssertionError({ message, actual: actual.toString('hex'), expected: expected.toString('hex'), operator: 'assertFrameEqual' });
}
