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
 */
import type { Channel, WaitOptions } from './channel.js';
import type { CodecOption } from './codec.js';
import { IpcError, isIpcError } from './errors.js';
import type { FramingOptions } from './framing.js';
import { processStartTime, watchProcess } from './liveness.js';
import { native } from './native.js';
import { FdPoll, FdReader, FdWriter, type StreamHooks } from './stream.js';
import type { SocketKind } from './socket-address.js';

const C = native.socketConstants;

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
  /** Stream kinds: size of the read buffer (default 64 KiB). */
  readBufferSize?: number;
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
      died = isIpcError(e, 'ERR_IPCKIT_NOT_FOUND');
    }
  }
  if (!died) return error;
  const base = error.message.replace(/ \(ERR_IPCKIT_[A-Z_]+\)$/, '');
  return new IpcError('ERR_IPCKIT_PEER_GONE', `${base}; the peer process ${peer.pid} died`, { cause: error, details: { ...error.details, pid: peer.pid } });
}

function noHandles(kind: SocketKind): IpcError {
  const why = kind === 'tcp' ? 'TCP cannot carry descriptors' : 'a byte stream cannot tie a descriptor to a message';
  return new IpcError('ERR_IPCKIT_UNSUPPORTED', `${why}: pass handles over a unix-seqpacket: or unix-dgram: socket`);
}

export class StreamSocketChannel<T> implements Channel<T>, SocketInfo {
  readonly fd: number;
  readonly kind: SocketKind;
  readonly peer: PeerCredentials | undefined;
  readonly remoteAddress: string | undefined;
  readonly localAddress: string | undefined;
  readonly #poll: FdPoll;
  readonly #reader: FdReader<T>;
  readonly #writer: FdWriter<T>;
  readonly #onClose: (() => void) | undefined;
  #closed = false;
  #ended = false;

  constructor(fd: number, options: SocketChannelOptions<CodecOption | undefined>, init: StreamSocketInit) {
    this.fd = fd;
    this.kind = init.kind;
    this.peer = init.peer;
    this.remoteAddress = init.remoteAddress;
    this.localAddress = init.localAddress;
    this.#onClose = init.onClose;
    const { highWaterMark, readBufferSize, ...common } = options;
    this.#poll = new FdPoll(fd);
    const peer = init.peer;
    const hooks: StreamHooks = {
      truncatedEnd: (e) => peerDiedError(e, peer),
      peerError: (e) => peerDiedError(e, peer),
    };
    try {
      this.#reader = new FdReader<T>(fd, { ...common, ...(readBufferSize !== undefined ? { readBufferSize } : {}) }, hooks, this.#poll);
      this.#writer = new FdWriter<T>(fd, { ...common, ...(highWaterMark !== undefined ? { highWaterMark } : {}) }, {}, this.#poll);
    } catch (e) {
      this.#poll.close();
      throw e;
    }
  }

  /** Largest payload `send` accepts. */
  get maxMessageSize(): number {
    return this.#writer.maxMessageSize;
  }

  /** Bytes accepted but not yet handed to the kernel. */
  get bufferedBytes(): number {
    return this.#writer.bufferedBytes;
  }

  get closed(): boolean {
    return this.#closed;
  }

  send(message: T, options?: WaitOptions): Promise<void> {
    return this.#writer.send(message, options);
  }

  trySend(message: T): boolean {
    return this.#writer.trySend(message);
  }

  sendMany(messages: Iterable<T>, options?: WaitOptions): Promise<void> {
    return this.#writer.sendMany(messages, options);
  }

  /** Resolves once every accepted message has been written to the kernel. */
  flush(options?: WaitOptions): Promise<void> {
    return this.#writer.flush(options);
  }

  receive(options?: WaitOptions): Promise<T> {
    return this.#reader.receive(options);
  }

  tryReceive(): T | undefined {
    return this.#reader.tryReceive();
  }

  /** Every message ready now (at least one: waits for it), up to `max`. */
  receiveMany(max?: number, options?: WaitOptions): Promise<T[]> {
    return this.#reader.receiveMany(max, options);
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this.#reader[Symbol.asyncIterator]();
  }

  /**
   * Descriptors cannot be tied to one message of a byte stream: use a unix-seqpacket: or
   * unix-dgram: socket for them (the kernel keeps each descriptor with its message).
   */
  sendHandle(_handle?: unknown, _message?: T, _options?: WaitOptions): Promise<void> {
    return Promise.reject(noHandles(this.kind));
  }

  receiveHandle(_options?: WaitOptions): Promise<never> {
    return Promise.reject(noHandles(this.kind));
  }

  receiveWithHandles(_options?: WaitOptions): Promise<never> {
    return Promise.reject(noHandles(this.kind));
  }

  /**
   * Half-close: writes what was accepted, then shuts down our sending direction; the
   * peer receives every message and then its channel ends. We can still receive.
   */
  async end(options?: WaitOptions): Promise<void> {
    if (this.#ended || this.#closed) return;
    this.#ended = true;
    await this.#writer.close(options);
    native.shutdown(this.fd, C.SHUT_WR);
  }

  /**
   * Writes what was accepted (bounded by `timeout`/`signal`), then releases the socket.
   * Rejects if accepted messages could not be written (the peer went away).
   */
  async close(options?: WaitOptions): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    let failure: unknown;
    try {
      await this.#writer.close(options);
    } catch (e) {
      failure = e;
    }
    await this.#reader.close();
    this.#poll.close();
    native.close(this.fd);
    this.#onClose?.();
    if (failure !== undefined) throw failure;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
