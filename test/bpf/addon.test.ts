/**
 * The native addon and its TypeScript wrapper (src/datapath/bpf/) against the real kernel, with
 * bpf/baseline.bpf.c: objects and load-time globals, test runs, map operations (single, batch,
 * per-CPU), map creation, pinning, XDP and TC attach in a network namespace of our own, and the
 * error paths with their exact code / errno / syscall. Needs root; fails (never skips) without.
 *
 * Cleanup (also on failure): the pin directory /sys/fs/bpf/<prefix> and the namespace <prefix>.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  ADDON_PATH, BPF_ANY, BPF_EXIST, BPF_F_MMAPABLE, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY,
  BPF_NOEXIST, BPF_F_NO_COMMON_LRU, BPF_PROG_TYPE_SCHED_CLS, BPF_PROG_TYPE_XDP, BpfMap, BpfProgram, XDP_ATTACHED_NONE,
  XDP_ATTACHED_SKB, XDP_TX, isBpfError, native, numPossibleCpus, openObject, unpin, type BpfObject, type MapLike,
} from '../../src/datapath/bpf/index.ts';
import { FakeMap } from '../../src/datapath/bpf/fake.ts';
import { BASELINE_OBJECT, REPO, requireCommand, requireFile, requireRoot } from '../lib/require.ts';

const PREFIX = `xlbt-${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
const PIN_DIR = `/sys/fs/bpf/${PREFIX}`;
const NETNS = PREFIX;

const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const u64 = (n: number | bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return b; };
const num = (b: Buffer | null | undefined) => (b == null ? null : b.length === 4 ? b.readUInt32LE(0) : Number(b.readBigUInt64LE(0)));

interface ErrnoShape { code: string; errno: number; syscall: string }

function throwsErrno(fn: () => unknown, want: ErrnoShape, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isBpfError(err), `an Error with code/errno/syscall, got ${String(err)}`);
    assert.deepEqual({ code: err.code, errno: err.errno, syscall: err.syscall }, want, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

/** A loaded baseline object, closed by the caller. */
function loadBaseline(setup?: (o: BpfObject) => void): BpfObject {
  const o = openObject(BASELINE_OBJECT);
  try {
    setup?.(o);
    o.load();
    return o;
  } catch (err) {
    o.close();
    throw err;
  }
}

