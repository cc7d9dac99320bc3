/**
 * Batch frames: how a spawnProcess channel with a JSON codec carries `sendMany`'s messages
 * several to a frame. Both ends are ipckit (the child opens its end with parentChannel()),
 * so this framing is private to the two; the hand-off says the parent reads them
 * (handoff.ts, `batches`).
 *
 * Why: JSON is what limits a JSON channel's rate, not the rings. For a 64-byte message on
 * a 2-vCPU AMD EPYC VM (Node 20), JSON.stringify and JSON.parse alone took about 0.26 and
 * 0.23 us one message per call, 0.15 and 0.16 us per message in arrays of 256; with the
 * UTF-8 work a channel adds, the bench measures 0.43 / 0.39 us against 0.19 / 0.18 us
 * (docs/process.md, Limits), where a 10x-of-process.send rate leaves about 0.22 us.
 *
 * The frame: a single message is the codec's bytes as always (JSON text, which never starts
 * with a 0x00 byte); a batch is a 0x00 byte, then a JSON array of 2 to BATCH_MESSAGES
 * messages as UTF-8. A batch frame that is not such an array is ERR_IPCKIT_BAD_FRAME (one
 * error for the frame); with json<T>({ validate }), each message of a batch is validated on
 * its own, and one that fails is ERR_IPCKIT_BAD_FRAME for that message only.
 */
import { isProxy } from 'node:util/types';
import { checkValidated, decodeWith, encodeWith, isBorrowed, jsonCodec, jsonCodecInfo, markedText, ownBytes, sameTextAsJson, type Codec } from '../../core/codec.js';
import { IpcError, isIpcError } from '../../core/errors.js';

const BATCH_MARK = 0x00;
/** Messages per batch frame, at most: enough to make the per-call cost of JSON small, small enough to start the receiver early. */
export const BATCH_MESSAGES = 256;

/** A message of a batch that its validator refused: delivered as that message's error. */
export class RefusedMessage {
  constructor(readonly error: IpcError) {}
}

/** What decoding a batch frame gives: its messages in order (a refused one as RefusedMessage). */
export class DecodedBatch {
  constructor(readonly items: unknown[]) {}
}

/**
 * A frame encoded here, which the frame codec sends as it is. Known by identity (a WeakSet),
 * so a user's message, a Proxy even, is never looked into to tell.
 */
export class EncodedFrame {
  constructor(
    /** Its bytes; a view of the send scratch while it is the last frame of encodeBatches({ borrowLast }). */
    public bytes: Uint8Array,
    /** Messages in it. */
    readonly messages: number,
  ) {
    madeHere.add(this);
  }
}
const madeHere = new WeakSet<object>();

/**
 * The codec a spawnProcess channel's rings or pipes use for `codec`: for a JSON codec, one
 * that also sends EncodedFrames as they are and reads batch frames (decode may return a
 * DecodedBatch); any other codec as it is.
 */
export function batchingCodec<T>(codec: Codec<T>): Codec<T> {
  const json = jsonCodecInfo(codec as Codec<unknown>);
  if (!json) return codec;
  const validate = json.validate;
  return sameTextAsJson<T>({
    name: codec.name ?? 'json',
    encode: (value) => (typeof value === 'object' && value !== null && madeHere.has(value) ? (value as unknown as EncodedFrame).bytes : codec.encode(value)),
    decode(bytes) {
      if (bytes.length === 0 || bytes[0] !== BATCH_MARK) return decodeWith(codec, bytes);
      let items: unknown;
      try {
        items = jsonCodec.decode(bytes.subarray(1));
      } catch (e) {
        throw isIpcError(e) ? e.amend({ note: 'a batch of messages' }) : e;
      }
      // At most what a sender makes: a hostile frame must not cost a validation (and an error) per element.
      if (!Array.isArray(items) || items.length < 2 || items.length > BATCH_MESSAGES) {
        throw new IpcError('ERR_IPCKIT_BAD_FRAME', `a batch of messages is not a JSON array of 2 to ${BATCH_MESSAGES} messages`);
      }
      if (validate !== undefined) {
        for (let i = 0; i < items.length; i++) {
          try {
            items[i] = checkValidated(validate, items[i]);
          } catch (e) {
            if (!isIpcError(e)) throw e;
            items[i] = new RefusedMessage(e);
          }
        }
      }
      return new DecodedBatch(items) as T;
    },
  });
}

/**
 * Whether JSON.stringify gives `m` the same text alone and inside an array: not for
 * undefined, functions and symbols (alone: no text, an error; in an array: `null`), nor for
 * objects with a toJSON method (it is told its key, '' alone and the index in an array), nor
 * for a value whose toJSON cannot even be looked up (a throwing getter, a revoked Proxy).
 * Those go as single frames, with their own errors.
 */
function batchable(m: unknown): boolean {
  const t = typeof m;
  if (t === 'string' || t === 'number' || t === 'boolean' || m === null) return true;
  if (t !== 'object') return false;
  try {
    return typeof (m as { toJSON?: unknown }).toJSON !== 'function';
  } catch {
    return false;
  }
}

