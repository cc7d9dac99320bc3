/**
 * System V message queues (msgget, msgsnd, msgrcv, msgctl; svipc(7)): kernel queues of
 * whole messages, each with a type (a positive integer), found by key or identifier, that C
 * programs, Python's sysv_ipc, PHP's sysvmsg and `ipcs` see as they are.
 *
 * - A handle is a Channel: `send(message, { type })`, `receive({ type, except })`,
 *   `for await`, `close()`, codecs, timeouts, AbortSignal. `receiveWithType` also gives the
 *   type. Selectors are the kernel's: type 0 the first message; n > 0 the first of type n
 *   (`except`: the first not of type n); n < 0 the first of the lowest type at most |n|.
 * - Waiting. A System V queue has no descriptor to poll, and msgrcv/msgsnd block the thread
 *   that calls them. Neither the event loop nor libuv's pool ever waits: a receive first
 *   tries msgrcv with IPC_NOWAIT on the loop (a waiting message costs one system call and
 *   no thread), and only when the queue has nothing for it does a thread of ours
 *   (os/blocking.ts) wait in msgrcv with a zero-sized buffer. That call takes nothing: the
 *   kernel answers E2BIG for a message that does not fit, and leaves it in the queue. The
 *   loop then takes the message with IPC_NOWAIT. So a wait that is cancelled (timeout,
 *   abort, close) never holds a message: only a zero-length message fits the probe and is
 *   taken; it is delivered to the receive that waited for it, which then settles with it
 *   even if its cancel came a moment later (the thread's report decides, see blocking.ts).
 *   Cost: one thread per selector waited on (receives of one handle with one selector wait
 *   in turn, served in the order they were made), two wake-ups per message that had to be
 *   waited for (the thread, then the loop), and one extra msgrcv.
 * - A send on a full queue waits the same way: msgsnd without IPC_NOWAIT on a thread,
 *   interrupted by a signal when cancelled (native/blocking.cc); a send settles with what
 *   happened: sent, or not sent and the cancel's error.
 * - A message longer than the receiver's maxMessageBytes stays in the queue and the receive
 *   fails with ERR_IPCKIT_FRAME_TOO_LARGE, unless `{ truncate: true }` (MSG_NOERROR).
 * - A removed queue (IPC_RMID, `ipcrm`) ends every wait and call on it with
 *   ERR_IPCKIT_CLOSED (`details.removed`): `for await` ends.
 */
import { constants as osConstants, endianness } from 'node:os';
import { endWait, RESOLVED, startWait, receiverIterator, type Channel, type WaitEnd, type WaitOptions } from '../../core/channel.js';
import { decodeWith, encodeWith, resolveCodec, type Codec, type CodecOption, type MessageOf } from '../../core/codec.js';
import { abortedError, closedError, errnoError, errnoOf, IpcError, toIpcError } from '../../core/errors.js';
import * as validate from '../../core/validate.js';
import { SpinBudget, spinOption } from '../../os/spin.js';
import { spinBeforeWait } from '../../os/turn.js';
import { SpareBuffers } from '../../core/spare-buffers.js';
import { startBlocking } from '../../os/blocking.js';
import type { SysvIpcPerm } from '../../os/ipc-perm.js';
import { native } from '../../os/native.js';
import { describeTarget, findSysv, isGone, keyHex, validateKey, validateTarget, waitForSysv, type SysvTarget } from './keys.js';
import { limitError, sysvLimits, sysvMsgmax } from './limits.js';
import { checkSysvOwner, createMode, flag, openOptions, ownerArgument, sysvPerm, type CreateModeOptions, type SysvOpenOptions } from './perm.js';

const C = native.sysvConstants;
/** Receive scratch buffers (type + kernel.msgmax, the default largest message) of closed queues, for the thread's next (see SpareBuffers). */
let spareScratchPool: SpareBuffers | undefined;
const spareScratch = (): SpareBuffers => (spareScratchPool ??= new SpareBuffers(8 + sysvMsgmax()));
const EMPTY = Buffer.alloc(0);
const EMPTY_TYPE = new Uint8Array(8);
const { EAGAIN, ENOMSG, E2BIG, EEXIST, ENOSPC, ENOMEM, EPERM, EACCES } = osConstants.errno;
const ECANCELED = 125;
const LITTLE_ENDIAN = endianness() === 'LE';
/** msgrcv puts the type (a native long) before the text. */
const TYPE_BYTES = 8;

export interface SysvMessageQueueOptions<C extends CodecOption | undefined = undefined> {
  codec?: C;
  /** Largest message this handle sends or receives, bytes (default: kernel.msgmax, read now). */
  maxMessageBytes?: number;
  /** The type `send` gives a message without `{ type }` (default 1). */
  type?: number;
  /** Remove the queue (IPC_RMID) when this handle closes (default false). */
  removeOnClose?: boolean;
  /**
   * How long a receive on an empty queue (a send on a full one) retries on the event loop
   * before a thread waits, in µs (default 20 where the process may use more than one CPU,
   * else 0). Adaptive, as the ring's: a retry that keeps missing shrinks to 1 µs.
   */
  spinMicros?: number;
}

export interface CreateSysvMessageQueueOptions<C extends CodecOption | undefined = undefined> extends CreateModeOptions, SysvMessageQueueOptions<C> {
  /** Capacity in bytes (msg_qbytes; default kernel.msgmnb; above that needs CAP_SYS_RESOURCE). */
  maxBytes?: number;
}

