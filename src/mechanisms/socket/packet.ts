/**
 * Unix datagram and seqpacket sockets: the kernel keeps message boundaries, so a message
 * is one sendmsg and one recvmsg, with no framing. Node's dgram module has neither kind.
 *
 * Receiving: nothing is read until someone waits (data stays in the kernel: that is the
 * backpressure); then up to 64 messages are taken per recvmmsg call. Each message is
 * received whole into a slot of `maxMessageBytes` bytes, with MSG_TRUNC so that a larger
 * one is recognised (its real length is reported): it is consumed and reported as
 * ERR_IPCKIT_FRAME_TOO_LARGE to the receive that would have got it, and the messages after
 * it are delivered as usual.
 *
 * Sending: messages are accepted into a bounded queue (`highWaterMark` bytes) and written
 * at the end of the event-loop turn with one sendmmsg per 64 messages (the kernel still
 * does one message per send: that is its rule for datagrams). A full peer makes `send`
 * wait: a connected socket polls for writability; an unconnected one (a datagram server's
 * reply) retries with a short backoff, because the kernel cannot signal it.
 *
 * End of a seqpacket connection: recvmsg returns 0 both for an empty message and for the
 * end. We set SO_PASSCRED, so every real message carries SCM_CREDENTIALS and the end does
 * not: that tells them apart (and gives each message's sender).
 */
import { constants as osConstants } from 'node:os';
import { bufferTooSmall, checkReceiveTarget, DEFAULT_MAX_PENDING_BYTES, pendingLimitError, RESOLVED, WaitQueue, receiverIterator, type Channel, type ReceiverInto, type WaitOptions } from '../../core/channel.js';
import { decodeWith, encodeWith, resolveCodec, type Codec, type CodecOption } from '../../core/codec.js';
import { closedError, errnoError, IpcError, invalidArgument, toIpcError } from '../../core/errors.js';
import { DEFAULT_MAX_MESSAGE_BYTES, frameTooLarge } from '../../core/framing.js';
import { native } from '../../os/native.js';
import { SpinBudget, spinOption } from '../../os/spin.js';
import { FdPoll } from '../../os/fd-stream.js';
import { batchDone, batchScheduled, skipsReadBeforeWait, spinBeforeWait, type WriteBatchNow } from '../../os/turn.js';
import { slotFor } from '../../core/slot-set.js';
import { checkHandles, closeFds, closeHandleCopies, copyHandles, firstHandle, ReceivedHandle, type HandleSource } from './handle.js';
import type { SocketKind } from './address.js';
import { peerDiedError, type MessageWithHandles, type PeerCredentials, type SocketChannelOptions, type SocketInfo } from './stream.js';
import * as validate from '../../core/validate.js';

const C = native.socketConstants;
const E = osConstants.errno;

/** Default largest datagram/seqpacket message: 256 KiB (the kernel's own default limit is SO_SNDBUF - 32, about 208 KiB). */
export const DEFAULT_PACKET_MAX_MESSAGE_SIZE = 256 * 1024;
const SCRATCH_BYTES = 4 * 1024 * 1024;
const DEFAULT_HIGH_WATER_MARK = 256 * 1024;

// One set of receive buffers for the whole thread: JavaScript reads one socket at a time
// and copies each message out before the next call.
const meta = new Int32Array(C.MAX_BATCH * C.META_STRIDE);
const fdsOut = new Int32Array(C.MAX_BATCH * C.MAX_FDS_PER_MESSAGE);
const addrs = Buffer.alloc(C.MAX_BATCH * C.ADDR_STRIDE);
const scratches = new Map<number, { buf: Buffer; count: number }>();

function scratchFor(slot: number): { buf: Buffer; count: number } {
  let s = scratches.get(slot);
  if (!s) {
    const count = Math.max(1, Math.min(C.MAX_BATCH, Math.floor(SCRATCH_BYTES / slot)));
    s = { buf: Buffer.allocUnsafe(slot * count), count };
    scratches.set(slot, s);
  }
  return s;
}

/** One received message, or the error that takes its place. */
export interface Incoming {
  /** The bytes; for `borrowed`, a view of the receiveInto buffer they were received into. */
  payload: Buffer | null;
  borrowed?: boolean;
  error: IpcError | null;
  fds: number[] | null;
  creds: PeerCredentials | null;
}

export interface ReceiveBatch {
  /** Messages (and per-message errors) in order. */
  items: Incoming[];
  /** Sender address key per item (datagram servers only). */
  from: string[] | null;
  /** Sender sun_path bytes per item (datagram servers only). */
  fromPath: Buffer[] | null;
  /** The connection ended (seqpacket EOF), after `items`. */
  ended: boolean;
  /** A socket error (after `items`). */
  error: IpcError | null;
  /** Nothing more to read now. */
  drained: boolean;
}

/**
 * Reads one batch of messages now (never waits). `into`: a receiveInto's buffer; the first
 * message goes there if it fits (no allocation), as a `borrowed` item.
 */
