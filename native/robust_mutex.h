// Lock and unlock of a robust, process-shared, normal pthread mutex in shared memory,
// without trusting the shared memory.
//
// Why not pthread_mutex_trylock / pthread_mutex_unlock: glibc keeps the list of robust
// mutexes a thread holds (which the kernel walks when the thread dies, to mark them "owner
// died") as links *inside* each mutex (`__data.__list`), and pthread_mutex_unlock reads
// those links from the mutex and writes through them (DEQUEUE_MUTEX). In shared memory any
// process that can write the segment can overwrite them, and our unlock then writes to
// whatever address it put there: a SIGSEGV at best (found by the hostile-peer campaign,
// scripts/hostile.ts). glibc also reads the mutex's type on every call and trusts it.
//
// So the two calls below follow glibc's own protocol for this one kind of mutex
// (nptl/pthread_mutex_trylock.c and pthread_mutex_unlock.c, glibc 2.36: the same words,
// written in the same order, so C peers using pthread_mutex_* on the same mutex
// interoperate, and the kernel's robust-list walk still works), but every link they write
// comes from this thread's own record of the ipckit mutexes it holds (`held`), never from
// the shared mutex. The links found in the mutex are only compared with that record: a
// mismatch means another process wrote them, and is reported as corruption.
//
// The record is only used while this thread's robust list is exactly the ipckit mutexes it
// holds (checked at the top of the list, which lives in this thread's own memory). If some
// other code on the thread locks robust mutexes of its own, calls fall back to glibc until
// those are unlocked again; and a thread whose glibc does not lay the list out as expected
// (checked once per thread with a mutex of its own) always uses glibc.
#pragma once
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "futex.h"

namespace ipckit::robust {

// glibc's values for __owner (nptl/pthreadP.h): in no public header.
constexpr int kInconsistent = INT_MAX;
constexpr int kNotRecoverable = INT_MAX - 1;

// The ways unlock ends (Unlock's result, besides -errno).
constexpr int kUnlocked = 0;
constexpr int kUnlockedOverwritten = 1;  // unlocked, but another process had overwritten the mutex (links or type)
constexpr int kWordOverwritten = 2;      // our record says we hold it, its word names another thread: taken off our list, word left alone

// pthread_mutex_init as a robust, process-shared, normal mutex (the one kind this file
// knows): 0 or an errno.
inline int InitShared(pthread_mutex_t* m) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  int err = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  if (err == 0) err = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  if (err == 0) err = pthread_mutex_init(m, &attr);
  pthread_mutexattr_destroy(&attr);
  return err;
}

struct ThreadState {
  bool checked = false;
  robust_list_head* head = nullptr;    // this thread's list head, as glibc registered it (null: use glibc)
  std::vector<pthread_mutex_t*> held;  // mutexes locked through Lock() and not unlocked, oldest first
};
inline thread_local ThreadState t_state;

// A list entry is the address of a mutex's __list.__next (what the kernel walks); glibc
// keeps the back link just before it. The head's own back link (glibc's `robust_prev`)
// sits likewise just before the head.
inline void* EntryOf(pthread_mutex_t* m) { return &m->__data.__list.__next; }
inline __pthread_list_t* LinksAt(void* entry) {
  return reinterpret_cast<__pthread_list_t*>(static_cast<char*>(entry) - offsetof(__pthread_list_t, __next));
}
inline void Barrier() { __asm__ __volatile__("" ::: "memory"); }

