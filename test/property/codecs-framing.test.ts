/**
 * Properties of the codecs and the framing, checked with fast-check on generated inputs
 * (and shrunk to a smallest counterexample when one fails): every value a codec accepts
 * comes back equal; every list of messages framed and cut into any pieces comes back as
 * the same messages; and bytes from a peer, however damaged, give messages or an
 * IpcError of the documented codes, never anything else. IPCKIT_PROPERTY_RUNS sets the
 * number of runs (default 300), IPCKIT_PROPERTY_SEED replays one.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bytesCodec, jsonCodec, structuredCodec, utf8Codec } from '../../src/core/codec.js';
import { IpcError } from '../../src/core/errors.js';
import { FrameDecoder, type Framing } from '../../src/core/framing.js';

const runs = Number(process.env.IPCKIT_PROPERTY_RUNS ?? 300);
const seed = process.env.IPCKIT_PROPERTY_SEED === undefined ? undefined : Number(process.env.IPCKIT_PROPERTY_SEED);
const params = { numRuns: runs, ...(seed !== undefined ? { seed } : {}) };

/** A frame as a writer puts it on the wire. */
function frame(framing: Framing, payload: Uint8Array): Buffer {
  if (framing === 'lines') return Buffer.concat([payload, Buffer.from('\n')]);
  if (framing === 'raw') return Buffer.from(payload);
  const header = Buffer.alloc(4);
  header.writeUInt32LE(payload.length);
  return Buffer.concat([header, payload]);
}

/**
 * Writes `stream` into the decoder in the pieces `cuts` says (each at most the room it
 * offers), as a reader's reads would, calling `take` after each piece and once at the end.
 */
function feedInPieces(d: FrameDecoder, stream: Buffer, cuts: number[], take: () => void): void {
  let pos = 0;
  let c = 0;
  while (pos < stream.length) {
    const [buf, offset, room] = d.space();
    const want = cuts.length === 0 ? room : Math.max(1, cuts[c++ % cuts.length]!);
    const n = Math.min(room, want, stream.length - pos);
    stream.copy(buf, offset, pos, pos + n);
    d.commit(n);
    pos += n;
    take();
  }
  take();
}

/** Feeds `stream` to a decoder in the pieces `cuts` says, as a reader would; collects what it yields. */
function decodeInPieces(framing: Framing, stream: Buffer, cuts: number[], max: number, bufferSize: number): Buffer[] {
  const d = new FrameDecoder(framing, max, bufferSize);
  const out: Buffer[] = [];
  feedInPieces(d, stream, cuts, () => {
    for (let m = d.next(); m !== undefined; m = d.next()) out.push(Buffer.from(m));
  });
  const last = d.finish();
  if (last !== undefined) out.push(Buffer.from(last));
  return out;
}

/**
 * Like decodeInPieces, but takes messages as receiveInto does: into targets of the sizes
 * `plan` gives in turn (one too small: the message is taken with next() instead, as the
 * receive after a refused receiveInto would). A frame left part-way in a target is
 * given back (returnBorrowed) when `plan`'s next entry is odd, and that target is then
 * scribbled over: the frame must still come out whole.
 */
function decodeIntoInPieces(framing: Framing, stream: Buffer, cuts: number[], max: number, bufferSize: number, plan: number[]): Buffer[] {
  const d = new FrameDecoder(framing, max, bufferSize);
  const out: Buffer[] = [];
  let k = 0;
  const take = (): void => {
    for (;;) {
      const target = new Uint8Array(plan.length === 0 ? 8192 : plan[k++ % plan.length]!);
      const length = d.nextLength();
      if (length > target.length) {
        const m = d.next();
        if (m === undefined) return;
        out.push(Buffer.from(m));
        continue;
      }
      const n = d.nextInto(target);
      if (n >= 0) {
        if (framing === 'raw' && n === 0 && target.length > 0) return;
        out.push(Buffer.from(target.subarray(0, n)));
        continue;
      }
      if (d.borrowed === target && (plan[k % Math.max(1, plan.length)] ?? 0) % 2 === 1) {
        d.returnBorrowed();
        target.fill(0xee);
      }
      return;
    }
  };
  feedInPieces(d, stream, cuts, take);
  const last = d.finish();
  if (last !== undefined) out.push(Buffer.from(last));
  return out;
}

const payload = fc.uint8Array({ maxLength: 3000 });
const linePayload = payload.map((p) => p.map((b) => (b === 0x0a ? 0x20 : b)));
const cuts = fc.array(fc.integer({ min: 1, max: 5000 }), { maxLength: 20 });
const bufferSizes = fc.constantFrom(16, 256, 4096, 65536);

