/**
 * xlb's VRRP against a real keepalived 2.2.7, in network namespaces on one bridge (see
 * ./harness.ts): each scenario in both directions (xlb the higher priority, then keepalived),
 * and every change of master checked on the wire, by which node answers the client's datagram to
 * the VIP. VRRPv3 with advert_int 0.1 keeps failovers short; VRRPv2 (advert_int 1, whole seconds
 * only) where the scenario is v2's (PASS authentication, the interval mismatch).
 *
 * Needs root and keepalived; fails (never skips) without. Cleanup on every path: the peers are
 * killed and the segment removed (also by the exit handlers if the process dies).
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KeepalivedPeer } from '../../scripts/lab/keepalived.ts';
import { XlbPeer } from '../../scripts/lab/vrrp-client.ts';
import { instance, Interop, VIP4, VIP6, type Kind } from './harness.ts';

const DIRECTIONS: [Kind, Kind][] = [['xlb', 'keepalived'], ['keepalived', 'xlb']];
const HI = 'n1';
const LO = 'n2';

describe('VRRP interop: xlb and keepalived 2.2.7 (root)', () => {
  let lab: Interop;
  before(async () => { lab = await Interop.create(); });
  afterEach(async () => { await lab.reset(); });
  after(async () => { await lab.destroy(); });

  for (const [hi, lo] of DIRECTIONS) {
    test(`v3 election and preemption: ${lo} (100) is MASTER alone, ${hi} (200) takes over, the VIP moves`, async () => {
      const low = await lab.start(lo, LO, instance({ priority: 100 }));
      await low.waitState('VI_1', 'MASTER');
      assert.equal(await lab.answeredBy(VIP4), LO);
      const mark = low.states.length;
      const high = await lab.start(hi, HI, instance({ priority: 200 }));
      await high.waitState('VI_1', 'MASTER');
      await low.waitState('VI_1', 'BACKUP', { since: mark });
      await lab.waitAnswer(VIP4, HI);
      assert.ok(!lab.addresses(LO).includes(VIP4), `${lo} removed the VIP`);
    });

    test(`v3 nopreempt: ${hi} (200, nopreempt) stays BACKUP under ${lo} (100)`, async () => {
      const low = await lab.start(lo, LO, instance({ priority: 100 }));
      await low.waitState('VI_1', 'MASTER');
      const high = await lab.start(hi, HI, instance({ priority: 200, nopreempt: true }));
      await high.waitState('VI_1', 'BACKUP');
      await new Promise((ok) => setTimeout(ok, 1500)); // > 4 master-down intervals
      assert.equal(high.state('VI_1'), 'BACKUP');
      assert.equal(low.state('VI_1'), 'MASTER');
      assert.equal(await lab.answeredBy(VIP4), LO);
    });

    test(`v3 graceful stop (priority 0): ${hi} stops, ${lo} takes over, the VIP moves`, async () => {
      const high = await lab.start(hi, HI, instance({ priority: 200, state: 'MASTER' }));
      await high.waitState('VI_1', 'MASTER');
      const low = await lab.start(lo, LO, instance({ priority: 100 }));
      await low.waitState('VI_1', 'BACKUP');
      assert.equal(await lab.answeredBy(VIP4), HI);
      const mark = low.states.length;
      await high.stop();
      await low.waitState('VI_1', 'MASTER', { since: mark, timeoutMs: 2000 });
      await lab.waitAnswer(VIP4, LO);
      assert.ok(!lab.addresses(HI).includes(VIP4), `${hi} removed the VIP when it stopped`);
    });

    test(`v3 SIGKILL of the master: ${lo} takes over; ${hi} restarted removes its leftover VIP and preempts`, async () => {
      const high = await lab.start(hi, HI, instance({ priority: 200, state: 'MASTER' }));
      await high.waitState('VI_1', 'MASTER');
      const low = await lab.start(lo, LO, instance({ priority: 100 }));
      await low.waitState('VI_1', 'BACKUP');
      const mark = low.states.length;
      await high.kill();
      assert.ok(lab.addresses(HI).includes(VIP4), 'SIGKILL leaves the VIP behind');
      await low.waitState('VI_1', 'MASTER', { since: mark, timeoutMs: 3000 });
      await lab.waitAnswer(VIP4, LO);
      const again = await lab.start(hi, HI, instance({ priority: 200 }));
      await again.waitState('VI_1', 'BACKUP');
      if (again instanceof XlbPeer) assert.ok(again.logs.some((l) => l.includes(`removing leftover ${VIP4}/24`)), 'xlb removed the leftover VIP at start');
      await again.waitState('VI_1', 'MASTER');
      await lab.waitAnswer(VIP4, HI);
    });

    test(`v3 IPv6: ${hi} over ${lo}, then a graceful stop moves fd00::100`, async () => {
      const cfg = (priority: number) => instance({ priority, virtual_ipaddress: [{ address: `${VIP6}/64` }] });
      const low = await lab.start(lo, LO, cfg(100));
      const high = await lab.start(hi, HI, cfg(200));
      await high.waitState('VI_1', 'MASTER');
      await low.waitState('VI_1', 'BACKUP');
      await lab.waitAnswer(VIP6, HI);
      const mark = low.states.length;
      await high.stop();
      await low.waitState('VI_1', 'MASTER', { since: mark, timeoutMs: 2000 });
      await lab.waitAnswer(VIP6, LO);
    });

    test(`v3 unicast peers: ${hi} over ${lo}, then SIGKILL moves the VIP`, async () => {
      const cfg = (priority: number, self: string, peer: string) => instance({ priority, unicast_src_ip: self, unicast_peer: [peer] });
      const n1 = lab.seg.host('n1').ipv4;
      const n2 = lab.seg.host('n2').ipv4;
      const low = await lab.start(lo, LO, cfg(100, n2, n1));
      const high = await lab.start(hi, HI, cfg(200, n1, n2));
      await high.waitState('VI_1', 'MASTER');
      await low.waitState('VI_1', 'BACKUP');
      await lab.waitAnswer(VIP4, HI);
      const mark = low.states.length;
      await high.kill();
      await low.waitState('VI_1', 'MASTER', { since: mark, timeoutMs: 3000 });
      await lab.waitAnswer(VIP4, LO);
    });

    test(`v2 (advert_int 1) with PASS authentication: ${hi} over ${lo}, then a graceful stop`, async () => {
      const cfg = (priority: number) => instance({ version: 2, advert_int: 1, priority, authentication: { auth_type: 'PASS', auth_pass: 's3cret' } });
      const low = await lab.start(lo, LO, { ...cfg(100), vrrp_instance: [{ ...cfg(100).vrrp_instance[0]!, state: 'MASTER' }] });
      await low.waitState('VI_1', 'MASTER');
      const mark = low.states.length;
      const high = await lab.start(hi, HI, cfg(200));
      await high.waitState('VI_1', 'MASTER', { timeoutMs: 6000 });
      await low.waitState('VI_1', 'BACKUP', { since: mark });
      await lab.waitAnswer(VIP4, HI);
      const mark2 = low.states.length;
      await high.stop();
      await low.waitState('VI_1', 'MASTER', { since: mark2, timeoutMs: 3000 });
      await lab.waitAnswer(VIP4, LO);
    });
  }

  /**
   * Both sides reject each other's adverts, so both are MASTER (keepalived 2.2.7 starts in BACKUP
   * even with `state MASTER`, and takes over after its master-down interval); a few adverts each
   * way, then both sides' counters.
   */
  async function mismatch(x: Parameters<typeof instance>[0], k: Parameters<typeof instance>[0]) {
    const xlb = await lab.start('xlb', 'n1', instance({ version: 2, advert_int: 1, priority: 100, state: 'MASTER', ...x })) as XlbPeer;
    const ka = await lab.start('keepalived', 'n2', instance({ version: 2, advert_int: 1, priority: 200, state: 'MASTER', ...k }), { log: true }) as KeepalivedPeer;
    await xlb.waitState('VI_1', 'MASTER');
    await ka.waitState('VI_1', 'MASTER', { timeoutMs: 10_000 });
    await new Promise((ok) => setTimeout(ok, 2500));
    assert.equal(xlb.state('VI_1'), 'MASTER', 'xlb ignored keepalived\'s higher priority');
    assert.equal(ka.state('VI_1'), 'MASTER', 'keepalived ignored xlb');
    return { xlb: (await xlb.stats()).instances.VI_1!, ka: (await ka.stats()).VI_1!, kaLog: ka.log() };
  }

  test('v2 wrong password: rejected and counted on both sides (xlb auth_password, keepalived Authentication Failure)', async () => {
    const { xlb, ka } = await mismatch(
      { authentication: { auth_type: 'PASS', auth_pass: 'right' } },
      { authentication: { auth_type: 'PASS', auth_pass: 'wrong' } });
    assert.ok(xlb.rejected.auth_password >= 1, `xlb counted ${xlb.rejected.auth_password}`);
    assert.equal(xlb.advertsReceived, 0);
    assert.ok(ka.authFailure >= 1, `keepalived counted ${ka.authFailure}`);
    assert.equal(ka.advertReceived, 0, 'keepalived does not count a rejected advert as received');
  });

  test('v2 interval mismatch (1 s against 2 s): dropped on both sides; xlb counts it, keepalived 2.2.7 only logs it', async () => {
    const { xlb, ka, kaLog } = await mismatch({ advert_int: 1 }, { advert_int: 2 });
    assert.ok(xlb.rejected.interval >= 1, `xlb counted ${xlb.rejected.interval}`);
    assert.equal(xlb.advertsReceived, 0);
    assert.match(kaLog, /\(VI_1\) advertisement interval mismatch mine=2 sec rcv'd=1 sec/);
    assert.equal(ka.advertReceived, 0);
    assert.equal(ka.intervalErrors, 0, 'keepalived 2.2.7 does not count it in its stats (seen here); if this fails, it does now');
  });
});
