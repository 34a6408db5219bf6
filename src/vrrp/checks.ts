/**
 * The checks behind track_script and track_file (I/O, thin; the rules are ./track.ts's):
 *
 *   vrrp_script  each script some instance tracks is checked once as keepalived's
 *                check_script_secure does (./script.ts prepareScript: a refused script is disabled
 *                with a warning and tracked by nobody, as keepalived does), then run every
 *                `interval` from the start of the previous run (a run still going when the next
 *                is due is not started twice: the next one is skipped), with `timeout` (a run
 *                that takes longer is killed, and counts as a failure), as its `user` or the
 *                global script_user (or keepalived's default user), no shell. Each result goes
 *                through track.ts's scriptCheckResult (rise/fall, init_fail); a change of the
 *                script's state is a 'change' event.
 *   track_file   the file is read at start and again whenever it changes (inotify on its
 *                directory, through fs.watch: written, replaced, removed); its value is read as
 *                keepalived reads it (track.ts parseTrackFileValue); a file that does not exist
 *                or cannot be read has the value 0. A new value is a 'change' event.
 *
 * `stop()` stops the timers and the watchers; a script still running is left to end (its
 * timeout bounds it) and its result is ignored.
 */
import { EventEmitter } from 'node:events';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Clock, TimerHandle } from '../util/clock.ts';
import type { ResolvedScript, ResolvedTrackFile } from './config.ts';
import { prepareScript, runScript, type PreparedScript, type RunOptions, type RunOutcome, type ScriptUser } from './script.ts';
import { parseTrackFileValue, scriptCheckInitial, scriptCheckResult, type ScriptCheckState, type ScriptState } from './track.ts';

export interface TrackChecksOptions {
  scripts: readonly ResolvedScript[];
  files: readonly ResolvedTrackFile[];
  /** the user a script runs as: its own `user`, else the global one (throws when there is none) */
  userOf(own: ResolvedScript['user']): ScriptUser;
  /** keepalived enable_script_security */
  scriptSecurity: boolean;
  /** runs one check (./script.ts runScript; tests give their own) */
  run?: (script: PreparedScript, opts: RunOptions) => Promise<RunOutcome>;
}

export interface TrackChecksEvents {
  change: [];
  log: ['info' | 'warn', string];
}

interface Check {
  cfg: ResolvedScript;
  script: PreparedScript;
  st: ScriptCheckState;
  running: boolean;
  timer?: TimerHandle;
}

interface File {
  cfg: ResolvedTrackFile;
  value: number;
}

export class TrackChecks extends EventEmitter<TrackChecksEvents> {
  private readonly checks = new Map<string, Check>();
  private readonly files = new Map<string, File>();
  private readonly watchers: FSWatcher[] = [];
  private stopped = false;

  constructor(private readonly o: TrackChecksOptions, private readonly clock: Clock) {
    super();
  }

  /** Prepare the scripts, read the files, start the watchers, and run every script once now. */
  start(): void {
    for (const cfg of this.o.scripts) {
      let script: PreparedScript;
      try {
        const p = prepareScript(cfg.script, { user: this.o.userOf(cfg.user), scriptSecurity: this.o.scriptSecurity });
        for (const w of p.warnings) this.emit('log', 'warn', `vrrp_script ${cfg.name}: ${w}`);
        if (!p.ok) {
          this.emit('log', 'warn', `vrrp_script ${cfg.name} '${cfg.script}' disabled: ${p.reason}`);
          continue;
        }
        script = p.script;
      } catch (err) {
        this.emit('log', 'warn', `vrrp_script ${cfg.name} disabled: ${(err as Error).message}`);
        continue;
      }
      this.checks.set(cfg.name, { cfg, script, st: scriptCheckInitial(cfg), running: false });
    }
    for (const cfg of this.o.files) {
      const f: File = { cfg, value: readValue(cfg.file) };
      this.files.set(cfg.name, f);
      const name = basename(cfg.file);
      try {
        const w = watch(dirname(cfg.file), { persistent: false }, (_event, changed) => {
          if (changed === null || changed === name) this.reread(f);
        });
        w.on('error', (err) => this.emit('log', 'warn', `vrrp_track_file ${cfg.name}: watching ${dirname(cfg.file)}: ${err.message}`));
        this.watchers.push(w);
      } catch (err) {
        this.emit('log', 'warn', `vrrp_track_file ${cfg.name}: cannot watch ${dirname(cfg.file)} (${(err as Error).message}); its value stays ${f.value}`);
      }
    }
    const now = this.clock.now();
    for (const c of this.checks.values()) this.launch(c, now);
  }

  /** A script's state; undefined when it is not run (disabled, or not tracked). */
  scriptState(name: string): ScriptState | undefined {
    return this.checks.get(name)?.st.state;
  }

  /** A tracked file's value. */
  fileValue(name: string): number {
    return this.files.get(name)?.value ?? 0;
  }

  stop(): void {
    this.stopped = true;
    for (const c of this.checks.values()) if (c.timer) this.clock.clearTimer(c.timer);
    for (const w of this.watchers.splice(0)) w.close();
  }

  private launch(c: Check, at: number): void {
    if (this.stopped) return;
    c.timer = this.clock.setTimer(at + c.cfg.intervalMs, () => this.launch(c, at + c.cfg.intervalMs));
    if (c.running) {
      this.emit('log', 'warn', `vrrp_script ${c.cfg.name} is still running: this run is skipped`);
      return;
    }
    c.running = true;
    void (this.o.run ?? runScript)(c.script, { timeoutMs: c.cfg.timeoutMs, clock: this.clock }).then((out) => {
      c.running = false;
      if (this.stopped) return;
      if (out.status === 'timeout') this.emit('log', 'warn', `vrrp_script ${c.cfg.name} timed out after ${c.cfg.timeoutMs} ms`);
      if (out.status === 'error') this.emit('log', 'warn', `vrrp_script ${c.cfg.name} did not start: ${out.error?.message ?? '?'}`);
      const r = scriptCheckResult(c.cfg, c.st, out.status === 'success');
      c.st = r.state;
      if (r.changed) {
        this.emit('log', 'info', `vrrp_script ${c.cfg.name} now ${r.state.state}`);
        this.emit('change');
      }
    });
  }

  private reread(f: File): void {
    if (this.stopped) return;
    const value = readValue(f.cfg.file);
    if (value === f.value) return;
    this.emit('log', 'info', `vrrp_track_file ${f.cfg.name}: value ${f.value} -> ${value}`);
    f.value = value;
    this.emit('change');
  }
}

function readValue(file: string): number {
  try {
    return parseTrackFileValue(readFileSync(file, 'utf8'));
  } catch {
    return 0;
  }
}
