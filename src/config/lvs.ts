/**
 * The virtual_server half of keepalived.conf: virtual_server_group, virtual_server, real_server,
 * sorry_server and every checker block -> ServiceConfig (src/model/types.ts), as keepalived 2.2.7
 * reads them (its check_parser.c, check_api.c and check_*.c; every keyword below was run through
 * `keepalived --config-test` 2.2.7 on this machine). Then, once the whole file is read,
 * checkServices(): FILE_CHECK's track_file resolved, every checker's config checked by
 * src/health/config.ts (its CheckerConfigError named keyword positioned at that keyword), and the
 * service model's own checks (src/model/validate.ts's resolveServices) — all positioned.
 *
 * Keywords, by block (aliases in brackets; every value is positioned in `pos` / `at`):
 *
 *   virtual_server_group NAME { ... }: entry lines `ADDRESS [PORT]`, where ADDRESS may be a range
 *     `A-N` (last octet, or hex last group), `A-B` or `A/LEN` (split into last-octet ranges);
 *     `fwmark N [inet|inet6]`.
 *   virtual_server ADDRESS [PORT] | fwmark N | group NAME { ... }:
 *     implemented: ip_family, lb_algo [lvs_sched], lb_kind [lvs_method] (TUN `type ipip` only),
 *     ops, flag-1, flag-2, flag-3, sh-port, sh-fallback, mh-port, mh-fallback, persistence_engine,
 *     persistence_timeout [N], persistence_granularity, protocol, ha_suspend, smtp_alert,
 *     virtualhost, alpha, omega, quorum, hysteresis, quorum_up, quorum_down, inhibit_on_failure,
 *     sorry_server, sorry_server_inhibit, sorry_server_lvs_method, delay_loop, connect_timeout,
 *     retry, delay_before_retry, warmup, real_server;
 *     hashed: keepalived 2.2.7 sets no flag for it ("only applies to sh scheduler"), nor does xlb;
 *     warnings (class ignored): snmp_name (no SNMP agent), weight (a virtual server's weight).
 *   real_server ADDRESS [PORT] { ... }:
 *     implemented: weight, lvs_method, uthreshold, lthreshold, inhibit_on_failure, notify_up,
 *     notify_down, alpha, retry, delay_before_retry, warmup, connect_timeout, delay_loop,
 *     smtp_alert, virtualhost, and the checkers below; warning: snmp_name.
 *   checkers: TCP_CHECK, HTTP_GET, SSL_GET, UDP_CHECK, PING_CHECK, DNS_CHECK, SMTP_CHECK,
 *     MISC_CHECK, FILE_CHECK — every keyword keepalived 2.2.7 accepts in them (see
 *     src/health/types.ts; nb_get_retry only in HTTP_GET/SSL_GET, deprecated, as keepalived);
 *     BFD_CHECK: error (class unsupported: xlb has no BFD). keepalived's man page documents
 *     FILE_CHECK `dynamic`, but 2.2.7 does not know the word: an unknown keyword here too.
 *   SSL { password ca certificate key } (SSL_GET's TLS context): read, not implemented (xlb's
 *     SSL_GET presents no client certificate and verifies no server certificate): an error (class
 *     unsupported) when some SSL_GET would use it, else a warning (class ignored); reported by
 *     checkServices, which knows the checkers.
 *
 * Ranges are keepalived 2.2.7's: weight 0..2147483647 (the XDP datapath's 0..65535 is the model's
 * check), quorum 1..4294967295, hysteresis 0..4294967295, persistence_timeout 1..2678400 s,
 * virtual/real server retry 1..4294967295 (a checker's from 0), connect_timeout up to 4294.967295 s,
 * delay_loop above 0, ports 1..65535 (service and real ports 0..65535), fwmark 0..4294967295.
 * A bad value is an error at the value and leaves the setting at its default (keepalived's way).
 *
 * After each virtual_server, what keepalived 2.2.7 fills in and reports (class general_error, so
 * check-config's exit code is keepalived's; severity warning, since xlb then does the same):
 * no protocol on an address service -> UDP (keepalived's default, not TCP); no lb_algo -> wlc; no
 * lb_kind -> NAT; port 0 without persistence -> persistence_timeout 360; a protocol on a fwmark
 * service is ignored; a virtual server without real servers is left out; a quorum above the
 * real servers' total weight is reduced to it (keepalived's 0 for a total of 0 is not: the model's
 * quorum is at least 1); a hysteresis not below the quorum becomes quorum - 1.
 */
import { XDP_CAPABILITIES, type DriverCapabilities } from '../datapath/driver.ts';
import { addrBytes, addrText, familyOf, type Family } from '../datapath/xdp/net.ts';
import {
  CheckerConfigError, parseDigest, parseDnsType, parseHexString, parseStatusCode, resolveChecker,
} from '../health/config.ts';
import type {
  CheckerTiming, ConnectionOptions, DnsCheckConfig, FileCheckConfig, HealthCheckerKind, HttpCheckConfig, HttpUrlConfig,
  MiscCheckConfig, SmtpCheckConfig, StatusRange, UdpCheckConfig,
} from '../health/types.ts';
import { DEFAULT_PERSISTENCE_TIMEOUT, resolveServices, type ResolvedService } from '../model/validate.ts';
import {
  formatPos, LB_ALGOS, LB_KINDS, PROTOCOLS, type CheckerConfig, type GroupEntry, type LbKind, type NotifyScript, type RealServer,
  type SchedFlag, type ServiceConfig, type SorryServer, type SourcePos, type VirtualServer, type VirtualServerGroup,
} from '../model/types.ts';
import type { VrrpTrackFileConfig } from '../vrrp/config.ts';
import type { Problems } from './diagnostics.ts';
import { alias, block, flag, ignored, lift, lines, unsupported, value, type Args, type Table } from './schema.ts';

