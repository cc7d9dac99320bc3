/**
 * The slot machinery of a work queue, shared by its producing and consuming sides: the
 * segment and geometry, this handle's participant row, the slot transitions (each one
 * compare-and-swap of the slot's state word), recovery of dead owners' slots, and the
 * wake-ups.
 *
 * - A slot's state word says what it holds and who owns it: FREE, WRITING (a producer is
 *   filling it), READY (an item waits), TAKEN (a consumer has it and has not called
 *   acknowledged). The owner is a row of the participant table and its epoch.
 * - So the queue is consistent after a crash at any instruction: a WRITING slot whose
 *   owner died goes back to FREE (its put never resolved), a TAKEN slot whose owner died
 *   goes back to READY and is delivered again (at-least-once; the redelivered job keeps
 *   its id, and `deliveries` counts the attempts). Live handles look for dead owners
 *   whenever they wait, and every 100 ms while busy.
 */
import { decodesBorrowed, decodeWith, encodeBorrowed, encodeWith, type Codec } from '../../core/codec.js';
import type { Job, WorkQueueStats } from '../../core/work-queue.js';
import { closedError, errnoError, invalidArgument, IpcError, isIpcError } from '../../core/errors.js';
import { frameTooLarge } from '../../core/framing.js';
import { AttachLock } from '../../memory/attach-lock.js';
import { checkHeader, FLAG_PERSISTENT, H_FLAGS, H_TABLE_OFFSET, H_TABLE_ROWS } from '../../memory/header.js';
import type { Memory } from '../../memory/memory.js';
import { ATTACHED, Participants } from '../../memory/participants.js';
import type { Segment } from '../../memory/segment.js';
import { fault, FAULTS } from '../../os/faults.js';
import {
  FREE,
  READY,
  readGeometry,
  SLOT_HEADER,
  S_DELIVERIES,
  S_ID_HI,
  S_ID_LO,
  S_LENGTH,
  S_STATE,
  TAKEN,
  VERSION,
  WRITING,
  W_DONE_SIGNAL,
  W_DONE_TOTAL,
  W_GETTERS_SLEEPING,
  W_GET_HINT,
  W_ITEMS_SIGNAL,
  W_JOINERS_SLEEPING,
  W_NEXT_TOKEN,
  W_PUTTERS_SLEEPING,
  W_PUT_HINT,
  W_PUT_TOTAL,
  W_REDELIVERED_TOTAL,
  W_SHUTDOWN,
  W_SPACE_SIGNAL,
  type QueueGeometry,
} from './layout.js';

const RECOVER_EVERY_MS = 100;
const now = (): number => performance.now();

/** A job taken from the queue: acknowledge it (`queue.ack(job)`) once handled. */
export type { Job };

export class JobImpl<T> implements Job<T> {
  constructor(
    readonly id: number,
    readonly data: T,
    readonly deliveries: number,
    readonly slot: number,
  ) {}
  get redelivered(): boolean {
    return this.deliveries > 1;
  }
}

/** The contract's counts (capacity in jobs; put, done and redelivered are wrapping 32-bit counters since creation), and what a shared-memory queue adds. */
export interface WorkQueueInfo extends WorkQueueStats {
  capacity: number;
  /** Slots being written by a producer. */
  writing: number;
  free: number;
  /** Attached handles now. */
  participants: number;
  shutdown: boolean;
}

export function corrupt(name: string, what: string): IpcError {
  return new IpcError('ERR_IPCKIT_CORRUPT', `work queue ${name} is corrupt: ${what}`, { path: name, details: { queue: name } });
}

export function geometryOf(segment: Segment, name: string): QueueGeometry {
  const mem = segment.mem;
  checkHeader(mem, name, 'workqueue', VERSION);
  return readGeometry(mem, segment.size, mem.load(H_TABLE_OFFSET) >>> 0, mem.load(H_TABLE_ROWS) >>> 0, (what) => corrupt(name, what));
}

