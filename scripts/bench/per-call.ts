/**
 * Per-call measurement: many BPF_PROG_TEST_RUN calls with repeat=1, the kernel's reported
 * duration of each, interleaved round by round with the XDP_TX baseline (xlb round, baseline
 * round, xlb round, ...). repeat > 1 is never used on xlb: the program would run again on
 * its own output (an encapsulated packet, rewritten MACs), which is not the path we mean.
 *
 * The kernel's figure for one call covers the program plus the test-run's fixed costs
 * (two clock reads, bh disable/enable); the baseline carries the same costs, which is why the
 * result is given next to it and as a ratio, and the difference is reported too.
 *
 * Between two calls the system call path and node run on the CPU, so each call starts with
 * caches and TLB partly cold. With one flow the program's few cache lines (its connection-table
 * entry among them) stay warm; cycling over many flows makes every connection-table lookup a
 * cache (and, with the 1M-entry table spread over ~100 MB, TLB) miss. The entry point measures
 * established cases both ways.
 *
 * nat-reply: every flow's forward packet is sent first (its NAT state written), then the real's
 * replies are measured (translated back and sent out: nat_reply and tx for each).
 */
import type { XdpForwarder } from '../../src/datapath/xdp/forwarder.ts';
import { XDP_TX, xdpVerdictName, type BpfProgram } from '../../src/datapath/bpf/index.ts';
import { checkPath, counterDelta, readCounters, type BenchCase } from './fixtures.ts';
import { interquartileMean, median } from './report.ts';

export interface PerCallOptions {
  rounds: number;
  calls: number;
  /** established and pass cases cycle through this many flows (established: all put in the
   * connection table first, one packet each) */
  flows: number;
  /** first flow number of the SYN case's fresh flows (never sent before to this forwarder) */
  synFlowBase: number;
}

export interface PerCallResult {
  ns: number;
  baselineNs: number;
  calls: number;
  /** interquartile means: the kernel's clock may tick in steps (10 ns on the VM this was written on) */
  iqmNs: number;
  baselineIqmNs: number;
  /** per-round medians of the ratio, to show the spread between rounds */
  roundRatioMin: number;
  roundRatioMax: number;
}

function verdictError(c: BenchCase, who: string, got: number, want: number): Error {
  return new Error(`${c.name}: ${who} returned ${xdpVerdictName(got)}, expected ${xdpVerdictName(want)}: `
    + 'the bench would measure the wrong path');
}

export function measurePerCall(fw: XdpForwarder, baseline: BpfProgram, c: BenchCase, o: PerCallOptions): PerCallResult {
  const flows = c.kind === 'syn' ? [] : Array.from({ length: o.flows }, (_, i) => c.frame(i));

  // established: put every flow in the connection table first (and check it took); nat-reply:
  // send every flow's forward packet first, so that its NAT state exists
  if (c.kind === 'established' || c.kind === 'nat-reply') {
    for (let i = 0; i < flows.length; i++) {
      const r = fw.testRun(c.warm ? c.warm(i) : flows[i]!);
      if (r.verdict !== XDP_TX) throw verdictError(c, 'xlb (warm-up)', r.verdict, XDP_TX);
    }
  }

  const xs: number[] = [];
  const bs: number[] = [];
  const roundRatios: number[] = [];
  for (let round = 0; round < o.rounds; round++) {
    const frames = c.kind === 'syn'
      ? Array.from({ length: o.calls }, (_, k) => c.frame(o.synFlowBase + round * o.calls + k))
      : Array.from({ length: o.calls }, (_, k) => flows[k % flows.length]!);

    // A: xlb
    const rx: number[] = [];
    const before = readCounters(fw, c.nat);
    for (const data of frames) {
      const r = fw.program.testRun({ data, repeat: 1 });
      if (r.retval !== c.verdict) throw verdictError(c, 'xlb', r.retval, c.verdict);
      rx.push(r.duration);
    }
    const wrong = checkPath(c, counterDelta(before, readCounters(fw, c.nat)), frames.length);
    if (wrong) throw new Error(`per-call, round ${round + 1}: ${wrong}`);

    // B: the XDP_TX baseline on the same frames
    const rb: number[] = [];
    for (const data of frames) {
      const r = baseline.testRun({ data, repeat: 1 });
      if (r.retval !== XDP_TX) throw verdictError(c, 'baseline xdp_tx', r.retval, XDP_TX);
      rb.push(r.duration);
    }
    xs.push(...rx);
    bs.push(...rb);
    roundRatios.push(median(rx) / median(rb));
  }
  return {
    ns: median(xs),
    baselineNs: median(bs),
    calls: xs.length,
    iqmNs: interquartileMean(xs),
    baselineIqmNs: interquartileMean(bs),
    roundRatioMin: Math.min(...roundRatios),
    roundRatioMax: Math.max(...roundRatios),
  };
}
