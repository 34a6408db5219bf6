// Sockets for VRRP: raw IP sockets (AF_INET / AF_INET6 with one IP protocol, e.g. 112),
// AF_PACKET sockets (whole Ethernet frames: gratuitous ARP, neighbour advertisements, captures)
// and receive-only AF_NETLINK sockets (notifications of netlink multicast groups: link events).
//
// Every socket is non-blocking and close-on-exec. Reading is done on the event loop: start(cb)
// watches the fd with a uv_poll handle and, when it is readable, reads datagrams (recvmsg,
// retrying on EINTR, up to kBurst per wake-up, until EAGAIN) and calls cb(null, message) once
// per datagram, or cb(error, null) when recvmsg fails otherwise (then waits for the next wake-up).
//
// Lifetime: the uv_poll handle lives from start() to stop() / close(). It is closed with
// uv_close (which also drops events for the fd already collected in this loop iteration), and
// the JS object is kept alive (a strong reference) until libuv has called the close callback, so
// a callback that closes its own socket, or a close() while a wake-up is pending, never touches
// freed memory: after each JS callback the read loop checks whether its handle is still the
// current one and stops otherwise. close() closes the fd right after uv_close (libuv no longer
// polls it then). The finalizer closes an fd that was never closed.
//
// Receive metadata (always asked for):
//   IPv4  the kernel hands a raw socket the whole datagram, IP header included: `data` is that
//         datagram as received; IP_PKTINFO gives the destination and ifindex, IP_RECVTTL the TTL.
//   IPv6  `data` is the payload after the IPv6 header (and extension headers);
//         IPV6_RECVPKTINFO gives destination and ifindex, IPV6_RECVHOPLIMIT the hop limit.
//   packet  `data` is the frame from the Ethernet header on; sockaddr_ll gives ifindex, protocol
//         and packet type; SO_TIMESTAMPNS (when asked for) the kernel's receive time.
//   netlink `data` is one datagram (one or more netlink messages); sockaddr_nl gives the sender's
//         port id and group mask.
//
// Socket errors: libuv reports EPOLLERR (a pending socket error, e.g. ENOBUFS when a netlink
// socket's buffer overran and notifications were lost) as UV_EBADF and stops the handle; the
// error is then read with SO_ERROR (clearing it), given to the callback (syscall 'recvmsg') and
// the fd is watched again.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <net/ethernet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "addon.h"
#include "errors.h"

#ifndef SO_BINDTOIFINDEX
#define SO_BINDTOIFINDEX 62
#endif

