/**
 * Control side of the XDP forwarder (bpf/xlb.bpf.c): loads the object and programs services,
 * reals and Maglev tables into its maps.
 *
 * Consistency rules, so that no packet sees a half-written state:
 *  - a real's map entry is written once, before any table refers to it, and never changed
 *    while in use: a change of MAC, method or interface gives the real a new id. The one
 *    exception is the drained flag (weight 0), a single byte rewritten in place: a packet sees
 *    it set or clear, and only persistence templates read it;
 *  - a service's Maglev table is a new inner map, filled completely, then swapped into the
 *    outer map with one update;
 *  - a service entry is inserted only after its table is in place, and deleted first;
 *  - removed reals are deactivated after the swap, so connection-table entries that still
 *    point at them are rescheduled by the program (ct_stale);
 *  - ids are handed out again in first-freed, first-reused order, so a stale connection-table
 *    entry is very unlikely to meet its id reused (the program also checks the real is active);
 *  - the config's NAT flag (look replies up in the NAT state) is set before the first NAT or
 *    full-NAT real is written and cleared after the last one is gone; the forwarder keeps it from
 *    the reals it programs, setConfig keeps it as it is. The same for the nat_ports bitmap (the
 *    ports NAT replies come from): a service's new ports are added before its reals are written,
 *    ports no longer used removed after; only changed words are written (each one 8-byte store).
 *    Likewise the vip_filter bitmap (the bits of the VIP addresses): an address's bit is set
 *    before its first service entry and marker are written, cleared after the last are deleted.
 *
 * Persistence (IPVS persistence_timeout / persistence_granularity; ServiceSpec.persistence):
 * the program keeps a template per {service, client address masked to the granularity} naming
 * the real the client network was sent to; while it is live (seen within the timeout) every new
 * connection of the client network goes to that real, whatever happens to the set of reals,
 * unless the real was removed or drained (weight 0: IPVS with expire_quiescent_template=1).
 * Without a usable template Maglev chooses by the masked client address. The control plane
 * writes no templates; persistList/clearPersist read and clear them.
 *
 * NAT and full-NAT (IPVS "masquerade", and full-NAT as the FNAT patches have it): the program
 * rewrites the destination to the real's address and port (full-NAT: also the source, to
 * natSrc4/natSrc6 and a port it chooses) and keeps per-connection state, keyed by what the real
 * sends back, to translate replies (bpf/lib/nat.h). A NAT real must route its replies through the
 * balancer (its gateway); full-NAT replies come to natSrc4/natSrc6, which must be an address of
 * the balancer's that nothing else uses (not a VIP: refused here), answered to ARP/ND.
 *
 * Hitless restart (pinned instances). The API the daemon uses:
 *
 *   const fw = XdpForwarder.open({ instance });   // create and pin, or adopt what is pinned
 *   fw.adopted                                    // true: an earlier process's state was taken over
 *   fw.listServices()                             // what is programmed (after adoption: read back)
 *   fw.attach(ifindex, 'native')                  // no-op where it is attached already
 *   fw.close()                                    // exit: pins and attachments stay, packets flow
 *   await fw.destroy()                            // clean stop: detach everywhere, remove the pins
 *   await XdpForwarder.purge({ instance })        // the same without adopting (incompatible pins)
 *
 * Pins: /sys/fs/bpf/xlb/<instance>/ (DEFAULT_INSTANCE 'default' for the daemon; the directory is
 * the same from every network namespace) holds the program ('prog') and every map under its name
 * in bpf/xlb.bpf.c. They are published whole: pinned in /sys/fs/bpf/xlb/staging/<instance>-<pid>,
 * then renamed into place. Without an instance nothing is pinned (tests, benchmarks).
 *
 * Attachment: by netlink (bpf_xdp_attach), not a bpf_link. A netlink XDP attachment belongs to the
 * interface and stays when the process that made it exits, SIGKILL included; a bpf_link would be
 * detached when its last fd closes unless it were pinned too. So a killed daemon leaves the
 * program attached and forwarding with the maps as they were; health checks and VRRP stop until a
 * new daemon runs. attachments() finds where the program is attached by asking each interface of
 * the caller's network namespace, so nothing about attachments needs to be pinned. attach() also
 * writes the interface's MAC to the `ifaces` map (detach() clears it): the program then passes,
 * rather than balances, a frame for a VIP unicast to another MAC (flooded by a switch), which the
 * kernel drops as other-host; a MAC changed while attached is not followed until attach() again.
 *
 * Adoption reuses the pinned program as it is (it is not reloaded: no packet meets a program
 * swap), and the maps (services, reals, Maglev tables, connection tables, NAT state, persistence
 * templates, counters, configuration). The control plane's own state is read back from the maps:
 * services from `services`, reals from `reals` with their service and weight from `real_meta`
 * (xlb_abi.h), the configuration from `config`, the bitmaps from `nat_ports` and `vip_filter`.
 * Setting a service again with the same reals then keeps their ids, so established connections
 * keep their reals and NAT state. Before adopting, the pins are checked against this build: the
 * ABI version and a fingerprint of the ABI layouts (`meta`), every map's type, key and value
 * sizes and flags against the object file, the sizes the options ask for (sizes not given are
 * taken as pinned), the program's name and type. A mismatch is refused (code
 * 'XLB_PINS_INCOMPATIBLE', the message names each difference) and nothing is touched: the caller
 * decides to purge (which drops the connections) and open afresh. A program built from newer
 * sources with the same ABI is not loaded by adoption: it takes over at a clean stop and start.
 * One process per instance: two that open it at once are not guarded against.
 */