// ---------------------------------------------------------------- keepalived's ranges

const UINT_MAX = 4294967295;
/** IPVS_WEIGHT_LIMIT in keepalived 2.2.7 */
const WEIGHT_MAX = 2147483647;
/** LVS_MAX_TIMEOUT: 31 days */
const PERSISTENCE_MAX = 2678400;
/** read_timer's limits: a microsecond, ULONG_MAX microseconds; connect_timeout: UINT_MAX microseconds */
const TIMER_MIN = 0.000001;
const TIMER_MAX = 18446744073709.551;
const CONNECT_TIMEOUT_MAX = 4294.967295;
/** misc_timeout: whole seconds, UINT_MAX microseconds */
const MISC_TIMEOUT_MAX = 4294;
const UDP_REPLY_MAX = 65535;
const IFNAMSIZ = 16;

/** The most addresses one virtual_server_group line may stand for (xlb's limit: each is a datapath service). */
export const MAX_GROUP_LINE_ADDRESSES = 65536;

// ---------------------------------------------------------------- helpers

type WithAt = { at?: Record<string, SourcePos | undefined> };

/** Set a key and remember where its keyword stands. */
function put<O extends WithAt, K extends keyof O & string>(o: O, key: K, v: O[K], a: Args): void {
  o[key] = v;
  (o.at ??= {})[key] = a.pos;
}

const defined = <V>(v: V | undefined, set: (v: V) => void): void => {
  if (v !== undefined) set(v);
};

/** `SCRIPT [USER [GROUP]]`: quorum_up/down, notify_up/down (keepalived's notify_script_init). */
function script(a: Args): NotifyScript | undefined {
  const command = a.string(0);
  if (command === undefined) return undefined;
  if (command.trim() === '') {
    a.error(`${a.name}: the script is empty`, 0);
    return undefined;
  }
  const s: NotifyScript = { command };
  if (a.at(1) !== undefined) s.user = a.at(1)!;
  if (a.at(2) !== undefined) s.group = a.at(2)!;
  return s;
}

/**
 * `lvs_method NAT|DR|TUN [type ipip|gue|gre] [port N] [csum|nocsum|remcsum]`: the kind, or
 * undefined after a positioned problem. xlb's tunnel is IP-in-IP: GUE and GRE are refused by name.
 */
function forwarding(a: Args): LbKind | undefined {
  const kind = a.choice(0, LB_KINDS);
  if (kind === undefined) return undefined;
  for (let i = 1; i < a.count; i++) {
    const w = a.at(i)!;
    if (kind !== 'TUN') {
      a.error(`${a.name} ${kind}: '${w}' applies to TUN only`, i);
      return undefined;
    }
    if (w === 'type') {
      const type = a.choice(i + 1, ['ipip', 'gue', 'gre']);
      if (type === undefined) return undefined;
      if (type !== 'ipip') {
        a.report('unsupported', `${a.name} TUN type ${type}: not implemented by xlb (its tunnels are IP-in-IP: type ipip)`, i + 1);
        return undefined;
      }
      i++;
    } else if (w === 'port' || w === 'csum' || w === 'remcsum') {
      a.report('unsupported', `${a.name} TUN ${w}: not implemented by xlb (for GUE/GRE tunnels; xlb's are IP-in-IP)`, i);
      return undefined;
    } else if (w !== 'nocsum') {
      a.error(`${a.name}: '${w}' is not a tunnel option (type, port, csum, nocsum, remcsum)`, i);
      return undefined;
    }
  }
  return kind;
}

type GroupRange = { address: string; range_end?: number };

/**
 * A virtual_server_group line's address as keepalived 2.2.7 reads it: `A` (one address), `A-N`
 * (up to N in the last octet, decimal, or the last group of an IPv6 address, hex), `A-B` (every
 * address from A to B) or `A/LEN` (the prefix's addresses; A must be its first). N must be above
 * A's last octet/group and B above A (keepalived's rules). Returned as the model's ranges, each
 * within one last octet/group (a longer range is split), or a message saying what is wrong.
 */
export function groupRanges(word: string): GroupRange[] | string {
  const slash = word.indexOf('/');
  const dash = word.indexOf('-');
  const first = word.slice(0, slash >= 0 ? slash : dash >= 0 ? dash : word.length);
  let family: Family;
  try {
    family = familyOf(first);
  } catch {
    return `'${first}' is not an IP address`;
  }
  if (slash < 0 && dash < 0) return [{ address: first }];
  const bytes = family === 4 ? 4 : 16;
  const toBig = (b: Buffer) => BigInt(`0x${b.subarray(0, bytes).toString('hex')}`);
  const lo = toBig(addrBytes(first));
  let hi: bigint;
  if (slash >= 0) {
    const text = word.slice(slash + 1);
    const len = Number(text);
    const max = family === 4 ? 32 : 128;
    if (!/^\d+$/.test(text) || len > max) return `'${word}': the prefix length must be in 0..${max}`;
    const host = (1n << BigInt(max - len)) - 1n;
    if ((lo & host) !== 0n) return `'${word}': ${first} is not the first address of a /${len}`;
    hi = lo | host;
  } else {
    const text = word.slice(dash + 1);
    const last = Number(lo & (family === 4 ? 0xffn : 0xffffn));
    if (family === 4 ? /^\d+$/.test(text) : /^[0-9a-fA-F]{1,4}$/.test(text)) {
      const end = parseInt(text, family === 4 ? 10 : 16);
      const limit = family === 4 ? 255 : 0xffff;
      const show = (n: number) => (family === 4 ? String(n) : n.toString(16));
      if (end > limit || end <= last) return `'${word}': the range end must be in ${show(last + 1)}..${show(limit)}`;
      hi = lo - BigInt(last) + BigInt(end);
    } else {
      let endFamily: Family;
      try {
        endFamily = familyOf(text);
      } catch {
        return `'${word}': '${text}' is neither an address nor the last ${family === 4 ? 'octet' : 'group'} of one`;
      }
      if (endFamily !== family) return `'${word}': the two ends are of different families`;
      hi = toBig(addrBytes(text));
      if (hi <= lo) return `'${word}': the range end is not above its start`;
    }
  }
  if (hi - lo + 1n > BigInt(MAX_GROUP_LINE_ADDRESSES)) {
    return `'${word}' stands for ${hi - lo + 1n} addresses; xlb takes at most ${MAX_GROUP_LINE_ADDRESSES} a line (each is a service in the datapath)`;
  }
  const chunk = family === 4 ? 0x100n : 0x10000n;
  const text = (v: bigint): string => {
    const b = Buffer.alloc(16);
    Buffer.from(v.toString(16).padStart(bytes * 2, '0'), 'hex').copy(b);
    return addrText(b, family);
  };
  const out: GroupRange[] = [];
  for (let start = lo; start <= hi;) {
    const chunkEnd = (start / chunk) * chunk + chunk - 1n;
    const end = chunkEnd < hi ? chunkEnd : hi;
    out.push(end === start ? { address: text(start) } : { address: text(start), range_end: Number(end % chunk) });
    start = end + 1n;
  }
  return out;
}

