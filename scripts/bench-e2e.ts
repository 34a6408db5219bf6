/**
 * `make bench-e2e`: xlb end to end, next to what a user would pick instead, in one run on the
 * same machine, as medians of interleaved runs (A B C A B C ...) and ratios. A benchmark: it
 * prints figures and says whether the issue's targets are met; it never fails on a figure.
 *
 *  packets/s (scripts/bench/pps.ts, pps-systems.ts): 64-byte UDP frames of 10,000 flows from our
 *    generator (bpf/xlb_gen.bpf.c, live frames) through the balancer's namespace to a sink that
 *    counts them: xlb DR, TUN, NAT and full-NAT (those the forwarder's ABI has), nftables DNAT
 *    (the kernel forwards; jhash over the same reals; conntrack on) and a plain XDP redirect
 *    (the floor). Two set-ups, labelled: one-core (generator, balancer and sink on one CPU: the
 *    chain's capacity per core; the stable headline) and pinned (the balancer's NAPI thread on
 *    its own CPU, SCHED_FIFO; the figure is the peak over a flood and a ladder of paced rates).
 *
 *  TCP connections/s and p50/p99 latency (scripts/bench/tcp.ts, wrk.ts): wrk with
 *    'Connection: close' from the lab's client to the reals' nginx through the VIP: xlb DR,
 *    nftables DNAT (reals routed via the LB), HAProxy in TCP mode, and straight to one real.
 *
 * Writes bench-results/e2e.json (a list of {scenario, system, metric, median, min, max}),
 * bench-results/e2e-meta.json (the machine, the options, every run's figures, the generator's
 * offered rate, the targets) and bench-results/e2e.png (scripts/bench/plot.py).
 *
 * Options: node --import tsx scripts/bench-e2e.ts --help
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ADDON_PATH, bpfObjectPath } from '../src/datapath/bpf/index.ts';
import { XlbMethod } from '../src/datapath/xdp/abi.ts';
import { cleanupAll } from './lab/netns.ts';
import { machine, median } from './bench/report.ts';
import { PpsBench, type LadderOptions, type PpsMode, type PpsRun } from './bench/pps.ts';
import { PPS_SYSTEMS, type PpsSystem } from './bench/pps-systems.ts';
import { FCS_LEN } from './bench/gen-traffic.ts';
import { LADDER } from './bench/peak.ts';
import { TcpBench, TCP_SYSTEMS, type TcpRun } from './bench/tcp.ts';
import { ppsTargets, scenarioTable, summarize, type Sample } from './bench/e2e-report.ts';

const ROOT = resolve(import.meta.dirname, '..');
const OBJECTS = { xlb: bpfObjectPath('xlb'), baseline: bpfObjectPath('baseline'), gen: bpfObjectPath('xlb_gen') };
const MODES: readonly PpsMode[] = ['one-core', 'pinned'];

const HELP = `usage: node --import tsx scripts/bench-e2e.ts [options]     (as root, after \`make all\`)

  --runs N           measured runs per system and set-up, interleaved (default 5)
  --frames N         packets/s: frames per run (default 2000000)
  --flows N          packets/s: UDP flows (default 10000)
  --size N           packets/s: Ethernet frame size incl. FCS (default 64)
  --batch N          packets/s: live-frames batch (default 64)
  --modes a,b        packets/s set-ups: one-core, pinned (default both)
  --systems a,b      packets/s systems (default all the forwarder supports): ${PPS_SYSTEMS.map((s) => s.name).join(', ')}
  --gen-cpu N        the generator's CPU in the pinned set-up (default 0)
  --lb-cpu N         the balancer's CPU (pinned), the only CPU (one-core) (default 1)
  --reals N          TCP: real servers in the lab (default 4)
  --tcp-duration S   TCP: seconds per wrk run (default 5)
  --tcp-connections N  TCP: wrk's connections (default 16)
  --tcp-threads N    TCP: wrk's threads (default 1)
  --quick            3 runs × 500000 frames, 2 s wrk runs (for development; the issue asks for >= 5 runs)
  --no-pps           skip the packets/s scenario
  --no-tcp           skip the TCP scenario
  --no-plot          do not draw bench-results/e2e.png
  --out DIR          where the results go (default bench-results)
`;

function die(msg: string): never {
  process.stderr.write(`bench-e2e: ${msg}\n`);
  cleanupAll();
  process.exit(1);
}

function int(v: string | undefined, name: string, dflt: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  if (!Number.isInteger(x) || x < min || x > max) die(`--${name} ${v} is not an integer in ${min}..${max}`);
  return x;
}

/** Forwarding methods the loaded forwarder's ABI knows (NAT and full-NAT come with the `nat` branch). */
function forwarderMethods(): string[] {
  return Object.keys(XlbMethod).map((k) => k.replace('XLB_METHOD_', '').toLowerCase());
}

