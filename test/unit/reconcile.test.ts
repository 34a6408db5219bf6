/**
 * The reconciler (src/model/reconcile.ts) over the in-memory driver: health events, quorum and
 * hysteresis, sorry servers, inhibit_on_failure, alpha, the schedulers' selections, VRRP
 * ownership and ha_suspend, reloads, omega at shutdown, driver failures, and that each change
 * makes the smallest set of driver calls. Services come from the model's validation
 * (src/model/validate.ts) of configs built like the parser's.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { XDP_CAPABILITIES, serviceKey, type DatapathReal, type DatapathService } from '../../src/datapath/driver.ts';
import { FakeDriver } from '../../src/datapath/fake-driver.ts';
import type { HealthEvent } from '../../src/health/types.ts';
import { INITIAL_STATE, Reconciler, plan, type Ownership } from '../../src/model/reconcile.ts';
import type { NotifyScript, RealServer, VirtualServer } from '../../src/model/types.ts';
import { resolveServices, type ResolvedService } from '../../src/model/validate.ts';
import { config, pos, rs, vs } from '../lib/model-builder.ts';

function resolved(...servers: VirtualServer[]): ResolvedService[] {
  const r = resolveServices(config(servers), XDP_CAPABILITIES);
  assert.deepEqual(r.errors, []);
  return r.services;
}

const script = (command: string): NotifyScript => ({ command });

/** A reconciler over a fake driver, recording scripts, FIFO lines, logs and checker switches. */
function rig() {
  const driver = new FakeDriver();
  const scripts: string[] = [];
  const fifo: string[] = [];
  const logs: string[] = [];
  const checking: string[] = [];
  const rec = new Reconciler({
    driver,
    runScript: (s, _what, stopping) => scripts.push(`${s.command}${stopping ? ' (stopping)' : ''}`),
    fifos: [{ write: (l: string) => fifo.push(l) > 0 }],
    log: (l) => logs.push(l),
    setChecking: (id, on) => checking.push(`${id} ${on ? 'on' : 'off'}`),
  });
  const event = (real: string, up: boolean, weight = 1): HealthEvent =>
    ({ real, type: up ? 'up' : 'down', up, weight, checker: { index: 0, kind: 'TCP_CHECK', reason: up ? 'ok' : 'connection refused' }, at: 0 });
  /** the driver calls made by `fn` */
  const callsOf = async (fn: () => Promise<void>) => {
    const n = driver.calls.length;
    await fn();
    return driver.calls.slice(n).map((c) => (c.op === 'set' ? `set ${c.key} ${JSON.stringify(Object.fromEntries(c.reals.map((r) => [r.address, r.weight])))}` : `remove ${c.key}`));
  };
  const clear = () => { scripts.length = 0; fifo.length = 0; logs.length = 0; checking.length = 0; };
  return { driver, rec, scripts, fifo, logs, checking, event, callsOf, clear };
}

const K = 'tcp:198.18.0.10:80';
const realId = (addr: string, port = 80, svc = K) => `${svc}/[${addr}]:tcp:${port}`;
const three = (extra: Partial<RealServer> = {}) => ['198.18.1.1', '198.18.1.2', '198.18.1.3'].map((a) => rs(a, 80, extra));

