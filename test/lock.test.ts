/** FileLock: OFD and flock locks, waits that keep the event loop and libuv's pool free, bad input. */
import assert from 'node:assert/strict';
import { closeSync, mkdirSync, openSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { openFileLock, openFileLockSync, type FileLock } from '../src/index.js';
import { lineFrom, rejectsWith, run, scratchPath, sleep, throwsWith, within } from './helpers.js';

function lockFile(tag: string): string {
  const p = scratchPath(`${tag}.lock`);
  writeFileSync(p, 'x'.repeat(100));
  return p;
}

async function both(path: string, options = {}): Promise<[FileLock, FileLock]> {
  return [await openFileLock(path, options), await openFileLock(path, options)];
}

describe('FileLock: OFD locks', () => {
  it('two handles in one process exclude each other; shared locks coexist; disjoint ranges do not conflict', async () => {
    const [a, b] = await both(lockFile('excl'));
    try {
      const held = a.tryLock()!;
      assert.ok(held);
      assert.equal(b.tryLock(), undefined, 'an exclusive OFD lock excludes another open file, even in this process');
      assert.equal(b.tryLock({ shared: true }), undefined);
      held.release();
      const s1 = a.tryLock({ shared: true })!;
      const s2 = b.tryLock({ shared: true })!;
      assert.ok(s1 && s2, 'shared locks coexist');
      assert.equal(b.tryLock(), undefined, 'exclusive needs the other shared lock gone');
      s1.release();
      s2.release();
      const r1 = a.tryLock({ range: { start: 0, length: 10 } })!;
      const r2 = b.tryLock({ range: { start: 10, length: 10 } })!;
      assert.ok(r1 && r2, 'disjoint ranges');
      assert.equal(b.tryLock({ range: { start: 5, length: 10 } }), undefined, 'overlapping ranges conflict');
      const h = b.holder({ range: { start: 5, length: 1 } })!;
      assert.deepEqual(h, { kind: 'ofd', shared: false, pid: undefined, start: 0, length: 10 });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('closing some other descriptor of the file does not drop the lock (the trap of classic fcntl locks)', async () => {
    const path = lockFile('trap');
    const [a, b] = await both(path);
    try {
      assert.ok(a.tryLock());
      closeSync(openSync(path, 'r'));
      assert.equal(b.tryLock(), undefined, 'still held after another fd of the file was closed');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a wait keeps the event loop turning and libuv\'s pool free, and ends when the holder lets go', async () => {
    const path = lockFile('wait');
    const holder = await openFileLock(path);
    const waiters = await Promise.all(Array.from({ length: 8 }, () => openFileLock(path)));
    const held = holder.tryLock()!;
    let ticks = 0;
    const iv = setInterval(() => ticks++, 5);
    try {
      const waits = waiters.map((w) => w.lock({ shared: true, timeout: 10_000 }));
      // Eight waits pending: more than libuv's four pool threads, yet fs still works.
      const text = await within(readFile(path, 'utf8'), 2000, 'fs.readFile while 8 lock waits are pending');
      assert.equal(text.length, 100);
      await sleep(100);
      assert.ok(ticks >= 5, `the loop ran ${ticks} timer ticks during the wait`);
      held.release();
      const got = await within(Promise.all(waits), 5000, 'the waits end once the lock is free');
      assert.equal(got.length, 8);
      assert.ok(got.every((g) => g.shared));
    } finally {
      clearInterval(iv);
      await holder.close();
      for (const w of waiters) await w.close();
    }
  });

  it('timeout, abort and close end a wait, and a cancelled wait never takes the lock later', async () => {
    const path = lockFile('cancel');
    const [holder, waiter] = await both(path);
    const third = await openFileLock(path);
    try {
      const held = holder.tryLock()!;
      const t = await rejectsWith(waiter.lock({ timeout: 50 }), 'ERR_IPCKIT_TIMEOUT');
      assert.match(t.message, /lock .* timed out after 50 ms/);
      const ac = new AbortController();
      const aborted = waiter.lock({ signal: ac.signal });
      setTimeout(() => ac.abort(new Error('stop')), 30);
      const e = await rejectsWith(aborted, 'ERR_IPCKIT_ABORTED');
      assert.equal((e.cause as Error).message, 'stop');
      held.release();
      await sleep(50);
      // Nobody took it for the cancelled waits: a third handle gets it at once.
      const t3 = third.tryLock();
      assert.ok(t3, 'the lock is free after the cancelled waits');
      t3.release();
      assert.equal(waiter.holder(), undefined);
      const again = holder.tryLock()!;
      const pending = rejectsWith(waiter.lock(), 'ERR_IPCKIT_CLOSED');
      await sleep(20);
      await waiter.close();
      await pending;
      again.release();
      assert.ok(third.tryLock(), 'a closed waiter holds nothing');
    } finally {
      await holder.close();
      await waiter.close();
      await third.close();
    }
  });

  it('the kernel releases the lock of a process killed with SIGKILL', async () => {
    const path = lockFile('killed');
    const script = `
      const { openFileLock } = await import(${JSON.stringify(new URL('../src/index.js', import.meta.url).href)});
      const l = await openFileLock(${JSON.stringify(path)});
      l.tryLock();
      console.log('held ' + process.pid);
      setInterval(() => {}, 1000);
    `;
    const child = run(process.execPath, ['--input-type=module', '-e', script]);
    const line = await within(lineFrom(child.child.stdout!, /^held/), 10_000, 'child holds the lock');
    const lock = await openFileLock(path);
    try {
      const h = lock.holder();
      assert.equal(h?.kind, 'ofd');
      const waiting = lock.lock({ timeout: 10_000 });
      await sleep(50);
      child.child.kill('SIGKILL');
      await within(waiting, 5000, 'the lock after its holder was killed');
      assert.match(line, /^held \d+$/);
    } finally {
      await lock.close();
      await child.done;
    }
  });

  it('lockSync in a worker thread waits and times out', async () => {
    const path = lockFile('sync');
    const holder = await openFileLock(path);
    const held = holder.tryLock()!;
    try {
      const worker = new Worker(
        `const { parentPort, workerData } = require('worker_threads');
         import(workerData.module).then((m) => {
           const l = m.openFileLockSync(workerData.path);
           try { l.lockSync({ timeout: 100 }); parentPort.postMessage('took it'); }
           catch (e) { parentPort.postMessage(e.code); }
           parentPort.once('message', () => { const h = l.lockSync({ timeout: 5000 }); parentPort.postMessage('held'); h.release(); l.close().then(() => parentPort.postMessage('done')); });
         });`,
        { eval: true, workerData: { path, module: new URL('../src/index.js', import.meta.url).href } },
      );
      const messages: string[] = [];
      let arrived: () => void = () => {};
      worker.on('message', (m: string) => {
        messages.push(m);
        arrived();
      });
      /** Resolves once `n` messages have come (however they were batched). */
      const count = (n: number): Promise<void> =>
        new Promise((resolve) => {
          arrived = () => {
            if (messages.length >= n) resolve();
          };
          arrived();
        });
      await within(count(1), 5000, 'first answer');
      setTimeout(() => held.release(), 50);
      worker.postMessage('again');
      await within(count(3), 5000, 'held, then done');
      await worker.terminate();
      assert.deepEqual(messages, ['ERR_IPCKIT_TIMEOUT', 'held', 'done']);
    } finally {
      await holder.close();
    }
  });
});

describe('FileLock: flock locks', () => {
  it('whole-file flock locks exclude each other, wait on a timer, and do not see OFD locks', async () => {
    const path = lockFile('flock');
    const [a, b] = await both(path, { kind: 'flock' });
    const ofd = await openFileLock(path);
    try {
      const held = a.tryLock()!;
      assert.equal(b.tryLock(), undefined);
      const h = b.holder();
      assert.equal(h?.kind, 'flock');
      assert.equal(h?.pid, process.pid, 'the kernel shows the pid that took a flock lock');
      assert.ok(ofd.tryLock(), 'Linux keeps flock and record locks apart');
      const waiting = b.lock({ timeout: 5000 });
      setTimeout(() => held.release(), 30);
      await within(waiting, 5000, 'flock wait');
    } finally {
      await a.close();
      await b.close();
      await ofd.close();
    }
  });
});

describe('FileLock: bad input', () => {
  it('a directory, a missing path, a symlink, a range past off_t, a range with flock, exclusive on read-only', async () => {
    const dir = scratchPath('dir');
    mkdirSync(dir);
    await rejectsWith(openFileLock(dir), 'ERR_IPCKIT_INVALID_ARGUMENT');
    const missing = scratchPath('missing.lock');
    const nf = await rejectsWith(openFileLock(missing), 'ERR_IPCKIT_NOT_FOUND');
    assert.match(nf.message, /pass \{ create: true \}/);
    const created = await openFileLock(missing, { create: true });
    assert.equal(statSync(missing).mode & 0o777, 0o600);
    await created.close();
    const target = lockFile('target');
    const link = scratchPath('link.lock');
    symlinkSync(target, link);
    const sl = await rejectsWith(openFileLock(link), 'ERR_IPCKIT_PERMISSION');
    assert.match(sl.message, /symlink.*followSymlinks/);
    const followed = await openFileLock(link, { followSymlinks: true });
    const ofTarget = await openFileLock(target);
    try {
      assert.ok(followed.tryLock());
      assert.equal(ofTarget.tryLock(), undefined, 'the lock is on the target');
      throwsWith(() => followed.tryLock({ range: { start: Number.MAX_SAFE_INTEGER, length: 1 } }), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => followed.tryLock({ range: { start: -1, length: 1 } }), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => followed.lock({ timeout: -5 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    } finally {
      await followed.close();
      await ofTarget.close();
    }
    const fl = await openFileLock(target, { kind: 'flock' });
    throwsWith(() => fl.tryLock({ range: { start: 0, length: 1 } }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    await fl.close();
    const ro = await openFileLock(target, { readOnly: true });
    throwsWith(() => ro.tryLock(), 'ERR_IPCKIT_INVALID_ARGUMENT');
    assert.ok(ro.tryLock({ shared: true }));
    await ro.close();
    throwsWith(() => ro.tryLock({ shared: true }), 'ERR_IPCKIT_CLOSED');
    // Bad options throw at once, not as a rejection.
    throwsWith(() => openFileLock(42 as unknown as string), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => openFileLock(target, { kind: 'posix' as 'ofd' }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => openFileLockSync(target, { create: 'yes' as unknown as boolean }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    assert.equal(readFileSync(target, 'utf8').length, 100, 'nothing written to the file');
  });
});

