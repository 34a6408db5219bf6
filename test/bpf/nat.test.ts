/**
 * NAT and full-NAT in the XDP forwarder (bpf/xlb.bpf.c, bpf/lib/nat.h) through BPF_PROG_TEST_RUN,
 * programmed by src/datapath/xdp/forwarder.ts.
 *
 * Every expected packet is built from scratch by the independent builder (test/lib/packets.ts),
 * which computes lengths and checksums from the bytes: a wrong incremental checksum update fails
 * the byte comparison. Every run checks the verdict and the exact change of every global counter.
 *
 * The NAT state is reached through the maps themselves (XdpForwarder.load) to age entries (their
 * timestamps are CLOCK_MONOTONIC nanoseconds, which process.hrtime.bigint() reads) and to plant
 * entries of other flows (full-NAT port collisions).
 *
 * Needs root and a build (`make all`); without them every test fails and says so.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { ADDON_PATH, xdpVerdictName } from '../../src/datapath/bpf/index.ts';
import {
  COUNTER_NAMES, NAT_TIMEOUT_DEFAULTS, XdpForwarder, type CounterName, type ForwarderParts, type NatEntry, type RealSpec,
  type ServiceSpec,
} from '../../src/datapath/xdp/forwarder.ts';
import {
  XLB_NAT_F_FULL, XLB_NAT_PORT_MAX, XLB_NAT_PORT_MIN, XLB_NAT_PORT_TRIES, XlbConfig, XlbFlowKey, XlbNat, decode, encode,
} from '../../src/datapath/xdp/abi.ts';
import { addrBytes, macBytes, portField } from '../../src/datapath/xdp/net.ts';
import { XLB_OBJECT, requireFile, requireRoot } from '../lib/require.ts';
import { EGRESS_MAC, LB_MAC, PEER_MAC, TUN_CONFIG, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX } from './fixtures.ts';
import {
  assertFrameEqual, eth, icmpv4, icmpv6, ipv4, ipv6, l3Offset, packet, parseFrame, payload, tcp, udp, type Ipv6Ext, type Layer,
} from '../lib/packets.ts';

// ---------------------------------------------------------------- the network

const CLIENT4 = '198.18.20.1';
const CLIENT6 = 'fd00:18:20::1';
const LADDR4 = '198.18.254.1';   // full-NAT source addresses
const LADDR6 = 'fd00:18:254::1';
const CONFIG = { ...TUN_CONFIG, natSrc4: LADDR4, natSrc6: LADDR6 };

const real = (address: string, method: 'nat' | 'fullnat', port?: number, macLow = '99'): RealSpec =>
  ({ address, weight: 1, method, mac: `02:00:00:00:0a:${macLow}`, smac: EGRESS_MAC, ...(port === undefined ? {} : { port }) });

interface Svc { service: ServiceSpec; real: RealSpec }
const svc = (address: string, port: number, protocol: 'tcp' | 'udp', r: RealSpec, extra: Partial<ServiceSpec> = {}): Svc =>
  ({ service: { address, port, protocol, ...extra }, real: r });

// one real per service, so the expected real does not depend on the hash
const S = {
  nat4tcp: svc('198.18.30.1', 80, 'tcp', real('198.18.31.1', 'nat', 8080, '01')),
  nat4udp: svc('198.18.30.1', 53, 'udp', real('198.18.31.2', 'nat', 5353, '02')),
  nat6tcp: svc('fd00:18:30::1', 80, 'tcp', real('fd00:18:31::1', 'nat', 8080, '03')),
  nat6udp: svc('fd00:18:30::1', 53, 'udp', real('fd00:18:31::2', 'nat', 5353, '04')),
  full4tcp: svc('198.18.30.2', 80, 'tcp', real('198.18.31.3', 'fullnat', 8443, '05')),
  full4udp: svc('198.18.30.2', 53, 'udp', real('198.18.31.4', 'fullnat', 53, '06')),
  full6tcp: svc('fd00:18:30::2', 80, 'tcp', real('fd00:18:31::3', 'fullnat', 8443, '07')),
  full6udp: svc('fd00:18:30::2', 53, 'udp', real('fd00:18:31::4', 'fullnat', 5300, '08')),
  natAll: svc('198.18.30.3', 0, 'tcp', real('198.18.31.5', 'nat', undefined, '09')),      // port kept
  fullOps: svc('198.18.30.4', 53, 'udp', real('198.18.31.6', 'fullnat', 53, '0a'), { ops: true }),
  natOps: svc('198.18.30.4', 54, 'udp', real('198.18.31.7', 'nat', 54, '0b'), { ops: true }),
  natAllUdp: svc('198.18.30.3', 0, 'udp', real('198.18.31.8', 'nat', undefined, '0c')),
} satisfies Record<string, Svc>;

// ---------------------------------------------------------------- loading, once

let loading: Promise<{ fw: XdpForwarder; parts: ForwarderParts }> | undefined;

function forwarder(): Promise<{ fw: XdpForwarder; parts: ForwarderParts }> {
  loading ??= (async () => {
    requireRoot();
    requireFile(XLB_OBJECT, 'make all');
    requireFile(ADDON_PATH, 'make all');
    const parts = XdpForwarder.load({ natSize: 65536, ctSize: 65536 });
    const fw = new XdpForwarder(parts);
    fw.setConfig(CONFIG);
    for (const s of Object.values(S)) fw.setService(s.service, [s.real]);
    return { fw, parts };
  })();
  return loading;
}

after(async () => {
  const l = await loading?.catch(() => undefined);
  l?.fw.close();
});

/** A clean slate: no connection-table or NAT state, the test's configuration. */
async function fresh(): Promise<{ fw: XdpForwarder; parts: ForwarderParts }> {
  const l = await forwarder();
  l.fw.setConfig(CONFIG);
  l.fw.clearConntrack();
  l.fw.clearNat();
  return l;
}

