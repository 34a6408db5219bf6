/**
 * The typed configuration of VRRP instances and sync groups: plain data in keepalived's own
 * vocabulary (the keys are keepalived.conf's keywords, times in seconds as keepalived writes
 * them), which issue 5's keepalived.conf parser produces and scripts/lab/vrrp-node.ts reads as
 * JSON. `resolveConfig` checks it once and turns it into what the state machine (fsm.ts), the
 * codec (packet.ts) and the instance glue (instance.ts) take; every error names the instance
 * and the keyword.
 *
 *   vrrp_instance VI_1 {                       { name: 'VI_1',
 *     interface eth0                             interface: 'eth0',
 *     virtual_router_id 51                       virtual_router_id: 51,
 *     priority 150                               priority: 150,
 *     advert_int 1                               advert_int: 1,
 *     version 3                                  version: 3,
 *     authentication { auth_type PASS            authentication: { auth_type: 'PASS', auth_pass: 's3cret' },
 *                      auth_pass s3cret }
 *     virtual_ipaddress {                        virtual_ipaddress: [
 *       198.18.0.100/24 dev eth0 label eth0:v      { address: '198.18.0.100/24', dev: 'eth0', label: 'eth0:v' } ],
 *     } }                                      }
 *
 * Defaults are keepalived 2.2.7's: priority 100, advert_int 1, version 2 (global vrrp_version),
 * state BACKUP, preemption on, garp_master_delay 5, garp_master_repeat 5, garp_master_refresh 0
 * (none), garp_master_refresh_repeat 1; a virtual address without /LEN is /32 or /128, on the
 * instance's interface, scope global. IPv6 virtual addresses are added without duplicate address
 * detection (keepalived adds them `nodad`).
 *
 * Tracking: vrrp_script (script, interval 1, timeout = interval, weight 0 [reverse], rise 1,
 * fall 1, user, init_fail) and vrrp_track_file (file, weight 1 [reverse]) are defined at the top
 * level and named by an instance's track_script / track_file (`{ name, weight?, reverse? }`: a
 * weight there replaces the definition's, as keepalived's `track_script { chk weight -20 }`);
 * only the scripts and files some instance tracks are kept (keepalived does not run the others).
 *
 * What is checked here (and not again later): names, ranges, one address family per instance
 * (IPv6 needs version 3; the other family's addresses belong in virtual_ipaddress_excluded, which
 * is added and removed with the others but not advertised), the v2 interval in whole seconds and
 * the v3 one in centiseconds, PASS passwords of at most 8 bytes, unicast peers of the instance's
 * family, sync group members that exist and belong to one group. Not supported, and refused with
 * an error rather than ignored: auth_type AH.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Family } from '../datapath/xdp/net.ts';
import { GARP_DEFAULTS, PRIORITY_OWNER, type FsmConfig, type GarpConfig } from './fsm.ts';
import { AUTH, wireInterval, type InstanceView, type VrrpVersion } from './packet.ts';
import type { SyncGroupConfig } from './sync.ts';

export type ScopeName = 'global' | 'site' | 'link' | 'host' | 'nowhere';

/** One entry of virtual_ipaddress: `ADDRESS[/LEN] [brd B] [dev D] [scope S] [label L]`. */
export interface VirtualIpaddress {
  /** 'ADDRESS' or 'ADDRESS/LEN' */
  address: string;
  brd?: string;
  /** default: the instance's interface */
  dev?: string;
  /** default global */
  scope?: ScopeName;
  /** IPv4 only */
  label?: string;
}

/** One entry of virtual_routes: `[src S] [to] DST via GW dev D [scope S] [table T] [metric M] [TYPE]`. */
export interface VirtualRoute {
  /** 'ADDRESS/LEN' or 'default' */
  to: string;
  src?: string;
  via?: string;
  dev?: string;
  scope?: ScopeName;
  table?: number;
  metric?: number;
  type?: 'unicast' | 'blackhole' | 'unreachable' | 'prohibit' | 'local' | 'throw';
}

