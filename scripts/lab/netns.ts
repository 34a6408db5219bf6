/**
 * Network namespace helpers for every namespace topology of the project: the lab
 * (scripts/lab/lab.ts) and the benchmarks build theirs with them. Every name carries a per-run
 * prefix so that several topologies coexist; destroyNamespaces() removes one prefix's namespaces
 * and the processes in them, and onCleanup() runs such removals on exit and on signals.
 * Nothing here touches the root namespace's addresses or routes.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export function ip(args: string[], ns?: string): string {
  const argv = ns ? ['-n', ns, ...args] : args;
  return execFileSync('ip', argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function nsExec(ns: string, cmd: string[], opts: { input?: string } = {}): string {
  return execFileSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', input: opts.input, stdio: ['pipe', 'pipe', 'pipe'] });
}

export function sysctl(ns: string, key: string, value: string): void {
  sysctls(ns, { [key]: value });
}

/** Several sysctls in one call (one process). */
export function sysctls(ns: string, settings: Record<string, string | number>): void {
  nsExec(ns, ['sysctl', '-qw', ...Object.entries(settings).map(([k, v]) => `${k}=${v}`)]);
}

/** Block the thread for `ms` milliseconds (for cleanups, which must be synchronous). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const cleanups = new Set<() => void>();
let handlersInstalled = false;

/** Run every registered cleanup once, the latest first (synchronous: also usable from 'exit'). */
export function cleanupAll(): void {
  for (const f of [...cleanups].reverse()) {
    cleanups.delete(f);
    try { f(); } catch { /* keep going */ }
  }
}

/** Register a synchronous cleanup to run on exit or SIGINT/SIGTERM/SIGHUP; returns its unregister function. */
export function onCleanup(f: () => void): () => void {
  if (!handlersInstalled) {
    handlersInstalled = true;
    process.on('exit', cleanupAll);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(sig, () => {
        process.stderr.write(`\n${sig}: cleaning up\n`);
        cleanupAll();
        process.kill(process.pid, sig);
      });
    }
  }
  cleanups.add(f);
  return () => { cleanups.delete(f); };
}

export function randomPrefix(tag = 'xlb'): string {
  return `${tag}${Math.floor(Math.random() * 0xffff).toString(16).padStart(4, '0')}`;
}

/** The names of every network namespace (`ip netns list`). */
export function listNamespaces(): string[] {
  let list = '';
  try { list = ip(['netns', 'list']); } catch { return []; }
  return list.split('\n').map((line) => line.split(' ')[0] ?? '').filter((name) => name !== '');
}

/** The processes in a namespace (`ip netns pids`); none when it does not exist. */
export function nsPids(ns: string): number[] {
  try {
    return ip(['netns', 'pids', ns]).split('\n').filter((l) => l.trim() !== '').map(Number);
  } catch {
    return [];
  }
}

/** Running, not a zombie (a killed detached process may wait a while for init to reap it). */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Delete every namespace whose name starts with `${prefix}-`, after killing (SIGKILL) the
 * processes in them and the given pids (processes started for them that may not have entered
 * their namespace yet), and waiting up to 3 s for all of them to be gone. Synchronous, so that
 * exit handlers can use it.
 */
export function destroyNamespaces(prefix: string, pids: readonly number[] = []): void {
  const names = listNamespaces().filter((name) => name.startsWith(`${prefix}-`));
  const victims = new Set(pids);
  for (const ns of names) for (const pid of nsPids(ns)) victims.add(pid);
  victims.delete(process.pid);
  for (const pid of victims) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  for (let waited = 0; waited < 3000 && [...victims].some(isAlive); waited += 10) sleepSync(10);
  for (const name of names) {
    try { ip(['netns', 'del', name]); } catch { /* already gone */ }
  }
}
