/**
 * The test packet builder (test/lib/packets.ts) against bytes it did not produce: the RFC 1071
 * example, frames captured from a real keepalived (test/vectors, from ../shared/vectors, checksums made by the
 * kernel), and frames written out by hand here, field by field, with the checksum arithmetic
 * shown (each of these was also read back with `tcpdump -vv`, which reported the checksums
 * correct).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  assertFrameEqual, describe, encap4, encap6, eth, firstDifference, formatIp, icmpv4, icmpv6, internetChecksum, ipv4,
  ipv4Bytes, ipv6, ipv6Bytes, onesComplementSum, packet, parseFrame, payload, tcp, transportChecksum, truncate, udp,
  withMacs, ETH_P_ARP,
} from '../lib/packets.ts';

/** Hex with spaces and line breaks allowed, for readability. */
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

interface Capture { capture: string; frames: { hex: string }[] }
const VECTORS = new URL('../vectors/keepalived-vrrp-captures.json', import.meta.url);
const captures = (JSON.parse(readFileSync(VECTORS, 'utf8')) as { captures: Capture[] }).captures;
function captured(name: string, index: number): Buffer {
  const frame = captures.find((c) => c.capture === name)?.frames[index];
  assert.ok(frame, `capture ${name} frame ${index} is missing from ${VECTORS.pathname}`);
  return hex(frame.hex);
}

// ---------------------------------------------------------------- checksums

test('RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2', () => {
  const data = hex('0001 f203 f4f5 f6f7');
  assert.equal(onesComplementSum(data), 0xddf2);
  assert.equal(internetChecksum(data), 0x220d);
  // the sum is independent of byte order and of how the data is split (RFC 1071 section 2)
  assert.equal(internetChecksum(hex('0001 f203'), hex('f4f5 f6f7')), 0x220d);
});

test('odd length: the last byte is padded with a zero byte', () => {
  assert.equal(onesComplementSum(hex('01')), 0x0100);
  assert.equal(onesComplementSum(hex('0001 02')), 0x0201);
});

test('a header with a correct checksum sums to ffff', () => {
  // the IPv4 header of the captured VRRPv2 advertisement, checksum 147b included
  assert.equal(onesComplementSum(captured('v2', 0).subarray(14, 34)), 0xffff);
});

// ---------------------------------------------------------------- against captured frames

test('IPv4 header: byte-identical to a VRRPv2 advertisement captured from keepalived', () => {
  const frame = captured('v2', 0);
  const built = packet(
    eth({ dst: '01:00:5e:00:00:12', src: '02:00:00:00:0a:01' }),
    ipv4({ src: '198.18.0.1', dst: '224.0.0.18', proto: 112, ttl: 255, tos: 0xc0, id: 1 }),
    frame.subarray(34), // the VRRP message, as raw bytes
  );
  assertFrameEqual(built, frame, 'VRRPv2');
});

test('IPv4 pseudo-header checksum: matches the VRRPv3 checksum keepalived computed (e97d)', () => {
  const frame = captured('v3', 0);
  const vrrp = Buffer.from(frame.subarray(34));
  assert.equal(vrrp.readUInt16BE(6), 0xe97d);
  vrrp.writeUInt16BE(0, 6);
  assert.equal(transportChecksum('198.18.0.1', '224.0.0.18', 112, vrrp), 0xe97d);
});

test('IPv6 header and pseudo-header checksum: a VRRPv3 IPv6 advertisement captured from keepalived', () => {
  const frame = captured('v3v6', 0);
  const vrrp = Buffer.from(frame.subarray(54));
  const built = packet(
    eth({ dst: '33:33:00:00:00:12', src: '02:00:00:00:0a:01' }),
    ipv6({ src: 'fe80::ff:fe00:a01', dst: 'ff02::12', nextHeader: 112, hopLimit: 255, trafficClass: 0xc0, flowLabel: 0xd47ff }),
    vrrp,
  );
  assertFrameEqual(built, frame, 'VRRPv3/IPv6');
  assert.equal(vrrp.readUInt16BE(6), 0xcb2b);
  vrrp.writeUInt16BE(0, 6);
  assert.equal(transportChecksum('fe80::ff:fe00:a01', 'ff02::12', 112, vrrp), 0xcb2b);
});

