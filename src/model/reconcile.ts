/**
 * The reconciler: desired services (./validate.ts) x health (src/health's events) x VRRP
 * ownership become the smallest set of datapath driver calls, and the notifications keepalived
 * sends for the same changes. Pure core (`plan`, `planShutdown`) and a thin applier
 * (`Reconciler`), the only caller of a datapath driver.
 *
 * Semantics (keepalived 2.2's check/ipwrapper.c, unless said otherwise):
 *   - a real is alive as its health says; before any health event, alive unless alpha (a real
 *     without checkers is always alive). An alive real is in its service with its effective
 *     weight (configured + the checkers' dynamic weight); a dead one is out, or at weight 0 with
 *     inhibit_on_failure (it keeps its connections, gets no new ones);
 *   - quorum: the sum of the alive reals' weights. At the first plan the pool has quorum when the
 *     sum >= quorum + hysteresis; afterwards it gains quorum at >= quorum + hysteresis and loses
 *     it at < quorum - hysteresis (or 0). Quorum changes run quorum_up / quorum_down and write
 *     `VS <name> UP|DOWN` to the notify FIFOs; starting without quorum does too;
 *   - without quorum and with a sorry_server, the sorry server (weight 1) takes every new
 *     connection: the alive reals leave (inhibit_on_failure ones go to weight 0); with quorum the
 *     sorry server is absent (sorry_server_inhibit: present at weight 0). Without a sorry server
 *     the reals that are left keep serving;
 *   - a real that goes up or down runs its notify_up / notify_down and writes
 *     `RS <real> <service> UP|DOWN` to the FIFOs (not at the first plan, as keepalived without
 *     rs_init_notifies); a real or service removed by a reload while alive counts as going down;
 *   - the scheduler's selection (./schedulers.ts): fo/ovf keep only the highest weight, dh/lblc/
 *     lblcr one real per destination; the reals not selected stay at weight 0 (drained);
 *   - VRRP ownership: services are programmed whether or not this node owns their addresses, as
 *     keepalived's IPVS services are on a backup: traffic reaches the datapath only where the
 *     address is (the master), and a takeover needs no datapath change. Ownership only drives
 *     ha_suspend: a service's checkers run only while this node owns one of its addresses
 *     (`checkers` in the plan: switched with ownership, and restated off by every full plan
 *     while suspended; the health engine keeps their last verdict meanwhile);
 *   - shutdown (planShutdown): every service removed; with omega, the alive reals' notify_down
 *     and the quorum_down are run and written to the FIFOs (keepalived: only with omega).
 *
 * Smallest change: each datapath service (a group gives several) is set only when its reals or
 * options differ from what the driver holds, and removed when no longer desired; each set is one
 * driver call, which the driver applies atomically (the XDP forwarder swaps whole Maglev tables);
 * a plan's sets go to a driver that can batch them as one setServices, and one by one again when
 * that fails.
 * A health event replans only its own service.
 */
import { serviceKey, type DatapathDriver, type DatapathReal, type DatapathService } from '../datapath/driver.ts';
import type { HealthEvent } from '../health/types.ts';
import { select } from './schedulers.ts';
import type { NotifyScript } from './types.ts';
import type { ResolvedReal, ResolvedService } from './validate.ts';

export interface RealHealth {
  up: boolean;
  /** effective weight */
  weight: number;
}

/** The VIPs this node owns ('all': no VRRP, every address is ours). */
export type Ownership = 'all' | ReadonlySet<string>;

export interface ReconcileInput {
  services: readonly ResolvedService[];
  /** by real id; absent = no event yet */
  health: ReadonlyMap<string, RealHealth>;
  owned: Ownership;
}

interface Applied {
  owner: string;
  service: DatapathService;
  reals: DatapathReal[];
  /** canonical form of service + reals, to compare */
  sig: string;
}

interface ServiceState {
  /** the service as last planned (names and scripts for later notifications) */
  service: ResolvedService;
  quorumUp: boolean;
  /** by real id */
  alive: Map<string, boolean>;
  /** its checkers run (ha_suspend) */
  checking: boolean;
}