describe('framing: any messages, any split of the stream', () => {
  it('length frames come back as the same messages, in order', () => {
    fc.assert(
      fc.property(fc.array(payload, { maxLength: 30 }), cuts, bufferSizes, (messages, pieces, size) => {
        const stream = Buffer.concat(messages.map((m) => frame('length', m)));
        assert.deepEqual(decodeInPieces('length', stream, pieces, 4096, size), messages.map((m) => Buffer.from(m)));
      }),
      params,
    );
  });

  it('lines come back as the same lines, in order', () => {
    fc.assert(
      fc.property(fc.array(linePayload, { maxLength: 30 }), cuts, bufferSizes, (lines, pieces, size) => {
        const stream = Buffer.concat(lines.map((m) => frame('lines', m)));
        assert.deepEqual(decodeInPieces('lines', stream, pieces, 4096, size), lines.map((m) => Buffer.from(m)));
      }),
      params,
    );
  });

  it('raw keeps every byte, in order, however it is cut', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 20000 }), cuts, bufferSizes, (bytes, pieces, size) => {
        assert.deepEqual(Buffer.concat(decodeInPieces('raw', Buffer.from(bytes), pieces, 4096, size)), Buffer.from(bytes));
      }),
      params,
    );
  });

  it('taken into caller buffers of any size (receiveInto), length frames and lines come back the same, in order', () => {
    const plan = fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 12 });
    // Messages of any size up to the limit (fast-check favours tiny ones), so that frames
    // larger than the working buffer are read straight into a target and some given back.
    const anySize = fc.uint8Array({ maxLength: 3000, size: 'max' });
    fc.assert(
      fc.property(fc.constantFrom<Framing>('length', 'lines'), fc.array(anySize, { maxLength: 20 }), cuts, bufferSizes, plan, (framing, messages, pieces, size, targets) => {
        const sent = framing === 'lines' ? messages.map((m) => m.map((b) => (b === 0x0a ? 0x20 : b))) : messages;
        const stream = Buffer.concat(sent.map((m) => frame(framing, m)));
        assert.deepEqual(decodeIntoInPieces(framing, stream, pieces, 4096, size, targets), sent.map((m) => Buffer.from(m)));
      }),
      params,
    );
  });

  it('raw bytes taken into caller buffers of any size: every byte, in order', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 20000 }), cuts, bufferSizes, fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 8 }), (bytes, pieces, size, targets) => {
        assert.deepEqual(Buffer.concat(decodeIntoInPieces('raw', Buffer.from(bytes), pieces, 4096, size, targets)), Buffer.from(bytes));
      }),
      params,
    );
  });

  it('damaged streams give whole messages and then, at most, FRAME_TOO_LARGE or BAD_FRAME', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<Framing>('length', 'lines'),
        fc.array(payload, { maxLength: 10 }),
        fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { maxLength: 8 }),
        fc.nat(),
        cuts,
        fc.integer({ min: 1, max: 5000 }),
        (framing, messages, flips, cutAt, pieces, max) => {
          let stream = Buffer.concat(messages.map((m) => frame(framing, framing === 'lines' ? m.map((b) => (b === 0x0a ? 0x20 : b)) : m)));
          stream = Buffer.from(stream.subarray(0, stream.length === 0 ? 0 : cutAt % (stream.length + 1)));
          for (const f of flips) if (stream.length > 0) stream[f.at % stream.length] = f.byte;
          try {
            for (const m of decodeInPieces(framing, stream, pieces, max, 4096)) assert.ok(m.length <= max, 'no message above the limit is delivered');
          } catch (e) {
            assert.ok(e instanceof IpcError, `not an IpcError: ${String(e)}`);
            assert.ok(['ERR_IPCKIT_FRAME_TOO_LARGE', 'ERR_IPCKIT_BAD_FRAME'].includes(e.code), e.code);
          }
        },
      ),
      params,
    );
  });
});

describe('codecs: what one side encodes, the other decodes to the same value', () => {
  it('bytes and utf8', () => {
    fc.assert(fc.property(fc.uint8Array(), (b) => assert.deepEqual(bytesCodec.decode(bytesCodec.encode(b)), b)), params);
    fc.assert(fc.property(fc.string({ unit: 'grapheme' }), (s) => assert.equal(utf8Codec.decode(utf8Codec.encode(s)), s)), params);
  });

  it('json: every JSON value', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => assert.deepEqual(jsonCodec.decode(jsonCodec.encode(v)), JSON.parse(JSON.stringify(v)))), params);
  });

  it('structured: Maps, Sets, Dates, typed arrays, BigInts and nested objects', () => {
    const value = fc.letrec((tie) => ({
      leaf: fc.oneof(fc.integer(), fc.double({ noNaN: true }), fc.string(), fc.boolean(), fc.constant(null), fc.bigInt(), fc.date({ noInvalidDate: true }), fc.uint8Array({ maxLength: 32 })),
      node: fc.oneof(
        { depthSize: 'small' },
        tie('leaf'),
        fc.array(tie('node'), { maxLength: 4 }),
        fc.dictionary(fc.string({ maxLength: 8 }), tie('node'), { maxKeys: 4 }),
        fc.array(fc.tuple(fc.string({ maxLength: 8 }), tie('node')), { maxLength: 3 }).map((e) => new Map(e)),
        fc.array(fc.integer(), { maxLength: 4 }).map((e) => new Set(e)),
      ),
    })).node;
    fc.assert(fc.property(value, (v) => assert.deepStrictEqual(structuredCodec.decode(structuredCodec.encode(v)), v)), params);
  });

  it('damaged payloads: a value or BAD_FRAME, never another error', () => {
    for (const codec of [utf8Codec, jsonCodec, structuredCodec]) {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
          try {
            codec.decode(bytes);
          } catch (e) {
            assert.ok(e instanceof IpcError && e.code === 'ERR_IPCKIT_BAD_FRAME', `${codec.name}: ${String(e)}`);
          }
        }),
        params,
      );
    }
  });
});
