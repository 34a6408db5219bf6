/**
 * Forwarding end to end, with real traffic in the namespace lab: for every forwarding method
 * (DR, TUN, NAT, full-NAT), IPv4 and IPv6, TCP (HTTP GETs through the VIP) and UDP (echo of a
 * unique payload), many flows each; every reply is checked (from the VIP, the right payload,
 * the port the real saw: NAT and full-NAT rewrite VIP :80 to real :8080), every real must be
 * seen serving, and the LB's counters must agree with what the client saw (connections per
 * real, NAT state and translated replies, packets forwarded, nothing dropped). With TUN, the
 * reals run `xlb decap` (bin/xlb), whose counters must match what the LB sent each real.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { LabOptions } from '../../scripts/lab/lab.ts';
import type { Method, ServiceSpec } from '../../src/datapath/xdp/forwarder.ts';
import {
  addrOf, counters, decapCounters, delta, drops, labConfig, realSpecs, settledStats, startRig, urlOf, vipOf, type Family, type Rig,
} from './rig.ts';

const FLOWS = 30;
const FAMILIES: Family[] = [4, 6];
const PROTOCOLS = ['tcp', 'udp'] as const;
type Proto = (typeof PROTOCOLS)[number];
const NAT_METHODS: readonly Method[] = ['nat', 'fullnat'];

interface Case {
  method: Method;
  family: Family;
  proto: Proto;
  /** the service's port on the VIP */
  port: number;
  /** NAT, full-NAT: the reals' port */
  realPort?: number;
}

/**
 * Set the service, send FLOWS flows through the VIP, check the replies and the LB's counters,
 * remove the service; returns the packets each real was sent (by real name).
 */
async function runCase(rig: Rig, c: Case): Promise<Record<string, bigint>> {
  const { lab, lb, client } = rig;
  const vip = vipOf(lab, c.family);
  const service: ServiceSpec = { address: vip, port: c.port, protocol: c.proto };
  const reals = realSpecs(lab, c.family, c.method, Object.fromEntries(lab.reals.map((r) => [r.name, 1])), c.realPort);
  const nat = NAT_METHODS.includes(c.method);
  const before = counters((await lb.call({ op: 'counters' })).counters);
  const natBefore = (await lb.call({ op: 'nat' })).entries as number;
  await lb.call({ op: 'service', service, reals });
  try {
    const r = c.proto === 'tcp'
      ? await client.call({ op: 'http', url: urlOf(vip, c.port), count: FLOWS })
      : await client.call({ op: 'udp', address: vip, port: c.port, count: FLOWS });
    assert.deepEqual(r.errors, [], 'every flow answered, with the right reply, from the VIP');
    const served = r.served as Record<string, number>;
    const names = lab.reals.map((x) => x.name);
    assert.deepEqual(Object.keys(served).sort(), names, `every real served (served: ${JSON.stringify(served)})`);
    assert.equal(Object.values(served).reduce((a, b) => a + b, 0), FLOWS);
    if (c.proto === 'tcp') {
      assert.deepEqual(r.ports, { [c.realPort ?? c.port]: FLOWS }, 'the port the reals saw');
    }

    const s = await settledStats(lb, service, reals.map((x) => x.address));
    const d = delta(s.counters, before);
    // connections: one per flow, each counted on the real the client saw answering
    assert.equal(s.service.conns, BigInt(FLOWS), 'the service scheduled one connection per flow');
    for (const real of lab.reals) {
      assert.equal(s.reals[addrOf(real, c.family)]?.conns, BigInt(served[real.name] ?? 0), `${real.name}'s connections`);
    }
    // a flow's first packet is a miss, or meets the entry of an earlier case's flow that had the
    // same addresses and ports, whose real is gone (stale): scheduled either way
    assert.equal(d.ct_miss! + d.ct_stale!, BigInt(FLOWS), 'one schedule per flow');
    assert.equal(d.ct_hit! + d.ct_miss! + d.ct_stale!, s.service.packets, 'every packet consulted the connection table');
    if (c.proto === 'udp') assert.equal(s.service.packets, BigInt(FLOWS), 'one datagram per flow');
    else assert.ok(s.service.packets >= BigInt(4 * FLOWS), `a TCP flow is at least 4 packets (${s.service.packets})`);
    if (nat) {
      // NAT state: one entry per flow; every reply came back through the LB, translated
      assert.equal(d.nat_created, BigInt(FLOWS), 'NAT state created once per flow');
      assert.equal((await lb.call({ op: 'nat' })).entries as number - natBefore, FLOWS, 'one NAT entry per flow');
      if (c.proto === 'udp') assert.equal(d.nat_reply, BigInt(FLOWS), 'one reply per datagram, translated');
      else assert.ok(d.nat_reply! >= BigInt(2 * FLOWS), `at least a SYN-ACK and an answer per flow translated (${d.nat_reply})`);
      assert.equal(d.tx, s.service.packets + d.nat_reply!, 'every packet, both ways, left by XDP_TX');
    } else {
      // replies went straight from the reals to the client
      assert.equal(d.nat_reply, 0n, 'no reply passed the LB');
      assert.equal(d.tx, s.service.packets, 'every forwarded packet left by XDP_TX');
    }
    assert.deepEqual(drops(d), {}, 'nothing dropped');
    return Object.fromEntries(lab.reals.map((x) => [x.name, s.reals[addrOf(x, c.family)]?.packets ?? 0n]));
  } finally {
    await lb.call({ op: 'remove', service });
  }
}

