/**
 * The ring channel: a bounded ring of variable-length messages in one shared memory
 * segment, the fastest channel JavaScript can have between two processes.
 *
 * `createRing(name, { capacityBytes })` / `await openRing(name)` give a `Ring`;
 * `await ring.sender()` is the producer side (a Sender), `await ring.receiver()` the
 * consumer side (a Receiver); `…Sync` forms for workers and scripts. One producer by
 * default; `{ producers: 'many' }` lets several threads or processes send, with a
 * claim/commit protocol. A duplex link is two rings (`openRingChannel`, channel.ts).
 *
 * The layout is written down in docs/ring.md so that a C peer can implement it: the
 * common header of every ipckit object (src/memory/header.ts), the cursors on separate
 * cache lines, the participant table (row 0 the consumer, rows 1..P the producers), then
 * the data region (layout.ts). The files: layout.ts, core.ts (what both endpoints
 * share), sender.ts, receiver.ts, channel.ts.
 *
 * Rules that keep it safe with an untrusted or crashing peer:
 * - Every cursor, length and commit word read from the segment is copied once into a
 *   local, bounds-checked, and only the local is used; a violation is ERR_IPCKIT_CORRUPT
 *   (the endpoint then stays failed). No loop runs longer than the bytes it has to read.
 * - A message is visible only once committed. A claim whose producer died becomes
 *   padding: never a torn message.
 * - Waiting spins briefly, then sleeps on a futex. A sleeper raises a flag; the other side
 *   makes the wake-up system call only when it sees the flag (and clears it), so a busy
 *   channel makes no system call at all. Sleeps are bounded (50 ms slices): at each end
 *   the peer's liveness (its thread and start time) and the segment's size are checked,
 *   so a wait on a dead peer ends with ERR_IPCKIT_PEER_GONE, and a lost wake-up costs at
 *   most one slice.
 */
import { resolveCodec, type CodecOption, type MessageOf } from '../../core/codec.js';
import { closedError, invalidArgument } from '../../core/errors.js';
import * as validate from '../../core/validate.js';
import type { LockWait } from '../../memory/attach-lock.js';
import { creatorOf } from '../../memory/header.js';
import { adopt, createObject, openObject, openObjectSync, planOpen, unlinkObject, DEFAULT_OPEN_TIMEOUT, type CreateObjectOptions, type OpenObjectOptions, unlinkOnCloseOption } from '../../memory/object.js';
import { CLOSED, ROW_BYTES } from '../../memory/participants.js';
import { RingCore, ringSpinOption } from './core.js';
import { CONSUMER_ROW, DATA_OFFSET, MAX_CAPACITY, MAX_PRODUCERS, MIN_CAPACITY, RECORD_HEADER, TABLE_OFFSET, VERSION, W_HEAD, W_PRODUCERS_EVER, W_TAIL, writeGeometry } from './layout.js';
import { claimConsumer, RingReceiver } from './receiver.js';
import { claimProducer, maxPendingOption, RingSender, type Claim, type RingEndpointOptions } from './sender.js';

export { RingSender, type RingEndpointOptions } from './sender.js';
export { RingReceiver, type RingView } from './receiver.js';

export interface CreateRingOptions extends CreateObjectOptions {
  /** Bytes of the data region: a power of two from 4 KiB to 1 GiB (default 1 MiB). */
  capacityBytes?: number;
  /** Largest message (default capacityBytes / 2; at most capacityBytes - 8). */
  maxMessageBytes?: number;
  /** 'one' (default): one producer at a time; 'many': several, with claim/commit. */
  producers?: 'one' | 'many';
  /** Producer slots for 'many' (default 16, at most 64). */
  maxProducers?: number;
}

export type OpenRingOptions = OpenObjectOptions;

export interface RingInfo {
  name: string;
  capacityBytes: number;
  maxMessageBytes: number;
  producers: 'one' | 'many';
  maxProducers: number;
  persistent: boolean;
  creator: { pid: number; alive: boolean };
  /** Bytes between the consumer's and the producers' cursors (messages, padding and claims). */
  used: number;
  head: number;
  tail: number;
  consumer: { pid: number; state: 'none' | 'attached' | 'closed'; alive: boolean };
  producerSlots: Array<{ slot: number; pid: number; state: 'free' | 'attached' | 'closed'; alive: boolean }>;
  producersEver: number;
}

