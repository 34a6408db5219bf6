/**
 * A pinned forwarder instance (XdpForwarder.open with an instance): created and pinned whole,
 * adopted by a second open (the same maps and program, the services read back, the connection
 * table and counters carried on), refused with the reason when the pins do not fit this build or
 * these sizes, and removed by destroy() and purge(); attach and detach on a veth of a namespace of
 * our own (idempotent, refused over another mode or program). A real restart under traffic, and
 * attachments() / destroy() detaching: test/netns/hitless.test.ts.
 *
 * Needs root, a BPF filesystem and a build (`make all`); without them every test fails and says so.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ADDON_PATH, BpfMap, XLB_PIN_ROOT, unpin } from '../../src/datapath/bpf/index.ts';
import { XdpDriver } from '../../src/datapath/driver.ts';
import { XdpForwarder, pinDirOf, type RealSpec, type ServiceSpec } from '../../src/datapath/xdp/forwarder.ts';
import { XLB_IFACES_SIZE, XlbIface, XlbMeta, decode, encode } from '../../src/datapath/xdp/abi.ts';
import { XLB_OBJECT, requireCommand, requireFile, requireRoot } from '../lib/require.ts';
import { destroyNamespaces, ip, onCleanup, randomPrefix } from '../../scripts/lab/netns.ts';
import { inNetns } from '../../src/net/netns.ts';
import { drReal, forward, realByMac, tcpFrame } from './flows.ts';
import { EGRESS_MAC } from './fixtures.ts';

const SIZES = { maglevSize: 4099, ctSize: 4096, natSize: 1024, persistSize: 1024, maxReals: 1024, maxServices: 64 };
const instances: string[] = [];
let n = 0;
/** A fresh instance name of this run (removed after the tests, whatever happens). */
function instance(): string {
  requireRoot();
  requireFile(XLB_OBJECT, 'make all');
  requireFile(ADDON_PATH, 'make all');
  const name = `test-pins-${process.pid}-${n++}`;
  instances.push(name);
  return name;
}
after(async () => {
  for (const name of instances) await XdpForwarder.purge({ instance: name });
});

const VIP = '198.18.60.10';
const web: ServiceSpec = { address: VIP, port: 80, protocol: 'tcp', persistence: { timeout: 300, granularity: 24 } };
const dns: ServiceSpec = { address: VIP, port: 53, protocol: 'udp', ops: true };
const webReals: RealSpec[] = [drReal('198.18.61.1'), drReal('198.18.61.2', 3), drReal('198.18.61.3', 0)];
const dnsReals: RealSpec[] = [{ address: '198.18.61.4', weight: 1, method: 'nat', mac: '02:00:00:10:3d:04', smac: EGRESS_MAC, port: 5353 }];
const u32 = (x: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(x); return b; };

