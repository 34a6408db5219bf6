/**
 * The namespace lab: a client, a load balancer and N real servers on one L2 segment (a bridge
 * in a "switch" namespace), each host a network namespace joined by a veth pair. Addresses
 * come from 198.18.0.0/15 and fd00::/8 only; nothing is added to the root namespace.
 *
 *   client (198.18.0.1) ──┐
 *   lb     (198.18.0.2) ──┼── br0 in <prefix>-sw
 *   realN  (198.18.0.1N) ─┘
 *
 * Every name carries a per-run prefix so that two labs can coexist; destroy() removes all of
 * it, and createLab() registers it with onCleanup() so that exit and signals remove it too.
 * The helpers here (ip, sysctl, nsExec, onCleanup) serve every namespace topology of the
 * project: the benchmarks build theirs with them as well.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { bpfObjectPath } from '../../src/datapath/bpf/index.ts';

const BASELINE_OBJECT = bpfObjectPath('baseline');

export interface LabHost {
  name: string;         // role: 'client', 'lb', 'real1', ...
  ns: string;           // namespace name
  ipv4: string;
  ipv6: string;
  mac: string;
  ifname: string;       // 'eth0' in every host
}

export interface Lab {
  prefix: string;
  vip4: string;
  vip6: string;
  client: LabHost;
  lb: LabHost;
  reals: LabHost[];
  destroy(): void;
}

export function ip(args: string[], ns?: string): string {
  const argv = ns ? ['-n', ns, ...args] : args;
  return execFileSync('ip', argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function nsExec(ns: string, cmd: string[], opts: { input?: string } = {}): string {
  return execFileSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', input: opts.input, stdio: ['pipe', 'pipe', 'pipe'] });
}

export function nsSpawn(ns: string, cmd: string[]): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: ['pipe', 'pipe', 'inherit'] });
}

export function sysctl(ns: string, key: string, value: string): void {
  nsExec(ns, ['sysctl', '-qw', `${key}=${value}`]);
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

/** Delete every namespace whose name starts with the prefix. */
export function destroyNamespaces(prefix: string): void {
  let list = '';
  try { list = ip(['netns', 'list']); } catch { return; }
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    if (name && name.startsWith(`${prefix}-`)) {
      try { ip(['netns', 'del', name]); } catch { /* already gone */ }
    }
  }
}

function macOf(ns: string, ifname: string): string {
  const info = JSON.parse(ip(['-j', 'link', 'show', 'dev', ifname], ns)) as { address: string }[];
  const mac = info[0]?.address;
  if (!mac) throw new Error(`no MAC for ${ifname} in ${ns}`);
  return mac;
}

export function createLab(opts: { prefix?: string; reals?: number } = {}): Lab {
  const prefix = opts.prefix ?? randomPrefix();
  const nReals = opts.reals ?? 2;
  if (nReals < 1 || nReals > 50) throw new Error(`reals ${nReals} is not in 1..50`);
  const sw = `${prefix}-sw`;
  if (!existsSync(BASELINE_OBJECT)) throw new Error(`${BASELINE_OBJECT} is missing: run \`make bpf\``);
  const cleanup = () => destroyNamespaces(prefix);
  const unregister = onCleanup(cleanup);

  try {
    ip(['netns', 'add', sw]);
    ip(['link', 'add', 'br0', 'type', 'bridge'], sw);
    ip(['link', 'set', 'br0', 'up'], sw);
    sysctl(sw, 'net.ipv6.conf.all.disable_ipv6', '1');

    const host = (name: string, index: number): LabHost => {
      const ns = `${prefix}-${name}`;
      const port = `p-${name}`.slice(0, 15);
      ip(['netns', 'add', ns]);
      ip(['link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', sw]);
      ip(['link', 'set', port, 'master', 'br0', 'up'], sw);
      // A veth accepts XDP_TX / redirected frames only when its peer has NAPI. With GRO on (no
      // program) frames were seen to wait in the ring for hundreds of ms; an XDP pass program on
      // the switch port gives it NAPI that is polled at once.
      ip(['link', 'set', 'dev', port, 'xdpdrv', 'object', BASELINE_OBJECT, 'section', 'xdp', 'program', 'xdp_pass'], sw);
      const ipv4 = `198.18.0.${index}`;
      const ipv6 = `fd00::${index.toString(16)}`;
      sysctl(ns, 'net.ipv6.conf.all.accept_dad', '0');
      sysctl(ns, 'net.ipv6.conf.default.accept_dad', '0');
      ip(['link', 'set', 'lo', 'up'], ns);
      ip(['addr', 'add', `${ipv4}/24`, 'dev', 'eth0'], ns);
      ip(['addr', 'add', `${ipv6}/64`, 'dev', 'eth0', 'nodad'], ns);
      ip(['link', 'set', 'eth0', 'up'], ns);
      // veth leaves TCP/UDP checksums to "hardware" (CHECKSUM_PARTIAL); a frame that XDP forwards
      // keeps the hole, as it never would from a real NIC: make the hosts write full checksums
      execFileSync('ip', ['netns', 'exec', ns, 'ethtool', '-K', 'eth0', 'tx', 'off'], { stdio: 'ignore' });
      return { name, ns, ipv4, ipv6, mac: macOf(ns, 'eth0'), ifname: 'eth0' };
    };

    const client = host('client', 1);
    const lb = host('lb', 2);
    const reals = Array.from({ length: nReals }, (_, i) => host(`real${i + 1}`, 11 + i));
    const vip4 = '198.18.0.100';
    const vip6 = 'fd00::100';
    // DR: every real holds the VIP on lo and neither answers ARP/ND for it nor uses it as a source
    for (const r of reals) {
      sysctl(r.ns, 'net.ipv4.conf.all.arp_ignore', '1');
      sysctl(r.ns, 'net.ipv4.conf.all.arp_announce', '2');
      ip(['addr', 'add', `${vip4}/32`, 'dev', 'lo'], r.ns);
      ip(['addr', 'add', `${vip6}/128`, 'dev', 'lo'], r.ns);
    }
    // the LB owns the VIP on the segment (VRRP will move it later)
    ip(['addr', 'add', `${vip4}/32`, 'dev', 'eth0'], lb.ns);
    ip(['addr', 'add', `${vip6}/128`, 'dev', 'eth0', 'nodad'], lb.ns);
    return {
      prefix, vip4, vip6, client, lb, reals,
      destroy() {
        cleanup();
        unregister();
      },
    };
  } catch (err) {
    cleanup();
    unregister();
    throw err;
  }
}
