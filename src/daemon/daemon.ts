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
 *   - VRRP (./vrrp.ts): the instances run in units (a sync group, or an instance alone); a unit
 *     whose configuration is unchanged is not touched (no state change), removed units stop,
 *     new ones start, changed ones are stopped and started again (they go through BACKUP: unlike
 *     keepalived, xlb does not carry a changed instance's state over). The interfaces the
 *     forwarder is attached to do not change.
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
import type { NotifyState } from '../vrrp/fsm.ts';
import type { VrrpInstance } from '../vrrp/instance.ts';
import { loadDaemonConfig, readConfigFile, type ConfigProblem, type ConfigReader, type DaemonConfig } from './config.ts';
import {
  ControlError, DEFAULT_INSTANCE, reloadProblem, reloadSummary, type Counters, type DaemonControl, type EndpointStats,
  type KeepalivedJsonDump, type RealStatus, type ReloadResult, type ServiceStatus, type StatsReport, type StatusReport,
} from './control.ts';
import { Datapath, type XdpMode } from './datapath.ts';
import { ServicePlane } from './services.ts';
import { VrrpUnits } from './vrrp.ts';
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
  #vrrp: VrrpUnits | null = null;
  #links: LinkWatcher | null = null;
  #datapath: Datapath | null = null;
  #plane: ServicePlane | null = null;
  #lastReload: ReloadResult | null = null;
  #reloading = false;
  #stopping: Promise<void> | null = null;
  readonly #log: Logger;

  private constructor(private readonly opts: DaemonOptions, config: DaemonConfig) {
    this.instance = opts.instance ?? DEFAULT_INSTANCE;
    this.#config = config;
    this.#log = opts.log;
  }

  get runsVrrp(): boolean {
    return this.opts.vrrp !== false;
  }

  get runsServices(): boolean {
    return this.opts.services !== false;
  }

  /** The running VRRP instances (none with -C). */
  get instances(): VrrpInstance[] {
    return this.#vrrp?.instances ?? [];
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
    if (!this.runsVrrp) return;
    this.#links = await LinkWatcher.open();
    this.#vrrp = new VrrpUnits(this.#links, this.#log.child({ component: 'vrrp' }), () => void this.#plane?.setOwned(this.#owned()));
    await this.#vrrp.start(this.#config.vrrp);
  }

  /** The VIPs of the instances that are MASTER. */
  #owned(): Ownership {
    const owned = new Set<string>();
    for (const i of this.instances) {
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
      if (this.#plane && this.#datapath) {
        await this.#datapath.configure(config.services.global_defs);
        const c = await this.#plane.apply(loaded.services ?? [], config.services.global_defs);
        result.changes.servicesAdded = c.added;
        result.changes.servicesRemoved = c.removed;
        result.changes.servicesChanged = c.changed;
      }
      if (this.#vrrp) {
        const v = await this.#vrrp.reload(config.vrrp);
        result.changes.instancesAdded = v.added;
        result.changes.instancesRemoved = v.removed;
        result.changes.instancesChanged = v.changed;
        for (const f of v.failed) result.problems.push({ severity: 'error', pos: { file, line: 1, col: 1 }, message: `VRRP ${f}` });
        void this.#plane?.setOwned(this.#owned());
      }
      this.#config = config;
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
    await this.#vrrp?.stop();
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
      vrrp: this.instances.map((i) => vrrpInstanceStatus({ cfg: i.cfg, fsm: i.fsm, stats: i.stats() }, wall)),
      syncGroups: groups.map((g) => ({ name: g.name, state: this.#vrrp?.groups.get(g.name) ?? groupState(this.instances, g.group), members: [...g.group] })),
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
      vrrp: this.instances.map((i) => vrrpInstanceStats({ cfg: i.cfg, fsm: i.fsm, stats: i.stats() })),
      health: plane ? { ...plane.health.stats, events: { ...plane.health.stats.events } } : null,
      datapath: global ? Object.fromEntries(COUNTER_NAMES.map((n) => [n, Number(global[n])])) : {},
    };
  }

  async dump(): Promise<KeepalivedJsonDump> {
    if (this.instances.length === 0) throw new ControlError('unsupported', 'no VRRP instance runs here (-C, or none configured): nothing to dump');
    const scripts = new Map((this.#config.vrrp.vrrp_script ?? []).map((s) => [s.name, s.script]));
    return this.instances.map((i) => keepalivedJsonInstance({ cfg: i.cfg, fsm: i.fsm, stats: i.stats(), scripts }, wall));
  }
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.pos.file}:${p.pos.line}:${p.pos.col}: ${p.severity}: ${p.message}`;
}

function groupState(instances: readonly VrrpInstance[], members: readonly string[]): NotifyState {
  const states = instances.filter((i) => members.includes(i.name)).map((i) => i.fsm.state);
  if (states.includes('FAULT')) return 'FAULT';
  if (states.length > 0 && states.every((s) => s === 'MASTER')) return 'MASTER';
  return 'BACKUP';
}
