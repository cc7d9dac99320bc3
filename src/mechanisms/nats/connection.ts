/**
 * A connection to NATS (nats-server 2.9 or later) through the official client
 * (`@nats-io/transport-node`), with ipckit's options, errors and waits: addresses are
 * parsed and options checked synchronously, the client is imported only when a connection
 * is made (so `ipckit` commands that do not use NATS never load it), and every failure
 * of the client becomes an IpcError with a stable code.
 *
 * One `NatsClient` carries any number of senders, receivers, requesters, responders and
 * work queues (src/mechanisms/nats/channel.ts, workqueue.ts): NATS multiplexes them all
 * over one TCP connection.
 */
import { readFileSync } from 'node:fs';
import { invalidArgument, IpcError, isIpcError, toIpcError, type IpcErrorCode } from '../../core/errors.js';
import { cancellableWait, type WaitOptions } from '../../core/channel.js';
import * as validate from '../../core/validate.js';
import type { ConnectionOptions, NatsConnection, Status } from '@nats-io/transport-node';

/** True for an address that names something on NATS (`nats://…` or `tls://…`) rather than on this host. */
export function isNatsAddress(address: unknown): boolean {
  return typeof address === 'string' && /^(nats|tls):\/\//i.test(address.trimStart());
}

/** What `nats://host:port[,host:port...][/NAME]` names. */
export interface NatsAddress {
  /** `host:port` of every server, in order (`tls://` kept where given). */
  servers: string[];
  /** The path after the last server (`jobs` in `nats://host:4222/jobs`), if any. */
  name: string | undefined;
  /** Whether any address used `tls://`: the client then requires TLS. */
  tls: boolean;
  /** user:password (or a token alone) written into the URL. */
  user?: string;
  password?: string;
}

export interface NatsTlsOptions {
  /** PEM file of the certificate authority that signed the server's certificate. */
  caFile?: string;
  /** PEM files of our client certificate and its key, for servers that verify clients. */
  certFile?: string;
  keyFile?: string;
}

export interface NatsConnectOptions {
  /** Shown by the server's monitoring (`connz`) for this connection. */
  name?: string;
  user?: string;
  password?: string;
  token?: string;
  /** A `.creds` file (a user JWT and its NKEY seed), as `nsc` makes them. */
  credsFile?: string;
  /** An NKEY seed (`SU...`), or a file holding one. */
  nkeySeed?: string;
  nkeySeedFile?: string;
  /** `true`: require TLS with the system's CAs; an object: with these files. */
  tls?: boolean | NatsTlsOptions;
  /** How long the first connection may take (ms); default 5000. */
  connectTimeout?: number;
  /** Reconnect after losing the server (default true), with backoff from `reconnectWait` (default 250 ms) doubling up to `reconnectMaxWait` (default 4000 ms). */
  reconnect?: boolean;
  reconnectWait?: number;
  reconnectMaxWait?: number;
  /** Attempts before the connection is given up (default -1: keep trying). */
  maxReconnectAttempts?: number;
  /**
   * Bytes published but not yet written to the socket above which `send` waits
   * (default 8 MiB). NATS itself has no flow control: this is the bound on what a fast
   * publisher buffers. While the connection is down, `send` waits for it to come back.
   */
  maxPendingBytes?: number;
}

const DEFAULT_PORT = 4222;
const DEFAULT_MAX_PENDING_BYTES = 8 * 1024 * 1024;

/** NATS subject: tokens separated by dots, no spaces; wildcards only where `wildcards`. */
export function subject(name: string, value: unknown, { wildcards = false } = {}): string {
  const s = validate.string(name, value);
  const tokens = s.split('.');
  if (/[\s]/.test(s) || tokens.some((t) => t.length === 0)) {
    throw invalidArgument(`${name} must be a NATS subject (tokens separated by dots, no spaces), got ${validate.describe(value)}`);
  }
  const wild = tokens.some((t) => t === '*' || t === '>');
  if (wild && !wildcards) throw invalidArgument(`${name} must not contain the wildcards * or > (a sender publishes to one subject), got ${validate.describe(value)}`);
  if (tokens.slice(0, -1).includes('>')) throw invalidArgument(`${name}: > may only be the last token, got ${validate.describe(value)}`);
  return s;
}

