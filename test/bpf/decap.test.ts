/**
 * The decapsulation program (bpf/xlb_decap.bpf.c) through BPF_PROG_TEST_RUN, driven by its
 * control side (src/datapath/xdp/decap.ts):
 *
 *  1. every fixture of decap-fixtures.ts: verdict, exact output bytes, every counter's delta;
 *  2. the allowed-sources API (replace, empty, bad input changes nothing, limits);
 *  3. the two programs agree: the forwarder (XdpForwarder, TUN reals) encapsulates, the
 *     decapsulation program gives back the client's packet byte for byte (with the real's MACs).
 *
 * Needs root and a build (`make all`); without them every test fails and says so.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADDON_PATH, XDP_TX, xdpVerdictName } from '../../src/datapath/bpf/index.ts';
import { DECAP_COUNTER_NAMES, DECAP_OBJECT, XdpDecap, type DecapCounterName, type DecapCounters } from '../../src/datapath/xdp/decap.ts';
import { XLB_DECAP_MAX_PREFIXES } from '../../src/datapath/xdp/decap-abi.ts';
import { XdpForwarder, type RealSpec, type ServiceSpec } from '../../src/datapath/xdp/forwarder.ts';
import { XLB_OBJECT, requireFile, requireRoot } from '../lib/require.ts';
import { assertFrameEqual, eth, ipv4, ipv6, packet, parseFrame, payload, tcp, udp, withMacs } from '../lib/packets.ts';
import { FIXTURES, LB_MAC, REAL_MAC, SETUPS, XDP_PASS, type Fixture, type SetupName } from './decap-fixtures.ts';

// ---------------------------------------------------------------- loading, once

let loading: Promise<XdpDecap> | undefined;

/** The program, loaded on first use; every test fails with the same reason when it cannot be. */
function program(): Promise<XdpDecap> {
  loading ??= (async () => {
    requireRoot();
    requireFile(DECAP_OBJECT, 'make all');
    requireFile(ADDON_PATH, 'make all');
    return XdpDecap.load();
  })();
  return loading;
}

after(async () => {
  const d = await loading?.catch(() => undefined);
  d?.close();
});

function deltas(before: DecapCounters, after: DecapCounters): Partial<Record<DecapCounterName, bigint>> {
  const out: Partial<Record<DecapCounterName, bigint>> = {};
  for (const name of DECAP_COUNTER_NAMES) if (after[name] !== before[name]) out[name] = after[name] - before[name];
  return out;
}

const show = (d: Partial<Record<string, bigint>>) => Object.entries(d).map(([k, v]) => `${k} +${v}`).join(', ') || 'none';

let currentSetup: SetupName | undefined;

async function runFixture(fx: Fixture): Promise<void> {
  const d = await program();
  const setup = fx.setup ?? 'open';
  if (currentSetup !== setup) {
    d.setAllowedSources(SETUPS[setup]);
    currentSetup = setup;
  }
  const before = d.counters();
  const r = d.testRun(fx.input);
  const got = deltas(before, d.counters());
  assert.equal(xdpVerdictName(r.verdict), xdpVerdictName(fx.verdict), `verdict (counters: ${show(got)})`);
  assertFrameEqual(r.packet, fx.output ?? fx.input, fx.output ? 'output' : 'output (expected unchanged)');
  assert.deepEqual(got, { rx: 1n, [fx.counter]: 1n }, `counters: expected rx +1, ${fx.counter} +1; got ${show(got)}`);
}

// ---------------------------------------------------------------- 1. fixtures

describe('fixtures', () => {
  test('the table is well formed', () => {
    const names = FIXTURES.map((f) => f.description);
    assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), [], 'duplicate descriptions');
    // every counter but 'aborted' (a helper failing where it cannot) and rx is some fixture's outcome
    const covered = new Set(FIXTURES.map((f) => f.counter));
    assert.deepEqual(DECAP_COUNTER_NAMES.filter((n) => n !== 'rx' && n !== 'aborted' && !covered.has(n)), []);
    for (const f of FIXTURES) {
      if (f.output) assert.equal(f.verdict, XDP_PASS, `${f.description}: only a pass has an output`);
    }
  });

  for (const fx of FIXTURES) test(fx.description, () => runFixture(fx));
});

// ---------------------------------------------------------------- 2. allowed sources

