/**
 * Message channels over a non-blocking byte-stream fd (a pipe end, a FIFO, a stream
 * socket): `FdReader` is a Receiver, `FdWriter` a Sender. Every mechanism that carries
 * bytes builds on these two, so framing, backpressure, timeouts and the end-of-stream
 * rules of channel.ts are implemented once.
 *
 * Reading: nothing is read until someone waits for a message (data stays in the kernel:
 * that is the backpressure); then the fd is read in large chunks and every complete frame
 * in a chunk is queued. Waiting uses FdPoll (the event loop), never a thread.
 *
 * Writing: small frames are copied into a batch buffer. The first message of a turn of the
 * event loop is written at once (a request/response peer can start on it); the ones that
 * follow in the same turn go out together in one write() at the end of the turn (or as
 * soon as 64 KiB are waiting), which is how a JavaScript sender reaches millions of
 * messages a second. Large payloads are not copied: they are written from the caller's
 * buffer and their `send` resolves once the kernel has them.
 */
import { constants as osConstants } from 'node:os';
import { batchError } from '../core/batch.js';
import { bufferTooSmall, cancellableWait, checkReceiveTarget, DEFAULT_MAX_PENDING_BYTES, pendingLimitError, RESOLVED, WaitQueue, receiverIterator, type Receiver, type ReceiverInto, type Sender, type WaitOptions } from '../core/channel.js';
import { decodeWith, encodeWith, resolveCodec, type Codec, type CodecOption, type MessageOf } from '../core/codec.js';
import { closedError, errnoError, invalidArgument, IpcError, isIpcError, timeoutError, toIpcError } from '../core/errors.js';
import { checkOutgoing, FrameDecoder, LENGTH_HEADER_BYTES, resolveFraming, type Framing, type FramingOptions } from '../core/framing.js';
import { SpinBudget, spinOption } from './spin.js';
import { native, type FdWatcher } from './native.js';
import { batchDone, batchScheduled, skipsReadBeforeWait, spinBeforeWait, type WriteBatchNow } from './turn.js';
import { slotFor, SlotSet, type Slot } from '../core/slot-set.js';
import * as validate from '../core/validate.js';

const EAGAIN = osConstants.errno.EAGAIN;
const READABLE = 1;
const WRITABLE = 2;

/**
 * Closes the fd of an FdPoll that owned it, never made a watcher and was collected without
 * close() (a watcher, once made, owns the fd and does this itself).
 */
const unclosedFds = new FinalizationRegistry<number>((fd) => {
  native.disownFd(fd);
  closeQuietly(fd);
});

/**
 * Such FdPolls made since the event loop last turned: they go into `unclosedFds` when it
 * turns, if they are still open without a watcher by then. Registering each one at once cost
 * a WeakCell that V8 puts in its old space, garbage that only a full collection frees: a
 * program that opens and closes pipes without yielding held it all (100,000 pipes: RSS +15
 * and +23 MB with the registration, -1 and +3.5 MB without; scripts/leak-cycles.ts, runs
 * interleaved). Most short-lived endpoints close before the loop turns and never register.
 * A SlotSet, not a Set: see slot-set.ts.
 */
const toRegister = new SlotSet<FdPoll>();
let registering = false;

function registerWhenLoopTurns(poll: Slot<FdPoll>): void {
  toRegister.add(poll);
  if (registering) return;
  registering = true;
  setImmediate(() => {
    registering = false;
    for (const p of toRegister.take()) unclosedFds.register(p, p.fd, p);
  }).unref();
}

/** The poll no longer needs `unclosedFds` (it closed, or its watcher owns the fd now). */
function forget(poll: Slot<FdPoll>): void {
  if (!toRegister.delete(poll)) unclosedFds.unregister(poll.value);
}

/** close(2) of an fd we own, errors ignored (Linux releases the number even then), as a watcher's close does. */
function closeQuietly(fd: number): void {
  try {
    native.close(fd);
  } catch {
    /* nothing to do: the descriptor is released */
  }
}

/**
 * One event-loop watcher per fd, shared by the reading and the writing side of a socket.
 * A side that has nobody waiting can go `idle`: the fd stays in epoll (so the next wait
 * costs no epoll_ctl) but no longer keeps the event loop alive; its callback still gets
 * the next event and then usually calls `unwant`.
 *
 * The native watcher is made at the first `want`, not before: most short-lived pipes and
 * connections find their data already there and never wait, and a native object per
 * handle is freed only when the event loop turns (Node runs Node-API finalizers from the
 * loop), so a program that opens and closes many of them in one go would hold them all.
 * Until then an fd we own is in this thread's set of owned fds (native ownFd: closed if
 * the thread ends first) and, from the next turn of the loop, in `unclosedFds` (closed if
 * this object is collected first).
 */
export class FdPoll {
  #watcher: FdWatcher | null = null;
  #closed = false;
  readonly #ownsFd: boolean;
  #mask = 0;
  #idle = 0;
  #refd = true;
  #onReadable: (() => void) | undefined;
  #onWritable: (() => void) | undefined;
  /** Its place in `toRegister`, if it owns its fd (only those are registered). */
  readonly #registration: Slot<FdPoll> | null = null;

