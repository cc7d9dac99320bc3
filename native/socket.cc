// Sockets: the system calls Node's net/dgram do not offer on Linux (AF_UNIX datagram and
// seqpacket sockets, SO_PEERCRED, SCM_RIGHTS descriptor passing, SCM_CREDENTIALS) plus the
// plain non-blocking socket/bind/listen/accept/connect that ipckit's own stream sockets
// use. memfd_create and its seals live here too: a sealed memfd is shared by passing its
// descriptor over a Unix socket.
//
// Every socket is created SOCK_NONBLOCK | SOCK_CLOEXEC and every descriptor received is
// MSG_CMSG_CLOEXEC. Hot-path calls (connect, accept, send, receive) return -errno because
// EAGAIN/EINPROGRESS are ordinary answers there; setup calls throw. Nothing loops on
// EAGAIN: readiness comes from FdPoll on the event loop. EINTR is retried everywhere.
#include "addon.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <vector>

namespace ipckit {
namespace {

// Descriptors accepted per received message; more are closed by the kernel (MSG_CTRUNC).
constexpr int kMaxFdsPerMessage = 16;
// Messages per recvmmsg/sendmmsg call.
constexpr int kMaxBatch = 64;
// Room for SCM_RIGHTS (kMaxFdsPerMessage fds) and SCM_CREDENTIALS in one message.
constexpr size_t kControlSize = CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage) + CMSG_SPACE(sizeof(struct ucred));
// Fields per message in recvPackets' meta array.
constexpr int kMetaStride = 8;
// Bytes per message in recvPackets' address array: sun_path plus its length byte.
constexpr int kAddrStride = 112;

// A sockaddr_un from raw sun_path bytes (a leading NUL is the abstract namespace). The
// caller (TypeScript) has checked the length; this only guards.
socklen_t UnixAddress(const Napi::CallbackInfo& info, size_t i, struct sockaddr_un* sa) {
  ByteView path = ArgBytes(info, i);
  if (path.length > sizeof(sa->sun_path)) throw Napi::RangeError::New(info.Env(), "ipckit native: Unix socket path too long");
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  memcpy(sa->sun_path, path.data, path.length);
  // A filesystem path gets its terminating NUL counted when there is room; abstract names are exact.
  size_t len = path.length;
  if (len > 0 && path.data[0] != 0 && len < sizeof(sa->sun_path)) len++;
  return static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + len);
}

// A sockaddr_in/in6 from a numeric address string and a port.
socklen_t InetAddress(const Napi::CallbackInfo& info, size_t i, struct sockaddr_storage* ss) {
  std::string ip = ArgString(info, i);
  int port = ArgInt(info, i + 1);
  memset(ss, 0, sizeof *ss);
  auto* v4 = reinterpret_cast<struct sockaddr_in*>(ss);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    return sizeof(struct sockaddr_in);
  }
  auto* v6 = reinterpret_cast<struct sockaddr_in6*>(ss);
  if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    return sizeof(struct sockaddr_in6);
  }
  throw Napi::TypeError::New(info.Env(), "ipckit native: not a numeric IPv4 or IPv6 address");
}

Napi::Value AddressObject(Napi::Env env, const struct sockaddr_storage& ss, socklen_t len) {
  Napi::Object o = Napi::Object::New(env);
  if (ss.ss_family == AF_UNIX) {
    const auto* un = reinterpret_cast<const struct sockaddr_un*>(&ss);
    size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
    // A filesystem path may carry its terminating NUL in the length.
    if (n > 0 && un->sun_path[0] != 0) n = strnlen(un->sun_path, n);
    o.Set("family", Napi::String::New(env, "unix"));
    o.Set("path", Napi::Buffer<char>::Copy(env, un->sun_path, n));
    return o;
  }
  char text[INET6_ADDRSTRLEN] = {0};
  int port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const struct sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    port = ntohs(v4->sin_port);
    o.Set("family", Napi::String::New(env, "ipv4"));
  } else {
    const auto* v6 = reinterpret_cast<const struct sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    port = ntohs(v6->sin6_port);
    o.Set("family", Napi::String::New(env, "ipv6"));
  }
  o.Set("address", Napi::String::New(env, text));
  o.Set("port", Napi::Number::New(env, port));
  return o;
}

Napi::Value Result(Napi::Env env, long r) { return Napi::Number::New(env, r < 0 ? -errno : static_cast<double>(r)); }

