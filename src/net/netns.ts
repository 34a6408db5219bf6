/**
 * Network namespaces by name (as `ip netns` names them: a file under /run/netns).
 *
 * inNetns(name, fn) runs fn synchronously with this thread in that namespace and comes back
 * before returning (or throwing). What fn creates synchronously, sockets above all (our VRRP and
 * frame sockets, the netlink package's sockets, node's own), stays in that namespace for its whole
 * life; anything fn starts asynchronously runs later, in this process's own namespace. This is how
 * one process (a test, keepalived's `net_namespace`) works in several namespaces at once.
 */
import { bpfError, native } from '../datapath/bpf/index.ts';

export const NETNS_DIR = '/run/netns';

/** Run fn inside the named network namespace (errors: ENOENT for none of that name, EINVAL for a bad name). */
export function inNetns<T>(name: string, fn: () => T): T {
  if (typeof name !== 'string' || !/^[A-Za-z0-9_.-]{1,255}$/.test(name) || name === '.' || name === '..') {
    throw bpfError('EINVAL', 'setns', `'${String(name)}' is not a network namespace name`);
  }
  return native().netnsRun(`${NETNS_DIR}/${name}`, fn);
}
