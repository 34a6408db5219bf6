/**
 * A temp dir of shell scripts for the script-runner tests (src/vrrp/script.ts): `script()` writes
 * one, `prepared()` prepares its command line as a given user without script security.
 * The dir is removed after the test file.
 */
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prepareScript, type PreparedScript, type ScriptUser } from '../../src/vrrp/script.ts';

export const ME: ScriptUser = { name: 'me', uid: process.getuid!(), gid: process.getgid!() };
export const ROOT: ScriptUser = { name: 'root', uid: 0, gid: 0 };

export function scriptDir(tag: string) {
  const tmp = mkdtempSync(`/tmp/xlb-${tag}-`);
  chmodSync(tmp, 0o755);
  after(() => rmSync(tmp, { recursive: true, force: true }));
  return {
    tmp,
    script(name: string, body: string, mode = 0o755): string {
      const p = join(tmp, name);
      writeFileSync(p, `#!/bin/sh\n${body}\n`);
      chmodSync(p, mode);
      return p;
    },
    prepared(command: string, user: ScriptUser = ME, shell = false): PreparedScript {
      const r = prepareScript(command, { user, scriptSecurity: false, shell });
      assert.ok(r.ok, r.ok ? '' : r.reason);
      return r.script;
    },
  };
}
