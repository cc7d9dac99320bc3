/**
 * Typed messages: a codec value types what a channel carries (`json<Ticket>()`), and its
 * `validate` hook refuses a peer's message as ERR_IPCKIT_BAD_FRAME for that message only.
 * The messages travel through a real pipe, written by a peer we did not write (sh's printf).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createPipe, json, popen, structured, type Codec } from '../src/index.js';
import { checkFdLeaks, rejectsWith } from './helpers.js';

checkFdLeaks();

interface Ticket {
  seat: string;
  price: number;
}

const isTicket = (v: unknown): v is Ticket =>
  typeof v === 'object' && v !== null && typeof (v as Ticket).seat === 'string' && typeof (v as Ticket).price === 'number';

describe('typed codecs', () => {
  it('json<Ticket>() types both ends: the received value is a Ticket without a cast', async () => {
    const { reader, writer } = createPipe({ codec: json<Ticket>() });
    await writer.send({ seat: '12A', price: 40 });
    const ticket = await reader.receive();
    // A property access that strict TypeScript accepts only if `ticket` is typed Ticket.
    const seat: string = ticket.seat;
    assert.equal(seat, '12A');
    assert.equal(ticket.price + 1, 41);
    await writer.close();
    await reader.close();
  });

  it("validate refuses a peer's malformed message with ERR_IPCKIT_BAD_FRAME, and the next one still arrives", async () => {
    // sh writes length-prefixed frames (4-byte little-endian length, then the JSON).
    const frames = [JSON.stringify({ seat: 7 }), JSON.stringify({ seat: '1B', price: 9 })]
      .map((text) => {
        const body = Buffer.from(text);
        const head = Buffer.alloc(4);
        head.writeUInt32LE(body.length);
        return [...head, ...body].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
      })
      .join('');
    const reader = popen(['sh', '-c', `printf '${frames}'`], 'read', { codec: json<Ticket>({ validate: isTicket }) });
    await rejectsWith(reader.receive(), 'ERR_IPCKIT_BAD_FRAME');
    assert.deepEqual(await reader.receive(), { seat: '1B', price: 9 });
    await reader.close();
  });

  it('a parsing validator returns the value to deliver; one that throws names its reason', async () => {
    const parse = (v: unknown): Date => {
      if (typeof v !== 'string') throw new Error('expected an ISO date string');
      return new Date(v);
    };
    const { reader, writer } = createPipe({ codec: json<Date>({ validate: parse }) });
    // The sender side encodes with JSON, so a Date goes out as its ISO string.
    await writer.send(new Date('2026-12-02T00:00:00Z'));
    const got = await reader.receive();
    assert.ok(got instanceof Date);
    assert.equal(got.toISOString(), '2026-12-02T00:00:00.000Z');
    await writer.send(5 as unknown as Date); // what an untyped peer could send
    const e = await reader.receive().then(() => null, (err: unknown) => err as Error & { code: string });
    assert.equal(e?.code, 'ERR_IPCKIT_BAD_FRAME');
    assert.match(e!.message, /failed validation: expected an ISO date string/);
    await writer.close();
    await reader.close();
  });

  it('structured<T>() keeps Maps and typed arrays, typed', async () => {
    const { reader, writer } = createPipe({ codec: structured<Map<string, Float64Array>>() });
    await writer.send(new Map([['x', new Float64Array([1.5, 2.5])]]));
    const got = await reader.receive();
    assert.deepEqual([...got.get('x')!], [1.5, 2.5]);
    await writer.close();
    await reader.close();
  });

  it('a custom codec needs no name; its decode error names it "custom"', async () => {
    const upper: Codec<string> = {
      encode: (s) => Buffer.from(s.toUpperCase()),
      decode: (b) => {
        if (b.length === 0) throw new Error('empty');
        return Buffer.from(b).toString();
      },
    };
    const { reader, writer } = createPipe({ codec: upper });
    await writer.send('quiet');
    assert.equal(await reader.receive(), 'QUIET');
    await writer.send('');
    const e = await reader.receive().then(() => null, (err: unknown) => err as Error & { code: string });
    assert.equal(e?.code, 'ERR_IPCKIT_BAD_FRAME');
    assert.match(e!.message, /codec "custom"/);
    await writer.close();
    await reader.close();
  });
});
