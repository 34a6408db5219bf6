// Errors and argument helpers shared by every part of the addon.
//
// Every failure leaves the addon as a JS Error with
//   code    the errno name ('EPERM', 'ENOENT', ...)
//   errno   the positive errno number
//   syscall the libbpf function or system call that failed ('bpf_map_lookup_elem', ...)
// Argument errors (a wrong JS type, a buffer whose length does not fit the map) are EINVAL,
// named after the call they would have been passed to.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace xlb {

// The errno name of `err` (positive), e.g. "EPERM"; "E<number>" when it has none.
std::string ErrnoName(int err);

// Build the Error described above. `detail` names the object of the call (a path, a map name,
// an fd); `extra` is appended after a newline (e.g. the tail of the libbpf log).
Napi::Error MakeErrno(Napi::Env env, int err, const std::string& syscall,
                      const std::string& detail = "", const std::string& extra = "");

[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& syscall,
                             const std::string& detail = "", const std::string& extra = "");

// An argument error: EINVAL with a message that says what is wrong.
[[noreturn]] void ThrowInvalid(Napi::Env env, const std::string& syscall, const std::string& message);

// The positive errno of a failed libbpf call: libbpf 1.x returns -errno and also sets errno.
inline int ErrOf(long ret) { return ret < 0 ? static_cast<int>(-ret) : (errno > 0 ? errno : EINVAL); }

// libbpf's print callback: silent by default; warnings and info are kept (the last lines) so a
// failed open or load can say why. XLB_LIBBPF_DEBUG=1 in the environment also prints every line,
// debug included, to stderr.
void InstallLibbpfPrint();
void LibbpfLogClear();
std::string LibbpfLogTail(size_t lines);

// Argument readers: type-check argument i and throw EINVAL (named after `syscall`) otherwise.
int32_t ArgFd(const Napi::CallbackInfo& info, size_t i, const char* syscall);
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* syscall, const char* what);
uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* syscall, const char* what);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* syscall, const char* what);
Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* syscall, const char* what);
// A Buffer, or null/undefined (returns false, leaves `out` alone).
bool ArgOptBuffer(const Napi::CallbackInfo& info, size_t i, const char* syscall, const char* what,
                  Napi::Buffer<uint8_t>* out);

// Same checks for a property of an options object.
bool OptU32(Napi::Object o, const char* key, const char* syscall, uint32_t* out);
bool OptBuffer(Napi::Object o, const char* key, const char* syscall, Napi::Buffer<uint8_t>* out);

void InitErrors(Napi::Env env, Napi::Object exports);

}  // namespace xlb
