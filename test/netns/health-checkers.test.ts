/**
 * Every network checker against real servers in a namespace pair (scripts/lab/health-lab.ts):
 * nginx for HTTP and HTTPS (self-signed certificates, SNI), dnsmasq for DNS, an SMTP responder,
 * UDP and TCP listeners, the server host's own ICMP. For each checker the good server brings the
 * real up (alpha: it starts down, so "up" means a check passed), and the bad ones take it down:
 * refusing (nothing listening), slow (beyond connect_timeout), wrong status, wrong digest, wrong
 * DNS answer, bad SMTP banner; and a down real comes back up when its server does. Expected MD5
 * digests come from keepalived's own genhash, run against the same servers.
 *
 * The check engine runs in the checker namespace (scripts/lab/health-agent.ts), as the daemon
 * would; delays are short (delay_loop 0.2 s, connect_timeout 0.5 s, retry 0).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CHECKER, CHECKER2, createHealthLab, DNS_GOOD, DNS_LOCAL, NOBODY, SERVER, SNI_NAME, type HealthLab } from '../../scripts/lab/health-lab.ts';
import { nsExec } from '../../scripts/lab/netns.ts';
import type { AnyCheckerConfig } from '../../src/health/types.ts';
import { requireCommand, requireFile, requireRoot } from '../lib/require.ts';
import { ADDON_PATH } from '../../src/datapath/bpf/index.ts';

let lab: HealthLab;
let n = 0;

const FAST = { delay_loop: 0.2, connect_timeout: 0.5, retry: 0, delay_before_retry: 0.1, warmup: 0 };

before(async () => {
  requireRoot();
  requireFile(ADDON_PATH, 'make native');
  requireCommand('nginx', 'nginx-light');
  requireCommand('dnsmasq', 'dnsmasq-base');
  requireCommand('openssl', 'openssl');
  requireCommand('nft', 'nftables');
  requireCommand('genhash', 'keepalived');
  lab = await createHealthLab();
});

after(async () => {
  if (!lab) return;
  await lab.checker.stop();
  await lab.servers.stop();
  lab.destroy();
});

interface Real {
  key: string;
  refused: { message: string }[];
}

/** A real server with these checkers (alpha: starts down), address and port by default the server's :80. */
async function real(checkers: AnyCheckerConfig[], o: { alpha?: boolean; address?: string; port?: number; weight?: number } = {}): Promise<Real> {
  const key = `r${++n}`;
  const r = await lab.checker.call({
    op: 'add', key, checkers, weight: o.weight ?? 1,
    ctx: { address: o.address ?? SERVER.ipv4, port: o.port ?? 80, service: { ...FAST, alpha: o.alpha ?? true } },
  });
  return { key, refused: r.refused as { message: string }[] };
}

type State = { up: boolean; weight: number; checkers: { reason: string; hasRun: boolean }[] };

async function until(r: Real, up: boolean, timeoutMs = 3000): Promise<State> {
  assert.deepEqual(r.refused, [], 'no checker refused');
  return (await lab.checker.call({ op: 'wait', key: r.key, up, timeoutMs })).state as State;
}

/** the reason of the real's first checker */
const reason = (s: State) => s.checkers[0]?.reason ?? '';

function genhash(args: string[]): string {
  return nsExec(lab.chk, ['genhash', ...args]).trim();
}

