// BlockingCalls: system calls that block with nothing to poll (a file-lock wait, a System V
// message or semaphore wait), run on dedicated threads of ours so that neither the event
// loop nor libuv's thread pool waits in them. One object per JS environment.
//
// - A call is queued and taken by an idle thread of this object (a new one is started when
//   none is idle); threads are reused. Its result (-errno, or what the call returns) is
//   reported on the loop through a LoopSignal: dispatch(id, result, extra).
// - Cancellation (a timeout, an abort, close) interrupts the call with a signal, never with
//   pthread_cancel. glibc before 2.39 makes a cancellable system call by switching to
//   asynchronous cancellation around it, so a cancel that arrives just after the call
//   completed still acts: the call's effect happens (a lock taken, a message sent or taken)
//   but is reported as cancelled. Measured here (glibc 2.36): of 1101 cancellations of an
//   F_OFD_SETLKW right after the lock was released, 710 had taken the lock.
//   Instead, cancelling sets the call's stop flag and sends its thread kInterrupt (SIGURG),
//   whose handler does nothing: a call blocked in the kernel fails with EINTR (our handler
//   has no SA_RESTART, and System V IPC calls are never restarted anyway), the thread sees
//   the flag and reports -ECANCELED, having done nothing. A call that completed first
//   reports its result, and the JavaScript side settles or undoes it. The signal may come
//   just before the thread enters the call (after it looked at the flag): while a
//   cancelled call still runs, the loop sends it again every kResendMs.
// - When the environment ends (a worker terminated), every call is stopped and every
//   thread has ended before the object goes away.
#include "addon.h"
#include "waiter.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace ipckit {
namespace {

// The signal that interrupts a call: ignored by default, used by nothing in Node.
constexpr int kInterrupt = SIGURG;
// How often a cancelled call that is still running is sent the signal again.
constexpr uint64_t kResendMs = 10;

struct sigaction g_previous;

// Ours (sent with pthread_kill by this process): nothing to do, the point was the EINTR.
// Anything else goes to whatever handled SIGURG before us.
void OnInterrupt(int signo, siginfo_t* si, void* context) {
  if (si != nullptr && si->si_code == SI_TKILL && si->si_pid == getpid()) return;
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction != nullptr) g_previous.sa_sigaction(signo, si, context);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN && g_previous.sa_handler != nullptr) {
    g_previous.sa_handler(signo);
  }
}

void InstallInterrupt() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa = {};
    sa.sa_sigaction = OnInterrupt;
    sa.sa_flags = SA_SIGINFO;  // no SA_RESTART: an interrupted call returns EINTR
    sigemptyset(&sa.sa_mask);
    sigaction(kInterrupt, &sa, &g_previous);
  });
}

struct Call {
  uint32_t id = 0;
  // The blocking call: >= 0, or -errno. It looks at `stop` before each attempt and after an
  // EINTR, and returns -ECANCELED when it is set.
  std::function<long(Call&)> run;
  long result = 0;
  double extra = 0;  // a second result some calls give (msgrcvWait: the message's type)
  enum class State { Queued, Running, Done } state = State::Queued;
  std::atomic<bool> stop{false};
  pthread_t thread{};
};

