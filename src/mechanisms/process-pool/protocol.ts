/**
 * What the pool and its worker processes say to each other, in one place.
 *
 * - Jobs go parent -> workers over a work queue (at least once): each item is
 *   `[seq, ticket, fn, flags, arg]` (encodeJob below). An argument whose item would not fit a
 *   queue slot travels in a file of the pool's folder in /dev/shm (flag FILE_ARG) that the
 *   parent removes once the job has settled.
 * - Everything else goes workers -> parent over one ring with many producers: each
 *   message is `[kind, seq, worker, payload]` (encodeMessage below). A result too large for the
 *   ring travels in a file the worker writes and the parent reads and removes.
 * - Tickets: one 32-bit word per job in the queue, in a small shared segment. The parent
 *   stores the job's seq there while it wants the job and 0 once it has settled (done,
 *   timed out, aborted); a worker runs a job only while its ticket still holds its seq, so
 *   a job delivered again after it settled (its worker died after sending the result) or
 *   a job cancelled while it waited is acknowledged and dropped, not run.
 *
 * A Buffer's bytes are written as they are, and the v8 serializer (the structured codec)
 * keeps typed arrays and the Buffers inside other values as bytes: no JSON on the way,
 * whatever the size.
 */
import { deserialize, serialize } from 'node:v8';

/** Job flags. */
export const REPORT_START = 1; // the job has a timeout or a signal: say when it starts, and on which worker
export const FILE_ARG = 2; // the argument is in the file `a-<seq>` of the pool's folder

/** Message kinds, workers -> parent. */
export const READY = 0; // payload: the module's exported function names
export const FATAL = 1; // payload: ErrorRecord (the module failed to load)
export const START = 2; // a REPORT_START job starts on this worker
export const OK = 3; // payload: the result
export const OK_FILE = 4; // payload: the file name (in the pool's folder) holding the serialized result
export const THREW = 5; // payload: ErrorRecord
export const GAVE_UP = 6; // payload: the number of attempts whose worker died
export const WAKE = 7; // the parent's own message to its receive loop

export type JobItem = [seq: number, ticket: number, fn: string, flags: number, arg: unknown];
export type Message = [kind: number, seq: number, worker: number, payload: unknown];

/** An error as it crosses the process boundary. */
export interface ErrorRecord {
  name: string;
  message: string;
  stack?: string | undefined;
  code?: unknown;
}

/** The worker's configuration, passed in its environment as JSON. */
export interface WorkerConfig {
  module: string; // a file: URL
  queue: string;
  ring: string;
  tickets: string;
  ticketCount: number;
  folder: string;
  worker: number;
  maxAttempts: number;
}

export const CONFIG_ENV = 'IPCKIT_POOL_WORKER';
/** A worker's exit status after it sent FATAL (the module failed to load). */
export const EXIT_FATAL = 78;

export const encode = (value: unknown): Buffer => serialize(value);
export const decode = <T>(bytes: Uint8Array): T => deserialize(bytes) as T;

// The wire form of jobs and messages: a fixed header, then the value behind a tag byte.
// Numbers, strings, booleans, null, undefined and a Buffer's bytes are written directly;
// anything else goes through the v8 serializer. (A tiny job spent most of its worker's time
// in making serializers and collecting them; a 1 MiB Buffer result went through a serializer's
// own buffer, grown as it wrote, before its copy into the message: this keeps serializers for
// values that need one.) A Buffer comes out as a Buffer, as v8.deserialize gives it back (an
// instance of a subclass of Buffer, as a plain Buffer); other typed arrays keep their type
// through the serializer. Decoded values may be views of the bytes decoded: callers pass
// bytes of their own (the ring and the queue copy a message out; a file is read whole).
//   job:     flags u8 | seq u32 | ticket u32 | fn length u16 | fn utf8 | value
//   message: kind u8  | seq u32 | worker u32 | value
const T_UNDEFINED = 0;
const T_NUMBER = 1;
const T_STRING = 2;
const T_V8 = 3;
const T_NULL = 4;
const T_TRUE = 5;
const T_FALSE = 6;
const T_BUFFER = 7;

function valueBytes(value: unknown): { tag: number; body: Uint8Array | undefined; size: number } {
  switch (typeof value) {
    case 'undefined':
      return { tag: T_UNDEFINED, body: undefined, size: 0 };
    case 'number':
      return { tag: T_NUMBER, body: undefined, size: 8 };
    case 'boolean':
      return { tag: value ? T_TRUE : T_FALSE, body: undefined, size: 0 };
    case 'string':
      if (value.length < 4096) return { tag: T_STRING, body: undefined, size: Buffer.byteLength(value) };
      break;
    default:
      if (value === null) return { tag: T_NULL, body: undefined, size: 0 };
      if (Buffer.isBuffer(value)) return { tag: T_BUFFER, body: value, size: value.length };
  }
  const body = serialize(value);
  return { tag: T_V8, body, size: body.length };
}

