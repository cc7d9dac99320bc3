/**
 * Acknowledged delivery over a stream socket, and the reconnecting client built on it.
 *
 * The promise: every message whose `send()` resolved was delivered exactly once, across
 * any number of server crashes and restarts. It needs two rules:
 *
 * 1. `send()` resolves only when the peer acknowledges the message, and the peer
 *    acknowledges only after its `receive()` handed the message to the application.
 * 2. Nothing is ever sent twice. A message written to a connection that breaks before its
 *    acknowledgement arrives may or may not have been delivered: its `send()` rejects with
 *    ERR_IPCKIT_PEER_GONE (`details.maybeDelivered: true`) and it is not resent. Messages
 *    not yet written when the connection broke wait for the next connection, up to their
 *    `timeout` (a timed-out send sent nothing). A timeout or abort that comes once the
 *    message was written ends the wait for its acknowledgement, as "maybe delivered" too.
 *
 * Retrying a "maybe delivered" message is the application's choice (it gives
 * at-least-once). Plain connections pay none of this: only `{ reconnect }` clients and
 * `{ acknowledged: true }` servers speak it.
 *
 * Wire format: ordinary length frames (docs/design.md §4) whose payload starts with a type byte:
 *
 *   0x03 HELLO  "ipckit-ack/1"   each side's first frame; the client waits for the server's
 *   0x01 DATA   payload          one application message
 *   0x02 ACK    u32 LE count     the peer delivered `count` more DATA frames, in order
 *
 * At most WINDOW messages are written and unacknowledged at a time, which also bounds
 * how many sends a crash can leave "maybe delivered".
 */
import { cancellableWait, checkReceiveTarget, RESOLVED, WaitQueue, receiverIterator, type Channel, type WaitOptions } from '../../core/channel.js';
import { decodeWith, encodeWith, resolveCodec, type Codec, type CodecOption } from '../../core/codec.js';
import { abortedError, closedError, IpcError, isIpcError, toIpcError } from '../../core/errors.js';
import { DEFAULT_MAX_MESSAGE_BYTES, frameTooLarge } from '../../core/framing.js';
import type { SocketKind } from './address.js';
import type { PeerCredentials, SocketChannelOptions, SocketInfo, StreamSocketChannel } from './stream.js';
import { checkHandles, type HandleSource } from './handle.js';
import { native } from '../../os/native.js';
import * as validate from '../../core/validate.js';

const DATA = 0x01;
const ACK = 0x02;
const HELLO = 0x03;
const HELLO_TEXT = 'ipckit-ack/1';
const HELLO_FRAME = Buffer.concat([Buffer.from([HELLO]), Buffer.from(HELLO_TEXT)]);
/** Messages written but not yet acknowledged, per connection. */
const WINDOW = 1024;
/** Messages received but not yet taken by `receive()` before we stop reading. */
const INCOMING_LIMIT = 1024;
/** ... and their bytes (one message of any size is always let in). */
const INCOMING_BYTES_LIMIT = 8 * 1024 * 1024;
const HANDSHAKE_TIMEOUT = 5000;

export interface ReconnectOptions {
  /** First delay before reconnecting, ms (default 50). */
  minDelay?: number;
  /** Longest delay between attempts, ms (default 2000). Each delay is randomised (50-100%) to spread clients out. */
  maxDelay?: number;
  /** How long to wait for the server's handshake on each connection, ms (default 5000). */
  handshakeTimeout?: number;
}

/** `reconnect` as given to connect (true: the defaults), checked whole. */
export function resolveReconnectOptions(value: ReconnectOptions | boolean): Required<ReconnectOptions> {
  const o = value === true ? {} : validate.object<ReconnectOptions>('reconnect', value);
  const minDelay = validate.optionalInteger('reconnect.minDelay', o.minDelay, 1, 3_600_000) ?? 50;
  const maxDelay = Math.max(minDelay, validate.optionalInteger('reconnect.maxDelay', o.maxDelay, 1, 3_600_000) ?? 2000);
  const handshakeTimeout = validate.optionalInteger('reconnect.handshakeTimeout', o.handshakeTimeout, 1, validate.MAX_TIMEOUT) ?? HANDSHAKE_TIMEOUT;
  return { minDelay, maxDelay, handshakeTimeout };
}

