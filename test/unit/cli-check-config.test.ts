/**
 * `xlb check-config` through runCli with a captured CliIo: problems as file:line:col lines, the
 * summary, --json, --config-id, and keepalived --config-test's exit codes.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli/program.ts';
import type { CliIo } from '../../src/cli/io.ts';
import type { DecapOps } from '../../src/cli/decap.ts';
import { REPO } from '../lib/require.ts';

const dir = mkdtempSync(join(tmpdir(), 'xlb-check-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const noDecap = new Proxy({}, { get: () => () => { throw new Error('decap is not used here'); } }) as DecapOps;

async function run(argv: string[]) {
  const r = { code: -1, out: '', err: '' };
  const io: CliIo = { out: (t) => { r.out += t; }, err: (t) => { r.err += t; }, isRoot: () => false };
  r.code = await runCli(argv, io, { decap: noDecap });
  return r;
}

const INSTANCE = 'vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  virtual_ipaddress {\n    198.18.0.1/24\n  }\n}\n';

describe('xlb check-config', () => {
  test('a clean configuration: nothing on stdout, OK, exit 0 (no root needed)', async () => {
    const r = await run(['check-config', '-f', join(REPO, 'test/fixtures/config/sync-group.conf')]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, '');
    assert.match(r.err, /^xlb check-config: .*sync-group\.conf: OK \(exit 0\)\n$/);
  });

  test('every problem as file:line:col: severity: message, then the counts; exit 5', async () => {
    const f = file('bad.conf', `global_defs {\n  vrrp_version 4\n  smtp_server 198.18.0.9\n}\n${INSTANCE}bogus\n`);
    const r = await run(['check-config', '--use-file', f]);
    assert.equal(r.code, 5);
    assert.equal(r.out, [
      `${f}:2:16: error: vrrp_version 4: value out of range: 2..3`,
      `${f}:3:3: warning: smtp_server: not implemented by xlb, ignored (xlb sends no e-mail; use notify scripts or the notify FIFO)`,
      `${f}:12:1: error: Unknown keyword 'bogus'`,
      '',
    ].join('\n'));
    assert.equal(r.err, `xlb check-config: ${f}: 2 errors, 1 warning (exit 5)\n`);
  });

  test('exit codes: 2 for a missing parameter, 4 for a missing file or unsupported keyword, 6 for include_check', async () => {
    assert.equal((await run(['check-config', '-f', file('abort.conf', 'vrrp_instance VI_1 {\n  priority\n}\n')])).code, 2);
    const missing = await run(['check-config', '-f', join(dir, 'nope.conf')]);
    assert.equal(missing.code, 4);
    assert.match(missing.err, /1 error, 0 warnings; not usable \(exit 4\)/);
    assert.equal((await run(['check-config', '-f', file('strict.conf', `global_defs {\n  vrrp_strict\n}\n${INSTANCE}`)])).code, 4);
    assert.equal((await run(['check-config', '-f', file('inc.conf', `global_defs {\n  include_check\n}\ninclude none.conf\n${INSTANCE}`)])).code, 6);
  });

  test('--json: one object with the exit code, whether the config is usable and the problems', async () => {
    const f = file('json.conf', `${INSTANCE}vrrp_instance VI_1 {\n}\n`);
    const r = await run(['check-config', '-f', f, '--json']);
    assert.equal(r.code, 5);
    assert.equal(r.err, '');
    assert.deepEqual(JSON.parse(r.out), {
      file: f, exitCode: 5, usable: true,
      problems: [{ file: f, line: 8, col: 15, severity: 'error', class: 'general_error', keyword: 'vrrp_instance',
        message: `vrrp_instance VI_1 is already defined (at ${f}:1:1) - skipping this one` }],
    });
  });

  test('--config-id selects the @ID lines', async () => {
    const f = file('id.conf', 'vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n@lb1 priority 200\n@lb2 priority 300\n  virtual_ipaddress {\n    198.18.0.1/24\n  }\n}\n');
    assert.equal((await run(['check-config', '-f', f, '--config-id', 'lb1'])).code, 0);
    const r = await run(['check-config', '-f', f, '-i', 'lb2']);
    assert.equal(r.code, 5);
    assert.equal(r.out, `${f}:5:15: error: priority 300: value out of range: 1..255\n`);
  });

  test('--help lists the options and the exit codes', async () => {
    const r = await run(['check-config', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.out, /-f, --use-file <file>/);
    assert.match(r.out, /--config-id <id>/);
    assert.match(r.out, /--json/);
    assert.match(r.out, /6 {2}script security/);
  });
});
