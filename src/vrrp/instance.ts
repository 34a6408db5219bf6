/**
 * One VRRP instance's I/O glue: it feeds the pure state machine (./fsm.ts) with received
 * adverts, timer expiries and tracking changes, and carries out the actions it returns.
 *
 *   receive   a VrrpSocket message is decoded (./packet.ts) against the instance's view; a
 *             rejection is counted by its reason and dropped, an accepted advert goes to the FSM
 *             (an advert whose address list differs from ours is accepted and counted).
 *   timers    one real timer per FSM timer name (NamedTimers on an injectable Clock); an expiry is
 *             an FSM event.
 *   MASTER    the advert first (the FSM's order), then the first round of the gratuitous ARP /
 *             unsolicited NA burst (one frame per address, built when the instance is made), then
 *             the virtual addresses (virtual_ipaddress and _excluded; IPv6 without DAD), virtual
 *             routes and rules, then the rest of the burst. The first GARP comes before the
 *             netlink work because that is the slow part (0.3-0.5 ms here with the netlink
 *             package, against 10-50 us for a frame): issue 4 wants it on the wire within 1 ms of
 *             the transition. The addresses follow within that time; a packet that a client sends
 *             in between is dropped at the new master, as it would be at a stopped old one. The
 *             repeats of the burst go out after the addresses exist. Everything up to the last
 *             frame is synchronous (an rtnetlink request is applied by the kernel inside sendmsg,
 *             and src/net/rtnl.ts sends at once while under its limit of outstanding requests);
 *             the acknowledgements are awaited afterwards, and a failure is counted (netErrors)
 *             and reported ('netError'), never thrown. Logs and notifications are emitted after
 *             the burst. The time from the event that made the instance master to the first frame
 *             handed to the kernel is kept in stats.lastGarpDelayUs.
 *   leaving   MASTER for BACKUP, FAULT or STOP: rules, routes, then addresses removed (a priority-0
 *             advert first for FAULT and STOP, as the FSM says). "Already there" on adding and
 *             "not there" on removing are not errors.
 *
 * Sync groups: instances of one vrrp_sync_group share a coordinator (./sync.ts) that may hand
 * actions to several members for one event; `InstanceSet` routes them. A lone instance has a
 * coordinator of its own over fsm.step.
 *
 * What is not here: opening sockets, reading interfaces and addresses, link events, cleaning
 * leftovers at start (./runner.ts), and the configuration checks (./config.ts).
 */
import { EventEmitter } from 'node:events';
import type { Clock } from '../util/clock.ts';
import { NamedTimers } from '../util/clock.ts';
import type { Family } from '../datapath/xdp/net.ts';
import type { AddressSpec } from '../net/address.ts';
import type { RouteSpec, RuleSpec } from '../net/route.ts';
import { gratuitousArp, unsolicitedNa } from './arp.ts';
import type { ResolvedInstance } from './config.ts';
import { initialState, step, takesOverOn, type FsmAction, type FsmEvent, type FsmState, type NotifyEvent, type NotifyState, type TimerName } from './fsm.ts';
import { decode, encode, REJECT_REASONS, VRRP_MCAST4, VRRP_MCAST6, type AdvertSpec, type RejectReason } from './packet.ts';
import type { VrrpMessage } from './socket.ts';
import { syncGroupInitial, syncStep, type GroupAction, type SyncGroupConfig, type SyncGroupState } from './sync.ts';

/** The netlink calls an instance makes (src/net/address.ts and route.ts over one connection). */
export interface NetOps {
  addAddress(a: AddressSpec): Promise<void>;
  deleteAddress(a: AddressSpec): Promise<void>;
  addRoute(r: RouteSpec): Promise<void>;
  deleteRoute(r: RouteSpec): Promise<void>;
  addRule(r: RuleSpec): Promise<void>;
  deleteRule(r: RuleSpec): Promise<void>;
}

/** What the runner found out about the instance's interfaces, and how it sends. */
export interface InstanceBinding {
  /** the source of our adverts: the interface's primary IPv4 address, its IPv6 link-local, or unicast_src_ip */
  source: string;
  /** the virtual addresses (advertised ones first) with their interfaces' indexes */
  addresses: AddressSpec[];
  routes: RouteSpec[];
  rules: RuleSpec[];
  /** the interfaces the addresses live on, for the gratuitous ARP / NA frames */
  links: ReadonlyMap<number, { mac: string }>;
  /** one VRRP payload to `dst` (the group or a unicast peer), out of the instance's interface */
  sendVrrp(payload: Buffer, dst: string): void;
  /** one whole frame out of interface `ifindex` */
  sendFrame(ifindex: number, frame: Buffer): void;
  net: NetOps;
  /** the same calls on a closed connection, for warmUp() */
  warm?: NetOps;
}

