/**
 * The VRRP keywords of keepalived.conf (vrrp_script, vrrp_track_file / track_file,
 * vrrp_sync_group, vrrp_instance and what they hold) -> VrrpConfig (src/vrrp/config.ts), with
 * keepalived 2.2.7's keyword set: every keyword it accepts in these blocks is here, implemented
 * or reported (schema.ts's unsupported/ignored). Values are checked as they are read (ranges,
 * addresses, choices); what needs the whole instance (families, versions, references between
 * blocks) is resolveConfig's, whose messages loadConfig places at the instance or keyword they
 * name, using the positions recorded here in ConfigBuilder.where.
 *
 * Entry lines (blocks of entries, not keywords):
 *   virtual_ipaddress / virtual_ipaddress_excluded:
 *       ADDRESS[/LEN] [brd B] [dev D] [scope S] [label L]; keepalived's other options reported
 *   virtual_routes:  [src S] [to] DST|default [via|gw GW] [dev D] [scope S] [table T] [metric M],
 *       or TYPE DST (blackhole, unreachable, prohibit, local, throw, unicast)
 *   virtual_rules:   [from P] [to P] [fwmark M[/MASK]] [iif D] [oif D] [priority N] [not]
 *       then table T (lookup T) or an action (blackhole, unreachable, prohibit)
 *   track_interface: NAME [weight W [reverse|noreverse]]
 *   track_script / track_file: NAME [weight W [reverse|noreverse|no_reverse]]
 *   unicast_peer:    ADDRESS (min_ttl/max_ttl reported)
 *   group (sync group): instance names, any number per line
 * Route and rule tables: a number, or main/local/default (254/255/253).
 */
import type { SourcePos } from '../model/types.ts';
import type {
  ScopeName, VirtualIpaddress, VirtualRoute, VirtualRule, VrrpInstanceConfig, VrrpScriptConfig, VrrpSyncGroupConfig,
  VrrpTrackFileConfig,
} from '../vrrp/config.ts';
import type { ConfigBuilder } from './index.ts';
import { block, flag, ignored, lines, unsupported, value, type Args, type Keyword, type Table } from './schema.ts';

/** What a block of a named VRRP object fills: the object, and where its keywords stand. */
interface Named<C> {
  c: C;
  /** 'vrrp_instance VI_1' */
  key: string;
  where: Map<string, SourcePos>;
}

/** The table with every handler recording where its keyword stands ('vrrp_instance VI_1 priority'). */
function recording<C>(table: Table<Named<C>>): Table<Named<C>> {
  const out: Record<string, Keyword<Named<C>>> = {};
  const note = (n: Named<C>, a: Args) => {
    const k = `${n.key} ${a.name}`;
    if (!n.where.has(k)) n.where.set(k, a.pos);
  };
  for (const [name, kw] of Object.entries(table)) {
    if (kw.kind === 'value') out[name] = { ...kw, handle: (n, a) => { note(n, a); kw.handle(n, a); } };
    else if (kw.kind === 'lines' || kw.kind === 'block') out[name] = { ...kw, enter: (n: Named<C>, a: Args) => { note(n, a); return kw.enter(n, a); } } as Keyword<Named<C>>;
    else out[name] = kw;
  }
  return out;
}

/** `KEYWORD NAME {`: a new named object in `list`, or an error (and the block skipped) when the name is taken. */
function named<C extends { name: string }>(
  kind: string, list: (b: ConfigBuilder) => C[], make: (name: string) => C, table: Table<Named<C>>, close?: (n: Named<C>, end: SourcePos, a: Args) => void,
) {
  return block<ConfigBuilder, Named<C>>(table, (b, a) => {
    const name = a.string(0);
    if (name === undefined) return undefined;
    const key = `${kind} ${name}`;
    if (b.where.has(key)) {
      const first = b.where.get(key)!;
      a.error(`${kind} ${name} is already defined (at ${first.file}:${first.line}:${first.col}) - skipping this one`, 0);
      return undefined;
    }
    b.where.set(key, a.pos);
    const c = make(name);
    list(b).push(c);
    return { c, key, where: b.where };
  }, close ? (_b, n, end, a) => close(n, end, a) : undefined, [1, 1]);
}

// ---------------------------------------------------------------- shared pieces

const NOTIFY_USER = 'a notify script\'s own user and group are not supported: scripts run as global_defs script_user';

