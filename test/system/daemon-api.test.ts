/**
 * The control API (src/daemon/api.ts) with its client (src/cli/client.ts) over a real unix
 * socket, in front of a fake DaemonControl (test/lib/fake-control.ts): every route, the error
 * mapping, the socket's permissions (0600, root only: a non-root process is refused), its
 * directory, stale sockets, a second daemon, and removal on close. Needs root (to create the
 * socket as root and to try it as another user).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlServer } from '../../src/daemon/api.ts';
import { ControlError } from '../../src/daemon/control.ts';
import { ControlClient } from '../../src/cli/client.ts';
import { CliError } from '../../src/cli/io.ts';
import { lookupUser } from '../../src/vrrp/script.ts';
import { DUMP, FakeControl, RELOAD_BAD, RELOAD_OK, STATUS } from '../lib/fake-control.ts';
import { requireRoot } from '../lib/require.ts';

let base: string;

before(() => {
  requireRoot();
  base = mkdtempSync(join(tmpdir(), 'xlb-api-'));
  chmodSync(base, 0o755); // so that only the socket's own mode keeps others out
});
after(() => { if (base) rmSync(base, { recursive: true, force: true }); });

/** a raw request, for what the client does not send */
function raw(socketPath: string, method: string, path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A socket file nobody listens on: a process that bound it and was killed. */
function staleSocket(path: string): void {
  const r = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  assert.equal(r.signal, 'SIGKILL', r.stderr.toString());
  assert.ok(lstatSync(path).isSocket());
}

describe('control API over a unix socket', () => {
  let server: ControlServer;
  let fake: FakeControl;
  let client: ControlClient;
  let path: string;

  before(async () => {
    path = join(base, 'run', 'xlb', 'default.sock');
    fake = new FakeControl();
    server = await ControlServer.start({ control: fake, socketPath: path });
    client = new ControlClient(path);
  });
  after(async () => { await server?.close(); });

  test('the socket is mode 0600 in a directory created 0700', () => {
    const st = lstatSync(path);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.uid, 0);
    assert.equal(statSync(join(base, 'run', 'xlb')).mode & 0o777, 0o700);
  });

  test('every route answers through the client', async () => {
    assert.deepEqual(await client.status(), STATUS);
    const s = await client.stats();
    assert.equal(s.services.length, 2);
    assert.equal(s.services[0]!.counters.packets, 1000);
    assert.deepEqual(await client.dump(), DUMP);
    assert.deepEqual(await client.reload(), RELOAD_OK);
    assert.deepEqual(fake.calls.slice(-4), ['status', 'stats', 'dump', 'reload']);
  });

  test('a reload with errors is HTTP 422 with the whole result, and the client returns it', async () => {
    fake.reloadResult = RELOAD_BAD;
    const r = await raw(path, 'POST', '/v1/reload');
    assert.equal(r.status, 422);
    assert.deepEqual(JSON.parse(r.body), RELOAD_BAD);
    assert.deepEqual(await client.reload(), RELOAD_BAD);
    fake.reloadResult = RELOAD_OK;
  });

  test('JSON responses', async () => {
    const r = await raw(path, 'GET', '/v1/status');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.ok(r.body.endsWith('\n'));
    assert.deepEqual(JSON.parse(r.body), STATUS);
  });

  test('unknown route 404, wrong method 405 with Allow, both as error bodies', async () => {
    const nf = await raw(path, 'GET', '/v1/nothing');
    assert.equal(nf.status, 404);
    const e = JSON.parse(nf.body) as { error: { code: string; message: string } };
    assert.equal(e.error.code, 'bad_request');
    assert.match(e.error.message, /no route \/v1\/nothing \(routes: GET \/v1\/status, GET \/v1\/stats, POST \/v1\/reload, GET \/v1\/dump\)/);
    const wm = await raw(path, 'GET', '/v1/reload');
    assert.equal(wm.status, 405);
    assert.equal(wm.headers.allow, 'POST');
    assert.match(JSON.parse(wm.body).error.message, /\/v1\/reload takes POST, not GET/);
    assert.equal((await raw(path, 'POST', '/v1/status')).status, 405);
  });

  test('a request target that cannot be read is 400, and the server goes on', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const s = connect(path);
      let text = '';
      s.on('data', (c) => { text += c; });
      s.on('end', () => resolve(text));
      s.on('error', reject);
      s.write('GET //[ HTTP/1.1\r\nHost: xlb\r\nConnection: close\r\n\r\n');
    });
    assert.match(reply, /^HTTP\/1\.1 400 /);
    assert.match(reply, /"code":"bad_request","message":"cannot read the request target \\"\/\/\[\\""/);
    assert.deepEqual(await client.status(), STATUS);
  });

  test('ControlError codes map to HTTP statuses and reach the CLI as the daemon\'s message', async () => {
    for (const [code, status] of [['busy', 409], ['unavailable', 503], ['unsupported', 501]] as const) {
      fake.failNext = { method: 'reload', error: new ControlError(code, `cannot: ${code}`) };
      const r = await raw(path, 'POST', '/v1/reload');
      assert.equal(r.status, status);
      assert.deepEqual(JSON.parse(r.body), { error: { code, message: `cannot: ${code}` } });
    }
    fake.failNext = { method: 'dump', error: new ControlError('unsupported', 'no VRRP in this mode (-C)') };
    await assert.rejects(client.dump(), (e: Error) => e instanceof CliError && e.message === 'the daemon refused dump (unsupported): no VRRP in this mode (-C)');
  });

  test('an exception of the daemon is 500 internal, logged, and the server goes on', async () => {
    const logged: string[] = [];
    const p2 = join(base, 'internal.sock');
    const f2 = new FakeControl();
    const s2 = await ControlServer.start({ control: f2, socketPath: p2, log: (_l, m) => logged.push(m) });
    try {
      f2.failNext = { method: 'status', error: new TypeError('x is undefined') };
      const r = await raw(p2, 'GET', '/v1/status');
      assert.equal(r.status, 500);
      assert.deepEqual(JSON.parse(r.body), { error: { code: 'internal', message: 'x is undefined' } });
      assert.match(logged[0]!, /control API GET \/v1\/status: TypeError: x is undefined/);
      assert.equal((await raw(p2, 'GET', '/v1/status')).status, 200);
    } finally {
      await s2.close();
    }
  });

  test('a non-root user cannot connect: the socket\'s own mode refuses it (its directory lets anyone through)', async () => {
    const open = join(base, 'open.sock'); // base is 0755: only the socket's mode stands in the way
    const s = await ControlServer.start({ control: new FakeControl(), socketPath: open });
    try {
      assert.equal(lstatSync(open).mode & 0o777, 0o600);
      const nobody = lookupUser('nobody');
      const r = spawnSync(process.execPath, ['-e', `
        const s = require('net').connect(${JSON.stringify(open)});
        s.on('connect', () => { console.log('CONNECTED'); process.exit(0); });
        s.on('error', (e) => { console.log(e.code); process.exit(0); });`], { uid: nobody.uid, gid: nobody.gid, encoding: 'utf8' });
      assert.equal(r.stdout.trim(), 'EACCES', r.stderr);
      // the same user gets through once the mode allows it: the refusal was the mode's
      chmodSync(open, 0o666);
      const r2 = spawnSync(process.execPath, ['-e', `
        const s = require('net').connect(${JSON.stringify(open)});
        s.on('connect', () => { console.log('CONNECTED'); process.exit(0); });
        s.on('error', (e) => { console.log(e.code); process.exit(0); });`], { uid: nobody.uid, gid: nobody.gid, encoding: 'utf8' });
      assert.equal(r2.stdout.trim(), 'CONNECTED', r2.stderr);
    } finally {
      await s.close();
    }
  });

  test('a second daemon on the same socket is refused and the first keeps it', async () => {
    await assert.rejects(ControlServer.start({ control: new FakeControl(), socketPath: path }),
      new RegExp(`control socket ${path}: another daemon is listening on it`));
    assert.deepEqual(await client.status(), STATUS);
  });
});

