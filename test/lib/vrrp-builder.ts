/**
 * An independent VRRP message builder and parser for tests, written from RFC 3768 section 5 and
 * RFC 5798 section 5 (checksums from RFC 1071 via test/lib/packets.ts), never from src/: tests
 * must not check the codec against itself.
 *
 *   vrrpMessage({ version: 3, vrid: 7, priority: 100, addresses: ['198.18.0.100'], intervalCs: 100,
 *                 src: '198.18.0.1', dst: '224.0.0.18' })
 *
 * Every field can be overridden to build malformed messages: `versionNibble`, `type`, `count`
 * (the announced count, independent of the address list), `checksum`, `authData` (raw 8 bytes),
 * `extra` (bytes appended), `truncate` (cut to N bytes).
 *
 * `parseVrrp` reads a message back field by field (for round trips of the codec's output), and
 * `vrrpFromFrame` takes an Ethernet frame (captured or built) apart into the VRRP message and
 * the IP facts a socket would report.
 */
import { formatIp, internetChecksum, ipBytes, parseFrame, pseudoHeader } from './packets.ts';

export const PROTO_VRRP = 112;

export interface VrrpMessageSpec {
  version: 2 | 3;
  vrid: number;
  priority: number;
  addresses: string[];
  /** v2: seconds (default 1) */
  intervalS?: number;
  /** v3: centiseconds (default 100) */
  intervalCs?: number;
  /** v2: 0 none, 1 simple password (default 0) */
  authType?: number;
  /** v2: the password, zero-padded to 8 bytes */
  password?: string;
  /** v3: pseudo-header addresses for the checksum */
  src?: string;
  dst?: string;
  // overrides for malformed messages
  versionNibble?: number;
  type?: number;
  count?: number;
  checksum?: number;
  /** v2: the 8 authentication bytes as given */
  authData?: Buffer;
  /** v3: the 4 reserved bits */
  reserved?: number;
  extra?: Buffer;
  truncate?: number;
}

/** Build a VRRP message: header, addresses, v2 authentication data; checksum computed unless overridden. */
export function vrrpMessage(s: VrrpMessageSpec): Buffer {
  const addrs = s.addresses.map((a) => ipBytes(a));
  const auth = s.version === 2 ? (s.authData ?? padPassword(s.password ?? '')) : Buffer.alloc(0);
  const head = Buffer.alloc(8);
  head[0] = ((s.versionNibble ?? s.version) << 4) | (s.type ?? 1);
  head[1] = s.vrid;
  head[2] = s.priority;
  head[3] = s.count ?? s.addresses.length;
  if (s.version === 2) {
    head[4] = s.authType ?? 0;
    head[5] = s.intervalS ?? 1;
  } else {
    head.writeUInt16BE((((s.reserved ?? 0) & 0xf) << 12) | ((s.intervalCs ?? 100) & 0xfff), 4);
  }
  const msg = Buffer.concat([head, ...addrs, auth]);
  let sum: number;
  if (s.version === 2) {
    sum = internetChecksum(msg);
  } else {
    if (!s.src || !s.dst) throw new Error('vrrpMessage: a v3 checksum needs src and dst (the pseudo-header)');
    sum = internetChecksum(pseudoHeader(ipBytes(s.src), ipBytes(s.dst), PROTO_VRRP, msg.length), msg);
  }
  msg.writeUInt16BE(s.checksum ?? sum, 6);
  const out = s.extra ? Buffer.concat([msg, s.extra]) : msg;
  return s.truncate === undefined ? out : Buffer.from(out.subarray(0, s.truncate));
}

function padPassword(password: string): Buffer {
  const b = Buffer.alloc(8);
  Buffer.from(password, 'utf8').copy(b);
  return b;
}

export interface ParsedVrrp {
  version: number;
  type: number;
  vrid: number;
  priority: number;
  count: number;
  /** v2 */
  authType?: number;
  intervalS?: number;
  authData?: Buffer;
  /** v3 */
  intervalCs?: number;
  reserved?: number;
  checksum: number;
  addresses: string[];
}

/** Read a message field by field; `family` tells the address size (v2 is always IPv4). */
export function parseVrrp(msg: Buffer, family: 4 | 6 = 4): ParsedVrrp {
  if (msg.length < 8) throw new Error(`parseVrrp: ${msg.length} bytes is shorter than a VRRP header`);
  const version = msg[0]! >> 4;
  const count = msg[3]!;
  const alen = family === 4 ? 4 : 16;
  const addresses: string[] = [];
  for (let i = 0; i < count; i++) addresses.push(formatIp(msg.subarray(8 + i * alen, 8 + (i + 1) * alen)));
  const out: ParsedVrrp = {
    version, type: msg[0]! & 0xf, vrid: msg[1]!, priority: msg[2]!, count, checksum: msg.readUInt16BE(6), addresses,
  };
  if (version === 2) {
    out.authType = msg[4]!;
    out.intervalS = msg[5]!;
    out.authData = Buffer.from(msg.subarray(8 + count * 4, 8 + count * 4 + 8));
  } else {
    out.intervalCs = msg.readUInt16BE(4) & 0xfff;
    out.reserved = msg[4]! >> 4;
  }
  return out;
}

/** True when the message's checksum verifies (v3 with the pseudo-header of src/dst). */
export function vrrpChecksumOk(msg: Buffer, src?: string, dst?: string): boolean {
  if (msg[0]! >> 4 === 2) return internetChecksum(msg) === 0;
  if (!src || !dst) throw new Error('vrrpChecksumOk: v3 needs src and dst');
  return internetChecksum(pseudoHeader(ipBytes(src), ipBytes(dst), PROTO_VRRP, msg.length), msg) === 0;
}

export interface VrrpInFrame {
  family: 4 | 6;
  src: string;
  dst: string;
  ttl: number;
  /** the VRRP message: the IP payload, cut at the IP header's length (no Ethernet padding) */
  message: Buffer;
}

/** The VRRP message of an Ethernet frame and the IP facts around it; undefined if the frame is not VRRP. */
export function vrrpFromFrame(frame: Buffer): VrrpInFrame | undefined {
  const ip = parseFrame(frame).ip;
  if (!ip || ip.proto !== PROTO_VRRP) return undefined;
  const l3 = frame.length >= 14 && frame.readUInt16BE(12) === 0x8100 ? 18 : 14;
  const end = ip.version === 4 ? l3 + frame.readUInt16BE(l3 + 2) : l3 + 40 + frame.readUInt16BE(l3 + 4);
  return { family: ip.version, src: ip.src, dst: ip.dst, ttl: ip.ttl, message: Buffer.from(frame.subarray(ip.l4, end)) };
}
