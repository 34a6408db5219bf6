/**
 * The service model's validation (src/model/validate.ts) and the scheduler table
 * (src/model/schedulers.ts): defaults, groups, persistence, every error and warning with the
 * position it names, the realisation of each lb_algo.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { XDP_CAPABILITIES } from '../../src/datapath/driver.ts';
import { SCHEDULERS, realise, select } from '../../src/model/schedulers.ts';
import { LB_ALGOS, formatPos, type SourcePos } from '../../src/model/types.ts';
import { DEFAULT_PERSISTENCE_TIMEOUT, expandRange, formatProblem, granularity, resolveServices, type Resolved } from '../../src/model/validate.ts';
import { config, pos, rs, vs } from '../lib/model-builder.ts';

const resolve = (...args: Parameters<typeof config>): Resolved => resolveServices(config(...args), XDP_CAPABILITIES);

/** The one problem of this severity whose message matches, with its position. */
function problem(r: Resolved, severity: 'error' | 'warning', match: RegExp): { pos: SourcePos; message: string } {
  const list = severity === 'error' ? r.errors : r.warnings;
  const found = list.filter((p) => match.test(p.message));
  assert.equal(found.length, 1, `one ${severity} matching ${match}; got: ${list.map(formatProblem).join(' | ') || 'none'}`);
  return found[0]!;
}

