/**
 * Routes and policy rules over rtnetlink, for keepalived's virtual_routes and virtual_rules: added
 * when an instance becomes master, removed when it leaves.
 *
 *   addRoute(nl, r) / deleteRoute(nl, r)  ip route add|del [TYPE] DST [via GW] [dev IFINDEX]
 *                                         [table T] [src S] [scope SC] [metric M] [proto P]
 *   listRoutes(nl, f?)                    ip route show table all (one family / table if asked)
 *   addRule(nl, r) / deleteRule(nl, r)    ip rule add|del [not] [from P] [to P] [fwmark M[/MASK]]
 *                                         [iif N] [oif N] [priority N] [table T | ACTION]
 *
 * Defaults, as `ip` has them: table main (254); type unicast; scope link for a unicast route
 * without a gateway, host for local, universe otherwise; protocol 'keepalived' (18, as
 * keepalived marks its routes, so leftovers can be told from others). A rule's action is 'table'
 * when a table is given. A table above 255 goes in RTA_TABLE / FRA_TABLE (with 252 in the
 * header, as the kernel asks).
 *
 * Errors: the kernel's, with code / errno / syscall ('RTM_NEWROUTE', ...) and the route or rule
 * in the message (./rtnl.ts); bad arguments are EINVAL before anything is sent.
 */
import { FlagsNew, rt } from 'netlink';
import type { Family } from '../datapath/xdp/net.ts';
import { checkFamily, checkIfindex, checkU32, invalid, ipOfFamily, parsePrefix } from './args.ts';
import { checkIfname } from './link.ts';
import { AF_OF, FAMILY_OF_AF, body, ipText, scopeNumber, type Rtnl, type Scope } from './rtnl.ts';

export const RT_TABLE_MAIN = 254;
const RT_TABLE_COMPAT = 252;
/** RTPROT_KEEPALIVED */
export const RTPROT_KEEPALIVED = 18;
const RT_SCOPE = { universe: 0, link: 253, host: 254 } as const;

export type RouteType = 'unicast' | 'local' | 'broadcast' | 'anycast' | 'multicast' | 'blackhole' | 'unreachable' | 'prohibit' | 'throw';
const ROUTE_TYPES: Record<RouteType, number> = {
  unicast: 1, local: 2, broadcast: 3, anycast: 4, multicast: 5, blackhole: 6, unreachable: 7, prohibit: 8, throw: 9,
};

export interface RouteSpec {
  /** 'ADDRESS/LEN' or 'default' (with `family`) */
  dst: string;
  /** needed only with dst 'default' and no other address to tell it */
  family?: Family;
  type?: RouteType;
  via?: string;
  ifindex?: number;
  table?: number;
  /** preferred source (RTA_PREFSRC) */
  src?: string;
  scope?: Scope;
  /** RTA_PRIORITY */
  metric?: number;
  protocol?: number;
}

export interface RouteInfo {
  family: Family;
  dst: string;
  type: number;
  table: number;
  protocol: number;
  scope: number;
  via: string | null;
  ifindex: number | null;
  src: string | null;
  metric: number | null;
}

function tableFields(table: number, syscall: string): { header: number; attr: number } {
  checkU32(table, 'table', syscall);
  if (table === 0) throw invalid(syscall, 'table 0 is not a routing table');
  return { header: table < 256 ? table : RT_TABLE_COMPAT, attr: table };
}

function routeText(r: RouteSpec): string {
  const parts = [r.type && r.type !== 'unicast' ? `${r.type} ${r.dst}` : r.dst];
  if (r.via) parts.push(`via ${r.via}`);
  if (r.ifindex !== undefined) parts.push(`dev ${r.ifindex}`);
  if (r.table !== undefined) parts.push(`table ${r.table}`);
  if (r.src) parts.push(`src ${r.src}`);
  if (r.metric !== undefined) parts.push(`metric ${r.metric}`);
  return parts.join(' ');
}

