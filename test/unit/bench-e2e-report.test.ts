/**
 * The end-to-end benchmark's results (scripts/bench/e2e-report.ts): the rows of
 * bench-results/e2e.json, the ratios, the targets and the table, on hand-made samples.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ppsTargets, ratio, scenarioTable, summarize, type Sample } from '../../scripts/bench/e2e-report.ts';

const S = (system: Sample['system'], values: number[], scenario = 'pps-one-core', metric: Sample['metric'] = 'pps'): Sample[] =>
  values.map((value) => ({ scenario, system, metric, value }));

test('summarize: one row per (scenario, system, metric) in the order first seen, exactly the six fields', () => {
  const rows = summarize([
    ...S('xlb-dr', [3e6, 1e6, 2e6]),
    ...S('nftables-dnat', [5e5, 4e5, 7e5, 6e5]),
    ...S('xlb-dr', [10, 30, 20], 'tcp-conn-close', 'conn_per_s'),
    ...S('xlb-dr', [0.1234, 0.2, 0.3], 'tcp-conn-close', 'p99_ms'),
  ]);
  assert.deepEqual(rows, [
    { scenario: 'pps-one-core', system: 'xlb-dr', metric: 'pps', median: 2e6, min: 1e6, max: 3e6 },
    { scenario: 'pps-one-core', system: 'nftables-dnat', metric: 'pps', median: 5.5e5, min: 4e5, max: 7e5 },
    { scenario: 'tcp-conn-close', system: 'xlb-dr', metric: 'conn_per_s', median: 20, min: 10, max: 30 },
    { scenario: 'tcp-conn-close', system: 'xlb-dr', metric: 'p99_ms', median: 0.2, min: 0.123, max: 0.3 },
  ]);
  assert.equal(summarize([...S('xlb-dr', [1.4, 2.6])])[0]!.median, 2, 'pps rounded to whole packets');
});

test('summarize refuses unknown systems and metrics and values that are not numbers', () => {
  assert.throws(() => summarize([{ scenario: 'x', system: 'ipvs' as never, metric: 'pps', value: 1 }]), /unknown system 'ipvs'/);
  assert.throws(() => summarize([{ scenario: 'x', system: 'direct', metric: 'rps' as never, value: 1 }]), /unknown metric 'rps'/);
  assert.throws(() => summarize(S('direct', [Number.NaN])), /pps-one-core direct pps: value NaN is not a finite number/);
});

test('ratio and targets: ≥ 4× nftables DNAT and ≥ 80% of the floor, each said met or MISSED', () => {
  const rows = summarize([
    ...S('xlb-dr', [4.2e6]), ...S('xlb-tun', [3.9e6]), ...S('nftables-dnat', [1e6]), ...S('xdp-redirect-floor', [5e6]),
  ]);
  assert.equal(ratio(rows, 'pps-one-core', 'xlb-dr', 'nftables-dnat', 'pps'), 4.2);
  assert.equal(ratio(rows, 'pps-one-core', 'xlb-dr', 'haproxy', 'pps'), undefined);
  const t = ppsTargets(rows, 'pps-one-core');
  assert.deepEqual(t.map((x) => [x.system, x.met]), [['xlb-dr', true], ['xlb-tun', false]]);
  assert.match(t[0]!.text, /xlb-dr: vs nftables DNAT 4\.20× \(target ≥ 4×: met\), vs the floor 0\.84× \(target ≥ 80%: met\)/);
  assert.match(t[1]!.text, /vs nftables DNAT 3\.90× \(target ≥ 4×: MISSED\), vs the floor 0\.78× \(target ≥ 80%: MISSED\)/);
  const noFloor = ppsTargets(summarize([...S('xlb-dr', [4e6]), ...S('nftables-dnat', [1e6])]), 'pps-one-core');
  assert.equal(noFloor[0]!.met, false);
  assert.match(noFloor[0]!.text, /vs the floor n\/a \(target ≥ 80%: not measured\)/);
});

test('scenarioTable: median, min, max and the ratios present in the scenario', () => {
  const rows = summarize([...S('xlb-dr', [2e6, 2.5e6, 3e6]), ...S('nftables-dnat', [5e5]), ...S('xdp-redirect-floor', [4e6])]);
  const lines = scenarioTable(rows, 'pps-one-core', 'pps').split('\n');
  assert.match(lines[0]!, /^system\s+pps median\s+min\s+max\s+vs nftables-dnat\s+vs floor$/);
  assert.match(lines[2]!, /^xlb-dr\s+2\.500 M\s+2\.000 M\s+3\.000 M\s+5\.00×\s+0\.63×$/);
  assert.match(lines[3]!, /^nftables-dnat\s+500\.0 k\s+500\.0 k\s+500\.0 k\s+1\.00×\s+0\.13×$/);
  const tcp = summarize([...S('xlb-dr', [1000], 't', 'conn_per_s'), ...S('direct', [1200], 't', 'conn_per_s')]);
  const tl = scenarioTable(tcp, 't', 'conn_per_s').split('\n');
  assert.match(tl[0]!, /^system\s+conn_per_s median\s+min\s+max$/, 'no ratio columns without nftables or the floor');
});