// Once per thread: find the head glibc registered (get_robust_list) and check, with a
// mutex on our own stack locked by glibc, that glibc links it as this code assumes.
inline ThreadState& State() {
  ThreadState& s = t_state;
  if (s.checked) return s;
  s.checked = true;
  robust_list_head* head = nullptr;
  size_t len = 0;
  if (syscall(SYS_get_robust_list, 0, &head, &len) != 0 || head == nullptr || len != sizeof(robust_list_head)) return s;
  if (head->futex_offset != static_cast<long>(offsetof(pthread_mutex_t, __data.__lock)) - static_cast<long>(offsetof(pthread_mutex_t, __data.__list.__next))) return s;
  pthread_mutex_t probe;
  if (InitShared(&probe) != 0) return s;
  void* top = head->list.next;
  bool asExpected = false;
  if (pthread_mutex_lock(&probe) == 0) {
    asExpected = head->list.next == EntryOf(&probe) && probe.__data.__list.__next == top &&
                 probe.__data.__list.__prev == static_cast<void*>(head) && LinksAt(top)->__prev == EntryOf(&probe);
    pthread_mutex_unlock(&probe);
    asExpected = asExpected && head->list.next == top;
  }
  pthread_mutex_destroy(&probe);
  if (asExpected) s.head = head;
  return s;
}

// Whether this thread's list is exactly what `held` says (the top is checked; below it,
// every entry was put there by Lock()).
inline bool ListIsOurs(const ThreadState& s) {
  void* expectedTop = s.held.empty() ? static_cast<void*>(s.head) : EntryOf(s.held.back());
  return s.head != nullptr && static_cast<void*>(s.head->list.next) == expectedTop;
}

inline uint32_t* WordOf(pthread_mutex_t* m) { return reinterpret_cast<uint32_t*>(&m->__data.__lock); }

// glibc's ENQUEUE_MUTEX, with the old top taken from this thread's head.
inline void Enqueue(ThreadState& s, pthread_mutex_t* m) {
  s.held.reserve(s.held.size() + 1);  // nothing may fail once the mutex is on the list
  void* top = s.head->list.next;
  LinksAt(top)->__prev = static_cast<__pthread_list_t*>(EntryOf(m));
  m->__data.__list.__next = static_cast<__pthread_list_t*>(top);
  m->__data.__list.__prev = reinterpret_cast<__pthread_list_t*>(s.head);
  Barrier();
  s.head->list.next = static_cast<robust_list*>(EntryOf(m));
  Barrier();
  s.held.push_back(m);
}

// glibc's DEQUEUE_MUTEX, with both neighbours taken from `held`. False if the mutex's own
// links were not what they must be (overwritten by another process).
inline bool Dequeue(ThreadState& s, size_t i) {
  pthread_mutex_t* m = s.held[i];
  void* older = i > 0 ? EntryOf(s.held[i - 1]) : static_cast<void*>(s.head);
  void* newer = i + 1 < s.held.size() ? EntryOf(s.held[i + 1]) : static_cast<void*>(s.head);
  bool intact = static_cast<void*>(m->__data.__list.__next) == older && static_cast<void*>(m->__data.__list.__prev) == newer;
  LinksAt(older)->__prev = static_cast<__pthread_list_t*>(newer);
  LinksAt(newer)->__next = static_cast<__pthread_list_t*>(older);
  Barrier();
  m->__data.__list.__prev = nullptr;
  m->__data.__list.__next = nullptr;
  s.held.erase(s.held.begin() + static_cast<std::ptrdiff_t>(i));
  return intact;
}

// glibc's trylock leaves the word taken when it finds the mutex not recoverable (it only
// releases it `if (oldval == id)`, and oldval is 0 there): release it as lll_unlock would,
// and wake every waiter so that each sees the state too.
inline void ReleaseUnrecoverable(pthread_mutex_t* m) {
  uint32_t* word = WordOf(m);
  uint32_t tid = static_cast<uint32_t>(gettid());
  uint32_t v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
  if ((v & FUTEX_TID_MASK) == tid && __atomic_compare_exchange_n(word, &v, 0, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED) && (v & FUTEX_WAITERS)) {
    FutexWakeShared(word, -1);
  }
}

