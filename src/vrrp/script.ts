/**
 * Running vrrp_script checks and notify scripts the way keepalived 2.2.7 does (I/O, thin):
 *
 *   splitCommand   the script text (what stands between the quotes of `script "..."`) becomes an
 *                  argv: backslash escapes are resolved first (\" \' \\ \a \b \E \f \n \r \t \v,
 *                  \xHH.., \NNN octal, \cX), then the text is split at white space, with '...'
 *                  and "..." grouping (quotes removed, adjacent pieces joined, '' an empty
 *                  argument) and escapes resolved again. Observed on keepalived 2.2.7:
 *                  `a 'b c' d\ e` -> a, b c, d, e; `x\"y z\"w` -> xy zw; `\x41\102\t.` -> AB, .
 *   lookupUser     script_user / user: name (and group) to uid/gid from /etc/passwd, /etc/group;
 *   defaultUser    keepalived_script if it exists; otherwise our own uid/gid, unless
 *                  enable_script_security is on (then there is no default: an error);
 *   prepareScript  keepalived's check_script_secure: a bare name is searched in PATH (with a
 *                  warning), the file must exist and be executable by the user; when it would run
 *                  as root (uid 0 or gid 0, or the file is setuid/setgid root) every component of
 *                  its real path must be owned by root and not writable by others (a directory
 *                  with the sticky bit, like /tmp, may be world-writable; group write is allowed
 *                  for group root). An insecure script is refused under enable_script_security,
 *                  otherwise run with a warning ("SECURITY VIOLATION ..."), as keepalived does.
 *                  Verified against keepalived 2.2.7 on 16 permission layouts (see the tests).
 *   runScript      no shell: the file is executed directly (argv[0] kept as written), in its own
 *                  process group, as the script user, with IFS/LD_PRELOAD/LD_LIBRARY_PATH
 *                  removed from the environment. A shell is used only when asked (`shell`: the
 *                  text goes to /bin/sh -c as written) or for keepalived's "</path" file test.
 *                  On timeout the process group gets SIGTERM, then SIGKILL after a grace period.
 *                  Success is exit status 0; anything else (a signal, a timeout) is a failure.
 */
import { spawn } from 'node:child_process';
import { constants, lstatSync, readFileSync, realpathSync, statSync, type Stats } from 'node:fs';
import { delimiter, join } from 'node:path';
import { systemClock, type Clock } from '../util/clock.ts';

// ---------------------------------------------------------------- argv

