/**
 * MISC_CHECK (keepalived 2.2's check_misc.c): run misc_path, with src/vrrp/script.ts's runner
 * (keepalived's argv splitting, script user and security checks, its own process group, SIGTERM
 * then SIGKILL 2 s later on a timeout), every delay_loop counted from the start of the previous
 * run. The exit status decides:
 *   0                      up; with misc_dynamic the real server's configured weight again
 *   1                      down (after `retry` retries; MISC_CHECK's default retry is 0)
 *   2..255, misc_dynamic   up, the real server's weight set to status - 2 (its contribution is
 *                          status - 2 - configured weight, so several checkers add up as
 *                          keepalived documents)
 *   2..255 otherwise, a signal, misc_timeout (default the virtual server's delay_loop)   down
 * A script that is missing, not executable, or unsafe under enable_script_security is refused
 * when the checker is made (keepalived disables such a checker); the error says why.
 *
 * The runner enforces misc_timeout; the scheduler's timeout for this checker is set later than
 * that (./index.ts), so a timed-out script is reported as one. Cancelling a run (removal) drops
 * its result; the process ends at its timeout at the latest.
 */
import { lookupUser, prepareScript, runScript, type PreparedScript, type RunOutcome, type ScriptUser } from '../vrrp/script.ts';
import type { CheckerSpec } from './config.ts';
import type { Checker, CheckResult } from './types.ts';

export type MiscSpec = Extract<CheckerSpec, { kind: 'MISC_CHECK' }>;

/** What MISC_CHECK needs from global_defs. */
export interface ScriptEnv {
  /** enable_script_security */
  scriptSecurity: boolean;
  /** who scripts run as when the checker names no `user` (global script_user, keepalived_script, or ours) */
  defaultUser: ScriptUser;
}

/** the runner's grace between SIGTERM and SIGKILL (keepalived: 2 s) */
export const MISC_KILL_GRACE_MS = 2000;

/** The verdict of one run's outcome (see the top of this file). */
export function miscVerdict(o: RunOutcome, dynamic: boolean, configuredWeight: number, timeoutMs: number): CheckResult {
  switch (o.status) {
    case 'success':
      return dynamic ? { up: true, reason: 'exit 0', weightDelta: 0 } : { up: true, reason: 'exit 0' };
    case 'timeout':
      return { up: false, reason: `timed out after ${timeoutMs} ms` };
    case 'error':
      return { up: false, reason: `could not run: ${o.error?.code ?? o.error?.message ?? 'error'}` };
    case 'failure':
      if (o.exitCode === null) return { up: false, reason: `killed by ${o.signal ?? 'a signal'}` };
      if (dynamic && o.exitCode >= 2) return { up: true, reason: `exit ${o.exitCode}: weight ${o.exitCode - 2}`, weightDelta: o.exitCode - 2 - configuredWeight };
      return { up: false, reason: `exit ${o.exitCode}` };
  }
}

export class MiscChecker implements Checker {
  readonly kind = 'MISC_CHECK';
  readonly target: string;
  readonly #spec: MiscSpec;
  readonly #script: PreparedScript;
  /** what prepareScript warned about (PATH search, SECURITY VIOLATION, ...) */
  readonly warnings: string[];

  constructor(spec: MiscSpec, env: ScriptEnv) {
    this.#spec = spec;
    const user = spec.user !== undefined ? lookupUser(spec.user, spec.group) : env.defaultUser;
    const p = prepareScript(spec.command, { user, scriptSecurity: env.scriptSecurity });
    if (!p.ok) throw new Error(`MISC_CHECK ${spec.command}: ${p.reason}`);
    this.#script = p.script;
    this.warnings = p.warnings;
    this.target = `MISC ${spec.command}`;
  }

  run(done: (r: CheckResult) => void): () => void {
    let cancelled = false;
    const { timeoutMs } = this.#spec.timing;
    void runScript(this.#script, { timeoutMs, killGraceMs: MISC_KILL_GRACE_MS }).then((o) => {
      if (!cancelled) done(miscVerdict(o, this.#spec.dynamic, this.#spec.weight, timeoutMs));
    });
    return () => { cancelled = true; };
  }
}