describe('TCP_CHECK', () => {
  test('up when the connect completes (IPv4 and IPv6); down when refused, unanswered or unreachable', async () => {
    await lab.servers.call({ op: 'tcp', port: 81 });
    lab.nft(lab.srv, 'input tcp dport 83 drop');
    const good4 = await real([{ kind: 'TCP_CHECK', config: { connect_port: 81 } }]);
    const good6 = await real([{ kind: 'TCP_CHECK', config: { connect_ip: SERVER.ipv6, connect_port: 81 } }]);
    const refused = await real([{ kind: 'TCP_CHECK', config: { connect_port: 82 } }], { alpha: false });
    const slow = await real([{ kind: 'TCP_CHECK', config: { connect_port: 83 } }], { alpha: false });
    const nobody = await real([{ kind: 'TCP_CHECK', config: { connect_port: 81 } }], { alpha: false, address: NOBODY.ipv4 });
    assert.equal(reason(await until(good4, true)), 'connected');
    assert.equal(reason(await until(good6, true)), 'connected');
    assert.equal(reason(await until(refused, false)), 'connect: ECONNREFUSED');
    assert.equal(reason(await until(slow, false)), 'timeout after 500 ms');
    assert.match(reason(await until(nobody, false)), /timeout after 500 ms|EHOSTUNREACH/);
  });

  test('a real that is down comes back up when its server does, with one event each way', async () => {
    const r = await real([{ kind: 'TCP_CHECK', config: { connect_port: 84 } }], { alpha: false });
    await until(r, false);
    await lab.servers.call({ op: 'tcp', port: 84 });
    await until(r, true);
    const { events } = await lab.checker.call({ op: 'events', key: r.key }) as { events: { type: string }[] };
    assert.deepEqual(events.map((e) => e.type), ['down', 'up']);
  });

  test('bindto and bind_port choose the source; bind_if the device; fwmark marks the packets', async () => {
    // the server drops what comes from the second address or from source port 40086; the
    // checker's own output drops what carries mark 42
    await lab.servers.call({ op: 'tcp', port: 85 });
    lab.nft(lab.srv, `input ip saddr ${CHECKER2.ipv4} tcp dport 85 drop`);
    lab.nft(lab.srv, 'input tcp sport 40086 tcp dport 85 drop');
    lab.nft(lab.chk, 'output meta mark 42 tcp dport 85 drop');
    const from2 = await real([{ kind: 'TCP_CHECK', config: { connect_port: 85, bindto: CHECKER2.ipv4 } }], { alpha: false });
    const from1 = await real([{ kind: 'TCP_CHECK', config: { connect_port: 85, bindto: CHECKER.ipv4 } }]);
    const port86 = await real([{ kind: 'TCP_CHECK', config: { connect_port: 85, bind_port: 40086 } }], { alpha: false });
    const port85 = await real([{ kind: 'TCP_CHECK', config: { connect_port: 85, bindto: CHECKER.ipv4, bind_port: 40085 } }]);
    const viaEth0 = await real([{ kind: 'TCP_CHECK', config: { connect_port: 85, bind_if: 'eth0' } }]);
    const viaLo = await real([{ kind: 'TCP_CHECK', config: { connect_port: 85, bind_if: 'lo' } }], { alpha: false });
    const marked = await real([{ kind: 'TCP_CHECK', config: { connect_port: 85, fwmark: 42 } }], { alpha: false });
    const unmarked = await real([{ kind: 'TCP_CHECK', config: { connect_port: 85, fwmark: 41 } }]);
    const notLocal = await real([{ kind: 'TCP_CHECK', config: { connect_port: 85, bindto: '198.18.0.50' } }], { alpha: false });
    assert.equal(reason(await until(from2, false)), 'timeout after 500 ms');
    await until(from1, true);
    assert.equal(reason(await until(port86, false)), 'timeout after 500 ms');
    await until(port85, true);
    await until(viaEth0, true);
    assert.notEqual(reason(await until(viaLo, false)), 'connected');
    assert.match(reason(await until(marked, false)), /timeout|EPERM/, 'the mark matched the drop rule');
    await until(unmarked, true);
    assert.equal(reason(await until(notLocal, false)), 'connect: EADDRNOTAVAIL', 'a source that is not ours');
  });

  test('removing the real servers closes every probe, those waiting for a timeout too', async () => {
    for (let i = 1; i <= n; i++) await lab.checker.call({ op: 'remove', key: `r${i}` });
    const { openProbes } = await lab.checker.call({ op: 'stats' }) as { openProbes: number };
    assert.equal(openProbes, 0);
  });
});

