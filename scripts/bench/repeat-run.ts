/**
 * Repeat-run comparison of XDP forwarder builds: BPF_PROG_TEST_RUN with repeat=N (default
 * 20,000) on one frame, for cases whose path is the same on its own output (an established DR
 * flow: the MAC rewrite is idempotent; a non-service packet: unchanged), so that the program's
 * cost is measured without the per-call system-call overhead that dominates repeat=1. Each
 * round runs the plain XDP_TX baseline, then every tree's forwarder, interleaved (A B C A B C
 * ...); every tree is loaded afresh --loads times (default 3); the medians over all rounds are
 * printed, and each tree's difference to the baseline.
 *
 * A "tree" is a checkout with its own build (build/bpf/xlb.bpf.o) and control plane
 * (src/datapath/xdp/forwarder.ts, imported from that tree), so that builds whose map layouts
 * differ can be compared in one run: e.g. a copy of main against a worktree.
 *
 *   node --import tsx scripts/bench/repeat-run.ts [--tree DIR]... [--cases a,b] [--rounds N]
 *        [--loads N] [--repeat N] [--cpu N]
 *
 * Default: this tree only. Every case's verdict and counters are checked on each tree first.
 * A benchmark: it prints figures, it enforces nothing. Needs root and `make all` in each tree.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { bpfObjectPath, openObject, XDP_TX } from '../../src/datapath/bpf/index.ts';
import type { XdpForwarder } from '../../src/datapath/xdp/forwarder.ts';
import { CASES, services, TUNNEL } from './fixtures.ts';
import { median, table } from './report.ts';

const HERE = resolve(import.meta.dirname, '../..');
const DEFAULT_CASES = ['tcp-established-dr', 'udp-dr', 'ipv6-tcp-established-dr', 'pass-non-service'];

async function openTree(dir: string): Promise<XdpForwarder> {
  const object = resolve(dir, 'build/bpf/xlb.bpf.o');
  if (!existsSync(object)) throw new Error(`${object} is missing: run make all in ${dir}`);
  const mod = await import(resolve(dir, 'src/datapath/xdp/forwarder.ts')) as typeof import('../../src/datapath/xdp/forwarder.ts');
  const fw = mod.XdpForwarder.open({ object });
  fw.setConfig(TUNNEL);
  for (const s of services()) fw.setService(s.service, s.reals);
  return fw;
}

async function main(): Promise<void> {
  const { values: a } = parseArgs({
    options: {
      tree: { type: 'string', multiple: true }, cases: { type: 'string' }, rounds: { type: 'string' },
      repeat: { type: 'string' }, cpu: { type: 'string' }, loads: { type: 'string' },
    },
  });
  const trees = (a.tree ?? [HERE]).map((t) => resolve(t));
  const caseNames = a.cases?.split(',') ?? DEFAULT_CASES;
  const rounds = Number(a.rounds ?? 15);
  const repeat = Number(a.repeat ?? 20000);
  const cpu = Number(a.cpu ?? cpus().length - 1);
  const loads = Number(a.loads ?? 3);
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' });

  const base = openObject(bpfObjectPath('baseline'));
  base.load();
  const tx = base.program('xdp_tx');
  const b = new Map<string, number[]>();
  const xs = new Map<string, number[][]>();
  try {
    // each load of every tree is fresh (where its maps' memory lies differs from load to load,
    // and moves a figure by up to ~10 ns): medians over all loads' rounds
    for (let load = 0; load < loads; load++) {
      const fws: XdpForwarder[] = [];
      try {
        for (const t of trees) fws.push(await openTree(t));
        for (const name of caseNames) {
          const c = CASES.find((x) => x.name === name);
          if (!c) throw new Error(`unknown case ${name}`);
          if (c.kind !== 'established' && c.kind !== 'pass') throw new Error(`${name}: only established and pass cases repeat on their own output`);
          const frame = c.frame(0);
          for (const fw of fws) {
            const r = fw.testRun(frame); // warms the flow; checks the verdict
            if (r.verdict !== c.verdict) throw new Error(`${name}: verdict ${r.verdict}, expected ${c.verdict}`);
          }
          const bs = b.get(name) ?? [];
          const per = xs.get(name) ?? fws.map(() => []);
          b.set(name, bs);
          xs.set(name, per);
          for (let r = 0; r < rounds; r++) {
            const rb = tx.testRun({ data: frame, repeat });
            if (rb.retval !== XDP_TX) throw new Error('baseline verdict');
            bs.push(rb.duration);
            fws.forEach((fw, i) => {
              const x = fw.program.testRun({ data: frame, repeat });
              if (x.retval !== c.verdict) throw new Error(`${name}: verdict ${x.retval} in round ${r}`);
              per[i]!.push(x.duration);
            });
          }
        }
      } finally {
        for (const fw of fws) fw.close();
      }
    }
    const rows = caseNames.map((name) => {
      const bm = median(b.get(name)!);
      return [name, bm.toFixed(1), ...xs.get(name)!.map((x) => `${median(x).toFixed(1)} (+${(median(x) - bm).toFixed(1)})`)];
    });
    console.log(`repeat=${repeat}, ${loads} loads x ${rounds} rounds interleaved, CPU ${cpu}; medians in ns per run (over XDP_TX)`);
    console.log(table(['case', 'xdp_tx', ...trees.map((t) => t.split('/').pop() ?? t)], rows, [1, ...trees.map((_, i) => i + 2)]));
  } finally {
    base.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`repeat-run: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
