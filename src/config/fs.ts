/**
 * The files a keepalived.conf reader sees, behind one small interface so the reader stays pure
 * (tests and the fuzzer give it files in memory), and glob(3) as keepalived calls it for
 * `include` (GLOB_MARK | GLOB_BRACE).
 *
 * glob contract: `*`, `?` and `[...]` (`[!...]`/`[^...]` negated, ranges, `\` escapes) match
 * within one path component and never match a leading '.'; `{a,b}` alternatives (nested, `\`
 * escapes) are expanded first and each one is globbed in turn, its matches sorted (byte order,
 * glob's C-locale order) and appended, as glibc's GLOB_BRACE does; directories come back with a
 * trailing '/' (GLOB_MARK). A component without wildcards is not listed, only looked up, as glob
 * does: a missing one is counted in `missing` (keepalived's "missing files"), and so is a
 * directory that cannot be listed (its "missing directories"); `wildcards` says whether any
 * directory had to be listed (keepalived's have_wildcards).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { posix } from 'node:path';

export interface FileInfo {
  kind: 'file' | 'dir' | 'other';
  /** any execute bit set (keepalived refuses executable configuration files) */
  executable: boolean;
}

export interface ConfigFs {
  /** The file's text; throws an Error with `code` (ENOENT, EACCES, EISDIR, ...). */
  read(path: string): string;
  /** What is at path (following links), or undefined when nothing is. */
  stat(path: string): FileInfo | undefined;
  /** The names in a directory, or undefined when it cannot be listed. */
  list(dir: string): string[] | undefined;
  /** The absolute, normalised path (for ${_PWD} and include cycles). */
  resolve(path: string): string;
}

/** The machine's files. */
export const nodeFs: ConfigFs = {
  read: (path) => readFileSync(path, 'utf8'),
  stat: (path) => {
    try {
      const s = statSync(path);
      return { kind: s.isFile() ? 'file' : s.isDirectory() ? 'dir' : 'other', executable: (s.mode & 0o111) !== 0 };
    } catch {
      return undefined;
    }
  },
  list: (dir) => {
    try {
      return readdirSync(dir);
    } catch {
      return undefined;
    }
  },
  resolve: (path) => posix.resolve(path),
};

/**
 * Files in memory: paths are absolute or relative to `cwd`; directories are implied by the files
 * under them. A name ending in '*' is executable (its '*' removed), one ending in '!' cannot be
 * read (EACCES).
 */
export function memoryFs(files: Record<string, string>, cwd = '/'): ConfigFs {
  const abs = (p: string) => posix.resolve(cwd, p);
  const content = new Map<string, string>();
  const flags = new Map<string, 'x' | 'noread'>();
  const dirs = new Set<string>(['/']);
  for (const [name, text] of Object.entries(files)) {
    let n = name;
    if (n.endsWith('*')) {
      n = n.slice(0, -1);
      flags.set(abs(n), 'x');
    } else if (n.endsWith('!')) {
      n = n.slice(0, -1);
      flags.set(abs(n), 'noread');
    }
    const a = abs(n);
    content.set(a, text);
    for (let d = posix.dirname(a); !dirs.has(d); d = posix.dirname(d)) dirs.add(d);
  }
  const fail = (code: string, path: string): never => {
    throw Object.assign(new Error(`${code}: ${path}`), { code });
  };
  return {
    read: (p) => {
      const a = abs(p);
      if (dirs.has(a)) fail('EISDIR', p);
      const t = content.get(a);
      if (t === undefined) fail('ENOENT', p);
      if (flags.get(a) === 'noread') fail('EACCES', p);
      return t!;
    },
    stat: (p) => {
      const a = abs(p);
      if (dirs.has(a)) return { kind: 'dir', executable: true };
      if (content.has(a)) return { kind: 'file', executable: flags.get(a) === 'x' };
      return undefined;
    },
    list: (d) => {
      const a = abs(d);
      if (!dirs.has(a)) return undefined;
      const names = new Set<string>();
      const prefix = a === '/' ? '/' : `${a}/`;
      for (const p of [...content.keys(), ...dirs]) {
        if (p.startsWith(prefix) && p !== a) names.add(p.slice(prefix.length).split('/')[0]!);
      }
      return [...names];
    },
    resolve: abs,
  };
}

// ---------------------------------------------------------------- glob

export interface GlobResult {
  /** matches in glob's order; directories end in '/' */
  matches: string[];
  /** a component without wildcards that does not exist, or a directory that could not be listed */
  missing: number;
  /** some directory was listed to match a wildcard */
  wildcards: boolean;
  /** the pattern had {..} alternatives */
  braces: boolean;
}