describe('control socket life cycle', () => {
  test('a stale socket is replaced; the file is removed on close', async () => {
    const path = join(base, 'stale.sock');
    staleSocket(path);
    await assert.rejects(new ControlClient(path).status(), /no xlb daemon listens on .*stale\.sock \(a socket left by a daemon that stopped\)/);
    const s = await ControlServer.start({ control: new FakeControl(), socketPath: path });
    assert.equal((await new ControlClient(path).status()).pid, STATUS.pid);
    await s.close();
    assert.equal(existsSync(path), false);
  });

  test('a path that is not a socket is refused, and left alone', async () => {
    const path = join(base, 'file.sock');
    writeFileSync(path, 'keep me');
    await assert.rejects(ControlServer.start({ control: new FakeControl(), socketPath: path }), /file\.sock: the path exists and is not a socket/);
    assert.ok(lstatSync(path).isFile());
  });

  test('the client opens a connection per request and closes it (no kept-alive connection to be reused as the server closes it)', async () => {
    const path = join(base, 'keepalive.sock');
    const conns: { ended: boolean }[] = [];
    const body = JSON.stringify(STATUS);
    const raw = createNetServer((s) => {
      const c = { ended: false };
      conns.push(c);
      s.on('end', () => { c.ended = true; s.end(); });
      s.on('data', () => s.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: keep-alive\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`));
    });
    await new Promise<void>((ok) => raw.listen(path, ok));
    try {
      const c = new ControlClient(path);
      assert.equal((await c.status()).pid, STATUS.pid);
      assert.equal((await c.status()).pid, STATUS.pid);
      await new Promise((ok) => setTimeout(ok, 50));
      assert.equal(conns.length, 2, 'two requests, two connections');
      assert.ok(conns.every((x) => x.ended), 'the client closed each one');
    } finally {
      await new Promise((ok) => raw.close(ok));
    }
  });

  test('the client says what is wrong when there is no daemon, or it is too slow', async () => {
    await assert.rejects(new ControlClient(join(base, 'none.sock')).status(), /no xlb daemon: .*none\.sock does not exist \(is `xlb run` running\?/);
    const path = join(base, 'slow.sock');
    const slow = new FakeControl();
    slow.status = () => new Promise(() => {});
    const s = await ControlServer.start({ control: slow, socketPath: path });
    try {
      await assert.rejects(new ControlClient(path, { timeoutMs: 100 }).status(), /the daemon on .*slow\.sock did not answer within 0\.1 s/);
    } finally {
      await s.close();
    }
  });
});
