/**
 * `global_defs { ... }` and the process-wide keywords of keepalived.conf's top level, as
 * keepalived 2.2.7 accepts them (its global_parser.c and keepalived.conf(5)).
 *
 * What xlb does with each:
 *   - implemented, kept in GlobalDefs: router_id; the VRRP defaults vrrp_version,
 *     vrrp_garp_master_delay/_repeat/_refresh/_refresh_repeat, vrrp_min_garp (= repeat 1, no
 *     second burst), vrrp_check_unicast_src, vrrp_lower_prio_no_advert, vrrp_mcast_group4/6 (only
 *     the standard groups); script_user, enable_script_security; notify_fifo, vrrp_notify_fifo,
 *     lvs_notify_fifo; lvs_timeouts, lvs_flush; include_check (it changes how the includes that
 *     follow are read, as keepalived);
 *   - reported as errors (class unsupported): what would change who owns an address or what is
 *     forwarded and that xlb does not do (vrrp_strict, lvs_sync_daemon, net_namespace, ...);
 *   - reported as warnings (class ignored): the rest: e-mail and SNMP/D-Bus, process tuning
 *     (priorities, CPU affinity, buffers), firewall helpers for no_accept, reload helpers.
 * Every keyword keepalived accepts here is one of these; anything else is an unknown keyword.
 */
import type { SourcePos } from '../model/types.ts';
import type { ServiceGlobalDefs } from '../model/types.ts';
import type { VrrpGlobalDefs } from '../vrrp/config.ts';
import { INCLUDE, INCLUDE_ALL } from './lexer.ts';
import { block, flag, ignored, many, unsupported, value, type Args, type Table } from './schema.ts';

/** Everything global_defs sets that xlb uses: the VRRP defaults, the service settings, and router_id. */
export interface GlobalDefs extends VrrpGlobalDefs, Omit<ServiceGlobalDefs, 'pos'> {
  router_id?: string;
  /** where global_defs stands (the first one, if there are several) */
  pos?: SourcePos;
}

/** keepalived's LVS_MAX_TIMEOUT: 31 days */
const LVS_MAX_TIMEOUT = 86400 * 31;

const VRRP_GLOBAL_KEYS = [
  'vrrp_version', 'vrrp_garp_master_delay', 'vrrp_garp_master_repeat', 'vrrp_garp_master_refresh',
  'vrrp_garp_master_refresh_repeat', 'vrrp_check_unicast_src', 'vrrp_lower_prio_no_advert', 'notify_fifo',
  'vrrp_notify_fifo', 'script_user', 'enable_script_security',
] as const satisfies readonly (keyof VrrpGlobalDefs)[];

const SERVICE_GLOBAL_KEYS = [
  'notify_fifo', 'lvs_notify_fifo', 'script_user', 'enable_script_security', 'lvs_timeouts', 'lvs_flush',
] as const satisfies readonly (keyof ServiceGlobalDefs)[];

function pick<K extends keyof GlobalDefs>(g: GlobalDefs, keys: readonly K[]): Pick<GlobalDefs, K> {
  const out: Partial<GlobalDefs> = {};
  for (const k of keys) if (g[k] !== undefined) (out as Record<string, unknown>)[k] = g[k];
  return out as Pick<GlobalDefs, K>;
}

/** The VRRP part of global_defs (VrrpConfig.global_defs). */
export const vrrpGlobals = (g: GlobalDefs): VrrpGlobalDefs => pick(g, VRRP_GLOBAL_KEYS);

/** The services' part of global_defs (ServiceConfig.global_defs). */
export function serviceGlobals(g: GlobalDefs): ServiceGlobalDefs {
  const out: ServiceGlobalDefs = pick(g, SERVICE_GLOBAL_KEYS);
  if (g.pos) out.pos = g.pos;
  return out;
}

/** `FIFO [USER [GROUP]]`: the FIFO; the owner xlb does not set. */
function fifo(key: 'notify_fifo' | 'vrrp_notify_fifo' | 'lvs_notify_fifo') {
  return value<GlobalDefs>((g, a) => {
    const p = a.path(0);
    if (p !== undefined) g[key] = p;
    if (a.count > 1) a.report('ignored', `${a.name}: the FIFO's owner ('${a.rest(1)}') is not set by xlb: create the FIFO with the owner you want`, 1);
  }, [1, 3]);
}

