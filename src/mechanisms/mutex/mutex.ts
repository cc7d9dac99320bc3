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
 *   thread itself: a busy mutex is waited for by a helper thread that only watches the
 *   mutex's futex word until it is free, then the JS thread tries again (native/mutex.cc).
 *   So the owner the kernel records, and whose death it reports, is the JS thread.
 * - Waiting never blocks the event loop nor uses libuv's thread pool; `lockSync` (for
 *   workers and scripts) blocks the calling thread.
 *
 * Layout of the object (shm_open(name), 128 bytes; all fields native-endian):
 *
 *   offset  0  u32 magic          0x4d4b5049 ("IPKM"), written last by the creator
 *   offset  4  u32 version        1
 *   offset  8  u32 mutex_offset   64
 *   offset 12  u32 mutex_size     sizeof(pthread_mutex_t) (40 on x86-64 glibc, 48 on arm64)
 *   offset 16  48 bytes reserved (zero)
 *   offset 64  pthread_mutex_t    robust, process-shared, PTHREAD_MUTEX_NORMAL
 */
import { constants as osConstants } from 'node:os';
import { WaitQueue, type WaitOptions } from '../../core/channel.js';
import { abortedError, closedError, errnoError, invalidArgument, IpcError } from '../../core/errors.js';
import { native } from '../../os/native.js';
import type { CreateModeOptions } from '../../os/permissions.js';
import { corrupt, createSegment, openSegment, unlinkSegment, type OpenSegmentOptions, type Segment } from '../../memory/sync-segment.js';
import * as validate from '../../core/validate.js';

const { EBUSY, EPERM, ETIMEDOUT, EINVAL } = osConstants.errno;
// Linux values (the same on x86-64 and arm64); Node's os.constants does not list them.
const EOWNERDEAD = 130;
const ENOTRECOVERABLE = 131;
/** What native/mutex.cc returns when the mutex's type in shared memory is corrupt. */
const EUCLEAN = 117;

export const MUTEX_MAGIC = 0x4d4b5049;
export const MUTEX_VERSION = 1;
export const MUTEX_OFFSET = 64;
export const MUTEX_SEGMENT_SIZE = 128;
const KIND = 'mutex';

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

export interface CreateMutexOptions extends CreateModeOptions {
  /** Remove the name when this handle closes (default false). */
  unlinkOnClose?: boolean;
}
export interface OpenMutexOptions extends OpenSegmentOptions {
  /** Remove the name when this handle closes (default false). */
  unlinkOnClose?: boolean;
}

/** Mutexes this JS thread holds, by object identity (dev:ino): lockSync must not wait on itself. */
const heldHere = new Set<string>();

