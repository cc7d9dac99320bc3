/**
 * Request/reply over any duplex Channel, so that callers stop writing id bookkeeping by
 * hand: `createRequester(channel).request(message, { timeout, signal })` on one side,
 * `serve(channel, handler)` on the other.
 *
 * Each message on the channel is an envelope, a plain array `[tag, id, body]`:
 *   ['q', id, request]   a request (id: a positive integer, unique among pending ones)
 *   ['r', id, reply]     the handler's result
 *   ['e', id, error]     the handler threw: { name, message, stack, code?, details? }
 * so the channel's codec must carry arrays: 'json', 'structured' or a Codec of your own.
 *
 * - A timeout or an abort rejects that request only; its late reply is dropped.
 * - The peer going away (its channel ends, cleanly or not) rejects every pending request
 *   with ERR_IPCKIT_PEER_GONE: a request never waits for a peer that cannot answer.
 * - A requester owns the receiving side of its channel while requests are pending (it
 *   receives only then, so an idle requester keeps nothing running); a server owns it
 *   while it serves. Do not call `receive` on the channel yourself meanwhile.
 * - Anything read from the peer is untrusted: an envelope of the wrong shape is
 *   ERR_IPCKIT_BAD_FRAME for the requester (every pending request rejects with it) and is
 *   answered with an error by the server when it carries an id (else dropped).
 */
import { cancellableWait, type Channel, type WaitOptions } from './channel.js';
import { closedError, ERROR_CODES, invalidArgument, IpcError, isIpcError, type IpcErrorCode } from './errors.js';
import * as validate from './validate.js';

type Tag = 'q' | 'r' | 'e';
type Envelope = [Tag, number, unknown];

/** An error as it travels back from a handler. */
export interface RemoteErrorShape {
  name: string;
  message: string;
  stack?: string;
  code?: string | number;
  details?: unknown;
}

/** The channel a requester or server needs: any duplex Channel whose codec carries arrays. */
export type RequestChannel = Pick<Channel<any>, 'send' | 'receive'>;

function isEnvelope(m: unknown): m is Envelope {
  return Array.isArray(m) && m.length >= 2 && (m[0] === 'q' || m[0] === 'r' || m[0] === 'e') && Number.isSafeInteger(m[1]) && (m[1] as number) > 0;
}

function badEnvelope(what: string, m: unknown): IpcError {
  return new IpcError('ERR_IPCKIT_BAD_FRAME', `${what}: the peer sent ${validate.describe(m)}, not a request/reply envelope [tag, id, body]`);
}

/** What a thrown value becomes on the wire. */
export function errorToWire(e: unknown): RemoteErrorShape {
  if (e instanceof Error) {
    const out: RemoteErrorShape = { name: e.name, message: e.message };
    if (typeof e.stack === 'string') out.stack = e.stack;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' || typeof code === 'number') out.code = code;
    const details = (e as { details?: unknown }).details;
    if (details !== undefined) {
      // Only details that survive JSON go back (a codec may not carry the rest).
      try {
        out.details = JSON.parse(JSON.stringify(details)) as unknown;
      } catch {
        /* dropped */
      }
    }
    return out;
  }
  return { name: 'Error', message: typeof e === 'string' ? e : `a non-Error value was thrown: ${validate.describe(e)}` };
}

/**
 * The error a request rejects with when the handler threw: an IpcError with the same code
 * when the handler's error was one, else an Error with the handler's name, message,
 * stack and code. `remote: true` marks it either way.
 */
export function errorFromWire(w: unknown): Error {
  const o = (typeof w === 'object' && w !== null ? w : {}) as Record<string, unknown>;
  const name = typeof o.name === 'string' ? o.name : 'Error';
  const message = typeof o.message === 'string' ? o.message : `the handler failed (unreadable error: ${validate.describe(w)})`;
  let e: Error;
  if (typeof o.code === 'string' && Object.hasOwn(ERROR_CODES, o.code)) {
    // Strip the " (CODE)" suffix IpcError adds, so it is not said twice.
    const suffix = ` (${o.code})`;
    const reason = message.endsWith(suffix) ? message.slice(0, -suffix.length) : message;
    const details = typeof o.details === 'object' && o.details !== null ? (o.details as Record<string, unknown>) : undefined;
    e = new IpcError(o.code as IpcErrorCode, reason, details ? { details } : {});
  } else {
    e = new Error(message);
    if (name !== 'Error') Object.defineProperty(e, 'name', { value: name, configurable: true, writable: true });
    if (typeof o.code === 'string' || typeof o.code === 'number') (e as { code?: unknown }).code = o.code;
    if (o.details !== undefined) (e as { details?: unknown }).details = o.details;
  }
  if (typeof o.stack === 'string') e.stack = o.stack;
  Object.defineProperty(e, 'remote', { value: true, enumerable: false });
  return e;
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: unknown): void;
  cancel: (() => void) | undefined;
}

