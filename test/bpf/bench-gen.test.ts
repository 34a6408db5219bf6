/**
 * The benchmarks' BPF programs (bpf/xlb_gen.bpf.c) through BPF_PROG_TEST_RUN, without live
 * frames (nothing is sent anywhere): the generator writes exactly the independent packet
 * builder's frame of each flow, for IPv4/UDP, IPv6/TCP and frames longer than its template,
 * over frames a previous run left dirty; pacing spaces its runs; the sink counts and drops IP,
 * passes ARP and neighbour discovery and copies sampled frames; the floor rewrites the MACs
 * and redirects.
 *
 * Needs root and a build (`make all`); without them every test fails and says so.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ADDON_PATH, bpfObjectPath, openObject, xdpTestContext, XDP_DROP, XDP_PASS, XDP_REDIRECT, type BpfObject,
} from '../../src/datapath/bpf/index.ts';
import { assertFrameEqual, eth, icmpv6, ipv6, packet, withMacs } from '../lib/packets.ts';
import { requireFile, requireRoot } from '../lib/require.ts';
import { decodeSample, encodeGenConfig, GEN_ST, type GenTemplate } from '../../scripts/bench/gen-config.ts';
import { frameOf, templateOf, type TrafficSpec } from '../../scripts/bench/gen-traffic.ts';

const GEN_OBJECT = bpfObjectPath('xlb_gen');
const LO = 1; // the test runs' ingress: never transmitted on (no live frames)

const objects: BpfObject[] = [];
function load(setup?: (o: BpfObject) => void): BpfObject {
  requireRoot();
  requireFile(GEN_OBJECT, 'make all');
  requireFile(ADDON_PATH, 'make all');
  const o = openObject(GEN_OBJECT);
  objects.push(o);
  setup?.(o);
  o.load();
  return o;
}
after(() => { for (const o of objects) o.close(); });

const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const perCpu = (o: BpfObject, slot: number) => o.map('gen_stats').lookupPerCpu(u32(slot)).map((v) => v.readBigUInt64LE(0));
const stat = (o: BpfObject, slot: number) => perCpu(o, slot).reduce((s, v) => s + v, 0n);
/** setSlot writes every CPU; a test run runs on one: the value of the CPU that moved */
const moved = (o: BpfObject, slot: number, from: bigint) => perCpu(o, slot).find((v) => v !== from);
function setSlot(o: BpfObject, slot: number, value: number): void {
  const m = o.map('gen_stats');
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(value));
  m.updatePerCpu(u32(slot), Array.from({ length: m.valuesPerKey() }, () => b));
}

function generate(o: BpfObject, t: GenTemplate, data: Buffer, gapNs = 0): { verdict: number; frame: Buffer } {
  o.map('gen_config').update(u32(0), encodeGenConfig(t, LO, gapNs));
  const r = o.program('xlb_gen').testRun({ data, ctx: xdpTestContext(data.length, LO), repeat: 1 });
  return { verdict: r.retval, frame: r.data };
}

const SPEC4: TrafficSpec = {
  srcMac: '02:00:5e:10:00:01', dstMac: '02:00:5e:10:00:02', src: '198.18.100.1', dst: '198.19.0.10',
  proto: 'udp', sport: 10000, dport: 9, flows: 10000, sportSpan: 1000, size: 64,
};

