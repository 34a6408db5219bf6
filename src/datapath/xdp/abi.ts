/**
 * Mirror of bpf/include/xlb_abi.h: the structs, enums and limits shared with the BPF programs.
 *
 * Each struct is declared once here as a list of fields; offsets follow C's natural alignment
 * (what clang -target bpf does for these padding-free structs). test/bpf/abi.test.ts checks every
 * struct, enum and limit against the BTF of the compiled object and against the header, so a
 * layout change that is not mirrored here fails the tests.
 */
import { createHash } from 'node:crypto';

export type FieldKind = 'u8' | 'u16' | 'u32' | 'u64' | 'bytes';

export interface FieldSpec {
  readonly name: string;
  readonly kind: FieldKind;
  /** for 'bytes': the array length */
  readonly length?: number;
}

export interface Field extends FieldSpec {
  readonly offset: number;
  readonly size: number;
}

export interface StructLayout {
  readonly name: string;
  readonly size: number;
  readonly fields: readonly Field[];
}

const SCALAR_SIZE = { u8: 1, u16: 2, u32: 4, u64: 8 } as const;

function defineStruct(name: string, specs: readonly FieldSpec[]): StructLayout {
  let offset = 0;
  let align = 1;
  const fields: Field[] = [];
  for (const spec of specs) {
    const size = spec.kind === 'bytes' ? spec.length ?? 0 : SCALAR_SIZE[spec.kind];
    const fieldAlign = spec.kind === 'bytes' ? 1 : size;
    offset = Math.ceil(offset / fieldAlign) * fieldAlign;
    fields.push({ ...spec, offset, size });
    offset += size;
    align = Math.max(align, fieldAlign);
  }
  return { name, size: Math.ceil(offset / align) * align, fields };
}

const bytes = (name: string, length: number): FieldSpec => ({ name, kind: 'bytes', length });
const u8 = (name: string): FieldSpec => ({ name, kind: 'u8' });
const u16 = (name: string): FieldSpec => ({ name, kind: 'u16' });
const u32 = (name: string): FieldSpec => ({ name, kind: 'u32' });
const u64 = (name: string): FieldSpec => ({ name, kind: 'u64' });

// ---- limits ----
export const XLB_MAX_SERVICES = 1024;
export const XLB_MAX_REALS = 131072;
export const XLB_MAGLEV_SIZE_DEFAULT = 65537;
export const XLB_CT_SIZE_DEFAULT = 1048576;
export const XLB_NAT_SIZE_DEFAULT = 1048576;
export const XLB_PERSIST_SIZE_DEFAULT = 262144;
export const XLB_ID_NONE = 0;
/** Bumped on a change of meaning that keeps the layouts (xlb_abi.h); pinned maps of another version are not adopted. */
export const XLB_ABI_VERSION = 1;

// ---- enums ----
export const XlbFamily = { XLB_AF_INET: 4, XLB_AF_INET6: 6 } as const;
export const XlbMethod = { XLB_METHOD_DR: 1, XLB_METHOD_TUN: 2, XLB_METHOD_NAT: 3, XLB_METHOD_FULLNAT: 4 } as const;

/** enum xlb_counter, in order: the value is the index into global_stats. */
export const XLB_COUNTERS = [
  'XLB_CNT_RX',
  'XLB_CNT_PASS_NON_IP',
  'XLB_CNT_PASS_NON_SERVICE',
  'XLB_CNT_PASS_LOCAL',
  'XLB_CNT_DROP_TRUNCATED',
  'XLB_CNT_DROP_MALFORMED',
  'XLB_CNT_DROP_NO_REAL',
  'XLB_CNT_DROP_FRAGMENT',
  'XLB_CNT_DROP_ENCAP',
  'XLB_CNT_FRAGMENT_FWD',
  'XLB_CNT_ICMP_FWD',
  'XLB_CNT_CT_HIT',
  'XLB_CNT_CT_MISS',
  'XLB_CNT_CT_STALE',
  'XLB_CNT_TX',
  'XLB_CNT_REDIRECT',
  'XLB_CNT_DROP_NAT',
  'XLB_CNT_DROP_NAT_NO_PORT',
  'XLB_CNT_NAT_CREATED',
  'XLB_CNT_NAT_EXPIRED',
  'XLB_CNT_NAT_REPLY',
  'XLB_CNT_NAT_ICMP',
  'XLB_CNT_PERSIST_HIT',
  'XLB_CNT_PERSIST_NEW',
  'XLB_CNT_PASS_OTHER_HOST',
] as const;
export const XLB_CNT_MAX = XLB_COUNTERS.length;
/** The counters tagged [verdict] in xlb_abi.h: every packet counts exactly one of them, and
 * XLB_CNT_RX (which the program does not write) is their sum. */
