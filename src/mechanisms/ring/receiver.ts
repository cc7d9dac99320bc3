/**
 * The consumer side of a ring: one receiver at a time (participant row 0). It parses
 * records from its private read position, delivers committed messages, skips padding,
 * turns the claims of dead producers into padding, and publishes the head once a message
 * is taken (or its view released). Everything it reads from the segment is copied to a
 * local once and bounds-checked; a violation is ERR_IPCKIT_CORRUPT and the receiver
 * stays failed.
 */
import { invalidArgument, closedError, errnoError, IpcError, isIpcError, timeoutError } from '../../core/errors.js';
import { receiverIterator, WaitQueue, type Receiver, type WaitOptions } from '../../core/channel.js';
import { decodesBorrowed, decodeWith, resolveCodec, type Codec, type CodecOption } from '../../core/codec.js';
import * as validate from '../../core/validate.js';
import { LoopWait } from '../../memory/loop-wait.js';
import type { Memory } from '../../memory/memory.js';
import { ATTACHED, CLOSED } from '../../memory/participants.js';
import { SpinBudget } from '../../os/spin.js';
import { checkWaitOptions, SLICE_MS } from '../../memory/waits.js';
import { fault, FAULTS } from '../../os/faults.js';
import { peerGone, ringSpinOption, type RingCore } from './core.js';
import { CONSUMER_ROW, DATA_OFFSET, RECORD_HEADER, REC_CLAIMED, REC_MESSAGE, REC_PADDING, W_CONSUMER_SLEEPING, W_DATA_SIGNAL, W_HEAD, W_PRODUCERS_EVER, W_PRODUCER_SLEEPING, W_SPACE_SIGNAL, W_TAIL } from './layout.js';
import { remaining, type Claim, type RingEndpointOptions } from './sender.js';

const now = (): number => performance.now();

/** Under the attach lock: takes the consumer row, unless a live thread has it. */
export function claimConsumer(core: RingCore): Claim {
  core.checkIntact();
  if (!core.table.takeable(CONSUMER_ROW)) {
    throw new IpcError('ERR_IPCKIT_LIMIT', `ring ${core.name} takes one receiver and process ${core.table.info(CONSUMER_ROW).pid} has it`, { details: { ring: core.name } });
  }
  const epoch = core.table.claim(CONSUMER_ROW);
  core.mem.store(W_CONSUMER_SLEEPING, 0); // a dead predecessor's flag
  return { row: CONSUMER_ROW, epoch };
}

/** A message read in place from the ring: `bytes` is valid until `release()`. */
export interface RingView {
  /** The payload, in the shared segment itself (a copy on the copying path). */
  readonly bytes: Uint8Array;
  /** Gives the space back to the producers; `bytes` may be overwritten after this. */
  release(): void;
}

type Want = { kind: 'one' } | { kind: 'many'; max: number } | { kind: 'view' };

