/**
 * The vocabulary of keepalived.conf's keyword tables, and the value helpers every keyword
 * handler reads its words with.
 *
 * A block of keepalived.conf (the top level, `global_defs { ... }`, `vrrp_instance VI_1 { ... }`)
 * is read against a Table: keyword -> what to do with a line that starts with it. A keyword is
 *
 *   value        a line: `priority 150`; its words go to `handle` (after the arity check)
 *   block        a line opening a block of keywords of its own: `vrrp_instance VI_1 {`; `open`
 *                makes the object the block's lines fill (undefined: the block is skipped),
 *                `close` runs at its '}'
 *   lines        a line opening a block of entries that are not keywords: `virtual_ipaddress {`;
 *                each line of the block goes to `line`, whole: Args.words are the entry's
 *                words, Args.keyword the block's keyword (which messages name)
 *   alias        another name for a keyword of the same table (`lvs_sched` -> `lb_algo`); the
 *                handler sees the name as written
 *   unsupported  a keyword keepalived 2.2.7 accepts that xlb does not implement: never silently
 *                ignored, it is reported at its position, as an error (class `unsupported`: xlb
 *                would not do what the configuration says) or a warning (class `ignored`: what
 *                is lost does not change what xlb forwards or who owns an address), with a
 *                reason; a block that follows it is skipped
 *
 * Arity: `args: [min, max]` counts the words after the keyword (default: at least 0, any number).
 * Too few: keepalived's "missing a parameter" (class `abort`, which makes keepalived stop: exit
 * code 2). Too many: a warning of class `ok` (keepalived says nothing; the exit code is kept).
 *
 * The value helpers (Args) report a bad value at the word's own file:line:col, name the keyword,
 * and return undefined; a handler then leaves the setting out (its default applies), as keepalived
 * does. Numbers are read as keepalived's read_*_strvec read them: decimal digits (a leading '-'
 * only where negatives are allowed), the whole word, within [min, max]; timers (read_timer) are
 * seconds with up to 6 decimal places.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { SourcePos } from '../model/types.ts';
import type { ProblemClass, Problems, Severity } from './diagnostics.ts';
import type { ConfigReader, Line, Token } from './lexer.ts';

/** What a handler can reach besides its words: the problems list and the reader (include_check). */
export interface ParseContext {
  problems: Problems;
  reader: ConfigReader;
}

export type Arity = readonly [min: number, max?: number];

export interface ValueKeyword<T> {
  kind: 'value';
  args?: Arity;
  handle(target: T, a: Args): void;
}

/** A block keyword with its sub-table's target type hidden (built by `block()`). */
export interface BlockKeyword<T> {
  kind: 'block';
  args?: Arity;
  /** the sub-table and the object its lines fill, or undefined to skip the block */
  enter(target: T, a: Args): { table: Table<never>; target: never; close?: (end: SourcePos) => void } | undefined;
}

export interface LinesKeyword<T> {
  kind: 'lines';
  args?: Arity;
  /** one handler per entry line (built by `lines()`); undefined skips the block */
  enter(target: T, a: Args): { line: (a: Args) => void; close?: (end: SourcePos) => void } | undefined;
}

export interface AliasKeyword {
  kind: 'alias';
  of: string;
}

export interface UnsupportedKeyword {
  kind: 'unsupported';
  severity: Severity;
  /** why xlb does not do it, or what to use instead */
  why: string;
}

export type Keyword<T> = ValueKeyword<T> | BlockKeyword<T> | LinesKeyword<T> | AliasKeyword | UnsupportedKeyword;

/** keyword -> what a line starting with it does, for one kind of block. */
export type Table<T> = Readonly<Record<string, Keyword<T>>>;

// ---------------------------------------------------------------- builders

export function value<T>(handle: (target: T, a: Args) => void, args: Arity = [1, 1]): ValueKeyword<T> {
  return { kind: 'value', args, handle };
}

/** A keyword that takes no value or an optional boolean (yes/no, on/off, true/false), setting a flag. */
export function flag<T>(set: (target: T, v: boolean, a: Args) => void): ValueKeyword<T> {
  return value<T>((t, a) => {
    const v = a.count === 0 ? true : a.bool(0);
    if (v !== undefined) set(t, v, a);
  }, [0, 1]);
}

export function block<T, S>(
  table: Table<S>,
  open: (target: T, a: Args) => S | undefined,
  close?: (target: T, sub: S, end: SourcePos, a: Args) => void,
  args: Arity = [0],
): BlockKeyword<T> {
  return {
    kind: 'block', args,
    enter: (t, a) => {
      const sub = open(t, a);
      if (sub === undefined) return undefined;
      const r: { table: Table<S>; target: S; close?: (end: SourcePos) => void } = { table, target: sub };
      if (close) r.close = (end) => close(t, sub, end, a);
      return r as never;
    },
  };
}