test('ICMPv6: byte-identical to a neighbour advertisement the kernel sent for keepalived', () => {
  const frame = captured('v3v6', 1);
  const built = packet(
    eth({ dst: '33:33:00:00:00:01', src: '02:00:00:00:0a:01' }),
    ipv6({ src: 'fd00:18::100', dst: 'ff02::1', hopLimit: 255 }),
    icmpv6({ type: 136, code: 0, rest: 0x20000000 }), // override flag
    ipv6Bytes('fd00:18::100'), // target
    hex('0201 020000000a01'), // target link-layer address option
  );
  assertFrameEqual(built, frame, 'neighbour advertisement');
});

test('Ethernet with an explicit EtherType: byte-identical to a captured gratuitous ARP', () => {
  const frame = captured('v2', 1);
  assertFrameEqual(packet(eth({ dst: 'ff:ff:ff:ff:ff:ff', src: '02:00:00:00:0a:01', type: ETH_P_ARP }), frame.subarray(14)), frame, 'ARP');
});

// ---------------------------------------------------------------- against frames written by hand

// IPv4 TCP SYN 198.18.2.1:40000 > 198.18.0.10:80, id 0x1234, DF, seq 1, window 65535.
//  IPv4 sum: 4500+0028+1234+4000+4006+c612+0201+c612+000a = 0x26591 -> 6591+2 = 6593 -> ~ = 9a6c
//  TCP sum:  pseudo c612+0201+c612+000a+0006+0014, segment 9c40+0050+0000+0001+0000+0000+5002+ffff
//            = 0x37adb -> 7adb+3 = 7ade -> ~ = 8521
const SYN4 = hex(`
  020000000001 020000000201 0800
  4500 0028 1234 4000 4006 9a6c c6120201 c612000a
  9c40 0050 00000001 00000000 5002 ffff 8521 0000`);
const syn4 = () => packet(
  eth({ dst: '02:00:00:00:00:01', src: '02:00:00:00:02:01' }),
  ipv4({ src: '198.18.2.1', dst: '198.18.0.10', id: 0x1234, df: true }),
  tcp({ sport: 40000, dport: 80, flags: 'S', seq: 1 }),
);

test('IPv4 + TCP SYN: header fields, IPv4 checksum, TCP pseudo-header checksum', () => {
  assertFrameEqual(syn4(), SYN4, 'SYN');
});

// IPv6 UDP fd00:18:2::1:54321 > fd00:18::10:53, payload 'xlb!'.
//  pseudo: fd00+0018+0002+0001 + fd00+0018+0010 + 000c + 0011 = 0x1fa60
//  + d431+0035+000c+786c+6221 = 0x3a95f -> a95f+3 = a962 -> ~ = 569d
const UDP6 = hex(`
  020000000001 020000000201 86dd
  6000 0000 000c 11 40 fd000018000200000000000000000001 fd000018000000000000000000000010
  d431 0035 000c 569d 786c6221`);
const udp6 = (tc = 0, fl = 0) => packet(
  eth({ dst: '02:00:00:00:00:01', src: '02:00:00:00:02:01' }),
  ipv6({ src: 'fd00:18:2::1', dst: 'fd00:18::10', trafficClass: tc, flowLabel: fl }),
  udp({ sport: 54321, dport: 53 }),
  Buffer.from('xlb!'),
);

test('IPv6 + UDP: payload length, UDP length, pseudo-header checksum', () => {
  assertFrameEqual(udp6(), UDP6, 'UDP6');
});

test('UDP: a computed checksum of 0 is sent as ffff (RFC 768)', () => {
  // choose the payload so that the sum comes out at ffff: the checksum then computes as 0
  const base = packet(ipv4({ src: '198.18.2.1', dst: '198.18.0.10' }), udp({ sport: 1, dport: 2 }), Buffer.alloc(2));
  const c = base.readUInt16BE(26);
  // replacing two zero payload bytes with the checksum value makes the complemented sum zero
  const zeroSum = packet(ipv4({ src: '198.18.2.1', dst: '198.18.0.10' }), udp({ sport: 1, dport: 2 }), Buffer.from([c >> 8, c & 0xff]));
  assert.equal(zeroSum.readUInt16BE(26), 0xffff);
});

