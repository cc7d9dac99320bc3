// mqueue: the mqueue system calls (filled in by the mqueue work; empty until then).
#include "addon.h"

namespace ipckit {

void InitMqueue(Napi::Env env, Napi::Object exports) {}

}  // namespace ipckit
