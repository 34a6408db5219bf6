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
 */
import {
  XLB_CFG_F_NAT, XLB_COUNTERS, XLB_CT_SIZE_DEFAULT, XLB_MAGLEV_SIZE_DEFAULT, XLB_MAX_REALS, XLB_MAX_SERVICES,
  XLB_NAT_F_CLOSING, XLB_NAT_F_FULL, XLB_NAT_PORT_WORDS, XLB_NAT_SIZE_DEFAULT, XLB_PERSIST_SIZE_DEFAULT, XLB_REAL_F_ACTIVE,
  XLB_REAL_F_DRAINED, XLB_SVC_F_HASH_SRC_ONLY, XLB_SVC_F_OPS, XLB_VERDICT_COUNTERS, XLB_VIP_FILTER_WORDS,
  XlbConfig, XlbFlowKey, XlbMethod, XlbNat, XlbPersist, XlbPersistKey, XlbReal, XlbService, XlbStats, XlbVipKey, decode, encode,
} from './abi.ts';
import { buildMaglevTable, isPrime } from './maglev.ts';
import { addrBytes, addrText, familyOf, macBytes, macText, portField, type Family } from './net.ts';
import {
  BPF_F_MMAPABLE, BPF_MAP_TYPE_ARRAY, BpfMap, type BpfObject, type BpfProgram, type MapLike, bpfObjectPath, openObject, xdpTestContext,
} from '../bpf/index.ts';

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
const isNat = (m: Method): boolean => m === 'nat' || m === 'fullnat';
export const DEFAULT_OBJECT = bpfObjectPath('xlb');

type CounterOf<T> = T extends `XLB_CNT_${infer N}` ? Lowercase<N> : never;
/** Counter names as reported: 'XLB_CNT_DROP_NO_REAL' → 'drop_no_real'. */
export type CounterName = CounterOf<(typeof XLB_COUNTERS)[number]>;
const counterName = (c: (typeof XLB_COUNTERS)[number]): CounterName => c.slice('XLB_CNT_'.length).toLowerCase() as CounterName;
export const COUNTER_NAMES = XLB_COUNTERS.map(counterName);

interface RealState {
  id: number;
  spec: RealSpec;
  /** the bytes written to the reals map but the drained flag: a change means a new id */
  entry: Buffer;
}

interface ServiceState {
  id: number;
  spec: ServiceSpec;
  reals: Map<string, RealState>; // by real address
}

/** Ids 1..max handed out lowest-first, then reused in the order they were freed. */
class IdPool {
  private next = 1;
  private readonly freed: number[] = [];
  constructor(private readonly max: number, private readonly what: string) {}
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
}

export class XdpForwarder {
  readonly maglevSize: number;
  private readonly services = new Map<string, ServiceState>();
  private readonly serviceIds: IdPool;
  private readonly realIds: IdPool;
  private readonly maps: ForwarderMaps;
  /** the configuration as last set (checked), and the NAT flag kept from the reals */
  private config: CheckedConfig;
  private natInUse = false;
  /** the nat_ports bitmap as written */
  private readonly natPortBits = new BigUint64Array(XLB_NAT_PORT_WORDS);
  /** the vip_filter bitmap as written */
  private readonly vipFilterBits = new BigUint64Array(XLB_VIP_FILTER_WORDS);

  /** The maps start as the program left them: call setConfig before anything else. */
  constructor(private readonly parts: ForwarderParts) {
    this.maglevSize = parts.maglevSize;
    this.maps = parts.maps;
    this.serviceIds = new IdPool(parts.maxServices - 1, 'service');
    this.realIds = new IdPool(parts.maxReals - 1, 'real');
    this.config = checkConfig({});
  }

  /** The loaded XDP program (to attach or test-run). */
  get program(): BpfProgram {
    if (!this.parts.program) throw new Error('this forwarder has no loaded program (fake maps)');
    return this.parts.program;
  }

