// LoopSignal wakes the event loop of one Node env from any thread: every wake-up of the
// loop by a thread of ours goes through it (the wait back-end's waiter threads, native/
// futex.cc; the signal handler's reports are a pipe). The loop stays free; libuv's thread
// pool is never used.
#pragma once
#include <napi.h>

#include "addon.h"
#include <uv.h>

#include <functional>

namespace ipckit {

class LoopSignal {
 public:
  // Must be constructed on the loop thread of `env`. `onSignal` runs on that thread,
  // once per batch of Send() calls (uv_async coalesces them).
  LoopSignal(napi_env env, std::function<void()> onSignal) : onSignal_(std::move(onSignal)) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) throw Napi::Error::New(env, "ipckit: no event loop");
    async_ = new uv_async_t;
    if (uv_async_init(loop, async_, OnAsync) != 0) {
      delete async_;
      async_ = nullptr;
      throw Napi::Error::New(env, "ipckit: uv_async_init failed");
    }
    async_->data = this;
    // Idle until someone waits: an idle semaphore or mutex must not keep the process alive.
    uv_unref(reinterpret_cast<uv_handle_t*>(async_));
  }
  ~LoopSignal() { Close(); }
  LoopSignal(const LoopSignal&) = delete;
  LoopSignal& operator=(const LoopSignal&) = delete;

  // Any thread. Safe until Close(); callers stop their threads before closing.
  void Send() {
    if (async_ != nullptr) uv_async_send(async_);
  }

  // Loop thread: whether a pending wait keeps the event loop alive.
  void Ref(bool on) {
    if (async_ == nullptr) return;
    if (on) uv_ref(reinterpret_cast<uv_handle_t*>(async_));
    else uv_unref(reinterpret_cast<uv_handle_t*>(async_));
  }

  // Loop thread; idempotent.
  void Close() {
    if (async_ == nullptr) return;
    async_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(async_), [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
    async_ = nullptr;
  }

 private:
  static void OnAsync(uv_async_t* h) {
    auto* self = static_cast<LoopSignal*>(h->data);
    if (self != nullptr) self->onSignal_();
  }

  std::function<void()> onSignal_;
  uv_async_t* async_ = nullptr;
};

// Calls the JS function stored as `property` on `obj` with `args`, as a callback from
// the event loop (MakeCallback: microtasks run after it).
inline void CallBack(Napi::Env env, Napi::Object obj, const char* property, const std::initializer_list<napi_value>& args, Napi::AsyncContext& context) {
  try {
    Napi::Value cb = obj.Get(property);
    if (!cb.IsFunction()) return;
    cb.As<Napi::Function>().MakeCallback(obj, args, context);
  } catch (const Napi::Error& e) {
    ReportFromLoop(env, e);
  }
}

}  // namespace ipckit
