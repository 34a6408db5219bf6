/**
 * src/daemon/vrrp-report.ts: the VRRP status, stats and keepalived JSON dump entries, built from a
 * resolved config and a state machine driven by src/vrrp/fsm.ts (no I/O). Expected values are
 * written out by hand from keepalived's vrrp_json.c field list and ip's address format.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveConfig, type VrrpInstanceConfig } from '../../src/vrrp/config.ts';
import { initialState, step, type FsmState } from '../../src/vrrp/fsm.ts';
import type { InstanceStats } from '../../src/vrrp/instance.ts';
import { REJECT_REASONS } from '../../src/vrrp/packet.ts';
import { formatRoute, formatRule, formatVip, keepalivedJsonInstance, vrrpInstanceStats, vrrpInstanceStatus, type InstanceFacts } from '../../src/daemon/vrrp-report.ts';

function facts(o: Partial<VrrpInstanceConfig>, drive: (s: FsmState) => FsmState, stats: Partial<InstanceStats> = {}): InstanceFacts {
  const { instances: [cfg], scripts } = resolveConfig({
    vrrp_script: [{ name: 'chk', script: '/usr/bin/test -f /tmp/up', weight: 5 }],
    vrrp_instance: [{ name: 'VI_1', interface: 'eth0', virtual_router_id: 51, virtual_ipaddress: [{ address: '198.18.0.100/24' }], ...o }],
  });
  const fsm = drive(initialState({ ...cfg!.fsm, address: '198.18.0.1' }));
  const rejected = Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as InstanceStats['rejected'];
  return {
    cfg: cfg!, fsm, scripts: new Map(scripts.map((x) => [x.name, x.script])),
    stats: {
      state: fsm.state, priority: fsm.effectivePriority, advertsReceived: 0, advertsSent: 0, sendErrors: 0, rejected, vipMismatch: 0,
      transitions: fsm.stats.transitions, byTransition: { ...fsm.stats.byTransition }, becameMaster: 0, releasedMaster: 0,
      priorityZeroSent: 0, priorityZeroReceived: 0, garpsSent: 0, lastGarpDelayUs: null, netErrors: 0, lastMasterDownLateUs: null, ...stats,
    },
  };
}

/** monotonic 1000 ms = 2026-01-01T00:00:00Z */
const EPOCH = Date.UTC(2026, 0, 1);
const wall = (mono: number) => EPOCH + mono - 1000;

const master = (s: FsmState) => step(s, { type: 'startup' }, 1000.5).state;

test('address, route and rule forms', () => {
  assert.equal(formatVip({ address: '198.18.0.100', prefixLength: 24, family: 4, dev: 'eth0', scope: 'global' }), '198.18.0.100/24 dev eth0 scope global');
  assert.equal(formatVip({ address: '198.18.0.101', prefixLength: 32, family: 4, dev: 'eth1', scope: 'host', brd: '198.18.0.255', label: 'eth1:v' }),
    '198.18.0.101/32 brd 198.18.0.255 dev eth1 scope host label eth1:v');
  assert.equal(formatRoute({ dst: '198.19.0.0/16', family: 4, via: '198.18.0.254', dev: 'eth0', table: 100, metric: 5 }),
    '198.19.0.0/16 via 198.18.0.254 dev eth0 table 100 metric 5');
  assert.equal(formatRoute({ dst: '198.19.1.0/24', family: 4, type: 'blackhole' }), 'blackhole 198.19.1.0/24');
  assert.equal(formatRule({ family: 4, from: '198.18.0.0/24', table: 100, priority: 10 }), 'from 198.18.0.0/24 priority 10 lookup 100');
  assert.equal(formatRule({ family: 4, to: '198.19.0.0/16', fwmark: 16, fwmask: 255, action: 'prohibit' }), 'from all to 198.19.0.0/16 fwmark 0x10/0xff prohibit');
});

