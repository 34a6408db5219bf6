/**
 * struct gen_cfg of bpf/xlb_gen.bpf.c (the bench's traffic generator), built from a template
 * frame. Private to the bench: the generator is not part of the forwarder's ABI.
 *
 *   frame[128] @0, len u32 @128, ifindex u32 @132, nflows u32 @136, then u16s:
 *   sport_off @140, saddr_off @142, l4csum_off @144, ipcsum_off @146,
 *   sport_base @148, sport_span @150, saddr_base @152, udp @154; size 156.
 */

export const GEN_FRAME_MAX = 128;
export const GEN_CFG_SIZE = 156;

/** What the generator needs to know about a template frame; computed by describeTemplate. */
export interface GenTemplate {
  frameHex: string;
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
 * and the last 16 bits of its source address saddrBase + floor(i / sportSpan).
 */
export function describeTemplate(frame: Buffer, nflows: number, sportSpan: number): GenTemplate {
  if (frame.length < 8 || frame.length > GEN_FRAME_MAX) {
    throw new Error(`generator template: a frame of ${frame.length} bytes is not in 8..${GEN_FRAME_MAX}`);
  }
  const type = frame.readUInt16BE(12);
  let l4: number;
  let proto: number;
  let saddrOff: number;
  let ipcsumOff = 0;
  if (type === 0x0800) {
    if (frame[14] !== 0x45) throw new Error('generator template: IPv4 with options is not supported');
    l4 = 34;
    proto = frame[23]!;
    saddrOff = 14 + 12 + 2;
    ipcsumOff = 14 + 10;
  } else if (type === 0x86dd) {
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
  return {
    frameHex: frame.toString('hex'),
    len: frame.length,
    nflows,
    sportOff: l4,
    saddrOff,
    // a UDP checksum of 0 means "none": leave it so
    l4csumOff: udp && frame.readUInt16BE(l4csumOff) === 0 ? 0 : l4csumOff,
    ipcsumOff,
    sportBase: frame.readUInt16BE(l4),
    sportSpan,
    saddrBase: frame.readUInt16BE(saddrOff),
    udp,
  };
}

/** The map value for gen_config (host order integers, little-endian: x86 and arm64). */
export function encodeGenConfig(t: GenTemplate, ifindex: number): Buffer {
  const b = Buffer.alloc(GEN_CFG_SIZE);
  Buffer.from(t.frameHex, 'hex').copy(b, 0);
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
  return b;
}
