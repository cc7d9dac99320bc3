// System V IPC (svipc(7)): message queues (msgget/msgsnd/msgrcv/msgctl), semaphore sets
// (semget/semop/semtimedop/semctl) and shared memory segments (shmget/shmat/shmctl), plus
// ftok. Thin: one function per system call, no policy; the non-blocking forms only (a wait
// runs on a thread of BlockingCalls, native/blocking.cc). src/mechanisms/sysv/ decides.
//
// - Keys cross as unsigned 32-bit numbers (key_t is an int: 0x81000001 is negative in C);
//   identifiers, uids and gids as numbers.
// - The hot calls (msgSnd, msgRcv, semOp) return -errno, since EAGAIN and ENOMSG are
//   ordinary answers there; the control calls throw an errno error.
#include "addon.h"
#include "region.h"

#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace ipckit {

namespace {

// semctl's fourth argument, which the caller must define (semctl(2)).
union semun {
  int val;
  struct semid_ds* buf;
  unsigned short* array;
};

key_t ArgKey(const Napi::CallbackInfo& info, size_t i) { return static_cast<key_t>(static_cast<uint32_t>(ArgInt64(info, i))); }

Napi::Number Num(Napi::Env env, double v) { return Napi::Number::New(env, v); }

// The ipc_perm every object keeps, as the fields of `o`.
void SetPerm(Napi::Env env, Napi::Object o, const struct ipc_perm& p) {
  o.Set("key", Num(env, static_cast<uint32_t>(p.__key)));
  o.Set("uid", Num(env, p.uid));
  o.Set("gid", Num(env, p.gid));
  o.Set("cuid", Num(env, p.cuid));
  o.Set("cgid", Num(env, p.cgid));
  o.Set("mode", Num(env, p.mode));
  o.Set("seq", Num(env, p.__seq));
}

void FillPerm(const Napi::CallbackInfo& info, size_t at, struct ipc_perm& p) {
  p.uid = static_cast<uid_t>(ArgInt64(info, at));
  p.gid = static_cast<gid_t>(ArgInt64(info, at + 1));
  p.mode = static_cast<unsigned short>(ArgInt(info, at + 2));
}

// ftok(path, projectId) -> key, exactly libc's.
Napi::Value Ftok(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0);
  key_t k = ftok(path.c_str(), ArgInt(info, 1));
  if (k == -1) ThrowErrno(info.Env(), "ftok");
  return Num(info.Env(), static_cast<uint32_t>(k));
}

// --- Message queues -------------------------------------------------------------------------

// msgGet(key, flags) -> identifier.
Napi::Value MsgGet(const Napi::CallbackInfo& info) {
  int id = msgget(ArgKey(info, 0), ArgInt(info, 1));
  if (id < 0) ThrowErrno(info.Env(), "msgget");
  return Num(info.Env(), id);
}

// msgSnd(id, bytes, type, flags) -> 0 or -errno (EAGAIN with IPC_NOWAIT: the queue is full).
Napi::Value MsgSnd(const Napi::CallbackInfo& info) {
  int id = ArgInt(info, 0);
  ByteView v = ArgBytes(info, 1);
  long type = static_cast<long>(ArgInt64(info, 2));
  int flags = ArgInt(info, 3);
  // struct msgbuf is the type then the text: one copy into a buffer of ours, reused.
  thread_local std::vector<char> buf;
  if (buf.size() < sizeof(long) + v.length) buf.resize(sizeof(long) + v.length);
  memcpy(buf.data(), &type, sizeof type);
  if (v.length > 0) memcpy(buf.data() + sizeof(long), v.data, v.length);
  int r;
  do r = msgsnd(id, buf.data(), v.length, flags);
  while (r != 0 && errno == EINTR);
  return Num(info.Env(), r == 0 ? 0 : -errno);
}

