/**
 * `make demo`: xlb as an operator runs it. Two load-balancer nodes form a VRRP pair in front of
 * three web servers, each node running `bin/xlb run -f keepalived.conf`; a client fetches pages
 * through the virtual IP the whole time. The demo walks through:
 *
 *   1. the lab (scripts/lab/lab.ts): client1; lb1 and lb2 on one L2 segment; real1..real3 serving
 *      HTTP with nginx and holding the VIP on lo (direct routing). The lab puts the VIP on lb1's
 *      eth0; the demo removes it, so that VRRP is what places it;
 *   2. a keepalived.conf per node (VRRPv3 instance VI_1 holding the VIP, lb1 priority 150 and
 *      lb2 100; virtual_server VIP:80, DR, lb_algo mh with mh-port, HTTP_GET every 2 s: written
 *      by scripts/demo-config.ts), checked with `xlb check-config -f`, then `xlb run` on both
 *      nodes (in their namespaces, instance names from the lab's prefix so that they clash with
 *      nothing else), until lb1 is MASTER and lb2 BACKUP;
 *   3. GETs in a loop from the client (scripts/lab/client-agent.ts: each on a new connection,
 *      answers counted per real, failures kept), with `xlb stats`, `xlb services -Ln --stats` and
 *      `xlb status` from the master;
 *   4. lb1 fails as a node does: its daemon is killed (SIGKILL) and its link goes down. lb2
 *      takes over once it has missed three adverts (VRRP's master-down interval); the demo shows
 *      how long that took and how long the client saw no answer;
 *   5. real3's nginx stops: the HTTP_GET check takes it out of rotation, the traffic goes on on
 *      real1 and real2; nginx starts again and real3 comes back;
 *   6. teardown: lb2 stopped with SIGTERM (graceful: priority 0, VIP removed), the lab removed,
 *      the BPF pins and control sockets of both instances removed. The same cleanup runs on
 *      Ctrl-C, a signal or an error (scripts/lab/netns.ts onCleanup).
 *
 * The daemons log JSON lines (--log-json); the demo shows their messages as "lb1 | ...". Every
 * step is also checked: when one does not behave as described, the demo says what was wrong and
 * exits 1 after the teardown, so `make demo` is a smoke test of the whole stack too.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { Agent } from './lab/agent.ts';
import type { Get } from './lab/client-agent.ts';
import { ADVERT_INT, DELAY_BEFORE_RETRY, keepalivedConf, PRIORITIES } from './demo-config.ts';
import { createLab, formatLab, type Lab, type LabHost, type LabLb } from './lab/lab.ts';
import { ip, onCleanup, randomPrefix } from './lab/netns.ts';
import { ControlClient } from '../src/cli/client.ts';
import { defaultSocketPath } from '../src/daemon/control.ts';
import { DaemonProcess, removeInstanceState, waitServing, type LogLine } from '../test/netns/daemon-rig.ts';
import { requireLab } from '../test/lib/require.ts';

const REPO = resolve(import.meta.dirname, '..');
const XLB = resolve(REPO, 'bin/xlb');
const run = promisify(execFile);
const pause = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

// ---------------------------------------------------------------- output

const tty = process.stdout.isTTY === true;
const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (tty ? `\x1b[2m${s}\x1b[0m` : s);
const t0 = Date.now();
const clock = () => `+${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s`;

function heading(text: string): void {
  process.stdout.write(`\n${bold(`━━ ${text} ${'━'.repeat(Math.max(3, 96 - text.length))}`)}\n`);
}

/** Prose, wrapped at 100 columns, indented. */
function explain(text: string): void {
  const words = text.split(/\s+/).filter(Boolean);
  let line = '  ';
  for (const w of words) {
    if (line.length + w.length > 100 && line.trim()) { process.stdout.write(`${line}\n`); line = '  '; }
    line += `${line.trim() ? ' ' : ''}${w}`;
  }
  if (line.trim()) process.stdout.write(`${line}\n`);
}

function indent(text: string, by = '    '): string {
  return text.replace(/\s+$/, '').split('\n').map((l) => `${by}${l}`).join('\n') + '\n';
}