  /**
   * `ownsFd`: the fd is this poll's to close: close() closes it, and so does the end of a
   * worker whose code never did (no descriptor outlives the thread that used it).
   */
  constructor(
    readonly fd: number,
    ownsFd = false,
  ) {
    native.probePollable(fd); // refuse an fd epoll cannot watch now, not at the first wait
    this.#ownsFd = ownsFd;
    if (ownsFd) {
      native.ownFd(fd);
      this.#registration = slotFor<FdPoll>(this);
      registerWhenLoopTurns(this.#registration);
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The native watcher, made now if this is the first wait (it takes over owning the fd). */
  #watch(): FdWatcher {
    if (this.#watcher) return this.#watcher;
    const watcher = new native.FdWatcher(this.fd, (status, events) => this.#event(status, events), this.#ownsFd);
    if (this.#ownsFd) {
      forget(this.#registration!);
      native.disownFd(this.fd);
    }
    if (!this.#refd) watcher.setLoopRef(false);
    this.#watcher = watcher;
    return watcher;
  }

  want(kind: 'read' | 'write', callback: () => void): void {
    if (this.#closed) return;
    const bit = kind === 'read' ? READABLE : WRITABLE;
    if (kind === 'read') this.#onReadable = callback;
    else this.#onWritable = callback;
    this.#idle &= ~bit;
    const mask = this.#mask | bit;
    if (mask !== this.#mask) {
      this.#mask = mask;
      this.#watch().start(mask);
    }
    this.#updateRef();
  }

  unwant(kind: 'read' | 'write'): void {
    if (this.#closed || !this.#watcher) return;
    const bit = kind === 'read' ? READABLE : WRITABLE;
    this.#idle &= ~bit;
    const mask = this.#mask & ~bit;
    if (mask !== this.#mask) {
      this.#mask = mask;
      if (mask === 0) this.#watcher.stop();
      else this.#watcher.start(mask);
    }
    this.#updateRef();
  }

  /** Keeps watching `kind` without keeping the event loop alive (see the class comment). */
  idle(kind: 'read' | 'write'): void {
    const bit = kind === 'read' ? READABLE : WRITABLE;
    if (!this.#watcher || !(this.#mask & bit)) return;
    this.#idle |= bit;
    this.#updateRef();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#watcher) this.#watcher.close(); // and the fd, if we own it
    else if (this.#ownsFd) {
      forget(this.#registration!);
      native.disownFd(this.fd);
      closeQuietly(this.fd);
    }
    this.#watcher = null;
    this.#mask = 0;
    this.#idle = 0;
  }

  #updateRef(): void {
    const refd = this.#mask === 0 || (this.#mask & ~this.#idle) !== 0;
    if (refd !== this.#refd && this.#watcher) {
      this.#refd = refd;
      this.#watcher.setLoopRef(refd);
    }
  }

  #event(status: number, events: number): void {
    if (status < 0) {
      // libuv stopped the watcher (POLLERR): let both sides try their syscall, which
      // reports the real error (EPIPE, ECONNRESET), and re-arm if they still wait.
      const mask = this.#mask;
      this.#mask = 0;
      this.#idle = 0;
      this.#updateRef();
      if (mask & READABLE) this.#onReadable?.();
      if (mask & WRITABLE) this.#onWritable?.();
      return;
    }
    if (events & READABLE && this.#mask & READABLE) this.#onReadable?.();
    if (events & WRITABLE && this.#mask & WRITABLE) this.#onWritable?.();
  }
}

export interface StreamOptions<C extends CodecOption | undefined = undefined> extends FramingOptions {
  codec?: C;
}

export interface ReaderOptions<C extends CodecOption | undefined = undefined> extends StreamOptions<C> {
  /**
   * Largest read() in bytes (default 1 MiB). The buffer starts at 64 KiB (or this, if
   * smaller) and doubles while reads fill it, so a quiet reader holds little and a busy
   * one drains the kernel in few calls.
   */
  readBufferBytes?: number;
  /**
   * How long a receive that finds nothing retries the read on the event loop before it
   * waits for the poll, in µs (default 20 where the process may use more than one CPU, else
   * 0). Adaptive, as the ring's: a peer that answers within it saves a cross-CPU wake-up;
   * retries that keep missing shrink to 1 µs. Never longer than the receive's timeout.
   */
  spinMicros?: number;
}

export interface WriterOptions<C extends CodecOption | undefined = undefined> extends StreamOptions<C> {
  /** Bytes accepted but not yet written beyond which `send` waits (default 256 KiB). */
  highWaterMark?: number;
  /**
   * Bytes of sends waiting for room (beyond highWaterMark) that the writer holds at most
   * (default 64 MiB): past it, `send` rejects with ERR_IPCKIT_LIMIT instead of holding
   * memory for callers that do not await their sends.
   */
  maxPendingBytes?: number;
  /**
   * Keep every write() at most PIPE_BUF (4096) bytes of whole frames, so that several
   * processes can write to one pipe or FIFO without interleaving. Messages must then fit
   * in PIPE_BUF with their header.
   */
  atomic?: boolean;
}

/**
 * Checks reader and writer options the way the constructors will, so that a mechanism can
 * refuse bad options before it does anything (creates a pipe, starts a child, waits for a
 * FIFO's reader).
 */
export function validateStreamOptions(options: ReaderOptions<CodecOption | undefined> & WriterOptions<CodecOption | undefined>, name = 'options'): void {
  validate.object(name, options);
  resolveFraming(options);
  resolveCodec(options.codec);
  validate.optionalInteger('readBufferBytes', options.readBufferBytes, 64, 64 * 1024 * 1024);
  spinOption(options.spinMicros);
  validate.optionalInteger('highWaterMark', options.highWaterMark, 1);
  validate.optionalInteger('maxPendingBytes', options.maxPendingBytes, 0);
  validate.optionalBoolean('atomic', options.atomic);
}

/** The constructors' common checks: a descriptor number, options, hooks and a shared poll. */
function checkEndpointArguments(fd: unknown, options: unknown, hooks: unknown, poll: unknown): void {
  validate.integer('fd', fd, 0, 2 ** 31 - 1);
  validate.object('options', options);
  validate.object('hooks', hooks);
  if (poll !== undefined && !(poll instanceof FdPoll)) throw invalidArgument(`poll must be an FdPoll, got ${validate.describe(poll)}`);
}

/** Hooks a mechanism gives the generic reader/writer. */
export interface StreamHooks {
  /** What the end of stream means when it came inside a frame (popen: the child's exit). */
  truncatedEnd?(error: IpcError): IpcError | Promise<IpcError>;
  /**
   * A read of 0 bytes before any sign of a writer (a poll event, data, or EAGAIN) is not
   * an end: a FIFO opened before its first writer reads 0 until one arrives.
   */
  zeroReadNeedsPoll?: boolean;
  /** Called once when the fd has been released. */
  onRelease?(): void;
  /** Wraps errors from the peer side (e.g. to add a child's exit status). */
  peerError?(error: IpcError): IpcError | Promise<IpcError>;
  /** Reads in place of read(2), same contract (bytes, 0 at the end, -errno): e.g. recvmsg to collect passed descriptors. */
  read?(fd: number, buf: Uint8Array, offset: number, length: number): number;
}

type ReaderState = 'open' | 'ending' | 'ended' | 'closed';

/** The read buffer starts at FIRST_READ bytes and grows up to MAX_READ (readBufferBytes). */
const FIRST_READ = 64 * 1024;
const MAX_READ = 1024 * 1024;

/** `R` is what `close()` resolves with (subclasses such as popen's return an exit status). */
export class FdReader<T, R = void> implements Receiver<T>, ReceiverInto {
  readonly fd: number;
  #poll: FdPoll | null;
  #ownsPoll: boolean;
  #decoder: FrameDecoder;
  #codec: Codec<T>;
  #hooks: StreamHooks;
  #queue: Buffer[] = [];
  #qHead = 0;
  /** Pending receives; a receiveInto's carries its buffer (a plain receive's carries nothing). */
  #waiters = new WaitQueue<T | number, Uint8Array | undefined>('receive', undefined, () => {
    // A receiveInto that stopped waiting gets its buffer back at once (it is theirs again).
    const lent = this.#decoder.borrowed;
    if (lent !== null && this.#waiters.peek() !== lent) this.#decoder.returnBorrowed();
    if (this.#waiters.length === 0) this.#idlePolling();
  });
  /** While a receiveInto is being served: its buffer, where the next message goes (#drainDecoder). */
  #into: Uint8Array | null = null;
  /** The length of the message #drainDecoder placed in #into, or -1. */
  #intoLength = -1;
  /** Whether that receiveInto may lend its buffer for a large frame to be read into (not tryReceiveInto). */
  #intoBorrows = true;
  #state: ReaderState = 'open';
  #endError: IpcError | null = null;
  #maxRead: number;
  #spinner: SpinBudget;
  #polling = false;
  /** The last read found nothing: wait for the poll instead of trying another read. */
  #drained = false;
  /** A writer has been there (zeroReadNeedsPoll: only then is a read of 0 the end). */
  #writerSeen = false;
  #onReadable = (): void => {
    this.#writerSeen = true;
    this.#drained = false;
    // Woken while idle (nobody waits): leave the data in the kernel, that is the backpressure.
    if (this.#waiters.length === 0) this.#stopPolling();
    else this.#pump();
  };

  constructor(fd: number, options: ReaderOptions<CodecOption | undefined> = {}, hooks: StreamHooks = {}, poll?: FdPoll) {
    checkEndpointArguments(fd, options, hooks, poll);
    const { framing, maxMessageBytes } = resolveFraming(options);
    const size = validate.optionalInteger('readBufferBytes', options.readBufferBytes, 64, 64 * 1024 * 1024) ?? MAX_READ;
    this.#maxRead = size;
    this.#spinner = new SpinBudget(spinOption(options.spinMicros));
    this.fd = fd;
    this.#codec = resolveCodec(options.codec) as Codec<T>;
    this.#decoder = new FrameDecoder(framing, maxMessageBytes, Math.min(size, FIRST_READ));
    this.#hooks = hooks;
    this.#ownsPoll = poll === undefined;
    this.#poll = poll ?? new FdPoll(fd, true);
  }

  get framing(): Framing {
    return this.#decoder.framing;
  }

  /** True once the channel can deliver no more messages (ended or closed, queue drained). */
  get done(): boolean {
    return this.#state !== 'open' && this.#qHead >= this.#queue.length && this.#endError === null;
  }

  receive(options?: WaitOptions): Promise<T> {
    validate.waitOptions(options); // before the fast path: a bad option throws even when a message is ready
    if (this.#qHead < this.#queue.length) return this.#decodeNext();
    if (this.#waiters.length === 0 && this.#state === 'open') {
      if (!skipsReadBeforeWait(this.#drained, this.#spinner, options)) this.#fill();
      // Nothing yet: retry the read for a few µs before the poll (see spinMicros), once
      // what this thread has batched is written (the peer may be waiting for it).
      if (this.#qHead === this.#queue.length && this.#state === 'open') spinBeforeWait(this.#spinner, this.#fillFound, options);
      if (this.#qHead < this.#queue.length) return this.#decodeNext();
    }
    if (this.#state === 'ended' || this.#state === 'closed') return Promise.reject(this.#takeEndError());
    const p = this.#waiters.enqueue(options, undefined) as Promise<T>;
    if (this.#state === 'open') this.#startPolling();
    return p;
  }

  /**
   * Zero-copy receive: the next message's bytes go into `target` (no codec, no memory
   * allocated); resolves with its length. A length frame larger than the read buffer is
   * read from the kernel straight into `target`; a smaller one is copied there from the
   * read buffer. A message longer than `target` is not taken (ERR_IPCKIT_FRAME_TOO_LARGE,
   * `details.length`); with framing 'raw' a receive takes what fits and leaves the rest.
   * `target` is ours until the promise settles: do not touch it meanwhile.
   */
  receiveInto(target: Uint8Array, options?: WaitOptions): Promise<number> {
    this.#checkInto(target);
    validate.waitOptions(options);
    let got = this.#takeInto(target);
    if (got === undefined && this.#waiters.length === 0 && this.#state === 'open') {
      this.#into = target;
      this.#intoBorrows = true;
      try {
        if (!skipsReadBeforeWait(this.#drained, this.#spinner, options)) this.#fill();
        if (this.#intoLength < 0 && this.#qHead === this.#queue.length && this.#state === 'open') spinBeforeWait(this.#spinner, this.#fillFound, options);
        got = this.#takeInto(target);
      } finally {
        this.#endInto();
      }
    }
    if (got !== undefined) return typeof got === 'number' ? Promise.resolve(got) : Promise.reject(got);
    const ended = this.#state === 'ended' || this.#state === 'closed';
    // Not going to wait: a frame that started arriving in `target` must not stay there.
    if ((ended || options?.signal?.aborted) && this.#waiters.length === 0) this.#decoder.returnBorrowed();
    if (ended) return Promise.reject(this.#takeEndError());
    // Else a frame that started arriving in `target` goes on arriving there while this waits.
    const p = this.#waiters.enqueue(options, target) as Promise<number>;
    if (this.#state === 'open') this.#startPolling();
    return p;
  }

  /** receiveInto's fast path: the next message into `target` if one is ready now (its length), else undefined. */
  tryReceiveInto(target: Uint8Array): number | undefined {
    this.#checkInto(target);
    let got = this.#takeInto(target);
    if (got === undefined && this.#state === 'open' && this.#waiters.length === 0) {
      this.#into = target;
      this.#intoBorrows = false; // the call returns at once: a frame only part-way here would be copied out again
      try {
        this.#fill();
        got = this.#takeInto(target);
      } finally {
        this.#endInto();
      }
    }
    if (typeof got === 'number') return got;
    if (got !== undefined) throw got;
    if (this.#state === 'open' || this.#state === 'ending') return undefined;
    throw this.#takeEndError();
  }

  /** Messages already read and queued here (a receive takes them without a system call). */
  get queued(): number {
    return this.#queue.length - this.#qHead;
  }

  /** The messages ready now (at least one: waits for it), up to `max` (default: no limit): those queued and one more read of the kernel. */
  receiveMany(max?: number, options?: WaitOptions): Promise<T[]> {
    const limit = validate.batchMax('max', max, Infinity);
    return this.receive(options).then((first) => this.#readyAfter(first, limit));
  }

  /**
   * `first` and the messages ready after it, up to `max` in all: those queued, and those of
   * one more read. Reading again while a fast peer kept sending made a batch (and the
   * memory it holds) grow without end: a 64 KiB TCP receiver held 580-815 MB and ran at
   * half its rate.
   */
  #readyAfter(first: T, max: number): T[] {
    const out: T[] = [first];
    let refilled = false;
    while (out.length < max) {
      if (this.#qHead >= this.#queue.length) {
        if (refilled || this.#state !== 'open' || this.#waiters.length > 0 || this.#drained) break;
        refilled = true;
        this.#fill();
        if (this.#qHead >= this.#queue.length) break;
      }
      let value: T;
      try {
        value = this.#decode(this.#queue[this.#qHead]!);
      } catch {
        break; // an undecodable message ends the batch and stays first: the next receive reports it
      }
      this.#shift();
      out.push(value);
    }
    return out;
  }

  /**
   * The next message if one is ready now, else undefined. Throws when the channel has
   * ended (ERR_IPCKIT_CLOSED, or the error that ended it), like `receive` would reject.
   */
  tryReceive(): T | undefined {
    if (this.#qHead < this.#queue.length) return this.#decode(this.#shift());
    if (this.#state === 'open') {
      if (this.#waiters.length > 0) return undefined;
      this.#fill();
      if (this.#qHead < this.#queue.length) return this.#decode(this.#shift());
      if (this.#state === 'open' || this.#state === 'ending') return undefined;
    }
    if (this.#state === 'ending') return undefined;
    throw this.#takeEndError();
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return receiverIterator(this);
  }

  async close(): Promise<R> {
    if (this.#state === 'closed') return undefined as R;
    this.#state = 'closed';
    this.#queue = [];
    this.#qHead = 0;
    this.#endError = null;
    this.#waiters.rejectAll(() => closedError('receiver'));
    this.#release();
    return undefined as R;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- internals ---

  #shift(): Buffer {
    const m = this.#queue[this.#qHead]!;
    this.#queue[this.#qHead++] = undefined as unknown as Buffer;
    if (this.#qHead === this.#queue.length) {
      this.#queue = [];
      this.#qHead = 0;
    }
    return m;
  }

  #decode(payload: Buffer): T {
    return decodeWith(this.#codec, payload);
  }

  #checkInto(target: unknown): void {
    checkReceiveTarget(target);
    if (this.#decoder.framing === 'raw' && (target as Uint8Array).length === 0) throw invalidArgument('receiveInto with framing "raw" needs a buffer of at least 1 byte');
  }

  /**
   * The next message for a receiveInto with `target`: its length (the bytes are in
   * `target`), the error that refuses it (too long for `target`; it stays queued), or
   * undefined when no message is ready.
   */
  #takeInto(target: Uint8Array): number | IpcError | undefined {
    if (this.#intoLength >= 0) {
      const n = this.#intoLength;
      this.#intoLength = -1;
      return n;
    }
    if (this.#qHead >= this.#queue.length) return undefined;
    const head = this.#queue[this.#qHead]!;
    if (head.length > target.length) {
      if (this.#decoder.framing !== 'raw') return bufferTooSmall(head.length, target.length);
      target.set(head.subarray(0, target.length));
      this.#queue[this.#qHead] = head.subarray(target.length);
      return target.length;
    }
    target.set(this.#shift());
    return head.length;
  }

  #decodeNext(): Promise<T> {
    try {
      return Promise.resolve(this.#decode(this.#shift()));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #takeEndError(): IpcError {
    const e = this.#endError;
    this.#endError = null;
    return e ?? closedError('receiver');
  }

  #startPolling(): void {
    if (!this.#poll) return;
    this.#polling = true;
    this.#poll.want('read', this.#onReadable);
  }

  /** Nobody waits: stay in epoll (the next wait is then free) without keeping the loop alive. */
  #idlePolling(): void {
    if (this.#polling) this.#poll?.idle('read');
  }

  #stopPolling(): void {
    if (!this.#polling) return;
    this.#polling = false;
    this.#poll?.unwant('read');
  }

  /**
   * Reads what is there (without waiting) and queues every complete message. A short
   * read means the kernel had no more: the next wait goes straight to the poll.
   */
  #fill(): void {
    this.#drained = false;
    // Bounded: at most about one full buffer goes from the kernel to the queue per call.
    for (let total = 0; total < this.#maxRead && this.#state === 'open'; ) {
      const [buf, off, len] = this.#decoder.space();
      const n = this.#hooks.read ? this.#hooks.read(this.fd, buf, off, len) : native.read(this.fd, buf, off, len);
      if (n > 0) {
        this.#writerSeen = true;
        total += n;
        this.#decoder.commit(n);
        if (!this.#drainDecoder()) return;
        if (n < len) {
          this.#drained = true;
          return;
        }
        // The read filled the buffer: more is waiting, read bigger from now on.
        if (buf.length === this.#decoder.bufferSize) this.#decoder.grow(this.#maxRead);
        continue;
      }
      if (n === 0) {
        if (this.#hooks.zeroReadNeedsPoll && !this.#writerSeen) {
          this.#drained = true; // no writer yet: its arrival is a poll event
          return;
        }
        this.#end(null);
        return;
      }
      if (-n === EAGAIN) {
        this.#writerSeen = true;
        this.#drained = true;
        return;
      }
      this.#end(errnoError(-n, 'read', 'receive'), true);
      return;
    }
  }

  /** One retry of a spinning receive: true once it found a message or the stream's end. */
  #fillFound = (): boolean => {
    this.#fill();
    return this.#intoLength >= 0 || this.#qHead < this.#queue.length || this.#state !== 'open';
  };

  /** Moves complete messages from the decoder to the queue; false if the stream is bad. */
  #drainDecoder(): boolean {
    try {
      // A receiveInto is served and nothing is queued before it: its message goes straight
      // into its buffer (one that does not fit is queued below like any other).
      const into = this.#into;
      if (into !== null && this.#intoLength < 0 && this.#qHead === this.#queue.length && this.#decoder.nextLength() <= into.length) {
        this.#intoLength = this.#decoder.nextInto(into, this.#intoBorrows);
        // -1: nothing complete yet; next() below then checks what is pending (a line's limit).
      }
      for (let m = this.#decoder.next(); m !== undefined; m = this.#decoder.next()) this.#queue.push(m);
      return true;
    } catch (e) {
      this.#end(toIpcError(e, 'receive'));
      return false;
    }
  }

  #pump(): void {
    if (this.#state === 'open') {
      this.#into = this.#waiters.peek() ?? null; // the oldest receive, if it is a receiveInto
      this.#intoBorrows = true;
      try {
        this.#fill();
        this.#deliver();
      } finally {
        this.#endInto();
      }
      return;
    }
    this.#deliver();
  }

  /**
   * A section that served a receiveInto is over. Its message was taken; if something went
   * wrong before that, the message goes back to the head of the queue, as a copy, rather
   * than staying in a buffer nobody will read as its.
   */
  #endInto(): void {
    const into = this.#into;
    this.#into = null;
    if (this.#intoLength >= 0 && into !== null) {
      this.#queue.splice(this.#qHead, 0, Buffer.from(into.subarray(0, this.#intoLength)));
      this.#intoLength = -1;
    }
  }

  #deliver(): void {
    while (this.#waiters.length > 0) {
      const target = this.#waiters.peek();
      if (target !== undefined) {
        const got = this.#takeInto(target);
        if (got === undefined) break;
        if (typeof got === 'number') this.#waiters.resolveNext(got);
        else this.#waiters.rejectNext(got);
        continue;
      }
      if (this.#qHead >= this.#queue.length) break;
      const payload = this.#shift();
      let value: T;
      try {
        value = this.#decode(payload);
      } catch (e) {
        this.#waiters.rejectNext(e);
        continue;
      }
      this.#waiters.resolveNext(value);
    }
    if (this.#waiters.length === 0) {
      this.#idlePolling();
      return;
    }
    if (this.#state === 'open') this.#startPolling();
    else if (this.#state === 'ended' || this.#state === 'closed') {
      this.#waiters.rejectNext(this.#takeEndError());
      this.#waiters.rejectAll(() => closedError('receiver'));
    }
  }

  /**
   * The stream is over: `error` null for a clean end. Messages already queued are still
   * delivered; the error (if any) goes to the first receive after them.
   */
  #end(error: IpcError | null, fromPeer = false): void {
    if (this.#state !== 'open') return;
    if (error === null) {
      try {
        const last = this.#decoder.finish();
        if (last !== undefined) this.#queue.push(last);
      } catch (e) {
        error = toIpcError(e, 'receive');
        const hook = this.#hooks.truncatedEnd;
        if (hook) return this.#endAsync(hook(error));
      }
    } else if (fromPeer && this.#hooks.peerError) {
      return this.#endAsync(this.#hooks.peerError(error));
    }
    this.#finishEnd(error);
  }

  #endAsync(error: IpcError | Promise<IpcError>): void {
    this.#state = 'ending';
    this.#stopPolling();
    this.#release();
    Promise.resolve(error).then(
      (e) => this.#finishEnd(e),
      (e) => this.#finishEnd(toIpcError(e, 'receive')),
    );
  }

  #finishEnd(error: IpcError | null): void {
    if (this.#state === 'closed') return;
    this.#state = 'ended';
    this.#endError = error;
    this.#release();
    this.#deliver();
  }

  #release(): void {
    this.#polling = false;
    if (this.#state !== 'open') this.#decoder.release(); // never read into again
    if (this.#poll) {
      const poll = this.#poll;
      this.#poll = null;
      if (this.#ownsPoll) {
        poll.close(); // and the fd with it
        this.#hooks.onRelease?.();
      } else {
        poll.unwant('read');
        this.#hooks.onRelease?.();
      }
    }
  }
}

/** Frames up to this size are copied into the batch; larger payloads are written in place. */
const COPY_LIMIT = 16 * 1024;
const BATCH_SIZE = 64 * 1024;
/**
 * A writer's first batch buffer; each new one is twice the last, up to BATCH_SIZE. A busy
 * writer reaches full batches within a few turns, and a short-lived one (a connection
 * that carries one small message) never holds more than this: 64 KiB for each of many
 * such writers made RSS grow by 150 MB over 30,000 of them.
 */
const FIRST_BATCH = 1024;

interface Chunk {
  bytes: Uint8Array;
  /** Settles the `send` of a large payload once its bytes are written. */
  resolve?: () => void;
  /** Rejects that `send` if the bytes cannot be written (then its loss is reported there). */
  reject?: (e: unknown) => void;
}

const noop = (): void => {};

type WriterState = 'open' | 'closing' | 'closed';

/** `R` is what `close()` resolves with (subclasses such as popen's return an exit status). */
export class FdWriter<T, R = void> implements Sender<T> {
  readonly fd: number;
  #poll: FdPoll | null;
  #ownsPoll: boolean;
  #codec: Codec<T>;
  #framing: Framing;
  #maxMessageBytes: number;
  #hooks: StreamHooks;
  #highWaterMark: number;
  #atomic: boolean;
  /** The largest batch buffer (PIPE_BUF for atomic writes); the current one is #batch.length. */
  #batchMax: number;
  #batch: Buffer;
  #batchLen = 0;
  #batchSealed = 0;
  #chunks: Chunk[] = [];
  #firstOffset = 0; // bytes of #chunks[0] already written
  #queued = 0; // accepted, not yet written
  #spaceWaiters = new WaitQueue<void, Uint8Array>('send', (payload) => payload.length);
  /**
   * Set while a sendMany is part-way (it had to wait for room) and while the sends made
   * meanwhile wait their turn behind it: they start in the order they were made, each once
   * the one before has handed all its messages over, so none comes between a batch's.
   */
  #turn: Promise<void> | undefined;
  #maxPendingBytes: number;
  #flushWaiters = new WaitQueue<void>('flush');
  /** The flush scheduled for the end of this turn (it also marks "later sends of this turn are batched"). */
  #flushImmediate: NodeJS.Immediate | undefined;
  #flushing = false;
  #pollingWrite = false;
  #state: WriterState = 'open';
  #error: IpcError | null = null;
  /** Accepted bytes that were never written. */
  #lostBytes = 0;
  /** #error reached the user through a rejected send/flush, so close() need not repeat it. */
  #errorReported = false;
  #onWritable = (): void => this.#flushNow();
  #flushTask = (): void => {
    this.#flushImmediate = undefined;
    batchDone(this.#batchSlot);
    this.#flushNow();
  };
  /** A receive is about to spin (os/turn.ts): write the batch now, and the next send at once. */
  readonly #batchSlot = slotFor<WriteBatchNow>(() => {
    if (this.#flushImmediate !== undefined) clearImmediate(this.#flushImmediate);
    this.#flushImmediate = undefined;
    this.#flushNow();
  });

  constructor(fd: number, options: WriterOptions<CodecOption | undefined> = {}, hooks: StreamHooks = {}, poll?: FdPoll) {
    checkEndpointArguments(fd, options, hooks, poll);
    const { framing, maxMessageBytes } = resolveFraming(options);
    this.fd = fd;
    this.#codec = resolveCodec(options.codec) as Codec<T>;
    this.#framing = framing;
    this.#atomic = validate.optionalBoolean('atomic', options.atomic) ?? false;
    this.#batchMax = this.#atomic ? native.PIPE_BUF : BATCH_SIZE;
    this.#maxMessageBytes = this.#atomic ? Math.min(maxMessageBytes, native.PIPE_BUF - (framing === 'length' ? LENGTH_HEADER_BYTES : framing === 'lines' ? 1 : 0)) : maxMessageBytes;
    this.#highWaterMark = validate.optionalInteger('highWaterMark', options.highWaterMark, 1) ?? 256 * 1024;
    this.#maxPendingBytes = validate.optionalInteger('maxPendingBytes', options.maxPendingBytes, 0) ?? DEFAULT_MAX_PENDING_BYTES;
    this.#hooks = hooks;
    this.#batch = Buffer.allocUnsafe(Math.min(FIRST_BATCH, this.#batchMax));
    this.#ownsPoll = poll === undefined;
    this.#poll = poll ?? new FdPoll(fd, true);
  }

  /** Largest payload `send` accepts (smaller than maxMessageBytes in atomic mode). */
  get maxMessageBytes(): number {
    return this.#maxMessageBytes;
  }

  /** Bytes accepted but not yet handed to the kernel. */
  get bufferedBytes(): number {
    return this.#queued;
  }

  send(message: T, options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    const payload = encodeWith(this.#codec, message);
    const size = checkOutgoing(this.#framing, payload, this.#maxMessageBytes);
    if (this.#turn) return this.#inTurn(options, (rest) => this.#send(payload, size, rest), false);
    return this.#send(payload, size, options);
  }

  /** Accepts an encoded, checked payload of `size` bytes on the wire, or waits for room. */
  #send(payload: Uint8Array, size: number, options: WaitOptions | undefined): Promise<void> {
    if (this.#state !== 'open') return Promise.reject(this.#reportError() ?? closedError('sender'));
    if (this.#error) return Promise.reject(this.#reportError());
    if (this.#spaceWaiters.length === 0) {
      if (this.#queued + size > this.#highWaterMark && this.#queued > 0) this.#flushNow();
      if (this.#error) return Promise.reject(this.#reportError());
      if (this.#queued + size <= this.#highWaterMark || this.#queued === 0) return this.#accept(payload, size, true);
    }
    if (this.#spaceWaiters.weight + payload.length > this.#maxPendingBytes) return Promise.reject(pendingLimitError('this sender', this.#spaceWaiters.weight, payload.length, this.#maxPendingBytes));
    this.#startPollingWrite();
    return this.#spaceWaiters.enqueue(options, payload);
  }

  /** Accepts the message now and returns true, or returns false if `send` would wait. */
  trySend(message: T): boolean {
    const payload = encodeWith(this.#codec, message);
    const size = checkOutgoing(this.#framing, payload, this.#maxMessageBytes);
    if (this.#state !== 'open') throw this.#reportError() ?? closedError('sender');
    if (this.#error) throw this.#reportError();
    if (this.#spaceWaiters.length > 0 || this.#turn) return false;
    if (this.#queued + size > this.#highWaterMark && this.#queued > 0) {
      this.#flushNow();
      if (this.#error) throw this.#reportError();
      if (this.#queued + size > this.#highWaterMark && this.#queued > 0) return false;
    }
    // Nobody holds a promise for this message: if it cannot be written, close() says so.
    void this.#accept(payload, size, false);
    return true;
  }

  /**
   * Sends every message in order; resolves when all were accepted. Every message is
   * encoded and checked first, so one the codec refuses throws and nothing is sent.
   * `timeout` bounds the whole batch; if it fails part-way, `details.sent` says how many
   * were accepted (those are delivered like any accepted message).
   */
  sendMany(messages: Iterable<T>, options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    const payloads: Uint8Array[] = [];
    const sizes: number[] = [];
    for (const m of validate.iterable<T>('messages', messages)) {
      const payload = encodeWith(this.#codec, m);
      sizes.push(checkOutgoing(this.#framing, payload, this.#maxMessageBytes));
      payloads.push(payload);
    }
    const timeout = options?.timeout;
    if (this.#turn) return this.#inTurn(options, (rest) => this.#sendAll(payloads, sizes, rest, timeout), true);
    // Sent at once while there is room; once one must wait, the rest is the writer's turn.
    let i = 0;
    while (i < payloads.length) {
      const p = this.#send(payloads[i]!, sizes[i]!, options);
      if (p !== RESOLVED) {
        const rest = this.#sendAll(payloads, sizes, options, timeout, i, p);
        this.#takeTurn(rest);
        return rest;
      }
      i++;
    }
    return RESOLVED;
  }

  /**
   * The batch from payload `from` on (its send `first` already made), each sent once the one
   * before was accepted; `timeout` is the batch's own, for the error.
   */
  async #sendAll(payloads: Uint8Array[], sizes: number[], options: WaitOptions | undefined, timeout: number | undefined, from = 0, first?: Promise<void>): Promise<void> {
    const deadline = options?.timeout === undefined ? undefined : performance.now() + options.timeout;
    for (let i = from; i < payloads.length; i++) {
      const wait = deadline === undefined ? options : { ...options, timeout: Math.max(0, deadline - performance.now()) };
      const p = i === from && first ? first : this.#send(payloads[i]!, sizes[i]!, wait);
      if (p === RESOLVED) continue;
      try {
        await p;
      } catch (e) {
        // A wait given what was left of the batch's time reports the batch's timeout.
        throw batchError(isIpcError(e, 'ERR_IPCKIT_TIMEOUT') ? timeoutError('send', timeout!) : e, i, payloads.length);
      }
    }
  }

  /** `handedOver` settles once an operation has handed all its messages over: the next may start then. */
  #takeTurn(handedOver: Promise<unknown>): void {
    const turn = (this.#turn ?? RESOLVED).then(() => handedOver).then(noop, noop);
    this.#turn = turn;
    void turn.then(() => {
      if (this.#turn === turn) this.#turn = undefined;
    });
  }

  /**
   * A send or sendMany made while another has the turn: it starts once those before it have
   * handed their messages over, within its own timeout and signal (ending while it waits for
   * its turn, it took nothing). `many`: the next may start only once all of it was accepted.
   */
  #inTurn(options: WaitOptions | undefined, start: (options: WaitOptions | undefined) => Promise<void>, many: boolean): Promise<void> {
    const deadline = options?.timeout === undefined ? undefined : performance.now() + options.timeout;
    let handOver!: (done: Promise<unknown>) => void;
    const handedOver = new Promise<unknown>((resolve) => (handOver = resolve));
    const previous = this.#turn!;
    this.#takeTurn(handedOver);
    // Only the wait for the turn is ours to end: once started, the send's own wait (given
    // what is left of the time) ends it, so a send that timed out never went.
    const turn = cancellableWait<void>('send', options, (resolve) => {
      void previous.then(() => resolve());
      return () => handOver(RESOLVED); // ended while waiting: took nothing, the next may go
    });
    return turn.then(() => {
      const rest = deadline === undefined ? options : { ...options, timeout: Math.max(0, deadline - performance.now()) };
      const p = start(rest);
      handOver(many ? p : RESOLVED);
      return p;
    });
  }

  /** Resolves once every accepted message has been written to the kernel. */
  flush(options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    if (this.#error) return Promise.reject(this.#reportError());
    if (this.#queued === 0 && this.#spaceWaiters.length === 0) return RESOLVED;
    const p = this.#flushWaiters.enqueue(options, undefined);
    this.#flushNow();
    return p;
  }

  /**
   * Writes what was accepted, then releases the fd. Sends still waiting for room are
   * rejected with ERR_IPCKIT_CLOSED. Rejects if accepted messages could not be written
   * (the reader went away) and no `send` or `flush` has reported that already, so that no
   * loss goes unnoticed and none is reported twice. `timeout`/`signal` bound the wait for
   * a slow reader; on expiry the rest is dropped and the error says so.
   */
  close(options?: WaitOptions): Promise<R> {
    validate.waitOptions(options);
    return this.#close(options);
  }

  async #close(options: WaitOptions | undefined): Promise<R> {
    if (this.#state === 'closed') return undefined as R;
    if (this.#state === 'closing') {
      await this.#flushWaiters.enqueue(options, undefined).catch(() => {});
      return undefined as R;
    }
    this.#state = 'closing';
    this.#spaceWaiters.rejectAll(() => closedError('sender'));
    let failure: IpcError | null = null;
    if (!this.#error && this.#queued > 0) {
      try {
        const p = this.#flushWaiters.enqueue(options, undefined);
        this.#flushNow();
        await p;
      } catch (e) {
        failure = toIpcError(e, 'close');
        if (!this.#error) this.#fail(failure);
      }
    }
    this.#state = 'closed';
    this.#release();
    if (this.#lostBytes > 0 && (failure !== null || !this.#errorReported)) {
      const e = failure ?? this.#error!;
      throw e.amend({ note: `${this.#lostBytes} accepted bytes were not delivered`, details: { lostBytes: this.#lostBytes } });
    }
    return undefined as R;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- internals ---

  /** The error, noted as seen by the user (it is about to reject one of their calls). */
  #reportError(): IpcError | null {
    if (this.#error) this.#errorReported = true;
    return this.#error;
  }

  /** `tracked`: a caller holds the returned promise (false for trySend). */
  #accept(payload: Uint8Array, size: number, tracked: boolean): Promise<void> {
    const headerBytes = size - payload.length;
    if (payload.length <= COPY_LIMIT || this.#atomic) {
      if (this.#batchLen + size > this.#batch.length) this.#newBatch(size);
      this.#writeFrameInto(payload);
      this.#queued += size;
      if (this.#batchLen >= this.#batchMax - 64) this.#flushNow();
      else if (this.#flushImmediate === undefined && this.#queued === size) {
        // The first message of this turn goes out at once (the peer can start on it while
        // we go on); the rest of the turn is batched and written by the scheduled flush.
        this.#flushNow();
        this.#scheduleFlush();
      } else this.#scheduleFlush();
      return RESOLVED;
    }
    // Large payload: header (if any) goes in the batch, the payload is written in place.
    if (this.#batchLen + headerBytes > this.#batch.length) this.#newBatch(headerBytes);
    if (this.#framing === 'length') {
      this.#batch.writeUInt32LE(payload.length, this.#batchLen);
      this.#batchLen += LENGTH_HEADER_BYTES;
    }
    this.#seal();
    const p = tracked ? new Promise<void>((resolve, reject) => this.#chunks.push({ bytes: payload, resolve, reject })) : RESOLVED;
    if (!tracked) this.#chunks.push({ bytes: payload });
    if (this.#framing === 'lines') this.#appendNewlineChunk();
    this.#queued += size;
    this.#flushNow();
    return p;
  }

  #writeFrameInto(payload: Uint8Array): void {
    const b = this.#batch;
    let at = this.#batchLen;
    if (this.#framing === 'length') {
      b[at] = payload.length & 0xff;
      b[at + 1] = (payload.length >>> 8) & 0xff;
      b[at + 2] = (payload.length >>> 16) & 0xff;
      b[at + 3] = (payload.length >>> 24) & 0xff;
      at += 4;
    }
    if (payload.length < 64) for (let i = 0; i < payload.length; i++) b[at + i] = payload[i]!;
    else b.set(payload, at);
    at += payload.length;
    if (this.#framing === 'lines') b[at++] = 0x0a;
    this.#batchLen = at;
  }

  #appendNewlineChunk(): void {
    if (this.#batchLen + 1 > this.#batch.length) this.#newBatch(1);
    this.#batch[this.#batchLen++] = 0x0a;
  }

  /** Makes the unsealed part of the batch a chunk of its own (atomic mode: one write each). */
  #seal(): void {
    if (this.#batchLen > this.#batchSealed) {
      this.#chunks.push({ bytes: this.#batch.subarray(this.#batchSealed, this.#batchLen) });
      this.#batchSealed = this.#batchLen;
    }
  }

  /** Seals the batch and starts a new one, twice as large (up to the largest) and with room for `bytes`. */
  #newBatch(bytes: number): void {
    this.#seal();
    this.#batch = Buffer.allocUnsafe(Math.max(bytes, Math.min(this.#batch.length * 2, this.#batchMax)));
    this.#batchLen = this.#batchSealed = 0;
  }

  #scheduleFlush(): void {
    if (this.#flushImmediate !== undefined) return;
    this.#flushImmediate = setImmediate(this.#flushTask);
    batchScheduled(this.#batchSlot);
  }

  #startPollingWrite(): void {
    if (this.#pollingWrite || !this.#poll) return;
    this.#pollingWrite = true;
    this.#poll.want('write', this.#onWritable);
  }

  #stopPollingWrite(): void {
    if (!this.#pollingWrite) return;
    this.#pollingWrite = false;
    this.#poll?.unwant('write');
  }

  /** Writes as much as the kernel takes now; waits for writability if it takes less. */
  #flushNow(): void {
    if (this.#flushing || this.#error || !this.#poll) return;
    this.#flushing = true;
    try {
      for (;;) {
        this.#seal();
        if (!this.#writeChunks()) break;
        // Everything written: reuse the batch, admit sends that waited for room.
        this.#batchLen = this.#batchSealed = 0;
        if (this.#spaceWaiters.length === 0) {
          this.#stopPollingWrite();
          while (this.#flushWaiters.resolveNext(undefined)) {
            /* every flush waiter is satisfied */
          }
          break;
        }
        this.#admitWaiters();
        if (this.#queued === 0) break;
      }
    } finally {
      this.#flushing = false;
    }
    if (!this.#error && this.#queued > 0) {
      this.#admitWaiters();
      this.#startPollingWrite();
    }
  }

  /** Writes queued chunks; true when all were written, false when the kernel is full. */
  #writeChunks(): boolean {
    while (this.#chunks.length > 0) {
      let n: number;
      const first = this.#chunks[0]!;
      if (this.#atomic || this.#chunks.length === 1) {
        n = native.write(this.fd, first.bytes, this.#firstOffset, first.bytes.length - this.#firstOffset);
      } else {
        n = native.writev(this.fd, this.#chunks.map((c) => c.bytes), this.#firstOffset);
      }
      if (n < 0) {
        if (-n === EAGAIN) return false;
        this.#fail(errnoError(-n, 'write', 'send'));
        return false;
      }
      this.#consume(n);
    }
    return true;
  }

  #consume(n: number): void {
    this.#queued -= n;
    while (n > 0) {
      const c = this.#chunks[0]!;
      const left = c.bytes.length - this.#firstOffset;
      if (n < left) {
        this.#firstOffset += n;
        return;
      }
      n -= left;
      this.#chunks.shift();
      this.#firstOffset = 0;
      c.resolve?.();
    }
  }

  /** Accepts waiting sends while there is room, in their order. */
  #admitWaiters(): void {
    for (;;) {
      const payload = this.#spaceWaiters.peek();
      if (payload === undefined) return;
      const size = checkOutgoing(this.#framing, payload, this.#maxMessageBytes);
      if (this.#queued + size > this.#highWaterMark && this.#queued > 0) return;
      const waiter = this.#spaceWaiters.take()!;
      const accepted = this.#accept(payload, size, true);
      // A large payload's sender learns the outcome from the write itself.
      accepted.then(waiter.resolve, waiter.reject);
      if (this.#error) return;
    }
  }

  #fail(error: IpcError): void {
    if (this.#error) return;
    this.#error = error;
    let lost = 0;
    for (const c of this.#chunks) {
      const left = c.bytes.length - (c === this.#chunks[0] ? this.#firstOffset : 0);
      if (c.reject) {
        c.reject(error);
        this.#errorReported = true;
      } else lost += left;
    }
    this.#lostBytes += lost;
    this.#chunks = [];
    this.#queued = 0;
    if (this.#spaceWaiters.length > 0 || this.#flushWaiters.length > 0) this.#errorReported = true;
    this.#spaceWaiters.rejectAll(error);
    this.#flushWaiters.rejectAll(error);
    this.#stopPollingWrite();
  }

  #release(): void {
    this.#pollingWrite = false;
    // A pending immediate holds the writer (and its batch) until the loop turns: a program
    // that opens and closes writers without turning it would keep every one of them.
    if (this.#flushImmediate !== undefined) clearImmediate(this.#flushImmediate);
    this.#flushImmediate = undefined;
    batchDone(this.#batchSlot);
    if (!this.#poll) return;
    const poll = this.#poll;
    this.#poll = null;
    if (this.#ownsPoll) {
      poll.close(); // and the fd with it
    } else {
      poll.unwant('write');
    }
    this.#hooks.onRelease?.();
  }
}

/** A Receiver's or Sender's message type. */
export type ReaderOf<C extends CodecOption | undefined> = FdReader<MessageOf<C>>;
export type WriterOf<C extends CodecOption | undefined> = FdWriter<MessageOf<C>>;
