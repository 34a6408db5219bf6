/**
 * Scripts (src/vrrp/script.ts): argv splitting and the security check against what keepalived
 * 2.2.7 itself did with the same input, and real scripts in a temp dir: exit status, signals, timeouts that kill the whole
 * process group, no shell unless asked. The tests that change owners or switch users need root:
 * test/system/vrrp-script-root.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  defaultUser, insecureComponent, lookupUser, parseGroup, parsePasswd, prepareScript, runScript, SECURITY_VIOLATION,
  shellCommandLine, splitCommand,
} from '../../src/vrrp/script.ts';
import { ME, ROOT, scriptDir } from '../lib/scripts.ts';

const { tmp, script, prepared } = scriptDir('vrrp-script');

// ---------------------------------------------------------------- argv

test('splitCommand splits as keepalived 2.2.7 did: quotes group, escapes resolved first, empty quotes an argument', () => {
  // each line: a script text keepalived ran with an argv-printing script, and the argv it printed
  assert.deepEqual(splitCommand("/s o1 a 'b c' d\\ e  f"), ['/s', 'o1', 'a', 'b c', 'd', 'e', 'f']);
  assert.deepEqual(splitCommand("/s o2 x\\\"y z\\\"w 'p\\\"q' \\x41\\102\\t."), ['/s', 'o2', 'xy zw', 'p"q', 'AB', '.']);
  assert.deepEqual(splitCommand("/s o3 'it''s' \"a'b\" ''"), ['/s', 'o3', 'its', "a'b", '']);
  assert.deepEqual(splitCommand('  /usr/bin/test -f /run/flag\t'), ['/usr/bin/test', '-f', '/run/flag']);
  assert.deepEqual(splitCommand('/s \\cA\\E\\n'), ['/s', '\x01\x1b']);
});

test('splitCommand refuses what keepalived refuses: an unmatched quote, a trailing backslash, nothing at all', () => {
  assert.throws(() => splitCommand("/s 'abc"), /missing terminating '/);
  assert.throws(() => splitCommand('/s "abc'), /missing terminating "/);
  assert.throws(() => splitCommand('/s abc\\'), /backslash at the end/);
  assert.throws(() => splitCommand('   '), /command is empty/);
});

test('shellCommandLine quotes as keepalived\'s cmd_str: every argument single-quoted, a leading redirection as is', () => {
  assert.equal(shellCommandLine(['/x', "it's", 'a b']), "'/x' 'it'\\''s' 'a b'");
  assert.equal(shellCommandLine(['</dev/tcp/198.18.0.1/80']), '</dev/tcp/198.18.0.1/80');
});

// ---------------------------------------------------------------- users

test('users and groups come from passwd and group files; a missing one is named', () => {
  const files = { passwd: join(tmp, 'passwd'), group: join(tmp, 'group') };
  writeFileSync(files.passwd, 'root:x:0:0:root:/root:/bin/bash\n# comment\nsvc:x:1001:1002::/nonexistent:/usr/sbin/nologin\nbroken\n');
  writeFileSync(files.group, 'root:x:0:\nsvcgrp:x:1002:\nwheel:x:10:svc\n');
  assert.deepEqual(lookupUser('svc', undefined, files), { name: 'svc', uid: 1001, gid: 1002 });
  assert.deepEqual(lookupUser('svc', 'wheel', files), { name: 'svc', uid: 1001, gid: 10 });
  assert.throws(() => lookupUser('nobody2', undefined, files), /script user 'nobody2' does not exist/);
  assert.throws(() => lookupUser('svc', 'nogroup2', files), /script group 'nogroup2' does not exist/);
  assert.equal(parsePasswd('a:x:1:2::/:/bin/sh\na:x:3:4::/:/bin/sh\n').get('a')?.uid, 1, 'the first entry wins');
  assert.equal(parseGroup('g:x:5:\n').get('g'), 5);
});

test('the default script user: keepalived_script if it exists; else ours, unless enable_script_security', () => {
  const files = { passwd: join(tmp, 'passwd2'), group: join(tmp, 'group2') };
  writeFileSync(files.group, '');
  writeFileSync(files.passwd, `root:x:0:0::/root:/bin/sh\nme:x:${ME.uid}:${ME.gid}::/:/bin/sh\n`);
  assert.throws(() => defaultUser(true, files), /'keepalived_script' does not exist and enable_script_security is on/);
  assert.deepEqual(defaultUser(false, files), { name: ME.uid === 0 ? 'root' : 'me', uid: ME.uid, gid: ME.gid });
  writeFileSync(files.passwd, 'keepalived_script:x:998:997::/:/usr/sbin/nologin\n');
  assert.deepEqual(defaultUser(true, files), { name: 'keepalived_script', uid: 998, gid: 997 });
});

// ---------------------------------------------------------------- security


test('insecureComponent names the first unsafe component of a real path', () => {
  assert.equal(insecureComponent('/usr/bin/true'), undefined);
  assert.equal(insecureComponent('/tmp'), '/tmp is not a regular file');
  const ww = join(tmp, 'ww');
  mkdirSync(ww);
  chmodSync(ww, 0o777);
  const s = join(ww, 'x.sh');
  writeFileSync(s, '');
  const expected = ME.uid === 0 ? `${ww} is world-writable` : `${tmp} is owned by uid ${ME.uid}, not root`;
  assert.equal(insecureComponent(s), expected);
});

test('a bare name is searched in PATH (with keepalived\'s warning); an unknown one is refused', () => {
  const r = prepareScript('true --x', { user: ROOT, scriptSecurity: true, path: '/nonexistent:/usr/bin:/bin' });
  assert.ok(r.ok);
  assert.deepEqual(r.script.argv, ['/usr/bin/true', '--x']);
  assert.deepEqual(r.warnings, ['WARNING - script `true` resolved by path search to `/usr/bin/true`. Please specify full path.']);
  const missing = prepareScript('no-such-command-xlb', { user: ROOT, scriptSecurity: true });
  assert.deepEqual(missing, { ok: false, reason: 'Cannot find script no-such-command-xlb in path - disabling', warnings: [] });
});

test('scripts running as root without enable_script_security carry keepalived\'s SECURITY VIOLATION warning', () => {
  const r = prepareScript('/usr/bin/true', { user: ROOT, scriptSecurity: false });
  assert.ok(r.ok);
  assert.deepEqual(r.warnings, [SECURITY_VIOLATION]);
  assert.deepEqual(prepareScript('/usr/bin/true', { user: ROOT, scriptSecurity: true }).warnings, []);
});

test('a script text that does not split is refused with the reason', () => {
  assert.deepEqual(prepareScript("/usr/bin/true 'x", { user: ME, scriptSecurity: true }), {
    ok: false, reason: "script '/usr/bin/true 'x': missing terminating '", warnings: [],
  });
});

// ---------------------------------------------------------------- running

test('exit status 0 is success, anything else failure; extra arguments are appended', async () => {
  const out = join(tmp, 'args.out');
  const s = script('args.sh', `printf '[%s]' "$@" > ${out}; exit "$2"`);
  const ok = await runScript(prepared(`${s} x 0`), { extraArgs: ['INSTANCE', 'VI_1', 'MASTER', '100'] });
  assert.equal(ok.status, 'success');
  assert.equal(readFileSync(out, 'utf8'), '[x][0][INSTANCE][VI_1][MASTER][100]');
  const bad = await runScript(prepared(`${s} x 3`));
  assert.deepEqual([bad.status, bad.exitCode, bad.signal], ['failure', 3, null]);
});

test('a script killed by a signal is a failure', async () => {
  const s = script('killself.sh', 'kill -USR1 $$');
  const r = await runScript(prepared(s));
  assert.deepEqual([r.status, r.exitCode, r.signal], ['failure', null, 'SIGUSR1']);
});

test('timeout: the process group gets SIGTERM, what the script started included', async () => {
  const pidFile = join(tmp, 'child.pid');
  const s = script('slow.sh', `sleep 30 & echo $! > ${pidFile}; wait`);
  // 1 s: time enough for the shell to start its child and write its pid on a loaded machine
  const r = await runScript(prepared(s), { timeoutMs: 1000 });
  assert.equal(r.status, 'timeout');
  assert.ok(r.durationMs >= 1000 && r.durationMs < 10000, `${r.durationMs} ms`);
  assert.ok(existsSync(pidFile), 'the script did not get to start its child within the 1 s timeout');
  const child = Number(readFileSync(pidFile, 'utf8'));
  const deadline = Date.now() + 10000;
  while (alive(child) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
  assert.equal(alive(child), false, `sleep (pid ${child}) was left running`);
});

test('timeout: a script that ignores SIGTERM is killed after the grace period', async () => {
  const s = script('stubborn.sh', "trap '' TERM; while :; do sleep 0.05; done");
  // 1 s: time enough for the shell to set its trap on a loaded machine
  const r = await runScript(prepared(s), { timeoutMs: 1000, killGraceMs: 300 });
  assert.deepEqual([r.status, r.signal], ['timeout', 'SIGKILL']);
  assert.ok(r.durationMs >= 1300 && r.durationMs < 10000, `${r.durationMs} ms`);
});

/** running (a zombie waiting for whoever adopted it to reap it does not count) */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

test('no shell unless asked: shell syntax in a script text is just arguments', async () => {
  const out = join(tmp, 'noshell.out');
  const s = script('noshell.sh', `printf '[%s]' "$@" > ${out}`);
  assert.equal((await runScript(prepared(`${s} $HOME ; exit 1 | x`))).status, 'success');
  assert.equal(readFileSync(out, 'utf8'), '[$HOME][;][exit][1][|][x]');
  // asked for: the text goes to /bin/sh -c as written
  const r = await runScript(prepared(`exit $(echo 4) | cat; exit 5`, ME, true));
  assert.deepEqual([r.status, r.exitCode], ['failure', 5]);
  // keepalived's "</path" test runs in a shell too
  assert.equal((await runScript(prepared('</etc/hostname'))).status, 'success');
  assert.equal((await runScript(prepared(`</${tmp}/no-such-file`))).status, 'failure');
});

test('a script that cannot be started is status error, with the system\'s code', async () => {
  const s = join(tmp, 'badinterp.sh');
  writeFileSync(s, '#!/nonexistent/interpreter\n');
  chmodSync(s, 0o755);
  const r = await runScript(prepared(s));
  assert.equal(r.status, 'error');
  assert.equal(r.error?.code, 'ENOENT');
});

