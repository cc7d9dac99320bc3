/**
 * The spawnProcess channel in one process (src/mechanisms/process/channel.ts and
 * batches.ts): the Channel promises, and batch frames: sendMany packs JSON messages several
 * to a frame, receiving hands them out one by one, in order, with every wait promise kept.
 * Two rings, one each way, as spawnProcess makes them; test/process.test.ts runs real children.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { json, resolveCodec, type Codec, type CodecOption } from '../src/core/codec.js';
import { createRing, unlinkRing } from '../src/mechanisms/ring/ring.js';
import { BATCH_MESSAGES, batchingCodec, EncodedFrame, encodeBatches } from '../src/mechanisms/process/batches.js';
import { decodeHandoff, encodeHandoff } from '../src/mechanisms/process/handoff.js';
import { ProcessChannel } from '../src/mechanisms/process/channel.js';
import type { RingSender } from '../src/mechanisms/ring/sender.js';
import { channelConformance } from './conformance/channel.js';
import { rejectsWith, sleep, throwsWith, uniqueName, within } from './helpers.js';

const names: string[] = [];
const open: Array<{ close(): Promise<unknown> }> = [];
after(async () => {
  for (const c of open) await c.close().catch(() => {});
  for (const n of names) {
    try {
      unlinkRing(n);
    } catch {
      /* removed by its test */
    }
  }
});

interface Pair<T> {
  /** Sends to `b`. */
  a: ProcessChannel<T>;
  /** Receives from `a`. */
  b: ProcessChannel<T>;
  /** The ring sender under `a`: to send frames of our own making (with sendMany: the path that sends an EncodedFrame as it is). */
  raw: RingSender<T>;
  cleanup(): Promise<void>;
}

/** Two ProcessChannels joined by two rings, as a spawnProcess parent and child are. */
async function pair<T = unknown>(options: { aCodec?: CodecOption; bCodec?: CodecOption; capacityBytes?: number; maxMessageBytes?: number } = {}): Promise<Pair<T>> {
  const ringOptions = { capacityBytes: options.capacityBytes ?? 1024 * 1024, ...(options.maxMessageBytes ? { maxMessageBytes: options.maxMessageBytes } : {}) };
  const [down, up] = [uniqueName('pb'), uniqueName('pb')];
  names.push(down, up);
  const rDown = createRing(down, ringOptions);
  const rUp = createRing(up, ringOptions);
  const aCodec = resolveCodec(options.aCodec ?? 'json') as Codec<T>;
  const bCodec = resolveCodec(options.bCodec ?? options.aCodec ?? 'json') as Codec<T>;
  const raw = (await rDown.sender({ codec: batchingCodec(aCodec) })) as RingSender<T>;
  // As spawnProcess makes them over rings: a batch frame's text may go from the send scratch into the ring.
  const a = new ProcessChannel<T>(raw, await rUp.receiver({ codec: batchingCodec(aCodec) }), aCodec, { borrowFrames: true });
  const b = new ProcessChannel<T>(await rUp.sender({ codec: batchingCodec(bCodec) }), await rDown.receiver({ codec: batchingCodec(bCodec) }), bCodec, { borrowFrames: true });
  rDown.close();
  rUp.close();
  open.push(a, b);
  return {
    a,
    b,
    raw,
    cleanup: async () => {
      await a.close().catch(() => {});
      await b.close().catch(() => {});
      for (const n of [down, up]) {
        try {
          unlinkRing(n);
        } catch {
          /* removed already */
        }
      }
    },
  };
}

channelConformance('spawnProcess channel (ProcessChannel over two rings)', {
  senderCloseEndsReceiver: true,
  backpressure: true,
  async make(o) {
    const p = await pair({ aCodec: o.senderCodec ?? 'bytes', bCodec: o.receiverCodec ?? 'bytes', capacityBytes: 4 * 1024 * 1024, ...(o.maxMessageBytes ? { maxMessageBytes: o.maxMessageBytes } : {}) });
    return { sender: p.a, receiver: p.b, cleanup: p.cleanup };
  },
});

/** What `send` would deliver for `m`: JSON's view of it. */
const viaJson = (m: unknown): unknown => JSON.parse(JSON.stringify(m));