test('generator: flow i is the packet builder\'s frame of flow i, whatever the previous run left in the buffer', () => {
  const o = load();
  for (const spec of [
    SPEC4,
    { ...SPEC4, src: 'fd00:1::ff', dst: 'fd00::10', proto: 'tcp' as const, size: 90, flows: 50, sportSpan: 7 },
    { ...SPEC4, size: 1518, flows: 3000 },
  ]) {
    const t = templateOf(spec);
    // a buffer as a balancer would leave it: MACs and the first header bytes overwritten
    const dirty = Buffer.from(t.frameHex, 'hex');
    dirty.fill(0xee, 0, Math.min(dirty.length, 100));
    for (const i of [0, 1, 2, spec.sportSpan! - 1, spec.sportSpan!, spec.sportSpan! + 1, spec.flows - 1, spec.flows]) {
      setSlot(o, GEN_ST.generated, i);
      const r = generate(o, t, dirty);
      assert.equal(r.verdict, XDP_REDIRECT, `flow ${i}: verdict`);
      assertFrameEqual(r.frame, frameOf(spec, i), `${spec.src} ${spec.proto} size ${spec.size}, flow ${i}`);
    }
    assert.equal(moved(o, GEN_ST.generated, BigInt(spec.flows)), BigInt(spec.flows + 1), 'the sequence counts the frames');
  }
});

test('generator: a UDP frame sent without checksum (0) keeps it 0', () => {
  const o = load();
  const f = frameOf(SPEC4, 0);
  f.writeUInt16BE(0, 40);
  const t = { ...templateOf(SPEC4), frameHex: f.toString('hex'), l4csumOff: 0 };
  setSlot(o, GEN_ST.generated, 5);
  const r = generate(o, t, f);
  assert.equal(r.frame.readUInt16BE(40), 0);
  const want = frameOf(SPEC4, 5);
  want.writeUInt16BE(0, 40);
  assertFrameEqual(r.frame, want);
});

test('generator: with gap_ns each run waits for its due time (the first goes at once); without, no wait', () => {
  const o = load();
  const t = templateOf(SPEC4);
  const data = Buffer.from(t.frameHex, 'hex');
  const runs = 50;
  const gap = 200_000; // 200 µs
  o.map('gen_config').update(u32(0), encodeGenConfig(t, LO, gap));
  setSlot(o, GEN_ST.nextNs, 0);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) {
    assert.equal(o.program('xlb_gen').testRun({ data, ctx: xdpTestContext(data.length, LO), repeat: 1 }).retval, XDP_REDIRECT);
  }
  const paced = Number(process.hrtime.bigint() - t0);
  assert.ok(paced >= (runs - 1) * gap * 0.98, `${runs} paced runs took ${(paced / 1e6).toFixed(2)} ms, at least ${((runs - 1) * gap) / 1e6} ms expected`);
  assert.ok(stat(o, GEN_ST.nextNs) > 0n, 'the schedule is kept per CPU in gen_stats');
  // without pacing the program does not wait: far below one gap per run
  o.map('gen_config').update(u32(0), encodeGenConfig(t, LO, 0));
  const r = o.program('xlb_gen').testRun({ data, ctx: xdpTestContext(data.length, LO), repeat: runs });
  assert.ok(r.duration < gap / 4, `an unpaced run took ${r.duration} ns`);
});

test('generator: clock marks at the first frame after a reset and at every 64th, with their sequence numbers', () => {
  const o = load();
  const t = templateOf(SPEC4);
  const data = Buffer.from(t.frameHex, 'hex');
  o.map('gen_config').update(u32(0), encodeGenConfig(t, LO));
  setSlot(o, GEN_ST.generated, 100);
  setSlot(o, GEN_ST.t0Ns, 0);
  const before = process.hrtime.bigint();
  o.program('xlb_gen').testRun({ data, ctx: xdpTestContext(data.length, LO), repeat: 200 });
  const after = process.hrtime.bigint();
  const mark = (slot: number) => perCpu(o, slot).find((_, cpu) => perCpu(o, GEN_ST.t0Ns)[cpu]! > 0n);
  assert.equal(mark(GEN_ST.t0Seq), 100n, 'T0 at the first frame: sequence 100');
  assert.equal(mark(GEN_ST.t1Seq), 256n, 'T1 at the last multiple of 64 before 300');
  // both clocks are CLOCK_MONOTONIC
  assert.ok(before <= mark(GEN_ST.t0Ns)! && mark(GEN_ST.t0Ns)! <= mark(GEN_ST.t1Ns)! && mark(GEN_ST.t1Ns)! <= after,
    `before ${before} <= T0 ${mark(GEN_ST.t0Ns)} <= T1 ${mark(GEN_ST.t1Ns)} <= after ${after}`);
});

