// Programs by fd: info and BPF_PROG_TEST_RUN; the number of possible CPUs.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "addon.h"
#include "errors.h"

namespace xlb {

namespace {

// progInfo(fd) -> { name, type, id }
Napi::Value ProgInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "bpf_obj_get_info_by_fd";
  int fd = ArgFd(info, 0, sc);
  bpf_prog_info pi;
  int ret = InfoByFd(fd, &pi);
  if (ret) ThrowErrno(env, ErrOf(ret), sc, "fd " + std::to_string(fd));
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", std::string(pi.name, strnlen(pi.name, sizeof(pi.name))));
  o.Set("type", static_cast<double>(pi.type));
  o.Set("id", static_cast<double>(pi.id));
  return o;
}

// progTestRun(fd, { data, dataSizeOut?, ctx?, ctxSizeOut?, repeat?, flags?, cpu?, batchSize? })
//   -> { retval, data, ctx, duration }
// The packet and the context out are asked for only when dataSizeOut / ctxSizeOut (absent: 0)
// give them room; without it data comes back empty and ctx null. Defaults are the caller's.
Napi::Value ProgTestRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* sc = "bpf_prog_test_run_opts";
  int fd = ArgFd(info, 0, sc);
  if (!info[1].IsObject()) ThrowInvalid(env, sc, "argument 2 (options) must be an object");
  Napi::Object o = info[1].As<Napi::Object>();

  Napi::Buffer<uint8_t> data, ctx;
  if (!OptBuffer(o, "data", sc, &data)) ThrowInvalid(env, sc, "option 'data' (the packet) is required");
  bool hasCtx = OptBuffer(o, "ctx", sc, &ctx);
  uint32_t flags = 0, repeat = 1, cpu = 0, batchSize = 0;
  OptU32(o, "flags", sc, &flags);
  OptU32(o, "repeat", sc, &repeat);
  OptU32(o, "cpu", sc, &cpu);
  OptU32(o, "batchSize", sc, &batchSize);
  uint32_t dataSizeOut = 0, ctxSizeOut = 0;
  OptU32(o, "dataSizeOut", sc, &dataSizeOut);
  OptU32(o, "ctxSizeOut", sc, &ctxSizeOut);

  std::vector<uint8_t> dataOut(dataSizeOut), ctxOut(ctxSizeOut);
  auto opts = Opts<bpf_test_run_opts>();
  opts.data_in = data.Length() ? data.Data() : nullptr;
  opts.data_size_in = static_cast<uint32_t>(data.Length());
  if (dataSizeOut) {
    opts.data_out = dataOut.data();
    opts.data_size_out = dataSizeOut;
  }
  if (hasCtx) {
    opts.ctx_in = ctx.Length() ? ctx.Data() : nullptr;
    opts.ctx_size_in = static_cast<uint32_t>(ctx.Length());
  }
  if (ctxSizeOut) {
    opts.ctx_out = ctxOut.data();
    opts.ctx_size_out = ctxSizeOut;
  }
  opts.repeat = static_cast<int>(repeat);
  opts.flags = flags;
  opts.cpu = cpu;
  opts.batch_size = batchSize;

  int ret = bpf_prog_test_run_opts(fd, &opts);
  if (ret) ThrowErrno(env, ErrOf(ret), sc, "fd " + std::to_string(fd));

  Napi::Object r = Napi::Object::New(env);
  r.Set("retval", Napi::Number::New(env, opts.retval));
  size_t outLen = dataSizeOut ? std::min<size_t>(opts.data_size_out, dataSizeOut) : 0;
  r.Set("data", Napi::Buffer<uint8_t>::Copy(env, dataOut.data(), outLen));
  if (ctxSizeOut) {
    size_t ctxLen = std::min<size_t>(opts.ctx_size_out, ctxSizeOut);
    r.Set("ctx", Napi::Buffer<uint8_t>::Copy(env, ctxOut.data(), ctxLen));
  } else {
    r.Set("ctx", env.Null());
  }
  r.Set("duration", Napi::Number::New(env, opts.duration));
  return r;
}

Napi::Value NumPossibleCpus(const Napi::CallbackInfo& info) {
  int n = libbpf_num_possible_cpus();
  if (n <= 0) ThrowErrno(info.Env(), ErrOf(n), "libbpf_num_possible_cpus");
  return Napi::Number::New(info.Env(), n);
}

}  // namespace

void InitProg(Napi::Env env, Napi::Object exports) {
  exports.Set("progInfo", Napi::Function::New<ProgInfo>(env, "progInfo"));
  exports.Set("progTestRun", Napi::Function::New<ProgTestRun>(env, "progTestRun"));
  exports.Set("numPossibleCpus", Napi::Function::New<NumPossibleCpus>(env, "numPossibleCpus"));
}

}  // namespace xlb
