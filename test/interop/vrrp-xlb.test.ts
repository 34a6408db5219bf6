/**
 * xlb against xlb: two xlb VRRP nodes (scripts/lab/vrrp-node.ts) on one segment (./harness.ts),
 * VRRPv3 at advert_int 0.05 (the benchmark's setting), each change of master checked by which
 * node answers the client's datagram to the VIP; and a sync group whose two instances (IPv4 and
 * IPv6) move together; link state (the instance's interface down: FAULT; a tracked interface
 * with a weight: the priority moves); notify scripts and the notify FIFO.
 *
 * Needs root; fails (never skips) without. Cleanup on every path.
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ip } from '../../scripts/lab/netns.ts';
import { readFifo, XlbPeer } from '../../scripts/lab/vrrp-client.ts';
import type { VrrpConfig } from '../../src/vrrp/config.ts';
import { instance, Interop, VIP4, VIP6 } from './harness.ts';

const fast = (priority: number, o: Parameters<typeof instance>[0] = {}) => instance({ priority, advert_int: 0.05, ...o });

describe('VRRP interop: xlb and xlb (root)', () => {
  let lab: Interop;
  before(async () => { lab = await Interop.create(); });
  afterEach(async () => { await lab.reset(); });
  after(async () => { await lab.destroy(); });

  test('election, preemption, graceful stop and back', async () => {
    const low = await lab.start('xlb', 'n2', fast(100));
    await low.waitState('VI_1', 'MASTER');
    await lab.waitAnswer(VIP4, 'n2');
    let mark = low.states.length;
    const high = await lab.start('xlb', 'n1', fast(200));
    await high.waitState('VI_1', 'MASTER');
    await low.waitState('VI_1', 'BACKUP', { since: mark });
    await lab.waitAnswer(VIP4, 'n1');
    mark = low.states.length;
    await high.stop();
    const took = await low.waitState('VI_1', 'MASTER', { since: mark, timeoutMs: 1000 });
    await lab.waitAnswer(VIP4, 'n2');
    assert.ok(!lab.addresses('n1').includes(VIP4));
    const stats = (await (low as XlbPeer).stats()).instances.VI_1!;
    assert.ok(stats.priorityZeroReceived >= 1, 'the stopping master sent priority 0');
    assert.ok(took.wallMs > 0);
  });

  test('SIGKILL of the master: the backup takes over; the restarted node removes its leftover VIP and preempts', async () => {
    const high = await lab.start('xlb', 'n1', fast(200));
    const low = await lab.start('xlb', 'n2', fast(100));
    await high.waitState('VI_1', 'MASTER');
    await low.waitState('VI_1', 'BACKUP');
    const mark = low.states.length;
    await high.kill();
    assert.ok(lab.addresses('n1').includes(VIP4), 'SIGKILL leaves the VIP behind');
    await low.waitState('VI_1', 'MASTER', { since: mark, timeoutMs: 1000 });
    await lab.waitAnswer(VIP4, 'n2');
    const again = await lab.start('xlb', 'n1', fast(200)) as XlbPeer;
    assert.ok(again.logs.some((l) => l.includes(`removing leftover ${VIP4}/24`)), 'leftover VIP removed at start');
    await again.waitState('VI_1', 'MASTER');
    await lab.waitAnswer(VIP4, 'n1');
    const lowStats = (await (low as XlbPeer).stats()).instances.VI_1!;
    assert.deepEqual([lowStats.becameMaster, lowStats.releasedMaster, lowStats.state], [1, 1, 'BACKUP']);
  });

  test('a sync group: IPv4 and IPv6 instances move together when one master goes', async () => {
    const group = (priority: number): VrrpConfig => ({
      vrrp_instance: [
        fast(priority).vrrp_instance[0]!,
        { ...fast(priority).vrrp_instance[0]!, name: 'VI_6', virtual_router_id: 61, virtual_ipaddress: [{ address: `${VIP6}/64` }] },
      ],
      vrrp_sync_group: [{ name: 'G', group: ['VI_1', 'VI_6'] }],
    });
    const high = await lab.start('xlb', 'n1', group(200));
    const low = await lab.start('xlb', 'n2', group(100));
    for (const i of ['VI_1', 'VI_6']) {
      await high.waitState(i, 'MASTER');
      await low.waitState(i, 'BACKUP');
    }
    await lab.waitAnswer(VIP4, 'n1');
    await lab.waitAnswer(VIP6, 'n1');
    const mark = low.states.length;
    await high.stop();
    for (const i of ['VI_1', 'VI_6']) await low.waitState(i, 'MASTER', { since: mark, timeoutMs: 1000 });
    await lab.waitAnswer(VIP4, 'n2');
    await lab.waitAnswer(VIP6, 'n2');
  });

  test('link state: the master\'s interface down puts it in FAULT and the backup takes over; up again, it preempts', async () => {
    const high = await lab.start('xlb', 'n1', fast(200));
    const low = await lab.start('xlb', 'n2', fast(100));
    await high.waitState('VI_1', 'MASTER');
    await low.waitState('VI_1', 'BACKUP');
    const n1 = lab.seg.host('n1').ns;
    const mark = low.states.length;
    ip(['link', 'set', 'eth0', 'down'], n1);
    try {
      await high.waitState('VI_1', 'FAULT', { timeoutMs: 2000 });
      await low.waitState('VI_1', 'MASTER', { since: mark, timeoutMs: 2000 });
      assert.ok(!lab.addresses('n1').includes(VIP4), 'FAULT removed the VIP');
      await lab.waitAnswer(VIP4, 'n2');
    } finally {
      ip(['link', 'set', 'eth0', 'up'], n1);
    }
    const mark1 = high.states.length;
    await high.waitState('VI_1', 'MASTER', { since: mark1, timeoutMs: 3000 });
    await lab.waitAnswer(VIP4, 'n1');
  });

  test('track_interface with a weight: a tracked link down lowers the priority (200 - 150 = 50) and the backup preempts', async () => {
    const n1 = lab.seg.host('n1').ns;
    ip(['link', 'add', 'trk0', 'type', 'veth', 'peer', 'name', 'trk1'], n1); // no dummy driver on this kernel
    ip(['link', 'set', 'trk1', 'up'], n1);
    ip(['link', 'set', 'trk0', 'up'], n1);
    try {
      const high = await lab.start('xlb', 'n1', fast(200, { track_interface: [{ name: 'trk0', weight: -150 }] }));
      const low = await lab.start('xlb', 'n2', fast(100));
      await high.waitState('VI_1', 'MASTER');
      await low.waitState('VI_1', 'BACKUP');
      const mark = high.states.length;
      ip(['link', 'set', 'trk0', 'down'], n1);
      await high.waitState('VI_1', 'BACKUP', { since: mark, timeoutMs: 2000 });
      await low.waitState('VI_1', 'MASTER', { timeoutMs: 2000 });
      await lab.waitAnswer(VIP4, 'n2');
      assert.equal((await (high as XlbPeer).stats()).instances.VI_1!.priority, 50);
      const mark2 = high.states.length;
      ip(['link', 'set', 'trk0', 'up'], n1);
      await high.waitState('VI_1', 'MASTER', { since: mark2, timeoutMs: 2000 });
      await lab.waitAnswer(VIP4, 'n1');
    } finally {
      ip(['link', 'del', 'trk0'], n1);
    }
  });

  test('notifications: the generic notify script gets INSTANCE NAME STATE PRIORITY; the FIFO gets keepalived\'s lines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xlb-notify-'));
    try {
      const log = join(dir, 'notify.log');
      const script = join(dir, 'notify.sh');
      writeFileSync(script, `#!/bin/sh\necho "$@" >> ${log}\n`);
      chmodSync(script, 0o755);
      const fifo = join(dir, 'notify.fifo');
      execFileSync('mkfifo', ['-m', '600', fifo]);
      const lines: string[] = [];
      const reader = readFifo(fifo, (l) => lines.push(l));
      try {
        const cfg = fast(200, { notify: script });
        const peer = await lab.start('xlb', 'n1', { ...cfg, global_defs: { notify_fifo: fifo } });
        await peer.waitState('VI_1', 'MASTER');
        await peer.stop();
        for (let i = 0; i < 50 && lines.length < 3; i++) await new Promise((ok) => setTimeout(ok, 20));
        assert.deepEqual(lines, ['INSTANCE "VI_1" BACKUP 200', 'INSTANCE "VI_1" MASTER 200', 'INSTANCE "VI_1" STOP 200']);
        assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n').sort(),
          ['INSTANCE VI_1 BACKUP 200', 'INSTANCE VI_1 MASTER 200', 'INSTANCE VI_1 STOP 200'].sort(), 'the script ran once per state');
      } finally {
        reader.destroy();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('MASTER adds the VIP with its label, the excluded IPv6 address without DAD, virtual routes and rules; stopping removes them', async () => {
    const n1 = lab.seg.host('n1').ns;
    const cfg = fast(200, {
      virtual_ipaddress: [{ address: `${VIP4}/24`, label: 'eth0:vip' }],
      virtual_ipaddress_excluded: [{ address: `${VIP6}/64` }],
      virtual_routes: [{ to: '198.18.7.0/24', via: lab.seg.host('client').ipv4, table: 100 }],
      virtual_rules: [{ from: '198.18.7.0/24', table: 100, priority: 1000 }],
    });
    const peer = await lab.start('xlb', 'n1', cfg);
    await peer.waitState('VI_1', 'MASTER');
    await (peer as XlbPeer).stats(); // the netlink answers are in by now (they precede the reply)
    const addrs = JSON.parse(ip(['-j', 'addr', 'show', 'dev', 'eth0'], n1)) as { addr_info: { local: string; label?: string; nodad?: boolean }[] }[];
    const info = addrs[0]!.addr_info;
    assert.equal(info.find((a) => a.local === VIP4)?.label, 'eth0:vip');
    assert.equal(info.find((a) => a.local === VIP6)?.nodad, true);
    assert.match(ip(['route', 'show', 'table', '100'], n1), /198\.18\.7\.0\/24 via 198\.18\.0\.3 dev eth0 proto keepalived/);
    assert.match(ip(['rule', 'show'], n1), /1000:\s+from 198\.18\.7\.0\/24 lookup 100/);
    await peer.stop();
    assert.deepEqual(lab.addresses('n1').filter((a) => a === VIP4 || a === VIP6), []);
    assert.equal(ip(['route', 'show', 'table', '100'], n1).trim(), '');
    assert.doesNotMatch(ip(['rule', 'show'], n1), /lookup 100/);
  });
});
