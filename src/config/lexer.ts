/**
 * keepalived.conf's lexical layer, as keepalived 2.2.7's lib/parser.c reads a configuration
 * (read_line, decomment, check_definition, replace_param, add_seq, add_lst, check_include,
 * alloc_strvec), pure over a ConfigFs. The parser pulls one logical line at a time, as keepalived
 * does, so that a keyword it has just read (include_check) changes how the next lines are read.
 *
 * A physical line goes through, in this order:
 *   1. end-of-line characters removed; an empty line ends a multi-line definition;
 *   2. decomment: leading blanks removed; from an unquoted '#' or '!' to the end removed ("..."
 *      quotes protect them; single quotes do not); `\#` and `\!` outside quotes become '#' and
 *      '!'; trailing blanks removed; an unterminated "..." is reported. keepalived's VRRP and
 *      checker processes read a decommented copy and decomment it again, so an escaped comment
 *      character is a comment character again for them: xlb follows those processes (it
 *      decomments twice), which is what keepalived configures;
 *   3. `@ID rest` is kept (without `@ID`) only when ID is the config id, `@^ID rest` only when it
 *      is not; a line without a space after the id is dropped;
 *   4. `$NAME=value` (no blank before '='; NAME is [A-Za-z_][A-Za-z0-9_]*) defines NAME; a value
 *      ending in '\' continues on the following lines (each ending in '\' but the last; an empty
 *      line also ends it): a multi-line definition;
 *   5. `~SEQ(VAR, START, STEP, END) rest`, `~SEQx(...)` (hexadecimal) and `~LST(VAR, v1, v2...)`,
 *      `~LST({A, B}, {1, 2}, {3, 4})` repeat `rest` with VAR set to each value (several on one
 *      line nest, the last one varying fastest); numbers as strtol(.., 0) reads them;
 *   6. `$NAME` followed by a blank, ',', ')' or the end, and `${NAME}`, are replaced by NAME's
 *      value (undefined names are left as written), again and again over the replaced text; a
 *      multi-line definition is replaced only at the end of a line, by its lines in turn; then
 *      the line is decommented again. Predefined: ${_PWD} (the current file's directory),
 *      ${_INSTANCE} (the config id), ${_RANDOM [MIN [MAX]]} (0..32767), ${_HASH} '#', ${_BANG} '!';
 *   7. `include PATTERN` (and includer/includem/includew/includeb/includea, which add
 *      include_check's checks) reads the files glob(3) finds, relative to the including file's
 *      directory, in glob's order; the pattern is the rest of the line as written;
 *   8. the line is cut before each '{' and '}' outside "...", which stand alone, so
 *      `vrrp_instance VI_1 { state MASTER` is three lines; a '}' that closes nothing is reported;
 *   9. words are split at white space; "..." is one word without its quotes.
 *
 * Every word keeps the file:line:col it came from: replaced text takes the position of its '$',
 * the lines of a multi-line definition the position of the reference, ~SEQ/~LST lines the
 * position of their text on the ~SEQ line.
 */
import { posix } from 'node:path';
import type { SourcePos } from '../model/types.ts';
import type { ProblemClass, Problems } from './diagnostics.ts';
import { escapeGlob, glob, type ConfigFs } from './fs.ts';

export interface Token {
  text: string;
  pos: SourcePos;
  /** written between double quotes */
  quoted: boolean;
}

export interface Line {
  tokens: Token[];
  /** the line's text after every step but the split into words (what keepalived hands a keyword's handler as the raw line) */
  text: string;
  pos: SourcePos;
}

/** include_check's flags (keepalived's include_t). */
export const INCLUDE = { READ: 1, MATCH: 2, WILDCARD: 4, BRACE: 8 } as const;
export const INCLUDE_ALL = INCLUDE.READ | INCLUDE.MATCH | INCLUDE.WILDCARD | INCLUDE.BRACE;

export interface ReaderOptions {
  fs: ConfigFs;
  /** the config id `@id` lines are compared with (keepalived -i; its default is the host name up to the first '.') */
  configId?: string;
  /** ${_RANDOM}'s source of randomness, in [0, 1) */
  random?: () => number;
  /** initial include_check flags (keepalived -e: all of them) */
  includeCheck?: number;
  problems: Problems;
}

