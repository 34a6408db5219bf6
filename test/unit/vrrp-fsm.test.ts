/**
 * The VRRP state machine (src/vrrp/fsm.ts) driven by a fake clock: routers on a simulated LAN
 * whose adverts reach the others 0.1 ms later, each router's timer actions armed on one
 * ManualClock through NamedTimers (the way the daemon will drive it with real timers).
 * Expected times are worked out from the RFC formulas in each test, not taken from the code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, NamedTimers } from '../../src/util/clock.ts';
import {
  initialState, masterDownInterval, nextTimer, skewTime, step, takesOverOn, type FsmAction, type FsmConfig, type FsmEvent, type FsmState,
  type TimerName,
} from '../../src/vrrp/fsm.ts';
import type { Advert } from '../../src/vrrp/packet.ts';

const LATENCY = 0.1;

class Router {
  state: FsmState;
  readonly timers: NamedTimers<TimerName>;
  /** times at which adverts were sent, with their priority */
  readonly sent: { at: number; priority: number }[] = [];
  readonly notified: { at: number; state: string; priority: number }[] = [];
  readonly events: { at: number; event: string }[] = [];
  readonly garps: { at: number; repeat: number }[] = [];
  readonly log: string[] = [];
  readonly actions: FsmAction[] = [];
  vipsUp = false;
  linkUp = true;

  constructor(readonly lan: Lan, cfg: FsmConfig) {
    this.state = initialState(cfg);
    this.timers = new NamedTimers(lan.clock);
  }

  get name(): string { return this.state.cfg.name; }

  handle(event: FsmEvent): void {
    const r = step(this.state, event, this.lan.clock.now());
    this.state = r.state;
    for (const a of r.actions) this.apply(a);
  }

  apply(a: FsmAction): void {
    const now = this.lan.clock.now();
    this.actions.push(a);
    switch (a.type) {
      case 'setTimer': this.timers.set(a.timer, a.at, () => this.handle({ type: 'timer', timer: a.timer })); break;
      case 'clearTimer': this.timers.clear(a.timer); break;
      case 'sendAdvert': this.sent.push({ at: now, priority: a.priority }); this.lan.broadcast(this, a.priority); break;
      case 'becomeMaster': this.vipsUp = true; break;
      case 'leaveMaster': this.vipsUp = false; break;
      case 'sendGarp': this.garps.push({ at: now, repeat: a.repeat }); break;
      case 'notify': this.notified.push({ at: now, state: a.state, priority: a.priority }); break;
      case 'notifyEvent': this.events.push({ at: now, event: a.event }); break;
      case 'log': this.log.push(a.message); break;
    }
  }

  /** when this router last entered `state` */
  enteredAt(state: string): number | undefined {
    return this.notified.filter((n) => n.state === state).at(-1)?.at;
  }
}

class Lan {
  readonly clock = new ManualClock(0);
  readonly routers: Router[] = [];

  add(cfg: Partial<FsmConfig> & { name: string; address: string }): Router {
    const r = new Router(this, { version: 2, priority: 100, advertIntervalMs: 1000, ...cfg });
    this.routers.push(r);
    return r;
  }

  broadcast(from: Router, priority: number): void {
    if (!from.linkUp) return;
    const advert: Advert = {
      version: from.state.cfg.version, vrid: 1, priority, intervalMs: from.state.cfg.advertIntervalMs, addresses: ['198.18.0.100'],
      src: from.state.cfg.address, vipMismatch: false, legacyUnicastChecksum: false,
    };
    for (const to of this.routers) {
      if (to === from) continue;
      this.clock.setTimer(this.clock.now() + LATENCY, () => { if (to.linkUp) to.handle({ type: 'advert', advert }); });
    }
  }

  run(ms: number): void { this.clock.advance(ms); }
  masters(): string[] { return this.routers.filter((r) => r.state.state === 'MASTER').map((r) => r.name); }
}

