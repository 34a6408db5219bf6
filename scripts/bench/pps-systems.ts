/**
 * The packets/s scenario of `make bench-e2e`, as data: its addressing, the systems compared,
 * the nftables ruleset, and what each system must deliver at the sink (checked on sampled
 * frames before a system is measured, so that a bench of the wrong path aborts). Pure.
 *
 * Topology (scripts/bench/netns.ts createPpsNet), veth pairs, no bridge:
 *
 *   <p>-gen: <p>g ── <p>i :<p>-lb: <p>o ── <p>s :<p>-sink
 *            .0.1    .0.2         .2.1     (the reals' MACs and addresses live behind <p>s)
 *
 * Every system gets the same frames apart from the destination address (one VIP per xlb
 * forwarding method, so that the connection table of each stays warm while the others run):
 * UDP to port 9 from FLOWS flows of CLIENT (source port and last 16 bits of the address vary),
 * over the same REALS: 8 addresses in 198.18.2.0/24 with MACs of their own, all reached through
 * <p>o (static neighbours on the LB, so that nothing waits for ARP), all counted by the sink.
 */
import { formatIp, ipBytes, parseFrame, type ParsedFrame } from '../../test/lib/packets.ts';

export const PPS_ADDR = {
  gen: { mac: '02:00:5e:10:00:01', ip4: '198.18.0.1' },
  lbIn: { mac: '02:00:5e:10:00:02', ip4: '198.18.0.2' },
  lbOut: { mac: '02:00:5e:10:00:03', ip4: '198.18.2.1' },
  sink: { mac: '02:00:5e:10:00:04' },
  /** flow 0's source; flows vary the port, then the last 16 bits */
  client: '198.18.100.1',
  clientNet: '198.18.100.0/22',
  sport: 10000,
  /** source ports per client address: 10,000 flows come from 10 addresses */
  sportSpan: 1000,
  dport: 9,
  /** full-NAT source of the LB (on <p>o's subnet) */
  fullnatSrc4: '198.18.2.100',
  /** TUN outer source: this base with the low 8 bits from the flow hash */
  tunSrc4: '198.18.4.0',
  tunSrc4Bits: 8,
} as const;

export const PPS_REALS = 8;

export interface PpsReal { address: string; mac: string }

export const REALS: readonly PpsReal[] = Array.from({ length: PPS_REALS }, (_, k) => ({
  address: `198.18.2.${11 + k}`,
  mac: `02:00:5e:20:00:${(0x11 + k).toString(16).padStart(2, '0')}`,
}));

export type PpsProgram = 'xlb' | 'floor' | 'pass';
export type XlbMethodName = 'dr' | 'tun' | 'nat' | 'fullnat';

export interface PpsSystem {
  /** the name in bench-results/e2e.json */
  name: string;
  /** what sits on the LB's ingress: the forwarder, the floor, or xdp_pass (frames to the kernel) */
  program: PpsProgram;
  /** the destination of the generator's frames */
  vip: string;
  /** xlb only: the forwarding method of the service's reals */
  method?: XlbMethodName;
  /** one line for the output */
  what: string;
}

export const VIPS = { dr: '198.19.0.10', tun: '198.19.0.11', nat: '198.19.0.12', fullnat: '198.19.0.13' } as const;

export const PPS_SYSTEMS: readonly PpsSystem[] = [
  { name: 'xlb-dr', program: 'xlb', vip: VIPS.dr, method: 'dr', what: 'xlb, direct routing (MAC rewrite), redirect to the egress' },
  { name: 'xlb-tun', program: 'xlb', vip: VIPS.tun, method: 'tun', what: 'xlb, IP-in-IP toward the real, redirect' },
  { name: 'xlb-nat', program: 'xlb', vip: VIPS.nat, method: 'nat', what: 'xlb, NAT (destination rewritten to the real), redirect' },
  { name: 'xlb-fullnat', program: 'xlb', vip: VIPS.fullnat, method: 'fullnat', what: 'xlb, full-NAT (source and destination rewritten), redirect' },
  { name: 'nftables-dnat', program: 'pass', vip: VIPS.dr, what: 'the kernel forwards: nftables dnat to jhash over the reals, conntrack on' },
  { name: 'xdp-redirect-floor', program: 'floor', vip: VIPS.dr, what: 'XDP: rewrite the MACs, redirect to the egress; no parsing or lookup' },
];

export const NFT_TABLE = 'xlb_bench';

/**
 * The nftables DNAT a user would write for this service: conntrack on (NAT needs it), the
 * real chosen by a hash of the client's address and port over the same reals, in the nat
 * prerouting hook (only a flow's first packet meets the rule; conntrack translates the rest).
 */
