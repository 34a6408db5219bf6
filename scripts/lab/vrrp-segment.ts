/**
 * A VRRP segment for the interop tests and the failover benchmark: hosts (network namespaces)
 * whose eth0 is a veth into one bridge (br0 in <prefix>-sw, no multicast snooping), on
 * 198.18.0.0/24 and fd00::/64 (plus each host's link-local address):
 *
 *   host K (K = 1..n, in the order given)   198.18.0.K   fd00::K
 *   the virtual addresses the tests use      198.18.0.100 fd00::100 (and up)
 *
 * Hosts do no DAD (so addresses are usable at once) and may bind addresses they do not hold
 * (ip_nonlocal_bind, for scripts/lab/vrrp-echo.ts on virtual addresses). Nothing is routed: the
 * segment is one subnet. createSegment() registers the removal (processes in the namespaces killed, namespaces
 * deleted) with onCleanup, so an exit or a signal removes it; destroy() does it at once.
 */
import { execFileSync } from 'node:child_process';
import { destroyNamespaces, ip, onCleanup, randomPrefix, sysctls } from './netns.ts';

export interface SegmentHost {
  name: string;
  ns: string;
  ipv4: string;
  ipv6: string;
  linkLocal: string;
  mac: string;
}

export interface Segment {
  prefix: string;
  hosts: Record<string, SegmentHost>;
  host(name: string): SegmentHost;
  destroy(): void;
}

export const SEGMENT_VIP4 = '198.18.0.100';
export const SEGMENT_VIP6 = 'fd00::100';

function linkInfo(ns: string): { mac: string; linkLocal: string | undefined } {
  const [l] = JSON.parse(ip(['-j', 'addr', 'show', 'dev', 'eth0'], ns)) as
    { address: string; addr_info: { family?: string; local?: string; scope?: string; tentative?: boolean }[] }[];
  if (!l) throw new Error(`${ns}: no eth0`);
  const ll = l.addr_info.find((a) => a.family === 'inet6' && a.scope === 'link' && !a.tentative)?.local;
  return { mac: l.address, linkLocal: ll };
}

/** Hosts named `names` (each 1..10 letters or digits) on one bridge. */
export function createSegment(names: readonly string[], o: { prefix?: string } = {}): Segment {
  const prefix = o.prefix ?? randomPrefix('xlbvr');
  if (names.length < 1 || names.length > 99) throw new Error(`a segment has 1..99 hosts, not ${names.length}`);
  for (const n of names) if (!/^[a-z][a-z0-9]{0,9}$/.test(n)) throw new Error(`host name '${n}' must be a letter then up to 9 letters or digits`);
  const remove = () => destroyNamespaces(prefix);
  const unregister = onCleanup(remove);
  try {
    const sw = `${prefix}-sw`;
    ip(['netns', 'add', sw]);
    sysctls(sw, { 'net.ipv6.conf.all.disable_ipv6': 1, 'net.ipv6.conf.default.disable_ipv6': 1 });
    ip(['link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0', 'forward_delay', '0'], sw);
    ip(['link', 'set', 'br0', 'up'], sw);
    const pending = names.map((name, i) => {
      const ns = `${prefix}-${name}`;
      const port = `p-${name}`;
      ip(['netns', 'add', ns]);
      sysctls(ns, {
        'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0,
        'net.ipv4.ip_nonlocal_bind': 1, 'net.ipv6.ip_nonlocal_bind': 1,
      });
      ip(['link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', sw]);
      ip(['link', 'set', port, 'master', 'br0', 'up'], sw);
      ip(['link', 'set', 'lo', 'up'], ns);
      ip(['addr', 'add', `198.18.0.${i + 1}/24`, 'dev', 'eth0'], ns);
      ip(['addr', 'add', `fd00::${i + 1}/64`, 'dev', 'eth0', 'nodad'], ns);
      ip(['link', 'set', 'eth0', 'up'], ns);
      return { name, ns, ipv4: `198.18.0.${i + 1}`, ipv6: `fd00::${i + 1}` };
    });
    const hosts: Record<string, SegmentHost> = {};
    const deadline = Date.now() + 5000;
    for (const h of pending) {
      let info = linkInfo(h.ns);
      while (!info.linkLocal && Date.now() < deadline) {
        execFileSync('sleep', ['0.02']);
        info = linkInfo(h.ns);
      }
      if (!info.linkLocal) throw new Error(`${h.ns}: eth0 has no link-local address after 5 s`);
      hosts[h.name] = { ...h, mac: info.mac, linkLocal: info.linkLocal };
    }
    return {
      prefix,
      hosts,
      host(name) {
        const h = hosts[name];
        if (!h) throw new Error(`segment ${prefix} has no host '${name}'`);
        return h;
      },
      destroy() {
        remove();
        unregister();
      },
    };
  } catch (err) {
    remove();
    unregister();
    throw err;
  }
}