// ---------------------------------------------------------------- checkers

/** A checker block being read: its config and where each of its keywords stands. */
interface Draft<C> {
  config: C;
  at: Map<string, SourcePos>;
}

/** Where the keywords of each checker config stand (for the checks run after reading), by config object. */
const checkerPositions = new WeakMap<object, Map<string, SourcePos>>();

function set<C, K extends keyof C & string>(d: Draft<C>, key: K, v: C[K], a: Args): void {
  d.config[key] = v;
  d.at.set(key, a.pos);
}

function port(a: Args, i = 0): number | undefined {
  return a.int(i, 1, 65535);
}

/** connect_ip connect_port bindto bind_port bind_if fwmark connect_timeout (install_checker_common_keywords(true)) */
function connectionKeywords<C extends ConnectionOptions>(): Table<Draft<C>> {
  return {
    connect_ip: value((d, a) => defined(a.address(0), (v) => set(d, 'connect_ip', v as C['connect_ip'], a))),
    connect_port: value((d, a) => defined(port(a), (v) => set(d, 'connect_port', v as C['connect_port'], a))),
    bindto: value((d, a) => defined(a.address(0), (v) => set(d, 'bindto', v as C['bindto'], a))),
    bind_port: value((d, a) => defined(port(a), (v) => set(d, 'bind_port', v as C['bind_port'], a))),
    bind_if: value((d, a) => {
      const name = a.string(0);
      if (name === undefined) return;
      if (name.length > IFNAMSIZ - 1) a.error(`bind_if: '${name}' is longer than ${IFNAMSIZ - 1} characters`, 0);
      else set(d, 'bind_if', name as C['bind_if'], a);
    }),
    fwmark: value((d, a) => defined(a.int(0, 0, UINT_MAX), (v) => set(d, 'fwmark', v as C['fwmark'], a))),
    connect_timeout: value((d, a) => defined(a.timer(0, TIMER_MIN, CONNECT_TIMEOUT_MAX), (v) => set(d, 'connect_timeout', v as C['connect_timeout'], a))),
  };
}

/** retry delay_before_retry warmup delay_loop alpha log_all_failures (every checker but FILE_CHECK) */
function timingKeywords<C extends CheckerTiming>(): Table<Draft<C>> {
  return {
    retry: value((d, a) => defined(a.int(0, 0, UINT_MAX), (v) => set(d, 'retry', v as C['retry'], a))),
    delay_before_retry: value((d, a) => defined(a.timer(0, 0, TIMER_MAX), (v) => set(d, 'delay_before_retry', v as C['delay_before_retry'], a))),
    warmup: value((d, a) => defined(a.timer(0, 0, TIMER_MAX), (v) => set(d, 'warmup', v as C['warmup'], a))),
    delay_loop: value((d, a) => defined(a.timer(0, TIMER_MIN, TIMER_MAX), (v) => set(d, 'delay_loop', v as C['delay_loop'], a))),
    alpha: flag((d, v, a) => set(d, 'alpha', v as C['alpha'], a)),
    log_all_failures: flag((d, v, a) => set(d, 'log_all_failures', v as C['log_all_failures'], a)),
  };
}

function commonKeywords<C extends ConnectionOptions & CheckerTiming>(): Table<Draft<C>> {
  return { ...connectionKeywords<C>(), ...timingKeywords<C>() };
}

/** TCP_CHECK, PING_CHECK and SMTP_CHECK's host block: the common keywords only */
const plainKeywords = commonKeywords<ConnectionOptions & CheckerTiming>();

/** A value parser of src/health/config.ts, its CheckerConfigError reported at word i. */
function healthValue<V>(a: Args, i: number, parse: () => V): V | undefined {
  try {
    return parse();
  } catch (err) {
    if (!(err instanceof CheckerConfigError)) throw err;
    a.error(err.message, i);
    return undefined;
  }
}