describe('HTTP_GET', () => {
  test('status codes: 200 up, 503 down, 503 accepted when listed; IPv6', async () => {
    const ok = await real([{ kind: 'HTTP_GET', config: { url: [{ path: '/ok' }] } }]);
    const ok6 = await real([{ kind: 'HTTP_GET', config: { connect_ip: SERVER.ipv6, url: [{ path: '/ok' }] } }]);
    const bad = await real([{ kind: 'HTTP_GET', config: { url: [{ path: '/ok' }, { path: '/503' }] } }], { alpha: false });
    const listed = await real([{ kind: 'HTTP_GET', config: { url: [{ path: '/503', status_code: [[500, 503]] }] } }]);
    await until(ok, true);
    await until(ok6, true);
    assert.equal(reason(await until(bad, false)), '/503: HTTP status 503');
    await until(listed, true);
  });

  test('digest: the MD5 genhash computes passes, another fails', async () => {
    const digest = genhash(['-s', SERVER.ipv4, '-p', '80', '-u', '/page']);
    assert.match(digest, /^[0-9a-f]{32}$/, `genhash printed ${digest}`);
    const good = await real([{ kind: 'HTTP_GET', config: { url: [{ path: '/page', digest }] } }]);
    const wrong = await real([{ kind: 'HTTP_GET', config: { url: [{ path: '/ok', digest }] } }], { alpha: false });
    await until(good, true);
    assert.match(reason(await until(wrong, false)), new RegExp(`^/ok: MD5 digest [0-9a-f]{32}, expected ${digest}$`));
  });

  test('regex and regex_no_match on the body', async () => {
    const match = await real([{ kind: 'HTTP_GET', config: { url: [{ path: '/page', regex: 'status=(ok|degraded)' }] } }]);
    const noMatch = await real([{ kind: 'HTTP_GET', config: { url: [{ path: '/page', regex: 'status=ok', regex_no_match: true }] } }], { alpha: false });
    await until(match, true);
    assert.equal(reason(await until(noMatch, false)), '/page: the body matches /status=ok/');
  });

  test('slow (answers after connect_timeout) and refusing servers are down; the server recovering brings it up', async () => {
    await lab.servers.call({ op: 'http', port: 8081, status: 200, body: 'late\n', delayMs: 2000 });
    const slow = await real([{ kind: 'HTTP_GET', config: { connect_port: 8081, url: [{ path: '/' }] } }], { alpha: false });
    const refused = await real([{ kind: 'HTTP_GET', config: { connect_port: 8082, url: [{ path: '/' }] } }], { alpha: false });
    await lab.servers.call({ op: 'http', port: 8083, status: 500, body: 'broken\n' });
    const recovering = await real([{ kind: 'HTTP_GET', config: { connect_port: 8083, url: [{ path: '/' }] } }], { alpha: false });
    assert.equal(reason(await until(slow, false)), 'timeout after 500 ms');
    assert.equal(reason(await until(refused, false)), '/: connect: ECONNREFUSED');
    assert.equal(reason(await until(recovering, false)), '/: HTTP status 500');
    await lab.servers.call({ op: 'close', port: 8083 });
    await lab.servers.call({ op: 'http', port: 8083, status: 200, body: 'fixed\n' });
    await until(recovering, true);
  });
});

describe('SSL_GET', () => {
  test('TLS with SNI: enable_sni reaches the www server (its digest), without SNI it refuses (421); the default server by IPv6', async () => {
    const www = genhash(['-S', '-I', '-V', SNI_NAME, '-s', SERVER.ipv4, '-p', '443', '-u', '/']);
    const dflt = genhash(['-S', '-s', SERVER.ipv4, '-p', '443', '-u', '/']);
    assert.notEqual(www, dflt, 'the two servers answer differently');
    const sni = await real([{ kind: 'SSL_GET', config: { connect_port: 443, virtualhost: SNI_NAME, enable_sni: true, url: [{ path: '/', digest: www }] } }]);
    const noSni = await real([{ kind: 'SSL_GET', config: { connect_port: 443, virtualhost: SNI_NAME, url: [{ path: '/', digest: www }] } }], { alpha: false });
    const plain = await real([{ kind: 'SSL_GET', config: { connect_ip: SERVER.ipv6, connect_port: 443, url: [{ path: '/', digest: dflt }] } }]);
    const notTls = await real([{ kind: 'SSL_GET', config: { connect_port: 80, url: [{ path: '/ok' }] } }], { alpha: false });
    await until(sni, true);
    assert.equal(reason(await until(noSni, false)), '/: HTTP status 421', 'without SNI the www server refuses');
    await until(plain, true);
    assert.notEqual(reason(await until(notTls, false)), '');
  });
});

describe('UDP_CHECK', () => {
  test('an echo answers (require_reply, with and without expected bytes); a closed port is down (ICMP)', async () => {
    await lab.servers.call({ op: 'udp', port: 9007, reply: '4f4b2031' }); // "OK 1"
    const reply = await real([{ kind: 'UDP_CHECK', config: { connect_port: 9007, payload: '70 69 6e 67', require_reply: true } }]);
    const expected = await real([{ kind: 'UDP_CHECK', config: { connect_port: 9007, require_reply: '4f4b 20 3x', min_reply_length: 4 } }]);
    const mismatch = await real([{ kind: 'UDP_CHECK', config: { connect_port: 9007, require_reply: '4f4b2032' } }], { alpha: false });
    const closed = await real([{ kind: 'UDP_CHECK', config: { connect_port: 9008 } }], { alpha: false });
    const closed6 = await real([{ kind: 'UDP_CHECK', config: { connect_ip: SERVER.ipv6, connect_port: 9008, require_reply: true } }], { alpha: false });
    await until(reply, true);
    await until(expected, true);
    assert.equal(reason(await until(mismatch, false)), 'reply byte 3 is 0x31, expected 0x32');
    assert.equal(reason(await until(closed, false)), 'port unreachable (ICMP)');
    assert.equal(reason(await until(closed6, false)), 'port unreachable (ICMP)');
  });

  test('without require_reply, silence up to connect_timeout passes (keepalived)', async () => {
    lab.nft(lab.srv, 'input udp dport 9009 drop');
    const silent = await real([{ kind: 'UDP_CHECK', config: { connect_port: 9009 } }]);
    assert.equal(reason(await until(silent, true)), 'no ICMP error within connect_timeout');
  });
});