export function nftDnatRuleset(vip: string, dport: number, proto: 'udp' | 'tcp', reals: readonly { address: string }[]): string {
  if (reals.length === 0) throw new Error('nftables DNAT: no reals');
  const map = reals.map((r, i) => `${i} : ${r.address}`).join(', ');
  return [
    `table ip ${NFT_TABLE} {`,
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    `    ip daddr ${vip} ${proto} dport ${dport} dnat to jhash ip saddr . ${proto} sport mod ${reals.length} map { ${map} }`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Addresses flow 0..flows-1 come from (the generator's numbering). */
export function clientAddresses(flows: number): Set<string> {
  const out = new Set<string>();
  const b = ipBytes(PPS_ADDR.client);
  const base = b.readUInt16BE(2);
  for (let k = 0; k < Math.ceil(flows / PPS_ADDR.sportSpan); k++) {
    b.writeUInt16BE((base + k) & 0xffff, 2);
    out.add(formatIp(b));
  }
  return out;
}

/**
 * What a sampled frame at the sink must look like for the system, or a description of what is
 * wrong; `real` is the real it went to (null when the system does not balance).
 */
export function checkSinkFrame(sys: PpsSystem, frame: Buffer, flows: number): { error: string } | { real: string | null } {
  const p: ParsedFrame = parseFrame(frame);
  const ip = p.ip;
  const clients = clientAddresses(flows);
  const realByMac = new Map(REALS.map((r) => [r.mac, r]));
  const realByAddr = new Map(REALS.map((r) => [r.address, r]));
  const bad = (what: string) => ({ error: `${sys.name}: ${what}` });
  if (!ip || ip.version !== 4) return bad(`not an IPv4 frame (ethertype 0x${p.ethertype.toString(16)})`);
  if (p.src !== PPS_ADDR.lbOut.mac) return bad(`source MAC ${p.src}, expected the LB's egress ${PPS_ADDR.lbOut.mac}`);
  if (sys.method === 'tun' && ip.proto !== 4) return bad(`outer protocol ${ip.proto}, expected 4 (IP-in-IP)`);
  // the packet as the client sent it: inner for TUN, else the only one
  const inner = sys.method === 'tun' ? p.inner : ip;
  if (!inner) return bad(`no inner packet: ${ip.src} > ${ip.dst} proto ${ip.proto}`);
  if (inner.proto !== 17 || inner.dport === undefined) return bad(`not UDP: proto ${inner.proto}`);
  const toReal = (addr: string): { error: string } | { real: string } => {
    const r = realByAddr.get(addr);
    if (!r) return bad(`destination ${addr} is not one of the reals`);
    if (r.mac !== p.dst) return bad(`destination MAC ${p.dst} is not ${addr}'s (${r.mac})`);
    return { real: r.address };
  };
  switch (sys.program) {
    case 'floor':
      if (p.dst !== REALS[0]!.mac) return bad(`destination MAC ${p.dst}, expected ${REALS[0]!.mac}`);
      if (ip.dst !== sys.vip || !clients.has(ip.src) || ip.ttl !== 64) return bad(`IP header changed: ${ip.src} > ${ip.dst} ttl ${ip.ttl}`);
      return { real: null };
    case 'pass': {
      // the kernel forwarded it: destination NATed to a real, TTL decremented, source kept
      if (!clients.has(ip.src) || ip.ttl !== 63 || ip.dport !== PPS_ADDR.dport) {
        return bad(`expected a client's packet forwarded with ttl 63 to port ${PPS_ADDR.dport}: ${ip.src} > ${ip.dst}:${ip.dport} ttl ${ip.ttl}`);
      }
      return toReal(ip.dst);
    }
    case 'xlb':
      switch (sys.method) {
        case 'dr': {
          const r = realByMac.get(p.dst);
          if (!r) return bad(`destination MAC ${p.dst} is not a real's`);
          if (ip.dst !== sys.vip || !clients.has(ip.src)) return bad(`IP header changed: ${ip.src} > ${ip.dst}`);
          return { real: r.address };
        }
        case 'tun':
          if ((ipBytes(ip.src).readUInt32BE(0) >>> PPS_ADDR.tunSrc4Bits) !== (ipBytes(PPS_ADDR.tunSrc4).readUInt32BE(0) >>> PPS_ADDR.tunSrc4Bits)) {
            return bad(`outer source ${ip.src} is not in ${PPS_ADDR.tunSrc4}/${32 - PPS_ADDR.tunSrc4Bits}`);
          }
          if (inner.dst !== sys.vip || !clients.has(inner.src)) return bad(`inner packet changed: ${inner.src} > ${inner.dst}`);
          return toReal(ip.dst);
        case 'nat':
          if (!clients.has(ip.src)) return bad(`source ${ip.src} is not a client's`);
          return toReal(ip.dst);
        case 'fullnat':
          if (ip.src !== PPS_ADDR.fullnatSrc4) return bad(`source ${ip.src}, expected the full-NAT address ${PPS_ADDR.fullnatSrc4}`);
          return toReal(ip.dst);
        default:
          return bad(`no method`);
      }
  }
}

/**
 * Check every sampled frame, and that a balancing system spread the sampled flows over more
 * than one real. Returns what is wrong, or null.
 */
export function checkSinkSamples(sys: PpsSystem, frames: readonly Buffer[], flows: number): string | null {
  if (frames.length === 0) return `${sys.name}: the sink sampled no frame`;
  const reals = new Set<string>();
  for (const f of frames) {
    const r = checkSinkFrame(sys, f, flows);
    if ('error' in r) return `${r.error} (frame ${f.toString('hex')})`;
    if (r.real) reals.add(r.real);
  }
  if (sys.program !== 'floor' && frames.length >= 16 && flows >= 16 && reals.size < 2) {
    return `${sys.name}: ${frames.length} sampled frames all went to ${[...reals].join(', ')}: not balanced`;
  }
  return null;
}