describe('allowed sources', () => {
  test('replace, normalise, order; an empty list turns the filter off', async () => {
    const d = await program();
    currentSetup = undefined;
    d.setAllowedSources(['fd00:ff::/64', '198.18.255.0/24', '10.0.0.0/8', '198.18.255.0/24', 'fd00:00ff:0::/64']);
    assert.deepEqual(d.allowedSources(), ['10.0.0.0/8', '198.18.255.0/24', 'fd00:ff::/64']);
    assert.equal(d.filterOn(), true);
    d.setAllowedSources(['198.18.255.3', 'fd00:ff::3']);
    assert.deepEqual(d.allowedSources(), ['198.18.255.3/32', 'fd00:ff::3/128']);
    d.setAllowedSources(['0.0.0.0/0']);
    assert.deepEqual(d.allowedSources(), ['0.0.0.0/0']);
    assert.equal(d.filterOn(), true);
    d.setAllowedSources([]);
    assert.deepEqual(d.allowedSources(), []);
    assert.equal(d.filterOn(), false);
  });

  test('a bad prefix is refused with the reason, and nothing is changed', async () => {
    const d = await program();
    currentSetup = undefined;
    d.setAllowedSources(['198.18.255.0/24']);
    const cases: [string, RegExp][] = [
      ['198.18.0.0/33', /prefix length 33 is not in 0\.\.32/],
      ['fd00::/129', /prefix length 129 is not in 0\.\.128/],
      ['198.18.0.1/24', /bits set past the prefix length \(did you mean 198\.18\.0\.0\/24\?\)/],
      ['fd00::1/64', /did you mean fd00::\/64\?/],
      ['198.18.0/24', /'198\.18\.0' is not an IPv4 or IPv6 address/],
      ['198.18.0.0/', /write ADDRESS\/LENGTH/],
      ['198.18.0.0/2x', /write ADDRESS\/LENGTH/],
      ['198.18.0.0/24/1', /write ADDRESS\/LENGTH/],
      ['eth0', /not an IPv4 or IPv6 address/],
    ];
    for (const [text, message] of cases) {
      assert.throws(() => d.setAllowedSources(['10.0.0.0/8', text]), message, text);
      assert.deepEqual(d.allowedSources(), ['198.18.255.0/24'], `after '${text}'`);
    }
  });

  test(`at most ${XLB_DECAP_MAX_PREFIXES} prefixes per family; the limit itself fits`, async () => {
    const d = await program();
    currentSetup = undefined;
    const v4 = (n: number) => Array.from({ length: n }, (_, i) => `10.${i >> 8}.${i & 0xff}.0/24`);
    assert.throws(() => d.setAllowedSources(v4(XLB_DECAP_MAX_PREFIXES + 1)), /1025 IPv4 prefixes given; at most 1024/);
    d.setAllowedSources([...v4(XLB_DECAP_MAX_PREFIXES), 'fd00::/8']);
    assert.equal(d.allowedSources().length, XLB_DECAP_MAX_PREFIXES + 1);
    // a full list replaced by another full one: the old prefixes make room first
    const other = v4(XLB_DECAP_MAX_PREFIXES).map((p) => p.replace(/^10\./, '11.'));
    d.setAllowedSources(other);
    assert.deepEqual(d.allowedSources(), [...other].sort((a, b) => Buffer.compare(Buffer.from(a.split(/[./]/).map(Number)), Buffer.from(b.split(/[./]/).map(Number)))));
    d.setAllowedSources([]);
  });
});

// ---------------------------------------------------------------- 3. forwarder -> decap

describe('the forwarder and the decapsulation program agree', () => {
  const LB_IN_MAC = '02:00:00:00:00:01';
  const PEER_MAC = '02:00:00:00:02:01';
  const TUN = { tunSrc4: '198.18.255.0', tunSrc4Bits: 8, tunSrc6: 'fd00:ff::', tunSrc6Bits: 16, tunTtl: 37 };
  const svc = (address: string, port: number, protocol: 'tcp' | 'udp'): ServiceSpec => ({ address, port, protocol });
  const real = (address: string): RealSpec => ({ address, weight: 1, method: 'tun', mac: REAL_MAC, smac: LB_MAC });
  const V4 = '198.18.0.50';
  const V6 = 'fd00:18::50';

  test('TUN 4in4 and 6in6, TCP and UDP, with and without VLAN, 200 flows: decapsulated back to the client\'s packet', async () => {
    const d = await program();
    requireFile(XLB_OBJECT, 'make all');
    const fw = XdpForwarder.open({ ctSize: 4096 });
    try {
      fw.setConfig(TUN);
      fw.setService(svc(V4, 80, 'tcp'), [real('198.18.1.11')]);
      fw.setService(svc(V4, 53, 'udp'), [real('198.18.1.11')]);
      fw.setService(svc(V6, 80, 'tcp'), [real('fd00:18:1::11')]);
      fw.setService(svc(V6, 53, 'udp'), [real('fd00:18:1::11')]);
      d.setAllowedSources(['198.18.255.0/24', 'fd00:ff::/112']);
      currentSetup = undefined;

      const before = d.counters();
      const outerSources = new Set<string>();
      let n4 = 0;
      let n6 = 0;
      for (let i = 0; i < 200; i++) {
        const v6 = i % 2 === 1;
        const l2 = eth({ dst: LB_IN_MAC, src: PEER_MAC, ...(i % 5 === 0 ? { vlan: 42 } : {}) });
        const ip = v6 ? ipv6({ src: `fd00:18:2::${(i + 1).toString(16)}`, dst: V6, hopLimit: 60 })
          : ipv4({ src: `198.18.2.${(i % 250) + 1}`, dst: V4, df: i % 3 !== 0, ttl: 60 });
        const l4 = i % 4 < 2 ? tcp({ sport: 10000 + i, dport: 80, flags: i % 8 === 0 ? 'S' : 'PA' }) : udp({ sport: 10000 + i, dport: 53 });
        const client = packet(l2, ip, l4, payload(20 + i));

        const enc = fw.testRun(client);
        assert.equal(xdpVerdictName(enc.verdict), xdpVerdictName(XDP_TX), `forwarder verdict, flow ${i}`);
        const outer = parseFrame(enc.packet).ip;
        assert.ok(outer && outer.proto === (v6 ? 41 : 4), `flow ${i}: an IP-in-IP packet from the forwarder`);
        outerSources.add(outer.src);

        const dec = d.testRun(enc.packet);
        assert.equal(xdpVerdictName(dec.verdict), xdpVerdictName(XDP_PASS), `decap verdict, flow ${i}`);
        assertFrameEqual(dec.packet, withMacs(client, REAL_MAC, LB_MAC), `flow ${i}: decapsulated`);
        if (v6) n6++; else n4++;
      }
      // the forwarder spreads the outer source over the allowed prefixes; all of them came through
      assert.ok(outerSources.size > 50, `${outerSources.size} distinct outer sources`);
      assert.deepEqual(deltas(before, d.counters()), { rx: 200n, decap4: BigInt(n4), decap6: BigInt(n6) });
    } finally {
      fw.close();
    }
  });
});
