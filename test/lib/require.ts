/**
 * Preconditions for test tiers that need the machine: they fail loudly with what is missing,
 * never skip quietly.
 */
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { ADDON_PATH, bpfObjectPath } from '../../src/datapath/bpf/index.ts';

export const REPO = resolve(import.meta.dirname, '../..');
export const XLB_OBJECT = bpfObjectPath('xlb');
export const BASELINE_OBJECT = bpfObjectPath('baseline');

export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('this test needs root (BPF, network namespaces): run `make test` as root');
}

export function requireFile(path: string, hint: string): void {
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`${hint}\``);
}

export function requireCommand(cmd: string, pkg: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
  } catch {
    throw new Error(`'${cmd}' is not installed (Debian package ${pkg}): run scripts/setup`);
  }
}

/** What the namespace lab (scripts/lab/lab.ts) and its agents need. */
export function requireLab(): void {
  requireRoot();
  requireFile(XLB_OBJECT, 'make bpf');
  requireFile(BASELINE_OBJECT, 'make bpf');
  requireFile(ADDON_PATH, 'make native');
  requireCommand('ip', 'iproute2');
  requireCommand('ethtool', 'ethtool');
  requireCommand('nsenter', 'util-linux'); // xlb decap on the reals
}
