/**
 * The traffic generator and the sink, in this process's network namespace (the I/O around
 * bpf/xlb_gen.bpf.c; the layouts are in gen-config.ts, the traffic and pacing in gen-traffic.ts).
 *
 *  Generator  runs xlb_gen with BPF_PROG_TEST_RUN and BPF_F_TEST_XDP_LIVE_FRAMES: every frame
 *             is redirected out of one interface, whose PEER must have NAPI (an XDP program,
 *             or GRO on) or the kernel drops the frames. Used by scripts/gen.ts (the CLI) and
 *             by the benchmarks' generator agent.
 *  Sink       attaches xlb_sink to an interface (native XDP): counts and drops what arrives,
 *             passes ARP / neighbour discovery, and on request copies frames for a check.
 *
 * Both are thin: no policy beyond what the BPF side needs.
 */
import {
  BPF_F_TEST_XDP_LIVE_FRAMES, openObject, xdpAttach, xdpDetach, xdpTestContext, XDP_FLAGS_DRV_MODE,
  type BpfMap, type BpfObject, type BpfProgram,
} from '../../src/datapath/bpf/index.ts';
import { decodeSample, encodeGenConfig, GEN_SAMPLE_SLOTS, GEN_ST, type GenTemplate } from './gen-config.ts';
import { nextChunk, paceStep } from './gen-traffic.ts';
import { sleepSync } from '../lab/netns.ts';

const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };

function sumPerCpu(m: BpfMap, key: number): number {
  return Number(m.lookupPerCpu(u32(key)).reduce((s, v) => s + v.readBigUInt64LE(0), 0n));
}

function setPerCpu(m: BpfMap, key: number, value: number): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(value));
  m.updatePerCpu(u32(key), Array.from({ length: m.valuesPerKey() }, () => b));
}

/**
 * Every test run with live frames costs a fixed ~20-25 ms of set-up and tear-down on the
 * machine this was written on (a page pool per call) besides the frames, so the run loop makes
 * few, large calls. Rates of at least KERNEL_PACE_MIN frames/s are paced in the program
 * (gen_config.gap_ns: exact spacing, each CPU on its own schedule) with ~1 s of frames per call;
 * lower rates are paced from user space, by what is due every ~100 ms (bursts at full speed
 * in between: too few frames to matter).
 */
export const REPEAT_MAX = 0x7fffffff;
export const KERNEL_PACE_MIN = 1000;

export interface RunOptions {
  /** frames per second, 0 = full speed */
  rate: number;
  /** stop after this many frames, or after this many ms (at least one of the two) */
  frames?: number;
  durationMs?: number;
  /** frames per kernel batch (live frames; the kernel takes at most 256) */
  batchSize?: number;
  /**
   * frames per test run at most. Default: with a frame count, all of them in one call (at full
   * speed or paced in the program); with a duration, ~250 ms of frames at full speed or ~1 s
   * paced in the program; 100 ms of frames when paced from user space.
   */
  chunk?: number;
}

export interface RunResult {
  /** wall time of the run, ns */
  wallNs: number;
  /**
   * the kernel's time in the test runs' loops, ns: the frames' time without each call's set-up,
   * but also without any time the run was preempted (the test-run timer stops then)
   */
  kernelNs: number;
  /**
   * wall time from the first frame to the last clock mark (every GEN_STAMP_EVERY frames), and
   * the frames sent in it: the rate over wall time, whatever preempted the run
   */
  spanNs: number;
  spanFrames: number;
  /** frames the program generated (its own counter) */
  generated: number;
  /** test runs (system calls) made */
  calls: number;
}

export class Generator {
  private readonly obj: BpfObject;
  private readonly prog: BpfProgram;
  private readonly config: BpfMap;
  private readonly stats: BpfMap;
  private frame: Buffer | undefined;
  private template: GenTemplate | undefined;
  private sinkAttached = false;

