// futex: the futex system calls (filled in by the futex work; empty until then).
#include "addon.h"

namespace ipckit {

void InitFutex(Napi::Env env, Napi::Object exports) {}

}  // namespace ipckit
