/**
 * The packets/s scenario of `make bench-e2e`: our generator pushes 64-byte UDP frames of many
 * flows into the balancer's namespace, the system under test forwards them to the sink, which
 * counts them (pps-systems.ts has the addressing, the systems and what each must deliver).
 *
 * Agents (scripts/lab/agent.ts): the generator (gen-agent.ts) in <p>-gen, the balancer's
 * programs (e2e-lb-agent.ts) in <p>-lb, the sink (sink-agent.ts) in <p>-sink. nftables' ruleset
 * is loaded in <p>-lb once; it only sees frames when xdp_pass hands them to the kernel.
 *
 * Modes (design.md, "Measuring"):
 *   one-core  everything on one CPU: veth receive runs on the sending CPU, so the generator's
 *             test run also runs the balancer and the sink; the figure is the chain's capacity
 *             per core (the generator's and the sink's cost included, the same for every system).
 *   pinned    the LB's ingress veth in threaded NAPI mode, its thread pinned to the LB's CPU
 *             with real-time priority (SCHED_FIFO 50, so that other work on a shared machine
 *             does not preempt it; the kernel's RT throttling leaves others 5%), the generator
 *             on the other CPU: the balancer (and the sink it feeds, scheduled from that CPU)
 *             gets a core of its own; the cross-CPU hand-off is part of it. The figure is the
 *             peak (peak.ts): the most forwarded in a flood and in trials paced at a
 *             ladder of rates above what the flood got through.
 *
 * A trial: one test run of F frames (the generator's set-up cost per call stays out),
 * forwarded packets counted at the sink; pps = sunk / the wall time of the sending, from the
 * generator program's own clock marks (the test run's timer stops while it is preempted). Before each trial a warm-up pass over every flow (connection tables, conntrack,
 * caches); each is checked: xlb's counters must show every received frame redirected as a
 * connection-table hit, nothing dropped.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Agent } from '../lab/agent.ts';
import { nsExec } from '../lab/netns.ts';
import { templateOf, frameOf, type TrafficSpec } from './gen-traffic.ts';
import { createPpsNet, type PpsNet } from './netns.ts';
import {
  checkSinkSamples, nftDnatRuleset, PPS_ADDR, REALS, VIPS, type PpsProgram, type PpsSystem,
} from './pps-systems.ts';
import { XDP_REDIRECT } from '../../src/datapath/bpf/index.ts';
import { ladderRates, lossOf, peakOf, type Trial } from './peak.ts';

export type PpsMode = 'one-core' | 'pinned';

export interface PpsOptions {
  flows: number;
  /** Ethernet frame size incl. FCS (gen-traffic.ts) */
  size: number;
  framesPerRun: number;
  batchSize: number;
}

export interface PpsTrial {
  system: string;
  mode: PpsMode;
  /** the rate asked of the generator, 0 = as fast as it goes */
  rate: number;
  /** forwarded: frames counted at the sink per second of the generator's loop */
  pps: number;
  /** the generator's own rate over the same time */
  offeredPps: number;
  /** frames the LB's ingress received per second */
  lbRxPps: number;
  generated: number;
  lbRx: number;
  sunk: number;
  /** wall time of the sending (clock marks, extrapolated to every frame), and the test run's own timer */
  sendNs: number;
  kernelNs: number;
}

/** One measured run of a system: its figure, and (pinned) the trials it is the peak of. */
export interface PpsRun extends PpsTrial {
  /** pinned: the flood trial's forwarded and offered rates, and every trial as {rate, offered, forwarded} */
  flood?: { pps: number; offeredPps: number };
  trials?: Trial[];
  /** pinned: the flood lost at most 1%: the generator was the limit, no ladder was tried */
  generatorBound?: boolean;
}

export interface LadderOptions {
  /** a paced trial lasts about this long (frames = rate × this), at least minFrames */
  trialMs: number;
  minFrames: number;
}

