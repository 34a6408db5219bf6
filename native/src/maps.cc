// Map operations by fd: info, create, lookup/update/delete/next key, the batch calls, and the
// whole-array write of an mmapable ARRAY map.
//
// Buffers are raw bytes. Per-CPU maps (PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH,
// PERCPU_CGROUP_STORAGE) take and give one value slot per possible CPU, each slot the value size
// rounded up to 8: that total is the "value size" every call below speaks of.
//
// Memory safety, not policy: before each operation the map's key and value sizes are read from
// the kernel (bpf_obj_get_info_by_fd) and the caller's buffers and sizes must match them
// exactly, so the kernel can never read or write past a buffer. A mismatch is EINVAL. A failure
// of that query is reported as the operation's (a bad fd gives EBADF from 'bpf_map_lookup_elem').
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "addon.h"
#include "errors.h"

namespace xlb {

namespace {

struct MapShape {
  uint32_t type;
  uint32_t keySize;
  uint32_t valueSize;  // total bytes of one lookup: per-CPU maps hold one slot per possible CPU
};

bool IsPerCpu(uint32_t type) {
  switch (type) {
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
      return true;
    default:
      return false;
  }
}

std::string FdDetail(int fd) { return "fd " + std::to_string(fd); }

bpf_map_info QueryInfo(Napi::Env env, int fd, const char* syscall) {
  bpf_map_info mi;
  int ret = InfoByFd(fd, &mi);
  if (ret) ThrowErrno(env, ErrOf(ret), syscall, FdDetail(fd));
  return mi;
}

// The map's shape, read before an operation; its failure is reported as the operation's.
MapShape Shape(Napi::Env env, int fd, const char* syscall) {
  bpf_map_info mi;
  int ret = InfoByFd(fd, &mi);
  if (ret) {
    int err = ErrOf(ret);
    // The info query says EBADFD for a bad fd where every map operation says EBADF (kernel 6.18).
    if (err == EBADFD) err = EBADF;
    ThrowErrno(env, err, syscall, FdDetail(fd));
  }
  MapShape s{mi.type, mi.key_size, mi.value_size};
  if (IsPerCpu(mi.type)) {
    int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) ThrowErrno(env, ErrOf(cpus), "libbpf_num_possible_cpus");
    s.valueSize = ((mi.value_size + 7) & ~7u) * static_cast<uint32_t>(cpus);
  }
  return s;
}

void CheckLen(Napi::Env env, const char* syscall, int fd, const char* what, size_t have, size_t want) {
  if (have != want) {
    ThrowInvalid(env, syscall, FdDetail(fd) + ": " + what + " is " + std::to_string(have) +
                                   " bytes, the map needs " + std::to_string(want));
  }
}

// The key pointer for the kernel: maps without keys (queue, stack) take NULL.
const void* KeyPtr(const Napi::Buffer<uint8_t>& key) { return key.Length() ? key.Data() : nullptr; }

Napi::Object InfoObject(Napi::Env env, const bpf_map_info& mi) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", std::string(mi.name, strnlen(mi.name, sizeof(mi.name))));
  o.Set("type", static_cast<double>(mi.type));
  o.Set("keySize", static_cast<double>(mi.key_size));
  o.Set("valueSize", static_cast<double>(mi.value_size));
  o.Set("maxEntries", static_cast<double>(mi.max_entries));
  o.Set("flags", static_cast<double>(mi.map_flags));
  o.Set("id", static_cast<double>(mi.id));
  return o;
}

// mapInfo(fd)
Napi::Value MapInfo(const Napi::CallbackInfo& info) {
  const char* sc = "bpf_obj_get_info_by_fd";
  int fd = ArgFd(info, 0, sc);
  return InfoObject(info.Env(), QueryInfo(info.Env(), fd, sc));
}

