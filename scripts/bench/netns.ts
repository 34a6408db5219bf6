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
