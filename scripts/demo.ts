/**
 * `make demo`: the XDP forwarder in a namespace lab, forwarding real HTTP requests.
 *
 * A client, a load balancer and two real servers on one L2 segment (scripts/lab/lab.ts). The forwarder runs in the
 * LB's namespace (attached to its eth0 in native XDP mode) with one virtual service per family,
 * DR to both reals; the client fetches http://VIP/ and each real answers with its name. Then
 * real1 is drained (weight 0) and new connections go to real2 only. The daemon, VRRP and
 * health checks come in later steps; scripts/lab/lb-agent.ts stands in for the daemon here.
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { Agent } from './lab/agent.ts';
import { createLab } from './lab/lab.ts';

const here = import.meta.dirname;
const say = (s: string) => process.stdout.write(`\n== ${s}\n`);
/** Agents send counters as decimal strings (they are 64-bit); shown here as numbers. */
const numbers = (v: unknown): unknown => JSON.parse(JSON.stringify(v), (_k, x) => (typeof x === 'string' && /^\d+$/.test(x) ? Number(x) : x));

async function main(): Promise<void> {
  say('building the lab: client1, lb1, real1, real2 on one bridge (namespaces); HTTP servers on the reals');
  const lab = await createLab({ reals: 2 });
  let stopAgent = async (): Promise<void> => undefined;
  try {
    for (const h of [lab.client, lab.lb, ...lab.reals]) {
      console.log(`   ${h.name.padEnd(7)} ${h.ns.padEnd(16)} ${h.ipv4.padEnd(12)} ${h.ipv6.padEnd(10)} ${h.mac}`);
    }
    console.log(`   VIP ${lab.vip4} and ${lab.vip6} on the LB; the reals hold it on lo (DR)`);

    say('loading the XDP forwarder on lb:eth0 (native mode)');
    const { agent, hello } = await Agent.start('lb', lab.lb.ns, resolve(here, 'lab/lb-agent.ts'), ['eth0']);
    stopAgent = () => agent.stop();
    console.log(`   attached to ifindex ${String(hello.ifindex)}`);

    const reals = (weights: number[], family: 4 | 6) => lab.reals.map((r, i) => ({
      address: family === 4 ? r.ipv4 : r.ipv6, weight: weights[i], method: 'dr', mac: r.mac, smac: lab.lb.mac,
    }));
    const svc4 = { address: lab.vip4, port: 80, protocol: 'tcp' };
    const svc6 = { address: lab.vip6, port: 80, protocol: 'tcp' };
    await agent.call({ op: 'service', service: svc4, reals: reals([1, 1], 4) });
    await agent.call({ op: 'service', service: svc6, reals: reals([1, 1], 6) });
    console.log(`   service tcp ${lab.vip4}:80 and [${lab.vip6}]:80 → real1, real2 (DR, Maglev, weight 1 each)`);

    const fetch = (url: string, n: number, sport0: number): Record<string, number> => {
      const seen: Record<string, number> = {};
      for (let i = 0; i < n; i++) {
        // a fixed source port per request so the spread over reals is the hash's, not chance
        const out = execFileSync('ip', ['netns', 'exec', lab.client.ns, 'curl', '-sS', '-g', '--max-time', '3',
          '--local-port', String(sport0 + i), url], { encoding: 'utf8' }).trim();
        seen[out] = (seen[out] ?? 0) + 1;
      }
      return seen;
    };

    say(`client: 20 requests to http://${lab.vip4}/ (replies come straight from the reals)`);
    console.log('   answered by:', fetch(`http://${lab.vip4}/`, 20, 40000));
    say(`client: 20 requests to http://[${lab.vip6}]/`);
    console.log('   answered by:', fetch(`http://[${lab.vip6}]/`, 20, 41000));

    const stats = await agent.call({ op: 'stats', service: svc4, reals: lab.reals.map((r) => r.ipv4) });
    say('datapath statistics (IPv4 service)');
    console.log('   service:', numbers(stats.service));
    console.log('   reals:  ', numbers(stats.reals));
    const c = stats.counters as Record<string, string>;
    console.log('   global: ', numbers(Object.fromEntries(Object.entries(c).filter(([, v]) => v !== '0'))));

    say('draining real1 (weight 0): new connections go to real2 only');
    await agent.call({ op: 'service', service: svc4, reals: reals([0, 1], 4) });
    console.log('   answered by:', fetch(`http://${lab.vip4}/`, 10, 42000));

    say('done: tearing the lab down');
  } finally {
    await stopAgent();
    lab.destroy();
  }
}

main().catch((err: Error) => {
  console.error(`demo failed: ${err.message}`);
  process.exitCode = 1;
});
