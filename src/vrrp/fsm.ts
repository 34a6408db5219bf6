/**
 * The VRRP state machine of one instance (pure): `step(state, event, now) -> { state, actions }`.
 *
 * States: INIT (configured, not started), BACKUP, MASTER, FAULT (a tracked object forces it
 * down), STOP (shut down). Behaviour is RFC 3768 (v2) / RFC 5798 (v3) as keepalived 2.2 runs it:
 *
 *   - startup: FAULT when a tracked object is down; MASTER at once for the address owner
 *     (priority 255); every other instance BACKUP with the master-down timer armed, `state
 *     MASTER` included: keepalived 2.2.7 does so (verified in a namespace: `state MASTER`,
 *     priority 100, advert_int 1 notifies BACKUP at once and MASTER 3.6 s later, one
 *     Master_Down_Interval), so a restarted `state MASTER` node does not grab the addresses from a
 *     running master before it has heard it.
 *   - Skew_Time: v2 (256 - priority) / 256 s; v3 (256 - priority) * Master_Adver_Interval / 256.
 *     Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time. `priority` is the effective
 *     priority (keepalived). In v2 Master_Adver_Interval is the configured interval; a v3 backup
 *     adopts the interval of the master's adverts, and goes back to its own when it becomes master
 *     or leaves FAULT.
 *   - BACKUP hearing priority 0: the master is leaving; master-down timer := Skew_Time only.
 *     Hearing priority >= ours, or any priority when preemption is off (nopreempt), or a lower
 *     one while a preempt_delay runs: the master is alive, master-down timer restarted. A lower
 *     priority with preemption on: the advert is discarded, so the timer runs out and we take over.
 *   - preempt_delay: starts when a backup first hears a lower-priority master; until it ends the
 *     master is accepted. When it ends and that master still has a lower priority, the backup
 *     takes over at once. (keepalived instead discards the next lower advert and waits for its
 *     master-down timer: up to one master-down interval later.)
 *   - MASTER hearing priority 0: answers with an advert at once and restarts its advert timer
 *     (RFC). Hearing a higher priority, or an equal one from a higher primary address: BACKUP
 *     (VIPs removed, no priority-0 advert). Hearing a lower priority (or equal from a lower
 *     address): answers at once with an advert, so the other side sees who is master (keepalived;
 *     `lowerPrioNoAdvert` turns that off), and reports MASTER_RX_LOWER_PRI. Two owners (255)
 *     on one VRID: ours drops to 254, as keepalived does.
 *   - Leaving MASTER for FAULT or STOP sends a priority-0 advert first; for BACKUP it does not.
 *   - Gratuitous ARP / unsolicited NA: `masterRepeat` on becoming master, again after
 *     `masterDelayMs` (0: not again), and `refreshRepeat` every `refreshMs` (0: never), as
 *     keepalived's vrrp_garp_master_delay/_repeat/_refresh/_refresh_repeat (defaults 5 s, 5, 0, 1).
 *
 * Timer model: the state holds named deadlines (absolute times on the driver's clock, see
 * src/util/clock.ts). Every change is also returned as a `setTimer`/`clearTimer` action so a
 * driver can keep one real timer per name (`NamedTimers`); when one fires the driver calls
 * `step(state, { type: 'timer', timer }, now)`. A timer event that does not match the state's
 * deadline (cleared, re-armed later, or early) is ignored, so late or duplicate firings are safe.
 *
 * Every state change goes through `changeState`, which logs "(name) A -> B: reason", counts the
 * transition (total and per pair) and ends with a notify action.
 *
 * Sync groups: a member (`cfg.syncGroup` set) does not become master by itself: it sets
 * `wantMaster` and stays BACKUP until the group coordinator (src/vrrp/sync.ts) sends `syncMaster`.
 */
import { addrBytes, familyOf } from '../datapath/xdp/net.ts';
import { wireInterval, type Advert, type VrrpVersion } from './packet.ts';

export type VrrpState = 'INIT' | 'BACKUP' | 'MASTER' | 'FAULT' | 'STOP';
export type NotifyState = 'MASTER' | 'BACKUP' | 'FAULT' | 'STOP';
export type TimerName = 'masterDown' | 'advert' | 'preemptDelay' | 'garpDelay' | 'garpRefresh';
export const TIMER_NAMES: readonly TimerName[] = ['masterDown', 'advert', 'preemptDelay', 'garpDelay', 'garpRefresh'];

