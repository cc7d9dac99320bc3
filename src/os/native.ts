/**
 * The only file that loads the native addon, and the one that finds the ipckit-exec
 * helper next to it (see `locateAddon`). It declares every export the addon has, grouped
 * by the native/ file that implements it. Conventions:
 *
 * - Calls that fail throw an Error with numeric `errno` and `syscall`; wrap them in
 *   `sys()` (errors.ts) to get an IpcError.
 * - Hot-path calls (read, write, writev, tryOpen, ...) return `-errno` instead of throwing,
 *   because EAGAIN is an ordinary answer there.
 * - Nothing here decides policy: validation, retries and error mapping are TypeScript's.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IpcError } from '../core/errors.js';

export interface NativeStat {
  dev: number;
  ino: number;
  /** st_mode: file type and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
}

/** native/poll.cc: readiness of an fd, reported on the event loop (uv_poll). */
export interface FdWatcher {
  /** Watch for `events` (1 readable, 2 writable); replaces the previous mask. */
  start(events: number): void;
  stop(): void;
  /** Stops and releases the libuv handle. Call before closing the fd (a watcher that owns its fd closes it here). */
  close(): void;
  /** false: while watching, this watcher alone does not keep the process alive (uv_unref). */
  setLoopRef(on: boolean): void;
}
export interface FdWatcherConstructor {
  /**
   * `callback(status, events)`: status 0 or a negative libuv error (then try the syscall
   * to learn why). `ownsFd`: close() closes the fd, and so does the end of this thread's
   * env (a worker that ends) if close() was never called.
   */
  new (fd: number, callback: (status: number, events: number) => void, ownsFd?: boolean): FdWatcher;
}

/** native/fd.cc */
export interface NativeFd {
  /** pipe2(O_CLOEXEC): [readFd, writeFd]. */
  pipe(): [number, number];
  read(fd: number, buf: Uint8Array, offset: number, length: number): number;
  write(fd: number, buf: Uint8Array, offset: number, length: number): number;
  /** writev of the views, the first one from `firstOffset`; at most IOV_MAX views are used. */
  writev(fd: number, views: Uint8Array[], firstOffset: number): number;
  close(fd: number): void;
  setNonBlocking(fd: number, on: boolean): void;
  /** fcntl(F_GETFL). */
  getStatusFlags(fd: number): number;
  setCloexec(fd: number, on: boolean): void;
  /** fcntl(F_DUPFD_CLOEXEC): another descriptor for the same open file. */
  dupCloexec(fd: number): number;
  getPipeSize(fd: number): number;
  /** Returns the size the kernel actually set (rounded up to a power-of-two pages). */
  setPipeSize(fd: number, size: number): number;
  open(path: string, flags: number, mode: number): number;
  /** open() returning -errno on failure. */
  tryOpen(path: string, flags: number, mode: number): number;
  mkfifo(path: string, mode: number): void;
  fstat(fd: number): NativeStat;
  lstat(path: string): NativeStat;
  fchmod(fd: number, mode: number): void;
  fchown(fd: number, uid: number, gid: number): void;
  unlink(path: string): void;
  /** pidfd_open(pid, 0), with FD_CLOEXEC: readable once the process has exited. */
  pidfdOpen(pid: number): number;
  readonly PIPE_BUF: number;
  readonly IOV_MAX: number;
}

/** native/poll.cc */
export interface NativePoll {
  FdWatcher: FdWatcherConstructor;
  /** Closes `fd` when this thread's env ends (a worker that ends), unless disownFd(fd) came first. One set per thread: no object per fd. */
  ownFd(fd: number): void;
  disownFd(fd: number): void;
  /** Throws (errno of epoll_ctl, EPERM for a regular file) if epoll cannot watch `fd`, as new FdWatcher does. */
  probePollable(fd: number): void;
}