function corruptType(name: string): IpcError {
  return corrupt(KIND, name, 'its pthread_mutex_t is not a robust, process-shared mutex (its type field was overwritten); remove it (unlinkMutex) and create it again');
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
  #watching = false;
  #waiters = new WaitQueue<LockResult>('lock');

  /** @internal */
  constructor(segment: Segment, unlinkOnClose = false) {
    this.#segment = segment;
    this.#unlinkOnClose = unlinkOnClose;
    this.#key = `${segment.stat.dev}:${segment.stat.ino}`;
    segment.onWake = () => {
      this.#watching = false;
      // Nobody waits any more: the wake-up we took was meant for another waiter.
      if (this.#waiters.length === 0) this.#segment.map.wake(MUTEX_OFFSET, 1);
      else this.#serve(true);
    };
    this.#waiters.onCancel = () => {
      if (this.#waiters.length === 0 && this.#watching) {
        this.#watching = false;
        this.#segment.map.unwatch();
      }
    };
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

  /** How a busy mutex is waited for: 'io_uring' (futex waits completed on the loop) or 'thread' (a watcher thread). */
  get backend(): 'io_uring' | 'thread' {
    return this.#segment.map.backend();
  }

  /**
   * What the mutex looks like now, without locking it (locking a mutex whose owner died
   * would change its state): 'locked' by someone, 'free', 'owner-died' (the last holder
   * died; the next locker gets ownerDied), or 'unrecoverable'. Already stale when it
   * returns; for diagnostics.
   */
  state(): MutexState {
    if (this.#closed) throw closedError(`mutex ${this.name}`);
    const [word, owner] = this.#segment.map.mutexPeek(MUTEX_OFFSET);
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
    if (this.#closed) return Promise.reject(closedError(`mutex ${this.name}`));
    if (options !== undefined) {
      validate.timeout(options.timeout);
      if (validate.abortSignal(options.signal)?.aborted) return Promise.reject(abortedError(`lock mutex ${this.name}`, options.signal!));
    }
    if (!this.#held && this.#waiters.length === 0) {
      try {
        const r = this.#try(false);
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
    if (this.#closed) throw closedError(`mutex ${this.name}`);
    const ms = validate.timeout(options.timeout);
    if (this.#held || heldHere.has(this.#key)) throw invalidArgument(`lockSync on mutex ${this.name} would wait forever: this thread already holds it`);
    const r = this.#segment.map.mutexLockSync(MUTEX_OFFSET, ms === undefined ? -1 : Math.ceil(ms));
    if (r === -ETIMEDOUT) throw new IpcError('ERR_IPCKIT_TIMEOUT', `lock mutex ${this.name} timed out after ${ms} ms`, { details: { timeout: ms } });
    return this.#taken(r, 'pthread_mutex_lock');
  }

  /**
   * Releases the lock. ERR_IPCKIT_PERMISSION (and nothing changes) if this handle does
   * not hold it. If the lock came with `ownerDied` and `markConsistent()` was not called,
   * this leaves the mutex unrecoverable for everyone.
   */
  unlock(): void {
    if (this.#closed) throw closedError(`mutex ${this.name}`);
    if (!this.#held) throw new IpcError('ERR_IPCKIT_PERMISSION', `mutex ${this.name} is not held by this handle; only the handle that locked it may unlock it`, { path: this.name });
    const r = this.#segment.map.mutexUnlock(MUTEX_OFFSET);
    if (r === -EUCLEAN) throw corruptType(this.name);
    if (r === -EPERM) throw new IpcError('ERR_IPCKIT_PERMISSION', `mutex ${this.name} is not owned by this thread (pthread_mutex_unlock: EPERM)`, { path: this.name, errno: EPERM, syscall: 'pthread_mutex_unlock', systemCode: 'EPERM' });
    if (r < 0) throw errnoError(-r, 'pthread_mutex_unlock', `unlock mutex ${this.name}`, { path: this.name });
    this.#held = false;
    this.#inconsistent = false;
    heldHere.delete(this.#key);
    if (this.#waiters.length > 0) this.#serve(true);
  }

  /**
   * After `{ ownerDied: true }`: declares the protected data repaired, so that unlock()
   * leaves a working mutex. Does nothing when the lock did not come with ownerDied.
   */
  markConsistent(): void {
    if (this.#closed) throw closedError(`mutex ${this.name}`);
    if (!this.#held) throw new IpcError('ERR_IPCKIT_PERMISSION', `mutex ${this.name} is not held by this handle; lock it before markConsistent()`, { path: this.name });
    if (!this.#inconsistent) return;
    const r = this.#segment.map.mutexConsistent(MUTEX_OFFSET);
    if (r === -EUCLEAN) throw corruptType(this.name);
    if (r < 0 && r !== -EINVAL) throw errnoError(-r, 'pthread_mutex_consistent', `mark mutex ${this.name} consistent`, { path: this.name });
    this.#inconsistent = false;
  }

  /**
   * Runs `fn` holding the lock and unlocks afterwards, also when it throws. `fn` gets the
   * lock result: after `ownerDied`, repair and call `markConsistent()` inside `fn`.
   */
  async withLock<R>(fn: (lock: LockResult) => R | Promise<R>, options?: WaitOptions): Promise<R> {
    const r = await this.lock(options);
    try {
      return await fn(r);
    } finally {
      if (this.#held && !this.#closed) this.unlock();
    }
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
      this.#segment.map.mutexUnlock(MUTEX_OFFSET);
      this.#held = false;
      heldHere.delete(this.#key);
    }
    this.#watching = false;
    this.#segment.map.close();
    if (this.#unlinkOnClose) unlinkMutex(this.name);
  }

  /** One trylock on this thread: the result, undefined when busy; throws when unrecoverable. */
  #try(contended: boolean): LockResult | undefined {
    const r = this.#segment.map.mutexTryLock(MUTEX_OFFSET, contended);
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

  #watch(): void {
    if (this.#held || this.#watching || this.#closed) return; // a holder serves the queue at unlock
    this.#watching = true;
    this.#segment.map.watchMutex(MUTEX_OFFSET);
  }
}

function checkHeader(segment: Segment): void {
  const m = segment.map;
  if (m.load32(4) !== MUTEX_VERSION) throw corrupt(KIND, segment.name, `version ${m.load32(4)}, expected ${MUTEX_VERSION}`);
  if (m.load32(8) !== MUTEX_OFFSET) throw corrupt(KIND, segment.name, `mutex offset ${m.load32(8)}, expected ${MUTEX_OFFSET}`);
  if (m.load32(12) !== native.PTHREAD_MUTEX_SIZE) {
    throw new IpcError('ERR_IPCKIT_UNSUPPORTED', `mutex ${segment.name} was made with a pthread_mutex_t of ${m.load32(12)} bytes, this system's is ${native.PTHREAD_MUTEX_SIZE}: it cannot be shared between these ABIs`, { path: segment.name });
  }
  if (!m.mutexValid(MUTEX_OFFSET)) throw corruptType(segment.name);
}

/** Creates a named mutex (exclusively; mode exactly 0600 unless asked), unlocked. */
export function createMutex(name: string, options: CreateMutexOptions = {}): Mutex {
  const mname = validate.posixName(name);
  validate.object('options', options);
  const segment = createSegment(
    KIND,
    mname,
    MUTEX_SEGMENT_SIZE,
    options,
    (map) => {
      map.mutexInit(MUTEX_OFFSET);
      map.store32(4, MUTEX_VERSION);
      map.store32(8, MUTEX_OFFSET);
      map.store32(12, native.PTHREAD_MUTEX_SIZE);
    },
    MUTEX_MAGIC,
  );
  return new Mutex(segment, options.unlinkOnClose === true);
}

/**
 * Opens an existing named mutex, checking its owner and mode (ERR_IPCKIT_PERMISSION for
 * one another user made, unless `{ trustAnyOwner }` or `{ owner, mode }` allow it) and
 * its header (ERR_IPCKIT_CORRUPT).
 */
export async function openMutex(name: string, options: OpenMutexOptions = {}): Promise<Mutex> {
  const mname = validate.posixName(name);
  validate.object('options', options);
  validate.optionalInteger('initTimeout', options.initTimeout, 0, 60_000);
  const segment = await openSegment(KIND, mname, MUTEX_SEGMENT_SIZE, () => MUTEX_SEGMENT_SIZE, MUTEX_MAGIC, options);
  try {
    checkHeader(segment);
  } catch (e) {
    segment.map.close();
    throw e;
  }
  return new Mutex(segment, options.unlinkOnClose === true);
}

/** Removes a mutex's name. Idempotent: false if there was none. */
export function unlinkMutex(name: string): boolean {
  return unlinkSegment(KIND, validate.posixName(name));
}