export const PRIORITY_OWNER = 255;
export const PRIORITY_STOP = 0;

export interface GarpConfig {
  /** a second burst this long after becoming master; 0: none (keepalived vrrp_garp_master_delay, default 5 s) */
  masterDelayMs: number;
  /** GARPs (or NAs) per VIP in a burst (vrrp_garp_master_repeat, default 5) */
  masterRepeat: number;
  /** a periodic burst while master; 0: none (vrrp_garp_master_refresh, default 0) */
  refreshMs: number;
  /** per VIP in a periodic burst (vrrp_garp_master_refresh_repeat, default 1) */
  refreshRepeat: number;
}

export const GARP_DEFAULTS: GarpConfig = { masterDelayMs: 5000, masterRepeat: 5, refreshMs: 0, refreshRepeat: 1 };

export interface FsmConfig {
  /** the instance name, for logs and notifications */
  name: string;
  version: VrrpVersion;
  /** configured priority 1..255 (255: address owner) */
  priority: number;
  advertIntervalMs: number;
  /** our primary address (the source of our adverts): breaks ties between equal priorities */
  address: string;
  /** keepalived `state` (default BACKUP); below priority 255, MASTER starts as BACKUP too (keepalived 2.2.7) */
  initialState?: 'MASTER' | 'BACKUP';
  /** false for keepalived `nopreempt`; default true */
  preempt?: boolean;
  /** keepalived `preempt_delay`; default 0 */
  preemptDelayMs?: number;
  /** keepalived `lower_prio_no_advert`: a master does not answer lower-priority adverts */
  lowerPrioNoAdvert?: boolean;
  garp?: Partial<GarpConfig>;
  /** name of the sync group this instance belongs to */
  syncGroup?: string;
}

export interface FsmStats {
  transitions: number;
  /** per "A->B" */
  byTransition: Record<string, number>;
  advertsSent: number;
  priorityZeroSent: number;
  priorityZeroReceived: number;
}

export interface FsmState {
  readonly cfg: Readonly<FsmConfig>;
  readonly state: VrrpState;
  /** the configured priority, unless a conflict of two owners lowered it to 254 */
  readonly basePriority: number;
  /** what we advertise: the base priority moved by tracking (src/vrrp/track.ts) */
  readonly effectivePriority: number;
  readonly masterAdverIntMs: number;
  /** the master we last heard, while BACKUP */
  readonly master?: { readonly address: string; readonly priority: number };
  /** why a tracked object holds us in FAULT */
  readonly fault?: string;
  /** the sync group holds us in FAULT */
  readonly groupFault: boolean;
  /** a sync-group member that would be master but waits for its group */
  readonly wantMaster: boolean;
  /** armed deadlines */
  readonly timers: Readonly<Partial<Record<TimerName, number>>>;
  readonly stats: Readonly<FsmStats>;
  readonly lastTransition?: number;
}

export type FsmEvent =
  | { type: 'startup' }
  /** an advert that `decode` accepted */
  | { type: 'advert'; advert: Advert }
  | { type: 'timer'; timer: TimerName }
  /** the effective priority from tracking (1..254) */
  | { type: 'priority'; priority: number }
  | { type: 'fault'; reason: string }
  | { type: 'unfault' }
  | { type: 'shutdown' }
  // from the sync-group coordinator
  | { type: 'syncMaster' }
  | { type: 'syncBackup' }
  | { type: 'groupFault'; reason: string }
  | { type: 'groupUnfault' };

export type NotifyEvent = 'MASTER_RX_LOWER_PRI' | 'MASTER_PRIORITY' | 'BACKUP_PRIORITY';

export type FsmAction =
  | { type: 'sendAdvert'; priority: number }
  /** add the VIPs, virtual routes and rules */
  | { type: 'becomeMaster' }
  /** remove them */
  | { type: 'leaveMaster' }
  /** gratuitous ARP / unsolicited NA for every VIP, `repeat` times */
  | { type: 'sendGarp'; repeat: number }
  | { type: 'setTimer'; timer: TimerName; at: number }
  | { type: 'clearTimer'; timer: TimerName }
  | { type: 'notify'; state: NotifyState; priority: number }
  | { type: 'notifyEvent'; event: NotifyEvent; priority: number }
  | { type: 'log'; level: 'info' | 'warn'; message: string };

