/**
 * A connected stream socket (unix:, unix-abstract:, tcp://) as one full-duplex Channel:
 * an FdReader and an FdWriter over the same fd, sharing one FdPoll, so framing,
 * batching, backpressure and the end-of-stream rules are those of every ipckit stream.
 *
 * - `end()` half-closes: flushes, then shutdown(SHUT_WR); the peer's receive ends while
 *   we can still receive.
 * - `close()` flushes what was accepted, then releases the fd; pending receives reject
 *   with ERR_IPCKIT_CLOSED.
 * - A Unix peer that dies in the middle of a frame makes the next receive reject with
 *   ERR_IPCKIT_PEER_GONE (we know its pid from SO_PEERCRED and watch it exit); a stream
 *   that ends inside a frame otherwise is ERR_IPCKIT_BAD_FRAME. The partial frame is never
 *   delivered.
 * - With `{ handles: true }` (Unix only), descriptors travel with messages: the reader
 *   uses recvmsg and ties each descriptor to the frame it came with (HandleTracker).
 */
import { constants as osConstants } from 'node:os';
import { receiverIterator, type Channel, type ReceiverInto, type WaitOptions } from '../../core/channel.js';
import { decodeWith, encodeWith, resolveCodec, type Codec, type CodecOption } from '../../core/codec.js';
import { abortedError, errnoError, invalidArgument, IpcError, isIpcError, timeoutError } from '../../core/errors.js';
import { checkOutgoing, frameTooLarge, LENGTH_HEADER_BYTES, resolveFraming, type Framing, type FramingOptions } from '../../core/framing.js';
import { processStartTime, watchProcess } from '../../os/liveness.js';
import { native } from '../../os/native.js';
import { checkHandles, closeFds, closeHandleCopies, copyHandles, firstHandle, ReceivedHandle, type HandleSource } from './handle.js';
import { FdPoll, FdReader, FdWriter, type StreamHooks } from '../../os/fd-stream.js';
import type { SocketKind } from './address.js';
import * as validate from '../../core/validate.js';

const C = native.socketConstants;
const EAGAIN = osConstants.errno.EAGAIN;

/** The process at the other end of a Unix socket (SO_PEERCRED / SCM_CREDENTIALS). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

export interface SocketChannelOptions<C extends CodecOption | undefined = undefined> extends FramingOptions {
  codec?: C;
  /** Bytes accepted but not yet written beyond which `send` waits (default 256 KiB). */
  highWaterMark?: number;
  /** Bytes of sends waiting for room the channel holds at most (default 64 MiB); past it `send` rejects with ERR_IPCKIT_LIMIT. */
  maxPendingBytes?: number;
  /** Stream kinds: the most the read buffer grows to (it starts at 64 KiB and doubles while reads fill it; default 1 MiB). */
  readBufferBytes?: number;
  /**
   * How long a receive that finds nothing retries the read on the event loop before it
   * waits for the poll, in µs (default 20 where the process may use more than one CPU, else
   * 0). Adaptive: a peer that answers within it saves a cross-CPU wake-up; retries that keep
   * missing shrink to 1 µs. Never longer than the receive's timeout.
   */
  spinMicros?: number;
  /**
   * Unix stream sockets: carry descriptors (sendHandle/receiveHandle), at a small cost per
   * received message. Datagram and seqpacket sockets always can.
   */
  handles?: boolean;
}

/** What every socket channel tells about itself. */
export interface SocketInfo {
  readonly kind: SocketKind;
  /** The process at the other end (Unix sockets); undefined for TCP. */
  readonly peer: PeerCredentials | undefined;
  /** The peer's address as text (`tcp://127.0.0.1:40000`, `unix:/path`), when it has one. */
  readonly remoteAddress: string | undefined;
  /** Our own address as text, when we have one. */
  readonly localAddress: string | undefined;
}

/** A message and the descriptors that came with it. */
export interface MessageWithHandles<T> {
  message: T;
  /** Yours to close (or `using`). */
  handles: ReceivedHandle[];
  /** The sender (SCM_CREDENTIALS), when the kernel told us. */
  sender: PeerCredentials | undefined;
}

export interface StreamSocketInit {
  kind: SocketKind;
  peer: PeerCredentials | undefined;
  remoteAddress: string | undefined;
  localAddress: string | undefined;
  /** Called once the fd is closed. */
  onClose?: () => void;
}

