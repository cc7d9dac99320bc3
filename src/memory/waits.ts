/**
 * Every wait on a word of shared memory goes through here (design.md section 6, "Waits"):
 * the TypeScript half of the wait back-end in native/futex.cc, one per JS thread.
 *
 * - One-shot waits (`FutexWord`, registered once): end when the word is woken or differs. `passOn` is for a
 *   waiter of a lock or a semaphore, whose peers wake ONE waiter: a cancelled wait that
 *   the wake reached anyway passes it to the next waiter.
 * - Watches (`watchWord`): armed again and again on one word, for channels that sleep and
 *   wake in turn (the ring, the work queue: their peers wake everyone).
 * - Exit actions (`atThreadExit`, `closeAtThreadExit`): what a worker thread's handles
 *   must undo if the thread ends without closing them (terminate() runs no JavaScript).
 * - The blocking wait of the `…Sync` forms (`blockingWait`): futex waits of at most
 *   SLICE_MS, so that a worker blocked in one can still be terminated between two.
 * - `untilReady` / `untilReadySync`: the two drivers of a wait for a condition on a word
 *   (a creator's magic word, a free attach lock): the same `attempt` function, run again
 *   whenever the word moves or a slice passes, until it is done, the deadline passes or
 *   the signal aborts.
 */
import { isMainThread } from 'node:worker_threads';
import { cancellableWait } from '../core/channel.js';
import { abortedError, IpcError, toIpcError } from '../core/errors.js';
import type { Mapping } from '../os/mapping.js';
import { native, type FutexResult, type NativeFutexWaiters } from '../os/native.js';
import * as validate from '../core/validate.js';

/** Longest single sleep of a wait (ms): between two, liveness and sizes are checked, and a worker can be terminated. */
export const SLICE_MS = 50;

/** Results of a futex wait: woken, the word differed at the start, a slice (or timeout) passed, cancelled; negative: -errno. */
export const WOKEN = 0;
export const NOT_EQUAL = 1;
export const TIMED_OUT = 2;

let waiters: NativeFutexWaiters | undefined;
/** Callbacks of one-shot waits (removed when they report) and watches (kept until closed), by id. */
const callbacks = new Map<number, (result: FutexResult) => void>();
const oneShot = new Set<number>();

function futexWaiters(): NativeFutexWaiters {
  if (!waiters) {
    waiters = new native.FutexWaiters((id, result) => {
      const cb = callbacks.get(id);
      if (!cb) return;
      if (oneShot.delete(id)) callbacks.delete(id);
      cb(result);
    });
  }
  return waiters;
}

/** How asynchronous futex waits sleep in this thread: 'io_uring' (the completion wakes the event loop) or 'thread' (a waiter thread, then the event loop). */
export function waitBackend(): 'io_uring' | 'thread' {
  return futexWaiters().usesUring() ? 'io_uring' : 'thread';
}

/**
 * Starts an asynchronous wait or a watch. On the thread path a wait needs a thread of its
 * own, and there are at most 256: past that the native EAGAIN becomes ERR_IPCKIT_LIMIT.
 */
function startWait(what: string, start: () => number): number {
  try {
    return start();
  } catch (e) {
    const err = toIpcError(e, what);
    if (err.systemCode === 'EAGAIN' && err.syscall?.startsWith('pthread_create')) {
      throw new IpcError('ERR_IPCKIT_LIMIT', `${what}: too many asynchronous futex waits at once in this thread (at most 256 on the thread path)`, { cause: err, errno: err.errno, syscall: 'pthread_create', systemCode: 'EAGAIN' });
    }
    throw err;
  }
}

/**
 * A word that one-shot waits are made on, registered with the back-end once (a mutex's
 * futex word, a pool's release counter, a semaphore's value). `close()` when done with it.
 */
export class FutexWord {
  readonly #waiters = futexWaiters();
  readonly #id: number;
  #closed = false;

  constructor(mapping: Mapping, byteOffset: number) {
    this.#id = this.#waiters.word(mapping.handle, byteOffset);
  }

