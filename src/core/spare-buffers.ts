/**
 * Working buffers that closed endpoints give back for this thread's next endpoint of the
 * same kind: a program that opens and closes many short-lived readers then reuses a few
 * buffers instead of asking the allocator for a new one each time (the collector frees a
 * closed reader's buffer when it likes, and glibc keeps much of what is freed in a burst:
 * RSS grew 55 MB over 100,000 pipes, scripts/leak-cycles.ts). Users copy messages out of a
 * working buffer, so nothing of a previous endpoint's bytes is ever shown.
 */
export class SpareBuffers {
  readonly #spare: Buffer[] = [];

  /** Keeps up to `max` buffers of exactly `size` bytes. */
  constructor(
    readonly size: number,
    readonly max = 4,
  ) {}

  /** A buffer of `size` bytes: a spare one if `size` is this pool's, else a new one. */
  take(size: number): Buffer {
    // allocUnsafe: a small one is a slice of Node's shared pool (never kept: not this size).
    return (size === this.size && this.#spare.pop()) || Buffer.allocUnsafe(size);
  }

  /** Gives `b` back (kept if it has this pool's size and there is room). */
  give(b: Buffer): void {
    if (b.length === this.size && this.#spare.length < this.max && !this.#spare.includes(b)) this.#spare.push(b);
  }
}