/** The endpoint options, checked at once: the wait for the attach lock. */
function endpointPlan(options: unknown): LockWait {
  const o = validate.object<RingEndpointOptions<CodecOption | undefined>>('options', options);
  resolveCodec(o.codec);
  ringSpinOption(o.spinMicros);
  maxPendingOption(o.maxPendingBytes);
  const ms = validate.timeout(o.timeout) ?? DEFAULT_OPEN_TIMEOUT;
  const signal = validate.abortSignal(o.signal);
  return { deadline: performance.now() + ms, signal };
}

type Endpoint = RingSender<unknown> | RingReceiver<unknown>;

/** What attaching as a producer or as the consumer takes (under the attach lock) and makes. */
interface Role {
  claim(core: RingCore): Claim;
  make(core: RingCore, options: RingEndpointOptions<CodecOption | undefined>, claim: Claim): Endpoint;
}
const PRODUCER: Role = { claim: claimProducer, make: (core, options, claim) => new RingSender(core, options, claim) };
const CONSUMER: Role = { claim: claimConsumer, make: (core, options, claim) => new RingReceiver(core, options, claim) };

/** The endpoint over a claimed row; a failure gives the row back. */
function endpoint(core: RingCore, claim: Claim, make: () => Endpoint): Endpoint {
  try {
    return make();
  } catch (e) {
    core.table.leave(claim.row, claim.epoch, CLOSED);
    throw e;
  }
}

/** A ring segment, opened or created; `sender()` and `receiver()` attach to it. */
export class Ring {
  readonly name: string;
  #core: RingCore;
  #closed = false;
  readonly #unlinkOnClose: boolean;

  /** @internal */
  constructor(core: RingCore, unlinkOnClose = false) {
    this.#core = core;
    this.name = core.name;
    this.#unlinkOnClose = unlinkOnClose;
  }

  /** Bytes of the data region. */
  get capacityBytes(): number {
    return this.#core.capacity;
  }
  get maxMessageBytes(): number {
    return this.#core.maxMessageBytes;
  }
  get producers(): 'one' | 'many' {
    return this.#core.many ? 'many' : 'one';
  }
  /** Made to outlive its creator (`{ persistent: true }` at create). */
  get persistent(): boolean {
    return this.#core.persistent;
  }
  /** Whether its bytes are reached through a SharedArrayBuffer (true) or the copying path. */
  get external(): boolean {
    return this.#core.mem.external;
  }

  /**
   * Attaches as a producer: takes a producer slot under the attach lock, waiting for the
   * lock on the event loop (ERR_IPCKIT_TIMEOUT after `timeout`, default 2 s, if a live
   * holder keeps it). ERR_IPCKIT_LIMIT if every producer slot is held by a live thread.
   */
  sender<C extends CodecOption | undefined = undefined>(options: RingEndpointOptions<C> = {}): Promise<RingSender<MessageOf<C>>> {
    return this.#attach(PRODUCER, options) as Promise<RingSender<MessageOf<C>>>;
  }

  /** sender() for workers and scripts: the wait for the attach lock blocks this thread. */
  senderSync<C extends CodecOption | undefined = undefined>(options: RingEndpointOptions<C> = {}): RingSender<MessageOf<C>> {
    return this.#attachSync(PRODUCER, options) as RingSender<MessageOf<C>>;
  }

  /** Attaches as the consumer (ERR_IPCKIT_LIMIT if a live thread already is it); waits for the attach lock as sender() does. */
  receiver<C extends CodecOption | undefined = undefined>(options: RingEndpointOptions<C> = {}): Promise<RingReceiver<MessageOf<C>>> {
    return this.#attach(CONSUMER, options) as Promise<RingReceiver<MessageOf<C>>>;
  }

  /** receiver() for workers and scripts. */
  receiverSync<C extends CodecOption | undefined = undefined>(options: RingEndpointOptions<C> = {}): RingReceiver<MessageOf<C>> {
    return this.#attachSync(CONSUMER, options) as RingReceiver<MessageOf<C>>;
  }

