/**
 * Notifications (src/vrrp/notify.ts): keepalived's notify arguments and FIFO lines, run with real
 * scripts and a real FIFO in a temp dir.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fifoLine, NotifyFifo, Notifier, notifyArgs, STOP_SCRIPT_TIMEOUT_MS } from '../../src/vrrp/notify.ts';
import { prepareScript, type PreparedScript } from '../../src/vrrp/script.ts';
import { initialState, step, type FsmEvent, type FsmState } from '../../src/vrrp/fsm.ts';

const tmp = mkdtempSync('/tmp/xlb-vrrp-notify-');
after(() => rmSync(tmp, { recursive: true, force: true }));
const ME = { name: 'me', uid: process.getuid!(), gid: process.getgid!() };

function script(name: string, body: string): PreparedScript {
  const p = join(tmp, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  const r = prepareScript(p, { user: ME, scriptSecurity: false });
  assert.ok(r.ok, r.ok ? '' : r.reason);
  return r.script;
}

/** Everything a FIFO holds now, read without blocking. */
function drain(fd: number): string {
  const buf = Buffer.alloc(1 << 16);
  let out = '';
  for (;;) {
    try {
      const n = readSync(fd, buf);
      if (n <= 0) return out;
      out += buf.toString('utf8', 0, n);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return out;
      throw e;
    }
  }
}

test('FIFO lines and notify arguments have keepalived\'s format', () => {
  assert.equal(fifoLine('INSTANCE', 'VI_1', 'MASTER', 100), 'INSTANCE "VI_1" MASTER 100\n');
  assert.equal(fifoLine('GROUP', 'G1', 'FAULT', 0), 'GROUP "G1" FAULT 0\n');
  assert.equal(fifoLine('INSTANCE', 'VI_1', 'MASTER_RX_LOWER_PRI', 150), 'INSTANCE "VI_1" MASTER_RX_LOWER_PRI 150\n');
  assert.deepEqual(notifyArgs('INSTANCE', 'VI_1', 'BACKUP', 99), ['INSTANCE', 'VI_1', 'BACKUP', '99']);
});

test('a state change runs the state\'s script, the generic script with 4 arguments, and writes the FIFO line', async () => {
  const log = join(tmp, 'calls.log');
  const fifoPath = join(tmp, 'notify.fifo');
  const fifo = NotifyFifo.open(fifoPath);
  const reader = openSync(fifoPath, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const notifier = new Notifier({
      kind: 'INSTANCE', name: 'VI_1', fifos: [fifo],
      master: script('master.sh', `echo "master $*" >> ${log}`),
      backup: script('backup.sh', `echo "backup $*" >> ${log}`),
      notify: script('notify.sh', `{ printf 'notify'; printf ' [%s]' "$@"; echo; } >> ${log}`),
    });
    const ran = await notifier.state('MASTER', 100);
    assert.deepEqual(ran.map((r) => r.status), ['success', 'success']);
    await notifier.state('FAULT', 100); // no notify_fault: only the generic script
    const lines = readFileSync(log, 'utf8').split('\n').filter(Boolean).sort();
    assert.deepEqual(lines, ['master ', 'notify [INSTANCE] [VI_1] [FAULT] [100]', 'notify [INSTANCE] [VI_1] [MASTER] [100]']);
    assert.equal(drain(reader), 'INSTANCE "VI_1" MASTER 100\nINSTANCE "VI_1" FAULT 100\n');
    // events: MASTER_RX_LOWER_PRI always, priority changes only with notify_priority_changes
    await notifier.event('MASTER_RX_LOWER_PRI', 100);
    await notifier.event('MASTER_PRIORITY', 90);
    assert.equal(drain(reader), 'INSTANCE "VI_1" MASTER_RX_LOWER_PRI 100\n');
    await new Notifier({ kind: 'INSTANCE', name: 'VI_1', fifos: [fifo], priorityChanges: true }).event('BACKUP_PRIORITY', 90);
    assert.equal(drain(reader), 'INSTANCE "VI_1" BACKUP_PRIORITY 90\n');
    // a group's notification: priority 0
    await new Notifier({ kind: 'GROUP', name: 'G1', fifos: [fifo] }).state('BACKUP', 0);
    assert.equal(drain(reader), 'GROUP "G1" BACKUP 0\n');
  } finally {
    closeSync(reader);
    fifo.close();
  }
  assert.equal(existsSync(fifoPath), false, 'a FIFO we created is removed on close');
});