describe('health', () => {
  test('first apply: one set per service; applying the same again changes nothing', async () => {
    const { rec, callsOf } = rig();
    const services = resolved(vs('198.18.0.10', 80, three(), { lb_algo: 'wrr' }), vs('198.18.0.11', 443, [rs('198.18.1.9', 443, { weight: 3 })], { lb_algo: 'wrr' }));
    assert.deepEqual(await callsOf(() => rec.setServices(services)), [
      `set ${K} {"198.18.1.1":1,"198.18.1.2":1,"198.18.1.3":1}`,
      'set tcp:198.18.0.11:443 {"198.18.1.9":3}',
    ]);
    assert.deepEqual(await callsOf(() => rec.setServices(services)), []);
  });

  test('a failing real leaves rotation (notify_down, FIFO, log), comes back (notify_up); only its service is touched', async () => {
    const { rec, callsOf, event, scripts, fifo, logs } = rig();
    const reals = three({ notify_up: script('/bin/up'), notify_down: script('/bin/down') });
    await rec.setServices(resolved(vs('198.18.0.10', 80, reals, { lb_algo: 'wrr' }), vs('198.18.0.11', 80, three(), { lb_algo: 'wrr' })));
    assert.deepEqual(scripts, [], 'no notifications at the first apply');
    assert.deepEqual(await callsOf(() => rec.health(event(realId('198.18.1.2'), false))), [`set ${K} {"198.18.1.1":1,"198.18.1.3":1}`]);
    assert.deepEqual(scripts, ['/bin/down']);
    assert.deepEqual(fifo, ['RS [198.18.1.2]:tcp:80 [198.18.0.10]:tcp:80 DOWN\n']);
    assert.ok(logs.includes('Removing service [198.18.1.2]:tcp:80 from VS [198.18.0.10]:tcp:80'), logs.join('\n'));
    // the same state again: nothing
    assert.deepEqual(await callsOf(() => rec.health(event(realId('198.18.1.2'), false))), []);
    assert.deepEqual(await callsOf(() => rec.health(event(realId('198.18.1.2'), true))), [`set ${K} {"198.18.1.1":1,"198.18.1.2":1,"198.18.1.3":1}`]);
    assert.deepEqual(scripts, ['/bin/down', '/bin/up']);
    assert.equal(fifo.at(-1), 'RS [198.18.1.2]:tcp:80 [198.18.0.10]:tcp:80 UP\n');
  });

  test('inhibit_on_failure: a failing real goes to weight 0 instead of leaving', async () => {
    const { rec, callsOf, event } = rig();
    await rec.setServices(resolved(vs('198.18.0.10', 80, three(), { lb_algo: 'wrr', inhibit_on_failure: true })));
    assert.deepEqual(await callsOf(() => rec.health(event(realId('198.18.1.3'), false))), [`set ${K} {"198.18.1.1":1,"198.18.1.2":1,"198.18.1.3":0}`]);
  });

  test('dynamic weights (weight events) are applied and count toward the quorum', async () => {
    const { rec, callsOf, event, scripts } = rig();
    await rec.setServices(resolved(vs('198.18.0.10', 80, three(), { lb_algo: 'wrr', quorum: 3, quorum_down: script('/bin/qdown') })));
    assert.deepEqual(await callsOf(() => rec.health({ ...event(realId('198.18.1.1'), true, 7), type: 'weight' })), [`set ${K} {"198.18.1.1":7,"198.18.1.2":1,"198.18.1.3":1}`]);
    // 7 + 1 = 8 >= 3 without two reals: still quorum
    await rec.health(event(realId('198.18.1.2'), false));
    await rec.health(event(realId('198.18.1.3'), false));
    assert.deepEqual(scripts, []);
    await rec.health({ ...event(realId('198.18.1.1'), true, 2), type: 'weight' });
    assert.deepEqual(scripts, ['/bin/qdown']);
  });

  test('an event for a real the reconciler does not know changes nothing', async () => {
    const { rec, callsOf, event } = rig();
    await rec.setServices(resolved(vs('198.18.0.10', 80, three(), { lb_algo: 'wrr' })));
    assert.deepEqual(await callsOf(() => rec.health(event('tcp:198.18.9.9:80/[198.18.1.1]:tcp:80', false))), []);
  });

  test('alpha: reals with checkers start down (not in the pool) until they succeed; a real without checkers is up', async () => {
    const { rec, callsOf, event, fifo } = rig();
    const reals = [...three(), rs('198.18.1.4', 80, { checkers: [] })];
    assert.deepEqual(await callsOf(() => rec.setServices(resolved(vs('198.18.0.10', 80, reals, { lb_algo: 'wrr', alpha: true, quorum: 2 })))), [`set ${K} {"198.18.1.4":1}`]);
    assert.deepEqual(fifo, ['VS [198.18.0.10]:tcp:80 DOWN\n'], 'starting without quorum is reported');
    assert.deepEqual(await callsOf(() => rec.health(event(realId('198.18.1.1'), true))), [`set ${K} {"198.18.1.1":1,"198.18.1.4":1}`]);
    assert.equal(fifo.at(-1), 'VS [198.18.0.10]:tcp:80 UP\n');
  });
});