/** One entry of virtual_rules: `[from P] [to P] [fwmark M[/MASK]] [iif D] [oif D] [priority N] table T | ACTION`. */
export interface VirtualRule {
  from?: string;
  to?: string;
  table?: number;
  priority?: number;
  fwmark?: number;
  fwmask?: number;
  iif?: string;
  oif?: string;
  not?: boolean;
  action?: 'blackhole' | 'unreachable' | 'prohibit';
}

export interface VrrpInstanceConfig {
  name: string;
  interface: string;
  virtual_router_id: number;
  /** 1..255 (255: the address owner); default 100 */
  priority?: number;
  /** seconds: v2 whole seconds 1..255, v3 0.01..40.95; default 1 */
  advert_int?: number;
  /** default 2 */
  version?: VrrpVersion;
  /** default BACKUP */
  state?: 'MASTER' | 'BACKUP';
  nopreempt?: boolean;
  /** seconds; default 0 */
  preempt_delay?: number;
  lower_prio_no_advert?: boolean;
  /** v2 only */
  authentication?: { auth_type: 'PASS' | 'AH'; auth_pass: string };
  unicast_src_ip?: string;
  unicast_peer?: string[];
  /** keepalived's global vrrp_check_unicast_src, per instance here */
  check_unicast_src?: boolean;
  virtual_ipaddress: VirtualIpaddress[];
  virtual_ipaddress_excluded?: VirtualIpaddress[];
  virtual_routes?: VirtualRoute[];
  virtual_rules?: VirtualRule[];
  /** seconds; 0: no second burst */
  garp_master_delay?: number;
  garp_master_repeat?: number;
  /** seconds; 0: none */
  garp_master_refresh?: number;
  garp_master_refresh_repeat?: number;
  /** interfaces whose state moves this instance (weight 0 or absent: down means FAULT) */
  track_interface?: { name: string; weight?: number; reverse?: boolean }[];
  /** vrrp_script checks by name; a weight here replaces the script's own */
  track_script?: { name: string; weight?: number; reverse?: boolean }[];
  /** vrrp_track_file entries by name; a weight here replaces the entry's own */
  track_file?: { name: string; weight?: number; reverse?: boolean }[];
  /** scripts run on entering a state (keepalived's command lines: argv split, no shell) */
  notify_master?: string;
  notify_backup?: string;
  notify_fault?: string;
  notify_stop?: string;
  /** run on every change with INSTANCE NAME STATE PRIORITY appended */
  notify?: string;
  notify_master_rx_lower_pri?: string;
}

export interface VrrpSyncGroupConfig {
  name: string;
  group: string[];
  notify_master?: string;
  notify_backup?: string;
  notify_fault?: string;
  notify_stop?: string;
  notify?: string;
}

/** The notify_* keywords of an instance or a sync group. */
export const NOTIFY_KEYS = ['notify_master', 'notify_backup', 'notify_fault', 'notify_stop', 'notify', 'notify_master_rx_lower_pri'] as const;
export type NotifyScripts = Partial<Record<(typeof NOTIFY_KEYS)[number], string>>;

/** global_defs settings that are defaults for every instance. */
export interface VrrpGlobalDefs {
  vrrp_version?: VrrpVersion;
  vrrp_garp_master_delay?: number;
  vrrp_garp_master_repeat?: number;
  vrrp_garp_master_refresh?: number;
  vrrp_garp_master_refresh_repeat?: number;
  vrrp_check_unicast_src?: boolean;
  vrrp_lower_prio_no_advert?: boolean;
  /** a FIFO every state change is written to (INSTANCE "VI_1" MASTER 100) */
  notify_fifo?: string;
  vrrp_notify_fifo?: string;
  /** 'USER [GROUP]' scripts run as */
  script_user?: string;
  enable_script_security?: boolean;
}

