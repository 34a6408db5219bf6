/**
 * The walker: reads keepalived.conf's logical lines (lexer.ts) against keyword tables
 * (schema.ts), as keepalived's process_stream does, and hands each line's words to its handler.
 *
 * Contract, for the lines of one block (the top level is a block that ends at the end of input):
 *   - `}` ends the block (at the top level the lexer has already reported it as extra);
 *   - a line whose first word is not in the table: "Unknown keyword 'WORD'" (class
 *     unknown_keyword) at that word; a block that follows it is skipped whole;
 *   - a keyword with too few words: keepalived's "missing a parameter" (class abort), handler not
 *     run; too many: a warning, the handler runs on the words it takes;
 *   - `unsupported` keywords are reported (error or warning, see schema.ts), a block after them
 *     skipped;
 *   - a block or lines keyword needs `{` as its next line (the lexer splits `name {` into two
 *     lines): otherwise "'{' expected after KEYWORD" (class missing_bob) and the block is empty;
 *   - each line of a `lines` block goes whole to its handler, as the words of an Args whose
 *     keyword is the block's (so messages name the block: "virtual_ipaddress: ...");
 *   - a `{` that no keyword opens: "Unexpected '{' - ignoring" (class unexpected_bob), and the
 *     block it opens is skipped whole (keepalived skips only the '{' and then reads the block's
 *     lines as the enclosing block's, which reports every one of them; xlb reports the one cause).
 * A missing `}` at the end is the lexer's to report. Handlers never see a '{' or '}' word.
 */
import type { SourcePos } from '../model/types.ts';
import type { Problems } from './diagnostics.ts';
import type { ConfigReader, Line, Token } from './lexer.ts';
import { Args, lookup, type Arity, type ParseContext, type Table } from './schema.ts';

const isOpen = (l: Line) => l.tokens.length === 1 && l.tokens[0]!.text === '{' && !l.tokens[0]!.quoted;
const isClose = (l: Line) => l.tokens.length === 1 && l.tokens[0]!.text === '}' && !l.tokens[0]!.quoted;

export class Walker {
  private peeked: Line | undefined;
  private readonly ctx: ParseContext;

  constructor(readonly reader: ConfigReader, readonly problems: Problems) {
    this.ctx = { reader, problems };
  }

  private next(): Line | undefined {
    if (this.peeked) {
      const l = this.peeked;
      this.peeked = undefined;
      return l;
    }
    for (;;) {
      const l = this.reader.next();
      if (!l || l.tokens.length > 0) return l;
    }
  }

  private peek(): Line | undefined {
    if (!this.peeked) this.peeked = this.next();
    return this.peeked;
  }

  /** Consume a `{` if it is the next line. */
  private openBrace(): boolean {
    const l = this.peek();
    if (l && isOpen(l)) {
      this.peeked = undefined;
      return true;
    }
    return false;
  }

  /** Skip to the `}` that closes a block whose `{` has been read; its position (or where input ended). */
  private skipBlock(): SourcePos {
    let depth = 1;
    let last: SourcePos = this.reader.position;
    for (let l = this.next(); l; l = this.next()) {
      last = l.pos;
      if (isOpen(l)) depth++;
      else if (isClose(l) && --depth === 0) return l.pos;
    }
    return last;
  }

  /** Skip the block that follows a line, if one does. */
  private skipFollowingBlock(): void {
    if (this.openBrace()) this.skipBlock();
  }

  private arityOk(a: Args, arity: Arity | undefined): boolean {
    const [min, max] = arity ?? [0];
    if (a.count < min) {
      a.need(a.count);
      return false;
    }
    if (max !== undefined && a.count > max) {
      a.report('ok', `${a.name}: takes ${max === 0 ? 'no value' : `at most ${max} value${max === 1 ? '' : 's'}`}; '${a.rest(max)}' ignored`, max, 'warning');
    }
    return true;
  }

  /** Read the lines of a block against a table, until its `}` (nested: true) or the end of input. */
  walk<T>(table: Table<T>, target: T, nested: boolean): SourcePos {
    for (;;) {
      const line = this.next();
      if (!line) return this.reader.position;
      if (isClose(line)) {
        if (nested) return line.pos;
        continue;
      }
      const first = line.tokens[0]!;
      if (isOpen(line)) {
        this.problems.add('unexpected_bob', line.pos, "Unexpected '{' - ignoring");
        this.skipBlock();
        continue;
      }
      const kw = lookup(table, first.text);
      const a = new Args(first, line.tokens.slice(1), line, this.ctx);
      if (!kw) {
        this.problems.add('unknown_keyword', first.pos, `Unknown keyword '${first.text}'`, first.text);
        this.skipFollowingBlock();
        continue;
      }
      switch (kw.kind) {
        case 'unsupported':
          this.problems.add(kw.severity === 'error' ? 'unsupported' : 'ignored', first.pos,
            `${first.text}: not implemented by xlb${kw.severity === 'error' ? '' : ', ignored'} (${kw.why})`, first.text);
          this.skipFollowingBlock();
          break;
        case 'value':
          if (this.arityOk(a, kw.args)) kw.handle(target, a);
          this.skipFollowingBlockReported(first.text);
          break;
        case 'block':
        case 'lines': {
          const ok = this.arityOk(a, kw.args);
          if (!this.openBrace()) {
            this.problems.add('missing_bob', a.pos, `'{' expected after ${first.text}`, first.text);
            break;
          }
          const entered = ok ? kw.enter(target, a) : undefined;
          if (!entered) {
            this.skipBlock();
            break;
          }
          if (kw.kind === 'block') {
            const b = entered as { table: Table<unknown>; target: unknown; close?: (end: SourcePos) => void };
            const end = this.walk(b.table, b.target, true);
            b.close?.(end);
          } else {
            const b = entered as { line: (a: Args) => void; close?: (end: SourcePos) => void };
            const end = this.walkLines(first, b.line);
            b.close?.(end);
          }
          break;
        }
      }
    }
  }

  /** The entries of a lines block, each whole (Args: the block's keyword, the entry's words), until its `}`. */
  private walkLines(keyword: Token, handle: (a: Args) => void): SourcePos {
    for (;;) {
      const line = this.next();
      if (!line) return this.reader.position;
      if (isClose(line)) return line.pos;
      if (isOpen(line)) {
        this.problems.add('unexpected_bob', line.pos, "Unexpected '{' - ignoring");
        this.skipBlock();
        continue;
      }
      handle(new Args(keyword, line.tokens, line, this.ctx));
      this.skipFollowingBlockReported(keyword.text);
    }
  }

  private skipFollowingBlockReported(keyword: string): void {
    const l = this.peek();
    if (l && isOpen(l)) {
      this.next();
      this.problems.add('unexpected_bob', l.pos, "Unexpected '{' - ignoring", keyword);
      this.skipBlock();
    }
  }
}

/** Read a whole configuration against the top-level table. */
export function parseStream<T>(reader: ConfigReader, problems: Problems, table: Table<T>, target: T): void {
  new Walker(reader, problems).walk(table, target, false);
}