// ICMP echo request 198.18.2.1 > 198.18.0.10, id 0x1234 seq 1, data 'abcd'.
//  IPv4 sum: 4500+0020+0000+0000+4001+c612+0201+c612+000a = 0x21350 -> 1352 -> ~ = ecad
//  ICMP sum: 0800+1234+0001+6162+6364 = defb -> ~ = 2104
test('ICMPv4 echo: checksum over the message only', () => {
  const built = packet(
    eth({ dst: '02:00:00:00:00:01', src: '02:00:00:00:02:01' }),
    ipv4({ src: '198.18.2.1', dst: '198.18.0.10' }),
    icmpv4({ type: 8, code: 0, rest: 0x12340001 }),
    Buffer.from('abcd'),
  );
  assertFrameEqual(built, hex(`
    020000000001 020000000201 0800
    4500 0020 0000 0000 4001 ecad c6120201 c612000a
    0800 2104 1234 0001 61626364`), 'echo');
});

// IPv4 with a Router Alert option (ihl 6), tos 0x10, id 0xbeef, MF, offset 185 (x8 = 1480), ttl 17.
//  sum: 4610+0020+beef+20b9+1111+c612+0201+c612+0014+9404+0000 = 0x35926 -> 5929 -> ~ = a6d6
test('IPv4 options, MF and fragment offset (in 8-octet units), explicit protocol with raw payload', () => {
  const built = packet(
    eth({ dst: '02:00:00:00:00:01', src: '02:00:00:00:02:01' }),
    ipv4({ src: '198.18.2.1', dst: '198.18.0.20', proto: 17, tos: 0x10, id: 0xbeef, ttl: 17, mf: true, fragOffset: 185, options: hex('94040000') }),
    payload(8),
  );
  assertFrameEqual(built, hex(`
    020000000001 020000000201 0800
    4610 0020 beef 20b9 1111 a6d6 c6120201 c6120014 94040000
    0001020304050607`), 'fragment with options');
});

test('IPv6 extension headers: hop-by-hop (PadN) then fragment, chained next headers', () => {
  const built = packet(
    eth({ dst: '02:00:00:00:00:01', src: '02:00:00:00:02:01' }),
    ipv6({
      src: 'fd00:18:2::1', dst: 'fd00:18::20', nextHeader: 17,
      extHeaders: [{ type: 'hopByHop' }, { type: 'fragment', offset: 100, more: true, id: 0xdeadbeef }],
    }),
    payload(8),
  );
  assertFrameEqual(built, hex(`
    020000000001 020000000201 86dd
    6000 0000 0018 00 40 fd000018000200000000000000000001 fd000018000000000000000000000020
    2c 00 0104 00000000
    11 00 0321 deadbeef
    0001020304050607`), 'ext headers');
});

test('IPv6 routing and destination options headers', () => {
  const built = packet(
    ipv6({ src: 'fd00::1', dst: 'fd00::2', extHeaders: [{ type: 'routing' }, { type: 'dstOpts' }] }),
    udp({ sport: 1, dport: 2 }),
  );
  // 40 + routing 8 + dstopts 8 + udp 8
  assert.equal(built.length, 64);
  assert.equal(built[6], 43);
  assert.deepEqual([...built.subarray(40, 48)], [60, 0, 253, 0, 0, 0, 0, 0]);
  assert.deepEqual([...built.subarray(48, 56)], [17, 0, 1, 4, 0, 0, 0, 0]);
  assert.equal(built.readUInt16BE(4), 24);
  // the UDP checksum covers the UDP datagram only (RFC 8200 8.1: upper-layer packet length)
  const seg = Buffer.from(built.subarray(56));
  const sum = seg.readUInt16BE(6);
  seg.writeUInt16BE(0, 6);
  assert.equal(transportChecksum('fd00::1', 'fd00::2', 17, seg), sum);
});

test('802.1Q tag: TPID 8100, PCP and VLAN id, then the inner EtherType', () => {
  const built = packet(eth({ dst: '02:00:00:00:00:01', src: '02:00:00:00:02:01', vlan: 10, pcp: 5 }), ipv4({ src: '198.18.2.1', dst: '198.18.0.10', id: 0x1234, df: true }), tcp({ sport: 40000, dport: 80, flags: 'S', seq: 1 }));
  assertFrameEqual(built, Buffer.concat([SYN4.subarray(0, 12), hex('8100 a00a'), SYN4.subarray(12)]), 'VLAN SYN');
});

