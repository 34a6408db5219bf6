/**
 * Argument checks shared by src/net/ and src/vrrp/socket.ts: each returns the checked value or
 * throws an Error with code 'EINVAL', errno and syscall (the call the argument was meant for), in
 * the shape of the addon's and the kernel's errors, before anything reaches the kernel.
 */
import { bpfError } from '../datapath/bpf/index.ts';
import { addrBytes, familyOf, type Family } from '../datapath/xdp/net.ts';

export const invalid = (syscall: string, message: string) => bpfError('EINVAL', syscall, message);

export function checkIfindex(v: unknown, syscall: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 0x7fffffff) {
    throw invalid(syscall, `ifindex must be an integer in 1..2147483647, got ${String(v)}`);
  }
  return v;
}

export function checkU32(v: unknown, what: string, syscall: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw invalid(syscall, `${what} must be an integer in 0..4294967295, got ${String(v)}`);
  }
  return v;
}

export function checkFamily(v: unknown, syscall: string): Family {
  if (v !== 4 && v !== 6) throw invalid(syscall, `family must be 4 or 6, got ${String(v)}`);
  return v;
}

/** An address of either family in text, as bytes of its own length (4 or 16). */
export function ipBytes(text: unknown, syscall: string, what: string): { family: Family; bytes: Buffer } {
  let family: Family;
  try {
    if (typeof text !== 'string') throw new Error('not a string');
    family = familyOf(text);
  } catch {
    throw invalid(syscall, `${what} '${String(text)}' is not an IP address`);
  }
  const b = addrBytes(text as string);
  return { family, bytes: family === 4 ? b.subarray(0, 4) : b };
}

/** An address that must be of `family` (when one is known yet), as bytes. */
export function ipOfFamily(text: unknown, family: Family | undefined, syscall: string, what: string): { family: Family; bytes: Buffer } {
  const a = ipBytes(text, syscall, what);
  if (family !== undefined && a.family !== family) throw invalid(syscall, `${what} ${String(text)} is not an IPv${family} address`);
  return a;
}

/** 'ADDRESS/LEN' (or a bare address: the full length), of `family` when one is known. */
export function parsePrefix(text: unknown, family: Family | undefined, syscall: string, what: string): { family: Family; bytes: Buffer; length: number } {
  if (typeof text !== 'string') throw invalid(syscall, `${what} must be a string`);
  const [addr = '', len, extra] = text.split('/');
  if (extra !== undefined) throw invalid(syscall, `${what} '${text}' is not ADDRESS/LENGTH`);
  const a = ipOfFamily(addr, family, syscall, what);
  const max = a.family === 4 ? 32 : 128;
  if (len !== undefined && (!/^\d{1,3}$/.test(len) || Number(len) > max)) throw invalid(syscall, `${what} '${text}': prefix length must be 0..${max}`);
  return { ...a, length: len === undefined ? max : Number(len) };
}