test('notify_stop scripts are killed after 1 s, as keepalived does', async () => {
  const notifier = new Notifier({ kind: 'INSTANCE', name: 'VI_1', stop: script('stop.sh', 'sleep 30') });
  const [r] = await notifier.state('STOP', 100);
  assert.equal(r?.status, 'timeout');
  assert.ok(r.durationMs >= STOP_SCRIPT_TIMEOUT_MS && r.durationMs < STOP_SCRIPT_TIMEOUT_MS + 9000, `${r.durationMs} ms`);
});

test('the FIFO: an existing one is used and kept, a full pipe drops lines and counts them, a non-FIFO is refused', () => {
  const path = join(tmp, 'existing.fifo');
  const first = NotifyFifo.open(path); // creates it
  const second = NotifyFifo.open(path); // uses the existing one
  second.close();
  assert.equal(existsSync(path), true, 'not ours to remove');
  let written = 0;
  while (first.write(fifoLine('INSTANCE', 'VI_1', 'MASTER', 100))) written++;
  assert.ok(written > 1000, `${written} lines fit`);
  assert.equal(first.dropped, 1);
  first.write(fifoLine('INSTANCE', 'VI_1', 'MASTER', 100));
  assert.equal(first.dropped, 2);
  first.close();
  assert.equal(existsSync(path), false);

  const plain = join(tmp, 'plain');
  writeFileSync(plain, '');
  assert.throws(() => NotifyFifo.open(plain), new RegExp(`notify fifo ${plain}: is not a FIFO - not using it`));
  assert.throws(() => NotifyFifo.open(join(tmp, 'no-dir', 'f')), /mkfifo failed/);
});

test('an instance started, taking over and stopped notifies what keepalived 2.2.7 did in the same run', async () => {
  // keepalived 2.2.7 (priority 100, notify, notify_master/backup/stop, notify_fifo) printed, in order:
  //   state-script b / notify INSTANCE VI_1 BACKUP 100 / notify ... MASTER 100 / state-script m /
  //   state-script s / notify ... STOP 100; and on the FIFO the three lines below.
  const log = join(tmp, 'run.log');
  const fifoPath = join(tmp, 'run.fifo');
  const fifo = NotifyFifo.open(fifoPath);
  const reader = openSync(fifoPath, constants.O_RDONLY | constants.O_NONBLOCK);
  const st = (arg: string) => {
    const r = prepareScript(`${join(tmp, 'st.sh')} ${arg}`, { user: ME, scriptSecurity: false });
    assert.ok(r.ok);
    return r.script;
  };
  script('st.sh', `echo "state-script $*" >> ${log}`);
  const notifier = new Notifier({
    kind: 'INSTANCE', name: 'VI_1', fifos: [fifo], master: st('m'), backup: st('b'), stop: st('s'),
    notify: script('n.sh', `{ printf 'notify'; printf ' [%s]' "$@"; echo; } >> ${log}`),
  });
  let state: FsmState = initialState({ name: 'VI_1', version: 2, priority: 100, advertIntervalMs: 1000, address: '198.18.0.1' });
  const lines: string[] = [];
  const drive = async (event: FsmEvent, now: number) => {
    const r = step(state, event, now);
    state = r.state;
    for (const a of r.actions) {
      if (a.type !== 'notify') continue;
      await notifier.state(a.state, a.priority);
      lines.push(...readFileSync(log, 'utf8').split('\n').filter(Boolean).sort());
      writeFileSync(log, '');
    }
  };
  try {
    await drive({ type: 'startup' }, 0);
    await drive({ type: 'timer', timer: 'masterDown' }, 3609.375);
    await drive({ type: 'shutdown' }, 5000);
    assert.deepEqual(lines, [
      'notify [INSTANCE] [VI_1] [BACKUP] [100]', 'state-script b',
      'notify [INSTANCE] [VI_1] [MASTER] [100]', 'state-script m',
      'notify [INSTANCE] [VI_1] [STOP] [100]', 'state-script s',
    ]);
    assert.equal(drain(reader), 'INSTANCE "VI_1" BACKUP 100\nINSTANCE "VI_1" MASTER 100\nINSTANCE "VI_1" STOP 100\n');
  } finally {
    closeSync(reader);
    fifo.close();
  }
});
