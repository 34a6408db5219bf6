/**
 * Frames for a VIP unicast to another host's MAC (step 3c of bpf/xlb.bpf.c), through
 * BPF_PROG_TEST_RUN: where the ingress interface's MAC is known (the ifaces map), such a frame is
 * passed unchanged (PASS_OTHER_HOST; the kernel then drops it as PACKET_OTHERHOST); to the
 * interface's MAC, to a group address, or where the MAC is not known, balanced as before.
 *
 * The test runs' ingress is lo (ifindex 1, the kernel's default); its entry is written with
 * noteInterface (what attach does with the interface's own MAC: lo has none).
 *
 * Needs root and a build (`make all`); without them every test fails and says so.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADDON_PATH, xdpVerdictName } from '../../src/datapath/bpf/index.ts';
import { XdpForwarder, type ServiceSpec } from '../../src/datapath/xdp/forwarder.ts';
import { XLB_OBJECT, requireFile, requireRoot } from '../lib/require.ts';
import { LB_MAC, PEER_MAC, XDP_PASS, XDP_TX } from './fixtures.ts';
import { deltas, drReal, showDeltas } from './flows.ts';
import { assertFrameEqual, eth, ipv4, ipv6, packet, parseFrame, tcp } from '../lib/packets.ts';
import { macBytes } from '../../src/datapath/xdp/net.ts';

const LO = 1;
const OTHER_MAC = '02:00:00:aa:bb:cc';
const VIP4 = '198.18.0.90';
const VIP6 = 'fd00:18::90';
const REAL = drReal('198.18.1.91');
const SERVICES: ServiceSpec[] = [
  { address: VIP4, port: 80, protocol: 'tcp' },
  { address: VIP6, port: 80, protocol: 'tcp' },
];

let fw: XdpForwarder | undefined;
function forwarder(): XdpForwarder {
  if (fw) return fw;
  requireRoot();
  requireFile(XLB_OBJECT, 'make all');
  requireFile(ADDON_PATH, 'make all');
  fw = XdpForwarder.open({ ctSize: 1024, natSize: 1024, persistSize: 1024, maglevSize: 251, maxReals: 64, maxServices: 8 });
  fw.setConfig({});
  // the IPv6 service's real has the same MAC (DR rewrites only the Ethernet header)
  for (const s of SERVICES) fw.setService(s, [{ ...REAL, address: s.address.includes(':') ? 'fd00:18:1::91' : REAL.address }]);
  return fw;
}
after(() => fw?.close());

function frame(dstMac: string, dst: string = VIP4): Buffer {
  const ip = dst.includes(':') ? ipv6({ src: 'fd00:18:4::1', dst }) : ipv4({ src: '198.18.4.1', dst, df: true });
  return packet(eth({ dst: dstMac, src: PEER_MAC }), ip, tcp({ sport: 40000, dport: 80, flags: 'S', seq: 1 }));
}

/** Run one frame on lo; its verdict, output and counter deltas. */
function run(input: Buffer) {
  const f = forwarder();
  f.clearConntrack();
  const before = f.counters();
  const r = f.testRun(input);
  return { verdict: r.verdict, out: r.packet, d: deltas(before, f.counters()) };
}

function assertOtherHost(input: Buffer): void {
  const { verdict, out, d } = run(input);
  assert.equal(xdpVerdictName(verdict), xdpVerdictName(XDP_PASS), `verdict (counters: ${showDeltas(d)})`);
  assertFrameEqual(out, input, 'output (expected unchanged)');
  assert.deepEqual(d, { rx: 1n, pass_other_host: 1n }, `counters: ${showDeltas(d)}`);
}

function assertBalanced(input: Buffer, what: string): void {
  const { verdict, out, d } = run(input);
  assert.equal(xdpVerdictName(verdict), xdpVerdictName(XDP_TX), `${what}: verdict (counters: ${showDeltas(d)})`);
  assert.equal(d.pass_other_host, undefined, `${what}: counters ${showDeltas(d)}`);
  assert.equal(d.tx, 1n, `${what}: counters ${showDeltas(d)}`);
  assert.equal(parseFrame(out).dst, REAL.mac, `${what}: to the real (DR)`);
}

test('the ingress MAC known: unicast to another MAC for a VIP is passed unchanged (pass_other_host), IPv4 and IPv6', () => {
  const f = forwarder();
  f.noteInterface(LO, macBytes(LB_MAC));
  try {
    assertOtherHost(frame(OTHER_MAC));
    assertOtherHost(frame(OTHER_MAC, VIP6));
  } finally {
    f.forgetInterface(LO);
  }
});

test('the ingress MAC known: to that MAC, or to a group address, balanced as before', () => {
  const f = forwarder();
  f.noteInterface(LO, macBytes(LB_MAC));
  try {
    assertBalanced(frame(LB_MAC), 'to our MAC');
    assertBalanced(frame(LB_MAC, VIP6), 'IPv6 to our MAC');
    assertBalanced(frame('ff:ff:ff:ff:ff:ff'), 'broadcast');
    assertBalanced(frame('01:00:5e:00:00:01'), 'multicast');
  } finally {
    f.forgetInterface(LO);
  }
});

test('the ingress MAC known: a non-VIP to another MAC stays pass_non_service (the check is on the VIP path only)', () => {
  const f = forwarder();
  f.noteInterface(LO, macBytes(LB_MAC));
  try {
    const input = frame(OTHER_MAC, '198.18.0.99');
    const { verdict, out, d } = run(input);
    assert.equal(xdpVerdictName(verdict), xdpVerdictName(XDP_PASS));
    assertFrameEqual(out, input, 'output (expected unchanged)');
    assert.deepEqual(d, { rx: 1n, pass_non_service: 1n }, `counters: ${showDeltas(d)}`);
  } finally {
    f.forgetInterface(LO);
  }
});

test('no entry, or another interface\'s at the same index: no check, balanced as before', () => {
  const f = forwarder();
  assertBalanced(frame(OTHER_MAC), 'no entry');
  f.noteInterface(LO + 256, macBytes(LB_MAC)); // index 1 too, but for ifindex 257
  try {
    assertBalanced(frame(OTHER_MAC), "another interface's entry");
    f.forgetInterface(LO); // not lo's entry: stays
    f.noteInterface(LO, null); // no Ethernet address: clears only its own entry
  } finally {
    f.forgetInterface(LO + 256);
  }
  assertBalanced(frame(OTHER_MAC), 'entry cleared');
});
