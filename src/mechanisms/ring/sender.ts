/**
 * The producer side of a ring. One producer: the tail is ours, written after the records
 * (publish). Many producers: space is claimed under a tiny lock (a CLAIMED header that
 * names our participant row goes in before the tail moves), copied without the lock, then
 * committed; a claim whose producer died becomes padding, never a torn message.
 */
import { batchError, batchPromise } from '../../core/batch.js';
import { DEFAULT_MAX_PENDING_BYTES, pendingLimitError, RESOLVED, WaitQueue, type Sender, type WaitOptions } from '../../core/channel.js';
import { encodeBorrowed, encodeWith, ownBytes, resolveCodec, type Codec, type CodecOption } from '../../core/codec.js';
import { closedError, errnoError, invalidArgument, IpcError, isIpcError, timeoutError } from '../../core/errors.js';
import { frameTooLarge } from '../../core/framing.js';
import * as validate from '../../core/validate.js';
import { LoopWait } from '../../memory/loop-wait.js';
import type { Memory } from '../../memory/memory.js';
import { CLOSED } from '../../memory/participants.js';
import { SpinBudget } from '../../os/spin.js';
import { checkWaitOptions, SLICE_MS } from '../../memory/waits.js';
import { fault, FAULTS } from '../../os/faults.js';
import { peerGone, ringSpinOption, type RingCore } from './core.js';
import {
  CONSUMER_ROW,
  DATA_OFFSET,
  RECORD_HEADER,
  REC_CLAIMED,
  REC_MESSAGE,
  REC_PADDING,
  W_CLAIM_LOCK,
  W_CONSUMER_SLEEPING,
  W_DATA_SIGNAL,
  W_HEAD,
  W_PRODUCERS_EVER,
  W_PRODUCER_SLEEPING,
  W_SPACE_SIGNAL,
  W_TAIL,
} from './layout.js';
import { ATTACHED } from '../../memory/participants.js';

const now = (): number => performance.now();
/** Remaining ms to a deadline, at most a slice (undefined: none). */
export const remaining = (deadline: number | undefined): number => (deadline === undefined ? SLICE_MS : Math.max(0, Math.min(SLICE_MS, deadline - now())));

export interface RingEndpointOptions<C extends CodecOption | undefined = undefined> {
  codec?: C;
  /**
   * How long a wait spins before it sleeps, in µs (default 20, or 0 when the process may
   * run on one CPU only). 0: sleep at once; Infinity: never sleep (busy-wait; async waits
   * yield to the event loop every millisecond).
   */
  spinMicros?: number;
  /** How long attaching may wait for the attach lock (ms, default 2000). */
  timeout?: number;
  signal?: AbortSignal;
  /**
   * Senders: the most bytes of sends waiting for room this sender holds (default 64 MiB);
   * past it `send` rejects with ERR_IPCKIT_LIMIT (a caller that does not await its sends).
   */
  maxPendingBytes?: number;
}

/** The maxPendingBytes option, checked. */
export function maxPendingOption(value: unknown): number {
  return validate.optionalInteger('maxPendingBytes', value, 0) ?? DEFAULT_MAX_PENDING_BYTES;
}

/** Where an endpoint's attach got: its participant row and the epoch it claimed it with. */
export interface Claim {
  row: number;
  epoch: number;
}

/** Under the attach lock: takes a producer row (free, closed, or of a dead thread). */
export function claimProducer(core: RingCore): Claim {
  core.checkIntact();
  const row = core.table.findTakeable(1, 1 + core.producers);
  if (row < 0) {
    const pid = core.table.info(1).pid;
    throw new IpcError(
      'ERR_IPCKIT_LIMIT',
      core.many
        ? `ring ${core.name}: all ${core.producers} producer slots are held by live threads (create the ring with a larger maxProducers)`
        : `ring ${core.name} takes one producer and process ${pid} has it (create the ring with { producers: 'many' } for several)`,
      { details: { ring: core.name, maxProducers: core.producers } },
    );
  }
  const epoch = core.table.claim(row);
  core.mem.add(W_PRODUCERS_EVER, 1);
  if (!core.many) core.mem.store(W_PRODUCER_SLEEPING, 0); // a dead predecessor's flag
  return { row, epoch };
}

