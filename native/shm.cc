// shm: the shm system calls (filled in by the shm work; empty until then).
#include "addon.h"

namespace ipckit {

void InitShm(Napi::Env env, Napi::Object exports) {}

}  // namespace ipckit
