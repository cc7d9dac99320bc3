// Probes of the kernel features ipckit uses or falls back from, for `ipckit doctor`
// (src/ops/doctor.ts). Each returns 0 when the feature works here, else the errno that
// said no. Nothing is kept: every probe closes what it opened.
#include "addon.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef F_OFD_GETLK
#define F_OFD_GETLK 36
#endif

namespace ipckit {
namespace {

// futex_waitv (Linux 5.16): with no waiters it fails EINVAL where it exists, ENOSYS where not.
int ProbeFutexWaitv() {
  long rc = syscall(SYS_futex_waitv, nullptr, 0, 0, nullptr, 0);
  if (rc == 0) return 0;
  return errno == EINVAL ? 0 : errno;
}

int ProbePidfd() {
  long fd = syscall(SYS_pidfd_open, getpid(), 0);
  if (fd < 0) return errno;
  close(static_cast<int>(fd));
  return 0;
}

// memfd_create with sealing, and a seal added: what createSealedMemory needs.
int ProbeMemfdSeals() {
  int fd = memfd_create("ipckit-probe", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return errno;
  int rc = fcntl(fd, F_ADD_SEALS, F_SEAL_GROW) == 0 ? 0 : errno;
  close(fd);
  return rc;
}

// Open-file-description locks (Linux 3.15), asked of a memfd.
int ProbeOfdLocks() {
  int fd = memfd_create("ipckit-probe", MFD_CLOEXEC);
  if (fd < 0) return errno;
  struct flock lk = {};
  lk.l_type = F_WRLCK;
  lk.l_whence = SEEK_SET;
  int rc = fcntl(fd, F_OFD_GETLK, &lk) == 0 ? 0 : errno;
  close(fd);
  return rc;
}

Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("futexWaitv", ProbeFutexWaitv());
  out.Set("pidfd", ProbePidfd());
  out.Set("memfdSeals", ProbeMemfdSeals());
  out.Set("ofdLocks", ProbeOfdLocks());
  return out;
}

}  // namespace

void InitProbe(Napi::Env env, Napi::Object exports) { exports.Set("probeFeatures", Napi::Function::New(env, Probe)); }

}  // namespace ipckit
