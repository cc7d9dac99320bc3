/**
 * A producer-consumer work queue in one shared memory segment: many producers and many
 * consumers, in any processes and threads, with Python's JoinableQueue semantics (put,
 * take, ack, join) and at-least-once delivery.
 *
 * The files: layout.ts (docs/workqueue.md has it), core.ts (the slots and their
 * recovery after a crash), producer.ts (put), consumer.ts (take, ack, retry, join), and this
 * handle, which opens the queue and takes a row of its participant table.
 *
 * - A slot stays taken until ack(), so `capacityJobs` bounds the items waiting plus the
 *   items in progress; put waits (backpressure) when no slot is free.
 * - Waiting spins briefly, then sleeps on a futex with sleeper flags, as the ring does.
 * - Order: items are taken roughly in the order they were put (exactly, with one producer
 *   and one consumer and no redelivery).
 */
import { DEFAULT_MAX_PENDING_BYTES, type WaitOptions } from '../../core/channel.js';
import { resolveCodec, type Codec, type CodecOption, type MessageOf } from '../../core/codec.js';
import { closedError, invalidArgument, isIpcError, type IpcError } from '../../core/errors.js';
import * as validate from '../../core/validate.js';
import { isNatsAddress } from '../nats/connection.js';
import { openNatsWorkQueue, type NatsWorkQueue, type NatsWorkQueueOptions } from '../nats/workqueue.js';
import { adopt, adoptAsync, createObject, openObject, openObjectSync, planOpen, unlinkObject, unlinkOnCloseOption, type CreateObjectOptions, type OpenObjectOptions, type OpenPlan, type UnlinkOnCloseOptions } from '../../memory/object.js';
import { FREE as ROW_FREE, Participants } from '../../memory/participants.js';
import { Consumer } from './consumer.js';
import { spinOption } from '../../os/spin.js';
import type { WorkQueueContract } from '../../core/work-queue.js';
import { geometryOf, QueueCore, type Job, type WorkQueueInfo } from './core.js';
import { MAX_PARTICIPANTS, plan as planLayout, READY, TABLE_OFFSET, VERSION, W_ITEMS_SIGNAL, writeGeometry } from './layout.js';
import { Producer } from './producer.js';

export type { Job, WorkQueueInfo } from './core.js';

export interface WorkQueueHandleOptions<C extends CodecOption | undefined = undefined> {
  codec?: C;
  /** Spin before sleeping, µs (default 20; 0 on one CPU). */
  spinMicros?: number;
  /**
   * The most bytes of puts waiting for a free slot this handle holds (default 64 MiB); past
   * it `put` rejects with ERR_IPCKIT_LIMIT (a caller that does not await its puts).
   */
  maxPendingBytes?: number;
}

export interface CreateWorkQueueOptions<C extends CodecOption | undefined = undefined> extends CreateObjectOptions, WorkQueueHandleOptions<C> {
  /** Jobs it holds: jobs waiting plus jobs in progress (default 1024). */
  capacityJobs?: number;
  /** Largest item, in bytes after the codec (default 4096). */
  maxMessageBytes?: number;
  /** Handles (threads or processes) that may be attached at once (default 64, at most 4096). */
  maxParticipants?: number;
}

export interface OpenWorkQueueOptions<C extends CodecOption | undefined = undefined> extends OpenObjectOptions, WorkQueueHandleOptions<C> {}


/** A handle on a work queue: produce, consume, or both. */
export class WorkQueue<T> implements WorkQueueContract<T> {
  readonly name: string;
  readonly capacity: number;
  readonly maxMessageBytes: number;
  #core: QueueCore<T>;
  #producer: Producer<T>;
  #consumer: Consumer<T>;
  #leaveAtExit: () => void; // a terminated worker's row must look dead at once
  readonly #unlinkOnClose: boolean;