type RawChannel = StreamSocketChannel<Uint8Array>;

interface Outstanding {
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** What bounds a send: its deadline (performance.now() ms) and its AbortSignal. */
interface SendWait {
  deadline?: number;
  timeout?: number;
  signal?: AbortSignal;
}

/** One connection speaking the protocol. */
class Link {
  readonly outstanding: Outstanding[] = [];
  #outHead = 0;
  /** DATA frames handed to the application and not yet acknowledged. */
  #toAck = 0;
  #ackScheduled = false;
  #helloSeen = false;
  #paused: (() => void) | null = null;
  dead: IpcError | null = null;
  #onHello: ((error?: IpcError) => void) | null = null;

  constructor(
    readonly raw: RawChannel,
    readonly onData: (link: Link, payload: Buffer) => void,
    readonly onDead: (link: Link, error: IpcError | null) => void,
    readonly onAck: () => void,
    readonly room: () => boolean,
  ) {}

  get unacked(): number {
    return this.outstanding.length - this.#outHead;
  }

  get helloSeen(): boolean {
    return this.#helloSeen;
  }

  /** Sends our HELLO and reads until the peer's HELLO (or `timeout`, or the link's death). */
  handshake(timeout: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#onHello = null;
        reject(new IpcError('ERR_IPCKIT_TIMEOUT', `no acknowledged-mode handshake from ${this.raw.remoteAddress ?? 'the peer'} within ${timeout} ms (does the server listen with { acknowledged: true }?)`));
      }, timeout);
      this.#onHello = (error) => {
        clearTimeout(timer);
        this.#onHello = null;
        if (error) reject(error);
        else resolve();
      };
      void this.raw.send(HELLO_FRAME).catch(() => {});
      this.pump();
    });
  }

  /**
   * Writes one DATA frame; resolves when the peer acknowledges it. A timeout or abort
   * (`wait`) ends the wait for the acknowledgement, the message being on its way: "maybe
   * delivered". Its place in the window stays until the acknowledgement or the link's end.
   */
  write(payload: Uint8Array, wait: SendWait = {}): Promise<void> {
    if (this.dead) return Promise.reject(this.dead);
    const frame = Buffer.allocUnsafe(payload.length + 1);
    frame[0] = DATA;
    frame.set(payload, 1);
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const { signal } = wait;
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        return true;
      };
      const onAbort = (): void => {
        if (settle()) {
          reject(new IpcError('ERR_IPCKIT_ABORTED', `send was aborted while waiting for the peer's acknowledgement; the message was written and may or may not have been delivered (it is not resent)`, { cause: signal!.reason, details: { maybeDelivered: true } }));
        }
      };
      this.outstanding.push({ resolve: () => settle() && resolve(), reject: (e) => settle() && reject(e) });
      if (wait.deadline !== undefined) {
        timer = setTimeout(() => {
          if (settle()) {
            reject(new IpcError('ERR_IPCKIT_TIMEOUT', `send timed out after ${wait.timeout} ms waiting for the peer's acknowledgement; the message was written and may or may not have been delivered (it is not resent)`, { details: { timeout: wait.timeout, maybeDelivered: true } }));
          }
        }, Math.max(0, wait.deadline - performance.now()));
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.raw.send(frame).catch((e: unknown) => this.kill(toIpcError(e, 'send')));
    });
  }

  /** The application took one of our DATA messages: acknowledge it (batched per turn). */
  delivered(): void {
    if (this.dead) return;
    this.#toAck++;
    if (this.#ackScheduled) return;
    this.#ackScheduled = true;
    setImmediate(() => {
      this.#ackScheduled = false;
      if (this.dead || this.#toAck === 0) return;
      const frame = Buffer.allocUnsafe(5);
      frame[0] = ACK;
      frame.writeUInt32LE(this.#toAck, 1);
      this.#toAck = 0;
      this.raw.send(frame).catch(() => {});
    });
  }

  /** Reads frames while there is room for them. */
  pump(): void {
    if (this.dead || this.#paused) return;
    void this.#loop();
  }

  resume(): void {
    const p = this.#paused;
    this.#paused = null;
    p?.();
  }

  async #loop(): Promise<void> {
    for (;;) {
      if (this.dead) return;
      if (!this.room()) {
        await new Promise<void>((resolve) => (this.#paused = resolve));
        continue;
      }
      let frames: Uint8Array[];
      try {
        frames = await this.raw.receiveMany(256);
      } catch (e) {
        this.kill(isIpcError(e, 'ERR_IPCKIT_CLOSED') ? null : toIpcError(e, 'receive'));
        return;
      }
      for (const f of frames) {
        if (!this.#frame(Buffer.from(f.buffer, f.byteOffset, f.length))) return;
      }
    }
  }

  /** Handles one frame; false when the link is dead. */
  #frame(f: Buffer): boolean {
    const type = f.length > 0 ? f[0] : -1;
    if (!this.#helloSeen) {
      if (type !== HELLO || f.subarray(1).toString() !== HELLO_TEXT) {
        this.kill(new IpcError('ERR_IPCKIT_BAD_FRAME', `the peer does not speak ipckit's acknowledged protocol (its first message is not the ${HELLO_TEXT} handshake)`));
        return false;
      }
      this.#helloSeen = true;
      this.#onHello?.();
      return true;
    }
    if (type === DATA) {
      this.onData(this, f.subarray(1));
      return true;
    }
    if (type === ACK && f.length === 5) {
      let n = f.readUInt32LE(1);
      if (n > this.unacked) {
        this.kill(new IpcError('ERR_IPCKIT_BAD_FRAME', `the peer acknowledged ${n} messages; only ${this.unacked} were outstanding`));
        return false;
      }
      while (n-- > 0) {
        const o = this.outstanding[this.#outHead]!;
        this.outstanding[this.#outHead++] = undefined as unknown as Outstanding;
        o.resolve();
      }
      if (this.#outHead === this.outstanding.length) {
        this.outstanding.length = 0;
        this.#outHead = 0;
      }
      this.onAck();
      return true;
    }
    this.kill(new IpcError('ERR_IPCKIT_BAD_FRAME', `unknown acknowledged-protocol frame type ${type}`));
    return false;
  }

  /** The connection is over: unacknowledged sends reject as "maybe delivered". */
  kill(error: IpcError | null): void {
    if (this.dead) return;
    const cause = error ?? new IpcError('ERR_IPCKIT_PEER_GONE', 'the connection closed');
    this.dead = cause;
    this.#onHello?.(cause);
    for (let i = this.#outHead; i < this.outstanding.length; i++) {
      this.outstanding[i]!.reject(
        new IpcError('ERR_IPCKIT_PEER_GONE', `the connection broke before the peer acknowledged this message; it may or may not have been delivered, and is not resent`, {
          cause,
          details: { maybeDelivered: true },
        }),
      );
    }
    this.outstanding.length = 0;
    this.#outHead = 0;
    this.resume();
    void this.raw.close({ timeout: 100 }).catch(() => {});
    this.onDead(this, error);
  }
}

interface IncomingEntry {
  payload: Buffer;
  link: Link;
}

function receiveIntoUnsupported(): IpcError {
  return new IpcError('ERR_IPCKIT_UNSUPPORTED', 'receiveInto is not offered on acknowledged (reconnecting) connections: use receive()');
}

/**
 * The part both ends share: a queue of received messages (acknowledged when taken) and
 * sends that wait for a link with room in its window.
 */
abstract class AckedEndpoint<T> implements Channel<T>, SocketInfo {
  protected readonly codec: Codec<T>;
  readonly maxMessageBytes: number;
  protected link: Link | null = null;
  #incoming: IncomingEntry[] = [];
  #incomingBytes = 0;
  #inHead = 0;
  #receivers = new WaitQueue<T>('receive');
  /** Sends not yet written (waiting for a connection or for room in the window). */
  #pending = new WaitQueue<void, { bytes: Uint8Array; wait: SendWait }>('send');
  #idleWaiters = new Set<() => void>();
  protected closed = false;
  protected failure: IpcError | null = null;
  #ended = false;

  protected constructor(options: SocketChannelOptions<CodecOption | undefined>) {
    this.codec = resolveCodec(options.codec) as Codec<T>;
    this.maxMessageBytes = validate.optionalInteger('maxMessageBytes', options.maxMessageBytes, 1) ?? DEFAULT_MAX_MESSAGE_BYTES;
  }

  abstract readonly kind: SocketKind;

  get peer(): PeerCredentials | undefined {
    return this.link?.raw.peer;
  }

  get remoteAddress(): string | undefined {
    return this.link?.raw.remoteAddress;
  }

  get localAddress(): string | undefined {
    return this.link?.raw.localAddress;
  }

  /** Resolves once the peer acknowledged the message (see the module comment). */
  send(message: T, options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    const bytes = this.#encode(message);
    if (this.closed) return Promise.reject(closedError('sender'));
    if (this.failure) return Promise.reject(this.failure);
    // The server's side of a connection that ended: no link will come to carry it.
    if (this.#ended) return Promise.reject(this.link?.dead ?? closedError('sender'));
    const timeout = options?.timeout;
    const signal = options?.signal;
    const wait: SendWait = { ...(timeout !== undefined ? { deadline: performance.now() + timeout, timeout } : {}), ...(signal ? { signal } : {}) };
    if (this.#pending.length === 0 && this.link && !this.link.dead && this.link.unacked < WINDOW) {
      if (signal?.aborted) return Promise.reject(abortedError('send', signal));
      return this.link.write(bytes, wait);
    }
    return this.#pending.enqueue(options, { bytes, wait });
  }

  /** Resolves once every message sent so far has been acknowledged or has failed. */
  flush(options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    if (this.failure) return Promise.reject(this.failure);
    if (this.#idle()) return RESOLVED;
    return cancellableWait<void>('flush', options, (resolve) => {
      const waiter = (): void => resolve();
      this.#idleWaiters.add(waiter);
      return () => this.#idleWaiters.delete(waiter);
    });
  }

  #idle(): boolean {
    return this.#pending.length === 0 && (this.link === null || this.link.dead !== null || this.link.unacked === 0);
  }

  /** Wakes flush() waiters once nothing is pending or unacknowledged. */
  protected notifyIdle(): void {
    if (this.#idleWaiters.size === 0 || !this.#idle()) return;
    const waiters = [...this.#idleWaiters];
    this.#idleWaiters.clear();
    for (const w of waiters) w();
  }

  receive(options?: WaitOptions): Promise<T> {
    validate.waitOptions(options); // before the fast path: a bad option throws even when a message is ready
    if (this.#inHead < this.#incoming.length) return this.#takeNow();
    if (this.closed) return Promise.reject(closedError('receiver'));
    if (this.failure) return Promise.reject(this.failure);
    if (this.#ended) return Promise.reject(closedError('receiver'));
    return this.#receivers.enqueue(options, undefined);
  }

  tryReceive(): T | undefined {
    if (this.#inHead < this.#incoming.length) return this.#deliverOne();
    if (this.closed || this.#ended) throw closedError('receiver');
    if (this.failure) throw this.failure;
    return undefined;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return receiverIterator(this);
  }

  /** Waits until everything sent was acknowledged, then half-closes the current connection. */
  end(options?: WaitOptions): Promise<void> {
    return this.flush(options).then(() => this.link?.raw.end(options));
  }

  /** Not on acknowledged connections: they queue a copy of every message for its acknowledgement anyway (use receive). */
  receiveInto(target: Uint8Array, options?: WaitOptions): Promise<number> {
    checkReceiveTarget(target);
    validate.waitOptions(options);
    return Promise.reject(receiveIntoUnsupported());
  }

  tryReceiveInto(target: Uint8Array): number | undefined {
    checkReceiveTarget(target);
    throw receiveIntoUnsupported();
  }

  /** Descriptors do not travel over acknowledged connections (the arguments are still checked, as everywhere). */
  sendHandle(handle: HandleSource | HandleSource[], message?: T, options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    checkHandles(handle, native.socketConstants.MAX_FDS_PER_MESSAGE);
    if (message !== undefined) this.#encode(message);
    return Promise.reject(new IpcError('ERR_IPCKIT_UNSUPPORTED', 'an acknowledged stream connection cannot carry descriptors: use a unix-seqpacket: or unix-dgram: socket'));
  }

  receiveHandle(options?: WaitOptions): Promise<never> {
    validate.waitOptions(options);
    return Promise.reject(new IpcError('ERR_IPCKIT_UNSUPPORTED', 'an acknowledged stream connection cannot carry descriptors'));
  }

  receiveWithHandles(options?: WaitOptions): Promise<never> {
    return this.receiveHandle(options);
  }

  /**
   * Waits (bounded by `timeout`/`signal`) until every written message is acknowledged,
   * then closes. Sends still waiting for a connection reject with ERR_IPCKIT_CLOSED, and
   * so do receives.
   */
  close(options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    return this.#close(options);
  }

  async #close(options: WaitOptions | undefined): Promise<void> {
    if (this.closed) return;
    this.#pending.rejectAll(() => closedError('sender'));
    this.notifyIdle();
    try {
      if (this.link && !this.link.dead && this.link.unacked > 0) await this.flush(options);
    } catch {
      /* unacknowledged sends reject as the link closes below */
    }
    this.closed = true;
    this.#receivers.rejectAll(() => closedError('receiver'));
    this.#incoming = [];
    this.#incomingBytes = 0;
    this.#inHead = 0;
    this.stop();
    const link = this.link;
    this.link = null;
    if (link && !link.dead) {
      await link.raw.flush({ timeout: 1000 }).catch(() => {});
      link.kill(closedError('channel'));
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- for subclasses ---

  protected abstract stop(): void;

  /**
   * False for a server's connection the application has not accepted yet: it is read up
   * to the handshake and no further, so a backlog of early connections holds no messages.
   */
  protected admitted = true;

  protected newLink(raw: RawChannel): Link {
    const link: Link = new Link(
      raw,
      (link, payload) => this.#onData(link, payload),
      (link, error) => {
        this.onLinkDead(link, error);
        this.notifyIdle();
      },
      () => this.drainPending(),
      () =>
        (this.admitted || !link.helloSeen) &&
        (this.#inHead >= this.#incoming.length || (this.#incoming.length - this.#inHead < INCOMING_LIMIT && this.#incomingBytes < INCOMING_BYTES_LIMIT)),
    );
    return link;
  }

  protected abstract onLinkDead(link: Link, error: IpcError | null): void;

  /** Writes waiting sends while the current link has room in its window. */
  protected drainPending(): void {
    const link = this.link;
    while (link && !link.dead && link.unacked < WINDOW) {
      if (this.#pending.peek() === undefined) break;
      const w = this.#pending.take()!;
      link.write(w.data.bytes, w.data.wait).then(w.resolve, w.reject);
    }
    this.notifyIdle();
  }

  /** No more messages will come (the server side's connection ended). */
  protected endIncoming(error: IpcError | null): void {
    this.#ended = true;
    if (error) this.failure = error;
    this.#pending.rejectAll(() => error ?? closedError('sender'));
    if (this.#inHead >= this.#incoming.length) this.#receivers.rejectAll(() => error ?? closedError('receiver'));
  }

  /** Fails everything (a reconnecting client that can no longer connect). */
  protected fail(error: IpcError): void {
    this.failure = error;
    this.#pending.rejectAll(error);
    if (this.#inHead >= this.#incoming.length) this.#receivers.rejectAll(error);
  }

  // --- internals ---

  #encode(message: T): Uint8Array {
    const bytes = encodeWith(this.codec, message);
    if (bytes.length > this.maxMessageBytes) throw frameTooLarge(bytes.length, this.maxMessageBytes, 'send');
    return bytes;
  }

  #onData(link: Link, payload: Buffer): void {
    this.#incoming.push({ payload: Buffer.from(payload), link });
    this.#incomingBytes += payload.length;
    while (this.#receivers.length > 0 && this.#inHead < this.#incoming.length) {
      const w = this.#receivers.take()!;
      try {
        w.resolve(this.#deliverOne());
      } catch (e) {
        w.reject(e);
      }
    }
  }

  #deliverOne(): T {
    const e = this.#incoming[this.#inHead]!;
    this.#incoming[this.#inHead++] = undefined as unknown as IncomingEntry;
    this.#incomingBytes -= e.payload.length;
    if (this.#inHead === this.#incoming.length) {
      this.#incoming = [];
      this.#inHead = 0;
    }
    e.link.delivered();
    e.link.resume();
    if (this.#ended && this.#inHead >= this.#incoming.length) queueMicrotask(() => this.#receivers.rejectAll(() => this.failure ?? closedError('receiver')));
    return decodeWith(this.codec, e.payload);
  }

  #takeNow(): Promise<T> {
    try {
      return Promise.resolve(this.#deliverOne());
    } catch (e) {
      return Promise.reject(e);
    }
  }
}

/** The server's side of one acknowledged connection. */
export class AckedChannel<T> extends AckedEndpoint<T> {
  readonly kind: SocketKind;

  /** @internal */
  constructor(raw: RawChannel, options: SocketChannelOptions<CodecOption | undefined>, _role: 'server') {
    super(options);
    this.admitted = false;
    this.kind = raw.kind;
    const link = this.newLink(raw);
    this.link = link;
    // A client that never says HELLO is not one of ours: drop it rather than hold it open.
    link.handshake(HANDSHAKE_TIMEOUT).catch((e: unknown) => link.kill(toIpcError(e, 'handshake')));
  }

  /** @internal The server hands this connection to the application: read its messages now. */
  admit(): void {
    if (this.admitted) return;
    this.admitted = true;
    this.link?.resume();
  }

  protected stop(): void {}

  protected onLinkDead(_link: Link, error: IpcError | null): void {
    this.endIncoming(error && !isIpcError(error, 'ERR_IPCKIT_CLOSED') ? error : null);
  }
}

/** A client that reconnects with randomised backoff and delivers with acknowledgements. */
export class ReconnectingChannel<T> extends AckedEndpoint<T> {
  readonly kind: SocketKind;
  readonly #dial: (wait: WaitOptions) => Promise<unknown>;
  readonly #minDelay: number;
  readonly #maxDelay: number;
  readonly #handshakeTimeout: number;
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  #connecting = false;
  #connections = 0;
  #dialAbort: AbortController | null = null;

  /** @internal */
  constructor(dial: (wait: WaitOptions) => Promise<unknown>, options: SocketChannelOptions<CodecOption | undefined>, reconnect: ReconnectOptions | boolean, readonly address: string) {
    super(options);
    this.kind = address.startsWith('tcp:') ? 'tcp' : address.startsWith('unix-abstract:') ? 'unix-abstract' : 'unix';
    this.#dial = dial;
    const r = resolveReconnectOptions(reconnect);
    this.#minDelay = r.minDelay;
    this.#maxDelay = r.maxDelay;
    this.#handshakeTimeout = r.handshakeTimeout;
  }

  /** Whether a connection is up now. */
  get connected(): boolean {
    return this.link !== null && !this.link.dead;
  }

  /** Connections made so far (1 after the first). */
  get connections(): number {
    return this.#connections;
  }

  /** @internal First connection: retries until `timeout`; only a non-retriable error rejects early. */
  async start(wait: WaitOptions): Promise<void> {
    const deadline = wait.timeout === undefined ? undefined : Date.now() + wait.timeout;
    for (;;) {
      try {
        await this.#connectOnce(deadline, wait.signal);
        return;
      } catch (e) {
        const err = toIpcError(e, `connect to ${this.address}`);
        if (!retriable(err)) {
          this.closed = true;
          throw err;
        }
        const delay = this.#nextDelay();
        if (deadline !== undefined && Date.now() + delay >= deadline) {
          // No time for another attempt: end exactly at the deadline, with the last error as cause.
          await sleep(Math.max(0, deadline - Date.now()), wait.signal);
          this.closed = true;
          throw new IpcError('ERR_IPCKIT_TIMEOUT', `connect to ${this.address} timed out after ${wait.timeout} ms (last error: ${err.message})`, { cause: err, details: { timeout: wait.timeout } });
        }
        await sleep(delay, wait.signal);
      }
    }
  }

  protected stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#dialAbort?.abort();
  }

  protected onLinkDead(link: Link, _error: IpcError | null): void {
    if (link !== this.link || this.closed) return;
    this.link = null;
    this.#schedule();
  }

  async #connectOnce(deadline: number | undefined, signal: AbortSignal | undefined): Promise<void> {
    const ac = new AbortController();
    this.#dialAbort = ac;
    const onAbort = (): void => ac.abort(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const left = deadline === undefined ? undefined : Math.max(1, deadline - Date.now());
      const raw = (await this.#dial({ signal: ac.signal, ...(left !== undefined ? { timeout: left } : {}) })) as RawChannel;
      if (this.closed) {
        await raw.close().catch(() => {});
        throw closedError('channel');
      }
      const link = this.newLink(raw);
      try {
        await link.handshake(Math.min(this.#handshakeTimeout, left ?? Infinity));
      } catch (e) {
        link.kill(toIpcError(e, 'handshake'));
        throw e;
      }
      if (this.closed) {
        link.kill(closedError('channel'));
        throw closedError('channel');
      }
      this.link = link;
      this.#attempt = 0;
      this.#connections++;
      this.drainPending();
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (this.#dialAbort === ac) this.#dialAbort = null;
    }
  }

  #nextDelay(): number {
    const base = Math.min(this.#maxDelay, this.#minDelay * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return Math.round(base / 2 + (Math.random() * base) / 2);
  }

  #schedule(): void {
    if (this.closed || this.#connecting || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#connecting = true;
      this.#connectOnce(undefined, undefined).then(
        () => {
          this.#connecting = false;
        },
        (e: unknown) => {
          this.#connecting = false;
          if (this.closed) return;
          const err = toIpcError(e, `reconnect to ${this.address}`);
          if (!retriable(err)) this.fail(err);
          else this.#schedule();
        },
      );
    }, this.#nextDelay());
  }
}

/** Errors worth another attempt: the server is restarting, busy or slow. */
function retriable(e: IpcError): boolean {
  return !['ERR_IPCKIT_PERMISSION', 'ERR_IPCKIT_INVALID_ARGUMENT', 'ERR_IPCKIT_UNSUPPORTED', 'ERR_IPCKIT_ABORTED', 'ERR_IPCKIT_CLOSED'].includes(e.code);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new IpcError('ERR_IPCKIT_ABORTED', 'connect was aborted', { cause: signal.reason }));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(new IpcError('ERR_IPCKIT_ABORTED', 'connect was aborted', { cause: signal!.reason }));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