/** One test per family and protocol; `seen` gets the packets each real was sent. */
function cases(rig: () => Rig, method: Method, opts: { realPort?: number; seen?: (family: Family, packets: Record<string, bigint>) => void } = {}): void {
  for (const family of FAMILIES) {
    for (const proto of PROTOCOLS) {
      const what = proto === 'tcp' ? `TCP (HTTP${opts.realPort ? `, VIP :80 -> real :${opts.realPort}` : ''})` : 'UDP (echo)';
      test(`${method.toUpperCase()} ${what} IPv${family}: ${FLOWS} flows spread over every real, replies and counters checked`, async () => {
        const { lab } = rig();
        const port = proto === 'tcp' ? lab.ports.http[0]! : lab.ports.echo;
        const packets = await runCase(rig(), { method, family, proto, port, realPort: proto === 'tcp' ? opts.realPort : undefined });
        opts.seen?.(family, packets);
      });
    }
  }
}

function withRig(opts: LabOptions): () => Rig {
  let rig: Rig | undefined;
  before(async () => {
    rig = await startRig(opts);
    await rig.lb.call({ op: 'config', ...labConfig(rig.lab) });
  });
  after(async () => { await rig?.close(); });
  return () => { assert.ok(rig, 'the lab did not come up'); return rig; };
}

describe('forwarding end to end, lab routing direct: DR, TUN (xlb decap on the reals), full-NAT', () => {
  const rig = withRig({ reals: 3, routing: 'direct', decap: true });
  cases(rig, 'dr');

  const tunPackets: Record<Family, Record<string, bigint>> = { 4: {}, 6: {} };
  cases(rig, 'tun', {
    seen: (family, packets) => {
      for (const [real, n] of Object.entries(packets)) tunPackets[family][real] = (tunPackets[family][real] ?? 0n) + n;
    },
  });
  test("TUN: each real's xlb decap decapsulated exactly the packets the LB tunnelled to it", () => {
    for (const r of rig().lab.reals) {
      const c = decapCounters(r.ns);
      assert.equal(c.decap4, tunPackets[4][r.name] ?? 0n, `${r.name}: 4in4 packets`);
      assert.equal(c.decap6, tunPackets[6][r.name] ?? 0n, `${r.name}: 6in6 packets`);
      assert.deepEqual(drops(c), {}, `${r.name}: nothing dropped`);
      assert.ok((c.decap4 ?? 0n) > 0n && (c.decap6 ?? 0n) > 0n, `${r.name} got tunnelled traffic of both families`);
    }
  });

  cases(rig, 'fullnat', { realPort: 8080 });
});

describe('forwarding end to end, lab routing via-lb: NAT', () => {
  const rig = withRig({ reals: 3, routing: 'via-lb' });
  cases(rig, 'nat', { realPort: 8080 });
});
