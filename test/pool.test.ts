import assert from 'node:assert/strict';
import { openSync, closeSync, writeSync, statSync, ftruncateSync, unlinkSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { createBoundedPool, openBoundedPool, unlinkBoundedPool } from '../src/index.js';
import { join } from 'node:path';
import { AS_NOBODY, checkFdLeaks, isRoot, rejectsWith, repoRoot, run, runFixture, sleep, throwsWith, uniqueName, within } from './helpers.js';

checkFdLeaks();

const made = new Set<string>();
function pname(tag = 'pool'): string {
  const n = uniqueName(tag);
  made.add(n);
  return n;
}
after(() => {
  for (const n of made) unlinkBoundedPool(n);
});

describe('BoundedPool', () => {
  it('hands out at most `permits` permits across handles, each released exactly once', async () => {
    const name = pname();
    const pool = createBoundedPool(name, { permits: 2 });
    const other = await openBoundedPool(name);
    try {
      assert.equal(pool.permits, 2);
      assert.equal(other.permits, 2);
      assert.equal(statSync(`/dev/shm${name}`).mode & 0o777, 0o600);
      const a = pool.tryAcquire()!;
      const b = await other.acquire({ timeout: 1000 });
      assert.notEqual(a.slot, b.slot);
      assert.equal(pool.tryAcquire(), undefined);
      assert.equal(other.available(), 0);
      assert.deepEqual(
        pool.holders().map((h) => [h.pid, h.alive]),
        [
          [process.pid, true],
          [process.pid, true],
        ],
      );
      const waiting = other.acquire({ timeout: 5000 });
      await sleep(20);
      assert.equal(a.release(), true);
      assert.equal(a.release(), false);
      const c = await within(waiting, 5000);
      assert.equal(c.slot, a.slot);
      b.release();
      c.release();
      assert.equal(pool.available(), 2);
      {
        using p = pool.tryAcquire()!;
        assert.equal(pool.available(), 1);
        void p;
      }
      assert.equal(pool.available(), 2);
    } finally {
      await other.close();
      await pool.close();
    }
  });

  it('a wait that times out or is aborted holds nothing; close() returns what the handle held', async () => {
    const name = pname();
    const pool = createBoundedPool(name, { permits: 1 });
    try {
      const held = pool.tryAcquire()!;
      await rejectsWith(pool.acquire({ timeout: 50 }), 'ERR_IPCKIT_TIMEOUT');
      await rejectsWith(pool.acquire({ signal: AbortSignal.timeout(20) }), 'ERR_IPCKIT_ABORTED');
      held.release();
      assert.equal(pool.available(), 1, 'the cancelled acquires took nothing');
      const other = await openBoundedPool(name);
      other.tryAcquire();
      assert.equal(pool.available(), 0);
      await other.close();
      assert.equal(pool.available(), 1, 'closing a handle returns its permits');
      assert.ok(pool.tryAcquire());
      const pending = pool.acquire();
      await pool.close();
      await rejectsWith(pending, 'ERR_IPCKIT_CLOSED');
    } finally {
      await pool.close();
    }
  });

  it('unlinkOnClose removes the name when the handle closes', async () => {
    const name = pname();
    await createBoundedPool(name, { permits: 1, unlinkOnClose: true }).close();
    assert.equal(unlinkBoundedPool(name), false);
  });

  it('refuses bad arguments and a corrupt or unfinished pool object', async () => {
    throwsWith(() => createBoundedPool(pname(), { permits: 0 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createBoundedPool(pname(), { permits: 65537 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createBoundedPool('/a/b', { permits: 1 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    const name = pname();
    createBoundedPool(name, { permits: 1 }).close();
    assert.throws(() => createBoundedPool(name, { permits: 1 }), (e: { code?: string }) => e.code === 'ERR_IPCKIT_EXISTS');
    // A header that claims more slots than the object holds.
    const fd = openSync(`/dev/shm${name}`, 'r+');
    const permits = Buffer.alloc(4);
    permits.writeUInt32LE(1000);
    writeSync(fd, permits, 0, 4, 64); // docs/semaphore.md: permits at byte 64
    closeSync(fd);
    await rejectsWith(openBoundedPool(name), 'ERR_IPCKIT_CORRUPT');
    // An object whose creator died before writing the header.
    const half = uniqueName('half'); // never became a pool: removed as a file, below
    const hfd = openSync(`/dev/shm${half}`, 'wx', 0o600);
    after(() => unlinkSync(`/dev/shm${half}`));
    ftruncateSync(hfd, 128);
    closeSync(hfd);
    await rejectsWith(openBoundedPool(half, { timeout: 100 }), 'ERR_IPCKIT_CORRUPT');
    await rejectsWith(openBoundedPool(pname()), 'ERR_IPCKIT_NOT_FOUND');
  });
});

describe('BoundedPool: holders that /proc does not show', () => {
  // A peer of another user, in a mount namespace whose /proc hides other users'
  // processes (hidepid=invisible, as hardened systems mount it): it cannot read our
  // /proc/<pid>/stat, yet we are alive and hold a permit.
  const CHILD = `
    const { openBoundedPool } = await import(process.argv[1]);
    const pool = await openBoundedPool(process.argv[2], { trustAnyOwner: true });
    const out = { reclaimed: pool.reclaim(), alive: pool.holders().map((h) => h.alive), acquired: pool.tryAcquire() !== undefined };
    await pool.close();
    console.log(JSON.stringify(out));
  `;

  it('a live holder hidden by hidepid keeps its permit: never more than `permits` holders', { skip: !isRoot && 'needs root (a private mount namespace)' }, async () => {
    const name = pname('hidden');
    const pool = createBoundedPool(name, { permits: 1, mode: 0o666 });
    try {
      const permit = pool.tryAcquire()!;
      const mountHidden = 'mount -t proc -o hidepid=invisible proc /proc && exec "$@"';
      const r = await run('unshare', ['-m', '--propagation', 'private', 'sh', '-c', mountHidden, 'sh', ...AS_NOBODY, process.execPath, '--input-type=module', '-e', CHILD, join(repoRoot, 'dist', 'src', 'index.js'), name]).done;
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), { reclaimed: 0, alive: [true], acquired: false });
      assert.equal(permit.release(), true, 'our permit was taken from us while we held it');
    } finally {
      await pool.close();
    }
  });
});
