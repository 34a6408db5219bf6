/**
 * Bench agent in the generator's namespace (started by scripts/bench/live.ts through
 * `ip netns exec`, so that ifindexes resolve here and the test run's ingress is gen0):
 * loads bpf/xlb_gen.bpf.c, attaches its sink to the veth (which also gives the veth NAPI, so
 * that it accepts the frames the balancer sends back), and runs the generator with
 * BPF_F_TEST_XDP_LIVE_FRAMES.
 *
 * argv: IFNAME GEN_OBJECT
 * JSON lines on stdin, one reply each on stdout:
 *   {"op":"template","template":GenTemplate}      → {ok}        (gen-config.ts)
 *   {"op":"reset","seq"?:n}                        → {ok}        flow sequence to n (default 0), counters to 0
 *   {"op":"check","count":n}                       → {ok, frames: [hex...], verdicts: [...]}
 *        n ordinary test runs (not live): the frames the generator would send next
 *   {"op":"run","frames":n,"batchSize":b}          → {ok, wallNs, kernelNs, generated, sunk, dev}
 * Detaches and exits when stdin closes, or on SIGINT/SIGTERM.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { openObject, xdpAttach, xdpDetach, XDP_FLAGS_DRV_MODE, type BpfMap, type BpfProgram } from '../../src/datapath/bpf/index.ts';
import { encodeGenConfig, type GenTemplate } from './gen-config.ts';
import { toJsonLine } from './netns.ts';

const BPF_F_TEST_XDP_LIVE_FRAMES = 2;

const [ifname = 'gen0', objPath] = process.argv.slice(2);
if (!objPath) throw new Error('usage: gen-agent.ts IFNAME GEN_OBJECT');

const reply = (v: Record<string, unknown>) => process.stdout.write(toJsonLine(v));
const ifindex = Number(readFileSync(`/sys/class/net/${ifname}/ifindex`, 'utf8'));
const obj = openObject(objPath);
let attached = false;

function stop(code = 0): never {
  try { if (attached) xdpDetach(ifindex, XDP_FLAGS_DRV_MODE); } catch { /* the namespace may be going away */ }
  try { obj.close(); } catch { /* ignore */ }
  process.exit(code);
}
process.on('SIGTERM', () => stop(0));
process.on('SIGINT', () => stop(0));

const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const sumPerCpu = (m: BpfMap, key: number) => m.lookupPerCpu(u32(key)).reduce((s, v) => s + v.readBigUInt64LE(0), 0n);

/** struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex */
function xdpMd(length: number): Buffer {
  const ctx = Buffer.alloc(24);
  ctx.writeUInt32LE(length, 4);
  ctx.writeUInt32LE(ifindex, 12);
  return ctx;
}

function devStats(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of ['tx_packets', 'tx_dropped', 'rx_packets', 'rx_dropped']) {
    out[k] = Number(readFileSync(`/sys/class/net/${ifname}/statistics/${k}`, 'utf8'));
  }
  return out;
}

let gen: BpfProgram;
let config: BpfMap;
let stats: BpfMap;
try {
  obj.load();
  gen = obj.program('xlb_gen');
  config = obj.map('gen_config');
  stats = obj.map('gen_stats');
  xdpAttach(ifindex, obj.program('xlb_sink').fd, XDP_FLAGS_DRV_MODE);
  attached = true;
  reply({ ok: true, ifindex });
} catch (err) {
  reply({ ok: false, error: (err as Error).message });
  stop(1);
}

let frame: Buffer | undefined;

createInterface({ input: process.stdin }).on('line', (line) => {
  try {
    const cmd = JSON.parse(line) as { op: string; template?: GenTemplate; count?: number; seq?: number; frames?: number; batchSize?: number };
    switch (cmd.op) {
      case 'template': {
        const t = cmd.template!;
        config.update(u32(0), encodeGenConfig(t, ifindex));
        frame = Buffer.from(t.frameHex, 'hex');
        reply({ ok: true });
        break;
      }
      case 'reset': {
        const zero = Buffer.alloc(8 * stats.valuesPerKey());
        const seq = Buffer.alloc(8 * stats.valuesPerKey());
        for (let i = 0; i < stats.valuesPerKey(); i++) seq.writeBigUInt64LE(BigInt(cmd.seq ?? 0), i * 8);
        stats.update(u32(0), seq);
        stats.update(u32(1), zero);
        reply({ ok: true });
        break;
      }
      case 'check': {
        if (!frame) throw new Error('no template');
        const frames: string[] = [];
        const verdicts: number[] = [];
        for (let i = 0; i < (cmd.count ?? 1); i++) {
          const r = gen.testRun({ data: frame, ctx: xdpMd(frame.length), repeat: 1 });
          frames.push(r.data.toString('hex'));
          verdicts.push(r.retval);
        }
        reply({ ok: true, frames, verdicts });
        break;
      }
      case 'run': {
        if (!frame) throw new Error('no template');
        const g0 = sumPerCpu(stats, 0);
        const s0 = sumPerCpu(stats, 1);
        const d0 = devStats();
        const t0 = process.hrtime.bigint();
        const r = gen.testRun({
          data: frame, ctx: xdpMd(frame.length), repeat: cmd.frames!, flags: BPF_F_TEST_XDP_LIVE_FRAMES, batchSize: cmd.batchSize,
        });
        const wallNs = Number(process.hrtime.bigint() - t0);
        const d1 = devStats();
        reply({
          ok: true,
          wallNs,
          kernelNs: r.duration,
          retval: r.retval,
          generated: sumPerCpu(stats, 0) - g0,
          sunk: sumPerCpu(stats, 1) - s0,
          dev: Object.fromEntries(Object.keys(d1).map((k) => [k, d1[k]! - d0[k]!])),
        });
        break;
      }
      default:
        throw new Error(`unknown op '${cmd.op}'`);
    }
  } catch (err) {
    reply({ ok: false, error: (err as Error).message });
  }
}).on('close', () => stop(0));