describe('quorum and the sorry server', () => {
  test('quorum lost: quorum_down, FIFO, the sorry server takes over (inhibit_on_failure reals at 0); regained: back', async () => {
    const { rec, callsOf, event, scripts, fifo } = rig();
    const reals = three();
    reals[0]!.inhibit_on_failure = true;
    const v = vs('198.18.0.10', 80, reals, {
      lb_algo: 'wrr', quorum: 2, quorum_up: script('/bin/qup'), quorum_down: script('/bin/qdown'),
      sorry_server: { pos: pos(), address: '198.18.9.9', port: 80 },
    });
    await rec.setServices(resolved(v));
    assert.deepEqual(await callsOf(() => rec.health(event(realId('198.18.1.2'), false))), [`set ${K} {"198.18.1.1":1,"198.18.1.3":1}`]);
    assert.deepEqual(scripts, []);
    assert.deepEqual(await callsOf(() => rec.health(event(realId('198.18.1.3'), false))), [`set ${K} {"198.18.1.1":0,"198.18.9.9":1}`]);
    assert.deepEqual(scripts, ['/bin/qdown']);
    assert.deepEqual(fifo.slice(-2), ['RS [198.18.1.3]:tcp:80 [198.18.0.10]:tcp:80 DOWN\n', 'VS [198.18.0.10]:tcp:80 DOWN\n']);
    assert.deepEqual(await callsOf(() => rec.health(event(realId('198.18.1.3'), true))), [`set ${K} {"198.18.1.1":1,"198.18.1.3":1}`]);
    assert.deepEqual(scripts, ['/bin/qdown', '/bin/qup']);
    assert.equal(fifo.at(-1), 'VS [198.18.0.10]:tcp:80 UP\n');
  });

  test('hysteresis: quorum 3 ± 1 — lost below 2, regained at 4', async () => {
    const { rec, event, fifo } = rig();
    const reals = ['1', '2', '3', '4', '5'].map((n) => rs(`198.18.1.${n}`, 80));
    await rec.setServices(resolved(vs('198.18.0.10', 80, reals, { lb_algo: 'wrr', quorum: 3, hysteresis: 1 })));
    const vsLines = () => fifo.filter((l) => l.startsWith('VS '));
    for (const n of ['1', '2', '3']) await rec.health(event(realId(`198.18.1.${n}`), false));
    assert.deepEqual(vsLines(), [], '2 live of quorum 3 - 1: kept');
    await rec.health(event(realId('198.18.1.4'), false));
    assert.deepEqual(vsLines(), ['VS [198.18.0.10]:tcp:80 DOWN\n']);
    for (const n of ['1', '2']) await rec.health(event(realId(`198.18.1.${n}`), true));
    assert.equal(vsLines().length, 1, '3 live of quorum 3 + 1: not yet');
    await rec.health(event(realId('198.18.1.3'), true));
    assert.deepEqual(vsLines(), ['VS [198.18.0.10]:tcp:80 DOWN\n', 'VS [198.18.0.10]:tcp:80 UP\n']);
  });

  test('sorry_server_inhibit: the sorry server waits at weight 0 while the pool has quorum', async () => {
    const { rec, callsOf, event } = rig();
    const v = vs('198.18.0.10', 80, [rs('198.18.1.1', 80)], { lb_algo: 'wrr', sorry_server: { pos: pos(), address: '198.18.9.9', port: 80, inhibit: true } });
    assert.deepEqual(await callsOf(() => rec.setServices(resolved(v))), [`set ${K} {"198.18.1.1":1,"198.18.9.9":0}`]);
    assert.deepEqual(await callsOf(() => rec.health(event(realId('198.18.1.1'), false))), [`set ${K} {"198.18.9.9":1}`]);
  });

  test('without a sorry server the reals that are left keep serving below quorum', async () => {
    const { rec, callsOf, event, fifo } = rig();
    await rec.setServices(resolved(vs('198.18.0.10', 80, three(), { lb_algo: 'wrr', quorum: 3 })));
    assert.deepEqual(await callsOf(() => rec.health(event(realId('198.18.1.1'), false))), [`set ${K} {"198.18.1.2":1,"198.18.1.3":1}`]);
    assert.equal(fifo.at(-1), 'VS [198.18.0.10]:tcp:80 DOWN\n');
  });
});

