/**
 * vrrp_sync_group (src/vrrp/sync.ts): members go MASTER together, step down together, and one
 * member's FAULT holds the whole group in FAULT until no member has a fault of its own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initialState, type FsmConfig, type FsmEvent } from '../../src/vrrp/fsm.ts';
import { syncGroupInitial, syncStartup, syncStep, type GroupAction, type SyncGroupState } from '../../src/vrrp/sync.ts';
import type { Advert } from '../../src/vrrp/packet.ts';

const member = (name: string, over: Partial<FsmConfig> = {}): FsmConfig => ({
  name, version: 2, priority: 100, advertIntervalMs: 1000, address: '198.18.0.1', syncGroup: 'G', ...over,
});

function group(a: Partial<FsmConfig> = {}, b: Partial<FsmConfig> = {}): SyncGroupState {
  return syncGroupInitial({ name: 'G', members: ['VI_1', 'VI_2'] }, [initialState(member('VI_1', a)), initialState(member('VI_2', b))]);
}

const states = (g: SyncGroupState) => [g.members.VI_1!.state, g.members.VI_2!.state, g.state];
const of = (actions: GroupAction[], who: string | null, type: string) => actions.filter((a) => a.member === who && a.action.type === type).map((a) => a.action);
const advert = (priority: number): FsmEvent => ({
  type: 'advert',
  advert: { version: 2, vrid: 1, priority, intervalMs: 1000, addresses: [], src: '198.18.0.2', vipMismatch: false, legacyUnicastChecksum: false } satisfies Advert,
});

/** Started, then both master-down timers run out: the group is MASTER. */
function masterGroup(): SyncGroupState {
  let g = syncStartup(group(), 0).group;
  g = syncStep(g, 'VI_1', { type: 'timer', timer: 'masterDown' }, 4000).group;
  return syncStep(g, 'VI_2', { type: 'timer', timer: 'masterDown' }, 4000).group;
}

test('members go MASTER only together: the first to time out waits for the other', () => {
  const started = syncStartup(group(), 0);
  assert.deepEqual(states(started.group), ['BACKUP', 'BACKUP', 'BACKUP']);
  assert.deepEqual(of(started.actions, null, 'notify'), [{ type: 'notify', state: 'BACKUP', priority: 0 }]);

  const first = syncStep(started.group, 'VI_1', { type: 'timer', timer: 'masterDown' }, 3700);
  assert.deepEqual(states(first.group), ['BACKUP', 'BACKUP', 'BACKUP']);
  assert.equal(first.group.members.VI_1!.wantMaster, true);
  assert.deepEqual(of(first.actions, 'VI_1', 'becomeMaster'), [], 'VI_1 does not take the VIPs alone');

  const both = syncStep(first.group, 'VI_2', { type: 'timer', timer: 'masterDown' }, 3700);
  assert.deepEqual(states(both.group), ['MASTER', 'MASTER', 'MASTER']);
  assert.equal(of(both.actions, 'VI_1', 'becomeMaster').length, 1);
  assert.equal(of(both.actions, 'VI_2', 'becomeMaster').length, 1);
  assert.deepEqual(of(both.actions, null, 'notify'), [{ type: 'notify', state: 'MASTER', priority: 0 }]);
  assert.ok(of(both.actions, null, 'log').some((l) => l.type === 'log' && l.message === '(group G) BACKUP -> MASTER'));
});

test('a member still hearing its master keeps the other from going MASTER', () => {
  let g = syncStartup(group(), 0).group;
  g = syncStep(g, 'VI_1', { type: 'timer', timer: 'masterDown' }, 3700).group;
  // VI_2 hears a live master: it restarts its timer and does not want MASTER
  for (let t = 3800; t < 20000; t += 1000) {
    g = syncStep(g, 'VI_2', advert(200), t).group;
    const due = g.members.VI_1!.timers.masterDown!;
    if (due <= t) g = syncStep(g, 'VI_1', { type: 'timer', timer: 'masterDown' }, due).group;
  }
  assert.deepEqual(states(g), ['BACKUP', 'BACKUP', 'BACKUP']);
});

