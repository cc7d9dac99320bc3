/**
 * BoundedPool: at most N permits held at a time, across processes and threads, and the
 * permits of a holder that died come back. It is what a POSIX semaphore used as "at most
 * N" cannot be: a semaphore has no undo, so a holder killed between wait and post loses
 * its permit forever.
 *
 * How: an ipckit object (the common header, magic 'IPKP', src/memory/header.ts) with a
 * participant table (src/memory/participants.ts) and one u32 slot per permit. Each
 * handle takes a row of the table when it opens (under the attach lock); a slot is free
 * (0) or names the row that holds it and the row's epoch. Taking and returning a permit
 * are single compare-and-swaps on a slot, so there is no lock to be left held by a dying
 * holder. Returning one bumps a counter and wakes waiters (a futex).
 *
 * A holder is dead when its row's thread is gone: a process that died, a worker thread
 * that ended (its row is also cleared at once by an exit action, which wakes the
 * waiters), a pid or thread id reused by someone else (the start time differs). Dead
 * holders are found whenever an acquire finds no free slot (before it starts to wait),
 * then every `checkInterval` ms (default 100) while it waits, when a worker's exit wakes
 * it, and on `reclaim()`.
 *
 * Layout (docs/semaphore.md), after the 64-byte common header:
 *
 *   offset  64  u32 permits          1 .. 65536
 *   offset  68  u32 releases         bumped and futex-woken on every release and reclaim
 *   offset  72  u32 slots offset     where slot[0] is: after the participant table
 *   offset 128  participant table    (header words 10, 11)
 *   then        u32 slot[permits]    0 = free, else (row + 1) | (row's epoch & 0xffff) << 16
 */
import { WaitQueue, type WaitOptions } from '../../core/channel.js';
import { releasable, type Releasable } from '../../core/permit.js';
import { closedError, errnoError, invalidArgument, IpcError } from '../../core/errors.js';
import * as validate from '../../core/validate.js';
import { AttachLock } from '../../memory/attach-lock.js';
import { H_TABLE_OFFSET, H_TABLE_ROWS, magicOf } from '../../memory/header.js';
import { adopt, adoptAsync, createObject, openObject, openObjectSync, planOpen, unlinkObject, type CreateObjectOptions, type OpenObjectOptions, unlinkOnCloseOption } from '../../memory/object.js';
import { FREE, Participants, ROW_BYTES } from '../../memory/participants.js';
import type { Segment } from '../../memory/segment.js';
import { checkWaitOptions, waitBackend, type FutexWord } from '../../memory/waits.js';

/** 'IPKP': the magic word of a ready pool. */
export const POOL_MAGIC = magicOf('pool', true);
export const POOL_VERSION = 2;
const W_PERMITS = 16;
const W_RELEASES = 17;
const W_SLOTS_OFFSET = 18;
const TABLE_OFFSET = 128;
const MAX_PERMITS = 65536;
const MAX_PARTICIPANTS = 4096;
const DEFAULT_PARTICIPANTS = 128;

export interface CreateBoundedPoolOptions extends CreateObjectOptions {
  /** How many holders at a time (1 .. 65536). */
  permits: number;
  /** Handles (threads or processes) that may have the pool open at once (default 128, at most 4096). */
  maxParticipants?: number;
  /** While an acquire waits, look for dead holders this often (ms, default 100). */
  checkInterval?: number;
}

export interface OpenBoundedPoolOptions extends OpenObjectOptions {
  checkInterval?: number;
}

/** A permit of the pool: `release()` returns it, exactly once (false after, and if it was reclaimed meanwhile); `using` releases it too. */
export interface PoolPermit extends Releasable {
  /** Which slot it occupies. */
  readonly slot: number;
}

export interface PoolHolder {
  slot: number;
  /** The holder's process (0 if its row was cleared: a worker thread that ended). */
  pid: number;
  /** Its thread, if not the process's main thread (0). */
  tid: number;
  alive: boolean;
}

function corrupt(name: string, what: string): IpcError {
  return new IpcError('ERR_IPCKIT_CORRUPT', `pool ${name} is corrupt: ${what}`, { path: name });
}

function checkInterval(value: unknown): number {
  return validate.optionalInteger('checkInterval', value, 1, 3_600_000) ?? 100;
}

