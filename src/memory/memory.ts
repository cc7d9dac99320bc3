/**
 * How the structures built on a mapping (ring, work queue, pool, the common header)
 * reach its bytes. Two implementations: over the SharedArrayBuffer (the fast path), and
 * through native calls (the copying path, for runtimes that forbid external buffers and
 * for `{ external: false }`). Word indexes are in 32-bit units from the start of the
 * mapping; 64-bit words are at 8-byte aligned indexes.
 */
import { decodeScratch } from '../core/codec.js';
import type { Mapping } from '../os/mapping.js';
import { native, type FutexResult } from '../os/native.js';
import { atThreadExit, blockingWait, FutexWord, watchWord, type WordWatch } from './waits.js';

// A message copied out of a mapping owns its memory: its ArrayBuffer holds that message and
// nothing else, so it can be transferred to a worker (postMessage's transfer list) or handed
// to anyone without detaching or showing other messages. A shared 64 KiB chunk per thread
// was cheaper (ring one-way, 5 interleaved runs: 2.8 vs 1.2 M msg/s at 65 B, 1.4 vs 0.66 M at
// 1 KiB, 0.8 vs 0.46 M at 4 KiB: one off-heap ArrayBuffer per message costs ~0.5-0.8 us), but
// a transfer detached every message in the chunk and `msg.buffer` carried other channels'
// bytes (issue 15); marking the chunk untransferable, as Node does for its Buffer pool, would
// keep the exposure. Copies of up to 64 bytes live on V8's heap either way (no cost), and the
// copy-free path is the ring's receiveView (a lease).

/** Byte and word access to a mapping, plus futex wait and wake on its words. */
export abstract class Memory {
  constructor(
    readonly mapping: Mapping,
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
  /** A fresh Uint8Array with a copy of the bytes, in an ArrayBuffer of its own (exactly `length` bytes). */
  abstract copyOut(byteOffset: number, length: number): Uint8Array;
  /** Copies bytes into `dst` at `dstOffset`. */
  abstract copyInto(byteOffset: number, length: number, dst: Uint8Array, dstOffset: number): void;
  /** The bytes themselves where possible (a view of the mapping), else a copy. */
  abstract view(byteOffset: number, length: number): Uint8Array;

  /**
   * The bytes of a message to decode at once: with `borrow` (the codec keeps none of them,
   * decodesBorrowed in src/core/codec.ts) a copy in this thread's decode scratch, valid until
   * the next call; else a copy of their own (copyOut).
   */
  copyToDecode(byteOffset: number, length: number, borrow: boolean): Uint8Array {
    const scratch = borrow ? decodeScratch(length) : undefined;
    if (scratch === undefined) return this.copyOut(byteOffset, length);
    this.copyInto(byteOffset, length, scratch, 0);
    return scratch.subarray(0, length);
  }
  /** Sets bytes to zero. */
  abstract zero(byteOffset: number, length: number): void;

  /** The unsigned 64-bit word at 32-bit index `index` (which must be even). */
  load64(index: number): bigint {
    return this.mapping.load64(index * 4);
  }
  /** Compare-and-swap of that 64-bit word: returns the old value. */
  compareExchange64(index: number, expected: bigint, replacement: bigint): bigint {
    return this.mapping.compareExchange64(index * 4, expected, replacement);
  }

  /** Wakes up to `count` waiters on the word (any process; < 0: all). */
  wake(index: number, count: number): number {
    return native.futexWake(this.mapping.handle, index * 4, count);
  }

  /**
   * The first half of going to sleep on the signal word `signal`: reads it, then raises the
   * sleeper flag `flag` that wakers look at, and returns what it read; the caller looks for
   * its event once more and then sleeps while the signal still holds that value. The signal
   * before the flag: a waker that clears a stale flag bumps the signal after this read, so
   * the sleep returns at once instead of missing the wake-up.
   */
  prepareSleep(signal: number, flag: number): number {
    const seq = this.load(signal);
    this.store(flag, 1);
    return seq;
  }

  /** One blocking wait of at most a slice while the word equals `expected` (see waits.ts). */
  waitSync(index: number, expected: number, timeoutMs: number): FutexResult {
    return blockingWait(this.mapping, index * 4, expected, timeoutMs);
  }

  /** A word to make one-shot event-loop waits on (see waits.ts). */
  word(index: number): FutexWord {
    return new FutexWord(this.mapping, index * 4);
  }

  /** A persistent watch on a word, for channels that sleep and wake in turn. `report` runs on the event loop. */
  watch(index: number, sliceMs: number, report: (result: FutexResult) => void): WordWatch {
    return watchWord(this.mapping, index * 4, sliceMs, report);
  }

  /** In a worker thread: at its end without close, the word goes from `expected` to `replacement` and `signal` is bumped and woken (see waits.ts). */
  atThreadExit(index: number, expected: number, replacement: number, signal: number): () => void {
    return atThreadExit(this.mapping, index * 4, expected, replacement, signal * 4);
  }
}

class SharedArrayMemory extends Memory {
  readonly external = true;
  readonly i32: Int32Array;
  readonly u8: Uint8Array;
  readonly i64: BigInt64Array;

  constructor(mapping: Mapping, readonly sab: SharedArrayBuffer) {
    super(mapping, sab.byteLength);
    this.i32 = new Int32Array(sab, 0, Math.floor(sab.byteLength / 4));
    this.u8 = new Uint8Array(sab);
    this.i64 = new BigInt64Array(sab, 0, Math.floor(sab.byteLength / 8));
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
  override load64(index: number): bigint {
    return BigInt.asUintN(64, Atomics.load(this.i64, index >>> 1));
  }
  override compareExchange64(index: number, expected: bigint, replacement: bigint): bigint {
    return BigInt.asUintN(64, Atomics.compareExchange(this.i64, index >>> 1, BigInt.asIntN(64, expected), BigInt.asIntN(64, replacement)));
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
    // slice() of a view over the SharedArrayBuffer makes a Uint8Array with its own (unshared)
    // ArrayBuffer of exactly `length` bytes: the cheapest copy that owns its memory.
    return this.u8.slice(byteOffset, byteOffset + length);
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
    const b = new Uint8Array(length);
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

/**
 * The Memory of a mapping: over `sab` when there is one and a typed array can span it
 * (at most buffer.constants.MAX_LENGTH bytes, 4 GiB in Node 20), else the copying path.
 */
export function memoryOf(mapping: Mapping, size: number, sab: SharedArrayBuffer | undefined, maxTypedArray: number): Memory {
  return sab !== undefined && size <= maxTypedArray ? new SharedArrayMemory(mapping, sab) : new CopyingMemory(mapping, size);
}
