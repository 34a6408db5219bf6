/**
 * The netns tests' rig: a lab (scripts/lab/lab.ts) with the forwarder's agent on lb1
 * (scripts/lab/lb-agent.ts) and a client agent on client1 (scripts/lab/client-agent.ts).
 * close() stops both agents and removes the lab; the lab's own cleanup also runs on exit and
 * signals, so nothing is left behind on any way out.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { Agent } from '../../scripts/lab/agent.ts';
import { createLab, type Lab, type LabOptions } from '../../scripts/lab/lab.ts';
import { randomPrefix } from '../../scripts/lab/netns.ts';
import type { ForwarderConfig, Method, RealSpec, ServiceSpec } from '../../src/datapath/xdp/forwarder.ts';
import { REPO, requireLab } from '../lib/require.ts';

export type Family = 4 | 6;

export interface Rig {
  lab: Lab;
  lb: Agent;
  client: Agent;
  close(): Promise<void>;
}

export async function startRig(opts: LabOptions): Promise<Rig> {
  requireLab();
  const lab = await createLab({ prefix: randomPrefix('xlbt'), ...opts });
  const agents: Agent[] = [];
  const close = async () => {
    try {
      await Promise.all(agents.map((a) => a.stop()));
    } finally {
      lab.destroy();
    }
  };
  try {
    const lb = (await Agent.start('lb', lab.lb.ns, resolve(REPO, 'scripts/lab/lb-agent.ts'), ['eth0'])).agent;
    agents.push(lb);
    const client = (await Agent.start('client', lab.client.ns, resolve(REPO, 'scripts/lab/client-agent.ts'))).agent;
    agents.push(client);
    return { lab, lb, client, close };
  } catch (err) {
    await close();
    throw err;
  }
}

export const vipOf = (lab: Lab, family: Family): string => (family === 4 ? lab.vip4 : lab.vip6);
export const addrOf = (h: { ipv4: string; ipv6: string }, family: Family): string => (family === 4 ? h.ipv4 : h.ipv6);
export const urlOf = (address: string, port: number): string => `http://${address.includes(':') ? `[${address}]` : address}:${port}/`;

/** The lab's reals by name with these weights, as the forwarder's reals of a method (and port). */
export function realSpecs(lab: Lab, family: Family, method: Method, weights: Record<string, number>, port?: number): RealSpec[] {
  return Object.entries(weights).map(([name, weight]) => {
    const r = lab.reals.find((x) => x.name === name);
    assert.ok(r, `no real '${name}' in the lab`);
    return { address: addrOf(r, family), weight, method, mac: r.mac, smac: lab.lb.mac, ...(port === undefined ? {} : { port }) };
  });
}

/** The lab's forwarder settings: lb1's TUN sources (its server-side addresses) and full-NAT sources. */
export function labConfig(lab: Lab): ForwarderConfig {
  return { tunSrc4: lab.lb.ipv4, tunSrc6: lab.lb.ipv6, natSrc4: lab.lb.natSrc4, natSrc6: lab.lb.natSrc6 };
}

/** A real's `xlb decap` counters (`xlb decap status --json`, run in its namespace). */
export function decapCounters(ns: string): Counters {
  const out = execFileSync('nsenter', [`--net=/run/netns/${ns}`, resolve(REPO, 'bin/xlb'), 'decap', 'status', 'eth0', '--json'], { encoding: 'utf8' });
  const status = JSON.parse(out) as { interfaces: { counters: Record<string, number> }[] };
  const c = status.interfaces[0]?.counters;
  assert.ok(c, `xlb decap is not attached in ${ns}`);
  return Object.fromEntries(Object.entries(c).map(([k, v]) => [k, BigInt(v)]));
}

/** Agents send 64-bit counters as decimal strings. */
export type Counters = Record<string, bigint>;
export function counters(v: unknown): Counters {
  return Object.fromEntries(Object.entries(v as Record<string, string>).map(([k, x]) => [k, BigInt(x)]));
}

export interface Stats { packets: bigint; bytes: bigint; conns: bigint }
const stats = (v: unknown): Stats => {
  const c = counters(v);
  return { packets: c.packets ?? -1n, bytes: c.bytes ?? -1n, conns: c.conns ?? -1n };
};

export interface ServiceReading {
  counters: Counters;
  service: Stats;
  reals: Record<string, Stats>;
}

/**
 * The LB's statistics for a service once they stop moving (the last packets of a flow may still
 * be on their way when the client has its answer): two equal readings 50 ms apart.
 */
export async function settledStats(lb: Agent, service: ServiceSpec, realAddrs: string[]): Promise<ServiceReading> {
  let last = '';
  for (let i = 0; i < 40; i++) {
    const r = await lb.call({ op: 'stats', service, reals: realAddrs });
    const text = JSON.stringify(r);
    if (text === last) {
      return {
        counters: counters(r.counters),
        service: stats(r.service),
        reals: Object.fromEntries(Object.entries(r.reals as Record<string, unknown>).map(([a, s]) => [a, stats(s)])),
      };
    }
    last = text;
    await new Promise((ok) => setTimeout(ok, 50));
  }
  throw new Error('the LB statistics kept changing for 2 s after the traffic stopped');
}

export function delta(after: Counters, before: Counters): Counters {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0n)]));
}

export const drops = (c: Counters): Counters => Object.fromEntries(Object.entries(c).filter(([k, v]) => k.startsWith('drop_') && v !== 0n));
