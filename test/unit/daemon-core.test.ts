/**
 * The daemon's pure and fakeable parts: next-hop resolution over a fake host, the configuration
 * loading (problems, dedupe, refusal), the services side over the fake driver (the difference only
 * at a reload; health kept for unchanged reals), the dumps' text, and `xlb run`'s options.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { runCli } from '../../src/cli/program.ts';
import { claimPidFile, type RunOptions } from '../../src/daemon/run.ts';
import { loadDaemonConfig, type ConfigReader, type DaemonConfig } from '../../src/daemon/config.ts';
import { DATA_FILE, formatData, formatStats, writeDump } from '../../src/daemon/dumps.ts';
import { silentLogger } from '../../src/daemon/log.ts';
import { vrrpUnits } from '../../src/daemon/vrrp.ts';
import { NextHops, type NextHopHost } from '../../src/daemon/nexthop.ts';
import { ServicePlane, withoutPositions } from '../../src/daemon/services.ts';
import type { StatsReport, StatusReport } from '../../src/daemon/control.ts';
import { FakeDriver, type DriverCall } from '../../src/datapath/fake-driver.ts';
import { XDP_CAPABILITIES } from '../../src/datapath/driver.ts';
import { Reconciler } from '../../src/model/reconcile.ts';
import { resolveServices } from '../../src/model/validate.ts';
import type { RealServer, ServiceConfig } from '../../src/model/types.ts';
import { config as services, pos, rs, vs } from '../lib/model-builder.ts';

/** A host with fixed routes and MACs; `answers` lists the addresses that answer ARP once poked. */
function fakeHost(answers: string[], known: Record<string, string> = {}) {
  const neigh = new Map(Object.entries(known));
  const poked: string[] = [];
  const host: NextHopHost = {
    route: async (a) => (a.startsWith('198.18.9.') ? { dev: 'eth1', gateway: '198.18.0.1' } : { dev: 'eth0', gateway: null }),
    neighbour: async (a) => neigh.get(a) ?? null,
    poke: (a) => { poked.push(a); if (answers.includes(a)) neigh.set(a, `02:00:00:00:00:${a.split('.').pop()!.padStart(2, '0')}`); },
    link: async (dev) => (dev === 'eth0' ? { ifindex: 2, mac: '02:aa:00:00:00:02' } : { ifindex: 3, mac: '02:aa:00:00:00:03' }),
  };
  return { host, poked };
}

describe('next hops', () => {
  test('on-link reals by their own MAC (poked when unknown), routed ones by the gateway; ifindex only off the attached interface', async () => {
    const { host, poked } = fakeHost(['198.18.0.12', '198.18.0.1'], { '198.18.0.11': '02:00:00:00:00:11' });
    const hops = new NextHops([2], host, 200);
    assert.deepEqual(await hops.resolve(['198.18.0.11', '198.18.0.12', '198.18.9.5', '198.18.0.11']), []);
    assert.deepEqual(poked, ['198.18.0.12', '198.18.0.1'], 'only the unknown ones are poked, the gateway for the routed real');
    assert.deepEqual(hops.get('198.18.0.11'), { mac: '02:00:00:00:00:11', smac: '02:aa:00:00:00:02' });
    assert.deepEqual(hops.get('198.18.0.12'), { mac: '02:00:00:00:00:12', smac: '02:aa:00:00:00:02' });
    assert.deepEqual(hops.get('198.18.9.5'), { mac: '02:00:00:00:00:01', smac: '02:aa:00:00:00:03', ifindex: 3 });
  });

  test('an address that does not answer is reported, has no next hop, and get() says so', async () => {
    const { host } = fakeHost([]);
    const hops = new NextHops([2], host, 120);
    const failures = await hops.resolve(['198.18.0.20']);
    assert.equal(failures.length, 1);
    assert.match(failures[0]!.error, /198\.18\.0\.20 on eth0 did not answer ARP \/ neighbour discovery within 120 ms/);
    assert.equal(hops.has('198.18.0.20'), false);
    assert.throws(() => hops.get('198.18.0.20'), /real server 198\.18\.0\.20: its next hop \(MAC\) is not resolved yet/);
  });
});

const reader = (c: DaemonConfig | undefined, problems: Awaited<ReturnType<ConfigReader>>['problems'] = []): ConfigReader =>
  async () => (c ? { config: c, problems } : { problems });
