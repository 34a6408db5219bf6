/**
 * The VRRP instance glue (src/vrrp/instance.ts) and its configuration (src/vrrp/config.ts),
 * without root: a manual clock, a fake binding that records every send and netlink call in
 * order, adverts from the independent builder (test/lib/vrrp-builder.ts) and frames read with
 * the independent parser (test/lib/packets.ts).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/util/clock.ts';
import { resolveConfig, type VrrpConfig, type VrrpInstanceConfig } from '../../src/vrrp/config.ts';
import { InstanceSet, VrrpInstance, type InstanceBinding, type NetOps, type StateChange } from '../../src/vrrp/instance.ts';
import type { VrrpMessage } from '../../src/vrrp/socket.ts';
import { formatIp, parseFrame } from '../lib/packets.ts';
import { parseVrrp, vrrpMessage, type VrrpMessageSpec } from '../lib/vrrp-builder.ts';

const SELF = '198.18.0.1';
const PEER = '198.18.0.2';
const VIP = '198.18.0.100';
const MAC = '02:00:00:00:00:01';

function instanceCfg(o: Partial<VrrpInstanceConfig> = {}): VrrpInstanceConfig {
  return {
    name: 'VI_1', interface: 'eth0', virtual_router_id: 51, priority: 100, advert_int: 1, version: 3,
    virtual_ipaddress: [{ address: `${VIP}/24` }], garp_master_delay: 0, ...o,
  };
}

/** A binding that records what the instance does, in order. */
class Recorder {
  readonly log: string[] = [];
  readonly adverts: { payload: Buffer; dst: string }[] = [];
  readonly frames: Buffer[] = [];
  /** netlink calls fail with this code when set */
  failWith: string | undefined;

  net(): NetOps {
    const call = (what: string) => {
      this.log.push(what);
      if (this.failWith) {
        const err = Object.assign(new Error(`${what}: ${this.failWith}`), { code: this.failWith });
        return Promise.reject(err);
      }
      return Promise.resolve();
    };
    return {
      addAddress: (a) => call(`addAddress ${a.address}/${a.prefixLength}${a.nodad ? ' nodad' : ''}`),
      deleteAddress: (a) => call(`deleteAddress ${a.address}`),
      addRoute: (r) => call(`addRoute ${r.dst}`),
      deleteRoute: (r) => call(`deleteRoute ${r.dst}`),
      addRule: (r) => call(`addRule ${r.table ?? ''}`),
      deleteRule: (r) => call(`deleteRule ${r.table ?? ''}`),
    };
  }

  binding(cfg: ReturnType<typeof resolveConfig>['instances'][number], source = SELF): InstanceBinding {
    return {
      source,
      addresses: [...cfg.vips, ...cfg.excluded].map((a) => ({ ifindex: 2, address: a.address, prefixLength: a.prefixLength, ...(a.family === 6 ? { nodad: true } : {}) })),
      routes: cfg.routes.map((r) => ({ dst: r.dst, family: r.family, ...(r.table ? { table: r.table } : {}) })),
      rules: cfg.rules.map((r) => ({ family: r.family, ...(r.table ? { table: r.table } : {}) })),
      links: new Map([[2, { mac: MAC }]]),
      sendVrrp: (payload, dst) => {
        this.log.push(`advert ${parseVrrp(payload, cfg.family).priority} to ${dst}`);
        this.adverts.push({ payload: Buffer.from(payload), dst });
      },
      sendFrame: (_ifindex, frame) => {
        const arp = frame.readUInt16BE(12) === 0x0806;
        this.log.push(arp ? `garp ${formatIp(frame.subarray(38, 42))}` : `na ${parseFrame(frame).ip?.src ?? '?'}`);
        this.frames.push(frame);
      },
      net: this.net(),
    };
  }
}

interface Rig {
  rec: Recorder;
  clock: ManualClock;
  set: InstanceSet;
  inst: VrrpInstance;
  states: StateChange[];
}

