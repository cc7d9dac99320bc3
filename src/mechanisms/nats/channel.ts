/**
 * ipckit's Channel contract over core NATS: a sender publishes to a subject, a receiver
 * subscribes to one (in a queue group to share the messages with other receivers), a
 * requester is a Channel whose replies come back to its own inbox, a responder answers
 * requests.
 *
 * What core NATS does not give, added here:
 * - Backpressure: `send` waits while the connection's bytes not yet written to the socket
 *   are above `maxPendingBytes` (also while the connection is down), instead of letting a
 *   fast publisher buffer without bound.
 * - No silent loss in a slow receiver: NATS pushes messages as they come; a receiver
 *   holds at most `maxPending` messages (`maxPendingBytes` bytes) that were not received
 *   yet. Past that, messages are dropped and the receiver says so at that point of the
 *   stream: `receive` rejects once with ERR_IPCKIT_SLOW_CONSUMER (`details.dropped`), then
 *   goes on with the messages that came after.
 *
 * Core NATS itself is at most once: a message published while no receiver is subscribed,
 * or while a connection is down, is gone (docs/nats.md says exactly what holds).
 */
import { RESOLVED, WaitQueue, receiverIterator, type Channel, type Receiver, type Sender, type WaitOptions } from '../../core/channel.js';
import { decodeWith, encodeWith, jsonCodec, resolveCodec, structuredCodec, utf8Codec, type Codec, type CodecOption, type MessageOf } from '../../core/codec.js';
import { closedError, invalidArgument, IpcError } from '../../core/errors.js';
import * as validate from '../../core/validate.js';
import type { Msg, Subscription } from '@nats-io/transport-node';
import { connectNats, loadNats, natsError, subject as checkSubject, type ConnectionUser, type NatsClient, type NatsConnectOptions } from './connection.js';

export interface NatsEndpointOptions<C extends CodecOption | undefined = undefined> {
  codec?: C;
}

export interface NatsReceiverOptions<C extends CodecOption | undefined = undefined> extends NatsEndpointOptions<C> {
  /** Queue group: each message goes to one receiver of the group (NATS load balancing). */
  queue?: string;
  /** Messages held for `receive` before new ones are dropped and reported (default 65536). */
  maxPending?: number;
  /** Bytes held for `receive` before new messages are dropped and reported (default 64 MiB). */
  maxPendingBytes?: number;
}

const DEFAULT_MAX_PENDING = 65536;
const DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024;

/**
 * The bytes to publish: a copy, because the client keeps a reference until it writes
 * (on a later microtask) and the caller may reuse its buffer once `send` resolved.
 */
function payload<T>(codec: Codec<T>, message: T): Uint8Array {
  const bytes = encodeWith(codec, message);
  // The built-in text codecs make a new buffer each time; bytes and user codecs may not.
  const fresh = codec === (utf8Codec as Codec<unknown>) || codec === (jsonCodec as Codec<unknown>) || codec === (structuredCodec as Codec<unknown>);
  return fresh ? bytes : bytes.slice();
}

/** Payload size against the server's max_payload, when known: synchronously, as bad input. */
function checkSize(client: NatsClient, bytes: Uint8Array, subject: string): void {
  const max = client.maxPayload;
  if (max !== undefined && bytes.length > max) throw tooLarge(bytes.length, max, subject);
}

function tooLarge(length: number, max: number, subject: string): IpcError {
  return new IpcError('ERR_IPCKIT_FRAME_TOO_LARGE', `a message of ${length} bytes is larger than the server's max_payload (${max} bytes) on ${subject}`, {
    details: { length, maxMessageBytes: max },
  });
}

interface Outgoing {
  subject: string;
  bytes: Uint8Array;
  reply: string | undefined;
}

/**
 * Publishing with backpressure, shared by every endpoint that publishes: messages go to
 * the client while its pending bytes are under the limit, in order; past it, `send`
 * waits in a FIFO until the socket drains.
 */
class Publisher {
  readonly #client: NatsClient;
  readonly #what: string;
  readonly #waiting: WaitQueue<void, Outgoing>;
  #pumping = false;
  #closed: IpcError | undefined;

  constructor(client: NatsClient, what: string) {
    this.#client = client;
    this.#what = what;
    this.#waiting = new WaitQueue(what);
  }