class BlockingCalls : public Napi::ObjectWrap<BlockingCalls> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "BlockingCalls", {
      InstanceMethod<&BlockingCalls::LockWait>("lockWait"),
      InstanceMethod<&BlockingCalls::MsgrcvWait>("msgrcvWait"),
      InstanceMethod<&BlockingCalls::MsgsndWait>("msgsndWait"),
      InstanceMethod<&BlockingCalls::SemopWait>("semopWait"),
      InstanceMethod<&BlockingCalls::Cancel>("cancel"),
      InstanceMethod<&BlockingCalls::Threads>("threads"),
    });
    exports.Set("BlockingCalls", ctor);
  }

  // new BlockingCalls(dispatch(id, result, extra)): one per JS environment.
  explicit BlockingCalls(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BlockingCalls>(info), context_(info.Env(), "ipckit.BlockingCalls") {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(env, "BlockingCalls: dispatch function required");
    info.This().As<Napi::Object>().Set("_dispatch", info[0]);
    env_ = env;
    InstallInterrupt();
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) throw Napi::Error::New(env, "BlockingCalls: no event loop");
    resend_ = new uv_timer_t;
    uv_timer_init(loop, resend_);
    resend_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(resend_));  // pending calls keep the loop alive, not this timer
    signal_ = new LoopSignal(env, [this] { DeliverDone(); });
    Ref();  // lives as long as the environment (the module keeps one)
    napi_add_env_cleanup_hook(env, CleanupHook, this);
  }

  ~BlockingCalls() override { Shutdown(); }

 private:
  // lockWait(fd, cmd, type, start, length): fcntl(fd, cmd, { type, SEEK_SET, start, length })
  // with cmd F_OFD_SETLKW or F_SETLKW. Returns the call's id.
  Napi::Value LockWait(const Napi::CallbackInfo& info) {
    int fd = ArgInt(info, 0);
    int cmd = ArgInt(info, 1);
    if (cmd != F_OFD_SETLKW && cmd != F_SETLKW) throw Napi::TypeError::New(info.Env(), "lockWait: cmd must be F_OFD_SETLKW or F_SETLKW");
    short type = static_cast<short>(ArgInt(info, 2));
    off_t start = static_cast<off_t>(ArgInt64(info, 3));
    off_t length = static_cast<off_t>(ArgInt64(info, 4));
    return Napi::Number::New(info.Env(), Submit(info.Env(), [fd, cmd, type, start, length](Call& c) -> long {
      struct flock fl = {};
      fl.l_type = type;
      fl.l_whence = SEEK_SET;
      fl.l_start = start;
      fl.l_len = length;
      for (;;) {
        if (c.stop.load(std::memory_order_acquire)) return -ECANCELED;
        if (fcntl(fd, cmd, &fl) == 0) return 0;
        if (errno != EINTR) return -errno;
      }
    }));
  }

  // msgrcvWait(id, type, flags): msgrcv(id, buffer, 0, type, flags), blocking until a message
  // of that type selection is in the queue. The zero-sized buffer is the point: the kernel
  // leaves a longer message in the queue and says E2BIG, so this waits for a message without
  // taking it (the loop thread then takes it with IPC_NOWAIT). A zero-length message fits
  // and is taken: the result is then 0 and `extra` its type.
  Napi::Value MsgrcvWait(const Napi::CallbackInfo& info) {
    int id = ArgInt(info, 0);
    long type = static_cast<long>(ArgInt64(info, 1));
    int flags = ArgInt(info, 2);
    return Napi::Number::New(info.Env(), Submit(info.Env(), [id, type, flags](Call& c) -> long {
      struct {
        long mtype;
        char mtext[8];
      } buf;
      for (;;) {
        if (c.stop.load(std::memory_order_acquire)) return -ECANCELED;
        ssize_t r = msgrcv(id, &buf, 0, type, flags);
        if (r >= 0) {
          c.extra = static_cast<double>(buf.mtype);
          return static_cast<long>(r);
        }
        if (errno != EINTR) return -errno;
      }
    }));
  }

  // msgsndWait(id, bytes, type, flags): msgsnd, blocking while the queue is full. The
  // message is copied now: the call owns its bytes.
  Napi::Value MsgsndWait(const Napi::CallbackInfo& info) {
    int id = ArgInt(info, 0);
    ByteView v = ArgBytes(info, 1);
    long type = static_cast<long>(ArgInt64(info, 2));
    int flags = ArgInt(info, 3);
    auto buf = std::make_shared<std::vector<char>>(sizeof(long) + v.length);
    memcpy(buf->data(), &type, sizeof type);
    if (v.length > 0) memcpy(buf->data() + sizeof(long), v.data, v.length);
    size_t length = v.length;
    return Napi::Number::New(info.Env(), Submit(info.Env(), [id, buf, length, flags](Call& c) -> long {
      for (;;) {
        if (c.stop.load(std::memory_order_acquire)) return -ECANCELED;
        if (msgsnd(id, buf->data(), length, flags) == 0) return 0;
        if (errno != EINTR) return -errno;
      }
    }));
  }

  // semopWait(id, ops, timeoutMs): the operations (an Int32Array of [index, delta, flags]
  // triples) done at once, waiting up to timeoutMs (< 0: no limit; the kernel's semtimedop
  // timeout): 0, -EAGAIN when the time ran out, -ECANCELED when cancelled first, or -errno.
  Napi::Value SemopWait(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int id = ArgInt(info, 0);
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) throw Napi::TypeError::New(env, "semopWait: expected an Int32Array of operations");
    Napi::Int32Array a = info[1].As<Napi::Int32Array>();
    std::vector<struct sembuf> ops(a.ElementLength() / 3);
    for (size_t k = 0; k < ops.size(); k++) {
      ops[k].sem_num = static_cast<unsigned short>(a[3 * k]);
      ops[k].sem_op = static_cast<short>(a[3 * k + 1]);
      ops[k].sem_flg = static_cast<short>(a[3 * k + 2]);
    }
    int64_t timeoutMs = ArgInt64(info, 2);
    int64_t deadline = timeoutMs < 0 ? -1 : NowNs() + timeoutMs * 1000000LL;
    return Napi::Number::New(env, Submit(env, [id, ops, deadline](Call& c) mutable -> long {
      for (;;) {
        if (c.stop.load(std::memory_order_acquire)) return -ECANCELED;
        int r;
        if (deadline < 0) {
          r = semop(id, ops.data(), ops.size());
        } else {
          int64_t left = deadline - NowNs();
          if (left <= 0) return -EAGAIN;
          struct timespec ts = {static_cast<time_t>(left / 1000000000LL), static_cast<long>(left % 1000000000LL)};
          r = semtimedop(id, ops.data(), ops.size(), &ts);
        }
        if (r == 0) return 0;
        if (errno != EINTR) return -errno;  // EAGAIN: the time ran out
      }
    }));
  }

  static int64_t NowNs() {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1000000000LL + now.tv_nsec;
  }

  // cancel(id): stops a call; its dispatch still comes once (-ECANCELED, or its real result
  // if it completed first).
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    uint32_t id = static_cast<uint32_t>(ArgInt64(info, 0));
    std::lock_guard<std::mutex> lk(mu_);
    auto it = calls_.find(id);
    if (it == calls_.end()) return info.Env().Undefined();
    Call* c = it->second;
    if (c->state == Call::State::Queued) {
      for (auto q = queue_.begin(); q != queue_.end(); ++q) {
        if (*q == c) {
          queue_.erase(q);
          break;
        }
      }
      c->result = -ECANCELED;
      c->state = Call::State::Done;
      done_.push_back(c);
      signal_->Send();
    } else if (c->state == Call::State::Running && !c->stop.load(std::memory_order_relaxed)) {
      c->stop.store(true, std::memory_order_release);
      pthread_kill(c->thread, kInterrupt);
      if (resend_ != nullptr && !uv_is_active(reinterpret_cast<uv_handle_t*>(resend_))) uv_timer_start(resend_, OnResend, kResendMs, kResendMs);
    }
    return info.Env().Undefined();
  }

  // Loop thread: interrupts again every cancelled call that still runs (it may have missed
  // the signal); stops when none is left.
  static void OnResend(uv_timer_t* t) {
    auto* self = static_cast<BlockingCalls*>(t->data);
    std::lock_guard<std::mutex> lk(self->mu_);
    if (self->InterruptStopped() == 0) uv_timer_stop(t);
  }

  // Sends the signal to every running call whose stop flag is set (mu_ held); how many.
  int InterruptStopped() {
    int n = 0;
    for (auto& [id, c] : calls_) {
      if (c->state == Call::State::Running && c->stop.load(std::memory_order_relaxed)) {
        pthread_kill(c->thread, kInterrupt);  // a Running call's thread is alive: it marks Done under mu_ first
        n++;
      }
    }
    return n;
  }

  // threads(): how many threads this object runs now (for tests and `ipckit doctor`).
  Napi::Value Threads(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lk(mu_);
    return Napi::Number::New(info.Env(), threads_);
  }

  uint32_t Submit(Napi::Env env, std::function<long(Call&)> run) {
    Call* c = new Call();
    c->run = std::move(run);
    std::unique_lock<std::mutex> lk(mu_);
    c->id = ++nextId_;
    if (c->id == 0) c->id = ++nextId_;
    calls_[c->id] = c;
    queue_.push_back(c);
    if (pending_++ == 0) signal_->Ref(true);  // a pending call keeps the process alive
    if (idle_ > 0) {
      cv_.notify_one();
    } else {
      pthread_t t;
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
      pthread_attr_setstacksize(&attr, 64 * 1024);
      int err = pthread_create(&t, &attr, Main, this);
      pthread_attr_destroy(&attr);
      if (err != 0) {
        queue_.pop_back();
        calls_.erase(c->id);
        if (--pending_ == 0) signal_->Ref(false);
        delete c;
        lk.unlock();
        ThrowErrno(env, err, "pthread_create");
      }
      threads_++;
    }
    return c->id;
  }

  // A thread: takes queued calls until told to stop.
  static void* Main(void* arg) {
    BlockingCalls* self = static_cast<BlockingCalls*>(arg);
    // The interrupt must reach this thread, whatever mask it inherited.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, kInterrupt);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    std::unique_lock<std::mutex> lk(self->mu_);
    for (;;) {
      self->idle_++;
      self->cv_.wait(lk, [self] { return self->stopping_ || !self->queue_.empty(); });
      self->idle_--;
      if (self->stopping_ && self->queue_.empty()) break;
      Call* c = self->queue_.front();
      self->queue_.pop_front();
      c->state = Call::State::Running;
      c->thread = pthread_self();
      lk.unlock();
      long r = c->run(*c);
      lk.lock();
      c->result = r;
      c->state = Call::State::Done;
      self->done_.push_back(c);
      self->signal_->Send();
    }
    self->threads_--;
    self->cv_.notify_all();
    return nullptr;
  }

  // Loop thread: reports every completed call.
  void DeliverDone() {
    std::vector<Call*> done;
    {
      std::lock_guard<std::mutex> lk(mu_);
      done.swap(done_);
      for (Call* c : done) calls_.erase(c->id);
      pending_ -= static_cast<int>(done.size());
      if (pending_ == 0 && !done.empty()) signal_->Ref(false);
    }
    if (done.empty() || shutdown_) {
      for (Call* c : done) delete c;
      return;
    }
    Napi::Env env(env_);
    Napi::HandleScope scope(env);
    for (Call* c : done) {
      CallBack(env, Value(), "_dispatch", {Napi::Number::New(env, c->id), Napi::Number::New(env, static_cast<double>(c->result)), Napi::Number::New(env, c->extra)}, context_);
      delete c;
    }
  }

  // Stops everything and waits for every thread to end.
  void Shutdown() {
    if (shutdown_) return;
    shutdown_ = true;
    std::unique_lock<std::mutex> lk(mu_);
    stopping_ = true;
    for (auto& [id, c] : calls_) c->stop.store(true, std::memory_order_release);
    queue_.clear();
    cv_.notify_all();
    while (threads_ > 0) {
      InterruptStopped();
      cv_.wait_for(lk, std::chrono::milliseconds(kResendMs));
    }
    for (auto& [id, c] : calls_) delete c;
    calls_.clear();
    done_.clear();
    lk.unlock();
    if (resend_ != nullptr) {
      uv_timer_stop(resend_);
      uv_close(reinterpret_cast<uv_handle_t*>(resend_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
      resend_ = nullptr;
    }
    if (signal_ != nullptr) {
      signal_->Close();
      delete signal_;
      signal_ = nullptr;
    }
  }

  static void CleanupHook(void* arg) {
    BlockingCalls* self = static_cast<BlockingCalls*>(arg);
    self->Shutdown();
  }

  napi_env env_ = nullptr;
  Napi::AsyncContext context_;
  LoopSignal* signal_ = nullptr;
  uv_timer_t* resend_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Call*> queue_;
  std::unordered_map<uint32_t, Call*> calls_;
  std::vector<Call*> done_;
  uint32_t nextId_ = 0;
  int pending_ = 0;
  int threads_ = 0;
  int idle_ = 0;
  bool stopping_ = false;
  bool shutdown_ = false;
};

}  // namespace

void InitBlocking(Napi::Env env, Napi::Object exports) { BlockingCalls::Init(env, exports); }

}  // namespace ipckit
