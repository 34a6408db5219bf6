/**
 * The VRRP parts of the control reports (./control.ts), built from what a running instance
 * (src/vrrp/instance.ts's VrrpInstance: its resolved config, its state machine's state and its
 * counters) holds: the status entry, the stats entry, and keepalived's JSON dump entry. Pure: the
 * daemon passes the instance's facts and how to turn its monotonic clock into wall-clock time.
 *
 * keepalived's JSON dump (vrrp_json.c) is followed field by field; where xlb has no such setting
 * the value is the one keepalived has when the keyword is not written:
 *   - dont_track_primary, skip_check_adv_addr, strict_mode, higher_prio_send_advert,
 *     promote_secondaries, smtp_alert, notify_deleted: 0 / false (xlb has none of them);
 *   - garp_lower_prio_delay / garp_lower_prio_rep: keepalived's defaults are the master ones
 *     (garp_delay, garp_rep); xlb sends no lower-priority GARPs, so they are reported as those;
 *   - wantstate: the state the instance wants, which differs from `state` only for a sync-group
 *     member waiting for its group (MASTER wanted, BACKUP held);
 *   - master_priority: the priority of the master last heard (BACKUP), our own while MASTER, else 0;
 *   - vipset: the addresses are set (MASTER);
 *   - auth_type / auth_data: v2 authentication as configured (auth_data only with PASS);
 *   - vmac_ifname: absent (xlb makes no VMAC interfaces); accept: absent (no firewall build).
 * The rejected-advert counters map onto keepalived's: length -> packet_len_err, ttl -> ip_ttl_err,
 * interval -> advert_interval_err, type and version -> invalid_type_rcvd, auth_type ->
 * invalid_authtype, auth_mismatch -> authtype_mismatch, auth_password -> auth_failure; addr_list_err
 * counts adverts whose address list differs (xlb accepts them, RFC 5798 7.1; keepalived drops).
 */
import type { GarpConfig } from '../vrrp/fsm.ts';
import { GARP_DEFAULTS, type FsmState } from '../vrrp/fsm.ts';
import type { ResolvedAddress, ResolvedInstance, ResolvedRoute, ResolvedRule } from '../vrrp/config.ts';
import type { InstanceStats } from '../vrrp/instance.ts';
import {
  KEEPALIVED_STATE_CODES, type KeepalivedJsonData, type KeepalivedJsonInstance, type KeepalivedJsonStats,
  type VrrpInstanceStats, type VrrpInstanceStatus,
} from './control.ts';

/** What the reports need of one running instance (a VrrpInstance has all of it). */
export interface InstanceFacts {
  cfg: ResolvedInstance;
  fsm: FsmState;
  stats: InstanceStats;
  /** vrrp_script commands by name (ResolvedConfig.scripts), for track_script; absent: the names */
  scripts?: ReadonlyMap<string, string>;
}

/** From the instance clock's monotonic milliseconds to milliseconds since the epoch. */
export type WallClock = (monotonicMs: number) => number;

/** keepalived's form of an address (format_ipaddress): 'ADDR/LEN [brd B] dev IF scope S [label L]'. */
export function formatVip(a: ResolvedAddress): string {
  return `${a.address}/${a.prefixLength}${a.brd ? ` brd ${a.brd}` : ''} dev ${a.dev} scope ${a.scope}${a.label ? ` label ${a.label}` : ''}`;
}

/** A virtual route in `ip route`'s words. */
export function formatRoute(r: ResolvedRoute): string {
  const parts = [r.type && r.type !== 'unicast' ? `${r.type} ${r.dst}` : r.dst];
  if (r.via) parts.push(`via ${r.via}`);
  if (r.src) parts.push(`src ${r.src}`);
  if (r.dev) parts.push(`dev ${r.dev}`);
  if (r.scope) parts.push(`scope ${r.scope}`);
  if (r.table !== undefined) parts.push(`table ${r.table}`);
  if (r.metric !== undefined) parts.push(`metric ${r.metric}`);
  return parts.join(' ');
}

/** A virtual rule in `ip rule`'s words. */
export function formatRule(r: ResolvedRule): string {
  const parts: string[] = [];
  if (r.not) parts.push('not');
  parts.push(`from ${r.from ?? 'all'}`);
  if (r.to) parts.push(`to ${r.to}`);
  if (r.fwmark !== undefined) parts.push(`fwmark 0x${r.fwmark.toString(16)}${r.fwmask !== undefined ? `/0x${r.fwmask.toString(16)}` : ''}`);
  if (r.iif) parts.push(`iif ${r.iif}`);
  if (r.oif) parts.push(`oif ${r.oif}`);
  if (r.priority !== undefined) parts.push(`priority ${r.priority}`);
  parts.push(r.action ?? `lookup ${r.table ?? 'main'}`);
  return parts.join(' ');
}

const iso = (wall: WallClock, mono: number | undefined): string | null => (mono === undefined ? null : new Date(wall(mono)).toISOString());

export function vrrpInstanceStatus(f: InstanceFacts, wall: WallClock): VrrpInstanceStatus {
  const { cfg, fsm } = f;
  return {
    name: cfg.name,
    interface: cfg.interface,
    vrid: cfg.vrid,
    family: cfg.family === 4 ? 'inet' : 'inet6',
    version: cfg.version,
    state: fsm.state,
    priority: cfg.priority,
    effectivePriority: fsm.effectivePriority,
    advertIntervalMs: cfg.advertIntervalMs,
    master: fsm.state === 'BACKUP' && fsm.master ? { address: fsm.master.address, priority: fsm.master.priority } : null,
    fault: fsm.state === 'FAULT' ? (fsm.fault ?? (fsm.groupFault ? 'sync group in FAULT' : null)) : null,
    vips: cfg.vips.map(formatVip),
    excludedVips: cfg.excluded.map(formatVip),
    syncGroup: cfg.fsm.syncGroup ?? null,
    lastTransition: iso(wall, fsm.lastTransition),
    transitions: fsm.stats.transitions,
  };
}

