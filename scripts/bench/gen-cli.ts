/**
 * The generator CLI's options (scripts/gen.ts): parsed and checked here, purely, so that a bad
 * option gets one clear error naming it; scripts/gen.ts does the I/O.
 */
import { parseArgs } from 'node:util';
import { checkTraffic, FRAME_SIZE_MAX, FRAME_SIZE_MIN, type L4, type TrafficSpec } from './gen-traffic.ts';

export const GEN_HELP = `usage: node --import tsx scripts/gen.ts --dev IFNAME --dst-mac MAC --src IP --dst IP [options]

Sends UDP or TCP frames for many flows out of IFNAME with BPF_PROG_TEST_RUN and
BPF_F_TEST_XDP_LIVE_FRAMES (bpf/xlb_gen.bpf.c), at a given rate or as fast as it goes, and
prints what it sent. Run as root after \`make all\`. The PEER of IFNAME must have NAPI (an XDP
program attached, or GRO on): otherwise the kernel drops every frame. Frames are counted where
they arrive (e.g. an xlb_sink, scripts/bench/gen.ts), not here.

  --ns NAME          run in this network namespace (default: the current one)
  --dev IFNAME       the interface the frames leave by (required)
  --dst-mac MAC      destination MAC: the next hop, e.g. the balancer's interface (required)
  --src-mac MAC      source MAC (default: IFNAME's)
  --src IP           flow 0's source address (required); flows vary its last 16 bits
  --dst IP           destination address (required); IPv4 or IPv6, the family of --src
  --proto udp|tcp    default udp; tcp sends ACK segments (established-looking flows)
  --sport N          flow 0's source port (default 10000)
  --sport-span N     source ports per source address (default: as many as the flows need)
  --dport N          destination port (default 9)
  --flows N          flows cycled through (default 10000)
  --size N           Ethernet frame size incl. its 4-byte FCS, as RFC 2544 counts it:
                     ${FRAME_SIZE_MIN}..${FRAME_SIZE_MAX} (default 64, the minimum frame; 60 bytes are sent)
  --ttl N            IPv4 TTL / IPv6 hop limit (default 64)
  --rate PPS         frames per second; 0 = full speed (default 0)
  --duration S       seconds to send (default 5), or
  --frames N         frames to send
  --batch N          frames per kernel batch, 1..256 (default 64)
  --cpu N            pin the generator to this CPU
  --json             print the result as one JSON object
`;

export interface GenCliOptions {
  ns?: string;
  dev: string;
  /** undefined: the interface's own MAC (read by the caller) */
  srcMac?: string;
  traffic: Omit<TrafficSpec, 'srcMac'> & { srcMac?: string };
  rate: number;
  durationMs?: number;
  frames?: number;
  batchSize: number;
  cpu?: number;
  json: boolean;
}

export type GenCliParse = { help: true } | { help: false; options: GenCliOptions; rest: string[] };

function num(v: string | undefined, name: string, dflt: number | undefined, min: number, max: number, integer = true): number | undefined {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
    throw new Error(`--${name} ${v}: expected ${integer ? 'an integer' : 'a number'} in ${min}..${max}`);
  }
  return n;
}

/**
 * argv (without node and the script) → options. `rest` is argv without --ns and its value, for
 * running the same command again inside the namespace.
 */
export function parseGenArgs(argv: string[]): GenCliParse {
  const { values: a } = parseArgs({
    args: argv,
    strict: true,
    options: {
      ns: { type: 'string' }, dev: { type: 'string' }, 'dst-mac': { type: 'string' }, 'src-mac': { type: 'string' },
      src: { type: 'string' }, dst: { type: 'string' }, proto: { type: 'string' }, sport: { type: 'string' },
      'sport-span': { type: 'string' }, dport: { type: 'string' }, flows: { type: 'string' }, size: { type: 'string' },
      ttl: { type: 'string' }, rate: { type: 'string' }, duration: { type: 'string' }, frames: { type: 'string' },
      batch: { type: 'string' }, cpu: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (a.help) return { help: true };
  for (const k of ['dev', 'dst-mac', 'src', 'dst'] as const) {
    if (!a[k]) throw new Error(`--${k} is required (--help lists the options)`);
  }
  if (a.duration !== undefined && a.frames !== undefined) throw new Error('give --duration or --frames, not both');
  const proto = (a.proto ?? 'udp') as L4;
  if (proto !== 'udp' && proto !== 'tcp') throw new Error(`--proto ${a.proto}: expected udp or tcp`);
  const traffic = {
    dstMac: a['dst-mac']!.toLowerCase(),
    srcMac: a['src-mac']?.toLowerCase(),
    src: a.src!,
    dst: a.dst!,
    proto,
    sport: num(a.sport, 'sport', 10000, 1, 65535)!,
    dport: num(a.dport, 'dport', 9, 1, 65535)!,
    flows: num(a.flows, 'flows', 10000, 1, 0xffffffff)!,
    sportSpan: num(a['sport-span'], 'sport-span', undefined, 1, 65535),
    size: num(a.size, 'size', 64, FRAME_SIZE_MIN, FRAME_SIZE_MAX)!,
    ttl: num(a.ttl, 'ttl', 64, 1, 255)!,
  };
  // the whole spec, with a stand-in source MAC when it comes from the interface
  checkTraffic({ ...traffic, srcMac: traffic.srcMac ?? '02:00:00:00:00:00' });
  const frames = num(a.frames, 'frames', undefined, 1, Number.MAX_SAFE_INTEGER);
  const seconds = num(a.duration, 'duration', frames === undefined ? 5 : undefined, 0.001, 86400, false);
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--ns') { i++; continue; }
    if (argv[i]!.startsWith('--ns=')) continue;
    rest.push(argv[i]!);
  }
  return {
    help: false,
    rest,
    options: {
      ns: a.ns,
      dev: a.dev!,
      srcMac: traffic.srcMac,
      traffic,
      rate: num(a.rate, 'rate', 0, 0, 1e9)!,
      durationMs: seconds === undefined ? undefined : seconds * 1000,
      frames,
      batchSize: num(a.batch, 'batch', 64, 1, 256)!,
      cpu: num(a.cpu, 'cpu', undefined, 0, 4095),
      json: a.json === true,
    },
  };
}