/**
 * Parses `nats://host:port`, several separated by commas (`nats://a:4222,b:4222`, each may
 * repeat its scheme), `tls://` for TLS, `user:password@` before the first host, and a
 * `/NAME` after the last. Throws ERR_IPCKIT_INVALID_ARGUMENT synchronously.
 */
export function parseNatsUrl(url: unknown, { what = 'url', name: wantName = 'optional' }: { what?: string; name?: 'optional' | 'required' | 'none' } = {}): NatsAddress {
  const text = validate.string(what, url);
  const bad = (why: string): IpcError =>
    invalidArgument(`${what} must look like nats://host:port${wantName === 'required' ? '/NAME' : ''} (several servers separated by commas), got ${validate.describe(url)}: ${why}`);
  const entries = text.split(',');
  const servers: string[] = [];
  let name: string | undefined;
  let tls = false;
  let user: string | undefined;
  let password: string | undefined;
  entries.forEach((raw, i) => {
    let entry = raw.trim();
    const scheme = /^([a-z]+):\/\//i.exec(entry);
    if (scheme) {
      const s = scheme[1]!.toLowerCase();
      if (s !== 'nats' && s !== 'tls') throw bad(`unknown scheme ${s}:// (use nats:// or tls://)`);
      if (s === 'tls') tls = true;
      entry = entry.slice(scheme[0].length);
    } else if (i === 0) {
      throw bad('it must start with nats:// or tls://');
    }
    const slash = entry.indexOf('/');
    if (slash >= 0) {
      if (i !== entries.length - 1) throw bad('only the last server may be followed by /NAME');
      const path = entry.slice(slash + 1);
      entry = entry.slice(0, slash);
      if (path.length > 0) name = path;
    }
    const at = entry.lastIndexOf('@');
    if (at >= 0) {
      if (i !== 0) throw bad('credentials (user:password@) may only come before the first server');
      const info = entry.slice(0, at);
      entry = entry.slice(at + 1);
      const colon = info.indexOf(':');
      user = decodeURIComponent(colon >= 0 ? info.slice(0, colon) : info);
      if (colon >= 0) password = decodeURIComponent(info.slice(colon + 1));
    }
    const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-_]+)(?::(\d+))?$/.exec(entry);
    if (!m) throw bad(`${JSON.stringify(entry)} is not host or host:port`);
    const port = m[2] === undefined ? DEFAULT_PORT : Number(m[2]);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad(`port ${m[2]} is not from 1 to 65535`);
    servers.push(`${m[1]}:${port}`);
  });
  if (wantName === 'required' && name === undefined) throw bad('the queue name after the last server is missing (nats://host:4222/NAME)');
  if (wantName === 'none' && name !== undefined) throw bad(`a /${name} path is not used here`);
  return { servers, name, tls, ...(user !== undefined ? { user } : {}), ...(password !== undefined ? { password } : {}) };
}

/** Checks connection options synchronously; returns them with defaults. */
function checkOptions(options: unknown): Required<Pick<NatsConnectOptions, 'connectTimeout' | 'reconnect' | 'reconnectWait' | 'reconnectMaxWait' | 'maxReconnectAttempts' | 'maxPendingBytes'>> & NatsConnectOptions {
  const o = validate.object<NatsConnectOptions>('options', options);
  const optString = (key: keyof NatsConnectOptions): void => {
    if (o[key] !== undefined) validate.string(key, o[key]);
  };
  for (const key of ['name', 'user', 'password', 'token', 'credsFile', 'nkeySeed', 'nkeySeedFile'] as const) optString(key);
  if (o.password !== undefined && o.user === undefined) throw invalidArgument('password needs user');
  const auths = [o.user !== undefined, o.token !== undefined, o.credsFile !== undefined, o.nkeySeed !== undefined || o.nkeySeedFile !== undefined].filter(Boolean).length;
  if (auths > 1) throw invalidArgument('give one way to authenticate: user and password, token, credsFile, or nkeySeed / nkeySeedFile');
  if (o.nkeySeed !== undefined && o.nkeySeedFile !== undefined) throw invalidArgument('give nkeySeed or nkeySeedFile, not both');
  if (o.tls !== undefined && typeof o.tls !== 'boolean') {
    const t = validate.object<NatsTlsOptions>('tls', o.tls);
    for (const key of ['caFile', 'certFile', 'keyFile'] as const) if (t[key] !== undefined) validate.string(`tls.${key}`, t[key]);
    if ((t.certFile === undefined) !== (t.keyFile === undefined)) throw invalidArgument('tls.certFile and tls.keyFile go together (a client certificate and its key)');
  }
  if (o.reconnect !== undefined && typeof o.reconnect !== 'boolean') throw invalidArgument(`reconnect must be a boolean, got ${validate.describe(o.reconnect)}`);
  return {
    ...o,
    connectTimeout: validate.integer('connectTimeout', o.connectTimeout ?? 5000, 1, 2 ** 31 - 1),
    reconnect: o.reconnect ?? true,
    reconnectWait: validate.integer('reconnectWait', o.reconnectWait ?? 250, 1, 2 ** 31 - 1),
    reconnectMaxWait: validate.integer('reconnectMaxWait', o.reconnectMaxWait ?? 4000, 1, 2 ** 31 - 1),
    maxReconnectAttempts: validate.integer('maxReconnectAttempts', o.maxReconnectAttempts ?? -1, -1),
    maxPendingBytes: validate.integer('maxPendingBytes', o.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES, 1),
  };
}