/** vrrp_script NAME { script .. interval .. timeout .. weight W [reverse] rise .. fall .. user U [G] init_fail } */
export interface VrrpScriptConfig {
  name: string;
  /** the command line (argv split as keepalived does, no shell) */
  script: string;
  /** seconds between runs; default 1 */
  interval?: number;
  /** seconds a run may take (then it is killed and counts as a failure); default: the interval */
  timeout?: number;
  /** -253..253; default 0 (a failure means FAULT) */
  weight?: number;
  /** keepalived `weight W reverse` */
  weight_reverse?: boolean;
  /** default 1 */
  rise?: number;
  /** default 1 */
  fall?: number;
  /** 'USER [GROUP]' this script runs as; default global_defs script_user */
  user?: string;
  /** start FAILED rather than waiting for the first result */
  init_fail?: boolean;
}

/** vrrp_track_file NAME { file PATH  weight W [reverse] } */
export interface VrrpTrackFileConfig {
  name: string;
  file: string;
  /** -254..254; default 1 */
  weight?: number;
  weight_reverse?: boolean;
}

export interface VrrpConfig {
  global_defs?: VrrpGlobalDefs;
  vrrp_script?: VrrpScriptConfig[];
  vrrp_track_file?: VrrpTrackFileConfig[];
  vrrp_instance: VrrpInstanceConfig[];
  vrrp_sync_group?: VrrpSyncGroupConfig[];
}

// ---------------------------------------------------------------- resolved form

export interface ResolvedAddress {
  address: string;
  prefixLength: number;
  family: Family;
  /** interface name */
  dev: string;
  scope: ScopeName;
  label?: string;
  brd?: string;
}

export interface ResolvedRoute extends Omit<VirtualRoute, 'to'> {
  dst: string;
  family: Family;
}

export interface ResolvedRule extends VirtualRule {
  family: Family;
}

export interface ResolvedInstance {
  name: string;
  interface: string;
  family: Family;
  vrid: number;
  version: VrrpVersion;
  priority: number;
  advertIntervalMs: number;
  /** the addresses advertised (virtual_ipaddress) */
  vips: ResolvedAddress[];
  /** added and removed with the VIPs, not advertised */
  excluded: ResolvedAddress[];
  routes: ResolvedRoute[];
  rules: ResolvedRule[];
  unicastSrc?: string;
  unicastPeers: string[];
  /** the state machine's settings but `address`, which is known once the interface is read */
  fsm: Omit<FsmConfig, 'address'>;
  /** the codec's view but the per-packet facts */
  view: InstanceView;
  /** interfaces tracked, with their weights (the instance's own interface first, weight 0) */
  trackInterfaces: TrackRef[];
  /** vrrp_scripts tracked (names of ResolvedConfig.scripts), with the weight that applies here */
  trackScripts: TrackRef[];
  /** vrrp_track_files tracked (names of ResolvedConfig.files) */
  trackFiles: TrackRef[];
  notify: NotifyScripts;
}

/** A tracked object of an instance: its name and the weight that applies to this instance. */
export interface TrackRef {
  name: string;
  weight: number;
  reverse: boolean;
}

export interface ResolvedScript {
  name: string;
  script: string;
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
  initFail: boolean;
  user?: { user: string; group?: string };
}

export interface ResolvedTrackFile {
  name: string;
  file: string;
}

export interface ResolvedConfig {
  instances: ResolvedInstance[];
  /** the vrrp_scripts some instance tracks (others are not run, as keepalived) */
  scripts: ResolvedScript[];
  /** the vrrp_track_files some instance tracks */
  files: ResolvedTrackFile[];
  syncGroups: (SyncGroupConfig & { notify: NotifyScripts })[];
  /** notify_fifo and vrrp_notify_fifo */
  notifyFifos: string[];
  scriptUser?: { user: string; group?: string };
  scriptSecurity: boolean;
}

// ---------------------------------------------------------------- checks

function fail(where: string, message: string): never {
  throw new Error(`${where}: ${message}`);
}

function int(where: string, key: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(where, `${key} ${String(v)} is not an integer in ${min}..${max}`);
  return v;
}

