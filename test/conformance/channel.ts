/**
 * The Channel promises of src/core/channel.ts, stated once as tests, run against every
 * implementation: each mechanism's test file calls `channelConformance` with a factory
 * that makes a fresh sender/receiver pair over real kernel objects.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Receiver, Sender } from '../../src/core/channel.js';
import type { Codec, CodecOption } from '../../src/core/codec.js';
import { rejectsWith, sleep, throwsWith, within } from '../helpers.js';

export interface PairOptions {
  senderCodec?: CodecOption;
  receiverCodec?: CodecOption;
  /** Applied to both sides. */
  maxMessageSize?: number;
}

export interface ConformancePair {
  sender: Sender<any>;
  receiver: Receiver<any>;
  /** Removes every kernel object the pair made (called even when the test fails). */
  cleanup(): Promise<void>;
}

export interface ConformanceOptions {
  make(options: PairOptions): Promise<ConformancePair>;
  /** Largest message the mechanism carries in these tests (default 1 MiB). */
  maxMessage?: number;
  /** Closing the sender ends the receiver (streams: yes; a message queue: no). */
  senderCloseEndsReceiver: boolean;
  /** `send` can wait for room (every bounded mechanism). */
  backpressure: boolean;
  /** Zero-length messages are carried (default true). */
  emptyMessages?: boolean;
}

async function withPair(options: ConformanceOptions, pairOptions: PairOptions, body: (pair: ConformancePair) => Promise<void>): Promise<void> {
  const pair = await options.make(pairOptions);
  try {
    await body(pair);
  } finally {
    await pair.cleanup();
  }
}