function userGroup(key: 'script_user') {
  return value<GlobalDefs>((g, a) => {
    g[key] = a.rest(0);
  }, [1, 2]);
}

/** include_check [[+|-]readable|match|wildcard_match|brace_match ...] */
const INCLUDE_CHECKS: Record<string, number> = {
  readable: INCLUDE.READ,
  match: INCLUDE.READ | INCLUDE.MATCH,
  wildcard_match: INCLUDE.READ | INCLUDE.WILDCARD,
  brace_match: INCLUDE.READ | INCLUDE.BRACE,
};

function includeCheck(_g: GlobalDefs, a: Args): void {
  if (a.count === 0) {
    a.ctx.reader.setIncludeCheck(INCLUDE_ALL);
    return;
  }
  let flags = 0;
  let relative = false;
  for (let i = 0; i < a.count; i++) {
    const w = a.at(i)!;
    const sign = w[0] === '+' || w[0] === '-' ? w[0] : '';
    const bits = INCLUDE_CHECKS[sign ? w.slice(1) : w];
    if (bits === undefined) {
      a.error(`include_check: unknown check '${w}' (readable, match, wildcard_match, brace_match, each optionally after + or -)`, i);
      continue;
    }
    if (sign) {
      if (!relative) flags = a.ctx.reader.getIncludeCheck();
      relative = true;
    }
    flags = sign === '-' ? flags & ~bits : flags | bits;
  }
  a.ctx.reader.setIncludeCheck(flags);
}

function lvsTimeouts(g: GlobalDefs, a: Args): void {
  const t: NonNullable<GlobalDefs['lvs_timeouts']> = {};
  for (let i = 0; i < a.count; i += 2) {
    const k = a.choice(i, ['tcp', 'tcpfin', 'udp'] as const);
    if (k === undefined) return;
    const v = a.int(i + 1, 1, LVS_MAX_TIMEOUT);
    if (v !== undefined) t[k] = v;
  }
  g.lvs_timeouts = { ...g.lvs_timeouts, ...t };
}

/** vrrp_mcast_group4/6: only the standard group, which is what xlb sends to. */
function mcastGroup(standard: string, family: 4 | 6) {
  return value<GlobalDefs>((_g, a) => {
    const v = a.address(0, family);
    if (v !== undefined && v !== standard) a.report('unsupported', `${a.name} ${v}: xlb sends adverts to the standard group ${standard} only`, 0);
  });
}

const EMAIL = 'xlb sends no e-mail; use notify scripts or the notify FIFO';
const TUNING = 'process scheduling and memory tuning of keepalived\'s processes';
const SNMP = 'xlb has no SNMP or D-Bus interface; its control API and /metrics give the state';
const FIREWALL = 'xlb adds no firewall rules (keepalived uses them for no_accept and VMACs, which xlb does not implement)';
const RELOAD = 'keepalived\'s reload and process management helpers';
const BUFS = 'netlink socket buffer sizes';

