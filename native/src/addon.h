// Entry points of each part of the addon; addon.cc calls them all from the module's Init.
#pragma once

#include <napi.h>

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

void InitErrors(Napi::Env env, Napi::Object exports);
void InitObject(Napi::Env env, Napi::Object exports);   // object.cc: openObject
void InitMaps(Napi::Env env, Napi::Object exports);     // maps.cc:   map* functions
void InitProg(Napi::Env env, Napi::Object exports);     // prog.cc:   progInfo, progTestRun, numPossibleCpus
void InitLink(Napi::Env env, Napi::Object exports);     // link.cc:   xdp*, tc*
void InitPin(Napi::Env env, Napi::Object exports);      // pin.cc:    objPin, objGet, closeFd

}  // namespace xlb
