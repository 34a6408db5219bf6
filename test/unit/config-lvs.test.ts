/**
 * The virtual_server half of keepalived.conf (src/config/lvs.ts) through loadConfig: the fixtures
 * in test/fixtures/config/lvs-*.conf parsed into the service model (asserted whole), the broken
 * ones with every message and position, keepalived 2.2.7's post-read defaults, the checkers'
 * value checks (src/health/config.ts) and the model's (src/model/validate.ts) positioned, and a
 * check that every keyword keepalived 2.2.7 accepts in these blocks has a table entry (and none
 * that it does not). Every good fixture was read by `keepalived --config-test` 2.2.7 on this
 * machine without a message (lvs-dr-http: its deprecation note only); the keyword lists below
 * were run through it too (no "Unknown keyword").
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { formatDiagnostic } from '../../src/config/diagnostics.ts';
import { memoryFs } from '../../src/config/fs.ts';
import { loadConfig } from '../../src/config/index.ts';
import { groupRanges, LVS_TABLES, lvsKeywords } from '../../src/config/lvs.ts';
import { lookup } from '../../src/config/schema.ts';
import { XDP_CAPABILITIES } from '../../src/datapath/driver.ts';
import { resolveServices } from '../../src/model/validate.ts';

const FIXTURES = new URL('../fixtures/config/', import.meta.url);
const DIR = '/etc/keepalived';

/** loadConfig over a fixture (or a text) in memory, as /etc/keepalived/NAME. */
function load(name: string, text = readFileSync(new URL(name, FIXTURES), 'utf8')) {
  const r = loadConfig(name, { fs: memoryFs({ [name]: text }, DIR), configId: 'lb1' });
  return {
    ...r,
    services: r.config?.services,
    messages: r.problems.map(formatDiagnostic),
    /** the messages without the scheduler approximation notes, which every service gets */
    notes: r.problems.filter((p) => !/is approximated by the XDP datapath/.test(p.message)).map((p) => `${formatDiagnostic(p)} [${p.class}]`),
  };
}

/** A config text of one virtual_server around `body`. */
const vs = (body: string, head = '198.18.0.100 80') => `virtual_server ${head} {\n${body}\n}\n`;

/** The model without positions (pos, at), for whole-object comparisons. */
function bare(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(bare);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([k]) => k !== 'pos' && k !== 'at').map(([k, x]) => [k, bare(x)]));
  return v;
}

const at = (file: string, line: number, col: number) => ({ file, line, col });

