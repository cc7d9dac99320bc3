// File-descriptor system calls: pipes, FIFOs, reads and writes on non-blocking fds,
// fstat/lstat for ownership checks, pidfd. Hot-path calls (read/write/writev) return
// -errno instead of throwing, because EAGAIN is an expected answer there.
#include "addon.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace ipckit {
namespace {

Napi::Value Pipe(const Napi::CallbackInfo& info) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) ThrowErrno(info.Env(), "pipe2");
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, fds[0]);
  out.Set(1u, fds[1]);
  return out;
}

// read(fd, buf, offset, length) -> bytes read, 0 at end of stream, or -errno.
Napi::Value Read(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  ByteView b = ArgByteRange(info, 1);
  ssize_t n;
  do n = read(fd, b.data, b.length); while (n < 0 && errno == EINTR);
  return Napi::Number::New(info.Env(), n < 0 ? -errno : static_cast<double>(n));
}

// write(fd, buf, offset, length) -> bytes written or -errno.
Napi::Value Write(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  ByteView b = ArgByteRange(info, 1);
  ssize_t n;
  do n = write(fd, b.data, b.length); while (n < 0 && errno == EINTR);
  return Napi::Number::New(info.Env(), n < 0 ? -errno : static_cast<double>(n));
}

// writev(fd, [Uint8Array...], firstOffset) -> bytes written or -errno. The first view is
// written from firstOffset, so a partly written chunk needs no new view.
Napi::Value Writev(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0);
  if (info.Length() < 3 || !info[1].IsArray()) throw Napi::TypeError::New(env, "ipckit native: writev expects an array");
  Napi::Array arr = info[1].As<Napi::Array>();
  int64_t firstOffset = ArgInt64(info, 2);
  uint32_t count = arr.Length();
  if (count > IOV_MAX) count = IOV_MAX;
  std::vector<struct iovec> iov(count);
  for (uint32_t i = 0; i < count; i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsTypedArray()) throw Napi::TypeError::New(env, "ipckit native: writev expects Uint8Arrays");
    Napi::Uint8Array u8 = v.As<Napi::Uint8Array>();
    size_t skip = (i == 0) ? static_cast<size_t>(firstOffset) : 0;
    if (skip > u8.ByteLength()) throw Napi::RangeError::New(env, "ipckit native: writev offset outside the buffer");
    iov[i].iov_base = u8.Data() + skip;
    iov[i].iov_len = u8.ByteLength() - skip;
  }
  ssize_t n;
  do n = writev(fd, iov.data(), static_cast<int>(count)); while (n < 0 && errno == EINTR);
  return Napi::Number::New(env, n < 0 ? -errno : static_cast<double>(n));
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  // Linux releases the fd even when close() reports EINTR, so it is never retried.
  if (close(ArgInt(info, 0)) != 0 && errno != EINTR) ThrowErrno(info.Env(), "close");
  return info.Env().Undefined();
}

Napi::Value SetNonBlocking(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  bool on = info[1].ToBoolean();
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) ThrowErrno(info.Env(), "fcntl");
  int want = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (want != flags && fcntl(fd, F_SETFL, want) != 0) ThrowErrno(info.Env(), "fcntl");
  return info.Env().Undefined();
}

Napi::Value GetStatusFlags(const Napi::CallbackInfo& info) {
  int flags = fcntl(ArgInt(info, 0), F_GETFL);
  if (flags < 0) ThrowErrno(info.Env(), "fcntl");
  return Napi::Number::New(info.Env(), flags);
}

Napi::Value SetCloexec(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  bool on = info[1].ToBoolean();
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0) ThrowErrno(info.Env(), "fcntl");
  int want = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
  if (want != flags && fcntl(fd, F_SETFD, want) != 0) ThrowErrno(info.Env(), "fcntl");
  return info.Env().Undefined();
}

// dupCloexec(fd) -> a new descriptor for the same open file, close-on-exec.
Napi::Value DupCloexec(const Napi::CallbackInfo& info) {
  int fd = fcntl(ArgInt(info, 0), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(info.Env(), "fcntl(F_DUPFD_CLOEXEC)");
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value GetPipeSize(const Napi::CallbackInfo& info) {
  int n = fcntl(ArgInt(info, 0), F_GETPIPE_SZ);
  if (n < 0) ThrowErrno(info.Env(), "fcntl(F_GETPIPE_SZ)");
  return Napi::Number::New(info.Env(), n);
}

Napi::Value SetPipeSize(const Napi::CallbackInfo& info) {
  int n = fcntl(ArgInt(info, 0), F_SETPIPE_SZ, ArgInt(info, 1));
  if (n < 0) ThrowErrno(info.Env(), "fcntl(F_SETPIPE_SZ)");
  return Napi::Number::New(info.Env(), n);
}

Napi::Value Open(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0);
  int fd;
  do fd = open(path.c_str(), ArgInt(info, 1), static_cast<mode_t>(ArgInt(info, 2)));
  while (fd < 0 && errno == EINTR);
  if (fd < 0) ThrowErrno(info.Env(), "open");
  return Napi::Number::New(info.Env(), fd);
}

// open() that reports failure as -errno: for retry loops (a FIFO writer polling for a reader).
Napi::Value TryOpen(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0);
  int fd;
  do fd = open(path.c_str(), ArgInt(info, 1), static_cast<mode_t>(ArgInt(info, 2)));
  while (fd < 0 && errno == EINTR);
  return Napi::Number::New(info.Env(), fd < 0 ? -errno : fd);
}