function seconds(where: string, key: string, v: unknown, min = 0): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) fail(where, `${key} ${String(v)} is not a number of seconds >= ${min}`);
  return Math.round(v * 1000);
}

function ifname(where: string, key: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || Buffer.byteLength(v) > 15 || /[/:\s]/.test(v)) {
    fail(where, `${key} '${String(v)}' is not an interface name (1..15 bytes, no '/', ':' or space)`);
  }
  return v;
}

function address(where: string, key: string, v: unknown): { address: string; family: Family } {
  if (typeof v === 'string' && isIPv4(v)) return { address: v, family: 4 };
  if (typeof v === 'string' && isIPv6(v)) return { address: v, family: 6 };
  fail(where, `${key} '${String(v)}' is not an IPv4 or IPv6 address`);
}

/** 'A' or 'A/LEN' (default length: the whole address). */
function prefix(where: string, key: string, v: unknown, defaultFull = true): { address: string; family: Family; length: number } {
  if (typeof v !== 'string') fail(where, `${key} must be a string, got ${String(v)}`);
  const [a, len, extra] = v.split('/');
  if (extra !== undefined) fail(where, `${key} '${v}' is not ADDRESS/LENGTH`);
  const { address: addr, family } = address(where, key, a);
  const max = family === 4 ? 32 : 128;
  if (len === undefined) {
    if (!defaultFull) fail(where, `${key} '${v}' needs a /LENGTH`);
    return { address: addr, family, length: max };
  }
  if (!/^\d{1,3}$/.test(len) || Number(len) > max) fail(where, `${key} '${v}': the length must be 0..${max}`);
  return { address: addr, family, length: Number(len) };
}

const SCOPES: readonly ScopeName[] = ['global', 'site', 'link', 'host', 'nowhere'];

function scope(where: string, v: unknown): ScopeName {
  if (v === undefined) return 'global';
  if (typeof v !== 'string' || !SCOPES.includes(v as ScopeName)) fail(where, `scope '${String(v)}' is not one of ${SCOPES.join(', ')}`);
  return v as ScopeName;
}

function resolveAddress(where: string, key: string, v: VirtualIpaddress, dflt: string): ResolvedAddress {
  if (typeof v !== 'object' || v === null) fail(where, `an entry of ${key} must be an object with 'address'`);
  const p = prefix(where, `${key} address`, v.address);
  const out: ResolvedAddress = {
    address: p.address, prefixLength: p.length, family: p.family,
    dev: v.dev === undefined ? dflt : ifname(where, `${key} ${v.address} dev`, v.dev),
    scope: scope(`${where}: ${key} ${v.address}`, v.scope),
  };
  if (v.label !== undefined) {
    if (p.family !== 4) fail(where, `${key} ${v.address}: label is for IPv4 addresses only`);
    if (typeof v.label !== 'string' || v.label.length === 0 || Buffer.byteLength(v.label) > 15) fail(where, `${key} ${v.address}: label '${String(v.label)}' must be 1..15 bytes`);
    out.label = v.label;
  }
  if (v.brd !== undefined) {
    if (p.family !== 4 || address(where, `${key} ${v.address} brd`, v.brd).family !== 4) fail(where, `${key} ${v.address}: brd is for IPv4 only`);
    out.brd = v.brd;
  }
  return out;
}

function resolveRoute(where: string, r: VirtualRoute): ResolvedRoute {
  if (typeof r !== 'object' || r === null) fail(where, 'an entry of virtual_routes must be an object with \'to\'');
  const w = `${where}: virtual_routes ${String(r.to)}`;
  const families = new Set<Family>();
  if (r.to !== 'default') families.add(prefix(w, 'to', r.to).family);
  for (const k of ['src', 'via'] as const) if (r[k] !== undefined) families.add(address(w, k, r[k]).family);
  if (families.size !== 1) fail(w, families.size === 0 ? "say the family with an address ('via' or 'src') for a default route" : 'mixes IPv4 and IPv6');
  if (r.dev !== undefined) ifname(w, 'dev', r.dev);
  if (r.table !== undefined) int(w, 'table', r.table, 1, 0xffffffff);
  if (r.metric !== undefined) int(w, 'metric', r.metric, 0, 0xffffffff);
  if (r.scope !== undefined) scope(w, r.scope);
  const { to, ...rest } = r;
  return { ...rest, dst: to, family: [...families][0]! };
}