export interface StepResult {
  state: FsmState;
  actions: FsmAction[];
}

// ---------------------------------------------------------------- timer formulas

/** Skew_Time in ms: RFC 3768 (v2, always on a 1 s base) and RFC 5798 (v3, on Master_Adver_Interval). */
export function skewTime(version: VrrpVersion, priority: number, masterAdverIntMs: number): number {
  return version === 2 ? ((256 - priority) * 1000) / 256 : ((256 - priority) * masterAdverIntMs) / 256;
}

/** Master_Down_Interval in ms: 3 * Master_Adver_Interval + Skew_Time. */
export function masterDownInterval(version: VrrpVersion, priority: number, masterAdverIntMs: number): number {
  return 3 * masterAdverIntMs + skewTime(version, priority, masterAdverIntMs);
}

// ---------------------------------------------------------------- set-up

function checkInt(what: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) throw new Error(`VRRP instance: ${what} ${value} is not an integer in ${min}..${max}`);
}

function garpOf(cfg: FsmConfig): GarpConfig {
  return { ...GARP_DEFAULTS, ...cfg.garp };
}

/** The INIT state of an instance; throws an Error naming the bad setting. */
export function initialState(cfg: FsmConfig): FsmState {
  if (!cfg.name) throw new Error('VRRP instance: the name is empty');
  checkInt(`(${cfg.name}) priority`, cfg.priority, 1, PRIORITY_OWNER);
  wireInterval(cfg.version, cfg.advertIntervalMs);
  familyOf(cfg.address);
  if (!(cfg.preemptDelayMs === undefined || cfg.preemptDelayMs >= 0)) throw new Error(`VRRP instance (${cfg.name}): preempt delay ${cfg.preemptDelayMs} is negative`);
  const garp = garpOf(cfg);
  for (const [k, v] of Object.entries(garp)) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`VRRP instance (${cfg.name}): garp ${k} ${v} is not a non-negative integer`);
  }
  return {
    cfg, state: 'INIT', basePriority: cfg.priority, effectivePriority: cfg.priority, masterAdverIntMs: cfg.advertIntervalMs,
    groupFault: false, wantMaster: false, timers: {},
    stats: { transitions: 0, byTransition: {}, advertsSent: 0, priorityZeroSent: 0, priorityZeroReceived: 0 },
  };
}

// ---------------------------------------------------------------- the step

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type S = Mutable<FsmState> & { timers: Partial<Record<TimerName, number>>; stats: FsmStats };

interface Ctx {
  s: S;
  now: number;
  actions: FsmAction[];
  /** the sync group allows this instance to become master */
  granted: boolean;
}

function log(c: Ctx, message: string, level: 'info' | 'warn' = 'info'): void {
  c.actions.push({ type: 'log', level, message: `(${c.s.cfg.name}) ${message}` });
}

function setTimer(c: Ctx, timer: TimerName, at: number): void {
  c.s.timers[timer] = at;
  c.actions.push({ type: 'setTimer', timer, at });
}

function clearTimer(c: Ctx, timer: TimerName): void {
  if (c.s.timers[timer] === undefined) return;
  delete c.s.timers[timer];
  c.actions.push({ type: 'clearTimer', timer });
}

function sendAdvert(c: Ctx, priority: number): void {
  c.s.stats.advertsSent++;
  if (priority === PRIORITY_STOP) c.s.stats.priorityZeroSent++;
  c.actions.push({ type: 'sendAdvert', priority });
}

function downInterval(s: S): number {
  return masterDownInterval(s.cfg.version, s.effectivePriority, s.masterAdverIntMs);
}

/**
 * The one place a state changes: logs "A -> B: reason", counts, runs the entry effects, and ends
 * with the notification of the new state.
 */
function changeState(c: Ctx, to: VrrpState, reason: string, effects: () => void): void {
  const from = c.s.state;
  log(c, `${from} -> ${to}: ${reason}`);
  c.s.stats.transitions++;
  const key = `${from}->${to}`;
  c.s.stats.byTransition[key] = (c.s.stats.byTransition[key] ?? 0) + 1;
  c.s.state = to;
  c.s.lastTransition = c.now;
  effects();
  if (to !== 'INIT') c.actions.push({ type: 'notify', state: to, priority: c.s.effectivePriority });
}

