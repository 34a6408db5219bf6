/**
 * Bench agent in the generator's namespace (an agent of scripts/lab/agent.ts, started by
 * scripts/bench/live.ts, so that ifindexes resolve here and the test run's ingress is gen0):
 * loads bpf/xlb_gen.bpf.c, attaches its sink to the veth (which also gives the veth NAPI, so
 * that it accepts the frames the balancer sends back), and runs the generator with
 * BPF_F_TEST_XDP_LIVE_FRAMES.
 *
 * argv: IFNAME GEN_OBJECT
 *   {"op":"template","template":GenTemplate}      → {ok}        (gen-config.ts)
 *   {"op":"reset","seq"?:n}                        → {ok}        flow sequence to n (default 0), counters to 0
 *   {"op":"check","count":n}                       → {ok, frames: [hex...], verdicts: [...]}
 *        n ordinary test runs (not live): the frames the generator would send next
 *   {"op":"run","frames":n,"batchSize":b}          → {ok, wallNs, kernelNs, generated, sunk}
 * Detaches and exits when stdin closes, or on SIGINT/SIGTERM.
 */
import {
  BPF_F_TEST_XDP_LIVE_FRAMES, openObject, xdpAttach, xdpDetach, xdpTestContext, XDP_FLAGS_DRV_MODE,
  type BpfMap, type BpfProgram,
} from '../../src/datapath/bpf/index.ts';
import { ifindexOf, serveAgent } from '../lab/agent.ts';
import { encodeGenConfig, type GenTemplate } from './gen-config.ts';

const [ifname = 'gen0', objPath] = process.argv.slice(2);
if (!objPath) throw new Error('usage: gen-agent.ts IFNAME GEN_OBJECT');

const ifindex = ifindexOf(ifname);
const obj = openObject(objPath);
let attached = false;

const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const sumPerCpu = (m: BpfMap, key: number) => m.lookupPerCpu(u32(key)).reduce((s, v) => s + v.readBigUInt64LE(0), 0n);

let gen: BpfProgram;
let config: BpfMap;
let stats: BpfMap;
let frame: Buffer | undefined;

serveAgent({
  setup: () => {
    obj.load();
    gen = obj.program('xlb_gen');
    config = obj.map('gen_config');
    stats = obj.map('gen_stats');
    xdpAttach(ifindex, obj.program('xlb_sink').fd, XDP_FLAGS_DRV_MODE);
    attached = true;
    return { ifindex };
  },
  handlers: {
    template: (cmd) => {
      const t = cmd.template as GenTemplate;
      config.update(u32(0), encodeGenConfig(t, ifindex));
      frame = Buffer.from(t.frameHex, 'hex');
      return {};
    },
    reset: (cmd) => {
      const zero = Buffer.alloc(8 * stats.valuesPerKey());
      const seq = Buffer.alloc(8 * stats.valuesPerKey());
      for (let i = 0; i < stats.valuesPerKey(); i++) seq.writeBigUInt64LE(BigInt((cmd.seq as number | undefined) ?? 0), i * 8);
      stats.update(u32(0), seq);
      stats.update(u32(1), zero);
      return {};
    },
    check: (cmd) => {
      if (!frame) throw new Error('no template');
      const frames: string[] = [];
      const verdicts: number[] = [];
      for (let i = 0; i < ((cmd.count as number | undefined) ?? 1); i++) {
        const r = gen.testRun({ data: frame, ctx: xdpTestContext(frame.length, ifindex), repeat: 1 });
        frames.push(r.data.toString('hex'));
        verdicts.push(r.retval);
      }
      return { frames, verdicts };
    },
    run: (cmd) => {
      if (!frame) throw new Error('no template');
      const g0 = sumPerCpu(stats, 0);
      const s0 = sumPerCpu(stats, 1);
      const t0 = process.hrtime.bigint();
      const r = gen.testRun({
        data: frame, ctx: xdpTestContext(frame.length, ifindex), repeat: cmd.frames as number,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES, batchSize: cmd.batchSize as number | undefined,
      });
      const wallNs = Number(process.hrtime.bigint() - t0);
      return {
        wallNs,
        kernelNs: r.duration,
        generated: sumPerCpu(stats, 0) - g0,
        sunk: sumPerCpu(stats, 1) - s0,
      };
    },
  },
  teardown: () => {
    try { if (attached) xdpDetach(ifindex, XDP_FLAGS_DRV_MODE); } catch { /* the namespace may be going away */ }
    try { obj.close(); } catch { /* ignore */ }
  },
});