describe('DNS_CHECK', () => {
  test('dnsmasq: a name it answers is up; NXDOMAIN and REFUSED are down; no server is down', async () => {
    const good = await real([{ kind: 'DNS_CHECK', config: { connect_port: 53, type: 'A', name: DNS_GOOD } }]);
    const good6 = await real([{ kind: 'DNS_CHECK', config: { connect_ip: SERVER.ipv6, connect_port: 53, type: 'a', name: `${DNS_GOOD}.` } }]);
    const nx = await real([{ kind: 'DNS_CHECK', config: { connect_port: 53, type: 'A', name: `nope.${DNS_LOCAL}` } }], { alpha: false });
    const refused = await real([{ kind: 'DNS_CHECK', config: { connect_port: 53, name: 'example.org' } }], { alpha: false });
    const none = await real([{ kind: 'DNS_CHECK', config: { connect_port: 5353, name: DNS_GOOD } }], { alpha: false });
    assert.equal(reason(await until(good, true)), 'NOERROR');
    await until(good6, true);
    assert.equal(reason(await until(nx, false)), 'answer NXDOMAIN');
    assert.equal(reason(await until(refused, false)), 'answer REFUSED');
    assert.equal(reason(await until(none, false)), 'port unreachable (ICMP)');
  });
});

describe('SMTP_CHECK', () => {
  test('a 220 greeting (multi-line, in two segments) and 250 to HELO is up; bad greeting or HELO answer is down', async () => {
    await lab.servers.call({ op: 'smtp', port: 2525 });
    await lab.servers.call({ op: 'smtp', port: 2526, banner: '554 go away' });
    await lab.servers.call({ op: 'smtp', port: 2527, helo: '501 who are you' });
    const good = await real([{ kind: 'SMTP_CHECK', config: { connect_port: 2525, helo_name: 'xlb.lab.test' } }]);
    const hosts = await real([{ kind: 'SMTP_CHECK', config: { connect_port: 2525, host: [{ connect_ip: SERVER.ipv4 }, { connect_ip: SERVER.ipv6 }] } }]);
    const banner = await real([{ kind: 'SMTP_CHECK', config: { connect_port: 2526 } }], { alpha: false });
    const helo = await real([{ kind: 'SMTP_CHECK', config: { connect_port: 2527 } }], { alpha: false });
    const oneBadHost = await real([{ kind: 'SMTP_CHECK', config: { host: [{ connect_port: 2525 }, { connect_port: 2526 }] } }], { alpha: false });
    assert.equal(reason(await until(good, true)), 'SMTP dialogue completed');
    await until(hosts, true);
    assert.equal(reason(await until(banner, false)), 'bad greeting 554 (220 expected)');
    assert.equal(reason(await until(helo, false)), 'bad HELO response 501 (250 expected)');
    assert.equal(reason(await until(oneBadHost, false)), '198.18.0.11:2526: bad greeting 554 (220 expected)');
  });
});

describe('PING_CHECK', () => {
  test('echo replies bring the real up (IPv4, IPv6); a host that does not answer is down', async () => {
    const v4 = await real([{ kind: 'PING_CHECK', config: {} }]);
    const v6 = await real([{ kind: 'PING_CHECK', config: { bind_if: 'eth0' } }], { address: SERVER.ipv6 });
    const nobody = await real([{ kind: 'PING_CHECK', config: {} }], { alpha: false, address: NOBODY.ipv4 });
    assert.equal(reason(await until(v4, true)), 'echo reply');
    assert.equal(reason(await until(v6, true)), 'echo reply');
    // no answer; or, once the kernel has given up resolving the neighbour, its own host-unreachable error
    assert.match(reason(await until(nobody, false)), /^(timeout after 500 ms|destination unreachable \(code 1\))$/);
  });
});

describe('several checkers on one real server', () => {
  test('down when any fails, up when all pass again', async () => {
    await lab.servers.call({ op: 'tcp', port: 86 });
    const r = await real([
      { kind: 'TCP_CHECK', config: { connect_port: 86 } },
      { kind: 'HTTP_GET', config: { url: [{ path: '/ok' }] } },
      { kind: 'PING_CHECK', config: {} },
    ]);
    await until(r, true);
    await lab.servers.call({ op: 'close', port: 86 });
    const down = await until(r, false);
    assert.equal(down.checkers[0]?.reason, 'connect: ECONNREFUSED');
    assert.deepEqual(down.checkers.slice(1).map((c) => c.reason), ['/ok OK', 'echo reply']);
    await lab.servers.call({ op: 'tcp', port: 86 });
    await until(r, true);
  });
});