/** SCHED_FIFO priority of the LB's NAPI thread in the pinned set-up */
const NAPI_RT_PRIORITY = 50;

/** The warm-up's rate: slow enough that no frame is lost on the way in any set-up (every flow must reach the LB). */
const WARM_RATE = 200_000;

type Objects = { xlb: string; baseline: string; gen: string };

const n = (v: unknown) => Number(v);

export class PpsBench {
  private attachedProg: PpsProgram | null = null;
  private vip: string | null = null;
  private mode: PpsMode | null = null;

  private constructor(
    readonly net: PpsNet, private readonly gen: Agent, private readonly genPid: number,
    private readonly lb: Agent, private readonly sink: Agent, private readonly cpus: { gen: number; lb: number },
    private readonly o: PpsOptions,
  ) {}

  static async start(objects: Objects, cpus: { gen: number; lb: number }, o: PpsOptions, methods: readonly string[]): Promise<PpsBench> {
    const net = createPpsNet({ ...PPS_ADDR, reals: REALS });
    const here = import.meta.dirname;
    const agents: Agent[] = [];
    try {
      // the sink and the LB's program first: a veth takes XDP frames only when its peer has NAPI
      const sink = await Agent.start('sink', net.sinkNs, resolve(here, 'sink-agent.ts'), [net.sinkDev, objects.gen]);
      agents.push(sink.agent);
      const lb = await Agent.start('lb', net.lbNs, resolve(here, 'e2e-lb-agent.ts'),
        [net.lbIn, net.lbOut, objects.gen, objects.baseline, objects.xlb]);
      agents.push(lb.agent);
      await lb.agent.call({
        op: 'configure',
        services: Object.entries(VIPS).filter(([m]) => methods.includes(m)).map(([method, vip]) => ({ vip, port: PPS_ADDR.dport, method })),
        reals: REALS,
        config: { tunSrc4: PPS_ADDR.tunSrc4, tunSrc4Bits: PPS_ADDR.tunSrc4Bits, tunTtl: 64, natSrc4: PPS_ADDR.fullnatSrc4 },
        outMac: PPS_ADDR.lbOut.mac,
        floorMac: REALS[0]!.mac,
      });
      await lb.agent.call({ op: 'attach', prog: 'pass' });
      nsExec(net.lbNs, ['nft', '-f', '-'], { input: nftDnatRuleset(VIPS.dr, PPS_ADDR.dport, 'udp', REALS) });
      const gen = await Agent.start('gen', net.genNs, resolve(here, 'gen-agent.ts'), [net.genDev, objects.gen]);
      agents.push(gen.agent);
      const bench = new PpsBench(net, gen.agent, n(gen.hello.pid), lb.agent, sink.agent, cpus, o);
      bench.attachedProg = 'pass';
      return bench;
    } catch (err) {
      await Promise.all(agents.map((a) => a.stop()));
      net.destroy();
      throw err;
    }
  }

  async stop(): Promise<void> {
    await Promise.all([this.gen.stop(), this.lb.stop(), this.sink.stop()]);
    this.net.destroy();
  }

