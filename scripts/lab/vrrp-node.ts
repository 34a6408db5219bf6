/**
 * A VRRP node for the lab, the interop tests and the failover benchmark: runs the xlb VRRP
 * instances of a JSON configuration (src/vrrp/config.ts, keepalived's keywords) in the network
 * namespace it is started in (`ip netns exec NS node --import tsx vrrp-node.ts CONFIG.json`).
 *
 * It speaks JSON lines (scripts/lab/vrrp-client.ts is the other side):
 *   out  {"ok":true,"hello":"vrrp-node","pid":N}                     once started (or ok:false, error)
 *   out  {"event":"state","instance":"VI_1","state":"MASTER","priority":100,"wallMs":...}
 *   out  {"event":"group","group":"G","state":"MASTER","wallMs":...}
 *   out  {"event":"notify","instance":"VI_1","name":"MASTER_RX_LOWER_PRI","priority":100}
 *   out  {"event":"log","level":"info","message":"..."}              with --log
 *   in   {"op":"stats"}  ->  {"ok":true,"stats":RunnerStats}
 *   in   {"op":"stop"}   ->  graceful stop, exit 0
 * Link state comes from a LinkWatcher (src/net/link-watch.ts): tracked interfaces going down or
 * up move the instances (FAULT, or a priority change by their weights).
 * SIGTERM and SIGINT stop gracefully too (priority 0 from masters, addresses removed) and exit 0;
 * closing stdin does the same. SIGKILL leaves the addresses behind, which the next start removes.
 * `wallMs` is the time of the event that caused the change, on CLOCK_REALTIME in ms
 * (performance.timeOrigin + the monotonic clock), so another process can compare it with its own.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { spinningClock, systemClock } from '../../src/util/clock.ts';
import type { VrrpConfig } from '../../src/vrrp/config.ts';
import { VrrpRunner } from '../../src/vrrp/runner.ts';
import { LinkWatcher } from '../../src/net/link-watch.ts';
import { toJsonLine } from './agent.ts';

const out = (v: Record<string, unknown>) => process.stdout.write(toJsonLine(v));
const wall = (t: number) => performance.timeOrigin + t;

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ options: { log: { type: 'boolean' } }, allowPositionals: true });
  const file = positionals[0];
  if (!file) throw new Error('usage: vrrp-node.ts CONFIG.json [--log]');
  let config: VrrpConfig;
  try {
    config = JSON.parse(readFileSync(file, 'utf8')) as VrrpConfig;
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
  const links = await LinkWatcher.open();
  const runner = new VrrpRunner(config, systemClock, spinningClock(), links);
  runner.on('state', (s) => out({ event: 'state', instance: s.instance, state: s.state, priority: s.priority, wallMs: wall(s.at) }));
  runner.on('group', (g) => out({ event: 'group', group: g.group, state: g.state, wallMs: wall(systemClock.now()) }));
  runner.on('notifyEvent', (e) => out({ event: 'notify', instance: e.instance, name: e.event, priority: e.priority }));
  if (values.log) runner.on('log', (level, message) => out({ event: 'log', level, message }));

  let stopping: Promise<void> | null = null;
  const stop = (code: number) => {
    stopping ??= runner.stop()
      .catch((err: unknown) => { process.stderr.write(`vrrp-node: stop: ${(err as Error).message}\n`); })
      .finally(() => {
        links.close();
        process.exit(code);
      });
    return stopping;
  };
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => void stop(0));

  await runner.start();
  out({ ok: true, hello: 'vrrp-node', pid: process.pid });

  createInterface({ input: process.stdin }).on('line', (line) => {
    let cmd: { op?: unknown };
    try {
      cmd = JSON.parse(line) as { op?: unknown };
    } catch {
      out({ ok: false, error: `not JSON: ${line.slice(0, 100)}` });
      return;
    }
    if (cmd.op === 'stats') out({ ok: true, stats: runner.stats() });
    else if (cmd.op === 'stop') void stop(0);
    else out({ ok: false, error: `unknown op '${String(cmd.op)}'` });
  }).on('close', () => void stop(0));
}

main().catch((err: Error) => {
  out({ ok: false, error: err.message });
  process.exit(1);
});