  /** @internal Use createWorkQueue or openWorkQueue: the core has its row already. */
  constructor(core: QueueCore<T>, spinMicros: number, unlinkOnClose = false, maxPendingBytes: number = DEFAULT_MAX_PENDING_BYTES) {
    this.#core = core;
    this.#unlinkOnClose = unlinkOnClose;
    this.name = core.name;
    this.capacity = core.capacity;
    this.maxMessageBytes = core.maxMessageBytes;
    this.#producer = new Producer(core, maxPendingBytes);
    this.#consumer = new Consumer(core, spinMicros);
    this.#leaveAtExit = core.table.clearAtThreadExit(core.row, W_ITEMS_SIGNAL);
    core.recover(); // the previous holder of our row may have died with slots in hand
  }

  /** Made to outlive its creator (`{ persistent: true }` at create). */
  get persistent(): boolean {
    return this.#core.persistent;
  }

  // --- producing ---

  /** Puts an item; resolves with its id once it is in the queue, or waits for a free slot. */
  put(item: T, options?: WaitOptions): Promise<number> {
    return this.#producer.put(item, options);
  }

  /** Puts the item now and returns its id, or returns undefined when the queue is full. */
  tryPut(item: T): number | undefined {
    return this.#producer.tryPut(item);
  }

  /** Puts every item, in order (one wake-up for the lot); resolves with their ids. */
  putMany(items: Iterable<T>, options?: WaitOptions): Promise<number[]> {
    return this.#producer.putMany(items, options);
  }

  // --- consuming ---

  /** Takes the next job, waiting for one. Rejects with ERR_IPCKIT_CLOSED once the queue is shut down and drained. */
  take(options?: WaitOptions): Promise<Job<T>> {
    return this.#consumer.take(options);
  }

  /** Takes the next job if one is ready, else undefined. */
  tryTake(): Job<T> | undefined {
    return this.#consumer.tryTake();
  }

  /** Waits for at least one job, then takes every ready job up to `max`. */
  takeMany(max = Infinity, options?: WaitOptions): Promise<Array<Job<T>>> {
    return this.#consumer.takeMany(max, options);
  }

  tryTakeMany(max = Infinity): Array<Job<T>> {
    return this.#consumer.tryTakeMany(max);
  }

  /** Blocking take for worker threads and scripts (blocks the event loop on the main thread). */
  takeSync(timeoutMs?: number): Job<T> {
    return this.#consumer.takeSync(timeoutMs);
  }

  /**
   * Acknowledges jobs (Python's task_done): a job, an array of jobs, or, with no argument,
   * the oldest job this handle took and has not acknowledged. It is never delivered again,
   * and its slot becomes free. Throws ERR_IPCKIT_INVALID_ARGUMENT for a job that is not in
   * progress here (acknowledged twice).
   */
  ack(job?: Job<T> | ReadonlyArray<Job<T>>): void {
    this.#consumer.ack(job);
  }

  /**
   * Hands a job back to be delivered again (its `deliveries` grows), at once or after
   * `delay` ms (it stays this handle's until then: a crash meanwhile redelivers it too).
   */
  retry(job: Job<T>, options?: { delay?: number }): void {
    const o = validate.object<{ delay: number }>('options', options);
    this.#consumer.retry(job, validate.timeout(o.delay, 'delay'));
  }

  /** Resolves once every item put so far has been taken and marked done (Python's join). */
  join(options?: WaitOptions): Promise<void> {
    return this.#consumer.join(options);
  }

  /**
   * Shuts the queue down for everyone: puts reject with ERR_IPCKIT_CLOSED from now on;
   * gets go on while items are ready or in progress elsewhere (an item whose consumer dies
   * is delivered again), then reject with ERR_IPCKIT_CLOSED, which ends async iteration.
   */
  shutdown(): void {
    this.#core.usable();
    this.#core.shutdown();
    this.#producer.rejectAll(() => closedError(`work queue ${this.name} (shut down)`));
  }

