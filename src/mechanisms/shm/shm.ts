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
 * - `waitAsync`/`waitSync`/`notify` are futex(2) wait and wake without FUTEX_PRIVATE_FLAG:
 *   a notify in one process wakes a waiter in another (V8's Atomics.notify does not).
 *   `waitAsync` waits on a dedicated native thread, never on libuv's pool.
 * - `mapFile(path, { size })` maps a regular file with the same API, for data that must
 *   outlive a reboot (`sync()` flushes it to the disk).
 *
 * `close()` releases our handle: the fd, and our reference to the mapping. The pages stay
 * mapped while JavaScript still holds the SharedArrayBuffer (or a view of it), so a buffer
 * obtained before close() never turns into a crash; they are unmapped once it is garbage.
 */
import { constants as bufferConstants } from 'node:buffer';
import { constants as fsConstants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { isMainThread } from 'node:worker_threads';
import { cancellableWait, type WaitOptions } from '../../core/channel.js';
import { closedError, errnoError, errnoOf, IpcError, sys, toIpcError } from '../../core/errors.js';
import { native, type FutexResult, type NativeFutexWaiters, type NativeMapping, type NativeStat } from '../../os/native.js';
import { checkOwner, createMode, type CreateModeOptions, type OwnerCheckOptions } from '../../os/permissions.js';
import { posixPerm, type PosixIpcPerm } from '../../os/ipc-perm.js';
import * as validate from '../../core/validate.js';

const { O_RDONLY, O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW, S_IFMT, S_IFREG } = fsConstants;
const O_CLOEXEC = 0o2000000;
const { ENOENT, EEXIST } = osConstants.errno;

// ---------------------------------------------------------------------------------------
// Memory: how the structures built on a segment (ring, work queue) reach its bytes. Two
// implementations: over the SharedArrayBuffer (the fast path), and through native calls
// (the copying path). Word indexes are in 32-bit units from the start of the mapping.

let waiters: NativeFutexWaiters | undefined;
/** One-shot waits (removed when they report) and watches (kept until closed), by id. */
const waitCallbacks = new Map<number, (result: FutexResult) => void>();
const oneShot = new Set<number>();

function futexWaiters(): NativeFutexWaiters {
  if (!waiters) {
    waiters = new native.FutexWaiters((id, result) => {
      const cb = waitCallbacks.get(id);
      if (!cb) return;
      if (oneShot.delete(id)) waitCallbacks.delete(id);
      cb(result);
    });
  }
  return waiters;
}

// Copies of messages up to 4 KiB are carved out of 64 KiB chunks, as Buffer.allocUnsafe
// does, but as plain Uint8Arrays: a fresh off-heap ArrayBuffer per message costs more than
// copying the message.
const POOL_SIZE = 64 * 1024;
const POOL_MAX = 4096;
let pool = new ArrayBuffer(POOL_SIZE);
let poolOffset = 0;

function poolSlice(length: number): Uint8Array {
  if (poolOffset + length > POOL_SIZE) {
    pool = new ArrayBuffer(POOL_SIZE);
    poolOffset = 0;
  }
  const b = new Uint8Array(pool, poolOffset, length);
  poolOffset = (poolOffset + length + 7) & ~7;
  return b;
}

/**
 * Starts an asynchronous wait or a watch. On the thread path a wait needs a thread of its
 * own, and there are at most 256: past that the native EAGAIN becomes ERR_IPCKIT_LIMIT.
 */
function startWait(what: string, start: () => number): number {
  try {
    return start();
  } catch (e) {
    const err = toIpcError(e, what);
    if (err.systemCode === 'EAGAIN' && err.syscall?.startsWith('pthread_create')) {
      throw new IpcError('ERR_IPCKIT_LIMIT', `${what}: too many asynchronous futex waits at once in this thread (at most 256 on the thread path)`, { cause: err, errno: err.errno, syscall: 'pthread_create', systemCode: 'EAGAIN' });
    }
    throw err;
  }
}

/** @internal How asynchronous futex waits sleep in this thread: 'io_uring' (the completion wakes the event loop) or 'threads' (a waiter thread, then the event loop). */
export function futexWaitPath(): 'io_uring' | 'threads' {
  return futexWaiters().usesUring() ? 'io_uring' : 'threads';
}

/** @internal A watch on one word (see native/futex.cc): arm(seq) reports once, through the callback, when the word is no longer seq or after a slice. */
export interface WordWatch {
  arm(seq: number): void;
  disarm(): void;
  close(): void;
}

/** @internal Byte and word access to a mapping, plus futex wait and wake on its words. */
export abstract class Memory {
  constructor(
    readonly mapping: NativeMapping,
    readonly length: number,
  ) {}
  abstract readonly external: boolean;
  abstract load(index: number): number;
  abstract store(index: number, value: number): void;
  abstract add(index: number, delta: number): number;
  abstract compareExchange(index: number, expected: number, replacement: number): number;
  /** Plain (non-atomic) word access: for words published by a later atomic store, or read after an atomic load. */
  abstract loadPlain(index: number): number;
  abstract storePlain(index: number, value: number): void;
  /** Copies `length` bytes of `src` from `srcOffset` to `byteOffset`. */
  abstract copyIn(byteOffset: number, src: Uint8Array, srcOffset: number, length: number): void;
  /** A fresh Uint8Array with a copy of the bytes. */
  abstract copyOut(byteOffset: number, length: number): Uint8Array;
  /** Copies bytes into `dst` at `dstOffset`. */
  abstract copyInto(byteOffset: number, length: number, dst: Uint8Array, dstOffset: number): void;
  /** The bytes themselves where possible (a view of the mapping), else a copy. */
  abstract view(byteOffset: number, length: number): Uint8Array;
  /** Sets bytes to zero. */
  abstract zero(byteOffset: number, length: number): void;

  /** Wakes up to `count` waiters on the word (any process). */
  wake(index: number, count: number): number {
    return native.futexWake(this.mapping, index * 4, count);
  }

  /** Blocks this thread while the word equals `expected` (timeout < 0: none). */
  waitSync(index: number, expected: number, timeoutMs: number): FutexResult {
    return native.futexWait(this.mapping, index * 4, expected, timeoutMs);
  }

  /** A persistent watch on a word, for channels that sleep and wake in turn. `report` runs on the event loop. */
  watch(index: number, sliceMs: number, report: (result: FutexResult) => void): WordWatch {
    const w = futexWaiters();
    const id = startWait('watch a futex word', () => w.watch(this.mapping, index * 4, sliceMs));
    waitCallbacks.set(id, report);
    let closed = false;
    return {
      arm: (seq) => w.arm(id, seq),
      disarm: () => w.disarm(id),
      close: () => {
        if (closed) return;
        closed = true;
        waitCallbacks.delete(id);
        w.unwatch(id);
      },
    };
  }

  /**
   * In a worker thread: if the thread ends without JavaScript undoing it (terminate() runs
   * none), the word at `index` goes from `expected` to `replacement` and `signal` is bumped
   * and woken. The structures clear their pid words this way, so that peers see a
   * terminated worker's endpoints as dead. Returns the function that withdraws it (close).
   * In the main thread nothing is needed: the process's exit is what peers see.
   */
  atThreadExit(index: number, expected: number, replacement: number, signal: number): () => void {
    if (isMainThread) return () => {};
    const w = futexWaiters();
    const id = w.atExitSwap(this.mapping, index * 4, expected, replacement, signal * 4);
    return () => w.cancelAtExit(id);
  }

  /** Waits on a native waiter thread; `done` runs on the event loop. Returns a cancel function. */
  waitAsync(index: number, expected: number, timeoutMs: number, done: (result: FutexResult) => void): () => void {
    const w = futexWaiters();
    const id = startWait('wait on a futex word', () => w.wait(this.mapping, index * 4, expected, timeoutMs));
    waitCallbacks.set(id, done);
    oneShot.add(id);
    return () => {
      oneShot.delete(id);
      if (waitCallbacks.delete(id)) w.cancel(id);
    };
  }
}

class SharedArrayMemory extends Memory {
  readonly external = true;
  readonly i32: Int32Array;
  readonly u8: Uint8Array;

  constructor(mapping: NativeMapping, readonly sab: SharedArrayBuffer) {
    super(mapping, sab.byteLength);
    this.i32 = new Int32Array(sab, 0, Math.floor(sab.byteLength / 4));
    this.u8 = new Uint8Array(sab);
  }

  load(index: number): number {
    return Atomics.load(this.i32, index);
  }
  store(index: number, value: number): void {
    Atomics.store(this.i32, index, value);
  }
  add(index: number, delta: number): number {
    return Atomics.add(this.i32, index, delta);
  }
  compareExchange(index: number, expected: number, replacement: number): number {
    return Atomics.compareExchange(this.i32, index, expected, replacement);
  }
  loadPlain(index: number): number {
    return this.i32[index]!;
  }
  storePlain(index: number, value: number): void {
    this.i32[index] = value;
  }
  copyIn(byteOffset: number, src: Uint8Array, srcOffset: number, length: number): void {
    if (length <= 8) {
      const u8 = this.u8;
      for (let i = 0; i < length; i++) u8[byteOffset + i] = src[srcOffset + i]!;
    } else {
      this.u8.set(srcOffset === 0 && length === src.length ? src : src.subarray(srcOffset, srcOffset + length), byteOffset);
    }
  }
  copyOut(byteOffset: number, length: number): Uint8Array {
    // V8 keeps typed arrays of up to 64 bytes on its heap: slice() is the cheapest copy.
    if (length <= 64) return this.u8.slice(byteOffset, byteOffset + length);
    if (length > POOL_MAX) return this.u8.slice(byteOffset, byteOffset + length);
    const b = poolSlice(length);
    b.set(this.u8.subarray(byteOffset, byteOffset + length));
    return b;
  }
  copyInto(byteOffset: number, length: number, dst: Uint8Array, dstOffset: number): void {
    dst.set(this.u8.subarray(byteOffset, byteOffset + length), dstOffset);
  }
  view(byteOffset: number, length: number): Uint8Array {
    return new Uint8Array(this.sab, byteOffset, length);
  }
  zero(byteOffset: number, length: number): void {
    this.u8.fill(0, byteOffset, byteOffset + length);
  }
}

class CopyingMemory extends Memory {
  readonly external = false;
  load(index: number): number {
    return this.mapping.load(index * 4);
  }
  store(index: number, value: number): void {
    this.mapping.store(index * 4, value);
  }
  add(index: number, delta: number): number {
    return this.mapping.add(index * 4, delta);
  }
  compareExchange(index: number, expected: number, replacement: number): number {
    return this.mapping.compareExchange(index * 4, expected, replacement);
  }
  loadPlain(index: number): number {
    return this.mapping.load(index * 4);
  }
  storePlain(index: number, value: number): void {
    this.mapping.store(index * 4, value);
  }
  copyIn(byteOffset: number, src: Uint8Array, srcOffset: number, length: number): void {
    this.mapping.write(byteOffset, src, srcOffset, length);
  }
  copyOut(byteOffset: number, length: number): Uint8Array {
    const b = length <= POOL_MAX ? poolSlice(length) : new Uint8Array(length);
    if (length > 0) this.mapping.read(byteOffset, b, 0, length);
    return b;
  }
  copyInto(byteOffset: number, length: number, dst: Uint8Array, dstOffset: number): void {
    this.mapping.read(byteOffset, dst, dstOffset, length);
  }
  view(byteOffset: number, length: number): Uint8Array {
    return this.copyOut(byteOffset, length);
  }
  zero(byteOffset: number, length: number): void {
    this.mapping.write(byteOffset, new Uint8Array(length), 0, length);
  }
}

// ---------------------------------------------------------------------------------------
// Segments

export interface MappingOptions {
  /**
   * true: `buffer` is a SharedArrayBuffer over the mapping (default where the runtime
   * allows it). false: the copying path (read/write copy; atomics are native calls).
   */
  external?: boolean;
}

export interface CreateSharedMemoryOptions extends CreateModeOptions, MappingOptions {
  /** Reserve the memory now (posix_fallocate): a full /dev/shm fails here with ERR_IPCKIT_LIMIT instead of killing a process with SIGBUS later. Default false. */
  reserve?: boolean;
}

export interface OpenSharedMemoryOptions extends OwnerCheckOptions, MappingOptions {
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

const kMemory = Symbol('ipckit.memory');
/** Longest single futex wait of waitSync (ms): between two, a worker's terminate() can act. */
const WAIT_SLICE_MS = 50;

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
  #fd: number;
  #mapping: NativeMapping;
  #memory: Memory;
  #sab: SharedArrayBuffer | undefined;
  #waits = new Set<(error: IpcError) => void>();
  #closed = false;
  #keepFd: () => void = () => {};

  /**
   * @internal Use createSharedMemory, openSharedMemory or mapFile. `source`: the descriptor
   * to map, or a mapping made elsewhere (a System V segment attached with shmat, which has no
   * descriptor: sysv/shm.ts).
   */
  constructor(kind: 'shm' | 'file', name: string, source: number | NativeMapping, size: number, readOnly: boolean, external: boolean) {
    this.kind = kind;
    this.name = name;
    this.path = kind === 'shm' ? `/dev/shm${name}` : name;
    this.size = size;
    this.readOnly = readOnly;
    const fd = typeof source === 'number' ? source : -1;
    this.#fd = fd;
    this.#mapping = typeof source === 'number' ? sys(`map ${this.#what}`, () => new native.Mapping(fd, size, !readOnly), { path: this.path }) : source;
    if (external && !readOnly) {
      this.#sab = this.#mapping.buffer();
      // A typed array spans at most MAX_LENGTH bytes (4 GiB in Node 20): past that, the
      // methods (and rings, work queues) use the native accessors; `buffer` still works for
      // views of parts of it.
      this.#memory = size <= bufferConstants.MAX_LENGTH ? new SharedArrayMemory(this.#mapping, this.#sab) : new CopyingMemory(this.#mapping, size);
    } else {
      this.#memory = new CopyingMemory(this.#mapping, size);
    }
    this.external = this.#sab !== undefined;
    if (!isMainThread && fd >= 0) {
      // A terminated worker runs no close(): its fd would stay open for the life of the process.
      const w = futexWaiters();
      const id = w.atExitClose(fd);
      this.#keepFd = () => w.cancelAtExit(id);
    }
  }

  get #what(): string {
    return this.kind === 'shm' ? `shared memory ${this.name}` : `mapped file ${this.name}`;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The SharedArrayBuffer over the mapped pages. Views of it stay valid after close()
   * (the pages are unmapped when the last one is garbage). Not available on the copying
   * path or for a read-only mapping (ERR_IPCKIT_UNSUPPORTED): use read/write/load/store.
   */
  get buffer(): SharedArrayBuffer {
    this.#check();
    if (!this.#sab) {
      const why = this.readOnly
        ? 'it is mapped read-only, and JavaScript cannot make a read-only SharedArrayBuffer (a write would crash the process)'
        : native.externalBuffersAllowed
          ? 'it was opened with { external: false }'
          : 'this runtime does not allow buffers over external memory (a V8 memory cage, as in Electron)';
        throw new IpcError('ERR_IPCKIT_UNSUPPORTED', `${this.#what} has no SharedArrayBuffer: ${why}; use read(), write(), load() and store()`);
    }
    return this.#sab;
  }

  /** @internal */
  get [kMemory](): Memory {
    this.#check();
    return this.#memory;
  }

  /** A copy of `length` bytes from `offset` (default: to the end). */
  read(offset = 0, length?: number): Buffer {
    this.#check();
    validate.integer('offset', offset, 0, this.size);
    const n = length === undefined ? this.size - offset : validate.integer('length', length, 0, this.size - offset);
    if (n > bufferConstants.MAX_LENGTH) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `read at most ${bufferConstants.MAX_LENGTH} bytes at once (the largest Buffer), not ${n}`);
    const b = Buffer.allocUnsafe(n);
    if (n > 0) this.#memory.copyInto(offset, n, b, 0);
    return b;
  }

  /** Copies `bytes` to `offset`. */
  write(bytes: Uint8Array, offset = 0): void {
    this.#check();
    this.#writable();
    validate.bytes('bytes', bytes);
    validate.integer('offset', offset, 0, this.size - bytes.length);
    this.#memory.copyIn(offset, bytes, 0, bytes.length);
  }

  /** Atomics on the 32-bit word at `index` (as on `new Int32Array(segment.buffer)`), on both paths. */
  load(index: number): number {
    return this.#memory.load(this.#index(index));
  }
  store(index: number, value: number): number {
    this.#writable();
    const v = value | 0;
    this.#memory.store(this.#index(index), v);
    return v;
  }
  add(index: number, delta: number): number {
    this.#writable();
    return this.#memory.add(this.#index(index), delta | 0);
  }
  compareExchange(index: number, expected: number, replacement: number): number {
    this.#writable();
    return this.#memory.compareExchange(this.#index(index), expected | 0, replacement | 0);
  }

  /**
   * Blocks this thread while word `index` equals `expected` (like Atomics.wait, but any
   * process can wake it). For workers and scripts: on the main thread it blocks the event
   * loop. 'ok' may also be a spurious wake-up: check the condition again.
   */
  waitSync(index: number, expected: number, timeoutMs?: number): ShmWaitResult {
    const i = this.#index(index);
    const ms = validate.timeout(timeoutMs);
    const deadline = ms === undefined ? undefined : performance.now() + ms;
    // In slices: a futex wait cannot be interrupted, and a worker's terminate() takes
    // effect only when this thread is back in JavaScript (V8's Atomics.wait it can wake).
    for (let first = true; ; first = false) {
      const left = deadline === undefined ? WAIT_SLICE_MS : Math.max(0, Math.min(WAIT_SLICE_MS, deadline - performance.now()));
      const r = this.#memory.waitSync(i, expected | 0, left);
      if (r < 0) throw errnoError(-r, 'futex', `wait on ${this.#what}`);
      if (r === 0) return 'ok';
      if (r === 1) return first ? 'not-equal' : 'ok'; // it changed while we were between slices
      if (deadline !== undefined && performance.now() >= deadline) return 'timed-out';
    }
  }

  /**
   * Waits, without blocking the event loop, until word `index` is notified or no longer
   * equals `expected`: resolves 'ok' (woken) or 'not-equal' (it differed at the start).
   * Rejects with ERR_IPCKIT_TIMEOUT, ERR_IPCKIT_ABORTED, or ERR_IPCKIT_CLOSED on close().
   */
  waitAsync(index: number, expected: number, options?: WaitOptions): Promise<'ok' | 'not-equal'> {
    const i = this.#index(index);
    return cancellableWait<'ok' | 'not-equal'>(`wait on ${this.#what}`, options, (resolve, reject) => {
      const onClose = (e: IpcError): void => {
        cancel();
        reject(e);
      };
      const cancel = this.#memory.waitAsync(i, expected | 0, -1, (r) => {
        this.#waits.delete(onClose);
        if (r === 0) resolve('ok');
        else if (r === 1) resolve('not-equal');
        else if (r < 0) reject(errnoError(-r, 'futex_waitv', `wait on ${this.#what}`));
      });
      this.#waits.add(onClose);
      return () => {
        this.#waits.delete(onClose);
        cancel();
      };
    });
  }

  /** Wakes up to `count` waiters on word `index`, in any process (default: all). Returns how many woke. */
  notify(index: number, count = Infinity): number {
    const i = this.#index(index);
    const n = count === Infinity ? -1 : validate.integer('count', count, 0, 2 ** 31 - 1);
    return this.#memory.wake(i, n);
  }

  /** Flushes the pages to the file (msync): for mapped files that must reach the disk. */
  sync(options: { async?: boolean } = {}): void {
    this.#check();
    sys(`sync ${this.#what}`, () => this.#mapping.sync(options.async === true), { path: this.path });
  }

  /**
   * False if the object is now smaller than what we mapped (a peer shrank it with
   * ftruncate): touching the missing pages would kill this process with SIGBUS.
   */
  isIntact(): boolean {
    this.#check();
    return this.#fd < 0 || native.fstat(this.#fd).size >= this.size; // an attached System V segment never shrinks
  }

  /** The permission record every IPC object reports (fstat): no key, creator or sequence number, which POSIX objects do not have. */
  perm(): PosixIpcPerm {
    this.#check();
    if (this.#fd < 0) throw new IpcError('ERR_IPCKIT_UNSUPPORTED', `${this.#what} has no descriptor to fstat: ask the System V segment (its perm())`);
    const st = sys(`stat ${this.#what}`, () => native.fstat(this.#fd), { path: this.path });
    return posixPerm(this.kind === 'shm' ? 'shm' : 'file', this.name, st);
  }

  info(): SharedMemoryInfo {
    this.#check();
    const st = sys(`stat ${this.#what}`, () => native.fstat(this.#fd), { path: this.path });
    return { kind: this.kind, name: this.name, path: this.path, size: this.size, readOnly: this.readOnly, external: this.external, uid: st.uid, gid: st.gid, mode: st.mode & 0o777 };
  }

  /**
   * Releases our handle: the fd and our reference to the mapping. Pending waitAsync calls
   * reject with ERR_IPCKIT_CLOSED. Buffers and views taken before stay usable. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const fail of [...this.#waits]) fail(closedError(this.#what));
    this.#waits.clear();
    this.#mapping.release();
    this.#keepFd();
    if (this.#fd >= 0) native.close(this.#fd);
  }

  /** Removes the name (the segment or file lives on while it is mapped). False if it was already gone. */
  unlink(): boolean {
    return this.kind === 'shm' ? unlinkSharedMemory(this.name) : unlinkFile(this.name);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #check(): void {
    if (this.#closed) throw closedError(this.#what);
  }

  #writable(): void {
    if (this.readOnly) throw new IpcError('ERR_IPCKIT_PERMISSION', `${this.#what} is mapped read-only`);
  }

  #index(index: number): number {
    this.#check();
    return validate.integer('index', index, 0, Math.floor(this.size / 4) - 1);
  }
}

/** @internal The memory access of a segment, for the structures built on it. */
export function memoryOf(segment: SharedMemory): Memory {
  return segment[kMemory];
}

function resolveExternal(external: boolean | undefined): boolean {
  if (external === undefined) return native.externalBuffersAllowed;
  if (typeof external !== 'boolean') throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `external must be a boolean, got ${validate.describe(external)}`);
  if (external && !native.externalBuffersAllowed) {
    throw new IpcError('ERR_IPCKIT_UNSUPPORTED', 'this runtime does not allow buffers over external memory (a V8 memory cage, as in Electron): use { external: false }');
  }
  return external;
}

/** Sets exact mode and group on a fresh object through its fd (no umask, no path race). */
function applyMode(fd: number, what: string, mode: number, group: number | undefined, path: string): void {
  if (group !== undefined) sys(`set the group of ${what}`, () => native.fchown(fd, -1, group), { path });
  sys(`set the mode of ${what}`, () => native.fchmod(fd, mode), { path });
}

/** Creates a segment exclusively (ERR_IPCKIT_EXISTS if the name is taken), maps it and returns it. */
export function createSharedMemory(name: string, size: number, options: CreateSharedMemoryOptions = {}): SharedMemory {
  const n = validate.posixName(name);
  validate.integer('size', size, 1);
  validate.object('options', options);
  const { mode, group } = createMode(options);
  const external = resolveExternal(options.external);
  const what = `shared memory ${n}`;
  const path = `/dev/shm${n}`;
  const fd = sys(`create ${what}`, () => native.shmOpen(n, O_RDWR | O_CREAT | O_EXCL, 0o600), { path });
  try {
    applyMode(fd, what, mode, group, path);
    sys(`size ${what}`, () => native.ftruncate(fd, size), { path });
    if (options.reserve === true) sys(`reserve ${size} bytes for ${what}`, () => native.fallocate(fd, size), { path });
    return new SharedMemory('shm', n, fd, size, false, external);
  } catch (e) {
    native.close(fd);
    try {
      native.shmUnlink(n);
    } catch {
      /* it was ours; nothing more to do */
    }
    throw e;
  }
}

/** Opens an existing segment after checking its owner and mode, and maps all of it. */
export function openSharedMemory(name: string, options: OpenSharedMemoryOptions = {}): SharedMemory {
  const n = validate.posixName(name);
  validate.object('options', options);
  const external = resolveExternal(options.external);
  const readOnly = options.readOnly === true;
  const what = `shared memory ${n}`;
  const path = `/dev/shm${n}`;
  const fd = sys(`open ${what}`, () => native.shmOpen(n, readOnly ? O_RDONLY : O_RDWR, 0), { path });
  try {
    const st = sys(`open ${what}`, () => native.fstat(fd), { path });
    checkRegular(st, what, path);
    checkOwner(st, what, options);
    if (st.size === 0) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `${what} is empty (size 0): its creator has not sized it yet, or it is not a segment to map`, { path });
    return new SharedMemory('shm', n, fd, st.size, readOnly, external);
  } catch (e) {
    native.close(fd);
    throw e;
  }
}

/** Removes a segment's name. Idempotent: false if there was none. Mappings stay valid. */
export function unlinkSharedMemory(name: string): boolean {
  const n = validate.posixName(name);
  try {
    native.shmUnlink(n);
    return true;
  } catch (e) {
    if (errnoOf(e) === ENOENT) return false;
    return sys(`remove shared memory ${n}`, () => {
      throw e;
    }, { path: `/dev/shm${n}` });
  }
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
  const readOnly = options.readOnly === true;
  const external = resolveExternal(options.external);
  const { mode, group } = createMode(options);
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
    const mapped = size ?? native.fstat(fd).size;
    return new SharedMemory('file', path, fd, mapped, readOnly, external);
  } catch (e) {
    native.close(fd);
    if (created) unlinkFile(path);
    throw e;
  }
}