describe('realistic configurations', () => {
  test('loadConfig gives the services resolved for the driver, as resolveServices resolves its model (once, for the daemon)', () => {
    const name = 'lvs-nat-tcp.conf';
    const r = loadConfig(name, { fs: memoryFs({ [name]: readFileSync(new URL(name, FIXTURES), 'utf8') }, DIR), configId: 'lb1' });
    assert.ok(r.config && r.services);
    const again = resolveServices(r.config.services, XDP_CAPABILITIES);
    assert.deepEqual(r.services, again.services);
    assert.ok(r.services.length > 0);
  });

  test('a DR web farm with HTTP_GET: every value, defaults left absent, nb_get_retry read as retry (deprecated, as keepalived)', () => {
    const r = load('lvs-dr-http.conf');
    assert.equal(r.exitCode, 5, 'keepalived 2.2.7 exits 5 on the nb_get_retry deprecation too');
    assert.deepEqual(r.notes, [`lvs-dr-http.conf:39:13: warning: nb_get_retry is deprecated - please use 'retry' [deprecated]`]);
    assert.deepEqual(bare(r.services), {
      global_defs: {},
      virtual_server_group: [],
      virtual_server: [{
        service: { kind: 'ip', address: '198.18.0.100', port: 80 },
        delay_loop: 6, lb_algo: 'wrr', lb_kind: 'DR', protocol: 'TCP', virtualhost: 'www.example.test',
        real_server: [
          {
            address: '198.18.0.11', port: 80, weight: 3,
            checkers: [{ kind: 'HTTP_GET', config: {
              url: [{ path: '/healthz', status_code: [[200, 200]] }, { path: '/index.html', digest: '9b3a0c85a887a256d6939da88aabd8cd' }],
              connect_timeout: 3, retry: 3, delay_before_retry: 2,
            } }],
          },
          {
            address: '198.18.0.12', port: 80, weight: 3,
            checkers: [{ kind: 'HTTP_GET', config: { url: [{ path: '/healthz', status_code: [[200, 299], [301, 301]] }], connect_timeout: 3, retry: 3 } }],
          },
          {
            address: '198.18.0.13', port: 80, weight: 1, inhibit_on_failure: true,
            checkers: [{ kind: 'HTTP_GET', config: { url: [{ path: '/healthz', virtualhost: 'canary.example.test' }], connect_port: 8080, http_protocol: '1.1' } }],
          },
          { address: '198.18.0.14', port: 80, weight: 0, checkers: [{ kind: 'HTTP_GET', config: { url: [{ path: '/healthz' }] } }] },
        ],
      }],
    });
    const v = r.services!.virtual_server[0]!;
    const f = 'lvs-dr-http.conf';
    assert.deepEqual(v.pos, at(f, 8, 1));
    assert.deepEqual(v.at, { delay_loop: at(f, 9, 5), lb_algo: at(f, 10, 5), lb_kind: at(f, 11, 5), protocol: at(f, 12, 5), virtualhost: at(f, 13, 5) });
    assert.deepEqual(v.real_server[2]!.pos, at(f, 42, 5));
    assert.deepEqual(v.real_server[2]!.at, { weight: at(f, 43, 9), inhibit_on_failure: at(f, 44, 9) });
    assert.deepEqual(v.real_server[2]!.checkers[0]!.pos, at(f, 45, 9));
  });

  test('a NAT pool with sorry server, quorum, scripts and alpha/omega; a UDP service with one-packet scheduling', () => {
    const r = load('lvs-nat-tcp.conf');
    assert.equal(r.exitCode, 0);
    assert.deepEqual(r.notes, []);
    assert.deepEqual(bare(r.services), {
      global_defs: { script_user: 'nobody', enable_script_security: true },
      virtual_server_group: [],
      virtual_server: [
        {
          service: { kind: 'ip', address: '198.18.0.100', port: 5432 },
          delay_loop: 10, lb_algo: 'wlc', lb_kind: 'NAT', protocol: 'TCP', quorum: 2, hysteresis: 1,
          quorum_up: { command: '/usr/local/bin/pool-event up pg', user: 'nobody' },
          quorum_down: { command: '/usr/local/bin/pool-event down pg' },
          alpha: true, omega: true, inhibit_on_failure: true,
          sorry_server: { address: '198.18.0.19', port: 5432, inhibit: true },
          connect_timeout: 2, retry: 2, warmup: 5,
          real_server: [
            {
              address: '198.18.0.11', port: 5432, weight: 1,
              notify_up: { command: '/usr/local/bin/rs-event up 198.18.0.11' },
              notify_down: { command: '/usr/local/bin/rs-event down 198.18.0.11', user: 'nobody', group: 'nogroup' },
              checkers: [{ kind: 'TCP_CHECK', config: { connect_timeout: 3 } }],
            },
            { address: '198.18.0.12', port: 5432, weight: 1, checkers: [{ kind: 'TCP_CHECK', config: { connect_port: 5433, bindto: '198.18.0.2' } }] },
            { address: '198.18.0.13', port: 6432, weight: 2, alpha: false, inhibit_on_failure: false, checkers: [{ kind: 'TCP_CHECK', config: {} }] },
          ],
        },
        {
          service: { kind: 'ip', address: '198.18.0.101', port: 53 },
          lb_algo: 'rr', lb_kind: 'NAT', protocol: 'UDP', ops: true,
          real_server: [
            { address: '198.18.0.11', port: 53, checkers: [{ kind: 'DNS_CHECK', config: { type: 'A', name: 'ns.example.test' } }] },
            { address: '198.18.0.12', port: 53, checkers: [{ kind: 'DNS_CHECK', config: { retry: 2 } }] },
          ],
        },
      ],
    });
    const sorry = r.services!.virtual_server[0]!.sorry_server!;
    assert.deepEqual(sorry.pos, at('lvs-nat-tcp.conf', 22, 5));
    assert.deepEqual(sorry.at, { inhibit: at('lvs-nat-tcp.conf', 23, 5) });
  });

  test('TUN reals (one of the other family) with MISC_CHECK, sh with its flags', () => {
    const r = load('lvs-tun-misc.conf');
    assert.equal(r.exitCode, 0);
    assert.deepEqual(r.notes, ['lvs-tun-misc.conf:13:5: warning: sh-fallback: inherent in the XDP datapath (a real that is down or has weight 0 has no Maglev slots) [ignored]']);
    const v = r.services!.virtual_server[0]!;
    assert.deepEqual(bare(v), {
      service: { kind: 'ip', address: '198.18.0.100', port: 443 },
      delay_loop: 15, lb_algo: 'sh', sched_flags: ['sh-port', 'sh-fallback'], lb_kind: 'TUN', protocol: 'TCP',
      real_server: [
        {
          address: '198.18.2.11', port: 443, weight: 10,
          checkers: [{ kind: 'MISC_CHECK', config: { misc_path: '/usr/local/bin/check-backend 198.18.2.11 443', misc_timeout: 5, misc_dynamic: true, user: 'nobody' } }],
        },
        {
          address: '198.18.2.12', port: 443, weight: 10, lb_kind: 'TUN',
          checkers: [{ kind: 'MISC_CHECK', config: { misc_path: '/usr/local/bin/check-backend', warmup: 2, retry: 1, delay_before_retry: 3 } }],
        },
        { address: 'fd00:2::11', port: 443, weight: 5, checkers: [{ kind: 'MISC_CHECK', config: { misc_path: '/usr/local/bin/check-backend fd00:2::11' } }] },
      ],
    });
  });

  test('groups: single addresses, last-octet, whole-address and prefix ranges (split per last octet); fwmarks refused by the XDP model at their lines', () => {
    const r = load('lvs-groups.conf');
    const f = 'lvs-groups.conf';
    assert.deepEqual(bare(r.services!.virtual_server_group), [
      { name: 'WEB', entries: [
        { kind: 'ip', address: '198.18.0.100', port: 80 },
        { kind: 'ip', address: '198.18.0.110', range_end: 113, port: 80 },
        { kind: 'ip', address: '198.18.0.254', range_end: 255, port: 80 },
        { kind: 'ip', address: '198.18.1.0', range_end: 1, port: 80 },
        { kind: 'ip', address: '198.18.3.8', range_end: 11, port: 80 },
      ] },
      { name: 'MARKED', entries: [{ kind: 'fwmark', fwmark: 10 }, { kind: 'fwmark', fwmark: 11 }] },
      { name: 'WEB6', entries: [{ kind: 'ip', address: 'fd00::100', port: 80 }, { kind: 'ip', address: 'fd00::1a0', range_end: 0x1a3, port: 80 }] },
    ]);
    assert.deepEqual(r.services!.virtual_server_group[0]!.entries[2]!.pos, at(f, 9, 5));
    assert.deepEqual(r.services!.virtual_server.map((v) => v.service), [
      { kind: 'group', group: 'WEB' }, { kind: 'group', group: 'WEB6' }, { kind: 'group', group: 'MARKED' }, { kind: 'fwmark', fwmark: 20 },
    ]);
    assert.equal(r.services!.virtual_server[2]!.protocol, undefined, 'a group of fwmarks only needs no protocol (keepalived says nothing)');
    const refusal = 'the XDP datapath cannot see firewall marks (XDP runs before netfilter marks packets); give the service by address and port (virtual_server ADDRESS PORT, or a virtual_server_group of addresses)';
    assert.deepEqual(r.notes, [
      `${f}:14:5: error: virtual_server_group MARKED: fwmark 10: ${refusal} [unsupported]`,
      `${f}:15:5: error: virtual_server_group MARKED: fwmark 11: ${refusal} [unsupported]`,
      `${f}:60:1: error: virtual_server fwmark 20: ${refusal} [unsupported]`,
    ]);
    assert.equal(r.exitCode, 4, 'keepalived runs it: xlb cannot (class unsupported)');
  });

  test('IPv6: persistence by prefix length, UDP with ops and UDP_CHECK, TUN with SSL_GET and SNI', () => {
    const r = load('lvs-ipv6.conf');
    assert.equal(r.exitCode, 0);
    assert.deepEqual(r.notes, []);
    assert.deepEqual(bare(r.services!.virtual_server), [
      {
        service: { kind: 'ip', address: 'fd00::100', port: 80 },
        delay_loop: 3, lb_algo: 'wlc', lb_kind: 'DR', protocol: 'TCP', persistence_timeout: 300, persistence_granularity: '64',
        real_server: [
          { address: 'fd00::11', port: 80, weight: 2, checkers: [{ kind: 'HTTP_GET', config: { url: [{ path: '/', status_code: [[200, 200]] }] } }] },
          { address: 'fd00::12', port: 80, weight: 2, checkers: [{ kind: 'PING_CHECK', config: { delay_loop: 1 } }] },
        ],
      },
      {
        service: { kind: 'ip', address: 'fd00::101', port: 514 }, lb_algo: 'rr', lb_kind: 'DR', protocol: 'UDP', ops: true,
        real_server: [{ address: 'fd00::11', port: 514, checkers: [{ kind: 'UDP_CHECK', config: { payload: '3c31333e74657374' } }] }],
      },
      {
        service: { kind: 'ip', address: 'fd00::102', port: 443 }, lb_algo: 'sh', lb_kind: 'TUN', protocol: 'TCP',
        real_server: [{ address: 'fd00:2::11', port: 443, checkers: [{ kind: 'SSL_GET', config: { url: [{ path: '/' }], enable_sni: true, virtualhost: 'api.example.test' } }] }],
      },
    ]);
  });

  test('persistence: timeout and netmask, `persistence_timeout` alone (360 s), an all-ports service, granularity alone', () => {
    const r = load('lvs-persistence.conf');
    assert.equal(r.exitCode, 0);
    assert.deepEqual(r.notes, []);
    const v = r.services!.virtual_server;
    assert.deepEqual(v.map((s) => [s.persistence_timeout, s.persistence_granularity, s.lb_algo]), [
      [1800, '255.255.255.0', 'rr'], [360, undefined, 'wlc'], [undefined, '255.255.0.0', 'fo'],
    ]);
    assert.deepEqual(bare(v[1]!.real_server), [{ address: '198.18.0.11', port: 0, checkers: [{ kind: 'TCP_CHECK', config: { connect_port: 22 } }] }]);
    assert.deepEqual(v.map((s) => s.real_server.map((rs) => rs.weight)), [[undefined, undefined], [undefined], [100, 50]]);
  });

  test('every checker kind with the options operators use; FILE_CHECK takes its file (and weight) from the track_file block', () => {
    const r = load('lvs-checkers.conf');
    const rs = r.services!.virtual_server[0]!.real_server;
    assert.deepEqual(bare(rs[0]!.checkers), [
      { kind: 'SMTP_CHECK', config: { helo_name: 'lb1.example.test', connect_timeout: 6 } },
      { kind: 'SMTP_CHECK', config: { host: [{ connect_ip: '198.18.0.11', connect_port: 587 }, { connect_ip: '198.18.0.21', bindto: '198.18.0.2' }] } },
      { kind: 'FILE_CHECK', config: { track_file: 'maintenance', file: '/run/keepalived/maintenance', weight: -10, reverse: false } },
      { kind: 'FILE_CHECK', config: { track_file: 'maintenance', file: '/run/keepalived/maintenance', weight: 2, reverse: true } },
    ]);
    assert.deepEqual(bare(rs[1]!.checkers), [
      { kind: 'SSL_GET', config: {
        url: [
          { path: '/status', status_code: [[200, 204], [418, 418]], regex: '^OK [0-9]+', regex_options: ['caseless', 'multiline'], regex_min_offset: 0, regex_max_offset: 512 },
          { path: '/ready', regex: 'not ready', regex_no_match: true },
        ],
        connect_port: 8443, enable_sni: true, fast_recovery: true, alpha: true, log_all_failures: true,
      } },
      { kind: 'UDP_CHECK', config: { connect_port: 5353, payload: '00 01 02 03', require_reply: '0x01 xx', min_reply_length: 2, max_reply_length: 512 } },
      { kind: 'PING_CHECK', config: { retry: 3 } },
      { kind: 'DNS_CHECK', config: { connect_port: 53, type: 'AAAA', name: 'www.example.test' } },
      { kind: 'TCP_CHECK', config: { connect_port: 25, bind_port: 20025, bind_if: 'eth0', fwmark: 7, warmup: 0 } },
    ]);
    assert.deepEqual(r.notes, []);
    assert.equal(r.exitCode, 0);
  });
});

