/**
 * Sockets: Unix stream (path or abstract), Unix datagram, Unix seqpacket and TCP, behind
 * one address syntax (address.ts) and the common Channel API.
 *
 * - `listen(address, options)` binds and gives a server; connections arrive by
 *   `accept()` or async iteration, each a Channel. `connect(address, options)` gives a
 *   Channel. Stream kinds carry ipckit frames (docs/design.md §4) or `lines`/`raw`; datagram and
 *   seqpacket keep the kernel's message boundaries.
 * - Unix peers are identified by the kernel (SO_PEERCRED): `channel.peer` is
 *   `{ pid, uid, gid }`, and `allow: { uids, gids }` refuses anyone else before a byte is
 *   read. A client checks the server's uid the same way (default: must be ours).
 * - Descriptors travel with messages on datagram and seqpacket sockets (`sendHandle`,
 *   `receiveHandle`); anonymous sealed memory is in handle.ts.
 * - `connect(address, { reconnect })` keeps a stream connection up across server
 *   restarts, with acknowledged delivery (acked.ts); the server must listen with
 *   `{ acknowledged: true }`.
 *
 * Everything waits on the event loop (FdPoll): no thread, no blocking call.
 */
import { constants as osConstants } from 'node:os';
import { cancellableWait, receiverIterator, WaitQueue, type Channel, type ReceiverInto, type WaitOptions } from '../../core/channel.js';
import type { CodecOption, MessageOf } from '../../core/codec.js';
import { resolveCodec } from '../../core/codec.js';
import { closedError, errnoError, invalidArgument, IpcError, sys, toIpcError } from '../../core/errors.js';
import { DEFAULT_MAX_MESSAGE_BYTES, resolveFraming } from '../../core/framing.js';
import { native, type NativeSockAddr } from '../../os/native.js';
import { createMode, TRUST_OWNER, type CreateModeOptions } from '../../os/permissions.js';
import type { PosixIpcPerm } from '../../os/ipc-perm.js';
import { FdPoll } from '../../os/fd-stream.js';
import { spinOption } from '../../os/spin.js';
import {
  claimBoundFile,
  checkConnectPath,
  isPacketKind,
  parseAddress,
  prepareAddress,
  reclaimSocketPath,
  resolveHost,
  socketType,
  tcpText,
  boundFilePerm,
  unlinkBoundFile,
  type BoundFile,
  type SocketAddress,
  type SocketKind,
  type TcpAddress,
  type UnixAddress,
} from './address.js';
import { AckedChannel, ReconnectingChannel, resolveReconnectOptions, type ReconnectOptions } from './acked.js';
import type { HandleSource, ReceivedHandle } from './handle.js';
import { DatagramServer, isAllowed, PacketChannel, resolvePacketOptions, type AllowList, type MessageWithHandles } from './packet.js';
import { StreamSocketChannel, type PeerCredentials, type SocketChannelOptions, type SocketInfo } from './stream.js';
import * as validate from '../../core/validate.js';

const C = native.socketConstants;
const E = osConstants.errno;

export type { SocketKind, PeerCredentials, SocketChannelOptions, SocketInfo, MessageWithHandles, AllowList, ReconnectOptions };
export { parseAddress } from './address.js';
export { createSealedMemory, openSealedMemory, ReceivedHandle, SealedMemory, type CreateSealedMemoryOptions, type HandleSource, type HandleType, type OpenSealedMemoryOptions } from './handle.js';
export { StreamSocketChannel } from './stream.js';
export { DatagramPeer, DatagramServer, PacketChannel } from './packet.js';
export { AckedChannel, ReconnectingChannel } from './acked.js';

/** What every socket channel offers, whatever its kind. */
export interface SocketChannel<T> extends Channel<T>, ReceiverInto, SocketInfo {
  /** Resolves once every accepted message has been handed to the kernel. */
  flush(options?: WaitOptions): Promise<void>;
  /**
   * Half-close: writes what was accepted, then ends our sending direction (the peer's
   * receive ends; we can still receive). Datagram channels have no direction to end: flush.
   */
  end(options?: WaitOptions): Promise<void>;
  /** Sends descriptors with a message: datagram, seqpacket, and Unix stream opened with `{ handles: true }`; else ERR_IPCKIT_UNSUPPORTED. */
  sendHandle(handle: HandleSource | HandleSource[], message?: T, options?: WaitOptions): Promise<void>;
  /** The next message, which must carry a descriptor. */
  receiveHandle(options?: WaitOptions): Promise<{ handle: ReceivedHandle; message: T; sender: PeerCredentials | undefined }>;
  /** The next message with any descriptors it carried. */
  receiveWithHandles(options?: WaitOptions): Promise<MessageWithHandles<T>>;
  close(options?: WaitOptions): Promise<void>;
}

