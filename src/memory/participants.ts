/**
 * The participant table of an ipckit object (its place and size are in the common
 * header, words 10 and 11): one 32-byte row per attached endpoint or handle, so that a
 * peer can tell whether whoever holds something (a ring's producer slot, a work-queue
 * job, a pool permit) still lives. Rows are taken under the attach lock.
 *
 *   word 0  pid (0: none; a worker's row is cleared to 0 when its thread ends unclosed)
 *   word 1  state: 0 free, 1 attached, 2 closed
 *   word 2  start time of the attached thread, low 32 bits (clock ticks since boot; 0: not recorded)
 *   word 3  start time, high 32 bits
 *   word 4  epoch: bumped at every claim, so a stale reference to the row (a claim word,
 *           a job, a permit carrying the epoch's low 16 bits) never matches a new participant
 *   word 5  thread id of the attached thread (0: the process's main thread, or a peer that
 *           records none: the pid is checked then)
 *   words 6, 7  reserved (0)
 *
 * A row is alive while it is attached and its thread (its pid's main thread, if it names
 * none) runs with the recorded start time: a process that died, a worker thread that was
 * terminated, and a pid or thread id reused by someone else all look dead.
 */
import { isProcessAlive, selfThreadId, selfThreadStartTime } from '../os/liveness.js';
import type { Memory } from './memory.js';

export const ROW_BYTES = 32;
const ROW_WORDS = 8;
export const P_PID = 0;
export const P_STATE = 1;
export const P_START_LO = 2;
export const P_START_HI = 3;
export const P_EPOCH = 4;
export const P_TID = 5;

export const FREE = 0;
export const ATTACHED = 1;
export const CLOSED = 2;
export const STATE_NAMES = ['free', 'attached', 'closed'] as const;

export interface ParticipantInfo {
  pid: number;
  tid: number;
  state: 'free' | 'attached' | 'closed';
  alive: boolean;
}

/**
 * Does the row whose words `field` reads name a live thread (its state is not checked
 * here)? Also used on a copy of the table read from outside (ipckit ls and gc).
 */
export function rowAlive(field: (index: number) => number): boolean {
  const pid = field(P_PID) >>> 0;
  if (pid === 0) return false;
  const tid = field(P_TID) >>> 0;
  const start = (field(P_START_HI) >>> 0) * 2 ** 32 + (field(P_START_LO) >>> 0);
  return isProcessAlive(tid || pid, start || undefined);
}

export class Participants {
  readonly #base: number;

  constructor(
    readonly mem: Memory,
    /** Byte offset of the table (8-byte aligned, checked by the kind against its layout). */
    readonly offset: number,
    readonly rows: number,
  ) {
    this.#base = offset >>> 2;
  }

  /** The word index of `field` of `row`. */
  word(row: number, field: number): number {
    return this.#base + row * ROW_WORDS + field;
  }

  state(row: number): number {
    return this.mem.load(this.word(row, P_STATE));
  }

  /** The epoch's low 16 bits, as references to the row carry them. */
  epoch16(row: number): number {
    return this.mem.load(this.word(row, P_EPOCH)) & 0xffff;
  }

  /** Is `row` attached to a live thread (and, if `epoch16` is given, still the same claim)? */
  alive(row: number, epoch16?: number): boolean {
    const mem = this.mem;
    if (mem.load(this.word(row, P_STATE)) !== ATTACHED) return false;
    if (epoch16 !== undefined && this.epoch16(row) !== epoch16) return false;
    return rowAlive((field) => mem.load(this.word(row, field)));
  }

  /** Under the attach lock: may `row` be taken (it is not attached to a live thread)? */
  takeable(row: number): boolean {
    return this.state(row) !== ATTACHED || !this.alive(row);
  }

  /** Under the attach lock: the first takeable row in [from, to), or -1. */
  findTakeable(from = 0, to = this.rows): number {
    for (let r = from; r < to; r++) if (this.takeable(r)) return r;
    return -1;
  }

  /** Under the attach lock: claims `row` for this thread. Returns the new epoch (u32). */
  claim(row: number): number {
    const mem = this.mem;
    const epoch = (mem.add(this.word(row, P_EPOCH), 1) + 1) >>> 0;
    mem.store(this.word(row, P_PID), process.pid);
    mem.store(this.word(row, P_TID), selfThreadId === process.pid ? 0 : selfThreadId);
    mem.store(this.word(row, P_START_LO), selfThreadStartTime % 2 ** 32 | 0);
    mem.store(this.word(row, P_START_HI), Math.floor(selfThreadStartTime / 2 ** 32) | 0);
    mem.store(this.word(row, P_STATE), ATTACHED); // last: the row is complete
    return epoch;
  }

  /** Is `row` still ours (our pid, the epoch we claimed it with)? */
  mine(row: number, epoch: number): boolean {
    return this.mem.load(this.word(row, P_PID)) === process.pid && this.mem.load(this.word(row, P_EPOCH)) >>> 0 === epoch >>> 0;
  }

  /** Our row goes to `state` (CLOSED or FREE), if it is still ours. One store: no lock needed. */
  leave(row: number, epoch: number, state: number): void {
    if (this.mine(row, epoch)) this.mem.store(this.word(row, P_STATE), state);
  }

  /** In a worker thread: if the thread ends without closing, the row's pid is cleared (it looks dead at once) and `signal` is bumped and woken. */
  clearAtThreadExit(row: number, signal: number): () => void {
    return this.mem.atThreadExit(this.word(row, P_PID), process.pid, 0, signal);
  }

  info(row: number): ParticipantInfo {
    const mem = this.mem;
    const state = mem.load(this.word(row, P_STATE));
    return {
      pid: mem.load(this.word(row, P_PID)) >>> 0,
      tid: mem.load(this.word(row, P_TID)) >>> 0,
      state: STATE_NAMES[state] ?? 'free',
      alive: state === ATTACHED && this.alive(row),
    };
  }
}