const urlKeywords: Table<Draft<Partial<HttpUrlConfig>>> = {
  path: value((d, a) => defined(a.string(0), (v) => set(d, 'path', v, a))),
  digest: value((d, a) => defined(healthValue(a, 0, () => parseDigest(a.at(0)!)), (v) => set(d, 'digest', v, a))),
  status_code: value((d, a) => {
    const ranges: StatusRange[] = [];
    for (let i = 0; i < a.count; i++) {
      const r = healthValue(a, i, () => parseStatusCode(a.at(i)!));
      if (r === undefined) return;
      ranges.push(r);
    }
    set(d, 'status_code', ranges, a);
  }, [1]),
  virtualhost: value((d, a) => defined(a.string(0), (v) => set(d, 'virtualhost', v, a))),
  regex: value((d, a) => defined(a.string(0), (v) => set(d, 'regex', v, a))),
  regex_no_match: value((d, a) => set(d, 'regex_no_match', true, a), [0, 0]),
  regex_options: value((d, a) => set(d, 'regex_options', a.words.map((w) => w.text), a), [1]),
  regex_min_offset: value((d, a) => defined(a.int(0, 0, UINT_MAX), (v) => set(d, 'regex_min_offset', v, a))),
  regex_max_offset: value((d, a) => defined(a.int(0, 0, UINT_MAX), (v) => set(d, 'regex_max_offset', v, a))),
  regex_stack: value((d, a) => {
    const start = a.int(0, 1, UINT_MAX);
    const max = a.int(1, 1, UINT_MAX);
    if (start === undefined || max === undefined) return;
    if (start > max) a.error(`regex_stack: the start ${start} exceeds the maximum ${max}`, 0);
    else set(d, 'regex_stack', [start, max] as const, a);
  }, [2, 2]),
};

const httpKeywords: Table<Draft<HttpCheckConfig>> = {
  ...commonKeywords<HttpCheckConfig>(),
  nb_get_retry: value((d, a) => {
    a.report('deprecated', "nb_get_retry is deprecated - please use 'retry'");
    defined(a.int(0, 0, UINT_MAX), (v) => set(d, 'retry', v, a));
  }),
  virtualhost: value((d, a) => defined(a.string(0), (v) => set(d, 'virtualhost', v, a))),
  http_protocol: value((d, a) => {
    const v = a.choice(0, ['1.0', '1.0C', '1.0c', '1.1']);
    if (v !== undefined) set(d, 'http_protocol', v === '1.0c' ? '1.0C' : v, a);
  }),
  enable_sni: flag((d, v, a) => set(d, 'enable_sni', v, a)),
  fast_recovery: flag((d, v, a) => set(d, 'fast_recovery', v, a)),
  url: block<Draft<HttpCheckConfig>, Draft<Partial<HttpUrlConfig>>>(urlKeywords, () => ({ config: {}, at: new Map() }), (d, u, _end, a) => {
    if (u.config.path === undefined) {
      a.error('url: no path (the url is left out, as keepalived does)');
      return;
    }
    d.config.url.push(u.config as HttpUrlConfig);
    d.at.set('url', a.pos);
    for (const [k, p] of u.at) if (!d.at.has(k)) d.at.set(k, p);
  }),
};

const udpKeywords: Table<Draft<UdpCheckConfig>> = {
  ...commonKeywords<UdpCheckConfig>(),
  payload: value((d, a) => {
    const text = a.rest(0);
    if (healthValue(a, 0, () => parseHexString(text, 'payload')) !== undefined) set(d, 'payload', text, a);
  }, [1]),
  require_reply: value((d, a) => {
    if (a.count === 0) return set(d, 'require_reply', true, a);
    const text = a.rest(0);
    if (healthValue(a, 0, () => parseHexString(text, 'require_reply', true)) !== undefined) set(d, 'require_reply', text, a);
  }, [0]),
  min_reply_length: value((d, a) => defined(a.int(0, 0, UDP_REPLY_MAX), (v) => set(d, 'min_reply_length', v, a))),
  max_reply_length: value((d, a) => defined(a.int(0, 0, UDP_REPLY_MAX), (v) => set(d, 'max_reply_length', v, a))),
};

const dnsKeywords: Table<Draft<DnsCheckConfig>> = {
  ...commonKeywords<DnsCheckConfig>(),
  type: value((d, a) => {
    const t = a.string(0);
    if (t !== undefined && healthValue(a, 0, () => parseDnsType(t)) !== undefined) set(d, 'type', t, a);
  }),
  name: value((d, a) => defined(a.string(0), (v) => set(d, 'name', v, a))),
};

/** SMTP_CHECK's deprecated `host { }`: connection options of its own; timing keywords apply to the checker (as keepalived). */
interface SmtpHost {
  host: Draft<ConnectionOptions>;
  checker: Draft<SmtpCheckConfig>;
}

const smtpKeywords: Table<Draft<SmtpCheckConfig>> = {
  ...commonKeywords<SmtpCheckConfig>(),
  helo_name: value((d, a) => defined(a.string(0), (v) => set(d, 'helo_name', v, a))),
  host: block<Draft<SmtpCheckConfig>, SmtpHost>(
    { ...lift(connectionKeywords<ConnectionOptions>(), (h: SmtpHost) => h.host), ...lift(timingKeywords<SmtpCheckConfig>(), (h: SmtpHost) => h.checker) },
    (d) => ({ host: { config: {}, at: new Map() }, checker: d }),
    (d, h, _end, a) => {
      (d.config.host ??= []).push(h.host.config);
      d.at.set('host', a.pos);
      for (const [k, p] of h.host.at) if (!d.at.has(k)) d.at.set(k, p);
    },
  ),
};

const miscKeywords: Table<Draft<Partial<MiscCheckConfig>>> = {
  ...timingKeywords<Partial<MiscCheckConfig>>(),
  misc_path: value((d, a) => defined(a.string(0), (v) => set(d, 'misc_path', v, a))),
  misc_timeout: value((d, a) => defined(a.int(0, 0, MISC_TIMEOUT_MAX), (v) => set(d, 'misc_timeout', v, a))),
  misc_dynamic: value((d, a) => set(d, 'misc_dynamic', true, a), [0, 0]),
  user: value((d, a) => {
    defined(a.string(0), (v) => set(d, 'user', v, a));
    if (a.at(1) !== undefined) set(d, 'group', a.at(1)!, a);
  }, [1, 2]),
};

