// socket: the socket system calls (filled in by the socket work; empty until then).
#include "addon.h"

namespace ipckit {

void InitSocket(Napi::Env env, Napi::Object exports) {}

}  // namespace ipckit
