/**
 * src/daemon/control.ts's helpers: instance names (they name the socket and the BPF pins), the
 * socket path, and the reload problem / summary conversions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  KEEPALIVED_STATE_CODES, checkInstanceName, defaultSocketPath, reloadProblem, reloadSummary, type ReloadResult,
} from '../../src/daemon/control.ts';

test('instance names: accepted and refused with the rule', () => {
  for (const ok of ['default', 'lb-1', 'edge_2.a', 'A'.repeat(64)]) assert.equal(checkInstanceName(ok), ok);
  for (const bad of ['', '.hidden', 'a/b', '../x', 'a b', 'A'.repeat(65), 'é']) {
    assert.throws(() => checkInstanceName(bad), /instance name .*: use 1 to 64 letters/, bad);
  }
});

test('the default socket path', () => {
  assert.equal(defaultSocketPath('default'), '/run/xlb/default.sock');
});

test('keepalived state codes (vrrp.h)', () => {
  assert.deepEqual(KEEPALIVED_STATE_CODES, { INIT: 0, BACKUP: 1, MASTER: 2, FAULT: 3, STOP: 98 });
});

test('reloadProblem keeps the position and class, drops other fields', () => {
  const d = { severity: 'error' as const, pos: { file: '/etc/k.conf', line: 3, col: 5 }, message: 'unknown keyword', class: 'unknown_keyword' as const, keyword: 'foo' };
  assert.deepEqual(reloadProblem(d), { severity: 'error', pos: { file: '/etc/k.conf', line: 3, col: 5 }, message: 'unknown keyword', class: 'unknown_keyword' });
  assert.deepEqual(reloadProblem({ severity: 'warning', pos: { file: 'f', line: 1, col: 1 }, message: 'm' }),
    { severity: 'warning', pos: { file: 'f', line: 1, col: 1 }, message: 'm' });
});

test('reloadSummary counts errors and warnings', () => {
  const p = (severity: 'error' | 'warning') => ({ severity, pos: { file: 'f', line: 1, col: 1 }, message: 'x' });
  const none = { servicesAdded: [], servicesRemoved: [], servicesChanged: [], instancesAdded: [], instancesRemoved: [], instancesChanged: [] };
  const r: ReloadResult = { applied: false, configFile: 'f', problems: [p('error'), p('warning'), p('error')], changes: none, at: '2026-01-01T00:00:00.000Z', durationMs: 3 };
  assert.deepEqual(reloadSummary(r), { at: '2026-01-01T00:00:00.000Z', applied: false, errors: 2, warnings: 1 });
});
