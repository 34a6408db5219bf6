/**
 * Bench agent in the balancer's namespace (an agent of scripts/lab/agent.ts, started by
 * scripts/bench/live.ts): loads the forwarder with the bench's services and the baseline
 * programs, and on command attaches one of them to the veth in native (driver) mode.
 *
 * argv: IFNAME BASELINE_OBJECT [XLB_OBJECT]
 *   {"op":"attach","prog":"xlb"|"xdp_tx"|"xdp_pass"}  → {ok, progId}
 *   {"op":"counters"}  → {ok, counters: {rx: "123", ..., svc_conns}, dev: {rx_packets, ...}}
 * Detaches and exits when stdin closes, or on SIGINT/SIGTERM.
 */
import { XdpForwarder } from '../../src/datapath/xdp/forwarder.ts';
import { openObject, xdpAttach, xdpDetach, xdpQuery, XDP_FLAGS_DRV_MODE } from '../../src/datapath/bpf/index.ts';
import { devStats, ifindexOf, serveAgent } from '../lab/agent.ts';
import { readCounters, services, TUNNEL } from './fixtures.ts';

const [ifname = 'lb0', baselinePath, xlbPath] = process.argv.slice(2);
if (!baselinePath) throw new Error('usage: lb-agent.ts IFNAME BASELINE_OBJECT [XLB_OBJECT]');

const ifindex = ifindexOf(ifname);
const fw = XdpForwarder.open(xlbPath ? { object: xlbPath } : {});
const base = openObject(baselinePath);
let attached = false;

const programs: Record<string, () => number> = {
  xlb: () => fw.program.fd,
  xdp_tx: () => base.program('xdp_tx').fd,
  xdp_pass: () => base.program('xdp_pass').fd,
};

serveAgent({
  setup: () => {
    base.load();
    fw.setConfig(TUNNEL);
    for (const s of services()) fw.setService(s.service, s.reals);
    return { ifindex };
  },
  handlers: {
    attach: (cmd) => {
      const fd = programs[String(cmd.prog)]?.();
      if (fd === undefined) throw new Error(`unknown program '${String(cmd.prog)}'`);
      xdpAttach(ifindex, fd, XDP_FLAGS_DRV_MODE); // replaces the attached one
      attached = true;
      const q = xdpQuery(ifindex);
      if (!q.drvProgId) throw new Error(`${ifname}: no program attached in driver mode after attach`);
      return { progId: q.drvProgId };
    },
    counters: () => ({ counters: readCounters(fw), dev: devStats(ifname) }),
  },
  teardown: () => {
    try { if (attached) xdpDetach(ifindex, XDP_FLAGS_DRV_MODE); } catch { /* the namespace may be going away */ }
    try { base.close(); } catch { /* ignore */ }
    try { fw.close(); } catch { /* ignore */ }
  },
});
