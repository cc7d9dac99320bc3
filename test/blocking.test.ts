/**
 * The threads that run blocking system calls (native/blocking.cc): a cancel that comes just
 * as the call completes must neither lose nor hide its effect. The promise says what
 * happened: a lock taken is held or given back, a message sent is in the queue, a message
 * taken was delivered. (pthread_cancel could not promise that on glibc before 2.39: it acts
 * after the call returned, and these loops failed within a few rounds.)
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { createSysvMessageQueue, openFileLock, removeSysvMessageQueue } from '../src/index.js';
import { blockingThreads } from '../src/os/blocking.js';
import { scratchPath, sleep, uniqueKey, waitUntil } from './helpers.js';

const ROUNDS = 150;
const made: number[] = [];
after(() => {
  for (const id of made) removeSysvMessageQueue({ id });
});

/** Settles `p` as { ok, value } or { ok: false, error }, never rejecting. */
async function outcome<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error };
  }
}

describe('blocking calls: a cancel at the moment the call completes', () => {
  it('a lock wait aborted as the holder lets go either holds the lock or gives it back', async () => {
    const path = scratchPath('race.lock');
    writeFileSync(path, 'x');
    const holder = await openFileLock(path);
    const waiter = await openFileLock(path);
    const third = await openFileLock(path);
    try {
      for (let i = 0; i < ROUNDS; i++) {
        // A cancelled wait rejects at once; a lock its thread was granted meanwhile is given
        // back when the thread reports: it may still be held for a moment.
        let held = holder.tryLock();
        if (!held) assert.ok(await waitUntil(() => (held = holder.tryLock()) !== undefined, 2000), `round ${i}: the lock came back`);
        const ac = new AbortController();
        const waiting = outcome(waiter.lock({ signal: ac.signal }));
        await sleep(1);
        // Both orders, in one turn of the loop: the thread is woken and interrupted at once.
        if (i % 2 === 0) {
          held!.release();
          ac.abort();
        } else {
          ac.abort();
          held!.release();
        }
        const r = await waiting;
        if (r.ok) r.value.release();
        // Rejected: a lock the kernel granted just then is given back when the thread reports.
        const free = await waitUntil(() => {
          const t = third.tryLock();
          t?.release();
          return t !== undefined;
        }, 2000);
        assert.ok(free, `round ${i}: the lock is free once the wait settled (${r.ok ? 'taken and released' : 'cancelled'})`);
      }
    } finally {
      await holder.close();
      await waiter.close();
      await third.close();
    }
  });

  it('a send on a full queue aborted as room appears: resolved means sent, rejected means not sent', async () => {
    const q = createSysvMessageQueue(uniqueKey(), { codec: 'utf8', maxBytes: 4 });
    made.push(q.id);
    try {
      let sent = 0;
      for (let i = 0; i < ROUNDS; i++) {
        await q.send('full', { type: 1 });
        const ac = new AbortController();
        const sending = outcome(q.send(`m${i}`, { type: 2, signal: ac.signal }));
        await sleep(1);
        // Room for it, and the abort, in one turn of the loop (both orders).
        if (i % 2 === 0) {
          assert.equal(q.tryReceive({ type: 1 }), 'full');
          ac.abort();
        } else {
          ac.abort();
          assert.equal(q.tryReceive({ type: 1 }), 'full');
        }
        const r = await sending;
        const there = q.tryReceive({ type: 2 });
        assert.equal(there, r.ok ? `m${i}` : undefined, `round ${i}: the send ${r.ok ? 'resolved' : 'rejected'}`);
        if (r.ok) sent++;
      }
      assert.ok(blockingThreads() <= 4, `threads are reused after cancels (${blockingThreads()})`);
      void sent;
    } finally {
      await q.close();
    }
  });

  it('a receive aborted as an empty message arrives: resolved means delivered, rejected means still in the queue', async () => {
    const q = createSysvMessageQueue(uniqueKey());
    made.push(q.id);
    try {
      for (let i = 0; i < ROUNDS; i++) {
        const ac = new AbortController();
        const receiving = outcome(q.receiveWithType({ type: 5, signal: ac.signal }));
        await sleep(1);
        await q.send(new Uint8Array(0), { type: 5 }); // an empty message fits the waiting thread's buffer: it takes it
        ac.abort();
        const r = await receiving;
        const left = q.stat().messages;
        if (r.ok) assert.equal(left, 0, `round ${i}: delivered, and so not in the queue`);
        else {
          assert.equal(left, 1, `round ${i}: cancelled, so the message is still in the queue`);
          assert.equal(q.tryReceive({ type: 5 })?.length, 0);
        }
      }
    } finally {
      await q.close();
    }
  });
});