import {
  XLB_CFG_F_NAT, XLB_COUNTERS, XLB_CT_SIZE_DEFAULT, XLB_MAGLEV_SIZE_DEFAULT, XLB_MAX_REALS, XLB_MAX_SERVICES,
  XLB_NAT_F_CLOSING, XLB_NAT_F_FULL, XLB_NAT_PORT_WORDS, XLB_NAT_SIZE_DEFAULT, XLB_PERSIST_SIZE_DEFAULT, XLB_REAL_F_ACTIVE,
  XLB_REAL_F_DRAINED, XLB_SVC_F_HASH_SRC_ONLY, XLB_SVC_F_OPS, XLB_VERDICT_COUNTERS, XLB_VIP_FILTER_WORDS,
  XLB_ABI_VERSION, XLB_IFACES_SIZE, XlbConfig, XlbFlowKey, XlbIface, XlbMeta, XlbMethod, XlbNat, XlbPersist, XlbPersistKey, XlbReal, XlbRealMeta,
  XlbService, XlbStats, XlbVipKey, abiLayoutHash, decode, encode,
} from './abi.ts';
import { buildMaglevTable, isPrime } from './maglev.ts';
import { addrBytes, addrText, familyOf, macBytes, macText, portField, type Family } from './net.ts';
import {
  BPFFS, BPF_F_MMAPABLE, BPF_MAP_TYPE_ARRAY, BPF_PROG_TYPE_XDP, BpfMap, BpfProgram, XDP_FLAGS_UPDATE_IF_NOEXIST, XLB_PIN_ROOT, bpfError,
  bpfObjectPath, ifHwAddr, isBpfError, openObject, removeEmptyDirs, removePinDir, requireBpffs, xdpAttach, xdpDetach, xdpQuery, xdpTestContext,
  type BpfObject, type MapLike,
} from '../bpf/index.ts';
import { MODE_FLAG, XDP_MODES, attachedMode, type XdpMode } from './decap.ts';
import { listLinks } from '../../net/link.ts';
import { existsSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export type Protocol = 'tcp' | 'udp';
export type Method = 'dr' | 'tun' | 'nat' | 'fullnat';

export interface ServiceSpec {
  address: string;
  port: number;          // 0 = all ports
  protocol: Protocol;
  /** Hash on the client address only (IPVS sh). */
  hashSourceOnly?: boolean;
  /** One-packet scheduling (UDP): every packet scheduled, no connection table. */
  ops?: boolean;
  /** IPVS persistence: timeout in seconds (1..2^32-1); granularity, the prefix length of the
   *  client address that identifies a client (1..32 / 1..128, default the whole address). */
  persistence?: Persistence;
}

export interface Persistence {
  timeout: number;
  granularity?: number;
}

export interface RealSpec {
  address: string;
  weight: number;        // 0 = drained: keeps its connections, gets no new ones
  method: Method;
  mac: string;           // next hop MAC (the real itself for DR)
  smac: string;          // source MAC on the egress interface
  ifindex?: number;      // egress interface; 0 or absent = back out of the ingress interface
  /** NAT/full-NAT: the real's port; absent or 0 = the service's (the packet's, for all ports).
   *  DR and TUN cannot change the port: absent, 0 or the service's port. */
  port?: number;
}

export interface ForwarderOptions {
  object?: string;
  maglevSize?: number;
  ctSize?: number;
  maxServices?: number;
  maxReals?: number;
  /** NAT state entries (one per NAT or full-NAT connection) */
  natSize?: number;
  /** persistence templates (one per persistent service and client network) */
  persistSize?: number;
  /** pin under /sys/fs/bpf/xlb/<instance>/ and adopt what is pinned there (hitless restart);
   *  a name of [A-Za-z0-9_.-], at most 64, not 'decap'. The daemon's default is DEFAULT_INSTANCE. */
  instance?: string;
  /** pin in this directory of the BPF filesystem instead (tests) */
  pinDir?: string;
}

/** NAT state timeouts in seconds; IPVS's defaults (ipvsadm --set tcp tcpfin udp). */
export interface NatTimeouts { tcp: number; tcpFin: number; udp: number }
export const NAT_TIMEOUT_DEFAULTS: Readonly<NatTimeouts> = { tcp: 900, tcpFin: 120, udp: 300 };

/**
 * The runtime configuration (setConfig). Every call replaces the whole of it: an absent field
 * takes its default.
 */
export interface ForwarderConfig {
  /** TUN outer source base (default 0.0.0.0 / ::) and how many low bits the flow hash replaces (0..32, default 0) */
  tunSrc4?: string;
  tunSrc4Bits?: number;
  tunSrc6?: string;
  tunSrc6Bits?: number;
  /** TUN outer TTL / hop limit, 1..255 (default 64) */
  tunTtl?: number;
  /** full-NAT source addresses; without one, full-NAT reals of that family are refused */
  natSrc4?: string;
  natSrc6?: string;
  /** seconds, 1..2^32-1; absent ones take NAT_TIMEOUT_DEFAULTS */
  natTimeouts?: Partial<NatTimeouts>;
}
/** The name the configuration had when it held only tunnel settings. */
export type TunnelConfig = ForwarderConfig;

/** One connection's NAT state, as natList() reports it. */
export interface NatEntry {
  protocol: Protocol;
  fullNat: boolean;
  /** a TCP FIN or RST was seen: the short timeout applies */
  closing: boolean;
  /** the reply direction (the key): what the real sends back */
  real: string;
  realPort: number;
  /** the client (NAT) or the full-NAT source address, and its port */
  local: string;
  localPort: number;
  /** the forward flow */
  client: string;
  clientPort: number;
  vip: string;
  vipPort: number;
  /** where replies go: out of this interface, to this MAC, from this MAC */
  ifindex: number;
  clientMac: string;
  ourMac: string;
  /** CLOCK_MONOTONIC nanoseconds of the last refresh (process.hrtime.bigint() reads the same clock) */
  last: bigint;
}

/** One persistence template, as persistList() reports it. */
export interface PersistEntry {
  /** the service id (ServiceState's, as setService returns it) */
  serviceId: number;
  /** the client network: the masked address */
  client: string;
  realId: number;
  /** CLOCK_MONOTONIC nanoseconds when last seen (process.hrtime.bigint() reads the same clock) */
  last: bigint;
}

export interface Stats { packets: bigint; bytes: bigint; conns: bigint }

export interface TestRunResult { verdict: number; packet: Buffer; duration: number }

const PROTO_NUMBER: Record<Protocol, number> = { tcp: 6, udp: 17 };
const METHOD_NUMBER: Record<Method, number> = {
  dr: XlbMethod.XLB_METHOD_DR, tun: XlbMethod.XLB_METHOD_TUN, nat: XlbMethod.XLB_METHOD_NAT, fullnat: XlbMethod.XLB_METHOD_FULLNAT,
};
const PROTOCOL_OF = new Map<number, Protocol>(Object.entries(PROTO_NUMBER).map(([k, v]) => [v, k as Protocol]));
const METHOD_OF = new Map<number, Method>(Object.entries(METHOD_NUMBER).map(([k, v]) => [v, k as Method]));
const isNat = (m: Method): boolean => m === 'nat' || m === 'fullnat';
export const DEFAULT_OBJECT = bpfObjectPath('xlb');
const PROGRAM_NAME = 'xlb_xdp';

// ---------------------------------------------------------------- pinned instances

/** The instance the daemon pins under when none is named. */
export const DEFAULT_INSTANCE = 'default';
/** The pinned program's file name in a pin directory; the maps are pinned under their own names. */
const PROG_PIN = 'prog';
const INCOMPATIBLE = 'XLB_PINS_INCOMPATIBLE';

/** The program's maps (their names in bpf/xlb.bpf.c) by role. */
const MAP_NAMES = {
  services: 'services', maglev: 'maglev_tables', reals: 'reals', conntrack4: 'conntrack4', conntrack: 'conntrack',
  nat: 'nat', natPorts: 'nat_ports', persist: 'persist', serviceStats: 'service_stats', realStats: 'real_stats',
  globalStats: 'global_stats', config: 'config', vipFilter: 'vip_filter', ifaces: 'ifaces', meta: 'meta', realMeta: 'real_meta',
} as const;
type MapRole = keyof typeof MAP_NAMES;

/** The sizes of the resizable maps, by name: the options' or the defaults. */
function mapSizes(o: ForwarderOptions, explicitOnly = false): Record<string, number> {
  const pick = (v: number | undefined, dflt: number) => (explicitOnly ? v : v ?? dflt);
  const services = pick(o.maxServices, XLB_MAX_SERVICES);
  const reals = pick(o.maxReals, XLB_MAX_REALS);
  const ct = pick(o.ctSize, XLB_CT_SIZE_DEFAULT);
  const all: Record<string, number | undefined> = {
    maglev_tables: services, service_stats: services, services: services === undefined ? undefined : services * 2,
    reals, real_stats: reals, real_meta: reals,
    conntrack4: ct, conntrack: ct, nat: pick(o.natSize, XLB_NAT_SIZE_DEFAULT), persist: pick(o.persistSize, XLB_PERSIST_SIZE_DEFAULT),
  };
  return Object.fromEntries(Object.entries(all).filter((e): e is [string, number] => e[1] !== undefined));
}

const tableFactory: TableFactory = (serviceId, size) => BpfMap.create({
  type: BPF_MAP_TYPE_ARRAY, name: `xlb_mg_${serviceId}`, keySize: 4, valueSize: 4, maxEntries: size, flags: BPF_F_MMAPABLE,
});

/** bpffs refuses names with a dot; 'decap' and 'staging' are taken. */
const INSTANCE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const RESERVED = ['decap', 'staging'];
/** Where pins are made before their directory is renamed into place. */
const STAGING_ROOT = join(XLB_PIN_ROOT, 'staging');

/** The pin directory of the options (pinDir, else the instance's), or undefined. */
export function pinDirOf(o: { instance?: string; pinDir?: string }): string | undefined {
  if (o.pinDir !== undefined) {
    if (typeof o.pinDir !== 'string' || !o.pinDir.startsWith(`${BPFFS}/`)) throw new Error(`pinDir '${String(o.pinDir)}' is not a directory under ${BPFFS}`);
    return o.pinDir.replace(/\/+$/, '');
  }
  if (o.instance === undefined) return undefined;
  const name = o.instance;
  if (typeof name !== 'string' || !INSTANCE_NAME.test(name) || RESERVED.includes(name)) {
    throw new Error(`instance name '${String(name)}' must be 1 to 64 of [A-Za-z0-9_-], and not ${RESERVED.map((r) => `'${r}'`).join(' or ')}`);
  }
  return join(XLB_PIN_ROOT, name);
}

function pinsIncompatible(dir: string, what: string): Error {
  const err = new Error(`the forwarder pinned at ${dir} cannot be adopted: ${what}. ` +
    'Start the build (and sizes) that pinned it, or remove it with XdpForwarder.purge (its connections are lost)') as Error & { code: string };
  err.code = INCOMPATIBLE;
  return err;
}

interface Pinned { program: BpfProgram; maps: Map<string, BpfMap>; close(): void }

/** Open the program and maps pinned in `dir`; undefined when the directory does not exist. */
function openPins(dir: string): Pinned | undefined {
  if (!existsSync(dir)) return undefined;
  const maps = new Map<string, BpfMap>();
  let program: BpfProgram | undefined;
  const close = () => { for (const m of maps.values()) m.close(); program?.close(); };
  const missing: string[] = [];
  try {
    for (const name of [...Object.values(MAP_NAMES), PROG_PIN]) {
      try {
        if (name === PROG_PIN) program = BpfProgram.fromPin(join(dir, name));
        else maps.set(name, BpfMap.fromPin(join(dir, name)));
      } catch (err) {
        if (!isBpfError(err, 'ENOENT')) throw err;
        missing.push(name);
      }
    }
    if (missing.length > 0) throw pinsIncompatible(dir, `pins missing: ${missing.join(', ')}`);
    return { program: program!, maps, close };
  } catch (err) {
    close();
    throw err;
  }
}

/**
 * Why pinned maps cannot serve this build with these options: the meta map's ABI version and
 * layout fingerprint, each map's type, key and value sizes and flags against the object file's
 * definitions, the sizes the options ask for (sizes not asked for are taken as pinned), the
 * program's type and name.
 */
function adoptionProblems(p: Pinned, o: ForwarderOptions): string[] {
  const problems: string[] = [];
  const meta = decode(XlbMeta, p.maps.get(MAP_NAMES.meta)!.lookup(u32(0))!);
  if (meta.abi_version !== XLB_ABI_VERSION || meta.layout_hash !== abiLayoutHash()) {
    problems.push(`it was made with ABI version ${String(meta.abi_version)} (layout ${(meta.layout_hash as bigint).toString(16)}), ` +
      `this build has version ${XLB_ABI_VERSION} (layout ${abiLayoutHash().toString(16)})`);
  }
  if (o.maglevSize !== undefined && o.maglevSize !== meta.maglev_size) {
    problems.push(`its Maglev tables have ${String(meta.maglev_size)} slots, ${o.maglevSize} asked for`);
  }
  const explicit = mapSizes(o, true);
  const obj = openObject(o.object ?? DEFAULT_OBJECT);
  try {
    const defs = new Map(obj.maps().map((m) => [m.name, m]));
    for (const name of Object.values(MAP_NAMES)) {
      const want = defs.get(name);
      const have = p.maps.get(name)!.info;
      if (!want) { problems.push(`map ${name} is not in ${obj.path}`); continue; }
      const diff: string[] = [];
      for (const k of ['type', 'keySize', 'valueSize', 'flags'] as const) if (have[k] !== want[k]) diff.push(`${k} ${have[k]}, not ${want[k]}`);
      const size = explicit[name] ?? (name in mapSizes({}) ? have.maxEntries : want.maxEntries);
      if (have.maxEntries !== size) diff.push(`${have.maxEntries} entries, not ${size}`);
      if (diff.length > 0) problems.push(`map ${name}: ${diff.join(', ')}`);
    }
  } finally {
    obj.close();
  }
  const prog = p.program;
  if (prog.type !== BPF_PROG_TYPE_XDP || prog.name !== PROGRAM_NAME) problems.push(`the pinned program is '${prog.name}' of type ${prog.type}, not XDP '${PROGRAM_NAME}'`);
  return problems;
}

function mapsByName(maps: Record<MapRole, BpfMap>): Map<string, BpfMap> {
  return new Map(Object.entries(MAP_NAMES).map(([role, name]) => [name, maps[role as MapRole]]));
}

/** The staging directories of `dir`'s pins: STAGING_ROOT/<its name>-<pid>. */
const stagingOf = (dir: string, pid: number = process.pid) => join(STAGING_ROOT, `${basename(dir)}-${pid}`);
const isStagingOf = (dir: string, entry: string) => entry.startsWith(`${basename(dir)}-`) && /^\d+$/.test(entry.slice(basename(dir).length + 1));

/**
 * Pin the program and maps as `dir`, whole or not at all: pinned in a staging directory, which is
 * then renamed to `dir` (a crash leaves a staging directory, which purge removes, never a partial
 * `dir`).
 */
function publishPins(dir: string, program: BpfProgram, maps: Map<string, BpfMap>): void {
  const staging = stagingOf(dir);
  removePinDir(staging);
  mkdirSync(staging, { recursive: true });
  mkdirSync(dirname(dir), { recursive: true });
  try {
    for (const [name, m] of maps) m.pin(join(staging, name));
    program.pin(join(staging, PROG_PIN));
    renameSync(staging, dir);
  } finally {
    removePinDir(staging, [STAGING_ROOT]);
  }
}

/** Where a program is attached in this network namespace. */
export interface Attachment { ifindex: number; ifname: string; mode: XdpMode }

async function attachmentsOf(progId: number): Promise<Attachment[]> {
  const out: Attachment[] = [];
  for (const link of await listLinks()) {
    const mode = attachedMode(link.ifindex, progId);
    if (mode !== null) out.push({ ifindex: link.ifindex, ifname: link.name, mode });
  }
  return out;
}

type CounterOf<T> = T extends `XLB_CNT_${infer N}` ? Lowercase<N> : never;
/** Counter names as reported: 'XLB_CNT_DROP_NO_REAL' → 'drop_no_real'. */
export type CounterName = CounterOf<(typeof XLB_COUNTERS)[number]>;
const counterName = (c: (typeof XLB_COUNTERS)[number]): CounterName => c.slice('XLB_CNT_'.length).toLowerCase() as CounterName;
export const COUNTER_NAMES = XLB_COUNTERS.map(counterName);

interface RealState {
  id: number;
  spec: RealSpec;
  /** the bytes written to the reals map but the drained flag, as a latin1 string (a change means a
   *  new id): a string of 40 characters takes a quarter of the memory of a 40-byte Buffer, and
   *  a full apply keeps one per real (100,000) */
  entry: string;
  /** the drained flag as written */
  drained: boolean;
}

/** A service whose reals and new table are written, before its table is swapped in. */
interface Staged {
  key: string;
  spec: ServiceSpec;
  svc: ServiceState;
  /** the service was there before (else its id and VIP filter bit are new) */
  existing: boolean;
  newReals: Map<string, RealState>;
  retired: RealState[];
  natTouched: boolean;
  table: MapLike & { readonly fd: number };
}

interface ServiceState {
  id: number;
  spec: ServiceSpec;
  reals: Map<string, RealState>; // by real address
  /** adopted reals of this service that a crash left beside the ones in `reals` (an address
   *  twice): retired after the service's next table swap */
  leftovers?: RealState[];
}

/** A service and its reals as programmed (listServices). */
export interface ServiceListing {
  service: ServiceSpec;
  reals: RealSpec[];
}

/** Ids 1..max handed out lowest-first, then reused in the order they were freed. */
class IdPool {
  private next = 1;
  private readonly freed: number[] = [];
  constructor(private readonly max: number, private readonly what: string, inUse: ReadonlySet<number> = new Set()) {
    // adopted ids: the gaps below the highest are free, lowest first
    if (inUse.size === 0) return;
    for (const id of inUse) this.next = Math.max(this.next, id + 1);
    for (let id = 1; id < this.next; id++) if (!inUse.has(id)) this.freed.push(id);
  }
  take(): number {
    if (this.next <= this.max) return this.next++;
    const id = this.freed.shift();
    if (id === undefined) throw new Error(`no free ${this.what} id: the limit is ${this.max}`);
    return id;
  }
  give(id: number): void { this.freed.push(id); }
}

export function serviceKey(s: ServiceSpec): string {
  return `${s.protocol}:${s.address}:${s.port}`;
}

/** The program's maps, by role. */
export interface ForwarderMaps {
  services: MapLike; maglev: MapLike; reals: MapLike; nat: MapLike; natPorts: MapLike;
  /** the connection table: IPv4 flows (compact key), IPv6 flows */
  conntrack4: MapLike; conntrack: MapLike;
  persist: MapLike; serviceStats: MapLike; realStats: MapLike; globalStats: MapLike; config: MapLike;
  /** the bitmap of VIP addresses; absent with fake maps that stand for no program (unit tests) */
  vipFilter?: MapLike;
  /** the MACs of the interfaces the program is attached to (xlb_abi.h); absent as vipFilter may be */
  ifaces?: MapLike;
  /** the control plane's own state (xlb_abi.h): the instance's identity, each real's service and weight */
  meta: MapLike; realMeta: MapLike;
}

/** Makes an inner Maglev table map; the outer map gets its fd. */
export type TableFactory = (serviceId: number, size: number) => MapLike & { readonly fd: number };

export interface ForwarderParts {
  maps: ForwarderMaps;
  createTable: TableFactory;
  maglevSize: number;
  maxServices: number;
  maxReals: number;
  /** the loaded object and program; absent with fake maps (unit tests) */
  object?: BpfObject;
  program?: BpfProgram;
  /** the maps hold an earlier forwarder's programming (pinned maps, or the same maps in a test):
   *  read it back instead of starting empty */
  adopt?: boolean;
  /** where the program and maps are pinned (absent: not pinned) */
  pinDir?: string;
}

export class XdpForwarder {
  readonly maglevSize: number;
  private readonly services = new Map<string, ServiceState>();
  private serviceIds: IdPool;
  private realIds: IdPool;
  private readonly maps: ForwarderMaps;
  /** the configuration as last set (checked), and the NAT flag kept from the reals */
  private config: CheckedConfig;
  private natInUse = false;
  /** the nat_ports bitmap as written */
  private readonly natPortBits = new BigUint64Array(XLB_NAT_PORT_WORDS);
  /** the vip_filter bitmap as written */
  private readonly vipFilterBits = new BigUint64Array(XLB_VIP_FILTER_WORDS);

  /**
   * Fresh maps start as the program left them: call setConfig before anything else. Adopted maps
   * (`parts.adopt`) keep what they hold: the services, reals, configuration and bitmaps are read
   * back (readBack), nothing is written but the clean-up of what a crash left half-done.
   */
  constructor(private readonly parts: ForwarderParts) {
    this.maglevSize = parts.maglevSize;
    this.maps = parts.maps;
    this.serviceIds = new IdPool(parts.maxServices - 1, 'service');
    this.realIds = new IdPool(parts.maxReals - 1, 'real');
    this.config = checkConfig({});
    if (parts.adopt) this.readBack();
  }

  /** Whether this forwarder took over maps programmed by an earlier one. */
  get adopted(): boolean {
    return this.parts.adopt === true;
  }

  /** The loaded XDP program (to attach or test-run). */
  get program(): BpfProgram {
    if (!this.parts.program) throw new Error('this forwarder has no loaded program (fake maps)');
    return this.parts.program;
  }

  /**
   * Load the program and its maps; the forwarder starts with the default configuration.
   *
   * With `instance` (or `pinDir`) the program and maps are pinned there: if the directory does
   * not exist they are loaded, configured with the defaults and pinned (published whole: pinned in
   * a staging directory that is then renamed); if it exists they are adopted (see the module
   * header): the maps and the program are reopened from the pins and the forwarder reads back
   * what they hold (`adopted` is true). Pins that cannot be adopted (another ABI, other map
   * definitions, sizes other than those asked for, missing pins) are refused with an Error whose
   * code is 'XLB_PINS_INCOMPATIBLE' and whose message says what differs: nothing is changed;
   * `await XdpForwarder.purge({ instance })` removes them (and drops their connections).
   */
  static open(options: ForwarderOptions = {}): XdpForwarder {
    const dir = pinDirOf(options);
    if (dir !== undefined) {
      requireBpffs();
      const adopted = XdpForwarder.adopt(dir, options);
      if (adopted) return adopted;
    }
    const parts = XdpForwarder.load(options);
    try {
      const fw = new XdpForwarder({ ...parts, ...(dir === undefined ? {} : { pinDir: dir }) });
      fw.setConfig({});
      if (dir !== undefined) publishPins(dir, parts.program!, mapsByName(parts.maps as Record<MapRole, BpfMap>));
      return fw;
    } catch (err) {
      parts.object?.close();
      throw err;
    }
  }

  /** The forwarder of the pins in `dir`, or undefined when there is no such directory. */
  private static adopt(dir: string, options: ForwarderOptions): XdpForwarder | undefined {
    const pinned = openPins(dir);
    if (!pinned) return undefined;
    try {
      const problems = adoptionProblems(pinned, options);
      if (problems.length > 0) throw pinsIncompatible(dir, problems.join('; '));
      const maps = Object.fromEntries(Object.entries(MAP_NAMES).map(([role, name]) => [role, pinned.maps.get(name)!])) as Record<MapRole, BpfMap>;
      const maglevSize = decode(XlbMeta, maps.meta.lookup(u32(0))!).maglev_size as number;
      return new XdpForwarder({
        maps, program: pinned.program, createTable: tableFactory, maglevSize,
        maxServices: maps.maglev.info.maxEntries, maxReals: maps.reals.info.maxEntries, adopt: true, pinDir: dir,
      });
    } catch (err) {
      pinned.close();
      throw err;
    }
  }

  /**
   * Load the object and return its parts, for `new XdpForwarder(parts)`: tests that need the maps
   * themselves (to age or plant NAT state) use this; everything else uses open().
   */
  static load(options: ForwarderOptions = {}): ForwarderParts {
    const maglevSize = options.maglevSize ?? XLB_MAGLEV_SIZE_DEFAULT;
    if (!isPrime(maglevSize)) throw new Error(`maglevSize ${maglevSize} must be a prime`);
    const sizes = mapSizes(options);
    const obj = openObject(options.object ?? DEFAULT_OBJECT);
    try {
      obj.setGlobals('.rodata', { maglev_size: maglevSize });
      obj.setInnerMapMaxEntries('maglev_tables', maglevSize);
      for (const [name, size] of Object.entries(sizes)) obj.setMapMaxEntries(name, size);
      obj.load();
      const maps = Object.fromEntries(Object.entries(MAP_NAMES).map(([role, name]) => [role, obj.map(name)])) as Record<MapRole, BpfMap>;
      maps.meta.update(u32(0), encode(XlbMeta, { abi_version: XLB_ABI_VERSION, maglev_size: maglevSize, layout_hash: abiLayoutHash() }));
      return {
        object: obj,
        program: obj.program(PROGRAM_NAME),
        maps,
        createTable: tableFactory,
        maglevSize, maxServices: sizes.maglev_tables!, maxReals: sizes.reals!,
      };
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  /** The pin directory, or undefined when nothing is pinned. */
  get pinDir(): string | undefined {
    return this.parts.pinDir;
  }

  /**
   * Attach the program to an interface of this network namespace, by netlink (not a bpf_link): the
   * attachment stays when this process exits, until detach(), destroy() or the interface goes.
   * Already attached there in this mode: nothing to do (an adopted forwarder finds itself
   * attached). Refused: another XDP program on the interface (EBUSY), this one in the other mode
   * (EEXIST). The interface's MAC is written to the ifaces map first (also when attached already:
   * it may have changed), so that frames for a VIP unicast to another MAC are not balanced.
   */
  attach(ifindex: number, mode: XdpMode = 'native'): void {
    const sc = 'bpf_xdp_attach';
    if (!XDP_MODES.includes(mode)) throw bpfError('EINVAL', sc, `mode '${String(mode)}' is not one of ${XDP_MODES.join(', ')}`);
    const id = this.program.info().id;
    const q = xdpQuery(ifindex);
    const now = attachedMode(ifindex, id);
    if (now === mode) {
      this.noteInterface(ifindex, ifHwAddr(ifindex));
      return;
    }
    if (now !== null) throw bpfError('EEXIST', sc, `the forwarder is attached to ifindex ${ifindex} in ${now} mode: detach it first`);
    const other = q.drvProgId || q.skbProgId || q.hwProgId || q.progId;
    if (other) throw bpfError('EBUSY', sc, `ifindex ${ifindex} already has another XDP program (id ${other}): remove it first`);
    this.noteInterface(ifindex, ifHwAddr(ifindex));
    try {
      xdpAttach(ifindex, this.program, MODE_FLAG[mode] | XDP_FLAGS_UPDATE_IF_NOEXIST);
    } catch (err) {
      this.forgetInterface(ifindex);
      throw err;
    }
  }

  /** Detach the program from an interface; false when it was not attached there. Its ifaces entry is cleared after. */
  detach(ifindex: number): boolean {
    const mode = attachedMode(ifindex, this.program.info().id);
    if (mode === null) return false;
    xdpDetach(ifindex, MODE_FLAG[mode]);
    this.forgetInterface(ifindex);
    return true;
  }

  /**
   * Write an interface's MAC to the ifaces map (what attach does), at index ifindex &
   * (XLB_IFACES_SIZE - 1): the program then passes frames for a VIP that come in there unicast to
   * another MAC (PASS_OTHER_HOST). An interface whose index another one's entry holds takes it
   * over (the other one is then not checked). `mac` null (no Ethernet interface): its entry is
   * cleared instead, no check.
   */
  noteInterface(ifindex: number, mac: Uint8Array | null): void {
    if (!this.maps.ifaces) return;
    if (mac === null) { this.forgetInterface(ifindex); return; }
    this.maps.ifaces.update(u32(ifindex & (XLB_IFACES_SIZE - 1)), encode(XlbIface, { ifindex, mac }));
  }

  /** Clear an interface's ifaces entry (what detach does); another interface's at that index stays. */
  forgetInterface(ifindex: number): void {
    const key = u32(ifindex & (XLB_IFACES_SIZE - 1));
    const entry = this.maps.ifaces?.lookup(key);
    if (entry && entry.readUInt32LE(0) === ifindex) this.maps.ifaces!.update(key, Buffer.alloc(XlbIface.size));
  }

  /** The interfaces of this network namespace the program is attached to (over netlink). */
  async attachments(): Promise<Attachment[]> {
    return attachmentsOf(this.program.info().id);
  }

  /**
   * A clean stop: detach the program from every interface of this network namespace, remove the
   * pins, close. Forwarding stops and the maps (connections, NAT state) are freed.
   */
  async destroy(): Promise<void> {
    try {
      for (const a of await this.attachments()) xdpDetach(a.ifindex, MODE_FLAG[a.mode]);
      if (this.parts.pinDir !== undefined) removePinDir(this.parts.pinDir, [XLB_PIN_ROOT]);
    } finally {
      this.close();
    }
  }

  /**
   * Remove an instance's pins without adopting them (incompatible ones, or a clean-up): detach
   * its program from the interfaces of this network namespace, remove the directory (and staging
   * directories a crash left). Missing pins are not an error.
   */
  static async purge(where: { instance?: string; pinDir?: string }): Promise<{ detached: Attachment[]; removed: boolean }> {
    const dir = pinDirOf(where);
    if (dir === undefined) throw new Error('purge: give the instance (or pinDir) whose pins to remove');
    requireBpffs();
    let detached: Attachment[] = [];
    if (existsSync(join(dir, PROG_PIN))) {
      const prog = BpfProgram.fromPin(join(dir, PROG_PIN));
      try {
        detached = await attachmentsOf(prog.info().id);
        for (const a of detached) xdpDetach(a.ifindex, MODE_FLAG[a.mode]);
      } finally {
        prog.close();
      }
    }
    const removed = existsSync(dir);
    if (existsSync(STAGING_ROOT)) for (const e of readdirSync(STAGING_ROOT)) if (isStagingOf(dir, e)) removePinDir(join(STAGING_ROOT, e));
    removeEmptyDirs([STAGING_ROOT]);
    removePinDir(dir, [XLB_PIN_ROOT]);
    return { detached, removed };
  }

  /**
   * Replace the configuration (absent fields: defaults). Refused, with nothing written, when a
   * value is bad, a full-NAT address is a VIP, or a full-NAT address that full-NAT reals use
   * would go away.
   */
  setConfig(cfg: ForwarderConfig): void {
    const checked = checkConfig(cfg);
    for (const family of [4, 6] as const) {
      const src = family === 4 ? checked.natSrc4 : checked.natSrc6;
      if (src !== undefined) {
        const vip = [...this.services.values()].find((s) => addrBytes(s.spec.address).equals(addrBytes(src)));
        if (vip) throw new Error(`natSrc${family} ${src} is the address of service ${serviceKey(vip.spec)}: a full-NAT source address must not be a VIP`);
      } else {
        const user = this.fullNatUser(family);
        if (user) throw new Error(`natSrc${family} is needed by the full-NAT real ${user}: it cannot be removed`);
      }
    }
    this.writeConfig(checked, this.natInUse);
  }

  /**
   * Create or update a service with exactly these reals. Unchanged reals keep their ids (and so
   * their connections); the new Maglev table replaces the old one in a single map update.
   */
  setService(spec: ServiceSpec, reals: readonly RealSpec[]): { serviceId: number; realIds: Map<string, number> } {
    return this.setServices([{ spec, reals }])[0]!;
  }

  /**
   * setService for several services at once, as one would one after the other, but their new
   * tables are swapped in by one batch update of the outer map: the kernel waits once, not once
   * per service, for the programs to be done with the old tables (a full apply of 1,000
   * services). Every service's reals and table are written first (a failure there leaves every
   * service as it was), then the tables are swapped, then each service is finished (its entry,
   * its removed reals deactivated). A failure after the swap started leaves the services before
   * it set and the others as they were, and is thrown after the others are done.
   */
  setServices(list: readonly { spec: ServiceSpec; reals: readonly RealSpec[] }[]): { serviceId: number; realIds: Map<string, number> }[] {
    const keys = new Set<string>();
    for (const { spec } of list) {
      const key = serviceKey(spec);
      if (keys.has(key)) throw new Error(`service ${key} is listed twice`);
      keys.add(key);
    }
    const staged: Staged[] = [];
    try {
      try {
        for (const { spec, reals } of list) staged.push(this.stage(spec, reals));
      } catch (err) {
        for (const st of staged.reverse()) this.unstage(st);
        throw err;
      }
      const swap = this.swapTables(staged);
      let failure = swap.error;
      const results: { serviceId: number; realIds: Map<string, number> }[] = [];
      staged.forEach((st, i) => {
        if (i >= swap.swapped) return this.unstage(st);
        try {
          this.finish(st);
          results.push({ serviceId: st.svc.id, realIds: new Map([...st.newReals].map(([a, r]) => [a, r.id])) });
        } catch (err) {
          failure ??= err;
          this.unstage(st);
        }
      });
      if (failure !== undefined) throw failure;
      return results;
    } finally {
      for (const st of staged) st.table.close(); // the outer map holds its own reference
    }
  }

  /**
   * Swap the staged tables into the outer map (one update for one, else one batch): how many
   * were swapped, in order (all of them unless a swap failed, with its error).
   */
  private swapTables(staged: readonly Staged[]): { swapped: number; error?: unknown } {
    if (staged.length > 1) {
      try {
        this.maps.maglev.updateBatch(staged.map((st) => u32(st.svc.id)), staged.map((st) => u32(st.table.fd)));
        return { swapped: staged.length };
      } catch {
        // one by one below: the services before the one that fails are swapped, the rest not
      }
    }
    for (let i = 0; i < staged.length; i++) {
      try {
        this.maps.maglev.update(u32(staged[i]!.svc.id), u32(staged[i]!.table.fd));
      } catch (error) {
        return { swapped: i, error };
      }
    }
    return { swapped: staged.length };
  }

  /** Check a service and its reals, write the reals and fill its new table (not swapped in). */
  private stage(spec: ServiceSpec, reals: readonly RealSpec[]): Staged {
    const family = checkService(spec);
    for (const f of [4, 6] as const) {
      const src = f === 4 ? this.config.natSrc4 : this.config.natSrc6;
      if (src !== undefined && family === f && addrBytes(src).equals(addrBytes(spec.address))) {
        throw new Error(`service ${serviceKey(spec)}: its address is natSrc${f}, the full-NAT source address`);
      }
    }
    // every real's entry is built (and so checked) before anything is written
    const entries = new Map<string, Buffer>();
    for (const r of reals) {
      if (familyOf(r.address) !== family && r.method !== 'tun') {
        throw new Error(`real ${r.address}: a ${r.method.toUpperCase()} real must have the service's address family`);
      }
      if (entries.has(r.address)) throw new Error(`real ${r.address} is listed twice`);
      if (!Number.isInteger(r.weight) || r.weight < 0) throw new Error(`real ${r.address}: weight ${r.weight} is not an integer >= 0`);
      if (r.method === 'fullnat' && (family === 4 ? this.config.natSrc4 : this.config.natSrc6) === undefined) {
        throw new Error(`real ${r.address}: a full-NAT real needs natSrc${family} (the IPv${family} full-NAT source address) in setConfig`);
      }
      entries.set(r.address, realEntry(r, spec));
    }
    // replies are looked up from the moment a NAT real may get packets: the flag, and the ports
    // this service's reals will answer from added to those in use
    if (reals.some((r) => isNat(r.method))) {
      if (!this.natInUse) this.writeConfig(this.config, true);
      const ports = natPortBitmap(reals.map((real) => ({ service: spec, real })));
      this.writeNatPorts(this.natPortBits.map((w, i) => w | ports[i]!));
    }

    const key = serviceKey(spec);
    const existing = this.services.get(key);
    // the address's filter bit before its service entry and marker (an existing service's is set)
    if (!existing) this.writeVipFilter(spec.address);
    // the NAT state changes only when this service has or had a NAT or full-NAT real
    const natTouched = reals.some((r) => isNat(r.method)) || hasNatReal(existing);
    const svc: ServiceState = existing ?? { id: this.serviceIds.take(), spec, reals: new Map() };
    const newReals = new Map<string, RealState>();
    const retired: RealState[] = [];
    const fresh: { key: Buffer; value: Buffer; meta: Buffer }[] = [];
    const st: Staged = { key, spec, svc, existing: existing !== undefined, newReals, retired, natTouched, table: undefined! };
    try {
      // 1. real entries: reuse an id only when its entry is byte-identical (the drained flag
      //    aside, which is rewritten in place when it changes)
      //    (each real's service and weight go to real_meta after its entry: read back, a real
      //    without them belongs to no service and was never in a table)
      for (const r of reals) {
        const entry = entries.get(r.address)!;
        const old = svc.reals.get(r.address);
        const drained = r.weight === 0;
        if (old && old.entry === entry.toString('latin1')) {
          if (old.drained !== drained) this.maps.reals.update(u32(old.id), withDrained(entry, r));
          if (old.spec.weight !== r.weight) this.writeRealMeta(old.id, svc.id, r.weight);
          newReals.set(r.address, { ...old, spec: r, drained });
        } else {
          const id = this.realIds.take();
          fresh.push({ key: u32(id), value: withDrained(entry, r), meta: encode(XlbRealMeta, { service_id: svc.id, weight: r.weight }) });
          newReals.set(r.address, { id, spec: r, entry: entry.toString('latin1'), drained });
        }
      }
      // the new ids' entries in one call (a full apply writes ~100 per service)
      if (fresh.length > 0) {
        this.maps.reals.updateBatch(fresh.map((f) => f.key), fresh.map((f) => f.value));
        this.maps.realMeta.updateBatch(fresh.map((f) => f.key), fresh.map((f) => f.meta));
      }
      for (const [addr, old] of svc.reals) {
        if (newReals.get(addr)?.id !== old.id) retired.push(old);
      }
      if (svc.leftovers) {
        const kept = new Set([...newReals.values()].map((r) => r.id));
        for (const old of svc.leftovers) if (!kept.has(old.id)) retired.push(old);
      }
      // 2. the table, filled whole (swapped in by setServices)
      st.table = this.fillTable(svc.id, [...newReals.values()]);
    } catch (err) {
      this.unstage(st);
      throw err;
    }
    return st;
  }

  /** Undo a stage that was not swapped in: give back the ids it took; the old state stays. */
  private unstage(st: Staged): void {
    for (const r of st.newReals.values()) {
      if (st.svc.reals.get(r.spec.address)?.id !== r.id) this.realIds.give(r.id);
    }
    if (!st.existing) {
      this.serviceIds.give(st.svc.id);
      this.writeVipFilter();
    }
  }

  /** After the swap: 3. the service entry and its address marker, 4. removed reals deactivated. */
  private finish(st: Staged): void {
    const { spec, svc } = st;
    this.maps.services.update(vipKey(spec.address, spec.port, PROTO_NUMBER[spec.protocol]), serviceEntry(svc.id, spec));
    this.maps.services.update(vipKey(spec.address, 0, 0), encode(XlbService, { id: 0, flags: 0 }));
    for (const r of st.retired) this.retireReal(r);
    svc.spec = spec;
    svc.reals = st.newReals;
    delete svc.leftovers;
    this.services.set(st.key, svc);
    if (st.natTouched) this.updateNatState();
  }

  removeService(spec: ServiceSpec): boolean {
    const key = serviceKey(spec);
    const svc = this.services.get(key);
    if (!svc) return false;
    this.maps.services.delete(vipKey(spec.address, spec.port, PROTO_NUMBER[spec.protocol]));
    this.services.delete(key);
    if (![...this.services.values()].some((s) => s.spec.address === spec.address)) {
      this.maps.services.delete(vipKey(spec.address, 0, 0));
      this.writeVipFilter();
    }
    this.maps.maglev.delete(u32(svc.id));
    for (const r of [...svc.reals.values(), ...svc.leftovers ?? []]) this.retireReal(r);
    this.maps.serviceStats.update(u32(svc.id), Buffer.alloc(XlbStats.size * this.maps.serviceStats.valuesPerKey()));
    this.serviceIds.give(svc.id);
    if (hasNatReal(svc)) this.updateNatState();
    return true;
  }

  /** Whether the program looks replies up in the NAT state (a NAT or full-NAT real exists). */
  get natEnabled(): boolean {
    return this.natInUse;
  }

  /** The global counters, summed over the CPUs; rx is the sum of the verdict counters (the
   * program does not write it: xlb_abi.h). */
  counters(): Record<CounterName, bigint> {
    const out = {} as Record<CounterName, bigint>;
    COUNTER_NAMES.forEach((name, i) => {
      out[name] = this.maps.globalStats.lookupPerCpu(u32(i)).reduce((sum, v) => sum + v.readBigUInt64LE(0), 0n);
    });
    out.rx = XLB_VERDICT_COUNTERS.reduce((sum, c) => sum + out[counterName(c)], 0n);
    return out;
  }

  serviceStats(spec: ServiceSpec): Stats {
    const svc = this.mustService(spec);
    return sumStats(this.maps.serviceStats.lookupPerCpu(u32(svc.id)));
  }

  /**
   * Every service and its reals as programmed (in the order of their ids). After adoption that
   * is what the maps hold, in normal form: optional fields only where they say something
   * (hashSourceOnly, ops: when set; persistence granularity: when shorter than the address;
   * a real's ifindex and port: when not 0). What setService was given reads back equal, up to
   * that normal form.
   */
  listServices(): ServiceListing[] {
    return [...this.services.values()].sort((a, b) => a.id - b.id)
      .map((s) => ({ service: { ...s.spec }, reals: [...s.reals.values()].sort((a, b) => a.id - b.id).map((r) => ({ ...r.spec })) }));
  }

  /** Whether the service is programmed. */
  hasService(spec: ServiceSpec): boolean {
    return this.services.has(serviceKey(spec));
  }

  /** The addresses of a service's reals, as last set. */
  realsOf(spec: ServiceSpec): string[] {
    return [...this.mustService(spec).reals.keys()];
  }

  realStats(spec: ServiceSpec, realAddress: string): Stats {
    const real = this.mustService(spec).reals.get(realAddress);
    if (!real) throw new Error(`service ${serviceKey(spec)} has no real ${realAddress}`);
    return sumStats(this.maps.realStats.lookupPerCpu(u32(real.id)));
  }

  /** Number of connection-table entries, IPv4 and IPv6 (walks the maps: for tests and status, not hot paths). */
  conntrackSize(): number {
    let n = 0;
    for (const map of [this.maps.conntrack4, this.maps.conntrack]) for (const _ of map.keys()) n++;
    return n;
  }

  clearConntrack(): void {
    for (const map of [this.maps.conntrack4, this.maps.conntrack]) {
      const keys = [...map.keys()];
      for (const k of keys) map.delete(k);
    }
  }

  /** Number of NAT state entries, expired ones included (walks the map: for tests and status). */
  natEntries(): number {
    let n = 0;
    for (const _ of this.maps.nat.keys()) n++;
    return n;
  }

  /** The NAT state, decoded (walks the map: for tests and status). */
  natList(): NatEntry[] {
    const out: NatEntry[] = [];
    for (const [k, v] of this.maps.nat.entries()) {
      const key = decode(XlbFlowKey, k);
      const val = decode(XlbNat, v);
      const family = key.family as Family;
      const flags = val.flags as number;
      out.push({
        protocol: PROTOCOL_OF.get(key.proto as number) ?? 'tcp',
        fullNat: (flags & XLB_NAT_F_FULL) !== 0,
        closing: (flags & XLB_NAT_F_CLOSING) !== 0,
        real: addrText(key.saddr as Buffer, family),
        realPort: portField(key.sport as number),
        local: addrText(key.daddr as Buffer, family),
        localPort: portField(key.dport as number),
        client: addrText(val.caddr as Buffer, family),
        clientPort: portField(val.cport as number),
        vip: addrText(val.vaddr as Buffer, family),
        vipPort: portField(val.vport as number),
        ifindex: val.ifindex as number,
        clientMac: macText(val.dmac as Buffer),
        ourMac: macText(val.smac as Buffer),
        last: val.last as bigint,
      });
    }
    return out;
  }

  clearNat(): void {
    const keys = [...this.maps.nat.keys()];
    for (const k of keys) this.maps.nat.delete(k);
  }

  /** The persistence templates, decoded (walks the map: for tests and status). */
  persistList(): PersistEntry[] {
    const out: PersistEntry[] = [];
    for (const [k, v] of this.maps.persist.entries()) {
      const key = decode(XlbPersistKey, k);
      const val = decode(XlbPersist, v);
      out.push({
        serviceId: key.service_id as number,
        client: addrText(key.addr as Buffer, key.family as Family),
        realId: val.real_id as number,
        last: val.last as bigint,
      });
    }
    return out;
  }

  clearPersist(): void {
    const keys = [...this.maps.persist.keys()];
    for (const k of keys) this.maps.persist.delete(k);
  }

  /** Run the program once on a frame (BPF_PROG_TEST_RUN). */
  testRun(frame: Buffer, opts: { ingressIfindex?: number; repeat?: number } = {}): TestRunResult {
    const ctx = opts.ingressIfindex === undefined ? undefined : xdpTestContext(frame.length, opts.ingressIfindex);
    const r = this.program.testRun({ data: frame, ctx, repeat: opts.repeat ?? 1 });
    return { verdict: r.retval, packet: r.data, duration: r.duration };
  }

  /** Close the fds (pins and attachments stay: the datapath goes on without this process). */
  close(): void {
    if (this.parts.object) {
      this.parts.object.close();
      return;
    }
    for (const m of Object.values(this.maps)) m.close();
    this.parts.program?.close();
  }

  /** A new table map for the service, filled with its reals' Maglev table (not swapped in). */
  private fillTable(serviceId: number, reals: readonly RealState[]): MapLike & { readonly fd: number } {
    const table = buildMaglevTable(
      reals.map((r) => ({ key: r.spec.address, id: r.id, weight: r.spec.weight })),
      this.maglevSize,
    );
    const inner = this.parts.createTable(serviceId, this.maglevSize);
    try {
      // no program sees the new map before the swap: filled by one copy (mmap), not per slot
      inner.writeAll(Buffer.from(table.buffer, table.byteOffset, table.byteLength));
    } catch (err) {
      inner.close();
      throw err;
    }
    return inner;
  }

  private writeRealMeta(id: number, serviceId: number, weight: number): void {
    this.maps.realMeta.update(u32(id), encode(XlbRealMeta, { service_id: serviceId, weight }));
  }

  /**
   * Take the programming back from the maps (adoption). The maps are what the program reads, so
   * they are the truth; what a crash left half-done is settled here, as the writing order allows:
   *  - a real entry without a service in real_meta, or whose service is gone, was never in a
   *    table that a service entry leads to: retired;
   *  - two entries of one address in one service (a crash between a new entry and the old one's
   *    retirement): one is kept, the other retired after the service's next table swap;
   *  - the drained flag is taken as written; the weight from real_meta.
   * Maglev tables are not read: the next setService of a service builds its table again from the
   * same ids and weights (the same table).
   */
  private readBack(): void {
    const m = this.maps;
    const cfg = m.config.lookup(u32(0));
    if (cfg) {
      const { config, nat } = decodeConfig(cfg);
      this.config = config;
      this.natInUse = nat;
    }
    readWords(m.natPorts, this.natPortBits);
    if (m.vipFilter) readWords(m.vipFilter, this.vipFilterBits);

    const byId = new Map<number, ServiceState>();
    for (const [k, v] of m.services.entries()) {
      const key = decode(XlbVipKey, k);
      const protocol = PROTOCOL_OF.get(key.proto as number);
      if (!protocol) continue; // an address marker
      const svc = decode(XlbService, v);
      const family = key.family as Family;
      const spec: ServiceSpec = { address: addrText(key.addr as Buffer, family), port: portField(key.port as number), protocol };
      const flags = svc.flags as number;
      if (flags & XLB_SVC_F_HASH_SRC_ONLY) spec.hashSourceOnly = true;
      if (flags & XLB_SVC_F_OPS) spec.ops = true;
      if ((svc.persist_timeout as number) !== 0) {
        const plen = svc.persist_plen as number;
        spec.persistence = { timeout: svc.persist_timeout as number, ...(plen !== (family === 4 ? 32 : 128) ? { granularity: plen } : {}) };
      }
      byId.set(svc.id as number, { id: svc.id as number, spec, reals: new Map() });
    }

    // the whole arrays in a few calls; only active entries are decoded
    const metas = m.realMeta.readAll();
    const entries = m.reals.readAll();
    const flagsAt = XlbReal.fields.find((x) => x.name === 'flags')!.offset;
    const orphans: number[] = [];
    const realIds = new Set<number>();
    for (let id = 1; (id + 1) * XlbReal.size <= entries.length; id++) {
      if (!(entries.readUInt16LE(id * XlbReal.size + flagsAt) & XLB_REAL_F_ACTIVE)) continue;
      const value = entries.subarray(id * XlbReal.size, (id + 1) * XlbReal.size);
      const r = decode(XlbReal, value);
      const flags = r.flags as number;
      const meta = decode(XlbRealMeta, metas, id * XlbRealMeta.size);
      const svc = byId.get(meta.service_id as number);
      realIds.add(id);
      if (!svc) { orphans.push(id); continue; }
      const family = r.family as Family;
      const method = METHOD_OF.get(r.method as number) ?? 'dr';
      const spec: RealSpec = {
        address: addrText(r.addr as Buffer, family), weight: meta.weight as number, method,
        mac: macText(r.dmac as Buffer), smac: macText(r.smac as Buffer),
      };
      if ((r.ifindex as number) !== 0) spec.ifindex = r.ifindex as number;
      if ((r.port as number) !== 0) spec.port = portField(r.port as number);
      const entry = Buffer.from(value);
      entry.writeUInt16LE(flags & ~XLB_REAL_F_DRAINED, flagsAt);
      const state: RealState = { id, spec, entry: entry.toString('latin1'), drained: (flags & XLB_REAL_F_DRAINED) !== 0 };
      if (svc.reals.has(spec.address)) (svc.leftovers ??= []).push(state);
      else svc.reals.set(spec.address, state);
    }

    for (const svc of byId.values()) this.services.set(serviceKey(svc.spec), svc);
    this.serviceIds = new IdPool(this.parts.maxServices - 1, 'service', new Set(byId.keys()));
    this.realIds = new IdPool(this.parts.maxReals - 1, 'real', realIds);
    for (const id of orphans) {
      this.retireReal({ id, spec: { address: '', weight: 0, method: 'dr', mac: '', smac: '' }, entry: '', drained: false });
    }
  }

  private retireReal(r: RealState): void {
    this.maps.reals.update(u32(r.id), Buffer.alloc(XlbReal.size));
    this.maps.realMeta.update(u32(r.id), Buffer.alloc(XlbRealMeta.size));
    this.maps.realStats.update(u32(r.id), Buffer.alloc(XlbStats.size * this.maps.realStats.valuesPerKey()));
    this.realIds.give(r.id);
  }

  private writeConfig(cfg: CheckedConfig, nat: boolean): void {
    this.maps.config.update(u32(0), encodeConfig(cfg, nat));
    this.config = cfg;
    this.natInUse = nat;
  }

  /** After a change: the ports exactly those in use, the NAT flag cleared once no NAT or full-NAT
   *  real is left (both were set before the reals were written). */
  private updateNatState(): void {
    const all = [...this.services.values()].flatMap((s) => [...s.reals.values()].map((r) => ({ service: s.spec, real: r.spec })));
    this.writeNatPorts(natPortBitmap(all));
    const inUse = all.some((x) => isNat(x.real.method));
    if (inUse !== this.natInUse) this.writeConfig(this.config, inUse);
  }

  /** Write the words of the nat_ports bitmap that differ from what is written. */
  private writeNatPorts(bits: BigUint64Array): void {
    writeChangedWords(this.maps.natPorts, this.natPortBits, bits);
  }

  /** With `extra` (an address about to be added): its bit added to those written. Without: the
   *  bitmap of the services' addresses, exactly (after a removal). */
  private writeVipFilter(extra?: string): void {
    if (!this.maps.vipFilter) return;
    const bits = extra === undefined
      ? vipFilterBitmap([...this.services.values()].map((s) => s.spec.address))
      : vipFilterBitmap([extra]).map((w, i) => w | this.vipFilterBits[i]!);
    writeChangedWords(this.maps.vipFilter, this.vipFilterBits, bits);
  }

  /** A full-NAT real of this family, as "real of service", or undefined. */
  private fullNatUser(family: Family): string | undefined {
    for (const s of this.services.values()) {
      for (const r of s.reals.values()) {
        if (r.spec.method === 'fullnat' && familyOf(r.spec.address) === family) return `${r.spec.address} of ${serviceKey(s.spec)}`;
      }
    }
    return undefined;
  }

  private mustService(spec: ServiceSpec): ServiceState {
    const svc = this.services.get(serviceKey(spec));
    if (!svc) throw new Error(`no service ${serviceKey(spec)}`);
    return svc;
  }
}

function checkService(spec: ServiceSpec): Family {
  const family = familyOf(spec.address);
  if (!(spec.protocol in PROTO_NUMBER)) throw new Error(`service protocol '${spec.protocol}' is not tcp or udp`);
  portField(spec.port);
  if (spec.ops && spec.protocol !== 'udp') throw new Error('one-packet scheduling (ops) is for UDP services only');
  const p = spec.persistence;
  if (p) {
    if (!Number.isInteger(p.timeout) || p.timeout < 1 || p.timeout > 0xffffffff) {
      throw new Error(`service ${serviceKey(spec)}: persistence timeout ${p.timeout} is not a whole number of seconds in 1..4294967295`);
    }
    const max = family === 4 ? 32 : 128;
    const g = p.granularity ?? max;
    if (!Number.isInteger(g) || g < 1 || g > max) {
      throw new Error(`service ${serviceKey(spec)}: persistence granularity /${g} is not a prefix length in 1..${max}`);
    }
  }
  return family;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function vipKey(address: string, port: number, proto: number): Buffer {
  return encode(XlbVipKey, { addr: addrBytes(address), port: portField(port), proto, family: familyOf(address) });
}

function serviceEntry(id: number, s: ServiceSpec): Buffer {
  const flags = (s.hashSourceOnly ? XLB_SVC_F_HASH_SRC_ONLY : 0) | (s.ops ? XLB_SVC_F_OPS : 0);
  const p = s.persistence;
  return encode(XlbService, {
    id, flags, persist_timeout: p?.timeout ?? 0, persist_plen: p ? p.granularity ?? (familyOf(s.address) === 4 ? 32 : 128) : 0,
  });
}

/** The entry as written: the drained flag set for a real of weight 0. */
function withDrained(entry: Buffer, r: RealSpec): Buffer {
  if (r.weight !== 0) return entry;
  const out = Buffer.from(entry);
  const f = XlbReal.fields.find((x) => x.name === 'flags')!;
  out.writeUInt16LE(out.readUInt16LE(f.offset) | XLB_REAL_F_DRAINED, f.offset);
  return out;
}

function realEntry(r: RealSpec, service: ServiceSpec): Buffer {
  const ifindex = r.ifindex ?? 0;
  if (!Number.isInteger(ifindex) || ifindex < 0) throw new Error(`real ${r.address}: ifindex ${ifindex} is not valid`);
  if (!(r.method in METHOD_NUMBER)) throw new Error(`real ${r.address}: method '${r.method}' is not dr, tun, nat or fullnat`);
  const port = r.port ?? 0;
  try {
    portField(port);
  } catch {
    throw new Error(`real ${r.address}: port ${port} is not in 0..65535`);
  }
  if (!isNat(r.method) && port !== 0 && port !== service.port) {
    throw new Error(`real ${r.address}: port ${port} needs the nat or fullnat method (${r.method.toUpperCase()} keeps the service's port ${service.port})`);
  }
  return encode(XlbReal, {
    addr: addrBytes(r.address),
    dmac: macBytes(r.mac),
    smac: macBytes(r.smac),
    ifindex,
    family: familyOf(r.address),
    method: METHOD_NUMBER[r.method],
    flags: XLB_REAL_F_ACTIVE,
    port: isNat(r.method) ? portField(port) : 0,
  });
}

const hasNatReal = (svc: ServiceState | undefined): boolean => svc !== undefined && [...svc.reals.values()].some((r) => isNat(r.spec.method));

/** Write the words of a bitmap array map that differ from `written` (what it holds), each one 8-byte store. */
function writeChangedWords(map: MapLike, written: BigUint64Array, bits: BigUint64Array): void {
  const value = Buffer.alloc(8);
  bits.forEach((w, i) => {
    if (w === written[i]) return;
    value.writeBigUInt64LE(w);
    map.update(u32(i), value);
    written[i] = w;
  });
}

/** The vip_filter bitmap (xlb_abi.h) with the bit of each of these addresses set. */
export function vipFilterBitmap(addresses: Iterable<string>): BigUint64Array {
  const bits = new BigUint64Array(XLB_VIP_FILTER_WORDS);
  for (const a of addresses) {
    const b = addrBytes(a);
    let x = 0;
    for (let i = 0; i < 16; i += 4) x ^= b.readUInt32LE(i);
    x = (x ^ (x >>> 16)) & 0xffff;
    bits[x >> 6]! |= 1n << BigInt(x & 63);
  }
  return bits;
}

/**
 * The nat_ports bitmap of these reals (xlb_abi.h): the port each NAT or full-NAT real answers
 * from, its own or its service's; every port when that is 0 (an all-ports service).
 */
export function natPortBitmap(reals: Iterable<{ service: ServiceSpec; real: RealSpec }>): BigUint64Array {
  const bits = new BigUint64Array(XLB_NAT_PORT_WORDS);
  for (const { service, real } of reals) {
    if (!isNat(real.method)) continue;
    const port = real.port || service.port;
    if (port === 0) return bits.fill(0xffff_ffff_ffff_ffffn);
    bits[port >> 6]! |= 1n << BigInt(port & 63);
  }
  return bits;
}

/** A configuration with every value checked and every default filled in. */
interface CheckedConfig {
  tunSrc4: string; tunSrc4Bits: number; tunSrc6: string; tunSrc6Bits: number; tunTtl: number;
  natSrc4?: string; natSrc6?: string;
  natTimeouts: NatTimeouts;
}

function checkConfig(cfg: ForwarderConfig): CheckedConfig {
  const out: CheckedConfig = {
    tunSrc4: cfg.tunSrc4 ?? '0.0.0.0', tunSrc4Bits: cfg.tunSrc4Bits ?? 0,
    tunSrc6: cfg.tunSrc6 ?? '::', tunSrc6Bits: cfg.tunSrc6Bits ?? 0,
    tunTtl: cfg.tunTtl ?? 64,
    natTimeouts: { ...NAT_TIMEOUT_DEFAULTS },
  };
  if (familyOf(out.tunSrc4) !== 4) throw new Error(`tunSrc4 '${out.tunSrc4}' is not an IPv4 address`);
  if (familyOf(out.tunSrc6) !== 6) throw new Error(`tunSrc6 '${out.tunSrc6}' is not an IPv6 address`);
  for (const [name, bits] of [['tunSrc4Bits', out.tunSrc4Bits], ['tunSrc6Bits', out.tunSrc6Bits]] as const) {
    if (!Number.isInteger(bits) || bits < 0 || bits > 32) throw new Error(`${name} ${bits} is not in 0..32`);
  }
  if (!Number.isInteger(out.tunTtl) || out.tunTtl < 1 || out.tunTtl > 255) throw new Error(`tunTtl ${out.tunTtl} is not in 1..255`);
  for (const [name, family, value] of [['natSrc4', 4, cfg.natSrc4], ['natSrc6', 6, cfg.natSrc6]] as const) {
    if (value === undefined) continue;
    if (!isAddressOf(value, family)) throw new Error(`${name} '${value}' is not an IPv${family} address`);
    if (addrBytes(value).equals(Buffer.alloc(16))) throw new Error(`${name} ${value} is the unspecified address: give the full-NAT source address, or leave it out`);
    if (family === 4) out.natSrc4 = value;
    else out.natSrc6 = value;
  }
  for (const name of ['tcp', 'tcpFin', 'udp'] as const) {
    const v = cfg.natTimeouts?.[name];
    if (v === undefined) continue;
    if (!Number.isInteger(v) || v < 1 || v > 0xffffffff) throw new Error(`natTimeouts.${name} ${v} is not a whole number of seconds in 1..4294967295`);
    out.natTimeouts[name] = v;
  }
  return out;
}

function isAddressOf(text: string, family: Family): boolean {
  try {
    return familyOf(text) === family;
  } catch {
    return false;
  }
}

/** The configuration as encodeConfig wrote it (adoption); a never-written one reads as the defaults. */
function decodeConfig(b: Buffer): { config: CheckedConfig; nat: boolean } {
  const c = decode(XlbConfig, b);
  const zero = (x: Buffer) => x.every((byte) => byte === 0);
  const natSrc4 = c.nat_src4 as Buffer;
  const natSrc6 = c.nat_src6 as Buffer;
  const config: CheckedConfig = {
    tunSrc4: addrText(c.tun_src4 as Buffer, 4), tunSrc4Bits: c.tun_src4_bits as number,
    tunSrc6: addrText(c.tun_src6 as Buffer, 6), tunSrc6Bits: c.tun_src6_bits as number,
    tunTtl: (c.tun_ttl as number) || 64,
    natTimeouts: {
      tcp: (c.nat_tcp_timeout as number) || NAT_TIMEOUT_DEFAULTS.tcp,
      tcpFin: (c.nat_tcp_fin_timeout as number) || NAT_TIMEOUT_DEFAULTS.tcpFin,
      udp: (c.nat_udp_timeout as number) || NAT_TIMEOUT_DEFAULTS.udp,
    },
  };
  if (!zero(natSrc4)) config.natSrc4 = addrText(natSrc4, 4);
  if (!zero(natSrc6)) config.natSrc6 = addrText(natSrc6, 6);
  return { config, nat: ((c.nat_flags as number) & XLB_CFG_F_NAT) !== 0 };
}

/** Read a bitmap array map into `into` (what it holds). */
function readWords(map: MapLike, into: BigUint64Array): void {
  const all = map.readAll();
  for (let i = 0; i < into.length && (i + 1) * 8 <= all.length; i++) into[i] = all.readBigUInt64LE(i * 8);
}

function encodeConfig(c: CheckedConfig, nat: boolean): Buffer {
  return encode(XlbConfig, {
    tun_src4: addrBytes(c.tunSrc4).subarray(0, 4),
    tun_src6: addrBytes(c.tunSrc6),
    tun_src4_bits: c.tunSrc4Bits,
    tun_src6_bits: c.tunSrc6Bits,
    tun_ttl: c.tunTtl,
    nat_src4: addrBytes(c.natSrc4 ?? '0.0.0.0').subarray(0, 4),
    nat_src6: addrBytes(c.natSrc6 ?? '::'),
    nat_flags: nat ? XLB_CFG_F_NAT : 0,
    nat_tcp_timeout: c.natTimeouts.tcp,
    nat_tcp_fin_timeout: c.natTimeouts.tcpFin,
    nat_udp_timeout: c.natTimeouts.udp,
  });
}

function sumStats(perCpu: readonly Buffer[]): Stats {
  const total: Stats = { packets: 0n, bytes: 0n, conns: 0n };
  for (const v of perCpu) {
    const s = decode(XlbStats, v);
    total.packets += s.packets as bigint;
    total.bytes += s.bytes as bigint;
    total.conns += s.conns as bigint;
  }
  return total;
}