export interface StateChange {
  instance: string;
  state: NotifyState;
  priority: number;
  /** when the event that caused it happened, on the instance's clock */
  at: number;
}

export interface InstanceStats {
  state: FsmState['state'];
  priority: number;
  advertsReceived: number;
  advertsSent: number;
  sendErrors: number;
  rejected: Record<RejectReason, number>;
  /** accepted adverts whose address list differs from ours */
  vipMismatch: number;
  transitions: number;
  byTransition: Record<string, number>;
  becameMaster: number;
  releasedMaster: number;
  priorityZeroSent: number;
  priorityZeroReceived: number;
  garpsSent: number;
  /** from the event that made us master to the first GARP/NA handed to the kernel, in microseconds */
  lastGarpDelayUs: number | null;
  /** failed netlink requests (address, route, rule) */
  netErrors: number;
  /** how late the last master-down timer ran after its deadline, in microseconds */
  lastMasterDownLateUs: number | null;
}

export interface InstanceEvents {
  state: [StateChange];
  notifyEvent: [{ instance: string; event: NotifyEvent; priority: number }];
  log: ['info' | 'warn', string];
  netError: [Error];
}

const WARM_UP_ROUNDS = 20;
const IGNORED = new Set(['EEXIST', 'EADDRNOTAVAIL', 'ESRCH', 'ENOENT']);

// ---------------------------------------------------------------- coordinators

/** Runs events on one instance's FSM, or on a sync group's members together. */
export interface Coordinator {
  dispatch(member: string, e: FsmEvent, now: number): GroupAction[];
  state(member: string): FsmState;
}

export class SoloCoordinator implements Coordinator {
  constructor(private s: FsmState) {}
  dispatch(member: string, e: FsmEvent, now: number): GroupAction[] {
    const r = step(this.s, e, now);
    this.s = r.state;
    return r.actions.map((action) => ({ member, action }));
  }
  state(): FsmState {
    return this.s;
  }
}

export class GroupCoordinator implements Coordinator {
  private g: SyncGroupState;
  constructor(cfg: SyncGroupConfig, members: FsmState[]) {
    this.g = syncGroupInitial(cfg, members);
  }
  dispatch(member: string, e: FsmEvent, now: number): GroupAction[] {
    const r = syncStep(this.g, member, e, now);
    this.g = r.group;
    return r.actions;
  }
  state(member: string): FsmState {
    const s = this.g.members[member];
    if (!s) throw new Error(`sync group ${this.g.cfg.name}: no member ${member}`);
    return s;
  }
  get group(): SyncGroupState {
    return this.g;
  }
}

// ---------------------------------------------------------------- the instance

export class VrrpInstance extends EventEmitter<InstanceEvents> {
  readonly name: string;
  readonly family: Family;
  private readonly timers: NamedTimers<TimerName>;
  private readonly preciseTimers: NamedTimers<TimerName>;
  private readonly frames: { ifindex: number; frame: Buffer }[];
  private readonly destinations: string[];
  private readonly pending = new Set<Promise<void>>();
  private readonly advertCache = new Map<number, Buffer[]>();
  private readonly counts = {
    advertsReceived: 0, advertsSent: 0, sendErrors: 0, vipMismatch: 0, becameMaster: 0, releasedMaster: 0,
    garpsSent: 0, netErrors: 0,
  };
  private readonly rejected = Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>;
  private lastGarpDelayUs: number | null = null;
  private lastMasterDownLateUs: number | null = null;
  /** set while a dispatch that made us master has not sent its first frame yet */
  private masterSince: number | null = null;
  /** set from becoming master until the addresses, routes and rules are asked for */
  private addPending = false;
  /** an advert of this priority went out ahead of the step that asks for it (takeover, goodbye) */
  private preSentAdvert: number | null = null;
  /** the first round of gratuitous ARPs went out ahead of the step that asks for it (takeover) */
  private preSentGarp = false;
  set!: InstanceSet;

