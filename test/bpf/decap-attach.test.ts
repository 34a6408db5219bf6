/**
 * `xlb decap` as a user runs it on a real server: bin/xlb in network namespaces of our own, entered
 * with nsenter (which keeps /sys/fs/bpf visible). Two namespaces joined by a veth pair, each end
 * named eth0, so the pins must tell the namespaces apart.
 *
 *   A (198.18.0.1, fd00::1; VIP 198.18.0.100 and fd00::100 on lo)  eth0 ══ eth0  B (198.18.0.2, .3, fd00::2)
 *
 * Steps (in order, each building on the last): attach in A (native, allowed sources) and in B
 * (generic); real IP-in-IP traffic from B (raw sockets: the kernel writes the outer header) is
 * decapsulated in A and delivered to a UDP socket on the VIP, a packet from a source that is not
 * allowed is dropped; status (table and JSON) agrees; the errors a user meets; detach; stale pins
 * (program removed behind our back, interface deleted) are cleaned up.
 *
 * Needs root, a build, iproute2, nsenter/setpriv (util-linux) and python3 (for the raw sockets).
 * Cleanup on every exit path: the namespaces, their pins, the listener.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ADDON_PATH } from '../../src/datapath/bpf/index.ts';
import { DECAP_OBJECT, DECAP_PIN_ROOT } from '../../src/datapath/xdp/decap.ts';
import { destroyNamespaces, ip, onCleanup, randomPrefix } from '../../scripts/lab/netns.ts';
import { BASELINE_OBJECT, REPO, requireCommand, requireFile, requireRoot } from '../lib/require.ts';
import { ipv4, ipv6, packet, udp } from '../lib/packets.ts';

const XLB = resolve(REPO, 'bin/xlb');
const PREFIX = randomPrefix('xlbdc');
const A = `${PREFIX}-a`;
const B = `${PREFIX}-b`;
const VIP4 = '198.18.0.100';
const VIP6 = 'fd00::100';
const PORT = 9999;

interface Run { code: number | null; out: string; err: string }

/** bin/xlb in a namespace, entered as the CLI's help says */
function xlb(ns: string, args: string[]): Run {
  const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, XLB, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function ok(ns: string, args: string[]): string {
  const r = xlb(ns, args);
  assert.equal(r.code, 0, `xlb ${args.join(' ')} in ${ns}: exit ${r.code}\n${r.err}`);
  return r.out;
}

function fails(ns: string, args: string[], message: RegExp): Run {
  const r = xlb(ns, args);
  assert.equal(r.code, 1, `xlb ${args.join(' ')}: should fail\n${r.out}${r.err}`);
  assert.match(r.err, message);
  return r;
}

interface StatusJson {
  interfaces: {
    ifname: string; netns: number; pinDir: string; ifindex: number | null; attached: boolean; mode: string | null; progId: number;
    filter: boolean; allowSrc: string[]; counters: Record<string, number>;
  }[];
}

const statusJson = (ns: string, ...ifname: string[]) => JSON.parse(ok(ns, ['decap', 'status', ...ifname, '--json'])) as StatusJson;

const inode = (ns: string) => statSync(`/run/netns/${ns}`).ino;
const pinDirOf = (ns: string) => `${DECAP_PIN_ROOT}/${inode(ns)}-eth0`;

interface XdpLink { ifindex: number; xdp?: { mode: number; prog?: { id: number; name: string } } }
const linkOf = (ns: string) => (JSON.parse(ip(['-j', '-d', 'link', 'show', 'dev', 'eth0'], ns)) as XdpLink[])[0];
const xdpOf = (ns: string) => linkOf(ns)?.xdp;

/** Send a raw IP payload from B: the kernel adds the outer header (protocol 4 or 41). */
const SEND_PY = `
import socket, sys
dst, src, proto, data = sys.argv[1], sys.argv[2], int(sys.argv[3]), bytes.fromhex(sys.argv[4])
s = socket.socket(socket.AF_INET6 if ':' in dst else socket.AF_INET, socket.SOCK_RAW, proto)
if src != '-':
    s.bind((src, 0))
s.sendto(data, (dst, 0))
`;
function sendTunnel(dst: string, src: string | null, proto: 4 | 41, inner: Buffer): void {
  const r = spawnSync('nsenter', [`--net=/run/netns/${B}`, 'python3', '-c', SEND_PY, dst, src ?? '-', String(proto), inner.toString('hex')],
    { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 0, `raw send from B: ${r.stderr}`);
}

/** A UDP socket on each VIP in A, printing one JSON line per datagram; exits after `count`. */
const LISTEN_JS = `
const dgram = require('node:dgram');
const [count, port] = process.argv.slice(1).map(Number);
let got = 0, bound = 0;
for (const [type, addr] of [['udp4', '${VIP4}'], ['udp6', '${VIP6}']]) {
  const s = dgram.createSocket(type);
  s.on('message', (m, r) => {
    process.stdout.write(JSON.stringify({ msg: m.toString(), from: r.address }) + '\\n');
    if (++got === count) process.exit(0);
  });
  s.bind(port, addr, () => { if (++bound === 2) process.stdout.write('ready\\n'); });
}
setTimeout(() => process.exit(2), 15000);
`;
let listener: ChildProcess | undefined;

function listen(count: number): Promise<{ ready: Promise<void>; done: Promise<{ msg: string; from: string }[]> }> {
  const child = spawn('nsenter', [`--net=/run/netns/${A}`, process.execPath, '-e', LISTEN_JS, String(count), String(PORT)],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  listener = child;
  let buf = '';
  let err = '';
  let readyResolve: () => void = () => {};
  const ready = new Promise<void>((res) => { readyResolve = res; });
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    if (buf.includes('ready\n')) readyResolve();
  });
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const done = new Promise<{ msg: string; from: string }[]>((res, rej) => {
    child.on('exit', (code) => {
      listener = undefined;
      if (code !== 0) rej(new Error(`UDP listener in A exited with ${code} (2: timed out); got ${JSON.stringify(buf)} ${err}`));
      else res(buf.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; from: string }));
    });
  });
  return Promise.resolve({ ready: Promise.race([ready, done.then(() => undefined)]), done });
}

