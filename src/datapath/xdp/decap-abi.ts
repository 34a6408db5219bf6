/**
 * Mirror of bpf/include/xlb_decap_abi.h: the structs, enums and limits shared with the
 * decapsulation program (bpf/xlb_decap.bpf.c). test/bpf/decap-abi.test.ts checks every struct,
 * enum and #define here against the BTF of the compiled object and against the header.
 *
 * Layouts are written out with their offsets (the structs are small and padding-free); they use
 * the forwarder mirror's StructLayout, so encode()/decode() of ./abi.ts work on them.
 */
import type { StructLayout } from './abi.ts';

// ---- limits and flags ----
export const XLB_DECAP_MAX_PREFIXES = 1024;
export const XLB_DECAP_F_FILTER_SRC = 1 << 0;

/** enum xlb_decap_counter, in order: the value is the index into decap_stats. */
export const XLB_DECAP_COUNTERS = [
  'XLB_DECAP_CNT_RX',
  'XLB_DECAP_CNT_DECAP4',
  'XLB_DECAP_CNT_DECAP6',
  'XLB_DECAP_CNT_PASS',
  'XLB_DECAP_CNT_PASS_FRAGMENT',
  'XLB_DECAP_CNT_DROP_TRUNCATED',
  'XLB_DECAP_CNT_DROP_MALFORMED',
  'XLB_DECAP_CNT_DROP_SOURCE',
  'XLB_DECAP_CNT_DROP_ECN',
  'XLB_DECAP_CNT_ABORTED',
] as const;
export const XLB_DECAP_CNT_MAX = XLB_DECAP_COUNTERS.length;

// ---- structs ----
export const XlbDecapConfig: StructLayout = {
  name: 'xlb_decap_config',
  size: 4,
  fields: [{ name: 'flags', kind: 'u32', offset: 0, size: 4 }],
};

/** struct bpf_lpm_trie_key's layout: a u32 prefix length, then the address bytes. */
const lpmKey = (name: string, addrLength: number): StructLayout => ({
  name,
  size: 4 + addrLength,
  fields: [
    { name: 'prefixlen', kind: 'u32', offset: 0, size: 4 },
    { name: 'addr', kind: 'bytes', length: addrLength, offset: 4, size: addrLength },
  ],
});

export const XlbDecapSrc4Key = lpmKey('xlb_decap_src4_key', 4);
export const XlbDecapSrc6Key = lpmKey('xlb_decap_src6_key', 16);

export const DECAP_ABI_STRUCTS: readonly StructLayout[] = [XlbDecapConfig, XlbDecapSrc4Key, XlbDecapSrc6Key];
