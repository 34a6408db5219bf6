/**
 * `make bench-failover`: how long a VIP is not answered when its VRRP master fails, for xlb and
 * for keepalived 2.2.7, in one run on the same machine, interleaved (xlb, keepalived, keepalived,
 * xlb, ...), medians of several runs. A benchmark: it prints figures and says whether the issue's
 * targets are met; it never fails on a figure.
 *
 * Set-up (scripts/lab/vrrp-segment.ts): n1 and n2 run the system measured, n1 the master
 * (priority 200), n2 the backup (priority 100), with identical settings; a UDP echo on each
 * (scripts/lab/vrrp-echo.ts) answers on the VIP with its node's name; in the client namespace a
 * prober (scripts/bench/failover-prober.ts) sends to VIP:7 every millisecond, and a packet
 * capture timestamps the gratuitous ARPs. keepalived runs with -G and no console log (its
 * console logging delays its GARPs; see ../shared/design.md).
 *
 * A run: both nodes up, n1 MASTER and answering, a few advert intervals of calm, then n1 fails:
 *   sigkill  SIGKILL to every process of the node's VRRP daemon (its VIP stays on n1, which keeps
 *            answering for it until the client learns n2's MAC: a crashed daemon, not a dead host)
 *   stop     SIGTERM (graceful: priority 0 sent, VIP removed)
 * and the figure is the time from the failure to the first answer from n2 (to a datagram sent
 * after the failure). Also kept per run: failure -> n2's first GARP for the VIP on the wire (the
 * client's capture), and for xlb the time from n2's transition (the event that made it master:
 * its timer or the priority-0 advert, on its own clock) to that GARP.
 *
 * Scenarios: v2-sigkill, v2-stop (VRRPv2, advert_int 1), v3-0.05-sigkill, v3-0.05-stop (VRRPv3,
 * advert_int 0.05). Writes bench-results/failover.json ({scenario, system, median_ms, min_ms,
 * max_ms, runs} rows) and bench-results/failover-meta.json (the machine, every run's figures).
 *
 * Options: node --import tsx scripts/bench-failover.ts --help
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { ADDON_PATH } from '../src/datapath/bpf/index.ts';
import { inNetns } from '../src/net/netns.ts';
import type { VrrpConfig } from '../src/vrrp/config.ts';
import { FrameSocket, type Frame } from '../src/vrrp/socket.ts';
import { KeepalivedPeer, KEEPALIVED } from './lab/keepalived.ts';
import { cleanupAll, ip } from './lab/netns.ts';
import { startEcho, XlbPeer, type VrrpPeer } from './lab/vrrp-client.ts';
import { createSegment, SEGMENT_VIP4, type Segment } from './lab/vrrp-segment.ts';
import { machine, median, round, table } from './bench/report.ts';

const ROOT = resolve(import.meta.dirname, '..');
const PROBER = resolve(import.meta.dirname, 'bench/failover-prober.ts');
const PORT = 7;
const VIP = SEGMENT_VIP4;
const ETH_P_ARP = 0x0806;
const ETH_P_IP = 0x0800;

type System = 'xlb' | 'keepalived';
const SYSTEMS: readonly System[] = ['xlb', 'keepalived'];

interface Scenario { name: string; version: 2 | 3; advertInt: number; failure: 'sigkill' | 'stop' }
const SCENARIOS: readonly Scenario[] = [
  { name: 'v2-sigkill', version: 2, advertInt: 1, failure: 'sigkill' },
  { name: 'v2-stop', version: 2, advertInt: 1, failure: 'stop' },
  { name: 'v3-0.05-sigkill', version: 3, advertInt: 0.05, failure: 'sigkill' },
  { name: 'v3-0.05-stop', version: 3, advertInt: 0.05, failure: 'stop' },
];

const HELP = `usage: node --import tsx scripts/bench-failover.ts [options]     (as root, after \`make all\`)

  --runs N          measured runs per scenario and system, interleaved (default 5)
  --scenarios a,b   ${SCENARIOS.map((s) => s.name).join(', ')} (default all)
  --quick           2 runs (for development; the issue asks for >= 5)
  --out DIR         where the results go (default bench-results)
`;

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

interface Run {
  scenario: string;
  system: System;
  run: number;
  /** failure -> first answer from the new master */
  outage_ms: number;
  /** failure -> the new master's first GARP for the VIP at the client */
  garp_ms: number | null;
  /** xlb: the new master's transition -> that GARP */
  transition_to_garp_ms: number | null;
  /** datagrams sent after the failure until the first answer from n2 */
  unanswered: number;
  /** stop: failure -> the old master's priority-0 advert at the client */
  priority0_ms: number | null;
  /** xlb: what the new master measured itself: its master-down timer's lateness, event -> first GARP sent */
  xlb_backup: { timer_late_us: number | null; event_to_garp_us: number | null } | null;
}

