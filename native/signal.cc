// Signals with a sender and a value: an SA_SIGINFO handler for the signals ipckit is asked
// to watch, which writes each siginfo as a fixed 32-byte record into a non-blocking pipe
// (the "self-pipe"); TypeScript watches the pipe's read end with FdPoll and dispatches.
// Node's own process.on() cannot do this: libuv's handler sees only the signal number.
//
// The handler is async-signal-safe: it touches only its stack, write(2) and lock-free
// atomics; it allocates nothing and saves errno. A handler that was in place before ours
// (libuv's, when process.on('SIGUSR2') is listening) is chained: ours runs, then it does,
// so both ipckit listeners and process.on listeners see the signal (a one-shot handler,
// SA_RESETHAND, is not: see SetPrevious).
//
// A full pipe (JavaScript has not read 32768 records: its event loop is blocked) loses
// nothing: the handler puts the siginfo back in the kernel's queue for the main thread
// (rt_tgsigqueueinfo to ourselves keeps every field) and blocks the signal there until
// JavaScript has read (through the ucontext's saved mask; releaseHeldSignals unblocks it),
// so later ones wait in the kernel too, in order, and senders of real-time signals meet
// RLIMIT_SIGPENDING (EAGAIN) instead of a silent loss. Only a record that cannot be put back
// (that queue full as well) is dropped and counted.
//
// Order: a process-directed signal goes to any thread that does not block it, and Node
// has several (V8's platform workers, libuv's pool). Two threads taking two real-time
// signals at once would write their records in either order. So records are written by
// the main thread only: a handler that runs on another thread forwards the siginfo to the
// main thread (rt_tgsigqueueinfo keeps pid, uid and value) and blocks the signal in its
// own thread for good (through the ucontext's saved mask). installSignal asks every other
// thread to block it up front, with a marked request that the handler recognises. Such a
// request is an ordinary queued signal: uninstalling waits until every thread asked has
// taken its request, else the restored disposition (the default: end the process) would.
//
// Also here: kill(2) and sigqueue(3), and the run-time values of SIGRTMIN/SIGRTMAX.
#include "addon.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace ipckit {
namespace {

// What the handler writes per signal (little-endian on every Linux Node runs on).
struct SignalRecord {
  int32_t signo;
  int32_t code;  // si_code: SI_USER (kill), SI_QUEUE (sigqueue), SI_TKILL, > 0 kernel
  int32_t pid;
  uint32_t uid;
  int32_t value;  // si_value.sival_int (meaningful for SI_QUEUE)
  int32_t reserved;
  int64_t pointer;  // si_value.sival_ptr as an integer
};
static_assert(sizeof(SignalRecord) == 32, "SignalRecord must stay 32 bytes");

using InfoHandler = void (*)(int, siginfo_t*, void*);
using PlainHandler = void (*)(int);

std::atomic<int> g_writeFd{-1};
std::atomic<pid_t> g_mainTid{0};
// The value of the marked request that tells a thread to block the signal.
constexpr int kBlockRequest = 0x1b10c4ed;
int g_readFd = -1;
std::atomic<uint32_t> g_dropped{0};
// Signals the handler blocked in the main thread because the pipe was full (bit signo - 1).
std::atomic<uint64_t> g_held{0};
// The handler to chain to per signal (at most one of the two is set).
std::atomic<InfoHandler> g_chainInfo[NSIG];
std::atomic<PlainHandler> g_chainPlain[NSIG];
// The disposition that was in place before ours (main thread only): restored on uninstall.
struct sigaction g_previous[NSIG];
bool g_ours[NSIG];
// Threads sent a block request since the signal was installed (main thread only).
std::vector<pid_t> g_asked[NSIG];

long Tgsigqueueinfo(pid_t tgid, pid_t tid, int signo, siginfo_t* si) { return syscall(SYS_rt_tgsigqueueinfo, tgid, tid, signo, si); }

void OnSignal(int signo, siginfo_t* si, void* context) {
  int savedErrno = errno;
  pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
  pid_t main = g_mainTid.load(std::memory_order_acquire);
  if (main != 0 && self != main && context != nullptr) {
    // Not the main thread: block the signal here once we return, and pass it on.
    sigaddset(&static_cast<ucontext_t*>(context)->uc_sigmask, signo);
    pid_t pid = getpid();
    bool request = si != nullptr && si->si_code == SI_QUEUE && si->si_pid == pid && si->si_value.sival_int == kBlockRequest;
    if (request || (si != nullptr && Tgsigqueueinfo(pid, main, signo, si) == 0)) {
      errno = savedErrno;
      return;
    }
    // Forwarding failed (the queue is full): record it from here, out of order but not lost.
  }
  SignalRecord r;
  memset(&r, 0, sizeof r);
  r.signo = signo;
  if (si != nullptr) {
    r.code = si->si_code;
    r.pid = si->si_pid;
    r.uid = si->si_uid;
    r.value = si->si_value.sival_int;
    r.pointer = reinterpret_cast<intptr_t>(si->si_value.sival_ptr);
  }
  int fd = g_writeFd.load(std::memory_order_acquire);
  if (fd < 0 || write(fd, &r, sizeof r) != static_cast<ssize_t>(sizeof r)) {
    // Full: hold it in the kernel (see the top of this file); chained to when it comes back.
    if (fd >= 0 && errno == EAGAIN && self == main && context != nullptr && si != nullptr && signo > 0 && signo <= 64 &&
        Tgsigqueueinfo(getpid(), self, signo, si) == 0) {
      sigaddset(&static_cast<ucontext_t*>(context)->uc_sigmask, signo);
      g_held.fetch_or(uint64_t{1} << (signo - 1), std::memory_order_acq_rel);
      errno = savedErrno;
      return;
    }
    g_dropped.fetch_add(1, std::memory_order_relaxed);
  }
  if (signo > 0 && signo < NSIG) {
    InfoHandler info = g_chainInfo[signo].load(std::memory_order_acquire);
    if (info != nullptr) {
      info(signo, si, context);
    } else {
      PlainHandler plain = g_chainPlain[signo].load(std::memory_order_acquire);
      if (plain != nullptr) plain(signo);
    }
  }
  errno = savedErrno;
}

bool IsOurs(const struct sigaction& sa) { return (sa.sa_flags & SA_SIGINFO) && sa.sa_sigaction == OnSignal; }

// Remembers `sa` as the handler to chain to (if it is a function) and to restore later.
// A one-shot handler (SA_RESETHAND) is restored but not chained to: it stands for the
// default action, which ours replaces, and expects the kernel to have put the default back
// before it runs. Node's own for SIGINT and SIGTERM restores the terminal and raise()s the
// signal to die of it; run from ours, still installed, it raised it again, forever.
void SetPrevious(int signo, const struct sigaction& sa) {
  g_chainInfo[signo].store(nullptr, std::memory_order_release);
  g_chainPlain[signo].store(nullptr, std::memory_order_release);
  g_previous[signo] = sa;
  if (sa.sa_flags & SA_RESETHAND) return;
  if (sa.sa_flags & SA_SIGINFO) {
    if (sa.sa_sigaction != nullptr) g_chainInfo[signo].store(sa.sa_sigaction, std::memory_order_release);
  } else if (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN && sa.sa_handler != nullptr) {
    g_chainPlain[signo].store(sa.sa_handler, std::memory_order_release);
  }
}

// The pending (SigPnd: queued for the thread itself) and blocked (SigBlk) signal masks of
// thread `tid`, from /proc; false if the thread is gone.
bool ThreadSignalMasks(pid_t tid, uint64_t* pending, uint64_t* blocked) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/status", static_cast<int>(tid));
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[8192];
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += static_cast<size_t>(n);
    if (len == sizeof buf - 1) break;
  }
  close(fd);
  buf[len] = 0;
  const char* p = strstr(buf, "\nSigPnd:");
  const char* b = strstr(buf, "\nSigBlk:");
  if (p == nullptr || b == nullptr) return false;
  *pending = strtoull(p + 8, nullptr, 16);
  *blocked = strtoull(b + 8, nullptr, 16);
  return true;
}

