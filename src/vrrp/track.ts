/**
 * Tracking (pure): how track_interface, track_script and track_file move an instance's effective
 * priority or hold it in FAULT, and the rise/fall state of a vrrp_script. As keepalived 2.2
 * (vrrp_track.c, vrrp_scheduler.c):
 *
 *   - weight 0: the object being down puts the instance in FAULT. With `reverse`, being UP does.
 *     (interface: down; script: failed; file: a non-zero value, or with reverse a zero value)
 *   - interface and script with a weight w (-253..253), m = -1 with `reverse` else 1:
 *       up (or script ok)      adds w * m when w > 0
 *       down (or script failed) adds w * m when w < 0
 *     so a positive weight rewards the object being up, a negative one punishes it being down.
 *   - file with a weight w (-254..254): adds value * w * m, capped to -254..253; -254 means FAULT.
 *   - a script that has not reported yet (`init`) adds nothing; with weight 0 it is reported in
 *     `initializing`: keepalived 2.2.7 does not start such an instance (it stays in INIT, with no
 *     state and no notification) until the script has reported (observed: a weight-0 script
 *     whose first run takes 2 s gives BACKUP 2 s after the start, nothing before). The runner
 *     (./runner.ts) holds the instance's startup back accordingly.
 *   - effective priority = base + sum of the additions, kept within 1..254; the address owner
 *     (base 255) is never moved.
 *
 * vrrp_script rise/fall (`scriptCheckResult`): a counter from 0 to rise + fall - 1; the script is
 * OK while the counter is >= rise. From OK, `fall` failures in a row make it FAILED; from FAILED,
 * `rise` successes in a row make it OK. A new script starts at rise - 1 in state `init`, so its
 * first result decides (or FAILED at 0 with `init_fail`). A timeout counts as a failure.
 */

import type { FsmEvent } from './fsm.ts';

export type ScriptState = 'init' | 'ok' | 'failed';

interface Weighted {
  /** the tracked object's name, for the fault reason */
  name: string;
  weight: number;
  reverse?: boolean;
}

export type TrackedObject =
  | (Weighted & { kind: 'interface'; up: boolean })
  | (Weighted & { kind: 'script'; state: ScriptState })
  | (Weighted & { kind: 'file'; value: number });

export interface TrackResult {
  /** what the instance should advertise (the `priority` event of src/vrrp/fsm.ts) */
  priority: number;
  /** why the instance must be in FAULT (the `fault` event), or undefined (`unfault`) */
  fault?: string;
  /** weight-0 scripts that have not reported yet */
  initializing: string[];
}

export const PRIORITY_MIN = 1;
export const PRIORITY_MAX_TRACKED = 254;
const OWNER = 255;
const FILE_FAULT = -254;

/** What one tracked object does to its instance: a priority change, or FAULT. */
export function contribution(o: TrackedObject): { fault: boolean; delta: number } {
  const m = o.reverse ? -1 : 1;
  switch (o.kind) {
    case 'interface':
    case 'script': {
      if (o.kind === 'script' && o.state === 'init') return { fault: false, delta: 0 };
      const up = o.kind === 'interface' ? o.up : o.state === 'ok';
      if (o.weight === 0) return { fault: up !== (m === 1), delta: 0 };
      if (up) return { fault: false, delta: o.weight > 0 ? o.weight * m : 0 };
      return { fault: false, delta: o.weight < 0 ? o.weight * m : 0 };
    }
    case 'file': {
      if (o.weight === 0) return { fault: (o.value !== 0) === (m === 1), delta: 0 };
      const status = Math.max(FILE_FAULT, Math.min(253, o.value * o.weight * m));
      return status === FILE_FAULT ? { fault: true, delta: 0 } : { fault: false, delta: status };
    }
  }
}

/** The effective priority and fault state of an instance with base priority `base`. */
export function track(base: number, objects: readonly TrackedObject[]): TrackResult {
  if (!Number.isInteger(base) || base < PRIORITY_MIN || base > OWNER) throw new Error(`tracking: base priority ${base} is not an integer in 1..255`);
  let sum = 0;
  const faults: string[] = [];
  const initializing: string[] = [];
  for (const o of objects) {
    const limit = o.kind === 'file' ? 254 : 253;
    if (!Number.isInteger(o.weight) || Math.abs(o.weight) > limit) throw new Error(`tracking: ${o.kind} ${o.name} weight ${o.weight} is not an integer in -${limit}..${limit}`);
    const c = contribution(o);
    sum += c.delta;
    if (c.fault) faults.push(describe(o));
    if (o.kind === 'script' && o.state === 'init' && o.weight === 0) initializing.push(o.name);
  }
  const priority = base === OWNER ? OWNER : Math.max(PRIORITY_MIN, Math.min(PRIORITY_MAX_TRACKED, base + sum));
  const result: TrackResult = { priority, initializing };
  if (faults.length > 0) result.fault = faults.join(', ');
  return result;
}

