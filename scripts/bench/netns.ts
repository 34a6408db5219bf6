/**
 * The live-frames bench network: two namespaces joined by one veth pair, named with a per-run
 * random prefix, and the JSON-line agents that run inside them.
 *
 *   <prefix>-gen: gen0 198.18.0.1/24 ── veth ── lb0 198.18.0.2/24 :<prefix>-lb
 *
 * Nothing is added to the root namespace. destroy() (also run on exit and on SIGINT/SIGTERM)
 * stops the agents, then deletes both namespaces, which deletes the veth pair and with it the
 * attached programs. Nothing is pinned.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';

export interface BenchNet {
  prefix: string;
  genNs: string;
  lbNs: string;
  destroy(): Promise<void>;
}

function ip(args: string[], ns?: string): string {
  return execFileSync('ip', ns ? ['-n', ns, ...args] : args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function sysctl(ns: string, key: string, value: string): void {
  execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `${key}=${value}`], { stdio: 'ignore' });
}

const cleanups = new Set<() => void>();
let handlersInstalled = false;

/** Run every registered cleanup once, the latest first (synchronously: also usable from 'exit'). */
export function cleanupAll(): void {
  for (const f of [...cleanups].reverse()) {
    cleanups.delete(f);
    try { f(); } catch { /* keep going */ }
  }
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', cleanupAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: ${sig}: cleaning up\n`);
      cleanupAll();
      process.kill(process.pid, sig);
    });
  }
}

/** Register a synchronous cleanup to run on exit or a signal; returns its unregister function. */
export function onCleanup(f: () => void): () => void {
  installHandlers();
  cleanups.add(f);
  return () => { cleanups.delete(f); };
}

export function createBenchNet(opts: { genMac: string; lbMac: string; genIp4: string; lbIp4: string }): BenchNet {
  const prefix = `xlbb-${randomBytes(2).toString('hex')}`;
  const genNs = `${prefix}-gen`;
  const lbNs = `${prefix}-lb`;
  const removeNamespaces = () => {
    for (const ns of [genNs, lbNs]) {
      try { ip(['netns', 'del', ns]); } catch { /* not created or already gone */ }
    }
  };
  const unregister = onCleanup(removeNamespaces);
  try {
    ip(['netns', 'add', genNs]);
    ip(['netns', 'add', lbNs]);
    ip(['link', 'add', 'gen0', 'netns', genNs, 'address', opts.genMac, 'type', 'veth',
      'peer', 'name', 'lb0', 'netns', lbNs, 'address', opts.lbMac]);
    for (const [ns, dev, addr] of [[genNs, 'gen0', opts.genIp4], [lbNs, 'lb0', opts.lbIp4]] as const) {
      sysctl(ns, 'net.ipv6.conf.all.disable_ipv6', '1'); // no router solicitations, DAD or MLD on the link
      sysctl(ns, 'net.ipv4.ip_forward', '0');
      ip(['link', 'set', 'lo', 'up'], ns);
      ip(['addr', 'add', `${addr}/24`, 'dev', dev], ns);
      ip(['link', 'set', dev, 'up'], ns);
    }
  } catch (err) {
    removeNamespaces();
    unregister();
    throw err;
  }
  return {
    prefix, genNs, lbNs,
    async destroy() {
      removeNamespaces();
      unregister();
    },
  };
}

/**
 * A child process speaking JSON lines: one command in, one reply out ({ok: true, ...} or
 * {ok: false, error}). Started with `taskset -c CPU ip netns exec NS node --import tsx SCRIPT`.
 */
export class Agent {
  private readonly lines: AsyncIterableIterator<string>;
  private exited = false;

  private constructor(readonly name: string, private readonly proc: ChildProcess) {
    this.lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
    proc.once('exit', () => { this.exited = true; });
    const unregister = onCleanup(() => { if (!this.exited) proc.kill('SIGKILL'); });
    proc.once('exit', unregister);
  }

  static async start(name: string, ns: string, cpu: number, script: string, args: string[] = []): Promise<{ agent: Agent; hello: Record<string, unknown> }> {
    const proc = spawn('taskset', ['-c', String(cpu), 'ip', 'netns', 'exec', ns, process.execPath, '--import', 'tsx', script, ...args],
      { stdio: ['pipe', 'pipe', 'inherit'] });
    const agent = new Agent(name, proc);
    const hello = await agent.next();
    return { agent, hello };
  }

  private async next(): Promise<Record<string, unknown>> {
    const { value, done } = await this.lines.next();
    if (done) throw new Error(`the ${this.name} agent exited (see its error above)`);
    let msg: Record<string, unknown>;
    try { msg = JSON.parse(value as string) as Record<string, unknown>; } catch {
      throw new Error(`the ${this.name} agent wrote a line that is not JSON: ${String(value).slice(0, 200)}`);
    }
    if (msg.ok !== true) throw new Error(`${this.name} agent: ${String(msg.error)}`);
    return msg;
  }

  async call(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.exited) throw new Error(`the ${this.name} agent has exited`);
    this.proc.stdin!.write(`${JSON.stringify(cmd)}\n`);
    return this.next();
  }

  /** Close its stdin (it detaches and exits), then SIGKILL it if it has not exited in 5 s. */
  async stop(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((ok) => this.proc.once('exit', () => ok()));
    this.proc.stdin!.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await done;
    clearTimeout(timer);
  }
}

/** JSON with bigints as decimal strings (counters can pass 2^53 in principle). */
export function toJsonLine(v: unknown): string {
  return `${JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x))}\n`;
}
