/**
 * What the VRRP interop tests share: a segment (scripts/lab/vrrp-segment.ts) with two VRRP nodes
 * and a client,
 *
 *   n1      198.18.0.1  fd00::1   a VRRP peer (xlb or keepalived) + a UDP echo on the VIPs
 *   n2      198.18.0.2  fd00::2   the same
 *   client  198.18.0.3  fd00::3   the lab's client agent (scripts/lab/client-agent.ts)
 *
 * and the check that a VIP really moved: a datagram from the client to VIP:7 is answered by the
 * echo on the node that holds it ("n1: ..." or "n2: ..."), after the client learnt the new MAC
 * from the new master's gratuitous ARP / NA.
 */
import { resolve } from 'node:path';
import { Agent } from '../../scripts/lab/agent.ts';
import { KeepalivedPeer } from '../../scripts/lab/keepalived.ts';
import { ip } from '../../scripts/lab/netns.ts';
import { startEcho, XlbPeer, type VrrpPeer } from '../../scripts/lab/vrrp-client.ts';
import { createSegment, SEGMENT_VIP4, SEGMENT_VIP6, type Segment } from '../../scripts/lab/vrrp-segment.ts';
import type { VrrpConfig, VrrpInstanceConfig } from '../../src/vrrp/config.ts';
import { ADDON_PATH } from '../../src/datapath/bpf/index.ts';
import { requireCommand, requireFile, requireRoot } from '../lib/require.ts';

export const VIP4 = SEGMENT_VIP4;
export const VIP6 = SEGMENT_VIP6;
export const ECHO_PORT = 7;
export type Kind = 'xlb' | 'keepalived';
export type Node = 'n1' | 'n2';

const CLIENT_AGENT = resolve(import.meta.dirname, '../../scripts/lab/client-agent.ts');

export function requireInterop(): void {
  requireRoot();
  requireFile(ADDON_PATH, 'make native');
  requireCommand('ip', 'iproute2');
  requireCommand('keepalived', 'keepalived');
}

/** One VRRP instance in keepalived's words, VIP 198.18.0.100/24 on eth0; `o` overrides. */
export function instance(o: Partial<VrrpInstanceConfig> = {}): VrrpConfig {
  return {
    vrrp_instance: [{
      name: 'VI_1', interface: 'eth0', virtual_router_id: 51, priority: 100, version: 3, advert_int: 0.1,
      virtual_ipaddress: [{ address: `${VIP4}/24` }], garp_master_delay: 0, ...o,
    }],
  };
}

export class Interop {
  private readonly peers: VrrpPeer[] = [];

  private constructor(readonly seg: Segment, readonly client: Agent) {}

  static async create(): Promise<Interop> {
    requireInterop();
    const seg = createSegment(['n1', 'n2', 'client']);
    try {
      await Promise.all((['n1', 'n2'] as const).map((n) => startEcho(seg.host(n).ns, n, ECHO_PORT, [VIP4, VIP6])));
      const { agent } = await Agent.start('client', seg.host('client').ns, CLIENT_AGENT);
      return new Interop(seg, agent);
    } catch (err) {
      seg.destroy();
      throw err;
    }
  }

  /** Start a peer; xlb logs to its peer object, keepalived only with `log` (its console log slows it). */
  async start(kind: Kind, node: Node, config: VrrpConfig, o: { log?: boolean } = {}): Promise<VrrpPeer> {
    const ns = this.seg.host(node).ns;
    const peer = kind === 'xlb' ? await XlbPeer.start(node, ns, config, { log: true }) : await KeepalivedPeer.start(node, ns, config, o);
    this.peers.push(peer);
    return peer;
  }

  /** Which node answers a datagram to vip:7 (tries a few times: the GARP may be on its way). */
  async answeredBy(vip: string, tries = 5): Promise<string> {
    let last = '';
    for (let i = 0; i < tries; i++) {
      const r = await this.client.call({ op: 'udp', address: vip, port: ECHO_PORT, count: 1, concurrency: 1 }) as { served: Record<string, number>; errors: string[] };
      const who = Object.keys(r.served);
      if (who.length === 1) return who[0]!;
      last = r.errors.join('; ');
      await new Promise((ok) => setTimeout(ok, 100));
    }
    throw new Error(`nobody answers on ${vip}: ${last}`);
  }

  /** Poll until `node` answers for `vip`, or fail after `ms`. */
  async waitAnswer(vip: string, node: Node, ms = 5000): Promise<void> {
    const until = Date.now() + ms;
    let who = '';
    while (Date.now() < until) {
      who = await this.answeredBy(vip).catch((err: Error) => err.message);
      if (who === node) return;
      await new Promise((ok) => setTimeout(ok, 50));
    }
    throw new Error(`${vip} answered by '${who}', not ${node}, after ${ms} ms`);
  }

  /** The addresses on a node's eth0. */
  addresses(node: Node): string[] {
    const [l] = JSON.parse(ip(['-j', 'addr', 'show', 'dev', 'eth0'], this.seg.host(node).ns)) as { addr_info: { local?: string }[] }[];
    return (l?.addr_info ?? []).map((a) => a.local ?? '').filter((a) => a !== '');
  }

  /** Stop (SIGKILL) every peer still running, and remove VIPs they left (between tests). */
  async reset(): Promise<void> {
    for (const p of this.peers.splice(0)) if (!p.exited) await p.kill();
    for (const n of ['n1', 'n2'] as const) {
      for (const a of this.addresses(n)) {
        if (a === VIP4 || a.startsWith('198.18.0.10')) ip(['addr', 'del', `${a}/24`, 'dev', 'eth0'], this.seg.host(n).ns);
        else if (a === VIP6) ip(['addr', 'del', `${a}/64`, 'dev', 'eth0'], this.seg.host(n).ns);
      }
    }
  }

  async destroy(): Promise<void> {
    try {
      await this.reset();
      await this.client.stop();
    } finally {
      this.seg.destroy();
    }
  }
}
