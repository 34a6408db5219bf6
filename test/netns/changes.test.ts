/**
 * Changes of the set of reals under traffic, in the namespace lab. While one long-lived TCP echo
 * stream per real (a message every few ms, each echo checked) and a loop of short connections
 * (HTTP GETs) run through the VIP, a real is added, one drained (weight 0), one removed:
 *  - streams on unchanged reals never break, nor does the drained real's (it keeps its
 *    connections); the removed real's stream is the only one that breaks;
 *  - the added real takes new connections; no connection that starts after the drain lands on
 *    the drained real, none after the removal on the removed real;
 *  - short connections fail only if they were in flight on the removed real when it went.
 * DR, and NAT (reals routed via the LB, HTTP on the reals' :8080), whose per-connection state
 * must survive the changes as well.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Get, StreamStatus } from '../../scripts/lab/client-agent.ts';
import type { Method, ServiceSpec } from '../../src/datapath/xdp/forwarder.ts';
import type { LabOptions } from '../../scripts/lab/lab.ts';
import { counters, delta, drops, realSpecs, startRig, urlOf, vipOf, type Family, type Rig } from './rig.ts';

const PHASE_MS = 600;
const STREAM_INTERVAL_MS = 5;

/** `httpRealPort`: NAT, the reals' port for the HTTP service (VIP :80 -> real :8080) */
async function changesUnderTraffic(rig: Rig, family: Family, method: Method, httpRealPort?: number): Promise<void> {
  const { lab, lb, client } = rig;
  const vip = vipOf(lab, family);
  const http: ServiceSpec = { address: vip, port: lab.ports.http[0]!, protocol: 'tcp' };
  const echo: ServiceSpec = { address: vip, port: lab.ports.echo, protocol: 'tcp' };
  const mark = async () => (await client.call({ op: 'mark' })).seq as number;
  /** Change the reals of both services; the marks around the change date the GETs. */
  const change = async (weights: Record<string, number>) => {
    const from = await mark();
    await lb.call({ op: 'service', service: http, reals: realSpecs(lab, family, method, weights, httpRealPort) });
    await lb.call({ op: 'service', service: echo, reals: realSpecs(lab, family, method, weights) });
    return { from, to: await mark() };
  };
  const pause = () => new Promise((ok) => setTimeout(ok, PHASE_MS));
  const before = counters((await lb.call({ op: 'counters' })).counters);

  await change({ real1: 1, real2: 1, real3: 1 });
  try {
    await client.call({ op: 'streams.open', address: vip, port: echo.port, want: ['real1', 'real2', 'real3'] });
    await client.call({ op: 'streams.start', intervalMs: STREAM_INTERVAL_MS });
    await client.call({ op: 'loop.start', url: urlOf(vip, http.port), concurrency: 2 });
    await pause();

    const added = await change({ real1: 1, real2: 1, real3: 1, real4: 1 });
    await client.call({ op: 'streams.open', address: vip, port: echo.port, want: ['real4'] });
    await pause();

    const drained = await change({ real1: 1, real2: 0, real3: 1, real4: 1 });
    await pause();

    const removed = await change({ real1: 1, real2: 0, real4: 1 });
    await pause();

    const gets = (await client.call({ op: 'loop.stop' })).gets as Get[];
    const streams = (await client.call({ op: 'streams.stop' })).streams as StreamStatus[];

    // the streams
    assert.deepEqual(streams.map((s) => s.real).sort(), ['real1', 'real2', 'real3', 'real4'], 'one stream per real');
    for (const s of streams) {
      if (s.real === 'real3') {
        assert.ok(s.broken !== undefined, `the removed real's stream broke (its flow went to another real): ${JSON.stringify(s)}`);
      } else {
        assert.equal(s.broken, undefined, `${s.real}'s stream never broke`);
        assert.equal(s.echoed, s.sent, `${s.real}: every message echoed`);
      }
    }
    const minEchoes = Math.floor(PHASE_MS / STREAM_INTERVAL_MS / 4);
    for (const name of ['real1', 'real2']) {
      const s = streams.find((x) => x.real === name)!;
      assert.ok(s.echoed >= 4 * minEchoes, `${name}'s stream echoed through all 4 phases (${s.echoed})`);
    }

    // the short connections
    const failed = gets.filter((g) => g.error !== undefined);
    assert.deepEqual(failed.filter((g) => !(g.start < removed.to && g.end > removed.from)), [],
      'only GETs in flight when real3 was removed may fail');
    /** who served the GETs that started between two marks */
    const servedBy = (from: number, to: number) => {
      const out: Record<string, number> = {};
      for (const g of gets) if (g.real && g.start > from && g.start < to) out[g.real] = (out[g.real] ?? 0) + 1;
      return out;
    };
    const phases = {
      initial: servedBy(0, added.from),
      added: servedBy(added.to, drained.from),
      drained: servedBy(drained.to, removed.from),
      removed: servedBy(removed.to, Infinity),
    };
    const seen = JSON.stringify(phases);
    assert.deepEqual(Object.keys(phases.initial).sort(), ['real1', 'real2', 'real3'], `first, the 3 reals serve: ${seen}`);
    assert.ok((phases.added.real4 ?? 0) > 0, `the added real takes new connections: ${seen}`);
    assert.equal(phases.drained.real2, undefined, `no new connection on the drained real: ${seen}`);
    assert.equal(phases.removed.real2, undefined, `no new connection on the drained real: ${seen}`);
    assert.equal(phases.removed.real3, undefined, `no new connection on the removed real: ${seen}`);
    assert.deepEqual(Object.keys(phases.removed).sort(), ['real1', 'real4'], `at the end real1 and real4 serve: ${seen}`);

    const d = delta(counters((await lb.call({ op: 'counters' })).counters), before);
    assert.deepEqual(drops(d), {}, 'nothing dropped');
    assert.ok((d.ct_stale ?? 0n) > 0n, "the removed real's flow was rescheduled (ct_stale)");
  } finally {
    await client.call({ op: 'loop.stop' }).catch(() => undefined);
    await client.call({ op: 'streams.stop' }).catch(() => undefined);
    for (const service of [http, echo]) await lb.call({ op: 'remove', service });
  }
}

function changesSuite(title: string, method: Method, lab: LabOptions, httpRealPort?: number): void {
  describe(title, () => {
    let rig: Rig | undefined;
    const getRig = () => { assert.ok(rig, 'the lab did not come up'); return rig; };
    before(async () => { rig = await startRig({ reals: 4, ...lab }); });
    after(async () => { await rig?.close(); });

    for (const family of [4, 6] as const) {
      test(`${method.toUpperCase()}, IPv${family}: add, drain, remove a real while streams and short connections run`, () =>
        changesUnderTraffic(getRig(), family, method, httpRealPort));
    }
  });
}

changesSuite('changes of reals under traffic (lab routing: direct)', 'dr', { routing: 'direct' });
// NAT: the connections' NAT state (replies translated back) must survive the changes too
changesSuite('changes of reals under traffic (lab routing: via-lb)', 'nat', { routing: 'via-lb' }, 8080);
