/**
 * A stand-in for the daemon's datapath half, for the hitless-restart test
 * (test/netns/hitless.test.ts): it opens the pinned forwarder of an instance (creating it, or
 * adopting what an earlier process left), attaches it, programs services, reports, and waits to be
 * killed. Run it in the LB's namespace with nsenter (`ip netns exec` remounts /sys and hides the
 * BPF filesystem):
 *
 *   nsenter --net=/run/netns/NS node --import tsx scripts/lab/xdp-hold.ts hold INSTANCE IFNAME SETUP
 *       SETUP is JSON: {"config": ForwarderConfig, "services": [{"service": ServiceSpec, "reals": RealSpec[]}]}
 *       prints one line {ok: true, adopted, progId, held, conntrack, nat, counters, stats, applied},
 *       where held is what the forwarder held when opened (listServices, before SETUP is applied),
 *       conntrack and nat its connection-table and NAT-state entries then, counters its global counters then, stats the
 *       held services' statistics then (by service key), applied the ids that SETUP's services got;
 *       then waits. SIGTERM: closes its fds and exits (the datapath stays).
 *   ... xdp-hold.ts read INSTANCE
 *       opens the instance (adopting it, as a status reader would), prints {ok: true, adopted,
 *       counters, stats} and exits, leaving everything as it was
 *   ... xdp-hold.ts destroy INSTANCE
 *       adopts the instance and stops it cleanly (destroy: detach, remove the pins); prints
 *       {ok: true, adopted, attachments, counters, stats} (as they were before)
 *
 * A failure prints {ok: false, error} and exits 1. Counters are decimal strings.
 */
import { ifindexByName } from '../../src/net/link.ts';
import { XdpForwarder, serviceKey, type ForwarderConfig, type RealSpec, type ServiceSpec } from '../../src/datapath/xdp/forwarder.ts';
import { toJsonLine } from './agent.ts';

interface Setup {
  config: ForwarderConfig;
  services: { service: ServiceSpec; reals: RealSpec[] }[];
}

const say = (v: Record<string, unknown>) => process.stdout.write(toJsonLine(v));
/** Packets, bytes and scheduled connections of every service the forwarder holds, by key. */
const statsOf = (fw: XdpForwarder) => Object.fromEntries(fw.listServices().map(({ service }) => [serviceKey(service), fw.serviceStats(service)]));

async function hold(instance: string, ifname: string, setup: Setup): Promise<void> {
  const ifindex = await ifindexByName(ifname);
  const fw = XdpForwarder.open({ instance, ctSize: 65536, natSize: 65536, persistSize: 65536 });
  const held = fw.listServices();
  const conntrack = fw.conntrackSize();
  const nat = fw.natEntries();
  const counters = fw.counters();
  const stats = statsOf(fw);
  fw.attach(ifindex, 'native');
  fw.setConfig(setup.config);
  const applied = setup.services.map((s) => {
    const { serviceId, realIds } = fw.setService(s.service, s.reals);
    return { serviceId, realIds: Object.fromEntries(realIds) };
  });
  say({ ok: true, adopted: fw.adopted, progId: fw.program.info().id, held, conntrack, nat, counters, stats, applied });
  process.on('SIGTERM', () => {
    fw.close();
    process.exit(0);
  });
  setInterval(() => undefined, 1 << 30); // wait for a signal
}

async function read(instance: string): Promise<void> {
  const fw = XdpForwarder.open({ instance });
  say({ ok: true, adopted: fw.adopted, counters: fw.counters(), stats: statsOf(fw) });
  fw.close();
}

async function destroy(instance: string): Promise<void> {
  const fw = XdpForwarder.open({ instance });
  const attachments = await fw.attachments();
  const counters = fw.counters();
  const stats = statsOf(fw);
  const adopted = fw.adopted;
  await fw.destroy();
  say({ ok: true, adopted, attachments, counters, stats });
}

async function main(argv: string[]): Promise<void> {
  const [cmd, instance, ifname, setup] = argv;
  if (cmd === 'hold' && instance && ifname && setup) return hold(instance, ifname, JSON.parse(setup) as Setup);
  if (cmd === 'read' && instance) return read(instance);
  if (cmd === 'destroy' && instance) return destroy(instance);
  throw new Error('usage: xdp-hold.ts hold INSTANCE IFNAME SETUP-JSON | read INSTANCE | destroy INSTANCE');
}

main(process.argv.slice(2)).catch((err: unknown) => {
  say({ ok: false, error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