// socket(domain, type) -> fd, non-blocking and close-on-exec.
Napi::Value Socket(const Napi::CallbackInfo& info) {
  int fd = socket(ArgInt(info, 0), ArgInt(info, 1) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(info.Env(), "socket");
  return Napi::Number::New(info.Env(), fd);
}

// socketpair(AF_UNIX, type) -> [fd, fd], both non-blocking and close-on-exec.
Napi::Value Socketpair(const Napi::CallbackInfo& info) {
  int sv[2];
  if (socketpair(AF_UNIX, ArgInt(info, 0) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) ThrowErrno(info.Env(), "socketpair");
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, sv[0]);
  out.Set(1u, sv[1]);
  return out;
}

// bindUnix(fd, sunPathBytes): throws. An empty path autobinds (a unique abstract name).
Napi::Value BindUnix(const Napi::CallbackInfo& info) {
  struct sockaddr_un sa;
  socklen_t len = UnixAddress(info, 1, &sa);
  if (ArgBytes(info, 1).length == 0) len = sizeof(sa_family_t);
  if (bind(ArgInt(info, 0), reinterpret_cast<struct sockaddr*>(&sa), len) != 0) ThrowErrno(info.Env(), "bind");
  return info.Env().Undefined();
}

// connectUnix(fd, sunPathBytes) -> 0 or -errno (EAGAIN: the listener's backlog is full).
Napi::Value ConnectUnix(const Napi::CallbackInfo& info) {
  struct sockaddr_un sa;
  socklen_t len = UnixAddress(info, 1, &sa);
  int fd = ArgInt(info, 0);
  int r;
  do r = connect(fd, reinterpret_cast<struct sockaddr*>(&sa), len); while (r < 0 && errno == EINTR);
  return Result(info.Env(), r);
}

// bindInet(fd, ip, port): throws.
Napi::Value BindInet(const Napi::CallbackInfo& info) {
  struct sockaddr_storage ss;
  socklen_t len = InetAddress(info, 1, &ss);
  if (bind(ArgInt(info, 0), reinterpret_cast<struct sockaddr*>(&ss), len) != 0) ThrowErrno(info.Env(), "bind");
  return info.Env().Undefined();
}

// connectInet(fd, ip, port) -> 0 or -errno (EINPROGRESS: poll for writable, then SO_ERROR).
Napi::Value ConnectInet(const Napi::CallbackInfo& info) {
  struct sockaddr_storage ss;
  socklen_t len = InetAddress(info, 1, &ss);
  int r = connect(ArgInt(info, 0), reinterpret_cast<struct sockaddr*>(&ss), len);
  // A non-blocking connect interrupted by a signal goes on in the background.
  if (r < 0 && errno == EINTR) errno = EINPROGRESS;
  return Result(info.Env(), r);
}

Napi::Value Listen(const Napi::CallbackInfo& info) {
  if (listen(ArgInt(info, 0), ArgInt(info, 1)) != 0) ThrowErrno(info.Env(), "listen");
  return info.Env().Undefined();
}

// accept(fd) -> new fd (non-blocking, close-on-exec) or -errno.
Napi::Value Accept(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  int r;
  do r = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC); while (r < 0 && errno == EINTR);
  return Result(info.Env(), r);
}

// getSockOpt(fd, level, name) -> int value (SO_ERROR reads and clears the pending error).
Napi::Value GetSockOpt(const Napi::CallbackInfo& info) {
  int value = 0;
  socklen_t len = sizeof value;
  if (getsockopt(ArgInt(info, 0), ArgInt(info, 1), ArgInt(info, 2), &value, &len) != 0) ThrowErrno(info.Env(), "getsockopt");
  return Napi::Number::New(info.Env(), value);
}

Napi::Value SetSockOpt(const Napi::CallbackInfo& info) {
  int value = ArgInt(info, 3);
  if (setsockopt(ArgInt(info, 0), ArgInt(info, 1), ArgInt(info, 2), &value, sizeof value) != 0) ThrowErrno(info.Env(), "setsockopt");
  return info.Env().Undefined();
}

// peerCredentials(fd) -> { pid, uid, gid } of the process that connected (or listened).
Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(ArgInt(info, 0), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) ThrowErrno(info.Env(), "getsockopt(SO_PEERCRED)");
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("pid", Napi::Number::New(info.Env(), cred.pid));
  o.Set("uid", Napi::Number::New(info.Env(), cred.uid));
  o.Set("gid", Napi::Number::New(info.Env(), cred.gid));
  return o;
}

