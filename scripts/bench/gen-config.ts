/**
 * The layouts of bpf/xlb_gen.bpf.c (the benchmarks' traffic generator and sink), mirrored here:
 * struct gen_cfg, the gen_stats slots and struct gen_sample. Private to the benchmarks: the
 * generator is not part of the forwarder's ABI. Pure functions only.
 *
 *   struct gen_cfg: frame[128] @0, len u32 @128, ifindex u32 @132, nflows u32 @136, then u16s:
 *   sport_off @140, saddr_off @142, l4csum_off @144, ipcsum_off @146,
 *   sport_base @148, sport_span @150, saddr_base @152, udp @154, gap_ns u32 @156; size 160.
 *
 *   struct gen_sample: len u32 @0, pad u32 @4, data[128] @8; size 136.
 */

export const GEN_FRAME_MAX = 128;
export const GEN_CFG_SIZE = 160;

/** gen_stats slots (per-CPU u64) */
export const GEN_ST = {
  generated: 0, sunk: 1, sinkPassed: 2, sampleLeft: 3, nextNs: 4, t0Ns: 5, t0Seq: 6, t1Ns: 7, t1Seq: 8,
} as const;
export const GEN_ST_MAX = 9;
/** the program reads the clock every this many frames (GEN_STAMP_EVERY) */
export const GEN_STAMP_EVERY = 64;

export const GEN_SAMPLE_SLOTS = 64;
export const GEN_SAMPLE_MAX = 128;
export const GEN_SAMPLE_SIZE = 8 + GEN_SAMPLE_MAX;

/** The longest frame the generator sends: an untagged Ethernet frame of a 1500-byte packet, FCS not included. */
export const GEN_FRAME_LEN_MAX = 1514;

/** What the generator needs to know about a template frame; computed by describeTemplate. */
export interface GenTemplate {
  /** the whole frame of flow 0 (the test run's data); the program rewrites its first `len` bytes */
  frameHex: string;
  /** template bytes the program writes on every run: min(frame length, GEN_FRAME_MAX) */
  len: number;
  nflows: number;
  sportOff: number;
  saddrOff: number;
  l4csumOff: number;
  ipcsumOff: number;
  sportBase: number;
  sportSpan: number;
  saddrBase: number;
  udp: boolean;
}

/**
 * Offsets in an untagged Ethernet frame carrying IPv4 (no options) or IPv6 (no extension
 * headers) and TCP or UDP. Flow i of the generator has source port sportBase + i % sportSpan
 * and the last 16 bits of its source address saddrBase + floor(i / sportSpan) (mod 2^16).
 * Frames longer than GEN_FRAME_MAX are fine as long as the headers lie in the first
 * GEN_FRAME_MAX bytes: the program rewrites only those, the rest comes from the test run's data.
 */
export function describeTemplate(frame: Buffer, nflows: number, sportSpan: number): GenTemplate {
  if (frame.length < 8 || frame.length > GEN_FRAME_LEN_MAX) {
    throw new Error(`generator template: a frame of ${frame.length} bytes is not in 8..${GEN_FRAME_LEN_MAX}`);
  }
  if (frame.length < 14) throw new Error(`generator template: a frame of ${frame.length} bytes ends inside the Ethernet header`);
  const type = frame.readUInt16BE(12);
  let l4: number;
  let proto: number;
  let saddrOff: number;
  let ipcsumOff = 0;
  if (type === 0x0800) {
    if (frame.length < 34) throw new Error('generator template: the frame ends inside the IPv4 header');
    if (frame[14] !== 0x45) throw new Error('generator template: IPv4 with options is not supported');
    l4 = 34;
    proto = frame[23]!;
    saddrOff = 14 + 12 + 2;
    ipcsumOff = 14 + 10;
  } else if (type === 0x86dd) {
    if (frame.length < 54) throw new Error('generator template: the frame ends inside the IPv6 header');
    l4 = 54;
    proto = frame[20]!;
    saddrOff = 14 + 8 + 14;
  } else {
    throw new Error(`generator template: EtherType 0x${type.toString(16)} is not IPv4 or IPv6`);
  }
  if (proto !== 6 && proto !== 17) throw new Error(`generator template: protocol ${proto} is not TCP or UDP`);
  const udp = proto === 17;
  const l4csumOff = l4 + (udp ? 6 : 16);
  if (l4csumOff + 2 > frame.length) throw new Error('generator template: the frame ends inside the L4 header');
  if (!Number.isInteger(sportSpan) || sportSpan < 1 || sportSpan > 0xffff) throw new Error(`sportSpan ${sportSpan} is not in 1..65535`);
  if (!Number.isInteger(nflows) || nflows < 1 || nflows > 0xffffffff) throw new Error(`nflows ${nflows} is not in 1..2^32-1`);
  const sportBase = frame.readUInt16BE(l4);
  if (sportBase + Math.min(sportSpan, nflows) - 1 > 0xffff) {
    throw new Error(`source ports ${sportBase}..${sportBase + Math.min(sportSpan, nflows) - 1} go beyond 65535`);
  }
  return {
    frameHex: frame.toString('hex'),
    len: Math.min(frame.length, GEN_FRAME_MAX),
    nflows,
    sportOff: l4,
    saddrOff,
    // a UDP checksum of 0 means "none": leave it so
    l4csumOff: udp && frame.readUInt16BE(l4csumOff) === 0 ? 0 : l4csumOff,
    ipcsumOff,
    sportBase,
    sportSpan,
    saddrBase: frame.readUInt16BE(saddrOff),
    udp,
  };
}

/**
 * The map value for gen_config (host order integers, little-endian: x86 and arm64); gapNs > 0
 * paces the generator in the program (ns between two frames), 0 = full speed.
 */
export function encodeGenConfig(t: GenTemplate, ifindex: number, gapNs = 0): Buffer {
  if (!Number.isInteger(gapNs) || gapNs < 0 || gapNs > 0xffffffff) throw new Error(`gapNs ${gapNs} is not in 0..2^32-1`);
  const b = Buffer.alloc(GEN_CFG_SIZE);
  Buffer.from(t.frameHex, 'hex').copy(b, 0, 0, t.len);
  b.writeUInt32LE(t.len, 128);
  b.writeUInt32LE(ifindex, 132);
  b.writeUInt32LE(t.nflows, 136);
  b.writeUInt16LE(t.sportOff, 140);
  b.writeUInt16LE(t.saddrOff, 142);
  b.writeUInt16LE(t.l4csumOff, 144);
  b.writeUInt16LE(t.ipcsumOff, 146);
  b.writeUInt16LE(t.sportBase, 148);
  b.writeUInt16LE(t.sportSpan, 150);
  b.writeUInt16LE(t.saddrBase, 152);
  b.writeUInt16LE(t.udp ? 1 : 0, 154);
  b.writeUInt32LE(gapNs, 156);
  return b;
}

/** One sink_samples value: the copied bytes (at most GEN_SAMPLE_MAX) and the frame's length, or null for an empty slot. */
export function decodeSample(value: Buffer): { len: number; data: Buffer } | null {
  if (value.length < GEN_SAMPLE_SIZE) throw new Error(`a gen_sample is ${GEN_SAMPLE_SIZE} bytes, got ${value.length}`);
  const len = value.readUInt32LE(0);
  if (len === 0) return null;
  return { len, data: Buffer.from(value.subarray(8, 8 + Math.min(len, GEN_SAMPLE_MAX))) };
}