/**
 * The state-machine events that take an instance from one tracking result to the next: the
 * new priority first (so that leaving FAULT arms timers with it), then fault or unfault.
 * `prev` undefined: the first result, applied to an instance still at its base priority.
 */
export function trackEvents(base: number, prev: TrackResult | undefined, next: TrackResult): FsmEvent[] {
  const events: FsmEvent[] = [];
  if (next.priority !== (prev?.priority ?? base) && next.priority !== OWNER) events.push({ type: 'priority', priority: next.priority });
  if (next.fault !== undefined && next.fault !== prev?.fault) events.push({ type: 'fault', reason: next.fault });
  else if (next.fault === undefined && prev?.fault !== undefined) events.push({ type: 'unfault' });
  return events;
}

function describe(o: TrackedObject): string {
  switch (o.kind) {
    case 'interface': return `interface ${o.name} ${o.up ? 'up' : 'down'}`;
    case 'script': return `script ${o.name} ${o.state}`;
    case 'file': return `file ${o.name} value ${o.value}`;
  }
}

// ---------------------------------------------------------------- vrrp_script rise / fall

export interface ScriptCheckConfig {
  /** successes in a row from FAILED to OK (keepalived `rise`, default 1) */
  rise: number;
  /** failures in a row from OK to FAILED (keepalived `fall`, default 1) */
  fall: number;
  /** keepalived `init_fail`: start FAILED rather than waiting for the first result */
  initFail?: boolean;
}

export interface ScriptCheckState {
  readonly state: ScriptState;
  readonly result: number;
}

function checkRiseFall(cfg: ScriptCheckConfig): void {
  for (const [k, v] of [['rise', cfg.rise], ['fall', cfg.fall]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`vrrp_script: ${k} ${v} is not a positive integer`);
  }
}

export function scriptCheckInitial(cfg: ScriptCheckConfig): ScriptCheckState {
  checkRiseFall(cfg);
  return cfg.initFail ? { state: 'failed', result: 0 } : { state: 'init', result: cfg.rise - 1 };
}

/** One run's outcome (success: exit status 0; failure: anything else, a timeout included). */
export function scriptCheckResult(cfg: ScriptCheckConfig, st: ScriptCheckState, success: boolean): { state: ScriptCheckState; changed: boolean } {
  checkRiseFall(cfg);
  const top = cfg.rise + cfg.fall - 1;
  if (success) {
    if (st.result < cfg.rise - 1) return { state: { state: st.state, result: st.result + 1 }, changed: false };
    const next: ScriptCheckState = { state: 'ok', result: top };
    return { state: next, changed: st.state !== 'ok' };
  }
  if (st.result > cfg.rise) return { state: { state: st.state, result: st.result - 1 }, changed: false };
  return { state: { state: 'failed', result: 0 }, changed: st.state !== 'failed' };
}

// ---------------------------------------------------------------- track_file

/**
 * The number in a tracked file's text as keepalived reads it (strtol with base 0: optional
 * white space and sign, then 0x hex, 0 octal or decimal digits, up to the first other
 * character; nothing readable is 0). Not capped (a real server's FILE_CHECK takes 32-bit values).
 */
export function readTrackFileNumber(text: string): number {
  const m = /^[\t\n\v\f\r ]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)?/.exec(text);
  const digits = m?.[2];
  if (!digits) return 0;
  const magnitude = /^0[xX]/.test(digits) ? parseInt(digits.slice(2), 16) : digits.startsWith('0') ? parseInt(digits, 8) || 0 : parseInt(digits, 10);
  return m![1] === '-' ? -magnitude : magnitude;
}

/** The value of a tracked file for VRRP: readTrackFileNumber capped to -254..254. */
export function parseTrackFileValue(text: string): number {
  return Math.max(-254, Math.min(254, readTrackFileNumber(text)));
}
