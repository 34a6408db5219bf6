/**
 * The daemon (`xlb run`) in the namespace lab, reloaded under traffic. lb1 runs VRRP (it becomes
 * master of the VIP) and two DR services (HTTP :80, TCP echo :7) over real1 and real2 with
 * TCP_CHECKs. While long-lived echo streams (one per real) and a loop of short connections run
 * through the VIP:
 *   1. SIGHUP with a valid change (real3 added to both services, a second VRRP instance VI_2):
 *      applied; real3 takes new connections; VI_2 becomes master of its address; no stream
 *      breaks, no GET fails, VI_1 does not move;
 *   2. a reload through the control API with an invalid file (two errors): nothing changes, the
 *      result (HTTP 422) and the log give every error with its file:line:col, and the traffic
 *      goes on as before (real3 still serves);
 *   3. SIGHUP with the file as it was (real3 and VI_2 removed again): real3 gets no new
 *      connection, VI_2 stops and its address goes; the streams (on real1, real2) never broke and
 *      VI_1 never left MASTER.
 * The control API's status and stats agree (VI_1 MASTER; the reals, their health and counters),
 * and so do `xlb status --json` and `xlb services -Ln` run against the daemon.
 * Then SIGTERM: exit 0, the VIP is gone from lb1 and the XDP program detached.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import type { Get, StreamStatus } from '../../scripts/lab/client-agent.ts';
import { ip } from '../../scripts/lab/netns.ts';
import { urlOf } from './rig.ts';
import { config, drService, pause, startDaemonRig, vrrpInstance, waitServing, XLB, type DaemonRig } from './daemon-rig.ts';

const PHASE_MS = 1500;
const VIP2 = '198.18.0.101';
const STREAM_INTERVAL_MS = 5;

describe('xlb run: reload under traffic', () => {
  let rig: DaemonRig | undefined;
  before(async () => { rig = await startDaemonRig({ reals: 3 }); });
  after(async () => { await rig?.close(); });

  test('valid reloads apply the difference, an invalid one changes nothing; nothing is dropped; TERM cleans up', async () => {
    assert.ok(rig, 'the lab did not come up');
    const { lab, client } = rig;
    const vip = lab.vip4;
    const services = (reals: string[]) => [drService(lab, 80, reals), drService(lab, lab.ports.echo, reals)];
    const vrrp = [vrrpInstance(lab)];
    rig.writeConfig(config(vrrp, services(['real1', 'real2'])));
    const d = await rig.startDaemon();
    await d.waitFor((l) => l.state === 'MASTER', 'VI_1 entering MASTER');
    const url = urlOf(vip, 80);
    await waitServing(client, url);

    const mark = async () => (await client.call({ op: 'mark' })).seq as number;
    const reload = async (what: string, ok: boolean, how: 'SIGHUP' | 'api' = 'SIGHUP') => {
      const from = d.lines.length;
      const m0 = await mark();
      if (how === 'SIGHUP') d.signal('SIGHUP');
      else {
        const r = await rig!.api.reload();
        assert.equal(r.applied, ok, `reload ${what} through the API: ${JSON.stringify(r)}`);
        if (!ok) {
          assert.deepEqual(r.problems.filter((p) => p.severity === 'error').map((p) => [p.pos.file, p.pos.line > 0, p.message.includes('weight 70000') || p.message.includes('quorum 0')]),
            [[rig!.configFile, true, true], [rig!.configFile, true, true]], JSON.stringify(r.problems));
        }
      }
      const done = await d.waitFor((l) => typeof l.msg === 'string' && (l.msg.includes(' applied') || l.msg.includes('has errors')), `the end of reload ${what}`, 15_000, from);
      assert.equal(done.msg.includes(' applied'), ok, `reload ${what}: ${done.msg}`);
      return { from, m0, m1: await mark() };
    };

    await client.call({ op: 'streams.open', address: vip, port: lab.ports.echo, want: ['real1', 'real2'] });
    await client.call({ op: 'streams.start', intervalMs: STREAM_INTERVAL_MS });
    await client.call({ op: 'loop.start', url, concurrency: 2 });
    try {
      await pause(PHASE_MS);

      // 1. valid: real3 added, VI_2 added
      const vi2 = vrrpInstance(lab, { name: 'VI_2', vrid: 52, vip: VIP2 });
      rig.writeConfig(config([...vrrp, vi2], services(['real1', 'real2', 'real3'])));
      const added = await reload('adding real3', true);
      await d.waitFor((l) => l.instance === 'VI_2' && l.state === 'MASTER', 'VI_2 MASTER', 5000, added.from);
      assert.ok(ip(['-j', 'addr', 'show', 'dev', 'eth0'], lab.lb.ns).includes(`"${VIP2}"`), 'VI_2 added its address');
      await pause(PHASE_MS);

      // 2. invalid: two errors; nothing changes
      rig.writeConfig(config([...vrrp, vi2], [drService(lab, 80, ['real1'], { weights: { real1: 70000 } }), drService(lab, lab.ports.echo, ['real1'], { quorum: 0 })]));
      const invalid = await reload('with errors', false, 'api');
      const errors = d.find((l) => l.level >= 50 && /keepalived\.conf:\d+:\d+: error: /.test(l.msg), invalid.from);
      assert.equal(errors.length, 2, `both errors logged with their positions: ${JSON.stringify(d.find((l) => l.level >= 50, invalid.from))}`);
      assert.ok(errors.some((l) => l.msg.includes('weight 70000')) && errors.some((l) => l.msg.includes('quorum 0')), JSON.stringify(errors));
      await pause(PHASE_MS);

      // 3. valid: back to real1 and real2
      rig.writeConfig(config(vrrp, services(['real1', 'real2'])));
      const removed = await reload('removing real3', true);
      await d.waitFor((l) => l.instance === 'VI_2' && l.state === 'STOP', 'VI_2 STOP', 5000, removed.from);
      assert.ok(!ip(['-j', 'addr', 'show', 'dev', 'eth0'], lab.lb.ns).includes(`"${VIP2}"`), 'VI_2 removed its address');
      await pause(PHASE_MS);

      const gets = (await client.call({ op: 'loop.stop' })).gets as Get[];
      const streams = (await client.call({ op: 'streams.stop' })).streams as StreamStatus[];

      assert.deepEqual(streams.map((s) => s.real).sort(), ['real1', 'real2']);
      for (const s of streams) {
        assert.equal(s.broken, undefined, `${s.real}'s stream never broke`);
        assert.equal(s.echoed, s.sent, `${s.real}: every message echoed`);
        assert.ok(s.echoed > (4 * PHASE_MS) / STREAM_INTERVAL_MS / 4, `${s.real}'s stream ran through every phase (${s.echoed})`);
      }
      const failed = gets.filter((g) => g.error !== undefined);
      // real3's removal may cut a GET in flight on it, as any removal of a real does
      assert.deepEqual(failed.filter((g) => !(g.start < removed.m1 && g.end > removed.m0 && (g.real === undefined || g.real === 'real3'))), [],
        'no GET failed but one in flight on real3 when it was removed');
      const servedBy = (from: number, to: number) => {
        const out: Record<string, number> = {};
        for (const g of gets) if (g.real && g.start > from && g.start < to) out[g.real] = (out[g.real] ?? 0) + 1;
        return out;
      };
      const phases = {
        before: servedBy(0, added.m0), added: servedBy(added.m1, invalid.m0), invalid: servedBy(invalid.m1, removed.m0),
        removed: servedBy(removed.m1, Infinity),
      };
      const seen = JSON.stringify(phases);
      assert.deepEqual(Object.keys(phases.before).sort(), ['real1', 'real2'], seen);
      assert.ok((phases.added.real3 ?? 0) > 0, `real3 serves once added: ${seen}`);
      assert.ok((phases.invalid.real3 ?? 0) > 0, `the invalid reload changed nothing (real3 still serves): ${seen}`);
      assert.equal(phases.removed.real3, undefined, `real3 gets no new connection once removed: ${seen}`);

      const status = await rig.api.status();
      assert.deepEqual(status.vrrp.map((i) => [i.name, i.state, i.effectivePriority]), [['VI_1', 'MASTER', 150]]);
      assert.deepEqual(status.services.map((s) => s.reals.map((r) => [r.address, r.health, r.weight])),
        [[[lab.reals[0]!.ipv4, 'up', 1], [lab.reals[1]!.ipv4, 'up', 1]], [[lab.reals[0]!.ipv4, 'up', 1], [lab.reals[1]!.ipv4, 'up', 1]]]);
      assert.deepEqual(status.lastReload && [status.lastReload.applied, status.lastReload.errors], [true, 0]);
      // the CLI against the running daemon
      const cli = (...args: string[]) => execFileSync(XLB, [...args, '--instance', rig!.instance], { encoding: 'utf8' });
      const cliStatus = JSON.parse(cli('status', '--json')) as typeof status;
      assert.deepEqual(cliStatus.vrrp.map((i) => [i.name, i.state]), [['VI_1', 'MASTER']], 'xlb status --json');
      const table = cli('services', '-Ln');
      for (const text of [`${vip}:80`, `${vip}:7`, `${lab.reals[0]!.ipv4}:`, `${lab.reals[1]!.ipv4}:`]) assert.ok(table.includes(text), `xlb services -Ln shows ${text}:\n${table}`);
      assert.ok(!table.includes(`${lab.reals[2]!.ipv4}:`), `xlb services -Ln: real3 is gone:\n${table}`);

      const stats = await rig.api.stats();
      const http = stats.services.find((s) => s.port === 80);
      assert.ok(http && http.reals.every((r) => r.counters.connections > 0), `stats: both reals took connections: ${JSON.stringify(http)}`);
      assert.ok(http.counters.connections >= gets.length - failed.length, `stats count the GETs: ${JSON.stringify(http.counters)} for ${gets.length}`);

      const transitions = (name: string) => d.find((l) => l.component === 'vrrp' && l.instance === name && typeof l.state === 'string').map((l) => l.state);
      assert.deepEqual(transitions('VI_1'), ['BACKUP', 'MASTER'], 'VI_1 never moved after becoming master');
      assert.deepEqual(transitions('VI_2'), ['BACKUP', 'MASTER', 'STOP'], 'VI_2 came with the first reload and went with the last');
    } finally {
      await client.call({ op: 'loop.stop' }).catch(() => undefined);
      await client.call({ op: 'streams.stop' }).catch(() => undefined);
    }

    d.signal('SIGTERM');
    const exit = await d.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, 'TERM: a clean exit');
    const addrs = ip(['-j', 'addr', 'show', 'dev', 'eth0'], lab.lb.ns);
    assert.ok(!addrs.includes(`"${vip}"`), 'TERM: the VIP is removed');
    const link = ip(['-j', 'link', 'show', 'dev', 'eth0'], lab.lb.ns);
    assert.ok(!link.includes('"xdp"'), `TERM: the XDP program is detached: ${link}`);
  });
});
