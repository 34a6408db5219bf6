/**
 * keepalived.conf's lexical rules (src/config/lexer.ts) over files in memory: comments, quotes,
 * braces, include (globs, relative paths, cycles, include_check), @id lines, $NAME definitions
 * (multi-line too), ${NAME} and the predefined ones, ~SEQ/~LST, and the file:line:col every word
 * keeps. The expected words are what keepalived 2.2.7 reads in the same text (each case was run
 * through `keepalived -t` on this machine; its "Unknown keyword" messages name the words).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Problems, formatDiagnostic } from '../../src/config/diagnostics.ts';
import { memoryFs } from '../../src/config/fs.ts';
import { ConfigReader, INCLUDE_ALL, type ReaderOptions } from '../../src/config/lexer.ts';

interface Read {
  /** each logical line's words joined by '|', e.g. 'state|MASTER' */
  lines: string[];
  /** 'file:line:col word' for every word */
  words: string[];
  problems: string[];
  classes: string[];
}

function read(files: Record<string, string>, main = 'k.conf', opts: Partial<ReaderOptions> = {}): Read {
  const problems = new Problems();
  const r = new ConfigReader(main, { fs: memoryFs(files, '/etc/keepalived'), configId: 'lb1', problems, ...opts });
  const out: Read = { lines: [], words: [], problems: [], classes: [] };
  for (let l = r.next(); l; l = r.next()) {
    out.lines.push(l.tokens.map((t) => t.text).join('|'));
    for (const t of l.tokens) out.words.push(`${t.pos.file}:${t.pos.line}:${t.pos.col} ${t.text}`);
  }
  out.problems = problems.list.map(formatDiagnostic);
  out.classes = problems.list.map((d) => d.class);
  return out;
}

const lines = (text: string, opts: Partial<ReaderOptions> = {}) => read({ 'k.conf': text }, 'k.conf', opts).lines;

describe('comments, quotes and words', () => {
  test("'#' and '!' start a comment anywhere outside \"...\"; single quotes do not protect", () => {
    assert.deepEqual(lines('a b # c\n! whole line\nx!y\n"p#q" r\n\'s#t\'\n'), ['a|b', 'x', 'p#q|r', "'s"]);
  });

  test('"..." is one word without its quotes, may be empty, and ends a word it touches', () => {
    assert.deepEqual(lines('foo "a b" c"d e"f ""\n'), ['foo|a b|c|d e|f|']);
  });

  test('an unterminated quote is reported twice, as keepalived does, and the words before it are kept', () => {
    const r = read({ 'k.conf': 'foo "a b\n' });
    assert.deepEqual(r.lines, ['foo']);
    assert.deepEqual(r.problems, [
      "k.conf:1:1: error: Unterminated quote 'foo \"a b'",
      "k.conf:1:5: error: Unmatched quote: 'foo \"a b'",
    ]);
  });

  test('\\# is a comment character for the processes that use the configuration (keepalived decomments its copy again)', () => {
    assert.deepEqual(lines('foo\\#bar\n"a\\#b"\n'), ['foo', 'a\\#b']);
  });

  test('blank and comment-only lines, CR LF and white space are nothing; NUL ends a line', () => {
    assert.deepEqual(lines('\r\n   \n\t# x\r\n  a\tb  \r\nc\0d\n'), ['a|b', 'c']);
  });

  test('positions: file, line and column of each word (1-based, after the leading blanks)', () => {
    assert.deepEqual(read({ 'k.conf': '\n  priority  150\n\t"x y" z\n' }).words, [
      'k.conf:2:3 priority', 'k.conf:2:13 150', 'k.conf:3:2 x y', 'k.conf:3:8 z',
    ]);
  });
});