export function readPackets(fd: number, maxMessageBytes: number, withAddresses: boolean, detectEnd: boolean, into: Uint8Array | null = null): ReceiveBatch {
  const { buf, count } = scratchFor(maxMessageBytes);
  const n = native.recvPackets(fd, buf, maxMessageBytes, count, meta, withAddresses ? addrs : null, fdsOut);
  const batch: ReceiveBatch = { items: [], from: withAddresses ? [] : null, fromPath: withAddresses ? [] : null, ended: false, error: null, drained: n < count };
  if (n < 0) {
    batch.drained = true;
    if (-n !== E.EAGAIN) batch.error = errnoError(-n, 'recvmsg', 'receive');
    return batch;
  }
  for (let i = 0; i < n; i++) {
    const row = i * C.META_STRIDE;
    const len = meta[row]!;
    const flags = meta[row + 1]!;
    const pid = meta[row + 3]!;
    const nfds = meta[row + 6]!;
    const fds = nfds > 0 ? Array.from(fdsOut.subarray(meta[row + 7]!, meta[row + 7]! + nfds)) : null;
    if (detectEnd && len === 0 && pid === -1 && nfds === 0) {
      batch.ended = true;
      batch.drained = true;
      break;
    }
    const creds = pid === -1 ? null : { pid, uid: meta[row + 4]! >>> 0, gid: meta[row + 5]! >>> 0 };
    let item: Incoming;
    if (len > maxMessageBytes || (flags & C.MSG_TRUNC) !== 0) {
      closeFds(fds);
      item = { payload: null, error: frameTooLarge(len, maxMessageBytes, 'receive'), fds: null, creds };
    } else if ((flags & C.MSG_CTRUNC) !== 0) {
      closeFds(fds);
      item = {
        payload: null,
        error: new IpcError('ERR_IPCKIT_LIMIT', `a message carried more than ${C.MAX_FDS_PER_MESSAGE} descriptors; it was dropped and its descriptors closed`, { details: { limit: C.MAX_FDS_PER_MESSAGE } }),
        fds: null,
        creds,
      };
    } else if (i === 0 && into !== null && len <= into.length) {
      into.set(buf.subarray(0, len));
      item = { payload: Buffer.from(into.buffer, into.byteOffset, len), borrowed: true, error: null, fds, creds };
    } else {
      const payload = Buffer.allocUnsafe(len);
      buf.copy(payload, 0, i * maxMessageBytes, i * maxMessageBytes + len);
      item = { payload, error: null, fds, creds };
    }
    batch.items.push(item);
    if (withAddresses) {
      const alen = meta[row + 2]!;
      const at = i * C.ADDR_STRIDE;
      const before = row - C.META_STRIDE; // the datagram before this one (i > 0)
      // The datagrams of a batch mostly come from one sender: the address the one before had
      // gives its key again, without a copy and a string per datagram.
      if (i > 0 && alen === meta[before + 2] && (alen > 0 ? addrs.compare(addrs, at - C.ADDR_STRIDE, at - C.ADDR_STRIDE + alen, at, at + alen) === 0 : pid === meta[before + 3])) {
        batch.fromPath!.push(batch.fromPath![i - 1]!);
        batch.from!.push(batch.from![i - 1]!);
      } else {
        const path = Buffer.from(addrs.subarray(at, at + alen));
        batch.fromPath!.push(path);
        batch.from!.push(alen > 0 ? path.toString('latin1') : `unnamed:${pid}`);
      }
    }
  }
  return batch;
}

export interface PacketOptions<C extends CodecOption | undefined = undefined> extends SocketChannelOptions<C> {}

/** How much a packet writer holds: accepted bytes before `send` waits, and bytes of waiting sends before it refuses. */
export interface WriterLimits {
  highWaterMark: number;
  maxPendingBytes: number;
}

export function resolvePacketOptions(options: PacketOptions<CodecOption | undefined>): { codec: Codec<unknown>; maxMessageBytes: number; limits: WriterLimits; spinMicros: number } {
  validate.object('options', options);
  if (options.framing !== undefined) throw invalidArgument('datagram and seqpacket sockets keep message boundaries themselves: `framing` does not apply');
  return {
    codec: resolveCodec(options.codec),
    maxMessageBytes: validate.optionalInteger('maxMessageBytes', options.maxMessageBytes, 1, Math.min(DEFAULT_MAX_MESSAGE_BYTES * 4, 2 ** 31 - 1)) ?? DEFAULT_PACKET_MAX_MESSAGE_SIZE,
    limits: {
      highWaterMark: validate.optionalInteger('highWaterMark', options.highWaterMark, 1) ?? DEFAULT_HIGH_WATER_MARK,
      maxPendingBytes: validate.optionalInteger('maxPendingBytes', options.maxPendingBytes, 0) ?? DEFAULT_MAX_PENDING_BYTES,
    },
    spinMicros: spinOption(options.spinMicros),
  };
}

/** Raises SO_SNDBUF so a message of `maxMessageBytes` fits (best effort: capped by wmem_max). */
export function fitSendBuffer(fd: number, maxMessageBytes: number): void {
  try {
    const have = native.getSockOpt(fd, C.SOL_SOCKET, C.SO_SNDBUF);
    if (have < maxMessageBytes + 1024) native.setSockOpt(fd, C.SOL_SOCKET, C.SO_SNDBUF, maxMessageBytes + 1024);
  } catch {
    /* the kernel keeps its limit; a larger message then fails with EMSGSIZE */
  }
}

/** Messages up to this size are copied when accepted; larger ones are written in place. */
const COPY_LIMIT = 16 * 1024;

function copyOf(bytes: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(bytes.length);
  b.set(bytes);
  return b;
}

interface OutEntry {
  bytes: Uint8Array;
  fds: Int32Array | null;
  resolve: (() => void) | null;
  reject: ((e: unknown) => void) | null;
}

/**
 * The sending half: a bounded queue flushed with sendmmsg (connected) or sendmsg per
 * message (with descriptors, or to an address).
 */