/** The client modules, imported on first use only. */
type NatsModule = typeof import('@nats-io/transport-node');
let natsModule: Promise<NatsModule> | undefined;
export function loadNats(): Promise<NatsModule> {
  natsModule ??= import('@nats-io/transport-node').catch((e: unknown) => {
    natsModule = undefined;
    throw new IpcError('ERR_IPCKIT_UNSUPPORTED', `the NATS client (@nats-io/transport-node) could not be loaded: ${(e as Error).message}`, { cause: e });
  });
  return natsModule;
}

/** Client error class names -> codes, by meaning. */
const CLIENT_CODES: Readonly<Record<string, IpcErrorCode>> = {
  AuthorizationError: 'ERR_IPCKIT_PERMISSION',
  UserAuthenticationExpiredError: 'ERR_IPCKIT_PERMISSION',
  PermissionViolationError: 'ERR_IPCKIT_PERMISSION',
  ClosedConnectionError: 'ERR_IPCKIT_PEER_GONE',
  DrainingConnectionError: 'ERR_IPCKIT_PEER_GONE',
  TimeoutError: 'ERR_IPCKIT_TIMEOUT',
  NoRespondersError: 'ERR_IPCKIT_NOT_FOUND',
  InvalidSubjectError: 'ERR_IPCKIT_INVALID_ARGUMENT',
};

/**
 * The one path from a NATS client failure to an IpcError. `what` says what we were
 * doing (`connecting to nats://127.0.0.1:4222`). A socket error keeps its errno (a refused
 * connection is ERR_IPCKIT_PEER_GONE: nothing listens there).
 */
export function natsError(e: unknown, what: string): IpcError {
  if (isIpcError(e)) return e;
  const err = e as Error & { code?: unknown; errno?: unknown; syscall?: unknown; cause?: unknown };
  // The client wraps socket errors: find the errno error inside.
  for (let c: unknown = err, depth = 0; c instanceof Error && depth < 4; c = (c as { cause?: unknown }).cause, depth++) {
    const n = c as Error & { errno?: unknown; syscall?: unknown };
    if (typeof n.errno === 'number' && typeof n.syscall === 'string') return toIpcError(n, what, { cause: e });
  }
  const message = err instanceof Error ? err.message : String(e);
  if (err instanceof Error && /TLS|certificate|SSL/i.test(message)) {
    return new IpcError('ERR_IPCKIT_PERMISSION', `${what}: TLS failed: ${message}`, { cause: e });
  }
  if (err instanceof Error && /max_payload|maximum payload/i.test(message)) {
    return new IpcError('ERR_IPCKIT_FRAME_TOO_LARGE', `${what}: ${message}`, { cause: e });
  }
  if (err instanceof Error && /jetstream (is )?not enabled/i.test(message)) {
    return new IpcError('ERR_IPCKIT_UNSUPPORTED', `${what}: the server has no JetStream (start it with nats-server -js -sd DIR)`, { cause: e });
  }
  const name = err instanceof Error ? err.name : '';
  const code = CLIENT_CODES[name] ?? (name === 'ConnectionError' || /connection|CONNECTION_REFUSED|disconnect/i.test(message) ? 'ERR_IPCKIT_PEER_GONE' : 'ERR_IPCKIT_SYSCALL');
  return new IpcError(code, `${what}: ${message}`, { cause: e });
}