export interface ReconcileState {
  /** what the driver holds, by datapath service key */
  readonly applied: ReadonlyMap<string, Applied>;
  readonly services: ReadonlyMap<string, ServiceState>;
}

export const INITIAL_STATE: ReconcileState = { applied: new Map(), services: new Map() };

export type DriverOp =
  | { op: 'set'; key: string; owner: string; service: DatapathService; reals: DatapathReal[] }
  | { op: 'remove'; key: string; owner: string };

export type Notification =
  | { kind: 'script'; script: NotifyScript; what: string }
  | { kind: 'fifo'; line: string }
  | { kind: 'log'; line: string };

export interface Plan {
  ops: DriverOp[];
  notifications: Notification[];
  /** ha_suspend: checkers to enable or disable, by real id */
  checkers: { id: string; enabled: boolean }[];
  state: ReconcileState;
}

/** JSON with the keys of every object in order: equal content, equal text (held services come back with their keys in another order). */
const canonical = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) =>
  (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x));

const sigOf = (service: DatapathService, reals: readonly DatapathReal[]): string =>
  canonical([service, [...reals].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0))]);

/** The notifications of a real going up or down. */
function realNotes(svc: ResolvedService, r: ResolvedReal, up: boolean): Notification[] {
  const out: Notification[] = [{ kind: 'log', line: `${up ? 'Adding' : 'Removing'} service ${r.name} ${up ? 'to' : 'from'} VS ${svc.name}` }];
  const script = up ? r.notifyUp : r.notifyDown;
  if (script) out.push({ kind: 'script', script, what: `${up ? 'notify_up' : 'notify_down'} of ${r.name} in ${svc.name}` });
  out.push({ kind: 'fifo', line: `RS ${r.name} ${svc.name} ${up ? 'UP' : 'DOWN'}\n` });
  return out;
}

/** The notifications of a quorum change. */
function quorumNotes(svc: ResolvedService, up: boolean, sum: number, first: boolean): Notification[] {
  const verb = up ? (first ? 'Starting with quorum up' : 'Gained quorum') : first ? 'Starting with quorum down' : 'Lost quorum';
  const out: Notification[] = [{ kind: 'log', line: `${verb} ${svc.quorum}${up ? '+' : '-'}${svc.hysteresis}, live weight ${sum}, for VS ${svc.name}` }];
  const script = up ? svc.quorumUp : svc.quorumDown;
  if (script) out.push({ kind: 'script', script, what: `${up ? 'quorum_up' : 'quorum_down'} of ${svc.name}` });
  out.push({ kind: 'fifo', line: `VS ${svc.name} ${up ? 'UP' : 'DOWN'}\n` });
  return out;
}

const ownsService = (svc: ResolvedService, owned: Ownership): boolean =>
  owned === 'all' || svc.endpoints.some((e) => owned.has(e.address));

