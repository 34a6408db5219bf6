/**
 * The namespace lab: clients, load balancers and real servers, each host a network namespace
 * whose eth0 is a veth into one bridge (br0 in <prefix>-sw): one L2 segment carrying two subnets.
 * Used by `scripts/lab/lab up|down`, the demo, the netns tests and the end-to-end benchmark.
 *
 * Addressing (the lab's reference). Only 198.18.0.0/15 and fd00::/8; an IPv6 address ends in the
 * same digits as its IPv4 twin (fd00::11 is 198.18.0.11):
 *
 *                      server side                      client side
 *                      198.18.0.0/24, fd00::/64         198.18.1.0/24, fd00:1::/64
 *   lbK (K = 1..8)     198.18.0.(1+K)   fd00::(1+K)     198.18.1.(1+K)   fd00:1::(1+K)
 *   realK (1..89)      198.18.0.(10+K)  fd00::(10+K)
 *   clientK (1..89)                                     198.18.1.(10+K)  fd00:1::(10+K)
 *   VIP                198.18.0.100     fd00::100       on lb1's eth0 (VRRP will move it) and
 *                                                       on every real's lo
 *   lbK's full-NAT     198.18.0.(200+K) fd00::(200+K)   on lbK's eth0
 *   source
 *   lbK's TUN source   its server-side address (the outer source of its IP-in-IP packets)
 *
 * e.g. lb1 198.18.0.2 and 198.18.1.2, real1 198.18.0.11, client1 198.18.1.11.
 *
 * Routes:
 *  - clients have the server subnet on-link: they ARP/ND for the VIP, so the VIP goes wherever
 *    an LB announces it (no gateway to move);
 *  - LBs hold both subnets and forward between them (ip_forward, no redirects sent);
 *  - reals reach the client subnet by the lab's routing mode:
 *      'direct'  on-link: replies go straight to the client (DR, TUN; full-NAT replies go to the
 *                LB's full-NAT address, which is on the server subnet, in either mode)
 *      'via-lb'  via lb1's server-side address: replies pass the LB holding the VIP (IPVS NAT)
 *  - reals hold the VIP on lo but neither answer ARP for it nor use it as an ARP source
 *    (arp_ignore=1, arp_announce=2), and ignore ICMP redirects.
 *
 * Two things a veth lab needs that a NIC does not: the hosts turn TX checksum offload off (veth
 * leaves TCP/UDP checksums to "hardware", CHECKSUM_PARTIAL, and a frame that XDP forwards keeps
 * the hole), and every switch port carries an XDP pass program (a veth takes XDP_TX / redirected
 * frames only when its peer has NAPI; with GRO alone frames were seen to wait hundreds of ms).
 *
 * Every real runs the services of scripts/lab/services.ts (HTTP :80 and :8080, UDP and TCP
 * echo :7), detached. With `decap`, every real also runs `xlb decap attach eth0` (the TUN
 * decapsulation program, bin/xlb), accepting tunnels from the LBs' TUN sources only. The state directory /run/xlb-lab/<prefix> (or $XLB_LAB_STATE_ROOT/<prefix>)
 * holds lab.json (the description) and the services' files. destroy() / destroyLab() kill every
 * process in the lab's namespaces, remove the decapsulation program's pins of its hosts (`xlb
 * decap` pins per namespace and interface), delete the namespaces (with them the veths and any
 * XDP program on them) and remove the state directory; createLab() registers that with onCleanup(), so an exit or a
 * signal during creation, or before destroy(), removes the lab too (persist() keeps it: `lab up`).
 * Labs with different prefixes coexist: they share nothing (a prefix has no '-', so no lab's
 * names start with another's "<prefix>-").
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { bpfObjectPath, removePinDir, XLB_PIN_ROOT } from '../../src/datapath/bpf/index.ts';
import { DECAP_PIN_ROOT, pinDir } from '../../src/datapath/xdp/decap.ts';
import { destroyNamespaces, ip, listNamespaces, onCleanup, randomPrefix, sysctls } from './netns.ts';
import { ECHO_PORT, HTTP_PORTS, HTTP_SERVERS, startRealServices, type HttpServerKind } from './services.ts';

export const ROUTINGS = ['direct', 'via-lb'] as const;
export type Routing = (typeof ROUTINGS)[number];

/** Where labs keep their state; XLB_LAB_STATE_ROOT moves it (tests use their own, so `down --all` stays theirs). */
export const LAB_STATE_ROOT = process.env.XLB_LAB_STATE_ROOT ?? '/run/xlb-lab';
export const MAX_LBS = 8;
export const MAX_HOSTS = 89;
const SERVER4 = '198.18.0.';
const SERVER6 = 'fd00::';
const CLIENT4 = '198.18.1.';
const CLIENT6 = 'fd00:1::';
const VIP = 100;
const LB_BASE = 1;
const HOST_BASE = 10;
const NAT_BASE = 200;
const PREFIX_RE = /^[a-z][a-z0-9]{0,11}$/;
const BASELINE_OBJECT = bpfObjectPath('baseline');
const XLB_CLI = resolve(import.meta.dirname, '../../bin/xlb');

