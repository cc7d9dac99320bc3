/**
 * Shared values and arrays (Python's multiprocessing `Value` and `Array`): numbers in a
 * named shared-memory object that other processes open by name, with atomic operations,
 * wait/notify, and an optional robust lock for compound updates.
 *
 * - `createSharedValue(name, 'i64')` / `await openSharedValue(name)`: one number;
 *   `createSharedArray(name, Float64Array, 1000)` / `await openSharedArray(name)`: many.
 *   Kinds: f64 f32 i64 u64 i32 u32 i16 u16 i8 u8 (i64/u64 are bigints).
 * - load/store/add/sub/compareExchange/exchange are atomic on every kind: integer kinds
 *   with Atomics on the element, float kinds on the element's bit pattern (add and sub on
 *   floats are a compare-and-swap loop). `array` is the typed array itself, over the
 *   shared pages, for plain reads and writes (and for Atomics of your own).
 * - `wait(expected)` resolves once the element is no longer `expected` and someone called
 *   `notify()` (as Atomics.wait/notify: a store does not wake by itself), on the event
 *   loop; `waitSync` blocks the thread. One notify word per object.
 * - `{ lock: true }` at creation puts a robust, process-shared pthread mutex in the object
 *   (the mutex mechanism's own: src/mechanisms/mutex); `withLock(fn)` runs a compound
 *   update under it; a holder killed inside it hands the next locker `{ ownerDied: true }`.
 *
 * Layout (docs/process.md; a C or Python peer reads the numbers at byte 192):
 *
 *   byte   0  the common header (src/memory/header.ts), magic 'IPKV', version 1
 *   word  16  mutex offset: 128, or 0 without a lock     (the same words as a mutex object,
 *   word  17  mutex size: sizeof(pthread_mutex_t), or 0    so the mutex code reads it as is)
 *   word  18  element kind: 1 f64, 2 f32, 3 i64, 4 u64, 5 i32, 6 u32, 7 i16, 8 u16, 9 i8, 10 u8
 *   word  19  length (elements)
 *   word  20  data offset: 192
 *   word  21  notify sequence (bumped and woken by notify())
 *   byte 128  pthread_mutex_t (when word 16 is 128)
 *   byte 192  the elements, little-endian, naturally aligned
 */
import type { WaitOptions } from '../../core/channel.js';
import { closedError, invalidArgument, IpcError } from '../../core/errors.js';
import * as validate from '../../core/validate.js';
import { native } from '../../os/native.js';
import { adopt, createObject, openObject, openObjectSync, planOpen, unlinkObject, type CreateObjectOptions, type OpenObjectOptions } from '../../memory/object.js';
import type { Segment } from '../../memory/segment.js';
import { checkWaitOptions, untilReady, untilReadySync, type Attempt } from '../../memory/waits.js';
import { Mutex, MUTEX_OFFSET, type LockResult } from '../mutex/mutex.js';

export const SHARED_VALUE_VERSION = 1;
const VERSION = SHARED_VALUE_VERSION;
const W_MUTEX_OFFSET = 16;
const W_MUTEX_SIZE = 17;
const W_KIND = 18;
const W_LENGTH = 19;
const W_DATA_OFFSET = 20;
const W_NOTIFY = 21;
export const SHARED_VALUE_DATA_OFFSET = 192;

export type SharedValueKind = 'f64' | 'f32' | 'i64' | 'u64' | 'i32' | 'u32' | 'i16' | 'u16' | 'i8' | 'u8';
const KINDS: readonly SharedValueKind[] = ['f64', 'f32', 'i64', 'u64', 'i32', 'u32', 'i16', 'u16', 'i8', 'u8'];

type AnyArray = Float64Array | Float32Array | BigInt64Array | BigUint64Array | Int32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Uint8Array;
export type SharedArrayType =
  | Float64ArrayConstructor
  | Float32ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int8ArrayConstructor
  | Uint8ArrayConstructor;

const CTORS: Record<SharedValueKind, SharedArrayType> = {
  f64: Float64Array, f32: Float32Array, i64: BigInt64Array, u64: BigUint64Array, i32: Int32Array,
  u32: Uint32Array, i16: Int16Array, u16: Uint16Array, i8: Int8Array, u8: Uint8Array,
};

