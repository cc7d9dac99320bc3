/**
 * A producer-consumer work queue in one shared memory segment: many producers and many
 * consumers, in any processes, with Python's JoinableQueue semantics (put, get, taskDone,
 * join) and at-least-once delivery.
 *
 * How it works (docs/workqueue.md has the layout):
 * - The queue is `capacity` fixed-size slots. Each slot has one state word that says what
 *   it holds and who owns it: FREE, WRITING (a producer is filling it), READY (an item
 *   waits), TAKEN (a consumer has it and has not called taskDone). The owner is a
 *   participant: a row of the participant table with the pid, start time and an epoch.
 * - Every transition is one compare-and-swap of that word, so the queue is consistent
 *   after a crash at any instruction: a WRITING slot whose owner died goes back to FREE (its
 *   put never resolved), a TAKEN slot whose owner died goes back to READY and is
 *   delivered again (at-least-once; the redelivered job keeps its id, and `deliveries`
 *   counts the attempts). Live processes look for dead owners whenever they wait, and every
 *   100 ms while busy.
 * - A slot stays taken until taskDone(), so `capacity` bounds the items waiting plus the
 *   items in progress; put waits (backpressure) when no slot is free.
 * - Waiting spins briefly, then sleeps on a futex with sleeper flags, as the ring does.
 * - Order: items are taken roughly in the order they were put (exactly, with one producer
 *   and one consumer and no redelivery).
 */
import { availableParallelism } from 'node:os';
import { RESOLVED, WaitQueue, type WaitOptions } from '../../core/channel.js';
import { decodeWith, encodeWith, resolveCodec, type Codec, type CodecOption, type MessageOf } from '../../core/codec.js';
import { closedError, errnoError, invalidArgument, IpcError, isIpcError, timeoutError } from '../../core/errors.js';
import { fault, FAULTS } from '../../os/faults.js';
import { LoopWait } from '../../memory/loop-wait.js';
import { SpinBudget } from '../../memory/spin.js';
import { frameTooLarge } from '../../core/framing.js';
import { isProcessAlive, selfStartTime } from '../../os/liveness.js';
import type { CreateModeOptions, OwnerCheckOptions } from '../../os/permissions.js';
import { createSharedMemory, memoryOf, openSharedMemory, unlinkSharedMemory, type Memory, type SharedMemory } from '../shm/shm.js';
import * as validate from '../../core/validate.js';

// --- The layout (docs/workqueue.md). Word indexes are in 32-bit units. --------------------
const MAGIC = 0x514b5049; // "IPKQ" in little-endian bytes
const VERSION = 1;
const W_MAGIC = 0;
const W_VERSION = 1;
const W_SLOTS_OFFSET = 2; // bytes from the start to slot 0
const W_CAPACITY = 3;
const W_SLOT_BYTES = 4;
const W_MAX_MESSAGE = 5;
const W_PARTICIPANTS = 6;
const W_PUT_HINT = 16; // byte 64
const W_GET_HINT = 32; // byte 128
const W_ITEMS_SIGNAL = 48; // byte 192: consumers sleep here
const W_GETTERS_SLEEPING = 49;
const W_SPACE_SIGNAL = 64; // byte 256: producers sleep here
const W_PUTTERS_SLEEPING = 65;
const W_DONE_SIGNAL = 80; // byte 320: join() sleeps here
const W_JOINERS_SLEEPING = 81;
const W_ATTACH_LOCK = 96; // byte 384
const W_NEXT_TOKEN = 97;
const W_SHUTDOWN = 98;
const W_PUT_TOTAL = 112; // byte 448: statistics (wrapping u32)
const W_DONE_TOTAL = 113;
const W_REDELIVERED_TOTAL = 114;
const PARTICIPANTS_BYTE = 1024;
const PARTICIPANT_WORDS = 8;
const P_PID = 0;
const P_STATE = 1;
const P_START_LO = 2;
const P_START_HI = 3;
const P_EPOCH = 4;
const SLOT_HEADER = 32;
const S_STATE = 0;
const S_LENGTH = 1;
const S_ID_LO = 2;
const S_ID_HI = 3;
const S_DELIVERIES = 4;
// Slot state word: kind (4 bits) | owner participant (12 bits) << 4 | owner epoch (16 bits) << 16
const FREE = 0;
const WRITING = 1;
const READY = 2;
const TAKEN = 3;
const STATE_ATTACHED = 1;
const MAX_PARTICIPANTS = 4096;

const SLICE_MS = 50;
const RECOVER_EVERY_MS = 100;
const DEFAULT_SPIN_MICROS = 20;
const now = (): number => performance.now();
const joinStart = (lo: number, hi: number): number | undefined => (hi >>> 0) * 2 ** 32 + (lo >>> 0) || undefined;

export interface CreateWorkQueueOptions<C extends CodecOption | undefined = undefined> extends CreateModeOptions, WorkQueueHandleOptions<C> {
  /** Slots: items waiting plus items in progress (default 1024). */
  capacity?: number;
  /** Largest item, in bytes after the codec (default 4096). */
  maxMessageSize?: number;
  /** Processes (handles) that may be attached at once (default 64, at most 4096). */
  maxParticipants?: number;
}

export interface OpenWorkQueueOptions<C extends CodecOption | undefined = undefined> extends OwnerCheckOptions, WorkQueueHandleOptions<C> {}