// mapCreate(type, name, keySize, valueSize, maxEntries, flags, innerMapFd?)
Napi::Value MapCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "bpf_map_create";
  uint32_t type = ArgU32(info, 0, sc, "type");
  std::string name = ArgString(info, 1, sc, "name");
  uint32_t keySize = ArgU32(info, 2, sc, "keySize");
  uint32_t valueSize = ArgU32(info, 3, sc, "valueSize");
  uint32_t maxEntries = ArgU32(info, 4, sc, "maxEntries");
  uint32_t flags = ArgU32(info, 5, sc, "flags");
  auto opts = Opts<bpf_map_create_opts>();
  opts.map_flags = flags;
  if (!info[6].IsUndefined() && !info[6].IsNull()) {
    int inner = ArgFd(info, 6, sc);
    opts.inner_map_fd = static_cast<uint32_t>(inner);
  }
  int fd = bpf_map_create(static_cast<bpf_map_type>(type), name.empty() ? nullptr : name.c_str(), keySize,
                          valueSize, maxEntries, &opts);
  if (fd < 0) ThrowErrno(env, ErrOf(fd), sc, "'" + name + "', type " + std::to_string(type));
  return Napi::Number::New(env, fd);
}

// mapLookup(fd, key, valueSize): Buffer | null (ENOENT)
Napi::Value MapLookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "bpf_map_lookup_elem";
  int fd = ArgFd(info, 0, sc);
  Napi::Buffer<uint8_t> key = ArgBuffer(info, 1, sc, "key");
  uint32_t valueSize = ArgU32(info, 2, sc, "valueSize");
  MapShape s = Shape(env, fd, sc);
  CheckLen(env, sc, fd, "key", key.Length(), s.keySize);
  CheckLen(env, sc, fd, "valueSize", valueSize, s.valueSize);
  Napi::Buffer<uint8_t> value = Napi::Buffer<uint8_t>::New(env, valueSize);
  int ret = bpf_map_lookup_elem(fd, KeyPtr(key), value.Data());
  if (ret) {
    int err = ErrOf(ret);
    if (err == ENOENT) return env.Null();
    ThrowErrno(env, err, sc, FdDetail(fd));
  }
  return value;
}

// mapUpdate(fd, key, value, flags)
Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "bpf_map_update_elem";
  int fd = ArgFd(info, 0, sc);
  Napi::Buffer<uint8_t> key = ArgBuffer(info, 1, sc, "key");
  Napi::Buffer<uint8_t> value = ArgBuffer(info, 2, sc, "value");
  uint64_t flags = ArgU64(info, 3, sc, "flags");
  MapShape s = Shape(env, fd, sc);
  CheckLen(env, sc, fd, "key", key.Length(), s.keySize);
  CheckLen(env, sc, fd, "value", value.Length(), s.valueSize);
  int ret = bpf_map_update_elem(fd, KeyPtr(key), value.Data(), flags);
  if (ret) ThrowErrno(env, ErrOf(ret), sc, FdDetail(fd));
  return env.Undefined();
}

// mapDelete(fd, key): false on ENOENT
Napi::Value MapDelete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "bpf_map_delete_elem";
  int fd = ArgFd(info, 0, sc);
  Napi::Buffer<uint8_t> key = ArgBuffer(info, 1, sc, "key");
  MapShape s = Shape(env, fd, sc);
  CheckLen(env, sc, fd, "key", key.Length(), s.keySize);
  int ret = bpf_map_delete_elem(fd, KeyPtr(key));
  if (ret) {
    int err = ErrOf(ret);
    if (err == ENOENT) return Napi::Boolean::New(env, false);
    ThrowErrno(env, err, sc, FdDetail(fd));
  }
  return Napi::Boolean::New(env, true);
}

// mapNextKey(fd, key | null, keySize): Buffer | null at the end
Napi::Value MapNextKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "bpf_map_get_next_key";
  int fd = ArgFd(info, 0, sc);
  Napi::Buffer<uint8_t> key;
  bool hasKey = ArgOptBuffer(info, 1, sc, "key", &key);
  uint32_t keySize = ArgU32(info, 2, sc, "keySize");
  MapShape s = Shape(env, fd, sc);
  CheckLen(env, sc, fd, "keySize", keySize, s.keySize);
  if (hasKey) CheckLen(env, sc, fd, "key", key.Length(), s.keySize);
  Napi::Buffer<uint8_t> next = Napi::Buffer<uint8_t>::New(env, keySize);
  int ret = bpf_map_get_next_key(fd, hasKey ? key.Data() : nullptr, next.Data());
  if (ret) {
    int err = ErrOf(ret);
    if (err == ENOENT) return env.Null();
    ThrowErrno(env, err, sc, FdDetail(fd));
  }
  return next;
}

