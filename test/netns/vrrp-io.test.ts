/**
 * VRRP's sockets on real interfaces: two network namespaces joined by a veth pair, one process,
 * sockets made in either namespace with inNetns (src/net/netns.ts).
 *
 *   <prefix>-a  eth0  198.18.0.1/24  fd00::1/64  + its link-local address
 *   <prefix>-b  eth0  198.18.0.2/24  fd00::2/64  + its link-local address
 *
 * A VrrpSocket in a sends, one in b receives, with the metadata checked: IPv4 to 224.0.0.18 and
 * unicast, IPv6 to ff02::12 from the link-local address and unicast. Packets with another TTL /
 * hop limit come from a frame socket with frames of the independent builder (test/lib/packets.ts),
 * and the receiver must report what they carried. Gratuitous ARP and NA frames (src/vrrp/arp.ts)
 * sent by a FrameSocket in a are captured in b, byte for byte. The addon's error paths and the
 * closing of a socket while datagrams wait or from inside its own callback are covered too.
 * It also prints (never asserts) the time from the JS call to the first gratuitous ARP on the
 * wire as b's capture timestamps it, alone and after an advert and a VIP added over netlink (the
 * order a new master follows).
 *
 * Needs root; fails (never skips) without. Cleanup, also on failure: both namespaces.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { ADDON_PATH, isBpfError, native } from '../../src/datapath/bpf/index.ts';
import { addAddress, deleteAddress } from '../../src/net/address.ts';
import { inNetns } from '../../src/net/netns.ts';
import { Rtnl } from '../../src/net/rtnl.ts';
import { gratuitousArp, unsolicitedNa } from '../../src/vrrp/arp.ts';
import {
  FrameSocket, PACKET_OUTGOING, VrrpSocket, splitIpv4, type Frame, type VrrpMessage, type VrrpSocketOptions,
} from '../../src/vrrp/socket.ts';
import { destroyNamespaces, ip, onCleanup, randomPrefix, sysctl } from '../../scripts/lab/netns.ts';
import { eth, ipv4, ipv6, packet, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6 } from '../lib/packets.ts';
import { requireCommand, requireFile, requireRoot } from '../lib/require.ts';

const PREFIX = randomPrefix('xlbvio');

interface Host {
  ns: string;
  ifindex: number;
  mac: string;
  ipv4: string;
  ipv6: string;
  linkLocal: string;
}

interface Pair { a: Host; b: Host }

let pair: Pair | Error | undefined;
const unregister = onCleanup(() => destroyNamespaces(PREFIX));

function linkOf(ns: string): { ifindex: number; address: string } {
  const [l] = JSON.parse(ip(['-j', 'link', 'show', 'dev', 'eth0'], ns)) as { ifindex: number; address: string }[];
  if (!l) throw new Error(`no eth0 in ${ns}`);
  return l;
}

function linkLocalOf(ns: string): string | undefined {
  const [l] = JSON.parse(ip(['-j', '-6', 'addr', 'show', 'dev', 'eth0', 'scope', 'link'], ns)) as
    { addr_info: { local?: string; tentative?: boolean }[] }[];
  return l?.addr_info.find((a) => a.local && !a.tentative)?.local; // ip -j lists filtered-out addresses as {}
}

/** The two namespaces (made once; each test calls this first, so each fails with the reason). */
function setup(): Pair {
  if (pair === undefined) {
    try {
      requireRoot();
      requireFile(ADDON_PATH, 'make native');
      requireCommand('ip', 'iproute2');
      const a = `${PREFIX}-a`;
      const b = `${PREFIX}-b`;
      ip(['netns', 'add', a]);
      ip(['netns', 'add', b]);
      ip(['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', b], a);
      const hosts = ([[a, 1], [b, 2]] as const).map(([ns, n]) => {
        sysctl(ns, 'net.ipv6.conf.all.accept_dad', '0');
        sysctl(ns, 'net.ipv6.conf.default.accept_dad', '0');
        sysctl(ns, 'net.ipv6.conf.eth0.accept_dad', '0');
        ip(['addr', 'add', `198.18.0.${n}/24`, 'dev', 'eth0'], ns);
        ip(['addr', 'add', `fd00::${n}/64`, 'dev', 'eth0', 'nodad'], ns);
        ip(['link', 'set', 'eth0', 'up'], ns);
        return { ns, n };
      });
      const deadline = Date.now() + 5000;
      const done: Host[] = [];
      for (const { ns, n } of hosts) {
        let ll = linkLocalOf(ns);
        while (!ll && Date.now() < deadline) {
          execFileSync('sleep', ['0.02']);
          ll = linkLocalOf(ns);
        }
        if (!ll) throw new Error(`${ns}: eth0 has no link-local address after 5 s`);
        const l = linkOf(ns);
        done.push({ ns, ifindex: l.ifindex, mac: l.address, ipv4: `198.18.0.${n}`, ipv6: `fd00::${n}`, linkLocal: ll });
      }
      pair = { a: done[0]!, b: done[1]! };
    } catch (err) {
      pair = err as Error;
    }
  }
  if (pair instanceof Error) throw pair;
  return pair;
}

