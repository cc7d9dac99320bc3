// FutexRing (uring.h): a minimal io_uring for futex waits that complete on the loop.
// Raw system calls, no liburing: setup, one mmap of the rings, one of the entries.
#include "uring.h"

#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace ipckit {
namespace {

// Opcodes newer than the installed kernel headers may know (Linux 6.7).
constexpr uint8_t kOpNop = 0;
constexpr uint8_t kOpAsyncCancel = 14;
constexpr uint8_t kOpFutexWait = 51;
constexpr uint32_t kFutex2SizeU32 = 0x02;  // futex2 flags: a u32 word, shared (no FUTEX2_PRIVATE)
constexpr uint64_t kMatchAny = 0xffffffffu;
constexpr uint64_t kIgnored = 0;  // user_data of cancel requests: their completions are dropped

thread_local FutexRing* tlsRing = nullptr;
thread_local bool tlsTried = false;

int IoUringSetup(unsigned entries, struct io_uring_params* p) { return static_cast<int>(syscall(__NR_io_uring_setup, entries, p)); }
int IoUringEnter(int fd, unsigned toSubmit) { return static_cast<int>(syscall(__NR_io_uring_enter, fd, toSubmit, 0, 0, nullptr, 0)); }
// Moves completions the kernel kept aside (the CQ ring was full) into the ring.
int IoUringFlush(int fd) { return static_cast<int>(syscall(__NR_io_uring_enter, fd, 0, 0, IORING_ENTER_GETEVENTS, nullptr, 0)); }
int IoUringRegister(int fd, unsigned op, void* arg, unsigned n) { return static_cast<int>(syscall(__NR_io_uring_register, fd, op, arg, n)); }

}  // namespace

FutexRing* FutexRing::For(napi_env env) {
  if (tlsRing != nullptr) return tlsRing;
  if (tlsTried) return nullptr;
  tlsTried = true;
  const char* off = getenv("IPCKIT_NO_URING");
  if (off != nullptr && off[0] != '\0' && off[0] != '0') return nullptr;
  FutexRing* ring = new FutexRing();
  if (!ring->Setup(env)) {
    delete ring;
    return nullptr;
  }
  tlsRing = ring;
  return ring;
}

bool FutexRing::Setup(napi_env env) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  fd_ = IoUringSetup(64, &p);
  if (fd_ < 0) return false;
  if (!(p.features & IORING_FEAT_SINGLE_MMAP)) return false;
  // Does this kernel know FUTEX_WAIT (and may we use it)?
  size_t probeSize = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
  std::vector<uint8_t> probeBuf(probeSize, 0);
  auto* probe = reinterpret_cast<struct io_uring_probe*>(probeBuf.data());
  if (IoUringRegister(fd_, IORING_REGISTER_PROBE, probe, 256) < 0) return false;
  auto supported = [probe](uint8_t op) { return op <= probe->last_op && (probe->ops[op].flags & IO_URING_OP_SUPPORTED); };
  if (!supported(kOpFutexWait) || !supported(kOpAsyncCancel) || !supported(kOpNop)) return false;

  size_t sqSize = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cqSize = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  sqRingSize_ = sqSize > cqSize ? sqSize : cqSize;
  sqRing_ = mmap(nullptr, sqRingSize_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_, IORING_OFF_SQ_RING);
  if (sqRing_ == MAP_FAILED) {
    sqRing_ = nullptr;
    return false;
  }
  sqesSize_ = p.sq_entries * sizeof(struct io_uring_sqe);
  sqes_ = mmap(nullptr, sqesSize_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_, IORING_OFF_SQES);
  if (sqes_ == MAP_FAILED) {
    sqes_ = nullptr;
    return false;
  }
  auto* base = static_cast<char*>(sqRing_);
  sqHead_ = reinterpret_cast<unsigned*>(base + p.sq_off.head);
  sqTail_ = reinterpret_cast<unsigned*>(base + p.sq_off.tail);
  sqMask_ = reinterpret_cast<unsigned*>(base + p.sq_off.ring_mask);
  sqArray_ = reinterpret_cast<unsigned*>(base + p.sq_off.array);
  sqFlags_ = reinterpret_cast<unsigned*>(base + p.sq_off.flags);
  cqHead_ = reinterpret_cast<unsigned*>(base + p.cq_off.head);
  cqTail_ = reinterpret_cast<unsigned*>(base + p.cq_off.tail);
  cqMask_ = reinterpret_cast<unsigned*>(base + p.cq_off.ring_mask);
  cqes_ = base + p.cq_off.cqes;
  sqEntries_ = p.sq_entries;

  // A real wait must work here (seccomp may allow setup and still refuse the op).
  uint32_t word = 1;
  if (!Submit(kOpFutexWait, reinterpret_cast<uint64_t>(&word), 0, kMatchAny, kFutex2SizeU32, kIgnored)) return false;
  for (int spins = 0; *cqHead_ == __atomic_load_n(cqTail_, __ATOMIC_ACQUIRE); spins++) {
    if (spins > 1000) return false;
    usleep(100);
  }
  auto* cqe = static_cast<struct io_uring_cqe*>(cqes_) + (*cqHead_ & *cqMask_);
  int res = cqe->res;
  __atomic_store_n(cqHead_, *cqHead_ + 1, __ATOMIC_RELEASE);
  if (res != -EAGAIN) return false;  // the word was 1, not 0: the only right answer

  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) return false;
  poll_ = new uv_poll_t;
  if (uv_poll_init(loop, poll_, fd_) != 0) {
    delete poll_;
    poll_ = nullptr;
    return false;
  }
  poll_->data = this;
  if (uv_poll_start(poll_, UV_READABLE, OnPoll) != 0) return false;
  uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  napi_add_env_cleanup_hook(env, Cleanup, this);
  return true;
}

