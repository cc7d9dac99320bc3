/**
 * BoundedPool: at most N permits held at a time, across processes, and the permits of a
 * holder that died come back. It is what a POSIX semaphore used as "at most N" cannot
 * be: a semaphore has no undo, so a holder killed between wait and post loses its permit
 * forever.
 *
 * How: a small shared-memory object holds one slot per permit. A slot is free (0) or
 * records its holder process as one 64-bit word, start time and pid together
 * (liveness.ts: a pid alone can be reused by a new process). Taking and returning a
 * permit are single compare-and-swaps on a slot, so there is no lock to be left held by
 * a dying process. Returning one bumps a counter and wakes waiters (a futex), whose
 * helper thread tells the event loop.
 *
 * When dead holders are found: whenever an acquire finds no free slot (before it starts
 * to wait), then every `checkInterval` ms (default 100) while it waits, and on
 * `reclaim()`. A holder is dead when no process has its pid, or the process with that pid
 * started at another time. Permits belong to a process: a worker thread that ends
 * without releasing leaves its permits held until the process exits.
 *
 * Layout (shm_open(name), 64 + 8 x permits bytes, native-endian):
 *
 *   offset  0  u32 magic     0x504b5049 ("IPKP"), written last by the creator
 *   offset  4  u32 version   1
 *   offset  8  u32 permits   1 .. 65536
 *   offset 12  u32 releases  bumped and futex-woken on every release and reclaim
 *   offset 16  48 bytes reserved
 *   offset 64  u64 slot[permits]   0 = free, else startTime x 2^22 + pid
 */
import { WaitQueue, type WaitOptions } from '../../core/channel.js';
import { abortedError, closedError, IpcError } from '../../core/errors.js';
import { isProcessAlive, selfStartTime } from '../../os/liveness.js';
import type { CreateModeOptions } from '../../os/permissions.js';
import { corrupt, createSegment, openSegment, unlinkSegment, type OpenSegmentOptions, type Segment } from '../../memory/sync-segment.js';
import * as validate from '../../core/validate.js';

export const POOL_MAGIC = 0x504b5049;
export const POOL_VERSION = 1;
const HEADER = 64;
const RELEASES = 12;
const MAX_PERMITS = 65536;
const PID_BITS = 22n;
const PID_MASK = (1n << PID_BITS) - 1n;
const KIND = 'pool';

export interface CreateBoundedPoolOptions extends CreateModeOptions {
  /** How many holders at a time (1 .. 65536). */
  permits: number;
  /** While an acquire waits, look for dead holders this often (ms, default 100). */
  checkInterval?: number;
  /** Remove the name when this handle closes (default false). */
  unlinkOnClose?: boolean;
}

export interface OpenBoundedPoolOptions extends OpenSegmentOptions {
  checkInterval?: number;
  unlinkOnClose?: boolean;
}

/** A permit of the pool: `release()` returns it, exactly once; `using` releases it too. */
export interface PoolPermit extends Disposable, AsyncDisposable {
  /** Which slot it occupies. */
  readonly slot: number;
  /** Returns the permit. True the first time, false after (and if it was reclaimed meanwhile). */
  release(): boolean;
  readonly released: boolean;
}

export interface PoolHolder {
  slot: number;
  pid: number;
  /** Start time of the holder process, clock ticks since boot (liveness.ts). */
  startTime: number;
  alive: boolean;
}

function holderWord(pid: number, startTime: number): bigint {
  return (BigInt(startTime) << PID_BITS) | BigInt(pid);
}

function decodeWord(word: bigint): { pid: number; startTime: number } {
  return { pid: Number(word & PID_MASK), startTime: Number(word >> PID_BITS) };
}

export class BoundedPool {
  readonly #segment: Segment;
  readonly #me: bigint;
  readonly #checkInterval: number;
  readonly #unlinkOnClose: boolean;
  readonly #mine = new Set<number>();
  #closed = false;
  #watching = false;
  #timer: NodeJS.Timeout | undefined;
  #waiters = new WaitQueue<PoolPermit>('pool acquire');
  /** How many permits the pool has. */
  readonly permits: number;