// Try to lock for the calling thread: 0, EOWNERDEAD (locked; the previous owner died),
// EBUSY, ENOTRECOVERABLE. `contended`: we waited for it, so take it with FUTEX_WAITERS set
// (as glibc's lock does after a wait): others may still sleep on it, and our unlock must
// wake one.
inline int TryLock(pthread_mutex_t* m, bool contended) {
  ThreadState& s = State();
  uint32_t* word = WordOf(m);
  if (!ListIsOurs(s)) {
    int err = pthread_mutex_trylock(m);
    if (err == ENOTRECOVERABLE) ReleaseUnrecoverable(m);
    if ((err == 0 || err == EOWNERDEAD) && contended) __atomic_fetch_or(word, FUTEX_WAITERS, __ATOMIC_RELAXED);
    return err;
  }
  const uint32_t id = static_cast<uint32_t>(gettid());
  s.head->list_op_pending = static_cast<robust_list*>(EntryOf(m));
  Barrier();
  uint32_t old = __atomic_load_n(word, __ATOMIC_ACQUIRE);
  for (;;) {
    if (old & FUTEX_OWNER_DIED) {
      // The previous owner died holding it (the kernel marked the word): take it over.
      // A waiter that slept keeps FUTEX_WAITERS on (glibc: assume_other_futex_waiters): others
      // may still sleep, and an unlock in between cleared the bit.
      if (!__atomic_compare_exchange_n(word, &old, id | (old & FUTEX_WAITERS) | (contended ? FUTEX_WAITERS : 0), false, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) continue;
      m->__data.__count = 1;
      m->__data.__owner = kInconsistent;
      Enqueue(s, m);
      s.head->list_op_pending = nullptr;
      return EOWNERDEAD;
    }
    uint32_t expected = 0;
    if (__atomic_compare_exchange_n(word, &expected, id | (contended ? FUTEX_WAITERS : 0), false, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) break;
    old = expected;
    if (!(old & FUTEX_OWNER_DIED)) {
      s.head->list_op_pending = nullptr;
      return EBUSY;
    }
  }
  if (__atomic_load_n(&m->__data.__owner, __ATOMIC_RELAXED) == kNotRecoverable) {
    m->__data.__count = 0;
    ReleaseUnrecoverable(m);
    s.head->list_op_pending = nullptr;
    return ENOTRECOVERABLE;
  }
  Enqueue(s, m);
  s.head->list_op_pending = nullptr;
  m->__data.__owner = static_cast<int>(id);
  ++m->__data.__nusers;
  m->__data.__count = 1;
  return 0;
}

// Unlock: kUnlocked, kUnlockedOverwritten, kWordOverwritten, -EPERM (this thread does not
// own it; nothing changed), or -EUCLEAN (only glibc could unlock it here, and `typeOk` is
// false: its type is corrupt, so nothing was called).
inline int Unlock(pthread_mutex_t* m, bool typeOk) {
  ThreadState& s = State();
  uint32_t* word = WordOf(m);
  const uint32_t id = static_cast<uint32_t>(gettid());
  uint32_t v = __atomic_load_n(word, __ATOMIC_RELAXED);
  auto it = std::find(s.held.begin(), s.held.end(), m);
  bool ours = it != s.held.end() && ListIsOurs(s);
  if (ours && (v & FUTEX_TID_MASK) != id) {
    // Another process rewrote the word: whoever it names, it is not ours to release.
    Dequeue(s, static_cast<size_t>(it - s.held.begin()));
    return kWordOverwritten;
  }
  if ((v & FUTEX_TID_MASK) != id) return -EPERM;
  if (!ours) {
    if (!typeOk) return -EUCLEAN;
    if (it != s.held.end()) s.held.erase(it);
    return -pthread_mutex_unlock(m);
  }
  s.head->list_op_pending = static_cast<robust_list*>(EntryOf(m));
  Barrier();
  bool intact = Dequeue(s, static_cast<size_t>(it - s.held.begin())) && typeOk;
  // Not consistent after an owner died: unusable from now on, for every process.
  m->__data.__owner = __atomic_load_n(&m->__data.__owner, __ATOMIC_RELAXED) == kInconsistent ? kNotRecoverable : 0;
  --m->__data.__nusers;
  if (__atomic_exchange_n(word, 0, __ATOMIC_RELEASE) & FUTEX_WAITERS) FutexWakeShared(word, 1);
  Barrier();
  s.head->list_op_pending = nullptr;
  return intact ? kUnlocked : kUnlockedOverwritten;
}

}  // namespace ipckit::robust
