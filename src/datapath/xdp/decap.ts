/**
 * Control side of the decapsulation program (bpf/xlb_decap.bpf.c) that real servers run to
 * receive the forwarder's TUN traffic: load, allowed outer sources, counters, test runs, and the
 * attachment of one program per interface, pinned so that a later process (`xlb decap status`,
 * `xlb decap detach`) finds it again.
 *
 * Pins: /sys/fs/bpf/xlb/decap/<netns inode>-<ifname>/ holds the program ('prog') and its maps
 * (by their names: decap_stats, decap_config, decap_src4, decap_src6). The network namespace's
 * inode is part of the name because two namespaces may both have an eth0. The program stays
 * attached (netlink XDP attachment, not a bpf_link) when the attaching process exits; the pins
 * are how it is found and removed.
 *
 * bpffs: pins live on the BPF filesystem mounted at /sys/fs/bpf. `ip netns exec` remounts /sys
 * and hides it; run in a namespace with `nsenter --net=/run/netns/NAME`, which keeps the mount
 * namespace. Interface names are resolved over netlink (src/net/link.ts) for the same reason.
 *
 * Allowed sources: when the list is empty every outer source is accepted; otherwise a tunnel
 * packet must come from one of the prefixes of its family. A change adds the new prefixes, then
 * turns the filter on, then deletes the old ones (so no packet from a source allowed both before
 * and after is ever dropped); emptying the list turns the filter off first. Only when old and new
 * prefixes of a family do not fit in its trie together are the old ones deleted first.
 */
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  BPFFS, BPF_ANY, BpfMap, BpfProgram, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE, XDP_FLAGS_UPDATE_IF_NOEXIST, XLB_PIN_ROOT,
  bpfError, bpfObjectPath, isBpfError, openObject, removePinDir, requireBpffs, xdpAttach, xdpDetach, xdpQuery,
  type BpfObject, type MapLike,
} from '../bpf/index.ts';
import { decode, encode } from './abi.ts';
import {
  XLB_DECAP_COUNTERS, XLB_DECAP_F_FILTER_SRC, XLB_DECAP_MAX_PREFIXES, XlbDecapConfig, XlbDecapSrc4Key, XlbDecapSrc6Key,
} from './decap-abi.ts';
import { addrBytes, addrText, familyOf, type Family } from './net.ts';
import { checkIfname, ifindexByName } from '../../net/link.ts';

/** Where `make bpf` puts the program. */
export const DECAP_OBJECT = bpfObjectPath('xlb_decap');
export const DECAP_PROGRAM = 'xlb_decap';
export { BPFFS };
export const DECAP_PIN_ROOT = `${XLB_PIN_ROOT}/decap`;
/** The pinned program's file name in a pin directory; the maps are pinned under their own names. */
const PROG_PIN = 'prog';
const MAP_NAMES = { stats: 'decap_stats', config: 'decap_config', src4: 'decap_src4', src6: 'decap_src6' } as const;

type CounterOf<T> = T extends `XLB_DECAP_CNT_${infer N}` ? Lowercase<N> : never;
/** Counter names as reported: 'XLB_DECAP_CNT_DROP_SOURCE' → 'drop_source'. */
export type DecapCounterName = CounterOf<(typeof XLB_DECAP_COUNTERS)[number]>;
export const DECAP_COUNTER_NAMES = XLB_DECAP_COUNTERS.map((c) => c.slice('XLB_DECAP_CNT_'.length).toLowerCase() as DecapCounterName);
export type DecapCounters = Record<DecapCounterName, bigint>;

export type XdpMode = 'native' | 'generic';
export const XDP_MODES: readonly XdpMode[] = ['native', 'generic'];
export const MODE_FLAG: Record<XdpMode, number> = { native: XDP_FLAGS_DRV_MODE, generic: XDP_FLAGS_SKB_MODE };

// ---------------------------------------------------------------- prefixes

export interface Prefix {
  family: Family;
  /** 4 or 16 bytes, network order, host bits zero */
  addr: Buffer;
  length: number;
}

/**
 * 'ADDRESS/LENGTH' (or a bare address: /32, /128) of either family. Refused, with the reason: not
 * an address, a length that is not a decimal integer in 0..32 (IPv4) or 0..128 (IPv6), and bits
 * set past the length (a typo more often than not: the message names the network meant).
 */
