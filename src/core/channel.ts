/**
 * The common API every data-carrying mechanism speaks, and the helpers they share.
 *
 * The promises a Channel keeps (test/conformance/channel.ts checks each of them against
 * every implementation):
 *
 * 1. Boundaries: one `send` is one `receive`, with the same bytes (after the codec).
 * 2. Order: messages from one sender arrive in the order they were sent.
 * 3. Backpressure: `send` resolves once the message is *accepted* into the channel's
 *    bounded buffer (ours plus the kernel's). When that is full, `send` waits; it never
 *    drops a message and never buffers without bound: sends still waiting for room may
 *    hold at most `maxPendingBytes` (default 64 MiB; then ERR_IPCKIT_LIMIT), so a caller
 *    that does not await cannot grow the process. `flush()`, where offered, resolves
 *    once every accepted message has reached the kernel.
 * 4. Receiving: `receive` resolves with the next message. Concurrent `receive` calls are
 *    served in the order they were made.
 * 5. Waits end: every wait takes `timeout` (ms) and `signal`; it then rejects with
 *    ERR_IPCKIT_TIMEOUT or ERR_IPCKIT_ABORTED (`cause` = the signal's reason) and has
 *    taken nothing: a timed-out receive consumes no message, a timed-out send sent nothing.
 * 6. The end: when the other side finishes cleanly, `receive` first delivers every message
 *    that arrived, then rejects with ERR_IPCKIT_CLOSED (and async iteration ends). If the
 *    stream ended inside a message, that rejection is ERR_IPCKIT_BAD_FRAME (or
 *    ERR_IPCKIT_PEER_GONE when we know the writer died); the partial bytes are never
 *    delivered.
 * 7. A dead peer: `send` rejects with ERR_IPCKIT_PEER_GONE; accepted messages that could
 *    not be written make `close()` reject with that error too, so no loss is silent.
 * 8. Closing: `close()` on a receiver rejects pending receives with ERR_IPCKIT_CLOSED;
 *    on a sender it rejects sends still waiting for room, writes what was accepted, then
 *    releases the kernel object. Both are idempotent; `await using` calls them.
 * 9. Bad input: a frame above `maxMessageBytes` is ERR_IPCKIT_FRAME_TOO_LARGE before any
 *    allocation; a payload that fails to decode is ERR_IPCKIT_BAD_FRAME for that message.
 * 10. Bad arguments throw synchronously (ERR_IPCKIT_INVALID_ARGUMENT, or
 *    ERR_IPCKIT_FRAME_TOO_LARGE for a message too big to send), from every method, before
 *    any fast path: a bad `timeout` throws even when a message is ready, a message the
 *    codec refuses throws even on a closed channel. Nothing was sent or taken.
 *
 * Batches (`sendMany`, `receiveMany`) keep these promises per message. `sendMany` encodes
 * every message before it sends the first (so a bad one throws and nothing is sent); a
 * batch that fails part-way says in `details.sent` how many messages went.
 */
import { abortedError, closedError, invalidArgument, IpcError, isIpcError, timeoutError } from './errors.js';
import * as validate from './validate.js';

export interface WaitOptions {
  signal?: AbortSignal;
  /** Milliseconds. */
  timeout?: number;
}

export interface Sender<T> extends AsyncDisposable {
  send(message: T, options?: WaitOptions): Promise<void>;
  /** Fast path: accepts the message and returns true, or returns false when `send` would wait. */
  trySend?(message: T): boolean;
  /** Resolves once released; some mechanisms resolve with more (popen: the exit status). */
  close(): Promise<unknown>;
}

export interface Receiver<T> extends AsyncIterable<T>, AsyncDisposable {
  receive(options?: WaitOptions): Promise<T>;
  /** Fast path: the next message if one is ready now, else undefined. */
  tryReceive?(): T | undefined;
  /** Resolves once released; some mechanisms resolve with more (popen: the exit status). */
  close(): Promise<unknown>;
}

export interface Channel<T> extends Sender<T>, Receiver<T> {}

/**
 * Zero-copy receive (streams and packet sockets): the next message's bytes go into a buffer
 * the caller supplies and keeps reusing, so no memory is allocated per message (a datagram
 * server's peers excepted: the server reads for every peer). No codec is applied. The
 * buffer's contents are unspecified unless the call resolved (a frame may have started
 * arriving in it). Resolves with the message's length (the bytes are `target[0, length)`). A
 * message longer than `target` is not taken: ERR_IPCKIT_FRAME_TOO_LARGE with
 * `details.length`, and the next receive gets it. Ordered with the other receives.
 */