function writeValue(buf: Buffer, at: number, value: unknown, v: { tag: number; body: Uint8Array | undefined }): void {
  buf[at] = v.tag;
  if (v.tag === T_NUMBER) buf.writeDoubleLE(value as number, at + 1);
  else if (v.tag === T_STRING) buf.write(value as string, at + 1, 'utf8');
  else if (v.tag === T_V8 || v.tag === T_BUFFER) buf.set(v.body!, at + 1);
}

function readValue(bytes: Uint8Array, at: number): unknown {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  switch (buf[at]) {
    case T_UNDEFINED:
      return undefined;
    case T_NUMBER:
      return buf.readDoubleLE(at + 1);
    case T_STRING:
      return buf.toString('utf8', at + 1);
    case T_V8:
      return deserialize(buf.subarray(at + 1));
    case T_BUFFER:
      return buf.subarray(at + 1); // a view of the caller's bytes, as deserialize gives typed arrays
    case T_NULL:
      return null;
    case T_TRUE:
      return true;
    case T_FALSE:
      return false;
    default:
      throw new Error(`unknown value tag ${buf[at]}`);
  }
}

export function encodeJob([seq, ticket, fn, flags, arg]: JobItem): Buffer {
  const fnBytes = Buffer.byteLength(fn);
  const v = valueBytes(arg);
  const buf = Buffer.allocUnsafe(11 + fnBytes + 1 + v.size);
  buf[0] = flags;
  buf.writeUInt32LE(seq >>> 0, 1);
  buf.writeUInt32LE(ticket >>> 0, 5);
  buf.writeUInt16LE(fnBytes, 9);
  buf.write(fn, 11, 'utf8');
  writeValue(buf, 11 + fnBytes, arg, v);
  return buf;
}

/** Throws on bytes that are not a job (too short for its header). */
export function decodeJob(bytes: Uint8Array): JobItem {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (buf.length < 12) throw new Error(`a job of ${buf.length} bytes`);
  const fnBytes = buf.readUInt16LE(9);
  if (11 + fnBytes + 1 > buf.length) throw new Error('a job whose name runs past its end');
  return [buf.readUInt32LE(1), buf.readUInt32LE(5), buf.toString('utf8', 11, 11 + fnBytes), buf[0]!, readValue(buf, 11 + fnBytes)];
}

/**
 * A message's bytes: at the start of `scratch` where they fit (a view of it, good until the
 * scratch is written again), else in a buffer of their own.
 */
export function encodeMessage([kind, seq, worker, payload]: Message, scratch?: Buffer): Buffer {
  const v = valueBytes(payload);
  const size = 9 + 1 + v.size;
  const buf = scratch !== undefined && scratch.length >= size ? scratch.subarray(0, size) : Buffer.allocUnsafe(size);
  buf[0] = kind;
  buf.writeUInt32LE(seq >>> 0, 1);
  buf.writeUInt32LE(worker >>> 0, 5);
  writeValue(buf, 9, payload, v);
  return buf;
}

/** Throws on bytes that are not a message (too short, an unknown tag, a payload that fails to decode). */
export function decodeMessage(bytes: Uint8Array): Message {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (buf.length < 10) throw new Error(`a message of ${buf.length} bytes`);
  return [buf[0]!, buf.readUInt32LE(1), buf.readUInt32LE(5), readValue(buf, 9)];
}

export function errorRecord(e: unknown): ErrorRecord {
  if (e instanceof Error) {
    const record: ErrorRecord = { name: e.name, message: e.message, stack: e.stack };
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' || typeof code === 'number') record.code = code;
    return record;
  }
  return { name: 'Error', message: `a non-Error value was thrown: ${String(e)}` };
}

/** The worker's error, rebuilt in the parent: same name, message, stack and code. */
export function rebuildError(r: ErrorRecord): Error {
  const e = new Error(String(r.message));
  e.name = String(r.name);
  if (typeof r.stack === 'string') e.stack = r.stack;
  if (r.code !== undefined) (e as Error & { code?: unknown }).code = r.code;
  return e;
}

export const argFile = (folder: string, seq: number): string => `${folder}/a-${seq}`;
export const resultFileName = (seq: number, worker: number): string => `r-${seq}-${worker}`;