  /**
   * Load the generator; its frames leave by `ifindex`. With `attachSink`, xlb_sink is attached
   * to that interface as well (it counts what comes back, and gives the veth NAPI).
   */
  constructor(objPath: string, readonly ifindex: number, opts: { attachSink?: boolean } = {}) {
    this.obj = openObject(objPath);
    try {
      this.obj.load();
      this.prog = this.obj.program('xlb_gen');
      this.config = this.obj.map('gen_config');
      this.stats = this.obj.map('gen_stats');
      if (opts.attachSink) {
        xdpAttach(ifindex, this.obj.program('xlb_sink').fd, XDP_FLAGS_DRV_MODE);
        this.sinkAttached = true;
      }
    } catch (err) {
      this.obj.close();
      throw err;
    }
  }

  setTemplate(t: GenTemplate): void {
    this.config.update(u32(0), encodeGenConfig(t, this.ifindex));
    this.template = t;
    this.frame = Buffer.from(t.frameHex, 'hex');
  }

  /** The flow sequence to `seq` (the next frame is flow seq % nflows), the sink's counters to 0. */
  reset(seq = 0): void {
    setPerCpu(this.stats, GEN_ST.generated, seq);
    setPerCpu(this.stats, GEN_ST.sunk, 0);
    setPerCpu(this.stats, GEN_ST.sinkPassed, 0);
  }

  /** `count` ordinary (not live) test runs: the frames the generator would send next, and its verdicts. */
  check(count: number): { frames: Buffer[]; verdicts: number[] } {
    const data = this.data();
    const frames: Buffer[] = [];
    const verdicts: number[] = [];
    for (let i = 0; i < count; i++) {
      const r = this.prog.testRun({ data, ctx: xdpTestContext(data.length, this.ifindex), repeat: 1 });
      frames.push(r.data);
      verdicts.push(r.retval);
    }
    return { frames, verdicts };
  }

  /** Frames generated so far (all CPUs), and what the sink on this interface counted. */
  counters(): { generated: number; sunk: number } {
    return { generated: sumPerCpu(this.stats, GEN_ST.generated), sunk: sumPerCpu(this.stats, GEN_ST.sunk) };
  }

  /** Send frames with live frames, paced (gen-traffic.ts paceStep); returns when done. */
  run(o: RunOptions, clock: () => bigint = process.hrtime.bigint, sleep: (ns: number) => void = (ns) => sleepSync(ns / 1e6)): RunResult {
    if (o.frames === undefined && o.durationMs === undefined) throw new Error('run: give frames or durationMs');
    const data = this.data();
    const ctx = xdpTestContext(data.length, this.ifindex);
    if (!(o.rate >= 0)) throw new Error(`rate ${o.rate} is not >= 0`);
    const g0 = sumPerCpu(this.stats, GEN_ST.generated);
    const inKernel = o.rate >= KERNEL_PACE_MIN;
    this.config.update(u32(0), encodeGenConfig(this.template!, this.ifindex, inKernel ? Math.round(1e9 / o.rate) : 0));
    setPerCpu(this.stats, GEN_ST.nextNs, 0);
    setPerCpu(this.stats, GEN_ST.t0Ns, 0);
    // the calls' size: adapted to the time left with a duration, else all the frames at once
    const adaptive = o.chunk === undefined && o.durationMs !== undefined && (o.rate === 0 || inKernel);
    const pace = {
      rate: inKernel ? 0 : o.rate, frames: o.frames, durationNs: o.durationMs === undefined ? undefined : o.durationMs * 1e6,
      chunkMax: Math.min(REPEAT_MAX, o.chunk
        ?? (o.rate > 0 && !inKernel ? Math.max(1, Math.ceil(o.rate / 10)) : adaptive ? (inKernel ? o.rate : 65536) : o.frames!)),
    };
    let sent = 0;
    let kernelNs = 0;
    let calls = 0;
    const t0 = clock();
    for (;;) {
      const elapsed = Number(clock() - t0);
      if (adaptive && (calls > 0 || inKernel)) {
        // ~250 ms (full speed) or ~1 s (paced) of frames at the rate seen or asked, no more than the time left
        const fps = inKernel ? o.rate : (sent * 1e9) / Math.max(1, kernelNs);
        pace.chunkMax = nextChunk(fps, Math.min(inKernel ? 1e9 : 250e6, pace.durationNs! - elapsed), 1, REPEAT_MAX);
      }
      const step = paceStep(pace, elapsed, sent);
      if (step.done) break;
      if (step.frames === 0) { sleep(step.waitNs); continue; }
      const r = this.prog.testRun({ data, ctx, repeat: step.frames, flags: BPF_F_TEST_XDP_LIVE_FRAMES, batchSize: o.batchSize });
      sent += step.frames;
      kernelNs += r.duration * step.frames;
      calls++;
    }
    if (inKernel) this.config.update(u32(0), encodeGenConfig(this.template!, this.ifindex));
    const wallNs = Number(clock() - t0);
    // the marks of the CPU that ran (the one whose T0 was set; the most frames if several)
    const slot = (k: number) => this.stats.lookupPerCpu(u32(k)).map((v) => Number(v.readBigUInt64LE(0)));
    const markT0 = slot(GEN_ST.t0Ns);
    const markS0 = slot(GEN_ST.t0Seq);
    const markT1 = slot(GEN_ST.t1Ns);
    const markS1 = slot(GEN_ST.t1Seq);
    let spanNs = 0;
    let spanFrames = 0;
    markT0.forEach((t, cpu) => {
      const frames = markS1[cpu]! - markS0[cpu]!;
      if (t > 0 && frames > spanFrames) { spanFrames = frames; spanNs = markT1[cpu]! - t; }
    });
    return { wallNs, kernelNs, spanNs, spanFrames, generated: sumPerCpu(this.stats, GEN_ST.generated) - g0, calls };
  }

