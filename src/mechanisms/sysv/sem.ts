/**
 * System V semaphore sets (semget, semop, semtimedop, semctl; svipc(7)): N counters in one
 * kernel object, changed together and atomically, with SEM_UNDO so that the kernel gives
 * back what a process took when it dies. C programs, Python's sysv_ipc, Apache's
 * `Mutex sysvsem` and PostgreSQL use them.
 *
 * - `op([{ index, delta }, ...], { undo, wait })` applies every operation or none: delta < 0
 *   takes (waits while the value is too small), > 0 gives, 0 waits for zero.
 * - Waiting never blocks the event loop nor parks a thread of libuv's pool. An op first
 *   tries with IPC_NOWAIT on the loop (no thread when it can be done now); otherwise a
 *   thread of ours (os/blocking.ts) waits in semtimedop, with the op's timeout as the
 *   kernel's own (exact). An abort or close() interrupts that call with a signal (see
 *   native/blocking.cc: never pthread_cancel, which glibc before 2.39 lets act after the
 *   call took effect), and the op settles with what happened: done (resolves) or not done
 *   (rejects). Cost: one thread per waiting op, asleep until the kernel wakes it.
 * - `undo` (SEM_UNDO): the kernel records each change and reverses it when the process
 *   exits, however it exits (SIGKILL included). `sysvLock(set)` is a lock built on it, as
 *   Apache's sysvsem mutex: take 1 with undo, give it back with undo.
 * - Creating a set is two steps in System V (semget, then SETALL): ipckit creates it
 *   owner-only, sets the values, marks it initialised (a no-op semop sets sem_otime, as
 *   Stevens describes) and only then gives it its mode. `open…({ wait: true })` waits for
 *   the set to exist *and* be marked.
 */
import { constants as osConstants } from 'node:os';
import { closedError, errnoError, errnoOf, IpcError, timeoutError, toIpcError } from '../../core/errors.js';
import type { WaitOptions } from '../../core/channel.js';
import * as validate from '../../core/validate.js';
import { runBlocking } from '../../os/blocking.js';
import type { SysvIpcPerm } from '../../os/ipc-perm.js';
import { native } from '../../os/native.js';
import { readSysvTable } from '../../os/sysvipc.js';
import { describeTarget, findSysv, isGone, keyHex, validateKey, validateTarget, waitForSysv, type SysvTarget } from './keys.js';
import { limitError, sysvLimits } from './limits.js';
import { checkSysvOwner, createMode, flag, openOptions, ownerArgument, sysvPerm, type CreateModeOptions, type SysvOpenOptions } from './perm.js';
import { SpinBudget, spinOption } from '../../os/spin.js';
import { spinBeforeWait } from '../../os/turn.js';

const C = native.sysvConstants;
const { EAGAIN, EEXIST, ENOSPC, ENOMEM, EINVAL, E2BIG, ERANGE, EFBIG, EINTR } = osConstants.errno;
/** Longest semtimedop of opSync: between two, a worker's terminate() can act. */
const SLICE_MS = 50;

/** One operation: `delta` < 0 takes, > 0 gives, 0 waits until the value is zero. */
export interface SemOp {
  index: number;
  delta: number;
  /** SEM_UNDO for this operation (default: the call's `undo`). */
  undo?: boolean;
}

export interface SemOpOptions extends WaitOptions {
  /** SEM_UNDO: the kernel reverses this change when the process exits (default false). */
  undo?: boolean;
  /** false: do it now or not at all (IPC_NOWAIT), resolving false when it would wait (default true). */
  wait?: boolean;
}

export interface SysvSemaphoreSetOptions {
  /** Remove the set (IPC_RMID) when this handle closes (default false). */
  removeOnClose?: boolean;
  /**
   * How long an `op()` that would wait retries it (IPC_NOWAIT) on the event loop before a
   * thread waits, in µs (default 20 where the process may use more than one CPU, else 0;
   * adaptive, as a pipe's: os/spin.ts). Never longer than its timeout. A peer on another
   * CPU that makes the change within it saves both sides a wake-up.
   */
  spinMicros?: number;
}

