/**
 * Batch frames: how a spawnProcess channel with a JSON codec carries `sendMany`'s messages
 * several to a frame. Both ends are ipckit (the child opens its end with parentChannel()),
 * so this framing is private to the two.
 *
 * Why: JSON is what limits a JSON channel's rate, not the rings. One JSON.stringify and
 * one JSON.parse per message cost each side about 0.26 + 0.23 us for a 64-byte message
 * (2-vCPU AMD EPYC VM, Node 20), more than a 10x-of-process.send budget of 0.23 us; one call
 * for an array of 256 such messages costs about 0.15 us per message each way
 * (docs/process.md, "Throughput").
 *
 * The frame: a single message is the codec's bytes as always (JSON text, which never starts
 * with a 0x00 byte); a batch is a 0x00 byte, then a JSON array of its messages as UTF-8.
 * A batch that is not a non-empty JSON array is ERR_IPCKIT_BAD_FRAME (one error for the
 * frame); with json<T>({ validate }), each message of a batch is validated on its own, and
 * one that fails is ERR_IPCKIT_BAD_FRAME for that message only.
 */
import { checkValidated, decodeWith, EncodedFrame, encodeWith, jsonCodecParts, sameTextAsJson, type Codec } from '../../core/codec.js';
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

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The codec a spawnProcess channel's rings or pipes use for `codec`: for a JSON codec, one
 * that also reads batch frames (decode may return a DecodedBatch); any other codec as it is.
 */
export function batchingCodec<T>(codec: Codec<T>): Codec<T> {
  const json = jsonCodecParts(codec as Codec<unknown>);
  if (!json) return codec;
  const validate = json.validate;
  return sameTextAsJson<T>({
    name: codec.name ?? 'json',
    encode: (value) => codec.encode(value),
    decode(bytes) {
      if (bytes.length === 0 || bytes[0] !== BATCH_MARK) return decodeWith(codec, bytes);
      let items: unknown;
      try {
        items = JSON.parse(fatalUtf8.decode(bytes.subarray(1)));
      } catch (e) {
        throw new IpcError('ERR_IPCKIT_BAD_FRAME', 'a batch of messages is not valid JSON', { cause: e });
      }
      if (!Array.isArray(items) || items.length === 0) throw new IpcError('ERR_IPCKIT_BAD_FRAME', 'a batch of messages is not a non-empty JSON array');
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
 * objects with a toJSON method (it is told its key, '' alone and the index in an array).
 * Those go as single frames, with their own errors.
 */
function batchable(m: unknown): boolean {
  const t = typeof m;
  if (t === 'object') return m === null || typeof (m as { toJSON?: unknown }).toJSON !== 'function';
  return t === 'string' || t === 'number' || t === 'boolean';
}

const textEncoder = new TextEncoder();
const SCRATCH_BYTES = 256 * 1024;
const scratch = new Uint8Array(SCRATCH_BYTES);

/** The batch frame of a JSON array's text: the mark, then the text as UTF-8 (encoded into a scratch, then copied out at its size). */
function batchFrame(text: string): Uint8Array {
  if (1 + text.length * 3 > SCRATCH_BYTES) return Buffer.from(`\u0000${text}`, 'utf8');
  scratch[0] = BATCH_MARK;
  const { written } = textEncoder.encodeInto(text, scratch.subarray(1));
  const frame = Buffer.allocUnsafe(1 + written); // every byte written below: no zeroing
  frame.set(scratch.subarray(0, 1 + written));
  return frame;
}

/**
 * Encodes `messages` for one `sendMany`: runs of batchable messages as batch frames of up to
 * BATCH_MESSAGES messages and `maxBytes` bytes (a run that does not fit is halved), others
 * as single frames. Every message is encoded before anything is sent, so a bad one throws
 * here (ERR_IPCKIT_INVALID_ARGUMENT, as from send). `counts[i]`: messages in `frames[i]`.
 */
export function encodeBatches(codec: Codec<unknown>, messages: readonly unknown[], maxBytes: number): { frames: EncodedFrame[]; counts: number[] } {
  const frames: EncodedFrame[] = [];
  const counts: number[] = [];
  const single = (m: unknown): void => {
    frames.push(new EncodedFrame(encodeWith(codec, m)));
    counts.push(1);
  };
  const run = (from: number, to: number): void => {
    if (to - from === 1) return single(messages[from]);
    let text: string;
    try {
      text = JSON.stringify(messages.slice(from, to));
    } catch {
      // A cycle, a BigInt: encoded one by one, the bad one throws its own error.
      for (let i = from; i < to; i++) single(messages[i]);
      return;
    }
    const bytes = batchFrame(text);
    if (bytes.length > maxBytes) {
      const mid = from + ((to - from) >> 1);
      run(from, mid);
      run(mid, to);
      return;
    }
    frames.push(new EncodedFrame(bytes));
    counts.push(to - from);
  };
  let start = 0; // the first message of the current run of batchable ones
  const endRun = (to: number): void => {
    for (let s = start; s < to; s += BATCH_MESSAGES) run(s, Math.min(to, s + BATCH_MESSAGES));
  };
  for (let i = 0; i < messages.length; i++) {
    if (batchable(messages[i])) continue;
    endRun(i);
    single(messages[i]);
    start = i + 1;
  }
  endRun(messages.length);
  return { frames, counts };
}
