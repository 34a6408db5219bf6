/**
 * The daemon tests' rig: a lab (scripts/lab/lab.ts) whose lb1 runs the real daemon (`bin/xlb run`,
 * entered with nsenter so that /sys/fs/bpf stays visible), a client agent on client1
 * (scripts/lab/client-agent.ts) for traffic, and the daemon's keepalived.conf written to the lab's
 * state directory (built by vrrpInstance / drService / config below). The daemon logs JSON lines on stderr; the rig keeps them and waits for the ones
 * a test asks for; `api` talks to it through its control socket. close() kills any daemon still
 * running (SIGKILL), removes the instance's BPF pins, its socket and the lab; the lab's own cleanup also runs on exit and signals.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Agent } from '../../scripts/lab/agent.ts';
import { createLab, type Lab, type LabOptions } from '../../scripts/lab/lab.ts';
import { onCleanup, randomPrefix } from '../../scripts/lab/netns.ts';
import { ControlClient } from '../../src/cli/client.ts';
import { defaultSocketPath } from '../../src/daemon/control.ts';
import { removePinDir, XLB_PIN_ROOT } from '../../src/datapath/bpf/index.ts';
import { REPO, requireLab } from '../lib/require.ts';

export const XLB = resolve(REPO, 'bin/xlb');
export const PIN_ROOT = XLB_PIN_ROOT;

/** What a daemon of `instance` may leave after a SIGKILL or --keep-datapath: its pins (and
 *  /sys/fs/bpf/xlb when that leaves it empty) and its control socket. */
export function removeInstanceState(instance: string): void {
  removePinDir(join(PIN_ROOT, instance), [PIN_ROOT]);
  rmSync(defaultSocketPath(instance), { force: true });
}

export interface LogLine {
  level: number;
  msg: string;
  component?: string;
  [k: string]: unknown;
}

/** A running `xlb run`: its log lines, signals, exit. */
export class DaemonProcess {
  readonly lines: LogLine[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #waiters: { test: (l: LogLine) => boolean; ok: (l: LogLine) => void }[] = [];
  #alive = true;

  constructor(readonly proc: ChildProcess) {
    this.exited = new Promise((ok) => proc.once('exit', (code, signal) => { this.#alive = false; ok({ code, signal }); }));
    const unregister = onCleanup(() => { if (this.#alive) proc.kill('SIGKILL'); });
    proc.once('exit', unregister);
    createInterface({ input: proc.stderr! }).on('line', (text) => {
      this.stderr.push(text);
      let l: LogLine;
      try {
        l = JSON.parse(text) as LogLine;
      } catch {
        return;
      }
      this.lines.push(l);
      this.#waiters = this.#waiters.filter((w) => (w.test(l) ? (w.ok(l), false) : true));
    });
  }

  get alive(): boolean {
    return this.#alive;
  }

  /** The first line (already seen from `from` on, or to come) that passes `test`. */
  waitFor(test: (l: LogLine) => boolean, what: string, timeoutMs = 15_000, from = 0): Promise<LogLine> {
    const seen = this.lines.slice(from).find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`the daemon did not log ${what} within ${timeoutMs} ms; its stderr:\n${this.stderr.slice(-30).join('\n')}`)), timeoutMs);
      const done = (l: LogLine) => { clearTimeout(timer); ok(l); };
      this.#waiters.push({ test, ok: done });
      void this.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        fail(new Error(`the daemon exited (${code ?? signal}) before logging ${what}; its stderr:\n${this.stderr.slice(-30).join('\n')}`));
      });
    });
  }

  /** Lines that pass `test`, from index `from` on. */
  find(test: (l: LogLine) => boolean, from = 0): LogLine[] {
    return this.lines.slice(from).filter(test);
  }

  signal(sig: NodeJS.Signals): void {
    this.proc.kill(sig);
  }
}

/** One load-balancer node of the lab and the daemon it runs. */
export interface DaemonNode {
  /** 1-based: the lab's lbK */
  index: number;
  ns: string;
  /** the instance name: the lab's prefix for lb1, '<prefix>-lbK' for the others (never shared between test files) */
  instance: string;
  configFile: string;
  /** the daemon's control API */
  api: ControlClient;
  /** write the configuration (keepalived.conf) its daemon reads */
  writeConfig(text: string): void;
  /** start `xlb run -f configFile --log-json --instance NAME ...args` in its namespace; resolves once it logs 'xlb running' */
  startDaemon(args?: string[]): Promise<DaemonProcess>;
}

