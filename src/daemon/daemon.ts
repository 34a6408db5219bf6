/**
 * The xlb daemon: what `xlb run` runs. It reads the configuration (./config.ts), runs the VRRP
 * instances (src/vrrp/runner.ts), the health checks and the reconciler (./services.ts) onto the
 * XDP datapath (./datapath.ts), and answers the control API (./control.ts's DaemonControl).
 *
 * Start (Daemon.start): the file is read and resolved; any error and nothing starts (the caller
 * prints every problem). Then the datapath is attached and programmed with every service (so that
 * a VRRP takeover finds it ready), then the VRRP instances start. -P (`services: false`) runs
 * VRRP only, -C (`vrrp: false`) the services only; with -C every service address counts as ours
 * (ha_suspend never suspends).
 *
 * Reload (SIGHUP, `xlb reload`): the file is read again.
 *   - An error anywhere: nothing changes, the result lists every problem (applied: false).
 *   - Valid: the services are changed by the difference only (./services.ts: reals whose checks
 *     are unchanged keep their health and timers; the reconciler sets a datapath service only when
 *     its reals or options differ, each set atomic for packets: established connections stay on
 *     their reals unless their real was removed). lvs_timeouts are applied.
 *   - VRRP: a reload never moves a VRRP instance. When the VRRP part of the file is unchanged,
 *     nothing is done; when it changed, the running instances are kept as they are and a warning
 *     says that the change needs a restart (xlb does not yet re-create instances in place, as
 *     keepalived's reload does while keeping their states). The interfaces the forwarder is
 *     attached to do not change either.
 *
 * Hitless restart: the datapath is pinned per instance (./datapath.ts); a daemon that dies leaves
 * it forwarding, and the next start adopts it and changes only the difference.
 *
 * Stop (SIGTERM): the VRRP instances stop first (masters send priority 0 at once, then remove
 * their addresses, routes and rules, so a backup takes over without waiting out the master-down
 * interval); the checks stop; then the datapath as `datapathOnStop` says:
 *   'remove' (default, as keepalived removes its IPVS services): every service removed (omega's
 *            notifications), the XDP program detached, its pins removed;
 *   'keep'   (`xlb run --keep-datapath`): the program stays attached and pinned with its
 *            services (the next start adopts it), so
 *            traffic that still arrives (a VIP moved away is not sent here any more, but routes or
 *            static addresses may be) keeps being forwarded until the next start takes it over.
 */
import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { COUNTER_NAMES } from '../datapath/xdp/forwarder.ts';
import { XDP_CAPABILITIES, type Stats } from '../datapath/driver.ts';
import type { Ownership } from '../model/reconcile.ts';
import type { ResolvedReal, ResolvedService } from '../model/validate.ts';
import { LinkWatcher } from '../net/link-watch.ts';
import { spinningClock, systemClock } from '../util/clock.ts';
import type { NotifyState } from '../vrrp/fsm.ts';
import { VrrpRunner } from '../vrrp/runner.ts';
import { loadDaemonConfig, readConfigFile, type ConfigProblem, type ConfigReader, type DaemonConfig } from './config.ts';
import {
  ControlError, DEFAULT_INSTANCE, reloadProblem, reloadSummary, type Counters, type DaemonControl, type EndpointStats,
  type KeepalivedJsonDump, type RealStatus, type ReloadResult, type ServiceStatus, type StatsReport, type StatusReport,
} from './control.ts';
import { Datapath, type XdpMode } from './datapath.ts';
import { ServicePlane, withoutPositions } from './services.ts';
import { keepalivedJsonInstance, vrrpInstanceStats, vrrpInstanceStatus, type WallClock } from './vrrp-report.ts';

export interface DaemonOptions {
  configFile: string;
  /** names the control socket and the BPF pins; default 'default' */
  instance?: string;
  /** run the VRRP instances (false: -C); default true */
  vrrp?: boolean;
  /** run the checks and the datapath (false: -P); default true */
  services?: boolean;
  /** interfaces to attach the forwarder to; default: the VRRP instances' interfaces */
  interfaces?: readonly string[];
  xdpMode?: XdpMode;
  /** what a stop does to the datapath (see the header); default 'remove' */
  datapathOnStop?: 'remove' | 'keep';
  log: Logger;
  /** how the file is read (tests); default ./config.ts's readConfigFile */
  read?: ConfigReader;
}

/** The file could not be used: every problem, positioned. */
export class ConfigError extends Error {
  constructor(readonly file: string, readonly problems: ConfigProblem[]) {
    super(`${file}: ${problems.filter((p) => p.severity === 'error').length} error(s) in the configuration`);
    this.name = 'ConfigError';
  }
}