export const XLB_VERDICT_COUNTERS: readonly (typeof XLB_COUNTERS)[number][] = [
  'XLB_CNT_PASS_NON_IP', 'XLB_CNT_PASS_NON_SERVICE', 'XLB_CNT_PASS_LOCAL', 'XLB_CNT_DROP_TRUNCATED',
  'XLB_CNT_DROP_MALFORMED', 'XLB_CNT_DROP_NO_REAL', 'XLB_CNT_DROP_FRAGMENT', 'XLB_CNT_DROP_ENCAP', 'XLB_CNT_TX',
  'XLB_CNT_REDIRECT', 'XLB_CNT_DROP_NAT', 'XLB_CNT_DROP_NAT_NO_PORT', 'XLB_CNT_PASS_OTHER_HOST',
];

// ---- flags ----
export const XLB_SVC_F_HASH_SRC_ONLY = 1 << 0;
export const XLB_SVC_F_OPS = 1 << 1;
export const XLB_REAL_F_ACTIVE = 1 << 0;
export const XLB_REAL_F_DRAINED = 1 << 1;
export const XLB_NAT_F_FULL = 1 << 0;
export const XLB_NAT_F_CLOSING = 1 << 1;
export const XLB_CFG_F_NAT = 1 << 0;

// ---- the vip_filter bitmap: the bit of an address, xlb_abi.h ----
export const XLB_VIP_FILTER_WORDS = 1024;

// ---- the ifaces map: an interface's entry at index ifindex & (XLB_IFACES_SIZE - 1) ----
export const XLB_IFACES_SIZE = 256;

// ---- the nat_ports bitmap: port p is bit (p & 63) of word (p >> 6) ----
export const XLB_NAT_PORT_WORDS = 1024;

// ---- full-NAT source ports ----
export const XLB_NAT_PORT_MIN = 1024;
export const XLB_NAT_PORT_MAX = 65535;
export const XLB_NAT_PORT_TRIES = 8;

// ---- structs ----
export const XlbVipKey = defineStruct('xlb_vip_key', [bytes('addr', 16), u16('port'), u8('proto'), u8('family')]);
export const XlbService = defineStruct('xlb_service', [
  u32('id'), u32('flags'), u32('persist_timeout'), u8('persist_plen'), bytes('pad', 3),
]);
export const XlbReal = defineStruct('xlb_real', [
  bytes('addr', 16), bytes('dmac', 6), bytes('smac', 6), u32('ifindex'), u8('family'), u8('method'), u16('flags'),
  u16('port'), bytes('pad', 2),
]);
export const XlbFlowKey = defineStruct('xlb_flow_key', [
  bytes('saddr', 16), bytes('daddr', 16), u16('sport'), u16('dport'), u8('proto'), u8('family'), bytes('pad', 2),
]);
export const XlbFlowKey4 = defineStruct('xlb_flow_key4', [
  bytes('saddr', 4), bytes('daddr', 4), u16('sport'), u16('dport'), u8('proto'), bytes('pad', 3),
]);
export const XlbFlow = defineStruct('xlb_flow', [u32('real_id'), u32('service_id'), u16('nat_port'), u16('persist_seen')]);
export const XlbNat = defineStruct('xlb_nat', [
  u64('last'), bytes('vaddr', 16), bytes('caddr', 16), u16('vport'), u16('cport'), bytes('dmac', 6), bytes('smac', 6),
  u32('ifindex'), u16('flags'), bytes('pad', 2),
]);
export const XlbPersistKey = defineStruct('xlb_persist_key', [u32('service_id'), u8('family'), bytes('pad', 3), bytes('addr', 16)]);
export const XlbPersist = defineStruct('xlb_persist', [u64('last'), u32('real_id'), bytes('pad', 4)]);
export const XlbIface = defineStruct('xlb_iface', [u32('ifindex'), bytes('mac', 6), bytes('pad', 2)]);
export const XlbStats = defineStruct('xlb_stats', [u64('packets'), u64('bytes'), u64('conns')]);
export const XlbConfig = defineStruct('xlb_config', [
  bytes('tun_src4', 4), bytes('tun_src6', 16), u8('tun_src4_bits'), u8('tun_src6_bits'), u8('tun_ttl'), u8('pad'),
  bytes('nat_src4', 4), bytes('nat_src6', 16), u32('nat_flags'),
  u32('nat_tcp_timeout'), u32('nat_tcp_fin_timeout'), u32('nat_udp_timeout'),
]);