/** keepalived's line buffer is 1024 bytes; a substitution that would make a line longer is refused (as keepalived does). */
export const MAX_LINE = 1023;
/** replacements in one line before it is taken for a definition that contains itself */
const MAX_REPLACEMENTS = 10_000;
/** how deep ~SEQ/~LST and multi-line definitions may nest, and how many lines they may make in all */
const MAX_NESTING = 64;

const isBlank = (c: string | undefined) => c === ' ' || c === '\t';
const WHITE = ' \t\f\n\r\v';
const isWhite = (c: string | undefined) => c !== undefined && c !== '' && WHITE.includes(c);
const isAlpha = (c: string | undefined) => c !== undefined && /^[A-Za-z]$/.test(c);
const isAlnum = (c: string | undefined) => c !== undefined && /^[A-Za-z0-9]$/.test(c);

/**
 * Text and the column of each of its characters on one line of one file. `cols` is either the
 * column of the first character (the others follow it) or one column per character.
 */
class Text {
  constructor(readonly s: string, readonly file: string, readonly line: number, readonly cols: number | readonly number[]) {}

  col(i: number): number {
    if (typeof this.cols === 'number') return this.cols + i;
    if (i < this.cols.length) return this.cols[i]!;
    return this.cols.length > 0 ? this.cols[this.cols.length - 1]! + 1 : 1;
  }

  pos(i: number): SourcePos {
    return { file: this.file, line: this.line, col: this.col(i) };
  }

  private colArray(): number[] {
    return Array.from({ length: this.s.length }, (_, i) => this.col(i));
  }

  slice(a: number, b = this.s.length): Text {
    if (typeof this.cols === 'number') return new Text(this.s.slice(a, b), this.file, this.line, this.cols + a);
    return new Text(this.s.slice(a, b), this.file, this.line, this.cols.slice(a, b));
  }

  /** s[a..b) replaced by `insert`, whose characters all stand at column `col`. */
  splice(a: number, b: number, insert: string, col: number): Text {
    const cols = this.colArray();
    cols.splice(a, b - a, ...new Array<number>(insert.length).fill(col));
    return new Text(this.s.slice(0, a) + insert + this.s.slice(b), this.file, this.line, cols);
  }

  trimEnd(): Text {
    let n = this.s.length;
    while (n > 0 && isBlank(this.s[n - 1])) n--;
    return n === this.s.length ? this : this.slice(0, n);
  }
}

interface Definition {
  value: string;
  multiline: boolean;
  /** predefined: the value is computed at each use, with the ${NAME P1 P2} parameters */
  fn?: (params: number[]) => string;
  maxParams: number;
}

/** A ~SEQ or ~LST in progress: the next value(s) and the text to repeat. */
type Sequence =
  | { kind: 'seq'; variable: string; next: number; step: number; last: number; hex: boolean; text: Text }
  | { kind: 'lst'; variables: string[]; sets: string[][]; index: number; text: Text };

/** The rest of a multi-line definition being replaced: its remaining lines, where the reference stood. */
interface Pending {
  lines: string[];
  at: SourcePos;
  seqDepth: number;
}

interface Frame {
  /** the file as shown in messages (joined to the including file's directory) */
  file: string;
  resolved: string;
  lines: string[];
  next: number;
  /** include_check as it was when this file was opened (restored when it is done) */
  savedIncludeCheck: number;
}

interface Glob {
  type: number;
  pattern: string;
  matches: string[];
  next: number;
  opened: number;
  pos: SourcePos;
}

export class ConfigReader {
  private readonly fs: ConfigFs;
  private readonly configId: string | undefined;
  private readonly random: () => number;
  private readonly problems: Problems;
  private includeCheck: number;
  private readonly frames: Frame[] = [];
  /** the glob each open include file came from (index-aligned with frames[1..]) */
  private readonly globs: Glob[] = [];
  private readonly defs = new Map<string, Definition>();
  private readonly seqs: Sequence[] = [];
  private residue: Text | undefined;
  private pending: Pending | undefined;
  private readonly pendingStack: Pending[] = [];
  private seqDepth = 0;
  /** the definition being read over several lines */
  private multilineDef: Definition | undefined;
  /** '{' not closed yet (their positions) */
  private readonly open: SourcePos[] = [];
  private lastPos: SourcePos;
  private finished = false;

