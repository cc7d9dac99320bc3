/**
 * POSIX named semaphores (sem_overview(7)): a counter in a named object that any process,
 * C and Python ones too, opens with sem_open(name) and changes with sem_post/sem_wait.
 *
 * - `createSemaphore(name, { value, mode, group })`: exclusive (sem_open with O_EXCL), mode
 *   exactly 0600 unless asked (fchmod after creation, so no umask widens it).
 * - `openSemaphore(name)`: opens /dev/shm/sem.<name> with O_NOFOLLOW and checks its
 *   owner and mode with fstat before using it; a semaphore someone else made (a squatter
 *   who created the name first, with whatever value) is ERR_IPCKIT_PERMISSION unless the
 *   caller opts in. The handle maps that very file: the semaphore used is the one checked.
 * - `wait()` is async and keeps the event loop free without using libuv's thread pool: the
 *   handle registers as one of the semaphore's waiters (glibc's sem_t keeps a count, and
 *   sem_post wakes a waiter only when it is not zero) and sleeps with a futex wait of the
 *   one wait back-end (src/memory/waits.ts: io_uring, or a waiter thread; see `backend`)
 *   on the value word; the JS thread itself takes the permits, with glibc's own atomic
 *   steps. A wait that ends by timeout or abort takes no permit, and a post's wake-up that
 *   reached a wait no longer wanted is passed on to another waiter. `waitSync()` blocks
 *   the calling thread (workers, scripts), in slices.
 * - `acquire()` gives a permit for `using` / `await using`, released exactly once.
 *
 * Crashes: a POSIX semaphore has no undo. A process that dies between wait and post
 * keeps its permit forever; nothing in the kernel gives it back. A plain semaphore
 * therefore only fits counting and signalling. For "at most N holders" with crashes
 * survived, use `BoundedPool` (pool.ts), which records each holder and takes back the
 * permits of dead ones, and for mutual exclusion the robust `Mutex` (mutex.ts).
 */