// msgRcv(id, buffer, size, type, flags) -> length of the text, or -errno (ENOMSG with
// IPC_NOWAIT: none; E2BIG: the next one is longer than `size`, and stays). `buffer` gets the
// struct msgbuf: the type (a native long) in its first 8 bytes, then the text.
Napi::Value MsgRcv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int id = ArgInt(info, 0);
  ByteView b = ArgBytes(info, 1);
  int64_t size = ArgInt64(info, 2);
  if (size < 0 || static_cast<uint64_t>(size) + sizeof(long) > b.length) throw Napi::RangeError::New(env, "msgRcv: the buffer is shorter than 8 + size bytes");
  long type = static_cast<long>(ArgInt64(info, 3));
  int flags = ArgInt(info, 4);
  ssize_t r;
  do r = msgrcv(id, b.data, static_cast<size_t>(size), type, flags);
  while (r < 0 && errno == EINTR);
  return Num(env, r >= 0 ? static_cast<double>(r) : -errno);
}

// msgRcvMany(id, buffer, size, type, flags, max, meta) -> how many messages it took (0: none
// waiting), or -errno when the first msgrcv failed. Each msgrcv (IPC_NOWAIT is added) puts
// its struct msgbuf at the next 8-byte-aligned offset of `buffer`, and only while there is
// room for one of `size` bytes (so a batch never turns a message into E2BIG); meta[2i] is
// message i's length, meta[2i+1] its type. One N-API call for what is waiting: at 64 bytes a
// call from JavaScript costs about what the msgrcv does.
Napi::Value MsgRcvMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int id = ArgInt(info, 0);
  ByteView b = ArgBytes(info, 1);
  int64_t size = ArgInt64(info, 2);
  long type = static_cast<long>(ArgInt64(info, 3));
  int flags = ArgInt(info, 4) | IPC_NOWAIT;
  int64_t max = ArgInt64(info, 5);
  if (!info[6].IsTypedArray() || info[6].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) throw Napi::TypeError::New(env, "msgRcvMany: meta must be a Float64Array");
  Napi::Float64Array meta = info[6].As<Napi::Float64Array>();
  if (size < 0 || max < 1 || static_cast<size_t>(max) * 2 > meta.ElementLength()) throw Napi::RangeError::New(env, "msgRcvMany: bad size or max");
  size_t at = 0;
  int64_t n = 0;
  while (n < max && at + sizeof(long) + static_cast<uint64_t>(size) <= b.length) {
    ssize_t r;
    do r = msgrcv(id, b.data + at, static_cast<size_t>(size), type, flags);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      if (n == 0) return Num(env, -errno);
      break;  // ENOMSG (none left), or an error the next call will meet first
    }
    long t;
    memcpy(&t, b.data + at, sizeof t);
    meta[static_cast<size_t>(2 * n)] = static_cast<double>(r);
    meta[static_cast<size_t>(2 * n + 1)] = static_cast<double>(t);
    n++;
    at = (at + sizeof(long) + static_cast<size_t>(r) + 7) & ~static_cast<size_t>(7);
  }
  return Num(env, static_cast<double>(n));
}

// msgStat(id): IPC_STAT.
Napi::Value MsgStat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct msqid_ds d;
  if (msgctl(ArgInt(info, 0), IPC_STAT, &d) != 0) ThrowErrno(env, "msgctl(IPC_STAT)");
  Napi::Object o = Napi::Object::New(env);
  SetPerm(env, o, d.msg_perm);
  o.Set("messages", Num(env, static_cast<double>(d.msg_qnum)));
  o.Set("bytes", Num(env, static_cast<double>(d.__msg_cbytes)));
  o.Set("maxBytes", Num(env, static_cast<double>(d.msg_qbytes)));
  o.Set("lastSendPid", Num(env, d.msg_lspid));
  o.Set("lastReceivePid", Num(env, d.msg_lrpid));
  o.Set("sendTime", Num(env, static_cast<double>(d.msg_stime)));
  o.Set("receiveTime", Num(env, static_cast<double>(d.msg_rtime)));
  o.Set("changeTime", Num(env, static_cast<double>(d.msg_ctime)));
  return o;
}

// msgSet(id, uid, gid, mode, maxBytes): IPC_SET of the four fields it may change.
Napi::Value MsgSet(const Napi::CallbackInfo& info) {
  struct msqid_ds d = {};
  FillPerm(info, 1, d.msg_perm);
  d.msg_qbytes = static_cast<msglen_t>(ArgInt64(info, 4));
  if (msgctl(ArgInt(info, 0), IPC_SET, &d) != 0) ThrowErrno(info.Env(), "msgctl(IPC_SET)");
  return info.Env().Undefined();
}