function encodeRoute(r: RouteSpec, syscall: string): { data: rt.Route; attrs: rt.RouteAttrs } {
  if (typeof r !== 'object' || r === null) throw invalid(syscall, 'the route spec must be an object');
  const type = r.type ?? 'unicast';
  const typeNumber = ROUTE_TYPES[type];
  if (typeNumber === undefined) throw invalid(syscall, `route type '${String(type)}' is not one of ${Object.keys(ROUTE_TYPES).join(', ')}`);
  let family = r.family === undefined ? undefined : checkFamily(r.family, syscall);
  const attrs: rt.RouteAttrs = {};
  let dstLen = 0;
  if (r.dst !== 'default') {
    const d = parsePrefix(r.dst, family, syscall, 'destination');
    family = d.family;
    dstLen = d.length;
    if (dstLen > 0) attrs.dst = d.bytes;
  }
  const sameFamily = (text: string, what: string): Buffer => {
    const a = ipOfFamily(text, family, syscall, what);
    family = a.family;
    return a.bytes;
  };
  if (r.via !== undefined) attrs.gateway = sameFamily(r.via, 'gateway');
  if (r.src !== undefined) attrs.prefsrc = sameFamily(r.src, 'source');
  if (family === undefined) throw invalid(syscall, `route ${r.dst}: say the family (4 or 6)`);
  if (r.ifindex !== undefined) attrs.oif = checkIfindex(r.ifindex, syscall);
  if (r.metric !== undefined) attrs.priority = checkU32(r.metric, 'metric', syscall);
  const table = tableFields(r.table ?? RT_TABLE_MAIN, syscall);
  attrs.table = table.attr;
  const defaultScope = type === 'local' ? RT_SCOPE.host : type === 'unicast' && r.via === undefined ? RT_SCOPE.link : RT_SCOPE.universe;
  const data: rt.Route = {
    family: AF_OF[family],
    dstLen,
    table: table.header,
    protocol: r.protocol === undefined ? RTPROT_KEEPALIVED : checkU32(r.protocol, 'protocol', syscall) & 0xff,
    scope: r.scope === undefined ? defaultScope : scopeNumber(r.scope, syscall),
    type: typeNumber,
  };
  return { data, attrs };
}

/** Add a route; EEXIST if the same route is there, unless `replace`. */
export async function addRoute(nl: Rtnl, r: RouteSpec, o: { replace?: boolean } = {}): Promise<void> {
  const { data, attrs } = encodeRoute(r, 'RTM_NEWROUTE');
  const flags = FlagsNew.CREATE | (o.replace ? FlagsNew.REPLACE : FlagsNew.EXCL);
  await nl.request(rt.MessageType.NEWROUTE, body((out) => rt.formatRouteMessage({ kind: 'route', data, attrs }, out)), flags, routeText(r));
}

/** Delete a route (matched on what the spec gives); ESRCH if there is none. */
export async function deleteRoute(nl: Rtnl, r: RouteSpec): Promise<void> {
  const { data, attrs } = encodeRoute(r, 'RTM_DELROUTE');
  // the kernel matches a delete on the fields given; protocol and scope are only matched when set
  if (r.protocol === undefined) data.protocol = 0 as rt.RouteProtocol;
  if (r.scope === undefined) data.scope = 255; // RT_SCOPE_NOWHERE: any scope (as `ip route del` sends)
  await nl.request(rt.MessageType.DELROUTE, body((out) => rt.formatRouteMessage({ kind: 'route', data, attrs }, out)), 0, routeText(r));
}

/** Every route of every table (of one family / table if asked). */
export async function listRoutes(nl: Rtnl, filter: { family?: Family; table?: number } = {}): Promise<RouteInfo[]> {
  const sc = 'RTM_GETROUTE';
  if (filter.family !== undefined) checkFamily(filter.family, sc);
  const data: rt.Route = { family: filter.family ? AF_OF[filter.family] : 0 };
  const msgs = await nl.dump(rt.MessageType.GETROUTE, body((out) => rt.formatRouteMessage({ kind: 'route', data, attrs: {} }, out)),
    `family ${filter.family ?? 'any'}`);
  const out: RouteInfo[] = [];
  for (const m of msgs) {
    if (m.kind !== 'route') continue;
    const family = FAMILY_OF_AF[m.data.family ?? 0];
    if (!family) continue;
    const table = m.attrs.table ?? m.data.table ?? 0;
    if (filter.table !== undefined && table !== filter.table) continue;
    const len = m.data.dstLen ?? 0;
    const dst = len === 0 ? 'default' : `${ipText(m.attrs.dst, family) ?? '?'}/${len}`;
    out.push({
      family,
      dst,
      type: typeof m.data.type === 'number' ? m.data.type : rt.RouteType[m.data.type ?? 'UNSPEC'],
      table,
      protocol: typeof m.data.protocol === 'number' ? m.data.protocol : rt.RouteProtocol[m.data.protocol ?? 'BOOT'],
      scope: typeof m.data.scope === 'number' ? m.data.scope : rt.RouteScope[m.data.scope ?? 'UNIVERSE'],
      via: ipText(m.attrs.gateway, family),
      ifindex: m.attrs.oif ?? null,
      src: ipText(m.attrs.prefsrc, family),
      metric: m.attrs.priority ?? null,
    });
  }
  return out;
}

// ---------------------------------------------------------------- rules

export type RuleAction = 'table' | 'blackhole' | 'unreachable' | 'prohibit';
const RULE_ACTIONS: Record<RuleAction, number> = { table: 1, blackhole: 6, unreachable: 7, prohibit: 8 };

