/**
 * From checker configs as written (./types.ts) to what the checkers run with (`CheckerSpec`):
 * keepalived 2.2.7's defaults and inheritance, and the value rules of its checker keywords, each
 * written once here. The keepalived.conf parser (src/config) uses the value parsers for its
 * messages; resolveChecker() is what the daemon calls per checker block.
 *
 * Inheritance (keepalived's check_data.c): checker, else real_server, else virtual_server, else:
 *   delay_loop 60 s; connect_timeout 5 s; warmup = delay_loop; alpha off;
 *   retry: DNS_CHECK 3, MISC_CHECK 0, others 1;
 *   delay_before_retry: HTTP_GET/SSL_GET 3 s, DNS_CHECK delay_loop, others 1 s;
 *   MISC_CHECK's timeout: misc_timeout, else the virtual server's delay_loop (60 s).
 * Endpoint: connect_ip / connect_port, else the real server's address / port; an IPv6
 * link-local connect_ip needs bind_if; bindto must be of connect_ip's family.
 *
 * Errors: a `CheckerConfigError` names the keyword (for the parser to position) and says what
 * is wrong and what is allowed.
 */
import { familyOf, type Family } from '../datapath/xdp/net.ts';
import { endpointText, type Endpoint } from './connect.ts';
import type {
  AnyCheckerConfig, CheckerTiming, CheckTiming, ConnectionOptions, HealthCheckerKind, HttpUrlConfig, StatusRange, TimingDefaults,
} from './types.ts';

export class CheckerConfigError extends Error {
  /** the keepalived keyword the problem is about ('status_code', 'connect_port', ...) */
  readonly keyword: string;
  constructor(keyword: string, message: string) {
    super(`${keyword}: ${message}`);
    this.name = 'CheckerConfigError';
    this.keyword = keyword;
  }
}

// ---------------------------------------------------------------- keepalived's defaults

export const DEFAULT_DELAY_LOOP_S = 60;
export const DEFAULT_CONNECT_TIMEOUT_S = 5;
export const DEFAULT_RETRY: Record<HealthCheckerKind, number> = {
  TCP_CHECK: 1, HTTP_GET: 1, SSL_GET: 1, UDP_CHECK: 1, PING_CHECK: 1, DNS_CHECK: 3, SMTP_CHECK: 1, MISC_CHECK: 0, FILE_CHECK: 0,
};
/** seconds; undefined = delay_loop */
export const DEFAULT_DELAY_BEFORE_RETRY_S: Record<HealthCheckerKind, number | undefined> = {
  TCP_CHECK: 1, HTTP_GET: 3, SSL_GET: 3, UDP_CHECK: 1, PING_CHECK: 1, DNS_CHECK: undefined, SMTP_CHECK: 1, MISC_CHECK: 1, FILE_CHECK: 1,
};
export const DEFAULT_STATUS_CODES: StatusRange[] = [[200, 299]];
export const STATUS_CODE_MIN = 100;
export const STATUS_CODE_MAX = 599;
export const DEFAULT_SMTP_HELO = 'smtpchecker.keepalived.org';
export const DEFAULT_DNS_TYPE = 'SOA';
export const DEFAULT_DNS_NAME = '.';
export const UDP_DEFAULT_MAX_REPLY = 255;
export const UDP_MAX_REPLY = 65535;
/** DNS query types DNS_CHECK knows, with their numbers (RFC 1035, 3596, 4034) */
export const DNS_TYPES: Record<string, number> = { A: 1, NS: 2, CNAME: 5, SOA: 6, MX: 15, TXT: 16, AAAA: 28, RRSIG: 46, DNSKEY: 48 };

// ---------------------------------------------------------------- value parsers

/** One word of `status_code`: '200' or '200-299', within 100..599. */
export function parseStatusCode(word: string): StatusRange {
  const m = /^(\d+)(?:-(\d+))?$/.exec(word);
  const min = Number(m?.[1]);
  return checkStatusRange([min, m?.[2] === undefined ? min : Number(m[2])], word);
}

/** A status code range within 100..599, low end first. */
export function checkStatusRange(r: StatusRange, written = `${r[0]}-${r[1]}`): StatusRange {
  const [min, max] = r;
  if (!Number.isInteger(min) || !Number.isInteger(max) || min < STATUS_CODE_MIN || max > STATUS_CODE_MAX || min > max) {
    throw new CheckerConfigError('status_code', `'${written}' is not a status code or range (N or N-M) within ${STATUS_CODE_MIN}..${STATUS_CODE_MAX}`);
  }
  return r;
}

