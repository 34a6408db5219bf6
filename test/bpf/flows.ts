/**
 * Helpers for the forwarder's behaviour tests (forwarder.test.ts, persist.test.ts): frames of
 * many flows from the independent builder, a forwarded frame's real (by its DR MAC), counter
 * deltas.
 */
import assert from 'node:assert/strict';
import { xdpVerdictName } from '../../src/datapath/bpf/index.ts';
import { COUNTER_NAMES, type RealSpec, type XdpForwarder } from '../../src/datapath/xdp/forwarder.ts';
import { EGRESS_MAC, LB_MAC, PEER_MAC, XDP_TX } from './fixtures.ts';
import { eth, ipv4, ipv6, packet, parseFrame, payload, tcp, udp } from '../lib/packets.ts';

export type Counters = Record<string, bigint>;

export function deltas(before: Counters, after: Counters): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  for (const name of COUNTER_NAMES) {
    const a = after[name];
    const b = before[name];
    assert.ok(a !== undefined && b !== undefined, `counters() has no '${name}'`);
    if (a !== b) out[name] = a - b;
  }
  return out;
}

export const showDeltas = (d: Record<string, bigint>) => Object.entries(d).map(([k, v]) => `${k} +${v}`).join(', ') || 'none';

const hex2 = (n: number) => n.toString(16).padStart(2, '0');
/** A distinct MAC per real address: 02:00:00:10:<third octet>:<fourth octet> (IPv6: the last two bytes). */
export function macFor(address: string): string {
  if (address.includes(':')) {
    const last = address.split(':').at(-1) ?? '0';
    const n = parseInt(last || '0', 16);
    return `02:00:00:16:${hex2(n >> 8)}:${hex2(n & 0xff)}`;
  }
  const [, , c = '0', d = '0'] = address.split('.');
  return `02:00:00:10:${hex2(Number(c))}:${hex2(Number(d))}`;
}

export function drReal(address: string, weight = 1): RealSpec {
  return { address, weight, method: 'dr', mac: macFor(address), smac: EGRESS_MAC };
}

/** A frame from the client side's router to the balancer. */
export const E = eth({ dst: LB_MAC, src: PEER_MAC });

export function tcpFrame(src: string, sport: number, dst: string, dport: number, flags: string, data: Buffer = Buffer.alloc(0)): Buffer {
  if (dst.includes(':')) return packet(E, ipv6({ src, dst }), tcp({ sport, dport, flags, seq: 1000, ack: flags.includes('A') ? 1 : 0 }), data);
  return packet(E, ipv4({ src, dst, df: true }), tcp({ sport, dport, flags, seq: 1000, ack: flags.includes('A') ? 1 : 0 }), data);
}

export function udpFrame(src: string, sport: number, dst: string, dport: number, data: Buffer = payload(8)): Buffer {
  return packet(E, ipv4({ src, dst }), udp({ sport, dport }), data);
}

/** Run a frame that must be forwarded with XDP_TX; return the output. */
export function forward(fw: XdpForwarder, frame: Buffer): Buffer {
  const r = fw.testRun(frame);
  if (r.verdict !== XDP_TX) assert.fail(`expected XDP_TX, got ${xdpVerdictName(r.verdict)} for ${parseFrame(frame).ip?.src}`);
  return r.packet;
}

/** Which real a DR output went to, from its destination MAC. */
export function realByMac(reals: readonly RealSpec[]): (out: Buffer) => string {
  const byMac = new Map(reals.map((r) => [r.mac, r.address]));
  return (out) => {
    const mac = parseFrame(out).dst;
    const address = byMac.get(mac);
    if (address === undefined) assert.fail(`output to ${mac}, which is none of the reals ${[...byMac.keys()].join(' ')}`);
    return address;
  };
}

export function countBy<T>(xs: Iterable<T>): Map<T, number> {
  const m = new Map<T, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
}