/** The control plane's own state (meta, real_meta): never read by the program. */
export const XlbMeta = defineStruct('xlb_meta', [u32('abi_version'), u32('maglev_size'), u64('layout_hash')]);
export const XlbRealMeta = defineStruct('xlb_real_meta', [u32('service_id'), u32('weight')]);

export const ABI_STRUCTS: readonly StructLayout[] = [
  XlbVipKey, XlbService, XlbReal, XlbFlowKey, XlbFlowKey4, XlbFlow, XlbNat, XlbPersistKey, XlbPersist, XlbIface, XlbStats, XlbConfig,
  XlbMeta, XlbRealMeta,
];

/**
 * A fingerprint of the layouts above and of the counters' order (the first 8 bytes of a SHA-256),
 * stored with pinned maps (xlb_meta.layout_hash): maps written by a build whose layouts differ
 * are not adopted, even if XLB_ABI_VERSION was not bumped.
 */
export function abiLayoutHash(): bigint {
  const text = JSON.stringify([ABI_STRUCTS.map((s) => [s.name, s.size, s.fields.map((f) => [f.name, f.kind, f.offset, f.size])]), XLB_COUNTERS]);
  return createHash('sha256').update(text).digest().readBigUInt64LE(0);
}

/**
 * Field values for encode/decode. Multi-byte integers are in host order (little-endian on
 * every target we build for) except where the ABI says network order: those fields (ports)
 * are passed here already in the byte order the struct stores, so callers use
 * `htons`-style helpers from ./net.ts.
 */
export type StructValues = Record<string, number | bigint | Uint8Array>;

export function encode(layout: StructLayout, values: StructValues): Buffer {
  const buf = Buffer.alloc(layout.size);
  for (const [name, value] of Object.entries(values)) {
    const field = layout.fields.find((f) => f.name === name);
    if (!field) throw new Error(`${layout.name} has no field '${name}'`);
    writeField(buf, field, value, layout.name);
  }
  return buf;
}

function writeField(buf: Buffer, f: Field, value: number | bigint | Uint8Array, struct: string): void {
  if (f.kind === 'bytes') {
    if (!(value instanceof Uint8Array) || value.length > f.size) {
      throw new Error(`${struct}.${f.name} takes at most ${f.size} bytes`);
    }
    buf.set(value, f.offset);
    return;
  }
  if (value instanceof Uint8Array) throw new Error(`${struct}.${f.name} takes a number`);
  switch (f.kind) {
    case 'u8': buf.writeUInt8(Number(value), f.offset); break;
    case 'u16': buf.writeUInt16LE(Number(value), f.offset); break;
    case 'u32': buf.writeUInt32LE(Number(value), f.offset); break;
    case 'u64': buf.writeBigUInt64LE(BigInt(value), f.offset); break;
  }
}

export function decode(layout: StructLayout, buf: Buffer, base = 0): Record<string, number | bigint | Buffer> {
  if (buf.length < base + layout.size) {
    throw new Error(`${layout.name}: need ${layout.size} bytes at ${base}, have ${buf.length - base}`);
  }
  const out: Record<string, number | bigint | Buffer> = {};
  for (const f of layout.fields) {
    const o = base + f.offset;
    switch (f.kind) {
      case 'bytes': out[f.name] = Buffer.from(buf.subarray(o, o + f.size)); break;
      case 'u8': out[f.name] = buf.readUInt8(o); break;
      case 'u16': out[f.name] = buf.readUInt16LE(o); break;
      case 'u32': out[f.name] = buf.readUInt32LE(o); break;
      case 'u64': out[f.name] = buf.readBigUInt64LE(o); break;
    }
  }
  return out;
}
