/**
 * The Channel between a spawnProcess parent and its child, on either side: the rings' (or
 * pipes') sender and receiver, plus what batch frames need (batches.ts). `sendMany` packs
 * runs of JSON messages into batch frames; receiving hands out a frame's messages one at a
 * time, in order, before anything of the next frame.
 *
 * Receives keep the Channel promises: the first receive goes straight to the receiver
 * below with its own options; receives made while one is under way wait here, in order, and
 * are served from a batch's messages or by one receive below at a time (cancelled once no
 * receive waits here any more, so nothing is taken for nobody and nothing keeps the
 * process alive).
 */
import { receiverIterator, RESOLVED, WaitQueue, type Channel, type Receiver, type Sender, type WaitOptions } from '../../core/channel.js';
import { restateBatchError } from '../../core/batch.js';
import { jsonCodecInfo, type Codec } from '../../core/codec.js';
import { closeBoth } from '../../core/duplex.js';
import { abortedError, closedError, isIpcError } from '../../core/errors.js';
import * as validate from '../../core/validate.js';
import { DecodedBatch, encodeBatches, RefusedMessage } from './batches.js';

/** What the sender below offers beyond Sender (rings and pipes both do). */
type BatchSender<T> = Sender<T> & {
  sendMany(messages: Iterable<T>, options?: WaitOptions): Promise<void>;
  readonly maxMessageBytes: number;
};

export class ProcessChannel<T> implements Channel<T> {
  readonly #sender: BatchSender<T>;
  readonly #receiver: Receiver<T>;
  /** The user's codec when it is a JSON one and the peer reads batch frames (sendMany makes them), else undefined. */
  readonly #batchCodec: Codec<unknown> | undefined;
  /** The sender places a frame before anything else encodes and owns what waits (rings): the last frame may borrow the send scratch. */
  readonly #borrowFrames: boolean;
  /** Messages of a batch frame not delivered yet (a refused one as RefusedMessage). */
  #ready: unknown[] = [];
  #readyAt = 0;
  /** Receives made while another was under way, or while #waitersReceive runs for them. */
  readonly #waiters = new WaitQueue<T>('receive', undefined, () => this.#waiterLeft());
  /** A caller's receive passed to the receiver below with its own options, not settled yet. */
  #directReceive = false;
  /** The receive below that runs for #waiters: no timeout of its own, aborted when they have all left. */
  #waitersReceive: AbortController | undefined;
  #closed = false;

  /**
   * `sender` and `receiver` use `batchingCodec(codec)` (batches.ts); `codec` is the user's,
   * the one batches are encoded with. `batches: false`: the peer does not read batch frames
   * (a parent of an older ipckit, handoff.ts), so sendMany sends one frame per message.
   * `borrowFrames`: the sender's sendMany copies what fits at once and owns what waits
   * (rings), so a batch frame's text can go from the send scratch straight into it.
   */
  constructor(sender: Sender<T>, receiver: Receiver<T>, codec: Codec<T>, options: { batches?: boolean; borrowFrames?: boolean } = {}) {
    this.#sender = sender as BatchSender<T>;
    this.#receiver = receiver;
    this.#batchCodec = options.batches !== false && jsonCodecInfo(codec as Codec<unknown>) ? (codec as Codec<unknown>) : undefined;
    this.#borrowFrames = options.borrowFrames === true;
  }

  send(message: T, options?: WaitOptions): Promise<void> {
    return this.#sender.send(message, options);
  }

  trySend(message: T): boolean {
    return this.#sender.trySend ? this.#sender.trySend(message) : false;
  }