/** native/process.cc */
export interface NativeProcess {
  /** prctl(PR_SET_CHILD_SUBREAPER): orphans of our descendants are reparented to us. */
  setChildSubreaper(on: boolean): void;
  /** gettid(): the calling thread's id (the main thread's is the pid). */
  gettid(): number;
  /** glibc's malloc_trim(0): freed heap memory back to the system (diagnostics: scripts/leak-cycles.ts). */
  mallocTrim(): boolean;
}

/** mq_getattr(3) of an open queue. */
export interface NativeMqAttr {
  /** mq_flags (O_NONBLOCK or 0). */
  flags: number;
  maxMessages: number;
  maxMessageBytes: number;
  currentMessages: number;
}

/**
 * native/mqueue.cc: POSIX message queues. An mqd_t is a file descriptor on Linux: poll it
 * with FdWatcher (readable: a message is waiting; writable: there is room), close it with
 * `close`. Send and receive never block when the queue was opened with O_NONBLOCK.
 */
export interface NativeMqueue {
  /** mq_open(name, oflag, mode, attr); attr only when maxMessages > 0. Returns the fd. */
  mqOpen(name: string, oflag: number, mode: number, maxMessages: number, maxMessageBytes: number): number;
  mqUnlink(name: string): void;
  mqGetattr(fd: number): NativeMqAttr;
  /** mq_send of the whole view: 0, or -errno (EAGAIN: full, EMSGSIZE: too long). */
  mqSend(fd: number, message: Uint8Array, priority: number): number;
  /** mq_send of views[start..] in order, all with `priority`, until one would block:
   *  how many were sent, or -errno when the first failed. */
  mqSendMany(fd: number, messages: Uint8Array[], start: number, priority: number): number;
  /** mq_receive into `buffer` (at least the queue's maxMessageBytes long):
   *  priority * 2**32 + length, or -errno (EAGAIN: empty). */
  mqReceive(fd: number, buffer: Uint8Array): number;
  /** Up to `max` mq_receive calls, messages packed one after another into `buffer`
   *  (each needs maxMessageBytes bytes of room); meta[2i] = length, meta[2i+1] = priority.
   *  Returns how many, or -errno when the first failed. */
  mqReceiveMany(fd: number, buffer: Uint8Array, maxMessageBytes: number, max: number, meta: Uint32Array): number;
  /** sysconf(_SC_MQ_PRIO_MAX): priorities are 0 .. MQ_PRIO_MAX - 1. */
  readonly MQ_PRIO_MAX: number;
}

/**
 * native/semaphore.cc: the sem_t at offset 0 of a mapping (native/shm.cc; `handle` is
 * `Mapping.handle`) of the file /dev/shm/sem.<name>, which TypeScript opened and checked.
 * Async waits are futex waits of the one wait back-end (NativeFutexWaiters) on the value word.
 */
export interface NativeSemaphore {
  /** sem_open(name, O_CREAT | O_EXCL, mode, value), then sem_close: the object exists, unmapped. */
  semCreate(name: string, mode: number, value: number): void;
  semUnlink(name: string): void;
  /**
   * False when the sem_t's futex flags are not those of a process-shared glibc semaphore
   * (a peer overwrote them). glibc trusts them on every call (a corrupt value can make
   * sem_post sleep forever or abort the process), so every call checks first and fails
   * with EUCLEAN instead.
   */
  semIntact(handle: number): boolean;
  /** sem_post. Throws (EOVERFLOW at SEM_VALUE_MAX; EUCLEAN: see semIntact). */
  semPost(handle: number): void;
  /** sem_trywait: 0 (took one) or -errno (EAGAIN: none; EUCLEAN). */
  semTryWait(handle: number): number;
  /**
   * Takes up to `max` permits now (glibc's compare-and-swap fast path): how many, or
   * -EUCLEAN. `waiters` +1: join the waiters first; -1: leave them afterwards if all `max`
   * were taken; 0 (default): neither.
   */
  semTake(handle: number, max: number, waiters?: number): number;
  /** Joins (+1) or leaves (-1) the waiters a sem_post wakes (glibc layout; nothing elsewhere). */
  semWaiters(handle: number, delta: number): void;
  /** sem_clockwait on CLOCK_MONOTONIC on the calling thread; ms < 0: no limit. 0 or -errno (ETIMEDOUT; EUCLEAN). */
  semWaitSync(handle: number, ms: number): number;
  /** sem_getvalue. */
  semValue(handle: number): number;
  /** sizeof(sem_t). */
  readonly SEM_SIZE: number;
  /** Byte offset of the word a post wakes. */
  readonly SEM_VALUE_OFFSET: number;
  /** True where a post wakes a registered waiter's futex wait (glibc's sem_t); else waits poll. */
  readonly SEM_WAKES_WAITERS: boolean;
}