  constructor(readonly path: string, opts: ReaderOptions) {
    this.fs = opts.fs;
    this.configId = opts.configId;
    this.random = opts.random ?? Math.random;
    this.problems = opts.problems;
    this.includeCheck = opts.includeCheck ?? 0;
    this.lastPos = { file: path, line: 1, col: 1 };
    this.defineStandard();
    const st = this.fs.stat(path);
    const at = { file: path, line: 1, col: 1 };
    if (!st) this.report('file_not_found', at, `Configuration file '${path}' does not exist`);
    else if (st.kind !== 'file' || st.executable) this.report('file_not_found', at, `Configuration file '${path}' is not a regular non-executable file`);
    else this.openFile(path, at, 'file_not_found');
  }

  /** include_check from global_defs: it applies to the includes that follow (until this file ends). */
  setIncludeCheck(flags: number): void {
    this.includeCheck = flags;
  }

  getIncludeCheck(): number {
    return this.includeCheck;
  }

  /** Where the reader is (for problems found at the end). */
  get position(): SourcePos {
    return this.lastPos;
  }

  private report(cls: ProblemClass, pos: SourcePos, message: string): void {
    this.problems.add(cls, pos, message);
  }

  private defineStandard(): void {
    const std = (name: string, fn: (p: number[]) => string, maxParams = 0) => this.defs.set(name, { value: '', multiline: false, fn, maxParams });
    std('_PWD', () => {
      const f = this.frames[this.frames.length - 1];
      return f ? posix.dirname(f.resolved) : this.fs.resolve('.');
    });
    std('_INSTANCE', () => this.configId ?? '');
    std('_RANDOM', (p) => {
      const min = p[0] ?? 0;
      const max = p[1] ?? 32767;
      return String(max < min ? min : min + Math.floor(this.random() * (max - min + 1)));
    }, 2);
    this.defs.set('_HASH', { value: '#', multiline: false, maxParams: 0 });
    this.defs.set('_BANG', { value: '!', multiline: false, maxParams: 0 });
  }

  // ------------------------------------------------------------ files

  private openFile(file: string, at: SourcePos, cls: ProblemClass): boolean {
    let text: string;
    try {
      text = this.fs.read(file);
    } catch (err) {
      this.report(cls, at, `Configuration file '${file}' open problem (${(err as { code?: string }).code ?? (err as Error).message}) - skipping`);
      return false;
    }
    const lines = text.split('\n');
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    this.frames.push({ file, resolved: this.fs.resolve(file), lines, next: 0, savedIncludeCheck: this.includeCheck });
    return true;
  }

  /** file_config_error: an error when include_check or the include's own type asks for this check, else a note. */
  private fileProblem(type: number, errType: number, pos: SourcePos, message: string): void {
    const error = ((this.includeCheck | type) & errType) !== 0;
    this.report(error ? 'no_config' : 'ok', pos, message);
  }

  private include(pattern: string, type: number, pos: SourcePos): void {
    const cur = this.frames[this.frames.length - 1]!;
    const dir = posix.dirname(cur.file);
    const full = pattern.startsWith('/') || dir === '.' ? pattern : `${escapeGlob(dir)}/${pattern}`;
    const r = glob(full, this.fs);
    if (r.matches.length === 0) {
      if (r.missing > 0) this.fileProblem(type, r.braces ? INCLUDE.BRACE : INCLUDE.MATCH, pos, `Config files missing '${pattern}'.`);
      else if (r.wildcards && ((this.includeCheck | type) & INCLUDE.WILDCARD)) this.fileProblem(type, INCLUDE.WILDCARD, pos, `No config files matched '${pattern}'.`);
      else this.report('ok', pos, `No config files matched '${pattern}'.`);
      return;
    }
    if (r.missing > 0) {
      this.fileProblem(type, INCLUDE.BRACE, pos, `Some config files missing: "${pattern}".`);
      if ((this.includeCheck | type) & INCLUDE.BRACE) return;
    }
    this.globs.push({ type, pattern, matches: r.matches, next: 0, opened: 0, pos });
    if (!this.openNextMatch()) this.globs.pop();
  }

