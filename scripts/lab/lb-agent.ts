/**
 * Stand-in for the daemon in the demo and the netns tests until it exists: an agent
 * (scripts/lab/agent.ts) in the LB namespace that loads the forwarder, attaches it to an
 * interface in native mode and takes:
 *   {"op":"config", ...ForwarderConfig}                              (TUN and NAT settings)
 *   {"op":"service", "service": ServiceSpec, "reals": RealSpec[]}  → {serviceId}  (add, change,
 *       drain: a real with weight 0, remove a real: leave it out)
 *   {"op":"remove", "service": ServiceSpec}                         → {removed}
 *   {"op":"stats", "service": ServiceSpec, "reals": ["addr", ...]}  → {counters, service, reals}
 *   {"op":"counters"}                                               → {counters}
 *   {"op":"conntrack"}                                              → {entries}
 *   {"op":"nat"}                                                    → {entries}  (NAT state)
 * Detaches and exits when stdin closes.
 */
import { XdpForwarder, type RealSpec, type ServiceSpec, type ForwarderConfig } from '../../src/datapath/xdp/forwarder.ts';
import { xdpAttach, xdpDetach, XDP_FLAGS_DRV_MODE } from '../../src/datapath/bpf/index.ts';
import { ifindexOf, serveAgent } from './agent.ts';

const ifname = process.argv[2] ?? 'eth0';
const ifindex = ifindexOf(ifname);
const fw = XdpForwarder.open({ ctSize: 65536 });
let attached = false;

serveAgent({
  setup: () => {
    xdpAttach(ifindex, fw.program.fd, XDP_FLAGS_DRV_MODE);
    attached = true;
    return { ifindex };
  },
  handlers: {
    config: ({ op: _op, ...cfg }) => { fw.setConfig(cfg as ForwarderConfig); return {}; },
    service: (cmd) => ({ serviceId: fw.setService(cmd.service as ServiceSpec, cmd.reals as RealSpec[]).serviceId }),
    remove: (cmd) => ({ removed: fw.removeService(cmd.service as ServiceSpec) }),
    counters: () => ({ counters: fw.counters() }),
    conntrack: () => ({ entries: fw.conntrackSize() }),
    nat: () => ({ entries: fw.natEntries() }),
    stats: (cmd) => {
      const service = cmd.service as ServiceSpec;
      return {
        counters: fw.counters(),
        service: fw.serviceStats(service),
        reals: Object.fromEntries((cmd.reals as string[]).map((a) => [a, fw.realStats(service, a)])),
      };
    },
  },
  teardown: () => {
    try { if (attached) xdpDetach(ifindex, XDP_FLAGS_DRV_MODE); } catch { /* the namespace may be going away */ }
    fw.close();
  },
});