describe('spawnProcess channel: sendMany in batch frames', () => {
  it('10,000 messages of every JSON kind arrive in order, mixed with send; values with toJSON arrive as send delivers them', async () => {
    const p = await pair();
    try {
      const special = [new Date(0), { toJSON: () => ({ t: 1 }) }, NaN, -0, 'é ✓ 💡', [1, [2, { x: null }]], { nested: { deep: [true, false] } }];
      const batch = Array.from({ length: 10_000 }, (_, i) => (i % 97 === 0 ? special[(i / 97) % special.length] : i % 3 === 0 ? `s${i}` : { i, d: 'x'.repeat(i % 200) }));
      const sending = (async () => {
        await p.a.send('first');
        await p.a.sendMany(batch);
        await p.a.sendMany(new Set(['from', 'a', 'set'])); // any iterable
        await p.a.send('last');
      })();
      const got: unknown[] = [];
      // Every way to receive, taking turns: receive, tryReceive, async iteration.
      const it = p.b[Symbol.asyncIterator]();
      while (got.length < batch.length + 5) {
        const k = got.length % 3;
        if (k === 0) got.push(await within(p.b.receive(), 10_000));
        else if (k === 1) {
          const m = p.b.tryReceive();
          if (m !== undefined) got.push(m);
          else got.push(await within(p.b.receive(), 10_000));
        } else got.push((await within(it.next(), 10_000)).value);
      }
      await sending;
      assert.deepEqual(got, ['first', ...batch.map(viaJson), 'from', 'a', 'set', 'last']);
      assert.equal(p.b.tryReceive(), undefined);
    } finally {
      await p.cleanup();
    }
  });

  it('receives made before a batch arrives are served from it in the order they were made', async () => {
    const p = await pair();
    try {
      const order: string[] = [];
      const waits = Array.from({ length: 10 }, (_, i) => p.b.receive().then((m) => order.push(`${i}:${m}`)));
      await sleep(20);
      await p.a.sendMany(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k']);
      await within(Promise.all(waits), 10_000);
      assert.deepEqual(order, ['0:a', '1:b', '2:c', '3:d', '4:e', '5:f', '6:g', '7:h', '8:i', '9:j']);
      assert.equal(await p.b.receive({ timeout: 5000 }), 'k');
    } finally {
      await p.cleanup();
    }
  });

  it('a receive that times out or is aborted while others wait takes nothing; the batch goes to those still waiting', async () => {
    const p = await pair();
    try {
      const first = p.b.receive({ timeout: 5000 }); // goes below with its own options
      const ac = new AbortController();
      const timesOut = p.b.receive({ timeout: 30 });
      const aborted = rejectsWith(p.b.receive({ signal: ac.signal }), 'ERR_IPCKIT_ABORTED');
      const waits = p.b.receive();
      ac.abort(new Error('changed my mind'));
      await rejectsWith(timesOut, 'ERR_IPCKIT_TIMEOUT');
      const e = await aborted;
      assert.equal((e.cause as Error).message, 'changed my mind');
      await p.a.sendMany([1, 2, 3]);
      assert.equal(await within(first, 10_000), 1);
      assert.equal(await within(waits, 10_000), 2);
      assert.equal(p.b.tryReceive(), 3);
      // All who waited left: the receive below stops, and a later one gets the next message.
      await rejectsWith(p.b.receive({ timeout: 20 }), 'ERR_IPCKIT_TIMEOUT');
      const a1 = p.b.receive({ timeout: 5000 });
      const a2 = p.b.receive({ timeout: 20 });
      await rejectsWith(a2, 'ERR_IPCKIT_TIMEOUT');
      await p.a.sendMany([4, 5]);
      assert.equal(await within(a1, 10_000), 4);
      assert.equal(await within(p.b.receive(), 10_000), 5);
    } finally {
      await p.cleanup();
    }
  });

  it('close() rejects receives waiting behind a batch with ERR_IPCKIT_CLOSED; the end comes after every message', async () => {
    const p = await pair();
    try {
      await p.a.sendMany(['x', 'y', 'z']);
      await p.a.close(); // what was sent is delivered first
      const got: unknown[] = [];
      for await (const m of p.b) got.push(m);
      assert.deepEqual(got, ['x', 'y', 'z']);
      await rejectsWith(p.b.receive(), 'ERR_IPCKIT_CLOSED');
      const q = await pair();
      try {
        const waiting = [q.b.receive(), q.b.receive()];
        await sleep(10);
        await q.b.close();
        for (const w of waiting) await rejectsWith(w, 'ERR_IPCKIT_CLOSED');
        throwsWith(() => q.b.tryReceive(), 'ERR_IPCKIT_CLOSED');
      } finally {
        await q.cleanup();
      }
    } finally {
      await p.cleanup();
    }
  });

  it('json<T>({ validate }): a message of a batch that fails validation is ERR_IPCKIT_BAD_FRAME for that message only', async () => {
    const isItem = (v: unknown): v is { i: number } => typeof (v as { i?: unknown })?.i === 'number';
    const p = await pair<{ i: number }>({ aCodec: 'json', bCodec: json({ validate: isItem }) });
    try {
      await p.a.sendMany([{ i: 1 }, { i: 'two' } as never, { i: 3 }]);
      await p.a.sendMany([{ i: 'four' } as never]); // a batch of one is a single frame
      assert.deepEqual(await p.b.receive({ timeout: 5000 }), { i: 1 });
      const e = await rejectsWith(p.b.receive({ timeout: 5000 }), 'ERR_IPCKIT_BAD_FRAME');
      assert.match(e.message, /failed validation/);
      assert.deepEqual(p.b.tryReceive(), { i: 3 });
      await rejectsWith(p.b.receive({ timeout: 5000 }), 'ERR_IPCKIT_BAD_FRAME');
      // Waiting receives: the refused one rejects in its place.
      const waits = [p.b.receive(), p.b.receive(), p.b.receive()].map((w) => w.then((v) => v, (x: { code: string }) => x.code));
      await sleep(10);
      await p.a.sendMany([{ i: 5 }, { i: null } as never, { i: 7 }]);
      assert.deepEqual(await within(Promise.all(waits), 10_000), [{ i: 5 }, 'ERR_IPCKIT_BAD_FRAME', { i: 7 }]);
    } finally {
      await p.cleanup();
    }
  });

  it('a corrupt batch frame (not JSON, not UTF-8, not an array, too few or too many messages) is ERR_IPCKIT_BAD_FRAME; the next message arrives', async () => {
    const p = await pair<{ i: number }>({ aCodec: 'json', bCodec: json({ validate: (v): v is { i: number } => typeof (v as { i?: unknown })?.i === 'number' }) });
    try {
      const frame = (...bytes: number[]): EncodedFrame => new EncodedFrame(Uint8Array.from(bytes), 1);
      const text = (t: string): number[] => [...Buffer.from(t)];
      // Too many: more than a sender ever puts in a frame, each refused by the validator (one error for the frame, not one each).
      const tooMany = `[${Array.from({ length: BATCH_MESSAGES + 1 }, () => '0').join(',')}]`;
      const bad = [frame(0, ...text('[1, 2')), frame(0, 0xff, 0xfe), frame(0, ...text('{"a":1}')), frame(0, ...text('[]')), frame(0, ...text('[{"i":1}]')), frame(0, ...text(tooMany)), frame(0)];
      await p.raw.sendMany(bad as never);
      await p.a.send({ i: 1 });
      for (let i = 0; i < bad.length; i++) {
        const e = await rejectsWith(p.b.receive({ timeout: 5000 }), 'ERR_IPCKIT_BAD_FRAME');
        assert.match(e.message, /batch of messages/);
      }
      assert.deepEqual(await p.b.receive({ timeout: 5000 }), { i: 1 });
      // The same, met by a receive that was already waiting.
      const w = p.b.receive();
      const w2 = p.b.receive();
      await sleep(10);
      await p.raw.sendMany([frame(0, ...text('nope'))] as never);
      await p.a.send({ i: 2 });
      await rejectsWith(within(w, 10_000), 'ERR_IPCKIT_BAD_FRAME');
      assert.deepEqual(await within(w2, 10_000), { i: 2 });
    } finally {
      await p.cleanup();
    }
  });

  it('a message JSON cannot carry throws synchronously from sendMany, and nothing of the batch is sent', async () => {
    const p = await pair();
    try {
      const cycle: Record<string, unknown> = { a: 1 };
      cycle.self = cycle;
      for (const [what, batch] of [
        ['undefined', [{ ok: 1 }, undefined]],
        ['a function', [{ ok: 1 }, () => 1]],
        ['a symbol', [Symbol('s'), { ok: 1 }]],
        ['a BigInt', [{ ok: 1 }, 10n]],
        ['a BigInt inside an object', [{ ok: 1 }, { n: 10n }]],
        ['a cycle', [{ ok: 1 }, cycle]],
      ] as const) {
        let thrown: unknown;
        try {
          void p.a.sendMany(batch as unknown as unknown[]);
        } catch (e) {
          thrown = e;
        }
        assert.equal((thrown as { code?: string })?.code, 'ERR_IPCKIT_INVALID_ARGUMENT', `a batch with ${what}`);
      }
      throwsWith(() => p.a.sendMany(42 as never), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => p.a.sendMany(['x'], { timeout: -1 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
      await p.a.send('only this');
      assert.equal(await p.b.receive({ timeout: 5000 }), 'only this');
      assert.equal(p.b.tryReceive(), undefined);
      await p.a.sendMany([]); // an empty batch sends nothing
      assert.equal(p.b.tryReceive(), undefined);
    } finally {
      await p.cleanup();
    }
  });

  it('runs larger than a frame are split to fit maxMessageBytes; a message above it throws ERR_IPCKIT_FRAME_TOO_LARGE and nothing is sent', async () => {
    const p = await pair({ maxMessageBytes: 2048 });
    try {
      const batch = Array.from({ length: 600 }, (_, i) => ({ i, d: 'y'.repeat(90 + (i % 50)) }));
      const sending = p.a.sendMany(batch);
      const got: unknown[] = [];
      while (got.length < batch.length) got.push(await within(p.b.receive(), 10_000));
      await sending;
      assert.deepEqual(got, batch);
      throwsWith(() => p.a.sendMany([{ small: 1 }, { big: 'z'.repeat(3000) }]), 'ERR_IPCKIT_FRAME_TOO_LARGE');
      await p.a.send('then');
      assert.equal(await p.b.receive({ timeout: 5000 }), 'then');
    } finally {
      await p.cleanup();
    }
  });

  it('large messages among small ones: runs are sized from their first message, and a run that does not fit goes one message per frame', async () => {
    const p = await pair({ maxMessageBytes: 64 * 1024 });
    try {
      const big = (i: number): { i: number; big: string } => ({ i, big: 'B'.repeat(20_000) });
      const batch = [
        ...Array.from({ length: 300 }, (_, i) => ({ i })), // small: batches
        ...Array.from({ length: 10 }, (_, i) => big(i)), // 20 KB each: a run of one or two per frame
        { i: -1 }, // small first, large after: the run does not fit, each goes alone
        ...Array.from({ length: 5 }, (_, i) => big(100 + i)),
        'end',
      ];
      const sending = p.a.sendMany(batch);
      const got: unknown[] = [];
      while (got.length < batch.length) got.push(await within(p.b.receive(), 10_000));
      await sending;
      assert.deepEqual(got, batch);
    } finally {
      await p.cleanup();
    }
  });

  it("an array with a toJSON of its own, a subclass's, or a species that makes a subclass (a Proxy's too) is a list of messages, each sent as send would send it", async () => {
    const p = await pair();
    try {
      class Coll extends Array<unknown> {
        toJSON(): unknown {
          return ['X', 'Y'];
        }
      }
      const own = Object.assign([{ a: 4 }, { a: 5 }], { toJSON: () => 'whole' });
      // A plain array whose own constructor would make slice() return a Spy (its species),
      // and a Proxy of a plain array that says so only when asked for its constructor:
      // neither is sliced (the species, user code, is never called).
      let made = 0;
      class Spy extends Coll {
        constructor(...items: unknown[]) {
          super(...items);
          made++;
        }
      }
      const species = Object.assign([{ a: 6 }, { a: 7 }], { constructor: { [Symbol.species]: Spy } });
      const proxied = new Proxy([{ a: 8 }, { a: 9 }], { get: (t, k, r) => (k === 'constructor' ? { [Symbol.species]: Spy } : Reflect.get(t, k, r)) });
      await p.a.sendMany(Coll.from([{ a: 1 }, { a: 2 }, { a: 3 }]));
      await p.a.sendMany(own);
      await p.a.sendMany(species);
      await p.a.sendMany(proxied);
      const got: unknown[] = [];
      while (got.length < 9) got.push(await within(p.b.receive(), 10_000));
      assert.deepEqual(got, [{ a: 1 }, { a: 2 }, { a: 3 }, { a: 4 }, { a: 5 }, { a: 6 }, { a: 7 }, { a: 8 }, { a: 9 }]);
      assert.equal(made, 0, 'a species constructor was called');
    } finally {
      await p.cleanup();
    }
  });

  it('frame sizes: every frame fits, large runs are cut by their measured size, and messages are neither lost nor repeated', () => {
    const codec = resolveCodec('json') as Codec<unknown>;
    const wire = batchingCodec(codec);
    const cases: Array<[string, unknown[], number]> = [
      ['small messages', Array.from({ length: 1000 }, (_, i) => ({ i })), 512 * 1024],
      ['a small one, then 255 of 10 KB', [1, ...Array.from({ length: 255 }, (_, i) => ({ i, s: 'k'.repeat(10_000) }))], 512 * 1024],
      ['a small one every 256', Array.from({ length: 1024 }, (_, i) => (i % 256 === 0 ? { h: i } : { i, s: 'k'.repeat(10_000) })), 512 * 1024],
      ['messages near the limit', Array.from({ length: 20 }, (_, i) => ({ i, s: 'n'.repeat(3000) })), 4096],
    ];
    for (const [what, messages, maxBytes] of cases) {
      const frames = encodeBatches(codec, messages, maxBytes);
      assert.ok(frames.every((f) => f.bytes.length <= maxBytes), `${what}: a frame above ${maxBytes} bytes`);
      const decoded = frames.flatMap((f) => {
        const v = wire.decode(f.bytes) as unknown;
        return (v as { items?: unknown[] })?.items ?? [v];
      });
      assert.deepEqual(decoded, messages, what);
      assert.equal(frames.reduce((n, f) => n + f.messages, 0), messages.length, what);
      if (what !== 'messages near the limit') assert.ok(frames.length <= Math.ceil(messages.length / 20), `${what}: ${frames.length} frames for ${messages.length} messages`);
    }
  });

  it('a sendMany that times out part-way says in details.sent how many messages went, and exactly those arrive', async () => {
    const p = await pair({ capacityBytes: 16 * 1024 });
    try {
      const batch = Array.from({ length: 5000 }, (_, i) => ({ i, d: 'w'.repeat(40) }));
      const e = await rejectsWith(p.a.sendMany(batch, { timeout: 100 }), 'ERR_IPCKIT_TIMEOUT');
      const sent = e.details?.sent as number;
      assert.ok(sent > 0 && sent < batch.length, `details.sent ${sent}`);
      assert.match(e.message, new RegExp(`${sent} of ${batch.length} messages were sent`));
      const end = p.a.send('end'); // waits for room: the ring is full
      const got: unknown[] = [];
      for (;;) {
        const m = await within(p.b.receive(), 10_000);
        if (m === 'end') break;
        got.push(m);
      }
      await end;
      assert.deepEqual(got, batch.slice(0, sent));
    } finally {
      await p.cleanup();
    }
  });

  it('a batch frame that waits for room owns its text: sends made meanwhile, here and on another channel, do not change it', async () => {
    const p = await pair({ capacityBytes: 16 * 1024 });
    const other = await pair();
    try {
      const filler = Array.from({ length: 200 }, (_, i) => ({ f: i, d: 'f'.repeat(40) }));
      while (p.a.trySend(filler[0])) {
        /* fill the ring */
      }
      const batch = Array.from({ length: 100 }, (_, i) => ({ i, d: 'b'.repeat(40) }));
      const waiting = p.a.sendMany(batch); // one frame, encoded into the send scratch, then it waits
      await other.a.send({ clobber: 'z'.repeat(20_000) }); // the scratch is written again
      other.a.sendMany(filler); // and again, as a borrowed frame of another channel
      const got: unknown[] = [];
      while (got.length < batch.length) {
        const m = (await within(p.b.receive(), 10_000)) as { f?: number };
        if (m.f === undefined) got.push(m);
      }
      await waiting;
      assert.deepEqual(got, batch);
    } finally {
      await p.cleanup();
      await other.cleanup();
    }
  });

  it('with the last frame borrowing the send scratch, a toJSON that sends elsewhere mid-encode does not change an earlier frame', () => {
    const messages: unknown[] = Array.from({ length: BATCH_MESSAGES + 10 }, (_, i) => ({ i }));
    // In the second run: a nested toJSON that writes the send scratch, as a send of its own would.
    messages[BATCH_MESSAGES + 5] = { i: BATCH_MESSAGES + 5, nested: { toJSON: () => (encodeBatches(resolveCodec('json') as Codec<unknown>, ['y'.repeat(5000), 'y'.repeat(5000)], 1 << 20, { borrowLast: true }), 'n') } };
    const frames = encodeBatches(resolveCodec('json') as Codec<unknown>, messages, 1 << 20, { borrowLast: true });
    assert.equal(frames.length, 2);
    const wire = batchingCodec(resolveCodec('json') as Codec<unknown>);
    const first = (wire.decode(frames[0]!.bytes) as unknown as { items: unknown[] }).items;
    assert.deepEqual(first, viaJson(messages.slice(0, BATCH_MESSAGES)));
    const last = (wire.decode(frames[1]!.bytes) as unknown as { items: unknown[] }).items;
    assert.deepEqual(last, viaJson(messages.slice(BATCH_MESSAGES)));
  });

  it('codecs other than JSON send one frame per message, as the ring does', async () => {
    const p = await pair<Uint8Array>({ aCodec: 'bytes' });
    try {
      const batch = Array.from({ length: 300 }, (_, i) => Uint8Array.of(i & 0xff, i >> 8));
      await p.a.sendMany(batch);
      for (const m of batch) assert.deepEqual(await p.b.receive({ timeout: 5000 }), m);
    } finally {
      await p.cleanup();
    }
  });

  it('a parent that does not read batch frames (no "batches" in the hand-off) is sent one frame per message; the hand-off is checked', async () => {
    const ring = createRing(uniqueName('pb'), { capacityBytes: 64 * 1024 });
    const back = createRing(uniqueName('pb'), { capacityBytes: 64 * 1024 });
    names.push(ring.name, back.name);
    const jsonCodec = resolveCodec('json');
    const ch = new ProcessChannel<unknown>(await ring.sender({ codec: batchingCodec(jsonCodec) }), await back.receiver({ codec: batchingCodec(jsonCodec) }), jsonCodec, { batches: false });
    const old = await ring.receiver({ codec: 'json' }); // reads single frames only, as ipckit before batch frames
    open.push(ch, old);
    ring.close();
    back.close();
    try {
      await ch.sendMany([{ a: 1 }, 'b', [3]]);
      assert.deepEqual([await old.receive({ timeout: 5000 }), await old.receive({ timeout: 5000 }), await old.receive({ timeout: 5000 })], [{ a: 1 }, 'b', [3]]);
    } finally {
      await ch.close();
      await old.close();
    }
    for (const batches of [undefined, true]) {
      const h = { v: 1 as const, transport: 'pipe' as const, readFd: 3, writeFd: 4, codec: 'json', ...(batches ? { batches } : {}) };
      assert.deepEqual(decodeHandoff(encodeHandoff(h)), h);
    }
    throwsWith(() => decodeHandoff(JSON.stringify({ v: 2, transport: 'pipe', readFd: 3, writeFd: 4, codec: 'json' })), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => decodeHandoff(JSON.stringify({ v: 1, transport: 'pipe', readFd: 3, writeFd: 4, codec: 'json', batches: 'yes' })), 'ERR_IPCKIT_INVALID_ARGUMENT');
  });
});