export class PacketWriter {
  #queue: OutEntry[] = [];
  #qHead = 0;
  #bytes = 0;
  #spaceWaiters = new WaitQueue<void, OutEntry>('send', (entry) => entry.bytes.length);
  #flushWaiters = new WaitQueue<void>('flush');
  #flushImmediate: NodeJS.Immediate | undefined;
  #pollingWrite = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #retryDelay = 1;
  #error: IpcError | null = null;
  /** A send, trySend or flush has given the failure to the caller (close then does not repeat it). */
  #errorReported = false;
  /**
   * Once a write failed: settles to the failure's final form, after we learn whether the
   * peer died (PEER_GONE). Every pending and later call gets that one error, so calls
   * pending at the same moment never see two codes for one failure.
   */
  #failing: Promise<IpcError> | null = null;
  #views: Uint8Array[] = [];
  #flushTask = (): void => {
    this.#flushImmediate = undefined;
    batchDone(this.#batchSlot);
    this.#flush();
  };
  /** A receive is about to spin (os/turn.ts): write the batch now. */
  readonly #batchSlot = slotFor<WriteBatchNow>(() => {
    this.#cancelFlushTask();
    this.#flush();
  });
  #onWritable = (): void => this.#flush();

  readonly highWaterMark: number;
  readonly maxPendingBytes: number;

  constructor(
    readonly fd: number,
    limits: WriterLimits,
    /** Connected sockets poll for writability; null means retry with a timer. */
    readonly poll: FdPoll | null,
    /** Destination for every message (a datagram server's reply to one peer). */
    readonly to: Buffer | null,
    readonly peer: () => PeerCredentials | undefined,
  ) {
    this.highWaterMark = limits.highWaterMark;
    this.maxPendingBytes = limits.maxPendingBytes;
  }

  get error(): IpcError | null {
    return this.#error;
  }

  get errorReported(): boolean {
    return this.#errorReported;
  }

  get pending(): number {
    return this.#queue.length - this.#qHead + this.#spaceWaiters.length;
  }

  /**
   * Accepts `bytes` (with optional descriptors). A small message is copied and resolves
   * once accepted; a large one (or one with descriptors) is written from the caller's
   * buffer and resolves once the kernel has it, so the caller may reuse its buffer after.
   */
  send(bytes: Uint8Array, fds: Int32Array | null, options: WaitOptions | undefined): Promise<void> {
    if (this.#error) return this.#rejection();
    const inPlace = fds !== null || bytes.length > COPY_LIMIT;
    const entry: OutEntry = { bytes: inPlace ? bytes : copyOf(bytes), fds, resolve: null, reject: null };
    let done: Promise<void> = RESOLVED;
    if (inPlace) done = new Promise<void>((resolve, reject) => ((entry.resolve = resolve), (entry.reject = reject)));
    if (this.#spaceWaiters.length === 0 && (this.#bytes + bytes.length <= this.highWaterMark || this.#bytes === 0)) {
      this.#push(entry);
      return done;
    }
    if (this.#bytes + bytes.length > this.highWaterMark && !this.#pollingWrite && this.#retryTimer === undefined) this.#flush();
    if (this.#error) return this.#rejection();
    if (this.#spaceWaiters.length === 0 && (this.#bytes + bytes.length <= this.highWaterMark || this.#bytes === 0)) {
      this.#push(entry);
      return done;
    }
    if (this.#spaceWaiters.weight + bytes.length > this.maxPendingBytes) return Promise.reject(pendingLimitError('this sender', this.#spaceWaiters.weight, bytes.length, this.maxPendingBytes));
    this.#waitForRoom();
    return this.#spaceWaiters.enqueue(options, entry).then(() => done);
  }

  trySend(bytes: Uint8Array): boolean {
    if (this.#error) throw this.#reportError();
    if (this.#spaceWaiters.length > 0) return false;
    if (this.#bytes + bytes.length > this.highWaterMark && this.#bytes > 0) {
      this.#flush();
      if (this.#error) throw this.#reportError();
      if (this.#bytes + bytes.length > this.highWaterMark && this.#bytes > 0) return false;
    }
    this.#push({ bytes: copyOf(bytes), fds: null, resolve: null, reject: null });
    return true;
  }

  /** `report`: false for close's own flush, which reports a failure only if nobody was told. */
  flush(options?: WaitOptions, report = true): Promise<void> {
    if (this.#error) return this.#rejection(report);
    if (this.pending === 0) return RESOLVED;
    const p = this.#flushWaiters.enqueue(options, undefined);
    this.#flush();
    return p;
  }

  /** Rejects waiting sends; what was accepted is still written by `flush`. */
  rejectWaiting(error: () => IpcError): void {
    this.#spaceWaiters.rejectAll(error);
  }

  /**
   * Drops everything unsent (closing): returns how many accepted messages were lost (sends
   * still waiting for theirs to be written are rejected instead). `error(lost)` is made
   * only if someone is told (an Error's stack costs microseconds, and most closes have
   * nobody waiting), and once.
   */
  discard(error: (lost: number) => IpcError): number {
    let lost = 0;
    for (let i = this.#qHead; i < this.#queue.length; i++) if (!this.#queue[i]!.reject) lost++;
    let made: IpcError | undefined;
    const theError = (): IpcError => (made ??= error(lost));
    for (let i = this.#qHead; i < this.#queue.length; i++) this.#queue[i]!.reject?.(theError());
    this.#queue = [];
    this.#qHead = 0;
    this.#bytes = 0;
    // A pending immediate holds the writer (and what it references) until the loop turns:
    // a program that opens and closes sockets without turning it would keep every one
    // (unix-dgram pairs: RSS +26 MB over 100,000, scripts/leak-cycles.ts).
    this.#cancelFlushTask();
    batchDone(this.#batchSlot);
    this.#spaceWaiters.rejectAll(theError);
    this.#flushWaiters.rejectAll(theError);
    this.#stopWaiting();
    return lost;
  }

  #push(entry: OutEntry): void {
    this.#queue.push(entry);
    this.#bytes += entry.bytes.length;
    // While the peer is full we wait for its room (poll or timer), not retry on every send.
    if (this.#pollingWrite || this.#retryTimer !== undefined) return;
    if (this.#queue.length - this.#qHead >= C.MAX_BATCH) this.#flush();
    else {
      batchScheduled(this.#batchSlot);
      this.#flushImmediate ??= setImmediate(this.#flushTask);
    }
  }


  #waitForRoom(): void {
    if (this.poll) {
      if (!this.#pollingWrite) {
        this.#pollingWrite = true;
        this.poll.want('write', this.#onWritable);
      }
    } else if (this.#retryTimer === undefined) {
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = undefined;
        this.#retryDelay = Math.min(this.#retryDelay * 2, 20);
        this.#flush();
      }, this.#retryDelay);
    }
  }

  #cancelFlushTask(): void {
    if (this.#flushImmediate !== undefined) clearImmediate(this.#flushImmediate);
    this.#flushImmediate = undefined;
  }

  #stopWaiting(): void {
    if (this.#pollingWrite) {
      this.#pollingWrite = false;
      this.poll?.unwant('write');
    }
    if (this.#retryTimer !== undefined) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
    }
  }

  #flush(): void {
    if (this.#error) return;
    for (;;) {
      while (this.#qHead < this.#queue.length) {
        const n = this.#writeSome();
        if (n === 0) {
          this.#waitForRoom();
          return;
        }
        if (n < 0) return;
      }
      this.#queue = [];
      this.#qHead = 0;
      this.#retryDelay = 1;
      // Admit sends that waited for room.
      let admitted = false;
      for (;;) {
        const next = this.#spaceWaiters.peek();
        if (next === undefined || (this.#bytes + next.bytes.length > this.highWaterMark && this.#bytes > 0)) break;
        const w = this.#spaceWaiters.take()!;
        this.#queue.push(w.data);
        this.#bytes += w.data.bytes.length;
        w.resolve();
        admitted = true;
      }
      if (!admitted) break;
    }
    this.#stopWaiting();
    while (this.#flushWaiters.resolveNext(undefined)) {
      /* everything accepted is written */
    }
  }

  /** Writes from the head of the queue: >0 messages written, 0 the peer is full, -1 failed. */
  #writeSome(): number {
    const head = this.#queue[this.#qHead]!;
    let n: number;
    if (head.fds !== null || this.to !== null || this.#qHead + 1 === this.#queue.length) {
      const r = native.sendPacket(this.fd, head.bytes, 0, head.bytes.length, head.fds, this.to);
      n = r < 0 ? r : 1;
    } else {
      const views = this.#views;
      views.length = 0;
      for (let i = this.#qHead; i < this.#queue.length && views.length < C.MAX_BATCH; i++) {
        const e = this.#queue[i]!;
        if (e.fds !== null) break;
        views.push(e.bytes);
      }
      n = native.sendPackets(this.fd, views, 0);
    }
    if (n < 0) {
      if (-n === E.EAGAIN || -n === E.ENOBUFS) return 0;
      let error = errnoError(-n, 'sendmsg', 'send');
      if (-n === E.EMSGSIZE) {
        error = new IpcError('ERR_IPCKIT_FRAME_TOO_LARGE', `the kernel refused a ${head.bytes.length}-byte message (EMSGSIZE): a Unix datagram must fit the socket's send buffer (SO_SNDBUF - 32 bytes; raise net.core.wmem_max)`, {
          cause: error,
          errno: error.errno!,
          syscall: 'sendmsg',
          systemCode: 'EMSGSIZE',
        });
      }
      this.#fail(error);
      return -1;
    }
    for (let i = 0; i < n; i++) {
      const e = this.#queue[this.#qHead]!;
      this.#queue[this.#qHead++] = undefined as unknown as OutEntry;
      this.#bytes -= e.bytes.length;
      e.resolve?.();
    }
    return n;
  }

  /** The failure, once its final form is known (#error is set only by #fail). */
  #rejection(report = true): Promise<never> {
    if (report) this.#errorReported = true;
    return this.#failing!.then((e) => Promise.reject(e));
  }

  #reportError(): IpcError {
    this.#errorReported = true;
    return this.#error!;
  }

  #fail(error: IpcError): void {
    if (this.#error) return;
    this.#error = error; // what a synchronous call (trySend) throws meanwhile
    this.#stopWaiting();
    this.#failing = peerDiedError(error, this.peer()).then((final) => {
      // Everyone told (a waiting send or flush) gets the count too, and then knows.
      let told: IpcError | undefined;
      const lost = this.discard((n) => (told = withLostMessages(final, n)));
      this.#error = told ?? withLostMessages(final, lost);
      if (told) this.#errorReported = true;
      return this.#error;
    });
  }
}

export type { MessageWithHandles };

/** `error`, saying how many accepted messages it cost (`details.lostMessages`); itself if none. */
function withLostMessages(error: IpcError, lost: number): IpcError {
  return lost > 0 ? error.amend({ note: `${lost} accepted messages were not delivered`, details: { lostMessages: lost } }) : error;
}

/** What the message queue of a packet channel holds. */
type Waiting<T> = { resolve: (v: MessageWithHandles<T>) => void; reject: (e: unknown) => void };

/**
 * The receiving half shared by connected packet channels and a datagram server's
 * per-peer channels: a queue of incoming messages and the receives waiting for them.
 */
export abstract class PacketChannelBase<T> implements Channel<T>, ReceiverInto, SocketInfo {
  abstract readonly kind: SocketKind;
  abstract readonly remoteAddress: string | undefined;
  abstract readonly localAddress: string | undefined;
  protected codec: Codec<T>;
  readonly maxMessageBytes: number;
  protected writer: PacketWriter;
  #incoming: Incoming[] = [];
  #inHead = 0;
  #incomingBytes = 0;
  /** Pending receives; a receiveInto's carries its buffer. */
  #waiters = new WaitQueue<MessageWithHandles<T> | number, Uint8Array | undefined>('receive', undefined, () => {
    if (this.#waiters.length === 0) this.stopReading();
  });
  /**
   * While a receiveInto is served with nothing queued before it: its buffer, where `fill`
   * puts the first message it reads (readPackets' `into`). Such an item is taken before the
   * section ends (#endInto).
   */
  protected intoTarget: Uint8Array | null = null;
  protected state: 'open' | 'ended' | 'closed' = 'open';
  #endError: IpcError | null = null;
  #peer: PeerCredentials | undefined;
  #spinner: SpinBudget;

  /** `spinMicros`: see SocketChannelOptions. */
  protected constructor(codec: Codec<T>, maxMessageBytes: number, writer: PacketWriter, peer: PeerCredentials | undefined, spinMicros: number) {
    this.#spinner = new SpinBudget(spinMicros);
    this.codec = codec;
    this.maxMessageBytes = maxMessageBytes;
    this.writer = writer;
    this.#peer = peer;
  }

  /** The process at the other end: SO_PEERCRED, or the sender of the latest message. */
  get peer(): PeerCredentials | undefined {
    return this.#peer;
  }

  /** One retry of a spinning receive: true once it found a message, the end or an error. */
  #fillFound = (): boolean => !this.fill() || this.#inHead < this.#incoming.length || this.state !== 'open';

  /**
   * Whether the last read found the kernel's queue empty (fewer messages than it asked
   * for), with no poll event since while the socket was in epoll (os/turn.ts skipsReadBeforeWait).
   */
  protected kernelDrained(): boolean {
    return false;
  }

  /**
   * A receive found its message in the kernel without waiting: the reader is keeping up
   * with a sender (one way), not waiting for answers. A socket left in epoll between waits
   * (stopReading) then only costs: every message the peer sends runs our epoll's wake-up
   * callback, and seqpacket one way fell 8% (0.94-0.96M against 1.03-1.07M msg/s, 0.4-s
   * parts, interleaved runs on a 2-vCPU VM). Subclasses take it out then.
   */
  protected readWithoutWaiting(): void {}

  /** Reads what is there (fill) for the oldest receive, then hands messages to the receives waiting. */
  protected pumpIncoming(): void {
    this.#startInto(this.#waiters.peek() ?? null);
    try {
      this.fill();
      this.deliver();
    } finally {
      this.#endInto();
    }
  }

  /** Whether `receive` would wait on the kernel (used to decide when to read). */
  protected get wantsMessages(): boolean {
    return this.#waiters.length > 0 && this.#inHead >= this.#incoming.length;
  }

  protected get queuedCount(): number {
    return this.#incoming.length - this.#inHead;
  }

  protected get queuedByteCount(): number {
    return this.#incomingBytes;
  }

  /** Start or stop reading the socket (subclasses: poll, or the server's shared reader). */
  protected abstract startReading(): void;
  protected abstract stopReading(): void;
  /** Reads what is there now, without waiting, into the incoming queue; false once the socket reported its end or an error. */
  protected abstract fill(): boolean;
  protected abstract release(): void;

  send(message: T, options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    const bytes = this.#encode(message);
    const refusal = this.sendRefusal();
    if (refusal) return Promise.reject(refusal);
    return this.writer.send(bytes, null, options);
  }

  trySend(message: T): boolean {
    const bytes = this.#encode(message);
    const refusal = this.sendRefusal();
    if (refusal) throw refusal;
    return this.writer.trySend(bytes);
  }

  /** Resolves once every accepted message has been handed to the kernel. */
  flush(options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    return this.writer.flush(options);
  }

  /** Why nothing can be sent now (closed, or a peer with no address to answer), or null. */
  protected sendRefusal(): IpcError | null {
    return this.state === 'closed' ? closedError('sender') : null;
  }

  /**
   * Sends `message` (default: empty) with descriptors attached (SCM_RIGHTS), as one
   * message: the peer receives both together. Resolves once the kernel has it. The
   * caller's descriptors stay theirs: the message carries duplicates taken now, so they
   * may be closed as soon as this returns.
   */
  sendHandle(handle: HandleSource | HandleSource[], message?: T, options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    checkHandles(handle, C.MAX_FDS_PER_MESSAGE);
    const bytes = message === undefined ? new Uint8Array(0) : this.#encode(message);
    const refusal = this.sendRefusal();
    if (refusal) return Promise.reject(refusal);
    const copies = copyHandles(handle, C.MAX_FDS_PER_MESSAGE);
    // Settled once the message is written, or dropped before it ever was (never both).
    const sent = this.writer.send(bytes, copies, options);
    const release = (): void => closeHandleCopies(copies);
    sent.then(release, release);
    return sent;
  }

  receive(options?: WaitOptions): Promise<T> {
    return this.receiveWithHandles(options).then((m) => {
      for (const h of m.handles) h.close();
      return m.message;
    });
  }

  /** The next message and the descriptors that came with it (you own and close them). */
  receiveWithHandles(options?: WaitOptions): Promise<MessageWithHandles<T>> {
    validate.waitOptions(options); // before the fast path: a bad option throws even when a message is ready
    if (this.#inHead < this.#incoming.length) return this.#takeNow();
    if (this.state === 'open' && this.#waiters.length === 0) {
      // Nothing yet: retry the read for a few µs before the poll (see spinMicros), once
      // what this thread has batched is written (the peer may be waiting for it).
      if ((skipsReadBeforeWait(this.kernelDrained(), this.#spinner, options) || this.fill()) && this.#inHead === this.#incoming.length) spinBeforeWait(this.#spinner, this.#fillFound, options);
      if (this.#inHead < this.#incoming.length) {
        this.readWithoutWaiting();
        return this.#takeNow();
      }
    }
    if (this.state !== 'open') return Promise.reject(this.#takeEndError());
    const p = this.#waiters.enqueue(options, undefined) as Promise<MessageWithHandles<T>>;
    this.startReading();
    return p;
  }

  /**
   * Zero-copy receive: the next message's bytes go into `target` (no codec; on a connected
   * socket with nothing queued before it, no memory is allocated: it is copied there from
   * the receive buffer; a datagram server's peer copies it from the datagram the server
   * read for it); resolves with its length. A message longer than `target` is not
   * taken (ERR_IPCKIT_FRAME_TOO_LARGE, `details.length`). Descriptors that came with it
   * are closed, as receive() does.
   */
  receiveInto(target: Uint8Array, options?: WaitOptions): Promise<number> {
    checkReceiveTarget(target);
    validate.waitOptions(options);
    let got = this.#takeInto(target);
    if (got === undefined && this.state === 'open' && this.#waiters.length === 0) {
      this.#startInto(target);
      try {
        if ((skipsReadBeforeWait(this.kernelDrained(), this.#spinner, options) || this.fill()) && this.#inHead === this.#incoming.length) spinBeforeWait(this.#spinner, this.#fillFound, options);
        got = this.#takeInto(target);
        if (got !== undefined) this.readWithoutWaiting();
      } finally {
        this.#endInto();
      }
    }
    if (got !== undefined) return typeof got === 'number' ? Promise.resolve(got) : Promise.reject(got);
    if (this.state !== 'open') return Promise.reject(this.#takeEndError());
    const p = this.#waiters.enqueue(options, target) as Promise<number>;
    this.startReading();
    return p;
  }

  /** receiveInto's fast path: the next message into `target` if one is ready now (its length), else undefined. */
  tryReceiveInto(target: Uint8Array): number | undefined {
    checkReceiveTarget(target);
    let got = this.#takeInto(target);
    if (got === undefined && this.state === 'open' && this.#waiters.length === 0) {
      this.#startInto(target);
      try {
        this.fill();
        got = this.#takeInto(target);
      } finally {
        this.#endInto();
      }
    }
    if (typeof got === 'number') return got;
    if (got !== undefined) throw got;
    if (this.state === 'open') return undefined;
    throw this.#takeEndError();
  }

  /**
   * The next message, which must carry a descriptor: resolves with the first one (others
   * are closed) and the message. A message without one rejects with ERR_IPCKIT_BAD_FRAME
   * (it is consumed: use receiveWithHandles when either may come).
   */
  receiveHandle(options?: WaitOptions): Promise<{ handle: ReceivedHandle; message: T; sender: PeerCredentials | undefined }> {
    return this.receiveWithHandles(options).then((m) => firstHandle(m, m.sender));
  }

  tryReceive(): T | undefined {
    if (this.#inHead >= this.#incoming.length && this.state === 'open' && this.#waiters.length === 0) this.fill();
    if (this.#inHead < this.#incoming.length) {
      const m = this.#decode(this.#shift());
      for (const h of m.handles) h.close();
      return m.message;
    }
    if (this.state === 'open') return undefined;
    throw this.#takeEndError();
  }

  /** The messages ready now (at least one: waits for it), up to `max` (default: no limit): those queued and one more read of the kernel. */
  receiveMany(max?: number, options?: WaitOptions): Promise<T[]> {
    const limit = validate.batchMax('max', max, Infinity);
    return this.receive(options).then((first) => this.#readyAfter(first, limit));
  }

  /**
   * `first` and the messages ready after it, up to `max` in all: those queued, and those of
   * one more fill, so that a peer that keeps sending cannot make a batch grow without end.
   */
  #readyAfter(first: T, max: number): T[] {
    const out: T[] = [first];
    let refilled = false;
    while (out.length < max) {
      if (this.#inHead >= this.#incoming.length) {
        if (refilled || this.state !== 'open' || this.#waiters.length > 0) break;
        refilled = true;
        this.fill();
        if (this.#inHead >= this.#incoming.length) break;
      }
      const next = this.#incoming[this.#inHead]!;
      if (next.error) break;
      try {
        const m = this.#decode(this.#shift());
        for (const h of m.handles) h.close();
        out.push(m.message);
      } catch {
        break;
      }
    }
    return out;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return receiverIterator(this);
  }

  close(options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    return this.#close(options);
  }

  async #close(options: WaitOptions | undefined): Promise<void> {
    if (this.state === 'closed') return;
    const wasOpen = this.state;
    this.state = 'closed';
    this.writer.rejectWaiting(() => closedError('sender'));
    let failure: unknown;
    if (wasOpen === 'open' || this.writer.pending > 0) {
      try {
        await this.writer.flush(options, false);
      } catch (e) {
        failure = e;
      }
    }
    // Nothing is left after a flush; after one that timed out or was aborted, what is left
    // is dropped and counted. This also drops the writer's end-of-turn flush, which would
    // hold this channel until the event loop turns: 20,000 socket pairs closed without a
    // turn kept 37 MB of heap.
    const lost = this.writer.discard(() => closedError('sender'));
    for (let i = this.#inHead; i < this.#incoming.length; i++) closeFds(this.#incoming[i]!.fds);
    this.#incoming = [];
    this.#incomingBytes = 0;
    this.#inHead = 0;
    this.#endError = null;
    this.#waiters.rejectAll(() => closedError('receiver'));
    this.stopReading();
    this.release();
    if (failure === undefined) return;
    // What this close dropped (after a timeout or abort, or a write failure whose final form
    // was not settled yet) is counted here: no accepted message is dropped silently.
    if (lost > 0) throw withLostMessages(this.writer.error ?? toIpcError(failure, 'close'), lost);
    // A write failure (the peer went away) carries its own count; a send or flush that
    // already gave it to the caller is not repeated here.
    if (this.writer.error && !this.writer.errorReported) throw this.writer.error;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- for subclasses ---

  protected enqueue(item: Incoming): void {
    if (this.state === 'closed') {
      closeFds(item.fds);
      return;
    }
    if (item.creds) this.#peer = item.creds;
    this.#incoming.push(item);
    this.#incomingBytes += item.payload?.length ?? 0;
  }

  /** The connection is over: deliver what is queued, then `error` (null: a clean end). */
  protected finish(error: IpcError | null): void {
    if (this.state !== 'open') return;
    this.state = 'ended';
    this.#endError = error;
    this.stopReading();
    this.deliver();
  }

  protected deliver(): void {
    while (this.#waiters.length > 0 && this.#inHead < this.#incoming.length) {
      const target = this.#waiters.peek();
      if (target !== undefined) {
        const got = this.#takeInto(target)!;
        if (typeof got === 'number') this.#waiters.resolveNext(got);
        else this.#waiters.rejectNext(got);
        continue;
      }
      let m: MessageWithHandles<T>;
      try {
        m = this.#decode(this.#shift());
      } catch (e) {
        this.#waiters.rejectNext(e);
        continue;
      }
      this.#waiters.resolveNext(m);
    }
    if (this.#waiters.length === 0) {
      this.stopReading();
      return;
    }
    if (this.state === 'open') this.startReading();
    else {
      this.#waiters.rejectNext(this.#takeEndError());
      this.#waiters.rejectAll(() => closedError('receiver'));
    }
  }

  // --- internals ---

  #encode(message: T): Uint8Array {
    const bytes = encodeWith(this.codec, message);
    if (bytes.length > this.maxMessageBytes) throw frameTooLarge(bytes.length, this.maxMessageBytes, 'send');
    return bytes;
  }

  #shift(): Incoming {
    const m = this.#incoming[this.#inHead]!;
    this.#incoming[this.#inHead++] = undefined as unknown as Incoming;
    this.#incomingBytes -= m.payload?.length ?? 0;
    if (this.#inHead === this.#incoming.length) {
      this.#incoming = [];
      this.#inHead = 0;
    }
    return m;
  }

  #decode(item: Incoming): MessageWithHandles<T> {
    if (item.error) throw item.error;
    const handles = item.fds ? item.fds.map((fd) => new ReceivedHandle(fd)) : [];
    try {
      return { message: decodeWith(this.codec, item.payload!), handles, sender: item.creds ?? undefined };
    } catch (e) {
      for (const h of handles) h.close();
      throw e;
    }
  }

  #startInto(target: Uint8Array | null): void {
    this.intoTarget = this.#inHead === this.#incoming.length ? target : null;
  }

  /** The section that served a receiveInto is over: a message still in its buffer gets memory of its own. */
  #endInto(): void {
    this.intoTarget = null;
    const head = this.#incoming[this.#inHead];
    if (head?.borrowed) {
      head.payload = Buffer.from(head.payload!);
      head.borrowed = false;
    }
  }

  /**
   * The next queued message for a receiveInto with `target`: its length (the bytes are in
   * `target`), an error (the message's own, and it is consumed; or too long for `target`,
   * and it stays queued), or undefined when nothing is queued.
   */
  #takeInto(target: Uint8Array): number | IpcError | undefined {
    if (this.#inHead >= this.#incoming.length) return undefined;
    const head = this.#incoming[this.#inHead]!;
    if (head.error) {
      this.#shift();
      return head.error;
    }
    const payload = head.payload!;
    if (!head.borrowed) {
      if (payload.length > target.length) return bufferTooSmall(payload.length, target.length);
      target.set(payload);
    }
    this.#shift();
    closeFds(head.fds);
    return payload.length;
  }

  #takeNow(): Promise<MessageWithHandles<T>> {
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
}

export interface PacketChannelInit {
  kind: 'unix-dgram' | 'unix-seqpacket';
  peer: PeerCredentials | undefined;
  remoteAddress: string | undefined;
  localAddress: string | undefined;
  onClose?: () => void;
}

/** A connected datagram or seqpacket socket: its own fd, polled by the event loop. */
export class PacketChannel<T> extends PacketChannelBase<T> {
  readonly fd: number;
  readonly kind: 'unix-dgram' | 'unix-seqpacket';
  readonly remoteAddress: string | undefined;
  readonly localAddress: string | undefined;
  #poll: FdPoll;
  #reading = false;
  /** In epoll with nobody waiting (stopReading), until an event or a receive that did not wait takes it out. */
  #idle = false;
  #onClose: (() => void) | undefined;
  #drained = false;
  #onReadable = (): void => {
    this.#drained = false;
    // Woken while idle (nobody waits): leave the data in the kernel, that is the backpressure.
    if (!this.#reading) this.#unwatch();
    else this.pumpIncoming();
  };

  constructor(fd: number, options: PacketOptions<CodecOption | undefined>, init: PacketChannelInit) {
    validate.integer('fd', fd, 0, 2 ** 31 - 1);
    const o = resolvePacketOptions(options);
    const poll = new FdPoll(fd);
    const holder: { self?: PacketChannel<T> } = {};
    super(o.codec as Codec<T>, o.maxMessageBytes, new PacketWriter(fd, o.limits, poll, null, () => holder.self?.peer), init.peer, o.spinMicros);
    holder.self = this;
    this.fd = fd;
    this.kind = init.kind;
    this.remoteAddress = init.remoteAddress;
    this.localAddress = init.localAddress;
    this.#poll = poll;
    this.#onClose = init.onClose;
    fitSendBuffer(fd, o.maxMessageBytes);
  }

  protected startReading(): void {
    if (this.state !== 'open') return;
    this.#reading = true;
    this.#idle = false;
    // Every time, not only when it was not reading: an error event clears the poll's mask
    // (FdPoll), and a want whose mask is already set costs no system call.
    this.#poll.want('read', this.#onReadable);
  }

  /**
   * Nobody waits: the fd stays in epoll without keeping the event loop alive (FdPoll.idle),
   * so that the next receive's wait costs no epoll_ctl (three before; on one CPU a
   * ping-pong's round trip took 21.0-21.5 us with them, 16.9-18.0 us without, with the
   * EAGAIN read skipped in both); an event while idle, or a receive that finds its message
   * without waiting (readWithoutWaiting), stops it.
   */
  protected stopReading(): void {
    if (!this.#reading) return;
    this.#reading = false;
    this.#idle = true;
    this.#poll.idle('read');
  }

  protected override readWithoutWaiting(): void {
    if (this.#idle) this.#unwatch();
  }

  #unwatch(): void {
    this.#idle = false;
    this.#drained = false; // out of epoll, no event will say that more came
    this.#poll.unwant('read');
  }

  protected fill(): boolean {
    if (this.state !== 'open') return false;
    this.#drained = false;
    for (let rounds = 0; rounds < 4; rounds++) {
      const batch = readPackets(this.fd, this.maxMessageBytes, false, this.kind === 'unix-seqpacket', rounds === 0 ? this.intoTarget : null);
      for (const item of batch.items) this.enqueue(item);
      if (batch.ended) {
        this.finish(null);
        return false;
      }
      if (batch.error) {
        const error = batch.error;
        void peerDiedError(error, this.peer).then((e) => this.finish(e));
        this.stopReading();
        return false;
      }
      if (batch.drained) {
        this.#drained = true;
        break;
      }
    }
    return true;
  }

  protected override kernelDrained(): boolean {
    return this.#drained;
  }

  protected release(): void {
    this.#poll.close();
    native.close(this.fd);
    this.#onClose?.();
  }

  /** Half-close (seqpacket): flush, then shutdown(SHUT_WR); the peer's receive ends. */
  end(options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    if (this.state === 'closed') return RESOLVED;
    return this.writer.flush(options).then(() => {
      native.shutdown(this.fd, C.SHUT_WR);
    });
  }
}

export interface AllowList {
  uids?: readonly number[];
  gids?: readonly number[];
}

export function isAllowed(allow: AllowList | null, creds: PeerCredentials | null | undefined): boolean {
  if (allow === null) return true;
  if (!creds) return false;
  return (allow.uids?.includes(creds.uid) ?? false) || (allow.gids?.includes(creds.gid) ?? false);
}

/** Most messages (and bytes of them) one datagram peer may have waiting before the server stops reading for everyone. */
const PEER_QUEUE_LIMIT = 4096;
const PEER_QUEUE_BYTES = 8 * 1024 * 1024;
/**
 * The same for all peers together, and the most senders not yet accepted: every new
 * sender address is a new peer, so per-peer limits alone let many senders grow us without bound.
 */
const SERVER_QUEUE_BYTES = 32 * 1024 * 1024;
const UNACCEPTED_PEER_LIMIT = 1024;

/**
 * A bound, unconnected Unix datagram socket serving many senders: each sender address is
 * one peer channel (yielded by `accept()` when its first datagram arrives); replies go
 * back to that address. Senders outside `allow` are dropped (and counted) before their
 * datagram is queued, by the credentials the kernel attaches (SO_PASSCRED).
 */
export class DatagramServer<T> {
  readonly fd: number;
  readonly #poll: FdPoll;
  readonly #codec: Codec<unknown>;
  readonly #maxMessageBytes: number;
  readonly #limits: WriterLimits;
  readonly #spinMicros: number;
  readonly #allow: AllowList | null;
  readonly #peers = new Map<string, DatagramPeer<T>>();
  readonly #fresh: DatagramPeer<T>[] = [];
  readonly #acceptWaiters = new WaitQueue<DatagramPeer<T>>('accept', undefined, () => this.updateReading());
  readonly #localAddress: string;
  #reading = false;
  #closed = false;
  refused = 0;
  /** @internal The last read found the socket's queue empty, with no poll event since (PacketChannelBase.kernelDrained). */
  drained = false;
  /** In epoll with nobody waiting (PacketChannel.stopReading says why), until an event or a receive that did not wait. */
  #idle = false;
  #onReadable = (): void => {
    this.drained = false;
    // Woken while idle (nobody waits, or the peers' queues are full): the data stays in the kernel.
    if (!this.#reading) this.readWithoutWaiting();
    else this.pump();
  };

  constructor(fd: number, options: PacketOptions<CodecOption | undefined>, allow: AllowList | null, localAddress: string) {
    validate.integer('fd', fd, 0, 2 ** 31 - 1);
    const o = resolvePacketOptions(options);
    this.fd = fd;
    this.#poll = new FdPoll(fd);
    this.#codec = o.codec;
    this.#maxMessageBytes = o.maxMessageBytes;
    this.#limits = o.limits;
    this.#spinMicros = o.spinMicros;
    this.#allow = allow;
    this.#localAddress = localAddress;
  }

  get closed(): boolean {
    return this.#closed;
  }

  accept(options?: WaitOptions): Promise<DatagramPeer<T>> {
    validate.waitOptions(options);
    if (this.#closed) return Promise.reject(closedError('server'));
    const ready = this.#fresh.shift();
    if (ready) return Promise.resolve(ready);
    const p = this.#acceptWaiters.enqueue(options, undefined);
    this.pump();
    return p;
  }

  /**
   * Reads while anyone waits for a datagram (or once, when `now`: a receiver looking for
   * more without waiting), routing each to its sender's channel.
   */
  pump(now = false): void {
    if (this.#closed) return;
    for (let rounds = 0; rounds < 8 && (now || this.#interested()) && !this.#congested(); rounds++) {
      now = false;
      const batch = readPackets(this.fd, this.#maxMessageBytes, true, false);
      this.drained = batch.drained;
      for (let i = 0; i < batch.items.length; i++) {
        const item = batch.items[i]!;
        if (!isAllowed(this.#allow, item.creds)) {
          this.refused++;
          closeFds(item.fds);
          continue;
        }
        const key = batch.from![i]!;
        let peer = this.#peers.get(key);
        if (!peer) {
          const path = batch.fromPath![i]!;
          peer = new DatagramPeer<T>(this, key, path.length > 0 ? path : null, this.#codec as Codec<T>, this.#maxMessageBytes, this.#limits, item.creds ?? undefined, this.#localAddress, this.#spinMicros);
          this.#peers.set(key, peer);
          if (!this.#acceptWaiters.resolveNext(peer)) this.#fresh.push(peer);
        }
        peer.push(item);
      }
      for (const peer of this.#peers.values()) peer.flushIncoming();
      if (batch.error) {
        // A datagram socket has no connection to lose: report it to whoever waits, go on.
        if (!this.#acceptWaiters.rejectNext(batch.error)) break;
      }
      if (batch.drained) break;
    }
    this.updateReading();
  }

  updateReading(): void {
    const want = !this.#closed && this.#interested() && !this.#congested();
    if (want) {
      // Every time (as PacketChannel.startReading): an error event clears the poll's mask.
      this.#reading = true;
      this.#idle = false;
      this.#poll.want('read', this.#onReadable);
      return;
    }
    if (!this.#reading) return;
    this.#reading = false;
    this.#idle = true;
    this.#poll.idle('read'); // as PacketChannel.stopReading: the next wait costs no epoll_ctl
  }

  /** @internal Out of epoll, if it was left there idle: a receive found its datagram without waiting, or an event came while idle. */
  readWithoutWaiting(): void {
    if (!this.#idle) return;
    this.#idle = false;
    this.drained = false; // out of epoll, no event will say that more came
    this.#poll.unwant('read');
  }

  forget(key: string): void {
    this.#peers.delete(key);
    this.updateReading();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#acceptWaiters.rejectAll(() => closedError('server'));
    const peers = [...this.#peers.values()];
    const closed = await Promise.allSettled(peers.map((p) => p.close({ timeout: 1000 })));
    this.#reading = false;
    this.#poll.close();
    native.close(this.fd);
    // Replies a peer could not deliver within the second are reported, not dropped silently.
    const failed = closed.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => toIpcError(r.reason, 'close'));
    if (failed.length === 0) return;
    const lost = failed.reduce((n, e) => n + ((e.details?.lostMessages as number | undefined) ?? 0), 0);
    throw failed.length === 1 ? failed[0]! : failed[0]!.amend({ note: `${failed.length} peers could not be closed cleanly, ${lost} replies were not delivered`, details: { lostMessages: lost, peers: failed.length } });
  }

  #interested(): boolean {
    if (this.#acceptWaiters.length > 0) return true;
    for (const p of this.#peers.values()) if (p.waitingForKernel) return true;
    return false;
  }

  #congested(): boolean {
    if (this.#fresh.length >= UNACCEPTED_PEER_LIMIT) return true;
    let total = 0;
    for (const p of this.#peers.values()) {
      if (p.queued >= PEER_QUEUE_LIMIT || p.queuedBytes >= PEER_QUEUE_BYTES) return true;
      total += p.queuedBytes;
    }
    return total >= SERVER_QUEUE_BYTES;
  }
}

/** One sender of a datagram server: its datagrams, and replies to its address. */
export class DatagramPeer<T> extends PacketChannelBase<T> {
  readonly kind = 'unix-dgram' as const;
  readonly remoteAddress: string | undefined;
  readonly localAddress: string | undefined;
  readonly #server: DatagramServer<T>;
  readonly #key: string;
  readonly #replyable: boolean;

  /** @internal */
  constructor(server: DatagramServer<T>, key: string, path: Buffer | null, codec: Codec<T>, maxMessageBytes: number, limits: WriterLimits, peer: PeerCredentials | undefined, localAddress: string, spinMicros: number) {
    const holder: { self?: DatagramPeer<T> } = {};
    // A peer's spin reads the server's socket for every peer (DatagramServer.pump).
    super(codec, maxMessageBytes, new PacketWriter(server.fd, limits, null, path, () => holder.self?.peer), peer, spinMicros);
    holder.self = this;
    this.#server = server;
    this.#key = key;
    this.#replyable = path !== null;
    this.localAddress = localAddress;
    this.remoteAddress = path === null ? undefined : path[0] === 0 ? `unix-dgram:@${path.subarray(1).toString('utf8')}` : `unix-dgram:${path.toString('utf8')}`;
  }

  get waitingForKernel(): boolean {
    return this.wantsMessages;
  }

  get queued(): number {
    return this.queuedCount;
  }

  get queuedBytes(): number {
    return this.queuedByteCount;
  }

  /** A datagram peer has no connection to half-close: writes what was accepted. */
  end(options?: WaitOptions): Promise<void> {
    return this.flush(options);
  }

  protected override sendRefusal(): IpcError | null {
    if (!this.#replyable) return new IpcError('ERR_IPCKIT_UNSUPPORTED', 'this sender did not bind an address, so it cannot be answered');
    return super.sendRefusal();
  }

  /** @internal */
  push(item: Incoming): void {
    this.enqueue(item);
  }

  /** @internal */
  flushIncoming(): void {
    this.deliver();
  }

  protected startReading(): void {
    this.#server.updateReading();
  }

  protected stopReading(): void {
    this.#server.updateReading();
  }

  protected fill(): boolean {
    this.#server.pump(true);
    return true;
  }

  protected override kernelDrained(): boolean {
    return this.#server.drained;
  }

  protected override readWithoutWaiting(): void {
    this.#server.readWithoutWaiting();
  }

  protected release(): void {
    this.#server.forget(this.#key);
  }
}
