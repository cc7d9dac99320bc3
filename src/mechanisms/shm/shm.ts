/**
 * POSIX shared memory segments (shm_open + mmap) and memory-mapped files, with
 * cross-process wait/notify on their 32-bit words.
 *
 * - `createSharedMemory(name, size, { mode, group })` creates exclusively, mode exactly
 *   0600 unless asked; `openSharedMemory(name, { readOnly })` checks owner and mode (see
 *   permissions.ts); `unlinkSharedMemory(name)` removes the name. Names are POSIX names
 *   (`/jobs`), so Python's `multiprocessing.shared_memory.SharedMemory(name='jobs')` and
 *   C's `shm_open("/jobs", ...)` see the same bytes.
 * - `segment.buffer` is a real SharedArrayBuffer over the mapped pages: `Atomics` work on
 *   it across processes, and it can be posted to a worker thread without a copy. Where the
 *   runtime forbids buffers over external memory (Electron's V8 memory cage), or with
 *   `{ external: false }`, the segment uses the copying path instead: `read`/`write` copy,
 *   and `load`/`store`/`compareExchange`/`add` are native atomics. Both paths offer those
 *   methods; only `buffer` is missing on the copying path.
 * - `wait`/`waitSync`/`notify` are futex(2) wait and wake without FUTEX_PRIVATE_FLAG:
 *   a notify in one process wakes a waiter in another (V8's Atomics.notify does not).
 *   They are the waits of src/memory/waits.ts: `wait` completes on the event loop
 *   (io_uring, or a native waiter thread), never on libuv's pool; `waitSync` blocks in
 *   slices so that a worker stays terminable.
 * - `mapFile(path, { size })` maps a regular file with the same API, for data that must
 *   outlive a reboot (`sync()` flushes it to the disk).
 *
 * `close()` releases our handle: the fd, and our reference to the mapping. The pages stay
 * mapped while JavaScript still holds the SharedArrayBuffer (or a view of it), so a buffer
 * obtained before close() never turns into a crash; they are unmapped once it is garbage.
 *
 * It stands on the segment layer of src/memory (segment.ts), like the ipckit objects.
 */
