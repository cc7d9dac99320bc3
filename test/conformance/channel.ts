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

/** The batch methods a Sender or Receiver may offer (not part of the interface). */
type Batching = {
  sendMany?(messages: Iterable<unknown>, options?: unknown): Promise<void>;
  receiveMany?(max?: number, options?: unknown): Promise<unknown[]>;
  flush?(options?: unknown): Promise<void>;
};

/** Wait options that are not: each must throw ERR_IPCKIT_INVALID_ARGUMENT at once. */
const BAD_WAIT_OPTIONS: ReadonlyArray<[string, unknown]> = [
  ['a negative timeout', { timeout: -5 }],
  ['a NaN timeout', { timeout: NaN }],
  ['an infinite timeout', { timeout: Infinity }],
  ['a timeout no timer can hold', { timeout: 2 ** 31 }],
  ['a timeout as a string', { timeout: '100' }],
  ['a signal that is not an AbortSignal', { signal: { aborted: false } }],
  ['options that are a number', 5],
  ['options that are null', null],
];

/**
 * Asserts that `call` throws ERR_IPCKIT_INVALID_ARGUMENT synchronously: a returned promise
 * (even one that rejects with that code) fails, since bad arguments must never reach one.
 */
export function throwsInvalid(call: () => unknown, what: string): void {
  let returned: unknown;
  try {
    returned = call();
  } catch (e) {
    assert.equal((e as { code?: string }).code, 'ERR_IPCKIT_INVALID_ARGUMENT', `${what}: threw ${(e as Error).message}`);
    return;
  }
  if (returned instanceof Promise) returned.catch(() => {});
  assert.fail(`${what}: returned ${returned instanceof Promise ? 'a promise' : String(returned)} instead of throwing ERR_IPCKIT_INVALID_ARGUMENT`);
}

export interface PairOptions {
  senderCodec?: CodecOption;
  receiverCodec?: CodecOption;
  /** Applied to both sides. */
  maxMessageBytes?: number;
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
  const check = (title: string, fn: () => Promise<void>): void => {
    it(title, fn);
  };

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

