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
import { XdpForwarder, type ForwarderMaps, type ForwarderParts, type RealSpec, type ServiceSpec } from '../../src/datapath/xdp/forwarder.ts';
import {
  XLB_CFG_F_NAT, XLB_CNT_MAX, XLB_COUNTERS, XLB_NAT_F_CLOSING, XLB_NAT_F_FULL, XLB_NAT_PORT_WORDS, XLB_REAL_F_ACTIVE, XLB_REAL_F_DRAINED, XlbConfig, XlbFlow, XlbFlowKey, XlbFlowKey4, XlbNat, XlbPersist, XlbPersistKey, XlbReal,
  XlbIface, XlbMeta, XlbRealMeta, XlbService, XlbStats, XlbVipKey, XLB_IFACES_SIZE, decode, encode,
} from '../../src/datapath/xdp/abi.ts';
import { addrBytes, macBytes, portField } from '../../src/datapath/xdp/net.ts';
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
    const batch = m.updateBatch.bind(m);
    m.updateBatch = (ks: Buffer | readonly Buffer[], vs: Buffer | readonly Buffer[], count?: number, f?: number) => {
      log.push(`${name}.updateBatch ${(ks as Buffer[]).map((k) => k.readUInt32LE(0)).join(' ')}`);
      return batch(ks, vs, count, f);
    };
    return m;
  };
  const maps: ForwarderMaps = {
    services: record('services', new FakeMap({ type: BPF_MAP_TYPE_HASH, keySize: XlbVipKey.size, valueSize: XlbService.size, maxEntries: 64 })),
    // the outer array-of-maps: a hash of u32 → inner fd here (the kernel's allows delete, as a hash does)
    maglev: record('maglev', new FakeMap({ type: BPF_MAP_TYPE_HASH, keySize: 4, valueSize: 4, maxEntries: 16 })),
    reals: record('reals', new FakeMap({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: XlbReal.size, maxEntries: 64 })),
    conntrack4: new FakeMap({ type: BPF_MAP_TYPE_LRU_HASH, keySize: XlbFlowKey4.size, valueSize: XlbFlow.size, maxEntries: 64 }),
    conntrack: new FakeMap({ type: BPF_MAP_TYPE_LRU_HASH, keySize: XlbFlowKey.size, valueSize: XlbFlow.size, maxEntries: 64 }),
    nat: new FakeMap({ type: BPF_MAP_TYPE_LRU_HASH, keySize: XlbFlowKey.size, valueSize: XlbNat.size, maxEntries: 64 }),
    natPorts: record('natPorts', new FakeMap({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: 8, maxEntries: XLB_NAT_PORT_WORDS })),
    persist: new FakeMap({ type: BPF_MAP_TYPE_LRU_HASH, keySize: XlbPersistKey.size, valueSize: XlbPersist.size, maxEntries: 64 }),
    serviceStats: new FakeMap({ type: BPF_MAP_TYPE_PERCPU_ARRAY, keySize: 4, valueSize: XlbStats.size, maxEntries: 16, cpus: 2 }),
    realStats: new FakeMap({ type: BPF_MAP_TYPE_PERCPU_ARRAY, keySize: 4, valueSize: XlbStats.size, maxEntries: 64, cpus: 2 }),
    globalStats: new FakeMap({ type: BPF_MAP_TYPE_PERCPU_ARRAY, keySize: 4, valueSize: 8, maxEntries: XLB_CNT_MAX, cpus: 2 }),
    config: record('config', new FakeMap({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: XlbConfig.size, maxEntries: 1 })),
    meta: new FakeMap({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: XlbMeta.size, maxEntries: 1 }),
    realMeta: new FakeMap({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: XlbRealMeta.size, maxEntries: 64 }),
    ifaces: new FakeMap({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: XlbIface.size, maxEntries: XLB_IFACES_SIZE }),
  };
  const tables = new Map<number, MapLike>();
  let nextFd = 1000;
  const parts: ForwarderParts = {
    maps, maglevSize: M, maxServices: 16, maxReals: 64,
    createTable: (_id, size) => {
      const t = Object.assign(new FakeMap({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: 4, maxEntries: size }), { fd: nextFd++ });
      t.close = () => undefined; // the outer map keeps its reference, as the kernel's does
      tables.set(t.fd, t);
      log.push(`table.create ${t.fd}`);
      return t;
    },
  };
  const fw = new XdpForwarder(parts);
  /** a second forwarder over the same maps that reads back what they hold (a restart that adopts pins) */
  const adopt = () => new XdpForwarder({ ...parts, adopt: true });
  const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
  /** the table the outer map currently points at, as real ids */
  const tableOf = (serviceId: number): Uint32Array => {
    const fd = maps.maglev.lookup(u32(serviceId))!.readUInt32LE(0);
    const t = tables.get(fd)!;
    return Uint32Array.from({ length: M }, (_, i) => t.lookup(u32(i))!.readUInt32LE(0));
  };
  const real = (id: number) => decode(XlbReal, maps.reals.lookup(u32(id))!);
  return { fw, maps, log, tableOf, real, adopt };
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
    'reals.updateBatch 1 2', 'table.create 1000', 'maglev.update 1',
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
  assert.ok(swap > log.indexOf('reals.updateBatch 4'), 'new real written before the table that uses it');
  assert.ok(log.indexOf('reals.update 2') > swap && log.indexOf('reals.update 3') > swap, 'old reals retired after the swap');
  assert.equal(real(2).flags, 0);
  assert.equal(real(3).flags, 0);
  assert.equal(real(1).flags, XLB_REAL_F_ACTIVE);
});

