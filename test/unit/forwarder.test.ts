/**
 * The forwarder's control logic over in-memory maps: ids, the order of map writes that keeps
 * every packet's view consistent, and validation. (The program itself is tested in test/bpf.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeMap } from '../../src/datapath/bpf/fake.ts';
import {
  BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, type MapLike,
} from '../../src/datapath/bpf/index.ts';
import { XdpForwarder, type ForwarderMaps, type RealSpec, type ServiceSpec } from '../../src/datapath/xdp/forwarder.ts';
import { XLB_CNT_MAX, XLB_REAL_F_ACTIVE, XlbConfig, XlbFlow, XlbFlowKey, XlbReal, XlbService, XlbStats, XlbVipKey, decode } from '../../src/datapath/xdp/abi.ts';
import { buildMaglevTable } from '../../src/datapath/xdp/maglev.ts';

const M = 251;

function rig() {
  const log: string[] = [];
  const record = (name: string, m: FakeMap): FakeMap => {
    const update = m.update.bind(m);
    const del = m.delete.bind(m);
    m.update = (k: Buffer, v: Buffer, f?: number) => {
      log.push(name === 'services' ? `services.update port ${k.readUInt16BE(16)} proto ${k[18]}` : `${name}.update ${k.readUInt32LE(0)}`);
      update(k, v, f);
    };
    m.delete = (k: Buffer) => { log.push(`${name}.delete`); return del(k); };
    return m;
  };
  const maps: ForwarderMaps = {
    services: record('services', new FakeMap({ type: BPF_MAP_TYPE_HASH, keySize: XlbVipKey.size, valueSize: XlbService.size, maxEntries: 64 })),
    // the outer array-of-maps: a hash of u32 → inner fd here (the kernel's allows delete, as a hash does)
    maglev: record('maglev', new FakeMap({ type: BPF_MAP_TYPE_HASH, keySize: 4, valueSize: 4, maxEntries: 16 })),
    reals: record('reals', new FakeMap({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: XlbReal.size, maxEntries: 64 })),
    conntrack: new FakeMap({ type: BPF_MAP_TYPE_LRU_HASH, keySize: XlbFlowKey.size, valueSize: XlbFlow.size, maxEntries: 64 }),
    serviceStats: new FakeMap({ type: BPF_MAP_TYPE_PERCPU_ARRAY, keySize: 4, valueSize: XlbStats.size, maxEntries: 16, cpus: 2 }),
    realStats: new FakeMap({ type: BPF_MAP_TYPE_PERCPU_ARRAY, keySize: 4, valueSize: XlbStats.size, maxEntries: 64, cpus: 2 }),
    globalStats: new FakeMap({ type: BPF_MAP_TYPE_PERCPU_ARRAY, keySize: 4, valueSize: 8, maxEntries: XLB_CNT_MAX, cpus: 2 }),
    config: new FakeMap({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: XlbConfig.size, maxEntries: 1 }),
  };
  const tables = new Map<number, MapLike>();
  let nextFd = 1000;
  const fw = new XdpForwarder({
    maps, maglevSize: M, maxServices: 16, maxReals: 64,
    createTable: (_id, size) => {
      const t = Object.assign(new FakeMap({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: 4, maxEntries: size }), { fd: nextFd++ });
      t.close = () => undefined; // the outer map keeps its reference, as the kernel's does
      tables.set(t.fd, t);
      log.push(`table.create ${t.fd}`);
      return t;
    },
  });
  const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
  /** the table the outer map currently points at, as real ids */
  const tableOf = (serviceId: number): Uint32Array => {
    const fd = maps.maglev.lookup(u32(serviceId))!.readUInt32LE(0);
    const t = tables.get(fd)!;
    return Uint32Array.from({ length: M }, (_, i) => t.lookup(u32(i))!.readUInt32LE(0));
  };
  const real = (id: number) => decode(XlbReal, maps.reals.lookup(u32(id))!);
  return { fw, maps, log, tableOf, real };
}

const svc: ServiceSpec = { address: '198.18.0.10', port: 80, protocol: 'tcp' };
const r = (n: number, weight = 1, mac = `02:00:00:00:01:0${n}`): RealSpec =>
  ({ address: `198.18.1.${n}`, weight, method: 'dr', mac, smac: '02:00:00:00:00:fe' });

test('a new service: reals written first, then the table swapped in, then the service entry', () => {
  const { fw, log, tableOf, real } = rig();
  const { serviceId, realIds } = fw.setService(svc, [r(1), r(2)]);
  assert.equal(serviceId, 1);
  assert.deepEqual([...realIds.values()], [1, 2]);
  assert.deepEqual(log, [
    'reals.update 1', 'reals.update 2', 'table.create 1000', 'maglev.update 1',
    'services.update port 80 proto 6', 'services.update port 0 proto 0', // the service, then its address marker
  ]);
  assert.deepEqual(tableOf(1), buildMaglevTable([{ key: '198.18.1.1', id: 1, weight: 1 }, { key: '198.18.1.2', id: 2, weight: 1 }], M));
  assert.equal(real(1).flags, XLB_REAL_F_ACTIVE);
  assert.equal((real(1).dmac as Buffer).toString('hex'), '020000000101');
});