/** A check of the demo's story: its failure ends the demo (after the teardown) with exit 1. */
class DemoFailure extends Error {}
function expect(ok: boolean, what: string): void {
  if (!ok) throw new DemoFailure(what);
  process.stdout.write(`  ${tty ? '\x1b[32m✔\x1b[0m' : 'ok:'} ${what}\n`);
}

// ---------------------------------------------------------------- the LB nodes

interface Node {
  lb: LabLb;
  name: string;
  instance: string;
  conf: string;
  daemon?: DaemonProcess;
}

const LEVELS: Record<number, string> = { 40: 'WARN ', 50: 'ERROR ', 60: 'FATAL ' };

/** Log lines held back while a command's output is being shown (see xlb()), else undefined. */
let held: string[] | undefined;

/** Show a daemon's log messages as they come ("lb1 | vrrp: (VI_1) entering MASTER state"). */
function echoLog(node: Node, d: DaemonProcess): void {
  createInterface({ input: d.proc.stderr! }).on('line', (text) => {
    let line: string;
    try {
      const l = JSON.parse(text) as LogLine;
      line = `${clock()} ${LEVELS[l.level] ?? ''}${l.component ? `${l.component}: ` : ''}${l.msg}`;
    } catch {
      line = text;
    }
    line = dim(`    ${node.name} | ${line}\n`);
    if (held) held.push(line); else process.stdout.write(line);
  });
}