/** The geometry of an opened pool (untrusted: each word read once, checked against the others). */
function readGeometry(segment: Segment): { permits: number; slotsOffset: number; table: Participants } {
  const mem = segment.mem;
  const name = segment.name;
  const permits = mem.load(W_PERMITS) >>> 0;
  const slotsOffset = mem.load(W_SLOTS_OFFSET) >>> 0;
  const tableOffset = mem.load(H_TABLE_OFFSET) >>> 0;
  const rows = mem.load(H_TABLE_ROWS) >>> 0;
  if (permits < 1 || permits > MAX_PERMITS) throw corrupt(name, `permits ${permits} is outside 1..${MAX_PERMITS}`);
  if (tableOffset !== TABLE_OFFSET || rows < 1 || rows > MAX_PARTICIPANTS) throw corrupt(name, `participant table of ${rows} rows at ${tableOffset}`);
  if (slotsOffset !== slotsOffsetFor(rows)) throw corrupt(name, `slots at ${slotsOffset}`);
  if (segment.size < slotsOffset + 4 * permits) throw corrupt(name, `${segment.size} bytes cannot hold ${permits} slots`);
  return { permits, slotsOffset, table: new Participants(mem, tableOffset, rows) };
}

const slotsOffsetFor = (rows: number): number => TABLE_OFFSET + rows * ROW_BYTES;

