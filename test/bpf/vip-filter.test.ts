/**
 * The vip_filter bitmap (xlb_abi.h) of the XDP forwarder: a set bit only means "look the address
 * up", so addresses that share a VIP's bit must behave exactly as without the filter, and the
 * control plane must keep the bit of every VIP set while any VIP has it.
 *
 * The bit of an address is computed here from the ABI's text (the xor of the four 32-bit words,
 * little-endian, folded to 16 bits), independently of the control plane's vipFilterBitmap, to
 * find addresses that collide.
 *
 * Needs root and a build (`make all`); without them every test fails and says so.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADDON_PATH, XDP_PASS, XDP_TX } from '../../src/datapath/bpf/index.ts';
import { XdpForwarder, type RealSpec, type ServiceSpec } from '../../src/datapath/xdp/forwarder.ts';
import { XLB_VIP_FILTER_WORDS } from '../../src/datapath/xdp/abi.ts';
import { XLB_OBJECT, requireFile, requireRoot } from '../lib/require.ts';
import { eth, ipBytes, ipv4, packet, payload, tcp, udp } from '../lib/packets.ts';

let fw: XdpForwarder | undefined;

function forwarder(): XdpForwarder {
  requireRoot();
  requireFile(XLB_OBJECT, 'make all');
  requireFile(ADDON_PATH, 'make all');
  fw ??= new XdpForwarder(XdpForwarder.load());
  fw.setConfig({});
  return fw;
}

after(() => fw?.close());

/** The address's bit, from xlb_abi.h's description. */
function filterBit(address: string): number {
  const b = Buffer.alloc(16);
  ipBytes(address).copy(b);
  let x = 0;
  for (let i = 0; i < 16; i += 4) x ^= b.readUInt32LE(i);
  return (x ^ (x >>> 16)) & 0xffff;
}

/** Addresses in prefix.0.0/16 with the filter bit of `of`, not `of` itself. (Within one /16 the
 * bits of IPv4 addresses all differ; across /16s they collide.) */
function sameBit(of: string, prefix: '198.18' | '198.19', n: number): string[] {
  const want = filterBit(of);
  const out: string[] = [];
  for (let i = 0; i < 65536 && out.length < n; i++) {
    const a = `${prefix}.${i >> 8}.${i & 255}`;
    if (a !== of && filterBit(a) === want) out.push(a);
  }
  assert.equal(out.length, n, `no ${n} addresses in ${prefix}.0.0/16 share the filter bit of ${of}`);
  return out;
}

const LB_MAC = '02:00:5e:00:00:02';
const real: RealSpec = { address: '198.18.9.1', weight: 1, method: 'dr', mac: '02:00:5e:00:09:01', smac: LB_MAC };
const svc = (address: string, protocol: 'tcp' | 'udp' = 'tcp'): ServiceSpec => ({ address, port: 80, protocol });

function frame(dst: string, proto: 'tcp' | 'udp'): Buffer {
  const l2 = eth({ dst: LB_MAC, src: '02:00:5e:00:00:01' });
  const l3 = ipv4({ src: '198.18.100.1', dst, ttl: 64 });
  const l4 = proto === 'tcp' ? tcp({ sport: 40000, dport: 80, flags: 'PA', seq: 1, ack: 1, window: 100 }) : udp({ sport: 40000, dport: 80 });
  return packet(l2, l3, l4, payload(16));
}

/** The verdict and the counters that moved. */
function run(f: XdpForwarder, frame: Buffer): { verdict: number; moved: Record<string, bigint> } {
  const before = f.counters();
  const { verdict } = f.testRun(frame);
  const after = f.counters();
  const moved: Record<string, bigint> = {};
  for (const [k, v] of Object.entries(after)) if (v !== before[k as keyof typeof before]) moved[k] = v - before[k as keyof typeof before];
  return { verdict, moved };
}

test('an address that shares a VIP\'s filter bit but is no VIP is passed like any other', () => {
  const f = forwarder();
  const vip = '198.19.0.10';
  const [other] = sameBit(vip, '198.18', 1);
  f.setService(svc(vip), [real]);
  try {
    for (const proto of ['tcp', 'udp'] as const) {
      const { verdict, moved } = run(f, frame(other!, proto));
      assert.equal(verdict, XDP_PASS, `${proto} to ${other}`);
      assert.deepEqual(moved, { rx: 1n, pass_non_service: 1n }, `${proto} to ${other}`);
    }
    // the VIP itself: balanced; its UDP port 80 (no service): passed
    assert.deepEqual(run(f, frame(vip, 'tcp')), { verdict: XDP_TX, moved: { rx: 1n, ct_miss: 1n, tx: 1n } });
    assert.deepEqual(run(f, frame(vip, 'udp')), { verdict: XDP_PASS, moved: { rx: 1n, pass_non_service: 1n } });
  } finally {
    f.removeService(svc(vip));
    f.clearConntrack();
  }
});

test('two VIPs with one filter bit: removing one keeps the other served; removing both clears the bit', () => {
  const f = forwarder();
  const a = '198.19.0.20';
  const [b] = sameBit(a, '198.18', 1);
  f.setService(svc(a), [real]);
  f.setService(svc(b!), [real]);
  try {
    f.removeService(svc(a));
    assert.equal(run(f, frame(b!, 'tcp')).verdict, XDP_TX, `${b} after ${a} was removed`);
    assert.equal(run(f, frame(a, 'tcp')).verdict, XDP_PASS, `${a} after its removal`);
  } finally {
    f.removeService(svc(b!));
    f.clearConntrack();
  }
  assert.equal(run(f, frame(b!, 'tcp')).verdict, XDP_PASS);
});

test('the filter holds exactly the bits of the VIP addresses', () => {
  const parts = XdpForwarder.load();
  try {
    const f = new XdpForwarder(parts);
    f.setConfig({});
    const map = parts.maps.vipFilter!;
    const setBits = (): number[] => {
      const out: number[] = [];
      for (let w = 0; w < XLB_VIP_FILTER_WORDS; w++) {
        const v = map.lookup(Buffer.from(new Uint32Array([w]).buffer))!.readBigUInt64LE(0);
        for (let i = 0; i < 64; i++) if ((v >> BigInt(i)) & 1n) out.push(w * 64 + i);
      }
      return out;
    };
    const vips = ['198.19.1.1', '198.19.1.2', 'fd00:100::1'];
    f.setService(svc(vips[0]!), [real]);
    f.setService(svc(vips[0]!, 'udp'), [real]);
    f.setService(svc(vips[1]!), [real]);
    f.setService(svc(vips[2]!), [{ ...real, address: 'fd00:9::1' }]);
    assert.deepEqual(setBits(), [...new Set(vips.map(filterBit))].sort((x, y) => x - y));
    f.removeService(svc(vips[0]!));
    assert.deepEqual(setBits(), [...new Set(vips.map(filterBit))].sort((x, y) => x - y), 'the address still has a UDP service');
    f.removeService(svc(vips[0]!, 'udp'));
    f.removeService(svc(vips[2]!));
    assert.deepEqual(setBits(), [filterBit(vips[1]!)]);
    f.removeService(svc(vips[1]!));
    assert.deepEqual(setBits(), []);
  } finally {
    parts.object?.close();
  }
});
