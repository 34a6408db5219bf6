/**
 * A real keepalived (Debian's 2.2.7) in a network namespace, for the interop tests and the
 * failover benchmark, configured from the same typed configuration as an xlb node
 * (src/vrrp/config.ts), written out as keepalived.conf by keepalivedConf().
 *
 * How it runs: `ip netns exec NS keepalived -n -P -G -f CONF -p/-r/-c PIDFILES` with everything in
 * a temporary directory of its own ($TMPDIR points there too, which is where 2.2.7 writes
 * keepalived.stats and keepalived.data on SIGUSR2 / SIGUSR1), in a process group of its own.
 *   -P   VRRP only;  -n  no daemon (so we hold the parent);  -G  no syslog, and no -l: keepalived
 *        logging to the console was seen to delay its gratuitous ARPs by up to 9 ms (design.md);
 *        `log: true` adds -l -D, for debugging, into keepalived.log in the directory.
 * State: global_defs notify_fifo is a FIFO we made and read (readFifo); keepalived writes `INSTANCE "VI_1" MASTER 100` lines to it. The time of a state change is
 * when we read the line (keepalived notifies after its addresses and first GARPs).
 * Stats: stats() sends SIGUSR2 to the VRRP child and parses keepalived.stats once rewritten.
 * stop(): SIGTERM to the parent (priority 0, addresses removed); kill(): SIGKILL to the whole
 * group, the VRRP child included (killing the parent alone would let the child stop gracefully).
 */
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VirtualIpaddress, VrrpConfig, VrrpInstanceConfig } from '../../src/vrrp/config.ts';
import { PeerBase, readFifo } from './vrrp-client.ts';

export const KEEPALIVED = '/usr/sbin/keepalived';

function vip(v: VirtualIpaddress): string {
  return [v.address, v.brd && `brd ${v.brd}`, v.dev && `dev ${v.dev}`, v.scope && `scope ${v.scope}`, v.label && `label ${v.label}`]
    .filter(Boolean).join(' ');
}

/** The instance keywords written as `keyword value` (or the bare keyword for true). */
const SCALAR_KEYWORDS = [
  'interface', 'virtual_router_id', 'priority', 'advert_int', 'version', 'nopreempt', 'preempt_delay', 'lower_prio_no_advert',
  'garp_master_delay', 'garp_master_repeat', 'garp_master_refresh', 'garp_master_refresh_repeat', 'unicast_src_ip',
  'notify_master', 'notify_backup', 'notify_fault', 'notify_stop', 'notify', 'notify_master_rx_lower_pri',
] as const satisfies readonly (keyof VrrpInstanceConfig)[];

function instanceBlock(i: VrrpInstanceConfig): string[] {
  const l: string[] = [`vrrp_instance ${i.name} {`];
  const kv = (k: string, v: unknown) => {
    if (v === undefined || v === false) return;
    const text = typeof v === 'string' && /\s/.test(v) ? `"${v}"` : String(v);
    l.push(`  ${k}${v === true ? '' : ` ${text}`}`);
  };
  kv('state', i.state ?? 'BACKUP');
  for (const k of SCALAR_KEYWORDS) kv(k, i[k]);
  if (i.authentication) l.push(`  authentication {`, `    auth_type ${i.authentication.auth_type}`, `    auth_pass ${i.authentication.auth_pass}`, '  }');
  if (i.unicast_peer) l.push('  unicast_peer {', ...i.unicast_peer.map((p) => `    ${p}`), '  }');
  l.push('  virtual_ipaddress {', ...i.virtual_ipaddress.map((v) => `    ${vip(v)}`), '  }');
  if (i.virtual_ipaddress_excluded) l.push('  virtual_ipaddress_excluded {', ...i.virtual_ipaddress_excluded.map((v) => `    ${vip(v)}`), '  }');
  const tracked = (key: string, list: { name: string; weight?: number; reverse?: boolean }[] | undefined) => {
    if (list) l.push(`  ${key} {`, ...list.map((t) => `    ${t.name}${t.weight !== undefined ? ` weight ${t.weight}${t.reverse ? ' reverse' : ''}` : ''}`), '  }');
  };
  tracked('track_interface', i.track_interface);
  tracked('track_script', i.track_script);
  tracked('track_file', i.track_file);
  if (i.virtual_routes || i.virtual_rules) throw new Error(`keepalivedConf: virtual_routes / virtual_rules are not written (instance ${i.name})`);
  l.push('}');
  return l;
}

