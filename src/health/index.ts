/**
 * Health checking, put together: from a real server's checker blocks (as the service model holds
 * them) to the scheduler's entries.
 *
 *   const engine = new HealthScheduler();
 *   engine.on('event', (e: HealthEvent) => reconciler.health(e));
 *   const { entries, refused } = checkersForReal(rs.checkers, { address, port, weight, real: rs, service: vs }, env);
 *   engine.addReal(key, { weight, checkers: entries });
 *   engine.start();
 *
 * One file per checker: tcp.ts, http.ts (HTTP_GET, SSL_GET), udp.ts, ping.ts, dns.ts, smtp.ts,
 * misc.ts, file.ts; config.ts resolves and checks configs; scheduler.ts runs them; types.ts has
 * the plain types.
 */
import { defaultUser } from '../vrrp/script.ts';
import { resolveChecker, type CheckerSpec, type ResolveContext } from './config.ts';
import { DnsChecker } from './dns.ts';
import { FileChecker } from './file.ts';
import { HttpChecker } from './http.ts';
import { MiscChecker, MISC_KILL_GRACE_MS, type ScriptEnv } from './misc.ts';
import { PingChecker } from './ping.ts';
import type { CheckerEntry } from './scheduler.ts';
import { SmtpChecker } from './smtp.ts';
import { TcpChecker } from './tcp.ts';
import type { AnyCheckerConfig } from './types.ts';
import { UdpChecker } from './udp.ts';

export { HealthScheduler, type CheckerEntry, type RealCheckers } from './scheduler.ts';
export { resolveChecker, describeSpec, CheckerConfigError, type CheckerSpec, type ResolveContext } from './config.ts';
export type { HealthEvent, CheckResult, AnyCheckerConfig, HealthCheckerKind } from './types.ts';

export interface CheckerEnv {
  /** for MISC_CHECK; default: no script security, keepalived_script if it exists, else our own user */
  script?: ScriptEnv;
}

/** A runnable checker for a resolved spec. Throws when it cannot be made (a refused MISC_CHECK script, FILE_CHECK's directory missing). */
export function createChecker(spec: CheckerSpec, env: CheckerEnv = {}): CheckerEntry {
  switch (spec.kind) {
    case 'TCP_CHECK': return { checker: new TcpChecker(spec.endpoint), timing: spec.timing };
    case 'HTTP_GET':
    case 'SSL_GET': return { checker: new HttpChecker(spec), timing: spec.timing };
    case 'UDP_CHECK': return { checker: new UdpChecker(spec), timing: spec.timing };
    case 'PING_CHECK': return { checker: new PingChecker(spec), timing: spec.timing };
    case 'DNS_CHECK': return { checker: new DnsChecker(spec), timing: spec.timing };
    case 'SMTP_CHECK': return { checker: new SmtpChecker(spec), timing: spec.timing };
    case 'MISC_CHECK': {
      const script = env.script ?? { scriptSecurity: false, defaultUser: defaultUser(false) };
      // the script runner enforces misc_timeout and reports a timeout as one: the engine's own
      // deadline comes after the runner's SIGTERM, SIGKILL grace and a second more
      const timing = { ...spec.timing, timeoutMs: spec.timing.timeoutMs + MISC_KILL_GRACE_MS + 1000 };
      return { checker: new MiscChecker(spec, script), timing };
    }
    case 'FILE_CHECK': return { checker: new FileChecker(spec) };
  }
}

export interface RefusedChecker {
  /** its index among the real server's checker blocks */
  index: number;
  kind: AnyCheckerConfig['kind'];
  /** a CheckerConfigError (with its keyword) or the reason the checker could not be made */
  error: Error;
}

/**
 * Every checker of a real server. A checker whose config is wrong, or that cannot be made, is
 * left out and listed in `refused` (keepalived likewise drops such a checker and logs why); the
 * others still run.
 */
export function checkersForReal(configs: readonly AnyCheckerConfig[], ctx: ResolveContext, env: CheckerEnv = {}):
  { entries: CheckerEntry[]; specs: CheckerSpec[]; refused: RefusedChecker[] } {
  const entries: CheckerEntry[] = [];
  const specs: CheckerSpec[] = [];
  const refused: RefusedChecker[] = [];
  configs.forEach((c, index) => {
    try {
      const spec = resolveChecker(c, ctx);
      entries.push(createChecker(spec, env));
      specs.push(spec);
    } catch (error) {
      refused.push({ index, kind: c.kind, error: error as Error });
    }
  });
  return { entries, specs, refused };
}