async function startDaemon(node: Node): Promise<DaemonProcess> {
  const args = ['run', '-f', node.conf, '--instance', node.instance, '--log-json'];
  process.stdout.write(`  ${node.name}$ ${dim(`nsenter --net=/run/netns/${node.lb.ns}`)} bin/xlb ${args.join(' ')}\n`);
  // nsenter enters the network namespace only: /sys/fs/bpf (the pins) and /run/xlb (the control socket) stay the host's
  const proc = spawn('nsenter', [`--net=/run/netns/${node.lb.ns}`, XLB, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const d = new DaemonProcess(proc);
  node.daemon = d;
  echoLog(node, d);
  await d.waitFor((l) => l.msg === 'xlb running', `${node.name}: 'xlb running'`, 30_000);
  return d;
}

const vrrpState = (state: string) => (l: LogLine) => l.component === 'vrrp' && l.state === state;

/** `bin/xlb ARGS --instance NAME` as an operator types it (from the host: the socket is in /run/xlb); shows its output. */
async function xlb(node: Node, args: string[]): Promise<string> {
  return xlbCommand([...args, '--instance', node.instance], node.name);
}

/** `bin/xlb ARGV`, shown with its output; a failure (non-zero exit) is the demo's. */
async function xlbCommand(argv: string[], about: string): Promise<string> {
  process.stdout.write(`\n  ${bold(`$ xlb ${argv.join(' ')}`)}   ${dim(`(${about})`)}\n`);
  held = [];
  try {
    const { stdout, stderr } = await run(XLB, argv, { encoding: 'utf8' });
    const shown = `${stderr}${stdout}`; // what a terminal shows (check-config says OK on stderr)
    if (shown.trim()) process.stdout.write(indent(shown));
    return stdout;
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new DemoFailure(`xlb ${argv.join(' ')} failed: ${(e.stderr || e.stdout || e.message).trim()}`);
  } finally {
    // the daemons' messages from meanwhile, after the output rather than inside it
    const lines = held;
    held = undefined;
    for (const l of lines) process.stdout.write(l);
  }
}

const hasAddress = (ns: string, address: string) => ip(['-j', 'addr', 'show', 'dev', 'eth0'], ns).includes(`"${address}"`);

// ---------------------------------------------------------------- the client's view

interface Tally {
  gets: number;
  served: Record<string, number>;
  failures: Get[];
  /** the longest time without an answer (ms), and when it began */
  gapMs: number;
  gapFrom: number;
}

function tally(gets: readonly Get[], from: number): Tally {
  const served: Record<string, number> = {};
  for (const g of gets) if (g.real) served[g.real] = (served[g.real] ?? 0) + 1;
  const answers = gets.filter((g) => g.real).map((g) => g.endMs).sort((a, b) => a - b);
  let gapMs = 0;
  let gapFrom = from;
  let prev = from;
  for (const t of answers) {
    if (t - prev > gapMs) { gapMs = t - prev; gapFrom = prev; }
    prev = t;
  }
  return { gets: gets.length, served, failures: gets.filter((g) => g.error !== undefined), gapMs, gapFrom };
}

function showTally(t: Tally, seconds: number, reals: readonly LabHost[]): void {
  const per = reals.map((r) => `${r.name} ${t.served[r.name] ?? 0}`).join(', ');
  process.stdout.write(`  client1: ${t.gets} GETs in ${seconds.toFixed(1)} s: answered by ${per}; ${t.failures.length} failed\n`);
  const why = new Map<string, number>();
  for (const f of t.failures) why.set(f.error!, (why.get(f.error!) ?? 0) + 1);
  for (const [e, n] of why) process.stdout.write(`           ${n} × ${e}\n`);
}

// ---------------------------------------------------------------- the story

async function main(): Promise<void> {
  requireLab();
  const prefix = randomPrefix('demo');
  let lab: Lab | undefined;
  let client: Agent | undefined;
  const nodes: Node[] = [];
  const removePins = () => {
    for (const n of nodes) removeInstanceState(n.instance);
  };
  const unregister = onCleanup(removePins);
  try {
    heading('xlb demo');
    explain(`Two xlb nodes as a VRRP pair in front of three web servers, each node run from its own keepalived.conf;
      a client fetching pages through the virtual IP all along. The master fails and the backup takes over;
      then a web server fails its health check and leaves the rotation, and comes back. A few minutes; Ctrl-C
      stops it and removes everything.`);
    heading('1. The lab');
    explain(`Network namespaces joined by one bridge (one L2 segment): a client, two load-balancer nodes and three
      real servers running nginx. The reals hold the VIP on lo without answering ARP for it (direct routing: they
      answer the client themselves).`);
    lab = await createLab({ prefix, lbs: 2, reals: 3, http: 'nginx' });
    process.stdout.write(indent(formatLab(lab), ''));
    ip(['addr', 'del', `${lab.vip4}/32`, 'dev', 'eth0'], lab.lb.ns);
    ip(['addr', 'del', `${lab.vip6}/128`, 'dev', 'eth0'], lab.lb.ns);
    explain(`The lab put the VIP on lb1's eth0; it is removed again: from now on VRRP decides which node holds it.`);

    heading('2. keepalived.conf on both LB nodes, then xlb run');
    for (const [i, lb] of lab.lbs.entries()) {
      const dir = join(lab.stateDir, lb.name);
      mkdirSync(dir, { recursive: true });
      const conf = join(dir, 'keepalived.conf');
      writeFileSync(conf, keepalivedConf(lab, i + 1));
      nodes.push({ lb, name: lb.name, instance: `${prefix}-${lb.name}`, conf });
    }
    const [n1, n2] = nodes as [Node, Node];
    process.stdout.write(`\n  ${bold(`${n1.conf}:`)}\n${indent(keepalivedConf(lab, 1))}`);
    explain(`${n2.conf} is the same but for router_id lb2, state BACKUP and priority ${PRIORITIES[1]}. Each node runs xlb as
      keepalived would run: in the foreground, with its own instance name (its control socket
      /run/xlb/NAME.sock and its BPF pins /sys/fs/bpf/xlb/NAME).`);
    for (const n of nodes) await xlbCommand(['check-config', '-f', n.conf], `${n.name}'s file, as keepalived --config-test would`);
    process.stdout.write('\n');
    const d1 = await startDaemon(n1);
    await d1.waitFor(vrrpState('MASTER'), 'lb1 entering MASTER', 10_000);
    const d2 = await startDaemon(n2);
    await d2.waitFor(vrrpState('BACKUP'), 'lb2 entering BACKUP', 10_000);
    await pause(500);
    expect(hasAddress(n1.lb.ns, lab.vip4) && !hasAddress(n2.lb.ns, lab.vip4), `lb1 is MASTER and holds ${lab.vip4}; lb2 is BACKUP`);

    heading('3. Traffic through the VIP, and what the master sees');
    const url = `http://${lab.vip4}/`;
    explain(`client1 GETs ${url} in a loop, two at a time, each on a new connection; every real answers with its
      name. lb1's XDP program picks a real per connection (Maglev) and sends the frame on to it.`);
    client = (await Agent.start('client', lab.client.ns, resolve(REPO, 'scripts/lab/client-agent.ts'))).agent;
    await waitServing(client, url);
    await client.call({ op: 'loop.start', url, concurrency: 2 });
    let since = Date.now();
    const take = async () => {
      const gets = (await client!.call({ op: 'loop.take' })).gets as Get[];
      const t = tally(gets, since);
      const seconds = (Date.now() - since) / 1000;
      since = Date.now();
      return { gets, t, seconds };
    };
    await pause(2000);
    await xlb(n1, ['stats', '--count', '3', '--interval', '1']);
    await xlb(n1, ['services', '-Ln', '--stats']);
    await xlb(n1, ['status']);
    const warm = await take();
    showTally(warm.t, warm.seconds, lab.reals);
    expect(warm.t.failures.length === 0 && lab.reals.every((r) => (warm.t.served[r.name] ?? 0) > 0),
      'every GET answered, by all three reals');

    heading('4. The master fails');
    explain(`lb1 dies as a machine does: its daemon is killed (SIGKILL, no goodbye advert) and its link goes down. lb2
      hears no more adverts; after the master-down interval (3 × advert_int + skew = ${(3 * ADVERT_INT + ((256 - PRIORITIES[1]) * ADVERT_INT) / 256).toFixed(2)} s)
      it becomes MASTER, adds the VIP and sends gratuitous ARPs so that the client's next frames go to it.`);
    const api2 = new ControlClient(defaultSocketPath(n2.instance));
    const lb2Now = async () => {
      const s = await api2.stats();
      return { state: s.vrrp[0]?.state, connections: s.services.reduce((n, e) => n + e.counters.connections, 0) };
    };
    await pause(1000);
    await take();
    const before = await lb2Now();
    const killAt = Date.now();
    process.stdout.write(`\n  ${clock()} kill -KILL ${String(d1.proc.pid)}; ip -n ${n1.lb.ns} link set eth0 down\n`);
    d1.signal('SIGKILL');
    ip(['link', 'set', 'eth0', 'down'], n1.lb.ns);
    await pause(2000);
    const meanwhile = await lb2Now();
    const master2 = await d2.waitFor(vrrpState('MASTER'), 'lb2 entering MASTER after lb1 failed', 15_000);
    const takeoverMs = Date.parse(master2.time as string) - killAt;
    await pause(3000);
    const failover = await take();
    showTally(failover.t, failover.seconds, lab.reals);
    process.stdout.write(`  lb2 became MASTER ${(takeoverMs / 1000).toFixed(2)} s after lb1 failed; the client had no answer for ${(failover.t.gapMs / 1000).toFixed(2)} s at most\n`);
    const early = meanwhile.connections - before.connections;
    if (meanwhile.state === 'BACKUP' && early > 0) {
      explain(`Why the client hardly noticed: 2 s after the failure, lb2 was still BACKUP but had already forwarded ${early}
        new connections. With lb1's port down, the bridge no longer knows lb1's MAC and floods the client's
        frames to every port (a switch does the same), and lb2's XDP program balances every frame for the VIP,
        whichever MAC it was sent to. (IPVS would not: the kernel drops frames for another host's MAC before
        IP sees them.)`);
    }
    await xlb(n2, ['status']);
    expect(takeoverMs < 6000, `lb2 took over within the master-down interval (${(takeoverMs / 1000).toFixed(2)} s)`);
    expect(hasAddress(n2.lb.ns, lab.vip4), `lb2 holds ${lab.vip4}`);
    const settled = Date.parse(master2.time as string) + 1000;
    const late = failover.gets.filter((g) => g.startMs > settled);
    expect(late.length > 0 && late.every((g) => g.real), `every GET started a second after the takeover was answered (${late.length} GETs)`);

    heading('5. A real server fails its health check');
    const real3 = lab.reals[2]!;
    const nginx = ['nginx', '-p', join(lab.stateDir, real3.name), '-c', join(lab.stateDir, real3.name, 'nginx.conf')];
    explain(`real3's nginx stops. lb2's HTTP_GET of real3 fails (one retry after ${DELAY_BEFORE_RETRY} s), the real is marked down and
      leaves the datapath's table: new connections go to real1 and real2 only. Until then, the client's
      connections that land on real3 are refused.`);
    await take();
    const stopAt = Date.now();
    process.stdout.write(`\n  ${clock()} ip netns exec ${real3.ns} ${nginx.join(' ')} -s stop\n`);
    await run('ip', ['netns', 'exec', real3.ns, ...nginx, '-s', 'stop']);
    const isReal3 = (l: LogLine) => l.component === 'health' && typeof l.real === 'string' && l.real.includes(real3.ipv4);
    const down = await d2.waitFor((l) => isReal3(l) && l.up === false, 'real3 going down', 15_000);
    const downMs = Date.parse(down.time as string) - stopAt;
    // the reconciler then removes real3 from the datapath: from when lb2's status shows it gone, no new connection may reach it
    const inDatapath = async () => (await api2.status()).services.some((s) => s.endpoints.some((e) => e.reals.some((r) => r.address === real3.ipv4)));
    for (let waited = 0; await inDatapath(); waited += 50) {
      if (waited > 5000) throw new DemoFailure('real3 is down but still in lb2\'s datapath 5 s later');
      await pause(50);
    }
    const removedAt = Date.now();
    await xlb(n2, ['services', '-Ln']);
    await xlb(n2, ['status']);
    await pause(2500);
    const without = await take();
    showTally(without.t, without.seconds, lab.reals);
    process.stdout.write(`  real3 was taken out ${(downMs / 1000).toFixed(2)} s after its nginx stopped\n`);
    const afterDown = without.gets.filter((g) => g.startMs > removedAt);
    expect(afterDown.length > 0 && afterDown.every((g) => g.real === 'real1' || g.real === 'real2'),
      `once real3 was out of the datapath, every GET was answered by real1 or real2 (${afterDown.length} GETs)`);
    expect(['real1', 'real2'].every((r) => afterDown.some((g) => g.real === r)), 'both real1 and real2 still take connections');

    explain(`nginx starts again on real3; its next successful check brings it back.`);
    process.stdout.write(`\n  ${clock()} ip netns exec ${real3.ns} ${nginx.join(' ')}\n`);
    await run('ip', ['netns', 'exec', real3.ns, ...nginx]);
    const up = await d2.waitFor((l) => isReal3(l) && l.up === true, 'real3 coming back up', 15_000, d2.lines.indexOf(down) + 1);
    await pause(2000);
    const back = await take();
    showTally(back.t, back.seconds, lab.reals);
    await xlb(n2, ['services', '-Ln', '--stats']);
    const afterUp = back.gets.filter((g) => g.startMs > Date.parse(up.time as string) + 200);
    expect(afterUp.some((g) => g.real === 'real3') && afterUp.every((g) => g.real), 'real3 is back in rotation, every GET answered');

    heading('6. Teardown');
    const final = (await client.call({ op: 'loop.stop' })).gets as Get[];
    process.stdout.write(`  client1: ${final.length} more GETs until the loop stopped, ${final.filter((g) => g.error).length} failed\n`);
    process.stdout.write(`  ${clock()} kill -TERM ${String(d2.proc.pid)}  (lb2: graceful stop)\n`);
    d2.signal('SIGTERM');
    const exit2 = await d2.exited;
    expect(exit2.code === 0 && !hasAddress(n2.lb.ns, lab.vip4), 'lb2 stopped (exit 0) and removed the VIP');
  } finally {
    try {
      for (const n of nodes) if (n.daemon?.alive) { n.daemon.signal('SIGKILL'); await n.daemon.exited; }
      await client?.stop();
    } finally {
      lab?.destroy();
      removePins();
      unregister();
      if (lab) process.stdout.write(`  removed the lab ${prefix} (namespaces, processes, state), the pins and sockets of ${nodes.map((n) => n.instance).join(' and ')}\n`);
    }
  }
}

main().then(() => {
  heading('Done');
  process.stdout.write(`  every step behaved as described (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
}, (err: Error) => {
  const what = err instanceof DemoFailure ? 'a step did not behave as described' : 'the demo failed';
  process.stderr.write(`\n${bold(`demo: ${what}:`)} ${err.message}\n`);
  process.exitCode = 1;
});