/**
 * native/shm.cc: MAP_SHARED mappings, held as handles (numbers: slots of the thread's
 * native table), each freed by mapRelease at once. src/os/mapping.ts wraps them (`Mapping`),
 * with what each call does; offsets are in bytes, bounds- and alignment-checked natively.
 */
export interface NativeShm {
  mapOpen(fd: number, length: number, writable: boolean): number;
  mapLength(handle: number): number;
  mapBuffer(handle: number): SharedArrayBuffer;
  mapRead(handle: number, offset: number, dst: Uint8Array, dstOffset: number, length: number): void;
  mapWrite(handle: number, offset: number, src: Uint8Array, srcOffset: number, length: number): void;
  mapLoad(handle: number, byteOffset: number): number;
  mapStore(handle: number, byteOffset: number, value: number): number;
  mapCompareExchange(handle: number, byteOffset: number, expected: number, replacement: number): number;
  mapAdd(handle: number, byteOffset: number, delta: number): number;
  mapLoad64(handle: number, byteOffset: number): bigint;
  mapCompareExchange64(handle: number, byteOffset: number, expected: bigint, replacement: bigint): bigint;
  mutexInit(handle: number, byteOffset: number): void;
  mutexTryLock(handle: number, byteOffset: number, contended?: boolean): number;
  mutexLockSync(handle: number, byteOffset: number, ms: number): number;
  mutexUnlock(handle: number, byteOffset: number): number;
  mutexConsistent(handle: number, byteOffset: number): number;
  mutexPeek(handle: number, byteOffset: number): [number, number];
  mutexValid(handle: number, byteOffset: number): boolean;
  mutexPrepareWait(handle: number, byteOffset: number): number;
  mapSync(handle: number, async: boolean): void;
  /**
   * Frees the handle's slot (idempotent); buffers, waits and exit actions keep the pages.
   * `discard`: the owner is closed for good and its one SharedArrayBuffer is nobody else's:
   * private zero pages take the shared ones' place now, unless a wait, exit action or held
   * robust mutex still uses them.
   */
  mapRelease(handle: number, discard?: boolean): void;
  /** Handles of this thread not released (tests). */
  mapsLive(): number;
  /** shm_open(name, flags | O_CLOEXEC, mode) -> fd (glibc adds O_NOFOLLOW). */
  shmOpen(name: string, flags: number, mode: number): number;
  shmUnlink(name: string): void;
  ftruncate(fd: number, size: number): void;
  /** sizeof(pthread_mutex_t). */
  readonly PTHREAD_MUTEX_SIZE: number;
  /** posix_fallocate(fd, 0, size): reserves the pages (ENOSPC now instead of SIGBUS later). */
  fallocate(fd: number, size: number): void;
  /** False in runtimes with a V8 memory cage (Electron) and in builds without the V8 path: use the copying path. */
  readonly externalBuffersAllowed: boolean;
}

/** Results of a futex wait: 0 woken, 1 the word was not the expected value, 2 timed out, 3 cancelled; negative: -errno. */
export type FutexResult = number;