export interface ReceiverInto {
  receiveInto(target: Uint8Array, options?: WaitOptions): Promise<number>;
  /** The next message into `target` if one is ready now (its length), else undefined. */
  tryReceiveInto(target: Uint8Array): number | undefined;
}

/** Checks receiveInto's buffer (synchronously, like every argument). */
export function checkReceiveTarget(target: unknown): Uint8Array {
  if (!(target instanceof Uint8Array)) throw invalidArgument(`receiveInto needs a Uint8Array (or Buffer) to receive into, got ${validate.describe(target)}`);
  return target;
}

/** The next message does not fit the caller's buffer: it stays queued for the next receive. */
export function bufferTooSmall(length: number, bufferBytes: number): IpcError {
  return new IpcError('ERR_IPCKIT_FRAME_TOO_LARGE', `the next message is ${length} bytes, more than the ${bufferBytes}-byte buffer given to receiveInto; it was not taken: receive it with a buffer of at least ${length} bytes, or with receive()`, {
    details: { length, bufferBytes },
  });
}

/** Which way an endpoint carries messages, from the caller's side: it 'read's or it 'write's. */
export type Direction = 'read' | 'write';
export const DIRECTIONS: readonly Direction[] = ['read', 'write'];

/** An already-resolved promise: `send` returns it when a message was accepted at once. */
export const RESOLVED: Promise<void> = Promise.resolve();

/** What a wait holds until it ends: its timer and its abort listener (see endWait). */
export interface WaitEnd {
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface Waiter<V, D> extends WaitEnd {
  resolve(value: V): void;
  reject(error: unknown): void;
  data: D;
}

/**
 * Ends a wait's timer and abort listener. One function for every wait, not a closure made
 * per wait and called when it ends: with such a closure, 100,000 datagram pairs that
 * received with a timeout had 47-181 KB survive each young-generation collection, against
 * 5 KB without it (`--trace-gc-nvp`, four runs each), nearly all of it promoted to V8's old
 * space, garbage that only a full collection frees. Which reference V8 kept was not
 * established.
 */
export function endWait(w: WaitEnd): void {
  if (w.timer !== undefined) clearTimeout(w.timer);
  if (w.onAbort !== undefined) w.signal!.removeEventListener('abort', w.onAbort);
}

/** Starts a wait's timeout and abort listener (endWait ends them); `cancel` gets their error. */
export function startWait(w: WaitEnd, options: WaitOptions | undefined, what: string, cancel: (error: IpcError) => void): void {
  const ms = options?.timeout;
  const signal = options?.signal;
  if (ms !== undefined) w.timer = setTimeout(() => cancel(timeoutError(what, ms)), ms);
  if (signal) {
    w.signal = signal;
    w.onAbort = () => cancel(abortedError(what, signal));
    signal.addEventListener('abort', w.onAbort, { once: true });
  }
}

/**
 * A FIFO of pending waits (receives waiting for a message, sends waiting for room),
 * each with its own timeout and AbortSignal. A wait that ends by timeout or abort leaves
 * the queue; `onCancel` then lets the mechanism stop polling when nobody waits.
 */
export class WaitQueue<V, D = undefined> {
  #items: Array<Waiter<V, D> | undefined> = [];
  #head = 0;
  #count = 0;
  #weight = 0;
  /**
   * `weigh`: the bytes a waiter's data holds, summed in `weight` (sends waiting for room).
   * `onCancel`: runs after a wait left by timeout or abort. Given here, not assigned later:
   * see the note on closures in docs/design.md, section 8.
   */
  constructor(
    readonly what: string,
    readonly weigh?: (data: D) => number,
    readonly onCancel?: () => void,
  ) {}

  get length(): number {
    return this.#count;
  }

  /** What the waiters hold together, by `weigh` (0 without it). */
  get weight(): number {
    return this.#weight;
  }