describe('schedulers', () => {
  test('fo: only the highest weight gets new connections, the others drained; on its failure the next one', async () => {
    const { rec, callsOf, event } = rig();
    const reals = [rs('198.18.1.1', 80, { weight: 5 }), rs('198.18.1.2', 80, { weight: 9 }), rs('198.18.1.3', 80, { weight: 9 })];
    assert.deepEqual(await callsOf(() => rec.setServices(resolved(vs('198.18.0.10', 80, reals, { lb_algo: 'fo' })))), [`set ${K} {"198.18.1.1":0,"198.18.1.2":9,"198.18.1.3":0}`]);
    assert.deepEqual(await callsOf(() => rec.health(event(realId('198.18.1.2'), false, 9))), [`set ${K} {"198.18.1.1":0,"198.18.1.3":9}`]);
  });

  test('dh: one real per destination, kept while it lives; rr and lc: equal weights', async () => {
    const { rec, driver, event } = rig();
    const weights = [4, 2, 1];
    const reals = () => ['198.18.1.1', '198.18.1.2', '198.18.1.3'].map((a, i) => rs(a, 80, { weight: weights[i]! }));
    await rec.setServices(resolved(vs('198.18.0.10', 80, reals(), { lb_algo: 'dh' })));
    const chosen = () => Object.entries(driver.weights(K)!).filter(([, w]) => w > 0).map(([a]) => a);
    const [first] = chosen();
    assert.equal(chosen().length, 1);
    const other = ['198.18.1.1', '198.18.1.2', '198.18.1.3'].find((a) => a !== first)!;
    await rec.health(event(realId(other), false, weights[Number(other.at(-1)) - 1]));
    assert.deepEqual(chosen(), [first], 'another real failing moved the destination');
    await rec.health(event(realId(first!), false));
    assert.equal(chosen().length, 1);
    assert.notEqual(chosen()[0], first);

    for (const algo of ['rr', 'lc', 'nq'] as const) {
      const r = rig();
      await r.rec.setServices(resolved(vs('198.18.0.10', 80, reals(), { lb_algo: algo })));
      assert.deepEqual(r.driver.weights(K), { '198.18.1.1': 1, '198.18.1.2': 1, '198.18.1.3': 1 }, algo);
    }
    for (const algo of ['wrr', 'wlc', 'sed', 'sh', 'mh'] as const) {
      const r = rig();
      await r.rec.setServices(resolved(vs('198.18.0.10', 80, reals(), { lb_algo: algo })));
      assert.deepEqual(r.driver.weights(K), { '198.18.1.1': 4, '198.18.1.2': 2, '198.18.1.3': 1 }, algo);
      assert.equal(r.driver.held.get(K)!.service.hashSourceOnly, algo === 'sh' || algo === 'mh' ? true : undefined);
    }
  });
});

