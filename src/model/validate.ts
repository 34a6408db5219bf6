/**
 * From the service model as written (./types.ts) to what the reconciler works with: every default
 * filled in, groups expanded to their addresses, the scheduler realised for the driver
 * (./schedulers.ts), and every problem reported with its file:line:col — errors for what the
 * driver cannot do or the model forbids, warnings for everything approximated or ignored (nothing
 * is downgraded silently). Pure.
 *
 * Defaults (keepalived 2.2's): protocol TCP, lb_algo wlc, lb_kind NAT, real weight 1, quorum 1,
 * hysteresis 0, persistence off (persistence_granularity alone turns it on with IPVS's 360 s),
 * granularity the whole address; a real's lb_kind, inhibit_on_failure and alpha default to the
 * virtual server's; a sorry server has weight 1 and the virtual server's lb_kind.
 *
 * Errors (the service is left out; `errors` is non-empty):
 *   - fwmark services and group fwmark entries when the driver cannot see marks (xdp: XDP runs
 *     before netfilter sets them);
 *   - protocol SCTP without driver support; persistence_engine (SIP) — not realised;
 *   - an unknown group, an empty group, a bad address range;
 *   - a real or sorry server whose family differs from the service's (NAT, DR; TUN may differ);
 *   - persistence_granularity that is not a contiguous netmask / prefix length of the family;
 *   - ops on a TCP service; weight outside 0..65535; quorum < 1; hysteresis < 0;
 *   - the same real twice in a service (for xdp: two reals of one address), the same
 *     address/port/protocol in two services.
 * Warnings: the scheduler's approximations (at the lb_algo line, or the virtual_server line for
 * the default wlc), scheduler flags without effect, a DR/TUN real port that differs from the
 * service's (ignored: DR and TUN cannot change the port), uthreshold/lthreshold (need connection
 * counts), smtp_alert (xlb sends no mail).
 */
import { addrBytes, addrText, familyOf, type Family } from '../datapath/xdp/net.ts';
import type { DatapathService, DriverCapabilities, Method, Persistence, Protocol } from '../datapath/driver.ts';
import { realise, type Realisation } from './schedulers.ts';
import {
  formatPos, type CheckerConfig, type CheckerDefaults, type LbAlgo, type LbKind, type NotifyScript, type Positions, type RealServer,
  type ServiceConfig, type SourcePos, type VirtualServer,
} from './types.ts';

export interface ModelProblem {
  severity: 'error' | 'warning';
  pos: SourcePos;
  message: string;
}

export function formatProblem(p: ModelProblem): string {
  return `${formatPos(p.pos)}: ${p.severity}: ${p.message}`;
}

/** One real (or sorry) server of a service, resolved. */
export interface ResolvedReal {
  /** unique: the service's id and the real's name; the key of its health (src/health) */
  id: string;
  /** keepalived's form, for logs and the notify FIFO: '[198.18.1.1]:tcp:80' */
  name: string;
  pos: SourcePos;
  address: string;
  port: number;
  weight: number;
  method: Method;
  inhibitOnFailure: boolean;
  /** starts down until its checkers succeed */
  alpha: boolean;
  notifyUp?: NotifyScript;
  notifyDown?: NotifyScript;
  checkers: CheckerConfig[];
  /** the real's own checker defaults, then the virtual server's */
  checkerDefaults: { real: CheckerDefaults; service: CheckerDefaults };
}

/** One virtual server, resolved: one or more datapath services (a group has several) with the same reals. */
export interface ResolvedService {
  /** unique: 'tcp:198.18.0.10:80', 'group:NAME:tcp' */
  id: string;
  /** keepalived's form: '[198.18.0.10]:tcp:80', '[NAME]:0' */
  name: string;
  pos: SourcePos;
  family: Family;
  /** the datapath services (address, port, protocol and options) */
  endpoints: DatapathService[];
  lbAlgo: LbAlgo;
  realisation: Realisation;
  persistence?: Persistence;
  quorum: number;
  hysteresis: number;
  quorumUp?: NotifyScript;
  quorumDown?: NotifyScript;
  alpha: boolean;
  omega: boolean;
  haSuspend: boolean;
  sorry?: ResolvedReal;
  /** sorry_server_inhibit: the sorry server stays at weight 0 while the pool has quorum */
  sorryInhibit: boolean;
  reals: ResolvedReal[];
}

export interface Resolved {
  services: ResolvedService[];
  errors: ModelProblem[];
  warnings: ModelProblem[];
}

const METHOD: Record<LbKind, Method> = { DR: 'dr', TUN: 'tun', NAT: 'nat' };
const PROTO: Record<'TCP' | 'UDP', Protocol> = { TCP: 'tcp', UDP: 'udp' };
/** IPVS's persistence timeout when persistence_timeout has no value, or only the granularity is given */
export const DEFAULT_PERSISTENCE_TIMEOUT = 360;
const MAX_WEIGHT = 65535;