const fileKeywords: Table<Draft<Partial<FileCheckConfig>>> = {
  track_file: value((d, a) => defined(a.string(0), (v) => set(d, 'track_file', v, a))),
  weight: value((d, a) => {
    const w = a.int(0, -2147483647, 2147483647);
    const how = a.at(1);
    if (how !== undefined && how !== 'reverse' && how !== 'noreverse') {
      a.error(`weight: '${how}' is not reverse or noreverse`, 1);
      return;
    }
    if (w === undefined) return;
    set(d, 'weight', w, a);
    set(d, 'reverse', how === 'reverse', a);
  }, [1, 2]),
};

/** A checker block of a real server: its table, and what must hold at its '}'. */
function checker<C>(kind: HealthCheckerKind, table: Table<Draft<C>>, init: () => C, close?: (d: Draft<C>, a: Args) => boolean) {
  return block<RealServer, Draft<C>>(table, () => ({ config: init(), at: new Map() }), (rs, d, _end, a) => {
    if (close && !close(d, a)) return;
    const c = { kind, config: d.config, pos: a.pos } as CheckerConfig;
    checkerPositions.set(c.config, d.at);
    rs.checkers.push(c);
  });
}

const checkerKeywords: Table<RealServer> = {
  TCP_CHECK: checker('TCP_CHECK', plainKeywords, () => ({})),
  PING_CHECK: checker('PING_CHECK', plainKeywords, () => ({})),
  HTTP_GET: checker('HTTP_GET', httpKeywords, () => ({ url: [] })),
  SSL_GET: checker('SSL_GET', httpKeywords, () => ({ url: [] })),
  UDP_CHECK: checker('UDP_CHECK', udpKeywords, () => ({})),
  DNS_CHECK: checker('DNS_CHECK', dnsKeywords, () => ({})),
  SMTP_CHECK: checker('SMTP_CHECK', smtpKeywords, () => ({})),
  MISC_CHECK: checker<Partial<MiscCheckConfig>>('MISC_CHECK', miscKeywords, () => ({}), (d, a) => {
    if (d.config.misc_path !== undefined) return true;
    a.error('MISC_CHECK: no misc_path (the checker is left out, as keepalived does)');
    return false;
  }),
  FILE_CHECK: checker<Partial<FileCheckConfig>>('FILE_CHECK', fileKeywords, () => ({}), (d, a) => {
    if (d.config.track_file !== undefined) return true;
    a.error('FILE_CHECK: no track_file (the checker is left out, as keepalived does)');
    return false;
  }),
  BFD_CHECK: unsupported('BFD is not implemented: check the real server with another checker'),
};

// ---------------------------------------------------------------- real and virtual servers

/** delay_loop connect_timeout retry delay_before_retry warmup of a virtual or real server */
function checkerDefaultKeywords<T extends VirtualServer | RealServer>(): Table<T> {
  return {
    delay_loop: value((o, a) => defined(a.timer(0, TIMER_MIN, TIMER_MAX), (v) => put(o, 'delay_loop', v, a))),
    connect_timeout: value((o, a) => defined(a.timer(0, TIMER_MIN, CONNECT_TIMEOUT_MAX), (v) => put(o, 'connect_timeout', v, a))),
    retry: value((o, a) => defined(a.int(0, 1, UINT_MAX), (v) => put(o, 'retry', v, a))),
    delay_before_retry: value((o, a) => defined(a.timer(0, 0, TIMER_MAX), (v) => put(o, 'delay_before_retry', v, a))),
    warmup: value((o, a) => defined(a.timer(0, 0, TIMER_MAX), (v) => put(o, 'warmup', v, a))),
  };
}

const SNMP = 'xlb has no SNMP agent';

const realServerKeywords: Table<RealServer> = {
  ...checkerDefaultKeywords<RealServer>(),
  weight: value((r, a) => defined(a.int(0, 0, WEIGHT_MAX), (v) => put(r, 'weight', v, a))),
  lvs_method: value((r, a) => defined(forwarding(a), (v) => put(r, 'lb_kind', v, a)), [1]),
  uthreshold: value((r, a) => defined(a.int(0, 0, UINT_MAX), (v) => put(r, 'uthreshold', v, a))),
  lthreshold: value((r, a) => defined(a.int(0, 0, UINT_MAX), (v) => put(r, 'lthreshold', v, a))),
  inhibit_on_failure: flag((r, v, a) => put(r, 'inhibit_on_failure', v, a)),
  notify_up: value((r, a) => notify(r, 'notify_up', a), [1, 3]),
  notify_down: value((r, a) => notify(r, 'notify_down', a), [1, 3]),
  alpha: flag((r, v, a) => put(r, 'alpha', v, a)),
  smtp_alert: flag((r, v, a) => put(r, 'smtp_alert', v, a)),
  virtualhost: value((r, a) => defined(a.string(0), (v) => put(r, 'virtualhost', v, a))),
  snmp_name: ignored(SNMP),
  ...checkerKeywords,
};

/** A script keyword that keepalived takes once: a second one is ignored with a message. */
function notify<O extends WithAt & Partial<Record<K, NotifyScript>>, K extends keyof O & string>(o: O, key: K, a: Args): void {
  if (o[key] !== undefined) {
    const first = o.at?.[key];
    a.error(`${key}: a script is already given${first ? ` (${formatPos(first)})` : ''}: '${a.at(0) ?? ''}' ignored (as keepalived)`);
    return;
  }
  defined(script(a), (s) => put(o, key, s as O[K], a));
}

