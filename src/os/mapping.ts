/**
 * A MAP_SHARED mapping (native/shm.cc): of a shm object, a file, a sem_t, or an attached
 * System V segment. The pages stay mapped while the mapping is not released, and while
 * any SharedArrayBuffer made by `buffer()`, any futex wait or exit action on them is alive
 * (and for good while this thread holds a robust mutex in them).
 *
 * Native code holds the mapping in a per-thread table; this object keeps only its handle
 * (a number). Not a native object per mapping: Node 20 runs Node-API finalizers only when
 * the event loop turns, so a loop that opened and closed mappings without turning it kept
 * each closed one's native half until it did (18 MB per 100,000). `release()` frees the
 * native side at once. A mapping dropped without it stays until its thread ends (the
 * table goes with the thread), as the descriptor of a segment dropped without close()
 * does. (Not a FinalizationRegistry: registering each mapping in one made V8 keep the
 * closed work queues' SharedArrayBuffers far longer: RSS +200-350 MB over 100,000 cycles
 * instead of -6.5.)
 */
import { native } from './native.js';

export class Mapping {
  /** The native table's handle: what the native calls that take a mapping are given. */
  readonly handle: number;
  /** Bytes mapped. */
  readonly length: number;

  /** mmap(MAP_SHARED) of the first `length` bytes of `fd` (the fd may be closed afterwards). Throws. */
  static open(fd: number, length: number, writable: boolean): Mapping {
    return new Mapping(native.mapOpen(fd, length, writable));
  }

  /** Takes over a handle made natively (native.shmAttach). */
  static adopt(handle: number): Mapping {
    return new Mapping(handle);
  }

  private constructor(handle: number) {
    this.handle = handle;
    this.length = native.mapLength(handle);
  }

  /** A new SharedArrayBuffer over the whole mapping (throws where external buffers are not allowed, or read-only). */
  buffer(): SharedArrayBuffer {
    return native.mapBuffer(this.handle);
  }

  /** Copies `length` bytes at `offset` into `dst[dstOffset..]`. */
  read(offset: number, dst: Uint8Array, dstOffset: number, length: number): void {
    native.mapRead(this.handle, offset, dst, dstOffset, length);
  }

  /** Copies `src[srcOffset..srcOffset+length]` to `offset`. */
  write(offset: number, src: Uint8Array, srcOffset: number, length: number): void {
    native.mapWrite(this.handle, offset, src, srcOffset, length);
  }

  /** 32-bit atomics (seq_cst) at a 4-byte aligned byte offset, as JS Atomics on an Int32Array. */
  load(byteOffset: number): number {
    return native.mapLoad(this.handle, byteOffset);
  }

  store(byteOffset: number, value: number): number {
    return native.mapStore(this.handle, byteOffset, value);
  }

  /** Returns the old value. */
  compareExchange(byteOffset: number, expected: number, replacement: number): number {
    return native.mapCompareExchange(this.handle, byteOffset, expected, replacement);
  }

  /** Wrapping add; returns the old value. */
  add(byteOffset: number, delta: number): number {
    return native.mapAdd(this.handle, byteOffset, delta);
  }

  /** The unsigned 64-bit word at an 8-byte aligned offset (seq_cst). */
  load64(byteOffset: number): bigint {
    return native.mapLoad64(this.handle, byteOffset);
  }

  /** Compare-and-swap of that word; returns the old value. */
  compareExchange64(byteOffset: number, expected: bigint, replacement: bigint): bigint {
    return native.mapCompareExchange64(this.handle, byteOffset, expected, replacement);
  }

  /** pthread_mutex_init of a robust, process-shared, normal mutex at offset (creator only). */
  mutexInit(byteOffset: number): void {
    native.mutexInit(this.handle, byteOffset);
  }

  /**
   * pthread_mutex_trylock for the calling thread: 0, -EOWNERDEAD (locked, the previous
   * owner died), -EBUSY, -ENOTRECOVERABLE or -errno. `contended`: we waited for it, so
   * mark the word as having waiters (our unlock then wakes the next one).
   */
  mutexTryLock(byteOffset: number, contended?: boolean): number {
    return native.mutexTryLock(this.handle, byteOffset, contended);
  }

  /** Trylock, then a futex wait, until locked or ms (< 0: no limit) ran out, on the calling thread; like mutexTryLock, -ETIMEDOUT. */
  mutexLockSync(byteOffset: number, ms: number): number {
    return native.mutexLockSync(this.handle, byteOffset, ms);
  }

  /**
   * Unlock (glibc's protocol, never following links read from shared memory): 0;
   * MUTEX_UNLOCKED_OVERWRITTEN (unlocked, but another process had overwritten the mutex);
   * MUTEX_WORD_OVERWRITTEN (held here, but its word names another owner now: dropped from
   * this thread's list, word left alone); -EPERM (not the owner; nothing changed);
   * -EUCLEAN (corrupt type and only glibc could unlock it here: nothing done).
   */
  mutexUnlock(byteOffset: number): number {
    return native.mutexUnlock(this.handle, byteOffset);
  }

  /** pthread_mutex_consistent: 0 or -errno (EINVAL: not in the owner-died state). */
  mutexConsistent(byteOffset: number): number {
    return native.mutexConsistent(this.handle, byteOffset);
  }

  /** A snapshot, without locking, of glibc's [futex word, __owner field] of the mutex. */
  mutexPeek(byteOffset: number): [number, number] {
    return native.mutexPeek(this.handle, byteOffset);
  }

  /**
   * Whether the mutex has the type mutexInit gives it (robust, process-shared, normal).
   * The mutex* calls check it first and return -EUCLEAN, calling nothing, when it does
   * not: glibc trusts the type it reads from shared memory (a corrupt one can make it
   * abort the process).
   */
  mutexValid(byteOffset: number): boolean {
    return native.mutexValid(this.handle, byteOffset);
  }

  /** -1 if the mutex has no owner now (try to lock it); else its futex word, with FUTEX_WAITERS set, to wait on. */
  mutexPrepareWait(byteOffset: number): number {
    return native.mutexPrepareWait(this.handle, byteOffset);
  }

  /** msync(MS_SYNC, or MS_ASYNC when `async`). */
  sync(async: boolean): void {
    native.mapSync(this.handle, async);
  }

  /**
   * Drops this handle's reference to the pages, at once (idempotent). `discardPages`: the
   * owner is closed for good and the one SharedArrayBuffer made from this mapping was never
   * handed out: its memory goes back now rather than when that buffer is collected (which
   * then reads zeros), unless a wait, exit action or held robust mutex still uses the pages.
   */
  release(discardPages = false): void {
    native.mapRelease(this.handle, discardPages);
  }
}
