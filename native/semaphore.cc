// semaphore: the semaphore system calls (filled in by the semaphore work; empty until then).
#include "addon.h"

namespace ipckit {

void InitSemaphore(Napi::Env env, Napi::Object exports) {}

}  // namespace ipckit
