// NativeObject: a libbpf bpf_object (open, adjust maps and '.rodata', load, fds, close).
//
// The object owns its program and map fds: close() (or the finalizer, when the JS object is
// collected without close()) calls bpf_object__close, which closes them all. Calls after close()
// fail with EBADF. load() can be attempted once; after a failed load, open the file again.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "addon.h"
#include "errors.h"

namespace xlb {

namespace {

// Lines of the libbpf log (verifier log included) quoted in a failed open or load.
constexpr size_t kLogTail = 40;

struct ObjectData {
  Napi::FunctionReference ctor;
};

// The name user code knows a map by: its own name, or for libbpf's internal maps ('.rodata',
// '.data', '.bss', '.rodata.foo') the section name, which is also the name of its BTF DATASEC:
// libbpf gives an internal map its DATASEC as value type when it opens the object.
std::string MapName(const bpf_object* obj, const bpf_map* map) {
  const char* own = bpf_map__name(map);
  std::string name = own ? own : "";
  if (!bpf_map__is_internal(map)) return name;
  const btf* b = bpf_object__btf(obj);
  const btf_type* t = b ? btf__type_by_id(b, bpf_map__btf_value_type_id(map)) : nullptr;
  return t && btf_is_datasec(t) ? btf__name_by_offset(b, t->name_off) : name;
}

class NativeObject : public Napi::ObjectWrap<NativeObject> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "NativeObject", {
      InstanceMethod<&NativeObject::Maps>("maps"),
      InstanceMethod<&NativeObject::Programs>("programs"),
      InstanceMethod<&NativeObject::SetMapMaxEntries>("setMapMaxEntries"),
      InstanceMethod<&NativeObject::SetInnerMapMaxEntries>("setInnerMapMaxEntries"),
      InstanceMethod<&NativeObject::DatasecVariables>("datasecVariables"),
      InstanceMethod<&NativeObject::MapInitialValue>("mapInitialValue"),
      InstanceMethod<&NativeObject::SetMapInitialValue>("setMapInitialValue"),
      InstanceMethod<&NativeObject::ReuseMapFd>("reuseMapFd"),
      InstanceMethod<&NativeObject::Load>("load"),
      InstanceMethod<&NativeObject::ProgramFd>("programFd"),
      InstanceMethod<&NativeObject::MapFd>("mapFd"),
      InstanceMethod<&NativeObject::Close>("close"),
    });
    auto* data = new ObjectData();
    data->ctor = Napi::Persistent(ctor);
    env.SetInstanceData<ObjectData>(data);
    exports.Set("openObject", Napi::Function::New<OpenObject>(env, "openObject"));
  }

  // new NativeObject(path): only through openObject().
  explicit NativeObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeObject>(info) {
    path_ = ArgString(info, 0, "bpf_object__open_file", "path");
    LibbpfLogClear();
    errno = 0;
    obj_ = bpf_object__open_file(path_.c_str(), nullptr);
    if (!obj_) {
      int err = errno > 0 ? errno : EINVAL;
      obj_ = nullptr;
      ThrowErrno(info.Env(), err, "bpf_object__open_file", "'" + path_ + "'", LibbpfLogTail(kLogTail));
    }
  }

  ~NativeObject() override {
    if (obj_) bpf_object__close(obj_);
    obj_ = nullptr;
  }

 private:
  static Napi::Value OpenObject(const Napi::CallbackInfo& info) {
    ObjectData* data = info.Env().GetInstanceData<ObjectData>();
    return data->ctor.New({info[0]});
  }

  bpf_object* Obj(Napi::Env env, const char* syscall) {
    if (!obj_) ThrowErrno(env, EBADF, syscall, "'" + path_ + "' (closed)");
    return obj_;
  }

  bpf_map* FindMap(Napi::Env env, const std::string& name, const char* syscall) {
    bpf_map* map = bpf_object__find_map_by_name(Obj(env, syscall), name.c_str());
    if (!map) ThrowErrno(env, ENOENT, "bpf_object__find_map_by_name", "'" + name + "' in '" + path_ + "'");
    return map;
  }

  bpf_program* FindProgram(Napi::Env env, const std::string& name, const char* syscall) {
    bpf_program* prog = bpf_object__find_program_by_name(Obj(env, syscall), name.c_str());
    if (!prog) ThrowErrno(env, ENOENT, "bpf_object__find_program_by_name", "'" + name + "' in '" + path_ + "'");
    return prog;
  }

  Napi::Value Maps(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_object* obj = Obj(env, "bpf_object__next_map");
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    bpf_map* map;
    bpf_object__for_each_map(map, obj) {
      Napi::Object m = Napi::Object::New(env);
      m.Set("name", MapName(obj, map));
      m.Set("type", static_cast<double>(bpf_map__type(map)));
      m.Set("keySize", static_cast<double>(bpf_map__key_size(map)));
      m.Set("valueSize", static_cast<double>(bpf_map__value_size(map)));
      m.Set("maxEntries", static_cast<double>(bpf_map__max_entries(map)));
      m.Set("flags", static_cast<double>(bpf_map__map_flags(map)));
      uint32_t id = 0;
      int fd = bpf_map__fd(map);
      bpf_map_info mi;
      if (fd >= 0 && InfoByFd(fd, &mi) == 0) id = mi.id;
      m.Set("id", static_cast<double>(id));
      out.Set(i++, m);
    }
    return out;
  }

  Napi::Value Programs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_object* obj = Obj(env, "bpf_object__next_program");
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    bpf_program* prog;
    bpf_object__for_each_program(prog, obj) {
      Napi::Object p = Napi::Object::New(env);
      p.Set("name", bpf_program__name(prog));
      p.Set("section", bpf_program__section_name(prog));
      p.Set("type", static_cast<double>(bpf_program__type(prog)));
      out.Set(i++, p);
    }
    return out;
  }

  Napi::Value SetMapMaxEntries(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* sc = "bpf_map__set_max_entries";
    std::string name = ArgString(info, 0, sc, "map");
    uint32_t n = ArgU32(info, 1, sc, "maxEntries");
    int ret = bpf_map__set_max_entries(FindMap(env, name, sc), n);
    if (ret) ThrowErrno(env, ErrOf(ret), sc, "'" + name + "', " + std::to_string(n));
    return env.Undefined();
  }

  // libbpf 1.1 crashes when bpf_map__set_max_entries is given the inner map template (the
  // template has no object). So the size is only recorded here; load() creates a template map
  // of that size like libbpf's own (same type, key/value size, flags) and hands it over with
  // bpf_map__set_inner_map_fd, then closes it once the outer map exists.
  Napi::Value SetInnerMapMaxEntries(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* sc = "bpf_map__set_max_entries";
    std::string name = ArgString(info, 0, sc, "map");
    uint32_t n = ArgU32(info, 1, sc, "maxEntries");
    bpf_map* map = FindMap(env, name, sc);
    if (loadAttempted_) ThrowErrno(env, EBUSY, sc, "inner map of '" + name + "' (load() was called)");
    if (!bpf_map__inner_map(map)) ThrowErrno(env, EINVAL, "bpf_map__inner_map", "'" + name + "' has no inner map");
    innerMaxEntries_[name] = n;
    return env.Undefined();
  }

  // Before load: the template maps asked for by setInnerMapMaxEntries. Closed after load.
  void CreateInnerTemplates(Napi::Env env, std::vector<int>* fds) {
    for (const auto& [name, maxEntries] : innerMaxEntries_) {
      bpf_map* map = FindMap(env, name, "bpf_map__set_inner_map_fd");
      bpf_map* inner = bpf_map__inner_map(map);
      if (!inner) continue;  // already replaced by an fd: cannot happen, set only here
      auto opts = Opts<bpf_map_create_opts>();
      opts.map_flags = bpf_map__map_flags(inner);
      int fd = bpf_map_create(bpf_map__type(inner), nullptr, bpf_map__key_size(inner), bpf_map__value_size(inner),
                              maxEntries, &opts);
      if (fd < 0) ThrowErrno(env, ErrOf(fd), "bpf_map_create", "inner map template of '" + name + "'");
      fds->push_back(fd);
      int ret = bpf_map__set_inner_map_fd(map, fd);
      if (ret) ThrowErrno(env, ErrOf(ret), "bpf_map__set_inner_map_fd", "'" + name + "'");
    }
    innerMaxEntries_.clear();
  }

  Napi::Value DatasecVariables(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* sc = "btf__find_by_name_kind";
    std::string name = ArgString(info, 0, sc, "map");
    bpf_object* obj = Obj(env, sc);
    bpf_map* map = FindMap(env, name, sc);
    const btf* b = bpf_object__btf(obj);
    if (!b) ThrowErrno(env, ENOENT, "bpf_object__btf", "'" + path_ + "' has no BTF");
    // The DATASEC is the map's value type. The error keeps the name the wrapper uses for this lookup.
    const btf_type* t = btf__type_by_id(b, bpf_map__btf_value_type_id(map));
    if (!t || !btf_is_datasec(t)) ThrowErrno(env, ENOENT, sc, "map '" + name + "' has no DATASEC value type");
    Napi::Array out = Napi::Array::New(env);
    const btf_var_secinfo* v = btf_var_secinfos(t);
    for (uint16_t i = 0; i < btf_vlen(t); i++, v++) {
      const btf_type* var = btf__type_by_id(b, v->type);
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", var ? btf__name_by_offset(b, var->name_off) : "");
      o.Set("offset", static_cast<double>(v->offset));
      o.Set("size", static_cast<double>(v->size));
      out.Set(i, o);
    }
    return out;
  }

  Napi::Value MapInitialValue(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* sc = "bpf_map__initial_value";
    std::string name = ArgString(info, 0, sc, "map");
    size_t size = 0;
    const void* data = bpf_map__initial_value(FindMap(env, name, sc), &size);
    if (!data) ThrowErrno(env, EINVAL, sc, "'" + name + "' has no initial value (not a data section map)");
    return Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(data), size);
  }

  Napi::Value SetMapInitialValue(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* sc = "bpf_map__set_initial_value";
    std::string name = ArgString(info, 0, sc, "map");
    Napi::Buffer<uint8_t> value = ArgBuffer(info, 1, sc, "value");
    int ret = bpf_map__set_initial_value(FindMap(env, name, sc), value.Data(), value.Length());
    if (ret) ThrowErrno(env, ErrOf(ret), sc, "'" + name + "', " + std::to_string(value.Length()) + " bytes");
    return env.Undefined();
  }

  Napi::Value ReuseMapFd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* sc = "bpf_map__reuse_fd";
    std::string name = ArgString(info, 0, sc, "map");
    int fd = ArgFd(info, 1, sc);
    int ret = bpf_map__reuse_fd(FindMap(env, name, sc), fd);
    if (ret) ThrowErrno(env, ErrOf(ret), sc, "'" + name + "', fd " + std::to_string(fd));
    return env.Undefined();
  }

  // One attempt only, failed or not: libbpf refuses a second bpf_object__load, and a failed
  // attempt leaves the maps pointing at inner templates that are closed by then.
  Napi::Value Load(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* sc = "bpf_object__load";
    bpf_object* obj = Obj(env, sc);
    if (loadAttempted_) ThrowErrno(env, EINVAL, sc, "'" + path_ + "' (load can be attempted once)");
    loadAttempted_ = true;
    std::vector<int> templates;
    struct CloseAll {
      std::vector<int>* fds;
      ~CloseAll() { for (int fd : *fds) close(fd); }
    } closeTemplates{&templates};
    CreateInnerTemplates(env, &templates);
    LibbpfLogClear();
    int ret = bpf_object__load(obj);
    if (ret) {
      std::string log = LibbpfLogTail(kLogTail);
      if (!log.empty()) log = "libbpf log (last " + std::to_string(kLogTail) + " lines):\n" + log;
      ThrowErrno(env, ErrOf(ret), sc, "'" + path_ + "'", log);
    }
    return env.Undefined();
  }

  Napi::Value ProgramFd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* sc = "bpf_program__fd";
    std::string name = ArgString(info, 0, sc, "program");
    int fd = bpf_program__fd(FindProgram(env, name, sc));
    if (fd < 0) ThrowErrno(env, ErrOf(fd), sc, "'" + name + "' (is the object loaded?)");
    return Napi::Number::New(env, fd);
  }

  Napi::Value MapFd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* sc = "bpf_map__fd";
    std::string name = ArgString(info, 0, sc, "map");
    int fd = bpf_map__fd(FindMap(env, name, sc));
    if (fd < 0) ThrowErrno(env, ErrOf(fd), sc, "'" + name + "' (is the object loaded?)");
    return Napi::Number::New(env, fd);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (obj_) bpf_object__close(obj_);
    obj_ = nullptr;
    return info.Env().Undefined();
  }

  bpf_object* obj_ = nullptr;
  std::string path_;
  bool loadAttempted_ = false;  // set by load() before it tries
  std::map<std::string, uint32_t> innerMaxEntries_;  // map name -> inner template max_entries
};

}  // namespace

void InitObject(Napi::Env env, Napi::Object exports) { NativeObject::Init(env, exports); }

}  // namespace xlb