  /**
   * `precise`, if given, runs the timers that decide when a backup takes over (masterDown,
   * preemptDelay): a clock whose timers fire as close after their deadline as it can (see
   * runner.ts's spinningClock); the others (adverts, GARP repeats) may be a millisecond late.
   */
  constructor(readonly cfg: ResolvedInstance, readonly binding: InstanceBinding, readonly clock: Clock, precise?: Clock) {
    super();
    this.name = cfg.name;
    this.family = cfg.family;
    this.timers = new NamedTimers<TimerName>(clock);
    this.preciseTimers = new NamedTimers<TimerName>(precise ?? clock);
    this.destinations = cfg.unicastPeers.length > 0 ? cfg.unicastPeers : [cfg.family === 4 ? VRRP_MCAST4 : VRRP_MCAST6];
    this.frames = binding.addresses.map((a) => {
      const link = binding.links.get(a.ifindex);
      if (!link) throw new Error(`vrrp_instance ${cfg.name}: no MAC for ifindex ${a.ifindex} of ${a.address}`);
      return { ifindex: a.ifindex, frame: a.address.includes(':') ? unsolicitedNa(link.mac, a.address) : gratuitousArp(link.mac, a.address) };
    });
  }

  /** The FSM's initial state for this instance (address known now). */
  initialFsm(): FsmState {
    return initialState({ ...this.cfg.fsm, address: this.binding.source });
  }

  /**
   * Run the code of a MASTER transition with nothing sent, results thrown away (the FSM from
   * startup to MASTER and back, the advert encoder, the netlink encoders on a closed connection),
   * WARM_UP_ROUNDS times, so that the first real transition does not wait for the JIT: cold, it
   * took 2-5 ms here from the event to the first GARP, and V8 needs a few calls per function to
   * reach its faster tiers. The adverts for our priority and for 0 are encoded once here and kept.
   */
  warmUp(): void {
    const refused = () => undefined;
    const { warm } = this.binding;
    for (let i = 0; i < WARM_UP_ROUNDS; i++) {
      let s = step(this.initialFsm(), { type: 'startup' }, 0).state;
      s = step({ ...s, cfg: { ...s.cfg, syncGroup: undefined } } as FsmState, { type: 'timer', timer: 'masterDown' }, 1e9).state;
      step(s, { type: 'shutdown' }, 2e9);
      for (const dst of this.destinations) encode(this.advertSpec(this.cfg.priority), { src: this.binding.source, dst });
      if (!warm) continue;
      // requests on a closed connection: encoded, then refused (EBADF) before anything is sent
      for (const a of this.binding.addresses) warm.addAddress(a).catch(refused);
      for (const r of this.binding.routes) warm.addRoute(r).catch(refused);
      for (const r of this.binding.rules) warm.addRule(r).catch(refused);
    }
    for (const priority of [this.cfg.priority, 0]) this.adverts(priority);
  }

  get fsm(): FsmState {
    return this.set.coordinatorOf(this.name).state(this.name);
  }

  /** An event for this instance's FSM (or its group's), which happened at `at` (default now). */
  dispatch(e: FsmEvent, at?: number): void {
    this.set.dispatch(this.name, e, at);
  }

  /**
   * The first thing of a graceful stop: a MASTER's priority-0 adverts, sent at once from the
   * cache (before any other shutdown work); the shutdown step's own priority-0 advert is then
   * not sent again.
   */
  sayGoodbye(): void {
    if (this.fsm.state !== 'MASTER') return;
    this.sendAdvert(0);
    this.preSentAdvert = 0;
  }

  /** A VRRP packet from the socket. */
  receive(m: VrrpMessage): void {
    const r = decode(m.payload, { ...this.cfg.view, family: m.family, src: m.src, dst: m.dst, ttl: m.hopLimit });
    if (!r.ok) {
      this.rejected[r.reason]++;
      this.emit('log', 'warn', `(${this.name}) advert from ${m.src} rejected (${r.reason}): ${r.detail}`);
      return;
    }
    this.counts.advertsReceived++;
    if (r.advert.vipMismatch) this.counts.vipMismatch++;
    this.dispatch({ type: 'advert', advert: r.advert });
  }

  stats(): InstanceStats {
    const s = this.fsm;
    return {
      state: s.state,
      priority: s.effectivePriority,
      ...this.counts,
      rejected: { ...this.rejected },
      transitions: s.stats.transitions,
      byTransition: { ...s.stats.byTransition },
      priorityZeroSent: s.stats.priorityZeroSent,
      priorityZeroReceived: s.stats.priorityZeroReceived,
      lastGarpDelayUs: this.lastGarpDelayUs,
      lastMasterDownLateUs: this.lastMasterDownLateUs,
    };
  }