/** an Ethernet + IPv4 + UDP frame, 64 bytes, as a switch would see it */
function frame(): Buffer {
  const f = Buffer.alloc(64);
  Buffer.from('02000000000102000000000208004500003200004000401100000a0000010a000002', 'hex').copy(f);
  f.writeUInt16BE(40000, 34);
  f.writeUInt16BE(53, 36);
  f.writeUInt16BE(30, 38);
  return f;
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * What every test here needs, checked at the start of each test (once), so that without root
 * each test fails with the reason instead of being cancelled or skipped.
 */
let ready: Error | true | undefined;
function preconditions(): void {
  if (ready === undefined) {
    try {
      requireRoot();
      requireFile(BASELINE_OBJECT, 'make bpf');
      requireFile(ADDON_PATH, 'make native');
      requireCommand('ip', 'iproute2');
      requireCommand('setpriv', 'util-linux');
      requireCommand('mountpoint', 'util-linux');
      if (spawnSync('mountpoint', ['-q', '/sys/fs/bpf']).status !== 0) sh('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
      mkdirSync(PIN_DIR);
      ready = true;
    } catch (err) {
      ready = err as Error;
    }
  }
  if (ready !== true) throw ready;
}

/** a test that needs the machine (see preconditions) */
function rootTest(name: string, fn: () => void): void {
  test(name, () => {
    preconditions();
    fn();
  });
}

describe('native addon (root)', () => {
  after(() => {
    rmSync(PIN_DIR, { recursive: true, force: true });
    spawnSync('ip', ['netns', 'del', NETNS], { stdio: 'ignore' });
  });

  describe('objects', () => {
    rootTest('maps, programs, .rodata variables and initial value, before load', () => {
      const o = openObject(BASELINE_OBJECT);
      try {
        const maps = new Map(o.maps().map((m) => [m.name, m]));
        assert.deepEqual(maps.get('test_hash'), { name: 'test_hash', type: BPF_MAP_TYPE_HASH, keySize: 4, valueSize: 8, maxEntries: 16, flags: 0, id: 0 });
        assert.equal(maps.get('test_percpu')?.type, BPF_MAP_TYPE_PERCPU_ARRAY);
        assert.ok(maps.has('.rodata'), `maps: ${[...maps.keys()].join(', ')}`);
        assert.deepEqual(o.programs().map((p) => [p.name, p.section, p.type]), [
          ['xdp_tx', 'xdp', BPF_PROG_TYPE_XDP], ['xdp_pass', 'xdp', BPF_PROG_TYPE_XDP],
          ['xdp_setting', 'xdp', BPF_PROG_TYPE_XDP], ['tc_pass', 'tc', BPF_PROG_TYPE_SCHED_CLS],
        ]);
        assert.deepEqual(o.datasecVariables('.rodata'), [{ name: 'test_setting', offset: 0, size: 4 }]);
        assert.equal(o.mapInitialValue('.rodata').readUInt32LE(0), 7);
      } finally {
        o.close();
      }
    });

    rootTest('after load: kernel ids, fds; closed object: EBADF', () => {
      const o = loadBaseline();
      const hash = o.map('test_hash');
      assert.ok(o.maps().every((m) => m.id > 0));
      assert.equal(hash.info.id, o.maps().find((m) => m.name === 'test_hash')?.id);
      assert.equal(o.map('test_hash'), hash, 'one BpfMap per name');
      const p = o.program('xdp_tx');
      assert.equal(p.info().type, BPF_PROG_TYPE_XDP);
      assert.equal(p.info().name, 'xdp_tx');
      o.close();
      throwsErrno(() => hash.lookup(u32(0)), { code: 'EBADF', errno: 9, syscall: 'bpf_map_lookup_elem' });
      throwsErrno(() => p.testRun({ data: frame() }), { code: 'EBADF', errno: 9, syscall: 'bpf_prog_test_run_opts' });
      throwsErrno(() => o.map('test_hash'), { code: 'EBADF', errno: 9, syscall: 'bpf_map__fd' });
    });

    rootTest('setGlobals changes what xdp_setting returns (7 by default)', () => {
      const plain = loadBaseline();
      try {
        assert.equal(plain.program('xdp_setting').testRun({ data: frame() }).retval, 7);
      } finally {
        plain.close();
      }
      const set = loadBaseline((o) => o.setGlobals('.rodata', { test_setting: 3 }));
      try {
        assert.equal(set.program('xdp_setting').testRun({ data: frame() }).retval, 3);
      } finally {
        set.close();
      }
      const asBuffer = loadBaseline((o) => o.setGlobals('.rodata', { test_setting: u32(1) }));
      try {
        assert.equal(asBuffer.program('xdp_setting').testRun({ data: frame() }).retval, 1);
      } finally {
        asBuffer.close();
      }
    });

    rootTest('setGlobals refuses unknown names, wrong sizes, values that do not fit, and after load', () => {
      const o = openObject(BASELINE_OBJECT);
      try {
        const inval = { code: 'EINVAL', errno: 22, syscall: 'bpf_map__set_initial_value' };
        throwsErrno(() => o.setGlobals('.rodata', { no_such: 1 }), inval, /no variable 'no_such'; it has test_setting \(4 bytes\)/);
        throwsErrno(() => o.setGlobals('.rodata', { test_setting: Buffer.alloc(2) }), inval, /4 bytes, the value given is 2/);
        throwsErrno(() => o.setGlobals('.rodata', { test_setting: 2 ** 32 }), inval, /cannot hold/);
        throwsErrno(() => o.setGlobals('.rodata', { test_setting: 1.5 }), inval, /not a safe integer/);
        throwsErrno(() => o.setGlobals('.nodata', { x: 1 }), { code: 'ENOENT', errno: 2, syscall: 'btf__find_by_name_kind' }, /no map '.nodata'/);
        o.setGlobals('.rodata', { test_setting: -1 });
        assert.equal(o.mapInitialValue('.rodata').readUInt32LE(0), 0xffffffff);
        o.load();
        throwsErrno(() => o.setGlobals('.rodata', { test_setting: 1 }), { code: 'EBUSY', errno: 16, syscall: 'bpf_map__set_initial_value' });
      } finally {
        o.close();
      }
    });

    rootTest('setMapMaxEntries and setInnerMapMaxEntries take effect at load', () => {
      const o = loadBaseline((x) => {
        x.setMapMaxEntries('test_hash', 64);
        x.setInnerMapMaxEntries('test_outer', 8);
      });
      try {
        assert.equal(o.map('test_hash').info.maxEntries, 64);
        const outer = o.map('test_outer');
        // an array of maps takes only inner arrays of exactly the template's size
        const fits = BpfMap.create({ type: BPF_MAP_TYPE_ARRAY, name: 'xlbt_in8', keySize: 4, valueSize: 4, maxEntries: 8 });
        const other = BpfMap.create({ type: BPF_MAP_TYPE_ARRAY, name: 'xlbt_in4', keySize: 4, valueSize: 4, maxEntries: 4 });
        try {
          outer.update(u32(0), u32(fits.fd));
          assert.equal(num(outer.lookup(u32(0))), fits.info.id, 'an outer map returns the inner map id');
          throwsErrno(() => outer.update(u32(1), u32(other.fd)), { code: 'EINVAL', errno: 22, syscall: 'bpf_map_update_elem' });
        } finally {
          fits.close();
          other.close();
        }
      } finally {
        o.close();
      }
    });

    rootTest('a program the verifier rejects: the error quotes the verifier log', () => {
      requireCommand('clang-14', 'clang-14');
      const dir = mkdtempSync(join(tmpdir(), 'xlbt-'));
      try {
        const src = join(dir, 'bad.bpf.c');
        writeFileSync(src, [
          '#include <linux/bpf.h>',
          '#include <bpf/bpf_helpers.h>',
          'SEC("xdp") int xdp_bad(struct xdp_md *ctx)',
          '{',
          '  unsigned char *data = (void *)(long)ctx->data;',
          '  return data[100]; /* no bounds check */',
          '}',
          'char LICENSE[] SEC("license") = "GPL";',
        ].join('\n'));
        const objPath = join(dir, 'bad.bpf.o');
        sh('clang-14', ['-O2', '-g', '-target', 'bpf', '-I', '/usr/include/x86_64-linux-gnu', '-c', src, '-o', objPath]);
        const o = openObject(objPath);
        try {
          throwsErrno(() => o.load(), { code: 'EACCES', errno: 13, syscall: 'bpf_object__load' }, /BEGIN PROG LOAD LOG[\s\S]*invalid access to packet[\s\S]*END PROG LOAD LOG/);
          // a failed load is final: libbpf cannot be retried on the same object
          throwsErrno(() => o.load(), { code: 'EINVAL', errno: 22, syscall: 'bpf_object__load' }, /can be attempted once; close it and open the file again/);
        } finally {
          o.close();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('test runs', () => {
    rootTest('xdp_tx: XDP_TX and the same bytes; the xdp_md context in and out', () => {
      const o = loadBaseline();
      try {
        const f = frame();
        const r = o.program('xdp_tx').testRun({ data: f });
        assert.equal(r.retval, XDP_TX);
        assert.deepEqual(r.data, f);
        assert.equal(r.ctx, null);
        assert.ok(r.duration >= 0);

        const ctx = Buffer.alloc(24);
        ctx.writeUInt32LE(f.length, 4); // data_end
        ctx.writeUInt32LE(1, 12);       // ingress_ifindex: lo
        const rc = o.program('xdp_tx').testRun({ data: f, ctx, repeat: 100 });
        assert.equal(rc.retval, XDP_TX);
        assert.equal(rc.ctx?.length, 24);
        assert.equal(rc.ctx?.readUInt32LE(12), 1);
      } finally {
        o.close();
      }
    });

    rootTest('test-run argument errors: EINVAL', () => {
      const o = loadBaseline();
      try {
        const p = o.program('xdp_tx');
        // from the wrapper
        throwsErrno(() => p.testRun({ data: frame(), batchSize: 8 }), { code: 'EINVAL', errno: 22, syscall: 'bpf_prog_test_run_opts' }, /live frames/);
        throwsErrno(() => p.testRun({ data: frame(), repeat: 0 }), { code: 'EINVAL', errno: 22, syscall: 'bpf_prog_test_run_opts' });
        // from the kernel: XDP needs at least an Ethernet header
        throwsErrno(() => p.testRun({ data: Buffer.alloc(4) }), { code: 'EINVAL', errno: 22, syscall: 'bpf_prog_test_run_opts' });
      } finally {
        o.close();
      }
    });
  });

  describe('maps', () => {
    rootTest('hash: update, lookup, flags, delete, keys, full map', () => {
      const o = loadBaseline();
      try {
        const m = o.map('test_hash');
        assert.equal(m.lookup(u32(1)), null);
        m.update(u32(1), u64(11));
        assert.equal(num(m.lookup(u32(1))), 11);
        throwsErrno(() => m.update(u32(1), u64(12), BPF_NOEXIST), { code: 'EEXIST', errno: 17, syscall: 'bpf_map_update_elem' });
        throwsErrno(() => m.update(u32(2), u64(12), BPF_EXIST), { code: 'ENOENT', errno: 2, syscall: 'bpf_map_update_elem' });
        for (let k = 2; k <= 16; k++) m.update(u32(k), u64(k * 11), BPF_NOEXIST);
        throwsErrno(() => m.update(u32(17), u64(0)), { code: 'E2BIG', errno: 7, syscall: 'bpf_map_update_elem' });
        assert.deepEqual([...m.keys()].map(num).sort((a, b) => a! - b!), Array.from({ length: 16 }, (_, i) => i + 1));
        assert.equal([...m.entries()].every(([k, v]) => num(v) === num(k)! * 11), true);
        assert.equal(m.delete(u32(16)), true);
        assert.equal(m.delete(u32(16)), false);
        assert.equal(m.lookup(u32(16)), null);
      } finally {
        o.close();
      }
    });

    rootTest('batch: updateBatch, a walk with lookupBatch, deleteBatch', () => {
      const o = loadBaseline();
      try {
        const m = o.map('test_hash');
        const keys = Array.from({ length: 10 }, (_, i) => u32(100 + i));
        assert.equal(m.updateBatch(keys, keys.map((k) => u64(num(k)! * 2))), 10);
        const seen = new Map<number, number>();
        let inBatch: Buffer | null = null;
        let calls = 0;
        do {
          const r = m.lookupBatch({ inBatch, count: 5 });
          r.keys.forEach((k, i) => seen.set(num(k)!, num(r.values[i])!));
          inBatch = r.outBatch;
          assert.ok(++calls < 20, 'the walk ends');
        } while (inBatch);
        assert.deepEqual([...seen].sort((a, b) => a[0] - b[0]), keys.map((k) => [num(k), num(k)! * 2]));
        assert.equal(m.deleteBatch(keys.slice(0, 4)), 4);
        assert.equal([...m.keys()].length, 6);
        assert.throws(() => m.deleteBatch([u32(104), u32(999)]), (err: ErrnoShape & { count?: number }) => {
          assert.deepEqual([err.code, err.errno, err.syscall], ['ENOENT', 2, 'bpf_map_delete_batch']);
          assert.equal(err.count, 1);
          return true;
        });
      } finally {
        o.close();
      }
    });

    rootTest('per-CPU: one value per possible CPU, written and read back', () => {
      const cpus = numPossibleCpus();
      const possible = readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim();
      const expected = possible.split(',').reduce((n, r) => {
        const [a, b] = r.split('-').map(Number);
        return n + (b === undefined ? 1 : b - a! + 1);
      }, 0);
      assert.equal(cpus, expected, `possible CPUs ${possible}`);
      const o = loadBaseline();
      try {
        const m = o.map('test_percpu');
        assert.equal(m.perCpu, true);
        assert.equal(m.valuesPerKey(), cpus);
        assert.equal(m.valueBytes, 8 * cpus);
        const values = Array.from({ length: cpus }, (_, i) => u64(1000 + i));
        m.updatePerCpu(u32(2), values);
        assert.deepEqual(m.lookupPerCpu(u32(2)), values);
        assert.equal(m.lookup(u32(2))?.length, 8 * cpus);
        assert.deepEqual(m.lookupPerCpu(u32(0)), values.map(() => u64(0)));
        const all = m.lookupBatch({ count: 4 });
        assert.equal(all.count, 4);
        assert.deepEqual(all.values[2], Buffer.concat(values));
        throwsErrno(() => m.update(u32(0), u64(1)), { code: 'EINVAL', errno: 22, syscall: 'bpf_map_update_elem' },
          new RegExp(`value is 8 bytes, the map's value size is ${8 * cpus}`));
      } finally {
        o.close();
      }
    });

    rootTest('writeAll: an mmapable ARRAY through mmap (values 8 bytes apart in the kernel), others by batch, non-arrays refused', () => {
      const maps: BpfMap[] = [];
      try {
        for (const [flags, valueSize] of [[BPF_F_MMAPABLE, 4], [BPF_F_MMAPABLE, 8], [BPF_F_MMAPABLE, 12], [0, 4]] as const) {
          // 1031 values of 4 bytes: two pages and a bit in the kernel's 8-byte layout
          const m = BpfMap.create({ type: BPF_MAP_TYPE_ARRAY, name: 'xlbt_all', keySize: 4, valueSize, maxEntries: 1031, flags });
          maps.push(m);
          const values = Buffer.alloc(1031 * valueSize);
          for (let i = 0; i < values.length; i += 4) values.writeUInt32LE((i * 2654435761) >>> 0, i);
          m.writeAll(values);
          for (const i of [0, 1, 2, 511, 512, 1029, 1030]) {
            assert.deepEqual(m.lookup(u32(i)), values.subarray(i * valueSize, (i + 1) * valueSize), `flags ${flags}, value size ${valueSize}, index ${i}`);
          }
          throwsErrno(() => m.writeAll(values.subarray(4)), { code: 'EINVAL', errno: 22, syscall: 'bpf_map_update_batch' }, /bytes of values, the map holds 1031/);
        }
        throwsErrno(() => native().mapWriteAll(maps[3]!.fd, Buffer.alloc(1031 * 4)), { code: 'EINVAL', errno: 22, syscall: 'mmap' }, /BPF_F_MMAPABLE/);
        const h = BpfMap.create({ type: BPF_MAP_TYPE_HASH, name: 'xlbt_h', keySize: 4, valueSize: 4, maxEntries: 2 });
        maps.push(h);
        throwsErrno(() => h.writeAll(Buffer.alloc(8)), { code: 'EINVAL', errno: 22, syscall: 'bpf_map_update_batch' }, /for ARRAY maps/);
      } finally {
        for (const m of maps) m.close();
      }
    });

    rootTest('create: info as asked, fd closed by close()', () => {
      const m = BpfMap.create({
        type: BPF_MAP_TYPE_LRU_HASH, name: 'xlbt_create', keySize: 12, valueSize: 20, maxEntries: 128, flags: BPF_F_NO_COMMON_LRU,
      });
      const id = m.info.id;
      assert.deepEqual({ ...m.info, id: 0 }, {
        name: 'xlbt_create', type: BPF_MAP_TYPE_LRU_HASH, keySize: 12, valueSize: 20, maxEntries: 128, flags: BPF_F_NO_COMMON_LRU, id: 0,
      });
      assert.ok(id > 0);
      m.update(Buffer.alloc(12, 1), Buffer.alloc(20, 2));
      assert.deepEqual(m.lookup(Buffer.alloc(12, 1)), Buffer.alloc(20, 2));
      const fd = m.fd;
      m.close();
      throwsErrno(() => native().mapInfo(fd), { code: 'EBADFD', errno: 77, syscall: 'bpf_obj_get_info_by_fd' });
      throwsErrno(() => BpfMap.create({ type: BPF_MAP_TYPE_HASH, name: 'bad name!', keySize: 4, valueSize: 4, maxEntries: 1 }),
        { code: 'EINVAL', errno: 22, syscall: 'bpf_map_create' });
    });

    for (const spec of [
      { type: BPF_MAP_TYPE_HASH, keySize: 4, valueSize: 8, maxEntries: 3 },
      { type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: 8, maxEntries: 3 },
      { type: BPF_MAP_TYPE_PERCPU_ARRAY, keySize: 4, valueSize: 4, maxEntries: 3 },
      // LRU: large enough that the kernel's approximate LRU evicts nothing in this sequence
      { type: BPF_MAP_TYPE_LRU_HASH, keySize: 4, valueSize: 8, maxEntries: 1024 },
    ]) {
      rootTest(`FakeMap behaves like the kernel: map type ${spec.type}`, () => {
        const real = BpfMap.create({ ...spec, name: 'xlbt_parity' });
        const fake = new FakeMap({ ...spec, cpus: numPossibleCpus() });
        try {
          const value = (n: number) => Buffer.alloc(real.valueBytes, n);
          const ops: [string, (m: MapLike) => unknown][] = [
            ['lookup 1', (m) => m.lookup(u32(1))],
            ['update 1 NOEXIST', (m) => m.update(u32(1), value(1), BPF_NOEXIST)],
            ['update 1 NOEXIST again', (m) => m.update(u32(1), value(2), BPF_NOEXIST)],
            ['update 2 EXIST', (m) => m.update(u32(2), value(2), BPF_EXIST)],
            ['update 0 ANY', (m) => m.update(u32(0), value(3), BPF_ANY)],
            ['update 2 ANY', (m) => m.update(u32(2), value(4), BPF_ANY)],
            ['update 7 ANY', (m) => m.update(u32(7), value(5), BPF_ANY)],
            ['update 1 flags 3', (m) => m.update(u32(1), value(5), 3)],
            ['lookup 1', (m) => m.lookup(u32(1))],
            ['lookup 7', (m) => m.lookup(u32(7))],
            ['keys', (m) => [...m.keys()].map(num).sort()],
            ['entries', (m) => [...m.entries()].map(([k, v]) => [num(k), v.toString('hex')]).sort()],
            ['nextKey of the last', (m) => m.nextKey([...m.keys()].at(-1)!)],
            ['delete 1', (m) => m.delete(u32(1))],
            ['delete 1 again', (m) => m.delete(u32(1))],
            ['deleteBatch 0, 9', (m) => m.deleteBatch([u32(0), u32(9)])],
            ['updateBatch 5, 6', (m) => m.updateBatch([u32(5), u32(6)], [value(6), value(7)])],
            ['keys at the end', (m) => [...m.keys()].map(num).sort()],
          ];
          const outcome = (m: MapLike, fn: (m: MapLike) => unknown) => {
            try {
              return { ok: fn(m) ?? null };
            } catch (err) {
              if (!isBpfError(err)) throw err;
              return { error: [err.code, err.errno, err.syscall], count: (err as { count?: number }).count };
            }
          };
          for (const [what, fn] of ops) assert.deepEqual(outcome(fake, fn), outcome(real, fn), what);
        } finally {
          real.close();
        }
      });
    }
  });

  describe('pinning', () => {
    rootTest('pin a map and a program, open them again from bpffs, unpin', () => {
      const o = loadBaseline();
      const mapPin = `${PIN_DIR}/test_hash`;
      const progPin = `${PIN_DIR}/xdp_tx`;
      try {
        const m = o.map('test_hash');
        m.update(u32(5), u64(55));
        m.pin(mapPin);
        o.program('xdp_tx').pin(progPin);
        throwsErrno(() => m.pin(mapPin), { code: 'EEXIST', errno: 17, syscall: 'bpf_obj_pin' });
      } finally {
        o.close();
      }
      // the object is closed: the pins keep the map and the program alive
      const again = BpfMap.fromPin(mapPin);
      const prog = BpfProgram.fromPin(progPin);
      try {
        assert.equal(again.info.name, 'test_hash');
        assert.equal(num(again.lookup(u32(5))), 55);
        assert.equal(prog.testRun({ data: frame() }).retval, XDP_TX);
      } finally {
        again.close();
        prog.close();
      }
      unpin(mapPin);
      unpin(progPin);
      throwsErrno(() => BpfMap.fromPin(mapPin), { code: 'ENOENT', errno: 2, syscall: 'bpf_obj_get' });
      throwsErrno(() => unpin(mapPin), { code: 'ENOENT', errno: 2, syscall: 'unlink' });
      throwsErrno(() => unpin(PIN_DIR), { code: 'EISDIR', errno: 21, syscall: 'unlink' });
    });

    rootTest('reuseMapFd: a new object shares a pinned map', () => {
      const pin = `${PIN_DIR}/shared_hash`;
      const first = loadBaseline();
      try {
        first.map('test_hash').update(u32(9), u64(99));
        first.map('test_hash').pin(pin);
      } finally {
        first.close();
      }
      const shared = BpfMap.fromPin(pin);
      try {
        const second = loadBaseline((o) => o.reuseMapFd('test_hash', shared));
        try {
          assert.equal(second.map('test_hash').info.id, shared.info.id);
          assert.equal(num(second.map('test_hash').lookup(u32(9))), 99);
        } finally {
          second.close();
        }
      } finally {
        shared.close();
        unpin(pin);
      }
    });
  });

  describe('attach (in network namespace of our own)', () => {
    rootTest('XDP generic mode and TC on a veth: attach, query, detach', () => {
      sh('ip', ['netns', 'add', NETNS]);
      sh('ip', ['-n', NETNS, 'link', 'add', 'xa0', 'type', 'veth', 'peer', 'name', 'xb0']);
      sh('ip', ['-n', NETNS, 'link', 'set', 'xa0', 'up']);
      sh('ip', ['-n', NETNS, 'link', 'set', 'xb0', 'up']);
      const child = spawnSync('ip', ['netns', 'exec', NETNS, process.execPath, '--import', 'tsx',
        resolve(REPO, 'test/bpf/addon-attach.child.ts'), 'xa0', BASELINE_OBJECT], { cwd: REPO, encoding: 'utf8' });
      assert.equal(child.status, 0, `child failed:\n${child.stderr}`);
      const r = JSON.parse(child.stdout) as {
        ids: { xdpPass: number; xdpTx: number; tcPass: number };
        xdpBefore: unknown; xdpAttached: unknown; xdpBusy: ErrnoShape | null; xdpReplaced: unknown; xdpDetached: unknown;
        tcBefore: number; tcIngress: number; tcEgress: number; tcOtherPriority: number; tcTaken: ErrnoShape | null;
        tcDetached: number[]; tcDetachAgain: ErrnoShape | null;
      };
      const none = { mode: XDP_ATTACHED_NONE, progId: 0, skbProgId: 0, drvProgId: 0, hwProgId: 0 };
      const skb = (id: number) => ({ mode: XDP_ATTACHED_SKB, progId: id, skbProgId: id, drvProgId: 0, hwProgId: 0 });
      assert.deepEqual(r.xdpBefore, none);
      assert.deepEqual(r.xdpAttached, skb(r.ids.xdpPass));
      assert.deepEqual(pick(r.xdpBusy), { code: 'EBUSY', errno: 16, syscall: 'bpf_xdp_attach' });
      assert.deepEqual(r.xdpReplaced, skb(r.ids.xdpTx));
      assert.deepEqual(r.xdpDetached, none);
      assert.equal(r.tcBefore, 0);
      assert.equal(r.tcIngress, r.ids.tcPass);
      assert.equal(r.tcEgress, r.ids.tcPass);
      assert.equal(r.tcOtherPriority, 0);
      assert.deepEqual(pick(r.tcTaken), { code: 'EEXIST', errno: 17, syscall: 'bpf_tc_attach' });
      assert.deepEqual(r.tcDetached, [0, 0]);
      assert.deepEqual(pick(r.tcDetachAgain), { code: 'ENOENT', errno: 2, syscall: 'bpf_tc_detach' });
    });
  });

  describe('error paths', () => {
    rootTest('a bad fd: EBADF from the operation', () => {
      throwsErrno(() => native().mapLookup(99999, u32(0), 8), { code: 'EBADF', errno: 9, syscall: 'bpf_map_lookup_elem' });
      throwsErrno(() => native().mapUpdate(99999, u32(0), u64(0), 0), { code: 'EBADF', errno: 9, syscall: 'bpf_map_update_elem' });
      throwsErrno(() => native().progTestRun(99999, { data: frame() }), { code: 'EBADF', errno: 9, syscall: 'bpf_prog_test_run_opts' });
      throwsErrno(() => native().closeFd(99999), { code: 'EBADF', errno: 9, syscall: 'close' });
    });

    rootTest('a bad path: ENOENT from bpf_object__open_file', () => {
      throwsErrno(() => openObject('/nonexistent.o'), { code: 'ENOENT', errno: 2, syscall: 'bpf_object__open_file' }, /'\/nonexistent.o'/);
    });

    rootTest('no permission: EPERM from bpf_map_create, as an unprivileged user', () => {
      const child = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all',
        process.execPath, '--import', 'tsx', resolve(REPO, 'test/bpf/addon-unpriv.child.ts')], { cwd: REPO, encoding: 'utf8' });
      assert.equal(child.status, 0, `child failed:\n${child.stderr}`);
      const r = JSON.parse(child.stdout) as ErrnoShape & { uid: number };
      assert.equal(r.uid, 65534);
      assert.deepEqual(pick(r), { code: 'EPERM', errno: 1, syscall: 'bpf_map_create' });
    });

    rootTest('a key of the wrong size: EINVAL from the wrapper, before the kernel', () => {
      const o = loadBaseline();
      try {
        throwsErrno(() => o.map('test_hash').lookup(Buffer.alloc(8)), { code: 'EINVAL', errno: 22, syscall: 'bpf_map_lookup_elem' },
          /map 'test_hash' \(fd \d+\): key is 8 bytes, the map's key size is 4/);
        // and the addon's own guard, for callers of the raw interface
        throwsErrno(() => native().mapLookup(o.map('test_hash').fd, Buffer.alloc(8), 8), { code: 'EINVAL', errno: 22, syscall: 'bpf_map_lookup_elem' });
        throwsErrno(() => native().mapLookup(o.map('test_hash').fd, u32(0), 4), { code: 'EINVAL', errno: 22, syscall: 'bpf_map_lookup_elem' });
      } finally {
        o.close();
      }
    });

    rootTest('unknown map or program names: ENOENT naming what there is', () => {
      const o = loadBaseline();
      try {
        throwsErrno(() => o.map('nope'), { code: 'ENOENT', errno: 2, syscall: 'bpf_map__fd' }, /its maps are test_hash, test_percpu/);
        throwsErrno(() => o.program('nope'), { code: 'ENOENT', errno: 2, syscall: 'bpf_program__fd' }, /its programs are xdp_tx, xdp_pass/);
      } finally {
        o.close();
      }
    });
  });
});

function pick(e: ErrnoShape | null): ErrnoShape | null {
  return e && { code: e.code, errno: e.errno, syscall: e.syscall };
}
