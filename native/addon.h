// Shared declarations of the ipckit addon. The addon is thin on purpose: it makes
// system calls and does what JavaScript cannot (fd polling, futexes, waiter threads,
// signal handlers); every policy lives in TypeScript (see src/os/native.ts).
#pragma once
#include <napi.h>

namespace ipckit {

// Builds the one kind of error the addon raises: a JS Error with `errno` (positive
// number) and `syscall`. src/core/errors.ts turns it into an IpcError.
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall);

// Throws ErrnoError for the current errno.
[[noreturn]] void ThrowErrno(Napi::Env env, const char* syscall);
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall);

// Argument helpers: TypeScript validates arguments before calling in, so these only
// guard against misuse from inside the package.
int ArgInt(const Napi::CallbackInfo& info, size_t i);
int64_t ArgInt64(const Napi::CallbackInfo& info, size_t i);
std::string ArgString(const Napi::CallbackInfo& info, size_t i);
// A view of a Uint8Array argument's bytes.
struct ByteView { uint8_t* data; size_t length; };
ByteView ArgBytes(const Napi::CallbackInfo& info, size_t i);
// The bytes [offset, offset + length) of the Uint8Array argument `i`, whose offset and
// length are the next two arguments; RangeError if they fall outside it.
ByteView ArgByteRange(const Napi::CallbackInfo& info, size_t i);

// Reports an exception thrown while the event loop called into JavaScript: it goes to
// 'uncaughtException', as it would from any other event. Nothing may escape to libuv (a
// C++ exception there is std::terminate); in an environment being torn down (a worker
// terminated) there is no exception to report, and the call is simply dropped.
inline void ReportFromLoop(Napi::Env env, const Napi::Error& e) {
  napi_value v = e.Value();
  if (v != nullptr) napi_fatal_exception(env, v);
}

// One initialiser per kernel facility; each adds its exports to `exports`.
void InitFd(Napi::Env env, Napi::Object exports);
void InitPoll(Napi::Env env, Napi::Object exports);
void InitProcess(Napi::Env env, Napi::Object exports);
void InitMqueue(Napi::Env env, Napi::Object exports);
void InitSemaphore(Napi::Env env, Napi::Object exports);
void InitShm(Napi::Env env, Napi::Object exports);
void InitFutex(Napi::Env env, Napi::Object exports);
void InitSocket(Napi::Env env, Napi::Object exports);
void InitSignal(Napi::Env env, Napi::Object exports);
void InitProbe(Napi::Env env, Napi::Object exports);
void InitBlocking(Napi::Env env, Napi::Object exports);
void InitFileLock(Napi::Env env, Napi::Object exports);
void InitSysv(Napi::Env env, Napi::Object exports);

}  // namespace ipckit
