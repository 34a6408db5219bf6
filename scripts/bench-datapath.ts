/**
 * `make bench-datapath`: the cost of the XDP forwarder (bpf/xlb.bpf.c) per packet, for each
 * fixture class, measured two ways, each next to a plain XDP_TX program measured the same way
 * in the same run, interleaved (A B A B ...), as medians and ratios:
 *
 *   per-call     BPF_PROG_TEST_RUN with repeat=1, many calls, the kernel's duration of each
 *                (scripts/bench/per-call.ts);
 *   live-frames  our generator with BPF_F_TEST_XDP_LIVE_FRAMES through a veth pair in two
 *                namespaces, xlb attached in native mode, everything on one CPU
 *                (scripts/bench/live.ts, bpf/xlb_gen.bpf.c);
 *
 * plus the Maglev table computation (65,537 slots × 100 reals). Every measured packet's path is
 * checked with the program's counters and verdicts: a bench of the wrong path aborts.
 * Benchmarks print numbers; targets are shown, never enforced.
 *
 * Writes bench-results/datapath.json (a list of {case, method, ns_per_packet,
 * baseline_ns_per_packet, ratio, ...}), bench-results/maglev.json and bench-results/machine.json.
 *
 * Options (node --import tsx scripts/bench-datapath.ts --help).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ADDON_PATH, bpfObjectPath, openObject } from '../src/datapath/bpf/index.ts';
import { XdpForwarder } from '../src/datapath/xdp/forwarder.ts';
import { CASES, NAT_CONFIG, natServices, services, TUNNEL, type BenchCase } from './bench/fixtures.ts';
import { measureMaglev } from './bench/maglev.ts';
import { cleanupAll } from './lab/netns.ts';
import { measurePerCall } from './bench/per-call.ts';
import { LiveBench } from './bench/live.ts';
import { machine, resultTable, round, type ResultRow } from './bench/report.ts';

const ROOT = resolve(import.meta.dirname, '..');
const OBJECTS = { xlb: bpfObjectPath('xlb'), baseline: bpfObjectPath('baseline'), gen: bpfObjectPath('xlb_gen') };

const HELP = `usage: node --import tsx scripts/bench-datapath.ts [options]

  --cases a,b,...    cases to run (default: all): ${CASES.map((c) => c.name).join(', ')}
  --cpu N            the CPU everything runs on (default: the last one)
  --rounds N         per-call: rounds per program (default 20)
  --calls N          per-call: calls per round (default 2000)
  --runs N           live frames: runs per program (default 5)
  --frames N         live frames: frames per run (default 2000000)
  --batch N          live frames: batch size (default 64)
  --flows N          established flows: live frames, and the per-call many-flows figure (default 1000)
  --quick            5 rounds × 1000 calls, 3 runs × 500000 frames
  --no-per-call, --no-live, --no-maglev   skip a part
  --out DIR          where the JSON goes (default bench-results)
`;

function die(msg: string): never {
  process.stderr.write(`bench-datapath: ${msg}\n`);
  cleanupAll();
  process.exit(1);
}

function int(v: string | undefined, name: string, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) die(`--${name} ${v} is not an integer >= ${min}`);
  return n;
}

async function main(): Promise<void> {
  const { values: a } = parseArgs({
    options: {
      cases: { type: 'string' }, cpu: { type: 'string' }, rounds: { type: 'string' }, calls: { type: 'string' },
      runs: { type: 'string' }, frames: { type: 'string' }, batch: { type: 'string' }, flows: { type: 'string' },
      quick: { type: 'boolean' }, 'no-per-call': { type: 'boolean' }, 'no-live': { type: 'boolean' },
      'no-maglev': { type: 'boolean' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (a.help) { process.stdout.write(HELP); return; }
  const quick = a.quick === true;
  const cpu = int(a.cpu, 'cpu', cpus().length - 1, 0);
  if (cpu >= cpus().length) die(`--cpu ${cpu}: this machine has CPUs 0..${cpus().length - 1}`);
  const perCallOpts = {
    rounds: int(a.rounds, 'rounds', quick ? 5 : 20),
    calls: int(a.calls, 'calls', quick ? 1000 : 2000),
    flows: int(a.flows, 'flows', 1000),
    synFlowBase: 0,
  };
  const liveOpts = {
    runs: int(a.runs, 'runs', quick ? 3 : 5),
    frames: int(a.frames, 'frames', quick ? 500_000 : 2_000_000),
    batchSize: int(a.batch, 'batch', 64),
    flows: perCallOpts.flows,
    warmFrames: quick ? 100_000 : 300_000,
  };
  if (liveOpts.batchSize > 256) die('--batch: the kernel takes at most 256');
  let cases: readonly BenchCase[] = CASES;
  if (a.cases) {
    const names = a.cases.split(',').map((s) => s.trim()).filter(Boolean);
    const unknown = names.filter((n) => !CASES.some((c) => c.name === n));
    if (unknown.length) die(`unknown case(s): ${unknown.join(', ')}; the cases are ${CASES.map((c) => c.name).join(', ')}`);
    cases = CASES.filter((c) => names.includes(c.name));
  }
  const outDir = resolve(ROOT, a.out ?? 'bench-results');

  // what the bench needs, named when missing
  if (process.getuid?.() !== 0) die('needs root (BPF_PROG_TEST_RUN, XDP attach, network namespaces); run it as root');
  for (const [what, path] of [...Object.entries(OBJECTS), ['native addon', ADDON_PATH]]) {
    if (!existsSync(path!)) die(`missing ${path} (the ${what}): run \`make all\` first`);
  }

  // one CPU for everything: this process (per-call) and the agents (live frames)
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' });
  const m = machine(cpu);
  console.log(`machine: ${m.cpu_model}, ${m.cores} cores, ${m.memory_gib} GiB, Linux ${m.kernel}, node ${m.node}`);
  console.log(`everything runs on CPU ${cpu} (generator, balancer and sink share it: veth receive runs on the sending CPU)`);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(resolve(outDir, 'machine.json'), `${JSON.stringify(m, null, 2)}\n`);

  // ---- Maglev
  let maglev: ReturnType<typeof measureMaglev> | undefined;
  if (!a['no-maglev']) {
    maglev = measureMaglev();
    console.log(`\nmaglev: buildMaglevTable(${maglev.reals} reals, ${maglev.size} slots): median ${maglev.median_ms.toFixed(2)} ms `
      + `of ${maglev.runs} (min ${maglev.min_ms.toFixed(2)}, max ${maglev.max_ms.toFixed(2)}), target ≤ ${maglev.target_ms} ms`);
    writeFileSync(resolve(outDir, 'maglev.json'), `${JSON.stringify({ ...maglev, machine: m }, null, 2)}\n`);
  }

  const rows: ResultRow[] = [];
  const rowsByCase = new Map<string, ResultRow[]>();
  const add = (r: ResultRow) => {
    rows.push(r);
    rowsByCase.set(r.case, [...(rowsByCase.get(r.case) ?? []), r]);
  };

  // ---- per-call
  if (!a['no-per-call']) {
    console.log(`\nper-call: ${perCallOpts.rounds} rounds × ${perCallOpts.calls} calls of each program, repeat=1, `
      + 'interleaved with the XDP_TX baseline; established cases: one flow, put in the table by a first packet '
      + `(headline), and cycling over ${perCallOpts.flows} flows in the table (cold connection-table entries)`);
    const fw = XdpForwarder.open();
    const base = openObject(OBJECTS.baseline);
    try {
      base.load();
      fw.setConfig(TUNNEL);
      for (const s of services()) fw.setService(s.service, s.reals);
      const xdpTx = base.program('xdp_tx');
      for (const c of cases) {
        // the NAT services only for the cases that need them (a NAT real changes the non-service path)
        if (c.nat) {
          fw.setConfig(NAT_CONFIG);
          for (const s of natServices()) fw.setService(s.service, s.reals);
        }
        const r = measurePerCall(fw, xdpTx, c, { ...perCallOpts, flows: 1 });
        const many = c.kind === 'established' && perCallOpts.flows > 1 ? measurePerCall(fw, xdpTx, c, perCallOpts) : undefined;
        if (c.nat) {
          for (const s of natServices()) fw.removeService(s.service);
          fw.clearNat();
          fw.setConfig(TUNNEL);
        }
        const row: ResultRow = {
          case: c.name, method: 'per-call',
          ns_per_packet: r.ns, baseline_ns_per_packet: r.baselineNs, ratio: round(r.ns / r.baselineNs, 3),
          baseline_program: 'xdp_tx',
          ...(c.target !== undefined ? { target_ratio: c.target } : {}),
          delta_ns: r.ns - r.baselineNs,
          iqm_ns_per_packet: round(r.iqmNs, 1),
          baseline_iqm_ns_per_packet: round(r.baselineIqmNs, 1),
          calls: r.calls,
          round_ratio_min: round(r.roundRatioMin, 3),
          round_ratio_max: round(r.roundRatioMax, 3),
          flows: c.kind === 'syn' ? r.calls : 1,
          ...(many ? {
            many_flows: {
              flows: perCallOpts.flows, ns_per_packet: many.ns, baseline_ns_per_packet: many.baselineNs,
              ratio: round(many.ns / many.baselineNs, 3),
              iqm_ns_per_packet: round(many.iqmNs, 1), baseline_iqm_ns_per_packet: round(many.baselineIqmNs, 1),
            },
          } : {}),
        };
        add(row);
        console.log(`  ${c.name.padEnd(26)} ${r.ns.toFixed(1).padStart(6)} ns vs ${r.baselineNs.toFixed(1).padStart(6)} ns `
          + `(+${(r.ns - r.baselineNs).toFixed(1)} ns, ×${(r.ns / r.baselineNs).toFixed(2)}; rounds ×${r.roundRatioMin.toFixed(2)}..×${r.roundRatioMax.toFixed(2)})`
          + (many ? ` | ${perCallOpts.flows} flows: ${many.ns.toFixed(1)} vs ${many.baselineNs.toFixed(1)} ns (×${(many.ns / many.baselineNs).toFixed(2)})` : ''));
      }
    } finally {
      base.close();
      fw.close();
    }
  }

  // ---- live frames
  if (!a['no-live']) {
    console.log(`\nlive frames: ${liveOpts.runs} runs × ${liveOpts.frames} frames of each program (batch ${liveOpts.batchSize}), `
      + `interleaved; gen0 → lb0 (program under test, native XDP) → XDP_TX → gen0 (sink), all on CPU ${cpu}`);
    const live = await LiveBench.start(cpu, OBJECTS);
    console.log(`  namespaces ${live.net.genNs}, ${live.net.lbNs}`);
    try {
      for (const c of cases) {
        if (c.perCallOnly) {
          console.log(`  ${c.name.padEnd(26)} (per call only)`);
          continue;
        }
        const r = await live.measure(c, liveOpts);
        const row: ResultRow = {
          case: c.name, method: 'live-frames',
          ns_per_packet: round(r.ns, 2), baseline_ns_per_packet: round(r.baselineNs, 2), ratio: round(r.ratio, 3),
          baseline_program: r.baselineProgram,
          delta_ns: round(r.ns - r.baselineNs, 2),
          paired_ratio: round(r.pairedRatio, 3),
          kernel_ns_per_packet: round(r.kernelNs, 2),
          baseline_kernel_ns_per_packet: round(r.baselineKernelNs, 2),
          frames_per_run: r.framesPerRun,
          runs: liveOpts.runs,
          lost_share: round(r.lostShare, 4),
          ...(r.returnedShare !== null ? { returned_share: round(r.returnedShare, 4) } : {}),
          ...(r.xdpTxNs !== undefined ? { xdp_tx_ns_per_packet: round(r.xdpTxNs, 2) } : {}),
          runs_ns_per_packet: r.runsNs.map((v) => round(v, 1)),
          baseline_runs_ns_per_packet: r.baselineRunsNs.map((v) => round(v, 1)),
        };
        add(row);
        const note = c.kind === 'pass'
          ? ` — the frames go up lb's kernel stack (dropped there: not local, forwarding off); baseline xdp_pass, xdp_tx ${r.xdpTxNs!.toFixed(1)} ns`
          : '';
        console.log(`  ${c.name.padEnd(26)} ${r.ns.toFixed(1).padStart(6)} ns vs ${r.baselineNs.toFixed(1).padStart(6)} ns `
          + `(+${(r.ns - r.baselineNs).toFixed(1)} ns, ×${r.ratio.toFixed(2)}; lost ${(r.lostShare * 100).toFixed(2)}%)${note}`);
      }
    } finally {
      await live.stop();
    }
  }

  // ---- results
  const ordered = cases.flatMap((c) => rowsByCase.get(c.name) ?? []);
  console.log(`\n${resultTable(ordered, maglev ? { ms: maglev.median_ms, target: maglev.target_ms } : undefined)}`);
  console.log('\nper-call: the kernel\'s duration of one test run (program + fixed test-run overhead, same for both); established');
  console.log('cases with one flow, and "N flows": cycling over N flows, each lookup a cold connection-table entry;');
  console.log('live-frames: wall time per packet of generator + program + return + sink on one CPU; "(pass)": against xdp_pass,');
  console.log('since pass-non-service frames go up the balancer namespace\'s kernel stack. Targets are shown, not enforced.');
  writeFileSync(resolve(outDir, 'datapath.json'), `${JSON.stringify(ordered, null, 2)}\n`);
  console.log(`\nwrote ${resolve(outDir, 'datapath.json')}${maglev ? `, ${resolve(outDir, 'maglev.json')}` : ''}, ${resolve(outDir, 'machine.json')}`);
}

main().catch((err: Error) => die(process.env.BENCH_DEBUG ? (err.stack ?? err.message) : err.message));
