/**
 * Live-frames measurement: our generator (bpf/xlb_gen.bpf.c) runs with BPF_PROG_TEST_RUN and
 * BPF_F_TEST_XDP_LIVE_FRAMES in the generator namespace and redirects every frame out of gen0;
 * the balancer's namespace has xlb (or the baseline) attached to the peer lb0 in native mode;
 * XDP_TX sends the frame back to gen0, whose sink program counts and drops it. veth receive
 * runs on the sending CPU, so the generator, the balancer and the sink all run on the one CPU
 * the agents are pinned to: the figure is the whole chain's cost per packet on one core.
 *
 * Each run: attach the program, read its counters, send F frames, read them again. ns/packet is
 * the wall time of the generator's test run divided by the frames the program under test
 * actually processed (xlb: its rx counter; the baselines: lb0's rx_packets, which counts XDP
 * frames; the two are checked against each other on xlb). Runs alternate between xlb and the
 * baseline (A B A B ...); the result is the median of each.
 */
import { resolve } from 'node:path';
import { checkPath, counterDelta, GEN_IP4, GEN_MAC, LB_IP4, LB_MAC, SPORT_SPAN, type BenchCase, type Counters } from './fixtures.ts';
import { describeTemplate } from './gen-config.ts';
import { XDP_REDIRECT } from '../../src/datapath/bpf/index.ts';
import { Agent } from '../lab/agent.ts';
import { createBenchNet, type BenchNet } from './netns.ts';
import { median } from './report.ts';

export interface LiveOptions {
  runs: number;
  frames: number;
  batchSize: number;
  /** established cases: flows cycled through, all in the connection table */
  flows: number;
  /** frames sent with each program before the measured runs */
  warmFrames: number;
}

export interface LiveResult {
  ns: number;
  baselineNs: number;
  baselineProgram: 'xdp_tx' | 'xdp_pass';
  ratio: number;
  /** median of the per-run ratios (each xlb run against the baseline run after it) */
  pairedRatio: number;
  /** the same from the kernel's own timer (test-run duration / frames processed) */
  kernelNs: number;
  baselineKernelNs: number;
  /** frames generated per run, and the share the program under test did not see (ring full) */
  framesPerRun: number;
  lostShare: number;
  /** of the frames xlb sent back with XDP_TX, the share that reached the sink */
  returnedShare: number | null;
  /** pass-non-service: the XDP_TX baseline as well, for reference */
  xdpTxNs?: number;
  /** every run's figure, in order */
  runsNs: number[];
  baselineRunsNs: number[];
}

type Prog = 'xlb' | 'xdp_tx' | 'xdp_pass';

interface RunResult {
  wallNs: number;
  kernelNs: number;
  generated: number;
  sunk: number;
  processed: number;
  delta: Counters;
}

function parseCounters(v: unknown): Counters {
  return Object.fromEntries(Object.entries(v as Record<string, string>).map(([k, x]) => [k, BigInt(x)]));
}

export class LiveBench {
  private progAttached: Prog | null = null;
  private devCheckDone = false;

  private constructor(readonly net: BenchNet, private readonly lb: Agent, private readonly gen: Agent) {}

  static async start(cpu: number, objects: { xlb: string; baseline: string; gen: string }): Promise<LiveBench> {
    const net = createBenchNet({ genMac: GEN_MAC, lbMac: LB_MAC, genIp4: GEN_IP4, lbIp4: LB_IP4 });
    const here = import.meta.dirname;
    let lb: Agent | undefined;
    try {
      // lb first: gen0 can only send once lb0 has a program (NAPI) — the agent attaches xlb below
      ({ agent: lb } = await Agent.start('lb', net.lbNs, resolve(here, 'lb-agent.ts'), ['lb0', objects.baseline, objects.xlb], { cpu }));
      const { agent: gen } = await Agent.start('gen', net.genNs, resolve(here, 'gen-agent.ts'), ['gen0', objects.gen, '--sink'], { cpu });
      return new LiveBench(net, lb, gen);
    } catch (err) {
      await lb?.stop();
      await net.destroy();
      throw err;
    }
  }

  async stop(): Promise<void> {
    await Promise.all([this.gen.stop(), this.lb.stop()]);
    await this.net.destroy();
  }

  private async attach(prog: Prog): Promise<void> {
    if (this.progAttached === prog) return;
    await this.lb.call({ op: 'attach', prog });
    this.progAttached = prog;
  }