  close(): void {
    try { if (this.sinkAttached) xdpDetach(this.ifindex, XDP_FLAGS_DRV_MODE); } catch { /* the namespace may be going away */ }
    this.sinkAttached = false;
    this.obj.close();
  }

  private data(): Buffer {
    if (!this.frame) throw new Error('the generator has no template yet');
    return this.frame;
  }
}

export class Sink {
  private readonly obj: BpfObject;
  private readonly stats: BpfMap;
  private readonly samples: BpfMap;
  private attached = false;

  constructor(objPath: string, readonly ifindex: number) {
    this.obj = openObject(objPath);
    try {
      this.obj.load();
      this.stats = this.obj.map('gen_stats');
      this.samples = this.obj.map('sink_samples');
      xdpAttach(ifindex, this.obj.program('xlb_sink').fd, XDP_FLAGS_DRV_MODE);
      this.attached = true;
    } catch (err) {
      this.obj.close();
      throw err;
    }
  }

  /** Frames counted and dropped, and ARP / ND frames passed, over all CPUs. */
  counters(): { sunk: number; passed: number } {
    return { sunk: sumPerCpu(this.stats, GEN_ST.sunk), passed: sumPerCpu(this.stats, GEN_ST.sinkPassed) };
  }

  /** Clear the sample slots and copy the next `count` frames (per CPU, at most GEN_SAMPLE_SLOTS). */
  armSamples(count: number): void {
    if (!Number.isInteger(count) || count < 0 || count > GEN_SAMPLE_SLOTS) throw new Error(`sample count ${count} is not in 0..${GEN_SAMPLE_SLOTS}`);
    setPerCpu(this.stats, GEN_ST.sampleLeft, 0);
    const zero = Buffer.alloc(this.samples.valueBytes);
    for (let k = 0; k < GEN_SAMPLE_SLOTS; k++) this.samples.update(u32(k), zero);
    setPerCpu(this.stats, GEN_ST.sampleLeft, count);
  }

  /** The frames copied since armSamples (in no particular order). */
  readSamples(): { len: number; data: Buffer }[] {
    const out: { len: number; data: Buffer }[] = [];
    for (let k = 0; k < GEN_SAMPLE_SLOTS; k++) {
      for (const v of this.samples.lookupPerCpu(u32(k))) {
        const s = decodeSample(v);
        if (s) out.push(s);
      }
    }
    return out;
  }

  close(): void {
    try { if (this.attached) xdpDetach(this.ifindex, XDP_FLAGS_DRV_MODE); } catch { /* the namespace may be going away */ }
    this.attached = false;
    this.obj.close();
  }
}
