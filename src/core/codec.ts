/**
 * Codecs turn typed messages into bytes and back. Messages are `Uint8Array` by default;
 * `{ codec: 'utf8' | 'json' | 'structured' }` picks a built-in one, and a codec value
 * types the messages: `{ codec: json<Ticket>() }` gives `Ticket` (with an optional
 * `validate` hook that checks what a peer sent), or any object with encode/decode.
 * A payload from a peer that fails to decode (or to validate) is ERR_IPCKIT_BAD_FRAME
 * for that message only; a value we cannot encode is ERR_IPCKIT_INVALID_ARGUMENT,
 * thrown before anything is sent.
 */
import { deserialize, serialize } from 'node:v8';
import { IpcError, invalidArgument } from './errors.js';
import { bytes as checkBytes, describe } from './validate.js';

export interface Codec<T> {
  /** Named in error messages ("codec "x" could not decode a message"); defaults to "custom". */
  readonly name?: string;
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

/**
 * Checks a decoded value from a peer and returns it typed: throw (any error) to refuse it,
 * or return false from a type guard. Schema libraries fit: `(v) => Ticket.parse(v)`.
 */
export type Validator<T> = ((value: unknown) => T) | ((value: unknown) => value is T);

export interface TypedCodecOptions<T> {
  /** Runs on every received message; a refusal is ERR_IPCKIT_BAD_FRAME for that message. */
  validate?: Validator<T>;
}

export type CodecName = 'bytes' | 'utf8' | 'json' | 'structured';
export type CodecOption = CodecName | Codec<any>;

/** The message type a codec option gives. */
export type MessageOf<C> = C extends 'utf8'
  ? string
  : C extends 'json' | 'structured'
    ? unknown
    : C extends Codec<infer T>
      ? T
      : Uint8Array;

export const bytesCodec: Codec<Uint8Array> = {
  name: 'bytes',
  encode(value) {
    if (!(value instanceof Uint8Array)) throw invalidArgument(`message must be a Uint8Array (codec "bytes"), got ${describe(value)}`);
    return value;
  },
  decode: (bytes) => checkBytes('bytes', bytes),
};

const decoder = new TextDecoder('utf-8', { fatal: true });

export const utf8Codec: Codec<string> = {
  name: 'utf8',
  encode(value) {
    if (typeof value !== 'string') throw invalidArgument(`message must be a string (codec "utf8"), got ${describe(value)}`);
    return Buffer.from(value, 'utf8');
  },
  decode(bytes) {
    checkBytes('bytes', bytes);
    try {
      return decoder.decode(bytes);
    } catch (e) {
      throw new IpcError('ERR_IPCKIT_BAD_FRAME', 'message is not valid UTF-8', { cause: e });
    }
  },
};

/** JSON.stringify, with what it refuses as ERR_IPCKIT_INVALID_ARGUMENT. */
function jsonText(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `message cannot be encoded as JSON: ${(e as Error).message}`, { cause: e });
  }
  if (text === undefined) throw invalidArgument(`message cannot be encoded as JSON, got ${describe(value)}`);
  return text;
}

export const jsonCodec: Codec<unknown> = {
  name: 'json',
  encode(value) {
    return Buffer.from(jsonText(value), 'utf8');
  },
  decode(bytes) {
    checkBytes('bytes', bytes);
    try {
      return JSON.parse(decoder.decode(bytes)) as unknown;
    } catch (e) {
      throw new IpcError('ERR_IPCKIT_BAD_FRAME', 'message is not valid JSON', { cause: e });
    }
  },
};

/** node:v8 serialization: Maps, Sets, Dates, typed arrays, BigInts; Node peers only. */
export const structuredCodec: Codec<unknown> = {
  name: 'structured',
  encode(value) {
    try {
      return serialize(value);
    } catch (e) {
      throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `message cannot be serialized: ${(e as Error).message}`, { cause: e });
    }
  },
  decode(bytes) {
    checkBytes('bytes', bytes);
    try {
      return deserialize(bytes) as unknown;
    } catch (e) {
      throw new IpcError('ERR_IPCKIT_BAD_FRAME', 'message is not a valid v8-serialized value', { cause: e });
    }
  },
};

/**
 * The value a validator accepts, or ERR_IPCKIT_BAD_FRAME: a parser's return value, or the
 * value itself when a type guard returned true.
 */
