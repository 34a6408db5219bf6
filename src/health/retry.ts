/**
 * A checker's up/down state under retries (pure), as keepalived 2.2's checkers keep it
 * (check_udp.c udp_epilog, check_ping.c icmp_epilog, check_dns.c dns_final, check_misc.c):
 *
 *   - a success: the checker is up (a transition if it was down), its retry count goes back to 0,
 *     the next check comes after delay_loop;
 *   - a failure of a checker that is up (or has never run): while fewer than `retry` retries
 *     have been made, one more is counted and the next check comes after delay_before_retry;
 *     otherwise the checker goes down and the next check comes after delay_loop;
 *   - a failure of a checker that is already down: nothing changes, the next check comes after
 *     delay_loop (no retries for a real already known to be down).
 *
 * A new checker starts up, or down with `alpha`, and with its retry count already at `retry`:
 * the first failure takes it down at once ("one failure is enough initially"); the first success
 * of an alpha checker brings it up. `changed` is true only when `up` flips, so each transition is
 * reported once however many checks confirm it.
 */

export interface RetryState {
  up: boolean;
  /** the checker has completed at least one check */
  hasRun: boolean;
  /** retries made since the last success */
  retryIt: number;
}

export interface RetryOutcome {
  state: RetryState;
  /** which delay comes before the next check */
  next: 'delay_loop' | 'delay_before_retry';
  /** `up` flipped */
  changed: boolean;
}

export function initialRetryState(alpha: boolean, retry: number): RetryState {
  return { up: !alpha, hasRun: false, retryIt: retry };
}

/** The state after one check's verdict, for a checker configured with `retry` retries. */
export function afterCheck(st: RetryState, ok: boolean, retry: number): RetryOutcome {
  if (ok) return { state: { up: true, hasRun: true, retryIt: 0 }, next: 'delay_loop', changed: !st.up };
  if (st.up || !st.hasRun) {
    if (st.retryIt < retry) return { state: { up: st.up, hasRun: true, retryIt: st.retryIt + 1 }, next: 'delay_before_retry', changed: false };
    return { state: { up: false, hasRun: true, retryIt: 0 }, next: 'delay_loop', changed: st.up };
  }
  return { state: { up: false, hasRun: true, retryIt: st.retryIt }, next: 'delay_loop', changed: false };
}