export interface WorkQueueHandleOptions<C extends CodecOption | undefined = undefined> {
  codec?: C;
  /** Spin before sleeping, µs (default 20; 0 on one CPU). */
  spinMicros?: number;
  /** See SharedMemory: false for the copying path. */
  external?: boolean;
}

/** An item taken from the queue. Call `queue.taskDone(job)` when it is handled. */
export interface Job<T> {
  /** Unique per put; a redelivered job keeps it. */
  readonly id: number;
  readonly data: T;
  /** How many times it was taken, this time included (1 the first time). */
  readonly deliveries: number;
  /** True if an earlier consumer took it and did not finish it (it died, or closed). */
  readonly redelivered: boolean;
}

export interface WorkQueueStats {
  capacity: number;
  /** Items waiting to be taken. */
  ready: number;
  /** Items taken and not yet done. */
  inFlight: number;
  /** Slots being written by a producer. */
  writing: number;
  free: number;
  /** Since creation (wrapping 32-bit counters): items put, tasks done, deliveries again after a consumer died or left. */
  put: number;
  done: number;
  redelivered: number;
  /** Attached handles (processes) now. */
  participants: number;
  shutdown: boolean;
}

interface Taken<T> extends Job<T> {
  slot: number;
}

type Want = { many: false } | { many: true; max: number };
/** A put waiting for free slots: `ids` of the items placed so far. */
interface PendingPut {
  payloads: Uint8Array[];
  ids: number[];
  single: boolean;
}

class JobImpl<T> implements Taken<T> {
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

/** A handle on a work queue: produce, consume, or both. */
export class WorkQueue<T> implements AsyncIterable<Job<T>>, AsyncDisposable {
  readonly name: string;
  readonly capacity: number;
  readonly maxMessageSize: number;
  #segment: SharedMemory;
  #mem: Memory;
  #codec: Codec<T>;
  #spinner: SpinBudget;
  #slotsByte: number;
  #slotBytes: number;
  #participants: number;
  #me = 0; // our participant row
  #epoch = 0;
  #takenWord = 0; // TAKEN | me | epoch
  #writingWord = 0;
  #token = 0;
  #seq = 0;
  #inFlight = new Map<number, Taken<T>>(); // by id, in taking order
  #getters = new WaitQueue<unknown, Want>('get');
  #putters = new WaitQueue<number | number[], PendingPut>('put');
  #joiners = new WaitQueue<void>('join');
  #waits: Record<'items' | 'space' | 'done', LoopWait>;
  #lastRecover = 0;
  #ops = 0;
  #leaveAtExit: () => void = () => {}; // a terminated worker's row must look dead (its pid cleared)
  #closed = false;
  #error: IpcError | null = null;

