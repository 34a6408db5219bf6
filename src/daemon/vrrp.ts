/**
 * The daemon's VRRP side: the instances of the configuration run as units, one VrrpRunner
 * (src/vrrp/runner.ts) per unit, so that a reload can leave alone what did not change.
 *
 * A unit is a sync group with its member instances, or an instance in no group. Its
 * configuration is the file's VRRP part narrowed to those instances (global_defs, every
 * vrrp_script and vrrp_track_file: the runner keeps only the ones its instances track), and its
 * signature that configuration as JSON.
 *
 *   start(config)   every unit's runner, one after the other
 *   reload(config)  units whose signature is unchanged keep running untouched (no state change,
 *                   no advert missed); removed units are stopped (priority 0 from a master,
 *                   addresses removed); changed units are stopped and started again from the new
 *                   configuration (they go through BACKUP again: keepalived keeps a changed
 *                   instance's state across a reload, xlb does not yet); new units are started.
 *                   A unit that fails to start is reported and the others go on.
 *   stop()          every unit, at once
 *
 * Each runner opens its own sockets: an advert for another unit's VRID reaches every unit's
 * socket on that interface and counts as `unknownVrid` in the others' statistics.
 */
import type { Logger } from 'pino';
import type { LinkSource } from '../vrrp/runner.ts';
import { VrrpRunner } from '../vrrp/runner.ts';
import type { VrrpConfig } from '../vrrp/config.ts';
import type { VrrpInstance } from '../vrrp/instance.ts';
import { spinningClock, systemClock } from '../util/clock.ts';

interface Unit {
  key: string;
  signature: string;
  config: VrrpConfig;
  runner: VrrpRunner;
}

export interface VrrpChanges {
  added: string[];
  removed: string[];
  changed: string[];
}

/** The units of a configuration, by key ('group NAME' or 'instance NAME'). */
export function vrrpUnits(c: VrrpConfig): Map<string, { config: VrrpConfig; signature: string; instances: string[] }> {
  const out = new Map<string, { config: VrrpConfig; signature: string; instances: string[] }>();
  const grouped = new Set<string>();
  const make = (instances: string[], groups: NonNullable<VrrpConfig['vrrp_sync_group']>) => {
    const config: VrrpConfig = {
      ...(c.global_defs ? { global_defs: c.global_defs } : {}),
      ...(c.vrrp_script ? { vrrp_script: c.vrrp_script } : {}),
      ...(c.vrrp_track_file ? { vrrp_track_file: c.vrrp_track_file } : {}),
      vrrp_instance: c.vrrp_instance.filter((i) => instances.includes(i.name)),
      ...(groups.length ? { vrrp_sync_group: groups } : {}),
    };
    return { config, signature: JSON.stringify(config), instances };
  };
  for (const g of c.vrrp_sync_group ?? []) {
    for (const m of g.group) grouped.add(m);
    out.set(`group ${g.name}`, make(g.group, [g]));
  }
  for (const i of c.vrrp_instance) if (!grouped.has(i.name)) out.set(`instance ${i.name}`, make([i.name], []));
  return out;
}

export class VrrpUnits {
  readonly #units = new Map<string, Unit>();
  /** the last state of each sync group */
  readonly groups = new Map<string, 'MASTER' | 'BACKUP' | 'FAULT' | 'STOP'>();

  constructor(
    private readonly links: LinkSource,
    private readonly log: Logger,
    /** an instance changed state (the daemon recomputes the VIPs it owns) */
    private readonly onState: () => void,
  ) {}

  /** Every instance of every unit. */
  get instances(): VrrpInstance[] {
    return [...this.#units.values()].flatMap((u) => u.runner.instances);
  }

  get runners(): VrrpRunner[] {
    return [...this.#units.values()].map((u) => u.runner);
  }

  async start(c: VrrpConfig): Promise<void> {
    for (const [key, u] of vrrpUnits(c)) await this.#startUnit(key, u.config, u.signature);
  }

  async reload(c: VrrpConfig): Promise<VrrpChanges & { failed: string[] }> {
    const next = vrrpUnits(c);
    const changes: VrrpChanges & { failed: string[] } = { added: [], removed: [], changed: [], failed: [] };
    const names = (key: string, u?: { instances: string[] }) => u?.instances ?? this.#units.get(key)?.config.vrrp_instance.map((i) => i.name) ?? [];
    for (const [key, unit] of this.#units) {
      const n = next.get(key);
      if (n?.signature === unit.signature) continue;
      (n ? changes.changed : changes.removed).push(...names(key));
      await this.#stopUnit(key);
    }
    for (const [key, u] of next) {
      if (this.#units.has(key)) continue;
      if (!changes.changed.some((n) => u.instances.includes(n))) changes.added.push(...u.instances);
      try {
        await this.#startUnit(key, u.config, u.signature);
      } catch (e) {
        changes.failed.push(`${key}: ${(e as Error).message}`);
        this.log.error({ unit: key }, `VRRP ${key} could not start: ${(e as Error).message}`);
      }
    }
    return changes;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#units.keys()].map((k) => this.#stopUnit(k)));
  }

  async #startUnit(key: string, config: VrrpConfig, signature: string): Promise<void> {
    const runner = new VrrpRunner(config, systemClock, spinningClock(), this.links);
    runner.on('state', (s) => {
      this.log.info({ instance: s.instance, state: s.state, priority: s.priority }, `(${s.instance}) entering ${s.state} state`);
      this.onState();
    });
    runner.on('group', (g) => {
      this.groups.set(g.group, g.state);
      this.log.info({ group: g.group, state: g.state }, `sync group ${g.group} entering ${g.state} state`);
    });
    runner.on('log', (level, message) => this.log[level](message));
    await runner.start();
    this.#units.set(key, { key, signature, config, runner });
  }

  async #stopUnit(key: string): Promise<void> {
    const u = this.#units.get(key);
    if (!u) return;
    this.#units.delete(key);
    try {
      await u.runner.stop();
    } catch (e) {
      this.log.error({ unit: key }, `VRRP ${key} stop failed: ${(e as Error).message}`);
    }
  }
}