describe('VRRP ownership', () => {
  test('services are programmed whether owned or not; ha_suspend switches their checkers with ownership', async () => {
    const { rec, callsOf, checking } = rig();
    const services = resolved(
      vs('198.18.0.10', 80, three(), { lb_algo: 'wrr', ha_suspend: true }),
      vs('198.18.0.11', 80, [rs('198.18.1.5', 80)], { lb_algo: 'wrr' }),
    );
    await rec.setOwned(new Set());
    assert.equal((await callsOf(() => rec.setServices(services))).length, 2, 'both services programmed on a backup');
    assert.deepEqual(checking, ['1', '2', '3'].map((n) => `${realId(`198.18.1.${n}`)} off`));
    checking.length = 0;
    const owned: Ownership = new Set(['198.18.0.10']);
    assert.deepEqual(await callsOf(() => rec.setOwned(owned)), [], 'a takeover needs no datapath change');
    assert.deepEqual(checking, ['1', '2', '3'].map((n) => `${realId(`198.18.1.${n}`)} on`));
    checking.length = 0;
    await rec.setOwned(new Set(['198.18.0.11']));
    assert.equal(checking.length, 3);
    await rec.setOwned('all');
    assert.deepEqual(checking.slice(3), ['1', '2', '3'].map((n) => `${realId(`198.18.1.${n}`)} on`));
  });
  test('ha_suspend: a reload while suspended switches off the checkers of every real, new and re-added ones too', async () => {
    const { rec, checking } = rig();
    const svc = (n: number) => resolved(vs('198.18.0.10', 80, ['1', '2', '3', '4'].slice(0, n).map((x) => rs(`198.18.1.${x}`, 80)), { lb_algo: 'wrr', ha_suspend: true }));
    await rec.setOwned(new Set());
    await rec.setServices(svc(3));
    checking.length = 0;
    await rec.setServices(svc(4));
    assert.deepEqual(checking, ['1', '2', '3', '4'].map((n) => `${realId(`198.18.1.${n}`)} off`));
    checking.length = 0;
    await rec.setOwned(new Set(['198.18.0.10']));
    assert.deepEqual(checking, ['1', '2', '3', '4'].map((n) => `${realId(`198.18.1.${n}`)} on`));
    checking.length = 0;
    await rec.setServices(svc(4));
    assert.deepEqual(checking, [], 'owned: a reload leaves the checkers on (the health engine adds reals enabled)');
  });
});

describe('reloads and shutdown', () => {
  test('a reload removes services no longer configured (their alive reals and quorum reported down), adds and drops reals', async () => {
    const { rec, callsOf, scripts, fifo, clear } = rig();
    const a = vs('198.18.0.10', 80, three({ notify_down: script('/bin/down') }), { lb_algo: 'wrr', quorum_down: script('/bin/qdown') });
    const b = vs('198.18.0.11', 80, [rs('198.18.1.5', 80)], { lb_algo: 'wrr' });
    await rec.setServices(resolved(a, b));
    clear();
    const b2 = vs('198.18.0.11', 80, [rs('198.18.1.5', 80), rs('198.18.1.6', 80)], { lb_algo: 'wrr' });
    assert.deepEqual(await callsOf(() => rec.setServices(resolved(b2))), [`remove ${K}`, 'set tcp:198.18.0.11:80 {"198.18.1.5":1,"198.18.1.6":1}']);
    assert.deepEqual(scripts, ['/bin/down', '/bin/down', '/bin/down', '/bin/qdown']);
    assert.equal(fifo.filter((l) => l.startsWith('RS ')).length, 3);
    assert.equal(fifo.at(-1), 'VS [198.18.0.10]:tcp:80 DOWN\n');
    clear();
    const b3 = vs('198.18.0.11', 80, [rs('198.18.1.6', 80)], { lb_algo: 'wrr' });
    assert.deepEqual(await callsOf(() => rec.setServices(resolved(b3))), ['set tcp:198.18.0.11:80 {"198.18.1.6":1}']);
    assert.deepEqual(fifo, ['RS [198.18.1.5]:tcp:80 [198.18.0.11]:tcp:80 DOWN\n']);
  });

  test('a group: one set per address, all of them follow a real\'s failure', async () => {
    const { rec, callsOf, event } = rig();
    const g = { pos: pos(), name: 'WEB', entries: [{ pos: pos(), kind: 'ip' as const, address: '198.18.0.20', range_end: 21, port: 80 }] };
    const v = { pos: pos(), service: { kind: 'group' as const, group: 'WEB' }, real_server: three(), lb_algo: 'wrr' as const };
    const r = resolveServices(config([v], [g]), XDP_CAPABILITIES);
    assert.deepEqual(await callsOf(() => rec.setServices(r.services)), [
      'set tcp:198.18.0.20:80 {"198.18.1.1":1,"198.18.1.2":1,"198.18.1.3":1}',
      'set tcp:198.18.0.21:80 {"198.18.1.1":1,"198.18.1.2":1,"198.18.1.3":1}',
    ]);
    assert.deepEqual(await callsOf(() => rec.health(event('group:WEB:tcp/[198.18.1.1]:tcp:80', false))), [
      'set tcp:198.18.0.20:80 {"198.18.1.2":1,"198.18.1.3":1}',
      'set tcp:198.18.0.21:80 {"198.18.1.2":1,"198.18.1.3":1}',
    ]);
  });

  test('shutdown removes everything; with omega the alive reals\' notify_down and quorum_down run (as stopping)', async () => {
    for (const omega of [true, false]) {
      const { rec, callsOf, scripts, fifo, clear } = rig();
      await rec.setServices(resolved(vs('198.18.0.10', 80, three({ notify_down: script('/bin/down') }), { lb_algo: 'wrr', omega, quorum_down: script('/bin/qdown') })));
      clear();
      assert.deepEqual(await callsOf(() => rec.shutdown()), [`remove ${K}`]);
      if (omega) {
        assert.deepEqual(scripts, ['/bin/down (stopping)', '/bin/down (stopping)', '/bin/down (stopping)', '/bin/qdown (stopping)']);
        assert.equal(fifo.length, 4);
      } else {
        assert.deepEqual([scripts, fifo], [[], []]);
      }
    }
  });
});