function pattern(size: number, seed: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

export function channelConformance(name: string, options: ConformanceOptions): void {
  const max = options.maxMessage ?? 1024 * 1024;

  describe(`${name}: Channel conformance`, () => {
    it('keeps message boundaries and bytes', async () => {
      await withPair(options, {}, async ({ sender, receiver }) => {
        const sizes = [1, 63, 64, 4095, 4096, 4097, 65_539, max].filter((s) => s <= max);
        if (options.emptyMessages !== false) sizes.unshift(0);
        const sending = (async () => {
          for (const [i, s] of sizes.entries()) await sender.send(pattern(s, i));
        })();
        for (const [i, s] of sizes.entries()) {
          const m = (await within(receiver.receive(), 10_000, `receive of ${s} bytes`)) as Uint8Array;
          assert.ok(m instanceof Uint8Array);
          assert.equal(m.length, s);
          assert.deepEqual(Buffer.from(m), Buffer.from(pattern(s, i)));
        }
        await sending;
      });
    });

    it('keeps the order of one sender', async () => {
      await withPair(options, { senderCodec: 'json', receiverCodec: 'json' }, async ({ sender, receiver }) => {
        const n = 2000;
        const sending = (async () => {
          for (let i = 0; i < n; i++) await sender.send({ seq: i });
        })();
        for (let i = 0; i < n; i++) assert.deepEqual(await within(receiver.receive(), 10_000), { seq: i });
        await sending;
      });
    });

    it('serves concurrent receives in the order they were made', async () => {
      await withPair(options, { senderCodec: 'utf8', receiverCodec: 'utf8' }, async ({ sender, receiver }) => {
        const order: string[] = [];
        const waits = ['first', 'second', 'third'].map((tag) => receiver.receive().then((m) => order.push(`${tag}:${m}`)));
        await sleep(20);
        for (const m of ['a', 'b', 'c']) await sender.send(m);
        await within(Promise.all(waits), 10_000);
        assert.deepEqual(order, ['first:a', 'second:b', 'third:c']);
      });
    });

    it('a receive that times out takes nothing', async () => {
      await withPair(options, { senderCodec: 'utf8', receiverCodec: 'utf8' }, async ({ sender, receiver }) => {
        const started = Date.now();
        await rejectsWith(receiver.receive({ timeout: 80 }), 'ERR_IPCKIT_TIMEOUT');
        assert.ok(Date.now() - started >= 70, 'the timeout fired early');
        await sender.send('after');
        assert.equal(await within(receiver.receive(), 10_000), 'after');
      });
    });

    it('an abort ends the wait with its reason as cause, and the channel goes on', async () => {
      await withPair(options, { senderCodec: 'utf8', receiverCodec: 'utf8' }, async ({ sender, receiver }) => {
        const ac = new AbortController();
        const pending = receiver.receive({ signal: ac.signal });
        const reason = new Error('stop waiting');
        ac.abort(reason);
        const e = await rejectsWith(pending, 'ERR_IPCKIT_ABORTED');
        assert.equal((e as Error & { cause?: unknown }).cause, reason);
        await rejectsWith(receiver.receive({ signal: AbortSignal.abort('already') }), 'ERR_IPCKIT_ABORTED');
        await sender.send('still works');
        assert.equal(await within(receiver.receive(), 10_000), 'still works');
      });
    });

    it('close() rejects a pending receive with ERR_IPCKIT_CLOSED, and is idempotent', async () => {
      await withPair(options, {}, async ({ receiver }) => {
        const pending = receiver.receive();
        await sleep(10);
        // Checked before close() settles: a close() that takes a while (popen waits for
        // the child) must not leave this rejection unhandled meanwhile.
        const rejected = rejectsWith(pending, 'ERR_IPCKIT_CLOSED');
        await receiver.close();
        await rejected;
        await rejectsWith(receiver.receive(), 'ERR_IPCKIT_CLOSED');
        await receiver.close();
      });
    });

    it('a closed sender refuses to send', async () => {
      await withPair(options, {}, async ({ sender }) => {
        await sender.close();
        await rejectsWith(async () => sender.send(new Uint8Array(1)), 'ERR_IPCKIT_CLOSED');
        await sender.close();
      });
    });

    it('a message above maxMessageSize is refused synchronously, and nothing is sent', async () => {
      await withPair(options, { maxMessageSize: 100 }, async ({ sender, receiver }) => {
        throwsWith(() => void sender.send(new Uint8Array(101)), 'ERR_IPCKIT_FRAME_TOO_LARGE');
        await sender.send(new Uint8Array(100).fill(7));
        const m = (await within(receiver.receive(), 10_000)) as Uint8Array;
        assert.equal(m.length, 100);
      });
    });

    it('types messages with codecs: utf8, json, structured and a user codec', async () => {
      const upper: Codec<string> = {
        name: 'upper',
        encode: (s) => Buffer.from(s.toUpperCase()),
        decode: (b) => Buffer.from(b).toString().toLowerCase(),
      };
      const cases: Array<[CodecOption, unknown]> = [
        ['utf8', 'héllo ✓'],
        ['json', { a: [1, 'two', null], b: { c: true } }],
        ['structured', new Map<string, unknown>([['d', new Date(0)], ['n', 10n]])],
        [upper, 'mixed case'],
      ];
      for (const [codec, value] of cases) {
        await withPair(options, { senderCodec: codec, receiverCodec: codec }, async ({ sender, receiver }) => {
          await sender.send(value);
          assert.deepEqual(await within(receiver.receive(), 10_000), value);
        });
      }
    });

    it('a payload that fails to decode is ERR_IPCKIT_BAD_FRAME for that message only', async () => {
      await withPair(options, { receiverCodec: 'json' }, async ({ sender, receiver }) => {
        await sender.send(Buffer.from('{not json'));
        await sender.send(Buffer.from('{"ok":true}'));
        await rejectsWith(within(receiver.receive(), 10_000), 'ERR_IPCKIT_BAD_FRAME');
        assert.deepEqual(await within(receiver.receive(), 10_000), { ok: true });
      });
    });

    if (options.senderCloseEndsReceiver) {
      it('after the sender closes, every message arrives and then the channel ends', async () => {
        await withPair(options, { senderCodec: 'utf8', receiverCodec: 'utf8' }, async ({ sender, receiver }) => {
          for (const m of ['x', 'y', 'z']) await sender.send(m);
          await sender.close();
          const got: string[] = [];
          for await (const m of receiver) got.push(m as string);
          assert.deepEqual(got, ['x', 'y', 'z']);
          await rejectsWith(receiver.receive(), 'ERR_IPCKIT_CLOSED');
        });
      });
    }

    if (options.backpressure) {
      it('backpressure: a send waits when the channel is full, loses nothing, and a timed-out send sent nothing', async () => {
        await withPair(options, { senderCodec: 'json', receiverCodec: 'json' }, async ({ sender, receiver }) => {
          const filler = 'x'.repeat(1000);
          let accepted = 0;
          // Fill until a send does not complete promptly; bounded so a channel without
          // backpressure fails instead of eating memory.
          for (;;) {
            const p = sender.send({ i: accepted, filler });
            const done = await Promise.race([p.then(() => true), sleep(200).then(() => false)]);
            if (!done) {
              // That send is still waiting: it must complete once we read.
              const reading = (async () => {
                for (let i = 0; i <= accepted; i++) assert.deepEqual(await within(receiver.receive(), 10_000), { i, filler });
              })();
              await within(p, 10_000, 'the waiting send');
              await reading;
              break;
            }
            accepted++;
            assert.ok(accepted < 200_000, 'send never waited: the channel buffers without bound');
          }
          // A send that times out on a full channel sent nothing.
          let n = 0;
          for (;;) {
            try {
              await sender.send({ i: n, filler }, { timeout: 100 });
              n++;
            } catch (e) {
              assert.equal((e as { code?: string }).code, 'ERR_IPCKIT_TIMEOUT');
              break;
            }
          }
          for (let i = 0; i < n; i++) assert.deepEqual(await within(receiver.receive(), 10_000), { i, filler });
          await sender.send({ i: 'last' });
          assert.deepEqual(await within(receiver.receive(), 10_000), { i: 'last' });
        });
      });
    }

    it('Symbol.asyncDispose closes both sides', async () => {
      await withPair(options, {}, async ({ sender, receiver }) => {
        await sender[Symbol.asyncDispose]();
        await receiver[Symbol.asyncDispose]();
        await rejectsWith(receiver.receive(), 'ERR_IPCKIT_CLOSED');
      });
    });
  });
}