/** `ADDRESS [PORT]` of a real or sorry server. */
function server(a: Args, what: string): { address: string; port: number } | undefined {
  const address = a.address(0);
  const p = a.count > 1 ? a.int(1, 0, 65535) : 0;
  if (address === undefined || p === undefined) {
    a.error(`${what}: left out`);
    return undefined;
  }
  return { address, port: p };
}

const SH_FLAGS: Record<string, 'sh' | 'mh'> = { 'sh-port': 'sh', 'sh-fallback': 'sh', 'mh-port': 'mh', 'mh-fallback': 'mh' };

/** flag-1 flag-2 flag-3 sh-port sh-fallback mh-port mh-fallback: sh-/mh- only after lb_algo sh/mh (keepalived reads them so). */
const schedFlag = value<VirtualServer>((vs, a) => {
  const f = a.name as SchedFlag;
  const needs = SH_FLAGS[f];
  if (needs !== undefined && vs.lb_algo !== needs) {
    a.error(`${f} only applies to lb_algo ${needs} given before it - ignored (as keepalived)`);
    return;
  }
  const flags = (vs.sched_flags ??= []);
  if (!flags.includes(f)) flags.push(f);
  (vs.at ??= {}).sched_flags ??= a.pos;
}, [0, 0]);

/** The sorry server keywords that need a sorry_server before them. */
function sorry(k: 'inhibit' | 'lb_kind', a: Args, vs: VirtualServer, v: SorryServer[typeof k]): void {
  const s = vs.sorry_server;
  if (!s) {
    a.error(`${a.name}: no sorry_server before it - ignored`);
    return;
  }
  (s as unknown as Record<string, unknown>)[k] = v;
  (s.at ??= {})[k] = a.pos;
}

const virtualServerKeywords: Table<VirtualServer> = {
  ...checkerDefaultKeywords<VirtualServer>(),
  ip_family: value((vs, a) => defined(a.choice(0, ['inet', 'inet6'] as const), (v) => put(vs, 'ip_family', v, a))),
  // a virtual server's inhibit_on_failure takes no value (keepalived turns it on whatever follows; a real server's takes a boolean)
  inhibit_on_failure: value((vs, a) => put(vs, 'inhibit_on_failure', true, a), [0, 0]),
  lb_algo: value((vs, a) => {
    const algo = a.string(0);
    if (algo === 'twos') {
      a.report('unsupported', 'lb_algo twos: not implemented by xlb (power-of-two choices needs active connection counts)', 0);
      return;
    }
    defined(a.choice(0, LB_ALGOS), (v) => put(vs, 'lb_algo', v, a));
  }),
  lvs_sched: alias('lb_algo'),
  hashed: value((vs, a) => {
    if (vs.lb_algo !== 'sh') a.error('hashed only applies to the sh scheduler - ignored (as keepalived)');
  }, [0, 0]),
  ops: value((vs, a) => put(vs, 'ops', true, a), [0, 0]),
  'flag-1': schedFlag,
  'flag-2': schedFlag,
  'flag-3': schedFlag,
  'sh-port': schedFlag,
  'sh-fallback': schedFlag,
  'mh-port': schedFlag,
  'mh-fallback': schedFlag,
  lb_kind: value((vs, a) => defined(forwarding(a), (v) => put(vs, 'lb_kind', v, a)), [1]),
  lvs_method: alias('lb_kind'),
  persistence_engine: value((vs, a) => defined(a.string(0), (v) => put(vs, 'persistence_engine', v, a))),
  persistence_timeout: value((vs, a) => {
    const t = a.count === 0 ? DEFAULT_PERSISTENCE_TIMEOUT : a.int(0, 1, PERSISTENCE_MAX);
    if (t !== undefined) put(vs, 'persistence_timeout', t, a);
  }, [0, 1]),
  persistence_granularity: value((vs, a) => defined(a.string(0), (v) => put(vs, 'persistence_granularity', v, a))),
  protocol: value((vs, a) => defined(a.choice(0, PROTOCOLS, true), (v) => put(vs, 'protocol', v, a))),
  ha_suspend: value((vs, a) => put(vs, 'ha_suspend', true, a), [0, 0]),
  smtp_alert: flag((vs, v, a) => put(vs, 'smtp_alert', v, a)),
  virtualhost: value((vs, a) => defined(a.string(0), (v) => put(vs, 'virtualhost', v, a))),
  snmp_name: ignored(SNMP),
  alpha: value((vs, a) => put(vs, 'alpha', true, a), [0, 0]),
  omega: value((vs, a) => put(vs, 'omega', true, a), [0, 0]),
  quorum_up: value((vs, a) => notify(vs, 'quorum_up', a), [1, 3]),
  quorum_down: value((vs, a) => notify(vs, 'quorum_down', a), [1, 3]),
  quorum: value((vs, a) => defined(a.int(0, 1, UINT_MAX), (v) => put(vs, 'quorum', v, a))),
  hysteresis: value((vs, a) => defined(a.int(0, 0, UINT_MAX), (v) => put(vs, 'hysteresis', v, a))),
  weight: ignored("a virtual server's own weight is not used by xlb"),
  sorry_server: value((vs, a) => defined(server(a, 'sorry_server'), (s) => put(vs, 'sorry_server', { pos: a.pos, ...s }, a)), [1, 2]),
  sorry_server_inhibit: value((vs, a) => sorry('inhibit', a, vs, true), [0, 0]),
  sorry_server_lvs_method: value((vs, a) => defined(forwarding(a), (k) => sorry('lb_kind', a, vs, k)), [1]),
  real_server: block<VirtualServer, RealServer>(
    realServerKeywords,
    (_vs, a) => {
      const s = server(a, 'real_server');
      return s && { pos: a.pos, ...s, checkers: [] };
    },
    (vs, rs) => {
      vs.real_server.push(rs);
    },
    [1, 2],
  ),
};