describe('broken configurations', () => {
  test('values keepalived refuses: each an error at the value, with the range or the choices; the setting keeps its default', () => {
    const r = load('lvs-broken-values.conf');
    const f = 'lvs-broken-values.conf';
    assert.deepEqual(r.notes, [
      `${f}:9:13: error: lb_algo: 'leastconn' is not one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh [general_error]`,
      `${f}:10:13: error: lb_kind: 'dr' is not one of NAT, DR, TUN [general_error]`,
      `${f}:11:14: error: protocol: 'ICMP' is not one of TCP, UDP, SCTP [general_error]`,
      `${f}:12:12: error: quorum 0: value out of range: 1..4294967295 [invalid_number]`,
      `${f}:13:16: error: hysteresis: '-1' is not a whole number [invalid_number]`,
      `${f}:14:25: error: persistence_timeout 9999999: value out of range: 1..2678400 [invalid_number]`,
      `${f}:15:16: error: delay_loop 0: value out of range: 0.000001..18446744073709.55 [invalid_number]`,
      `${f}:16:11: error: retry 0: value out of range: 1..4294967295 [invalid_number]`,
      `${f}:17:21: error: connect_timeout 5000: value out of range: 0.000001..4294.967295 [invalid_number]`,
      `${f}:20:16: error: weight: '-1' is not a whole number [invalid_number]`,
      `${f}:21:15: error: alpha: 'maybe' is not a boolean (yes/no, on/off, true/false) [general_error]`,
      `${f}:22:20: error: uthreshold: 'lots' is not a whole number [invalid_number]`,
      `${f}:26:33: error: status_code: '600' is not a status code or range (N or N-M) within 100..599 [general_error]`,
      `${f}:27:24: error: digest: '12345' is not an MD5 digest (32 hex digits) [general_error]`,
      `${f}:29:27: error: http_protocol: '2.0' is not one of 1.0, 1.0C, 1.0c, 1.1 [general_error]`,
      `${f}:30:26: error: connect_port 70000: value out of range: 1..65535 [invalid_number]`,
      `${f}:31:21: error: bind_if: 'an-interface-name-too-long' is longer than 15 characters [general_error]`,
      `${f}:34:18: error: type: 'BOGUS' is not one of A NS CNAME SOA MX TXT AAAA RRSIG DNSKEY [general_error]`,
      `${f}:37:21: error: payload: '0g': 'g' at offset 1 is not a hex digit [general_error]`,
      `${f}:38:30: error: max_reply_length 70000: value out of range: 0..65535 [invalid_number]`,
      `${f}:8:1: warning: virtual_server: no protocol set - defaulting to UDP (keepalived 2.2.7 does so; write protocol TCP for TCP) [general_error]`,
      `${f}:8:1: warning: virtual_server: no lb_algo set, using keepalived's default wlc [general_error]`,
      `${f}:8:1: warning: virtual_server: no lb_kind set, using keepalived's default NAT [general_error]`,
    ]);
    assert.equal(r.exitCode, 5, "keepalived --config-test's code for these");
    const v = r.services!.virtual_server[0]!;
    assert.deepEqual(bare(v.real_server[0]), {
      address: '198.18.0.11', port: 80,
      checkers: [
        { kind: 'HTTP_GET', config: { url: [{ path: '/' }] } },
        { kind: 'DNS_CHECK', config: {} },
        { kind: 'UDP_CHECK', config: {} },
      ],
    });
    assert.deepEqual(Object.keys(bare(v) as object).sort(), ['protocol', 'real_server', 'service']);
  });

  test('what xlb does not do, by name at its place (errors or warnings), and words keepalived does not know', () => {
    const r = load('lvs-broken-unsupported.conf');
    const f = 'lvs-broken-unsupported.conf';
    assert.deepEqual(r.notes, [
      `${f}:15:15: error: lb_algo twos: not implemented by xlb (power-of-two choices needs active connection counts) [unsupported]`,
      `${f}:16:25: error: lvs_method TUN type gue: not implemented by xlb (its tunnels are IP-in-IP: type ipip) [unsupported]`,
      `${f}:18:5: warning: snmp_name: not implemented by xlb, ignored (xlb has no SNMP agent) [ignored]`,
      `${f}:19:5: warning: weight: not implemented by xlb, ignored (a virtual server's own weight is not used by xlb) [ignored]`,
      `${f}:20:5: error: Unknown keyword 'bogus_option' [unknown_keyword]`,
      `${f}:22:9: warning: snmp_name: not implemented by xlb, ignored (xlb has no SNMP agent) [ignored]`,
      `${f}:23:9: error: BFD_CHECK: not implemented by xlb (BFD is not implemented: check the real server with another checker) [unsupported]`,
      `${f}:28:13: error: Unknown keyword 'dynamic' [unknown_keyword]`,
      `${f}:31:13: error: Unknown keyword 'nb_get_retry' [unknown_keyword]`,
      `${f}:14:1: warning: virtual_server: no lb_algo set, using keepalived's default wlc [general_error]`,
      `${f}:14:1: warning: virtual_server: no lb_kind set, using keepalived's default NAT [general_error]`,
      `${f}:27:13: error: FILE_CHECK: track_file nowhere not found (no track_file block of that name) - checker left out [general_error]`,
      `${f}:8:1: error: SSL (ca, certificate, key): not implemented by xlb (its SSL_GET presents no client certificate and verifies no server certificate): 1 SSL_GET checker would not check as configured [unsupported]`,
    ]);
    assert.equal(r.exitCode, 5);
    assert.deepEqual(bare(r.services!.virtual_server[0]!.real_server[0]!.checkers), [{ kind: 'TCP_CHECK', config: {} }, { kind: 'SSL_GET', config: { url: [{ path: '/health' }] } }]);
  });

  test('an SSL block no SSL_GET uses is a warning', () => {
    const r = load('k.conf', `SSL {\n  ca /etc/keepalived/ca.pem\n}\n${vs('protocol TCP\nlb_algo rr\nlb_kind DR\nreal_server 198.18.0.11 80 {\n  HTTP_GET {\n    url {\n      path /\n    }\n  }\n}')}`);
    assert.deepEqual(r.notes, [
      'k.conf:1:1: warning: SSL (ca): not implemented by xlb (its SSL_GET presents no client certificate and verifies no server certificate): ignored, no SSL_GET checker uses it [ignored]',
    ]);
    assert.equal(r.exitCode, 0);
  });

  test("the model's checks (validate.ts) at their lines: limits of the XDP datapath are class unsupported, mistakes general_error", () => {
    const r = load('lvs-broken-model.conf');
    const f = 'lvs-broken-model.conf';
    assert.deepEqual(r.notes, [
      `${f}:12:5: error: ops (one-packet scheduling) is for UDP services only [general_error]`,
      `${f}:13:5: error: persistence_granularity 255.0.255.0 is not a contiguous netmask [general_error]`,
      `${f}:16:5: error: real_server [198.18.0.11]:tcp:8080: [198.18.0.100]:tcp:80 already has a real server at 198.18.0.11 (${f}:14:5); the XDP datapath holds one per address [unsupported]`,
      `${f}:24:5: error: real_server fd00::11: a NAT real server must have the virtual server's address family (IPv4) [general_error]`,
      `${f}:20:1: error: [198.18.0.100]:tcp:80 is already a service ([198.18.0.100]:tcp:80 at ${f}:8:1) [general_error]`,
      `${f}:31:5: error: protocol SCTP: the XDP datapath balances TCP and UDP only [unsupported]`,
      `${f}:32:5: error: persistence_engine sip: not realised by the XDP datapath [unsupported]`,
      `${f}:34:9: error: real_server 198.18.0.12: weight 70000 is not in 0..65535 [unsupported]`,
      `${f}:38:1: error: virtual_server group NOSUCH: no virtual_server_group of that name [general_error]`,
      `${f}:16:5: warning: real_server 198.18.0.11 port 8080: ignored, DR cannot change the port (the real receives the service's port) [ignored]`,
      `${f}:42:5: warning: real_server 198.18.0.12 port 80: ignored, DR cannot change the port (the real receives the service's port) [ignored]`,
    ]);
    assert.equal(r.exitCode, 5);
    assert.ok(r.messages.includes(`${f}:9:5: warning: lb_algo rr is approximated by the XDP datapath: new connections are spread by a hash of the flow over a Maglev table with equal weights: the same shares as round robin over many connections, but no strict rotation`));
  });

  test('a keyword missing its parameter: keepalived aborts (exit 2) and there is no config', () => {
    const r = load('k.conf', vs('protocol TCP\nlb_algo rr\nlb_kind DR\nreal_server 198.18.0.11 80 {\n  weight\n}'));
    assert.deepEqual(r.messages, ['k.conf:6:3: error: Configuration line starting `weight` is missing a parameter after keyword `weight` at word position 2']);
    assert.equal(r.exitCode, 2);
    assert.equal(r.config, undefined);
  });
});

