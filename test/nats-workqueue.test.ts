/**
 * The work queue over NATS JetStream (src/mechanisms/nats/workqueue.ts) against real
 * nats-server processes with JetStream in a scratch folder: the WorkQueue contract, the
 * dead-letter subject, a bounded queue, the server restarting, consumers SIGKILLed mid-job.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createInterface } from 'node:readline';
import { openNatsWorkQueue, type NatsWorkQueue } from '../src/mechanisms/nats/workqueue.js';
import { rejectsWith, runFixture, sleep, throwsWith, within, type Run } from './helpers.js';
import { startNatsServer, type TestNatsServer } from './nats-server.js';

let server: TestNatsServer;
before(async () => {
  server = await startNatsServer();
});
after(async () => {
  await server?.stop();
});

let queueCounter = 0;
const newQueue = (tag = 'q'): string => `ipckit-test-${process.pid}-${tag}-${++queueCounter}`;

const open = <C extends 'json' | 'utf8'>(name: string, options: Parameters<typeof openNatsWorkQueue<C>>[1] = {}, s: TestNatsServer = server): NatsWorkQueue<C extends 'json' ? unknown : string> =>
  openNatsWorkQueue<C>(`${s.url}/${name}`, { codec: 'json' as C, reconnectWait: 50, reconnectMaxWait: 500, ...options }) as never;

describe('nats work queue: the contract', () => {
  it('bad arguments throw synchronously', async () => {
    throwsWith(() => openNatsWorkQueue(server.url), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => openNatsWorkQueue(`${server.url}/bad.name`), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => openNatsWorkQueue(`${server.url}/ok`, { maxDeliveries: 0 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => openNatsWorkQueue(`${server.url}/ok`, { ackWait: -1 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    const q = open(newQueue());
    try {
      throwsWith(() => void q.put(undefined), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => void q.takeMany(0), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => q.ack({ id: 12345, data: 1, deliveries: 1, redelivered: false }), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => void q.take({ timeout: -5 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    } finally {
      await q.close();
    }
  });

  it("openWorkQueue('nats://…/NAME') opens this queue: the same code as for a shared-memory queue, another address", async () => {
    const { openWorkQueue } = await import('../src/index.js');
    throwsWith(() => void openWorkQueue(`${server.url}/bad.name` as `nats://${string}`), 'ERR_IPCKIT_INVALID_ARGUMENT');
    const q = await openWorkQueue(`${server.url}/dispatch-${process.pid}` as `nats://${string}`, { codec: 'json', reconnectWait: 50 });
    try {
      const id = await q.put({ n: 1 });
      const job = await q.take({ timeout: 10_000 });
      assert.deepEqual([job.id, job.data], [id, { n: 1 }]);
      q.ack(job);
      // The server counts an acknowledgement when it has it: look until it does.
      const deadline = Date.now() + 10_000;
      while ((await q.stats()).done < 1 && Date.now() < deadline) await sleep(50);
      assert.equal((await q.stats()).done, 1);
    } finally {
      await q.close();
    }
  });

  it('put, take, ack: ids in order, every job once, stats and join', async () => {
    const name = newQueue();
    const producer = open(name);
    const consumer = open(name);
    try {
      const first = await producer.put({ n: 0 });
      const ids = await producer.putMany(Array.from({ length: 99 }, (_, i) => ({ n: i + 1 })));
      assert.deepEqual([first, ...ids], Array.from({ length: 100 }, (_, i) => first + i), 'ids are the order of the puts');
      let s = await producer.stats();
      assert.equal(s.put, 100);
      assert.equal(s.ready, 100);
      assert.equal(s.capacity, undefined);
      const joined = producer.join();
      const seen: number[] = [];
      while (seen.length < 100) {
        const jobs = await within(consumer.takeMany(30), 10_000);
        for (const j of jobs) {
          assert.equal(j.deliveries, 1);
          assert.equal(j.redelivered, false);
          seen.push((j.data as { n: number }).n);
        }
        consumer.ack(jobs);
      }
      assert.deepEqual(seen, Array.from({ length: 100 }, (_, i) => i));
      await consumer.flushAcks();
      await within(joined, 10_000, 'join');
      s = await producer.stats();
      assert.deepEqual({ ready: s.ready, inFlight: s.inFlight, put: s.put, done: s.done, deadLettered: s.deadLettered }, { ready: 0, inFlight: 0, put: 100, done: 100, deadLettered: 0 });
      await rejectsWith(consumer.take({ timeout: 50 }), 'ERR_IPCKIT_TIMEOUT');
      throwsWith(() => consumer.ack({ id: first, data: 0, deliveries: 1, redelivered: false }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    } finally {
      await producer.close();
      await consumer.close();
    }
  });

  it('retry hands a job back (after a delay), closing without ack hands it to another handle; for await takes', async () => {
    const name = newQueue();
    const a = open(name);
    const b = open(name);
    try {
      const id = await a.put('job');
      const j1 = await within(a.take(), 10_000);
      assert.equal(j1.id, id);
      a.retry(j1);
      const j2 = await within(a.take(), 10_000);
      assert.deepEqual([j2.id, j2.deliveries, j2.redelivered], [id, 2, true]);
      const started = Date.now();
      a.retry(j2, { delay: 300 });
      const j3 = await within(a.take(), 10_000);
      assert.ok(Date.now() - started >= 250, 'a delayed retry comes back after its delay');
      assert.equal(j3.deliveries, 3);
      await a.close(); // j3 in hand: delivered again at once
      for await (const j of b) {
        assert.deepEqual([j.id, j.deliveries], [id, 4]);
        b.ack(j);
        break;
      }
      await b.flushAcks();
      assert.equal((await b.stats()).done, 1);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a job handed back is delivered again; after maxDeliveries it goes to the dead-letter subject', async () => {
    const name = newQueue();
    const q = open(name, { ackWait: 300, maxDeliveries: 2 });
    try {
      const id = await q.put({ poison: true });
      const first = await within(q.take(), 10_000);
      q.retry(first);
      const second = await within(q.take(), 10_000);
      assert.deepEqual([first.id, second.id, second.deliveries], [id, id, 2]);
      q.retry(second);
      const ok = await q.put({ fine: true });
      // The third delivery is past maxDeliveries: moved to the dead letters, not handed out.
      const next = await within(q.take(), 10_000);
      assert.equal(next.id, ok);
      q.ack(next);
      await q.flushAcks();
      // The poison job's third delivery comes to the next take, which moves it instead of
      // handing it out: the take finds nothing else.
      await rejectsWith(q.take({ timeout: 1000 }), 'ERR_IPCKIT_TIMEOUT');
      await within(q.join(), 10_000, 'join: the dead letter counts as gone');
      const s = await q.stats();
      assert.equal(s.deadLettered, 1);
      assert.equal(s.done, 1);
      assert.deepEqual(await q.deadLetters(), [{ seq: 1, data: { poison: true } }]);
    } finally {
      await q.close();
    }
  });

  it('a bounded queue: put waits while it is full, a timed-out put stored nothing', async () => {
    const name = newQueue();
    const q = open(name, { capacity: 3 });
    try {
      await q.putMany([1, 2, 3]);
      await rejectsWith(q.put(4, { timeout: 100 }), 'ERR_IPCKIT_TIMEOUT');
      const waiting = q.put(5);
      await sleep(50);
      const j = await within(q.take(), 10_000);
      q.ack(j);
      await within(waiting, 10_000, 'the put that waited for room');
      const s = await q.stats();
      assert.equal(s.capacity, 3);
      assert.equal(s.put, 4, 'the timed-out put stored nothing');
      const data: unknown[] = [];
      for (let i = 0; i < 3; i++) {
        const t = await within(q.take(), 10_000);
        data.push(t.data);
        q.ack(t);
      }
      assert.deepEqual(data, [2, 3, 5]);
    } finally {
      await q.close();
    }
  });

  it('a server without JetStream is ERR_IPCKIT_UNSUPPORTED', async () => {
    const plain = await startNatsServer({ jetstream: false });
    try {
      const q = open(newQueue(), {}, plain);
      await rejectsWith(q.ready(), 'ERR_IPCKIT_UNSUPPORTED');
      await q.close();
    } finally {
      await plain.stop();
    }
  });
});

function lines(r: Run, onLine: (v: any) => void): void {
  createInterface({ input: r.child.stdout! }).on('line', (l) => onLine(JSON.parse(l)));
}

describe('nats work queue: crashes', () => {
  it('survives the server restarting (file store): jobs put before are taken after, and work goes on', async () => {
    const own = await startNatsServer();
    const name = newQueue('restart');
    const q = open(name, {}, own);
    try {
      await q.putMany(Array.from({ length: 50 }, (_, i) => i));
      await own.kill(); // SIGKILL: no clean shutdown
      await own.start();
      const got: number[] = [];
      while (got.length < 50) {
        const jobs = await within(q.takeMany(50), 20_000, 'taking after the restart');
        for (const j of jobs) got.push(j.data as number);
        q.ack(jobs);
      }
      assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => i));
      await q.flushAcks();
      const id = await within(q.put('after'), 10_000);
      const j = await within(q.take(), 10_000);
      assert.equal(j.id, id);
      q.ack(j);
    } finally {
      await q.close();
      await own.stop();
    }
  });

  it('a live holder keeps its job past ackWait (in-progress beats); a hung one (SIGSTOP) loses it after ackWait', async () => {
    const name = newQueue('beat');
    const url = `${server.url}/${name}`;
    const q = open(name, { ackWait: 500 });
    const holder = runFixture('nats-workqueue-peer', ['hold', url, '500'], { timeoutMs: 30_000 });
    try {
      await q.ready();
      const id = await q.put({ task: 'slow' });
      const took = await within(
        new Promise<any>((resolve) => lines(holder, (v) => v.took !== undefined && resolve(v))),
        15_000,
        'the holder taking the job',
      );
      assert.equal(took.took, id);
      // Four times ackWait: the holder lives, so nobody else gets the job.
      await rejectsWith(q.take({ timeout: 2000 }), 'ERR_IPCKIT_TIMEOUT');
      holder.child.kill('SIGSTOP'); // hung: no more beats
      const again = await within(q.take(), 10_000, 'the redelivery after the holder hung');
      assert.deepEqual([again.id, again.redelivered, again.deliveries], [id, true, 2]);
      q.ack(again);
      await q.flushAcks();
    } finally {
      holder.child.kill('SIGKILL');
      await holder.done;
      await q.close();
    }
  });

  it('a job delivered again to the handle that still holds it (its loop was blocked past ackWait) is not handed out twice, and one ack settles it', async () => {
    const name = newQueue('held-again');
    const q = open(name, { ackWait: 500 });
    try {
      const id = await q.put({ task: 'long' });
      const job = await within(q.take(), 10_000, 'taking the job');
      assert.equal(job.id, id);
      // No beat can run: the server's ackWait passes and it delivers the job again.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500);
      await rejectsWith(q.take({ timeout: 1500 }), 'ERR_IPCKIT_TIMEOUT');
      q.ack(job);
      await q.flushAcks();
      await rejectsWith(q.take({ timeout: 1500 }), 'ERR_IPCKIT_TIMEOUT');
    } finally {
      await q.close();
    }
  });

  it('a consumer SIGKILLed mid-job: its job is delivered again after ackWait, marked redelivered', async () => {
    const name = newQueue('kill');
    const url = `${server.url}/${name}`;
    const q = open(name, { ackWait: 500 });
    try {
      await q.ready();
      const id = await q.put({ task: 'convert' });
      const holder = runFixture('nats-workqueue-peer', ['hold', url, '500'], { timeoutMs: 20_000 });
      const took = await within(
        new Promise<any>((resolve) => lines(holder, (v) => v.took !== undefined && resolve(v))),
        15_000,
        'the holder taking the job',
      );
      assert.equal(took.took, id);
      holder.child.kill('SIGKILL');
      await holder.done;
      const again = await within(q.take(), 10_000, 'the redelivery');
      assert.deepEqual([again.id, again.redelivered, again.deliveries], [id, true, 2]);
      assert.deepEqual(again.data, { task: 'convert' });
      q.ack(again);
    } finally {
      await q.close();
    }
  });

  it(`random SIGKILLs of consumers: nothing lost, nothing acknowledged delivered again (${Number(process.env.IPCKIT_NATS_JOBS ?? 5000).toLocaleString('en-US')} jobs; IPCKIT_NATS_JOBS sets the count)`, { timeout: 600_000 }, async (t) => {
    const total = Number(process.env.IPCKIT_NATS_JOBS ?? 5000);
    const name = newQueue('chaos');
    const url = `${server.url}/${name}`;
    const ackWait = 1000;
    const q = open(name, { ackWait, maxDeliveries: 1000 });
    const acked = new Map<number, number>(); // id -> times reported acknowledged
    let taken = 0;
    let redelivered = 0;
    const workers = new Set<Run>();
    let kills = 0;
    const startWorker = (): void => {
      const r = runFixture('nats-workqueue-peer', ['consume', url, String(ackWait), '16', '20'], { timeoutMs: 600_000 });
      workers.add(r);
      lines(r, (v) => {
        if (v.took) {
          taken += v.took.length;
          redelivered += v.redelivered;
        }
        if (v.acked) for (const id of v.acked as number[]) acked.set(id, (acked.get(id) ?? 0) + 1);
      });
      void r.done.then(() => workers.delete(r));
    };
    try {
      await q.ready();
      for (let i = 0; i < 3; i++) startWorker();
      const ids: number[] = [];
      const putting = (async () => {
        for (let start = 0; start < total; start += 1000) {
          ids.push(...(await q.putMany(Array.from({ length: Math.min(1000, total - start) }, (_, i) => start + i))));
        }
      })();
      // Kill a random worker now and then and start another, while jobs are put and
      // worked on; stop once the server holds no job (every one acknowledged).
      let seed = 12345;
      const random = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
      const deadline = Date.now() + 540_000;
      let putDone = false;
      void putting.finally(() => (putDone = true));
      let left = total;
      while (Date.now() < deadline) {
        await sleep(100 + Math.floor(random() * 300));
        if (putDone) {
          const s = await q.stats();
          left = s.ready + s.inFlight;
          if (left === 0) break;
        }
        if (acked.size < total * 0.9 && workers.size > 0) {
          const victims = [...workers];
          const v = victims[Math.floor(random() * victims.length)]!;
          v.child.kill('SIGKILL');
          await v.done;
          kills++;
          startWorker();
        }
      }
      await putting;
      assert.equal(ids.length, total);
      // Nothing lost: the server removed every job on its acknowledgement, none went to the dead letters.
      assert.equal(left, 0, `${left} jobs are still in the queue`);
      await within(q.join(), 20_000, 'join');
      const s = await q.stats();
      assert.deepEqual({ put: s.put, done: s.done, deadLettered: s.deadLettered }, { put: total, done: total, deadLettered: 0 });
      // Nothing acknowledged delivered again: no id was reported acknowledged twice.
      const twice = [...acked].filter(([, n]) => n > 1);
      assert.deepEqual(twice.slice(0, 10), [], `${twice.length} acknowledged jobs were delivered and acknowledged again`);
      // A worker killed after its acknowledgements were confirmed and before it said so
      // leaves at most one batch unreported.
      const unreported = ids.filter((id) => !acked.has(id)).length;
      assert.ok(unreported <= kills * 16, `${unreported} jobs acknowledged without a report, more than ${kills} kills x 16 can explain`);
      assert.ok(kills > 0, 'some workers were killed');
      t.diagnostic(`chaos: ${total} jobs, ${kills} workers killed, ${taken} takes, ${redelivered} redeliveries, ${acked.size} acknowledgements reported`);
    } finally {
      for (const w of workers) w.child.kill('SIGKILL');
      await Promise.all([...workers].map((w) => w.done));
      await q.close();
    }
  });
});