import { constants as bufferConstants } from 'node:buffer';
import { constants as fsConstants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { cancellableWait, type WaitOptions } from '../../core/channel.js';
import { closedError, errnoError, errnoOf, IpcError, sys } from '../../core/errors.js';
import { checkWaitToOpen, openWhenThere, type WaitToOpenOptions } from '../../core/open.js';
import { native, type NativeStat } from '../../os/native.js';
import { checkOwner, createMode, type CreateModeOptions, type OwnerCheckOptions } from '../../os/permissions.js';
import { posixPerm, type PosixIpcPerm } from '../../os/ipc-perm.js';
import * as validate from '../../core/validate.js';
import { applyMode, createShm, openShm, ownerOptions, resolveExternal, Segment, shmPath, unlinkShm, type MappingOptions } from '../../memory/segment.js';
import { unlinkOnCloseOption, type UnlinkOnCloseOptions } from '../../memory/object.js';
import { blockingWait, checkWaitOptions, NOT_EQUAL, TIMED_OUT, WOKEN } from '../../memory/waits.js';

const { O_RDONLY, O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW, S_IFMT, S_IFREG } = fsConstants;
const O_CLOEXEC = 0o2000000;
const { ENOENT, EEXIST } = osConstants.errno;

export type { MappingOptions };

export interface CreateSharedMemoryOptions extends CreateModeOptions, MappingOptions, UnlinkOnCloseOptions {
  /** Reserve the memory now (posix_fallocate): a full /dev/shm fails here with ERR_IPCKIT_LIMIT instead of killing a process with SIGBUS later. Default false. */
  reserve?: boolean;
}

export interface OpenSharedMemoryOptions extends OwnerCheckOptions, MappingOptions, WaitToOpenOptions, UnlinkOnCloseOptions {
  /** Map read-only (PROT_READ). Such a segment has no `buffer` (a write would crash the process): use read/load. */
  readOnly?: boolean;
}

export interface MapFileOptions extends CreateModeOptions, OwnerCheckOptions, MappingOptions {
  /** Bytes to map. Needed to create the file; a smaller existing file is grown to it (never shrunk). Default: the file's size. */
  size?: number;
  /** 'if-missing' (default): open the file, or create it exclusively; 'always': create exclusively; 'never': it must exist. */
  create?: 'if-missing' | 'always' | 'never';
  readOnly?: boolean;
}

export type ShmWaitResult = 'ok' | 'not-equal' | 'timed-out';

export interface SharedMemoryInfo {
  kind: 'shm' | 'file';
  name: string;
  path: string;
  size: number;
  readOnly: boolean;
  external: boolean;
  /** Owner, group and permission bits of the object now. */
  uid: number;
  gid: number;
  mode: number;
}

/** A mapped shared memory segment or file. */
export class SharedMemory implements Disposable {
  readonly kind: 'shm' | 'file';
  /** The POSIX name (`/jobs`) for a segment, the path for a file. */
  readonly name: string;
  /** Where the object lives in the file system (`/dev/shm/jobs`, or the file's path). */
  readonly path: string;
  /** Bytes mapped. */
  readonly size: number;
  readonly readOnly: boolean;
  /** true: `buffer` is a SharedArrayBuffer over the pages; false: the copying path. */
  readonly external: boolean;
  #segment: Segment;
  readonly #unlinkOnClose: boolean;
  #waits = new Set<(error: IpcError) => void>();

  /** @internal Use createSharedMemory, openSharedMemory or mapFile. */
  constructor(kind: 'shm' | 'file', segment: Segment, unlinkOnClose = false) {
    this.kind = kind;
    this.#segment = segment;
    this.#unlinkOnClose = unlinkOnClose;
    this.name = segment.name;
    this.path = segment.path;
    this.size = segment.size;
    this.readOnly = segment.readOnly;
    this.external = segment.sab !== undefined;
  }

  get #what(): string {
    return this.kind === 'shm' ? `shared memory ${this.name}` : `mapped file ${this.name}`;
  }

  get closed(): boolean {
    return this.#segment.closed;
  }

  /**
   * The SharedArrayBuffer over the mapped pages. Views of it stay valid after close()
   * (the pages are unmapped when the last one is garbage). Not available on the copying
   * path or for a read-only mapping (ERR_IPCKIT_UNSUPPORTED): use read/write/load/store.
   */
  get buffer(): SharedArrayBuffer {
    this.#check();
    const sab = this.#segment.sab;
    if (!sab) {
      const why = this.readOnly
        ? 'it is mapped read-only, and JavaScript cannot make a read-only SharedArrayBuffer (a write would crash the process)'
        : native.externalBuffersAllowed
          ? 'it was opened with { external: false }'
          : 'this runtime does not allow buffers over external memory (a V8 memory cage, as in Electron)';
      throw new IpcError('ERR_IPCKIT_UNSUPPORTED', `${this.#what} has no SharedArrayBuffer: ${why}; use read(), write(), load() and store()`);
    }
    return sab;
  }

  /** A copy of `length` bytes from `offset` (default: to the end). */
  read(offset = 0, length?: number): Buffer {
    this.#check();
    validate.integer('offset', offset, 0, this.size);
    const n = length === undefined ? this.size - offset : validate.integer('length', length, 0, this.size - offset);
    if (n > bufferConstants.MAX_LENGTH) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `read at most ${bufferConstants.MAX_LENGTH} bytes at once (the largest Buffer), not ${n}`);
    const b = Buffer.allocUnsafe(n);
    if (n > 0) this.#segment.mem.copyInto(offset, n, b, 0);
    return b;
  }

  /** Copies `bytes` to `offset`. */
  write(bytes: Uint8Array, offset = 0): void {
    this.#check();
    this.#writable();
    validate.bytes('bytes', bytes);
    validate.integer('offset', offset, 0, this.size - bytes.length);
    this.#segment.mem.copyIn(offset, bytes, 0, bytes.length);
  }

  /** Atomics on the 32-bit word at `index` (as on `new Int32Array(segment.buffer)`), on both paths. */
  load(index: number): number {
    return this.#segment.mem.load(this.#index(index));
  }
  store(index: number, value: number): number {
    this.#writable();
    const v = value | 0;
    this.#segment.mem.store(this.#index(index), v);
    return v;
  }
  add(index: number, delta: number): number {
    this.#writable();
    return this.#segment.mem.add(this.#index(index), delta | 0);
  }
  compareExchange(index: number, expected: number, replacement: number): number {
    this.#writable();
    return this.#segment.mem.compareExchange(this.#index(index), expected | 0, replacement | 0);
  }

  /**
   * Blocks this thread while word `index` equals `expected` (like Atomics.wait, but any
   * process can wake it). For workers and scripts: on the main thread it blocks the event
   * loop. 'ok' may also be a spurious wake-up: check the condition again.
   */
  waitSync(index: number, expected: number, timeoutMs?: number): ShmWaitResult {
    validate.integer('expected', expected, -(2 ** 31), 2 ** 32 - 1);
    const ms = validate.timeout(timeoutMs);
    const i = this.#index(index);
    const deadline = ms === undefined ? undefined : performance.now() + ms;
    // In slices (waits.ts): a futex wait cannot be interrupted, and a worker's terminate()
    // takes effect only when this thread is back in JavaScript.
    for (let first = true; ; first = false) {
      const r = blockingWait(this.#segment.mapping, i * 4, expected | 0, deadline === undefined ? Infinity : deadline - performance.now());
      if (r < 0) throw errnoError(-r, 'futex', `wait on ${this.#what}`);
      if (r === WOKEN) return 'ok';
      if (r === NOT_EQUAL) return first ? 'not-equal' : 'ok'; // it changed while we were between slices
      if (r === TIMED_OUT && deadline !== undefined && performance.now() >= deadline) return 'timed-out';
    }
  }

  /**
   * Waits, without blocking the event loop, until word `index` is notified or no longer
   * equals `expected`: resolves 'ok' (woken), 'not-equal' (it differed at the start) or
   * 'timed-out' (options.timeout passed), the same results as waitSync and Atomics.wait.
   * Rejects with ERR_IPCKIT_ABORTED (options.signal), or ERR_IPCKIT_CLOSED on close().
   */
  wait(index: number, expected: number, options?: WaitOptions): Promise<ShmWaitResult> {
    validate.integer('expected', expected, -(2 ** 31), 2 ** 32 - 1);
    checkWaitOptions(options, `wait on ${this.#what}`);
    const i = this.#index(index);
    const waiting = cancellableWait<ShmWaitResult>(`wait on ${this.#what}`, options, (resolve, reject) => {
      const word = this.#segment.mem.word(i);
      const stopWaiting = word.wait(expected | 0, false, (r) => {
        word.close();
        this.#waits.delete(onClose);
        if (r === 0) resolve('ok');
        else if (r === 1) resolve('not-equal');
        else if (r < 0) reject(errnoError(-r, 'futex_waitv', `wait on ${this.#what}`));
      });
      const cancel = (): void => {
        this.#waits.delete(onClose);
        stopWaiting();
        word.close();
      };
      const onClose = (e: IpcError): void => {
        cancel();
        reject(e);
      };
      this.#waits.add(onClose);
      return cancel;
    });
    // A timeout is an answer here, as in waitSync, not a failure.
    return waiting.catch((e: unknown) => {
      if (e instanceof IpcError && e.code === 'ERR_IPCKIT_TIMEOUT') return 'timed-out';
      throw e;
    });
  }

  /** Wakes up to `count` waiters on word `index`, in any process (default: all). Returns how many woke. */
  notify(index: number, count = Infinity): number {
    const i = this.#index(index);
    const n = count === Infinity ? -1 : validate.integer('count', count, 0, 2 ** 31 - 1);
    return this.#segment.mem.wake(i, n);
  }

  /** Flushes the pages to the file (msync): for mapped files that must reach the disk. */
  sync(options: { async?: boolean } = {}): void {
    const o = validate.object<{ async: unknown }>('options', options);
    if (o.async !== undefined && typeof o.async !== 'boolean') throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `async must be a boolean, got ${validate.describe(o.async)}`);
    this.#check();
    sys(`sync ${this.#what}`, () => this.#segment.mapping.sync(o.async === true), { path: this.path });
  }

  /**
   * False if the object is now smaller than what we mapped (a peer shrank it with
   * ftruncate): touching the missing pages would kill this process with SIGBUS.
   */
  isIntact(): boolean {
    this.#check();
    return this.#segment.isIntact();
  }

  /** The permission record every IPC object reports (fstat): no key, creator or sequence number, which POSIX objects do not have. */
  perm(): PosixIpcPerm {
    this.#check();
    return posixPerm(this.kind === 'shm' ? 'shm' : 'file', this.name, this.#segment.fstat());
  }

  info(): SharedMemoryInfo {
    this.#check();
    const st = this.#segment.fstat();
    return { kind: this.kind, name: this.name, path: this.path, size: this.size, readOnly: this.readOnly, external: this.external, uid: st.uid, gid: st.gid, mode: st.mode & 0o777 };
  }

  /**
   * Releases our handle: the fd and our reference to the mapping. Pending wait calls
   * reject with ERR_IPCKIT_CLOSED. Buffers and views taken before stay usable. Idempotent.
   */
  close(): void {
    if (this.#segment.closed) return;
    for (const fail of [...this.#waits]) fail(closedError(this.#what));
    this.#waits.clear();
    try {
      if (this.#unlinkOnClose) this.#segment.unlinkIfStillNamed(this.#what);
    } finally {
      this.#segment.close();
    }
  }

  /** Removes the name (the segment or file lives on while it is mapped). False if it was already gone. */
  unlink(): boolean {
    return this.kind === 'shm' ? unlinkSharedMemory(this.name) : unlinkFile(this.name);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #check(): void {
    if (this.#segment.closed) throw closedError(this.#what);
  }

  #writable(): void {
    if (this.readOnly) throw new IpcError('ERR_IPCKIT_PERMISSION', `${this.#what} is mapped read-only`);
  }

  #index(index: number): number {
    this.#check();
    return validate.integer('index', index, 0, Math.floor(this.size / 4) - 1);
  }
}

/** Creates a segment exclusively (ERR_IPCKIT_EXISTS if the name is taken), maps it and returns it. */
export function createSharedMemory(name: string, size: number, options: CreateSharedMemoryOptions = {}): SharedMemory {
  const n = validate.posixName(name);
  validate.integer('size', size, 1);
  const o = validate.object<CreateSharedMemoryOptions>('options', options);
  if (o.reserve !== undefined && typeof o.reserve !== 'boolean') throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `reserve must be a boolean, got ${validate.describe(o.reserve)}`);
  const unlinkOnClose = unlinkOnCloseOption(o.unlinkOnClose);
  return new SharedMemory('shm', createShm(n, size, o, `shared memory ${n}`), unlinkOnClose);
}

/**
 * Opens an existing segment after checking its owner and mode, and maps all of it. With
 * `{ wait: true }` it waits for the name to exist (within `timeout`, and `signal`).
 */
export function openSharedMemory(name: string, options: OpenSharedMemoryOptions = {}): Promise<SharedMemory> {
  const open = checkOpen(name, options);
  return openWhenThere(`open shared memory ${validate.posixName(name)}`, options, open);
}

/** openSharedMemory for workers and scripts: the SharedMemory itself, at once (it never waits for the name). */
export function openSharedMemorySync(name: string, options: OpenSharedMemoryOptions = {}): SharedMemory {
  return checkOpen(name, options)();
}

/** Checks an open's arguments (they throw at once) and returns the open itself. */
function checkOpen(name: string, options: OpenSharedMemoryOptions): () => SharedMemory {
  const n = validate.posixName(name);
  const o = validate.object<OpenSharedMemoryOptions>('options', options);
  ownerOptions(o);
  checkWaitToOpen(o);
  const external = resolveExternal(o.external);
  if (o.readOnly !== undefined && typeof o.readOnly !== 'boolean') throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `readOnly must be a boolean, got ${validate.describe(o.readOnly)}`);
  const readOnly = o.readOnly === true;
  const unlinkOnClose = unlinkOnCloseOption(o.unlinkOnClose);
  return () => {
    const what = `shared memory ${n}`;
    const { fd, stat } = openShm(n, readOnly, o, what);
    try {
      if (stat.size === 0) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `${what} is empty (size 0): its creator has not sized it yet, or it is not a segment to map`, { path: shmPath(n) });
      return new SharedMemory('shm', new Segment(n, shmPath(n), fd, stat.size, readOnly, external, stat), unlinkOnClose);
    } catch (e) {
      native.close(fd);
      throw e;
    }
  };
}

/** Removes a segment's name. Idempotent: false if there was none. Mappings stay valid. */
export function unlinkSharedMemory(name: string): boolean {
  const n = validate.posixName(name);
  return unlinkShm(n, `shared memory ${n}`);
}

function checkRegular(st: NativeStat, what: string, path: string): void {
  if ((st.mode & S_IFMT) !== S_IFREG) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `${what} is not a regular file`, { path });
}