/** keepalived.conf for a typed configuration (what the interop tests use of it). */
export function keepalivedConf(c: VrrpConfig, o: { routerId: string; notifyFifo: string }): string {
  const g = c.global_defs ?? {};
  const globals = [
    `  router_id ${o.routerId}`,
    `  notify_fifo ${o.notifyFifo}`,
    '  max_auto_priority -1',
    ...Object.entries(g).map(([k, v]) => `  ${k}${v === true ? '' : ` ${String(v)}`}`),
  ];
  const lines = ['global_defs {', ...globals, '}'];
  for (const v of c.vrrp_script ?? []) {
    lines.push(`vrrp_script ${v.name} {`, `  script "${v.script.replaceAll('"', '\\"')}"`);
    for (const k of ['interval', 'timeout', 'rise', 'fall', 'user'] as const) if (v[k] !== undefined) lines.push(`  ${k} ${v[k]}`);
    if (v.weight !== undefined) lines.push(`  weight ${v.weight}${v.weight_reverse ? ' reverse' : ''}`);
    if (v.init_fail) lines.push('  init_fail');
    lines.push('}');
  }
  for (const f of c.vrrp_track_file ?? []) {
    lines.push(`vrrp_track_file ${f.name} {`, `  file ${f.file}`);
    if (f.weight !== undefined) lines.push(`  weight ${f.weight}${f.weight_reverse ? ' reverse' : ''}`);
    lines.push('}');
  }
  lines.push(...c.vrrp_instance.flatMap(instanceBlock));
  for (const sg of c.vrrp_sync_group ?? []) lines.push(`vrrp_sync_group ${sg.name} {`, '  group {', ...sg.group.map((m) => `    ${m}`), '  }', '}');
  return `${lines.join('\n')}\n`;
}

/** keepalived's per-instance counters, as its stats file (SIGUSR2) gives them. */
export interface KeepalivedStats {
  advertReceived: number;
  advertSent: number;
  becameMaster: number;
  releasedMaster: number;
  lengthErrors: number;
  ttlErrors: number;
  invalidType: number;
  intervalErrors: number;
  addressListErrors: number;
  authInvalidType: number;
  authTypeMismatch: number;
  authFailure: number;
  priorityZeroReceived: number;
  priorityZeroSent: number;
}

/** Parse keepalived.stats (2.2.7's layout: sections by indentation). */
export function parseKeepalivedStats(text: string): Record<string, KeepalivedStats> {
  const out: Record<string, KeepalivedStats> = {};
  let cur: KeepalivedStats | undefined;
  let section = '';
  const keys: Record<string, keyof KeepalivedStats> = {
    'Advertisements/Received': 'advertReceived', 'Advertisements/Sent': 'advertSent', '/Became master': 'becameMaster',
    '/Released master': 'releasedMaster', 'Packet Errors/Length': 'lengthErrors', 'Packet Errors/TTL': 'ttlErrors',
    'Packet Errors/Invalid Type': 'invalidType', 'Packet Errors/Advertisement Interval': 'intervalErrors',
    'Packet Errors/Address List': 'addressListErrors', 'Authentication Errors/Invalid Type': 'authInvalidType',
    'Authentication Errors/Type Mismatch': 'authTypeMismatch', 'Authentication Errors/Failure': 'authFailure',
    'Priority Zero/Received': 'priorityZeroReceived', 'Priority Zero/Sent': 'priorityZeroSent',
  };
  for (const raw of text.split('\n')) {
    const inst = /^VRRP Instance: (.+)$/.exec(raw);
    if (inst) {
      cur = Object.fromEntries(Object.values(keys).map((k) => [k, 0])) as unknown as KeepalivedStats;
      out[inst[1]!.trim()] = cur;
      section = '';
      continue;
    }
    const m = /^( +)([^:]+):\s*(\d+)?\s*$/.exec(raw);
    if (!m || !cur) continue;
    const [, indent, label, value] = m;
    if (indent!.length === 2) {
      if (value === undefined) section = label!.trim();
      else {
        section = '';
        const k = keys[`/${label!.trim()}`];
        if (k) cur[k] = Number(value);
      }
    } else if (value !== undefined) {
      const k = keys[`${section}/${label!.trim()}`];
      if (k) cur[k] = Number(value);
    }
  }
  return out;
}

