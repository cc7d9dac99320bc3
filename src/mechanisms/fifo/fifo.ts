/**
 * Named pipes (FIFOs, mkfifo): a pipe with a path, for unrelated processes.
 *
 * - `createFifo(path?, { mode })`: exclusive, mode exactly 0600 unless asked; a path that
 *   exists (whatever it is) is ERR_IPCKIT_EXISTS. Without a path, one in the private
 *   runtime folder.
 * - `openFifo(path, 'read' | 'write')`: refuses a symlink (ERR_IPCKIT_PERMISSION), anything that
 *   is not a FIFO (ERR_IPCKIT_INVALID_ARGUMENT) and a FIFO that is not ours or is wider than
 *   allowed (ERR_IPCKIT_PERMISSION, see permissions.ts).
 * - Opens never block: they use O_NONBLOCK, never a thread of libuv's pool (a blocking
 *   FIFO open there is how four waiting FIFOs freeze every `fs` call in Node). A reader
 *   opens at once and its `receive` waits; a writer waits for a reader by retrying, with
 *   `timeout` and `signal`.
 * - End of stream: a reader sees the end when the last writer closes (a reader opened
 *   before any writer waits for the first one), unless it asked for `{ keepOpen: true }`:
 *   then it stays open across successive writers (it holds a write end itself) until closed.
 * - Several writers: `{ atomic: true }` keeps each write() whole frames within PIPE_BUF,
 *   so their messages never interleave (see pipe.ts).
 */
import { constants as fsConstants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { cancellableWait, DIRECTIONS, type Direction, type WaitOptions } from '../../core/channel.js';
import type { CodecOption, MessageOf } from '../../core/codec.js';
import { closedError, errnoError, errnoOf, IpcError, sys, toIpcError } from '../../core/errors.js';
import { native, type NativeStat } from '../../os/native.js';
import { checkOwner, createMode, fileTypeName, validateOwnerCheck, type CreateModeOptions, type OwnerCheckOptions } from '../../os/permissions.js';
import { runtimePath } from '../../os/runtime.js';
import { posixPerm, type PosixIpcPerm } from '../../os/ipc-perm.js';
import { PipeReader, PipeWriter, setPipeCapacity } from '../pipe/pipe.js';
import { FdPoll, validateStreamOptions, type ReaderOptions, type WriterOptions } from '../../os/fd-stream.js';
import * as validate from '../../core/validate.js';

const { O_RDONLY, O_WRONLY, O_NONBLOCK, O_NOFOLLOW, S_IFMT, S_IFIFO, S_IFLNK } = fsConstants;
const O_CLOEXEC = 0o2000000;
const ENXIO = osConstants.errno.ENXIO;

export type CreateFifoOptions = CreateModeOptions;

/** Creates a FIFO (exclusively) and returns its path. */
export function createFifo(path?: string, options: CreateFifoOptions = {}): string {
  if (path !== undefined) validate.string('path', path);
  validate.object('options', options);
  const { mode, group } = createMode(options);
  const p = path ?? runtimePath('fifo');
  sys(`create FIFO ${p}`, () => native.mkfifo(p, mode & 0o700), { path: p });
  try {
    // Set the exact mode (and group) on what we created, through an fd: no umask, no path race.
    const fd = sys(`open FIFO ${p}`, () => native.open(p, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0), { path: p });
    try {
      if (group !== undefined) sys(`set the group of ${p}`, () => native.fchown(fd, -1, group), { path: p });
      sys(`set the mode of ${p}`, () => native.fchmod(fd, mode), { path: p });
    } finally {
      native.close(fd);
    }
  } catch (e) {
    try {
      native.unlink(p);
    } catch {
      /* it was ours; nothing more to do */
    }
    throw e;
  }
  return p;
}

/** Removes a FIFO. Idempotent: false if nothing was there. Refuses to remove anything that is not a FIFO. */
export function unlinkFifo(path: string): boolean {
  validate.string('path', path);
  let st: NativeStat;
  try {
    st = native.lstat(path);
  } catch (e) {
    if (errnoOf(e) === osConstants.errno.ENOENT) return false;
    throw toIpcError(e, `remove FIFO ${path}`);
  }
  if ((st.mode & S_IFMT) !== S_IFIFO) {
    throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `refusing to remove ${path}: it is ${fileTypeName(st.mode)}, not a FIFO`, { path });
  }
  try {
    native.unlink(path);
  } catch (e) {
    if (errnoOf(e) === osConstants.errno.ENOENT) return false;
    throw toIpcError(e, `remove FIFO ${path}`, { path });
  }
  return true;
}