function otherIfindex(): number {
  const found = readdirSync('/sys/class/net')
    .map((name) => Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8')))
    .filter((i) => i !== 1)
    .sort((a, b) => a - b)[0];
  if (found === undefined) throw new Error('no network interface other than lo: the redirect tests need one as the ingress of the test run');
  return found;
}

// ---------------------------------------------------------------- packets

interface Seg {
  dmac: string; smac: string; vlan?: number;
  src: string; dst: string; sport: number; dport: number;
  proto: 'tcp' | 'udp';
  flags?: string;            // TCP
  udpChecksum0?: boolean;    // UDP sent without a checksum
  ext?: Ipv6Ext[];
  ipOptions?: Buffer;
  data?: Buffer;
}

/** One frame, every length and checksum computed by the builder. The IP and transport fields that
 *  NAT must leave alone (id, TTL, tos, flow label, seq, ack, window) are fixed per direction. */
function frame(s: Seg, toClient = false): Buffer {
  const l2 = eth({ dst: s.dmac, src: s.smac, ...(s.vlan === undefined ? {} : { vlan: s.vlan }) });
  const l3: Layer = s.src.includes(':')
    ? ipv6({ src: s.src, dst: s.dst, hopLimit: toClient ? 61 : 63, trafficClass: 0x20, flowLabel: toClient ? 0x54321 : 0x12345, ...(s.ext ? { extHeaders: s.ext } : {}) })
    : ipv4({ src: s.src, dst: s.dst, ttl: toClient ? 61 : 63, tos: 0x20, id: toClient ? 0x4242 : 0x2424, df: s.proto === 'tcp', ...(s.ipOptions ? { options: s.ipOptions } : {}) });
  const flags = s.flags ?? 'PA';
  const l4 = s.proto === 'tcp'
    ? tcp({ sport: s.sport, dport: s.dport, flags, seq: toClient ? 0x7000 : 0x1000, ack: flags.includes('A') ? (toClient ? 0x1001 : 0x7001) : 0, window: 0x1234 })
    : udp({ sport: s.sport, dport: s.dport, ...(s.udpChecksum0 ? { checksum: 0 } : {}) });
  return packet(l2, l3, l4, s.data ?? (flags.includes('S') ? Buffer.alloc(0) : payload(40, toClient ? 0x80 : 0)));
}

interface FlowOpts { client?: string; cport?: number; vlan?: number; flags?: string; udpChecksum0?: boolean; ext?: Ipv6Ext[]; ipOptions?: Buffer; vport?: number }

const v6 = (s: Svc) => s.service.address.includes(':');
const clientOf = (s: Svc, o: FlowOpts) => o.client ?? (v6(s) ? CLIENT6 : CLIENT4);
const laddrOf = (s: Svc) => (v6(s) ? LADDR6 : LADDR4);
const rportOf = (s: Svc, o: FlowOpts) => s.real.port || (o.vport ?? s.service.port);
const common = (s: Svc, o: FlowOpts) => ({
  proto: s.service.protocol, ...(o.vlan === undefined ? {} : { vlan: o.vlan }), ...(o.udpChecksum0 ? { udpChecksum0: true } : {}),
  ...(o.ext ? { ext: o.ext } : {}), ...(o.ipOptions ? { ipOptions: o.ipOptions } : {}),
});

/** client → VIP, as it reaches the balancer */
function fromClient(s: Svc, o: FlowOpts = {}): Buffer {
  return frame({ dmac: LB_MAC, smac: PEER_MAC, src: clientOf(s, o), dst: s.service.address, sport: o.cport ?? 40000, dport: o.vport ?? s.service.port, flags: o.flags ?? 'PA', ...common(s, o) });
}

/** what the real must receive: NAT keeps the client's source; full-NAT uses lport from ours */
function toReal(s: Svc, o: FlowOpts = {}, lport?: number): Buffer {
  const full = s.real.method === 'fullnat';
  return frame({
    dmac: s.real.mac, smac: EGRESS_MAC, src: full ? laddrOf(s) : clientOf(s, o), dst: s.real.address,
    sport: full ? lport! : o.cport ?? 40000, dport: rportOf(s, o), flags: o.flags ?? 'PA', ...common(s, o),
  });
}

/** the real's answer, as it reaches the balancer (its gateway, or to our full-NAT address) */
function fromReal(s: Svc, o: FlowOpts = {}, lport?: number): Buffer {
  const full = s.real.method === 'fullnat';
  return frame({
    dmac: EGRESS_MAC, smac: s.real.mac, src: s.real.address, dst: full ? laddrOf(s) : clientOf(s, o),
    sport: rportOf(s, o), dport: full ? lport! : o.cport ?? 40000, flags: o.flags ?? 'A', ...common(s, o),
  }, true);
}

/** what the client must receive: from the VIP, to where its frames came from */
function toClient(s: Svc, o: FlowOpts = {}): Buffer {
  return frame({
    dmac: PEER_MAC, smac: LB_MAC, src: s.service.address, dst: clientOf(s, o),
    sport: o.vport ?? s.service.port, dport: o.cport ?? 40000, flags: o.flags ?? 'A', ...common(s, o),
  }, true);
}

/** The source port of a TCP/UDP frame (full-NAT: the one the program chose). */
function sourcePort(f: Buffer): number {
  const p = parseFrame(f).ip?.sport;
  assert.ok(p !== undefined, 'no source port in the output');
  return p;
}

// ---------------------------------------------------------------- running

type Deltas = Partial<Record<CounterName, bigint>>;

const show = (d: Deltas) => Object.entries(d).map(([k, v]) => `${k} +${v}`).join(', ') || 'none';

/**
 * Run one frame: the verdict, and every global counter's change exactly as `counters` says
 * (the others 0). `rx` is implied, and tx/redirect from the verdict. Returns the output.
 */
function run(fw: XdpForwarder, input: Buffer, verdict: number, counters: Deltas, ingressIfindex?: number): Buffer {
  const before = fw.counters();
  const r = fw.testRun(input, ingressIfindex === undefined ? {} : { ingressIfindex });
  const after = fw.counters();
  const got: Deltas = {};
  for (const n of COUNTER_NAMES) if (after[n] !== before[n]) got[n] = after[n] - before[n];
  assert.equal(xdpVerdictName(r.verdict), xdpVerdictName(verdict), `verdict (counters: ${show(got)})`);
  const want: Deltas = { rx: 1n, ...counters };
  if (verdict === XDP_TX) want.tx = 1n;
  if (verdict === XDP_REDIRECT) want.redirect = 1n;
  assert.deepEqual(got, want, `counters: expected ${show(want)}; got ${show(got)}`);
  return r.packet;
}

/** Forward a frame that must go out with XDP_TX and be exactly `expected`. */
function expectTx(fw: XdpForwarder, input: Buffer, expected: Buffer, counters: Deltas, what: string): void {
  assertFrameEqual(run(fw, input, XDP_TX, counters), expected, what);
}

// ---------------------------------------------------------------- NAT state by hand

function natEntries(parts: ForwarderParts): [Buffer, Buffer][] {
  return [...parts.maps.nat.entries()];
}

/**
 * A monotonic timestamp `ns` before `t`, as a u64: on a machine up for less than the age it is
 * "negative" and wraps, which the datapath's signed age (s64)(now - last) reads correctly.
 */
function monotonicMinus(t: bigint, ns: bigint): bigint {
  return BigInt.asUintN(64, t - ns);
}

/** Move every NAT entry's timestamp `seconds` (to the millisecond) into the past. */
function ageNat(parts: ForwarderParts, seconds: number): void {
  for (const [k, v] of natEntries(parts)) {
    const last = monotonicMinus(v.readBigUInt64LE(0), BigInt(Math.round(seconds * 1000)) * 1_000_000n);
    const out = Buffer.from(v);
    out.writeBigUInt64LE(last, 0);
    parts.maps.nat.update(k, out);
  }
}

/**
 * The flow's entry lives `seconds`: a reply when it is a second younger is translated (and
 * refreshes it), one when it is a second older passed untouched, as expired.
 */
function expectLifetime(fw: XdpForwarder, parts: ForwarderParts, s: Svc, seconds: number): void {
  ageNat(parts, seconds - 1);
  expectTx(fw, fromReal(s), toClient(s), { nat_reply: 1n }, `reply at ${seconds - 1} s`);
  ageNat(parts, seconds + 1);
  const input = fromReal(s);
  assertFrameEqual(run(fw, input, XDP_PASS, { pass_non_service: 1n, nat_expired: 1n }), input, `reply at ${seconds + 1} s: passed`);
}

/** Plant a full-NAT entry at {real, laddr, rport, lport} for another client flow. */
function plant(parts: ForwarderParts, s: Svc, lport: number, client: { addr: string; port: number }, ageSeconds = 0): void {
  const key = encode(XlbFlowKey, {
    saddr: addrBytes(s.real.address), daddr: addrBytes(laddrOf(s)), sport: portField(rportOf(s, {})), dport: portField(lport),
    proto: s.service.protocol === 'tcp' ? 6 : 17, family: v6(s) ? 6 : 4,
  });
  const value = encode(XlbNat, {
    last: monotonicMinus(process.hrtime.bigint(), BigInt(ageSeconds) * 1_000_000_000n),
    vaddr: addrBytes(s.service.address), caddr: addrBytes(client.addr), vport: portField(s.service.port), cport: portField(client.port),
    dmac: macBytes(PEER_MAC), smac: macBytes(LB_MAC), ifindex: 1, flags: XLB_NAT_F_FULL,
  });
  parts.maps.nat.update(key, value);
}

/** The port a new flow of s gets while every port is free (its first candidate); the state is
 *  cleared afterwards. */
function firstPort(fw: XdpForwarder, s: Svc): number {
  const p = sourcePort(run(fw, fromClient(s, { flags: 'S' }), XDP_TX, { ct_miss: 1n, nat_created: 1n }));
  fw.clearNat();
  fw.clearConntrack();
  return p;
}

function only(fw: XdpForwarder): NatEntry {
  const l = fw.natList();
  assert.equal(l.length, 1, `expected one NAT entry, have ${l.length}`);
  return l[0]!;
}

// ---------------------------------------------------------------- tests

describe('NAT: forward, reply, and the state between', () => {
  for (const [name, s] of [['IPv4 TCP', S.nat4tcp], ['IPv4 UDP', S.nat4udp], ['IPv6 TCP', S.nat6tcp], ['IPv6 UDP', S.nat6udp]] as const) {
    for (const vlan of [undefined, 100]) {
      test(`NAT ${name}${vlan ? ' with a VLAN tag' : ''}: destination to the real's port, replies from the VIP`, async () => {
        const { fw } = await fresh();
        const tcpFlow = s.service.protocol === 'tcp';
        const first: FlowOpts = { vlan, flags: tcpFlow ? 'S' : 'PA' };
        expectTx(fw, fromClient(s, first), toReal(s, first), { ct_miss: 1n, nat_created: 1n }, 'first packet to the real');
        const e = only(fw);
        assert.deepEqual(
          [e.protocol, e.fullNat, e.closing, e.real, e.realPort, e.local, e.localPort, e.client, e.clientPort, e.vip, e.vipPort, e.clientMac, e.ourMac, e.ifindex],
          [s.service.protocol, false, false, s.real.address, s.real.port, clientOf(s, {}), 40000, clientOf(s, {}), 40000, s.service.address, s.service.port, PEER_MAC, LB_MAC, 1],
        );
        const o: FlowOpts = { vlan };
        expectTx(fw, fromReal(s, o), toClient(s, o), { nat_reply: 1n }, 'reply to the client');
        expectTx(fw, fromClient(s, o), toReal(s, o), { ct_hit: 1n }, 'next packet: the state is reused');
        expectTx(fw, fromReal(s, o), toClient(s, o), { nat_reply: 1n }, 'next reply');
        assert.equal(fw.natEntries(), 1);
      });
    }
  }

  test('NAT UDP without a checksum (0): stays 0 both ways (IPv4)', async () => {
    const { fw } = await fresh();
    const o: FlowOpts = { udpChecksum0: true };
    expectTx(fw, fromClient(S.nat4udp, o), toReal(S.nat4udp, o), { ct_miss: 1n, nat_created: 1n }, 'forward');
    expectTx(fw, fromReal(S.nat4udp, o), toClient(S.nat4udp, o), { nat_reply: 1n }, 'reply');
  });

  test('NAT UDP checksums that come out as 0 are sent as 0xffff', async () => {
    const { fw } = await fresh();
    // find client ports whose translated datagram's checksum is computed as 0 (0xffff on the wire),
    // by the builder: about one in 65535, so try ports until one is found each way
    const s = S.nat4udp;
    const zeroOut = (f: Buffer) => f.readUInt16BE(14 + 20 + 6) === 0xffff;
    let fwdPort: number | undefined;
    let replyPort: number | undefined;
    for (let p = 1024; p < 65536 && (fwdPort === undefined || replyPort === undefined); p++) {
      if (fwdPort === undefined && zeroOut(toReal(s, { cport: p }))) fwdPort = p;
      if (replyPort === undefined && zeroOut(toClient(s, { cport: p }))) replyPort = p;
    }
    assert.ok(fwdPort !== undefined && replyPort !== undefined, 'no port gives a zero checksum');
    for (const cport of [fwdPort, replyPort]) {
      const o: FlowOpts = { cport };
      expectTx(fw, fromClient(s, o), toReal(s, o), { ct_miss: 1n, nat_created: 1n }, `forward, client port ${cport}`);
      expectTx(fw, fromReal(s, o), toClient(s, o), { nat_reply: 1n }, `reply, client port ${cport}`);
    }
  });

  test('NAT real without a port (0): the VIP\'s port is kept (all-ports service)', async () => {
    const { fw } = await fresh();
    for (const vport of [22, 8080]) {
      const o: FlowOpts = { vport, flags: 'S', cport: 41000 + vport };
      expectTx(fw, fromClient(S.natAll, o), toReal(S.natAll, o), { ct_miss: 1n, nat_created: 1n }, `SYN to port ${vport}`);
      expectTx(fw, fromReal(S.natAll, { ...o, flags: 'SA' }), toClient(S.natAll, { ...o, flags: 'SA' }), { nat_reply: 1n }, `SYN-ACK from port ${vport}`);
    }
  });

  test('NAT with IPv4 options and IPv6 extension headers: the transport header is found behind them', async () => {
    const { fw } = await fresh();
    const o4: FlowOpts = { ipOptions: Buffer.from([0x94, 0x04, 0x00, 0x00]) };
    expectTx(fw, fromClient(S.nat4tcp, o4), toReal(S.nat4tcp, o4), { ct_miss: 1n, nat_created: 1n }, 'IPv4 ihl 6');
    expectTx(fw, fromReal(S.nat4tcp, o4), toClient(S.nat4tcp, o4), { nat_reply: 1n }, 'IPv4 ihl 6 reply');
    const o6: FlowOpts = { ext: [{ type: 'hopByHop' }, { type: 'dstOpts' }] };
    expectTx(fw, fromClient(S.nat6udp, o6), toReal(S.nat6udp, o6), { ct_miss: 1n, nat_created: 1n }, 'IPv6 two extension headers');
    expectTx(fw, fromReal(S.nat6udp, o6), toClient(S.nat6udp, o6), { nat_reply: 1n }, 'IPv6 extension headers reply');
  });

  test('a reply with no state is not ours: passed untouched', async () => {
    const { fw } = await fresh();
    for (const s of [S.nat4tcp, S.nat6udp, S.full4tcp]) {
      const input = fromReal(s, {}, 5555);
      assertFrameEqual(run(fw, input, XDP_PASS, { pass_non_service: 1n }), input, 'passed unchanged');
    }
  });

  test('one-packet scheduling (no connection table): NAT state made by the first datagram, kept by the next', async () => {
    const { fw } = await fresh();
    expectTx(fw, fromClient(S.natOps), toReal(S.natOps), { nat_created: 1n }, 'first datagram');
    expectTx(fw, fromClient(S.natOps), toReal(S.natOps), {}, 'second datagram');
    expectTx(fw, fromReal(S.natOps), toClient(S.natOps), { nat_reply: 1n }, 'reply');
  });

  test('a reply goes out where the client\'s packets came in: XDP_REDIRECT when that is another interface', async () => {
    const { fw } = await fresh();
    const other = otherIfindex();
    const before = fw.counters();
    const r = fw.testRun(fromClient(S.nat4tcp, { flags: 'S' }), { ingressIfindex: other });
    assert.equal(xdpVerdictName(r.verdict), xdpVerdictName(XDP_TX));
    assert.equal(fw.counters().nat_created - before.nat_created, 1n);
    assert.equal(only(fw).ifindex, other);
    assertFrameEqual(run(fw, fromReal(S.nat4tcp), XDP_REDIRECT, { nat_reply: 1n }, 1), toClient(S.nat4tcp), 'redirected reply');
    assertFrameEqual(run(fw, fromReal(S.nat4tcp), XDP_TX, { nat_reply: 1n }, other), toClient(S.nat4tcp), 'reply on the client\'s interface');
  });

  test('a NAT reply\'s transport header is checked once the state says it is ours', async () => {
    const { fw } = await fresh();
    expectTx(fw, fromClient(S.nat4tcp, { flags: 'S' }), toReal(S.nat4tcp, { flags: 'S' }), { ct_miss: 1n, nat_created: 1n }, 'SYN');
    const cut = fromReal(S.nat4tcp).subarray(0, 14 + 20 + 12);
    run(fw, Buffer.from(cut), XDP_DROP, { drop_truncated: 1n });
    const bad = fromReal(S.nat4tcp);
    bad[14 + 20 + 12] = 0x40; // data offset 4
    run(fw, bad, XDP_DROP, { drop_malformed: 1n });
  });

  test('a fragment for a NAT real is dropped (no ports to translate)', async () => {
    const { fw } = await fresh();
    const f = packet(eth({ dst: LB_MAC, src: PEER_MAC }), ipv4({ src: CLIENT4, dst: S.natAllUdp.service.address, id: 7, mf: true, fragOffset: 0, proto: 17 }),
      udp({ sport: 40000, dport: 53 }), payload(64));
    run(fw, f, XDP_DROP, { drop_nat: 1n });
  });
});

describe('NAT state: timeouts, FIN and RST, loss', () => {
  test('the defaults are IPVS\'s: TCP 900 s, after FIN/RST 120 s, UDP 300 s', () => {
    assert.deepEqual(NAT_TIMEOUT_DEFAULTS, { tcp: 900, tcpFin: 120, udp: 300 });
  });

  test('an expired entry is treated as absent: its reply passes; the next forward packet makes it again', async () => {
    const { fw, parts } = await fresh();
    const s = S.nat4tcp;
    expectTx(fw, fromClient(s, { flags: 'S' }), toReal(s, { flags: 'S' }), { ct_miss: 1n, nat_created: 1n }, 'SYN');
    expectLifetime(fw, parts, s, 900);
    expectTx(fw, fromClient(s), toReal(s), { ct_hit: 1n, nat_expired: 1n, nat_created: 1n }, 'forward packet remakes the state');
    expectTx(fw, fromReal(s), toClient(s), { nat_reply: 1n }, 'reply after the state was remade');
  });

  test('UDP state lives 300 s', async () => {
    const { fw, parts } = await fresh();
    const s = S.nat6udp;
    expectTx(fw, fromClient(s), toReal(s), { ct_miss: 1n, nat_created: 1n }, 'datagram');
    expectLifetime(fw, parts, s, 300);
  });

  test('configured timeouts are used', async () => {
    const { fw, parts } = await fresh();
    try {
      fw.setConfig({ ...CONFIG, natTimeouts: { tcp: 30 } });
      const s = S.nat4tcp;
      expectTx(fw, fromClient(s, { flags: 'S' }), toReal(s, { flags: 'S' }), { ct_miss: 1n, nat_created: 1n }, 'SYN');
      expectLifetime(fw, parts, s, 30);
    } finally {
      fw.setConfig(CONFIG);
    }
  });

  for (const [who, flags] of [['client\'s FIN', 'FA'], ['client\'s RST', 'R'], ['real\'s FIN', 'FA'], ['real\'s RST', 'RA']] as const) {
    test(`the ${who} moves the entry to the short timeout (120 s)`, async () => {
      const { fw, parts } = await fresh();
      const s = S.nat4tcp;
      expectTx(fw, fromClient(s, { flags: 'S' }), toReal(s, { flags: 'S' }), { ct_miss: 1n, nat_created: 1n }, 'SYN');
      assert.equal(only(fw).closing, false);
      if (who.startsWith('client')) expectTx(fw, fromClient(s, { flags }), toReal(s, { flags }), { ct_hit: 1n }, who);
      else expectTx(fw, fromReal(s, { flags }), toClient(s, { flags }), { nat_reply: 1n }, who);
      assert.equal(only(fw).closing, true);
      expectLifetime(fw, parts, s, 120);
    });
  }

  test('without FIN or RST the same age is well within the TCP timeout', async () => {
    const { fw, parts } = await fresh();
    const s = S.nat4tcp;
    expectTx(fw, fromClient(s, { flags: 'S' }), toReal(s, { flags: 'S' }), { ct_miss: 1n, nat_created: 1n }, 'SYN');
    ageNat(parts, 200);
    expectTx(fw, fromReal(s), toClient(s), { nat_reply: 1n }, 'reply at 200 s');
    assert.equal(only(fw).closing, false);
  });

  test('a new SYN on a closing entry starts it afresh', async () => {
    const { fw } = await fresh();
    const s = S.nat4tcp;
    expectTx(fw, fromClient(s, { flags: 'S' }), toReal(s, { flags: 'S' }), { ct_miss: 1n, nat_created: 1n }, 'SYN');
    expectTx(fw, fromClient(s, { flags: 'R' }), toReal(s, { flags: 'R' }), { ct_hit: 1n }, 'RST');
    assert.equal(only(fw).closing, true);
    expectTx(fw, fromClient(s, { flags: 'S' }), toReal(s, { flags: 'S' }), { ct_miss: 1n, nat_created: 1n }, 'SYN again');
    assert.equal(only(fw).closing, false);
  });

  test('the timestamp is refreshed only when it moved by a second or more', async () => {
    const { fw, parts } = await fresh();
    const s = S.nat4udp;
    expectTx(fw, fromClient(s), toReal(s), { ct_miss: 1n, nat_created: 1n }, 'datagram');
    ageNat(parts, 0.5);
    const t0 = only(fw).last;
    expectTx(fw, fromClient(s), toReal(s), { ct_hit: 1n }, 'datagram half a second later');
    expectTx(fw, fromReal(s), toClient(s), { nat_reply: 1n }, 'reply half a second later');
    assert.equal(only(fw).last, t0, 'refreshed although less than a second old');
    ageNat(parts, 0.6);
    expectTx(fw, fromClient(s), toReal(s), { ct_hit: 1n }, 'datagram 1.1 s later');
    assert.ok(only(fw).last > t0, 'not refreshed by a packet 1.1 s later');
    ageNat(parts, 1.1);
    const t1 = only(fw).last;
    expectTx(fw, fromReal(s), toClient(s), { nat_reply: 1n }, 'reply 1.1 s later');
    assert.ok(only(fw).last > t1, 'not refreshed by a reply 1.1 s later');
  });

  test('state lost while the flow is in the connection table (LRU eviction) is made again', async () => {
    const { fw } = await fresh();
    for (const s of [S.nat4tcp, S.nat6udp]) {
      expectTx(fw, fromClient(s, { flags: s.service.protocol === 'tcp' ? 'S' : 'PA' }), toReal(s, { flags: s.service.protocol === 'tcp' ? 'S' : 'PA' }),
        { ct_miss: 1n, nat_created: 1n }, 'first packet');
      fw.clearNat();
      run(fw, fromReal(s), XDP_PASS, { pass_non_service: 1n });
      expectTx(fw, fromClient(s), toReal(s), { ct_hit: 1n, nat_created: 1n }, 'state made again');
      expectTx(fw, fromReal(s), toClient(s), { nat_reply: 1n }, 'reply');
    }
  });

  test('replies are looked up only from ports NAT reals answer from (the nat_ports bitmap)', async () => {
    const { fw, parts } = await fresh();
    const s = S.nat4tcp;
    const extra = svc('198.18.30.5', 80, 'tcp', real('198.18.31.9', 'nat', 9999, '0d'));
    // the all-ports NAT services make every port a reply port: out for this test
    fw.removeService(S.natAll.service);
    fw.removeService(S.natAllUdp.service);
    try {
      expectTx(fw, fromClient(s, { flags: 'S' }), toReal(s, { flags: 'S' }), { ct_miss: 1n, nat_created: 1n }, 'SYN');
      // move the flow's state to real port 9999, which no real answers from
      const [k, v] = natEntries(parts)[0]!;
      parts.maps.nat.delete(k);
      const moved = Buffer.from(k);
      moved.writeUInt16BE(9999, XlbFlowKey.fields.find((f) => f.name === 'sport')!.offset);
      parts.maps.nat.update(moved, v);
      const from9999 = frame({ dmac: EGRESS_MAC, smac: s.real.mac, src: s.real.address, dst: CLIENT4, sport: 9999, dport: 40000, proto: 'tcp', flags: 'A' }, true);
      assertFrameEqual(run(fw, from9999, XDP_PASS, { pass_non_service: 1n }), from9999, 'not looked up: passed');
      fw.setService(extra.service, [extra.real]);
      const out = run(fw, from9999, XDP_TX, { nat_reply: 1n });
      assertFrameEqual(out, toClient(s), 'looked up once a real answers from 9999');
    } finally {
      fw.removeService(extra.service);
      fw.setService(S.natAll.service, [S.natAll.real]);
      fw.setService(S.natAllUdp.service, [S.natAllUdp.real]);
    }
  });

  test('replies are looked up only while a NAT real exists (the config flag)', async () => {
    const { fw } = await fresh();
    const s = S.nat4tcp;
    expectTx(fw, fromClient(s, { flags: 'S' }), toReal(s, { flags: 'S' }), { ct_miss: 1n, nat_created: 1n }, 'SYN');
    assert.equal(fw.natEnabled, true);
    try {
      for (const x of Object.values(S)) fw.removeService(x.service);
      assert.equal(fw.natEnabled, false);
      assert.equal(fw.natEntries(), 1, 'the state is still there');
      const input = fromReal(s);
      assertFrameEqual(run(fw, input, XDP_PASS, { pass_non_service: 1n }), input, 'not looked up: passed');
    } finally {
      for (const x of Object.values(S)) fw.setService(x.service, [x.real]);
    }
    assert.equal(fw.natEnabled, true);
    expectTx(fw, fromReal(s), toClient(s), { nat_reply: 1n }, 'looked up again');
  });
});

describe('full-NAT', () => {
  for (const [name, s] of [['IPv4 TCP', S.full4tcp], ['IPv4 UDP', S.full4udp], ['IPv6 TCP', S.full6tcp], ['IPv6 UDP', S.full6udp]] as const) {
    for (const vlan of [undefined, 7]) {
      test(`full-NAT ${name}${vlan ? ' with a VLAN tag' : ''}: source := our address and a port of ours; replies to the client`, async () => {
        const { fw } = await fresh();
        const tcpFlow = s.service.protocol === 'tcp';
        const first: FlowOpts = { vlan, flags: tcpFlow ? 'S' : 'PA' };
        const out = run(fw, fromClient(s, first), XDP_TX, { ct_miss: 1n, nat_created: 1n });
        const lport = sourcePort(out);
        assert.ok(lport >= XLB_NAT_PORT_MIN && lport <= XLB_NAT_PORT_MAX, `source port ${lport} outside ${XLB_NAT_PORT_MIN}..${XLB_NAT_PORT_MAX}`);
        assertFrameEqual(out, toReal(s, first, lport), 'first packet to the real');
        const e = only(fw);
        assert.deepEqual(
          [e.fullNat, e.real, e.realPort, e.local, e.localPort, e.client, e.clientPort, e.vip, e.vipPort],
          [true, s.real.address, s.real.port, laddrOf(s), lport, clientOf(s, {}), 40000, s.service.address, s.service.port],
        );
        const o: FlowOpts = { vlan };
        expectTx(fw, fromReal(s, o, lport), toClient(s, o), { nat_reply: 1n }, 'reply to the client');
        expectTx(fw, fromClient(s, o), toReal(s, o, lport), { ct_hit: 1n }, 'next packet: same port (from the connection table)');
        expectTx(fw, fromReal(s, o, lport), toClient(s, o), { nat_reply: 1n }, 'next reply');
      });
    }
  }

  test('full-NAT UDP without a checksum (0): stays 0 both ways', async () => {
    const { fw } = await fresh();
    const o: FlowOpts = { udpChecksum0: true };
    const out = run(fw, fromClient(S.full4udp, o), XDP_TX, { ct_miss: 1n, nat_created: 1n });
    const lport = sourcePort(out);
    assertFrameEqual(out, toReal(S.full4udp, o, lport), 'forward');
    expectTx(fw, fromReal(S.full4udp, o, lport), toClient(S.full4udp, o), { nat_reply: 1n }, 'reply');
  });

  test('a retransmitted SYN, and a flow whose connection-table entry was lost, keep their port', async () => {
    const { fw } = await fresh();
    const s = S.full4tcp;
    const lport = sourcePort(run(fw, fromClient(s, { flags: 'S' }), XDP_TX, { ct_miss: 1n, nat_created: 1n }));
    expectTx(fw, fromClient(s, { flags: 'S' }), toReal(s, { flags: 'S' }, lport), { ct_miss: 1n, nat_created: 1n }, 'SYN again: same port, state rewritten');
    fw.clearConntrack();
    expectTx(fw, fromClient(s), toReal(s, {}, lport), { ct_miss: 1n }, 'after the table lost the flow: same port');
    expectTx(fw, fromClient(s), toReal(s, {}, lport), { ct_hit: 1n }, 'and in the table again');
    assert.equal(fw.natEntries(), 1);
  });

  test('a flow the table forgot keeps its port even when an earlier candidate has come free', async () => {
    const { fw, parts } = await fresh();
    const s = S.full4tcp;
    const p0 = firstPort(fw, s);
    plant(parts, s, p0, { addr: '198.18.21.9', port: 33333 });
    const p1 = sourcePort(run(fw, fromClient(s, { flags: 'S' }), XDP_TX, { ct_miss: 1n, nat_created: 1n }));
    assert.notEqual(p1, p0);
    // the other flow goes away; the table forgets ours (LRU eviction)
    for (const [k] of natEntries(parts)) if (decode(XlbFlowKey, k).dport === portField(p0)) parts.maps.nat.delete(k);
    fw.clearConntrack();
    expectTx(fw, fromClient(s), toReal(s, {}, p1), { ct_miss: 1n }, 'same port as before, not the free first candidate');
    assert.equal(fw.natEntries(), 1);
  });

  test('one-packet scheduling: each datagram of a flow finds the flow\'s port', async () => {
    const { fw } = await fresh();
    const s = S.fullOps;
    const lport = sourcePort(run(fw, fromClient(s), XDP_TX, { nat_created: 1n }));
    expectTx(fw, fromClient(s), toReal(s, {}, lport), {}, 'second datagram, same port');
    expectTx(fw, fromReal(s, {}, lport), toClient(s), { nat_reply: 1n }, 'reply');
  });

  test('port collision: a port in use by another flow is not taken; a different one is chosen', async () => {
    const { fw, parts } = await fresh();
    const s = S.full4tcp;
    const p0 = firstPort(fw, s);
    const other = { addr: '198.18.21.9', port: 33333 };
    plant(parts, s, p0, other);
    const out = run(fw, fromClient(s, { flags: 'S' }), XDP_TX, { ct_miss: 1n, nat_created: 1n });
    const p1 = sourcePort(out);
    assert.notEqual(p1, p0, 'the other flow\'s port was taken');
    assertFrameEqual(out, toReal(s, { flags: 'S' }, p1), 'SYN with the second candidate');
    // both flows' replies go to their own clients
    expectTx(fw, fromReal(s, {}, p1), toClient(s), { nat_reply: 1n }, 'reply to our client');
    expectTx(fw, fromReal(s, {}, p0), toClient(s, { client: other.addr, cport: other.port }), { nat_reply: 1n }, 'reply to the other flow\'s client');
  });

  test('an expired entry\'s port is taken over', async () => {
    const { fw, parts } = await fresh();
    const s = S.full4tcp;
    const p0 = firstPort(fw, s);
    plant(parts, s, p0, { addr: '198.18.21.9', port: 33333 }, 901);
    expectTx(fw, fromClient(s, { flags: 'S' }), toReal(s, { flags: 'S' }, p0), { ct_miss: 1n, nat_expired: 1n, nat_created: 1n }, 'SYN takes the expired port');
    expectTx(fw, fromReal(s, {}, p0), toClient(s), { nat_reply: 1n }, 'reply to the new owner');
  });

  test(`every candidate port in use (${XLB_NAT_PORT_TRIES}): dropped, DROP_NAT_NO_PORT`, async () => {
    const { fw, parts } = await fresh();
    const s = S.full4tcp;
    // learn the flow's candidates one by one: each planted port pushes it to the next
    const candidates: number[] = [];
    for (let i = 0; i < XLB_NAT_PORT_TRIES; i++) {
      fw.clearNat();
      fw.clearConntrack();
      candidates.forEach((p, k) => plant(parts, s, p, { addr: '198.18.21.9', port: 20000 + k }));
      candidates.push(sourcePort(run(fw, fromClient(s, { flags: 'S' }), XDP_TX, { ct_miss: 1n, nat_created: 1n })));
    }
    assert.equal(new Set(candidates).size, XLB_NAT_PORT_TRIES, `candidates ${candidates.join(' ')}`);
    fw.clearNat();
    fw.clearConntrack();
    candidates.forEach((p, k) => plant(parts, s, p, { addr: '198.18.21.9', port: 20000 + k }));
    run(fw, fromClient(s, { flags: 'S' }), XDP_DROP, { ct_miss: 1n, drop_nat_no_port: 1n });
    assert.equal(fw.natEntries(), XLB_NAT_PORT_TRIES, 'nothing was overwritten');
  });

  test('2,000 flows from one client to one real: every {full-NAT address, port, real, real port} is unique', async (t) => {
    const { fw } = await fresh();
    const s = S.full4tcp;
    const ports = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const o: FlowOpts = { flags: 'S', cport: 10000 + i };
      const out = run(fw, fromClient(s, o), XDP_TX, { ct_miss: 1n, nat_created: 1n });
      const p = sourcePort(out);
      assert.ok(!ports.has(p), `flow ${i} got port ${p}, which another flow has`);
      ports.add(p);
      if (i % 500 === 0) assertFrameEqual(out, toReal(s, o, p), `flow ${i}`);
    }
    t.diagnostic(`2000 flows, 2000 distinct ports, ${fw.natEntries()} entries`);
    // every reply still reaches its own client
    const list = fw.natList();
    assert.equal(list.length, 2000);
    for (const e of list.slice(0, 50)) {
      expectTx(fw, fromReal(s, {}, e.localPort), toClient(s, { cport: e.clientPort }), { nat_reply: 1n }, `reply for client port ${e.clientPort}`);
    }
  });

  test('without a full-NAT address for the family, the program drops (the control plane refuses such reals)', async () => {
    const { fw, parts } = await fresh();
    // the config as the program would see it if natSrc4 were gone: written behind the forwarder's back
    const cfg = parts.maps.config.lookup(Buffer.alloc(4))!;
    const blank = Buffer.from(cfg);
    const f = XlbConfig.fields.find((x) => x.name === 'nat_src4')!;
    blank.fill(0, f.offset, f.offset + f.size);
    parts.maps.config.update(Buffer.alloc(4), blank);
    try {
      run(fw, fromClient(S.full4tcp, { flags: 'S' }), XDP_DROP, { ct_miss: 1n, drop_nat: 1n });
    } finally {
      parts.maps.config.update(Buffer.alloc(4), cfg);
    }
  });
});