/** native/futex.cc: the wait back-end, one object per JS environment (io_uring futex waits, or waiter threads). */
export interface NativeFutexWaiters {
  /** Registers the word at `byteOffset` for one-shot waits (resolved once); returns its id. */
  word(mapping: number, byteOffset: number): number;
  /** Drops a registered word (waits in progress keep its pages). */
  forget(wordId: number): void;
  /**
   * Starts a wait on a registered word while it equals `expected`; the result (0 woken,
   * 1 not equal, or -errno) is passed to the dispatch function with the returned id.
   * `passOn`: a waiter of a lock or semaphore; if the wait is cancelled and a wake reaches
   * it anyway, the wake goes to the next waiter.
   */
  wait(wordId: number, expected: number, passOn: boolean): number;
  /** Cancels a running wait (it reports nothing); false if it had already finished. */
  cancel(id: number): boolean;
  /**
   * Starts a watch on a word: a thread of its own that keeps waiting on it. Nothing is
   * reported until `arm`. Returns the watch's id (results go to the dispatch function).
   */
  watch(mapping: number, byteOffset: number, sliceMs: number): number;
  /** Reports once (0) when the word differs from `seq` (at once if it already does), or (2) after a slice without a change. Re-arming with the value the thread waits on makes no system call. */
  arm(id: number, seq: number): void;
  /** Withdraws the arming (a report already on its way is dropped). */
  disarm(id: number): void;
  /** Stops the watch and joins its thread. */
  unwatch(id: number): void;
  /** Waiter threads started so far (they are reused), and watches. */
  threads(): number;
  /** True when waits go through io_uring (one wake-up) rather than waiter threads. */
  usesUring(): boolean;
  /**
   * Registers what to do if this JS environment ends with the action still registered (a
   * worker's terminate() runs no JavaScript): compare-and-swap the word at `byteOffset`
   * from `expected` to `replacement`, and if that happened add 1 to the word at
   * `signalByteOffset` (< 0: none) and wake its waiters in any process. Returns an id.
   */
  atExitSwap(mapping: number, byteOffset: number, expected: number, replacement: number, signalByteOffset: number): number;
  /** Registers close(fd) for the end of this JS environment; returns an id. */
  atExitClose(fd: number): number;
  /** Withdraws an exit action (the endpoint closed normally). */
  cancelAtExit(id: number): void;
}

/** native/futex.cc: shared (cross-process) futex wait and wake on a word of a mapping. */
export interface NativeFutex {
  /** Blocks the calling thread while the word equals `expected`, up to `timeoutMs` (< 0: no limit). EINTR is retried. */
  futexWait(mapping: number, byteOffset: number, expected: number, timeoutMs: number): FutexResult;
  /** Wakes up to `count` waiters (< 0: all); returns how many were woken, in any process. */
  futexWake(mapping: number, byteOffset: number, count: number): number;
  FutexWaiters: new (dispatch: (id: number, result: FutexResult) => void) => NativeFutexWaiters;
}

/** A socket's own or its peer's address (getsockname/getpeername). */
export type NativeSockAddr =
  | { family: 'unix'; /** sun_path bytes; a leading NUL is the abstract namespace. */ path: Buffer }
  | { family: 'ipv4' | 'ipv6'; address: string; port: number };

