// Small shared-memory segments for synchronization objects (the cross-process mutex and
// the bounded pool's holder table), and the robust process-shared pthread mutex in them.
//
// SyncSegment maps a shm_open object and offers what TypeScript cannot do on it:
// atomics, futex wake, pthread_mutex_* at an offset, and a watch that tells the event
// loop when a word changes. Layouts and all policy live in TypeScript (mutex.ts,
// pool.ts); every offset is bounds-checked here.
//
// Lock ownership. A pthread mutex belongs to a thread. Every lock and unlock is made by
// the JS thread (main thread or worker) that called lock(): pthread_mutex_trylock on
// that thread, never a blocking lock elsewhere. When the mutex is busy, we only *wait
// for it to become free*: set FUTEX_WAITERS on the mutex's futex word (as any glibc
// waiter does, so the unlocker wakes one) and FUTEX_WAIT on it; then the JS thread tries
// again. So the owner the kernel records (and whose death it reports with EOWNERDEAD)
// is always the thread that JS code runs on.
//
// The futex wait completes on the event loop through io_uring where the kernel has
// IORING_OP_FUTEX_WAIT (uring.h); elsewhere a watcher thread per segment waits and
// wakes the loop.
#include "addon.h"
#include "uring.h"
#include "waiter.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>

namespace ipckit {
namespace {

static_assert(offsetof(pthread_mutex_t, __data.__lock) == 0, "the futex word of a glibc mutex is its first int");

long Futex(uint32_t* addr, int op, uint32_t val, const struct timespec* timeout) {
  // Not FUTEX_PRIVATE_FLAG: the words are shared between processes (glibc uses shared
  // futexes for robust and process-shared mutexes too).
  return syscall(SYS_futex, addr, op, val, timeout, nullptr, 0);
}

// The type glibc records (__kind) in a mutex made by MutexInit: robust, process-shared,
// normal. glibc reads the type from the shared mutex on every call and trusts it: a
// corrupt one can make it abort the process (priority-protect bits), treat the mutex as
// process-private and not robust, or fail with EINVAL. So every call checks it first.
int ExpectedKind() {
  static const int kind = [] {
    pthread_mutex_t m;
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&m, &attr);
    pthread_mutexattr_destroy(&attr);
    int k = m.__data.__kind;
    pthread_mutex_destroy(&m);
    return k;
  }();
  return kind;
}

bool KindOk(pthread_mutex_t* m) { return __atomic_load_n(&m->__data.__kind, __ATOMIC_ACQUIRE) == ExpectedKind(); }

Napi::Value SyncShmOpen(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0);
  int fd = shm_open(name.c_str(), ArgInt(info, 1), static_cast<mode_t>(ArgInt(info, 2)));
  if (fd < 0) ThrowErrno(info.Env(), "shm_open");
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value SyncShmUnlink(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0);
  if (shm_unlink(name.c_str()) != 0) ThrowErrno(info.Env(), "shm_unlink");
  return info.Env().Undefined();
}

Napi::Value SyncFtruncate(const Napi::CallbackInfo& info) {
  if (ftruncate(ArgInt(info, 0), static_cast<off_t>(ArgInt64(info, 1))) != 0) ThrowErrno(info.Env(), "ftruncate");
  return info.Env().Undefined();
}

class SyncSegment;

// The mapping, shared by the handle and any kernel wait on it. Unmapped when the last of
// them is done, unless `leak`: a mutex still held by this thread must stay mapped until
// the thread ends, so that the kernel can mark it "owner died" (robust list).
struct SegMapping {
  uint8_t* base = nullptr;
  size_t size = 0;
  SyncSegment* owner = nullptr;
  bool leak = false;
  ~SegMapping() {
    if (base != nullptr && !leak) munmap(base, size);
  }
};

