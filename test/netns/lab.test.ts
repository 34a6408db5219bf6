/**
 * The namespace lab through its launcher (scripts/lab/lab): up and down, the addressing it
 * promises, two labs at once, the real servers' services answering, and an interrupted `up`
 * leaving nothing behind. The labs' state goes to a directory of this run (XLB_LAB_STATE_ROOT),
 * so `down --all` here removes only this run's labs.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, test } from 'node:test';
import { Agent } from '../../scripts/lab/agent.ts';
import type { LabDescription } from '../../scripts/lab/lab.ts';
import { DECAP_PROGRAM, pinDir } from '../../src/datapath/xdp/decap.ts';
import { destroyNamespaces, ip, listNamespaces, nsPids, randomPrefix } from '../../scripts/lab/netns.ts';
import { REPO, requireCommand, requireLab } from '../lib/require.ts';

const LAUNCHER = resolve(REPO, 'scripts/lab/lab');
const stateRoot = mkdtempSync(join(tmpdir(), 'xlb-lab-test-'));
const env = { ...process.env, XLB_LAB_STATE_ROOT: stateRoot };
const used: string[] = [];

function newPrefix(): string {
  const p = randomPrefix('xlbl');
  used.push(p);
  return p;
}

/** Run the launcher; fails the test with its stderr unless it exits with `status`. */
function lab(args: string[], status = 0): string {
  const r = spawnSync(LAUNCHER, args, { env, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, status, `scripts/lab/lab ${args.join(' ')} exited with ${r.status ?? r.signal}: ${r.stderr}`);
  return status === 0 ? r.stdout : r.stderr;
}

const namespacesOf = (prefix: string) => listNamespaces().filter((n) => n.startsWith(`${prefix}-`)).sort();
const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
const comm = (pid: number) => { try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch { return ''; } };

function assertGone(prefix: string, pids: number[] = []): void {
  assert.deepEqual(namespacesOf(prefix), [], `no namespace of lab ${prefix} is left`);
  assert.equal(existsSync(join(stateRoot, prefix)), false, `the state of lab ${prefix} is removed`);
  assert.deepEqual(pids.filter(alive), [], `no process of lab ${prefix} is left`);
}

/** Every process in the lab's reals' namespaces. */
function realPids(d: LabDescription): number[] {
  return d.reals.flatMap((r) => nsPids(r.ns));
}

after(() => {
  for (const p of used) destroyNamespaces(p);
  rmSync(stateRoot, { recursive: true, force: true });
});

describe('the namespace lab (scripts/lab/lab)', () => {
  test('up builds the lab of the addressing reference and exits leaving it running; down removes all of it', () => {
    requireLab();
    const prefix = newPrefix();
    const d = JSON.parse(lab(['up', '--prefix', prefix, '--clients', '2', '--lbs', '2', '--reals', '2', '--routing', 'via-lb', '--decap', '--json'])) as LabDescription;

    assert.equal(d.prefix, prefix);
    assert.equal(d.routing, 'via-lb');
    assert.equal(d.http, 'node');
    assert.equal(d.decap, true);
    assert.deepEqual([d.vip4, d.vip6], ['198.18.0.100', 'fd00::100']);
    assert.deepEqual(d.ports, { http: [80, 8080], echo: 7 });
    assert.deepEqual(d.lbs.map((h) => [h.name, h.ns, h.ipv4, h.ipv6, h.clientIpv4, h.clientIpv6, h.natSrc4, h.natSrc6]), [
      ['lb1', `${prefix}-lb1`, '198.18.0.2', 'fd00::2', '198.18.1.2', 'fd00:1::2', '198.18.0.201', 'fd00::201'],
      ['lb2', `${prefix}-lb2`, '198.18.0.3', 'fd00::3', '198.18.1.3', 'fd00:1::3', '198.18.0.202', 'fd00::202'],
    ]);
    assert.deepEqual(d.reals.map((h) => [h.name, h.ipv4, h.ipv6]), [['real1', '198.18.0.11', 'fd00::11'], ['real2', '198.18.0.12', 'fd00::12']]);
    assert.deepEqual(d.clients.map((h) => [h.name, h.ipv4, h.ipv6]), [['client1', '198.18.1.11', 'fd00:1::11'], ['client2', '198.18.1.12', 'fd00:1::12']]);
    for (const h of [...d.lbs, ...d.reals, ...d.clients]) {
      const link = JSON.parse(ip(['-j', 'link', 'show', 'dev', 'eth0'], h.ns)) as { address: string }[];
      assert.equal(link[0]?.address, h.mac, `${h.name}'s MAC`);
    }
    assert.deepEqual(namespacesOf(prefix), ['client1', 'client2', 'lb1', 'lb2', 'real1', 'real2', 'sw'].map((n) => `${prefix}-${n}`));

    // the VIP on lb1 only (and on the reals' lo); via-lb: the reals reach the clients through lb1
    const addrs = (ns: string, dev: string) => (JSON.parse(ip(['-j', 'addr', 'show', 'dev', dev], ns)) as { addr_info: { local: string }[] }[])
      .flatMap((l) => l.addr_info.map((a) => a.local));
    assert.ok(addrs(d.lbs[0]!.ns, 'eth0').includes('198.18.0.100'));
    assert.ok(!addrs(d.lbs[1]!.ns, 'eth0').includes('198.18.0.100'));
    assert.ok(addrs(d.reals[0]!.ns, 'lo').includes('fd00::100'));
    const via = (ns: string, to: string) => (JSON.parse(ip(['-j', 'route', 'get', to], ns)) as { gateway?: string }[])[0]?.gateway;
    assert.equal(via(d.reals[0]!.ns, '198.18.1.11'), '198.18.0.2');
    assert.equal(via(d.reals[1]!.ns, 'fd00:1::12'), 'fd00::2');

    // --decap: xlb decap attached (and pinned) on every real, accepting the LBs' TUN sources
    const pins = d.reals.map((r) => pinDir('eth0', statSync(`/run/netns/${r.ns}`).ino));
    for (const [i, r] of d.reals.entries()) {
      assert.ok(existsSync(pins[i]!), `${r.name}: xlb decap pinned at ${pins[i]}`);
      const xdp = JSON.parse(ip(['-j', 'link', 'show', 'dev', 'eth0'], r.ns)) as { xdp?: { prog?: { name?: string } } }[];
      assert.equal(xdp[0]?.xdp?.prog?.name, DECAP_PROGRAM, `${r.name}: the decap program on eth0`);
    }
    const status = execFileSync('nsenter', [`--net=/run/netns/${d.reals[0]!.ns}`, resolve(REPO, 'bin/xlb'), 'decap', 'status', 'eth0', '--json'], { encoding: 'utf8' });
    assert.deepEqual((JSON.parse(status) as { interfaces: { allowSrc: string[] }[] }).interfaces[0]?.allowSrc.sort(),
      ['198.18.0.2/32', '198.18.0.3/32', 'fd00::2/128', 'fd00::3/128']);

    // it outlived the launcher: services running, described by list and show
    const pids = realPids(d);
    assert.ok(pids.length >= 2, 'every real runs its services');
    assert.deepEqual(lab(['list']).trim().split('\n'), [prefix]);
    assert.deepEqual(JSON.parse(lab(['show', '--prefix', prefix, '--json'])), d);

    assert.match(lab(['down', '--prefix', prefix]), new RegExp(`lab ${prefix}: removed`));
    assertGone(prefix, pids);
    for (const p of pins) assert.equal(existsSync(p), false, `${p} is removed`);
    assert.equal(lab(['list']), '');
  });

  test('two labs with different prefixes at once, each real answering HTTP (node or nginx), UDP and TCP echo', async () => {
    requireLab();
    requireCommand('nginx', 'nginx-light');
    const [a, b] = [newPrefix(), newPrefix()];
    const la = JSON.parse(lab(['up', '--prefix', a, '--reals', '2', '--json'])) as LabDescription;
    const lb = JSON.parse(lab(['up', '--prefix', b, '--reals', '3', '--routing', 'via-lb', '--http', 'nginx', '--json'])) as LabDescription;
    assert.match(lab(['up', '--prefix', a], 1), /exists/, 'a prefix in use is refused');
    assert.equal(namespacesOf(a).length, 5, `lab ${a} is intact after the refused up`);

    for (const d of [la, lb]) {
      const { agent } = await Agent.start('client', d.clients[0]!.ns, resolve(REPO, 'scripts/lab/client-agent.ts'));
      try {
        for (const r of d.reals) {
          for (const address of [r.ipv4, r.ipv6]) {
            const host = address.includes(':') ? `[${address}]` : address;
            for (const port of d.ports.http) {
              assert.deepEqual(await agent.call({ op: 'http', url: `http://${host}:${port}/`, count: 2 }),
                { ok: true, served: { [r.name]: 2 }, ports: { [port]: 2 }, errors: [] }, `${d.prefix} ${r.name} HTTP ${host}:${port}`);
            }
            assert.deepEqual(await agent.call({ op: 'udp', address, port: d.ports.echo, count: 2 }),
              { ok: true, served: { [r.name]: 2 }, errors: [] }, `${d.prefix} ${r.name} UDP echo ${address}`);
          }
          const s = await agent.call({ op: 'streams.open', address: r.ipv4, port: d.ports.echo, want: [r.name], max: 1 });
          assert.deepEqual((s.streams as { real: string }[]).map((x) => x.real), [r.name], `${d.prefix} ${r.name} TCP echo`);
          await agent.call({ op: 'streams.start', intervalMs: 5 });
          await new Promise((ok) => setTimeout(ok, 100));
          const [st] = (await agent.call({ op: 'streams.stop' })).streams as { sent: number; echoed: number; broken?: string }[];
          assert.ok(st && st.broken === undefined && st.echoed === st.sent && st.sent > 3, `${d.prefix} ${r.name} echoes: ${JSON.stringify(st)}`);
        }
      } finally {
        await agent.stop();
      }
      const comms = realPids(d).map(comm);
      assert.equal(comms.includes('nginx'), d.http === 'nginx', `${d.prefix}: HTTP by ${d.http} (${comms.join(', ')})`);
    }

    const pids = [...realPids(la), ...realPids(lb)];
    assert.deepEqual(lab(['list']).trim().split('\n'), [a, b].sort());
    const down = lab(['down', '--all']);
    assert.match(down, new RegExp(`lab ${a}: removed`));
    assert.match(down, new RegExp(`lab ${b}: removed`));
    assertGone(a, pids);
    assertGone(b);
  });

  for (const when of ['while it builds the hosts', 'while the services start'] as const) {
    test(`SIGINT to up ${when} removes everything it made`, async () => {
      requireLab();
      const prefix = newPrefix();
      const up = spawn(LAUNCHER, ['up', '--prefix', prefix, '--reals', '3'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      const exited = new Promise<{ code: number | null; signal: string | null }>((ok) => up.once('exit', (code, signal) => ok({ code, signal })));
      const stderr: string[] = [];
      let pids: number[] = [];
      for await (const line of createInterface({ input: up.stderr! })) {
        stderr.push(line);
        if (when === 'while it builds the hosts' && line.endsWith(`host real2 ${prefix}-real2`)) break;
        if (when === 'while the services start' && line.includes('services')) {
          // interrupt once a real's services run, before the lab is ready
          for (let i = 0; i < 400 && pids.length === 0; i++) {
            pids = nsPids(`${prefix}-real1`);
            if (pids.length === 0) await new Promise((ok) => setTimeout(ok, 5));
          }
          assert.ok(pids.length > 0, 'real1 runs its services');
          break;
        }
      }
      up.kill('SIGINT');
      const { code, signal } = await exited;
      assert.equal(signal, 'SIGINT', `up ended by the signal (code ${code}; stderr: ${stderr.join(' | ')})`);
      assert.ok(!stderr.includes(`lab ${prefix}: ready`), 'the signal came before the lab was ready');
      assertGone(prefix, pids);
    });
  }
});