  /** Resolves once every netlink request made so far is answered. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  /** Stop the timers (after a shutdown event, or when the process goes). */
  clearTimers(): void {
    this.timers.clearAll();
    this.preciseTimers.clearAll();
  }

  /**
   * Carry out one FSM action. `later` collects what must wait until the dispatch's synchronous
   * work (adverts, netlink sends, frames) is done.
   */
  perform(a: FsmAction, at: number, later: (() => void)[]): void {
    switch (a.type) {
      case 'sendAdvert':
        if (this.preSentAdvert === a.priority) this.preSentAdvert = null;
        else this.sendAdvert(a.priority);
        return;
      case 'becomeMaster':
        this.counts.becameMaster++;
        if (!this.preSentGarp) this.masterSince = at;
        this.addPending = true; // after the first GARP round (sendGarp), or at the end of the dispatch (flush)
        return;
      case 'leaveMaster':
        this.counts.releasedMaster++;
        this.removeAll();
        return;
      case 'sendGarp':
        this.sendGarp(a.repeat);
        return;
      case 'setTimer':
        this.arm(a.timer, a.at);
        return;
      case 'clearTimer':
        this.timersFor(a.timer).clear(a.timer);
        return;
      case 'notify':
        later.push(() => this.emit('state', { instance: this.name, state: a.state, priority: a.priority, at }));
        return;
      case 'notifyEvent':
        later.push(() => this.emit('notifyEvent', { instance: this.name, event: a.event, priority: a.priority }));
        return;
      case 'log':
        later.push(() => this.emit('log', a.level, a.message));
        return;
    }
  }

  private timersFor(timer: TimerName): NamedTimers<TimerName> {
    return timer === 'masterDown' || timer === 'preemptDelay' ? this.preciseTimers : this.timers;
  }

  /**
   * One FSM deadline on its clock (the clocks never fire before the deadline: src/util/clock.ts).
   * A master-down expiry that makes the instance MASTER (fsm.ts takesOverOn) sends the advert and
   * the first round of gratuitous ARPs first, then runs the step (which asks for those sends
   * first: they are not repeated), then the rest: nothing but two sends stands between the timer
   * and the first GARP on the wire.
   */
  private arm(timer: TimerName, at: number): void {
    this.timersFor(timer).set(timer, at, () => {
      const now = this.clock.now();
      if (timer === 'masterDown') {
        const fsm = this.fsm;
        if (takesOverOn(fsm, timer, now)) {
          this.masterSince = now;
          this.sendAdvert(fsm.effectivePriority);
          this.preSentAdvert = fsm.effectivePriority;
          this.garpRound();
          this.preSentGarp = true;
        }
        this.lastMasterDownLateUs = Math.round((now - at) * 1000);
      }
      this.dispatch({ type: 'timer', timer }, now);
      this.preSentAdvert = null;
      this.preSentGarp = false;
    });
  }

  private advertSpec(priority: number): AdvertSpec {
    return {
      version: this.cfg.version, vrid: this.cfg.vrid, priority, intervalMs: this.cfg.advertIntervalMs,
      addresses: this.cfg.view.vips, authType: this.cfg.view.authType, authPassword: this.cfg.view.authPassword,
    };
  }

  /** The adverts for a priority, one per destination (encoded once: nothing else in them changes). */
  private adverts(priority: number): Buffer[] {
    let list = this.advertCache.get(priority);
    if (!list) {
      const spec = this.advertSpec(priority);
      list = this.destinations.map((dst) => encode(spec, { src: this.binding.source, dst }));
      this.advertCache.set(priority, list);
    }
    return list;
  }

  private sendAdvert(priority: number): void {
    const adverts = this.adverts(priority);
    for (const [i, dst] of this.destinations.entries()) {
      try {
        this.binding.sendVrrp(adverts[i]!, dst);
        this.counts.advertsSent++;
      } catch (err) {
        this.counts.sendErrors++;
        this.emit('log', 'warn', `(${this.name}) advert to ${dst} not sent: ${(err as Error).message}`);
      }
    }
  }

  /** What a dispatch left for its end: the addresses of a transition that sent no GARP. */
  flush(): void {
    if (this.addPending) this.addAll();
  }

  private sendGarp(repeat: number): void {
    for (let i = 0; i < repeat; i++) {
      if (i === 1) this.flush();
      if (i === 0 && this.preSentGarp) this.preSentGarp = false;
      else this.garpRound();
    }
    this.flush();
  }