export interface OpenFifoOptions<C extends CodecOption | undefined = undefined>
  extends ReaderOptions<C>,
    WriterOptions<C>,
    OwnerCheckOptions,
    WaitOptions {
  /** Reader only: stay open across successive writers instead of ending when the last one closes. */
  keepOpen?: boolean;
  /** Remove the FIFO's path when this end is closed. */
  unlinkOnClose?: boolean;
  /** Pipe buffer size in bytes (F_SETPIPE_SZ; shared by every user of the FIFO while it is open). */
  capacityBytes?: number;
}

function unlinkQuietly(path: string): void {
  try {
    unlinkFifo(path);
  } catch {
    /* already gone or replaced by something that is not ours to remove */
  }
}

/** The read end of a FIFO. */
export class FifoReader<T> extends PipeReader<T> {
  /** @internal */
  constructor(
    readonly path: string,
    fd: number,
    options: ReaderOptions<CodecOption | undefined>,
    keepOpen: FdPoll | undefined,
    unlinkOnClose = false,
  ) {
    super(fd, options, {
      zeroReadNeedsPoll: keepOpen === undefined,
      onRelease: () => {
        keepOpen?.close(); // closes the write end we held
        if (unlinkOnClose) unlinkQuietly(path);
      },
    });
  }

  /** Removes the FIFO's path (idempotent); this end stays usable. */
  unlink(): boolean {
    return unlinkFifo(this.path);
  }

  /** The permission record every IPC object reports (fstat of this end): no key, creator or sequence number, which POSIX objects do not have. */
  perm(): PosixIpcPerm {
    return fifoPerm(this.path, this.fd);
  }
}

/** The write end of a FIFO. */
export class FifoWriter<T> extends PipeWriter<T> {
  /** @internal */
  constructor(
    readonly path: string,
    fd: number,
    options: WriterOptions<CodecOption | undefined>,
    unlinkOnClose = false,
  ) {
    super(fd, options, unlinkOnClose ? { onRelease: () => unlinkQuietly(path) } : {});
  }

  /** Removes the FIFO's path (idempotent); this end stays usable. */
  unlink(): boolean {
    return unlinkFifo(this.path);
  }

  /** The permission record every IPC object reports (fstat of this end): no key, creator or sequence number, which POSIX objects do not have. */
  perm(): PosixIpcPerm {
    return fifoPerm(this.path, this.fd);
  }
}

function fifoPerm(path: string, fd: number): PosixIpcPerm {
  const st = sys(`fstat FIFO ${path}`, () => native.fstat(fd), { path }); // EBADF after close: ERR_IPCKIT_CLOSED
  if ((st.mode & S_IFMT) !== S_IFIFO) throw closedError(`FIFO ${path}`); // closed, and the number reused
  return posixPerm('fifo', path, st);
}

/** lstat checks before any open: exists, not a symlink, a FIFO, ours. */
function checkPath(path: string, options: OwnerCheckOptions): NativeStat {
  let st: NativeStat;
  try {
    st = native.lstat(path);
  } catch (e) {
    // The same words as every named kind's: "no <kind> <name>".
    if (errnoOf(e) === osConstants.errno.ENOENT) throw new IpcError('ERR_IPCKIT_NOT_FOUND', `no FIFO ${path}`, { path, errno: osConstants.errno.ENOENT, syscall: 'lstat', systemCode: 'ENOENT' });
    throw toIpcError(e, `open FIFO ${path}`, { path });
  }
  if ((st.mode & S_IFMT) === S_IFLNK) throw new IpcError('ERR_IPCKIT_PERMISSION', `refusing to open ${path}: it is a symlink`, { path });
  if ((st.mode & S_IFMT) !== S_IFIFO) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `cannot open ${path} as a FIFO: it is ${fileTypeName(st.mode)}`, { path });
  checkOwner(st, `FIFO ${path}`, options);
  return st;
}

/** After open: the fd is the FIFO we checked (not something swapped in between). */
function checkOpened(path: string, fd: number, before: NativeStat, options: OwnerCheckOptions): void {
  const st = sys(`open FIFO ${path}`, () => native.fstat(fd), { path });
  if ((st.mode & S_IFMT) !== S_IFIFO || st.ino !== before.ino || st.dev !== before.dev) {
    throw new IpcError('ERR_IPCKIT_PERMISSION', `${path} changed while it was being opened; refusing it`, { path });
  }
  checkOwner(st, `FIFO ${path}`, options);
}

function readerOptions<C extends CodecOption | undefined>(o: OpenFifoOptions<C>): ReaderOptions<C> {
  const r: ReaderOptions<C> = {};
  if (o.codec !== undefined) r.codec = o.codec;
  if (o.framing !== undefined) r.framing = o.framing;
  if (o.maxMessageBytes !== undefined) r.maxMessageBytes = o.maxMessageBytes;
  if (o.readBufferBytes !== undefined) r.readBufferBytes = o.readBufferBytes;
  if (o.spinMicros !== undefined) r.spinMicros = o.spinMicros;
  return r;
}