/** A LAN with A (198.18.0.1, priority 150) and B (198.18.0.2, priority 100), settings overridden; `start` ones started now. */
function pair(a: Partial<FsmConfig> = {}, b: Partial<FsmConfig> = {}, start: ('a' | 'b')[] = []): { lan: Lan; a: Router; b: Router } {
  const lan = new Lan();
  const ra = lan.add({ name: 'A', address: '198.18.0.1', priority: 150, ...a });
  const rb = lan.add({ name: 'B', address: '198.18.0.2', priority: 100, ...b });
  for (const r of start) (r === 'a' ? ra : rb).handle({ type: 'startup' });
  return { lan, a: ra, b: rb };
}

const close = (actual: number | undefined, expected: number, what: string) => {
  assert.ok(actual !== undefined && Math.abs(actual - expected) < 1e-6, `${what}: ${actual} != ${expected}`);
};

// ---------------------------------------------------------------- formulas

test('Skew_Time and Master_Down_Interval follow RFC 3768 (v2) and RFC 5798 (v3)', () => {
  // v2: skew (256 - p) / 256 s regardless of the interval; down = 3 * interval + skew
  close(skewTime(2, 100, 1000), 156 / 256 * 1000, 'v2 skew p100');
  close(masterDownInterval(2, 100, 1000), 3000 + 609.375, 'v2 down p100 1s');
  close(masterDownInterval(2, 254, 3000), 9000 + 2 / 256 * 1000, 'v2 down p254 3s');
  // v3: skew ((256 - p) * Master_Adver_Interval) / 256
  close(skewTime(3, 100, 1000), 609.375, 'v3 skew p100 100cs');
  close(masterDownInterval(3, 200, 500), 1500 + 56 * 500 / 256, 'v3 down p200 50cs');
  close(masterDownInterval(3, 1, 4000), 12000 + 255 * 4000 / 256, 'v3 down p1 400cs');
  close(skewTime(3, 255, 1000), 1000 / 256, 'v3 skew owner');
});

test('a backup arms its master-down timer at startup: now + 3 * interval + skew', () => {
  for (const [version, advertIntervalMs, priority] of [[2, 1000, 100], [3, 500, 200], [3, 2000, 10]] as const) {
    const s0 = initialState({ name: 'VI', version, priority, advertIntervalMs, address: '198.18.0.1' });
    const r = step(s0, { type: 'startup' }, 1000);
    assert.equal(r.state.state, 'BACKUP');
    const set = r.actions.find((a) => a.type === 'setTimer' && a.timer === 'masterDown');
    close(set?.type === 'setTimer' ? set.at : undefined, 1000 + masterDownInterval(version, priority, advertIntervalMs), `v${version}`);
    assert.deepEqual(nextTimer(r.state), { timer: 'masterDown', at: 1000 + masterDownInterval(version, priority, advertIntervalMs) });
  }
});

// ---------------------------------------------------------------- elections

test('election: started together, the higher priority becomes master after its own down interval; the other stays backup', () => {
  const { lan, a, b } = pair({}, {}, ['a', 'b']);
  lan.run(20000);
  assert.deepEqual(lan.masters(), ['A']);
  close(a.enteredAt('MASTER'), 3000 + (256 - 150) / 256 * 1000, 'A takes over at 3 s + skew(150)');
  assert.equal(b.enteredAt('MASTER'), undefined);
  assert.equal(a.vipsUp, true);
  assert.equal(b.vipsUp, false);
  // A advertises every second from the moment it took over
  const times = a.sent.map((x) => x.at);
  assert.ok(times.length >= 16, `${times.length} adverts`);
  times.slice(1).forEach((t, i) => close(t - times[i]!, 1000, `interval ${i}`));
  assert.ok(a.log.some((l) => /^\(A\) BACKUP -> MASTER: /.test(l)), a.log.join('\n'));
  assert.deepEqual(a.state.stats.byTransition, { 'INIT->BACKUP': 1, 'BACKUP->MASTER': 1 });
  assert.equal(a.state.stats.transitions, 2);
});