export class QueueCore<T> {
  readonly mem: Memory;
  readonly capacity: number;
  readonly maxMessageBytes: number;
  readonly table: Participants;
  readonly lock: AttachLock;
  readonly persistent: boolean;
  readonly #slotsWord: number;
  readonly #slotWords: number;
  readonly #slotsByte: number;
  readonly #slotBytes: number;
  /** The codec keeps none of the bytes: decode from the scratch (Memory.copyToDecode). */
  readonly #borrow: boolean;
  /** Our participant row and the epoch we claimed it with. */
  row = 0;
  epoch = 0;
  #takenWord = 0; // TAKEN | row | epoch
  #writingWord = 0;
  #token = 0;
  #seq = 0;
  /** Jobs this handle took and has not finished, by id, in taking order. */
  readonly inFlight = new Map<number, JobImpl<T>>();
  #lastRecover = 0;
  #ops = 0;
  closed = false;
  error: IpcError | null = null;
  /** Each side's "reject everything that waits" (a corrupt queue, a failed futex wait). */
  readonly rejecters: Array<(e: IpcError) => void> = [];

  constructor(
    readonly name: string,
    readonly segment: Segment,
    geometry: QueueGeometry,
    readonly codec: Codec<T>,
  ) {
    this.mem = segment.mem;
    this.capacity = geometry.capacity;
    this.maxMessageBytes = geometry.maxMessageBytes;
    this.#slotsByte = geometry.slotsOffset;
    this.#slotBytes = geometry.slotBytes;
    this.#slotsWord = geometry.slotsOffset >>> 2;
    this.#slotWords = geometry.slotBytes >>> 2;
    this.#borrow = decodesBorrowed(codec as Codec<unknown>);
    this.table = new Participants(this.mem, this.mem.load(H_TABLE_OFFSET) >>> 0, geometry.participants);
    this.lock = new AttachLock(this.mem, `work queue ${name}`);
    this.persistent = (this.mem.load(H_FLAGS) & FLAG_PERSISTENT) !== 0;
  }

  /** Under the attach lock (or before the queue is published): takes a participant row for this handle. */
  claimRow(): void {
    this.checkIntact();
    const row = this.table.findTakeable();
    if (row < 0) throw new IpcError('ERR_IPCKIT_LIMIT', `work queue ${this.name}: all ${this.table.rows} participant rows are held by live threads (create it with a larger maxParticipants)`, { details: { maxParticipants: this.table.rows } });
    this.attached(row, this.table.claim(row));
  }

  /** The row is ours: the words our slots will hold, and our token for job ids. */
  attached(row: number, epoch: number): void {
    this.row = row;
    this.epoch = epoch;
    const e16 = epoch & 0xffff;
    this.#takenWord = (TAKEN | (row << 4) | (e16 << 16)) | 0;
    this.#writingWord = (WRITING | (row << 4) | (e16 << 16)) | 0;
    this.#token = this.mem.add(W_NEXT_TOKEN, 1) >>> 0;
  }

  slotWord(slot: number, field: number): number {
    return this.#slotsWord + slot * this.#slotWords + field;
  }

  corrupt(what: string): IpcError {
    return corrupt(this.name, what);
  }

  checkIntact(): void {
    if (!this.segment.isIntact()) throw this.corrupt('the segment was shrunk under us (ftruncate by a peer); touching it would crash this process with SIGBUS');
  }

  usable(): void {
    if (this.closed) throw closedError(`work queue ${this.name}`);
    if (this.error) throw this.error;
  }