Napi::Value MsgRemove(const Napi::CallbackInfo& info) {
  if (msgctl(ArgInt(info, 0), IPC_RMID, nullptr) != 0) ThrowErrno(info.Env(), "msgctl(IPC_RMID)");
  return info.Env().Undefined();
}

// --- Semaphore sets -------------------------------------------------------------------------

Napi::Value SemGet(const Napi::CallbackInfo& info) {
  int id = semget(ArgKey(info, 0), ArgInt(info, 1), ArgInt(info, 2));
  if (id < 0) ThrowErrno(info.Env(), "semget");
  return Num(info.Env(), id);
}

// The operations of an Int32Array of [index, delta, flags] triples.
std::vector<struct sembuf> ArgOps(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw Napi::TypeError::New(info.Env(), "ipckit native: expected an Int32Array of operations");
  }
  Napi::Int32Array a = info[i].As<Napi::Int32Array>();
  std::vector<struct sembuf> ops(a.ElementLength() / 3);
  for (size_t k = 0; k < ops.size(); k++) {
    ops[k].sem_num = static_cast<unsigned short>(a[3 * k]);
    ops[k].sem_op = static_cast<short>(a[3 * k + 1]);
    ops[k].sem_flg = static_cast<short>(a[3 * k + 2]);
  }
  return ops;
}

// semOp(id, ops, timeoutMs) -> 0 or -errno: semop (timeoutMs < 0) or semtimedop on the
// calling thread (EAGAIN: IPC_NOWAIT and it would wait, or the time ran out).
Napi::Value SemOp(const Napi::CallbackInfo& info) {
  int id = ArgInt(info, 0);
  std::vector<struct sembuf> ops = ArgOps(info, 1);
  int64_t ms = ArgInt64(info, 2);
  int r;
  if (ms < 0) {
    do r = semop(id, ops.data(), ops.size());
    while (r != 0 && errno == EINTR);
  } else {
    struct timespec ts = {static_cast<time_t>(ms / 1000), static_cast<long>((ms % 1000) * 1000000)};
    r = semtimedop(id, ops.data(), ops.size(), &ts);  // EINTR goes back to the caller's loop
  }
  return Num(info.Env(), r == 0 ? 0 : -errno);
}

// semCtl(id, index, cmd) for GETVAL, GETNCNT, GETZCNT, GETPID -> the number.
Napi::Value SemCtl(const Napi::CallbackInfo& info) {
  int cmd = ArgInt(info, 2);
  if (cmd != GETVAL && cmd != GETNCNT && cmd != GETZCNT && cmd != GETPID) throw Napi::TypeError::New(info.Env(), "semCtl: cmd must be GETVAL, GETNCNT, GETZCNT or GETPID");
  int r = semctl(ArgInt(info, 0), ArgInt(info, 1), cmd);
  if (r < 0) ThrowErrno(info.Env(), "semctl");
  return Num(info.Env(), r);
}

Napi::Value SemSetVal(const Napi::CallbackInfo& info) {
  union semun arg;
  arg.val = ArgInt(info, 2);
  if (semctl(ArgInt(info, 0), ArgInt(info, 1), SETVAL, arg) != 0) ThrowErrno(info.Env(), "semctl(SETVAL)");
  return info.Env().Undefined();
}

// semGetAll(id, count) -> number[] (GETALL).
Napi::Value SemGetAll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<unsigned short> values(static_cast<size_t>(ArgInt(info, 1)));
  union semun arg;
  arg.array = values.data();
  if (semctl(ArgInt(info, 0), 0, GETALL, arg) != 0) ThrowErrno(env, "semctl(GETALL)");
  Napi::Array out = Napi::Array::New(env, values.size());
  for (size_t i = 0; i < values.size(); i++) out.Set(static_cast<uint32_t>(i), Num(env, values[i]));
  return out;
}

// semSetAll(id, values): SETALL (values.length must be the set's size).
Napi::Value SemSetAll(const Napi::CallbackInfo& info) {
  if (!info[1].IsArray()) throw Napi::TypeError::New(info.Env(), "semSetAll: expected an array");
  Napi::Array a = info[1].As<Napi::Array>();
  std::vector<unsigned short> values(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) values[i] = static_cast<unsigned short>(a.Get(i).As<Napi::Number>().Int32Value());
  union semun arg;
  arg.array = values.data();
  if (semctl(ArgInt(info, 0), 0, SETALL, arg) != 0) ThrowErrno(info.Env(), "semctl(SETALL)");
  return info.Env().Undefined();
}

