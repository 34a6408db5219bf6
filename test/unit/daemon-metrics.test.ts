/**
 * The Prometheus listener (src/daemon/metrics.ts): the metrics built from a fake daemon's status
 * and stats (test/lib/fake-control.ts), read back by a small parser of the text format written
 * here, and the listener on 127.0.0.1 (an ephemeral port; no root needed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { buildRegistry, MetricsServer } from '../../src/daemon/metrics.ts';
import { ControlError, parseListenAddress } from '../../src/daemon/control.ts';
import { FakeControl, STATUS } from '../lib/fake-control.ts';

/** name{labels} -> value, and the TYPE of each family */
function parse(text: string): { samples: Map<string, number>; types: Map<string, string> } {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) types.set(t[1]!, t[2]!);
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    samples.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return { samples, types };
}

const get = (s: Map<string, number>, key: string): number => {
  const v = s.get(key);
  assert.ok(v !== undefined, `no sample ${key}; have:\n${[...s.keys()].filter((k) => k.startsWith(key.split('{')[0]!)).join('\n')}`);
  return v;
};

test('VRRP, health, service and datapath metrics from status and stats', async () => {
  const fake = new FakeControl();
  const status = await fake.status();
  status.lastReload = { at: '2026-01-01T00:05:00.000Z', applied: false, errors: 2, warnings: 0 };
  const { samples: s, types } = parse(await buildRegistry(status, await fake.stats()).metrics());
  assert.equal(get(s, 'xlb_vrrp_state{instance="VI_1",interface="eth0",vrid="51",state="MASTER"}'), 1);
  assert.equal(get(s, 'xlb_vrrp_state{instance="VI_1",interface="eth0",vrid="51",state="BACKUP"}'), 0);
  assert.equal(get(s, 'xlb_vrrp_state{instance="VI_2",interface="eth0",vrid="52",state="BACKUP"}'), 1);
  assert.equal(get(s, 'xlb_vrrp_priority{instance="VI_1"}'), 150);
  assert.equal(get(s, 'xlb_vrrp_effective_priority{instance="VI_1"}'), 140);
  assert.equal(get(s, 'xlb_vrrp_transitions_total{instance="VI_1"}'), 2);
  assert.equal(get(s, 'xlb_vrrp_state_transitions_total{instance="VI_1",from="BACKUP",to="MASTER"}'), 1);
  assert.equal(get(s, 'xlb_vrrp_adverts_sent_total{instance="VI_1"}'), 120);
  assert.equal(get(s, 'xlb_vrrp_adverts_rejected_total{instance="VI_1",reason="ttl"}'), 1);
  assert.equal(types.get('xlb_vrrp_adverts_sent_total'), 'counter');
  assert.equal(types.get('xlb_vrrp_state'), 'gauge');

  assert.equal(get(s, 'xlb_real_up{service="[198.18.0.10]:tcp:80",real="[198.18.1.1]:tcp:80"}'), 1);
  assert.equal(get(s, 'xlb_real_up{service="[198.18.0.10]:tcp:80",real="[198.18.1.2]:tcp:80"}'), 0);
  assert.equal(get(s, 'xlb_real_weight{service="[198.18.0.10]:tcp:80",real="[198.18.1.1]:tcp:80"}'), 3);
  assert.equal(get(s, 'xlb_checker_up{service="[198.18.0.10]:tcp:80",real="[198.18.1.2]:tcp:80",index="0",kind="HTTP_GET",target="HTTP 198.18.1.2:80/health"}'), 0);
  assert.equal(get(s, 'xlb_service_quorum_up{service="[fd00::10]:udp:53"}'), 1);
  assert.equal(get(s, 'xlb_health_checks_total'), 50);
  assert.equal(get(s, 'xlb_health_check_failures_total'), 7);
  assert.equal(get(s, 'xlb_health_events_total{type="down"}'), 1);

  assert.equal(get(s, 'xlb_service_packets_total{service="[198.18.0.10]:tcp:80",vip="198.18.0.10",port="80",protocol="tcp"}'), 1000);
  assert.equal(get(s, 'xlb_real_bytes_total{service="[fd00::10]:udp:53",vip="fd00::10",port="53",protocol="udp",real="fd00::1:1"}'), 128000);
  assert.equal(get(s, 'xlb_service_connections_total{service="[fd00::10]:udp:53",vip="fd00::10",port="53",protocol="udp"}'), 20);
  assert.equal(get(s, 'xlb_datapath_counter_total{name="drop_no_service"}'), 10);
  assert.equal(get(s, 'xlb_datapath_failures_total'), 0);
  assert.equal(get(s, 'xlb_config_last_reload_successful'), 0);
  assert.equal(get(s, 'xlb_config_last_reload_timestamp_seconds'), Date.UTC(2026, 0, 1, 0, 5) / 1000);
  assert.equal(get(s, 'xlb_info{instance="default",version="0.1.0"}'), 1);
});