describe("keepalived 2.2.7's post-read defaults and order rules", () => {
  test('no protocol: UDP (keepalived\'s default); port 0 without persistence: 360 s; a fwmark service\'s protocol ignored', () => {
    const r = load('k.conf', [
      vs('lb_algo rr\nlb_kind DR\nreal_server 198.18.0.11 80 {\n}'),
      vs('lb_algo rr\nlb_kind DR\nprotocol TCP\nreal_server 198.18.0.11 0 {\n}', '198.18.0.101 0'),
      vs('lb_algo rr\nlb_kind DR\nprotocol TCP\nreal_server 198.18.0.11 0 {\n}', 'fwmark 5'),
    ].join(''));
    assert.deepEqual(r.notes.filter((m) => !m.includes('firewall marks')), [
      'k.conf:1:1: warning: virtual_server: no protocol set - defaulting to UDP (keepalived 2.2.7 does so; write protocol TCP for TCP) [general_error]',
      'k.conf:7:1: warning: virtual_server: port 0 is only valid for persistent services - persistence_timeout 360 set (as keepalived) [general_error]',
      'k.conf:17:1: warning: virtual_server fwmark 5: protocol TCP is ignored for a fwmark service (as keepalived) [warning]',
    ]);
    const v = r.services!.virtual_server;
    assert.deepEqual([v[0]!.protocol, v[1]!.persistence_timeout], ['UDP', 360]);
  });

  test('a quorum above the total weight is reduced, a hysteresis not below it lowered, a virtual server without reals left out', () => {
    const dr = 'protocol TCP\nlb_algo rr\nlb_kind DR\n';
    const r = load('k.conf', [
      vs(`${dr}quorum 5\nhysteresis 5\nreal_server 198.18.0.11 80 {\n  weight 2\n}`),
      vs(`${dr}hysteresis 1\nreal_server 198.18.0.11 80 {\n  weight 0\n}`, '198.18.0.101 80'),
      vs(dr, '198.18.0.102 80'),
    ].join(''));
    assert.deepEqual(r.notes, [
      'k.conf:5:1: warning: quorum 5 exceeds the total weight of the real servers (2) - reduced to 2 (as keepalived) [general_error]',
      'k.conf:6:1: warning: hysteresis 5 is not below the quorum 2 - set to 1 (as keepalived) [general_error]',
      'k.conf:11:1: warning: quorum 1 exceeds the total weight of the real servers (0): the pool never has quorum (keepalived would make the quorum 0) [general_error]',
      'k.conf:15:1: warning: hysteresis 1 is not below the quorum 1 - set to 0 (as keepalived) [general_error]',
      'k.conf:20:1: warning: virtual_server: no real servers - ignored (as keepalived) [general_error]',
    ]);
    assert.deepEqual(r.services!.virtual_server.map((v) => [v.quorum, v.hysteresis]), [[2, 1], [undefined, 0]]);
    assert.equal(r.exitCode, 5, 'keepalived --config-test: 5');
  });

  test("a virtual server's alpha, omega, ha_suspend and inhibit_on_failure take no value: a word after them is ignored, as keepalived does", () => {
    const r = load('k.conf', vs('protocol TCP\nlb_algo rr\nlb_kind DR\ninhibit_on_failure false\nalpha no\nreal_server 198.18.0.11 80 {\n  inhibit_on_failure false\n}'));
    const v = r.services!.virtual_server[0]!;
    assert.deepEqual([v.inhibit_on_failure, v.alpha, v.real_server[0]!.inhibit_on_failure], [true, true, false]);
    assert.deepEqual(r.notes, [
      "k.conf:5:20: warning: inhibit_on_failure: takes no value; 'false' ignored [ok]",
      "k.conf:6:7: warning: alpha: takes no value; 'no' ignored [ok]",
    ]);
    assert.equal(r.exitCode, 0);
  });

  test('sh-/mh- flags count only after lb_algo sh/mh (keepalived reads them in order); hashed sets nothing', () => {
    const r = load('k.conf', vs('protocol TCP\nlb_kind DR\nsh-port\nlb_algo sh\nsh-fallback\nflag-3\nmh-port\nhashed\nreal_server 198.18.0.11 80 {\n}'));
    assert.deepEqual(r.services!.virtual_server[0]!.sched_flags, ['sh-fallback', 'flag-3']);
    assert.deepEqual(r.services!.virtual_server[0]!.at!.sched_flags, at('k.conf', 6, 1));
    assert.deepEqual(r.notes.filter((m) => m.includes('only applies')), [
      'k.conf:4:1: error: sh-port only applies to lb_algo sh given before it - ignored (as keepalived) [general_error]',
      'k.conf:8:1: error: mh-port only applies to lb_algo mh given before it - ignored (as keepalived) [general_error]',
    ]);
  });

  test('sorry_server_* before sorry_server, a second notify script, lvs_method options, aliases', () => {
    const r = load('k.conf', vs([
      'protocol TCP', 'lvs_sched wrr', 'lvs_method DR',
      'sorry_server_inhibit', 'sorry_server_lvs_method NAT',
      'sorry_server 198.18.0.19', 'sorry_server_lvs_method TUN type ipip nocsum',
      'real_server 198.18.0.11 80 {',
      '  notify_up /bin/up.sh', '  notify_up /bin/other.sh', '  lvs_method DR csum',
      '  lvs_method TUN remcsum', '}',
    ].join('\n')));
    const v = r.services!.virtual_server[0]!;
    assert.deepEqual([v.lb_algo, v.lb_kind, v.at?.lb_algo, v.at?.lb_kind], ['wrr', 'DR', at('k.conf', 3, 1), at('k.conf', 4, 1)]);
    assert.deepEqual(bare(v.sorry_server), { address: '198.18.0.19', port: 0, lb_kind: 'TUN' });
    assert.deepEqual(v.real_server[0]!.notify_up, { command: '/bin/up.sh' });
    assert.equal(v.real_server[0]!.lb_kind, undefined);
    assert.deepEqual(r.notes, [
      'k.conf:5:1: error: sorry_server_inhibit: no sorry_server before it - ignored [general_error]',
      'k.conf:6:1: error: sorry_server_lvs_method: no sorry_server before it - ignored [general_error]',
      "k.conf:11:3: error: notify_up: a script is already given (k.conf:10:3): '/bin/other.sh' ignored (as keepalived) [general_error]",
      "k.conf:12:17: error: lvs_method DR: 'csum' applies to TUN only [general_error]",
      'k.conf:13:18: error: lvs_method TUN remcsum: not implemented by xlb (for GUE/GRE tunnels; xlb\'s are IP-in-IP) [unsupported]',
    ]);
  });

  test('group lines: bad addresses and ranges, ports, fwmark families; an empty group is removed', () => {
    const r = load('k.conf', [
      'virtual_server_group G {',
      '  198.18.0.40-30 80', '  bogus 80', '  198.18.0.70 99999', '  198.18.0.0/8 80', '  198.18.0.60 80 extra',
      '  fwmark 7 inet6', '  fwmark 8 inet5', '}',
      'virtual_server_group EMPTY {', '}',
      'virtual_server_group G {', '  198.18.0.1', '}',
    ].join('\n'));
    assert.deepEqual(bare(r.services!.virtual_server_group), [{ name: 'G', entries: [
      { kind: 'ip', address: '198.18.0.60', port: 80 }, { kind: 'fwmark', fwmark: 7 }, { kind: 'fwmark', fwmark: 8 },
    ] }]);
    assert.deepEqual(r.notes, [
      "k.conf:2:3: error: virtual_server_group G: '198.18.0.40-30': the range end must be in 41..255 - skipped [general_error]",
      "k.conf:3:3: error: virtual_server_group G: 'bogus' is not an IP address - skipped [general_error]",
      'k.conf:4:15: error: virtual_server_group 99999: value out of range: 1..65535 [invalid_number]',
      "k.conf:5:3: error: virtual_server_group G: '198.18.0.0/8': 198.18.0.0 is not the first address of a /8 - skipped [general_error]",
      "k.conf:6:18: warning: virtual_server_group G: 'extra' after the port ignored [ok]",
      "k.conf:8:12: error: virtual_server_group: 'inet5' is not one of inet, inet6 [general_error]",
      'k.conf:10:1: error: virtual_server_group EMPTY has no entries - removed (as keepalived) [general_error]',
      'k.conf:12:1: error: virtual_server_group G is already defined (k.conf:1:1) - this one ignored [general_error]',
    ]);
  });
});