export function lines<T, S>(
  open: (target: T, a: Args) => S | undefined,
  line: (sub: S, a: Args) => void,
  close?: (target: T, sub: S, end: SourcePos, a: Args) => void,
  args: Arity = [0, 0],
): LinesKeyword<T> {
  return {
    kind: 'lines', args,
    enter: (t, a) => {
      const sub = open(t, a);
      if (sub === undefined) return undefined;
      const r: { line: (a: Args) => void; close?: (end: SourcePos) => void } = { line: (la) => line(sub, la) };
      if (close) r.close = (end) => close(t, sub, end, a);
      return r;
    },
  };
}

export const alias = (of: string): AliasKeyword => ({ kind: 'alias', of });

/** Accepted, not implemented, and an error: xlb would not do what the configuration asks. */
export const unsupported = (why: string): UnsupportedKeyword => ({ kind: 'unsupported', severity: 'error', why });

/** Accepted, not implemented, and a warning: nothing xlb forwards or owns depends on it. */
export const ignored = (why: string): UnsupportedKeyword => ({ kind: 'unsupported', severity: 'warning', why });

/** Several keywords with one meaning: `many(['a', 'b'], ignored('...'))`. */
export function many<K>(names: readonly string[], kw: K): Record<string, K> {
  return Object.fromEntries(names.map((n) => [n, kw]));
}

/** A table of a sub-object, used where the parent's objects are: `lift(lvsKeywords, (c) => c.services)`. */
export function lift<P, C>(table: Table<C>, get: (parent: P) => C): Table<P> {
  const out: Record<string, Keyword<P>> = {};
  for (const [name, kw] of Object.entries(table)) {
    switch (kw.kind) {
      case 'value': out[name] = { ...kw, handle: (p, a) => kw.handle(get(p), a) }; break;
      case 'block': out[name] = { ...kw, enter: (p, a) => kw.enter(get(p), a) }; break;
      case 'lines': out[name] = { ...kw, enter: (p, a) => kw.enter(get(p), a) }; break;
      default: out[name] = kw;
    }
  }
  return out;
}

/** The keyword a name stands for in a table, aliases followed. */
export function lookup<T>(table: Table<T>, name: string): Exclude<Keyword<T>, AliasKeyword> | undefined {
  let kw = Object.prototype.hasOwnProperty.call(table, name) ? table[name] : undefined;
  for (let hops = 0; kw?.kind === 'alias' && hops < 8; hops++) kw = Object.prototype.hasOwnProperty.call(table, kw.of) ? table[kw.of] : undefined;
  return kw?.kind === 'alias' ? undefined : kw;
}

// ---------------------------------------------------------------- values

const DECIMAL = /^(-?)(\d+)$/;
const FIXED = /^(\d*)(?:\.(\d*))?$/;

/** The words of one line: the keyword (or an entry's first word) and its values, 0-based. */
export class Args {
  constructor(
    readonly keyword: Token,
    readonly words: readonly Token[],
    readonly line: Line,
    readonly ctx: ParseContext,
  ) {}

  /** the keyword as written */
  get name(): string {
    return this.keyword.text;
  }

  get pos(): SourcePos {
    return this.keyword.pos;
  }

  get count(): number {
    return this.words.length;
  }

  /** word i's text, if there is one */
  at(i: number): string | undefined {
    return this.words[i]?.text;
  }

  /** where word i stands (the keyword when there is no such word) */
  posOf(i: number): SourcePos {
    return this.words[i]?.pos ?? this.keyword.pos;
  }

  /** The words from i on, joined by single spaces (a command line, a `USER GROUP`). */
  rest(i = 0): string {
    return this.words.slice(i).map((w) => w.text).join(' ');
  }

  report(cls: ProblemClass, message: string, at: number | SourcePos = -1, severity?: Severity): void {
    const pos = typeof at === 'number' ? (at < 0 ? this.pos : this.posOf(at)) : at;
    this.ctx.problems.add(cls, pos, message, this.name, severity);
  }

  error(message: string, at: number | SourcePos = -1): void {
    this.report('general_error', message, at);
  }

  warn(message: string, at: number | SourcePos = -1): void {
    this.report('warning', message, at);
  }

  /** Word i, or a "missing parameter" problem (keepalived's words, class abort). */
  need(i: number): Token | undefined {
    const w = this.words[i];
    if (w === undefined) {
      this.report('abort', `Configuration line starting \`${this.name}\` is missing a parameter after keyword \`${this.name}\` at word position ${i + 2}`);
    }
    return w;
  }