/** The element type of a kind: bigint for the 64-bit integers, number otherwise. */
export type ElementOf<K extends SharedValueKind> = K extends 'i64' | 'u64' ? bigint : number;
type ArrayOf<K extends SharedValueKind> = InstanceType<(typeof CTORS)[K]>;
type KindOf<A extends SharedArrayType> = A extends Float64ArrayConstructor ? 'f64' : A extends Float32ArrayConstructor ? 'f32' : A extends BigInt64ArrayConstructor ? 'i64'
  : A extends BigUint64ArrayConstructor ? 'u64' : A extends Int32ArrayConstructor ? 'i32' : A extends Uint32ArrayConstructor ? 'u32' : A extends Int16ArrayConstructor ? 'i16'
  : A extends Uint16ArrayConstructor ? 'u16' : A extends Int8ArrayConstructor ? 'i8' : A extends Uint8ArrayConstructor ? 'u8' : SharedValueKind;

/** A typed array of `kind` over `sab`. */
function view(kind: SharedValueKind, sab: SharedArrayBuffer, byteOffset: number, length: number): AnyArray {
  return new (CTORS[kind] as unknown as new (b: ArrayBufferLike, o: number, l: number) => AnyArray)(sab, byteOffset, length);
}

function kindOfCtor(ctor: unknown): SharedValueKind {
  for (const k of KINDS) if (CTORS[k] === ctor) return k;
  throw invalidArgument(`type must be one of Float64Array, Float32Array, BigInt64Array, BigUint64Array, Int32Array, Uint32Array, Int16Array, Uint16Array, Int8Array, Uint8Array, got ${validate.describe(ctor)}`);
}

const isBig = (k: SharedValueKind): boolean => k === 'i64' || k === 'u64';
const isFloat = (k: SharedValueKind): boolean => k === 'f64' || k === 'f32';

/** Range of each integer kind, to refuse a value that would wrap. */
const RANGES: Partial<Record<SharedValueKind, [number | bigint, number | bigint]>> = {
  i64: [-(2n ** 63n), 2n ** 63n - 1n], u64: [0n, 2n ** 64n - 1n], i32: [-(2 ** 31), 2 ** 31 - 1], u32: [0, 2 ** 32 - 1],
  i16: [-(2 ** 15), 2 ** 15 - 1], u16: [0, 2 ** 16 - 1], i8: [-128, 127], u8: [0, 255],
};

function checkElement(kind: SharedValueKind, name: string, v: unknown): number | bigint {
  if (isBig(kind)) {
    if (typeof v !== 'bigint') throw invalidArgument(`${name} must be a bigint for a ${kind}, got ${validate.describe(v)}`);
    const [lo, hi] = RANGES[kind]! as [bigint, bigint];
    if (v < lo || v > hi) throw invalidArgument(`${name} ${v} is out of range for a ${kind} (${lo}..${hi})`);
    return v;
  }
  if (typeof v !== 'number') throw invalidArgument(`${name} must be a number for a ${kind}, got ${validate.describe(v)}`);
  if (isFloat(kind)) return v;
  const [lo, hi] = RANGES[kind]! as [number, number];
  if (!Number.isInteger(v) || v < lo || v > hi) throw invalidArgument(`${name} must be an integer from ${lo} to ${hi} for a ${kind}, got ${validate.describe(v)}`);
  return v;
}

/** A delta for add/sub: any integer of the kind's width (the result wraps, as Atomics.add). */
function checkDelta(kind: SharedValueKind, v: unknown): number | bigint {
  if (isBig(kind)) {
    if (typeof v !== 'bigint') throw invalidArgument(`delta must be a bigint for a ${kind}, got ${validate.describe(v)}`);
    return v;
  }
  if (typeof v !== 'number' || (!isFloat(kind) && !Number.isInteger(v))) throw invalidArgument(`delta must be ${isFloat(kind) ? 'a number' : 'an integer'} for a ${kind}, got ${validate.describe(v)}`);
  return v;
}

function corrupt(name: string, what: string): IpcError {
  return new IpcError('ERR_IPCKIT_CORRUPT', `shared value ${name} is corrupt: ${what}`, { path: name });
}

