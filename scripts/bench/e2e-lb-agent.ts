/**
 * Bench agent in a balancer's namespace for `make bench-e2e` (scripts/bench/pps.ts and tcp.ts;
 * an agent of scripts/lab/agent.ts): holds the programs the systems put on the ingress and
 * attaches one of them on command, in native mode, replacing the one attached (so a veth's
 * NAPI, and its thread when threaded, stays), or detaches it.
 *
 *   xlb    the forwarder (XdpForwarder) with the services given, every real behind OUT_DEV
 *          (bpf_redirect; XDP_TX when OUT_DEV is IN_DEV);
 *   floor  xdp_redirect_floor of the generator's object: MAC rewrite + redirect to OUT_DEV;
 *   pass   xdp_pass of the baseline object: every frame to the kernel.
 *
 * argv: IN_DEV OUT_DEV GEN_OBJECT BASELINE_OBJECT [XLB_OBJECT]
 *   {"op":"configure","services":[{vip,port,protocol?,method}],"reals":[{address,mac}],
 *    "config":ForwarderConfig, "outMac":mac (OUT_DEV's: every forwarded frame's new source),
 *    "floorMac"?:mac (the floor's destination; no floor without it)}  → {ok, serviceIds}
 *   {"op":"attach","prog":"xlb"|"floor"|"pass"}       → {ok, progId}
 *   {"op":"detach"}                                   → {ok}   nothing on IN_DEV
 *   {"op":"counters"}  → {ok, counters: {rx: "123", ...}, in: {rx_packets, ...}, out: {...}}
 * Detaches and exits when stdin closes, or on SIGINT/SIGTERM.
 */
import { XdpForwarder, type ForwarderConfig, type Method, type Protocol } from '../../src/datapath/xdp/forwarder.ts';
import { macBytes } from '../../src/datapath/xdp/net.ts';
import {
  openObject, xdpAttach, xdpDetach, xdpQuery, XDP_FLAGS_DRV_MODE, type BpfObject,
} from '../../src/datapath/bpf/index.ts';
import { devStats, ifindexOf, serveAgent } from '../lab/agent.ts';

const [inDev, outDev, genPath, baselinePath, xlbPath] = process.argv.slice(2);
if (!inDev || !outDev || !genPath || !baselinePath) {
  throw new Error('usage: e2e-lb-agent.ts IN_DEV OUT_DEV GEN_OBJECT BASELINE_OBJECT [XLB_OBJECT]');
}

const inIndex = ifindexOf(inDev);
const outIndex = ifindexOf(outDev);
let fw: XdpForwarder | undefined;
let base: BpfObject | undefined;
let floor: BpfObject | undefined;
let attached = false;

const programs: Record<string, () => number> = {
  xlb: () => fw!.program.fd,
  floor: () => floor!.program('xdp_redirect_floor').fd,
  pass: () => base!.program('xdp_pass').fd,
};

interface ServiceIn { vip: string; port: number; protocol?: Protocol; method: Method }
interface RealIn { address: string; mac: string }

serveAgent({
  setup: () => {
    fw = XdpForwarder.open(xlbPath ? { object: xlbPath } : {});
    base = openObject(baselinePath);
    base.load();
    return { ifindex: { in: inIndex, out: outIndex }, pid: process.pid };
  },
  handlers: {
    configure: (cmd) => {
      const services = cmd.services as ServiceIn[];
      const reals = cmd.reals as RealIn[];
      const smac = String(cmd.outMac);
      fw!.setConfig(cmd.config as ForwarderConfig);
      const serviceIds: Record<string, number> = {};
      for (const s of services) {
        const r = fw!.setService({ address: s.vip, port: s.port, protocol: s.protocol ?? 'udp' },
          reals.map((x) => ({ address: x.address, weight: 1, method: s.method, mac: x.mac, smac, ifindex: outIndex })));
        serviceIds[s.vip] = r.serviceId;
      }
      floor?.close();
      floor = undefined;
      if (cmd.floorMac !== undefined) {
        floor = openObject(genPath);
        floor.setGlobals('.rodata', { floor_ifindex: outIndex, floor_dmac: macBytes(String(cmd.floorMac)), floor_smac: macBytes(smac) });
        floor.load();
      }
      return { serviceIds };
    },
    attach: (cmd) => {
      const get = programs[String(cmd.prog)];
      if (!get) throw new Error(`unknown program '${String(cmd.prog)}'`);
      if (cmd.prog === 'floor' && !floor) throw new Error('configure first: the floor needs its addresses');
      xdpAttach(inIndex, get(), XDP_FLAGS_DRV_MODE); // replaces the attached one
      attached = true;
      const q = xdpQuery(inIndex);
      if (!q.drvProgId) throw new Error(`${inDev}: no program attached in driver mode after attach`);
      return { progId: q.drvProgId };
    },
    detach: () => {
      if (attached) xdpDetach(inIndex, XDP_FLAGS_DRV_MODE);
      attached = false;
      return {};
    },
    counters: () => ({ counters: fw!.counters(), in: devStats(inDev), out: devStats(outDev) }),
  },
  teardown: () => {
    try { if (attached) xdpDetach(inIndex, XDP_FLAGS_DRV_MODE); } catch { /* the namespace may be going away */ }
    for (const o of [floor, base]) try { o?.close(); } catch { /* ignore */ }
    try { fw?.close(); } catch { /* ignore */ }
  },
});
