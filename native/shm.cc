// Shared memory: shm_open/shm_unlink, fallocate (ftruncate is socket.cc's), and `Mapping`, a mapped
// region with the few things JavaScript cannot do itself:
//
// - buffer(): a real SharedArrayBuffer over the mapped pages. Node-API cannot make one
//   over external memory, so this one place uses V8's API: a backing store whose deleter
//   drops our reference to the region (the pages are unmapped only when no JS buffer, no
//   handle and no futex wait uses them any more). Runtimes with a V8 memory cage
//   (Electron >= 21) forbid external buffers; builds for them (V8_ENABLE_SANDBOX, or
//   NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED / IPCKIT_NO_EXTERNAL_BUFFERS defined) compile this
//   path out, and `externalBuffersAllowed` tells TypeScript to use the copying path.
// - The copying path: read/write copies and 32-bit atomics (seq_cst) done natively.
// - sync(): msync, for mapped files.
#include "addon.h"
#include "region.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#if defined(NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED) || defined(V8_ENABLE_SANDBOX) || defined(IPCKIT_NO_EXTERNAL_BUFFERS)
#define IPCKIT_EXTERNAL_SAB 0
#else
#define IPCKIT_EXTERNAL_SAB 1
#include <v8.h>
#endif

namespace ipckit {
namespace {

// Marks JS objects that are Mappings, so RegionOf can refuse anything else.
const napi_type_tag kMappingTag = {0x69706b6974736d68ULL, 0x4d617070696e6731ULL};

bool g_externalAllowed = false;

class Mapping : public Napi::ObjectWrap<Mapping> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "Mapping", {
      InstanceMethod<&Mapping::Buffer>("buffer"),
      InstanceMethod<&Mapping::Read>("read"),
      InstanceMethod<&Mapping::Write>("write"),
      InstanceMethod<&Mapping::Load>("load"),
      InstanceMethod<&Mapping::Store>("store"),
      InstanceMethod<&Mapping::CompareExchange>("compareExchange"),
      InstanceMethod<&Mapping::Add>("add"),
      InstanceMethod<&Mapping::Sync>("sync"),
      InstanceMethod<&Mapping::Release>("release"),
    });
    exports.Set("Mapping", ctor);
  }

  // new Mapping(fd, length, writable): mmap(MAP_SHARED) of the first `length` bytes.
  // new Mapping(attached): a region mapped elsewhere (a System V segment, native/sysv.cc).
  explicit Mapping(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Mapping>(info) {
    Napi::Env env = info.Env();
    if (info.Length() == 1 && info[0].IsExternal()) {
      region_ = *info[0].As<Napi::External<std::shared_ptr<Region>>>().Data();
      napi_type_tag_object(env, info.This(), &kMappingTag);
      info.This().As<Napi::Object>().Set("length", Napi::Number::New(env, static_cast<double>(region_->length)));
      return;
    }
    int fd = ArgInt(info, 0);
    int64_t length = ArgInt64(info, 1);
    bool writable = info[2].ToBoolean();
    if (length <= 0) throw Napi::RangeError::New(env, "Mapping: length must be positive");
    void* p = mmap(nullptr, static_cast<size_t>(length), PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) ThrowErrno(env, "mmap");
    region_ = std::make_shared<Region>(static_cast<uint8_t*>(p), static_cast<size_t>(length), writable);
    napi_type_tag_object(env, info.This(), &kMappingTag);
    info.This().As<Napi::Object>().Set("length", Napi::Number::New(env, static_cast<double>(length)));
  }

  std::shared_ptr<Region> region() const { return region_; }

 private:
  const Region& Live(Napi::Env env) const {
    if (!region_) throw Napi::Error::New(env, "ipckit native: the mapping was released");
    return *region_;
  }

  uint8_t* Range(Napi::Env env, int64_t offset, int64_t length) const {
    const Region& r = Live(env);
    if (offset < 0 || length < 0 || static_cast<uint64_t>(offset) + static_cast<uint64_t>(length) > r.length) {
      throw Napi::RangeError::New(env, "ipckit native: range outside the mapping");
    }
    return r.base + offset;
  }

  int32_t* Word(Napi::Env env, int64_t offset) const {
    return reinterpret_cast<int32_t*>(WordAt(env, Live(env), offset));
  }

  // A new SharedArrayBuffer over the whole region; it holds its own reference.
  Napi::Value Buffer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Region& r = Live(env);
#if IPCKIT_EXTERNAL_SAB
    if (!g_externalAllowed) throw Napi::Error::New(env, "ipckit native: this runtime does not allow external buffers");
    if (!r.writable) throw Napi::Error::New(env, "ipckit native: a read-only mapping has no SharedArrayBuffer");
    auto* holder = new std::shared_ptr<Region>(region_);
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

  // read(offset, dst, dstOffset, length): copies out of the region.
  Napi::Value Read(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ByteView dst = ArgBytes(info, 1);
    int64_t dstOff = ArgInt64(info, 2), len = ArgInt64(info, 3);
    if (dstOff < 0 || len < 0 || static_cast<uint64_t>(dstOff) + static_cast<uint64_t>(len) > dst.length) {
      throw Napi::RangeError::New(env, "ipckit native: range outside the destination");
    }
    uint8_t* src = Range(env, ArgInt64(info, 0), len);
    memcpy(dst.data + dstOff, src, static_cast<size_t>(len));
    return env.Undefined();
  }

  // write(offset, src, srcOffset, length): copies into the region.
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env).writable) throw Napi::Error::New(env, "ipckit native: the mapping is read-only");
    ByteView src = ArgBytes(info, 1);
    int64_t srcOff = ArgInt64(info, 2), len = ArgInt64(info, 3);
    if (srcOff < 0 || len < 0 || static_cast<uint64_t>(srcOff) + static_cast<uint64_t>(len) > src.length) {
      throw Napi::RangeError::New(env, "ipckit native: range outside the source");
    }
    uint8_t* dst = Range(env, ArgInt64(info, 0), len);
    memcpy(dst, src.data + srcOff, static_cast<size_t>(len));
    return env.Undefined();
  }

  // The 32-bit atomics of the copying path: sequentially consistent, like JS Atomics.
  Napi::Value Load(const Napi::CallbackInfo& info) {
    int32_t* w = Word(info.Env(), ArgInt64(info, 0));
    return Napi::Number::New(info.Env(), __atomic_load_n(w, __ATOMIC_SEQ_CST));
  }

  Napi::Value Store(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env).writable) throw Napi::Error::New(env, "ipckit native: the mapping is read-only");
    int32_t* w = Word(env, ArgInt64(info, 0));
    int32_t v = static_cast<int32_t>(ArgInt64(info, 1));
    __atomic_store_n(w, v, __ATOMIC_SEQ_CST);
    return Napi::Number::New(env, v);
  }

  Napi::Value CompareExchange(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env).writable) throw Napi::Error::New(env, "ipckit native: the mapping is read-only");
    int32_t* w = Word(env, ArgInt64(info, 0));
    int32_t expected = static_cast<int32_t>(ArgInt64(info, 1));
    int32_t replacement = static_cast<int32_t>(ArgInt64(info, 2));
    __atomic_compare_exchange_n(w, &expected, replacement, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return Napi::Number::New(env, expected);  // the old value, as Atomics.compareExchange returns
  }

  Napi::Value Add(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env).writable) throw Napi::Error::New(env, "ipckit native: the mapping is read-only");
    int32_t* w = Word(env, ArgInt64(info, 0));
    int32_t delta = static_cast<int32_t>(ArgInt64(info, 1));
    // Wrapping add on the unsigned value (signed overflow is undefined in C).
    uint32_t old = __atomic_fetch_add(reinterpret_cast<uint32_t*>(w), static_cast<uint32_t>(delta), __ATOMIC_SEQ_CST);
    return Napi::Number::New(env, static_cast<int32_t>(old));
  }

  // sync(async): msync the whole region (for mapped files that must reach the disk).
  Napi::Value Sync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Region& r = Live(env);
    if (msync(r.base, r.length, info[0].ToBoolean() ? MS_ASYNC : MS_SYNC) != 0) ThrowErrno(env, "msync");
    return env.Undefined();
  }

  // Drops the handle's reference; buffers and waits still in use keep the pages mapped.
  Napi::Value Release(const Napi::CallbackInfo& info) {
    region_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<Region> region_;
};

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

