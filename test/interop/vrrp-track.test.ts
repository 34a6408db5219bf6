/**
 * track_script, track_file and start-up, each scenario run twice: with xlb and with a real
 * keepalived 2.2.7 as the tracked node (n1), an xlb peer on n2, so that the same expectations hold
 * for both (xlb does what keepalived does) and the two interoperate. Every change of master is
 * checked by which node answers the client's datagram to the VIP (./harness.ts).
 *
 *   - a failing script with a negative weight lowers n1's priority below the peer's: the peer
 *     preempts; passing again, n1 takes the VIP back;
 *   - a failing weight-0 script puts n1 in FAULT (VIP removed), the peer takes over;
 *   - an instance with a weight-0 script is not started before the script has reported (no state
 *     at all until then);
 *   - a track_file's value times its weight moves the priority: n1 preempts when it is written;
 *   - `state MASTER` below priority 255 starts as BACKUP and takes over only after the
 *     master-down interval; under a running master of higher priority it stays BACKUP.
 *
 * Scripts run every second (keepalived's vrrp_script interval is whole seconds). Needs root and
 * keepalived; fails (never skips) without. Cleanup on every path.
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XlbPeer } from '../../scripts/lab/vrrp-client.ts';
import type { VrrpConfig, VrrpScriptConfig } from '../../src/vrrp/config.ts';
import { instance, Interop, VIP4, type Kind } from './harness.ts';

const fast = (priority: number, o: Parameters<typeof instance>[0] = {}) => instance({ priority, advert_int: 0.1, ...o });
const KINDS: Kind[] = ['xlb', 'keepalived'];
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

describe('VRRP tracking and start-up: xlb and keepalived 2.2.7 alike (root)', () => {
  let lab: Interop;
  let dir: string;
  before(async () => {
    lab = await Interop.create();
    dir = mkdtempSync(join(tmpdir(), 'xlb-track-'));
  });
  afterEach(async () => { await lab.reset(); });
  after(async () => {
    try {
      await lab.destroy();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** n1's configuration with a script `test -e FLAG` tracked with `weight` */
  const withScript = (kind: Kind, priority: number, weight: number, o: Partial<VrrpScriptConfig> = {}): { cfg: VrrpConfig; flag: string } => {
    const flag = join(dir, `${kind}-ok`);
    return {
      flag,
      cfg: {
        ...fast(priority, { track_script: [{ name: 'chk' }] }),
        vrrp_script: [{ name: 'chk', script: `/usr/bin/test -e ${flag}`, interval: 1, weight, ...o }],
      },
    };
  };

  for (const kind of KINDS) {
    test(`${kind}: a failing script with weight -150 lowers 200 to 50, the peer (100) preempts; passing again, the VIP comes back`, async () => {
      const { cfg, flag } = withScript(kind, 200, -150);
      writeFileSync(flag, '');
      const n1 = await lab.start(kind, 'n1', cfg);
      await n1.waitState('VI_1', 'MASTER', { timeoutMs: 5000 });
      const n2 = await lab.start('xlb', 'n2', fast(100));
      await n2.waitState('VI_1', 'BACKUP');
      await lab.waitAnswer(VIP4, 'n1');
      let mark = n1.states.length;
      rmSync(flag);
      await n1.waitState('VI_1', 'BACKUP', { since: mark, timeoutMs: 4000 });
      await n2.waitState('VI_1', 'MASTER', { timeoutMs: 2000 });
      await lab.waitAnswer(VIP4, 'n2');
      if (n1 instanceof XlbPeer) assert.equal((await n1.stats()).instances.VI_1!.priority, 50);
      mark = n1.states.length;
      writeFileSync(flag, '');
      await n1.waitState('VI_1', 'MASTER', { since: mark, timeoutMs: 4000 });
      await lab.waitAnswer(VIP4, 'n1');
      assert.ok(!lab.addresses('n2').includes(VIP4), 'the peer released the VIP');
    });

    test(`${kind}: a failing weight-0 script puts the master in FAULT and the peer takes over`, async () => {
      const { cfg, flag } = withScript(kind, 200, 0);
      writeFileSync(flag, '');
      const n1 = await lab.start(kind, 'n1', cfg);
      const n2 = await lab.start('xlb', 'n2', fast(100));
      await n1.waitState('VI_1', 'MASTER', { timeoutMs: 5000 });
      await n2.waitState('VI_1', 'BACKUP');
      const mark = n2.states.length;
      rmSync(flag);
      await n1.waitState('VI_1', 'FAULT', { timeoutMs: 4000 });
      await n2.waitState('VI_1', 'MASTER', { since: mark, timeoutMs: 2000 });
      assert.ok(!lab.addresses('n1').includes(VIP4), 'FAULT removed the VIP');
      await lab.waitAnswer(VIP4, 'n2');
    });

    test(`${kind}: an instance with a weight-0 script starts only once the script has reported`, async () => {
      const cfg: VrrpConfig = {
        ...fast(200, { track_script: [{ name: 'slow' }] }),
        vrrp_script: [{ name: 'slow', script: '/bin/sleep 1.5', interval: 5, timeout: 3 }],
      };
      const n1 = await lab.start(kind, 'n1', cfg);
      const started = Date.now();
      await sleep(700);
      assert.equal(n1.states.length, 0, 'no state while the script runs');
      const backup = await n1.waitState('VI_1', 'BACKUP', { timeoutMs: 3000 });
      assert.ok(backup.wallMs - started >= 700, `BACKUP ${backup.wallMs - started} ms after the start`);
      assert.equal(n1.states[0]!.state, 'BACKUP', 'BACKUP first, no FAULT before it');
      await n1.waitState('VI_1', 'MASTER', { timeoutMs: 2000 });
    });

    test(`${kind}: track_file value 0 then 100 (weight 1): priority 100 -> 200, n1 preempts the peer (150)`, async () => {
      const file = join(dir, `${kind}-prio`);
      writeFileSync(file, '0\n');
      const cfg: VrrpConfig = { ...fast(100, { track_file: [{ name: 'tf' }] }), vrrp_track_file: [{ name: 'tf', file, weight: 1 }] };
      const n2 = await lab.start('xlb', 'n2', fast(150));
      await n2.waitState('VI_1', 'MASTER');
      const n1 = await lab.start(kind, 'n1', cfg);
      await n1.waitState('VI_1', 'BACKUP');
      await sleep(500);
      assert.equal(n1.state('VI_1'), 'BACKUP');
      writeFileSync(file, '100\n');
      await n1.waitState('VI_1', 'MASTER', { timeoutMs: 3000 });
      await lab.waitAnswer(VIP4, 'n1');
      if (n1 instanceof XlbPeer) assert.equal((await n1.stats()).instances.VI_1!.priority, 200);
    });

    test(`${kind}: state MASTER at priority 100 starts as BACKUP: under a running master (150) it stays there; alone it takes over after the master-down interval`, async () => {
      const n2 = await lab.start('xlb', 'n2', fast(150));
      await n2.waitState('VI_1', 'MASTER');
      const n1 = await lab.start(kind, 'n1', fast(100, { state: 'MASTER' }));
      await n1.waitState('VI_1', 'BACKUP');
      await sleep(600);
      assert.deepEqual(n1.states.map((s) => s.state), ['BACKUP'], 'never MASTER');
      assert.deepEqual(n2.states.map((s) => s.state), ['BACKUP', 'MASTER'], 'the running master is not disturbed');
      await lab.reset();
      const alone = await lab.start(kind, 'n1', fast(100, { state: 'MASTER', advert_int: 1 }));
      const b = await alone.waitState('VI_1', 'BACKUP');
      const m = await alone.waitState('VI_1', 'MASTER', { timeoutMs: 6000 });
      // Master_Down_Interval = 3 * 1 s + (256 - 100) / 256 s = 3.609 s
      assert.ok(m.wallMs - b.wallMs > 3000, `MASTER ${m.wallMs - b.wallMs} ms after BACKUP`);
    });
  }
});