/** `{a,b}c` → ['ac', 'bc'], nested, with '\' escaping a brace or comma. */
export function expandBraces(pattern: string): string[] {
  // find the first top-level '{' that has a matching '}' with a ',' inside at its depth
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c !== '{') continue;
    let depth = 0;
    const commas: number[] = [];
    let close = -1;
    for (let j = i; j < pattern.length; j++) {
      const d = pattern[j];
      if (d === '\\') {
        j++;
        continue;
      }
      if (d === '{') depth++;
      else if (d === '}') {
        depth--;
        if (depth === 0) {
          close = j;
          break;
        }
      } else if (d === ',' && depth === 1) commas.push(j);
    }
    if (close < 0) return [pattern];
    const pre = pattern.slice(0, i);
    const post = pattern.slice(close + 1);
    const bounds = [i, ...commas, close];
    const out: string[] = [];
    for (let k = 0; k + 1 < bounds.length; k++) {
      for (const alt of expandBraces(pre + pattern.slice(bounds[k]! + 1, bounds[k + 1]) + post)) out.push(alt);
    }
    return out;
  }
  return [pattern];
}

const hasWildcard = (component: string) => /(^|[^\\])[*?[]/.test(component);

/** fnmatch(3) of one path component (no FNM_PERIOD exception: a leading '.' is never matched by a wildcard). */
export function matchComponent(pattern: string, name: string): boolean {
  if (name.startsWith('.') && !pattern.startsWith('.') && !pattern.startsWith('\\.')) return false;
  const memo = new Map<string, boolean>();
  const m = (pi: number, ni: number): boolean => {
    const key = `${pi},${ni}`;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let r: boolean;
    if (pi === pattern.length) r = ni === name.length;
    else {
      const c = pattern[pi]!;
      if (c === '*') r = m(pi + 1, ni) || (ni < name.length && m(pi, ni + 1));
      else if (ni === name.length) r = false;
      else if (c === '?') r = m(pi + 1, ni + 1);
      else if (c === '[') {
        const cls = bracket(pattern, pi);
        r = cls === undefined ? name[ni] === '[' && m(pi + 1, ni + 1) : cls.test(name[ni]!) && m(cls.end, ni + 1);
      } else if (c === '\\' && pi + 1 < pattern.length) r = name[ni] === pattern[pi + 1] && m(pi + 2, ni + 1);
      else r = name[ni] === c && m(pi + 1, ni + 1);
    }
    memo.set(key, r);
    return r;
  };
  return m(0, 0);
}

function bracket(p: string, start: number): { test: (c: string) => boolean; end: number } | undefined {
  let i = start + 1;
  let negate = false;
  if (p[i] === '!' || p[i] === '^') {
    negate = true;
    i++;
  }
  const items: ([string, string])[] = [];
  let first = true;
  while (i < p.length && (p[i] !== ']' || first)) {
    first = false;
    let lo = p[i]!;
    if (lo === '\\' && i + 1 < p.length) lo = p[++i]!;
    let hi = lo;
    if (p[i + 1] === '-' && p[i + 2] !== undefined && p[i + 2] !== ']') {
      hi = p[i + 2]!;
      if (hi === '\\' && i + 3 < p.length) {
        hi = p[i + 3]!;
        i++;
      }
      i += 2;
    }
    items.push([lo, hi]);
    i++;
  }
  if (i >= p.length) return undefined;
  return { test: (c) => items.some(([lo, hi]) => c >= lo && c <= hi) !== negate, end: i + 1 };
}

const unescape = (s: string) => s.replace(/\\(.)/g, '$1');

/** A literal path as a glob pattern (its wildcard and brace characters escaped). */
export const escapeGlob = (s: string) => s.replace(/[\\*?[\]{},]/g, '\\$&');

function globOne(pattern: string, fs: ConfigFs, r: GlobResult): void {
  const absolute = pattern.startsWith('/');
  const parts = pattern.split('/').filter((s, i) => s !== '' || i === 0);
  let paths: string[] = [absolute ? '/' : ''];
  const comps = absolute ? parts.slice(1) : parts;
  for (let ci = 0; ci < comps.length; ci++) {
    const comp = comps[ci]!;
    const last = ci === comps.length - 1;
    const next: string[] = [];
    for (const base of paths) {
      const join = (name: string) => (base === '' ? name : base.endsWith('/') ? base + name : `${base}/${name}`);
      if (!hasWildcard(comp)) {
        const p = join(unescape(comp));
        if (last) {
          const st = fs.stat(p);
          if (st) next.push(st.kind === 'dir' ? `${p}/` : p);
          else r.missing++;
        } else next.push(p);
        continue;
      }
      r.wildcards = true;
      const names = fs.list(base === '' ? '.' : base);
      if (names === undefined) {
        r.missing++;
        continue;
      }
      for (const name of names.filter((n) => matchComponent(comp, n)).sort()) {
        const p = join(name);
        if (last) next.push(fs.stat(p)?.kind === 'dir' ? `${p}/` : p);
        else if (fs.stat(p)?.kind === 'dir') next.push(p);
      }
    }
    paths = next;
  }
  r.matches.push(...paths.filter((p) => p !== '' && p !== '/'));
}

/** glob(pattern, GLOB_MARK | GLOB_BRACE), relative patterns from `fs`'s current directory. */
export function glob(pattern: string, fs: ConfigFs): GlobResult {
  const alts = expandBraces(pattern);
  const r: GlobResult = { matches: [], missing: 0, wildcards: false, braces: alts.length > 1 || alts[0] !== pattern };
  for (const alt of alts) globOne(alt, fs, r);
  return r;
}