async function main(): Promise<void> {
  const { values: a } = parseArgs({
    options: {
      runs: { type: 'string' }, frames: { type: 'string' }, flows: { type: 'string' }, size: { type: 'string' },
      batch: { type: 'string' }, modes: { type: 'string' }, systems: { type: 'string' }, 'gen-cpu': { type: 'string' },
      'lb-cpu': { type: 'string' }, quick: { type: 'boolean' }, 'no-pps': { type: 'boolean' }, 'no-plot': { type: 'boolean' },
      reals: { type: 'string' }, 'tcp-duration': { type: 'string' }, 'tcp-connections': { type: 'string' }, 'tcp-threads': { type: 'string' },
      'no-tcp': { type: 'boolean' },
      out: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (a.help) { process.stdout.write(HELP); return; }
  const quick = a.quick === true;
  const ncpu = cpus().length;
  const runs = int(a.runs, 'runs', quick ? 3 : 5);
  const genCpu = int(a['gen-cpu'], 'gen-cpu', 0, 0, ncpu - 1);
  const lbCpu = int(a['lb-cpu'], 'lb-cpu', Math.min(1, ncpu - 1), 0, ncpu - 1);
  const pps = {
    flows: int(a.flows, 'flows', 10000, 1, 1 << 24),
    size: int(a.size, 'size', 64, 64, 1518),
    framesPerRun: int(a.frames, 'frames', quick ? 500_000 : 2_000_000, 1000, 0x7fffffff),
    batchSize: int(a.batch, 'batch', 64, 1, 256),
  };
  const tcp = {
    reals: int(a.reals, 'reals', 4, 1, 50),
    durationS: int(a['tcp-duration'], 'tcp-duration', quick ? 2 : 5, 1, 600),
    connections: int(a['tcp-connections'], 'tcp-connections', 16, 1, 10000),
    threads: int(a['tcp-threads'], 'tcp-threads', 1, 1, 64),
  };
  if (tcp.connections < tcp.threads) die('--tcp-connections must be at least --tcp-threads (wrk gives each thread a connection)');
  const ladder: LadderOptions = { trialMs: quick ? 150 : 250, minFrames: 100_000 };
  const modes = a.modes ? a.modes.split(',').map((s) => s.trim()) : [...MODES];
  for (const m of modes) if (!MODES.includes(m as PpsMode)) die(`--modes: '${m}' is not one of ${MODES.join(', ')}`);
  if (modes.includes('pinned') && genCpu === lbCpu) die(`the pinned set-up needs two CPUs: --gen-cpu and --lb-cpu are both ${genCpu}`);
  const methods = forwarderMethods();
  const wanted = a.systems ? a.systems.split(',').map((s) => s.trim()) : PPS_SYSTEMS.map((s) => s.name);
  for (const w of wanted) if (!PPS_SYSTEMS.some((s) => s.name === w)) die(`--systems: unknown '${w}'; the systems are ${PPS_SYSTEMS.map((s) => s.name).join(', ')}`);
  const notHere = (s: PpsSystem) => s.method !== undefined && !methods.includes(s.method);
  const systems = PPS_SYSTEMS.filter((s) => wanted.includes(s.name) && !notHere(s));
  const skipped = PPS_SYSTEMS.filter((s) => wanted.includes(s.name) && notHere(s));
  const outDir = resolve(ROOT, a.out ?? 'bench-results');

  if (process.getuid?.() !== 0) die('needs root (network namespaces, XDP, BPF_PROG_TEST_RUN, nftables); run it as root');
  for (const [what, path] of [...Object.entries(OBJECTS), ['native addon', ADDON_PATH]]) {
    if (!existsSync(path!)) die(`missing ${path} (the ${what}): run \`make all\` first`);
  }
  for (const [cmd, pkg] of [['nft', 'nftables'], ['taskset', 'util-linux'], ['chrt', 'util-linux'], ['wrk', 'wrk'], ['haproxy', 'haproxy'], ['nginx', 'nginx-light'], ['ss', 'iproute2']]) {
    if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0) die(`'${cmd}' is not installed (Debian package ${pkg}): run scripts/setup`);
  }

  const m = machine(lbCpu);
  console.log(`machine: ${m.cpu_model}, ${m.cores} cores, ${m.memory_gib} GiB, Linux ${m.kernel}, node ${m.node}`);
  console.log('the CPU may be shared with other work: figures swing; the ratios within this run are what to compare');
  mkdirSync(outDir, { recursive: true });

  const samples: Sample[] = [];
  const ppsRuns: PpsRun[] = [];
  const scenarioOf = (mode: PpsMode) => `pps-${mode}`;

  // ---- packets/s
  if (!a['no-pps'] && systems.length) {
    console.log(`\npackets/s: ${pps.size}-byte UDP frames (${pps.size - FCS_LEN} bytes + FCS), ${pps.flows} flows, `
      + `${runs} runs × ${pps.framesPerRun} frames per system, interleaved; forwarded frames counted at the sink`);
    for (const s of skipped) console.log(`  ${s.name}: not measured (the forwarder has no '${s.method}' method yet)`);
    const bench = await PpsBench.start(OBJECTS, { gen: genCpu, lb: lbCpu }, pps, methods);
    console.log(`  namespaces ${bench.net.genNs}, ${bench.net.lbNs}, ${bench.net.sinkNs}`);
    try {
      for (const mode of modes as PpsMode[]) {
        const set = bench.setMode(mode);
        console.log(mode === 'pinned'
          ? `\n  [pinned] generator on CPU ${genCpu}; ${bench.net.lbIn} threaded NAPI (thread ${set.napiThreads.join(', ')}, SCHED_FIFO) `
            + `on CPU ${lbCpu}, with the sink it feeds; figure: the peak forwarded, in a flood or paced at ${LADDER.join(', ')}× what the flood got through`
          : `\n  [one-core] generator, balancer and sink all on CPU ${lbCpu} (veth receive runs on the sending CPU)`);
        for (const s of systems) await bench.check(s);
        console.log(`  path checked for ${systems.map((s) => s.name).join(', ')} (sampled frames at the sink, the generator's frames)`);
        for (let i = 0; i < runs; i++) {
          const line: string[] = [];
          for (const s of systems) {
            const r = await bench.measure(s, ladder);
            ppsRuns.push(r);
            samples.push({ scenario: scenarioOf(mode), system: s.name as Sample['system'], metric: 'pps', value: r.pps });
            line.push(`${s.name} ${(r.pps / 1e6).toFixed(3)}${r.flood ? ` (flood ${(r.flood.pps / 1e6).toFixed(3)}${r.generatorBound ? ', generator-bound' : ''})` : ''}`);
          }
          console.log(`  run ${i + 1}/${runs} (Mpps): ${line.join(', ')}`);
        }
      }
    } finally {
      await bench.stop();
    }
  }

  // ---- TCP
  const tcpRuns: TcpRun[] = [];
  const TCP_SCENARIO = 'tcp-conn-close';
  if (!a['no-tcp']) {
    console.log(`\nTCP: wrk -t${tcp.threads} -c${tcp.connections} -d${tcp.durationS}s --latency -H 'Connection: close' from the client `
      + `to nginx on ${tcp.reals} reals (one worker each), ${runs} runs per system, interleaved; every request a new connection`);
    const bench = await TcpBench.start(OBJECTS, tcp);
    console.log(`  lab ${bench.lab.prefix}: VIP ${bench.lab.vip4} on ${bench.lab.lb.name}, reals ${bench.lab.reals.map((r) => r.ipv4).join(', ')}`);
    try {
      for (const s of TCP_SYSTEMS) await bench.check(s);
      console.log(`  path checked for ${TCP_SYSTEMS.join(', ')} (GETs answered by the reals; xlb's TX counter)`);
      for (let i = 0; i < runs; i++) {
        const line: string[] = [];
        for (const s of TCP_SYSTEMS) {
          const r = await bench.measure(s);
          tcpRuns.push(r);
          samples.push({ scenario: TCP_SCENARIO, system: s, metric: 'conn_per_s', value: r.requestsPerS });
          samples.push({ scenario: TCP_SCENARIO, system: s, metric: 'p50_ms', value: r.p50Ms });
          samples.push({ scenario: TCP_SCENARIO, system: s, metric: 'p99_ms', value: r.p99Ms });
          line.push(`${s} ${r.requestsPerS.toFixed(0)}/s p50 ${r.p50Ms.toFixed(2)} p99 ${r.p99Ms.toFixed(2)} ms`);
        }
        console.log(`  run ${i + 1}/${runs}: ${line.join(', ')}`);
      }
    } finally {
      await bench.stop();
    }
  }

  // ---- results
  const rows = summarize(samples);
  const meta: Record<string, unknown> = {
    machine: m,
    note: 'CPU possibly shared with other work; compare ratios within one run',
    options: { runs, pps, modes, genCpu, lbCpu, quick, ladder: { ...ladder, steps: LADDER }, tcp },
    not_measured: skipped.map((s) => ({ system: s.name, why: `the forwarder has no '${s.method}' method` })),
    pps_runs: ppsRuns.map((r) => ({ ...r, pps: Math.round(r.pps), offeredPps: Math.round(r.offeredPps), lbRxPps: Math.round(r.lbRxPps) })),
    tcp_runs: tcpRuns,
    targets: [] as unknown[],
  };
  for (const mode of modes as PpsMode[]) {
    const sc = scenarioOf(mode);
    if (!rows.some((r) => r.scenario === sc)) continue;
    console.log(`\n${sc}: packets/s forwarded (${mode === 'one-core' ? 'generator + balancer + sink on one CPU' : 'balancer on its own CPU'})`);
    console.log(scenarioTable(rows, sc, 'pps'));
    const runsOf = (name: string) => ppsRuns.filter((r) => r.mode === mode && r.system === name);
    const med = (xs: number[]) => `${(median(xs) / 1e6).toFixed(3)}`;
    console.log(`generator at full speed offered (median Mpps): ${systems.map((s) => `${s.name} ${med(runsOf(s.name).map((r) => r.flood?.offeredPps ?? r.offeredPps))}`).join(', ')}`);
    if (mode === 'pinned') {
      console.log(`forwarded under that flood (median Mpps): ${systems.map((s) => `${s.name} ${med(runsOf(s.name).map((r) => r.flood!.pps))}`).join(', ')}`);
      const bound = ppsRuns.filter((r) => r.mode === mode && r.generatorBound);
      if (bound.length) console.log(`  generator-bound (the flood lost <= 1%): ${bound.map((r) => r.system).join(', ')}`);
    }
    for (const t of ppsTargets(rows, sc)) {
      console.log(`  ${t.text}`);
      (meta.targets as unknown[]).push(t);
    }
  }
  if (rows.some((r) => r.scenario === TCP_SCENARIO)) {
    console.log(`\n${TCP_SCENARIO}: TCP connections/s and latency (wrk, one request per connection)`);
    console.log(scenarioTable(rows, TCP_SCENARIO, 'conn_per_s'));
    console.log(scenarioTable(rows, TCP_SCENARIO, 'p50_ms'));
    console.log(scenarioTable(rows, TCP_SCENARIO, 'p99_ms'));
  }
  writeFileSync(resolve(outDir, 'e2e.json'), `${JSON.stringify(rows, null, 2)}\n`);
  writeFileSync(resolve(outDir, 'e2e-meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
  console.log(`\nwrote ${resolve(outDir, 'e2e.json')}, ${resolve(outDir, 'e2e-meta.json')}`);
  if (!a['no-plot']) {
    try {
      execFileSync('/usr/bin/python3', [resolve(ROOT, 'scripts/bench/plot.py'), resolve(outDir, 'e2e.json'), resolve(outDir, 'e2e.png')],
        { stdio: 'inherit' });
    } catch (err) {
      die(`plot.py failed (${(err as Error).message}); the JSON is written`);
    }
  }
}

main().catch((err: Error) => die(process.env.BENCH_DEBUG ? (err.stack ?? err.message) : err.message));