describe("checkers: the health module's value rules, positioned", () => {
  test("resolveChecker's errors point at the keyword they name, else at the checker", () => {
    const r = load('k.conf', vs([
      'protocol TCP', 'lb_algo rr', 'lb_kind DR',
      'real_server 198.18.0.11 0 {',
      '  TCP_CHECK {', '  }',
      '  HTTP_GET {', '    connect_port 80', '    url {', '      path /', '      regex_options ungreedy', '      regex x', '    }', '  }',
      '  HTTP_GET {', '  }',
      '  SMTP_CHECK {', '    host {', '      connect_ip fe80::1', '      connect_port 25', '    }', '  }',
      '  UDP_CHECK {', '    connect_port 53', '    min_reply_length 9', '    max_reply_length 3', '    bind_if eth0', '  }',
      '  MISC_CHECK {', '    misc_timeout 3', '  }',
      '  url {', '  }',
      '}',
    ].join('\n'), '198.18.0.100 0'));
    assert.deepEqual(r.notes.filter((m) => !m.includes('persistent')), [
      'k.conf:30:3: error: MISC_CHECK: no misc_path (the checker is left out, as keepalived does) [general_error]',
      "k.conf:33:3: error: Unknown keyword 'url' [unknown_keyword]",
      'k.conf:6:3: error: TCP_CHECK: connect_port: the real server has no port (an all-ports or fwmark service): set connect_port [general_error]',
      "k.conf:12:7: error: HTTP_GET: regex_options: 'ungreedy' is not supported by xlb (JavaScript regular expressions): use caseless multiline dotall utf ucp no_auto_capture no_auto_possess no_dotstar_anchor no_start_optimize never_backslash_c never_ucp never_utf dupnames auto_callout use_offset_limit [general_error]",
      'k.conf:16:3: error: HTTP_GET: url: HTTP_GET needs at least one url [general_error]',
      'k.conf:18:3: error: SMTP_CHECK: bind_if: the link-local address fe80::1 needs bind_if [general_error]',
      'k.conf:28:5: error: UDP_CHECK: bind_if: is not supported by xlb on UDP_CHECK (node UDP sockets cannot bind to a device or set a mark) [general_error]',
    ]);
    assert.deepEqual(r.services!.virtual_server[0]!.real_server[0]!.checkers.map((c) => c.kind), ['TCP_CHECK', 'HTTP_GET', 'HTTP_GET', 'SMTP_CHECK', 'UDP_CHECK']);
  });

  test('url without path, nb_get_retry outside HTTP_GET/SSL_GET, http_protocol 1.0c, regex_stack, require_reply alone, FILE_CHECK weight noreverse', () => {
    const r = load('k.conf', `track_file tf {\n  file /run/tf\n  weight 5 reverse\n}\n${vs([
      'protocol TCP', 'lb_algo rr', 'lb_kind DR',
      'real_server 198.18.0.11 80 {',
      '  SSL_GET {', '    url {', '      digest 9b3a0c85a887a256d6939da88aabd8cd', '    }', '    url {', '      path /a',
      '      regex a', '      regex_stack 64 32', '    }', '    http_protocol 1.0c', '  }',
      '  UDP_CHECK {', '    require_reply', '  }',
      '  FILE_CHECK {', '    track_file tf', '    weight 3 noreverse', '  }',
      '  DNS_CHECK {', '    nb_get_retry 1', '  }',
      '}',
    ].join('\n'))}`);
    const checkers = r.services!.virtual_server[0]!.real_server[0]!.checkers;
    assert.deepEqual(bare(checkers), [
      { kind: 'SSL_GET', config: { url: [{ path: '/a', regex: 'a' }], http_protocol: '1.0C' } },
      { kind: 'UDP_CHECK', config: { require_reply: true } },
      { kind: 'FILE_CHECK', config: { track_file: 'tf', file: '/run/tf', weight: 3, reverse: false } },
      { kind: 'DNS_CHECK', config: {} },
    ]);
    assert.deepEqual(r.notes, [
      'k.conf:11:5: error: url: no path (the url is left out, as keepalived does) [general_error]',
      'k.conf:17:19: error: regex_stack: the start 64 exceeds the maximum 32 [general_error]',
      "k.conf:29:5: error: Unknown keyword 'nb_get_retry' [unknown_keyword]",
    ]);
  });
});