  /**
   * A one-shot wait while the word equals `expected`; `done` runs on the event loop with
   * WOKEN, NOT_EQUAL or -errno. Returns the cancel function (after which `done` never runs).
   */
  wait(expected: number, passOn: boolean, done: (result: FutexResult) => void): () => void {
    const w = this.#waiters;
    const id = startWait('wait on a futex word', () => w.wait(this.#id, expected, passOn));
    callbacks.set(id, done);
    oneShot.add(id);
    return () => {
      oneShot.delete(id);
      if (callbacks.delete(id)) w.cancel(id);
    };
  }

  /** Idempotent; waits in progress go on. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiters.forget(this.#id);
  }
}

/** A watch on one word (native/futex.cc): arm(seq) reports once, through the callback, when the word is no longer seq or after a slice. */
export interface WordWatch {
  arm(seq: number): void;
  disarm(): void;
  close(): void;
}

export function watchWord(mapping: Mapping, byteOffset: number, sliceMs: number, report: (result: FutexResult) => void): WordWatch {
  const w = futexWaiters();
  const id = startWait('watch a futex word', () => w.watch(mapping.handle, byteOffset, sliceMs));
  callbacks.set(id, report);
  let closed = false;
  return {
    arm: (seq) => w.arm(id, seq),
    disarm: () => w.disarm(id),
    close: () => {
      if (closed) return;
      closed = true;
      callbacks.delete(id);
      w.unwatch(id);
    },
  };
}

/**
 * In a worker thread: if the thread ends without JavaScript undoing it, the word at
 * `byteOffset` goes from `expected` to `replacement`, and the word at `signalByteOffset`
 * is bumped and woken. Returns the function that withdraws it. In the main thread nothing
 * is needed: the process's exit is what peers see.
 */
export function atThreadExit(mapping: Mapping, byteOffset: number, expected: number, replacement: number, signalByteOffset: number): () => void {
  if (isMainThread) return () => {};
  const w = futexWaiters();
  const id = w.atExitSwap(mapping.handle, byteOffset, expected, replacement, signalByteOffset);
  return () => w.cancelAtExit(id);
}

/** In a worker thread: `fd` is closed if the thread ends first (a terminated worker runs no close()). */
export function closeAtThreadExit(fd: number): () => void {
  if (isMainThread) return () => {};
  const w = futexWaiters();
  const id = w.atExitClose(fd);
  return () => w.cancelAtExit(id);
}

/**
 * The blocking wait: one futex wait of at most SLICE_MS (and at most `timeoutMs`) while
 * the word equals `expected`. WOKEN, NOT_EQUAL, TIMED_OUT or -errno. Callers loop.
 */
export function blockingWait(mapping: Mapping, byteOffset: number, expected: number, timeoutMs: number = SLICE_MS): FutexResult {
  return native.futexWait(mapping.handle, byteOffset, expected, Math.max(0, Math.min(SLICE_MS, timeoutMs)));
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
/** Blocks this thread for `ms` without spinning (for …Sync forms waiting on something that has no word to sleep on). */
export function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, Math.max(0, ms));
}

/** What one attempt at a wait found: done, or what to sleep on before the next attempt. */
export type Attempt<R> =
  | { done: R }
  /** Sleep until the word at `byteOffset` of `mapping` is no longer `seq` (or a slice passes). */
  | { sleepOn: { mapping: Mapping; byteOffset: number; seq: number } }
  /** Nothing to sleep on: try again after `ms`. */
  | { retryAfter: number };

export interface UntilOptions {
  /** Absolute time (performance.now()) after which `onTimeout` ends the wait; undefined: none. */
  deadline: number | undefined;
  signal?: AbortSignal | undefined;
  /** The error when the deadline passes (a TIMEOUT, or something more precise the caller knows). */
  onTimeout: () => IpcError;
}

/**
 * The event-loop driver: runs `attempt(deep)` until it is done. `deep` is true after a
 * slice without a change (time to check a peer's liveness). Nothing blocks the loop.
 */
export function untilReady<R>(what: string, attempt: (deep: boolean) => Attempt<R>, options: UntilOptions): Promise<R> {
  return cancellableWait<R>(what, options.signal === undefined ? undefined : { signal: options.signal }, (resolve, reject) => {
    let watch: { mapping: Mapping; byteOffset: number; w: WordWatch } | undefined;
    let timer: NodeJS.Timeout | undefined;
    let ended = false;
    const stop = (): void => {
      ended = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      watch?.w.close();
      watch = undefined;
    };
    const step = (deep: boolean): void => {
      if (ended) return;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      let a: Attempt<R>;
      try {
        a = attempt(deep);
      } catch (e) {
        stop();
        reject(e);
        return;
      }
      if ('done' in a) {
        stop();
        resolve(a.done);
        return;
      }
      const left = options.deadline === undefined ? Infinity : options.deadline - performance.now();
      if (left <= 0) {
        stop();
        reject(options.onTimeout());
        return;
      }
      if ('retryAfter' in a) {
        timer = setTimeout(() => step(true), Math.min(a.retryAfter, left));
        return;
      }
      const { mapping, byteOffset, seq } = a.sleepOn;
      if (watch !== undefined && (watch.mapping !== mapping || watch.byteOffset !== byteOffset)) {
        watch.w.close();
        watch = undefined;
      }
      if (watch === undefined) {
        try {
          watch = { mapping, byteOffset, w: watchWord(mapping, byteOffset, SLICE_MS, (res) => step(res === TIMED_OUT || res < 0)) };
        } catch (e) {
          stop();
          reject(e);
          return;
        }
      }
      watch.w.arm(seq);
      // The deadline may come before the next slice.
      if (left < SLICE_MS) timer = setTimeout(() => step(true), left);
    };
    step(false);
    return stop;
  });
}

/** The blocking driver of the same attempts, for …Sync forms (workers and scripts). */
export function untilReadySync<R>(attempt: (deep: boolean) => Attempt<R>, options: UntilOptions): R {
  let deep = false;
  for (;;) {
    if (options.signal?.aborted) throw abortedError('wait', options.signal);
    const a = attempt(deep);
    if ('done' in a) return a.done;
    const left = options.deadline === undefined ? Infinity : options.deadline - performance.now();
    if (left <= 0) throw options.onTimeout();
    if ('retryAfter' in a) {
      sleepSync(Math.min(a.retryAfter, left, SLICE_MS));
      deep = true;
      continue;
    }
    const r = blockingWait(a.sleepOn.mapping, a.sleepOn.byteOffset, a.sleepOn.seq, left);
    deep = r === TIMED_OUT || r < 0;
  }
}

/**
 * Checks the wait options of a method at its entry, synchronously (bad ones throw
 * ERR_IPCKIT_INVALID_ARGUMENT before any fast path); returns the ERR_IPCKIT_ABORTED to
 * reject with when the signal has fired already, so that nothing is taken then.
 */
export function checkWaitOptions(options: unknown, what: string): IpcError | undefined {
  if (options === undefined) return undefined;
  const o = validate.object<{ timeout: unknown; signal: unknown }>('options', options);
  validate.timeout(o.timeout);
  const signal = validate.abortSignal(o.signal);
  return signal?.aborted ? abortedError(what, signal) : undefined;
}
