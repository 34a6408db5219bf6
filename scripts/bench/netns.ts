/**
 * The live-frames bench network: two namespaces joined by one veth pair, named with a per-run
 * random prefix (built with the lab's helpers, scripts/lab/netns.ts; agents: scripts/lab/agent.ts).
 *
 *   <prefix>-gen: gen0 198.18.0.1/24 ── veth ── lb0 198.18.0.2/24 :<prefix>-lb
 *
 * Nothing is added to the root namespace. destroy() (also run on exit and on SIGINT/SIGTERM)
 * stops the agents, then deletes both namespaces, which deletes the veth pair and with it the
 * attached programs. Nothing is pinned.
 */
import { destroyNamespaces, ip, onCleanup, randomPrefix, sysctl } from '../lab/netns.ts';

export interface BenchNet {
  prefix: string;
  genNs: string;
  lbNs: string;
  destroy(): Promise<void>;
}

export function createBenchNet(opts: { genMac: string; lbMac: string; genIp4: string; lbIp4: string }): BenchNet {
  const prefix = randomPrefix('xlbb');
  const genNs = `${prefix}-gen`;
  const lbNs = `${prefix}-lb`;
  const removeNamespaces = () => destroyNamespaces(prefix);
  const unregister = onCleanup(removeNamespaces);
  try {
    ip(['netns', 'add', genNs]);
    ip(['netns', 'add', lbNs]);
    ip(['link', 'add', 'gen0', 'netns', genNs, 'address', opts.genMac, 'type', 'veth',
      'peer', 'name', 'lb0', 'netns', lbNs, 'address', opts.lbMac]);
    for (const [ns, dev, addr] of [[genNs, 'gen0', opts.genIp4], [lbNs, 'lb0', opts.lbIp4]] as const) {
      sysctl(ns, 'net.ipv6.conf.all.disable_ipv6', '1'); // no router solicitations, DAD or MLD on the link
      sysctl(ns, 'net.ipv4.ip_forward', '0');
      ip(['link', 'set', 'lo', 'up'], ns);
      ip(['addr', 'add', `${addr}/24`, 'dev', dev], ns);
      ip(['link', 'set', dev, 'up'], ns);
    }
  } catch (err) {
    removeNamespaces();
    unregister();
    throw err;
  }
  return {
    prefix, genNs, lbNs,
    async destroy() {
      removeNamespaces();
      unregister();
    },
  };
}

/**
 * The packets/s network of `make bench-e2e` (addressing in pps-systems.ts): three namespaces,
 * two veth pairs, no bridge (a bridge's own cost would dominate):
 *
 *   <prefix>-gen: <prefix>g ── <prefix>i :<prefix>-lb: <prefix>o ── <prefix>s :<prefix>-sink
 *
 * The interfaces carry the prefix in their names so that their NAPI threads
 * (napi/<dev>-<id>) can be told apart from any other lab's. The LB forwards IPv4 (for
 * nftables; XDP systems never reach its stack), with reverse-path filtering off and a route
 * back to the clients via <prefix>g, static neighbours for the reals on <prefix>o (nothing waits for
 * ARP) and IPv6 off everywhere (no neighbour discovery noise). Nothing is pinned; destroy()
 * (also on exit and SIGINT/SIGTERM) deletes the namespaces, and with them the veths and
 * their programs.
 */
export interface PpsNet {
  prefix: string;
  genNs: string;
  lbNs: string;
  sinkNs: string;
  genDev: string;
  lbIn: string;
  lbOut: string;
  sinkDev: string;
  destroy(): void;
}

export function createPpsNet(a: {
  gen: { mac: string; ip4: string };
  lbIn: { mac: string; ip4: string };
  lbOut: { mac: string; ip4: string };
  sink: { mac: string };
  clientNet: string;
  reals: readonly { address: string; mac: string }[];
}): PpsNet {
  const prefix = randomPrefix('xlbe');
  const net = {
    prefix, genNs: `${prefix}-gen`, lbNs: `${prefix}-lb`, sinkNs: `${prefix}-sink`,
    genDev: `${prefix}g`, lbIn: `${prefix}i`, lbOut: `${prefix}o`, sinkDev: `${prefix}s`,
  };
  const removeNamespaces = () => destroyNamespaces(prefix);
  const unregister = onCleanup(removeNamespaces);
  try {
    for (const ns of [net.genNs, net.lbNs, net.sinkNs]) {
      ip(['netns', 'add', ns]);
      sysctl(ns, 'net.ipv6.conf.all.disable_ipv6', '1');
      sysctl(ns, 'net.ipv6.conf.default.disable_ipv6', '1');
      ip(['link', 'set', 'lo', 'up'], ns);
    }
    ip(['link', 'add', net.genDev, 'netns', net.genNs, 'address', a.gen.mac, 'type', 'veth',
      'peer', 'name', net.lbIn, 'netns', net.lbNs, 'address', a.lbIn.mac]);
    ip(['link', 'add', net.lbOut, 'netns', net.lbNs, 'address', a.lbOut.mac, 'type', 'veth',
      'peer', 'name', net.sinkDev, 'netns', net.sinkNs, 'address', a.sink.mac]);
    ip(['addr', 'add', `${a.gen.ip4}/24`, 'dev', net.genDev], net.genNs);
    ip(['addr', 'add', `${a.lbIn.ip4}/24`, 'dev', net.lbIn], net.lbNs);
    ip(['addr', 'add', `${a.lbOut.ip4}/24`, 'dev', net.lbOut], net.lbNs);
    for (const [ns, dev] of [[net.genNs, net.genDev], [net.lbNs, net.lbIn], [net.lbNs, net.lbOut], [net.sinkNs, net.sinkDev]] as const) {
      ip(['link', 'set', dev, 'up'], ns);
    }
    sysctl(net.lbNs, 'net.ipv4.ip_forward', '1');
    for (const dev of ['all', 'default', net.lbIn, net.lbOut]) sysctl(net.lbNs, `net.ipv4.conf.${dev}.rp_filter`, '0');
    ip(['route', 'add', a.clientNet, 'via', a.gen.ip4, 'dev', net.lbIn], net.lbNs);
    for (const r of a.reals) {
      ip(['neigh', 'replace', r.address, 'lladdr', r.mac, 'dev', net.lbOut, 'nud', 'permanent'], net.lbNs);
    }
  } catch (err) {
    removeNamespaces();
    unregister();
    throw err;
  }
  return {
    ...net,
    destroy() {
      removeNamespaces();
      unregister();
    },
  };
}