uint64_t SignalBit(int signo) { return uint64_t{1} << (signo - 1); }

// Waits (at most 250 ms: each thread runs its handler as soon as it is scheduled) until
// every thread asked to block `signo` has taken the request, or has ended. (A thread asked
// did not block `signo` then; one that blocks it now with the request still queued is in
// a short all-signals-blocked section, e.g. creating a thread: wait for it too.)
void AwaitBlockRequests(int signo) {
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (pid_t tid : g_asked[signo]) {
    for (;;) {
      uint64_t pending, blocked;
      if (!ThreadSignalMasks(tid, &pending, &blocked)) break;
      if (!(pending & SignalBit(signo))) break;
      clock_gettime(CLOCK_MONOTONIC, &now);
      if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 > 250) {
        g_asked[signo].clear();
        return;
      }
      struct timespec pause = {0, 100 * 1000};
      nanosleep(&pause, nullptr);
    }
  }
  g_asked[signo].clear();
}

// Sends the marked request to every thread but this (the main) one that does not block
// `signo` already (an earlier request did it, or the thread blocks every signal, as
// Node's inspector thread does): a request to such a thread would stay queued for the
// life of the process, counted against the user's RLIMIT_SIGPENDING.
void AskOtherThreadsToBlock(int signo) {
  pid_t pid = getpid();
  pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return;
  for (struct dirent* e = readdir(d); e != nullptr; e = readdir(d)) {
    pid_t tid = static_cast<pid_t>(atoi(e->d_name));
    if (tid <= 0 || tid == self) continue;
    uint64_t pending, blocked;
    if (ThreadSignalMasks(tid, &pending, &blocked) && (blocked & SignalBit(signo))) continue;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = signo;
    si.si_code = SI_QUEUE;
    si.si_pid = pid;
    si.si_uid = getuid();
    si.si_value.sival_int = kBlockRequest;
    if (Tgsigqueueinfo(pid, tid, signo, &si) == 0) g_asked[signo].push_back(tid);
  }
  closedir(d);
}