/** notify_* SCRIPT [USER [GROUP]] */
function notify<C>(set: (c: C, command: string) => void) {
  return value<Named<C>>((n, a) => {
    const cmd = a.string(0);
    if (cmd === undefined) return;
    if (cmd.trim() === '') {
      a.error(`${a.name}: the command is empty`, 0);
      return;
    }
    set(n.c, cmd);
    if (a.count > 1) a.report('unsupported', `${a.name}: ${NOTIFY_USER} ('${a.rest(1)}')`, 1);
  }, [1, 3]);
}

/** `weight W [reverse|noreverse|no_reverse]` from word i of an entry; false when it was bad. */
function weightAt(a: Args, i: number, limit: number, out: { weight?: number; reverse?: boolean }): boolean {
  if (a.at(i) === undefined) return true;
  if (a.at(i) !== 'weight') {
    a.error(`${a.name}: '${a.at(i)}' is not 'weight'`, i);
    return false;
  }
  if (a.at(i + 1) === undefined) {
    a.error(`${a.name}: weight needs a value`, i);
    return false;
  }
  const w = a.int(i + 1, -limit, limit, `${a.name} ${a.at(0)} weight`);
  if (w === undefined) return false;
  out.weight = w;
  const r = a.at(i + 2);
  if (r !== undefined) {
    if (r === 'reverse') out.reverse = true;
    else if (r !== 'noreverse' && r !== 'no_reverse') {
      a.error(`${a.name}: '${r}' is not reverse or noreverse`, i + 2);
      return false;
    }
    if (a.at(i + 3) !== undefined) a.report('ok', `${a.name}: '${a.rest(i + 3)}' ignored`, i + 3, 'warning');
  }
  return true;
}

/** track_interface / track_script / track_file entries: NAME [weight W [reverse]]. */
function trackList<C>(limit: number, list: (c: C) => { name: string; weight?: number; reverse?: boolean }[]) {
  return lines<Named<C>, Named<C>>((n) => n, (n, a) => {
    const name = a.at(0)!;
    const t: { name: string; weight?: number; reverse?: boolean } = { name };
    if (weightAt(a, 1, limit, t)) list(n.c).push(t);
  });
}

const TABLE_NAMES: Record<string, number> = { default: 253, main: 254, local: 255 };

function tableAt(a: Args, i: number): number | undefined {
  const w = a.at(i);
  if (w === undefined) {
    a.error(`${a.name}: table needs a value`, i - 1);
    return undefined;
  }
  if (w in TABLE_NAMES) return TABLE_NAMES[w];
  return a.int(i, 1, 0xffffffff);
}

/** word i as a prefix, reported with the entry's keyword */
function prefixAt(a: Args, i: number, what: string): string | undefined {
  if (a.at(i) === undefined) {
    a.error(`${a.name}: ${what} needs a value`, Math.max(0, i - 1));
    return undefined;
  }
  return a.prefix(i);
}

function wordAt(a: Args, i: number, what: string): string | undefined {
  const w = a.at(i);
  if (w === undefined) a.error(`${a.name}: ${what} needs a value`, Math.max(0, i - 1));
  return w;
}

const SCOPES: readonly ScopeName[] = ['global', 'site', 'link', 'host', 'nowhere'];

// ---------------------------------------------------------------- addresses, routes, rules

/** Options of an address entry that xlb does not implement, and whether losing them is an error. */
const ADDRESS_FLAGS: Record<string, { error: boolean; why: string; takesValue?: boolean }> = {
  use_vmac: { error: true, why: 'xlb creates no VMAC interfaces' },
  peer: { error: true, why: 'point-to-point addresses are not implemented', takesValue: true },
  track_group: { error: true, why: 'static track groups are not implemented', takesValue: true },
  home: { error: false, why: 'IPv6 home address flag' },
  '-nodad': { error: false, why: 'IPv6 addresses are always added without duplicate address detection' },
  nodad: { error: false, why: 'IPv6 addresses are always added without duplicate address detection' },
  mngtmpaddr: { error: false, why: 'IPv6 temporary address management flag' },
  noprefixroute: { error: false, why: 'the prefix route is always added' },
  autojoin: { error: false, why: 'multicast autojoin flag' },
  no_track: { error: false, why: 'a deleted address is not noticed until the next transition' },
  preferred_lft: { error: false, why: 'IPv6 preferred lifetime', takesValue: true },
};

