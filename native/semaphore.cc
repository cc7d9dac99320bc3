// POSIX named semaphores (sem_*).
//
// Creation goes through sem_open(O_CREAT | O_EXCL), so the object is exactly what a C or
// Python peer's sem_open expects. Every handle, ours or opened, is then a mapping of the
// file /dev/shm/sem.<name> that TypeScript opened with O_NOFOLLOW and checked with fstat
// (owner and mode): the semaphore we use is the one we checked, with no window between
// the check and the use. sem_wait/sem_post work on any process-shared sem_t, and the
// one in that file is one.
//
// An async wait must not block the event loop nor sit on libuv's thread pool, and a
// semaphore has no file descriptor to poll. So each handle that waits gets one
// dedicated thread: it takes permits with sem_wait while the JS side wants them, and
// reports each batch to the loop (LoopSignal). When the JS side stops wanting (a timeout,
// an abort, close), the thread is cancelled inside sem_wait (pthread_cancel: sem_wait is
// a cancellation point that takes no permit when cancelled); a permit the thread took
// after it was no longer wanted is posted back, so a cancelled wait never steals one.
#include "addon.h"
#include "waiter.h"

#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <time.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>

namespace ipckit {
namespace {

// Absolute CLOCK_MONOTONIC deadline `ms` from now.
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

// One mapped semaphore, and the thread that waits on it for the event loop.
class Semaphore : public Napi::ObjectWrap<Semaphore> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "Semaphore", {
      InstanceMethod<&Semaphore::Post>("post"),
      InstanceMethod<&Semaphore::TryWait>("tryWait"),
      InstanceMethod<&Semaphore::WaitSync>("waitSync"),
      InstanceMethod<&Semaphore::GetValue>("value"),
      InstanceMethod<&Semaphore::SetWanted>("setWanted"),
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
    sem_ = static_cast<sem_t*>(p);
    env_ = env;
    signal_ = new LoopSignal(env, [this] { Deliver(); });
    napi_add_env_cleanup_hook(env, CleanupHook, this);
  }

  ~Semaphore() override { Release(); }

 private:
  Napi::Value Post(const Napi::CallbackInfo& info) {
    if (sem_ == nullptr) ThrowErrno(info.Env(), EBADF, "sem_post");
    if (sem_post(sem_) != 0) ThrowErrno(info.Env(), "sem_post");
    return info.Env().Undefined();
  }

  // tryWait() -> 0 (took a permit) or -errno (EAGAIN: none).
  Napi::Value TryWait(const Napi::CallbackInfo& info) {
    if (sem_ == nullptr) return Napi::Number::New(info.Env(), -EBADF);
    return Napi::Number::New(info.Env(), sem_trywait(sem_) == 0 ? 0 : -errno);
  }

  // waitSync(ms) -> 0 or -errno (ETIMEDOUT). ms < 0: no timeout. Blocks this thread.
  Napi::Value WaitSync(const Napi::CallbackInfo& info) {
    if (sem_ == nullptr) return Napi::Number::New(info.Env(), -EBADF);
    int64_t ms = ArgInt64(info, 0);
    int r;
    if (ms < 0) {
      do r = sem_wait(sem_); while (r != 0 && errno == EINTR);
    } else {
      struct timespec deadline = DeadlineIn(ms);
      do r = sem_clockwait(sem_, CLOCK_MONOTONIC, &deadline); while (r != 0 && errno == EINTR);
    }
    return Napi::Number::New(info.Env(), r == 0 ? 0 : -errno);
  }

  Napi::Value GetValue(const Napi::CallbackInfo& info) {
    if (sem_ == nullptr) ThrowErrno(info.Env(), EBADF, "sem_getvalue");
    int v = 0;
    if (sem_getvalue(sem_, &v) != 0) ThrowErrno(info.Env(), "sem_getvalue");
    return Napi::Number::New(info.Env(), v);
  }

  // setWanted(n): how many permits the JS side is waiting for now. The thread takes
  // permits while it has fewer than that; when n drops to what it already has, it is
  // stopped inside sem_wait.
  Napi::Value SetWanted(const Napi::CallbackInfo& info) {
    if (sem_ == nullptr) return info.Env().Undefined();
    int n = ArgInt(info, 0);
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
    if (start) StartThread(info.Env());
    signal_->Ref(n > 0);
    if (n > 0 && !refd_) {
      Ref();
      refd_ = true;
    } else if (n == 0 && refd_) {
      Unref();
      refd_ = false;
    }
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
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
      pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
      int r = sem_wait(self->sem_);
      int err = r == 0 ? 0 : errno;
      pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
      bool notify = false;
      {
        std::lock_guard<std::mutex> lk(self->mu_);
        self->inWait_ = false;
        if (r == 0) {
          if (!self->exit_ && self->acquired_ < self->wanted_) {
            self->acquired_++;
            notify = true;
          } else {
            sem_post(self->sem_);  // nobody wants it any more: give it back
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

  // Loop thread: hands the permits taken so far to JS (onPermits(count, errno)).
  void Deliver() {
    int n, err;
    {
      std::lock_guard<std::mutex> lk(mu_);
      n = acquired_;
      acquired_ = 0;
      wanted_ = wanted_ > n ? wanted_ - n : 0;
      err = error_;
      error_ = 0;
    }
    if (n == 0 && err == 0) return;
    if (err != 0) StopThread();  // it has ended; a later wait starts a new one
    Napi::Env env(env_);
    Napi::HandleScope scope(env);
    CallBack(env, Value(), "_onPermits", {Napi::Number::New(env, n), Napi::Number::New(env, err)}, context_);
  }

  void Release() {
    StopThread();
    if (signal_ != nullptr) {
      signal_->Close();
      delete signal_;
      signal_ = nullptr;
      napi_remove_env_cleanup_hook(env_, CleanupHook, this);
    }
    if (sem_ != nullptr) {
      munmap(sem_, sizeof(sem_t));
      sem_ = nullptr;
    }
    if (refd_) {
      refd_ = false;
      Unref();
    }
  }

  // A worker that ends must not leave a thread or a loop handle behind.
  static void CleanupHook(void* arg) {
    Semaphore* self = static_cast<Semaphore*>(arg);
    self->StopThread();
    if (self->signal_ != nullptr) {
      self->signal_->Close();
      delete self->signal_;
      self->signal_ = nullptr;
    }
    if (self->sem_ != nullptr) {
      munmap(self->sem_, sizeof(sem_t));
      self->sem_ = nullptr;
    }
    self->refd_ = false;  // the env is going away: no Unref on it
  }

  sem_t* sem_ = nullptr;
  napi_env env_ = nullptr;
  Napi::AsyncContext context_;
  LoopSignal* signal_ = nullptr;
  bool refd_ = false;

  std::mutex mu_;
  std::condition_variable cv_;
  pthread_t thread_{};
  bool running_ = false;
  bool inWait_ = false;
  bool exit_ = false;
  int wanted_ = 0;
  int acquired_ = 0;
  int error_ = 0;
};

}  // namespace

void InitSemaphore(Napi::Env env, Napi::Object exports) {
  exports.Set("semCreate", Napi::Function::New(env, SemCreate, "semCreate"));
  exports.Set("semUnlink", Napi::Function::New(env, SemUnlink, "semUnlink"));
  Semaphore::Init(env, exports);
}

}  // namespace ipckit