export interface RequesterOptions {
  /**
   * Turns the error that ended the channel into the one pending requests get (spawnProcess
   * adds the child's exit status). It is ERR_IPCKIT_PEER_GONE already.
   */
  peerGone?: (error: IpcError) => IpcError | Promise<IpcError>;
}

/** The side that asks. `request` resolves with the reply to its message. */
export class Requester<Req = unknown, Res = unknown> {
  readonly #channel: RequestChannel;
  readonly #pending = new Map<number, Pending>();
  readonly #peerGone: RequesterOptions['peerGone'];
  #nextId = 1;
  #receiving = false;
  #failed: unknown;
  #closed = false;

  /** @internal use createRequester() */
  constructor(channel: RequestChannel, options: RequesterOptions = {}) {
    if (channel === null || typeof channel !== 'object' || typeof channel.send !== 'function' || typeof channel.receive !== 'function') {
      throw invalidArgument(`channel must be a duplex Channel (send and receive), got ${validate.describe(channel)}`);
    }
    validate.object('options', options);
    if (options.peerGone !== undefined && typeof options.peerGone !== 'function') throw invalidArgument(`peerGone must be a function, got ${validate.describe(options.peerGone)}`);
    this.#channel = channel;
    this.#peerGone = options.peerGone;
  }

  /** Requests waiting for their reply. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Sends `message` and resolves with the reply. `timeout` (ms) and `signal` bound the
   * whole round trip (ERR_IPCKIT_TIMEOUT / ERR_IPCKIT_ABORTED, this request only); the
   * handler's error rejects it as the handler's error; a peer that goes away,
   * ERR_IPCKIT_PEER_GONE.
   */
  request(message: Req, options?: WaitOptions): Promise<Res> {
    validate.waitOptions(options);
    if (this.#closed) return Promise.reject(closedError('requester'));
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    const id = this.#nextId;
    this.#nextId = id >= Number.MAX_SAFE_INTEGER ? 1 : id + 1;
    const envelope: Envelope = ['q', id, message];
    // A message the codec refuses throws here, synchronously: nothing was sent.
    const sent = this.#channel.send(envelope, options);
    const reply =
      options?.timeout === undefined && options?.signal === undefined
        ? new Promise<Res>((resolve, reject) => {
            this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, cancel: undefined });
          })
        : cancellableWait<Res>(`request ${id}`, options, (resolve, reject) => {
            this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, cancel: undefined });
            return () => this.#pending.delete(id);
          });
    sent.then(undefined, (e: unknown) => this.#settle(id, e, false));
    if (!this.#receiving) void this.#receive();
    return reply;
  }

  /** Rejects every pending request with `error` and refuses new ones with it (the peer is gone). */
  fail(error: unknown): void {
    this.#failed ??= error;
    for (const [id, p] of [...this.#pending]) {
      this.#pending.delete(id);
      p.reject(error);
    }
  }

  /** Rejects pending requests with ERR_IPCKIT_CLOSED and refuses new ones. Does not close the channel. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.fail(closedError('requester'));
  }

  #settle(id: number, value: unknown, ok: boolean): void {
    const p = this.#pending.get(id);
    if (!p) return; // timed out, aborted or already failed: a late reply is dropped
    this.#pending.delete(id);
    if (ok) p.resolve(value);
    else p.reject(value);
  }

  /** Receives while requests are pending, then stops, so an idle requester keeps nothing running. */
  async #receive(): Promise<void> {
    this.#receiving = true;
    try {
      while (this.#pending.size > 0) {
        let m: unknown;
        try {
          m = await this.#channel.receive();
        } catch (e) {
          if (isIpcError(e, 'ERR_IPCKIT_TIMEOUT') || isIpcError(e, 'ERR_IPCKIT_ABORTED')) continue;
          this.fail(await this.#gone(e));
          return;
        }
        if (!isEnvelope(m) || m[0] === 'q') {
          this.fail(badEnvelope('requester', m));
          return;
        }
        this.#settle(m[1], m[0] === 'r' ? m[2] : errorFromWire(m[2]), m[0] === 'r');
      }
    } finally {
      this.#receiving = false;
    }
  }

  /** The channel ended: a clean end with requests pending is a peer gone too. */
  async #gone(e: unknown): Promise<unknown> {
    if (!isIpcError(e)) return e;
    if (e.code !== 'ERR_IPCKIT_CLOSED' && e.code !== 'ERR_IPCKIT_PEER_GONE' && e.code !== 'ERR_IPCKIT_BAD_FRAME') return e;
    const gone = e.code === 'ERR_IPCKIT_PEER_GONE' ? e : e.amend({ code: 'ERR_IPCKIT_PEER_GONE', note: 'the peer went away with requests pending' });
    return this.#peerGone ? await this.#peerGone(gone) : gone;
  }
}

