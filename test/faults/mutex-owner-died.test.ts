/**
 * The robust mutex when its owner dies holding it: a process killed with SIGKILL, a
 * worker thread terminated. The next lock() says ownerDied promptly; unlocking without
 * markConsistent() leaves the mutex unrecoverable for everyone; markConsistent() keeps it
 * usable. Each wait has a deadline: nothing here may hang.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMutex, openMutex, unlinkMutex } from '../../src/index.js';
import { rejectsWith, runFixture, uniqueName, within, type Run } from '../helpers.js';

const names: string[] = [];
after(() => names.forEach((n) => unlinkMutex(n)));
function mname(tag: string): string {
  const n = uniqueName(tag);
  names.push(n);
  return n;
}

/** Starts a process that locks `name` and holds it; resolves once it holds it. */
async function holder(name: string): Promise<Run> {
  const r = runFixture('mqsem-peer', ['mutex-hold', name]);
  const line = await within(new Promise<string>((resolve) => r.child.stdout!.once('data', (d: Buffer) => resolve(d.toString()))), 10_000, 'the holder to lock');
  assert.match(line, /"locked":true/);
  return r;
}

async function killed(r: Run): Promise<void> {
  r.child.kill('SIGKILL');
  const done = await r.done;
  assert.equal(done.signal, 'SIGKILL');
}

describe('mutex: owner died', () => {
  it('a process SIGKILLed while holding: a waiting lock() resolves with ownerDied promptly; markConsistent() keeps it usable', async () => {
    const name = mname('died');
    const m = createMutex(name);
    try {
      const h = await holder(name);
      const waiting = m.lock({ timeout: 10_000 });
      const killedAt = Date.now();
      await killed(h);
      assert.deepEqual(await within(waiting, 2000, 'lock after the owner died'), { ownerDied: true });
      assert.ok(Date.now() - killedAt < 2000);
      m.markConsistent();
      m.unlock();
      // Usable again, from another process too, with no owner-died report.
      const peer = await runFixture('mqsem-peer', ['mutex-lock', name, '5000']).done;
      assert.match(peer.stdout, /"locked":true,"ownerDied":false/);
      assert.deepEqual(await m.lock({ timeout: 1000 }), { ownerDied: false });
      m.unlock();
      assert.equal(m.state(), 'free');
    } finally {
      await m.close();
    }
  });

  it('unlocking without markConsistent() makes every later lock fail, in this process and in others', async () => {
    const name = mname('unrec');
    const m = createMutex(name);
    try {
      await killed(await holder(name));
      assert.equal(m.state(), 'owner-died');
      assert.deepEqual(m.tryLock(), { ownerDied: true });
      m.unlock(); // without markConsistent()
      assert.equal(m.state(), 'unrecoverable');
      await rejectsWith(m.lock({ timeout: 1000 }), 'ERR_IPCKIT_OWNER_DIED');
      await rejectsWith(m.lock({ timeout: 1000 }), 'ERR_IPCKIT_OWNER_DIED');
      assert.throws(() => m.tryLock(), (e: { code?: string }) => e.code === 'ERR_IPCKIT_OWNER_DIED');
      for (let i = 0; i < 2; i++) {
        const peer = await runFixture('mqsem-peer', ['mutex-lock', name, '1000']).done;
        assert.match(peer.stdout, /ERR_IPCKIT_OWNER_DIED/);
      }
      const other = await openMutex(name);
      await rejectsWith(other.lock(), 'ERR_IPCKIT_OWNER_DIED');
      await other.close();
    } finally {
      await m.close();
    }
  });

  it('an owner that dies again before markConsistent(): the next locker hears ownerDied again', async () => {
    const name = mname('twice');
    const m = createMutex(name);
    try {
      await killed(await holder(name));
      // The second holder gets ownerDied and dies itself without repairing.
      const second = runFixture('mqsem-peer', ['mutex-hold', name]);
      const line = await within(new Promise<string>((resolve) => second.child.stdout!.once('data', (d: Buffer) => resolve(d.toString()))), 10_000);
      assert.match(line, /"ownerDied":true/);
      await killed(second);
      assert.deepEqual(await m.lock({ timeout: 2000 }), { ownerDied: true });
      m.markConsistent();
      m.unlock();
    } finally {
      await m.close();
    }
  });

  it('a worker thread terminated while holding: the next lock() says ownerDied (both wait backends)', async () => {
    for (const env of [{}, { IPCKIT_NO_URING: '1' }]) {
      const name = mname('worker');
      const r = await runFixture('owner-died-worker', [name], { env: { ...process.env, ...env } }).done;
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim());
      assert.deepEqual(out.workerLocked, { locked: true, ownerDied: false });
      assert.deepEqual(out.afterTerminate, { ownerDied: true });
      assert.ok(out.ms < 2000, `ownerDied took ${out.ms} ms`);
      assert.deepEqual(out.afterRepair, { ownerDied: false });
    }
  });
});
