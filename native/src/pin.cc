// bpffs pinning and fd ownership: bpf_obj_pin, bpf_obj_get, close.
#include <bpf/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "addon.h"
#include "errors.h"

namespace xlb {

namespace {

// objPin(fd, path)
Napi::Value ObjPin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "bpf_obj_pin";
  int fd = ArgFd(info, 0, sc);
  std::string path = ArgString(info, 1, sc, "path");
  int ret = bpf_obj_pin(fd, path.c_str());
  if (ret) ThrowErrno(env, ErrOf(ret), sc, "fd " + std::to_string(fd) + ", '" + path + "'");
  return env.Undefined();
}

// objGet(path) -> a new fd, owned by the caller
Napi::Value ObjGet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "bpf_obj_get";
  std::string path = ArgString(info, 0, sc, "path");
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowErrno(env, ErrOf(fd), sc, "'" + path + "'");
  return Napi::Number::New(env, fd);
}

// closeFd(fd). EINTR counts as success: on Linux the fd is released even then, and closing it
// again could close an fd that another thread has opened since.
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "close");
  if (close(fd) != 0) {
    int err = errno;  // before anything else can change it
    if (err != EINTR) ThrowErrno(env, err, "close", "fd " + std::to_string(fd));
  }
  return env.Undefined();
}

}  // namespace

void InitPin(Napi::Env env, Napi::Object exports) {
  exports.Set("objPin", Napi::Function::New<ObjPin>(env, "objPin"));
  exports.Set("objGet", Napi::Function::New<ObjGet>(env, "objGet"));
  exports.Set("closeFd", Napi::Function::New<CloseFd>(env, "closeFd"));
}

}  // namespace xlb
