// The wait back-end: every futex wait of the addon on a word of a mapped region (native/
// region.h), for the ring, the work queue, the mutex, the pool, the semaphore and the shm
// mechanism. Waits and wakes are shared (no FUTEX_PRIVATE_FLAG), so a wake in one process
// reaches a waiter in another. (V8's Atomics.wait/notify keep a wait list inside one
// process and never reach another one.)
//
// - futexWait: blocks the calling thread (for workers and scripts; TypeScript calls it in
//   slices). EINTR is retried against the same absolute deadline (FUTEX_WAIT_BITSET).
// - futexWake: wakes up to `count` waiters.
// - FutexWaiters, one per JS environment: waits that keep the event loop free and never
//   use libuv's thread pool.
//   * One-shot waits (`wait`, on a `word` registered once): end when the word is woken or differs. A wait made with
//     `passOn` stands for a waiter of a lock or a semaphore, whose peers wake ONE waiter:
//     if such a wait is cancelled and the wake-up reaches it anyway, it is passed on to
//     the next waiter (FUTEX_WAKE 1), so no waiter elsewhere sleeps while the lock is
//     free or a permit is there.
//   * Watches (`watch`/`arm`): a wait that keeps going on one word and reports a change
//     (or a slice without one) whenever JavaScript has armed it. For channels whose peers
//     wake everyone (the ring, the work queue), that sleep and wake in turn.
//   * Exit actions: what a worker thread's endpoints must undo if the thread ends without
//     closing them (worker.terminate() runs no JavaScript): run by the env cleanup hook.
// - Two ways to wait, chosen per environment: where io_uring can wait on futexes (Linux
//   6.7+, see uring.h) the peer's FUTEX_WAKE completes the request and the loop thread runs
//   the callback, one wake-up; elsewhere (IPCKIT_NO_URING=1 too) a dedicated waiter thread
//   of ours waits and reports through LoopSignal (waiter.h), two wake-ups. A waiter thread
//   cancels exactly: it waits with futex_waitv on the target word and on a private control
//   word that a cancel bumps (on kernels without futex_waitv, before 5.16, in slices of 20
//   ms, looking at the cancel flag between them).
#include "addon.h"
#include "futex.h"
#include "region.h"
#include "uring.h"
#include "waiter.h"

#include <pthread.h>
#include <uv.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX_32
#define FUTEX_32 2
struct futex_waitv {
  uint64_t val;
  uint64_t uaddr;
  uint32_t flags;
  uint32_t __reserved;
};
#endif

