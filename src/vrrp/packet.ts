/**
 * VRRP advertisement codec (pure): VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798, IPv4 and IPv6).
 *
 * The codec sees only the VRRP message (the IP payload); the IP header is the socket layer's
 * job. What decoding needs from the IP header (family, source, destination, TTL / hop limit) and
 * from the instance's configuration (version, VRID, authentication, advertisement interval,
 * VIPs, unicast peers) comes in a `DecodeContext`.
 *
 * Wire formats (all fields in network order):
 *
 *   v2:  0 ver(4)|type(4)  1 vrid  2 priority  3 count
 *        4 auth type       5 adver int (seconds)   6-7 checksum
 *        8.. count IPv4 addresses, then 8 bytes of authentication data
 *   v3:  0 ver(4)|type(4)  1 vrid  2 priority  3 count
 *        4-5 rsvd(4)|max adver int(12, centiseconds)   6-7 checksum
 *        8.. count IPv4 or IPv6 addresses
 *
 * Checksums (RFC 1071 over the message with its checksum field): v2 over the VRRP message only;
 * v3 with the pseudo-header of its IP family (RFC 5798 section 5.2.8; for IPv4 the RFC 768
 * pseudo-header, which keepalived also uses: see the captured frames in ../shared/vectors).
 *
 * Receive contract: `decode(buf, ctx)` never throws on packet bytes. It runs these checks in
 * this order and reports the first that fails (each a `RejectReason`, counted by the caller):
 *
 *   1. length    the buffer holds the fixed header (8 bytes) and exactly the addresses its count
 *                announces (4 bytes each for IPv4, 16 for IPv6) plus, for v2, 8 bytes of
 *                authentication data; shorter or longer is rejected
 *   2. ttl       TTL / hop limit is 255 (RFC 3768 7.1, RFC 5798 7.1); skipped with unicast
 *                peers (as keepalived) and when the socket could not tell (ctx.ttl undefined)
 *   3. version   the version nibble is the instance's version
 *   4. vrid      the VRID is the instance's (a demultiplexing socket normally looks the instance
 *                up by VRID first: `peekVrid`)
 *   5. auth_type       v2: the auth type is 0 (none), 1 (simple password) or 2 (IPsec AH)
 *      auth_mismatch   v2: the auth type is the one configured
 *      auth_password   v2 PASS: the 8 authentication bytes equal the configured password,
 *                      zero-padded to 8 bytes (compared in constant time)
 *   6. interval  v2: the advertisement interval equals the configured one (RFC 3768 7.1: MUST
 *                drop otherwise); v3: it is not 0 (a 0 interval would make backups' master-down
 *                interval the skew time alone)
 *   7. type      the type nibble is 1 (ADVERTISEMENT)
 *   8. checksum  the checksum verifies (v3: with the pseudo-header of ctx.src/ctx.dst; for IPv4
 *                unicast a checksum made with 224.0.0.18 as the pseudo-header destination, as older
 *                keepalived sent (its unicast_checksum_compat), is accepted and flagged
 *                `legacyUnicastChecksum`)
 *   9. cast      the destination is multicast exactly when the instance has no unicast peers
 *  10. (VIP list) the addresses are the configured VIPs (same count, same set): a difference is
 *                NOT a rejection (RFC 5798 7.1: log and go on) but sets `vipMismatch` on the
 *                result, which the caller counts. keepalived 2.2 drops such adverts instead.
 *  11. peer      with unicast peers and ctx.checkUnicastSource, the source is one of the peers
 *
 * Quirks of keepalived (2.2.7) this codec matches: v2 always carries the 8 authentication bytes
 * (zero with auth type 0); the PASS password is at most 8 bytes, zero-padded; v2 intervals are
 * whole seconds, v3 intervals centiseconds (0.5 s is 50); the v3 IPv4 checksum includes the
 * pseudo-header, and for unicast its destination is the peer's address.
 *
 * Encoding: `encode(advert)` validates its input and throws an Error naming the field on bad
 * values (encoding our own configuration, so a bad value is a bug or a config error).
 */
import { isIPv4, isIPv6 } from 'node:net';
import { addrBytes, addrText, type Family } from '../datapath/xdp/net.ts';

export const IPPROTO_VRRP = 112;
export const VRRP_TTL = 255;
export const VRRP_TYPE_ADVERT = 1;
export const VRRP_MCAST4 = '224.0.0.18';
export const VRRP_MCAST6 = 'ff02::12';
export const VRRP_HEADER_LEN = 8;
export const VRRP_AUTH_LEN = 8;

export type VrrpVersion = 2 | 3;

/** v2 authentication types (RFC 2338 / keepalived; RFC 3768 keeps only 0). */
export const AUTH = { NONE: 0, PASS: 1, AH: 2 } as const;
export type AuthType = (typeof AUTH)[keyof typeof AUTH];

