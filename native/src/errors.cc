#include "errors.h"

#include <bpf/libbpf.h>

#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>

namespace xlb {

std::string ErrnoName(int err) {
  // Kernel-internal codes that leak to user space and that glibc does not name.
  switch (err) {
    case 512: return "ERESTARTSYS";
    case 524: return "ENOTSUPP";
    default: break;
  }
  const char* name = strerrorname_np(err);
  if (name) return name;
  return "E" + std::to_string(err);
}

static std::string Describe(int err) {
  if (err == 524) return "Operation not supported";
  return std::strerror(err);
}

Napi::Error MakeErrno(Napi::Env env, int err, const std::string& syscall, const std::string& detail,
                      const std::string& extra) {
  std::string msg = syscall;
  if (!detail.empty()) msg += "(" + detail + ")";
  msg += ": " + Describe(err) + " (" + ErrnoName(err) + ")";
  if (!extra.empty()) msg += "\n" + extra;
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

void ThrowErrno(Napi::Env env, int err, const std::string& syscall, const std::string& detail,
                const std::string& extra) {
  throw MakeErrno(env, err, syscall, detail, extra);
}

void ThrowInvalid(Napi::Env env, const std::string& syscall, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, syscall + ": " + message);
  e.Set("code", Napi::String::New(env, "EINVAL"));
  e.Set("errno", Napi::Number::New(env, EINVAL));
  e.Set("syscall", Napi::String::New(env, syscall));
  throw e;
}

// ------------------------------------------------------------------ libbpf log

namespace {

constexpr size_t kKeepLines = 400;

struct LibbpfLog {
  std::mutex mu;
  std::deque<std::string> lines;
  std::string partial;  // text after the last newline, waiting for the rest of its line
  bool echo = false;
};

LibbpfLog& Log() {
  static LibbpfLog* log = new LibbpfLog();  // never destroyed: libbpf may print during exit
  return *log;
}

int PrintFn(enum libbpf_print_level level, const char* fmt, va_list args) {
  LibbpfLog& log = Log();
  if (level == LIBBPF_DEBUG && !log.echo) return 0;  // debug lines are only ever echoed, never kept
  va_list copy;
  va_copy(copy, args);
  int n = std::vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  if (n <= 0) return 0;
  std::string text(static_cast<size_t>(n) + 1, '\0');
  std::vsnprintf(&text[0], text.size(), fmt, args);
  text.resize(static_cast<size_t>(n));
  if (log.echo) std::fputs(text.c_str(), stderr);
  if (level == LIBBPF_DEBUG) return 0;

  std::lock_guard<std::mutex> lock(log.mu);
  std::string all = log.partial + text;
  size_t start = 0;
  for (size_t nl; (nl = all.find('\n', start)) != std::string::npos; start = nl + 1) {
    log.lines.emplace_back(all, start, nl - start);
    if (log.lines.size() > kKeepLines) log.lines.pop_front();
  }
  log.partial = all.substr(start);
  return 0;
}

}  // namespace

void InstallLibbpfPrint() {
  const char* debug = std::getenv("XLB_LIBBPF_DEBUG");
  Log().echo = debug && *debug && std::strcmp(debug, "0") != 0;
  libbpf_set_print(PrintFn);
}

void LibbpfLogClear() {
  LibbpfLog& log = Log();
  std::lock_guard<std::mutex> lock(log.mu);
  log.lines.clear();
  log.partial.clear();
}

std::string LibbpfLogTail(size_t n) {
  LibbpfLog& log = Log();
  std::lock_guard<std::mutex> lock(log.mu);
  std::deque<std::string> all = log.lines;
  if (!log.partial.empty()) all.push_back(log.partial);
  size_t from = all.size() > n ? all.size() - n : 0;
  std::string out;
  for (size_t i = from; i < all.size(); i++) {
    out += all[i];
    if (i + 1 < all.size()) out += "\n";
  }
  return out;
}

// ------------------------------------------------------------------ arguments

static std::string Nth(size_t i) { return "argument " + std::to_string(i + 1); }

static bool IsInteger(const Napi::Value& v, double lo, double hi, double* out) {
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d || d < lo || d > hi) return false;
  *out = d;
  return true;
}

int32_t ArgFd(const Napi::CallbackInfo& info, size_t i, const char* syscall) {
  double d;
  if (!IsInteger(info[i], INT32_MIN, INT32_MAX, &d)) ThrowInvalid(info.Env(), syscall, Nth(i) + " (fd) must be an integer");
  return static_cast<int32_t>(d);
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* syscall, const char* what) {
  double d;
  if (!IsInteger(info[i], 0, UINT32_MAX, &d)) {
    ThrowInvalid(info.Env(), syscall, Nth(i) + " (" + what + ") must be an integer in 0..2^32-1");
  }
  return static_cast<uint32_t>(d);
}

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* syscall, const char* what) {
  double d;
  if (!IsInteger(info[i], 0, 9007199254740991.0, &d)) {
    ThrowInvalid(info.Env(), syscall, Nth(i) + " (" + what + ") must be a non-negative safe integer");
  }
  return static_cast<uint64_t>(d);
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* syscall, const char* what) {
  if (!info[i].IsString()) ThrowInvalid(info.Env(), syscall, Nth(i) + " (" + what + ") must be a string");
  std::string s = info[i].As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) ThrowInvalid(info.Env(), syscall, Nth(i) + " (" + what + ") contains a NUL byte");
  return s;
}

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* syscall, const char* what) {
  if (!info[i].IsBuffer()) ThrowInvalid(info.Env(), syscall, Nth(i) + " (" + what + ") must be a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

bool ArgOptBuffer(const Napi::CallbackInfo& info, size_t i, const char* syscall, const char* what,
                  Napi::Buffer<uint8_t>* out) {
  if (info[i].IsNull() || info[i].IsUndefined()) return false;
  *out = ArgBuffer(info, i, syscall, what);
  return true;
}

bool OptU32(Napi::Object o, const char* key, const char* syscall, uint32_t* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return false;
  double d;
  if (!IsInteger(v, 0, UINT32_MAX, &d)) {
    ThrowInvalid(o.Env(), syscall, std::string("option '") + key + "' must be an integer in 0..2^32-1");
  }
  *out = static_cast<uint32_t>(d);
  return true;
}

bool OptBuffer(Napi::Object o, const char* key, const char* syscall, Napi::Buffer<uint8_t>* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return false;
  if (!v.IsBuffer()) ThrowInvalid(o.Env(), syscall, std::string("option '") + key + "' must be a Buffer");
  *out = v.As<Napi::Buffer<uint8_t>>();
  return true;
}

void InitErrors(Napi::Env, Napi::Object) { InstallLibbpfPrint(); }

}  // namespace xlb
