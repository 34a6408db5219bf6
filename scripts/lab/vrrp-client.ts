/**
 * The controlling side of VRRP peers in namespaces, for the interop tests and the failover
 * benchmark: an xlb node (scripts/lab/vrrp-node.ts) or a real keepalived (./keepalived.ts), both
 * behind one interface, so that a scenario is written once and run against either.
 *
 *   peer.states                    every state change seen, in order ({instance, state, wallMs})
 *   peer.waitState(i, 'MASTER')    resolves once instance i is in that state (now, or later); with
 *                                  { since: n } only a change after the first n of peer.states counts
 *   peer.stop()                    SIGTERM (graceful: priority 0, addresses removed), waits for exit
 *   peer.kill()                    SIGKILL to every process of the peer, waits for exit
 *
 * Processes are started in their own process group and killed with it on exit or signal
 * (onCleanup), so nothing is left behind when a test fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, constants as fsc, rmSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { VrrpConfig } from '../../src/vrrp/config.ts';
import type { RunnerStats } from '../../src/vrrp/runner.ts';
import { onCleanup } from './netns.ts';

export interface StateEvent {
  instance: string;
  state: string;
  priority: number;
  /** CLOCK_REALTIME ms: when the peer changed state (xlb) or when we read the notification (keepalived) */
  wallMs: number;
}

export interface VrrpPeer {
  readonly name: string;
  readonly kind: 'xlb' | 'keepalived';
  readonly states: StateEvent[];
  /** the latest state of an instance, or undefined */
  state(instance: string): string | undefined;
  waitState(instance: string, state: string, o?: { since?: number; timeoutMs?: number }): Promise<StateEvent>;
  stop(): Promise<void>;
  kill(): Promise<void>;
  readonly exited: boolean;
}

type Waiter = { instance: string; state: string; since: number; resolve: (e: StateEvent) => void };

/** State bookkeeping and process handling shared by both kinds of peer. */
export abstract class PeerBase implements VrrpPeer {
  readonly states: StateEvent[] = [];
  private waiters: Waiter[] = [];
  private exitWaiters: (() => void)[] = [];
  exited = false;
  exitCode: number | null = null;
  protected readonly unregister: () => void;
  abstract readonly kind: 'xlb' | 'keepalived';

  protected constructor(readonly name: string, protected readonly proc: ChildProcess) {
    this.unregister = onCleanup(() => this.killGroup());
    proc.once('exit', (code) => {
      this.exited = true;
      this.exitCode = code;
      for (const w of this.exitWaiters.splice(0)) w();
    });
  }

  protected record(e: StateEvent): void {
    this.states.push(e);
    const n = this.states.length;
    this.waiters = this.waiters.filter((w) => {
      if (w.instance === e.instance && w.state === e.state && n > w.since) {
        w.resolve(e);
        return false;
      }
      return true;
    });
  }

  state(instance: string): string | undefined {
    for (let i = this.states.length - 1; i >= 0; i--) if (this.states[i]!.instance === instance) return this.states[i]!.state;
    return undefined;
  }

  waitState(instance: string, state: string, o: { since?: number; timeoutMs?: number } = {}): Promise<StateEvent> {
    const since = o.since ?? -1;
    if (since < 0) {
      const last = [...this.states].reverse().find((e) => e.instance === instance);
      if (last?.state === state) return Promise.resolve(last);
    } else {
      const hit = this.states.slice(since).find((e) => e.instance === instance && e.state === state);
      if (hit) return Promise.resolve(hit);
    }
    const ms = o.timeoutMs ?? 10_000;
    return new Promise((ok, fail) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        fail(new Error(`${this.kind} ${this.name}: ${instance} not ${state} within ${ms} ms (states: ${this.states.filter((e) => e.instance === instance).map((e) => e.state).join(' ') || 'none'})`));
      }, ms);
      const waiter: Waiter = { instance, state, since: Math.max(since, 0), resolve: (e) => { clearTimeout(timer); ok(e); } };
      this.waiters.push(waiter);
    });
  }

  protected waitExit(ms: number): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`${this.kind} ${this.name} did not exit within ${ms} ms`)), ms);
      this.exitWaiters.push(() => { clearTimeout(timer); ok(); });
    });
  }

  protected killGroup(): void {
    if (this.exited || this.proc.pid === undefined) return;
    try { process.kill(-this.proc.pid, 'SIGKILL'); } catch { /* gone */ }
  }

  async stop(): Promise<void> {
    if (!this.exited) this.proc.kill('SIGTERM');
    await this.waitExit(10_000);
    this.unregister();
  }

  async kill(): Promise<void> {
    this.killGroup();
    await this.waitExit(5_000);
    this.unregister();
  }
}

