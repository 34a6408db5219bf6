/**
 * The generator's traffic, as plain data (pure functions; the I/O is in gen.ts):
 *
 *  - TrafficSpec: who sends what to whom (MACs, addresses, ports, protocol), how many flows and
 *    the frame size; framesOf() builds flow i's frame with the independent packet builder
 *    (test/lib/packets.ts), templateOf() the generator's template (gen-config.ts);
 *  - frame size: counted as RFC 2544 counts it, the Ethernet frame INCLUDING its 4-byte FCS,
 *    which a veth does not carry: size 64 (the minimum Ethernet frame) writes 60 bytes,
 *    1518 a full 1500-byte IP packet. The payload is zero-filled;
 *  - flows: flow i has source port sport + i % sportSpan and the last 16 bits of its source
 *    address advanced by floor(i / sportSpan), exactly as bpf/xlb_gen.bpf.c numbers them;
 *  - pacing: paceStep() says how many frames to send now and how long to wait, for a target rate
 *    (0 = full speed) and a total given as frames or as a duration; the clock is the caller's.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { eth, formatIp, ipBytes, ipv4, ipv6, packet, tcp, udp } from '../../test/lib/packets.ts';
import { describeTemplate, GEN_FRAME_LEN_MAX, type GenTemplate } from './gen-config.ts';

export const FCS_LEN = 4;
export const FRAME_SIZE_MIN = 64;
export const FRAME_SIZE_MAX = GEN_FRAME_LEN_MAX + FCS_LEN; // 1518

export type L4 = 'udp' | 'tcp';

export interface TrafficSpec {
  srcMac: string;
  dstMac: string;
  /** flow 0's source address; the family of src and dst must agree */
  src: string;
  dst: string;
  proto: L4;
  /** flow 0's source port */
  sport: number;
  dport: number;
  /** flows cycled through, >= 1 */
  flows: number;
  /** source ports per source address (default: as many as the flows need, up to 65536 - sport) */
  sportSpan?: number;
  /** Ethernet frame size incl. the FCS: FRAME_SIZE_MIN..FRAME_SIZE_MAX */
  size: number;
  ttl?: number;
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** Bytes of the headers before the payload: Ethernet + IP + UDP/TCP. */
export function headerLength(family: 4 | 6, proto: L4): number {
  return 14 + (family === 4 ? 20 : 40) + (proto === 'udp' ? 8 : 20);
}

export function familyOfAddress(a: string): 4 | 6 {
  if (isIPv4(a)) return 4;
  if (isIPv6(a)) return 6;
  throw new Error(`'${a}' is not an IPv4 or IPv6 address`);
}