describe('braces', () => {
  test("'{' and '}' outside quotes stand alone, wherever they are written", () => {
    assert.deepEqual(lines('vrrp_instance VI_1 { state MASTER\n virtual_ipaddress { 198.18.0.1/24 } }\nx "a{b}" y\n'), [
      'vrrp_instance|VI_1', '{', 'state|MASTER', 'virtual_ipaddress', '{', '198.18.0.1/24', '}', '}', 'x|a{b}|y',
    ]);
  });

  test("a '}' that closes nothing and '{'s left open are reported with their positions", () => {
    const r = read({ 'k.conf': 'a}b\nc {\n d {\n }\n' });
    assert.deepEqual(r.lines, ['a', '}', 'b', 'c', '{', 'd', '{', '}']);
    assert.deepEqual(r.problems, ["k.conf:1:2: error: Extra '}' found", "k.conf:2:3: error: There are 1 missing '}'s or extra '{'s"]);
    assert.deepEqual(r.classes, ['unexpected_eob', 'missing_eob']);
  });
});

describe('@id conditional lines', () => {
  test('@ID keeps a line for that config id only, @^ID for every other; no space after the id drops it', () => {
    assert.deepEqual(lines('@lb1 a 1\n@lb2 b 2\n@^lb1 c 3\n@^lb2 d 4\n  @lb1   e 5\n@lb1\n'), ['a|1', 'd|4', 'e|5']);
  });

  test('without a config id every @ID line is dropped and every @^ID line kept', () => {
    assert.deepEqual(lines('@lb1 a\n@^lb1 b\n', { configId: undefined }), ['b']);
  });

  test('the word keeps its column after @id is removed', () => {
    assert.deepEqual(read({ 'k.conf': '@lb1   priority 9\n' }).words, ['k.conf:1:8 priority', 'k.conf:1:17 9']);
  });
});

describe('definitions', () => {
  test('$NAME=value, then $NAME (before a blank , ) or the end) and ${NAME} anywhere; redefinition; undefined names stay', () => {
    assert.deepEqual(lines('$A=1\n$B = 2\n$C=x y z\nfoo$A $B $C\n$A=9\nv${A}w $A,$A) $A.x $UNDEF "${UNDEF}"\n'), [
      '$B|=|2', 'foo1|$B|x|y|z', 'v9w|9,9)|$A.x|$UNDEF|${UNDEF}',
    ]);
  });

  test('an undefined ${NAME} outside quotes is cut at its braces, as keepalived cuts it', () => {
    assert.deepEqual(lines('v ${UNDEF} w\n'), ['v|$', '{', 'UNDEF', '}', 'w']);
  });

  test('replacement is recursive and late: a value may name a definition made afterwards', () => {
    assert.deepEqual(lines('$BASE=10.2.${SUB}\n$SUB=0\n${BASE}.100/32\n$SUB=10\n${BASE}.100/32\n'), ['10.2.0.100/32', '10.2.10.100/32']);
  });

  test('replaced text is decommented again: ${_HASH} starts a comment, as in keepalived 2.2.7', () => {
    assert.deepEqual(lines('foo${_HASH}bar\nx${_BANG}y\n$X=a\\#b\nfoo$X\n'), ['foo', 'x', 'fooa']);
  });

  test('predefined ${_PWD} (directory of the current file), ${_INSTANCE}, ${_RANDOM MIN MAX}', () => {
    const r = read({ 'k.conf': 'a ${_PWD} ${_INSTANCE}\ninclude sub/i.conf\nr ${_RANDOM 5 7} ${_RANDOM}\n', 'sub/i.conf': 'b ${_PWD}\n' }, 'k.conf', { random: () => 0.5 });
    assert.deepEqual(r.lines, ['a|/etc/keepalived|lb1', 'b|/etc/keepalived/sub', 'r|6|16384']);
  });

  test('multi-line definitions: lines ending in \\, ended by one without or by an empty line; expanded at the end of a line', () => {
    const text = [
      '$M= \\', 'foo1 \\', '  foo2${Z} \\', '', 'foo3', '$Z=zz', '$M',
      '$N=a \\', 'b \\', 'c', 'x $N', 'y $N z',
    ].join('\n');
    assert.deepEqual(lines(`${text}\n`), ['foo3', 'foo1', 'foo2zz', 'x|a', 'b', 'c', 'y|$N|z']);
  });

  test('multi-line definitions nest, and their lines take the position of the reference', () => {
    const text = '$RS=real_server ${IP} 80 { \\\n weight 1 \\\n}\n$VS=virtual_server 1.1.1.1 80 { \\\n $IP=2.2.2.2 \\\n $RS \\\n}\n  $VS\n';
    const r = read({ 'k.conf': text });
    assert.deepEqual(r.lines, ['virtual_server|1.1.1.1|80', '{', 'real_server|2.2.2.2|80', '{', 'weight|1', '}', '}']);
    assert.equal(r.words[0], 'k.conf:8:3 virtual_server');
    assert.equal(r.words.at(-1), 'k.conf:8:3 }');
  });

  test('replaced text takes the column of its $', () => {
    assert.deepEqual(read({ 'k.conf': '$P=150\npriority   $P\n' }).words, ['k.conf:2:1 priority', 'k.conf:2:12 150']);
  });

  test('a definition that contains itself is reported, not expanded for ever', () => {
    const r = read({ 'k.conf': '$A=$A\nfoo $A\n$B=x$B\nbar $B\n' });
    assert.equal(r.problems.length, 2);
    assert.match(r.problems[0]!, /^k\.conf:2:5: error: Parameter substitution on line 'foo \$A' does not end/);
    assert.match(r.problems[1]!, /^k\.conf:4:5: error: Parameter substitution on line 'bar \$B' would exceed maximum line length/);
  });
});

