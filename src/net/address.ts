/**
 * Interface addresses over rtnetlink (RTM_NEWADDR / RTM_DELADDR / RTM_GETADDR): what a VRRP
 * master adds for its virtual addresses and removes on leaving, and the dump used at start to
 * find virtual addresses a crashed run left behind.
 *
 *   addAddress(nl, spec)     ip addr add ADDRESS/LEN dev IFINDEX [label L] [scope S] [broadcast B]
 *                            [nodad] [noprefixroute] [preferred_lft N]; EEXIST if present (or
 *                            { replace: true })
 *   deleteAddress(nl, spec)  ip addr del ADDRESS/LEN dev IFINDEX; EADDRNOTAVAIL if absent
 *   listAddresses(nl, f?)    ip addr show, optionally one family / one interface
 *   linkLocalAddress(nl, i)  the interface's IPv6 link-local address (the VRRP source for IPv6)
 *
 * IPv6 virtual addresses are added with `nodad` (IFA_F_NODAD) by keepalived so that they are
 * usable at once (no duplicate address detection delay); `preferredLifetime: 0` makes an address
 * deprecated (never chosen as a source), keepalived's "preferred_lft 0". Both are the caller's
 * choice; nothing here is a default but scope global and valid lifetime forever.
 *
 * Errors: the kernel's, with code / errno / syscall ('RTM_NEWADDR', ...) and the address in the
 * message (see ./rtnl.ts); bad arguments are EINVAL before anything is sent.
 */
import { FlagsNew, rt } from 'netlink';
import type { Family } from '../datapath/xdp/net.ts';
import { checkFamily, checkIfindex, checkU32, invalid, ipBytes, ipOfFamily } from './args.ts';
import { AF_OF, FAMILY_OF_AF, body, ipText, scopeNumber, type Rtnl, type Scope } from './rtnl.ts';

/** IFA_CACHEINFO's "forever" */
export const INFINITY_LIFETIME = 0xffffffff;
/** IFNAMSIZ - 1: the longest label the kernel keeps */
const LABEL_MAX = 15;

export interface AddressSpec {
  ifindex: number;
  address: string;
  /** 0..32 / 0..128 */
  prefixLength: number;
  /** IPv4 only: IFA_LABEL, e.g. 'eth0:vip' (at most 15 bytes) */
  label?: string;
  /** default 'global' */
  scope?: Scope;
  /** IPv4 only: IFA_BROADCAST */
  broadcast?: string;
  /** IPv6: IFA_F_NODAD, no duplicate address detection */
  nodad?: boolean;
  /** IFA_F_NOPREFIXROUTE: no route for the prefix */
  noprefixroute?: boolean;
  /** seconds; 0 = deprecated at once; default forever */
  preferredLifetime?: number;
}

export interface AddressInfo {
  ifindex: number;
  family: Family;
  address: string;
  prefixLength: number;
  scope: number;
  label: string | null;
  /** the flags the kernel reports, by the package's names: 'permanent', 'nodad', 'deprecated', 'tentative', 'secondary', ... */
  flags: string[];
  /** seconds; INFINITY_LIFETIME for forever */
  preferredLifetime: number | null;
  validLifetime: number | null;
}

function describe(a: { address: string; prefixLength: number; ifindex: number }, extra = ''): string {
  return `${a.address}/${a.prefixLength} dev ${a.ifindex}${extra}`;
}

/** The checked header and attributes of an address; `what` names it in errors. */
function encode(a: AddressSpec, syscall: string, full: boolean): { family: Family; data: rt.Address; attrs: rt.AddressAttrs } {
  if (typeof a !== 'object' || a === null) throw invalid(syscall, 'the address spec must be an object');
  const ifindex = checkIfindex(a.ifindex, syscall);
  const { family, bytes } = ipBytes(a.address, syscall, 'address');
  const max = family === 4 ? 32 : 128;
  if (!Number.isInteger(a.prefixLength) || a.prefixLength < 0 || a.prefixLength > max) {
    throw invalid(syscall, `prefix length ${String(a.prefixLength)} of ${a.address} is not in 0..${max}`);
  }
  const data: rt.Address = { family: AF_OF[family], prefixlen: a.prefixLength, index: ifindex, scope: 0 };
  const attrs: rt.AddressAttrs = { local: bytes, address: bytes };
  if (!full) return { family, data, attrs };

  data.scope = scopeNumber(a.scope ?? 'global', syscall);
  if (a.label !== undefined) {
    if (family !== 4) throw invalid(syscall, `label '${a.label}': labels are for IPv4 addresses only`);
    if (typeof a.label !== 'string' || a.label.length === 0 || Buffer.byteLength(a.label) > LABEL_MAX) {
      throw invalid(syscall, `label '${String(a.label)}' must be 1..${LABEL_MAX} bytes`);
    }
    attrs.label = a.label;
  }
  if (a.broadcast !== undefined) {
    if (family !== 4) throw invalid(syscall, 'broadcast is for IPv4 addresses only');
    attrs.broadcast = ipOfFamily(a.broadcast, 4, syscall, 'broadcast').bytes;
  }
  const flags: rt.AddressFlags = {};
  if (a.nodad) flags.nodad = true;
  if (a.noprefixroute) flags.noprefixroute = true;
  attrs.flags = flags;
  if (a.preferredLifetime !== undefined) {
    attrs.cacheInfo = {
      ifaPrefered: checkU32(a.preferredLifetime, 'preferredLifetime', syscall),
      ifaValid: INFINITY_LIFETIME,
      cstamp: 0,
      tstamp: 0,
    };
  }
  return { family, data, attrs };
}

