// Named shared-memory objects and their mappings: the one module for shm_open,
// shm_unlink, ftruncate, fallocate and mmap, and for what JavaScript cannot do on a
// mapped region itself. Every ipckit object (ring, work queue, mutex, pool), the plain
// segments and mapped files of the shm mechanism, and the semaphore's sem_t are a
// mapping, held by JavaScript as a handle (a number: see the table below):
//
// - mapBuffer(): a real SharedArrayBuffer over the mapped pages. Node-API cannot make one
//   over external memory, so this one place uses V8's API: a backing store whose deleter
//   drops our reference to the region (the pages are unmapped only when no JS buffer, no
//   handle and no futex wait uses them any more). Runtimes with a V8 memory cage
//   (Electron >= 21) forbid external buffers; builds for them (V8_ENABLE_SANDBOX, or
//   NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED / IPCKIT_NO_EXTERNAL_BUFFERS defined) compile this
//   path out, and `externalBuffersAllowed` tells TypeScript to use the copying path.
// - The copying path: read/write copies and 32-bit atomics (seq_cst) done natively; and
//   the 64-bit atomics on both paths (the attach lock's owner word).
// - The robust, process-shared pthread mutex at an offset (the mutex object). Every
//   lock and unlock is made by the JS thread (main thread or worker) that called it:
//   a trylock on that thread, never a blocking lock elsewhere (glibc's protocol, done in
//   robust_mutex.h so that links in shared memory are never followed). When the mutex
//   is busy, TypeScript only waits for it to become free: mutexPrepareWait sets
//   FUTEX_WAITERS on the mutex's futex word (as any glibc waiter does, so the unlocker
//   wakes one) and returns the value to wait on; the wait itself is futex.cc's. So the
//   owner the kernel records (and whose death it reports with EOWNERDEAD) is always the
//   thread that JS code runs on.
// - sync(): msync, for mapped files.
#include "addon.h"
#include "futex.h"
#include "region.h"
#include "robust_mutex.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <utility>
#include <vector>

#if defined(NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED) || defined(V8_ENABLE_SANDBOX) || defined(IPCKIT_NO_EXTERNAL_BUFFERS)
#define IPCKIT_EXTERNAL_SAB 0
#else
#define IPCKIT_EXTERNAL_SAB 1
#include <v8.h>
#endif

namespace ipckit {
namespace {

bool g_externalAllowed = false;

static_assert(offsetof(pthread_mutex_t, __data.__lock) == 0, "the futex word of a glibc mutex is its first int");

// The type glibc records (__kind) in a mutex made by mutexInit: robust, process-shared,
// normal. glibc reads the type from the shared mutex on every call and trusts it: a
// corrupt one can make it abort the process (priority-protect bits), treat the mutex as
// process-private and not robust, or fail with EINVAL. So every call checks it first and
// returns -EUCLEAN, calling nothing, when it is not this.
int ExpectedMutexKind() {
  static const int kind = [] {
    pthread_mutex_t m;
    robust::InitShared(&m);
    int k = m.__data.__kind;
    pthread_mutex_destroy(&m);
    return k;
  }();
  return kind;
}

bool MutexKindOk(pthread_mutex_t* m) { return __atomic_load_n(&m->__data.__kind, __ATOMIC_ACQUIRE) == ExpectedMutexKind(); }

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsBigInt()) throw Napi::TypeError::New(info.Env(), "ipckit native: expected a bigint argument");
  bool lossless = true;
  return info[i].As<Napi::BigInt>().Uint64Value(&lossless);
}

