/**
 * Seeded random input for the code that parses what a peer sends: the frame decoder,
 * checked against a small reference model of each framing, and the codecs. A failure
 * prints its seed; `IPCKIT_FUZZ_SEED=n` replays it, `IPCKIT_FUZZ_ROUNDS=n` runs longer.
 */
import assert from 'node:assert/strict';
import { serialize } from 'node:v8';
import { describe, it } from 'node:test';
import { decodeWith, resolveCodec } from '../src/core/codec.js';
import { IpcError } from '../src/core/errors.js';
import { FrameDecoder, type Framing } from '../src/core/framing.js';

const ROUNDS = Number(process.env.IPCKIT_FUZZ_ROUNDS ?? 3000);
const FIRST_SEED = Number(process.env.IPCKIT_FUZZ_SEED ?? 1);

/** xorshift32: the same sequence for the same seed, on every machine. */
function random(seed: number): { int(n: number): number; bytes(n: number): Buffer; chance(p: number): boolean } {
  let s = seed >>> 0 || 0x9e3779b9;
  const next = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  return {
    int: (n) => next() % n,
    bytes: (n) => {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = next() & 0xff;
      return b;
    },
    chance: (p) => next() / 2 ** 32 < p,
  };
}

type Outcome = { messages: Buffer[]; error: 'ERR_IPCKIT_FRAME_TOO_LARGE' | 'ERR_IPCKIT_BAD_FRAME' | null };

/** What a correct decoder yields for the whole stream `s`. */
function model(framing: Framing, s: Buffer, max: number): Outcome {
  const messages: Buffer[] = [];
  if (framing === 'raw') return { messages: s.length > 0 ? [s] : [], error: null };
  if (framing === 'lines') {
    let start = 0;
    for (;;) {
      const i = s.indexOf(0x0a, start);
      const end = i === -1 ? s.length : i;
      if (end - start > max) return { messages, error: 'ERR_IPCKIT_FRAME_TOO_LARGE' };
      if (i === -1) {
        if (end > start) messages.push(s.subarray(start));
        return { messages, error: null };
      }
      messages.push(s.subarray(start, i));
      start = i + 1;
    }
  }
  let pos = 0;
  while (pos < s.length) {
    if (s.length - pos < 4) return { messages, error: 'ERR_IPCKIT_BAD_FRAME' };
    const length = s.readUInt32LE(pos);
    if (length > max) return { messages, error: 'ERR_IPCKIT_FRAME_TOO_LARGE' };
    if (s.length - pos - 4 < length) return { messages, error: 'ERR_IPCKIT_BAD_FRAME' };
    messages.push(s.subarray(pos + 4, pos + 4 + length));
    pos += 4 + length;
  }
  return { messages, error: null };
}

/** Feeds `s` to a FrameDecoder in random pieces, as a reader would, and collects what it yields. */
function decode(framing: Framing, s: Buffer, max: number, bufferSize: number, r: ReturnType<typeof random>): Outcome {
  const d = new FrameDecoder(framing, max, bufferSize);
  const messages: Buffer[] = [];
  try {
    let pos = 0;
    while (pos < s.length) {
      const [buf, offset, room] = d.space();
      // Nothing the peer announces makes us hold more than the limit (plus a header), or
      // more than the working buffer when the limit is small.
      assert.ok(buf.length <= Math.max(bufferSize, max + 5), `a ${buf.length}-byte buffer for maxMessageBytes ${max}`);
      assert.ok(room > 0 && offset + room <= buf.length);
      const n = Math.min(room, s.length - pos, 1 + r.int(r.chance(0.2) ? 4 : 700));
      s.copy(buf, offset, pos, pos + n);
      d.commit(n);
      pos += n;
      for (let m = d.next(); m !== undefined; m = d.next()) messages.push(m);
    }
    for (let m = d.next(); m !== undefined; m = d.next()) messages.push(m);
    const last = d.finish();
    if (last !== undefined) messages.push(last);
    return { messages, error: null };
  } catch (e) {
    if (!(e instanceof IpcError)) throw e;
    assert.ok(e.code === 'ERR_IPCKIT_FRAME_TOO_LARGE' || e.code === 'ERR_IPCKIT_BAD_FRAME', `unexpected ${e.code}`);
    return { messages, error: e.code };
  }
}