export function checkValidated<T>(validate: Validator<T>, value: unknown): T {
  let checked: unknown;
  try {
    checked = validate(value);
  } catch (e) {
    throw new IpcError('ERR_IPCKIT_BAD_FRAME', `a received message failed validation: ${(e as Error)?.message ?? e}`, { cause: e });
  }
  if (checked === false) throw new IpcError('ERR_IPCKIT_BAD_FRAME', 'a received message failed validation (the validate guard returned false)');
  // A type guard returns true and leaves the value as it is; a parser returns the value to use.
  return (checked === true ? value : checked) as T;
}

/** The validator of each JSON codec made by json<T>({ validate }). */
const JSON_VALIDATORS = new WeakMap<Codec<unknown>, Validator<unknown>>();

function typed<T>(base: Codec<unknown>, options: TypedCodecOptions<T>): Codec<T> {
  const validate = options.validate;
  if (validate !== undefined && typeof validate !== 'function') throw invalidArgument(`validate must be a function, got ${describe(validate)}`);
  const codec: Codec<T> = {
    name: base.name!,
    encode: (value: T) => base.encode(value),
    decode(bytes: Uint8Array): T {
      const value = base.decode(bytes);
      return validate === undefined ? (value as T) : checkValidated(validate, value);
    },
  };
  if (base === jsonCodec) {
    TEXT_CODECS.set(codec as Codec<unknown>, 'json'); // validate sees the value, never the bytes
    if (validate !== undefined) JSON_VALIDATORS.set(codec as Codec<unknown>, validate as Validator<unknown>);
  }
  return codec;
}

/**
 * Whether `codec` carries JSON text ('json', or json<T>()), and if so its validator: what a
 * channel needs to carry several of its messages in one JSON array (spawnProcess batches).
 */
export function jsonCodecInfo(codec: Codec<unknown>): { validate: Validator<unknown> | undefined } | undefined {
  return TEXT_CODECS.get(codec) === 'json' ? { validate: JSON_VALIDATORS.get(codec) } : undefined;
}

/** JSON messages typed as T: `{ codec: json<Ticket>() }`, optionally `json<Ticket>({ validate })`. */
export function json<T = unknown>(options: TypedCodecOptions<T> = {}): Codec<T> {
  return typed(jsonCodec, options);
}

/** node:v8-serialized messages (Node peers only) typed as T, optionally validated. */
export function structured<T = unknown>(options: TypedCodecOptions<T> = {}): Codec<T> {
  return typed(structuredCodec, options);
}

// ---- Borrowed bytes: the shared-memory channels' fast path --------------------------------
//
// A ring copies a message's bytes into shared memory at once, and out of it right before
// decoding. For the built-in text codecs that allocation is most of the cost of a small
// message (64 B of JSON, both ways timed alternately in one process, medians of 6 rounds:
// encode 0.88 us (0.64-1.02) with Buffer.from against 0.74 (0.58-0.91) into the scratch;
// slice + decode 1.63 us (0.92-2.06) against copy into the scratch + decode 1.09 (0.88-1.17)), and
// neither side keeps the bytes: the encoder's are copied into the ring, and the decoders
// make new strings. So those codecs use one scratch buffer per thread each way.

/** Built-in codecs whose bytes are UTF-8 text made and read here, by kind. */
const TEXT_CODECS = new WeakMap<Codec<unknown>, 'json' | 'utf8'>([
  [jsonCodec, 'json'],
  [utf8Codec as Codec<unknown>, 'utf8'],
]);
const SCRATCH_BYTES = 64 * 1024;
const sendScratch = new Uint8Array(SCRATCH_BYTES);
const receiveScratch = new Uint8Array(SCRATCH_BYTES);
const textEncoder = new TextEncoder();

/**
 * Encodes like encodeWith, but a built-in text codec writes into this thread's send
 * scratch: the bytes are valid only until the next call, so a caller that keeps them (a
 * send that waits for room) must take `ownBytes(bytes)` first.
 */
export function encodeBorrowed<T>(codec: Codec<T>, value: T): Uint8Array {
  const kind = TEXT_CODECS.get(codec as Codec<unknown>);
  if (kind === undefined) return encodeWith(codec, value);
  let text: string | undefined;
  if (kind === 'utf8') {
    if (typeof value !== 'string') return encodeWith(codec, value); // its own error
    text = value;
  } else {
    text = jsonText(value); // user toJSON code runs here, before the scratch is written
  }
  if (text.length * 3 > SCRATCH_BYTES) return Buffer.from(text, 'utf8'); // may not fit: its own buffer
  return sendScratch.subarray(0, textEncoder.encodeInto(text, sendScratch).written);
}

