// Module initialisation and the errno helper shared by every facility.
#include "addon.h"

#include <cerrno>
#include <cstring>

namespace ipckit {

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall) {
  Napi::Error e = Napi::Error::New(env, std::string(syscall) + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

void ThrowErrno(Napi::Env env, int err, const char* syscall) { throw ErrnoError(env, err, syscall); }
void ThrowErrno(Napi::Env env, const char* syscall) { ThrowErrno(env, errno, syscall); }

int ArgInt(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "ipckit native: expected a number argument");
  return info[i].As<Napi::Number>().Int32Value();
}

int64_t ArgInt64(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "ipckit native: expected a number argument");
  return info[i].As<Napi::Number>().Int64Value();
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsString()) throw Napi::TypeError::New(info.Env(), "ipckit native: expected a string argument");
  return info[i].As<Napi::String>().Utf8Value();
}

ByteView ArgBytes(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "ipckit native: expected a Uint8Array argument");
  Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_uint8_array) throw Napi::TypeError::New(info.Env(), "ipckit native: expected a Uint8Array argument");
  Napi::Uint8Array u8 = ta.As<Napi::Uint8Array>();
  return ByteView{u8.Data(), u8.ByteLength()};
}

ByteView ArgByteRange(const Napi::CallbackInfo& info, size_t i) {
  ByteView v = ArgBytes(info, i);
  int64_t off = ArgInt64(info, i + 1), len = ArgInt64(info, i + 2);
  if (off < 0 || len < 0 || static_cast<uint64_t>(off) + static_cast<uint64_t>(len) > v.length) {
    throw Napi::RangeError::New(info.Env(), "ipckit native: offset/length outside the buffer");
  }
  return ByteView{v.data + off, static_cast<size_t>(len)};
}

}  // namespace ipckit

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ipckit::InitFd(env, exports);
  ipckit::InitPoll(env, exports);
  ipckit::InitProcess(env, exports);
  ipckit::InitMqueue(env, exports);
  ipckit::InitSemaphore(env, exports);
  ipckit::InitShm(env, exports);
  ipckit::InitFutex(env, exports);
  ipckit::InitSocket(env, exports);
  ipckit::InitSignal(env, exports);
  ipckit::InitProbe(env, exports);
  ipckit::InitBlocking(env, exports);
  ipckit::InitFileLock(env, exports);
  ipckit::InitSysv(env, exports);
  return exports;
}

NODE_API_MODULE(ipckit, Init)
