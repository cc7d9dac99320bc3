/**
 * An event-loop wait on a 32-bit word of shared memory, for one endpoint of the ring or
 * one kind of waiter of the work queue: either a retry on a later turn (no sleep), or a
 * futex watch on the word, armed one slice at a time so that a sleeper wakes now and then
 * to check that its peer lives and the segment is intact. `onWake(res)` gets the watch's
 * result: negative an -errno, 2 a slice passed, otherwise the word moved.
 */
import type { Memory } from './memory.js';
import type { WordWatch } from './waits.js';

const now = (): number => performance.now();

export class LoopWait {
  #watch: WordWatch | undefined;
  #armed = false; // the watch will report
  #retry: { timer: NodeJS.Timeout | NodeJS.Immediate; immediate: boolean } | undefined;
  #deepAt = now(); // last liveness and size check of a wait that does not sleep

  constructor(
    readonly mem: Memory,
    readonly word: number,
    readonly sliceMs: number,
    readonly onWake: (res: number) => void,
  ) {}

  /** A watch or a retry is pending: the wait will run again by itself. */
  get pending(): boolean {
    return this.#armed || this.#retry !== undefined;
  }

  /** Sleeps until `word` is no longer `seq` (or a slice passes). */
  sleep(seq: number): void {
    this.#watch ??= this.mem.watch(this.word, this.sliceMs, (res) => {
      this.#armed = false;
      this.onWake(res);
    });
    this.#armed = true;
    this.#watch.arm(seq);
  }

  /** Runs `fn` on the next turn (`delayMs` undefined) or after `delayMs`, without sleeping on the word. */
  retry(fn: () => void, delayMs?: number): void {
    const run = (): void => {
      this.#retry = undefined;
      fn();
    };
    this.#retry = delayMs === undefined ? { timer: setImmediate(run), immediate: true } : { timer: setTimeout(run, delayMs), immediate: false };
  }

  /** A wait that retries without sleeping checks the peer and the segment every slice, as a sleeping one does after each sleep. */
  deepDue(): boolean {
    const t = now();
    if (t - this.#deepAt < this.sliceMs) return false;
    this.#deepAt = t;
    return true;
  }

  /** Ends the pending watch or retry; `closing` also releases the watch for good. */
  stop(closing = false): void {
    if (this.#armed) this.#watch?.disarm();
    this.#armed = false;
    if (closing) {
      this.#watch?.close();
      this.#watch = undefined;
    }
    if (this.#retry !== undefined) {
      if (this.#retry.immediate) clearImmediate(this.#retry.timer as NodeJS.Immediate);
      else clearTimeout(this.#retry.timer as NodeJS.Timeout);
      this.#retry = undefined;
    }
  }
}