test('pinned: created and pinned whole; a second open adopts the maps, reads back the services, and flows go on', async () => {
  const name = instance();
  const dir = pinDirOf({ instance: name })!;
  assert.equal(dir, join(XLB_PIN_ROOT, name));
  const fw1 = XdpForwarder.open({ instance: name, ...SIZES });
  let fw2: XdpForwarder | undefined;
  try {
    assert.equal(fw1.adopted, false);
    assert.equal(fw1.pinDir, dir);
    assert.deepEqual(readdirSync(dir).sort(), ['config', 'conntrack', 'conntrack4', 'global_stats', 'ifaces', 'maglev_tables', 'meta', 'nat',
      'nat_ports', 'persist', 'prog', 'real_meta', 'real_stats', 'reals', 'service_stats', 'services', 'vip_filter']);
    assert.ok(!existsSync(join(XLB_PIN_ROOT, 'staging', `${name}-${process.pid}`)), 'no staging directory left');
    fw1.setConfig({ natSrc4: '198.18.60.250', natTimeouts: { tcp: 600 } });
    fw1.setService(web, webReals);
    fw1.setService(dns, dnsReals);
    const progId = fw1.program.info().id;
    const who = realByMac(webReals);
    const client = '198.18.62.7';
    const first = who(forward(fw1, tcpFrame(client, 40000, VIP, 80, 'S')));
    const before = fw1.counters();
    fw1.close(); // as a process that dies: its fds go, the pins keep everything

    fw2 = XdpForwarder.open({ instance: name }); // sizes not given: taken as pinned
    assert.equal(fw2.adopted, true);
    assert.equal(fw2.program.info().id, progId, 'the same program');
    assert.equal(fw2.maglevSize, SIZES.maglevSize);
    assert.deepEqual(fw2.listServices(), [{ service: web, reals: webReals }, { service: dns, reals: dnsReals }]);
    assert.equal(fw2.natEnabled, true);
    assert.deepEqual(new XdpDriver(fw2, () => ({ mac: EGRESS_MAC, smac: EGRESS_MAC })).services(), ['tcp:198.18.60.10:80', 'udp:198.18.60.10:53']);
    assert.deepEqual(fw2.counters(), before, 'the counters carry on');
    // the flow keeps its real through the connection table; the client network through its template
    assert.equal(who(forward(fw2, tcpFrame(client, 40000, VIP, 80, 'A'))), first);
    assert.equal(fw2.counters().ct_hit - before.ct_hit, 1n, 'a connection-table hit');
    assert.equal(who(forward(fw2, tcpFrame('198.18.62.99', 40001, VIP, 80, 'S'))), first, 'persistence template of the /24');
    // the same programming again keeps the real ids (and so the connections)
    fw2.setService(web, webReals);
    assert.equal(who(forward(fw2, tcpFrame(client, 40000, VIP, 80, 'A'))), first);
    assert.equal(fw2.counters().ct_stale, before.ct_stale, 'no flow rescheduled');

    await fw2.destroy();
    assert.equal(existsSync(dir), false, 'destroy removes the pins');
  } finally {
    fw1.close();
    fw2?.close();
  }
});

test('refused with the reason, nothing changed: other sizes, another ABI, missing pins; purge removes them', async () => {
  const name = instance();
  const dir = pinDirOf({ instance: name })!;
  XdpForwarder.open({ instance: name, ...SIZES }).close();
  const refused = (opts: object, why: RegExp) => assert.throws(() => XdpForwarder.open({ instance: name, ...opts }),
    (err: Error & { code?: string }) => err.code === 'XLB_PINS_INCOMPATIBLE' && why.test(err.message) && err.message.includes(dir));
  refused({ ctSize: 8192 }, /map conntrack4: 4096 entries, not 8192; map conntrack: 4096 entries, not 8192/);
  refused({ maglevSize: 65537 }, /Maglev tables have 4099 slots, 65537 asked for/);
  refused({ maxReals: 2048 }, /map reals: 1024 entries, not 2048/);

  const meta = BpfMap.fromPin(join(dir, 'meta'));
  const good = meta.lookup(u32(0))!;
  meta.update(u32(0), encode(XlbMeta, { ...decode(XlbMeta, good), abi_version: 999 }));
  refused({}, /made with ABI version 999/);
  meta.update(u32(0), encode(XlbMeta, { ...decode(XlbMeta, good), layout_hash: 1n }));
  refused({}, /\(layout 1\), this build has version/);
  meta.update(u32(0), good);
  meta.close();
  XdpForwarder.open({ instance: name, ...SIZES }).close(); // as it was: adoptable

  unpin(join(dir, 'nat'));
  refused({}, /pins missing: nat/);

  const staging = join(XLB_PIN_ROOT, 'staging', `${name}-99999`);
  mkdirSync(staging, { recursive: true }); // a crash while publishing
  assert.deepEqual((await XdpForwarder.purge({ instance: name })), { detached: [], removed: true });
  assert.equal(existsSync(dir), false);
  assert.equal(existsSync(staging), false, 'staging directories go too');
  assert.deepEqual((await XdpForwarder.purge({ instance: name })), { detached: [], removed: false }, 'nothing left: not an error');
});

