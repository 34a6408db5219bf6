/**
 * The check engine (src/health) as an agent (./agent.ts) in a namespace: what the daemon's
 * health part does, driven by the health tests. It starts an engine at once (no bootstrap delay)
 * and takes:
 *
 *   {"op":"add", "key", "weight", "checkers": AnyCheckerConfig[], "ctx": {address, port, real?, service?}}
 *        → {refused: [{index, kind, message}], targets: [..]}
 *   {"op":"wait", "key", "up": bool, "timeoutMs"}   until the real server is in that state
 *        → {state, elapsedMs}; an error (with the state and events) after timeoutMs
 *   {"op":"state", "key"}                            → {state}
 *   {"op":"events", "key"?}                          → {events} (HealthEvents, in order)
 *   {"op":"stats"}                                   → {stats, openProbes}
 *   {"op":"remove", "key"}                           → {removed}
 *   {"op":"addMany", "prefix", "count", "weight", "checkers", "ctx"}   count real servers keyed
 *        prefix0.. with the same checkers (load for a CPU measurement) → {added}
 *   {"op":"cpu"}                                     → {userUs, systemUs, wallMs, runs, failures}
 * Stops the engine and exits when stdin closes.
 */
import { HealthScheduler, checkersForReal, describeSpec, type HealthEvent } from '../../src/health/index.ts';
import { openProbes } from '../../src/health/connect.ts';
import type { ResolveContext } from '../../src/health/config.ts';
import type { AnyCheckerConfig } from '../../src/health/types.ts';
import { serveAgent } from './agent.ts';

const engine = new HealthScheduler({ bootstrapMs: 0 });
const events: HealthEvent[] = [];
const changed = new Set<() => void>();
engine.on('event', (e) => {
  events.push(e);
  for (const f of [...changed]) f();
});

function key(cmd: Record<string, unknown>): string {
  if (typeof cmd.key !== 'string' || cmd.key === '') throw new Error("'key' must be a non-empty string");
  return cmd.key;
}

serveAgent({
  setup: () => {
    engine.start();
    return {};
  },
  handlers: {
    add: (cmd) => {
      const k = key(cmd);
      const ctx = cmd.ctx as ResolveContext;
      const weight = Number(cmd.weight ?? 1);
      const { entries, specs, refused } = checkersForReal(cmd.checkers as AnyCheckerConfig[], { ...ctx, weight });
      engine.addReal(k, { weight, checkers: entries });
      return { refused: refused.map((r) => ({ index: r.index, kind: r.kind, message: r.error.message })), targets: specs.map(describeSpec) };
    },
    wait: (cmd) => {
      const k = key(cmd);
      const want = cmd.up === true;
      const timeoutMs = Number(cmd.timeoutMs ?? 5000);
      const started = performance.now();
      return new Promise((ok, fail) => {
        const check = (): boolean => {
          const st = engine.real(k);
          if (!st) {
            fail(new Error(`no real server '${k}'`));
            return true;
          }
          if (st.up !== want) return false;
          ok({ state: st, elapsedMs: Math.round(performance.now() - started) });
          return true;
        };
        if (check()) return;
        const f = () => { if (check()) done(); };
        const timer = setTimeout(() => {
          done();
          fail(new Error(`'${k}' not ${want ? 'up' : 'down'} after ${timeoutMs} ms: ${JSON.stringify(engine.real(k))}; events ${JSON.stringify(events.filter((e) => e.real === k))}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          changed.delete(f);
        };
        changed.add(f);
      });
    },
    state: (cmd) => ({ state: engine.real(key(cmd)) }),
    events: (cmd) => ({ events: typeof cmd.key === 'string' ? events.filter((e) => e.real === cmd.key) : events }),
    stats: () => ({ stats: engine.stats, openProbes: openProbes() }),
    remove: (cmd) => ({ removed: engine.removeReal(key(cmd)) }),
    addMany: (cmd) => {
      const count = Number(cmd.count);
      const weight = Number(cmd.weight ?? 1);
      const ctx = { ...(cmd.ctx as ResolveContext), weight };
      for (let i = 0; i < count; i++) {
        const { entries, refused } = checkersForReal(cmd.checkers as AnyCheckerConfig[], ctx);
        if (refused.length > 0) throw new Error(refused.map((r) => r.error.message).join('; '));
        engine.addReal(`${String(cmd.prefix)}${i}`, { weight, checkers: entries });
      }
      return { added: count };
    },
    cpu: () => {
      const c = process.cpuUsage();
      return { userUs: c.user, systemUs: c.system, wallMs: performance.now(), runs: engine.stats.runs, failures: engine.stats.failures };
    },
  },
  teardown: () => engine.stop(),
});
