/**
 * Anonymous pipes: a real pipe(2), half-duplex. One end reads (a Receiver), the other
 * writes (a Sender); a two-way link is two pipes. (Node's child "pipes" are socketpairs;
 * these are pipes, so `cat`, `sh` and any C program see exactly what they expect.)
 *
 * - `createPipe()` gives both ends in this process.
 * - `spawnWithPipes()` starts a child with pipe ends at chosen fds (3, 4, ...) and gives
 *   us the other ends; in the child, `openInheritedPipe(fd)` (or any program's read/write
 *   on that fd) uses them.
 * - Capacity: read and set with F_GETPIPE_SZ / F_SETPIPE_SZ (up to
 *   /proc/sys/fs/pipe-max-size for unprivileged users).
 * - Several writers: a write of at most PIPE_BUF (4096) bytes is atomic; with
 *   `{ atomic: true }` every write() is whole frames within PIPE_BUF, so frames from
 *   several processes never interleave.
 * - A reader that is gone makes `send` reject with ERR_IPCKIT_PEER_GONE (EPIPE); Node
 *   ignores SIGPIPE, and nothing here emits an 'error' event.
 */
import { readFileSync } from 'node:fs';
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { DIRECTIONS, RESOLVED, type Direction, type WaitOptions } from '../../core/channel.js';
import { describeExit, exitWithin, killSignal, startChild, validateArgv, validateChildOptions, waitForExit, type ChildExit, type ChildOptions, type StartedChild } from '../../os/child.js';
import type { CodecOption, MessageOf } from '../../core/codec.js';
import { errnoError, invalidArgument, IpcError, sys } from '../../core/errors.js';
import { native } from '../../os/native.js';
import { FdReader, FdWriter, validateStreamOptions, type ReaderOptions, type StreamHooks, type WriterOptions } from '../../os/fd-stream.js';
import * as validate from '../../core/validate.js';

const O_ACCMODE = 3;

export interface PipeOptions<C extends CodecOption | undefined = undefined> extends ReaderOptions<C>, WriterOptions<C> {
  /** Pipe buffer size in bytes (F_SETPIPE_SZ); the kernel rounds it up to a power-of-two pages. */
  capacityBytes?: number;
}

function pipeMaxSize(): number | undefined {
  try {
    return Number(readFileSync('/proc/sys/fs/pipe-max-size', 'utf8').trim());
  } catch {
    return undefined;
  }
}

/** Reads a pipe's capacity. */
export function getPipeCapacity(fd: number): number {
  validate.integer('fd', fd, 0, 2 ** 31 - 1);
  return sys('get pipe capacity', () => native.getPipeSize(fd));
}

/** A pipe capacity in bytes (the kernel rounds it up to a power-of-two pages). */
function checkCapacity(bytes: unknown): number | undefined {
  return validate.optionalInteger('capacityBytes', bytes, 1, 2 ** 31 - 1);
}

/** Sets a pipe's capacity; returns what the kernel set. */
export function setPipeCapacity(fd: number, bytes: number): number {
  validate.integer('fd', fd, 0, 2 ** 31 - 1);
  validate.integer('capacity', bytes, 1, 2 ** 31 - 1);
  try {
    return sys('set pipe capacity', () => native.setPipeSize(fd, bytes));
  } catch (e) {
    if (e instanceof IpcError && e.code === 'ERR_IPCKIT_PERMISSION') {
      const max = pipeMaxSize();
      throw new IpcError('ERR_IPCKIT_LIMIT', `pipe capacity ${bytes} is above /proc/sys/fs/pipe-max-size (${max}); raise that sysctl or ask for less`, {
        cause: e,
        details: { limit: 'fs.pipe-max-size', value: max, requested: bytes },
      });
    }
    if (e instanceof IpcError && e.code === 'ERR_IPCKIT_SYSCALL' && e.systemCode === 'EBUSY') {
      throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `pipe capacity ${bytes} is smaller than the data in the pipe now`, { cause: e });
    }
    throw e;
  }
}

/** The read end of a pipe. */
export class PipeReader<T, R = void> extends FdReader<T, R> {
  /** The pipe buffer's size in bytes (F_GETPIPE_SZ). */
  get capacityBytes(): number {
    return getPipeCapacity(this.fd);
  }
  /** Sets the pipe buffer's size (F_SETPIPE_SZ); returns what the kernel set. */
  setCapacityBytes(bytes: number): number {
    return setPipeCapacity(this.fd, bytes);
  }
}

/** The write end of a pipe. */
export class PipeWriter<T, R = void> extends FdWriter<T, R> {
  /** The pipe buffer's size in bytes (F_GETPIPE_SZ). */
  get capacityBytes(): number {
    return getPipeCapacity(this.fd);
  }
  /** Sets the pipe buffer's size (F_SETPIPE_SZ); returns what the kernel set. */
  setCapacityBytes(bytes: number): number {
    return setPipeCapacity(this.fd, bytes);
  }
}