// ---------------------------------------------------------------- set-up and clean-up

let inodes: number[] = [];

function cleanup(): void {
  listener?.kill('SIGKILL');
  destroyNamespaces(PREFIX);
  // the pins outlive the namespaces: remove ours, and the shared directories if we emptied them
  for (const ino of inodes) {
    const dir = `${DECAP_PIN_ROOT}/${ino}-eth0`;
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir)) spawnSync('rm', ['-f', `${dir}/${f}`]);
    try { rmdirSync(dir); } catch { /* reported by the test that checks it */ }
  }
  for (const d of [DECAP_PIN_ROOT, '/sys/fs/bpf/xlb']) {
    try { rmdirSync(d); } catch { /* not empty or gone */ }
  }
}

describe('xlb decap in network namespaces', () => {
  let unregister = () => {};

  before(() => {
    requireRoot();
    requireFile(DECAP_OBJECT, 'make all');
    requireFile(ADDON_PATH, 'make all');
    requireFile(BASELINE_OBJECT, 'make all');
    for (const [cmd, pkg] of [['ip', 'iproute2'], ['nsenter', 'util-linux'], ['setpriv', 'util-linux'], ['python3', 'python3']] as const) {
      requireCommand(cmd, pkg);
    }
    unregister = onCleanup(cleanup);
    ip(['netns', 'add', A]);
    ip(['netns', 'add', B]);
    inodes = [inode(A), inode(B)];
    ip(['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', B], A);
    for (const [ns, v4, v6] of [[A, '198.18.0.1', 'fd00::1'], [B, '198.18.0.2', 'fd00::2']] as const) {
      ip(['link', 'set', 'lo', 'up'], ns);
      ip(['addr', 'add', `${v4}/24`, 'dev', 'eth0'], ns);
      ip(['addr', 'add', `${v6}/64`, 'dev', 'eth0', 'nodad'], ns);
      ip(['link', 'set', 'eth0', 'up'], ns);
    }
    ip(['addr', 'add', '198.18.0.3/24', 'dev', 'eth0'], B); // a source that will not be allowed
    ip(['addr', 'add', `${VIP4}/32`, 'dev', 'lo'], A);
    ip(['addr', 'add', `${VIP6}/128`, 'dev', 'lo'], A);
  });

  after(() => {
    cleanup();
    unregister();
  });

  test('attach in A (native, allowed sources) and in B (generic): one pin directory per namespace', () => {
    const outA = ok(A, ['decap', 'attach', 'eth0', '--allow-src', '198.18.0.2/32', 'fd00::/64']);
    assert.match(outA, /^xlb decap: attached to eth0 \(ifindex \d+, native mode, program id \d+\); allowed sources: 198\.18\.0\.2\/32, fd00::\/64; pinned at /);
    const outB = ok(B, ['decap', 'attach', 'eth0', '--mode', 'generic']);
    assert.match(outB, /generic mode.*allowed sources: any/);

    const [xa, xb] = [xdpOf(A), xdpOf(B)];
    assert.equal(xa?.prog?.name, 'xlb_decap');
    assert.equal(xa?.mode, 1, 'A: native (XDP_ATTACHED_DRV)');
    assert.equal(xb?.prog?.name, 'xlb_decap');
    assert.equal(xb?.mode, 2, 'B: generic (XDP_ATTACHED_SKB)');
    for (const ns of [A, B]) {
      assert.deepEqual(readdirSync(pinDirOf(ns)).sort(), ['decap_config', 'decap_src4', 'decap_src6', 'decap_stats', 'prog'], ns);
    }
    assert.notEqual(pinDirOf(A), pinDirOf(B));
    const sa = statusJson(A).interfaces;
    assert.equal(sa.length, 1, 'status in A sees only A');
    assert.deepEqual({ ...sa[0], counters: undefined }, {
      ifname: 'eth0', netns: inode(A), pinDir: pinDirOf(A), ifindex: linkOf(A)?.ifindex, attached: true, mode: 'native',
      progId: xa?.prog?.id, filter: true, allowSrc: ['198.18.0.2/32', 'fd00::/64'], counters: undefined,
    });
  });

  test('tunnel traffic from B is decapsulated in A and reaches the VIPs; a source not allowed is dropped', async () => {
    const before = statusJson(A).interfaces[0]!.counters;
    const { ready, done } = await listen(2);
    await ready;
    const inner4 = (msg: string) => packet(ipv4({ src: '198.18.2.1', dst: VIP4 }), udp({ sport: 40000, dport: PORT }), Buffer.from(msg));
    const inner6 = packet(ipv6({ src: 'fd00:18:2::1', dst: VIP6 }), udp({ sport: 40001, dport: PORT }), Buffer.from('6in6'));
    sendTunnel('198.18.0.1', '198.18.0.3', 4, inner4('from a source not allowed'));
    sendTunnel('198.18.0.1', '198.18.0.2', 4, inner4('4in4'));
    sendTunnel('fd00::1', 'fd00::2', 41, inner6);
    const got = await done;
    assert.deepEqual(got, [{ msg: '4in4', from: '198.18.2.1' }, { msg: '6in6', from: 'fd00:18:2::1' }]);
    const after = statusJson(A).interfaces[0]!.counters;
    const d = Object.fromEntries(Object.keys(after).map((k) => [k, after[k]! - before[k]!]));
    assert.deepEqual({ decap4: d.decap4, decap6: d.decap6, drop_source: d.drop_source, drop_malformed: d.drop_malformed, drop_truncated: d.drop_truncated },
      { decap4: 1, decap6: 1, drop_source: 1, drop_malformed: 0, drop_truncated: 0 });
    // ARP / neighbour discovery pass too: rx is everything
    assert.equal(d.rx, d.decap4! + d.decap6! + d.drop_source! + d.pass! + d.pass_fragment!);
  });

  test('status: a table per interface of this namespace', () => {
    const out = ok(A, ['decap', 'status']);
    assert.match(out, /^eth0: attached, native mode, ifindex \d+, program id \d+\n {2}allowed sources: 198\.18\.0\.2\/32, fd00::\/64\n {2}pins: \/sys\/fs\/bpf\/xlb\/decap\/\d+-eth0\n/);
    assert.match(out, /^ {2}decap4 +1$/m);
    assert.match(out, /^ {2}drop_source +1$/m);
    assert.equal(ok(B, ['decap', 'status', 'eth0']).split('\n')[0]!.startsWith('eth0: attached, generic mode'), true);
  });

  test('errors a user meets: exit 1 and what is wrong', () => {
    fails(A, ['decap', 'attach', 'eth0'], /xlb decap is already attached to eth0 \(program id \d+\): detach it first \(EEXIST\)/);
    fails(A, ['decap', 'attach', 'nope0'], /interface 'nope0' does not exist in this network namespace \(ENODEV\)/);
    fails(A, ['decap', 'attach', 'lo', '--allow-src', '198.18.0.1/24'], /'198\.18\.0\.1\/24' has bits set past the prefix length \(did you mean 198\.18\.0\.0\/24\?\)/);
    assert.equal(existsSync(`${DECAP_PIN_ROOT}/${inode(A)}-lo`), false, 'a refused attach leaves no pins');
    fails(A, ['decap', 'attach', 'lo', '--mode', 'hw'], /Allowed choices are native, generic/);
    fails(A, ['decap', 'detach', 'lo'], /xlb decap is not attached to lo in this network namespace \(no pins at .*\) \(ENOENT\)/);
    fails(A, ['decap', 'status', 'lo'], /not attached to lo/);
    fails(A, ['decap', 'attach', 'bad/name'], /'bad\/name' is not a valid interface name/);
    // `ip netns exec` hides the BPF filesystem: said so, nothing attempted
    const r = spawnSync('ip', ['netns', 'exec', A, XLB, 'decap', 'status'], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no BPF filesystem at \/sys\/fs\/bpf here.*nsenter --net=\/run\/netns\/NAME/);
    // not root
    const u = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', XLB, 'decap', 'status'], { encoding: 'utf8', cwd: '/' });
    assert.equal(u.status, 1, u.stderr);
    assert.match(u.stderr, /^xlb: xlb decap status needs root/);
  });

  test('another XDP program on the interface: refused, left alone', () => {
    ok(B, ['decap', 'detach', 'eth0']);
    assert.equal(existsSync(pinDirOf(B)), false, 'pins removed');
    assert.equal(xdpOf(B), undefined, 'detached');
    ip(['link', 'set', 'dev', 'eth0', 'xdpgeneric', 'object', BASELINE_OBJECT, 'section', 'xdp', 'program', 'xdp_pass'], B);
    const id = xdpOf(B)?.prog?.id;
    fails(B, ['decap', 'attach', 'eth0', '--mode', 'generic'], new RegExp(`eth0 already has an XDP program \\(id ${id}\\) that xlb decap did not attach`));
    assert.equal(xdpOf(B)?.prog?.id, id, 'still attached');
    assert.equal(existsSync(pinDirOf(B)), false, 'no pins');
    ip(['link', 'set', 'dev', 'eth0', 'xdpgeneric', 'off'], B);
  });

  test('stale pins: a program removed behind our back is reported, then replaced by a new attach', () => {
    ip(['link', 'set', 'dev', 'eth0', 'xdpdrv', 'off'], A);
    assert.equal(statusJson(A).interfaces[0]?.attached, false);
    assert.match(ok(A, ['decap', 'status']), /^eth0: NOT attached/);
    const out = ok(A, ['decap', 'attach', 'eth0']);
    assert.match(out, /allowed sources: any/);
    const s = statusJson(A).interfaces[0]!;
    assert.equal(s.attached, true);
    assert.deepEqual([s.counters.decap4, s.counters.drop_source], [0, 0], 'a fresh program: fresh counters');
  });

  test('detach: the program off the interface, the pins gone', () => {
    assert.equal(ok(A, ['decap', 'detach', 'eth0']), 'xlb decap: detached from eth0; pins removed\n');
    assert.equal(xdpOf(A), undefined);
    assert.equal(existsSync(pinDirOf(A)), false);
    assert.deepEqual(statusJson(A), { interfaces: [] });
    fails(A, ['decap', 'detach', 'eth0'], /not attached to eth0/);
  });

  test('an interface deleted while attached: detach removes the pins and says why', () => {
    ok(B, ['decap', 'attach', 'eth0', '--mode', 'generic']);
    ip(['link', 'del', 'eth0'], A); // takes its veth peer, B's eth0, along
    const s = statusJson(B).interfaces[0]!;
    assert.deepEqual([s.attached, s.ifindex], [false, null]);
    assert.equal(ok(B, ['decap', 'detach', 'eth0']), 'xlb decap: nothing was detached from eth0 (eth0 no longer exists); pins removed\n');
    assert.equal(existsSync(pinDirOf(B)), false);
  });
});
