// POSIX message queues (mq_*). On Linux an mqd_t is a file descriptor: TypeScript opens
// it with O_NONBLOCK and waits for it with FdWatcher (poll.cc), so no call here ever
// blocks. The send/receive calls are the hot path and return -errno (EAGAIN is an
// ordinary answer); the batch forms exist because one N-API call costs about as much as
// the mq_send itself at 64 bytes.
#include "addon.h"

#include <fcntl.h>
#include <mqueue.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>

namespace ipckit {
namespace {

mqd_t ArgMqd(const Napi::CallbackInfo& info, size_t i) { return static_cast<mqd_t>(ArgInt(info, i)); }

// mqOpen(name, oflag, mode, maxMessages, maxMessageBytes) -> fd. maxMessages 0 means "no
// attributes" (open an existing queue, or create with the system defaults).
Napi::Value MqOpen(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0);
  int oflag = ArgInt(info, 1);
  mode_t mode = static_cast<mode_t>(ArgInt(info, 2));
  long maxmsg = ArgInt64(info, 3);
  long msgsize = ArgInt64(info, 4);
  struct mq_attr attr = {};
  attr.mq_maxmsg = maxmsg;
  attr.mq_msgsize = msgsize;
  mqd_t q = mq_open(name.c_str(), oflag, mode, maxmsg > 0 ? &attr : nullptr);
  if (q == static_cast<mqd_t>(-1)) ThrowErrno(info.Env(), "mq_open");
  return Napi::Number::New(info.Env(), q);
}

Napi::Value MqUnlink(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0);
  if (mq_unlink(name.c_str()) != 0) ThrowErrno(info.Env(), "mq_unlink");
  return info.Env().Undefined();
}

Napi::Value MqGetattr(const Napi::CallbackInfo& info) {
  struct mq_attr attr;
  if (mq_getattr(ArgMqd(info, 0), &attr) != 0) ThrowErrno(info.Env(), "mq_getattr");
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("flags", Napi::Number::New(env, static_cast<double>(attr.mq_flags)));
  o.Set("maxMessages", Napi::Number::New(env, static_cast<double>(attr.mq_maxmsg)));
  o.Set("maxMessageBytes", Napi::Number::New(env, static_cast<double>(attr.mq_msgsize)));
  o.Set("currentMessages", Napi::Number::New(env, static_cast<double>(attr.mq_curmsgs)));
  return o;
}

// mqSend(fd, bytes, priority) -> 0 or -errno (EAGAIN: the queue is full).
Napi::Value MqSend(const Napi::CallbackInfo& info) {
  mqd_t q = ArgMqd(info, 0);
  ByteView v = ArgBytes(info, 1);
  unsigned prio = static_cast<unsigned>(ArgInt(info, 2));
  int r;
  do r = mq_send(q, reinterpret_cast<const char*>(v.data), v.length, prio);
  while (r != 0 && errno == EINTR);
  return Napi::Number::New(info.Env(), r == 0 ? 0 : -errno);
}

// mqSendMany(fd, [bytes...], start, priority) -> how many were sent from `start` on
// (stops at the first EAGAIN), or -errno when the first one failed.
Napi::Value MqSendMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  mqd_t q = ArgMqd(info, 0);
  if (info.Length() < 4 || !info[1].IsArray()) throw Napi::TypeError::New(env, "ipckit native: mqSendMany expects an array");
  Napi::Array arr = info[1].As<Napi::Array>();
  uint32_t start = static_cast<uint32_t>(ArgInt64(info, 2));
  unsigned prio = static_cast<unsigned>(ArgInt(info, 3));
  uint32_t count = arr.Length();
  uint32_t sent = 0;
  for (uint32_t i = start; i < count; i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsTypedArray()) throw Napi::TypeError::New(env, "ipckit native: mqSendMany expects Uint8Arrays");
    Napi::Uint8Array u8 = v.As<Napi::Uint8Array>();
    int r;
    do r = mq_send(q, reinterpret_cast<const char*>(u8.Data()), u8.ByteLength(), prio);
    while (r != 0 && errno == EINTR);
    if (r != 0) {
      if (sent == 0) return Napi::Number::New(env, -errno);
      break;
    }
    sent++;
  }
  return Napi::Number::New(env, sent);
}

// mqReceive(fd, buffer) -> priority * 2^32 + length, or -errno (EAGAIN: empty). One
// number carries both so the hot path makes one call; a length is below 2^24 (the
// kernel's HARD_MSGSIZEMAX) and a priority below 2^15, so the sum is an exact double.
Napi::Value MqReceive(const Napi::CallbackInfo& info) {
  mqd_t q = ArgMqd(info, 0);
  ByteView v = ArgBytes(info, 1);
  unsigned prio = 0;
  ssize_t n;
  do n = mq_receive(q, reinterpret_cast<char*>(v.data), v.length, &prio);
  while (n < 0 && errno == EINTR);
  if (n < 0) return Napi::Number::New(info.Env(), -errno);
  return Napi::Number::New(info.Env(), static_cast<double>(prio) * 4294967296.0 + static_cast<double>(n));
}

// mqReceiveMany(fd, buffer, messageSize, max, meta: Uint32Array) -> count, or -errno when
// the first receive failed. Messages are packed one after another into `buffer` (each
// receive needs messageSize bytes of room, so it stops when less is left); meta[2i] is
// the length and meta[2i+1] the priority of message i.
Napi::Value MqReceiveMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  mqd_t q = ArgMqd(info, 0);
  ByteView buf = ArgBytes(info, 1);
  size_t msgsize = static_cast<size_t>(ArgInt64(info, 2));
  uint32_t max = static_cast<uint32_t>(ArgInt64(info, 3));
  if (info.Length() < 5 || !info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    throw Napi::TypeError::New(env, "ipckit native: mqReceiveMany expects a Uint32Array");
  }
  Napi::Uint32Array meta = info[4].As<Napi::Uint32Array>();
  if (meta.ElementLength() < static_cast<size_t>(max) * 2) throw Napi::RangeError::New(env, "ipckit native: mqReceiveMany meta too small");
  uint32_t* m = meta.Data();
  size_t off = 0;
  uint32_t count = 0;
  while (count < max && buf.length - off >= msgsize) {
    unsigned prio = 0;
    ssize_t n;
    do n = mq_receive(q, reinterpret_cast<char*>(buf.data + off), msgsize, &prio);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (count == 0) return Napi::Number::New(env, -errno);
      break;
    }
    m[count * 2] = static_cast<uint32_t>(n);
    m[count * 2 + 1] = prio;
    off += static_cast<size_t>(n);
    count++;
  }
  return Napi::Number::New(env, count);
}

}  // namespace

void InitMqueue(Napi::Env env, Napi::Object exports) {
  exports.Set("mqOpen", Napi::Function::New(env, MqOpen, "mqOpen"));
  exports.Set("mqUnlink", Napi::Function::New(env, MqUnlink, "mqUnlink"));
  exports.Set("mqGetattr", Napi::Function::New(env, MqGetattr, "mqGetattr"));
  exports.Set("mqSend", Napi::Function::New(env, MqSend, "mqSend"));
  exports.Set("mqSendMany", Napi::Function::New(env, MqSendMany, "mqSendMany"));
  exports.Set("mqReceive", Napi::Function::New(env, MqReceive, "mqReceive"));
  exports.Set("mqReceiveMany", Napi::Function::New(env, MqReceiveMany, "mqReceiveMany"));
  exports.Set("MQ_PRIO_MAX", Napi::Number::New(env, static_cast<double>(sysconf(_SC_MQ_PRIO_MAX))));
}

}  // namespace ipckit
