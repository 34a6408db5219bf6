/**
 * track_script / track_file: their configuration (src/vrrp/config.ts: vrrp_script,
 * vrrp_track_file, an instance's track_script / track_file with keepalived's defaults and weight
 * overrides) and the check runner (src/vrrp/checks.ts) on a manual clock with a scripted `run`:
 * the interval counted from each launch, a run still going not started twice, the timeout
 * handed to the run, rise/fall through track.ts, a refused script disabled, a file's value read
 * and followed when the file changes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/util/clock.ts';
import { TrackChecks } from '../../src/vrrp/checks.ts';
import { resolveConfig, type VrrpConfig, type VrrpInstanceConfig } from '../../src/vrrp/config.ts';
import type { PreparedScript, RunOptions, RunOutcome } from '../../src/vrrp/script.ts';

const inst = (o: Partial<VrrpInstanceConfig> = {}): VrrpInstanceConfig => ({
  name: 'VI_1', interface: 'eth0', virtual_router_id: 51, virtual_ipaddress: [{ address: '198.18.0.100' }], ...o,
});
const ME = { name: 'me', uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };

test('vrrp_script and vrrp_track_file: keepalived defaults, weights from the definition unless the instance gives one', () => {
  const c: VrrpConfig = {
    vrrp_script: [
      { name: 'chk', script: '/bin/true', weight: -20 },
      { name: 'slow', script: '/bin/true', interval: 2, timeout: 0.5, rise: 3, fall: 2, init_fail: true, user: 'nobody nogroup', weight: 10, weight_reverse: true },
      { name: 'unused', script: '/bin/false' },
    ],
    vrrp_track_file: [{ name: 'tf', file: '/run/xlb/prio' }],
    vrrp_instance: [inst({ track_script: [{ name: 'chk' }, { name: 'slow', weight: 0 }], track_file: [{ name: 'tf', weight: -3, reverse: true }] })],
  };
  const r = resolveConfig(c);
  assert.deepEqual(r.scripts, [
    { name: 'chk', script: '/bin/true', intervalMs: 1000, timeoutMs: 1000, rise: 1, fall: 1, initFail: false },
    { name: 'slow', script: '/bin/true', intervalMs: 2000, timeoutMs: 500, rise: 3, fall: 2, initFail: true, user: { user: 'nobody', group: 'nogroup' } },
  ], 'an untracked script is not run');
  assert.deepEqual(r.files, [{ name: 'tf', file: '/run/xlb/prio' }]);
  const i = r.instances[0]!;
  assert.deepEqual(i.trackScripts, [{ name: 'chk', weight: -20, reverse: false }, { name: 'slow', weight: 0, reverse: false }]);
  assert.deepEqual(i.trackFiles, [{ name: 'tf', weight: -3, reverse: true }]);
  // a file's default weight is 1 (keepalived)
  assert.deepEqual(resolveConfig({ ...c, vrrp_instance: [inst({ track_file: [{ name: 'tf' }] })] }).instances[0]!.trackFiles, [{ name: 'tf', weight: 1, reverse: false }]);
});

test('track_script / track_file errors name the instance or the definition and the keyword', () => {
  const bad = (c: Partial<VrrpConfig>, re: RegExp) => assert.throws(() => resolveConfig({ vrrp_instance: [inst()], ...c }), re);
  bad({ vrrp_instance: [inst({ track_script: [{ name: 'nope' }] })] }, /vrrp_instance VI_1: track_script nope: no vrrp_script of that name/);
  bad({ vrrp_instance: [inst({ track_file: [{ name: 'nope' }] })] }, /vrrp_instance VI_1: track_file nope: no vrrp_track_file of that name/);
  bad({ vrrp_script: [{ name: 'chk', script: '/bin/true' }], vrrp_instance: [inst({ track_script: [{ name: 'chk', weight: 254 }] })] }, /track_script chk weight 254 is not an integer in -253..253/);
  bad({ vrrp_script: [{ name: 'chk', script: ' ' }] }, /vrrp_script chk: script must be a command line/);
  bad({ vrrp_script: [{ name: 'chk', script: '/bin/true', rise: 0 }] }, /vrrp_script chk: rise 0 is not an integer/);
  bad({ vrrp_script: [{ name: 'chk', script: '/bin/true' }, { name: 'chk', script: '/bin/false' }] }, /vrrp_script chk: defined twice/);
  bad({ vrrp_track_file: [{ name: 'tf', file: 'rel/path' }] }, /vrrp_track_file tf: file 'rel\/path' must be an absolute path/);
  bad({ vrrp_track_file: [{ name: 'tf', file: '/x', weight: 255 }] }, /vrrp_track_file tf: weight 255 is not an integer in -254..254/);
});

/** A `run` whose outcomes the test decides: each launch waits until `finish` is called. */
function scriptedRuns() {
  const launched: { at: number; opts: RunOptions; finish: (status: RunOutcome['status']) => void }[] = [];
  const run = (_s: PreparedScript, opts: RunOptions) => new Promise<RunOutcome>((resolve) => {
    launched.push({ at: opts.clock!.now(), opts, finish: (status) => resolve({ status, exitCode: status === 'success' ? 0 : 1, signal: null, durationMs: 0 }) });
  });
  return { launched, run };
}

