// mutex: the mutex system calls (filled in by the mutex work; empty until then).
#include "addon.h"

namespace ipckit {

void InitMutex(Napi::Env env, Napi::Object exports) {}

}  // namespace ipckit
