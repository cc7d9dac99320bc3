// FutexRing: futex waits that complete on the event loop, with no thread in between.
//
// One io_uring instance per JS thread (main thread or worker), used only for
// IORING_OP_FUTEX_WAIT (Linux 6.7+) and NOP. Its fd is watched by the loop (uv_poll):
// when a peer's FUTEX_WAKE (a sem_post, a mutex unlock) ends a wait, the kernel posts a
// completion and the loop thread runs the waiter's callback. One wake-up per hand-over,
// as for a C program blocked in sem_wait, instead of waking a helper thread that then
// wakes the loop.
//
// Where io_uring or its futex operations are missing (older kernels, seccomp profiles
// that refuse io_uring, IPCKIT_NO_URING=1), For() returns nullptr and callers use a
// dedicated waiter thread instead (futex.cc).
#pragma once
#include <napi.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <unordered_map>

namespace ipckit {

class FutexRing {
 public:
  // Completion callback, on the loop thread: 0 (woken), -EAGAIN (the word was not the
  // expected value), -ECANCELED, or another -errno.
  using Callback = std::function<void(int res)>;

  // The ring of this thread's env, created on first use; nullptr if unavailable.
  static FutexRing* For(napi_env env);

  // FUTEX_WAIT on a shared (not process-private) u32 until it is woken, as long as
  // *word == expected. Returns an id for Cancel, or 0 if nothing could be submitted.
  uint64_t Wait(uint32_t* word, uint32_t expected, Callback cb);
  // A completion on the next loop turn (to re-check something without waiting).
  uint64_t Soon(Callback cb);
  // Asks the kernel to end a wait early; its callback still runs once (-ECANCELED, or
  // its real result if it completed first).
  void Cancel(uint64_t id);
  // Whether the pending waits keep the event loop alive: Hold(+1) while some JS code
  // waits, Hold(-1) after.
  void Hold(int delta);

  FutexRing(const FutexRing&) = delete;
  FutexRing& operator=(const FutexRing&) = delete;

 private:
  FutexRing() = default;
  ~FutexRing();
  bool Setup(napi_env env);
  bool Submit(uint8_t opcode, uint64_t addr, uint64_t addr2, uint64_t addr3, int fd, uint64_t userData);
  void Drain();
  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void Cleanup(void* arg);

  int fd_ = -1;
  void* sqRing_ = nullptr;
  size_t sqRingSize_ = 0;
  void* sqes_ = nullptr;
  size_t sqesSize_ = 0;
  unsigned* sqHead_ = nullptr;
  unsigned* sqTail_ = nullptr;
  unsigned* sqMask_ = nullptr;
  unsigned* sqArray_ = nullptr;
  unsigned* sqFlags_ = nullptr;
  unsigned* cqHead_ = nullptr;
  unsigned* cqTail_ = nullptr;
  unsigned* cqMask_ = nullptr;
  void* cqes_ = nullptr;
  unsigned sqEntries_ = 0;
  uv_poll_t* poll_ = nullptr;
  int holds_ = 0;
  uint64_t nextId_ = 1;
  std::unordered_map<uint64_t, Callback> pending_;
};

}  // namespace ipckit
