/**
 * vrrp_sync_group (pure): a small coordinator over the member instances' state machines, so
 * that the members move together, as keepalived's vrrp_sync.c does:
 *
 *   - MASTER only together: a member whose master-down timer runs out (or that starts as owner or
 *     `state MASTER`) only *wants* MASTER (src/vrrp/fsm.ts, `wantMaster`); when every member
 *     wants MASTER, all go MASTER (`syncMaster`). Preferring BACKUP avoids thrashing while one
 *     member still hears its master.
 *   - a member that leaves MASTER for BACKUP (it heard a better master) takes the others with it
 *     (`syncBackup`);
 *   - a member in FAULT puts the whole group in FAULT (`groupFault`); the group leaves FAULT when
 *     no member has a fault of its own any more (`groupUnfault`).
 *
 * `syncStep(group, member, event, now)` runs the event on that member, then the group's rules
 * until nothing changes; it returns every action tagged with the member it is for, plus the
 * group's own notifications (member null) when the group's state changes: the group is in a
 * state when all members are (FAULT as soon as one is). Group notifications carry priority 0,
 * as keepalived's ("GROUP name state 0").
 */
import { step, type FsmAction, type FsmEvent, type FsmState, type NotifyState, type VrrpState } from './fsm.ts';

export interface SyncGroupConfig {
  name: string;
  /** instance names */
  members: string[];
}

export interface SyncGroupState {
  readonly cfg: Readonly<SyncGroupConfig>;
  readonly state: VrrpState;
  readonly members: Readonly<Record<string, FsmState>>;
  readonly transitions: number;
}

export type GroupAction =
  | { member: string; action: FsmAction }
  | { member: null; action: Extract<FsmAction, { type: 'notify' | 'log' }> };

/** The group over its members' INIT states; throws when the members do not fit the group. */
export function syncGroupInitial(cfg: SyncGroupConfig, members: FsmState[]): SyncGroupState {
  if (cfg.members.length < 2) throw new Error(`sync group ${cfg.name}: needs at least 2 instances, has ${cfg.members.length}`);
  const byName: Record<string, FsmState> = {};
  for (const name of cfg.members) {
    const m = members.find((x) => x.cfg.name === name);
    if (!m) throw new Error(`sync group ${cfg.name}: instance ${name} is not given`);
    if (m.cfg.syncGroup !== cfg.name) throw new Error(`sync group ${cfg.name}: instance ${name} is configured with sync group ${m.cfg.syncGroup ?? '(none)'}`);
    if (byName[name]) throw new Error(`sync group ${cfg.name}: instance ${name} is listed twice`);
    byName[name] = m;
  }
  return { cfg, state: 'INIT', members: byName, transitions: 0 };
}

/** Run one member event and the group's rules; the old group state is not modified. */
export function syncStep(group: SyncGroupState, member: string, event: FsmEvent, now: number): { group: SyncGroupState; actions: GroupAction[] } {
  if (!group.members[member]) throw new Error(`sync group ${group.cfg.name}: no member ${member}`);
  const members: Record<string, FsmState> = { ...group.members };
  const actions: GroupAction[] = [];
  const queue: [string, FsmEvent][] = [[member, event]];
  const names = group.cfg.members;
  let budget = 20 * names.length;

  for (;;) {
    while (queue.length > 0) {
      if (budget-- <= 0) throw new Error(`sync group ${group.cfg.name}: the group's rules do not settle (a bug)`);
      const [name, e] = queue.shift()!;
      const before = members[name]!;
      const r = step(before, e, now);
      members[name] = r.state;
      for (const action of r.actions) actions.push({ member: name, action });
      if (before.state === 'MASTER' && r.state.state === 'BACKUP') {
        for (const other of names) if (other !== name && members[other]!.state === 'MASTER') queue.push([other, { type: 'syncBackup' }]);
      }
    }
    const all = names.map((n) => members[n]!);
    const faulted = all.filter((m) => m.fault !== undefined);
    if (faulted.length > 0) {
      const reason = `sync group ${group.cfg.name}: ${faulted.map((m) => `${m.cfg.name} (${m.fault})`).join(', ')} in FAULT`;
      for (const m of all) if (!m.groupFault) queue.push([m.cfg.name, { type: 'groupFault', reason }]);
    } else {
      for (const m of all) if (m.groupFault) queue.push([m.cfg.name, { type: 'groupUnfault' }]);
      if (all.some((m) => m.wantMaster) && all.every((m) => m.wantMaster || m.state === 'MASTER')) {
        for (const m of all) if (m.state === 'BACKUP') queue.push([m.cfg.name, { type: 'syncMaster' }]);
      }
    }
    if (queue.length === 0) break;
  }

  const states = names.map((n) => members[n]!.state);
  let state = group.state;
  if (states.includes('FAULT')) state = 'FAULT';
  else if (states.every((s) => s === states[0])) state = states[0]!;
  let transitions = group.transitions;
  if (state !== group.state) {
    transitions++;
    actions.push({ member: null, action: { type: 'log', level: 'info', message: `(group ${group.cfg.name}) ${group.state} -> ${state}` } });
    if (state !== 'INIT') actions.push({ member: null, action: { type: 'notify', state: state as NotifyState, priority: 0 } });
  }
  return { group: { cfg: group.cfg, state, members, transitions }, actions };
}

/** Start every member, in the group's order. */
export function syncStartup(group: SyncGroupState, now: number): { group: SyncGroupState; actions: GroupAction[] } {
  let g = group;
  const actions: GroupAction[] = [];
  for (const name of group.cfg.members) {
    const r = syncStep(g, name, { type: 'startup' }, now);
    g = r.group;
    actions.push(...r.actions);
  }
  return { group: g, actions };
}