const tick = () => new Promise((ok) => setImmediate(ok));

test('vrrp_script runs: every interval from the launch, never two at once, the timeout given, rise/fall deciding the state', async () => {
  const clock = new ManualClock(0);
  const { launched, run } = scriptedRuns();
  const checks = new TrackChecks({
    scripts: [{ name: 'chk', script: '/bin/true', intervalMs: 1000, timeoutMs: 300, rise: 2, fall: 2, initFail: false }],
    files: [], userOf: () => ME, scriptSecurity: false, run,
  }, clock);
  let changes = 0;
  checks.on('change', () => changes++);
  const logs: string[] = [];
  checks.on('log', (_l, m) => logs.push(m));
  checks.start();
  assert.equal(checks.scriptState('chk'), 'init');
  assert.deepEqual(launched.map((l) => [l.at, l.opts.timeoutMs]), [[0, 300]], 'the first run at start, with the timeout');
  launched[0]!.finish('success');
  await tick();
  assert.equal(checks.scriptState('chk'), 'ok', 'the first result decides (counter starts at rise - 1)');
  assert.equal(changes, 1);
  clock.advance(1000);
  assert.equal(launched.length, 2);
  clock.advance(1000); // the second run has not finished: no third at once
  assert.equal(launched.length, 2);
  assert.ok(logs.some((m) => m.includes('vrrp_script chk is still running: this run is skipped')));
  launched[1]!.finish('timeout');
  await tick();
  assert.equal(checks.scriptState('chk'), 'ok', 'one failure of fall 2');
  clock.advance(1000);
  assert.equal(launched[2]!.at, 3000, 'launches stay on the interval grid');
  launched[2]!.finish('failure');
  await tick();
  assert.equal(checks.scriptState('chk'), 'failed');
  assert.equal(changes, 2);
  clock.advance(1000);
  launched[3]!.finish('success');
  await tick();
  assert.equal(checks.scriptState('chk'), 'failed', 'one success of rise 2');
  clock.advance(1000);
  launched[4]!.finish('success');
  await tick();
  assert.equal(checks.scriptState('chk'), 'ok');
  checks.stop();
  assert.equal(clock.pending, 0, 'stop clears the timer');
});

test('a script refused by enable_script_security is disabled (tracked by nobody), with the reason logged', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xlb-checks-'));
  try {
    const file = join(dir, 'chk.sh');
    writeFileSync(file, '#!/bin/sh\nexit 0\n');
    chmodSync(file, 0o777); // world-writable, to run as root
    const logs: string[] = [];
    const checks = new TrackChecks({
      scripts: [{ name: 'chk', script: file, intervalMs: 1000, timeoutMs: 1000, rise: 1, fall: 1, initFail: false }],
      files: [], userOf: () => ({ name: 'root', uid: 0, gid: 0 }), scriptSecurity: true, run: () => { throw new Error('must not run'); },
    }, new ManualClock(0));
    checks.on('log', (_l, m) => logs.push(m));
    checks.start();
    assert.equal(checks.scriptState('chk'), undefined);
    assert.ok(logs.some((m) => m.startsWith(`vrrp_script chk '${file}' disabled: Unsafe permissions`)), logs.join('\n'));
    checks.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('track_file: the value at start, then each change of the file (written, replaced, removed: 0)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xlb-checks-'));
  const checks = new TrackChecks({ scripts: [], files: [{ name: 'tf', file: join(dir, 'prio') }], userOf: () => ME, scriptSecurity: false }, new ManualClock(0));
  try {
    writeFileSync(join(dir, 'prio'), '7\n');
    checks.start();
    assert.equal(checks.fileValue('tf'), 7);
    const next = () => new Promise<void>((ok, fail) => {
      const t = setTimeout(() => fail(new Error('no change event within 2 s')), 2000);
      checks.once('change', () => { clearTimeout(t); ok(); });
    });
    let changed = next();
    writeFileSync(join(dir, 'prio'), '-0x10');
    await changed;
    assert.equal(checks.fileValue('tf'), -16);
    changed = next();
    writeFileSync(join(dir, 'new'), '300');
    renameSync(join(dir, 'new'), join(dir, 'prio'));
    await changed;
    assert.equal(checks.fileValue('tf'), 254, 'capped');
    changed = next();
    rmSync(join(dir, 'prio'));
    await changed;
    assert.equal(checks.fileValue('tf'), 0, 'a missing file is 0');
  } finally {
    checks.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