/** native/socket.cc. Sockets are always created SOCK_NONBLOCK | SOCK_CLOEXEC. */
export interface NativeSocket {
  /** socket(domain, type) -> fd. */
  socket(domain: number, type: number): number;
  /** socketpair(AF_UNIX, type) -> [fd, fd]. */
  socketpair(type: number): [number, number];
  /** bind to raw sun_path bytes (leading NUL: abstract); empty bytes autobind a unique abstract name. Throws. */
  bindUnix(fd: number, path: Uint8Array): void;
  /** connect to raw sun_path bytes -> 0 or -errno (EAGAIN: backlog full). */
  connectUnix(fd: number, path: Uint8Array): number;
  /** bind to a numeric IPv4/IPv6 address. Throws. */
  bindInet(fd: number, ip: string, port: number): void;
  /** connect to a numeric address -> 0 or -errno (EINPROGRESS: wait for writable, then SO_ERROR). */
  connectInet(fd: number, ip: string, port: number): number;
  listen(fd: number, backlog: number): void;
  /** accept4 -> fd (non-blocking, close-on-exec) or -errno. */
  accept(fd: number): number;
  /** getsockopt for an int option (SO_ERROR reads and clears the pending error). */
  getSockOpt(fd: number, level: number, name: number): number;
  setSockOpt(fd: number, level: number, name: number, value: number): void;
  /** SO_PEERCRED: the process that connected (or listened) at the other end. */
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
  localAddress(fd: number): NativeSockAddr;
  peerAddress(fd: number): NativeSockAddr;
  /** shutdown -> 0 or -errno. */
  shutdown(fd: number, how: number): number;
  /**
   * One sendmsg (MSG_DONTWAIT | MSG_NOSIGNAL): one datagram/seqpacket message, with
   * descriptors (SCM_RIGHTS, at most MAX_FDS_PER_MESSAGE) and an optional destination
   * (raw sun_path bytes) -> bytes sent or -errno.
   */
  sendPacket(fd: number, buf: Uint8Array, offset: number, length: number, fds: Int32Array | null, to: Uint8Array | null): number;
  /** sendmmsg of views[start..] (at most MAX_BATCH) on a connected socket -> messages sent or -errno. */
  sendPackets(fd: number, views: Uint8Array[], start: number): number;
  /**
   * recvmmsg (MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC) of at most `maxCount` messages,
   * message i into scratch[i*slotSize ..] -> count or -errno. meta[i*META_STRIDE ..] =
   * [real length, msg_flags, sender address length, pid, uid, gid (-1 without
   * SCM_CREDENTIALS), descriptor count, index of the first descriptor in `fds`]; sender
   * addresses go to addrs[i*ADDR_STRIDE ..] when `addrs` is given. Every received fd is
   * the caller's to close.
   */
  recvPackets(fd: number, scratch: Uint8Array, slotSize: number, maxCount: number, meta: Int32Array, addrs: Uint8Array | null, fds: Int32Array): number;
  /**
   * recvmsg (MSG_DONTWAIT | MSG_CMSG_CLOEXEC) on a Unix stream socket: read(2) that also
   * takes passed descriptors -> bytes, 0 at the end, or -errno. fds[0] = count, fds[1..16]
   * the descriptors (the caller's to close), fds[17] = 1 if more were sent than fit.
   */
  recvStream(fd: number, buf: Uint8Array, offset: number, length: number, fds: Int32Array): number;
  /** memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING) -> fd. */
  memfdCreate(name: string): number;
  /** fcntl(F_ADD_SEALS). */
  addSeals(fd: number, seals: number): void;
  /** fcntl(F_GET_SEALS). */
  getSeals(fd: number): number;
  /** mmap(MAP_SHARED) of `size` bytes as an ArrayBuffer, unmapped when collected. */
  mapShared(fd: number, size: number, writable: boolean): ArrayBuffer;
  readonly socketConstants: Readonly<Record<
    | 'AF_UNIX' | 'AF_INET' | 'AF_INET6' | 'SOCK_STREAM' | 'SOCK_DGRAM' | 'SOCK_SEQPACKET' | 'SOL_SOCKET' | 'IPPROTO_TCP' | 'IPPROTO_IPV6'
    | 'SO_ERROR' | 'SO_REUSEADDR' | 'SO_SNDBUF' | 'SO_RCVBUF' | 'SO_PASSCRED' | 'SO_TYPE' | 'TCP_NODELAY' | 'IPV6_V6ONLY'
    | 'SHUT_RD' | 'SHUT_WR' | 'SHUT_RDWR' | 'MSG_TRUNC' | 'MSG_CTRUNC'
    | 'F_SEAL_SEAL' | 'F_SEAL_SHRINK' | 'F_SEAL_GROW' | 'F_SEAL_WRITE' | 'F_SEAL_FUTURE_WRITE'
    | 'MAX_FDS_PER_MESSAGE' | 'MAX_BATCH' | 'META_STRIDE' | 'ADDR_STRIDE' | 'SUN_PATH_MAX', number>>;
}

