// signal: the signal system calls (filled in by the signal work; empty until then).
#include "addon.h"

namespace ipckit {

void InitSignal(Napi::Env env, Napi::Object exports) {}

}  // namespace ipckit
