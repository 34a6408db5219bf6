/**
 * `make bench-control`: the control plane at scale (issue 5) — 1,000 virtual services x 100 real
 * servers (scripts/bench/control-config.ts). A benchmark: it prints figures and whether the
 * issue's targets are met; it never fails on a figure (it fails only when a step does not do what
 * it should, e.g. a change does not reach the maps).
 *
 *   parse_ms         keepalived.conf text -> validated services, as the daemon reads it
 *                    (src/daemon/config.ts): src/config's loadConfig (from an in-memory file; it
 *                    checks every checker and resolves the services with src/model/validate.ts's
 *                    resolveServices). Median of --parse-runs.
 *   full_apply_ms    the first Reconciler.setServices of every service to the XDP driver over a
 *                    loaded forwarder (maps sized for the reals: 131,072 by default), no traffic:
 *                    reals written, Maglev tables (65,537 slots) built, filled and swapped in.
 *   one_change_ms    a real's check fails in the check engine (src/health's HealthScheduler with a
 *                    checker this script answers, retry 0) -> its 'event' -> Reconciler.health ->
 *                    the service's new table swapped in: the time from the failed verdict to the
 *                    reconciler's promise resolving, median and p99 over --changes reals of
 *                    different services (their recoveries are measured too, reported apart).
 *                    Each change is checked in the forwarder (the real left the service).
 *   rss_mb           this process's RSS after the full apply with the health engine set up (every
 *                    real's TCP_CHECK made and added, not started), after a GC when node runs
 *                    with --expose-gc (the Makefile's target does).
 *   checks_per_s, check_cpu_cores
 *                    scripts/lab/health-cpu.ts's measurement (measureCheckCpu): the engine
 *                    running --check-rate TCP checks a second against nginx in a namespace lab,
 *                    CPU of the checker process over wall time, median of --check-runs.
 *
 * Writes bench-results/control.json ({parse_ms, full_apply_ms, one_change_ms, rss_mb,
 * checks_per_s, check_cpu_cores}) and bench-results/control-meta.json (the machine, the options,
 * p99s, recoveries, what parse_ms measured, every sample's summary).
 *
 * Options: node --import tsx scripts/bench-control.ts --help
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config/index.ts';
import { memoryFs, type ConfigFs } from '../src/config/fs.ts';
import { ADDON_PATH } from '../src/datapath/bpf/index.ts';
import { XdpDriver } from '../src/datapath/driver.ts';
import { XLB_MAX_REALS } from '../src/datapath/xdp/abi.ts';
import { DEFAULT_OBJECT, XdpForwarder } from '../src/datapath/xdp/forwarder.ts';
import { HealthScheduler, checkersForReal } from '../src/health/index.ts';
import type { Checker, CheckResult, CheckTiming, HealthEvent } from '../src/health/types.ts';
import { Reconciler } from '../src/model/reconcile.ts';
import type { ResolvedReal, ResolvedService } from '../src/model/validate.ts';
import { ManualClock } from '../src/util/clock.ts';
import { CONTROL_CONFIG_FILE, controlConfig } from './bench/control-config.ts';
import { machine, median, round, table } from './bench/report.ts';
import { measureCheckCpu, type CheckCpuRun } from './lab/health-cpu.ts';

const ROOT = resolve(import.meta.dirname, '..');

const HELP = `usage: node --expose-gc --import tsx scripts/bench-control.ts [options]     (as root, after \`make all\`)

  --services N       virtual services (default 1000)
  --reals N          real servers per service (default 100)
  --parse-runs N     parse/validate runs, median (default 3)
  --changes N        failed-check changes measured, one real per service (default 200)
  --check-rate N     TCP checks per second for the CPU figure (default 10000)
  --check-seconds S  seconds per CPU measurement (default 5)
  --check-runs N     CPU measurements, median (default 3)
  --no-checks        skip the check-engine CPU measurement (no lab)
  --quick            100 services, 50 changes, 1 parse run, 1 CPU run of 3 s (for development)
  --out DIR          where the results go (default bench-results)
`;

/** The targets. */
const TARGETS = { full_apply_ms: 2000, one_change_ms: 10, rss_mb: 300, checks_per_s: 10000, check_cpu_cores: 0.5 };

