// Process-level calls JavaScript has no way to make: child-subreaper status (so a test
// runner can find the orphans its tests leave behind), the calling thread's id (the
// attach lock of an ipckit object names the thread that holds it), and malloc_trim (so the
// leak cycles can tell memory still held from freed memory the allocator kept).
#include "addon.h"

#include <malloc.h>
#include <sys/prctl.h>
#include <unistd.h>

namespace ipckit {
namespace {

Napi::Value SetChildSubreaper(const Napi::CallbackInfo& info) {
  if (prctl(PR_SET_CHILD_SUBREAPER, info[0].ToBoolean() ? 1 : 0, 0, 0, 0) != 0) ThrowErrno(info.Env(), "prctl(PR_SET_CHILD_SUBREAPER)");
  return info.Env().Undefined();
}

// gettid(): the id of the calling thread (the main thread's is the pid).
Napi::Value Gettid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(gettid())); }

// mallocTrim(): glibc's malloc_trim(0), giving freed heap memory back to the system.
Napi::Value MallocTrim(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0); }

}  // namespace

void InitProcess(Napi::Env env, Napi::Object exports) {
  exports.Set("setChildSubreaper", Napi::Function::New(env, SetChildSubreaper, "setChildSubreaper"));
  exports.Set("gettid", Napi::Function::New(env, Gettid, "gettid"));
  exports.Set("mallocTrim", Napi::Function::New(env, MallocTrim, "mallocTrim"));
}

}  // namespace ipckit