/**
 * native/signal.cc: an SA_SIGINFO handler that writes each signal's siginfo as a 32-byte
 * record (i32 signo, i32 si_code, i32 pid, u32 uid, i32 value, i32 reserved, i64 pointer)
 * into a non-blocking self-pipe, chaining to the handler it replaced.
 */
export interface NativeSignal {
  /** The self-pipe's read end (created on first use, close-on-exec, never closed). */
  signalPipe(): number;
  /** Installs our handler for `signo` (chaining to the current one); false if it already was ours. */
  installSignal(signo: number): boolean;
  /** Restores the disposition that was there before ours (unless someone replaced ours). */
  uninstallSignal(signo: number): void;
  /** Whether our handler is the one installed for `signo` now. */
  signalHandlerIsOurs(signo: number): boolean;
  /** Records dropped since the last call: the pipe was full and the kernel's queue too. */
  takeDroppedSignals(): number;
  /** Unblocks (main thread) the signals held in the kernel while the pipe was full; true if any was. */
  releaseHeldSignals(): boolean;
  /** kill(2). Throws. */
  kill(pid: number, signo: number): void;
  /** sigqueue(3) with sival_int = value. Throws (EAGAIN: RLIMIT_SIGPENDING reached). */
  sigqueue(pid: number, signo: number, value: number): void;
  readonly signalConstants: Readonly<Record<'SIGRTMIN' | 'SIGRTMAX' | 'RECORD_SIZE' | 'SI_USER' | 'SI_QUEUE' | 'SI_TKILL', number>>;
}

/** native/probe.cc: each feature's probe gives 0 where it works, else the errno that said no. */
export interface NativeProbe {
  probeFeatures(): { futexWaitv: number; pidfd: number; memfdSeals: number; ofdLocks: number };
}

/** native/blocking.cc: blocking system calls on threads of ours, cancellable. */
export interface NativeBlockingCalls {
  /** fcntl(fd, cmd, lock) with cmd F_OFD_SETLKW or F_SETLKW, on a thread; returns the call's id. */
  lockWait(fd: number, cmd: number, type: number, start: number, length: number): number;
  /**
   * msgrcv with a zero-sized buffer: waits until a message of that type selection is in the
   * queue without taking it (result -E2BIG); a zero-length message is taken (result 0,
   * `extra` its type).
   */
  msgrcvWait(id: number, type: number, flags: number): number;
  /** msgsnd (a copy of `bytes`), waiting while the queue is full: 0 or -errno. */
  msgsndWait(id: number, bytes: Uint8Array, type: number, flags: number): number;
  /** semtimedop of `ops` ([index, delta, flags] triples): done (0), the time is out (-EAGAIN; timeoutMs < 0: none), cancelled (-ECANCELED) or -errno. */
  semopWait(id: number, ops: Int32Array, timeoutMs: number): number;
  /**
   * Stops a call: its thread is interrupted with a signal (SIGURG, see native/blocking.cc).
   * Its dispatch still comes once: -ECANCELED (it did nothing), or its result if it finished first.
   */
  cancel(id: number): void;
  threads(): number;
}

export interface NativeBlocking {
  /** `dispatch(id, result, extra)` runs on the loop once per call: result >= 0 or -errno; `extra` as the call says. */
  BlockingCalls: new (dispatch: (id: number, result: number, extra: number) => void) => NativeBlockingCalls;
}

