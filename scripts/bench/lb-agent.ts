/**
 * Bench agent in the balancer's namespace (started by scripts/bench/live.ts through
 * `ip netns exec`): loads the forwarder with the bench's services and the baseline programs,
 * and on command attaches one of them to the veth in native (driver) mode.
 *
 * argv: IFNAME BASELINE_OBJECT [XLB_OBJECT]
 * JSON lines on stdin, one reply each on stdout:
 *   {"op":"attach","prog":"xlb"|"xdp_tx"|"xdp_pass"}  → {ok, progId}
 *   {"op":"counters"}  → {ok, counters: {rx: "123", ..., svc_conns}, dev: {rx_packets, ...}}
 * Detaches and exits when stdin closes, or on SIGINT/SIGTERM.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { XdpForwarder } from '../../src/datapath/xdp/forwarder.ts';
import { openObject, xdpAttach, xdpDetach, xdpQuery, XDP_FLAGS_DRV_MODE } from '../../src/datapath/bpf/index.ts';
import { readCounters, services, TUNNEL } from './fixtures.ts';
import { toJsonLine } from './netns.ts';

const [ifname = 'lb0', baselinePath, xlbPath] = process.argv.slice(2);
if (!baselinePath) throw new Error('usage: lb-agent.ts IFNAME BASELINE_OBJECT [XLB_OBJECT]');

const reply = (v: Record<string, unknown>) => process.stdout.write(toJsonLine(v));
const ifindex = Number(readFileSync(`/sys/class/net/${ifname}/ifindex`, 'utf8'));

const fw = XdpForwarder.open(xlbPath ? { object: xlbPath } : {});
const base = openObject(baselinePath);
let attached = false;

function stop(code = 0): never {
  try { if (attached) xdpDetach(ifindex, XDP_FLAGS_DRV_MODE); } catch { /* the namespace may be going away */ }
  try { base.close(); } catch { /* ignore */ }
  try { fw.close(); } catch { /* ignore */ }
  process.exit(code);
}
process.on('SIGTERM', () => stop(0));
process.on('SIGINT', () => stop(0));

function devStats(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of ['rx_packets', 'rx_dropped', 'tx_packets', 'tx_dropped']) {
    out[k] = Number(readFileSync(`/sys/class/net/${ifname}/statistics/${k}`, 'utf8'));
  }
  return out;
}

try {
  base.load();
  fw.setConfig(TUNNEL);
  for (const s of services()) fw.setService(s.service, s.reals);
  reply({ ok: true, ifindex });
} catch (err) {
  reply({ ok: false, error: (err as Error).message });
  stop(1);
}

const programs = {
  xlb: () => fw.program.fd,
  xdp_tx: () => base.program('xdp_tx').fd,
  xdp_pass: () => base.program('xdp_pass').fd,
} as const;

createInterface({ input: process.stdin }).on('line', (line) => {
  try {
    const cmd = JSON.parse(line) as { op: string; prog?: keyof typeof programs };
    switch (cmd.op) {
      case 'attach': {
        const fd = cmd.prog && programs[cmd.prog]?.();
        if (fd === undefined) throw new Error(`unknown program '${cmd.prog}'`);
        xdpAttach(ifindex, fd, XDP_FLAGS_DRV_MODE); // replaces the attached one
        attached = true;
        const q = xdpQuery(ifindex);
        if (!q.drvProgId) throw new Error(`${ifname}: no program attached in driver mode after attach`);
        reply({ ok: true, progId: q.drvProgId });
        break;
      }
      case 'counters':
        reply({ ok: true, counters: readCounters(fw), dev: devStats() });
        break;
      default:
        throw new Error(`unknown op '${cmd.op}'`);
    }
  } catch (err) {
    reply({ ok: false, error: (err as Error).message });
  }
}).on('close', () => stop(0));