export interface LabHost {
  name: string;         // 'client1', 'lb1', 'real1', ...
  ns: string;           // its namespace: <prefix>-<name>
  ifname: string;       // 'eth0' in every host
  mac: string;
  ipv4: string;         // its address on its subnet (server side for LBs)
  ipv6: string;
}

export interface LabLb extends LabHost {
  clientIpv4: string;   // its address on the client subnet
  clientIpv6: string;
  natSrc4: string;      // its full-NAT source addresses
  natSrc6: string;
}

/** What a lab is, as plain data (lab.json; `lab up --json` prints it). */
export interface LabDescription {
  prefix: string;
  routing: Routing;
  http: HttpServerKind;
  /** `xlb decap` attached on every real's eth0 */
  decap: boolean;
  stateDir: string;
  vip4: string;
  vip6: string;
  ports: { http: number[]; echo: number };
  clients: LabHost[];
  lbs: LabLb[];
  reals: LabHost[];
}

export interface Lab extends LabDescription {
  client: LabHost;      // clients[0]
  lb: LabLb;            // lbs[0], the one holding the VIP
  /** Remove the lab (processes, namespaces, state). Idempotent. */
  destroy(): void;
  /** Keep the lab after this process exits (no removal on exit or signal). */
  persist(): void;
}

export interface LabOptions {
  prefix?: string;
  clients?: number;
  lbs?: number;
  reals?: number;
  routing?: Routing;
  http?: HttpServerKind;
  /** attach the TUN decapsulation program (`xlb decap attach eth0`) on every real */
  decap?: boolean;
  /** progress lines, e.g. for a CLI */
  log?: (line: string) => void;
}

export function labStateDir(prefix: string): string {
  return join(LAB_STATE_ROOT, prefix);
}

