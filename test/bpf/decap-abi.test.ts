/**
 * The decapsulation program's ABI mirror (src/datapath/xdp/decap-abi.ts) must match the compiled
 * object's BTF and the #defines of bpf/include/xlb_decap_abi.h.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import * as abi from '../../src/datapath/xdp/decap-abi.ts';
import { DECAP_OBJECT } from '../../src/datapath/xdp/decap.ts';
import { Btf, headerDefines } from '../lib/btf.ts';
import { REPO } from '../lib/require.ts';

let btf: Btf | undefined;
const load = (): Btf => (btf ??= Btf.load(DECAP_OBJECT));

for (const layout of abi.DECAP_ABI_STRUCTS) {
  test(`struct ${layout.name}: decap-abi.ts matches the object's BTF`, () => {
    const t = load().struct(layout.name);
    assert.equal(t.size, layout.size, `sizeof(struct ${layout.name})`);
    assert.deepEqual(layout.fields.map((f) => ({ name: f.name, offset: f.offset, size: f.size })), t.fields);
    for (const f of layout.fields) if (f.kind === 'bytes') assert.equal(f.length, f.size, `${layout.name}.${f.name}: length and size`);
  });
}

test('enum xlb_decap_counter: same names in the same order, and the MAX', () => {
  const values = load().enumValues('xlb_decap_counter');
  assert.deepEqual(values.filter(([n]) => n !== 'XLB_DECAP_CNT_MAX'), abi.XLB_DECAP_COUNTERS.map((n, i) => [n, i]));
  assert.deepEqual(values.find(([n]) => n === 'XLB_DECAP_CNT_MAX'), ['XLB_DECAP_CNT_MAX', abi.XLB_DECAP_CNT_MAX]);
});

test('#define limits and flags in xlb_decap_abi.h match decap-abi.ts', () => {
  const defines = headerDefines(resolve(REPO, 'bpf/include/xlb_decap_abi.h'), 'XLB_DECAP_');
  assert.deepEqual(Object.fromEntries(defines), {
    XLB_DECAP_MAX_PREFIXES: abi.XLB_DECAP_MAX_PREFIXES,
    XLB_DECAP_F_FILTER_SRC: abi.XLB_DECAP_F_FILTER_SRC,
  });
});
