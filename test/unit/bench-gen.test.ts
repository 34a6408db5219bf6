/**
 * The traffic generator's pure parts (scripts/bench/gen-config.ts, gen-traffic.ts, gen-cli.ts):
 * the template and the layout of struct gen_cfg / gen_sample, the traffic spec and its frames,
 * pacing, and the CLI's options. Frames are checked against bytes computed here (offsets,
 * lengths, RFC 1071 checksums over the pseudo-header), not against the generator.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { internetChecksum, parseFrame, pseudoHeader } from '../lib/packets.ts';
import {
  decodeSample, describeTemplate, encodeGenConfig, GEN_CFG_SIZE, GEN_FRAME_MAX, GEN_SAMPLE_SIZE,
} from '../../scripts/bench/gen-config.ts';
import {
  checkTraffic, flowOf, frameOf, headerLength, nextChunk, paceStep, templateOf, type TrafficSpec,
} from '../../scripts/bench/gen-traffic.ts';
import { parseGenArgs } from '../../scripts/bench/gen-cli.ts';

const SPEC4: TrafficSpec = {
  srcMac: '02:00:5e:10:00:01', dstMac: '02:00:5e:10:00:02', src: '198.18.100.1', dst: '198.19.0.10',
  proto: 'udp', sport: 10000, dport: 9, flows: 10000, sportSpan: 1000, size: 64,
};
const SPEC6: TrafficSpec = { ...SPEC4, src: 'fd00:1::1', dst: 'fd00::10', proto: 'tcp', size: 128, flows: 300, sportSpan: 100 };

/** The transport checksum over the pseudo-header and the segment, computed here: 0 when it is right. */
function l4Residue(frame: Buffer): number {
  const v6 = frame.readUInt16BE(12) === 0x86dd;
  const l3 = 14;
  const l4 = v6 ? l3 + 40 : l3 + (frame[l3]! & 0xf) * 4;
  const src = frame.subarray(l3 + (v6 ? 8 : 12), l3 + (v6 ? 24 : 16));
  const dst = frame.subarray(l3 + (v6 ? 24 : 16), l3 + (v6 ? 40 : 20));
  const seg = frame.subarray(l4);
  return internetChecksum(pseudoHeader(src, dst, frame[l3 + (v6 ? 6 : 9)]!, seg.length), seg);
}

// ---------------------------------------------------------------- frames

test('size counts the FCS: 64 writes 60 bytes (IPv4/UDP headers 42 + 18 zero bytes), 1518 writes 1514', () => {
  const f = frameOf(SPEC4);
  assert.equal(f.length, 60);
  assert.equal(headerLength(4, 'udp'), 42);
  assert.ok(f.subarray(42).equals(Buffer.alloc(18)), 'the payload is zero-filled');
  assert.equal(f.readUInt16BE(14 + 2), 46, 'IPv4 total length');
  assert.equal(f.readUInt16BE(34 + 4), 26, 'UDP length');
  const big = frameOf({ ...SPEC4, size: 1518 });
  assert.equal(big.length, 1514);
  assert.equal(big.readUInt16BE(14 + 2), 1500);
  assert.equal(internetChecksum(big.subarray(14, 34)), 0, 'IPv4 header checksum');
  assert.equal(l4Residue(big), 0, 'UDP checksum over 1,472 payload bytes');
});