/** One service: its state after this plan, its notifications, and its reals per datapath service. */
function planService(svc: ResolvedService, input: ReconcileInput, prev: ServiceState | undefined, full: boolean) {
  const notes: Notification[] = [];
  const aliveOf = (r: ResolvedReal): boolean => r.checkers.length === 0 || (input.health.get(r.id)?.up ?? !r.alpha);
  const weightOf = (r: ResolvedReal): number => input.health.get(r.id)?.weight ?? r.weight;

  const alive = new Map(svc.reals.map((r) => [r.id, aliveOf(r)]));
  const sum = svc.reals.reduce((s, r) => s + (alive.get(r.id) ? weightOf(r) : 0), 0);

  // reals that changed state, and reals removed by a reload while alive
  if (prev) {
    for (const r of svc.reals) {
      const was = prev.alive.get(r.id);
      if (was !== undefined && was !== alive.get(r.id)) notes.push(...realNotes(svc, r, alive.get(r.id)!));
    }
    const ids = new Set(svc.reals.map((r) => r.id));
    for (const r of prev.service.reals) if (!ids.has(r.id) && prev.alive.get(r.id)) notes.push(...realNotes(prev.service, r, false));
  }

  // quorum
  let quorumUp: boolean;
  if (!prev) {
    quorumUp = sum >= svc.quorum + svc.hysteresis;
    if (!quorumUp) notes.push(...quorumNotes(svc, false, sum, true));
  } else if (!prev.quorumUp && sum >= svc.quorum + svc.hysteresis) {
    quorumUp = true;
    notes.push(...quorumNotes(svc, true, sum, false));
  } else if (prev.quorumUp && (sum === 0 || sum < svc.quorum - svc.hysteresis)) {
    quorumUp = false;
    notes.push(...quorumNotes(svc, false, sum, false));
  } else {
    quorumUp = prev.quorumUp;
  }

  // the pool: [real, weight]
  const sorryServes = svc.sorry !== undefined && !quorumUp;
  const pool: { real: ResolvedReal; weight: number }[] = [];
  for (const r of svc.reals) {
    if (alive.get(r.id) && !sorryServes) pool.push({ real: r, weight: weightOf(r) });
    else if (r.inhibitOnFailure) pool.push({ real: r, weight: 0 });
  }
  if (svc.sorry && (sorryServes || svc.sorryInhibit)) {
    const weight = sorryServes ? svc.sorry.weight : 0;
    const same = pool.findIndex((p) => p.real.address === svc.sorry!.address);
    if (same < 0) pool.push({ real: svc.sorry, weight });
    else if (pool[same]!.weight < weight) pool[same] = { real: svc.sorry, weight };
  }
  const { weights, selection } = svc.realisation;
  const candidates = pool.map((p) => ({ key: p.real.name, weight: weights === 'equal' ? Math.min(p.weight, 1) : p.weight }));

  const perEndpoint = svc.endpoints.map((e) => {
    const keep = new Set(select(selection, serviceKey(e), candidates));
    const reals: DatapathReal[] = pool.map((p, i) => ({
      address: p.real.address, port: p.real.port, method: p.real.method, weight: keep.has(i) ? candidates[i]!.weight : 0,
    }));
    return { service: e, reals };
  });

  // ha_suspend: checkers switched when ownership switches them; a full plan (start, reload) also
  // restates 'off' for a suspended service, whose reals the reload may have (re)added to the
  // health engine, which starts them enabled
  const checking = !svc.haSuspend || ownsService(svc, input.owned);
  const switched = (prev?.checking ?? true) !== checking;
  const checkers = switched || (full && !checking)
    ? svc.reals.filter((r) => r.checkers.length > 0).map((r) => ({ id: r.id, enabled: checking }))
    : [];

  return { state: { service: svc, quorumUp, alive, checking } satisfies ServiceState, notes, perEndpoint, checkers };
}

/**
 * The plan from `state` to what `input` asks for. With `dirty`, only those services (by id) are
 * planned again (a health event's); services that are no longer desired are found only by a full
 * plan (no `dirty`).
 */
export function plan(input: ReconcileInput, state: ReconcileState, dirty?: ReadonlySet<string>): Plan {
  const applied = new Map(state.applied);
  const services = new Map(state.services);
  const removes: DriverOp[] = [];
  const sets: DriverOp[] = [];
  const notifications: Notification[] = [];
  const checkers: Plan['checkers'] = [];

  if (!dirty) {
    const wanted = new Set(input.services.map((s) => s.id));
    for (const [id, st] of state.services) {
      if (wanted.has(id)) continue;
      for (const r of st.service.reals) if (st.alive.get(r.id)) notifications.push(...realNotes(st.service, r, false));
      if (st.quorumUp) notifications.push(...quorumNotes(st.service, false, 0, false));
      services.delete(id);
    }
    const keys = new Set(input.services.flatMap((s) => s.endpoints.map(serviceKey)));
    for (const [key, a] of state.applied) {
      if (keys.has(key)) continue;
      removes.push({ op: 'remove', key, owner: a.owner });
      applied.delete(key);
    }
  }
  for (const svc of input.services) {
    if (dirty && !dirty.has(svc.id)) continue;
    const p = planService(svc, input, state.services.get(svc.id), !dirty);
    services.set(svc.id, p.state);
    notifications.push(...p.notes);
    checkers.push(...p.checkers);
    for (const { service, reals } of p.perEndpoint) {
      const key = serviceKey(service);
      const sig = sigOf(service, reals);
      if (state.applied.get(key)?.sig === sig) continue;
      sets.push({ op: 'set', key, owner: svc.id, service, reals });
      applied.set(key, { owner: svc.id, service, reals, sig });
    }
  }
  return { ops: [...removes, ...sets], notifications, checkers, state: { applied, services } };
}