test('TCP flags and data offset: letters map to bits, overrides land in the header', () => {
  const seg = (spec: Parameters<typeof tcp>[0]) => packet(ipv4({ src: '198.18.2.1', dst: '198.18.0.10' }), tcp(spec)).subarray(20);
  assert.equal(seg({ sport: 1, dport: 2, flags: 'SA' })[13], 0x12);
  assert.equal(seg({ sport: 1, dport: 2, flags: 'PA' })[13], 0x18);
  assert.equal(seg({ sport: 1, dport: 2, flags: 'FA' })[13], 0x11);
  assert.equal(seg({ sport: 1, dport: 2, flags: 'R' })[13], 0x04);
  assert.equal(seg({ sport: 1, dport: 2 })[13], 0x10, "default 'A'");
  assert.equal(seg({ sport: 1, dport: 2, dataOffset: 4 })[12], 0x40);
  assert.equal(seg({ sport: 1, dport: 2, options: hex('020405b4') })[12], 0x60);
  assert.throws(() => seg({ sport: 1, dport: 2, flags: 'X' }), /unknown flag/);
});

test('IPv4 overrides: version, ihl, total length', () => {
  const p = packet(ipv4({ src: '198.18.2.1', dst: '198.18.0.10', version: 5, ihl: 4, totalLength: 1500 }), udp({ sport: 1, dport: 2 }));
  assert.equal(p[0], 0x54);
  assert.equal(p.readUInt16BE(2), 1500);
  assert.equal(onesComplementSum(p.subarray(0, 20)), 0xffff, 'checksum is still computed over the 20 bytes written');
});

// ---------------------------------------------------------------- expected-output helpers

// 4in4 of SYN4 from 198.18.255.0 to 198.18.1.11, ttl 64: tos 0, length 0x28+20 = 0x3c, id 0, DF (inner DF)
//  sum: 4500+003c+0000+4000+4004+c612+ff00+c612+010b = 0x3516f -> 5172 -> ~ = ae8d
test('encap4: outer header after Ethernet, fields from the inner header', () => {
  const out = withMacs(encap4(SYN4, { outerSrc: '198.18.255.0', outerDst: '198.18.1.11', ttl: 64 }), '02:00:00:00:01:11', '02:00:00:00:00:01');
  assertFrameEqual(out, hex(`
    020000000111 020000000001 0800
    4500 003c 0000 4000 4004 ae8d c612ff00 c612010b
    4500 0028 1234 4000 4006 9a6c c6120201 c612000a
    9c40 0050 00000001 00000000 5002 ffff 8521 0000`), '4in4');
});

test('encap4: tos copied, no DF when the inner has none, after a VLAN tag', () => {
  const inner = packet(eth({ dst: '02:00:00:00:00:01', src: '02:00:00:00:02:01', vlan: 7 }), ipv4({ src: '198.18.2.1', dst: '198.18.0.10', tos: 0xb8 }), udp({ sport: 1, dport: 2 }));
  const out = encap4(inner, { outerSrc: '198.18.255.0', outerDst: '198.18.1.11', ttl: 3 });
  assert.equal(out.length, inner.length + 20);
  assert.deepEqual(out.subarray(0, 18), inner.subarray(0, 18));
  const h = out.subarray(18, 38);
  assert.equal(h[0], 0x45);
  assert.equal(h[1], 0xb8);
  assert.equal(h.readUInt16BE(2), 20 + 28);
  assert.equal(h.readUInt16BE(6), 0);
  assert.equal(h[8], 3);
  assert.equal(h[9], 4);
  assert.equal(onesComplementSum(h), 0xffff);
  assert.deepEqual(out.subarray(38), inner.subarray(18));
});

test('encap6: outer header with the inner traffic class and flow label, next header 41', () => {
  const inner = udp6(0xab, 0xcdef1);
  const out = withMacs(encap6(inner, { outerSrc: 'fd00:ff::', outerDst: 'fd00:18:1::12', hopLimit: 64 }), '02:00:00:00:01:12', '02:00:00:00:00:01');
  assertFrameEqual(out, hex(`
    020000000112 020000000001 86dd
    6abc def1 0034 29 40 fd0000ff000000000000000000000000 fd000018000100000000000000000012
    6abc def1 000c 11 40 fd000018000200000000000000000001 fd000018000000000000000000000010
    d431 0035 000c 569d 786c6221`), '6in6');
});