/** Add an address; EEXIST if the interface has it already, unless `replace` (then it is updated). */
export async function addAddress(nl: Rtnl, a: AddressSpec, o: { replace?: boolean } = {}): Promise<void> {
  const type = rt.MessageType.NEWADDR;
  const { data, attrs } = encode(a, 'RTM_NEWADDR', true);
  const flags = FlagsNew.CREATE | (o.replace ? FlagsNew.REPLACE : FlagsNew.EXCL);
  const what = describe(a, attrs.label ? ` label ${attrs.label}` : '');
  await nl.request(type, body((out) => rt.formatAddressMessage({ kind: 'address', data, attrs }, out)), flags, what);
}

/** Delete an address (label, scope and flags do not matter); EADDRNOTAVAIL if the interface does not have it. */
export async function deleteAddress(nl: Rtnl, a: Pick<AddressSpec, 'ifindex' | 'address' | 'prefixLength'>): Promise<void> {
  const { data, attrs } = encode(a, 'RTM_DELADDR', false);
  await nl.request(rt.MessageType.DELADDR, body((out) => rt.formatAddressMessage({ kind: 'address', data, attrs }, out)), 0, describe(a));
}

/** Every address (of one family, of one interface, if asked), as the kernel reports them. */
export async function listAddresses(nl: Rtnl, filter: { family?: Family; ifindex?: number } = {}): Promise<AddressInfo[]> {
  const sc = 'RTM_GETADDR';
  if (filter.family !== undefined) checkFamily(filter.family, sc);
  if (filter.ifindex !== undefined) checkIfindex(filter.ifindex, sc);
  const data: rt.Address = { family: filter.family ? AF_OF[filter.family] : 0 };
  const msgs = await nl.dump(rt.MessageType.GETADDR, body((out) => rt.formatAddressMessage({ kind: 'address', data, attrs: {} }, out)),
    `family ${filter.family ?? 'any'}`);
  const out: AddressInfo[] = [];
  for (const m of msgs) {
    if (m.kind !== 'address') continue;
    const family = FAMILY_OF_AF[m.data.family ?? 0];
    if (!family || (filter.family && family !== filter.family)) continue;
    const ifindex = m.data.index ?? 0;
    if (filter.ifindex !== undefined && ifindex !== filter.ifindex) continue;
    const address = ipText(m.attrs.local ?? m.attrs.address, family);
    if (!address) continue;
    const flags = m.attrs.flags ?? m.data.flags ?? {};
    out.push({
      ifindex,
      family,
      address,
      prefixLength: m.data.prefixlen ?? 0,
      scope: m.data.scope ?? 0,
      label: m.attrs.label ?? null,
      flags: Object.keys(flags).filter((k) => k !== '__unknown'),
      preferredLifetime: m.attrs.cacheInfo?.ifaPrefered ?? null,
      validLifetime: m.attrs.cacheInfo?.ifaValid ?? null,
    });
  }
  return out;
}

/** The interface's IPv6 link-local address (fe80::/10) that is usable now (not tentative), or null. */
export async function linkLocalAddress(nl: Rtnl, ifindex: number): Promise<string | null> {
  const all = await listAddresses(nl, { family: 6, ifindex });
  const ll = all.find((a) => /^fe[89ab]/i.test(a.address) && !a.flags.includes('tentative') && !a.flags.includes('dadfailed'));
  return ll?.address ?? null;
}
