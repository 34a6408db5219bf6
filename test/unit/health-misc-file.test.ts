/**
 * MISC_CHECK and FILE_CHECK for real (no network, so no namespace): scripts run through
 * src/vrrp/script.ts's runner from a temporary directory, files watched with inotify, each
 * through the check engine on the system clock with short delays.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HealthScheduler, checkersForReal, type HealthEvent } from '../../src/health/index.ts';
import type { AnyCheckerConfig } from '../../src/health/types.ts';

const dir = mkdtempSync(join(tmpdir(), 'xlb-health-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function script(name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

/** misc_timeout for the scripts whose tests are not about timeouts: the default (delay_loop, 0.1 s
 *  here) is shorter than a shell's start on a loaded machine. */
const LOADED_MACHINE_TIMEOUT_S = 5;

/** An engine on the system clock with one real server; `until` waits for an event that satisfies it. */
function engine(configs: AnyCheckerConfig[], weight = 3) {
  const s = new HealthScheduler({ bootstrapMs: 0 });
  const events: HealthEvent[] = [];
  const waiters: { f: (e: HealthEvent) => boolean; ok: (e: HealthEvent) => void }[] = [];
  s.on('event', (e) => {
    events.push(e);
    for (const w of [...waiters]) if (w.f(e)) { waiters.splice(waiters.indexOf(w), 1); w.ok(e); }
  });
  const { entries, refused } = checkersForReal(configs, { address: '198.18.0.11', port: 80, weight, service: { delay_loop: 0.1, warmup: 0 } });
  assert.deepEqual(refused.map((r) => r.error.message), []);
  s.addReal('r', { weight, checkers: entries });
  s.start();
  const until = (f: (e: HealthEvent) => boolean, what: string, ms = 3000) => new Promise<HealthEvent>((ok, fail) => {
    const done = events.find(f);
    if (done) return ok(done);
    const t = setTimeout(() => fail(new Error(`no ${what} event within ${ms} ms; events: ${JSON.stringify(events)}; state ${JSON.stringify(s.real('r'))}`)), ms);
    waiters.push({ f, ok: (e) => { clearTimeout(t); ok(e); } });
  });
  return { s, events, until };
}

test('MISC_CHECK: exit 0 keeps the real up, exit 1 takes it down, then exit 0 brings it back', async () => {
  const state = join(dir, 'misc-state');
  writeFileSync(state, '0');
  const p = script('misc-flip.sh', `exit $(cat ${state})`);
  const { s, until, events } = engine([{ kind: 'MISC_CHECK', config: { misc_path: p, misc_timeout: LOADED_MACHINE_TIMEOUT_S } }]);
  try {
    for (let i = 0; i < 250 && !s.real('r')?.checkers[0]?.reason; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(events, [], 'up from the start: no event');
    assert.equal(s.real('r')?.checkers[0]?.reason, 'exit 0');
    writeFileSync(state, '1');
    const down = await until((e) => e.type === 'down', 'down');
    assert.equal(down.checker.reason, 'exit 1');
    writeFileSync(state, '0');
    const up = await until((e) => e.type === 'up', 'up');
    assert.equal(up.weight, 3);
    assert.equal(s.stats.events.down, 1);
  } finally {
    s.stop();
  }
});

test('MISC_CHECK misc_dynamic: exit 12 sets the weight to 10, exit 0 back to the configured 3, exit 1 is down', async () => {
  const state = join(dir, 'dyn-state');
  writeFileSync(state, '12');
  const p = script('misc-dyn.sh', `exit $(cat ${state})`);
  const { s, until } = engine([{ kind: 'MISC_CHECK', config: { misc_path: p, misc_dynamic: true, misc_timeout: LOADED_MACHINE_TIMEOUT_S } }]);
  try {
    assert.equal((await until((e) => e.type === 'weight' && e.weight === 10, 'weight 10')).up, true);
    writeFileSync(state, '0');
    await until((e) => e.type === 'weight' && e.weight === 3, 'weight 3');
    writeFileSync(state, '1');
    await until((e) => e.type === 'down', 'down');
  } finally {
    s.stop();
  }
});

test('MISC_CHECK misc_timeout: a script that hangs fails as timed out, and its process group is killed', async () => {
  const pidFile = join(dir, 'hang.pid');
  const p = script('misc-hang.sh', `echo $$ > ${pidFile}\nexec sleep 30`);
  const { s, until } = engine([{ kind: 'MISC_CHECK', config: { misc_path: p, misc_timeout: 0.3 } }]);
  try {
    const down = await until((e) => e.type === 'down', 'down', 5000);
    assert.equal(down.checker.reason, 'timed out after 300 ms');
    const pid = Number(readFileSync(pidFile, 'utf8'));
    for (let i = 0; i < 50 && existsSync(`/proc/${pid}`) && !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(!existsSync(`/proc/${pid}`) || /^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')), `the script's process ${pid} is gone`);
  } finally {
    s.stop();
  }
});

test('MISC_CHECK: a script that does not exist is refused when the checker is made, with the reason', () => {
  const { refused, entries } = checkersForReal([{ kind: 'MISC_CHECK', config: { misc_path: join(dir, 'nope.sh') } }, { kind: 'TCP_CHECK', config: {} }],
    { address: '198.18.0.11', port: 80, weight: 1 });
  assert.equal(entries.length, 1, 'the other checker is kept');
  assert.equal(refused.length, 1);
  assert.equal(refused[0]?.index, 0);
  assert.match(refused[0]!.error.message, /nope\.sh cannot be accessed - ENOENT/);
});

test('FILE_CHECK weight 0: 0 in the file is up, anything else down; a deleted file reads 0', async () => {
  const f = join(dir, 'track0');
  writeFileSync(f, '0\n');
  const { s, until } = engine([{ kind: 'FILE_CHECK', config: { track_file: 'tf0', file: f, weight: 0 } }]);
  try {
    assert.equal(s.real('r')?.up, true);
    writeFileSync(f, '1\n');
    assert.equal((await until((e) => e.type === 'down', 'down')).checker.reason, 'value 1');
    unlinkSync(f);
    await until((e) => e.type === 'up', 'up');
  } finally {
    s.stop();
  }
});

test('FILE_CHECK with a weight: value x weight is added to the real server weight; reverse subtracts', async () => {
  const f = join(dir, 'track2');
  writeFileSync(f, '0x2\n');
  const { s, until } = engine([
    { kind: 'FILE_CHECK', config: { track_file: 'tf2', file: f, weight: 2 } },
    { kind: 'FILE_CHECK', config: { track_file: 'tf2', file: f, weight: 1, reverse: true } },
  ], 10);
  try {
    assert.equal(s.real('r')?.weight, 12, '10 + 2x2 - 2, known at start');
    writeFileSync(f, '5');
    assert.equal((await until((e) => e.type === 'weight' && e.weight === 15, 'weight 15')).up, true);
    writeFileSync(f, '-20');
    const w = await until((e) => e.type === 'weight' && e.weight === 0, 'weight 0');
    assert.equal(w.up, true, 'a weight below 0 is 0, not down');
  } finally {
    s.stop();
  }
});