function unlinkFile(path: string): boolean {
  try {
    native.unlink(path);
    return true;
  } catch (e) {
    if (errnoOf(e) === ENOENT) return false;
    return sys(`remove mapped file ${path}`, () => {
      throw e;
    }, { path });
  }
}

/**
 * Maps a regular file (created exclusively with mode 0600 when missing, unless
 * `create: 'never'`). Writes reach the file; `sync()` flushes them to the disk. An
 * existing file must be ours and no wider than `mode` (see permissions.ts); a symlink is
 * refused.
 */
export function mapFile(path: string, options: MapFileOptions = {}): SharedMemory {
  validate.string('path', path);
  validate.object('options', options);
  const create = options.create === undefined ? 'if-missing' : validate.oneOf('create', options.create, ['if-missing', 'always', 'never'] as const);
  const size = validate.optionalInteger('size', options.size, 1);
  if (options.readOnly !== undefined && typeof options.readOnly !== 'boolean') throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `readOnly must be a boolean, got ${validate.describe(options.readOnly)}`);
  const readOnly = options.readOnly === true;
  const external = resolveExternal(options.external);
  const { mode, group } = createMode(options);
  ownerOptions(options);
  const what = `mapped file ${path}`;
  if (readOnly && create === 'always') throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', 'a read-only mapFile cannot create the file');

  let fd = -1;
  let created = false;
  if (create !== 'always') {
    const r = native.tryOpen(path, (readOnly ? O_RDONLY : O_RDWR) | O_NOFOLLOW | O_CLOEXEC, 0);
    if (r >= 0) fd = r;
    else if (-r !== ENOENT || create === 'never' || readOnly) throw errnoError(-r, 'open', `open ${what}`, { path });
  }
  if (fd < 0) {
    if (size === undefined) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `${path} does not exist: give { size } to create it`, { path });
    const r = native.tryOpen(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600);
    if (r >= 0) {
      fd = r;
      created = true;
    } else if (-r === EEXIST && create === 'if-missing') {
      // Someone created it between our two opens: open theirs (checked below).
      fd = sys(`open ${what}`, () => native.open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0), { path });
    } else {
      throw errnoError(-r, 'open', `create ${what}`, { path });
    }
  }
  try {
    if (created) {
      applyMode(fd, what, mode, group, path);
      sys(`size ${what}`, () => native.ftruncate(fd, size!), { path });
    } else {
      const st = sys(`open ${what}`, () => native.fstat(fd), { path });
      checkRegular(st, what, path);
      checkOwner(st, what, options);
      if (size !== undefined && st.size < size) {
        if (readOnly) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `${what} has ${st.size} bytes, fewer than the ${size} asked for, and is opened read-only`, { path });
        sys(`grow ${what}`, () => native.ftruncate(fd, size), { path });
      }
      if (size === undefined && st.size === 0) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `${what} is empty: give { size } to grow it`, { path });
    }
    const st = sys(`fstat ${what}`, () => native.fstat(fd), { path });
    return new SharedMemory('file', new Segment(path, path, fd, size ?? st.size, readOnly, external, st));
  } catch (e) {
    native.close(fd);
    if (created) unlinkFile(path);
    throw e;
  }
}