export class KeepalivedPeer extends PeerBase {
  readonly kind = 'keepalived' as const;
  private fifo: Socket | null = null;

  private constructor(name: string, proc: ReturnType<typeof spawn>, readonly dir: string) {
    super(name, proc);
  }

  static async start(name: string, ns: string, config: VrrpConfig, o: { log?: boolean } = {}): Promise<KeepalivedPeer> {
    if (!existsSync(KEEPALIVED)) throw new Error(`${KEEPALIVED} is missing (Debian package keepalived): run scripts/setup`);
    const dir = mkdtempSync(join(tmpdir(), 'xlb-keepalived-'));
    const fifoPath = join(dir, 'notify.fifo');
    execFileSync('mkfifo', ['-m', '600', fifoPath]);
    const conf = join(dir, 'keepalived.conf');
    writeFileSync(conf, keepalivedConf(config, { routerId: name, notifyFifo: fifoPath }));
    const logFd = o.log ? openSync(join(dir, 'keepalived.log'), 'w') : 'ignore';
    const proc = spawn('ip', ['netns', 'exec', ns, KEEPALIVED, '-n', '-P', '-G', ...(o.log ? ['-l', '-D'] : []),
      '-f', conf, '-p', join(dir, 'keepalived.pid'), '-r', join(dir, 'vrrp.pid'), '-c', join(dir, 'checkers.pid')], {
      detached: true, stdio: ['ignore', logFd, logFd], env: { ...process.env, TMPDIR: dir },
    });
    if (typeof logFd === 'number') closeSync(logFd);
    const peer = new KeepalivedPeer(name, proc, dir);
    peer.fifo = readFifo(fifoPath, (line) => {
      const m = /^INSTANCE "([^"]+)" (MASTER|BACKUP|FAULT|STOP|DELETED) (\d+)/.exec(line);
      if (m) peer.record({ instance: m[1]!, state: m[2]!, priority: Number(m[3]), wallMs: Date.now() });
    });
    // started once the VRRP child has written its pid file
    for (let waited = 0; !existsSync(join(dir, 'vrrp.pid')); waited += 10) {
      if (peer.exited || waited > 5000) {
        const log = o.log ? readFileSync(join(dir, 'keepalived.log'), 'utf8') : '(run with log: true to see its log)';
        await peer.kill();
        throw new Error(`keepalived ${name} did not start: ${log}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    return peer;
  }

  /** Its log (started with `log: true`), or '' */
  log(): string {
    const f = join(this.dir, 'keepalived.log');
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  }

  private vrrpPid(): number {
    return Number(readFileSync(join(this.dir, 'vrrp.pid'), 'utf8').trim());
  }

  /** SIGUSR2 to the VRRP process, then its freshly written stats file. */
  async stats(): Promise<Record<string, KeepalivedStats>> {
    const file = join(this.dir, 'keepalived.stats');
    const before = existsSync(file) ? statSync(file).mtimeMs : 0;
    process.kill(this.vrrpPid(), 'SIGUSR2');
    for (let waited = 0; waited < 3000; waited += 10) {
      await new Promise((r) => setTimeout(r, 10));
      if (existsSync(file) && statSync(file).mtimeMs !== before) {
        await new Promise((r) => setTimeout(r, 20)); // written in one go, but let it finish
        return parseKeepalivedStats(readFileSync(file, 'utf8'));
      }
    }
    throw new Error(`keepalived ${this.name}: no stats file after SIGUSR2`);
  }

  private cleanup(): void {
    this.fifo?.destroy();
    this.fifo = null;
    rmSync(this.dir, { recursive: true, force: true });
  }

  override async stop(): Promise<void> {
    await super.stop();
    this.cleanup();
  }

  override async kill(): Promise<void> {
    await super.kill();
    this.cleanup();
  }
}
