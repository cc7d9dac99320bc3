// POSIX named semaphores (sem_*).
//
// Creation goes through sem_open(O_CREAT | O_EXCL), so the object is exactly what a C or
// Python peer's sem_open expects. Every handle, ours or opened, is then a mapping
// (native/shm.cc) of the file /dev/shm/sem.<name> that TypeScript opened with O_NOFOLLOW
// and checked with fstat (owner and mode): the semaphore we use is the one we checked,
// with no window between the check and the use. sem_wait/sem_post work on any
// process-shared sem_t, and the one in that file is one. Every call here takes that
// mapping's handle (a slot of the thread's table: an index, no object per semaphore).
//
// An async wait must neither block the event loop nor sit on libuv's thread pool, and a
// semaphore has no file descriptor to poll. It is a futex wait of the one wait back-end
// (native/futex.cc: io_uring, or a waiter thread) on the semaphore's value word: the JS
// thread takes permits itself with the same atomic steps as glibc's sem_wait (glibc's
// sem_t on 64-bit Linux: one u64, value in the low half, waiter count in the high half;
// a sem_post wakes the value word when the count is not zero), so it registers as a
// waiter while it wants permits (waiters()) and sleeps on the value word while it is 0.
// Where the sem_t is not glibc's (SEM_WAKES_WAITERS false) TypeScript polls instead.
#include "addon.h"
#include "futex.h"
#include "region.h"

#include <fcntl.h>
#include <semaphore.h>

#include <cerrno>
#include <memory>

namespace ipckit {
namespace {

// glibc's layout of a sem_t on 64-bit little-endian Linux (nptl/semaphoreP.h, struct
// new_sem with __HAVE_64B_ATOMICS): the async wait relies on it and is used only here.
#if defined(__GLIBC__) && (defined(__x86_64__) || defined(__aarch64__)) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define IPCKIT_GLIBC_SEM 1
struct GlibcSem {
  uint64_t data;  // value: low 32 bits; waiters: high 32 bits
  int priv;       // glibc's FUTEX_SHARED (= FUTEX_PRIVATE_FLAG, 128) for shared semaphores, 0 for private ones
  int pad;
};
constexpr int kGlibcFutexShared = 128;
static_assert(sizeof(GlibcSem) <= sizeof(sem_t), "glibc sem_t layout");
constexpr uint64_t kOneWaiter = uint64_t{1} << 32;
#else
#define IPCKIT_GLIBC_SEM 0
#endif

// semCreate(name, mode, value): creates the named semaphore exclusively and closes our
// sem_open handle; TypeScript then opens the file to set the exact mode and map it.
Napi::Value SemCreate(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0);
  mode_t mode = static_cast<mode_t>(ArgInt(info, 1));
  unsigned value = static_cast<unsigned>(ArgInt64(info, 2));
  sem_t* s = sem_open(name.c_str(), O_CREAT | O_EXCL, mode, value);
  if (s == SEM_FAILED) ThrowErrno(info.Env(), "sem_open");
  sem_close(s);
  return info.Env().Undefined();
}

Napi::Value SemUnlink(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0);
  if (sem_unlink(name.c_str()) != 0) ThrowErrno(info.Env(), "sem_unlink");
  return info.Env().Undefined();
}

// glibc takes the futex flags of every call from the shared sem_t and trusts them: a
// corrupt value turns sem_post's wake into a wait that never ends, makes glibc abort
// ("The futex facility returned an unexpected error code"), or makes it use
// process-private futexes that no other process wakes. So each call checks them first
// (EUCLEAN: corrupt). A named semaphore is always process-shared.
bool Intact(sem_t* sem) {
#if IPCKIT_GLIBC_SEM
  return __atomic_load_n(&reinterpret_cast<GlibcSem*>(sem)->priv, __ATOMIC_RELAXED) == kGlibcFutexShared;
#else
  (void)sem;
  return true;
#endif
}

// The sem_t at offset 0 of the writable mapping whose handle (native/shm.cc) is argument 0
// of every call here; the region is looked up per call (an index into the thread's table).
sem_t* SemArg(const Napi::CallbackInfo& info, std::shared_ptr<Region>* keep = nullptr) {
  Napi::Env env = info.Env();
  std::shared_ptr<Region> region = RegionOf(env, info[0]);
  if (!region->writable) throw Napi::Error::New(env, "ipckit native: the semaphore is mapped read-only");
  sem_t* sem = reinterpret_cast<sem_t*>(BytesAt(env, *region, 0, sizeof(sem_t), alignof(sem_t)));
  if (keep != nullptr) *keep = std::move(region);
  return sem;
}

// semIntact(handle) -> false if the sem_t is corrupt (see Intact).
Napi::Value SemIntact(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), Intact(SemArg(info))); }

// semPost(handle). Throws (EOVERFLOW at SEM_VALUE_MAX; EUCLEAN: corrupt).
Napi::Value SemPost(const Napi::CallbackInfo& info) {
  sem_t* sem = SemArg(info);
  if (!Intact(sem)) ThrowErrno(info.Env(), EUCLEAN, "sem_post");
  if (sem_post(sem) != 0) ThrowErrno(info.Env(), "sem_post");
  return info.Env().Undefined();
}

