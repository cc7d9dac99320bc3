/**
 * System V shared memory segments (shmget, shmat, shmdt, shmctl; svipc(7)): memory found by
 * key or identifier, which PostgreSQL, X11's MIT-SHM, C programs and Python's sysv_ipc
 * attach.
 *
 * - `createSysvSharedMemory(key, size)` (exclusive, mode exactly 0600 unless asked) and
 *   `openSysvSharedMemory(target, { readOnly })` attach the whole segment. `buffer` is a
 *   SharedArrayBuffer over it (not for a read-only attach, SHM_RDONLY: a write through it
 *   would crash the process; use read/load), with the same cross-process `wait`,
 *   `waitSync` and `notify` on its 32-bit words as a POSIX segment (futex without
 *   FUTEX_PRIVATE_FLAG: the futex of a shared mapping is keyed by its page, so a notify
 *   in one process wakes a waiter in another).
 * - `close()` detaches at once (the attach count drops now, not when garbage is collected).
 *   A SharedArrayBuffer obtained before close() never turns into a crash: private zero
 *   pages take the segment's place under it (native/sysv.cc shmDetach).
 * - `remove()` (IPC_RMID) marks the segment for removal: its key no longer finds it (a new
 *   segment may take the key), and it lives on, with its contents, until the last process
 *   detaches. `stat()` then shows `removed: true` and key 0.
 *
 * Built on the shared-memory stack (src/memory): the attachment is a Mapping whose region
 * shmdt detaches (native/sysv.cc, region.h), a Segment over it, and the POSIX segment's
 * SharedMemory over that, whose read/write, atomics and waits this handle offers.
 */
import { constants as osConstants } from 'node:os';
import type { WaitOptions } from '../../core/channel.js';
import { closedError, errnoError, errnoOf, IpcError, toIpcError } from '../../core/errors.js';
import * as validate from '../../core/validate.js';
import type { SysvIpcPerm } from '../../os/ipc-perm.js';
import { Mapping } from '../../os/mapping.js';
import { native } from '../../os/native.js';
import { readSysvTable } from '../../os/sysvipc.js';
import { resolveExternal, Segment } from '../../memory/segment.js';
import { SharedMemory, type ShmWaitResult } from '../shm/shm.js';
import { describeTarget, findSysv, isGone, keyHex, validateKey, validateTarget, waitForSysv, type SysvTarget } from './keys.js';
import { limitError, sysvLimits } from './limits.js';
import { checkSysvOwner, createMode, flag, openOptions, ownerArgument, sysvPerm, type CreateModeOptions, type SysvOpenOptions } from './perm.js';

const C = native.sysvConstants;
const { EEXIST, EINVAL, ENOSPC, ENOMEM, EACCES } = osConstants.errno;
const PAGE = 4096;

export interface SysvSharedMemoryOptions {
  /** true (default where the runtime allows it): `buffer` is a SharedArrayBuffer; false: read/write copy (see shm.ts). */
  external?: boolean;
  /** Mark the segment for removal (IPC_RMID) when this handle closes (default false). */
  removeOnClose?: boolean;
}

export interface CreateSysvSharedMemoryOptions extends CreateModeOptions, SysvSharedMemoryOptions {}

export interface OpenSysvSharedMemoryOptions extends SysvOpenOptions, SysvSharedMemoryOptions {
  /** Attach read-only (SHM_RDONLY): no `buffer`; read, load and waits only. */
  readOnly?: boolean;
}

export interface SysvSharedMemoryStat extends SysvIpcPerm {
  /** Bytes (shm_segsz). */
  size: number;
  /** Processes attached now (shm_nattch). */
  attached: number;
  /** Marked for removal (IPC_RMID): it goes when the last process detaches. */
  removed: boolean;
  creatorPid: number;
  /** The last process that attached or detached. */
  lastPid: number;
  attachTime: Date | null;
  detachTime: Date | null;
  changeTime: Date | null;
}

const date = (seconds: number): Date | null => (seconds === 0 ? null : new Date(seconds * 1000));

export class SysvSharedMemory implements Disposable {
  readonly #id: number;
  readonly #key: number;
  readonly #segment: SharedMemory;
  readonly #mapping: Mapping;
  readonly #removeOnClose: boolean;
  #removed = false;

  /** @internal */
  constructor(id: number, key: number, segment: SharedMemory, mapping: Mapping, removeOnClose: boolean) {
    this.#id = id;
    this.#key = key;
    this.#segment = segment;
    this.#mapping = mapping;
    this.#removeOnClose = removeOnClose;
  }