test('instance names and pin directories are checked', () => {
  for (const bad of ['', 'decap', 'staging', '..', 'a.b', 'a/b', 'x'.repeat(65)]) {
    assert.throws(() => XdpForwarder.open({ instance: bad }), /instance name '.*' must be 1 to 64 of/);
  }
  assert.throws(() => XdpForwarder.open({ pinDir: '/tmp/xlb' }), /pinDir '\/tmp\/xlb' is not a directory under \/sys\/fs\/bpf/);
});

test('attach: by netlink, idempotent in its mode, refused over the other mode or another program; detach; the ifaces entry follows', () => {
  const name = instance();
  requireCommand('ip', 'iproute2');
  const prefix = randomPrefix('xlbpin');
  const ns = `${prefix}-a`;
  const unregister = onCleanup(() => destroyNamespaces(prefix));
  const fw = XdpForwarder.open({ instance: name, ...SIZES });
  const other = XdpForwarder.open({ ctSize: 1024, natSize: 1024, persistSize: 1024, maglevSize: 251, maxReals: 64, maxServices: 8 });
  try {
    ip(['netns', 'add', ns]);
    ip(['link', 'add', 'name', 'va', 'type', 'veth', 'peer', 'name', 'vb'], ns);
    ip(['link', 'set', 'va', 'up'], ns);
    const ifindex = (JSON.parse(ip(['-j', 'link', 'show', 'va'], ns)) as { ifindex: number }[])[0]!.ifindex;
    const attachedId = () => (JSON.parse(ip(['-j', 'link', 'show', 'va'], ns)) as { xdp?: { prog?: { id: number } } }[])[0]?.xdp?.prog?.id;
    const progId = fw.program.info().id;
    ip(['link', 'set', 'va', 'address', '02:00:00:00:00:9a'], ns);
    const ifaces = BpfMap.fromPin(join(fw.pinDir!, 'ifaces'));
    const key = Buffer.alloc(4);
    key.writeUInt32LE(ifindex & (XLB_IFACES_SIZE - 1));
    const entry = () => { const v = decode(XlbIface, ifaces.lookup(key)!); return [v.ifindex, (v.mac as Buffer).toString('hex')]; };
    try {
      inNetns(ns, () => fw.attach(ifindex, 'generic'));
      assert.deepEqual(entry(), [ifindex, '02000000009a'], 'attach writes the interface\'s MAC');
      ip(['link', 'set', 'va', 'address', '02:00:00:00:00:9b'], ns);
      inNetns(ns, () => fw.attach(ifindex, 'generic')); // already there: nothing to do (what an adopting process does) but the entry
      assert.deepEqual(entry(), [ifindex, '02000000009b'], 'attached already: the entry is written again');
      assert.equal(attachedId(), progId);
      assert.throws(() => inNetns(ns, () => fw.attach(ifindex, 'native')), (e: Error & { code?: string }) => e.code === 'EEXIST' && /in generic mode: detach it first/.test(e.message));
      assert.equal(inNetns(ns, () => fw.detach(ifindex)), true);
      assert.equal(attachedId(), undefined);
      assert.deepEqual(entry(), [0, '000000000000'], 'detach clears the entry');
    } finally {
      ifaces.close();
    }
    assert.equal(inNetns(ns, () => fw.detach(ifindex)), false, 'not attached: false');
    inNetns(ns, () => other.attach(ifindex, 'generic'));
    assert.throws(() => inNetns(ns, () => fw.attach(ifindex, 'generic')), (e: Error & { code?: string }) => e.code === 'EBUSY' && /another XDP program/.test(e.message));
    assert.equal(attachedId(), other.program.info().id, 'the other program is left alone');
    assert.equal(inNetns(ns, () => fw.detach(ifindex)), false, 'detach leaves another program alone');
  } finally {
    fw.close();
    other.close();
    destroyNamespaces(prefix);
    unregister();
  }
});