// -1 if the mutex whose futex word this is can be tried now (unlocked, or its owner died),
// else the word's value to wait on, with FUTEX_WAITERS set (announced as glibc's own lock
// does, so the owner's unlock wakes a waiter). A word with no owner but other bits (only a
// peer writing the segment makes one) is waited on too, as glibc does: never a busy loop.
int64_t PrepareWait(uint32_t* word) {
  uint32_t v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
  for (;;) {
    if (v == 0 || (v & FUTEX_OWNER_DIED)) return -1;
    if (v & FUTEX_WAITERS) return v;
    if (__atomic_compare_exchange_n(word, &v, v | FUTEX_WAITERS, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return v | FUTEX_WAITERS;
  }
}

// Mapping handles are numbers: indexes into this thread's table of regions, with a
// generation so that a released one is refused, never confused with the slot's next user.
// Not a native object per handle (ObjectWrap): Node 20 runs Node-API finalizers only when
// the event loop turns, so a loop that opened and closed segments without turning it kept
// every closed handle's native half (about 180 bytes; 18 MB per 100,000) until it did.
// mapRelease frees the slot at once; a handle never released stays until its thread ends
// (the table goes with the thread, a worker's too), as a descriptor never closed does.
struct RegionSlot {
  std::shared_ptr<Region> region;
  uint32_t generation = 0;
};
struct RegionTable {
  std::vector<RegionSlot> slots;
  std::vector<uint32_t> free;
};
thread_local RegionTable t_regions;
constexpr uint64_t kIndexBits = 24;  // 16M live mappings per thread; generation: 29 bits (ids < 2^53)
constexpr uint64_t kIndexMask = (uint64_t{1} << kIndexBits) - 1;
constexpr uint32_t kGenerationMask = (uint32_t{1} << 29) - 1;

// The live slot that handle `value` names, or nullptr (released, or never made); throws a
// TypeError for anything but a handle.
RegionSlot* FindSlot(Napi::Env env, Napi::Value value) {
  if (!value.IsNumber()) throw Napi::TypeError::New(env, "ipckit native: expected a mapping handle");
  double d = value.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d))) {
    throw Napi::TypeError::New(env, "ipckit native: expected a mapping handle");
  }
  uint64_t id = static_cast<uint64_t>(d);
  uint64_t index = id & kIndexMask;
  RegionTable& t = t_regions;
  if (index >= t.slots.size() || !t.slots[index].region || t.slots[index].generation != (id >> kIndexBits)) return nullptr;
  return &t.slots[index];
}

// The live region of handle `value` (a reference into the table, valid for the call);
// throws a TypeError for anything but a handle, an Error for a released one.
const std::shared_ptr<Region>& Slot(Napi::Env env, Napi::Value value) {
  RegionSlot* slot = FindSlot(env, value);
  if (slot == nullptr) throw Napi::Error::New(env, "ipckit native: the mapping was released");
  return slot->region;
}

const Region& Live(const Napi::CallbackInfo& info) { return *Slot(info.Env(), info[0]); }

const Region& Writable(const Napi::CallbackInfo& info) {
  const Region& r = Live(info);
  if (!r.writable) throw Napi::Error::New(info.Env(), "ipckit native: the mapping is read-only");
  return r;
}

uint8_t* Range(Napi::Env env, const Region& r, int64_t offset, int64_t length) {
  if (offset < 0 || length < 0 || static_cast<uint64_t>(offset) + static_cast<uint64_t>(length) > r.length) {
    throw Napi::RangeError::New(env, "ipckit native: range outside the mapping");
  }
  return r.base + offset;
}

// The word or mutex at the offset in argument 1 of a call whose argument 0 is a handle.
int32_t* Word(const Napi::CallbackInfo& info, const Region& r) { return reinterpret_cast<int32_t*>(WordAt(info.Env(), r, ArgInt64(info, 1))); }
uint64_t* Word64(const Napi::CallbackInfo& info, const Region& r) { return reinterpret_cast<uint64_t*>(BytesAt(info.Env(), r, ArgInt64(info, 1), 8, 8)); }
pthread_mutex_t* MutexAt(const Napi::CallbackInfo& info, const Region& r) {
  return reinterpret_cast<pthread_mutex_t*>(BytesAt(info.Env(), r, ArgInt64(info, 1), sizeof(pthread_mutex_t), 8));
}
pthread_mutex_t* MutexAt(const Napi::CallbackInfo& info) { return MutexAt(info, Writable(info)); }

// mapOpen(fd, length, writable) -> handle: mmap(MAP_SHARED) of the first `length` bytes.
Napi::Value MapOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0);
  int64_t length = ArgInt64(info, 1);
  bool writable = info[2].ToBoolean();
  if (length <= 0) throw Napi::RangeError::New(env, "mapOpen: length must be positive");
  void* p = mmap(nullptr, static_cast<size_t>(length), PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) ThrowErrno(env, "mmap");
  return Napi::Number::New(env, AddRegion(env, std::make_shared<Region>(static_cast<uint8_t*>(p), static_cast<size_t>(length), writable)));
}