describe('the applier', () => {
  test('a failed driver call is counted, the old state kept, and retried with the next change', async () => {
    const { rec, driver, callsOf, event, logs } = rig();
    await rec.setServices(resolved(vs('198.18.0.10', 80, three(), { lb_algo: 'wrr' }), vs('198.18.0.11', 80, three(), { lb_algo: 'wrr' })));
    driver.failures.set(K, new Error('ENOMEM'));
    assert.deepEqual(await callsOf(() => rec.health(event(realId('198.18.1.1'), false))), []);
    assert.equal(rec.failures, 1);
    assert.ok(logs.some((l) => l.includes(`set ${K} failed: ENOMEM`)), logs.join('\n'));
    assert.deepEqual(driver.weights(K), { '198.18.1.1': 1, '198.18.1.2': 1, '198.18.1.3': 1 }, 'the driver kept the old state');
    // a change of another service: the failed one is planned again and now succeeds
    const calls = await callsOf(() => rec.health(event(realId('198.18.1.2', 80, 'tcp:198.18.0.11:80'), false)));
    assert.deepEqual(calls.sort(), [`set ${K} {"198.18.1.2":1,"198.18.1.3":1}`, 'set tcp:198.18.0.11:80 {"198.18.1.1":1,"198.18.1.3":1}']);
  });

  test('a failed removal is retried with the next change of anything', async () => {
    const { rec, driver, callsOf, event } = rig();
    await rec.setServices(resolved(vs('198.18.0.10', 80, three(), { lb_algo: 'wrr' }), vs('198.18.0.11', 80, three(), { lb_algo: 'wrr' })));
    driver.failures.set(K, new Error('EBUSY'));
    await rec.setServices(resolved(vs('198.18.0.11', 80, three(), { lb_algo: 'wrr' })));
    assert.equal(rec.failures, 1);
    assert.deepEqual(driver.services().sort(), [K, 'tcp:198.18.0.11:80'], 'the driver still holds the service');
    const calls = await callsOf(() => rec.health(event(realId('198.18.1.1', 80, 'tcp:198.18.0.11:80'), false)));
    assert.deepEqual(calls, [`remove ${K}`, 'set tcp:198.18.0.11:80 {"198.18.1.2":1,"198.18.1.3":1}']);
    assert.deepEqual(driver.services(), ['tcp:198.18.0.11:80']);
  });

  test('changes that arrive together are applied one after the other, the last state wins', async () => {
    const { rec, driver, event } = rig();
    await rec.setServices(resolved(vs('198.18.0.10', 80, three(), { lb_algo: 'wrr' })));
    await Promise.all([
      rec.health(event(realId('198.18.1.1'), false)),
      rec.health(event(realId('198.18.1.2'), false)),
      rec.health(event(realId('198.18.1.1'), true)),
    ]);
    assert.deepEqual(driver.weights(K), { '198.18.1.1': 1, '198.18.1.3': 1 });
  });

  test('plan is pure: the same input and state give the same plan, and the state given is not changed', () => {
    const services = resolved(vs('198.18.0.10', 80, three(), { lb_algo: 'wrr' }));
    const input = { services, health: new Map([[realId('198.18.1.1'), { up: false, weight: 1 }]]), owned: 'all' as const };
    const a = plan(input, INITIAL_STATE);
    const b = plan(input, INITIAL_STATE);
    assert.deepEqual(a, b);
    assert.equal(INITIAL_STATE.applied.size, 0);
    const again = plan(input, a.state);
    assert.deepEqual(again.ops, []);
    assert.equal(a.state.applied.size, 1);
  });
});

