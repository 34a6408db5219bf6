/**
 * Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6): the frames a new VRRP
 * master sends for each virtual address so that hosts and switches on the segment learn where it
 * now lives. Pure: addresses in, the whole Ethernet frame out (for FrameSocket.send), built the
 * way keepalived 2.2.7 builds them (checked byte for byte against its captured frames in
 * ../../../shared/vectors/keepalived-vrrp-captures.json).
 *
 * Gratuitous ARP, 42 bytes (RFC 826, RFC 5227 §3 "ARP Announcement" in request form):
 *   Ethernet  dst ff:ff:ff:ff:ff:ff, src = mac, type 0x0806
 *   ARP       hardware 1 (Ethernet), protocol 0x0800, lengths 6 / 4, op 1 (request),
 *             sender = mac / address, target = ff:ff:ff:ff:ff:ff / address
 *   No padding to 60 bytes (keepalived sends 42; the NIC pads if it must).
 *
 * Unsolicited neighbour advertisement, 86 bytes (RFC 4861 §4.4, §7.2.6):
 *   Ethernet  dst 33:33:00:00:00:01, src = mac, type 0x86dd
 *   IPv6      traffic class 0, flow label 0, payload 32, next header 58, hop limit 255,
 *             src = address (the virtual address itself), dst ff02::1 (all nodes)
 *   ICMPv6    type 136, code 0, checksum (RFC 4443 §2.3, with the IPv6 pseudo-header),
 *             flags: override (O) always, router (R) when asked, solicited (S) never;
 *             target = address; option 2 (target link-layer address), length 1 (8 bytes) = mac
 *
 * Contract: `mac` is 'aa:bb:cc:dd:ee:ff'; `address` an IPv4 (gratuitousArp) or IPv6
 * (unsolicitedNa) address in text. Anything else throws an Error naming the function and the bad
 * value; nothing is ever returned half-built.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { addrBytes, macBytes } from '../datapath/xdp/net.ts';
import { internetChecksum } from './packet.ts';

export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
export const GARP_FRAME_LENGTH = 42;
export const NA_FRAME_LENGTH = 86;

const ETH_BROADCAST = Buffer.from('ffffffffffff', 'hex');
/** 33:33 + the low 32 bits of ff02::1 (RFC 2464 §7) */
const ETH_ALL_NODES = Buffer.from('333300000001', 'hex');
const ALL_NODES = addrBytes('ff02::1');
const IPPROTO_ICMPV6 = 58;
const ND_NEIGHBOR_ADVERT = 136;
const ND_OPT_TARGET_LINKADDR = 2;
const NA_FLAG_ROUTER = 0x80000000;
const NA_FLAG_OVERRIDE = 0x20000000;

function mac(fn: string, text: string): Buffer {
  try {
    return macBytes(text);
  } catch {
    throw new Error(`${fn}: '${String(text)}' is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  }
}

/** A gratuitous ARP request announcing `address` at `mac`. */
export function gratuitousArp(macText: string, address: string): Buffer {
  const hw = mac('gratuitousArp', macText);
  if (typeof address !== 'string' || !isIPv4(address)) throw new Error(`gratuitousArp: '${String(address)}' is not an IPv4 address`);
  const ip = addrBytes(address).subarray(0, 4);
  const f = Buffer.alloc(GARP_FRAME_LENGTH);
  ETH_BROADCAST.copy(f, 0);
  hw.copy(f, 6);
  f.writeUInt16BE(ETH_P_ARP, 12);
  f.writeUInt16BE(1, 14); // hardware: Ethernet
  f.writeUInt16BE(0x0800, 16); // protocol: IPv4
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(1, 20); // op: request
  hw.copy(f, 22);
  ip.copy(f, 28);
  ETH_BROADCAST.copy(f, 32);
  ip.copy(f, 38);
  return f;
}

export interface NaOptions {
  /** set the router flag (keepalived does when the interface forwards IPv6) */
  router?: boolean;
}

/** An unsolicited neighbour advertisement of `address` at `mac`, to all nodes, with the override flag. */
export function unsolicitedNa(macText: string, address: string, o: NaOptions = {}): Buffer {
  const hw = mac('unsolicitedNa', macText);
  if (typeof address !== 'string' || !isIPv6(address)) throw new Error(`unsolicitedNa: '${String(address)}' is not an IPv6 address`);
  const ip = addrBytes(address);
  const f = Buffer.alloc(NA_FRAME_LENGTH);
  ETH_ALL_NODES.copy(f, 0);
  hw.copy(f, 6);
  f.writeUInt16BE(ETH_P_IPV6, 12);
  // IPv6 header at 14
  f.writeUInt32BE(0x60000000, 14);
  const icmpLength = 32;
  f.writeUInt16BE(icmpLength, 18);
  f[20] = IPPROTO_ICMPV6;
  f[21] = 255;
  ip.copy(f, 22);
  ALL_NODES.copy(f, 38);
  // ICMPv6 at 54
  f[54] = ND_NEIGHBOR_ADVERT;
  f[55] = 0;
  f.writeUInt32BE((NA_FLAG_OVERRIDE | (o.router ? NA_FLAG_ROUTER : 0)) >>> 0, 58);
  ip.copy(f, 62);
  f[78] = ND_OPT_TARGET_LINKADDR;
  f[79] = 1;
  hw.copy(f, 80);
  const pseudo = Buffer.alloc(40);
  ip.copy(pseudo, 0);
  ALL_NODES.copy(pseudo, 16);
  pseudo.writeUInt32BE(icmpLength, 32);
  pseudo[39] = IPPROTO_ICMPV6;
  f.writeUInt16BE(internetChecksum(pseudo, f.subarray(54)), 56);
  return f;
}
