import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { createMutex, openMutex, unlinkMutex, type Mutex } from '../src/index.js';
import { MUTEX_MAGIC, MUTEX_OFFSET } from '../src/mechanisms/mutex/mutex.js';
import { join } from 'node:path';
import { checkFdLeaks, mqsemWorker, processGone, rejectsWith, repoRoot, run, runCli, runFixture, sleep, throwsWith, uniqueName, waitUntil, within } from './helpers.js';

checkFdLeaks();

const made = new Set<string>();
function mname(tag = 'mutex'): string {
  const n = uniqueName(tag);
  made.add(n);
  return n;
}
after(() => {
  for (const n of made) unlinkMutex(n);
});

const worker = mqsemWorker; // test/fixtures/mqsem-worker.js in a thread

describe('mutex: basics', () => {
  it('creates exclusively (mode 0600, documented header), locks, unlocks, tryLock, withLock', async () => {
    const name = mname();
    const m = createMutex(name);
    try {
      assert.equal(statSync(`/dev/shm${name}`).mode & 0o777, 0o600);
      const header = Buffer.alloc(72);
      const fd = openSync(`/dev/shm${name}`, 'r');
      (await import('node:fs')).readSync(fd, header, 0, 72, 0);
      closeSync(fd);
      assert.equal(header.readUInt32LE(0), MUTEX_MAGIC);
      assert.equal(header.readUInt32LE(4), 2, 'layout version');
      assert.equal(header.readUInt32LE(8), 64, 'the common header is 64 bytes');
      assert.equal(header.readUInt32LE(16), process.pid, 'the creator');
      assert.equal(header.readUInt32LE(64), MUTEX_OFFSET);
      assert.throws(() => createMutex(name), (e: { code?: string }) => e.code === 'ERR_IPCKIT_EXISTS');
      assert.equal(m.state(), 'free');
      assert.deepEqual(await m.lock(), { ownerDied: false });
      assert.equal(m.locked, true);
      assert.equal(m.state(), 'locked');
      assert.equal(m.tryLock(), undefined);
      m.unlock();
      assert.deepEqual(m.tryLock(), { ownerDied: false });
      m.unlock();
      assert.equal(await m.withLock(async (r) => (r.ownerDied ? 'died' : `inside, locked=${m.locked}`)), 'inside, locked=true');
      assert.equal(m.locked, false);
      await assert.rejects(
        m.withLock(() => {
          throw new Error('boom');
        }),
        /boom/,
      );
      assert.equal(m.locked, false, 'withLock unlocks when fn throws');
    } finally {
      await m.close();
    }
    assert.equal(unlinkMutex(name), true);
    assert.equal(unlinkMutex(name), false);
    await rejectsWith(openMutex(name), 'ERR_IPCKIT_NOT_FOUND');
  });

  it('ownership: lock in one turn and unlock in a later one; unlock by a non-owner is refused and changes nothing', async () => {
    const name = mname();
    const a = createMutex(name);
    const b = await openMutex(name);
    try {
      await a.lock();
      await new Promise((r) => setImmediate(r));
      await sleep(5);
      throwsWith(() => b.unlock(), 'ERR_IPCKIT_PERMISSION');
      throwsWith(() => b.markConsistent(), 'ERR_IPCKIT_PERMISSION');
      assert.equal(b.tryLock(), undefined, 'still held by a');
      // Another thread of this process may not unlock it either.
      const w = worker({ op: 'mutex-unlock', name });
      assert.deepEqual(await w.result, { error: 'ERR_IPCKIT_PERMISSION' });
      await w.worker.terminate();
      // Nor another process.
      const peer = await runFixture('mqsem-peer', ['mutex-lock', name, '100']).done;
      assert.match(peer.stdout, /ERR_IPCKIT_TIMEOUT/);
      await sleep(5);
      a.unlock(); // the owner can, in a later turn
      throwsWith(() => a.unlock(), 'ERR_IPCKIT_PERMISSION');
      assert.deepEqual(b.tryLock(), { ownerDied: false });
      b.unlock();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('serves waiting lock() calls in order across handles; timeouts and aborts take nothing', async () => {
    const name = mname();
    const a = createMutex(name);
    const b = await openMutex(name);
    try {
      await a.lock();
      const order: string[] = [];
      const b1 = b.lock({ timeout: 5000 }).then(() => order.push('b1'));
      const b2 = b.lock({ timeout: 5000 }).then(() => order.push('b2'));
      await rejectsWith(a.lock({ timeout: 30 }), 'ERR_IPCKIT_TIMEOUT');
      const ac = new AbortController();
      const aborted = a.lock({ signal: ac.signal });
      ac.abort();
      await rejectsWith(aborted, 'ERR_IPCKIT_ABORTED');
      a.unlock();
      await within(b1, 5000);
      assert.deepEqual(order, ['b1']);
      b.unlock();
      await within(b2, 5000);
      assert.deepEqual(order, ['b1', 'b2']);
      b.unlock();
      assert.deepEqual(a.tryLock(), { ownerDied: false }, 'the cancelled locks left nothing held');
      a.unlock();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('lockSync blocks a worker thread; it refuses to wait on a lock this thread holds', async () => {
    const name = mname();
    const m = createMutex(name);
    try {
      await m.lock();
      const w = worker({ op: 'mutex-lockSync', name, timeout: 10_000 });
      await sleep(50);
      m.unlock();
      assert.deepEqual(await w.result, { locked: true, ownerDied: false });
      await w.worker.terminate();
      await m.lock();
      const w2 = worker({ op: 'mutex-lockSync', name, timeout: 50 });
      assert.deepEqual(await w2.result, { error: 'ERR_IPCKIT_TIMEOUT' });
      await w2.worker.terminate();
      const other = await openMutex(name);
      throwsWith(() => other.lockSync({ timeout: 10 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
      await other.close();
      m.unlock();
    } finally {
      await m.close();
    }
  });

  it('close() while holding releases the lock and ends pending locks', async () => {
    const name = mname();
    const a = createMutex(name);
    const b = await openMutex(name);
    try {
      await a.lock();
      const pending = a.lock();
      const bWaits = b.lock({ timeout: 5000 });
      await a.close();
      await rejectsWith(pending, 'ERR_IPCKIT_CLOSED');
      assert.deepEqual(await within(bWaits, 5000), { ownerDied: false });
      b.unlock();
      await rejectsWith(a.lock(), 'ERR_IPCKIT_CLOSED');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('unlinkOnClose removes the name when the handle closes', async () => {
    const name = mname();
    await createMutex(name, { unlinkOnClose: true }).close();
    assert.equal(unlinkMutex(name), false);
  });

  it('refuses a corrupt or unfinished mutex object', async () => {
    const bad = mname('bad');
    const fd = openSync(`/dev/shm${bad}`, 'wx', 0o600);
    ftruncateSync(fd, 128);
    const header = Buffer.alloc(16);
    header.writeUInt32LE(MUTEX_MAGIC, 0);
    header.writeUInt32LE(7, 4); // unknown version
    writeSync(fd, header, 0, 16, 0);
    closeSync(fd);
    await rejectsWith(openMutex(bad), 'ERR_IPCKIT_CORRUPT');
    const half = uniqueName('half'); // not a mutex yet: removed as a file, below
    closeSync(openSync(`/dev/shm${half}`, 'wx', 0o600)); // size 0: the creator died before sizing it
    after(() => unlinkSync(`/dev/shm${half}`));
    await rejectsWith(openMutex(half, { timeout: 100 }), 'ERR_IPCKIT_CORRUPT');
    for (const n of ['', '/a/b']) throwsWith(() => openMutex(n), 'ERR_IPCKIT_INVALID_ARGUMENT');
  });
});

describe('mutex: a corrupt pthread_mutex_t', () => {
  // glibc's pthread_mutex_t starts with int __lock, __count, __owner, __nusers, __kind (x86-64 and arm64).
  const KIND_OFFSET = 128 + 16; // MUTEX_OFFSET + 16
  // In a child process: a corrupt mutex type once made glibc abort (an assertion in its priority-protect code).
  const CHILD = `
    import { openSync, writeSync, closeSync } from 'node:fs';
    const { openMutex } = await import(process.argv[1]);
    const [name, kind] = [process.argv[2], Number(process.argv[3])];
    const scribble = () => {
      const fd = openSync('/dev/shm' + name, 'r+');
      const b = Buffer.alloc(4);
      b.writeInt32LE(kind);
      writeSync(fd, b, 0, 4, ${KIND_OFFSET});
      closeSync(fd);
    };
    const code = async (f) => { try { await f(); return 'ok'; } catch (e) { return e.code ?? String(e); } };
    const m = await openMutex(name);
    scribble(); // a peer corrupts it while we have it open
    const out = {
      tryLock: await code(() => m.tryLock()),
      lock: await code(() => m.lock({ timeout: 500 })),
      lockSync: await code(() => m.lockSync({ timeout: 500 })),
      open: await code(() => openMutex(name)),
    };
    await m.close();
    console.log(JSON.stringify(out));
  `;

  for (const [kind, what] of [
    [64 | 128, 'priority-protect bit'],
    [12345, 'garbage'],
    [0, 'a private, non-robust mutex'],
  ] as const) {
    it(`a mutex type changed to ${what} is ERR_IPCKIT_CORRUPT for every lock, and for open; no crash`, async () => {
      const name = mname('kind');
      await createMutex(name).close();
      const r = await run(process.execPath, ['--input-type=module', '-e', CHILD, join(repoRoot, 'dist', 'src', 'index.js'), name, String(kind)]).done;
      assert.equal(r.signal, null, `the process died of ${r.signal}: ${r.stderr}`);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), { tryLock: 'ERR_IPCKIT_CORRUPT', lock: 'ERR_IPCKIT_CORRUPT', lockSync: 'ERR_IPCKIT_CORRUPT', open: 'ERR_IPCKIT_CORRUPT' });
    });
  }
});

describe('mutex: CLI', () => {
  it('create, run a command under the lock (exit status passed on), info, rm', async () => {
    const name = mname('cli');
    let r = await runCli(['mutex', 'create', name]).done;
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['mutex', 'run', name, '--', 'sh', '-c', 'echo inside; exit 3']).done;
    assert.equal(r.code, 3);
    assert.equal(r.stdout, 'inside\n');
    r = await runCli(['mutex', 'info', name, '--json']).done;
    assert.deepEqual(JSON.parse(r.stdout), { name, state: 'free' });
    const m: Mutex = await openMutex(name);
    await m.lock();
    r = await runCli(['mutex', 'run', name, '--timeout', '100', '--', 'true']).done;
    assert.equal(r.code, 124);
    r = await runCli(['mutex', 'info', name]).done;
    assert.equal(r.stdout.trim(), `${name}: locked`);
    m.unlock();
    await m.close();
    r = await runCli(['mutex', 'run', name]).done;
    assert.equal(r.code, 2);
    r = await runCli(['mutex', 'rm', name]).done;
    assert.equal(r.code, 0);
  });

  it('run: when ipckit dies holding the lock, the command it runs under the lock dies too', async () => {
    const name = mname('cli-die');
    assert.equal((await runCli(['mutex', 'create', name]).done).code, 0);
    // sh prints its pid, then becomes sleep (same pid).
    const cli = runCli(['mutex', 'run', name, '--', 'sh', '-c', 'echo $$; exec sleep 30']);
    const pid = Number(await within(new Promise<string>((resolve) => cli.child.stdout!.once('data', (d: Buffer) => resolve(d.toString()))), 10_000, 'the command'));
    try {
      const exited = new Promise((resolve) => cli.child.once('exit', resolve)); // not 'close': the command holds our pipes
      cli.child.kill('SIGKILL');
      await exited;
      // Left running, it would go on "under" a lock that the next holder now takes.
      assert.ok(await waitUntil(() => processGone(pid), 2000), 'the command outlived the ipckit that held the lock for it');
    } finally {
      if (!processGone(pid)) process.kill(pid, 'SIGKILL');
    }
    const m = await openMutex(name);
    assert.deepEqual(await m.lock({ timeout: 2000 }), { ownerDied: true });
    m.markConsistent();
    m.unlock();
    await m.close();
  });
});

describe('mutex: example', () => {
  it('examples/mutex: two processes increment a shared counter 200 times each and none is lost', async () => {
    const name = mname('example');
    const r = await run(process.execPath, [join(repoRoot, 'dist', 'examples', 'mutex', 'main.js'), name]).done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /counter is 400 \(expected 400\)/);
  });
});
