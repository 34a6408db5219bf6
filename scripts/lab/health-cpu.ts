/**
 * The check engine's CPU cost (not a test): TCP_CHECKs at a given rate from the checker host of
 * the health lab (scripts/lab/health-lab.ts) to nginx on the server host, over a veth, measured
 * as the checker process's CPU time (user + system, from process.cpuUsage: on a veth the
 * kernel's work for both ends of each handshake runs on the sending CPU and is largely counted
 * here) over wall time.
 *
 *   node --import tsx scripts/lab/health-cpu.ts [--rate 10000] [--seconds 5] [--runs 3]
 *
 * Prints one line per run and the median: checks/s, cores, microseconds per check. The machine's
 * other load moves these figures: quote them with it. scripts/bench-control.ts calls
 * measureCheckCpu for its checks_per_s and check_cpu_cores.
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { createHealthLab, HTTP_PORT, SERVER } from './health-lab.ts';

export interface CheckCpuRun {
  perSec: number;
  cores: number;
  usPerCheck: number;
  userUsPerCheck: number;
  systemUsPerCheck: number;
  failures: number;
}

/**
 * Run the check engine at `rate` TCP checks a second in a fresh health lab (removed afterwards),
 * `runs` measurements of `seconds` each; the runs and their median (by cores). Throws when the
 * checks fail (no figure). Needs root.
 */
export async function measureCheckCpu(opts: { rate: number; seconds: number; runs: number; onRun?: (r: CheckCpuRun, i: number) => void }):
  Promise<{ runs: CheckCpuRun[]; median: CheckCpuRun }> {
  const { rate, seconds, runs } = opts;
  if (!(rate > 0 && seconds > 0 && runs > 0)) throw new Error('rate, seconds and runs must be positive');
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces)');
  const lab = await createHealthLab();
  try {
    // delay_loop 1 s: `rate` real servers make `rate` checks a second; warmup 1 s spreads them
    await lab.checker.call({
      op: 'addMany', prefix: 'r', count: rate, weight: 1, checkers: [{ kind: 'TCP_CHECK', config: {} }],
      ctx: { address: SERVER.ipv4, port: HTTP_PORT, service: { delay_loop: 1, warmup: 1, connect_timeout: 3, retry: 1 } },
    });
    await new Promise((r) => setTimeout(r, 2500));
    const first = await lab.checker.call({ op: 'state', key: 'r0' }) as { state: { up: boolean; checkers: { reason: string }[] } };
    if (!first.state.up) throw new Error(`the checks fail (${first.state.checkers[0]?.reason}): no figure`);
    const results: CheckCpuRun[] = [];
    for (let i = 0; i < runs; i++) {
      const a = await lab.checker.call({ op: 'cpu' }) as Record<string, number>;
      await new Promise((r) => setTimeout(r, seconds * 1000));
      const b = await lab.checker.call({ op: 'cpu' }) as Record<string, number>;
      const wall = b.wallMs! - a.wallMs!;
      const cpuUs = b.userUs! - a.userUs! + b.systemUs! - a.systemUs!;
      const checks = b.runs! - a.runs!;
      const r: CheckCpuRun = {
        perSec: Math.round((checks / wall) * 1000), cores: Number((cpuUs / 1000 / wall).toFixed(3)), usPerCheck: Number((cpuUs / checks).toFixed(1)),
        userUsPerCheck: Number(((b.userUs! - a.userUs!) / checks).toFixed(1)), systemUsPerCheck: Number(((b.systemUs! - a.systemUs!) / checks).toFixed(1)),
        failures: b.failures! - a.failures!,
      };
      results.push(r);
      opts.onRun?.(r, i);
    }
    return { runs: results, median: [...results].sort((x, y) => x.cores - y.cores)[Math.floor(results.length / 2)]! };
  } finally {
    await lab.checker.stop();
    await lab.servers.stop();
    lab.destroy();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rate: { type: 'string', default: '10000' }, seconds: { type: 'string', default: '5' }, runs: { type: 'string', default: '3' } } });
  const { median: med } = await measureCheckCpu({
    rate: Number(values.rate), seconds: Number(values.seconds), runs: Number(values.runs),
    onRun: (r, i) => process.stdout.write(`run ${i + 1}: ${r.perSec} checks/s, ${r.cores} cores, ${r.usPerCheck} us per check (user ${r.userUsPerCheck}, system ${r.systemUsPerCheck}), ${r.failures} failures\n`),
  });
  process.stdout.write(`median: ${med.perSec} checks/s in ${med.cores} cores (${med.usPerCheck} us per check)\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err: Error) => {
    process.stderr.write(`health-cpu: ${err.message}\n`);
    process.exit(1);
  });
}
