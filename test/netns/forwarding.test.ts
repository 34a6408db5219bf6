/**
 * Forwarding end to end, with real traffic in the namespace lab: for every forwarding method,
 * IPv4 and IPv6, TCP (HTTP GETs through the VIP) and UDP (echo of a unique payload), many flows
 * each; every reply is checked, every real must be seen serving, and the LB's counters must
 * agree with what the client saw (connections per real, packets forwarded, nothing dropped).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RealSpec, ServiceSpec } from '../../src/datapath/xdp/forwarder.ts';
import {
  addrOf, counters, delta, drReals, drops, settledStats, startRig, urlOf, vipOf, type Family, type Rig,
} from './rig.ts';

const FLOWS = 30;
const FAMILIES: Family[] = [4, 6];
const PROTOCOLS = ['tcp', 'udp'] as const;
type Proto = (typeof PROTOCOLS)[number];

interface Case {
  family: Family;
  proto: Proto;
  /** the service's port on the VIP */
  port: number;
  reals: RealSpec[];
  /** the global counter a forwarded packet adds */
  verdict: 'tx' | 'redirect';
}

/** Set the service, send FLOWS flows through the VIP, check the replies and the counters; remove it. */
async function runCase(rig: Rig, c: Case): Promise<void> {
  const { lab, lb, client } = rig;
  const vip = vipOf(lab, c.family);
  const service: ServiceSpec = { address: vip, port: c.port, protocol: c.proto };
  const before = counters((await lb.call({ op: 'counters' })).counters);
  await lb.call({ op: 'service', service, reals: c.reals });
  try {
    const r = c.proto === 'tcp'
      ? await client.call({ op: 'http', url: urlOf(vip, c.port), count: FLOWS })
      : await client.call({ op: 'udp', address: vip, port: c.port, count: FLOWS });
    assert.deepEqual(r.errors, [], 'every flow answered, with the right reply, from the VIP');
    const served = r.served as Record<string, number>;
    const names = lab.reals.map((x) => x.name);
    assert.deepEqual(Object.keys(served).sort(), names, `every real served (served: ${JSON.stringify(served)})`);
    assert.equal(Object.values(served).reduce((a, b) => a + b, 0), FLOWS);

    const addrs = lab.reals.map((x) => addrOf(x, c.family));
    const s = await settledStats(lb, service, addrs);
    const d = delta(s.counters, before);
    // connections: one per flow, each counted on the real the client saw answering
    assert.equal(s.service.conns, BigInt(FLOWS), 'the service scheduled one connection per flow');
    for (const real of lab.reals) {
      assert.equal(s.reals[addrOf(real, c.family)]?.conns, BigInt(served[real.name] ?? 0), `${real.name}'s connections`);
    }
    assert.equal(d.ct_miss, BigInt(FLOWS), 'one connection-table miss (a schedule) per flow');
    if (c.proto === 'udp') assert.equal(s.service.packets, BigInt(FLOWS), 'one datagram per flow');
    else assert.ok(s.service.packets >= BigInt(4 * FLOWS), `a TCP flow is at least 4 packets (${s.service.packets})`);
    // every packet of the service left by the method's verdict, none was dropped
    assert.equal(d[c.verdict], s.service.packets, `every forwarded packet counted as ${c.verdict}`);
    assert.equal(d.ct_hit! + d.ct_miss!, s.service.packets, 'every packet consulted the connection table');
    assert.deepEqual(drops(d), {}, 'nothing dropped');
  } finally {
    await lb.call({ op: 'remove', service });
  }
}

function cases(name: string, make: (family: Family, proto: Proto) => Omit<Case, 'family' | 'proto'>, getRig: () => Rig): void {
  for (const family of FAMILIES) {
    for (const proto of PROTOCOLS) {
      test(`${name} ${proto.toUpperCase()} IPv${family}: ${FLOWS} flows spread over every real, replies and counters checked`, () =>
        runCase(getRig(), { family, proto, ...make(family, proto) }));
    }
  }
}

describe('forwarding end to end (lab routing: direct)', () => {
  let rig: Rig | undefined;
  const getRig = () => { assert.ok(rig, 'the lab did not come up'); return rig; };
  before(async () => { rig = await startRig({ reals: 3, routing: 'direct' }); });
  after(async () => { await rig?.close(); });

  cases('DR', (family, proto) => {
    const lab = getRig().lab;
    return {
      port: proto === 'tcp' ? lab.ports.http[0]! : lab.ports.echo,
      reals: drReals(lab, family, Object.fromEntries(lab.reals.map((r) => [r.name, 1]))),
      verdict: 'tx',
    };
  }, getRig);
});