test('flow i: source port sport + i % span, the source address advanced by floor(i / span), checksums right', () => {
  assert.deepEqual(flowOf(SPEC4, 0), { src: '198.18.100.1', sport: 10000 });
  assert.deepEqual(flowOf(SPEC4, 999), { src: '198.18.100.1', sport: 10999 });
  assert.deepEqual(flowOf(SPEC4, 1000), { src: '198.18.100.2', sport: 10000 });
  assert.deepEqual(flowOf(SPEC4, 10000), flowOf(SPEC4, 0), 'flows wrap at `flows`');
  assert.deepEqual(flowOf(SPEC6, 250), { src: 'fd00:1::3', sport: 10050 });
  for (const [spec, i] of [[SPEC4, 0], [SPEC4, 1234], [SPEC6, 0], [SPEC6, 299]] as const) {
    const f = frameOf(spec, i);
    const p = parseFrame(f);
    assert.equal(p.ip?.src, flowOf(spec, i).src);
    assert.equal(p.ip?.sport, flowOf(spec, i).sport);
    assert.equal(p.ip?.dst, spec.dst);
    assert.equal(p.ip?.dport, spec.dport);
    assert.equal(l4Residue(f), 0, `L4 checksum of flow ${i}`);
  }
  // TCP: an ACK segment (flags byte 0x10)
  assert.equal(parseFrame(frameOf(SPEC6)).ip?.tcpFlags, 0x10);
});

test('checkTraffic names what is wrong', () => {
  const bad = (s: Partial<TrafficSpec>, re: RegExp) => assert.throws(() => checkTraffic({ ...SPEC4, ...s }), re);
  bad({ dstMac: '02:00:5e:10:00' }, /dstMac '02:00:5e:10:00' is not a MAC/);
  bad({ dst: 'fd00::1' }, /src 198\.18\.100\.1 is IPv4 but dst fd00::1 is IPv6/);
  bad({ src: '198.18.1' }, /'198\.18\.1' is not an IPv4 or IPv6 address/);
  bad({ size: 63 }, /size 63 is not in 64\.\.1518 .*incl\. the FCS/);
  bad({ size: 1519 }, /size 1519 is not in 64\.\.1518/);
  bad({ src: 'fd00:1::1', dst: 'fd00::1', size: 64 }, /size 64 is not in 66\.\.1518 .*IPv6\/UDP headers take 62 bytes/);
  bad({ sport: 65000, sportSpan: 1000 }, /source ports would go beyond 65535/);
  bad({ flows: 0 }, /flows 0 is not in 1\.\.2\^32-1/);
  bad({ dport: 0 }, /dport 0 is not a port/);
  bad({ flows: 65537 * 2, sportSpan: 1 }, /need more than 65536 source addresses/);
  assert.doesNotThrow(() => checkTraffic({ ...SPEC4, sportSpan: undefined }));
});

// ---------------------------------------------------------------- template and layouts

test('describeTemplate: offsets for IPv4/UDP and IPv6/TCP; a frame longer than the template keeps its bytes for the test run', () => {
  const t4 = templateOf(SPEC4);
  assert.deepEqual({ ...t4, frameHex: undefined }, {
    frameHex: undefined, len: 60, nflows: 10000, sportOff: 34, saddrOff: 28, l4csumOff: 40, ipcsumOff: 24,
    sportBase: 10000, sportSpan: 1000, saddrBase: 0x6401, udp: true,
  });
  const t6 = templateOf(SPEC6);
  assert.equal(t6.len, 124, 'a 128-byte frame size: 124 bytes, all of them template');
  assert.deepEqual([t6.sportOff, t6.saddrOff, t6.l4csumOff, t6.ipcsumOff, t6.udp, t6.saddrBase], [54, 36, 70, 0, false, 1]);
  const big = templateOf({ ...SPEC4, size: 1518 });
  assert.equal(big.len, GEN_FRAME_MAX);
  assert.equal(big.frameHex.length / 2, 1514, 'the whole frame goes to the test run');
});

test('describeTemplate: a UDP checksum of 0 (none) is left alone; bad frames are refused with the reason', () => {
  const f = frameOf(SPEC4);
  f.writeUInt16BE(0, 40);
  assert.equal(describeTemplate(f, 1, 1).l4csumOff, 0);
  assert.throws(() => describeTemplate(Buffer.alloc(1515), 1, 1), /a frame of 1515 bytes is not in 8\.\.1514/);
  const arp = Buffer.from(frameOf(SPEC4));
  arp.writeUInt16BE(0x0806, 12);
  assert.throws(() => describeTemplate(arp, 1, 1), /EtherType 0x806 is not IPv4 or IPv6/);
  const opts = Buffer.from(frameOf(SPEC4));
  opts[14] = 0x46;
  assert.throws(() => describeTemplate(opts, 1, 1), /IPv4 with options is not supported/);
  assert.throws(() => describeTemplate(frameOf(SPEC4), 1, 0), /sportSpan 0 is not in 1\.\.65535/);
  assert.throws(() => describeTemplate(frameOf({ ...SPEC4, sport: 65000, sportSpan: 536 }), 600, 600), /source ports 65000\.\.65599 go beyond 65535/);
});

