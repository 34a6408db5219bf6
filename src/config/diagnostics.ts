/**
 * What the keepalived.conf reader reports: positioned problems, and how they decide the exit code
 * of `xlb check-config` the way they decide `keepalived --config-test`'s.
 *
 * Every problem has a class. keepalived's classes (config_err_t in its lib/parser.h, in its order)
 * are kept for the problems keepalived itself reports; `--config-test` exits with the class of the
 * highest one reported. Observed on keepalived 2.2.7 (test/unit/config-keepalived.test.ts runs it):
 *
 *   0  nothing, or only messages of class `ok` (keepalived logs them and carries on)
 *   2  a keyword without a parameter it needs (keepalived stops reading there: class `abort`)
 *   4  only `file_not_found`, `bad_if` or `fatal`
 *   5  any other error or warning (unknown keyword, bad number, missing interface, ...)
 *   6  script security (`security`), or an include that include_check makes an error (`no_config`)
 *
 * xlb adds two classes of its own: `unsupported` (xlb cannot run the configuration as written: an
 * error, ranked as keepalived's `fatal`, exit 4 when nothing worse is reported) and `ignored` (a
 * warning that xlb does not implement something keepalived would do; keepalived has nothing to
 * report, so the exit code stays as it is).
 */
import { formatPos, type SourcePos } from '../model/types.ts';

/** keepalived's config_err_t, in its order (a later one wins), then xlb's own. */
export const PROBLEM_CLASSES = [
  'ok', 'file_not_found', 'bad_if', 'fatal', 'multiple_files', 'unknown_keyword', 'unexpected_bob', 'missing_bob',
  'unexpected_eob', 'missing_eob', 'unmatched_quote', 'missing_parameter', 'invalid_number', 'general_error', 'warning',
  'deprecated', 'security',
] as const;
export type KeepalivedClass = (typeof PROBLEM_CLASSES)[number];
export type ProblemClass = KeepalivedClass | 'abort' | 'no_config' | 'unsupported' | 'ignored';

export type Severity = 'error' | 'warning';

export interface Diagnostic {
  severity: Severity;
  pos: SourcePos;
  message: string;
  class: ProblemClass;
  /** the keyword the problem is about, when there is one */
  keyword?: string;
}

const WARNING_CLASSES: ReadonlySet<ProblemClass> = new Set(['ok', 'warning', 'deprecated', 'multiple_files', 'ignored']);

/** The severity a class of problem has when nothing else is said. */
export function severityOf(c: ProblemClass): Severity {
  return WARNING_CLASSES.has(c) ? 'warning' : 'error';
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${formatPos(d.pos)}: ${d.severity}: ${d.message}`;
}

/** keepalived --config-test's exit codes (2.2.7). */
export const EXIT = { OK: 0, ABORT: 2, CONFIG: 4, CONFIG_TEST: 5, SECURITY: 6 } as const;

/** The exit code `keepalived --config-test` gives for these problems (see the header). */
export function exitCode(problems: readonly Pick<Diagnostic, 'class'>[]): number {
  if (problems.some((p) => p.class === 'abort')) return EXIT.ABORT;
  if (problems.some((p) => p.class === 'security' || p.class === 'no_config')) return EXIT.SECURITY;
  let rank = 0;
  for (const p of problems) {
    const c = p.class === 'unsupported' ? 'fatal' : p.class === 'ignored' ? 'ok' : p.class;
    rank = Math.max(rank, PROBLEM_CLASSES.indexOf(c as KeepalivedClass));
  }
  if (rank === 0) return EXIT.OK;
  return rank <= PROBLEM_CLASSES.indexOf('fatal') ? EXIT.CONFIG : EXIT.CONFIG_TEST;
}

/** Collects problems; the reader, the parser and the conversion all report through one. */
export class Problems {
  readonly list: Diagnostic[] = [];

  add(cls: ProblemClass, pos: SourcePos, message: string, keyword?: string, severity: Severity = severityOf(cls)): void {
    const d: Diagnostic = { severity, pos, message, class: cls };
    if (keyword !== undefined) d.keyword = keyword;
    this.list.push(d);
  }

  get errors(): Diagnostic[] {
    return this.list.filter((d) => d.severity === 'error');
  }
}