test('election the other way: a higher priority joining later preempts the running master', () => {
  const { lan, a, b } = pair({}, {}, ['b']);
  lan.run(10000);
  assert.deepEqual(lan.masters(), ['B']);
  const joined = lan.clock.now();
  a.handle({ type: 'startup' });
  lan.run(10000);
  assert.deepEqual(lan.masters(), ['A']);
  // A discards B's lower adverts, so its master-down timer from startup runs out
  close(a.enteredAt('MASTER'), joined + 3000 + 106 / 256 * 1000, 'A preempts after its down interval');
  // B leaves as soon as it hears A's first advert
  close(b.enteredAt('BACKUP'), joined + 3000 + 106 / 256 * 1000 + LATENCY, 'B steps down on A\'s advert');
  assert.equal(b.vipsUp, false);
  assert.ok(a.log.some((l) => l.includes('lower priority 100 advert from 198.18.0.2 discarded')));
  assert.ok(b.log.some((l) => l.includes('MASTER -> BACKUP: higher priority 150 advert from 198.18.0.1')));
  // stepping down for a better master sends no priority-0 advert
  assert.ok(!b.sent.some((x) => x.priority === 0));
});

test('nopreempt: a higher priority backup leaves a running lower master alone', () => {
  const { lan, a, b } = pair({ preempt: false }, {}, ['b']);
  lan.run(10000);
  a.handle({ type: 'startup' });
  lan.run(60000);
  assert.deepEqual(lan.masters(), ['B']);
  assert.equal(a.state.state, 'BACKUP');
  assert.deepEqual(a.state.master, { address: '198.18.0.2', priority: 100 });
});

test('preempt_delay: the higher backup accepts the lower master until the delay is over, then takes over at once', () => {
  const { lan, a, b } = pair({ preemptDelayMs: 10000 }, {}, ['b']);
  lan.run(10000);
  a.handle({ type: 'startup' });
  lan.run(9000);
  assert.deepEqual(lan.masters(), ['B'], 'still B during the delay (A would otherwise have taken over at 3.4 s)');
  lan.run(20000);
  assert.deepEqual(lan.masters(), ['A']);
  // the delay starts with the first advert A hears from B
  const firstHeard = b.sent.find((x) => x.at >= 10000)!.at + LATENCY;
  close(a.enteredAt('MASTER'), firstHeard + 10000, 'A takes over 10 s after first hearing B');
  assert.ok(a.log.some((l) => l.includes('preempt delay over: master 198.18.0.2 has priority 100 < ours 150')));
});

test('preempt_delay is cancelled when the master is not lower any more', () => {
  const s0 = step(initialState({ name: 'A', version: 2, priority: 150, advertIntervalMs: 1000, address: '198.18.0.1', preemptDelayMs: 5000 }), { type: 'startup' }, 0).state;
  const advert = (priority: number): FsmEvent => ({
    type: 'advert',
    advert: { version: 2, vrid: 1, priority, intervalMs: 1000, addresses: [], src: '198.18.0.2', vipMismatch: false, legacyUnicastChecksum: false },
  });
  const s1 = step(s0, advert(100), 100).state;
  assert.equal(s1.timers.preemptDelay, 5100);
  const s2 = step(s1, advert(200), 1100);
  assert.equal(s2.state.timers.preemptDelay, undefined);
  assert.ok(s2.actions.some((a) => a.type === 'clearTimer' && a.timer === 'preemptDelay'));
  // a stale firing of the cleared timer changes nothing
  const s3 = step(s2.state, { type: 'timer', timer: 'preemptDelay' }, 5100);
  assert.equal(s3.state.state, 'BACKUP');
  assert.deepEqual(s3.actions, []);
});

test('the address owner (priority 255) takes over at once, and a running master yields to it', () => {
  const { lan, a: owner, b } = pair({ name: 'O', priority: 255 }, { priority: 200 }, ['b']);
  lan.run(5000);
  const t = lan.clock.now();
  owner.handle({ type: 'startup' });
  assert.equal(owner.state.state, 'MASTER', 'no master-down wait');
  assert.deepEqual(owner.sent[0], { at: t, priority: 255 });
  assert.deepEqual(owner.state.stats.byTransition, { 'INIT->MASTER': 1 });
  lan.run(1);
  assert.deepEqual(lan.masters(), ['O']);
  close(b.enteredAt('BACKUP'), t + LATENCY, 'B yields on the first advert');
});