  /** @internal */
  constructor(segment: Segment, permits: number, checkInterval: number, unlinkOnClose = false) {
    this.#segment = segment;
    this.#unlinkOnClose = unlinkOnClose;
    this.permits = permits;
    this.#checkInterval = checkInterval;
    if (process.pid > Number(PID_MASK)) throw new IpcError('ERR_IPCKIT_UNSUPPORTED', `pid ${process.pid} does not fit the pool's 22-bit pid field`);
    this.#me = holderWord(process.pid, selfStartTime);
    segment.onWake = () => {
      this.#watching = false;
      this.#serve();
    };
    this.#waiters.onCancel = () => {
      if (this.#waiters.length === 0) this.#stopWaiting();
    };
  }

  get name(): string {
    return this.#segment.name;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** How waiting acquires are woken: 'io_uring' (futex waits completed on the loop) or 'thread' (a watcher thread). */
  get backend(): 'io_uring' | 'thread' {
    return this.#segment.map.backend();
  }

  /** A permit if one is free now (after taking back those of dead holders), else undefined. */
  tryAcquire(): PoolPermit | undefined {
    this.#check();
    if (this.#waiters.length > 0) return undefined;
    return this.#claim() ?? (this.reclaim() > 0 ? this.#claim() : undefined);
  }

  /** Waits for a permit. A wait that times out or is aborted holds nothing. */
  acquire(options?: WaitOptions): Promise<PoolPermit> {
    if (this.#closed) return Promise.reject(closedError(`pool ${this.name}`));
    if (options !== undefined) {
      validate.timeout(options.timeout);
      if (validate.abortSignal(options.signal)?.aborted) return Promise.reject(abortedError(`acquire from pool ${this.name}`, options.signal!));
    }
    if (this.#waiters.length === 0) {
      const p = this.tryAcquire();
      if (p) return Promise.resolve(p);
    }
    const promise = this.#waiters.enqueue(options, undefined);
    this.#startWaiting();
    return promise;
  }

  /** Free permits now (not counting those of dead holders not yet taken back). */
  available(): number {
    this.#check();
    let free = 0;
    for (let i = 0; i < this.permits; i++) if (this.#slot(i) === 0n) free++;
    return free;
  }

  /** Who holds permits now. */
  holders(): PoolHolder[] {
    this.#check();
    const out: PoolHolder[] = [];
    for (let i = 0; i < this.permits; i++) {
      const w = this.#slot(i);
      if (w === 0n) continue;
      const { pid, startTime } = decodeWord(w);
      out.push({ slot: i, pid, startTime, alive: pid > 0 && isProcessAlive(pid, startTime) });
    }
    return out;
  }

  /** Takes back the permits of dead holders now; returns how many. */
  reclaim(): number {
    this.#check();
    let n = 0;
    for (let i = 0; i < this.permits; i++) {
      const w = this.#slot(i);
      if (w === 0n || w === this.#me) continue;
      const { pid, startTime } = decodeWord(w);
      if (pid > 0 && isProcessAlive(pid, startTime)) continue;
      // Only if the slot still names that dead holder: a racing reclaimer frees it once.
      if (this.#segment.map.cas64(HEADER + 8 * i, w, 0n)) n++;
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
   * pending acquires reject with ERR_IPCKIT_CLOSED. Idempotent.
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
    for (const slot of [...this.#mine]) this.#return(slot);
    this.#closed = true;
    this.#segment.map.close();
    if (this.#unlinkOnClose) unlinkBoundedPool(this.name);
  }

  #check(): void {
    if (this.#closed) throw closedError(`pool ${this.name}`);
  }

  #slot(i: number): bigint {
    return this.#segment.map.load64(HEADER + 8 * i);
  }

  /** Claims a free slot for this process: a permit, or undefined if none is free. */
  #claim(): PoolPermit | undefined {
    for (let i = 0; i < this.permits; i++) {
      if (this.#slot(i) !== 0n) continue;
      if (this.#segment.map.cas64(HEADER + 8 * i, 0n, this.#me)) return this.#permit(i);
    }
    return undefined;
  }

  #permit(slot: number): PoolPermit {
    this.#mine.add(slot);
    let released = false;
    const release = (): boolean => {
      if (released) return false;
      released = true;
      if (this.#closed) return false; // close() returned it already
      return this.#return(slot);
    };
    return {
      slot,
      release,
      get released() {
        return released;
      },
      [Symbol.dispose]: () => void release(),
      [Symbol.asyncDispose]: async () => void release(),
    };
  }

  #return(slot: number): boolean {
    this.#mine.delete(slot);
    const ok = this.#segment.map.cas64(HEADER + 8 * slot, this.#me, 0n);
    if (ok) this.#announce();
    return ok;
  }

  /** A slot became free: bump the counter and wake every waiting process. */
  #announce(): void {
    this.#segment.map.add32(RELEASES, 1);
    this.#segment.map.wake(RELEASES, 0x7fffffff);
  }

  #serve(): void {
    while (this.#waiters.length > 0 && !this.#closed) {
      const seen = this.#segment.map.load32(RELEASES);
      const p = this.#claim() ?? (this.reclaim() > 0 ? this.#claim() : undefined);
      if (!p) {
        // Wake when the counter moves past what we saw before trying.
        if (!this.#watching) {
          this.#watching = true;
          this.#segment.map.watchChange(RELEASES, seen);
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
        if (!this.#closed && this.reclaim() > 0) this.#serve();
      }, this.#checkInterval);
    }
    this.#serve();
  }

  #stopWaiting(): void {
    if (this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
    if (this.#watching) {
      this.#watching = false;
      if (!this.#closed) this.#segment.map.unwatch();
    }
  }
}

function checkInterval(value: unknown): number {
  return validate.optionalInteger('checkInterval', value, 1, 3_600_000) ?? 100;
}

/** Creates a pool of `permits` (exclusively; mode exactly 0600 unless asked), all free. */
export function createBoundedPool(name: string, options: CreateBoundedPoolOptions): BoundedPool {
  const pname = validate.posixName(name);
  validate.object('options', options);
  const permits = validate.integer('permits', options?.permits, 1, MAX_PERMITS);
  const interval = checkInterval(options.checkInterval);
  const segment = createSegment(
    KIND,
    pname,
    HEADER + 8 * permits,
    options,
    (map) => {
      map.store32(4, POOL_VERSION);
      map.store32(8, permits);
    },
    POOL_MAGIC,
  );
  return new BoundedPool(segment, permits, interval, options.unlinkOnClose === true);
}

/** Opens an existing pool, checking its owner and mode (permissions.ts) and its header. */
export async function openBoundedPool(name: string, options: OpenBoundedPoolOptions = {}): Promise<BoundedPool> {
  const pname = validate.posixName(name);
  validate.object('options', options);
  const interval = checkInterval(options.checkInterval);
  let permits = 0;
  const segment = await openSegment(
    KIND,
    pname,
    HEADER,
    (fileSize, map) => {
      // Untrusted: the header must agree with itself and with the file.
      if (map!.load32(4) !== POOL_VERSION) throw corrupt(KIND, pname, `version ${map!.load32(4)}, expected ${POOL_VERSION}`);
      permits = map!.load32(8);
      if (permits < 1 || permits > MAX_PERMITS) throw corrupt(KIND, pname, `permits ${permits} is outside 1..${MAX_PERMITS}`);
      if (fileSize < HEADER + 8 * permits) throw corrupt(KIND, pname, `${fileSize} bytes cannot hold ${permits} slots`);
      return HEADER + 8 * permits;
    },
    POOL_MAGIC,
    options,
  );
  return new BoundedPool(segment, permits, interval, options.unlinkOnClose === true);
}

/** Removes a pool's name. Idempotent: false if there was none. */
export function unlinkBoundedPool(name: string): boolean {
  return unlinkSegment(KIND, validate.posixName(name));
}
