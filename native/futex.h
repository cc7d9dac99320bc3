// The futex and clock primitives every wait of the addon uses (futex.cc, shm.cc's robust
// mutex, semaphore.cc): one copy of the deadline arithmetic and of the futex(2) calls.
//
// Words in shared memory are waited on and woken *shared* (no FUTEX_PRIVATE_FLAG), so the
// kernel keys them by the physical page and a wake in one process reaches a waiter in
// another. Control words private to this process use the _PRIVATE forms.
#pragma once
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>

namespace ipckit {

inline int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

inline timespec ToTimespec(int64_t ns) {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1000000000LL);
  ts.tv_nsec = static_cast<long>(ns % 1000000000LL);
  return ts;
}

// An absolute CLOCK_MONOTONIC deadline `ms` from now, in ns; negative `ms`: none (-1).
inline int64_t DeadlineAfterMs(double ms) {
  if (ms < 0) return -1;
  double ns = ms * 1e6;
  if (ns > 9.0e18) return -1;
  return MonotonicNs() + static_cast<int64_t>(ns);
}

// One FUTEX_WAIT_BITSET (shared) with an absolute deadline (< 0: none): 0 woken, or -errno
// (-EAGAIN: the word was not `expected`; -ETIMEDOUT; -EINTR).
inline long FutexWaitShared(uint32_t* addr, uint32_t expected, int64_t deadlineNs) {
  timespec ts;
  if (deadlineNs >= 0) ts = ToTimespec(deadlineNs);
  long rc = syscall(SYS_futex, addr, FUTEX_WAIT_BITSET, expected, deadlineNs >= 0 ? &ts : nullptr, nullptr, FUTEX_BITSET_MATCH_ANY);
  return rc == 0 ? 0 : -errno;
}

// FUTEX_WAKE (shared) of up to `count` waiters (< 0: all): how many woke, or -errno.
inline long FutexWakeShared(uint32_t* addr, int count) {
  long rc = syscall(SYS_futex, addr, FUTEX_WAKE, count < 0 ? INT_MAX : count, nullptr, nullptr, 0);
  return rc < 0 ? -errno : rc;
}

// A control word of this process (a waiter thread's mailbox): wait with a relative timeout
// (nullptr: none), and wake. The wake bumps the word first: a waiter loads the word, looks
// at its mailbox, then sleeps while the word is still what it loaded, so a wake between the
// look and the sleep makes the sleep return at once instead of being lost.
inline void FutexWaitPrivate(std::atomic<uint32_t>& word, uint32_t expected, const timespec* relative) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, relative, nullptr, 0);
}
inline void FutexWakePrivate(std::atomic<uint32_t>& word) {
  word.fetch_add(1, std::memory_order_seq_cst);
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

// Reads a word of shared memory without risking SIGBUS: if a peer shrank the segment under
// us, process_vm_readv fails with EFAULT where a plain load would kill the process. For
// threads that read words while JavaScript is not looking (waiter threads, exit actions).
inline bool SafeLoad(uint32_t* addr, uint32_t* out) {
  static std::atomic<bool> haveVmRead{true};
  if (haveVmRead.load(std::memory_order_relaxed)) {
    struct iovec local = {out, sizeof *out};
    struct iovec remote = {addr, sizeof *out};
    ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    if (n == static_cast<ssize_t>(sizeof *out)) return true;
    if (n < 0 && errno == EFAULT) return false;
    haveVmRead.store(false);  // not allowed here (seccomp): plain loads
  }
  *out = __atomic_load_n(addr, __ATOMIC_SEQ_CST);
  return true;
}

}  // namespace ipckit
