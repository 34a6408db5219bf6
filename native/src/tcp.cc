// TCP connects for the health checkers (mechanism only; src/health/connect.ts is the policy).
//
// openTcpProber(callback) -> NativeTcpProber. Each connect(family, dst, port, opts) opens a
// non-blocking, close-on-exec TCP socket, applies keepalived's connection options, starts a
// non-blocking connect and returns a probe id; when the connect completes the callback gets
// (id, 0), when it fails (id, errno). The event loop watches each probe with a uv_poll handle
// (writable = the connect has completed; SO_ERROR tells how).
//
//   opts { src: Buffer(4|16), srcPort, ifname (SO_BINDTODEVICE), mark (SO_MARK), reset }
//   - src / srcPort: bind() first (SO_REUSEADDR with a port; IP_BIND_ADDRESS_NO_PORT without one,
//     so the kernel picks the port at connect time, per destination);
//   - reset: once the result is known the socket is closed with an RST (SO_LINGER 0): a
//     TCP_CHECK leaves no TIME_WAIT behind, however many checks a second it makes.
//   Without `reset` a connected probe stays open until release(id) hands its fd over (the caller
//   owns it from then on: node's net.Socket({fd})) or cancel(id) closes it. A failed one is
//   closed before the callback.
// cancel(id): close the probe's socket with an RST, no callback (a timeout); false if unknown.
// close(): cancel every probe. Errors before the connect is under way (socket, setsockopt, bind,
// an immediate connect failure such as ENETUNREACH) are thrown with code, errno and syscall.
//
// Lifetime: the prober is kept alive (a strong reference) while any probe's poll handle exists;
// a probe's memory is freed by its handle's close callback.
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "addon.h"
#include "errors.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace xlb {