test('configured state MASTER below priority 255 starts as BACKUP (keepalived 2.2.7): it stays under a running master, alone it takes over after the master-down interval', () => {
  const { lan, b } = pair({}, { initialState: 'MASTER' }, ['a']);
  lan.run(10000);
  b.handle({ type: 'startup' });
  assert.equal(b.state.state, 'BACKUP', 'not MASTER at once');
  assert.deepEqual(b.sent, [], 'no advert at startup');
  lan.run(10000);
  assert.deepEqual(lan.masters(), ['A']);
  assert.deepEqual(b.state.stats.byTransition, { 'INIT->BACKUP': 1 });
  const alone = new Lan().add({ name: 'C', address: '198.18.0.3', initialState: 'MASTER', version: 3, advertIntervalMs: 1000 });
  alone.handle({ type: 'startup' });
  assert.equal(alone.state.state, 'BACKUP');
  alone.lan.run(10000);
  close(alone.enteredAt('MASTER'), masterDownInterval(3, 100, 1000), 'C takes over after 3 * 1000 + skew(100)');
});

test('priority 0: a stopping master sends it, and the backup takes over after the skew time only', () => {
  const { lan, a, b } = pair({}, {}, ['a', 'b']);
  lan.run(10000);
  const stopAt = lan.clock.now();
  a.handle({ type: 'shutdown' });
  assert.equal(a.state.state, 'STOP');
  assert.deepEqual(a.sent.at(-1), { at: stopAt, priority: 0 });
  assert.equal(a.vipsUp, false);
  // the order of a master's stop: priority-0 advert, VIPs removed, notify STOP
  const tail = a.actions.slice(a.actions.findIndex((x) => x.type === 'sendAdvert' && x.priority === 0));
  assert.deepEqual(tail.filter((x) => x.type !== 'log' && x.type !== 'clearTimer').map((x) => x.type), ['sendAdvert', 'leaveMaster', 'notify']);
  assert.equal(a.state.timers.advert, undefined);
  lan.run(5000);
  assert.deepEqual(lan.masters(), ['B']);
  close(b.enteredAt('MASTER'), stopAt + LATENCY + 156 / 256 * 1000, 'B waits only skew(100) = 609.375 ms');
  assert.equal(b.state.stats.priorityZeroReceived, 1);
  assert.equal(a.state.stats.priorityZeroSent, 1);
});

test('a master that hears priority 0 answers at once and restarts its advert timer', () => {
  let s = step(initialState({ name: 'A', version: 3, priority: 255, advertIntervalMs: 1000, address: '198.18.0.1' }), { type: 'startup' }, 0).state;
  const r = step(s, { type: 'advert', advert: { version: 3, vrid: 1, priority: 0, intervalMs: 1000, addresses: [], src: '198.18.0.2', vipMismatch: false, legacyUnicastChecksum: false } }, 400);
  s = r.state;
  assert.equal(s.state, 'MASTER');
  assert.deepEqual(r.actions.filter((a) => a.type !== 'log'), [{ type: 'sendAdvert', priority: 255 }, { type: 'setTimer', timer: 'advert', at: 1400 }]);
});

test('equal priority: the higher primary address wins (both started as MASTER)', () => {
  for (const version of [2, 3] as const) {
    const both = { priority: 100, initialState: 'MASTER', version } as const;
    const { lan, a: low } = pair({ ...both, name: 'L', address: '198.18.0.9' }, { ...both, name: 'H', address: '198.18.0.10' }, ['a', 'b']);
    lan.run(30000);
    assert.deepEqual(lan.masters(), ['H'], `v${version}: 198.18.0.10 > 198.18.0.9 as numbers, not as text`);
    assert.ok(low.log.some((l) => l.includes('equal priority 100 advert from higher address 198.18.0.10')));
  }
});