function rig(c: VrrpConfig): Rig {
  const resolved = resolveConfig(c);
  const rec = new Recorder();
  const clock = new ManualClock(1000);
  const instances = resolved.instances.map((cfg) => new VrrpInstance(cfg, rec.binding(cfg, cfg.family === 6 ? 'fe80::1' : SELF), clock));
  const set = new InstanceSet(instances, resolved.syncGroups, clock);
  const states: StateChange[] = [];
  for (const i of instances) i.on('state', (s) => { rec.log.push(`state ${s.instance} ${s.state}`); states.push(s); });
  return { rec, clock, set, inst: instances[0]!, states };
}

function message(spec: Partial<VrrpMessageSpec> & { priority: number }, o: { src?: string; dst?: string; ttl?: number } = {}): VrrpMessage {
  const src = o.src ?? PEER;
  const dst = o.dst ?? '224.0.0.18';
  const payload = vrrpMessage({ version: 3, vrid: 51, addresses: [VIP], intervalCs: 100, src, dst, ...spec });
  return { family: 4, payload, src, dst, hopLimit: o.ttl ?? 255, ifindex: 2, ipHeader: null };
}

/** v3, priority 100, advert_int 1: 3 * 1 s + skew (256 - 100) / 256 s */
const MASTER_DOWN = 3000 + ((256 - 100) * 1000) / 256;

const flush = () => new Promise((r) => setImmediate(r));

