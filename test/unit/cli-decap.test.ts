/**
 * The `xlb` command line with fake operations (no root, no kernel): argument parsing and
 * validation, what each command calls, its output and exit code, help for every command, option
 * and argument; and the bin/xlb launcher through a symlink from another directory.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { buildProgram, runCli } from '../../src/cli/program.ts';
import type { DecapOps } from '../../src/cli/decap.ts';
import type { CliIo } from '../../src/cli/io.ts';
import { DECAP_COUNTER_NAMES, formatPrefix, parsePrefix, type DecapStatus } from '../../src/datapath/xdp/decap.ts';
import { REPO } from '../lib/require.ts';

interface Run { code: number; out: string; err: string; calls: unknown[][] }

function status(over: Partial<DecapStatus> = {}): DecapStatus {
  const counters = Object.fromEntries(DECAP_COUNTER_NAMES.map((n, i) => [n, BigInt(i * 10)])) as DecapStatus['counters'];
  return {
    ifname: 'eth0', netns: 4026531840, pinDir: '/sys/fs/bpf/xlb/decap/4026531840-eth0', ifindex: 2, attached: true,
    mode: 'native', progId: 77, filter: true, allowSrc: ['198.18.0.0/24'], counters, ...over,
  };
}

async function run(argv: string[], opts: { root?: boolean; ops?: Partial<DecapOps> } = {}): Promise<Run> {
  const r: Run = { code: -1, out: '', err: '', calls: [] };
  const io: CliIo = { out: (t) => { r.out += t; }, err: (t) => { r.err += t; }, isRoot: () => opts.root ?? true };
  const ops: DecapOps = {
    attach: async (...a) => { r.calls.push(['attach', ...a]); return status({ mode: a[1].mode, allowSrc: a[1].allowSrc, filter: a[1].allowSrc.length > 0 }); },
    detach: async (...a) => { r.calls.push(['detach', ...a]); return { ifname: a[0], detached: true }; },
    status: async (...a) => { r.calls.push(['status', ...a]); return [status()]; },
    ...opts.ops,
  };
  r.code = await runCli(argv, io, { decap: ops });
  return r;
}

describe('xlb decap attach', () => {
  test('defaults: native mode, every source', async () => {
    const r = await run(['decap', 'attach', 'eth0']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls, [['attach', 'eth0', { mode: 'native', allowSrc: [] }]]);
    assert.match(r.out, /^xlb decap: attached to eth0 \(ifindex 2, native mode, program id 77\); allowed sources: any; pinned at \/sys\/fs\/bpf\/xlb\/decap\/4026531840-eth0\n$/);
  });

  test('--mode generic and --allow-src, variadic and repeated, in order', async () => {
    const r = await run(['decap', 'attach', 'veth1', '--mode', 'generic', '--allow-src', '198.18.0.0/24', 'fd00::/64', '--allow-src', '10.1.2.3']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls, [['attach', 'veth1', { mode: 'generic', allowSrc: ['198.18.0.0/24', 'fd00::/64', '10.1.2.3'] }]]);
    assert.match(r.out, /generic mode.*allowed sources: 198\.18\.0\.0\/24, fd00::\/64, 10\.1\.2\.3;/);
  });

  const refused: [string, string[], RegExp][] = [
    ['a mode that is not native or generic', ['decap', 'attach', 'eth0', '--mode', 'offload'], /argument 'offload' is invalid\. Allowed choices are native, generic/],
    ['a prefix length out of range', ['decap', 'attach', 'eth0', '--allow-src', '198.18.0.0/33'], /'198\.18\.0\.0\/33': the prefix length 33 is not in 0\.\.32/],
    ['host bits set', ['decap', 'attach', 'eth0', '--allow-src', 'fd00::1/64'], /did you mean fd00::\/64\?/],
    ['not an address', ['decap', 'attach', 'eth0', '--allow-src', 'eth1'], /'eth1' is not an IPv4 or IPv6 address/],
    ['--allow-src without a value', ['decap', 'attach', 'eth0', '--allow-src'], /option '--allow-src <cidr\.\.\.>' argument missing/],
    ['no interface', ['decap', 'attach'], /missing required argument 'ifname'/],
    ['an unknown option', ['decap', 'attach', 'eth0', '--force'], /unknown option '--force'/],
  ];
  for (const [what, argv, message] of refused) {
    test(`refused before anything is done: ${what}`, async () => {
      const r = await run(argv);
      assert.equal(r.code, 1);
      assert.match(r.err, message);
      assert.deepEqual(r.calls, []);
    });
  }

  test('not root: refused with what it needs', async () => {
    const r = await run(['decap', 'attach', 'eth0'], { root: false });
    assert.equal(r.code, 1);
    assert.equal(r.err, 'xlb: xlb decap attach needs root (it loads BPF programs and attaches XDP): run it as root\n');
    assert.deepEqual(r.calls, []);
  });

  test('an error from the operation: its message and code, exit 1', async () => {
    const err = Object.assign(new Error("interface 'eth9' does not exist in this network namespace"), { code: 'ENODEV', errno: 19, syscall: 'RTM_GETLINK' });
    const r = await run(['decap', 'attach', 'eth9'], { ops: { attach: async () => { throw err; } } });
    assert.equal(r.code, 1);
    assert.equal(r.err, "xlb: interface 'eth9' does not exist in this network namespace (ENODEV)\n");
    assert.equal(r.out, '');
  });
});

describe('xlb decap detach', () => {
  test('detached', async () => {
    const r = await run(['decap', 'detach', 'eth0']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls, [['detach', 'eth0']]);
    assert.equal(r.out, 'xlb decap: detached from eth0; pins removed\n');
  });

  test('nothing attached any more: says why', async () => {
    const r = await run(['decap', 'detach', 'eth0'], { ops: { detach: async (ifname) => ({ ifname, detached: false, note: 'eth0 no longer exists' }) } });
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, 'xlb decap: nothing was detached from eth0 (eth0 no longer exists); pins removed\n');
  });

  test('not root', async () => {
    const r = await run(['decap', 'detach', 'eth0'], { root: false });
    assert.equal(r.code, 1);
    assert.match(r.err, /xlb decap detach needs root/);
  });
});

describe('xlb decap status', () => {
  test('a table: where, sources, pins, every counter right-aligned', async () => {
    const r = await run(['decap', 'status']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls, [['status', undefined]]);
    const lines = r.out.trimEnd().split('\n');
    assert.equal(lines[0], 'eth0: attached, native mode, ifindex 2, program id 77');
    assert.equal(lines[1], '  allowed sources: 198.18.0.0/24');
    assert.equal(lines[2], '  pins: /sys/fs/bpf/xlb/decap/4026531840-eth0');
    assert.deepEqual(lines.slice(3).map((l) => l.trim().split(/\s+/)), DECAP_COUNTER_NAMES.map((n, i) => [n, String(i * 10)]));
    assert.equal(new Set(lines.slice(3).map((l) => l.length)).size, 1, 'aligned columns');
  });

  test('one interface, --json: numbers for counters', async () => {
    const r = await run(['decap', 'status', 'eth0', '--json']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls, [['status', 'eth0']]);
    const j = JSON.parse(r.out) as { interfaces: Record<string, unknown>[] };
    assert.equal(j.interfaces.length, 1);
    assert.deepEqual(j.interfaces[0], {
      ifname: 'eth0', netns: 4026531840, pinDir: '/sys/fs/bpf/xlb/decap/4026531840-eth0', ifindex: 2, attached: true,
      mode: 'native', progId: 77, filter: true, allowSrc: ['198.18.0.0/24'],
      counters: Object.fromEntries(DECAP_COUNTER_NAMES.map((n, i) => [n, i * 10])),
    });
  });

  test('states: not attached, interface gone, filter off, nothing at all', async () => {
    const list = [
      status({ ifname: 'a', attached: false, mode: null }),
      status({ ifname: 'b', ifindex: null, attached: false, mode: null, filter: false, allowSrc: [] }),
    ];
    let r = await run(['decap', 'status'], { ops: { status: async () => list } });
    assert.match(r.out, /^a: NOT attached \(ifindex 2\), program id 77$/m);
    assert.match(r.out, /^b: interface gone, program id 77\n {2}allowed sources: any$/m);
    r = await run(['decap', 'status'], { ops: { status: async () => [] } });
    assert.equal(r.out, 'xlb decap is not attached to any interface of this network namespace\n');
    r = await run(['decap', 'status', '--json'], { ops: { status: async () => [] } });
    assert.deepEqual(JSON.parse(r.out), { interfaces: [] });
  });
});

describe('help and usage', () => {
  /** every command below the root, depth first */
  function commands(c: Command): Command[] {
    return c.commands.flatMap((s) => [s, ...commands(s)]);
  }

  test('every command, option and argument has a description', () => {
    const program = buildProgram();
    const all = commands(program);
    const names = all.map((c) => c.name());
    for (const n of ['decap', 'attach', 'detach', 'status']) assert.ok(names.includes(n), `xlb has ${n}: ${names.join(' ')}`);
    for (const c of [program, ...all]) {
      assert.ok(c.description().length > 10, `command ${c.name()}: description`);
      for (const o of c.options) assert.ok(o.description.length > 10, `${c.name()} ${o.flags}: description`);
      for (const a of c.registeredArguments) assert.ok(a.description.length > 10, `${c.name()} <${a.name()}>: description`);
    }
  });

  const helps: [string[], RegExp[]][] = [
    [['--help'], [/^Usage: xlb \[options\] \[command\]/, /decap +decapsulate/]],
    [['decap', '--help'], [/Usage: xlb decap/, /attach/, /detach/, /status/, /nsenter --net=\/run\/netns\/NAME/]],
    [['decap', 'attach', '--help'], [/<ifname>/, /--mode <mode>[\s\S]*choices: "native", "generic"/, /--allow-src <cidr\.\.\.>/, /Example:/]],
    [['decap', 'detach', '--help'], [/Usage: xlb decap detach \[options\] <ifname>/, /remove its pins/]],
    [['decap', 'status', '--help'], [/Usage: xlb decap status \[options\] \[ifname\]/, /--json/]],
    [['help', 'decap'], [/Usage: xlb decap/]],
  ];
  for (const [argv, patterns] of helps) {
    test(`xlb ${argv.join(' ')}: help on stdout, exit 0`, async () => {
      const r = await run(argv);
      assert.equal(r.code, 0, `stderr: ${r.err} stdout: ${r.out}`);
      for (const p of patterns) assert.match(r.out, p);
      assert.deepEqual(r.calls, []);
    });
  }

  test('no command, or an unknown one: usage on stderr, exit 1', async () => {
    let r = await run([]);
    assert.equal(r.code, 1);
    assert.match(r.err, /Usage: xlb/);
    r = await run(['decapitate']);
    assert.equal(r.code, 1);
    assert.match(r.err, /unknown command 'decapitate'/);
    r = await run(['decap', 'frobnicate']);
    assert.equal(r.code, 1);
    assert.match(r.err, /unknown command 'frobnicate'/);
  });
});