/** What every System V object keeps (struct ipc_perm), as native/sysv.cc reports it. */
export interface NativeIpcPerm {
  /** Unsigned: 0x81000001 stays positive. */
  key: number;
  uid: number;
  gid: number;
  cuid: number;
  cgid: number;
  /** The permission bits, and for a segment SHM_DEST / SHM_LOCKED above them. */
  mode: number;
  seq: number;
}

/** native/sysv.cc: System V IPC. Times are seconds since the epoch (0: never). */
export interface NativeSysv {
  /** ftok(3), exactly libc's key (unsigned). Throws. */
  ftok(path: string, projectId: number): number;
  /** msgget(key, flags) -> identifier. Throws. */
  msgGet(key: number, flags: number): number;
  /** msgsnd of `bytes` with `type`: 0 or -errno (EAGAIN with IPC_NOWAIT: full). */
  msgSnd(id: number, bytes: Uint8Array, type: number, flags: number): number;
  /** msgrcv into `buffer` (type in its first 8 bytes, native endianness, then the text; at least 8 + size bytes): text length or -errno (ENOMSG: none; E2BIG: longer than size, left in the queue). */
  msgRcv(id: number, buffer: Uint8Array, size: number, type: number, flags: number): number;
  /**
   * Up to `max` msgrcv(IPC_NOWAIT) calls into `buffer`: message i's struct msgbuf at the next
   * 8-byte-aligned offset (type, then text), taken only while `size` more bytes fit;
   * meta[2i] = length, meta[2i+1] = type. How many, or -errno when the first failed.
   */
  msgRcvMany(id: number, buffer: Uint8Array, size: number, type: number, flags: number, max: number, meta: Float64Array): number;
  msgStat(id: number): NativeIpcPerm & { messages: number; bytes: number; maxBytes: number; lastSendPid: number; lastReceivePid: number; sendTime: number; receiveTime: number; changeTime: number };
  /** IPC_SET: owner, group, mode and msg_qbytes at once. Throws. */
  msgSet(id: number, uid: number, gid: number, mode: number, maxBytes: number): void;
  msgRemove(id: number): void;
  semGet(key: number, count: number, flags: number): number;
  /** semop (timeoutMs < 0) or semtimedop of [index, delta, flags] triples on the calling thread: 0 or -errno. */
  semOp(id: number, ops: Int32Array, timeoutMs: number): number;
  /** GETVAL, GETNCNT, GETZCNT or GETPID of one semaphore. Throws. */
  semCtl(id: number, index: number, cmd: number): number;
  semSetVal(id: number, index: number, value: number): void;
  semGetAll(id: number, count: number): number[];
  semSetAll(id: number, values: number[]): void;
  semStat(id: number): NativeIpcPerm & { count: number; opTime: number; changeTime: number };
  semSet(id: number, uid: number, gid: number, mode: number): void;
  semRemove(id: number): void;
  shmGet(key: number, size: number, flags: number): number;
  /** shmat of the whole segment (SHM_RDONLY when readOnly): a mapping handle (Mapping.adopt). Throws. */
  shmAttach(id: number, readOnly: boolean): number;
  /** Detaches the segment of a mapping made from shmAttach now; private zero pages take its place until the region is unmapped (buffers still held never crash). */
  shmDetach(handle: number): void;
  shmStat(id: number): NativeIpcPerm & { size: number; attached: number; creatorPid: number; lastPid: number; attachTime: number; detachTime: number; changeTime: number };
  shmSet(id: number, uid: number, gid: number, mode: number): void;
  shmRemove(id: number): void;
  readonly sysvConstants: Readonly<Record<
    'IPC_PRIVATE' | 'IPC_CREAT' | 'IPC_EXCL' | 'IPC_NOWAIT' | 'MSG_NOERROR' | 'MSG_EXCEPT' | 'SEM_UNDO' | 'GETVAL' | 'GETNCNT' | 'GETZCNT' | 'GETPID' | 'SHM_DEST' | 'SEMVMX',
    number
  >>;
}