  /** Open the next file of the innermost glob that can be read; false when none is left. */
  private openNextMatch(): boolean {
    const g = this.globs[this.globs.length - 1]!;
    while (g.next < g.matches.length) {
      const m = g.matches[g.next++]!;
      if (m.endsWith('/')) {
        this.fileProblem(g.type, INCLUDE.READ, g.pos, `Configuration file '${m}' is a directory - skipping`);
        continue;
      }
      const st = this.fs.stat(m);
      if (!st || st.kind !== 'file' || st.executable) {
        this.fileProblem(g.type, INCLUDE.READ, g.pos, `Configuration file '${m}' is not a regular non-executable file - skipping`);
        continue;
      }
      const resolved = this.fs.resolve(m);
      const cycle = this.frames.findIndex((f) => f.resolved === resolved);
      const shown = posix.normalize(m);
      if (cycle >= 0) {
        const chain = [...this.frames.slice(cycle).map((f) => f.file), shown].join(' -> ');
        this.report('fatal', g.pos, `include cycle: ${chain} - skipping '${shown}'`);
        g.opened++;
        continue;
      }
      let text: string;
      try {
        text = this.fs.read(m);
      } catch (err) {
        this.fileProblem(g.type, INCLUDE.READ, g.pos, `Configuration file '${m}' open problem (${(err as { code?: string }).code ?? (err as Error).message}) - skipping`);
        continue;
      }
      const lines = text.split('\n');
      if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
      this.frames.push({ file: shown, resolved, lines, next: 0, savedIncludeCheck: this.includeCheck });
      g.opened++;
      return true;
    }
    if (g.opened === 0) this.report('ok', g.pos, `No config files matched '${g.pattern}'.`);
    return false;
  }

  /** The next physical line, decommented (blank ones skipped); undefined at the end of all files. */
  private physical(): Text | undefined {
    for (;;) {
      const f = this.frames[this.frames.length - 1];
      if (!f) return undefined;
      if (f.next >= f.lines.length) {
        this.frames.pop();
        this.includeCheck = f.savedIncludeCheck;
        if (this.frames.length === 0) return undefined;
        // the file came from the innermost glob: its next match, or back to the includer
        if (!this.openNextMatch()) this.globs.pop();
        continue;
      }
      const lineNo = ++f.next;
      let raw = f.lines[f.next - 1]!;
      const nul = raw.indexOf('\0');
      if (nul >= 0) raw = raw.slice(0, nul);
      let n = raw.length;
      while (n > 0 && (raw[n - 1] === '\r' || raw[n - 1] === '\n')) n--;
      raw = raw.slice(0, n);
      if (raw.length === 0) {
        if (this.multilineDef) this.endMultilineDef();
        continue;
      }
      const t = this.decomment(this.decomment(new Text(raw, f.file, lineNo, 1), true), false);
      if (t.s.length === 0) continue;
      return t;
    }
  }

  // ------------------------------------------------------------ decomment

  private decomment(t: Text, reportQuote: boolean): Text {
    let i0 = 0;
    while (isBlank(t.s[i0])) i0++;
    let x = i0 > 0 ? t.slice(i0) : t;
    let quote = false;
    let cont = false;
    let skip = -1;
    for (let i = 0; i < x.s.length; i++) {
      const c = x.s[i];
      if (c === '"') {
        if (skip < 0) quote = !quote;
      } else if (c === '\\') {
        if (i + 1 < x.s.length) {
          const n = x.s[i + 1];
          if (!quote && (n === '#' || n === '!')) x = x.splice(i, i + 1, '', 0);
          else i++;
        } else {
          x = x.slice(0, i);
          cont = true;
          break;
        }
      } else if ((c === '!' || c === '#') && !quote && skip < 0) skip = i;
    }
    if (quote && reportQuote) this.report('general_error', x.pos(0), `Unterminated quote '${x.s}'`);
    if (skip >= 0) x = x.slice(0, skip);
    x = x.trimEnd();
    if (cont) x = x.splice(x.s.length, x.s.length, '\\', x.col(x.s.length));
    return x;
  }

  // ------------------------------------------------------------ definitions

  private endMultilineDef(): void {
    const d = this.multilineDef!;
    this.multilineDef = undefined;
    if (d.value.length === 0) d.multiline = false;
  }