describe('NAT entries decode', () => {
  test('natList reads the map\'s layout', async () => {
    const { fw, parts } = await fresh();
    plant(parts, S.full6tcp, 4321, { addr: 'fd00:18:21::9', port: 1111 });
    const [k, v] = natEntries(parts)[0]!;
    assert.equal(decode(XlbFlowKey, k).family, 6);
    assert.equal((decode(XlbNat, v).flags as number) & XLB_NAT_F_FULL, XLB_NAT_F_FULL);
    const e = only(fw);
    assert.deepEqual([e.real, e.realPort, e.local, e.localPort, e.client, e.clientPort, e.vip, e.vipPort, e.fullNat, e.clientMac],
      [S.full6tcp.real.address, 8443, LADDR6, 4321, 'fd00:18:21::9', 1111, S.full6tcp.service.address, 80, true, PEER_MAC]);
  });
});

// ---------------------------------------------------------------- ICMP errors about NAT flows

const ROUTER4 = '198.18.22.1';
const ROUTER6 = 'fd00:18:22::1';

/** The first `n` bytes of a frame's IP packet: what an ICMP error quotes. */
const quote = (f: Buffer, n: number): Buffer => Buffer.from(f.subarray(l3Offset(f), l3Offset(f) + n));

interface IcmpErr { type: number; code: number; rest?: number }