export const globalDefsKeywords: Table<GlobalDefs> = {
  router_id: value((g, a) => { g.router_id = a.string(0); }),
  vrrp_version: value((g, a) => {
    const v = a.int(0, 2, 3);
    if (v !== undefined) g.vrrp_version = v as 2 | 3;
  }),
  vrrp_garp_master_delay: value((g, a) => { g.vrrp_garp_master_delay = a.int(0, 0, 86400) ?? g.vrrp_garp_master_delay; }),
  vrrp_garp_master_repeat: value((g, a) => { g.vrrp_garp_master_repeat = a.int(0, 1, 255) ?? g.vrrp_garp_master_repeat; }),
  vrrp_garp_master_refresh: value((g, a) => { g.vrrp_garp_master_refresh = a.int(0, 0, 86400) ?? g.vrrp_garp_master_refresh; }),
  vrrp_garp_master_refresh_repeat: value((g, a) => { g.vrrp_garp_master_refresh_repeat = a.int(0, 1, 255) ?? g.vrrp_garp_master_refresh_repeat; }),
  vrrp_min_garp: flag((g, v) => {
    if (v) {
      g.vrrp_garp_master_repeat = 1;
      g.vrrp_garp_master_delay = 0;
    }
  }),
  vrrp_check_unicast_src: flag((g, v) => { g.vrrp_check_unicast_src = v; }),
  vrrp_lower_prio_no_advert: flag((g, v) => { g.vrrp_lower_prio_no_advert = v; }),
  vrrp_mcast_group4: mcastGroup('224.0.0.18', 4),
  vrrp_mcast_group6: mcastGroup('ff02::12', 6),
  script_user: userGroup('script_user'),
  enable_script_security: flag((g, v) => { g.enable_script_security = v; }),
  notify_fifo: fifo('notify_fifo'),
  vrrp_notify_fifo: fifo('vrrp_notify_fifo'),
  lvs_notify_fifo: fifo('lvs_notify_fifo'),
  lvs_timeouts: value(lvsTimeouts, [2, 6]),
  lvs_flush: flag((g, v) => { g.lvs_flush = v; }),
  include_check: value(includeCheck, [0]),

  vrrp_strict: unsupported('strict RFC mode (no unicast, no authentication, firewall rules for no_accept) is not implemented'),
  lvs_sync_daemon: unsupported('IPVS connection synchronisation between nodes is not implemented'),
  vrrp_skip_check_adv_addr: ignored('xlb counts adverts whose address list differs from its own and accepts them'),
  vrrp_garp_lower_prio_delay: ignored('no gratuitous ARP burst is sent after a lower-priority advert'),
  vrrp_garp_lower_prio_repeat: ignored('no gratuitous ARP burst is sent after a lower-priority advert'),
  vrrp_garp_interval: ignored('gratuitous ARPs of a burst are sent back to back'),
  vrrp_gna_interval: ignored('unsolicited neighbour advertisements of a burst are sent back to back'),
  vrrp_garp_extra_if: ignored('gratuitous ARPs are sent on the instance\'s interfaces only'),
  vrrp_higher_prio_send_advert: ignored('a master hearing a higher priority steps down without a last advert'),
  vrrp_down_timer_adverts: ignored('the master-down interval is RFC 5798\'s (3 adverts plus skew)'),
  vrrp_startup_delay: ignored('instances start at once'),
  vrrp_notify_priority_changes: ignored('priority changes are not written to the notify FIFO'),
  fifo_write_vrrp_states_on_reload: ignored('states are not rewritten to the FIFOs on reload'),
  max_auto_priority: ignored(TUNING),
  min_auto_priority_delay: ignored(TUNING),
  dynamic_interfaces: ignored('the interfaces named in the configuration must exist when xlb starts'),
  default_interface: ignored('static addresses are not implemented'),
  log_unknown_vrids: ignored('adverts for unknown VRIDs are counted, not logged'),
  disable_local_igmp: ignored('xlb creates no VMAC interfaces'),
  vmac_prefix: ignored('xlb creates no VMAC interfaces'),
  vmac_addr_prefix: ignored('xlb creates no VMAC interfaces'),
  rs_init_notifies: ignored('real servers that start up are not notified'),
  ...many(['notification_email_from', 'smtp_server', 'smtp_helo_name', 'smtp_connect_timeout', 'smtp_alert', 'smtp_alert_vrrp',
    'smtp_alert_checker', 'no_email_faults', 'no_checker_emails'], ignored(EMAIL)),
  notification_email: ignored(EMAIL),
  checker_log_all_failures: ignored('checker failures are counted and logged on state changes only'),
  ...many(['enable_traps', 'enable_snmp_vrrp', 'enable_snmp_checker', 'enable_snmp_rfc', 'enable_snmp_rfcv2', 'enable_snmp_rfcv3',
    'snmp_socket', 'enable_dbus', 'dbus_service_name'], ignored(SNMP)),
  ...many(['vrrp_priority', 'checker_priority', 'bfd_priority', 'vrrp_no_swap', 'checker_no_swap', 'bfd_no_swap', 'vrrp_rt_priority',
    'checker_rt_priority', 'bfd_rt_priority', 'vrrp_rlimit_rttime', 'checker_rlimit_rttime', 'bfd_rlimit_rttime', 'vrrp_cpu_affinity',
    'checker_cpu_affinity', 'bfd_cpu_affinity', 'process_names', 'process_name', 'vrrp_process_name', 'checker_process_name',
    'bfd_process_name', 'umask', 'random_seed', 'tmp_config_directory', 'config_save_dir', 'data_use_instance'], ignored(TUNING)),
  ...many(['vrrp_iptables', 'nftables', 'nftables_priority', 'nftables_counters', 'nftables_ifindex', 'nftables_ipvs',
    'nftables_ipvs_priority', 'nftables_ipvs_start_fwmark'], ignored(FIREWALL)),
  ...many(['vrrp_netlink_cmd_rcv_bufs', 'vrrp_netlink_cmd_rcv_bufs_force', 'vrrp_netlink_monitor_rcv_bufs',
    'vrrp_netlink_monitor_rcv_bufs_force', 'lvs_netlink_cmd_rcv_bufs', 'lvs_netlink_cmd_rcv_bufs_force', 'lvs_netlink_monitor_rcv_bufs',
    'lvs_netlink_monitor_rcv_bufs_force', 'process_monitor_rcv_bufs', 'process_monitor_rcv_bufs_force', 'vrrp_rx_bufs_policy',
    'vrrp_rx_bufs_multiplier'], ignored(BUFS)),
  ...many(['reload_check_config', 'reload_time_file', 'reload_repeat', 'reload_file', 'startup_script', 'startup_script_timeout',
    'shutdown_script', 'shutdown_script_timeout'], ignored(RELOAD)),
  ...many(['notify_fifo_script', 'vrrp_notify_fifo_script', 'lvs_notify_fifo_script'],
    unsupported('xlb does not start a FIFO reader script: run the reader yourself on the FIFO')),
  lvs_flush_on_stop: ignored('at stop xlb removes its own services one by one'),
  lvs_flush_onstop: ignored('at stop xlb removes its own services one by one'),
  vrrp_vmac_garp_intvl: ignored('xlb creates no VMAC interfaces'),
  enable_snmp_keepalived: ignored(SNMP),
  ...many(['vrrp_rlimit_rtime', 'checker_rlimit_rtime', 'bfd_rlimit_rtime', 'lvs_process_name'], ignored(TUNING)),
};