// mapLength(handle) -> bytes mapped.
Napi::Value MapLength(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(Live(info).length)); }

// mapBuffer(handle) -> a new SharedArrayBuffer over the whole region; it holds its own reference.
Napi::Value MapBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::shared_ptr<Region>& region = Slot(env, info[0]);
  const Region& r = *region;
#if IPCKIT_EXTERNAL_SAB
  if (!g_externalAllowed) throw Napi::Error::New(env, "ipckit native: this runtime does not allow external buffers");
  if (!r.writable) throw Napi::Error::New(env, "ipckit native: a read-only mapping has no SharedArrayBuffer");
  auto* holder = new std::shared_ptr<Region>(region);
  std::unique_ptr<v8::BackingStore> store = v8::SharedArrayBuffer::NewBackingStore(
      r.base, r.length,
      [](void*, size_t, void* data) { delete static_cast<std::shared_ptr<Region>*>(data); },
      holder);
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  v8::Local<v8::SharedArrayBuffer> sab = v8::SharedArrayBuffer::New(isolate, std::move(store));
  // A napi_value is a v8::Local's slot pointer (as in Node's js_native_api_v8.h).
  v8::Local<v8::Value> value = sab;
  return Napi::Value(env, reinterpret_cast<napi_value>(*value));
#else
  (void)r;
  throw Napi::Error::New(env, "ipckit native: built without external buffers (copying path only)");
#endif
}

// mapRead(handle, offset, dst, dstOffset, length): copies out of the region.
Napi::Value MapRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Region& r = Live(info);
  ByteView dst = ArgByteRange(info, 2);
  memcpy(dst.data, Range(env, r, ArgInt64(info, 1), static_cast<int64_t>(dst.length)), dst.length);
  return env.Undefined();
}

// mapWrite(handle, offset, src, srcOffset, length): copies into the region.
Napi::Value MapWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Region& r = Writable(info);
  ByteView src = ArgByteRange(info, 2);
  memcpy(Range(env, r, ArgInt64(info, 1), static_cast<int64_t>(src.length)), src.data, src.length);
  return env.Undefined();
}

// The 32-bit atomics of the copying path, (handle, offset, ...): sequentially consistent, like JS Atomics.
Napi::Value MapLoad(const Napi::CallbackInfo& info) {
  int32_t* w = Word(info, Live(info));
  return Napi::Number::New(info.Env(), __atomic_load_n(w, __ATOMIC_SEQ_CST));
}

Napi::Value MapStore(const Napi::CallbackInfo& info) {
  int32_t* w = Word(info, Writable(info));
  int32_t v = static_cast<int32_t>(ArgInt64(info, 2));
  __atomic_store_n(w, v, __ATOMIC_SEQ_CST);
  return Napi::Number::New(info.Env(), v);
}

Napi::Value MapCompareExchange(const Napi::CallbackInfo& info) {
  int32_t* w = Word(info, Writable(info));
  int32_t expected = static_cast<int32_t>(ArgInt64(info, 2));
  int32_t replacement = static_cast<int32_t>(ArgInt64(info, 3));
  __atomic_compare_exchange_n(w, &expected, replacement, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return Napi::Number::New(info.Env(), expected);  // the old value, as Atomics.compareExchange returns
}

Napi::Value MapAdd(const Napi::CallbackInfo& info) {
  int32_t* w = Word(info, Writable(info));
  int32_t delta = static_cast<int32_t>(ArgInt64(info, 2));
  // Wrapping add on the unsigned value (signed overflow is undefined in C).
  uint32_t old = __atomic_fetch_add(reinterpret_cast<uint32_t*>(w), static_cast<uint32_t>(delta), __ATOMIC_SEQ_CST);
  return Napi::Number::New(info.Env(), static_cast<int32_t>(old));
}

// mapLoad64(handle, offset) -> bigint (unsigned).
Napi::Value MapLoad64(const Napi::CallbackInfo& info) {
  uint64_t* w = Word64(info, Live(info));
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(__atomic_load_n(w, __ATOMIC_SEQ_CST)));
}