/** `digest`: 32 hex digits (MD5, as genhash prints it), returned in lower case. */
export function parseDigest(text: string): string {
  if (!/^[0-9a-fA-F]{32}$/.test(text)) throw new CheckerConfigError('digest', `'${text}' is not an MD5 digest (32 hex digits)`);
  return text.toLowerCase();
}

export interface HexBytes {
  data: Buffer;
  /** set bits: nibbles written as x/X, which match anything */
  mask?: Buffer;
}

/**
 * keepalived's read_hex_str: hex digits two by two, white space between groups; a digit alone
 * before a space or the end is a byte of its own ('Ab12f 3 456' is AB 12 0F 03 45 06). With
 * `wildcards`, x/X is a nibble that matches anything (require_reply).
 */
export function parseHexString(text: string, keyword: string, wildcards = false): HexBytes {
  const data: number[] = [];
  const mask: number[] = [];
  const nibble = (c: string): [number, number] | undefined => {
    if (/^[0-9a-fA-F]$/.test(c)) return [parseInt(c, 16), 0];
    if (wildcards && (c === 'x' || c === 'X')) return [0, 0xf];
    return undefined;
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    const hi = nibble(c);
    if (!hi) throw new CheckerConfigError(keyword, `'${text}': '${c}' at offset ${i} is not a hex digit${wildcards ? ' or x' : ''}`);
    i++;
    const next = text[i];
    if (next === undefined || next === ' ' || next === '\t') {
      data.push(hi[0]);
      mask.push(hi[1]);
      continue;
    }
    const lo = nibble(next);
    if (!lo) throw new CheckerConfigError(keyword, `'${text}': '${next}' at offset ${i} is not a hex digit${wildcards ? ' or x' : ''}`);
    i++;
    data.push((hi[0] << 4) | lo[0]);
    mask.push((hi[1] << 4) | lo[1]);
  }
  if (data.length === 0) throw new CheckerConfigError(keyword, `'${text}' holds no hex digits`);
  return { data: Buffer.from(data), ...(mask.some((m) => m !== 0) ? { mask: Buffer.from(mask) } : {}) };
}

/** DNS_CHECK `type`: a name of DNS_TYPES, any case. */
export function parseDnsType(text: string): number {
  const t = DNS_TYPES[text.toUpperCase()];
  if (t === undefined) throw new CheckerConfigError('type', `'${text}' is not one of ${Object.keys(DNS_TYPES).join(' ')}`);
  return t;
}

// ---------------------------------------------------------------- resolved specs

/** Where the checked real server is, and its own and its virtual server's checker defaults. */
export interface ResolveContext {
  address: string;
  port: number;
  /** the real server's configured weight (MISC_CHECK misc_dynamic reports relative to it) */
  weight: number;
  real?: TimingDefaults & { alpha?: boolean; virtualhost?: string };
  service?: TimingDefaults & { alpha?: boolean; virtualhost?: string };
}

export interface UrlSpec {
  path: string;
  digest?: string;
  statusCodes: StatusRange[];
  /** the Host header (and SNI) when one is configured (url, checker, real or virtual server) */
  virtualhost?: string;
  regex?: { pattern: string; flags: string; noMatch: boolean; minOffset: number; maxOffset?: number };
}

export type CheckerSpec =
  | { kind: 'TCP_CHECK'; timing: CheckTiming; endpoint: Endpoint }
  | { kind: 'PING_CHECK'; timing: CheckTiming; endpoint: Endpoint }
  | { kind: 'HTTP_GET' | 'SSL_GET'; timing: CheckTiming; endpoint: Endpoint; urls: UrlSpec[]; protocol: '1.0' | '1.0C' | '1.1'; sni: boolean }
  | { kind: 'UDP_CHECK'; timing: CheckTiming; endpoint: Endpoint; payload?: Buffer; requireReply: boolean; reply?: HexBytes; minReply: number; maxReply: number }
  | { kind: 'DNS_CHECK'; timing: CheckTiming; endpoint: Endpoint; type: number; name: string }
  | { kind: 'SMTP_CHECK'; timing: CheckTiming; hosts: Endpoint[]; helo: string }
  | { kind: 'MISC_CHECK'; timing: CheckTiming; command: string; dynamic: boolean; user?: string; group?: string; weight: number }
  | { kind: 'FILE_CHECK'; file: string; trackFile: string; weight: number; reverse: boolean; dynamic: boolean };

const s2ms = (s: number) => Math.round(s * 1000);

