// Entry points of each part of the addon; addon.cc calls them all from the module's Init.
#pragma once

#include <bpf/bpf.h>
#include <napi.h>

#include <cstdint>
#include <cstring>

namespace xlb {

// A zeroed libbpf options struct with its `sz` set (what LIBBPF_OPTS does in C).
template <typename T>
T Opts() {
  T o;
  std::memset(&o, 0, sizeof(o));
  o.sz = sizeof(o);
  return o;
}

// bpf_obj_get_info_by_fd into a zeroed bpf_map_info / bpf_prog_info / ...: 0, or libbpf's -errno.
template <typename Info>
int InfoByFd(int fd, Info* i) {
  std::memset(i, 0, sizeof(*i));
  uint32_t len = sizeof(*i);
  return bpf_obj_get_info_by_fd(fd, i, &len);
}

void InitErrors(Napi::Env env, Napi::Object exports);
void InitObject(Napi::Env env, Napi::Object exports);   // object.cc: openObject
void InitMaps(Napi::Env env, Napi::Object exports);     // maps.cc:   map* functions
void InitProg(Napi::Env env, Napi::Object exports);     // prog.cc:   progInfo, progTestRun, numPossibleCpus
void InitLink(Napi::Env env, Napi::Object exports);     // link.cc:   xdp*, tc*
void InitPin(Napi::Env env, Napi::Object exports);      // pin.cc:    objPin, objGet, closeFd
void InitSocket(Napi::Env env, Napi::Object exports);   // socket.cc: openIpSocket, openPacketSocket
void InitTcp(Napi::Env env, Napi::Object exports);      // tcp.cc:    openTcpProber
void InitNetns(Napi::Env env, Napi::Object exports);    // netns.cc:  netnsRun

}  // namespace xlb