export interface RuleSpec {
  /** needed when neither from nor to tells it */
  family?: Family;
  /** 'ADDRESS/LEN' */
  from?: string;
  to?: string;
  /** with action 'table' (the default when a table is given) */
  table?: number;
  action?: RuleAction;
  priority?: number;
  fwmark?: number;
  fwmask?: number;
  /** interface names, as FRA_IIFNAME / FRA_OIFNAME take them */
  iif?: string;
  oif?: string;
  /** `not` */
  invert?: boolean;
}

function ruleText(r: RuleSpec): string {
  const parts: string[] = [];
  if (r.invert) parts.push('not');
  if (r.from) parts.push(`from ${r.from}`);
  if (r.to) parts.push(`to ${r.to}`);
  if (r.fwmark !== undefined) parts.push(`fwmark ${r.fwmark}${r.fwmask !== undefined ? `/${r.fwmask}` : ''}`);
  if (r.iif) parts.push(`iif ${r.iif}`);
  if (r.oif) parts.push(`oif ${r.oif}`);
  if (r.priority !== undefined) parts.push(`priority ${r.priority}`);
  if (r.table !== undefined) parts.push(`table ${r.table}`);
  if (r.action && r.action !== 'table') parts.push(r.action);
  return parts.join(' ') || 'all';
}

function encodeRule(r: RuleSpec, syscall: string): { data: rt.Rule; attrs: rt.RuleAttrs } {
  if (typeof r !== 'object' || r === null) throw invalid(syscall, 'the rule spec must be an object');
  let family = r.family === undefined ? undefined : checkFamily(r.family, syscall);
  const attrs: rt.RuleAttrs = {};
  const data: rt.Rule = { dstLen: 0, srcLen: 0, tos: 0 };
  const prefix = (text: string, what: string) => {
    const p = parsePrefix(text, family, syscall, what);
    family = p.family;
    return p;
  };
  if (r.from !== undefined) {
    const p = prefix(r.from, 'from');
    data.srcLen = p.length;
    if (p.length > 0) attrs.src = p.bytes;
  }
  if (r.to !== undefined) {
    const p = prefix(r.to, 'to');
    data.dstLen = p.length;
    if (p.length > 0) attrs.dst = p.bytes;
  }
  if (family === undefined) throw invalid(syscall, `rule ${ruleText(r)}: say the family (4 or 6)`);
  data.family = AF_OF[family];
  const action = r.action ?? (r.table !== undefined ? 'table' : undefined);
  if (action === undefined) throw invalid(syscall, `rule ${ruleText(r)}: give a table or an action`);
  const actionNumber = RULE_ACTIONS[action];
  if (actionNumber === undefined) throw invalid(syscall, `rule action '${String(action)}' is not one of ${Object.keys(RULE_ACTIONS).join(', ')}`);
  data.action = actionNumber as rt.RuleAction;
  if (action === 'table') {
    if (r.table === undefined) throw invalid(syscall, `rule ${ruleText(r)}: action 'table' needs a table`);
    const t = tableFields(r.table, syscall);
    data.table = t.header;
    attrs.table = t.attr;
  } else if (r.table !== undefined) {
    throw invalid(syscall, `rule ${ruleText(r)}: a table goes with action 'table' only`);
  }
  if (r.priority !== undefined) attrs.priority = checkU32(r.priority, 'priority', syscall);
  if (r.fwmark !== undefined) attrs.fwmark = checkU32(r.fwmark, 'fwmark', syscall);
  if (r.fwmask !== undefined) {
    if (r.fwmark === undefined) throw invalid(syscall, 'fwmask goes with fwmark');
    attrs.fwmask = checkU32(r.fwmask, 'fwmask', syscall);
  }
  const ifname = (name: string) => {
    try {
      return checkIfname(name);
    } catch (err) {
      throw invalid(syscall, (err as Error).message);
    }
  };
  if (r.iif !== undefined) attrs.iifname = ifname(r.iif);
  if (r.oif !== undefined) attrs.oifname = ifname(r.oif);
  if (r.invert) data.flags = { invert: true };
  return { data, attrs };
}

/** Add a rule; EEXIST if the same rule is there. */
export async function addRule(nl: Rtnl, r: RuleSpec): Promise<void> {
  const { data, attrs } = encodeRule(r, 'RTM_NEWRULE');
  await nl.request(rt.MessageType.NEWRULE, body((out) => rt.formatRuleMessage({ kind: 'rule', data, attrs }, out)),
    FlagsNew.CREATE | FlagsNew.EXCL, ruleText(r));
}

/** Delete a rule (matched on what the spec gives); ENOENT if there is none. */
export async function deleteRule(nl: Rtnl, r: RuleSpec): Promise<void> {
  const { data, attrs } = encodeRule(r, 'RTM_DELRULE');
  await nl.request(rt.MessageType.DELRULE, body((out) => rt.formatRuleMessage({ kind: 'rule', data, attrs }, out)), 0, ruleText(r));
}