function addressEntry(a: Args): VirtualIpaddress | undefined {
  const address = a.prefix(0);
  if (address === undefined) return undefined;
  const v: VirtualIpaddress = { address };
  for (let i = 1; i < a.count; i++) {
    const opt = a.at(i)!;
    switch (opt) {
      case 'brd': case 'broadcast': {
        const b = wordAt(a, i + 1, opt);
        if (b === undefined) return undefined;
        if (b !== '+' && b !== '-') v.brd = a.address(i + 1, 4);
        i++;
        break;
      }
      case 'dev': {
        const d = wordAt(a, ++i, 'dev');
        if (d === undefined) return undefined;
        v.dev = d;
        break;
      }
      case 'scope': {
        if (wordAt(a, i + 1, 'scope') === undefined) return undefined;
        const s = a.choice(++i, SCOPES);
        if (s === undefined) return undefined;
        v.scope = s;
        break;
      }
      case 'label': {
        const l = wordAt(a, ++i, 'label');
        if (l === undefined) return undefined;
        v.label = l;
        break;
      }
      default: {
        const f = ADDRESS_FLAGS[opt];
        if (!f) {
          a.error(`${a.name} ${address}: unknown option '${opt}'`, i);
          return undefined;
        }
        a.report(f.error ? 'unsupported' : 'ignored', `${a.name} ${address}: '${opt}' not implemented by xlb${f.error ? '' : ', ignored'} (${f.why})`, i);
        if (f.takesValue) i++;
      }
    }
  }
  return v;
}

const ROUTE_TYPES = ['unicast', 'blackhole', 'unreachable', 'prohibit', 'local', 'throw'] as const;
/** route options keepalived knows that xlb does not set */
const ROUTE_UNSUPPORTED = new Set(['or', 'nexthop', 'mtu', 'advmss', 'rtt', 'rttvar', 'reordering', 'window', 'cwnd', 'ssthresh', 'realms',
  'rto_min', 'initcwnd', 'initrwnd', 'features', 'quickack', 'congctl', 'pref', 'expires', 'fastopen_no_cookie', 'protocol', 'proto',
  'onlink', 'hoplimit', 'lock', 'encap', 'ttl-propagate', 'prohibit_default', 'nat', 'broadcast', 'anycast', 'multicast', 'track_group']);

function routeEntry(a: Args): VirtualRoute | undefined {
  const r: Partial<VirtualRoute> = {};
  let i = 0;
  if ((ROUTE_TYPES as readonly string[]).includes(a.at(0)!)) r.type = a.at(i++) as VirtualRoute['type'];
  for (; i < a.count; i++) {
    const w = a.at(i)!;
    switch (w) {
      case 'src': r.src = wordAt(a, i + 1, 'src') === undefined ? undefined : a.address(i + 1); i++; if (!r.src) return undefined; break;
      case 'to': { const p = prefixAt(a, ++i, 'to'); if (!p) return undefined; r.to = p; break; }
      case 'via': case 'gw': r.via = wordAt(a, i + 1, w) === undefined ? undefined : a.address(i + 1); i++; if (!r.via) return undefined; break;
      case 'dev': case 'oif': { const d = wordAt(a, ++i, w); if (d === undefined) return undefined; r.dev = d; break; }
      case 'scope': {
        if (wordAt(a, i + 1, 'scope') === undefined) return undefined;
        const s = a.choice(++i, SCOPES);
        if (s === undefined) return undefined;
        r.scope = s;
        break;
      }
      case 'table': { const t = tableAt(a, ++i); if (t === undefined) return undefined; r.table = t; break; }
      case 'metric': case 'priority': case 'preference': {
        if (wordAt(a, i + 1, w) === undefined) return undefined;
        const m = a.int(++i, 0, 0xffffffff);
        if (m === undefined) return undefined;
        r.metric = m;
        break;
      }
      case 'no_track':
        a.report('ignored', `${a.name}: 'no_track' not implemented by xlb, ignored (a deleted route is not noticed until the next transition)`, i);
        break;
      default:
        if (ROUTE_UNSUPPORTED.has(w)) {
          a.report('unsupported', `${a.name}: route option '${w}' is not implemented by xlb`, i);
          return undefined;
        }
        if (r.to === undefined && (w === 'default' || a.at(i)!.includes('.') || a.at(i)!.includes(':'))) {
          if (w === 'default') r.to = 'default';
          else {
            const p = a.prefix(i);
            if (!p) return undefined;
            r.to = p;
          }
          break;
        }
        a.error(`${a.name}: unknown route option '${w}'`, i);
        return undefined;
    }
  }
  if (r.to === undefined) {
    a.error(`${a.name}: the route has no destination`, 0);
    return undefined;
  }
  return r as VirtualRoute;
}

