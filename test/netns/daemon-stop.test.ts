/**
 * The daemon's signals in a VRRP pair of the namespace lab: lb1 (priority 150) and lb2 (100) both
 * run `xlb run` with one VRRP instance (advert_int 1 s) and a DR HTTP service over two reals, while
 * the client GETs through the VIP in a loop.
 *   - USR1 / USR2 on the master write the data and statistics dumps to --dump-dir;
 *   - TERM on the master: it exits 0 having sent priority 0, so the backup takes over at once
 *     (well before the 3.6 s master-down interval), removed the VIP, detached its XDP
 *     program and removed its pins; the GETs go on through lb2;
 *   - TERM on lb2 started with --keep-datapath: the VIP is removed but the XDP program stays
 *     attached and pinned.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Get } from '../../scripts/lab/client-agent.ts';
import { ip } from '../../scripts/lab/netns.ts';
import { urlOf } from './rig.ts';
import { config, drService, pause, PIN_ROOT, startDaemonRig, vrrpInstance, waitServing, type DaemonProcess, type DaemonRig, type LogLine } from './daemon-rig.ts';

const hasVip = (ns: string, vip: string) => ip(['-j', 'addr', 'show', 'dev', 'eth0'], ns).includes(`"${vip}"`);
const hasXdp = (ns: string) => ip(['-j', 'link', 'show', 'dev', 'eth0'], ns).includes('"xdp"');
const entered = (state: string) => (l: LogLine) => l.component === 'vrrp' && l.state === state;

describe('xlb run: signals in a VRRP pair', () => {
  let rig: DaemonRig | undefined;
  before(async () => { rig = await startDaemonRig({ lbs: 2, reals: 2 }); });
  after(async () => { await rig?.close(); });

  test('USR1/USR2 write the dumps; TERM hands the VIP over at once and cleans up; --keep-datapath keeps XDP attached', async () => {
    assert.ok(rig, 'the lab did not come up');
    const { lab, client } = rig;
    const [n1, n2] = rig.nodes as [typeof rig.nodes[0], typeof rig.nodes[0]];
    const services = [drService(lab, 80, ['real1', 'real2'])];
    n1.writeConfig(config([vrrpInstance(lab, { priority: 150, version: 2, advertInt: 1 })], services));
    n2.writeConfig(config([vrrpInstance(lab, { priority: 100, version: 2, advertInt: 1 })], services));
    const dumpDir = lab.stateDir;
    const d1 = await n1.startDaemon(['--dump-dir', dumpDir]);
    await d1.waitFor(entered('MASTER'), 'lb1 MASTER');
    const d2: DaemonProcess = await n2.startDaemon(['--keep-datapath']);
    await d2.waitFor(entered('BACKUP'), 'lb2 BACKUP');
    const url = urlOf(lab.vip4, 80);
    await waitServing(client, url);

    // dumps
    d1.signal('SIGUSR1');
    d1.signal('SIGUSR2');
    await d1.waitFor((l) => l.msg === 'data dump written', 'the data dump');
    await d1.waitFor((l) => l.msg === 'stats dump written', 'the stats dump');
    const data = readFileSync(join(dumpDir, 'keepalived.data'), 'utf8');
    assert.match(data, /^ VRRP Instance = VI_1\n {3}State = MASTER$/m);
    assert.match(data, /^ VS = \[198\.18\.0\.100\]:tcp:80 /m);
    assert.match(data, /^ {3}RS = \[198\.18\.0\.11\]:tcp:80, DR, UP, weight 1/m);
    const stats = readFileSync(join(dumpDir, 'keepalived.stats'), 'utf8');
    assert.match(stats, /^ TCP 198\.18\.0\.100:80 \(\[198\.18\.0\.100\]:tcp:80\): connections [1-9]\d*, /m);
    assert.match(stats, /^ {3}Advertisements: received \d+, sent [1-9]\d*$/m);

    // TERM on the master
    await client.call({ op: 'loop.start', url, concurrency: 1 });
    await pause(500);
    const termAt = Date.now();
    d1.signal('SIGTERM');
    const master2 = await d2.waitFor(entered('MASTER'), 'lb2 MASTER after lb1 stopped', 5000);
    const takeoverMs = Date.parse(master2.time as string) - termAt;
    assert.ok(takeoverMs < 2000, `lb2 took over ${takeoverMs} ms after TERM: priority 0, not the 3.6 s master-down interval`);
    assert.deepEqual(await d1.exited, { code: 0, signal: null }, 'lb1 exits 0');
    assert.equal(hasVip(lab.lbs[0]!.ns, lab.vip4), false, 'lb1 removed the VIP');
    assert.equal(hasXdp(lab.lbs[0]!.ns), false, 'lb1 detached its XDP program');
    assert.equal(existsSync(join(PIN_ROOT, n1.instance)), false, 'lb1 removed its pins');
    assert.ok(d1.find((l) => l.msg === 'stopped' && l.datapath === 'remove').length === 1, 'lb1 logged its stop');
    await pause(500);
    const settled = (await client.call({ op: 'mark' })).seq as number;
    await pause(1000);
    const gets = (await client.call({ op: 'loop.stop' })).gets as Get[];
    const late = gets.filter((g) => g.start > settled);
    assert.ok(late.length > 0 && late.every((g) => g.error === undefined), `GETs are served through lb2 after the takeover: ${JSON.stringify(late.filter((g) => g.error))}`);

    // TERM on lb2, which keeps its datapath
    assert.equal(hasXdp(lab.lbs[1]!.ns), true);
    d2.signal('SIGTERM');
    assert.deepEqual(await d2.exited, { code: 0, signal: null }, 'lb2 exits 0');
    assert.equal(hasVip(lab.lbs[1]!.ns, lab.vip4), false, 'lb2 removed the VIP');
    assert.equal(hasXdp(lab.lbs[1]!.ns), true, '--keep-datapath: the XDP program stays attached');
    assert.ok(existsSync(join(PIN_ROOT, n2.instance, 'prog')), '--keep-datapath: and pinned, for the next start to adopt');
    assert.ok(d2.find((l) => l.msg.startsWith('stopped') && l.datapath === 'keep').length === 1, 'lb2 logged that it kept the datapath');
  });
});