/** A requester over `channel` (see Requester). */
export function createRequester<Req = unknown, Res = unknown>(channel: RequestChannel, options: RequesterOptions = {}): Requester<Req, Res> {
  return new Requester<Req, Res>(channel, options);
}

export type Handler<Req, Res> = (request: Req) => Res | Promise<Res>;

export interface ServeOptions {
  /** Handlers running at once, at most (default 64); then the server stops receiving until one ends. */
  concurrency?: number;
}

/** The side that answers: runs until the channel ends or `close()`. */
export class Server {
  /** Resolves when serving stops: the peer finished (clean end) or `close()`; rejects if the channel failed. */
  readonly done: Promise<void>;
  readonly #stop = new AbortController();
  #running = 0;
  #idle: (() => void) | undefined;
  #slot: (() => void) | undefined;

  /** @internal */
  constructor(
    readonly channel: RequestChannel,
    readonly handler: Handler<any, any>,
    readonly concurrency: number,
  ) {
    this.done = this.#loop();
    this.done.catch(() => {});
  }

  /** Handlers running now. */
  get running(): number {
    return this.#running;
  }

  /** Stops receiving and waits for the running handlers to reply. Does not close the channel. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.done.catch(() => {});
  }

  async #loop(): Promise<void> {
    const signal = this.#stop.signal;
    try {
      for (;;) {
        if (this.#running >= this.concurrency) await new Promise<void>((r) => (this.#slot = r));
        if (signal.aborted) return;
        let m: unknown;
        try {
          m = await this.channel.receive({ signal });
        } catch (e) {
          if (isIpcError(e, 'ERR_IPCKIT_ABORTED') && signal.aborted) return;
          if (isIpcError(e, 'ERR_IPCKIT_CLOSED')) return;
          throw e;
        }
        if (!isEnvelope(m)) {
          // Untrusted: answer what carries an id, drop the rest.
          const id = Array.isArray(m) ? (m[1] as unknown) : undefined;
          if (typeof id === 'number' && Number.isSafeInteger(id) && id > 0) await this.#reply(id, 'e', errorToWire(badEnvelope('server', m)));
          continue;
        }
        if (m[0] !== 'q') continue; // a reply sent to a server: nobody asked
        this.#run(m[1], m[2]);
      }
    } finally {
      if (this.#running > 0) await new Promise<void>((r) => (this.#idle = r));
    }
  }

  #run(id: number, body: unknown): void {
    this.#running++;
    let result: unknown;
    try {
      result = this.handler(body);
    } catch (e) {
      void this.#finish(id, 'e', errorToWire(e));
      return;
    }
    if (result instanceof Promise || (typeof result === 'object' && result !== null && typeof (result as PromiseLike<unknown>).then === 'function')) {
      Promise.resolve(result).then(
        (v) => this.#finish(id, 'r', v),
        (e: unknown) => this.#finish(id, 'e', errorToWire(e)),
      );
    } else {
      void this.#finish(id, 'r', result);
    }
  }

  async #finish(id: number, tag: Tag, body: unknown): Promise<void> {
    try {
      await this.#reply(id, tag, body);
    } finally {
      this.#running--;
      this.#slot?.();
      this.#slot = undefined;
      if (this.#running === 0) this.#idle?.();
    }
  }

  async #reply(id: number, tag: Tag, body: unknown): Promise<void> {
    try {
      await this.channel.send([tag, id, body]);
    } catch (e) {
      // A reply the codec refuses goes back as an error; a dead peer has nobody to tell.
      if (isIpcError(e, 'ERR_IPCKIT_INVALID_ARGUMENT') || isIpcError(e, 'ERR_IPCKIT_FRAME_TOO_LARGE')) {
        await this.channel.send(['e', id, errorToWire(e)]).catch(() => {});
      }
    }
  }
}

/**
 * Answers requests on `channel` with `handler` (sync or async): its result is the reply,
 * what it throws goes back as the request's error (name, message, stack, code). Handlers
 * run concurrently, up to `concurrency` at once.
 */
export function serve<Req = unknown, Res = unknown>(channel: RequestChannel, handler: Handler<Req, Res>, options: ServeOptions = {}): Server {
  if (channel === null || typeof channel !== 'object' || typeof channel.send !== 'function' || typeof channel.receive !== 'function') {
    throw invalidArgument(`channel must be a duplex Channel (send and receive), got ${validate.describe(channel)}`);
  }
  if (typeof handler !== 'function') throw invalidArgument(`handler must be a function, got ${validate.describe(handler)}`);
  validate.object('options', options);
  const concurrency = validate.integer('concurrency', options.concurrency ?? 64, 1, 1_000_000);
  return new Server(channel, handler as Handler<any, any>, concurrency);
}