/** Something that uses the connection and must hear when it is gone for good. */
export interface ConnectionUser {
  /** The connection closed (by us: ERR_IPCKIT_CLOSED; lost: ERR_IPCKIT_PEER_GONE). */
  connectionClosed(error: IpcError): void;
  /** The connection is up again after a disconnect (subscriptions were resent by the client). */
  reconnected?(): void;
  disconnected?(): void;
}

export interface NatsClientStats {
  /** Messages and bytes published and received over this connection. */
  outMsgs: number;
  outBytes: number;
  inMsgs: number;
  inBytes: number;
  /** Times the connection was lost and made again. */
  reconnects: number;
  /** Bytes published and not yet written to the socket. */
  pendingBytes: number;
}

/**
 * One connection to a NATS server or cluster. Made by `connectNats(url, options)`, which
 * returns at once and connects in the background: `ready()` waits for it, and every
 * endpoint made from it waits for it on its first use.
 */
export class NatsClient {
  readonly address: NatsAddress;
  /** `nats://host:port,...` for messages. */
  readonly url: string;
  readonly maxPendingBytes: number;
  #connecting: Promise<NatsConnection>;
  #nc: NatsConnection | undefined;
  #closedError: IpcError | undefined;
  #closing: Promise<void> | undefined;
  #users = new Set<ConnectionUser>();
  #reconnects = 0;
  #connected = false;
  #roomWaiters: Array<() => void> = [];
  #roomTimer: NodeJS.Timeout | undefined;
  /** Reconnect attempts that failed since the last connection: the backoff's exponent. */
  #failedAttempts = 0;

  constructor(url: string | NatsAddress, options: NatsConnectOptions = {}) {
    this.address = typeof url === 'string' ? parseNatsUrl(url, { name: 'optional' }) : url;
    this.url = this.address.servers.map((s) => `${this.address.tls ? 'tls' : 'nats'}://${s}`).join(',');
    const o = checkOptions(options);
    this.maxPendingBytes = o.maxPendingBytes;
    this.#connecting = this.#connect(o);
    // A failed first connection is reported by ready() and by each endpoint's calls; it is
    // not an unhandled rejection when nobody asked yet.
    this.#connecting.catch(() => {});
  }

  async #connect(o: ReturnType<typeof checkOptions>): Promise<NatsConnection> {
    const nats = await loadNats();
    const what = `connecting to ${this.url}`;
    const opts: ConnectionOptions = {
      servers: this.address.servers,
      timeout: o.connectTimeout,
      reconnect: o.reconnect,
      maxReconnectAttempts: o.maxReconnectAttempts,
      // A fixed base doubling per failed attempt, with jitter, reset once connected.
      reconnectDelayHandler: () => {
        const failures = this.#failedAttempts++;
        const wait = Math.min(o.reconnectMaxWait, o.reconnectWait * 2 ** Math.min(failures, 16));
        return Math.round(wait * (0.8 + Math.random() * 0.4));
      },
      ...(o.name !== undefined ? { name: o.name } : {}),
    };
    const user = o.user ?? this.address.user;
    const password = o.password ?? this.address.password;
    try {
      if (o.credsFile !== undefined) opts.authenticator = nats.credsAuthenticator(readFileSync(o.credsFile));
      else if (o.nkeySeed !== undefined || o.nkeySeedFile !== undefined) {
        const seed = o.nkeySeed ?? readFileSync(o.nkeySeedFile!, 'utf8');
        opts.authenticator = nats.nkeyAuthenticator(new TextEncoder().encode(seed.trim()));
      } else if (o.token !== undefined) opts.token = o.token;
      else if (user !== undefined && password === undefined) opts.token = user;
      else if (user !== undefined) {
        opts.user = user;
        opts.pass = password!;
      }
      if (o.tls !== undefined && o.tls !== false) opts.tls = o.tls === true ? {} : { ...o.tls };
      else if (this.address.tls) opts.tls = {};
    } catch (e) {
      throw toIpcError(e, `${what}: reading the credentials`);
    }
    let nc: NatsConnection;
    try {
      nc = await nats.connect(opts);
    } catch (e) {
      throw connectError(e, what);
    }
    this.#nc = nc;
    this.#connected = true;
    checkInternals(nc);
    void this.#watch(nc);
    void nc.closed().then((e) => this.#onClosed(e));
    if (this.#closing) {
      // close() was called while we were connecting.
      await nc.close().catch(() => {});
    }
    return nc;
  }

