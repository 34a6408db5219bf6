/**
 * How the XDP datapath realises each IPVS scheduler (lb_algo). The datapath schedules a new flow
 * by a Maglev table per service (weights honoured: each real's share of the table is its share of
 * the weights), indexed by a hash of the flow (or of the client address), and keeps established
 * flows on their real with a connection table. It keeps no per-real counts of active
 * connections, so the schedulers that count connections are approximated; every approximation is
 * reported to the operator as a warning at the lb_algo line (see ./validate.ts).
 *
 * | lb_algo | realised as                                                                  | exact? |
 * |---------|------------------------------------------------------------------------------|--------|
 * | rr      | Maglev, equal weights, by flow hash: the same shares over many connections,  | no     |
 * |         | but no strict per-connection rotation                                        |        |
 * | wrr     | Maglev, configured weights, by flow hash (shares as wrr, no rotation order)  | no     |
 * | lc      | Maglev, equal weights: spread evenly, not by active connection counts        | no     |
 * | wlc     | Maglev, configured weights: in proportion to weights, not by active counts   | no     |
 * | sed     | as wlc                                                                       | no     |
 * | nq      | as lc                                                                        | no     |
 * | lblc    | one real per destination address (as dh); no spill to another real when it  | no     |
 * |         | is overloaded (needs connection counts)                                      |        |
 * | lblcr   | as lblc (no replicated server set)                                           | no     |
 * | dh      | one real per destination address, chosen by a weighted rendezvous hash of    | yes    |
 * |         | the service address; re-chosen when it fails                                 |        |
 * | sh      | Maglev by the client address (sh-port: by the flow), configured weights; a   | yes    |
 * |         | failed real's clients move, the others stay (sh-fallback is inherent)        |        |
 * | mh      | Maglev by the client address (mh-port: by the flow): IPVS mh is Maglev too   | yes    |
 * | fo      | all new connections to the live real with the highest weight (first in      | yes    |
 * |         | the configuration on a tie); the others drained (keep their connections)     |        |
 * | ovf     | as fo; no overflow to the next real when the first has weight-many active    | no     |
 * |         | connections (needs connection counts): only on failure or a weight change    |        |
 *
 * The exact mapping of a flow to a real differs from IPVS's own hashing (only the semantics
 * carry over: which flows stay together, the shares). With persistence_timeout the datapath keeps
 * a template per client network and ignores the flow/source distinction for new clients (Maglev
 * by the masked client address). Pure data and functions.
 */
import type { LbAlgo, SchedFlag } from './types.ts';

/** Which live reals get new connections. */
export type Selection =
  /** every real with a weight, in proportion to it (a Maglev table) */
  | 'all'
  /** only the real with the highest weight (the first on a tie) */
  | 'highest-weight'
  /** one real per destination address (the service's), by a weighted rendezvous hash */
  | 'one-by-destination';

export interface Realisation {
  /** 'source': the client address (IPVS sh, mh); 'flow': the 5-tuple (both addresses for all-ports services) */
  hash: 'flow' | 'source';
  /** 'equal': every real with a weight > 0 counts as 1 */
  weights: 'configured' | 'equal';
  selection: Selection;
  /** false: an approximation, reported as a warning */
  exact: boolean;
  /** what the datapath does, for the warning and the README table */
  how: string;
}

const maglev = (weights: 'configured' | 'equal', exact: boolean, how: string, hash: 'flow' | 'source' = 'flow'): Realisation =>
  ({ hash, weights, selection: 'all', exact, how });

const CONNECTION_COUNTS = 'the XDP datapath keeps no active connection counts';