const RULE_ACTIONS = ['blackhole', 'unreachable', 'prohibit'] as const;
const RULE_UNSUPPORTED = new Set(['goto', 'nop', 'realms', 'suppress_prefixlength', 'suppress_ifgroup', 'uidrange', 'sport', 'dport',
  'ipproto', 'ip_proto', 'tos', 'dsfield', 'l3mdev', 'protocol', 'tun_id', 'track_group', 'type']);

function ruleEntry(a: Args): VirtualRule | undefined {
  const r: VirtualRule = {};
  for (let i = 0; i < a.count; i++) {
    const w = a.at(i)!;
    switch (w) {
      case 'from': case 'to': {
        const p = a.at(i + 1) === 'all' ? 'all' : prefixAt(a, i + 1, w);
        i++;
        if (!p) return undefined;
        if (p !== 'all') r[w] = p;
        break;
      }
      case 'table': case 'lookup': { const t = tableAt(a, ++i); if (t === undefined) return undefined; r.table = t; break; }
      case 'priority': case 'preference': case 'order': case 'pref': {
        if (wordAt(a, i + 1, w) === undefined) return undefined;
        const p = a.int(++i, 0, 0xffffffff);
        if (p === undefined) return undefined;
        r.priority = p;
        break;
      }
      case 'fwmark': {
        const m = wordAt(a, ++i, 'fwmark');
        if (m === undefined) return undefined;
        const [mark, mask, extra] = m.split('/');
        const num = (s: string | undefined) => (s !== undefined && /^(0x[0-9a-fA-F]+|\d+)$/.test(s) && Number(s) <= 0xffffffff ? Number(s) : undefined);
        const fm = num(mark);
        const fk = mask === undefined ? undefined : num(mask);
        if (fm === undefined || (mask !== undefined && fk === undefined) || extra !== undefined) {
          a.error(`${a.name}: fwmark '${m}' is not MARK or MARK/MASK (numbers up to 0xffffffff)`, i);
          return undefined;
        }
        r.fwmark = fm;
        if (fk !== undefined) r.fwmask = fk;
        break;
      }
      case 'iif': case 'oif': { const d = wordAt(a, ++i, w); if (d === undefined) return undefined; r[w] = d; break; }
      case 'not': r.not = true; break;
      case 'no_track':
        a.report('ignored', `${a.name}: 'no_track' not implemented by xlb, ignored (a deleted rule is not noticed until the next transition)`, i);
        break;
      default:
        if ((RULE_ACTIONS as readonly string[]).includes(w)) {
          r.action = w as VirtualRule['action'];
          break;
        }
        if (RULE_UNSUPPORTED.has(w)) {
          a.report('unsupported', `${a.name}: rule option '${w}' is not implemented by xlb`, i);
          return undefined;
        }
        a.error(`${a.name}: unknown rule option '${w}'`, i);
        return undefined;
    }
  }
  return r;
}

// ---------------------------------------------------------------- vrrp_instance

type Inst = Named<VrrpInstanceConfig>;

export const authenticationTable: Table<Inst> = {
  auth_type: value((n, a) => {
    const t = a.choice(0, ['PASS', 'AH'] as const);
    if (t === undefined) return;
    n.c.authentication = { auth_type: t, auth_pass: n.c.authentication?.auth_pass ?? '' };
  }),
  auth_pass: value((n, a) => {
    let p = a.string(0);
    if (p === undefined) return;
    if (Buffer.byteLength(p) > 8) {
      a.report('ok', `auth_pass: only the first 8 bytes of '${p}' are used (as keepalived)`, 0, 'warning');
      p = Buffer.from(p).subarray(0, 8).toString();
    }
    n.c.authentication = { auth_type: n.c.authentication?.auth_type ?? 'PASS', auth_pass: p };
  }),
};

