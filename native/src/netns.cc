// Network namespaces: run a JS function with the calling thread in another network namespace.
//
// A socket belongs to the namespace it was created in, for its whole life. So a socket (ours,
// node's, or the netlink package's) created synchronously inside netnsRun's function lives in that
// namespace, while the rest of the process stays where it was: the thread's namespace is set back
// before netnsRun returns or throws. Only the calling thread moves (setns(2) with CLONE_NEWNET);
// libuv's thread pool and V8's threads never do. Work the function starts asynchronously runs
// later, back in the original namespace.
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "addon.h"
#include "errors.h"

namespace xlb {

namespace {

// Owns an fd, closes it on every way out.
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) close(fd);
  }
};

// netnsRun(path, fn): path is a namespace file (/run/netns/NAME, /proc/PID/ns/net).
Napi::Value NetnsRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "setns";
  std::string path = ArgString(info, 0, sc, "path");
  if (!info[1].IsFunction()) ThrowInvalid(env, sc, "argument 2 (fn) must be a function");
  Napi::Function fn = info[1].As<Napi::Function>();

  FdGuard self{open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)};
  if (self.fd < 0) ThrowErrno(env, errno, "open", "'/proc/thread-self/ns/net'");
  FdGuard target{open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (target.fd < 0) ThrowErrno(env, errno, "open", "'" + path + "'");
  if (setns(target.fd, CLONE_NEWNET) != 0) {
    int err = errno;
    ThrowErrno(env, err, sc, "'" + path + "'");
  }
  // Back on every way out. Failing to go back would leave the thread in the wrong namespace with
  // no way to tell the rest of the process: that is fatal.
  struct Back {
    int fd;
    ~Back() {
      if (setns(fd, CLONE_NEWNET) != 0) Napi::Error::Fatal("netnsRun", "setns back to the original network namespace failed");
    }
  } back{self.fd};
  return fn.Call({});
}

}  // namespace

void InitNetns(Napi::Env env, Napi::Object exports) {
  exports.Set("netnsRun", Napi::Function::New<NetnsRun>(env, "netnsRun"));
}

}  // namespace xlb