  get id(): number {
    return this.#id;
  }

  get key(): number {
    return this.#key;
  }

  /** Bytes attached: the whole segment. */
  get size(): number {
    return this.#segment.size;
  }

  get readOnly(): boolean {
    return this.#segment.readOnly;
  }

  /** true: `buffer` is a SharedArrayBuffer over the pages; false: the copying path. */
  get external(): boolean {
    return this.#segment.external;
  }

  get closed(): boolean {
    return this.#segment.closed;
  }

  /** The SharedArrayBuffer over the segment (see SharedMemory.buffer). */
  get buffer(): SharedArrayBuffer {
    return this.#segment.buffer;
  }

  /** A copy of `length` bytes from `offset` (default: to the end). */
  read(offset = 0, length?: number): Buffer {
    return this.#segment.read(offset, length);
  }

  /** Copies `bytes` to `offset`. */
  write(bytes: Uint8Array, offset = 0): void {
    this.#segment.write(bytes, offset);
  }

  /** Atomics on the 32-bit word at `index`, as on `new Int32Array(segment.buffer)`. */
  load(index: number): number {
    return this.#segment.load(index);
  }
  store(index: number, value: number): number {
    return this.#segment.store(index, value);
  }
  add(index: number, delta: number): number {
    return this.#segment.add(index, delta);
  }
  compareExchange(index: number, expected: number, replacement: number): number {
    return this.#segment.compareExchange(index, expected, replacement);
  }

  /** Blocks this thread while word `index` equals `expected` (workers, scripts); any process can wake it. */
  waitSync(index: number, expected: number, timeoutMs?: number): ShmWaitResult {
    return this.#segment.waitSync(index, expected, timeoutMs);
  }

  /** Waits without blocking the event loop until word `index` is notified or differs from `expected`. */
  wait(index: number, expected: number, options?: WaitOptions): Promise<ShmWaitResult> {
    return this.#segment.wait(index, expected, options);
  }

  /** Wakes up to `count` waiters on word `index`, in any process (default: all). */
  notify(index: number, count = Infinity): number {
    return this.#segment.notify(index, count);
  }

