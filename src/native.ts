/**
 * The only file that loads the native addon (build/Release/ipckit.node, built by
 * node-gyp during `npm ci`). It declares every export the addon has, grouped by the
 * native/ file that implements it. Conventions:
 *
 * - Calls that fail throw an Error with numeric `errno` and `syscall`; wrap them in
 *   `sys()` (errors.ts) to get an IpcError.
 * - Hot-path calls (read, write, writev, tryOpen, ...) return `-errno` instead of throwing,
 *   because EAGAIN is an ordinary answer there.
 * - Nothing here decides policy: validation, retries and error mapping are TypeScript's.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { IpcError } from './errors.js';

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
  /**
   * Whether the watcher keeps the event loop alive while it is started (default true).
   * An unref'd watcher still reports events.
   */
  ref(on: boolean): void;
  /** Stops and releases the libuv handle. Call before closing the fd. */
  close(): void;
}
export interface FdWatcherConstructor {
  /** `callback(status, events)`: status 0 or a negative libuv error (then try the syscall to learn why). */
  new (fd: number, callback: (status: number, events: number) => void): FdWatcher;
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
}

/** native/process.cc */
export interface NativeProcess {
  /** prctl(PR_SET_CHILD_SUBREAPER): orphans of our descendants are reparented to us. */
  setChildSubreaper(on: boolean): void;
}

/** native/mqueue.cc */
export interface NativeMqueue {}

/** native/semaphore.cc */
export interface NativeSemaphore {}

/** native/mutex.cc */
export interface NativeMutex {}

/** native/shm.cc */
export interface NativeShm {}

/** native/futex.cc */
export interface NativeFutex {}

/** native/socket.cc */
export interface NativeSocket {}

/** native/signal.cc */
export interface NativeSignal {}

/** Everything the addon exports, one interface per native/ file. */
export interface NativeAddon
  extends NativeFd,
    NativePoll,
    NativeProcess,
    NativeMqueue,
    NativeSemaphore,
    NativeMutex,
    NativeShm,
    NativeFutex,
    NativeSocket,
    NativeSignal {}

const addonPath = fileURLToPath(new URL('../../build/Release/ipckit.node', import.meta.url));
/** The die-with-parent exec helper built next to the addon (native/exec_helper.c). */
export const execHelperPath = fileURLToPath(new URL('../../build/Release/ipckit-exec', import.meta.url));

function load(): NativeAddon {
  if (!existsSync(addonPath)) {
    throw new IpcError(
      'ERR_IPCKIT_UNSUPPORTED',
      `the ipckit native addon is missing at ${addonPath}; it is built by node-gyp during \`npm ci\` (needs python3, make and a C++ compiler). Rebuild it with \`npm rebuild ipckit\``,
    );
  }
  try {
    return createRequire(import.meta.url)(addonPath) as NativeAddon;
  } catch (e) {
    throw new IpcError('ERR_IPCKIT_UNSUPPORTED', `the ipckit native addon at ${addonPath} failed to load: ${(e as Error).message}`, { cause: e });
  }
}

export const native: NativeAddon = load();