test('owners also wait for the group, then go MASTER together', () => {
  const r = syncStartup(group({ priority: 255 }, { priority: 255 }), 0);
  assert.deepEqual(states(r.group), ['MASTER', 'MASTER', 'MASTER']);
  // VI_1 waited (BACKUP) until VI_2 started and wanted MASTER too
  assert.deepEqual(r.group.members.VI_1!.stats.byTransition, { 'INIT->BACKUP': 1, 'BACKUP->MASTER': 1 });
  // a `state MASTER` member below 255 starts as BACKUP, as keepalived 2.2.7: the group waits for its master-down timer
  const m = syncStartup(group({ priority: 255 }, { initialState: 'MASTER' }), 0);
  assert.deepEqual(states(m.group), ['BACKUP', 'BACKUP', 'BACKUP']);
  const due = m.group.members.VI_2!.timers.masterDown!;
  assert.deepEqual(states(syncStep(m.group, 'VI_2', { type: 'timer', timer: 'masterDown' }, due).group), ['MASTER', 'MASTER', 'MASTER']);
});

test('one member stepping down for a better master takes the other to BACKUP (no priority 0)', () => {
  const r = syncStep(masterGroup(), 'VI_2', advert(200), 5000);
  assert.deepEqual(states(r.group), ['BACKUP', 'BACKUP', 'BACKUP']);
  assert.equal(of(r.actions, 'VI_1', 'leaveMaster').length, 1);
  assert.ok(!r.actions.some((a) => a.action.type === 'sendAdvert' && a.action.priority === 0));
  assert.ok(r.actions.some((a) => a.member === 'VI_1' && a.action.type === 'log' && a.action.message.includes('MASTER -> BACKUP: sync group G goes BACKUP')));
  assert.deepEqual(of(r.actions, null, 'notify'), [{ type: 'notify', state: 'BACKUP', priority: 0 }]);
});

test('one member in FAULT puts the group in FAULT; the group leaves it when no member has its own fault', () => {
  let r = syncStep(masterGroup(), 'VI_2', { type: 'fault', reason: 'interface eth1 down' }, 5000);
  assert.deepEqual(states(r.group), ['FAULT', 'FAULT', 'FAULT']);
  // both were master: both send priority 0 and drop their VIPs
  for (const m of ['VI_1', 'VI_2']) {
    assert.deepEqual(of(r.actions, m, 'sendAdvert'), [{ type: 'sendAdvert', priority: 0 }], m);
    assert.equal(of(r.actions, m, 'leaveMaster').length, 1, m);
  }
  assert.deepEqual(of(r.actions, null, 'notify'), [{ type: 'notify', state: 'FAULT', priority: 0 }]);

  // a second member fault, then the first clears: still FAULT
  r = syncStep(r.group, 'VI_1', { type: 'fault', reason: 'script chk failed' }, 6000);
  r = syncStep(r.group, 'VI_2', { type: 'unfault' }, 7000);
  assert.deepEqual(states(r.group), ['FAULT', 'FAULT', 'FAULT']);
  assert.deepEqual(r.actions.filter((a) => a.action.type === 'notify'), []);
  r = syncStep(r.group, 'VI_1', { type: 'unfault' }, 8000);
  assert.deepEqual(states(r.group), ['BACKUP', 'BACKUP', 'BACKUP']);
  assert.equal(r.group.members.VI_1!.timers.masterDown, 8000 + 3609.375);
});

test('shutdown of each member ends in group STOP', () => {
  let g = masterGroup();
  g = syncStep(g, 'VI_1', { type: 'shutdown' }, 9000).group;
  const r = syncStep(g, 'VI_2', { type: 'shutdown' }, 9000);
  assert.deepEqual(states(r.group), ['STOP', 'STOP', 'STOP']);
  assert.deepEqual(of(r.actions, null, 'notify'), [{ type: 'notify', state: 'STOP', priority: 0 }]);
});

test('syncGroupInitial refuses groups that do not fit their members', () => {
  assert.throws(() => syncGroupInitial({ name: 'G', members: ['VI_1'] }, [initialState(member('VI_1'))]), /at least 2 instances/);
  assert.throws(() => syncGroupInitial({ name: 'G', members: ['VI_1', 'VI_3'] }, [initialState(member('VI_1'))]), /instance VI_3 is not given/);
  assert.throws(() => syncGroupInitial({ name: 'G', members: ['VI_1', 'VI_2'] }, [initialState(member('VI_1')), initialState(member('VI_2', { syncGroup: 'H' }))]),
    /VI_2 is configured with sync group H/);
});