test('sink: IP is counted and dropped; ARP and neighbour discovery pass, counted apart', () => {
  const o = load();
  const sink = o.program('xlb_sink');
  const run = (f: Buffer) => sink.testRun({ data: f }).retval;
  const ip4 = frameOf(SPEC4, 0);
  const ip6 = frameOf({ ...SPEC4, src: 'fd00:1::1', dst: 'fd00::1', size: 70 }, 0);
  const arp = Buffer.concat([Buffer.from('ffffffffffff02005e1000010806', 'hex'), Buffer.alloc(28)]);
  const ns = packet(eth({ dst: '33:33:ff:00:00:01', src: '02:00:5e:10:00:01' }),
    ipv6({ src: 'fd00::2', dst: 'ff02::1:ff00:1', hopLimit: 255 }), icmpv6({ type: 135, code: 0 }), Buffer.alloc(20));
  const echo = packet(eth({ dst: '02:00:5e:10:00:02', src: '02:00:5e:10:00:01' }),
    ipv6({ src: 'fd00::2', dst: 'fd00::1' }), icmpv6({ type: 128, code: 0 }), Buffer.alloc(8));
  const s0 = stat(o, GEN_ST.sunk);
  const p0 = stat(o, GEN_ST.sinkPassed);
  assert.deepEqual([run(ip4), run(ip6), run(echo)], [XDP_DROP, XDP_DROP, XDP_DROP]);
  assert.deepEqual([run(arp), run(ns)], [XDP_PASS, XDP_PASS]);
  assert.equal(stat(o, GEN_ST.sunk) - s0, 3n);
  assert.equal(stat(o, GEN_ST.sinkPassed) - p0, 2n);
  // something too short for an Ethernet header is still counted and dropped
  assert.equal(run(Buffer.alloc(14)), XDP_DROP);
});

test('sink: with a sample budget it copies that many frames (length and first 128 bytes), then stops', () => {
  const o = load();
  const sink = o.program('xlb_sink');
  setSlot(o, GEN_ST.sampleLeft, 2);
  const frames = [frameOf(SPEC4, 0), frameOf({ ...SPEC4, size: 1518 }, 1), frameOf(SPEC4, 2)];
  for (const f of frames) sink.testRun({ data: f });
  const samples = [0, 1, 2].map((k) => o.map('sink_samples').lookupPerCpu(u32(k)).map(decodeSample).find((s) => s !== null) ?? null);
  // budget 2: the first frame went to slot 1, the second to slot 0; the third was not copied
  assert.deepEqual(samples[1], { len: 60, data: frames[0] });
  assert.deepEqual(samples[0], { len: 1514, data: frames[1]!.subarray(0, 128) });
  assert.equal(samples[2], null);
  assert.equal(moved(o, GEN_ST.sampleLeft, 2n), 0n, 'the budget is used up on the CPU that ran');
});

test('floor: the MACs set at load, then a redirect to the ifindex set at load; nothing else touched', () => {
  const dmac = Buffer.from('02005e200011', 'hex');
  const smac = Buffer.from('02005e100003', 'hex');
  const o = load((x) => x.setGlobals('.rodata', { floor_ifindex: LO, floor_dmac: dmac, floor_smac: smac }));
  const f = frameOf(SPEC4, 7);
  const r = o.program('xdp_redirect_floor').testRun({ data: f, ctx: xdpTestContext(f.length, LO) });
  assert.equal(r.retval, XDP_REDIRECT);
  assertFrameEqual(r.data, withMacs(f, '02:00:5e:20:00:11', '02:00:5e:10:00:03'));
});