describe('defaults and inheritance', () => {
  test("keepalived's defaults: TCP, wlc (warned at the virtual_server line), NAT, weight 1, quorum 1, no persistence", () => {
    const v = vs('198.18.0.10', 80, [rs('198.18.1.1', 8080)]);
    const r = resolve([v]);
    assert.deepEqual(r.errors, []);
    const [s] = r.services;
    assert.ok(s);
    assert.equal(s.id, 'tcp:198.18.0.10:80');
    assert.equal(s.name, '[198.18.0.10]:tcp:80');
    assert.deepEqual(s.endpoints, [{ address: '198.18.0.10', port: 80, protocol: 'tcp' }]);
    assert.equal(s.lbAlgo, 'wlc');
    assert.deepEqual([s.quorum, s.hysteresis, s.alpha, s.omega, s.haSuspend, s.persistence], [1, 0, false, false, false, undefined]);
    const [real] = s.reals;
    assert.deepEqual({ ...real, checkers: real!.checkers.length, pos: undefined }, {
      id: 'tcp:198.18.0.10:80/[198.18.1.1]:tcp:8080', name: '[198.18.1.1]:tcp:8080', pos: undefined, address: '198.18.1.1', port: 8080,
      weight: 1, method: 'nat', inhibitOnFailure: false, alpha: false, checkers: 1, checkerDefaults: { real: {}, service: {} },
    });
    const w = problem(r, 'warning', /lb_algo wlc \(keepalived's default\) is approximated/);
    assert.deepEqual(w.pos, v.pos);
  });

  test('a real inherits lb_kind, inhibit_on_failure and alpha from its virtual server, and overrides them', () => {
    const v = vs('198.18.0.10', 80, [
      rs('198.18.1.1', 80),
      rs('198.18.1.2', 80, { lb_kind: 'TUN', inhibit_on_failure: false, alpha: false, weight: 5 }),
    ], { lb_kind: 'DR', inhibit_on_failure: true, alpha: true, delay_loop: 3, lb_algo: 'sh' });
    const [s] = resolve([v]).services;
    const [a, b] = s!.reals;
    assert.deepEqual([a!.method, a!.inhibitOnFailure, a!.alpha, a!.weight], ['dr', true, true, 1]);
    assert.deepEqual([b!.method, b!.inhibitOnFailure, b!.alpha, b!.weight], ['tun', false, false, 5]);
    assert.deepEqual(a!.checkerDefaults.service, { delay_loop: 3 });
    assert.equal(a!.port, 0, 'a DR real takes the service\'s port (0 in the datapath)');
  });

  test('checker defaults: a real\'s own before its service\'s; the reals without their own share one object', () => {
    const v = vs('198.18.0.10', 80, [rs('198.18.1.1', 80), rs('198.18.1.2', 80), rs('198.18.1.3', 80, { retry: 7 })], { delay_loop: 3 });
    const [a, b, c] = resolve([v]).services[0]!.reals;
    assert.deepEqual(a!.checkerDefaults, { real: {}, service: { delay_loop: 3 } });
    assert.equal(a!.checkerDefaults, b!.checkerDefaults, 'shared (100,000 reals: two objects less each)');
    assert.ok(Object.isFrozen(a!.checkerDefaults.real));
    assert.deepEqual(c!.checkerDefaults, { real: { retry: 7 }, service: { delay_loop: 3 } });
  });
});

describe('what the XDP datapath cannot do: errors at their positions', () => {
  test('fwmark services are refused, the others still resolve', () => {
    const fw = { pos: pos(), service: { kind: 'fwmark' as const, fwmark: 7 }, real_server: [rs('198.18.1.1', 80)] };
    const ok = vs('198.18.0.10', 80, [rs('198.18.1.1', 80)]);
    const r = resolve([fw, ok]);
    const e = problem(r, 'error', /fwmark 7: the XDP datapath cannot see firewall marks \(XDP runs before netfilter marks packets\)/);
    assert.deepEqual(e.pos, fw.pos);
    assert.deepEqual(r.services.map((s) => s.id), ['tcp:198.18.0.10:80']);
    // a driver that can see marks (ipvs) takes it
    const ipvs = resolveServices(config([fw]), { ...XDP_CAPABILITIES, fwmark: true });
    assert.deepEqual(ipvs.errors, []);
  });

  test('a group: ranges expanded (IPv4, IPv6), fwmark entries refused at their line, unknown groups', () => {
    const e1 = { pos: pos(), kind: 'ip' as const, address: '198.18.0.1', range_end: 3, port: 80 };
    const e2 = { pos: pos(), kind: 'ip' as const, address: 'fd00::a', range_end: 0xc, port: 443 };
    const g = { pos: pos(), name: 'WEB', entries: [e1, e2] };
    const v = { pos: pos(), service: { kind: 'group' as const, group: 'WEB' }, real_server: [rs('198.18.1.1', 80, { lb_kind: 'TUN' })], lb_kind: 'TUN' as const };
    let r = resolve([v], [g]);
    // IPv4 and IPv6 in one group: refused
    problem(r, 'error', /mix IPv4 and IPv6/);
    g.entries = [e1];
    r = resolve([v], [g]);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.services[0]!.endpoints.map((e) => e.address), ['198.18.0.1', '198.18.0.2', '198.18.0.3']);
    assert.equal(r.services[0]!.name, '[WEB]:0');
    assert.deepEqual(expandRange('fd00::a', 0xc), ['fd00::a', 'fd00::b', 'fd00::c']);
    assert.match(String(expandRange('198.18.0.9', 3)), /the end must be in 9..255/);

    const fwm = { pos: pos(), kind: 'fwmark' as const, fwmark: 9 };
    r = resolve([v], [{ ...g, entries: [e1, fwm] }]);
    assert.deepEqual(problem(r, 'error', /virtual_server_group WEB: fwmark 9/).pos, fwm.pos);
    r = resolve([{ ...v, service: { kind: 'group', group: 'NOPE' } }], [g]);
    assert.deepEqual(problem(r, 'error', /no virtual_server_group of that name/).pos, v.pos);
  });

  test('SCTP, persistence_engine, ops on TCP: refused at their keyword', () => {
    const at = { protocol: pos(), persistence_engine: pos(), ops: pos() };
    const r = resolve([vs('198.18.0.10', 80, [rs('198.18.1.1', 80)], { protocol: 'SCTP', persistence_engine: 'sip', ops: true, at })]);
    assert.deepEqual(problem(r, 'error', /protocol SCTP/).pos, at.protocol);
    assert.deepEqual(problem(r, 'error', /persistence_engine sip/).pos, at.persistence_engine);
    assert.deepEqual(problem(r, 'error', /ops \(one-packet scheduling\) is for UDP/).pos, at.ops);
    assert.deepEqual(r.services, []);
  });

  test('family mismatch (NAT, DR) refused; TUN may cross families', () => {
    const bad = rs('fd00::1', 80);
    let r = resolve([vs('198.18.0.10', 80, [bad], { lb_kind: 'DR' })]);
    assert.deepEqual(problem(r, 'error', /a DR real server must have the virtual server's address family/).pos, bad.pos);
    r = resolve([vs('198.18.0.10', 80, [rs('fd00::1', 80)], { lb_kind: 'TUN' })]);
    assert.deepEqual(r.errors, []);
  });

  test('duplicates: one real per address in a service; one owner per address/port/protocol', () => {
    const second = rs('198.18.1.1', 81);
    let r = resolve([vs('198.18.0.10', 80, [rs('198.18.1.1', 80), second])]);
    assert.deepEqual(problem(r, 'error', /already has a real server at 198.18.1.1 .* one per address/).pos, second.pos);
    const other = vs('198.18.0.10', 80, [rs('198.18.1.2', 80)]);
    r = resolve([vs('198.18.0.10', 80, [rs('198.18.1.1', 80)]), other]);
    assert.deepEqual(problem(r, 'error', /\[198.18.0.10\]:tcp:80 is already a service/).pos, other.pos);
    assert.equal(r.services.length, 1);
  });

  test('ranges: weight, quorum, hysteresis', () => {
    const at = { quorum: pos(), hysteresis: pos() };
    const heavy = rs('198.18.1.1', 80, { weight: 70000, at: { weight: pos() } });
    const r = resolve([vs('198.18.0.10', 80, [heavy], { quorum: 0, hysteresis: -1, at })]);
    assert.deepEqual(problem(r, 'error', /weight 70000 is not in 0..65535/).pos, heavy.at!.weight);
    assert.deepEqual(problem(r, 'error', /quorum 0/).pos, at.quorum);
    assert.deepEqual(problem(r, 'error', /hysteresis -1/).pos, at.hysteresis);
  });
});

describe('persistence', () => {
  test('timeout and netmask; granularity alone implies 360 s; IPv6 prefix lengths', () => {
    let [s] = resolve([vs('198.18.0.10', 80, [rs('198.18.1.1', 80)], { persistence_timeout: 600, persistence_granularity: '255.255.255.0' })]).services;
    assert.deepEqual(s!.persistence, { timeout: 600, granularity: 24 });
    assert.deepEqual(s!.endpoints[0]!.persistence, { timeout: 600, granularity: 24 });
    [s] = resolve([vs('198.18.0.10', 80, [rs('198.18.1.1', 80)], { persistence_granularity: '255.255.0.0' })]).services;
    assert.deepEqual(s!.persistence, { timeout: DEFAULT_PERSISTENCE_TIMEOUT, granularity: 16 });
    [s] = resolve([vs('fd00::10', 80, [rs('fd00::1', 80)], { persistence_timeout: 60, persistence_granularity: '64' })]).services;
    assert.deepEqual(s!.persistence, { timeout: 60, granularity: 64 });
    [s] = resolve([vs('198.18.0.10', 80, [rs('198.18.1.1', 80)], { persistence_timeout: 0 })]).services;
    assert.equal(s!.persistence, undefined);
  });

  test('bad granularity: refused at its line', () => {
    for (const [g, family, msg] of [
      ['255.0.255.0', 4, /not a contiguous netmask/], ['0.0.0.0', 4, /not a contiguous netmask/], ['24', 4, /takes a netmask/],
      ['129', 6, /prefix length in 1..128/], ['ffff::', 6, /prefix length in 1..128/],
    ] as const) {
      assert.match(String(granularity(g, family)), msg, g);
    }
    assert.equal(granularity('255.255.255.255', 4), 32);
    assert.equal(granularity('128.0.0.0', 4), 1);
    const at = { persistence_granularity: pos() };
    const r = resolve([vs('198.18.0.10', 80, [rs('198.18.1.1', 80)], { persistence_granularity: '255.0.255.0', at })]);
    assert.deepEqual(problem(r, 'error', /persistence_granularity 255.0.255.0/).pos, at.persistence_granularity);
  });
});

describe('schedulers', () => {
  test('every lb_algo has a realisation; the approximated ones are warned about at the lb_algo line, the exact ones not', () => {
    assert.deepEqual(Object.keys(SCHEDULERS).sort(), [...LB_ALGOS].sort());
    const exact = LB_ALGOS.filter((a) => SCHEDULERS[a].exact).sort();
    assert.deepEqual(exact, ['dh', 'fo', 'mh', 'sh']);
    for (const algo of LB_ALGOS) {
      const at = { lb_algo: pos() };
      const r = resolve([vs('198.18.0.10', 80, [rs('198.18.1.1', 80)], { lb_algo: algo, at })]);
      const warned = r.warnings.filter((w) => w.message.startsWith(`lb_algo ${algo} is approximated`));
      assert.equal(warned.length, SCHEDULERS[algo].exact ? 0 : 1, `${algo}: ${r.warnings.map(formatProblem).join(' | ')}`);
      if (warned[0]) assert.equal(formatProblem(warned[0]).slice(0, formatPos(at.lb_algo).length), formatPos(at.lb_algo));
      // with a driver that counts connections nothing is approximated
      assert.equal(resolveServices(config([vs('198.18.0.10', 80, [rs('198.18.1.1', 80)], { lb_algo: algo })]), { ...XDP_CAPABILITIES, connectionCounts: true }).warnings.length, 0);
    }
  });

  test('sh and mh hash the client address; sh-port / flag-2 the flow; fallback flags are inherent, others ignored with a warning', () => {
    assert.equal(resolve([vs('198.18.0.10', 80, [rs('198.18.1.1', 80)], { lb_algo: 'sh' })]).services[0]!.endpoints[0]!.hashSourceOnly, true);
    assert.equal(resolve([vs('198.18.0.10', 80, [rs('198.18.1.1', 80)], { lb_algo: 'wrr' })]).services[0]!.endpoints[0]!.hashSourceOnly, undefined);
    assert.equal(realise('sh', ['sh-port']).realisation.hash, 'flow');
    assert.equal(realise('mh', ['flag-2']).realisation.hash, 'flow');
    assert.match(realise('mh', ['mh-fallback']).notes[0]!.note, /inherent/);
    const at = { sched_flags: pos() };
    const r = resolve([vs('198.18.0.10', 80, [rs('198.18.1.1', 80)], { lb_algo: 'rr', sched_flags: ['hashed', 'sh-port'], at })]);
    assert.deepEqual(problem(r, 'warning', /^hashed has no effect/).pos, at.sched_flags);
    assert.deepEqual(problem(r, 'warning', /^sh-port has no effect with lb_algo rr/).pos, at.sched_flags);
  });

  test('select: all, the highest weight (first on a tie), one per destination (stable, weighted)', () => {
    const c = [{ key: 'a', weight: 2 }, { key: 'b', weight: 0 }, { key: 'c', weight: 5 }, { key: 'd', weight: 5 }];
    assert.deepEqual(select('all', 'x', c), [0, 2, 3]);
    assert.deepEqual(select('highest-weight', 'x', c), [2]);
    assert.deepEqual(select('highest-weight', 'x', [{ key: 'a', weight: 0 }]), []);
    // one per destination: the same choice every time; removing another real does not move it
    const picks = new Map<number, number>();
    for (let d = 0; d < 3000; d++) {
      const [i] = select('one-by-destination', `dst${d}`, c);
      assert.ok(i !== undefined && i !== 1);
      assert.deepEqual(select('one-by-destination', `dst${d}`, c), [i]);
      const without = c.map((x, j) => (j !== i && j !== 1 && x.key === 'a' ? { ...x, weight: 0 } : x));
      assert.deepEqual(select('one-by-destination', `dst${d}`, without), [i], 'removing another real moved the choice');
      picks.set(i, (picks.get(i) ?? 0) + 1);
    }
    // weighted: 2 : 5 : 5 of 3000 destinations
    for (const [i, expected] of [[0, 500], [2, 1250], [3, 1250]] as const) {
      const n = picks.get(i) ?? 0;
      assert.ok(Math.abs(n - expected) < expected * 0.15, `real ${i} chosen for ${n} of 3000 destinations, expected about ${expected}`);
    }
  });
});

describe('warnings for what is ignored', () => {
  test('a DR real port that differs, uthreshold/lthreshold, smtp_alert', () => {
    const dr = rs('198.18.1.1', 8080);
    const thr = rs('198.18.1.2', 80, { uthreshold: 100, at: { uthreshold: pos() } });
    const r = resolve([vs('198.18.0.10', 80, [dr, thr], { lb_kind: 'DR', lb_algo: 'sh', smtp_alert: true, at: { smtp_alert: pos() } })]);
    assert.deepEqual(problem(r, 'warning', /port 8080: ignored, DR cannot change the port/).pos, dr.pos);
    assert.deepEqual(problem(r, 'warning', /uthreshold\/lthreshold are not realised/).pos, thr.at!.uthreshold);
    problem(r, 'warning', /smtp_alert/);
    assert.equal(r.services[0]!.reals[0]!.port, 0);
    assert.match(formatProblem(r.warnings[0]!), /^test\.conf:\d+:1: warning: /);
  });
});
