/**
 * src/vrrp/arp.ts against frames captured from a real keepalived 2.2.7 (test/vectors, from ../shared/vectors): every
 * gratuitous ARP and every unsolicited neighbour advertisement in the captures is rebuilt from its
 * MAC and address and must be identical to the byte. The router flag (not in the captures) is
 * checked against the independent builder (test/lib/packets.ts) and its checksum arithmetic.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gratuitousArp, unsolicitedNa, GARP_FRAME_LENGTH, NA_FRAME_LENGTH } from '../../src/vrrp/arp.ts';
import {
  assertFrameEqual, eth, formatIp, formatMac, icmpv6, ipv6, packet, transportChecksum, ETH_P_ARP, ETH_P_IPV6, IPPROTO,
} from '../lib/packets.ts';

interface Capture { capture: string; frames: { hex: string }[] }
const VECTORS = new URL('../vectors/keepalived-vrrp-captures.json', import.meta.url);
const captures = (JSON.parse(readFileSync(VECTORS, 'utf8')) as { captures: Capture[] }).captures;
const frames = captures.flatMap((c) => c.frames.map((f, i) => ({ name: `${c.capture}[${i}]`, bytes: Buffer.from(f.hex, 'hex') })));

/** ARP requests whose sender and target protocol addresses are one (gratuitous), as captured. */
const garps = frames.filter(({ bytes: b }) => b.length >= 42 && b.readUInt16BE(12) === ETH_P_ARP && b.readUInt16BE(20) === 1
  && b.subarray(28, 32).equals(b.subarray(38, 42)));
/** ICMPv6 neighbour advertisements (type 136) without extension headers, as captured. */
const nas = frames.filter(({ bytes: b }) => b.length >= 62 && b.readUInt16BE(12) === ETH_P_IPV6 && b[20] === IPPROTO.ICMPV6 && b[54] === 136);

test('the captures hold the frames this test needs', () => {
  // v2: 10 (2 VIPs x 5), v2auth 5, v3 5, v3uni 5; v3v6: 5 NAs
  assert.equal(garps.length, 25, 'gratuitous ARPs in the captures');
  assert.equal(nas.length, 5, 'neighbour advertisements in the captures');
});

test('gratuitous ARP: identical to every one keepalived sent', () => {
  for (const { name, bytes } of garps) {
    const mac = formatMac(bytes.subarray(6, 12));
    const address = formatIp(bytes.subarray(28, 32));
    const built = gratuitousArp(mac, address);
    assert.equal(built.length, GARP_FRAME_LENGTH);
    assertFrameEqual(built, bytes, `${name}: gratuitous ARP for ${address} at ${mac}`);
  }
});

test('unsolicited neighbour advertisement: identical to every one keepalived sent', () => {
  for (const { name, bytes } of nas) {
    const mac = formatMac(bytes.subarray(6, 12));
    const target = formatIp(bytes.subarray(62, 78));
    const built = unsolicitedNa(mac, target);
    assert.equal(built.length, NA_FRAME_LENGTH);
    assertFrameEqual(built, bytes, `${name}: NA for ${target} at ${mac}`);
  }
});

test('neighbour advertisement with the router flag: as the independent builder makes it', () => {
  const mac = '02:00:00:00:0a:01';
  const target = 'fd00:18::100';
  // ICMPv6 body after the first 8 bytes: target address, option 2 (length 1) with the MAC
  const body = Buffer.concat([Buffer.from('fd000018000000000000000000000100', 'hex'), Buffer.from('0201020000000a01', 'hex')]);
  const expected = packet(
    eth({ dst: '33:33:00:00:00:01', src: mac }),
    ipv6({ src: target, dst: 'ff02::1', hopLimit: 255 }),
    icmpv6({ type: 136, code: 0, rest: 0xa0000000 }), // router + override
    body,
  );
  const built = unsolicitedNa(mac, target, { router: true });
  assertFrameEqual(built, expected, 'NA with R and O');
  // and the checksum field holds the checksum of the rest (pseudo-header included)
  const icmp = Buffer.from(built.subarray(54));
  const sum = icmp.readUInt16BE(2);
  icmp.writeUInt16BE(0, 2);
  assert.equal(transportChecksum(target, 'ff02::1', IPPROTO.ICMPV6, icmp), sum);
});

test('bad input: an error naming the function and the value', () => {
  assert.throws(() => gratuitousArp('02:00:00:00:0a', '198.18.0.100'), /gratuitousArp: '02:00:00:00:0a' is not a MAC address/);
  assert.throws(() => gratuitousArp('02:00:00:00:0a:01', 'fd00::100'), /gratuitousArp: 'fd00::100' is not an IPv4 address/);
  assert.throws(() => gratuitousArp('02:00:00:00:0a:01', '198.18.0.256'), /is not an IPv4 address/);
  assert.throws(() => unsolicitedNa('zz:00:00:00:0a:01', 'fd00::100'), /unsolicitedNa: 'zz:00:00:00:0a:01' is not a MAC address/);
  assert.throws(() => unsolicitedNa('02:00:00:00:0a:01', '198.18.0.100'), /unsolicitedNa: '198.18.0.100' is not an IPv6 address/);
});