export class RingReceiver<T> implements Receiver<T> {
  readonly ring: string;
  #core: RingCore;
  #mem: Memory;
  #codec: Codec<T>;
  /** The codec keeps none of the bytes: decode from the scratch (Memory.copyToDecode). */
  #borrow: boolean;
  #spinner: SpinBudget;
  #capacity: number;
  #mask: number;
  #max: number;
  #many: boolean;
  #readPos = 0; // next record to parse
  #tailCache = 0;
  #heldAt = -1; // start of the record behind an unreleased view
  #published = 0; // the head we last stored
  #msgLen = 0; // set by #find
  #msgEnd = 0;
  #waiters = new WaitQueue<unknown, Want>('receive', undefined, () => {
    if (this.#waiters.length === 0) this.#wait.stop();
  });
  #wait: LoopWait;
  #epoch: number;
  #leaveAtExit: () => void; // a terminated worker's row must look dead at once
  #closed = false;
  #error: IpcError | null = null;
  #ended: IpcError | null = null;

  /** @internal Use ring.receiver() or ring.receiverSync(): they take the row under the attach lock. */
  constructor(core: RingCore, options: RingEndpointOptions<CodecOption | undefined>, claim: Claim) {
    this.#codec = resolveCodec(options.codec) as Codec<T>;
    this.#borrow = decodesBorrowed(this.#codec as Codec<unknown>);
    this.#spinner = new SpinBudget(ringSpinOption(options.spinMicros));
    this.ring = core.name;
    this.#core = core;
    this.#mem = core.mem;
    this.#capacity = core.capacity;
    this.#mask = core.mask;
    this.#max = core.maxMessageBytes;
    this.#many = core.many;
    this.#wait = new LoopWait(this.#mem, W_DATA_SIGNAL, SLICE_MS, (res) => {
      if (res < 0) this.#waiters.rejectAll(this.#failIfCorrupt(this.#core.waitError(res, 'receive')));
      else this.#arm(res === 2);
    });
    const head = this.#mem.load(W_HEAD) >>> 0;
    core.span(this.#mem.load(W_TAIL) >>> 0, head);
    this.#readPos = head;
    this.#tailCache = head;
    this.#published = head;
    this.#epoch = claim.epoch;
    this.#leaveAtExit = core.table.clearAtThreadExit(CONSUMER_ROW, W_SPACE_SIGNAL);
    core.retain();
  }

  get maxMessageBytes(): number {
    return this.#max;
  }

  receive(options?: WaitOptions): Promise<T> {
    return this.#request({ kind: 'one' }, options, checkWaitOptions(options, 'receive')) as Promise<T>;
  }

  /** The next message if one is ready now, else undefined. */
  tryReceive(): T | undefined {
    this.#usable();
    if (this.#waiters.length > 0) return undefined;
    const at = this.#find(false);
    if (at < 0) return undefined;
    return this.#takeOne(at);
  }

  /** Waits for at least one message, then returns every message ready now (up to `max`), releasing their space at once. */
  receiveMany(max = Infinity, options?: WaitOptions): Promise<T[]> {
    if (max !== Infinity) validate.integer('max', max, 1);
    return this.#request({ kind: 'many', max }, options, checkWaitOptions(options, 'receive')) as Promise<T[]>;
  }

  /** Every message ready now (up to `max`), possibly none. */
  tryReceiveMany(max = Infinity): T[] {
    if (max !== Infinity) validate.integer('max', max, 1);
    this.#usable();
    if (this.#waiters.length > 0) return [];
    return this.#takeMany(max);
  }

  /**
   * Zero-copy receive: the next message's bytes in the ring itself, valid until
   * `release()` (the producers cannot reuse that space before). One view at a time;
   * other receives may go on meanwhile. No codec is applied.
   */
  receiveView(options?: WaitOptions): Promise<RingView> {
    const aborted = checkWaitOptions(options, 'receive');
    if (this.#heldAt >= 0) return Promise.reject(invalidArgument('release the previous view before asking for another'));
    return this.#request({ kind: 'view' }, options, aborted) as Promise<RingView>;
  }

  tryReceiveView(): RingView | undefined {
    this.#usable();
    if (this.#heldAt >= 0) throw invalidArgument('release the previous view before asking for another');
    if (this.#waiters.length > 0) return undefined;
    const at = this.#find(false);
    return at < 0 ? undefined : this.#takeView(at);
  }

  /**
   * Blocking receive for worker threads and scripts: spins, then sleeps on the futex.
   * Ends like receive(): ERR_IPCKIT_TIMEOUT, ERR_IPCKIT_CLOSED once the producers are
   * done and the ring is empty, ERR_IPCKIT_PEER_GONE when they died.
   */
  receiveSync(timeoutMs?: number): T {
    return this.#receiveSync(validate.timeout(timeoutMs), false, 1) as T;
  }

  /** Blocking batch receive: waits like receiveSync for at least one message, then returns every message ready (up to `max`). */
  receiveManySync(max = Infinity, timeoutMs?: number): T[] {
    if (max !== Infinity) validate.integer('max', max, 1);
    return this.#receiveSync(validate.timeout(timeoutMs), true, max) as T[];
  }

  #receiveSync(ms: number | undefined, many: boolean, max: number): T | T[] {
    this.#usable();
    if (this.#waiters.length > 0) throw invalidArgument('receiveSync cannot overtake pending asynchronous receives');
    const deadline = ms === undefined ? undefined : now() + ms;
    const mem = this.#mem;
    const take = (deep: boolean): T | T[] | undefined => {
      if (many) {
        const batch = this.#takeMany(max);
        return batch.length > 0 ? batch : undefined;
      }
      const at = this.#find(deep);
      return at >= 0 ? this.#takeOne(at) : undefined;
    };
    try {
      let got = take(false);
      if (got !== undefined) return got;
      const end = this.#endState(false);
      if (end) throw end;
      // Spin (the budget adapts to what spinning achieved lately), then sleep.
      got = this.#spinner.spinSync(
        (deep) => {
          if (deep) this.#core.checkIntact();
          const g = take(deep);
          if (g !== undefined) return g;
          const e = this.#endState(deep);
          if (e) throw e;
          return undefined;
        },
        deadline,
        SLICE_MS,
        // Nothing new at the tail: look again without the cost of a full attempt.
        () => {
          for (let i = 0; i < 64 && this.#readPos === this.#tailCache && (mem.load(W_TAIL) >>> 0) === this.#tailCache; i++);
        },
      );
      if (got !== undefined) return got;
      let deep = false;
      for (;;) {
        if (deadline !== undefined && now() >= deadline) throw timeoutError('receive', ms!);
        const seq = mem.prepareSleep(W_DATA_SIGNAL, W_CONSUMER_SLEEPING);
        if (this.#find(false) < 0) {
          const r = mem.waitSync(W_DATA_SIGNAL, seq, remaining(deadline));
          if (r < 0) throw errnoError(-r, 'futex', 'receive');
          deep = r === 2;
        }
        if (deep) this.#core.checkIntact();
        got = take(deep);
        if (got !== undefined) return got;
        const e = this.#endState(deep);
        if (e) throw e;
      }
    } catch (e) {
      throw this.#failIfCorrupt(e);
    }
  }

  /**
   * Stops receiving: pending receives reject with ERR_IPCKIT_CLOSED, the consumer is
   * marked closed (producers waiting for room then get ERR_IPCKIT_PEER_GONE), and the
   * mapping is released. An unreleased view's message will be read again by the next
   * receiver. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#leaveAtExit();
    this.#wait.stop(true);
    this.#waiters.rejectAll(() => closedError('receiver'));
    this.#core.leave(CONSUMER_ROW, this.#epoch, W_SPACE_SIGNAL);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return receiverIterator(this);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- internals ---

  #usable(): void {
    if (this.#closed) throw closedError('receiver');
    if (this.#error) throw this.#error;
  }

  /**
   * Finds the next message from #readPos: returns the byte offset of its payload in the
   * segment (and sets #msgLen, #msgEnd), or -1 if none is ready. Skips padding; turns
   * claims of dead producers into padding (`deep`: also checks live-looking ones).
   */
  #find(deep: boolean): number {
    const mem = this.#mem;
    const cap = this.#capacity;
    let h = this.#readPos;
    let skipped = 0;
    for (;;) {
      if (h === this.#tailCache) {
        const t = mem.load(W_TAIL) >>> 0;
        if (t === h) {
          this.#readPos = h;
          if (h !== this.#published) this.#release(); // padding we skipped is free space
          return -1;
        }
        const used = this.#core.span(t, this.#heldAt >= 0 ? this.#heldAt : h);
        if (((t - h) >>> 0) > used) throw this.#core.corrupt('the tail moved backwards');
        this.#tailCache = t;
      }
      const avail = (this.#tailCache - h) >>> 0;
      const off = h & this.#mask;
      const w = (DATA_OFFSET + off) >>> 2;
      const kind = mem.load(w); // the commit word, read once
      const len = mem.loadPlain(w + 1) >>> 0; // read once; only this local is used
      if (len > cap - RECORD_HEADER - off) throw this.#core.corrupt(`a record at ${h} claims ${len} bytes past the end of the region`);
      const size = RECORD_HEADER + ((len + 7) & ~7);
      if (size > avail) throw this.#core.corrupt(`a record at ${h} of ${size} bytes extends past the tail`);
      if (kind === REC_MESSAGE) {
        if (len > this.#max) throw this.#core.corrupt(`a message of ${len} bytes is above the ring's maximum ${this.#max}`);
        this.#readPos = h;
        this.#msgLen = len;
        this.#msgEnd = (h + size) >>> 0;
        return DATA_OFFSET + off + RECORD_HEADER;
      }
      if (kind === REC_PADDING) {
        h = (h + size) >>> 0;
        skipped += size;
        if (skipped > cap) {
          this.#readPos = h;
          this.#release();
          return -1;
        }
        continue;
      }
      if ((kind & 0xff) === REC_CLAIMED && this.#many) {
        const row = (kind >>> 8) & 0xff;
        if (row < 1 || row > this.#core.producers) throw this.#core.corrupt(`a claim names producer row ${row} of ${this.#core.producers}`);
        if (!this.#claimLive(row, kind >>> 16, deep)) {
          mem.compareExchange(w, kind, REC_PADDING); // fails harmlessly if it was committed meanwhile
          continue;
        }
        this.#readPos = h;
        if (h !== this.#published) this.#release();
        return -1; // in progress
      }
      throw this.#core.corrupt(`unknown record type 0x${(kind >>> 0).toString(16)} at ${h}`);
    }
  }

  /** Is the producer that claimed a record still at it? Cheap checks always; the thread check when `deep`. */
  #claimLive(row: number, epoch16: number, deep: boolean): boolean {
    const table = this.#core.table;
    if (table.state(row) !== ATTACHED || table.epoch16(row) !== epoch16) return false;
    return deep ? table.alive(row, epoch16) : true;
  }

  /** After a message was taken: publish the head (unless a view holds it) and wake a sleeping producer. */
  #release(): void {
    const mem = this.#mem;
    const head = this.#heldAt >= 0 ? this.#heldAt : this.#readPos;
    this.#published = head;
    mem.store(W_HEAD, head);
    if (mem.load(W_PRODUCER_SLEEPING) !== 0) this.#core.wakeProducers();
  }

  #takeOne(at: number): T {
    const payload = this.#mem.copyToDecode(at, this.#msgLen, this.#borrow);
    if (FAULTS) fault('ring:mid-receive');
    this.#readPos = this.#msgEnd;
    this.#release();
    return decodeWith(this.#codec, payload);
  }

  #takeMany(max: number): T[] {
    const out: T[] = [];
    const mem = this.#mem;
    try {
      while (out.length < max) {
        const at = this.#find(false);
        if (at < 0) break;
        const payload = mem.copyToDecode(at, this.#msgLen, this.#borrow);
        if (FAULTS) fault('ring:mid-receive');
        let value: T;
        try {
          value = decodeWith(this.#codec, payload);
        } catch (e) {
          if (out.length > 0) break; // delivered by the next receive, alone
          this.#readPos = this.#msgEnd;
          throw e;
        }
        this.#readPos = this.#msgEnd;
        out.push(value);
      }
    } finally {
      if (this.#readPos !== this.#published) this.#release();
    }
    return out;
  }

  #takeView(at: number): RingView {
    const start = this.#readPos;
    const bytes = this.#mem.view(at, this.#msgLen);
    this.#heldAt = start;
    this.#readPos = this.#msgEnd;
    let released = false;
    return {
      bytes,
      release: () => {
        if (released) return;
        released = true;
        if (this.#heldAt === start) this.#heldAt = -1;
        if (!this.#closed && !this.#error) this.#release();
      },
    };
  }

  /** Why the ring will deliver no more, if it will not: producers closed (CLOSED) or died (PEER_GONE; `deep` checks processes). */
  #endState(deep: boolean): IpcError | undefined {
    if (this.#ended) return this.#ended;
    const mem = this.#mem;
    const core = this.#core;
    if (deep) core.checkIntact();
    if (mem.load(W_PRODUCERS_EVER) === 0) return undefined;
    let dead = false;
    for (let row = 1; row <= core.producers; row++) {
      if (core.table.state(row) !== ATTACHED) continue;
      if (!deep || core.table.alive(row)) return undefined;
      dead = true;
    }
    // Nothing more can come; but a message committed just before the last producer left counts.
    if (this.#find(deep) >= 0) return undefined;
    this.#ended = dead ? peerGone(this.ring, core.many ? 'last producer' : 'producer') : closedError(`ring ${this.ring} (its producers are done)`);
    return this.#ended;
  }

  #failIfCorrupt(e: unknown): unknown {
    if (isIpcError(e, 'ERR_IPCKIT_CORRUPT') && !this.#error) {
      this.#error = e;
      this.#wait.stop();
      this.#waiters.rejectAll(e);
    }
    return e;
  }

  #request(want: Want, options: WaitOptions | undefined, aborted: IpcError | undefined): Promise<unknown> {
    if (this.#closed) return Promise.reject(closedError('receiver'));
    if (this.#error) return Promise.reject(this.#error);
    if (aborted) return Promise.reject(aborted);
    if (this.#waiters.length === 0) {
      try {
        const v = this.#serveNow(want, false);
        if (v !== NOTHING) return Promise.resolve(v);
        const end = this.#endState(false);
        if (end) return Promise.reject(end);
        // Spin a little before going to sleep; an event-loop spin lasts at most 1 ms.
        const mem = this.#mem;
        const s = this.#spinner.spinFor(
          () => {
            for (let i = 0; i < 64 && (mem.load(W_TAIL) >>> 0) === this.#tailCache; i++);
            return this.#serveNow(want, false);
          },
          NOTHING,
          1000,
        );
        if (s !== NOTHING) return Promise.resolve(s);
      } catch (e) {
        return Promise.reject(this.#failIfCorrupt(e));
      }
    }
    const p = this.#waiters.enqueue(options, want);
    this.#arm(false);
    return p;
  }

  /** Serves one request from what is ready now; NOTHING if nothing is. */
  #serveNow(want: Want, deep: boolean): unknown {
    if (want.kind === 'many') {
      const batch = this.#takeMany(want.max);
      return batch.length > 0 ? batch : NOTHING;
    }
    const at = this.#find(deep);
    if (at < 0) return NOTHING;
    if (want.kind === 'view') return this.#takeView(at);
    return this.#takeOne(at);
  }

  /** Serves queued requests in order while messages are ready. */
  #deliver(deep: boolean): void {
    for (;;) {
      const want = this.#waiters.peek();
      if (!want) return;
      if (want.kind === 'view' && this.#heldAt >= 0) {
        this.#waiters.rejectNext(invalidArgument('release the previous view before asking for another'));
        continue;
      }
      let v: unknown;
      try {
        v = this.#serveNow(want, deep);
      } catch (e) {
        if (isIpcError(e, 'ERR_IPCKIT_CORRUPT')) throw e;
        this.#waiters.rejectNext(e); // a payload that failed to decode: that message only
        continue;
      }
      if (v === NOTHING) return;
      this.#waiters.resolveNext(v);
    }
  }

  /** Event-loop wait for data: spin (done in #request), then sleep on the data signal in slices. */
  #arm(deep: boolean): void {
    if (this.#wait.pending || this.#closed || this.#error) return;
    const mem = this.#mem;
    try {
      if (deep) this.#core.checkIntact(); // before touching the pages after a slice asleep
      this.#deliver(deep);
      if (this.#waiters.length === 0) return;
      const end = this.#endState(deep);
      if (end) {
        this.#waiters.rejectAll(end);
        return;
      }
      if (this.#spinner.max === Infinity) {
        this.#wait.retry(() => {
          const until = now() + 1;
          while (now() < until && (mem.load(W_TAIL) >>> 0) === this.#tailCache && this.#readPos === this.#tailCache);
          this.#arm(this.#wait.deepDue());
        });
        return;
      }
      const seq = mem.prepareSleep(W_DATA_SIGNAL, W_CONSUMER_SLEEPING);
      this.#deliver(false);
      if (this.#waiters.length === 0) return;
      this.#wait.sleep(seq);
    } catch (e) {
      const err = this.#failIfCorrupt(e);
      this.#waiters.rejectAll(err);
    }
  }

}

const NOTHING = Symbol('nothing');