export interface ListenOptions<C extends CodecOption | undefined = undefined> extends SocketChannelOptions<C>, CreateModeOptions {
  /**
   * Unix sockets: only peers with one of these uids or gids (SO_PEERCRED / SCM_CREDENTIALS)
   * are served; others are disconnected before anything is read, and counted in
   * `server.refused`. Default: anyone who can reach the socket file (its mode decides:
   * 0600), and for the abstract namespace, which has no permissions, only our own uid.
   * `'any'` serves everyone.
   */
  allow?: AllowList | 'any';
  /** listen(2) backlog (default 511). */
  backlog?: number;
  /** Speak the acknowledged protocol that reconnecting clients use (stream kinds). */
  acknowledged?: boolean;
  /** Remove a stale socket file left by a dead server (default true); a live server's is never touched. */
  reclaimStale?: boolean;
}

export interface ConnectOptions<C extends CodecOption | undefined = undefined> extends SocketChannelOptions<C>, WaitOptions {
  /** uid the server must run as (Unix sockets; default: our own). */
  owner?: number;
  /** Accept a server of any uid (a system socket, another user's on purpose). */
  anyOwner?: boolean;
  /**
   * Keep the connection up across server restarts (stream kinds), with acknowledged
   * delivery; the server must listen with `{ acknowledged: true }`. See acked.ts.
   */
  reconnect?: ReconnectOptions | boolean;
}

/** A listening socket: connections (or, for datagrams, senders) arrive as channels. */
export interface SocketServer<T> extends AsyncIterable<SocketChannel<T>>, AsyncDisposable {
  readonly kind: SocketKind;
  /** Canonical address, with the real port for `tcp://...:0` and the path for `unix:`. */
  readonly address: string;
  /** The socket file (Unix path kinds). */
  readonly path: string | undefined;
  /** The bound port (TCP). */
  readonly port: number | undefined;
  /** Peers refused by `allow` so far. */
  readonly refused: number;
  /** The next connection (datagram: the next new sender). */
  accept(options?: WaitOptions): Promise<SocketChannel<T>>;
  /** Stops listening and removes our socket file (never a newer server's). Connections already accepted stay open. */
  close(): Promise<void>;
  /**
   * The permission record of the socket file (lstat), as every IPC object reports it: no key,
   * creator or sequence number, which POSIX objects do not have. Undefined without a file
   * (TCP, abstract names) or once it is gone or replaced.
   */
  perm(): PosixIpcPerm | undefined;
}

// --- helpers ---

function sockAddrText(kind: SocketKind, a: NativeSockAddr | undefined): string | undefined {
  if (a === undefined) return undefined;
  if (a.family === 'unix') {
    if (a.path.length === 0) return undefined;
    const abstract = a.path[0] === 0;
    const name = (abstract ? a.path.subarray(1) : a.path).toString('utf8');
    if (kind === 'unix' || kind === 'unix-abstract') return abstract ? `unix-abstract:${name}` : `unix:${name}`;
    return `${kind}:${abstract ? '@' : ''}${name}`;
  }
  return tcpText(a.address, a.port);
}

function tryAddr(fn: () => NativeSockAddr): NativeSockAddr | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

function resolveAllow(value: unknown, addr: SocketAddress): AllowList | null {
  if (addr.kind === 'tcp') {
    if (value !== undefined) throw invalidArgument('`allow` needs Unix credentials; a TCP peer has none (bind 127.0.0.1, or use a Unix socket)');
    return null;
  }
  if (value === 'any') return null;
  if (value === undefined) return addr.abstract ? { uids: [process.geteuid?.() ?? 0] } : null;
  const o = validate.object<AllowList>('allow', value);
  const list = (name: string, v: unknown): number[] | undefined => {
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) throw invalidArgument(`allow.${name} must be an array of ids, got ${validate.describe(v)}`);
    return v.map((x, i) => validate.integer(`allow.${name}[${i}]`, x, 0, 2 ** 32 - 2));
  };
  const uids = list('uids', o.uids);
  const gids = list('gids', o.gids);
  if (!uids?.length && !gids?.length) throw invalidArgument("allow must list at least one uid or gid (or be 'any')");
  return { ...(uids ? { uids } : {}), ...(gids ? { gids } : {}) };
}