const VERSION = (JSON.parse(readFileSync(resolve(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string }).version;

/** The instance clock (performance.now()) to milliseconds since the epoch. */
const wall: WallClock = (mono) => performance.timeOrigin + mono;

const counters = (s: Stats): Counters => ({ packets: Number(s.packets), bytes: Number(s.bytes), connections: Number(s.conns) });

export class Daemon implements DaemonControl {
  readonly instance: string;
  readonly startedAt = new Date();
  #config: DaemonConfig;
  #loadedAt = new Date();
  /** the VRRP configuration the running instances were made from */
  #vrrpSignature: string;
  #runner: VrrpRunner | null = null;
  #links: LinkWatcher | null = null;
  #datapath: Datapath | null = null;
  #plane: ServicePlane | null = null;
  readonly #groups = new Map<string, NotifyState>();
  #lastReload: ReloadResult | null = null;
  #reloading = false;
  #stopping: Promise<void> | null = null;
  readonly #log: Logger;

  private constructor(private readonly opts: DaemonOptions, config: DaemonConfig) {
    this.instance = opts.instance ?? DEFAULT_INSTANCE;
    this.#config = config;
    this.#vrrpSignature = JSON.stringify(config.vrrp);
    this.#log = opts.log;
  }

  get runsVrrp(): boolean {
    return this.opts.vrrp !== false;
  }

  get runsServices(): boolean {
    return this.opts.services !== false;
  }

  /** The VRRP runner (null with -C or no instance). */
  get runner(): VrrpRunner | null {
    return this.#runner;
  }

  /** The datapath (null with -P). */
  get datapath(): Datapath | null {
    return this.#datapath;
  }

  /** Read the file and start everything; throws ConfigError with every problem when the file has an error. */
  static async start(opts: DaemonOptions): Promise<Daemon> {
    const log = opts.log;
    const loaded = await loadDaemonConfig(opts.configFile, XDP_CAPABILITIES, opts.read ?? readConfigFile);
    if (!loaded.config) throw new ConfigError(opts.configFile, loaded.problems);
    for (const p of loaded.problems) log.warn({ component: 'config', pos: p.pos }, formatProblem(p));
    const d = new Daemon(opts, loaded.config);
    try {
      await d.#startServices(loaded.services ?? []);
      await d.#startVrrp();
    } catch (err) {
      await d.stop().catch(() => undefined);
      throw err;
    }
    log.info({ component: 'daemon', instance: d.instance, pid: process.pid, vrrp: d.runsVrrp, services: d.runsServices }, 'xlb running');
    return d;
  }

  async #startServices(services: ResolvedService[]): Promise<void> {
    if (!this.runsServices) return;
    const vrrpIfs = this.runsVrrp ? this.#config.vrrp.vrrp_instance.map((i) => i.interface) : [];
    const interfaces = this.opts.interfaces?.length ? [...this.opts.interfaces] : [...new Set(vrrpIfs)];
    const log = this.#log.child({ component: 'datapath' });
    this.#datapath = await Datapath.open({ instance: this.instance, interfaces, mode: this.opts.xdpMode ?? 'native', log });
    await this.#datapath.configure(this.#config.services.global_defs);
    this.#plane = new ServicePlane({ driver: this.#datapath.driver, nextHops: this.#datapath.nextHops, log: this.#log, held: this.#datapath.held });
    if (this.runsVrrp && this.#config.vrrp.vrrp_instance.length > 0) await this.#plane.setOwned(new Set());
    await this.#plane.apply(services, this.#config.services.global_defs);
  }

  async #startVrrp(): Promise<void> {
    if (!this.runsVrrp || this.#config.vrrp.vrrp_instance.length === 0) return;
    const log = this.#log.child({ component: 'vrrp' });
    this.#links = await LinkWatcher.open();
    const runner = new VrrpRunner(this.#config.vrrp, systemClock, spinningClock(), this.#links);
    this.#runner = runner;
    runner.on('state', (s) => {
      log.info({ instance: s.instance, state: s.state, priority: s.priority }, `(${s.instance}) entering ${s.state} state`);
      void this.#plane?.setOwned(this.#owned());
    });
    runner.on('group', (g) => {
      this.#groups.set(g.group, g.state);
      log.info({ group: g.group, state: g.state }, `sync group ${g.group} entering ${g.state} state`);
    });
    runner.on('log', (level, message) => log[level](message));
    await runner.start();
  }

  /** The VIPs of the instances that are MASTER. */
  #owned(): Ownership {
    const owned = new Set<string>();
    for (const i of this.#runner?.instances ?? []) {
      if (i.fsm.state === 'MASTER') for (const a of i.cfg.vips) owned.add(a.address);
    }
    return owned;
  }

  // ------------------------------------------------------------ reload

  async reload(): Promise<ReloadResult> {
    if (this.#stopping) throw new ControlError('unavailable', 'the daemon is stopping');
    if (this.#reloading) throw new ControlError('busy', 'a reload is already running');
    this.#reloading = true;
    const started = performance.now();
    const file = this.opts.configFile;
    const result: ReloadResult = {
      applied: false, configFile: file, problems: [],
      changes: { servicesAdded: [], servicesRemoved: [], servicesChanged: [], instancesAdded: [], instancesRemoved: [], instancesChanged: [] },
      at: new Date().toISOString(), durationMs: 0,
    };
    try {
      const loaded = await loadDaemonConfig(file, XDP_CAPABILITIES, this.opts.read ?? readConfigFile);
      result.problems = loaded.problems.map(reloadProblem);
      if (!loaded.config) {
        for (const p of loaded.problems) this.#log[p.severity === 'error' ? 'error' : 'warn']({ component: 'config', pos: p.pos }, formatProblem(p));
        this.#log.error({ component: 'daemon' }, `reload: ${file} has errors: the running configuration is kept`);
        return result;
      }
      const config = loaded.config;
      const vrrpChanged = JSON.stringify(config.vrrp) !== this.#vrrpSignature;
      if (vrrpChanged && this.runsVrrp) {
        const diff = instanceChanges(this.#config.vrrp.vrrp_instance, config.vrrp.vrrp_instance);
        result.problems.push({
          severity: 'warning', pos: { file, line: 1, col: 1 },
          message: 'the VRRP configuration changed: the running VRRP instances are kept as they are (a reload never ' +
            `changes their state); restart xlb to apply the change${diff ? ` (${diff})` : ''}`,
        });
      }
      if (this.#plane && this.#datapath) {
        await this.#datapath.configure(config.services.global_defs);
        const c = await this.#plane.apply(loaded.services ?? [], config.services.global_defs);
        result.changes.servicesAdded = c.added;
        result.changes.servicesRemoved = c.removed;
        result.changes.servicesChanged = c.changed;
      }
      // what status() shows of VRRP stays the running instances' configuration
      this.#config = { vrrp: this.#config.vrrp, services: config.services };
      this.#loadedAt = new Date();
      result.applied = true;
      for (const p of result.problems) this.#log.warn({ component: 'config', pos: p.pos }, formatProblem(p));
      this.#log.info({ component: 'daemon', changes: result.changes }, `reload: ${file} applied`);
      return result;
    } finally {
      result.durationMs = Math.round((performance.now() - started) * 1000) / 1000;
      this.#lastReload = result;
      this.#reloading = false;
    }
  }

  // ------------------------------------------------------------ stop

  /** Graceful stop (see the header). Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    const how = this.opts.datapathOnStop ?? 'remove';
    const log = this.#log;
    try {
      await this.#runner?.stop();
    } catch (e) {
      log.error({ component: 'vrrp', err: (e as Error).message }, 'VRRP stop failed');
    }
    this.#links?.close();
    await this.#plane?.stop(how);
    await this.#datapath?.close(how);
    log.info({ component: 'daemon', datapath: this.#datapath ? how : null }, how === 'keep' && this.#datapath
      ? 'stopped: the XDP datapath is left attached and forwarding' : 'stopped');
  }

  // ------------------------------------------------------------ reports

  async status(): Promise<StatusReport> {
    const groups = this.#config.vrrp.vrrp_sync_group ?? [];
    return {
      instance: this.instance,
      pid: process.pid,
      version: VERSION,
      startedAt: this.startedAt.toISOString(),
      configFile: this.opts.configFile,
      configLoadedAt: this.#loadedAt.toISOString(),
      runs: { vrrp: this.runsVrrp, services: this.runsServices },
      datapath: this.#datapath ? { kind: 'xdp', failures: this.#plane?.reconciler.failures ?? 0 } : null,
      vrrp: (this.#runner?.instances ?? []).map((i) => vrrpInstanceStatus({ cfg: i.cfg, fsm: i.fsm, stats: i.stats() }, wall)),
      syncGroups: groups.map((g) => ({ name: g.name, state: this.#groups.get(g.name) ?? groupState(this.#runner, g.group), members: [...g.group] })),
      services: (this.#plane?.services ?? []).map((s) => this.#serviceStatus(s)),
      lastReload: this.#lastReload ? reloadSummary(this.#lastReload) : null,
    };
  }

  #serviceStatus(svc: ResolvedService): ServiceStatus {
    const plane = this.#plane!;
    const st = plane.reconciler.state.services.get(svc.id);
    const healthOf = (r: ResolvedReal) => plane.realHealth(r.id);
    const applied = svc.endpoints.map((e) => plane.reconciler.state.applied.get(`${e.protocol}:${e.address}:${e.port}`));
    const programmedWeight = (r: ResolvedReal): number => {
      const w = applied.map((a) => a?.reals.find((x) => x.address === r.address)?.weight).find((x) => x !== undefined);
      return w ?? 0;
    };
    const real = (r: ResolvedReal): RealStatus => {
      const h = healthOf(r);
      const alive = st?.alive.get(r.id) ?? true;
      return {
        name: r.name, address: r.address, port: r.port, method: r.method,
        health: (h ? h.up : alive) ? 'up' : 'down',
        configuredWeight: r.weight,
        weight: h?.weight ?? r.weight,
        checking: h ? h.enabled : false,
        checkers: (h?.checkers ?? []).map((c) => ({ kind: c.kind, target: c.target, up: c.up, hasRun: c.hasRun, reason: c.reason })),
      };
    };
    const liveWeight = svc.reals.reduce((sum, r) => sum + ((st?.alive.get(r.id) ?? true) ? (healthOf(r)?.weight ?? r.weight) : 0), 0);
    const quorumUp = st?.quorumUp ?? true;
    return {
      name: svc.name, pos: svc.pos, scheduler: svc.lbAlgo,
      persistence: svc.persistence ? { timeout: svc.persistence.timeout, granularity: svc.persistence.granularity ?? null } : null,
      quorum: { required: svc.quorum, hysteresis: svc.hysteresis, up: quorumUp, liveWeight },
      sorryActive: svc.sorry !== undefined && !quorumUp,
      reals: svc.reals.map(real),
      sorryServer: svc.sorry ? { ...real(svc.sorry), weight: programmedWeight(svc.sorry) } : null,
      endpoints: svc.endpoints.map((e, i) => ({
        address: e.address, port: e.port, protocol: e.protocol,
        reals: (applied[i]?.reals ?? []).map((r) => ({ address: r.address, port: r.port, method: r.method, weight: r.weight })),
      })),
    };
  }

  async stats(): Promise<StatsReport> {
    const services: EndpointStats[] = [];
    const plane = this.#plane;
    const driver = this.#datapath?.driver;
    if (plane && driver) {
      for (const [key, a] of plane.reconciler.state.applied) {
        let s;
        try {
          s = await driver.stats(key);
        } catch {
          continue; // being removed
        }
        const owner = plane.services.find((x) => x.id === a.owner);
        services.push({
          service: owner?.name ?? a.owner, address: a.service.address, port: a.service.port, protocol: a.service.protocol,
          counters: counters(s.service),
          reals: a.reals.map((r) => ({ address: r.address, port: r.port, counters: counters(s.reals.get(r.address) ?? { packets: 0n, bytes: 0n, conns: 0n }) })),
        });
      }
    }
    const global = this.#datapath?.forwarder.counters();
    return {
      at: Date.now(),
      services,
      vrrp: (this.#runner?.instances ?? []).map((i) => vrrpInstanceStats({ cfg: i.cfg, fsm: i.fsm, stats: i.stats() })),
      health: plane ? { ...plane.health.stats, events: { ...plane.health.stats.events } } : null,
      datapath: global ? Object.fromEntries(COUNTER_NAMES.map((n) => [n, Number(global[n])])) : {},
    };
  }

  async dump(): Promise<KeepalivedJsonDump> {
    if (!this.#runner) throw new ControlError('unsupported', 'no VRRP instance runs here (-C, or none configured): nothing to dump');
    const scripts = new Map((this.#config.vrrp.vrrp_script ?? []).map((s) => [s.name, s.script]));
    return this.#runner.instances.map((i) => keepalivedJsonInstance({ cfg: i.cfg, fsm: i.fsm, stats: i.stats(), scripts }, wall));
  }
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.pos.file}:${p.pos.line}:${p.pos.col}: ${p.severity}: ${p.message}`;
}

function groupState(runner: VrrpRunner | null, members: readonly string[]): NotifyState {
  const states = (runner?.instances ?? []).filter((i) => members.includes(i.name)).map((i) => i.fsm.state);
  if (states.includes('FAULT')) return 'FAULT';
  if (states.length > 0 && states.every((s) => s === 'MASTER')) return 'MASTER';
  return 'BACKUP';
}

/** 'added VI_2; changed VI_1' for the reload warning. */
function instanceChanges(before: readonly { name: string }[], after: readonly { name: string }[]): string {
  const b = new Map(before.map((i) => [i.name, JSON.stringify(withoutPositions(i))]));
  const a = new Map(after.map((i) => [i.name, JSON.stringify(withoutPositions(i))]));
  const parts: string[] = [];
  const added = [...a.keys()].filter((n) => !b.has(n));
  const removed = [...b.keys()].filter((n) => !a.has(n));
  const changed = [...a.keys()].filter((n) => b.has(n) && b.get(n) !== a.get(n));
  if (added.length) parts.push(`added ${added.join(', ')}`);
  if (removed.length) parts.push(`removed ${removed.join(', ')}`);
  if (changed.length) parts.push(`changed ${changed.join(', ')}`);
  return parts.join('; ');
}
