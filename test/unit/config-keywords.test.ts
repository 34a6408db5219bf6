/**
 * The keyword tables against keepalived 2.2.7 itself: test/fixtures/config/keepalived-keywords.json
 * holds, for each block, the keywords keepalived accepts there (asked of `keepalived -t` by
 * scripts/keepalived-keywords.ts). xlb's tables must hold exactly those: nothing keepalived
 * accepts is an unknown keyword to xlb, nothing keepalived rejects is accepted by xlb. And every
 * keyword of every table is either implemented (read without an unknown-keyword problem) or
 * reported where it stands (class unsupported or ignored, naming the keyword).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { memoryFs } from '../../src/config/fs.ts';
import { KEYWORD_CONTEXTS, loadConfig } from '../../src/config/index.ts';
import { lookup } from '../../src/config/schema.ts';
import { REPO } from '../lib/require.ts';

const KEEPALIVED = JSON.parse(readFileSync(join(REPO, 'test/fixtures/config/keepalived-keywords.json'), 'utf8')) as Record<string, unknown>;
const F = '/etc/keepalived/keepalived.conf';

/** A configuration with `line` inside the block `ctx`, and the line number it lands on. */
function inContext(ctx: string, line: string): { text: string; at: number } {
  switch (ctx) {
    case 'root': return { text: `${line}\n`, at: 1 };
    case 'global_defs': return { text: `global_defs {\n${line}\n}\n`, at: 2 };
    case 'authentication': return { text: `vrrp_instance VI_1 {\nauthentication {\n${line}\n}\n}\n`, at: 3 };
    default: return { text: `${ctx} x {\n${line}\n}\n`, at: 2 };
  }
}

describe('keyword tables', () => {
  for (const [ctx, table] of Object.entries(KEYWORD_CONTEXTS)) {
    const theirs = KEEPALIVED[ctx] as string[] | undefined;
    if (theirs !== undefined) {
      test(`${ctx}: exactly the keywords keepalived 2.2.7 accepts there`, () => {
        assert.deepEqual(Object.keys(table).sort(), [...theirs].sort());
      });
    }

    test(`${ctx}: every keyword is implemented or reported at its position`, () => {
      for (const name of Object.keys(table)) {
        const kw = lookup(table, name);
        assert.ok(kw, `${ctx} ${name}: an alias to nothing`);
        const { text, at } = inContext(ctx, `${name} 1`);
        const r = loadConfig(F, { fs: memoryFs({ [F]: text }), configId: 'lb1' });
        const unknown = r.problems.filter((p) => p.class === 'unknown_keyword' && p.keyword === name);
        assert.deepEqual(unknown, [], `${ctx} ${name} is unknown`);
        if (kw.kind === 'unsupported') {
          const reported = r.problems.filter((p) => p.keyword === name && (p.class === 'unsupported' || p.class === 'ignored'));
          assert.equal(reported.length, 1, `${ctx} ${name}: reported once (${JSON.stringify(r.problems)})`);
          assert.deepEqual(reported[0]!.pos, { file: F, line: at, col: 1 });
          assert.equal(reported[0]!.severity, kw.severity);
          assert.match(reported[0]!.message, new RegExp(`^${name}: not implemented by xlb`));
        }
      }
    });
  }

  test('the authentication block: auth_type and auth_pass, as keepalived', () => {
    assert.deepEqual(Object.keys(KEYWORD_CONTEXTS.authentication!).sort(), ['auth_pass', 'auth_type']);
  });
});