function resolveRule(where: string, r: VirtualRule, instanceFamily: Family): ResolvedRule {
  if (typeof r !== 'object' || r === null) fail(where, 'an entry of virtual_rules must be an object');
  const w = `${where}: virtual_rules`;
  const families = new Set<Family>();
  for (const k of ['from', 'to'] as const) if (r[k] !== undefined) families.add(prefix(w, k, r[k]).family);
  if (families.size > 1) fail(w, 'mixes IPv4 and IPv6');
  if (r.table === undefined && r.action === undefined) fail(w, 'give a table or an action');
  if (r.table !== undefined && r.action !== undefined) fail(w, `a table goes with no action (got ${r.action})`);
  if (r.table !== undefined) int(w, 'table', r.table, 1, 0xffffffff);
  if (r.priority !== undefined) int(w, 'priority', r.priority, 0, 0xffffffff);
  if (r.fwmark !== undefined) int(w, 'fwmark', r.fwmark, 0, 0xffffffff);
  if (r.fwmask !== undefined) {
    if (r.fwmark === undefined) fail(w, 'fwmask goes with fwmark');
    int(w, 'fwmask', r.fwmask, 0, 0xffffffff);
  }
  for (const k of ['iif', 'oif'] as const) if (r[k] !== undefined) ifname(w, k, r[k]);
  return { ...r, family: [...families][0] ?? instanceFamily };
}

function notifyScripts(where: string, c: NotifyScripts): NotifyScripts {
  const out: NotifyScripts = {};
  for (const k of NOTIFY_KEYS) {
    const v = c[k];
    if (v === undefined) continue;
    if (typeof v !== 'string' || v.trim() === '') fail(where, `${k} must be a command line`);
    out[k] = v;
  }
  return out;
}

/** What an instance's track_script / track_file entry may name: each definition's own weight. */
type Defined = ReadonlyMap<string, { weight: number; reverse: boolean }>;

function trackRefs(where: string, key: 'track_script' | 'track_file', list: unknown, defined: Defined, limit: number): TrackRef[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) fail(where, `${key} must be a list`);
  const out: TrackRef[] = [];
  for (const t of list as { name?: unknown; weight?: unknown; reverse?: unknown }[]) {
    const name = typeof t === 'object' && t !== null ? t.name : undefined;
    if (typeof name !== 'string') fail(where, `an entry of ${key} must be an object with 'name'`);
    const def = defined.get(name);
    if (!def) fail(where, `${key} ${name}: no ${key === 'track_script' ? 'vrrp_script' : 'vrrp_track_file'} of that name`);
    if (out.some((o) => o.name === name)) fail(where, `${key} ${name} is listed twice`);
    out.push(t.weight === undefined
      ? { name, weight: def.weight, reverse: t.reverse === undefined ? def.reverse : t.reverse === true }
      : { name, weight: int(where, `${key} ${name} weight`, t.weight, -limit, limit), reverse: t.reverse === true });
  }
  return out;
}

/** 'USER [GROUP]' */
function userGroup(where: string, key: string, v: unknown): { user: string; group?: string } {
  const [user, group, extra] = String(v).trim().split(/\s+/);
  if (!user || extra !== undefined) fail(where, `${key} '${String(v)}' is not 'USER [GROUP]'`);
  return group === undefined ? { user } : { user, group };
}