export const instanceTable: Table<Inst> = recording<VrrpInstanceConfig>({
  state: value((n, a) => { n.c.state = a.choice(0, ['MASTER', 'BACKUP'] as const) ?? n.c.state; }),
  interface: value((n, a) => { n.c.interface = a.string(0) ?? n.c.interface; }),
  virtual_router_id: value((n, a) => { n.c.virtual_router_id = a.int(0, 1, 255) ?? n.c.virtual_router_id; }),
  priority: value((n, a) => { n.c.priority = a.int(0, 1, 255) ?? n.c.priority; }),
  advert_int: value((n, a) => { n.c.advert_int = a.decimal(0, 6, 0.01, 255) ?? n.c.advert_int; }),
  version: value((n, a) => {
    const v = a.int(0, 2, 3);
    if (v !== undefined) n.c.version = v as 2 | 3;
  }),
  nopreempt: flag((n, v) => { n.c.nopreempt = v; }),
  preempt: value((n) => { n.c.nopreempt = false; }, [0, 0]),
  preempt_delay: value((n, a) => { n.c.preempt_delay = a.timer(0, 0, 1000) ?? n.c.preempt_delay; }),
  lower_prio_no_advert: flag((n, v) => { n.c.lower_prio_no_advert = v; }),
  authentication: block(authenticationTable, (n: Inst) => n, (n, _s, end, a) => {
    if (n.c.authentication && n.c.authentication.auth_pass === '' ) a.error('authentication: auth_pass is missing', a.pos);
    void end;
  }),
  unicast_src_ip: value((n, a) => { n.c.unicast_src_ip = a.address(0) ?? n.c.unicast_src_ip; }),
  unicast_peer: lines((n: Inst) => n, (n, a) => {
    const p = a.address(0);
    if (p === undefined) return;
    (n.c.unicast_peer ??= []).push(p);
    for (let i = 1; i < a.count; i++) {
      const w = a.at(i)!;
      if (w === 'min_ttl' || w === 'max_ttl') {
        a.report('ignored', `unicast_peer ${p}: '${w}' not implemented by xlb, ignored (adverts must arrive with TTL 255)`, i);
        i++;
      } else a.error(`unicast_peer ${p}: unknown option '${w}'`, i);
    }
  }),
  check_unicast_src: flag((n, v) => { n.c.check_unicast_src = v; }),
  virtual_ipaddress: lines((n: Inst) => n, (n, a) => {
    const v = addressEntry(a);
    if (v) n.c.virtual_ipaddress.push(v);
  }),
  virtual_ipaddress_excluded: lines((n: Inst) => n, (n, a) => {
    const v = addressEntry(a);
    if (v) (n.c.virtual_ipaddress_excluded ??= []).push(v);
  }),
  virtual_routes: lines((n: Inst) => n, (n, a) => {
    const r = routeEntry(a);
    if (r) (n.c.virtual_routes ??= []).push(r);
  }),
  virtual_rules: lines((n: Inst) => n, (n, a) => {
    const r = ruleEntry(a);
    if (r) (n.c.virtual_rules ??= []).push(r);
  }),
  garp_master_delay: value((n, a) => { n.c.garp_master_delay = a.int(0, 0, 86400) ?? n.c.garp_master_delay; }),
  garp_master_repeat: value((n, a) => { n.c.garp_master_repeat = a.int(0, 1, 255) ?? n.c.garp_master_repeat; }),
  garp_master_refresh: value((n, a) => { n.c.garp_master_refresh = a.int(0, 0, 86400) ?? n.c.garp_master_refresh; }),
  garp_master_refresh_repeat: value((n, a) => { n.c.garp_master_refresh_repeat = a.int(0, 1, 255) ?? n.c.garp_master_refresh_repeat; }),
  track_interface: trackList<VrrpInstanceConfig>(253, (c) => (c.track_interface ??= [])),
  track_script: trackList<VrrpInstanceConfig>(253, (c) => (c.track_script ??= [])),
  track_file: trackList<VrrpInstanceConfig>(254, (c) => (c.track_file ??= [])),
  notify_master: notify((c: VrrpInstanceConfig, s) => { c.notify_master = s; }),
  notify_backup: notify((c: VrrpInstanceConfig, s) => { c.notify_backup = s; }),
  notify_fault: notify((c: VrrpInstanceConfig, s) => { c.notify_fault = s; }),
  notify_stop: notify((c: VrrpInstanceConfig, s) => { c.notify_stop = s; }),
  notify: notify((c: VrrpInstanceConfig, s) => { c.notify = s; }),
  notify_master_rx_lower_pri: notify((c: VrrpInstanceConfig, s) => { c.notify_master_rx_lower_pri = s; }),
  accept: value(() => { /* accept mode is what xlb does: the VIPs are added as local addresses */ }, [0, 0]),
  strict_mode: flag((_n, v, a) => {
    if (v) a.report('unsupported', 'strict_mode: not implemented by xlb (strict RFC mode: no unicast, no authentication, firewall rules for no_accept)');
  }),
  mcast_dst_ip: value((n, a) => {
    const v = a.address(0);
    if (v !== undefined && v !== '224.0.0.18' && v !== 'ff02::12') a.report('unsupported', `mcast_dst_ip ${v}: xlb sends adverts to the standard groups (224.0.0.18, ff02::12) only`, 0);
    void n;
  }),
  down_timer_adverts: value((_n, a) => {
    const v = a.int(0, 1, 100);
    if (v !== undefined && v !== 3) a.report('unsupported', `down_timer_adverts ${v}: xlb's master-down interval is RFC 5798's (3 adverts plus skew)`, 0);
  }),

  no_accept: unsupported('no_accept needs firewall rules, which xlb does not add; the VIPs answer as in accept mode'),
  dont_track_primary: unsupported('the instance\'s own interface is always tracked'),
  use_vmac: unsupported('xlb creates no VMAC interfaces'),
  use_vmac_addr: unsupported('xlb creates no VMAC interfaces'),
  vmac_xmit_base: unsupported('xlb creates no VMAC interfaces'),
  use_ipvlan: unsupported('xlb creates no ipvlan interfaces'),
  vrf: unsupported('VRFs are not implemented'),
  lvs_sync_daemon_interface: unsupported('IPVS connection synchronisation between nodes is not implemented'),
  old_unicast_checksum: unsupported('only the current VRRPv3 checksum is implemented'),
  track_process: unsupported('process tracking is not implemented: use a vrrp_script'),
  track_bfd: unsupported('BFD is not implemented'),
  notify_deleted: unsupported('instances deleted by a reload are notified as stopped'),
  mcast_src_ip: ignored('adverts are sent from the interface\'s primary address'),
  native_ipv6: ignored('the family comes from the virtual addresses'),
  track_src_ip: ignored('the source address is not tracked'),
  unicast_fault_no_peer: ignored('an instance without unicast peers uses multicast'),
  unicast_ttl: ignored('unicast adverts are sent with TTL 255, as the receive checks of both ends expect'),
  skip_check_adv_addr: ignored('xlb counts adverts whose address list differs from its own and accepts them'),
  garp_lower_prio_delay: ignored('no gratuitous ARP burst is sent after a lower-priority advert'),
  garp_lower_prio_repeat: ignored('no gratuitous ARP burst is sent after a lower-priority advert'),
  garp_extra_if: ignored('gratuitous ARPs are sent on the instance\'s interfaces only'),
  higher_prio_send_advert: ignored('a master hearing a higher priority steps down without a last advert'),
  promote_secondaries: ignored('the interface\'s promote_secondaries setting is left as it is'),
  notify_priority_changes: ignored('priority changes are not written to the notify FIFO'),
  smtp_alert: ignored('xlb sends no e-mail'),
  debug: ignored('per-instance debug levels'),
  kernel_rx_buf_size: ignored('socket buffer sizes'),
  linkbeat_use_polling: ignored('link state comes from netlink events'),
});