function leaveMasterEffects(c: Ctx, sendZero: boolean): void {
  if (sendZero) sendAdvert(c, PRIORITY_STOP);
  c.actions.push({ type: 'leaveMaster' });
  for (const t of ['advert', 'garpDelay', 'garpRefresh'] as const) clearTimer(c, t);
}

function enterBackup(c: Ctx, reason: string, masterAdverIntMs = c.s.cfg.advertIntervalMs): void {
  const { s } = c;
  const wasMaster = s.state === 'MASTER';
  changeState(c, 'BACKUP', reason, () => {
    if (wasMaster) leaveMasterEffects(c, false);
    s.masterAdverIntMs = masterAdverIntMs;
    s.wantMaster = false;
    clearTimer(c, 'preemptDelay');
    setTimer(c, 'masterDown', c.now + downInterval(s));
  });
}

function enterMaster(c: Ctx, reason: string): void {
  const { s } = c;
  if (s.cfg.syncGroup && !c.granted) {
    if (s.state !== 'BACKUP') enterBackup(c, `${reason}; waiting for sync group ${s.cfg.syncGroup}`);
    if (!s.wantMaster) log(c, `wants MASTER (${reason}), waiting for sync group ${s.cfg.syncGroup}`);
    s.wantMaster = true;
    setTimer(c, 'masterDown', c.now + downInterval(s));
    return;
  }
  const garp = garpOf(s.cfg);
  // the advert goes first: the old master must drop the VIPs before our gratuitous ARPs
  sendAdvert(c, s.effectivePriority);
  changeState(c, 'MASTER', reason, () => {
    s.wantMaster = false;
    delete s.master;
    s.masterAdverIntMs = s.cfg.advertIntervalMs;
    clearTimer(c, 'masterDown');
    clearTimer(c, 'preemptDelay');
    c.actions.push({ type: 'becomeMaster' });
    if (garp.masterRepeat > 0) c.actions.push({ type: 'sendGarp', repeat: garp.masterRepeat });
    setTimer(c, 'advert', c.now + s.cfg.advertIntervalMs);
    if (garp.masterDelayMs > 0) setTimer(c, 'garpDelay', c.now + garp.masterDelayMs);
    if (garp.refreshMs > 0) setTimer(c, 'garpRefresh', c.now + garp.refreshMs);
  });
}

/** FAULT or STOP: a master says goodbye with priority 0 first; every timer stops. */
function enterDown(c: Ctx, to: 'FAULT' | 'STOP', reason: string): void {
  const wasMaster = c.s.state === 'MASTER';
  changeState(c, to, reason, () => {
    if (wasMaster) leaveMasterEffects(c, true);
    for (const t of TIMER_NAMES) clearTimer(c, t);
    c.s.wantMaster = false;
    delete c.s.master;
  });
}

/** Leave FAULT once neither a tracked object nor the sync group holds the instance there. */
function leaveFault(c: Ctx, reason: string): void {
  if (c.s.state !== 'FAULT' || c.s.fault !== undefined || c.s.groupFault) return;
  if (c.s.basePriority === PRIORITY_OWNER) enterMaster(c, `${reason}; address owner`);
  else enterBackup(c, reason);
}

function compareAddresses(a: string, b: string): number {
  return Buffer.compare(addrBytes(a), addrBytes(b));
}

function onStartup(c: Ctx): void {
  const { s } = c;
  if (s.state !== 'INIT' && s.state !== 'STOP') {
    log(c, `startup ignored in ${s.state}`, 'warn');
    return;
  }
  if (s.fault !== undefined) enterDown(c, 'FAULT', `startup with ${s.fault}`);
  else if (s.groupFault) enterDown(c, 'FAULT', 'startup with the sync group in FAULT');
  else if (s.basePriority === PRIORITY_OWNER) enterMaster(c, 'startup as address owner (priority 255)');
  else enterBackup(c, s.cfg.initialState === 'MASTER' ? 'startup (state MASTER: master once the master-down timer expires)' : 'startup');
}

