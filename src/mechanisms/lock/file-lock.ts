/**
 * File locks between processes: open-file-description locks by default, `flock(2)` locks
 * on request.
 *
 * - OFD locks (`F_OFD_SETLK`, Linux 3.15) belong to the open file, not to the process: two
 *   FileLocks of one file in one process exclude each other, and closing some other
 *   descriptor of the file does not drop the lock (the trap of classic `fcntl` locks). They
 *   lock byte ranges, shared or exclusive, and conflict with classic `fcntl`/`lockf`
 *   record locks, so Python's `fcntl.lockf`, SQLite and C programs see ours and we see theirs.
 * - `{ kind: 'flock' }`: whole-file `flock(2)` locks, as `flock(1)` takes them. Linux keeps
 *   flock and record locks apart: neither sees the other.
 * - A wait never blocks the event loop nor parks a thread of libuv's pool: an OFD wait runs
 *   `F_OFD_SETLKW` on a thread of ours (os/blocking.ts) and is cancelled there on timeout,
 *   abort or close; a flock wait tries again on a timer (every 1 ms, doubling to 50 ms),
 *   since `flock` cannot be cancelled. A lock taken after nobody wanted it is given back.
 * - The kernel releases a dead process's locks: a crashed holder never keeps one.
 */
import { constants as fsConstants } from 'node:fs';
import { cancellableWait, type WaitOptions } from '../../core/channel.js';
import { closedError, errnoError, errnoOf, IpcError, timeoutError, toIpcError } from '../../core/errors.js';
import * as validate from '../../core/validate.js';
import { sleepSync } from '../../memory/waits.js';
import { runBlocking } from '../../os/blocking.js';
import { native, type NativeStat } from '../../os/native.js';
import { fileTypeName } from '../../os/permissions.js';
import { locksOn, type KernelLock } from '../../os/proc-locks.js';

const { O_RDONLY, O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW, S_IFMT, S_IFREG } = fsConstants;
const O_CLOEXEC = 0o2000000;
const L = native.lockConstants;
const EAGAIN = 11;
const EACCES = 13;
const ENOENT = 2;
const EEXIST = 17;
const ELOOP = 40;
const EISDIR = 21;

export type FileLockKind = 'ofd' | 'flock';

export interface OpenFileLockOptions {
  /** 'ofd' (default): byte-range open-file-description locks; 'flock': whole-file flock(2) locks. */
  kind?: FileLockKind;
  /** Create the file if it does not exist (with `mode`, default 0o600). */
  create?: boolean;
  /** Permission bits of a file this call creates (default 0o600). */
  mode?: number;
  /** Lock the file a symlink points to (default: refuse symlinks). */
  followSymlinks?: boolean;
  /** Open the file read-only: only shared locks can then be taken. */
  readOnly?: boolean;
}

/** A byte range: `length` 0 means to the end of the file, however long it grows. */
export interface LockRange {
  start: number;
  length: number;
}

export interface LockOptions {
  /** A shared (read) lock; default exclusive. */
  shared?: boolean;
  /** The bytes to lock (OFD locks only); default the whole file. */
  range?: LockRange;
}

/** Who holds a lock that conflicts with the one asked for. */
export interface LockHolder {
  kind: 'ofd' | 'posix' | 'flock';
  shared: boolean;
  /** The holder's pid where the kernel tells: classic record locks and flock locks do, OFD locks never do. */
  pid: number | undefined;
  start: number;
  /** Bytes, or undefined for "to the end of the file". */
  length: number | undefined;
}

/** The largest offset a lock may reach: JavaScript's exact integers, well inside off_t. */
const MAX_OFFSET = Number.MAX_SAFE_INTEGER;

function checkLockOptions(options: unknown, kind: FileLockKind): { shared: boolean; start: number; length: number } {
  const o = validate.object<LockOptions & WaitOptions>('options', options);
  const shared = o.shared === undefined ? false : validate.boolean('shared', o.shared);
  if (o.range === undefined) return { shared, start: 0, length: 0 };
  if (kind === 'flock') throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', 'flock locks the whole file: a range needs an OFD lock (the default kind)');
  const r = validate.object<LockRange>('range', o.range);
  const start = validate.integer('range.start', r.start, 0, MAX_OFFSET);
  const length = validate.integer('range.length', r.length, 0, MAX_OFFSET);
  if (start + length > MAX_OFFSET) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `range ${start}+${length} ends past ${MAX_OFFSET}, the largest offset a lock may reach`);
  return { shared, start, length };
}