export interface CreateSysvSemaphoreSetOptions extends CreateModeOptions, SysvSemaphoreSetOptions {
  /** How many semaphores (default 1; at most kernel.sem SEMMSL). */
  count?: number;
  /** The value of every semaphore (default 0)... */
  value?: number;
  /** ...or each one's value. */
  values?: number[];
}

export interface OpenSysvSemaphoreSetOptions extends SysvOpenOptions, SysvSemaphoreSetOptions {}

export interface SysvSemaphoreSetStat extends SysvIpcPerm {
  /** Semaphores in the set. */
  count: number;
  /** Last semop (null: never: not yet initialised, see above) and last change. */
  opTime: Date | null;
  changeTime: Date | null;
}

const date = (seconds: number): Date | null => (seconds === 0 ? null : new Date(seconds * 1000));

/** The same operations with IPC_NOWAIT (done now, on the loop thread, or not at all). */
function withNowait(encoded: Int32Array): Int32Array {
  const nowait = encoded.slice();
  for (let i = 2; i < nowait.length; i += 3) nowait[i]! |= C.IPC_NOWAIT;
  return nowait;
}

export class SysvSemaphoreSet {
  readonly #id: number;
  readonly #key: number;
  readonly #count: number;
  readonly #removeOnClose: boolean;
  #closed = false;
  #removed = false;
  #closing: Promise<void> | undefined;
  /** Waits in flight: how to stop each (close), and who waits for them to end. */
  readonly #stops = new Set<(error: unknown) => void>();
  #inFlight = 0;
  #drained: (() => void) | undefined;
  readonly #spinner: SpinBudget;

  /** @internal */
  constructor(id: number, key: number, count: number, removeOnClose: boolean, spinMicros = spinOption(undefined)) {
    this.#id = id;
    this.#key = key;
    this.#count = count;
    this.#removeOnClose = removeOnClose;
    this.#spinner = new SpinBudget(spinMicros);
  }

  get id(): number {
    return this.#id;
  }

  get key(): number {
    return this.#key;
  }

  /** How many semaphores the set has. */
  get count(): number {
    return this.#count;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get #what(): string {
    return this.#key === 0 ? `System V semaphore set id ${this.#id}` : `System V semaphore set ${keyHex(this.#key)} (id ${this.#id})`;
  }