function resolveScript(c: VrrpScriptConfig): ResolvedScript & { weight: number; reverse: boolean } {
  if (typeof c !== 'object' || c === null || typeof c.name !== 'string' || c.name === '') throw new Error('vrrp_script: each script must be an object with a name');
  const where = `vrrp_script ${c.name}`;
  if (typeof c.script !== 'string' || c.script.trim() === '') fail(where, 'script must be a command line');
  const intervalMs = seconds(where, 'interval', c.interval ?? 1, 0.001);
  const out: ResolvedScript & { weight: number; reverse: boolean } = {
    name: c.name, script: c.script, intervalMs,
    timeoutMs: c.timeout === undefined ? intervalMs : seconds(where, 'timeout', c.timeout, 0.001),
    rise: int(where, 'rise', c.rise ?? 1, 1, 1e9),
    fall: int(where, 'fall', c.fall ?? 1, 1, 1e9),
    initFail: c.init_fail === true,
    weight: int(where, 'weight', c.weight ?? 0, -253, 253),
    reverse: c.weight_reverse === true,
  };
  if (c.user !== undefined) out.user = userGroup(where, 'user', c.user);
  return out;
}

function resolveTrackFile(c: VrrpTrackFileConfig): ResolvedTrackFile & { weight: number; reverse: boolean } {
  if (typeof c !== 'object' || c === null || typeof c.name !== 'string' || c.name === '') throw new Error('vrrp_track_file: each entry must be an object with a name');
  const where = `vrrp_track_file ${c.name}`;
  if (typeof c.file !== 'string' || !c.file.startsWith('/')) fail(where, `file '${String(c.file)}' must be an absolute path`);
  return { name: c.name, file: c.file, weight: int(where, 'weight', c.weight ?? 1, -254, 254), reverse: c.weight_reverse === true };
}