/** Every reason `decode` can reject a packet for, in check order. */
export const REJECT_REASONS = [
  'length', 'ttl', 'version', 'vrid', 'auth_type', 'auth_mismatch', 'auth_password', 'interval', 'type', 'checksum',
  'cast', 'peer',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** What the socket layer knows about the IP packet that carried the message. */
export interface PacketFacts {
  family: Family;
  src: string;
  dst: string;
  /** IPv4 TTL or IPv6 hop limit; undefined when the socket could not tell */
  ttl?: number;
}

/** What the instance's configuration says a valid advertisement looks like. */
export interface InstanceView {
  version: VrrpVersion;
  vrid: number;
  /** v2 only; default none */
  authType?: typeof AUTH.NONE | typeof AUTH.PASS;
  /** v2 PASS: at most 8 bytes */
  authPassword?: string;
  /** configured advertisement interval; v2 adverts must carry the same */
  advertIntervalMs: number;
  /** configured virtual addresses, compared with the advert's list */
  vips: readonly string[];
  /** unicast peers; empty means multicast */
  unicastPeers: readonly string[];
  /** reject unicast adverts whose source is not a peer (keepalived check_unicast_src); default false */
  checkUnicastSource?: boolean;
}

export type DecodeContext = PacketFacts & InstanceView;

export interface Advert {
  version: VrrpVersion;
  vrid: number;
  priority: number;
  /** v2 seconds or v3 centiseconds, in milliseconds */
  intervalMs: number;
  addresses: string[];
  /** v2 only */
  authType?: number;
  /** the sender (ctx.src), for the state machine */
  src: string;
  /** the address list differs from the configured VIPs (accepted; count it) */
  vipMismatch: boolean;
  /** v3 IPv4 unicast checksum made with 224.0.0.18 in the pseudo-header */
  legacyUnicastChecksum: boolean;
}

export type DecodeResult = { ok: true; advert: Advert } | { ok: false; reason: RejectReason; detail: string };

/** What `encode` needs. */
export interface AdvertSpec {
  version: VrrpVersion;
  vrid: number;
  /** 0..255; 0 announces that the master stops */
  priority: number;
  /** v2: whole seconds 1..255; v3: a multiple of 10 ms, 10..40950 */
  intervalMs: number;
  /** all IPv4, or (v3 only) all IPv6; at most 255 */
  addresses: readonly string[];
  /** v2 only; default none */
  authType?: typeof AUTH.NONE | typeof AUTH.PASS;
  authPassword?: string;
}

/** Pseudo-header addresses for the v3 checksum (the IP header's source and destination). */
export interface PseudoHeader {
  src: string;
  dst: string;
}

// ---------------------------------------------------------------- checksum

/** The Internet checksum (RFC 1071) of the concatenated parts; each part of even length but the last. */
export function internetChecksum(...parts: Uint8Array[]): number {
  let sum = 0;
  for (const part of parts) {
    const n = part.length & ~1;
    for (let i = 0; i < n; i += 2) sum += (part[i]! << 8) | part[i + 1]!;
    if (part.length & 1) sum += part[part.length - 1]! << 8;
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function addressLength(family: Family): number {
  return family === 4 ? 4 : 16;
}

function ipBytes(address: string, family: Family): Buffer {
  return addrBytes(address).subarray(0, addressLength(family));
}

/** IPv4 (RFC 768) or IPv6 (RFC 8200 8.1) pseudo-header for a VRRP message of `length` bytes. */
function pseudoHeader(family: Family, src: string, dst: string, length: number): Buffer {
  if (family === 4) {
    const b = Buffer.alloc(12);
    ipBytes(src, 4).copy(b, 0);
    ipBytes(dst, 4).copy(b, 4);
    b[9] = IPPROTO_VRRP;
    b.writeUInt16BE(length, 10);
    return b;
  }
  const b = Buffer.alloc(40);
  ipBytes(src, 6).copy(b, 0);
  ipBytes(dst, 6).copy(b, 16);
  b.writeUInt32BE(length, 32);
  b[39] = IPPROTO_VRRP;
  return b;
}

function isMulticast(address: string, family: Family): boolean {
  const first = addrBytes(address)[0]!;
  return family === 4 ? (first & 0xf0) === 0xe0 : first === 0xff;
}

/** The 8 authentication bytes for a PASS password: its UTF-8 bytes, zero-padded. */
function passwordBytes(password: string): Buffer {
  const bytes = Buffer.from(password, 'utf8');
  if (bytes.length > VRRP_AUTH_LEN) throw new Error(`VRRP auth_pass '${password}' is longer than ${VRRP_AUTH_LEN} bytes`);
  const out = Buffer.alloc(VRRP_AUTH_LEN);
  bytes.copy(out);
  return out;
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.min(a.length, b.length); i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

function sameAddress(a: string, b: string): boolean {
  return addrBytes(a).equals(addrBytes(b));
}

// ---------------------------------------------------------------- decode

/** The VRID of a message (for demultiplexing), or undefined when it is too short to have one. */
export function peekVrid(buf: Uint8Array): number | undefined {
  return buf.length >= VRRP_HEADER_LEN ? buf[1] : undefined;
}

function reject(reason: RejectReason, detail: string): DecodeResult {
  return { ok: false, reason, detail };
}

/** Decode and check one VRRP message; see the contract at the top of this file. */
export function decode(buf: Uint8Array, ctx: DecodeContext): DecodeResult {
  if (ctx.family === 6 && ctx.version === 2) throw new Error('VRRPv2 has no IPv6 form: configure version 3 for IPv6 instances');
  const version = ctx.version;
  const alen = addressLength(ctx.family);

  // 1. length
  if (buf.length < VRRP_HEADER_LEN) return reject('length', `${buf.length} bytes, shorter than the ${VRRP_HEADER_LEN}-byte header`);
  const count = buf[3]!;
  const expected = VRRP_HEADER_LEN + count * alen + (version === 2 ? VRRP_AUTH_LEN : 0);
  if (buf.length !== expected) {
    return reject('length', `${buf.length} bytes, but ${count} IPv${ctx.family} address(es) make a v${version} message of ${expected}`);
  }

  // 2. TTL / hop limit
  if (ctx.unicastPeers.length === 0 && ctx.ttl !== undefined && ctx.ttl !== VRRP_TTL) {
    return reject('ttl', `${ctx.family === 4 ? 'TTL' : 'hop limit'} ${ctx.ttl}, must be ${VRRP_TTL}`);
  }

  // 3. version
  const gotVersion = buf[0]! >> 4;
  if (gotVersion !== version) return reject('version', `version ${gotVersion}, the instance runs version ${version}`);

  // 4. VRID
  if (buf[1] !== ctx.vrid) return reject('vrid', `VRID ${buf[1]}, the instance's is ${ctx.vrid}`);

  let authType: number | undefined;
  if (version === 2) {
    // 5. authentication
    authType = buf[4]!;
    const configured = ctx.authType ?? AUTH.NONE;
    if (authType !== AUTH.NONE && authType !== AUTH.PASS && authType !== AUTH.AH) return reject('auth_type', `auth type ${authType} is not 0, 1 or 2`);
    if (authType !== configured) return reject('auth_mismatch', `auth type ${authType}, configured ${configured}`);
    if (configured === AUTH.PASS) {
      const got = buf.subarray(buf.length - VRRP_AUTH_LEN);
      if (!constantTimeEqual(got, passwordBytes(ctx.authPassword ?? ''))) return reject('auth_password', 'the simple password does not match');
    }
    // 6. interval (v2: must match)
    const seconds = buf[5]!;
    if (seconds * 1000 !== ctx.advertIntervalMs) {
      return reject('interval', `advertisement interval ${seconds} s, configured ${ctx.advertIntervalMs / 1000} s`);
    }
  } else if ((((buf[4]! << 8) | buf[5]!) & 0x0fff) === 0) {
    return reject('interval', 'advertisement interval 0');
  }

  // 7. type
  const type = buf[0]! & 0x0f;
  if (type !== VRRP_TYPE_ADVERT) return reject('type', `type ${type}, only ${VRRP_TYPE_ADVERT} (ADVERTISEMENT) exists`);

  // 8. checksum
  let legacyUnicastChecksum = false;
  if (version === 2) {
    if (internetChecksum(buf) !== 0) return reject('checksum', 'VRRPv2 checksum does not verify');
  } else if (internetChecksum(pseudoHeader(ctx.family, ctx.src, ctx.dst, buf.length), buf) !== 0) {
    const legacy = ctx.family === 4 && ctx.unicastPeers.length > 0 &&
      internetChecksum(pseudoHeader(4, ctx.src, VRRP_MCAST4, buf.length), buf) === 0;
    if (!legacy) return reject('checksum', `VRRPv3 checksum does not verify with the pseudo-header ${ctx.src} > ${ctx.dst}`);
    legacyUnicastChecksum = true;
  }

  // 9. multicast / unicast consistency
  const multicast = isMulticast(ctx.dst, ctx.family);
  if (multicast !== (ctx.unicastPeers.length === 0)) {
    return reject('cast', multicast ? `multicast to ${ctx.dst}, the instance has unicast peers` : `unicast to ${ctx.dst}, the instance uses multicast`);
  }

  // 10. VIP list: compared, not a rejection
  const addresses: string[] = [];
  for (let i = 0; i < count; i++) {
    const off = VRRP_HEADER_LEN + i * alen;
    addresses.push(addrText(buf.subarray(off, off + alen), ctx.family));
  }
  const vipMismatch = addresses.length !== ctx.vips.length ||
    !ctx.vips.every((vip) => addresses.some((a) => sameAddress(a, vip)));

  // 11. unicast source among the peers
  if (ctx.unicastPeers.length > 0 && ctx.checkUnicastSource && !ctx.unicastPeers.some((p) => sameAddress(p, ctx.src))) {
    return reject('peer', `source ${ctx.src} is not a unicast peer`);
  }

  const intervalMs = version === 2 ? buf[5]! * 1000 : (((buf[4]! << 8) | buf[5]!) & 0x0fff) * 10;
  const advert: Advert = {
    version, vrid: buf[1]!, priority: buf[2]!, intervalMs, addresses, src: ctx.src, vipMismatch, legacyUnicastChecksum,
  };
  if (authType !== undefined) advert.authType = authType;
  return { ok: true, advert };
}

// ---------------------------------------------------------------- encode

function checkInt(what: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) throw new Error(`VRRP ${what} ${value} is not an integer in ${min}..${max}`);
}

/** The advertisement interval as carried on the wire: v2 seconds, v3 centiseconds; throws if it cannot be. */
export function wireInterval(version: VrrpVersion, intervalMs: number): number {
  if (version === 2) {
    if (!Number.isInteger(intervalMs / 1000)) throw new Error(`VRRPv2 advertisement interval ${intervalMs} ms is not whole seconds`);
    checkInt('v2 advertisement interval (s)', intervalMs / 1000, 1, 255);
    return intervalMs / 1000;
  }
  if (!Number.isInteger(intervalMs / 10)) throw new Error(`VRRPv3 advertisement interval ${intervalMs} ms is not whole centiseconds`);
  checkInt('v3 advertisement interval (cs)', intervalMs / 10, 1, 4095);
  return intervalMs / 10;
}

/**
 * The VRRP message for `spec`. v3 needs the pseudo-header addresses for its checksum (the
 * source address and the destination: the multicast group, or the unicast peer).
 */
export function encode(spec: AdvertSpec, pseudo?: PseudoHeader): Buffer {
  checkInt('version', spec.version, 2, 3);
  checkInt('VRID', spec.vrid, 1, 255);
  checkInt('priority', spec.priority, 0, 255);
  checkInt('address count', spec.addresses.length, 0, 255);
  const first = spec.addresses[0] ?? pseudo?.src;
  const family: Family = first !== undefined && isIPv6(first) ? 6 : 4;
  for (const a of spec.addresses) {
    if (family === 4 ? !isIPv4(a) : !isIPv6(a)) throw new Error(`VRRP address '${a}' is not IPv${family} like the first address`);
  }
  if (spec.version === 2 && family === 6) throw new Error('VRRPv2 cannot carry IPv6 addresses');
  const interval = wireInterval(spec.version, spec.intervalMs);
  const alen = addressLength(family);
  const buf = Buffer.alloc(VRRP_HEADER_LEN + spec.addresses.length * alen + (spec.version === 2 ? VRRP_AUTH_LEN : 0));
  buf[0] = (spec.version << 4) | VRRP_TYPE_ADVERT;
  buf[1] = spec.vrid;
  buf[2] = spec.priority;
  buf[3] = spec.addresses.length;
  spec.addresses.forEach((a, i) => ipBytes(a, family).copy(buf, VRRP_HEADER_LEN + i * alen));
  if (spec.version === 2) {
    const authType = spec.authType ?? AUTH.NONE;
    if (authType !== AUTH.NONE && authType !== AUTH.PASS) throw new Error(`VRRPv2 auth type ${String(authType)} is not supported (0 or 1)`);
    buf[4] = authType;
    buf[5] = interval;
    if (authType === AUTH.PASS) passwordBytes(spec.authPassword ?? '').copy(buf, buf.length - VRRP_AUTH_LEN);
    buf.writeUInt16BE(internetChecksum(buf), 6);
    return buf;
  }
  buf.writeUInt16BE(interval, 4);
  if (!pseudo) throw new Error('VRRPv3 checksum needs the pseudo-header source and destination addresses');
  for (const [what, a] of [['source', pseudo.src], ['destination', pseudo.dst]] as const) {
    if (family === 4 ? !isIPv4(a) : !isIPv6(a)) throw new Error(`VRRPv3 pseudo-header ${what} '${a}' is not IPv${family}`);
  }
  buf.writeUInt16BE(internetChecksum(pseudoHeader(family, pseudo.src, pseudo.dst, buf.length), buf), 6);
  return buf;
}
