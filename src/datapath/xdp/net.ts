/**
 * Address helpers for the datapath's byte layouts: the ABI stores addresses in 16 bytes
 * (IPv4 in the first 4), MACs in 6 bytes, ports in network order.
 */
import { isIPv4, isIPv6 } from 'node:net';

export type Family = 4 | 6;

export function familyOf(address: string): Family {
  if (isIPv4(address)) return 4;
  if (isIPv6(address)) return 6;
  throw new Error(`'${address}' is not an IPv4 or IPv6 address`);
}

/** The address as the ABI stores it: 16 bytes, network order, IPv4 in the first four. */
export function addrBytes(address: string): Buffer {
  const out = Buffer.alloc(16);
  if (isIPv4(address)) {
    address.split('.').forEach((part, i) => { out[i] = Number(part); });
    return out;
  }
  if (!isIPv6(address)) throw new Error(`'${address}' is not an IPv4 or IPv6 address`);
  let text = address;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    const v4 = addrBytes(dotted[1]);
    text = text.slice(0, -dotted[1].length) + `${v4.readUInt16BE(0).toString(16)}:${v4.readUInt16BE(2).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const zeros = 8 - headParts.length - tailParts.length;
  const groups = [...headParts, ...Array<string>(tail === undefined ? 0 : zeros).fill('0'), ...tailParts];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** Back from the ABI's 16 bytes to text. */
export function addrText(bytes: Uint8Array, family: Family): string {
  if (family === 4) return Array.from(bytes.subarray(0, 4)).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  // compress the longest run of zero groups, as RFC 5952 asks
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

export function macBytes(mac: string): Buffer {
  const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(mac);
  if (!m) throw new Error(`'${mac}' is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  return Buffer.from(m.slice(1).map((h) => parseInt(h, 16)));
}

export function macText(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}

/** A port as the ABI's u16 field holds it: network order, read back by a little-endian host.
 *  The swap is its own inverse: portField(a field read back) is the port. */
export function portField(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`port ${port} is not in 0..65535`);
  return ((port & 0xff) << 8) | (port >> 8);
}