class SyncSegment : public Napi::ObjectWrap<SyncSegment> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "SyncSegment", {
      InstanceMethod<&SyncSegment::Load32>("load32"),
      InstanceMethod<&SyncSegment::Store32>("store32"),
      InstanceMethod<&SyncSegment::Add32>("add32"),
      InstanceMethod<&SyncSegment::Load64>("load64"),
      InstanceMethod<&SyncSegment::Cas64>("cas64"),
      InstanceMethod<&SyncSegment::Wake>("wake"),
      InstanceMethod<&SyncSegment::MutexInit>("mutexInit"),
      InstanceMethod<&SyncSegment::MutexTryLock>("mutexTryLock"),
      InstanceMethod<&SyncSegment::MutexLockSync>("mutexLockSync"),
      InstanceMethod<&SyncSegment::MutexUnlock>("mutexUnlock"),
      InstanceMethod<&SyncSegment::MutexConsistent>("mutexConsistent"),
      InstanceMethod<&SyncSegment::MutexPeek>("mutexPeek"),
      InstanceMethod<&SyncSegment::MutexValid>("mutexValid"),
      InstanceMethod<&SyncSegment::WatchMutex>("watchMutex"),
      InstanceMethod<&SyncSegment::WatchChange>("watchChange"),
      InstanceMethod<&SyncSegment::Unwatch>("unwatch"),
      InstanceMethod<&SyncSegment::Backend>("backend"),
      InstanceMethod<&SyncSegment::Close>("close"),
    });
    exports.Set("SyncSegment", ctor);
    exports.Set("PTHREAD_MUTEX_SIZE", Napi::Number::New(env, sizeof(pthread_mutex_t)));
  }

  // new SyncSegment(fd, size, onWake()): maps `size` bytes of fd (TypeScript checked the
  // file's size). onWake runs on the loop when a watch fires.
  explicit SyncSegment(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<SyncSegment>(info), context_(info.Env(), "ipckit.SyncSegment") {
    Napi::Env env = info.Env();
    int fd = ArgInt(info, 0);
    int64_t size = ArgInt64(info, 1);
    if (size <= 0 || size > (1 << 30)) throw Napi::RangeError::New(env, "SyncSegment: bad size");
    if (info.Length() < 3 || !info[2].IsFunction()) throw Napi::TypeError::New(env, "SyncSegment: callback required");
    info.This().As<Napi::Object>().Set("_onWake", info[2]);
    void* p = mmap(nullptr, static_cast<size_t>(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) ThrowErrno(env, "mmap");
    map_ = std::make_shared<SegMapping>();
    map_->base = static_cast<uint8_t*>(p);
    map_->size = static_cast<size_t>(size);
    map_->owner = this;
    base_ = map_->base;
    size_ = map_->size;
    env_ = env;
    ring_ = FutexRing::For(env);
    if (ring_ == nullptr) signal_ = new LoopSignal(env, [this] { OnSignal(); });
    napi_add_env_cleanup_hook(env, CleanupHook, this);
  }

  ~SyncSegment() override { Release(false); }

 private:
  enum class Mode { kNone, kMutexFree, kChanged };

  // A pointer to `bytes` bytes at argument i's offset, aligned to `align`; throws otherwise.
  template <typename T>
  T* At(const Napi::CallbackInfo& info, size_t i, size_t bytes = sizeof(T), size_t align = alignof(T)) {
    if (base_ == nullptr) ThrowErrno(info.Env(), EBADF, "mmap");
    int64_t off = ArgInt64(info, i);
    if (off < 0 || static_cast<uint64_t>(off) + bytes > size_ || off % static_cast<int64_t>(align) != 0) {
      throw Napi::RangeError::New(info.Env(), "ipckit native: offset outside the segment or misaligned");
    }
    return reinterpret_cast<T*>(base_ + off);
  }

  pthread_mutex_t* MutexAt(const Napi::CallbackInfo& info, size_t i) { return At<pthread_mutex_t>(info, i, sizeof(pthread_mutex_t), 8); }

  Napi::Value Load32(const Napi::CallbackInfo& info) {
    uint32_t* w = At<uint32_t>(info, 0);
    return Napi::Number::New(info.Env(), __atomic_load_n(w, __ATOMIC_ACQUIRE));
  }

  Napi::Value Store32(const Napi::CallbackInfo& info) {
    uint32_t* w = At<uint32_t>(info, 0);
    __atomic_store_n(w, static_cast<uint32_t>(ArgInt64(info, 1)), __ATOMIC_RELEASE);
    return info.Env().Undefined();
  }

  // add32(off, delta) -> the previous value.
  Napi::Value Add32(const Napi::CallbackInfo& info) {
    uint32_t* w = At<uint32_t>(info, 0);
    return Napi::Number::New(info.Env(), __atomic_fetch_add(w, static_cast<uint32_t>(ArgInt64(info, 1)), __ATOMIC_ACQ_REL));
  }

  Napi::Value Load64(const Napi::CallbackInfo& info) {
    uint64_t* w = At<uint64_t>(info, 0);
    return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(__atomic_load_n(w, __ATOMIC_ACQUIRE)));
  }

  static uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i) {
    if (i >= info.Length() || !info[i].IsBigInt()) throw Napi::TypeError::New(info.Env(), "ipckit native: expected a bigint argument");
    bool lossless = true;
    return info[i].As<Napi::BigInt>().Uint64Value(&lossless);
  }

  // cas64(off, expected, desired) -> true if the word was `expected` and is now `desired`.
  Napi::Value Cas64(const Napi::CallbackInfo& info) {
    uint64_t* w = At<uint64_t>(info, 0);
    uint64_t expected = ArgU64(info, 1);
    uint64_t desired = ArgU64(info, 2);
    bool ok = __atomic_compare_exchange_n(w, &expected, desired, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    return Napi::Boolean::New(info.Env(), ok);
  }

  // wake(off, count) -> how many waiters were woken (FUTEX_WAKE on the u32 at off).
  Napi::Value Wake(const Napi::CallbackInfo& info) {
    uint32_t* w = At<uint32_t>(info, 0);
    long n = Futex(w, FUTEX_WAKE, static_cast<uint32_t>(ArgInt(info, 1)), nullptr);
    return Napi::Number::New(info.Env(), n < 0 ? 0 : n);
  }

  // mutexInit(off): a robust, process-shared, normal mutex at off (the creator only).
  Napi::Value MutexInit(const Napi::CallbackInfo& info) {
    pthread_mutex_t* m = MutexAt(info, 0);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    int err = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (err == 0) err = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (err == 0) err = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    if (err != 0) ThrowErrno(info.Env(), err, "pthread_mutex_init");
    return info.Env().Undefined();
  }

  // mutexTryLock(off, contended) -> 0 (locked), -EOWNERDEAD (locked; the previous owner
  // died), -EBUSY, -ENOTRECOVERABLE, -EUCLEAN (the mutex's type is corrupt: nothing was
  // called), or another -errno. Locks for the calling thread. The same -EUCLEAN for the
  // other pthread calls below.
  Napi::Value MutexTryLock(const Napi::CallbackInfo& info) {
    pthread_mutex_t* m = MutexAt(info, 0);
    if (!KindOk(m)) return Napi::Number::New(info.Env(), -EUCLEAN);
    int err = pthread_mutex_trylock(m);
    if (err == ENOTRECOVERABLE) {
      // glibc's trylock takes the lock word before it sees "not recoverable" and, unlike
      // pthread_mutex_lock, leaves it taken (it only unlocks `if (oldval == id)`, and
      // oldval is 0 there). Left so, every locker would wait for us forever: release the
      // word as lll_unlock would, and wake the waiters so they see the state too.
      uint32_t* word = reinterpret_cast<uint32_t*>(m);
      uint32_t tid = static_cast<uint32_t>(gettid());
      uint32_t v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
      if ((v & FUTEX_TID_MASK) == tid && __atomic_compare_exchange_n(word, &v, 0, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED) && (v & FUTEX_WAITERS)) {
        Futex(word, FUTEX_WAKE, INT_MAX, nullptr);
      }
    }
    if (err == 0 || err == EOWNERDEAD) {
      held_++;
      map_->leak = true;
      // After a contended wait, other waiters may still sleep on the word: mark it as
      // having waiters (what glibc's own lock does after a wait), so our unlock wakes one.
      if (info.Length() > 1 && info[1].ToBoolean()) __atomic_fetch_or(reinterpret_cast<uint32_t*>(m), FUTEX_WAITERS, __ATOMIC_RELAXED);
    }
    return Napi::Number::New(info.Env(), -err);
  }

  // mutexLockSync(off, ms) -> like mutexTryLock, waiting up to ms (< 0: no limit) on the
  // calling thread (-ETIMEDOUT). For workers and scripts.
  Napi::Value MutexLockSync(const Napi::CallbackInfo& info) {
    pthread_mutex_t* m = MutexAt(info, 0);
    int64_t ms = ArgInt64(info, 1);
    if (!KindOk(m)) return Napi::Number::New(info.Env(), -EUCLEAN);
    int err;
    if (ms < 0) {
      err = pthread_mutex_lock(m);
    } else {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      ts.tv_sec += ms / 1000;
      ts.tv_nsec += (ms % 1000) * 1000000;
      if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
      }
      err = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
    }
    if (err == 0 || err == EOWNERDEAD) {
      held_++;
      map_->leak = true;
    }
    return Napi::Number::New(info.Env(), -err);
  }

  // mutexUnlock(off) -> 0 or -errno (EPERM: this thread does not own it).
  Napi::Value MutexUnlock(const Napi::CallbackInfo& info) {
    pthread_mutex_t* m = MutexAt(info, 0);
    if (!KindOk(m)) return Napi::Number::New(info.Env(), -EUCLEAN);
    int err = pthread_mutex_unlock(m);
    if (err == 0 && held_ > 0 && --held_ == 0) map_->leak = false;
    return Napi::Number::New(info.Env(), -err);
  }

  Napi::Value MutexConsistent(const Napi::CallbackInfo& info) {
    pthread_mutex_t* m = MutexAt(info, 0);
    if (!KindOk(m)) return Napi::Number::New(info.Env(), -EUCLEAN);
    return Napi::Number::New(info.Env(), -pthread_mutex_consistent(m));
  }

  // mutexValid(off): whether the mutex at off has the type MutexInit gives (see KindOk).
  Napi::Value MutexValid(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), KindOk(MutexAt(info, 0))); }

  // mutexPeek(off) -> [futex word, owner field]: glibc's pthread_mutex_t starts with
  // `int __lock; unsigned __count; int __owner;` (bits/struct_mutex.h). A snapshot for
  // diagnostics, taken without locking (locking a mutex whose owner died would change it).
  Napi::Value MutexPeek(const Napi::CallbackInfo& info) {
    pthread_mutex_t* m = MutexAt(info, 0);
    Napi::Array out = Napi::Array::New(info.Env(), 2);
    out.Set(0u, Napi::Number::New(info.Env(), __atomic_load_n(reinterpret_cast<uint32_t*>(&m->__data.__lock), __ATOMIC_ACQUIRE)));
    out.Set(1u, Napi::Number::New(info.Env(), __atomic_load_n(&m->__data.__owner, __ATOMIC_ACQUIRE)));
    return out;
  }

  // watchMutex(off): onWake() once the mutex at off has no owner (unlocked, or its owner
  // died), so that a tryLock can succeed. One watch at a time per segment.
  Napi::Value WatchMutex(const Napi::CallbackInfo& info) {
    uint32_t* w = reinterpret_cast<uint32_t*>(MutexAt(info, 0));
    StartWatch(info.Env(), w, Mode::kMutexFree, 0);
    return info.Env().Undefined();
  }

  // watchChange(off, expected): onWake() once the u32 at off differs from expected.
  Napi::Value WatchChange(const Napi::CallbackInfo& info) {
    uint32_t* w = At<uint32_t>(info, 0);
    StartWatch(info.Env(), w, Mode::kChanged, static_cast<uint32_t>(ArgInt64(info, 1)));
    return info.Env().Undefined();
  }

  // unwatch(): no onWake for the current watch.
  Napi::Value Unwatch(const Napi::CallbackInfo& info) {
    StopWatch();
    return info.Env().Undefined();
  }

  Napi::Value Backend(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), ring_ != nullptr ? "io_uring" : "thread"); }

  // close(): stops watching and unmaps (a held mutex stays mapped until the thread ends).
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release(false);
    return info.Env().Undefined();
  }

  static bool Ready(Mode mode, uint32_t v, uint32_t expected) { return mode == Mode::kMutexFree ? (v & FUTEX_TID_MASK) == 0 : v != expected; }

  void StartWatch(Napi::Env env, uint32_t* word, Mode mode, uint32_t expected) {
    if (ring_ != nullptr) {
      RingStopWait();
      word_ = word;
      mode_ = mode;
      expected_ = expected;
      if (!holding_) {
        ring_->Hold(+1);
        holding_ = true;
      }
      RingArm();
      SetRef(true);
      return;
    }
    bool start = false;
    uint32_t* parked = nullptr;
    {
      std::lock_guard<std::mutex> lk(mu_);
      parked = parkedOn_;
      word_ = word;
      mode_ = mode;
      expected_ = expected;
      generation_++;
      if (!running_) {
        running_ = true;
        exit_ = false;
        start = true;
      } else {
        cv_.notify_one();
      }
    }
    if (start) {
      int err = pthread_create(&thread_, nullptr, Run, this);
      if (err != 0) {
        std::lock_guard<std::mutex> lk(mu_);
        running_ = false;
        mode_ = Mode::kNone;
        ThrowErrno(env, err, "pthread_create");
      }
    } else if (parked != nullptr) {
      // The thread sleeps on the previous word: wake it so it looks at the new watch.
      Futex(parked, FUTEX_WAKE, INT_MAX, nullptr);
    }
    SetRef(true);
  }

  void StopWatch() {
    if (ring_ != nullptr) {
      mode_ = Mode::kNone;
      RingStopWait();
      if (holding_) {
        ring_->Hold(-1);
        holding_ = false;
      }
    } else {
      // The thread may stay parked on the word until it changes; it then goes idle.
      std::lock_guard<std::mutex> lk(mu_);
      mode_ = Mode::kNone;
      generation_++;
    }
    SetRef(false);
  }

  // ---- io_uring: everything on the loop thread ----

  // Has a kernel wait (or, if the watch is already satisfied, a completion next turn).
  void RingArm() {
    std::shared_ptr<SegMapping> shared = map_;
    uint64_t generation = ++generation_;
    uint32_t* word = word_;
    uint32_t v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
    while (!Ready(mode_, v, expected_) && mode_ == Mode::kMutexFree && (v & FUTEX_WAITERS) == 0) {
      // Announce a waiter, as glibc's lock does, so the owner's unlock wakes us.
      if (__atomic_compare_exchange_n(word, &v, v | FUTEX_WAITERS, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) v |= FUTEX_WAITERS;
    }
    bool isWait = !Ready(mode_, v, expected_);
    bool passOn = mode_ == Mode::kMutexFree;
    auto done = [shared, generation, word, isWait, passOn](int res) {
      SyncSegment* self = shared->owner;
      if (self == nullptr || self->closed_ || generation != self->generation_) {
        // A futex wake-up for a watch we dropped was meant for some waiter of the
        // mutex (an unlock wakes one): pass it on.
        if (isWait && passOn && res == 0) Futex(word, FUTEX_WAKE, 1, nullptr);
        return;
      }
      self->RingCompleted();
    };
    inflight_ = isWait ? ring_->Wait(word, v, done) : ring_->Soon(done);
    if (inflight_ == 0) {
      // The ring refused (should not happen): fire, and let the owner try again.
      mode_ = Mode::kNone;
      ring_->Soon([shared](int) {
        SyncSegment* self = shared->owner;
        if (self != nullptr && !self->closed_) self->Fire();
      });
    }
  }

  void RingStopWait() {
    generation_++;
    if (inflight_ != 0) {
      ring_->Cancel(inflight_);
      inflight_ = 0;
    }
  }

  void RingCompleted() {
    inflight_ = 0;
    if (mode_ == Mode::kNone) return;
    uint32_t v = __atomic_load_n(word_, __ATOMIC_ACQUIRE);
    if (!Ready(mode_, v, expected_)) {
      RingArm();
      return;
    }
    mode_ = Mode::kNone;
    if (holding_) {
      ring_->Hold(-1);
      holding_ = false;
    }
    Fire();
  }

  // ---- thread ----

  static void* Run(void* arg) {
    SyncSegment* self = static_cast<SyncSegment*>(arg);
    for (;;) {
      uint32_t* word;
      Mode mode;
      uint32_t expected;
      uint64_t generation;
      {
        std::unique_lock<std::mutex> lk(self->mu_);
        self->cv_.wait(lk, [self] { return self->exit_ || self->mode_ != Mode::kNone; });
        if (self->exit_) return nullptr;
        word = self->word_;
        mode = self->mode_;
        expected = self->expected_;
        generation = self->generation_;
      }
      uint32_t v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
      if (Ready(mode, v, expected)) {
        bool fire = false;
        {
          std::lock_guard<std::mutex> lk(self->mu_);
          if (self->generation_ == generation && self->mode_ != Mode::kNone) {
            self->mode_ = Mode::kNone;
            fire = true;
          }
        }
        if (fire) self->signal_->Send();
        // A wake-up for a watch dropped meanwhile was meant for another waiter: pass it on.
        else if (mode == Mode::kMutexFree) Futex(word, FUTEX_WAKE, 1, nullptr);
        continue;
      }
      if (mode == Mode::kMutexFree && (v & FUTEX_WAITERS) == 0) {
        // Announce a waiter, as glibc's lock does, so the owner's unlock wakes us.
        if (!__atomic_compare_exchange_n(word, &v, v | FUTEX_WAITERS, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) continue;
        v |= FUTEX_WAITERS;
      }
      {
        std::lock_guard<std::mutex> lk(self->mu_);
        if (self->exit_ || self->generation_ != generation) continue;
        self->parkedOn_ = word;
      }
      // A backstop timeout: a stop that races with going to sleep costs at most this.
      struct timespec slice = {0, 100 * 1000 * 1000};
      long woken = Futex(word, FUTEX_WAIT, v, &slice);
      bool dropped;
      {
        std::lock_guard<std::mutex> lk(self->mu_);
        self->parkedOn_ = nullptr;
        dropped = self->mode_ == Mode::kNone || self->generation_ != generation;
      }
      // An unlock wakes one sleeper. If it woke us for a watch that was dropped meanwhile
      // (a lock() that timed out or was aborted), it was meant for another waiter of the
      // mutex: pass it on, or that waiter sleeps on while the mutex is free.
      if (woken == 0 && dropped && mode == Mode::kMutexFree) Futex(word, FUTEX_WAKE, 1, nullptr);
    }
  }

  // Loop thread, thread backend: a watch fired.
  void OnSignal() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (mode_ != Mode::kNone) return;  // a newer watch is pending; it will fire itself
    }
    Fire();
  }

  void Fire() {
    SetRef(false);
    Napi::Env env(env_);
    Napi::HandleScope scope(env);
    CallBack(env, Value(), "_onWake", {}, context_);
  }

  void SetRef(bool on) {
    if (signal_ != nullptr) signal_->Ref(on);
    if (on && !refd_) {
      Ref();
      refd_ = true;
    } else if (!on && refd_) {
      refd_ = false;
      Unref();
    }
  }

  void StopThread() {
    uint32_t* parked;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (!running_) return;
      exit_ = true;
      mode_ = Mode::kNone;
      cv_.notify_one();
      parked = parkedOn_;
    }
    if (parked != nullptr) Futex(parked, FUTEX_WAKE, INT_MAX, nullptr);
    pthread_join(thread_, nullptr);
    std::lock_guard<std::mutex> lk(mu_);
    running_ = false;
    exit_ = false;
  }

  void Release(bool envGoingAway) {
    if (closed_) return;
    closed_ = true;
    if (ring_ != nullptr) {
      // During env cleanup the ring may be gone already (its waits went with it).
      if (!envGoingAway || FutexRing::For(env_) == ring_) {
        RingStopWait();
        if (holding_) ring_->Hold(-1);
      }
      holding_ = false;
      ring_ = nullptr;
    }
    StopThread();
    if (signal_ != nullptr) {
      signal_->Close();
      delete signal_;
      signal_ = nullptr;
    }
    if (!envGoingAway) napi_remove_env_cleanup_hook(env_, CleanupHook, this);
    base_ = nullptr;
    if (map_) map_->owner = nullptr;
    map_.reset();  // unmapped now (unless held: see SegMapping), or after the last kernel wait
    if (refd_) {
      refd_ = false;
      if (!envGoingAway) Unref();
    }
  }

  // A worker that ends: no thread, kernel wait or loop handle is left behind. A mutex
  // this thread still holds stays mapped, so the kernel marks it "owner died" when the
  // thread exits.
  static void CleanupHook(void* arg) { static_cast<SyncSegment*>(arg)->Release(true); }

  std::shared_ptr<SegMapping> map_;
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
  int held_ = 0;
  napi_env env_ = nullptr;
  Napi::AsyncContext context_;
  bool refd_ = false;
  bool closed_ = false;

  // the current watch (loop thread for io_uring; under mu_ for the thread)
  Mode mode_ = Mode::kNone;
  uint32_t* word_ = nullptr;
  uint32_t expected_ = 0;
  uint64_t generation_ = 0;

  // io_uring
  FutexRing* ring_ = nullptr;
  uint64_t inflight_ = 0;
  bool holding_ = false;

  // thread
  LoopSignal* signal_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  pthread_t thread_{};
  bool running_ = false;
  bool exit_ = false;
  uint32_t* parkedOn_ = nullptr;
};

}  // namespace

void InitMutex(Napi::Env env, Napi::Object exports) {
  exports.Set("syncShmOpen", Napi::Function::New(env, SyncShmOpen, "syncShmOpen"));
  exports.Set("syncShmUnlink", Napi::Function::New(env, SyncShmUnlink, "syncShmUnlink"));
  exports.Set("syncFtruncate", Napi::Function::New(env, SyncFtruncate, "syncFtruncate"));
  SyncSegment::Init(env, exports);
}

}  // namespace ipckit