  /** One gratuitous ARP / NA per address. */
  private garpRound(): void {
    for (const f of this.frames) {
      try {
        this.binding.sendFrame(f.ifindex, f.frame);
        this.counts.garpsSent++;
      } catch (err) {
        this.counts.sendErrors++;
        this.emit('log', 'warn', `(${this.name}) gratuitous ARP/NA not sent: ${(err as Error).message}`);
      }
      if (this.masterSince !== null) {
        this.lastGarpDelayUs = Math.round((this.clock.now() - this.masterSince) * 1000);
        this.masterSince = null;
      }
    }
  }

  private track(what: string, p: Promise<void>): void {
    const q = p.catch((err: unknown) => {
      const e = err as Error & { code?: string };
      if (e.code !== undefined && IGNORED.has(e.code)) return;
      this.counts.netErrors++;
      this.emit('netError', e);
      this.emit('log', 'warn', `(${this.name}) ${what}: ${e.message}`);
    }).finally(() => this.pending.delete(q));
    this.pending.add(q);
  }

  private addAll(): void {
    this.addPending = false;
    const { net } = this.binding;
    for (const a of this.binding.addresses) this.track(`adding ${a.address}`, net.addAddress(a));
    for (const r of this.binding.routes) this.track(`adding route ${r.dst}`, net.addRoute(r));
    for (const r of this.binding.rules) this.track('adding rule', net.addRule(r));
  }

  private removeAll(): void {
    const { net } = this.binding;
    for (const r of this.binding.rules) this.track('removing rule', net.deleteRule(r));
    for (const r of this.binding.routes) this.track(`removing route ${r.dst}`, net.deleteRoute(r));
    for (const a of this.binding.addresses) this.track(`removing ${a.address}`, net.deleteAddress(a));
  }
}

/** The instances of one process, and the coordinator each belongs to. */
export class InstanceSet {
  private readonly byName = new Map<string, VrrpInstance>();
  private readonly coordinators = new Map<string, Coordinator>();
  private readonly groupNames: Map<Coordinator, string>;
  /** group-level notifications (member null): the group's name, state */
  onGroupNotify: (group: string, state: NotifyState) => void = () => undefined;

  constructor(instances: VrrpInstance[], groups: SyncGroupConfig[], private readonly clock: Clock) {
    for (const i of instances) {
      if (this.byName.has(i.name)) throw new Error(`vrrp_instance ${i.name}: defined twice`);
      this.byName.set(i.name, i);
      i.set = this;
    }
    for (const g of groups) {
      const c = new GroupCoordinator(g, g.members.map((m) => this.get(m).initialFsm()));
      for (const m of g.members) this.coordinators.set(m, c);
    }
    for (const i of instances) if (!this.coordinators.has(i.name)) this.coordinators.set(i.name, new SoloCoordinator(i.initialFsm()));
    this.groupNames = new Map(groups.map((g) => [this.coordinatorOf(g.members[0]!), g.name]));
  }

  get(name: string): VrrpInstance {
    const i = this.byName.get(name);
    if (!i) throw new Error(`no vrrp_instance ${name}`);
    return i;
  }

  all(): VrrpInstance[] {
    return [...this.byName.values()];
  }

  coordinatorOf(name: string): Coordinator {
    const c = this.coordinators.get(name);
    if (!c) throw new Error(`no vrrp_instance ${name}`);
    return c;
  }

  /** Run one event (which happened at `at`, default now) and carry out every action it produced, for whichever member it is meant. */
  dispatch(name: string, e: FsmEvent, at = this.clock.now()): void {
    const c = this.coordinatorOf(name);
    const actions = c.dispatch(name, e, at);
    const later: (() => void)[] = [];
    for (const { member, action } of actions) {
      if (member === null) {
        const group = this.groupNames.get(c) ?? '?';
        if (action.type === 'notify') later.push(() => this.onGroupNotify(group, action.state));
        else later.push(() => this.get(name).emit('log', action.level, action.message));
        continue;
      }
      this.get(member).perform(action, at, later);
    }
    for (const i of this.byName.values()) i.flush();
    for (const f of later) f();
  }

  /** Start every instance (sync groups' members in their group's order). */
  startup(): void {
    for (const i of this.all()) this.dispatch(i.name, { type: 'startup' });
  }

  /** Every instance to STOP (priority 0 from masters, addresses removed), then wait for netlink. */
  async shutdown(): Promise<void> {
    for (const i of this.all()) this.dispatch(i.name, { type: 'shutdown' });
    for (const i of this.all()) i.clearTimers();
    await Promise.all(this.all().map((i) => i.settled()));
  }
}