function nonNegative(keyword: string, v: number | undefined, integer = false): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isFinite(v) || v < 0 || (integer && !Number.isInteger(v))) {
    throw new CheckerConfigError(keyword, `${v} is not ${integer ? 'a whole number' : 'a number of seconds'} >= 0`);
  }
  return v;
}

/** A checker's timing with keepalived's inheritance and defaults. */
export function resolveTiming(kind: HealthCheckerKind, c: CheckerTiming & { connect_timeout?: number }, ctx: ResolveContext): CheckTiming {
  const pick = <K extends keyof TimingDefaults>(k: K, own: number | undefined): number | undefined =>
    nonNegative(k, own ?? ctx.real?.[k] ?? ctx.service?.[k], k === 'retry');
  const delayLoop = pick('delay_loop', c.delay_loop) ?? DEFAULT_DELAY_LOOP_S;
  if (delayLoop === 0) throw new CheckerConfigError('delay_loop', 'must be more than 0 seconds');
  const connectTimeout = pick('connect_timeout', c.connect_timeout) ?? DEFAULT_CONNECT_TIMEOUT_S;
  if (connectTimeout === 0) throw new CheckerConfigError('connect_timeout', 'must be more than 0 seconds');
  return {
    delayLoopMs: s2ms(delayLoop),
    retry: pick('retry', c.retry) ?? DEFAULT_RETRY[kind],
    delayBeforeRetryMs: s2ms(pick('delay_before_retry', c.delay_before_retry) ?? DEFAULT_DELAY_BEFORE_RETRY_S[kind] ?? delayLoop),
    warmupMs: s2ms(pick('warmup', c.warmup) ?? delayLoop),
    timeoutMs: s2ms(connectTimeout),
    alpha: c.alpha ?? ctx.real?.alpha ?? ctx.service?.alpha ?? false,
  };
}

function port(keyword: string, v: number): number {
  if (!Number.isInteger(v) || v < 1 || v > 65535) throw new CheckerConfigError(keyword, `${v} is not a port (1..65535)`);
  return v;
}

function family(keyword: string, address: string): Family {
  try {
    return familyOf(address);
  } catch {
    throw new CheckerConfigError(keyword, `'${address}' is not an IP address`);
  }
}

/**
 * The endpoint of a connecting checker; `base` supplies unset options (SMTP_CHECK's host blocks).
 * PING_CHECK needs no port (`portless`: the real server's, or 0).
 */
export function resolveEndpoint(c: ConnectionOptions, ctx: ResolveContext, base: ConnectionOptions = {}, portless = false): Endpoint {
  const o = { ...base, ...c };
  const address = o.connect_ip ?? ctx.address;
  const fam = family(o.connect_ip !== undefined ? 'connect_ip' : 'real_server', address);
  const dstPort = o.connect_port ?? ctx.port;
  if (dstPort === 0 && !portless) throw new CheckerConfigError('connect_port', 'the real server has no port (an all-ports or fwmark service): set connect_port');
  const ep: Endpoint = { family: fam, address, port: dstPort === 0 && portless ? 0 : port(o.connect_port !== undefined ? 'connect_port' : 'real_server', dstPort) };
  if (o.bindto !== undefined) {
    if (family('bindto', o.bindto) !== fam) throw new CheckerConfigError('bindto', `${o.bindto} is not of the family of ${address}`);
    ep.bindto = o.bindto;
  }
  if (o.bind_port !== undefined) ep.bindPort = port('bind_port', o.bind_port);
  if (o.bind_if !== undefined) {
    if (!/^[^\s/]{1,15}$/.test(o.bind_if)) throw new CheckerConfigError('bind_if', `'${o.bind_if}' is not an interface name (1..15 characters)`);
    ep.bindIf = o.bind_if;
  }
  if (fam === 6 && /^fe[89ab]/i.test(address) && ep.bindIf === undefined) {
    throw new CheckerConfigError('bind_if', `the link-local address ${address} needs bind_if`);
  }
  if (o.fwmark !== undefined) {
    if (!Number.isInteger(o.fwmark) || o.fwmark < 0 || o.fwmark > 0xffffffff) throw new CheckerConfigError('fwmark', `${o.fwmark} is not in 0..4294967295`);
    ep.fwmark = o.fwmark;
  }
  return ep;
}

const REGEX_FLAGS: Record<string, string> = { caseless: 'i', multiline: 'm', dotall: 's', utf: 'u', ucp: 'u' };
/** PCRE2 options that change nothing a JavaScript regular expression would do differently here */
const REGEX_NEUTRAL = new Set(['no_auto_capture', 'no_auto_possess', 'no_dotstar_anchor', 'no_start_optimize', 'never_backslash_c', 'never_ucp', 'never_utf', 'dupnames', 'auto_callout', 'use_offset_limit']);