/** Checks the channel options whole, as the channel of `kind` will use them. */
function checkChannelOptions(kind: SocketKind, options: SocketChannelOptions<CodecOption | undefined>): void {
  validate.object('options', options);
  validate.optionalBoolean('handles', options.handles);
  if (options.handles === true && kind === 'tcp') throw invalidArgument('`handles` needs a Unix socket: TCP cannot carry descriptors');
  validate.optionalInteger('readBufferBytes', options.readBufferBytes, 64, 64 * 1024 * 1024);
  spinOption(options.spinMicros);
  if (isPacketKind(kind)) resolvePacketOptions(options);
  else {
    resolveFraming(options);
    resolveCodec(options.codec);
    validate.optionalInteger('highWaterMark', options.highWaterMark, 1);
    validate.optionalInteger('maxPendingBytes', options.maxPendingBytes, 0);
  }
}

function channelOptions(options: SocketChannelOptions<CodecOption | undefined>): SocketChannelOptions<CodecOption | undefined> {
  const out: SocketChannelOptions<CodecOption | undefined> = {};
  if (options.codec !== undefined) out.codec = options.codec;
  if (options.framing !== undefined) out.framing = options.framing;
  if (options.maxMessageBytes !== undefined) out.maxMessageBytes = options.maxMessageBytes;
  if (options.highWaterMark !== undefined) out.highWaterMark = options.highWaterMark;
  if (options.maxPendingBytes !== undefined) out.maxPendingBytes = options.maxPendingBytes;
  if (options.readBufferBytes !== undefined) out.readBufferBytes = options.readBufferBytes;
  if (options.spinMicros !== undefined) out.spinMicros = options.spinMicros;
  if (options.handles !== undefined) out.handles = options.handles;
  return out;
}

/** The raw channel under an acknowledged one: bytes, length frames, room for the type byte. */
function rawAckedOptions(options: SocketChannelOptions<CodecOption | undefined>): SocketChannelOptions<undefined> {
  if (options.framing !== undefined && options.framing !== 'length') throw invalidArgument('acknowledged connections use length framing');
  if (options.handles === true) throw invalidArgument('acknowledged connections do not carry descriptors');
  const { codec: _c, framing: _f, handles: _h, ...rest } = options;
  return { ...rest, maxMessageBytes: (options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES) + 1 };
}

/**
 * A channel over a connected fd of `kind`. `unnamed`: the ends are known to have no address
 * (a socketpair), so none is asked of the kernel.
 */
function wrapConnected<T>(fd: number, kind: SocketKind, options: SocketChannelOptions<CodecOption | undefined>, peer: PeerCredentials | undefined, unnamed = false): SocketChannel<T> {
  const remoteAddress = unnamed ? undefined : sockAddrText(kind, tryAddr(() => native.peerAddress(fd)));
  const localAddress = unnamed ? undefined : sockAddrText(kind, tryAddr(() => native.localAddress(fd)));
  if (kind === 'unix-seqpacket' || kind === 'unix-dgram') {
    return new PacketChannel<T>(fd, options, { kind, peer, remoteAddress, localAddress }) as unknown as SocketChannel<T>;
  }
  return new StreamSocketChannel<T>(fd, options, { kind, peer, remoteAddress, localAddress }) as unknown as SocketChannel<T>;
}

// --- listen ---

/** What listen() checked, for the part that binds. */
interface ListenPlan {
  allow: AllowList | null;
  backlog: number;
  acknowledged: boolean;
  reclaimStale: boolean;
  mode: number;
  group: number | undefined;
  channel: SocketChannelOptions<CodecOption | undefined>;
}

/**
 * Binds `address` and starts listening. Bad arguments throw here, synchronously, before
 * anything is bound; failures of the system (the address in use, no permission) reject.
 */
