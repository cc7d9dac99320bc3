/**
 * The segment layer: a named POSIX shared-memory object (or a mapped file) and its
 * mapping. Every shared-memory structure stands on a `Segment`: the plain segments and
 * mapped files of the shm mechanism, and the ipckit objects (object.ts).
 *
 * - Create: shm_open(O_CREAT | O_EXCL), owner-only until the exact mode (and group) are
 *   set through the descriptor (no umask, no path race), then sized (and, asked for,
 *   reserved with posix_fallocate: a full /dev/shm fails here, not with a SIGBUS later).
 * - Open: the object must be a regular file, ours (or allowed: permissions.ts).
 * - The mapping: a SharedArrayBuffer over the pages where the runtime allows it (the fast
 *   path), else the copying path (memory.ts). The descriptor stays open for `isIntact()`:
 *   a peer that shrinks the object would turn our next touch of a missing page into a
 *   SIGBUS, so waits check the size now and then.
 */
import { constants as bufferConstants } from 'node:buffer';
import { constants as fsConstants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { errnoOf, IpcError, sys, toIpcError } from '../core/errors.js';
import { Mapping } from '../os/mapping.js';
import { native, type NativeStat } from '../os/native.js';
import { checkOwner, createMode, fileTypeName, type CreateModeOptions, type OwnerCheckOptions } from '../os/permissions.js';
import * as validate from '../core/validate.js';
import { memoryOf, type Memory } from './memory.js';
import { closeAtThreadExit } from './waits.js';

const { O_RDONLY, O_RDWR, O_CREAT, O_EXCL, S_IFMT, S_IFREG } = fsConstants;
const { EEXIST, ENOENT } = osConstants.errno;

export interface MappingOptions {
  /**
   * true: `buffer` is a SharedArrayBuffer over the mapping (default where the runtime
   * allows it). false: the copying path (read/write copy; atomics are native calls).
   */
  external?: boolean;
}

/** Whether to map over a SharedArrayBuffer: the option, checked against what the runtime allows. */
export function resolveExternal(external: unknown): boolean {
  if (external === undefined) return native.externalBuffersAllowed;
  if (typeof external !== 'boolean') throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `external must be a boolean, got ${validate.describe(external)}`);
  if (external && !native.externalBuffersAllowed) {
    throw new IpcError('ERR_IPCKIT_UNSUPPORTED', 'this runtime does not allow buffers over external memory (a V8 memory cage, as in Electron): use { external: false }');
  }
  return external;
}

/** The owner-check options, checked at once (they throw ERR_IPCKIT_INVALID_ARGUMENT before anything is opened). */
export function ownerOptions(options: OwnerCheckOptions): OwnerCheckOptions {
  const owner: OwnerCheckOptions = {};
  if (options.mode !== undefined) owner.mode = validate.mode('mode', options.mode, 0o600);
  if (options.owner !== undefined) owner.owner = validate.integer('owner', options.owner, 0, 2 ** 32 - 2);
  if (options.anyOwner !== undefined) {
    if (typeof options.anyOwner !== 'boolean') throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `anyOwner must be a boolean, got ${validate.describe(options.anyOwner)}`);
    owner.anyOwner = options.anyOwner;
  }
  return owner;
}

/** A mapped object: the descriptor, the mapping, and the Memory over it. */
export class Segment {
  readonly mapping: Mapping;
  readonly mem: Memory;
  /** The SharedArrayBuffer over the pages (undefined on the copying path and for read-only mappings). */
  readonly sab: SharedArrayBuffer | undefined;
  #fd: number;
  #closed = false;
  #keepFd: () => void;

