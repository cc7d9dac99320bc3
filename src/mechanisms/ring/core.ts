/**
 * What both endpoints of a ring share: the segment and the geometry read once at open,
 * the participant table (row 0 the consumer, rows 1..P the producers), the attach lock,
 * and the wake-ups. Reference-counted: the Ring handle and each endpoint hold one.
 */
import { spinOption } from '../../os/spin.js';
import { errnoError, IpcError } from '../../core/errors.js';
import { AttachLock } from '../../memory/attach-lock.js';
import { checkHeader, H_TABLE_OFFSET, H_TABLE_ROWS } from '../../memory/header.js';
import type { Memory } from '../../memory/memory.js';
import { CLOSED, Participants } from '../../memory/participants.js';
import type { Segment } from '../../memory/segment.js';
import * as validate from '../../core/validate.js';
import { CONSUMER_ROW, readGeometry, VERSION, W_DATA_SIGNAL, W_CONSUMER_SLEEPING, W_PRODUCER_SLEEPING, W_SPACE_SIGNAL } from './layout.js';

export function corrupt(ring: string, what: string): IpcError {
  return new IpcError('ERR_IPCKIT_CORRUPT', `ring ${ring} is corrupt: ${what}`, { path: ring, details: { ring } });
}

export function peerGone(ring: string, who: string): IpcError {
  return new IpcError('ERR_IPCKIT_PEER_GONE', `ring ${ring}: the ${who} died`, { details: { ring } });
}

/** The spin option of a ring endpoint, checked (µs; Infinity: never sleep). */
export function ringSpinOption(value: unknown): number {
  return spinOption(value, true);
}

export class RingCore {
  readonly mem: Memory;
  readonly capacity: number;
  readonly mask: number;
  readonly maxMessageBytes: number;
  readonly many: boolean;
  /** Producer rows: 1 .. producers. */
  readonly producers: number;
  readonly persistent: boolean;
  readonly table: Participants;
  readonly lock: AttachLock;
  #refs = 1;

  constructor(
    readonly name: string,
    readonly segment: Segment,
  ) {
    const mem = segment.mem;
    this.mem = mem;
    this.persistent = checkHeader(mem, name, 'ring', VERSION).persistent;
    const tableOffset = mem.load(H_TABLE_OFFSET) >>> 0;
    const tableRows = mem.load(H_TABLE_ROWS) >>> 0;
    const g = readGeometry(mem, segment.size, tableOffset, tableRows, (what) => corrupt(name, what));
    this.capacity = g.capacity;
    this.mask = g.capacity - 1;
    this.maxMessageBytes = g.maxMessageBytes;
    this.many = g.many;
    this.producers = g.producers;
    this.table = new Participants(mem, tableOffset, tableRows);
    this.lock = new AttachLock(mem, `ring ${name}`);
  }

  retain(): void {
    this.#refs++;
  }

  release(): void {
    if (--this.#refs === 0) this.segment.close();
  }

  corrupt(what: string): IpcError {
    return corrupt(this.name, what);
  }

  /** Checks the head/tail pair read from the segment; returns the bytes in use. */
  span(tail: number, head: number): number {
    const used = (tail - head) >>> 0;
    if (used > this.capacity || (tail & 7) !== 0 || (head & 7) !== 0) throw this.corrupt(`cursors tail ${tail} / head ${head} are inconsistent`);
    return used;
  }

  /** The segment is still as large as we mapped it (a peer's ftruncate would make our next touch a SIGBUS). */
  checkIntact(): void {
    if (!this.segment.isIntact()) throw this.corrupt('the segment was shrunk under us (ftruncate by a peer); touching it would crash this process with SIGBUS');
  }

  /** The error for a failed futex wait: a shrunk segment shows as EFAULT. */
  waitError(res: number, what: string): IpcError {
    try {
      this.checkIntact();
    } catch (e) {
      return e as IpcError;
    }
    return errnoError(-res, 'futex_waitv', what);
  }

  consumerAlive(): boolean {
    return this.table.alive(CONSUMER_ROW);
  }

  /** Wakes the consumer if it raised its sleeper flag (the flag is cleared by whoever wakes). */
  wakeConsumer(): void {
    const mem = this.mem;
    if (mem.compareExchange(W_CONSUMER_SLEEPING, 1, 0) === 1) {
      mem.add(W_DATA_SIGNAL, 1);
      mem.wake(W_DATA_SIGNAL, -1);
    }
  }

  wakeProducers(): void {
    const mem = this.mem;
    if (mem.compareExchange(W_PRODUCER_SLEEPING, 1, 0) === 1) {
      mem.add(W_SPACE_SIGNAL, 1);
      mem.wake(W_SPACE_SIGNAL, -1);
    }
  }

  /**
   * An end closes: its row is marked closed (our own row, one store: no lock, so a live
   * process squatting on the lock cannot keep us), everyone sleeping on `wake` is woken,
   * and this end's reference to the mapping is released. A segment shrunk under us is not
   * touched (that would be a SIGBUS).
   */
  leave(row: number, epoch: number, wake: number): void {
    try {
      if (!this.segment.isIntact()) return;
      this.table.leave(row, epoch, CLOSED);
      this.signal(wake);
    } finally {
      this.release();
    }
  }

  /** Unconditional wake of everyone sleeping on `signal` (used on close). */
  signal(word: number): void {
    this.mem.add(word, 1);
    this.mem.wake(word, -1);
  }
}