describe('prefixes (--allow-src)', () => {
  test('accepted: normalised to address/length', () => {
    const cases: [string, string][] = [
      ['198.18.0.0/15', '198.18.0.0/15'], ['10.1.2.3', '10.1.2.3/32'], ['0.0.0.0/0', '0.0.0.0/0'],
      ['FD00:0:0::/8', 'fd00::/8'], ['fd00::1', 'fd00::1/128'], ['::/0', '::/0'], ['::ffff:198.18.0.0/112', '::ffff:c612:0/112'],
    ];
    for (const [text, want] of cases) {
      const p = parsePrefix(text);
      assert.equal(formatPrefix(p), want, text);
      assert.equal(p.addr.length, p.family === 4 ? 4 : 16);
    }
  });

  test('bits past the length: every bit position is checked', () => {
    for (let len = 0; len < 32; len++) {
      const addr = Buffer.alloc(4);
      addr.writeUInt32BE((2 ** (31 - len)) >>> 0);
      assert.throws(() => parsePrefix(`${Array.from(addr).join('.')}/${len}`), /bits set past the prefix length/, `/${len}`);
      assert.doesNotThrow(() => parsePrefix(`${Array.from(addr).join('.')}/${len + 1}`), `/${len + 1}`);
    }
  });
});

test('bin/xlb runs from another directory through a symlink', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xlb-cli-'));
  try {
    symlinkSync(resolve(REPO, 'bin/xlb'), join(dir, 'xlb'));
    const r = spawnSync(join(dir, 'xlb'), ['decap', 'status', '--help'], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Usage: xlb decap status/);
    const bad = spawnSync(join(dir, 'xlb'), ['decap', 'attach', 'eth0', '--mode', 'x'], { cwd: dir, encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /Allowed choices are native, generic/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