function die(msg: string): never {
  process.stderr.write(`bench-failover: ${msg}\n`);
  cleanupAll();
  process.exit(1);
}

/** The prober process in the client namespace. */
class Prober {
  private readonly replies: ((v: Record<string, unknown>) => void)[] = [];
  private constructor(private readonly proc: ReturnType<typeof spawn>) {
    createInterface({ input: proc.stdout! }).on('line', (l) => this.replies.shift()?.(JSON.parse(l) as Record<string, unknown>));
  }

  static async start(ns: string): Promise<Prober> {
    const proc = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', PROBER, VIP, String(PORT)], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
    const p = new Prober(proc);
    const ready = await new Promise<Record<string, unknown>>((ok) => p.replies.push(ok));
    if (ready.ok !== true) throw new Error(`prober: ${String(ready.error)}`);
    return p;
  }

  call(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    const r = new Promise<Record<string, unknown>>((ok) => this.replies.push(ok));
    this.proc.stdin!.write(`${JSON.stringify(cmd)}\n`);
    return r;
  }

  async first(node: string, after: number, timeoutMs: number): Promise<{ recvMs: number; sentSince: number; answeredSince: number }> {
    const r = await this.call({ op: 'first', node, after, timeoutMs });
    if (r.ok !== true) throw new Error(`prober: ${String(r.error)}`);
    return r as unknown as { recvMs: number; sentSince: number; answeredSince: number };
  }

  stop(): void {
    this.proc.stdin!.end();
  }
}

const macText = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');

/**
 * What the client namespace sees of VRRP: gratuitous ARPs for the VIP and VRRP adverts (IPv4,
 * priority), with the kernel's receive time.
 */
class Capture {
  readonly seen: { mac: string; ms: number }[] = [];
  readonly adverts: { mac: string; priority: number; ms: number }[] = [];
  private advertWaiter: { mac: string; done: () => void } | null = null;
  private constructor(private readonly sock: FrameSocket) {
    sock.on('frame', (f: Frame) => {
      if (f.timestampNs === null) return;
      if (f.protocol === ETH_P_IP && f.data.length >= 14 + 20 + 8 && f.data[14 + 9] === 112) {
        const ihl = (f.data[14]! & 0x0f) * 4;
        const mac = macText(f.data.subarray(6, 12));
        this.adverts.push({ mac, priority: f.data[14 + ihl + 2] ?? -1, ms: Number(f.timestampNs) / 1e6 });
        if (this.advertWaiter?.mac === mac) {
          const w = this.advertWaiter;
          this.advertWaiter = null;
          w.done();
        }
        return;
      }
      if (f.protocol !== ETH_P_ARP || f.data.length < 42) return;
      if (f.data.subarray(28, 32).join('.') !== VIP) return;
      this.seen.push({ mac: macText(f.data.subarray(22, 28)), ms: Number(f.timestampNs) / 1e6 });
    });
  }

  static open(ns: string): Capture {
    const [l] = JSON.parse(ip(['-j', 'link', 'show', 'dev', 'eth0'], ns)) as { ifindex: number }[];
    return new Capture(inNetns(ns, () => FrameSocket.open(l!.ifindex, { capture: true, timestamps: true })));
  }

  /** The first GARP for the VIP from `mac` at or after `after`. */
  first(mac: string, after: number): number | null {
    return this.seen.find((g) => g.mac === mac && g.ms >= after)?.ms ?? null;
  }

  /** The first priority-0 advert from `mac` at or after `after`. */
  priorityZero(mac: string, after: number): number | null {
    return this.adverts.find((a) => a.mac === mac && a.priority === 0 && a.ms >= after)?.ms ?? null;
  }

  /** Resolves when the next advert from `mac` has arrived. */
  nextAdvert(mac: string, timeoutMs: number): Promise<void> {
    return new Promise((ok, fail) => {
      const t = setTimeout(() => { this.advertWaiter = null; fail(new Error(`no advert from ${mac} within ${timeoutMs} ms`)); }, timeoutMs);
      this.advertWaiter = { mac, done: () => { clearTimeout(t); ok(); } };
    });
  }

  /** Forget what is older than `ms` (the capture sees every probe too). */
  trim(before: number): void {
    while (this.seen.length > 0 && this.seen[0]!.ms < before) this.seen.shift();
    while (this.adverts.length > 0 && this.adverts[0]!.ms < before) this.adverts.shift();
  }

  close(): void {
    this.sock.close();
  }
}