// mapCompareExchange64(handle, offset, expected, replacement) -> the old value (bigint, unsigned).
Napi::Value MapCompareExchange64(const Napi::CallbackInfo& info) {
  uint64_t* w = Word64(info, Writable(info));
  uint64_t expected = ArgU64(info, 2);
  uint64_t replacement = ArgU64(info, 3);
  __atomic_compare_exchange_n(w, &expected, replacement, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return Napi::BigInt::New(info.Env(), expected);
}

// mutexInit(handle, offset): a robust, process-shared, normal mutex at offset (the creator only).
Napi::Value MutexInit(const Napi::CallbackInfo& info) {
  int err = robust::InitShared(MutexAt(info));
  if (err != 0) ThrowErrno(info.Env(), err, "pthread_mutex_init");
  return info.Env().Undefined();
}

// mutexTryLock(handle, offset, contended) -> 0 (locked), -EOWNERDEAD (locked; the previous
// owner died), -EBUSY, -ENOTRECOVERABLE, -EUCLEAN (the mutex's type is corrupt: nothing was
// done), or another -errno. Locks for the calling thread (robust_mutex.h: glibc's
// protocol, without trusting the links in shared memory). `contended`: we waited for it.
Napi::Value MutexTryLock(const Napi::CallbackInfo& info) {
  const Region& r = Writable(info);
  pthread_mutex_t* m = MutexAt(info, r);
  if (!MutexKindOk(m)) return Napi::Number::New(info.Env(), -EUCLEAN);
  int err = robust::TryLock(m, info.Length() > 2 && info[2].ToBoolean());
  if (err == 0 || err == EOWNERDEAD) const_cast<Region&>(r).heldMutexes.fetch_add(1);
  return Napi::Number::New(info.Env(), -err);
}

// mutexLockSync(handle, offset, ms) -> like mutexTryLock, waiting up to ms (< 0: no limit) on
// the calling thread (-ETIMEDOUT): trylock, then a futex wait on the word with FUTEX_WAITERS
// announced, as glibc's own lock does. For workers and scripts; TypeScript calls it in slices.
Napi::Value MutexLockSync(const Napi::CallbackInfo& info) {
  const Region& r = Writable(info);
  pthread_mutex_t* m = MutexAt(info, r);
  double ms = info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : -1;
  int64_t deadline = DeadlineAfterMs(ms);
  for (bool contended = false;; contended = true) {
    if (!MutexKindOk(m)) return Napi::Number::New(info.Env(), -EUCLEAN);
    int err = robust::TryLock(m, contended);
    if (err == 0 || err == EOWNERDEAD) const_cast<Region&>(r).heldMutexes.fetch_add(1);
    if (err != EBUSY) return Napi::Number::New(info.Env(), -err);
    int64_t v = PrepareWait(reinterpret_cast<uint32_t*>(m));
    if (v < 0) {
      // Free again (or its owner died): try at once, within the deadline.
      if (deadline >= 0 && MonotonicNs() >= deadline) return Napi::Number::New(info.Env(), -ETIMEDOUT);
      continue;
    }
    if (FutexWaitShared(reinterpret_cast<uint32_t*>(m), static_cast<uint32_t>(v), deadline) == -ETIMEDOUT) {
      return Napi::Number::New(info.Env(), -ETIMEDOUT);
    }
  }
}

// mutexUnlock(handle, offset) -> 0; 1 (unlocked, but another process had overwritten the
// mutex: its list links or its type); 2 (this thread held it, but its word now names another
// owner: taken off this thread's list, the word left alone); -EPERM (this thread does
// not own it; nothing changed); -EUCLEAN (its type is corrupt and only glibc could
// unlock it here: nothing was called).
Napi::Value MutexUnlock(const Napi::CallbackInfo& info) {
  const Region& r = Writable(info);
  pthread_mutex_t* m = MutexAt(info, r);
  int result = robust::Unlock(m, MutexKindOk(m));
  if (result >= 0 && r.heldMutexes.load() > 0) const_cast<Region&>(r).heldMutexes.fetch_sub(1);
  return Napi::Number::New(info.Env(), result);
}

Napi::Value MutexConsistent(const Napi::CallbackInfo& info) {
  pthread_mutex_t* m = MutexAt(info);
  if (!MutexKindOk(m)) return Napi::Number::New(info.Env(), -EUCLEAN);
  return Napi::Number::New(info.Env(), -pthread_mutex_consistent(m));
}

// mutexValid(handle, offset): whether the mutex at offset has the type mutexInit gives.
Napi::Value MutexValid(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), MutexKindOk(MutexAt(info))); }

