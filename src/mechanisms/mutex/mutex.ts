/**
 * A named cross-process mutex that survives a crashed owner: a robust, process-shared
 * pthread mutex (PTHREAD_MUTEX_ROBUST, PTHREAD_PROCESS_SHARED) in a small shared-memory
 * object, so a C program can lock the same mutex (layout below, docs/mutex.md).
 *
 * - If the owner dies while holding it (a process killed, a worker terminated), the next
 *   `lock()` resolves with `{ ownerDied: true }` (the kernel's EOWNERDEAD). The new owner
 *   repairs the data the mutex protects and calls `markConsistent()`; unlocking without
 *   it leaves the mutex unrecoverable, and every later lock fails with
 *   ERR_IPCKIT_OWNER_DIED, as POSIX specifies.
 * - Ownership rule: the lock belongs to the handle that locked it, on the JS thread (main
 *   thread or worker) where that handle lives; only that handle unlocks it, in the same
 *   turn of the event loop or any later one. `unlock()` from any other handle is
 *   ERR_IPCKIT_PERMISSION and changes nothing. Every pthread call is made on the JS
 *   thread itself (native/shm.cc): a busy mutex is only waited for, with a futex wait of
 *   the one wait back-end (src/memory/waits.ts) on the mutex's futex word until it is
 *   free, then the JS thread tries again. So the owner the kernel records, and whose
 *   death it reports, is the JS thread.
 * - Waiting never blocks the event loop nor uses libuv's thread pool; `lockSync` (for
 *   workers and scripts) blocks the calling thread, in slices.
 *
 * Layout of the object (shm_open(name), 192 bytes; docs/mutex.md): the common header of
 * every ipckit object (src/memory/header.ts, magic 'IPKM', no participant table), then
 *
 *   offset  64  u32 mutex_offset   128
 *   offset  68  u32 mutex_size     sizeof(pthread_mutex_t) (40 on x86-64 glibc, 48 on arm64)
 *   offset 128  pthread_mutex_t    robust, process-shared, PTHREAD_MUTEX_NORMAL
 */
import { constants as osConstants } from 'node:os';
import { WaitQueue, type WaitOptions } from '../../core/channel.js';
import { closedError, errnoError, invalidArgument, IpcError } from '../../core/errors.js';
import { native } from '../../os/native.js';
import * as validate from '../../core/validate.js';
import { magicOf } from '../../memory/header.js';
import { adopt, createObject, openObject, openObjectSync, planOpen, unlinkObject, type CreateObjectOptions, type OpenObjectOptions, unlinkOnCloseOption } from '../../memory/object.js';
import type { Segment } from '../../memory/segment.js';
import { checkWaitOptions, waitBackend, SLICE_MS, type FutexWord } from '../../memory/waits.js';
import { SpinBudget, spinOption } from '../../os/spin.js';
import { spinBeforeWait } from '../../os/turn.js';

const { EBUSY, EPERM, ETIMEDOUT, EINVAL } = osConstants.errno;
// Linux values (the same on x86-64 and arm64); Node's os.constants does not list them.
const EOWNERDEAD = 130;
const ENOTRECOVERABLE = 131;
/** What native/mutex.cc returns when the mutex's type in shared memory is corrupt. */
const EUCLEAN = 117;
// mutexUnlock's results besides 0 and -errno (native/robust_mutex.h).
const UNLOCKED_OVERWRITTEN = 1;
const WORD_OVERWRITTEN = 2;

/** 'IPKM': the magic word of a ready mutex object. */
export const MUTEX_MAGIC = magicOf('mutex', true);
export const MUTEX_VERSION = 2;
export const MUTEX_OFFSET = 128;
export const MUTEX_SEGMENT_SIZE = 192;
const W_MUTEX_OFFSET = 16;
const W_MUTEX_SIZE = 17;

/** What `state()` saw: a snapshot, taken without locking. */
export type MutexState = 'free' | 'locked' | 'owner-died' | 'unrecoverable';

// glibc: the robust-futex bits of the lock word, and the magic values of __owner.
const FUTEX_OWNER_DIED = 0x40000000;
const FUTEX_TID_MASK = 0x3fffffff;
const PTHREAD_MUTEX_NOTRECOVERABLE = 0x7fffffff - 1;

export interface LockResult {
  /**
   * The previous owner died while holding the lock. The data it protects may be half
   * updated: repair it, then call `markConsistent()` before `unlock()`.
   */
  ownerDied: boolean;
}