/** Shutdown: every datapath service removed; with omega, the down notifications keepalived sends. */
export function planShutdown(state: ReconcileState): Plan {
  const notifications: Notification[] = [];
  for (const st of state.services.values()) {
    if (!st.service.omega) continue;
    for (const r of st.service.reals) if (st.alive.get(r.id)) notifications.push(...realNotes(st.service, r, false));
    if (st.quorumUp) notifications.push(...quorumNotes(st.service, false, 0, false));
  }
  const ops: DriverOp[] = [...state.applied].map(([key, a]) => ({ op: 'remove', key, owner: a.owner }));
  return { ops, notifications, checkers: [], state: INITIAL_STATE };
}

// ---------------------------------------------------------------- the applier

export interface ReconcilerOptions {
  driver: DatapathDriver;
  /** run a notify script (not awaited); `stopping`: at shutdown (keepalived gives those 1 s) */
  runScript?: (script: NotifyScript, what: string, stopping: boolean) => void;
  /** the notify FIFOs (notify_fifo, lvs_notify_fifo): src/vrrp/notify.ts's NotifyFifo */
  fifos?: readonly { write(line: string): boolean }[];
  log?: (line: string) => void;
  /** ha_suspend: src/health's HealthScheduler.setEnabled */
  setChecking?: (realId: string, enabled: boolean) => void;
  /**
   * What the driver already holds when the reconciler starts (a hitless restart: XdpDriver.held()
   * after the forwarder adopted its pins). The first full plan then removes what is no longer
   * wanted and sets only what differs, instead of assuming an empty datapath.
   */
  held?: readonly { service: DatapathService; reals: DatapathReal[] }[];
}

/**
 * Applies plans: driver calls in order (removes, then sets), then notifications and checker
 * switches. Calls are serialised: a change that arrives while one is applied waits for it. A
 * driver call that fails is logged and counted; what the driver holds for that service stays as
 * it was in the state, so the next plan of the service tries again (a failed service is replanned
 * with the next change of anything; after a failed removal the next plan is a full one, which is
 * what finds services no longer wanted).
 */
export class Reconciler {
  #input: ReconcileInput = { services: [], health: new Map(), owned: 'all' };
  readonly #health = new Map<string, RealHealth>();
  #byReal = new Map<string, string>();
  #state: ReconcileState = INITIAL_STATE;
  #queue: Promise<void> = Promise.resolve();
  readonly #retry = new Set<string>();
  /** a removal failed: the next plan is a full one (only a full plan finds what is no longer wanted) */
  #retryAll = false;
  /** driver calls that failed */
  failures = 0;
  /** the last plan applied (for status and tests) */
  lastPlan: Plan | undefined;

  constructor(private readonly opts: ReconcilerOptions) {
    if (opts.held?.length) {
      const applied = new Map(opts.held.map(({ service, reals }) => [serviceKey(service), { owner: '', service, reals, sig: sigOf(service, reals) }]));
      this.#state = { applied, services: new Map() };
    }
  }

  get state(): ReconcileState {
    return this.#state;
  }

  /** The desired services (at start and on every reload): a full plan. */
  setServices(services: readonly ResolvedService[]): Promise<void> {
    return this.#enqueue(() => {
      this.#input = { ...this.#input, services };
      this.#byReal = new Map(services.flatMap((s) => s.reals.map((r) => [r.id, s.id])));
      const ids = new Set(this.#byReal.keys());
      for (const id of this.#health.keys()) if (!ids.has(id)) this.#health.delete(id);
      return undefined;
    });
  }