  /** keepalived's check_definition: `$NAME=value`; true when the line was one. */
  private definition(t: Text): boolean {
    const s = t.s;
    if (s[0] !== '$' || !(isAlpha(s[1]) || s[1] === '_')) return false;
    let p = 2;
    while (p < s.length && s[p] !== '=') {
      if (!(isAlnum(s[p]) || s[p] === '_')) return false;
      p++;
    }
    if (s[p] !== '=') return false;
    const name = s.slice(1, p);
    p++;
    while (isBlank(s[p])) p++;
    let value = s.slice(p);
    let multiline = false;
    if (value.endsWith('\\')) {
      multiline = true;
      value = value.slice(0, -1);
      let n = value.length;
      while (n > 0 && isBlank(value[n - 1])) n--;
      value = n === 0 ? '' : `${value.slice(0, n)}\n`;
    }
    const def: Definition = { value, multiline, maxParams: 0 };
    this.defs.set(name, def);
    if (multiline) this.multilineDef = def;
    return true;
  }

  /** Add one line to the multi-line definition being read. */
  private continueDefinition(t: Text): void {
    const d = this.multilineDef!;
    let s = t.s;
    let more = false;
    if (s.endsWith('\\')) {
      s = s.slice(0, -1);
      let n = s.length;
      while (n > 0 && isBlank(s[n - 1])) n--;
      s = `${s.slice(0, n)}\n`;
      more = true;
    }
    if (!more) this.endMultilineDef();
    if (s.length >= 2 || (s.length > 0 && !more)) d.value += s;
  }

  /** keepalived's find_definition for the text after a '$' at index i: the definition and where the reference ends. */
  private findDefinition(s: string, dollar: number): { def: Definition; end: number; params: number[] } | undefined {
    let i = dollar + 1;
    const braces = s[i] === '{';
    if (braces) i++;
    if (!(isAlpha(s[i]) || s[i] === '_')) return undefined;
    let j = i + 1;
    while (isAlnum(s[j]) || s[j] === '_') j++;
    const name = s.slice(i, j);
    let params: number[] = [];
    let end: number;
    if (braces) {
      let ps = -1;
      let pe = -1;
      while (s[j] === ' ' || (s[j] !== undefined && s[j]! >= '0' && s[j]! <= '9')) {
        if (s[j] !== ' ') {
          if (ps < 0) ps = j;
          pe = j;
        }
        j++;
      }
      if (ps >= 0 && pe + 1 !== j) return undefined;
      if (s[j] !== '}') return undefined;
      if (ps >= 0) params = s.slice(ps, pe + 1).split(/ +/).map(Number);
      end = j + 1;
    } else {
      const c = s[j];
      if (c !== undefined && c !== ' ' && c !== '\t' && c !== ',' && c !== ')') return undefined;
      end = j;
    }
    const def = this.defs.get(name);
    if (!def) return undefined;
    if (def.multiline && end !== s.length) return undefined;
    if (params.length > 0 && def.maxParams === 0) return undefined;
    return { def, end, params: params.slice(0, def.maxParams) };
  }

  /** keepalived's replace_param; undefined when nothing was replaced. */
  private replace(t: Text, at: SourcePos): Text | undefined {
    let x = t;
    let found = false;
    let cur = 0;
    let count = 0;
    for (;;) {
      cur = x.s.indexOf('$', cur);
      if (cur < 0 || cur + 1 >= x.s.length) break;
      const f = this.findDefinition(x.s, cur);
      if (!f) {
        cur++;
        continue;
      }
      if (++count > MAX_REPLACEMENTS) {
        this.report('general_error', x.pos(cur), `Parameter substitution on line '${t.s}' does not end (a definition that contains itself?)`);
        return undefined;
      }
      found = true;
      const value = f.def.fn ? f.def.fn(f.params) : f.def.value;
      let insert = value;
      if (f.def.multiline) {
        const nl = value.indexOf('\n');
        insert = nl < 0 ? value : value.slice(0, nl);
        if (this.pending) this.pendingStack.push(this.pending);
        if (this.pendingStack.length > MAX_NESTING) {
          this.report('general_error', x.pos(cur), `Multi-line definitions nest more than ${MAX_NESTING} deep on line '${t.s}'`);
          this.pendingStack.length = 0;
          this.pending = undefined;
          return undefined;
        }
        this.pending = { lines: nl < 0 ? [] : value.slice(nl + 1).split('\n'), at: x.pos(cur), seqDepth: this.seqs.length };
        this.seqDepth = this.seqs.length;
      }
      if (x.s.length - (f.end - cur) + insert.length > MAX_LINE) {
        this.report('general_error', x.pos(cur), `Parameter substitution on line '${t.s}' would exceed maximum line length`);
        return undefined;
      }
      x = x.splice(cur, f.end, insert, x.col(cur));
      if (value.trimStart().startsWith('~')) break;
    }
    void at;
    return found ? x : undefined;
  }