  /** Load the program and its maps; the forwarder starts with the default configuration. */
  static open(options: ForwarderOptions = {}): XdpForwarder {
    const parts = XdpForwarder.load(options);
    try {
      const fw = new XdpForwarder(parts);
      fw.setConfig({});
      return fw;
    } catch (err) {
      parts.object?.close();
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
    const maxServices = options.maxServices ?? XLB_MAX_SERVICES;
    const maxReals = options.maxReals ?? XLB_MAX_REALS;
    const obj = openObject(options.object ?? DEFAULT_OBJECT);
    try {
      obj.setGlobals('.rodata', { maglev_size: maglevSize });
      obj.setInnerMapMaxEntries('maglev_tables', maglevSize);
      obj.setMapMaxEntries('maglev_tables', maxServices);
      obj.setMapMaxEntries('service_stats', maxServices);
      obj.setMapMaxEntries('services', maxServices * 2);
      obj.setMapMaxEntries('reals', maxReals);
      obj.setMapMaxEntries('real_stats', maxReals);
      obj.setMapMaxEntries('conntrack4', options.ctSize ?? XLB_CT_SIZE_DEFAULT);
      obj.setMapMaxEntries('conntrack', options.ctSize ?? XLB_CT_SIZE_DEFAULT);
      obj.setMapMaxEntries('nat', options.natSize ?? XLB_NAT_SIZE_DEFAULT);
      obj.setMapMaxEntries('persist', options.persistSize ?? XLB_PERSIST_SIZE_DEFAULT);
      obj.load();
      return {
        object: obj,
        program: obj.program('xlb_xdp'),
        maps: {
          services: obj.map('services'),
          maglev: obj.map('maglev_tables'),
          reals: obj.map('reals'),
          conntrack4: obj.map('conntrack4'),
          conntrack: obj.map('conntrack'),
          nat: obj.map('nat'),
          natPorts: obj.map('nat_ports'),
          persist: obj.map('persist'),
          serviceStats: obj.map('service_stats'),
          realStats: obj.map('real_stats'),
          globalStats: obj.map('global_stats'),
          config: obj.map('config'),
          vipFilter: obj.map('vip_filter'),
        },
        createTable: (serviceId, size) => BpfMap.create({
          type: BPF_MAP_TYPE_ARRAY, name: `xlb_mg_${serviceId}`, keySize: 4, valueSize: 4, maxEntries: size, flags: BPF_F_MMAPABLE,
        }),
        maglevSize, maxServices, maxReals,
      };
    } catch (err) {
      obj.close();
      throw err;
    }
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
    const fresh: { key: Buffer; value: Buffer }[] = [];
    try {
      // 1. real entries: reuse an id only when its entry is byte-identical (the drained flag
      //    aside, which is rewritten in place when it changes)
      for (const r of reals) {
        const entry = entries.get(r.address)!;
        const old = svc.reals.get(r.address);
        if (old && old.entry.equals(entry)) {
          if ((old.spec.weight === 0) !== (r.weight === 0)) this.maps.reals.update(u32(old.id), withDrained(entry, r));
          newReals.set(r.address, { ...old, spec: r });
        } else {
          const id = this.realIds.take();
          fresh.push({ key: u32(id), value: withDrained(entry, r) });
          newReals.set(r.address, { id, spec: r, entry });
        }
      }
      // the new ids' entries in one call (a full apply writes ~100 per service)
      if (fresh.length > 0) this.maps.reals.updateBatch(fresh.map((f) => f.key), fresh.map((f) => f.value));
      for (const [addr, old] of svc.reals) {
        if (newReals.get(addr)?.id !== old.id) retired.push(old);
      }
      // 2. the table, swapped in whole
      this.installTable(svc.id, [...newReals.values()]);
      // 3. the service entry (first time, or flags changed) and its address marker
      this.maps.services.update(vipKey(spec.address, spec.port, PROTO_NUMBER[spec.protocol]), serviceEntry(svc.id, spec));
      this.maps.services.update(vipKey(spec.address, 0, 0), encode(XlbService, { id: 0, flags: 0 }));
    } catch (err) {
      // give back the ids this call took; the old state stays as it was
      for (const r of newReals.values()) {
        if (svc.reals.get(r.spec.address)?.id !== r.id) this.realIds.give(r.id);
      }
      if (!existing) {
        this.serviceIds.give(svc.id);
        this.writeVipFilter();
      }
      throw err;
    }
    // 4. deactivate what is no longer used
    for (const r of retired) this.retireReal(r);
    svc.spec = spec;
    svc.reals = newReals;
    this.services.set(key, svc);
    if (natTouched) this.updateNatState();
    return { serviceId: svc.id, realIds: new Map([...newReals].map(([a, r]) => [a, r.id])) };
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
    for (const r of svc.reals.values()) this.retireReal(r);
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

  close(): void {
    if (this.parts.object) this.parts.object.close();
    else for (const m of Object.values(this.maps)) m.close();
  }

  private installTable(serviceId: number, reals: readonly RealState[]): void {
    const table = buildMaglevTable(
      reals.map((r) => ({ key: r.spec.address, id: r.id, weight: r.spec.weight })),
      this.maglevSize,
    );
    const inner = this.parts.createTable(serviceId, this.maglevSize);
    try {
      // no program sees the new map before the swap: filled by one copy (mmap), not per slot
      inner.writeAll(Buffer.from(table.buffer, table.byteOffset, table.byteLength));
      this.maps.maglev.update(u32(serviceId), u32(inner.fd));
    } finally {
      inner.close(); // the outer map holds its own reference
    }
  }

  private retireReal(r: RealState): void {
    this.maps.reals.update(u32(r.id), Buffer.alloc(XlbReal.size));
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