  get isShutdown(): boolean {
    if (this.#core.closed) throw closedError(`work queue ${this.name}`); // our mapping may be gone (copying path)
    return this.#core.isShutdown();
  }

  /** Counts of the queue now (a scan of the slots). */
  info(): WorkQueueInfo {
    this.#core.usable();
    return this.#core.stats();
  }

  /** The counts of the work-queue contract (the same as info(), as a promise like every backend's). */
  stats(): Promise<WorkQueueInfo> {
    try {
      return Promise.resolve(this.info());
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Jobs this handle took and has not marked done. */
  get inFlight(): number {
    return this.#core.inFlight.size;
  }

  /**
   * Releases this handle: pending gets, puts and joins reject with ERR_IPCKIT_CLOSED; jobs
   * it took and did not finish go back to the queue for another consumer (delivered
   * again); its participant row is freed. The queue itself stays. Idempotent.
   */
  async close(): Promise<void> {
    const core = this.#core;
    if (core.closed) return;
    core.closed = true;
    this.#leaveAtExit();
    this.#producer.stop();
    this.#consumer.stop();
    const closed = (): IpcError => closedError(`work queue ${this.name}`);
    this.#producer.rejectAll(closed);
    this.#consumer.rejectAll(closed);
    try {
      if (!core.segment.isIntact()) return;
      let back = 0;
      for (const t of [...core.inFlight.values()]) {
        try {
          core.release(t, READY);
          back++;
        } catch {
          /* not ours any more (a corrupt queue): nothing to give back */
        }
      }
      if (back > 0) core.redelivered(back);
      core.table.leave(core.row, core.epoch, ROW_FREE); // our own row, one store: no lock
    } finally {
      try {
        if (this.#unlinkOnClose) core.segment.unlinkIfStillNamed(`work queue ${this.name}`);
      } finally {
        core.segment.close(true); // jobs are copied out: its buffer was never handed out
      }
    }
  }

  /** Removes the queue's name (attached handles keep working). False if it was gone. */
  unlink(): boolean {
    return unlinkWorkQueue(this.name);
  }

  /** Yields jobs until the queue is shut down and drained (or this handle closes). Acknowledge each (ack). */
  [Symbol.asyncIterator](): AsyncIterableIterator<Job<T>> {
    const iterator: AsyncIterableIterator<Job<T>> = {
      next: () =>
        this.take().then(
          (value) => ({ value, done: false }),
          (e: unknown) => {
            if (isIpcError(e, 'ERR_IPCKIT_CLOSED')) return { value: undefined, done: true };
            throw e;
          },
        ),
      return: async () => ({ value: undefined, done: true }),
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The handle options, checked at once. */
function handleOptions(options: WorkQueueHandleOptions<CodecOption | undefined> & UnlinkOnCloseOptions): HandleOptions {
  return {
    codec: resolveCodec(options.codec) as Codec<unknown>,
    spin: spinOption(options.spinMicros),
    unlinkOnClose: unlinkOnCloseOption(options.unlinkOnClose),
    maxPending: validate.optionalInteger('maxPendingBytes', options.maxPendingBytes, 0) ?? DEFAULT_MAX_PENDING_BYTES,
  };
}

interface HandleOptions {
  codec: Codec<unknown>;
  spin: number;
  unlinkOnClose: boolean;
  maxPending: number;
}

/** Creates a work queue exclusively (mode 0600 unless asked) and returns a handle on it. Never waits. */
export function createWorkQueue<C extends CodecOption | undefined = undefined>(name: string, options: CreateWorkQueueOptions<C> = {}): WorkQueue<MessageOf<C>> {
  const n = validate.posixName(name);
  validate.object('options', options);
  const capacity = validate.integer('capacityJobs', options.capacityJobs ?? 1024, 1, 1 << 24);
  const max = validate.integer('maxMessageBytes', options.maxMessageBytes ?? 4096, 1, 1 << 30);
  const participants = validate.integer('maxParticipants', options.maxParticipants ?? 64, 1, MAX_PARTICIPANTS);
  const h = handleOptions(options);
  const g = planLayout(capacity, max, participants);
  if (g.size > Number.MAX_SAFE_INTEGER / 2) throw invalidArgument('capacity x maxMessageBytes is too large');
  let epoch = 0;
  const segment = createObject(n, { kind: 'workqueue', version: VERSION, size: g.size, tableOffset: TABLE_OFFSET, tableRows: participants }, options, (seg) => {
    writeGeometry(seg.mem, g);
    // Our row before the queue is published: nobody else can attach yet, no lock needed.
    epoch = new Participants(seg.mem, TABLE_OFFSET, participants).claim(0);
  });
  return adopt(segment, () => {
    const core = new QueueCore<MessageOf<C>>(n, segment, geometryOf(segment, n), h.codec as Codec<MessageOf<C>>);
    core.attached(0, epoch);
    return handleOf(core, h);
  });
}

/** The handle over a core that has its row; a failure gives the row back (the caller closes the segment). */
function handleOf<T>(core: QueueCore<T>, h: HandleOptions): WorkQueue<T> {
  try {
    return new WorkQueue<T>(core, h.spin, h.unlinkOnClose, h.maxPending);
  } catch (e) {
    core.table.leave(core.row, core.epoch, ROW_FREE);
    throw e;
  }
}

function openPlan(name: string, options: OpenWorkQueueOptions<CodecOption | undefined>): { n: string; plan: OpenPlan; h: HandleOptions } {
  const n = validate.posixName(name);
  const o = validate.object<OpenWorkQueueOptions<CodecOption | undefined>>('options', options);
  return { n, plan: planOpen(o), h: handleOptions(o) };
}

/**
 * Opens an existing work queue after checking its owner, mode and layout, and takes a row
 * of its participant table: waits (on the event loop, up to `timeout`, default 2 s) for a
 * creator still making it and for the attach lock (never taken from a live holder).
 */
export function openWorkQueue<C extends CodecOption | undefined = undefined>(address: NatsAddressText, options?: NatsWorkQueueOptions<C>): Promise<NatsWorkQueue<MessageOf<C>>>;
export function openWorkQueue<C extends CodecOption | undefined = undefined>(name: string, options?: OpenWorkQueueOptions<C>): Promise<WorkQueue<MessageOf<C>>>;
export function openWorkQueue<C extends CodecOption | undefined = undefined>(
  name: string,
  options: OpenWorkQueueOptions<C> | NatsWorkQueueOptions<C> = {},
): Promise<WorkQueue<MessageOf<C>> | NatsWorkQueue<MessageOf<C>>> {
  // The same code moves from one host to many by changing the address: a nats:// address
  // is a JetStream work queue (the NATS client itself loads only when it connects). Its
  // bad arguments throw here, synchronously, as every open's do.
  if (isNatsAddress(name)) return Promise.resolve(openNatsWorkQueue<C>(name, options as NatsWorkQueueOptions<C>));
  const { n, plan, h } = openPlan(name, options as OpenWorkQueueOptions<C>);
  return openObject(n, 'workqueue', VERSION, plan).then((segment) =>
    adoptAsync(segment, async () => {
      const core = new QueueCore<MessageOf<C>>(n, segment, geometryOf(segment, n), h.codec as Codec<MessageOf<C>>);
      await core.lock.with({ deadline: plan.deadline, signal: plan.signal }, () => core.claimRow());
      return handleOf(core, h);
    }),
  );
}

/** openWorkQueue for workers and scripts: the waits block this thread. */
export function openWorkQueueSync<C extends CodecOption | undefined = undefined>(name: string, options: OpenWorkQueueOptions<C> = {}): WorkQueue<MessageOf<C>> {
  const { n, plan, h } = openPlan(name, options);
  return adopt(openObjectSync(n, 'workqueue', VERSION, plan), (segment) => {
    const core = new QueueCore<MessageOf<C>>(n, segment, geometryOf(segment, n), h.codec as Codec<MessageOf<C>>);
    core.lock.withSync({ deadline: plan.deadline, signal: plan.signal }, () => core.claimRow());
    return handleOf(core, h);
  });
}

/** A nats:// or tls:// address, which openWorkQueue opens as a JetStream work queue. */
export type NatsAddressText = `nats://${string}` | `tls://${string}`;

/** Removes a queue's name, after checking that it is a work queue (ERR_IPCKIT_WRONG_KIND otherwise). Idempotent: false if it was gone. */
export function unlinkWorkQueue(name: string): boolean {
  return unlinkObject(validate.posixName(name), 'workqueue');
}
