/**
 * Network interfaces of this process's network namespace, read over rtnetlink (RTM_GETLINK, with
 * the `netlink` package).
 *
 * Why netlink and not /sys/class/net: a process started with `nsenter --net=/run/netns/NAME`
 * keeps the mount namespace, so /sys (and /sys/class/net) still shows the namespace that mounted
 * it, usually the root one. A netlink socket always belongs to the caller's network namespace.
 *
 * Errors are Errors with `code` (errno name), `errno` and `syscall` ('RTM_GETLINK'); a missing
 * interface is ENODEV, a name the kernel could never accept is EINVAL (checked here, first).
 */
import { constants } from 'node:os';
import { createRtNetlink, type RtNetlinkSocket, type rt } from 'netlink';

export interface Link {
  ifindex: number;
  name: string;
  /** 'aa:bb:cc:dd:ee:ff'; null for links without one (lo has 00:00:..., tunnels may have none) */
  mac: string | null;
  mtu: number | null;
  /** administratively up (IFF_UP) */
  up: boolean;
  /** carrier (IFF_LOWER_UP) */
  lowerUp: boolean;
  /** operationally up (IFF_RUNNING) */
  running: boolean;
  /** IFLA_OPERSTATE by its RFC 2863 name: 'up', 'down', 'lowerlayerdown', 'unknown', ... */
  operstate: string;
}

const OPERSTATES = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'];

export interface LinkError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

const SYSCALL = 'RTM_GETLINK';
/** A netlink request that gets no answer in this long fails (ETIMEDOUT). */
export const REQUEST_TIMEOUT_MS = 5000;

export function linkError(code: string, message: string, syscall = SYSCALL): LinkError {
  const err = new Error(message) as LinkError;
  err.code = code;
  err.errno = (constants.errno as Record<string, number>)[code] ?? 0;
  err.syscall = syscall;
  return err;
}

/**
 * An interface name as the kernel accepts it (dev_valid_name): 1 to 15 bytes, not '.' or '..',
 * no '/', ':' or white space. Returns the name; throws EINVAL saying what is wrong.
 */
export function checkIfname(name: unknown): string {
  const bad = (why: string) => linkError('EINVAL', `'${String(name)}' is not a valid interface name: ${why}`);
  if (typeof name !== 'string' || name.length === 0) throw bad('it is empty');
  if (Buffer.byteLength(name) > 15) throw bad('longer than 15 bytes');
  if (name === '.' || name === '..') throw bad(`'${name}' is reserved`);
  if (/[/:\s]/.test(name)) throw bad("it contains '/', ':' or white space");
  return name;
}

/** The netlink package rejects with a plain Error('Request rejected: ENODEV'): give it our shape. */
function fromNetlink(err: unknown, what: string): LinkError {
  const message = err instanceof Error ? err.message : String(err);
  const m = /Request rejected: (E[A-Z0-9]+)/.exec(message);
  if (m?.[1]) return linkError(m[1], `${what}: ${m[1]}`);
  if (/timed? ?out/i.test(message)) return linkError('ETIMEDOUT', `${what}: no answer from netlink in ${REQUEST_TIMEOUT_MS} ms`);
  return linkError('EIO', `${what}: ${message}`);
}

async function withSocket<T>(fn: (s: RtNetlinkSocket) => Promise<T>): Promise<T> {
  const s = createRtNetlink();
  try {
    return await fn(s);
  } finally {
    s.socket.close();
  }
}

/** A link message (a dump's, or an RTM_NEWLINK / RTM_DELLINK event's) as a Link. */
export function linkFromMessage(m: rt.LinkMessage): Link {
  const mac = m.attrs.address;
  return {
    ifindex: m.data.index ?? 0,
    name: m.attrs.ifname ?? '',
    mac: mac && mac.length === 6 ? Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join(':') : null,
    mtu: m.attrs.mtu ?? null,
    up: m.data.flags?.up === true,
    lowerUp: m.data.flags?.lowerUp === true,
    running: m.data.flags?.running === true,
    operstate: OPERSTATES[m.attrs.operstate ?? 0] ?? String(m.attrs.operstate),
  };
}

/** One interface by name; ENODEV when this namespace has none of that name. */
export async function linkByName(name: string): Promise<Link> {
  checkIfname(name);
  const found = await withSocket(async (s) => {
    try {
      return await s.getLink({}, { ifname: name }, { timeout: REQUEST_TIMEOUT_MS });
    } catch (err) {
      const e = fromNetlink(err, `interface '${name}'`);
      if (e.code === 'ENODEV') e.message = `interface '${name}' does not exist in this network namespace`;
      throw e;
    }
  });
  const link = found.map(linkFromMessage).find((l) => l.name === name);
  if (!link) throw linkError('ENODEV', `interface '${name}' does not exist in this network namespace`);
  return link;
}

/** The ifindex of an interface of this namespace; ENODEV when there is none of that name. */
export async function ifindexByName(name: string): Promise<number> {
  return (await linkByName(name)).ifindex;
}

/** Every interface of this namespace, by ifindex. */
export async function listLinks(): Promise<Link[]> {
  const all = await withSocket(async (s) => {
    try {
      return await s.getLinks(undefined, undefined, { timeout: REQUEST_TIMEOUT_MS });
    } catch (err) {
      throw fromNetlink(err, 'link dump');
    }
  });
  return all.map(linkFromMessage).sort((a, b) => a.ifindex - b.ifindex);
}