export interface CreateSharedValueOptions extends CreateObjectOptions {
  /** Put a robust lock in the object for withLock() (default false). */
  lock?: boolean;
}
export type OpenSharedValueOptions = OpenObjectOptions;

/**
 * Numbers in a named shared object, any length (SharedValue is the one-element form). `K`
 * is the element kind.
 */
export class SharedArray<K extends SharedValueKind = SharedValueKind> {
  readonly name: string;
  readonly kind: K;
  readonly length: number;
  /** The elements themselves, over the shared pages: plain reads and writes, or Atomics of your own (integer kinds). */
  readonly array: ArrayOf<K>;
  readonly #segment: Segment;
  readonly #i32: Int32Array;
  /** The element bits for float kinds (BigInt64Array for f64, Int32Array for f32): atomics work on these. */
  readonly #bits: BigInt64Array | Int32Array | undefined;
  readonly #mutex: Mutex | undefined;
  #closed = false;

  /** @internal */
  constructor(segment: Segment, kind: K, length: number, hasLock: boolean) {
    const sab = segment.sab!;
    this.name = segment.name;
    this.kind = kind;
    this.length = length;
    this.#segment = segment;
    this.#i32 = new Int32Array(sab, 0, SHARED_VALUE_DATA_OFFSET / 4);
    this.array = view(kind, sab, SHARED_VALUE_DATA_OFFSET, length) as ArrayOf<K>;
    this.#bits = kind === 'f64' ? new BigInt64Array(sab, SHARED_VALUE_DATA_OFFSET, length) : kind === 'f32' ? new Int32Array(sab, SHARED_VALUE_DATA_OFFSET, length) : undefined;
    this.#mutex = hasLock ? new Mutex(segment) : undefined;
  }

  /** Whether the object has a lock (made with `{ lock: true }`). */
  get hasLock(): boolean {
    return this.#mutex !== undefined;
  }

  /** The robust lock, for lock()/unlock()/markConsistent() by hand; ERR_IPCKIT_INVALID_ARGUMENT without one. */
  get lock(): Mutex {
    return this.#needLock();
  }

  load(index: number): ElementOf<K> {
    const i = this.#index(index);
    return this.#load(i) as ElementOf<K>;
  }

  store(index: number, value: ElementOf<K>): void {
    const i = this.#index(index);
    const v = checkElement(this.kind, 'value', value);
    const bits = this.#bits;
    if (bits === undefined) Atomics.store(this.array as Int32Array, i, v as number);
    else if (bits instanceof BigInt64Array) Atomics.store(bits, i, f64Bits(v as number));
    else Atomics.store(bits, i, f32Bits(v as number));
  }