function resolveInstance(c: VrrpInstanceConfig, g: VrrpGlobalDefs, scripts: Defined, files: Defined): ResolvedInstance {
  if (typeof c !== 'object' || c === null) throw new Error('vrrp_instance: each instance must be an object');
  if (typeof c.name !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(c.name)) throw new Error(`vrrp_instance '${String(c.name)}': the name must be 1..64 letters, digits or _.:-`);
  const where = `vrrp_instance ${c.name}`;
  const dev = ifname(where, 'interface', c.interface);
  const vrid = int(where, 'virtual_router_id', c.virtual_router_id, 1, 255);
  const priority = int(where, 'priority', c.priority ?? 100, 1, PRIORITY_OWNER);
  const version = c.version ?? g.vrrp_version ?? 2;
  if (version !== 2 && version !== 3) fail(where, `version ${String(version)} is not 2 or 3`);
  const advertIntervalMs = seconds(where, 'advert_int', c.advert_int ?? 1, 0.01);
  try {
    wireInterval(version, advertIntervalMs);
  } catch (err) {
    fail(where, `advert_int ${c.advert_int ?? 1}: ${(err as Error).message}`);
  }

  if (!Array.isArray(c.virtual_ipaddress)) fail(where, 'virtual_ipaddress must be a list');
  const vips = c.virtual_ipaddress.map((v) => resolveAddress(where, 'virtual_ipaddress', v, dev));
  const excluded = (c.virtual_ipaddress_excluded ?? []).map((v) => resolveAddress(where, 'virtual_ipaddress_excluded', v, dev));
  if (vips.length > 255) fail(where, `${vips.length} virtual_ipaddress entries, at most 255 fit an advert`);

  const peers = (c.unicast_peer ?? []).map((p) => address(where, 'unicast_peer', p));
  const src = c.unicast_src_ip === undefined ? undefined : address(where, 'unicast_src_ip', c.unicast_src_ip);
  const family: Family = vips[0]?.family ?? src?.family ?? peers[0]?.family ?? 4;
  for (const v of vips) {
    if (v.family !== family) fail(where, `virtual_ipaddress ${v.address} is IPv${v.family}, the instance is IPv${family}: put it in virtual_ipaddress_excluded`);
  }
  if (family === 6 && version !== 3) fail(where, 'IPv6 needs version 3');
  if (src && src.family !== family) fail(where, `unicast_src_ip ${src.address} is not IPv${family}`);
  for (const p of peers) if (p.family !== family) fail(where, `unicast_peer ${p.address} is not IPv${family}`);
  if (src && peers.length === 0) fail(where, 'unicast_src_ip without unicast_peer');

  let authType: typeof AUTH.NONE | typeof AUTH.PASS = AUTH.NONE;
  let authPassword: string | undefined;
  if (c.authentication !== undefined) {
    const a = c.authentication;
    if (version !== 2) fail(where, 'authentication is for version 2 only (RFC 5798 removed it)');
    if (a.auth_type === 'AH') fail(where, 'auth_type AH is not supported');
    if (a.auth_type !== 'PASS') fail(where, `auth_type '${String(a.auth_type)}' is not PASS or AH`);
    if (typeof a.auth_pass !== 'string' || Buffer.byteLength(a.auth_pass) > 8) fail(where, 'auth_pass must be a string of at most 8 bytes');
    authType = AUTH.PASS;
    authPassword = a.auth_pass;
  }

  if (c.state !== undefined && c.state !== 'MASTER' && c.state !== 'BACKUP') fail(where, `state '${String(c.state)}' is not MASTER or BACKUP`);
  const garp: GarpConfig = {
    masterDelayMs: seconds(where, 'garp_master_delay', c.garp_master_delay ?? g.vrrp_garp_master_delay ?? GARP_DEFAULTS.masterDelayMs / 1000),
    masterRepeat: int(where, 'garp_master_repeat', c.garp_master_repeat ?? g.vrrp_garp_master_repeat ?? GARP_DEFAULTS.masterRepeat, 1, 255),
    refreshMs: seconds(where, 'garp_master_refresh', c.garp_master_refresh ?? g.vrrp_garp_master_refresh ?? GARP_DEFAULTS.refreshMs / 1000),
    refreshRepeat: int(where, 'garp_master_refresh_repeat', c.garp_master_refresh_repeat ?? g.vrrp_garp_master_refresh_repeat ?? GARP_DEFAULTS.refreshRepeat, 1, 255),
  };
  const fsm: Omit<FsmConfig, 'address'> = {
    name: c.name, version, priority, advertIntervalMs, garp,
    preempt: c.nopreempt !== true,
    preemptDelayMs: seconds(where, 'preempt_delay', c.preempt_delay ?? 0),
    lowerPrioNoAdvert: c.lower_prio_no_advert ?? g.vrrp_lower_prio_no_advert ?? false,
  };
  if (c.state !== undefined) fsm.initialState = c.state;

  const view: InstanceView = {
    version, vrid, authType, advertIntervalMs,
    vips: vips.map((v) => v.address),
    unicastPeers: peers.map((p) => p.address),
    checkUnicastSource: c.check_unicast_src ?? g.vrrp_check_unicast_src ?? false,
  };
  if (authPassword !== undefined) view.authPassword = authPassword;

  const trackInterfaces = [{ name: dev, weight: 0, reverse: false }];
  for (const t of c.track_interface ?? []) {
    const name = ifname(where, 'track_interface', t.name);
    const weight = int(where, `track_interface ${name} weight`, t.weight ?? 0, -253, 253);
    const same = trackInterfaces.find((x) => x.name === name);
    if (same) Object.assign(same, { weight, reverse: t.reverse === true });
    else trackInterfaces.push({ name, weight, reverse: t.reverse === true });
  }

  const out: ResolvedInstance = {
    name: c.name, interface: dev, family, vrid, version, priority, advertIntervalMs, vips, excluded,
    routes: (c.virtual_routes ?? []).map((r) => resolveRoute(where, r)),
    rules: (c.virtual_rules ?? []).map((r) => resolveRule(where, r, family)),
    unicastPeers: view.unicastPeers.slice(), fsm, view, trackInterfaces, notify: notifyScripts(where, c),
    trackScripts: trackRefs(where, 'track_script', c.track_script, scripts, 253),
    trackFiles: trackRefs(where, 'track_file', c.track_file, files, 254),
  };
  if (src) out.unicastSrc = src.address;
  return out;
}