// The batch position token: a bucket number (u32) for hash maps, a key for the generic walk.
size_t TokenSize(const MapShape& s) { return std::max<size_t>(s.keySize, 8); }

// mapLookupBatch(fd, inBatch | null, keySize, valueSize, count)
//   -> { keys, values, count, outBatch }   outBatch null: the walk is complete
Napi::Value MapLookupBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "bpf_map_lookup_batch";
  int fd = ArgFd(info, 0, sc);
  Napi::Buffer<uint8_t> inBatch;
  bool hasIn = ArgOptBuffer(info, 1, sc, "inBatch", &inBatch);
  uint32_t keySize = ArgU32(info, 2, sc, "keySize");
  uint32_t valueSize = ArgU32(info, 3, sc, "valueSize");
  uint32_t count = ArgU32(info, 4, sc, "count");
  MapShape s = Shape(env, fd, sc);
  CheckLen(env, sc, fd, "keySize", keySize, s.keySize);
  CheckLen(env, sc, fd, "valueSize", valueSize, s.valueSize);
  size_t tokenSize = TokenSize(s);
  std::vector<uint8_t> in(tokenSize, 0), out(tokenSize, 0);
  if (hasIn) {
    CheckLen(env, sc, fd, "inBatch", inBatch.Length(), tokenSize);
    std::memcpy(in.data(), inBatch.Data(), tokenSize);
  }
  std::vector<uint8_t> keys(static_cast<size_t>(count) * keySize);
  std::vector<uint8_t> values(static_cast<size_t>(count) * valueSize);
  uint32_t n = count;
  auto opts = Opts<bpf_map_batch_opts>();
  int ret = bpf_map_lookup_batch(fd, hasIn ? in.data() : nullptr, out.data(), keys.data(), values.data(), &n, &opts);
  bool done = false;
  if (ret) {
    int err = ErrOf(ret);
    if (err != ENOENT) ThrowErrno(env, err, sc, FdDetail(fd));
    done = true;  // ENOENT: no more elements; n says how many came with this call
  }
  n = std::min(n, count);
  Napi::Object o = Napi::Object::New(env);
  o.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), static_cast<size_t>(n) * keySize));
  o.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(), static_cast<size_t>(n) * valueSize));
  o.Set("count", Napi::Number::New(env, n));
  o.Set("outBatch", done ? env.Null() : Napi::Value(Napi::Buffer<uint8_t>::Copy(env, out.data(), out.size())));
  return o;
}

// A failed batch update/delete: the error also carries `count`, how many were processed as the
// kernel reports it. ENOTSUPP (the map type has no such batch operation) processed none; the
// kernel leaves the count as it was given then.
[[noreturn]] void ThrowBatch(Napi::Env env, int err, const char* sc, int fd, uint32_t done) {
  if (err == 524) done = 0;
  Napi::Error e = MakeErrno(env, err, sc, FdDetail(fd) + ", " + std::to_string(done) + " processed");
  e.Set("count", Napi::Number::New(env, done));
  throw e;
}

// mapUpdateBatch(fd, keys, values, count, flags): number processed
Napi::Value MapUpdateBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "bpf_map_update_batch";
  int fd = ArgFd(info, 0, sc);
  Napi::Buffer<uint8_t> keys = ArgBuffer(info, 1, sc, "keys");
  Napi::Buffer<uint8_t> values = ArgBuffer(info, 2, sc, "values");
  uint32_t count = ArgU32(info, 3, sc, "count");
  uint64_t flags = ArgU64(info, 4, sc, "flags");
  MapShape s = Shape(env, fd, sc);
  CheckLen(env, sc, fd, "keys", keys.Length(), static_cast<size_t>(count) * s.keySize);
  CheckLen(env, sc, fd, "values", values.Length(), static_cast<size_t>(count) * s.valueSize);
  uint32_t n = count;
  auto opts = Opts<bpf_map_batch_opts>();
  opts.elem_flags = flags;
  int ret = bpf_map_update_batch(fd, keys.Data(), values.Data(), &n, &opts);
  if (ret) ThrowBatch(env, ErrOf(ret), sc, fd, std::min(n, count));
  return Napi::Number::New(env, n);
}