test('status of a MASTER (the address owner takes over at start)', () => {
  const f = facts({ priority: 255, version: 3, virtual_ipaddress_excluded: [{ address: 'fd00::100/64' }] }, master);
  assert.deepEqual(vrrpInstanceStatus(f, wall), {
    name: 'VI_1', interface: 'eth0', vrid: 51, family: 'inet', version: 3, state: 'MASTER', priority: 255, effectivePriority: 255,
    advertIntervalMs: 1000, master: null, fault: null, vips: ['198.18.0.100/24 dev eth0 scope global'],
    excludedVips: ['fd00::100/64 dev eth0 scope global'], syncGroup: null, lastTransition: '2026-01-01T00:00:00.000Z', transitions: 1,
  });
});

test('status of a BACKUP names the master it hears', () => {
  const advert = { version: 2 as const, vrid: 51, priority: 200, advertIntervalMs: 1000, addresses: ['198.18.0.100'], src: '198.18.0.2', vipMismatch: false, legacyUnicastChecksum: false };
  const f = facts({ priority: 100 }, (s) => step(step(s, { type: 'startup' }, 1000).state, { type: 'advert', advert } as never, 1200).state);
  const st = vrrpInstanceStatus(f, wall);
  assert.equal(st.state, 'BACKUP');
  assert.deepEqual(st.master, { address: '198.18.0.2', priority: 200 });
  assert.equal(st.version, 2);
});

test("keepalived's JSON dump entry", () => {
  const f = facts({
    priority: 255, version: 2, authentication: { auth_type: 'PASS', auth_pass: 'secret' }, garp_master_delay: 3, garp_master_repeat: 2,
    notify_master: '/bin/true master', notify: '/bin/true', track_interface: [{ name: 'eth1', weight: 10 }],
    track_script: [{ name: 'chk' }],
    virtual_routes: [{ to: '198.19.0.0/16', via: '198.18.0.254' }],
  }, master, { advertsReceived: 7, advertsSent: 9, becameMaster: 1, priorityZeroSent: 2, vipMismatch: 3,
    rejected: { ...Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])), length: 1, ttl: 2, interval: 3, type: 4, version: 5, auth_type: 6, auth_mismatch: 7, auth_password: 8 } as InstanceStats['rejected'] });
  assert.deepEqual(keepalivedJsonInstance(f, wall), {
    data: {
      iname: 'VI_1', dont_track_primary: 0, skip_check_adv_addr: 0, strict_mode: 0, ifp_ifname: 'eth0', master_priority: 255,
      last_transition: EPOCH / 1000 + 0.0005, garp_delay: 3, garp_refresh: 0, garp_rep: 2, garp_refresh_rep: 1, garp_lower_prio_delay: 3,
      garp_lower_prio_rep: 2, lower_prio_no_advert: 0, higher_prio_send_advert: 0, vrid: 51, base_priority: 255, effective_priority: 255,
      vipset: true, promote_secondaries: false, adver_int: 1, master_adver_int: 1, nopreempt: false, preempt_delay: 0, state: 2, wantstate: 2,
      version: 2, smtp_alert: false, notify_deleted: false, script_master: '/bin/true master', script: '/bin/true',
      vips: ['198.18.0.100/24 dev eth0 scope global'], vroutes: ['198.19.0.0/16 via 198.18.0.254'], track_ifp: ['eth1'], track_script: ['/usr/bin/test -f /tmp/up'],
      auth_type: 1, auth_data: 'secret',
    },
    stats: {
      advert_rcvd: 7, advert_sent: 9, become_master: 1, release_master: 0, packet_len_err: 1, advert_interval_err: 3, ip_ttl_err: 2,
      invalid_type_rcvd: 9, addr_list_err: 3, invalid_authtype: 6, authtype_mismatch: 7, auth_failure: 8, pri_zero_rcvd: 0, pri_zero_sent: 2,
    },
  });
});

test('stats entry', () => {
  const f = facts({ priority: 255, version: 3 }, master, { advertsSent: 4, garpsSent: 5 });
  const s = vrrpInstanceStats(f);
  assert.equal(s.name, 'VI_1');
  assert.equal(s.state, 'MASTER');
  assert.equal(s.advertsSent, 4);
  assert.equal(s.garpsSent, 5);
  assert.equal(s.transitions, 1);
  assert.deepEqual(Object.keys(s.byTransition).length, 1);
});