describe('batching', () => {
  /** a fake driver that also takes a plan's sets as one batch (the XDP driver's setServices) */
  class BatchDriver extends FakeDriver {
    readonly batches: string[][] = [];
    failBatch = false;
    async setServices(list: readonly { service: DatapathService; reals: readonly DatapathReal[] }[]): Promise<void> {
      this.batches.push(list.map((l) => serviceKey(l.service)));
      if (this.failBatch) throw new Error('batch refused');
      for (const { service, reals } of list) await this.setService(service, reals);
    }
  }
  const services = () => resolved(vs('198.18.0.10', 80, three()), vs('198.18.0.11', 80, three()), vs('198.18.0.12', 80, three()));

  test('a plan\'s sets go to the driver as one batch, after its removals', async () => {
    const driver = new BatchDriver();
    const rec = new Reconciler({ driver });
    await rec.setServices(services());
    assert.deepEqual(driver.batches, [['tcp:198.18.0.10:80', 'tcp:198.18.0.11:80', 'tcp:198.18.0.12:80']]);
    assert.equal(driver.held.size, 3);
    // a reload that removes one service and changes two: the removal first, then one batch
    await rec.setServices(resolved(vs('198.18.0.10', 80, three({ weight: 2 })), vs('198.18.0.11', 80, three({ weight: 2 }))));
    assert.deepEqual(driver.calls.slice(3).map((c) => `${c.op} ${c.key}`), ['remove tcp:198.18.0.12:80', 'set tcp:198.18.0.10:80', 'set tcp:198.18.0.11:80']);
    assert.deepEqual(driver.batches[1], ['tcp:198.18.0.10:80', 'tcp:198.18.0.11:80']);
    assert.equal(rec.failures, 0);
  });

  test('a failed batch is applied one by one again: each service\'s failure is its own', async () => {
    const driver = new BatchDriver();
    driver.failBatch = true;
    driver.failures.set('tcp:198.18.0.11:80', new Error('kernel said no'));
    const logs: string[] = [];
    const rec = new Reconciler({ driver, log: (l) => logs.push(l) });
    await rec.setServices(services());
    assert.equal(driver.batches.length, 1);
    assert.deepEqual([...driver.held.keys()], ['tcp:198.18.0.10:80', 'tcp:198.18.0.12:80']);
    assert.equal(rec.failures, 1);
    assert.ok(logs.some((l) => l.includes('set tcp:198.18.0.11:80 failed: kernel said no')), logs.join('\n'));
  });
});