/**
 * Our write end of a pipe a child reads (spawnWithPipes, popen): when the child is gone,
 * the ERR_IPCKIT_PEER_GONE of `send`, `flush` or `close` carries its exit status in
 * `details` (`exitCode`, `signal`).
 */
export class ChildPipeWriter<T, R = void> extends PipeWriter<T, R> {
  readonly #exited: Promise<ChildExit>;

  /** @internal */
  constructor(fd: number, options: WriterOptions<CodecOption | undefined>, exited: Promise<ChildExit>) {
    super(fd, options);
    this.#exited = exited;
  }

  // Each calls the base method first, so its bad arguments throw at once, as there.
  override send(message: T, options?: WaitOptions): Promise<void> {
    const p = super.send(message, options);
    if (p === RESOLVED) return p;
    return p.then(undefined, (e: unknown) => this.#withStatus(e));
  }

  override sendMany(messages: Iterable<T>, options?: WaitOptions): Promise<void> {
    return super.sendMany(messages, options).then(undefined, (e: unknown) => this.#withStatus(e));
  }

  override flush(options?: WaitOptions): Promise<void> {
    const p = super.flush(options);
    if (p === RESOLVED) return p;
    return p.then(undefined, (e: unknown) => this.#withStatus(e));
  }

  override close(options?: WaitOptions): Promise<R> {
    return super.close(options).then(undefined, (e: unknown) => this.#withStatus(e));
  }

  async #withStatus(e: unknown): Promise<never> {
    throw e instanceof IpcError && e.code === 'ERR_IPCKIT_PEER_GONE' ? await withExitStatus(e, this.#exited) : e;
  }
}

function readerOptions<C extends CodecOption | undefined>(o: PipeOptions<C>): ReaderOptions<C> {
  const { capacityBytes: _c, highWaterMark: _h, atomic: _a, ...rest } = o;
  return rest;
}

function writerOptions<C extends CodecOption | undefined>(o: PipeOptions<C>): WriterOptions<C> {
  const { capacityBytes: _c, readBufferBytes: _r, spinMicros: _s, ...rest } = o;
  return rest;
}

/** Both ends of a new pipe, in this process. */
export function createPipe<C extends CodecOption | undefined = undefined>(
  options: PipeOptions<C> = {},
): { reader: PipeReader<MessageOf<C>>; writer: PipeWriter<MessageOf<C>> } {
  validateStreamOptions(options);
  checkCapacity(options.capacityBytes);
  const [r, w] = sys('create pipe', () => native.pipe());
  let reader: PipeReader<MessageOf<C>> | undefined;
  try {
    native.setNonBlocking(r, true);
    native.setNonBlocking(w, true);
    if (options.capacityBytes !== undefined) setPipeCapacity(w, options.capacityBytes);
    reader = new PipeReader<MessageOf<C>>(r, readerOptions(options));
    return { reader, writer: new PipeWriter<MessageOf<C>>(w, writerOptions(options)) };
  } catch (e) {
    if (reader) void reader.close(); // it owns r now
    else native.close(r);
    native.close(w);
    throw e;
  }
}

/** Which way a child's pipe goes, from our side: we 'write' to the child, or 'read' from it. */
export type PipeDirection = Direction;

export interface ChildPipeSpec<C extends CodecOption | undefined = CodecOption | undefined> extends PipeOptions<C> {
  direction: PipeDirection;
}

export interface SpawnWithPipesOptions<C extends CodecOption | undefined = CodecOption | undefined> extends ChildOptions, PipeOptions<C> {
  /**
   * fd number in the child -> direction (or a spec with its own codec/framing). fds 0-2
   * are allowed too: `{ 0: 'write' }` makes the child's stdin a pipe we write to.
   */
  pipes?: Record<number, PipeDirection | ChildPipeSpec>;
  /** The child's stdin/stdout when not given in `pipes` (default: stdin ignored, stdout inherited). */
  stdin?: 'inherit' | 'ignore';
  stdout?: 'inherit' | 'ignore';
}

/** A child started with pipes at chosen fds; `M` is the message type of the top-level codec. */
export class PipedChild<M = Uint8Array> {
  readonly #pipes = new Map<number, PipeReader<unknown> | PipeWriter<unknown>>();
  readonly pid: number;
  readonly child: ChildProcess;
  /** Settles with the exit status once the child has exited (it is always reaped). */
  readonly exited: Promise<ChildExit>;

  readonly #kill: (signal?: NodeJS.Signals | number) => boolean;

  /** @internal */
  constructor(started: StartedChild, pipes: Map<number, PipeReader<unknown> | PipeWriter<unknown>>) {
    this.pid = started.pid;
    this.child = started.child;
    this.exited = started.exited;
    this.#kill = started.kill;
    for (const [k, v] of pipes) this.#pipes.set(k, v);
  }

  /** Our writing end of the pipe the child reads at `fd`. */
  sender<T = M>(fd: number): PipeWriter<T> {
    validate.integer('fd', fd, 0, 1023);
    const p = this.#pipes.get(fd);
    if (!(p instanceof PipeWriter)) throw invalidArgument(`fd ${fd} of the child is not a pipe we write to ('write')`);
    return p as PipeWriter<T>;
  }

  /** Our reading end of the pipe the child writes at `fd`. */
  receiver<T = M>(fd: number): PipeReader<T> {
    validate.integer('fd', fd, 0, 1023);
    const p = this.#pipes.get(fd);
    if (!(p instanceof PipeReader)) throw invalidArgument(`fd ${fd} of the child is not a pipe we read from ('read')`);
    return p as PipeReader<T>;
  }

  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    return this.#kill(killSignal(signal));
  }

  /**
   * Closes our pipe ends (senders flush first) and waits for the child to exit.
   * `timeout`/`signal` bound each wait; the child is then left running (use `kill()`).
   */
  close(options?: WaitOptions): Promise<ChildExit> {
    validate.waitOptions(options);
    return this.#close(options);
  }

  async #close(options: WaitOptions | undefined): Promise<ChildExit> {
    const results = await Promise.allSettled([...this.#pipes.values()].map((p) => (p instanceof PipeWriter ? p.close(options) : p.close())));
    const exit = await waitForExit(this.exited, `wait for ${this.pid} to exit`, options);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return exit;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      for (const p of this.#pipes.values()) await p.close().catch(() => {});
      if ((await exitWithin(this.exited, 1000)) === undefined) this.kill('SIGKILL');
    }
    await this.close().catch(() => {});
  }
}

/**
 * Starts `command` (argv, no shell) with real pipes at the fds named in `pipes`. The
 * child's ends are blocking, ours are not. Example: `{ 3: 'write', 4: 'read' }` (from our side).
 */
export function spawnWithPipes<C extends CodecOption | undefined = undefined>(command: string[], options: SpawnWithPipesOptions<C> = {}): PipedChild<MessageOf<C>> {
  const argv = validateArgv(command);
  validate.object('options', options);
  if (options.pipes !== undefined && (options.pipes === null || typeof options.pipes !== 'object' || Array.isArray(options.pipes))) {
    throw invalidArgument(`pipes must map child fds to "write" (we write, the child reads) or "read", like { 3: 'write' }, got ${validate.describe(options?.pipes)}`);
  }
  const { pipes: _p, stdin, stdout, stderr, cwd, env, dieWithParent, processGroup, ...common } = options;
  validateChildOptions(options);
  validate.optionalOneOf('stdin', stdin, ['inherit', 'ignore'] as const);
  validate.optionalOneOf('stdout', stdout, ['inherit', 'ignore'] as const);
  validateStreamOptions(common);
  checkCapacity(common.capacityBytes);
  const entries = Object.entries(options.pipes ?? {}).map(([k, v]) => {
    const fd = validate.integer('pipes fd', Number(k), 0, 1023);
    if (typeof v !== 'string' && (v === null || typeof v !== 'object')) throw invalidArgument(`pipes[${fd}] must be "write", "read" or a spec object, got ${validate.describe(v)}`);
    const spec: ChildPipeSpec = typeof v === 'string' ? { direction: v } : v;
    validate.oneOf(typeof v === 'string' ? `pipes[${fd}]` : `pipes[${fd}].direction`, spec.direction, DIRECTIONS);
    // Every pipe's own options, checked (with the common ones) before any pipe exists.
    validateStreamOptions({ ...common, ...spec }, `pipes[${fd}]`);
    checkCapacity(spec.capacityBytes);
    return [fd, spec] as const;
  });
  const maxFd = Math.max(2, ...entries.map(([fd]) => fd));
  const stdio: StdioOptions = Array.from({ length: maxFd + 1 }, (_, i) =>
    i === 0 ? (stdin ?? 'ignore') : i === 1 ? (stdout ?? 'inherit') : i === 2 ? (stderr ?? 'inherit') : 'ignore',
  );
  const ours = new Map<number, PipeReader<unknown> | PipeWriter<unknown>>();
  const childEnds: number[] = [];
  // Readers learn the child's exit status when its stream ends inside a frame.
  let exitedLater: (p: Promise<ChildExit>) => void = () => {};
  const exited = new Promise<ChildExit>((resolve, reject) => {
    exitedLater = (p) => p.then(resolve, reject);
  });
  exited.catch(() => {});
  const hooks: StreamHooks = { truncatedEnd: (e) => withExitStatus(e, exited) };
  const cleanup = (): void => {
    for (const fd of childEnds) native.close(fd);
  };
  try {
    for (const [fd, spec] of entries) {
      const opts = { ...common, ...spec };
      const [r, w] = sys('create pipe', () => native.pipe());
      const [mine, theirs] = spec.direction === 'write' ? [w, r] : [r, w];
      childEnds.push(theirs);
      try {
        native.setNonBlocking(mine, true);
        if (opts.capacityBytes !== undefined) setPipeCapacity(mine, opts.capacityBytes);
        ours.set(fd, spec.direction === 'write' ? new ChildPipeWriter(mine, writerOptions(opts), exited) : new PipeReader(mine, readerOptions(opts), hooks));
      } catch (e) {
        native.close(mine); // not yet owned by a reader or writer
        throw e;
      }
      (stdio as unknown[])[fd] = theirs;
    }
    const started = startChild(argv, stdio, {
      ...(cwd !== undefined ? { cwd } : {}),
      ...(env !== undefined ? { env } : {}),
      ...(dieWithParent !== undefined ? { dieWithParent } : {}),
      ...(processGroup !== undefined ? { processGroup } : {}),
    });
    cleanup();
    exitedLater(started.exited);
    return new PipedChild<MessageOf<C>>(started, ours);
  } catch (e) {
    cleanup();
    for (const p of ours.values()) void p.close().catch(() => {});
    throw e;
  }
}

/**
 * In a child: the pipe end inherited at `fd`, as a Receiver ('read') or Sender ('write'). The
 * direction defaults to the fd's access mode. The fd is switched to non-blocking (that
 * flag is shared with anyone else holding the same open pipe end).
 */
export function openInheritedPipe<C extends CodecOption | undefined = undefined>(
  fd: number,
  direction: 'read',
  options?: PipeOptions<C>,
): PipeReader<MessageOf<C>>;
export function openInheritedPipe<C extends CodecOption | undefined = undefined>(
  fd: number,
  direction: 'write',
  options?: PipeOptions<C>,
): PipeWriter<MessageOf<C>>;
export function openInheritedPipe<C extends CodecOption | undefined = undefined>(
  fd: number,
  direction?: Direction,
  options?: PipeOptions<C>,
): PipeReader<MessageOf<C>> | PipeWriter<MessageOf<C>>;
export function openInheritedPipe<C extends CodecOption | undefined = undefined>(
  fd: number,
  direction?: Direction,
  options: PipeOptions<C> = {},
): PipeReader<MessageOf<C>> | PipeWriter<MessageOf<C>> {
  validate.integer('fd', fd, 0, 2 ** 31 - 1);
  if (direction !== undefined) validate.oneOf('direction', direction, DIRECTIONS);
  validateStreamOptions(options);
  checkCapacity(options.capacityBytes);
  const st = sys(`inherited fd ${fd}`, () => native.fstat(fd));
  const type = st.mode & fsConstants.S_IFMT;
  if (type !== fsConstants.S_IFIFO && type !== fsConstants.S_IFSOCK) {
    throw invalidArgument(`fd ${fd} is not a pipe (or socket): it cannot carry a stream of messages`);
  }
  const access = native.getStatusFlags(fd) & O_ACCMODE;
  const dir = direction ?? (access === fsConstants.O_WRONLY ? 'write' : 'read');
  if ((dir === 'read' && access === fsConstants.O_WRONLY) || (dir === 'write' && access === fsConstants.O_RDONLY)) {
    throw invalidArgument(`fd ${fd} is open for ${access === fsConstants.O_WRONLY ? 'writing' : 'reading'} only, not for ${dir === 'read' ? 'reading' : 'writing'}`);
  }
  native.setCloexec(fd, true);
  native.setNonBlocking(fd, true);
  if (options.capacityBytes !== undefined && type === fsConstants.S_IFIFO) setPipeCapacity(fd, options.capacityBytes);
  return dir === 'read' ? new PipeReader<MessageOf<C>>(fd, readerOptions(options)) : new PipeWriter<MessageOf<C>>(fd, writerOptions(options));
}

/** Adds a child's exit status to a peer error once it is known (briefly waited for). */
export async function withExitStatus(error: IpcError, exited: Promise<ChildExit>, waitMs = 500): Promise<IpcError> {
  const exit = await exitWithin(exited, waitMs);
  if (!exit) return error;
  // A stream cut short by a child that died (signal, failure) is a dead peer, not bad framing.
  const died = exit.signal !== null || exit.exitCode !== 0;
  const code = error.code === 'ERR_IPCKIT_BAD_FRAME' && died ? 'ERR_IPCKIT_PEER_GONE' : error.code;
  return error.amend({ code, note: `the child ${describeExit(exit)}`, details: { exitCode: exit.exitCode, signal: exit.signal } });
}

export type { ChildExit, StreamHooks };
export { errnoError };
