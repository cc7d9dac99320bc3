/**
 * Descriptors passed between processes over Unix sockets (SCM_RIGHTS), and anonymous
 * shared memory that travels only that way.
 *
 * - Anything with a descriptor can be sent: an open file (`fs.openSync`, a FileHandle), a
 *   pipe end, a socket, a channel of ours, a sealed memory segment. The kernel gives the
 *   receiver its own descriptor for the same open file; the sender keeps its own. A
 *   message that must wait for room carries our duplicates, taken when `sendHandle` is
 *   called: the caller may close its descriptors at once, and a number reused meanwhile
 *   for another file is never what the peer gets.
 * - A received descriptor is close-on-exec and belongs to the `ReceivedHandle`; close it
 *   (or `await using`) when done. Descriptors that arrive with a message nobody asked
 *   handles of, or that are still queued when the channel closes, are closed for you.
 * - `createSealedMemory(size)` makes a memfd sealed against shrinking and growing, with
 *   the seals themselves sealed: no name in /dev/shm, and a peer that receives it can
 *   check that nobody can truncate it under its mapping (which would fault with SIGBUS).
 *   `openSealedMemory(handle)` refuses memory that lacks those seals.
 */
import { readlinkSync, constants as fsConstants } from 'node:fs';
import { IpcError, invalidArgument, sys } from '../../core/errors.js';
import { native } from '../../os/native.js';
import * as validate from '../../core/validate.js';

const C = native.socketConstants;
/** The seals a sealed segment must carry: size fixed for good. */
export const REQUIRED_SEALS = C.F_SEAL_SHRINK | C.F_SEAL_GROW | C.F_SEAL_SEAL;

/** Anything that can be sent as a descriptor: an fd number, or an object with an `fd`. */
export type HandleSource = number | { readonly fd: number };

export type HandleType = 'file' | 'directory' | 'pipe' | 'socket' | 'memory' | 'device' | 'other';

/** The fd of a handle source, validated. */
export function handleFd(source: unknown, name = 'handle'): number {
  const fd = typeof source === 'number' ? source : typeof source === 'object' && source !== null ? (source as { fd?: unknown }).fd : undefined;
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) {
    throw invalidArgument(`${name} must be a file descriptor or an object with an open \`fd\` (a FileHandle, a channel, sealed memory), got ${validate.describe(source)}`);
  }
  return fd;
}

/** The descriptors of `handles` (one or an array of 1 to `max`), validated; nothing is opened. */
export function checkHandles(handles: unknown, max: number): number[] {
  const list: unknown[] = Array.isArray(handles) ? handles : [handles];
  if (list.length === 0 || list.length > max) throw invalidArgument(`handle must be one descriptor or an array of 1 to ${max}, got ${list.length}`);
  return list.length === 1 && !Array.isArray(handles) ? [handleFd(handles)] : list.map((h, i) => handleFd(h, `handle[${i}]`));
}

/**
 * Validates `handles` and duplicates each descriptor (close-on-exec), for a message that
 * may wait in a queue; `closeHandleCopies` releases them once it is written or dropped.
 */
export function copyHandles(handles: HandleSource | HandleSource[], max: number): Int32Array {
  const fds = checkHandles(handles, max);
  const copies = new Int32Array(fds.length);
  let n = 0;
  try {
    for (; n < fds.length; n++) copies[n] = sys(`duplicate handle[${n}] (fd ${fds[n]})`, () => native.dupCloexec(fds[n]!));
  } catch (e) {
    closeHandleCopies(copies.subarray(0, n));
    throw e;
  }
  return copies;
}

export function closeHandleCopies(copies: Int32Array): void {
  for (const fd of copies) native.close(fd);
}

function typeOf(fd: number): HandleType {
  let mode: number;
  try {
    mode = native.fstat(fd).mode & fsConstants.S_IFMT;
  } catch {
    return 'other';
  }
  switch (mode) {
    case fsConstants.S_IFREG: {
      try {
        if (readlinkSync(`/proc/self/fd/${fd}`).startsWith('/memfd:')) return 'memory';
      } catch {
        /* no /proc: a regular file */
      }
      return 'file';
    }
    case fsConstants.S_IFDIR:
      return 'directory';
    case fsConstants.S_IFIFO:
      return 'pipe';
    case fsConstants.S_IFSOCK:
      return 'socket';
    case fsConstants.S_IFCHR:
    case fsConstants.S_IFBLK:
      return 'device';
    default:
      return 'other';
  }
}

/** A descriptor received from a peer. Owns it: `close()` (or `using`) releases it. */
export class ReceivedHandle implements Disposable {
  #fd: number;
  readonly type: HandleType;

  constructor(fd: number) {
    this.#fd = validate.integer('fd', fd, 0, 2 ** 31 - 1);
    this.type = typeOf(fd);
  }

  /** The descriptor (-1 once closed or taken). */
  get fd(): number {
    return this.#fd;
  }