function writerOptions<C extends CodecOption | undefined>(o: OpenFifoOptions<C>): WriterOptions<C> {
  const w: WriterOptions<C> = {};
  if (o.codec !== undefined) w.codec = o.codec;
  if (o.framing !== undefined) w.framing = o.framing;
  if (o.maxMessageBytes !== undefined) w.maxMessageBytes = o.maxMessageBytes;
  if (o.highWaterMark !== undefined) w.highWaterMark = o.highWaterMark;
  if (o.atomic !== undefined) w.atomic = o.atomic;
  return w;
}

/**
 * Opens a FIFO for reading ('read': at once) or writing ('write': waits for a reader). Bad
 * arguments throw here, synchronously, before anything is opened; failures of the system
 * (no such FIFO, not ours, no reader in time) reject the promise.
 */
export function openFifo<C extends CodecOption | undefined = undefined>(path: string, direction: 'read', options?: OpenFifoOptions<C>): Promise<FifoReader<MessageOf<C>>>;
export function openFifo<C extends CodecOption | undefined = undefined>(path: string, direction: 'write', options?: OpenFifoOptions<C>): Promise<FifoWriter<MessageOf<C>>>;
export function openFifo<C extends CodecOption | undefined = undefined>(
  path: string,
  direction: Direction,
  options: OpenFifoOptions<C> = {},
): Promise<FifoReader<MessageOf<C>> | FifoWriter<MessageOf<C>>> {
  validate.string('path', path);
  validate.oneOf('direction', direction, DIRECTIONS);
  validate.object('options', options);
  validate.waitOptions(options);
  validateOwnerCheck(options);
  validate.optionalInteger('capacityBytes', options.capacityBytes, 1, 2 ** 31 - 1);
  validate.optionalBoolean('keepOpen', options.keepOpen);
  validate.optionalBoolean('unlinkOnClose', options.unlinkOnClose);
  validateStreamOptions(options);
  return open(path, direction, options);
}

async function open<C extends CodecOption | undefined>(path: string, direction: Direction, options: OpenFifoOptions<C>): Promise<FifoReader<MessageOf<C>> | FifoWriter<MessageOf<C>>> {
  const ropts = readerOptions(options);
  const wopts = writerOptions(options);
  const before = checkPath(path, options);

  if (direction === 'read') {
    const fd = sys(`open FIFO ${path} for reading`, () => native.open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0), { path });
    let keepOpenFd: number | undefined;
    let keepOpen: FdPoll | undefined;
    try {
      checkOpened(path, fd, before, options);
      // Holding a write end ourselves keeps the stream open between writers.
      if (options.keepOpen) {
        keepOpenFd = sys(`open FIFO ${path}`, () => native.open(path, O_WRONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0), { path });
        checkOpened(path, keepOpenFd, before, options);
        // Never watched: it only owns the fd, so that a worker that ends closes it too.
        keepOpen = new FdPoll(keepOpenFd, true);
      }
      if (options.capacityBytes !== undefined) setPipeCapacity(fd, options.capacityBytes);
      return new FifoReader<MessageOf<C>>(path, fd, ropts, keepOpen, options.unlinkOnClose === true);
    } catch (e) {
      native.close(fd);
      if (keepOpen) keepOpen.close();
      else if (keepOpenFd !== undefined) native.close(keepOpenFd);
      throw e;
    }
  }

  const fd = await cancellableWait<number>(`open FIFO ${path} for writing (waiting for a reader)`, options, (resolve, reject) => {
    // O_NONBLOCK write-open fails with ENXIO until a reader is there: retry with backoff.
    let delay = 1;
    let timer: NodeJS.Timeout | undefined;
    const attempt = (): void => {
      const r = native.tryOpen(path, O_WRONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0);
      if (r >= 0) return resolve(r);
      if (-r !== ENXIO) return reject(errnoError(-r, 'open', `open FIFO ${path} for writing`, { path }));
      timer = setTimeout(attempt, delay);
      delay = Math.min(delay * 2, 50);
    };
    attempt();
    return () => clearTimeout(timer);
  });
  try {
    checkOpened(path, fd, before, options);
    if (options.capacityBytes !== undefined) setPipeCapacity(fd, options.capacityBytes);
    return new FifoWriter<MessageOf<C>>(path, fd, wopts, options.unlinkOnClose === true);
  } catch (e) {
    native.close(fd);
    throw e;
  }
}