// mutexPeek(handle, offset) -> [futex word, owner field]: glibc's pthread_mutex_t starts with
// `int __lock; unsigned __count; int __owner;` (bits/struct_mutex.h). A snapshot for
// diagnostics, taken without locking (locking a mutex whose owner died would change it).
Napi::Value MutexPeek(const Napi::CallbackInfo& info) {
  pthread_mutex_t* m = MutexAt(info);
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, Napi::Number::New(info.Env(), __atomic_load_n(reinterpret_cast<uint32_t*>(&m->__data.__lock), __ATOMIC_ACQUIRE)));
  out.Set(1u, Napi::Number::New(info.Env(), __atomic_load_n(&m->__data.__owner, __ATOMIC_ACQUIRE)));
  return out;
}

// mutexPrepareWait(handle, offset) -> -1 if the mutex has no owner now (unlocked, or its
// owner died: try to lock it), else the futex word's value to wait on, with FUTEX_WAITERS
// set (announced as glibc's own lock does, so the owner's unlock wakes a waiter).
Napi::Value MutexPrepareWait(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(PrepareWait(reinterpret_cast<uint32_t*>(MutexAt(info)))));
}

// mapSync(handle, async): msync the whole region (for mapped files that must reach the disk).
Napi::Value MapSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Region& r = Live(info);
  if (msync(r.base, r.length, info[1].ToBoolean() ? MS_ASYNC : MS_SYNC) != 0) ThrowErrno(env, "msync");
  return env.Undefined();
}

// Private zero pages in place of the region's shared ones (MAP_FIXED replaces the mapping,
// as shmDetach does for System V), if nothing but the SharedArrayBuffer made for its
// owner (`buffers` at most) holds it: no futex wait, watch or exit action (each holds a
// reference), no robust mutex this thread holds in it (the kernel walks those at the
// thread's exit). The garbage collector frees a closed object's buffer when it likes (a
// loop that opens and closes pools kept 120 MB of their pages); its address range stays
// reserved until then, but no memory. Returns whether it was done.
bool DiscardPages(const std::shared_ptr<Region>& r, long buffers) {
  if (r.use_count() > 1 + buffers || r->heldMutexes.load() != 0 || r->unmap.load() != Region::Unmap::Munmap) return false;
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t length = (r->length + page - 1) / page * page;
  return mmap(r->base, length, PROT_READ | (r->writable ? PROT_WRITE : 0), MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED;
}

// mapRelease(handle, discard): drops the handle's reference and frees its slot; buffers,
// waits and exit actions still using the region keep the pages mapped (and a mutex this
// thread holds keeps them mapped for good: region.h). `discard`: the owner is closed for
// good and its one SharedArrayBuffer is its own: let the pages go now (DiscardPages).
// Idempotent: a released handle is ignored.
Napi::Value MapRelease(const Napi::CallbackInfo& info) {
  RegionSlot* slot = FindSlot(info.Env(), info[0]);
  if (slot != nullptr) {
    std::shared_ptr<Region> region = std::move(slot->region);
    if (info[1].ToBoolean()) DiscardPages(region, 1);
    slot->generation = (slot->generation + 1) & kGenerationMask;
    t_regions.free.push_back(static_cast<uint32_t>(slot - t_regions.slots.data()));
  }
  return info.Env().Undefined();
}

// mapsLive() -> handles of this thread not released yet (tests: none left behind).
Napi::Value MapsLive(const Napi::CallbackInfo& info) {
  const RegionTable& t = t_regions;
  return Napi::Number::New(info.Env(), static_cast<double>(t.slots.size() - t.free.size()));
}

Napi::Value ShmOpen(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0);
  int fd;
  do fd = shm_open(name.c_str(), ArgInt(info, 1) | O_CLOEXEC, static_cast<mode_t>(ArgInt(info, 2)));
  while (fd < 0 && errno == EINTR);
  if (fd < 0) ThrowErrno(info.Env(), "shm_open");
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value ShmUnlink(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0);
  if (shm_unlink(name.c_str()) != 0) ThrowErrno(info.Env(), "shm_unlink");
  return info.Env().Undefined();
}

