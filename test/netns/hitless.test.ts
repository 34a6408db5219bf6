/**
 * Hitless restart under traffic, in the namespace lab: a process that holds the pinned forwarder
 * (scripts/lab/xdp-hold.ts, in lb1's namespace) forwards one long-lived TCP echo stream per real
 * (a message every few ms, each echo checked) and a loop of short connections (HTTP GETs) through
 * the VIP, DR, IPv4. Then:
 *  1. it is SIGKILLed: the program stays attached, the streams go on and new connections work
 *     with no process behind the datapath;
 *  2. a new process adopts the pins (it reads back the services the first one programmed and
 *     finds the connection table full) and applies the same services: the real ids do not move,
 *     nothing breaks, no flow is rescheduled, and the streams' packets hit the connection
 *     entries made before the kill;
 *  3. a clean stop (xdp-hold.ts destroy) detaches the program and removes the pins.
 * The pins are removed (and the namespaces deleted) on every way out.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { Agent } from '../../scripts/lab/agent.ts';
import type { Get, StreamStatus } from '../../scripts/lab/client-agent.ts';
import { createLab, type Lab } from '../../scripts/lab/lab.ts';
import { onCleanup, randomPrefix } from '../../scripts/lab/netns.ts';
import { XLB_PIN_ROOT, removePinDir } from '../../src/datapath/bpf/index.ts';
import { XdpForwarder, pinDirOf, type ServiceSpec } from '../../src/datapath/xdp/forwarder.ts';
import { REPO, requireLab } from '../lib/require.ts';
import { counters, delta, drops, labConfig, realSpecs, urlOf } from './rig.ts';

const HOLD = resolve(REPO, 'scripts/lab/xdp-hold.ts');
const STREAM_INTERVAL_MS = 5;
const PHASE_MS = 800;

/** Run xdp-hold.ts in a namespace; its first line (the report) or its failure. */
async function startHold(ns: string, args: string[]): Promise<{ proc: ChildProcess; report: Record<string, unknown> }> {
  const proc = spawn('nsenter', [`--net=/run/netns/${ns}`, process.execPath, '--import', 'tsx', HOLD, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const unregister = onCleanup(() => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL'); });
  proc.once('exit', unregister);
  const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  const { value, done } = await lines.next();
  if (done) throw new Error(`xdp-hold ${args[0]} exited without a report (see its error above)`);
  const report = JSON.parse(value as string) as Record<string, unknown>;
  if (report.ok !== true) throw new Error(`xdp-hold ${args[0]}: ${String(report.error)}`);
  return { proc, report };
}

function killed(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  const done = new Promise<void>((ok) => proc.once('exit', () => ok()));
  proc.kill(signal);
  return done;
}

const pause = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

let lab: Lab | undefined;
let client: Agent | undefined;
let instance = '';
const procs: ChildProcess[] = [];

before(async () => {
  requireLab();
  lab = await createLab({ prefix: randomPrefix('xlbh'), reals: 2, routing: 'direct' });
  instance = `${lab.prefix}-hitless`;
  const dir = pinDirOf({ instance })!;
  onCleanup(() => removePinDir(dir, [XLB_PIN_ROOT])); // a signal or exit before after() runs
  client = (await Agent.start('client', lab.client.ns, resolve(REPO, 'scripts/lab/client-agent.ts'))).agent;
});

after(async () => {
  for (const p of procs) await killed(p, 'SIGKILL');
  await client?.stop();
  if (instance) await XdpForwarder.purge({ instance });
  lab?.destroy();
});

test('SIGKILL of the process holding the forwarder, then a new one adopts the pins: streams and new connections go on', async () => {
  assert.ok(lab && client, 'the lab did not come up');
  const c = client;
  const http: ServiceSpec = { address: lab.vip4, port: lab.ports.http[0]!, protocol: 'tcp' };
  const echo: ServiceSpec = { address: lab.vip4, port: lab.ports.echo, protocol: 'tcp' };
  const weights = { real1: 1, real2: 1 };
  const setup = {
    config: labConfig(lab),
    services: [http, echo].map((service) => ({ service, reals: realSpecs(lab!, 4, 'dr', weights) })),
  };
  const hold = async () => {
    const h = await startHold(lab!.lb.ns, ['hold', instance, lab!.lb.ifname, JSON.stringify(setup)]);
    procs.push(h.proc);
    return h;
  };
  const mark = async () => (await c.call({ op: 'mark' })).seq as number;
  const status = async () => (await c.call({ op: 'streams.status' })).streams as StreamStatus[];
  const echoed = (ss: StreamStatus[]) => Object.fromEntries(ss.map((s) => [s.real, s.echoed]));

  // the first process: creates and pins, attaches, programs
  const first = await hold();
  assert.equal(first.report.adopted, false, 'the first process creates the instance');
  assert.ok(existsSync(pinDirOf({ instance })!), 'pinned');

  await c.call({ op: 'streams.open', address: echo.address, port: echo.port, want: ['real1', 'real2'] });
  await c.call({ op: 'streams.start', intervalMs: STREAM_INTERVAL_MS });
  await c.call({ op: 'loop.start', url: urlOf(http.address, http.port), concurrency: 2 });
  try {
    await pause(PHASE_MS);

    // 1. SIGKILL: nobody holds the forwarder
    await killed(first.proc, 'SIGKILL');
    const killedAt = await mark();
    const atKill = echoed(await status());
    await pause(PHASE_MS);
    const orphanEnd = await mark();
    const afterOrphan = echoed(await status());

    // 2. a new process adopts and applies the same services
    const second = await hold();
    const adoptedAt = await mark();
    assert.equal(second.report.adopted, true, 'the second process adopts the pins');
    assert.equal(second.report.progId, first.report.progId, 'the same program, still attached');
    assert.deepEqual(second.report.held, setup.services, 'it reads back what the first one programmed');
    assert.ok((second.report.conntrack as number) >= 2, `the connection table was kept (${String(second.report.conntrack)} entries)`);
    assert.deepEqual(second.report.applied, first.report.applied, 'the same services and real ids');
    await pause(PHASE_MS);

    const gets = (await c.call({ op: 'loop.stop' })).gets as Get[];
    const streams = (await c.call({ op: 'streams.stop' })).streams as StreamStatus[];

    // the streams: never broken, every message echoed, and moving in every phase
    assert.deepEqual(streams.map((s) => s.real).sort(), ['real1', 'real2']);
    const minEchoes = Math.floor(PHASE_MS / STREAM_INTERVAL_MS / 4);
    for (const s of streams) {
      assert.equal(s.broken, undefined, `${s.real}'s stream never broke`);
      assert.equal(s.echoed, s.sent, `${s.real}: every message echoed`);
      assert.ok(afterOrphan[s.real]! - atKill[s.real]! >= minEchoes, `${s.real}'s stream went on with no process (${atKill[s.real]} -> ${afterOrphan[s.real]})`);
      assert.ok(s.echoed - afterOrphan[s.real]! >= minEchoes, `${s.real}'s stream went on after the adoption (${afterOrphan[s.real]} -> ${s.echoed})`);
    }
    // the short connections: none failed; some started while nobody held the forwarder, some after the adoption
    assert.deepEqual(gets.filter((g) => g.error !== undefined), [], 'no GET failed');
    const during = (from: number, to: number) => gets.filter((g) => g.start > from && g.start < to);
    assert.ok(during(killedAt, orphanEnd).length >= 5, `new connections with no process: ${during(killedAt, orphanEnd).length}`);
    assert.ok(during(adoptedAt, Infinity).length >= 5, `new connections after the adoption: ${during(adoptedAt, Infinity).length}`);
    assert.deepEqual(Object.keys(Object.fromEntries(during(killedAt, Infinity).map((g) => [g.real, 1]))).sort(), ['real1', 'real2'], 'both reals serve');

    // 3. the clean stop: after the second process exits (SIGTERM keeps the datapath)
    await killed(second.proc, 'SIGTERM');
    const stop = await startHold(lab.lb.ns, ['destroy', instance]);
    procs.push(stop.proc);
    assert.equal(stop.report.adopted, true);
    assert.deepEqual(stop.report.attachments, [{ ifindex: (stop.report.attachments as { ifindex: number }[])[0]?.ifindex, ifname: lab.lb.ifname, mode: 'native' }], 'attached to eth0 until the clean stop');
    assert.equal(existsSync(pinDirOf({ instance })!), false, 'the clean stop removed the pins');
    const link = JSON.parse(execFileSync('ip', ['-n', lab.lb.ns, '-j', 'link', 'show', lab.lb.ifname], { encoding: 'utf8' })) as { xdp?: unknown }[];
    assert.equal(link[0]?.xdp, undefined, 'and detached the program');

    // the connection table's entries from before the kill were used: the streams' packets after the
    // adoption scheduled no connection of the echo service (each miss would count one), while the
    // GETs were scheduled as new connections; no flow rescheduled, nothing dropped
    type S = Record<string, { packets: string; conns: string }>;
    const [was, end] = [second.report.stats as S, stop.report.stats as S];
    const key = (s: ServiceSpec) => `${s.protocol}:${s.address}:${s.port}`;
    assert.equal(end[key(echo)]!.conns, was[key(echo)]!.conns, 'no echo connection scheduled after the adoption: the streams hit their old entries');
    assert.ok(BigInt(end[key(echo)]!.packets) - BigInt(was[key(echo)]!.packets) >= BigInt(2 * minEchoes), 'while their packets went through');
    assert.ok(BigInt(end[key(http)]!.conns) > BigInt(was[key(http)]!.conns), 'the GETs were scheduled as new connections');
    const d = delta(counters(stop.report.counters), counters(second.report.counters));
    assert.ok((d.ct_hit ?? 0n) > 0n, 'connection-table hits after the adoption');
    assert.equal(d.ct_stale ?? 0n, 0n, 'no flow rescheduled');
    assert.deepEqual(drops(d), {}, 'nothing dropped');
  } finally {
    await c.call({ op: 'loop.stop' }).catch(() => undefined);
    await c.call({ op: 'streams.stop' }).catch(() => undefined);
  }
});
