/**
 * Scripts (src/vrrp/script.ts), the parts that need root: keepalived 2.2.7's security verdicts on
 * files of other owners, and running a script as another user. The rest: test/unit/vrrp-script.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lookupUser, parseGroup, prepareScript, runScript, SECURITY_VIOLATION } from '../../src/vrrp/script.ts';
import { requireRoot } from '../lib/require.ts';
import { ROOT, scriptDir } from '../lib/scripts.ts';

const { tmp, script, prepared } = scriptDir('vrrp-script-root');

test('keepalived 2.2.7\'s verdicts on 16 permission layouts, reproduced (script_user root, enable_script_security)', () => {
  requireRoot();
  const base = join(tmp, 'perm');
  const dir = (p: string, mode: number, owner?: number, group?: number) => {
    mkdirSync(join(base, p), { recursive: true });
    chmodSync(join(base, p), mode);
    if (owner !== undefined || group !== undefined) chownSync(join(base, p), owner ?? 0, group ?? 0);
  };
  const file = (p: string, mode: number, owner?: number, group?: number) => {
    writeFileSync(join(base, p), '#!/bin/sh\nexit 0\n');
    chmodSync(join(base, p), mode);
    if (owner !== undefined || group !== undefined) chownSync(join(base, p), owner ?? 0, group ?? 0);
  };
  const nobody = lookupUser('nobody');
  const nogroup = parseGroup(readFileSync('/etc/group', 'utf8')).get('nogroup');
  assert.ok(nogroup !== undefined, 'group nogroup exists');
  mkdirSync(base);
  chmodSync(base, 0o755);
  dir('d_ok', 0o755); dir('d_ww', 0o777); dir('d_sticky', 0o1777); dir('d_gw', 0o775, 0, nogroup); dir('d_gw0', 0o775);
  dir('d_nonroot', 0o755, nobody.uid); dir('d_ok/sub', 0o755);
  for (const d of ['d_ok', 'd_ww', 'd_sticky', 'd_gw', 'd_gw0', 'd_nonroot', 'd_ok/sub']) file(`${d}/s.sh`, 0o755);
  file('d_ok/fw.sh', 0o757); file('d_ok/fg.sh', 0o775, 0, nogroup); file('d_ok/fg0.sh', 0o775); file('d_ok/noexec.sh', 0o644);
  file('d_ok/fown.sh', 0o755, nobody.uid);
  symlinkSync(join(base, 'd_ww'), join(base, 'd_ok/link_ww'));
  symlinkSync(join(base, 'd_ww/s.sh'), join(base, 'd_ok/flink_ww'));
  symlinkSync(join(base, 'd_ok/s.sh'), join(base, 'd_ww/flink_ok'));

  // what keepalived 2.2.7 said: ok, "due to insecure", "not executable", "not found/accessible"
  const verdicts: [string, 'ok' | 'insecure' | 'noexec' | 'missing'][] = [
    ['d_ok/s.sh', 'ok'], ['d_ww/s.sh', 'insecure'], ['d_sticky/s.sh', 'ok'], ['d_gw/s.sh', 'insecure'], ['d_gw0/s.sh', 'ok'],
    ['d_nonroot/s.sh', 'insecure'], ['d_ok/fw.sh', 'insecure'], ['d_ok/fg.sh', 'insecure'], ['d_ok/fg0.sh', 'ok'],
    ['d_ok/noexec.sh', 'noexec'], ['d_ok/fown.sh', 'insecure'], ['d_ok/link_ww/s.sh', 'insecure'], ['d_ok/flink_ww', 'insecure'],
    ['d_ww/flink_ok', 'ok'], ['d_ok/sub/../s.sh', 'ok'], ['d_ok/missing.sh', 'missing'],
  ];
  for (const [path, verdict] of verdicts) {
    const r = prepareScript(join(base, path), { user: ROOT, scriptSecurity: true });
    const got = r.ok ? 'ok' : /Unsafe permissions/.test(r.reason) ? 'insecure' : /not executable/.test(r.reason) ? 'noexec' : /cannot be accessed/.test(r.reason) ? 'missing' : r.reason;
    assert.equal(got, verdict, `${path}: ${r.ok ? 'accepted' : r.reason}`);
  }
  // a script running as nobody needs no protection; nobody with group root does
  assert.ok(prepareScript(join(base, 'd_ww/s.sh'), { user: nobody, scriptSecurity: true }).ok);
  const grp0 = prepareScript(join(base, 'd_ww/s.sh'), { user: { ...nobody, gid: 0 }, scriptSecurity: true });
  assert.equal(grp0.ok, false);
  assert.match(grp0.ok ? '' : grp0.reason, /Unsafe permissions found for script '.*d_ww\/s\.sh' \(.*d_ww is world-writable\) - disabling\./);
  // without enable_script_security the insecure script runs, with keepalived's warnings
  const lax = prepareScript(join(base, 'd_ww/s.sh'), { user: ROOT, scriptSecurity: false });
  assert.ok(lax.ok);
  assert.deepEqual(lax.warnings, [`Unsafe permissions found for script '${join(base, 'd_ww/s.sh')}' (${join(base, 'd_ww')} is world-writable).`, SECURITY_VIOLATION]);
});

test('script_user: the script runs with the user\'s uid and gid and no supplementary groups', async () => {
  requireRoot();
  const nobody = lookupUser('nobody');
  const outDir = join(tmp, 'out');
  mkdirSync(outDir);
  chmodSync(outDir, 0o777);
  const out = join(outDir, 'id');
  const s = script('whoami.sh', 'id -u > "$1"; id -g >> "$1"; id -G >> "$1"');
  const r = await runScript(prepared(`${s} ${out}`, nobody));
  assert.equal(r.status, 'success');
  assert.equal(readFileSync(out, 'utf8'), `${nobody.uid}\n${nobody.gid}\n${nobody.gid}\n`);
  assert.ok(existsSync(out));
});
