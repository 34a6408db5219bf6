/**
 * The ABI mirror (src/datapath/xdp/abi.ts) must match the compiled object's BTF and the
 * header's #defines, so a layout change on one side cannot drift silently.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import * as abi from '../../src/datapath/xdp/abi.ts';
import { REPO, XLB_OBJECT, requireCommand, requireFile } from '../lib/require.ts';

interface BtfType {
  id: number; kind: string; name: string; size?: number; type_id?: number; nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
  values?: { name: string; val: number }[];
}

function loadBtf(): Map<number, BtfType> {
  requireFile(XLB_OBJECT, 'make bpf');
  requireCommand('bpftool', 'bpftool');
  const out = execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', XLB_OBJECT], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const types = (JSON.parse(out) as { types: BtfType[] }).types;
  return new Map(types.map((t) => [t.id, t]));
}

function sizeOf(btf: Map<number, BtfType>, id: number): number {
  const t = btf.get(id);
  assert.ok(t, `BTF type ${id} missing`);
  switch (t.kind) {
    case 'TYPEDEF': case 'CONST': case 'VOLATILE': return sizeOf(btf, t.type_id!);
    case 'ARRAY': return sizeOf(btf, t.type_id!) * t.nr_elems!;
    default: return t.size!;
  }
}

const btf = loadBtf();
const byName = (kind: string, name: string) => [...btf.values()].find((t) => t.kind === kind && t.name === name);

for (const layout of abi.ABI_STRUCTS) {
  test(`struct ${layout.name}: abi.ts matches the object's BTF`, () => {
    const t = byName('STRUCT', layout.name);
    assert.ok(t, `struct ${layout.name} is not in the BTF of ${XLB_OBJECT}`);
    assert.equal(t.size, layout.size, `sizeof(struct ${layout.name})`);
    const btfFields = (t.members ?? []).map((m) => ({ name: m.name, offset: m.bits_offset / 8, size: sizeOf(btf, m.type_id) }));
    const tsFields = layout.fields.map((f) => ({ name: f.name, offset: f.offset, size: f.size }));
    assert.deepEqual(tsFields, btfFields);
  });
}

test('enum xlb_counter: same names in the same order', () => {
  const t = byName('ENUM', 'xlb_counter');
  assert.ok(t, 'enum xlb_counter is not in the BTF');
  const values = t.values ?? [];
  assert.deepEqual(values.filter((v) => v.name !== 'XLB_CNT_MAX').map((v) => [v.name, v.val]), abi.XLB_COUNTERS.map((n, i) => [n, i]));
  assert.equal(values.find((v) => v.name === 'XLB_CNT_MAX')?.val, abi.XLB_CNT_MAX);
});

test('the counters tagged [verdict] in xlb_abi.h are XLB_VERDICT_COUNTERS (rx is their sum)', () => {
  const header = readFileSync(resolve(REPO, 'bpf/include/xlb_abi.h'), 'utf8');
  const tagged = [...header.matchAll(/^\s*(XLB_CNT_\w+),\s*\/\* \[verdict\]/gm)].map((m) => m[1]);
  assert.deepEqual(tagged, [...abi.XLB_VERDICT_COUNTERS]);
});

for (const [enumName, mirror] of [['xlb_method', abi.XlbMethod], ['xlb_family', abi.XlbFamily]] as const) {
  test(`enum ${enumName}: same values`, () => {
    const t = byName('ENUM', enumName);
    assert.ok(t, `enum ${enumName} is not in the BTF`);
    assert.deepEqual(Object.fromEntries((t.values ?? []).map((v) => [v.name, v.val])), mirror);
  });
}

test('#define limits and flags in xlb_abi.h match abi.ts', () => {
  const header = readFileSync(resolve(REPO, 'bpf/include/xlb_abi.h'), 'utf8');
  const defines = new Map<string, number>();
  for (const m of header.matchAll(/^#define\s+(XLB_\w+)\s+(.+?)\s*(?:\/\*.*)?$/gm)) {
    const expr = m[2]!.replace(/U\b/g, '');
    if (/^[\d\s()<x+*-]+$/.test(expr)) defines.set(m[1]!, Function(`return (${expr})`)() as number);
  }
  const mirrored: Record<string, number> = {
    XLB_MAX_SERVICES: abi.XLB_MAX_SERVICES, XLB_MAX_REALS: abi.XLB_MAX_REALS,
    XLB_MAGLEV_SIZE_DEFAULT: abi.XLB_MAGLEV_SIZE_DEFAULT, XLB_CT_SIZE_DEFAULT: abi.XLB_CT_SIZE_DEFAULT,
    XLB_NAT_SIZE_DEFAULT: abi.XLB_NAT_SIZE_DEFAULT, XLB_PERSIST_SIZE_DEFAULT: abi.XLB_PERSIST_SIZE_DEFAULT,
    XLB_ID_NONE: abi.XLB_ID_NONE, XLB_ABI_VERSION: abi.XLB_ABI_VERSION, XLB_SVC_F_HASH_SRC_ONLY: abi.XLB_SVC_F_HASH_SRC_ONLY, XLB_SVC_F_OPS: abi.XLB_SVC_F_OPS,
    XLB_REAL_F_ACTIVE: abi.XLB_REAL_F_ACTIVE, XLB_REAL_F_DRAINED: abi.XLB_REAL_F_DRAINED,
    XLB_NAT_F_FULL: abi.XLB_NAT_F_FULL, XLB_NAT_F_CLOSING: abi.XLB_NAT_F_CLOSING, XLB_CFG_F_NAT: abi.XLB_CFG_F_NAT,
    XLB_VIP_FILTER_WORDS: abi.XLB_VIP_FILTER_WORDS, XLB_IFACES_SIZE: abi.XLB_IFACES_SIZE,
    XLB_NAT_PORT_WORDS: abi.XLB_NAT_PORT_WORDS, XLB_NAT_PORT_MIN: abi.XLB_NAT_PORT_MIN, XLB_NAT_PORT_MAX: abi.XLB_NAT_PORT_MAX, XLB_NAT_PORT_TRIES: abi.XLB_NAT_PORT_TRIES,
  };
  assert.deepEqual(Object.fromEntries(defines), mirrored);
});
