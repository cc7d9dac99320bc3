// Process-level calls JavaScript has no way to make: child-subreaper status (so a test
// runner can find the orphans its tests leave behind) and the process's start time
// (kept with a pid to tell a live owner from a reused pid).
#include "addon.h"

#include <sys/prctl.h>

namespace ipckit {
namespace {

Napi::Value SetChildSubreaper(const Napi::CallbackInfo& info) {
  if (prctl(PR_SET_CHILD_SUBREAPER, info[0].ToBoolean() ? 1 : 0, 0, 0, 0) != 0) ThrowErrno(info.Env(), "prctl(PR_SET_CHILD_SUBREAPER)");
  return info.Env().Undefined();
}

}  // namespace

void InitProcess(Napi::Env env, Napi::Object exports) {
  exports.Set("setChildSubreaper", Napi::Function::New(env, SetChildSubreaper, "setChildSubreaper"));
}

}  // namespace ipckit
