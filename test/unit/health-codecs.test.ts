/**
 * The pure parts of the checkers: the HTTP request keepalived sends and how it reads the answer
 * (status line, body MD5 against RFC 1321's test vectors, regex offsets), SMTP replies, UDP reply
 * matching, the DNS query bytes (written out by hand from RFC 1035) and answers, ICMP echo
 * requests and replies (built by the independent test/lib/packets.ts), FILE_CHECK and MISC_CHECK
 * verdicts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HttpAnswer, httpRequest, statusCodeOf } from '../../src/health/http.ts';
import { SmtpReplies } from '../../src/health/smtp.ts';
import { udpReplyMismatch } from '../../src/health/udp.ts';
import { dnsAnswer, dnsQuery, rcodeName } from '../../src/health/dns.ts';
import { echoOutcome, echoRequest } from '../../src/health/ping.ts';
import { fileVerdict } from '../../src/health/file.ts';
import { miscVerdict } from '../../src/health/misc.ts';
import type { UrlSpec } from '../../src/health/config.ts';
import { icmpv4, icmpv6, ipv4, ipv6, packet } from '../lib/packets.ts';

const ep4 = { family: 4 as const, address: '198.18.0.11', port: 8080 };
const ep6 = { family: 6 as const, address: 'fd00::11', port: 80 };
const url = (o: Partial<UrlSpec> = {}): UrlSpec => ({ path: '/', statusCodes: [[200, 299]], ...o });

test('the GET request, byte for byte, as keepalived 2.2 writes it', () => {
  assert.equal(httpRequest(url({ path: '/health' }), '1.0', ep4),
    'GET /health HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 198.18.0.11:8080\r\n\r\n');
  assert.equal(httpRequest(url(), '1.0C', ep6),
    'GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: [fd00::11]:80\r\n\r\n');
  assert.equal(httpRequest(url({ virtualhost: 'www.lab.test' }), '1.1', ep6),
    'GET / HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: www.lab.test\r\n\r\n');
});

test('the status code: three digits after the first space, then a space (keepalived extract_status_code)', () => {
  const s = (t: string) => statusCodeOf(Buffer.from(t));
  assert.equal(s('HTTP/1.1 200 OK'), 200);
  assert.equal(s('HTTP/1.0 503 Service Unavailable'), 503);
  assert.equal(s('HTTP/1.1 404 '), 404);
  assert.equal(s('HTTP/1.1 200'), 0, 'no space after the code');
  assert.equal(s('HTTP/1.1 2000 x'), 0);
  assert.equal(s('HTTP/1.1  200 x'), 0);
  assert.equal(s('garbage'), 0);
});

function answer(u: UrlSpec, ...chunks: string[]) {
  const a = new HttpAnswer(u);
  for (const c of chunks) a.push(Buffer.from(c, 'latin1'));
  return a.verdict(u);
}

test('the body MD5 against RFC 1321 test vectors, whatever the chunking', () => {
  const head = 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n';
  assert.deepEqual(answer(url({ digest: '900150983cd24fb0d6963f7d28e17f72' }), head + 'abc'), { ok: true });
  assert.deepEqual(answer(url({ digest: 'f96b697d7cb7938d525a2f31aaf161d0' }), 'HTTP/1.0 200 OK\r', '\n\r', '\nmessage', ' digest'), { ok: true });
  assert.deepEqual(answer(url({ digest: 'd41d8cd98f00b204e9800998ecf8427e' }), head), { ok: true }, 'MD5 of the empty body');
  assert.deepEqual(answer(url({ digest: 'd41d8cd98f00b204e9800998ecf8427e' }), head + 'abc'),
    { ok: false, reason: 'MD5 digest 900150983cd24fb0d6963f7d28e17f72, expected d41d8cd98f00b204e9800998ecf8427e' });
});

test('status ranges, no answer, no end of header', () => {
  const ok = 'HTTP/1.1 204 No Content\r\n\r\n';
  assert.deepEqual(answer(url(), ok), { ok: true });
  assert.deepEqual(answer(url({ statusCodes: [[200, 200], [404, 404]] }), ok), { ok: false, reason: 'HTTP status 204' });
  assert.deepEqual(answer(url({ statusCodes: [[200, 200], [404, 404]] }), 'HTTP/1.1 404 Not Found\r\n\r\nx'), { ok: true });
  assert.deepEqual(answer(url()), { ok: false, reason: 'no data received' });
  assert.deepEqual(answer(url(), 'HTTP/1.1 200 OK\r\nX: y\r\n'), { ok: false, reason: 'no data received' });
  assert.deepEqual(answer(url(), 'HTTP/1.1 200\r\n\r\n'), { ok: false, reason: 'no status code in the answer' });
});

test('regex on the body: min and max offsets of the match start, and regex_no_match', () => {
  const head = 'HTTP/1.0 200 OK\r\n\r\n';
  const body = '0123456789 status=ok load=7';
  const re = (o: Partial<NonNullable<UrlSpec['regex']>>) => url({ regex: { pattern: 'status=(\\w+)', flags: '', noMatch: false, minOffset: 0, ...o } });
  assert.deepEqual(answer(re({}), head, body), { ok: true });
  assert.deepEqual(answer(re({ minOffset: 11 }), head, body), { ok: true }, 'the match starts at 11');
  assert.equal(answer(re({ minOffset: 12 }), head, body).ok, false, 'nothing matches from 12 on');
  assert.deepEqual(answer(re({ maxOffset: 11 }), head, body), { ok: true });
  assert.equal(answer(re({ maxOffset: 10 }), head, body).ok, false, 'the match starts after 10');
  assert.deepEqual(answer(re({ pattern: 'STATUS=OK', flags: 'i' }), head, body), { ok: true });
  assert.deepEqual(answer(re({ noMatch: true }), head, body), { ok: false, reason: 'the body matches /status=(\\w+)/' });
  assert.deepEqual(answer(re({ pattern: 'error', noMatch: true }), head, body), { ok: true });
});

test('SMTP replies: multi-line replies end at "NNN ", chunks may split anywhere', () => {
  const r = new SmtpReplies();
  assert.deepEqual(r.push('220-mail.lab.test ESMTP\r\n220-more'), []);
  assert.deepEqual(r.push(' text\r\n220 ready\r\n250 hel'), [220]);
  assert.deepEqual(r.push('lo\r\n'), [250]);
  assert.deepEqual(r.push('554\r\nhello there\n'), [554, 0]);
  assert.equal(r.pending, 0);
});

test('UDP replies: length bounds, then the expected bytes with x nibbles as wildcards', () => {
  const expected = { data: Buffer.from([0x4f, 0x00]), mask: Buffer.from([0x00, 0x0f]) };
  assert.equal(udpReplyMismatch(Buffer.from([0x4f, 0x07, 0x99]), 0, 255, expected), undefined);
  assert.equal(udpReplyMismatch(Buffer.from([0x4f]), 0, 255, expected), undefined, 'only as many bytes as both have');
  assert.equal(udpReplyMismatch(Buffer.from([0x4f, 0x17]), 0, 255, expected), 'reply byte 1 is 0x17, expected 0x00');
  assert.equal(udpReplyMismatch(Buffer.from([0x4e, 0x00]), 0, 255, expected), 'reply byte 0 is 0x4e, expected 0x4f');
  assert.equal(udpReplyMismatch(Buffer.alloc(3), 4, 255), 'reply of 3 bytes, not 4..255');
  assert.equal(udpReplyMismatch(Buffer.alloc(300), 0, 255), 'reply of 300 bytes, not 0..255');
});

test('the DNS query, byte for byte (RFC 1035 4.1)', () => {
  assert.deepEqual(dnsQuery(0x1234, 'good.lab.test', 1), Buffer.from([
    0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    4, ...Buffer.from('good'), 3, ...Buffer.from('lab'), 4, ...Buffer.from('test'), 0,
    0x00, 0x01, 0x00, 0x01,
  ]));
  assert.deepEqual(dnsQuery(0xbeef, 'lab.test.', 6), Buffer.from([
    0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    3, ...Buffer.from('lab'), 4, ...Buffer.from('test'), 0, 0x00, 0x06, 0x00, 0x01,
  ]), 'a trailing dot still ends in the root label');
  assert.deepEqual(dnsQuery(1, '.', 6), Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1]));
});

test('DNS answers: only a response with our id counts; its RCODE decides', () => {
  const hdr = (id: number, flags: number) => Buffer.from([id >> 8, id & 0xff, flags >> 8, flags & 0xff, 0, 1, 0, 1, 0, 0, 0, 0]);
  assert.deepEqual(dnsAnswer(hdr(7, 0x8180), 7), { rcode: 0 });
  assert.deepEqual(dnsAnswer(hdr(7, 0x8183), 7), { rcode: 3 });
  assert.equal(rcodeName(3), 'NXDOMAIN');
  assert.equal(rcodeName(5), 'REFUSED');
  assert.ok('ignore' in dnsAnswer(hdr(8, 0x8180), 7));
  assert.ok('ignore' in dnsAnswer(hdr(7, 0x0100), 7), 'a query is not an answer');
  assert.ok('ignore' in dnsAnswer(Buffer.alloc(11), 7));
});

test('ICMP echo requests equal the independent builder\'s (IPv4 checksum included)', () => {
  const req = echoRequest(4, 0x1234, 0xabcd);
  const body = req.subarray(8);
  assert.equal(body.length, 56);
  assert.deepEqual(req, packet(icmpv4({ type: 8, code: 0, rest: (0x1234 << 16) | 0xabcd }), body));
  const req6 = echoRequest(6, 0x1234, 7);
  assert.deepEqual([req6[0], req6[1], req6.readUInt16BE(2), req6.readUInt16BE(4), req6.readUInt16BE(6)], [128, 0, 0, 0x1234, 7], 'ICMPv6: the kernel sums it');
});

test('ICMP outcomes: our reply, errors quoting our request, and everything else ignored', () => {
  const data = echoRequest(4, 0x1234, 9).subarray(8);
  const reply = packet(icmpv4({ type: 0, code: 0, rest: (0x1234 << 16) | 9 }), data);
  assert.deepEqual(echoOutcome(4, reply, 0x1234, 9), { reply: true });
  assert.equal(echoOutcome(4, reply, 0x1234, 10), undefined, 'another sequence number');
  assert.equal(echoOutcome(4, reply, 0x4321, 9), undefined, 'another identifier');
  const request = packet(ipv4({ src: '198.18.0.2', dst: '198.18.0.99' }), icmpv4({ type: 8, code: 0, rest: (0x1234 << 16) | 9 }), data);
  const unreach = packet(icmpv4({ type: 3, code: 1 }), request);
  assert.deepEqual(echoOutcome(4, unreach, 0x1234, 9), { error: 'destination unreachable (code 1)' });
  assert.equal(echoOutcome(4, unreach, 0x1234, 8), undefined);
  assert.equal(echoOutcome(4, packet(icmpv4({ type: 8, code: 0, rest: (0x1234 << 16) | 9 }), data), 0x1234, 9), undefined, 'an echo request is not a reply');
  // the builder's ICMPv6 needs its IPv6 header for the checksum; the socket hands over the ICMPv6 part
  const reply6 = packet(ipv6({ src: 'fd00::11', dst: 'fd00::2' }), icmpv6({ type: 129, code: 0, rest: (0x1234 << 16) | 9 }), data).subarray(40);
  assert.deepEqual(echoOutcome(6, reply6, 0x1234, 9), { reply: true });
  assert.equal(echoOutcome(6, reply6.subarray(0, 4), 0x1234, 9), undefined, 'too short');
  const req6 = packet(ipv6({ src: 'fd00::2', dst: 'fd00::99' }), icmpv6({ type: 128, code: 0, rest: (0x1234 << 16) | 9 }), data);
  const unreach6 = packet(ipv6({ src: 'fd00::2', dst: 'fd00::2' }), icmpv6({ type: 1, code: 3 }), req6).subarray(40);
  assert.deepEqual(echoOutcome(6, unreach6, 0x1234, 9), { error: 'destination unreachable (code 3)' });
});

test('FILE_CHECK verdicts: weight 0 is up on 0 (reverse: on non-0); a weight adds value x weight', () => {
  assert.deepEqual(fileVerdict(0, 0, false), { up: true, reason: 'value 0', weightDelta: 0 });
  assert.deepEqual(fileVerdict(5, 0, false), { up: false, reason: 'value 5', weightDelta: 0 });
  assert.deepEqual(fileVerdict(0, 0, true), { up: false, reason: 'value 0', weightDelta: 0 });
  assert.deepEqual(fileVerdict(-3, 0, true), { up: true, reason: 'value -3', weightDelta: 0 });
  assert.deepEqual(fileVerdict(3, 4, false), { up: true, reason: 'value 3 x weight 4', weightDelta: 12 });
  assert.deepEqual(fileVerdict(3, 4, true), { up: true, reason: 'value 3 x weight -4', weightDelta: -12 });
  assert.equal(fileVerdict(2 ** 30, 4, true).up, false, 'at or below -2^31: FAULT');
  assert.deepEqual(fileVerdict(2 ** 30, 4, false).weightDelta, 2 ** 31 - 1, 'saturating');
});

test('MISC_CHECK verdicts: 0 up, 1 down, 2..255 the weight with misc_dynamic, signals and timeouts down', () => {
  const run = (o: Partial<Parameters<typeof miscVerdict>[0]>) => ({ status: 'failure' as const, exitCode: 1, signal: null, durationMs: 5, ...o });
  assert.deepEqual(miscVerdict(run({ status: 'success', exitCode: 0 }), false, 3, 1000), { up: true, reason: 'exit 0' });
  assert.deepEqual(miscVerdict(run({ status: 'success', exitCode: 0 }), true, 3, 1000), { up: true, reason: 'exit 0', weightDelta: 0 });
  assert.deepEqual(miscVerdict(run({}), true, 3, 1000), { up: false, reason: 'exit 1' });
  assert.deepEqual(miscVerdict(run({ exitCode: 12 }), true, 3, 1000), { up: true, reason: 'exit 12: weight 10', weightDelta: 7 });
  assert.deepEqual(miscVerdict(run({ exitCode: 12 }), false, 3, 1000), { up: false, reason: 'exit 12' });
  assert.deepEqual(miscVerdict(run({ exitCode: null, signal: 'SIGSEGV' }), true, 3, 1000), { up: false, reason: 'killed by SIGSEGV' });
  assert.deepEqual(miscVerdict(run({ status: 'timeout', exitCode: null, signal: 'SIGTERM' }), true, 3, 1500), { up: false, reason: 'timed out after 1500 ms' });
});
