/**
 * FILE_CHECK (keepalived 2.2's check_file.c and track_file.c): the number in a file, watched with
 * inotify (node's fs.watch on the file's directory) and read again whenever the file is written,
 * moved or deleted. The number is read as keepalived reads it (strtol, base 0: src/vrrp/track.ts;
 * a missing or empty file is 0; a value beyond 32 bits is ignored, the last one stays). Then, with
 * the checker's weight w (x -1 with reverse):
 *   w = 0   the value 0 is up, anything else down (with reverse: the other way round);
 *   w != 0  value x w is added to the real server's weight (32-bit, saturating); at -2^31 (the
 *           least 32-bit value) the checker is down instead (keepalived's FAULT).
 * Changes apply at once: a watch checker has no retries and no delay_loop.
 */
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { readTrackFileNumber } from '../vrrp/track.ts';
import type { CheckerSpec } from './config.ts';
import type { CheckResult, WatchChecker } from './types.ts';

export type FileSpec = Extract<CheckerSpec, { kind: 'FILE_CHECK' }>;

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
/** keepalived reads at most 127 bytes */
const READ_MAX = 127;

/** The verdict for a value read from the file (see the top of this file). */
export function fileVerdict(value: number, weight: number, reverse: boolean): CheckResult {
  const m = reverse ? -1 : 1;
  if (weight === 0) {
    const fault = (value !== 0) === (m === 1);
    return { up: !fault, reason: `value ${value}`, weightDelta: 0 };
  }
  const product = Math.max(INT32_MIN, Math.min(INT32_MAX, value * weight * m));
  if (product <= INT32_MIN) return { up: false, reason: `value ${value} x weight ${weight * m}: FAULT`, weightDelta: 0 };
  return { up: true, reason: `value ${value} x weight ${weight * m}`, weightDelta: product };
}

/** The file's value now: 0 when it is missing or empty; undefined when it holds a number beyond 32 bits (ignored). */
export function readFileValue(path: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(path, { encoding: 'latin1', flag: 'r' }).slice(0, READ_MAX);
  } catch {
    return 0;
  }
  const v = readTrackFileNumber(text);
  return v < INT32_MIN || v > INT32_MAX + 1 ? undefined : v;
}

export class FileChecker implements WatchChecker {
  readonly kind = 'FILE_CHECK';
  readonly target: string;
  readonly #spec: FileSpec;
  readonly #path: string;

  constructor(spec: FileSpec) {
    this.#spec = spec;
    this.#path = resolve(spec.file);
    const dir = dirname(this.#path);
    let isDir = false;
    try {
      isDir = statSync(dir).isDirectory();
    } catch { /* below */ }
    if (!isDir) throw new Error(`FILE_CHECK track_file ${spec.trackFile}: the directory of ${spec.file} does not exist`);
    this.target = `FILE ${spec.file}`;
  }

  watch(report: (r: CheckResult) => void): () => void {
    const { weight, reverse } = this.#spec;
    let last = readFileValue(this.#path) ?? 0;
    report(fileVerdict(last, weight, reverse));
    const name = basename(this.#path);
    const watcher: FSWatcher = watch(dirname(this.#path), (_event, filename) => {
      if (filename !== null && filename !== name) return;
      const v = readFileValue(this.#path);
      if (v === undefined || v === last) return;
      last = v;
      report(fileVerdict(v, weight, reverse));
    });
    watcher.on('error', () => undefined);
    return () => watcher.close();
  }
}