describe('keyword coverage', () => {
  /** keepalived 2.2.7's keywords in each block (check_parser.c, check_api.c, check_*.c; each accepted by its --config-test here). */
  const COMMON_CONNECTION = ['connect_ip', 'connect_port', 'bindto', 'bind_port', 'bind_if', 'connect_timeout', 'fwmark'];
  const COMMON_TIMING = ['retry', 'delay_before_retry', 'warmup', 'delay_loop', 'alpha', 'log_all_failures'];
  const CHECKERS = ['MISC_CHECK', 'SMTP_CHECK', 'TCP_CHECK', 'PING_CHECK', 'UDP_CHECK', 'HTTP_GET', 'SSL_GET', 'DNS_CHECK', 'FILE_CHECK', 'BFD_CHECK'];
  const HTTP = [...COMMON_CONNECTION, ...COMMON_TIMING, 'nb_get_retry', 'virtualhost', 'http_protocol', 'enable_sni', 'fast_recovery', 'url'];
  const KEEPALIVED: Record<string, string[]> = {
    top: ['virtual_server_group', 'virtual_server', 'SSL'],
    virtual_server: [
      'ip_family', 'retry', 'delay_before_retry', 'warmup', 'connect_timeout', 'delay_loop', 'inhibit_on_failure', 'lb_algo', 'lvs_sched',
      'hashed', 'ops', 'flag-1', 'flag-2', 'flag-3', 'sh-port', 'sh-fallback', 'mh-port', 'mh-fallback', 'lb_kind', 'lvs_method',
      'persistence_engine', 'persistence_timeout', 'persistence_granularity', 'protocol', 'ha_suspend', 'smtp_alert', 'virtualhost',
      'snmp_name', 'alpha', 'omega', 'quorum_up', 'quorum_down', 'quorum', 'hysteresis', 'weight', 'sorry_server',
      'sorry_server_inhibit', 'sorry_server_lvs_method', 'real_server',
    ],
    real_server: [
      'weight', 'lvs_method', 'uthreshold', 'lthreshold', 'inhibit_on_failure', 'notify_up', 'notify_down', 'alpha', 'retry',
      'delay_before_retry', 'warmup', 'connect_timeout', 'delay_loop', 'smtp_alert', 'virtualhost', 'snmp_name', ...CHECKERS,
    ],
    TCP_CHECK: [...COMMON_CONNECTION, ...COMMON_TIMING],
    PING_CHECK: [...COMMON_CONNECTION, ...COMMON_TIMING],
    HTTP_GET: HTTP,
    SSL_GET: HTTP,
    url: ['path', 'digest', 'status_code', 'virtualhost', 'regex', 'regex_no_match', 'regex_options', 'regex_min_offset', 'regex_max_offset', 'regex_stack'],
    UDP_CHECK: [...COMMON_CONNECTION, ...COMMON_TIMING, 'payload', 'require_reply', 'min_reply_length', 'max_reply_length'],
    DNS_CHECK: [...COMMON_CONNECTION, ...COMMON_TIMING, 'type', 'name'],
    SMTP_CHECK: [...COMMON_CONNECTION, ...COMMON_TIMING, 'helo_name', 'host'],
    host: [...COMMON_CONNECTION, ...COMMON_TIMING],
    MISC_CHECK: [...COMMON_TIMING, 'misc_path', 'misc_timeout', 'misc_dynamic', 'user'],
    FILE_CHECK: ['track_file', 'weight'],
    SSL: ['password', 'ca', 'certificate', 'key'],
  };

  for (const [block, words] of Object.entries(KEEPALIVED)) {
    test(`${block}: every keyword keepalived 2.2.7 accepts is implemented or reported, and no other`, () => {
      const table = block === 'top' ? lvsKeywords : LVS_TABLES[block];
      assert.ok(table, `a table for ${block}`);
      const missing = words.filter((w) => lookup(table, w) === undefined);
      assert.deepEqual(missing, []);
      assert.deepEqual(Object.keys(table).filter((k) => !words.includes(k)), []);
    });
  }
});

