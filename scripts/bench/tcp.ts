/**
 * The TCP scenario of `make bench-e2e`: connections/s and latency through the VIP, with wrk
 * (-H 'Connection: close': every request a new TCP connection; --latency for p50/p99) from the
 * lab's client to the real servers' HTTP (nginx, one worker each), on the lab of
 * scripts/lab/lab.ts (one client, one LB, N reals on one segment):
 *
 *   xlb-dr         the forwarder on lb1's eth0, a DR service VIP:80 over every real; the reals
 *                  answer the client directly;
 *   nftables-dnat  nothing on eth0; lb1's kernel DNATs VIP:80 to the reals (jhash of the client's
 *                  address and port, conntrack on: pps-systems.ts nftDnatRuleset) and the reals
 *                  route the client subnet through lb1 (the lab's 'via-lb'), as IPVS NAT needs;
 *   haproxy        nothing on eth0; HAProxy in TCP mode on lb1 bound to VIP:80, the reals as its
 *                  servers (round robin, no health checks), as a user would run it;
 *   direct         wrk straight at one real: no balancer at all.
 *
 * The lab is created with routing 'direct'; for nftables the reals' route to the client subnet
 * goes via lb1 for that system's runs and back after them. nftables' table exists only during
 * its runs (it would catch HAProxy's connections too). Before a system is measured, GETs
 * through it must be served by several reals (direct: by real1) and xlb's counters must have
 * moved (DR: TX) or not (others).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Agent } from '../lab/agent.ts';
import { createLab, type Lab } from '../lab/lab.ts';
import { ip, nsExec, onCleanup, sysctls } from '../lab/netns.ts';
import { NFT_TABLE, nftDnatRuleset } from './pps-systems.ts';
import { errorShare, parseWrk, wrkArgs, type WrkResult } from './wrk.ts';

export const TCP_SYSTEMS = ['xlb-dr', 'nftables-dnat', 'haproxy', 'direct'] as const;
export type TcpSystem = (typeof TCP_SYSTEMS)[number];

export interface TcpOptions {
  reals: number;
  threads: number;
  connections: number;
  durationS: number;
}

export interface TcpRun extends WrkResult { system: TcpSystem }

type Objects = { xlb: string; baseline: string; gen: string };

/** The HAProxy configuration: TCP mode on VIP:80, the reals as servers. */
export function haproxyConfig(vip: string, port: number, reals: readonly string[]): string {
  return [
    'global',
    '  maxconn 4096',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 30s',
    '  timeout server 30s',
    'frontend vip',
    `  bind ${vip}:${port}`,
    '  default_backend reals',
    'backend reals',
    '  balance roundrobin',
    ...reals.map((r, i) => `  server real${i + 1} ${r}:${port}`),
    '',
  ].join('\n');
}

const HTTP_PORT = 80;
const CHECK_GETS = 40;

export class TcpBench {
  private current: TcpSystem | null = null;

  private constructor(
    readonly lab: Lab, private readonly lb: Agent, private readonly client: Agent,
    private readonly haproxy: ChildProcess, private readonly o: TcpOptions,
  ) {}

