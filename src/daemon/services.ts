/**
 * The daemon's services side: the health engine (src/health) checking every real server, the
 * reconciler (src/model/reconcile.ts) turning desired services x health x VRRP ownership into
 * driver calls, and the next hops the XDP driver needs for each real (./nexthop.ts).
 *
 *   apply(services)  at start and at every reload: the next hops of the reals are resolved, the
 *                    health engine keeps every real whose checking is unchanged (same address,
 *                    port, weight and checker blocks, positions aside: its state and timers go
 *                    on), stops checking the reals that are gone or changed and starts the new
 *                    ones; then the reconciler gets the whole set and changes only what differs
 *                    (a real that only moved in the file changes nothing).
 *   setOwned(vips)   VRRP ownership changed (ha_suspend).
 *   stop(how)        checks stopped; 'remove': every service removed from the datapath (omega's
 *                    notifications), 'keep': the datapath left as it is.
 *
 * A checker the health code refuses (a bad setting, a MISC_CHECK script that may not run) is left
 * out with a warning, as keepalived drops it; the real's other checkers still run. A real whose
 * next hop cannot be resolved is retried every RETRY_MS until it is (its service is not
 * programmed before: the driver refuses a real without a MAC).
 */
import type { Logger } from 'pino';
import type { DatapathDriver, HeldService } from '../datapath/driver.ts';
import { checkersForReal, HealthScheduler, type HealthEvent } from '../health/index.ts';
import type { RealSnapshot } from '../health/scheduler.ts';
import { Reconciler, type Ownership } from '../model/reconcile.ts';
import type { NotifyScript, ServiceGlobalDefs } from '../model/types.ts';
import type { ResolvedReal, ResolvedService } from '../model/validate.ts';
import { NotifyFifo, STOP_SCRIPT_TIMEOUT_MS } from '../vrrp/notify.ts';
import { defaultUser, lookupUser, prepareScript, runScript, type ScriptUser } from '../vrrp/script.ts';
import type { NextHops } from './nexthop.ts';

export const RETRY_MS = 5000;

/** A value without its source positions (`pos`, `at`): what a reload compares. */
export function withoutPositions(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutPositions);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).filter(([k]) => k !== 'pos' && k !== 'at').map(([k, x]) => [k, withoutPositions(x)]));
  }
  return v;
}

const signature = (v: unknown): string => JSON.stringify(withoutPositions(v));

/** What the health engine checks of a real: a change of any of it means checking it afresh. */
const checkSignature = (svc: ResolvedService, r: ResolvedReal): string =>
  signature([r.address, r.port, r.weight, r.alpha, r.checkers, r.checkerDefaults, svc.endpoints[0]?.port]);

export interface ServicesOptions {
  driver: DatapathDriver;
  nextHops: NextHops;
  log: Logger;
  /** what the driver holds at start (a hitless restart): the reconciler changes only the difference */
  held?: readonly HeldService[];
}

export interface ServiceChanges {
  added: string[];
  removed: string[];
  changed: string[];
}

export class ServicePlane {
  readonly health: HealthScheduler;
  readonly reconciler: Reconciler;
  #services: ResolvedService[] = [];
  #globals: ServiceGlobalDefs = {};
  /** by real id: what its checking was started from */
  readonly #checked = new Map<string, string>();
  /** the notify FIFOs (one array, changed in place: the reconciler holds it) */
  readonly #fifos: NotifyFifo[] = [];
  #retry: NodeJS.Timeout | undefined;
  #unresolved = new Set<string>();
  #stopped = false;

  constructor(private readonly opts: ServicesOptions) {
    const log = opts.log;
    this.health = new HealthScheduler({ log: (line) => log.info({ component: 'health' }, line) });
    this.reconciler = new Reconciler({
      driver: opts.driver,
      log: (line) => log.info({ component: 'reconcile' }, line),
      runScript: (script, what, stopping) => this.#runScript(script, what, stopping),
      fifos: this.#fifos,
      setChecking: (id, enabled) => { if (this.health.has(id)) this.health.setEnabled(id, enabled); },
      ...(opts.held ? { held: opts.held } : {}),
    });
    this.health.on('event', (e: HealthEvent) => {
      log.info({ component: 'health', real: e.real, type: e.type, up: e.up, weight: e.weight, checker: e.checker }, `real server ${e.real}: ${e.type}`);
      void this.reconciler.health(e);
    });
  }

  get services(): readonly ResolvedService[] {
    return this.#services;
  }

  /** The health engine's view of a real (undefined: not checked: it has no checkers). */
  realHealth(id: string): RealSnapshot | undefined {
    return this.health.real(id);
  }

