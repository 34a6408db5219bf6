/**
 * Checker configs to specs (src/health/config.ts): keepalived 2.2.7's defaults and inheritance
 * (checker, real server, virtual server, default), its value rules (status codes, hex strings,
 * digests, DNS types) and the errors, which name the keyword. Expected values come from
 * keepalived.conf(5) of 2.2.7 and its sources, written out by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CheckerConfigError, parseDigest, parseDnsType, parseHexString, parseStatusCode, resolveChecker, resolveTiming, type ResolveContext,
} from '../../src/health/config.ts';
import type { AnyCheckerConfig } from '../../src/health/types.ts';

const ctx: ResolveContext = { address: '198.18.0.11', port: 80, weight: 3 };

function spec(c: AnyCheckerConfig, x: Partial<ResolveContext> = {}) {
  return resolveChecker(c, { ...ctx, ...x });
}

function throwsKeyword(f: () => unknown, keyword: string, message: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof CheckerConfigError, `a CheckerConfigError, got ${String(e)}`);
    assert.equal(e.keyword, keyword);
    assert.match(e.message, message);
    return true;
  });
}

test('keepalived defaults: delay_loop 60 s, connect_timeout 5 s, retry 1, delay_before_retry 1 s, warmup = delay_loop', () => {
  const s = spec({ kind: 'TCP_CHECK', config: {} });
  assert.deepEqual(s, {
    kind: 'TCP_CHECK',
    timing: { delayLoopMs: 60_000, retry: 1, delayBeforeRetryMs: 1000, warmupMs: 60_000, timeoutMs: 5000, alpha: false },
    endpoint: { family: 4, address: '198.18.0.11', port: 80 },
  });
});

test('per-kind defaults: DNS retry 3 and delay_before_retry = delay_loop; HTTP/SSL 3 s; MISC retry 0', () => {
  assert.equal(resolveTiming('DNS_CHECK', {}, ctx).retry, 3);
  assert.equal(resolveTiming('DNS_CHECK', { delay_loop: 7 }, ctx).delayBeforeRetryMs, 7000);
  assert.equal(resolveTiming('HTTP_GET', {}, ctx).delayBeforeRetryMs, 3000);
  assert.equal(resolveTiming('SSL_GET', {}, ctx).delayBeforeRetryMs, 3000);
  assert.equal(resolveTiming('MISC_CHECK', {}, ctx).retry, 0);
  assert.equal(resolveTiming('SMTP_CHECK', {}, ctx).delayBeforeRetryMs, 1000);
});

test('inheritance: the checker first, then the real server, then the virtual server', () => {
  const service = { delay_loop: 10, connect_timeout: 2, retry: 4, delay_before_retry: 6, warmup: 0, alpha: true };
  const real = { delay_loop: 20, retry: 5 };
  let t = resolveTiming('TCP_CHECK', {}, { ...ctx, service });
  assert.deepEqual(t, { delayLoopMs: 10_000, retry: 4, delayBeforeRetryMs: 6000, warmupMs: 0, timeoutMs: 2000, alpha: true });
  t = resolveTiming('TCP_CHECK', {}, { ...ctx, service, real });
  assert.deepEqual(t, { delayLoopMs: 20_000, retry: 5, delayBeforeRetryMs: 6000, warmupMs: 0, timeoutMs: 2000, alpha: true });
  t = resolveTiming('TCP_CHECK', { delay_loop: 0.5, retry: 0, alpha: false, connect_timeout: 0.25 }, { ...ctx, service, real });
  assert.deepEqual(t, { delayLoopMs: 500, retry: 0, delayBeforeRetryMs: 6000, warmupMs: 0, timeoutMs: 250, alpha: false });
  // warmup follows the checker's own delay_loop when nobody sets it
  assert.equal(resolveTiming('TCP_CHECK', { delay_loop: 3 }, ctx).warmupMs, 3000);
});

test('endpoint: connect_ip/connect_port over the real server; bindto, bind_port, bind_if, fwmark', () => {
  const s = spec({ kind: 'TCP_CHECK', config: { connect_ip: 'fd00::11', connect_port: 8080, bindto: 'fd00::2', bind_port: 4000, bind_if: 'eth0', fwmark: 7 } });
  assert.deepEqual(s.kind === 'TCP_CHECK' && s.endpoint, { family: 6, address: 'fd00::11', port: 8080, bindto: 'fd00::2', bindPort: 4000, bindIf: 'eth0', fwmark: 7 });
  throwsKeyword(() => spec({ kind: 'TCP_CHECK', config: { bindto: 'fd00::2' } }), 'bindto', /not of the family of 198.18.0.11/);
  throwsKeyword(() => spec({ kind: 'TCP_CHECK', config: { connect_ip: 'fe80::1' } }), 'bind_if', /link-local address fe80::1 needs bind_if/);
  throwsKeyword(() => spec({ kind: 'TCP_CHECK', config: {} }, { port: 0 }), 'connect_port', /no port/);
  const ping = spec({ kind: 'PING_CHECK', config: {} }, { port: 0 });
  assert.deepEqual(ping.kind === 'PING_CHECK' && ping.endpoint, { family: 4, address: '198.18.0.11', port: 0 }, 'PING_CHECK needs no port');
  throwsKeyword(() => spec({ kind: 'PING_CHECK', config: { fwmark: 1 } }), 'fwmark', /not supported by xlb on PING_CHECK/);
  throwsKeyword(() => spec({ kind: 'TCP_CHECK', config: { connect_port: 70000 } }), 'connect_port', /70000 is not a port/);
  throwsKeyword(() => spec({ kind: 'TCP_CHECK', config: { connect_ip: '198.18.0.300' } }), 'connect_ip', /not an IP address/);
  throwsKeyword(() => spec({ kind: 'TCP_CHECK', config: { delay_loop: 0 } }), 'delay_loop', /more than 0/);
  throwsKeyword(() => spec({ kind: 'TCP_CHECK', config: { retry: 1.5 } }), 'retry', /whole number/);
});

test('status_code: codes and ranges within 100..599 (keepalived status_code_handler)', () => {
  assert.deepEqual(parseStatusCode('200'), [200, 200]);
  assert.deepEqual(parseStatusCode('200-299'), [200, 299]);
  assert.deepEqual(parseStatusCode('100-599'), [100, 599]);
  for (const bad of ['99', '600', '300-200', '2OO', '200-', '-200', '']) {
    throwsKeyword(() => parseStatusCode(bad), 'status_code', /within 100..599/);
  }
});

test('hex strings as keepalived reads them, with the man page example and x wildcards', () => {
  // keepalived.conf(5): "Ab12f 3 456 546443123" is AB 12 0F 03 45 06 54 64 43 12 03
  assert.deepEqual(parseHexString('Ab12f 3 456 546443123', 'payload'), { data: Buffer.from([0xab, 0x12, 0x0f, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03]) });
  assert.deepEqual(parseHexString('0Xx1', 'require_reply', true), { data: Buffer.from([0x00, 0x01]), mask: Buffer.from([0x0f, 0xf0]) });
  throwsKeyword(() => parseHexString('0x', 'payload'), 'payload', /'x' at offset 1 is not a hex digit/);
  throwsKeyword(() => parseHexString('   ', 'payload'), 'payload', /no hex digits/);
  throwsKeyword(() => parseHexString('12g4', 'require_reply', true), 'require_reply', /'g' at offset 2/);
});

test('digest: 32 hex digits, kept in lower case; DNS types by name in any case', () => {
  assert.equal(parseDigest('9B3A0C85A887A256D6939DA88AABD8CD'), '9b3a0c85a887a256d6939da88aabd8cd');
  throwsKeyword(() => parseDigest('9b3a'), 'digest', /32 hex digits/);
  assert.equal(parseDnsType('soa'), 6);
  assert.equal(parseDnsType('AAAA'), 28);
  throwsKeyword(() => parseDnsType('PTR'), 'type', /not one of A NS CNAME SOA MX TXT AAAA RRSIG DNSKEY/);
});

test('HTTP_GET: default status 200-299, protocol 1.0; virtualhost from url, checker, real, then virtual server', () => {
  const s = spec({ kind: 'HTTP_GET', config: { url: [{ path: '/a' }, { path: '/b', virtualhost: 'b.test', status_code: [[200, 200], [404, 404]], digest: 'ABCDEF0123456789ABCDEF0123456789' }] } },
    { real: { virtualhost: 'rs.test' }, service: { virtualhost: 'vs.test' } });
  assert.equal(s.kind, 'HTTP_GET');
  if (s.kind !== 'HTTP_GET') return;
  assert.equal(s.protocol, '1.0');
  assert.equal(s.sni, false);
  assert.deepEqual(s.urls, [
    { path: '/a', statusCodes: [[200, 299]], virtualhost: 'rs.test' },
    { path: '/b', statusCodes: [[200, 200], [404, 404]], digest: 'abcdef0123456789abcdef0123456789', virtualhost: 'b.test' },
  ]);
  const v = spec({ kind: 'SSL_GET', config: { url: [{ path: '/' }], virtualhost: 'chk.test', enable_sni: true } }, { service: { virtualhost: 'vs.test' } });
  assert.ok(v.kind === 'SSL_GET' && v.urls[0]?.virtualhost === 'chk.test' && v.sni);
  throwsKeyword(() => spec({ kind: 'HTTP_GET', config: { url: [] } }), 'url', /at least one url/);
  throwsKeyword(() => spec({ kind: 'HTTP_GET', config: { url: [{ path: '/', status_code: [[700, 700]] }] } }), 'status_code', /'700-700'/);
  throwsKeyword(() => spec({ kind: 'HTTP_GET', config: { url: [{ path: '/' }], http_protocol: '2' as '1.1' } }), 'http_protocol', /1.0, 1.0C or 1.1/);
});

test('HTTP_GET regex: options become flags; unknown ones and stray regex settings are refused', () => {
  const s = spec({ kind: 'HTTP_GET', config: { url: [{ path: '/', regex: 'ok\\s+\\d+', regex_options: ['caseless', 'multiline', 'no_start_optimize'], regex_min_offset: 5, regex_max_offset: 100 }] } });
  assert.ok(s.kind === 'HTTP_GET');
  assert.deepEqual(s.kind === 'HTTP_GET' && s.urls[0]?.regex, { pattern: 'ok\\s+\\d+', flags: 'im', noMatch: false, minOffset: 5, maxOffset: 100 });
  throwsKeyword(() => spec({ kind: 'HTTP_GET', config: { url: [{ path: '/', regex: 'a', regex_options: ['extended'] }] } }), 'regex_options', /'extended' is not supported/);
  throwsKeyword(() => spec({ kind: 'HTTP_GET', config: { url: [{ path: '/', regex: '(' }] } }), 'regex', /not a valid regular expression/);
  throwsKeyword(() => spec({ kind: 'HTTP_GET', config: { url: [{ path: '/', regex_no_match: true }] } }), 'regex', /need a regex/);
});

test('UDP_CHECK: payload and reply parsed; lengths default 0..255; bind_if and fwmark refused by name', () => {
  const s = spec({ kind: 'UDP_CHECK', config: { payload: '01 02', require_reply: '0x' } });
  assert.ok(s.kind === 'UDP_CHECK');
  if (s.kind !== 'UDP_CHECK') return;
  assert.deepEqual([s.payload, s.requireReply, s.reply, s.minReply, s.maxReply], [Buffer.from([1, 2]), true, { data: Buffer.from([0]), mask: Buffer.from([0x0f]) }, 0, 255]);
  const plain = spec({ kind: 'UDP_CHECK', config: { require_reply: true } });
  assert.ok(plain.kind === 'UDP_CHECK' && plain.requireReply && plain.reply === undefined);
  const none = spec({ kind: 'UDP_CHECK', config: {} });
  assert.ok(none.kind === 'UDP_CHECK' && !none.requireReply);
  throwsKeyword(() => spec({ kind: 'UDP_CHECK', config: { bind_if: 'eth0' } }), 'bind_if', /not supported by xlb on UDP_CHECK/);
  throwsKeyword(() => spec({ kind: 'UDP_CHECK', config: { max_reply_length: 70000 } }), 'max_reply_length', /beyond 65535/);
});

test('DNS_CHECK defaults to SOA of the root; SMTP_CHECK host blocks take the checker options as defaults', () => {
  const d = spec({ kind: 'DNS_CHECK', config: { connect_port: 53 } });
  assert.ok(d.kind === 'DNS_CHECK' && d.type === 6 && d.name === '.');
  throwsKeyword(() => spec({ kind: 'DNS_CHECK', config: { name: 'a..b' } }), 'name', /not a domain name/);
  const m = spec({ kind: 'SMTP_CHECK', config: { connect_port: 25, bindto: '198.18.0.2', host: [{ connect_ip: '198.18.0.12' }, { connect_port: 2525 }] } });
  assert.ok(m.kind === 'SMTP_CHECK');
  assert.deepEqual(m.kind === 'SMTP_CHECK' && m.hosts, [
    { family: 4, address: '198.18.0.12', port: 25, bindto: '198.18.0.2' },
    { family: 4, address: '198.18.0.11', port: 2525, bindto: '198.18.0.2' },
  ]);
  assert.equal(m.kind === 'SMTP_CHECK' && m.helo, 'smtpchecker.keepalived.org');
});

test('MISC_CHECK: timeout is misc_timeout, else the virtual server delay_loop; delays from the start; FILE_CHECK weight default 1', () => {
  const m = spec({ kind: 'MISC_CHECK', config: { misc_path: '/bin/true', misc_dynamic: true } }, { service: { delay_loop: 9 }, real: { delay_loop: 4 } });
  assert.ok(m.kind === 'MISC_CHECK');
  if (m.kind !== 'MISC_CHECK') return;
  assert.deepEqual([m.timing.timeoutMs, m.timing.delayLoopMs, m.timing.retry, m.timing.fromStart, m.dynamic, m.weight], [9000, 4000, 0, true, true, 3]);
  const t = spec({ kind: 'MISC_CHECK', config: { misc_path: '/bin/true', misc_timeout: 2 } });
  assert.equal(t.kind === 'MISC_CHECK' && t.timing.timeoutMs, 2000);
  throwsKeyword(() => spec({ kind: 'MISC_CHECK', config: { misc_path: ' ' } }), 'misc_path', /needs a misc_path/);
  const f = spec({ kind: 'FILE_CHECK', config: { track_file: 'tf', file: '/run/x' } });
  assert.deepEqual(f, { kind: 'FILE_CHECK', file: '/run/x', trackFile: 'tf', weight: 1, reverse: false, dynamic: false });
  throwsKeyword(() => spec({ kind: 'FILE_CHECK', config: { track_file: 'tf', file: '/run/x', weight: 2 ** 31 } }), 'weight', /-2147483647..2147483647/);
});