describe('VRRP configuration (src/vrrp/config.ts)', () => {
  test("keepalived's defaults and units", () => {
    const { instances: [i] } = resolveConfig({ vrrp_instance: [{ name: 'VI_1', interface: 'eth0', virtual_router_id: 7, virtual_ipaddress: [{ address: VIP }] }] });
    assert.ok(i);
    assert.deepEqual([i.version, i.priority, i.advertIntervalMs, i.family], [2, 100, 1000, 4]);
    assert.deepEqual(i.vips, [{ address: VIP, prefixLength: 32, family: 4, dev: 'eth0', scope: 'global' }]);
    assert.deepEqual(i.fsm.garp, { masterDelayMs: 5000, masterRepeat: 5, refreshMs: 0, refreshRepeat: 1 });
    assert.equal(i.fsm.preempt, true);
    assert.deepEqual(i.trackInterfaces, [{ name: 'eth0', weight: 0, reverse: false }]);
    const { instances: [j] } = resolveConfig({
      global_defs: { vrrp_version: 3, vrrp_garp_master_delay: 1 },
      vrrp_instance: [instanceCfg({ version: undefined, advert_int: 0.05, nopreempt: true, preempt_delay: 2, garp_master_delay: undefined, virtual_ipaddress: [{ address: 'fd00::100/64' }] })],
    });
    assert.ok(j);
    assert.deepEqual([j.version, j.advertIntervalMs, j.family, j.fsm.preempt, j.fsm.preemptDelayMs, j.fsm.garp?.masterDelayMs], [3, 50, 6, false, 2000, 1000]);
  });

  test('errors name the instance and the keyword', () => {
    const bad = (o: Partial<VrrpInstanceConfig>, re: RegExp) => assert.throws(() => resolveConfig({ vrrp_instance: [instanceCfg(o)] }), re);
    bad({ version: 2, advert_int: 0.5 }, /vrrp_instance VI_1: advert_int 0.5: .*whole seconds/);
    bad({ version: 2, virtual_ipaddress: [{ address: 'fd00::1' }] }, /vrrp_instance VI_1: IPv6 needs version 3/);
    bad({ virtual_ipaddress: [{ address: VIP }, { address: 'fd00::1' }] }, /fd00::1 is IPv6, the instance is IPv4: put it in virtual_ipaddress_excluded/);
    bad({ version: 2, authentication: { auth_type: 'AH', auth_pass: 'x' } }, /auth_type AH is not supported/);
    bad({ version: 2, authentication: { auth_type: 'PASS', auth_pass: '123456789' } }, /auth_pass must be a string of at most 8 bytes/);
    bad({ version: 3, authentication: { auth_type: 'PASS', auth_pass: 'x' } }, /authentication is for version 2 only/);
    bad({ virtual_router_id: 256 }, /virtual_router_id 256 is not an integer in 1..255/);
    bad({ interface: 'eth0:1' }, /interface 'eth0:1' is not an interface name/);
    bad({ unicast_peer: ['fd00::2'] }, /unicast_peer fd00::2 is not IPv4/);
    bad({ virtual_ipaddress: [{ address: `${VIP}/33` }] }, /the length must be 0..32/);
    bad({ virtual_routes: [{ to: 'default' }] }, /virtual_routes default: say the family/);
    assert.throws(() => resolveConfig({ vrrp_instance: [instanceCfg()], vrrp_sync_group: [{ name: 'G', group: ['VI_1', 'VI_9'] }] }),
      /vrrp_sync_group G: instance VI_9 is not defined/);
    bad({ notify_master: ' ' }, /vrrp_instance VI_1: notify_master must be a command line/);
    bad({ track_interface: [{ name: 'eth1', weight: 254 }] }, /track_interface eth1 weight 254 is not an integer in -253..253/);
    assert.throws(() => resolveConfig({ global_defs: { notify_fifo: 'fifo' }, vrrp_instance: [instanceCfg()] }), /global_defs: notify fifo 'fifo' must be an absolute path/);
    assert.throws(() => resolveConfig({ global_defs: { script_user: 'a b c' }, vrrp_instance: [instanceCfg()] }), /script_user 'a b c' is not 'USER \[GROUP\]'/);
    assert.throws(() => resolveConfig({ vrrp_instance: [instanceCfg(), instanceCfg({ name: 'VI_2' })] }),
      /vrrp_instance VI_2: virtual_router_id 51 on eth0 \(IPv4\) is also VI_1's/);
  });
});

describe('VRRP instance glue (src/vrrp/instance.ts)', () => {
  test('becoming MASTER: advert, one GARP round, addresses, routes, rules, the rest of the burst, then the notification', async () => {
    const { rec, clock, set, inst } = rig({ vrrp_instance: [instanceCfg({
      garp_master_repeat: 2,
      virtual_ipaddress: [{ address: `${VIP}/24` }, { address: '198.18.0.101' }],
      virtual_ipaddress_excluded: [{ address: 'fd00::100/64' }],
      virtual_routes: [{ to: '198.18.5.0/24', via: PEER, table: 10 }],
      virtual_rules: [{ from: '198.18.5.0/24', table: 10 }],
    })] });
    set.startup();
    assert.deepEqual(rec.log, ['state VI_1 BACKUP']);
    rec.log.length = 0;
    clock.advance(MASTER_DOWN);
    assert.deepEqual(rec.log, [
      'advert 100 to 224.0.0.18',
      'garp 198.18.0.100', 'garp 198.18.0.101', 'na fd00::100',
      'addAddress 198.18.0.100/24', 'addAddress 198.18.0.101/32', 'addAddress fd00::100/64 nodad',
      'addRoute 198.18.5.0/24', 'addRule 10',
      'garp 198.18.0.100', 'garp 198.18.0.101', 'na fd00::100',
      'state VI_1 MASTER',
    ]);
    // the frames: gratuitous ARP requests from our MAC, an NA with the override flag
    const garp = parseFrame(rec.frames[0]!);
    assert.equal(garp.dst, 'ff:ff:ff:ff:ff:ff');
    assert.equal(garp.src, MAC);
    const na = parseFrame(rec.frames[2]!);
    assert.equal(na.ip?.dst, 'ff02::1');
    assert.equal(rec.frames[2]![62 - 4]! & 0x20, 0x20, 'override flag');
    // the advert: our VRID, priority, interval and VIPs (the excluded address is not advertised)
    const adv = parseVrrp(rec.adverts[0]!.payload);
    assert.deepEqual([adv.version, adv.vrid, adv.priority, adv.intervalCs, adv.addresses], [3, 51, 100, 100, [VIP, '198.18.0.101']]);
    const s = inst.stats();
    assert.deepEqual([s.state, s.becameMaster, s.garpsSent, s.advertsSent], ['MASTER', 1, 6, 1]);
    assert.equal(s.lastGarpDelayUs, 0, 'the manual clock does not move during a dispatch');
    // adverts every advert_int
    clock.advance(1000);
    assert.equal(rec.adverts.length, 2);
    await flush();
    assert.equal(inst.stats().netErrors, 0);
  });

  test('a higher priority advert: BACKUP, rules / routes / addresses removed, no priority 0', () => {
    const { rec, clock, set, inst } = rig({ vrrp_instance: [instanceCfg({ virtual_routes: [{ to: '198.18.5.0/24', via: PEER }], virtual_rules: [{ from: '198.18.5.0/24', table: 10 }] })] });
    set.startup();
    clock.advance(MASTER_DOWN);
    rec.log.length = 0;
    inst.receive(message({ priority: 200 }));
    assert.deepEqual(rec.log, ['deleteRule 10', 'deleteRoute 198.18.5.0/24', 'deleteAddress 198.18.0.100', 'state VI_1 BACKUP']);
    assert.equal(inst.stats().releasedMaster, 1);
    // a master that hears nothing more takes over again after the master-down interval
    rec.log.length = 0;
    clock.advance(MASTER_DOWN);
    assert.equal(inst.fsm.state, 'MASTER');
  });

  test('shutdown of a MASTER: priority 0 advert first, then everything removed', async () => {
    const { rec, clock, set } = rig({ vrrp_instance: [instanceCfg()] });
    set.startup();
    clock.advance(MASTER_DOWN);
    rec.log.length = 0;
    await set.shutdown();
    assert.deepEqual(rec.log, ['advert 0 to 224.0.0.18', 'deleteAddress 198.18.0.100', 'state VI_1 STOP']);
  });

  test('unicast peers: adverts to each peer, with the v3 checksum over that peer', () => {
    const { rec, clock, set } = rig({ vrrp_instance: [instanceCfg({ unicast_src_ip: SELF, unicast_peer: [PEER, '198.18.0.3'] })] });
    set.startup();
    clock.advance(MASTER_DOWN);
    assert.deepEqual(rec.adverts.map((a) => a.dst), [PEER, '198.18.0.3']);
    assert.notEqual(rec.adverts[0]!.payload.readUInt16BE(6), rec.adverts[1]!.payload.readUInt16BE(6), 'checksums differ by pseudo-header');
  });

  test('rejected adverts are counted by reason and change nothing; accepted ones are counted', () => {
    const { set, inst } = rig({ vrrp_instance: [instanceCfg({ version: 2, authentication: { auth_type: 'PASS', auth_pass: 's3cret' } })] });
    set.startup();
    const v2 = (o: Partial<VrrpMessageSpec>, ttl = 255) => {
      const payload = vrrpMessage({ version: 2, vrid: 51, priority: 200, addresses: [VIP], authType: 1, password: 's3cret', ...o });
      return { family: 4 as const, payload, src: PEER, dst: '224.0.0.18', hopLimit: ttl, ifindex: 2, ipHeader: null };
    };
    inst.receive(v2({ password: 'wrong' }));
    inst.receive(v2({ intervalS: 2 }));
    inst.receive(v2({ authType: 0 }));
    inst.receive(v2({}, 64));
    inst.receive(v2({ checksum: 0x1234 }));
    inst.receive(v2({ truncate: 7 }));
    inst.receive(v2({ addresses: [VIP, '198.18.0.9'] }));
    inst.receive(v2({}));
    const s = inst.stats();
    assert.deepEqual(Object.entries(s.rejected).filter(([, n]) => n > 0),
      [['length', 1], ['ttl', 1], ['auth_mismatch', 1], ['auth_password', 1], ['interval', 1], ['checksum', 1]]);
    assert.deepEqual([s.advertsReceived, s.vipMismatch, s.state], [2, 1, 'BACKUP']);
    assert.equal(inst.fsm.master?.address, PEER);
  });

  test('netlink failures are counted and reported; "already there" and "not there" are not failures', async () => {
    const { rec, clock, set, inst } = rig({ vrrp_instance: [instanceCfg()] });
    const errors: Error[] = [];
    inst.on('netError', (e) => errors.push(e));
    rec.failWith = 'EEXIST';
    set.startup();
    clock.advance(MASTER_DOWN);
    await inst.settled();
    assert.equal(inst.stats().netErrors, 0);
    rec.failWith = 'EPERM';
    inst.receive(message({ priority: 200 }));
    await inst.settled();
    assert.equal(inst.stats().netErrors, 1);
    assert.match(errors[0]!.message, /deleteAddress 198.18.0.100: EPERM/);
  });

  test('takeover: the advert and the first GARP round go out before the state machine steps, and are not sent twice', () => {
    const { rec, clock, set, inst } = rig({ vrrp_instance: [instanceCfg({ garp_master_repeat: 3 })] });
    set.startup();
    const seen: string[] = [];
    const { sendFrame, sendVrrp } = inst.binding;
    inst.binding.sendVrrp = (p, d) => { seen.push(`advert in ${inst.fsm.state}`); sendVrrp(p, d); };
    inst.binding.sendFrame = (i, f) => { seen.push(`garp in ${inst.fsm.state}`); sendFrame(i, f); };
    rec.log.length = 0;
    clock.advance(MASTER_DOWN);
    assert.deepEqual(seen, ['advert in BACKUP', 'garp in BACKUP', 'garp in MASTER', 'garp in MASTER']);
    assert.deepEqual(rec.log, ['advert 100 to 224.0.0.18', 'garp 198.18.0.100', 'addAddress 198.18.0.100/24', 'garp 198.18.0.100', 'garp 198.18.0.100', 'state VI_1 MASTER']);
    const s = inst.stats();
    assert.deepEqual([s.advertsSent, s.garpsSent, s.becameMaster, s.lastGarpDelayUs], [1, 3, 1, 0]);
    // the next advert comes from the advert timer as usual
    clock.advance(1000);
    assert.equal(rec.log.filter((l) => l.startsWith('advert 100')).length, 2);
  });

  test('sayGoodbye: a MASTER\'s priority-0 advert at once, before the shutdown step, which does not send it again; a BACKUP sends nothing', async () => {
    const { rec, clock, set, inst } = rig({ vrrp_instance: [instanceCfg()] });
    set.startup();
    inst.sayGoodbye();
    assert.deepEqual(rec.log, ['state VI_1 BACKUP'], 'BACKUP: nothing');
    clock.advance(MASTER_DOWN);
    rec.log.length = 0;
    inst.sayGoodbye();
    assert.deepEqual(rec.log, ['advert 0 to 224.0.0.18']);
    assert.equal(inst.fsm.state, 'MASTER', 'sent before the state machine knows');
    await set.shutdown();
    assert.deepEqual(rec.log, ['advert 0 to 224.0.0.18', 'deleteAddress 198.18.0.100', 'state VI_1 STOP']);
    assert.equal(inst.stats().priorityZeroSent, 1);
  });

  test('a sync group: its members become MASTER together, and leave together', () => {
    const { rec, clock, set } = rig({
      vrrp_instance: [instanceCfg(), instanceCfg({ name: 'VI_2', virtual_router_id: 52, virtual_ipaddress: [{ address: '198.18.0.102' }] })],
      vrrp_sync_group: [{ name: 'G', group: ['VI_1', 'VI_2'] }],
    });
    const groups: string[] = [];
    set.onGroupNotify = (g, s) => groups.push(`${g} ${s}`);
    set.startup();
    clock.advance(MASTER_DOWN);
    assert.deepEqual([set.get('VI_1').fsm.state, set.get('VI_2').fsm.state], ['MASTER', 'MASTER']);
    assert.ok(rec.log.includes('addAddress 198.18.0.102/32'));
    rec.log.length = 0;
    set.get('VI_1').receive(message({ priority: 200 }));
    assert.deepEqual([set.get('VI_1').fsm.state, set.get('VI_2').fsm.state], ['BACKUP', 'BACKUP']);
    assert.deepEqual(rec.log.filter((l) => l.startsWith('deleteAddress')), ['deleteAddress 198.18.0.100', 'deleteAddress 198.18.0.102']);
    assert.deepEqual(groups, ['G BACKUP', 'G MASTER', 'G BACKUP']);
  });

  test('warmUp sends nothing and changes no state', () => {
    const { rec, set, inst } = rig({ vrrp_instance: [instanceCfg()] });
    inst.warmUp();
    assert.deepEqual(rec.log, []);
    assert.equal(inst.fsm.state, 'INIT');
    set.startup();
    assert.equal(inst.fsm.state, 'BACKUP');
  });
});