  /** Hands the descriptor over: the caller now owns it and must close it. */
  take(): number {
    const fd = this.#fd;
    if (fd < 0) throw new IpcError('ERR_IPCKIT_CLOSED', 'this handle was already closed or taken');
    this.#fd = -1;
    return fd;
  }

  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    native.close(fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * receiveHandle's answer from a message with its descriptors: the first descriptor (the
 * others are closed), or ERR_IPCKIT_BAD_FRAME when it carried none (the message is consumed).
 */
export function firstHandle<T, S>(m: { message: T; handles: ReceivedHandle[] }, sender: S): { handle: ReceivedHandle; message: T; sender: S } {
  const [first, ...rest] = m.handles;
  for (const h of rest) h.close();
  if (!first) throw new IpcError('ERR_IPCKIT_BAD_FRAME', 'the message carried no descriptor (expected a handle)');
  return { handle: first, message: m.message, sender };
}

/** Closes descriptors nobody will use (a dropped message's, a closed channel's queue). */
export function closeFds(fds: readonly number[] | null | undefined): void {
  if (!fds) return;
  for (const fd of fds) {
    try {
      native.close(fd);
    } catch {
      /* already gone */
    }
  }
}

/** Anonymous shared memory: a sealed memfd, mapped; share it by sending it as a handle. */
export class SealedMemory implements Disposable {
  #fd: number;
  readonly size: number;
  /** The mapped bytes, shared with every process holding the descriptor. Valid until collected. */
  readonly bytes: Uint8Array;
  /** The seals in force (F_SEAL_* bits). */
  readonly seals: number;

  /** @internal */
  constructor(fd: number, size: number, writable: boolean) {
    validate.integer('fd', fd, 0, 2 ** 31 - 1);
    validate.integer('size', size, 1);
    validate.boolean('writable', writable);
    this.#fd = fd;
    this.size = size;
    this.seals = native.getSeals(fd);
    this.bytes = new Uint8Array(sys('map sealed memory', () => native.mapShared(fd, size, writable)));
  }

  get fd(): number {
    return this.#fd;
  }

  /** Closes the descriptor; the mapping stays valid until `bytes` is collected. */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    native.close(fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

export interface CreateSealedMemoryOptions {
  /** Name shown in /proc/<pid>/fd (not a filesystem name). */
  name?: string;
}

/**
 * Creates `size` bytes of anonymous shared memory (memfd_create), zero-filled, sealed
 * against shrinking and growing (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL).
 */
export function createSealedMemory(size: number, options: CreateSealedMemoryOptions = {}): SealedMemory {
  validate.integer('size', size, 1, Number.MAX_SAFE_INTEGER);
  validate.object('options', options);
  const name = options.name === undefined ? 'ipckit' : validate.string('name', options.name);
  const fd = sys('create sealed memory', () => native.memfdCreate(name));
  try {
    sys('size sealed memory', () => native.ftruncate(fd, size));
    sys('seal memory', () => native.addSeals(fd, REQUIRED_SEALS));
    return new SealedMemory(fd, size, true);
  } catch (e) {
    native.close(fd);
    throw e;
  }
}

export interface OpenSealedMemoryOptions {
  /** Map for writing too (default true); the memory is shared either way. */
  writable?: boolean;
}

/**
 * Maps memory received from a peer after checking it is a memfd sealed against shrinking
 * and growing for good; anything else is refused (ERR_IPCKIT_PERMISSION), because a
 * peer that can truncate it could make our reads fault. Takes over the handle's fd.
 */
export function openSealedMemory(handle: ReceivedHandle | HandleSource, options: OpenSealedMemoryOptions = {}): SealedMemory {
  validate.object('options', options);
  const writable = validate.optionalBoolean('writable', options.writable) ?? true;
  const fd = handle instanceof ReceivedHandle ? handle.fd : handleFd(handle);
  if (fd < 0) throw new IpcError('ERR_IPCKIT_CLOSED', 'this handle was already closed or taken');
  const st = sys('check sealed memory', () => native.fstat(fd));
  if ((st.mode & fsConstants.S_IFMT) !== fsConstants.S_IFREG) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', 'the handle is not shared memory (not a memfd)');
  let seals: number;
  try {
    seals = native.getSeals(fd);
  } catch (e) {
    throw new IpcError('ERR_IPCKIT_PERMISSION', 'the handle is not sealable memory (not a memfd); refusing to map memory a peer could truncate', { cause: e });
  }
  if ((seals & REQUIRED_SEALS) !== REQUIRED_SEALS) {
    throw new IpcError('ERR_IPCKIT_PERMISSION', `the memory is not sealed against shrinking and growing (seals 0x${seals.toString(16)}); a peer could truncate it under the mapping, so it is refused`, {
      details: { seals, required: REQUIRED_SEALS },
    });
  }
  // The size only now: until the seals were in place the peer could still change it.
  const { size } = sys('check sealed memory', () => native.fstat(fd));
  if (size <= 0) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', 'the shared memory is empty');
  const mem = new SealedMemory(fd, size, writable);
  if (handle instanceof ReceivedHandle) handle.take();
  return mem;
}
