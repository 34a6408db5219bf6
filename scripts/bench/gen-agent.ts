/**
 * Bench agent in the generator's namespace (an agent of scripts/lab/agent.ts, started by
 * scripts/bench/live.ts and scripts/bench/pps.ts, so that ifindexes resolve here and the test
 * run's ingress is IFNAME): a Generator (gen.ts) whose frames leave by IFNAME.
 *
 * argv: IFNAME GEN_OBJECT [--sink]   (--sink: also attach xlb_sink to IFNAME, to count what
 *                                     comes back; it gives the veth NAPI as well)
 *   {"op":"template","template":GenTemplate}      → {ok}        (gen-config.ts)
 *   {"op":"reset","seq"?:n}                        → {ok}        flow sequence to n (default 0), counters to 0
 *   {"op":"check","count":n}                       → {ok, frames: [hex...], verdicts: [...]}
 *        n ordinary test runs (not live): the frames the generator would send next
 *   {"op":"run","frames"?:n,"durationMs"?:t,"rate"?:pps,"batchSize"?:b,"chunk"?:c}
 *                     → {ok, wallNs, kernelNs, spanNs, spanFrames, generated, sunk, calls, txPackets, txDropped}
 *        kernelNs: the kernel's time summed over the test runs; spanNs/spanFrames: wall time and
 *        frames between the program's clock marks (gen.ts RunResult); chunk: frames per test run
 *        (gen.ts); txPackets/txDropped: IFNAME's counters over the run (a veth counts the XDP
 *        frames its peer took)
 * Detaches and exits when stdin closes, or on SIGINT/SIGTERM.
 */
import { devStats, ifindexOf, serveAgent } from '../lab/agent.ts';
import { Generator } from './gen.ts';
import type { GenTemplate } from './gen-config.ts';

const [ifname = 'gen0', objPath, ...flags] = process.argv.slice(2);
if (!objPath) throw new Error('usage: gen-agent.ts IFNAME GEN_OBJECT [--sink]');

let gen: Generator | undefined;
const g = (): Generator => {
  if (!gen) throw new Error('the generator is not loaded');
  return gen;
};
const optNumber = (v: unknown): number | undefined => (v === undefined ? undefined : Number(v));

serveAgent({
  setup: () => {
    const ifindex = ifindexOf(ifname);
    gen = new Generator(objPath, ifindex, { attachSink: flags.includes('--sink') });
    return { ifindex, pid: process.pid };
  },
  handlers: {
    template: (cmd) => {
      g().setTemplate(cmd.template as GenTemplate);
      return {};
    },
    reset: (cmd) => {
      g().reset(optNumber(cmd.seq) ?? 0);
      return {};
    },
    check: (cmd) => {
      const r = g().check(optNumber(cmd.count) ?? 1);
      return { frames: r.frames.map((f) => f.toString('hex')), verdicts: r.verdicts };
    },
    run: (cmd) => {
      const s0 = g().counters().sunk;
      const d0 = devStats(ifname, ['tx_packets', 'tx_dropped']);
      const r = g().run({
        rate: optNumber(cmd.rate) ?? 0, frames: optNumber(cmd.frames), durationMs: optNumber(cmd.durationMs),
        batchSize: optNumber(cmd.batchSize), chunk: optNumber(cmd.chunk),
      });
      const d1 = devStats(ifname, ['tx_packets', 'tx_dropped']);
      return { ...r, sunk: g().counters().sunk - s0, txPackets: d1.tx_packets! - d0.tx_packets!, txDropped: d1.tx_dropped! - d0.tx_dropped! };
    },
  },
  teardown: () => {
    try { gen?.close(); } catch { /* the namespace may be going away */ }
  },
});