const daemonConfig = (s: ServiceConfig): DaemonConfig => ({ vrrp: { vrrp_instance: [] }, services: s });

describe('loading the configuration', () => {
  test('the model\'s errors refuse the file, positioned; the reader\'s own copy of a problem is reported once', async () => {
    const bad = services([vs('198.18.0.10', 80, [rs('198.18.1.1', 80, { weight: 70000 })], { lb_algo: 'wrr', lb_kind: 'DR' })]);
    const expected = resolveServices(bad, XDP_CAPABILITIES).errors[0]!;
    const r = await loadDaemonConfig('test.conf', XDP_CAPABILITIES, reader(daemonConfig(bad), [expected]));
    assert.equal(r.config, undefined);
    assert.equal(r.services, undefined);
    assert.equal(r.problems.filter((p) => p.message === expected.message).length, 1);
    assert.match(r.problems[0]!.message, /weight 70000 is not in 0\.\.65535/);
    assert.equal(r.problems[0]!.pos.file, 'test.conf');
  });

  test('a clean file gives the resolved services and its warnings; a reader error gives no config', async () => {
    const ok = services([vs('198.18.0.10', 80, [rs('198.18.1.1', 80)], { lb_algo: 'wrr', lb_kind: 'DR' })]);
    const r = await loadDaemonConfig('test.conf', XDP_CAPABILITIES, reader(daemonConfig(ok)));
    assert.ok(r.config);
    assert.deepEqual(r.services?.map((s) => s.id), ['tcp:198.18.0.10:80']);
    assert.ok(r.problems.every((p) => p.severity === 'warning') && r.problems.some((p) => /approximated/.test(p.message)));
    const none = await loadDaemonConfig('x.conf', XDP_CAPABILITIES, reader(undefined, [{ severity: 'error', pos: pos(3), message: 'unknown keyword' }]));
    assert.deepEqual([none.config, none.problems.length], [undefined, 1]);
  });

  test('a JSON file that is not JSON is an error at the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xlb-daemon-'));
    try {
      const f = join(dir, 'broken.json');
      writeDump(dir, 'broken.json', '{ "vrrp": ');
      const r = await loadDaemonConfig(f, XDP_CAPABILITIES);
      assert.equal(r.config, undefined);
      assert.deepEqual(r.problems.map((p) => [p.pos.file, p.pos.line, p.severity]), [[f, 1, 'error']]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the services side over the fake driver', () => {
  const noCheck = (address: string, extra: Partial<RealServer> = {}) => rs(address, 80, { checkers: [], ...extra });
  const resolve = (s: ServiceConfig) => {
    const r = resolveServices(s, XDP_CAPABILITIES);
    assert.deepEqual(r.errors, []);
    return r.services;
  };
  const plane = async () => {
    const { host } = fakeHost(['198.18.1.1', '198.18.1.2', '198.18.1.3']);
    const driver = new FakeDriver();
    return { driver, p: new ServicePlane({ driver, nextHops: new NextHops([2], host, 100), log: silentLogger() }) };
  };

  test('a reload sets only the service that changed; a file that only moved changes nothing', async () => {
    const { driver, p } = await plane();
    try {
      const a = vs('198.18.0.10', 80, [noCheck('198.18.1.1'), noCheck('198.18.1.2')], { lb_algo: 'wrr', lb_kind: 'DR' });
      const b = vs('198.18.0.11', 80, [noCheck('198.18.1.1')], { lb_algo: 'wrr', lb_kind: 'DR' });
      let c = await p.apply(resolve(services([a, b])));
      assert.deepEqual(c, { added: ['[198.18.0.10]:tcp:80', '[198.18.0.11]:tcp:80'], removed: [], changed: [] });
      assert.deepEqual(driver.calls.map((x) => [x.op, x.key]), [['set', 'tcp:198.18.0.10:80'], ['set', 'tcp:198.18.0.11:80']]);

      driver.calls.length = 0;
      const moved = JSON.parse(JSON.stringify([a, b]), (k, v) => (k === 'line' ? v + 100 : v)) as typeof a[];
      c = await p.apply(resolve(services(moved)));
      assert.deepEqual(c, { added: [], removed: [], changed: [] });
      assert.deepEqual(driver.calls, [], 'only positions moved: no driver call');

      const a2 = { ...a, real_server: [...a.real_server, noCheck('198.18.1.3')] };
      c = await p.apply(resolve(services([a2])));
      assert.deepEqual(c, { added: [], removed: ['[198.18.0.11]:tcp:80'], changed: ['[198.18.0.10]:tcp:80'] });
      assert.deepEqual((driver.calls as DriverCall[]).map((x) => [x.op, x.key, x.op === 'set' ? x.reals.map((r) => r.address) : []]),
        [['remove', 'tcp:198.18.0.11:80', []], ['set', 'tcp:198.18.0.10:80', ['198.18.1.1', '198.18.1.2', '198.18.1.3']]]);
    } finally {
      await p.stop('remove');
    }
    assert.deepEqual(driver.services(), [], "stop('remove') empties the datapath");
  });

  test('reals whose checking is unchanged keep their checker state; a changed one is checked afresh; stop(keep) leaves the datapath', async () => {
    const { driver, p } = await plane();
    try {
      const check = (connect_timeout: number) => [{ pos: pos(), kind: 'TCP_CHECK' as const, config: { connect_timeout } }];
      const s1 = services([vs('198.18.0.10', 80, [rs('198.18.1.1', 80, { checkers: check(3) }), rs('198.18.1.2', 80, { checkers: check(3) })], { lb_algo: 'wrr', lb_kind: 'DR' })]);
      await p.apply(resolve(s1));
      const ids = p.health.keys();
      assert.equal(ids.length, 2);
      const first = ids.map((id) => p.realHealth(id)!.checkers[0]);
      const s2 = services([vs('198.18.0.10', 80, [rs('198.18.1.1', 80, { checkers: check(3) }), rs('198.18.1.2', 80, { checkers: check(4) })], { lb_algo: 'wrr', lb_kind: 'DR' })]);
      await p.apply(resolve(s2));
      const after = ids.map((id) => p.realHealth(id)!.checkers[0]);
      assert.equal(after[0]!.deadline, first[0]!.deadline, 'the unchanged real kept its schedule');
      assert.notEqual(after[1]!.deadline, first[1]!.deadline, 'the changed real was added again');
    } finally {
      await p.stop('keep');
    }
    assert.deepEqual(driver.services(), ['tcp:198.18.0.10:80'], "stop('keep') leaves the services programmed");
  });

  test('withoutPositions drops pos and at at every depth', () => {
    assert.deepEqual(withoutPositions({ pos: 1, a: [{ at: {}, b: 2, pos: 3 }], c: { d: { pos: 4, e: 5 } } }), { a: [{ b: 2 }], c: { d: { e: 5 } } });
  });
});

describe('dumps', () => {
  const status: StatusReport = {
    instance: 'default', pid: 42, version: '0.1.0', startedAt: '2026-01-01T00:00:00.000Z', configFile: '/etc/keepalived/keepalived.conf',
    configLoadedAt: '2026-01-01T00:00:00.000Z', runs: { vrrp: true, services: true }, datapath: { kind: 'xdp', failures: 0 },
    vrrp: [{
      name: 'VI_1', interface: 'eth0', vrid: 51, family: 'inet', version: 3, state: 'MASTER', priority: 150, effectivePriority: 140,
      advertIntervalMs: 1000, master: null, fault: null, vips: ['198.18.0.100/32 dev eth0 scope global'], excludedVips: [], syncGroup: null,
      lastTransition: '2026-01-01T00:00:01.000Z', transitions: 2,
    }],
    syncGroups: [],
    services: [{
      name: '[198.18.0.100]:tcp:80', pos: { file: 'k.conf', line: 9, col: 1 }, scheduler: 'wrr', persistence: null,
      quorum: { required: 1, hysteresis: 0, up: true, liveWeight: 1 }, sorryActive: false, sorryServer: null, endpoints: [],
      reals: [{
        name: '[198.18.0.11]:tcp:80', address: '198.18.0.11', port: 0, method: 'dr', health: 'down', configuredWeight: 1, weight: 1, checking: true,
        checkers: [{ kind: 'TCP_CHECK', target: 'TCP 198.18.0.11:80', up: false, hasRun: true, reason: 'connection refused' }],
      }],
    }],
    lastReload: null,
  };
  const stats: StatsReport = {
    at: Date.parse('2026-01-01T00:00:02Z'),
    services: [{ service: '[198.18.0.100]:tcp:80', address: '198.18.0.100', port: 80, protocol: 'tcp', counters: { packets: 10, bytes: 900, connections: 2 },
      reals: [{ address: '198.18.0.11', port: 0, counters: { packets: 10, bytes: 900, connections: 2 } }] }],
    vrrp: [], health: { runs: 5, failures: 1, timeouts: 0, events: { up: 0, down: 1, weight: 0 } }, datapath: { tx: 10 },
  };

  test('the data dump has the instance, its VIPs, the service, the real and its checker', () => {
    const text = formatData(status);
    for (const line of [' VRRP Instance = VI_1', '   State = MASTER', '   Effective priority = 140', '     198.18.0.100/32 dev eth0 scope global',
      ' VS = [198.18.0.100]:tcp:80 (k.conf:9)', '   RS = [198.18.0.11]:tcp:80, DR, DOWN, weight 1 (configured 1)',
      '     TCP_CHECK TCP 198.18.0.11:80: down (connection refused)']) {
      assert.ok(text.split('\n').includes(line), `'${line}' in:\n${text}`);
    }
  });

  test('the stats dump has the counters; writeDump replaces the file whole', () => {
    const text = formatStats(stats);
    assert.match(text, /^ TCP 198\.18\.0\.100:80 \(\[198\.18\.0\.100\]:tcp:80\): connections 2, packets 10, bytes 900$/m);
    assert.match(text, /^ {3}-> 198\.18\.0\.11: connections 2, packets 10, bytes 900$/m);
    assert.match(text, /^ checks run 5, failed 1, timed out 0$/m);
    const dir = mkdtempSync(join(tmpdir(), 'xlb-dump-'));
    try {
      writeDump(dir, DATA_FILE, 'old\n');
      const path = writeDump(dir, DATA_FILE, text);
      assert.equal(readFileSync(path, 'utf8'), text);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('xlb run', () => {
  const io = () => {
    const out: string[] = [];
    const err: string[] = [];
    return { io: { out: (t: string) => { out.push(t); }, err: (t: string) => { err.push(t); }, isRoot: () => true }, out, err };
  };
  const runWith = async (argv: string[], code = 0) => {
    const got: RunOptions[] = [];
    const { io: cio, out, err } = io();
    const exit = await runCli(argv, cio, { decap: {} as never, run: async (o) => { got.push(o); return code; } });
    return { exit, got, out: out.join(''), err: err.join('') };
  };

  test("keepalived's flags and xlb's own reach the daemon", async () => {
    const r = await runWith(['run', '-f', '/x/k.conf', '-C', '-n', '-D', '-p', '/run/x.pid', '--instance', 'edge', '--xdp-interface', 'eth1', 'eth2',
      '--xdp-mode', 'generic', '--keep-datapath', '--metrics', ':9100', '--socket', '/tmp/s.sock']);
    assert.equal(r.exit, 0, r.err);
    const o = r.got[0]!;
    assert.deepEqual([o.configFile, o.vrrp, o.services, o.pidFile, o.instance, o.interfaces, o.xdpMode, o.datapathOnStop, o.metrics, o.socketPath],
      ['/x/k.conf', false, true, '/run/x.pid', 'edge', ['eth1', 'eth2'], 'generic', 'keep', { host: '::', port: 9100 }, '/tmp/s.sock']);
    const d = await runWith(['run']);
    assert.deepEqual([d.got[0]!.configFile, d.got[0]!.vrrp, d.got[0]!.services, d.got[0]!.instance, d.got[0]!.datapathOnStop, d.got[0]!.dumpDir],
      ['/etc/keepalived/keepalived.conf', true, true, 'default', 'remove', '/tmp']);
  });

  test('-P with -C is refused; a bad --metrics address is refused; the daemon\'s exit code is the command\'s', async () => {
    let r = await runWith(['run', '-P', '-C']);
    assert.equal(r.exit, 1);
    assert.match(r.err, /cannot be used with option '-C, --check'|exclude each other/);
    assert.equal(r.got.length, 0);
    r = await runWith(['run', '--metrics', 'nope']);
    assert.equal(r.exit, 1);
    assert.match(r.err, /metrics address "nope"/);
    r = await runWith(['run'], 4);
    assert.equal(r.exit, 4, 'a configuration that cannot be used: exit 4');
  });
});

describe('contrib/xlb.service', () => {
  test('its ExecStart is a valid `xlb run` command line; reload is SIGHUP; the pid file is the one it writes', async () => {
    const unit = readFileSync(join(import.meta.dirname, '../../contrib/xlb.service'), 'utf8');
    const value = (key: string) => unit.match(new RegExp(`^${key}=(.*)$`, 'm'))?.[1];
    const exec = value('ExecStart')!.split(/\s+/);
    assert.match(exec[0]!, /\/xlb$/);
    const got: RunOptions[] = [];
    const code = await runCli(exec.slice(1), { out: () => undefined, err: (t) => assert.fail(t), isRoot: () => true },
      { decap: {} as never, run: async (o) => { got.push(o); return 0; } });
    assert.equal(code, 0);
    assert.equal(got[0]!.configFile, '/etc/keepalived/keepalived.conf');
    assert.equal(got[0]!.pidFile, value('PIDFile'));
    assert.equal(value('ExecReload'), '/bin/kill -HUP $MAINPID');
    assert.equal(value('KillSignal'), 'SIGTERM');
  });
});

describe('the reconciler after a hitless restart (held services)', () => {
  test('the first plan removes what is no longer wanted and leaves alone what is held as wanted', async () => {
    const driver = new FakeDriver();
    const a = vs('198.18.0.10', 80, [rs('198.18.1.1', 80, { checkers: [] })], { lb_algo: 'wrr', lb_kind: 'DR' });
    const b = vs('198.18.0.11', 80, [rs('198.18.1.1', 80, { checkers: [] })], { lb_algo: 'wrr', lb_kind: 'DR' });
    const [sa, sb] = resolveServices(services([a, b]), XDP_CAPABILITIES).services;
    // what the previous process programmed: both services, reals with their keys in another order
    const held = [sa!, sb!].map((s) => ({ service: s.endpoints[0]!, reals: s.reals.map((r) => ({ weight: r.weight, method: r.method, port: r.port, address: r.address })) }));
    for (const h of held) await driver.setService(h.service, h.reals);
    driver.calls.length = 0;
    const rec = new Reconciler({ driver, held });
    await rec.setServices([sa!]);
    assert.deepEqual(driver.calls.map((c) => [c.op, c.key]), [['remove', 'tcp:198.18.0.11:80']]);
    assert.deepEqual(driver.services(), ['tcp:198.18.0.10:80']);
  });
});

describe('the pid file', () => {
  test('a stale one is replaced, one naming a live process refuses the start', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xlb-pid-'));
    try {
      const f = join(dir, 'xlb.pid');
      writeDump(dir, 'xlb.pid', '2147483646\n');
      claimPidFile(f);
      assert.equal(readFileSync(f, 'utf8'), `${process.pid}\n`);
      writeDump(dir, 'xlb.pid', `${process.ppid}\n`);
      assert.throws(() => claimPidFile(f), new RegExp(`xlb is already running as pid ${process.ppid}`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('VRRP units', () => {
  test('a sync group with its members is one unit, an instance alone another; a change touches only its unit', () => {
    const inst = (name: string, priority = 100) => ({ name, interface: 'eth0', virtual_router_id: name.length + priority, priority, virtual_ipaddress: [] });
    const c = { vrrp_instance: [inst('A'), inst('B'), inst('C')], vrrp_sync_group: [{ name: 'G', group: ['A', 'B'] }] };
    const u = vrrpUnits(c);
    assert.deepEqual([...u].map(([k, v]) => [k, v.instances]), [['group G', ['A', 'B']], ['instance C', ['C']]]);
    assert.deepEqual(u.get('group G')!.config.vrrp_instance.map((i) => i.name), ['A', 'B']);
    assert.equal(u.get('instance C')!.config.vrrp_sync_group, undefined);
    const changed = vrrpUnits({ ...c, vrrp_instance: [inst('A'), inst('B'), inst('C', 120)] });
    assert.equal(changed.get('group G')!.signature, u.get('group G')!.signature, 'the group is untouched by a change of C');
    assert.notEqual(changed.get('instance C')!.signature, u.get('instance C')!.signature);
  });
});