  // ------------------------------------------------------------ ~SEQ and ~LST

  /** Parameters of ~SEQ(...) with definitions replaced (they may be written as $NAME). */
  private substitute(s: string): string {
    const r = this.replace(new Text(s, '', 0, 1), { file: '', line: 0, col: 0 });
    return r ? r.s : s;
  }

  private addSeq(t: Text): boolean {
    const s = t.s;
    let p = 4;
    const hex = s[p] === 'x';
    if (hex) p++;
    while (isBlank(s[p])) p++;
    if (s[p++] !== '(') return false;
    while (isBlank(s[p])) p++;
    const v0 = p;
    while (p < s.length && !' \t,)'.includes(s[p]!)) p++;
    const variable = s.slice(v0, p);
    while (isBlank(s[p])) p++;
    if (p >= s.length || s[p] === ')' || variable === '') {
      this.report('general_error', t.pos(0), `Invalid ~SEQ definition '${s}'`);
      return false;
    }
    p++;
    while (isBlank(s[p])) p++;
    const close = s.indexOf(')', p);
    if (close < 0 || close + 1 - p + 1 > 3 * 20 + 3 + 1) {
      this.report('general_error', t.pos(0), close < 0 ? `Invalid ~SEQ definition '${s}'` : `~SEQ parameter strings too long '${s}'`);
      return false;
    }
    const args = this.substitute(s.slice(p, close + 1));
    const nums: number[] = [];
    let q = 0;
    for (;;) {
      const [n, after] = strtol(args, q);
      nums.push(n);
      q = after;
      while (isBlank(args[q])) q++;
      if (args[q] === ')') break;
      if (args[q] !== ',' || nums.length === 3) {
        this.report('general_error', t.pos(0), `Invalid ~SEQ definition '${s}'`);
        return false;
      }
      q++;
    }
    let start: number;
    let step: number;
    let end: number;
    if (nums.length === 1) {
      end = nums[0]!;
      step = end < 1 ? -1 : 1;
      start = end < 0 ? -1 : 1;
    } else if (nums.length === 2) {
      [start, end] = [nums[0]!, nums[1]!];
      step = start <= end ? 1 : -1;
    } else {
      [start, step, end] = [nums[0]!, nums[1]!, nums[2]!];
      if (step === 0 || (start < end && step < 0) || (start > end && step > 0)) {
        this.report('general_error', t.pos(0), `Invalid ~SEQ values '${s}'`);
        return false;
      }
    }
    if (hex && (start < 0 || end < 0)) {
      this.report('general_error', t.pos(0), `~SEQx is only valid for positive numbers '${s}'`);
      return false;
    }
    let r = close + 1;
    while (isBlank(s[r])) r++;
    this.seqs.push({ kind: 'seq', variable, next: start, step, last: end, hex, text: t.slice(r) });
    return true;
  }

  private addLst(t: Text): boolean {
    const s = t.s;
    let p = 4;
    while (isBlank(s[p])) p++;
    if (s[p++] !== '(') return false;
    while (isBlank(s[p])) p++;
    let endChar = ',';
    if (s[p] === '{') {
      endChar = '}';
      p++;
      while (isBlank(s[p])) p++;
    }
    const variables: string[] = [];
    for (;;) {
      const v0 = p;
      while (p < s.length && !' \t,}'.includes(s[p]!)) p++;
      variables.push(s.slice(v0, p));
      while (isBlank(s[p])) p++;
      if (s[p] === endChar) break;
      if (s[p] !== ',') return false;
      p++;
      while (isBlank(s[p])) p++;
    }
    if (s[p] === '}') {
      p++;
      while (isBlank(s[p])) p++;
    }
    if (s[p++] !== ',') return false;
    while (isBlank(s[p])) p++;
    const sets: string[][] = [];
    for (;;) {
      let end = ',';
      if (s[p] === '{') {
        end = '}';
        p++;
        while (isBlank(s[p])) p++;
      }
      const values: string[] = [];
      for (;;) {
        const v0 = p;
        while (p < s.length && !' \t,})'.includes(s[p]!)) p++;
        values.push(s.slice(v0, p));
        while (isBlank(s[p])) p++;
        if (s[p] === end || (s[p] === ')' && end === ',')) break;
        if (s[p] !== ',') return false;
        p++;
        while (isBlank(s[p])) p++;
        if (values.length > variables.length - 1) {
          this.report('general_error', t.pos(0), `~LST specification has too many values '${s}'`);
          return false;
        }
      }
      while (values.length < variables.length) values.push('');
      sets.push(values);
      if (s[p] === '}' && end === '}') {
        p++;
        while (isBlank(s[p])) p++;
      }
      if (s[p] === ')') break;
      if (s[p] !== ',') return false;
      p++;
      while (isBlank(s[p])) p++;
    }
    p++;
    while (isBlank(s[p])) p++;
    this.seqs.push({ kind: 'lst', variables, sets, index: 0, text: t.slice(p) });
    return true;
  }