uint32_t* WordAt(Napi::Env env, const Region& region, int64_t byteOffset) {
  if (byteOffset < 0 || (byteOffset & 3) != 0 || static_cast<uint64_t>(byteOffset) + 4 > region.length) {
    throw Napi::RangeError::New(env, "ipckit native: word offset outside the mapping or not 4-byte aligned");
  }
  return reinterpret_cast<uint32_t*>(region.base + byteOffset);
}

std::shared_ptr<Region> RegionOf(Napi::Env env, Napi::Value value) {
  bool tagged = false;
  if (!value.IsObject() || napi_check_object_type_tag(env, value, &kMappingTag, &tagged) != napi_ok || !tagged) {
    throw Napi::TypeError::New(env, "ipckit native: expected a Mapping");
  }
  std::shared_ptr<Region> r = Mapping::Unwrap(value.As<Napi::Object>())->region();
  if (!r) throw Napi::Error::New(env, "ipckit native: the mapping was released");
  return r;
}

void InitShm(Napi::Env env, Napi::Object exports) {
  g_externalAllowed = ProbeExternalBuffers(env);
#if IPCKIT_EXTERNAL_SAB
#endif
  Mapping::Init(env, exports);
  exports.Set("shmOpen", Napi::Function::New(env, ShmOpen, "shmOpen"));
  exports.Set("shmUnlink", Napi::Function::New(env, ShmUnlink, "shmUnlink"));
  exports.Set("fallocate", Napi::Function::New(env, Fallocate, "fallocate"));
  exports.Set("externalBuffersAllowed", Napi::Boolean::New(env, g_externalAllowed));
}

}  // namespace ipckit