test('encodeGenConfig: struct gen_cfg, little-endian, the template bytes then the fields at their offsets', () => {
  const t = templateOf({ ...SPEC4, size: 200 });
  const b = encodeGenConfig(t, 7, 1000);
  assert.equal(b.length, GEN_CFG_SIZE);
  assert.ok(b.subarray(0, 128).equals(Buffer.from(t.frameHex, 'hex').subarray(0, 128)));
  const u16 = (o: number) => b.readUInt16LE(o);
  assert.deepEqual([b.readUInt32LE(128), b.readUInt32LE(132), b.readUInt32LE(136)], [128, 7, 10000]);
  assert.deepEqual([u16(140), u16(142), u16(144), u16(146), u16(148), u16(150), u16(152), u16(154)], [34, 28, 40, 24, 10000, 1000, 0x6401, 1]);
  assert.equal(b.readUInt32LE(156), 1000, 'gap_ns');
  assert.equal(encodeGenConfig(t, 7).readUInt32LE(156), 0, 'full speed by default');
  assert.throws(() => encodeGenConfig(t, 7, -1), /gapNs -1 is not in 0\.\.2\^32-1/);
});

test('decodeSample: struct gen_sample; an empty slot is null; the copy is at most 128 bytes', () => {
  const v = Buffer.alloc(GEN_SAMPLE_SIZE);
  assert.equal(decodeSample(v), null);
  v.writeUInt32LE(60, 0);
  v.fill(0xab, 8, 8 + 60);
  assert.deepEqual(decodeSample(v), { len: 60, data: Buffer.alloc(60, 0xab) });
  v.writeUInt32LE(1514, 0);
  assert.equal(decodeSample(v)?.data.length, 128);
  assert.throws(() => decodeSample(Buffer.alloc(10)), /a gen_sample is 136 bytes, got 10/);
});

// ---------------------------------------------------------------- pacing

test('paceStep at full speed: chunks until the frames or the time are used up', () => {
  assert.deepEqual(paceStep({ rate: 0, frames: 10, chunkMax: 4 }, 0, 0), { done: false, frames: 4, waitNs: 0 });
  assert.deepEqual(paceStep({ rate: 0, frames: 10, chunkMax: 4 }, 0, 8), { done: false, frames: 2, waitNs: 0 });
  assert.deepEqual(paceStep({ rate: 0, frames: 10, chunkMax: 4 }, 0, 10), { done: true });
  assert.deepEqual(paceStep({ rate: 0, durationNs: 1e9, chunkMax: 4 }, 0.5e9, 1e6), { done: false, frames: 4, waitNs: 0 });
  assert.deepEqual(paceStep({ rate: 0, durationNs: 1e9, chunkMax: 4 }, 1e9, 1e6), { done: true });
});

test('paceStep with a rate: what is due now, else the wait for the next frame; the average holds with a simulated clock', () => {
  const o = { rate: 100, durationNs: 1e9, chunkMax: 50 };
  assert.deepEqual(paceStep(o, 0, 0), { done: false, frames: 1, waitNs: 0 });
  assert.deepEqual(paceStep(o, 0, 1), { done: false, frames: 0, waitNs: 10e6 }, 'the next frame is due at 10 ms');
  assert.deepEqual(paceStep(o, 500e6, 1), { done: false, frames: 50, waitNs: 0 }, 'late: catch up, in chunks of chunkMax');
  assert.deepEqual(paceStep(o, 995e6, 100), { done: false, frames: 0, waitNs: 5e6 }, 'never waits past the end');
  // a run with a clock that advances by what it is told to wait, plus 5 ms per call
  let now = 0;
  let sent = 0;
  let calls = 0;
  for (;;) {
    const s = paceStep({ rate: 1000, durationNs: 2e9, chunkMax: 100 }, now, sent);
    if (s.done) break;
    if (s.frames) { sent += s.frames; now += 5e6; calls++; } else now += s.waitNs;
  }
  assert.ok(sent >= 1995 && sent <= 2001, `sent ${sent} frames in 2 s at 1000/s (a call takes 5 ms: 5 frames)`);
  assert.ok(calls < sent, 'frames due together go in one call');
});