export interface OpenSysvMessageQueueOptions<C extends CodecOption | undefined = undefined> extends SysvOpenOptions, SysvMessageQueueOptions<C> {}

export interface SysvSendOptions extends WaitOptions {
  /** The message's type, 1 .. 2^53 - 1 (default: the handle's `type`, 1). */
  type?: number;
}

export interface SysvReceiveOptions extends WaitOptions {
  /** 0 (default): the first message; n > 0: the first of type n; n < 0: the first of the lowest type at most |n|. */
  type?: number;
  /** With type n > 0: the first message *not* of type n (MSG_EXCEPT). */
  except?: boolean;
  /** Take a message longer than maxMessageBytes cut to that length (MSG_NOERROR) instead of refusing it. */
  truncate?: boolean;
}

/** A message with its type. */
export interface SysvMessage<T> {
  type: number;
  message: T;
}

/** What `stat()` reports (IPC_STAT): the permission record and the queue's own fields. */
export interface SysvMessageQueueStat extends SysvIpcPerm {
  /** Messages in the queue now (msg_qnum). */
  messages: number;
  /** Bytes of text in the queue now (msg_cbytes). */
  bytes: number;
  /** Capacity in bytes (msg_qbytes); it also caps the number of messages. */
  maxBytes: number;
  lastSendPid: number;
  lastReceivePid: number;
  /** Last msgsnd, msgrcv and change (null: never). */
  sendTime: Date | null;
  receiveTime: Date | null;
  changeTime: Date | null;
}

const date = (seconds: number): Date | null => (seconds === 0 ? null : new Date(seconds * 1000));
const align8 = (n: number): number => (n + 7) & ~7;

/** "Nothing ready" (undefined could be a decoded message). */
const NOTHING: unique symbol = Symbol('nothing');

interface Selector {
  type: number;
  /** MSG_EXCEPT, MSG_NOERROR. */
  flags: number;
  withType: boolean;
  /** 0: one message; else a batch of 1 .. max (receiveMany). */
  max: number;
  /** Receives with the same selector wait in turn: one probe per group. */
  group: string;
}

/** How many messages one receiveMany takes at most, and the batch buffer's least size. */
const BATCH_MAX = 1024;
const BATCH_BYTES = 64 * 1024;

function selector(options: SysvReceiveOptions | undefined, withType: boolean, max = 0): Selector {
  const o = validate.object<SysvReceiveOptions>('options', options);
  const type = o.type === undefined ? 0 : validate.integer('type', o.type, -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  const except = o.except === undefined ? false : flag('except', o.except);
  if (except && type <= 0) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `except selects the first message not of type n: it needs a type n > 0, got ${type}`);
  const truncate = o.truncate === undefined ? false : flag('truncate', o.truncate);
  validate.timeout(o.timeout);
  validate.abortSignal(o.signal);
  return { type, flags: (except ? C.MSG_EXCEPT : 0) | (truncate ? C.MSG_NOERROR : 0), withType, max, group: `${type}${except ? '!' : ''}` };
}

function messageType(value: unknown): number {
  return validate.integer('type', value, 1, Number.MAX_SAFE_INTEGER);
}

/** What the receiving and the sending side of one handle share. */
class QueueCore {
  closed = false;
  removed = false;
  /** Called when the queue turns out to be removed: each side ends its waits. */
  readonly onRemoved: Array<() => void> = [];

  constructor(
    readonly id: number,
    readonly key: number,
    readonly maxMessageBytes: number,
    public msgmax: number,
  ) {}

  get what(): string {
    return this.key === 0 ? `System V message queue id ${this.id}` : `System V message queue ${keyHex(this.key)} (id ${this.id})`;
  }

  removedError(): IpcError {
    return new IpcError('ERR_IPCKIT_CLOSED', `${this.what} was removed`, { details: { removed: true, id: this.id } });
  }

  /** Why the handle cannot be used, or undefined. */
  unusable(): IpcError | undefined {
    if (this.closed) return closedError(this.what);
    if (this.removed) return this.removedError();
    return undefined;
  }

  /** The IpcError for a -errno of a call on the queue; EIDRM/EINVAL mean it was removed. */
  error(errno: number, syscall: string, doing: string): IpcError {
    if (isGone(errno)) {
      this.markRemoved();
      return this.removedError();
    }
    return errnoError(errno, syscall, `${doing} on ${this.what}`);
  }

  markRemoved(): void {
    if (this.removed) return;
    this.removed = true;
    for (const f of this.onRemoved) f();
  }
}

interface Waiter extends WaitEnd {
  resolve(value: unknown): void;
  reject(error: unknown): void;
  /** While a thread waits for it: the function that cancels that wait. */
  probe: (() => void) | undefined;
  /** A cancel that came while the thread waited: the error to settle with once it reports. */
  why: unknown;
  done: boolean;
}

/**
 * A FIFO of waits whose end may depend on a thread's report: a wait with a call in flight is
 * settled when the call reports; the others at once. Timeouts and aborts go through `cancel`.
 */
class Waits<W extends Waiter> {
  readonly items: W[] = [];
  #drained: Array<() => void> = [];

  constructor(readonly what: string) {}