const VRRP_NODE = resolve(import.meta.dirname, 'vrrp-node.ts');
const REPO = resolve(import.meta.dirname, '../..');

/** An xlb VRRP node (scripts/lab/vrrp-node.ts) in a namespace. */
export class XlbPeer extends PeerBase {
  readonly kind = 'xlb' as const;
  private readonly replies: ((v: Record<string, unknown>) => void)[] = [];
  readonly logs: string[] = [];
  private readonly dir: string;

  private constructor(name: string, proc: ChildProcess, dir: string) {
    super(name, proc);
    this.dir = dir;
  }

  /** Start it with `config`; resolves once it has started its instances. */
  static async start(name: string, ns: string, config: VrrpConfig, o: { log?: boolean } = {}): Promise<XlbPeer> {
    const dir = mkdtempSync(join(tmpdir(), 'xlb-vrrp-'));
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify(config, null, 2));
    const proc = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', VRRP_NODE, file, ...(o.log ? ['--log'] : [])], {
      cwd: REPO, detached: true, stdio: ['pipe', 'pipe', 'inherit'],
    });
    const peer = new XlbPeer(name, proc, dir);
    const hello = await new Promise<Record<string, unknown>>((ok, fail) => {
      peer.replies.push(ok);
      proc.once('exit', (code) => fail(new Error(`xlb ${name}: vrrp-node exited (code ${code}) before it started`)));
      createInterface({ input: proc.stdout! }).on('line', (line) => peer.line(line));
    });
    if (hello.ok !== true) {
      await peer.kill();
      throw new Error(`xlb ${name}: ${String(hello.error)}`);
    }
    return peer;
  }

  private line(line: string): void {
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.logs.push(`(not JSON) ${line}`);
      return;
    }
    if (m.event === 'state') this.record({ instance: String(m.instance), state: String(m.state), priority: Number(m.priority), wallMs: Number(m.wallMs) });
    else if (m.event === 'log') this.logs.push(String(m.message));
    else if (m.event !== undefined) this.logs.push(line);
    else this.replies.shift()?.(m);
  }

  async stats(): Promise<RunnerStats> {
    if (this.exited) throw new Error(`xlb ${this.name} has exited`);
    const reply = new Promise<Record<string, unknown>>((ok) => this.replies.push(ok));
    this.proc.stdin!.write('{"op":"stats"}\n');
    const r = await reply;
    if (r.ok !== true) throw new Error(`xlb ${this.name}: ${String(r.error)}`);
    return r.stats as RunnerStats;
  }

  override async stop(): Promise<void> {
    await super.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  override async kill(): Promise<void> {
    await super.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const ECHO = resolve(import.meta.dirname, 'vrrp-echo.ts');

/**
 * The UDP echo (./vrrp-echo.ts) on a node, on the given (virtual) addresses; resolves once bound.
 * It lives as long as its namespace (the segment's removal kills it).
 */
export function startEcho(ns: string, name: string, port: number, addresses: string[]): Promise<void> {
  const proc = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', ECHO, name, String(port), ...addresses], {
    cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((ok, fail) => {
    proc.once('exit', (code) => fail(new Error(`vrrp-echo on ${name} exited (code ${code})`)));
    createInterface({ input: proc.stdout! }).once('line', (line) => (line.startsWith('ready') ? ok() : fail(new Error(`vrrp-echo on ${name}: ${line}`))));
  });
}

/**
 * Read lines from a FIFO (made with mkfifo) as they come: opened read-write and non-blocking, so
 * opening never waits for a writer and the reader never sees EOF. Returns the reader to destroy().
 */
export function readFifo(path: string, onLine: (line: string) => void): Socket {
  const fd = openSync(path, fsc.O_RDWR | fsc.O_NONBLOCK);
  const sock = new Socket({ fd, readable: true, writable: false });
  createInterface({ input: sock }).on('line', onLine);
  return sock;
}
