/**
 * Hitless restart under traffic, in the namespace lab: a process that holds the pinned forwarder
 * (scripts/lab/xdp-hold.ts, in lb1's namespace) forwards one long-lived TCP echo stream per real
 * (a message every few ms, each echo checked) and a loop of short connections (HTTP GETs) through
 * the VIP, IPv4, DR and NAT (reals routed via the LB, HTTP on the reals' :8080). Then:
 *  1. it is SIGKILLed: the program stays attached, the streams go on and new connections work
 *     with no process behind the datapath;
 *  2. a new process adopts the pins (it reads back the services the first one programmed and
 *     finds the connection table, and the NAT state, kept) and applies the same services: the real
 *     ids do not move. While only the streams run, their packets hit the connection entries made
 *     before the kill (no connection of theirs is scheduled again, no miss) and, NAT, their replies
 *     are translated by the NAT state made before the kill (none made again); then new connections
 *     work too. No stream ever breaks, no GET fails, nothing is dropped or rescheduled;
 *  3. a clean stop (xdp-hold.ts destroy) detaches the program and removes the pins.
 * The pins are removed (and the namespaces deleted) on every way out.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { Agent } from '../../scripts/lab/agent.ts';
import type { Get, StreamStatus } from '../../scripts/lab/client-agent.ts';
import { createLab, type Lab, type Routing } from '../../scripts/lab/lab.ts';
import { onCleanup, randomPrefix } from '../../scripts/lab/netns.ts';
import { XLB_PIN_ROOT, removePinDir } from '../../src/datapath/bpf/index.ts';
import { XdpForwarder, pinDirOf, type Method, type ServiceSpec } from '../../src/datapath/xdp/forwarder.ts';
import { REPO, requireLab } from '../lib/require.ts';
import { counters, delta, drops, labConfig, realSpecs, urlOf } from './rig.ts';

const HOLD = resolve(REPO, 'scripts/lab/xdp-hold.ts');
const STREAM_INTERVAL_MS = 5;
const PHASE_MS = 600;

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

/** `httpRealPort`: NAT, the reals' port for the HTTP service (VIP :80 -> real :8080) */
async function hitless(lab: Lab, c: Agent, instance: string, procs: ChildProcess[], method: Method, httpRealPort?: number): Promise<void> {
  const http: ServiceSpec = { address: lab.vip4, port: lab.ports.http[0]!, protocol: 'tcp' };
  const echo: ServiceSpec = { address: lab.vip4, port: lab.ports.echo, protocol: 'tcp' };
  const weights = { real1: 1, real2: 1 };
  const setup = {
    config: labConfig(lab),
    services: [
      { service: http, reals: realSpecs(lab, 4, method, weights, httpRealPort) },
      { service: echo, reals: realSpecs(lab, 4, method, weights) },
    ],
  };
  const hold = async () => {
    const h = await startHold(lab.lb.ns, ['hold', instance, lab.lb.ifname, JSON.stringify(setup)]);
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

  type Stats = Record<string, { packets: string; conns: string }>;
  const key = (sv: ServiceSpec) => `${sv.protocol}:${sv.address}:${sv.port}`;
  const loopUrl = urlOf(http.address, http.port);

  await c.call({ op: 'streams.open', address: echo.address, port: echo.port, want: ['real1', 'real2'] });
  await c.call({ op: 'streams.start', intervalMs: STREAM_INTERVAL_MS });
  await c.call({ op: 'loop.start', url: loopUrl, concurrency: 2 });
  try {
    await pause(PHASE_MS);

    // 1. SIGKILL: nobody holds the forwarder; the streams and new connections go on
    await killed(first.proc, 'SIGKILL');
    const killedAt = await mark();
    const atKill = echoed(await status());
    await pause(PHASE_MS);
    const orphanGets = (await c.call({ op: 'loop.stop' })).gets as Get[];
    const afterOrphan = echoed(await status());

    // 2. a new process adopts and applies the same services; at first only the streams run, so
    //    that what the datapath does for them alone can be counted
    const second = await hold();
    assert.equal(second.report.adopted, true, 'the second process adopts the pins');
    assert.equal(second.report.progId, first.report.progId, 'the same program, still attached');
    assert.deepEqual(second.report.held, setup.services, 'it reads back what the first one programmed');
    assert.ok((second.report.conntrack as number) >= 2, `the connection table was kept (${String(second.report.conntrack)} entries)`);
    assert.deepEqual(second.report.applied, first.report.applied, 'the same services and real ids');
    await pause(PHASE_MS);
    const read = (await startHold(lab.lb.ns, ['read', instance])).report;
    const afterAdoption = echoed(await status());

    // the streams' packets since the adoption hit the connection entries made before the kill: no
    // connection of the echo service was scheduled (a miss would count one); NAT: their replies
    // were translated by the NAT state made before the kill (none was made again)
    const [was, now] = [second.report.stats as Stats, read.stats as Stats];
    const d = delta(counters(read.counters), counters(second.report.counters));
    const minEchoes = Math.floor(PHASE_MS / STREAM_INTERVAL_MS / 4);
    assert.equal(now[key(echo)]!.conns, was[key(echo)]!.conns, 'no echo connection scheduled after the adoption: the streams hit their old entries');
    assert.ok(BigInt(now[key(echo)]!.packets) - BigInt(was[key(echo)]!.packets) >= BigInt(2 * minEchoes), 'while their packets went through');
    assert.equal(d.ct_miss ?? 0n, 0n, 'no connection-table miss');
    assert.ok((d.ct_hit ?? 0n) > 0n, 'connection-table hits');
    if (method === 'nat') {
      assert.ok((second.report.nat as number) >= 2, `the NAT state was kept (${String(second.report.nat)} entries)`);
      assert.equal(d.nat_created ?? 0n, 0n, 'no NAT state made again');
      assert.ok((d.nat_reply ?? 0n) >= BigInt(2 * minEchoes), 'the replies translated with the old state');
    }

    // new connections after the adoption
    const adoptedAt = await mark();
    await c.call({ op: 'loop.start', url: loopUrl, concurrency: 2 });
    await pause(PHASE_MS);
    const adoptedGets = (await c.call({ op: 'loop.stop' })).gets as Get[];
    const streams = (await c.call({ op: 'streams.stop' })).streams as StreamStatus[];

    // the streams: never broken, every message echoed, and moving in every phase
    assert.deepEqual(streams.map((st) => st.real).sort(), ['real1', 'real2']);
    for (const st of streams) {
      assert.equal(st.broken, undefined, `${st.real}'s stream never broke`);
      assert.equal(st.echoed, st.sent, `${st.real}: every message echoed`);
      assert.ok(afterOrphan[st.real]! - atKill[st.real]! >= minEchoes, `${st.real}'s stream went on with no process (${atKill[st.real]} -> ${afterOrphan[st.real]})`);
      assert.ok(afterAdoption[st.real]! - afterOrphan[st.real]! >= minEchoes, `${st.real}'s stream went on after the adoption (${afterOrphan[st.real]} -> ${afterAdoption[st.real]})`);
    }
    // the short connections: none failed; some started while nobody held the forwarder, some after the adoption
    const gets = [...orphanGets, ...adoptedGets];
    assert.deepEqual(gets.filter((g) => g.error !== undefined), [], 'no GET failed');
    const withoutProcess = orphanGets.filter((g) => g.start > killedAt).length;
    assert.ok(withoutProcess >= 5, `new connections with no process: ${withoutProcess}`);
    assert.ok(adoptedGets.filter((g) => g.start > adoptedAt).length >= 5, `new connections after the adoption: ${adoptedGets.length}`);
    assert.deepEqual([...new Set(gets.filter((g) => g.start > killedAt).map((g) => g.real))].sort(), ['real1', 'real2'], 'both reals serve');

    // 3. the clean stop: after the second process exits (SIGTERM keeps the datapath)
    await killed(second.proc, 'SIGTERM');
    const stop = await startHold(lab.lb.ns, ['destroy', instance]);
    procs.push(stop.proc);
    assert.equal(stop.report.adopted, true);
    const attachments = stop.report.attachments as { ifindex: number; ifname: string; mode: string }[];
    assert.deepEqual(attachments.map((a) => [a.ifname, a.mode]), [[lab.lb.ifname, 'native']], 'attached to eth0 until the clean stop');
    assert.equal(existsSync(pinDirOf({ instance })!), false, 'the clean stop removed the pins');
    const link = JSON.parse(execFileSync('ip', ['-n', lab.lb.ns, '-j', 'link', 'show', lab.lb.ifname], { encoding: 'utf8' })) as { xdp?: unknown }[];
    assert.equal(link[0]?.xdp, undefined, 'and detached the program');

    // over the whole run after the adoption: no flow rescheduled, nothing dropped
    const all = delta(counters(stop.report.counters), counters(second.report.counters));
    assert.equal(all.ct_stale ?? 0n, 0n, 'no flow rescheduled');
    assert.deepEqual(drops(all), {}, 'nothing dropped');
    assert.equal((stop.report.stats as Stats)[key(echo)]!.conns, was[key(echo)]!.conns, 'no echo connection scheduled to the end');
  } finally {
    await c.call({ op: 'loop.stop' }).catch(() => undefined);
    await c.call({ op: 'streams.stop' }).catch(() => undefined);
  }
}

function hitlessSuite(method: Method, routing: Routing, httpRealPort?: number): void {
  describe(`hitless restart, ${method.toUpperCase()} (lab routing: ${routing})`, () => {
    let lab: Lab | undefined;
    let client: Agent | undefined;
    let instance = '';
    const procs: ChildProcess[] = [];

    before(async () => {
      requireLab();
      lab = await createLab({ prefix: randomPrefix('xlbh'), reals: 2, routing });
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
      await hitless(lab, client, instance, procs, method, httpRealPort);
    });
  });
}

hitlessSuite('dr', 'direct');
// NAT: the connections' NAT state (replies translated back) must survive the restart too
hitlessSuite('nat', 'via-lb', 8080);