  /**
   * Adds a wait. Bad options throw here, synchronously, before any promise exists (public
   * methods check them earlier still, before their fast paths).
   */
  enqueue(options: WaitOptions | undefined, data: D): Promise<V> {
    validate.waitOptions(options);
    return new Promise<V>((resolve, reject) => {
      const waiter: Waiter<V, D> = { resolve, reject, data, timer: undefined, signal: undefined, onAbort: undefined };
      if (options !== undefined) {
        if (options.signal?.aborted) {
          reject(abortedError(this.what, options.signal));
          return;
        }
        startWait(waiter, options, this.what, (e) => this.#cancel(waiter, e));
      }
      this.#items.push(waiter);
      this.#count++;
      if (this.weigh) this.#weight += this.weigh(data);
    });
  }

  /** Data of the oldest waiter, without removing it. */
  peek(): D | undefined {
    this.#skipCancelled();
    return this.#items[this.#head]?.data;
  }

  /** Removes the oldest waiter and hands over its settle functions (timers cleared). */
  take(): { resolve: (value: V) => void; reject: (error: unknown) => void; data: D } | undefined {
    const w = this.#shift();
    if (!w) return undefined;
    endWait(w);
    return w;
  }

  resolveNext(value: V): boolean {
    const w = this.#shift();
    if (!w) return false;
    endWait(w);
    w.resolve(value);
    return true;
  }

  rejectNext(error: unknown): boolean {
    const w = this.#shift();
    if (!w) return false;
    endWait(w);
    w.reject(error);
    return true;
  }

  rejectAll(error: unknown | (() => unknown)): void {
    for (;;) {
      const w = this.#shift();
      if (!w) break;
      endWait(w);
      w.reject(typeof error === 'function' ? (error as () => unknown)() : error);
    }
  }

  #cancel(waiter: Waiter<V, D>, error: IpcError): void {
    const i = this.#items.indexOf(waiter, this.#head);
    if (i < 0) return;
    this.#items[i] = undefined;
    this.#count--;
    if (this.weigh) this.#weight -= this.weigh(waiter.data);
    endWait(waiter);
    waiter.reject(error);
    this.onCancel?.();
  }

  #skipCancelled(): void {
    while (this.#head < this.#items.length && this.#items[this.#head] === undefined) this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }

  #shift(): Waiter<V, D> | undefined {
    this.#skipCancelled();
    if (this.#head >= this.#items.length) return undefined;
    const w = this.#items[this.#head]!;
    this.#items[this.#head++] = undefined;
    this.#count--;
    if (this.weigh) this.#weight -= this.weigh(w.data);
    if (this.#head === this.#items.length) {
      this.#items.length = 0;
      this.#head = 0;
    }
    return w;
  }
}

/** What a sender holds for sends waiting for room, at most, unless told otherwise (64 MiB). */
export const DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024;

/**
 * The error of a send that would make its sender hold more than `maxPendingBytes` for sends
 * still waiting for room: the caller is not awaiting its sends (or a batch is too large).
 */
export function pendingLimitError(what: string, pending: number, adding: number, max: number): IpcError {
  return new IpcError('ERR_IPCKIT_LIMIT', `${what} already holds ${pending} bytes of sends waiting for room; this one (${adding} bytes) would pass maxPendingBytes (${max}): await each send before the next, or send less at once`, {
    details: { limit: 'maxPendingBytes', value: max, pendingBytes: pending, requestedBytes: adding },
    remedy: { options: [{ maxPendingBytes: undefined }], when: 'to let it hold more' },
  });
}

/**
 * Runs a wait that is not a queue slot (an open waiting for a peer, a futex wait): the
 * executor starts it and returns a cancel function; timeout and abort call that function
 * and reject. The executor's settle functions are no-ops after the first settlement.
 */
export function cancellableWait<T>(
  what: string,
  options: WaitOptions | undefined,
  executor: (resolve: (value: T) => void, reject: (error: unknown) => void) => (() => void) | void,
): Promise<T> {
  validate.waitOptions(options);
  const ms = options?.timeout;
  const signal = options?.signal;
  return new Promise<T>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortedError(what, signal));
      return;
    }
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    let cancel: (() => void) | void = undefined;
    const onAbort = (): void => finish(() => reject(abortedError(what, signal!)), true);
    const finish = (settle: () => void, cancelling: boolean): void => {
      if (done) return;
      done = true;
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (cancelling && cancel) cancel();
      settle();
    };
    if (ms !== undefined) timer = setTimeout(() => finish(() => reject(timeoutError(what, ms)), true), ms);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      cancel = executor(
        (v) => finish(() => resolve(v), false),
        (e) => finish(() => reject(e), false),
      );
    } catch (e) {
      finish(() => reject(e), false);
    }
    if (done && cancel) cancel();
  });
}

/**
 * The async iterator of a receiver: yields messages until the channel ends cleanly
 * (ERR_IPCKIT_CLOSED ends the loop), throws any other error. Breaking out of the loop
 * does not close the receiver: use `await using` or `close()` for that.
 */
export function receiverIterator<T>(receiver: { receive(options?: WaitOptions): Promise<T> }): AsyncIterableIterator<T> {
  const end = (e: unknown): IteratorResult<T> => {
    if (isIpcError(e, 'ERR_IPCKIT_CLOSED')) return { value: undefined, done: true };
    throw e;
  };
  const iterator: AsyncIterableIterator<T> = {
    next: () => receiver.receive().then((value) => ({ value, done: false }), end),
    return: async () => ({ value: undefined, done: true }),
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}

export { closedError };