  /** Atomically adds `delta` (wrapping for integers); returns the old value. */
  add(index: number, delta: ElementOf<K>): ElementOf<K> {
    const i = this.#index(index);
    const d = checkDelta(this.kind, delta);
    if (this.#bits === undefined) return Atomics.add(this.array as Int32Array, i, d as number) as ElementOf<K>;
    return this.#floatUpdate(i, (old) => old + (d as number)) as ElementOf<K>;
  }

  /** Atomically subtracts `delta`; returns the old value. */
  sub(index: number, delta: ElementOf<K>): ElementOf<K> {
    const i = this.#index(index);
    const d = checkDelta(this.kind, delta);
    if (this.#bits === undefined) return Atomics.sub(this.array as Int32Array, i, d as number) as ElementOf<K>;
    return this.#floatUpdate(i, (old) => old - (d as number)) as ElementOf<K>;
  }

  /** Atomically stores `value`; returns the old value. */
  exchange(index: number, value: ElementOf<K>): ElementOf<K> {
    const i = this.#index(index);
    const v = checkElement(this.kind, 'value', value);
    if (this.#bits === undefined) return Atomics.exchange(this.array as Int32Array, i, v as number) as ElementOf<K>;
    return this.#floatUpdate(i, () => v as number) as ElementOf<K>;
  }

  /**
   * Stores `replacement` if the element is `expected` (floats: the same bits, so NaN
   * matches the NaN stored); returns the value it had: the swap happened if that is `expected`.
   */
  compareExchange(index: number, expected: ElementOf<K>, replacement: ElementOf<K>): ElementOf<K> {
    const i = this.#index(index);
    const e = checkElement(this.kind, 'expected', expected);
    const r = checkElement(this.kind, 'replacement', replacement);
    const bits = this.#bits;
    if (bits === undefined) return Atomics.compareExchange(this.array as Int32Array, i, e as number, r as number) as ElementOf<K>;
    if (bits instanceof BigInt64Array) return bitsF64(Atomics.compareExchange(bits, i, f64Bits(e as number), f64Bits(r as number))) as ElementOf<K>;
    return bitsF32(Atomics.compareExchange(bits, i, f32Bits(e as number), f32Bits(r as number))) as ElementOf<K>;
  }

  /**
   * Waits on the event loop until element `index` is no longer `expected`, checking again
   * at each notify() (and every 50 ms); resolves with the value it found.
   * ERR_IPCKIT_TIMEOUT / ERR_IPCKIT_ABORTED after `timeout` / `signal`.
   */
  wait(index: number, expected: ElementOf<K>, options?: WaitOptions): Promise<ElementOf<K>> {
    const i = this.#index(index);
    const e = checkElement(this.kind, 'expected', expected);
    const aborted = checkWaitOptions(options, `wait on shared value ${this.name}`);
    if (aborted) return Promise.reject(aborted);
    const ms = options?.timeout;
    return untilReady(`wait on shared value ${this.name}`, () => this.#attempt(i, e), {
      deadline: ms === undefined ? undefined : performance.now() + ms,
      signal: options?.signal,
      onTimeout: () => new IpcError('ERR_IPCKIT_TIMEOUT', `wait on shared value ${this.name} timed out after ${ms} ms`, { details: { timeout: ms } }),
    }) as Promise<ElementOf<K>>;
  }

  /** wait() blocking this thread (for workers and scripts), up to `timeout` ms. */
  waitSync(index: number, expected: ElementOf<K>, options: { timeout?: number } = {}): ElementOf<K> {
    const i = this.#index(index);
    const e = checkElement(this.kind, 'expected', expected);
    const ms = validate.timeout(validate.object<{ timeout: unknown }>('options', options).timeout);
    return untilReadySync(() => this.#attempt(i, e), {
      deadline: ms === undefined ? undefined : performance.now() + ms,
      onTimeout: () => new IpcError('ERR_IPCKIT_TIMEOUT', `wait on shared value ${this.name} timed out after ${ms} ms`, { details: { timeout: ms } }),
    }) as ElementOf<K>;
  }

  /** Wakes every waiter (in any process) to look again; returns how many were woken. */
  notify(): number {
    this.#check();
    Atomics.add(this.#i32, W_NOTIFY, 1);
    return this.#segment.mem.wake(W_NOTIFY, -1);
  }

  /**
   * Runs `fn` holding the object's robust lock (made with `{ lock: true }`), and unlocks
   * afterwards, also when it throws. After a holder died inside it, `fn` gets
   * `{ ownerDied: true }`: repair, then call `this.lock.markConsistent()`.
   */
  withLock<R>(fn: (lock: LockResult) => R | Promise<R>, options?: WaitOptions): Promise<R> {
    return this.#needLock().withLock(fn, options);
  }

  /** Releases this handle (a lock it holds is unlocked first). The object stays until unlinked. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#mutex) void this.#mutex.close();
    else this.#segment.close();
  }

  /** Removes the name (handles that are open keep working). False if it was gone. */
  unlink(): boolean {
    return unlinkSharedValue(this.name);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #check(): void {
    if (this.#closed) throw closedError(`shared value ${this.name}`);
  }

  #index(index: unknown): number {
    const i = validate.integer('index', index, 0, this.length - 1);
    this.#check();
    return i;
  }

  #needLock(): Mutex {
    this.#check();
    if (!this.#mutex) throw invalidArgument(`shared value ${this.name} has no lock: create it with { lock: true } to use withLock`);
    return this.#mutex;
  }

  #load(i: number): number | bigint {
    const bits = this.#bits;
    if (bits === undefined) return Atomics.load(this.array as Int32Array, i);
    return bits instanceof BigInt64Array ? bitsF64(Atomics.load(bits, i)) : bitsF32(Atomics.load(bits, i));
  }

  /** A read-modify-write of a float element: a compare-and-swap loop on its bits. Returns the old value. */
  #floatUpdate(i: number, f: (old: number) => number): number {
    const bits = this.#bits!;
    if (bits instanceof BigInt64Array) {
      for (;;) {
        const old = Atomics.load(bits, i);
        if (Atomics.compareExchange(bits, i, old, f64Bits(f(bitsF64(old)))) === old) return bitsF64(old);
      }
    }
    for (;;) {
      const old = Atomics.load(bits, i);
      if (Atomics.compareExchange(bits, i, old, f32Bits(f(bitsF32(old)))) === old) return bitsF32(old);
    }
  }