/** `virtual_server ADDRESS [PORT] | fwmark N | group NAME`. */
function openVirtualServer(a: Args): VirtualServer | undefined {
  const first = a.string(0);
  if (first === undefined) return undefined;
  const make = (service: VirtualServer['service']): VirtualServer => ({ pos: a.pos, service, real_server: [] });
  if (first === 'fwmark') {
    const mark = a.int(1, 0, UINT_MAX);
    return mark === undefined ? undefined : make({ kind: 'fwmark', fwmark: mark });
  }
  if (first === 'group') {
    const name = a.string(1);
    return name === undefined ? undefined : make({ kind: 'group', group: name });
  }
  const address = a.address(0);
  const p = a.count > 1 ? a.int(1, 0, 65535) : 0;
  if (address === undefined || p === undefined) return undefined;
  return make({ kind: 'ip', address, port: p });
}

/** What keepalived 2.2.7 fills in after a virtual server, reported as it does (see the header). */
function closeVirtualServer(config: ServiceConfig, vs: VirtualServer, a: Args): void {
  const note = (message: string) => a.report('general_error', message, -1, 'warning');
  const svc = vs.service;
  const groupHasAddresses = svc.kind === 'group' && config.virtual_server_group.some((g) => g.name === svc.group && g.entries.some((e) => e.kind === 'ip'));
  if (svc.kind === 'ip' || groupHasAddresses) {
    if (vs.protocol === undefined) {
      note('virtual_server: no protocol set - defaulting to UDP (keepalived 2.2.7 does so; write protocol TCP for TCP)');
      vs.protocol = 'UDP';
    }
    if (svc.kind === 'ip' && svc.port === 0 && !vs.persistence_timeout && vs.persistence_granularity === undefined) {
      note(`virtual_server: port 0 is only valid for persistent services - persistence_timeout ${DEFAULT_PERSISTENCE_TIMEOUT} set (as keepalived)`);
      vs.persistence_timeout = DEFAULT_PERSISTENCE_TIMEOUT;
    }
  } else if (svc.kind === 'fwmark' && vs.protocol !== undefined) {
    a.report('warning', `virtual_server fwmark ${svc.fwmark}: protocol ${vs.protocol} is ignored for a fwmark service (as keepalived)`, vs.at?.protocol ?? a.pos);
  }
  if (vs.lb_algo === undefined) note("virtual_server: no lb_algo set, using keepalived's default wlc");
  if (vs.lb_kind === undefined) note("virtual_server: no lb_kind set, using keepalived's default NAT");
  if (vs.real_server.length === 0) {
    note('virtual_server: no real servers - ignored (as keepalived)');
    return;
  }
  const total = vs.real_server.reduce((sum, r) => sum + (r.weight ?? 1), 0);
  const quorum = vs.quorum ?? 1;
  if (quorum > total) {
    if (total > 0) {
      a.report('general_error', `quorum ${quorum} exceeds the total weight of the real servers (${total}) - reduced to ${total} (as keepalived)`, vs.at?.quorum ?? a.pos, 'warning');
      vs.quorum = total;
    } else {
      a.report('general_error', `quorum ${quorum} exceeds the total weight of the real servers (0): the pool never has quorum (keepalived would make the quorum 0)`, vs.at?.quorum ?? a.pos, 'warning');
    }
  }
  const q = vs.quorum ?? 1;
  if (vs.hysteresis !== undefined && vs.hysteresis >= q && q > 0) {
    a.report('general_error', `hysteresis ${vs.hysteresis} is not below the quorum ${q} - set to ${q - 1} (as keepalived)`, vs.at?.hysteresis ?? a.pos, 'warning');
    vs.hysteresis = q - 1;
  }
  config.virtual_server.push(vs);
}

/** One line of a virtual_server_group (Args: the block's keyword, the line's words). */
function groupLine(g: VirtualServerGroup, a: Args): void {
  const first = a.at(0)!;
  if (first === 'fwmark') {
    const mark = a.int(1, 0, UINT_MAX);
    if (a.count > 2) a.choice(2, ['inet', 'inet6']);
    if (mark !== undefined) g.entries.push({ pos: a.posOf(0), kind: 'fwmark', fwmark: mark });
    return;
  }
  const ranges = groupRanges(first);
  if (typeof ranges === 'string') {
    a.error(`virtual_server_group ${g.name}: ${ranges} - skipped`, 0);
    return;
  }
  const p = a.count > 1 ? a.int(1, 1, 65535) : 0;
  if (p === undefined) return;
  if (a.count > 2) a.report('ok', `virtual_server_group ${g.name}: '${a.rest(2)}' after the port ignored`, 2, 'warning');
  for (const r of ranges) g.entries.push({ pos: a.posOf(0), kind: 'ip', ...r, port: p } as GroupEntry);
}

/** The SSL block: where it stands and which of its keywords were written (what checkServices reports). */
interface SslBlock {
  pos: SourcePos;
  keys: string[];
}
const sslBlocks = new WeakMap<ServiceConfig, SslBlock>();
const sslKeyword = value<SslBlock>((ssl, a) => {
  if (!ssl.keys.includes(a.name)) ssl.keys.push(a.name);
});
const sslKeywords: Table<SslBlock> = { password: sslKeyword, ca: sslKeyword, certificate: sslKeyword, key: sslKeyword };

/** The keyword tables of each block, by the keyword that opens it (for the test that every keepalived keyword is in one). */
export const LVS_TABLES: Readonly<Record<string, Table<never>>> = {
  virtual_server: virtualServerKeywords as Table<never>,
  real_server: realServerKeywords as Table<never>,
  TCP_CHECK: plainKeywords as Table<never>,
  PING_CHECK: plainKeywords as Table<never>,
  HTTP_GET: httpKeywords as Table<never>,
  SSL_GET: httpKeywords as Table<never>,
  url: urlKeywords as Table<never>,
  UDP_CHECK: udpKeywords as Table<never>,
  DNS_CHECK: dnsKeywords as Table<never>,
  SMTP_CHECK: smtpKeywords as Table<never>,
  host: plainKeywords as Table<never>,
  MISC_CHECK: miscKeywords as Table<never>,
  FILE_CHECK: fileKeywords as Table<never>,
  SSL: sslKeywords as Table<never>,
};

