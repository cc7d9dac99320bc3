/**
 * The work queue's contract, whatever carries it: shared memory on one host
 * (src/mechanisms/workqueue) or a NATS JetStream stream across hosts
 * (src/mechanisms/nats). Code written against it moves from one to the other by
 * changing the address it opens.
 *
 * The promises:
 * 1. At least once: a job taken and not acknowledged is delivered again when its consumer
 *    dies, closes without acknowledging, or calls `retry`; `deliveries` counts the attempts.
 * 2. Nothing acknowledged is ever delivered again.
 * 3. Backpressure: `put` waits while the queue is full; it never drops a job.
 * 4. Every wait takes `timeout` and `signal`, as everywhere in ipckit.
 * 5. `join()` resolves once every job put so far has been acknowledged (Python's
 *    JoinableQueue: `ack` is its `task_done`).
 */
import type { WaitOptions } from './channel.js';

/** A job taken from a work queue. Acknowledge it once handled, or hand it back with `retry`. */
export interface Job<T> {
  /** Unique per put; a redelivered job keeps it. */
  readonly id: number;
  readonly data: T;
  /** How many times it was taken, this time included (1 the first time). */
  readonly deliveries: number;
  /** True if it was taken before and not acknowledged then. */
  readonly redelivered: boolean;
}

/** What a work queue holds and has done, as far as its backend can tell. */
export interface WorkQueueStats {
  /** Jobs waiting to be taken. */
  ready: number;
  /** Jobs taken and not yet acknowledged. */
  inFlight: number;
  /** Most jobs it holds at once (ready plus in flight), or undefined when unbounded. */
  capacity: number | undefined;
  /** Since creation: jobs put, acknowledged, delivered again, and given up (dead letters). */
  put: number;
  done: number;
  redelivered: number;
  deadLettered: number;
}

export interface WorkQueueContract<T> extends AsyncIterable<Job<T>>, AsyncDisposable {
  /** Adds a job; resolves with its id once it is in the queue (waits while the queue is full). */
  put(item: T, options?: WaitOptions): Promise<number>;
  /** Adds jobs in order; on failure `details.ids` holds the ids of those that went in. */
  putMany(items: Iterable<T>, options?: WaitOptions): Promise<number[]>;
  /** Takes the next job, waiting for one. */
  take(options?: WaitOptions): Promise<Job<T>>;
  /** Takes up to `max` jobs: at least one, waiting for it, then what is there now. */
  takeMany(max: number, options?: WaitOptions): Promise<Array<Job<T>>>;
  /** The job is handled: it is never delivered again. */
  ack(job: Job<T> | ReadonlyArray<Job<T>>): void;
  /** Hands the job back to be delivered again (after `delay` ms where the backend can wait). */
  retry(job: Job<T>, options?: { delay?: number }): void;
  /** Resolves once every job put so far is acknowledged. */
  join(options?: WaitOptions): Promise<void>;
  stats(): Promise<WorkQueueStats>;
  /** Lets go of the queue; jobs this handle took and did not acknowledge are delivered again. */
  close(): Promise<void>;
}