int ArgSignal(const Napi::CallbackInfo& info, size_t i) {
  int signo = ArgInt(info, i);
  if (signo <= 0 || signo >= NSIG) throw Napi::RangeError::New(info.Env(), "ipckit native: signal number out of range");
  return signo;
}

void EnsurePipe(Napi::Env env) {
  if (g_readFd >= 0) return;
  g_mainTid.store(static_cast<pid_t>(syscall(SYS_gettid)), std::memory_order_release);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) ThrowErrno(env, "pipe2");
  // Room for 32768 records: more than RLIMIT_SIGPENDING usually allows to be queued.
  fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
  g_readFd = fds[0];
  g_writeFd.store(fds[1], std::memory_order_release);
}

// signalPipe() -> the read end of the self-pipe (created on first use, never closed).
Napi::Value SignalPipe(const Napi::CallbackInfo& info) {
  EnsurePipe(info.Env());
  return Napi::Number::New(info.Env(), g_readFd);
}

// installSignal(signo): our handler replaces the current one, which is chained to.
Napi::Value InstallSignal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int signo = ArgSignal(info, 0);
  EnsurePipe(env);
  struct sigaction current;
  if (sigaction(signo, nullptr, &current) != 0) ThrowErrno(env, "sigaction");
  if (IsOurs(current)) {
    g_ours[signo] = true;
    return Napi::Boolean::New(env, false);
  }
  SetPrevious(signo, current);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = OnSignal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(signo, &sa, nullptr) != 0) ThrowErrno(env, "sigaction");
  g_ours[signo] = true;
  // The signal may have been blocked in this thread by someone; it must reach us.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signo);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  AskOtherThreadsToBlock(signo);
  return Napi::Boolean::New(env, true);
}

// uninstallSignal(signo): puts back the disposition that was there before ours.
Napi::Value UninstallSignal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int signo = ArgSignal(info, 0);
  if (!g_ours[signo]) return env.Undefined();
  g_ours[signo] = false;
  struct sigaction current;
  if (sigaction(signo, nullptr, &current) != 0) ThrowErrno(env, "sigaction");
  // A block request still queued must meet our handler, not the disposition put back.
  AwaitBlockRequests(signo);
  // Deliveries held in the kernel for a full pipe were for the subscribers that are going
  // (as the records still in the pipe, which nobody reads now): take them out of the queue
  // so that they do not meet the disposition put back (for most signals: end the process).
  uint64_t bit = uint64_t{1} << (signo - 1);
  if (signo <= 64 && (g_held.fetch_and(~bit, std::memory_order_acq_rel) & bit)) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&set, nullptr, &zero) == signo) {
    }
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  }
  // Someone replaced ours meanwhile: leave theirs alone.
  if (IsOurs(current) && sigaction(signo, &g_previous[signo], nullptr) != 0) ThrowErrno(env, "sigaction");
  g_chainInfo[signo].store(nullptr, std::memory_order_release);
  g_chainPlain[signo].store(nullptr, std::memory_order_release);
  return env.Undefined();
}

