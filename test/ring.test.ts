/** The ring channel in one process: the Channel promises (both memory paths), views, batches, limits. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { createRing, openRing, unlinkRing } from '../src/mechanisms/ring/ring.js';
import { openRingChannel } from '../src/mechanisms/ring/channel.js';
import { json } from '../src/core/codec.js';
import { createSharedMemory, openSharedMemory, unlinkSharedMemory } from '../src/mechanisms/shm/shm.js';
import { channelConformance } from './conformance/channel.js';
import { checkMessage, makeMessage, sizeFor } from './fixtures/checked-message.js';
import { checkFdLeaks, jsonLines, rejectsWith, runFixture, sleep, throwsWith, uniqueName, within } from './helpers.js';

// Cleanup first (before the fd check): endpoints a failed test left open, then the names.
const rings: string[] = [];
const endpoints: Array<{ close(): Promise<unknown> }> = [];
after(async () => {
  for (const e of endpoints) await e.close().catch(() => {});
  for (const n of rings) unlinkRing(n);
});
function ringName(tag = 'ring'): string {
  const n = uniqueName(tag);
  rings.push(n);
  return n;
}
function track<E extends { close(): Promise<unknown> }>(e: E): E {
  endpoints.push(e);
  return e;
}

checkFdLeaks();

for (const external of [true, false]) {
  channelConformance(`ring (${external ? 'SharedArrayBuffer' : 'copying path'})`, {
    senderCloseEndsReceiver: true,
    backpressure: true,
    async make(o) {
      const name = uniqueName('ring');
      const ring = createRing(name, { capacityBytes: 4 * 1024 * 1024, external, ...(o.maxMessageBytes ? { maxMessageBytes: o.maxMessageBytes } : {}) });
      const receiver = await ring.receiver({ codec: o.receiverCodec });
      const sender = await ring.sender({ codec: o.senderCodec });
      ring.close();
      return {
        sender,
        receiver,
        cleanup: async () => {
          await sender.close();
          await receiver.close();
          unlinkRing(name);
        },
      };
    },
  });
}

describe('ring: text codecs encode into a reused buffer (src/core/codec.ts, encodeBorrowed)', () => {
  // A send that waits for room must keep bytes of its own: one scratch buffer per thread is
  // rewritten by the next send. Many unawaited sends into a small ring, each different.
  for (const external of [true, false]) {
    for (const [label, codec, make] of [
      ['json', 'json', (i: number) => ({ i, text: `message ${i} `.repeat(1 + (i % 7)) })],
      ['utf8', 'utf8', (i: number) => `message ${i} é ✓ `.repeat(1 + (i % 5))],
      ['json<T>({ validate })', json<{ i: number; text: string }>({ validate: (v): v is { i: number; text: string } => typeof (v as { i?: unknown }).i === 'number' }), (i: number) => ({ i, text: 'x'.repeat(i % 300) })],
    ] as const) {
      it(`${label} (${external ? 'SharedArrayBuffer' : 'copying path'}): 300 sends, most waiting for room, arrive whole and in order`, async () => {
        using ring = createRing(ringName(), { capacityBytes: 4096, external });
        const tx = track(await ring.sender({ codec: codec as 'json' }));
        const rx = track(await ring.receiver({ codec: codec as 'json' }));
        const sent = Array.from({ length: 300 }, (_, i) => make(i));
        const sends = sent.map((m) => tx.send(m as never));
        const got: unknown[] = [];
        while (got.length < sent.length) got.push(await rx.receive({ timeout: 5000 }));
        await Promise.all(sends);
        assert.deepEqual(got, sent);
      });
    }
  }

  it('a text too long for the scratch buffer (a 40,000-character JSON string) is sent whole', async () => {
    using ring = createRing(ringName(), { capacityBytes: 256 * 1024 });
    const tx = track(await ring.sender({ codec: 'json' }));
    const rx = track(await ring.receiver({ codec: 'json' }));
    const big = { text: 'ü'.repeat(40_000) };
    await tx.send(big);
    await tx.send({ after: 1 });
    assert.deepEqual(await rx.receive({ timeout: 5000 }), big);
    assert.deepEqual(await rx.receive({ timeout: 5000 }), { after: 1 });
  });
});

describe('ring: fast paths and views', () => {
  it('trySend / tryReceive, sendMany / receiveMany, trySendMany / tryReceiveMany', async () => {
    using ring = createRing(ringName(), { capacityBytes: 4096 });
    const tx = track(await ring.sender());
    const rx = track(await ring.receiver());
    assert.equal(rx.tryReceive(), undefined);
    assert.equal(tx.trySend(Buffer.from('a')), true);
    assert.deepEqual(Buffer.from(rx.tryReceive()!), Buffer.from('a'));
    await tx.sendMany(['b', 'c', 'd'].map((s) => Buffer.from(s)));
    assert.deepEqual((await rx.receiveMany()).map((m) => Buffer.from(m).toString()), ['b', 'c', 'd']);
    // Fill the ring: trySend says false when full, nothing is lost.
    const big = new Uint8Array(1000);
    let n = 0;
    while (tx.trySend(big)) n++;
    assert.equal(n, 4, '4 records of 1008 bytes fit in 4096');
    assert.equal(tx.trySendMany([big, big], 0), 0);
    assert.equal(rx.tryReceiveMany(2).length, 2);
    assert.equal(tx.trySendMany([big, big, big], 0), 2);
    assert.equal(rx.tryReceiveMany().length, 4);
    assert.deepEqual(rx.tryReceiveMany(), []);
    // A message too large in the middle: the ones before it went out, and the error says how many.
    let error: (Error & { code?: string; details?: { sent?: number } }) | undefined;
    try {
      tx.trySendMany([Buffer.from('e'), Buffer.from('f'), new Uint8Array(4000), Buffer.from('g')]);
    } catch (e) {
      error = e as typeof error;
    }
    assert.equal(error?.code, 'ERR_IPCKIT_FRAME_TOO_LARGE');
    assert.equal(error?.details?.sent, 2);
    assert.deepEqual(rx.tryReceiveMany().map((m) => Buffer.from(m).toString()), ['e', 'f']);
    await tx.close();
    await rx.close();
  });

  it('receiveView is zero-copy and holds its space until release()', async () => {
    using ring = createRing(ringName(), { capacityBytes: 4096 });
    const tx = track(await ring.sender());
    const rx = track(await ring.receiver());
    tx.trySend(new Uint8Array(2000).fill(1));
    tx.trySend(new Uint8Array(2000).fill(2));
    const view = await rx.receiveView();
    assert.ok(view.bytes.buffer instanceof SharedArrayBuffer, 'the bytes are in the shared segment');
    assert.equal(view.bytes[0], 1);
    await rejectsWith(rx.receiveView(), 'ERR_IPCKIT_INVALID_ARGUMENT');
    // Other receives go on while the view is held; its space stays taken.
    assert.equal((await rx.receive())[0], 2);
    assert.equal(tx.trySend(new Uint8Array(2000)), false, 'the held view still occupies the ring');
    view.release();
    view.release();
    assert.equal(tx.trySend(new Uint8Array(2000).fill(3)), true);
    const v2 = rx.tryReceiveView()!;
    assert.equal(v2.bytes[1999], 3);
    v2.release();
    await tx.close();
    await rx.close();
  });

  it('records wrap with padding, in every alignment', async () => {
    using ring = createRing(ringName(), { capacityBytes: 4096, maxMessageBytes: 3000 });
    const tx = track(await ring.sender());
    const rx = track(await ring.receiver());
    for (let seq = 0; seq < 3000; seq++) {
      const m = makeMessage(1, seq, sizeFor(seq, 3000));
      if (!tx.trySend(m)) {
        for (const got of rx.tryReceiveMany()) checkMessage(got);
        assert.equal(tx.trySend(m), true);
      }
    }
    for (const got of rx.tryReceiveMany()) checkMessage(got);
    const info = ring.info();
    assert.equal(info.used, 0);
    assert.ok(info.tail > 3 * 4096, 'the cursors went round the ring several times');
    await tx.close();
    await rx.close();
  });

  it('one producer and one receiver at a time (ERR_IPCKIT_LIMIT), and a closed one can be replaced', async () => {
    using ring = createRing(ringName());
    const tx = track(await ring.sender());
    const rx = track(await ring.receiver());
    await rejectsWith(ring.sender(), 'ERR_IPCKIT_LIMIT');
    await rejectsWith(ring.receiver(), 'ERR_IPCKIT_LIMIT');
    await tx.send(Buffer.from('one'));
    await tx.close();
    await rx.close();
    const tx2 = track(await ring.sender());
    const rx2 = track(await ring.receiver());
    assert.equal(Buffer.from(await rx2.receive()).toString(), 'one', 'the new receiver starts at the first unread message');
    await tx2.close();
    await rx2.close();
  });

  it('openRing checks the layout: not an ipckit object is ERR_IPCKIT_WRONG_KIND, a never-written or corrupt header ERR_IPCKIT_CORRUPT', async () => {
    const plain = uniqueName('plain'); // not a ring: removed as shared memory, below
    using seg = createSharedMemory(plain, 8192);
    after(() => unlinkSharedMemory(plain));
    await rejectsWith(openRing(plain, { timeout: 100 }), 'ERR_IPCKIT_CORRUPT'); // zeros: never initialized
    seg.store(0, 0x12345678);
    await rejectsWith(openRing(plain), 'ERR_IPCKIT_WRONG_KIND'); // a foreign object
    const n = ringName();
    using ring = createRing(n, { capacityBytes: 4096 });
    using raw = await openSharedMemory(n);
    raw.store(80, 4097); // capacity (docs/ring.md): not a power of two
    await rejectsWith(openRing(n), 'ERR_IPCKIT_CORRUPT');
    raw.store(80, 4096);
    raw.store(1, 99); // version
    await rejectsWith(openRing(n), 'ERR_IPCKIT_CORRUPT');
    raw.store(1, 2);
    (await openRing(n)).close();
    void ring;
  });

  it('openRingChannel: a duplex Channel over two rings', async () => {
    const a = ringName('a');
    const b = ringName('b');
    createRing(a).close();
    createRing(b).close();
    const left = track(await openRingChannel({ send: a, receive: b }, { codec: 'json' }));
    const right = track(await openRingChannel({ send: b, receive: a }, { codec: 'json' }));
    await left.send({ ping: 1 });
    assert.deepEqual(await right.receive(), { ping: 1 });
    await right.send({ pong: 1 });
    assert.deepEqual(await left.receive(), { pong: 1 });
    await left.close();
    await rejectsWith(right.receive({ timeout: 5000 }), 'ERR_IPCKIT_CLOSED');
    await right.close();
  });

  it('bad options are refused synchronously', () => {
    throwsWith(() => createRing(uniqueName(), { capacityBytes: 5000 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createRing(uniqueName(), { capacityBytes: 1024 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createRing(uniqueName(), { capacityBytes: 4096, maxMessageBytes: 4096 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createRing(uniqueName(), { producers: 'some' as 'many' }), 'ERR_IPCKIT_INVALID_ARGUMENT');
  });

  it('a receive waiting for data keeps the event loop free', async () => {
    using ring = createRing(ringName());
    const tx = track(await ring.sender());
    const rx = track(await ring.receiver({ spinMicros: 0 }));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const p = rx.receive();
    await sleep(100);
    await tx.send(Buffer.from('late'));
    assert.equal(Buffer.from(await within(p, 5000)).toString(), 'late');
    clearInterval(timer);
    assert.ok(ticks >= 3, `${ticks} ticks while waiting`); // the loop ran (a loaded machine delays timers)
    await tx.close();
    await rx.close();
  });

  it('receiveSync in a worker thread, the producer in the main thread', async () => {
    const n = ringName();
    using ring = createRing(n);
    const tx = track(await ring.sender());
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       import(workerData.module).then(async ({ openRingSync }) => {
         const ring = openRingSync(workerData.name);
         const rx = ring.receiverSync();
         ring.close();
         parentPort.postMessage('ready');
         let sum = 0, n = 0;
         for (;;) {
           try { const m = rx.receiveSync(10000); sum += m[0]; n++; }
           catch (e) { parentPort.postMessage({ n, sum, end: e.code }); break; }
         }
         await rx.close();
       });`,
      { eval: true, workerData: { name: n, module: new URL('../src/mechanisms/ring/ring.js', import.meta.url).href } },
    );
    const messages: any[] = [];
    // Listened for at once: an exit can come with the last message, before an await on it returns.
    const exited = new Promise((r) => worker.once('exit', r));
    const done = new Promise<void>((resolve, reject) => {
      worker.on('message', (m) => {
        messages.push(m);
        if (m !== 'ready') resolve();
      });
      worker.once('error', reject);
    });
    while (messages.length === 0) await sleep(5);
    for (let i = 0; i < 1000; i++) await tx.send(new Uint8Array([i & 0xff]));
    await tx.close();
    await within(done, 15_000);
    // Let it close its handle and end by itself (a terminated worker's fds would stay open).
    await within(exited, 10_000, 'the worker exits');
    let sum = 0;
    for (let i = 0; i < 1000; i++) sum += i & 0xff;
    assert.deepEqual(messages[1], { n: 1000, sum, end: 'ERR_IPCKIT_CLOSED' });
  });
});

describe('ring: endpoints in a worker that is terminated', () => {
  /** Starts a worker that runs `body` with `ring` (openRing(name)) in scope, and waits for its 'ready'. */
  async function workerWith(name: string, body: string): Promise<Worker> {
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       import(workerData.ring).then(async ({ openRing }) => {
         const { makeMessage } = await import(workerData.checked);
         const ring = await openRing(workerData.name);
         ${body}
       });`,
      { eval: true, workerData: { name, ring: new URL('../src/mechanisms/ring/ring.js', import.meta.url).href, checked: new URL('./fixtures/checked-message.js', import.meta.url).href } },
    );
    await within(new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    }), 10_000, 'the worker is ready');
    return worker;
  }

  it('a terminated receiver frees its place: a new one takes over and reads on; a send waiting on it ends', async () => {
    const n = ringName();
    using ring = createRing(n, { capacityBytes: 4096 });
    const tx = track(await ring.sender());
    const worker = await workerWith(n, `const rx = await ring.receiver(); ring.close(); parentPort.postMessage('ready'); setInterval(() => {}, 1000);`);
    while (tx.trySend(new Uint8Array(500)));
    const waiting = tx.send(new Uint8Array(500), { timeout: 5000 });
    await worker.terminate();
    await rejectsWith(waiting, 'ERR_IPCKIT_PEER_GONE');
    const rx = track(await ring.receiver());
    assert.equal(rx.tryReceiveMany().length, 8, 'the messages the terminated receiver left');
    await tx.close();
    await rx.close();
  });

  it('a terminated producer (many producers, sending flat out) ends receives with PEER_GONE and never wedges the ring', async () => {
    for (let round = 0; round < 3; round++) {
      const n = ringName();
      using ring = createRing(n, { capacityBytes: 64 * 1024, producers: 'many' });
      const rx = track(await ring.receiver({ spinMicros: 0 }));
      const worker = await workerWith(
        n,
        `const tx = await ring.sender(); ring.close(); parentPort.postMessage('ready');
         for (let seq = 0; ; ) if (tx.trySend(makeMessage(1, seq, 4000 + (seq % 64)))) seq++;`,
      );
      let got = 0;
      const drained = (async () => {
        for (;;) {
          checkMessage(await rx.receive({ timeout: 5000 }));
          got++;
        }
      })();
      await sleep(100 + 50 * round);
      await worker.terminate();
      await rejectsWith(within(drained, 10_000, 'the receiver sees the producer gone'), 'ERR_IPCKIT_PEER_GONE');
      assert.ok(got > 0);
      // Neither its claim lock nor a claim it left holds up the next producer.
      const tx = track(await ring.sender());
      await within(tx.send(makeMessage(2, 0, 100)), 5000, 'a send after the terminated producer');
      assert.deepEqual(checkMessage(await within(rx.receive(), 5000)), { producer: 2, seq: 0 });
      await tx.close();
      await rx.close();
    }
  });
});

describe('ring: across processes', () => {
  it('a producer process, checked messages of many sizes, in order', async () => {
    const n = ringName();
    using ring = createRing(n, { capacityBytes: 64 * 1024, maxMessageBytes: 16 * 1024 });
    const rx = track(await ring.receiver());
    const count = 5000;
    const producer = runFixture('ring-peer', ['produce', n, '7', String(count), '16384']);
    for (let seq = 0; seq < count; seq++) {
      const got = checkMessage(await within(rx.receive(), 20_000));
      assert.deepEqual(got, { producer: 7, seq });
    }
    await rejectsWith(rx.receive({ timeout: 10_000 }), 'ERR_IPCKIT_CLOSED');
    assert.equal((await producer.done).code, 0);
    await rx.close();
  });

  it("many producers: four processes, each one's order kept, nothing lost", async () => {
    const n = ringName();
    using ring = createRing(n, { capacityBytes: 32 * 1024, producers: 'many', maxProducers: 8, maxMessageBytes: 8192 });
    const rx = track(await ring.receiver());
    // The ring ends when its last producer leaves: hold one open so that a producer that
    // finishes before another has attached (a loaded machine) does not end it early.
    const hold = await ring.sender();
    const count = 2000;
    const producers = [1, 2, 3, 4].map((id) => runFixture('ring-peer', ['produce', n, String(id), String(count), '8192']));
    const next: Record<number, number> = {};
    for (let i = 0; i < 4 * count; i++) {
      const { producer, seq } = checkMessage(await within(rx.receive(), 20_000));
      assert.equal(seq, next[producer] ?? 0, `producer ${producer} out of order`);
      next[producer] = seq + 1;
    }
    assert.deepEqual(next, { 1: count, 2: count, 3: count, 4: count });
    for (const p of producers) assert.equal((await p.done).code, 0);
    await hold.close();
    await rejectsWith(rx.receive({ timeout: 10_000 }), 'ERR_IPCKIT_CLOSED');
    await rx.close();
  });

  it('many producers: one that sent nothing while 4 GiB went through still sees a full ring as full (positions wrap at 2^32)', async () => {
    const n = ringName();
    const capacity = 1 << 24;
    using ring = createRing(n, { capacityBytes: capacity, producers: 'many', maxMessageBytes: capacity - 8 });
    const rx = track(await ring.receiver({ spinMicros: 0 }));
    const idle = runFixture('ring-peer', ['idle', n]);
    const lines = jsonLines(idle);
    await lines.next();
    const tx = track(await ring.sender({ spinMicros: 0 }));
    // Records of half the ring, passed through until the head is half a ring short of 2^32 ...
    const big = new Uint8Array(capacity / 2 - 8);
    for (let i = 0; i < 2 ** 32 / (capacity / 2) - 1; i++) {
      assert.ok(tx.trySend(big));
      rx.tryReceiveView()!.release();
    }
    // ... then the ring is filled: the tail is past 2^32, a small number again.
    for (const mark of [1, 2]) {
      big[0] = mark;
      assert.ok(tx.trySend(big));
    }
    assert.equal(ring.info().used, capacity);
    idle.child.stdin!.write('go\n');
    assert.deepEqual(await lines.next(), { sent: false }, 'the idle producer finds the ring full');
    assert.deepEqual([rx.tryReceive()?.[0], rx.tryReceive()?.[0]], [1, 2], 'both queued messages arrive, intact');
    assert.equal((await idle.done).code, 0);
    await tx.close();
    await rx.close();
  });

  it('spinMicros: Infinity (never sleeps) still sees a dead producer and a dead receiver', async () => {
    const n = ringName();
    using ring = createRing(n, { capacityBytes: 4096 });
    const rx = track(await ring.receiver({ spinMicros: Infinity }));
    const producer = runFixture('ring-peer', ['idle', n]);
    await jsonLines(producer).next();
    // The outcome is awaited from the start: the receiver may see the death before this process reaps the child.
    const receiving = rejectsWith(rx.receive({ timeout: 5000 }), 'ERR_IPCKIT_PEER_GONE');
    await sleep(20);
    producer.child.kill('SIGKILL');
    await producer.done;
    await receiving;
    await rx.close();

    const n2 = ringName();
    using ring2 = createRing(n2, { capacityBytes: 4096 });
    const tx = track(await ring2.sender({ spinMicros: Infinity }));
    const holder = runFixture('ring-peer', ['hold', n2]);
    await jsonLines(holder).next();
    while (tx.trySend(new Uint8Array(500)));
    const sending = rejectsWith(tx.send(new Uint8Array(500), { timeout: 5000 }), 'ERR_IPCKIT_PEER_GONE');
    await sleep(20);
    holder.child.kill('SIGKILL');
    await holder.done;
    await sending;
    await tx.close();
  });

  it('both ways of sleeping work: io_uring futex waits, and waiter threads (IPCKIT_NO_URING=1)', async () => {
    for (const env of [{}, { IPCKIT_NO_URING: '1' }]) {
      const n = ringName();
      using ring = createRing(n);
      const tx = track(await ring.sender());
      const consumer = runFixture('ring-peer', ['consume', n, '60', '10000', '0'], { env: { ...process.env, ...env } });
      const lines = jsonLines(consumer);
      await lines.next();
      for (let seq = 0; seq < 60; seq++) {
        await tx.send(makeMessage(3, seq, 100));
        if (seq % 10 === 9) await sleep(20); // the receiver falls asleep, and is woken
      }
      const last = lines.all.length ? await within((async () => {
        for (;;) {
          const l = await lines.next();
          if ('got' in l) return l;
        }
      })(), 20_000) : undefined;
      assert.deepEqual(last?.perProducer, { 3: 60 }, JSON.stringify(env));
      assert.equal((await consumer.done).code, 0);
      await tx.close();
    }
  });

  it('a producer killed while the receiver waits: ERR_IPCKIT_PEER_GONE within about 100 ms', async () => {
    const n = ringName();
    using ring = createRing(n);
    const rx = track(await ring.receiver());
    const producer = runFixture('ring-peer', ['produce', n, '1', '1000000', '64', '50']);
    const lines = jsonLines(producer);
    await lines.next();
    checkMessage(await within(rx.receive(), 10_000));
    const drained = (async () => {
      for (;;) checkMessage(await rx.receive());
    })();
    await sleep(30);
    const killed = Date.now();
    producer.child.kill('SIGKILL');
    await producer.done;
    const exited = Date.now();
    await rejectsWith(within(drained, 5000), 'ERR_IPCKIT_PEER_GONE');
    const latency = Date.now() - exited;
    console.log(`# dead producer seen ${latency} ms after its exit (${Date.now() - killed} ms after the kill)`);
    assert.ok(latency < 1000, `took ${latency} ms`);
    await rx.close();
  });

  it('a send waiting for room on a ring whose receiver died rejects with ERR_IPCKIT_PEER_GONE', async () => {
    const n = ringName();
    using ring = createRing(n, { capacityBytes: 4096 });
    const tx = track(await ring.sender());
    const holder = runFixture('ring-peer', ['hold', n]);
    await jsonLines(holder).next();
    while (tx.trySend(new Uint8Array(500)));
    const waiting = tx.send(new Uint8Array(500));
    await sleep(20);
    holder.child.kill('SIGKILL');
    await holder.done;
    const t0 = Date.now();
    await rejectsWith(within(waiting, 5000), 'ERR_IPCKIT_PEER_GONE');
    console.log(`# dead receiver seen ${Date.now() - t0} ms after its exit`);
    // A new receiver takes over the dead one's place and reads what was sent.
    const rx = track(await ring.receiver());
    assert.equal(rx.tryReceiveMany().length, 8, 'the eight 512-byte records that filled the ring');
    await tx.send(new Uint8Array(500));
    await tx.close();
    await rx.close();
  });
});
