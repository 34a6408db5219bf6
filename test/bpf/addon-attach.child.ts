/**
 * Child of addon.test.ts, run inside a fresh network namespace (`ip netns exec NS node --import
 * tsx addon-attach.child.ts IFNAME OBJECT`): XDP (generic/SKB mode) and TC attach, query and
 * detach on IFNAME, each step's outcome written as one JSON object on stdout for the parent to
 * check. Everything it attaches goes away with the namespace.
 */
import { readFileSync } from 'node:fs';
import {
  isBpfError, openObject, tcAttach, tcDetach, tcQuery, xdpAttach, xdpDetach, xdpQuery,
  XDP_FLAGS_SKB_MODE, XDP_FLAGS_UPDATE_IF_NOEXIST,
} from '../../src/datapath/bpf/index.ts';

const [ifname, objectPath] = process.argv.slice(2);
if (!ifname || !objectPath) throw new Error('usage: addon-attach.child.ts IFNAME OBJECT');

const ifindex = Number(readFileSync(`/sys/class/net/${ifname}/ifindex`, 'utf8'));
const obj = openObject(objectPath);
obj.load();
const xdpPass = obj.program('xdp_pass');
const xdpTx = obj.program('xdp_tx');
const tcPass = obj.program('tc_pass');

/** the error a step threw, as data */
function errorOf(fn: () => unknown): { code: string; errno: number; syscall: string; message: string } | null {
  try {
    fn();
    return null;
  } catch (err) {
    if (!isBpfError(err)) throw err;
    return { code: err.code, errno: err.errno, syscall: err.syscall, message: err.message };
  }
}

const out: Record<string, unknown> = {
  ifindex,
  ids: { xdpPass: xdpPass.info().id, xdpTx: xdpTx.info().id, tcPass: tcPass.info().id },
};

// XDP, generic mode
out.xdpBefore = xdpQuery(ifindex);
xdpAttach(ifindex, xdpPass, XDP_FLAGS_SKB_MODE);
out.xdpAttached = xdpQuery(ifindex);
out.xdpBusy = errorOf(() => xdpAttach(ifindex, xdpTx, XDP_FLAGS_SKB_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST));
xdpAttach(ifindex, xdpTx.fd, XDP_FLAGS_SKB_MODE); // replaces
out.xdpReplaced = xdpQuery(ifindex);
xdpDetach(ifindex, XDP_FLAGS_SKB_MODE);
out.xdpDetached = xdpQuery(ifindex);

// TC, both directions
out.tcBefore = tcQuery(ifindex, 'ingress');
tcAttach(ifindex, 'ingress', tcPass, { handle: 1, priority: 1 });
tcAttach(ifindex, 'egress', tcPass.fd, { handle: 7, priority: 3 });
out.tcIngress = tcQuery(ifindex, 'ingress', { handle: 1, priority: 1 });
out.tcEgress = tcQuery(ifindex, 'egress', { handle: 7, priority: 3 });
out.tcOtherPriority = tcQuery(ifindex, 'egress', { handle: 7, priority: 4 });
out.tcTaken = errorOf(() => tcAttach(ifindex, 'ingress', tcPass, { handle: 1, priority: 1 }));
tcDetach(ifindex, 'ingress', { handle: 1, priority: 1 });
tcDetach(ifindex, 'egress', { handle: 7, priority: 3 });
out.tcDetached = [tcQuery(ifindex, 'ingress', { handle: 1, priority: 1 }), tcQuery(ifindex, 'egress', { handle: 7, priority: 3 })];
out.tcDetachAgain = errorOf(() => tcDetach(ifindex, 'ingress', { handle: 1, priority: 1 }));

obj.close();
process.stdout.write(`${JSON.stringify(out)}\n`);