test('a master that hears a lower priority answers at once (MASTER_RX_LOWER_PRI), unless lower_prio_no_advert', () => {
  for (const quiet of [false, true]) {
    // C cut off from A becomes master too (at 3804.6875, adverts at .6875 past each second)
    const { lan, a, b: c } = pair({ lowerPrioNoAdvert: quiet }, { name: 'C', address: '198.18.0.3', priority: 50 });
    c.linkUp = false;
    a.handle({ type: 'startup' });
    c.handle({ type: 'startup' });
    lan.run(10804.6); // A master since 3414.0625, adverts at .0625 past each second
    assert.equal(c.state.state, 'MASTER');
    c.linkUp = true;
    lan.run(0.1); // just past C's next advert, at 10804.6875
    const t = c.sent.at(-1)!.at;
    assert.equal(t, 10804.6875);
    lan.run(1);
    if (!quiet) {
      assert.deepEqual(a.sent.at(-1), { at: t + LATENCY, priority: 150 }, 'A answers C\'s advert at once');
      close(c.enteredAt('BACKUP'), t + 2 * LATENCY, 'C steps down on the answer');
    } else {
      assert.ok(a.sent.at(-1)!.at < t, 'A keeps to its own schedule');
      assert.equal(c.state.state, 'MASTER');
      lan.run(1000);
      close(c.enteredAt('BACKUP'), 11414.0625 + LATENCY, 'C steps down at A\'s next regular advert');
    }
    assert.deepEqual(a.events.map((e) => e.event), ['MASTER_RX_LOWER_PRI']);
    assert.deepEqual(lan.masters(), ['A']);
  }
});

test('v3: a backup adopts the master\'s advert interval for its down interval, and uses its own once master', () => {
  const { lan, a, b } = pair({ priority: 200, version: 3, advertIntervalMs: 500 }, { version: 3, advertIntervalMs: 2000 }, ['a']);
  lan.run(2000);
  b.handle({ type: 'startup' });
  lan.run(5000);
  assert.equal(b.state.masterAdverIntMs, 500);
  const lastHeard = a.sent.at(-1)!.at + LATENCY;
  close(b.state.timers.masterDown, lastHeard + 1500 + 156 * 500 / 256, 'B down = 3 * 500 + skew(100, 500)');
  a.linkUp = false; // A goes silent
  lan.run(10000);
  assert.equal(b.state.state, 'MASTER');
  close(b.enteredAt('MASTER'), lastHeard + 1500 + 156 * 500 / 256, 'B takes over after the adopted down interval');
  assert.equal(b.state.masterAdverIntMs, 2000);
  const mine = b.sent.map((x) => x.at);
  close(mine[1]! - mine[0]!, 2000, 'B advertises at its own 2 s');
});

test('v2: the master-down interval uses the configured interval, whatever the master sends', () => {
  const { lan, a, b } = pair({ priority: 200 }, {}, ['a']);
  lan.run(5000);
  b.handle({ type: 'startup' });
  lan.run(3000);
  assert.equal(b.state.masterAdverIntMs, 1000);
  close(b.state.timers.masterDown, a.sent.at(-1)!.at + LATENCY + 3609.375, 'v2 down 3 s + skew(100)');
});

// ---------------------------------------------------------------- fault, priority, timers

test('fault: a master sends priority 0, drops its VIPs and goes FAULT; the backup takes over; unfault comes back as BACKUP', () => {
  const { lan, a, b } = pair({}, {}, ['a', 'b']);
  lan.run(10000);
  const t = lan.clock.now();
  a.handle({ type: 'fault', reason: 'interface eth1 down' });
  assert.equal(a.state.state, 'FAULT');
  assert.equal(a.vipsUp, false);
  assert.deepEqual(a.sent.at(-1), { at: t, priority: 0 });
  assert.deepEqual(a.state.timers, {});
  assert.ok(a.log.some((l) => l === '(A) MASTER -> FAULT: interface eth1 down'));
  assert.deepEqual(a.notified.at(-1), { at: t, state: 'FAULT', priority: 150 });
  lan.run(2000);
  assert.deepEqual(lan.masters(), ['B']);
  close(b.enteredAt('MASTER'), t + LATENCY + 609.375, 'B after the skew time');
  // adverts are ignored in FAULT
  assert.equal(a.state.state, 'FAULT');
  const back = lan.clock.now();
  a.handle({ type: 'unfault' });
  assert.equal(a.state.state, 'BACKUP');
  lan.run(10000);
  assert.deepEqual(lan.masters(), ['A'], 'A preempts again after its down interval');
  close(a.enteredAt('MASTER'), back + 3000 + 106 / 256 * 1000, 'A back after 3 s + skew(150)');
});