function onAdvertBackup(c: Ctx, a: Advert): void {
  const { s } = c;
  const delay = s.cfg.preemptDelayMs ?? 0;
  const preemptAt = s.timers.preemptDelay;
  if (a.priority === PRIORITY_STOP) {
    delete s.master;
    setTimer(c, 'masterDown', c.now + skewTime(s.cfg.version, s.effectivePriority, s.masterAdverIntMs));
    log(c, `master ${a.src} sent priority 0: taking over after the skew time`);
    return;
  }
  if (s.cfg.preempt === false || a.priority >= s.effectivePriority || (delay > 0 && (preemptAt === undefined || c.now < preemptAt))) {
    if (s.cfg.version === 3) s.masterAdverIntMs = a.intervalMs;
    s.master = { address: a.src, priority: a.priority };
    s.wantMaster = false;
    setTimer(c, 'masterDown', c.now + downInterval(s));
    if (delay > 0) {
      if (a.priority >= s.effectivePriority) clearTimer(c, 'preemptDelay');
      else if (preemptAt === undefined) {
        log(c, `master ${a.src} has lower priority ${a.priority}: preempting in ${delay} ms`);
        setTimer(c, 'preemptDelay', c.now + delay);
      }
    }
    return;
  }
  // preemption: a lower-priority master is not listened to, our master-down timer runs out
  s.master = { address: a.src, priority: a.priority };
  log(c, `lower priority ${a.priority} advert from ${a.src} discarded (ours ${s.effectivePriority})`);
}

function onAdvertMaster(c: Ctx, a: Advert): void {
  const { s } = c;
  if (a.priority === PRIORITY_STOP) {
    sendAdvert(c, s.effectivePriority);
    setTimer(c, 'advert', c.now + s.cfg.advertIntervalMs);
    return;
  }
  const cmp = compareAddresses(a.src, s.cfg.address);
  if (a.priority === s.effectivePriority && cmp === 0) {
    log(c, `equal priority advert from ${a.src}, which is our own address`, 'warn');
    return;
  }
  if (a.priority === PRIORITY_OWNER && s.effectivePriority === PRIORITY_OWNER) {
    log(c, `configuration error: ${a.src} is also the address owner (priority 255); lowering ours to 254`, 'warn');
    s.basePriority = PRIORITY_OWNER - 1;
    s.effectivePriority = PRIORITY_OWNER - 1;
  }
  if (a.priority > s.effectivePriority || (a.priority === s.effectivePriority && cmp > 0)) {
    const why = a.priority > s.effectivePriority
      ? `higher priority ${a.priority} advert from ${a.src} (ours ${s.effectivePriority})`
      : `equal priority ${a.priority} advert from higher address ${a.src}`;
    enterBackup(c, why, s.cfg.version === 3 ? a.intervalMs : s.cfg.advertIntervalMs);
    s.master = { address: a.src, priority: a.priority };
    return;
  }
  log(c, `lower priority ${a.priority} advert from ${a.src} (ours ${s.effectivePriority})${s.cfg.lowerPrioNoAdvert ? '' : ': answering'}`);
  if (!s.cfg.lowerPrioNoAdvert) sendAdvert(c, s.effectivePriority);
  c.actions.push({ type: 'notifyEvent', event: 'MASTER_RX_LOWER_PRI', priority: s.effectivePriority });
}

/**
 * Whether the timer event `timer` at `now` makes a lone instance (no sync group) MASTER: its
 * master-down deadline has come while it is BACKUP. A driver may send the takeover's first advert
 * and gratuitous ARPs before it runs the step (src/vrrp/instance.ts does, to have them on the wire
 * sooner); the step then returns exactly those sends first (`sendAdvert` with the effective
 * priority, then `sendGarp`), which the unit tests check against this predicate.
 */
export function takesOverOn(state: FsmState, timer: TimerName, now: number): boolean {
  const at = state.timers.masterDown;
  return timer === 'masterDown' && state.state === 'BACKUP' && at !== undefined && now >= at && !state.cfg.syncGroup;
}