function resolveUrl(u: HttpUrlConfig, vhost: string | undefined): UrlSpec {
  if (typeof u.path !== 'string' || u.path === '') throw new CheckerConfigError('path', 'every url needs a path');
  const spec: UrlSpec = {
    path: u.path,
    statusCodes: u.status_code && u.status_code.length > 0 ? u.status_code.map((r) => checkStatusRange(r)) : DEFAULT_STATUS_CODES,
  };
  if (u.digest !== undefined) spec.digest = parseDigest(u.digest);
  const host = u.virtualhost ?? vhost;
  if (host !== undefined) spec.virtualhost = host;
  if (u.regex !== undefined) {
    let flags = '';
    for (const o of u.regex_options ?? []) {
      const f = REGEX_FLAGS[o];
      if (f !== undefined) {
        if (!flags.includes(f)) flags += f;
      } else if (!REGEX_NEUTRAL.has(o)) {
        throw new CheckerConfigError('regex_options', `'${o}' is not supported by xlb (JavaScript regular expressions): use ${[...Object.keys(REGEX_FLAGS), ...REGEX_NEUTRAL].join(' ')}`);
      }
    }
    try {
      new RegExp(u.regex, flags);
    } catch (err) {
      throw new CheckerConfigError('regex', `'${u.regex}' is not a valid regular expression: ${(err as Error).message}`);
    }
    const minOffset = nonNegative('regex_min_offset', u.regex_min_offset, true) ?? 0;
    const maxOffset = nonNegative('regex_max_offset', u.regex_max_offset, true);
    if (maxOffset !== undefined && minOffset > maxOffset) throw new CheckerConfigError('regex_min_offset', `${minOffset} is beyond regex_max_offset ${maxOffset}`);
    spec.regex = { pattern: u.regex, flags, noMatch: u.regex_no_match ?? false, minOffset, ...(maxOffset !== undefined ? { maxOffset } : {}) };
  } else if (u.regex_no_match || u.regex_options || u.regex_min_offset !== undefined || u.regex_max_offset !== undefined) {
    throw new CheckerConfigError('regex', 'regex_no_match, regex_options and the regex offsets need a regex');
  }
  return spec;
}

