/**
 * Bench agent in the sink's namespace (scripts/bench/pps.ts; an agent of scripts/lab/agent.ts):
 * a Sink (gen.ts) on IFNAME that counts and drops every frame the balancer delivers, and
 * copies a few on request so that the bench can check the path.
 *
 * argv: IFNAME GEN_OBJECT
 *   {"op":"counters"}            → {ok, sunk, passed}
 *   {"op":"arm","count":n}       → {ok}       copy the next n frames (per CPU, n <= 64)
 *   {"op":"samples"}             → {ok, frames: [hex...], lengths: [...]}
 * Detaches and exits when stdin closes, or on SIGINT/SIGTERM.
 */
import { ifindexOf, serveAgent } from '../lab/agent.ts';
import { Sink } from './gen.ts';

const [ifname = 'sink0', objPath] = process.argv.slice(2);
if (!objPath) throw new Error('usage: sink-agent.ts IFNAME GEN_OBJECT');

let sink: Sink | undefined;

serveAgent({
  setup: () => {
    sink = new Sink(objPath, ifindexOf(ifname));
    return { ifindex: sink.ifindex, pid: process.pid };
  },
  handlers: {
    counters: () => sink!.counters(),
    arm: (cmd) => {
      sink!.armSamples(Number(cmd.count));
      return {};
    },
    samples: () => {
      const s = sink!.readSamples();
      return { frames: s.map((x) => x.data.toString('hex')), lengths: s.map((x) => x.len) };
    },
  },
  teardown: () => {
    try { sink?.close(); } catch { /* the namespace may be going away */ }
  },
});
