/**
 * Control side of the XDP forwarder (bpf/xlb.bpf.c): loads the object and programs services,
 * reals and Maglev tables into its maps.
 *
 * Consistency rules, so that no packet sees a half-written state:
 *  - a real's map entry is written once, before any table refers to it, and never changed
 *    while in use: a change of MAC, method or interface gives the real a new id;
 *  - a service's Maglev table is a new inner map, filled completely, then swapped into the
 *    outer map with one update;
 *  - a service entry is inserted only after its table is in place, and deleted first;
 *  - removed reals are deactivated after the swap, so connection-table entries that still
 *    point at them are rescheduled by the program (ct_stale);
 *  - ids are handed out again in first-freed, first-reused order, so a stale connection-table
 *    entry is very unlikely to meet its id reused (the program also checks the real is active).
 */
import {
  XLB_COUNTERS, XLB_CT_SIZE_DEFAULT, XLB_MAGLEV_SIZE_DEFAULT, XLB_MAX_REALS, XLB_MAX_SERVICES,
  XLB_REAL_F_ACTIVE, XLB_SVC_F_HASH_SRC_ONLY, XLB_SVC_F_OPS, XlbConfig, XlbMethod, XlbReal, XlbService, XlbStats,
  XlbVipKey, decode, encode,
} from './abi.ts';
import { buildMaglevTable, isPrime } from './maglev.ts';
import { addrBytes, familyOf, macBytes, portField, type Family } from './net.ts';
import {
  BPF_MAP_TYPE_ARRAY, BpfMap, type BpfObject, type BpfProgram, type MapLike, bpfObjectPath, openObject, xdpTestContext,
} from '../bpf/index.ts';

export type Protocol = 'tcp' | 'udp';
export type Method = 'dr' | 'tun';

export interface ServiceSpec {
  address: string;
  port: number;          // 0 = all ports
  protocol: Protocol;
  /** Hash on the client address only (persistence, IPVS sh). */
  hashSourceOnly?: boolean;
  /** One-packet scheduling (UDP): every packet scheduled, no connection table. */
  ops?: boolean;
}

export interface RealSpec {
  address: string;
  weight: number;        // 0 = drained: keeps its connections, gets no new ones
  method: Method;
  mac: string;           // next hop MAC (the real itself for DR)
  smac: string;          // source MAC on the egress interface
  ifindex?: number;      // egress interface; 0 or absent = back out of the ingress interface
}

export interface ForwarderOptions {
  object?: string;
  maglevSize?: number;
  ctSize?: number;
  maxServices?: number;
  maxReals?: number;
}

export interface TunnelConfig {
  tunSrc4: string;
  tunSrc4Bits: number;
  tunSrc6: string;
  tunSrc6Bits: number;
  tunTtl?: number;
}

export interface Stats { packets: bigint; bytes: bigint; conns: bigint }

export interface TestRunResult { verdict: number; packet: Buffer; duration: number }

const PROTO_NUMBER: Record<Protocol, number> = { tcp: 6, udp: 17 };
const METHOD_NUMBER: Record<Method, number> = { dr: XlbMethod.XLB_METHOD_DR, tun: XlbMethod.XLB_METHOD_TUN };
export const DEFAULT_OBJECT = bpfObjectPath('xlb');

type CounterOf<T> = T extends `XLB_CNT_${infer N}` ? Lowercase<N> : never;
/** Counter names as reported: 'XLB_CNT_DROP_NO_REAL' → 'drop_no_real'. */
export type CounterName = CounterOf<(typeof XLB_COUNTERS)[number]>;
export const COUNTER_NAMES = XLB_COUNTERS.map((c) => c.slice('XLB_CNT_'.length).toLowerCase() as CounterName);

interface RealState {
  id: number;
  spec: RealSpec;
  /** the bytes written to the reals map: a change means a new id */
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
  services: MapLike; maglev: MapLike; reals: MapLike; conntrack: MapLike;
  serviceStats: MapLike; realStats: MapLike; globalStats: MapLike; config: MapLike;
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

  constructor(private readonly parts: ForwarderParts) {
    this.maglevSize = parts.maglevSize;
    this.maps = parts.maps;
    this.serviceIds = new IdPool(parts.maxServices - 1, 'service');
    this.realIds = new IdPool(parts.maxReals - 1, 'real');
  }

  /** The loaded XDP program (to attach or test-run). */
  get program(): BpfProgram {
    if (!this.parts.program) throw new Error('this forwarder has no loaded program (fake maps)');
    return this.parts.program;
  }