Napi::Value Ftruncate(const Napi::CallbackInfo& info) {
  int r;
  do r = ftruncate(ArgInt(info, 0), static_cast<off_t>(ArgInt64(info, 1)));
  while (r < 0 && errno == EINTR);
  if (r != 0) ThrowErrno(info.Env(), "ftruncate");
  return info.Env().Undefined();
}

// Reserves the pages now, so a full /dev/shm is ENOSPC here rather than SIGBUS later.
Napi::Value Fallocate(const Napi::CallbackInfo& info) {
  int err;
  do err = posix_fallocate(ArgInt(info, 0), 0, static_cast<off_t>(ArgInt64(info, 1)));
  while (err == EINTR);
  if (err != 0) ThrowErrno(info.Env(), err, "posix_fallocate");
  return info.Env().Undefined();
}

bool ProbeExternalBuffers(Napi::Env env) {
#if IPCKIT_EXTERNAL_SAB
  // Node-API reports the runtime's rule: napi_no_external_buffers_allowed under a memory cage.
  static uint8_t probe[8];
  napi_value result;
  napi_status s = napi_create_external_arraybuffer(env, probe, sizeof probe, [](napi_env, void*, void*) {}, nullptr, &result);
  return s == napi_ok;
#else
  return false;
#endif
}

}  // namespace

uint8_t* BytesAt(Napi::Env env, const Region& region, int64_t byteOffset, size_t bytes, size_t align) {
  if (byteOffset < 0 || static_cast<uint64_t>(byteOffset) % align != 0 || static_cast<uint64_t>(byteOffset) + bytes > region.length) {
    throw Napi::RangeError::New(env, "ipckit native: offset outside the mapping or misaligned");
  }
  return region.base + byteOffset;
}

double AddRegion(Napi::Env env, std::shared_ptr<Region> region) {
  RegionTable& t = t_regions;
  uint32_t index;
  if (!t.free.empty()) {
    index = t.free.back();
    t.free.pop_back();
  } else {
    index = static_cast<uint32_t>(t.slots.size());
    if (index > kIndexMask) throw Napi::Error::New(env, "ipckit native: too many mappings in one thread");
    t.slots.emplace_back();
  }
  t.slots[index].region = std::move(region);
  return static_cast<double>((static_cast<uint64_t>(t.slots[index].generation) << kIndexBits) | index);
}

std::shared_ptr<Region> RegionOf(Napi::Env env, Napi::Value value) { return Slot(env, value); }

void InitShm(Napi::Env env, Napi::Object exports) {
  g_externalAllowed = ProbeExternalBuffers(env);
  exports.Set("PTHREAD_MUTEX_SIZE", Napi::Number::New(env, sizeof(pthread_mutex_t)));
  const std::pair<const char*, Napi::Function::Callback> functions[] = {
      {"mapOpen", MapOpen}, {"mapLength", MapLength}, {"mapBuffer", MapBuffer}, {"mapRead", MapRead},
      {"mapWrite", MapWrite}, {"mapLoad", MapLoad}, {"mapStore", MapStore}, {"mapCompareExchange", MapCompareExchange},
      {"mapAdd", MapAdd}, {"mapLoad64", MapLoad64}, {"mapCompareExchange64", MapCompareExchange64},
      {"mutexInit", MutexInit}, {"mutexTryLock", MutexTryLock}, {"mutexLockSync", MutexLockSync},
      {"mutexUnlock", MutexUnlock}, {"mutexConsistent", MutexConsistent}, {"mutexValid", MutexValid},
      {"mutexPeek", MutexPeek}, {"mutexPrepareWait", MutexPrepareWait}, {"mapSync", MapSync},
      {"mapRelease", MapRelease}, {"mapsLive", MapsLive},
  };
  for (const auto& [name, fn] : functions) exports.Set(name, Napi::Function::New(env, fn, name));
  exports.Set("shmOpen", Napi::Function::New(env, ShmOpen, "shmOpen"));
  exports.Set("shmUnlink", Napi::Function::New(env, ShmUnlink, "shmUnlink"));
  exports.Set("ftruncate", Napi::Function::New(env, Ftruncate, "ftruncate"));
  exports.Set("fallocate", Napi::Function::New(env, Fallocate, "fallocate"));
  exports.Set("externalBuffersAllowed", Napi::Boolean::New(env, g_externalAllowed));
}

}  // namespace ipckit
