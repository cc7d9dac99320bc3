// A mapped region of shared memory, shared by native/shm.cc (which maps it, wraps it in a
// SharedArrayBuffer and does the atomics and robust-mutex operations on it), native/sysv.cc
// (which attaches System V segments as regions),
// native/futex.cc (which waits on words inside it) and native/semaphore.cc (whose sem_t
// is one).
//
// Lifetime: the region is unmapped when the last owner lets go. Owners are the mapping
// handle JavaScript holds (a slot of its thread's table in native/shm.cc, until mapRelease), every SharedArrayBuffer made over it (its backing
// store's deleter drops a reference, so JS can keep using the buffer after release()),
// every futex wait in progress on it and every exit action registered on it. Nothing ever
// touches an unmapped page. One exception keeps pages mapped for good: a robust mutex this
// thread still holds (`heldMutexes`), because at the thread's exit the kernel walks the
// thread's robust list through those pages to mark the mutex "owner died".
#pragma once
#include <napi.h>

#include <sys/mman.h>
#include <sys/shm.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace ipckit {

struct Region {
  // How the pages go: munmap (an mmap), or shmdt (a System V segment attached with shmat,
  // native/sysv.cc; it turns into munmap once shmDetach has put private pages in its place).
  enum class Unmap { Munmap, Shmdt };
  uint8_t* base = nullptr;
  size_t length = 0;
  bool writable = false;
  std::atomic<int> heldMutexes{0};
  std::atomic<Unmap> unmap{Unmap::Munmap};
  Region(uint8_t* b, size_t n, bool w, Unmap how = Unmap::Munmap) : base(b), length(n), writable(w), unmap(how) {}
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  ~Region() {
    if (base == nullptr || heldMutexes.load() != 0) return;
    if (unmap.load() == Unmap::Shmdt) shmdt(base);
    else munmap(base, length);
  }
};

// The region behind a mapping handle of this thread (native/shm.cc). Throws a JS error if
// `value` is not a handle or has been released.
std::shared_ptr<Region> RegionOf(Napi::Env env, Napi::Value value);

// Puts `region` in this thread's table: returns its handle, for JavaScript.
double AddRegion(Napi::Env env, std::shared_ptr<Region> region);

// `bytes` bytes of the region at byteOffset, aligned to `align`: bounds- and
// alignment-checked (throws a RangeError otherwise).
uint8_t* BytesAt(Napi::Env env, const Region& region, int64_t byteOffset, size_t bytes, size_t align);

// A 32-bit word of the region at byteOffset (see BytesAt).
inline uint32_t* WordAt(Napi::Env env, const Region& region, int64_t byteOffset) {
  return reinterpret_cast<uint32_t*>(BytesAt(env, region, byteOffset, 4, 4));
}

}  // namespace ipckit