test('setServices: every service\'s reals and table written, then one batch swap, then the entries and retirements', () => {
  const { fw, log, tableOf, real } = rig();
  const svc2: ServiceSpec = { ...svc, port: 81 };
  fw.setService(svc, [r(1), r(2)]);
  log.length = 0;
  const [a, b] = fw.setServices([{ spec: svc, reals: [r(1)] }, { spec: svc2, reals: [r(3), r(4)] }]);
  assert.deepEqual([a!.serviceId, [...a!.realIds.values()]], [1, [1]]);
  assert.deepEqual([b!.serviceId, [...b!.realIds.values()]], [2, [3, 4]]);
  assert.deepEqual(log, [
    'table.create 1001', 'reals.updateBatch 3 4', 'table.create 1002', 'maglev.updateBatch 1 2',
    'services.update port 80 proto 6', 'services.update port 0 proto 0', 'reals.update 2',
    'services.update port 81 proto 6', 'services.update port 0 proto 0',
  ]);
  assert.ok(tableOf(1).every((id) => id === 1));
  assert.deepEqual(new Set(tableOf(2)), new Set([3, 4]));
  assert.equal(real(2).flags, 0, 'the removed real deactivated after the swap');
});

test('setServices: a bad service leaves every service of the batch as it was, its ids given back', () => {
  const { fw, log, tableOf } = rig();
  fw.setService(svc, [r(1), r(2)]);
  log.length = 0;
  assert.throws(
    () => fw.setServices([{ spec: svc, reals: [r(1)] }, { spec: { ...svc, port: 81 }, reals: [r(3), r(3)] }]),
    /real 198\.18\.1\.3 is listed twice/,
  );
  assert.throws(() => fw.setServices([{ spec: svc, reals: [r(1)] }, { spec: svc, reals: [r(2)] }]), /listed twice/);
  assert.ok(!log.some((l) => l.startsWith('maglev.') || l.startsWith('services.')), log.join(', '));
  assert.deepEqual(fw.listServices().map((l) => l.reals.length), [2]);
  assert.deepEqual(new Set(tableOf(1)), new Set([1, 2]));
  // nothing was lost: the next service gets id 2 and the next new real id 3
  const { serviceId, realIds } = fw.setService({ ...svc, port: 82 }, [r(5)]);
  assert.deepEqual([serviceId, [...realIds.values()]], [2, [3]]);
});

test('a drained real (weight 0) stays active with its id, is flagged drained in place, and has no slots', () => {
  const { fw, tableOf, real } = rig();
  fw.setService(svc, [r(1), r(2)]);
  const { realIds } = fw.setService(svc, [r(1, 0), r(2)]);
  assert.equal(realIds.get('198.18.1.1'), 1);
  assert.equal(real(1).flags, XLB_REAL_F_ACTIVE | XLB_REAL_F_DRAINED);
  assert.ok(tableOf(1).every((id) => id === 2));
  // back to a weight: the same id, the flag cleared
  const back = fw.setService(svc, [r(1, 2), r(2)]);
  assert.equal(back.realIds.get('198.18.1.1'), 1);
  assert.equal(real(1).flags, XLB_REAL_F_ACTIVE);
  // a new real of weight 0 is written drained from the start
  const added = fw.setService(svc, [r(1, 2), r(2), r(3, 0)]);
  assert.equal(real(added.realIds.get('198.18.1.3')!).flags, XLB_REAL_F_ACTIVE | XLB_REAL_F_DRAINED);
});

