/**
 * The keepalived.conf files `make demo` writes (scripts/demo-config.ts), read back with the
 * daemon's own loader (src/daemon/config.ts loadDaemonConfig, for the XDP driver): they load
 * without any problem, not even a warning (the demo prints what the daemons log), and say what the
 * demo's story needs: lb1 MASTER at a higher priority than lb2, both VRRPv3 holding the VIP on
 * eth0, and on both the same DR service over the three reals, each with an HTTP_GET.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { keepalivedConf, PRIORITIES } from '../../scripts/demo-config.ts';
import type { LabDescription, LabHost } from '../../scripts/lab/lab.ts';
import { loadDaemonConfig } from '../../src/daemon/config.ts';
import { XDP_CAPABILITIES } from '../../src/datapath/driver.ts';

const host = (name: string, ipv4: string): LabHost => ({ name, ns: `t-${name}`, ifname: 'eth0', mac: '02:00:00:00:00:01', ipv4, ipv6: 'fd00::1' });

/** The parts of a lab description the configuration uses, as createLab makes them (its addressing). */
const lab: LabDescription = {
  prefix: 't', routing: 'direct', http: 'nginx', decap: false, stateDir: '/nonexistent', vip4: '198.18.0.100', vip6: 'fd00::100',
  ports: { http: [80, 8080], echo: 7 }, clients: [host('client1', '198.18.1.11')],
  lbs: [1, 2].map((k) => ({ ...host(`lb${k}`, `198.18.0.${1 + k}`), clientIpv4: `198.18.1.${1 + k}`, clientIpv6: `fd00:1::${1 + k}`, natSrc4: `198.18.0.${200 + k}`, natSrc6: `fd00::${200 + k}` })),
  reals: [1, 2, 3].map((k) => host(`real${k}`, `198.18.0.${10 + k}`)),
};

describe('make demo: the keepalived.conf of each LB node', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xlb-demo-conf-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const k of [1, 2]) {
    test(`lb${k}: loads without a problem; VRRPv3 ${k === 1 ? 'MASTER' : 'BACKUP'} at priority ${PRIORITIES[k - 1]}; a DR service over the three reals with HTTP_GET`, async () => {
      const file = join(dir, `lb${k}.conf`);
      writeFileSync(file, keepalivedConf(lab, k));
      const r = await loadDaemonConfig(file, XDP_CAPABILITIES);
      assert.deepEqual(r.problems.map((p) => `${p.pos.line}:${p.pos.col} ${p.severity} ${p.message}`), []);
      assert.ok(r.config && r.services, 'a usable configuration');

      const [vi, ...more] = r.config.vrrp.vrrp_instance;
      assert.equal(more.length, 0);
      assert.equal(vi?.name, 'VI_1');
      assert.equal(vi.interface, 'eth0');
      assert.equal(vi.state, k === 1 ? 'MASTER' : 'BACKUP');
      assert.equal(vi.priority, PRIORITIES[k - 1]);
      assert.equal(vi.version ?? r.config.vrrp.global_defs?.vrrp_version, 3);
      assert.deepEqual(vi.virtual_ipaddress.map((v) => v.address), ['198.18.0.100/32']);

      assert.equal(r.services.length, 1);
      const svc = r.services[0]!;
      assert.deepEqual(svc.endpoints.map((e) => [e.protocol, e.address, e.port]), [['tcp', '198.18.0.100', 80]]);
      assert.equal(svc.lbAlgo, 'mh');
      assert.deepEqual(svc.reals.map((x) => [x.address, x.method, x.weight, x.checkers.map((c) => c.kind)]),
        lab.reals.map((x) => [x.ipv4, 'dr', 1, ['HTTP_GET']]));
    });
  }

  test('both nodes run the same services', () => {
    const services = (k: number) => keepalivedConf(lab, k).slice(keepalivedConf(lab, k).indexOf('virtual_server'));
    assert.equal(services(1), services(2));
  });
});
