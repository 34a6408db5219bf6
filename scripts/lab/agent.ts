/**
 * Agents: child processes that run inside a namespace (where ifindexes resolve and XDP attaches)
 * and speak JSON lines: one command in, one reply out ({ok: true, ...} or {ok: false, error}).
 * The first line an agent writes is its hello. Agent is the caller's side; serveAgent() is the
 * agent's side. Used by the demo's LB agent and the benchmarks' agents.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { onCleanup } from './netns.ts';

/** JSON with bigints as decimal strings (counters can pass 2^53 in principle). */
export function toJsonLine(v: unknown): string {
  return `${JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x))}\n`;
}

export class Agent {
  private readonly lines: AsyncIterableIterator<string>;
  private exited = false;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(readonly name: string, private readonly proc: ChildProcess) {
    this.lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
    proc.once('exit', () => { this.exited = true; });
    const unregister = onCleanup(() => { if (!this.exited) proc.kill('SIGKILL'); });
    proc.once('exit', unregister);
  }

  /** `ip netns exec NS node --import tsx SCRIPT ARGS`, pinned to a CPU with taskset if asked. */
  static async start(name: string, ns: string, script: string, args: string[] = [], opts: { cpu?: number } = {}):
    Promise<{ agent: Agent; hello: Record<string, unknown> }> {
    const cmd = ['ip', 'netns', 'exec', ns, process.execPath, '--import', 'tsx', script, ...args];
    const argv = opts.cpu === undefined ? cmd : ['taskset', '-c', String(opts.cpu), ...cmd];
    const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
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

  /** Send a command and wait for its reply; calls are answered in the order they were made. */
  call(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    const reply = this.queue.then(() => {
      if (this.exited) throw new Error(`the ${this.name} agent has exited`);
      this.proc.stdin!.write(`${JSON.stringify(cmd)}\n`);
      return this.next();
    });
    this.queue = reply.catch(() => undefined);
    return reply;
  }

  /** Close its stdin (it cleans up and exits), then SIGKILL it if it has not exited in 5 s. */
  async stop(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((ok) => this.proc.once('exit', () => ok()));
    this.proc.stdin!.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await done;
    clearTimeout(timer);
  }
}

export type AgentHandler = (cmd: Record<string, unknown>) => Record<string, unknown> | Promise<Record<string, unknown>>;

/**
 * The agent's side: set up, say hello, then answer commands by their `op` until stdin closes
 * or a signal comes; `teardown` runs once on every way out (it must not throw). A handler may
 * be async: commands are still handled one at a time, in order.
 */
export function serveAgent(o: {
  setup: () => Record<string, unknown>;
  handlers: Record<string, AgentHandler>;
  teardown: () => void;
}): void {
  const reply = (v: Record<string, unknown>) => process.stdout.write(toJsonLine(v));
  const stop = (code: number): never => {
    o.teardown();
    process.exit(code);
  };
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
  try {
    reply({ ok: true, ...o.setup() });
  } catch (err) {
    reply({ ok: false, error: (err as Error).message });
    stop(1);
  }
  let queue = Promise.resolve();
  createInterface({ input: process.stdin }).on('line', (line) => {
    queue = queue.then(async () => {
      try {
        const cmd = JSON.parse(line) as Record<string, unknown>;
        const handler = o.handlers[String(cmd.op)];
        if (!handler) throw new Error(`unknown op '${String(cmd.op)}'`);
        reply({ ok: true, ...(await handler(cmd)) });
      } catch (err) {
        reply({ ok: false, error: (err as Error).message });
      }
    });
  }).on('close', () => { void queue.then(() => stop(0)); });
}

/** ifindex of an interface in this process's network namespace. */
export function ifindexOf(ifname: string): number {
  try {
    return Number(readFileSync(`/sys/class/net/${ifname}/ifindex`, 'utf8').trim());
  } catch {
    throw new Error(`no interface '${ifname}' in this network namespace`);
  }
}

/** The interface's kernel counters (rx_packets, tx_dropped, ...), as /sys shows them. */
export function devStats(ifname: string, keys: readonly string[] = ['rx_packets', 'rx_dropped', 'tx_packets', 'tx_dropped']): Record<string, number> {
  return Object.fromEntries(keys.map((k) => [k, Number(readFileSync(`/sys/class/net/${ifname}/statistics/${k}`, 'utf8'))]));
}