/** Checks a spec; throws one error naming the field and what is wrong with it. */
export function checkTraffic(s: TrafficSpec): void {
  for (const k of ['srcMac', 'dstMac'] as const) {
    if (!MAC_RE.test(s[k])) throw new Error(`${k} '${s[k]}' is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  }
  const fs = familyOfAddress(s.src);
  const fd = familyOfAddress(s.dst);
  if (fs !== fd) throw new Error(`src ${s.src} is IPv${fs} but dst ${s.dst} is IPv${fd}`);
  if (s.proto !== 'udp' && s.proto !== 'tcp') throw new Error(`proto '${String(s.proto)}' is not udp or tcp`);
  for (const [k, v] of [['sport', s.sport], ['dport', s.dport]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 65535) throw new Error(`${k} ${v} is not a port (1..65535)`);
  }
  if (!Number.isInteger(s.flows) || s.flows < 1 || s.flows > 0xffffffff) throw new Error(`flows ${s.flows} is not in 1..2^32-1`);
  const span = sportSpanOf(s);
  if (!Number.isInteger(span) || span < 1 || s.sport + span - 1 > 65535) {
    throw new Error(`sportSpan ${span} with sport ${s.sport}: the source ports would go beyond 65535`);
  }
  if (Math.ceil(s.flows / span) > 65536) {
    throw new Error(`${s.flows} flows with ${span} source ports per address need more than 65536 source addresses`);
  }
  const min = headerLength(fs, s.proto) + FCS_LEN;
  const lo = Math.max(FRAME_SIZE_MIN, min);
  if (!Number.isInteger(s.size) || s.size < lo || s.size > FRAME_SIZE_MAX) {
    throw new Error(`size ${s.size} is not in ${lo}..${FRAME_SIZE_MAX} (bytes of the Ethernet frame incl. the FCS; `
      + `IPv${fs}/${s.proto.toUpperCase()} headers take ${min - FCS_LEN} bytes + ${FCS_LEN} FCS)`);
  }
  if (s.ttl !== undefined && (!Number.isInteger(s.ttl) || s.ttl < 1 || s.ttl > 255)) throw new Error(`ttl ${s.ttl} is not in 1..255`);
}

export function sportSpanOf(s: TrafficSpec): number {
  return s.sportSpan ?? Math.min(s.flows, 65536 - s.sport);
}

/** Flow i's source address and port. */
export function flowOf(s: TrafficSpec, i: number): { src: string; sport: number } {
  const span = sportSpanOf(s);
  const f = s.flows > 1 ? i % s.flows : 0;
  const b = ipBytes(s.src);
  const at = b.length - 2;
  b.writeUInt16BE((b.readUInt16BE(at) + Math.floor(f / span)) & 0xffff, at);
  return { src: formatIp(b), sport: s.sport + (f % span) };
}

/** Flow i's frame (size - 4 bytes, zero payload), from the independent packet builder. */
export function frameOf(s: TrafficSpec, i = 0): Buffer {
  checkTraffic(s);
  const family = familyOfAddress(s.dst);
  const { src, sport } = flowOf(s, i);
  const pay = Buffer.alloc(s.size - FCS_LEN - headerLength(family, s.proto));
  const l2 = eth({ dst: s.dstMac, src: s.srcMac });
  const l3 = family === 4 ? ipv4({ src, dst: s.dst, ttl: s.ttl ?? 64 }) : ipv6({ src, dst: s.dst, hopLimit: s.ttl ?? 64 });
  const l4 = s.proto === 'udp'
    ? udp({ sport, dport: s.dport })
    : tcp({ sport, dport: s.dport, flags: 'A', seq: 1, ack: 1, window: 502 });
  return packet(l2, l3, l4, pay);
}

export function templateOf(s: TrafficSpec): GenTemplate {
  return describeTemplate(frameOf(s, 0), s.flows, sportSpanOf(s));
}

// ---------------------------------------------------------------- pacing

export interface PaceOptions {
  /** frames per second; 0 = as fast as the generator goes */
  rate: number;
  /** stop after this many frames (undefined: no frame limit) */
  frames?: number;
  /** stop once this much time has passed (undefined: no time limit) */
  durationNs?: number;
  /** at most this many frames per test run */
  chunkMax: number;
}

/**
 * What to do at time `elapsedNs` after the start with `sent` frames sent so far:
 * {frames: n > 0} send n now; {waitNs: t} sleep t first; {done: true} stop.
 * With a rate, the frames due by now are sent in chunks of at most chunkMax (so a late start
 * catches up, never beyond the rate on average); without one, chunkMax every time.
 */
export function paceStep(o: PaceOptions, elapsedNs: number, sent: number):
  { done: true } | { done: false; frames: number; waitNs: 0 } | { done: false; frames: 0; waitNs: number } {
  const left = o.frames === undefined ? Infinity : o.frames - sent;
  if (left <= 0 || (o.durationNs !== undefined && elapsedNs >= o.durationNs)) return { done: true };
  if (o.rate <= 0) return { done: false, frames: Math.min(o.chunkMax, left), waitNs: 0 };
  const due = Math.floor((o.rate * elapsedNs) / 1e9) + 1 - sent;
  if (due > 0) return { done: false, frames: Math.min(due, o.chunkMax, left), waitNs: 0 };
  // the next frame is due at (sent / rate) s; never past the end of the duration
  let wait = Math.ceil((sent * 1e9) / o.rate - elapsedNs);
  if (o.durationNs !== undefined) wait = Math.min(wait, o.durationNs - elapsedNs);
  return { done: false, frames: 0, waitNs: Math.max(wait, 1) };
}

/**
 * Chunk size at full speed: about `targetNs` of frames at the rate seen so far, within
 * [min, max], so that a run ends close to its duration without a system call per few frames.
 */
export function nextChunk(framesPerSec: number, targetNs: number, min: number, max: number): number {
  if (!(framesPerSec > 0)) return min;
  return Math.max(min, Math.min(max, Math.round((framesPerSec * targetNs) / 1e9)));
}