/** The global_defs block, as a top-level keyword. */
export const globalDefsBlock = block<{ global: GlobalDefs }, GlobalDefs>(globalDefsKeywords, (root, a) => {
  root.global.pos ??= a.pos;
  return root.global;
});

/** Top-level keywords of keepalived's global part (outside global_defs) that xlb does not implement. */
export const globalRootKeywords: Table<unknown> = {
  net_namespace: unsupported('run xlb inside the namespace (nsenter --net=...) instead'),
  net_namespace_ipvs: unsupported('the services live in xlb\'s own namespace'),
  namespace_with_ipsets: ignored(FIREWALL),
  instance: ignored(RELOAD),
  use_pid_dir: ignored(RELOAD),
  child_wait_time: ignored(RELOAD),
  linkbeat_use_polling: ignored('link state comes from netlink events'),
  linkbeat_interfaces: ignored('link state comes from netlink events'),
  static_ipaddress: unsupported('static addresses are not managed by xlb: configure them with the system\'s network configuration'),
  static_routes: unsupported('static routes are not managed by xlb: configure them with the system\'s network configuration'),
  static_rules: unsupported('static rules are not managed by xlb: configure them with the system\'s network configuration'),
  track_group: unsupported('static track groups go with static addresses, which xlb does not manage'),
  bfd_instance: unsupported('BFD is not implemented'),
  vrrp_track_process: unsupported('process tracking is not implemented: use a vrrp_script that checks the process'),
  interface_up_down_delays: ignored('an interface going down moves its instances at once'),
  SSL: unsupported('client certificates for SSL_GET checkers are not implemented'),
  garp_group: ignored('gratuitous ARP pacing per interface is not implemented'),
};
