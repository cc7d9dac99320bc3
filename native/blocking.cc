// BlockingCalls: system calls that block with nothing to poll (a file-lock wait, a System V
// message or semaphore wait), run on dedicated threads of ours so that neither the event
// loop nor libuv's thread pool waits in them. One object per JS environment.
//
// - A call is queued and taken by an idle thread of this object (a new one is started when
//   none is idle). Its result (-errno, or what the call returns) is reported on the loop
//   through a LoopSignal: dispatch(id, result, extra).
// - Cancellation (a timeout, an abort, close) uses pthread_cancel for the calls that glibc
//   implements as cancellable system calls (fcntl(F_SETLKW), msgrcv, msgsnd): a cancel that
//   arrives while the call blocks ends it with no effect (no lock taken, no message consumed
//   or sent); a call that completed first reports its result, and the JavaScript side
//   settles or undoes it. A thread whose call was cancelled ends (its cancel request would
//   otherwise stay pending); idle threads are reused.
// - semop and semtimedop are not cancellation points in glibc (a pthread_cancel would act
//   only after the call returned). A semaphore wait therefore runs semtimedop in slices of
//   SLICE_MS and checks a stop flag between two: cancelling it sets the flag, and the call
//   ends within a slice (-ECANCELED, or its result if the operation was done first).
// - When the environment ends (a worker terminated), every call is cancelled and every
//   thread has ended before the object goes away.
#include "addon.h"
#include "waiter.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace ipckit {
namespace {

class BlockingCalls;

// Longest semtimedop of a semaphore wait: how long a cancelled one may take to notice.
constexpr long SLICE_MS = 50;

struct Call {
  uint32_t id = 0;
  std::function<long(Call&)> run;  // the blocking call: >= 0, or -errno
  long result = 0;
  double extra = 0;  // a second result some calls give (msgrcvWait: the message's type)
  enum class State { Queued, Running, Done } state = State::Queued;
  bool cancelRequested = false;
  // Cancelled by `stop` (checked between slices) instead of pthread_cancel.
  bool cancelByFlag = false;
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
    return Napi::Number::New(info.Env(), Submit(info.Env(), [fd, cmd, type, start, length](Call&) -> long {
      struct flock fl = {};
      fl.l_type = type;
      fl.l_whence = SEEK_SET;
      fl.l_start = start;
      fl.l_len = length;
      for (;;) {
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
    return Napi::Number::New(info.Env(), Submit(info.Env(), [id, buf, length, flags](Call&) -> long {
      for (;;) {
        if (msgsnd(id, buf->data(), length, flags) == 0) return 0;
        if (errno != EINTR) return -errno;
      }
    }));
  }

  // semopWait(id, ops, timeoutMs): the operations (an Int32Array of [index, delta, flags]
  // triples) done at once, waiting up to timeoutMs (< 0: no limit): 0, -EAGAIN when the time
  // ran out, -ECANCELED when cancelled first, or -errno. semtimedop in slices (see above).
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
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int64_t deadline = timeoutMs < 0 ? -1 : start.tv_sec * 1000000000LL + start.tv_nsec + timeoutMs * 1000000LL;
    return Napi::Number::New(env, Submit(env, [id, ops, deadline](Call& c) mutable -> long {
      for (;;) {
        if (c.stop.load(std::memory_order_acquire)) return -ECANCELED;
        int64_t slice = SLICE_MS * 1000000LL;
        if (deadline >= 0) {
          struct timespec now;
          clock_gettime(CLOCK_MONOTONIC, &now);
          int64_t left = deadline - (now.tv_sec * 1000000000LL + now.tv_nsec);
          if (left <= 0) return -EAGAIN;
          if (left < slice) slice = left;
        }
        struct timespec ts = {static_cast<time_t>(slice / 1000000000LL), static_cast<long>(slice % 1000000000LL)};
        if (semtimedop(id, ops.data(), ops.size(), &ts) == 0) return 0;
        if (errno != EAGAIN && errno != EINTR) return -errno;
      }
    }, true));
  }

  // cancel(id): ends a call; its dispatch still comes once (-ECANCELED, or its real
  // result if it completed first).
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
    } else if (c->state == Call::State::Running && !c->cancelRequested) {
      c->cancelRequested = true;
      if (c->cancelByFlag) c->stop.store(true, std::memory_order_release);
      else pthread_cancel(c->thread);
    }
    return info.Env().Undefined();
  }

  // threads(): how many threads this object runs now (for tests and `ipckit doctor`).
  Napi::Value Threads(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lk(mu_);
    return Napi::Number::New(info.Env(), threads_);
  }

  uint32_t Submit(Napi::Env env, std::function<long(Call&)> run, bool cancelByFlag = false) {
    Call* c = new Call();
    c->run = std::move(run);
    c->cancelByFlag = cancelByFlag;
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

  // A thread: takes queued calls until told to stop, or until a call of its own was
  // cancelled (then it ends, since a cancel request cannot be withdrawn).
  static void* Main(void* arg) {
    BlockingCalls* self = static_cast<BlockingCalls*>(arg);
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, &old);
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
      long r = RunCancellable(self, c);
      lk.lock();
      c->result = r;
      c->state = Call::State::Done;
      self->done_.push_back(c);
      self->signal_->Send();
      // A pthread_cancel that came too late to act stays pending on this thread: end it.
      if (c->cancelRequested && !c->cancelByFlag) break;
    }
    self->threads_--;
    self->cv_.notify_all();
    return nullptr;
  }

  struct Running {
    BlockingCalls* self;
    Call* call;
  };

  // Runs the call with cancellation allowed; a cancel that acts unwinds through Cancelled().
  static long RunCancellable(BlockingCalls* self, Call* c) {
    Running ctx{self, c};
    long r;
    int old;
    pthread_cleanup_push(Cancelled, &ctx);
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
    r = c->run(*c);
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    pthread_cleanup_pop(0);
    return r;
  }

  // The cancel acted inside the call: nothing was done; report it and end the thread.
  static void Cancelled(void* arg) {
    Running* x = static_cast<Running*>(arg);
    std::lock_guard<std::mutex> lk(x->self->mu_);
    x->call->result = -ECANCELED;
    x->call->state = Call::State::Done;
    x->self->done_.push_back(x->call);
    x->self->threads_--;
    x->self->signal_->Send();
    x->self->cv_.notify_all();
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

  // Cancels everything and waits for every thread to end.
  void Shutdown() {
    if (shutdown_) return;
    shutdown_ = true;
    std::unique_lock<std::mutex> lk(mu_);
    stopping_ = true;
    for (auto& [id, c] : calls_) {
      if (c->state == Call::State::Running && !c->cancelRequested) {
        c->cancelRequested = true;
        if (c->cancelByFlag) c->stop.store(true, std::memory_order_release);
        else pthread_cancel(c->thread);
      }
    }
    queue_.clear();
    cv_.notify_all();
    cv_.wait(lk, [this] { return threads_ == 0; });
    for (auto& [id, c] : calls_) delete c;
    calls_.clear();
    done_.clear();
    lk.unlock();
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
