/**
 * The `xlb` commands that ask the daemon (src/cli/status.ts, stats.ts, services.ts, reload.ts,
 * dump.ts) run through the real command line against a fake DaemonControl
 * (test/lib/fake-control.ts): their output formats (the ipvsadm layouts written out here from
 * ipvsadm's printf formats), --json, exit codes, the socket they choose, and the errors they
 * print. The client itself over a real socket: test/system/daemon-api.test.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../../src/cli/program.ts';
import { realDecapOps } from '../../src/cli/decap.ts';
import { CliError, type CliIo } from '../../src/cli/io.ts';
import { largeNum } from '../../src/cli/format.ts';
import { CLEAR_SCREEN } from '../../src/cli/stats.ts';
import { DUMP, FakeControl, RELOAD_BAD, STATUS } from '../lib/fake-control.ts';

interface Run { code: number; out: string; err: string; sockets: string[]; fake: FakeControl }

async function run(argv: string[], o: { tty?: boolean; fake?: FakeControl } = {}): Promise<Run> {
  const r: Run = { code: -1, out: '', err: '', sockets: [], fake: o.fake ?? new FakeControl() };
  const io: CliIo = { out: (t) => { r.out += t; }, err: (t) => { r.err += t; }, isRoot: () => true, isTty: () => o.tty ?? false };
  r.code = await runCli(argv, io, { decap: realDecapOps, control: (path) => { r.sockets.push(path); return r.fake; } });
  return r;
}

describe('xlb services (the ipvsadm -Ln layout)', () => {
  test('-Ln: services in ipvsadm order, Forward names, persistence mask, unknown counts as "-"', async () => {
    const r = await run(['services', '-Ln']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, [
      'xlb 0.1.0 (xdp datapath, instance default)',
      'Prot LocalAddress:Port Scheduler Flags',
      '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
      'TCP  198.18.0.10:80 wrr persistent 300 mask 255.255.255.0',
      '  -> 198.18.1.1:80                Route   3      -          -',
      'UDP  [fd00::10]:53 sh',
      '  -> [fd00::1:1]:5353             Masq    1      -          -',
      '',
    ].join('\n'));
    assert.deepEqual(r.sockets, ['/run/xlb/default.sock']);
  });

  test('-L -n and -l are accepted the same way', async () => {
    const a = await run(['services', '-Ln']);
    for (const argv of [['services', '-L', '-n'], ['services', '-l', '-n'], ['services']]) assert.equal((await run(argv)).out, a.out, argv.join(' '));
  });

  test('--stats: Conns InPkts InBytes in 9 columns, Out* unknown', async () => {
    const r = await run(['services', '-Ln', '--stats']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, [
      'xlb 0.1.0 (xdp datapath, instance default)',
      'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes',
      '  -> RemoteAddress:Port',
      'TCP  198.18.0.10:80                     10     1000        -    64000        -',
      '  -> 198.18.1.1:80                      10     1000        -    64000        -',
      'UDP  [fd00::10]:53                      20     2000        -   128000        -',
      '  -> [fd00::1:1]:5353                   20     2000        -   128000        -',
      '',
    ].join('\n'));
  });

  test('--rate: two reads --interval apart, per-second differences', async () => {
    const r = await run(['services', '-Ln', '--rate', '--interval', '0.01']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.fake.calls, ['status', 'stats', 'stats']);
    // the fake's counters grow by 1000 packets, 64000 bytes, 10 connections per read, its clock by 1 s
    assert.equal(r.out.split('\n').slice(1).join('\n'), [
      'Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS',
      '  -> RemoteAddress:Port',
      'TCP  198.18.0.10:80                     10     1000        -    64000        -',
      '  -> 198.18.1.1:80                      10     1000        -    64000        -',
      'UDP  [fd00::10]:53                      20     2000        -   128000        -',
      '  -> [fd00::1:1]:5353                   20     2000        -   128000        -',
      '',
    ].join('\n'));
  });

  test('--json: the listing, the counters, the rates', async () => {
    const list = JSON.parse((await run(['services', '--json'])).out);
    assert.deepEqual(list.services.map((s: { protocol: string; address: string; port: number }) => `${s.protocol} ${s.address} ${s.port}`), ['tcp 198.18.0.10 80', 'udp fd00::10 53']);
    assert.deepEqual(list.services[0].reals, [{ address: '198.18.1.1', port: 0, method: 'dr', weight: 3 }]);
    assert.deepEqual(list.services[0].persistence, { timeout: 300, granularity: 24 });
    const stats = JSON.parse((await run(['services', '--stats', '--json'])).out);
    assert.equal(stats.services[1].reals[0].counters.bytes, 128000);
    const rate = JSON.parse((await run(['services', '--rate', '--interval', '0.01', '--json'])).out);
    assert.equal(rate.intervalMs, 1000);
    assert.deepEqual(rate.services[0].rates, { cps: 10, pps: 1000, bps: 64000 });
    assert.deepEqual(rate.services[1].reals[0], { address: 'fd00::1:1', port: 5353, rates: { cps: 20, pps: 2000, bps: 128000 } });
  });

  test('--stats with --rate, and a bad --interval, are refused', async () => {
    const both = await run(['services', '--stats', '--rate']);
    assert.equal(both.code, 1);
    assert.match(both.err, /^xlb: xlb services: --stats and --rate are two layouts: choose one\n$/);
    const bad = await run(['services', '--rate', '--interval', '0']);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /--interval <seconds>' argument '0' is invalid\. an interval in seconds, 0\.01 to 3600/);
  });

  test("ipvsadm's large numbers", () => {
    assert.equal(largeNum(0), '        0');
    assert.equal(largeNum(99_999_999), ' 99999999');
    assert.equal(largeNum(123_456_789), '  123456K');
    assert.equal(largeNum(12_345_678_901), '   12345M');
    assert.equal(largeNum(123_456_789_012), '     123G');
    assert.equal(largeNum(123_456_789_012_345), '     123T');
    assert.equal(largeNum(123_456_789, true), ' 123456789');
    assert.equal(largeNum(12, true), '       12');
  });
});

describe('xlb status', () => {
  test('VRRP instances and virtual servers as tables', async () => {
    const r = await run(['status']);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.split('\n');
    assert.equal(lines[0], 'xlb 0.1.0, instance default, pid 4242, running since 2026-01-01T00:00:00.000Z: VRRP and services');
    assert.match(r.out, /^ {2}INSTANCE +STATE +PRIORITY +EFFECTIVE +VRID +INTERFACE +VIPS +NOTE$/m);
    assert.match(r.out, /^ {2}VI_1 +MASTER +150 +140 +51 +eth0 +198\.18\.0\.10\/32$/m);
    assert.match(r.out, /^ {2}VI_2 +BACKUP +100 +100 +52 +eth0 +fd00::10\/128 +master fe80::2 \(priority 200\)$/m);
    assert.match(r.out, /^ {2}\[198\.18\.0\.10\]:tcp:80 {2}wrr, persistent 300 s \/24, quorum up \(live weight 3, needs 1\); datapath TCP 198\.18\.0\.10:80$/m);
    assert.match(r.out, /^ {4}\[198\.18\.1\.1\]:tcp:80 +up +3 +3 +dr +TCP_CHECK ok$/m);
    assert.match(r.out, /^ {4}\[198\.18\.1\.2\]:tcp:80 +DOWN +1 +1 +dr +HTTP_GET FAILED: HTTP status 503$/m);
    assert.match(r.out, /^ {4}\[fd00::1:1\]:udp:5353 +up +1 +1 +nat +none \(always up\)$/m);
  });

  test('a failed last reload is said; -C shows no VRRP section', async () => {
    const fake = new FakeControl();
    fake.status = async () => ({ ...structuredClone(STATUS), runs: { vrrp: false, services: true }, lastReload: { at: '2026-01-01T00:02:00.000Z', applied: false, errors: 2, warnings: 0 } });
    const r = await run(['status'], { fake });
    assert.match(r.out, /: services only \(-C\)\n/);
    assert.match(r.out, /last reload FAILED at 2026-01-01T00:02:00\.000Z \(2 errors, 0 warnings\): the previous configuration runs/);
    assert.doesNotMatch(r.out, /VRRP instances/);
  });

  test('--json is the daemon\'s report', async () => {
    assert.deepEqual(JSON.parse((await run(['status', '--json'])).out), STATUS);
  });
});

describe('xlb stats', () => {
  test('one read without rates when not on a terminal', async () => {
    const r = await run(['stats']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.fake.calls, ['stats']);
    assert.match(r.out, /^SERVICE \/ REAL +PACKETS +BYTES +CONNS +PKT\/S +BYTE\/S +CONN\/S$/m);
    assert.match(r.out, /^TCP 198\.18\.0\.10:80 +1000 +64\.0k +10 +- +- +-$/m);
    assert.match(r.out, /^VI_1 +MASTER +3 +120 +2 +1 +1 +5$/m);
    assert.match(r.out, /^health checks: 50 run, 7 failed \(2 timed out\); reals went up 3, down 1, changed weight 0 times$/m);
    assert.match(r.out, /^datapath counters \(those above 0\): rx 3000, tx 2990, drop_no_service 10$/m);
    assert.doesNotMatch(r.out, new RegExp(CLEAR_SCREEN.replace(/[[\]]/g, '\\$&')));
  });

  test('--count 2: the second read has the rates since the first', async () => {
    const r = await run(['stats', '--count', '2', '--interval', '0.01']);
    assert.equal(r.code, 0, r.err);
    const [first, second] = r.out.split(/\n(?=at )/);
    assert.match(first!, /^ {2}-> \[fd00::1:1\]:5353 +2000 +128k +20 +- +- +-$/m);
    assert.match(second!, /^ {2}-> \[fd00::1:1\]:5353 +4000 +256k +40 +2000 +128k +20$/m);
    assert.match(second!, /^TCP 198\.18\.0\.10:80 +2000 +128k +20 +1000 +64\.0k +10$/m);
  });

  test('on a terminal: a live view redrawn in place (here stopped by --count)', async () => {
    const r = await run(['stats', '--count', '3', '--interval', '0.01'], { tty: true });
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.split(CLEAR_SCREEN).length - 1, 3);
    assert.match(r.out, /xlb stats, every 0\.01 s \(Ctrl-C to stop\)/);
    assert.equal(r.fake.calls.length, 3);
  });

  test('--once on a terminal and --json: one read', async () => {
    const once = await run(['stats', '--once'], { tty: true });
    assert.equal(once.fake.calls.length, 1);
    assert.ok(!once.out.includes(CLEAR_SCREEN));
    const j = await run(['stats', '--json'], { tty: true });
    assert.equal(JSON.parse(j.out).services[0].counters.packets, 1000);
    assert.equal(j.fake.calls.length, 1);
  });
});

describe('xlb reload', () => {
  test('applied: changes on stdout, warnings on stderr, exit 0', async () => {
    const r = await run(['reload']);
    assert.equal(r.code, 0);
    assert.equal(r.err, '/etc/keepalived/keepalived.conf:21:3: warning: lb_algo lc is approximated by wrr\n');
    assert.equal(r.out, 'xlb reload: /etc/keepalived/keepalived.conf applied in 12 ms (1 warning); changes:\n  virtual servers changed: [198.18.0.10]:tcp:80\n');
  });

  test('refused: every error with its position, nothing changed, exit 1', async () => {
    const fake = new FakeControl();
    fake.reloadResult = RELOAD_BAD;
    const r = await run(['reload'], { fake });
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    assert.equal(r.err, [
      "/etc/keepalived/keepalived.conf:7:5: error: unknown keyword 'priorty'",
      "/etc/keepalived/conf.d/web.conf:3:14: error: 'abc' is not a number",
      'xlb reload: /etc/keepalived/keepalived.conf has 2 errors: nothing was changed, the running configuration stays',
      '',
    ].join('\n'));
    const j = await run(['reload', '--json'], { fake });
    assert.equal(j.code, 1);
    assert.deepEqual(JSON.parse(j.out), RELOAD_BAD);
  });
});

describe('xlb dump', () => {
  test("--json is keepalived's JSON dump as the daemon gives it", async () => {
    const r = await run(['dump', '--json']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(JSON.parse(r.out), DUMP);
  });

  test('text: every field, states named', async () => {
    const r = await run(['dump']);
    assert.match(r.out, /^VRRP instance VI_1$/m);
    assert.match(r.out, /^ {4}state = 2 \(MASTER\)$/m);
    assert.match(r.out, /^ {4}vips =\n {6}198\.18\.0\.10\/32 dev eth0 scope global$/m);
    assert.match(r.out, /^ {4}advert_sent = 120$/m);
  });
});

describe('which daemon, and its errors', () => {
  test('--instance and --socket choose the socket', async () => {
    assert.deepEqual((await run(['status', '--instance', 'edge-2'])).sockets, ['/run/xlb/edge-2.sock']);
    assert.deepEqual((await run(['dump', '--socket', '/tmp/x.sock'])).sockets, ['/tmp/x.sock']);
    const bad = await run(['reload', '--instance', '../etc']);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /^xlb: instance name "\.\.\/etc": use 1 to 64 letters/);
    assert.deepEqual(bad.fake.calls, []);
  });

  test("the client's error is printed once, exit 1", async () => {
    const fake = new FakeControl();
    fake.failNext = { method: 'status', error: new CliError('no xlb daemon: /run/xlb/default.sock does not exist') };
    const r = await run(['status'], { fake });
    assert.equal(r.code, 1);
    assert.equal(r.err, 'xlb: no xlb daemon: /run/xlb/default.sock does not exist\n');
  });

  test('help for each command names its options', async () => {
    for (const [cmd, re] of [['status', /--json[\s\S]*--instance <name>[\s\S]*--socket <path>/], ['stats', /--interval <seconds>[\s\S]*--count <n>[\s\S]*--once/],
      ['services', /-L, --list[\s\S]*-n, --numeric[\s\S]*--stats[\s\S]*--rate[\s\S]*--exact/], ['reload', /SIGHUP/], ['dump', /keepalived's JSON/]] as const) {
      const r = await run([cmd, '--help']);
      assert.equal(r.code, 0);
      assert.match(r.out, re, cmd);
    }
  });
});