  /**
   * Sends every message in order, like `send` one by one, in fewer frames: with a JSON codec,
   * runs of messages go as batch frames (up to 256 messages each), one JSON.stringify and one
   * JSON.parse per frame. Every message is encoded first: a bad one throws and nothing is
   * sent. If it fails part-way, `details.sent` says how many messages went.
   */
  sendMany(messages: Iterable<T>, options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    const list = Array.isArray(messages) ? (messages as T[]) : [...validate.iterable<T>('messages', messages)];
    if (this.#batchCodec === undefined) return this.#sender.sendMany(list, options);
    const frames = encodeBatches(this.#batchCodec, list, this.#sender.maxMessageBytes, { borrowLast: this.#borrowFrames });
    const sending = this.#sender.sendMany(frames as unknown as T[], options);
    if (sending === RESOLVED) return sending; // all went at once: no promise more per call
    const messagesIn = (sentFrames: number): number => frames.slice(0, sentFrames).reduce((n, f) => n + f.messages, 0);
    return sending.catch((e: unknown) => {
      throw restateBatchError(e, frames.length, messagesIn, list.length);
    });
  }

  receive(options?: WaitOptions): Promise<T> {
    validate.waitOptions(options);
    if (this.#closed) return Promise.reject(closedError('receiver'));
    if (options?.signal?.aborted) return Promise.reject(abortedError('receive', options.signal));
    if (this.#directReceive || this.#waitersReceive !== undefined || this.#waiters.length > 0) {
      const p = this.#waiters.enqueue(options, undefined);
      this.#serveWaiters();
      return p;
    }
    if (this.#readyAt < this.#ready.length) {
      try {
        return Promise.resolve(this.#takeReady());
      } catch (e) {
        return Promise.reject(e);
      }
    }
    this.#directReceive = true;
    return this.#receiver.receive(options).then(
      (v) => {
        this.#directReceive = false;
        if (this.#waiters.length > 0) this.#serveWaitersNext();
        if (!(v instanceof DecodedBatch)) return v;
        this.#keep(v);
        return this.#takeReady(); // a refused message throws: this receive's error
      },
      (e: unknown) => {
        this.#directReceive = false;
        if (this.#waiters.length > 0) this.#serveWaitersNext();
        throw e;
      },
    );
  }

  tryReceive(): T | undefined {
    if (this.#closed) throw closedError('receiver');
    if (this.#directReceive || this.#waitersReceive !== undefined || this.#waiters.length > 0) return undefined;
    if (this.#readyAt < this.#ready.length) return this.#takeReady();
    const v = this.#receiver.tryReceive?.();
    if (!(v instanceof DecodedBatch)) return v; // one message (or none): as it came
    this.#keep(v);
    return this.#takeReady();
  }

  /** Closes both sides (what was sent is delivered first); receives waiting here reject with ERR_IPCKIT_CLOSED. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#ready = [];
      this.#readyAt = 0;
      this.#waiters.rejectAll(() => closedError('receiver'));
      this.#waitersReceive?.abort();
    }
    await closeBoth(this.#sender, this.#receiver);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return receiverIterator(this);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Adds what one frame carried to the messages ready. */
  #keep(v: unknown): void {
    if (this.#readyAt === this.#ready.length) {
      this.#ready.length = 0;
      this.#readyAt = 0;
    }
    if (!(v instanceof DecodedBatch)) this.#ready.push(v);
    else if (this.#ready.length === 0) this.#ready = v.items; // the usual case: no copy
    else for (const m of v.items) this.#ready.push(m);
  }

  /** Takes the next ready message (one is ready), a RefusedMessage as it is. */
  #nextReady(): unknown {
    const m = this.#ready[this.#readyAt];
    this.#ready[this.#readyAt++] = undefined;
    return m;
  }

  /** The next ready message (one is ready); a refused one throws its error. */
  #takeReady(): T {
    const m = this.#nextReady();
    if (m instanceof RefusedMessage) throw m.error;
    return m as T;
  }

  /**
   * #serveWaiters once this receive has settled: the receives that waited behind it were
   * made after it, so they must not settle before it.
   */
  #serveWaitersNext(): void {
    queueMicrotask(() => this.#serveWaiters());
  }

  /** Serves waiting receives from the ready messages, then starts one receive below for the rest. */
  #serveWaiters(): void {
    while (this.#waiters.length > 0 && this.#readyAt < this.#ready.length) {
      const m = this.#nextReady();
      if (m instanceof RefusedMessage) this.#waiters.rejectNext(m.error);
      else this.#waiters.resolveNext(m as T);
    }
    if (this.#waiters.length === 0 || this.#directReceive || this.#waitersReceive !== undefined || this.#closed) return;
    const control = new AbortController();
    this.#waitersReceive = control;
    this.#receiver.receive({ signal: control.signal }).then(
      (v) => {
        this.#waitersReceive = undefined;
        if (this.#closed) return;
        this.#keep(v);
        this.#serveWaiters();
      },
      (e: unknown) => {
        this.#waitersReceive = undefined;
        if (this.#closed) return;
        if (control.signal.aborted && isIpcError(e, 'ERR_IPCKIT_ABORTED')) {
          // Everyone it ran for left; new waiters may have come since.
        } else if (isIpcError(e, 'ERR_IPCKIT_BAD_FRAME')) {
          this.#keep(new RefusedMessage(e)); // that message's error, in its place
        } else {
          this.#waiters.rejectNext(e); // the end (closed, peer gone): each waiter in turn
        }
        this.#serveWaiters();
      },
    );
  }

  /** A waiting receive timed out or was aborted: with none left, the receive below stops. */
  #waiterLeft(): void {
    if (this.#waiters.length === 0) this.#waitersReceive?.abort();
  }
}