// signalHandlerIsOurs(signo) -> whether our handler is the one installed now.
Napi::Value SignalHandlerIsOurs(const Napi::CallbackInfo& info) {
  struct sigaction current;
  if (sigaction(ArgSignal(info, 0), nullptr, &current) != 0) ThrowErrno(info.Env(), "sigaction");
  return Napi::Boolean::New(info.Env(), IsOurs(current));
}

// takeDroppedSignals() -> records dropped because the pipe was full, since the last call.
Napi::Value TakeDroppedSignals(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), g_dropped.exchange(0, std::memory_order_relaxed));
}

// releaseHeldSignals(): unblocks, in the main thread, the signals held in the kernel while
// the pipe was full (call after reading the pipe): the kernel delivers them at once, in order.
Napi::Value ReleaseHeldSignals(const Napi::CallbackInfo& info) {
  uint64_t held = g_held.exchange(0, std::memory_order_acq_rel);
  if (held != 0) {
    sigset_t set;
    sigemptyset(&set);
    for (int signo = 1; signo <= 64; signo++) {
      if (held & (uint64_t{1} << (signo - 1))) sigaddset(&set, signo);
    }
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  }
  return Napi::Boolean::New(info.Env(), held != 0);
}

// kill(pid, signo): throws (ESRCH, EPERM).
Napi::Value Kill(const Napi::CallbackInfo& info) {
  if (kill(static_cast<pid_t>(ArgInt(info, 0)), ArgInt(info, 1)) != 0) ThrowErrno(info.Env(), "kill");
  return info.Env().Undefined();
}

// sigqueue(pid, signo, value): throws (ESRCH, EPERM, EAGAIN = RLIMIT_SIGPENDING reached).
Napi::Value Sigqueue(const Napi::CallbackInfo& info) {
  union sigval v;
  memset(&v, 0, sizeof v);
  v.sival_int = ArgInt(info, 2);
  if (sigqueue(static_cast<pid_t>(ArgInt(info, 0)), ArgInt(info, 1), v) != 0) ThrowErrno(info.Env(), "sigqueue");
  return info.Env().Undefined();
}

}  // namespace

void InitSignal(Napi::Env env, Napi::Object exports) {
  exports.Set("signalPipe", Napi::Function::New(env, SignalPipe, "signalPipe"));
  exports.Set("installSignal", Napi::Function::New(env, InstallSignal, "installSignal"));
  exports.Set("uninstallSignal", Napi::Function::New(env, UninstallSignal, "uninstallSignal"));
  exports.Set("signalHandlerIsOurs", Napi::Function::New(env, SignalHandlerIsOurs, "signalHandlerIsOurs"));
  exports.Set("releaseHeldSignals", Napi::Function::New(env, ReleaseHeldSignals, "releaseHeldSignals"));
  exports.Set("takeDroppedSignals", Napi::Function::New(env, TakeDroppedSignals, "takeDroppedSignals"));
  exports.Set("kill", Napi::Function::New(env, Kill, "kill"));
  exports.Set("sigqueue", Napi::Function::New(env, Sigqueue, "sigqueue"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("SIGRTMIN", Napi::Number::New(env, SIGRTMIN));
  c.Set("SIGRTMAX", Napi::Number::New(env, SIGRTMAX));
  c.Set("RECORD_SIZE", Napi::Number::New(env, static_cast<double>(sizeof(SignalRecord))));
  c.Set("SI_USER", Napi::Number::New(env, SI_USER));
  c.Set("SI_QUEUE", Napi::Number::New(env, SI_QUEUE));
  c.Set("SI_TKILL", Napi::Number::New(env, SI_TKILL));
  exports.Set("signalConstants", c);
}

}  // namespace ipckit