export function listen<C extends CodecOption | undefined = undefined>(address: string, options: ListenOptions<C> = {}): Promise<SocketServer<MessageOf<C>>> {
  validate.object('options', options);
  const addr = parseAddress(address, true);
  checkChannelOptions(addr.kind, options);
  const acknowledged = validate.optionalBoolean('acknowledged', options.acknowledged) ?? false;
  if (acknowledged && isPacketKind(addr.kind)) throw invalidArgument('`acknowledged` applies to stream sockets (unix:, unix-abstract:, tcp://)');
  if (acknowledged) rawAckedOptions(options);
  const plan: ListenPlan = {
    allow: resolveAllow(options.allow, addr),
    backlog: validate.optionalInteger('backlog', options.backlog, 1, 65535) ?? 511,
    acknowledged,
    reclaimStale: validate.optionalBoolean('reclaimStale', options.reclaimStale) ?? true,
    ...createMode(options),
    channel: channelOptions(options),
  };
  return addr.kind === 'tcp' ? listenTcp<MessageOf<C>>(addr, plan) : listenUnix<MessageOf<C>>(addr, plan);
}

async function listenUnix<T>(addr: UnixAddress, plan: ListenPlan): Promise<SocketServer<T>> {
  const { allow, backlog, acknowledged, mode, group, channel: chOptions } = plan;
  prepareAddress(addr);
  const type = socketType(addr.kind);
  reclaimSocketPath(addr, type, plan.reclaimStale);
  const fd = sys('create socket', () => native.socket(C.AF_UNIX, type));
  let file: BoundFile | undefined;
  try {
    // The socket inode's mode (minus the umask) becomes the file's: set it before bind so
    // the file is never wider than asked, even for an instant.
    if (!addr.abstract) sys('set socket mode', () => native.fchmod(fd, mode));
    try {
      native.bindUnix(fd, addr.sunPath);
    } catch (e) {
      const err = toIpcError(e, `bind ${addr.text}`);
      if (err.systemCode === 'EADDRINUSE') throw new IpcError('ERR_IPCKIT_EXISTS', `${addr.text} is in use by another socket`, { cause: err, path: addr.path, systemCode: 'EADDRINUSE' });
      throw err;
    }
    if (!addr.abstract) file = claimBoundFile(addr.path, mode, group);
    if (type !== C.SOCK_STREAM) native.setSockOpt(fd, C.SOL_SOCKET, C.SO_PASSCRED, 1);
    if (type !== C.SOCK_DGRAM) sys(`listen on ${addr.text}`, () => native.listen(fd, backlog));
  } catch (e) {
    native.close(fd);
    if (file) unlinkBoundFile(file);
    throw toIpcError(e, `listen on ${addr.text}`);
  }
  if (addr.kind === 'unix-dgram') return new DatagramListener<T>(fd, addr, chOptions, allow, file);
  return new ListeningServer<T>(fd, addr.kind, addr.text, addr.abstract ? undefined : addr.path, undefined, chOptions, allow, file, acknowledged);
}

async function listenTcp<T>(addr: TcpAddress, plan: ListenPlan): Promise<SocketServer<T>> {
  const { backlog, acknowledged, channel: options } = plan;
  const { ip, family } = await resolveHost(addr.host);
  const fd = sys('create socket', () => native.socket(family === 6 ? C.AF_INET6 : C.AF_INET, C.SOCK_STREAM));
  let local: ReturnType<typeof native.localAddress>;
  try {
    native.setSockOpt(fd, C.SOL_SOCKET, C.SO_REUSEADDR, 1);
    try {
      native.bindInet(fd, ip, addr.port);
    } catch (e) {
      const err = toIpcError(e, `bind ${addr.text}`);
      if (err.systemCode === 'EADDRINUSE') throw new IpcError('ERR_IPCKIT_EXISTS', `${tcpText(ip, addr.port)} is in use`, { cause: err, systemCode: 'EADDRINUSE' });
      throw err;
    }
    sys(`listen on ${addr.text}`, () => native.listen(fd, backlog));
    local = sys(`listen on ${addr.text}`, () => native.localAddress(fd));
  } catch (e) {
    native.close(fd);
    throw toIpcError(e, `listen on ${addr.text}`);
  }
  const port = local.family === 'unix' ? addr.port : local.port;
  return new ListeningServer<T>(fd, 'tcp', tcpText(ip, port), undefined, port, options, null, undefined, acknowledged);
}