  /**
   * Maps the first `size` bytes of `fd` (which it then owns); or, given a Mapping made
   * elsewhere, stands on it: a System V segment attached with shmat (sysv/shm.ts), whose
   * region shmdt detaches. Such a segment has no descriptor: nothing to close or keep for
   * a terminated worker, and it never shrinks (isIntact is always true).
   */
  constructor(
    /** The POSIX name (`/jobs`) or the file's path. */
    readonly name: string,
    /** Where it lives in the file system (`/dev/shm/jobs`, or the file's path). */
    readonly path: string,
    source: number | Mapping,
    /** Bytes mapped. */
    readonly size: number,
    readonly readOnly: boolean,
    external: boolean,
    /** fstat of the object when it was mapped (owner, inode); for a System V segment, made from its IPC_STAT (dev 0, ino its identifier). */
    readonly stat: NativeStat,
  ) {
    const fd = typeof source === 'number' ? source : -1;
    this.#fd = fd;
    this.mapping = typeof source === 'number' ? sys(`map ${path}`, () => Mapping.open(fd, size, !readOnly), { path }) : source;
    this.sab = external && !readOnly ? this.mapping.buffer() : undefined;
    // A typed array spans at most MAX_LENGTH bytes (4 GiB in Node 20): past that, the
    // native accessors are used; `sab` still works for views of parts of it.
    this.mem = memoryOf(this.mapping, size, this.sab, bufferConstants.MAX_LENGTH);
    // A terminated worker runs no close(): its fd would stay open for the life of the process.
    this.#keepFd = fd >= 0 ? closeAtThreadExit(fd) : () => {};
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * For `unlinkOnClose`: removes the POSIX name only if it still names this object, not
   * one that another process made under the same name after ours was removed. False if
   * the name is gone or names something else.
   */
  unlinkIfStillNamed(what: string): boolean {
    let fd: number;
    try {
      fd = native.shmOpen(this.name, 0 /* O_RDONLY */, 0);
    } catch (e) {
      if (errnoOf(e) === ENOENT) return false;
      throw toIpcError(e, `remove ${what}`, { path: this.path });
    }
    try {
      const now = sys(`fstat ${what}`, () => native.fstat(fd), { path: this.path });
      if (now.ino !== this.stat.ino || now.dev !== this.stat.dev) return false;
    } finally {
      native.close(fd);
    }
    return unlinkShm(this.name, what);
  }

  /** fstat of the object now (a segment with a descriptor: not a System V one). */
  fstat(): NativeStat {
    if (this.#fd < 0) throw new IpcError('ERR_IPCKIT_UNSUPPORTED', `${this.path} has no descriptor to fstat (a System V segment: see its stat())`);
    return sys(`fstat ${this.path}`, () => native.fstat(this.#fd), { path: this.path });
  }

  /**
   * False if the object is now smaller than what we mapped (a peer shrank it with
   * ftruncate): touching the missing pages would kill this process with SIGBUS.
   */
  isIntact(): boolean {
    return this.#fd < 0 || native.fstat(this.#fd).size >= this.size;
  }

  /**
   * Releases the descriptor and our reference to the mapping (views and waits keep the
   * pages). `discardPages`, for objects that never hand their buffer out (pool, mutex, work
   * queue): their memory goes back now, not when the garbage collector frees the buffer
   * (Mapping.release). Idempotent.
   */
  close(discardPages = false): void {
    if (this.#closed) return;
    this.#closed = true;
    this.mapping.release(discardPages);
    this.#keepFd();
    if (this.#fd >= 0) native.close(this.#fd);
  }
}

/** Sets exact mode and group on a fresh object through its fd (no umask, no path race). */
export function applyMode(fd: number, what: string, mode: number, group: number | undefined, path: string): void {
  if (group !== undefined) sys(`set the group of ${what}`, () => native.fchown(fd, -1, group), { path });
  sys(`set the mode of ${what}`, () => native.fchmod(fd, mode), { path });
}

/** The file of a POSIX shared-memory name. */
export const shmPath = (name: string): string => `/dev/shm${name}`;

export interface CreateShmOptions extends CreateModeOptions, MappingOptions {
  /** Reserve the memory now (posix_fallocate). */
  reserve?: boolean;
}

/**
 * Creates `name` exclusively (ERR_IPCKIT_EXISTS if it is taken), sized `size`, and maps
 * it. `what` names it in messages ("ring /jobs"). On any failure the name is removed.
 */
export function createShm(name: string, size: number, options: CreateShmOptions, what: string): Segment {
  const { mode, group } = createMode(options);
  const external = resolveExternal(options.external);
  const path = shmPath(name);
  let fd: number;
  try {
    fd = native.shmOpen(name, O_RDWR | O_CREAT | O_EXCL, 0o600);
  } catch (e) {
    if (errnoOf(e) === EEXIST) throw new IpcError('ERR_IPCKIT_EXISTS', `${what} already exists (open it, or remove it first)`, { cause: e, path: name, errno: EEXIST, syscall: 'shm_open', systemCode: 'EEXIST' });
    throw toIpcError(e, `create ${what}`, { path: name });
  }
  try {
    applyMode(fd, what, mode, group, path);
    sys(`size ${what}`, () => native.ftruncate(fd, size), { path });
    if (options.reserve === true) sys(`reserve ${size} bytes for ${what}`, () => native.fallocate(fd, size), { path });
    const stat = sys(`fstat ${what}`, () => native.fstat(fd), { path });
    return new Segment(name, path, fd, size, false, external, stat);
  } catch (e) {
    native.close(fd);
    try {
      native.shmUnlink(name);
    } catch {
      /* it was ours; nothing more to do */
    }
    throw e;
  }
}

/**
 * Opens an existing `name` (ERR_IPCKIT_NOT_FOUND if there is none) and checks it through
 * the descriptor: a regular file, ours or allowed. Returns the descriptor (the caller's to
 * map or close) and its fstat.
 */
export function openShm(name: string, readOnly: boolean, options: OwnerCheckOptions, what: string): { fd: number; stat: NativeStat } {
  let fd: number;
  try {
    fd = native.shmOpen(name, readOnly ? O_RDONLY : O_RDWR, 0);
  } catch (e) {
    if (errnoOf(e) === ENOENT) throw new IpcError('ERR_IPCKIT_NOT_FOUND', `no ${what}`, { cause: e, path: name, errno: ENOENT, syscall: 'shm_open', systemCode: 'ENOENT' });
    throw toIpcError(e, `open ${what}`, { path: name });
  }
  try {
    const stat = sys(`fstat ${what}`, () => native.fstat(fd), { path: name });
    if ((stat.mode & S_IFMT) !== S_IFREG) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `${what} is not a shared-memory object (it is ${fileTypeName(stat.mode)})`, { path: name });
    checkOwner(stat, what, options);
    return { fd, stat };
  } catch (e) {
    native.close(fd);
    throw e;
  }
}

/** Removes a name. Idempotent: false if there was none. Mappings stay valid. */
export function unlinkShm(name: string, what: string): boolean {
  try {
    native.shmUnlink(name);
    return true;
  } catch (e) {
    if (errnoOf(e) === ENOENT) return false;
    throw toIpcError(e, `remove ${what}`, { path: shmPath(name) });
  }
}
