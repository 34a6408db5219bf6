// Attaching programs to interfaces (in the caller's network namespace): XDP over netlink
// (bpf_xdp_attach / bpf_xdp_detach / bpf_xdp_query) and TC on a clsact qdisc
// (bpf_tc_hook_create, which may find the qdisc there already, then bpf_tc_attach / _detach / _query).
// Also an interface's Ethernet address (SIOCGIFNAME, SIOCGIFHWADDR), synchronously, for what the
// XDP forwarder needs to know of the interfaces it is attached to.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "addon.h"
#include "errors.h"

namespace xlb {

namespace {

std::string If(int ifindex) { return "ifindex " + std::to_string(ifindex); }

// xdpAttach(ifindex, progFd, flags)
Napi::Value XdpAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "bpf_xdp_attach";
  int ifindex = ArgFd(info, 0, sc);
  int progFd = ArgFd(info, 1, sc);
  uint32_t flags = ArgU32(info, 2, sc, "flags");
  int ret = bpf_xdp_attach(ifindex, progFd, flags, nullptr);
  if (ret) ThrowErrno(env, ErrOf(ret), sc, If(ifindex) + ", prog fd " + std::to_string(progFd));
  return env.Undefined();
}

// xdpDetach(ifindex, flags)
Napi::Value XdpDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "bpf_xdp_detach";
  int ifindex = ArgFd(info, 0, sc);
  uint32_t flags = ArgU32(info, 1, sc, "flags");
  int ret = bpf_xdp_detach(ifindex, flags, nullptr);
  if (ret) ThrowErrno(env, ErrOf(ret), sc, If(ifindex));
  return env.Undefined();
}

// xdpQuery(ifindex) -> { mode, progId, skbProgId, drvProgId, hwProgId }
Napi::Value XdpQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "bpf_xdp_query";
  int ifindex = ArgFd(info, 0, sc);
  auto opts = Opts<bpf_xdp_query_opts>();
  int ret = bpf_xdp_query(ifindex, 0, &opts);
  if (ret) ThrowErrno(env, ErrOf(ret), sc, If(ifindex));
  Napi::Object o = Napi::Object::New(env);
  o.Set("mode", Napi::Number::New(env, opts.attach_mode));
  o.Set("progId", Napi::Number::New(env, opts.prog_id));
  o.Set("skbProgId", Napi::Number::New(env, opts.skb_prog_id));
  o.Set("drvProgId", Napi::Number::New(env, opts.drv_prog_id));
  o.Set("hwProgId", Napi::Number::New(env, opts.hw_prog_id));
  return o;
}

// ifHwAddr(ifindex) -> Buffer of 6 bytes, or null when the interface is not Ethernet (ARPHRD_ETHER)
Napi::Value IfHwAddr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = ArgFd(info, 0, "ioctl");
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket", "for " + If(ifindex));
  ifreq ifr;
  std::memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_ifindex = ifindex;
  const char* step = "SIOCGIFNAME";
  int ret = ioctl(fd, SIOCGIFNAME, &ifr);
  if (ret == 0) {
    step = "SIOCGIFHWADDR";
    ret = ioctl(fd, SIOCGIFHWADDR, &ifr);
  }
  int err = errno;
  close(fd);
  if (ret != 0) ThrowErrno(env, err, "ioctl", std::string(step) + ", " + If(ifindex));
  if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) return env.Null();
  return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(ifr.ifr_hwaddr.sa_data), 6);
}

bpf_tc_hook Hook(const Napi::CallbackInfo& info, const char* sc) {
  auto hook = Opts<bpf_tc_hook>();
  hook.ifindex = ArgFd(info, 0, sc);
  std::string dir = ArgString(info, 1, sc, "direction");
  if (dir == "ingress") {
    hook.attach_point = BPF_TC_INGRESS;
  } else if (dir == "egress") {
    hook.attach_point = BPF_TC_EGRESS;
  } else {
    ThrowInvalid(info.Env(), sc, "argument 2 (direction) must be 'ingress' or 'egress', not '" + dir + "'");
  }
  return hook;
}

// bpf_tc_opts with the handle and priority given as arguments `first` and `first + 1`.
bpf_tc_opts FilterOpts(const Napi::CallbackInfo& info, size_t first, const char* sc) {
  auto opts = Opts<bpf_tc_opts>();
  opts.handle = ArgU32(info, first, sc, "handle");
  opts.priority = ArgU32(info, first + 1, sc, "priority");
  return opts;
}

std::string Where(const bpf_tc_hook& hook, const bpf_tc_opts& opts) {
  return If(hook.ifindex) + (hook.attach_point == BPF_TC_INGRESS ? " ingress" : " egress") + ", handle " +
         std::to_string(opts.handle) + ", priority " + std::to_string(opts.priority);
}

// tcAttach(ifindex, direction, progFd, handle, priority): no replace, EEXIST if taken
Napi::Value TcAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "bpf_tc_attach";
  bpf_tc_hook hook = Hook(info, sc);
  int progFd = ArgFd(info, 2, sc);
  bpf_tc_opts opts = FilterOpts(info, 3, sc);
  int ret = bpf_tc_hook_create(&hook);
  if (ret && ErrOf(ret) != EEXIST) ThrowErrno(env, ErrOf(ret), "bpf_tc_hook_create", If(hook.ifindex) + " clsact");
  opts.prog_fd = progFd;
  std::string where = Where(hook, opts);
  ret = bpf_tc_attach(&hook, &opts);
  if (ret) ThrowErrno(env, ErrOf(ret), sc, where);
  return env.Undefined();
}

// tcDetach(ifindex, direction, handle, priority)
Napi::Value TcDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "bpf_tc_detach";
  bpf_tc_hook hook = Hook(info, sc);
  bpf_tc_opts opts = FilterOpts(info, 2, sc);
  int ret = bpf_tc_detach(&hook, &opts);
  if (ret) ThrowErrno(env, ErrOf(ret), sc, Where(hook, opts));
  return env.Undefined();
}

// tcQuery(ifindex, direction, handle, priority) -> prog id, 0 if there is no such filter (ENOENT).
// Without a clsact qdisc on the interface the kernel says EINVAL, which is thrown like any error.
Napi::Value TcQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "bpf_tc_query";
  bpf_tc_hook hook = Hook(info, sc);
  bpf_tc_opts opts = FilterOpts(info, 2, sc);
  std::string where = Where(hook, opts);
  int ret = bpf_tc_query(&hook, &opts);
  if (ret) {
    int err = ErrOf(ret);
    if (err == ENOENT) return Napi::Number::New(env, 0);
    ThrowErrno(env, err, sc, where);
  }
  return Napi::Number::New(env, opts.prog_id);
}

}  // namespace

void InitLink(Napi::Env env, Napi::Object exports) {
  exports.Set("xdpAttach", Napi::Function::New<XdpAttach>(env, "xdpAttach"));
  exports.Set("xdpDetach", Napi::Function::New<XdpDetach>(env, "xdpDetach"));
  exports.Set("xdpQuery", Napi::Function::New<XdpQuery>(env, "xdpQuery"));
  exports.Set("ifHwAddr", Napi::Function::New<IfHwAddr>(env, "ifHwAddr"));
  exports.Set("tcAttach", Napi::Function::New<TcAttach>(env, "tcAttach"));
  exports.Set("tcDetach", Napi::Function::New<TcDetach>(env, "tcDetach"));
  exports.Set("tcQuery", Napi::Function::New<TcQuery>(env, "tcQuery"));
}

}  // namespace xlb