FutexRing::~FutexRing() {
  if (poll_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }
  // Closing the ring cancels every wait still in the kernel.
  if (sqes_ != nullptr) munmap(sqes_, sqesSize_);
  if (sqRing_ != nullptr) munmap(sqRing_, sqRingSize_);
  if (fd_ >= 0) close(fd_);
}

void FutexRing::Cleanup(void* arg) {
  FutexRing* self = static_cast<FutexRing*>(arg);
  if (tlsRing == self) tlsRing = nullptr;  // tlsTried stays true: no new ring for a dying env
  self->pending_.clear();                  // no JS runs any more; their owners clean up themselves
  delete self;
}

bool FutexRing::Submit(uint8_t opcode, uint64_t addr, uint64_t addr2, uint64_t addr3, int fd, uint64_t userData) {
  unsigned tail = *sqTail_;
  unsigned head = __atomic_load_n(sqHead_, __ATOMIC_ACQUIRE);
  if (tail - head >= sqEntries_) return false;  // cannot happen: every entry is submitted at once
  unsigned index = tail & *sqMask_;
  auto* sqe = static_cast<struct io_uring_sqe*>(sqes_) + index;
  memset(sqe, 0, sizeof *sqe);
  sqe->opcode = opcode;
  sqe->fd = fd;
  sqe->off = addr2;  // FUTEX_WAIT: the expected value
  sqe->addr = addr;
  sqe->addr3 = addr3;
  sqe->user_data = userData;
  sqArray_[index] = index;
  __atomic_store_n(sqTail_, tail + 1, __ATOMIC_RELEASE);
  for (;;) {
    int n = IoUringEnter(fd_, 1);
    if (n >= 0) return true;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EBUSY) {
      Drain();  // completions waiting to be reaped: make room, then retry
      continue;
    }
    // The entry stays in the ring and is taken by the next successful enter; its
    // callback is not registered, so its completion is dropped.
    return false;
  }
}

uint64_t FutexRing::Wait(uint32_t* word, uint32_t expected, Callback cb) {
  uint64_t id = nextId_++;
  if (!Submit(kOpFutexWait, reinterpret_cast<uint64_t>(word), expected, kMatchAny, kFutex2SizeU32, id)) return 0;
  pending_.emplace(id, std::move(cb));
  return id;
}

uint64_t FutexRing::Soon(Callback cb) {
  uint64_t id = nextId_++;
  if (!Submit(kOpNop, 0, 0, 0, 0, id)) return 0;
  pending_.emplace(id, std::move(cb));
  return id;
}

void FutexRing::Cancel(uint64_t id) {
  if (pending_.count(id) != 0) Submit(kOpAsyncCancel, id, 0, 0, 0, kIgnored);
}

void FutexRing::Hold(int delta) {
  holds_ += delta;
  if (poll_ == nullptr) return;
  if (holds_ > 0) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
  else uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
}

void FutexRing::Drain() {
  bool flushed = false;
  for (;;) {
    unsigned head = *cqHead_;
    if (head == __atomic_load_n(cqTail_, __ATOMIC_ACQUIRE)) {
      // More completions than the CQ ring holds (one wake of many waiters) wait in the
      // kernel's overflow list: they keep the fd readable and reach the ring only when
      // asked for. Without this the loop would spin on the fd and those waits never end.
      if (flushed || (__atomic_load_n(sqFlags_, __ATOMIC_ACQUIRE) & IORING_SQ_CQ_OVERFLOW) == 0) return;
      IoUringFlush(fd_);
      flushed = true;  // once per batch: a flush that brings nothing must not spin
      continue;
    }
    flushed = false;
    auto* cqe = static_cast<struct io_uring_cqe*>(cqes_) + (head & *cqMask_);
    uint64_t id = cqe->user_data;
    int res = cqe->res;
    __atomic_store_n(cqHead_, head + 1, __ATOMIC_RELEASE);
    if (id == kIgnored) continue;
    auto it = pending_.find(id);
    if (it == pending_.end()) continue;
    Callback cb = std::move(it->second);
    pending_.erase(it);
    cb(res);
  }
}

void FutexRing::OnPoll(uv_poll_t* handle, int status, int events) {
  static_cast<FutexRing*>(handle->data)->Drain();
}

}  // namespace ipckit