  /** @internal Use createWorkQueue or openWorkQueue. */
  constructor(segment: SharedMemory, options: WorkQueueHandleOptions<CodecOption | undefined>) {
    this.#segment = segment;
    const mem = memoryOf(segment);
    this.#mem = mem;
    this.name = segment.name;
    this.#codec = resolveCodec(options.codec) as Codec<T>;
    this.#spinner = new SpinBudget(options.spinMicros === undefined ? (availableParallelism() > 1 ? DEFAULT_SPIN_MICROS : 0) : validate.integer('spinMicros', options.spinMicros, 0, 10_000_000));
    let magic = mem.load(W_MAGIC);
    for (const end = now() + 1000; magic === 0 && now() < end; magic = mem.load(W_MAGIC)) mem.waitSync(W_MAGIC, 0, 1);
    if (magic === 0) throw this.#corrupt('it was never initialized (its creator may have died while creating it)');
    if (magic >>> 0 !== MAGIC) throw this.#corrupt(`bad magic 0x${(magic >>> 0).toString(16)} (not a work queue)`);
    if (mem.load(W_VERSION) !== VERSION) throw this.#corrupt(`layout version ${mem.load(W_VERSION)}`);
    const slotsByte = mem.load(W_SLOTS_OFFSET) >>> 0;
    const capacity = mem.load(W_CAPACITY) >>> 0;
    const slotBytes = mem.load(W_SLOT_BYTES) >>> 0;
    const max = mem.load(W_MAX_MESSAGE) >>> 0;
    const participants = mem.load(W_PARTICIPANTS) >>> 0;
    if (participants < 1 || participants > MAX_PARTICIPANTS || PARTICIPANTS_BYTE + participants * PARTICIPANT_WORDS * 4 > slotsByte) throw this.#corrupt(`${participants} participants`);
    if (slotsByte % 64 !== 0 || slotBytes % 64 !== 0 || slotBytes < SLOT_HEADER + 8) throw this.#corrupt(`slot geometry ${slotsByte}/${slotBytes}`);
    if (capacity < 1 || max < 1 || max > slotBytes - SLOT_HEADER) throw this.#corrupt(`capacity ${capacity}, max message ${max}`);
    if (slotsByte + capacity * slotBytes > segment.size) throw this.#corrupt(`${capacity} slots of ${slotBytes} bytes do not fit in ${segment.size} bytes`);
    this.capacity = capacity;
    this.maxMessageSize = max;
    this.#slotsByte = slotsByte;
    this.#slotBytes = slotBytes;
    this.#participants = participants;
    this.#waits = {
      items: new LoopWait(mem, W_ITEMS_SIGNAL, SLICE_MS, (res) => (res < 0 ? this.#waitFailed(res, 'items') : this.#armGet(res === 2))),
      space: new LoopWait(mem, W_SPACE_SIGNAL, SLICE_MS, (res) => (res < 0 ? this.#waitFailed(res, 'space') : this.#armPut(res === 2))),
      done: new LoopWait(mem, W_DONE_SIGNAL, SLICE_MS, (res) => (res < 0 ? this.#waitFailed(res, 'done') : this.#armJoin(res === 2))),
    };
    this.#attach();
    this.#getters.onCancel = () => {
      if (this.#getters.length === 0) this.#waits.items.stop();
    };
    this.#putters.onCancel = () => {
      if (this.#putters.length === 0) this.#waits.space.stop();
    };
    this.#joiners.onCancel = () => {
      if (this.#joiners.length === 0) this.#waits.done.stop();
    };
  }

  // --- producing ---

  /** Puts an item; resolves with its id once it is in the queue, or waits for a free slot. */
  put(item: T, options?: WaitOptions): Promise<number> {
    if (this.#closed || this.#error) return Promise.reject(this.#error ?? closedError(`work queue ${this.name}`));
    const payload = this.#encode(item);
    if (this.#putters.length === 0) {
      try {
        const id = this.#tryPlace(payload);
        if (id >= 0) {
          this.#afterPut(1);
          return Promise.resolve(id);
        }
      } catch (e) {
        return Promise.reject(this.#fail(e));
      }
    }
    const p = this.#putters.enqueue(options, { payloads: [payload], ids: [], single: true }) as Promise<number>;
    this.#armPut();
    return p;
  }

  /** Puts the item now and returns its id, or returns undefined when the queue is full. */
  tryPut(item: T): number | undefined {
    if (this.#closed || this.#error) throw this.#error ?? closedError(`work queue ${this.name}`);
    const payload = this.#encode(item);
    if (this.#putters.length > 0) return undefined;
    let id: number;
    try {
      id = this.#tryPlace(payload);
    } catch (e) {
      throw this.#fail(e);
    }
    if (id < 0) return undefined;
    this.#afterPut(1);
    return id;
  }

  /** Puts every item, in order (one wake-up for the lot); resolves with their ids. */
  putMany(items: Iterable<T>, options?: WaitOptions): Promise<number[]> {
    if (this.#closed || this.#error) return Promise.reject(this.#error ?? closedError(`work queue ${this.name}`));
    const payloads: Uint8Array[] = [];
    for (const item of items) payloads.push(this.#encode(item));
    const ids: number[] = [];
    if (this.#putters.length === 0) {
      try {
        while (ids.length < payloads.length) {
          const id = this.#tryPlace(payloads[ids.length]!);
          if (id < 0) break;
          ids.push(id);
        }
      } catch (e) {
        if (ids.length > 0) this.#afterPut(ids.length);
        return Promise.reject(this.#fail(e));
      }
      if (ids.length > 0) this.#afterPut(ids.length);
      if (ids.length === payloads.length) return Promise.resolve(ids);
    }
    const pending: PendingPut = { payloads, ids, single: false };
    const p = (this.#putters.enqueue(options, pending) as Promise<number[]>).catch((e: unknown) => {
      if (isIpcError(e)) throw e.amend({ details: { ids: pending.ids } });
      throw e;
    });
    this.#armPut();
    return p;
  }

  // --- consuming ---

  /** Takes the next item, waiting for one. Rejects with ERR_IPCKIT_CLOSED once the queue is shut down and drained. */
  get(options?: WaitOptions): Promise<Job<T>> {
    return this.#request({ many: false }, options) as Promise<Job<T>>;
  }

  /** Takes the next item if one is ready, else undefined. */
  tryGet(): Job<T> | undefined {
    this.#usable();
    if (this.#getters.length > 0) return undefined;
    return this.#take();
  }

  /** Waits for at least one item, then takes every ready item up to `max`. */
  getMany(max = Infinity, options?: WaitOptions): Promise<Array<Job<T>>> {
    if (max !== Infinity) validate.integer('max', max, 1);
    return this.#request({ many: true, max }, options) as Promise<Array<Job<T>>>;
  }

  tryGetMany(max = Infinity): Array<Job<T>> {
    this.#usable();
    if (max !== Infinity) validate.integer('max', max, 1);
    if (this.#getters.length > 0) return [];
    return this.#takeMany(max);
  }

  /** Blocking get for worker threads and scripts (blocks the event loop on the main thread). */
  getSync(timeoutMs?: number): Job<T> {
    this.#usable();
    if (this.#getters.length > 0) throw invalidArgument('getSync cannot overtake pending asynchronous gets');
    const ms = validate.timeout(timeoutMs);
    const deadline = ms === undefined ? undefined : now() + ms;
    const mem = this.#mem;
    try {
      let job = this.#take();
      if (job) return job;
      const budget = this.#spinner.next();
      if (budget > 0) {
        const t0 = now();
        const until = Math.min(t0 + budget / 1000, deadline ?? Infinity);
        let lastDeep = t0;
        for (;;) {
          const t = now();
          if (t - lastDeep >= SLICE_MS) {
            lastDeep = t;
            this.#checkIntact();
            this.#maintain(true);
          }
          job = this.#take();
          if (job) {
            this.#spinner.caught((now() - t0) * 1000);
            return job;
          }
          const end = this.#drained();
          if (end) throw end;
          if (t >= until) break;
        }
        this.#spinner.missed();
      }
      let deep = false;
      for (;;) {
        this.#maintain(deep);
        const end = this.#drained();
        if (end) throw end;
        if (deadline !== undefined && now() >= deadline) throw timeoutError('get', ms!);
        mem.store(W_GETTERS_SLEEPING, 1);
        const seq = mem.load(W_ITEMS_SIGNAL);
        job = this.#take();
        if (job) return job;
        const left = deadline === undefined ? SLICE_MS : Math.max(0, Math.min(SLICE_MS, deadline - now()));
        const r = mem.waitSync(W_ITEMS_SIGNAL, seq, left);
        if (r < 0) throw errnoError(-r, 'futex', 'get');
        deep = r === 2;
        if (deep) this.#checkIntact();
        job = this.#take();
        if (job) return job;
      }
    } catch (e) {
      throw isIpcError(e, 'ERR_IPCKIT_TIMEOUT') ? e : this.#fail(e);
    }
  }

  /**
   * Marks jobs done (Python's task_done): a job, an array of jobs, or, with no argument,
   * the oldest job this handle took and has not finished. Its slot becomes free. Throws
   * ERR_IPCKIT_INVALID_ARGUMENT for a job that is not in progress here (done twice).
   */
  taskDone(job?: Job<T> | ReadonlyArray<Job<T>>): void {
    this.#usable();
    const jobs: Array<Job<T>> = job === undefined ? [this.#oldest()] : Array.isArray(job) ? [...(job as ReadonlyArray<Job<T>>)] : [job as Job<T>];
    let done = 0;
    try {
      for (const j of jobs) {
        const t = this.#inFlight.get(j.id);
        if (!t || t !== j) throw invalidArgument(`job ${j.id} is not in progress on this handle (taskDone twice, or taken by another handle)`);
        if (FAULTS) fault('workqueue:before-done');
        this.#release(t, FREE);
        done++;
      }
    } finally {
      if (done > 0) this.#afterDone(done);
    }
  }

  /** Resolves once every item put so far has been taken and marked done (Python's join). */
  join(options?: WaitOptions): Promise<void> {
    if (this.#closed || this.#error) return Promise.reject(this.#error ?? closedError(`work queue ${this.name}`));
    try {
      if (this.#unfinished() === 0) return RESOLVED;
    } catch (e) {
      return Promise.reject(this.#fail(e));
    }
    const p = this.#joiners.enqueue(options, undefined);
    this.#armJoin();
    return p;
  }

  /**
   * Shuts the queue down for everyone: puts reject with ERR_IPCKIT_CLOSED from now on;
   * gets go on while items are ready or in progress elsewhere (an item whose consumer dies
   * is delivered again), then reject with ERR_IPCKIT_CLOSED, which ends async iteration.
   */
  shutdown(): void {
    this.#usable();
    const mem = this.#mem;
    mem.store(W_SHUTDOWN, 1);
    for (const [signal, flag] of [[W_ITEMS_SIGNAL, W_GETTERS_SLEEPING], [W_SPACE_SIGNAL, W_PUTTERS_SLEEPING], [W_DONE_SIGNAL, W_JOINERS_SLEEPING]] as const) {
      mem.store(flag, 0);
      mem.add(signal, 1);
      mem.wake(signal, -1);
    }
    this.#putters.rejectAll(() => closedError(`work queue ${this.name} (shut down)`));
  }

  get isShutdown(): boolean {
    if (this.#closed) throw closedError(`work queue ${this.name}`); // our mapping may be gone (copying path)
    return this.#mem.load(W_SHUTDOWN) !== 0;
  }

  /** Counts of the queue now (a scan of the slots). */
  stats(): WorkQueueStats {
    this.#usable();
    const mem = this.#mem;
    const s: WorkQueueStats = { capacity: this.capacity, ready: 0, inFlight: 0, writing: 0, free: 0, put: mem.load(W_PUT_TOTAL) >>> 0, done: mem.load(W_DONE_TOTAL) >>> 0, redelivered: mem.load(W_REDELIVERED_TOTAL) >>> 0, participants: 0, shutdown: mem.load(W_SHUTDOWN) !== 0 };
    for (let i = 0; i < this.capacity; i++) {
      const kind = mem.load(this.#slotWord(i, S_STATE)) & 0xf;
      if (kind === READY) s.ready++;
      else if (kind === TAKEN) s.inFlight++;
      else if (kind === WRITING) s.writing++;
      else s.free++;
    }
    for (let p = 0; p < this.#participants; p++) if (mem.load(this.#participantWord(p, P_STATE)) === STATE_ATTACHED) s.participants++;
    return s;
  }

  /** Jobs this handle took and has not marked done. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /**
   * Releases this handle: pending gets, puts and joins reject with ERR_IPCKIT_CLOSED; jobs
   * it took and did not finish go back to the queue for another consumer (delivered
   * again); its participant row is freed. The queue itself stays. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#leaveAtExit();
    for (const w of Object.values(this.#waits)) w.stop(true);
    const closed = (): IpcError => closedError(`work queue ${this.name}`);
    this.#getters.rejectAll(closed);
    this.#putters.rejectAll(closed);
    this.#joiners.rejectAll(closed);
    try {
      if (!this.#segment.isIntact()) return;
      let back = 0;
      for (const t of [...this.#inFlight.values()]) {
        try {
          this.#release(t, READY);
          back++;
        } catch {
          /* not ours any more (a corrupt queue): nothing to give back */
        }
      }
      if (back > 0) {
        this.#mem.add(W_REDELIVERED_TOTAL, back);
        this.#wake(W_ITEMS_SIGNAL, W_GETTERS_SLEEPING);
      }
      this.#lockAttach();
      try {
        if (this.#mem.load(this.#participantWord(this.#me, P_PID)) === process.pid && (this.#mem.load(this.#participantWord(this.#me, P_EPOCH)) & 0xffff) === this.#epoch) {
          this.#mem.store(this.#participantWord(this.#me, P_STATE), 0);
        }
      } finally {
        this.#unlockAttach();
      }
    } finally {
      this.#segment.close();
    }
  }

  /** Removes the queue's name (attached handles keep working). False if it was gone. */
  unlink(): boolean {
    return unlinkSharedMemory(this.name);
  }

  /** Yields jobs until the queue is shut down and drained (or this handle closes). Call taskDone for each. */
  [Symbol.asyncIterator](): AsyncIterableIterator<Job<T>> {
    const iterator: AsyncIterableIterator<Job<T>> = {
      next: () =>
        this.get().then(
          (value) => ({ value, done: false }),
          (e: unknown) => {
            if (isIpcError(e, 'ERR_IPCKIT_CLOSED')) return { value: undefined, done: true };
            throw e;
          },
        ),
      return: async () => ({ value: undefined, done: true }),
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- internals: layout ---

  #slotWord(slot: number, field: number): number {
    return (this.#slotsByte + slot * this.#slotBytes) / 4 + field;
  }

  #participantWord(p: number, field: number): number {
    return PARTICIPANTS_BYTE / 4 + p * PARTICIPANT_WORDS + field;
  }

  #corrupt(what: string): IpcError {
    return new IpcError('ERR_IPCKIT_CORRUPT', `work queue ${this.name} is corrupt: ${what}`, { details: { queue: this.name } });
  }

  #checkIntact(): void {
    if (!this.#segment.isIntact()) throw this.#corrupt('the segment was shrunk under us (ftruncate by a peer); touching it would crash this process with SIGBUS');
  }

  #usable(): void {
    if (this.#closed) throw closedError(`work queue ${this.name}`);
    if (this.#error) throw this.#error;
  }

  #encode(item: T): Uint8Array {
    const payload = encodeWith(this.#codec, item);
    if (payload.length > this.maxMessageSize) throw frameTooLarge(payload.length, this.maxMessageSize, 'send');
    return payload;
  }

  #fail(e: unknown): IpcError {
    const err = isIpcError(e) ? e : new IpcError('ERR_IPCKIT_SYSCALL', `work queue ${this.name}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    if (err.code === 'ERR_IPCKIT_CORRUPT' && !this.#error) {
      this.#error = err;
      for (const q of [this.#getters, this.#putters, this.#joiners] as Array<WaitQueue<any, any>>) q.rejectAll(err);
    }
    return err;
  }

  // --- internals: participants ---

  #lockAttach(): void {
    const mem = this.#mem;
    const me = process.pid;
    const deadline = now() + 2000;
    for (;;) {
      const v = mem.compareExchange(W_ATTACH_LOCK, 0, me);
      if (v === 0) return;
      if ((v !== me && !isProcessAlive(v)) || now() > deadline) {
        if (mem.compareExchange(W_ATTACH_LOCK, v, me) === v) return;
        continue;
      }
      mem.waitSync(W_ATTACH_LOCK, v, 1);
    }
  }

  #unlockAttach(): void {
    this.#mem.compareExchange(W_ATTACH_LOCK, process.pid, 0);
  }

  #attach(): void {
    const mem = this.#mem;
    this.#checkIntact();
    this.#lockAttach();
    try {
      let row = -1;
      for (let p = 0; p < this.#participants && row < 0; p++) {
        if (mem.load(this.#participantWord(p, P_STATE)) !== STATE_ATTACHED || !this.#participantAlive(p)) row = p;
      }
      if (row < 0) throw new IpcError('ERR_IPCKIT_LIMIT', `work queue ${this.name}: all ${this.#participants} participant rows are held by live processes (create it with a larger maxParticipants)`, { details: { maxParticipants: this.#participants } });
      const epoch = (mem.add(this.#participantWord(row, P_EPOCH), 1) + 1) & 0xffff;
      mem.store(this.#participantWord(row, P_PID), process.pid);
      mem.store(this.#participantWord(row, P_START_LO), selfStartTime % 2 ** 32 | 0);
      mem.store(this.#participantWord(row, P_START_HI), Math.floor(selfStartTime / 2 ** 32) | 0);
      mem.store(this.#participantWord(row, P_STATE), STATE_ATTACHED);
      this.#me = row;
      this.#epoch = epoch;
      this.#takenWord = (TAKEN | (row << 4) | (epoch << 16)) | 0;
      this.#writingWord = (WRITING | (row << 4) | (epoch << 16)) | 0;
      this.#token = mem.add(W_NEXT_TOKEN, 1) >>> 0;
      this.#leaveAtExit = mem.atThreadExit(this.#participantWord(row, P_PID), process.pid, 0, W_ITEMS_SIGNAL);
    } finally {
      this.#unlockAttach();
    }
    this.#recover(); // the previous holder of our row may have died with slots in hand
  }

  /** Is participant `p` (with `epoch`, if given) attached to a live process? */
  #participantAlive(p: number, epoch?: number): boolean {
    const mem = this.#mem;
    if (mem.load(this.#participantWord(p, P_STATE)) !== STATE_ATTACHED) return false;
    if (epoch !== undefined && (mem.load(this.#participantWord(p, P_EPOCH)) & 0xffff) !== epoch) return false;
    return isProcessAlive(mem.load(this.#participantWord(p, P_PID)), joinStart(mem.load(this.#participantWord(p, P_START_LO)), mem.load(this.#participantWord(p, P_START_HI))));
  }

  /**
   * Gives the slots of dead owners back: WRITING -> FREE (that put never resolved),
   * TAKEN -> READY (delivered again). Returns how many slots it changed.
   */
  #recover(): number {
    const mem = this.#mem;
    this.#lastRecover = now();
    const alive = new Map<number, boolean>();
    let changed = 0;
    let redelivered = 0;
    for (let i = 0; i < this.capacity; i++) {
      const sw = this.#slotWord(i, S_STATE);
      const w = mem.load(sw);
      const kind = w & 0xf;
      if (kind !== WRITING && kind !== TAKEN) {
        if (kind > TAKEN) throw this.#corrupt(`slot ${i} has state 0x${(w >>> 0).toString(16)}`);
        continue;
      }
      if (w === this.#takenWord || w === this.#writingWord) continue; // ours
      const p = (w >>> 4) & 0xfff;
      if (p >= this.#participants) throw this.#corrupt(`slot ${i} is owned by participant ${p} of ${this.#participants}`);
      const key = w & ~0xf;
      let live = alive.get(key);
      if (live === undefined) alive.set(key, (live = this.#participantAlive(p, w >>> 16)));
      if (live) continue;
      if (mem.compareExchange(sw, w, kind === WRITING ? FREE : READY) === w) {
        changed++;
        if (kind === TAKEN) redelivered++;
      }
    }
    if (redelivered > 0) mem.add(W_REDELIVERED_TOTAL, redelivered);
    if (changed > 0) {
      this.#wake(W_ITEMS_SIGNAL, W_GETTERS_SLEEPING);
      this.#wake(W_SPACE_SIGNAL, W_PUTTERS_SLEEPING);
    }
    return changed;
  }

  /** Recovery when waiting (`force`) or every RECOVER_EVERY_MS while busy. */
  #maintain(force: boolean): void {
    if (force || now() - this.#lastRecover >= RECOVER_EVERY_MS) this.#recover();
  }

  // --- internals: slots ---

  /** Claims a FREE slot, writes the item, makes it READY. Returns its id, or -1 if none is free. */
  #tryPlace(payload: Uint8Array, retried = false): number {
    const mem = this.#mem;
    if (mem.load(W_SHUTDOWN) !== 0) throw closedError(`work queue ${this.name} (shut down)`);
    if ((++this.#ops & 255) === 0) this.#maintain(false);
    const cap = this.capacity;
    let i = (mem.load(W_PUT_HINT) >>> 0) % cap;
    if (FAULTS) fault('workqueue:before-claim');
    for (let n = 0; n < cap; n++, i = i + 1 === cap ? 0 : i + 1) {
      const sw = this.#slotWord(i, S_STATE);
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
    if (!retried && now() - this.#lastRecover >= RECOVER_EVERY_MS && this.#recover() > 0) return this.#tryPlace(payload, true);
    return -1;
  }

  /** After items were put: statistics and one wake-up for sleeping consumers. */
  #afterPut(n: number): void {
    this.#mem.add(W_PUT_TOTAL, n);
    if (FAULTS) fault('workqueue:before-wake');
    this.#wake(W_ITEMS_SIGNAL, W_GETTERS_SLEEPING);
  }

  #afterDone(n: number): void {
    const mem = this.#mem;
    mem.add(W_DONE_TOTAL, n);
    this.#wake(W_SPACE_SIGNAL, W_PUTTERS_SLEEPING);
    this.#wake(W_DONE_SIGNAL, W_JOINERS_SLEEPING);
  }

  /** Wakes whoever sleeps on `signal` if they raised the flag (the waker clears it). */
  #wake(signal: number, flag: number): void {
    const mem = this.#mem;
    if (mem.load(flag) !== 0 && mem.compareExchange(flag, 1, 0) === 1) {
      mem.add(signal, 1);
      mem.wake(signal, -1);
    }
  }

  /**
   * Takes one READY item, or undefined. An item that fails to decode is dropped (counted as
   * done) and its error thrown; but in a batch that already holds items (`inBatch`) it is
   * put back for the next get to report alone, since the batch cannot carry the error.
   */
  #take(retried = false, inBatch = false): Taken<T> | undefined {
    const mem = this.#mem;
    if ((++this.#ops & 255) === 0) this.#maintain(false);
    const cap = this.capacity;
    let i = (mem.load(W_GET_HINT) >>> 0) % cap;
    for (let n = 0; n < cap; n++, i = i + 1 === cap ? 0 : i + 1) {
      const sw = this.#slotWord(i, S_STATE);
      if (mem.load(sw) !== READY || mem.compareExchange(sw, READY, this.#takenWord) !== READY) continue;
      mem.store(W_GET_HINT, i + 1 === cap ? 0 : i + 1);
      // Ours now: read what the producer wrote (each field once, checked).
      const len = mem.loadPlain(sw + S_LENGTH) >>> 0;
      if (len > this.maxMessageSize) {
        mem.store(sw, FREE);
        throw this.#corrupt(`slot ${i} holds ${len} bytes, more than the maximum ${this.maxMessageSize}`);
      }
      const id = (mem.loadPlain(sw + S_ID_HI) >>> 0) * 4294967296 + (mem.loadPlain(sw + S_ID_LO) >>> 0);
      const deliveries = (mem.loadPlain(sw + S_DELIVERIES) >>> 0) + 1;
      mem.storePlain(sw + S_DELIVERIES, deliveries);
      const payload = mem.copyOut(this.#slotsByte + i * this.#slotBytes + SLOT_HEADER, len);
      if (FAULTS) fault('workqueue:after-take');
      let data: T;
      try {
        data = decodeWith(this.#codec, payload);
      } catch (e) {
        if (inBatch) {
          mem.storePlain(sw + S_DELIVERIES, deliveries - 1);
          mem.store(sw, READY);
          mem.store(W_GET_HINT, i);
          this.#wake(W_ITEMS_SIGNAL, W_GETTERS_SLEEPING);
          throw e;
        }
        // An item we cannot decode is not ours to retry forever: drop it, counted as done.
        mem.store(sw, FREE);
        this.#afterDone(1);
        throw e;
      }
      const job = new JobImpl(id, data, deliveries, i);
      this.#inFlight.set(id, job);
      return job;
    }
    // Nothing ready: a dead consumer may hold jobs that are due again.
    if (!retried && now() - this.#lastRecover >= RECOVER_EVERY_MS && this.#recover() > 0) return this.#take(true, inBatch);
    return undefined;
  }

  #takeMany(max: number): Array<Taken<T>> {
    const out: Array<Taken<T>> = [];
    while (out.length < max) {
      let job: Taken<T> | undefined;
      try {
        job = this.#take(false, out.length > 0);
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
  #release(t: Taken<T>, to: number): void {
    const mem = this.#mem;
    const sw = this.#slotWord(t.slot, S_STATE);
    this.#inFlight.delete(t.id);
    const idNow = (mem.loadPlain(sw + S_ID_HI) >>> 0) * 4294967296 + (mem.loadPlain(sw + S_ID_LO) >>> 0);
    if (idNow !== t.id || mem.compareExchange(sw, this.#takenWord, to) !== this.#takenWord) {
      throw new IpcError('ERR_IPCKIT_CORRUPT', `work queue ${this.name}: job ${t.id} was taken from us while we held it (another process thinks we died?)`);
    }
  }

  #oldest(): Taken<T> {
    const first = this.#inFlight.values().next();
    if (first.done) throw invalidArgument('taskDone() called with no job in progress on this handle');
    return first.value;
  }

  /** Items put and not yet done: READY or TAKEN slots. */
  #unfinished(): number {
    const mem = this.#mem;
    let n = 0;
    for (let i = 0; i < this.capacity; i++) {
      const kind = mem.load(this.#slotWord(i, S_STATE)) & 0xf;
      if (kind === READY || kind === TAKEN) n++;
    }
    return n;
  }

  /** ERR_IPCKIT_CLOSED when the queue is shut down and nothing is ready or in progress elsewhere. */
  #drained(): IpcError | undefined {
    const mem = this.#mem;
    if (mem.load(W_SHUTDOWN) === 0) return undefined;
    for (let i = 0; i < this.capacity; i++) {
      const w = mem.load(this.#slotWord(i, S_STATE));
      const kind = w & 0xf;
      if (kind === READY || kind === WRITING || (kind === TAKEN && w !== this.#takenWord)) return undefined;
    }
    return closedError(`work queue ${this.name} (shut down, and every item is done)`);
  }

  // --- internals: waiting ---

  #request(want: Want, options: WaitOptions | undefined): Promise<unknown> {
    if (this.#closed || this.#error) return Promise.reject(this.#error ?? closedError(`work queue ${this.name}`));
    if (this.#getters.length === 0) {
      try {
        const v = this.#serve(want);
        if (v !== undefined) return Promise.resolve(v);
        // Spin a little before going to sleep; an event-loop spin lasts at most 1 ms.
        const s = this.#spinner.spinFor(() => this.#serve(want), undefined, 1000);
        if (s !== undefined) return Promise.resolve(s);
      } catch (e) {
        return Promise.reject(this.#fail(e));
      }
    }
    const p = this.#getters.enqueue(options, want);
    this.#armGet(false);
    return p;
  }

  #serve(want: Want): unknown {
    if (want.many) {
      const batch = this.#takeMany(want.max);
      return batch.length > 0 ? batch : undefined;
    }
    return this.#take();
  }

  #deliver(): void {
    for (;;) {
      const want = this.#getters.peek();
      if (!want) return;
      let v: unknown;
      try {
        v = this.#serve(want);
      } catch (e) {
        if (isIpcError(e, 'ERR_IPCKIT_CORRUPT')) throw e;
        this.#getters.rejectNext(e); // an item that failed to decode: that one only
        continue;
      }
      if (v === undefined) return;
      this.#getters.resolveNext(v);
    }
  }

  /** A futex wait failed (-errno `res`): the queue is unusable for every waiter. */
  #waitFailed(res: number, kind: 'items' | 'space' | 'done'): void {
    let err: IpcError;
    try {
      this.#checkIntact();
      err = errnoError(-res, 'futex_waitv', kind);
    } catch (e) {
      err = e as IpcError;
    }
    this.#fail(err);
    for (const q of [this.#getters, this.#putters, this.#joiners] as Array<WaitQueue<any, any>>) q.rejectAll(err);
  }

  #armGet(deep: boolean): void {
    if (this.#waits.items.pending || this.#closed || this.#error) return;
    const mem = this.#mem;
    try {
      if (deep) this.#checkIntact();
      this.#maintain(deep);
      this.#deliver();
      if (this.#getters.length === 0) return;
      const end = this.#drained();
      if (end) {
        this.#getters.rejectAll(end);
        return;
      }
      mem.store(W_GETTERS_SLEEPING, 1);
      const seq = mem.load(W_ITEMS_SIGNAL);
      this.#deliver();
      if (this.#getters.length === 0) return;
      this.#waits.items.sleep(seq);
    } catch (e) {
      this.#getters.rejectAll(this.#fail(e));
    }
  }

  /** Places what waiting puts can place, in order. */
  #admit(): void {
    let placed = 0;
    try {
      for (;;) {
        const pending = this.#putters.peek();
        if (!pending) break;
        while (pending.ids.length < pending.payloads.length) {
          const id = this.#tryPlace(pending.payloads[pending.ids.length]!);
          if (id < 0) break;
          pending.ids.push(id);
          placed++;
        }
        if (pending.ids.length < pending.payloads.length) break;
        this.#putters.resolveNext(pending.single ? pending.ids[0]! : pending.ids);
      }
    } finally {
      if (placed > 0) this.#afterPut(placed);
    }
  }

  #armPut(deep = false): void {
    if (this.#waits.space.pending || this.#closed || this.#error) return;
    const mem = this.#mem;
    try {
      if (deep) this.#checkIntact();
      this.#maintain(deep);
      this.#admit();
      if (this.#putters.length === 0) return;
      mem.store(W_PUTTERS_SLEEPING, 1);
      const seq = mem.load(W_SPACE_SIGNAL);
      this.#admit();
      if (this.#putters.length === 0) return;
      this.#waits.space.sleep(seq);
    } catch (e) {
      this.#putters.rejectAll(this.#fail(e));
    }
  }

  #armJoin(deep = false): void {
    if (this.#waits.done.pending || this.#closed || this.#error) return;
    const mem = this.#mem;
    try {
      if (deep) this.#checkIntact();
      this.#maintain(deep);
      if (this.#unfinished() === 0) {
        while (this.#joiners.resolveNext(undefined));
        return;
      }
      if (this.#joiners.length === 0) return;
      mem.store(W_JOINERS_SLEEPING, 1);
      const seq = mem.load(W_DONE_SIGNAL);
      if (this.#unfinished() === 0) {
        while (this.#joiners.resolveNext(undefined));
        return;
      }
      this.#waits.done.sleep(seq);
    } catch (e) {
      this.#joiners.rejectAll(this.#fail(e));
    }
  }
}

/** Creates a work queue exclusively (mode 0600 unless asked) and returns a handle on it. */
export function createWorkQueue<C extends CodecOption | undefined = undefined>(name: string, options: CreateWorkQueueOptions<C> = {}): WorkQueue<MessageOf<C>> {
  validate.object('options', options);
  const capacity = validate.integer('capacity', options.capacity ?? 1024, 1, 1 << 24);
  const max = validate.integer('maxMessageSize', options.maxMessageSize ?? 4096, 1, 1 << 30);
  const participants = validate.integer('maxParticipants', options.maxParticipants ?? 64, 1, MAX_PARTICIPANTS);
  const slotBytes = Math.ceil((SLOT_HEADER + max) / 64) * 64;
  const slotsByte = Math.ceil((PARTICIPANTS_BYTE + participants * PARTICIPANT_WORDS * 4) / 4096) * 4096;
  const size = slotsByte + capacity * slotBytes;
  if (size > Number.MAX_SAFE_INTEGER / 2) throw invalidArgument('capacity x maxMessageSize is too large');
  const segOptions: Parameters<typeof createSharedMemory>[2] = { reserve: true };
  if (options.mode !== undefined) segOptions.mode = options.mode;
  if (options.group !== undefined) segOptions.group = options.group;
  if (options.external !== undefined) segOptions.external = options.external;
  const segment = createSharedMemory(name, size, segOptions);
  try {
    const mem = memoryOf(segment);
    mem.store(W_VERSION, VERSION);
    mem.store(W_SLOTS_OFFSET, slotsByte);
    mem.store(W_CAPACITY, capacity);
    mem.store(W_SLOT_BYTES, slotBytes);
    mem.store(W_MAX_MESSAGE, max);
    mem.store(W_PARTICIPANTS, participants);
    mem.store(W_MAGIC, MAGIC); // last: openers wait for it
    return new WorkQueue<MessageOf<C>>(segment, options);
  } catch (e) {
    segment.close();
    unlinkSharedMemory(segment.name);
    throw e;
  }
}

/** Opens an existing work queue after checking its owner, mode and layout. */
export function openWorkQueue<C extends CodecOption | undefined = undefined>(name: string, options: OpenWorkQueueOptions<C> = {}): WorkQueue<MessageOf<C>> {
  validate.object('options', options);
  const { codec, spinMicros, ...open } = options;
  const segment = openSharedMemory(name, open);
  try {
    return new WorkQueue<MessageOf<C>>(segment, { codec, spinMicros } as WorkQueueHandleOptions<C>);
  } catch (e) {
    segment.close();
    throw e;
  }
}

/** Removes a work queue's name. Idempotent: false if it was gone. */
export function unlinkWorkQueue(name: string): boolean {
  return unlinkSharedMemory(name);
}