  #attempt(i: number, expected: number | bigint): Attempt<number | bigint> {
    this.#check();
    const seq = Atomics.load(this.#i32, W_NOTIFY);
    const v = this.#load(i);
    if (!Object.is(v, expected) && !(v === expected)) return { done: v };
    return { sleepOn: { mapping: this.#segment.mapping, byteOffset: W_NOTIFY * 4, seq } };
  }
}

// Bit patterns of floats, through one scratch buffer.
const scratch = new ArrayBuffer(8);
const sF64 = new Float64Array(scratch);
const sI64 = new BigInt64Array(scratch);
const sF32 = new Float32Array(scratch, 0, 1);
const sI32 = new Int32Array(scratch, 0, 1);
function f64Bits(v: number): bigint {
  sF64[0] = v;
  return sI64[0]!;
}
function bitsF64(b: bigint): number {
  sI64[0] = b;
  return sF64[0]!;
}
function f32Bits(v: number): number {
  sF32[0] = v;
  return sI32[0]!;
}
function bitsF32(b: number): number {
  sI32[0] = b;
  return sF32[0]!;
}

/** One number in a named shared object: SharedArray's operations on its one element. */
export class SharedValue<K extends SharedValueKind = SharedValueKind> {
  /** @internal */
  constructor(readonly elements: SharedArray<K>) {}
  get name(): string {
    return this.elements.name;
  }
  get kind(): K {
    return this.elements.kind;
  }
  get hasLock(): boolean {
    return this.elements.hasLock;
  }
  get lock(): Mutex {
    return this.elements.lock;
  }
  load(): ElementOf<K> {
    return this.elements.load(0);
  }
  store(value: ElementOf<K>): void {
    this.elements.store(0, value);
  }
  add(delta: ElementOf<K>): ElementOf<K> {
    return this.elements.add(0, delta);
  }
  sub(delta: ElementOf<K>): ElementOf<K> {
    return this.elements.sub(0, delta);
  }
  exchange(value: ElementOf<K>): ElementOf<K> {
    return this.elements.exchange(0, value);
  }
  compareExchange(expected: ElementOf<K>, replacement: ElementOf<K>): ElementOf<K> {
    return this.elements.compareExchange(0, expected, replacement);
  }
  wait(expected: ElementOf<K>, options?: WaitOptions): Promise<ElementOf<K>> {
    return this.elements.wait(0, expected, options);
  }
  waitSync(expected: ElementOf<K>, options: { timeout?: number } = {}): ElementOf<K> {
    return this.elements.waitSync(0, expected, options);
  }
  notify(): number {
    return this.elements.notify();
  }
  withLock<R>(fn: (lock: LockResult) => R | Promise<R>, options?: WaitOptions): Promise<R> {
    return this.elements.withLock(fn, options);
  }
  close(): void {
    this.elements.close();
  }
  unlink(): boolean {
    return this.elements.unlink();
  }
  [Symbol.dispose](): void {
    this.close();
  }
}

function lockOption(options: CreateSharedValueOptions): boolean {
  return validate.optionalBoolean('lock', options.lock) ?? false;
}

function make(name: string, kind: SharedValueKind, length: number, options: CreateSharedValueOptions, initial: number | bigint | undefined): SharedArray {
  const n = validate.posixName(name);
  const hasLock = lockOption(options);
  if (options.external === false) throw invalidArgument('shared values work over a SharedArrayBuffer: { external: false } is not offered');
  const bytes = length * CTORS[kind].BYTES_PER_ELEMENT;
  const segment = createObject(n, { kind: 'value', version: VERSION, size: SHARED_VALUE_DATA_OFFSET + Math.max(8, (bytes + 7) & ~7) }, options, (seg) => {
    if (seg.sab === undefined) throw new IpcError('ERR_IPCKIT_UNSUPPORTED', 'this runtime does not allow buffers over external memory (a V8 memory cage, as in Electron): shared values need them');
    const mem = seg.mem;
    if (hasLock) {
      seg.mapping.mutexInit(MUTEX_OFFSET);
      mem.store(W_MUTEX_OFFSET, MUTEX_OFFSET);
      mem.store(W_MUTEX_SIZE, native.PTHREAD_MUTEX_SIZE);
    }
    mem.store(W_KIND, KINDS.indexOf(kind) + 1);
    mem.store(W_LENGTH, length);
    mem.store(W_DATA_OFFSET, SHARED_VALUE_DATA_OFFSET);
    if (initial !== undefined) view(kind, seg.sab, SHARED_VALUE_DATA_OFFSET, 1)[0] = initial as never;
  });
  return adopt(segment, () => new SharedArray(segment, kind, length, hasLock));
}

/** The layout of an opened object, checked (untrusted: each word read once). */
function adoptOpened(segment: Segment, want: { kind?: SharedValueKind; value: boolean }): SharedArray {
  return adopt(segment, () => {
    const name = segment.name;
    if (segment.sab === undefined) throw new IpcError('ERR_IPCKIT_UNSUPPORTED', 'this runtime does not allow buffers over external memory: shared values need them');
    const mem = segment.mem;
    const code = mem.load(W_KIND) >>> 0;
    const kind = KINDS[code - 1];
    if (kind === undefined) throw corrupt(name, `element kind ${code}`);
    const length = mem.load(W_LENGTH) >>> 0;
    const dataOffset = mem.load(W_DATA_OFFSET) >>> 0;
    if (dataOffset !== SHARED_VALUE_DATA_OFFSET) throw corrupt(name, `data offset ${dataOffset}, expected ${SHARED_VALUE_DATA_OFFSET}`);
    if (length === 0 || dataOffset + length * CTORS[kind].BYTES_PER_ELEMENT > segment.size) throw corrupt(name, `${length} elements of ${kind} do not fit in ${segment.size} bytes`);
    const mutexOffset = mem.load(W_MUTEX_OFFSET) >>> 0;
    if (mutexOffset !== 0 && mutexOffset !== MUTEX_OFFSET) throw corrupt(name, `mutex offset ${mutexOffset}`);
    if (mutexOffset !== 0) {
      const size = mem.load(W_MUTEX_SIZE) >>> 0;
      if (size !== native.PTHREAD_MUTEX_SIZE) throw new IpcError('ERR_IPCKIT_UNSUPPORTED', `shared value ${name} was made with a pthread_mutex_t of ${size} bytes, this system's is ${native.PTHREAD_MUTEX_SIZE}`, { path: name });
      if (!segment.mapping.mutexValid(MUTEX_OFFSET)) throw corrupt(name, 'its mutex is not a robust process-shared mutex');
    }
    if (want.kind !== undefined && want.kind !== kind) {
      throw new IpcError('ERR_IPCKIT_WRONG_KIND', `shared value ${name} holds ${kind}, not ${want.kind}`, { path: name, details: { expected: want.kind, found: kind } });
    }
    if (want.value && length !== 1) throw new IpcError('ERR_IPCKIT_WRONG_KIND', `${name} is a shared array of ${length}, not a shared value: open it with openSharedArray`, { path: name, details: { length } });
    return new SharedArray(segment, kind, length, mutexOffset !== 0);
  });
}

export interface OpenSharedArrayOptions<A extends SharedArrayType | undefined = undefined> extends OpenSharedValueOptions {
  /** The element type expected (ERR_IPCKIT_WRONG_KIND if it holds another). */
  type?: A;
}
export interface OpenSharedValueKindOptions<K extends SharedValueKind | undefined = undefined> extends OpenSharedValueOptions {
  /** The kind expected (ERR_IPCKIT_WRONG_KIND if it holds another). */
  kind?: K;
}

/** Creates a shared value of `kind` (exclusively, mode 0600 unless asked), set to `initial` or 0. Never waits. */
export function createSharedValue<K extends SharedValueKind>(name: string, kind: K, options: CreateSharedValueOptions & { initial?: ElementOf<K> } = {}): SharedValue<K> {
  validate.oneOf('kind', kind, KINDS);
  validate.object('options', options);
  const initial = options.initial === undefined ? undefined : checkElement(kind, 'initial', options.initial);
  const { initial: _i, ...rest } = options;
  return new SharedValue(make(name, kind, 1, rest, initial) as SharedArray<K>);
}

/** Creates a shared array of `length` elements of `type` (Float64Array, Int32Array, ...), all 0. Never waits. */
export function createSharedArray<A extends SharedArrayType>(name: string, type: A, length: number, options: CreateSharedValueOptions = {}): SharedArray<KindOf<A>> {
  const kind = kindOfCtor(type);
  validate.integer('length', length, 1, Math.floor((2 ** 31 - SHARED_VALUE_DATA_OFFSET) / type.BYTES_PER_ELEMENT));
  validate.object('options', options);
  return make(name, kind, length, options, undefined) as SharedArray<KindOf<A>>;
}

function openPlan(name: string, options: unknown): { n: string; plan: ReturnType<typeof planOpen> } {
  const n = validate.posixName(name);
  const o = validate.object<OpenSharedValueOptions>('options', options);
  if (o.external === false) throw invalidArgument('shared values work over a SharedArrayBuffer: { external: false } is not offered');
  return { n, plan: planOpen(o) };
}

/** Opens a shared value (checking owner, mode and layout); waits up to `timeout` (default 2 s) for a creator still making it. */
export function openSharedValue<K extends SharedValueKind = SharedValueKind>(name: string, options: OpenSharedValueKindOptions<K> = {}): Promise<SharedValue<K>> {
  const { n, plan } = openPlan(name, options);
  const kind = validate.optionalOneOf('kind', options.kind, KINDS);
  return openObject(n, 'value', VERSION, plan).then((seg) => new SharedValue(adoptOpened(seg, { value: true, ...(kind ? { kind } : {}) }) as SharedArray<K>));
}

/** openSharedValue for workers and scripts. */
export function openSharedValueSync<K extends SharedValueKind = SharedValueKind>(name: string, options: OpenSharedValueKindOptions<K> = {}): SharedValue<K> {
  const { n, plan } = openPlan(name, options);
  const kind = validate.optionalOneOf('kind', options.kind, KINDS);
  return new SharedValue(adoptOpened(openObjectSync(n, 'value', VERSION, plan), { value: true, ...(kind ? { kind } : {}) }) as SharedArray<K>);
}

/** Opens a shared array (a shared value is an array of one). */
export function openSharedArray<A extends SharedArrayType | undefined = undefined>(name: string, options: OpenSharedArrayOptions<A> = {}): Promise<SharedArray<A extends SharedArrayType ? KindOf<A> : SharedValueKind>> {
  const { n, plan } = openPlan(name, options);
  const kind = options.type === undefined ? undefined : kindOfCtor(options.type);
  return openObject(n, 'value', VERSION, plan).then((seg) => adoptOpened(seg, { value: false, ...(kind ? { kind } : {}) }) as never);
}

/** openSharedArray for workers and scripts. */
export function openSharedArraySync<A extends SharedArrayType | undefined = undefined>(name: string, options: OpenSharedArrayOptions<A> = {}): SharedArray<A extends SharedArrayType ? KindOf<A> : SharedValueKind> {
  const { n, plan } = openPlan(name, options);
  const kind = options.type === undefined ? undefined : kindOfCtor(options.type);
  return adoptOpened(openObjectSync(n, 'value', VERSION, plan), { value: false, ...(kind ? { kind } : {}) }) as never;
}

/** Removes a shared value's or array's name, after checking that it is one (ERR_IPCKIT_WRONG_KIND otherwise). False if it was gone. */
export function unlinkSharedValue(name: string): boolean {
  return unlinkObject(validate.posixName(name), 'value');
}

/** The same as unlinkSharedValue (values and arrays are one kind of object). */
export const unlinkSharedArray = unlinkSharedValue;