describe('groupRanges', () => {
  test('the forms keepalived reads, split into ranges within one last octet / group', () => {
    assert.deepEqual(groupRanges('198.18.0.1'), [{ address: '198.18.0.1' }]);
    assert.deepEqual(groupRanges('198.18.0.110-113'), [{ address: '198.18.0.110', range_end: 113 }]);
    assert.deepEqual(groupRanges('198.18.0.254-198.18.1.1'), [{ address: '198.18.0.254', range_end: 255 }, { address: '198.18.1.0', range_end: 1 }]);
    assert.deepEqual(groupRanges('198.18.3.8/30'), [{ address: '198.18.3.8', range_end: 11 }]);
    assert.deepEqual(groupRanges('198.18.0.0/23'), [{ address: '198.18.0.0', range_end: 255 }, { address: '198.18.1.0', range_end: 255 }]);
    assert.deepEqual(groupRanges('fd00::1a0-1a3'), [{ address: 'fd00::1a0', range_end: 0x1a3 }]);
    assert.deepEqual(groupRanges('fd00::ffff-fd00::1:2'), [{ address: 'fd00::ffff' }, { address: 'fd00::1:0', range_end: 2 }]);
    assert.deepEqual(groupRanges('fd00::/120'), [{ address: 'fd00::', range_end: 255 }]);
  });

  test('what it refuses, and why', () => {
    assert.equal(groupRanges('198.18.0.5-5'), "'198.18.0.5-5': the range end must be in 6..255");
    assert.equal(groupRanges('198.18.0.5-300'), "'198.18.0.5-300': the range end must be in 6..255");
    assert.equal(groupRanges('fd00::10-f'), "'fd00::10-f': the range end must be in 11..ffff");
    assert.equal(groupRanges('198.18.0.9-198.18.0.2'), "'198.18.0.9-198.18.0.2': the range end is not above its start");
    assert.equal(groupRanges('198.18.0.1-fd00::1'), "'198.18.0.1-fd00::1': the two ends are of different families");
    assert.equal(groupRanges('198.18.0.1-1a'), "'198.18.0.1-1a': '1a' is neither an address nor the last octet of one");
    assert.equal(groupRanges('198.18.3.9/30'), "'198.18.3.9/30': 198.18.3.9 is not the first address of a /30");
    assert.equal(groupRanges('198.18.0.0/33'), "'198.18.0.0/33': the prefix length must be in 0..32");
    assert.equal(groupRanges('fd00::/64'), "'fd00::/64' stands for 18446744073709551616 addresses; xlb takes at most 65536 a line (each is a service in the datapath)");
    assert.equal(groupRanges('x-3'), "'x' is not an IP address");
  });
});