/** Reports a peer that died mid-frame as PEER_GONE (it exits within a moment of the EOF). */
export async function peerDiedError(error: IpcError, peer: PeerCredentials | undefined): Promise<IpcError> {
  if (peer === undefined || peer.pid <= 0) return error;
  let died = processStartTime(peer.pid) === undefined;
  if (!died) {
    try {
      await watchProcess(peer.pid, { timeout: 250 });
      died = true;
    } catch (e) {
      // A late event loop runs the expired timer before the pidfd's event: look again.
      died = isIpcError(e, 'ERR_IPCKIT_NOT_FOUND') || processStartTime(peer.pid) === undefined;
    }
  }
  if (!died) return error;
  return error.amend({ code: 'ERR_IPCKIT_PEER_GONE', note: `the peer process ${peer.pid} died`, details: { pid: peer.pid } });
}

function noHandles(kind: SocketKind): IpcError {
  if (kind === 'tcp') return new IpcError('ERR_IPCKIT_UNSUPPORTED', 'TCP cannot carry descriptors: use a Unix socket');
  return new IpcError('ERR_IPCKIT_UNSUPPORTED', 'this Unix stream channel was opened without { handles: true }, so it cannot carry descriptors');
}

/**
 * Ties descriptors passed on a Unix stream to the frames they were sent with. The kernel
 * ends a read right after the bytes that carried descriptors (or inside them, when the
 * buffer is full), so descriptors received with a read belong to the frame that holds the
 * read's last byte. We count the bytes read, and the bytes of every frame delivered in
 * order, and match the two.
 */
/**
 * Reads that brought descriptors and wait for their frame. A frame carries its descriptors
 * on one write and the kernel ends a read at each such write, so a frame being read has
 * one batch: more is a peer piling descriptors into a frame it does not finish, which
 * would otherwise fill our descriptor table. Beyond this many, new ones are closed.
 */
const MAX_PENDING_BATCHES = 64;

class HandleTracker<T> {
  #readTotal = 0;
  #consumed = 0;
  #pending: Array<{ at: number; fds: number[] }> = [];
  readonly #fdsOut = new Int32Array(C.MAX_FDS_PER_MESSAGE + 2);

  constructor(
    readonly framing: Framing,
    readonly codec: Codec<T>,
  ) {}