    it('a message above maxMessageBytes is refused synchronously, and nothing is sent', async () => {
      await withPair(options, { maxMessageBytes: 100 }, async ({ sender, receiver }) => {
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

    check('bad wait options throw synchronously from every method, even with a message ready, and take nothing', async () => {
      await withPair(options, { senderCodec: 'utf8', receiverCodec: 'utf8' }, async ({ sender, receiver }) => {
        const tx = sender as Sender<string> & Batching;
        const rx = receiver as Receiver<string> & Batching;
        for (const [what, bad] of BAD_WAIT_OPTIONS) {
          throwsInvalid(() => tx.send('never', bad as never), `send with ${what}`);
          if (tx.sendMany) throwsInvalid(() => tx.sendMany!(['never'], bad), `sendMany with ${what}`);
          if (tx.flush) throwsInvalid(() => tx.flush!(bad), `flush with ${what}`);
        }
        for (const m of ['first', 'second', 'third']) await sender.send(m);
        assert.equal(await within(receiver.receive(), 10_000), 'first');
        await sleep(50); // the others have arrived: a receive now would not wait
        for (const [what, bad] of BAD_WAIT_OPTIONS) {
          throwsInvalid(() => rx.receive(bad as never), `receive with ${what}`);
          if (rx.receiveMany) throwsInvalid(() => rx.receiveMany!(1, bad), `receiveMany with ${what}`);
        }
        if (rx.receiveMany) {
          for (const bad of [0, -1, 1.5, NaN, '2']) throwsInvalid(() => rx.receiveMany!(bad as never), `receiveMany(${String(bad)})`);
        }
        assert.equal(await within(receiver.receive(), 10_000), 'second', 'a refused receive took a message');
        assert.equal(await within(receiver.receive(), 10_000), 'third');
      });
    });

    check('a message the codec refuses throws synchronously from send, trySend and sendMany, and nothing is sent', async () => {
      await withPair(options, { senderCodec: 'utf8', receiverCodec: 'utf8' }, async ({ sender, receiver }) => {
        const tx = sender as Sender<unknown> & Batching;
        throwsInvalid(() => tx.send(42), 'send(42) with codec "utf8"');
        if (tx.trySend) throwsInvalid(() => tx.trySend!(42), 'trySend(42) with codec "utf8"');
        if (tx.sendMany) {
          throwsInvalid(() => tx.sendMany!(['fine', 42]), 'sendMany with a number among strings');
          throwsInvalid(() => tx.sendMany!(42 as never), 'sendMany of something not iterable');
        }
        await sender.send('after');
        assert.equal(await within(receiver.receive(), 10_000), 'after', 'part of a refused batch was sent');
        await sender.close();
        // Still an argument error, not ERR_IPCKIT_CLOSED: the message was never valid.
        throwsInvalid(() => tx.send(42), 'send(42) on a closed sender');
      });
      await withPair(options, {}, async ({ sender }) => {
        throwsInvalid(() => sender.send('text'), 'send of a string with codec "bytes"');
      });
    });

    if (options.backpressure) {
      check('trySend keeps order with send; on a full channel it returns false and takes nothing', async () => {
        await withPair(options, { senderCodec: 'json', receiverCodec: 'json' }, async ({ sender, receiver }) => {
          if (!sender.trySend) return;
          await sender.send({ i: 'a' });
          assert.equal(sender.trySend({ i: 'b' }), true, 'trySend on an empty channel');
          await sender.send({ i: 'c' });
          for (const i of ['a', 'b', 'c']) assert.deepEqual(await within(receiver.receive(), 10_000), { i });
          const filler = 'x'.repeat(Math.min(1000, max - 100));
          let accepted = 0;
          while (sender.trySend({ i: accepted, filler })) {
            accepted++;
            assert.ok(accepted < 200_000, 'trySend never returned false: the channel buffers without bound');
          }
          // The refused ones took nothing: exactly the accepted messages arrive, in order.
          for (let i = 0; i < accepted; i++) assert.deepEqual(await within(receiver.receive(), 10_000), { i, filler });
          await rejectsWith(receiver.receive({ timeout: 300 }), 'ERR_IPCKIT_TIMEOUT');
          // With room again, trySend accepts (the attempts that found no room took nothing).
          const deadline = Date.now() + 10_000;
          while (!sender.trySend({ i: 'again' })) {
            assert.ok(Date.now() < deadline, 'trySend never found room after the channel was drained');
            await sleep(5);
          }
          assert.deepEqual(await within(receiver.receive(), 10_000), { i: 'again' });
          await rejectsWith(receiver.receive({ timeout: 100 }), 'ERR_IPCKIT_TIMEOUT');
        });
      });
    }

    check('sendMany keeps order and boundaries, with send between batches; any iterable; an empty batch sends nothing', async () => {
      await withPair(options, {}, async ({ sender, receiver }) => {
        const tx = sender as Sender<Uint8Array> & Batching;
        if (!tx.sendMany) return;
        const sizes = [1, 63, 4096, 4097, 65_539, max].filter((s) => s <= max);
        if (options.emptyMessages !== false) sizes.unshift(0);
        const sending = tx.sendMany(sizes.map((s, i) => pattern(s, i)));
        for (const [i, s] of sizes.entries()) {
          const m = (await within(receiver.receive(), 10_000, `receive of ${s} bytes`)) as Uint8Array;
          assert.equal(m.length, s);
          assert.deepEqual(Buffer.from(m), Buffer.from(pattern(s, i)));
        }
        await sending;
      });
      await withPair(options, { senderCodec: 'utf8', receiverCodec: 'utf8' }, async ({ sender, receiver }) => {
        const tx = sender as Sender<string> & Batching;
        if (!tx.sendMany) return;
        await tx.send('a');
        await tx.sendMany(['b', 'c']);
        await tx.sendMany([]);
        await tx.sendMany(
          (function* () {
            yield 'd';
            yield 'e';
          })(),
        );
        await tx.send('f');
        for (const m of ['a', 'b', 'c', 'd', 'e', 'f']) assert.equal(await within(receiver.receive(), 10_000), m);
        await rejectsWith(receiver.receive({ timeout: 100 }), 'ERR_IPCKIT_TIMEOUT');
      });
    });

    if (options.backpressure) {
      /** A JSON pair whose sender has sendMany (else the check does not apply), and a batch of `bytes` of messages { i, filler }. */
      type BatchSender = Sender<unknown> & Required<Pick<Batching, 'sendMany'>>;
      const withBatching = (body: (sender: BatchSender, receiver: Receiver<unknown>, batch: (bytes: number) => Array<{ i: number; filler: string }>) => Promise<void>): Promise<void> =>
        withPair(options, { senderCodec: 'json', receiverCodec: 'json' }, async ({ sender, receiver }) => {
          if (!(sender as Sender<unknown> & Batching).sendMany) return;
          const filler = 'x'.repeat(Math.min(4000, max - 100));
          await body(sender as BatchSender, receiver, (bytes) => Array.from({ length: Math.ceil(bytes / filler.length) }, (_, i) => ({ i, filler })));
        });

      check('sendMany on a full channel ends at its timeout, says in details.sent how many went, and exactly those arrive', async () => {
        await withBatching(async (sender, receiver, makeBatch) => {
          // More than any of these channels holds (kernel buffers and ours): 32 MiB.
          const batch = makeBatch(32 * 1024 * 1024);
          const e = await rejectsWith(within(sender.sendMany(batch, { timeout: 150 }), 20_000, 'sendMany with a 150 ms timeout'), 'ERR_IPCKIT_TIMEOUT');
          const sent = e.details?.sent;
          assert.ok(Number.isInteger(sent) && (sent as number) > 0 && (sent as number) < batch.length, `details.sent is ${String(sent)} of ${batch.length}`);
          for (let i = 0; i < (sent as number); i++) assert.deepEqual(await within(receiver.receive(), 10_000), batch[i]);
          await rejectsWith(receiver.receive({ timeout: 300 }), 'ERR_IPCKIT_TIMEOUT');
          await sender.send({ i: 'last' });
          assert.deepEqual(await within(receiver.receive(), 10_000), { i: 'last' });
        });
      });

      check('sends made while a sendMany waits for room come after the whole batch, in the order they were made', async () => {
        await withBatching(async (sender, receiver, makeBatch) => {
          // More than these channels hold (kernel buffers and ours): 8 MiB, so the batch waits.
          const batch = makeBatch(8 * 1024 * 1024);
          const n = batch.length;
          const many = sender.sendMany(batch);
          await sleep(20);
          const first = sender.send({ i: 'after 1' });
          // Aborted while it waits its turn behind the batch: it takes nothing.
          const ac = new AbortController();
          const dropped = rejectsWith(sender.send({ i: 'aborted' }, { signal: ac.signal }), 'ERR_IPCKIT_ABORTED');
          ac.abort();
          const after = [first, sender.sendMany([{ i: 'after 2' }, { i: 'after 3' }]), sender.send({ i: 'after 4' }), dropped];
          assert.equal(sender.trySend?.({ i: 'never' }) ?? false, false, 'trySend must not overtake a waiting batch');
          for (let i = 0; i < n; i++) {
            const m = (await within(receiver.receive(), 10_000)) as { i: unknown };
            assert.equal(m.i, i, `message ${i} of the batch`);
          }
          for (const i of ['after 1', 'after 2', 'after 3', 'after 4']) assert.deepEqual(await within(receiver.receive(), 10_000), { i });
          await within(Promise.all([many, ...after]), 10_000);
          await rejectsWith(receiver.receive({ timeout: 100 }), 'ERR_IPCKIT_TIMEOUT');
        });
      });
    }

    check('receiveMany returns the messages ready, in order, at most max', async () => {
      await withPair(options, { senderCodec: 'utf8', receiverCodec: 'utf8' }, async ({ sender, receiver }) => {
        const rx = receiver as Receiver<string> & Batching;
        if (!rx.receiveMany) return;
        const sent = ['m0', 'm1', 'm2', 'm3', 'm4'];
        for (const m of sent) await sender.send(m);
        const got: string[] = [];
        while (got.length < sent.length) {
          const batch = (await within(rx.receiveMany(2), 10_000)) as string[];
          assert.ok(batch.length >= 1 && batch.length <= 2, `a batch of ${batch.length} for max 2`);
          got.push(...batch);
        }
        assert.deepEqual(got, sent);
      });
    });

    it('Symbol.asyncDispose closes both sides', async () => {
      await withPair(options, {}, async ({ sender, receiver }) => {
        await sender[Symbol.asyncDispose]();
        await receiver[Symbol.asyncDispose]();
        await rejectsWith(receiver.receive(), 'ERR_IPCKIT_CLOSED');
      });
    });
  });
}