/** nearest-rank percentile */
function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** A checker whose verdicts this script gives: run() keeps `done` until answer(). */
class AnsweredChecker implements Checker {
  readonly kind = 'TCP_CHECK' as const;
  #done: ((r: CheckResult) => void) | undefined;
  constructor(readonly target: string) {}
  run(done: (r: CheckResult) => void): () => void {
    this.#done = done;
    return () => { this.#done = undefined; };
  }
  answer(r: CheckResult): void {
    const done = this.#done;
    if (!done) throw new Error(`${this.target}: no check in flight to answer`);
    this.#done = undefined;
    done(r);
  }
}

const gc = (globalThis as { gc?: () => void }).gc;

/** The JS heap after a GC (when node runs with --expose-gc), MB: where the memory goes, by stage. */
const heapMb = (): number | null => {
  if (!gc) return null;
  gc();
  return round(process.memoryUsage().heapUsed / 2 ** 20);
};
const log = (line: string) => process.stdout.write(`${line}\n`);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      services: { type: 'string' }, reals: { type: 'string', default: '100' }, 'parse-runs': { type: 'string' },
      changes: { type: 'string' }, 'check-rate': { type: 'string', default: '10000' }, 'check-seconds': { type: 'string' },
      'check-runs': { type: 'string' }, 'no-checks': { type: 'boolean', default: false }, quick: { type: 'boolean', default: false },
      out: { type: 'string', default: 'bench-results' }, help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const quick = values.quick;
  const opt = (v: string | undefined, normal: number, fast: number, what: string): number => {
    const n = Number(v ?? (quick ? fast : normal));
    if (!(Number.isFinite(n) && n > 0)) throw new Error(`--${what} ${v}: a positive number`);
    return n;
  };
  const services = opt(values.services, 1000, 100, 'services');
  const reals = opt(values.reals, 100, 100, 'reals');
  const parseRuns = opt(values['parse-runs'], 3, 1, 'parse-runs');
  const changes = Math.min(services, opt(values.changes, 200, 50, 'changes'));
  const checkRate = opt(values['check-rate'], 10000, 10000, 'check-rate');
  const checkSeconds = opt(values['check-seconds'], 5, 3, 'check-seconds');
  const checkRuns = opt(values['check-runs'], 3, 1, 'check-runs');
  if (process.getuid?.() !== 0) throw new Error('needs root (BPF maps, network namespaces)');
  for (const f of [DEFAULT_OBJECT, ADDON_PATH]) if (!existsSync(f)) throw new Error(`${f} is missing: run \`make all\` first`);

  // ---------------------------------------------------------------- the configuration
  const busy = loadavg().map((x) => round(x, 2));
  log(`load average ${busy.join(' ')} on ${cpus().length} CPUs${busy[0]! > cpus().length ? ': the machine is busy, the times below include waiting for a CPU' : ''}`);
  const heap: Record<string, number | null> = { start: heapMb() };
  let t = performance.now();
  const cfg = controlConfig(services, reals);
  const configBytes = cfg.text.length;
  log(`config: ${services} virtual services x ${reals} reals, ${cfg.lines} lines, ${(configBytes / 2 ** 20).toFixed(1)} MiB of keepalived.conf, generated in ${round(performance.now() - t)} ms`);

  // ---------------------------------------------------------------- parse_ms
  // what the daemon does (src/daemon/config.ts): loadConfig, which resolves the services. The text is let
  // go after parsing (a daemon does not keep it); the model is kept (the daemon does).
  let fs: ConfigFs | undefined = memoryFs({ [CONTROL_CONFIG_FILE]: cfg.text });
  cfg.text = '';
  const parseWhat = 'loadConfig (keepalived.conf text -> model, every check, validated services)';
  const parseSamples: number[] = [];
  let resolved: ResolvedService[] = [];
  let model = cfg.model;
  for (let i = 0; i < parseRuns; i++) {
    t = performance.now();
    const loaded = loadConfig(CONTROL_CONFIG_FILE, { fs: fs ?? memoryFs({}), configId: 'bench' });
    if (!loaded.config || loaded.exitCode !== 0) throw new Error(`loadConfig: ${loaded.problems.filter((p) => p.severity !== 'warning').map((p) => p.message).join('; ')}`);
    parseSamples.push(performance.now() - t);
    model = loaded.config.services;
    if (!loaded.services) throw new Error('loadConfig gave no resolved services');
    if (model.virtual_server.length !== services) throw new Error(`loadConfig read ${model.virtual_server.length} of ${services} virtual servers`);
    resolved = loaded.services;
  }
  fs = undefined;
  cfg.model = model; // the generator's own copy goes
  heap.model_and_resolved = heapMb();
  const parse_ms = round(median(parseSamples));
  log(`parse_ms ${parse_ms} (${parseWhat}; runs ${parseSamples.map((x) => round(x)).join(', ')})`);

