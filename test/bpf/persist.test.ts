/**
 * Persistence in the XDP forwarder (IPVS persistence_timeout / persistence_granularity) through
 * BPF_PROG_TEST_RUN: a client network keeps its real for all its new connections while it keeps
 * coming within the timeout, also when the set of reals changes, unless its real is removed or
 * drained; templates age out after the service's own timeout (aged by rewriting their timestamp:
 * CLOCK_MONOTONIC nanoseconds, which process.hrtime.bigint() reads); established connections keep
 * their template alive; fragments and ICMP errors follow the template.
 *
 * Needs root and a build (`make all`); without them every test fails and says so.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADDON_PATH } from '../../src/datapath/bpf/index.ts';
import { XdpForwarder, type ForwarderParts, type RealSpec, type ServiceSpec } from '../../src/datapath/xdp/forwarder.ts';
import { XlbFlow, XlbPersist, XlbPersistKey, encode } from '../../src/datapath/xdp/abi.ts';
import { XLB_OBJECT, requireFile, requireRoot } from '../lib/require.ts';
import { E, countBy, deltas, drReal, forward, realByMac, showDeltas, tcpFrame } from './flows.ts';
import { IPPROTO, ipv4, packet, payload, udp } from '../lib/packets.ts';

let loading: Promise<{ fw: XdpForwarder; parts: ForwarderParts }> | undefined;

function forwarder(): Promise<{ fw: XdpForwarder; parts: ForwarderParts }> {
  loading ??= (async () => {
    requireRoot();
    requireFile(XLB_OBJECT, 'make all');
    requireFile(ADDON_PATH, 'make all');
    const parts = XdpForwarder.load({ ctSize: 65536, natSize: 1024, persistSize: 65536, maglevSize: 4099 });
    const fw = new XdpForwarder(parts);
    fw.setConfig({});
    return { fw, parts };
  })();
  return loading;
}

after(async () => {
  const l = await loading?.catch(() => undefined);
  l?.fw.close();
});

/** A clean slate for one test: no flows, no templates; the service removed at the end. */
async function withService<T>(service: ServiceSpec, reals: RealSpec[], body: (fw: XdpForwarder, parts: ForwarderParts) => Promise<T> | T): Promise<T> {
  const { fw, parts } = await forwarder();
  fw.clearConntrack();
  fw.clearPersist();
  fw.setService(service, reals);
  try {
    return await body(fw, parts);
  } finally {
    fw.removeService(service);
  }
}

const lastField = XlbPersist.fields.find((x) => x.name === 'last')!;
const realIdField = XlbPersist.fields.find((x) => x.name === 'real_id')!;

/** Move every template's timestamp `seconds` into the past. */
function agePersist(parts: ForwarderParts, seconds: number): void {
  for (const [k, v] of [...parts.maps.persist.entries()]) {
    const out = Buffer.from(v);
    out.writeBigUInt64LE(v.readBigUInt64LE(lastField.offset) - BigInt(Math.round(seconds * 1000)) * 1_000_000n, lastField.offset);
    parts.maps.persist.update(k, out);
  }
}

/** Make every flow's last template refresh (persist_seen, in about-seconds) one second older. */
function ageFlowSeen(parts: ForwarderParts): void {
  const f = XlbFlow.fields.find((x) => x.name === 'persist_seen')!;
  for (const map of [parts.maps.conntrack4, parts.maps.conntrack]) {
    for (const [k, v] of [...map.entries()]) {
      const out = Buffer.from(v);
      out.writeUInt16LE((v.readUInt16LE(f.offset) - 1) & 0xffff, f.offset);
      map.update(k, out);
    }
  }
}

/** The map key of the template of this (IPv4, /32) client, built from the ABI layout. */
function persistKey(fw: XdpForwarder, client: string): Buffer {
  const t = fw.persistList().find((x) => x.client === client);
  assert.ok(t, `no template for ${client}`);
  return encode(XlbPersistKey, { service_id: t.serviceId, family: 4, addr: Buffer.from(client.split('.').map(Number)) });
}

const reals4 = (n: number, base = 1) => Array.from({ length: n }, (_, i) => drReal(`198.18.41.${base + i}`));
const SYN = (client: string, sport: number, svc: ServiceSpec) => tcpFrame(client, sport, svc.address, svc.port, 'S');
const ACK = (client: string, sport: number, svc: ServiceSpec) => tcpFrame(client, sport, svc.address, svc.port, 'A', payload(10));