/** A lock held by a FileLock: `release()` (or `using`) gives it back. */
export class HeldLock implements Disposable, AsyncDisposable {
  #released = false;
  constructor(
    readonly lock: FileLock,
    readonly shared: boolean,
    /** The range held; `length` 0 is to the end of the file. */
    readonly range: LockRange,
  ) {}

  /** Gives the lock back (idempotent; nothing happens once the FileLock is closed). */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    if (!this.lock.closed) this.lock.unlock(this.lock.kind === 'ofd' ? this.range : undefined);
  }

  [Symbol.dispose](): void {
    this.release();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.release();
  }
}

/** One open file to take locks on. Locks are released by `unlock`, by `close`, and by the kernel when the process dies. */
export class FileLock implements AsyncDisposable, Disposable {
  #fd: number;
  #closing: Promise<void> | undefined;
  /** Native waits in flight: the descriptor stays open until they are over. */
  #inFlight = 0;
  #drained: (() => void) | undefined;
  #cancels = new Set<() => void>();
  /** flock only: whether this handle holds the flock lock (the kernel shows flock holders by pid only). */
  #flockHeld = false;

  constructor(
    fd: number,
    readonly path: string,
    readonly kind: FileLockKind,
    readonly readOnly: boolean,
  ) {
    this.#fd = fd;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Takes the lock now, or returns undefined if someone else holds a conflicting one. */
  tryLock(options: LockOptions = {}): HeldLock | undefined {
    const o = checkLockOptions(options, this.kind);
    this.#usable(o.shared);
    return this.#try(o) ? this.#held(o) : undefined;
  }

  /**
   * Takes the lock, waiting while someone else holds a conflicting one (timeout and
   * AbortSignal as every wait; closing the FileLock ends the wait with ERR_IPCKIT_CLOSED).
   */
  lock(options: LockOptions & WaitOptions = {}): Promise<HeldLock> {
    const o = checkLockOptions(options, this.kind);
    validate.waitOptions(options);
    this.#usable(o.shared);
    if (this.#try(o)) return Promise.resolve(this.#held(o));
    const what = `lock ${this.path}`;
    const waited = this.kind === 'ofd' ? this.#waitOfd(o, options, what) : this.#pollFlock(o, options, what);
    return waited.then(() => this.#held(o));
  }

  /**
   * Takes the lock, blocking this thread while it is held elsewhere (for workers and
   * scripts). Tries every 1 ms, doubling to 20 ms; `timeoutMs` ends it with ERR_IPCKIT_TIMEOUT.
   */
  lockSync(options: LockOptions & { timeout?: number } = {}): HeldLock {
    const o = checkLockOptions(options, this.kind);
    const timeout = validate.timeout(options.timeout);
    this.#usable(o.shared);
    const deadline = timeout === undefined ? Infinity : performance.now() + timeout;
    for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
      if (this.#try(o)) return this.#held(o);
      const left = deadline - performance.now();
      if (left <= 0) throw timeoutError(`lock ${this.path}`, timeout!);
      sleepSync(Math.min(delay, left));
    }
  }

  /** Gives back the lock on `range` (default: every lock this FileLock holds). */
  unlock(range?: LockRange): void {
    if (this.closed) throw closedError(`file lock ${this.path}`);
    if (this.kind === 'flock') {
      if (range !== undefined) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', 'flock locks the whole file: unlock() takes no range');
      this.#check(native.flock(this.#fd, L.LOCK_UN), 'flock(LOCK_UN)');
      this.#flockHeld = false;
      return;
    }
    const { start, length } = range === undefined ? { start: 0, length: 0 } : checkLockOptions({ range }, this.kind);
    this.#check(native.setLock(this.#fd, L.F_OFD_SETLK, L.F_UNLCK, start, length), 'fcntl(F_OFD_SETLK)');
  }

  /**
   * Who holds a lock that conflicts with `options` (default: an exclusive lock of the whole
   * file), or undefined when it could be taken now. A classic record lock or a flock lock
   * gives its holder's pid; an OFD lock gives none (the kernel does not record it).
   */
  holder(options: LockOptions = {}): LockHolder | undefined {
    const o = checkLockOptions(options, this.kind);
    if (this.closed) throw closedError(`file lock ${this.path}`);
    if (this.kind === 'flock') {
      const others = locksOn(this.path).filter((l) => l.kind === 'flock' && !l.waiting && (o.shared ? !l.shared : true));
      // Our own flock lock is listed under our pid too: skip one of ours if we hold it.
      const theirs = this.#flockHeld ? others.filter((l, i) => !(l.pid === process.pid && i === others.findIndex((x) => x.pid === process.pid))) : others;
      const l = theirs[0];
      return l === undefined ? undefined : { kind: 'flock', shared: l.shared, pid: l.pid, start: 0, length: undefined };
    }
    const got = native.getLock(this.#fd, L.F_OFD_GETLK, o.shared ? L.F_RDLCK : L.F_WRLCK, o.start, o.length);
    if (got === null) return undefined;
    return { kind: got.pid > 0 ? 'posix' : 'ofd', shared: got.type === L.F_RDLCK, pid: got.pid > 0 ? got.pid : undefined, start: got.start, length: got.length === 0 ? undefined : got.length };
  }

  /** Every lock the kernel holds on this file, from /proc/locks (any kind, any process). */
  locks(): KernelLock[] {
    return locksOn(this.path);
  }

  /** Closes the file: its locks go, pending waits end with ERR_IPCKIT_CLOSED. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const stop of [...this.#cancels]) stop();
      if (this.#inFlight > 0) await new Promise<void>((r) => (this.#drained = r));
      native.close(this.#fd);
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** `using`: closes now, or as soon as a cancelled wait's thread has let go of the descriptor. */
  [Symbol.dispose](): void {
    void this.close();
  }

  #usable(shared: boolean): void {
    if (this.closed) throw closedError(`file lock ${this.path}`);
    if (this.readOnly && !shared) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `${this.path} was opened read-only: only a shared lock can be taken`, { remedy: { options: [{ shared: true }], when: 'or open it without readOnly' } });
  }

  #try(o: { shared: boolean; start: number; length: number }): boolean {
    if (this.kind === 'flock') {
      const r = native.flock(this.#fd, (o.shared ? L.LOCK_SH : L.LOCK_EX) | L.LOCK_NB);
      if (r === -EAGAIN) return false;
      this.#check(r, 'flock');
      this.#flockHeld = true;
      return true;
    }
    const r = native.setLock(this.#fd, L.F_OFD_SETLK, o.shared ? L.F_RDLCK : L.F_WRLCK, o.start, o.length);
    if (r === -EAGAIN || r === -EACCES) return false;
    this.#check(r, 'fcntl(F_OFD_SETLK)');
    return true;
  }

  #held(o: { shared: boolean; start: number; length: number }): HeldLock {
    return new HeldLock(this, o.shared, { start: o.start, length: o.length });
  }

  #check(r: number, syscall: string): void {
    if (r < 0) throw errnoError(-r, syscall, `lock ${this.path}`, { path: this.path });
  }

  #waitOfd(o: { shared: boolean; start: number; length: number }, options: WaitOptions, what: string): Promise<number> {
    const type = o.shared ? L.F_RDLCK : L.F_WRLCK;
    let stop: ((error: unknown) => void) | undefined;
    const onClose = (): void => stop?.(closedError(`file lock ${this.path}`));
    this.#inFlight++;
    this.#cancels.add(onClose);
    return runBlocking(
      {
        what,
        start: (calls) => calls.lockWait(this.#fd, L.F_OFD_SETLKW, type, o.start, o.length),
        failure: (errno) => errnoError(errno, 'fcntl(F_OFD_SETLKW)', what, { path: this.path }),
        // Taken after the caller gave up: give it back before anyone can see it.
        undo: () => native.setLock(this.#fd, L.F_OFD_SETLK, L.F_UNLCK, o.start, o.length),
        // The thread no longer uses the descriptor: close() may close it.
        settled: () => {
          if (--this.#inFlight === 0) this.#drained?.();
        },
        onStop: (s) => (stop = s),
      },
      options,
    ).finally(() => this.#cancels.delete(onClose));
  }

  #pollFlock(o: { shared: boolean; start: number; length: number }, options: WaitOptions, what: string): Promise<void> {
    return cancellableWait<void>(what, options, (resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      let delay = 1;
      const stop = (): void => {
        this.#cancels.delete(onClose);
        if (timer !== undefined) clearTimeout(timer);
        timer = undefined;
      };
      const onClose = (): void => {
        stop();
        reject(closedError(`file lock ${this.path}`));
      };
      this.#cancels.add(onClose);
      const attempt = (): void => {
        timer = undefined;
        let got: boolean;
        try {
          got = this.#try(o);
        } catch (e) {
          stop();
          reject(e);
          return;
        }
        if (got) {
          stop();
          resolve();
          return;
        }
        timer = setTimeout(attempt, delay);
        delay = Math.min(delay * 2, 50);
      };
      timer = setTimeout(attempt, delay);
      return stop;
    });
  }
}

function openFd(path: string, o: OpenChecked): number {
  const flags = (o.readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC | (o.followSymlinks ? 0 : O_NOFOLLOW);
  if (o.create) {
    try {
      const fd = native.open(path, flags | O_CREAT | O_EXCL, o.mode & 0o700);
      try {
        native.fchmod(fd, o.mode); // exactly, whatever the umask
      } catch (e) {
        native.close(fd);
        throw e;
      }
      return fd;
    } catch (e) {
      if (errnoOf(e) !== EEXIST) throw e;
    }
  }
  return native.open(path, flags, 0);
}

interface OpenChecked {
  kind: FileLockKind;
  create: boolean;
  followSymlinks: boolean;
  readOnly: boolean;
  mode: number;
}

function checkOpen(path: unknown, options: unknown): OpenChecked {
  validate.string('path', path);
  const o = validate.object<OpenFileLockOptions>('options', options);
  return {
    kind: o.kind === undefined ? 'ofd' : validate.oneOf('kind', o.kind, ['ofd', 'flock'] as const),
    create: o.create === undefined ? false : validate.boolean('create', o.create),
    followSymlinks: o.followSymlinks === undefined ? false : validate.boolean('followSymlinks', o.followSymlinks),
    readOnly: o.readOnly === undefined ? false : validate.boolean('readOnly', o.readOnly),
    mode: validate.mode('mode', o.mode, 0o600),
  };
}

function open(path: string, o: OpenChecked): FileLock {
  let fd: number;
  try {
    fd = openFd(path, o);
  } catch (e) {
    const errno = errnoOf(e);
    if (errno === ENOENT) throw new IpcError('ERR_IPCKIT_NOT_FOUND', `no file ${path} to lock`, { path, errno, syscall: 'open', systemCode: 'ENOENT', remedy: { options: [{ create: true }], when: 'to create it (mode 0600)' } });
    if (errno === ELOOP) throw new IpcError('ERR_IPCKIT_PERMISSION', `${path} is a symlink; refusing to lock what it points to`, { path, errno, syscall: 'open', systemCode: 'ELOOP', remedy: { options: [{ followSymlinks: true }], when: 'if the link is trusted' } });
    if (errno === EISDIR) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `${path} is a directory: lock a file in it instead`, { path, errno, syscall: 'open', systemCode: 'EISDIR' });
    throw toIpcError(e, `open ${path} to lock it`, { path });
  }
  let st: NativeStat;
  try {
    st = native.fstat(fd);
  } catch (e) {
    native.close(fd);
    throw toIpcError(e, `fstat ${path}`, { path });
  }
  if ((st.mode & S_IFMT) !== S_IFREG) {
    native.close(fd);
    throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `${path} is ${fileTypeName(st.mode)}, not a regular file: lock a regular file`, { path });
  }
  return new FileLock(fd, path, o.kind, o.readOnly);
}

/**
 * Opens `path` to take locks on it. Refuses a directory, anything but a regular file, a
 * symlink (unless `followSymlinks`) and a path that does not exist (unless `create`).
 * Bad options throw at once; opening never waits, but resolves like every `open…`.
 */
export function openFileLock(path: string, options: OpenFileLockOptions = {}): Promise<FileLock> {
  const o = checkOpen(path, options);
  try {
    return Promise.resolve(open(path, o));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** openFileLock for scripts and workers: the same, returning the FileLock itself (and throwing). */
export function openFileLockSync(path: string, options: OpenFileLockOptions = {}): FileLock {
  return open(path, checkOpen(path, options));
}