Napi::Value SemStat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct semid_ds d;
  union semun arg;
  arg.buf = &d;
  if (semctl(ArgInt(info, 0), 0, IPC_STAT, arg) != 0) ThrowErrno(env, "semctl(IPC_STAT)");
  Napi::Object o = Napi::Object::New(env);
  SetPerm(env, o, d.sem_perm);
  o.Set("count", Num(env, static_cast<double>(d.sem_nsems)));
  o.Set("opTime", Num(env, static_cast<double>(d.sem_otime)));
  o.Set("changeTime", Num(env, static_cast<double>(d.sem_ctime)));
  return o;
}

Napi::Value SemSet(const Napi::CallbackInfo& info) {
  struct semid_ds d = {};
  FillPerm(info, 1, d.sem_perm);
  union semun arg;
  arg.buf = &d;
  if (semctl(ArgInt(info, 0), 0, IPC_SET, arg) != 0) ThrowErrno(info.Env(), "semctl(IPC_SET)");
  return info.Env().Undefined();
}

Napi::Value SemRemove(const Napi::CallbackInfo& info) {
  if (semctl(ArgInt(info, 0), 0, IPC_RMID) != 0) ThrowErrno(info.Env(), "semctl(IPC_RMID)");
  return info.Env().Undefined();
}

// --- Shared memory --------------------------------------------------------------------------

Napi::Value ShmGet(const Napi::CallbackInfo& info) {
  int id = shmget(ArgKey(info, 0), static_cast<size_t>(ArgInt64(info, 1)), ArgInt(info, 2));
  if (id < 0) ThrowErrno(info.Env(), "shmget");
  return Num(info.Env(), id);
}

// shmAttach(id, readOnly) -> a mapping handle (native/shm.cc) of the attached segment: a
// region whose unmapper is shmdt, run when the last reference to it goes (the handle,
// every SharedArrayBuffer made from it, every futex wait on it).
Napi::Value ShmAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int id = ArgInt(info, 0);
  bool readOnly = info[1].ToBoolean();
  struct shmid_ds d;
  if (shmctl(id, IPC_STAT, &d) != 0) ThrowErrno(env, "shmctl(IPC_STAT)");
  void* p = shmat(id, nullptr, readOnly ? SHM_RDONLY : 0);
  if (p == reinterpret_cast<void*>(-1)) ThrowErrno(env, "shmat");
  // The size is read before attaching: a segment's size never changes once made.
  return Napi::Number::New(env, AddRegion(env, std::make_shared<Region>(static_cast<uint8_t*>(p), d.shm_segsz, !readOnly, Region::Unmap::Shmdt)));
}

// shmDetach(handle): detaches the segment of a mapping made by shmAttach now, as shmdt does,
// by putting private zero pages at the same addresses (mmap MAP_FIXED replaces the
// attachment, and the kernel's shm_close runs for it). A SharedArrayBuffer still held over
// them stays valid memory, no longer the segment's, until it is garbage and the region is
// unmapped: never a crash.
Napi::Value ShmDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Region> r = RegionOf(env, info[0]);
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t length = (r->length + page - 1) / page * page;
  if (r->unmap.load() != Region::Unmap::Shmdt) return env.Undefined();  // detached already
  void* p = mmap(r->base, length, PROT_READ | (r->writable ? PROT_WRITE : 0), MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) ThrowErrno(env, "mmap");
  r->unmap.store(Region::Unmap::Munmap);  // the private pages are an mmap now
  return env.Undefined();
}

Napi::Value ShmStat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct shmid_ds d;
  if (shmctl(ArgInt(info, 0), IPC_STAT, &d) != 0) ThrowErrno(env, "shmctl(IPC_STAT)");
  Napi::Object o = Napi::Object::New(env);
  SetPerm(env, o, d.shm_perm);
  o.Set("size", Num(env, static_cast<double>(d.shm_segsz)));
  o.Set("attached", Num(env, static_cast<double>(d.shm_nattch)));
  o.Set("creatorPid", Num(env, d.shm_cpid));
  o.Set("lastPid", Num(env, d.shm_lpid));
  o.Set("attachTime", Num(env, static_cast<double>(d.shm_atime)));
  o.Set("detachTime", Num(env, static_cast<double>(d.shm_dtime)));
  o.Set("changeTime", Num(env, static_cast<double>(d.shm_ctime)));
  return o;
}