namespace xlb {

namespace {

constexpr int kBurst = 64;            // datagrams read per wake-up before yielding to the loop
constexpr size_t kBufSize = 65536;    // larger than any IPv4 datagram; MSG_TRUNC says if cut

struct SocketData {
  Napi::FunctionReference ctor;
};

class NativeSocket;

// One uv_poll handle; freed by its close callback, which also releases the socket's reference.
struct Poll {
  uv_poll_t handle;
  NativeSocket* owner;
};

std::string FamilyName(int family) { return family == AF_INET ? "IPv4" : "IPv6"; }

class NativeSocket : public Napi::ObjectWrap<NativeSocket> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "NativeSocket", {
      InstanceMethod<&NativeSocket::Fd>("fd"),
      InstanceMethod<&NativeSocket::Start>("start"),
      InstanceMethod<&NativeSocket::Stop>("stop"),
      InstanceMethod<&NativeSocket::Close>("close"),
      InstanceMethod<&NativeSocket::SendTo>("sendTo"),
      InstanceMethod<&NativeSocket::Send>("send"),
      InstanceMethod<&NativeSocket::Join>("joinGroup"),
      InstanceMethod<&NativeSocket::Leave>("leaveGroup"),
    });
    auto* data = new SocketData();
    data->ctor = Napi::Persistent(ctor);
    env.AddCleanupHook([data]() { delete data; });
    exports.Set("openIpSocket", Napi::Function::New<OpenIpSocket>(env, "openIpSocket", data));
    exports.Set("openPacketSocket", Napi::Function::New<OpenPacketSocket>(env, "openPacketSocket", data));
    exports.Set("openNetlinkSocket", Napi::Function::New<OpenNetlinkSocket>(env, "openNetlinkSocket", data));
  }

  // new NativeSocket('ip', family, protocol, opts) / new NativeSocket('packet', ifindex, protocol, opts):
  // only through openIpSocket() / openPacketSocket().
  explicit NativeSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeSocket>(info) {
    Napi::Env env = info.Env();
    std::string kind = ArgString(info, 0, "socket", "kind");
    if (kind == "ip") {
      OpenIp(info);
    } else if (kind == "packet") {
      OpenPacket(info);
    } else if (kind == "netlink") {
      OpenNetlink(info);
    } else {
      ThrowInvalid(env, "socket", "unknown socket kind '" + kind + "'");
    }
  }

  ~NativeSocket() override {
    // A live poll handle keeps this object referenced, so only a stopped socket gets here.
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  void OnPollClosed(Poll* p) {
    delete p;
    Unref();
  }

  void OnReadable(Poll* p, int status) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (status < 0) {
      // libuv reports EPOLLERR as UV_EBADF and stops the handle. EPOLLERR means a pending socket
      // error (sk_err: ENOBUFS on an overrun netlink socket, an ICMP error, ...): read it with
      // SO_ERROR (which clears it), report it, and watch the fd again.
      int soerr = 0;
      socklen_t len = sizeof(soerr);
      bool pending = fd_ >= 0 && getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr != 0;
      Deliver(p, MakeErrno(env, pending ? soerr : -status, pending ? "recvmsg" : "uv_poll", what_).Value(), env.Null());
      if (poll_ == p && pending) {
        int ret = uv_poll_start(&p->handle, UV_READABLE, PollCb);
        if (ret != 0) Deliver(p, MakeErrno(env, -ret, "uv_poll_start", what_).Value(), env.Null());
      }
      return;
    }
    for (int i = 0; i < kBurst && poll_ == p; i++) {
      int err = 0;
      Napi::Value msg = ReadOne(env, &err);
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err) {
        Deliver(p, MakeErrno(env, err, "recvmsg", what_).Value(), env.Null());
        return;
      }
      Deliver(p, env.Null(), msg);
    }
  }

 private:
  static Napi::Value OpenIpSocket(const Napi::CallbackInfo& info) {
    auto* data = static_cast<SocketData*>(info.Data());
    return data->ctor.New({Napi::String::New(info.Env(), "ip"), info[0], info[1], info[2]});
  }

  static Napi::Value OpenPacketSocket(const Napi::CallbackInfo& info) {
    auto* data = static_cast<SocketData*>(info.Data());
    return data->ctor.New({Napi::String::New(info.Env(), "packet"), info[0], info[1], info[2]});
  }

  static Napi::Value OpenNetlinkSocket(const Napi::CallbackInfo& info) {
    auto* data = static_cast<SocketData*>(info.Data());
    return data->ctor.New({Napi::String::New(info.Env(), "netlink"), info[0], info[1], info[2]});
  }

  // The socket is being opened and a call failed: close it and throw errno's error.
  [[noreturn]] void FailOpen(Napi::Env env, const char* syscall, const std::string& detail) {
    int err = errno;  // before close() can change it
    close(fd_);
    fd_ = -1;
    ThrowErrno(env, err, syscall, detail);
  }

  void Bind(Napi::Env env, const void* addr, socklen_t len) {
    if (bind(fd_, static_cast<const sockaddr*>(addr), len) != 0) FailOpen(env, "bind", what_);
  }

  // setsockopt of an int, closing the socket and throwing on failure.
  void SetInt(Napi::Env env, int level, int name, int value, const char* optname) {
    SetRaw(env, level, name, &value, sizeof(value), optname, std::to_string(value));
  }

  void SetRaw(Napi::Env env, int level, int name, const void* value, socklen_t len, const char* optname,
              const std::string& shown) {
    if (setsockopt(fd_, level, name, value, len) != 0) FailOpen(env, "setsockopt", std::string(optname) + "=" + shown + ", " + what_);
  }

  void Create(Napi::Env env, int domain, int protocol) {
    fd_ = socket(domain, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd_ < 0) {
      int err = errno;
      fd_ = -1;
      ThrowErrno(env, err, "socket", what_);
    }
  }

  // ip: family (4 | 6), protocol, options { ifindex, hopLimit, multicastHopLimit, multicastLoop,
  // multicastIfindex, tos, mtuDiscover, recvBufferSize }: each set only when given.
  void OpenIp(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* sc = "socket";
    uint32_t family = ArgU32(info, 1, sc, "family");
    if (family != 4 && family != 6) ThrowInvalid(env, sc, "argument 2 (family) must be 4 or 6");
    uint32_t protocol = ArgU32(info, 2, sc, "protocol");
    if (protocol > 255) ThrowInvalid(env, sc, "argument 3 (protocol) must be in 0..255");
    if (!info[3].IsObject()) ThrowInvalid(env, sc, "argument 4 (options) must be an object");
    Napi::Object o = info[3].As<Napi::Object>();
    family_ = family == 4 ? AF_INET : AF_INET6;
    what_ = "raw " + FamilyName(family_) + " socket, protocol " + std::to_string(protocol);
    // read every option before the socket exists, so a bad option leaks nothing
    uint32_t ifindex = 0, hop = 0, mhop = 0, mif = 0, tos = 0, pmtu = 0;
    bool hasIf = OptU32(o, "ifindex", sc, &ifindex), hasHop = OptU32(o, "hopLimit", sc, &hop),
         hasMhop = OptU32(o, "multicastHopLimit", sc, &mhop), hasMif = OptU32(o, "multicastIfindex", sc, &mif),
         hasTos = OptU32(o, "tos", sc, &tos), hasPmtu = OptU32(o, "mtuDiscover", sc, &pmtu);
    BufferOptions bufs = ReadBufferOptions(o, sc);
    Napi::Value loopV = o.Get("multicastLoop");
    bool hasLoop = !loopV.IsUndefined() && !loopV.IsNull();
    if (hasLoop && !loopV.IsBoolean()) ThrowInvalid(env, sc, "option 'multicastLoop' must be a boolean");

    Create(env, family_, static_cast<int>(protocol));
    bool v4 = family_ == AF_INET;
    if (v4) {
      SetInt(env, IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO");
      SetInt(env, IPPROTO_IP, IP_RECVTTL, 1, "IP_RECVTTL");
    } else {
      SetInt(env, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO");
      SetInt(env, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1, "IPV6_RECVHOPLIMIT");
    }
    if (hasIf) {
      // SO_BINDTOIFINDEX takes any number; ask for the interface's name first so that an ifindex
      // with no interface is ENODEV here, not a socket that silently never sees a packet
      ifreq ifr;
      std::memset(&ifr, 0, sizeof(ifr));
      ifr.ifr_ifindex = static_cast<int>(ifindex);
      if (ioctl(fd_, SIOCGIFNAME, &ifr) != 0) FailOpen(env, "ioctl", "SIOCGIFNAME of ifindex " + std::to_string(ifindex) + ", " + what_);
      SetInt(env, SOL_SOCKET, SO_BINDTOIFINDEX, static_cast<int>(ifindex), "SO_BINDTOIFINDEX");
    }
    if (hasHop) {
      if (v4) SetInt(env, IPPROTO_IP, IP_TTL, static_cast<int>(hop), "IP_TTL");
      else SetInt(env, IPPROTO_IPV6, IPV6_UNICAST_HOPS, static_cast<int>(hop), "IPV6_UNICAST_HOPS");
    }
    if (hasMhop) {
      if (v4) SetInt(env, IPPROTO_IP, IP_MULTICAST_TTL, static_cast<int>(mhop), "IP_MULTICAST_TTL");
      else SetInt(env, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, static_cast<int>(mhop), "IPV6_MULTICAST_HOPS");
    }
    if (hasLoop) {
      int loop = loopV.As<Napi::Boolean>().Value() ? 1 : 0;
      if (v4) SetInt(env, IPPROTO_IP, IP_MULTICAST_LOOP, loop, "IP_MULTICAST_LOOP");
      else SetInt(env, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, loop, "IPV6_MULTICAST_LOOP");
    }
    if (hasMif) {
      if (v4) {
        ip_mreqn m;
        std::memset(&m, 0, sizeof(m));
        m.imr_ifindex = static_cast<int>(mif);
        SetRaw(env, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof(m), "IP_MULTICAST_IF", std::to_string(mif));
      } else {
        SetInt(env, IPPROTO_IPV6, IPV6_MULTICAST_IF, static_cast<int>(mif), "IPV6_MULTICAST_IF");
      }
    }
    if (hasTos) {
      if (v4) SetInt(env, IPPROTO_IP, IP_TOS, static_cast<int>(tos), "IP_TOS");
      else SetInt(env, IPPROTO_IPV6, IPV6_TCLASS, static_cast<int>(tos), "IPV6_TCLASS");
    }
    if (hasPmtu) {
      if (v4) SetInt(env, IPPROTO_IP, IP_MTU_DISCOVER, static_cast<int>(pmtu), "IP_MTU_DISCOVER");
      else SetInt(env, IPPROTO_IPV6, IPV6_MTU_DISCOVER, static_cast<int>(pmtu), "IPV6_MTU_DISCOVER");
    }
    SetBuffers(env, bufs);
  }

  // packet: ifindex, protocol (an EtherType in host order: 0 receives nothing, 3 = ETH_P_ALL),
  // options { timestamps, recvBufferSize }. The socket is opened with protocol 0 and the protocol
  // given to bind(), so it sees nothing from other interfaces in between.
  void OpenPacket(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* sc = "socket";
    uint32_t ifindex = ArgU32(info, 1, sc, "ifindex");
    uint32_t protocol = ArgU32(info, 2, sc, "protocol");
    if (protocol > 0xffff) ThrowInvalid(env, sc, "argument 3 (protocol) must be in 0..65535");
    if (!info[3].IsObject()) ThrowInvalid(env, sc, "argument 4 (options) must be an object");
    Napi::Object o = info[3].As<Napi::Object>();
    BufferOptions bufs = ReadBufferOptions(o, sc);
    Napi::Value tsV = o.Get("timestamps");
    bool timestamps = false;
    if (!tsV.IsUndefined() && !tsV.IsNull()) {
      if (!tsV.IsBoolean()) ThrowInvalid(env, sc, "option 'timestamps' must be a boolean");
      timestamps = tsV.As<Napi::Boolean>().Value();
    }
    family_ = AF_PACKET;
    what_ = "packet socket, ifindex " + std::to_string(ifindex) + ", protocol 0x" + Hex(protocol);

    Create(env, AF_PACKET, 0);
    if (timestamps) SetInt(env, SOL_SOCKET, SO_TIMESTAMPNS, 1, "SO_TIMESTAMPNS");
    SetBuffers(env, bufs);
    sockaddr_ll sll;
    std::memset(&sll, 0, sizeof(sll));
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(static_cast<uint16_t>(protocol));
    sll.sll_ifindex = static_cast<int>(ifindex);
    Bind(env, &sll, sizeof(sll));
  }

  // netlink: protocol (NETLINK_ROUTE = 0, ...), groups (the nl_groups bitmask to listen to),
  // options { recvBufferSize, recvBufferForce }. Receive only: for listening to notifications.
  void OpenNetlink(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* sc = "socket";
    uint32_t protocol = ArgU32(info, 1, sc, "protocol");
    uint32_t groups = ArgU32(info, 2, sc, "groups");
    if (!info[3].IsObject()) ThrowInvalid(env, sc, "argument 4 (options) must be an object");
    Napi::Object o = info[3].As<Napi::Object>();
    BufferOptions bufs = ReadBufferOptions(o, sc);
    family_ = AF_NETLINK;
    what_ = "netlink socket, protocol " + std::to_string(protocol) + ", groups 0x" + Hex(groups);

    Create(env, AF_NETLINK, static_cast<int>(protocol));
    SetBuffers(env, bufs);
    sockaddr_nl snl;
    std::memset(&snl, 0, sizeof(snl));
    snl.nl_family = AF_NETLINK;
    snl.nl_groups = groups;
    Bind(env, &snl, sizeof(snl));
  }

  struct BufferOptions {
    bool hasRcv = false, hasForce = false;
    uint32_t rcv = 0, force = 0;
  };

  static BufferOptions ReadBufferOptions(Napi::Object o, const char* sc) {
    BufferOptions b;
    b.hasRcv = OptU32(o, "recvBufferSize", sc, &b.rcv);
    b.hasForce = OptU32(o, "recvBufferForce", sc, &b.force);
    return b;
  }

  void SetBuffers(Napi::Env env, const BufferOptions& b) {
    if (b.hasRcv) SetInt(env, SOL_SOCKET, SO_RCVBUF, static_cast<int>(b.rcv), "SO_RCVBUF");
    if (b.hasForce) SetInt(env, SOL_SOCKET, SO_RCVBUFFORCE, static_cast<int>(b.force), "SO_RCVBUFFORCE");
  }

  static std::string Hex(uint32_t v) {
    char b[16];
    std::snprintf(b, sizeof(b), "%04x", v);
    return b;
  }

  int LiveFd(Napi::Env env, const char* syscall) {
    if (fd_ < 0) ThrowErrno(env, EBADF, syscall, what_ + " (closed)");
    return fd_;
  }

  Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }

  // start(callback): watch the fd; callback(err, message) per datagram. Again while started: the
  // callback is replaced.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = LiveFd(env, "uv_poll_start");
    if (!info[0].IsFunction()) ThrowInvalid(env, "uv_poll_start", "argument 1 (callback) must be a function");
    cb_ = Napi::Persistent(info[0].As<Napi::Function>());
    if (poll_) return env.Undefined();
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) ThrowErrno(env, EINVAL, "napi_get_uv_event_loop", what_);
    auto* p = new Poll();
    p->owner = this;
    int ret = uv_poll_init_socket(loop, &p->handle, fd);
    if (ret != 0) {
      delete p;  // uv_poll_init failed: the handle was never registered with the loop
      cb_.Reset();
      ThrowErrno(env, -ret, "uv_poll_init", what_);
    }
    p->handle.data = p;
    ret = uv_poll_start(&p->handle, UV_READABLE, PollCb);
    Ref();  // released when the handle is closed
    poll_ = p;
    if (ret != 0) {
      ClosePoll();
      cb_.Reset();
      ThrowErrno(env, -ret, "uv_poll_start", what_);
    }
    return env.Undefined();
  }

  static void PollCb(uv_poll_t* h, int status, int) {
    auto* poll = static_cast<Poll*>(h->data);
    poll->owner->OnReadable(poll, status);
  }

  void ClosePoll() {
    if (!poll_) return;
    Poll* p = poll_;
    poll_ = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&p->handle), [](uv_handle_t* h) {
      auto* poll = static_cast<Poll*>(h->data);
      poll->owner->OnPollClosed(poll);
    });
  }

  // stop(): no more callbacks (also from within one). Idempotent.
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    ClosePoll();
    cb_.Reset();
    return info.Env().Undefined();
  }

  // close(): stop, then close the fd. Idempotent; afterwards every other call throws EBADF.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    ClosePoll();
    cb_.Reset();
    if (fd_ >= 0) {
      int fd = fd_;
      fd_ = -1;
      // EINTR: on Linux the fd is released even then (see closeFd in pin.cc)
      if (close(fd) != 0) {
        int err = errno;
        if (err != EINTR) ThrowErrno(info.Env(), err, "close", what_);
      }
    }
    return info.Env().Undefined();
  }

  void Deliver(Poll* p, Napi::Value err, Napi::Value msg) {
    if (poll_ != p || cb_.IsEmpty()) return;
    Napi::Env env = Env();
    try {
      cb_.MakeCallback(Value(), {err, msg});
    } catch (const Napi::Error& e) {
      // An exception from the callback has no JS caller to go to: it is the process's uncaught
      // exception, as for any event-loop callback.
      napi_fatal_exception(env, e.Value());
    }
  }

  // One recvmsg. Sets *err (EAGAIN when there is nothing) and returns undefined, or the message.
  Napi::Value ReadOne(Napi::Env env, int* err) {
    if (buf_.empty()) buf_.resize(kBufSize);
    sockaddr_storage from;
    std::memset(&from, 0, sizeof(from));
    alignas(cmsghdr) char control[256];
    iovec iov{buf_.data(), buf_.size()};
    msghdr mh;
    std::memset(&mh, 0, sizeof(mh));
    mh.msg_name = &from;
    mh.msg_namelen = sizeof(from);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof(control);
    ssize_t n;
    do {
      n = recvmsg(fd_, &mh, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      *err = errno;
      return env.Undefined();
    }
    size_t len = static_cast<size_t>(n) < buf_.size() ? static_cast<size_t>(n) : buf_.size();
    Napi::Object m = Napi::Object::New(env);
    m.Set("data", Napi::Buffer<uint8_t>::Copy(env, buf_.data(), len));
    m.Set("truncated", Napi::Boolean::New(env, (mh.msg_flags & MSG_TRUNC) != 0));
    if (family_ == AF_NETLINK) {
      auto* snl = reinterpret_cast<sockaddr_nl*>(&from);
      m.Set("portId", Napi::Number::New(env, snl->nl_pid));
      m.Set("groups", Napi::Number::New(env, snl->nl_groups));
      return m;
    }
    if (family_ == AF_PACKET) {
      auto* sll = reinterpret_cast<sockaddr_ll*>(&from);
      m.Set("ifindex", Napi::Number::New(env, sll->sll_ifindex));
      m.Set("protocol", Napi::Number::New(env, ntohs(sll->sll_protocol)));
      m.Set("pktType", Napi::Number::New(env, sll->sll_pkttype));
      Napi::Value ts = env.Null();
      for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
          timespec t;
          std::memcpy(&t, CMSG_DATA(c), sizeof(t));
          uint64_t ns = static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
          ts = Napi::BigInt::New(env, ns);
        }
      }
      m.Set("timestampNs", ts);
      return m;
    }
    int hop = -1, ifindex = 0;
    Napi::Value dst = env.Null();
    Napi::Value src = env.Null();
    if (family_ == AF_INET) {
      auto* sin = reinterpret_cast<sockaddr_in*>(&from);
      src = Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<uint8_t*>(&sin->sin_addr), 4);
      for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != IPPROTO_IP) continue;
        if (c->cmsg_type == IP_TTL) {
          std::memcpy(&hop, CMSG_DATA(c), sizeof(hop));
        } else if (c->cmsg_type == IP_PKTINFO) {
          in_pktinfo pi;
          std::memcpy(&pi, CMSG_DATA(c), sizeof(pi));
          ifindex = pi.ipi_ifindex;
          dst = Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<uint8_t*>(&pi.ipi_addr), 4);
        }
      }
    } else {
      auto* sin6 = reinterpret_cast<sockaddr_in6*>(&from);
      src = Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<uint8_t*>(&sin6->sin6_addr), 16);
      for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != IPPROTO_IPV6) continue;
        if (c->cmsg_type == IPV6_HOPLIMIT) {
          std::memcpy(&hop, CMSG_DATA(c), sizeof(hop));
        } else if (c->cmsg_type == IPV6_PKTINFO) {
          in6_pktinfo pi;
          std::memcpy(&pi, CMSG_DATA(c), sizeof(pi));
          ifindex = static_cast<int>(pi.ipi6_ifindex);
          dst = Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<uint8_t*>(&pi.ipi6_addr), 16);
        }
      }
    }
    m.Set("src", src);
    m.Set("dst", dst);
    m.Set("ifindex", Napi::Number::New(env, ifindex));
    m.Set("hopLimit", Napi::Number::New(env, hop));
    return m;
  }

  // sendTo(data, dst, src | null, ifindex): IP sockets. dst and src are 4 (IPv4) or 16 (IPv6)
  // bytes. src and a non-zero ifindex go in an IP_PKTINFO / IPV6_PKTINFO control message (source
  // address and outgoing interface); for IPv6 the ifindex is also the destination's scope id.
  Napi::Value SendTo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* sc = "sendmsg";
    int fd = LiveFd(env, sc);
    if (family_ != AF_INET && family_ != AF_INET6) ThrowInvalid(env, sc, "sendTo() is for IP sockets");
    Napi::Buffer<uint8_t> data = ArgBuffer(info, 0, sc, "data");
    Napi::Buffer<uint8_t> dst = ArgBuffer(info, 1, sc, "dst");
    Napi::Buffer<uint8_t> src;
    bool hasSrc = ArgOptBuffer(info, 2, sc, "src", &src);
    uint32_t ifindex = ArgU32(info, 3, sc, "ifindex");
    size_t alen = family_ == AF_INET ? 4 : 16;
    if (dst.Length() != alen) ThrowInvalid(env, sc, "argument 2 (dst) must be " + std::to_string(alen) + " bytes");
    if (hasSrc && src.Length() != alen) ThrowInvalid(env, sc, "argument 3 (src) must be " + std::to_string(alen) + " bytes");

    sockaddr_storage to;
    std::memset(&to, 0, sizeof(to));
    socklen_t tolen;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in6_pktinfo))];
    std::memset(control, 0, sizeof(control));
    msghdr mh;
    std::memset(&mh, 0, sizeof(mh));
    bool pktinfo = hasSrc || ifindex != 0;
    if (family_ == AF_INET) {
      auto* sin = reinterpret_cast<sockaddr_in*>(&to);
      sin->sin_family = AF_INET;
      std::memcpy(&sin->sin_addr, dst.Data(), 4);
      tolen = sizeof(*sin);
      if (pktinfo) {
        mh.msg_control = control;
        mh.msg_controllen = CMSG_SPACE(sizeof(in_pktinfo));
        cmsghdr* c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
        in_pktinfo pi;
        std::memset(&pi, 0, sizeof(pi));
        pi.ipi_ifindex = static_cast<int>(ifindex);
        if (hasSrc) std::memcpy(&pi.ipi_spec_dst, src.Data(), 4);
        std::memcpy(CMSG_DATA(c), &pi, sizeof(pi));
      }
    } else {
      auto* sin6 = reinterpret_cast<sockaddr_in6*>(&to);
      sin6->sin6_family = AF_INET6;
      std::memcpy(&sin6->sin6_addr, dst.Data(), 16);
      sin6->sin6_scope_id = ifindex;
      tolen = sizeof(*sin6);
      if (pktinfo) {
        mh.msg_control = control;
        mh.msg_controllen = CMSG_SPACE(sizeof(in6_pktinfo));
        cmsghdr* c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
        in6_pktinfo pi;
        std::memset(&pi, 0, sizeof(pi));
        pi.ipi6_ifindex = ifindex;
        if (hasSrc) std::memcpy(&pi.ipi6_addr, src.Data(), 16);
        std::memcpy(CMSG_DATA(c), &pi, sizeof(pi));
      }
    }
    iovec iov{data.Data(), data.Length()};
    mh.msg_name = &to;
    mh.msg_namelen = tolen;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    ssize_t n;
    do {
      n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      int err = errno;
      ThrowErrno(env, err, sc, what_);
    }
    return env.Undefined();
  }

  // send(frame): packet sockets; the frame (from its Ethernet header on) leaves on the bound
  // interface as it is.
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* sc = "send";
    int fd = LiveFd(env, sc);
    if (family_ != AF_PACKET) ThrowInvalid(env, sc, "send() is for packet sockets; an IP socket has sendTo()");
    Napi::Buffer<uint8_t> frame = ArgBuffer(info, 0, sc, "frame");
    ssize_t n;
    do {
      n = send(fd, frame.Data(), frame.Length(), MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      int err = errno;
      ThrowErrno(env, err, sc, what_);
    }
    return env.Undefined();
  }

  // joinGroup(group, ifindex) / leaveGroup(group, ifindex): IP_ADD/DROP_MEMBERSHIP (ip_mreqn) or
  // IPV6_ADD/DROP_MEMBERSHIP (ipv6_mreq) on that interface.
  Napi::Value Membership(const Napi::CallbackInfo& info, bool join) {
    Napi::Env env = info.Env();
    const char* sc = "setsockopt";
    int fd = LiveFd(env, sc);
    if (family_ != AF_INET && family_ != AF_INET6) ThrowInvalid(env, sc, "multicast groups are for IP sockets");
    Napi::Buffer<uint8_t> group = ArgBuffer(info, 0, sc, "group");
    uint32_t ifindex = ArgU32(info, 1, sc, "ifindex");
    int ret;
    const char* opt;
    if (family_ == AF_INET) {
      if (group.Length() != 4) ThrowInvalid(env, sc, "argument 1 (group) must be 4 bytes");
      ip_mreqn m;
      std::memset(&m, 0, sizeof(m));
      std::memcpy(&m.imr_multiaddr, group.Data(), 4);
      m.imr_ifindex = static_cast<int>(ifindex);
      opt = join ? "IP_ADD_MEMBERSHIP" : "IP_DROP_MEMBERSHIP";
      ret = setsockopt(fd, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &m, sizeof(m));
    } else {
      if (group.Length() != 16) ThrowInvalid(env, sc, "argument 1 (group) must be 16 bytes");
      ipv6_mreq m;
      std::memset(&m, 0, sizeof(m));
      std::memcpy(&m.ipv6mr_multiaddr, group.Data(), 16);
      m.ipv6mr_interface = ifindex;
      opt = join ? "IPV6_ADD_MEMBERSHIP" : "IPV6_DROP_MEMBERSHIP";
      ret = setsockopt(fd, IPPROTO_IPV6, join ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP, &m, sizeof(m));
    }
    int err = errno;
    if (ret != 0) ThrowErrno(env, err, sc, std::string(opt) + " on ifindex " + std::to_string(ifindex) + ", " + what_);
    return env.Undefined();
  }

  Napi::Value Join(const Napi::CallbackInfo& info) { return Membership(info, true); }
  Napi::Value Leave(const Napi::CallbackInfo& info) { return Membership(info, false); }

  int fd_ = -1;
  int family_ = AF_UNSPEC;
  std::string what_;
  Poll* poll_ = nullptr;
  Napi::FunctionReference cb_;
  std::vector<uint8_t> buf_;
};

}  // namespace

void InitSocket(Napi::Env env, Napi::Object exports) { NativeSocket::Init(env, exports); }

}  // namespace xlb