  static open(options: ForwarderOptions = {}): XdpForwarder {
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
      obj.setMapMaxEntries('conntrack', options.ctSize ?? XLB_CT_SIZE_DEFAULT);
      obj.load();
      const fw = new XdpForwarder({
        object: obj,
        program: obj.program('xlb_xdp'),
        maps: {
          services: obj.map('services'),
          maglev: obj.map('maglev_tables'),
          reals: obj.map('reals'),
          conntrack: obj.map('conntrack'),
          serviceStats: obj.map('service_stats'),
          realStats: obj.map('real_stats'),
          globalStats: obj.map('global_stats'),
          config: obj.map('config'),
        },
        createTable: (serviceId, size) => BpfMap.create({
          type: BPF_MAP_TYPE_ARRAY, name: `xlb_mg_${serviceId}`, keySize: 4, valueSize: 4, maxEntries: size,
        }),
        maglevSize, maxServices, maxReals,
      });
      fw.setConfig({ tunSrc4: '0.0.0.0', tunSrc4Bits: 0, tunSrc6: '::', tunSrc6Bits: 0 });
      return fw;
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  setConfig(cfg: TunnelConfig): void {
    if (familyOf(cfg.tunSrc4) !== 4) throw new Error(`tunSrc4 '${cfg.tunSrc4}' is not an IPv4 address`);
    if (familyOf(cfg.tunSrc6) !== 6) throw new Error(`tunSrc6 '${cfg.tunSrc6}' is not an IPv6 address`);
    for (const [name, bits] of [['tunSrc4Bits', cfg.tunSrc4Bits], ['tunSrc6Bits', cfg.tunSrc6Bits]] as const) {
      if (!Number.isInteger(bits) || bits < 0 || bits > 32) throw new Error(`${name} ${bits} is not in 0..32`);
    }
    const ttl = cfg.tunTtl ?? 64;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 255) throw new Error(`tunTtl ${ttl} is not in 1..255`);
    this.maps.config.update(u32(0), encode(XlbConfig, {
      tun_src4: addrBytes(cfg.tunSrc4).subarray(0, 4),
      tun_src6: addrBytes(cfg.tunSrc6),
      tun_src4_bits: cfg.tunSrc4Bits,
      tun_src6_bits: cfg.tunSrc6Bits,
      tun_ttl: ttl,
    }));
  }

  /**
   * Create or update a service with exactly these reals. Unchanged reals keep their ids (and so
   * their connections); the new Maglev table replaces the old one in a single map update.
   */
  setService(spec: ServiceSpec, reals: readonly RealSpec[]): { serviceId: number; realIds: Map<string, number> } {
    const family = checkService(spec);
    // every real's entry is built (and so checked) before anything is written
    const entries = new Map<string, Buffer>();
    for (const r of reals) {
      if (familyOf(r.address) !== family && r.method === 'dr') {
        throw new Error(`real ${r.address}: a DR real must have the service's address family`);
      }
      if (entries.has(r.address)) throw new Error(`real ${r.address} is listed twice`);
      if (!Number.isInteger(r.weight) || r.weight < 0) throw new Error(`real ${r.address}: weight ${r.weight} is not an integer >= 0`);
      entries.set(r.address, realEntry(r));
    }

    const key = serviceKey(spec);
    const existing = this.services.get(key);
    const svc: ServiceState = existing ?? { id: this.serviceIds.take(), spec, reals: new Map() };
    const newReals = new Map<string, RealState>();
    const retired: RealState[] = [];
    try {
      // 1. real entries: reuse an id only when its entry is byte-identical
      for (const r of reals) {
        const entry = entries.get(r.address)!;
        const old = svc.reals.get(r.address);
        if (old && old.entry.equals(entry)) {
          newReals.set(r.address, { ...old, spec: r });
        } else {
          const id = this.realIds.take();
          this.maps.reals.update(u32(id), entry);
          newReals.set(r.address, { id, spec: r, entry });
        }
      }
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
      if (!existing) this.serviceIds.give(svc.id);
      throw err;
    }
    // 4. deactivate what is no longer used
    for (const r of retired) this.retireReal(r);
    svc.spec = spec;
    svc.reals = newReals;
    this.services.set(key, svc);
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
    }
    this.maps.maglev.delete(u32(svc.id));
    for (const r of svc.reals.values()) this.retireReal(r);
    this.maps.serviceStats.update(u32(svc.id), Buffer.alloc(XlbStats.size * this.maps.serviceStats.valuesPerKey()));
    this.serviceIds.give(svc.id);
    return true;
  }

  counters(): Record<CounterName, bigint> {
    const out = {} as Record<CounterName, bigint>;
    COUNTER_NAMES.forEach((name, i) => {
      out[name] = this.maps.globalStats.lookupPerCpu(u32(i)).reduce((sum, v) => sum + v.readBigUInt64LE(0), 0n);
    });
    return out;
  }

  serviceStats(spec: ServiceSpec): Stats {
    const svc = this.mustService(spec);
    return sumStats(this.maps.serviceStats.lookupPerCpu(u32(svc.id)));
  }

  realStats(spec: ServiceSpec, realAddress: string): Stats {
    const real = this.mustService(spec).reals.get(realAddress);
    if (!real) throw new Error(`service ${serviceKey(spec)} has no real ${realAddress}`);
    return sumStats(this.maps.realStats.lookupPerCpu(u32(real.id)));
  }

  /** Number of connection-table entries (walks the map: for tests and status, not hot paths). */
  conntrackSize(): number {
    let n = 0;
    for (const _ of this.maps.conntrack.keys()) n++;
    return n;
  }

  clearConntrack(): void {
    const keys = [...this.maps.conntrack.keys()];
    for (const k of keys) this.maps.conntrack.delete(k);
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
      const keys = Buffer.alloc(this.maglevSize * 4);
      for (let i = 0; i < this.maglevSize; i++) keys.writeUInt32LE(i, i * 4);
      inner.updateBatch(keys, Buffer.from(table.buffer, table.byteOffset, table.byteLength), this.maglevSize);
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
  return encode(XlbService, { id, flags });
}

function realEntry(r: RealSpec): Buffer {
  const ifindex = r.ifindex ?? 0;
  if (!Number.isInteger(ifindex) || ifindex < 0) throw new Error(`real ${r.address}: ifindex ${ifindex} is not valid`);
  if (!(r.method in METHOD_NUMBER)) throw new Error(`real ${r.address}: method '${r.method}' is not dr or tun`);
  return encode(XlbReal, {
    addr: addrBytes(r.address),
    dmac: macBytes(r.mac),
    smac: macBytes(r.smac),
    ifindex,
    family: familyOf(r.address),
    method: METHOD_NUMBER[r.method],
    flags: XLB_REAL_F_ACTIVE,
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