  add(options: WaitOptions | undefined, make: (resolve: (v: unknown) => void, reject: (e: unknown) => void) => W, onAdded: (w: W) => void): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const w = make(resolve, reject);
      startWait(w, options, this.what, (e) => this.cancel(w, e));
      this.items.push(w);
      onAdded(w);
    });
  }

  /** Ends `w` with `error`: at once, or (a call in flight) once the call reports. */
  cancel(w: W, error: unknown): void {
    if (w.done || w.why !== undefined) return;
    if (w.probe) {
      w.why = error;
      endWait(w);
      w.probe();
    } else {
      this.reject(w, error);
    }
  }

  resolve(w: W, value: unknown): void {
    if (this.#remove(w)) w.resolve(value);
  }

  reject(w: W, error: unknown): void {
    if (this.#remove(w)) w.reject(error);
  }

  /** Cancels every wait with `error()`; resolves once no call is in flight any more. */
  stop(error: () => unknown): Promise<void> {
    for (const w of [...this.items]) this.cancel(w, error());
    return this.idle();
  }

  idle(): Promise<void> {
    if (!this.items.some((w) => w.probe)) return RESOLVED;
    return new Promise((r) => this.#drained.push(r));
  }

  /** A call reported: wake up `stop` when none is left in flight. */
  reported(): void {
    if (this.#drained.length > 0 && !this.items.some((w) => w.probe)) for (const r of this.#drained.splice(0)) r();
  }

  #remove(w: W): boolean {
    if (w.done) return false;
    w.done = true;
    endWait(w);
    const i = this.items.indexOf(w);
    if (i >= 0) this.items.splice(i, 1);
    return true;
  }
}

interface ReceiveWaiter extends Waiter {
  sel: Selector;
}

class ReceivingSide<T> {
  readonly #core: QueueCore;
  readonly #codec: Codec<T>;
  readonly #spinner: SpinBudget;
  /** msgrcv's buffer: the type, then up to maxMessageBytes bytes of text. */
  #scratch: Buffer;
  #view: DataView;
  /** receiveMany's buffer and its [length, type] pairs, made on first use. */
  #batch: Buffer | undefined;
  #meta: Float64Array | undefined;
  /**
   * Messages a batch took from the kernel but did not deliver (after one that failed to
   * decode), with the selector group that took them: the next receives of that group get
   * them first, in order.
   */
  #held: Array<{ bytes: Uint8Array; type: number }> = [];
  #heldGroup = '';
  readonly waits: Waits<ReceiveWaiter>;

  constructor(core: QueueCore, codec: Codec<T>, spinMicros: number) {
    this.#core = core;
    this.#codec = codec;
    this.#spinner = new SpinBudget(spinMicros);
    this.#scratch = spareScratch().take(TYPE_BYTES + core.maxMessageBytes);
    this.#view = new DataView(this.#scratch.buffer, this.#scratch.byteOffset, TYPE_BYTES);
    this.waits = new Waits(`receive on ${core.what}`);
    core.onRemoved.push(() => void this.waits.stop(() => core.removedError()));
  }

  receive(options: SysvReceiveOptions | undefined, withType: boolean, max = 0): Promise<unknown> {
    const sel = selector(options, withType, max);
    const bad = this.#core.unusable();
    if (bad) return Promise.reject(bad);
    if (options?.signal?.aborted) return Promise.reject(abortedError(this.waits.what, options.signal));
    if (this.waits.items.length === 0) {
      try {
        let ready = this.#take(sel);
        // Nothing yet: retry for a few µs before a thread waits (see spinMicros), under the
        // event-loop turn rules every receive's spin keeps (os/turn.ts).
        if (ready === NOTHING) spinBeforeWait(this.#spinner, () => (ready = this.#take(sel)) !== NOTHING, options);
        if (ready !== NOTHING) return Promise.resolve(ready);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return this.waits.add(
      options,
      (resolve, reject) => ({ resolve, reject, sel, timer: undefined, signal: undefined, onAbort: undefined, probe: undefined, why: undefined, done: false }),
      () => this.#schedule(),
    );
  }

  tryReceive(options: SysvReceiveOptions | undefined, withType: boolean): unknown {
    const sel = selector(options, withType);
    const bad = this.#core.unusable();
    if (bad) throw bad;
    if (this.waits.items.length > 0) return undefined;
    const ready = this.#take(sel);
    return ready === NOTHING ? undefined : ready;
  }

  /**
   * What `sel` asks for, if the queue (or #held) has it now: one message, or for a batch an
   * array of 1 .. max; NOTHING otherwise. Throws for that message (too long, undecodable)
   * or the queue.
   */
  #take(sel: Selector): unknown {
    if (sel.max > 0) return this.#takeMany(sel);
    if (this.#held.length > 0 && this.#heldGroup === sel.group) {
      const m = this.#held.shift()!;
      return this.#shape(m.bytes, m.type, sel);
    }
    const core = this.#core;
    const r = native.msgRcv(core.id, this.#scratch, core.maxMessageBytes, sel.type, sel.flags | C.IPC_NOWAIT);
    if (r === -ENOMSG) return NOTHING;
    if (r < 0) throw this.#failure(-r, sel);
    const bytes = Buffer.allocUnsafe(r);
    this.#scratch.copy(bytes, 0, TYPE_BYTES, TYPE_BYTES + r);
    return this.#shape(bytes, this.#readType(), sel);
  }

  /** A batch: held messages of this group first, then one native call for what is waiting. */
  #takeMany(sel: Selector): unknown {
    const out: unknown[] = [];
    while (out.length < sel.max && this.#held.length > 0 && this.#heldGroup === sel.group) {
      const m = this.#held[0]!;
      try {
        out.push(this.#shape(m.bytes, m.type, sel));
      } catch (e) {
        if (out.length > 0) return out; // it goes out as its own error next time
        this.#held.shift();
        throw e;
      }
      this.#held.shift();
    }
    if (out.length === sel.max || this.#held.length > 0) return out.length === 0 ? NOTHING : out;
    const core = this.#core;
    this.#batch ??= Buffer.allocUnsafeSlow(Math.max(BATCH_BYTES, 2 * (TYPE_BYTES + core.maxMessageBytes + 8)));
    this.#meta ??= new Float64Array(2 * BATCH_MAX);
    const n = native.msgRcvMany(core.id, this.#batch, core.maxMessageBytes, sel.type, sel.flags, Math.min(sel.max - out.length, BATCH_MAX), this.#meta);
    if (n < 0) {
      if (n === -ENOMSG || out.length > 0) return out.length === 0 ? NOTHING : out;
      throw this.#failure(-n, sel);
    }
    const meta = this.#meta;
    // One copy out of the reused buffer; each message is a view of that copy.
    let end = 0;
    for (let i = 0; i < n; i++) end = align8(end + TYPE_BYTES + meta[2 * i]!);
    const block = Buffer.allocUnsafe(end);
    this.#batch.copy(block, 0, 0, end);
    for (let i = 0, at = 0; i < n; i++) {
      const length = meta[2 * i]!;
      const bytes = block.subarray(at + TYPE_BYTES, at + TYPE_BYTES + length);
      try {
        out.push(this.#shape(bytes, meta[2 * i + 1]!, sel));
      } catch (e) {
        // Hold back this message (it goes out as its error) and those after it, in order.
        const held: Array<{ bytes: Uint8Array; type: number }> = [];
        for (let j = i, a = at; j < n; j++) {
          const l = meta[2 * j]!;
          held.push({ bytes: block.subarray(a + TYPE_BYTES, a + TYPE_BYTES + l), type: meta[2 * j + 1]! });
          a = align8(a + TYPE_BYTES + l);
        }
        this.#held = held;
        this.#heldGroup = sel.group;
        if (out.length > 0) return out;
        this.#held.shift();
        throw e;
      }
      at = align8(at + TYPE_BYTES + length);
    }
    return out.length === 0 ? NOTHING : out;
  }

  #failure(errno: number, sel: Selector): IpcError {
    const core = this.#core;
    if (errno === E2BIG) {
      return new IpcError('ERR_IPCKIT_FRAME_TOO_LARGE', `the next message${sel.type === 0 ? '' : ` of type selection ${sel.type}`} on ${core.what} is longer than maxMessageBytes (${core.maxMessageBytes} bytes); it stays in the queue`, {
        details: { maxMessageBytes: core.maxMessageBytes },
        remedy: { options: [{ truncate: true }, { maxMessageBytes: undefined }], when: 'to take it (truncated, or whole)' },
      });
    }
    return core.error(errno, 'msgrcv', 'receive');
  }

  /**
   * At close: messages a batch took but never delivered go back to the queue, at the end of
   * their type (best effort: a full or removed queue keeps them out).
   */
  putBack(): number {
    let lost = 0;
    for (const m of this.#held.splice(0)) if (this.#core.removed || native.msgSnd(this.#core.id, m.bytes, m.type, C.IPC_NOWAIT) !== 0) lost++;
    return lost;
  }

  /** Closed, its waits stopped (none uses the scratch now): the scratch goes back for the thread's next queue. */
  release(): void {
    spareScratch().give(this.#scratch);
    this.#scratch = EMPTY;
    this.#view = new DataView(EMPTY_TYPE.buffer);
  }

  #readType(): number {
    const v = this.#view;
    const low = v.getUint32(LITTLE_ENDIAN ? 0 : 4, LITTLE_ENDIAN);
    const high = v.getUint32(LITTLE_ENDIAN ? 4 : 0, LITTLE_ENDIAN);
    return high * 2 ** 32 + low;
  }

  #shape(bytes: Uint8Array, type: number, sel: Selector): unknown {
    if (type > Number.MAX_SAFE_INTEGER) {
      throw new IpcError('ERR_IPCKIT_BAD_FRAME', `a message on ${this.#core.what} has type ${BigInt(type)} or so, above 2^53 - 1: JavaScript numbers cannot hold it exactly (that message was taken)`, { details: { type: String(type) } });
    }
    const message = decodeWith(this.#codec, bytes);
    return sel.withType ? { type, message } : message;
  }

  /** Starts a thread's wait for the first receive of every selector that has none. */
  #schedule(): void {
    const seen = new Set<string>();
    for (const w of this.waits.items) {
      if (seen.has(w.sel.group)) continue;
      seen.add(w.sel.group);
      if (w.probe === undefined && w.why === undefined) this.#probe(w);
    }
  }

  #probe(w: ReceiveWaiter): void {
    const core = this.#core;
    try {
      w.probe = startBlocking(
        (calls) => calls.msgrcvWait(core.id, w.sel.type, w.sel.flags & C.MSG_EXCEPT),
        (result, extra) => this.#reported(w, result, extra),
      );
    } catch (e) {
      this.waits.reject(w, toIpcError(e, `wait on ${core.what}`));
    }
  }

  /** A thread's wait for `w` is over: a message is there (-E2BIG), an empty one was taken (0), or it ended. */
  #reported(w: ReceiveWaiter, result: number, type: number): void {
    w.probe = undefined;
    if (result >= 0) {
      // A zero-length message fit the probe's buffer and was taken: it is w's, cancelled or not.
      let value: unknown;
      try {
        value = this.#shape(new Uint8Array(0), type, w.sel);
        if (w.sel.max > 0) value = [value];
      } catch (e) {
        this.waits.reject(w, e);
        value = NOTHING;
      }
      if (value !== NOTHING) this.waits.resolve(w, value);
    } else if (w.why !== undefined) {
      this.waits.reject(w, w.why); // -ECANCELED, or a message is there that it no longer wants
    } else if (result !== -E2BIG) {
      this.waits.reject(w, this.#core.error(-result, 'msgrcv', 'receive'));
    }
    if (!this.#core.closed && !this.#core.removed) {
      this.#serve();
      this.#schedule();
    }
    this.waits.reported();
  }

  /** Gives waiting receives what the queue has for them, in the order they were made. */
  #serve(): void {
    const blocked = new Set<string>();
    for (const w of [...this.waits.items]) {
      if (w.done || blocked.has(w.sel.group)) continue;
      if (w.probe !== undefined || w.why !== undefined) {
        blocked.add(w.sel.group); // its thread still waits: the later ones of its group wait behind it
        continue;
      }
      let ready: unknown;
      try {
        ready = this.#take(w.sel);
      } catch (e) {
        this.waits.reject(w, e);
        if (this.#core.removed) return;
        continue;
      }
      if (ready === NOTHING) blocked.add(w.sel.group);
      else this.waits.resolve(w, ready);
    }
  }
}

interface SendJob extends Waiter {
  payload: Uint8Array;
  type: number;
}

class SendingSide<T> {
  readonly #core: QueueCore;
  readonly #codec: Codec<T>;
  readonly #defaultType: number;
  readonly #spinner: SpinBudget;
  readonly waits: Waits<SendJob>;

  constructor(core: QueueCore, codec: Codec<T>, defaultType: number, spinMicros: number) {
    this.#core = core;
    this.#codec = codec;
    this.#defaultType = defaultType;
    this.#spinner = new SpinBudget(spinMicros);
    this.waits = new Waits(`send on ${core.what}`);
    core.onRemoved.push(() => void this.waits.stop(() => core.removedError()));
  }

  /** The payload, checked against the limits (synchronously). */
  #encode(message: T): Uint8Array {
    const core = this.#core;
    const payload = encodeWith(this.#codec, message);
    // The kernel's limit first: maxMessageBytes is kernel.msgmax unless the caller chose it.
    if (payload.length > core.msgmax) {
      core.msgmax = sysvMsgmax(); // it may have been raised since the handle was made
      if (payload.length > core.msgmax) throw limitError('kernel.msgmax', core.msgmax, `message to send is ${payload.length} bytes, more than the kernel's largest System V message:`, { code: 'ERR_IPCKIT_FRAME_TOO_LARGE', details: { length: payload.length } });
    }
    if (payload.length > core.maxMessageBytes) {
      throw new IpcError('ERR_IPCKIT_FRAME_TOO_LARGE', `message to send is ${payload.length} bytes, more than maxMessageBytes (${core.maxMessageBytes})`, { details: { length: payload.length, maxMessageBytes: core.maxMessageBytes } });
    }
    return payload;
  }

  #type(options: SysvSendOptions | undefined): number {
    const o = validate.object<SysvSendOptions>('options', options);
    validate.timeout(o.timeout);
    validate.abortSignal(o.signal);
    return o.type === undefined ? this.#defaultType : messageType(o.type);
  }

  /** msgsnd with IPC_NOWAIT: 0, -EAGAIN (full), or throws what it failed with. */
  #sendNow(payload: Uint8Array, type: number): number {
    const r = native.msgSnd(this.#core.id, payload, type, C.IPC_NOWAIT);
    if (r === 0 || r === -EAGAIN) return r;
    throw this.#failure(-r, payload);
  }

  #failure(errno: number, payload: Uint8Array): IpcError {
    const core = this.#core;
    if (errno === 22 /* EINVAL */ && payload.length > (core.msgmax = sysvMsgmax())) {
      return limitError('kernel.msgmax', core.msgmax, `message to send is ${payload.length} bytes, more than the kernel's largest System V message:`, { code: 'ERR_IPCKIT_FRAME_TOO_LARGE', details: { length: payload.length } });
    }
    return core.error(errno, 'msgsnd', 'send');
  }

  send(message: T, options: SysvSendOptions | undefined): Promise<void> {
    const type = this.#type(options);
    const payload = this.#encode(message);
    const bad = this.#core.unusable();
    if (bad) return Promise.reject(bad);
    if (options?.signal?.aborted) return Promise.reject(abortedError(this.waits.what, options.signal));
    if (this.waits.items.length === 0) {
      try {
        if (this.#sendNow(payload, type) === 0) return RESOLVED;
        // Full: retry for a few µs before a thread waits for room (see spinMicros), under the
        // rules every spin keeps (os/turn.ts).
        if (spinBeforeWait(this.#spinner, () => this.#sendNow(payload, type) === 0, options)) return RESOLVED;
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return this.waits.add(
      options,
      (resolve, reject) => ({ resolve, reject, payload, type, timer: undefined, signal: undefined, onAbort: undefined, probe: undefined, why: undefined, done: false }),
      () => this.#pump(),
    ) as Promise<void>;
  }

  trySend(message: T, options: { type?: number } | undefined): boolean {
    const type = this.#type(options);
    const payload = this.#encode(message);
    const bad = this.#core.unusable();
    if (bad) throw bad;
    if (this.waits.items.length > 0) return false;
    return this.#sendNow(payload, type) === 0;
  }

  /** Sends waiting messages in order: at once while there is room, then the first on a thread. */
  #pump(): void {
    const core = this.#core;
    for (;;) {
      const job = this.waits.items[0];
      if (job === undefined || job.probe !== undefined || job.why !== undefined || core.closed || core.removed) return;
      try {
        if (this.#sendNow(job.payload, job.type) === 0) {
          this.waits.resolve(job, undefined);
          continue;
        }
        // Full: a message longer than the queue's capacity would wait forever.
        const maxBytes = native.msgStat(core.id).maxBytes;
        if (job.payload.length > maxBytes) {
          throw new IpcError('ERR_IPCKIT_FRAME_TOO_LARGE', `message to send is ${job.payload.length} bytes, more than ${core.what} holds (msg_qbytes = ${maxBytes})`, {
            details: { length: job.payload.length, maxBytes },
            remedy: { options: [{ maxBytes: job.payload.length }], when: 'on the queue (setMaxBytes)' },
          });
        }
      } catch (e) {
        const err = toIpcError(e, `send on ${core.what}`);
        if (isGone(err.errno ?? 0)) {
          core.markRemoved();
          return;
        }
        this.waits.reject(job, err);
        continue;
      }
      job.probe = startBlocking(
        (calls) => calls.msgsndWait(core.id, job.payload, job.type, 0),
        (result) => this.#reported(job, result),
      );
      return;
    }
  }

  #reported(job: SendJob, result: number): void {
    job.probe = undefined;
    if (result === 0) this.waits.resolve(job, undefined); // sent, even if a cancel came too late
    else if (result === -ECANCELED && job.why !== undefined) this.waits.reject(job, job.why);
    else this.waits.reject(job, this.#failure(-result, job.payload));
    this.waits.reported();
    this.#pump();
  }
}

/** A System V message queue: a Channel of typed messages. */
export class SysvMessageQueue<T = Uint8Array> implements Channel<T> {
  readonly #core: QueueCore;
  readonly #rx: ReceivingSide<T>;
  readonly #tx: SendingSide<T>;
  readonly #removeOnClose: boolean;
  #closing: Promise<void> | undefined;

  /** @internal */
  constructor(core: QueueCore, codec: Codec<T>, defaultType: number, removeOnClose: boolean, spinMicros: number) {
    this.#core = core;
    this.#rx = new ReceivingSide(core, codec, spinMicros);
    this.#tx = new SendingSide(core, codec, defaultType, spinMicros);
    this.#removeOnClose = removeOnClose;
  }

  /** The identifier (as ipcs shows it). */
  get id(): number {
    return this.#core.id;
  }

  /** The key it was found or made with (0: IPC_PRIVATE). */
  get key(): number {
    return this.#core.key;
  }

  get maxMessageBytes(): number {
    return this.#core.maxMessageBytes;
  }

  get closed(): boolean {
    return this.#core.closed;
  }

  /** Resolves once the message is in the queue; waits while the queue is full. */
  send(message: T, options?: SysvSendOptions): Promise<void> {
    return this.#tx.send(message, options);
  }

  /** Puts the message in the queue and returns true, or false when it is full (or sends wait). */
  trySend(message: T, options?: { type?: number }): boolean {
    return this.#tx.trySend(message, options);
  }

  /** The next message of the type selection (default: the first); waits for one. */
  receive(options?: SysvReceiveOptions): Promise<T> {
    return this.#rx.receive(options, false) as Promise<T>;
  }

  /** The next message with its type. */
  receiveWithType(options?: SysvReceiveOptions): Promise<SysvMessage<T>> {
    return this.#rx.receive(options, true) as Promise<SysvMessage<T>>;
  }

  /**
   * Waits for at least one message of the type selection, then returns every one waiting
   * now, up to `max` (one native call for the batch).
   */
  receiveMany(max = BATCH_MAX, options?: SysvReceiveOptions): Promise<T[]> {
    return this.#rx.receive(options, false, validate.batchMax('max', max, BATCH_MAX)) as Promise<T[]>;
  }

  receiveManyWithType(max = BATCH_MAX, options?: SysvReceiveOptions): Promise<Array<SysvMessage<T>>> {
    return this.#rx.receive(options, true, validate.batchMax('max', max, BATCH_MAX)) as Promise<Array<SysvMessage<T>>>;
  }

  /** The next message if one is there now (and no receive of this handle waits), else undefined. */
  tryReceive(options?: Omit<SysvReceiveOptions, 'timeout' | 'signal'>): T | undefined {
    return this.#rx.tryReceive(options, false) as T | undefined;
  }

  tryReceiveWithType(options?: Omit<SysvReceiveOptions, 'timeout' | 'signal'>): SysvMessage<T> | undefined {
    return this.#rx.tryReceive(options, true) as SysvMessage<T> | undefined;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return receiverIterator(this);
  }

  /** IPC_STAT: the permission record, the messages and bytes in the queue, its capacity, pids and times. */
  stat(): SysvMessageQueueStat {
    const s = this.#stat();
    return {
      ...sysvPerm('msg', this.#core.id, s),
      messages: s.messages,
      bytes: s.bytes,
      maxBytes: s.maxBytes,
      lastSendPid: s.lastSendPid,
      lastReceivePid: s.lastReceivePid,
      sendTime: date(s.sendTime),
      receiveTime: date(s.receiveTime),
      changeTime: date(s.changeTime),
    };
  }

  /** The permission record alone (IPC_STAT). */
  perm(): SysvIpcPerm {
    return sysvPerm('msg', this.#core.id, this.#stat());
  }

  /** IPC_SET: a new owner and/or group (the owner or creator, or root, may). */
  setOwner(owner: { uid?: number; gid?: number }): void {
    const { uid, gid } = ownerArgument(owner);
    this.#set((s) => ({ uid: uid ?? s.uid, gid: gid ?? s.gid, mode: s.mode & 0o777, maxBytes: s.maxBytes }));
  }

  /** IPC_SET: new permission bits. */
  setMode(mode: number): void {
    const m = validate.mode('mode', mode, 0o600);
    this.#set((s) => ({ uid: s.uid, gid: s.gid, mode: m, maxBytes: s.maxBytes }));
  }

  /** IPC_SET: the capacity in bytes (msg_qbytes); above kernel.msgmnb needs CAP_SYS_RESOURCE. */
  setMaxBytes(maxBytes: number): void {
    const n = validate.integer('maxBytes', maxBytes, 1, 2 ** 31 - 1);
    this.#set((s) => ({ uid: s.uid, gid: s.gid, mode: s.mode & 0o777, maxBytes: n }));
  }

  /** IPC_RMID: removes the queue (its messages go; every waiter, here and elsewhere, ends). False if it was gone already. */
  remove(): boolean {
    if (this.#core.removed) return false;
    const removed = removeQueue(this.#core.id, this.#core.what);
    this.#core.markRemoved();
    return removed;
  }

  /** Ends this handle's waits with ERR_IPCKIT_CLOSED (once their threads have let go) and releases it. Idempotent. The queue stays unless removeOnClose. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const core = this.#core;
      core.closed = true;
      await Promise.all([this.#rx.waits.stop(() => closedError(core.what)), this.#tx.waits.stop(() => closedError(core.what))]);
      this.#rx.putBack();
      this.#rx.release();
      if (this.#removeOnClose && !core.removed) removeQueue(core.id, core.what);
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #stat(): ReturnType<typeof native.msgStat> {
    const bad = this.#core.unusable();
    if (bad) throw bad;
    try {
      return native.msgStat(this.#core.id);
    } catch (e) {
      throw this.#core.error(errnoOf(e) ?? 0, 'msgctl(IPC_STAT)', 'stat');
    }
  }

  #set(change: (s: ReturnType<typeof native.msgStat>) => { uid: number; gid: number; mode: number; maxBytes: number }): void {
    const next = change(this.#stat());
    try {
      native.msgSet(this.#core.id, next.uid, next.gid, next.mode, next.maxBytes);
    } catch (e) {
      const errno = errnoOf(e) ?? 0;
      if (errno === EPERM) {
        const limits = sysvLimits();
        if (next.maxBytes > limits.msgmnb) throw limitError('kernel.msgmnb', limits.msgmnb, `maxBytes ${next.maxBytes} is above`, { errno, syscall: 'msgctl(IPC_SET)', systemCode: 'EPERM', details: { requested: next.maxBytes } });
      }
      throw this.#core.error(errno, 'msgctl(IPC_SET)', 'change');
    }
  }
}

function removeQueue(id: number, what: string): boolean {
  try {
    native.msgRemove(id);
    return true;
  } catch (e) {
    const errno = errnoOf(e);
    if (errno !== undefined && isGone(errno)) return false;
    throw toIpcError(e, `remove ${what}`);
  }
}

function handleOptions(options: SysvMessageQueueOptions<CodecOption | undefined>): { codec: Codec<any>; maxMessageBytes: number; type: number; removeOnClose: boolean; msgmax: number; spinMicros: number } {
  const msgmax = sysvMsgmax();
  return {
    spinMicros: spinOption(options.spinMicros),
    codec: resolveCodec(options.codec),
    maxMessageBytes: validate.optionalInteger('maxMessageBytes', options.maxMessageBytes, 0, 2 ** 31 - 1 - TYPE_BYTES) ?? msgmax,
    type: options.type === undefined ? 1 : messageType(options.type),
    removeOnClose: options.removeOnClose === undefined ? false : flag('removeOnClose', options.removeOnClose),
    msgmax,
  };
}

/**
 * Creates a queue exclusively (IPC_CREAT | IPC_EXCL: an existing key is ERR_IPCKIT_EXISTS)
 * with exactly `mode` (default 0o600) and `maxBytes` (default kernel.msgmnb). `key` may be
 * IPC_PRIVATE (0): then only its identifier (`.id`) finds it. Never waits.
 */
export function createSysvMessageQueue<C extends CodecOption | undefined = undefined>(key: number, options: CreateSysvMessageQueueOptions<C> = {}): SysvMessageQueue<MessageOf<C>> {
  const k = validateKey('key', key);
  const o = validate.object<CreateSysvMessageQueueOptions<C>>('options', options);
  const { mode, group } = createMode(o);
  const maxBytes = validate.optionalInteger('maxBytes', o.maxBytes, 1, 2 ** 31 - 1);
  const h = handleOptions(o);
  const what = describeTarget('msg', { key: k });
  let id: number;
  try {
    id = native.msgGet(k, C.IPC_CREAT | C.IPC_EXCL | mode);
  } catch (e) {
    const errno = errnoOf(e);
    if (errno === EEXIST) throw new IpcError('ERR_IPCKIT_EXISTS', `${what} already exists (open it with openSysvMessageQueue, or remove it first)`, { errno, syscall: 'msgget', systemCode: 'EEXIST' });
    if (errno === ENOSPC) {
      const limits = sysvLimits();
      throw limitError('kernel.msgmni', limits.msgmni, `cannot create ${what}: this IPC namespace has`, { errno, syscall: 'msgget', systemCode: 'ENOSPC' });
    }
    if (errno === ENOMEM) throw new IpcError('ERR_IPCKIT_LIMIT', `not enough kernel memory for ${what}`, { errno, syscall: 'msgget', systemCode: 'ENOMEM', details: { limit: 'memory' } });
    throw toIpcError(e, `create ${what}`);
  }
  const core = new QueueCore(id, k, h.maxMessageBytes, h.msgmax);
  const queue = new SysvMessageQueue(core, h.codec, h.type, h.removeOnClose, h.spinMicros);
  try {
    if (group !== undefined) queue.setOwner({ gid: group });
    if (maxBytes !== undefined) queue.setMaxBytes(maxBytes);
  } catch (e) {
    removeQueue(id, what);
    throw e;
  }
  return queue as SysvMessageQueue<MessageOf<C>>;
}

function openChecked(target: { key: number } | { id: number }, o: SysvOpenOptions, h: ReturnType<typeof handleOptions>, id: number): SysvMessageQueue<any> {
  const what = describeTarget('msg', target);
  let s: ReturnType<typeof native.msgStat>;
  try {
    s = native.msgStat(id);
  } catch (e) {
    const errno = errnoOf(e);
    if (errno !== undefined && isGone(errno)) throw new IpcError('ERR_IPCKIT_NOT_FOUND', `${what} was removed as we opened it`, { errno, syscall: 'msgctl(IPC_STAT)' });
    if (errno === EACCES) throw new IpcError('ERR_IPCKIT_PERMISSION', `${what} (id ${id}) does not let uid ${process.geteuid?.()} read it`, { errno, syscall: 'msgctl(IPC_STAT)', systemCode: 'EACCES' });
    throw toIpcError(e, `open ${what}`);
  }
  checkSysvOwner(s, `${what} (id ${id})`, o);
  return new SysvMessageQueue(new QueueCore(id, s.key, h.maxMessageBytes, h.msgmax), h.codec, h.type, h.removeOnClose, h.spinMicros);
}

function checkOpen(target: unknown, options: unknown): { t: { key: number } | { id: number }; o: SysvOpenOptions; h: ReturnType<typeof handleOptions> } {
  const t = validateTarget(target);
  const raw = validate.object<OpenSysvMessageQueueOptions<CodecOption | undefined>>('options', options);
  return { t, o: openOptions(raw), h: handleOptions(raw) };
}

const get = (key: number): number => native.msgGet(key, 0);
const stat = (id: number): unknown => native.msgStat(id);

/**
 * Opens an existing queue by key or `{ id }`, after checking it (IPC_STAT): its owner and
 * creator must be us (or `owner`) and its mode within `mode` (default 0o600), else
 * ERR_IPCKIT_PERMISSION, unless `{ anyOwner: true }`. `{ wait: true }` waits for the key to
 * appear (with timeout and signal); otherwise a missing one is ERR_IPCKIT_NOT_FOUND.
 */
export function openSysvMessageQueue<C extends CodecOption | undefined = undefined>(target: SysvTarget, options: OpenSysvMessageQueueOptions<C> = {}): Promise<SysvMessageQueue<MessageOf<C>>> {
  const { t, o, h } = checkOpen(target, options);
  if (o.wait) return waitForSysv('msg', t, get, stat, o).then((id) => openChecked(t, o, h, id));
  try {
    return Promise.resolve(openChecked(t, o, h, findSysv('msg', t, get, stat)));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** openSysvMessageQueue for scripts and workers: the same checks, no waiting for the key. */
export function openSysvMessageQueueSync<C extends CodecOption | undefined = undefined>(target: SysvTarget, options: Omit<OpenSysvMessageQueueOptions<C>, 'wait' | 'timeout' | 'signal'> = {}): SysvMessageQueue<MessageOf<C>> {
  const { t, o, h } = checkOpen(target, options);
  if (o.wait) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', 'openSysvMessageQueueSync cannot wait for the key: use openSysvMessageQueue');
  return openChecked(t, o, h, findSysv('msg', t, get, stat));
}

/**
 * Removes the queue a key or `{ id }` names (IPC_RMID): false if there is none. The kernel
 * lets its owner, its creator or root do it, whoever made it: remove only what is yours.
 */
export function removeSysvMessageQueue(target: SysvTarget): boolean {
  const t = validateTarget(target);
  let id: number;
  try {
    id = findSysv('msg', t, get, stat);
  } catch (e) {
    if (e instanceof IpcError && e.code === 'ERR_IPCKIT_NOT_FOUND') return false;
    throw e;
  }
  return removeQueue(id, describeTarget('msg', t));
}
