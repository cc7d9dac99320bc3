// POSIX named semaphores (sem_*).
//
// Creation goes through sem_open(O_CREAT | O_EXCL), so the object is exactly what a C or
// Python peer's sem_open expects. Every handle, ours or opened, is then a mapping of the
// file /dev/shm/sem.<name> that TypeScript opened with O_NOFOLLOW and checked with fstat
// (owner and mode): the semaphore we use is the one we checked, with no window between
// the check and the use. sem_wait/sem_post work on any process-shared sem_t, and the
// one in that file is one.
//
// An async wait must neither block the event loop nor sit on libuv's thread pool, and a
// semaphore has no file descriptor to poll. Two ways, chosen per handle:
//
// - io_uring (uring.h), where the kernel has IORING_OP_FUTEX_WAIT: the loop thread takes
//   permits itself with the same atomic steps as glibc's sem_wait (glibc's sem_t on
//   64-bit Linux: one u64, value in the low half, waiter count in the high half; a
//   sem_post wakes the value word when the count is not zero). We register as a waiter,
//   and a futex wait on the value word completes on the loop when a peer posts. No
//   thread, one wake-up per post, as for a C program.
// - otherwise a dedicated thread per waiting handle: it takes permits with sem_wait
//   while the JS side wants them and reports each batch to the loop (LoopSignal). When
//   the JS side stops wanting (a timeout, an abort, close), the thread is cancelled
//   inside sem_wait (pthread_cancel: a cancellation point that takes no permit).
//
// Either way a wait that is cancelled never keeps a permit: one taken after the JS side
// stopped wanting it is posted back.
#include "addon.h"
#include "uring.h"
#include "waiter.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <memory>
#include <mutex>