// ---------------------------------------------------------------- vrrp_sync_group

type Group = Named<VrrpSyncGroupConfig>;

export const syncGroupTable: Table<Group> = recording<VrrpSyncGroupConfig>({
  group: lines((n: Group) => n, (n, a) => { for (const w of a.words) n.c.group.push(w.text); }),
  notify_master: notify((c: VrrpSyncGroupConfig, s) => { c.notify_master = s; }),
  notify_backup: notify((c: VrrpSyncGroupConfig, s) => { c.notify_backup = s; }),
  notify_fault: notify((c: VrrpSyncGroupConfig, s) => { c.notify_fault = s; }),
  notify_stop: notify((c: VrrpSyncGroupConfig, s) => { c.notify_stop = s; }),
  notify: notify((c: VrrpSyncGroupConfig, s) => { c.notify = s; }),
  track_interface: unsupported('tracking on a sync group is not implemented: track in each member instance'),
  track_script: unsupported('tracking on a sync group is not implemented: track in each member instance'),
  track_file: unsupported('tracking on a sync group is not implemented: track in each member instance'),
  track_process: unsupported('process tracking is not implemented'),
  track_bfd: unsupported('BFD is not implemented'),
  notify_priority_changes: ignored('priority changes are not written to the notify FIFO'),
  smtp_alert: ignored('xlb sends no e-mail'),
  global_tracking: ignored('deprecated in keepalived; members keep their own tracking weights'),
  sync_group_tracking_weight: ignored('members keep their own tracking weights'),
});

