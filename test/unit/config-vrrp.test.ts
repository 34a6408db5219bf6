/**
 * The VRRP half of keepalived.conf (src/config/vrrp.ts) through loadConfig: realistic
 * configurations (test/fixtures/config: a v2 pair with PASS and a tracking script, v3 over IPv6,
 * unicast, a sync group with interface and file tracking, routes and rules) to the exact
 * VrrpConfig, each of which resolveConfig accepts; broken ones to their exact messages and
 * positions, resolveConfig's placed at the keyword or instance it names.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatDiagnostic } from '../../src/config/diagnostics.ts';
import { memoryFs } from '../../src/config/fs.ts';
import { loadConfig } from '../../src/config/index.ts';
import { resolveConfig } from '../../src/vrrp/config.ts';
import { REPO } from '../lib/require.ts';

const FIXTURES = join(REPO, 'test/fixtures/config');
const F = '/etc/keepalived/keepalived.conf';

function load(text: string) {
  const r = loadConfig(F, { fs: memoryFs({ [F]: text }), configId: 'lb1' });
  return { ...r, messages: r.problems.map(formatDiagnostic) };
}

function fixture(name: string) {
  const r = loadConfig(join(FIXTURES, name), { configId: 'lb1' });
  assert.deepEqual(r.problems.map(formatDiagnostic), [], `${name} reads without a problem`);
  assert.equal(r.exitCode, 0);
  assert.ok(r.config);
  resolveConfig(r.config.vrrp);
  return r.config;
}

describe('realistic configurations', () => {
  test('a v2 pair with PASS authentication, a weighted health script and notify scripts', () => {
    const c = fixture('pair-master.conf');
    assert.deepEqual(c.vrrp, {
      global_defs: { vrrp_garp_master_refresh: 60, notify_fifo: '/run/xlb/notify.fifo', script_user: 'nobody', enable_script_security: true },
      vrrp_script: [{ name: 'chk_http', script: '/usr/bin/curl -fs http://127.0.0.1/health', interval: 2, timeout: 1, weight: -20, fall: 3, rise: 2 }],
      vrrp_instance: [{
        name: 'VI_1', state: 'MASTER', interface: 'eth0', virtual_router_id: 51, priority: 150, advert_int: 1,
        authentication: { auth_type: 'PASS', auth_pass: 's3cret' },
        virtual_ipaddress: [{ address: '198.18.0.100/24', dev: 'eth0', label: 'eth0:vip' }, { address: '198.18.0.101/24' }],
        track_script: [{ name: 'chk_http' }],
        notify_master: '/etc/keepalived/notify.sh master', notify_backup: '/etc/keepalived/notify.sh backup', notify_fault: '/etc/keepalived/fault.sh',
      }],
    });
    assert.equal(c.global.router_id, 'lb1');
  });

  test('VRRPv3 over IPv6 with a fractional interval and an excluded IPv4 address', () => {
    const c = fixture('v3-ipv6.conf');
    assert.deepEqual(c.vrrp, {
      global_defs: { vrrp_version: 3 },
      vrrp_instance: [{
        name: 'V6', interface: 'eth1', virtual_router_id: 61, priority: 100, advert_int: 0.5, nopreempt: true,
        virtual_ipaddress: [{ address: 'fd00:10::100/64' }, { address: 'fd00:10::101/64', scope: 'global' }],
        virtual_ipaddress_excluded: [{ address: '198.18.1.100/24' }],
        garp_master_delay: 0, garp_master_repeat: 2,
      }],
    });
    assert.equal(resolveConfig(c.vrrp).instances[0]!.advertIntervalMs, 500);
  });

  test('unicast peers with a source address', () => {
    const c = fixture('unicast.conf');
    assert.deepEqual(c.vrrp.vrrp_instance, [{
      name: 'VI_U', state: 'BACKUP', interface: 'eth0', virtual_router_id: 52, priority: 90, preempt_delay: 5,
      unicast_src_ip: '198.18.0.2', unicast_peer: ['198.18.0.3', '198.18.0.4'], check_unicast_src: true,
      virtual_ipaddress: [{ address: '198.18.0.200' }],
    }]);
  });

  test('a sync group, interface and file tracking, routes and rules, a $definition', () => {
    const c = fixture('sync-group.conf');
    assert.deepEqual(c.vrrp.vrrp_sync_group, [{ name: 'G1', group: ['OUT', 'IN'], notify: '/usr/local/bin/group-changed' }]);
    assert.deepEqual(c.vrrp.vrrp_track_file, [{ name: 'maint', file: '/run/xlb/maintenance', weight: -50 }]);
    const out = c.vrrp.vrrp_instance[0]!;
    assert.deepEqual(out.virtual_ipaddress, [{ address: '198.18.0.10/24' }]);
    assert.deepEqual(out.track_interface, [{ name: 'eth2', weight: -30 }, { name: 'eth3' }]);
    assert.deepEqual(out.track_file, [{ name: 'maint' }]);
    assert.deepEqual(out.virtual_routes, [
      { to: '198.18.64.0/24', via: '198.18.0.254', dev: 'eth0' },
      { src: '198.18.0.10', to: '198.18.65.0/24', via: '198.18.0.254', table: 100, metric: 5 },
      { type: 'blackhole', to: '198.18.66.0/24' },
    ]);
    assert.deepEqual(out.virtual_rules, [{ from: '198.18.0.10/32', table: 100, priority: 1000 }, { to: '198.18.67.0/24', action: 'blackhole' }]);
    const r = resolveConfig(c.vrrp);
    assert.deepEqual(r.syncGroups.map((g) => g.members), [['OUT', 'IN']]);
    assert.deepEqual(r.files.map((f) => f.name), ['maint']);
  });

  test('the fixtures are what keepalived reads too (same words, checked by `keepalived -t` when they were written)', () => {
    for (const f of ['pair-master.conf', 'v3-ipv6.conf', 'unicast.conf', 'sync-group.conf']) {
      assert.match(readFileSync(join(FIXTURES, f), 'utf8'), /vrrp_instance/);
    }
  });
});

describe('broken configurations: exact messages at their positions', () => {
  const base = (body: string) => `vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n${body}  virtual_ipaddress {\n    198.18.0.1/24\n  }\n}\n`;

  test('values out of range and bad entries, each at its word; the config stays usable', () => {
    const r = load(base('  priority 300\n  advert_int 0\n  state PRIMARY\n') + 'vrrp_instance VI_2 {\n  virtual_ipaddress {\n    198.18.0.300/24\n    198.18.0.1/24 dev\n    198.18.0.2 lable x\n  }\n}\n');
    assert.deepEqual(r.messages.slice(0, 6), [
      `${F}:4:12: error: priority 300: value out of range: 1..255`,
      `${F}:5:14: error: advert_int 0: value out of range: 0.01..255`,
      `${F}:6:9: error: state: 'PRIMARY' is not one of MASTER, BACKUP`,
      `${F}:13:5: error: virtual_ipaddress: '198.18.0.300/24' is not an address or ADDRESS/LENGTH`,
      `${F}:14:19: error: virtual_ipaddress: dev needs a value`,
      `${F}:15:16: error: virtual_ipaddress 198.18.0.2: unknown option 'lable'`,
    ]);
    assert.equal(r.exitCode, 5);
  });

  test("resolveConfig's errors are placed at the keyword they name, else at the instance", () => {
    const r = load(base('  unicast_src_ip 198.18.0.5\n'));
    assert.deepEqual(r.messages, [`${F}:4:3: error: vrrp_instance VI_1: unicast_src_ip without unicast_peer`]);
    assert.equal(r.config, undefined);
    const s = load(base('  track_script {\n    nope\n  }\n'));
    assert.deepEqual(s.messages, [`${F}:4:3: error: vrrp_instance VI_1: track_script nope: no vrrp_script of that name`]);
    const v6 = load('vrrp_instance V6 {\n  interface eth0\n  virtual_router_id 2\n  version 2\n  virtual_ipaddress {\n    fd00::1\n  }\n}\n');
    assert.deepEqual(v6.messages, [`${F}:1:1: error: vrrp_instance V6: IPv6 needs version 3`]);
    const g = load(`${base('')}vrrp_sync_group G {\n  group {\n    VI_1 VI_9\n  }\n}\n`);
    assert.deepEqual(g.messages, [`${F}:8:1: error: vrrp_sync_group G: instance VI_9 is not defined`]);
  });

  test("every instance's problem is reported, not only the first one resolveConfig meets", () => {
    const two = `${base('  unicast_src_ip 198.18.0.5\n')}vrrp_instance V6 {\n  interface eth0\n  virtual_router_id 2\n  version 2\n  virtual_ipaddress {\n    fd00::1\n  }\n}\n`;
    const r = load(two);
    assert.deepEqual(r.messages, [
      `${F}:4:3: error: vrrp_instance VI_1: unicast_src_ip without unicast_peer`,
      `${F}:9:1: error: vrrp_instance V6: IPv6 needs version 3`,
    ]);
    assert.equal(r.config, undefined);
  });

  test('a second instance of the same name is refused at its name and skipped', () => {
    const r = load(`${base('')}vrrp_instance VI_1 {\n  priority 1\n}\n`);
    assert.deepEqual(r.messages, [`${F}:8:15: error: vrrp_instance VI_1 is already defined (at ${F}:1:1) - skipping this one`]);
    assert.equal(r.config?.vrrp.vrrp_instance.length, 1);
  });

  test('unknown keywords; unsupported ones are errors (exit 4), ignored ones warnings (exit 0)', () => {
    const u = load(base('  frobnicate 1\n'));
    assert.deepEqual(u.messages, [`${F}:4:3: error: Unknown keyword 'frobnicate'`]);
    const v = load(base('  use_vmac\n  notify_master /bin/true root\n'));
    assert.deepEqual(v.messages, [
      `${F}:4:3: error: use_vmac: not implemented by xlb (xlb creates no VMAC interfaces)`,
      `${F}:5:27: error: notify_master: a notify script's own user and group are not supported: scripts run as global_defs script_user ('root')`,
    ]);
    assert.equal(v.exitCode, 4);
    const w = load(base('  smtp_alert\n  garp_lower_prio_repeat 2\n'));
    assert.equal(w.exitCode, 0);
    assert.deepEqual(w.problems.map((p) => [p.severity, p.class, p.keyword]), [
      ['warning', 'ignored', 'smtp_alert'], ['warning', 'ignored', 'garp_lower_prio_repeat'],
    ]);
  });

  test('a long PASS password is cut to 8 bytes as keepalived does, with a warning', () => {
    const r = load(base('  authentication {\n    auth_type PASS\n    auth_pass 0123456789\n  }\n'));
    assert.deepEqual(r.messages, [`${F}:6:15: warning: auth_pass: only the first 8 bytes of '0123456789' are used (as keepalived)`]);
    assert.deepEqual(r.config?.vrrp.vrrp_instance[0]?.authentication, { auth_type: 'PASS', auth_pass: '01234567' });
  });

  test('track entries: weights in range, reverse', () => {
    const r = load(`vrrp_script s {\n  script /bin/true\n  weight 10 reverse\n}\n${base('  track_interface {\n    eth1 weight 254\n    eth2 weight -10 reverse\n  }\n  track_script {\n    s weight 5 sideways\n  }\n')}`);
    assert.deepEqual(r.messages, [
      `${F}:9:17: error: track_interface eth1 weight 254: value out of range: -253..253`,
      `${F}:13:16: error: track_script: 'sideways' is not reverse or noreverse`,
    ]);
  });
});