const WHITE = new Set([' ', '\t', '\n', '\r', '\v', '\f']);
const SIMPLE_ESCAPES: Record<string, string> = { a: '\x07', b: '\b', E: '\x1b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/** Resolve the backslash escape at text[i] (the backslash); returns the character and the index after it. */
function escapeAt(text: string, i: number): [string, number] {
  let j = i + 1;
  const c = text[j];
  if (c === undefined) throw new Error(`script '${text}': a backslash at the end escapes nothing`);
  if (c === 'x' && /[0-9a-fA-F]/.test(text[j + 1] ?? '')) {
    let v = 0;
    j++;
    while (/[0-9a-fA-F]/.test(text[j] ?? '')) v = ((v << 4) | parseInt(text[j++]!, 16)) & 0xff;
    return [String.fromCharCode(v), j];
  }
  if (c === 'c' && text[j + 1] !== undefined) return [String.fromCharCode(text.charCodeAt(j + 1) & 0x1f), j + 2];
  if (c >= '0' && c <= '7') {
    let v = 0;
    for (let n = 0; n < 3 && (text[j] ?? '') >= '0' && (text[j] ?? '') <= '7'; n++) v = (v << 3) + Number(text[j++]);
    return [String.fromCharCode(v & 0xff), j];
  }
  return [SIMPLE_ESCAPES[c] ?? c, j + 1];
}

function unescape(text: string): string {
  let out = '';
  for (let i = 0; i < text.length;) {
    if (text[i] === '\\') {
      const [ch, next] = escapeAt(text, i);
      out += ch;
      i = next;
    } else out += text[i++];
  }
  return out;
}

/** The argv of a script text, as keepalived 2.2.7 splits it (see the top of this file). */
export function splitCommand(text: string): string[] {
  const src = unescape(text);
  const words: string[] = [];
  let i = 0;
  while (i < src.length) {
    while (i < src.length && WHITE.has(src[i]!)) i++;
    if (i >= src.length) break;
    let word = '';
    let quote: string | undefined;
    while (i < src.length) {
      const c = src[i]!;
      if (c === '\\') {
        const [ch, next] = escapeAt(src, i);
        word += ch;
        i = next;
      } else if (quote) {
        if (c === quote) quote = undefined;
        else word += c;
        i++;
      } else if (c === '"' || c === "'") {
        quote = c;
        i++;
      } else if (WHITE.has(c)) {
        break;
      } else {
        word += c;
        i++;
      }
    }
    if (quote) throw new Error(`script '${text}': missing terminating ${quote}`);
    words.push(word);
  }
  if (words.length === 0) throw new Error('script: the command is empty');
  return words;
}

/** keepalived's cmd_str for system(): each argument single-quoted, a leading redirection kept as it is. */
export function shellCommandLine(argv: readonly string[]): string {
  return argv.map((a, i) => (i === 0 && (a.startsWith('<') || a.startsWith('>')) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(' ');
}

// ---------------------------------------------------------------- users

export interface ScriptUser {
  name: string;
  uid: number;
  gid: number;
}

export interface AccountFiles {
  passwd: string;
  group: string;
}

const SYSTEM_ACCOUNTS: AccountFiles = { passwd: '/etc/passwd', group: '/etc/group' };

/** name -> uid/gid from passwd(5) text */
export function parsePasswd(text: string): Map<string, { uid: number; gid: number }> {
  const out = new Map<string, { uid: number; gid: number }>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || !f[0] || line.startsWith('#')) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (Number.isInteger(uid) && Number.isInteger(gid) && !out.has(f[0])) out.set(f[0], { uid, gid });
  }
  return out;
}

/** name -> gid from group(5) text */
export function parseGroup(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 3 || !f[0] || line.startsWith('#')) continue;
    const gid = Number(f[2]);
    if (Number.isInteger(gid) && !out.has(f[0])) out.set(f[0], gid);
  }
  return out;
}

/** script_user NAME [GROUP]: the user's uid and gid, or the group's gid when given; throws naming what is missing. */
export function lookupUser(name: string, group?: string, files: AccountFiles = SYSTEM_ACCOUNTS): ScriptUser {
  const user = parsePasswd(readFileSync(files.passwd, 'utf8')).get(name);
  if (!user) throw new Error(`script user '${name}' does not exist (${files.passwd})`);
  if (group === undefined) return { name, ...user };
  const gid = parseGroup(readFileSync(files.group, 'utf8')).get(group);
  if (gid === undefined) throw new Error(`script group '${group}' does not exist (${files.group})`);
  return { name, uid: user.uid, gid };
}

export const DEFAULT_SCRIPT_USER = 'keepalived_script';

/** The user scripts run as when none is configured, as keepalived chooses it. */
export function defaultUser(scriptSecurity: boolean, files: AccountFiles = SYSTEM_ACCOUNTS): ScriptUser {
  const user = parsePasswd(readFileSync(files.passwd, 'utf8')).get(DEFAULT_SCRIPT_USER);
  if (user) return { name: DEFAULT_SCRIPT_USER, ...user };
  if (scriptSecurity) {
    throw new Error(`script user '${DEFAULT_SCRIPT_USER}' does not exist and enable_script_security is on: set script_user, or create the user`);
  }
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const name = [...parsePasswd(readFileSync(files.passwd, 'utf8'))].find(([, u]) => u.uid === uid)?.[0] ?? String(uid);
  return { name, uid, gid };
}

// ---------------------------------------------------------------- security

export interface PreparedScript {
  /** what the script sees as its argv (argv[0] as written, or as found in PATH) */
  argv: string[];
  /** the file executed */
  file: string;
  /** run through /bin/sh -c */
  shell: boolean;
  user: ScriptUser;
}

