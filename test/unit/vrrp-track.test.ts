/**
 * Tracking (src/vrrp/track.ts): weights of track_interface / track_script / track_file moving the
 * effective priority or forcing FAULT, vrrp_script rise/fall, and track_file values read as
 * keepalived reads them. Expected values are worked out by hand from keepalived's documented rules.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  contribution, parseTrackFileValue, trackEvents, scriptCheckInitial, scriptCheckResult, track, type ScriptCheckConfig, type ScriptCheckState,
  type TrackedObject,
} from '../../src/vrrp/track.ts';

const iface = (up: boolean, weight = 0, reverse = false): TrackedObject => ({ kind: 'interface', name: 'eth1', up, weight, reverse });
const script = (state: 'init' | 'ok' | 'failed', weight = 0, reverse = false, name = 'chk'): TrackedObject => ({ kind: 'script', name, state, weight, reverse });
const file = (value: number, weight = 0, reverse = false): TrackedObject => ({ kind: 'file', name: '/run/prio', value, weight, reverse });

test('weight 0: the object down means FAULT; with reverse, the object up does', () => {
  assert.deepEqual(contribution(iface(false)), { fault: true, delta: 0 });
  assert.deepEqual(contribution(iface(true)), { fault: false, delta: 0 });
  assert.deepEqual(contribution(iface(true, 0, true)), { fault: true, delta: 0 });
  assert.deepEqual(contribution(script('failed')), { fault: true, delta: 0 });
  assert.deepEqual(contribution(script('ok', 0, true)), { fault: true, delta: 0 });
  assert.deepEqual(contribution(file(1)), { fault: true, delta: 0 });
  assert.deepEqual(contribution(file(0)), { fault: false, delta: 0 });
  assert.deepEqual(contribution(file(0, 0, true)), { fault: true, delta: 0 });
});

test('a positive weight is added while up, a negative one while down; reverse swaps the sign', () => {
  assert.equal(contribution(iface(true, 10)).delta, 10);
  assert.equal(contribution(iface(false, 10)).delta, 0);
  assert.equal(contribution(iface(false, -10)).delta, -10);
  assert.equal(contribution(iface(true, -10)).delta, 0);
  assert.equal(contribution(iface(true, 10, true)).delta, -10);
  assert.equal(contribution(iface(false, -10, true)).delta, 10);
  assert.equal(contribution(script('ok', 5)).delta, 5);
  assert.equal(contribution(script('failed', -20)).delta, -20);
  assert.equal(contribution(script('failed', 5)).delta, 0);
});

test('a script that has not reported yet adds nothing; with weight 0 it is listed as initializing', () => {
  assert.deepEqual(contribution(script('init', 50)), { fault: false, delta: 0 });
  assert.deepEqual(contribution(script('init', 0)), { fault: false, delta: 0 });
  assert.deepEqual(track(100, [script('init', 0, false, 'a'), script('init', 5, false, 'b')]).initializing, ['a']);
});

test('track_file: value times weight, capped to -254..253; -254 means FAULT', () => {
  assert.equal(contribution(file(3, 10)).delta, 30);
  assert.equal(contribution(file(3, 10, true)).delta, -30);
  assert.equal(contribution(file(-2, 10)).delta, -20);
  assert.equal(contribution(file(100, 10)).delta, 253);
  assert.deepEqual(contribution(file(-100, 10)), { fault: true, delta: 0 });
  assert.deepEqual(contribution(file(-254, 1)), { fault: true, delta: 0 });
  assert.deepEqual(contribution(file(-253, 1)), { fault: false, delta: -253 });
});

test('effective priority: base plus the weights, kept within 1..254; FAULT reasons named', () => {
  // as keepalived logged it: priority 100, two scripts of weight 5 and 3 succeeding -> 105 -> 108
  assert.deepEqual(track(100, [script('ok', 5, false, 'chk_haproxy')]), { priority: 105, initializing: [] });
  assert.deepEqual(track(100, [script('ok', 5, false, 'chk_haproxy'), script('ok', 3, false, 'chk_keepalived')]), { priority: 108, initializing: [] });
  assert.equal(track(200, [iface(true, 100)]).priority, 254);
  assert.equal(track(20, [iface(false, -50)]).priority, 1);
  assert.equal(track(100, [iface(false, -30), script('ok', 10), file(2, -5)]).priority, 100 - 30 + 10 - 10);
  const r = track(100, [iface(false), script('failed', 0, false, 'chk'), iface(true, 20)]);
  assert.equal(r.fault, 'interface eth1 down, script chk failed');
  assert.equal(r.priority, 120);
  assert.equal(track(100, []).fault, undefined);
});

test('the address owner (255) is never moved, but can still be put in FAULT', () => {
  assert.deepEqual(track(255, [iface(false, -100), script('ok', 50)]), { priority: 255, initializing: [] });
  assert.equal(track(255, [iface(false)]).fault, 'interface eth1 down');
});

test('weights out of range and bad base priorities are refused', () => {
  assert.throws(() => track(100, [iface(true, 254)]), /interface eth1 weight 254 is not an integer in -253\.\.253/);
  assert.doesNotThrow(() => track(100, [file(1, 254)]));
  assert.throws(() => track(100, [file(1, 255)]), /-254\.\.254/);
  assert.throws(() => track(0, []), /base priority 0/);
});

function runScript(cfg: ScriptCheckConfig, outcomes: string): string {
  let st: ScriptCheckState = scriptCheckInitial(cfg);
  const out: string[] = [];
  for (const c of outcomes) {
    const r = scriptCheckResult(cfg, st, c === '+');
    st = r.state;
    out.push(r.changed ? st.state.toUpperCase() : st.state);
  }
  return out.join(' ');
}

test('vrrp_script rise/fall: the first result decides, then rise successes or fall failures in a row change the state', () => {
  // rise 3, fall 2: first success -> OK; two failures -> FAILED; three successes -> OK
  assert.equal(runScript({ rise: 3, fall: 2 }, '+--+++'), 'OK ok FAILED failed failed OK');
  // a success between failures restarts the count of failures
  assert.equal(runScript({ rise: 1, fall: 3 }, '+--+---'), 'OK ok ok ok ok ok FAILED');
  // a failure between successes restarts the count of successes
  assert.equal(runScript({ rise: 2, fall: 1 }, '-+-++'), 'FAILED failed failed failed OK');
  // init_fail: FAILED from the start, so rise successes are needed
  assert.equal(runScript({ rise: 2, fall: 1, initFail: true }, '++'), 'failed OK');
  assert.deepEqual(scriptCheckInitial({ rise: 2, fall: 2, initFail: true }), { state: 'failed', result: 0 });
  assert.throws(() => scriptCheckInitial({ rise: 0, fall: 1 }), /rise 0 is not a positive integer/);
});

test('track_file values are read as keepalived reads them (strtol, base 0), capped to -254..254', () => {
  for (const [text, value] of [
    ['42\n', 42], ['  -7', -7], ['+5', 5], ['0x1f', 31], ['0X1F\n', 31], ['010', 8], ['08', 0], ['0', 0], ['12abc', 12],
    ['abc', 0], ['', 0], ['0xg', 0], ['300', 254], ['-300', -254], ['\t\n 3', 3], ['- 3', 0],
  ] as const) {
    assert.equal(parseTrackFileValue(text), value, JSON.stringify(text));
  }
});

test('trackEvents: priority first, then fault / unfault, only on change', () => {
  const up = track(100, [iface(true, 0), script('ok', 10)]);
  assert.deepEqual(trackEvents(100, undefined, up), [{ type: 'priority', priority: 110 }]);
  assert.deepEqual(trackEvents(100, up, up), []);
  const down = track(100, [iface(false, 0), script('failed', 10)]);
  assert.deepEqual(trackEvents(100, up, down), [{ type: 'priority', priority: 100 }, { type: 'fault', reason: 'interface eth1 down' }]);
  const worse = track(100, [iface(false, 0), script('failed', 0)]);
  assert.deepEqual(trackEvents(100, down, worse), [{ type: 'fault', reason: 'interface eth1 down, script chk failed' }]);
  assert.deepEqual(trackEvents(100, worse, up), [{ type: 'priority', priority: 110 }, { type: 'unfault' }]);
  assert.deepEqual(trackEvents(100, undefined, track(100, [iface(false)])), [{ type: 'fault', reason: 'interface eth1 down' }]);
  assert.deepEqual(trackEvents(255, undefined, track(255, [script('ok', 10)])), [], 'the owner gets no priority events');
});