Napi::Value LocalAddress(const Napi::CallbackInfo& info) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(ArgInt(info, 0), reinterpret_cast<struct sockaddr*>(&ss), &len) != 0) ThrowErrno(info.Env(), "getsockname");
  return AddressObject(info.Env(), ss, len);
}

Napi::Value PeerAddress(const Napi::CallbackInfo& info) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getpeername(ArgInt(info, 0), reinterpret_cast<struct sockaddr*>(&ss), &len) != 0) ThrowErrno(info.Env(), "getpeername");
  return AddressObject(info.Env(), ss, len);
}

// shutdown(fd, how) -> 0 or -errno (ENOTCONN once the peer is gone is not worth a throw).
Napi::Value Shutdown(const Napi::CallbackInfo& info) {
  return Result(info.Env(), shutdown(ArgInt(info, 0), ArgInt(info, 1)));
}

// sendPacket(fd, buf, offset, length, fds|null, sunPath|null) -> bytes sent or -errno.
// One sendmsg: one datagram or seqpacket message, optionally carrying descriptors
// (SCM_RIGHTS) and addressed to a Unix path (an unconnected datagram socket's reply).
Napi::Value SendPacket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0);
  ByteView b = ArgByteRange(info, 1);
  struct iovec iov = {b.data, b.length};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  if (info.Length() > 4 && info[4].IsTypedArray()) {
    Napi::Int32Array fds = info[4].As<Napi::Int32Array>();
    size_t n = fds.ElementLength();
    if (n > static_cast<size_t>(kMaxFdsPerMessage)) throw Napi::RangeError::New(env, "ipckit native: too many descriptors for one message");
    if (n > 0) {
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
      struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * n);
      memcpy(CMSG_DATA(c), fds.Data(), sizeof(int) * n);
    }
  }
  struct sockaddr_un sa;
  if (info.Length() > 5 && info[5].IsTypedArray()) {
    msg.msg_namelen = UnixAddress(info, 5, &sa);
    msg.msg_name = &sa;
  }
  ssize_t r;
  do r = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL); while (r < 0 && errno == EINTR);
  return Result(env, r);
}

// sendPackets(fd, [Uint8Array...], start) -> messages sent or -errno. One sendmmsg for
// views[start..] (at most kMaxBatch), each view one message on a connected socket.
Napi::Value SendPackets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0);
  if (info.Length() < 3 || !info[1].IsArray()) throw Napi::TypeError::New(env, "ipckit native: sendPackets expects an array");
  Napi::Array arr = info[1].As<Napi::Array>();
  uint32_t start = static_cast<uint32_t>(ArgInt(info, 2));
  uint32_t total = arr.Length();
  if (start >= total) return Napi::Number::New(env, 0);
  uint32_t count = total - start;
  if (count > static_cast<uint32_t>(kMaxBatch)) count = kMaxBatch;
  struct mmsghdr msgs[kMaxBatch];
  struct iovec iovs[kMaxBatch];
  memset(msgs, 0, sizeof(struct mmsghdr) * count);
  for (uint32_t i = 0; i < count; i++) {
    Napi::Value val = arr.Get(start + i);
    if (!val.IsTypedArray()) throw Napi::TypeError::New(env, "ipckit native: sendPackets expects Uint8Arrays");
    Napi::Uint8Array u8 = val.As<Napi::Uint8Array>();
    iovs[i].iov_base = u8.Data();
    iovs[i].iov_len = u8.ByteLength();
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  int r;
  do r = sendmmsg(fd, msgs, count, MSG_DONTWAIT | MSG_NOSIGNAL); while (r < 0 && errno == EINTR);
  return Result(env, r);
}