  /** Start with, or change to, these services (see the header). */
  async apply(services: readonly ResolvedService[], globals: ServiceGlobalDefs = {}): Promise<ServiceChanges> {
    const before = new Map(this.#services.map((s) => [s.id, signature(s)]));
    const after = new Map(services.map((s) => [s.id, signature(s)]));
    const changes: ServiceChanges = {
      added: services.filter((s) => !before.has(s.id)).map((s) => s.name),
      removed: this.#services.filter((s) => !after.has(s.id)).map((s) => s.name),
      changed: services.filter((s) => before.has(s.id) && before.get(s.id) !== after.get(s.id)).map((s) => s.name),
    };
    this.#globals = globals;
    this.#openFifos(globals);

    const addresses = services.flatMap((s) => [...s.reals, ...(s.sorry ? [s.sorry] : [])].map((r) => r.address));
    await this.#resolve(addresses);

    // health: keep what is unchanged, restart what changed, stop what is gone
    const wanted = new Map<string, { svc: ResolvedService; real: ResolvedReal; sig: string }>();
    for (const svc of services) {
      for (const real of svc.reals) if (real.checkers.length > 0) wanted.set(real.id, { svc, real, sig: checkSignature(svc, real) });
    }
    for (const [id, sig] of this.#checked) {
      if (wanted.get(id)?.sig === sig) continue;
      this.health.removeReal(id);
      this.#checked.delete(id);
    }
    for (const [id, w] of wanted) {
      if (this.#checked.has(id)) continue;
      this.#addReal(w.svc, w.real);
      this.#checked.set(id, w.sig);
    }

    this.#services = [...services];
    await this.reconciler.setServices(services);
    this.health.start();
    return changes;
  }

  setOwned(owned: Ownership): Promise<void> {
    return this.reconciler.setOwned(owned);
  }

  /** Stop checking; 'remove' also takes every service out of the datapath. */
  async stop(how: 'remove' | 'keep'): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#retry);
    this.health.stop();
    if (how === 'remove') await this.reconciler.shutdown();
    for (const f of this.#fifos.splice(0)) f.close();
  }

  #addReal(svc: ResolvedService, real: ResolvedReal): void {
    const port = real.port || (svc.endpoints[0]?.port ?? 0);
    const { entries, refused } = checkersForReal(real.checkers, {
      address: real.address, port, weight: real.weight,
      real: { ...real.checkerDefaults.real, alpha: real.alpha }, service: real.checkerDefaults.service,
    }, { script: { scriptSecurity: this.#globals.enable_script_security ?? false, defaultUser: this.#scriptUser() } });
    for (const r of refused) {
      const at = real.checkers[r.index]?.pos;
      this.opts.log.warn({ component: 'health', real: real.id, pos: at }, `${real.name} in ${svc.name}: ${r.kind} left out: ${r.error.message}`);
    }
    this.health.addReal(real.id, { weight: real.weight, checkers: entries });
  }

  #scriptUser(): ScriptUser {
    const g = this.#globals;
    if (g.script_user) {
      const [user, group] = g.script_user.split(/\s+/);
      return lookupUser(user!, group);
    }
    return defaultUser(g.enable_script_security ?? false);
  }

  #runScript(script: NotifyScript, what: string, stopping: boolean): void {
    const log = this.opts.log;
    let user: ScriptUser;
    try {
      user = script.user ? lookupUser(script.user, script.group) : this.#scriptUser();
    } catch (e) {
      log.warn({ component: 'reconcile' }, `${what}: ${(e as Error).message}`);
      return;
    }
    const p = prepareScript(script.command, { user, scriptSecurity: this.#globals.enable_script_security ?? false });
    if (!p.ok) {
      log.warn({ component: 'reconcile' }, `${what} '${script.command}' not run: ${p.reason}`);
      return;
    }
    void runScript(p.script, stopping ? { timeoutMs: STOP_SCRIPT_TIMEOUT_MS } : {}).then((o) => {
      if (o.status !== 'success') log.warn({ component: 'reconcile', status: o.status, exitCode: o.exitCode }, `${what} '${script.command}': ${o.status}`);
    });
  }

  #openFifos(g: ServiceGlobalDefs): void {
    const paths = [...new Set([g.notify_fifo, g.lvs_notify_fifo].filter((p): p is string => p !== undefined))];
    const open = this.#fifos.map((f) => f.path);
    if (signature(open) === signature(paths)) return;
    for (const f of this.#fifos.splice(0)) f.close();
    for (const path of paths) {
      try {
        this.#fifos.push(NotifyFifo.open(path));
      } catch (e) {
        this.opts.log.warn({ component: 'reconcile' }, (e as Error).message);
      }
    }
  }

  /** Resolve next hops; the ones that fail are retried every RETRY_MS, and their services replanned when they resolve. */
  async #resolve(addresses: readonly string[]): Promise<void> {
    const failures = await this.opts.nextHops.resolve(addresses);
    this.#unresolved = new Set(failures.map((f) => f.address));
    for (const f of failures) this.opts.log.warn({ component: 'datapath', real: f.address }, `next hop of ${f.address}: ${f.error}; retrying every ${RETRY_MS / 1000} s`);
    if (this.#unresolved.size > 0 && !this.#retry) {
      this.#retry = setInterval(() => void this.#retryResolve(), RETRY_MS);
      this.#retry.unref();
    }
  }

  async #retryResolve(): Promise<void> {
    const pending = [...this.#unresolved];
    const failures = await this.opts.nextHops.resolve(pending);
    const still = new Set(failures.map((f) => f.address));
    const resolved = pending.filter((a) => !still.has(a));
    this.#unresolved = still;
    if (still.size === 0) {
      clearInterval(this.#retry);
      this.#retry = undefined;
    }
    if (resolved.length > 0 && !this.#stopped) {
      this.opts.log.info({ component: 'datapath', reals: resolved }, 'next hops resolved: programming their services');
      await this.reconciler.setServices(this.#services);
    }
  }
}