  /** Claims a row under the attach lock (the core kept mapped meanwhile), then makes the endpoint. Options are checked at once. */
  #attach(role: Role, options: RingEndpointOptions<CodecOption | undefined>): Promise<Endpoint> {
    const wait = endpointPlan(options);
    this.#check();
    const core = this.#core;
    core.retain();
    return core.lock
      .with(wait, () => role.claim(core))
      .then((claim) => endpoint(core, claim, () => role.make(core, options, claim)))
      .finally(() => core.release());
  }

  #attachSync(role: Role, options: RingEndpointOptions<CodecOption | undefined>): Endpoint {
    const wait = endpointPlan(options);
    this.#check();
    const core = this.#core;
    const claim = core.lock.withSync(wait, () => role.claim(core));
    return endpoint(core, claim, () => role.make(core, options, claim));
  }

  info(): RingInfo {
    this.#check();
    const core = this.#core;
    core.checkIntact();
    const mem = core.mem;
    const head = mem.load(W_HEAD) >>> 0;
    const tail = mem.load(W_TAIL) >>> 0;
    const consumer = core.table.info(CONSUMER_ROW);
    const slots: RingInfo['producerSlots'] = [];
    for (let row = 1; row <= core.producers; row++) {
      const p = core.table.info(row);
      slots.push({ slot: row - 1, pid: p.pid, state: p.state, alive: p.alive });
    }
    const creator = creatorOf(mem);
    return {
      name: core.name,
      capacityBytes: core.capacity,
      maxMessageBytes: core.maxMessageBytes,
      producers: core.many ? 'many' : 'one',
      maxProducers: core.producers,
      persistent: core.persistent,
      creator: { pid: creator.pid, alive: creator.alive },
      used: (tail - head) >>> 0,
      head,
      tail,
      consumer: { pid: consumer.pid, state: consumer.state === 'free' ? 'none' : consumer.state, alive: consumer.alive },
      producerSlots: slots,
      producersEver: mem.load(W_PRODUCERS_EVER) >>> 0,
    };
  }

  /** Releases this handle; the mapping goes when its sender and receiver are closed too. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      if (this.#unlinkOnClose) this.#core.segment.unlinkIfStillNamed(`ring ${this.name}`);
    } finally {
      this.#core.release();
    }
  }

  /** Removes the ring's name (attached endpoints keep working). False if it was gone. */
  unlink(): boolean {
    return unlinkRing(this.name);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #check(): void {
    if (this.#closed) throw closedError(`ring ${this.name}`);
  }
}

/** Creates a ring exclusively (mode 0600 unless asked) and initializes it. Never waits. */
export function createRing(name: string, options: CreateRingOptions = {}): Ring {
  const n = validate.posixName(name);
  validate.object('options', options);
  const capacity = validate.integer('capacityBytes', options.capacityBytes ?? 1024 * 1024, MIN_CAPACITY, MAX_CAPACITY);
  if ((capacity & (capacity - 1)) !== 0) throw invalidArgument(`capacityBytes must be a power of two, got ${capacity}`);
  const maxMessage = validate.integer('maxMessageBytes', options.maxMessageBytes ?? capacity / 2, 1, capacity - RECORD_HEADER);
  const producers = options.producers === undefined ? 'one' : validate.oneOf('producers', options.producers, ['one', 'many'] as const);
  const slots = producers === 'one' ? 1 : validate.integer('maxProducers', options.maxProducers ?? 16, 1, MAX_PRODUCERS);
  if (TABLE_OFFSET + (1 + slots) * ROW_BYTES > DATA_OFFSET) throw invalidArgument('too many producers for the header');
  const unlinkOnClose = unlinkOnCloseOption(options.unlinkOnClose);
  const segment = createObject(n, { kind: 'ring', version: VERSION, size: DATA_OFFSET + capacity, tableOffset: TABLE_OFFSET, tableRows: 1 + slots }, options, (seg) =>
    writeGeometry(seg.mem, { capacity, maxMessageBytes: maxMessage, many: producers === 'many', producers: slots }),
  );
  return adopt(segment, () => new Ring(new RingCore(n, segment), unlinkOnClose));
}

/**
 * Opens an existing ring after checking its owner, mode and layout. Waits (on the event
 * loop, up to `timeout`, default 2 s) for a creator that is still making it.
 */
export function openRing(name: string, options: OpenRingOptions = {}): Promise<Ring> {
  const n = validate.posixName(name);
  const plan = planOpen(validate.object('options', options));
  return openObject(n, 'ring', VERSION, plan).then((segment) => adopt(segment, () => new Ring(new RingCore(n, segment), plan.unlinkOnClose)));
}

/** openRing for workers and scripts: the wait for a creator blocks this thread. */
export function openRingSync(name: string, options: OpenRingOptions = {}): Ring {
  const n = validate.posixName(name);
  const plan = planOpen(validate.object('options', options));
  return adopt(openObjectSync(n, 'ring', VERSION, plan), (segment) => new Ring(new RingCore(n, segment), plan.unlinkOnClose));
}

/** Removes a ring's name, after checking that it is a ring (ERR_IPCKIT_WRONG_KIND otherwise). False if it was gone. */
export function unlinkRing(name: string): boolean {
  return unlinkObject(validate.posixName(name), 'ring');
}
