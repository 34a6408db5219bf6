/**
 * src/net/ over rtnetlink in a network namespace of its own (one veth pair v0/v1 inside it):
 * addresses (label, scope, nodad, preferred lifetime 0; the dump that finds leftovers), routes and
 * rules (add, delete, the kernel's refusals), and link state followed through events (down, up,
 * carrier, new and deleted links, lost events recovered by a dump). What src/net/ did is read
 * back with iproute2 (`ip -j ...`), never only with src/net/ itself.
 *
 * Needs root; fails (never skips) without. Cleanup, also on failure: the namespace.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { ADDON_PATH } from '../../src/datapath/bpf/index.ts';
import { addAddress, deleteAddress, linkLocalAddress, listAddresses } from '../../src/net/address.ts';
import { LinkWatcher, type LinkState } from '../../src/net/link-watch.ts';
import { inNetns } from '../../src/net/netns.ts';
import { addRoute, addRule, deleteRoute, deleteRule, listRoutes, RTPROT_KEEPALIVED } from '../../src/net/route.ts';
import { Rtnl } from '../../src/net/rtnl.ts';
import { destroyNamespaces, ip, onCleanup, randomPrefix, sysctl } from '../../scripts/lab/netns.ts';
import { requireCommand, requireFile, requireRoot } from '../lib/require.ts';

const PREFIX = randomPrefix('xlbnl');
const NS = `${PREFIX}-n`;
const unregister = onCleanup(() => destroyNamespaces(PREFIX));

interface Env { v0: number; v1: number; nl: Rtnl }
let env: Env | Error | undefined;

const ifindexOf = (name: string): number => {
  const [l] = JSON.parse(ip(['-j', 'link', 'show', 'dev', name], NS)) as { ifindex: number }[];
  if (!l) throw new Error(`no ${name} in ${NS}`);
  return l.ifindex;
};

function setup(): Env {
  if (env === undefined) {
    try {
      requireRoot();
      requireFile(ADDON_PATH, 'make native');
      requireCommand('ip', 'iproute2');
      ip(['netns', 'add', NS]);
      sysctl(NS, 'net.ipv6.conf.all.accept_dad', '0');
      sysctl(NS, 'net.ipv6.conf.default.accept_dad', '0');
      ip(['link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1'], NS);
      ip(['link', 'set', 'v0', 'up'], NS);
      ip(['link', 'set', 'v1', 'up'], NS);
      ip(['addr', 'add', '198.18.0.1/24', 'dev', 'v0'], NS);
      ip(['addr', 'add', 'fd00::1/64', 'dev', 'v0', 'nodad'], NS);
      env = { v0: ifindexOf('v0'), v1: ifindexOf('v1'), nl: inNetns(NS, () => Rtnl.open()) };
    } catch (err) {
      env = err as Error;
    }
  }
  if (env instanceof Error) throw env;
  return env;
}

interface IpAddr { local: string; prefixlen: number; scope: string; label?: string; nodad?: boolean; deprecated?: boolean; preferred_life_time: number }
const ipAddrs = (dev: string): IpAddr[] => {
  const [l] = JSON.parse(ip(['-j', 'addr', 'show', 'dev', dev], NS)) as { addr_info: (IpAddr | Record<string, never>)[] }[];
  return (l?.addr_info ?? []).filter((a): a is IpAddr => 'local' in a);
};
const ipJson = <T>(args: string[]): T => JSON.parse(ip(['-j', ...args], NS) || '[]') as T;

/** assert.rejects on code / syscall, and that the message names `what` */
async function rejects(p: Promise<unknown>, code: string, syscall: string, what: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    const err = e as { code?: string; errno?: number; syscall?: string; message: string };
    assert.deepEqual([err.code, err.syscall], [code, syscall], err.message);
    assert.ok(typeof err.errno === 'number' && err.errno > 0);
    assert.match(err.message, what);
    return true;
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('rtnetlink in a namespace (root)', () => {
  after(() => {
    if (env && !(env instanceof Error)) env.nl.close();
    destroyNamespaces(PREFIX);
    unregister();
  });

  test('addresses: label and scope (IPv4), nodad and preferred lifetime 0 (IPv6); EEXIST, replace, delete', async () => {
    const { nl, v0 } = setup();
    await addAddress(nl, { ifindex: v0, address: '198.18.0.100', prefixLength: 32, label: 'v0:vip', scope: 'global' });
    await addAddress(nl, { ifindex: v0, address: '198.18.0.101', prefixLength: 32, scope: 'host' });
    await addAddress(nl, { ifindex: v0, address: 'fd00::100', prefixLength: 128, nodad: true, preferredLifetime: 0 });
    const byIp = new Map(ipAddrs('v0').map((a) => [a.local, a]));
    assert.deepEqual([byIp.get('198.18.0.100')?.label, byIp.get('198.18.0.100')?.scope, byIp.get('198.18.0.100')?.prefixlen],
      ['v0:vip', 'global', 32]);
    assert.equal(byIp.get('198.18.0.101')?.scope, 'host');
    const v6 = byIp.get('fd00::100');
    assert.deepEqual([v6?.nodad, v6?.deprecated, v6?.preferred_life_time], [true, true, 0], JSON.stringify(v6));

    await rejects(addAddress(nl, { ifindex: v0, address: '198.18.0.100', prefixLength: 32 }), 'EEXIST', 'RTM_NEWADDR', /198\.18\.0\.100\/32 dev \d+/);
    // replace updates what the kernel lets it (lifetimes; not the label, as with `ip addr replace`)
    assert.equal(ipAddrs('v0').find((a) => a.local === '198.18.0.100')?.deprecated, undefined);
    await addAddress(nl, { ifindex: v0, address: '198.18.0.100', prefixLength: 32, label: 'v0:vip', preferredLifetime: 0 }, { replace: true });
    const replaced = ipAddrs('v0').find((a) => a.local === '198.18.0.100');
    assert.deepEqual([replaced?.label, replaced?.deprecated], ['v0:vip', true], JSON.stringify(replaced));

    for (const [address, prefixLength] of [['198.18.0.100', 32], ['198.18.0.101', 32], ['fd00::100', 128]] as const) {
      await deleteAddress(nl, { ifindex: v0, address, prefixLength });
    }
    const left = ipAddrs('v0').map((a) => a.local);
    assert.ok(!left.includes('198.18.0.100') && !left.includes('198.18.0.101') && !left.includes('fd00::100'), left.join(' '));
    await rejects(deleteAddress(nl, { ifindex: v0, address: '198.18.0.100', prefixLength: 32 }), 'EADDRNOTAVAIL', 'RTM_DELADDR', /198\.18\.0\.100/);
    await rejects(addAddress(nl, { ifindex: 0x7ffffff0, address: '198.18.0.100', prefixLength: 32 }), 'ENODEV', 'RTM_NEWADDR', /dev 2147483632/);
    await rejects(addAddress(nl, { ifindex: v0, address: 'fd00::100', prefixLength: 128, label: 'v0:x' }), 'EINVAL', 'RTM_NEWADDR', /IPv4 addresses only/);
    await rejects(addAddress(nl, { ifindex: v0, address: '198.18.0.100', prefixLength: 33 }), 'EINVAL', 'RTM_NEWADDR', /prefix length 33/);
    await rejects(addAddress(nl, { ifindex: v0, address: '198.18.0.300', prefixLength: 32 }), 'EINVAL', 'RTM_NEWADDR', /not an IP address/);
  });

  test('the address dump finds addresses a crashed run left (added here by `ip`), and they can be removed', async () => {
    const { nl, v0 } = setup();
    ip(['addr', 'add', '198.18.0.150/32', 'dev', 'v0', 'label', 'v0:old'], NS);
    ip(['addr', 'add', 'fd00::150/128', 'dev', 'v0', 'nodad'], NS);
    const mine = (await listAddresses(nl, { ifindex: v0 })).filter((a) => a.address.endsWith('.150') || a.address.endsWith('::150'));
    assert.deepEqual(mine.map((a) => [a.family, a.address, a.prefixLength, a.label, a.scope]),
      [[4, '198.18.0.150', 32, 'v0:old', 0], [6, 'fd00::150', 128, null, 0]]);
    assert.ok(mine[1]!.flags.includes('nodad'), mine[1]!.flags.join(','));
    assert.deepEqual((await listAddresses(nl, { family: 6, ifindex: v0 })).filter((a) => a.family !== 6), []);
    for (const a of mine) await deleteAddress(nl, a);
    assert.deepEqual(ipAddrs('v0').filter((a) => a.local.endsWith('.150') || a.local.endsWith('::150')), []);
  });

  test('the link-local address of an interface (the VRRP source for IPv6)', async () => {
    const { nl, v0 } = setup();
    const [want] = ipJson<{ addr_info: { local?: string }[] }[]>(['-6', 'addr', 'show', 'dev', 'v0', 'scope', 'link']);
    const ll = want?.addr_info.find((a) => a.local)?.local;
    assert.ok(ll, 'iproute2 shows a link-local address');
    assert.equal(await linkLocalAddress(nl, v0), ll);
  });

  test('routes: via / dev / table / src / scope / metric / type, IPv4 and IPv6; EEXIST and ESRCH', async () => {
    const { nl, v0 } = setup();
    const routes = [
      { dst: '198.18.5.0/24', via: '198.18.0.254', ifindex: v0, table: 100, src: '198.18.0.1', metric: 10 },
      { dst: '198.18.6.0/24', ifindex: v0, table: 1000, scope: 'link' as const },
      { dst: '198.18.7.0/24', type: 'blackhole' as const },
      { dst: 'fd00:5::/64', via: 'fd00::fe', ifindex: v0, metric: 5 },
    ];
    for (const r of routes) await addRoute(nl, r);
    type IpRoute = { dst: string; gateway?: string; dev?: string; table?: string; prefsrc?: string; metric?: number; scope?: string; type?: string; protocol?: string };
    const shown = [...ipJson<IpRoute[]>(['-4', 'route', 'show', 'table', 'all']), ...ipJson<IpRoute[]>(['-6', 'route', 'show', 'table', 'all'])]
      .filter((r) => r.protocol === 'keepalived');
    const key = (r: IpRoute) => [r.type ?? 'unicast', r.dst, r.gateway ?? null, r.dev ?? null, r.table ?? 'main', r.prefsrc ?? null, r.metric ?? null];
    assert.deepEqual(shown.map(key).sort(), [
      ['unicast', '198.18.5.0/24', '198.18.0.254', 'v0', '100', '198.18.0.1', 10],
      ['unicast', '198.18.6.0/24', null, 'v0', '1000', null, null],
      ['blackhole', '198.18.7.0/24', null, null, 'main', null, null],
      ['unicast', 'fd00:5::/64', 'fd00::fe', 'v0', 'main', null, 5],
    ].sort());
    assert.equal(shown.find((r) => r.dst === '198.18.6.0/24')?.scope, 'link');
    const listed = (await listRoutes(nl, { table: 1000 })).filter((r) => r.protocol === RTPROT_KEEPALIVED);
    assert.deepEqual(listed.map((r) => [r.dst, r.ifindex, r.scope, r.table]), [['198.18.6.0/24', v0, 253, 1000]]);

    await rejects(addRoute(nl, routes[2]!), 'EEXIST', 'RTM_NEWROUTE', /blackhole 198\.18\.7\.0\/24/);
    for (const r of routes) await deleteRoute(nl, r);
    assert.deepEqual([...ipJson<IpRoute[]>(['-4', 'route', 'show', 'table', 'all']), ...ipJson<IpRoute[]>(['-6', 'route', 'show', 'table', 'all'])]
      .filter((r) => r.protocol === 'keepalived'), []);
    await rejects(deleteRoute(nl, routes[2]!), 'ESRCH', 'RTM_DELROUTE', /198\.18\.7\.0\/24/);
    await rejects(addRoute(nl, { dst: '198.18.8.0/24', via: 'fd00::fe' }), 'EINVAL', 'RTM_NEWROUTE', /gateway fd00::fe is not an IPv4 address/);
    await rejects(addRoute(nl, { dst: 'default' }), 'EINVAL', 'RTM_NEWROUTE', /family/);
  });

  test('rules: from / to / table / priority, fwmark, iif, not, an action, IPv6; EEXIST and ENOENT', async () => {
    const { nl } = setup();
    const rules = [
      { from: '198.18.0.100/32', table: 100, priority: 100 },
      { to: '198.18.9.0/24', table: 1000, priority: 101, fwmark: 5, fwmask: 255, iif: 'v0', invert: true },
      { family: 4 as const, action: 'unreachable' as const, priority: 102 },
      { from: 'fd00::100/128', table: 100, priority: 100 },
    ];
    for (const r of rules) await addRule(nl, r);
    type IpRule = { priority: number; src?: string; srclen?: number; dst?: string; dstlen?: number; table?: string; action?: string; fwmark?: string; fwmask?: string; iif?: string; not?: null };
    const shown = [...ipJson<IpRule[]>(['-4', 'rule', 'show']), ...ipJson<IpRule[]>(['-6', 'rule', 'show'])].filter((r) => r.priority >= 100 && r.priority <= 102);
    assert.deepEqual(shown.map((r) => [r.priority, r.src ?? null, r.dst ?? null, r.dstlen ?? null, r.table ?? r.action ?? null, r.fwmark ?? null, r.iif ?? null, 'not' in r]), [
      [100, '198.18.0.100', null, null, '100', null, null, false],
      [101, 'all', '198.18.9.0', 24, '1000', '0x5', 'v0', true],
      [102, 'all', null, null, 'unreachable', null, null, false],
      [100, 'fd00::100', null, null, '100', null, null, false],
    ]);
    await rejects(addRule(nl, rules[0]!), 'EEXIST', 'RTM_NEWRULE', /from 198\.18\.0\.100\/32 priority 100 table 100/);
    for (const r of rules) await deleteRule(nl, r);
    assert.deepEqual([...ipJson<IpRule[]>(['-4', 'rule', 'show']), ...ipJson<IpRule[]>(['-6', 'rule', 'show'])]
      .filter((r) => r.priority >= 100 && r.priority <= 102), []);
    await rejects(deleteRule(nl, rules[2]!), 'ENOENT', 'RTM_DELRULE', /priority 102 unreachable/);
    await rejects(addRule(nl, { from: '198.18.0.100/32' }), 'EINVAL', 'RTM_NEWRULE', /give a table or an action/);
    await rejects(addRule(nl, { from: '198.18.0.100/32', table: 100, iif: 'a/b' }), 'EINVAL', 'RTM_NEWRULE', /'a\/b' is not a valid interface name/);
  });

  test('link events: down, up, carrier lost with the peer, a link added and deleted', async () => {
    const { v0, v1 } = setup();
    const w = await inNetns(NS, () => LinkWatcher.open());
    try {
      assert.deepEqual(w.links().filter((l) => l.name === 'v0').map((l) => [l.ifindex, l.up, l.usable]), [[v0, true, true]]);
      const seen: LinkState[] = [];
      w.on('change', (now) => seen.push(now));
      const until = async (what: string, ok: () => boolean) => {
        const end = Date.now() + 3000;
        while (!ok()) {
          if (Date.now() > end) throw new Error(`no event for ${what}; saw ${JSON.stringify(seen.map((s) => [s.name, s.up, s.running, s.operstate, s.present]))}`);
          await sleep(5);
        }
      };
      ip(['link', 'set', 'v0', 'down'], NS);
      await until('v0 down', () => seen.some((s) => s.ifindex === v0 && !s.up && !s.usable));
      ip(['link', 'set', 'v0', 'up'], NS);
      await until('v0 up', () => w.link(v0)?.usable === true);
      seen.length = 0;
      ip(['link', 'set', 'v1', 'down'], NS);
      await until('v0 without carrier', () => seen.some((s) => s.ifindex === v0 && s.up && !s.running && s.operstate === 'lowerlayerdown'));
      assert.equal(w.link(v1)?.up, false);
      ip(['link', 'set', 'v1', 'up'], NS);
      await until('v0 running again', () => w.link(v0)?.usable === true);
      ip(['link', 'add', 'v2', 'type', 'veth', 'peer', 'name', 'v3'], NS);
      const v2 = ifindexOf('v2');
      await until('v2 added', () => w.link(v2)?.present === true);
      ip(['link', 'del', 'v2'], NS);
      await until('v2 deleted', () => w.link(v2)?.present === false);
      assert.ok(!w.links().some((l) => l.ifindex === v2));
    } finally {
      w.close();
    }
  });

  test('lost link events (a tiny receive buffer overrun: ENOBUFS) are recovered by a fresh dump', async () => {
    const { v0 } = setup();
    const w = await inNetns(NS, () => LinkWatcher.open({ recvBufferSize: 1 })); // the kernel's minimum
    try {
      let resyncs = 0;
      w.on('resync', () => resyncs++);
      // 201 state changes while this process does not read (spawnSync blocks the event loop)
      const lines = Array.from({ length: 200 }, (_, i) => `link set v0 ${i % 2 ? 'up' : 'down'}`).join('\n');
      const r = spawnSync('ip', ['-n', NS, '-batch', '-'], { input: `${lines}\nlink set v0 down\n` });
      assert.equal(r.status, 0, String(r.stderr));
      const end = Date.now() + 3000;
      while (!(resyncs > 0 && w.link(v0)?.up === false) && Date.now() < end) await sleep(5);
      assert.ok(resyncs > 0, 'a resync after ENOBUFS');
      assert.equal(w.link(v0)?.up, false, 'the state after the lost events');
      // and events keep coming (libuv stops polling on EPOLLERR; the addon starts it again)
      ip(['link', 'set', 'v0', 'up'], NS);
      const until = Date.now() + 3000;
      while (w.link(v0)?.up !== true && Date.now() < until) await sleep(5);
      assert.equal(w.link(v0)?.up, true, 'an event after the overrun');
    } finally {
      w.close();
      execFileSync('ip', ['-n', NS, 'link', 'set', 'v0', 'up']);
    }
  });
});