  string(i = 0): string | undefined {
    return this.need(i)?.text;
  }

  /** An integer in [min, max]; "value out of range: MIN..MAX" at the word otherwise. `what` names the value (default: the keyword). */
  int(i: number, min: number, max: number, what = this.name): number | undefined {
    const w = this.need(i);
    if (!w) return undefined;
    const m = DECIMAL.exec(w.text);
    if (!m || (m[1] === '-' && min >= 0)) {
      this.report('invalid_number', `${what}: '${w.text}' is not ${min < 0 ? 'an integer' : 'a whole number'}`, i);
      return undefined;
    }
    const v = Number(w.text);
    if (v < min || v > max) {
      this.report('invalid_number', `${what} ${w.text}: value out of range: ${min}..${max}`, i);
      return undefined;
    }
    return v;
  }

  /** A non-negative decimal with at most `digits` decimal places, in [min, max] (read_decimal_unsigned_strvec). */
  decimal(i: number, digits: number, min: number, max: number): number | undefined {
    const w = this.need(i);
    if (!w) return undefined;
    const m = FIXED.exec(w.text);
    if (!m || (m[1] === '' && (m[2] ?? '') === '')) {
      this.report('invalid_number', `${this.name}: '${w.text}' is not a number${digits > 0 ? ` (up to ${digits} decimal places)` : ''}`, i);
      return undefined;
    }
    if ((m[2]?.length ?? 0) > digits) {
      this.report('invalid_number', `${this.name}: '${w.text}' has more than ${digits} decimal places`, i);
      return undefined;
    }
    const v = Number(w.text.endsWith('.') ? w.text.slice(0, -1) : w.text);
    if (v < min || v > max) {
      this.report('invalid_number', `${this.name} ${w.text}: value out of range: ${min}..${max}`, i);
      return undefined;
    }
    return v;
  }

  /** Seconds, as keepalived's read_timer (up to 6 decimal places), in [min, max]. */
  timer(i: number, min = 0, max = Infinity): number | undefined {
    return this.decimal(i, 6, min, max);
  }

  /** yes/no, on/off, true/false. */
  bool(i: number): boolean | undefined {
    const w = this.need(i);
    if (!w) return undefined;
    const t = w.text.toLowerCase();
    if (t === 'true' || t === 'on' || t === 'yes') return true;
    if (t === 'false' || t === 'off' || t === 'no') return false;
    this.report('general_error', `${this.name}: '${w.text}' is not a boolean (yes/no, on/off, true/false)`, i);
    return undefined;
  }

  /** One of the words given (as written, case-sensitive unless `fold`). */
  choice<C extends string>(i: number, options: readonly C[], fold = false): C | undefined {
    const w = this.need(i);
    if (!w) return undefined;
    const found = options.find((o) => (fold ? o.toLowerCase() === w.text.toLowerCase() : o === w.text));
    if (found === undefined) this.report('general_error', `${this.name}: '${w.text}' is not one of ${options.join(', ')}`, i);
    return found;
  }

  /** An IPv4 or IPv6 address (of the family asked for, if one is). */
  address(i: number, family?: 4 | 6): string | undefined {
    const w = this.need(i);
    if (!w) return undefined;
    const fam = isIPv4(w.text) ? 4 : isIPv6(w.text) ? 6 : 0;
    if (fam === 0 || (family !== undefined && fam !== family)) {
      this.report('general_error', `${this.name}: '${w.text}' is not an ${family === undefined ? 'IPv4 or IPv6' : `IPv${family}`} address`, i);
      return undefined;
    }
    return w.text;
  }

  /** 'ADDRESS' or 'ADDRESS/LEN' (the length within the family's), as written. */
  prefix(i: number): string | undefined {
    const w = this.need(i);
    if (!w) return undefined;
    const [a, len, extra] = w.text.split('/');
    const fam = isIPv4(a ?? '') ? 4 : isIPv6(a ?? '') ? 6 : 0;
    const max = fam === 4 ? 32 : 128;
    if (fam === 0 || extra !== undefined || (len !== undefined && (!/^\d{1,3}$/.test(len) || Number(len) > max))) {
      this.report('general_error', `${this.name}: '${w.text}' is not an address or ADDRESS/LENGTH${fam ? ` (length 0..${max})` : ''}`, i);
      return undefined;
    }
    return w.text;
  }

  /** An absolute path. */
  path(i: number): string | undefined {
    const w = this.need(i);
    if (!w) return undefined;
    if (!w.text.startsWith('/')) {
      this.report('general_error', `${this.name}: '${w.text}' is not an absolute path`, i);
      return undefined;
    }
    return w.text;
  }
}
