// A mapped region of shared memory, shared by native/shm.cc (which maps it and wraps it
// in a SharedArrayBuffer) and native/futex.cc (which waits on words inside it).
//
// Lifetime: the region is unmapped when the last owner lets go. Owners are the JS
// `Mapping` handle (until close()), every SharedArrayBuffer made over it (its backing
// store's deleter drops a reference, so JS can keep using the buffer after close()), and
// every futex wait in progress on a waiter thread. Nothing ever touches an unmapped page.
#pragma once
#include <napi.h>

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace ipckit {

struct Region {
  uint8_t* base = nullptr;
  size_t length = 0;
  bool writable = false;
  Region(uint8_t* b, size_t n, bool w) : base(b), length(n), writable(w) {}
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  ~Region() {
    if (base != nullptr) munmap(base, length);
  }
};

// The region behind a JS Mapping handle (native/shm.cc). Throws a JS error if `value` is
// not a Mapping or has been released.
std::shared_ptr<Region> RegionOf(Napi::Env env, Napi::Value value);

// A 32-bit word of the region at byteOffset: bounds- and alignment-checked (throws a
// RangeError otherwise).
uint32_t* WordAt(Napi::Env env, const Region& region, int64_t byteOffset);

}  // namespace ipckit