export class BoundedPool {
  readonly #segment: Segment;
  readonly #table: Participants;
  readonly #slots: number; // word index of slot 0
  readonly #row: number;
  readonly #epoch: number;
  readonly #me: number; // what our slots hold
  readonly #checkInterval: number;
  readonly #unlinkOnClose: boolean;
  readonly #mine = new Set<number>();
  readonly #leaveAtExit: () => void;
  readonly #releases: FutexWord; // the counter waiters sleep on
  #closed = false;
  #waiting: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #waiters = new WaitQueue<PoolPermit>('pool acquire', undefined, () => {
    if (this.#waiters.length === 0) this.#stopWaiting();
  });
  /** How many permits the pool has. */
  readonly permits: number;

  /** @internal Use createBoundedPool or openBoundedPool (they take the row). */
  constructor(segment: Segment, geometry: ReturnType<typeof readGeometry>, row: number, epoch: number, interval: number, unlinkOnClose: boolean) {
    this.#segment = segment;
    this.#table = geometry.table;
    this.#slots = geometry.slotsOffset >>> 2;
    this.permits = geometry.permits;
    this.#row = row;
    this.#epoch = epoch;
    this.#me = ((row + 1) | ((epoch & 0xffff) << 16)) | 0;
    this.#checkInterval = interval;
    this.#unlinkOnClose = unlinkOnClose;
    this.#leaveAtExit = this.#table.clearAtThreadExit(row, W_RELEASES);
    this.#releases = segment.mem.word(W_RELEASES);
  }

  get name(): string {
    return this.#segment.name;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** How waiting acquires are woken: 'io_uring' (futex waits completed on the loop) or 'thread' (a waiter thread). */
  get backend(): 'io_uring' | 'thread' {
    return waitBackend();
  }

  /** A permit if one is free now (after taking back those of dead holders), else undefined. */
  tryAcquire(): PoolPermit | undefined {
    this.#check();
    if (this.#waiters.length > 0) return undefined;
    return this.#claim() ?? (this.reclaim() > 0 ? this.#claim() : undefined);
  }

  /** Waits for a permit. A wait that times out or is aborted holds nothing. */
  acquire(options?: WaitOptions): Promise<PoolPermit> {
    const aborted = checkWaitOptions(options, `acquire from pool ${this.name}`);
    if (this.#closed) return Promise.reject(closedError(`pool ${this.name}`));
    if (aborted) return Promise.reject(aborted);
    if (this.#waiters.length === 0) {
      try {
        const p = this.tryAcquire();
        if (p) return Promise.resolve(p);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    const promise = this.#waiters.enqueue(options, undefined);
    this.#startWaiting();
    return promise;
  }

  /** Free permits now (not counting those of dead holders not yet taken back). */
  available(): number {
    this.#check();
    let free = 0;
    for (let i = 0; i < this.permits; i++) if (this.#slot(i) === 0) free++;
    return free;
  }

  /** Who holds permits now. */
  holders(): PoolHolder[] {
    this.#check();
    const out: PoolHolder[] = [];
    for (let i = 0; i < this.permits; i++) {
      const w = this.#slot(i);
      if (w === 0) continue;
      const row = this.#rowOf(w, i);
      const info = this.#table.info(row);
      const same = this.#table.epoch16(row) === w >>> 16;
      out.push({ slot: i, pid: same ? info.pid : 0, tid: same ? info.tid : 0, alive: same && info.alive });
    }
    return out;
  }

  /** Takes back the permits of dead holders now; returns how many. */
  reclaim(): number {
    this.#check();
    const mem = this.#segment.mem;
    const alive = new Map<number, boolean>();
    let n = 0;
    for (let i = 0; i < this.permits; i++) {
      const w = this.#slot(i);
      if (w === 0 || w === this.#me) continue;
      let live = alive.get(w);
      if (live === undefined) alive.set(w, (live = this.#table.alive(this.#rowOf(w, i), w >>> 16)));
      if (live) continue;
      // Only if the slot still names that dead holder: a racing reclaimer frees it once.
      if (mem.compareExchange(this.#slots + i, w | 0, 0) === (w | 0)) n++;
    }
    if (n > 0) this.#announce();
    return n;
  }

  /** Removes the name (open handles keep working). Idempotent: false if it was gone. */
  unlink(): boolean {
    return unlinkBoundedPool(this.name);
  }

  /**
   * Releases this handle: permits taken through it and not released are returned,
   * pending acquires reject with ERR_IPCKIT_CLOSED, its row is freed. Idempotent.
   */
  async close(): Promise<void> {
    this.#release();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#release();
  }

  #release(): void {
    if (this.#closed) return;
    this.#waiters.rejectAll(() => closedError(`pool ${this.name}`));
    this.#stopWaiting();
    this.#leaveAtExit();
    if (this.#segment.isIntact()) {
      for (const slot of [...this.#mine]) this.#return(slot);
      this.#table.leave(this.#row, this.#epoch, FREE);
    }
    this.#closed = true;
    this.#releases.close();
    try {
      if (this.#unlinkOnClose) this.#segment.unlinkIfStillNamed(`pool ${this.name}`);
    } finally {
      this.#segment.close(true); // its buffer was never handed out: the pages go now
    }
  }

  #check(): void {
    if (this.#closed) throw closedError(`pool ${this.name}`);
  }

  #slot(i: number): number {
    return this.#segment.mem.load(this.#slots + i) >>> 0;
  }

  /** The row a slot word names (untrusted: checked). */
  #rowOf(w: number, slot: number): number {
    const row = (w & 0xffff) - 1;
    if (row < 0 || row >= this.#table.rows) throw corrupt(this.name, `slot ${slot} names participant ${row} of ${this.#table.rows}`);
    return row;
  }

  /** Claims a free slot for this handle: a permit, or undefined if none is free. */
  #claim(): PoolPermit | undefined {
    const mem = this.#segment.mem;
    for (let i = 0; i < this.permits; i++) {
      if (this.#slot(i) !== 0) continue;
      if (mem.compareExchange(this.#slots + i, 0, this.#me) === 0) return this.#permit(i);
    }
    return undefined;
  }

  #permit(slot: number): PoolPermit {
    this.#mine.add(slot);
    // After close() it was returned already.
    return releasable(() => !this.#closed && this.#return(slot), { slot });
  }

  #return(slot: number): boolean {
    this.#mine.delete(slot);
    const ok = this.#segment.mem.compareExchange(this.#slots + slot, this.#me, 0) === this.#me;
    if (ok) this.#announce();
    return ok;
  }

  /** A slot became free: bump the counter and wake every waiting thread, in any process. */
  #announce(): void {
    const mem = this.#segment.mem;
    mem.add(W_RELEASES, 1);
    mem.wake(W_RELEASES, -1);
  }

  #serve(): void {
    const mem = this.#segment.mem;
    while (this.#waiters.length > 0 && !this.#closed) {
      const seen = mem.load(W_RELEASES);
      let p: PoolPermit | undefined;
      try {
        p = this.#claim() ?? (this.reclaim() > 0 ? this.#claim() : undefined);
      } catch (e) {
        this.#waiters.rejectAll(e);
        break;
      }
      if (!p) {
        // Wake when the counter moves past what we saw before trying.
        if (this.#waiting === undefined) {
          this.#waiting = this.#releases.wait(seen, false, (r) => {
            this.#waiting = undefined;
            if (r < 0) this.#waiters.rejectAll(errnoError(-r, 'futex', `wait on pool ${this.name}`, { path: this.name }));
            else this.#serve();
          });
        }
        return;
      }
      if (!this.#waiters.resolveNext(p)) p.release();
    }
    if (this.#waiters.length === 0) this.#stopWaiting();
  }

  #startWaiting(): void {
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => {
        try {
          if (!this.#closed && this.reclaim() > 0) this.#serve();
        } catch (e) {
          this.#waiters.rejectAll(e);
          this.#stopWaiting();
        }
      }, this.#checkInterval);
    }
    this.#serve();
  }

  #stopWaiting(): void {
    if (this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
    const cancel = this.#waiting;
    this.#waiting = undefined;
    cancel?.();
  }
}

/** Under the attach lock: a row for this handle. */
function claimRow(table: Participants, name: string): { row: number; epoch: number } {
  const row = table.findTakeable();
  if (row < 0) throw new IpcError('ERR_IPCKIT_LIMIT', `pool ${name}: all ${table.rows} participant rows are held by live threads (create it with a larger maxParticipants)`, { details: { maxParticipants: table.rows } });
  return { row, epoch: table.claim(row) };
}

interface PoolOptions {
  interval: number;
  unlinkOnClose: boolean;
}

function poolOptions(options: { checkInterval?: unknown; unlinkOnClose?: unknown }): PoolOptions {
  return { interval: checkInterval(options.checkInterval), unlinkOnClose: unlinkOnCloseOption(options.unlinkOnClose) };
}

/** Creates a pool of `permits` (exclusively; mode exactly 0600 unless asked), all free. Never waits. */
export function createBoundedPool(name: string, options: CreateBoundedPoolOptions): BoundedPool {
  const pname = validate.posixName(name);
  validate.object('options', options);
  const permits = validate.integer('permits', options?.permits, 1, MAX_PERMITS);
  const rows = validate.optionalInteger('maxParticipants', options.maxParticipants, 1, MAX_PARTICIPANTS) ?? DEFAULT_PARTICIPANTS;
  const o = poolOptions(options);
  const slotsOffset = slotsOffsetFor(rows);
  let row = { row: 0, epoch: 0 };
  const segment = createObject(pname, { kind: 'pool', version: POOL_VERSION, size: slotsOffset + 4 * permits, tableOffset: TABLE_OFFSET, tableRows: rows }, options, (seg) => {
    seg.mem.store(W_PERMITS, permits);
    seg.mem.store(W_SLOTS_OFFSET, slotsOffset);
    // Our row before the object is published: nobody else can attach yet, no lock needed.
    row = { row: 0, epoch: new Participants(seg.mem, TABLE_OFFSET, rows).claim(0) };
  });
  return adopt(segment, () => new BoundedPool(segment, readGeometry(segment), row.row, row.epoch, o.interval, o.unlinkOnClose));
}

/**
 * Opens an existing pool, checking its owner and mode (permissions.ts) and its header,
 * and takes a row of its participant table (waiting on the event loop, up to `timeout`,
 * default 2 s, for a creator still making it and for the attach lock).
 */
export function openBoundedPool(name: string, options: OpenBoundedPoolOptions = {}): Promise<BoundedPool> {
  const pname = validate.posixName(name);
  const plan = planOpen(validate.object('options', options));
  const o = poolOptions(options);
  return openObject(pname, 'pool', POOL_VERSION, plan).then((segment) =>
    adoptAsync(segment, async () => {
      const g = readGeometry(segment);
      const { row, epoch } = await new AttachLock(segment.mem, `pool ${pname}`).with({ deadline: plan.deadline, signal: plan.signal }, () => claimRow(g.table, pname));
      return new BoundedPool(segment, g, row, epoch, o.interval, o.unlinkOnClose);
    }),
  );
}

/** openBoundedPool for workers and scripts: the waits block this thread. */
export function openBoundedPoolSync(name: string, options: OpenBoundedPoolOptions = {}): BoundedPool {
  const pname = validate.posixName(name);
  const plan = planOpen(validate.object('options', options));
  const o = poolOptions(options);
  return adopt(openObjectSync(pname, 'pool', POOL_VERSION, plan), (segment) => {
    const g = readGeometry(segment);
    const { row, epoch } = new AttachLock(segment.mem, `pool ${pname}`).withSync({ deadline: plan.deadline, signal: plan.signal }, () => claimRow(g.table, pname));
    return new BoundedPool(segment, g, row, epoch, o.interval, o.unlinkOnClose);
  });
}

/** Removes a pool's name, after checking that it is a pool (ERR_IPCKIT_WRONG_KIND otherwise). Idempotent: false if there was none. */
export function unlinkBoundedPool(name: string): boolean {
  return unlinkObject(validate.posixName(name), 'pool');
}