test('nextChunk: ~target of frames at the rate seen, within bounds', () => {
  assert.equal(nextChunk(1e6, 250e6, 1024, 1 << 20), 250000);
  assert.equal(nextChunk(1e9, 250e6, 1024, 1 << 20), 1 << 20);
  assert.equal(nextChunk(100, 250e6, 1024, 1 << 20), 1024);
  assert.equal(nextChunk(0, 250e6, 1024, 1 << 20), 1024);
});

// ---------------------------------------------------------------- the CLI's options

test('gen CLI: defaults, --ns dropped from the command run inside the namespace', () => {
  const r = parseGenArgs(['--ns', 'x-gen', '--dev', 'gen0', '--dst-mac', '02:00:5E:10:00:02', '--src', '198.18.100.1', '--dst', '198.19.0.10']);
  assert.equal(r.help, false);
  if (r.help) return;
  assert.equal(r.options.ns, 'x-gen');
  assert.deepEqual(r.rest, ['--dev', 'gen0', '--dst-mac', '02:00:5E:10:00:02', '--src', '198.18.100.1', '--dst', '198.19.0.10']);
  assert.equal(r.options.traffic.dstMac, '02:00:5e:10:00:02');
  assert.deepEqual([r.options.traffic.size, r.options.traffic.flows, r.options.traffic.proto, r.options.traffic.sport, r.options.traffic.dport],
    [64, 10000, 'udp', 10000, 9]);
  assert.deepEqual([r.options.rate, r.options.durationMs, r.options.frames, r.options.batchSize, r.options.srcMac], [0, 5000, undefined, 64, undefined]);
  const f = parseGenArgs(['--dev', 'g', '--dst-mac', '02:00:00:00:00:01', '--src', 'fd00:1::1', '--dst', 'fd00::1', '--frames', '100',
    '--size', '1518', '--rate', '250000', '--proto', 'tcp']);
  assert.ok(!f.help && f.options.frames === 100 && f.options.durationMs === undefined && f.options.rate === 250000);
  assert.deepEqual(parseGenArgs(['--help']), { help: true });
});

test('gen CLI: each bad option gets an error naming it', () => {
  const base = ['--dev', 'g', '--dst-mac', '02:00:00:00:00:01', '--src', '198.18.100.1', '--dst', '198.19.0.10'];
  const bad = (extra: string[], re: RegExp, args = base) => assert.throws(() => parseGenArgs([...args, ...extra]), re);
  bad([], /--dst-mac is required/, ['--dev', 'g', '--src', '198.18.100.1', '--dst', '198.19.0.10']);
  bad(['--size', '60'], /--size 60: expected an integer in 64\.\.1518/);
  bad(['--rate=-1'], /--rate -1: expected an integer in 0\.\.1000000000/);
  bad(['--duration', '1', '--frames', '5'], /give --duration or --frames, not both/);
  bad(['--proto', 'sctp'], /--proto sctp: expected udp or tcp/);
  bad(['--batch', '300'], /--batch 300: expected an integer in 1\.\.256/);
  bad(['--dst-mac', 'nope'], /dstMac 'nope' is not a MAC/, ['--dev', 'g', '--src', '198.18.100.1', '--dst', '198.19.0.10']);
  bad(['--flows', 'many'], /--flows many: expected an integer/);
  bad(['--bogus'], /Unknown option '--bogus'/);
});