describe('mutated services configurations', () => {
  /** A seeded PRNG (LCG), so that a failure can be replayed. */
  function prng(seed: number): () => number {
    let s = seed >>> 0;
    return () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  }
  const names = ['lvs-dr-http.conf', 'lvs-nat-tcp.conf', 'lvs-tun-misc.conf', 'lvs-groups.conf', 'lvs-ipv6.conf', 'lvs-checkers.conf', 'lvs-persistence.conf', 'lvs-broken-values.conf', 'lvs-broken-unsupported.conf', 'lvs-broken-model.conf'];
  const corpus = names.map((n) => readFileSync(new URL(n, FIXTURES), 'utf8'));
  /** words that reach the services' corner cases when dropped in anywhere */
  const vocabulary = [
    '{', '}', '"', '0', '-1', '65536', '4294967296', '0.0000001', 'fwmark', 'group', 'inet6', '198.18.0.1-3', '198.18.0.0/30',
    'fd00::1-ff', 'fd00::1', 'real_server', 'sorry_server', 'url', 'host', 'TUN', 'type', 'gue', 'weight', 'track_file',
    'persistence_timeout', 'quorum', 'lb_algo', 'sh-port', 'HTTP_GET', 'FILE_CHECK', 'virtual_server', 'virtual_server_group', '\n',
  ];

  test('800 word-level mutations of the fixtures: never a throw; a model or an error; every problem inside the file', () => {
    const rnd = prng(20261206);
    for (let i = 0; i < 800; i++) {
      let text = corpus[Math.floor(rnd() * corpus.length)]!;
      for (let k = 1 + Math.floor(rnd() * 4); k > 0; k--) {
        const p = Math.floor(rnd() * text.length);
        const op = rnd();
        if (op < 0.3) text = text.slice(0, p) + text.slice(p + Math.floor(rnd() * 24));
        else if (op < 0.75) text = `${text.slice(0, p)} ${vocabulary[Math.floor(rnd() * vocabulary.length)]} ${text.slice(p)}`;
        else {
          const q = Math.floor(rnd() * text.length);
          text = text.slice(0, p) + text.slice(q, q + 48) + text.slice(p);
        }
      }
      const lines = text.split('\n').length;
      let r: ReturnType<typeof load>;
      try {
        r = load('k.conf', text);
      } catch (err) {
        assert.fail(`mutation ${i} threw ${(err as Error).stack}\n--- input ---\n${text}`);
      }
      assert.ok(r.config || r.problems.some((p) => p.severity === 'error'), `mutation ${i}: neither a config nor an error\n${text}`);
      for (const p of r.problems) {
        assert.ok(p.pos.file === 'k.conf' && p.pos.line >= 1 && p.pos.line <= lines + 1 && p.pos.col >= 1, `mutation ${i}: ${formatDiagnostic(p)}\n${text}`);
      }
    }
  });
});