function config(s: Scenario, priority: number): VrrpConfig {
  return {
    vrrp_instance: [{
      name: 'VI_1', interface: 'eth0', virtual_router_id: 51, priority, version: s.version, advert_int: s.advertInt,
      virtual_ipaddress: [{ address: `${VIP}/24` }],
    }],
  };
}

async function start(system: System, seg: Segment, node: string, cfg: VrrpConfig): Promise<VrrpPeer> {
  const ns = seg.host(node).ns;
  return system === 'xlb' ? XlbPeer.start(node, ns, cfg) : KeepalivedPeer.start(node, ns, cfg);
}

function removeVip(seg: Segment): void {
  for (const n of ['n1', 'n2']) {
    try { ip(['addr', 'del', `${VIP}/24`, 'dev', 'eth0'], seg.host(n).ns); } catch { /* not there */ }
  }
}

async function measure(seg: Segment, prober: Prober, cap: Capture, s: Scenario, system: System, run: number): Promise<Run> {
  const peers: VrrpPeer[] = [];
  try {
    const master = await start(system, seg, 'n1', config(s, 200));
    peers.push(master);
    const backup = await start(system, seg, 'n2', config(s, 100));
    peers.push(backup);
    await master.waitState('VI_1', 'MASTER', { timeoutMs: 15_000 });
    await backup.waitState('VI_1', 'BACKUP', { timeoutMs: 15_000 });
    await prober.first('n1', now(), 5000);
    await sleep(Math.max(500, 3 * s.advertInt * 1000));
    cap.trim(now() - 1000);
    const mark = backup.states.length;
    // fail right after one of the master's adverts: the backup's master-down timer then runs its
    // whole interval (otherwise the phase of the last advert adds up to one advert interval of noise)
    await cap.nextAdvert(seg.host('n1').mac, 5000);
    const tFail = now();
    if (s.failure === 'sigkill') await master.kill();
    else void master.stop();
    const answer = await prober.first('n2', tFail, 15_000);
    const garp = cap.first(seg.host('n2').mac, tFail);
    const zero = cap.priorityZero(seg.host('n1').mac, tFail);
    let transition: number | null = null;
    let own: Run['xlb_backup'] = null;
    if (backup instanceof XlbPeer) {
      transition = (await backup.waitState('VI_1', 'MASTER', { since: mark, timeoutMs: 1000 })).wallMs;
      const st = (await backup.stats()).instances.VI_1!;
      own = { timer_late_us: st.lastMasterDownLateUs, event_to_garp_us: st.lastGarpDelayUs };
    }
    await sleep(100); // the rest of the GARP burst
    return {
      scenario: s.name, system, run,
      outage_ms: round(answer.recvMs - tFail, 2),
      garp_ms: garp === null ? null : round(garp - tFail, 2),
      transition_to_garp_ms: garp !== null && transition !== null ? round(garp - transition, 3) : null,
      unanswered: answer.sentSince - answer.answeredSince,
      priority0_ms: zero === null ? null : round(zero - tFail, 2),
      xlb_backup: own,
    };
  } finally {
    for (const p of peers) if (!p.exited) await p.kill();
    removeVip(seg);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string' }, scenarios: { type: 'string' }, quick: { type: 'boolean' }, out: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (process.getuid?.() !== 0) die('needs root (network namespaces)');
  for (const [f, hint] of [[ADDON_PATH, 'make native'], [KEEPALIVED, 'scripts/setup (Debian package keepalived)']] as const) {
    try { await import('node:fs').then((fs) => fs.accessSync(f)); } catch { die(`${f} is missing: run \`${hint}\``); }
  }
  const runs = values.quick ? 2 : Number(values.runs ?? 5);
  if (!Number.isInteger(runs) || runs < 1) die(`--runs ${values.runs}: not a whole number >= 1`);
  const names = values.scenarios?.split(',') ?? SCENARIOS.map((s) => s.name);
  const scenarios = names.map((n) => SCENARIOS.find((s) => s.name === n) ?? die(`unknown scenario '${n}' (${SCENARIOS.map((s) => s.name).join(', ')})`));
  const outDir = resolve(ROOT, values.out ?? 'bench-results');

  const seg = createSegment(['n1', 'n2', 'client'], { prefix: `xlbfo${Math.floor(Math.random() * 0xfff).toString(16)}` });
  const all: Run[] = [];
  let prober: Prober | undefined;
  let cap: Capture | undefined;
  try {
    await Promise.all(['n1', 'n2'].map((n) => startEcho(seg.host(n).ns, n, PORT, [VIP])));
    prober = await Prober.start(seg.host('client').ns);
    cap = Capture.open(seg.host('client').ns);
    process.stdout.write(`bench-failover: ${runs} run(s) x ${scenarios.length} scenario(s) x ${SYSTEMS.length} systems, interleaved; segment ${seg.prefix}\n`);
    for (let r = 0; r < runs; r++) {
      for (const s of scenarios) {
        const order = r % 2 === 0 ? SYSTEMS : [...SYSTEMS].reverse();
        for (const system of order) {
          const m = await measure(seg, prober, cap, s, system, r + 1);
          all.push(m);
          process.stdout.write(`  run ${r + 1} ${s.name.padEnd(16)} ${system.padEnd(10)} outage ${m.outage_ms.toFixed(1).padStart(7)} ms`
            + `${m.priority0_ms !== null ? `  priority 0 at ${m.priority0_ms.toFixed(1)} ms` : ''}  GARP at ${m.garp_ms?.toFixed(1) ?? '-'} ms${m.transition_to_garp_ms !== null ? ` (${(m.transition_to_garp_ms * 1000).toFixed(0)} us after the transition)` : ''}`
            + `${m.xlb_backup ? ` [timer late ${m.xlb_backup.timer_late_us ?? '-'} us, event->GARP ${m.xlb_backup.event_to_garp_us ?? '-'} us]` : ''}\n`);
        }
      }
    }
  } finally {
    prober?.stop();
    cap?.close();
    seg.destroy();
  }

  const rows = scenarios.flatMap((s) => SYSTEMS.map((system) => {
    const xs = all.filter((m) => m.scenario === s.name && m.system === system).map((m) => m.outage_ms);
    return { scenario: s.name, system, median_ms: round(median(xs), 2), min_ms: Math.min(...xs), max_ms: Math.max(...xs), runs: xs.length };
  }));
  mkdirSync(outDir, { recursive: true });
  writeFileSync(resolve(outDir, 'failover.json'), `${JSON.stringify(rows, null, 2)}\n`);
  writeFileSync(resolve(outDir, 'failover-meta.json'), `${JSON.stringify({ machine: machine(-1), runs: all, when: new Date().toISOString() }, null, 2)}\n`);

  const garp = (system: System, s: string) => {
    const xs = all.filter((m) => m.system === system && m.scenario === s && m.garp_ms !== null).map((m) => m.garp_ms!);
    return xs.length ? median(xs).toFixed(1) : '-';
  };
  const body = scenarios.map((s) => {
    const [x, k] = SYSTEMS.map((system) => rows.find((r) => r.scenario === s.name && r.system === system)!);
    return [s.name, `${x!.median_ms.toFixed(1)} (${x!.min_ms.toFixed(1)}-${x!.max_ms.toFixed(1)})`, `${k!.median_ms.toFixed(1)} (${k!.min_ms.toFixed(1)}-${k!.max_ms.toFixed(1)})`,
      (x!.median_ms / k!.median_ms).toFixed(2), garp('xlb', s.name), garp('keepalived', s.name)];
  });
  process.stdout.write(`\nfailure -> VIP answered by the new master, ms: median (min-max) of ${runs} runs; GARP: failure -> first GARP at the client, median ms\n\n`);
  process.stdout.write(`${table(['scenario', 'xlb', 'keepalived', 'xlb/keepalived', 'GARP xlb', 'GARP keepalived'], body, [1, 2, 3, 4, 5])}\n`);

  const tg = all.filter((m) => m.system === 'xlb' && m.transition_to_garp_ms !== null).map((m) => m.transition_to_garp_ms!);
  process.stdout.write(`\nxlb: transition -> first GARP on the wire: median ${(median(tg) * 1000).toFixed(0)} us, max ${(Math.max(...tg) * 1000).toFixed(0)} us over ${tg.length} failovers\n`);
  process.stdout.write('targets:\n');
  for (const s of scenarios) {
    const [x, k] = SYSTEMS.map((system) => rows.find((r) => r.scenario === s.name && r.system === system)!);
    process.stdout.write(`  ${s.name}: xlb ${x!.median_ms <= k!.median_ms ? 'not slower than' : 'SLOWER than'} keepalived\n`);
  }
  const v3 = rows.filter((r) => r.system === 'xlb' && r.scenario.startsWith('v3-0.05'));
  for (const r of v3) process.stdout.write(`  ${r.scenario}: xlb outage ${r.max_ms < 200 ? 'under' : 'NOT under'} 200 ms in every run (max ${r.max_ms} ms)\n`);
  process.stdout.write(`  first GARP within 1 ms of the transition: ${tg.filter((t) => t <= 1).length} of ${tg.length} xlb failovers\n`);
  process.stdout.write(`\nwrote ${resolve(outDir, 'failover.json')} (the CPU is shared: figures swing between runs)\n`);
}

main().catch((err: Error) => die(err.stack ?? err.message));