  /** Publishes now if it can (nothing waiting, connected, room); false otherwise. */
  tryPublish(out: Outgoing): boolean {
    if (this.#closed || this.#waiting.length > 0) return false;
    const nc = this.#client.current;
    if (!nc || !this.#client.hasRoom(out.bytes.length)) return false;
    try {
      nc.publish(out.subject, out.bytes, out.reply === undefined ? undefined : { reply: out.reply });
    } catch (e) {
      throw natsError(e, this.#what);
    }
    return true;
  }

  publish(out: Outgoing, options: WaitOptions | undefined): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (this.tryPublish(out)) return RESOLVED;
    const p = this.#waiting.enqueue(options, out);
    void this.#pump();
    return p;
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      for (;;) {
        const head = this.#waiting.peek();
        if (head === undefined) return;
        if (this.#closed) {
          this.#waiting.rejectAll(this.#closed);
          return;
        }
        let nc;
        try {
          nc = await this.#client.connection();
        } catch (e) {
          this.#waiting.rejectAll(e);
          return;
        }
        if (this.#waiting.peek() !== head) continue; // it timed out meanwhile
        const max = this.#client.maxPayload;
        if (max !== undefined && head.bytes.length > max) {
          this.#waiting.rejectNext(tooLarge(head.bytes.length, max, head.subject));
          continue;
        }
        if (!this.#client.hasRoom(head.bytes.length)) {
          await this.#client.waitForRoom();
          continue;
        }
        const w = this.#waiting.take()!;
        try {
          nc.publish(head.subject, head.bytes, head.reply === undefined ? undefined : { reply: head.reply });
          w.resolve();
        } catch (e) {
          w.reject(natsError(e, this.#what));
        }
      }
    } finally {
      this.#pumping = false;
    }
  }

  close(error: IpcError): void {
    this.#closed ??= error;
    this.#waiting.rejectAll(error);
  }
}

/** A gap in a receiver's stream: messages dropped because it fell behind. */
class Gap {
  dropped = 1;
}

/**
 * The messages a subscription delivered and nobody received yet, bounded; past the
 * bound, a Gap records how many were dropped at that point of the stream.
 */
class Inbox<T> {
  #items: Array<Msg | Gap> = [];
  #head = 0;
  #bytes = 0;
  #droppedTotal = 0;
  #ended: IpcError | undefined;
  readonly #waiters: WaitQueue<T>;

  constructor(
    readonly what: string,
    readonly maxPending: number,
    readonly maxPendingBytes: number,
    /** Turns a message into what `receive` gives (decoding); may throw for that message. */
    readonly open: (msg: Msg) => T,
  ) {
    this.#waiters = new WaitQueue(what);
  }

  get pending(): number {
    return this.#items.length - this.#head;
  }

  get dropped(): number {
    return this.#droppedTotal;
  }

  push(msg: Msg): void {
    if (this.#ended) return;
    if (this.pending === 0 && this.#waiters.length > 0) {
      const w = this.#waiters.take()!;
      this.#settle(msg, w.resolve, w.reject);
      return;
    }
    if (this.pending >= this.maxPending || this.#bytes + msg.data.length > this.maxPendingBytes) {
      this.#droppedTotal++;
      const last = this.#items[this.#items.length - 1];
      if (this.pending > 0 && last instanceof Gap) last.dropped++;
      else this.#items.push(new Gap());
      return;
    }
    this.#items.push(msg);
    this.#bytes += msg.data.length;
  }

  #settle(item: Msg | Gap, resolve: (v: T) => void, reject: (e: unknown) => void): void {
    if (item instanceof Gap) {
      reject(this.#gapError(item));
      return;
    }
    let value: T;
    try {
      value = this.open(item);
    } catch (e) {
      reject(e);
      return;
    }
    resolve(value);
  }

  #gapError(gap: Gap): IpcError {
    return new IpcError(
      'ERR_IPCKIT_SLOW_CONSUMER',
      `${this.what} fell behind: ${gap.dropped} message${gap.dropped === 1 ? ' was' : 's were'} dropped here because ${this.maxPending} messages or ${this.maxPendingBytes} bytes were already waiting to be received`,
      { details: { dropped: gap.dropped, maxPending: this.maxPending, maxPendingBytes: this.maxPendingBytes }, remedy: { options: [{ maxPending: undefined }, { maxPendingBytes: undefined }], when: 'to hold more, or receive faster (more receivers in a queue group)' } },
    );
  }

  #shift(): Msg | Gap | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head]!;
    this.#items[this.#head++] = undefined as unknown as Msg;
    if (!(item instanceof Gap)) this.#bytes -= item.data.length;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head > 4096 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  receive(options: WaitOptions | undefined): Promise<T> {
    const item = this.#shift();
    if (item !== undefined) return new Promise<T>((resolve, reject) => this.#settle(item, resolve, reject));
    if (this.#ended) return Promise.reject(this.#ended);
    return this.#waiters.enqueue(options, undefined);
  }

  tryReceive(): T | undefined {
    const item = this.#shift();
    if (item === undefined) {
      if (this.#ended && this.#ended.code !== 'ERR_IPCKIT_CLOSED') throw this.#ended;
      return undefined;
    }
    if (item instanceof Gap) throw this.#gapError(item);
    return this.open(item);
  }

  /** No more messages will come: pending receives reject now, later ones once the buffer is empty. */
  end(error: IpcError, { discard = false } = {}): void {
    this.#ended ??= error;
    if (discard) {
      this.#items = [];
      this.#head = 0;
      this.#bytes = 0;
    }
    this.#waiters.rejectAll(error);
  }
}

/** Subscribes once the connection is up; the subscription is resent by the client after each reconnect. */
async function subscribe(client: NatsClient, subject: string, queue: string | undefined, onMessage: (msg: Msg) => void): Promise<Subscription> {
  const nc = await client.connection();
  let sub: Subscription;
  try {
    sub = nc.subscribe(subject, {
      ...(queue !== undefined ? { queue } : {}),
      callback: (err, msg) => {
        if (!err) onMessage(msg);
      },
    });
  } catch (e) {
    throw natsError(e, `subscribing to ${subject}`);
  }
  // One round trip: the server has the subscription before we say we are ready.
  try {
    await nc.flush();
  } catch (e) {
    throw natsError(e, `subscribing to ${subject}`);
  }
  return sub;
}

/** Shared by the endpoints: the client, whether we own it, the end of the connection. */
abstract class Endpoint implements ConnectionUser {
  readonly client: NatsClient;
  readonly #ownsClient: boolean;
  readonly #unuse: () => void;
  #closing: Promise<void> | undefined;
  protected closedBy: IpcError | undefined;

  constructor(client: NatsClient, ownsClient: boolean) {
    this.client = client;
    this.#ownsClient = ownsClient;
    this.#unuse = client.use(this);
  }

  get closed(): boolean {
    return this.closedBy !== undefined;
  }

  abstract connectionClosed(error: IpcError): void;

  /** Endpoint-specific release (unsubscribe, flush); runs once. */
  protected abstract release(): Promise<void>;

  close(): Promise<void> {
    this.#closing ??= (async () => {
      let failure: unknown;
      try {
        await this.release();
      } catch (e) {
        failure = e;
      }
      this.#unuse();
      if (this.#ownsClient) {
        try {
          await this.client.close();
        } catch (e) {
          failure ??= e;
        }
      }
      if (failure !== undefined) throw failure;
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Publishes each message to one subject. */
export class NatsSender<T = Uint8Array> extends Endpoint implements Sender<T> {
  readonly subject: string;
  readonly #codec: Codec<T>;
  readonly #publisher: Publisher;

  constructor(client: NatsClient, subject: string, codec: Codec<T>, ownsClient: boolean) {
    super(client, ownsClient);
    this.subject = subject;
    this.#codec = codec;
    this.#publisher = new Publisher(client, `sending on NATS subject ${subject}`);
  }

  #encode(message: T): Uint8Array {
    const bytes = payload(this.#codec, message);
    checkSize(this.client, bytes, this.subject);
    return bytes;
  }

  /** Resolves once the client took the message (waits while `maxPendingBytes` are unwritten). */
  send(message: T, options?: WaitOptions): Promise<void> {
    const bytes = this.#encode(message);
    if (options !== undefined) checkWait(options);
    if (this.closedBy) return Promise.reject(this.closedBy);
    return this.#publisher.publish({ subject: this.subject, bytes, reply: undefined }, options);
  }

  trySend(message: T): boolean {
    const bytes = this.#encode(message);
    if (this.closedBy) throw this.closedBy;
    return this.#publisher.tryPublish({ subject: this.subject, bytes, reply: undefined });
  }

  /** Sends in order; on failure `details.sent` says how many went. */
  sendMany(messages: Iterable<T>, options?: WaitOptions): Promise<void> {
    const all = [...checkIterable('messages', messages)].map((m) => this.#encode(m));
    if (options !== undefined) checkWait(options);
    return this.#sendAll(all, options);
  }

  async #sendAll(all: Uint8Array[], options: WaitOptions | undefined): Promise<void> {
    const deadline = options?.timeout === undefined ? undefined : performance.now() + options.timeout;
    let sent = 0;
    try {
      for (const bytes of all) {
        const p = this.#publisher.publish({ subject: this.subject, bytes, reply: undefined }, remaining(options, deadline));
        if (p !== RESOLVED) await p;
        sent++;
      }
    } catch (e) {
      throw e instanceof IpcError ? e.amend({ details: { sent } }) : e;
    }
  }

  /** Resolves once every message sent so far has reached the server (one round trip). */
  flush(options?: WaitOptions): Promise<void> {
    if (options !== undefined) checkWait(options);
    if (this.closedBy) return Promise.reject(this.closedBy);
    return this.client.flush(options);
  }

  connectionClosed(error: IpcError): void {
    this.closedBy ??= error;
    this.#publisher.close(error);
  }

  protected async release(): Promise<void> {
    const wasClosed = this.closedBy;
    this.closedBy ??= closedError(`NATS sender on ${this.subject}`);
    this.#publisher.close(this.closedBy);
    // What was accepted must reach the server, or close() says it did not.
    if (!wasClosed && this.client.current) {
      try {
        await this.client.flush();
      } catch (e) {
        throw natsError(e, `closing the sender on ${this.subject}: sent messages may not have reached the server`).amend({ code: 'ERR_IPCKIT_PEER_GONE' });
      }
    }
  }
}

/** Subscribes to a subject and keeps what arrives in a bounded inbox (receivers and responders). */
abstract class Subscriber<I> extends Endpoint {
  readonly subject: string;
  readonly queue: string | undefined;
  protected readonly inbox: Inbox<I>;
  readonly #subscribed: Promise<Subscription>;

  constructor(client: NatsClient, kind: string, subject: string, open: (msg: Msg) => I, options: { queue?: string | undefined; maxPending: number; maxPendingBytes: number }, ownsClient: boolean) {
    super(client, ownsClient);
    this.subject = subject;
    this.queue = options.queue;
    this.inbox = new Inbox<I>(`NATS ${kind} on ${subject}${options.queue ? ` (queue ${options.queue})` : ''}`, options.maxPending, options.maxPendingBytes, open);
    this.#subscribed = subscribe(client, subject, options.queue, (msg) => this.inbox.push(msg));
    this.#subscribed.catch((e: unknown) => this.inbox.end(natsError(e, `subscribing to ${subject}`)));
  }

  /** Resolves once the server has our subscription: messages published after it are ours. */
  ready(options?: WaitOptions): Promise<void> {
    if (options !== undefined) checkWait(options);
    return this.client.ready(options).then(() => this.#subscribed).then(() => undefined);
  }

  /** Messages waiting to be received, and messages dropped since the start because the receiver fell behind. */
  stats(): { pending: number; dropped: number } {
    return { pending: this.inbox.pending, dropped: this.inbox.dropped };
  }

  connectionClosed(error: IpcError): void {
    this.closedBy ??= error;
    // Lost connection: what arrived is still delivered, then the loss is reported.
    this.inbox.end(error, { discard: error.code === 'ERR_IPCKIT_CLOSED' });
  }

  protected async release(): Promise<void> {
    this.closedBy ??= closedError(this.inbox.what);
    this.inbox.end(this.closedBy, { discard: true });
    try {
      const sub = await this.#subscribed;
      if (!sub.isClosed()) sub.unsubscribe();
    } catch {
      /* never subscribed: nothing to undo */
    }
  }
}

/** Receives the messages published to a subject (wildcards allowed), optionally in a queue group. */
export class NatsReceiver<T = Uint8Array> extends Subscriber<T> implements Receiver<T> {
  constructor(client: NatsClient, subject: string, codec: Codec<T>, options: { queue?: string | undefined; maxPending: number; maxPendingBytes: number }, ownsClient: boolean) {
    super(client, 'receiver', subject, (msg) => decodeWith(codec, msg.data), options, ownsClient);
  }

  receive(options?: WaitOptions): Promise<T> {
    if (options !== undefined) checkWait(options);
    return this.inbox.receive(options);
  }

  tryReceive(): T | undefined {
    return this.inbox.tryReceive();
  }

  /** Up to `max` messages: waits for one, then takes what is there now. */
  receiveMany(max = 1024, options?: WaitOptions): Promise<T[]> {
    validate.integer('max', max, 1);
    if (options !== undefined) checkWait(options);
    return this.inbox.receive(options).then((first) => {
      const out: T[] = [first];
      while (out.length < max && this.inbox.pending > 0) {
        const m = this.inbox.tryReceive();
        if (m === undefined) break;
        out.push(m);
      }
      return out;
    });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return receiverIterator(this);
  }
}

/** A request received by a responder: its data, and how to answer it. */
export interface NatsRequest<T> {
  readonly data: T;
  /** The inbox the requester waits on (undefined: the sender wants no answer). */
  readonly replySubject: string | undefined;
  /** Answers this request (backpressure as `send`). */
  respond(message: T, options?: WaitOptions): Promise<void>;
}

interface Incoming<T> {
  data: T;
  reply: string | undefined;
}

/**
 * Answers requests on a subject (in a queue group to share them). As a Channel:
 * `receive` gives the next request's data and `send` answers the oldest request received
 * and not yet answered, so an echo is `for await (const m of responder) await responder.send(m)`.
 * `receiveRequest` gives requests to answer in any order.
 */
export class NatsResponder<T = Uint8Array> extends Subscriber<Incoming<T>> implements Channel<T> {
  readonly #codec: Codec<T>;
  readonly #publisher: Publisher;
  /** Reply subjects of requests handed out by `receive`, oldest first. */
  #unanswered: Array<string | undefined> = [];

  constructor(client: NatsClient, subject: string, codec: Codec<T>, options: { queue?: string | undefined; maxPending: number; maxPendingBytes: number }, ownsClient: boolean) {
    super(client, 'responder', subject, (msg) => ({ data: decodeWith(codec, msg.data), reply: msg.reply }), options, ownsClient);
    this.#codec = codec;
    this.#publisher = new Publisher(client, `answering requests on NATS subject ${subject}`);
  }

  #request(r: Incoming<T>): NatsRequest<T> {
    return {
      data: r.data,
      replySubject: r.reply,
      respond: (message: T, options?: WaitOptions) => {
        if (r.reply === undefined) throw invalidArgument(`this request on ${this.subject} has no reply subject: its sender wants no answer`);
        return this.#answer(r.reply, message, options);
      },
    };
  }

  #answer(reply: string, message: T, options: WaitOptions | undefined): Promise<void> {
    const bytes = payload(this.#codec, message);
    checkSize(this.client, bytes, reply);
    if (options !== undefined) checkWait(options);
    if (this.closedBy) return Promise.reject(this.closedBy);
    return this.#publisher.publish({ subject: reply, bytes, reply: undefined }, options);
  }

  /** The next request, with its own `respond`. */
  receiveRequest(options?: WaitOptions): Promise<NatsRequest<T>> {
    if (options !== undefined) checkWait(options);
    return this.inbox.receive(options).then((r) => this.#request(r));
  }

  /** The next request's data; `send` answers it. */
  receive(options?: WaitOptions): Promise<T> {
    if (options !== undefined) checkWait(options);
    return this.inbox.receive(options).then((r) => {
      this.#unanswered.push(r.reply);
      return r.data;
    });
  }

  tryReceive(): T | undefined {
    const r = this.inbox.tryReceive();
    if (r === undefined) return undefined;
    this.#unanswered.push(r.reply);
    return r.data;
  }

  /** Answers the oldest request that `receive` gave and that was not answered yet. */
  send(message: T, options?: WaitOptions): Promise<void> {
    if (this.#unanswered.length === 0) throw invalidArgument(`nothing to answer on ${this.subject}: send() answers the oldest request receive() gave, and every one was answered`);
    const reply = this.#unanswered[0];
    if (reply === undefined) {
      this.#unanswered.shift();
      throw invalidArgument(`the oldest request on ${this.subject} has no reply subject: its sender wants no answer`);
    }
    const p = this.#answer(reply, message, options);
    this.#unanswered.shift();
    return p;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return receiverIterator(this);
  }

  override connectionClosed(error: IpcError): void {
    super.connectionClosed(error);
    this.#publisher.close(error);
  }

  protected override async release(): Promise<void> {
    await super.release();
    this.#publisher.close(this.closedBy!);
  }
}

/**
 * Sends requests to a subject and receives the answers, as a Channel: `send` publishes a
 * request whose reply subject is this requester's inbox, `receive` gives the answers in
 * the order they arrive. `request(message)` sends one and waits for its own answer.
 * A request that no responder is subscribed to is ERR_IPCKIT_NOT_FOUND (the server says so).
 */
export class NatsRequester<T = Uint8Array> extends Endpoint implements Channel<T> {
  readonly subject: string;
  readonly #codec: Codec<T>;
  readonly #publisher: Publisher;
  readonly #inbox: Inbox<T>;
  #prefix: string | undefined;
  readonly #subscribed: Promise<Subscription>;
  #next = 0;
  readonly #requests = new Map<string, { resolve: (v: T) => void; reject: (e: unknown) => void }>();

  constructor(client: NatsClient, subject: string, codec: Codec<T>, options: { maxPending: number; maxPendingBytes: number }, ownsClient: boolean) {
    super(client, ownsClient);
    this.subject = subject;
    this.#codec = codec;
    this.#publisher = new Publisher(client, `sending requests on NATS subject ${subject}`);
    this.#inbox = new Inbox<T>(`NATS requester on ${subject}`, options.maxPending, options.maxPendingBytes, (msg) => {
      if (isNoResponders(msg)) throw noResponders(subject);
      return decodeWith(codec, msg.data);
    });
    this.#subscribed = (async () => {
      const nats = await loadNats();
      this.#prefix = nats.createInbox();
      return subscribe(client, `${this.#prefix}.*`, undefined, (msg) => this.#onReply(msg));
    })();
    this.#subscribed.catch((e: unknown) => {
      const err = natsError(e, `subscribing to the reply inbox for ${subject}`);
      this.#inbox.end(err);
      for (const r of this.#requests.values()) r.reject(err);
      this.#requests.clear();
    });
  }

  #onReply(msg: Msg): void {
    const token = msg.subject.slice(msg.subject.lastIndexOf('.') + 1);
    if (token === 'c') {
      this.#inbox.push(msg);
      return;
    }
    const r = this.#requests.get(token);
    if (!r) return; // an answer to a request that timed out
    this.#requests.delete(token);
    if (isNoResponders(msg)) r.reject(noResponders(this.subject));
    else {
      try {
        r.resolve(decodeWith(this.#codec, msg.data));
      } catch (e) {
        r.reject(e);
      }
    }
  }

  ready(options?: WaitOptions): Promise<void> {
    if (options !== undefined) checkWait(options);
    return this.client.ready(options).then(() => this.#subscribed).then(() => undefined);
  }

  #encode(message: T): Uint8Array {
    const bytes = payload(this.#codec, message);
    checkSize(this.client, bytes, this.subject);
    return bytes;
  }

  /** Publishes a request; its answer comes to `receive`. */
  send(message: T, options?: WaitOptions): Promise<void> {
    const bytes = this.#encode(message);
    if (options !== undefined) checkWait(options);
    if (this.closedBy) return Promise.reject(this.closedBy);
    if (this.#prefix !== undefined) return this.#publisher.publish({ subject: this.subject, bytes, reply: `${this.#prefix}.c` }, options);
    return this.#subscribed.then(() => this.#publisher.publish({ subject: this.subject, bytes, reply: `${this.#prefix}.c` }, options));
  }

  receive(options?: WaitOptions): Promise<T> {
    if (options !== undefined) checkWait(options);
    return this.#inbox.receive(options);
  }

  tryReceive(): T | undefined {
    return this.#inbox.tryReceive();
  }

  /** Sends one request and resolves with its own answer (`timeout` bounds the whole exchange). */
  request(message: T, options?: WaitOptions): Promise<T> {
    const bytes = this.#encode(message);
    const ms = validate.timeout(options?.timeout);
    const signal = validate.abortSignal(options?.signal);
    if (this.closedBy) return Promise.reject(this.closedBy);
    const what = `request on ${this.subject}`;
    return new Promise<T>((resolve, reject) => {
      const token = String(++this.#next);
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => finish(() => reject(new IpcError('ERR_IPCKIT_ABORTED', `${what} was aborted`, { cause: signal!.reason })));
      const finish = (settle: () => void): void => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#requests.delete(token);
        settle();
      };
      if (signal?.aborted) return onAbort();
      this.#requests.set(token, { resolve: (v) => finish(() => resolve(v)), reject: (e) => finish(() => reject(e)) });
      if (ms !== undefined) timer = setTimeout(() => finish(() => reject(new IpcError('ERR_IPCKIT_TIMEOUT', `${what} timed out after ${Math.round(ms)} ms with no answer`, { details: { timeout: ms } }))), ms);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#subscribed
        .then(() => this.#publisher.publish({ subject: this.subject, bytes, reply: `${this.#prefix}.${token}` }, undefined))
        .catch((e: unknown) => this.#requests.get(token)?.reject(e));
    });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return receiverIterator(this);
  }

  connectionClosed(error: IpcError): void {
    this.closedBy ??= error;
    this.#publisher.close(error);
    this.#inbox.end(error, { discard: error.code === 'ERR_IPCKIT_CLOSED' });
    for (const r of [...this.#requests.values()]) r.reject(error);
  }

  protected async release(): Promise<void> {
    this.closedBy ??= closedError(`NATS requester on ${this.subject}`);
    this.connectionClosed(this.closedBy);
    try {
      const sub = await this.#subscribed;
      if (!sub.isClosed()) sub.unsubscribe();
    } catch {
      /* never subscribed */
    }
  }
}

function isNoResponders(msg: Msg): boolean {
  return msg.data.length === 0 && msg.headers?.code === 503;
}

function noResponders(subject: string): IpcError {
  return new IpcError('ERR_IPCKIT_NOT_FOUND', `no responder is subscribed to NATS subject ${subject}`);
}

function checkWait(options: WaitOptions): void {
  validate.object('options', options);
  validate.timeout(options.timeout);
  validate.abortSignal(options.signal);
}

function checkIterable<T>(name: string, value: Iterable<T>): Iterable<T> {
  if (value === null || typeof value !== 'object' || typeof (value as Iterable<T>)[Symbol.iterator] !== 'function') {
    throw invalidArgument(`${name} must be an iterable, got ${validate.describe(value)}`);
  }
  return value;
}

function remaining(options: WaitOptions | undefined, deadline: number | undefined): WaitOptions | undefined {
  if (deadline === undefined) return options?.signal ? { signal: options.signal } : undefined;
  return { timeout: Math.max(0, deadline - performance.now()), ...(options?.signal ? { signal: options.signal } : {}) };
}

function receiverOptions(options: NatsReceiverOptions<CodecOption | undefined> | undefined): { queue: string | undefined; maxPending: number; maxPendingBytes: number } {
  const o = validate.object<NatsReceiverOptions<CodecOption | undefined>>('options', options);
  return {
    queue: o.queue === undefined ? undefined : checkSubject('queue', o.queue),
    maxPending: validate.integer('maxPending', o.maxPending ?? DEFAULT_MAX_PENDING, 1),
    maxPendingBytes: validate.integer('maxPendingBytes', o.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES, 1),
  };
}

// --- Making endpoints ---------------------------------------------------------------------

/** A sender on `subject` over an existing connection. */
export function natsSender<C extends CodecOption | undefined = undefined>(client: NatsClient, subject: string, options?: NatsEndpointOptions<C>): NatsSender<MessageOf<C>> {
  const s = checkSubject('subject', subject);
  const o = validate.object<NatsEndpointOptions<C>>('options', options);
  return new NatsSender(client, s, resolveCodec(o.codec as C), false);
}

export function natsReceiver<C extends CodecOption | undefined = undefined>(client: NatsClient, subject: string, options?: NatsReceiverOptions<C>): NatsReceiver<MessageOf<C>> {
  const s = checkSubject('subject', subject, { wildcards: true });
  const r = receiverOptions(options);
  return new NatsReceiver(client, s, resolveCodec(options?.codec as C), r, false);
}

export function natsRequester<C extends CodecOption | undefined = undefined>(client: NatsClient, subject: string, options?: NatsReceiverOptions<C>): NatsRequester<MessageOf<C>> {
  const s = checkSubject('subject', subject);
  const r = receiverOptions(options);
  if (r.queue !== undefined) throw invalidArgument('a requester takes no queue: its answers come to its own inbox');
  return new NatsRequester(client, s, resolveCodec(options?.codec as C), r, false);
}

export function natsResponder<C extends CodecOption | undefined = undefined>(client: NatsClient, subject: string, options?: NatsReceiverOptions<C>): NatsResponder<MessageOf<C>> {
  const s = checkSubject('subject', subject, { wildcards: true });
  const r = receiverOptions(options);
  return new NatsResponder(client, s, resolveCodec(options?.codec as C), r, false);
}

/** Connection options plus an endpoint's own. */
export type OpenNatsOptions<C extends CodecOption | undefined> = NatsConnectOptions & NatsReceiverOptions<C>;

const ENDPOINT_KEYS = ['codec', 'queue', 'maxPending', 'maxPendingBytes'] as const;

function split<C extends CodecOption | undefined>(options: OpenNatsOptions<C> | undefined): { connect: NatsConnectOptions; endpoint: NatsReceiverOptions<C> } {
  const o = validate.object<OpenNatsOptions<C>>('options', options) as Record<string, unknown>;
  const connect: Record<string, unknown> = {};
  const endpoint: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) ((ENDPOINT_KEYS as readonly string[]).includes(k) ? endpoint : connect)[k] = v;
  return { connect: connect as NatsConnectOptions, endpoint: endpoint as NatsReceiverOptions<C> };
}

/** Connects and makes one endpoint that owns the connection (closing it closes the connection). */
function own<E extends Endpoint>(url: string, options: OpenNatsOptions<CodecOption | undefined> | undefined, make: (client: NatsClient, endpoint: NatsReceiverOptions<CodecOption | undefined>) => E): E {
  const { connect, endpoint } = split(options);
  const client = connectNats(url, connect);
  try {
    return make(client, endpoint);
  } catch (e) {
    void client.close().catch(() => {});
    throw e;
  }
}

/** `openNatsSender('nats://127.0.0.1:4222', 'jobs', { codec: 'json' })`: its own connection. */
export function openNatsSender<C extends CodecOption | undefined = undefined>(url: string, subject: string, options?: NatsConnectOptions & NatsEndpointOptions<C>): NatsSender<MessageOf<C>> {
  return own(url, options, (client, o) => {
    const s = checkSubject('subject', subject);
    return new NatsSender(client, s, resolveCodec(o.codec), true);
  }) as NatsSender<MessageOf<C>>;
}

export function openNatsReceiver<C extends CodecOption | undefined = undefined>(url: string, subject: string, options?: OpenNatsOptions<C>): NatsReceiver<MessageOf<C>> {
  return own(url, options, (client, o) => {
    const s = checkSubject('subject', subject, { wildcards: true });
    return new NatsReceiver(client, s, resolveCodec(o.codec), receiverOptions(o), true);
  }) as NatsReceiver<MessageOf<C>>;
}

export function openNatsRequester<C extends CodecOption | undefined = undefined>(url: string, subject: string, options?: OpenNatsOptions<C>): NatsRequester<MessageOf<C>> {
  return own(url, options, (client, o) => {
    const s = checkSubject('subject', subject);
    const r = receiverOptions(o);
    if (r.queue !== undefined) throw invalidArgument('a requester takes no queue: its answers come to its own inbox');
    return new NatsRequester(client, s, resolveCodec(o.codec), r, true);
  }) as NatsRequester<MessageOf<C>>;
}

export function openNatsResponder<C extends CodecOption | undefined = undefined>(url: string, subject: string, options?: OpenNatsOptions<C>): NatsResponder<MessageOf<C>> {
  return own(url, options, (client, o) => {
    const s = checkSubject('subject', subject, { wildcards: true });
    return new NatsResponder(client, s, resolveCodec(o.codec), receiverOptions(o), true);
  }) as NatsResponder<MessageOf<C>>;
}