export interface MutexOptions {
  /**
   * How long a `lock()` that finds the mutex busy retries taking it on the event loop
   * before it sleeps, in µs (default 20 where the process may use more than one CPU, else
   * 0; adaptive, as a pipe's: os/spin.ts). Never longer than its timeout. A holder on
   * another CPU that unlocks within it saves both sides a wake-up.
   */
  spinMicros?: number;
}
export type CreateMutexOptions = CreateObjectOptions & MutexOptions;
export type OpenMutexOptions = OpenObjectOptions & MutexOptions;


function corrupt(name: string, what: string): IpcError {
  return new IpcError('ERR_IPCKIT_CORRUPT', `mutex ${name} is corrupt: ${what}`, { path: name });
}

/** Mutexes this JS thread holds, by object identity (dev:ino): lockSync must not wait on itself. */
const heldHere = new Set<string>();

function corruptType(name: string): IpcError {
  return corrupt(name, 'its pthread_mutex_t is not a robust, process-shared mutex (its type field was overwritten); remove it (unlinkMutex) and create it again');
}

function unrecoverable(name: string): IpcError {
  return new IpcError('ERR_IPCKIT_OWNER_DIED', `mutex ${name} is unrecoverable: an owner died and the next owner unlocked it without markConsistent(); remove it (unlinkMutex) and create it again`, {
    path: name,
    errno: ENOTRECOVERABLE,
    syscall: 'pthread_mutex_trylock',
    systemCode: 'ENOTRECOVERABLE',
  });
}