describe('~SEQ and ~LST', () => {
  test('~SEQ with one, two or three numbers, up or down; ~SEQx in hexadecimal', () => {
    assert.deepEqual(lines('~SEQ(N, 3) a$N\n~SEQ(N, 5, 4) b${N}\n~SEQ(N, 0, 5, 10) c$N\n~SEQ(N, -2) d$N\n~SEQ(N, 0) e$N\n~SEQx(N, 0x9, 0x1, 0xb) f$N\n'), [
      'a1', 'a2', 'a3', 'b5', 'b4', 'c0', 'c5', 'c10', 'd-1', 'd-2', 'e1', 'e0', 'f9', 'fa', 'fb',
    ]);
  });

  test('several ~SEQ on a line nest (the last varies fastest) and parameters may be definitions', () => {
    assert.deepEqual(lines('$MAX=2\n~SEQ(A,1,$MAX) ~SEQ(B,1,2) x${A}${B}\n'), ['x11', 'x12', 'x21', 'x22']);
  });

  test('~LST of single values and of sets (missing values are empty)', () => {
    assert.deepEqual(lines('~LST(V, a, b) v$V\n~LST({P, Q}, {1,2},{3},{5,6}) w${P}_${Q}\n'), ['va', 'vb', 'w1_2', 'w3_', 'w5_6']);
  });

  test('~SEQ over a multi-line definition repeats the whole definition', () => {
    assert.deepEqual(lines('$I= \\\nvrrp_instance V${N} { \\\n priority 1${N} \\\n}\n~SEQ(N,1,2) $I\n'), [
      'vrrp_instance|V1', '{', 'priority|11', '}', 'vrrp_instance|V2', '{', 'priority|12', '}',
    ]);
  });

  test('words of a ~SEQ line keep their columns on the ~SEQ line', () => {
    assert.deepEqual(read({ 'k.conf': '~SEQ(N,1,2) ip 10.0.${N}.1\n' }).words, ['k.conf:1:13 ip', 'k.conf:1:16 10.0.1.1', 'k.conf:1:13 ip', 'k.conf:1:16 10.0.2.1']);
  });

  test('invalid ~SEQ and ~LST are reported as keepalived does and make no lines', () => {
    const r = read({ 'k.conf': '~SEQ(N,3,1,1) a\n~SEQ N b\n~SEQx(N,-1,1) c\n~LST(V) d\n~SEQ(N,1,2 e\n' });
    assert.deepEqual(r.lines, []);
    assert.deepEqual(r.problems, [
      "k.conf:1:1: error: Invalid ~SEQ values '~SEQ(N,3,1,1) a'",
      "k.conf:1:1: error: Invalid ~SEQ specification '~SEQ(N,3,1,1) a'",
      "k.conf:2:1: error: Invalid ~SEQ specification '~SEQ N b'",
      "k.conf:3:1: error: ~SEQx is only valid for positive numbers '~SEQx(N,-1,1) c'",
      "k.conf:3:1: error: Invalid ~SEQ specification '~SEQx(N,-1,1) c'",
      "k.conf:4:1: error: Invalid ~LST specification '~LST(V) d'",
      "k.conf:5:1: error: Invalid ~SEQ definition '~SEQ(N,1,2 e'",
      "k.conf:5:1: error: Invalid ~SEQ specification '~SEQ(N,1,2 e'",
    ]);
  });
});