  private async run(prog: Prog, frames: number, batchSize: number): Promise<RunResult> {
    await this.attach(prog);
    const c0 = await this.lb.call({ op: 'counters' });
    // one test run of all the frames: the kernel's batches back to back, no system call between
    const g = await this.gen.call({ op: 'run', frames, batchSize, chunk: frames }) as Record<string, unknown>;
    const c1 = await this.lb.call({ op: 'counters' });
    const delta = counterDelta(parseCounters(c0.counters), parseCounters(c1.counters));
    const devRx = (c1.dev as { rx_packets: number }).rx_packets - (c0.dev as { rx_packets: number }).rx_packets;
    const generated = Number(g.generated);
    if (generated !== frames) throw new Error(`the generator ran ${generated} times for ${frames} frames`);
    let processed = devRx;
    if (prog === 'xlb') {
      processed = Number(delta.rx);
      if (!this.devCheckDone && devRx !== processed) {
        throw new Error(`lb0 counted ${devRx} received frames but xlb saw ${processed}: `
          + 'the baseline count (lb0 rx_packets) would not be comparable');
      }
      this.devCheckDone = true;
    }
    if (processed === 0) throw new Error(`${prog}: none of the ${frames} generated frames reached lb0`);
    return { wallNs: Number(g.wallNs), kernelNs: Number(g.kernelNs), generated, sunk: Number(g.sunk), processed, delta };
  }

  /**
   * The generator's frames must be exactly the fixture's: flows 0, 1, 2, and the first flows
   * after the source address moves on (SPORT_SPAN - 1, SPORT_SPAN, SPORT_SPAN + 1).
   */
  private async checkGenerator(c: BenchCase, nflows: number): Promise<void> {
    for (const start of [0, SPORT_SPAN - 1]) {
      const count = Math.min(3, nflows - start); // flows wrap at nflows
      if (count <= 0) continue;
      await this.gen.call({ op: 'reset', seq: start });
      const chk = await this.gen.call({ op: 'check', count });
      const frames = chk.frames as string[];
      const verdicts = chk.verdicts as number[];
      for (let k = 0; k < frames.length; k++) {
        const i = start + k;
        if (verdicts[k] !== XDP_REDIRECT) throw new Error(`generator: verdict ${verdicts[k]} for flow ${i}, expected XDP_REDIRECT`);
        const want = c.frame(i).toString('hex');
        if (frames[k] !== want) {
          throw new Error(`generator: flow ${i} of ${c.name} differs from the fixture:\n  got  ${frames[k]}\n  want ${want}`);
        }
      }
    }
    await this.gen.call({ op: 'reset' });
  }

  async measure(c: BenchCase, o: LiveOptions): Promise<LiveResult> {
    // SYN: fresh flows throughout (the flow number never wraps within the bench)
    const nflows = c.kind === 'syn' ? 0xffffffff : o.flows;
    await this.gen.call({ op: 'template', template: describeTemplate(c.frame(0), nflows, SPORT_SPAN) });
    await this.checkGenerator(c, nflows);

    const pathCheck = (r: RunResult, what: string) => {
      const wrong = checkPath(c, r.delta, r.processed);
      if (wrong) throw new Error(`live frames, ${what}: ${wrong}`);
    };
    const baselineProgram: Prog = c.kind === 'pass' ? 'xdp_pass' : 'xdp_tx';
    const progs: Prog[] = c.kind === 'pass' ? ['xlb', 'xdp_pass', 'xdp_tx'] : ['xlb', 'xdp_tx'];

    // warm-up: established flows into the connection table (the first pass over them is all
    // misses), then a full pass that must be all hits; caches and page pools for each program
    if (c.kind === 'established') {
      await this.run('xlb', o.flows, o.batchSize);
      pathCheck(await this.run('xlb', o.flows, o.batchSize), 'after the warm-up');
    }
    for (const p of progs) {
      const r = await this.run(p, o.warmFrames, o.batchSize);
      if (p === 'xlb') pathCheck(r, 'warm-up');
    }

    const ns: Record<Prog, number[]> = { xlb: [], xdp_tx: [], xdp_pass: [] };
    const kns: Record<Prog, number[]> = { xlb: [], xdp_tx: [], xdp_pass: [] };
    let generated = 0;
    let processed = 0;
    let sunk = 0;
    for (let i = 0; i < o.runs; i++) {
      for (const p of progs) {
        const r = await this.run(p, o.frames, o.batchSize);
        ns[p].push(r.wallNs / r.processed);
        kns[p].push(r.kernelNs / r.processed);
        if (p === 'xlb') {
          pathCheck(r, `run ${i + 1}`);
          generated += r.generated;
          processed += r.processed;
          sunk += r.sunk;
        }
      }
    }
    const x = median(ns.xlb);
    const b = median(ns[baselineProgram]);
    return {
      ns: x,
      baselineNs: b,
      baselineProgram,
      ratio: x / b,
      pairedRatio: median(ns.xlb.map((v, i) => v / ns[baselineProgram][i]!)),
      kernelNs: median(kns.xlb),
      baselineKernelNs: median(kns[baselineProgram]),
      framesPerRun: o.frames,
      lostShare: 1 - processed / generated,
      returnedShare: c.kind === 'pass' ? null : sunk / processed,
      xdpTxNs: c.kind === 'pass' ? median(ns.xdp_tx) : undefined,
      runsNs: ns.xlb,
      baselineRunsNs: ns[baselineProgram],
    };
  }
}