export function vrrpInstanceStats(f: InstanceFacts): VrrpInstanceStats {
  const s = f.stats;
  return {
    name: f.cfg.name,
    state: s.state,
    advertsReceived: s.advertsReceived,
    advertsSent: s.advertsSent,
    becameMaster: s.becameMaster,
    releasedMaster: s.releasedMaster,
    priorityZeroSent: s.priorityZeroSent,
    priorityZeroReceived: s.priorityZeroReceived,
    transitions: s.transitions,
    byTransition: { ...s.byTransition },
    rejected: { ...s.rejected },
    garpsSent: s.garpsSent,
    sendErrors: s.sendErrors,
  };
}

/** keepalived's JSON dump entry of one instance (vrrp_json.c's data and stats objects). */
export function keepalivedJsonInstance(f: InstanceFacts, wall: WallClock): KeepalivedJsonInstance {
  const { cfg, fsm, stats } = f;
  const garp: GarpConfig = { ...GARP_DEFAULTS, ...cfg.fsm.garp };
  const master = fsm.state === 'MASTER';
  const data: KeepalivedJsonData = {
    iname: cfg.name,
    dont_track_primary: 0,
    skip_check_adv_addr: 0,
    strict_mode: 0,
    ifp_ifname: cfg.interface,
    master_priority: master ? fsm.effectivePriority : fsm.state === 'BACKUP' ? (fsm.master?.priority ?? 0) : 0,
    last_transition: fsm.lastTransition === undefined ? 0 : Math.round(wall(fsm.lastTransition) * 1000) / 1e6,
    garp_delay: garp.masterDelayMs / 1000,
    garp_refresh: Math.floor(garp.refreshMs / 1000),
    garp_rep: garp.masterRepeat,
    garp_refresh_rep: garp.refreshRepeat,
    garp_lower_prio_delay: Math.floor(garp.masterDelayMs / 1000),
    garp_lower_prio_rep: garp.masterRepeat,
    lower_prio_no_advert: cfg.fsm.lowerPrioNoAdvert ? 1 : 0,
    higher_prio_send_advert: 0,
    vrid: cfg.vrid,
    base_priority: fsm.basePriority,
    effective_priority: fsm.effectivePriority,
    vipset: master,
    promote_secondaries: false,
    adver_int: cfg.advertIntervalMs / 1000,
    master_adver_int: fsm.masterAdverIntMs / 1000,
    nopreempt: cfg.fsm.preempt === false,
    preempt_delay: Math.floor((cfg.fsm.preemptDelayMs ?? 0) / 1000),
    state: KEEPALIVED_STATE_CODES[fsm.state],
    wantstate: KEEPALIVED_STATE_CODES[fsm.wantMaster ? 'MASTER' : fsm.state],
    version: cfg.version,
    smtp_alert: false,
    notify_deleted: false,
  };
  const n = cfg.notify;
  if (n.notify_backup) data.script_backup = n.notify_backup;
  if (n.notify_master) data.script_master = n.notify_master;
  if (n.notify_fault) data.script_fault = n.notify_fault;
  if (n.notify_stop) data.script_stop = n.notify_stop;
  if (n.notify) data.script = n.notify;
  if (n.notify_master_rx_lower_pri) data.script_master_rx_lower_pri = n.notify_master_rx_lower_pri;
  if (cfg.vips.length) data.vips = cfg.vips.map(formatVip);
  if (cfg.excluded.length) data.evips = cfg.excluded.map(formatVip);
  if (cfg.routes.length) data.vroutes = cfg.routes.map(formatRoute);
  if (cfg.rules.length) data.vrules = cfg.rules.map(formatRule);
  // the instance's own interface is tracked implicitly (keepalived lists only track_interface)
  const tracked = cfg.trackInterfaces.filter((t, i) => !(i === 0 && t.name === cfg.interface && t.weight === 0));
  if (tracked.length) data.track_ifp = tracked.map((t) => t.name);
  if (cfg.trackScripts.length) data.track_script = cfg.trackScripts.map((t) => f.scripts?.get(t.name) ?? t.name);
  if (cfg.version === 2) {
    data.auth_type = cfg.view.authType ?? 0;
    if (cfg.view.authType === 1 && cfg.view.authPassword !== undefined) data.auth_data = cfg.view.authPassword;
  }

  const r = stats.rejected;
  const out: KeepalivedJsonStats = {
    advert_rcvd: stats.advertsReceived,
    advert_sent: stats.advertsSent,
    become_master: stats.becameMaster,
    release_master: stats.releasedMaster,
    packet_len_err: r.length,
    advert_interval_err: r.interval,
    ip_ttl_err: r.ttl,
    invalid_type_rcvd: r.type + r.version,
    addr_list_err: stats.vipMismatch,
    invalid_authtype: r.auth_type,
    authtype_mismatch: r.auth_mismatch,
    auth_failure: r.auth_password,
    pri_zero_rcvd: stats.priorityZeroReceived,
    pri_zero_sent: stats.priorityZeroSent,
  };
  return { data, stats: out };
}
