/**
 * The packets/s scenario's checks (scripts/bench/pps-systems.ts): what the sink must receive
 * from each system, on frames built here with the independent packet builder as each system
 * would deliver them, and the ways a wrong path is caught; the nftables ruleset.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encap4, eth, ipv4, packet, udp, withMacs } from '../lib/packets.ts';
import {
  checkSinkFrame, checkSinkSamples, clientAddresses, nftDnatRuleset, PPS_ADDR, PPS_SYSTEMS, REALS, VIPS, type PpsSystem,
} from '../../scripts/bench/pps-systems.ts';

const sys = (name: string): PpsSystem => {
  const s = PPS_SYSTEMS.find((x) => x.name === name);
  assert.ok(s, `no system ${name}`);
  return s;
};
const FLOWS = 10000;

/** The client's frame as it reaches the LB (source and port of flow k, as the generator numbers them). */
function clientFrame(k: number, dst: string, opts: { src?: string; dstIp?: string; ttl?: number; smac?: string; dmac?: string } = {}): Buffer {
  const src = opts.src ?? `198.18.100.${1 + Math.floor(k / PPS_ADDR.sportSpan)}`;
  return packet(
    eth({ dst: opts.dmac ?? PPS_ADDR.lbIn.mac, src: opts.smac ?? PPS_ADDR.gen.mac }),
    ipv4({ src, dst: opts.dstIp ?? dst, ttl: opts.ttl ?? 64 }),
    udp({ sport: PPS_ADDR.sport + (k % PPS_ADDR.sportSpan), dport: PPS_ADDR.dport }),
    Buffer.alloc(18),
  );
}

const real = (k: number) => REALS[k % REALS.length]!;

/** What each system delivers for flow k sent to real(k). */
const delivered: Record<string, (k: number) => Buffer> = {
  'xlb-dr': (k) => withMacs(clientFrame(k, VIPS.dr), real(k).mac, PPS_ADDR.lbOut.mac),
  'xlb-tun': (k) => withMacs(encap4(clientFrame(k, VIPS.tun), { outerSrc: `198.18.4.${k & 0xff}`, outerDst: real(k).address, ttl: 64 }),
    real(k).mac, PPS_ADDR.lbOut.mac),
  'xlb-nat': (k) => clientFrame(k, VIPS.nat, { dstIp: real(k).address, dmac: real(k).mac, smac: PPS_ADDR.lbOut.mac }),
  'xlb-fullnat': (k) => clientFrame(k, VIPS.fullnat, { src: PPS_ADDR.fullnatSrc4, dstIp: real(k).address, dmac: real(k).mac, smac: PPS_ADDR.lbOut.mac }),
  'nftables-dnat': (k) => clientFrame(k, VIPS.dr, { dstIp: real(k).address, ttl: 63, dmac: real(k).mac, smac: PPS_ADDR.lbOut.mac }),
  'xdp-redirect-floor': (k) => withMacs(clientFrame(k, VIPS.dr), REALS[0]!.mac, PPS_ADDR.lbOut.mac),
};

test('every system has its delivered frame accepted, with the real it went to', () => {
  assert.deepEqual(PPS_SYSTEMS.map((s) => s.name), Object.keys(delivered));
  for (const s of PPS_SYSTEMS) {
    for (const k of [0, 1, 1001, 9999]) {
      const r = checkSinkFrame(s, delivered[s.name]!(k), FLOWS);
      assert.deepEqual(r, { real: s.program === 'floor' ? null : real(k).address }, `${s.name}, flow ${k}`);
    }
    const samples = Array.from({ length: 32 }, (_, k) => delivered[s.name]!(k));
    assert.equal(checkSinkSamples(s, samples, FLOWS), null, s.name);
  }
});