  async #watch(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status() as AsyncIterable<Status>) {
      if (s.type === 'disconnect') {
        this.#connected = false;
        for (const u of this.#users) u.disconnected?.();
      } else if (s.type === 'reconnect') {
        this.#connected = true;
        this.#failedAttempts = 0;
        this.#reconnects++;
        for (const u of this.#users) u.reconnected?.();
        this.#wakeRoomWaiters();
      }
    }
  }

  #onClosed(e: void | Error): void {
    this.#connected = false;
    this.#closedError ??= e
      ? natsError(e, `the connection to ${this.url} was closed`).amend({ code: 'ERR_IPCKIT_PEER_GONE' })
      : this.#closing
        ? new IpcError('ERR_IPCKIT_CLOSED', `the connection to ${this.url} is closed`)
        : new IpcError('ERR_IPCKIT_PEER_GONE', `the connection to ${this.url} was lost and could not be made again`);
    for (const u of [...this.#users]) u.connectionClosed(this.#closedError);
    this.#wakeRoomWaiters();
  }

  /** Resolves once connected (rejects with why the first connection failed). */
  ready(options?: WaitOptions): Promise<void> {
    if (options !== undefined) validate.object('options', options);
    if (options === undefined) return this.connection().then(() => undefined);
    return cancellableWait<void>(`connecting to ${this.url}`, options, (resolve, reject) => {
      this.connection().then(() => resolve(), reject);
    });
  }

  /** The client's connection once made (for what ipckit does not wrap). */
  connection(): Promise<NatsConnection> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    return this.#connecting;
  }

  /** The connection if it was made (and is not closed), else undefined. */
  get current(): NatsConnection | undefined {
    return this.#closedError ? undefined : this.#nc;
  }

  /** Why the connection is closed, or undefined while it is usable. */
  get closedError(): IpcError | undefined {
    return this.#closedError;
  }

  get connected(): boolean {
    return this.#connected && !this.#closedError;
  }

  /** Largest message the server takes (its max_payload), once connected. */
  get maxPayload(): number | undefined {
    return this.#nc?.info?.max_payload;
  }

  /** Bytes published and not yet written to the socket (the client's buffer plus Node's). */
  pendingBytes(): number {
    const nc = this.#nc;
    if (!nc) return 0;
    const p = (nc as unknown as Internals).protocol;
    return p.outbound.size() + (p.transport?.socket?.writableLength ?? 0);
  }

  /**
   * Whether a publisher may hand the client `bytes` more without waiting: only while
   * connected (the client drops what it buffered while disconnected at its next reconnect
   * attempt, so nothing is handed to it then), and under `maxPendingBytes`.
   */
  hasRoom(bytes: number): boolean {
    if (!this.connected) return false;
    const pending = this.pendingBytes();
    return pending === 0 || pending + bytes <= this.maxPendingBytes;
  }