export type Prepared = { ok: true; script: PreparedScript; warnings: string[] } | { ok: false; reason: string; warnings: string[] };

export interface PrepareOptions {
  user: ScriptUser;
  /** keepalived enable_script_security */
  scriptSecurity: boolean;
  /** run the text through /bin/sh -c as it is written */
  shell?: boolean;
  /** search path for bare names; default process.env.PATH */
  path?: string;
}

const { S_IXUSR, S_IXGRP, S_IXOTH, S_IWGRP, S_IWOTH } = constants;
/** set-user-id, set-group-id and sticky bits (POSIX; not in Node's fs.constants) */
const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_ISVTX = 0o1000;

/** keepalived's is_executable: may `uid:gid` execute the file (root: any x bit) */
function isExecutable(st: Stats, uid: number, gid: number): boolean {
  if (uid === 0) return (st.mode & (S_IXUSR | S_IXGRP | S_IXOTH)) !== 0;
  if (uid === st.uid) return (st.mode & S_IXUSR) !== 0;
  return gid === st.gid ? (st.mode & S_IXGRP) !== 0 : (st.mode & S_IXOTH) !== 0;
}

/**
 * The first component of `realPath` (from / down to the file) that makes it unsafe to run as
 * root, or undefined: not owned by root; a file, or a directory without the sticky bit, that is
 * world-writable or writable by a group other than root; not a directory / regular file.
 */
export function insecureComponent(realPath: string): string | undefined {
  const parts = realPath.split('/').filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const p = '/' + parts.slice(0, i).join('/');
    let st: Stats;
    try {
      st = lstatSync(p);
    } catch (e) {
      return `${p} cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`;
    }
    const last = i === parts.length;
    if (last ? !st.isFile() : !st.isDirectory()) return `${p} is not a ${last ? 'regular file' : 'directory'}`;
    if (st.uid !== 0) return `${p} is owned by uid ${st.uid}, not root`;
    if ((st.isDirectory() && !(st.mode & S_ISVTX)) || st.isFile()) {
      if (st.mode & S_IWOTH) return `${p} is world-writable`;
      if (st.gid !== 0 && st.mode & S_IWGRP) return `${p} is writable by group ${st.gid}`;
    }
  }
  return undefined;
}

function searchPath(name: string, user: ScriptUser, path: string): string | undefined {
  for (const dir of path.split(delimiter)) {
    const candidate = join(dir || '.', name);
    try {
      const st = statSync(candidate);
      if (st.isFile() && isExecutable(st, user.uid, user.gid)) return candidate;
    } catch { /* not here */ }
  }
  return undefined;
}

export const SECURITY_VIOLATION = 'SECURITY VIOLATION - scripts are being executed but script_security not enabled.';