// semTryWait(handle) -> 0 (took a permit) or -errno (EAGAIN: none; EUCLEAN: corrupt).
Napi::Value SemTryWait(const Napi::CallbackInfo& info) {
  sem_t* sem = SemArg(info);
  if (!Intact(sem)) return Napi::Number::New(info.Env(), -EUCLEAN);
  return Napi::Number::New(info.Env(), sem_trywait(sem) == 0 ? 0 : -errno);
}

// semTake(handle, max, waiters) -> permits taken now (0 .. max), or -EUCLEAN. glibc's own
// fast path (a compare-and-swap of the value) where the layout is glibc's, else sem_trywait.
// With `waiters` +1 the caller joins the waiters first (a post after that wakes it); with -1
// it leaves them afterwards if it got all `max` (it waits no more): one call instead of
// two on each step of an async wait.
Napi::Value SemTake(const Napi::CallbackInfo& info) {
  sem_t* sem = SemArg(info);
  int64_t max = ArgInt64(info, 1);
  int64_t waiters = info.Length() > 2 ? ArgInt64(info, 2) : 0;
  if (!Intact(sem)) return Napi::Number::New(info.Env(), -EUCLEAN);
  int64_t n = 0;
#if IPCKIT_GLIBC_SEM
  uint64_t* data = &reinterpret_cast<GlibcSem*>(sem)->data;
  if (waiters > 0) __atomic_fetch_add(data, kOneWaiter, __ATOMIC_RELAXED);
  uint64_t d = __atomic_load_n(data, __ATOMIC_RELAXED);
  while (n < max && static_cast<uint32_t>(d) > 0) {
    if (__atomic_compare_exchange_n(data, &d, d - 1, true, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
      n++;
      d = __atomic_load_n(data, __ATOMIC_RELAXED);
    }
  }
  if (waiters < 0 && n == max) __atomic_fetch_sub(data, kOneWaiter, __ATOMIC_RELAXED);
#else
  (void)waiters;
  while (n < max && sem_trywait(sem) == 0) n++;
#endif
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

// semWaiters(handle, delta): joins (+1) or leaves (-1) the waiters glibc's sem_post wakes.
// Nothing where the layout is not glibc's.
Napi::Value SemWaiters(const Napi::CallbackInfo& info) {
  sem_t* sem = SemArg(info);
  int64_t delta = ArgInt64(info, 1);
#if IPCKIT_GLIBC_SEM
  uint64_t* data = &reinterpret_cast<GlibcSem*>(sem)->data;
  if (delta > 0) __atomic_fetch_add(data, kOneWaiter, __ATOMIC_RELAXED);
  else if (delta < 0) __atomic_fetch_sub(data, kOneWaiter, __ATOMIC_RELAXED);
#else
  (void)sem;
  (void)delta;
#endif
  return info.Env().Undefined();
}

// semWaitSync(handle, ms) -> 0 or -errno (ETIMEDOUT; EUCLEAN: corrupt). ms < 0: no timeout.
// Blocks this thread; TypeScript calls it in slices.
Napi::Value SemWaitSync(const Napi::CallbackInfo& info) {
  std::shared_ptr<Region> keep;
  sem_t* sem = SemArg(info, &keep);
  double ms = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
  if (!Intact(sem)) return Napi::Number::New(info.Env(), -EUCLEAN);
  int64_t deadline = DeadlineAfterMs(ms);
  int r;
  if (deadline < 0) {
    do r = sem_wait(sem); while (r != 0 && errno == EINTR);
  } else {
    timespec ts = ToTimespec(deadline);
    do r = sem_clockwait(sem, CLOCK_MONOTONIC, &ts); while (r != 0 && errno == EINTR);
  }
  return Napi::Number::New(info.Env(), r == 0 ? 0 : -errno);
}

// semValue(handle) -> sem_getvalue.
Napi::Value SemValue(const Napi::CallbackInfo& info) {
  int v = 0;
  if (sem_getvalue(SemArg(info), &v) != 0) ThrowErrno(info.Env(), "sem_getvalue");
  return Napi::Number::New(info.Env(), v);
}

}  // namespace

void InitSemaphore(Napi::Env env, Napi::Object exports) {
  exports.Set("semCreate", Napi::Function::New(env, SemCreate, "semCreate"));
  exports.Set("semUnlink", Napi::Function::New(env, SemUnlink, "semUnlink"));
  exports.Set("semIntact", Napi::Function::New(env, SemIntact, "semIntact"));
  exports.Set("semPost", Napi::Function::New(env, SemPost, "semPost"));
  exports.Set("semTryWait", Napi::Function::New(env, SemTryWait, "semTryWait"));
  exports.Set("semTake", Napi::Function::New(env, SemTake, "semTake"));
  exports.Set("semWaiters", Napi::Function::New(env, SemWaiters, "semWaiters"));
  exports.Set("semWaitSync", Napi::Function::New(env, SemWaitSync, "semWaitSync"));
  exports.Set("semValue", Napi::Function::New(env, SemValue, "semValue"));
  exports.Set("SEM_SIZE", Napi::Number::New(env, sizeof(sem_t)));
  // The byte offset of the word a post wakes (glibc: the value, the low half of `data`).
  exports.Set("SEM_VALUE_OFFSET", Napi::Number::New(env, 0));
  exports.Set("SEM_WAKES_WAITERS", Napi::Boolean::New(env, IPCKIT_GLIBC_SEM != 0));
}

}  // namespace ipckit