namespace {

struct ProberData {
  Napi::FunctionReference ctor;
};

class NativeTcpProber;

struct Probe {
  uv_poll_t handle;
  NativeTcpProber* owner;
  uint32_t id;
  int fd;
  bool reset;
  bool polling;
};

// Close with an RST: SO_LINGER on with a zero timeout makes close() abort the connection.
void CloseReset(int fd) {
  linger lg{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  close(fd);
}

class NativeTcpProber : public Napi::ObjectWrap<NativeTcpProber> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "NativeTcpProber", {
      InstanceMethod<&NativeTcpProber::Connect>("connect"),
      InstanceMethod<&NativeTcpProber::Cancel>("cancel"),
      InstanceMethod<&NativeTcpProber::Release>("release"),
      InstanceMethod<&NativeTcpProber::Close>("close"),
      InstanceMethod<&NativeTcpProber::Size>("size"),
    });
    auto* data = new ProberData();
    data->ctor = Napi::Persistent(ctor);
    env.AddCleanupHook([data]() { delete data; });
    exports.Set("openTcpProber", Napi::Function::New<OpenTcpProber>(env, "openTcpProber", data));
  }

  explicit NativeTcpProber(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTcpProber>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsFunction()) ThrowInvalid(env, "openTcpProber", "argument 1 (callback) must be a function");
    cb_ = Napi::Persistent(info[0].As<Napi::Function>());
    if (napi_get_uv_event_loop(env, &loop_) != napi_ok || !loop_) ThrowErrno(env, EINVAL, "napi_get_uv_event_loop", "TCP prober");
  }

  ~NativeTcpProber() override {
    // only reached with no handle left (each one holds a reference): every fd is closed already
    for (auto& [id, p] : probes_) {
      if (p->fd >= 0) close(p->fd);
      delete p;
    }
  }

 private:
  static Napi::Value OpenTcpProber(const Napi::CallbackInfo& info) {
    auto* data = static_cast<ProberData*>(info.Data());
    return data->ctor.New({info[0]});
  }

  // connect(family, dst, port, opts) -> id
  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* sc = "connect";
    uint32_t family = ArgU32(info, 0, sc, "family");
    if (family != 4 && family != 6) ThrowInvalid(env, sc, "argument 1 (family) must be 4 or 6");
    Napi::Buffer<uint8_t> dst = ArgBuffer(info, 1, sc, "dst");
    uint32_t port = ArgU32(info, 2, sc, "port");
    size_t alen = family == 4 ? 4 : 16;
    if (dst.Length() != alen) ThrowInvalid(env, sc, "argument 2 (dst) must be " + std::to_string(alen) + " bytes");
    if (port == 0 || port > 65535) ThrowInvalid(env, sc, "argument 3 (port) must be in 1..65535");
    if (!info[3].IsObject()) ThrowInvalid(env, sc, "argument 4 (options) must be an object");
    Napi::Object o = info[3].As<Napi::Object>();
    Napi::Buffer<uint8_t> src;
    bool hasSrc = OptBuffer(o, "src", sc, &src);
    if (hasSrc && src.Length() != alen) ThrowInvalid(env, sc, "option 'src' must be " + std::to_string(alen) + " bytes");
    uint32_t srcPort = 0, mark = 0;
    bool hasSrcPort = OptU32(o, "srcPort", sc, &srcPort), hasMark = OptU32(o, "mark", sc, &mark);
    if (hasSrcPort && srcPort > 65535) ThrowInvalid(env, sc, "option 'srcPort' must be in 0..65535");
    std::string ifname;
    Napi::Value ifv = o.Get("ifname");
    if (!ifv.IsUndefined() && !ifv.IsNull()) {
      if (!ifv.IsString()) ThrowInvalid(env, sc, "option 'ifname' must be a string");
      ifname = ifv.As<Napi::String>().Utf8Value();
      if (ifname.empty() || ifname.size() >= IFNAMSIZ) ThrowInvalid(env, sc, "option 'ifname' must be 1.." + std::to_string(IFNAMSIZ - 1) + " characters");
    }
    Napi::Value resetV = o.Get("reset");
    bool reset = resetV.IsBoolean() && resetV.As<Napi::Boolean>().Value();

    int domain = family == 4 ? AF_INET : AF_INET6;
    int fd = socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) ThrowErrno(env, errno, "socket", "TCP probe");
    auto fail = [&](const char* syscall, const std::string& detail) {
      int err = errno;
      close(fd);
      ThrowErrno(env, err, syscall, detail);
    };
    int one = 1;
    if (!ifname.empty() && setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname.c_str(), static_cast<socklen_t>(ifname.size())) != 0) {
      fail("setsockopt", "SO_BINDTODEVICE=" + ifname);
    }
    if (hasMark) {
      int m = static_cast<int>(mark);
      if (setsockopt(fd, SOL_SOCKET, SO_MARK, &m, sizeof(m)) != 0) fail("setsockopt", "SO_MARK=" + std::to_string(mark));
    }
    sockaddr_storage ss;
    if (hasSrc || hasSrcPort) {
      if (hasSrcPort && srcPort != 0) {
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) fail("setsockopt", "SO_REUSEADDR");
      } else {
        // best effort: without it the port is taken at bind() time, which only narrows the choice
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
      }
      socklen_t len = Sockaddr(&ss, family, hasSrc ? src.Data() : nullptr, srcPort);
      if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) fail("bind", "TCP probe source port " + std::to_string(srcPort));
    }
    socklen_t len = Sockaddr(&ss, family, dst.Data(), port);
    if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) fail("connect", "TCP probe to port " + std::to_string(port));

    auto* p = new Probe();
    p->owner = this;
    p->id = nextId_++;
    if (nextId_ == 0) nextId_ = 1;
    p->fd = fd;
    p->reset = reset;
    p->handle.data = p;
    int ret = uv_poll_init_socket(loop_, &p->handle, fd);
    if (ret != 0) {
      delete p;
      close(fd);
      ThrowErrno(env, -ret, "uv_poll_init", "TCP probe");
    }
    if (handles_++ == 0) Ref();  // released when the last handle is closed
    probes_[p->id] = p;
    ret = uv_poll_start(&p->handle, UV_WRITABLE, PollCb);
    if (ret != 0) {
      Finish(p, true);
      ThrowErrno(env, -ret, "uv_poll_start", "TCP probe");
    }
    p->polling = true;
    return Napi::Number::New(env, p->id);
  }

  // An IPv6 link-local destination needs no scope id when the socket is bound to a device (ifname).
  static socklen_t Sockaddr(sockaddr_storage* ss, uint32_t family, const uint8_t* addr, uint32_t port) {
    std::memset(ss, 0, sizeof(*ss));
    if (family == 4) {
      auto* a = reinterpret_cast<sockaddr_in*>(ss);
      a->sin_family = AF_INET;
      a->sin_port = htons(static_cast<uint16_t>(port));
      if (addr) std::memcpy(&a->sin_addr, addr, 4);
      return sizeof(*a);
    }
    auto* a = reinterpret_cast<sockaddr_in6*>(ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    if (addr) std::memcpy(&a->sin6_addr, addr, 16);
    return sizeof(*a);
  }

  static void PollCb(uv_poll_t* h, int status, int) {
    auto* p = static_cast<Probe*>(h->data);
    p->owner->OnWritable(p, status);
  }

  void OnWritable(Probe* p, int status) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == 0 && status < 0) err = -status;
    uint32_t id = p->id;
    // the probe is done polling; a failed one (or one asked to reset) is closed now
    Finish(p, err != 0 || p->reset);
    if (cb_.IsEmpty()) return;
    try {
      cb_.MakeCallback(Value(), {Napi::Number::New(env, id), Napi::Number::New(env, err)});
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
    }
  }

  // Stop watching p; with closeFd its socket is closed (with an RST) and it is forgotten.
  void Finish(Probe* p, bool closeFd) {
    if (p->polling) {
      uv_poll_stop(&p->handle);
      p->polling = false;
    }
    if (!closeFd) return;
    probes_.erase(p->id);
    if (p->fd >= 0) CloseReset(p->fd);
    p->fd = -1;
    Dispose(p);
  }

  void Dispose(Probe* p) {
    uv_close(reinterpret_cast<uv_handle_t*>(&p->handle), [](uv_handle_t* h) {
      auto* probe = static_cast<Probe*>(h->data);
      NativeTcpProber* owner = probe->owner;
      delete probe;
      if (--owner->handles_ == 0) owner->Unref();
    });
  }

  Probe* Find(const Napi::CallbackInfo& info, const char* sc) {
    uint32_t id = ArgU32(info, 0, sc, "id");
    auto it = probes_.find(id);
    return it == probes_.end() ? nullptr : it->second;
  }

  // cancel(id) -> boolean
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    Probe* p = Find(info, "cancel");
    if (p) Finish(p, true);
    return Napi::Boolean::New(info.Env(), p != nullptr);
  }

  // release(id) -> fd of a connected probe (the caller owns it now)
  Napi::Value Release(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Probe* p = Find(info, "release");
    if (!p) ThrowErrno(env, ENOENT, "release", "no such TCP probe");
    if (p->polling) ThrowInvalid(env, "release", "TCP probe " + std::to_string(p->id) + " has not connected yet");
    int fd = p->fd;
    p->fd = -1;
    probes_.erase(p->id);
    Dispose(p);
    return Napi::Number::New(env, fd);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    std::vector<Probe*> all;
    for (auto& [id, p] : probes_) all.push_back(p);
    for (Probe* p : all) Finish(p, true);
    cb_.Reset();
    return info.Env().Undefined();
  }

  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(probes_.size())); }

  Napi::FunctionReference cb_;
  uv_loop_t* loop_ = nullptr;
  std::unordered_map<uint32_t, Probe*> probes_;
  uint32_t nextId_ = 1;
  size_t handles_ = 0;
};

}  // namespace

void InitTcp(Napi::Env env, Napi::Object exports) { NativeTcpProber::Init(env, exports); }

}  // namespace xlb
