/**
 * Stand-in for the daemon in the lab until it exists: runs inside the LB namespace, loads the
 * forwarder, attaches it to an interface and takes JSON-line commands on stdin:
 *   {"op":"config", ...TunnelConfig}
 *   {"op":"service", "service": ServiceSpec, "reals": RealSpec[]}
 *   {"op":"stats", "service": ServiceSpec, "reals": ["addr", ...]}
 * Each command gets one JSON line back: {"ok":true,...} or {"ok":false,"error":"..."}.
 * Detaches and exits when stdin closes.
 */
import { createInterface } from 'node:readline';
import { XdpForwarder } from '../../src/datapath/xdp/forwarder.ts';
import { xdpAttach, xdpDetach, XDP_FLAGS_DRV_MODE } from '../../src/datapath/bpf/index.ts';
import { ifindexOf } from './ifindex.ts';

const ifname = process.argv[2] ?? 'eth0';
const ifindex = ifindexOf(ifname);
const fw = XdpForwarder.open({ ctSize: 65536 });
xdpAttach(ifindex, fw.program.fd, XDP_FLAGS_DRV_MODE);

const reply = (v: unknown) => process.stdout.write(`${JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? Number(x) : x))}\n`);
const stop = () => {
  try { xdpDetach(ifindex, XDP_FLAGS_DRV_MODE); } finally { fw.close(); }
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

reply({ ok: true, ready: true, ifindex });
createInterface({ input: process.stdin }).on('line', (line) => {
  try {
    const cmd = JSON.parse(line);
    switch (cmd.op) {
      case 'config': fw.setConfig(cmd); reply({ ok: true }); break;
      case 'service': reply({ ok: true, ...fw.setService(cmd.service, cmd.reals), realIds: undefined }); break;
      case 'stats': reply({
        ok: true,
        counters: fw.counters(),
        service: fw.serviceStats(cmd.service),
        reals: Object.fromEntries((cmd.reals as string[]).map((a) => [a, fw.realStats(cmd.service, a)])),
      }); break;
      default: reply({ ok: false, error: `unknown op '${cmd.op}'` });
    }
  } catch (err) {
    reply({ ok: false, error: (err as Error).message });
  }
}).on('close', stop);