/** Top-level keywords that build the ServiceConfig. */
export const lvsKeywords: Table<ServiceConfig> = {
  virtual_server_group: lines<ServiceConfig, VirtualServerGroup>(
    (_c, a) => ({ pos: a.pos, name: a.at(0)!, entries: [] }),
    groupLine,
    (c, g, _end, a) => {
      const first = c.virtual_server_group.find((o) => o.name === g.name);
      if (first) a.error(`virtual_server_group ${g.name} is already defined (${formatPos(first.pos)}) - this one ignored`);
      else if (g.entries.length === 0) a.error(`virtual_server_group ${g.name} has no entries - removed (as keepalived)`);
      else c.virtual_server_group.push(g);
    },
    [1, 1],
  ),
  virtual_server: block<ServiceConfig, VirtualServer>(virtualServerKeywords, (_c, a) => openVirtualServer(a), (c, vs, _end, a) => closeVirtualServer(c, vs, a), [1, 2]),
  SSL: block<ServiceConfig, SslBlock>(sslKeywords, (c, a) => {
    const ssl: SslBlock = { pos: a.pos, keys: [] };
    sslBlocks.set(c, ssl);
    return ssl;
  }),
};

// ---------------------------------------------------------------- after reading

/**
 * The checks that need the whole file: FILE_CHECK's track_file looked up (its file, and its
 * weight when the checker gives none), every checker's config resolved by src/health/config.ts
 * (errors at the keyword named), and the model's checks for the driver (resolveServices).
 * Problems of the model: an error about what the driver cannot do (DRIVER_LIMITS: fwmark, SCTP,
 * persistence_engine, one real per address, weights above 65535) is class unsupported, as
 * keepalived would run it; any other error (a bad group, family, netmask, ...) general_error;
 * warnings (approximations) class ignored, since keepalived has nothing to say about them.
 */
export function checkServices(
  config: ServiceConfig,
  trackFiles: readonly VrrpTrackFileConfig[] | undefined,
  problems: Problems,
  caps: DriverCapabilities = XDP_CAPABILITIES,
): ResolvedService[] {
  const files = new Map((trackFiles ?? []).map((t) => [t.name, t]));
  for (const vs of config.virtual_server) {
    for (const rs of vs.real_server) {
      rs.checkers = rs.checkers.filter((c) => {
        const at = checkerPositions.get(c.config) ?? new Map<string, SourcePos>();
        if (c.kind === 'FILE_CHECK') {
          const def = files.get(c.config.track_file);
          if (!def) {
            problems.add('general_error', at.get('track_file') ?? c.pos, `FILE_CHECK: track_file ${c.config.track_file} not found (no track_file block of that name) - checker left out`, 'track_file');
            return false;
          }
          c.config.file = def.file;
          if (c.config.weight === undefined && def.weight !== undefined) {
            c.config.weight = def.weight;
            c.config.reverse = def.weight_reverse ?? false;
          }
        }
        try {
          resolveChecker(c, {
            address: rs.address, port: rs.port, weight: rs.weight ?? 1,
            real: { ...pickTiming(rs), ...(rs.alpha !== undefined ? { alpha: rs.alpha } : {}), ...(rs.virtualhost !== undefined ? { virtualhost: rs.virtualhost } : {}) },
            service: { ...pickTiming(vs), ...(vs.alpha !== undefined ? { alpha: vs.alpha } : {}), ...(vs.virtualhost !== undefined ? { virtualhost: vs.virtualhost } : {}) },
          });
        } catch (err) {
          if (!(err instanceof CheckerConfigError)) throw err;
          problems.add('general_error', at.get(err.keyword) ?? c.pos, `${c.kind}: ${err.message}`, err.keyword);
        }
        return true;
      });
    }
  }
  const ssl = sslBlocks.get(config);
  if (ssl) {
    const users = config.virtual_server.reduce((n, vs) => n + vs.real_server.reduce((m, rs) => m + rs.checkers.filter((c) => c.kind === 'SSL_GET').length, 0), 0);
    const what = `SSL${ssl.keys.length ? ` (${ssl.keys.join(', ')})` : ''}: not implemented by xlb (its SSL_GET presents no client certificate and verifies no server certificate)`;
    if (users > 0) problems.add('unsupported', ssl.pos, `${what}: ${users} SSL_GET checker${users === 1 ? '' : 's'} would not check as configured`, 'SSL');
    else problems.add('ignored', ssl.pos, `${what}: ignored, no SSL_GET checker uses it`, 'SSL', 'warning');
  }
  const resolved = resolveServices(config, caps);
  for (const p of resolved.errors) problems.add(DRIVER_LIMITS.some((re) => re.test(p.message)) ? 'unsupported' : 'general_error', p.pos, p.message);
  for (const p of resolved.warnings) problems.add('ignored', p.pos, p.message, undefined, 'warning');
  return resolved.services;
}

/** The model's (validate.ts) errors about limits of the XDP datapath rather than mistakes keepalived would also report. */
const DRIVER_LIMITS = [/XDP datapath/, /: weight \d+ is not in 0\.\.65535$/];

const pickTiming = (o: VirtualServer | RealServer) => Object.fromEntries(
  (['delay_loop', 'connect_timeout', 'retry', 'delay_before_retry', 'warmup'] as const).filter((k) => o[k] !== undefined).map((k) => [k, o[k]]),
);