// recvPackets(fd, scratch, slotSize, maxCount, meta: Int32Array, addrs: Uint8Array|null,
//             fds: Int32Array) -> messages received, or -errno (EAGAIN: none ready).
// One recvmmsg with MSG_TRUNC, so each message's real length is reported even when it
// was larger than its slot (the caller then reports it as too large; it is consumed,
// and the messages after it are not lost). Per message i, meta[i*8 ..] holds:
//   0 real length, 1 msg_flags (MSG_TRUNC, MSG_CTRUNC), 2 sender address length,
//   3 pid, 4 uid, 5 gid (SCM_CREDENTIALS; -1 when absent), 6 descriptor count,
//   7 index of its first descriptor in `fds`.
// Received descriptors are close-on-exec; the caller owns (and must close) every one.
// A message never gives more than kMaxFdsPerMessage: the rest are closed, MSG_CTRUNC set.
Napi::Value RecvPackets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0);
  ByteView scratch = ArgBytes(info, 1);
  int64_t slot = ArgInt64(info, 2);
  int max = ArgInt(info, 3);
  if (info.Length() < 7 || !info[4].IsTypedArray() || !info[6].IsTypedArray()) throw Napi::TypeError::New(env, "ipckit native: recvPackets arguments");
  Napi::Int32Array meta = info[4].As<Napi::Int32Array>();
  Napi::Int32Array fdsOut = info[6].As<Napi::Int32Array>();
  uint8_t* addrs = nullptr;
  if (info[5].IsTypedArray()) addrs = ArgBytes(info, 5).data;
  if (max > kMaxBatch) max = kMaxBatch;
  if (slot <= 0 || max <= 0 || static_cast<uint64_t>(slot) * static_cast<uint64_t>(max) > scratch.length ||
      meta.ElementLength() < static_cast<size_t>(max * kMetaStride) || fdsOut.ElementLength() < static_cast<size_t>(max * kMaxFdsPerMessage) ||
      (addrs != nullptr && ArgBytes(info, 5).length < static_cast<size_t>(max * kAddrStride))) {
    throw Napi::RangeError::New(env, "ipckit native: recvPackets buffers too small");
  }
  struct mmsghdr msgs[kMaxBatch];
  struct iovec iovs[kMaxBatch];
  struct sockaddr_un names[kMaxBatch];
  alignas(struct cmsghdr) static thread_local char control[kMaxBatch][kControlSize];
  memset(msgs, 0, sizeof(struct mmsghdr) * max);
  for (int i = 0; i < max; i++) {
    iovs[i].iov_base = scratch.data + i * slot;
    iovs[i].iov_len = static_cast<size_t>(slot);
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_control = control[i];
    msgs[i].msg_hdr.msg_controllen = kControlSize;
    if (addrs != nullptr) {
      msgs[i].msg_hdr.msg_name = &names[i];
      msgs[i].msg_hdr.msg_namelen = sizeof names[i];
    }
  }
  int n;
  do n = recvmmsg(fd, msgs, static_cast<unsigned>(max), MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC, nullptr); while (n < 0 && errno == EINTR);
  if (n < 0) return Napi::Number::New(env, -errno);
  int32_t* m = meta.Data();
  int32_t* fdsData = fdsOut.Data();
  int fdCount = 0;
  for (int i = 0; i < n; i++) {
    struct msghdr* h = &msgs[i].msg_hdr;
    int32_t* row = m + i * kMetaStride;
    row[0] = static_cast<int32_t>(msgs[i].msg_len);
    row[1] = h->msg_flags;
    row[2] = 0;
    row[3] = row[4] = row[5] = -1;
    row[6] = 0;
    row[7] = fdCount;
    if (addrs != nullptr) {
      size_t pathLen = h->msg_namelen > offsetof(struct sockaddr_un, sun_path) ? h->msg_namelen - offsetof(struct sockaddr_un, sun_path) : 0;
      if (pathLen > 0 && names[i].sun_path[0] != 0) pathLen = strnlen(names[i].sun_path, pathLen);
      if (pathLen > kAddrStride) pathLen = kAddrStride;
      memcpy(addrs + i * kAddrStride, names[i].sun_path, pathLen);
      row[2] = static_cast<int32_t>(pathLen);
    }
    for (struct cmsghdr* c = CMSG_FIRSTHDR(h); c != nullptr; c = CMSG_NXTHDR(h, c)) {
      if (c->cmsg_level != SOL_SOCKET) continue;
      if (c->cmsg_type == SCM_RIGHTS) {
        int k = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        const int* got = reinterpret_cast<const int*>(CMSG_DATA(c));
        // At most kMaxFdsPerMessage per message whatever the control buffer let in (it
        // fits more when no credentials share it), so `fds` can never overflow.
        for (int j = 0; j < k; j++) {
          if (row[6] < kMaxFdsPerMessage) {
            fdsData[fdCount++] = got[j];
            row[6]++;
          } else {
            close(got[j]);
            row[1] |= MSG_CTRUNC;
          }
        }
      } else if (c->cmsg_type == SCM_CREDENTIALS) {
        struct ucred cred;
        memcpy(&cred, CMSG_DATA(c), sizeof cred);
        row[3] = cred.pid;
        row[4] = static_cast<int32_t>(cred.uid);
        row[5] = static_cast<int32_t>(cred.gid);
      }
    }
  }
  return Napi::Number::New(env, n);
}

