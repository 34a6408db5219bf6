import { readFileSync } from 'node:fs';

/** ifindex of an interface in this process's network namespace. */
export function ifindexOf(ifname: string): number {
  try {
    return Number(readFileSync(`/sys/class/net/${ifname}/ifindex`, 'utf8').trim());
  } catch {
    throw new Error(`no interface '${ifname}' in this network namespace`);
  }
}
