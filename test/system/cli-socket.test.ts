/**
 * The `xlb` executable (bin/xlb) against a control API server (src/daemon/api.ts) on a real unix
 * socket, with a fake daemon behind it (test/lib/fake-control.ts): the commands' output and exit
 * codes through the whole path (process, client, socket, server), and what a non-root user is
 * told. Needs root (the socket is root's, mode 0600).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlServer } from '../../src/daemon/api.ts';
import { lookupUser } from '../../src/vrrp/script.ts';
import { FakeControl, RELOAD_BAD, STATUS } from '../lib/fake-control.ts';
import { REPO, requireRoot } from '../lib/require.ts';

let dir: string;
let path: string;
let server: ControlServer;
const fake = new FakeControl();

before(async () => {
  requireRoot();
  dir = mkdtempSync(join(tmpdir(), 'xlb-cli-'));
  chmodSync(dir, 0o755);
  path = join(dir, 'test.sock');
  server = await ControlServer.start({ control: fake, socketPath: path });
});
after(async () => {
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** bin/xlb with these arguments (spawned without blocking: the server answers in this process) */
function xlb(args: string[], user?: { uid: number; gid: number }): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(REPO, 'bin/xlb'), args, { ...(user ?? {}), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { err += c; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

test('xlb status / services / reload through the socket', async () => {
  const status = await xlb(['status', '--json', '--socket', path]);
  assert.equal(status.code, 0, status.err);
  assert.deepEqual(JSON.parse(status.out), STATUS);

  const list = await xlb(['services', '-Ln', '--socket', path]);
  assert.equal(list.code, 0, list.err);
  assert.match(list.out, /^TCP {2}198\.18\.0\.10:80 wrr persistent 300 mask 255\.255\.255\.0\n {2}-> 198\.18\.1\.1:80 +Route {3}3 /m);

  fake.reloadResult = RELOAD_BAD;
  const bad = await xlb(['reload', '--socket', path]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /^\/etc\/keepalived\/keepalived\.conf:7:5: error: unknown keyword 'priorty'$/m);
  assert.match(bad.err, /nothing was changed, the running configuration stays/);
});

test('no daemon, and a user who is not root: said plainly, exit 1', async () => {
  const none = await xlb(['status', '--socket', join(dir, 'none.sock')]);
  assert.equal(none.code, 1);
  assert.match(none.err, /^xlb: no xlb daemon: .*none\.sock does not exist/);
  const nobody = lookupUser('nobody');
  const denied = await xlb(['status', '--socket', path], { uid: nobody.uid, gid: nobody.gid });
  assert.equal(denied.code, 1, denied.out);
  assert.equal(denied.err, `xlb: permission denied on ${path}: the control socket is root only (mode 0600); run as root\n`);
});