import { constants as fsConstants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { RESOLVED, WaitQueue, type WaitOptions } from '../../core/channel.js';
import { checkWaitToOpen, openWhenThere, type WaitToOpenOptions } from '../../core/open.js';
import { releasable, type Releasable } from '../../core/permit.js';
import { closedError, errnoError, errnoOf, invalidArgument, IpcError, sys, toIpcError } from '../../core/errors.js';
import { Mapping } from '../../os/mapping.js';
import { native, type NativeStat } from '../../os/native.js';
import { checkOwner, createMode, type CreateModeOptions, type OwnerCheckOptions } from '../../os/permissions.js';
import { posixPerm, type PosixIpcPerm } from '../../os/ipc-perm.js';
import * as validate from '../../core/validate.js';
import { ownerOptions } from '../../memory/segment.js';
import { checkWaitOptions, FutexWord, waitBackend, SLICE_MS } from '../../memory/waits.js';
import { SpinBudget, spinOption } from '../../os/spin.js';
import { spinBeforeWait } from '../../os/turn.js';

const { O_RDWR, O_NOFOLLOW, S_IFMT, S_IFREG } = fsConstants;
const O_CLOEXEC = 0o2000000;
const { EAGAIN, EEXIST, ENOENT, ELOOP, ETIMEDOUT, EOVERFLOW, EINVAL } = osConstants.errno;
/** What native/semaphore.cc reports for a sem_t whose futex flags were overwritten. */
const EUCLEAN = 117;

/** SEM_VALUE_MAX on Linux. */
export const SEM_VALUE_MAX = 2147483647;
/** Where glibc (and musl) keep named semaphores. */
const SEM_DIR = '/dev/shm';

export interface SemaphoreOptions {
  /** Remove the name when this handle closes (default false). */
  unlinkOnClose?: boolean;
  /**
   * How long a `wait()` that finds no permit retries taking one on the event loop before it
   * sleeps, in µs (default 20 where the process may use more than one CPU, else 0;
   * adaptive, as a pipe's: os/spin.ts). Never longer than its timeout. A peer on another
   * CPU that posts within it saves both sides a wake-up.
   */
  spinMicros?: number;
}

export interface CreateSemaphoreOptions extends CreateModeOptions, SemaphoreOptions {
  /** Initial value (default 0). */
  value?: number;
}

export interface OpenSemaphoreOptions extends OwnerCheckOptions, WaitToOpenOptions, SemaphoreOptions {}

/** A permit from `acquire()`: `release()` posts it back, exactly once (true the first time, false and nothing posted after). */
export type Permit = Releasable;


/** The file a named semaphore lives in. */
export function semaphorePath(name: string): string {
  return `${SEM_DIR}/sem.${validate.posixName(name, 251).slice(1)}`;
}

function corruptFlags(name: string): IpcError {
  return new IpcError('ERR_IPCKIT_CORRUPT', `semaphore ${name} is corrupt: its futex flags are not those of a process-shared semaphore (a peer overwrote them); remove it and create it again`, {
    path: name,
    errno: EUCLEAN,
    systemCode: 'EUCLEAN',
  });
}

/** How often a wait looks again where a post cannot wake it (a sem_t that is not glibc's), ms. */
const POLL_MS = 5;

export class Semaphore {
  readonly name: string;
  /** The mapping of the sem_t; its handle is what every native sem call takes. */
  readonly #map: Mapping;
  /** The value word a post wakes (where the sem_t is glibc's), to sleep on. */
  readonly #word: FutexWord | undefined;
  readonly #unlinkOnClose: boolean;
  #closed = false;
  #waiters = new WaitQueue<void>('semaphore wait', undefined, () => {
    if (this.#waiters.length === 0) this.#stopWaiting();
  });
  /** Counted among the semaphore's waiters (glibc's sem_t), while ours wait. */
  #registered = false;
  /** The pending futex wait (or poll) for a post: its cancel function. */
  #sleeping: (() => void) | undefined;
  readonly #spinner: SpinBudget;
  /** sem_trywait's result in a spin (#spinTake). */
  #taken = -EAGAIN;
  #spinTake = (): boolean => (this.#taken = native.semTryWait(this.#map.handle)) !== -EAGAIN;

  /** @internal */
  constructor(name: string, fd: number, unlinkOnClose = false, spinMicros = spinOption(undefined)) {
    this.name = name;
    this.#unlinkOnClose = unlinkOnClose;
    this.#spinner = new SpinBudget(spinMicros);
    this.#map = sys(`map semaphore ${name}`, () => Mapping.open(fd, native.SEM_SIZE, true), { path: name });
    if (!native.semIntact(this.#map.handle)) {
      this.#map.release();
      throw corruptFlags(name);
    }
    this.#word = native.SEM_WAKES_WAITERS ? new FutexWord(this.#map, native.SEM_VALUE_OFFSET) : undefined;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * How async waits are made here: 'io_uring' (a futex wait that completes on the event
   * loop, Linux 6.7+) or 'thread' (a waiter thread of the wait back-end).
   */
  get backend(): 'io_uring' | 'thread' {
    return waitBackend();
  }

  /** sem_post: adds one permit (wakes one waiter, in any process). */
  post(): void {
    if (this.#closed) throw closedError(`semaphore ${this.name}`);
    try {
      native.semPost(this.#map.handle);
    } catch (e) {
      if (errnoOf(e) === EUCLEAN) throw this.#error(EUCLEAN, 'sem_post');
      if (errnoOf(e) === EOVERFLOW) {
        throw new IpcError('ERR_IPCKIT_LIMIT', `semaphore ${this.name} is at its maximum value (SEM_VALUE_MAX = ${SEM_VALUE_MAX})`, {
          cause: e,
          path: this.name,
          details: { limit: 'SEM_VALUE_MAX', value: SEM_VALUE_MAX },
        });
      }
      throw toIpcError(e, `post semaphore ${this.name}`, { path: this.name });
    }
  }

  /**
   * Takes a permit, waiting for one. A wait that times out or is aborted took nothing.
   * Concurrent waits of this handle are served in the order they were made.
   */
  wait(options?: WaitOptions): Promise<void> {
    const aborted = checkWaitOptions(options, `wait on semaphore ${this.name}`);
    if (this.#closed) return Promise.reject(closedError(`semaphore ${this.name}`));
    if (aborted) return Promise.reject(aborted);
    if (this.#waiters.length === 0) {
      let r = native.semTryWait(this.#map.handle);
      // None yet: retry for a few µs before sleeping (spinMicros), once what this thread
      // has batched is written (the peer may be waiting for it).
      if (r === -EAGAIN && spinBeforeWait(this.#spinner, this.#spinTake, options)) r = this.#taken;
      if (r === 0) return RESOLVED;
      if (r !== -EAGAIN) return Promise.reject(this.#error(-r, 'sem_trywait'));
    }
    const p = this.#waiters.enqueue(options, undefined);
    this.#serve();
    return p;
  }

  /** Takes a permit if one is there now. False when none is, or when waits of this handle are queued first. */
  tryWait(): boolean {
    if (this.#closed) throw closedError(`semaphore ${this.name}`);
    if (this.#waiters.length > 0) return false;
    const r = native.semTryWait(this.#map.handle);
    if (r === 0) return true;
    if (r === -EAGAIN) return false;
    throw this.#error(-r, 'sem_trywait');
  }

  /** Takes a permit blocking the calling thread (workers, scripts), up to `timeout` ms. */
  waitSync(options: { timeout?: number } = {}): void {
    const ms = validate.timeout(validate.object<{ timeout: unknown }>('options', options).timeout);
    if (this.#closed) throw closedError(`semaphore ${this.name}`);
    const deadline = ms === undefined ? Infinity : performance.now() + ms;
    // In slices (the one blocking wait, src/memory/waits.ts): a worker blocked here can still be terminated between two.
    for (;;) {
      const r = native.semWaitSync(this.#map.handle, Math.max(0, Math.min(SLICE_MS, deadline - performance.now())));
      if (r === 0) return;
      if (r !== -ETIMEDOUT) throw this.#error(-r, 'sem_clockwait');
      if (performance.now() >= deadline) throw new IpcError('ERR_IPCKIT_TIMEOUT', `wait on semaphore ${this.name} timed out after ${ms} ms`, { path: this.name, details: { timeout: ms } });
    }
  }

  /** The current value (sem_getvalue): permits available now. */
  value(): number {
    if (this.#closed) throw closedError(`semaphore ${this.name}`);
    return sys(`read semaphore ${this.name}`, () => native.semValue(this.#map.handle), { path: this.name });
  }

  /** Waits for a permit and returns it as a guard: `using permit = await sem.acquire()`. */
  acquire(options?: WaitOptions): Promise<Permit> {
    const waiting = this.wait(options); // checks the options at once
    return waiting.then(() =>
      releasable(() => {
        this.post();
        return true;
      }, {}),
    );
  }

  /**
   * The permission record every IPC object reports, from an lstat of the semaphore's file
   * (the handle keeps no descriptor): no key, creator or sequence number, which POSIX
   * objects do not have. ERR_IPCKIT_NOT_FOUND once the name was removed.
   */
  perm(): PosixIpcPerm {
    if (this.#closed) throw closedError(`semaphore ${this.name}`);
    const path = semaphorePath(this.name);
    return posixPerm('semaphore', this.name, sys(`lstat semaphore ${this.name}`, () => native.lstat(path), { path: this.name }));
  }

  /** Removes the name (open handles keep working). Idempotent: false if it was gone. */
  unlink(): boolean {
    return unlinkSemaphore(this.name);
  }

  /** Releases this handle: pending waits reject with ERR_IPCKIT_CLOSED (taking nothing). Idempotent. */
  async close(): Promise<void> {
    this.#release();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#release();
  }

  #release(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiters.rejectAll(() => closedError(`semaphore ${this.name}`));
    this.#stopWaiting();
    this.#word?.close();
    this.#map.release();
    if (this.#unlinkOnClose) unlinkSemaphore(this.name);
  }

  #error(errno: number, syscall: string): IpcError {
    if (errno === EINVAL) return new IpcError('ERR_IPCKIT_CORRUPT', `semaphore ${this.name} does not hold a valid semaphore (${syscall}: EINVAL)`, { path: this.name, errno, syscall, systemCode: 'EINVAL' });
    if (errno === EUCLEAN) return corruptFlags(this.name);
    return errnoError(errno, syscall, `semaphore ${this.name}`, { path: this.name });
  }

  /**
   * Serves the waiting wait() calls: takes the permits there are (for as many waiters as
   * there are), then sleeps until a post. Counted as a waiter before it looks, so that a
   * post between the look and the sleep still wakes it.
   */
  #serve(): void {
    while (!this.#closed && this.#waiters.length > 0) {
      const wanted = this.#waiters.length;
      // Joins the waiters before the first look; leaves them when this look serves everyone.
      const n = native.semTake(this.#map.handle, wanted, this.#registered ? -1 : +1);
      if (n < 0) {
        this.#waiters.rejectAll(this.#error(-n, 'sem_wait'));
        break;
      }
      this.#registered = !this.#registered || n < wanted;
      for (let i = 0; i < n; i++) {
        // A waiter that left meanwhile does not get it: the permit goes back.
        if (!this.#waiters.resolveNext(undefined)) native.semPost(this.#map.handle);
      }
      if (this.#waiters.length === 0) break;
      if (!this.#registered) continue; // served all it asked for, yet more came: join again
      if (this.#sleeping !== undefined) return;
      if (this.#word === undefined) {
        const t = setTimeout(() => {
          this.#sleeping = undefined;
          this.#serve();
        }, POLL_MS);
        this.#sleeping = () => clearTimeout(t);
        return;
      }
      this.#sleeping = this.#word.wait(0, true, (r) => {
        this.#sleeping = undefined;
        if (r < 0) this.#waiters.rejectAll(errnoError(-r, 'futex', `wait on semaphore ${this.name}`, { path: this.name }));
        else this.#serve();
      });
      return;
    }
    this.#stopWaiting();
  }

  /** Nobody here waits any more: end the sleep (a wake that reaches it goes on) and leave the waiters. */
  #stopWaiting(): void {
    const cancel = this.#sleeping;
    this.#sleeping = undefined;
    cancel?.();
    if (this.#registered) {
      this.#registered = false;
      native.semWaiters(this.#map.handle, -1);
    }
  }
}

/** Opens the semaphore file without following links and checks it before any use. */
function openFile(name: string, path: string, check: (st: NativeStat, fd: number) => void, unlinkOnClose: boolean, spinMicros: number): Semaphore {
  let fd: number;
  try {
    fd = native.open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0);
  } catch (e) {
    const errno = errnoOf(e);
    if (errno === ENOENT) throw new IpcError('ERR_IPCKIT_NOT_FOUND', `no semaphore ${name}`, { cause: e, path: name, errno, syscall: 'open', systemCode: 'ENOENT' });
    if (errno === ELOOP) throw new IpcError('ERR_IPCKIT_PERMISSION', `refusing semaphore ${name}: ${path} is a symlink`, { cause: e, path: name, errno, syscall: 'open', systemCode: 'ELOOP' });
    throw toIpcError(e, `open semaphore ${name}`, { path: name });
  }
  try {
    const st = sys(`fstat semaphore ${name}`, () => native.fstat(fd), { path: name });
    if ((st.mode & S_IFMT) !== S_IFREG) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `${path} is not a semaphore (not a regular file)`, { path: name });
    check(st, fd);
    if (st.size < native.SEM_SIZE) throw new IpcError('ERR_IPCKIT_CORRUPT', `${path} is ${st.size} bytes, too small for a semaphore (${native.SEM_SIZE})`, { path: name, details: { size: st.size } });
    return new Semaphore(name, fd, unlinkOnClose, spinMicros);
  } finally {
    native.close(fd); // the mapping keeps what it needs
  }
}

/** Creates a named semaphore (exclusively: an existing name is ERR_IPCKIT_EXISTS) and opens it. */
export function createSemaphore(name: string, options: CreateSemaphoreOptions = {}): Semaphore {
  const sname = validate.posixName(name, 251);
  validate.object('options', options);
  const { mode, group } = createMode(options);
  const value = validate.optionalInteger('value', options.value, 0, SEM_VALUE_MAX) ?? 0;
  const unlinkOnClose = unlinkOnCloseOption(options.unlinkOnClose);
  const spinMicros = spinOption(options.spinMicros);
  const path = semaphorePath(sname);
  try {
    // Owner-only until the exact mode is set through the fd below.
    native.semCreate(sname, mode & 0o700, value);
  } catch (e) {
    if (errnoOf(e) === EEXIST) throw new IpcError('ERR_IPCKIT_EXISTS', `semaphore ${sname} already exists (open it with openSemaphore, or remove it first)`, { cause: e, path: sname, errno: EEXIST, syscall: 'sem_open', systemCode: 'EEXIST' });
    throw toIpcError(e, `create semaphore ${sname}`, { path: sname });
  }
  try {
    return openFile(sname, path, (st, fd) => {
      // We made it a moment ago with O_EXCL (and /dev/shm is sticky): it must be ours.
      checkOwner(st, `semaphore ${sname}`, { mode: 0o700 });
      if (group !== undefined) sys(`set the group of semaphore ${sname}`, () => native.fchown(fd, -1, group), { path: sname });
      sys(`set the mode of semaphore ${sname}`, () => native.fchmod(fd, mode), { path: sname });
    }, unlinkOnClose, spinMicros);
  } catch (e) {
    try {
      native.semUnlink(sname);
    } catch {
      /* it was ours; nothing more to do */
    }
    throw e;
  }
}

/**
 * Opens an existing named semaphore. Its owner and mode are checked (fstat) before its
 * value is ever used: ERR_IPCKIT_PERMISSION if another user made it or it is wider than
 * allowed, unless `{ anyOwner: true }` or `{ owner, mode }` say that is expected. With
 * `{ wait: true }` it waits for the name to exist (within `timeout`, and `signal`).
 */
export function openSemaphore(name: string, options: OpenSemaphoreOptions = {}): Promise<Semaphore> {
  const open = checkOpen(name, options);
  return openWhenThere(`open semaphore ${validate.posixName(name, 251)}`, options, open);
}

/** openSemaphore for workers and scripts: the Semaphore itself, at once (it never waits for the name). */
export function openSemaphoreSync(name: string, options: OpenSemaphoreOptions = {}): Semaphore {
  return checkOpen(name, options)();
}

/** Checks an open's arguments (they throw at once) and returns the open itself. */
function checkOpen(name: string, options: OpenSemaphoreOptions): () => Semaphore {
  const sname = validate.posixName(name, 251);
  validate.object('options', options);
  ownerOptions(options);
  checkWaitToOpen(options);
  const unlinkOnClose = unlinkOnCloseOption(options.unlinkOnClose);
  const spinMicros = spinOption(options.spinMicros);
  return () => openFile(sname, semaphorePath(sname), (st) => checkOwner(st, `semaphore ${sname}`, options), unlinkOnClose, spinMicros);
}

function unlinkOnCloseOption(value: unknown): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw invalidArgument(`unlinkOnClose must be a boolean, got ${validate.describe(value)}`);
  return value;
}

/** Removes a semaphore's name. Idempotent: false if there was none. */
export function unlinkSemaphore(name: string): boolean {
  const sname = validate.posixName(name, 251);
  try {
    native.semUnlink(sname);
    return true;
  } catch (e) {
    if (errnoOf(e) === ENOENT) return false;
    throw toIpcError(e, `remove semaphore ${sname}`, { path: sname });
  }
}