  /** Resolves when the pending bytes may have gone down (socket drained, reconnected, closed). */
  waitForRoom(): Promise<void> {
    return new Promise((resolve) => {
      this.#roomWaiters.push(resolve);
      const socket = (this.#nc as unknown as Internals | undefined)?.protocol.transport?.socket;
      if (this.#connected && socket && socket.writableNeedDrain) {
        socket.once('drain', () => this.#wakeRoomWaiters());
      }
      // While disconnected, or when the client's own buffer holds the bytes, look again
      // shortly: nothing else tells us.
      this.#roomTimer ??= setTimeout(() => {
        this.#roomTimer = undefined;
        this.#wakeRoomWaiters();
      }, this.#connected ? 2 : 20);
    });
  }

  #wakeRoomWaiters(): void {
    if (this.#roomTimer !== undefined) {
      clearTimeout(this.#roomTimer);
      this.#roomTimer = undefined;
    }
    for (const w of this.#roomWaiters.splice(0)) w();
  }

  stats(): NatsClientStats {
    const s = this.#nc?.stats();
    return { outMsgs: s?.outMsgs ?? 0, outBytes: s?.outBytes ?? 0, inMsgs: s?.inMsgs ?? 0, inBytes: s?.inBytes ?? 0, reconnects: this.#reconnects, pendingBytes: this.pendingBytes() };
  }

  /** Registers an endpoint to hear of the connection's end; returns the unregister function. */
  use(user: ConnectionUser): () => void {
    this.#users.add(user);
    if (this.#closedError) queueMicrotask(() => user.connectionClosed(this.#closedError!));
    return () => this.#users.delete(user);
  }

  /** A round trip to the server: every message published before it has reached the server. */
  flush(options?: WaitOptions): Promise<void> {
    if (options !== undefined) {
      validate.object('options', options);
      validate.timeout(options.timeout);
      validate.abortSignal(options.signal);
    }
    return cancellableWait<void>(`flushing to ${this.url}`, options, (resolve, reject) => {
      this.connection()
        .then((nc) => nc.flush())
        .then(resolve, (e: unknown) => reject(natsError(e, `flushing to ${this.url}`)));
    });
  }

  /**
   * Writes what was published, then closes the connection; every endpoint's pending call
   * rejects with ERR_IPCKIT_CLOSED. Idempotent. Rejects if published messages could not
   * be written (the connection was lost first).
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      let nc: NatsConnection | undefined;
      try {
        nc = await this.#connecting;
      } catch {
        this.#closedError ??= new IpcError('ERR_IPCKIT_CLOSED', `the connection to ${this.url} is closed`);
        for (const u of [...this.#users]) u.connectionClosed(this.#closedError);
        return;
      }
      const lost = this.#closedError;
      let unflushed: unknown;
      if (!lost) {
        try {
          if (this.pendingBytes() > 0 || this.#connected) await nc.flush();
        } catch (e) {
          unflushed = e;
        }
      }
      this.#closedError ??= new IpcError('ERR_IPCKIT_CLOSED', `the connection to ${this.url} is closed`);
      for (const u of [...this.#users]) u.connectionClosed(this.#closedError);
      await nc.close().catch(() => {});
      if (unflushed !== undefined) throw natsError(unflushed, `closing the connection to ${this.url}: published messages may not have reached the server`).amend({ code: 'ERR_IPCKIT_PEER_GONE' });
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The client's internals we read for backpressure (checked once connected). */
interface Internals {
  protocol: {
    outbound: { size(): number };
    transport?: { socket?: { writableLength: number; writableNeedDrain: boolean; once(event: 'drain', fn: () => void): void } };
  };
}

/**
 * The pending-bytes count reads the client's outbound buffer and Node's socket buffer,
 * which the client does not expose: fail loudly if a client update moves them.
 */
function checkInternals(nc: NatsConnection): void {
  const p = (nc as unknown as Partial<Internals>).protocol;
  if (!p || typeof p.outbound?.size !== 'function') {
    throw new IpcError('ERR_IPCKIT_UNSUPPORTED', 'this version of @nats-io/transport-node does not keep its outbound buffer where ipckit reads it (protocol.outbound): send backpressure cannot work');
  }
}

/** Why the first connection failed, in ipckit's terms. */
function connectError(e: unknown, what: string): IpcError {
  const err = natsError(e, what);
  const message = (e as Error)?.message ?? '';
  if (/authorization|authentication|auth/i.test(message)) {
    return new IpcError('ERR_IPCKIT_PERMISSION', `${what}: the server refused our credentials (${message})`, { cause: e });
  }
  if (err.code === 'ERR_IPCKIT_PEER_GONE' || err.systemCode === 'ECONNREFUSED') {
    return err.amend({ code: 'ERR_IPCKIT_NOT_FOUND', note: 'no NATS server answers there (start one with: nats-server -js)' });
  }
  return err;
}

/**
 * Connects to NATS: `connectNats('nats://127.0.0.1:4222', { name: 'worker' })`. Returns at
 * once (bad arguments throw synchronously); `ready()` waits for the connection.
 */
export function connectNats(url: string, options: NatsConnectOptions = {}): NatsClient {
  return new NatsClient(url, options);
}