/** keepalived's '[address]:proto:port' */
export function trio(address: string, protocol: string, port: number): string {
  return `[${address}]:${protocol}:${port}`;
}

/** Resolve and check the services of a configuration for a driver with these capabilities. */
export function resolveServices(config: ServiceConfig, caps: DriverCapabilities): Resolved {
  const errors: ModelProblem[] = [];
  const warnings: ModelProblem[] = [];
  const services: ResolvedService[] = [];
  const groups = new Map(config.virtual_server_group.map((g) => [g.name, g]));
  const endpointOwner = new Map<string, { pos: SourcePos; name: string }>();

  for (const vs of config.virtual_server) {
    const at = <K extends keyof Positions<VirtualServer>>(k: K): SourcePos => vs.at?.[k] ?? vs.pos;
    const ctx = { errors: [] as ModelProblem[], warnings };
    const err = (pos: SourcePos, message: string) => ctx.errors.push({ severity: 'error', pos, message });
    const warn = (pos: SourcePos, message: string) => warnings.push({ severity: 'warning', pos, message });

    // protocol
    const proto = vs.protocol ?? 'TCP';
    if (proto === 'SCTP' && !caps.sctp) err(at('protocol'), 'protocol SCTP: the XDP datapath balances TCP and UDP only');
    const protocol = proto === 'SCTP' ? 'tcp' : PROTO[proto];

    // what the service is: address(es), family
    let name: string;
    let id: string;
    const addresses: { address: string; port: number; pos: SourcePos }[] = [];
    const svc = vs.service;
    if (svc.kind === 'ip') {
      name = trio(svc.address, protocol, svc.port);
      id = `${protocol}:${svc.address}:${svc.port}`;
      addresses.push({ address: svc.address, port: svc.port, pos: vs.pos });
    } else if (svc.kind === 'fwmark') {
      name = `FWM ${svc.fwmark}`;
      id = `fwmark:${svc.fwmark}:${protocol}`;
      if (!caps.fwmark) err(vs.pos, fwmarkRefusal(`virtual_server fwmark ${svc.fwmark}`));
    } else {
      name = `[${svc.group}]:0`;
      id = `group:${svc.group}:${protocol}`;
      const g = groups.get(svc.group);
      if (!g) {
        err(vs.pos, `virtual_server group ${svc.group}: no virtual_server_group of that name`);
      } else {
        if (g.entries.length === 0) err(g.pos, `virtual_server_group ${g.name} has no entries`);
        for (const e of g.entries) {
          if (e.kind === 'fwmark') {
            if (!caps.fwmark) err(e.pos, fwmarkRefusal(`virtual_server_group ${g.name}: fwmark ${e.fwmark}`));
            continue;
          }
          const expanded = expandRange(e.address, e.range_end);
          if (typeof expanded === 'string') err(e.pos, `virtual_server_group ${g.name}: ${expanded}`);
          else for (const address of expanded) addresses.push({ address, port: e.port, pos: e.pos });
        }
      }
    }
    const families = new Set(addresses.map((a) => familyOf(a.address)));
    if (families.size > 1) err(vs.pos, `${name}: its addresses mix IPv4 and IPv6`);
    const family: Family = families.size === 1 ? [...families][0]! : vs.ip_family === 'inet6' ? 6 : 4;
    if (vs.ip_family && (vs.ip_family === 'inet6') !== (family === 6)) err(at('ip_family'), `ip_family ${vs.ip_family} conflicts with the address family of ${name}`);

    // scheduler
    const lbAlgo = vs.lb_algo ?? 'wlc';
    const { realisation, notes } = realise(lbAlgo, vs.sched_flags);
    if (!realisation.exact && !caps.connectionCounts) {
      warn(at('lb_algo'), `lb_algo ${lbAlgo}${vs.lb_algo ? '' : " (keepalived's default)"} is approximated by the XDP datapath: ${realisation.how}`);
    }
    for (const n of notes) warn(at('sched_flags'), n.note);
    if (vs.ops && protocol !== 'udp') err(at('ops'), 'ops (one-packet scheduling) is for UDP services only');
    if (vs.persistence_engine !== undefined) err(at('persistence_engine'), `persistence_engine ${vs.persistence_engine}: not realised by the XDP datapath`);

    // persistence
    let persistence: Persistence | undefined;
    const timeout = vs.persistence_timeout ?? (vs.persistence_granularity !== undefined ? DEFAULT_PERSISTENCE_TIMEOUT : 0);
    if (!Number.isInteger(timeout) || timeout < 0 || timeout > 0xffffffff) {
      err(at('persistence_timeout'), `persistence_timeout ${timeout} is not a whole number of seconds in 0..4294967295`);
    } else if (timeout > 0) {
      persistence = { timeout };
      if (vs.persistence_granularity !== undefined) {
        const g = granularity(vs.persistence_granularity, family);
        if (typeof g === 'string') err(at('persistence_granularity'), g);
        else persistence.granularity = g;
      }
    }

    // quorum
    const quorum = vs.quorum ?? 1;
    const hysteresis = vs.hysteresis ?? 0;
    if (!Number.isInteger(quorum) || quorum < 1) err(at('quorum'), `quorum ${quorum} is not a whole number >= 1`);
    if (!Number.isInteger(hysteresis) || hysteresis < 0) err(at('hysteresis'), `hysteresis ${hysteresis} is not a whole number >= 0`);
    if (vs.smtp_alert) warn(at('smtp_alert'), 'smtp_alert: xlb sends no SMTP alerts (ignored)');

    // reals
    const serviceKind = vs.lb_kind ?? 'NAT';
    const serviceDefaults: CheckerDefaults = pickDefaults(vs);
    // the reals without defaults of their own (most) share one object: 100,000 reals, 2 objects less each
    const sharedDefaults = { real: NO_DEFAULTS, service: serviceDefaults };
    const resolveReal = (r: RealServer | undefined, what: string, sorry?: VirtualServer['sorry_server']): ResolvedReal | undefined => {
      const pos = r?.pos ?? sorry!.pos;
      const address = r?.address ?? sorry!.address;
      const rawPort = r?.port ?? sorry!.port;
      const kind = r?.lb_kind ?? sorry?.lb_kind ?? serviceKind;
      const rat = <K extends keyof Positions<RealServer>>(k: K): SourcePos => r?.at?.[k] ?? pos;
      let realFamily: Family;
      try {
        realFamily = familyOf(address);
      } catch (e) {
        err(pos, `${what} ${address}: ${(e as Error).message}`);
        return undefined;
      }
      if (realFamily !== family && kind !== 'TUN') {
        err(pos, `${what} ${address}: a ${kind} real server must have the virtual server's address family (IPv${family})`);
        return undefined;
      }
      const weight = r ? r.weight ?? 1 : 1;
      if (!Number.isInteger(weight) || weight < 0 || weight > MAX_WEIGHT) err(rat('weight'), `${what} ${address}: weight ${weight} is not in 0..${MAX_WEIGHT}`);
      let port = rawPort;
      if (kind !== 'NAT') {
        const servicePorts = new Set(addresses.map((a) => a.port));
        if (port !== 0 && !(servicePorts.size === 1 && servicePorts.has(port))) {
          warn(pos, `${what} ${address} port ${port}: ignored, ${kind} cannot change the port (the real receives the service's port)`);
        }
        port = 0;
      }
      if (r?.uthreshold !== undefined || r?.lthreshold !== undefined) {
        warn(r.at?.uthreshold ?? r.at?.lthreshold ?? pos, `${what} ${address}: uthreshold/lthreshold are not realised by the XDP datapath (it keeps no active connection counts): ignored`);
      }
      if (r?.smtp_alert) warn(rat('smtp_alert'), 'smtp_alert: xlb sends no SMTP alerts (ignored)');
      const realName = trio(address, protocol, rawPort);
      return {
        id: `${id}/${sorry ? 'sorry' : realName}`, name: realName, pos, address, port, weight, method: METHOD[kind],
        inhibitOnFailure: r ? r.inhibit_on_failure ?? vs.inhibit_on_failure ?? false : sorry?.inhibit ?? false,
        alpha: r ? r.alpha ?? vs.alpha ?? false : false,
        ...(r?.notify_up ? { notifyUp: r.notify_up } : {}), ...(r?.notify_down ? { notifyDown: r.notify_down } : {}),
        checkers: r?.checkers ?? [],
        checkerDefaults: realDefaults(r, sharedDefaults),
      };
    };
    const reals: ResolvedReal[] = [];
    const seen = new Map<string, SourcePos>();
    for (const r of vs.real_server) {
      const real = resolveReal(r, 'real_server');
      if (!real) continue;
      const same = caps.realsPerAddress ? real.name : real.address;
      const first = seen.get(same);
      if (first) {
        err(r.pos, caps.realsPerAddress
          ? `real_server ${real.name} is listed twice in ${name} (first at ${formatPos(first)})`
          : `real_server ${real.name}: ${name} already has a real server at ${real.address} (${formatPos(first)}); the XDP datapath holds one per address`);
        continue;
      }
      seen.set(same, r.pos);
      reals.push(real);
    }
    const sorry = vs.sorry_server ? resolveReal(undefined, 'sorry_server', vs.sorry_server) : undefined;

    // one owner per datapath service
    const endpoints: DatapathService[] = addresses.map((a) => ({
      address: a.address, port: a.port, protocol,
      ...(realisation.hash === 'source' ? { hashSourceOnly: true } : {}),
      ...(vs.ops ? { ops: true } : {}),
      ...(persistence ? { persistence } : {}),
    }));
    for (const [i, e] of endpoints.entries()) {
      const key = `${e.protocol}:${e.address}:${e.port}`;
      const owner = endpointOwner.get(key);
      if (owner) err(addresses[i]!.pos, `${trio(e.address, e.protocol, e.port)} is already a service (${owner.name} at ${formatPos(owner.pos)})`);
      else endpointOwner.set(key, { pos: addresses[i]!.pos, name });
    }

    if (ctx.errors.length > 0) {
      errors.push(...ctx.errors);
      continue;
    }
    services.push({
      id, name, pos: vs.pos, family, endpoints, lbAlgo, realisation,
      ...(persistence ? { persistence } : {}),
      quorum, hysteresis,
      ...(vs.quorum_up ? { quorumUp: vs.quorum_up } : {}), ...(vs.quorum_down ? { quorumDown: vs.quorum_down } : {}),
      alpha: vs.alpha ?? false, omega: vs.omega ?? false, haSuspend: vs.ha_suspend ?? false,
      ...(sorry ? { sorry } : {}), sorryInhibit: vs.sorry_server?.inhibit ?? false,
      reals,
    });
  }
  return { services, errors, warnings };
}