describe('include', () => {
  const files = {
    'k.conf': 'a\ninclude conf.d/*.conf\nz\n',
    'conf.d/20-b.conf': 'b\ninclude ../extra/{x,y}.conf\n',
    'conf.d/10-a.conf': 'a2\n',
    'conf.d/.hidden.conf': 'hidden\n',
    'conf.d/notes.txt': 'txt\n',
    'extra/x.conf': 'x\n',
    'extra/y.conf': 'y\n',
  };

  test('globs relative to the including file, in glob order; braces expand in order; hidden files are not matched', () => {
    const r = read(files);
    assert.deepEqual(r.lines, ['a', 'a2', 'b', 'x', 'y', 'z']);
    assert.deepEqual(r.words, [
      'k.conf:1:1 a', 'conf.d/10-a.conf:1:1 a2', 'conf.d/20-b.conf:1:1 b', 'extra/x.conf:1:1 x', 'extra/y.conf:1:1 y', 'k.conf:3:1 z',
    ]);
    assert.deepEqual(r.problems, []);
  });

  test('an absolute pattern; `include` alone and `includex` are not includes', () => {
    assert.deepEqual(read({ ...files, 'k.conf': 'include /etc/keepalived/extra/x.conf\ninclude\nincludex y\n' }).lines, ['x', 'include', 'includex|y']);
  });

  test('a file that includes itself (directly or not) is reported and not read again', () => {
    const r = read({ 'k.conf': 'a\ninclude b.conf\n', 'b.conf': 'b\ninclude k.conf\n' });
    assert.deepEqual(r.lines, ['a', 'b']);
    assert.deepEqual(r.problems, ["b.conf:2:9: error: include cycle: k.conf -> b.conf -> k.conf - skipping 'k.conf'"]);
  });

  test('nothing matched: a note for include, an error for includea/includew (include_check)', () => {
    const r = read({ 'k.conf': 'include nope.conf\ninclude none/*.conf\nincludea nope.conf\nincludew conf.d/*.conf\n', 'conf.d/x.txt': '' });
    assert.deepEqual(r.problems, [
      "k.conf:1:9: warning: Config files missing 'nope.conf'.",
      "k.conf:2:9: warning: Config files missing 'none/*.conf'.",
      "k.conf:3:10: error: Config files missing 'nope.conf'.",
      "k.conf:4:10: error: No config files matched 'conf.d/*.conf'.",
    ]);
    assert.deepEqual(r.classes, ['ok', 'ok', 'no_config', 'no_config']);
  });

  test('include_check (as global_defs or -e sets it) makes a missing include an error', () => {
    const r = read({ 'k.conf': 'include nope.conf\n' }, 'k.conf', { includeCheck: INCLUDE_ALL });
    assert.deepEqual(r.classes, ['no_config']);
  });

  test('directories, executable and unreadable files are skipped with a reason', () => {
    const r = read({ 'k.conf': 'includer d/*\n', 'd/sub/x.conf': 'no\n', 'd/run.conf*': 'no\n', 'd/secret.conf!': 'no\n', 'd/ok.conf': 'ok\n' });
    assert.deepEqual(r.lines, ['ok']);
    assert.deepEqual(r.problems, [
      "k.conf:1:10: error: Configuration file 'd/run.conf' is not a regular non-executable file - skipping",
      "k.conf:1:10: error: Configuration file 'd/secret.conf' open problem (EACCES) - skipping",
      "k.conf:1:10: error: Configuration file 'd/sub/' is a directory - skipping",
    ]);
  });

  test('the main file missing is reported, nothing is read', () => {
    const r = read({}, 'k.conf');
    assert.deepEqual(r.lines, []);
    assert.deepEqual(r.problems, ["k.conf:1:1: error: Configuration file 'k.conf' does not exist"]);
    assert.deepEqual(r.classes, ['file_not_found']);
  });
});