// mapDeleteBatch(fd, keys, count): number processed
Napi::Value MapDeleteBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "bpf_map_delete_batch";
  int fd = ArgFd(info, 0, sc);
  Napi::Buffer<uint8_t> keys = ArgBuffer(info, 1, sc, "keys");
  uint32_t count = ArgU32(info, 2, sc, "count");
  MapShape s = Shape(env, fd, sc);
  CheckLen(env, sc, fd, "keys", keys.Length(), static_cast<size_t>(count) * s.keySize);
  uint32_t n = count;
  auto opts = Opts<bpf_map_batch_opts>();
  int ret = bpf_map_delete_batch(fd, keys.Data(), &n, &opts);
  if (ret) ThrowBatch(env, ErrOf(ret), sc, fd, std::min(n, count));
  return Napi::Number::New(env, n);
}

// mapWriteAll(fd, values): every value of an ARRAY map created with BPF_F_MMAPABLE, in index
// order (max_entries x value_size bytes, packed), copied into the map's memory through a shared
// mapping (mmap, copy, munmap): one memory copy instead of a syscall per element. The kernel lays
// elements out value_size rounded up to 8 apart. Not atomic: a reader may see some values new and
// some old, so write only a map no program reads yet (or any more).
Napi::Value MapWriteAll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "mmap";
  int fd = ArgFd(info, 0, sc);
  Napi::Buffer<uint8_t> values = ArgBuffer(info, 1, sc, "values");
  bpf_map_info mi = QueryInfo(env, fd, sc);
  if (mi.type != BPF_MAP_TYPE_ARRAY || !(mi.map_flags & BPF_F_MMAPABLE)) {
    ThrowInvalid(env, sc, FdDetail(fd) + ": not an ARRAY map created with BPF_F_MMAPABLE");
  }
  size_t count = mi.max_entries;
  size_t size = mi.value_size;
  size_t stride = (size + 7) & ~static_cast<size_t>(7);
  CheckLen(env, sc, fd, "values", values.Length(), count * size);
  long page = sysconf(_SC_PAGESIZE);
  size_t len = (count * stride + page - 1) / page * page;
  void* mem = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (mem == MAP_FAILED) ThrowErrno(env, errno, sc, FdDetail(fd));
  uint8_t* dst = static_cast<uint8_t*>(mem);
  const uint8_t* src = values.Data();
  if (stride == size) {
    memcpy(dst, src, count * size);
  } else {
    for (size_t i = 0; i < count; i++) memcpy(dst + i * stride, src + i * size, size);
  }
  munmap(mem, len);
  return env.Undefined();
}

}  // namespace

void InitMaps(Napi::Env env, Napi::Object exports) {
  exports.Set("mapInfo", Napi::Function::New<MapInfo>(env, "mapInfo"));
  exports.Set("mapCreate", Napi::Function::New<MapCreate>(env, "mapCreate"));
  exports.Set("mapLookup", Napi::Function::New<MapLookup>(env, "mapLookup"));
  exports.Set("mapUpdate", Napi::Function::New<MapUpdate>(env, "mapUpdate"));
  exports.Set("mapDelete", Napi::Function::New<MapDelete>(env, "mapDelete"));
  exports.Set("mapNextKey", Napi::Function::New<MapNextKey>(env, "mapNextKey"));
  exports.Set("mapLookupBatch", Napi::Function::New<MapLookupBatch>(env, "mapLookupBatch"));
  exports.Set("mapUpdateBatch", Napi::Function::New<MapUpdateBatch>(env, "mapUpdateBatch"));
  exports.Set("mapDeleteBatch", Napi::Function::New<MapDeleteBatch>(env, "mapDeleteBatch"));
  exports.Set("mapWriteAll", Napi::Function::New<MapWriteAll>(env, "mapWriteAll"));
}

}  // namespace xlb