test('a service that is gone is gone from the next scrape', async () => {
  const fake = new FakeControl();
  const status = structuredClone(STATUS);
  status.services = status.services.slice(1);
  const stats = await fake.stats();
  stats.services = stats.services.slice(1);
  const text = await buildRegistry(status, stats).metrics();
  assert.doesNotMatch(text, /198\.18\.0\.10/);
  assert.match(text, /fd00::10/);
});

test('listen addresses', () => {
  assert.deepEqual(parseListenAddress('127.0.0.1:9100'), { host: '127.0.0.1', port: 9100 });
  assert.deepEqual(parseListenAddress('[::1]:9100'), { host: '::1', port: 9100 });
  assert.deepEqual(parseListenAddress(':9100'), { host: '::', port: 9100 });
  for (const bad of ['9100', '127.0.0.1', '127.0.0.1:0', 'host:70000', '::1:9100', '[::1]']) {
    assert.throws(() => parseListenAddress(bad), /metrics address .*: expected HOST:PORT, \[IPV6\]:PORT or :PORT/, bad);
  }
});

function fetchText(port: number, path: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the listener serves /metrics (with the process metrics) and nothing else', async () => {
  const fake = new FakeControl();
  const m = await MetricsServer.start({ control: fake, host: '127.0.0.1', port: 0 });
  try {
    const { port } = m.address;
    const r = await fetchText(port, '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.type, /^text\/plain; version=0\.0\.4/);
    assert.match(r.body, /^xlb_vrrp_state\{instance="VI_1",interface="eth0",vrid="51",state="MASTER"\} 1$/m);
    assert.match(r.body, /^xlb_process_resident_memory_bytes \d+/m);
    assert.equal((await fetchText(port, '/')).status, 404);
    const odd = await new Promise<string>((resolve, reject) => {
      const s = connect(port, '127.0.0.1');
      let text = '';
      s.on('data', (c) => { text += c; });
      s.on('end', () => resolve(text));
      s.on('error', reject);
      s.write('GET //[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    });
    assert.match(odd, /^HTTP\/1\.1 404 /, 'a target that cannot be read is not /metrics (and does not throw)');
    assert.equal((await fetchText(port, '/metrics')).status, 200);
    assert.equal((await fetchText(port, '/metrics', 'POST')).status, 405);
    fake.failNext = { method: 'stats', error: new ControlError('unavailable', 'starting') };
    const u = await fetchText(port, '/metrics');
    assert.equal(u.status, 503);
    assert.match(u.body, /metrics unavailable: starting/);
  } finally {
    await m.close();
  }
});

test('a port in use is a clear error', async () => {
  const a = await MetricsServer.start({ control: new FakeControl(), host: '127.0.0.1', port: 0 });
  try {
    await assert.rejects(MetricsServer.start({ control: new FakeControl(), host: '127.0.0.1', port: a.address.port }),
      new RegExp(`metrics listener on 127\\.0\\.0\\.1:${a.address.port}: .*EADDRINUSE`));
  } finally {
    await a.close();
  }
});