  /** Records a failure: a corrupt queue stays failed, and every side rejects what waits. */
  fail(e: unknown): IpcError {
    const err = isIpcError(e) ? e : new IpcError('ERR_IPCKIT_SYSCALL', `work queue ${this.name}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    if (err.code === 'ERR_IPCKIT_CORRUPT' && !this.error) {
      this.error = err;
      this.rejectAll(err);
    }
    return err;
  }

  /** Every wait of every side ends with `err`. */
  rejectAll(err: IpcError): void {
    for (const reject of this.rejecters) reject(err);
  }

  /** A futex wait failed (-errno `res`): the queue is unusable for every waiter. */
  waitFailed(res: number, what: string): void {
    let err: IpcError;
    try {
      this.checkIntact();
      err = errnoError(-res, 'futex_waitv', what);
    } catch (e) {
      err = e as IpcError;
    }
    this.rejectAll(this.fail(err));
  }

  /** `borrow`: the bytes are placed before the next encode (or owned with ownBytes); src/core/codec.ts. */
  encode(item: T, borrow = true): Uint8Array {
    const payload = borrow ? encodeBorrowed(this.codec, item) : encodeWith(this.codec, item);
    if (payload.length > this.maxMessageBytes) throw frameTooLarge(payload.length, this.maxMessageBytes, 'send');
    return payload;
  }

  /** Wakes whoever sleeps on `signal` if they raised the flag (the waker clears it). Callers on a hot path look at the flag first. */
  wake(signal: number, flag: number): void {
    const mem = this.mem;
    if (mem.compareExchange(flag, 1, 0) === 1) {
      mem.add(signal, 1);
      mem.wake(signal, -1);
    }
  }

  // --- producing ---

  /** Claims a FREE slot, writes the item, makes it READY. Returns its id, or -1 if none is free. */
  tryPlace(payload: Uint8Array, retried = false): number {
    const mem = this.mem;
    if (mem.load(W_SHUTDOWN) !== 0) throw closedError(`work queue ${this.name} (shut down)`);
    if ((++this.#ops & 255) === 0) this.maintain(false);
    const cap = this.capacity;
    let i = (mem.load(W_PUT_HINT) >>> 0) % cap;
    if (FAULTS) fault('workqueue:before-claim');
    for (let n = 0; n < cap; n++, i = i + 1 === cap ? 0 : i + 1) {
      const sw = this.slotWord(i, S_STATE);
      if (mem.load(sw) !== FREE || mem.compareExchange(sw, FREE, this.#writingWord) !== FREE) continue;
      if (FAULTS) fault('workqueue:after-claim');
      const id = this.#token * 4294967296 + this.#seq;
      this.#seq = (this.#seq + 1) >>> 0;
      mem.storePlain(sw + S_LENGTH, payload.length);
      mem.storePlain(sw + S_ID_LO, id % 4294967296 | 0);
      mem.storePlain(sw + S_ID_HI, Math.floor(id / 4294967296) | 0);
      mem.storePlain(sw + S_DELIVERIES, 0);
      const at = this.#slotsByte + i * this.#slotBytes + SLOT_HEADER;
      if (FAULTS && payload.length >= 2) {
        mem.copyIn(at, payload, 0, payload.length >>> 1);
        fault('workqueue:mid-copy');
        mem.copyIn(at + (payload.length >>> 1), payload, payload.length >>> 1, payload.length - (payload.length >>> 1));
      } else {
        mem.copyIn(at, payload, 0, payload.length);
      }
      if (FAULTS) fault('workqueue:before-publish');
      mem.store(sw, READY);
      mem.store(W_PUT_HINT, i + 1 === cap ? 0 : i + 1);
      return id;
    }
    // Full: a dead producer's or consumer's slots may be what fills it.
    if (!retried && now() - this.#lastRecover >= RECOVER_EVERY_MS && this.recover() > 0) return this.tryPlace(payload, true);
    return -1;
  }

  /** After items were put: statistics and one wake-up for sleeping consumers. */
  afterPut(n: number): void {
    const mem = this.mem;
    mem.add(W_PUT_TOTAL, n);
    if (FAULTS) fault('workqueue:before-wake');
    if (mem.load(W_GETTERS_SLEEPING) !== 0) this.wake(W_ITEMS_SIGNAL, W_GETTERS_SLEEPING);
  }

  afterDone(n: number): void {
    const mem = this.mem;
    mem.add(W_DONE_TOTAL, n);
    if (mem.load(W_PUTTERS_SLEEPING) !== 0) this.wake(W_SPACE_SIGNAL, W_PUTTERS_SLEEPING);
    if (mem.load(W_JOINERS_SLEEPING) !== 0) this.wake(W_DONE_SIGNAL, W_JOINERS_SLEEPING);
  }

  // --- consuming ---

  /**
   * Takes one READY item, or undefined. An item that fails to decode is dropped (counted as
   * done) and its error thrown; but in a batch that already holds items (`inBatch`) it is
   * put back for the next get to report alone, since the batch cannot carry the error.
   */
  take(retried = false, inBatch = false): JobImpl<T> | undefined {
    const mem = this.mem;
    if ((++this.#ops & 255) === 0) this.maintain(false);
    const cap = this.capacity;
    let i = (mem.load(W_GET_HINT) >>> 0) % cap;
    for (let n = 0; n < cap; n++, i = i + 1 === cap ? 0 : i + 1) {
      const sw = this.slotWord(i, S_STATE);
      if (mem.load(sw) !== READY || mem.compareExchange(sw, READY, this.#takenWord) !== READY) continue;
      mem.store(W_GET_HINT, i + 1 === cap ? 0 : i + 1);
      // Ours now: read what the producer wrote (each field once, checked).
      const len = mem.loadPlain(sw + S_LENGTH) >>> 0;
      if (len > this.maxMessageBytes) {
        mem.store(sw, FREE);
        throw this.corrupt(`slot ${i} holds ${len} bytes, more than the maximum ${this.maxMessageBytes}`);
      }
      const id = (mem.loadPlain(sw + S_ID_HI) >>> 0) * 4294967296 + (mem.loadPlain(sw + S_ID_LO) >>> 0);
      const deliveries = (mem.loadPlain(sw + S_DELIVERIES) >>> 0) + 1;
      mem.storePlain(sw + S_DELIVERIES, deliveries);
      const payload = mem.copyToDecode(this.#slotsByte + i * this.#slotBytes + SLOT_HEADER, len, this.#borrow);
      if (FAULTS) fault('workqueue:after-take');
      let data: T;
      try {
        data = decodeWith(this.codec, payload);
      } catch (e) {
        if (inBatch) {
          mem.storePlain(sw + S_DELIVERIES, deliveries - 1);
          mem.store(sw, READY);
          mem.store(W_GET_HINT, i);
          this.wake(W_ITEMS_SIGNAL, W_GETTERS_SLEEPING);
          throw e;
        }
        // An item we cannot decode is not ours to retry forever: drop it, counted as done.
        mem.store(sw, FREE);
        this.afterDone(1);
        throw e;
      }
      const job = new JobImpl(id, data, deliveries, i);
      this.inFlight.set(id, job);
      return job;
    }
    // Nothing ready: a dead consumer may hold jobs that are due again.
    if (!retried && now() - this.#lastRecover >= RECOVER_EVERY_MS && this.recover() > 0) return this.take(true, inBatch);
    return undefined;
  }

  takeMany(max: number): Array<JobImpl<T>> {
    const out: Array<JobImpl<T>> = [];
    while (out.length < max) {
      let job: JobImpl<T> | undefined;
      try {
        job = this.take(false, out.length > 0);
      } catch (e) {
        if (out.length > 0 && !isIpcError(e, 'ERR_IPCKIT_CORRUPT')) break; // the next get reports it
        throw e;
      }
      if (!job) break;
      out.push(job);
    }
    return out;
  }

  /** Our TAKEN slot to `to` (FREE when done, READY to give it back). */
  release(t: JobImpl<T>, to: number): void {
    const mem = this.mem;
    const sw = this.slotWord(t.slot, S_STATE);
    this.inFlight.delete(t.id);
    const idNow = (mem.loadPlain(sw + S_ID_HI) >>> 0) * 4294967296 + (mem.loadPlain(sw + S_ID_LO) >>> 0);
    if (idNow !== t.id || mem.compareExchange(sw, this.#takenWord, to) !== this.#takenWord) {
      throw new IpcError('ERR_IPCKIT_CORRUPT', `work queue ${this.name}: job ${t.id} was taken from us while we held it (another process thinks we died?)`);
    }
  }

  oldest(): JobImpl<T> {
    const first = this.inFlight.values().next();
    if (first.done) throw invalidArgument('ack() called with no job in progress on this handle');
    return first.value;
  }

  /** Items put and not yet done: READY or TAKEN slots. */
  unfinished(): number {
    const mem = this.mem;
    let n = 0;
    for (let i = 0; i < this.capacity; i++) {
      const kind = mem.load(this.slotWord(i, S_STATE)) & 0xf;
      if (kind === READY || kind === TAKEN) n++;
    }
    return n;
  }

  /** ERR_IPCKIT_CLOSED when the queue is shut down and nothing is ready or in progress elsewhere. */
  drained(): IpcError | undefined {
    const mem = this.mem;
    if (mem.load(W_SHUTDOWN) === 0) return undefined;
    for (let i = 0; i < this.capacity; i++) {
      const w = mem.load(this.slotWord(i, S_STATE));
      const kind = w & 0xf;
      if (kind === READY || kind === WRITING || (kind === TAKEN && w !== this.#takenWord)) return undefined;
    }
    return closedError(`work queue ${this.name} (shut down, and every item is done)`);
  }

  // --- recovery ---

  /**
   * Gives the slots of dead owners back: WRITING -> FREE (that put never resolved),
   * TAKEN -> READY (delivered again). Returns how many slots it changed.
   */
  recover(): number {
    const mem = this.mem;
    this.#lastRecover = now();
    const alive = new Map<number, boolean>();
    let changed = 0;
    let redelivered = 0;
    for (let i = 0; i < this.capacity; i++) {
      const sw = this.slotWord(i, S_STATE);
      const w = mem.load(sw);
      const kind = w & 0xf;
      if (kind !== WRITING && kind !== TAKEN) {
        if (kind > TAKEN) throw this.corrupt(`slot ${i} has state 0x${(w >>> 0).toString(16)}`);
        continue;
      }
      if (w === this.#takenWord || w === this.#writingWord) continue; // ours
      const p = (w >>> 4) & 0xfff;
      if (p >= this.table.rows) throw this.corrupt(`slot ${i} is owned by participant ${p} of ${this.table.rows}`);
      const key = w & ~0xf;
      let live = alive.get(key);
      if (live === undefined) alive.set(key, (live = this.table.alive(p, w >>> 16)));
      if (live) continue;
      if (mem.compareExchange(sw, w, kind === WRITING ? FREE : READY) === w) {
        changed++;
        if (kind === TAKEN) redelivered++;
      }
    }
    if (redelivered > 0) mem.add(W_REDELIVERED_TOTAL, redelivered);
    if (changed > 0) {
      this.wake(W_ITEMS_SIGNAL, W_GETTERS_SLEEPING);
      this.wake(W_SPACE_SIGNAL, W_PUTTERS_SLEEPING);
    }
    return changed;
  }

  /** `n` jobs this handle gave back (close): counted, and sleeping consumers woken. */
  redelivered(n: number): void {
    this.mem.add(W_REDELIVERED_TOTAL, n);
    this.wake(W_ITEMS_SIGNAL, W_GETTERS_SLEEPING);
  }

  // --- the whole queue ---

  /** Shuts the queue down for everyone and wakes every sleeper, so that each sees it. */
  shutdown(): void {
    const mem = this.mem;
    mem.store(W_SHUTDOWN, 1);
    for (const [signal, flag] of [[W_ITEMS_SIGNAL, W_GETTERS_SLEEPING], [W_SPACE_SIGNAL, W_PUTTERS_SLEEPING], [W_DONE_SIGNAL, W_JOINERS_SLEEPING]] as const) {
      mem.store(flag, 0);
      mem.add(signal, 1);
      mem.wake(signal, -1);
    }
  }

  isShutdown(): boolean {
    return this.mem.load(W_SHUTDOWN) !== 0;
  }

  /** Counts of the queue now (a scan of the slots and rows). */
  stats(): WorkQueueInfo {
    const mem = this.mem;
    // No dead letters here: a job is delivered until it is acknowledged.
    const s: WorkQueueInfo = { capacity: this.capacity, ready: 0, inFlight: 0, writing: 0, free: 0, put: mem.load(W_PUT_TOTAL) >>> 0, done: mem.load(W_DONE_TOTAL) >>> 0, redelivered: mem.load(W_REDELIVERED_TOTAL) >>> 0, deadLettered: 0, participants: 0, shutdown: this.isShutdown() };
    for (let i = 0; i < this.capacity; i++) {
      const kind = mem.load(this.slotWord(i, S_STATE)) & 0xf;
      if (kind === READY) s.ready++;
      else if (kind === TAKEN) s.inFlight++;
      else if (kind === WRITING) s.writing++;
      else s.free++;
    }
    for (let p = 0; p < this.table.rows; p++) if (this.table.state(p) === ATTACHED) s.participants++;
    return s;
  }

  /** Recovery when waiting (`force`) or every RECOVER_EVERY_MS while busy. */
  maintain(force: boolean): void {
    if (force || now() - this.#lastRecover >= RECOVER_EVERY_MS) this.recover();
  }
}