// recvStream(fd, buf, offset, length, fds: Int32Array) -> bytes read, 0 at the end, or
// -errno. read(2) for a Unix stream socket that may carry descriptors: the kernel ends a
// read after the bytes that came with descriptors, and hands them over here
// (MSG_CMSG_CLOEXEC). fds[0] = how many arrived, fds[1..16] = them, fds[17] = 1 when more
// were sent than fit (the kernel closed those).
Napi::Value RecvStream(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0);
  ByteView b = ArgByteRange(info, 1);
  if (info.Length() < 5 || !info[4].IsTypedArray()) throw Napi::TypeError::New(env, "ipckit native: recvStream expects an Int32Array");
  Napi::Int32Array out = info[4].As<Napi::Int32Array>();
  if (out.ElementLength() < static_cast<size_t>(kMaxFdsPerMessage + 2)) throw Napi::RangeError::New(env, "ipckit native: recvStream fds array too small");
  struct iovec iov = {b.data, b.length};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
  int32_t* o = out.Data();
  o[0] = 0;
  o[kMaxFdsPerMessage + 1] = (msg.msg_flags & MSG_CTRUNC) ? 1 : 0;
  if (n < 0) return Napi::Number::New(env, -errno);
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int k = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    const int* got = reinterpret_cast<const int*>(CMSG_DATA(c));
    for (int j = 0; j < k; j++) {
      if (o[0] < kMaxFdsPerMessage) o[1 + o[0]++] = got[j];
      else close(got[j]);
    }
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// memfdCreate(name) -> fd: anonymous memory with sealing allowed, close-on-exec.
Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0);
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) ThrowErrno(info.Env(), "memfd_create");
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value AddSeals(const Napi::CallbackInfo& info) {
  if (fcntl(ArgInt(info, 0), F_ADD_SEALS, ArgInt(info, 1)) != 0) ThrowErrno(info.Env(), "fcntl(F_ADD_SEALS)");
  return info.Env().Undefined();
}

Napi::Value GetSeals(const Napi::CallbackInfo& info) {
  int r = fcntl(ArgInt(info, 0), F_GET_SEALS);
  if (r < 0) ThrowErrno(info.Env(), "fcntl(F_GET_SEALS)");
  return Napi::Number::New(info.Env(), r);
}

// mapShared(fd, size, writable) -> an ArrayBuffer over mmap(MAP_SHARED) of the whole
// object; unmapped when the buffer is collected. The caller checks the size and seals
// first (a peer that could shrink the object could make a later access fault).
Napi::Value MapShared(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0);
  int64_t size = ArgInt64(info, 1);
  bool writable = info[2].ToBoolean();
  if (size <= 0) throw Napi::RangeError::New(env, "ipckit native: mapShared size must be positive");
  void* p = mmap(nullptr, static_cast<size_t>(size), PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) ThrowErrno(env, "mmap");
  size_t len = static_cast<size_t>(size);
  napi_value ab;
  napi_status st = napi_create_external_arraybuffer(
      env, p, len, [](napi_env, void* data, void* hint) { munmap(data, reinterpret_cast<size_t>(hint)); }, reinterpret_cast<void*>(len), &ab);
  if (st != napi_ok) {
    munmap(p, len);
    throw Napi::Error::New(env, "ipckit native: cannot wrap the mapping in an ArrayBuffer (external buffers not allowed here)");
  }
  return Napi::Value(env, ab);
}

void SetConst(Napi::Env env, Napi::Object o, const char* name, int value) { o.Set(name, Napi::Number::New(env, value)); }

}  // namespace

void InitSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("socket", Napi::Function::New(env, Socket, "socket"));
  exports.Set("socketpair", Napi::Function::New(env, Socketpair, "socketpair"));
  exports.Set("bindUnix", Napi::Function::New(env, BindUnix, "bindUnix"));
  exports.Set("connectUnix", Napi::Function::New(env, ConnectUnix, "connectUnix"));
  exports.Set("bindInet", Napi::Function::New(env, BindInet, "bindInet"));
  exports.Set("connectInet", Napi::Function::New(env, ConnectInet, "connectInet"));
  exports.Set("listen", Napi::Function::New(env, Listen, "listen"));
  exports.Set("accept", Napi::Function::New(env, Accept, "accept"));
  exports.Set("getSockOpt", Napi::Function::New(env, GetSockOpt, "getSockOpt"));
  exports.Set("setSockOpt", Napi::Function::New(env, SetSockOpt, "setSockOpt"));
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials, "peerCredentials"));
  exports.Set("localAddress", Napi::Function::New(env, LocalAddress, "localAddress"));
  exports.Set("peerAddress", Napi::Function::New(env, PeerAddress, "peerAddress"));
  exports.Set("shutdown", Napi::Function::New(env, Shutdown, "shutdown"));
  exports.Set("sendPacket", Napi::Function::New(env, SendPacket, "sendPacket"));
  exports.Set("sendPackets", Napi::Function::New(env, SendPackets, "sendPackets"));
  exports.Set("recvPackets", Napi::Function::New(env, RecvPackets, "recvPackets"));
  exports.Set("recvStream", Napi::Function::New(env, RecvStream, "recvStream"));
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate, "memfdCreate"));
  exports.Set("addSeals", Napi::Function::New(env, AddSeals, "addSeals"));
  exports.Set("getSeals", Napi::Function::New(env, GetSeals, "getSeals"));
  exports.Set("mapShared", Napi::Function::New(env, MapShared, "mapShared"));
  Napi::Object c = Napi::Object::New(env);
  SetConst(env, c, "AF_UNIX", AF_UNIX);
  SetConst(env, c, "AF_INET", AF_INET);
  SetConst(env, c, "AF_INET6", AF_INET6);
  SetConst(env, c, "SOCK_STREAM", SOCK_STREAM);
  SetConst(env, c, "SOCK_DGRAM", SOCK_DGRAM);
  SetConst(env, c, "SOCK_SEQPACKET", SOCK_SEQPACKET);
  SetConst(env, c, "SOL_SOCKET", SOL_SOCKET);
  SetConst(env, c, "IPPROTO_TCP", IPPROTO_TCP);
  SetConst(env, c, "IPPROTO_IPV6", IPPROTO_IPV6);
  SetConst(env, c, "SO_ERROR", SO_ERROR);
  SetConst(env, c, "SO_REUSEADDR", SO_REUSEADDR);
  SetConst(env, c, "SO_SNDBUF", SO_SNDBUF);
  SetConst(env, c, "SO_RCVBUF", SO_RCVBUF);
  SetConst(env, c, "SO_PASSCRED", SO_PASSCRED);
  SetConst(env, c, "SO_TYPE", SO_TYPE);
  SetConst(env, c, "TCP_NODELAY", TCP_NODELAY);
  SetConst(env, c, "IPV6_V6ONLY", IPV6_V6ONLY);
  SetConst(env, c, "SHUT_RD", SHUT_RD);
  SetConst(env, c, "SHUT_WR", SHUT_WR);
  SetConst(env, c, "SHUT_RDWR", SHUT_RDWR);
  SetConst(env, c, "MSG_TRUNC", MSG_TRUNC);
  SetConst(env, c, "MSG_CTRUNC", MSG_CTRUNC);
  SetConst(env, c, "F_SEAL_SEAL", F_SEAL_SEAL);
  SetConst(env, c, "F_SEAL_SHRINK", F_SEAL_SHRINK);
  SetConst(env, c, "F_SEAL_GROW", F_SEAL_GROW);
  SetConst(env, c, "F_SEAL_WRITE", F_SEAL_WRITE);
  SetConst(env, c, "F_SEAL_FUTURE_WRITE", F_SEAL_FUTURE_WRITE);
  SetConst(env, c, "MAX_FDS_PER_MESSAGE", kMaxFdsPerMessage);
  SetConst(env, c, "MAX_BATCH", kMaxBatch);
  SetConst(env, c, "META_STRIDE", kMetaStride);
  SetConst(env, c, "ADDR_STRIDE", kAddrStride);
  SetConst(env, c, "SUN_PATH_MAX", static_cast<int>(sizeof(((struct sockaddr_un*)nullptr)->sun_path)));
  exports.Set("socketConstants", c);
}

}  // namespace ipckit