/** Check a script as keepalived's check_script_secure does; see the top of this file. */
export function prepareScript(command: string, opts: PrepareOptions): Prepared {
  const warnings: string[] = [];
  const refuse = (reason: string): Prepared => ({ ok: false, reason, warnings });
  const { user } = opts;
  if (opts.shell) {
    if (!command.trim()) return refuse('script: the command is empty');
    return { ok: true, script: { argv: ['/bin/sh', '-c', command], file: '/bin/sh', shell: true, user }, warnings };
  }
  let argv: string[];
  try {
    argv = splitCommand(command);
  } catch (e) {
    return refuse((e as Error).message);
  }
  const name = argv[0]!;
  // "</path" tests that a file can be opened: only a shell can do that (keepalived SC_SYSTEM)
  if (/^<\s*\//.test(name)) {
    return { ok: true, script: { argv: ['/bin/sh', '-c', shellCommandLine(argv)], file: '/bin/sh', shell: true, user }, warnings };
  }
  let file = name;
  if (!name.includes('/')) {
    const found = searchPath(name, user, opts.path ?? process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin');
    if (!found) return refuse(`Cannot find script ${name} in path - disabling`);
    warnings.push(`WARNING - script \`${name}\` resolved by path search to \`${found}\`. Please specify full path.`);
    file = found;
    argv[0] = found;
  }
  let real: string;
  let st: Stats;
  try {
    real = realpathSync(file);
    st = statSync(real);
  } catch (e) {
    return refuse(`Script ${file} cannot be accessed - ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (!st.isFile()) return refuse(`Script ${file} is not a regular file - disabling`);
  if (!isExecutable(st, user.uid, user.gid)) return refuse(`WARNING - script '${file}' is not executable for uid:gid ${user.uid}:${user.gid} - disabling.`);
  const runsAsRoot = user.uid === 0 || user.gid === 0 ||
    (st.uid === 0 && (st.mode & S_IXUSR) !== 0 && (st.mode & S_ISUID) !== 0) ||
    (st.gid === 0 && (st.mode & S_IXGRP) !== 0 && (st.mode & S_ISGID) !== 0);
  if (runsAsRoot) {
    const problem = insecureComponent(real);
    if (problem) {
      if (opts.scriptSecurity) return refuse(`Unsafe permissions found for script '${file}' (${problem}) - disabling.`);
      warnings.push(`Unsafe permissions found for script '${file}' (${problem}).`);
    }
    if (!opts.scriptSecurity) warnings.push(SECURITY_VIOLATION);
  }
  return { ok: true, script: { argv, file: real, shell: false, user }, warnings };
}

// ---------------------------------------------------------------- running

export interface RunOptions {
  /** arguments appended to the script's own (notify's INSTANCE name state priority) */
  extraArgs?: readonly string[];
  /** undefined: no time limit (keepalived's notify scripts) */
  timeoutMs?: number;
  /** SIGTERM -> SIGKILL (default 2000 ms) */
  killGraceMs?: number;
  clock?: Clock;
}

export interface RunOutcome {
  status: 'success' | 'failure' | 'timeout' | 'error';
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  durationMs: number;
  /** a spawn failure (status 'error'), with its code (EACCES, ENOENT, EPERM, ...) */
  error?: NodeJS.ErrnoException;
}

function scriptEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.IFS;
  delete env.LD_PRELOAD;
  delete env.LD_LIBRARY_PATH;
  return env;
}

/** Run a prepared script once; never rejects (a failure to start is status 'error'). */
export function runScript(script: PreparedScript, opts: RunOptions = {}): Promise<RunOutcome> {
  const clock = opts.clock ?? systemClock;
  const started = clock.now();
  const args = [...script.argv.slice(1), ...(opts.extraArgs ?? [])];
  const asOther = script.user.uid !== process.getuid?.() || script.user.gid !== process.getgid?.();
  return new Promise((resolve) => {
    let timedOut = false;
    let settled = false;
    const timers: ReturnType<Clock['setTimer']>[] = [];
    const finish = (o: Omit<RunOutcome, 'durationMs'>) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clock.clearTimer(t);
      resolve({ ...o, durationMs: clock.now() - started });
    };
    let child;
    try {
      child = spawn(script.file, args, {
        argv0: script.argv[0],
        detached: true, // its own process group, so a timeout kills what it started too
        stdio: 'ignore',
        env: scriptEnv(),
        ...(asOther ? { uid: script.user.uid, gid: script.user.gid } : {}),
      });
    } catch (e) {
      finish({ status: 'error', exitCode: null, signal: null, error: e as NodeJS.ErrnoException });
      return;
    }
    const killGroup = (signal: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch { /* already gone */ }
    };
    child.on('error', (error: NodeJS.ErrnoException) => finish({ status: 'error', exitCode: null, signal: null, error }));
    child.on('exit', (code, signal) => {
      // whatever the script left behind in its group goes with it on a timeout
      if (timedOut) killGroup('SIGKILL');
      finish({ status: timedOut ? 'timeout' : code === 0 ? 'success' : 'failure', exitCode: code, signal });
    });
    if (opts.timeoutMs !== undefined) {
      timers.push(clock.setTimer(started + opts.timeoutMs, () => {
        timedOut = true;
        killGroup('SIGTERM');
        timers.push(clock.setTimer(clock.now() + (opts.killGraceMs ?? 2000), () => killGroup('SIGKILL')));
      }));
    }
  });
}
