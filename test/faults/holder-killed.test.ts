/**
 * A semaphore holder SIGKILLed: a plain POSIX semaphore has no undo (the permit stays
 * lost and wait({ timeout }) times out cleanly), while the BoundedPool takes the dead
 * holder's permit back.
 */
import assert from 'node:assert/strict';
import { closeSync, openSync, writeSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { createBoundedPool, createSemaphore, processStartTime, unlinkBoundedPool, unlinkSemaphore } from '../../src/index.js';
import { rejectsWith, runFixture, uniqueName, within, type Run } from '../helpers.js';

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));

async function started(r: Run, what: string): Promise<string> {
  return within(new Promise<string>((resolve) => r.child.stdout!.once('data', (d: Buffer) => resolve(d.toString()))), 10_000, what);
}

describe('holder killed', () => {
  it('plain semaphore: the permit of a killed holder is gone, and wait({ timeout }) times out cleanly', async () => {
    const name = uniqueName('sem-killed');
    cleanups.push(() => unlinkSemaphore(name));
    const s = createSemaphore(name, { value: 1 });
    try {
      const h = runFixture('mqsem-peer', ['sem-hold', name]);
      assert.match(await started(h, 'the holder'), /"held":true/);
      h.child.kill('SIGKILL');
      await h.done;
      const t0 = Date.now();
      await rejectsWith(s.wait({ timeout: 200 }), 'ERR_IPCKIT_TIMEOUT');
      assert.ok(Date.now() - t0 >= 190);
      assert.equal(s.value(), 0, 'no undo: this is what BoundedPool exists for');
    } finally {
      await s.close();
    }
  });

  it('BoundedPool: a waiting acquire gets the permit of a holder killed meanwhile, within the check interval', async () => {
    const name = uniqueName('pool-killed');
    cleanups.push(() => unlinkBoundedPool(name));
    const pool = createBoundedPool(name, { permits: 1, checkInterval: 50 });
    try {
      const h = runFixture('mqsem-peer', ['pool-hold', name]);
      assert.match(await started(h, 'the holder'), /"slot":0/);
      assert.equal(pool.tryAcquire(), undefined);
      const waiting = pool.acquire({ timeout: 10_000 });
      const t0 = Date.now();
      h.child.kill('SIGKILL');
      await h.done;
      const p = await within(waiting, 3000, 'the reclaimed permit');
      assert.equal(p.slot, 0);
      assert.ok(Date.now() - t0 < 3000);
      assert.deepEqual(pool.holders().map((x) => [x.pid, x.alive]), [[process.pid, true]]);
      p.release();
    } finally {
      await pool.close();
    }
  });

  it('BoundedPool: a dead holder found by the next acquire, and a reused pid with another start time is dead too', async () => {
    const name = uniqueName('pool-stale');
    cleanups.push(() => unlinkBoundedPool(name));
    const pool = createBoundedPool(name, { permits: 2 });
    try {
      const h = runFixture('mqsem-peer', ['pool-hold', name]);
      await started(h, 'the holder');
      h.child.kill('SIGKILL');
      await h.done;
      // Slot 1 names participant row 5, whose record says pid 1 (alive) started at another
      // time (docs/semaphore.md: rows of 32 bytes from byte 128, slots after the 128 rows).
      const row = Buffer.alloc(32);
      const start = processStartTime(1)! + 12345;
      row.writeUInt32LE(1, 0); // pid
      row.writeUInt32LE(1, 4); // attached
      row.writeUInt32LE(start % 2 ** 32, 8);
      row.writeUInt32LE(Math.floor(start / 2 ** 32), 12);
      row.writeUInt32LE(7, 16); // epoch
      const slot = Buffer.alloc(4);
      slot.writeUInt32LE((5 + 1) | (7 << 16));
      const fd = openSync(`/dev/shm${name}`, 'r+');
      writeSync(fd, row, 0, 32, 128 + 5 * 32);
      writeSync(fd, slot, 0, 4, 128 + 128 * 32 + 4);
      closeSync(fd);
      assert.deepEqual(pool.holders().map((x) => x.alive), [false, false]);
      const a = pool.tryAcquire();
      const c = pool.tryAcquire();
      assert.ok(a && c, 'both stale permits came back');
      assert.equal(pool.reclaim(), 0);
      a.release();
      c.release();
    } finally {
      await pool.close();
    }
  });
});

describe('waiter killed', () => {
  it('processes SIGKILLed while waiting on a semaphore or a mutex take nothing and break nothing', async () => {
    const name = uniqueName('killed-waiters');
    cleanups.push(() => unlinkSemaphore(name));
    const { createMutex, unlinkMutex } = await import('../../src/index.js');
    cleanups.push(() => unlinkMutex(`${name}-m`));
    const s = createSemaphore(name);
    const m = createMutex(`${name}-m`);
    try {
      await m.lock();
      for (let i = 0; i < 5; i++) {
        const a = runFixture('mqsem-peer', ['sem-wait', name]);
        const b = runFixture('mqsem-peer', ['mutex-lock', `${name}-m`, '20000']);
        await started(a, 'the semaphore waiter');
        await new Promise((r) => setTimeout(r, 100)); // both are now blocked in their waits
        a.child.kill('SIGKILL');
        b.child.kill('SIGKILL');
        await Promise.all([a.done, b.done]);
      }
      s.post();
      assert.equal(s.value(), 1, 'no killed waiter took the permit');
      await s.wait({ timeout: 1000 });
      m.unlock();
      const peer = await runFixture('mqsem-peer', ['mutex-lock', `${name}-m`, '2000']).done;
      assert.match(peer.stdout, /"locked":true,"ownerDied":false/);
      assert.deepEqual(await m.lock({ timeout: 1000 }), { ownerDied: false });
      m.unlock();
    } finally {
      await s.close();
      await m.close();
    }
  });
});