Napi::Value ShmSet(const Napi::CallbackInfo& info) {
  struct shmid_ds d = {};
  FillPerm(info, 1, d.shm_perm);
  if (shmctl(ArgInt(info, 0), IPC_SET, &d) != 0) ThrowErrno(info.Env(), "shmctl(IPC_SET)");
  return info.Env().Undefined();
}

Napi::Value ShmRemove(const Napi::CallbackInfo& info) {
  if (shmctl(ArgInt(info, 0), IPC_RMID, nullptr) != 0) ThrowErrno(info.Env(), "shmctl(IPC_RMID)");
  return info.Env().Undefined();
}

}  // namespace

void InitSysv(Napi::Env env, Napi::Object exports) {
  exports.Set("ftok", Napi::Function::New(env, Ftok, "ftok"));
  exports.Set("msgGet", Napi::Function::New(env, MsgGet, "msgGet"));
  exports.Set("msgSnd", Napi::Function::New(env, MsgSnd, "msgSnd"));
  exports.Set("msgRcv", Napi::Function::New(env, MsgRcv, "msgRcv"));
  exports.Set("msgRcvMany", Napi::Function::New(env, MsgRcvMany, "msgRcvMany"));
  exports.Set("msgStat", Napi::Function::New(env, MsgStat, "msgStat"));
  exports.Set("msgSet", Napi::Function::New(env, MsgSet, "msgSet"));
  exports.Set("msgRemove", Napi::Function::New(env, MsgRemove, "msgRemove"));
  exports.Set("semGet", Napi::Function::New(env, SemGet, "semGet"));
  exports.Set("semOp", Napi::Function::New(env, SemOp, "semOp"));
  exports.Set("semCtl", Napi::Function::New(env, SemCtl, "semCtl"));
  exports.Set("semSetVal", Napi::Function::New(env, SemSetVal, "semSetVal"));
  exports.Set("semGetAll", Napi::Function::New(env, SemGetAll, "semGetAll"));
  exports.Set("semSetAll", Napi::Function::New(env, SemSetAll, "semSetAll"));
  exports.Set("semStat", Napi::Function::New(env, SemStat, "semStat"));
  exports.Set("semSet", Napi::Function::New(env, SemSet, "semSet"));
  exports.Set("semRemove", Napi::Function::New(env, SemRemove, "semRemove"));
  exports.Set("shmGet", Napi::Function::New(env, ShmGet, "shmGet"));
  exports.Set("shmAttach", Napi::Function::New(env, ShmAttach, "shmAttach"));
  exports.Set("shmDetach", Napi::Function::New(env, ShmDetach, "shmDetach"));
  exports.Set("shmStat", Napi::Function::New(env, ShmStat, "shmStat"));
  exports.Set("shmSet", Napi::Function::New(env, ShmSet, "shmSet"));
  exports.Set("shmRemove", Napi::Function::New(env, ShmRemove, "shmRemove"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("IPC_PRIVATE", static_cast<double>(IPC_PRIVATE));
  c.Set("IPC_CREAT", IPC_CREAT);
  c.Set("IPC_EXCL", IPC_EXCL);
  c.Set("IPC_NOWAIT", IPC_NOWAIT);
  c.Set("MSG_NOERROR", MSG_NOERROR);
  c.Set("MSG_EXCEPT", MSG_EXCEPT);
  c.Set("SEM_UNDO", SEM_UNDO);
  c.Set("GETVAL", GETVAL);
  c.Set("GETNCNT", GETNCNT);
  c.Set("GETZCNT", GETZCNT);
  c.Set("GETPID", GETPID);
  c.Set("SHM_DEST", SHM_DEST);
  c.Set("SEMVMX", 32767);  // the kernel's SEMVMX (ipc/sem.c), which <sys/sem.h> does not export
  exports.Set("sysvConstants", c);
}

}  // namespace ipckit