function count(what: string, v: number | undefined, dflt: number, max: number): number {
  const n = v ?? dflt;
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${what} ${n} is not in 1..${max}`);
  return n;
}

export function checkPrefix(prefix: string): string {
  if (!PREFIX_RE.test(prefix)) {
    throw new Error(`lab prefix '${prefix}' must be a lower-case letter then up to 11 letters or digits (no '-')`);
  }
  return prefix;
}

/** Is anything of a lab with this prefix there (namespaces or state)? */
export function labExists(prefix: string): boolean {
  return existsSync(labStateDir(prefix)) || listNamespaces().some((n) => n.startsWith(`${prefix}-`));
}

/**
 * Remove a lab: kill the processes in its namespaces (and `pids`, processes started for it that
 * may not have entered them yet), delete the namespaces, remove the `xlb decap` pins of its hosts'
 * eth0 and its state directory. Synchronous.
 */
export function destroyLab(prefix: string, pids: readonly number[] = []): void {
  checkPrefix(prefix);
  const pins = listNamespaces().filter((n) => n.startsWith(`${prefix}-`)).flatMap((ns) => {
    try {
      return [pinDir('eth0', statSync(`/run/netns/${ns}`).ino)];
    } catch {
      return []; // deleted meanwhile
    }
  });
  destroyNamespaces(prefix, pids);
  removeDecapPins(pins);
  rmSync(labStateDir(prefix), { recursive: true, force: true });
}

/** Remove `xlb decap` pin directories, then their parents if that leaves them empty. */
function removeDecapPins(dirs: readonly string[]): void {
  for (const d of dirs) if (existsSync(d)) removePinDir(d, [DECAP_PIN_ROOT, XLB_PIN_ROOT]);
}

/** The prefixes of the labs made by createLab that are still there (by their state directory). */
export function listLabs(): string[] {
  if (!existsSync(LAB_STATE_ROOT)) return [];
  return readdirSync(LAB_STATE_ROOT).filter((p) => PREFIX_RE.test(p)).sort();
}

/** The description of a running lab (e.g. one brought up by `lab up`). */
export function loadLab(prefix: string): LabDescription {
  const file = join(labStateDir(checkPrefix(prefix)), 'lab.json');
  if (!existsSync(file)) throw new Error(`no lab '${prefix}' (${file} is missing; is it still coming up?)`);
  return JSON.parse(readFileSync(file, 'utf8')) as LabDescription;
}

function macOf(ns: string, ifname: string): string {
  const info = JSON.parse(ip(['-j', 'link', 'show', 'dev', ifname], ns)) as { address: string }[];
  const mac = info[0]?.address;
  if (!mac) throw new Error(`no MAC for ${ifname} in ${ns}`);
  return mac;
}

export async function createLab(opts: LabOptions = {}): Promise<Lab> {
  const prefix = checkPrefix(opts.prefix ?? randomPrefix());
  const nClients = count('clients', opts.clients, 1, MAX_HOSTS);
  const nLbs = count('lbs', opts.lbs, 1, MAX_LBS);
  const nReals = count('reals', opts.reals, 2, MAX_HOSTS);
  const routing = opts.routing ?? 'direct';
  if (!ROUTINGS.includes(routing)) throw new Error(`routing '${String(routing)}' is not one of ${ROUTINGS.join(', ')}`);
  const http = opts.http ?? 'node';
  if (!HTTP_SERVERS.includes(http)) throw new Error(`http server '${String(http)}' is not one of ${HTTP_SERVERS.join(', ')}`);
  const decap = opts.decap ?? false;
  if (!existsSync(BASELINE_OBJECT)) throw new Error(`${BASELINE_OBJECT} is missing: run \`make bpf\``);
  if (labExists(prefix)) {
    throw new Error(`a lab with prefix '${prefix}' exists: remove it first (scripts/lab/lab down --prefix ${prefix})`);
  }
  const log = opts.log ?? (() => undefined);
  const stateDir = labStateDir(prefix);
  const pids: number[] = [];
  const remove = () => destroyLab(prefix, pids);
  let unregister = onCleanup(remove);

  try {
    mkdirSync(stateDir, { recursive: true });
    const sw = `${prefix}-sw`;
    ip(['netns', 'add', sw]);
    sysctls(sw, { 'net.ipv6.conf.all.disable_ipv6': 1, 'net.ipv6.conf.default.disable_ipv6': 1 });
    // no multicast snooping: ND's solicited-node multicast is flooded, whoever has (not) reported
    ip(['link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0'], sw);
    ip(['link', 'set', 'br0', 'up'], sw);
    log(`switch ${sw}`);

    const host = (name: string, v4: string[], v6: string[], settings: Record<string, number>): LabHost => {
      const ns = `${prefix}-${name}`;
      const port = `p-${name}`;
      ip(['netns', 'add', ns]);
      // before eth0 exists, so that it inherits the defaults
      sysctls(ns, {
        'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0,
        'net.ipv4.conf.all.rp_filter': 0, 'net.ipv4.conf.default.rp_filter': 0,
        ...settings,
      });
      ip(['link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', sw]);
      ip(['link', 'set', port, 'master', 'br0', 'up'], sw);
      ip(['link', 'set', 'dev', port, 'xdpdrv', 'object', BASELINE_OBJECT, 'section', 'xdp', 'program', 'xdp_pass'], sw);
      ip(['link', 'set', 'lo', 'up'], ns);
      for (const a of v4) ip(['addr', 'add', a, 'dev', 'eth0'], ns);
      for (const a of v6) ip(['addr', 'add', a, 'dev', 'eth0', 'nodad'], ns);
      ip(['link', 'set', 'eth0', 'up'], ns);
      execFileSync('ip', ['netns', 'exec', ns, 'ethtool', '-K', 'eth0', 'tx', 'off'], { stdio: 'ignore' });
      log(`host ${name} ${ns}`);
      const [ipv4 = '', ipv6 = ''] = [v4[0]?.split('/')[0], v6[0]?.split('/')[0]];
      return { name, ns, ifname: 'eth0', mac: macOf(ns, 'eth0'), ipv4, ipv6 };
    };

    const vip4 = `${SERVER4}${VIP}`;
    const vip6 = `${SERVER6}${VIP}`;
    const lbs: LabLb[] = [];
    for (let k = 1; k <= nLbs; k++) {
      const n = LB_BASE + k;
      const natSrc4 = `${SERVER4}${NAT_BASE + k}`;
      const natSrc6 = `${SERVER6}${NAT_BASE + k}`;
      const vip = k === 1;
      const h = host(`lb${k}`,
        [`${SERVER4}${n}/24`, `${CLIENT4}${n}/24`, `${natSrc4}/32`, ...(vip ? [`${vip4}/32`] : [])],
        [`${SERVER6}${n}/64`, `${CLIENT6}${n}/64`, `${natSrc6}/128`, ...(vip ? [`${vip6}/128`] : [])],
        {
          'net.ipv4.ip_forward': 1, 'net.ipv6.conf.all.forwarding': 1,
          'net.ipv4.conf.all.send_redirects': 0, 'net.ipv4.conf.default.send_redirects': 0,
        });
      lbs.push({ ...h, clientIpv4: `${CLIENT4}${n}`, clientIpv6: `${CLIENT6}${n}`, natSrc4, natSrc6 });
    }
    const lb1 = lbs[0]!;

    const reals: LabHost[] = [];
    for (let k = 1; k <= nReals; k++) {
      const n = HOST_BASE + k;
      const r = host(`real${k}`, [`${SERVER4}${n}/24`], [`${SERVER6}${n}/64`], {
        'net.ipv4.conf.all.arp_ignore': 1, 'net.ipv4.conf.all.arp_announce': 2,
        'net.ipv4.conf.all.accept_redirects': 0, 'net.ipv4.conf.default.accept_redirects': 0,
        'net.ipv6.conf.all.accept_redirects': 0, 'net.ipv6.conf.default.accept_redirects': 0,
      });
      ip(['addr', 'add', `${vip4}/32`, 'dev', 'lo'], r.ns);
      ip(['addr', 'add', `${vip6}/128`, 'dev', 'lo'], r.ns);
      const via4 = routing === 'direct' ? ['dev', 'eth0'] : ['via', lb1.ipv4, 'dev', 'eth0'];
      const via6 = routing === 'direct' ? ['dev', 'eth0'] : ['via', lb1.ipv6, 'dev', 'eth0'];
      ip(['route', 'add', `${CLIENT4}0/24`, ...via4], r.ns);
      ip(['-6', 'route', 'add', `${CLIENT6}/64`, ...via6], r.ns);
      reals.push(r);
    }

    const clients: LabHost[] = [];
    for (let k = 1; k <= nClients; k++) {
      const n = HOST_BASE + k;
      const c = host(`client${k}`, [`${CLIENT4}${n}/24`], [`${CLIENT6}${n}/64`], {});
      ip(['route', 'add', `${SERVER4}0/24`, 'dev', 'eth0'], c.ns);
      ip(['-6', 'route', 'add', `${SERVER6}/64`, 'dev', 'eth0'], c.ns);
      clients.push(c);
    }

    log(`services (${http}) on ${reals.map((r) => r.name).join(', ')}`);
    const started: Promise<void>[] = reals.map((r) => startRealServices({
      ns: r.ns, name: r.name, dir: join(stateDir, r.name), http, onPid: (pid) => pids.push(pid),
    }));
    if (decap) {
      const allow = lbs.flatMap((l) => [`${l.ipv4}/32`, `${l.ipv6}/128`]);
      started.push(...reals.map((r) => attachDecap(r.ns, allow)));
    }
    await Promise.all(started);

    const description: LabDescription = {
      prefix, routing, http, decap, stateDir, vip4, vip6,
      ports: { http: [...HTTP_PORTS], echo: ECHO_PORT },
      clients, lbs, reals,
    };
    writeFileSync(join(stateDir, 'lab.json'), `${JSON.stringify(description, null, 2)}\n`);
    log('ready');
    return {
      ...description,
      client: clients[0]!,
      lb: lb1,
      destroy() {
        remove();
        unregister();
      },
      persist() {
        unregister();
        unregister = () => undefined;
      },
    };
  } catch (err) {
    remove();
    unregister();
    throw err;
  }
}