/** Connections an acknowledged server accepts before the application asks for them. */
const READY_LIMIT = 64;
/**
 * Connections accepted per readiness event: a flood of connections (refused ones cost us
 * as much as they cost the peer) must not hold the event loop; the poll fires again on
 * the next turn for the rest.
 */
const ACCEPT_BATCH = 64;

/** A connection given to the application: an acknowledged one starts reading its messages. */
function handOver<T>(channel: SocketChannel<T>): SocketChannel<T> {
  if (channel instanceof AckedChannel) channel.admit();
  return channel;
}

/** A listening stream or seqpacket socket. */
class ListeningServer<T> implements SocketServer<T> {
  readonly #fd: number;
  readonly #poll: FdPoll;
  readonly #waiters = new WaitQueue<SocketChannel<T>>('accept', undefined, () => {
    if (!this.#wanted()) this.#stopPolling();
  });
  readonly #options: SocketChannelOptions<CodecOption | undefined>;
  readonly #allow: AllowList | null;
  readonly #file: BoundFile | undefined;
  readonly #acknowledged: boolean;
  /** Acknowledged mode: connections accepted (and handshaking) before anyone asked. */
  readonly #ready: SocketChannel<T>[] = [];
  #polling = false;
  #closed = false;
  #refused = 0;
  #onReadable = (): void => this.#acceptSome();

  constructor(
    fd: number,
    readonly kind: SocketKind,
    readonly address: string,
    readonly path: string | undefined,
    readonly port: number | undefined,
    options: SocketChannelOptions<CodecOption | undefined>,
    allow: AllowList | null,
    file: BoundFile | undefined,
    acknowledged: boolean,
  ) {
    this.#fd = fd;
    this.#poll = new FdPoll(fd);
    this.#options = options;
    this.#allow = allow;
    this.#file = file;
    this.#acknowledged = acknowledged;
    // A reconnecting client waits for our handshake before its connect() resolves, so an
    // acknowledged server accepts ahead of the application, up to READY_LIMIT connections.
    if (acknowledged) this.#acceptSome();
  }

  get refused(): number {
    return this.#refused;
  }

  accept(options?: WaitOptions): Promise<SocketChannel<T>> {
    validate.waitOptions(options); // before the fast path: a bad option throws even when a connection is ready
    if (this.#closed) return Promise.reject(closedError('server'));
    const ready = this.#ready.shift();
    if (ready) {
      this.#acceptSome();
      return Promise.resolve(handOver(ready));
    }
    const p = this.#waiters.enqueue(options, undefined);
    this.#acceptSome();
    return p;
  }

  [Symbol.asyncIterator](): AsyncIterator<SocketChannel<T>> {
    return receiverIterator({ receive: (o?: WaitOptions) => this.accept(o) });
  }

  perm(): PosixIpcPerm | undefined {
    return this.#file && !this.#closed ? boundFilePerm(this.#file) : undefined;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiters.rejectAll(() => closedError('server'));
    this.#polling = false;
    this.#poll.close();
    native.close(this.#fd);
    if (this.#file) unlinkBoundFile(this.#file);
    await Promise.allSettled(this.#ready.splice(0).map((c) => c.close({ timeout: 100 })));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #startPolling(): void {
    if (this.#polling || this.#closed) return;
    this.#polling = true;
    this.#poll.want('read', this.#onReadable);
  }

  #stopPolling(): void {
    if (!this.#polling) return;
    this.#polling = false;
    this.#poll.unwant('read');
  }

  #wanted(): boolean {
    return this.#waiters.length > 0 || (this.#acknowledged && this.#ready.length < READY_LIMIT);
  }

  #acceptSome(): void {
    for (let n = 0; this.#wanted() && !this.#closed; n++) {
      if (n === ACCEPT_BATCH) {
        this.#startPolling();
        return;
      }
      const fd = native.accept(this.#fd);
      if (fd < 0) {
        const errno = -fd;
        if (errno === E.EAGAIN) {
          this.#startPolling();
          return;
        }
        if (errno === E.ECONNABORTED || errno === E.EPROTO) continue;
        // Out of descriptors (or worse): tell the waiting accept, and stop polling so a
        // connection the kernel keeps offering does not spin the loop.
        this.#waiters.rejectNext(errnoError(errno, 'accept', `accept on ${this.address}`));
        this.#stopPolling();
        return;
      }
      let channel: SocketChannel<T> | null;
      try {
        channel = this.#wrap(fd);
      } catch (e) {
        native.close(fd);
        this.#waiters.rejectNext(toIpcError(e, `accept on ${this.address}`));
        continue;
      }
      if (channel) {
        if (this.#waiters.resolveNext(channel)) handOver(channel);
        else this.#ready.push(channel);
      }
    }
    if (!this.#wanted()) this.#stopPolling();
  }

  /** A channel for an accepted fd, or null (closed at once) if the peer is not allowed. */
  #wrap(fd: number): SocketChannel<T> | null {
    let peer: PeerCredentials | undefined;
    if (this.kind !== 'tcp') {
      peer = native.peerCredentials(fd);
      if (!isAllowed(this.#allow, peer)) {
        this.#refused++;
        native.close(fd);
        return null;
      }
    } else {
      native.setSockOpt(fd, C.IPPROTO_TCP, C.TCP_NODELAY, 1);
    }
    if (this.kind === 'unix-seqpacket') native.setSockOpt(fd, C.SOL_SOCKET, C.SO_PASSCRED, 1);
    if (this.#acknowledged) {
      const raw = wrapConnected<Uint8Array>(fd, this.kind, rawAckedOptions(this.#options), peer) as unknown as StreamSocketChannel<Uint8Array>;
      return new AckedChannel<T>(raw, this.#options, 'server') as unknown as SocketChannel<T>;
    }
    return wrapConnected<T>(fd, this.kind, this.#options, peer);
  }
}

/** A bound Unix datagram socket as a server: each sender is a channel. */
class DatagramListener<T> implements SocketServer<T> {
  readonly kind = 'unix-dgram' as const;
  readonly address: string;
  readonly path: string | undefined;
  readonly port = undefined;
  readonly #server: DatagramServer<T>;
  readonly #file: BoundFile | undefined;

  constructor(fd: number, addr: UnixAddress, options: SocketChannelOptions<CodecOption | undefined>, allow: AllowList | null, file: BoundFile | undefined) {
    this.address = addr.text;
    this.path = addr.abstract ? undefined : addr.path;
    this.#server = new DatagramServer<T>(fd, options, allow, addr.text);
    this.#file = file;
  }

  get refused(): number {
    return this.#server.refused;
  }

  accept(options?: WaitOptions): Promise<SocketChannel<T>> {
    return this.#server.accept(options) as unknown as Promise<SocketChannel<T>>;
  }

  [Symbol.asyncIterator](): AsyncIterator<SocketChannel<T>> {
    return receiverIterator({ receive: (o?: WaitOptions) => this.accept(o) });
  }

  perm(): PosixIpcPerm | undefined {
    return this.#file && !this.#server.closed ? boundFilePerm(this.#file) : undefined;
  }

  async close(): Promise<void> {
    if (this.#server.closed) return;
    await this.#server.close();
    if (this.#file) unlinkBoundFile(this.#file);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

// --- connect ---

/**
 * Connects to `address`. Waits (with `timeout`/`signal`) only as long as the kernel
 * needs: a TCP handshake, a Unix listener whose backlog is full. With `reconnect`, also
 * waits for the server to appear, and stays connected across its restarts. Bad arguments
 * throw here, synchronously, before any socket exists; failures of the system or the
 * server (nobody listening, a server of another user, the timeout) reject.
 */
export function connect<C extends CodecOption | undefined = undefined>(address: string, options: ConnectOptions<C> = {}): Promise<SocketChannel<MessageOf<C>>> {
  validate.object('options', options);
  const addr = parseAddress(address);
  checkChannelOptions(addr.kind, options);
  validate.waitOptions(options);
  const owner = validate.optionalInteger('owner', options.owner, 0, 2 ** 32 - 2);
  const anyOwner = validate.optionalBoolean('anyOwner', options.anyOwner);
  const wait: WaitOptions = { ...(options.timeout !== undefined ? { timeout: options.timeout } : {}), ...(options.signal !== undefined ? { signal: options.signal } : {}) };
  if (options.reconnect === undefined || options.reconnect === false) return connectRaw<MessageOf<C>>(addr, { ...channelOptions(options), ...(anyOwner !== undefined ? { anyOwner } : {}) }, wait, owner);
  if (isPacketKind(addr.kind)) throw invalidArgument('`reconnect` applies to stream sockets (unix:, unix-abstract:, tcp://)');
  const reconnect = resolveReconnectOptions(options.reconnect);
  const raw = { ...rawAckedOptions(channelOptions(options)), ...(anyOwner !== undefined ? { anyOwner } : {}) };
  const channel = new ReconnectingChannel<MessageOf<C>>((o) => connectRaw(addr, raw, o, owner), channelOptions(options), reconnect, addr.text);
  return channel.start(wait).then(() => channel as unknown as SocketChannel<MessageOf<C>>);
}

/** One connection attempt, as a plain channel. */
function connectRaw<T>(addr: SocketAddress, options: SocketChannelOptions<CodecOption | undefined> & { anyOwner?: boolean }, wait: WaitOptions, owner: number | undefined): Promise<SocketChannel<T>> {
  const chOptions = channelOptions(options);
  const anyOwner = options.anyOwner === true;
  return cancellableWait<SocketChannel<T>>(`connect to ${addr.text}`, wait, (resolve, reject) => {
    let fd = -1;
    let poll: FdPoll | null = null;
    let timer: NodeJS.Timeout | undefined;
    let cancelled = false;
    const cleanup = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      poll?.close();
      poll = null;
      if (fd >= 0) native.close(fd);
      fd = -1;
    };
    const fail = (e: unknown): void => {
      cleanup();
      reject(toIpcError(e, `connect to ${addr.text}`));
    };
    const done = (peer: PeerCredentials | undefined): void => {
      poll?.close();
      poll = null;
      const myFd = fd;
      fd = -1;
      try {
        resolve(wrapConnected<T>(myFd, addr.kind, chOptions, peer));
      } catch (e) {
        native.close(myFd);
        reject(toIpcError(e, `connect to ${addr.text}`));
      }
    };
    const checkServer = (): PeerCredentials | undefined => {
      if (addr.kind === 'tcp') return undefined;
      const expected = owner ?? process.geteuid?.() ?? 0;
      let peer: PeerCredentials | undefined;
      if (addr.kind === 'unix-dgram') {
        // A datagram socket has no SO_PEERCRED: the socket file's owner stands in.
        if (!addr.abstract && !anyOwner) {
          const st = native.lstat(addr.path);
          if (st.uid !== expected) throw new IpcError('ERR_IPCKIT_PERMISSION', `${addr.path} belongs to uid ${st.uid}, not uid ${expected}; refusing it`, { path: addr.path, details: { uid: st.uid, expectedUid: expected }, remedy: TRUST_OWNER });
        }
        return undefined;
      }
      peer = native.peerCredentials(fd);
      if (!anyOwner && peer.uid !== expected) {
        throw new IpcError('ERR_IPCKIT_PERMISSION', `the server at ${addr.text} runs as uid ${peer.uid}, not uid ${expected}; refusing it`, {
          details: { uid: peer.uid, expectedUid: expected, pid: peer.pid },
          remedy: TRUST_OWNER,
        });
      }
      return peer;
    };
    const start = async (): Promise<void> => {
      prepareAddress(addr);
      if (addr.kind === 'tcp') {
        const { ip, family } = await resolveHost(addr.host);
        if (cancelled) return;
        fd = sys('create socket', () => native.socket(family === 6 ? C.AF_INET6 : C.AF_INET, C.SOCK_STREAM));
        native.setSockOpt(fd, C.IPPROTO_TCP, C.TCP_NODELAY, 1);
        const r = native.connectInet(fd, ip, addr.port);
        if (r === 0) return done(undefined);
        if (-r !== E.EINPROGRESS) return fail(connectError(-r, addr));
        poll = new FdPoll(fd);
        poll.want('write', () => {
          const err = native.getSockOpt(fd, C.SOL_SOCKET, C.SO_ERROR);
          if (err !== 0) return fail(connectError(err, addr));
          done(undefined);
        });
        return;
      }
      checkConnectPath(addr);
      fd = sys('create socket', () => native.socket(C.AF_UNIX, socketType(addr.kind)));
      if (addr.kind !== 'unix') native.setSockOpt(fd, C.SOL_SOCKET, C.SO_PASSCRED, 1);
      // A datagram client binds a unique abstract address so that the server can answer.
      if (addr.kind === 'unix-dgram') native.bindUnix(fd, Buffer.alloc(0));
      let delay = 1;
      const attempt = (): void => {
        timer = undefined;
        if (cancelled) return;
        const r = native.connectUnix(fd, addr.sunPath);
        if (r === 0) {
          try {
            return done(checkServer());
          } catch (e) {
            return fail(e);
          }
        }
        // A full backlog: the listener is alive but busy; retry until the timeout.
        if (-r === E.EAGAIN) {
          timer = setTimeout(attempt, delay);
          delay = Math.min(delay * 2, 50);
          return;
        }
        fail(connectError(-r, addr));
      };
      attempt();
    };
    start().catch(fail);
    return () => {
      cancelled = true;
      cleanup();
    };
  });
}

function connectError(errno: number, addr: SocketAddress): IpcError {
  const e = errnoError(errno, 'connect', `connect to ${addr.text}`, addr.kind !== 'tcp' && !addr.abstract ? { path: addr.path } : {});
  if (errno === E.ECONNREFUSED || errno === E.ENOENT) {
    return new IpcError('ERR_IPCKIT_NOT_FOUND', `nobody is listening on ${addr.text} (${e.systemCode})`, { cause: e, errno, syscall: 'connect', systemCode: e.systemCode! });
  }
  return e;
}

/**
 * A connected pair of Unix sockets in this process (socketpair): for a child that
 * inherits one end, or for tests. `kind` is 'unix' (stream), 'unix-dgram' or
 * 'unix-seqpacket'.
 */
export function socketPair<C extends CodecOption | undefined = undefined>(kind: 'unix' | 'unix-dgram' | 'unix-seqpacket' = 'unix', options: SocketChannelOptions<C> = {}): [SocketChannel<MessageOf<C>>, SocketChannel<MessageOf<C>>] {
  validate.oneOf('kind', kind, ['unix', 'unix-dgram', 'unix-seqpacket'] as const);
  checkChannelOptions(kind, options);
  const [a, b] = sys('create socket pair', () => native.socketpair(socketType(kind)));
  try {
    if (kind !== 'unix') {
      native.setSockOpt(a, C.SOL_SOCKET, C.SO_PASSCRED, 1);
      native.setSockOpt(b, C.SOL_SOCKET, C.SO_PASSCRED, 1);
    }
    const me = { pid: process.pid, uid: process.geteuid?.() ?? 0, gid: process.getegid?.() ?? 0 };
    const o = channelOptions(options);
    return [wrapConnected<MessageOf<C>>(a, kind, o, me, true), wrapConnected<MessageOf<C>>(b, kind, o, me, true)];
  } catch (e) {
    native.close(a);
    native.close(b);
    throw e;
  }
}

/**
 * A channel over a socket fd we inherited (a child started with one end of a
 * socketPair at fd 3, say). The fd is made non-blocking and close-on-exec.
 */
export function openInheritedSocket<C extends CodecOption | undefined = undefined>(fd: number, options: SocketChannelOptions<C> = {}): SocketChannel<MessageOf<C>> {
  validate.integer('fd', fd, 0, 2 ** 31 - 1);
  validate.object('options', options);
  const type = sys(`inspect fd ${fd}`, () => native.getSockOpt(fd, C.SOL_SOCKET, C.SO_TYPE));
  const local = tryAddr(() => native.localAddress(fd));
  const unix = local?.family === 'unix';
  const kind: SocketKind = type === C.SOCK_DGRAM ? 'unix-dgram' : type === C.SOCK_SEQPACKET ? 'unix-seqpacket' : unix ? 'unix' : 'tcp';
  if (!unix && kind !== 'tcp') throw invalidArgument(`fd ${fd} is a datagram socket that is not a Unix socket`);
  checkChannelOptions(kind, options);
  sys(`adopt fd ${fd}`, () => {
    native.setNonBlocking(fd, true);
    native.setCloexec(fd, true);
    if (kind === 'unix-dgram' || kind === 'unix-seqpacket') native.setSockOpt(fd, C.SOL_SOCKET, C.SO_PASSCRED, 1);
  });
  const peer = unix && kind !== 'unix-dgram' ? tryCreds(fd) : undefined;
  return wrapConnected<MessageOf<C>>(fd, kind, channelOptions(options), peer);
}

function tryCreds(fd: number): PeerCredentials | undefined {
  try {
    return native.peerCredentials(fd);
  } catch {
    return undefined;
  }
}