  private setVariable(name: string, value: string): void {
    this.defs.set(name, { value, multiline: false, maxParams: 0 });
  }

  /** The next line a ~SEQ/~LST makes (the innermost one). */
  private nextSequenceLine(): Text {
    const q = this.seqs[this.seqs.length - 1]!;
    if (q.kind === 'seq') {
      this.setVariable(q.variable, q.hex ? Math.trunc(q.next).toString(16) : String(Math.trunc(q.next)));
      q.next += q.step;
      if ((q.step > 0 && q.next > q.last) || (q.step < 0 && q.next < q.last)) this.seqs.pop();
    } else {
      const set = q.sets[q.index]!;
      q.variables.forEach((v, i) => this.setVariable(v, set[i] ?? ''));
      if (++q.index >= q.sets.length) this.seqs.pop();
    }
    return q.text;
  }

  // ------------------------------------------------------------ read_line

  /** The next logical line, or undefined at the end of the configuration. */
  next(): Line | undefined {
    for (;;) {
      let t: Text;
      if (this.residue) {
        t = this.residue;
        this.residue = undefined;
      } else if (this.seqs.length > this.seqDepth) {
        t = this.nextSequenceLine();
      } else if (this.pending) {
        const p = this.pending;
        const line = p.lines.shift()!;
        if (p.lines.length === 0) {
          this.pending = this.pendingStack.pop();
          this.seqDepth = this.pending ? this.pending.seqDepth : 0;
        }
        t = new Text(line, p.at.file, p.at.line, p.at.col);
        t = new Text(line, p.at.file, p.at.line, new Array<number>(line.length).fill(p.at.col));
      } else {
        const ph = this.physical();
        if (!ph) return this.end();
        t = ph;
      }
      if (this.multilineDef) {
        this.continueDefinition(t);
        continue;
      }
      if (t.s.length === 0) continue;
      const out = this.process(t);
      if (!out) continue;
      return out;
    }
  }