export const SCHEDULERS: Readonly<Record<LbAlgo, Realisation>> = {
  rr: maglev('equal', false, 'new connections are spread by a hash of the flow over a Maglev table with equal weights: the same shares as round robin over many connections, but no strict rotation'),
  wrr: maglev('configured', false, 'new connections are spread by a hash of the flow over a Maglev table in proportion to the weights: the shares of wrr, but no rotation order'),
  lc: maglev('equal', false, `new connections are spread evenly by a flow hash (Maglev, equal weights), not to the real with the fewest active connections: ${CONNECTION_COUNTS}`),
  wlc: maglev('configured', false, `new connections are spread in proportion to the weights by a flow hash (Maglev), not by active connections per weight: ${CONNECTION_COUNTS}`),
  sed: maglev('configured', false, `realised as wlc: new connections in proportion to the weights by a flow hash (Maglev), no shortest expected delay: ${CONNECTION_COUNTS}`),
  nq: maglev('equal', false, `realised as lc: new connections spread evenly by a flow hash (Maglev), no idle-first queueing: ${CONNECTION_COUNTS}`),
  lblc: { hash: 'flow', weights: 'configured', selection: 'one-by-destination', exact: false, how: `realised as dh: one real per destination address; no spill to another real when it is overloaded: ${CONNECTION_COUNTS}` },
  lblcr: { hash: 'flow', weights: 'configured', selection: 'one-by-destination', exact: false, how: `realised as dh: one real per destination address, no replicated server set and no spill when overloaded: ${CONNECTION_COUNTS}` },
  dh: { hash: 'flow', weights: 'configured', selection: 'one-by-destination', exact: true, how: 'one real per destination address, chosen by a weighted rendezvous hash, chosen again when it fails' },
  sh: maglev('configured', true, 'Maglev by the client address, weights honoured', 'source'),
  mh: maglev('configured', true, 'Maglev by the client address, weights honoured', 'source'),
  fo: { hash: 'flow', weights: 'configured', selection: 'highest-weight', exact: true, how: 'all new connections to the live real with the highest weight; the others keep their connections' },
  ovf: { hash: 'flow', weights: 'configured', selection: 'highest-weight', exact: false, how: `realised as fo: all new connections to the live real with the highest weight, with no overflow to the next one at weight-many active connections (only on failure or a weight change): ${CONNECTION_COUNTS}` },
};

/**
 * The realisation of lb_algo with its scheduler flags, and what each flag did. sh-port/mh-port
 * (flag-2 for sh and mh) hash the flow instead of the client address; sh-fallback/mh-fallback
 * (flag-1) are what Maglev does anyway (a real without weight has no slots); every other flag is
 * reported as having no effect.
 */
export function realise(algo: LbAlgo, flags: readonly SchedFlag[] = []): { realisation: Realisation; notes: { flag: SchedFlag; note: string }[] } {
  let realisation = SCHEDULERS[algo];
  const notes: { flag: SchedFlag; note: string }[] = [];
  const hashing = algo === 'sh' || algo === 'mh';
  for (const flag of flags) {
    const port = flag === `${algo}-port` || (hashing && flag === 'flag-2');
    const fallback = flag === `${algo}-fallback` || (hashing && flag === 'flag-1');
    if (port) {
      realisation = { ...realisation, hash: 'flow', how: `${realisation.how.replace('by the client address', 'by the flow (client address and port)')}` };
    } else if (fallback) {
      notes.push({ flag, note: `${flag}: inherent in the XDP datapath (a real that is down or has weight 0 has no Maglev slots)` });
    } else {
      notes.push({ flag, note: `${flag} has no effect with lb_algo ${algo} in the XDP datapath: ignored` });
    }
  }
  return { realisation, notes };
}

// ---------------------------------------------------------------- selection

/** A stable 32-bit hash of a string (the same on every node and every start): FNV-1a, then
 *  MurmurHash3's finaliser, so that strings differing in their last characters spread well. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Which of these candidates (weight > 0) a selection keeps: every one ('all'), the highest
 * weight (first on a tie), or one by weighted rendezvous hashing of `destination` (so that the
 * choice moves only when the chosen real goes). Returns the indexes kept.
 */
export function select(selection: Selection, destination: string, candidates: readonly { key: string; weight: number }[]): number[] {
  const live = candidates.map((c, i) => ({ ...c, i })).filter((c) => c.weight > 0);
  if (selection === 'all' || live.length <= 1) return live.map((c) => c.i);
  if (selection === 'highest-weight') {
    return [live.reduce((best, c) => (c.weight > best.weight ? c : best)).i];
  }
  let best = live[0]!;
  let bestScore = -Infinity;
  for (const c of live) {
    // weighted rendezvous: -w / ln(u), u uniform in (0, 1) from the hash
    const u = (hash32(`${destination}|${c.key}`) + 0.5) / 2 ** 32;
    const score = -c.weight / Math.log(u);
    if (score > bestScore) {
      best = c;
      bestScore = score;
    }
  }
  return [best.i];
}