  /** A device's NAPI threads (threaded mode), by name: napi/<dev>-<napi id>. */
  private napiThreads(dev: string): number[] {
    const want = `napi/${dev}-`;
    const pids: number[] = [];
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        if (readFileSync(`/proc/${d}/comm`, 'utf8').startsWith(want)) pids.push(Number(d));
      } catch { /* gone */ }
    }
    return pids;
  }

  /** threaded NAPI on or off for a device of one of the namespaces; its threads when on */
  private threaded(ns: string, dev: string, on: boolean, cpu: number): number[] {
    nsExec(ns, ['sh', '-c', `echo ${on ? 1 : 0} > /sys/class/net/${dev}/threaded`]);
    if (!on) return [];
    const threads = this.napiThreads(dev);
    if (threads.length === 0) throw new Error(`no NAPI thread napi/${dev}-* after enabling threaded NAPI`);
    for (const pid of threads) {
      execFileSync('taskset', ['-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
      execFileSync('chrt', ['-f', '-p', String(NAPI_RT_PRIORITY), String(pid)], { stdio: 'ignore' });
    }
    return threads;
  }

  /**
   * Switch between the one-core chain and the pinned two-core set-up. Pinned: the LB's ingress
   * NAPI thread on the LB's CPU, SCHED_FIFO; the sink's receive is scheduled from there and
   * runs there too. (With the sink's own thread on the generator's CPU instead, the generator
   * became the limit: the floor was generator-bound.)
   */
  setMode(mode: PpsMode): { napiThreads: number[] } {
    const pinned = mode === 'pinned';
    const napiThreads = this.threaded(this.net.lbNs, this.net.lbIn, pinned, this.cpus.lb);
    const genCpu = pinned ? this.cpus.gen : this.cpus.lb;
    execFileSync('taskset', ['-a', '-p', '-c', String(genCpu), String(this.genPid)], { stdio: 'ignore' });
    this.mode = mode;
    return { napiThreads };
  }

  private traffic(vip: string): TrafficSpec {
    return {
      srcMac: PPS_ADDR.gen.mac, dstMac: PPS_ADDR.lbIn.mac, src: PPS_ADDR.client, dst: vip, proto: 'udp',
      sport: PPS_ADDR.sport, sportSpan: PPS_ADDR.sportSpan, dport: PPS_ADDR.dport, flows: this.o.flows, size: this.o.size,
    };
  }

  private async use(sys: PpsSystem): Promise<void> {
    if (this.attachedProg !== sys.program) {
      await this.lb.call({ op: 'attach', prog: sys.program });
      this.attachedProg = sys.program;
      if (this.mode === 'pinned') this.setMode('pinned'); // the NAPI threads stay; pin them again all the same
    }
    if (this.vip !== sys.vip) {
      await this.gen.call({ op: 'template', template: templateOf(this.traffic(sys.vip)) });
      this.vip = sys.vip;
    }
  }

  private async genRun(frames: number, rate = 0): Promise<Record<string, unknown>> {
    return this.gen.call({ op: 'run', frames, rate, batchSize: this.o.batchSize });
  }

  /**
   * Before a system is measured: the generator's frames are the independent builder's (flows
   * 0, 1 and the first of the next source address), and what the sink receives is what the
   * system must deliver, spread over the reals (pps-systems.ts checkSinkSamples).
   */
  async check(sys: PpsSystem): Promise<void> {
    await this.use(sys);
    const spec = this.traffic(sys.vip);
    for (const start of [0, PPS_ADDR.sportSpan - 1]) {
      const count = Math.min(2, this.o.flows - start);
      if (count <= 0) continue;
      await this.gen.call({ op: 'reset', seq: start });
      const chk = await this.gen.call({ op: 'check', count });
      const frames = chk.frames as string[];
      (chk.verdicts as number[]).forEach((v, k) => {
        if (v !== XDP_REDIRECT) throw new Error(`generator: verdict ${v} for flow ${start + k}, expected XDP_REDIRECT`);
        const want = frameOf(spec, start + k).toString('hex');
        if (frames[k] !== want) throw new Error(`generator: flow ${start + k} differs from the packet builder's:\n  got  ${frames[k]}\n  want ${want}`);
      });
    }
    await this.gen.call({ op: 'reset' });
    await this.genRun(2 * this.o.flows, WARM_RATE);
    await this.sink.call({ op: 'arm', count: 64 });
    await this.genRun(256, WARM_RATE);
    await sleep(50);
    const s = await this.sink.call({ op: 'samples' });
    const wrong = checkSinkSamples(sys, (s.frames as string[]).map((h) => Buffer.from(h, 'hex')), this.o.flows);
    if (wrong) throw new Error(`the sink got the wrong frames: ${wrong}`);
  }

  /** One trial: warm-up, then `frames` frames at `rate` (0 = full speed), checked. */
  async trial(sys: PpsSystem, rate: number, frames: number): Promise<PpsTrial> {
    if (!this.mode) throw new Error('setMode first');
    await this.use(sys);
    await this.genRun(2 * this.o.flows, WARM_RATE); // warm-up: every flow twice
    await sleep(20);
    const c0 = await this.lb.call({ op: 'counters' });
    const s0 = n((await this.sink.call({ op: 'counters' })).sunk);
    const g = await this.genRun(frames, rate);
    await sleep(50); // what is still in the rings
    const c1 = await this.lb.call({ op: 'counters' });
    const sunk = n((await this.sink.call({ op: 'counters' })).sunk) - s0;
    const inRx = (c: Record<string, unknown>) => n((c.in as Record<string, number>).rx_packets);
    const lbRx = inRx(c1) - inRx(c0);
    const generated = n(g.generated);
    const kernelNs = n(g.kernelNs);
    // over wall time (the generator's clock marks), not the test run's timer, which stops while
    // the run is preempted (by the sink's thread, ksoftirqd or anything else)
    const spanNs = n(g.spanNs);
    const spanFrames = n(g.spanFrames);
    if (spanFrames < generated / 2 || spanNs <= 0) throw new Error(`the generator's clock marks cover ${spanFrames} of ${generated} frames`);
    const sendNs = (spanNs * generated) / spanFrames;
    if (generated !== frames) throw new Error(`the generator ran ${generated} times for ${frames} frames`);
    if (sys.program === 'xlb') {
      const d = counterDelta(c0.counters as Record<string, string>, c1.counters as Record<string, string>);
      const want: Record<string, number> = { rx: lbRx, redirect: lbRx, ct_hit: lbRx };
      const wrong = Object.entries(d).filter(([k, v]) => v !== (want[k] ?? 0)).map(([k, v]) => `${k} ${v} (expected ${want[k] ?? 0})`);
      if (wrong.length) throw new Error(`${sys.name}: ${lbRx} frames received did not all take the expected path: ${wrong.join(', ')}`);
    }
    if (sunk === 0) throw new Error(`${sys.name}: nothing reached the sink`);
    const perSec = (x: number) => (x * 1e9) / sendNs;
    return {
      system: sys.name, mode: this.mode, rate, pps: perSec(sunk), offeredPps: perSec(generated), lbRxPps: perSec(lbRx),
      generated, lbRx, sunk, sendNs: Math.round(sendNs), kernelNs,
    };
  }

  /**
   * One measured run. one-core: a flood of framesPerRun frames (the chain forwards each batch
   * before the next is made: nothing is lost). pinned: the peak (peak.ts) of a flood of
   * framesPerRun frames and the ladder of paced trials after it.
   */
  async measure(sys: PpsSystem, lo: LadderOptions): Promise<PpsRun> {
    const flood = await this.trial(sys, 0, this.o.framesPerRun);
    if (this.mode !== 'pinned') return flood;
    const asTrial = (t: PpsTrial): Trial => ({ rate: t.rate, offered: t.offeredPps, forwarded: t.pps });
    const runs: PpsTrial[] = [flood];
    for (const rate of ladderRates(asTrial(flood))) {
      runs.push(await this.trial(sys, rate, Math.max(lo.minFrames, Math.round((rate * lo.trialMs) / 1000))));
    }
    const trials = runs.map(asTrial);
    const best = runs[trials.indexOf(peakOf(trials))]!;
    return {
      ...best, flood: { pps: flood.pps, offeredPps: flood.offeredPps }, trials,
      generatorBound: runs.length === 1 && lossOf(trials[0]!) <= 0.01,
    };
  }
}

function counterDelta(a: Record<string, string>, b: Record<string, string>): Record<string, number> {
  return Object.fromEntries(Object.keys(b).map((k) => [k, Number(BigInt(b[k]!) - BigInt(a[k] ?? '0'))]));
}

function sleep(ms: number): Promise<void> {
  return new Promise((ok) => setTimeout(ok, ms));
}