/** A stream of mostly well-formed frames for `framing`, with the kinds of damage a peer can do. */
function stream(framing: Framing, max: number, r: ReturnType<typeof random>): Buffer {
  const parts: Buffer[] = [];
  const count = r.int(12);
  for (let i = 0; i < count; i++) {
    const size = r.chance(0.1) ? max + 1 + r.int(8) : r.int(Math.min(max, 3000) + 1);
    const payload = framing === 'lines' ? Buffer.from(r.bytes(size).map((b) => (b === 0x0a ? 0x20 : b))) : r.bytes(size);
    if (framing === 'lines') parts.push(payload, Buffer.from('\n'));
    else {
      const header = Buffer.alloc(4);
      header.writeUInt32LE(r.chance(0.03) ? 0x80000000 + r.int(2 ** 31) : payload.length);
      parts.push(header, payload);
    }
  }
  let s = Buffer.concat(parts);
  if (s.length > 0 && r.chance(0.3)) s = s.subarray(0, r.int(s.length)); // cut short
  if (r.chance(0.15)) s = Buffer.concat([s, r.bytes(r.int(64))]); // trailing garbage
  if (s.length > 0 && r.chance(0.2)) {
    s = Buffer.from(s);
    for (let k = r.int(4) + 1; k > 0; k--) s[r.int(s.length)] = r.int(256); // flipped bytes
  }
  return s;
}

describe('frame decoder against a reference model (seeded random streams)', () => {
  for (const framing of ['length', 'lines', 'raw'] as const) {
    it(`${framing}: same messages and the same error as the model, in ${ROUNDS} random streams`, () => {
      for (let round = 0; round < ROUNDS; round++) {
        const seed = FIRST_SEED + round;
        const r = random(seed * 7919 + framing.length);
        const max = r.chance(0.3) ? r.int(64) : r.int(5000) + 1;
        const bufferSize = [16, 256, 4096, 64 * 1024][r.int(4)]!;
        const s = stream(framing, max, r);
        const want = model(framing, s, max);
        const got = decode(framing, s, max, bufferSize, r);
        const where = `seed ${seed} (${framing}, maxMessageBytes ${max}, buffer ${bufferSize}, ${s.length}-byte stream)`;
        if (framing === 'raw') {
          assert.deepEqual(Buffer.concat(got.messages), Buffer.concat(want.messages), where);
          assert.equal(got.error, null, where);
          continue;
        }
        assert.equal(got.error, want.error, where);
        assert.equal(got.messages.length, want.messages.length, where);
        for (let i = 0; i < want.messages.length; i++) assert.ok(got.messages[i]!.equals(want.messages[i]!), `${where}: message ${i}`);
      }
    });
  }
});

describe('codecs on random and damaged payloads', () => {
  const samples = [{ a: 1, b: [true, null, 'x'] }, 'text é ✓', [1.5, -0, 2 ** 53], new Map([[1, new Set(['s'])]]), new Date(0), 12345678901234567890n, new Uint8Array([1, 2, 3])];
  for (const name of ['utf8', 'json', 'structured'] as const) {
    it(`${name}: a value, or ERR_IPCKIT_BAD_FRAME; never another exception`, () => {
      const codec = resolveCodec(name);
      for (let round = 0; round < ROUNDS; round++) {
        const r = random(FIRST_SEED + round + 104729);
        let bytes: Buffer;
        if (r.chance(0.5)) {
          bytes = r.bytes(r.int(200));
        } else {
          // A valid encoding, damaged: cut, flipped, or extended.
          const value = samples[r.int(samples.length)];
          bytes = Buffer.from(name === 'structured' ? serialize(value) : Buffer.from(name === 'json' ? JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)) ?? 'null' : String(value)));
          if (bytes.length > 0 && r.chance(0.5)) bytes = bytes.subarray(0, r.int(bytes.length));
          if (bytes.length > 0) for (let k = r.int(3); k > 0; k--) bytes[r.int(bytes.length)] = r.int(256);
          if (r.chance(0.3)) bytes = Buffer.concat([bytes, r.bytes(r.int(16))]);
        }
        try {
          decodeWith(codec, bytes);
        } catch (e) {
          assert.ok(e instanceof IpcError && e.code === 'ERR_IPCKIT_BAD_FRAME', `seed ${FIRST_SEED + round}: ${name} threw ${String(e)}`);
        }
      }
    });
  }
});