/** Resolve with the first `count` events, or reject naming what did not come in `ms`. */
function collect<T>(on: (cb: (v: T) => void) => void, count: number, what: string, ms = 3000): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const got: T[] = [];
    const timer = setTimeout(() => reject(new Error(`${what}: ${got.length} of ${count} in ${ms} ms`)), ms);
    on((v) => {
      got.push(v);
      if (got.length === count) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sockets opened by a test, closed after it whatever happens. */
class Sockets {
  private readonly all: { close(): void }[] = [];
  vrrp(h: Host, o: Omit<VrrpSocketOptions, 'ifindex'>): VrrpSocket {
    const s = inNetns(h.ns, () => VrrpSocket.open({ ...o, ifindex: h.ifindex }));
    this.all.push(s);
    return s;
  }
  frames(h: Host, capture = false, timestamps = false): FrameSocket {
    const s = inNetns(h.ns, () => FrameSocket.open(h.ifindex, { capture, timestamps }));
    this.all.push(s);
    return s;
  }
  closeAll(): void {
    for (const s of this.all.splice(0)) s.close();
  }
}

async function withSockets(fn: (s: Sockets, p: Pair) => Promise<void>): Promise<void> {
  const p = setup();
  const s = new Sockets();
  try {
    await fn(s, p);
  } finally {
    s.closeAll();
  }
}

// a VRRPv3 advertisement's bytes; the socket carries any payload, so these need not be valid
const ADVERT = Buffer.from('3133780100640000c6120064', 'hex');

function assertMessage(m: VrrpMessage, want: Partial<VrrpMessage>): void {
  const got: Partial<VrrpMessage> = {};
  for (const k of Object.keys(want) as (keyof VrrpMessage)[]) (got as Record<string, unknown>)[k] = m[k];
  assert.deepEqual(got, want);
}

describe('VRRP sockets between two namespaces (root)', () => {
  after(() => {
    destroyNamespaces(PREFIX);
    unregister();
  });

  test('IPv4 multicast: to 224.0.0.18 with TTL 255, TOS 0xc0, no DF; not looped back to the sender; leaveGroup', async () => {
    await withSockets(async (s, { a, b }) => {
      const tx = s.vrrp(a, { family: 4, source: a.ipv4, multicast: true });
      const rx = s.vrrp(b, { family: 4, source: b.ipv4, multicast: true });
      const looped: VrrpMessage[] = [];
      tx.on('message', (m) => looped.push(m));
      const got = collect<VrrpMessage>((cb) => rx.on('message', cb), 1, 'adverts at b');
      tx.send(ADVERT);
      const [m] = await got;
      assertMessage(m!, { family: 4, payload: ADVERT, src: a.ipv4, dst: '224.0.0.18', hopLimit: 255, ifindex: b.ifindex });
      const h = m!.ipHeader!;
      assert.equal(h.length, 20);
      assert.equal(h[1], 0xc0, 'TOS');
      assert.equal(h[8], 255, 'TTL in the header');
      assert.equal(h[9], 112, 'protocol');
      assert.equal(h.readUInt16BE(6) & 0x4000, 0, 'DF bit');
      await sleep(50);
      assert.deepEqual(looped, [], 'the sender does not receive its own multicast');
      assert.deepEqual(tx.stats, { received: 0, malformed: 0, recvErrors: 0, sent: 1 });
      assert.deepEqual(rx.stats, { received: 1, malformed: 0, recvErrors: 0, sent: 0 });
      // after leaving the group, b hears no more adverts to it
      rx.leaveGroup();
      tx.send(ADVERT);
      await sleep(100);
      assert.equal(rx.stats.received, 1, 'no advert after leaveGroup()');
    });
  });

  test('IPv4 unicast: from the chosen source to the peer, without joining the group', async () => {
    await withSockets(async (s, { a, b }) => {
      const tx = s.vrrp(a, { family: 4, source: a.ipv4, multicast: false });
      const rx = s.vrrp(b, { family: 4, source: b.ipv4, multicast: false });
      const got = collect<VrrpMessage>((cb) => rx.on('message', cb), 1, 'unicast advert at b');
      tx.send(ADVERT, b.ipv4);
      const [m] = await got;
      assertMessage(m!, { family: 4, payload: ADVERT, src: a.ipv4, dst: b.ipv4, hopLimit: 255, ifindex: b.ifindex });
      // the group was not joined: a multicast advert from a is not received
      const tx2 = s.vrrp(a, { family: 4, source: a.ipv4, multicast: true });
      const none: VrrpMessage[] = [];
      rx.on('message', (x) => none.push(x));
      tx2.send(ADVERT);
      await sleep(100);
      assert.deepEqual(none, []);
    });
  });

  test('IPv6 multicast: to ff02::12 from the link-local address, hop limit 255', async () => {
    await withSockets(async (s, { a, b }) => {
      const tx = s.vrrp(a, { family: 6, source: a.linkLocal, multicast: true });
      const rx = s.vrrp(b, { family: 6, source: b.linkLocal, multicast: true });
      const looped: VrrpMessage[] = [];
      tx.on('message', (m) => looped.push(m));
      const got = collect<VrrpMessage>((cb) => rx.on('message', cb), 1, 'IPv6 adverts at b');
      tx.send(ADVERT);
      const [m] = await got;
      assertMessage(m!, { family: 6, payload: ADVERT, src: a.linkLocal, dst: 'ff02::12', hopLimit: 255, ifindex: b.ifindex, ipHeader: null });
      await sleep(50);
      assert.deepEqual(looped, []);
    });
  });

  test('IPv6 unicast: to the peer\'s link-local and global addresses', async () => {
    await withSockets(async (s, { a, b }) => {
      const tx = s.vrrp(a, { family: 6, source: a.linkLocal, multicast: false });
      const rx = s.vrrp(b, { family: 6, source: b.linkLocal, multicast: false });
      const got = collect<VrrpMessage>((cb) => rx.on('message', cb), 2, 'IPv6 unicast at b');
      tx.send(ADVERT, b.linkLocal);
      tx.send(ADVERT, b.ipv6);
      const [m1, m2] = await got;
      assertMessage(m1!, { src: a.linkLocal, dst: b.linkLocal, hopLimit: 255, ifindex: b.ifindex });
      assertMessage(m2!, { src: a.linkLocal, dst: b.ipv6, hopLimit: 255, ifindex: b.ifindex });
    });
  });

  test('TTL / hop limit other than 255 is reported as received (packets from the independent builder)', async () => {
    await withSockets(async (s, { a, b }) => {
      const rx4 = s.vrrp(b, { family: 4, source: b.ipv4, multicast: true });
      const rx6 = s.vrrp(b, { family: 6, source: b.linkLocal, multicast: true });
      const wire = s.frames(a);
      const got4 = collect<VrrpMessage>((cb) => rx4.on('message', cb), 2, 'IPv4 adverts at b');
      const got6 = collect<VrrpMessage>((cb) => rx6.on('message', cb), 2, 'IPv6 adverts at b');
      for (const ttl of [64, 1]) {
        wire.send(packet(eth({ dst: '01:00:5e:00:00:12', src: a.mac }), ipv4({ src: a.ipv4, dst: '224.0.0.18', proto: 112, ttl, tos: 0xc0 }), ADVERT));
        wire.send(packet(eth({ dst: '33:33:00:00:00:12', src: a.mac }), ipv6({ src: a.linkLocal, dst: 'ff02::12', nextHeader: 112, hopLimit: ttl }), ADVERT));
      }
      assert.deepEqual((await got4).map((m) => [m.hopLimit, m.src, m.payload.toString('hex')]),
        [[64, a.ipv4, ADVERT.toString('hex')], [1, a.ipv4, ADVERT.toString('hex')]]);
      assert.deepEqual((await got6).map((m) => [m.hopLimit, m.src, m.payload.toString('hex')]),
        [[64, a.linkLocal, ADVERT.toString('hex')], [1, a.linkLocal, ADVERT.toString('hex')]]);
    });
  });

  test('gratuitous ARP and unsolicited NA: on the wire at the peer as built', async () => {
    await withSockets(async (s, { a, b }) => {
      const cap = s.frames(b, true);
      const frames: Frame[] = [];
      const wanted = (f: Frame) => f.protocol === ETH_P_ARP || (f.protocol === ETH_P_IPV6 && f.data[20] === 58 && f.data[54] === 136);
      const got = collect<Frame>((cb) => cap.on('frame', (f) => { if (wanted(f)) cb(f); }), 3, 'GARP/NA at b');
      const wire = s.frames(a);
      const garp1 = gratuitousArp(a.mac, '198.18.0.200');
      const garp2 = gratuitousArp(a.mac, '198.18.0.201');
      const na = unsolicitedNa(a.mac, 'fd00::200');
      for (const f of [garp1, garp2, na]) wire.send(f);
      frames.push(...await got);
      assert.deepEqual(frames.map((f) => f.data.toString('hex')), [garp1, garp2, na].map((f) => f.toString('hex')));
      assert.deepEqual(frames.map((f) => [f.ifindex, f.pktType]), [[b.ifindex, 1], [b.ifindex, 1], [b.ifindex, 2]],
        'received on b\'s eth0 as broadcast, broadcast, multicast');
      assert.equal(wire.sent, 3);
    });
  });

  test('a capture sees outgoing frames too, with kernel timestamps', async () => {
    await withSockets(async (s, { a }) => {
      const cap = s.frames(a, true, true);
      const got = collect<Frame>((cb) => cap.on('frame', (f) => { if (f.protocol === ETH_P_ARP) cb(f); }), 1, 'own GARP');
      const before = BigInt(Date.now() - 1) * 1_000_000n;
      s.frames(a).send(gratuitousArp(a.mac, '198.18.0.202'));
      const [f] = await got;
      assert.equal(f!.pktType, PACKET_OUTGOING);
      assert.ok(f!.timestampNs !== null && f!.timestampNs >= before && f!.timestampNs <= BigInt(Date.now() + 1) * 1_000_000n,
        `timestamp ${String(f!.timestampNs)} within the test's time`);
    });
  });

  test('datagrams beyond one read burst (64) are all delivered, in order', async () => {
    await withSockets(async (s, { a, b }) => {
      const tx = s.vrrp(a, { family: 4, source: a.ipv4, multicast: false });
      const rx = s.vrrp(b, { family: 4, source: b.ipv4, multicast: false });
      const n = 200;
      const got = collect<VrrpMessage>((cb) => rx.on('message', cb), n, 'burst at b');
      for (let i = 0; i < n; i++) tx.send(Buffer.from([i >> 8, i & 0xff]), b.ipv4);
      const ms = await got;
      assert.deepEqual(ms.map((m) => m.payload.readUInt16BE(0)), Array.from({ length: n }, (_, i) => i));
    });
  });

  test('close() from inside the callback: no further callbacks, however many datagrams wait', async () => {
    await withSockets(async (s, { a, b }) => {
      const tx = s.vrrp(a, { family: 4, source: a.ipv4, multicast: false });
      const rx = s.vrrp(b, { family: 4, source: b.ipv4, multicast: false });
      const seen: number[] = [];
      rx.on('message', (m) => { seen.push(m.payload[0]!); rx.close(); });
      for (let i = 0; i < 10; i++) tx.send(Buffer.from([i]), b.ipv4);
      await sleep(150);
      assert.deepEqual(seen, [0]);
      assert.ok(rx.closed);
      assert.throws(() => rx.send(ADVERT), (e: unknown) => isBpfError(e, 'EBADF'));
    });
  });

  test('close() while datagrams wait to be read: none is delivered afterwards', async () => {
    await withSockets(async (s, { a, b }) => {
      const tx = s.vrrp(a, { family: 4, source: a.ipv4, multicast: false });
      const rx = s.vrrp(b, { family: 4, source: b.ipv4, multicast: false });
      const seen: VrrpMessage[] = [];
      rx.on('message', (m) => seen.push(m));
      for (let i = 0; i < 10; i++) tx.send(Buffer.from([i]), b.ipv4);
      rx.close(); // the datagrams are queued (veth delivers within the send), the poll event not yet handled
      rx.close(); // idempotent
      await sleep(150);
      assert.deepEqual(seen, []);
    });
  });

  test('the time from the JS call to the first gratuitous ARP on the wire (printed, not asserted)', async () => {
    await withSockets(async (s, { a, b }) => {
      const cap = s.frames(b, true, true);
      const wire = s.frames(a);
      const samples: number[] = [];
      const delivery: number[] = [];
      const nowNs = () => (performance.timeOrigin + performance.now()) * 1e6; // CLOCK_REALTIME, to ~1 us
      for (let i = 0; i < 50; i++) {
        const got = collect<Frame>((cb) => cap.on('frame', (f) => { if (f.protocol === ETH_P_ARP) cb(f); }), 1, 'GARP at b');
        const t0 = nowNs();
        wire.send(gratuitousArp(a.mac, '198.18.0.210'));
        const [f] = await got;
        const t1 = nowNs();
        cap.removeAllListeners('frame');
        samples.push((Number(f!.timestampNs) - t0) / 1000);
        delivery.push((t1 - Number(f!.timestampNs)) / 1000);
        await sleep(2);
      }
      const q = (xs: number[], p: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
      console.log(`# JS call (gratuitousArp() + FrameSocket.send()) -> frame timestamped by the peer's capture: `
        + `median ${q(samples, 0.5).toFixed(1)} us, p90 ${q(samples, 0.9).toFixed(1)} us, max ${Math.max(...samples).toFixed(1)} us `
        + `over ${samples.length} (kernel SO_TIMESTAMPNS vs performance.timeOrigin+now(); capture -> JS callback median ${q(delivery, 0.5).toFixed(1)} us; shared CPU)`);
      assert.equal(samples.length, 50);
    });
  });

  test('a master transition as instance.ts will make it: advert, VIP added over netlink, gratuitous ARP (printed)', async () => {
    await withSockets(async (s, { a, b }) => {
      const cap = s.frames(b, true, true);
      const tx = s.vrrp(a, { family: 4, source: a.ipv4, multicast: true });
      const wire = s.frames(a);
      const nl = inNetns(a.ns, () => Rtnl.open());
      const vip = { ifindex: a.ifindex, address: '198.18.0.220', prefixLength: 32 };
      const nowNs = () => (performance.timeOrigin + performance.now()) * 1e6;
      // awaited: the GARP waits for the kernel's ACK; pipelined: the GARP goes right after the
      // request was sent (rtnetlink applies a request inside the sender's sendmsg, so the address
      // is there already), and the ACK is awaited after
      const runs = { awaited: { advert: [] as number[], garp: [] as number[] }, pipelined: { advert: [] as number[], garp: [] as number[] } };
      try {
        for (let i = 0; i < 40; i++) {
          const mode = i % 2 === 0 ? 'awaited' : 'pipelined';
          const got = collect<Frame>((cb) => cap.on('frame', (f) => {
            if ((f.protocol === ETH_P_IP && f.data[23] === 112) || f.protocol === ETH_P_ARP) cb(f);
          }), 2, 'advert and GARP at b');
          const t0 = nowNs();
          tx.send(ADVERT);
          if (mode === 'awaited') {
            await addAddress(nl, vip);
            wire.send(gratuitousArp(a.mac, vip.address));
          } else {
            const added = addAddress(nl, vip);
            wire.send(gratuitousArp(a.mac, vip.address));
            await added;
          }
          const frames = await got;
          cap.removeAllListeners('frame');
          const at = (p: number) => (Number(frames.find((f) => f.protocol === p)!.timestampNs) - t0) / 1000;
          runs[mode].advert.push(at(ETH_P_IP));
          runs[mode].garp.push(at(ETH_P_ARP));
          assert.ok(ip(['-j', 'addr', 'show', 'dev', 'eth0'], a.ns).includes(vip.address), 'the VIP is on a');
          await deleteAddress(nl, vip);
        }
      } finally {
        nl.close();
      }
      const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1]!.toFixed(1);
      for (const [mode, r] of Object.entries(runs)) {
        console.log(`# master transition, ${mode}: (advert send, addAddress, GARP send) seen by the peer's capture: advert at median ${med(r.advert)} us, `
          + `GARP at median ${med(r.garp)} us (max ${Math.max(...r.garp).toFixed(1)} us) after the first JS call, over ${r.garp.length} (shared CPU)`);
      }
      assert.equal(runs.awaited.garp.length + runs.pipelined.garp.length, 40);
    });
  });

  test('error paths: code, errno and syscall', async () => {
    await withSockets(async (s, { a }) => {
      const want = (fn: () => unknown, code: string, syscall: string, message?: RegExp) => assert.throws(fn, (e: unknown) => {
        assert.ok(isBpfError(e), `an Error with code/errno/syscall, got ${String(e)}`);
        assert.deepEqual([e.code, e.syscall], [code, syscall], e.message);
        assert.ok(e.errno > 0);
        if (message) assert.match(e.message, message);
        return true;
      });
      const n = native();
      const bad = 0x7ffffff0;
      want(() => inNetns(a.ns, () => n.openIpSocket(4, 112, { ifindex: bad })), 'ENODEV', 'ioctl', /SIOCGIFNAME of ifindex 2147483632/);
      want(() => inNetns(a.ns, () => VrrpSocket.open({ family: 6, ifindex: bad, source: a.linkLocal, multicast: true })), 'ENODEV', 'ioctl');
      want(() => inNetns(a.ns, () => FrameSocket.open(bad)), 'ENODEV', 'bind');
      want(() => n.openIpSocket(5 as 4, 112, {}), 'EINVAL', 'socket', /family/);
      want(() => n.openIpSocket(4, 112, { hopLimit: -1 }), 'EINVAL', 'socket', /hopLimit/);
      want(() => n.openIpSocket(4, 112, { hopLimit: 256 }), 'EINVAL', 'setsockopt', /IP_TTL=256/); // the kernel's answer
      want(() => inNetns(`${PREFIX}-none`, () => 1), 'ENOENT', 'open');
      want(() => inNetns('../etc', () => 1), 'EINVAL', 'setns');
      want(() => VrrpSocket.open({ family: 6, ifindex: a.ifindex, source: a.ipv6, multicast: true }), 'EINVAL', 'socket', /not link-local/);
      want(() => VrrpSocket.open({ family: 4, ifindex: a.ifindex, source: a.ipv6, multicast: true }), 'EINVAL', 'socket', /not an IPv4 address/);
      want(() => VrrpSocket.open({ family: 4, ifindex: 0, source: a.ipv4, multicast: true }), 'EINVAL', 'socket', /ifindex/);

      const raw = s.vrrp(a, { family: 4, source: a.ipv4, multicast: false });
      want(() => raw.send(ADVERT, 'fd00::2'), 'EINVAL', 'sendmsg', /not an IPv4 address/);
      const ns = inNetns(a.ns, () => n.openIpSocket(4, 112, { ifindex: a.ifindex }));
      try {
        want(() => ns.joinGroup(Buffer.from([224, 0, 0, 18]), bad), 'ENODEV', 'setsockopt', /IP_ADD_MEMBERSHIP/);
        want(() => ns.sendTo(ADVERT, Buffer.alloc(16), null, 0), 'EINVAL', 'sendmsg', /dst/);
        // a source address the host does not have: the kernel finds no route from it
        want(() => ns.sendTo(ADVERT, Buffer.from([198, 18, 0, 2]), Buffer.from([198, 18, 0, 99]), 0), 'ENETUNREACH', 'sendmsg');
        want(() => (ns as unknown as { send(b: Buffer): void }).send(ADVERT), 'EINVAL', 'send', /packet sockets/);
      } finally {
        ns.close();
      }
      want(() => ns.sendTo(ADVERT, Buffer.from([198, 18, 0, 2]), null, 0), 'EBADF', 'sendmsg', /closed/);
      want(() => ns.start(() => undefined), 'EBADF', 'uv_poll_start');
      assert.equal(ns.fd(), -1);
    });
  });
});

describe('splitIpv4 (what a raw IPv4 socket reads)', () => {
  const header = (o: { vihl?: number; total?: number } = {}) => {
    const d = Buffer.concat([Buffer.from('45c0002000010000ff700000c6120001e0000012', 'hex'), ADVERT]);
    if (o.vihl !== undefined) d[0] = o.vihl;
    if (o.total !== undefined) d.writeUInt16BE(o.total, 2);
    return d;
  };
  test('header and payload; the payload ends at the total length', () => {
    const r = splitIpv4(header());
    assert.ok('header' in r);
    assert.equal(r.header.length, 20);
    assert.deepEqual(r.payload, ADVERT);
    const withOptions = Buffer.concat([Buffer.from('46c0002400010000ff700000c6120001e000001294040000', 'hex'), ADVERT]);
    const o = splitIpv4(withOptions);
    assert.ok('header' in o);
    assert.equal(o.header.length, 24);
    assert.deepEqual(o.payload, ADVERT);
    const short = splitIpv4(header({ total: 24 }));
    assert.ok('payload' in short);
    assert.equal(short.payload.length, 4);
  });
  test('rejects, with the reason', () => {
    assert.deepEqual(splitIpv4(Buffer.alloc(19)), { error: 'IPv4 datagram of 19 bytes is shorter than a header (20)' });
    assert.deepEqual(splitIpv4(header({ vihl: 0x65 })), { error: 'IP version 6, not 4' });
    assert.deepEqual(splitIpv4(header({ vihl: 0x44 })), { error: 'IPv4 header length 16 is below 20' });
    assert.deepEqual(splitIpv4(header({ vihl: 0x4f })), { error: 'IPv4 header length 60 is beyond the 32-byte datagram' });
    assert.deepEqual(splitIpv4(header({ total: 33 })), { error: 'IPv4 total length 33 does not fit header 20 and datagram 32' });
    assert.deepEqual(splitIpv4(header({ total: 19 })), { error: 'IPv4 total length 19 does not fit header 20 and datagram 32' });
  });
});
