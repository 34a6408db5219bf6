/**
 * The reconciler over the real XDP driver (src/datapath/driver.ts's XdpDriver over the loaded
 * forwarder): the plans it applies leave the expected maps — service entries with their flags and
 * persistence, real entries (active, drained), Maglev tables whose shares follow the weights —
 * through health changes and shutdown. Maps only, no traffic (test/bpf/persist.test.ts and
 * forwarder.test.ts send packets).
 *
 * Needs root and a build (`make all`); without them the test fails and says so.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADDON_PATH, type BpfMap } from '../../src/datapath/bpf/index.ts';
import { XDP_CAPABILITIES, XdpDriver } from '../../src/datapath/driver.ts';
import { XdpForwarder } from '../../src/datapath/xdp/forwarder.ts';
import { XLB_REAL_F_ACTIVE, XLB_REAL_F_DRAINED, XLB_SVC_F_HASH_SRC_ONLY, XlbReal, XlbService, XlbVipKey, decode, encode } from '../../src/datapath/xdp/abi.ts';
import { addrBytes, addrText, portField } from '../../src/datapath/xdp/net.ts';
import type { HealthEvent } from '../../src/health/types.ts';
import { Reconciler } from '../../src/model/reconcile.ts';
import { resolveServices } from '../../src/model/validate.ts';
import { XLB_OBJECT, requireFile, requireRoot } from '../lib/require.ts';
import { config, rs, vs } from '../lib/model-builder.ts';
import { macFor } from './flows.ts';
import { EGRESS_MAC } from './fixtures.ts';

const M = 4099;
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };

test('reconciler -> XDP driver -> maps: services, reals, Maglev shares, health changes, shutdown', async () => {
  requireRoot();
  requireFile(XLB_OBJECT, 'make all');
  requireFile(ADDON_PATH, 'make all');
  const parts = XdpForwarder.load({ maglevSize: M, ctSize: 4096, natSize: 1024, persistSize: 4096 });
  // keep every inner table the forwarder makes open (by kernel id), to read the one swapped in
  const tables = new Map<number, BpfMap & { fd: number }>();
  const create = parts.createTable;
  parts.createTable = (id, size) => {
    const t = create(id, size) as BpfMap;
    tables.set(t.info.id, t);
    return Object.assign(Object.create(t) as BpfMap, { close: () => undefined });
  };
  const fw = new XdpForwarder(parts);
  try {
    fw.setConfig({});
    const driver = new XdpDriver(fw, (r) => ({ mac: macFor(r.address), smac: EGRESS_MAC }));
    const rec = new Reconciler({ driver });
    const { services, errors } = resolveServices(config([
      vs('198.18.50.10', 80, [rs('198.18.51.1', 80, { weight: 3 }), rs('198.18.51.2', 80, { weight: 2 }), rs('198.18.51.3', 80, { weight: 1 })],
        { lb_algo: 'wrr', lb_kind: 'DR', persistence_timeout: 300, persistence_granularity: '255.255.255.0' }),
      vs('198.18.50.11', 53, [rs('198.18.51.4', 53), rs('198.18.51.5', 53, { inhibit_on_failure: true })],
        { lb_algo: 'sh', lb_kind: 'DR', protocol: 'UDP' }),
    ]), XDP_CAPABILITIES);
    assert.deepEqual(errors, []);
    // the first apply swaps both tables in with one batch update of the outer map
    const batches: number[][] = [];
    const outerBatch = parts.maps.maglev.updateBatch.bind(parts.maps.maglev);
    parts.maps.maglev.updateBatch = (k, v, n, f) => { batches.push((k as Buffer[]).map((b) => b.readUInt32LE(0))); return outerBatch(k, v, n, f); };
    await rec.setServices(services);
    parts.maps.maglev.updateBatch = outerBatch;
    assert.equal(batches.length, 1);
    assert.equal(batches[0]!.length, 2);

    const serviceEntry = (address: string, port: number, proto: number) => {
      const v = parts.maps.services.lookup(encode(XlbVipKey, { addr: addrBytes(address), port: portField(port), proto, family: 4 }));
      return v ? decode(XlbService, v) : undefined;
    };
    const realEntry = (id: number) => decode(XlbReal, parts.maps.reals.lookup(u32(id))!);
    /** the service's current table: slots per real address */
    const shares = (serviceId: number): Map<string, number> => {
      const inner = parts.maps.maglev.lookup(u32(serviceId));
      assert.ok(inner, `service ${serviceId} has no table`);
      const t = tables.get(inner.readUInt32LE(0));
      assert.ok(t, 'the table in the outer map is not one the forwarder made');
      const out = new Map<string, number>();
      for (let i = 0; i < M; i++) {
        const id = t.lookup(u32(i))!.readUInt32LE(0);
        const r = realEntry(id);
        assert.equal((r.flags as number) & XLB_REAL_F_ACTIVE, XLB_REAL_F_ACTIVE, `slot ${i}: real ${id} is not active`);
        const a = addrText(r.addr as Buffer, 4);
        out.set(a, (out.get(a) ?? 0) + 1);
      }
      return out;
    };

    const web = serviceEntry('198.18.50.10', 80, 6);
    const dns = serviceEntry('198.18.50.11', 53, 17);
    assert.ok(web && dns);
    assert.deepEqual([web.persist_timeout, web.persist_plen, web.flags], [300, 24, 0]);
    assert.deepEqual([dns.persist_timeout, dns.flags], [0, XLB_SVC_F_HASH_SRC_ONLY]);
    let s = shares(web.id as number);
    for (const [a, w] of [['198.18.51.1', 3], ['198.18.51.2', 2], ['198.18.51.3', 1]] as const) {
      assert.ok(Math.abs((s.get(a) ?? 0) / M - w / 6) < 0.01, `${a} has ${s.get(a)} of ${M} slots, expected ${w}/6`);
    }

    // a real fails: its entry goes inactive, the table shares out among the other two. The new
    // table is another map swapped in whole; the old one is left as it was (no slot rewritten in
    // place), and the failed real is deactivated only after the swap
    const ev = (real: string, up: boolean): HealthEvent => ({ real, type: up ? 'up' : 'down', up, weight: 1, checker: { index: 0, kind: 'TCP_CHECK', reason: '' }, at: 0 });
    const tableId = () => parts.maps.maglev.lookup(u32(web.id as number))!.readUInt32LE(0);
    const oldTable = tableId();
    const oldSlots = Buffer.concat(Array.from({ length: M }, (_, i) => tables.get(oldTable)!.lookup(u32(i))!));
    const failedId = oldSlots.readUInt32LE(4 * [...Array(M).keys()].find((i) => addrText(realEntry(oldSlots.readUInt32LE(4 * i)).addr as Buffer, 4) === '198.18.51.2')!);
    const writes: string[] = [];
    const realsUpdate = parts.maps.reals.update.bind(parts.maps.reals);
    const outerUpdate = parts.maps.maglev.update.bind(parts.maps.maglev);
    parts.maps.reals.update = (k, v, f) => { writes.push(`real ${k.readUInt32LE(0)} ${decode(XlbReal, v).flags}`); realsUpdate(k, v, f); };
    parts.maps.maglev.update = (k, v, f) => { writes.push('swap'); outerUpdate(k, v, f); };
    await rec.health({ ...ev('tcp:198.18.50.10:80/[198.18.51.2]:tcp:80', false), weight: 2 });
    parts.maps.reals.update = realsUpdate;
    parts.maps.maglev.update = outerUpdate;
    assert.deepEqual(writes, ['swap', `real ${failedId} 0`], 'the table swapped, then the failed real deactivated');
    assert.notEqual(tableId(), oldTable, 'a new table map');
    assert.ok(Buffer.concat(Array.from({ length: M }, (_, i) => tables.get(oldTable)!.lookup(u32(i))!)).equals(oldSlots), 'the old table was not written');
    s = shares(web.id as number);
    assert.deepEqual([...s.keys()].sort(), ['198.18.51.1', '198.18.51.3']);
    assert.ok(Math.abs((s.get('198.18.51.1') ?? 0) / M - 3 / 4) < 0.01);

    // an inhibit_on_failure real fails: still active, drained, no slots
    await rec.health(ev('udp:198.18.50.11:53/[198.18.51.5]:udp:53', false));
    s = shares(dns.id as number);
    assert.deepEqual([...s.keys()], ['198.18.51.4']);
    const drained = [...Array(64).keys()].map((i) => i + 1).map((id) => ({ id, r: realEntry(id) }))
      .find(({ r }) => addrText(r.addr as Buffer, 4) === '198.18.51.5' && (r.flags as number) !== 0);
    assert.ok(drained, 'the inhibited real has no entry');
    assert.equal(drained.r.flags, XLB_REAL_F_ACTIVE | XLB_REAL_F_DRAINED);

    // shutdown: no services, no tables, every real inactive
    await rec.shutdown();
    assert.equal(serviceEntry('198.18.50.10', 80, 6), undefined);
    assert.equal(serviceEntry('198.18.50.11', 53, 17), undefined);
    assert.equal([...parts.maps.services.keys()].length, 0, 'address markers left behind');
    assert.equal(parts.maps.maglev.lookup(u32(web.id as number)) ?? undefined, undefined);
    for (let id = 1; id <= 16; id++) assert.equal(realEntry(id).flags, 0, `real ${id} still active`);
    assert.deepEqual(driver.services(), []);
  } finally {
    fw.close();
    for (const t of tables.values()) t.close();
  }
});