test('unchanged reals keep their ids; a changed MAC gets a new id; removed reals are deactivated after the swap', () => {
  const { fw, log, real } = rig();
  fw.setService(svc, [r(1), r(2), r(3)]);
  log.length = 0;
  const { realIds } = fw.setService(svc, [r(1), r(2, 1, '02:00:00:00:02:99')]);
  assert.equal(realIds.get('198.18.1.1'), 1);
  assert.equal(realIds.get('198.18.1.2'), 4, 'a changed entry is never rewritten in place');
  const swap = log.indexOf('maglev.update 1');
  assert.ok(swap > log.indexOf('reals.update 4'), 'new real written before the table that uses it');
  assert.ok(log.indexOf('reals.update 2') > swap && log.indexOf('reals.update 3') > swap, 'old reals retired after the swap');
  assert.equal(real(2).flags, 0);
  assert.equal(real(3).flags, 0);
  assert.equal(real(1).flags, XLB_REAL_F_ACTIVE);
});

test('a drained real (weight 0) stays active but has no slots', () => {
  const { fw, tableOf, real } = rig();
  fw.setService(svc, [r(1), r(2)]);
  fw.setService(svc, [r(1, 0), r(2)]);
  assert.equal(real(1).flags, XLB_REAL_F_ACTIVE);
  assert.ok(tableOf(1).every((id) => id === 2));
});

test('freed ids are reused last: first freed, first reused, only after fresh ones run out', () => {
  const { fw } = rig();
  fw.setService(svc, [r(1), r(2)]);
  fw.setService(svc, [r(2)]);
  const { realIds } = fw.setService(svc, [r(2), r(1)]);
  assert.equal(realIds.get('198.18.1.1'), 3);
});

test('removing a service deletes its entry first and its address marker when no service is left', () => {
  const { fw, maps, log } = rig();
  fw.setService(svc, [r(1)]);
  fw.setService({ ...svc, port: 443 }, [r(1)]);
  assert.equal([...maps.services.keys()].length, 3); // two services + one address marker
  log.length = 0;
  fw.removeService(svc);
  assert.equal(log[0], 'services.delete');
  assert.equal([...maps.services.keys()].length, 2);
  fw.removeService({ ...svc, port: 443 });
  assert.equal([...maps.services.keys()].length, 0);
  assert.equal(fw.removeService(svc), false);
});

test('bad specs are refused with a clear reason and change nothing', () => {
  const { fw, maps, real } = rig();
  assert.throws(() => fw.setService({ ...svc, address: '198.18.0.300' }, [r(1)]), /not an IPv4 or IPv6 address/);
  assert.throws(() => fw.setService({ ...svc, port: 70000 }, [r(1)]), /port 70000/);
  assert.throws(() => fw.setService({ ...svc, ops: true }, [r(1)]), /UDP services only/);
  assert.throws(() => fw.setService(svc, [r(1), r(1)]), /listed twice/);
  assert.throws(() => fw.setService(svc, [r(1, -1)]), /weight -1/);
  assert.throws(() => fw.setService(svc, [{ ...r(1), address: 'fd00::1' }]), /DR real must have the service's address family/);
  assert.throws(() => fw.setService(svc, [r(1), { ...r(2), mac: 'zz' }]), /not a MAC/);
  assert.equal([...maps.services.keys()].length, 0);
  assert.equal(real(1).flags, 0, 'a refused call wrote no real');
  const { serviceId, realIds } = fw.setService(svc, [r(1)]);
  assert.deepEqual([serviceId, [...realIds.values()]], [1, [1]], 'a refused call used up no id');
  assert.throws(() => fw.setConfig({ tunSrc4: '198.18.255.0', tunSrc4Bits: 33, tunSrc6: 'fd00::', tunSrc6Bits: 0 }), /0\.\.32/);
});

test('statistics are summed over CPUs', () => {
  const { fw, maps } = rig();
  const { realIds } = fw.setService(svc, [r(1)]);
  const id = Buffer.alloc(4);
  id.writeUInt32LE(realIds.get('198.18.1.1')!);
  const one = Buffer.alloc(XlbStats.size);
  one.writeBigUInt64LE(3n, 0); one.writeBigUInt64LE(300n, 8); one.writeBigUInt64LE(1n, 16);
  maps.realStats.updatePerCpu(id, [one, one]);
  assert.deepEqual(fw.realStats(svc, '198.18.1.1'), { packets: 6n, bytes: 600n, conns: 2n });
  assert.equal(fw.counters().rx, 0n);
});