interface PendingSend {
  payloads: Uint8Array[];
  /** Bytes of the payloads it had left when it began to wait (fixed: what it counts against maxPendingBytes). */
  bytes: number;
  next: number;
}

type Placed = 'ok' | 'full' | 'busy';

export class RingSender<T> implements Sender<T> {
  readonly ring: string;
  #core: RingCore;
  #mem: Memory;
  #codec: Codec<T>;
  #spinner: SpinBudget;
  #capacity: number;
  #mask: number;
  #max: number;
  #many: boolean;
  #row: number;
  #epoch: number;
  #claimWord: number; // REC_CLAIMED | row << 8 | epoch << 16
  #lockValue: number; // row | epoch << 8
  #tail = 0; // one-producer mode: our private tail
  #headCache = 0;
  #waiting = new WaitQueue<void, PendingSend>('send', (p) => p.bytes, () => {
    if (this.#waiting.length === 0) this.#wait.stop();
  });
  #maxPending: number;
  #wait: LoopWait;
  #leaveAtExit: () => void; // a terminated worker's row must look dead at once
  #closed = false;
  #error: IpcError | null = null;

  /** @internal Use ring.sender() or ring.senderSync(): they take the row under the attach lock. */
  constructor(core: RingCore, options: RingEndpointOptions<CodecOption | undefined>, claim: Claim) {
    this.#codec = resolveCodec(options.codec) as Codec<T>;
    this.#spinner = new SpinBudget(ringSpinOption(options.spinMicros));
    this.#maxPending = maxPendingOption(options.maxPendingBytes);
    this.ring = core.name;
    this.#core = core;
    this.#mem = core.mem;
    this.#capacity = core.capacity;
    this.#mask = core.mask;
    this.#max = core.maxMessageBytes;
    this.#many = core.many;
    this.#row = claim.row;
    this.#epoch = claim.epoch;
    const e16 = claim.epoch & 0xffff;
    this.#claimWord = (REC_CLAIMED | (claim.row << 8) | (e16 << 16)) | 0;
    this.#lockValue = claim.row | (e16 << 8);
    const mem = this.#mem;
    const tail = mem.load(W_TAIL) >>> 0;
    const head = mem.load(W_HEAD) >>> 0;
    core.span(tail, head);
    this.#tail = tail;
    this.#headCache = head;
    this.#leaveAtExit = core.table.clearAtThreadExit(claim.row, W_DATA_SIGNAL);
    this.#wait = new LoopWait(mem, W_SPACE_SIGNAL, SLICE_MS, (res) => {
      if (res < 0) this.#waiting.rejectAll(this.#fail(this.#core.waitError(res, 'send')));
      else this.#arm(res === 2);
    });
    core.retain();
  }

  get maxMessageBytes(): number {
    return this.#max;
  }

  /** Accepts the message into the ring (resolved at once when there is room), or waits for room. */
  send(message: T, options?: WaitOptions): Promise<void> {
    const aborted = checkWaitOptions(options, 'send');
    // A message the codec refuses is a bad argument: it throws, even on a closed sender.
    const payload = this.#encode(message);
    if (this.#closed || this.#error) return Promise.reject(this.#error ?? closedError('sender'));
    if (aborted) return Promise.reject(aborted);
    if (this.#waiting.length === 0) {
      let r: Placed;
      try {
        r = this.#place(payload);
      } catch (e) {
        return Promise.reject(this.#fail(e));
      }
      if (r === 'ok') {
        this.#publish();
        return RESOLVED;
      }
    }
    if (this.#waiting.weight + payload.length > this.#maxPending) return Promise.reject(pendingLimitError(`ring ${this.ring}`, this.#waiting.weight, payload.length, this.#maxPending));
    const p = this.#waiting.enqueue(options, { payloads: [ownBytes(payload)], bytes: payload.length, next: 0 });
    this.#arm();
    return p;
  }

  /** Writes the message now and returns true, or returns false when the ring is full. */
  trySend(message: T): boolean {
    const payload = this.#encode(message);
    if (this.#closed || this.#error) throw this.#error ?? closedError('sender');
    if (this.#waiting.length > 0) return false;
    let r: Placed;
    try {
      r = this.#place(payload);
    } catch (e) {
      throw this.#fail(e);
    }
    if (r !== 'ok') return false;
    this.#publish();
    return true;
  }

  /**
   * Sends every message in order, publishing the tail once per run of messages that fit
   * (one cache-line transfer for many messages). On timeout or abort, `details.sent` says
   * how many were sent.
   */
  sendMany(messages: Iterable<T>, options?: WaitOptions): Promise<void> {
    if (messages === null || typeof (messages as Partial<Iterable<T>>)?.[Symbol.iterator] !== 'function') throw invalidArgument(`messages must be iterable, got ${validate.describe(messages)}`);
    const aborted = checkWaitOptions(options, 'send');
    const payloads: Uint8Array[] = [];
    for (const m of messages) payloads.push(this.#encode(m, false)); // not the send scratch (but a spawnProcess batch frame may borrow it: owned below if it waits)
    if (this.#closed || this.#error) return Promise.reject(batchError(this.#error ?? closedError('sender'), 0, payloads.length));
    if (aborted) return Promise.reject(batchError(aborted, 0, payloads.length));
    let next = 0;
    if (this.#waiting.length === 0) {
      try {
        while (next < payloads.length && this.#place(payloads[next]!) === 'ok') next++;
      } catch (e) {
        if (next > 0) this.#publish();
        return Promise.reject(batchError(this.#fail(e), next, payloads.length));
      }
      if (next > 0) this.#publish();
      if (next === payloads.length) return RESOLVED;
    }
    let bytes = 0; // what waits: the messages not sent yet, in bytes of their own (a spawnProcess batch frame may borrow the send scratch)
    for (let i = next; i < payloads.length; i++) bytes += (payloads[i] = ownBytes(payloads[i]!)).length;
    if (this.#waiting.weight + bytes > this.#maxPending) return Promise.reject(batchError(pendingLimitError(`ring ${this.ring}`, this.#waiting.weight, bytes, this.#maxPending), next, payloads.length));
    const pending: PendingSend = { payloads, bytes, next };
    const p = batchPromise(this.#waiting.enqueue(options, pending), payloads.length, () => pending.next);
    this.#arm();
    return p;
  }

  /**
   * Writes messages from `start` while they fit and publishes them at once; returns how
   * many were written (0 when the ring is full). For spinning producers. If a message
   * cannot be sent (too large, cannot be encoded), the ones before it are sent and the
   * error's `details.sent` says how many.
   */
  trySendMany(messages: readonly T[], start = 0): number {
    if (!Array.isArray(messages)) throw invalidArgument(`messages must be an array, got ${validate.describe(messages)}`);
    validate.integer('start', start, 0, messages.length);
    if (this.#closed || this.#error) throw this.#error ?? closedError('sender');
    if (this.#waiting.length > 0) return 0;
    let i = start;
    try {
      while (i < messages.length && this.#place(this.#encode(messages[i]!)) === 'ok') i++;
    } catch (e) {
      if (i > start) this.#publish();
      const err = isIpcError(e, 'ERR_IPCKIT_FRAME_TOO_LARGE') || isIpcError(e, 'ERR_IPCKIT_INVALID_ARGUMENT') ? e : this.#fail(e);
      throw batchError(err, i - start, messages.length - start);
    }
    if (i > start) this.#publish();
    return i - start;
  }

  /**
   * Blocking send for worker threads and scripts: spins, then sleeps on the futex until
   * there is room or `timeoutMs` passes (ERR_IPCKIT_TIMEOUT). Blocks the event loop if
   * called on the main thread.
   */
  sendSync(message: T, timeoutMs?: number): void {
    const ms = validate.timeout(timeoutMs);
    if (this.#closed || this.#error) throw this.#error ?? closedError('sender');
    if (this.#waiting.length > 0) throw invalidArgument('sendSync cannot overtake pending asynchronous sends');
    const payload = this.#encode(message);
    const deadline = ms === undefined ? undefined : now() + ms;
    const mem = this.#mem;
    try {
      let r = this.#place(payload);
      if (r === 'ok') return this.#publish();
      this.#checkConsumer(false);
      // Spin (the budget adapts to what spinning achieved lately), then sleep.
      const placed = this.#spinner.spinSync((deep) => {
        if (deep) this.#core.checkIntact();
        r = this.#place(payload);
        if (r === 'ok') return true;
        this.#checkConsumer(deep);
        return undefined;
      }, deadline, SLICE_MS);
      if (placed) return this.#publish();
      let deep = false;
      for (;;) {
        if (deadline !== undefined && now() >= deadline) throw timeoutError('send', ms!);
        if (r === 'busy') {
          mem.waitSync(W_CLAIM_LOCK, mem.load(W_CLAIM_LOCK), 1);
        } else {
          const seq = mem.prepareSleep(W_SPACE_SIGNAL, W_PRODUCER_SLEEPING);
          r = this.#place(payload);
          if (r === 'ok') return this.#publish();
          const res = mem.waitSync(W_SPACE_SIGNAL, seq, remaining(deadline));
          if (res < 0) throw errnoError(-res, 'futex', 'send');
          deep = res === 2;
        }
        if (deep) this.#core.checkIntact();
        r = this.#place(payload);
        if (r === 'ok') return this.#publish();
        this.#checkConsumer(deep);
      }
    } catch (e) {
      throw isIpcError(e, 'ERR_IPCKIT_TIMEOUT') ? e : this.#fail(e);
    }
  }

  /**
   * Stops sending: sends still waiting for room reject with ERR_IPCKIT_CLOSED, the
   * producer row is marked closed (the receiver ends once it has read everything and no
   * other producer is attached), and the mapping is released. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#leaveAtExit();
    this.#wait.stop(true);
    this.#waiting.rejectAll(() => closedError('sender'));
    this.#core.leave(this.#row, this.#epoch, W_DATA_SIGNAL);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- internals ---

  /** `borrow`: the bytes are copied into the ring before the next encode (or owned with ownBytes). */
  #encode(message: T, borrow = true): Uint8Array {
    const payload = borrow ? encodeBorrowed(this.#codec, message) : encodeWith(this.#codec, message);
    if (payload.length > this.#max) throw frameTooLarge(payload.length, this.#max, 'send');
    return payload;
  }

  #fail(e: unknown): IpcError {
    const err = isIpcError(e) ? e : new IpcError('ERR_IPCKIT_SYSCALL', `ring ${this.ring}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    if (err.code === 'ERR_IPCKIT_CORRUPT' && !this.#error) {
      this.#error = err;
      this.#wait.stop();
      this.#waiting.rejectAll(err);
    }
    return err;
  }

  /**
   * Does `n` more bytes fit after position `t`? One producer: the cached head is re-read
   * only when the ring looks full (the tail is ours, so the cache is less than a lap
   * behind). Many producers: the others move the tail, so a cached head can be behind by
   * any multiple of 2^32 and make a full ring look empty: the head is read every time.
   */
  #room(t: number, n: number): boolean {
    if (!this.#many && this.#capacity - ((t - this.#headCache) >>> 0) >= n) return true;
    const head = this.#mem.load(W_HEAD) >>> 0;
    this.#core.span(t, head);
    this.#headCache = head;
    return this.#capacity - ((t - head) >>> 0) >= n;
  }

  /** Writes one record (single producer: not yet published). */
  #place(payload: Uint8Array): Placed {
    if (this.#many) return this.#placeMany(payload);
    const mem = this.#mem;
    const len = payload.length;
    const size = RECORD_HEADER + ((len + 7) & ~7);
    let t = this.#tail;
    let off = t & this.#mask;
    const contiguous = this.#capacity - off;
    if (FAULTS) fault('ring:before-claim');
    if (size > contiguous) {
      // The record never wraps: pad to the end of the region, then start at 0.
      if (!this.#room(t, contiguous)) return 'full';
      const w = (DATA_OFFSET + off) >>> 2;
      mem.storePlain(w + 1, contiguous - RECORD_HEADER);
      mem.storePlain(w, REC_PADDING);
      t = (t + contiguous) >>> 0;
      off = 0;
      this.#tail = t;
      if (!this.#room(t, size)) {
        this.#publish(); // the padding alone
        return 'full';
      }
    } else if (!this.#room(t, size)) {
      return 'full';
    }
    const w = (DATA_OFFSET + off) >>> 2;
    mem.storePlain(w + 1, len);
    if (FAULTS) fault('ring:after-claim');
    if (FAULTS && len >= 2) {
      mem.copyIn(DATA_OFFSET + off + RECORD_HEADER, payload, 0, len >>> 1);
      fault('ring:mid-copy');
      mem.copyIn(DATA_OFFSET + off + RECORD_HEADER + (len >>> 1), payload, len >>> 1, len - (len >>> 1));
    } else {
      mem.copyIn(DATA_OFFSET + off + RECORD_HEADER, payload, 0, len);
    }
    mem.storePlain(w, REC_MESSAGE);
    if (FAULTS) fault('ring:before-commit');
    this.#tail = (t + size) >>> 0;
    return 'ok';
  }

  /** Many producers: claim under the lock (header names our row), copy, commit. */
  #placeMany(payload: Uint8Array): Placed {
    const mem = this.#mem;
    const len = payload.length;
    const size = RECORD_HEADER + ((len + 7) & ~7);
    if (FAULTS) fault('ring:before-claim');
    if (!this.#lockClaim()) return 'busy';
    let w: number;
    let at: number;
    try {
      let t = mem.load(W_TAIL) >>> 0;
      let off = t & this.#mask;
      const contiguous = this.#capacity - off;
      if (size > contiguous) {
        if (!this.#room(t, contiguous)) return 'full';
        const pw = (DATA_OFFSET + off) >>> 2;
        mem.storePlain(pw + 1, contiguous - RECORD_HEADER);
        mem.store(pw, REC_PADDING);
        t = (t + contiguous) >>> 0;
        off = 0;
        if (!this.#room(t, size)) {
          mem.store(W_TAIL, t); // the padding alone
          return 'full';
        }
      } else if (!this.#room(t, size)) {
        return 'full';
      }
      w = (DATA_OFFSET + off) >>> 2;
      at = DATA_OFFSET + off + RECORD_HEADER;
      mem.storePlain(w + 1, len);
      mem.store(w, this.#claimWord);
      mem.store(W_TAIL, (t + size) | 0);
    } finally {
      mem.store(W_CLAIM_LOCK, 0);
    }
    if (FAULTS) fault('ring:after-claim');
    if (FAULTS && len >= 2) {
      mem.copyIn(at, payload, 0, len >>> 1);
      fault('ring:mid-copy');
      mem.copyIn(at + (len >>> 1), payload, len >>> 1, len - (len >>> 1));
    } else {
      mem.copyIn(at, payload, 0, len);
    }
    if (FAULTS) fault('ring:before-commit');
    mem.store(w, REC_MESSAGE);
    if (FAULTS) fault('ring:before-wake');
    this.#core.wakeConsumer();
    return 'ok';
  }

  /** The claim lock: a few stores long. A holder that died loses it; a live slow one makes us report 'busy'. */
  #lockClaim(): boolean {
    const mem = this.#mem;
    const me = this.#lockValue;
    for (let i = 0; ; i++) {
      const v = mem.compareExchange(W_CLAIM_LOCK, 0, me);
      if (v === 0) return true;
      if (v === me) return true; // we took over the row of a producer that died holding it
      if (i >= 2000) {
        const row = v & 0xff;
        if (row < 1 || row > this.#core.producers) throw this.#core.corrupt(`claim lock value ${v}`);
        if (this.#core.table.alive(row, (v >>> 8) & 0xffff)) return false;
        if (mem.compareExchange(W_CLAIM_LOCK, v, me) === v) return true;
        i = 0;
      }
    }
  }

  /** Makes written records visible (one producer) and wakes a sleeping consumer. */
  #publish(): void {
    const mem = this.#mem;
    if (!this.#many) mem.store(W_TAIL, this.#tail);
    if (FAULTS && !this.#many) fault('ring:before-wake');
    if (mem.load(W_CONSUMER_SLEEPING) !== 0) this.#core.wakeConsumer();
  }

  /** Places what waiting sends can place, in order; resolves the ones done. */
  #admit(): Placed {
    let placed = false;
    let r: Placed = 'ok';
    try {
      for (;;) {
        const pending = this.#waiting.peek();
        if (!pending) break;
        while (pending.next < pending.payloads.length) {
          r = this.#place(pending.payloads[pending.next]!);
          if (r !== 'ok') break;
          pending.next++;
          placed = true;
        }
        if (pending.next < pending.payloads.length) break;
        this.#waiting.resolveNext(undefined);
      }
    } finally {
      if (placed) this.#publish();
    }
    return r;
  }

  /** Throws ERR_IPCKIT_PEER_GONE if no consumer will make room: it closed, or (deep) it died. */
  #checkConsumer(deep: boolean): void {
    const table = this.#core.table;
    const state = table.state(CONSUMER_ROW);
    if (state === CLOSED) throw new IpcError('ERR_IPCKIT_PEER_GONE', `ring ${this.ring}: the receiver closed, and the ring is full`, { details: { ring: this.ring } });
    if (deep) {
      this.#core.checkIntact();
      if (state === ATTACHED && !this.#core.consumerAlive()) throw peerGone(this.ring, 'receiver');
    }
  }

  /** Event-loop wait for room: spin, then sleep on the space signal in slices. */
  #arm(deep = false): void {
    if (this.#wait.pending || this.#closed || this.#error) return;
    const mem = this.#mem;
    try {
      if (deep) this.#core.checkIntact(); // before touching the pages after a slice asleep
      let r = this.#admit();
      if (this.#waiting.length === 0) return;
      this.#checkConsumer(deep);
      const budget = r === 'full' ? Math.min(this.#spinner.next(), 1000) : 0;
      if (budget > 0) {
        const t0 = now();
        const until = t0 + budget / 1000;
        while (r === 'full' && this.#waiting.length > 0 && now() < until) r = this.#admit();
        if (this.#waiting.length === 0) {
          this.#spinner.caught((now() - t0) * 1000);
          return;
        }
        this.#spinner.missed();
        if (this.#spinner.max === Infinity) {
          this.#wait.retry(() => this.#arm(this.#wait.deepDue()));
          return;
        }
      }
      if (r === 'busy') {
        this.#wait.retry(() => this.#arm(this.#wait.deepDue()), 1);
        return;
      }
      const seq = mem.prepareSleep(W_SPACE_SIGNAL, W_PRODUCER_SLEEPING);
      r = this.#admit();
      if (this.#waiting.length === 0) return;
      this.#wait.sleep(seq);
    } catch (e) {
      const err = this.#fail(e);
      this.#waiting.rejectAll(err);
    }
  }
}