/** An ICMP(v6) error in a frame: outer addresses, MACs, the quote. Outer TTL and id fixed. */
function icmpFrame(m: { dmac: string; smac: string; vlan?: number }, src: string, dst: string, e: IcmpErr, quoted: Buffer): Buffer {
  const l2 = eth({ dst: m.dmac, src: m.smac, ...(m.vlan === undefined ? {} : { vlan: m.vlan }) });
  return src.includes(':')
    ? packet(l2, ipv6({ src, dst, hopLimit: 60 }), icmpv6({ type: e.type, code: e.code, rest: e.rest ?? 0 }), quoted)
    : packet(l2, ipv4({ src, dst, ttl: 60, id: 0x0e0e, tos: 0xc0 }), icmpv4({ type: e.type, code: e.code, rest: e.rest ?? 0 }), quoted);
}

const UNREACH4: IcmpErr = { type: 3, code: 3 };
const FRAG_NEEDED4: IcmpErr = { type: 3, code: 4, rest: 1400 };
const TOO_BIG6: IcmpErr = { type: 2, code: 0, rest: 1280 };
const UNREACH6: IcmpErr = { type: 1, code: 4 };
const TIME_EXCEEDED6: IcmpErr = { type: 3, code: 0 };

describe('ICMP errors about NAT flows', () => {
  // a real (or a router on its side) answers a packet it was sent with an error: the client must
  // get an error from the VIP that quotes exactly what the client sent
  const fromRealSide: [string, Svc, IcmpErr, number, FlowOpts][] = [
    ['NAT IPv4 UDP port unreachable, quoting the datagram', S.nat4udp, UNREACH4, 20 + 8 + 24, {}],
    ['NAT IPv4 UDP port unreachable with a VLAN tag', S.nat4udp, UNREACH4, 20 + 8 + 24, { vlan: 100 }],
    ['NAT IPv4 TCP fragmentation needed, quoting 8 bytes of TCP (RFC 792)', S.nat4tcp, FRAG_NEEDED4, 20 + 8, {}],
    ['NAT IPv6 TCP time exceeded, quoting the TCP header', S.nat6tcp, TIME_EXCEEDED6, 40 + 20 + 8, {}],
    ['full-NAT IPv4 TCP fragmentation needed, quoting the whole TCP header (its checksum updated)', S.full4tcp, FRAG_NEEDED4, 20 + 20 + 32, {}],
    ['full-NAT IPv4 UDP without a checksum, port unreachable', S.full4udp, UNREACH4, 20 + 8 + 16, { udpChecksum0: true }],
    ['full-NAT IPv6 UDP packet too big', S.full6udp, TOO_BIG6, 40 + 8 + 24, {}],
    ['full-NAT IPv6 TCP destination unreachable', S.full6tcp, UNREACH6, 40 + 20 + 40, {}],
  ];
  for (const [name, s, err, n, o] of fromRealSide) {
    test(`from the real's side: ${name}`, async () => {
      const { fw } = await fresh();
      const first: FlowOpts = { ...o, flags: s.service.protocol === 'tcp' ? 'S' : 'PA' };
      const out = run(fw, fromClient(s, first), XDP_TX, { ct_miss: 1n, nat_created: 1n });
      const lport = s.real.method === 'fullnat' ? sourcePort(out) : undefined;
      const full = lport !== undefined;
      const input = icmpFrame({ dmac: LB_MAC, smac: s.real.mac, ...(o.vlan ? { vlan: o.vlan } : {}) }, s.real.address,
        full ? laddrOf(s) : clientOf(s, o), err, quote(toReal(s, o, lport), n));
      const expected = icmpFrame({ dmac: PEER_MAC, smac: LB_MAC, ...(o.vlan ? { vlan: o.vlan } : {}) }, s.service.address, clientOf(s, o), err,
        quote(fromClient(s, o), n));
      assertFrameEqual(run(fw, input, XDP_TX, { nat_icmp: 1n }), expected, 'error to the client');
    });
  }

  test('from the real\'s side, with no state: not ours, passed untouched', async () => {
    const { fw } = await fresh();
    const input = icmpFrame({ dmac: LB_MAC, smac: S.nat4udp.real.mac }, S.nat4udp.real.address, CLIENT4, UNREACH4, quote(toReal(S.nat4udp), 20 + 8));
    assertFrameEqual(run(fw, input, XDP_PASS, { pass_non_service: 1n }), input, 'passed');
  });

  // a router between the client and the balancer answers a reply: the real must get an error that
  // quotes exactly what the real sent
  const fromClientSide: [string, Svc, IcmpErr, number][] = [
    ['NAT IPv4 TCP fragmentation needed', S.nat4tcp, FRAG_NEEDED4, 20 + 20 + 32],
    ['NAT IPv6 UDP destination unreachable', S.nat6udp, UNREACH6, 40 + 8 + 24],
    ['full-NAT IPv4 TCP fragmentation needed (outer source := the full-NAT address)', S.full4tcp, FRAG_NEEDED4, 20 + 8],
    ['full-NAT IPv6 TCP packet too big', S.full6tcp, TOO_BIG6, 40 + 20 + 16],
  ];
  for (const [name, s, err, n] of fromClientSide) {
    test(`from the client's side: ${name}`, async () => {
      const { fw } = await fresh();
      const out = run(fw, fromClient(s, { flags: 'S' }), XDP_TX, { ct_miss: 1n, nat_created: 1n });
      const lport = s.real.method === 'fullnat' ? sourcePort(out) : undefined;
      const router = v6(s) ? ROUTER6 : ROUTER4;
      const input = icmpFrame({ dmac: LB_MAC, smac: PEER_MAC }, router, s.service.address, err, quote(toClient(s), n));
      const expected = icmpFrame({ dmac: s.real.mac, smac: EGRESS_MAC }, lport === undefined ? router : laddrOf(s), s.real.address, err,
        quote(fromReal(s, {}, lport), n));
      assertFrameEqual(run(fw, input, XDP_TX, { icmp_fwd: 1n, nat_icmp: 1n }), expected, 'error to the real');
    });
  }

  test('from the client\'s side, a full-NAT flow the connection table does not know: passed to the local stack', async () => {
    const { fw } = await fresh();
    const s = S.full4tcp;
    run(fw, fromClient(s, { flags: 'S' }), XDP_TX, { ct_miss: 1n, nat_created: 1n });
    fw.clearConntrack();
    const input = icmpFrame({ dmac: LB_MAC, smac: PEER_MAC }, ROUTER4, s.service.address, FRAG_NEEDED4, quote(toClient(s), 28));
    assertFrameEqual(run(fw, input, XDP_PASS, { pass_local: 1n }), input, 'passed');
  });
});