// ---------------------------------------------------------------- vrrp_script, vrrp_track_file

type Script = Named<VrrpScriptConfig>;

export const scriptTable: Table<Script> = recording<VrrpScriptConfig>({
  script: value((n, a) => { n.c.script = a.rest(0); }, [1]),
  interval: value((n, a) => { n.c.interval = a.timer(0, 0.001, 86400) ?? n.c.interval; }),
  timeout: value((n, a) => { n.c.timeout = a.timer(0, 0.001, 86400) ?? n.c.timeout; }),
  weight: value((n, a) => {
    const w = a.int(0, -253, 253);
    if (w === undefined) return;
    n.c.weight = w;
    const r = a.at(1);
    if (r === 'reverse') n.c.weight_reverse = true;
    else if (r !== undefined && r !== 'noreverse' && r !== 'no_reverse') a.error(`weight: '${r}' is not reverse or noreverse`, 1);
  }, [1, 2]),
  rise: value((n, a) => { n.c.rise = a.int(0, 1, 1e9) ?? n.c.rise; }),
  fall: value((n, a) => { n.c.fall = a.int(0, 1, 1e9) ?? n.c.fall; }),
  user: value((n, a) => { n.c.user = a.rest(0); }, [1, 2]),
  init_fail: value((n) => { n.c.init_fail = true; }, [0, 0]),
});

type TrackFile = Named<VrrpTrackFileConfig>;

export const trackFileTable: Table<TrackFile> = recording<VrrpTrackFileConfig>({
  file: value((n, a) => { n.c.file = a.path(0) ?? n.c.file; }),
  weight: value((n, a) => {
    const w = a.int(0, -254, 254);
    if (w === undefined) return;
    n.c.weight = w;
    const r = a.at(1);
    if (r === 'reverse') n.c.weight_reverse = true;
    else if (r !== undefined && r !== 'noreverse') a.error(`weight: '${r}' is not reverse or noreverse`, 1);
  }, [1, 2]),
  init_file: unsupported('xlb does not create or initialise tracked files: create the file before starting xlb'),
});

const trackFileBlock = named<VrrpTrackFileConfig>('vrrp_track_file', (b) => (b.vrrp.vrrp_track_file ??= []),
  (name) => ({ name, file: '' }), trackFileTable, (n, _end, a) => {
    if (n.c.file === '') a.error(`${a.name} ${n.c.name}: no file given`, 0);
  });

/** The VRRP keywords of the top level. */
export const vrrpKeywords: Table<ConfigBuilder> = {
  vrrp_script: named<VrrpScriptConfig>('vrrp_script', (b) => (b.vrrp.vrrp_script ??= []), (name) => ({ name, script: '' }), scriptTable,
    (n, _end, a) => { if (n.c.script === '') a.error(`vrrp_script ${n.c.name}: no script given`, 0); }),
  vrrp_track_file: trackFileBlock,
  track_file: trackFileBlock,
  vrrp_sync_group: named<VrrpSyncGroupConfig>('vrrp_sync_group', (b) => (b.vrrp.vrrp_sync_group ??= []), (name) => ({ name, group: [] }), syncGroupTable),
  vrrp_instance: named<VrrpInstanceConfig>('vrrp_instance', (b) => b.vrrp.vrrp_instance,
    (name) => ({ name, virtual_ipaddress: [] }) as unknown as VrrpInstanceConfig, instanceTable),
};
