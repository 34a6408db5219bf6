/**
 * Child of addon.test.ts, run as an unprivileged user (setpriv --reuid=65534 ...): tries to
 * create a map and writes the error it got as JSON on stdout. LRU_HASH needs CAP_BPF even where
 * unprivileged BPF is allowed, so the answer is EPERM whatever the sysctl says.
 */
import { BpfMap, BPF_MAP_TYPE_LRU_HASH, isBpfError } from '../../src/datapath/bpf/index.ts';

let result: Record<string, unknown>;
try {
  const m = BpfMap.create({ type: BPF_MAP_TYPE_LRU_HASH, name: 'xlbt_unpriv', keySize: 4, valueSize: 4, maxEntries: 4 });
  m.close();
  result = { created: true, uid: process.getuid?.() };
} catch (err) {
  if (!isBpfError(err)) throw err;
  result = { code: err.code, errno: err.errno, syscall: err.syscall, message: err.message, uid: process.getuid?.() };
}
process.stdout.write(`${JSON.stringify(result)}\n`);