  read = (fd: number, buf: Uint8Array, offset: number, length: number): number => {
    const n = native.recvStream(fd, buf, offset, length, this.#fdsOut);
    if (n > 0) {
      this.#readTotal += n;
      const k = this.#fdsOut[0]!;
      if (k > 0) {
        const fds = Array.from(this.#fdsOut.subarray(1, 1 + k));
        if (this.#pending.length >= MAX_PENDING_BATCHES) closeFds(fds);
        else this.#pending.push({ at: this.#readTotal - 1, fds });
      }
    }
    return n;
  };

  /** The next frame's payload, decoded, with the descriptors that came with it. */
  take(payload: Uint8Array): MessageWithHandles<T> {
    const start = this.#consumed;
    const end = start + payload.length + (this.framing === 'length' ? LENGTH_HEADER_BYTES : this.framing === 'lines' ? 1 : 0);
    this.#consumed = end;
    const handles: ReceivedHandle[] = [];
    while (this.#pending.length > 0 && this.#pending[0]!.at < end) {
      const p = this.#pending.shift()!;
      // At most MAX_FDS_PER_MESSAGE per message, as on packet sockets: the rest are closed.
      if (p.at < start) {
        closeFds(p.fds);
        continue;
      }
      for (const fd of p.fds) {
        if (handles.length < C.MAX_FDS_PER_MESSAGE) handles.push(new ReceivedHandle(fd));
        else closeFds([fd]);
      }
    }
    try {
      return { message: decodeWith(this.codec, payload), handles, sender: undefined };
    } catch (e) {
      for (const h of handles) h.close();
      throw e;
    }
  }

  dispose(): void {
    for (const p of this.#pending) closeFds(p.fds);
    this.#pending = [];
  }
}

export class StreamSocketChannel<T> implements Channel<T>, ReceiverInto, SocketInfo {
  readonly fd: number;
  readonly kind: SocketKind;
  readonly peer: PeerCredentials | undefined;
  readonly remoteAddress: string | undefined;
  readonly localAddress: string | undefined;
  readonly #poll: FdPoll;
  readonly #reader: FdReader<T>;
  readonly #writer: FdWriter<Uint8Array>;
  readonly #onClose: (() => void) | undefined;
  readonly #framing: Framing;
  readonly #codec: Codec<T>;
  /** Descriptor passing (`handles: true`): the reader then yields raw frames, decoded here. */
  readonly #tracker: HandleTracker<T> | null = null;
  /** Sends wait behind a descriptor being written (it bypasses the batch). */
  #barrier: Promise<void> | null = null;
  #barrierCount = 0;
  /** A decode error met by receiveMany after it had messages to return: the next receive gets it. */
  #stashedError: unknown = undefined;
  #closed = false;
  #ended = false;

  constructor(fd: number, options: SocketChannelOptions<CodecOption | undefined>, init: StreamSocketInit) {
    validate.integer('fd', fd, 0, 2 ** 31 - 1);
    validate.object('options', options);
    validate.optionalBoolean('handles', options.handles);
    this.fd = fd;
    this.kind = init.kind;
    this.peer = init.peer;
    this.remoteAddress = init.remoteAddress;
    this.localAddress = init.localAddress;
    this.#onClose = init.onClose;
    const { highWaterMark, maxPendingBytes, readBufferBytes, spinMicros, handles, ...common } = options;
    this.#framing = resolveFraming(common).framing;
    this.#codec = resolveCodec(common.codec) as Codec<T>;
    if (handles === true) {
      if (init.kind !== 'unix' && init.kind !== 'unix-abstract') throw invalidArgument('`handles` needs a Unix socket: TCP cannot carry descriptors');
      this.#tracker = new HandleTracker<T>(this.#framing, this.#codec);
    }
    this.#poll = new FdPoll(fd);
    const peer = init.peer;
    const hooks: StreamHooks = {
      truncatedEnd: (e) => peerDiedError(e, peer),
      peerError: (e) => peerDiedError(e, peer),
      ...(this.#tracker ? { read: this.#tracker.read } : {}),
    };
    const readerOptions = { ...common, ...(this.#tracker ? { codec: undefined } : {}), ...(readBufferBytes !== undefined ? { readBufferBytes } : {}), ...(spinMicros !== undefined ? { spinMicros } : {}) };
    try {
      this.#reader = new FdReader<T>(fd, readerOptions, hooks, this.#poll);
      // The writer carries bytes: messages are encoded here, so that a bad one throws even
      // when the send has to wait behind a descriptor (the barrier).
      this.#writer = new FdWriter<Uint8Array>(fd, { ...common, codec: undefined, ...(highWaterMark !== undefined ? { highWaterMark } : {}), ...(maxPendingBytes !== undefined ? { maxPendingBytes } : {}) }, {}, this.#poll);
    } catch (e) {
      this.#poll.close();
      throw e;
    }
  }

  /** Largest payload `send` accepts. */
  get maxMessageBytes(): number {
    return this.#writer.maxMessageBytes;
  }

  /** Bytes accepted but not yet handed to the kernel. */
  get bufferedBytes(): number {
    return this.#writer.bufferedBytes;
  }

  get closed(): boolean {
    return this.#closed;
  }

  send(message: T, options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    const payload = this.#encode(message);
    if (this.#barrier) return this.#barrier.then(() => this.#writer.send(payload, options));
    return this.#writer.send(payload, options);
  }

  trySend(message: T): boolean {
    const payload = this.#encode(message);
    if (this.#barrier) return false;
    return this.#writer.trySend(payload);
  }

  sendMany(messages: Iterable<T>, options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    const payloads: Uint8Array[] = [];
    for (const m of validate.iterable<T>('messages', messages)) payloads.push(this.#encode(m));
    if (this.#barrier) return this.#barrier.then(() => this.#writer.sendMany(payloads, options));
    return this.#writer.sendMany(payloads, options);
  }

  /** Resolves once every accepted message has been written to the kernel. */
  flush(options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    if (this.#barrier) return this.#barrier.then(() => this.#writer.flush(options));
    return this.#writer.flush(options);
  }

  receive(options?: WaitOptions): Promise<T> {
    validate.waitOptions(options);
    if (!this.#tracker) return this.#reader.receive(options);
    return this.receiveWithHandles(options).then((m) => {
      for (const h of m.handles) h.close();
      return m.message;
    });
  }

  tryReceive(): T | undefined {
    if (!this.#tracker) return this.#reader.tryReceive();
    const m = this.#tryTake();
    if (m === undefined) return undefined;
    for (const h of m.handles) h.close();
    return m.message;
  }

  /**
   * Zero-copy receive into `target` (see ReceiverInto): resolves with the message's length.
   * Not with `handles: true` (a message may carry descriptors: use receiveWithHandles).
   */
  receiveInto(target: Uint8Array, options?: WaitOptions): Promise<number> {
    this.#refuseIntoWithHandles();
    return this.#reader.receiveInto(target, options);
  }

  tryReceiveInto(target: Uint8Array): number | undefined {
    this.#refuseIntoWithHandles();
    return this.#reader.tryReceiveInto(target);
  }

  /** The messages ready now (at least one: waits for it), up to `max` (default: no limit): those queued and one more read of the kernel. */
  receiveMany(max?: number, options?: WaitOptions): Promise<T[]> {
    if (!this.#tracker) return this.#reader.receiveMany(max, options);
    const limit = validate.batchMax('max', max, Infinity);
    return this.receive(options).then((first) => this.#readyAfter(first, limit));
  }

  /**
   * Descriptor mode: `first` and the messages ready after it, up to `max` in all: those
   * queued and one more read, as FdReader's batches (a peer that keeps sending cannot make
   * one batch grow without end).
   */
  #readyAfter(first: T, max: number): T[] {
    const out: T[] = [first];
    let refilled = false;
    while (out.length < max) {
      if (this.#reader.queued === 0) {
        if (refilled) break;
        refilled = true; // the next tryReceive reads the socket
      }
      let m: T | undefined;
      try {
        m = this.tryReceive();
      } catch (e) {
        this.#stashedError = e;
        break;
      }
      if (m === undefined) break;
      out.push(m);
    }
    return out;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this.#tracker ? receiverIterator(this) : this.#reader[Symbol.asyncIterator]();
  }

  /**
   * Sends `message` (default: an empty payload) with descriptors attached (SCM_RIGHTS),
   * written on its own after everything sent before it; sends after it wait their turn.
   * Resolves once the kernel has it. Needs `{ handles: true }` on a Unix stream socket.
   */
  sendHandle(handle: HandleSource | HandleSource[], message?: T, options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    checkHandles(handle, C.MAX_FDS_PER_MESSAGE);
    const frame = this.#frame(message === undefined ? new Uint8Array(0) : encodeWith(this.#codec, message));
    if (!this.#tracker) return Promise.reject(noHandles(this.kind));
    if (this.#closed) return Promise.reject(new IpcError('ERR_IPCKIT_CLOSED', 'sender is closed'));
    const timeout = options?.timeout;
    const signal = options?.signal;
    const fds = copyHandles(handle, C.MAX_FDS_PER_MESSAGE);
    const run = async (): Promise<void> => {
      if (signal?.aborted) throw abortedError('send a handle', signal);
      const deadline = timeout === undefined ? undefined : performance.now() + timeout;
      await this.#writer.flush(options);
      await this.#writeWithFds(frame, fds, deadline, timeout, signal);
    };
    const p = (this.#barrier ?? Promise.resolve()).then(run);
    this.#barrierCount++;
    this.#barrier = p.catch(() => {});
    const release = (): void => {
      if (--this.#barrierCount === 0) this.#barrier = null;
    };
    p.then(release, release);
    // Our copies go once the frame is written (its descriptors ride on its first bytes) or given up.
    const closeCopies = (): void => closeHandleCopies(fds);
    p.then(closeCopies, closeCopies);
    return p;
  }

  /** The next message, which must carry a descriptor (extra ones are closed). */
  receiveHandle(options?: WaitOptions): Promise<{ handle: ReceivedHandle; message: T; sender: PeerCredentials | undefined }> {
    return this.receiveWithHandles(options).then((m) => firstHandle(m, this.peer));
  }

  /** The next message with any descriptors it carried (yours to close). */
  receiveWithHandles(options?: WaitOptions): Promise<MessageWithHandles<T>> {
    validate.waitOptions(options);
    const tracker = this.#tracker;
    if (!tracker) return Promise.reject(noHandles(this.kind));
    if (this.#stashedError !== undefined) {
      const e = this.#stashedError;
      this.#stashedError = undefined;
      return Promise.reject(e);
    }
    return (this.#reader as unknown as FdReader<Uint8Array>).receive(options).then((payload) => tracker.take(payload));
  }

  /**
   * Half-close: writes what was accepted, then shuts down our sending direction; the
   * peer receives every message and then its channel ends. We can still receive.
   */
  end(options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    return this.#end(options);
  }

  async #end(options: WaitOptions | undefined): Promise<void> {
    if (this.#ended || this.#closed) return;
    this.#ended = true;
    if (this.#barrier) await this.#barrier;
    await this.#writer.close(options);
    native.shutdown(this.fd, C.SHUT_WR);
  }

  /**
   * Writes what was accepted (bounded by `timeout`/`signal`), then releases the socket.
   * Rejects if accepted messages could not be written (the peer went away).
   */
  close(options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    return this.#close(options);
  }

  async #close(options: WaitOptions | undefined): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    let failure: unknown;
    try {
      await this.#writer.close(options);
    } catch (e) {
      failure = e;
    }
    await this.#reader.close();
    this.#tracker?.dispose();
    this.#poll.close();
    native.close(this.fd);
    this.#onClose?.();
    if (failure !== undefined) throw failure;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- internals ---

  /** A message as the bytes the writer carries, checked against the framing and the size limit. */
  #encode(message: T): Uint8Array {
    const payload = encodeWith(this.#codec, message);
    checkOutgoing(this.#framing, payload, this.#writer.maxMessageBytes);
    return payload;
  }

  #refuseIntoWithHandles(): void {
    if (this.#tracker) throw new IpcError('ERR_IPCKIT_UNSUPPORTED', 'receiveInto does not take descriptors: on a socket opened with `handles: true` use receiveWithHandles (or receive)');
  }

  #tryTake(): MessageWithHandles<T> | undefined {
    if (this.#stashedError !== undefined) {
      const e = this.#stashedError;
      this.#stashedError = undefined;
      throw e;
    }
    const payload = (this.#reader as unknown as FdReader<Uint8Array>).tryReceive();
    return payload === undefined ? undefined : this.#tracker!.take(payload);
  }

  #frame(payload: Uint8Array): Buffer {
    if (payload.length > this.#writer.maxMessageBytes) throw frameTooLarge(payload.length, this.#writer.maxMessageBytes, 'send');
    if (this.#framing === 'length') {
      const f = Buffer.allocUnsafe(LENGTH_HEADER_BYTES + payload.length);
      f.writeUInt32LE(payload.length, 0);
      f.set(payload, LENGTH_HEADER_BYTES);
      return f;
    }
    if (this.#framing === 'lines') {
      if (payload.includes(0x0a)) throw invalidArgument('a message sent with framing "lines" must not contain a newline');
      return Buffer.concat([payload, Buffer.from([0x0a])]);
    }
    if (payload.length === 0) throw invalidArgument('with framing "raw", a descriptor needs at least one byte of message to travel with');
    return Buffer.from(payload);
  }

  /**
   * Writes `frame` with the descriptors on its first bytes; retries briefly while the socket
   * is full. Until its first bytes are in, the send can still give up (timeout, abort) with
   * nothing sent; after that the rest of the frame must follow (or the channel close).
   */
  async #writeWithFds(frame: Uint8Array, fds: Int32Array, deadline: number | undefined, timeout: number | undefined, signal: AbortSignal | undefined): Promise<void> {
    let off = 0;
    let delay = 1;
    while (off < frame.length) {
      if (this.#closed) throw new IpcError('ERR_IPCKIT_CLOSED', 'sender is closed');
      const n = off === 0 ? native.sendPacket(this.fd, frame, 0, frame.length, fds, null) : native.write(this.fd, frame, off, frame.length - off);
      if (n > 0) {
        off += n;
        delay = 1;
        continue;
      }
      if (n === -EAGAIN || n === 0) {
        let wait = delay;
        if (off === 0) {
          if (signal?.aborted) throw abortedError('send a handle', signal);
          if (deadline !== undefined) {
            const left = deadline - performance.now();
            if (left <= 0) throw timeoutError('send a handle', timeout!);
            wait = Math.min(wait, Math.ceil(left));
          }
        }
        // The writer has nothing queued here (we flushed it first), so a short backoff
        // rather than sharing its writability poll.
        await new Promise((r) => setTimeout(r, wait));
        delay = Math.min(delay * 2, 20);
        continue;
      }
      throw await peerDiedError(errnoError(-n, 'sendmsg', 'send a handle'), this.peer);
    }
  }
}