  // ---------------------------------------------------------------- full_apply_ms
  const realCount = resolved.reduce((n, s) => n + s.reals.length, 0);
  const fw = XdpForwarder.open({ maxReals: Math.max(XLB_MAX_REALS, realCount + 1) });
  let fwOpen = true;
  const closeFw = () => {
    if (fwOpen) fw.close();
    fwOpen = false;
  };
  try {
    const driver = new XdpDriver(fw, () => ({ mac: '02:00:00:00:01:01', smac: '02:00:00:00:00:01' }));
    const reconcilerLog: string[] = [];
    const rec = new Reconciler({ driver, log: (l) => reconcilerLog.push(l) });
    t = performance.now();
    const cpu0 = process.cpuUsage();
    await rec.setServices(resolved);
    const full_apply_ms = round(performance.now() - t);
    const cpu1 = process.cpuUsage(cpu0);
    const full_apply_cpu_ms = round((cpu1.user + cpu1.system) / 1000);
    heap.applied = heapMb();
    const endpoints = resolved.reduce((n, s) => n + s.endpoints.length, 0);
    if (rec.failures || driver.services().length !== endpoints) {
      throw new Error(`the full apply did not program every service (${driver.services().length} of ${endpoints}; ${rec.failures} failures: ${reconcilerLog.at(-1)})`);
    }
    log(`full_apply_ms ${full_apply_ms} (${endpoints} services, ${realCount} reals; this process's CPU meanwhile ${full_apply_cpu_ms} ms: user ${round(cpu1.user / 1000)}, system ${round(cpu1.system / 1000)})`);

    // ---------------------------------------------------------------- the health engine, rss_mb
    t = performance.now();
    const engine = new HealthScheduler({ clock: new ManualClock() });
    let refused = 0;
    for (const s of resolved) {
      for (const r of s.reals) {
        const { entries, refused: no } = checkersForReal(r.checkers, {
          address: r.address, port: r.port || s.endpoints[0]!.port, weight: r.weight, real: r.checkerDefaults.real, service: r.checkerDefaults.service,
        });
        refused += no.length;
        engine.addReal(r.id, { weight: r.weight, checkers: entries });
      }
    }
    if (refused) throw new Error(`${refused} checkers of the generated configuration were refused`);
    const engine_setup_ms = round(performance.now() - t);
    heap.health_engine = heapMb();
    const mem = process.memoryUsage();
    const rss_mb = round(mem.rss / 2 ** 20);
    const grew = (a: string, b: string) => (heap[a] != null && heap[b] != null ? round(heap[b]! - heap[a]!) : '?');
    log(`heap growth, MB: model + resolved services ${grew('start', 'model_and_resolved')}, full apply (reconciler, driver, forwarder) ${grew('model_and_resolved', 'applied')}, health engine ${grew('applied', 'health_engine')}`);
    log(`rss_mb ${rss_mb} (heap used ${round(mem.heapUsed / 2 ** 20)} MB, external ${round(mem.external / 2 ** 20)} MB; health engine of ${engine.keys().length} reals set up in ${engine_setup_ms} ms${gc ? ', after a GC' : ', no GC forced (run node with --expose-gc)'})`);

    // ---------------------------------------------------------------- one_change_ms
    const clock = new ManualClock();
    const probe = new HealthScheduler({ clock, bootstrapMs: 0 });
    const timing: CheckTiming = { delayLoopMs: 1000, retry: 0, delayBeforeRetryMs: 1000, warmupMs: 0, timeoutMs: 3_600_000, alpha: false };
    const step = Math.max(1, Math.floor(resolved.length / changes));
    const samples: { svc: ResolvedService; real: ResolvedReal; checker: AnsweredChecker }[] = [];
    for (let i = 0; i < changes; i++) {
      const svc = resolved[(i * step) % resolved.length]!;
      const real = svc.reals[i % svc.reals.length]!;
      const checker = new AnsweredChecker(real.name);
      probe.addReal(real.id, { weight: real.weight, checkers: [{ checker, timing }] });
      samples.push({ svc, real, checker });
    }
    let pending: Promise<void> | undefined;
    probe.on('event', (e: HealthEvent) => { pending = rec.health(e); });
    probe.start();
    const cpuOfChange: number[] = [];
    const measure = async (s: (typeof samples)[number], up: boolean): Promise<number> => {
      pending = undefined;
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      s.checker.answer(up ? { up: true, reason: 'connected' } : { up: false, reason: 'connect: ECONNREFUSED' });
      if (!pending) throw new Error(`${s.real.id}: the verdict made no event`);
      await pending;
      const ms = performance.now() - t0;
      const c = process.cpuUsage(c0);
      if (!up) cpuOfChange.push((c.user + c.system) / 1000);
      const inService = fw.realsOf(s.svc.endpoints[0]!).includes(s.real.address);
      if (inService !== up || rec.failures) throw new Error(`${s.real.id}: after the ${up ? 'recovery' : 'failure'} the real is ${inService ? '' : 'not '}in the datapath service`);
      return ms;
    };
    const failed: number[] = [];
    const recovered: number[] = [];
    clock.advance(0); // every sample's first check starts
    for (const s of samples) failed.push(await measure(s, false));
    clock.advance(timing.delayLoopMs); // the next checks start
    for (const s of samples) recovered.push(await measure(s, true));
    probe.stop();
    const one_change_ms = round(median(failed), 2);
    const one_change_p99_ms = round(percentile(failed, 99), 2);
    const one_change_cpu_ms = round(median(cpuOfChange), 2);
    log(`one_change_ms ${one_change_ms} median, p99 ${one_change_p99_ms} (${failed.length} failures, this process's CPU per change: median ${one_change_cpu_ms} ms; recoveries: median ${round(median(recovered), 2)}, p99 ${round(percentile(recovered, 99), 2)})`);

    closeFw();
    engine.stop();

    // ---------------------------------------------------------------- checks
    let checks: { runs: CheckCpuRun[]; median: CheckCpuRun } | undefined;
    if (!values['no-checks']) {
      log(`check engine: ${checkRate} TCP checks/s, ${checkRuns} x ${checkSeconds} s (scripts/lab/health-cpu.ts)`);
      checks = await measureCheckCpu({
        rate: checkRate, seconds: checkSeconds, runs: checkRuns,
        onRun: (r, i) => log(`  run ${i + 1}: ${r.perSec} checks/s, ${r.cores} cores, ${r.usPerCheck} us per check, ${r.failures} failures`),
      });
    }

    // ---------------------------------------------------------------- results
    const result = {
      parse_ms, full_apply_ms, one_change_ms, rss_mb,
      checks_per_s: checks ? checks.median.perSec : null,
      check_cpu_cores: checks ? checks.median.cores : null,
    };
    const outDir = resolve(ROOT, values.out);
    mkdirSync(outDir, { recursive: true });
    writeFileSync(resolve(outDir, 'control.json'), `${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(resolve(outDir, 'control-meta.json'), `${JSON.stringify({
      machine: machine(-1), when: new Date().toISOString(), load_average_at_start: busy,
      options: { services, reals, parseRuns, changes, checkRate, checkSeconds, checkRuns, quick },
      parse: { measured: parseWhat, samples_ms: parseSamples.map((x) => round(x, 2)), config_lines: cfg.lines, config_bytes: configBytes, virtual_servers_kept: model.virtual_server.length },
      full_apply: { services: endpoints, reals: realCount, cpu_ms: full_apply_cpu_ms },
      memory: { heap_mb_after: heap, rss_mb, heap_used_mb: round(mem.heapUsed / 2 ** 20), external_mb: round(mem.external / 2 ** 20), gc_forced: gc !== undefined, engine_setup_ms },
      one_change: { median_ms: one_change_ms, p99_ms: one_change_p99_ms, cpu_median_ms: one_change_cpu_ms, min_ms: round(Math.min(...failed), 2), max_ms: round(Math.max(...failed), 2),
        recovery_median_ms: round(median(recovered), 2), recovery_p99_ms: round(percentile(recovered, 99), 2), samples: failed.length },
      checks: checks ?? null,
    }, null, 2)}\n`);

    const rateReached = checks !== undefined && checks.median.perSec >= TARGETS.checks_per_s * 0.95;
    const verdict = (ok: boolean | undefined) => (ok === undefined ? '-' : ok ? 'met' : 'MISSED');
    const rows: string[][] = [
      ['parse_ms', String(parse_ms), '-', '-'],
      ['full_apply_ms', String(full_apply_ms), `<= ${TARGETS.full_apply_ms}`, verdict(full_apply_ms <= TARGETS.full_apply_ms)],
      ['one_change_ms', `${one_change_ms} (p99 ${one_change_p99_ms})`, `<= ${TARGETS.one_change_ms}`, verdict(one_change_ms <= TARGETS.one_change_ms)],
      ['rss_mb', String(rss_mb), `< ${TARGETS.rss_mb}`, verdict(rss_mb < TARGETS.rss_mb)],
      ['checks_per_s', checks ? String(checks.median.perSec) : 'not measured', `${TARGETS.checks_per_s}`, verdict(checks && rateReached)],
      // the CPU figure counts only at the target's rate
      ['check_cpu_cores', checks ? String(checks.median.cores) : 'not measured', `< ${TARGETS.check_cpu_cores} at ${TARGETS.checks_per_s}/s`, verdict(checks && rateReached && checks.median.cores < TARGETS.check_cpu_cores)],
    ];
    log('');
    log(table(['figure', 'value', 'target', ''], rows, [1]));
    log(`wrote ${resolve(outDir, 'control.json')} and control-meta.json`);
  } finally {
    closeFw();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`bench-control: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