/**
 * Encodes `messages` for one `sendMany` as frames of at most `maxBytes`: runs of batchable
 * messages as batch frames, the others one per frame. Every message is encoded before
 * anything is sent, so a bad one throws here (ERR_IPCKIT_INVALID_ARGUMENT, as from send).
 *
 * A run's length comes from the larger JSON of its first and last messages (a run aims at
 * half of `maxBytes`). A run that still does not fit is split once by its measured average
 * size, and a piece that still does not fit goes one message per frame: a message becomes
 * JSON at most four times, never once per halving. Messages that differ wildly in size
 * within one run can still be gathered into one text before it is found too large: at most
 * the run's own data again, transiently.
 */
export function encodeBatches(codec: Codec<unknown>, messages: readonly unknown[], maxBytes: number, options: { borrowLast?: boolean } = {}): EncodedFrame[] {
  const frames: EncodedFrame[] = [];
  // borrowLast: batch frames are encoded into the send scratch and the last one keeps it
  // (a sendMany of one frame, the usual case, then writes its text once, not twice). Before
  // anything else runs (user code too: a toJSON may send on another channel), the frame
  // borrowing the scratch gets bytes of its own.
  let borrowed: EncodedFrame | undefined;
  const settle = (): void => {
    if (borrowed) borrowed.bytes = ownBytes(borrowed.bytes);
    borrowed = undefined;
  };
  const push = (frame: EncodedFrame): void => {
    if (isBorrowed(frame.bytes)) borrowed = frame;
    frames.push(frame);
  };
  const single = (m: unknown): void => {
    settle();
    push(new EncodedFrame(encodeWith(codec, m), 1));
  };
  /** The run's frame, or its JSON length when it does not fit (undefined: JSON cannot carry it as one array). */
  const tryRun = (from: number, to: number): number | undefined => {
    settle();
    // A plain array of the run: the caller's (or a subclass's) own toJSON must not stand for the batch.
    const run = plainRun(messages, from, to);
    let text: string;
    try {
      text = JSON.stringify(run);
    } catch {
      return undefined; // a cycle, a BigInt, a string too long: one by one, the bad one throws its own error
    }
    if (text.length + 1 <= maxBytes) {
      const frame = markedText(BATCH_MARK, text, options.borrowLast === true);
      if (frame.length <= maxBytes) {
        push(new EncodedFrame(frame, to - from));
        return 0;
      }
    }
    return text.length;
  };
  const runOf = (from: number, to: number): void => {
    if (to - from === 1) return single(messages[from]);
    const length = tryRun(from, to);
    if (length === 0) return;
    // Too large: pieces of the size its own average says fit, tried once each.
    const piece = length === undefined ? 1 : Math.floor(maxBytes / 2 / (length / (to - from) + 1));
    for (let s = from; s < to; s += Math.max(1, piece)) {
      const end = Math.min(to, s + Math.max(1, piece));
      if (end - s === 1 || length === undefined || tryRun(s, end) !== 0) for (let k = s; k < end; k++) single(messages[k]);
    }
  };
  let i = 0;
  while (i < messages.length) {
    settle();
    if (!batchable(messages[i])) {
      single(messages[i++]);
      continue;
    }
    let end = i + 1;
    while (end < messages.length && end - i < BATCH_MESSAGES && batchable(messages[end])) end++;
    let probe: number;
    try {
      probe = Math.max(jsonLength(messages[i]), jsonLength(messages[end - 1]));
    } catch {
      single(messages[i]); // the first throws its own error; else the last does, in its turn
      i++;
      continue;
    }
    const to = Math.min(end, i + Math.max(1, Math.floor(maxBytes / 2 / (probe + 1))));
    runOf(i, to);
    i = to;
  }
  return frames;
}

/**
 * messages[from..to) in a plain array of our own. slice() makes one in a single copy, packed,
 * which JSON.stringify serializes on its fast path (~5% of a 64-B message's encode, ~10% of
 * the one-way rate, against an element copy into a holey new Array(n)), but slice() asks
 * the array's constructor what to make (its species): so only for a plain array, checked
 * right before (a toJSON that ran since may have changed it), and only if what it made is a
 * plain array of the run's length (a toJSON may have shortened it). Otherwise by index.
 */
function plainRun(messages: readonly unknown[], from: number, to: number): unknown[] {
  if (Array.isArray(messages) && !isProxy(messages) && Object.getPrototypeOf(messages) === Array.prototype && !Object.hasOwn(messages, 'constructor')) {
    const run: unknown = Array.prototype.slice.call(messages, from, to);
    if (Array.isArray(run) && !isProxy(run) && Object.getPrototypeOf(run) === Array.prototype && !Object.hasOwn(run, 'toJSON') && run.length === to - from) return run;
  }
  const run: unknown[] = [];
  for (let k = from; k < to; k++) run.push(messages[k]);
  return run;
}

/** The length of a batchable message's JSON text. */
function jsonLength(m: unknown): number {
  return (JSON.stringify(m) as string | undefined)?.length ?? 4;
}