  /** Steps 3 to 9 of the header for one line; undefined when nothing is left of it. */
  private process(input: Text): Line | undefined {
    let t = input;
    let recheck: boolean;
    do {
      recheck = false;
      if (t.s[0] === '@') {
        const neg = t.s[1] === '^';
        const ofs = neg ? 2 : 1;
        let sp = ofs;
        while (sp < t.s.length && !isBlank(t.s[sp])) sp++;
        if (sp >= t.s.length) return undefined;
        const id = t.s.slice(ofs, sp);
        if ((this.configId === undefined || id !== this.configId) !== neg) return undefined;
        while (isBlank(t.s[sp])) sp++;
        t = t.slice(sp);
      }
      if (t.s[0] === '$' && this.definition(t)) return undefined;
      if (t.s.startsWith('~SEQ') || t.s.startsWith('~LST')) {
        const ok = t.s[1] === 'S' ? this.addSeq(t) : this.addLst(t);
        if (!ok) this.report('general_error', t.pos(0), `Invalid ${t.s.slice(0, 4)} specification '${t.s}'`);
        if (this.seqs.length > MAX_NESTING) {
          this.report('general_error', t.pos(0), `~SEQ/~LST nest more than ${MAX_NESTING} deep`);
          this.seqs.length = 0;
        }
        return undefined;
      }
      if (t.s[0] === '~') break;
      if (t.s.includes('$')) {
        const r = this.replace(t, t.pos(0));
        if (!r) break;
        t = this.decomment(r, false);
        if (t.s[0] === '@') recheck = true;
        if (t.s.includes('$')) recheck = true;
      }
    } while (recheck);
    if (t.s.length === 0) return undefined;

    const inc = /^include([rmwba]?)[ \t\n\v\f\r]/.exec(t.s);
    if (inc) {
      const typeChar = inc[1] ?? '';
      const type = { '': 0, r: INCLUDE.READ, m: INCLUDE.READ | INCLUDE.MATCH, w: INCLUDE.READ | INCLUDE.MATCH | INCLUDE.WILDCARD, b: INCLUDE.READ | INCLUDE.BRACE, a: INCLUDE_ALL }[typeChar]!;
      let p = inc[0].length;
      while (isBlank(t.s[p])) p++;
      this.include(t.s.slice(p), type, t.pos(p));
      return undefined;
    }

    // cut at the first '{' or '}' outside "..."
    let brace = -1;
    if (t.s[0] === '{' || t.s[0] === '}') brace = 0;
    else {
      for (let i = 0; i < t.s.length; i++) {
        const c = t.s[i];
        if (c === '"') {
          const close = t.s.indexOf('"', i + 1);
          if (close < 0) break;
          i = close;
        } else if (c === '{' || c === '}') {
          brace = i;
          break;
        }
      }
    }
    if (brace >= 0) {
      let skip = 0;
      if (brace === 0) {
        skip = 1;
        while (isBlank(t.s[skip])) skip++;
      }
      if (brace + skip < t.s.length) {
        this.residue = t.slice(brace + skip).trimEnd();
        t = t.slice(0, brace + skip);
      }
    }
    t = t.trimEnd();
    if (t.s === '{') this.open.push(t.pos(0));
    else if (t.s === '}') {
      if (this.open.length === 0) this.report('unexpected_eob', t.pos(0), "Extra '}' found");
      else this.open.pop();
    }
    this.lastPos = t.pos(0);
    return { tokens: this.words(t), text: t.s, pos: t.pos(0) };
  }

  /** alloc_strvec: words at white space, "..." one word without its quotes. */
  private words(t: Text): Token[] {
    const out: Token[] = [];
    const s = t.s;
    let i = 0;
    for (;;) {
      while (isWhite(s[i])) i++;
      if (i >= s.length) break;
      const start = i;
      if (s[i] === '"') {
        const close = s.indexOf('"', i + 1);
        if (close < 0) {
          this.report('unmatched_quote', t.pos(i), `Unmatched quote: '${s}'`);
          break;
        }
        out.push({ text: s.slice(i + 1, close), pos: t.pos(start), quoted: true });
        i = close + 1;
      } else {
        while (i < s.length && !isWhite(s[i]) && s[i] !== '"') i++;
        out.push({ text: s.slice(start, i), pos: t.pos(start), quoted: false });
      }
    }
    return out;
  }

  private end(): undefined {
    if (!this.finished) {
      this.finished = true;
      if (this.multilineDef) this.endMultilineDef();
      if (this.open.length > 0) {
        this.report('missing_eob', this.open[0]!, `There are ${this.open.length} missing '}'s or extra '{'s`);
      }
    }
    return undefined;
  }
}

/** strtol(s + i, &end, 0): the number and the index after it (no digits: 0 and i). */
export function strtol(s: string, i: number): [number, number] {
  let p = i;
  while (isWhite(s[p])) p++;
  let sign = 1;
  if (s[p] === '+' || s[p] === '-') {
    if (s[p] === '-') sign = -1;
    p++;
  }
  let base = 10;
  if (s[p] === '0' && (s[p + 1] === 'x' || s[p + 1] === 'X') && /[0-9a-fA-F]/.test(s[p + 2] ?? '')) {
    base = 16;
    p += 2;
  } else if (s[p] === '0') base = 8;
  const digits = base === 16 ? /[0-9a-fA-F]/ : base === 8 ? /[0-7]/ : /[0-9]/;
  const d0 = p;
  let v = 0;
  while (p < s.length && digits.test(s[p]!)) {
    v = v * base + parseInt(s[p]!, base);
    p++;
  }
  if (p === d0) return [0, i];
  return [sign * Math.min(v, Number.MAX_SAFE_INTEGER), p];
}
