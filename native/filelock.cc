// File locks: open-file-description locks (F_OFD_*), classic record locks (F_SETLK, for
// reading who holds one) and flock(2). The non-blocking forms only: a lock wait runs on a
// thread of BlockingCalls (native/blocking.cc), or polls (flock); the policy is in
// src/mechanisms/lock/file-lock.ts.
#include "addon.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>

namespace ipckit {
namespace {

struct flock Range(const Napi::CallbackInfo& info, size_t at) {
  struct flock fl = {};
  fl.l_type = static_cast<short>(ArgInt(info, at));
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(ArgInt64(info, at + 1));
  fl.l_len = static_cast<off_t>(ArgInt64(info, at + 2));
  return fl;
}

// setLock(fd, cmd, type, start, length): F_OFD_SETLK or F_SETLK. 0, or -errno (EAGAIN or
// EACCES: someone holds a conflicting lock).
Napi::Value SetLock(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  int cmd = ArgInt(info, 1);
  if (cmd != F_OFD_SETLK && cmd != F_SETLK) throw Napi::TypeError::New(info.Env(), "setLock: cmd must be F_OFD_SETLK or F_SETLK");
  struct flock fl = Range(info, 2);
  int rc;
  do rc = fcntl(fd, cmd, &fl);
  while (rc != 0 && errno == EINTR);
  return Napi::Number::New(info.Env(), rc == 0 ? 0 : -errno);
}

// getLock(fd, cmd, type, start, length): F_OFD_GETLK or F_GETLK. null when the range could
// be locked so, else the first conflicting lock { type, start, length, pid } (pid -1 for an
// OFD lock: the kernel does not say whose).
Napi::Value GetLock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0);
  int cmd = ArgInt(info, 1);
  if (cmd != F_OFD_GETLK && cmd != F_GETLK) throw Napi::TypeError::New(env, "getLock: cmd must be F_OFD_GETLK or F_GETLK");
  struct flock fl = Range(info, 2);
  if (fcntl(fd, cmd, &fl) != 0) ThrowErrno(env, cmd == F_OFD_GETLK ? "fcntl(F_OFD_GETLK)" : "fcntl(F_GETLK)");
  if (fl.l_type == F_UNLCK) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", Napi::Number::New(env, fl.l_type));
  o.Set("start", Napi::Number::New(env, static_cast<double>(fl.l_start)));
  o.Set("length", Napi::Number::New(env, static_cast<double>(fl.l_len)));
  o.Set("pid", Napi::Number::New(env, fl.l_pid));
  return o;
}

// flock(fd, op): 0, or -errno (EWOULDBLOCK with LOCK_NB when it is held).
Napi::Value Flock(const Napi::CallbackInfo& info) {
  int rc;
  do rc = flock(ArgInt(info, 0), ArgInt(info, 1));
  while (rc != 0 && errno == EINTR);
  return Napi::Number::New(info.Env(), rc == 0 ? 0 : -errno);
}

}  // namespace

void InitFileLock(Napi::Env env, Napi::Object exports) {
  exports.Set("setLock", Napi::Function::New(env, SetLock, "setLock"));
  exports.Set("getLock", Napi::Function::New(env, GetLock, "getLock"));
  exports.Set("flock", Napi::Function::New(env, Flock, "flock"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("F_OFD_GETLK", F_OFD_GETLK);
  c.Set("F_OFD_SETLK", F_OFD_SETLK);
  c.Set("F_OFD_SETLKW", F_OFD_SETLKW);
  c.Set("F_GETLK", F_GETLK);
  c.Set("F_SETLK", F_SETLK);
  c.Set("F_SETLKW", F_SETLKW);
  c.Set("F_RDLCK", F_RDLCK);
  c.Set("F_WRLCK", F_WRLCK);
  c.Set("F_UNLCK", F_UNLCK);
  c.Set("LOCK_SH", LOCK_SH);
  c.Set("LOCK_EX", LOCK_EX);
  c.Set("LOCK_UN", LOCK_UN);
  c.Set("LOCK_NB", LOCK_NB);
  exports.Set("lockConstants", c);
}

}  // namespace ipckit