Napi::Value Mkfifo(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0);
  if (mkfifo(path.c_str(), static_cast<mode_t>(ArgInt(info, 1))) != 0) ThrowErrno(info.Env(), "mkfifo");
  return info.Env().Undefined();
}

Napi::Object StatObject(Napi::Env env, const struct stat& st) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("dev", Napi::Number::New(env, static_cast<double>(st.st_dev)));
  o.Set("ino", Napi::Number::New(env, static_cast<double>(st.st_ino)));
  o.Set("mode", Napi::Number::New(env, st.st_mode));
  o.Set("uid", Napi::Number::New(env, st.st_uid));
  o.Set("gid", Napi::Number::New(env, st.st_gid));
  o.Set("size", Napi::Number::New(env, static_cast<double>(st.st_size)));
  o.Set("nlink", Napi::Number::New(env, static_cast<double>(st.st_nlink)));
  return o;
}

Napi::Value Fstat(const Napi::CallbackInfo& info) {
  struct stat st;
  if (fstat(ArgInt(info, 0), &st) != 0) ThrowErrno(info.Env(), "fstat");
  return StatObject(info.Env(), st);
}

Napi::Value Lstat(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0);
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) ThrowErrno(info.Env(), "lstat");
  return StatObject(info.Env(), st);
}

Napi::Value Fchmod(const Napi::CallbackInfo& info) {
  if (fchmod(ArgInt(info, 0), static_cast<mode_t>(ArgInt(info, 1))) != 0) ThrowErrno(info.Env(), "fchmod");
  return info.Env().Undefined();
}

Napi::Value Fchown(const Napi::CallbackInfo& info) {
  if (fchown(ArgInt(info, 0), static_cast<uid_t>(ArgInt(info, 1)), static_cast<gid_t>(ArgInt(info, 2))) != 0) {
    ThrowErrno(info.Env(), "fchown");
  }
  return info.Env().Undefined();
}

Napi::Value Unlink(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0);
  if (unlink(path.c_str()) != 0) ThrowErrno(info.Env(), "unlink");
  return info.Env().Undefined();
}

Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  long fd = syscall(SYS_pidfd_open, ArgInt(info, 0), 0);
  if (fd < 0) ThrowErrno(info.Env(), "pidfd_open");
  fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
  return Napi::Number::New(info.Env(), static_cast<double>(fd));
}

}  // namespace

void InitFd(Napi::Env env, Napi::Object exports) {
  exports.Set("pipe", Napi::Function::New(env, Pipe, "pipe"));
  exports.Set("read", Napi::Function::New(env, Read, "read"));
  exports.Set("write", Napi::Function::New(env, Write, "write"));
  exports.Set("writev", Napi::Function::New(env, Writev, "writev"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("setNonBlocking", Napi::Function::New(env, SetNonBlocking, "setNonBlocking"));
  exports.Set("getStatusFlags", Napi::Function::New(env, GetStatusFlags, "getStatusFlags"));
  exports.Set("setCloexec", Napi::Function::New(env, SetCloexec, "setCloexec"));
  exports.Set("dupCloexec", Napi::Function::New(env, DupCloexec, "dupCloexec"));
  exports.Set("getPipeSize", Napi::Function::New(env, GetPipeSize, "getPipeSize"));
  exports.Set("setPipeSize", Napi::Function::New(env, SetPipeSize, "setPipeSize"));
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("tryOpen", Napi::Function::New(env, TryOpen, "tryOpen"));
  exports.Set("mkfifo", Napi::Function::New(env, Mkfifo, "mkfifo"));
  exports.Set("fstat", Napi::Function::New(env, Fstat, "fstat"));
  exports.Set("lstat", Napi::Function::New(env, Lstat, "lstat"));
  exports.Set("fchmod", Napi::Function::New(env, Fchmod, "fchmod"));
  exports.Set("fchown", Napi::Function::New(env, Fchown, "fchown"));
  exports.Set("unlink", Napi::Function::New(env, Unlink, "unlink"));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen, "pidfdOpen"));
  exports.Set("PIPE_BUF", Napi::Number::New(env, PIPE_BUF));
  exports.Set("IOV_MAX", Napi::Number::New(env, IOV_MAX));
}

}  // namespace ipckit