/** native/filelock.cc: file locks, non-blocking forms. */
export interface NativeFileLock {
  /** F_OFD_SETLK or F_SETLK: 0, or -errno (EAGAIN/EACCES: a conflicting lock is held). */
  setLock(fd: number, cmd: number, type: number, start: number, length: number): number;
  /** F_OFD_GETLK or F_GETLK: null, or the first conflicting lock (pid -1 for an OFD lock). */
  getLock(fd: number, cmd: number, type: number, start: number, length: number): { type: number; start: number; length: number; pid: number } | null;
  /** flock(2): 0, or -errno. */
  flock(fd: number, op: number): number;
  readonly lockConstants: Readonly<Record<'F_OFD_GETLK' | 'F_OFD_SETLK' | 'F_OFD_SETLKW' | 'F_GETLK' | 'F_SETLK' | 'F_SETLKW' | 'F_RDLCK' | 'F_WRLCK' | 'F_UNLCK' | 'LOCK_SH' | 'LOCK_EX' | 'LOCK_UN' | 'LOCK_NB', number>>;
}

/** Everything the addon exports, one interface per native/ file. */
export interface NativeAddon
  extends NativeFd,
    NativePoll,
    NativeProcess,
    NativeMqueue,
    NativeSemaphore,
    NativeShm,
    NativeFutex,
    NativeSocket,
    NativeSignal,
    NativeProbe,
    NativeBlocking,
    NativeFileLock,
    NativeSysv {}

/** The package's root: package.json, build/ and prebuilds/ (this file is dist/src/os/native.js). */
const packageRoot = fileURLToPath(new URL('../../..', import.meta.url));
const require = createRequire(import.meta.url);

/** What to run when there is no addon for this machine, or it does not load. */
const buildFromSource =
  'build it from source (needs python3, make and a C++ compiler): in a project, `npm install-scripts approve ipckit` ' +
  '(npm 11.16 and later, which run a dependency\'s install script only once approved) and then `npm rebuild ipckit`; in a checkout of ipckit, `npm ci`';

/**
 * The addon's path, as node-gyp-build resolves it (one rule for the package and for a
 * checkout): build/Release if there is one (built from source, by `npm ci` in a checkout,
 * or by the install script, which builds only where no prebuild loads), else the prebuild
 * for this platform, architecture and libc in prebuilds/<platform>-<arch>/ (shipped in the
 * package, made by `npm run prebuilds`), which needs no compiler and no install script.
 * PREBUILDS_ONLY=1 in the environment skips build/Release (to try the prebuild in a checkout).
 */
function locateAddon(): string {
  const nodeGypBuild = require('node-gyp-build') as { path(dir: string): string };
  try {
    return nodeGypBuild.path(packageRoot);
  } catch (e) {
    // node-gyp-build's message names the platform, architecture and libc it looked for.
    const looked = (e as Error).message.split('\n')[0]!.replace(/^No native build was found for /, '');
    throw new IpcError(
      'ERR_IPCKIT_UNSUPPORTED',
      `the ipckit native addon is missing: no prebuild in ${join(packageRoot, 'prebuilds')} fits this machine (${looked}) and none was built in ${join(packageRoot, 'build', 'Release')}; ${buildFromSource}`,
      { cause: e },
    );
  }
}

const addonPath = locateAddon();
/** The die-with-parent exec helper (native/exec_helper.c), built and shipped next to the addon. */
export const execHelperPath = join(dirname(addonPath), 'ipckit-exec');

function load(): NativeAddon {
  try {
    return require(addonPath) as NativeAddon;
  } catch (e) {
    throw new IpcError('ERR_IPCKIT_UNSUPPORTED', `the ipckit native addon at ${addonPath} failed to load: ${(e as Error).message}; ${buildFromSource}`, { cause: e });
  }
}

export const native: NativeAddon = load();