  static async start(objects: Objects, o: TcpOptions): Promise<TcpBench> {
    const lab = await createLab({ reals: o.reals, clients: 1, lbs: 1, routing: 'direct', http: 'nginx' });
    const agents: Agent[] = [];
    let haproxy: ChildProcess | undefined;
    try {
      // the client makes tens of thousands of short connections: all the ports, TIME_WAIT reused
      sysctls(lab.client.ns, { 'net.ipv4.ip_local_port_range': '1024 65535', 'net.ipv4.tcp_tw_reuse': 1 });
      const lb = await Agent.start('lb', lab.lb.ns, resolve(import.meta.dirname, 'e2e-lb-agent.ts'),
        [lab.lb.ifname, lab.lb.ifname, objects.gen, objects.baseline, objects.xlb]);
      agents.push(lb.agent);
      await lb.agent.call({
        op: 'configure',
        services: [{ vip: lab.vip4, port: HTTP_PORT, protocol: 'tcp', method: 'dr' }],
        reals: lab.reals.map((r) => ({ address: r.ipv4, mac: r.mac })),
        config: {},
        outMac: lab.lb.mac,
      });
      const client = await Agent.start('client', lab.client.ns, resolve(import.meta.dirname, '../lab/client-agent.ts'));
      agents.push(client.agent);
      const cfg = join(lab.stateDir, 'haproxy.cfg');
      writeFileSync(cfg, haproxyConfig(lab.vip4, HTTP_PORT, lab.reals.map((r) => r.ipv4)));
      haproxy = spawn('ip', ['netns', 'exec', lab.lb.ns, 'haproxy', '-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
      const hp = haproxy;
      let hpErr = '';
      hp.stderr!.on('data', (d: Buffer) => { hpErr += d.toString(); });
      const unregister = onCleanup(() => { if (hp.exitCode === null) hp.kill('SIGKILL'); });
      hp.once('exit', unregister);
      await waitListening(lab.lb.ns, lab.vip4, HTTP_PORT, () => hp.exitCode !== null ? `haproxy exited: ${hpErr.trim()}` : null);
      return new TcpBench(lab, lb.agent, client.agent, hp, o);
    } catch (err) {
      if (haproxy && haproxy.exitCode === null) haproxy.kill('SIGKILL');
      await Promise.all(agents.map((a) => a.stop()));
      lab.destroy();
      throw err;
    }
  }

  async stop(): Promise<void> {
    if (this.haproxy.exitCode === null) {
      const done = new Promise<void>((ok) => this.haproxy.once('exit', () => ok()));
      this.haproxy.kill('SIGTERM');
      await done;
    }
    await Promise.all([this.lb.stop(), this.client.stop()]);
    this.lab.destroy();
  }

  private clientSubnet(): string {
    return `${this.lab.client.ipv4.split('.').slice(0, 3).join('.')}.0/24`;
  }

  /** The reals' route to the clients: on-link, or through lb1 (the lab's 'direct' / 'via-lb'). */
  private routeReals(viaLb: boolean): void {
    for (const r of this.lab.reals) {
      ip(['route', 'replace', this.clientSubnet(), ...(viaLb ? ['via', this.lab.lb.ipv4] : []), 'dev', r.ifname], r.ns);
    }
  }

  private async use(sys: TcpSystem): Promise<void> {
    if (this.current === sys) return;
    // undo the previous system's set-up
    if (this.current === 'xlb-dr') await this.lb.call({ op: 'detach' });
    if (this.current === 'nftables-dnat') {
      nsExec(this.lab.lb.ns, ['nft', 'delete', 'table', 'ip', NFT_TABLE]);
      this.routeReals(false);
    }
    if (sys === 'xlb-dr') await this.lb.call({ op: 'attach', prog: 'xlb' });
    if (sys === 'nftables-dnat') {
      this.routeReals(true);
      nsExec(this.lab.lb.ns, ['nft', '-f', '-'], {
        input: nftDnatRuleset(this.lab.vip4, HTTP_PORT, 'tcp', this.lab.reals.map((r) => ({ address: r.ipv4 }))),
      });
    }
    this.current = sys;
  }

  private url(sys: TcpSystem): string {
    return `http://${sys === 'direct' ? this.lab.reals[0]!.ipv4 : this.lab.vip4}:${HTTP_PORT}/`;
  }

  /** GETs through the system: every one answered, by several reals (direct: real1 only); xlb's counters agree. */
  async check(sys: TcpSystem): Promise<void> {
    await this.use(sys);
    const c0 = (await this.lb.call({ op: 'counters' })).counters as Record<string, string>;
    const r = await this.client.call({ op: 'http', url: this.url(sys), count: CHECK_GETS, concurrency: 4 });
    const c1 = (await this.lb.call({ op: 'counters' })).counters as Record<string, string>;
    const served = r.served as Record<string, number>;
    const errors = r.errors as string[];
    if (errors.length) throw new Error(`${sys}: ${errors.length} of ${CHECK_GETS} GETs failed: ${errors.slice(0, 3).join('; ')}`);
    const names = Object.keys(served);
    if (sys === 'direct' ? names.join() !== this.lab.reals[0]!.name : names.length < Math.min(2, this.lab.reals.length)) {
      throw new Error(`${sys}: the GETs were served by ${JSON.stringify(served)}`);
    }
    const tx = Number(BigInt(c1.tx ?? '0') - BigInt(c0.tx ?? '0'));
    if (sys === 'xlb-dr' ? tx < CHECK_GETS : tx !== 0) {
      throw new Error(`${sys}: xlb sent ${tx} frames (XDP_TX) during ${CHECK_GETS} GETs: ${sys === 'xlb-dr' ? 'not in the path' : 'in the path'}`);
    }
  }

  async measure(sys: TcpSystem): Promise<TcpRun> {
    await this.use(sys);
    const argv = wrkArgs({ url: this.url(sys), threads: this.o.threads, connections: this.o.connections, durationS: this.o.durationS });
    let out: string;
    try {
      // not synchronous: a signal (Ctrl-C) must be handled while wrk runs (the lab's teardown kills wrk too)
      ({ stdout: out } = await promisify(execFile)('ip', ['netns', 'exec', this.lab.client.ns, 'wrk', ...argv], { encoding: 'utf8' }));
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new Error(`wrk failed (${sys}): ${(e.stderr || e.stdout || e.message).trim()}`);
    }
    const r = parseWrk(out);
    const share = errorShare(r);
    if (share > 0.01) throw new Error(`${sys}: ${(share * 100).toFixed(1)}% of wrk's requests failed: ${JSON.stringify(r.socketErrors)}, non-2xx ${r.non2xx}`);
    return { system: sys, ...r };
  }
}

/** Wait (up to 5 s) until something listens on addr:port in the namespace; `dead` says why not, when it knows. */
async function waitListening(ns: string, addr: string, port: number, dead: () => string | null): Promise<void> {
  for (let waited = 0; waited < 5000; waited += 50) {
    const why = dead();
    if (why) throw new Error(why);
    const ss = nsExec(ns, ['ss', '-Hltn', `src ${addr}:${port}`]);
    if (ss.trim()) return;
    await new Promise((ok) => setTimeout(ok, 50));
  }
  throw new Error(`nothing listens on ${addr}:${port} in ${ns} after 5 s`);
}
