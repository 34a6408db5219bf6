/**
 * Hitless restart of the daemon under traffic, in the namespace lab. lb1 runs `xlb run` (VRRP
 * master of the VIP; DR services HTTP :80 and TCP echo :7 over real1 and real2). While one
 * long-lived echo stream per real and a loop of short connections run through the VIP:
 *   1. SIGKILL: the XDP program stays attached and pinned under /sys/fs/bpf/xlb/<instance>, and
 *      forwarding goes on (streams echo, GETs are answered) with no daemon at all;
 *   2. a new daemon starts on the same instance: it adopts the pins (its log says so, with the two
 *      services), the reconciler changes nothing that is unchanged, VRRP takes the VIP again;
 *   3. the streams never broke, every GET was answered, nothing was dropped by the program
 *      (its drop counters, read through the new daemon, are all zero), and the services' counters
 *      went on from where the first daemon left them.
 * Then SIGTERM: the pins are removed and the program detached.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Get, StreamStatus } from '../../scripts/lab/client-agent.ts';
import { ip } from '../../scripts/lab/netns.ts';
import { urlOf } from './rig.ts';
import { config, drService, pause, PIN_ROOT, startDaemonRig, vrrpInstance, waitServing, type DaemonRig, type LogLine } from './daemon-rig.ts';

const PHASE_MS = 1500;
const STREAM_INTERVAL_MS = 5;
const hasXdp = (ns: string) => ip(['-j', 'link', 'show', 'dev', 'eth0'], ns).includes('"xdp"');

describe('xlb run: SIGKILL and restart under traffic', () => {
  let rig: DaemonRig | undefined;
  before(async () => { rig = await startDaemonRig({ reals: 2 }); });
  after(async () => { await rig?.close(); });

  test('the program forwards without a daemon; the next daemon adopts the pins; no connection is lost', async () => {
    assert.ok(rig, 'the lab did not come up');
    const { lab, client } = rig;
    const vip = lab.vip4;
    const pins = join(PIN_ROOT, rig.instance);
    rig.writeConfig(config([vrrpInstance(lab)], [drService(lab, 80, ['real1', 'real2']), drService(lab, lab.ports.echo, ['real1', 'real2'])]));
    const d1 = await rig.startDaemon();
    await d1.waitFor((l) => l.state === 'MASTER', 'VI_1 MASTER');
    const url = urlOf(vip, 80);
    await waitServing(client, url);
    assert.ok(existsSync(join(pins, 'prog')), `the program is pinned in ${pins}`);
    assert.ok(d1.find((l) => /^adopted/.test(l.msg)).length === 0, 'the first daemon created its forwarder');

    await client.call({ op: 'streams.open', address: vip, port: lab.ports.echo, want: ['real1', 'real2'] });
    await client.call({ op: 'streams.start', intervalMs: STREAM_INTERVAL_MS });
    await client.call({ op: 'loop.start', url, concurrency: 2 });
    try {
      await pause(PHASE_MS);
      const before = await rig.api.stats();

      // 1. no daemon
      d1.signal('SIGKILL');
      assert.equal((await d1.exited).signal, 'SIGKILL');
      const killed = (await client.call({ op: 'mark' })).seq as number;
      assert.ok(hasXdp(lab.lb.ns), 'the program stays attached after SIGKILL');
      assert.ok(existsSync(join(pins, 'prog')), 'and pinned');
      await pause(PHASE_MS);
      const alone = (await client.call({ op: 'mark' })).seq as number;

      // 2. a new daemon adopts
      const d2 = await rig.startDaemon();
      const adopted = await d2.waitFor((l: LogLine) => /^adopted the pinned XDP forwarder/.test(l.msg), 'the adoption');
      assert.equal(adopted.services, 2, 'both services were read back from the pins');
      await d2.waitFor((l) => l.state === 'MASTER', 'VI_1 MASTER again');
      await pause(PHASE_MS);

      const gets = (await client.call({ op: 'loop.stop' })).gets as Get[];
      const streams = (await client.call({ op: 'streams.stop' })).streams as StreamStatus[];

      // 3. nothing lost
      assert.deepEqual(streams.map((s) => s.real).sort(), ['real1', 'real2']);
      for (const s of streams) {
        assert.equal(s.broken, undefined, `${s.real}'s stream never broke`);
        assert.equal(s.echoed, s.sent, `${s.real}: every message echoed`);
      }
      assert.deepEqual(gets.filter((g) => g.error !== undefined), [], 'every GET was answered');
      const withoutDaemon = gets.filter((g) => g.start > killed && g.end < alone);
      assert.ok(withoutDaemon.length > 10, `GETs were served while no daemon ran (${withoutDaemon.length})`);

      const after = await rig.api.stats();
      const http = (s: typeof before) => s.services.find((x) => x.port === 80)!.counters.connections;
      assert.ok(http(after) >= http(before) + withoutDaemon.length, `the counters went on from the first daemon's: ${http(before)} -> ${http(after)}`);
      const drops = Object.entries(after.datapath).filter(([k, v]) => k.startsWith('drop_') && v !== 0);
      assert.deepEqual(drops, [], 'the program dropped nothing');
      const d2sets = d2.find((l) => l.component === 'reconcile');
      assert.deepEqual(d2sets.filter((l) => /Removing service|Adding service/.test(l.msg)), [], 'no real was added or removed by the adoption');

      d2.signal('SIGTERM');
      assert.deepEqual(await d2.exited, { code: 0, signal: null });
      assert.equal(existsSync(pins), false, 'TERM removed the pins');
      assert.equal(hasXdp(lab.lb.ns), false, 'TERM detached the program');
    } finally {
      await client.call({ op: 'loop.stop' }).catch(() => undefined);
      await client.call({ op: 'streams.stop' }).catch(() => undefined);
    }
  });
});
