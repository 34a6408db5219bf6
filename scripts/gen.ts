/**
 * The traffic generator, on its own: `node --import tsx scripts/gen.ts --help`.
 *
 * Sends frames for many flows out of one interface with BPF_PROG_TEST_RUN and
 * BPF_F_TEST_XDP_LIVE_FRAMES (bpf/xlb_gen.bpf.c; options in scripts/bench/gen-cli.ts, traffic
 * and pacing in scripts/bench/gen-traffic.ts, the loop in scripts/bench/gen.ts), and prints what
 * it offered. Usable against any lab: point it at the interface that faces the balancer.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { ADDON_PATH, bpfObjectPath } from '../src/datapath/bpf/index.ts';
import { ifindexOf } from './lab/agent.ts';
import { GEN_HELP, parseGenArgs, type GenCliParse } from './bench/gen-cli.ts';
import { FCS_LEN, frameOf, templateOf, type TrafficSpec } from './bench/gen-traffic.ts';
import { Generator } from './bench/gen.ts';

function fail(msg: string): never {
  process.stderr.write(`gen: ${msg}\n`);
  process.exit(1);
}

function main(): void {
  // `scripts/gen.ts ... | head -1`: a closed pipe ends the output, not with a stack trace
  process.stdout.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE') process.exit(0); throw err; });
  let parsed: GenCliParse;
  try {
    parsed = parseGenArgs(process.argv.slice(2));
  } catch (err) {
    fail((err as Error).message);
  }
  if (parsed.help) { process.stdout.write(GEN_HELP); return; }
  const o = parsed.options;

  if (process.getuid?.() !== 0) fail('needs root (BPF_PROG_TEST_RUN with live frames)');
  const objPath = bpfObjectPath('xlb_gen');
  for (const p of [objPath, ADDON_PATH]) if (!existsSync(p)) fail(`${p} is missing: run \`make all\` first`);

  if (o.ns !== undefined) {
    // the same command inside the namespace, where the interface and its ifindex are
    const r = spawnSync('ip', ['netns', 'exec', o.ns, process.execPath, ...process.execArgv, process.argv[1]!, ...parsed.rest],
      { stdio: 'inherit' });
    process.exit(r.status ?? 1);
  }

  let ifindex: number;
  try {
    ifindex = ifindexOf(o.dev);
  } catch (err) {
    fail((err as Error).message);
  }
  const srcMac = o.srcMac ?? readFileSync(`/sys/class/net/${o.dev}/address`, 'utf8').trim();
  const traffic: TrafficSpec = { ...o.traffic, srcMac };
  if (o.cpu !== undefined) execFileSync('taskset', ['-a', '-p', '-c', String(o.cpu), String(process.pid)], { stdio: 'ignore' });

  const stat = (k: string) => Number(readFileSync(`/sys/class/net/${o.dev}/statistics/${k}`, 'utf8'));
  const gen = new Generator(objPath, ifindex);
  try {
    gen.setTemplate(templateOf(traffic));
    const tx0 = stat('tx_packets');
    const r = gen.run({ rate: o.rate, frames: o.frames, durationMs: o.durationMs, batchSize: o.batchSize });
    const tx = stat('tx_packets') - tx0;
    const pps = r.generated / (r.wallNs / 1e9);
    const sendingPps = r.spanNs > 0 ? (r.spanFrames * 1e9) / r.spanNs : 0;
    const result = {
      dev: o.dev, ifindex, frame_bytes: o.traffic.size - FCS_LEN, size: o.traffic.size, flows: o.traffic.flows,
      proto: o.traffic.proto, rate_asked: o.rate, generated: r.generated, seconds: r.wallNs / 1e9,
      offered_pps: Math.round(pps),
      // from the first frame to the last, by the generator's clock marks: without the set-up
      // of the first test run (~25 ms seen here), with the gaps between several
      sending_pps: Math.round(sendingPps),
      // on the wire of a real link: frame + FCS + preamble/SFD (8) + inter-frame gap (12)
      offered_l1_mbps: Math.round((pps * (o.traffic.size + 20) * 8) / 1e6),
      test_runs: r.calls, dev_tx_packets: tx,
    };
    if (o.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
    } else {
      console.log(`${r.generated} frames of ${o.traffic.size} bytes (${o.traffic.size - FCS_LEN} sent + FCS), `
        + `${o.traffic.flows} ${o.traffic.proto.toUpperCase()} flows to ${o.traffic.dst}:${o.traffic.dport}, out of ${o.dev}, `
        + `in ${(r.wallNs / 1e9).toFixed(3)} s: ${(pps / 1e6).toFixed(3)} Mpps offered `
        + `(${result.offered_l1_mbps} Mbit/s as on a wire), ${r.calls} test runs; `
        + `${(sendingPps / 1e6).toFixed(3)} Mpps from the first frame to the last`);
      console.log(`first frame: ${frameOf(traffic, 0).subarray(0, 48).toString('hex')}...`);
      console.log(`${o.dev} tx_packets +${tx} (a veth counts XDP frames it passes to its peer; frames its peer refuses are lost)`);
    }
  } finally {
    gen.close();
  }
}

main();