namespace ipckit {
namespace {

// glibc's layout of a sem_t on 64-bit little-endian Linux (nptl/semaphoreP.h, struct
// new_sem with __HAVE_64B_ATOMICS): the io_uring path relies on it and is used only here.
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

struct timespec DeadlineIn(int64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  return ts;
}

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

class Semaphore;

// Shared by the handle and any wait still in the kernel: the mapping is unmapped when
// the last of them is done with it, and a completion that arrives after the handle is
// gone finds `owner` null.
struct SemMapping {
  sem_t* sem = nullptr;
  Semaphore* owner = nullptr;
  ~SemMapping() {
    if (sem != nullptr) munmap(sem, sizeof(sem_t));
  }
};

// A futex wake-up that reached a wait we no longer wanted was meant for some waiter:
// pass it on, so that no waiter elsewhere sleeps while a permit is there.
void PassWakeOn(sem_t* sem) { syscall(SYS_futex, reinterpret_cast<uint32_t*>(sem), FUTEX_WAKE, 1, nullptr, nullptr, 0); }

class Semaphore : public Napi::ObjectWrap<Semaphore> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "Semaphore", {
      InstanceMethod<&Semaphore::Post>("post"),
      InstanceMethod<&Semaphore::TryWait>("tryWait"),
      InstanceMethod<&Semaphore::WaitSync>("waitSync"),
      InstanceMethod<&Semaphore::GetValue>("value"),
      InstanceMethod<&Semaphore::SetWanted>("setWanted"),
      InstanceMethod<&Semaphore::Backend>("backend"),
      InstanceMethod<&Semaphore::GetIntact>("intact"),
      InstanceMethod<&Semaphore::Close>("close"),
    });
    exports.Set("Semaphore", ctor);
    exports.Set("SEM_SIZE", Napi::Number::New(env, sizeof(sem_t)));
  }

  // new Semaphore(fd, onPermits(count, errno)): maps sizeof(sem_t) bytes of `fd`
  // (TypeScript checked the file's size). The fd may be closed afterwards.
  explicit Semaphore(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<Semaphore>(info), context_(info.Env(), "ipckit.Semaphore") {
    Napi::Env env = info.Env();
    int fd = ArgInt(info, 0);
    if (info.Length() < 2 || !info[1].IsFunction()) throw Napi::TypeError::New(env, "Semaphore: callback required");
    info.This().As<Napi::Object>().Set("_onPermits", info[1]);
    void* p = mmap(nullptr, sizeof(sem_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) ThrowErrno(env, "mmap");
    map_ = std::make_shared<SemMapping>();
    map_->sem = static_cast<sem_t*>(p);
    map_->owner = this;
    env_ = env;
#if IPCKIT_GLIBC_SEM
    // Only a process-shared sem_t is woken with shared futexes, the kind we wait on.
    if (reinterpret_cast<GlibcSem*>(p)->priv == kGlibcFutexShared) ring_ = FutexRing::For(env);
#endif
    if (ring_ == nullptr) signal_ = new LoopSignal(env, [this] { DeliverFromThread(); });
    napi_add_env_cleanup_hook(env, CleanupHook, this);
  }

  ~Semaphore() override { Release(false); }

 private:
  sem_t* Sem() const { return map_ ? map_->sem : nullptr; }

  Napi::Value Post(const Napi::CallbackInfo& info) {
    if (Sem() == nullptr) ThrowErrno(info.Env(), EBADF, "sem_post");
    if (!Intact()) ThrowErrno(info.Env(), EUCLEAN, "sem_post");
    if (sem_post(Sem()) != 0) ThrowErrno(info.Env(), "sem_post");
    return info.Env().Undefined();
  }

  // glibc takes the futex flags of every call from the shared sem_t and trusts them: a
  // corrupt value turns sem_post's wake into a wait that never ends, makes glibc abort
  // ("The futex facility returned an unexpected error code"), or makes it use
  // process-private futexes that no other process wakes. So each call checks them first
  // (EUCLEAN: corrupt). A named semaphore is always process-shared.
  bool Intact() const {
#if IPCKIT_GLIBC_SEM
    return Sem() != nullptr && __atomic_load_n(&G()->priv, __ATOMIC_RELAXED) == kGlibcFutexShared;
#else
    return true;
#endif
  }

  // intact() -> false if the sem_t is corrupt (see Intact).
  Napi::Value GetIntact(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), Intact()); }

  // tryWait() -> 0 (took a permit) or -errno (EAGAIN: none; EUCLEAN: corrupt).
  Napi::Value TryWait(const Napi::CallbackInfo& info) {
    if (Sem() == nullptr) return Napi::Number::New(info.Env(), -EBADF);
    if (!Intact()) return Napi::Number::New(info.Env(), -EUCLEAN);
    return Napi::Number::New(info.Env(), sem_trywait(Sem()) == 0 ? 0 : -errno);
  }

  // waitSync(ms) -> 0 or -errno (ETIMEDOUT). ms < 0: no timeout. Blocks this thread.
  Napi::Value WaitSync(const Napi::CallbackInfo& info) {
    if (Sem() == nullptr) return Napi::Number::New(info.Env(), -EBADF);
    if (!Intact()) return Napi::Number::New(info.Env(), -EUCLEAN);
    int64_t ms = ArgInt64(info, 0);
    int r;
    if (ms < 0) {
      do r = sem_wait(Sem()); while (r != 0 && errno == EINTR);
    } else {
      struct timespec deadline = DeadlineIn(ms);
      do r = sem_clockwait(Sem(), CLOCK_MONOTONIC, &deadline); while (r != 0 && errno == EINTR);
    }
    return Napi::Number::New(info.Env(), r == 0 ? 0 : -errno);
  }

  Napi::Value GetValue(const Napi::CallbackInfo& info) {
    if (Sem() == nullptr) ThrowErrno(info.Env(), EBADF, "sem_getvalue");
    int v = 0;
    if (sem_getvalue(Sem(), &v) != 0) ThrowErrno(info.Env(), "sem_getvalue");
    return Napi::Number::New(info.Env(), v);
  }

  Napi::Value Backend(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), ring_ != nullptr ? "io_uring" : "thread"); }

  // setWanted(n): how many permits the JS side is waiting for now.
  Napi::Value SetWanted(const Napi::CallbackInfo& info) {
    if (Sem() == nullptr) return info.Env().Undefined();
    int n = ArgInt(info, 0);
    if (ring_ != nullptr) RingSetWanted(n);
    else ThreadSetWanted(info.Env(), n);
    // A handle with waits keeps the process alive, and the JS object with it.
    if (n > 0 && !refd_) {
      Ref();
      refd_ = true;
    } else if (n == 0 && refd_) {
      refd_ = false;
      Unref();
    }
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release(false);
    return info.Env().Undefined();
  }

  // Loop thread: hands `n` permits (and a failure, if any) to JS.
  void Deliver(int n, int err) {
    if (n == 0 && err == 0) return;
    Napi::Env env(env_);
    Napi::HandleScope scope(env);
    CallBack(env, Value(), "_onPermits", {Napi::Number::New(env, n), Napi::Number::New(env, err)}, context_);
  }

  // ---- io_uring: everything on the loop thread ----