  /** IPC_STAT: the permission record, size, attach count, removal mark, pids and times. */
  stat(): SysvSharedMemoryStat {
    const s = this.#stat();
    return {
      ...sysvPerm('shm', this.#id, s),
      size: s.size,
      attached: s.attached,
      removed: (s.mode & C.SHM_DEST) !== 0,
      creatorPid: s.creatorPid,
      lastPid: s.lastPid,
      attachTime: date(s.attachTime),
      detachTime: date(s.detachTime),
      changeTime: date(s.changeTime),
    };
  }

  perm(): SysvIpcPerm {
    return sysvPerm('shm', this.#id, this.#stat());
  }

  /** IPC_SET: a new owner and/or group. */
  setOwner(owner: { uid?: number; gid?: number }): void {
    const { uid, gid } = ownerArgument(owner);
    const s = this.#stat();
    this.#ctl(() => native.shmSet(this.#id, uid ?? s.uid, gid ?? s.gid, s.mode & 0o777), 'shmctl(IPC_SET)');
  }

  /** IPC_SET: new permission bits. */
  setMode(mode: number): void {
    const m = validate.mode('mode', mode, 0o600);
    const s = this.#stat();
    this.#ctl(() => native.shmSet(this.#id, s.uid, s.gid, m), 'shmctl(IPC_SET)');
  }

  /**
   * IPC_RMID: marks the segment for removal. Its key no longer finds it; it stays, with its
   * contents, for every process attached (this one too) until the last detaches. False if
   * it was gone or marked already.
   */
  remove(): boolean {
    if (this.#removed) return false;
    this.#removed = true;
    return removeSegment(this.#id, this.#what);
  }

  /**
   * Detaches now; pending waits reject with ERR_IPCKIT_CLOSED. A buffer (or view) taken
   * before stays valid memory, but no longer the segment's: it reads zeros from then on,
   * and what is written to it goes nowhere. Idempotent.
   */
  close(): void {
    if (this.#segment.closed) return;
    if (this.#removeOnClose && !this.#removed) this.remove();
    try {
      // While the Mapping still holds the region; waits in flight keep valid (private) pages under them.
      native.shmDetach(this.#mapping.handle);
    } finally {
      this.#segment.close(); // rejects pending waits and releases the Mapping
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  get #what(): string {
    return this.#key === 0 ? `System V shared memory id ${this.#id}` : `System V shared memory ${keyHex(this.#key)} (id ${this.#id})`;
  }

  #stat(): ReturnType<typeof native.shmStat> {
    if (this.#segment.closed) throw closedError(this.#what);
    return this.#ctl(() => native.shmStat(this.#id), 'shmctl(IPC_STAT)');
  }

  #ctl<R>(fn: () => R, syscall: string): R {
    try {
      return fn();
    } catch (e) {
      const errno = errnoOf(e);
      if (errno !== undefined && isGone(errno)) throw new IpcError('ERR_IPCKIT_CLOSED', `${this.#what} is gone`, { errno, syscall, details: { removed: true } });
      if (errno !== undefined) throw errnoError(errno, syscall, this.#what);
      throw e;
    }
  }
}

function removeSegment(id: number, what: string): boolean {
  try {
    native.shmRemove(id);
    return true;
  } catch (e) {
    const errno = errnoOf(e);
    if (errno !== undefined && isGone(errno)) return false;
    throw toIpcError(e, `remove ${what}`);
  }
}

/** Attaches segment `id` as a Segment of the shared-memory stack (src/memory/segment.ts), with the POSIX segment's API over it. */
function attach(id: number, key: number, what: string, readOnly: boolean, external: boolean, removeOnClose: boolean): SysvSharedMemory {
  let mapping: Mapping;
  let s: ReturnType<typeof native.shmStat>;
  try {
    s = native.shmStat(id);
    mapping = Mapping.adopt(native.shmAttach(id, readOnly));
  } catch (e) {
    const errno = errnoOf(e);
    if (errno !== undefined && isGone(errno)) throw new IpcError('ERR_IPCKIT_NOT_FOUND', `${what} was removed as we attached it`, { errno, syscall: 'shmat' });
    throw toIpcError(e, `attach ${what}`);
  }
  // Its messages read "shared memory System V key 0x… (id N) is closed".
  const name = key === 0 ? `System V id ${id}` : `System V key ${keyHex(key)} (id ${id})`;
  const stat = { dev: 0, ino: id, mode: s.mode & 0o777, uid: s.uid, gid: s.gid, size: s.size, nlink: s.attached };
  const segment = new Segment(name, name, mapping, s.size, readOnly, external, stat);
  return new SysvSharedMemory(id, key, new SharedMemory('shm', segment), mapping, removeOnClose);
}

/**
 * Creates a segment of `size` bytes exclusively (an existing key is ERR_IPCKIT_EXISTS), zero
 * filled, with exactly `mode` (default 0o600), and attaches it. Never waits.
 */
export function createSysvSharedMemory(key: number, size: number, options: CreateSysvSharedMemoryOptions = {}): SysvSharedMemory {
  const k = validateKey('key', key);
  validate.integer('size', size, 1, Number.MAX_SAFE_INTEGER);
  const o = validate.object<CreateSysvSharedMemoryOptions>('options', options);
  const { mode, group } = createMode(o);
  const external = resolveExternal(o.external);
  const removeOnClose = o.removeOnClose === undefined ? false : flag('removeOnClose', o.removeOnClose);
  const what = describeTarget('shm', { key: k });
  let id: number;
  try {
    id = native.shmGet(k, size, C.IPC_CREAT | C.IPC_EXCL | mode);
  } catch (e) {
    const errno = errnoOf(e);
    const limits = sysvLimits();
    if (errno === EEXIST) throw new IpcError('ERR_IPCKIT_EXISTS', `${what} already exists (open it with openSysvSharedMemory, or remove it first)`, { errno, syscall: 'shmget', systemCode: 'EEXIST' });
    if (errno === EINVAL && size > limits.shmmax) throw limitError('kernel.shmmax', limits.shmmax, `a segment of ${size} bytes is larger than`, { errno, syscall: 'shmget', systemCode: 'EINVAL', details: { requested: size } });
    if (errno === ENOSPC) {
      const segments = readSysvTable('shm');
      if (segments.length >= limits.shmmni) throw limitError('kernel.shmmni', limits.shmmni, `cannot create ${what}: this IPC namespace has ${segments.length} segments, the most`, { errno, syscall: 'shmget', systemCode: 'ENOSPC' });
      const pages = segments.reduce((n, r) => n + Math.ceil((r.size ?? 0) / PAGE), 0);
      throw limitError('kernel.shmall', limits.shmall, `cannot create ${what}: its ${Math.ceil(size / PAGE)} pages and the ${pages} in use pass the most in all segments,`, { errno, syscall: 'shmget', systemCode: 'ENOSPC', details: { requested: size } });
    }
    if (errno === ENOMEM) throw new IpcError('ERR_IPCKIT_LIMIT', `not enough memory for ${what} of ${size} bytes`, { errno, syscall: 'shmget', systemCode: 'ENOMEM', details: { limit: 'memory' } });
    throw toIpcError(e, `create ${what}`);
  }
  try {
    if (group !== undefined) {
      const s = native.shmStat(id);
      native.shmSet(id, s.uid, group, mode);
    }
    return attach(id, k, what, false, external, removeOnClose);
  } catch (e) {
    removeSegment(id, what);
    throw toIpcError(e, `create ${what}`);
  }
}

function openChecked(target: { key: number } | { id: number }, o: SysvOpenOptions, readOnly: boolean, external: boolean, removeOnClose: boolean, id: number): SysvSharedMemory {
  const what = describeTarget('shm', target);
  let s: ReturnType<typeof native.shmStat>;
  try {
    s = native.shmStat(id);
  } catch (e) {
    const errno = errnoOf(e);
    if (errno !== undefined && isGone(errno)) throw new IpcError('ERR_IPCKIT_NOT_FOUND', `${what} was removed as we opened it`, { errno, syscall: 'shmctl(IPC_STAT)' });
    if (errno === EACCES) throw new IpcError('ERR_IPCKIT_PERMISSION', `${what} (id ${id}) does not let uid ${process.geteuid?.()} read it`, { errno, syscall: 'shmctl(IPC_STAT)', systemCode: 'EACCES' });
    throw toIpcError(e, `open ${what}`);
  }
  checkSysvOwner(s, `${what} (id ${id})`, o);
  return attach(id, s.key, what, readOnly, external, removeOnClose);
}

function checkOpen(target: unknown, options: unknown): { t: { key: number } | { id: number }; o: SysvOpenOptions; readOnly: boolean; external: boolean; removeOnClose: boolean } {
  const t = validateTarget(target);
  const raw = validate.object<OpenSysvSharedMemoryOptions>('options', options);
  const o = openOptions(raw);
  const readOnly = raw.readOnly === undefined ? false : flag('readOnly', raw.readOnly);
  const external = resolveExternal(raw.external);
  return { t, o, readOnly, external, removeOnClose: raw.removeOnClose === undefined ? false : flag('removeOnClose', raw.removeOnClose) };
}

const get = (key: number): number => native.shmGet(key, 0, 0);
const stat = (id: number): unknown => native.shmStat(id);

/**
 * Attaches an existing segment by key or `{ id }`, after checking its owner, creator and
 * mode (see perm.ts). `{ readOnly: true }` attaches with SHM_RDONLY. `{ wait: true }` waits
 * for the key to appear (timeout, signal).
 */
export function openSysvSharedMemory(target: SysvTarget, options: OpenSysvSharedMemoryOptions = {}): Promise<SysvSharedMemory> {
  const { t, o, readOnly, external, removeOnClose } = checkOpen(target, options);
  if (o.wait) return waitForSysv('shm', t, get, stat, o).then((id) => openChecked(t, o, readOnly, external, removeOnClose, id));
  try {
    return Promise.resolve(openChecked(t, o, readOnly, external, removeOnClose, findSysv('shm', t, get, stat)));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** openSysvSharedMemory for scripts and workers: the same checks, no waiting. */
export function openSysvSharedMemorySync(target: SysvTarget, options: Omit<OpenSysvSharedMemoryOptions, 'wait' | 'timeout' | 'signal'> = {}): SysvSharedMemory {
  const { t, o, readOnly, external, removeOnClose } = checkOpen(target, options);
  if (o.wait) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', 'openSysvSharedMemorySync cannot wait for the key: use openSysvSharedMemory');
  return openChecked(t, o, readOnly, external, removeOnClose, findSysv('shm', t, get, stat));
}

/** Marks the segment a key or `{ id }` names for removal (IPC_RMID): false if there is none. Remove only what is yours. */
export function removeSysvSharedMemory(target: SysvTarget): boolean {
  const t = validateTarget(target);
  let id: number;
  try {
    id = findSysv('shm', t, get, stat);
  } catch (e) {
    if (e instanceof IpcError && e.code === 'ERR_IPCKIT_NOT_FOUND') return false;
    throw e;
  }
  return removeSegment(id, describeTarget('shm', t));
}