function onTimer(c: Ctx, timer: TimerName): void {
  const { s } = c;
  const at = s.timers[timer];
  if (at === undefined || c.now < at) return; // cleared, re-armed later, or early: stale
  delete s.timers[timer];
  switch (timer) {
    case 'masterDown':
      if (s.state === 'BACKUP') {
        enterMaster(c, s.master ? `no advert from master ${s.master.address} for ${downInterval(s)} ms` : 'master-down timer expired');
      }
      return;
    case 'advert':
      if (s.state !== 'MASTER') return;
      sendAdvert(c, s.effectivePriority);
      setTimer(c, 'advert', c.now + s.cfg.advertIntervalMs);
      return;
    case 'preemptDelay':
      if (s.state === 'BACKUP' && s.cfg.preempt !== false && s.master && s.master.priority < s.effectivePriority) {
        enterMaster(c, `preempt delay over: master ${s.master.address} has priority ${s.master.priority} < ours ${s.effectivePriority}`);
      }
      return;
    case 'garpDelay':
      if (s.state === 'MASTER') c.actions.push({ type: 'sendGarp', repeat: garpOf(s.cfg).masterRepeat });
      return;
    case 'garpRefresh': {
      if (s.state !== 'MASTER') return;
      const garp = garpOf(s.cfg);
      c.actions.push({ type: 'sendGarp', repeat: garp.refreshRepeat });
      setTimer(c, 'garpRefresh', c.now + garp.refreshMs);
      return;
    }
  }
}

function onPriority(c: Ctx, priority: number): void {
  const { s } = c;
  checkInt(`(${s.cfg.name}) effective priority`, priority, 1, PRIORITY_OWNER - 1);
  if (s.basePriority === PRIORITY_OWNER || priority === s.effectivePriority) return;
  const before = downInterval(s);
  log(c, `effective priority ${s.effectivePriority} -> ${priority}`);
  s.effectivePriority = priority;
  // keepalived moves a running master-down deadline by the change of the skew time
  const due = s.timers.masterDown;
  if (s.state === 'BACKUP' && due !== undefined) setTimer(c, 'masterDown', due + downInterval(s) - before);
  if (s.state === 'MASTER' || s.state === 'BACKUP') {
    c.actions.push({ type: 'notifyEvent', event: s.state === 'MASTER' ? 'MASTER_PRIORITY' : 'BACKUP_PRIORITY', priority });
  }
}

function dispatch(c: Ctx, e: FsmEvent): void {
  const { s } = c;
  switch (e.type) {
    case 'startup':
      return onStartup(c);
    case 'advert':
      if (e.advert.priority === PRIORITY_STOP) s.stats.priorityZeroReceived++;
      if (s.state === 'BACKUP') onAdvertBackup(c, e.advert);
      else if (s.state === 'MASTER') onAdvertMaster(c, e.advert);
      return;
    case 'timer':
      return onTimer(c, e.timer);
    case 'priority':
      return onPriority(c, e.priority);
    case 'fault':
      s.fault = e.reason;
      if (s.state === 'BACKUP' || s.state === 'MASTER') enterDown(c, 'FAULT', e.reason);
      return;
    case 'unfault':
      delete s.fault;
      return leaveFault(c, 'tracked objects up again');
    case 'shutdown':
      if (s.state !== 'STOP') enterDown(c, 'STOP', 'shutdown');
      return;
    case 'syncMaster':
      if (s.state === 'BACKUP') {
        c.granted = true;
        enterMaster(c, `sync group ${s.cfg.syncGroup ?? ''} goes MASTER`);
      }
      return;
    case 'syncBackup':
      if (s.state === 'MASTER') enterBackup(c, `sync group ${s.cfg.syncGroup ?? ''} goes BACKUP`);
      else s.wantMaster = false;
      return;
    case 'groupFault':
      s.groupFault = true;
      if (s.state === 'BACKUP' || s.state === 'MASTER') enterDown(c, 'FAULT', e.reason);
      return;
    case 'groupUnfault':
      s.groupFault = false;
      return leaveFault(c, `sync group ${s.cfg.syncGroup ?? ''} up again`);
  }
}

/** One event: the new state (the old one is not modified) and what the driver must do, in order. */
export function step(state: FsmState, event: FsmEvent, now: number): StepResult {
  const s: S = { ...state, timers: { ...state.timers }, stats: { ...state.stats, byTransition: { ...state.stats.byTransition } } };
  const c: Ctx = { s, now, actions: [], granted: false };
  dispatch(c, event);
  return { state: s, actions: c.actions };
}

/** The earliest armed deadline and its timer, for drivers that keep a single timer. */
export function nextTimer(state: FsmState): { timer: TimerName; at: number } | undefined {
  let best: { timer: TimerName; at: number } | undefined;
  for (const timer of TIMER_NAMES) {
    const at = state.timers[timer];
    if (at !== undefined && (!best || at < best.at)) best = { timer, at };
  }
  return best;
}