#if IPCKIT_GLIBC_SEM
  GlibcSem* G() const { return reinterpret_cast<GlibcSem*>(Sem()); }
  uint32_t* ValueWord() const { return reinterpret_cast<uint32_t*>(&G()->data); }

  // Takes one permit if the value is above zero (glibc's own fast path).
  bool TryTake() {
    uint64_t d = __atomic_load_n(&G()->data, __ATOMIC_RELAXED);
    while (static_cast<uint32_t>(d) > 0) {
      if (__atomic_compare_exchange_n(&G()->data, &d, d - 1, true, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return true;
    }
    return false;
  }
#endif

  void RingSetWanted(int n) {
    wanted_ = n;
    if (acquired_ < wanted_) {
      if (!holding_) {
        ring_->Hold(+1);
        holding_ = true;
      }
      RingArm();
    } else {
      RingStop();
    }
  }

  // Registers as a waiter and has a futex wait in the kernel. A value above zero makes
  // the wait complete at once (-EAGAIN), and the completion takes the permits.
  void RingArm() {
#if IPCKIT_GLIBC_SEM
    if (!Intact()) {
      // Our futex wait would never hear a peer's post: report it like a failed sem_wait.
      RingStop();
      std::shared_ptr<SemMapping> shared = map_;
      ring_->Soon([shared](int) {
        Semaphore* self = shared->owner;
        if (self != nullptr && !self->closed_) self->Deliver(0, EUCLEAN);
      });
      return;
    }
    if (!registered_) {
      __atomic_fetch_add(&G()->data, kOneWaiter, __ATOMIC_RELAXED);
      registered_ = true;
    }
    if (inflight_ != 0) return;
    std::shared_ptr<SemMapping> shared = map_;
    uint64_t generation = ++generation_;
    inflight_ = ring_->Wait(ValueWord(), 0, [shared, generation](int res) {
      Semaphore* self = shared->owner;
      if (self == nullptr || self->closed_ || generation != self->generation_) {
        if (res == 0) PassWakeOn(shared->sem);
        return;
      }
      self->RingCompleted(res);
    });
    if (inflight_ == 0) {
      // The ring refused the wait (should not happen): report it like a failed sem_wait.
      RingStop();
      ring_->Soon([shared](int) {
        Semaphore* self = shared->owner;
        if (self != nullptr && !self->closed_) self->Deliver(0, EAGAIN);
      });
    }
#endif
  }

  // No permit wanted any more: leave the waiter count and end the kernel wait. With
  // `ringAlive` false (the env's ring is already gone) only the count is fixed.
  void RingStop(bool ringAlive = true) {
#if IPCKIT_GLIBC_SEM
    if (registered_) {
      __atomic_fetch_sub(&G()->data, kOneWaiter, __ATOMIC_RELAXED);
      registered_ = false;
    }
    if (inflight_ != 0) {
      generation_++;  // its completion still comes, and is then ignored
      if (ringAlive) ring_->Cancel(inflight_);
      inflight_ = 0;
    }
    if (holding_) {
      if (ringAlive) ring_->Hold(-1);
      holding_ = false;
    }
#endif
  }

  void RingCompleted(int res) {
#if IPCKIT_GLIBC_SEM
    inflight_ = 0;
    if (res < 0 && res != -EAGAIN && res != -EINTR && res != -ECANCELED) {
      RingStop();
      Deliver(0, -res);
      return;
    }
    while (acquired_ < wanted_ && TryTake()) acquired_++;
    if (acquired_ < wanted_) RingArm();
    else RingStop();
    int n = acquired_;
    acquired_ = 0;
    wanted_ = wanted_ > n ? wanted_ - n : 0;
    Deliver(n, 0);
#endif
  }

  // ---- thread: the waiter thread and the loop share the state under mu_ ----

  void ThreadSetWanted(Napi::Env env, int n) {
    bool cancel = false;
    bool start = false;
    {
      std::lock_guard<std::mutex> lk(mu_);
      wanted_ = n;
      if (acquired_ < wanted_) {
        if (!running_) start = true;
        else cv_.notify_one();
      } else if (running_ && inWait_) {
        cancel = true;
        exit_ = true;  // the thread leaves at the top of its loop if it is not in sem_wait
      }
    }
    if (cancel) StopThread();
    if (start) StartThread(env);
    if (signal_ != nullptr) signal_->Ref(n > 0);
  }

  void StartThread(Napi::Env env) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      exit_ = false;
      running_ = true;
    }
    int err = pthread_create(&thread_, nullptr, Run, this);
    if (err != 0) {
      std::lock_guard<std::mutex> lk(mu_);
      running_ = false;
      ThrowErrno(env, err, "pthread_create");
    }
  }

  // Cancels the thread (if it is in sem_wait) and waits for it to end. Never called
  // with mu_ held: the thread takes mu_ after sem_wait returns.
  void StopThread() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (!running_) return;
      exit_ = true;
      cv_.notify_one();
    }
    pthread_cancel(thread_);
    pthread_join(thread_, nullptr);
    std::lock_guard<std::mutex> lk(mu_);
    running_ = false;
    inWait_ = false;
    exit_ = false;
  }

  static void* Run(void* arg) {
    Semaphore* self = static_cast<Semaphore*>(arg);
    sem_t* sem = self->Sem();
    int old;
    // Cancellation is allowed only inside sem_wait, where it takes no permit.
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(self->mu_);
        self->cv_.wait(lk, [self] { return self->exit_ || self->acquired_ < self->wanted_; });
        if (self->exit_) return nullptr;
        self->inWait_ = true;
      }
      int r = -1;
      int err = EUCLEAN;
      if (self->Intact()) {
        pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
        r = sem_wait(sem);
        err = r == 0 ? 0 : errno;
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
      }
      bool notify = false;
      {
        std::lock_guard<std::mutex> lk(self->mu_);
        self->inWait_ = false;
        if (r == 0) {
          if (!self->exit_ && self->acquired_ < self->wanted_) {
            self->acquired_++;
            notify = true;
          } else {
            sem_post(sem);  // nobody wants it any more: give it back
          }
        } else if (err != EINTR) {
          self->error_ = err;
          self->exit_ = true;
          notify = true;
        }
      }
      if (notify) self->signal_->Send();
    }
  }

  // Loop thread: hands the permits the thread took to JS.
  void DeliverFromThread() {
    int n, err;
    {
      std::lock_guard<std::mutex> lk(mu_);
      n = acquired_;
      acquired_ = 0;
      wanted_ = wanted_ > n ? wanted_ - n : 0;
      err = error_;
      error_ = 0;
    }
    if (err != 0) StopThread();  // it has ended; a later wait starts a new one
    Deliver(n, err);
  }

  void Release(bool envGoingAway) {
    if (closed_) return;
    closed_ = true;
    if (ring_ != nullptr) {
      // During env cleanup the ring may be gone already (its waits went with it).
      RingStop(!envGoingAway || FutexRing::For(env_) == ring_);
      ring_ = nullptr;
    }
    StopThread();
    if (signal_ != nullptr) {
      signal_->Close();
      delete signal_;
      signal_ = nullptr;
    }
    if (!envGoingAway) napi_remove_env_cleanup_hook(env_, CleanupHook, this);
    if (map_) map_->owner = nullptr;
    map_.reset();  // unmapped now, or when the last kernel wait on it completes
    if (refd_) {
      refd_ = false;
      if (!envGoingAway) Unref();
    }
  }

  // A worker that ends must not leave a thread, a kernel wait or a loop handle behind.
  static void CleanupHook(void* arg) { static_cast<Semaphore*>(arg)->Release(true); }

  std::shared_ptr<SemMapping> map_;
  napi_env env_ = nullptr;
  Napi::AsyncContext context_;
  bool refd_ = false;
  bool closed_ = false;
  int wanted_ = 0;
  int acquired_ = 0;

  // io_uring
  FutexRing* ring_ = nullptr;
  bool registered_ = false;
  bool holding_ = false;
  uint64_t inflight_ = 0;
  uint64_t generation_ = 0;

  // thread
  LoopSignal* signal_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  pthread_t thread_{};
  bool running_ = false;
  bool inWait_ = false;
  bool exit_ = false;
  int error_ = 0;
};

}  // namespace

void InitSemaphore(Napi::Env env, Napi::Object exports) {
  exports.Set("semCreate", Napi::Function::New(env, SemCreate, "semCreate"));
  exports.Set("semUnlink", Napi::Function::New(env, SemUnlink, "semUnlink"));
  Semaphore::Init(env, exports);
}

}  // namespace ipckit