export class Mutex {
  readonly #segment: Segment;
  readonly #key: string;
  readonly #unlinkOnClose: boolean;
  #closed = false;
  #held = false;
  /** Held after the owner died, and not yet marked consistent. */
  #inconsistent = false;
  /** The mutex's futex word, to wait on; and the pending wait's cancel function. */
  readonly #word: FutexWord;
  #watching: (() => void) | undefined;
  #waiters = new WaitQueue<LockResult>('lock', undefined, () => {
    if (this.#waiters.length === 0) this.#stopWatching();
  });

  readonly #spinner: SpinBudget;
  /** What #try gave in a spin (#spinTake). */
  #spun: LockResult | undefined;
  #spinTake = (): boolean => (this.#spun = this.#try(false)) !== undefined;

  /** @internal */
  constructor(segment: Segment, unlinkOnClose = false, spinMicros = spinOption(undefined)) {
    this.#segment = segment;
    this.#unlinkOnClose = unlinkOnClose;
    this.#spinner = new SpinBudget(spinMicros);
    this.#key = `${segment.stat.dev}:${segment.stat.ino}`;
    this.#word = segment.mem.word(MUTEX_OFFSET / 4);
  }

  get name(): string {
    return this.#segment.name;
  }

  /** True while this handle holds the lock. */
  get locked(): boolean {
    return this.#held;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** How a busy mutex is waited for: 'io_uring' (futex waits completed on the loop) or 'thread' (a waiter thread). */
  get backend(): 'io_uring' | 'thread' {
    return waitBackend();
  }

  /**
   * What the mutex looks like now, without locking it (locking a mutex whose owner died
   * would change its state): 'locked' by someone, 'free', 'owner-died' (the last holder
   * died; the next locker gets ownerDied), or 'unrecoverable'. Already stale when it
   * returns; for diagnostics.
   */
  state(): MutexState {
    if (this.#closed) throw closedError(`mutex ${this.name}`);
    const [word, owner] = this.#segment.mapping.mutexPeek(MUTEX_OFFSET);
    if ((word & FUTEX_TID_MASK) !== 0) return 'locked';
    if (word & FUTEX_OWNER_DIED) return 'owner-died';
    if (owner === PTHREAD_MUTEX_NOTRECOVERABLE) return 'unrecoverable';
    return 'free';
  }

  /**
   * Waits for the lock. Resolves with `{ ownerDied }`; rejects with
   * ERR_IPCKIT_OWNER_DIED if the mutex is unrecoverable, ERR_IPCKIT_TIMEOUT or
   * ERR_IPCKIT_ABORTED (having taken nothing). Several lock() calls on one handle are
   * served in order, one holder at a time.
   */
  lock(options?: WaitOptions): Promise<LockResult> {
    const aborted = checkWaitOptions(options, `lock mutex ${this.name}`);
    if (this.#closed) return Promise.reject(closedError(`mutex ${this.name}`));
    if (aborted) return Promise.reject(aborted);
    if (!this.#held && this.#waiters.length === 0) {
      try {
        let r = this.#try(false);
        // Busy: retry for a few µs before sleeping (spinMicros), once what this thread has
        // batched is written (the holder may be waiting for it).
        if (!r && spinBeforeWait(this.#spinner, this.#spinTake, options)) r = this.#spun;
        if (r) return Promise.resolve(r);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    const p = this.#waiters.enqueue(options, undefined);
    this.#watch();
    return p;
  }

  /** Takes the lock if it is free now: `{ ownerDied }`, or undefined when it is busy. */
  tryLock(): LockResult | undefined {
    if (this.#closed) throw closedError(`mutex ${this.name}`);
    if (this.#held || this.#waiters.length > 0) return undefined;
    return this.#try(false);
  }

  /**
   * Waits for the lock blocking the calling thread (for workers and scripts), up to
   * `timeout` ms (ERR_IPCKIT_TIMEOUT).
   */
  lockSync(options: { timeout?: number } = {}): LockResult {
    const ms = validate.timeout(validate.object<{ timeout: unknown }>('options', options).timeout);
    if (this.#closed) throw closedError(`mutex ${this.name}`);
    if (this.#held || heldHere.has(this.#key)) throw invalidArgument(`lockSync on mutex ${this.name} would wait forever: this thread already holds it`);
    const deadline = ms === undefined ? Infinity : performance.now() + ms;
    // In slices (the one blocking wait, src/memory/waits.ts): a worker blocked here can still be terminated between two.
    for (;;) {
      const r = this.#segment.mapping.mutexLockSync(MUTEX_OFFSET, Math.max(0, Math.min(SLICE_MS, deadline - performance.now())));
      if (r !== -ETIMEDOUT) return this.#taken(r, 'pthread_mutex_lock');
      if (performance.now() >= deadline) throw new IpcError('ERR_IPCKIT_TIMEOUT', `lock mutex ${this.name} timed out after ${ms} ms`, { details: { timeout: ms } });
    }
  }

  /**
   * Releases the lock. ERR_IPCKIT_PERMISSION (and nothing changes) if this handle does
   * not hold it. If the lock came with `ownerDied` and `markConsistent()` was not called,
   * this leaves the mutex unrecoverable for everyone.
   */
  unlock(): void {
    if (this.#closed) throw closedError(`mutex ${this.name}`);
    if (!this.#held) throw new IpcError('ERR_IPCKIT_PERMISSION', `mutex ${this.name} is not held by this handle; only the handle that locked it may unlock it`, { path: this.name });
    const r = this.#segment.mapping.mutexUnlock(MUTEX_OFFSET);
    if (r === -EUCLEAN) throw corruptType(this.name);
    if (r === -EPERM) throw new IpcError('ERR_IPCKIT_PERMISSION', `mutex ${this.name} is not owned by this thread (pthread_mutex_unlock: EPERM)`, { path: this.name, errno: EPERM, syscall: 'pthread_mutex_unlock', systemCode: 'EPERM' });
    if (r < 0) throw errnoError(-r, 'pthread_mutex_unlock', `unlock mutex ${this.name}`, { path: this.name });
    this.#held = false;
    this.#inconsistent = false;
    heldHere.delete(this.#key);
    if (this.#waiters.length > 0) this.#serve(true);
    if (r === UNLOCKED_OVERWRITTEN) throw corrupt(this.name, 'another process overwrote its pthread_mutex_t while this handle held it (it was unlocked all the same); remove it (unlinkMutex) and create it again');
    if (r === WORD_OVERWRITTEN) throw corrupt(this.name, 'another process overwrote its lock word while this handle held it, so it names another owner now and was left as found; remove it (unlinkMutex) and create it again');
  }

  /**
   * After `{ ownerDied: true }`: declares the protected data repaired, so that unlock()
   * leaves a working mutex. Does nothing when the lock did not come with ownerDied.
   */
  markConsistent(): void {
    if (this.#closed) throw closedError(`mutex ${this.name}`);
    if (!this.#held) throw new IpcError('ERR_IPCKIT_PERMISSION', `mutex ${this.name} is not held by this handle; lock it before markConsistent()`, { path: this.name });
    if (!this.#inconsistent) return;
    const r = this.#segment.mapping.mutexConsistent(MUTEX_OFFSET);
    if (r === -EUCLEAN) throw corruptType(this.name);
    if (r < 0 && r !== -EINVAL) throw errnoError(-r, 'pthread_mutex_consistent', `mark mutex ${this.name} consistent`, { path: this.name });
    this.#inconsistent = false;
  }

  /**
   * Runs `fn` holding the lock and unlocks afterwards, also when it throws. `fn` gets the
   * lock result: after `ownerDied`, repair and call `markConsistent()` inside `fn`.
   */
  withLock<R>(fn: (lock: LockResult) => R | Promise<R>, options?: WaitOptions): Promise<R> {
    if (typeof fn !== 'function') throw invalidArgument(`fn must be a function, got ${validate.describe(fn)}`);
    const locking = this.lock(options); // checks the options at once
    return (async () => {
      const r = await locking;
      try {
        return await fn(r);
      } finally {
        if (this.#held && !this.#closed) this.unlock();
      }
    })();
  }

  /**
   * Releases this handle. A lock it still holds is unlocked first (without
   * markConsistent: see unlock). Pending lock() calls reject with ERR_IPCKIT_CLOSED.
   * Idempotent. The mutex itself stays (see unlink).
   */
  async close(): Promise<void> {
    this.#release();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#release();
  }

  /** Removes the name (handles that are open keep working). Idempotent: false if it was gone. */
  unlink(): boolean {
    return unlinkMutex(this.name);
  }

  #release(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiters.rejectAll(() => closedError(`mutex ${this.name}`));
    if (this.#held) {
      // Released, not handed to a waiter of this handle: they were just ended.
      this.#segment.mapping.mutexUnlock(MUTEX_OFFSET);
      this.#held = false;
      heldHere.delete(this.#key);
    }
    this.#stopWatching();
    this.#word.close();
    try {
      if (this.#unlinkOnClose) this.#segment.unlinkIfStillNamed(`mutex ${this.name}`);
    } finally {
      this.#segment.close(true); // its buffer was never handed out: the pages go now
    }
  }

  /** One trylock on this thread: the result, undefined when busy; throws when unrecoverable. */
  #try(contended: boolean): LockResult | undefined {
    const r = this.#segment.mapping.mutexTryLock(MUTEX_OFFSET, contended);
    if (r === -EBUSY) return undefined;
    return this.#taken(r, 'pthread_mutex_trylock');
  }

  #taken(r: number, syscall: string): LockResult {
    if (r === 0 || r === -EOWNERDEAD) {
      this.#held = true;
      this.#inconsistent = r === -EOWNERDEAD;
      heldHere.add(this.#key);
      return { ownerDied: r === -EOWNERDEAD };
    }
    if (r === -ENOTRECOVERABLE) throw unrecoverable(this.name);
    if (r === -EUCLEAN) throw corruptType(this.name);
    throw errnoError(-r, syscall, `lock mutex ${this.name}`, { path: this.name });
  }

  /** Serves waiting lock() calls in order while the mutex can be taken. */
  #serve(contended: boolean): void {
    while (this.#waiters.length > 0 && !this.#held && !this.#closed) {
      let r: LockResult | undefined;
      try {
        r = this.#try(contended);
      } catch (e) {
        this.#waiters.rejectAll(e); // unrecoverable (or broken): every waiter learns it
        return;
      }
      if (r === undefined) {
        this.#watch();
        return;
      }
      this.#waiters.resolveNext(r);
    }
  }

  /**
   * Waits (on the event loop) until the mutex may be free, then serves the queue. The
   * wait stands for a waiter of the mutex: a wake-up that reaches it after nobody here
   * wants it any more goes on to the next waiter (passOn, waits.ts).
   */
  #watch(): void {
    if (this.#held || this.#watching || this.#closed) return; // a holder serves the queue at unlock
    const v = this.#segment.mapping.mutexPrepareWait(MUTEX_OFFSET);
    if (v < 0) {
      // No owner now (it was just unlocked, or its owner died): try again on the next turn.
      const t = setImmediate(() => {
        this.#watching = undefined;
        this.#serve(true);
      });
      this.#watching = () => clearImmediate(t);
      return;
    }
    this.#watching = this.#word.wait(v | 0, true, (r) => {
      this.#watching = undefined;
      if (r < 0) this.#waiters.rejectAll(errnoError(-r, 'futex', `wait for mutex ${this.name}`, { path: this.name }));
      else if (this.#waiters.length === 0) this.#segment.mem.wake(MUTEX_OFFSET / 4, 1); // meant for another waiter
      else this.#serve(true);
    });
  }

  #stopWatching(): void {
    const cancel = this.#watching;
    this.#watching = undefined;
    cancel?.();
  }
}

/** The mutex's own fields, after the common header (untrusted: each read once). */
function checkLayout(segment: Segment): void {
  const mem = segment.mem;
  const name = segment.name;
  if (segment.size < MUTEX_SEGMENT_SIZE) throw corrupt(name, `${segment.size} bytes, fewer than the ${MUTEX_SEGMENT_SIZE} of its layout`);
  const offset = mem.load(W_MUTEX_OFFSET) >>> 0;
  if (offset !== MUTEX_OFFSET) throw corrupt(name, `mutex offset ${offset}, expected ${MUTEX_OFFSET}`);
  const size = mem.load(W_MUTEX_SIZE) >>> 0;
  if (size !== native.PTHREAD_MUTEX_SIZE) {
    throw new IpcError('ERR_IPCKIT_UNSUPPORTED', `mutex ${name} was made with a pthread_mutex_t of ${size} bytes, this system's is ${native.PTHREAD_MUTEX_SIZE}: it cannot be shared between these ABIs`, { path: name });
  }
  if (!segment.mapping.mutexValid(MUTEX_OFFSET)) throw corruptType(name);
}

function mutexOf(segment: Segment, unlinkOnClose: boolean, spinMicros: number): Mutex {
  return adopt(segment, () => {
    checkLayout(segment);
    return new Mutex(segment, unlinkOnClose, spinMicros);
  });
}

/** Creates a named mutex (exclusively; mode exactly 0600 unless asked), unlocked. Never waits. */
export function createMutex(name: string, options: CreateMutexOptions = {}): Mutex {
  const mname = validate.posixName(name);
  validate.object('options', options);
  const unlinkOnClose = unlinkOnCloseOption(options.unlinkOnClose);
  const spinMicros = spinOption(options.spinMicros);
  const segment = createObject(mname, { kind: 'mutex', version: MUTEX_VERSION, size: MUTEX_SEGMENT_SIZE }, options, (seg) => {
    seg.mapping.mutexInit(MUTEX_OFFSET);
    seg.mem.store(W_MUTEX_OFFSET, MUTEX_OFFSET);
    seg.mem.store(W_MUTEX_SIZE, native.PTHREAD_MUTEX_SIZE);
  });
  return new Mutex(segment, unlinkOnClose, spinMicros);
}

/**
 * Opens an existing named mutex, checking its owner and mode (ERR_IPCKIT_PERMISSION for
 * one another user made, unless `{ anyOwner }` or `{ owner, mode }` allow it) and
 * its header (ERR_IPCKIT_CORRUPT; ERR_IPCKIT_WRONG_KIND for another kind of object).
 * Waits (on the event loop, up to `timeout`, default 2 s) for a creator still making it.
 */
export function openMutex(name: string, options: OpenMutexOptions = {}): Promise<Mutex> {
  const mname = validate.posixName(name);
  const plan = planOpen(validate.object('options', options));
  const unlinkOnClose = unlinkOnCloseOption(options.unlinkOnClose);
  const spinMicros = spinOption(options.spinMicros);
  return openObject(mname, 'mutex', MUTEX_VERSION, plan).then((segment) => mutexOf(segment, unlinkOnClose, spinMicros));
}

/** openMutex for workers and scripts: the wait for a creator blocks this thread. */
export function openMutexSync(name: string, options: OpenMutexOptions = {}): Mutex {
  const mname = validate.posixName(name);
  const plan = planOpen(validate.object('options', options));
  const unlinkOnClose = unlinkOnCloseOption(options.unlinkOnClose);
  const spinMicros = spinOption(options.spinMicros);
  return mutexOf(openObjectSync(mname, 'mutex', MUTEX_VERSION, plan), unlinkOnClose, spinMicros);
}

/** Removes a mutex's name, after checking that it is a mutex (ERR_IPCKIT_WRONG_KIND otherwise). Idempotent: false if there was none. */
export function unlinkMutex(name: string): boolean {
  return unlinkObject(validate.posixName(name), 'mutex');
}