function fwmarkRefusal(what: string): string {
  return `${what}: the XDP datapath cannot see firewall marks (XDP runs before netfilter marks packets); ` +
    'give the service by address and port (virtual_server ADDRESS PORT, or a virtual_server_group of addresses)';
}

const DEFAULT_KEYS = ['delay_loop', 'connect_timeout', 'retry', 'delay_before_retry', 'warmup'] as const;
const pickDefaults = (o: CheckerDefaults): CheckerDefaults => Object.fromEntries(
  DEFAULT_KEYS.filter((k) => o[k] !== undefined).map((k) => [k, o[k]]),
);
/** No checker defaults (frozen: shared by every real without its own). */
const NO_DEFAULTS: CheckerDefaults = Object.freeze({});

/** A real's checker defaults: `shared` (its service's, none of its own) unless it has some. */
function realDefaults(r: RealServer | undefined, shared: ResolvedReal['checkerDefaults']): ResolvedReal['checkerDefaults'] {
  if (!r || DEFAULT_KEYS.every((k) => r[k] === undefined)) return shared;
  return { real: pickDefaults(r), service: shared.service };
}

/** A group's `first-last` range (the last octet, or for IPv6 the last group) expanded; a string says what is wrong. */
export function expandRange(first: string, end: number | undefined): string[] | string {
  let family: Family;
  try {
    family = familyOf(first);
  } catch (e) {
    return (e as Error).message;
  }
  if (end === undefined) return [first];
  if (family === 4) {
    const parts = first.split('.').map(Number);
    const start = parts[3]!;
    if (!Number.isInteger(end) || end < start || end > 255) return `range ${first}-${end}: the end must be in ${start}..255`;
    return Array.from({ length: end - start + 1 }, (_, i) => `${parts.slice(0, 3).join('.')}.${start + i}`);
  }
  const bytes = addrBytes(first);
  const start = bytes.readUInt16BE(14);
  if (!Number.isInteger(end) || end < start || end > 0xffff) return `range ${first}-${end.toString(16)}: the end must be in ${start.toString(16)}..ffff`;
  return Array.from({ length: end - start + 1 }, (_, i) => {
    bytes.writeUInt16BE(start + i, 14);
    return addrText(bytes, 6);
  });
}

/** persistence_granularity as a prefix length: an IPv4 netmask (contiguous) or an IPv6 prefix length 1..128. */
export function granularity(text: string, family: Family): number | string {
  if (family === 6) {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < 1 || n > 128) return `persistence_granularity ${text}: an IPv6 service takes a prefix length in 1..128`;
    return n;
  }
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  const octets = m ? m.slice(1).map(Number) : [];
  if (!m || octets.some((o) => o > 255)) return `persistence_granularity ${text}: an IPv4 service takes a netmask (255.255.255.0)`;
  const bits = octets.reduce((v, o) => v * 256 + o, 0);
  const len = 32 - Math.log2(2 ** 32 - bits);
  if (bits === 0 || !Number.isInteger(len)) return `persistence_granularity ${text} is not a contiguous netmask`;
  return len;
}
