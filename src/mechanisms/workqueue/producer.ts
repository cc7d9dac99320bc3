/**
 * The producing side of a work-queue handle: put, tryPut, putMany. A put that finds no
 * free slot waits (backpressure: `capacity` bounds the items waiting plus the items in
 * progress), spinning briefly, then sleeping on the space signal in slices.
 */
import { batchError, batchPromise } from '../../core/batch.js';
import { pendingLimitError, WaitQueue, type WaitOptions } from '../../core/channel.js';
import { closedError, invalidArgument, IpcError } from '../../core/errors.js';
import { ownBytes } from '../../core/codec.js';
import * as validate from '../../core/validate.js';
import { LoopWait } from '../../memory/loop-wait.js';
import { checkWaitOptions, SLICE_MS } from '../../memory/waits.js';
import type { QueueCore } from './core.js';
import { W_PUTTERS_SLEEPING, W_SPACE_SIGNAL } from './layout.js';

/** A put waiting for free slots: `ids` of the items placed so far. */
interface PendingPut {
  payloads: Uint8Array[];
  /** Bytes of the payloads it had left when it began to wait (fixed: what it counts against maxPendingBytes). */
  bytes: number;
  ids: number[];
  single: boolean;
}

export class Producer<T> {
  #core: QueueCore<T>;
  #putters = new WaitQueue<number | number[], PendingPut>('put', (p) => p.bytes, () => {
    if (this.#putters.length === 0) this.#wait.stop();
  });
  #maxPending: number;
  #wait: LoopWait;

  constructor(core: QueueCore<T>, maxPendingBytes: number) {
    this.#core = core;
    this.#maxPending = maxPendingBytes;
    this.#wait = new LoopWait(core.mem, W_SPACE_SIGNAL, SLICE_MS, (res) => (res < 0 ? core.waitFailed(res, 'space') : this.#arm(res === 2)));
    core.rejecters.push((e) => this.#putters.rejectAll(e));
  }

  /** Puts an item; resolves with its id once it is in the queue, or waits for a free slot. */
  put(item: T, options?: WaitOptions): Promise<number> {
    const core = this.#core;
    const aborted = checkWaitOptions(options, 'put');
    if (core.closed || core.error) return Promise.reject(core.error ?? closedError(`work queue ${core.name}`));
    const payload = core.encode(item);
    if (aborted) return Promise.reject(aborted);
    if (this.#putters.length === 0) {
      try {
        const id = core.tryPlace(payload);
        if (id >= 0) {
          core.afterPut(1);
          return Promise.resolve(id);
        }
      } catch (e) {
        return Promise.reject(core.fail(e));
      }
    }
    if (this.#putters.weight + payload.length > this.#maxPending) return Promise.reject(pendingLimitError(`work queue ${core.name}`, this.#putters.weight, payload.length, this.#maxPending));
    const p = this.#putters.enqueue(options, { payloads: [ownBytes(payload)], bytes: payload.length, ids: [], single: true }) as Promise<number>;
    this.#arm();
    return p;
  }

  /** Puts the item now and returns its id, or returns undefined when the queue is full. */
  tryPut(item: T): number | undefined {
    const core = this.#core;
    core.usable();
    const payload = core.encode(item);
    if (this.#putters.length > 0) return undefined;
    let id: number;
    try {
      id = core.tryPlace(payload);
    } catch (e) {
      throw core.fail(e);
    }
    if (id < 0) return undefined;
    core.afterPut(1);
    return id;
  }

  /** Puts every item, in order (one wake-up for the lot); resolves with their ids. On failure `details.sent` and `details.ids` say what went. */
  putMany(items: Iterable<T>, options?: WaitOptions): Promise<number[]> {
    if (items === null || typeof (items as Partial<Iterable<T>>)?.[Symbol.iterator] !== 'function') throw invalidArgument(`items must be iterable, got ${validate.describe(items)}`);
    const core = this.#core;
    const aborted = checkWaitOptions(options, 'put');
    if (core.closed || core.error) return Promise.reject(core.error ?? closedError(`work queue ${core.name}`));
    const payloads: Uint8Array[] = [];
    for (const item of items) payloads.push(core.encode(item, false)); // kept: bytes of their own
    if (aborted) return Promise.reject(batchError(aborted, 0, payloads.length, { ids: [] }));
    const ids: number[] = [];
    if (this.#putters.length === 0) {
      try {
        while (ids.length < payloads.length) {
          const id = core.tryPlace(payloads[ids.length]!);
          if (id < 0) break;
          ids.push(id);
        }
      } catch (e) {
        if (ids.length > 0) core.afterPut(ids.length);
        return Promise.reject(batchError(core.fail(e), ids.length, payloads.length, { ids }));
      }
      if (ids.length > 0) core.afterPut(ids.length);
      if (ids.length === payloads.length) return Promise.resolve(ids);
    }
    let bytes = 0; // what waits: the items not placed yet
    for (let i = ids.length; i < payloads.length; i++) bytes += payloads[i]!.length;
    if (this.#putters.weight + bytes > this.#maxPending) return Promise.reject(batchError(pendingLimitError(`work queue ${core.name}`, this.#putters.weight, bytes, this.#maxPending), ids.length, payloads.length, { ids }));
    const pending: PendingPut = { payloads, bytes, ids, single: false };
    const p = batchPromise(this.#putters.enqueue(options, pending) as Promise<number[]>, payloads.length, () => pending.ids.length, () => ({ ids: pending.ids }));
    this.#arm();
    return p;
  }

  /** Ends every waiting put with `err` (shutdown, close). */
  rejectAll(err: () => IpcError): void {
    this.#putters.rejectAll(err);
  }

  /** close(): the wait goes for good. */
  stop(): void {
    this.#wait.stop(true);
  }

  /** Places what waiting puts can place, in order. */
  #admit(): void {
    const core = this.#core;
    let placed = 0;
    try {
      for (;;) {
        const pending = this.#putters.peek();
        if (!pending) break;
        while (pending.ids.length < pending.payloads.length) {
          const id = core.tryPlace(pending.payloads[pending.ids.length]!);
          if (id < 0) break;
          pending.ids.push(id);
          placed++;
        }
        if (pending.ids.length < pending.payloads.length) break;
        this.#putters.resolveNext(pending.single ? pending.ids[0]! : pending.ids);
      }
    } finally {
      if (placed > 0) core.afterPut(placed);
    }
  }

  #arm(deep = false): void {
    const core = this.#core;
    if (this.#wait.pending || core.closed || core.error) return;
    const mem = core.mem;
    try {
      if (deep) core.checkIntact();
      core.maintain(deep);
      this.#admit();
      if (this.#putters.length === 0) return;
      const seq = mem.prepareSleep(W_SPACE_SIGNAL, W_PUTTERS_SLEEPING);
      this.#admit();
      if (this.#putters.length === 0) return;
      this.#wait.sleep(seq);
    } catch (e) {
      this.#putters.rejectAll(core.fail(e));
    }
  }
}