/**
 * A `mark` byte then `text` as UTF-8, encoded into this thread's send scratch. `borrow`: the
 * scratch itself when it fits (valid until the next encode, as from encodeBorrowed; keep
 * it with ownBytes); else bytes of their own, copied out at their size into memory that is
 * not zeroed first (a frame's text written once; 4% less per message than sizing it first
 * with Buffer.byteLength).
 */
export function markedText(mark: number, text: string, borrow = false): Uint8Array {
  if (text.length < SCRATCH_BYTES) {
    sendScratch[0] = mark;
    const { read, written } = textEncoder.encodeInto(text, sendScratch.subarray(1));
    if (read === text.length) {
      if (borrow) return sendScratch.subarray(0, 1 + written);
      const out = Buffer.allocUnsafe(1 + written); // every byte set below
      out.set(sendScratch.subarray(0, 1 + written));
      return out;
    }
  }
  const out = Buffer.allocUnsafe(1 + Buffer.byteLength(text));
  out[0] = mark;
  out.write(text, 1, 'utf8');
  return out;
}

/** Whether `bytes` are a view of this thread's send scratch (encodeBorrowed, markedText with borrow). */
export function isBorrowed(bytes: Uint8Array): boolean {
  return bytes.buffer === sendScratch.buffer;
}

/** Bytes from encodeBorrowed that the caller keeps: a copy if they were borrowed. */
export function ownBytes(bytes: Uint8Array): Uint8Array {
  return isBorrowed(bytes) ? bytes.slice() : bytes;
}

/**
 * Marks `codec` as one whose encode is exactly the 'json' codec's (JSON text as UTF-8) and
 * whose decode keeps nothing of its bytes: its sends and receives then take the scratch
 * paths above, as 'json' does. For codecs made here around a JSON codec.
 */
export function sameTextAsJson<T>(codec: Codec<T>): Codec<T> {
  TEXT_CODECS.set(codec as Codec<unknown>, 'json');
  return codec;
}

/** Whether `codec` keeps nothing of the bytes it decodes (a built-in text codec): they may be borrowed. */
export function decodesBorrowed(codec: Codec<unknown>): boolean {
  return TEXT_CODECS.has(codec);
}

/**
 * This thread's receive scratch, to copy `length` bytes into and decode them at once with a
 * codec that decodesBorrowed; undefined when they do not fit. Valid until the next call.
 */
export function decodeScratch(length: number): Uint8Array | undefined {
  return length <= SCRATCH_BYTES ? receiveScratch : undefined;
}

const BY_NAME: Record<CodecName, Codec<any>> = {
  bytes: bytesCodec,
  utf8: utf8Codec,
  json: jsonCodec,
  structured: structuredCodec,
};

export function resolveCodec<C extends CodecOption | undefined>(option: C): Codec<MessageOf<C>> {
  if (option === undefined) return bytesCodec as Codec<MessageOf<C>>;
  if (typeof option === 'string') {
    const codec = BY_NAME[option as CodecName];
    if (!codec) throw invalidArgument(`codec must be "bytes", "utf8", "json", "structured" or a Codec object, got ${describe(option)}`);
    return codec as Codec<MessageOf<C>>;
  }
  if (typeof option === 'object' && option !== null && typeof option.encode === 'function' && typeof option.decode === 'function') {
    return option as Codec<MessageOf<C>>;
  }
  throw invalidArgument(`codec must be "bytes", "utf8", "json", "structured" or a Codec object, got ${describe(option)}`);
}

/** Encodes with a user codec and checks that it really returned bytes. */
export function encodeWith<T>(codec: Codec<T>, value: T): Uint8Array {
  const bytes = codec.encode(value);
  if (!(bytes instanceof Uint8Array)) throw invalidArgument(`codec "${codec.name ?? 'custom'}" must encode to a Uint8Array, got ${describe(bytes)}`);
  return bytes;
}

/** Decodes a peer's payload; a throwing user codec becomes ERR_IPCKIT_BAD_FRAME. */
export function decodeWith<T>(codec: Codec<T>, bytes: Uint8Array): T {
  if (codec === (bytesCodec as Codec<unknown>)) return bytes as T;
  try {
    return codec.decode(bytes);
  } catch (e) {
    if (e instanceof IpcError) throw e;
    throw new IpcError('ERR_IPCKIT_BAD_FRAME', `codec "${codec.name ?? 'custom'}" could not decode a message: ${(e as Error)?.message ?? e}`, { cause: e });
  }
}
