// xlb_native: the privileged mechanism of xlb over libbpf. See ../README.md.
#include "addon.h"

namespace xlb {

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitErrors(env, exports);
  InitObject(env, exports);
  InitMaps(env, exports);
  InitProg(env, exports);
  InitLink(env, exports);
  InitPin(env, exports);
  InitSocket(env, exports);
  InitTcp(env, exports);
  InitNetns(env, exports);
  return exports;
}

}  // namespace xlb

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return xlb::Init(env, exports); }

NODE_API_MODULE(xlb_native, InitAddon)