/** The spec a checker runs with: every default filled in, every value checked. */
export function resolveChecker(c: AnyCheckerConfig, ctx: ResolveContext): CheckerSpec {
  switch (c.kind) {
    case 'TCP_CHECK':
      return { kind: c.kind, timing: resolveTiming(c.kind, c.config, ctx), endpoint: resolveEndpoint(c.config, ctx) };
    case 'PING_CHECK': {
      const endpoint = resolveEndpoint(c.config, ctx, {}, true);
      if (endpoint.fwmark !== undefined) throw new CheckerConfigError('fwmark', 'is not supported by xlb on PING_CHECK (raw ICMP sockets set no mark)');
      return { kind: c.kind, timing: resolveTiming(c.kind, c.config, ctx), endpoint };
    }
    case 'HTTP_GET':
    case 'SSL_GET': {
      const cfg = c.config;
      if (!Array.isArray(cfg.url) || cfg.url.length === 0) throw new CheckerConfigError('url', `${c.kind} needs at least one url`);
      const vhost = cfg.virtualhost ?? ctx.real?.virtualhost ?? ctx.service?.virtualhost;
      const protocol = cfg.http_protocol ?? '1.0';
      if (!['1.0', '1.0C', '1.1'].includes(protocol)) throw new CheckerConfigError('http_protocol', `'${String(protocol)}' is not 1.0, 1.0C or 1.1`);
      return {
        kind: c.kind, timing: resolveTiming(c.kind, cfg, ctx), endpoint: resolveEndpoint(cfg, ctx),
        urls: cfg.url.map((u) => resolveUrl(u, vhost)), protocol, sni: cfg.enable_sni ?? false,
      };
    }
    case 'UDP_CHECK': {
      const cfg = c.config;
      const endpoint = resolveEndpoint(cfg, ctx);
      if (endpoint.bindIf !== undefined || endpoint.fwmark !== undefined) {
        throw new CheckerConfigError(endpoint.bindIf !== undefined ? 'bind_if' : 'fwmark', 'is not supported by xlb on UDP_CHECK (node UDP sockets cannot bind to a device or set a mark)');
      }
      const minReply = nonNegative('min_reply_length', cfg.min_reply_length, true) ?? 0;
      const maxReply = nonNegative('max_reply_length', cfg.max_reply_length, true) ?? UDP_DEFAULT_MAX_REPLY;
      if (maxReply > UDP_MAX_REPLY) throw new CheckerConfigError('max_reply_length', `${maxReply} is beyond ${UDP_MAX_REPLY}`);
      if (minReply > UDP_MAX_REPLY) throw new CheckerConfigError('min_reply_length', `${minReply} is beyond ${UDP_MAX_REPLY}`);
      const spec: CheckerSpec = {
        kind: 'UDP_CHECK', timing: resolveTiming('UDP_CHECK', cfg, ctx), endpoint,
        requireReply: cfg.require_reply !== undefined, minReply, maxReply,
      };
      if (cfg.payload !== undefined) spec.payload = parseHexString(cfg.payload, 'payload').data;
      if (typeof cfg.require_reply === 'string') spec.reply = parseHexString(cfg.require_reply, 'require_reply', true);
      return spec;
    }
    case 'DNS_CHECK': {
      const cfg = c.config;
      const endpoint = resolveEndpoint(cfg, ctx);
      if (endpoint.bindIf !== undefined || endpoint.fwmark !== undefined) {
        throw new CheckerConfigError(endpoint.bindIf !== undefined ? 'bind_if' : 'fwmark', 'is not supported by xlb on DNS_CHECK (node UDP sockets cannot bind to a device or set a mark)');
      }
      const name = cfg.name ?? DEFAULT_DNS_NAME;
      if (name.split('.').some((l, i, all) => l.length > 63 || (l === '' && !(i === all.length - 1 || name === '.')))) {
        throw new CheckerConfigError('name', `'${name}' is not a domain name (labels of 1..63 characters)`);
      }
      return { kind: 'DNS_CHECK', timing: resolveTiming('DNS_CHECK', cfg, ctx), endpoint, type: parseDnsType(cfg.type ?? DEFAULT_DNS_TYPE), name };
    }
    case 'SMTP_CHECK': {
      const cfg = c.config;
      const hosts = cfg.host && cfg.host.length > 0 ? cfg.host.map((h) => resolveEndpoint(h, ctx, cfg)) : [resolveEndpoint(cfg, ctx)];
      const helo = cfg.helo_name ?? DEFAULT_SMTP_HELO;
      if (/[\r\n]/.test(helo)) throw new CheckerConfigError('helo_name', 'must be one line');
      return { kind: 'SMTP_CHECK', timing: resolveTiming('SMTP_CHECK', cfg, ctx), hosts, helo };
    }
    case 'MISC_CHECK': {
      const cfg = c.config;
      if (typeof cfg.misc_path !== 'string' || cfg.misc_path.trim() === '') throw new CheckerConfigError('misc_path', 'MISC_CHECK needs a misc_path');
      const timing = resolveTiming('MISC_CHECK', cfg, ctx);
      const timeout = nonNegative('misc_timeout', cfg.misc_timeout) ?? ctx.service?.delay_loop ?? DEFAULT_DELAY_LOOP_S;
      timing.timeoutMs = s2ms(timeout);
      timing.fromStart = true;
      return {
        kind: 'MISC_CHECK', timing, command: cfg.misc_path, dynamic: cfg.misc_dynamic ?? false, weight: ctx.weight,
        ...(cfg.user !== undefined ? { user: cfg.user } : {}), ...(cfg.group !== undefined ? { group: cfg.group } : {}),
      };
    }
    case 'FILE_CHECK': {
      const cfg = c.config;
      if (typeof cfg.file !== 'string' || cfg.file === '') throw new CheckerConfigError('track_file', `track_file '${cfg.track_file}' has no file`);
      const weight = cfg.weight ?? 1;
      if (!Number.isInteger(weight) || Math.abs(weight) > 2147483647) throw new CheckerConfigError('weight', `${weight} is not in -2147483647..2147483647`);
      return { kind: 'FILE_CHECK', file: cfg.file, trackFile: cfg.track_file, weight, reverse: cfg.reverse ?? false, dynamic: cfg.dynamic ?? false };
    }
  }
}

/** What a spec checks, for messages: 'TCP_CHECK 198.18.0.11:80'. */
export function describeSpec(s: CheckerSpec): string {
  switch (s.kind) {
    case 'SMTP_CHECK': return `${s.kind} ${s.hosts.map(endpointText).join(' ')}`;
    case 'MISC_CHECK': return `${s.kind} ${s.command}`;
    case 'FILE_CHECK': return `${s.kind} ${s.file}`;
    case 'PING_CHECK': return `${s.kind} ${s.endpoint.address}`;
    default: return `${s.kind} ${endpointText(s.endpoint)}`;
  }
}