test('persistence: timeout and prefix length in the service entry, checked', () => {
  const { fw, maps } = rig();
  const key = (port: number) => {
    const k = Buffer.alloc(XlbVipKey.size);
    addrBytes(svc.address).copy(k, 0);
    k.writeUInt16LE(portField(port), 16);
    k[18] = 6;
    k[19] = 4;
    return k;
  };
  fw.setService({ ...svc, persistence: { timeout: 300, granularity: 24 } }, [r(1)]);
  let e = decode(XlbService, maps.services.lookup(key(80))!);
  assert.equal(e.persist_timeout, 300);
  assert.equal(e.persist_plen, 24);
  fw.setService({ ...svc, persistence: { timeout: 60 } }, [r(1)]);
  e = decode(XlbService, maps.services.lookup(key(80))!);
  assert.deepEqual([e.persist_timeout, e.persist_plen], [60, 32]);
  fw.setService(svc, [r(1)]);
  e = decode(XlbService, maps.services.lookup(key(80))!);
  assert.deepEqual([e.persist_timeout, e.persist_plen], [0, 0]);
  assert.throws(() => fw.setService({ ...svc, persistence: { timeout: 0 } }, [r(1)]), /persistence timeout 0 is not/);
  assert.throws(() => fw.setService({ ...svc, persistence: { timeout: 1.5 } }, [r(1)]), /persistence timeout 1.5 is not/);
  assert.throws(() => fw.setService({ ...svc, persistence: { timeout: 10, granularity: 33 } }, [r(1)]), /granularity \/33 is not a prefix length in 1..32/);
  assert.throws(() => fw.setService({ address: 'fd00::1', port: 80, protocol: 'tcp', persistence: { timeout: 10, granularity: 0 } }, []), /in 1..128/);
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

test('rx is the sum of the verdict counters, whatever slot 0 holds', () => {
  const { fw, maps } = rig();
  const put = (name: string, perCpu: bigint[]) => {
    const i = XLB_COUNTERS.indexOf(name as (typeof XLB_COUNTERS)[number]);
    assert.ok(i >= 0, name);
    const k = Buffer.alloc(4);
    k.writeUInt32LE(i);
    maps.globalStats.updatePerCpu(k, perCpu.map((v) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(v); return b; }));
  };
  put('XLB_CNT_RX', [1000n, 1000n]); // not written by the program: ignored
  put('XLB_CNT_TX', [3n, 4n]);
  put('XLB_CNT_PASS_NON_SERVICE', [5n, 0n]);
  put('XLB_CNT_DROP_NAT_NO_PORT', [0n, 1n]);
  put('XLB_CNT_CT_HIT', [7n, 0n]); // not a verdict
  const c = fw.counters();
  assert.equal(c.rx, 13n);
  assert.equal(c.tx, 7n);
  assert.equal(c.ct_hit, 7n);
});

// ---------------------------------------------------------------- NAT and full-NAT

const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const configOf = (maps: ForwarderMaps) => decode(XlbConfig, maps.config.lookup(u32(0))!);
const nat = (n: number, port?: number): RealSpec => ({ ...r(n), method: 'nat', ...(port === undefined ? {} : { port }) });
const fullnat = (n: number, port?: number): RealSpec => ({ ...r(n), method: 'fullnat', ...(port === undefined ? {} : { port }) });

test('ifaces: an interface\'s MAC at ifindex & (size - 1), written by noteInterface (attach), cleared by forgetInterface (detach)', () => {
  const { fw, maps } = rig();
  const entry = (i: number) => { const v = decode(XlbIface, maps.ifaces!.lookup(u32(i))!); return [v.ifindex, (v.mac as Buffer).toString('hex')]; };
  fw.noteInterface(3, macBytes('02:00:00:00:00:03'));
  assert.deepEqual(entry(3), [3, '020000000003']);
  fw.noteInterface(3 + XLB_IFACES_SIZE, macBytes('02:00:00:00:01:03')); // the same index: takes it over
  assert.deepEqual(entry(3), [3 + XLB_IFACES_SIZE, '020000000103']);
  fw.forgetInterface(3); // no longer its entry: left alone
  assert.deepEqual(entry(3), [3 + XLB_IFACES_SIZE, '020000000103']);
  fw.forgetInterface(3 + XLB_IFACES_SIZE);
  assert.deepEqual(entry(3), [0, '000000000000']);
  fw.noteInterface(7, macBytes('02:00:00:00:00:07'));
  fw.noteInterface(7, null); // no Ethernet address (any more): no entry, no check
  assert.deepEqual(entry(7), [0, '000000000000']);
});

test('config: absent fields take their defaults; NAT addresses, timeouts and the flag are encoded', () => {
  const { fw, maps } = rig();
  fw.setConfig({});
  let c = configOf(maps);
  assert.deepEqual([c.tun_src4, c.tun_src6, c.tun_src4_bits, c.tun_src6_bits, c.tun_ttl].map((v) => (Buffer.isBuffer(v) ? v.toString('hex') : v)),
    ['00000000', '0'.repeat(32), 0, 0, 64]);
  assert.deepEqual([c.nat_src4, c.nat_src6].map((v) => (v as Buffer).toString('hex')), ['00000000', '0'.repeat(32)]);
  assert.deepEqual([c.nat_tcp_timeout, c.nat_tcp_fin_timeout, c.nat_udp_timeout, c.nat_flags], [900, 120, 300, 0]);
  fw.setConfig({ natSrc4: '198.18.254.1', natSrc6: 'fd00:18:254::1', natTimeouts: { tcp: 3600, udp: 30 }, tunTtl: 9 });
  c = configOf(maps);
  assert.equal((c.nat_src4 as Buffer).toString('hex'), 'c612fe01');
  assert.equal((c.nat_src6 as Buffer).toString('hex'), 'fd000018025400000000000000000001');
  assert.deepEqual([c.nat_tcp_timeout, c.nat_tcp_fin_timeout, c.nat_udp_timeout, c.tun_ttl], [3600, 120, 30, 9]);
});

test('the NAT flag: set before the first NAT real is written, kept by setConfig, cleared after the last one goes', () => {
  const { fw, maps, log } = rig();
  fw.setConfig({ natSrc4: '198.18.254.1' });
  fw.setService(svc, [r(1)]);
  assert.equal(configOf(maps).nat_flags, 0, 'DR only: no flag');
  assert.equal(fw.natEnabled, false);
  const nsvc: ServiceSpec = { ...svc, port: 81 };
  log.length = 0;
  fw.setService(nsvc, [nat(2, 8080), fullnat(3)]);
  assert.equal(configOf(maps).nat_flags, XLB_CFG_F_NAT);
  assert.equal(log[0], 'config.update 0', `flag first: ${log.join(', ')}`);
  fw.setConfig({ natSrc4: '198.18.254.2' });
  assert.equal(configOf(maps).nat_flags, XLB_CFG_F_NAT, 'setConfig keeps the flag');
  fw.setService(nsvc, [nat(2, 8080)]);
  assert.equal(configOf(maps).nat_flags, XLB_CFG_F_NAT, 'a NAT real is left');
  log.length = 0;
  fw.setService(nsvc, [r(2)]);
  assert.equal(configOf(maps).nat_flags, 0, 'no NAT real left');
  assert.equal(log.at(-1), 'config.update 0', `flag cleared last: ${log.join(', ')}`);
  fw.setService(nsvc, [nat(2)]);
  assert.equal(fw.natEnabled, true);
  log.length = 0;
  fw.removeService(nsvc);
  assert.equal(configOf(maps).nat_flags, 0, 'cleared when the service goes');
  assert.equal(log.at(-1), 'config.update 0');
});

test('NAT reals: the port is in the entry (network order), 0 = the service\'s; DR keeps the service\'s port', () => {
  const { fw, real } = rig();
  const { realIds } = fw.setService(svc, [nat(1, 8080), nat(2), { ...r(3), port: 80 }]);
  assert.deepEqual([real(realIds.get('198.18.1.1')!).port, real(realIds.get('198.18.1.2')!).port, real(realIds.get('198.18.1.3')!).port],
    [0x901f, 0, 0]);
  assert.deepEqual([real(realIds.get('198.18.1.1')!).method, real(realIds.get('198.18.1.2')!).method], [3, 3]);
  // a DR real given the service's port has the same entry as without: it keeps its id
  const again = fw.setService(svc, [nat(1, 8080), nat(2), r(3)]);
  assert.equal(again.realIds.get('198.18.1.3'), realIds.get('198.18.1.3'));
  // a port change is a new entry: a new id
  const moved = fw.setService(svc, [nat(1, 8081), nat(2), r(3)]);
  assert.notEqual(moved.realIds.get('198.18.1.1'), realIds.get('198.18.1.1'));
});

test('NAT and full-NAT specs are refused with a clear reason before anything is written', () => {
  const { fw, maps, log } = rig();
  fw.setConfig({});
  log.length = 0;
  assert.throws(() => fw.setService(svc, [fullnat(1)]), /full-NAT real needs natSrc4/);
  assert.throws(() => fw.setService({ ...svc, address: 'fd00::10' }, [{ ...fullnat(1), address: 'fd00::1' }]), /full-NAT real needs natSrc6/);
  assert.throws(() => fw.setService(svc, [{ ...nat(1), address: 'fd00::1' }]), /NAT real must have the service's address family/);
  assert.throws(() => fw.setService(svc, [nat(1, 70000)]), /port 70000 is not in 0\.\.65535/);
  assert.throws(() => fw.setService(svc, [nat(1, 1.5)]), /port 1\.5/);
  assert.throws(() => fw.setService(svc, [{ ...r(1), port: 8080 }]), /port 8080 needs the nat or fullnat method/);
  assert.throws(() => fw.setService(svc, [{ ...r(1), method: 'masq' as never }]), /not dr, tun, nat or fullnat/);
  assert.deepEqual(log, [], 'nothing written');
  assert.equal(configOf(maps).nat_flags, 0);

  assert.throws(() => fw.setConfig({ natSrc4: 'fd00::1' }), /natSrc4 'fd00::1' is not an IPv4 address/);
  assert.throws(() => fw.setConfig({ natSrc6: '198.18.0.1' }), /natSrc6 '198.18.0.1' is not an IPv6 address/);
  assert.throws(() => fw.setConfig({ natSrc4: '0.0.0.0' }), /unspecified address/);
  assert.throws(() => fw.setConfig({ natSrc6: '::' }), /unspecified address/);
  for (const bad of [0, -1, 1.5, 2 ** 32, Number.NaN]) {
    assert.throws(() => fw.setConfig({ natTimeouts: { udp: bad } }), /natTimeouts\.udp .* is not a whole number of seconds in 1\.\.4294967295/);
  }
  assert.deepEqual(log, [], 'nothing written');

  // full-NAT addresses and VIPs exclude each other
  fw.setService(svc, [r(1)]);
  assert.throws(() => fw.setConfig({ natSrc4: svc.address }), /is the address of service tcp:198\.18\.0\.10:80/);
  fw.setConfig({ natSrc4: '198.18.254.1', natSrc6: 'fd00:18:254::1' });
  assert.throws(() => fw.setService({ ...svc, address: '198.18.254.1' }, [r(1)]), /its address is natSrc4/);
  assert.throws(() => fw.setService({ ...svc, address: 'fd00:18:254:0::1' }, [{ ...r(1), address: 'fd00::1' }]), /its address is natSrc6/);
  // a full-NAT address in use stays
  fw.setService(svc, [fullnat(2)]);
  assert.throws(() => fw.setConfig({ natSrc6: 'fd00:18:254::1' }), /natSrc4 is needed by the full-NAT real 198\.18\.1\.2 of tcp:198\.18\.0\.10:80/);
  assert.equal((configOf(maps).nat_src4 as Buffer).toString('hex'), 'c612fe01', 'the refused config was not written');
});

test('natList decodes the NAT state; natEntries counts it; clearNat empties it', () => {
  const { fw, maps } = rig();
  const key = encode(XlbFlowKey, { saddr: addrBytes('198.18.1.1'), daddr: addrBytes('198.18.254.1'), sport: portField(8080), dport: portField(40001), proto: 6, family: 4 });
  const value = encode(XlbNat, {
    last: 123456789n, vaddr: addrBytes('198.18.0.10'), caddr: addrBytes('198.18.2.1'), vport: portField(80), cport: portField(5555),
    dmac: macBytes('02:00:00:00:02:01'), smac: macBytes('02:00:00:00:00:01'), ifindex: 7, flags: XLB_NAT_F_FULL | XLB_NAT_F_CLOSING,
  });
  maps.nat.update(key, value);
  assert.equal(fw.natEntries(), 1);
  assert.deepEqual(fw.natList(), [{
    protocol: 'tcp', fullNat: true, closing: true, real: '198.18.1.1', realPort: 8080, local: '198.18.254.1', localPort: 40001,
    client: '198.18.2.1', clientPort: 5555, vip: '198.18.0.10', vipPort: 80, ifindex: 7, clientMac: '02:00:00:00:02:01',
    ourMac: '02:00:00:00:00:01', last: 123456789n,
  }]);
  fw.clearNat();
  assert.equal(fw.natEntries(), 0);
});

test('nat_ports: the ports NAT reals answer from, added before the reals are written, removed after', () => {
  const { fw, maps, log } = rig();
  fw.setConfig({ natSrc4: '198.18.254.1' });
  const word = (w: number) => maps.natPorts.lookup(u32(w))!.readBigUInt64LE(0);
  const has = (p: number) => ((word(p >> 6) >> BigInt(p & 63)) & 1n) === 1n;
  fw.setService(svc, [r(1), { ...r(2), method: 'tun' }]);
  assert.ok([...Array(XLB_NAT_PORT_WORDS).keys()].every((w) => word(w) === 0n), 'DR and TUN reals use no bits');
  log.length = 0;
  const s81: ServiceSpec = { ...svc, port: 81 };
  fw.setService(s81, [nat(3, 8080), fullnat(4), nat(5, 8080)]);
  assert.ok(has(8080) && has(81) && !has(80) && !has(8081), 'the real\'s port, or the service\'s when the real has none');
  assert.deepEqual(log.slice(0, 3), ['config.update 0', 'natPorts.update 1', `natPorts.update ${8080 >> 6}`], `flag and ports before the reals: ${log.join(', ')}`);
  log.length = 0;
  fw.setService(s81, [nat(3, 9090)]);
  assert.ok(has(9090) && !has(8080) && !has(81));
  const add = log.indexOf(`natPorts.update ${9090 >> 6}`);
  const drop = log.indexOf(`natPorts.update ${8080 >> 6}`);
  assert.ok(add >= 0 && add < log.indexOf('reals.updateBatch 6') && drop > log.indexOf('maglev.update 2'), `added before, removed after: ${log.join(', ')}`);
  // an all-ports service whose real keeps the packet's port: every port may be a reply's
  fw.setService({ ...svc, port: 0 }, [nat(7)]);
  assert.ok([...Array(XLB_NAT_PORT_WORDS).keys()].every((w) => word(w) === 0xffff_ffff_ffff_ffffn));
  fw.removeService({ ...svc, port: 0 });
  assert.ok(has(9090) && !has(1) && !has(65535), 'back to the ports in use');
  log.length = 0;
  fw.setService(s81, [nat(3, 9090)]);
  assert.ok(!log.some((l) => l.startsWith('natPorts')), 'unchanged words are not written');
  fw.removeService(s81);
  assert.ok([...Array(XLB_NAT_PORT_WORDS).keys()].every((w) => word(w) === 0n), 'no NAT real: no bits');
});

// ---------------------------------------------------------------- adoption (hitless restart)

test('adoption: a forwarder over the same maps reads back services, reals, configuration and ids', () => {
  const { fw, adopt, log } = rig();
  const cfg = { tunSrc4: '198.18.0.2', tunSrc4Bits: 4, tunSrc6: 'fd00::2', tunTtl: 32, natSrc4: '198.18.254.1', natTimeouts: { udp: 60 } };
  fw.setConfig(cfg);
  const written: { service: ServiceSpec; reals: RealSpec[] }[] = [
    { service: svc, reals: [r(1), r(2, 0), { ...r(3, 7), method: 'tun', ifindex: 5 }] },
    { service: { ...svc, port: 0, protocol: 'udp', hashSourceOnly: true, persistence: { timeout: 300, granularity: 24 } }, reals: [r(4, 3)] },
    { service: { address: 'fd00::100', port: 53, protocol: 'udp', ops: true, persistence: { timeout: 60 } },
      reals: [{ address: 'fd00::11', weight: 2, method: 'nat', mac: '02:00:00:00:01:11', smac: '02:00:00:00:00:fe', port: 5353 }] },
    { service: { ...svc, port: 443 }, reals: [{ ...r(5), method: 'fullnat', port: 8443 }, { ...r(6), method: 'nat' }] },
  ];
  const ids = written.map((w) => fw.setService(w.service, w.reals));
  fw.removeService({ ...svc, port: 0, protocol: 'udp' }); // a gap in the ids
  written.splice(1, 1);
  ids.splice(1, 1);

  const fw2 = adopt();
  assert.equal(fw2.adopted, true);
  assert.deepEqual(fw2.listServices(), written, 'what was written reads back (in normal form, which this is)');
  assert.deepEqual(fw2.listServices(), fw.listServices());
  assert.equal(fw2.natEnabled, true, 'the NAT flag read back');
  assert.deepEqual(fw2.realsOf(svc), ['198.18.1.1', '198.18.1.2', '198.18.1.3']);

  // the same programming again keeps every id and writes no real
  log.length = 0;
  written.forEach((w, i) => assert.deepEqual(fw2.setService(w.service, w.reals), ids[i], `service ${i}: the same ids`));
  assert.deepEqual(log.filter((l) => l.startsWith('reals.')), [], 'no real entry rewritten');
  // the configuration was read back: a full-NAT real still finds natSrc4, setConfig({}) would refuse to drop it
  assert.throws(() => fw2.setConfig({}), /natSrc4 is needed by the full-NAT real/);
  fw2.setConfig(cfg);
  // fresh ids do not collide with adopted ones
  const more = fw2.setService({ ...svc, port: 8080 }, [r(7)]);
  const used = new Set([...ids.flatMap((x) => [...x.realIds.values()])]);
  assert.ok(!used.has(more.realIds.get('198.18.1.7')!), 'a new real gets an id not in use');
  assert.ok(!ids.some((x) => x.serviceId === more.serviceId), 'a new service gets an id not in use');
});

test('adoption: persistence granularity of the whole address and false flags read back in normal form', () => {
  const { fw, adopt } = rig();
  fw.setConfig({});
  fw.setService({ ...svc, hashSourceOnly: false, persistence: { timeout: 10, granularity: 32 } }, [{ ...r(1), ifindex: 0, port: 0 }]);
  assert.deepEqual(adopt().listServices(), [{ service: { ...svc, persistence: { timeout: 10 } }, reals: [r(1)] }]);
});

test('adoption: what a crash left half-done is settled', () => {
  const { fw, maps, adopt, real } = rig();
  fw.setConfig({});
  const { serviceId, realIds } = fw.setService(svc, [r(1), r(2)]);
  // a crash after a new real's entry, before its real_meta: it belongs to no service
  const orphan = 9;
  maps.reals.update(u32(orphan), encode(XlbReal, { addr: addrBytes('198.18.1.9'), dmac: macBytes('02:00:00:00:01:09'), smac: macBytes('02:00:00:00:00:fe'), family: 4, method: 1, flags: XLB_REAL_F_ACTIVE }));
  // a crash between real 1's new entry (a new MAC) and the old one's retirement: the address twice
  const twin = 10;
  maps.reals.update(u32(twin), encode(XlbReal, { addr: addrBytes('198.18.1.1'), dmac: macBytes('02:00:00:00:01:aa'), smac: macBytes('02:00:00:00:00:fe'), family: 4, method: 1, flags: XLB_REAL_F_ACTIVE }));
  maps.realMeta.update(u32(twin), encode(XlbRealMeta, { service_id: serviceId, weight: 1 }));

  const fw2 = adopt();
  assert.equal(real(orphan).flags, 0, 'the orphan is retired at adoption');
  assert.deepEqual(fw2.listServices(), [{ service: svc, reals: [r(1), r(2)] }], 'the first of the twins is the real, the other a leftover');
  const again = fw2.setService(svc, [r(1), r(2)]);
  assert.deepEqual(again.realIds, realIds, 'the real keeps its id');
  assert.equal(real(twin).flags, 0, 'the leftover twin is retired after the next table swap');
});

test('adoption of maps never written: empty, with the default configuration', () => {
  const { adopt } = rig();
  const fw2 = adopt();
  assert.deepEqual(fw2.listServices(), []);
  assert.equal(fw2.natEnabled, false);
  fw2.setService(svc, [r(1)]);
  assert.equal(fw2.listServices().length, 1);
});