describe('persistence', () => {
  test('one client: every new connection goes to one real; without persistence they spread', async () => {
    const plain: ServiceSpec = { address: '198.18.40.1', port: 80, protocol: 'tcp' };
    const persistent: ServiceSpec = { ...plain, address: '198.18.40.2', persistence: { timeout: 300 } };
    const reals = reals4(5);
    const realOf = realByMac(reals);
    const spread = await withService(plain, reals, (fw) => new Set(Array.from({ length: 100 }, (_, i) => realOf(forward(fw, SYN('198.18.42.1', 20000 + i, plain))))));
    assert.ok(spread.size >= 4, `control: 100 connections of one client without persistence reached only ${spread.size} reals`);
    await withService(persistent, reals, (fw) => {
      const before = fw.counters();
      const used = countBy(Array.from({ length: 100 }, (_, i) => realOf(forward(fw, SYN('198.18.42.1', 20000 + i, persistent)))));
      const d = deltas(before, fw.counters());
      assert.equal(used.size, 1, `100 connections of one client reached ${[...used.keys()].join(', ')}`);
      assert.equal(d.persist_new, 1n, showDeltas(d));
      assert.equal(d.persist_hit, 99n, showDeltas(d));
      assert.equal(fw.persistList().length, 1);
      assert.equal(fw.persistList()[0]!.client, '198.18.42.1');
    });
  });

  test('granularity /24: a client network shares its real; other networks spread over the reals', async () => {
    const svc: ServiceSpec = { address: '198.18.40.3', port: 443, protocol: 'tcp', persistence: { timeout: 300, granularity: 24 } };
    const reals = reals4(4, 10);
    const realOf = realByMac(reals);
    await withService(svc, reals, (fw) => {
      const nets = Array.from({ length: 64 }, (_, n) => n);
      const byNet = nets.map((n) => new Set(Array.from({ length: 20 }, (_, h) => realOf(forward(fw, SYN(`198.19.${n}.${1 + h * 7}`, 30000 + h, svc))))));
      byNet.forEach((s, n) => assert.equal(s.size, 1, `hosts of 198.19.${n}.0/24 went to ${[...s].join(', ')}`));
      const shares = countBy(byNet.map((s) => [...s][0]!));
      assert.equal(shares.size, 4, `64 client networks reached only ${shares.size} of 4 reals`);
      assert.equal(fw.persistList().length, 64, 'one template per /24');
      assert.ok(fw.persistList().every((t) => t.client.endsWith('.0')), 'template keys are the masked addresses');
    });
  });

  test('IPv6 /64: a client network shares its real', async () => {
    const svc: ServiceSpec = { address: 'fd00:40::4', port: 80, protocol: 'tcp', persistence: { timeout: 300, granularity: 64 } };
    const reals = Array.from({ length: 4 }, (_, i) => drReal(`fd00:41::${i + 1}`));
    const realOf = realByMac(reals);
    await withService(svc, reals, (fw) => {
      for (let n = 0; n < 16; n++) {
        const s = new Set(Array.from({ length: 10 }, (_, h) => realOf(forward(fw, SYN(`fd00:42:0:${n.toString(16)}::${(h + 1).toString(16)}`, 40000 + h, svc)))));
        assert.equal(s.size, 1, `hosts of fd00:42:0:${n.toString(16)}::/64 went to ${[...s].join(', ')}`);
      }
      assert.ok(fw.persistList().every((t) => /^fd00:42(:0:[0-9a-f]+)?::$/.test(t.client)), fw.persistList().map((t) => t.client).join(' '));
    });
  });

  test('reals added and removed: clients keep their real; clients of a removed real move and stay moved', async () => {
    const svc: ServiceSpec = { address: '198.18.40.5', port: 80, protocol: 'tcp', persistence: { timeout: 300 } };
    const reals = reals4(8, 20);
    const [A, B, C, D] = reals as [RealSpec, RealSpec, RealSpec, RealSpec];
    const realOf = realByMac(reals);
    await withService(svc, [A, B, C], (fw) => {
      const clients = Array.from({ length: 300 }, (_, i) => `198.19.${100 + Math.floor(i / 250)}.${(i % 250) + 1}`);
      const first = clients.map((c, i) => realOf(forward(fw, SYN(c, 1000 + i, svc))));
      // grow the pool: a plain Maglev service would move about 1/4 of the clients to D
      fw.setService(svc, [A, B, C, D]);
      let before = fw.counters();
      const second = clients.map((c, i) => realOf(forward(fw, SYN(c, 2000 + i, svc))));
      let d = deltas(before, fw.counters());
      assert.deepEqual(second, first, 'a client changed real when a real was added');
      assert.equal(d.persist_hit, BigInt(clients.length), showDeltas(d));
      // remove B: its clients move (new templates), the others stay
      fw.setService(svc, [A, C, D]);
      before = fw.counters();
      const third = clients.map((c, i) => realOf(forward(fw, SYN(c, 3000 + i, svc))));
      d = deltas(before, fw.counters());
      const onB = first.filter((r) => r === B.address).length;
      assert.ok(onB > 0);
      third.forEach((r, i) => {
        if (first[i] === B.address) assert.notEqual(r, B.address, `client ${clients[i]} still sent to the removed real`);
        else assert.equal(r, first[i], `client ${clients[i]} moved although its real stayed`);
      });
      assert.equal(d.persist_new, BigInt(onB), showDeltas(d));
      const fourth = clients.map((c, i) => realOf(forward(fw, SYN(c, 4000 + i, svc))));
      assert.deepEqual(fourth, third, 'moved clients must stay where they moved');
    });
  });

  test('a drained real (weight 0) keeps its connections but gets no new ones, also from its clients', async () => {
    const svc: ServiceSpec = { address: '198.18.40.6', port: 80, protocol: 'tcp', persistence: { timeout: 300 } };
    const reals = reals4(3, 30);
    const realOf = realByMac(reals);
    await withService(svc, reals, (fw) => {
      const clients = Array.from({ length: 60 }, (_, i) => `198.19.110.${i + 1}`);
      const first = clients.map((c, i) => realOf(forward(fw, SYN(c, 1000 + i, svc))));
      const drained = reals[0]!;
      fw.setService(svc, [{ ...drained, weight: 0 }, ...reals.slice(1)]);
      clients.forEach((c, i) => assert.equal(realOf(forward(fw, ACK(c, 1000 + i, svc))), first[i], `established connection of ${c} left its real`));
      const fresh = clients.map((c, i) => realOf(forward(fw, SYN(c, 5000 + i, svc))));
      assert.equal(fresh.filter((r) => r === drained.address).length, 0, 'a new connection went to the drained real');
      fresh.forEach((r, i) => { if (first[i] !== drained.address) assert.equal(r, first[i], `client ${clients[i]} moved`); });
    });
  });

  test('timeout per service: a template lives its timeout after the last packet, then a new one is made', async () => {
    const reals = reals4(6, 40);
    const realOf = realByMac(reals);
    const client = '198.19.120.1';
    for (const timeout of [60, 300]) {
      const svc: ServiceSpec = { address: '198.18.40.7', port: 80, protocol: 'tcp', persistence: { timeout } };
      await withService(svc, reals, (fw, parts) => {
        forward(fw, SYN(client, 1000, svc));
        const [t] = fw.persistList();
        assert.ok(t);
        // point the template at a real the client would not get from Maglev, so expiry shows
        const other = reals.find((r) => r.address !== realOf(forward(fw, SYN(client, 1001, svc))))!;
        const otherId = fw.setService(svc, reals).realIds.get(other.address)!;
        const v = Buffer.alloc(XlbPersist.size);
        v.writeBigUInt64LE(process.hrtime.bigint(), lastField.offset);
        v.writeUInt32LE(otherId, realIdField.offset);
        parts.maps.persist.update(persistKey(fw, client), v);

        agePersist(parts, timeout - 2);
        let before = fw.counters();
        assert.equal(realOf(forward(fw, SYN(client, 1002, svc))), other.address, `at ${timeout - 2} s the template holds`);
        assert.equal(deltas(before, fw.counters()).persist_hit, 1n);
        // that connection refreshed it: age it past the timeout
        agePersist(parts, timeout + 2);
        before = fw.counters();
        const got = realOf(forward(fw, SYN(client, 1003, svc)));
        const d = deltas(before, fw.counters());
        assert.equal(d.persist_new, 1n, `at ${timeout + 2} s the template has expired: ${showDeltas(d)}`);
        assert.notEqual(got, other.address);
        const fresh = fw.persistList()[0]!;
        assert.ok(process.hrtime.bigint() - fresh.last < 1_000_000_000n, 'the new template was last seen now');
      });
    }
  });

  test('established connections keep the template alive: a flow looks at it once a second; an expired one is rewritten', async () => {
    const svc: ServiceSpec = { address: '198.18.40.8', port: 80, protocol: 'tcp', persistence: { timeout: 30 } };
    const reals = reals4(4, 50);
    const realOf = realByMac(reals);
    await withService(svc, reals, (fw, parts) => {
      const client = '198.19.130.1';
      const real = realOf(forward(fw, SYN(client, 1000, svc)));
      const lastOf = () => fw.persistList()[0]!.last;
      const fresh = () => process.hrtime.bigint() - lastOf() < 1_000_000_000n;
      // the flow's first established packet looks at the template: younger than a second, not written
      const t0 = lastOf();
      forward(fw, ACK(client, 1000, svc));
      assert.equal(lastOf(), t0, 'a template younger than 1 s was rewritten by an established packet');
      // within the flow's same second it does not look again, however old the template
      agePersist(parts, 10);
      forward(fw, ACK(client, 1000, svc));
      assert.ok(!fresh(), 'an established packet refreshed the template twice in one second of its flow');
      // a second later (the flow's persist_seen moved back): refreshed
      ageFlowSeen(parts);
      forward(fw, ACK(client, 1000, svc));
      assert.ok(fresh(), 'an established packet did not refresh a 10 s old template');
      // expired while the connection lasted: rewritten with the connection's real
      agePersist(parts, 40);
      ageFlowSeen(parts);
      const before = fw.counters();
      assert.equal(realOf(forward(fw, ACK(client, 1000, svc))), real);
      assert.equal(deltas(before, fw.counters()).ct_hit, 1n);
      assert.ok(fresh(), 'an expired template was not rewritten by its client\'s established flow');
      assert.equal(realOf(forward(fw, SYN(client, 1001, svc))), real, 'the next connection follows the connection still open');
    });
  });

  test('two persistent services: independent templates for the same client', async () => {
    const a: ServiceSpec = { address: '198.18.40.9', port: 80, protocol: 'tcp', persistence: { timeout: 300 } };
    const b: ServiceSpec = { ...a, port: 443 };
    const reals = reals4(4, 60);
    const { fw } = await forwarder();
    fw.setService(b, reals);
    try {
      await withService(a, reals, () => {
        for (let n = 0; n < 40; n++) {
          forward(fw, SYN(`198.19.140.${n + 1}`, 1000, a));
          forward(fw, SYN(`198.19.140.${n + 1}`, 1000, b));
        }
        const ids = countBy(fw.persistList().map((t) => t.serviceId));
        assert.deepEqual([...ids.values()], [40, 40]);
      });
    } finally {
      fw.removeService(b);
    }
  });

  test('all-ports UDP service: fragments follow the client\'s template', async () => {
    const svc: ServiceSpec = { address: '198.18.40.10', port: 0, protocol: 'udp', persistence: { timeout: 300 } };
    const reals = reals4(5, 70);
    const realOf = realByMac(reals);
    await withService(svc, reals, (fw, parts) => {
      for (let n = 0; n < 30; n++) {
        const client = `198.19.150.${n + 1}`;
        const whole = realOf(forward(fw, packet(E, ipv4({ src: client, dst: svc.address }), udp({ sport: 5000, dport: 53 }), payload(8))));
        // move the template to another real: the fragment must follow it, not the address hash
        const other = reals.find((r) => r.address !== whole)!;
        const id = fw.setService(svc, reals).realIds.get(other.address)!;
        const key = persistKey(fw, client);
        const value = Buffer.from(parts.maps.persist.lookup(key)!);
        value.writeUInt32LE(id, realIdField.offset);
        parts.maps.persist.update(key, value);
        const frag = packet(E, ipv4({ src: client, dst: svc.address, mf: false, fragOffset: 100, id: 7, proto: IPPROTO.UDP }), payload(40));
        const before = fw.counters();
        assert.equal(realOf(forward(fw, frag)), other.address, `a fragment of ${client} did not follow its template`);
        const d = deltas(before, fw.counters());
        assert.equal(d.fragment_fwd, 1n, showDeltas(d));
        assert.equal(d.persist_hit ?? 0n, 0n, 'fragments read templates, they do not count or refresh them');
      }
    });
  });
});