  /**
   * Applies every operation at once or none, waiting while it cannot (unless `wait: false`).
   * Resolves true once done; false only with `wait: false` when it would have waited.
   * Timeout and abort end the wait having done nothing (an abort that comes while the
   * kernel completes the operation is too late: the op resolves true).
   */
  op(ops: SemOp[], options: SemOpOptions = {}): Promise<boolean> {
    const o = validate.object<SemOpOptions>('options', options);
    const undo = o.undo === undefined ? false : flag('undo', o.undo);
    const wait = o.wait === undefined ? true : flag('wait', o.wait);
    const timeout = validate.timeout(o.timeout);
    const signal = validate.abortSignal(o.signal);
    const encoded = this.#encode(ops, undo);
    const bad = this.#unusable();
    if (bad) return Promise.reject(bad);
    const nowait = withNowait(encoded);
    let r = native.semOp(this.#id, nowait, -1);
    // It would wait: retry for a few µs before a thread waits (spinMicros), under the
    // event-loop turn rules every spin keeps (os/turn.ts).
    if (r === -EAGAIN && wait) spinBeforeWait(this.#spinner, () => (r = native.semOp(this.#id, nowait, -1)) !== -EAGAIN, o);
    if (r === 0) return Promise.resolve(true);
    if (r !== -EAGAIN) return Promise.reject(this.#error(-r, 'semop'));
    if (!wait) return Promise.resolve(false);
    const what = `semaphore operation on ${this.#what}`;
    let stop: ((error: unknown) => void) | undefined;
    const onClose = (error: unknown): void => stop?.(error);
    this.#stops.add(onClose);
    this.#inFlight++;
    return runBlocking(
      {
        what,
        settle: 'when-reported',
        start: (calls) => calls.semopWait(this.#id, encoded, timeout === undefined ? -1 : Math.ceil(timeout)),
        failure: (errno) => (errno === EAGAIN ? timeoutError(what, timeout ?? 0) : this.#error(errno, 'semtimedop')),
        settled: () => {
          if (--this.#inFlight === 0) this.#drained?.();
        },
        onStop: (s) => (stop = s),
      },
      signal ? { signal } : undefined,
    )
      .then(() => true)
      .finally(() => this.#stops.delete(onClose));
  }

  /** The operations now, or false when they would wait (IPC_NOWAIT). */
  tryOp(ops: SemOp[], options: { undo?: boolean } = {}): boolean {
    const o = validate.object<{ undo?: boolean }>('options', options);
    const encoded = this.#encode(ops, o.undo === undefined ? false : flag('undo', o.undo));
    const bad = this.#unusable();
    if (bad) throw bad;
    const r = native.semOp(this.#id, withNowait(encoded), -1);
    if (r === 0) return true;
    if (r === -EAGAIN) return false;
    throw this.#error(-r, 'semop');
  }

  /** The operations, blocking the calling thread while they cannot be done (workers, scripts); ERR_IPCKIT_TIMEOUT after `timeout` ms. */
  opSync(ops: SemOp[], options: { undo?: boolean; timeout?: number } = {}): void {
    const o = validate.object<{ undo?: boolean; timeout?: number }>('options', options);
    const encoded = this.#encode(ops, o.undo === undefined ? false : flag('undo', o.undo));
    const timeout = validate.timeout(o.timeout);
    const bad = this.#unusable();
    if (bad) throw bad;
    const deadline = timeout === undefined ? undefined : performance.now() + timeout;
    // In slices: a worker's terminate() takes effect only when this thread is back in JavaScript.
    for (;;) {
      const left = deadline === undefined ? SLICE_MS : Math.max(0, Math.min(SLICE_MS, deadline - performance.now()));
      const r = native.semOp(this.#id, encoded, Math.ceil(left));
      if (r === 0) return;
      if (r !== -EAGAIN && r !== -EINTR) throw this.#error(-r, 'semtimedop');
      if (deadline !== undefined && performance.now() >= deadline) throw timeoutError(`semaphore operation on ${this.#what}`, timeout!);
    }
  }

  /** The value of semaphore `index` (GETVAL). */
  get(index: number): number {
    const i = this.#index(index);
    return this.#ctl(() => native.semCtl(this.#id, i, C.GETVAL), 'semctl(GETVAL)');
  }

  /** Every value (GETALL). */
  getAll(): number[] {
    return this.#ctl(() => native.semGetAll(this.#id, this.#count), 'semctl(GETALL)');
  }

  /** Sets semaphore `index` (SETVAL): wakes whoever that lets through, and clears every process's undo record for it. */
  set(index: number, value: number): void {
    const i = this.#index(index);
    const v = validate.integer('value', value, 0, C.SEMVMX);
    this.#ctl(() => native.semSetVal(this.#id, i, v), 'semctl(SETVAL)');
  }

  /** Sets every value (SETALL), as `set` does for one. */
  setAll(values: number[]): void {
    const v = checkValues(values, this.#count);
    this.#ctl(() => native.semSetAll(this.#id, v), 'semctl(SETALL)');
  }

  /** How many processes wait for semaphore `index` to grow (GETNCNT). */
  waitingToTake(index: number): number {
    const i = this.#index(index);
    return this.#ctl(() => native.semCtl(this.#id, i, C.GETNCNT), 'semctl(GETNCNT)');
  }

  /** How many processes wait for semaphore `index` to be zero (GETZCNT). */
  waitingForZero(index: number): number {
    const i = this.#index(index);
    return this.#ctl(() => native.semCtl(this.#id, i, C.GETZCNT), 'semctl(GETZCNT)');
  }

  /** The pid of the last process that operated on semaphore `index` (GETPID; 0: none yet). */
  lastPid(index: number): number {
    const i = this.#index(index);
    return this.#ctl(() => native.semCtl(this.#id, i, C.GETPID), 'semctl(GETPID)');
  }

  stat(): SysvSemaphoreSetStat {
    const s = this.#ctl(() => native.semStat(this.#id), 'semctl(IPC_STAT)');
    return { ...sysvPerm('sem', this.#id, s), count: s.count, opTime: date(s.opTime), changeTime: date(s.changeTime) };
  }

  perm(): SysvIpcPerm {
    return sysvPerm('sem', this.#id, this.#ctl(() => native.semStat(this.#id), 'semctl(IPC_STAT)'));
  }

  /** IPC_SET: a new owner and/or group. */
  setOwner(owner: { uid?: number; gid?: number }): void {
    const { uid, gid } = ownerArgument(owner);
    const s = this.#ctl(() => native.semStat(this.#id), 'semctl(IPC_STAT)');
    this.#ctl(() => native.semSet(this.#id, uid ?? s.uid, gid ?? s.gid, s.mode & 0o777), 'semctl(IPC_SET)');
  }

  /** IPC_SET: new permission bits. */
  setMode(mode: number): void {
    const m = validate.mode('mode', mode, 0o600);
    const s = this.#ctl(() => native.semStat(this.#id), 'semctl(IPC_STAT)');
    this.#ctl(() => native.semSet(this.#id, s.uid, s.gid, m), 'semctl(IPC_SET)');
  }

  /** IPC_RMID: removes the set; every waiter, here and elsewhere, ends. False if it was gone already. */
  remove(): boolean {
    if (this.#removed) return false;
    this.#removed = true;
    this.#endWaits(() => this.#removedError());
    return removeSet(this.#id, this.#what);
  }

  /** Ends this handle's waits with ERR_IPCKIT_CLOSED (once their threads have let go) and releases it. Idempotent. The set stays unless removeOnClose. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      this.#endWaits(() => closedError(this.#what));
      if (this.#inFlight > 0) await new Promise<void>((r) => (this.#drained = r));
      if (this.#removeOnClose && !this.#removed) removeSet(this.#id, this.#what);
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #endWaits(error: () => unknown): void {
    for (const stop of [...this.#stops]) stop(error());
  }

  #unusable(): IpcError | undefined {
    if (this.#closed) return closedError(this.#what);
    if (this.#removed) return this.#removedError();
    return undefined;
  }

  #removedError(): IpcError {
    return new IpcError('ERR_IPCKIT_CLOSED', `${this.#what} was removed`, { details: { removed: true, id: this.#id } });
  }

  #index(index: number): number {
    return validate.integer('index', index, 0, this.#count - 1);
  }

  /** [index, delta, flags] triples of checked operations. */
  #encode(ops: SemOp[], undo: boolean): Int32Array {
    if (!Array.isArray(ops) || ops.length === 0) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `ops must be a non-empty array of { index, delta }, got ${validate.describe(ops)}`);
    const out = new Int32Array(ops.length * 3);
    ops.forEach((op, i) => {
      const o = validate.object<SemOp>(`ops[${i}]`, op);
      if (op === undefined) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `ops[${i}] must be { index, delta }, got undefined`);
      out[3 * i] = validate.integer(`ops[${i}].index`, o.index, 0, this.#count - 1);
      out[3 * i + 1] = validate.integer(`ops[${i}].delta`, o.delta, -C.SEMVMX, C.SEMVMX);
      out[3 * i + 2] = (o.undo === undefined ? undo : flag(`ops[${i}].undo`, o.undo)) ? C.SEM_UNDO : 0;
    });
    return out;
  }

  #error(errno: number, syscall: string): IpcError {
    if (isGone(errno)) {
      this.#removed = true;
      return this.#removedError();
    }
    const limits = sysvLimits();
    if (errno === E2BIG) return limitError('kernel.sem SEMOPM', limits.semopm, `too many operations for one semop on ${this.#what}: the kernel allows`, { errno, syscall, systemCode: 'E2BIG' });
    if (errno === ERANGE) return limitError('SEMVMX', C.SEMVMX, `the operation on ${this.#what} would take a value (or its undo record) past`, { errno, syscall, systemCode: 'ERANGE' });
    if (errno === EFBIG) return new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `an index is past the ${this.#count} semaphores of ${this.#what}`, { errno, syscall, systemCode: 'EFBIG' });
    return errnoError(errno, syscall, this.#what);
  }

  #ctl<R>(fn: () => R, syscall: string): R {
    const bad = this.#unusable();
    if (bad) throw bad;
    try {
      return fn();
    } catch (e) {
      const errno = errnoOf(e);
      if (errno === undefined) throw e;
      throw this.#error(errno, syscall);
    }
  }
}

function checkValues(values: unknown, count: number): number[] {
  if (!Array.isArray(values) || values.length !== count) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `values must be an array of ${count} numbers (one per semaphore), got ${validate.describe(values)}`);
  return values.map((v, i) => validate.integer(`values[${i}]`, v, 0, C.SEMVMX));
}

function removeSet(id: number, what: string): boolean {
  try {
    native.semRemove(id);
    return true;
  } catch (e) {
    const errno = errnoOf(e);
    if (errno !== undefined && isGone(errno)) return false;
    throw toIpcError(e, `remove ${what}`);
  }
}

/**
 * Creates a set exclusively (an existing key is ERR_IPCKIT_EXISTS) with `count` semaphores
 * set to `value` (or `values`), then gives it exactly `mode` (default 0o600). Never waits.
 */
export function createSysvSemaphoreSet(key: number, options: CreateSysvSemaphoreSetOptions = {}): SysvSemaphoreSet {
  const k = validateKey('key', key);
  const o = validate.object<CreateSysvSemaphoreSetOptions>('options', options);
  const { mode, group } = createMode(o);
  const count = validate.optionalInteger('count', o.count, 1, 65535) ?? (Array.isArray(o.values) ? o.values.length : 1);
  if (o.value !== undefined && o.values !== undefined) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', 'give value (every semaphore) or values (each one), not both');
  const values = o.values !== undefined ? checkValues(o.values, count) : new Array<number>(count).fill(validate.optionalInteger('value', o.value, 0, C.SEMVMX) ?? 0);
  const removeOnClose = o.removeOnClose === undefined ? false : flag('removeOnClose', o.removeOnClose);
  const spinMicros = spinOption(o.spinMicros);
  const what = describeTarget('sem', { key: k });
  let id: number;
  try {
    // Owner-only while it is being initialised.
    id = native.semGet(k, count, C.IPC_CREAT | C.IPC_EXCL | (mode & 0o700));
  } catch (e) {
    const errno = errnoOf(e);
    const limits = sysvLimits();
    if (errno === EEXIST) throw new IpcError('ERR_IPCKIT_EXISTS', `${what} already exists (open it with openSysvSemaphoreSet, or remove it first)`, { errno, syscall: 'semget', systemCode: 'EEXIST' });
    if (errno === EINVAL && count > limits.semmsl) throw limitError('kernel.sem SEMMSL', limits.semmsl, `a set of ${count} semaphores is more than`, { errno, syscall: 'semget', systemCode: 'EINVAL', details: { requested: count } });
    if (errno === ENOSPC) {
      const sets = readSysvTable('sem');
      if (sets.length >= limits.semmni) throw limitError('kernel.sem SEMMNI', limits.semmni, `cannot create ${what}: this IPC namespace has ${sets.length} sets, the most`, { errno, syscall: 'semget', systemCode: 'ENOSPC' });
      throw limitError('kernel.sem SEMMNS', limits.semmns, `cannot create ${what}: ${count} more semaphores would pass the most in all sets,`, { errno, syscall: 'semget', systemCode: 'ENOSPC', details: { requested: count } });
    }
    if (errno === ENOMEM) throw new IpcError('ERR_IPCKIT_LIMIT', `not enough kernel memory for ${what}`, { errno, syscall: 'semget', systemCode: 'ENOMEM', details: { limit: 'memory' } });
    throw toIpcError(e, `create ${what}`);
  }
  try {
    native.semSetAll(id, values);
    // Marks it initialised: sem_otime is set by any semop (see above).
    const stamp = values[0]! > 0 ? [0, -1, C.IPC_NOWAIT, 0, 1, C.IPC_NOWAIT] : [0, 0, C.IPC_NOWAIT];
    const r = native.semOp(id, Int32Array.from(stamp), -1);
    if (r !== 0) throw errnoError(-r, 'semop', `initialise ${what}`);
    const s = native.semStat(id);
    native.semSet(id, s.uid, group ?? s.gid, mode);
  } catch (e) {
    removeSet(id, what);
    throw toIpcError(e, `initialise ${what}`);
  }
  return new SysvSemaphoreSet(id, k, count, removeOnClose, spinMicros);
}

function openChecked(target: { key: number } | { id: number }, o: SysvOpenOptions, removeOnClose: boolean, spinMicros: number, id: number): SysvSemaphoreSet {
  const what = describeTarget('sem', target);
  let s: ReturnType<typeof native.semStat>;
  try {
    s = native.semStat(id);
  } catch (e) {
    const errno = errnoOf(e);
    if (errno !== undefined && isGone(errno)) throw new IpcError('ERR_IPCKIT_NOT_FOUND', `${what} was removed as we opened it`, { errno, syscall: 'semctl(IPC_STAT)' });
    throw toIpcError(e, `open ${what}`);
  }
  checkSysvOwner(s, `${what} (id ${id})`, o);
  return new SysvSemaphoreSet(id, s.key, s.count, removeOnClose, spinMicros);
}

function checkOpen(target: unknown, options: unknown): { t: { key: number } | { id: number }; o: SysvOpenOptions; removeOnClose: boolean; spinMicros: number } {
  const t = validateTarget(target);
  const raw = validate.object<OpenSysvSemaphoreSetOptions>('options', options);
  return { t, o: openOptions(raw), removeOnClose: raw.removeOnClose === undefined ? false : flag('removeOnClose', raw.removeOnClose), spinMicros: spinOption(raw.spinMicros) };
}

const get = (key: number): number => native.semGet(key, 0, 0);
const stat = (id: number): unknown => native.semStat(id);
/** Initialised: someone has operated on it (ipckit's creator does, last). */
const initialised = (id: number): boolean => {
  try {
    return native.semStat(id).opTime !== 0;
  } catch {
    return false;
  }
};

/**
 * Opens an existing set by key or `{ id }`, after checking its owner, creator and mode (see
 * perm.ts). `{ wait: true }` waits for the key to appear and for the set to be initialised
 * (sem_otime set): a set made by a program that never operates on it (`ipcmk -S`) does not
 * count as initialised until something does; open it without `wait`.
 */
export function openSysvSemaphoreSet(target: SysvTarget, options: OpenSysvSemaphoreSetOptions = {}): Promise<SysvSemaphoreSet> {
  const { t, o, removeOnClose, spinMicros } = checkOpen(target, options);
  if (o.wait) return waitForSysv('sem', t, get, stat, o, initialised).then((id) => openChecked(t, o, removeOnClose, spinMicros, id));
  try {
    return Promise.resolve(openChecked(t, o, removeOnClose, spinMicros, findSysv('sem', t, get, stat)));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** openSysvSemaphoreSet for scripts and workers: the same checks, no waiting. */
export function openSysvSemaphoreSetSync(target: SysvTarget, options: Omit<OpenSysvSemaphoreSetOptions, 'wait' | 'timeout' | 'signal'> = {}): SysvSemaphoreSet {
  const { t, o, removeOnClose, spinMicros } = checkOpen(target, options);
  if (o.wait) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', 'openSysvSemaphoreSetSync cannot wait: use openSysvSemaphoreSet');
  return openChecked(t, o, removeOnClose, spinMicros, findSysv('sem', t, get, stat));
}

/** Removes the set a key or `{ id }` names (IPC_RMID): false if there is none. Remove only what is yours. */
export function removeSysvSemaphoreSet(target: SysvTarget): boolean {
  const t = validateTarget(target);
  let id: number;
  try {
    id = findSysv('sem', t, get, stat);
  } catch (e) {
    if (e instanceof IpcError && e.code === 'ERR_IPCKIT_NOT_FOUND') return false;
    throw e;
  }
  return removeSet(id, describeTarget('sem', t));
}

/** A lock held from a SysvLock: `release()` (or `using`) gives it back, once. */
export class SysvLockHold implements Disposable, AsyncDisposable {
  #released = false;
  /** @internal Made by SysvLock. */
  constructor(
    readonly lock: SysvLock,
    give: () => void,
  ) {
    this.#give = give;
  }
  readonly #give: () => void;

  get released(): boolean {
    return this.#released;
  }

  /** Gives the lock back. True the first time; false (nothing done) after. */
  release(): boolean {
    if (this.#released) return false;
    this.#released = true;
    this.#give();
    return true;
  }

  [Symbol.dispose](): void {
    this.release();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.release();
  }
}

/**
 * A lock on semaphore `index` of a set whose value is 1 when free (make it with
 * `createSysvSemaphoreSet(key, { value: 1 })`): lock takes 1 with SEM_UNDO, release gives
 * it back with SEM_UNDO, so the kernel releases the lock of a process that dies holding it.
 * The way Apache's `Mutex sysvsem` works. Within one process the lock is not reentrant and
 * any holder may release it.
 */
export class SysvLock {
  readonly #ops: { take: SemOp[]; give: SemOp[] };

  /** @internal Use sysvLock(set, { index }). */
  constructor(
    readonly set: SysvSemaphoreSet,
    readonly index: number,
  ) {
    this.#ops = { take: [{ index, delta: -1 }], give: [{ index, delta: 1 }] };
  }

  /** Takes the lock, waiting while another process (or handle) holds it. */
  lock(options: WaitOptions = {}): Promise<SysvLockHold> {
    return this.set.op(this.#ops.take, { ...validate.object<WaitOptions>('options', options), undo: true }).then(() => this.#hold());
  }

  /** The lock now, or undefined when it is held. */
  tryLock(): SysvLockHold | undefined {
    return this.set.tryOp(this.#ops.take, { undo: true }) ? this.#hold() : undefined;
  }

  /** Takes the lock blocking the calling thread (workers, scripts). */
  lockSync(options: { timeout?: number } = {}): SysvLockHold {
    this.set.opSync(this.#ops.take, { ...validate.object<{ timeout?: number }>('options', options), undo: true });
    return this.#hold();
  }

  /** Whether it is held now (the semaphore is 0). */
  get locked(): boolean {
    return this.set.get(this.index) === 0;
  }

  #hold(): SysvLockHold {
    return new SysvLockHold(this, () => {
      if (!this.set.closed) this.set.tryOp(this.#ops.give, { undo: true });
    });
  }
}

/** A lock on semaphore `index` (default 0) of `set`, with undo (see SysvLock). */
export function sysvLock(set: SysvSemaphoreSet, options: { index?: number } = {}): SysvLock {
  if (!(set instanceof SysvSemaphoreSet)) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `sysvLock needs a SysvSemaphoreSet, got ${validate.describe(set)}`);
  const o = validate.object<{ index?: number }>('options', options);
  return new SysvLock(set, validate.optionalInteger('index', o.index, 0, set.count - 1) ?? 0);
}