/** `xlb decap attach eth0` in a namespace (nsenter: `ip netns exec` would hide /sys/fs/bpf, where it pins). */
async function attachDecap(ns: string, allowSrc: string[]): Promise<void> {
  try {
    await promisify(execFile)('nsenter', [`--net=/run/netns/${ns}`, XLB_CLI, 'decap', 'attach', 'eth0', '--allow-src', ...allowSrc]);
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`${ns}: xlb decap attach failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

/** The description for people: one line per host. */
export function formatLab(d: LabDescription): string {
  const row = (h: LabHost, extra = '') => `  ${h.name.padEnd(9)} ${h.ns.padEnd(20)} ${h.ipv4.padEnd(13)} ${h.ipv6.padEnd(12)} ${h.mac}${extra}`;
  return [
    `lab ${d.prefix}: routing ${d.routing}, HTTP by ${d.http}${d.decap ? ', xlb decap on the reals' : ''}, state in ${d.stateDir}`,
    `  VIP ${d.vip4} ${d.vip6} (on ${d.lbs[0]?.name ?? '?'}'s eth0 and every real's lo)`,
    `  services on every real: HTTP :${d.ports.http.join(' :')}, UDP and TCP echo :${d.ports.echo}`,
    ...d.lbs.map((h) => row(h, `  client side ${h.clientIpv4} ${h.clientIpv6}, full-NAT source ${h.natSrc4} ${h.natSrc6}`)),
    ...d.reals.map((h) => row(h)),
    ...d.clients.map((h) => row(h)),
    `  enter a host: ip netns exec ${d.clients[0]?.ns ?? `${d.prefix}-client1`} bash`,
    '',
  ].join('\n');
}
