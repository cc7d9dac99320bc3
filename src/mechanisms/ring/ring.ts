/**
 * The ring channel: a bounded ring of variable-length messages in one shared memory
 * segment, the fastest channel JavaScript can have between two processes.
 *
 * `createRing(name, { capacity })` / `openRing(name)` give a `Ring`; `ring.sender()` is
 * the producer side (a Sender), `ring.receiver()` the consumer side (a Receiver). One
 * producer by default; `{ producers: 'many' }` lets several processes send, with a
 * claim/commit protocol. A duplex link is two rings (`openRingChannel`).
 *
 * The layout is written down in docs/ring.md so that a C peer can implement it. In short:
 * a 4 KiB header (identity, cursors on separate cache lines, wait words, the consumer's
 * and each producer's pid and start time), then the data region of `capacity` bytes
 * holding 8-byte-aligned records: [commit word][length][payload]. A record never wraps:
 * a padding record fills the end of the region instead.
 *
 * Rules that keep it safe with an untrusted or crashing peer:
 * - Every cursor, length and commit word read from the segment is copied once into a
 *   local, bounds-checked, and only the local is used; a violation is ERR_IPCKIT_CORRUPT
 *   (the endpoint then stays failed). No loop runs longer than the bytes it has to read.
 * - A message is visible only once committed. In the single-producer mode the producer
 *   publishes the tail after writing; in the many-producer mode it claims space under a
 *   tiny lock (writing a CLAIMED header that names its slot before the tail moves), copies
 *   without the lock, then commits. A claim whose producer died becomes padding: never a
 *   torn message.
 * - Waiting spins briefly, then sleeps on a futex. A sleeper raises a flag; the other side
 *   makes the wake-up system call only when it sees the flag (and clears it), so a busy
 *   channel makes no system call at all. Sleeps are bounded (50 ms slices): at each end
 *   the peer's liveness (pid + start time) and the segment's size are checked, so a wait
 *   on a dead peer ends with ERR_IPCKIT_PEER_GONE, and a lost wake-up costs at most one
 *   slice.
 */
import { availableParallelism } from 'node:os';
import { RESOLVED, WaitQueue, receiverIterator, type Channel, type Receiver, type Sender, type WaitOptions } from '../../core/channel.js';
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

// --- The layout (docs/ring.md). Word indexes are in 32-bit units from the start. ---------
const MAGIC = 0x524b5049; // "IPKR" in little-endian bytes
const VERSION = 1;
const HEADER_BYTES = 4096;
const W_MAGIC = 0;
const W_VERSION = 1;
const W_HEADER_BYTES = 2;
const W_CAPACITY = 3;
const W_FLAGS = 4;
const W_MAX_MESSAGE = 5;
const W_PRODUCER_SLOTS = 6;
const W_TAIL = 16; // line 1 (byte 64): producers' cursor
const W_CLAIM_LOCK = 17; //            the many-producer claim lock
const W_HEAD = 32; // line 2 (byte 128): consumer's cursor
const W_DATA_SIGNAL = 48; // line 3 (byte 192): futex word the consumer sleeps on
const W_CONSUMER_SLEEPING = 49; //              its sleeper flag
const W_SPACE_SIGNAL = 64; // line 4 (byte 256): futex word producers sleep on
const W_PRODUCER_SLEEPING = 65; //               their sleeper flag
const W_CONSUMER_PID = 80; // line 5 (byte 320): the consumer
const W_CONSUMER_STATE = 81;
const W_CONSUMER_START_LO = 82;
const W_CONSUMER_START_HI = 83;
const W_ATTACH_LOCK = 96; // line 6 (byte 384): serialises attach/detach
const W_PRODUCERS_EVER = 97; //                  producers that ever attached
const W_SLOTS = 128; // byte 512: producer slots, 32 bytes each
const SLOT_WORDS = 8;
const S_PID = 0;
const S_STATE = 1;
const S_START_LO = 2;
const S_START_HI = 3;
const S_EPOCH = 4;
const MAX_PRODUCER_SLOTS = 64;
const FLAG_MANY = 1;
const STATE_FREE = 0;
const STATE_ATTACHED = 1;
const STATE_CLOSED = 2;
const REC_MESSAGE = 1;
const REC_PADDING = 2;
const REC_CLAIMED = 3; // | slot << 8 | (epoch & 0xffff) << 16
const RECORD_HEADER = 8;
const MIN_CAPACITY = 4096;
const MAX_CAPACITY = 2 ** 30;

/** How long one sleep lasts before liveness and segment checks (ms). */
const SLICE_MS = 50;
/** Default spin before sleeping (µs): about one cross-CPU wake-up on the machines we measured. */
const DEFAULT_SPIN_MICROS = 20;

const now = (): number => performance.now();

/** The error for a failed futex wait: a shrunk segment shows as EFAULT. */
function waitError(core: RingCore, res: number, what: string): IpcError {
  try {
    core.checkIntact();
  } catch (e) {
    return e as IpcError;
  }
  return errnoError(-res, 'futex_waitv', what);
}

