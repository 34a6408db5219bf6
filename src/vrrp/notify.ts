/**
 * Notifications of state changes, as keepalived 2.2 sends them (vrrp_notify.c):
 *
 *   - notify_master / notify_backup / notify_fault / notify_stop: the state's own script, run
 *     with its configured arguments only;
 *   - notify: one script for every state, run with 4 more arguments:
 *       INSTANCE|GROUP  name  MASTER|BACKUP|FAULT|STOP  priority   (a group's priority is 0)
 *   - notify_master_rx_lower_pri: run when a master hears a lower priority advert;
 *   - the notify FIFO (notify_fifo / vrrp_notify_fifo): one line per change,
 *       INSTANCE "VI_1" MASTER 100\n       GROUP "G1" BACKUP 0\n
 *     and for events MASTER_RX_LOWER_PRI, and MASTER_PRIORITY / BACKUP_PRIORITY when
 *     notify_priority_changes is set.
 *
 * Scripts are started in that order (state script, generic script, then the FIFO line) and not
 * waited for, except STOP scripts, which get 1 s (keepalived kills them after TIMER_HZ). The FIFO
 * is created when missing (mode 0644, owned by the configured user), opened read-write and
 * non-blocking (a missing reader neither blocks nor fails a write), and refused unless it is a
 * FIFO owned by us or that user. A line that does not fit in a full pipe is dropped and counted.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, closeSync, constants, fstatSync, lstatSync, openSync, unlinkSync, writeSync } from 'node:fs';
import type { NotifyEvent, NotifyState } from './fsm.ts';
import { runScript, type PreparedScript, type RunOutcome } from './script.ts';

export type NotifyKind = 'INSTANCE' | 'GROUP';

/** keepalived kills notify_stop scripts after this long */
export const STOP_SCRIPT_TIMEOUT_MS = 1000;

/** The 4 arguments the generic notify script gets. */
export function notifyArgs(kind: NotifyKind, name: string, state: NotifyState, priority: number): string[] {
  return [kind, name, state, String(priority)];
}

/** One line of the notify FIFO. */
export function fifoLine(kind: NotifyKind, name: string, what: NotifyState | NotifyEvent, priority: number): string {
  return `${kind} "${name}" ${what} ${priority}\n`;
}

export class NotifyFifo {
  /** lines dropped because the pipe was full */
  dropped = 0;
  readonly #fd: number;
  readonly #created: boolean;

  private constructor(readonly path: string, fd: number, created: boolean) {
    this.#fd = fd;
    this.#created = created;
  }

  /** Create (if missing) and open the FIFO at `path`; throws an Error naming the path and the problem. */
  static open(path: string, owner?: { uid: number; gid: number }): NotifyFifo {
    let created = false;
    let exists = true;
    try {
      lstatSync(path);
    } catch {
      exists = false;
    }
    if (!exists) {
      const r = spawnSync('mkfifo', ['-m', '0644', path], { encoding: 'utf8' });
      if (r.error) throw new Error(`notify fifo ${path}: mkfifo could not run (${r.error.message})`);
      if (r.status !== 0) throw new Error(`notify fifo ${path}: mkfifo failed: ${r.stderr.trim()}`);
      created = true;
      if (owner && (owner.uid !== process.getuid?.() || owner.gid !== process.getgid?.())) chownSync(path, owner.uid, owner.gid);
    }
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    } catch (e) {
      if (created) unlinkSync(path);
      throw new Error(`notify fifo ${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    const st = fstatSync(fd);
    const ours = st.uid === process.getuid?.() || (owner !== undefined && st.uid === owner.uid);
    if (!st.isFIFO() || !ours) {
      closeSync(fd);
      if (created) unlinkSync(path);
      throw new Error(`notify fifo ${path}: ${st.isFIFO() ? `owned by uid ${st.uid}, not by us` : 'is not a FIFO'} - not using it`);
    }
    return new NotifyFifo(path, fd, created);
  }

  /** Write one line; false (and counted) when the pipe is full. */
  write(line: string): boolean {
    try {
      writeSync(this.#fd, line);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      this.dropped++;
      return false;
    }
  }

  /** Close it, and remove it if we created it. */
  close(): void {
    closeSync(this.#fd);
    if (this.#created) {
      try {
        unlinkSync(this.path);
      } catch { /* already gone */ }
    }
  }
}

export interface NotifyConfig {
  kind: NotifyKind;
  name: string;
  master?: PreparedScript;
  backup?: PreparedScript;
  fault?: PreparedScript;
  stop?: PreparedScript;
  /** the generic `notify` script */
  notify?: PreparedScript;
  masterRxLowerPri?: PreparedScript;
  fifos?: NotifyFifo[];
  /** keepalived notify_priority_changes */
  priorityChanges?: boolean;
}

export type Runner = typeof runScript;

/** Sends one instance's or group's notifications. */
export class Notifier {
  readonly #cfg: NotifyConfig;
  readonly #run: Runner;

  constructor(cfg: NotifyConfig, run: Runner = runScript) {
    this.#cfg = cfg;
    this.#run = run;
  }

  /** The instance or group entered `state`. Resolves when the scripts it started have ended. */
  state(state: NotifyState, priority: number): Promise<RunOutcome[]> {
    const { kind, name } = this.#cfg;
    const timeoutMs = state === 'STOP' ? STOP_SCRIPT_TIMEOUT_MS : undefined;
    const runs: Promise<RunOutcome>[] = [];
    const own = { MASTER: this.#cfg.master, BACKUP: this.#cfg.backup, FAULT: this.#cfg.fault, STOP: this.#cfg.stop }[state];
    if (own) runs.push(this.#run(own, timeoutMs === undefined ? {} : { timeoutMs }));
    if (this.#cfg.notify) {
      runs.push(this.#run(this.#cfg.notify, { extraArgs: notifyArgs(kind, name, state, priority), ...(timeoutMs === undefined ? {} : { timeoutMs }) }));
    }
    this.#line(fifoLine(kind, name, state, priority));
    return Promise.all(runs);
  }

  /** An event that is not a state change: MASTER_RX_LOWER_PRI, or a priority change. */
  event(event: NotifyEvent, priority: number): Promise<RunOutcome[]> {
    const runs: Promise<RunOutcome>[] = [];
    if (event === 'MASTER_RX_LOWER_PRI') {
      if (this.#cfg.masterRxLowerPri) runs.push(this.#run(this.#cfg.masterRxLowerPri));
    } else if (!this.#cfg.priorityChanges) {
      return Promise.resolve([]);
    }
    this.#line(fifoLine(this.#cfg.kind, this.#cfg.name, event, priority));
    return Promise.all(runs);
  }

  #line(line: string): void {
    for (const fifo of this.#cfg.fifos ?? []) fifo.write(line);
  }
}
