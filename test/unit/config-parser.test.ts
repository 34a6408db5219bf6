/**
 * The keyword framework (src/config/schema.ts, parser.ts) and loadConfig (src/config/index.ts):
 * dispatch through tables, nested blocks, lines blocks, aliases, arity, unknown and unsupported
 * keywords, value helpers and their messages, each at its file:line:col; global_defs.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Problems, formatDiagnostic } from '../../src/config/diagnostics.ts';
import { memoryFs } from '../../src/config/fs.ts';
import { loadConfig } from '../../src/config/index.ts';
import { ConfigReader } from '../../src/config/lexer.ts';
import { parseStream } from '../../src/config/parser.ts';
import { alias, block, flag, ignored, lift, lines, unsupported, value, type Table } from '../../src/config/schema.ts';

/** loadConfig over one file in memory: its problems as printed, the exit code and the config. */
export function load(text: string, files: Record<string, string> = {}) {
  const r = loadConfig('/etc/keepalived/keepalived.conf', { fs: memoryFs({ '/etc/keepalived/keepalived.conf': text, ...files }), configId: 'lb1' });
  return { ...r, messages: r.problems.map(formatDiagnostic) };
}

const F = '/etc/keepalived/keepalived.conf';

// ------------------------------------------------------------ a small table of our own

interface Item { name: string; n?: number; on?: boolean; entries: string[]; t?: number }
interface Root { items: Item[]; mode?: string; sub: { x?: string } }

const itemTable: Table<Item> = {
  number: value((it, a) => { it.n = a.int(0, 0, 255); }),
  num: alias('number'),
  enabled: flag((it, v) => { it.on = v; }),
  wait: value((it, a) => { it.t = a.timer(0); }),
  entries: lines((it: Item) => it, (it, a) => { it.entries.push(a.words.map((w) => w.text).join(' ')); }),
};
const subTable: Table<{ x?: string }> = { submode: value((s, a) => { s.x = a.choice(0, ['a', 'b']); }) };
const rootTable: Table<Root> = {
  item: block(itemTable, (r: Root, a) => {
    const it: Item = { name: a.string(0)!, entries: [] };
    r.items.push(it);
    return it;
  }, undefined, [1, 1]),
  mode: value((r, a) => { r.mode = a.rest(0); }, [1]),
  old: unsupported('for the test'),
  meh: ignored('for the test'),
  ...lift(subTable, (r: Root) => r.sub),
};

function walk(text: string) {
  const problems = new Problems();
  const reader = new ConfigReader('t.conf', { fs: memoryFs({ 't.conf': text }), problems });
  const root: Root = { items: [], sub: {} };
  parseStream(reader, problems, rootTable, root);
  return { root, messages: problems.list.map(formatDiagnostic), classes: problems.list.map((p) => p.class) };
}

describe('the walker', () => {
  test('blocks, values, aliases, flags, lines blocks, lifted tables; braces anywhere on the line', () => {
    const r = walk([
      'item one {',
      '  number 7',
      '  enabled',
      '  entries {',
      '    198.18.0.1/24 dev eth0',
      '    fd00::1',
      '  }',
      '}',
      'item two { num 255',
      '  enabled off }',
      'mode b c',
      'submode b',
      '',
    ].join('\n'));
    assert.deepEqual(r.messages, []);
    assert.deepEqual(r.root, {
      items: [
        { name: 'one', n: 7, on: true, entries: ['198.18.0.1/24 dev eth0', 'fd00::1'] },
        { name: 'two', n: 255, on: false, entries: [] },
      ],
      mode: 'b c',
      sub: { x: 'b' },
    });
  });

  test('unknown keywords are named at their position, and a block after one is skipped whole', () => {
    const r = walk('bogus 1 {\n  number 3\n  { deeper }\n}\nitem a {\n  nummer 3\n}\n');
    assert.deepEqual(r.messages, ["t.conf:1:1: error: Unknown keyword 'bogus'", "t.conf:6:3: error: Unknown keyword 'nummer'"]);
    assert.deepEqual(r.classes, ['unknown_keyword', 'unknown_keyword']);
    assert.deepEqual(r.root.items, [{ name: 'a', entries: [] }]);
  });

  test('values out of range, not numbers, bad booleans and choices: each at its word', () => {
    const r = walk('item a {\n  number 256\n  number -1\n  number 1x\n  enabled maybe\n  wait 1.1234567\n}\nsubmode c\n');
    assert.deepEqual(r.messages, [
      't.conf:2:10: error: number 256: value out of range: 0..255',
      "t.conf:3:10: error: number: '-1' is not a whole number",
      "t.conf:4:10: error: number: '1x' is not a whole number",
      "t.conf:5:11: error: enabled: 'maybe' is not a boolean (yes/no, on/off, true/false)",
      "t.conf:6:8: error: wait: '1.1234567' has more than 6 decimal places",
      "t.conf:8:9: error: submode: 'c' is not one of a, b",
    ]);
    assert.deepEqual(r.root.items[0], { name: 'a', entries: [], n: undefined, t: undefined });
  });

  test('a missing parameter is keepalived\'s abort; extra words are a warning that keeps the exit code', () => {
    const r = walk('item a {\n  number\n  enabled yes no\n}\n');
    assert.deepEqual(r.messages, [
      't.conf:2:3: error: Configuration line starting `number` is missing a parameter after keyword `number` at word position 2',
      "t.conf:3:15: warning: enabled: takes at most 1 value; 'no' ignored",
    ]);
    assert.deepEqual(r.classes, ['abort', 'ok']);
    assert.equal(r.root.items[0]!.on, true);
  });

  test('unsupported keywords are errors, ignored ones warnings; both skip a block that follows', () => {
    const r = walk('old 1 {\n  number 1\n}\nmeh\nmode a\n');
    assert.deepEqual(r.messages, [
      't.conf:1:1: error: old: not implemented by xlb (for the test)',
      't.conf:4:1: warning: meh: not implemented by xlb, ignored (for the test)',
    ]);
    assert.deepEqual(r.classes, ['unsupported', 'ignored']);
    assert.equal(r.root.mode, 'a');
  });

  test("a '{' no keyword opens is skipped with its block; a block keyword without '{' reads no block", () => {
    const r = walk('mode a {\n  number 1\n}\n{\n  mode b\n}\nitem x\nmode c\n');
    assert.deepEqual(r.messages, [
      "t.conf:1:8: error: Unexpected '{' - ignoring",
      "t.conf:4:1: error: Unexpected '{' - ignoring",
      "t.conf:7:1: error: '{' expected after item",
    ]);
    assert.equal(r.root.mode, 'c');
    assert.deepEqual(r.root.items, []);
  });

  test('a missing } is the lexer\'s to report; the block still ends at the end of input', () => {
    const r = walk('item a {\n  number 1\n');
    assert.deepEqual(r.messages, ["t.conf:1:8: error: There are 1 missing '}'s or extra '{'s"]);
    assert.equal(r.root.items[0]!.n, 1);
  });
});

