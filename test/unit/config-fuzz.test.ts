/**
 * loadConfig's contract under garbage (src/config/index.ts): random bytes and random mutations of
 * the realistic fixtures (characters dropped, inserted, replaced; lines duplicated, dropped,
 * swapped; keywords, braces, quotes, definitions, ~SEQ and includes spliced in) never make it
 * throw; it always ends in a configuration or in positioned errors, with an exit code of
 * keepalived's. A seeded PRNG, so a failure names the case that reproduces it.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatDiagnostic } from '../../src/config/diagnostics.ts';
import { memoryFs } from '../../src/config/fs.ts';
import { KEYWORD_CONTEXTS, loadConfig } from '../../src/config/index.ts';
import { REPO } from '../lib/require.ts';

/** mulberry32: a small seeded PRNG in [0, 1) */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FIXTURES = ['pair-master.conf', 'v3-ipv6.conf', 'unicast.conf', 'sync-group.conf']
  .map((f) => readFileSync(join(REPO, 'test/fixtures/config', f), 'utf8'));

const KEYWORDS = [...new Set(Object.values(KEYWORD_CONTEXTS).flatMap((t) => Object.keys(t)))];
const PIECES = [
  '{', '}', '"', ' ', '\n', '#', '!', '\\', '$X=1', '$X', '${X}', '${_RANDOM 1 9}', '~SEQ(i, 1, 3) ', '~LST(v, a, b) ', '$i', '@lb1 ', '@^lb1 ',
  'include inc.conf', 'include *.conf', 'include missing/*.conf', '-1', '0', '256', '4294967296', '0.005', '1e9', 'fd00::1/64', '198.18.0.1/33',
  'weight', 'reverse', 'dev', 'table', 'via', 'default', 'yes', 'maybe', '\t', '\r', '\0', 'é', '\u{1F600}',
];
const VALID_EXIT = new Set([0, 2, 4, 5, 6]);

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

function mutate(r: () => number, text: string): string {
  let s = text;
  const n = 1 + Math.floor(r() * 6);
  for (let k = 0; k < n; k++) {
    const at = Math.floor(r() * (s.length + 1));
    switch (Math.floor(r() * 7)) {
      case 0: s = s.slice(0, at) + s.slice(at + 1 + Math.floor(r() * 20)); break;
      case 1: s = s.slice(0, at) + pick(r, PIECES) + s.slice(at); break;
      case 2: s = s.slice(0, at) + pick(r, KEYWORDS) + (r() < 0.5 ? ' ' : '\n') + s.slice(at); break;
      case 3: s = s.slice(0, at) + String.fromCharCode(Math.floor(r() * 128)) + s.slice(at + 1); break;
      default: {
        const lines = s.split('\n');
        const i = Math.floor(r() * lines.length);
        const j = Math.floor(r() * lines.length);
        if (k % 3 === 0) lines.splice(i, 1);
        else if (k % 3 === 1) lines.splice(i, 0, lines[j]!);
        else [lines[i], lines[j]] = [lines[j]!, lines[i]!];
        s = lines.join('\n');
      }
    }
  }
  return s;
}

function randomBytes(r: () => number): string {
  const len = Math.floor(r() * 400);
  let s = '';
  for (let i = 0; i < len; i++) s += r() < 0.3 ? pick(r, PIECES) : String.fromCharCode(Math.floor(r() * 256));
  return s;
}

function check(name: string, files: Record<string, string>): void {
  let result: ReturnType<typeof loadConfig>;
  try {
    result = loadConfig('/etc/keepalived/keepalived.conf', { fs: memoryFs(files, '/etc/keepalived'), configId: 'lb1', random: () => 0.5 });
  } catch (err) {
    assert.fail(`${name}: loadConfig threw ${(err as Error).stack}\n--- input ---\n${files['/etc/keepalived/keepalived.conf']}`);
  }
  const { config, problems, exitCode } = result;
  assert.ok(VALID_EXIT.has(exitCode), `${name}: exit code ${exitCode}`);
  for (const p of problems) {
    assert.ok(typeof p.pos.file === 'string' && p.pos.file.length > 0 && p.pos.line >= 1 && p.pos.col >= 1, `${name}: unpositioned ${formatDiagnostic(p)}`);
    assert.ok(p.message.length > 0, `${name}: empty message`);
  }
  if (!config) assert.ok(problems.some((p) => p.severity === 'error'), `${name}: no configuration and no error`);
  if (exitCode !== 0) assert.ok(problems.length > 0, `${name}: exit ${exitCode} without a problem`);
  if (config) JSON.stringify(config);
}

describe('loadConfig never throws and always ends in a config or positioned errors', () => {
  test('1,500 mutations of the fixtures (seed 5)', () => {
    const r = prng(5);
    for (let i = 0; i < 1500; i++) {
      const base = pick(r, FIXTURES);
      check(`mutation #${i}`, {
        '/etc/keepalived/keepalived.conf': mutate(r, base),
        '/etc/keepalived/inc.conf': r() < 0.5 ? mutate(r, pick(r, FIXTURES)) : 'include keepalived.conf\n',
      });
    }
  });

  test('1,500 files of random bytes and pieces (seed 7)', () => {
    const r = prng(7);
    for (let i = 0; i < 1500; i++) {
      check(`random #${i}`, { '/etc/keepalived/keepalived.conf': randomBytes(r), '/etc/keepalived/inc.conf': randomBytes(r) });
    }
  });
});