function corrupt(ring: string, what: string): IpcError {
  return new IpcError('ERR_IPCKIT_CORRUPT', `ring ${ring} is corrupt: ${what}`, { details: { ring } });
}

function peerGone(ring: string, who: string): IpcError {
  return new IpcError('ERR_IPCKIT_PEER_GONE', `ring ${ring}: the ${who} died`, { details: { ring } });
}

const splitStart = (t: number): [number, number] => [t % 2 ** 32 | 0, Math.floor(t / 2 ** 32) | 0];
/** A recorded start time; 0 (a peer that did not record one) means: check the pid alone. */
const joinStart = (lo: number, hi: number): number | undefined => (hi >>> 0) * 2 ** 32 + (lo >>> 0) || undefined;

/** Everything both endpoints share: the mapping, the geometry read once at open, the locks. */
class RingCore {
  readonly mem: Memory;
  readonly capacity: number;
  readonly mask: number;
  readonly maxMessageSize: number;
  readonly many: boolean;
  readonly slots: number;
  #refs = 1;

  constructor(
    readonly name: string,
    readonly segment: SharedMemory,
  ) {
    const mem = memoryOf(segment);
    this.mem = mem;
    // The creator writes the magic last; wait a moment for a creator that is still at it.
    let magic = mem.load(W_MAGIC);
    for (const end = now() + 1000; magic === 0 && now() < end; magic = mem.load(W_MAGIC)) mem.waitSync(W_MAGIC, 0, 1);
    if (magic === 0) throw corrupt(name, 'it was never initialized (its creator may have died while creating it)');
    if (magic >>> 0 !== MAGIC) throw corrupt(name, `bad magic 0x${(magic >>> 0).toString(16)} (not a ring)`);
    const version = mem.load(W_VERSION);
    if (version !== VERSION) throw corrupt(name, `layout version ${version}, this ipckit reads version ${VERSION}`);
    const headerBytes = mem.load(W_HEADER_BYTES);
    const capacity = mem.load(W_CAPACITY) >>> 0;
    const flags = mem.load(W_FLAGS) >>> 0;
    const maxMessage = mem.load(W_MAX_MESSAGE) >>> 0;
    const slots = mem.load(W_PRODUCER_SLOTS) >>> 0;
    if (headerBytes !== HEADER_BYTES) throw corrupt(name, `header size ${headerBytes}`);
    if (capacity < MIN_CAPACITY || capacity > MAX_CAPACITY || (capacity & (capacity - 1)) !== 0) throw corrupt(name, `capacity ${capacity} is not a power of two from 4096 to 2^30`);
    if (segment.size < HEADER_BYTES + capacity) throw corrupt(name, `the segment has ${segment.size} bytes, fewer than its header and capacity (${HEADER_BYTES + capacity})`);
    if ((flags & ~FLAG_MANY) !== 0) throw corrupt(name, `unknown flags 0x${flags.toString(16)}`);
    if (maxMessage < 1 || maxMessage > capacity - RECORD_HEADER) throw corrupt(name, `max message size ${maxMessage} for capacity ${capacity}`);
    const many = (flags & FLAG_MANY) !== 0;
    if (slots < 1 || slots > MAX_PRODUCER_SLOTS || (!many && slots !== 1)) throw corrupt(name, `${slots} producer slots`);
    this.capacity = capacity;
    this.mask = capacity - 1;
    this.maxMessageSize = maxMessage;
    this.many = many;
    this.slots = slots;
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

  /**
   * Serialises attach and detach (held for a few stores). A holder that died loses it; a
   * live one that keeps it for 2 s (stopped, or hostile) is never robbed, since two
   * attaching at once could both take the one consumer's place: TIMEOUT instead.
   */
  lockAttach(): void {
    const mem = this.mem;
    const me = process.pid;
    const deadline = now() + 2000;
    for (;;) {
      const v = mem.compareExchange(W_ATTACH_LOCK, 0, me);
      if (v === 0) return;
      if (v !== me && !isProcessAlive(v)) {
        if (mem.compareExchange(W_ATTACH_LOCK, v, me) === v) return;
        continue;
      }
      if (now() > deadline) {
        throw new IpcError('ERR_IPCKIT_TIMEOUT', `ring ${this.name}: process ${v} has held the attach lock for 2 s (stopped or hung?); not taking it from a live process`, { details: { ring: this.name, pid: v } });
      }
      mem.waitSync(W_ATTACH_LOCK, v, 1);
    }
  }

  /** lockAttach, or false where it would throw TIMEOUT. */
  tryLockAttach(): boolean {
    try {
      this.lockAttach();
      return true;
    } catch (e) {
      if (isIpcError(e) && e.code === 'ERR_IPCKIT_TIMEOUT') return false;
      throw e;
    }
  }

  unlockAttach(): void {
    this.mem.compareExchange(W_ATTACH_LOCK, process.pid, 0);
  }

  slotWord(slot: number, field: number): number {
    return W_SLOTS + slot * SLOT_WORDS + field;
  }

  /** Is producer slot `slot` attached to a live process (with `epoch`, if given)? */
  slotAlive(slot: number, epoch?: number): boolean {
    const mem = this.mem;
    if (mem.load(this.slotWord(slot, S_STATE)) !== STATE_ATTACHED) return false;
    if (epoch !== undefined && (mem.load(this.slotWord(slot, S_EPOCH)) & 0xffff) !== epoch) return false;
    const pid = mem.load(this.slotWord(slot, S_PID));
    return isProcessAlive(pid, joinStart(mem.load(this.slotWord(slot, S_START_LO)), mem.load(this.slotWord(slot, S_START_HI))));
  }

  consumerAlive(): boolean {
    const mem = this.mem;
    return isProcessAlive(mem.load(W_CONSUMER_PID), joinStart(mem.load(W_CONSUMER_START_LO), mem.load(W_CONSUMER_START_HI)));
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

  /** Unconditional wake of everyone sleeping on `signal` (used on close). */
  signal(word: number): void {
    this.mem.add(word, 1);
    this.mem.wake(word, -1);
  }
}

// --- Options ---------------------------------------------------------------------------

export interface CreateRingOptions extends CreateModeOptions {
  /** Bytes of the data region: a power of two from 4 KiB to 1 GiB (default 1 MiB). */
  capacity?: number;
  /** Largest message (default capacity / 2; at most capacity - 8). */
  maxMessageSize?: number;
  /** 'one' (default): one producer at a time; 'many': several, with claim/commit. */
  producers?: 'one' | 'many';
  /** Producer slots for 'many' (default 16, at most 64). */
  maxProducers?: number;
  /** See SharedMemory: false for the copying path. */
  external?: boolean;
}

export interface OpenRingOptions extends OwnerCheckOptions {
  external?: boolean;
}

export interface RingEndpointOptions<C extends CodecOption | undefined = undefined> {
  codec?: C;
  /**
   * How long a wait spins before it sleeps, in µs (default 20, or 0 when the process may
   * run on one CPU only). 0: sleep at once; Infinity: never sleep (busy-wait; async waits
   * yield to the event loop every millisecond).
   */
  spinMicros?: number;
}

export interface RingInfo {
  name: string;
  capacity: number;
  maxMessageSize: number;
  producers: 'one' | 'many';
  maxProducers: number;
  /** Bytes between the consumer's and the producers' cursors (messages, padding and claims). */
  used: number;
  head: number;
  tail: number;
  consumer: { pid: number; state: 'none' | 'attached' | 'closed'; alive: boolean };
  producerSlots: Array<{ slot: number; pid: number; state: 'free' | 'attached' | 'closed'; alive: boolean }>;
  producersEver: number;
}

const STATE_NAMES = ['free', 'attached', 'closed'] as const;

/** A ring segment, opened or created; `sender()` and `receiver()` attach to it. */
export class Ring {
  readonly name: string;
  #core: RingCore;
  #closed = false;

  /** @internal */
  constructor(core: RingCore) {
    this.#core = core;
    this.name = core.name;
  }

  get capacity(): number {
    return this.#core.capacity;
  }
  get maxMessageSize(): number {
    return this.#core.maxMessageSize;
  }
  get producers(): 'one' | 'many' {
    return this.#core.many ? 'many' : 'one';
  }
  /** Whether its bytes are reached through a SharedArrayBuffer (true) or the copying path. */
  get external(): boolean {
    return this.#core.mem.external;
  }

  /** Attaches as a producer (ERR_IPCKIT_LIMIT if every producer slot is held by a live process). */
  sender<C extends CodecOption | undefined = undefined>(options: RingEndpointOptions<C> = {}): RingSender<MessageOf<C>> {
    this.#check();
    return new RingSender<MessageOf<C>>(this.#core, options);
  }

  /** Attaches as the consumer (ERR_IPCKIT_LIMIT if a live process already is it). */
  receiver<C extends CodecOption | undefined = undefined>(options: RingEndpointOptions<C> = {}): RingReceiver<MessageOf<C>> {
    this.#check();
    return new RingReceiver<MessageOf<C>>(this.#core, options);
  }

  info(): RingInfo {
    this.#check();
    const core = this.#core;
    core.checkIntact();
    const mem = core.mem;
    const head = mem.load(W_HEAD) >>> 0;
    const tail = mem.load(W_TAIL) >>> 0;
    const cstate = mem.load(W_CONSUMER_STATE);
    const slots: RingInfo['producerSlots'] = [];
    for (let s = 0; s < core.slots; s++) {
      const state = mem.load(core.slotWord(s, S_STATE));
      slots.push({ slot: s, pid: mem.load(core.slotWord(s, S_PID)), state: STATE_NAMES[state] ?? 'free', alive: state === STATE_ATTACHED && core.slotAlive(s) });
    }
    return {
      name: core.name,
      capacity: core.capacity,
      maxMessageSize: core.maxMessageSize,
      producers: core.many ? 'many' : 'one',
      maxProducers: core.slots,
      used: (tail - head) >>> 0,
      head,
      tail,
      consumer: { pid: mem.load(W_CONSUMER_PID), state: cstate === STATE_ATTACHED ? 'attached' : cstate === STATE_CLOSED ? 'closed' : 'none', alive: cstate === STATE_ATTACHED && core.consumerAlive() },
      producerSlots: slots,
      producersEver: mem.load(W_PRODUCERS_EVER) >>> 0,
    };
  }

  /** Releases this handle; the mapping goes when its sender and receiver are closed too. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#core.release();
  }

  /** Removes the ring's name (attached endpoints keep working). False if it was gone. */
  unlink(): boolean {
    return unlinkSharedMemory(this.name);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #check(): void {
    if (this.#closed) throw closedError(`ring ${this.name}`);
  }
}

/** Creates a ring segment exclusively (mode 0600 unless asked) and initializes it. */
export function createRing(name: string, options: CreateRingOptions = {}): Ring {
  validate.object('options', options);
  const capacity = validate.integer('capacity', options.capacity ?? 1024 * 1024, MIN_CAPACITY, MAX_CAPACITY);
  if ((capacity & (capacity - 1)) !== 0) throw invalidArgument(`capacity must be a power of two, got ${capacity}`);
  const maxMessage = validate.integer('maxMessageSize', options.maxMessageSize ?? capacity / 2, 1, capacity - RECORD_HEADER);
  const producers = options.producers === undefined ? 'one' : validate.oneOf('producers', options.producers, ['one', 'many'] as const);
  const slots = producers === 'one' ? 1 : validate.integer('maxProducers', options.maxProducers ?? 16, 1, MAX_PRODUCER_SLOTS);
  const segOptions: Parameters<typeof createSharedMemory>[2] = { reserve: true };
  if (options.mode !== undefined) segOptions.mode = options.mode;
  if (options.group !== undefined) segOptions.group = options.group;
  if (options.external !== undefined) segOptions.external = options.external;
  const segment = createSharedMemory(name, HEADER_BYTES + capacity, segOptions);
  try {
    const mem = memoryOf(segment);
    mem.store(W_VERSION, VERSION);
    mem.store(W_HEADER_BYTES, HEADER_BYTES);
    mem.store(W_CAPACITY, capacity);
    mem.store(W_FLAGS, producers === 'many' ? FLAG_MANY : 0);
    mem.store(W_MAX_MESSAGE, maxMessage);
    mem.store(W_PRODUCER_SLOTS, slots);
    mem.store(W_MAGIC, MAGIC); // last: openers wait for it
    return new Ring(new RingCore(segment.name, segment));
  } catch (e) {
    segment.close();
    unlinkSharedMemory(segment.name);
    throw e;
  }
}

/** Opens an existing ring after checking its owner, mode and layout. */
export function openRing(name: string, options: OpenRingOptions = {}): Ring {
  validate.object('options', options);
  const segment = openSharedMemory(name, options);
  try {
    return new Ring(new RingCore(segment.name, segment));
  } catch (e) {
    segment.close();
    throw e;
  }
}

/** Removes a ring's name. Idempotent: false if it was gone. */
export function unlinkRing(name: string): boolean {
  return unlinkSharedMemory(name);
}

function spinOption(value: unknown): number {
  // On one CPU a spinning waiter only delays the peer it waits for: sleep at once there.
  if (value === undefined) return availableParallelism() > 1 ? DEFAULT_SPIN_MICROS : 0;
  if (value === Infinity) return Infinity;
  return validate.integer('spinMicros', value, 0, 10_000_000);
}

/** Remaining ms to a deadline (undefined: none). */
const remaining = (deadline: number | undefined): number => (deadline === undefined ? SLICE_MS : Math.max(0, Math.min(SLICE_MS, deadline - now())));

// --- The producer side -----------------------------------------------------------------

interface PendingSend {
  payloads: Uint8Array[];
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
  #slot = 0;
  #claimWord = 0; // CLAIMED | slot << 8 | epoch << 16
  #lockValue = 0; // slot + 1 | epoch << 8
  #tail = 0; // one-producer mode: our private tail
  #headCache = 0;
  #waiting = new WaitQueue<void, PendingSend>('send');
  #wait: LoopWait;
  #leaveAtExit: () => void = () => {}; // a terminated worker's slot must look dead (its pid cleared)
  #closed = false;
  #error: IpcError | null = null;

  /** @internal Use ring.sender(). */
  constructor(core: RingCore, options: RingEndpointOptions<CodecOption | undefined>) {
    validate.object('options', options);
    this.#codec = resolveCodec(options.codec) as Codec<T>;
    this.#spinner = new SpinBudget(spinOption(options.spinMicros));
    this.ring = core.name;
    this.#core = core;
    this.#mem = core.mem;
    this.#capacity = core.capacity;
    this.#mask = core.mask;
    this.#max = core.maxMessageSize;
    this.#many = core.many;
    this.#wait = new LoopWait(this.#mem, W_SPACE_SIGNAL, SLICE_MS, (res) => {
      if (res < 0) this.#waiting.rejectAll(this.#fail(waitError(this.#core, res, 'send')));
      else this.#arm(res === 2);
    });
    this.#attach();
    core.retain();
    this.#waiting.onCancel = () => {
      if (this.#waiting.length === 0) this.#wait.stop();
    };
  }

  get maxMessageSize(): number {
    return this.#max;
  }

  /** Accepts the message into the ring (resolved at once when there is room), or waits for room. */
  send(message: T, options?: WaitOptions): Promise<void> {
    if (this.#closed || this.#error) return Promise.reject(this.#error ?? closedError('sender'));
    const payload = this.#encode(message);
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
    const p = this.#waiting.enqueue(options, { payloads: [payload], next: 0 });
    this.#arm();
    return p;
  }

  /** Writes the message now and returns true, or returns false when the ring is full. */
  trySend(message: T): boolean {
    if (this.#closed || this.#error) throw this.#error ?? closedError('sender');
    const payload = this.#encode(message);
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
    if (this.#closed || this.#error) return Promise.reject(this.#error ?? closedError('sender'));
    const payloads: Uint8Array[] = [];
    for (const m of messages) payloads.push(this.#encode(m));
    let next = 0;
    if (this.#waiting.length === 0) {
      try {
        while (next < payloads.length && this.#place(payloads[next]!) === 'ok') next++;
      } catch (e) {
        return Promise.reject(this.#fail(e));
      }
      if (next > 0) this.#publish();
      if (next === payloads.length) return RESOLVED;
    }
    const pending: PendingSend = { payloads, next };
    const p = this.#waiting.enqueue(options, pending).catch((e: unknown) => {
      if (isIpcError(e)) throw e.amend({ details: { sent: pending.next } });
      throw e;
    });
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
    if (this.#closed || this.#error) throw this.#error ?? closedError('sender');
    if (this.#waiting.length > 0) return 0;
    let i = start;
    try {
      while (i < messages.length && this.#place(this.#encode(messages[i]!)) === 'ok') i++;
    } catch (e) {
      if (i > start) this.#publish();
      const err = isIpcError(e, 'ERR_IPCKIT_FRAME_TOO_LARGE') || isIpcError(e, 'ERR_IPCKIT_INVALID_ARGUMENT') ? e : this.#fail(e);
      // The messages before the failing one went out: say how many, as sendMany does.
      throw err.amend({ details: { sent: i - start } });
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
    if (this.#closed || this.#error) throw this.#error ?? closedError('sender');
    if (this.#waiting.length > 0) throw invalidArgument('sendSync cannot overtake pending asynchronous sends');
    const payload = this.#encode(message);
    const ms = validate.timeout(timeoutMs);
    const deadline = ms === undefined ? undefined : now() + ms;
    const mem = this.#mem;
    try {
      let r = this.#place(payload);
      if (r === 'ok') return this.#publish();
      this.#checkConsumer(false);
      // Spin (the budget adapts to what spinning achieved lately), then sleep.
      const budget = this.#spinner.next();
      if (budget > 0) {
        const t0 = now();
        const until = Math.min(t0 + budget / 1000, deadline ?? Infinity);
        let lastDeep = t0;
        for (;;) {
          const t = now();
          const deep = t - lastDeep >= SLICE_MS; // a long spin still checks the receiver
          if (deep) {
            lastDeep = t;
            this.#core.checkIntact();
          }
          r = this.#place(payload);
          if (r === 'ok') {
            this.#spinner.caught((now() - t0) * 1000);
            return this.#publish();
          }
          this.#checkConsumer(deep);
          if (t >= until) break;
        }
        this.#spinner.missed();
      }
      let deep = false;
      for (;;) {
        if (deadline !== undefined && now() >= deadline) throw timeoutError('send', ms!);
        if (r === 'busy') {
          mem.waitSync(W_CLAIM_LOCK, mem.load(W_CLAIM_LOCK), 1);
        } else {
          mem.store(W_PRODUCER_SLEEPING, 1);
          const seq = mem.load(W_SPACE_SIGNAL);
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
   * producer slot is marked closed (the receiver ends once it has read everything and no
   * other producer is attached), and the mapping is released. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#leaveAtExit();
    this.#wait.stop(true);
    this.#waiting.rejectAll(() => closedError('sender'));
    const core = this.#core;
    try {
      if (!core.segment.isIntact()) return; // shrunk under us: touching it would be a SIGBUS
      // Marking our own slot closed is one store: a live process squatting on the lock
      // (lockAttach's TIMEOUT) must not keep close() from finishing.
      const locked = core.tryLockAttach();
      try {
        if ((this.#mem.load(core.slotWord(this.#slot, S_EPOCH)) & 0xffff) === this.#claimWord >>> 16 && this.#mem.load(core.slotWord(this.#slot, S_PID)) === process.pid) {
          this.#mem.store(core.slotWord(this.#slot, S_STATE), STATE_CLOSED);
        }
      } finally {
        if (locked) core.unlockAttach();
      }
      core.signal(W_DATA_SIGNAL);
    } finally {
      core.release();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- internals ---

  #encode(message: T): Uint8Array {
    const payload = encodeWith(this.#codec, message);
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

  /** Takes a producer slot: a free one, a closed one, or one whose process died. */
  #attach(): void {
    const core = this.#core;
    const mem = this.#mem;
    core.lockAttach();
    try {
      core.checkIntact();
      let slot = -1;
      for (let s = 0; s < core.slots && slot < 0; s++) {
        if (mem.load(core.slotWord(s, S_STATE)) !== STATE_ATTACHED || !core.slotAlive(s)) slot = s;
      }
      if (slot < 0) {
        const pid = mem.load(core.slotWord(0, S_PID));
        throw new IpcError(
          'ERR_IPCKIT_LIMIT',
          core.many
            ? `ring ${core.name}: all ${core.slots} producer slots are held by live processes (create the ring with a larger maxProducers)`
            : `ring ${core.name} takes one producer and process ${pid} is it (create the ring with { producers: 'many' } for several)`,
          { details: { ring: core.name, maxProducers: core.slots } },
        );
      }
      const epoch = (mem.add(core.slotWord(slot, S_EPOCH), 1) + 1) & 0xffff;
      const [lo, hi] = splitStart(selfStartTime);
      mem.store(core.slotWord(slot, S_PID), process.pid);
      mem.store(core.slotWord(slot, S_START_LO), lo);
      mem.store(core.slotWord(slot, S_START_HI), hi);
      mem.store(core.slotWord(slot, S_STATE), STATE_ATTACHED);
      mem.add(W_PRODUCERS_EVER, 1);
      this.#slot = slot;
      this.#claimWord = (REC_CLAIMED | (slot << 8) | (epoch << 16)) | 0;
      this.#lockValue = (slot + 1) | (epoch << 8);
      const tail = mem.load(W_TAIL) >>> 0;
      const head = mem.load(W_HEAD) >>> 0;
      core.span(tail, head);
      this.#tail = tail;
      this.#headCache = head;
      if (!core.many) mem.store(W_PRODUCER_SLEEPING, 0); // a dead predecessor's flag
      this.#leaveAtExit = mem.atThreadExit(core.slotWord(slot, S_PID), process.pid, 0, W_DATA_SIGNAL);
    } finally {
      core.unlockAttach();
    }
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
      const w = (HEADER_BYTES + off) >>> 2;
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
    const w = (HEADER_BYTES + off) >>> 2;
    mem.storePlain(w + 1, len);
    if (FAULTS) fault('ring:after-claim');
    if (FAULTS && len >= 2) {
      mem.copyIn(HEADER_BYTES + off + RECORD_HEADER, payload, 0, len >>> 1);
      fault('ring:mid-copy');
      mem.copyIn(HEADER_BYTES + off + RECORD_HEADER + (len >>> 1), payload, len >>> 1, len - (len >>> 1));
    } else {
      mem.copyIn(HEADER_BYTES + off + RECORD_HEADER, payload, 0, len);
    }
    mem.storePlain(w, REC_MESSAGE);
    if (FAULTS) fault('ring:before-commit');
    this.#tail = (t + size) >>> 0;
    return 'ok';
  }

  /** Many producers: claim under the lock (header names our slot), copy, commit. */
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
        const pw = (HEADER_BYTES + off) >>> 2;
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
      w = (HEADER_BYTES + off) >>> 2;
      at = HEADER_BYTES + off + RECORD_HEADER;
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
      if (v === me) return true; // we took over the slot of a producer that died holding it
      if (i >= 2000) {
        const slot = (v & 0xff) - 1;
        if (slot < 0 || slot >= this.#core.slots) throw this.#core.corrupt(`claim lock value ${v}`);
        if (this.#core.slotAlive(slot, (v >>> 8) & 0xffff)) return false;
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
    const mem = this.#mem;
    const state = mem.load(W_CONSUMER_STATE);
    if (state === STATE_CLOSED) throw new IpcError('ERR_IPCKIT_PEER_GONE', `ring ${this.ring}: the receiver closed, and the ring is full`, { details: { ring: this.ring } });
    if (deep) {
      this.#core.checkIntact();
      if (state === STATE_ATTACHED && !this.#core.consumerAlive()) throw peerGone(this.ring, 'receiver');
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
      mem.store(W_PRODUCER_SLEEPING, 1);
      const seq = mem.load(W_SPACE_SIGNAL);
      r = this.#admit();
      if (this.#waiting.length === 0) return;
      this.#wait.sleep(seq);
    } catch (e) {
      const err = this.#fail(e);
      this.#waiting.rejectAll(err);
    }
  }

}

// --- The consumer side -----------------------------------------------------------------

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
  #waiters = new WaitQueue<unknown, Want>('receive');
  #wait: LoopWait;
  #leaveAtExit: () => void = () => {}; // a terminated worker's receiver must look dead (its pid cleared)
  #closed = false;
  #error: IpcError | null = null;
  #ended: IpcError | null = null;

  /** @internal Use ring.receiver(). */
  constructor(core: RingCore, options: RingEndpointOptions<CodecOption | undefined>) {
    validate.object('options', options);
    this.#codec = resolveCodec(options.codec) as Codec<T>;
    this.#spinner = new SpinBudget(spinOption(options.spinMicros));
    this.ring = core.name;
    this.#core = core;
    this.#mem = core.mem;
    this.#capacity = core.capacity;
    this.#mask = core.mask;
    this.#max = core.maxMessageSize;
    this.#many = core.many;
    this.#wait = new LoopWait(this.#mem, W_DATA_SIGNAL, SLICE_MS, (res) => {
      if (res < 0) this.#waiters.rejectAll(this.#failIfCorrupt(waitError(this.#core, res, 'receive')));
      else this.#arm(res === 2);
    });
    this.#attach();
    core.retain();
    this.#waiters.onCancel = () => {
      if (this.#waiters.length === 0) this.#wait.stop();
    };
  }

  get maxMessageSize(): number {
    return this.#max;
  }

  receive(options?: WaitOptions): Promise<T> {
    return this.#request({ kind: 'one' }, options) as Promise<T>;
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
    return this.#request({ kind: 'many', max }, options) as Promise<T[]>;
  }

  /** Every message ready now (up to `max`), possibly none. */
  tryReceiveMany(max = Infinity): T[] {
    this.#usable();
    if (max !== Infinity) validate.integer('max', max, 1);
    if (this.#waiters.length > 0) return [];
    return this.#takeMany(max);
  }

  /**
   * Zero-copy receive: the next message's bytes in the ring itself, valid until
   * `release()` (the producers cannot reuse that space before). One view at a time;
   * other receives may go on meanwhile. No codec is applied.
   */
  receiveView(options?: WaitOptions): Promise<RingView> {
    if (this.#heldAt >= 0) return Promise.reject(invalidArgument('release the previous view before asking for another'));
    return this.#request({ kind: 'view' }, options) as Promise<RingView>;
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
    return this.#receiveSync(timeoutMs, false, 1) as T;
  }

  /** Blocking batch receive: waits like receiveSync for at least one message, then returns every message ready (up to `max`). */
  receiveManySync(max = Infinity, timeoutMs?: number): T[] {
    if (max !== Infinity) validate.integer('max', max, 1);
    return this.#receiveSync(timeoutMs, true, max) as T[];
  }

  #receiveSync(timeoutMs: number | undefined, many: boolean, max: number): T | T[] {
    this.#usable();
    if (this.#waiters.length > 0) throw invalidArgument('receiveSync cannot overtake pending asynchronous receives');
    const ms = validate.timeout(timeoutMs);
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
      const budget = this.#spinner.next();
      if (budget > 0) {
        const t0 = now();
        const until = Math.min(t0 + budget / 1000, deadline ?? Infinity);
        let lastDeep = t0;
        for (;;) {
          for (let i = 0; i < 64 && this.#readPos === this.#tailCache && (mem.load(W_TAIL) >>> 0) === this.#tailCache; i++);
          const t = now();
          const deep = t - lastDeep >= SLICE_MS; // a long spin still checks the peers
          if (deep) {
            lastDeep = t;
            this.#core.checkIntact();
          }
          got = take(deep);
          if (got !== undefined) {
            this.#spinner.caught((now() - t0) * 1000);
            return got;
          }
          const e = this.#endState(deep);
          if (e) throw e;
          if (t >= until) break;
        }
        this.#spinner.missed();
      }
      let deep = false;
      for (;;) {
        if (deadline !== undefined && now() >= deadline) throw timeoutError('receive', ms!);
        mem.store(W_CONSUMER_SLEEPING, 1);
        const seq = mem.load(W_DATA_SIGNAL);
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
    const core = this.#core;
    const mem = this.#mem;
    try {
      if (!core.segment.isIntact()) return; // shrunk under us: touching it would be a SIGBUS
      const locked = core.tryLockAttach(); // as in the sender's close()
      try {
        if (mem.load(W_CONSUMER_PID) === process.pid && mem.load(W_CONSUMER_STATE) === STATE_ATTACHED) mem.store(W_CONSUMER_STATE, STATE_CLOSED);
      } finally {
        if (locked) core.unlockAttach();
      }
      core.signal(W_SPACE_SIGNAL);
    } finally {
      core.release();
    }
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

  #attach(): void {
    const core = this.#core;
    const mem = this.#mem;
    core.lockAttach();
    try {
      core.checkIntact();
      if (mem.load(W_CONSUMER_STATE) === STATE_ATTACHED && core.consumerAlive()) {
        throw new IpcError('ERR_IPCKIT_LIMIT', `ring ${core.name} takes one receiver and process ${mem.load(W_CONSUMER_PID)} is it`, { details: { ring: core.name } });
      }
      const [lo, hi] = splitStart(selfStartTime);
      mem.store(W_CONSUMER_PID, process.pid);
      mem.store(W_CONSUMER_START_LO, lo);
      mem.store(W_CONSUMER_START_HI, hi);
      mem.store(W_CONSUMER_STATE, STATE_ATTACHED);
      mem.store(W_CONSUMER_SLEEPING, 0); // a dead predecessor's flag
      const head = mem.load(W_HEAD) >>> 0;
      const tail = mem.load(W_TAIL) >>> 0;
      core.span(tail, head);
      this.#readPos = head;
      this.#tailCache = head;
      this.#published = head;
      this.#leaveAtExit = mem.atThreadExit(W_CONSUMER_PID, process.pid, 0, W_SPACE_SIGNAL);
    } finally {
      core.unlockAttach();
    }
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
      const w = (HEADER_BYTES + off) >>> 2;
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
        return HEADER_BYTES + off + RECORD_HEADER;
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
        const slot = (kind >>> 8) & 0xff;
        if (slot >= this.#core.slots) throw this.#core.corrupt(`a claim names producer slot ${slot} of ${this.#core.slots}`);
        if (!this.#claimLive(slot, kind >>> 16, deep)) {
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

  /** Is the producer that claimed a record still at it? Cheap checks always; the process check when `deep`. */
  #claimLive(slot: number, epoch: number, deep: boolean): boolean {
    const mem = this.#mem;
    const core = this.#core;
    if (mem.load(core.slotWord(slot, S_STATE)) !== STATE_ATTACHED) return false;
    if ((mem.load(core.slotWord(slot, S_EPOCH)) & 0xffff) !== epoch) return false;
    return deep ? core.slotAlive(slot, epoch) : true;
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
    const payload = this.#mem.copyOut(at, this.#msgLen);
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
        const payload = mem.copyOut(at, this.#msgLen);
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
    for (let s = 0; s < core.slots; s++) {
      if (mem.load(core.slotWord(s, S_STATE)) !== STATE_ATTACHED) continue;
      if (!deep || core.slotAlive(s)) return undefined;
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

  #request(want: Want, options: WaitOptions | undefined): Promise<unknown> {
    if (this.#closed) return Promise.reject(closedError('receiver'));
    if (this.#error) return Promise.reject(this.#error);
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
      mem.store(W_CONSUMER_SLEEPING, 1);
      const seq = mem.load(W_DATA_SIGNAL);
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

// --- A duplex link: two rings ------------------------------------------------------------

/** A Channel over two rings: messages go out on one and come in on the other. */
export class RingChannel<T> implements Channel<T> {
  constructor(
    readonly sender: RingSender<T>,
    readonly receiver: RingReceiver<T>,
  ) {}
  send(message: T, options?: WaitOptions): Promise<void> {
    return this.sender.send(message, options);
  }
  trySend(message: T): boolean {
    return this.sender.trySend(message);
  }
  receive(options?: WaitOptions): Promise<T> {
    return this.receiver.receive(options);
  }
  tryReceive(): T | undefined {
    return this.receiver.tryReceive();
  }
  async close(): Promise<void> {
    await Promise.all([this.sender.close(), this.receiver.close()]);
  }
  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return receiverIterator(this.receiver);
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Opens a duplex Channel over two existing rings: we send on `sendRing` and receive on
 * `receiveRing` (the peer opens the same two names the other way round).
 */
export function openRingChannel<C extends CodecOption | undefined = undefined>(
  sendRing: string,
  receiveRing: string,
  options: OpenRingOptions & RingEndpointOptions<C> = {},
): RingChannel<MessageOf<C>> {
  const { codec, spinMicros, ...open } = options;
  const endpoint: RingEndpointOptions<C> = {};
  if (codec !== undefined) endpoint.codec = codec;
  if (spinMicros !== undefined) endpoint.spinMicros = spinMicros;
  const out = openRing(sendRing, open);
  let sender: RingSender<MessageOf<C>>;
  try {
    sender = out.sender(endpoint);
  } finally {
    out.close();
  }
  try {
    const inn = openRing(receiveRing, open);
    try {
      return new RingChannel(sender, inn.receiver(endpoint));
    } finally {
      inn.close();
    }
  } catch (e) {
    void sender.close();
    throw e;
  }
}