describe('loadConfig and global_defs', () => {
  test('global_defs settings go to the VRRP and service halves', () => {
    const r = load([
      'global_defs {',
      '  router_id lb1',
      '  vrrp_version 3',
      '  vrrp_garp_master_refresh 60',
      '  script_user nobody nogroup',
      '  enable_script_security',
      '  notify_fifo /run/xlb.fifo',
      '  lvs_timeouts tcp 900 udp 60',
      '  lvs_flush',
      '}',
    ].join('\n'));
    assert.deepEqual(r.messages, []);
    assert.equal(r.exitCode, 0);
    const pos = { file: F, line: 1, col: 1 };
    assert.deepEqual(r.config?.global, {
      pos, router_id: 'lb1', vrrp_version: 3, vrrp_garp_master_refresh: 60, script_user: 'nobody nogroup',
      enable_script_security: true, notify_fifo: '/run/xlb.fifo', lvs_timeouts: { tcp: 900, udp: 60 }, lvs_flush: true,
    });
    assert.deepEqual(r.config?.vrrp.global_defs, {
      vrrp_version: 3, vrrp_garp_master_refresh: 60, script_user: 'nobody nogroup', enable_script_security: true, notify_fifo: '/run/xlb.fifo',
    });
    assert.deepEqual(r.config?.services.global_defs, {
      pos, script_user: 'nobody nogroup', enable_script_security: true, notify_fifo: '/run/xlb.fifo', lvs_timeouts: { tcp: 900, udp: 60 }, lvs_flush: true,
    });
  });

  test('unknown, unsupported and ignored keywords with their exit codes', () => {
    assert.equal(load('global_defs {\n  smtp_server 198.18.0.9\n}\n').exitCode, 0);
    const u = load('global_defs {\n  vrrp_strict\n}\n');
    assert.deepEqual(u.messages, [`${F}:2:3: error: vrrp_strict: not implemented by xlb (strict RFC mode (no unicast, no authentication, firewall rules for no_accept) is not implemented)`]);
    assert.equal(u.exitCode, 4);
    assert.ok(u.config, 'an unsupported keyword leaves a configuration');
    const k = load('global_defs {\n  vrrp_verison 3\n}\n');
    assert.deepEqual(k.messages, [`${F}:2:3: error: Unknown keyword 'vrrp_verison'`]);
    assert.equal(k.exitCode, 5);
  });

  test('a value out of range is positioned and exits 5; a missing parameter exits 2 without a config', () => {
    const r = load('global_defs {\n  vrrp_version 4\n}\n');
    assert.deepEqual(r.messages, [`${F}:2:16: error: vrrp_version 4: value out of range: 2..3`]);
    assert.equal(r.exitCode, 5);
    assert.ok(r.config);
    const m = load('global_defs {\n  router_id\n}\n');
    assert.equal(m.exitCode, 2);
    assert.equal(m.config, undefined);
  });

  test('a main file that is not there: exit 4, no config', () => {
    const r = loadConfig('/nope.conf', { fs: memoryFs({}) });
    assert.deepEqual(r.problems.map(formatDiagnostic), ["/nope.conf:1:1: error: Configuration file '/nope.conf' does not exist"]);
    assert.equal(r.exitCode, 4);
    assert.equal(r.config, undefined);
  });

  test('include_check in global_defs makes a missing include an error (exit 6) for the includes after it', () => {
    const before = load('include missing.conf\nglobal_defs {\n  include_check\n}\n');
    assert.equal(before.exitCode, 0);
    const after = load('global_defs {\n  include_check match\n}\ninclude missing.conf\n');
    assert.deepEqual(after.messages, [`${F}:4:9: error: Config files missing 'missing.conf'.`]);
    assert.equal(after.exitCode, 6);
  });
});