export function parsePrefix(text: string): Prefix {
  const [address = '', len, ...rest] = text.split('/');
  let family: Family;
  try {
    family = familyOf(address);
  } catch {
    throw new Error(`'${text}' is not a prefix: '${address}' is not an IPv4 or IPv6 address`);
  }
  const max = family === 4 ? 32 : 128;
  if (rest.length > 0 || (len !== undefined && !/^\d{1,3}$/.test(len))) {
    throw new Error(`'${text}' is not a prefix: write ADDRESS/LENGTH, the length a number in 0..${max}`);
  }
  const length = len === undefined ? max : Number(len);
  if (length > max) throw new Error(`'${text}': the prefix length ${length} is not in 0..${max}`);
  const addr = addrBytes(address).subarray(0, family === 4 ? 4 : 16);
  const masked = Buffer.from(addr);
  masked.forEach((byte, i) => { masked[i] = byte & (0xff00 >> Math.min(8, Math.max(0, length - i * 8))); });
  if (!masked.equals(addr)) {
    throw new Error(`'${text}' has bits set past the prefix length (did you mean ${formatPrefix({ family, addr: masked, length })}?)`);
  }
  return { family, addr: masked, length };
}

export function formatPrefix(p: Prefix): string {
  const sixteen = Buffer.alloc(16);
  p.addr.copy(sixteen);
  return `${addrText(sixteen, p.family)}/${p.length}`;
}

const keyLayout = (family: Family) => (family === 4 ? XlbDecapSrc4Key : XlbDecapSrc6Key);
const prefixKey = (p: Prefix): Buffer => encode(keyLayout(p.family), { prefixlen: p.length, addr: p.addr });

function keyPrefix(key: Buffer, family: Family): Prefix {
  const k = decode(keyLayout(family), key);
  return { family, addr: k.addr as Buffer, length: k.prefixlen as number };
}

// ---------------------------------------------------------------- the program and its maps

export interface DecapMaps { stats: MapLike; config: MapLike; src4: MapLike; src6: MapLike }

export interface DecapTestRun { verdict: number; packet: Buffer }

const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(n >>> 0); return b; };

/** The decapsulation program and its maps: freshly loaded, or opened from pins. */
export class XdpDecap {
  private constructor(
    readonly program: BpfProgram,
    readonly maps: DecapMaps,
    private readonly object: BpfObject | null,
  ) {}