/** Check a whole configuration; throws an Error naming the instance or group and the keyword. */
export function resolveConfig(c: VrrpConfig): ResolvedConfig {
  if (typeof c !== 'object' || c === null || !Array.isArray(c.vrrp_instance)) throw new Error('VRRP configuration: vrrp_instance must be a list');
  const g = c.global_defs ?? {};
  const defs = <T extends { name: string }>(key: string, list: unknown, resolve: (x: never) => T): Map<string, T> => {
    if (list === undefined) return new Map();
    if (!Array.isArray(list)) throw new Error(`VRRP configuration: ${key} must be a list`);
    const m = new Map<string, T>();
    for (const x of list) {
      const r = resolve(x as never);
      if (m.has(r.name)) throw new Error(`${key} ${r.name}: defined twice`);
      m.set(r.name, r);
    }
    return m;
  };
  const scriptDefs = defs('vrrp_script', c.vrrp_script, resolveScript);
  const fileDefs = defs('vrrp_track_file', c.vrrp_track_file, resolveTrackFile);
  const instances = c.vrrp_instance.map((i) => resolveInstance(i, g, scriptDefs, fileDefs));
  const used = (key: 'trackScripts' | 'trackFiles') => new Set(instances.flatMap((i) => i[key].map((t) => t.name)));
  const usedScripts = used('trackScripts');
  const usedFiles = used('trackFiles');
  const scripts = [...scriptDefs.values()].filter((s) => usedScripts.has(s.name)).map(({ weight: _w, reverse: _r, ...s }) => s);
  const files = [...fileDefs.values()].filter((f) => usedFiles.has(f.name)).map(({ weight: _w, reverse: _r, ...f }) => f);
  const seen = new Map<string, ResolvedInstance>();
  for (const i of instances) {
    if (seen.has(i.name)) throw new Error(`vrrp_instance ${i.name}: defined twice`);
    for (const o of seen.values()) {
      if (o.interface === i.interface && o.vrid === i.vrid && o.family === i.family && o.unicastPeers.length === 0 && i.unicastPeers.length === 0) {
        throw new Error(`vrrp_instance ${i.name}: virtual_router_id ${i.vrid} on ${i.interface} (IPv${i.family}) is also ${o.name}'s`);
      }
    }
    seen.set(i.name, i);
  }
  const member = new Map<string, string>();
  const syncGroups: ResolvedConfig['syncGroups'] = [];
  for (const sg of c.vrrp_sync_group ?? []) {
    const where = `vrrp_sync_group ${String(sg.name)}`;
    if (typeof sg.name !== 'string' || sg.name === '') throw new Error('vrrp_sync_group: a group needs a name');
    if (!Array.isArray(sg.group) || sg.group.length < 2) fail(where, 'group must list at least 2 instances');
    for (const m of sg.group) {
      const inst = seen.get(m);
      if (!inst) fail(where, `instance ${m} is not defined`);
      const other = member.get(m);
      if (other !== undefined) fail(where, `instance ${m} is already in vrrp_sync_group ${other}`);
      member.set(m, sg.name);
      inst.fsm.syncGroup = sg.name;
    }
    syncGroups.push({ name: sg.name, members: [...sg.group], notify: notifyScripts(where, sg) });
  }
  const notifyFifos = [g.notify_fifo, g.vrrp_notify_fifo].filter((f): f is string => f !== undefined);
  for (const f of notifyFifos) if (typeof f !== 'string' || !f.startsWith('/')) throw new Error(`global_defs: notify fifo '${String(f)}' must be an absolute path`);
  const out: ResolvedConfig = { instances, scripts, files, syncGroups, notifyFifos, scriptSecurity: g.enable_script_security === true };
  if (g.script_user !== undefined) out.scriptUser = userGroup('global_defs', 'script_user', g.script_user);
  return out;
}