export interface DaemonRig extends DaemonNode {
  lab: Lab;
  client: Agent;
  /** every LB node (nodes[0] is lb1, whose fields the rig itself has too) */
  nodes: DaemonNode[];
  close(): Promise<void>;
}

export async function startDaemonRig(opts: LabOptions = {}): Promise<DaemonRig> {
  requireLab();
  const lab = await createLab({ prefix: randomPrefix('xlbd'), reals: 3, ...opts });
  const daemons: DaemonProcess[] = [];
  let client: Agent | undefined;
  const instances = lab.lbs.map((_, i) => (i === 0 ? lab.prefix : `${lab.prefix}-lb${i + 1}`));
  const removePins = () => {
    for (const instance of instances) removeInstanceState(instance);
  };
  const unregister = onCleanup(removePins);
  const close = async () => {
    try {
      for (const d of daemons) if (d.alive) { d.signal('SIGKILL'); await d.exited; }
      await client?.stop();
    } finally {
      lab.destroy();
      removePins();
      unregister();
    }
  };
  try {
    client = (await Agent.start('client', lab.client.ns, resolve(REPO, 'scripts/lab/client-agent.ts'))).agent;
    const nodes = lab.lbs.map((lb, i): DaemonNode => {
      const instance = instances[i]!;
      const configFile = join(lab.stateDir, i === 0 ? 'keepalived.conf' : `keepalived-lb${i + 1}.conf`);
      return {
        index: i + 1, ns: lb.ns, instance, configFile, api: new ControlClient(defaultSocketPath(instance)),
        writeConfig: (text) => writeFileSync(configFile, text),
        async startDaemon(args = []) {
          const proc = spawn('nsenter', [`--net=/run/netns/${lb.ns}`, XLB, 'run', '-f', configFile, '--log-json', '--instance', instance, ...args],
            { stdio: ['ignore', 'ignore', 'pipe'] });
          const d = new DaemonProcess(proc);
          daemons.push(d);
          await d.waitFor((l) => l.msg === 'xlb running', "'xlb running'", 30_000);
          return d;
        },
      };
    });
    return { ...nodes[0]!, lab, client, nodes, close };
  } catch (err) {
    await close();
    throw err;
  }
}

// ---------------------------------------------------------------- configurations (keepalived.conf)

/**
 * One VRRP instance on the node's eth0 holding the lab's IPv4 VIP; by default v3 at 100 ms, so it
 * is master within half a second.
 */
export function vrrpInstance(lab: Lab, o: { name?: string; vrid?: number; vip?: string; priority?: number; version?: 2 | 3; advertInt?: number } = {}): string {
  return `vrrp_instance ${o.name ?? 'VI_1'} {
    interface eth0
    virtual_router_id ${o.vrid ?? 51}
    priority ${o.priority ?? 150}
    version ${o.version ?? 3}
    advert_int ${o.advertInt ?? 0.1}
    virtual_ipaddress {
        ${o.vip ?? lab.vip4}/32
    }
}
`;
}

/** virtual_server VIP PORT, DR, over these reals of the lab (by name), each with a TCP_CHECK every second. */
export function drService(lab: Lab, port: number, reals: string[], o: { weights?: Record<string, number>; quorum?: number } = {}): string {
  const real = (name: string) => {
    const r = lab.reals.find((x) => x.name === name);
    assert.ok(r, `no real '${name}' in the lab`);
    return `    real_server ${r.ipv4} ${port} {
        weight ${o.weights?.[name] ?? 1}
        TCP_CHECK {
            connect_timeout 1
            delay_loop 1
        }
    }
`;
  };
  return `virtual_server ${lab.vip4} ${port} {
    lb_algo wrr
    lb_kind DR
    protocol TCP
${o.quorum === undefined ? '' : `    quorum ${o.quorum}\n`}${reals.map(real).join('')}}
`;
}

export function config(vrrp: string[], services: string[]): string {
  return [...vrrp, ...services].join('\n');
}

export const pause = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

/** Wait until GETs through the VIP are answered (the daemon is master and programmed). */
export async function waitServing(client: Agent, url: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const r = await client.call({ op: 'http', url, count: 2 });
    if ((r.errors as unknown[]).length === 0) return;
    last = JSON.stringify(r.errors);
    await pause(200);
  }
  throw new Error(`${url} was not served within ${timeoutMs} ms: ${last}`);
}