test('a fault before startup starts the instance in FAULT; unfault then starts it as BACKUP', () => {
  let s = initialState({ name: 'A', version: 2, priority: 100, advertIntervalMs: 1000, address: '198.18.0.1' });
  s = step(s, { type: 'fault', reason: 'script chk down' }, 0).state;
  assert.equal(s.state, 'INIT');
  const r = step(s, { type: 'startup' }, 0);
  assert.equal(r.state.state, 'FAULT');
  assert.deepEqual(r.actions.filter((a) => a.type === 'notify'), [{ type: 'notify', state: 'FAULT', priority: 100 }]);
  const u = step(r.state, { type: 'unfault' }, 50);
  assert.equal(u.state.state, 'BACKUP');
  assert.equal(u.state.timers.masterDown, 50 + 3609.375);
});

test('priority change in BACKUP moves the running master-down deadline by the change of the skew time', () => {
  let s = step(initialState({ name: 'A', version: 2, priority: 100, advertIntervalMs: 1000, address: '198.18.0.1' }), { type: 'startup' }, 0).state;
  assert.equal(s.timers.masterDown, 3609.375);
  const r = step(s, { type: 'priority', priority: 200 }, 1000);
  s = r.state;
  assert.equal(s.effectivePriority, 200);
  assert.equal(s.timers.masterDown, 3000 + 56 / 256 * 1000);
  assert.deepEqual(r.actions.filter((a) => a.type === 'notifyEvent'), [{ type: 'notifyEvent', event: 'BACKUP_PRIORITY', priority: 200 }]);
  // the new priority is what a master advertises
  const m = step(step(s, { type: 'timer', timer: 'masterDown' }, 3300).state, { type: 'priority', priority: 90 }, 3400);
  assert.equal(m.state.state, 'MASTER');
  const adv = step(m.state, { type: 'timer', timer: 'advert' }, 4300);
  assert.deepEqual(adv.actions.find((a) => a.type === 'sendAdvert'), { type: 'sendAdvert', priority: 90 });
  assert.throws(() => step(s, { type: 'priority', priority: 255 }, 0), /effective priority 255 is not an integer in 1\.\.254/);
});

test('the owner\'s priority is not moved by tracking', () => {
  const s = step(initialState({ name: 'O', version: 3, priority: 255, advertIntervalMs: 1000, address: '198.18.0.1' }), { type: 'startup' }, 0).state;
  const r = step(s, { type: 'priority', priority: 100 }, 10);
  assert.equal(r.state.effectivePriority, 255);
  assert.deepEqual(r.actions, []);
});

test('two owners on one VRID: both drop to 254, then the higher address wins', () => {
  const { lan, a } = pair({ priority: 255 }, { priority: 255 }, ['a', 'b']);
  lan.run(20000);
  assert.deepEqual(lan.masters(), ['B']);
  assert.equal(a.state.effectivePriority, 254);
  assert.ok(a.log.some((l) => l.includes('configuration error: 198.18.0.2 is also the address owner')));
});

test('stale, early and cleared timer events are ignored', () => {
  const s = step(initialState({ name: 'A', version: 2, priority: 100, advertIntervalMs: 1000, address: '198.18.0.1' }), { type: 'startup' }, 0).state;
  for (const [timer, at] of [['masterDown', 3000], ['advert', 5000], ['garpDelay', 5000], ['preemptDelay', 9000]] as const) {
    const r = step(s, { type: 'timer', timer }, at);
    assert.equal(r.state.state, 'BACKUP', timer);
    assert.deepEqual(r.actions, [], timer);
  }
});

test('becoming master: advert first, then VIPs, GARP burst, notify; a second burst after garp delay; periodic refresh', () => {
  const cfg: FsmConfig = {
    name: 'A', version: 2, priority: 255, advertIntervalMs: 1000, address: '198.18.0.1',
    garp: { masterDelayMs: 5000, masterRepeat: 5, refreshMs: 60000, refreshRepeat: 2 },
  };
  const lan = new Lan();
  const a = new Router(lan, cfg);
  a.handle({ type: 'startup' });
  assert.deepEqual(
    a.actions.filter((x) => x.type !== 'log' && x.type !== 'setTimer' && x.type !== 'clearTimer'),
    [{ type: 'sendAdvert', priority: 255 }, { type: 'becomeMaster' }, { type: 'sendGarp', repeat: 5 }, { type: 'notify', state: 'MASTER', priority: 255 }],
  );
  lan.run(130000);
  assert.deepEqual(a.garps, [{ at: 0, repeat: 5 }, { at: 5000, repeat: 5 }, { at: 60000, repeat: 2 }, { at: 120000, repeat: 2 }]);
  // a delay of 0 means no second burst, as keepalived's vrrp_garp_master_delay 0
  const b = new Router(lan, { ...cfg, name: 'B', garp: { masterDelayMs: 0, refreshMs: 0 } });
  const t = lan.clock.now();
  b.handle({ type: 'startup' });
  lan.run(30000);
  assert.deepEqual(b.garps, [{ at: t, repeat: 5 }]);
});