test('encap helpers refuse the wrong family', () => {
  assert.throws(() => encap4(UDP6, { outerSrc: '198.18.255.0', outerDst: '198.18.1.1', ttl: 64 }), /IPv4/);
  assert.throws(() => encap6(SYN4, { outerSrc: 'fd00::1', outerDst: 'fd00::2', hopLimit: 64 }), /IPv6/);
});

test('withMacs replaces exactly the two addresses; truncate cuts a copy', () => {
  const out = withMacs(SYN4, '02:aa:bb:cc:dd:ee', '02:11:22:33:44:55');
  assert.deepEqual(out.subarray(0, 12), hex('02aabbccddee 021122334455'));
  assert.deepEqual(out.subarray(12), SYN4.subarray(12));
  assert.deepEqual(SYN4.subarray(0, 6), hex('020000000001'), 'the input is not modified');
  const t = truncate(SYN4, 20);
  assert.equal(t.length, 20);
  assert.deepEqual(t, SYN4.subarray(0, 20));
  assert.throws(() => truncate(SYN4, 100), /cannot truncate/);
});

// ---------------------------------------------------------------- addresses and decoding

test('address text <-> bytes', () => {
  assert.deepEqual(ipv4Bytes('198.18.0.10'), hex('c612000a'));
  assert.deepEqual(ipv6Bytes('fd00:18::10'), hex('fd000018000000000000000000000010'));
  assert.deepEqual(ipv6Bytes('::'), Buffer.alloc(16));
  assert.deepEqual(ipv6Bytes('1:2:3:4:5:6:7:8'), hex('00010002000300040005000600070008'));
  assert.equal(formatIp(hex('fd000018000000000000000000000010')), 'fd00:18::10');
  assert.equal(formatIp(hex('fd0000ff000000000000000000000000')), 'fd00:ff::');
  assert.equal(formatIp(hex('00010000000100000000000000000001')), '1:0:1::1');
  for (const bad of ['198.18.0', '198.18.0.256', 'fd00::1::2', 'fd00:1:2:3:4:5:6:7:8', 'fd00::g']) {
    assert.throws(() => (bad.includes(':') ? ipv6Bytes(bad) : ipv4Bytes(bad)), /is not an IPv/, bad);
  }
});

test('parseFrame decodes MACs, VLAN, addresses, ports and a tunnel inner packet; never throws', () => {
  const p = parseFrame(encap4(SYN4, { outerSrc: '198.18.255.7', outerDst: '198.18.1.11', ttl: 64 }));
  assert.equal(p.dst, '02:00:00:00:00:01');
  assert.equal(p.ip?.src, '198.18.255.7');
  assert.equal(p.ip?.proto, 4);
  assert.equal(p.inner?.src, '198.18.2.1');
  assert.equal(p.inner?.dport, 80);
  assert.equal(p.inner?.tcpFlags, 0x02);
  const v6 = parseFrame(UDP6);
  assert.equal(v6.ip?.dst, 'fd00:18::10');
  assert.equal(v6.ip?.sport, 54321);
  for (let n = 0; n <= SYN4.length; n++) parseFrame(SYN4.subarray(0, n));
  assert.match(describe(SYN4), /198\.18\.2\.1 > 198\.18\.0\.10 .*TCP 40000 > 80 \[S\]/);
});

test('assertFrameEqual names the first differing offset and shows both packets', () => {
  const other = Buffer.from(SYN4);
  other[0x1f] = 0xc7; // second byte of the destination address
  assert.equal(firstDifference(other, SYN4), 0x1f);
  assert.equal(firstDifference(SYN4, SYN4), -1);
  assert.equal(firstDifference(SYN4.subarray(0, 10), SYN4), 10);
  assert.throws(() => assertFrameEqual(other, SYN4, 'fixture x'), (err: Error) => {
    assert.match(err.message, /^fixture x: differs from the expected packet at offset 31 \(0x1f\)/);
    assert.match(err.message, /actual: .*198\.18\.2\.1 > 198\.199\.0\.10/);
    assert.match(err.message, /!0010 .* \| /);
    return true;
  });
});