  /** A health event (src/health's HealthScheduler 'event'): only its service is planned. */
  health(ev: HealthEvent): Promise<void> {
    return this.#enqueue(() => {
      const owner = this.#byReal.get(ev.real);
      if (owner === undefined) return new Set<string>();
      this.#health.set(ev.real, { up: ev.up, weight: ev.weight });
      return new Set([owner]);
    });
  }

  /** The VIPs this node owns changed (VRRP): the ha_suspend services are planned again. */
  setOwned(owned: Ownership): Promise<void> {
    return this.#enqueue(() => {
      this.#input = { ...this.#input, owned };
      return new Set(this.#input.services.filter((s) => s.haSuspend).map((s) => s.id));
    });
  }

  /** Remove every service (and send omega's notifications). */
  shutdown(): Promise<void> {
    const run = async () => {
      const p = planShutdown(this.#state);
      await this.#apply(p, true);
      this.#state = p.state;
    };
    this.#queue = this.#queue.then(run, run);
    return this.#queue;
  }

  /** `change` updates the input and says which services to plan (undefined: all). */
  #enqueue(change: () => Set<string> | undefined): Promise<void> {
    const run = async () => {
      let dirty = change();
      if (this.#retryAll) dirty = undefined;
      else if (dirty && this.#retry.size) dirty = new Set([...dirty, ...this.#retry]);
      if (dirty?.size === 0) return;
      this.#retry.clear();
      this.#retryAll = false;
      const p = plan({ ...this.#input, health: this.#health }, this.#state, dirty);
      this.#state = await this.#apply(p, false);
    };
    this.#queue = this.#queue.then(run, run);
    return this.#queue;
  }

  async #apply(p: Plan, stopping: boolean): Promise<ReconcileState> {
    const applied = new Map(p.state.applied);
    let done = new Set<DriverOp>();
    for (const [i, op] of p.ops.entries()) {
      // a run of sets (a plan's come after its removals) goes to the driver as one batch
      if (op.op === 'set' && p.ops[i - 1]?.op !== 'set') done = await this.#batchSets(p.ops.slice(i));
      if (done.has(op)) continue;
      try {
        if (op.op === 'set') await this.opts.driver.setService(op.service, op.reals);
        else await this.opts.driver.removeService(op.key);
      } catch (e) {
        this.failures++;
        this.opts.log?.(`datapath: ${op.op} ${op.key} failed: ${(e as Error).message}`);
        // the driver still holds what it held before
        const before = this.#state.applied.get(op.key);
        if (before) applied.set(op.key, before);
        else applied.delete(op.key);
        if (op.op === 'remove') this.#retryAll = true;
        else this.#retry.add(op.owner);
      }
    }
    for (const n of p.notifications) {
      if (n.kind === 'log') this.opts.log?.(n.line);
      else if (n.kind === 'fifo') for (const f of this.opts.fifos ?? []) f.write(n.line);
      else this.opts.runScript?.(n.script, n.what, stopping);
    }
    for (const c of p.checkers) this.opts.setChecking?.(c.id, c.enabled);
    this.lastPlan = p;
    return { applied, services: p.state.services };
  }

  /**
   * The set ops that `ops` starts with in one driver setServices (where the driver has it: a
   * full apply's tables swapped in one batch), the ops it did. A failed batch did none, as far
   * as the caller knows: they are all applied again one by one (setting a service again with
   * what it has changes nothing), and each failure is then its own.
   */
  async #batchSets(ops: readonly DriverOp[]): Promise<Set<DriverOp>> {
    const sets: Extract<DriverOp, { op: 'set' }>[] = [];
    for (const op of ops) {
      if (op.op !== 'set') break;
      sets.push(op);
    }
    if (sets.length < 2 || !this.opts.driver.setServices) return new Set();
    try {
      await this.opts.driver.setServices(sets.map((op) => ({ service: op.service, reals: op.reals })));
      return new Set(sets);
    } catch {
      return new Set();
    }
  }
}