test('shutdown from BACKUP sends nothing; startup after STOP starts again', () => {
  let s = step(initialState({ name: 'A', version: 2, priority: 100, advertIntervalMs: 1000, address: '198.18.0.1' }), { type: 'startup' }, 0).state;
  const r = step(s, { type: 'shutdown' }, 10);
  s = r.state;
  assert.equal(s.state, 'STOP');
  assert.deepEqual(r.actions.filter((a) => a.type !== 'log'), [{ type: 'clearTimer', timer: 'masterDown' }, { type: 'notify', state: 'STOP', priority: 100 }]);
  assert.equal(step(s, { type: 'startup' }, 20).state.state, 'BACKUP');
});

test('initialState refuses bad settings, naming them', () => {
  const ok: FsmConfig = { name: 'VI_1', version: 2, priority: 100, advertIntervalMs: 1000, address: '198.18.0.1' };
  assert.throws(() => initialState({ ...ok, priority: 0 }), /\(VI_1\) priority 0 is not an integer in 1\.\.255/);
  assert.throws(() => initialState({ ...ok, advertIntervalMs: 1500 }), /not whole seconds/);
  assert.throws(() => initialState({ ...ok, address: 'eth0' }), /'eth0' is not an IPv4 or IPv6 address/);
  assert.throws(() => initialState({ ...ok, garp: { masterRepeat: -1 } }), /garp masterRepeat -1/);
  assert.throws(() => initialState({ ...ok, name: '' }), /name is empty/);
});

test('step does not modify the state it is given', () => {
  const s0 = step(initialState({ name: 'A', version: 2, priority: 100, advertIntervalMs: 1000, address: '198.18.0.1' }), { type: 'startup' }, 0).state;
  const frozen = structuredClone(s0);
  step(s0, { type: 'timer', timer: 'masterDown' }, 4000);
  step(s0, { type: 'fault', reason: 'x' }, 4000);
  assert.deepEqual(s0, frozen);
});

test('takesOverOn: true exactly when the timer event makes a lone instance MASTER, whose step then sends the advert and then the GARPs first', () => {
  const cfg = { name: 'A', version: 3 as const, priority: 100, advertIntervalMs: 1000, address: '198.18.0.1' };
  const backup = step(initialState(cfg), { type: 'startup' }, 0).state;
  const due = backup.timers.masterDown!;
  const master = step(backup, { type: 'timer', timer: 'masterDown' }, due).state;
  const grouped = step(initialState({ ...cfg, syncGroup: 'G' }), { type: 'startup' }, 0).state;
  const lowered = step(backup, { type: 'priority', priority: 80 }, 10).state;
  const cases: [string, FsmState, TimerName, number][] = [
    ['due', backup, 'masterDown', due], ['late', backup, 'masterDown', due + 5], ['early', backup, 'masterDown', due - 1],
    ['advert timer', backup, 'advert', due], ['already master', master, 'masterDown', due + 5000],
    ['sync group member', grouped, 'masterDown', due], ['lowered priority', lowered, 'masterDown', lowered.timers.masterDown!],
  ];
  for (const [what, s, timer, now] of cases) {
    const r = step(s, { type: 'timer', timer }, now);
    const took = s.state !== 'MASTER' && r.state.state === 'MASTER';
    assert.equal(takesOverOn(s, timer, now), took, what);
    if (took) {
      const sends = r.actions.filter((a) => a.type === 'sendAdvert' || a.type === 'sendGarp');
      assert.deepEqual(sends.slice(0, 2), [{ type: 'sendAdvert', priority: s.effectivePriority }, { type: 'sendGarp', repeat: 5 }], what);
    }
  }
});
