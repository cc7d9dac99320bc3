/** The work queue: JoinableQueue semantics, backpressure, at-least-once, across processes. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { createSharedMemory, unlinkSharedMemory } from '../src/mechanisms/shm/shm.js';
import { createWorkQueue, openWorkQueue, unlinkWorkQueue, type Job, type WorkQueue } from '../src/mechanisms/workqueue/workqueue.js';
import { checkFdLeaks, jsonLines, rejectsWith, runFixture, sleep, throwsWith, uniqueName, within } from './helpers.js';

const names: string[] = [];
const handles: Array<WorkQueue<unknown>> = [];
after(async () => {
  for (const h of handles) await h.close();
  for (const n of names) unlinkWorkQueue(n);
});
checkFdLeaks();

function queue(options: Parameters<typeof createWorkQueue>[1] = {}): { name: string; q: WorkQueue<unknown> } {
  const name = uniqueName('wq');
  names.push(name);
  const q = createWorkQueue(name, { codec: 'json', ...options }) as WorkQueue<unknown>;
  handles.push(q);
  return { name, q };
}
async function open(name: string): Promise<WorkQueue<unknown>> {
  const h = (await openWorkQueue(name, { codec: 'json' })) as WorkQueue<unknown>;
  handles.push(h);
  return h;
}

describe('work queue: the json codec encodes into a reused buffer (src/core/codec.ts)', () => {
  it('300 puts into 4 slots, most waiting for room, are taken whole and in order', async () => {
    const { name, q } = queue({ capacityJobs: 4 });
    const c = await open(name);
    const sent = Array.from({ length: 300 }, (_, i) => ({ i, text: `job ${i} `.repeat(1 + (i % 9)) }));
    const puts = sent.map((m) => q.put(m));
    const got: unknown[] = [];
    while (got.length < sent.length) {
      const job = await c.take({ timeout: 5000 });
      got.push(job.data);
      c.ack(job);
    }
    await Promise.all(puts);
    assert.deepEqual(got, sent);
  });
});

describe('work queue: semantics in one process', () => {
  it('put, take, ack and join, in FIFO order with one producer and one consumer', async () => {
    const { name, q } = queue({ capacityJobs: 64 });
    const c = await open(name);
    const ids: number[] = [];
    for (let i = 0; i < 50; i++) ids.push(await q.put({ i }));
    assert.equal(new Set(ids).size, 50, 'ids are unique');
    let joined = false;
    const joining = q.join().then(() => (joined = true));
    for (let i = 0; i < 50; i++) {
      const job = await c.take();
      assert.deepEqual(job.data, { i });
      assert.equal(job.id, ids[i]);
      assert.equal(job.deliveries, 1);
      assert.equal(job.redelivered, false);
      await sleep(0);
      assert.equal(joined, false, 'join waits for the ack of every item');
      c.ack(job);
    }
    await within(joining, 5000);
    assert.equal(await q.join(), undefined);
    const s = q.info();
    assert.deepEqual({ ready: s.ready, inFlight: s.inFlight, free: s.free, put: s.put, done: s.done }, { ready: 0, inFlight: 0, free: 64, put: 50, done: 50 });
  });

  it('ack(): no argument marks the oldest job; a job done twice, or of another handle, is refused', async () => {
    const { name, q } = queue();
    const c = await open(name);
    await q.putMany([1, 2, 3]);
    const [a, b] = await c.takeMany(2);
    assert.equal(c.inFlight, 2);
    c.ack();
    assert.equal(c.inFlight, 1);
    throwsWith(() => c.ack(a!), 'ERR_IPCKIT_INVALID_ARGUMENT');
    const third = await q.take();
    throwsWith(() => c.ack(third), 'ERR_IPCKIT_INVALID_ARGUMENT');
    c.ack(b!);
    q.ack(third);
    throwsWith(() => q.ack(), 'ERR_IPCKIT_INVALID_ARGUMENT');
    await within(q.join(), 5000);
  });

  it('bounded: tryPut says full, put waits for a slot (backpressure), a timed-out put put nothing', async () => {
    const { name, q } = queue({ capacityJobs: 4, maxMessageBytes: 64 });
    const c = await open(name);
    for (let i = 0; i < 4; i++) assert.notEqual(q.tryPut({ i }), undefined);
    assert.equal(q.tryPut({ i: 4 }), undefined);
    await rejectsWith(q.put({ i: 'timed out' }, { timeout: 50 }), 'ERR_IPCKIT_TIMEOUT');
    const ac = new AbortController();
    const aborted = q.put({ i: 'aborted' }, { signal: ac.signal });
    ac.abort();
    await rejectsWith(aborted, 'ERR_IPCKIT_ABORTED');
    const waiting = q.put({ i: 4 });
    // A taken job still holds its slot: the put waits for ack, not for take.
    const first = await c.take();
    await sleep(30);
    assert.equal(q.info().ready, 3);
    c.ack(first);
    await within(waiting, 5000);
    const rest: unknown[] = [];
    for (let j = c.tryTake(); j; j = c.tryTake()) {
      rest.push(j.data);
      c.ack(j);
    }
    assert.deepEqual(rest, [{ i: 1 }, { i: 2 }, { i: 3 }, { i: 4 }], 'nothing of the timed-out or aborted puts');
  });

  it('a message above maxMessageBytes is refused synchronously; bad options too', () => {
    const { q } = queue({ maxMessageBytes: 10 });
    throwsWith(() => void q.put('x'.repeat(20)), 'ERR_IPCKIT_FRAME_TOO_LARGE');
    throwsWith(() => createWorkQueue(uniqueName(), { capacityJobs: 0 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createWorkQueue(uniqueName(), { maxParticipants: 5000 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
  });

  it('an item that fails to decode is reported (ERR_IPCKIT_BAD_FRAME), also when getMany meets it after other items', async () => {
    const name = uniqueName('wq');
    names.push(name);
    const q = createWorkQueue(name, { capacityJobs: 8 }) as WorkQueue<unknown>; // raw bytes in
    handles.push(q);
    const c = await open(name); // JSON out
    await q.putMany([Buffer.from('{"a":1}'), Buffer.from('not json'), Buffer.from('{"b":2}')]);
    const batch = await c.takeMany(10);
    assert.deepEqual(batch.map((j) => j.data), [{ a: 1 }], 'the batch ends before the bad item');
    c.ack(batch);
    await rejectsWith(c.take({ timeout: 1000 }), 'ERR_IPCKIT_BAD_FRAME');
    const last = await c.take({ timeout: 1000 });
    assert.deepEqual(last.data, { b: 2 });
    c.ack(last);
    await within(q.join(), 2000, 'join: the bad item counts as done');
    assert.equal(q.info().done, 3);
  });

  it('a closed handle answers ERR_IPCKIT_CLOSED, on both memory paths (isShutdown too)', async () => {
    for (const external of [true, false]) {
      const { q } = queue({ capacityJobs: 4, external });
      await q.close();
      throwsWith(() => q.isShutdown, 'ERR_IPCKIT_CLOSED');
      throwsWith(() => q.info(), 'ERR_IPCKIT_CLOSED');
      await rejectsWith(q.stats(), 'ERR_IPCKIT_CLOSED');
      throwsWith(() => q.tryTake(), 'ERR_IPCKIT_CLOSED');
      await rejectsWith(q.put(1), 'ERR_IPCKIT_CLOSED');
    }
  });

  it('take times out and aborts, takes nothing; close() rejects pending waits', async () => {
    const { name, q } = queue();
    await rejectsWith(q.take({ timeout: 50 }), 'ERR_IPCKIT_TIMEOUT');
    await rejectsWith(q.take({ signal: AbortSignal.abort() }), 'ERR_IPCKIT_ABORTED');
    await rejectsWith(q.join({ timeout: 1 }).then(() => Promise.reject(Object.assign(new Error('x'), { code: 'ERR_IPCKIT_TIMEOUT' }))), 'ERR_IPCKIT_TIMEOUT');
    const c = await open(name);
    const pending = c.take();
    await sleep(10);
    await c.close();
    await rejectsWith(pending, 'ERR_IPCKIT_CLOSED');
    await rejectsWith(c.take(), 'ERR_IPCKIT_CLOSED');
  });

  it('closing with jobs in hand gives them back: delivered again, same id, deliveries 2', async () => {
    const { name, q } = queue();
    const id = await q.put({ task: 'x' });
    const c1 = await open(name);
    const first = await c1.take();
    await c1.close();
    const c2 = await open(name);
    const again = await c2.take({ timeout: 5000 });
    assert.equal(again.id, id);
    assert.equal(first.id, id);
    assert.equal(again.deliveries, 2);
    assert.equal(again.redelivered, true);
    assert.equal(q.info().redelivered, 1);
    c2.ack(again);
    await within(q.join(), 5000);
  });

  it('shutdown: puts refuse, gets drain what is left, then async iteration ends', async () => {
    const { name, q } = queue();
    const c = await open(name);
    await q.putMany([1, 2, 3]);
    q.shutdown();
    await rejectsWith(q.put(4), 'ERR_IPCKIT_CLOSED');
    const got: unknown[] = [];
    for await (const job of c) {
      got.push(job.data);
      c.ack(job);
    }
    assert.deepEqual(got, [1, 2, 3]);
    assert.equal(q.isShutdown, true);
  });

  it('not a work queue: ERR_IPCKIT_WRONG_KIND; a header never written: ERR_IPCKIT_CORRUPT', async () => {
    const n = uniqueName('notwq'); // not a work queue: removed as shared memory
    using seg = createSharedMemory(n, 8192);
    after(() => unlinkSharedMemory(n));
    await rejectsWith(openWorkQueue(n, { timeout: 100 }), 'ERR_IPCKIT_CORRUPT');
    seg.store(0, 42);
    await rejectsWith(openWorkQueue(n), 'ERR_IPCKIT_WRONG_KIND');
  });

  it('a consumer in a worker that is terminated with a job in hand: the job is delivered again', async () => {
    const { name, q } = queue({ capacityJobs: 4 });
    const c = await open(name);
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       import(workerData.module).then(async ({ openWorkQueue }) => {
         const q = await openWorkQueue(workerData.name, { codec: 'json' });
         const job = await q.take();
         parentPort.postMessage(job.id);
       });`,
      { eval: true, workerData: { name, module: new URL('../src/mechanisms/workqueue/workqueue.js', import.meta.url).href } },
    );
    const id = await q.put({ job: 1 });
    const took = await within(new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    }), 10_000, 'the worker takes the job');
    assert.equal(took, id);
    await worker.terminate();
    const again = await c.take({ timeout: 5000 });
    assert.deepEqual({ id: again.id, deliveries: again.deliveries, data: again.data }, { id, deliveries: 2, data: { job: 1 } });
    c.ack(again);
    await within(q.join(), 5000);
  });

  it('getSync in a worker thread', async () => {
    const { name, q } = queue();
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       import(workerData.module).then(async ({ openWorkQueueSync }) => {
         const q = openWorkQueueSync(workerData.name, { codec: 'json' });
         const seen = [];
         for (;;) {
           try { const j = q.takeSync(10000); seen.push(j.data); q.ack(j); }
           catch (e) { parentPort.postMessage({ seen, end: e.code }); break; }
         }
         await q.close();
       });`,
      { eval: true, workerData: { name, module: new URL('../src/mechanisms/workqueue/workqueue.js', import.meta.url).href } },
    );
    // Listened for at once: an exit can come with the last message, before an await on it returns.
    const exited = new Promise((r) => worker.once('exit', r));
    const result = new Promise<any>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    for (let i = 0; i < 100; i++) await q.put(i);
    await within(q.join(), 10_000);
    q.shutdown();
    const r = await within(result, 10_000);
    // Let it close its handle and end by itself (a terminated worker's fds would stay open).
    await within(exited, 10_000, 'the worker exits');
    assert.deepEqual(r, { seen: Array.from({ length: 100 }, (_, i) => i), end: 'ERR_IPCKIT_CLOSED' });
  });
});

/** Starts consumers and producers as processes; returns what they printed once they end. */
function peer(args: string[], fault?: string): ReturnType<typeof jsonLines> & { done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>; kill(): void } {
  const r = runFixture('workqueue-peer', args, { timeoutMs: 60_000, env: { ...process.env, ...(fault ? { IPCKIT_FAULT: fault } : {}) } });
  const lines = jsonLines(r);
  return Object.assign(lines, { done: r.done, kill: () => r.child.kill('SIGKILL') });
}