namespace ipckit {
namespace {

// Results reported to JavaScript (negative values are -errno).
enum WaitResult { kWoken = 0, kNotEqual = 1, kTimedOut = 2, kCancelled = 3 };

// The blocking wait: EINTR retried against the same absolute deadline.
int WaitUntil(uint32_t* addr, uint32_t expected, int64_t deadlineNs) {
  for (;;) {
    long rc = FutexWaitShared(addr, expected, deadlineNs);
    if (rc == 0) return kWoken;
    if (rc == -EAGAIN) return kNotEqual;
    if (rc == -ETIMEDOUT) return kTimedOut;
    if (rc == -EINTR) continue;
    return static_cast<int>(rc);
  }
}

// The (mapping, byteOffset) arguments every call here starts with: the word, and the
// region that keeps its page mapped.
struct WordRef {
  std::shared_ptr<Region> region;
  uint32_t* addr;
};

WordRef WordArg(const Napi::CallbackInfo& info) {
  std::shared_ptr<Region> region = RegionOf(info.Env(), info[0]);
  uint32_t* addr = WordAt(info.Env(), *region, ArgInt64(info, 1));
  return WordRef{std::move(region), addr};
}

Napi::Value FutexWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  WordRef w = WordArg(info);
  uint32_t expected = static_cast<uint32_t>(ArgInt64(info, 2));
  double timeoutMs = info[3].IsNumber() ? info[3].As<Napi::Number>().DoubleValue() : -1;
  return Napi::Number::New(env, WaitUntil(w.addr, expected, DeadlineAfterMs(timeoutMs)));
}

Napi::Value FutexWake(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  WordRef w = WordArg(info);
  int64_t count = ArgInt64(info, 2);
  long rc = FutexWakeShared(w.addr, count < 0 || count > INT_MAX ? -1 : static_cast<int>(count));
  if (rc < 0) ThrowErrno(env, static_cast<int>(-rc), "futex(FUTEX_WAKE)");
  return Napi::Number::New(env, static_cast<double>(rc));
}

std::atomic<bool> g_haveWaitv{true};

class FutexWaiters;

// A one-shot wait on the thread path, handed to a waiter thread.
struct Request {
  std::shared_ptr<Region> region;  // keeps the pages mapped while we wait on them
  uint32_t* addr;
  uint32_t expected;
  uint32_t id;
  std::atomic<bool> cancelled{false};
};

struct WaiterThread {
  FutexWaiters* owner = nullptr;
  pthread_t thread{};
  std::atomic<uint32_t> control{0};  // bumped to hand over work, cancel, or shut down
  Request* request = nullptr;         // guarded by owner->mu_
};

// A one-shot wait as the loop thread knows it, whichever way it waits.
struct OneShot {
  std::shared_ptr<Region> region;
  uint32_t* addr = nullptr;
  bool passOn = false;
  bool cancelled = false;
  uint64_t ringId = 0;  // io_uring path: the pending FUTEX_WAIT (0: a waiter thread has it)
};

// A watch: keeps waiting on one word and reports a change (or a slice without one)
// whenever JavaScript has armed it. Re-arming with the value it already waits on costs no
// system call, so a channel that sleeps and wakes in turn does not pay a hand-over each time.
struct Watch {
  uint32_t id = 0;
  FutexWaiters* owner = nullptr;
  std::shared_ptr<Region> region;
  uint32_t* addr = nullptr;
  int64_t sliceNs = 0;
  pthread_t thread{};
  std::atomic<uint32_t> control{0};
  // Guarded by owner->mu_:
  bool stop = false;
  bool armed = false;
  uint32_t armSeq = 0;
  uint32_t armGen = 0;
  int64_t armedAt = 0;
  uint32_t waitingOn = 0;
  // JavaScript thread only:
  bool jsArmed = false;
  uint32_t gen = 0;
  // The io_uring path (no thread): the pending wait, and a timer for the slice.
  bool uring = false;
  uint64_t ringId = 0;     // pending FUTEX_WAIT, 0 none
  uint32_t ringSeq = 0;    // the value it waits on
  uint64_t ringToken = 0;  // completions of older waits carry older tokens and are dropped
  uv_timer_t* timer = nullptr;
};

// Done when the env goes away with the action still registered: compare-and-swap a word
// (then bump and wake `signal`), and/or close an fd.
struct ExitAction {
  std::shared_ptr<Region> region;  // keeps the pages mapped until then
  uint32_t* word = nullptr;
  uint32_t expected = 0;
  uint32_t replacement = 0;
  uint32_t* signal = nullptr;
  int fd = -1;
};

struct Report {
  uint32_t id;
  int result;
  uint32_t gen;  // for watches: the arming it answers
};

class FutexWaiters : public Napi::ObjectWrap<FutexWaiters> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "FutexWaiters", {
      InstanceMethod<&FutexWaiters::WordStart>("word"),
      InstanceMethod<&FutexWaiters::WordForget>("forget"),
      InstanceMethod<&FutexWaiters::WaitAsync>("wait"),
      InstanceMethod<&FutexWaiters::Cancel>("cancel"),
      InstanceMethod<&FutexWaiters::WatchStart>("watch"),
      InstanceMethod<&FutexWaiters::WatchArm>("arm"),
      InstanceMethod<&FutexWaiters::WatchDisarm>("disarm"),
      InstanceMethod<&FutexWaiters::WatchStop>("unwatch"),
      InstanceMethod<&FutexWaiters::Threads>("threads"),
      InstanceMethod<&FutexWaiters::UsesUring>("usesUring"),
      InstanceMethod<&FutexWaiters::AtExitSwap>("atExitSwap"),
      InstanceMethod<&FutexWaiters::AtExitClose>("atExitClose"),
      InstanceMethod<&FutexWaiters::CancelAtExit>("cancelAtExit"),
    });
    exports.Set("FutexWaiters", ctor);
  }

  // new FutexWaiters(dispatch(id, result)): one per JS environment (main thread, worker).
  explicit FutexWaiters(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<FutexWaiters>(info), context_(info.Env(), "ipckit.FutexWaiters") {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(env, "FutexWaiters: dispatch function required");
    info.This().As<Napi::Object>().Set("_dispatch", info[0]);
    env_ = env;
    signal_ = std::make_unique<LoopSignal>(env, [this] { OnSignal(); });
    Ref();  // lives as long as the environment (the module keeps one)
    napi_add_env_cleanup_hook(env, CleanupHook, this);
    ring_ = FutexRing::For(env);
  }

  ~FutexWaiters() override { Shutdown(); }

 private:
  // Waits that keep the event loop alive on the thread path: one-shot waits in progress
  // and armed watches. (On the io_uring path the ring holds the loop: FutexRing::Hold.)
  void Hold() {
    if (live_++ == 0) signal_->Ref(true);
  }
  void Unhold() {
    if (--live_ == 0) signal_->Ref(false);
  }

  pthread_t StartThread(Napi::Env env, void* (*main)(void*), void* arg) {
    if (threads_.size() + watches_.size() >= kMaxThreads) ThrowErrno(env, EAGAIN, "pthread_create (more than 256 asynchronous futex waits at once)");
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_t t;
    int err = pthread_create(&t, &attr, main, arg);
    pthread_attr_destroy(&attr);
    if (err != 0) ThrowErrno(env, err, "pthread_create");
    return t;
  }

  // The io_uring ring of this thread, while it lives (its env cleanup may run before ours).
  FutexRing* Ring() { return ring_ != nullptr && !shutdown_ && FutexRing::For(env_) == ring_ ? ring_ : nullptr; }

  // Calls the JS dispatch function with (id, result), on the loop thread.
  void Dispatch(uint32_t id, int result) {
    Napi::Env env = env_;
    Napi::HandleScope scope(env);
    CallBack(env, Value(), "_dispatch", {Napi::Number::New(env, id), Napi::Number::New(env, result)}, context_);
  }

  // word(mapping, byteOffset) -> id: a word that one-shot waits are made on, resolved once
  // (finding the region behind a Mapping argument costs more than the rest of a wait).
  Napi::Value WordStart(const Napi::CallbackInfo& info) {
    uint32_t id = NextId();
    words_.emplace(id, WordArg(info));
    return Napi::Number::New(info.Env(), id);
  }

  // forget(wordId): the word is no longer waited on (waits in progress keep its pages).
  Napi::Value WordForget(const Napi::CallbackInfo& info) {
    words_.erase(static_cast<uint32_t>(ArgInt64(info, 0)));
    return info.Env().Undefined();
  }

  // wait(wordId, expected, passOn) -> id; the result arrives via dispatch: 0 woken, 1 the
  // word was not `expected`, 3 cancelled, or -errno.
  Napi::Value WaitAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (shutdown_) throw Napi::Error::New(env, "FutexWaiters: shut down");
    auto word = words_.find(static_cast<uint32_t>(ArgInt64(info, 0)));
    if (word == words_.end()) throw Napi::Error::New(env, "FutexWaiters: no such word");
    OneShot w;
    w.region = word->second.region;
    w.addr = word->second.addr;
    uint32_t expected = static_cast<uint32_t>(ArgInt64(info, 1));
    w.passOn = info.Length() > 2 && info[2].ToBoolean();
    uint32_t id = NextId();
    if (FutexRing* ring = Ring()) {
      w.ringId = ring->Wait(w.addr, expected, [this, alive = alive_, id](int res) {
        if (*alive) Complete(id, res == 0 ? kWoken : res == -EAGAIN ? kNotEqual : res == -ECANCELED ? kCancelled : res);
      });
      if (w.ringId != 0) {
        ring->Hold(+1);
        oneShots_.emplace(id, std::move(w));
        return Napi::Number::New(env, id);
      }
      // Could not submit: the thread path below.
    }
    auto* req = new Request;
    req->region = w.region;
    req->addr = w.addr;
    req->expected = expected;
    req->id = id;
    WaiterThread* t = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        t = idle_.back();
        idle_.pop_back();
      }
    }
    if (t == nullptr) {
      t = new WaiterThread;
      t->owner = this;
      try {
        t->thread = StartThread(env, ThreadMain, t);
      } catch (...) {
        delete t;
        delete req;
        throw;
      }
      threads_.push_back(t);
    }
    oneShots_.emplace(id, std::move(w));
    {
      std::lock_guard<std::mutex> lock(mu_);
      t->request = req;
    }
    Hold();
    FutexWakePrivate(t->control);
    return Napi::Number::New(env, id);
  }

  // Loop thread: a one-shot wait ended. A cancelled one reports nothing; if a wake-up
  // reached it anyway and it stands for a lock or semaphore waiter, the wake goes on.
  void Complete(uint32_t id, int result) {
    auto it = oneShots_.find(id);
    if (it == oneShots_.end()) return;
    OneShot w = std::move(it->second);
    oneShots_.erase(it);
    if (w.ringId != 0) {
      if (FutexRing* ring = Ring()) ring->Hold(-1);
    } else {
      Unhold();
    }
    if (w.cancelled) {
      if (result == kWoken && w.passOn) FutexWakeShared(w.addr, 1);
      return;
    }
    Dispatch(id, result);
  }

  // cancel(id) -> true if that wait was still running (it then reports nothing).
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    uint32_t id = static_cast<uint32_t>(ArgInt64(info, 0));
    auto it = oneShots_.find(id);
    if (it == oneShots_.end() || it->second.cancelled) return Napi::Boolean::New(info.Env(), false);
    OneShot& w = it->second;
    w.cancelled = true;
    if (w.ringId != 0) {
      if (FutexRing* ring = Ring()) ring->Cancel(w.ringId);
    } else {
      // A thread that still waits for it is told; one that has finished has reported (or
      // will), and Complete drops the report.
      std::lock_guard<std::mutex> lock(mu_);
      for (WaiterThread* t : threads_) {
        if (t->request != nullptr && t->request->id == id) {
          t->request->cancelled.store(true);
          FutexWakePrivate(t->control);
        }
      }
    }
    return Napi::Boolean::New(info.Env(), true);
  }

  // watch(mapping, byteOffset, sliceMs) -> id: a watch, not armed.
  Napi::Value WatchStart(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (shutdown_) throw Napi::Error::New(env, "FutexWaiters: shut down");
    WordRef ref = WordArg(info);
    double sliceMs = info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : 50;
    auto* w = new Watch;
    w->id = NextId();
    w->owner = this;
    w->region = std::move(ref.region);
    w->addr = ref.addr;
    w->sliceNs = static_cast<int64_t>((sliceMs > 0 ? sliceMs : 50) * 1e6);
    SafeLoad(w->addr, &w->waitingOn);
    uv_loop_t* loop = nullptr;
    if (Ring() != nullptr && napi_get_uv_event_loop(env, &loop) == napi_ok && loop != nullptr) {
      w->uring = true;
      w->timer = new uv_timer_t;
      uv_timer_init(loop, w->timer);
      w->timer->data = w;
      uv_unref(reinterpret_cast<uv_handle_t*>(w->timer));  // the armed wait holds the loop, not the timer
    } else {
      try {
        w->thread = StartThread(env, WatchMain, w);
      } catch (...) {
        delete w;
        throw;
      }
    }
    watches_[w->id] = w;
    return Napi::Number::New(env, w->id);
  }

  Watch* FindWatch(const Napi::CallbackInfo& info) {
    auto it = watches_.find(static_cast<uint32_t>(ArgInt64(info, 0)));
    if (it == watches_.end()) throw Napi::Error::New(info.Env(), "FutexWaiters: no such watch");
    return it->second;
  }

  // arm(id, seq): report once the word differs from seq (at once if it already does), or
  // after a slice without a change.
  Napi::Value WatchArm(const Napi::CallbackInfo& info) {
    Watch* w = FindWatch(info);
    uint32_t seq = static_cast<uint32_t>(ArgInt64(info, 1));
    if (w->uring) {
      ArmRing(w, seq);
      return info.Env().Undefined();
    }
    bool poke;
    {
      std::lock_guard<std::mutex> lock(mu_);
      w->armed = true;
      w->armSeq = seq;
      w->armGen = ++w->gen;
      w->armedAt = MonotonicNs();
      poke = w->waitingOn != seq;
    }
    if (!w->jsArmed) {
      w->jsArmed = true;
      Hold();
    }
    if (poke) FutexWakePrivate(w->control);
    return info.Env().Undefined();
  }

  Napi::Value WatchDisarm(const Napi::CallbackInfo& info) {
    Watch* w = FindWatch(info);
    if (w->uring) {
      DisarmRing(w);
      return info.Env().Undefined();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      w->armed = false;
    }
    if (w->jsArmed) {
      w->jsArmed = false;
      Unhold();
    }
    return info.Env().Undefined();
  }

  Napi::Value WatchStop(const Napi::CallbackInfo& info) {
    Watch* w = FindWatch(info);
    watches_.erase(w->id);
    StopWatch(w);
    return info.Env().Undefined();
  }

  void StopWatch(Watch* w) {
    if (w->uring) {
      DisarmRing(w);
      uv_close(reinterpret_cast<uv_handle_t*>(w->timer), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
      delete w;
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      w->stop = true;
    }
    FutexWakePrivate(w->control);
    pthread_join(w->thread, nullptr);
    if (w->jsArmed) {
      w->jsArmed = false;
      Unhold();
    }
    delete w;
  }

  // The io_uring path of a watch: a FUTEX_WAIT on seq (kept if one already waits on it),
  // and the slice timer.
  void ArmRing(Watch* w, uint32_t seq) {
    FutexRing* ring = Ring();
    if (!w->jsArmed) {
      w->jsArmed = true;
      if (ring != nullptr) ring->Hold(+1);
    }
    w->gen++;
    uv_timer_start(w->timer, OnSlice, static_cast<uint64_t>(w->sliceNs / 1000000), 0);
    if (ring == nullptr) return;  // the ring is going away with the env: the slice ends it
    if (w->ringId != 0 && w->ringSeq == seq) return;
    if (w->ringId != 0) ring->Cancel(w->ringId);
    uint64_t token = ++w->ringToken;
    uint32_t watchId = w->id;
    std::shared_ptr<Region> keep = w->region;  // the pages stay mapped until the completion
    w->ringId = ring->Wait(w->addr, seq, [this, alive = alive_, watchId, token, keep](int res) {
      if (!*alive) return;  // we were shut down before the ring delivered this
      auto it = watches_.find(watchId);
      if (it == watches_.end() || it->second->ringToken != token) return;  // an older wait
      Watch* w = it->second;
      w->ringId = 0;
      if (res == -ECANCELED || !w->jsArmed) return;
      ReportRing(w, res == 0 || res == -EAGAIN ? kWoken : res);
    });
    w->ringSeq = seq;  // if it could not be submitted (ringId 0), the slice ends this arming
  }

  // Ends the arming with a report to JavaScript.
  void ReportRing(Watch* w, int result) {
    uv_timer_stop(w->timer);
    if (!w->jsArmed) return;
    w->jsArmed = false;
    if (FutexRing* ring = Ring()) ring->Hold(-1);
    Dispatch(w->id, result);
  }

  void DisarmRing(Watch* w) {
    uv_timer_stop(w->timer);
    if (w->ringId != 0) {
      w->ringToken++;  // its completion is dropped
      if (FutexRing* ring = Ring()) ring->Cancel(w->ringId);
      w->ringId = 0;
    }
    if (w->jsArmed) {
      w->jsArmed = false;
      if (FutexRing* ring = Ring()) ring->Hold(-1);
    }
  }

  // A slice passed without a change: report it (the wait stays in the kernel for the next arming).
  static void OnSlice(uv_timer_t* timer) {
    Watch* w = static_cast<Watch*>(timer->data);
    w->owner->ReportRing(w, kTimedOut);
  }

  // atExitSwap(mapping, byteOffset, expected, replacement, signalByteOffset) -> id (signal < 0: none).
  Napi::Value AtExitSwap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (shutdown_) throw Napi::Error::New(env, "FutexWaiters: shut down");
    ExitAction a;
    WordRef ref = WordArg(info);
    a.region = std::move(ref.region);
    a.word = ref.addr;
    a.expected = static_cast<uint32_t>(ArgInt64(info, 2));
    a.replacement = static_cast<uint32_t>(ArgInt64(info, 3));
    int64_t signal = ArgInt64(info, 4);
    if (signal >= 0) a.signal = WordAt(env, *a.region, signal);
    uint32_t id = NextId();
    exitActions_[id] = std::move(a);
    return Napi::Number::New(env, id);
  }

  // atExitClose(fd) -> id.
  Napi::Value AtExitClose(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (shutdown_) throw Napi::Error::New(env, "FutexWaiters: shut down");
    ExitAction a;
    a.fd = ArgInt(info, 0);
    uint32_t id = NextId();
    exitActions_[id] = std::move(a);
    return Napi::Number::New(env, id);
  }

  Napi::Value CancelAtExit(const Napi::CallbackInfo& info) {
    exitActions_.erase(static_cast<uint32_t>(ArgInt64(info, 0)));
    return info.Env().Undefined();
  }

  static void RunExitAction(const ExitAction& a) {
    uint32_t now;
    // SafeLoad first: a segment shrunk under us must not kill the process here.
    if (a.word != nullptr && SafeLoad(a.word, &now) && now == a.expected) {
      uint32_t expected = a.expected;
      if (__atomic_compare_exchange_n(a.word, &expected, a.replacement, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) && a.signal != nullptr) {
        __atomic_fetch_add(a.signal, 1, __ATOMIC_SEQ_CST);
        FutexWakeShared(a.signal, -1);
      }
    }
    if (a.fd >= 0) close(a.fd);
  }

  Napi::Value UsesUring(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), Ring() != nullptr); }

  Napi::Value Threads(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(threads_.size() + watches_.size()));
  }

  uint32_t NextId() {
    uint32_t id = ++nextId_;
    if (id == 0) id = ++nextId_;
    return id;
  }

  // Waits on the word and on the control word until the deadline: 0 the word was woken,
  // 1 the control word changed, or -errno (-EAGAIN: one of them differed at the start).
  static long WaitBoth(uint32_t* addr, uint32_t expected, std::atomic<uint32_t>& control, uint32_t seen, int64_t deadlineNs) {
    if (g_haveWaitv.load(std::memory_order_relaxed)) {
      struct futex_waitv w[2] = {};
      w[0].val = expected;
      w[0].uaddr = reinterpret_cast<uintptr_t>(addr);
      w[0].flags = FUTEX_32;
      w[1].val = seen;
      w[1].uaddr = reinterpret_cast<uintptr_t>(&control);
      w[1].flags = FUTEX_32 | FUTEX_PRIVATE_FLAG;
      timespec ts;
      if (deadlineNs >= 0) ts = ToTimespec(deadlineNs);
      long rc = syscall(SYS_futex_waitv, w, 2, 0, deadlineNs >= 0 ? &ts : nullptr, CLOCK_MONOTONIC);
      if (rc >= 0) return rc;
      if (errno != ENOSYS) return -errno;
      g_haveWaitv.store(false);
    }
    // No futex_waitv (Linux < 5.16): wait on the word alone, in slices of at most 20 ms,
    // and let the caller look at its control word between them.
    int64_t slice = MonotonicNs() + 20 * 1000000LL;
    long rc = FutexWaitShared(addr, expected, deadlineNs >= 0 && deadlineNs < slice ? deadlineNs : slice);
    if (rc == -ETIMEDOUT && (deadlineNs < 0 || MonotonicNs() < deadlineNs)) return 1;  // a slice: look again
    return rc;
  }

  static int Run(Request* r, WaiterThread* t) {
    bool first = true;
    for (;;) {
      uint32_t seen = t->control.load();
      if (r->cancelled.load()) return kCancelled;
      long rc = WaitBoth(r->addr, r->expected, t->control, seen, -1);
      if (rc == 0) return kWoken;
      if (rc == 1 || rc == -EINTR) {
        first = false;
        continue;
      }
      if (rc == -EAGAIN) {
        // One of the two words differed: ours (a change) or the control word (a poke).
        uint32_t now;
        if (!SafeLoad(r->addr, &now)) return -EFAULT;
        if (now != r->expected) return first ? kNotEqual : kWoken;
        first = false;
        continue;
      }
      return static_cast<int>(rc);
    }
  }

  static void* ThreadMain(void* arg) {
    WaiterThread* t = static_cast<WaiterThread*>(arg);
    FutexWaiters* self = t->owner;
    for (;;) {
      uint32_t seen = t->control.load();
      Request* r;
      {
        std::lock_guard<std::mutex> lock(self->mu_);
        r = t->request;
        if (r == nullptr && self->shutdown_) return nullptr;
      }
      if (r == nullptr) {
        FutexWaitPrivate(t->control, seen, nullptr);
        continue;
      }
      int result = Run(r, t);
      {
        std::lock_guard<std::mutex> lock(self->mu_);
        t->request = nullptr;
        self->done_.push_back({r->id, result, 0});
        if (!self->shutdown_) self->idle_.push_back(t);
      }
      delete r;
      self->signal_->Send();
    }
  }

  static void* WatchMain(void* arg) {
    Watch* w = static_cast<Watch*>(arg);
    FutexWaiters* self = w->owner;
    for (;;) {
      uint32_t seen = w->control.load();
      uint32_t cur;
      bool post = false;
      if (!SafeLoad(w->addr, &cur)) {
        // The page is gone (the segment was shrunk): report it, then idle until stopped.
        {
          std::lock_guard<std::mutex> lock(self->mu_);
          if (w->stop) return nullptr;
          if (w->armed) {
            w->armed = false;
            self->done_.push_back({w->id, -EFAULT, w->armGen});
            post = true;
          }
        }
        if (post) self->signal_->Send();
        timespec rel = ToTimespec(w->sliceNs);
        FutexWaitPrivate(w->control, seen, &rel);
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(self->mu_);
        if (w->stop) return nullptr;
        if (w->armed && cur != w->armSeq) {
          w->armed = false;
          self->done_.push_back({w->id, kWoken, w->armGen});
          post = true;
        }
        w->waitingOn = cur;
      }
      if (post) self->signal_->Send();
      post = false;
      long rc = WaitBoth(w->addr, cur, w->control, seen, MonotonicNs() + w->sliceNs);
      if (rc == -ETIMEDOUT || rc == 1) {
        std::lock_guard<std::mutex> lock(self->mu_);
        if (w->armed && MonotonicNs() - w->armedAt >= w->sliceNs) {
          w->armed = false;
          self->done_.push_back({w->id, kTimedOut, w->armGen});
          post = true;
        }
      } else if (rc < 0 && rc != -EAGAIN && rc != -EINTR) {
        {
          std::lock_guard<std::mutex> lock(self->mu_);
          if (w->armed) {
            w->armed = false;
            self->done_.push_back({w->id, static_cast<int>(rc), w->armGen});
            post = true;
          }
        }
        if (post) self->signal_->Send();
        // An error that would repeat at once (EFAULT): do not spin on it.
        timespec rel = ToTimespec(w->sliceNs);
        FutexWaitPrivate(w->control, seen, &rel);
        continue;
      }
      if (post) self->signal_->Send();
    }
  }

  // Loop thread: what the waiter threads reported.
  void OnSignal() {
    std::vector<Report> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch.swap(done_);
    }
    for (const Report& r : batch) {
      auto wit = watches_.find(r.id);
      if (wit != watches_.end()) {
        Watch* w = wit->second;
        if (!w->jsArmed || r.gen != w->gen) continue;  // answers an arming that was withdrawn
        w->jsArmed = false;
        Unhold();
        Dispatch(r.id, r.result);
      } else if (r.gen == 0 && !shutdown_) {
        Complete(r.id, r.result);
      }
      // else: a watch that was stopped meanwhile
    }
  }

  static void CleanupHook(void* arg) { static_cast<FutexWaiters*>(arg)->Shutdown(); }

  // Stops every thread (cancelling its wait) and closes the loop handle. Idempotent.
  void Shutdown() {
    if (shutdown_) return;
    for (auto& [id, a] : exitActions_) RunExitAction(a);
    exitActions_.clear();
    *alive_ = false;  // completions the ring still holds must not reach us
    {
      std::lock_guard<std::mutex> lock(mu_);
      shutdown_ = true;
      for (WaiterThread* t : threads_) {
        if (t->request != nullptr) t->request->cancelled.store(true);
        FutexWakePrivate(t->control);
      }
    }
    for (WaiterThread* t : threads_) {
      pthread_join(t->thread, nullptr);
      delete t;
    }
    threads_.clear();
    for (auto& [id, w] : watches_) StopWatch(w);
    watches_.clear();
    oneShots_.clear();  // the ring cancels its waits when it closes; the threads are gone
    words_.clear();
    napi_remove_env_cleanup_hook(env_, CleanupHook, this);
    if (signal_) signal_->Close();
  }

  static constexpr size_t kMaxThreads = 256;
  std::mutex mu_;
  std::vector<WaiterThread*> threads_;
  std::vector<WaiterThread*> idle_;
  std::unordered_map<uint32_t, WordRef> words_;           // JavaScript thread only
  std::unordered_map<uint32_t, OneShot> oneShots_;        // JavaScript thread only
  std::unordered_map<uint32_t, Watch*> watches_;          // JavaScript thread only
  std::unordered_map<uint32_t, ExitAction> exitActions_;  // JavaScript thread only
  FutexRing* ring_ = nullptr;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::vector<Report> done_;
  size_t live_ = 0;
  uint32_t nextId_ = 0;
  std::atomic<bool> shutdown_{false};
  std::unique_ptr<LoopSignal> signal_;
  napi_env env_ = nullptr;
  Napi::AsyncContext context_;
};

}  // namespace

void InitFutex(Napi::Env env, Napi::Object exports) {
  exports.Set("futexWait", Napi::Function::New(env, FutexWait, "futexWait"));
  exports.Set("futexWake", Napi::Function::New(env, FutexWake, "futexWake"));
  FutexWaiters::Init(env, exports);
}

}  // namespace ipckit
