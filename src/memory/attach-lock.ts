/**
 * The attach lock of an ipckit object (header words 8-9): serialises joining, that is
 * taking a row of the participant table (participants.ts); leaving is one store to our own
 * row and takes no lock, so a live process squatting on the lock cannot keep a closing
 * endpoint (RingCore.leave). It is held for a few
 * stores, always within one synchronous stretch of JavaScript; waiting for it is async
 * (`lock`) or blocking in slices (`lockSync`), with a timeout and an AbortSignal.
 *
 * The lock word is one u64, taken and released by compare-and-swap: 0 when free, else the
 * holder thread's id (low half) and that thread's start time modulo 2^32 (high half). So
 * the holder is known the moment it has the lock, with no window in which a half-written
 * owner could look dead, and neither a worker thread that was terminated nor a reused
 * thread id looks alive forever.
 *
 * A live holder is NEVER robbed, however long it keeps the lock (a process stopped with
 * SIGSTOP, a debugger): a waiter gives up with ERR_IPCKIT_TIMEOUT. A dead holder's lock
 * is taken over (one compare-and-swap from the dead value, so two waiters cannot both
 * take it); what it was doing under the lock is undone by the kind's own rules (a row it
 * half-claimed belongs to a dead thread, so the next attacher takes it again).
 */
import { IpcError } from '../core/errors.js';
import { fault, FAULTS } from '../os/faults.js';
import { isThreadAliveLow32, selfThreadId, selfThreadStartTime } from '../os/liveness.js';
import { H_ATTACH_LOCK } from './header.js';
import type { Memory } from './memory.js';
import { untilReady, untilReadySync, type Attempt } from './waits.js';

/** This thread's lock value. */
const ME = BigInt(selfThreadId) | (BigInt(selfThreadStartTime % 2 ** 32) << 32n);
const LOW = 0xffffffffn;

export interface LockWait {
  /** Absolute time (performance.now()) after which the wait fails with ERR_IPCKIT_TIMEOUT. */
  deadline: number;
  signal?: AbortSignal | undefined;
}

export class AttachLock {
  constructor(
    readonly mem: Memory,
    /** The object, for messages: "ring /jobs". */
    readonly what: string,
  ) {}

  /** The holder now: 0 when free. */
  holder(): { tid: number; start32: number } | undefined {
    const v = this.mem.load64(H_ATTACH_LOCK);
    return v === 0n ? undefined : { tid: Number(v & LOW), start32: Number(v >> 32n) };
  }

  /** One try: taken (also from a dead holder), or the holder's value to sleep on. */
  #attempt(): Attempt<void> {
    const mem = this.mem;
    for (;;) {
      const v = mem.compareExchange64(H_ATTACH_LOCK, 0n, ME);
      if (v === 0n) return { done: undefined };
      const tid = Number(v & LOW);
      if (v === ME) {
        // Held by this very thread: only a lock()/lockSync() caller that never unlocked
        // (the sections of with()/withSync() cannot leave it held). It is ours to take again.
        return { done: undefined };
      }
      if (isThreadAliveLow32(tid, Number(v >> 32n))) return { sleepOn: { mapping: mem.mapping, byteOffset: H_ATTACH_LOCK * 4, seq: tid } };
      // Its holder is dead: take it over, unless someone else was faster.
      if (mem.compareExchange64(H_ATTACH_LOCK, v, ME) === v) return { done: undefined };
    }
  }

  #timedOut(started: number): IpcError {
    const h = this.holder();
    const ms = Math.round(performance.now() - started);
    return new IpcError(
      'ERR_IPCKIT_TIMEOUT',
      `${this.what}: thread ${h?.tid ?? '?'} has held the attach lock for at least ${ms} ms (stopped or hung?); not taking it from a live holder`,
      { details: { holder: h?.tid, timeout: ms } },
    );
  }

  /** Waits for the lock on the event loop (prefer with(): it releases the lock for you). */
  lock(wait: LockWait): Promise<void> {
    const started = performance.now();
    return untilReady(`attach to ${this.what}`, () => this.#attempt(), { deadline: wait.deadline, signal: wait.signal, onTimeout: () => this.#timedOut(started) });
  }

  /** Waits for the lock blocking this thread (in slices). */
  lockSync(wait: LockWait): void {
    const started = performance.now();
    untilReadySync(() => this.#attempt(), { deadline: wait.deadline, signal: wait.signal, onTimeout: () => this.#timedOut(started) });
  }

  /** Releases the lock (if this thread holds it) and wakes its waiters. */
  unlock(): void {
    if (this.mem.compareExchange64(H_ATTACH_LOCK, ME, 0n) === ME) this.mem.wake(H_ATTACH_LOCK, -1);
  }

  /**
   * Runs `fn` holding the lock, waiting for it on the event loop. `fn` runs in the same
   * synchronous stretch as the compare-and-swap that took the lock, and the lock is
   * released before anything else of this thread can run.
   */
  with<R>(wait: LockWait, fn: () => R): Promise<R> {
    const started = performance.now();
    return untilReady(`attach to ${this.what}`, () => this.#holding(fn), { deadline: wait.deadline, signal: wait.signal, onTimeout: () => this.#timedOut(started) });
  }

  /** Runs `fn` holding the lock, waiting for it blocking this thread (in slices). */
  withSync<R>(wait: LockWait, fn: () => R): R {
    const started = performance.now();
    return untilReadySync(() => this.#holding(fn), { deadline: wait.deadline, signal: wait.signal, onTimeout: () => this.#timedOut(started) });
  }

  /** One try; if it takes the lock, `fn` runs and the lock is released at once. */
  #holding<R>(fn: () => R): Attempt<R> {
    const a = this.#attempt();
    if (!('done' in a)) return a;
    try {
      if (FAULTS) fault('attach:locked');
      return { done: fn() };
    } finally {
      this.unlock();
    }
  }
}