  /** Load the program (not attached, not pinned). */
  static load(path = DECAP_OBJECT): XdpDecap {
    const obj = openObject(path);
    try {
      obj.load();
      const d = new XdpDecap(obj.program(DECAP_PROGRAM), {
        stats: obj.map(MAP_NAMES.stats), config: obj.map(MAP_NAMES.config),
        src4: obj.map(MAP_NAMES.src4), src6: obj.map(MAP_NAMES.src6),
      }, obj);
      d.maps.config.update(u32(0), encode(XlbDecapConfig, { flags: 0 }));
      return d;
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  /** Open a program and maps pinned by pin() in `dir`. ENOENT when something is missing. */
  static fromPins(dir: string): XdpDecap {
    const opened: (BpfMap | BpfProgram)[] = [];
    try {
      const open = (name: string) => { const m = BpfMap.fromPin(join(dir, name)); opened.push(m); return m; };
      const maps = { stats: open(MAP_NAMES.stats), config: open(MAP_NAMES.config), src4: open(MAP_NAMES.src4), src6: open(MAP_NAMES.src6) };
      const prog = BpfProgram.fromPin(join(dir, PROG_PIN));
      opened.push(prog);
      return new XdpDecap(prog, maps, null);
    } catch (err) {
      for (const o of opened) o.close();
      throw err;
    }
  }

  /** Pin the program and the maps in `dir` (which must exist). */
  pin(dir: string): void {
    this.program.pin(join(dir, PROG_PIN));
    for (const [role, name] of Object.entries(MAP_NAMES)) (this.maps[role as keyof DecapMaps] as BpfMap).pin(join(dir, name));
  }

  /** The kernel's id of the program (what an interface's XDP query reports). */
  get progId(): number {
    return this.program.info().id;
  }

  /** Replace the allowed outer sources (prefix texts); [] accepts every source. All are checked before any is written. */
  setAllowedSources(prefixes: readonly string[]): void {
    const wanted = new Map<string, Prefix>();
    for (const text of prefixes) {
      const p = parsePrefix(text);
      wanted.set(formatPrefix(p), p);
    }
    for (const family of [4, 6] as const) {
      const n = [...wanted.values()].filter((p) => p.family === family).length;
      if (n > XLB_DECAP_MAX_PREFIXES) throw new Error(`${n} IPv${family} prefixes given; at most ${XLB_DECAP_MAX_PREFIXES} are allowed`);
    }
    const config = (flags: number) => this.maps.config.update(u32(0), encode(XlbDecapConfig, { flags }));
    // Per family: the prefixes to add and the stale ones. New ones go in before the stale ones
    // go out, unless both together would not fit in the trie: then the stale ones go first.
    const plans = ([4, 6] as const).map((family) => {
      const trie = this.trie(family);
      const stale = [...trie.keys()].filter((k) => !wanted.has(formatPrefix(keyPrefix(k, family))));
      const adds = [...wanted.values()].filter((p) => p.family === family);
      return { trie, stale, adds, staleFirst: stale.length + adds.length > XLB_DECAP_MAX_PREFIXES };
    });
    if (wanted.size === 0) config(0);
    for (const p of plans) if (p.staleFirst) for (const k of p.stale) p.trie.delete(k);
    for (const p of plans) for (const a of p.adds) p.trie.update(prefixKey(a), Buffer.from([1]), BPF_ANY);
    if (wanted.size > 0) config(XLB_DECAP_F_FILTER_SRC);
    for (const p of plans) if (!p.staleFirst) for (const k of p.stale) p.trie.delete(k);
  }

  /** The allowed outer sources, IPv4 first, as 'address/length'. */
  allowedSources(): string[] {
    return ([4, 6] as const).flatMap((family) => [...this.trie(family).keys()].map((k) => keyPrefix(k, family))
      .sort((a, b) => Buffer.compare(a.addr, b.addr) || a.length - b.length)
      .map(formatPrefix));
  }

  /** Whether tunnel packets are checked against the allowed sources. */
  filterOn(): boolean {
    const v = this.maps.config.lookup(u32(0));
    return v !== null && ((decode(XlbDecapConfig, v).flags as number) & XLB_DECAP_F_FILTER_SRC) !== 0;
  }

  /** The counters, summed over the CPUs. */
  counters(): DecapCounters {
    const out = {} as DecapCounters;
    DECAP_COUNTER_NAMES.forEach((name, i) => {
      out[name] = this.maps.stats.lookupPerCpu(u32(i)).reduce((sum, v) => sum + v.readBigUInt64LE(0), 0n);
    });
    return out;
  }

  /** Run the program once on a frame (BPF_PROG_TEST_RUN). */
  testRun(frame: Buffer): DecapTestRun {
    const r = this.program.testRun({ data: frame });
    return { verdict: r.retval, packet: r.data };
  }

  close(): void {
    if (this.object) {
      this.object.close();
      return;
    }
    this.program.close();
    for (const m of Object.values(this.maps)) m.close();
  }

  private trie(family: Family): MapLike {
    return family === 4 ? this.maps.src4 : this.maps.src6;
  }
}

// ---------------------------------------------------------------- attachments

/** The inode of this process's network namespace: part of every pin directory's name. */
export function netnsInode(): number {
  return statSync('/proc/self/ns/net').ino;
}

export function pinDir(ifname: string, netns = netnsInode()): string {
  return join(DECAP_PIN_ROOT, `${netns}-${checkIfname(ifname)}`);
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Remove a pin directory: its pins, then the directory and the parents it leaves empty. */
function removePins(dir: string): void {
  removePinDir(dir, [DECAP_PIN_ROOT, XLB_PIN_ROOT]);
}

export interface DecapStatus {
  ifname: string;
  netns: number;
  pinDir: string;
  /** null when the interface no longer exists */
  ifindex: number | null;
  /** whether the pinned program is the one attached to the interface */
  attached: boolean;
  mode: XdpMode | null;
  progId: number;
  filter: boolean;
  allowSrc: string[];
  counters: DecapCounters;
}

/** Where on the interface (if anywhere) the program with this id is attached. */
export function attachedMode(ifindex: number | null, progId: number): XdpMode | null {
  if (ifindex === null) return null;
  const q = xdpQuery(ifindex);
  if (q.drvProgId === progId) return 'native';
  if (q.skbProgId === progId) return 'generic';
  return null;
}

async function ifindexOrNull(ifname: string): Promise<number | null> {
  try {
    return await ifindexByName(ifname);
  } catch (err) {
    if ((err as { code?: string }).code === 'ENODEV') return null;
    throw err;
  }
}

function statusOf(d: XdpDecap, ifname: string, netns: number, ifindex: number | null): DecapStatus {
  const progId = d.progId;
  const mode = attachedMode(ifindex, progId);
  return {
    ifname, netns, pinDir: pinDir(ifname, netns), ifindex, attached: mode !== null, mode, progId,
    filter: d.filterOn(), allowSrc: d.allowedSources(), counters: d.counters(),
  };
}

export interface DecapAttachOptions {
  /** default 'native' */
  mode?: XdpMode;
  /** allowed outer source prefixes; default: every source */
  allowSrc?: readonly string[];
  /** default: the built object */
  object?: string;
}

/**
 * Load the program, pin it, attach it to `ifname` of this network namespace.
 * Refused: a bad name, mode or prefix (EINVAL, before anything changes); no bpffs (ENOENT); no such
 * interface (ENODEV); xlb decap already attached there (EEXIST); another XDP program on the
 * interface (EBUSY). Pins left by a program that is no longer attached are replaced.
 */
export async function attachDecap(ifname: string, opts: DecapAttachOptions = {}): Promise<DecapStatus> {
  checkIfname(ifname);
  const mode = opts.mode ?? 'native';
  if (!XDP_MODES.includes(mode)) throw bpfError('EINVAL', 'bpf_xdp_attach', `mode '${String(mode)}' is not one of ${XDP_MODES.join(', ')}`);
  const allowSrc = opts.allowSrc ?? [];
  for (const p of allowSrc) parsePrefix(p);
  requireBpffs();
  const ifindex = await ifindexByName(ifname);
  const netns = netnsInode();
  const dir = pinDir(ifname, netns);

  if (exists(dir)) {
    let old: XdpDecap | undefined;
    try {
      old = XdpDecap.fromPins(dir);
    } catch { /* incomplete pins: stale */ }
    const progId = old?.progId;
    old?.close();
    if (progId !== undefined && attachedMode(ifindex, progId) !== null) {
      throw bpfError('EEXIST', 'bpf_xdp_attach', `xlb decap is already attached to ${ifname} (program id ${progId}): detach it first`);
    }
    removePins(dir);
  }
  const q = xdpQuery(ifindex);
  const other = q.drvProgId || q.skbProgId || q.hwProgId || q.progId;
  if (other) {
    throw bpfError('EBUSY', 'bpf_xdp_attach', `${ifname} already has an XDP program (id ${other}) that xlb decap did not attach: ` +
      `remove it first (ip link set dev ${ifname} xdp off)`);
  }

  const d = XdpDecap.load(opts.object);
  try {
    d.setAllowedSources(allowSrc);
    mkdirSync(dir, { recursive: true });
    try {
      d.pin(dir);
      xdpAttach(ifindex, d.program, MODE_FLAG[mode] | XDP_FLAGS_UPDATE_IF_NOEXIST);
    } catch (err) {
      removePins(dir);
      if (isBpfError(err) && err.syscall === 'bpf_xdp_attach' && mode === 'native' && err.code !== 'EBUSY') {
        err.message += ` (native mode needs the driver's support: try mode 'generic')`;
      }
      throw err;
    }
    return statusOf(d, ifname, netns, ifindex);
  } finally {
    d.close();
  }
}

export interface DecapDetachResult {
  ifname: string;
  /** the program was attached and has been detached */
  detached: boolean;
  /** why nothing was detached (pins removed all the same) */
  note?: string;
}

/**
 * Detach the program xlb decap attached to `ifname` and remove its pins. ENOENT when there are no
 * pins for it in this namespace. A program that is no longer attached (interface gone, or
 * replaced by someone) leaves the interface as it is; its pins are removed.
 */
export async function detachDecap(ifname: string): Promise<DecapDetachResult> {
  checkIfname(ifname);
  requireBpffs();
  const dir = pinDir(ifname);
  if (!exists(dir)) {
    throw bpfError('ENOENT', 'bpf_obj_get', `xlb decap is not attached to ${ifname} in this network namespace (no pins at ${dir})`);
  }
  const ifindex = await ifindexOrNull(ifname);
  let progId: number | undefined;
  try {
    const d = XdpDecap.fromPins(dir);
    progId = d.progId;
    d.close();
  } catch { /* incomplete pins: nothing to detach */ }
  const mode = progId === undefined ? null : attachedMode(ifindex, progId);
  if (mode !== null && ifindex !== null) xdpDetach(ifindex, MODE_FLAG[mode]);
  removePins(dir);
  if (mode !== null) return { ifname, detached: true };
  const note = ifindex === null ? `${ifname} no longer exists`
    : progId === undefined ? 'the pins were incomplete' : `the pinned program (id ${progId}) was no longer attached to ${ifname}`;
  return { ifname, detached: false, note };
}

/**
 * The status of xlb decap on `ifname`, or on every interface of this namespace it has pins for
 * (sorted by name). ENOENT for an interface without pins.
 */
export async function decapStatus(ifname?: string): Promise<DecapStatus[]> {
  requireBpffs();
  const netns = netnsInode();
  let names: string[];
  if (ifname !== undefined) {
    const dir = pinDir(ifname, netns);
    if (!exists(dir)) {
      throw bpfError('ENOENT', 'bpf_obj_get', `xlb decap is not attached to ${ifname} in this network namespace (no pins at ${dir})`);
    }
    names = [ifname];
  } else {
    const prefix = `${netns}-`;
    let entries: string[] = [];
    try {
      entries = readdirSync(DECAP_PIN_ROOT);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    names = entries.filter((e) => e.startsWith(prefix)).map((e) => e.slice(prefix.length)).sort();
  }
  const out: DecapStatus[] = [];
  for (const name of names) {
    const d = XdpDecap.fromPins(pinDir(name, netns));
    try {
      out.push(statusOf(d, name, netns, await ifindexOrNull(name)));
    } finally {
      d.close();
    }
  }
  return out;
}