describe('work queue: across processes', () => {
  it('one producer and three consumer processes: every item done exactly once', async () => {
    const { name, q } = queue({ capacityJobs: 128 });
    const consumers = [0, 1, 2].map(() => peer(['consume', name]));
    for (const c of consumers) await c.next();
    const producer = peer(['produce', name, '1', '3000']);
    assert.equal((await producer.done).code, 0);
    await within(q.join(), 30_000, 'join');
    q.shutdown();
    for (const c of consumers) assert.equal((await c.done).code, 0);
    const done = consumers.flatMap((c) => c.all.filter((l) => 'done' in l).map((l) => l.done as number));
    const putIds = producer.all.filter((l) => 'put' in l).map((l) => l.id as number);
    assert.equal(putIds.length, 3000);
    assert.deepEqual([...done].sort((a, b) => a - b), [...putIds].sort((a, b) => a - b));
    assert.ok(consumers.every((c) => c.all.some((l) => 'done' in l)), 'every consumer got work');
  });

  for (const point of ['after-take', 'before-done']) {
    it(`a consumer SIGKILLed ${point}: its job is delivered again with the same id, nothing lost`, async () => {
      const { name, q } = queue({ capacityJobs: 32 });
      const victim = peer(['consume', name, '1'], `workqueue:${point}:5`);
      await victim.next();
      for (let i = 0; i < 20; i++) await q.put({ p: 1, n: i });
      const v = await victim.done;
      assert.equal(v.signal, 'SIGKILL');
      const helper = peer(['consume', name]);
      await within(q.join(), 10_000, 'join after the crash');
      q.shutdown();
      assert.equal((await helper.done).code, 0);
      const took = victim.all.filter((l) => 'took' in l);
      const done = new Set(victim.all.filter((l) => 'done' in l).map((l) => l.done as number));
      const lostInHand = victim.all.filter((l) => 'took' in l && !done.has(l.took)).map((l) => l.took as number);
      const helperTook = helper.all.filter((l) => 'took' in l);
      const again = helperTook.filter((l) => l.deliveries === 2).map((l) => l.took as number);
      if (point === 'before-done') {
        assert.equal(took.length, 5);
        assert.deepEqual(again, lostInHand, 'exactly the job the dead consumer had in hand came back, with its id');
      } else {
        // It died inside get(), before it could print the job: one job came back, one it never finished.
        assert.equal(again.length, 1);
        assert.ok(!done.has(again[0]!));
      }
      const all = new Set([...done, ...helper.all.filter((l) => 'done' in l).map((l) => l.done as number)]);
      assert.equal(all.size, 20, 'every item was done');
      assert.ok(q.info().redelivered >= 1);
    });
  }

  it('a consumer SIGKILLed after-release (its ack freed the slot, not yet counted): the job is neither lost nor delivered again, join() resolves, done is one short (docs/workqueue.md, Limits)', async () => {
    const { name, q } = queue({ capacityJobs: 32 });
    const victim = peer(['consume', name, '1'], 'workqueue:after-release:3');
    await victim.next();
    for (let i = 0; i < 5; i++) await q.put({ p: 1, n: i });
    assert.equal((await victim.done).signal, 'SIGKILL');
    const helper = peer(['consume', name]);
    await within(q.join(), 10_000, 'join after the crash');
    q.shutdown();
    assert.equal((await helper.done).code, 0);
    const took = [...victim.all, ...helper.all].filter((l) => 'took' in l);
    // Each of the 5 taken once: the third, whose ack died after freeing its slot, not again.
    assert.equal(victim.all.filter((l) => 'took' in l).length, 3);
    assert.deepEqual(took.map((l) => l.n as number).sort((a, b) => a - b), [0, 1, 2, 3, 4]);
    assert.ok(took.every((l) => l.deliveries === 1), JSON.stringify(took));
    const s = q.info();
    assert.deepEqual({ put: s.put, done: s.done, redelivered: s.redelivered, ready: s.ready, inFlight: s.inFlight }, { put: 5, done: 4, redelivered: 0, ready: 0, inFlight: 0 });
  });

  for (const point of ['before-claim', 'after-claim', 'mid-copy', 'before-publish', 'before-wake']) {
    it(`a producer SIGKILLed ${point}: every resolved put is delivered, no slot is lost`, async () => {
      const { name, q } = queue({ capacityJobs: 16 });
      const victim = peer(['produce', name, '9', '100'], `workqueue:${point}:10`);
      assert.equal((await victim.done).signal, 'SIGKILL');
      const resolved = victim.all.filter((l) => 'put' in l).map((l) => l.put as number);
      assert.deepEqual(resolved, Array.from({ length: 9 }, (_, i) => i));
      const got: number[] = [];
      for (let j = q.tryTake(); j; j = q.tryTake()) {
        got.push((j.data as { n: number }).n);
        q.ack(j);
      }
      // The put in progress reached the queue only if it was published (before-wake).
      assert.deepEqual(got.sort((a, b) => a - b), point === 'before-wake' ? [...resolved, 9] : resolved);
      // A slot the dead producer was writing is free again (after the next recovery): all 16 fit.
      await sleep(120);
      let placed = 0;
      for (let t = 0; t < 50 && placed < 16; t++) {
        if (q.tryPut({ refill: placed }) !== undefined) placed++;
        else await sleep(20);
      }
      assert.equal(placed, 16);
      assert.equal(q.info().writing, 0);
    });
  }
});