test('a frame of the wrong path is caught, saying what is wrong', () => {
  const wrong = (name: string, frame: Buffer, re: RegExp) => {
    const r = checkSinkFrame(sys(name), frame, FLOWS);
    assert.ok('error' in r, `${name}: accepted ${frame.toString('hex')}`);
    assert.match(r.error, re);
  };
  // DR: MAC not a real's; TUN: not encapsulated (a DR frame), outer source outside the tunnel range
  wrong('xlb-dr', withMacs(clientFrame(0, VIPS.dr), '02:00:5e:20:00:99', PPS_ADDR.lbOut.mac), /destination MAC 02:00:5e:20:00:99 is not a real's/);
  wrong('xlb-dr', clientFrame(0, VIPS.dr), /source MAC 02:00:5e:10:00:01, expected the LB's egress/);
  wrong('xlb-tun', delivered['xlb-dr']!(0), /outer protocol 17, expected 4/);
  wrong('xlb-tun', withMacs(encap4(clientFrame(0, VIPS.tun), { outerSrc: '198.18.5.1', outerDst: real(0).address, ttl: 64 }), real(0).mac, PPS_ADDR.lbOut.mac),
    /outer source 198\.18\.5\.1 is not in 198\.18\.4\.0\/24/);
  wrong('xlb-tun', withMacs(encap4(clientFrame(0, VIPS.tun), { outerSrc: '198.18.4.1', outerDst: real(1).address, ttl: 64 }), real(0).mac, PPS_ADDR.lbOut.mac),
    /destination MAC 02:00:5e:20:00:11 is not 198\.18\.2\.12's/);
  // nftables: not forwarded by the kernel (TTL untouched), or not translated
  wrong('nftables-dnat', clientFrame(0, VIPS.dr, { dstIp: real(0).address, dmac: real(0).mac, smac: PPS_ADDR.lbOut.mac }), /ttl 64/);
  wrong('nftables-dnat', withMacs(clientFrame(0, VIPS.dr, { ttl: 63 }), real(0).mac, PPS_ADDR.lbOut.mac), /destination 198\.19\.0\.10 is not one of the reals/);
  // full-NAT: the client's source kept
  wrong('xlb-fullnat', delivered['xlb-nat']!(0), /source 198\.18\.100\.1, expected the full-NAT address/);
  wrong('xlb-nat', clientFrame(0, VIPS.nat, { src: '198.18.200.1', dstIp: real(0).address, dmac: real(0).mac, smac: PPS_ADDR.lbOut.mac }),
    /source 198\.18\.200\.1 is not a client's/);
  // the floor must not touch the IP header
  wrong('xdp-redirect-floor', withMacs(clientFrame(0, VIPS.dr, { ttl: 63 }), REALS[0]!.mac, PPS_ADDR.lbOut.mac), /IP header changed/);
  // not IPv4 at all
  const arp = Buffer.from(delivered['xlb-dr']!(0));
  arp.writeUInt16BE(0x0806, 12);
  wrong('xlb-dr', arp, /not an IPv4 frame \(ethertype 0x806\)/);
});

test('samples: none at all, or all on one real, is a wrong path; the floor is not expected to balance', () => {
  assert.match(checkSinkSamples(sys('xlb-dr'), [], FLOWS) ?? '', /the sink sampled no frame/);
  const oneReal = Array.from({ length: 32 }, (_, k) => withMacs(clientFrame(k, VIPS.dr), REALS[3]!.mac, PPS_ADDR.lbOut.mac));
  assert.match(checkSinkSamples(sys('xlb-dr'), oneReal, FLOWS) ?? '', /32 sampled frames all went to 198\.18\.2\.14: not balanced/);
  const floor = Array.from({ length: 32 }, (_, k) => delivered['xdp-redirect-floor']!(k));
  assert.equal(checkSinkSamples(sys('xdp-redirect-floor'), floor, FLOWS), null);
  const mixed = [...Array.from({ length: 20 }, (_, k) => delivered['xlb-dr']!(k)), delivered['xlb-tun']!(0)];
  assert.match(checkSinkSamples(sys('xlb-dr'), mixed, FLOWS) ?? '', /^xlb-dr: not UDP: proto 4 \(frame [0-9a-f]+\)$/);
});

test('client addresses: one per span of source ports', () => {
  assert.deepEqual([...clientAddresses(10000)], Array.from({ length: 10 }, (_, k) => `198.18.100.${k + 1}`));
  assert.deepEqual([...clientAddresses(1)], ['198.18.100.1']);
  assert.equal(clientAddresses(1001).size, 2);
});

test('nftables ruleset: DNAT in the nat prerouting hook, jhash of the client address and port over every real, UDP or TCP', () => {
  const r = nftDnatRuleset(VIPS.dr, 9, 'udp', REALS);
  assert.match(r, /type nat hook prerouting priority dstnat; policy accept;/);
  assert.match(r, /ip daddr 198\.19\.0\.10 udp dport 9 dnat to jhash ip saddr \. udp sport mod 8 map \{ 0 : 198\.18\.2\.11, 1 : 198\.18\.2\.12,/);
  assert.match(r, /7 : 198\.18\.2\.18 \}/);
  assert.match(nftDnatRuleset('198.18.0.100', 80, 'tcp', REALS.slice(0, 2)),
    /ip daddr 198\.18\.0\.100 tcp dport 80 dnat to jhash ip saddr \. tcp sport mod 2 map \{ 0 : 198\.18\.2\.11, 1 : 198\.18\.2\.12 \}/);
  assert.throws(() => nftDnatRuleset(VIPS.dr, 9, 'udp', []), /no reals/);
});
