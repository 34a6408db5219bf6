/**
 * The control benchmark's generated configuration (scripts/bench/control-config.ts): the text and
 * the model agree (every position in the model points at its keyword in the text, and loadConfig
 * reads the text into that model), the model validates without errors, and the addresses stay in
 * the benchmarking range.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XDP_CAPABILITIES } from '../../src/datapath/driver.ts';
import { loadConfig } from '../../src/config/index.ts';
import { memoryFs } from '../../src/config/fs.ts';
import { resolveServices } from '../../src/model/validate.ts';
import { CONTROL_CONFIG_FILE, controlConfig } from '../../scripts/bench/control-config.ts';

test('control config: text and model agree, positions point at their keywords, the model validates', () => {
  const { text, model, lines } = controlConfig(12, 5);
  const at = text.split('\n');
  assert.equal(at.length, lines);
  const word = (p: { line: number; col: number }) => at[p.line - 1]!.slice(p.col - 1).split(/\s+/);
  assert.equal(model.virtual_server.length, 12);
  const seen = new Set<string>();
  for (const vs of model.virtual_server) {
    assert.equal(vs.service.kind, 'ip');
    const { address, port } = vs.service as { address: string; port: number };
    assert.deepEqual(word(vs.pos).slice(0, 3), ['virtual_server', address, String(port)]);
    assert.deepEqual(word(vs.at!.lb_algo!).slice(0, 2), ['lb_algo', vs.lb_algo]);
    if (vs.persistence_timeout) assert.deepEqual(word(vs.at!.persistence_timeout!).slice(0, 2), ['persistence_timeout', '300']);
    assert.equal(vs.real_server.length, 5);
    for (const rs of vs.real_server) {
      assert.deepEqual(word(rs.pos).slice(0, 3), ['real_server', rs.address, '80']);
      assert.deepEqual(word(rs.at!.weight!).slice(0, 2), ['weight', String(rs.weight)]);
      assert.deepEqual(word(rs.checkers[0]!.pos)[0], 'TCP_CHECK');
      assert.ok(!seen.has(rs.address), `${rs.address} twice`);
      seen.add(rs.address);
      assert.match(rs.address, /^198\.1[89]\./);
    }
  }
  assert.equal(model.virtual_server.filter((v) => v.persistence_timeout === 300).length, 1);
  assert.equal(text.match(/^virtual_server /gm)!.length, 12);
  assert.equal(text.match(/^ {4}real_server /gm)!.length, 60);
  const r = resolveServices(model, XDP_CAPABILITIES);
  assert.deepEqual(r.errors, []);
  assert.equal(r.services.length, 12);
});

test('control config: loadConfig reads the text into exactly the generated model (positions included), warnings only', () => {
  const { text, model } = controlConfig(11, 3);
  const r = loadConfig(CONTROL_CONFIG_FILE, { fs: memoryFs({ [CONTROL_CONFIG_FILE]: text }), configId: 'bench' });
  assert.equal(r.exitCode, 0, r.problems.map((p) => p.message).join('\n'));
  assert.deepEqual(r.problems.filter((p) => p.severity !== 'warning'), []);
  assert.deepEqual(r.config?.services, model);
});

test('control config: more services than VIPs, or more reals than addresses below them, are refused with the reason', () => {
  assert.throws(() => controlConfig(1025, 1), /1\.\.1024/);
  assert.throws(() => controlConfig(1024, 200), /do not fit below the VIPs/);
});
