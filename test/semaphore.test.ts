import assert from 'node:assert/strict';
import { symlinkSync, unlinkSync, writeFileSync, statSync, mkdirSync, rmdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { createSemaphore, openSemaphore, openSemaphoreSync, semaphorePath, SEM_VALUE_MAX, unlinkSemaphore, type Semaphore } from '../src/index.js';
import { join } from 'node:path';
import { unlinkBoundedPool, unlinkMutex } from '../src/index.js';
import { checkFdLeaks, mqsemWorker, rejectsWith, repoRoot, run, runCli, runFixture, sleep, throwsWith, uniqueName, within } from './helpers.js';

checkFdLeaks();

const made = new Set<string>();
function sname(tag = 'sem'): string {
  const n = uniqueName(tag);
  made.add(n);
  return n;
}
after(() => {
  for (const n of made) unlinkSemaphore(n);
});

const worker = mqsemWorker; // test/fixtures/mqsem-worker.js in a thread

describe('semaphore: create, open, unlink', () => {
  it('creates exclusively with its value and mode 0600 in /dev/shm/sem.<name>; open sees the same counter', async () => {
    const name = sname();
    const s = createSemaphore(name, { value: 2 });
    try {
      assert.equal(s.name, name);
      assert.equal(s.value(), 2);
      assert.equal(statSync(semaphorePath(name)).mode & 0o777, 0o600);
      assert.throws(() => createSemaphore(name), (e: { code?: string }) => e.code === 'ERR_IPCKIT_EXISTS');
      const other = await openSemaphore(name);
      assert.equal(other.tryWait(), true);
      assert.equal(s.value(), 1);
      other.post();
      other.post();
      assert.equal(s.value(), 3);
      await other.close();
    } finally {
      await s.close();
    }
    assert.equal(unlinkSemaphore(name), true);
    assert.equal(unlinkSemaphore(name), false);
    assert.throws(() => openSemaphoreSync(name), (e: { code?: string }) => e.code === 'ERR_IPCKIT_NOT_FOUND');
  });

  it('refuses bad names and values, a symlink, something that is not a semaphore, and a file too small for one', async () => {
    for (const bad of ['', '/', '/a/b', '/..', `/${'x'.repeat(251)}`]) throwsWith(() => createSemaphore(bad), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createSemaphore(sname(), { value: -1 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createSemaphore(sname(), { value: SEM_VALUE_MAX + 1 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    const target = sname('target');
    const real = createSemaphore(target);
    const link = sname('link');
    symlinkSync(semaphorePath(target), semaphorePath(link));
    try {
      throwsWith(() => openSemaphoreSync(link), 'ERR_IPCKIT_PERMISSION');
    } finally {
      unlinkSync(semaphorePath(link));
      await real.close();
    }
    const small = sname('small');
    writeFileSync(semaphorePath(small), Buffer.alloc(4), { mode: 0o600 });
    throwsWith(() => openSemaphoreSync(small), 'ERR_IPCKIT_CORRUPT');
    const dir = sname('dir');
    mkdirSync(semaphorePath(dir), { mode: 0o700 });
    try {
      throwsWith(() => openSemaphoreSync(dir), 'ERR_IPCKIT_INVALID_ARGUMENT');
    } finally {
      rmdirSync(semaphorePath(dir));
    }
  });

  it('unlinkOnClose removes the name when the handle closes', async () => {
    const name = sname();
    await createSemaphore(name, { unlinkOnClose: true }).close();
    assert.equal(unlinkSemaphore(name), false);
  });

  it('post at SEM_VALUE_MAX is ERR_IPCKIT_LIMIT', async () => {
    const s = createSemaphore(sname(), { value: SEM_VALUE_MAX });
    try {
      throwsWith(() => s.post(), 'ERR_IPCKIT_LIMIT');
      assert.equal(s.value(), SEM_VALUE_MAX);
    } finally {
      await s.close();
    }
  });
});

describe('semaphore: waiting', () => {
  it('wait() is woken by a post from another process', async () => {
    const name = sname();
    const s = createSemaphore(name);
    try {
      const waiting = s.wait({ timeout: 20_000 });
      await sleep(20);
      const peer = await runFixture('mqsem-peer', ['sem-post', name, '1']).done;
      assert.equal(peer.code, 0, peer.stderr);
      await within(waiting, 10_000);
      assert.equal(s.value(), 0);
    } finally {
      await s.close();
    }
  });

  it('300 semaphores waited on at once, all posted while our event loop is busy: every wait ends, and later waits too', async () => {
    // More wake-ups than an io_uring completion queue holds arrive before the loop looks.
    const names = Array.from({ length: 300 }, () => sname('many'));
    const sems = names.map((n) => createSemaphore(n));
    try {
      const waits = sems.map((s) => s.wait({ timeout: 10_000 }).then(() => 'ok', (e: { code?: string }) => e.code));
      await sleep(50);
      const post = 'import ctypes, sys\nlib = ctypes.CDLL(None)\nlib.sem_open.restype = ctypes.c_void_p\nlib.sem_open.argtypes = [ctypes.c_char_p, ctypes.c_int]\nlib.sem_post.argtypes = [ctypes.c_void_p]\nfor n in sys.argv[1:]:\n    assert lib.sem_post(lib.sem_open(n.encode(), 0)) == 0';
      const r = spawnSync('python3', ['-c', post, ...names], { encoding: 'utf8' }); // blocks our loop while python posts
      assert.equal(r.status, 0, r.stderr);
      const results = await Promise.all(waits);
      assert.equal(results.filter((x) => x === 'ok').length, 300, `waits that did not end: ${results.filter((x) => x !== 'ok').length} (${sems[0]!.backend})`);
    } finally {
      for (const s of sems) await s.close();
    }
  });

  it('serves concurrent waits of one handle in order; a post from here wakes a waiting process', async () => {
    const name = sname();
    const s = createSemaphore(name);
    try {
      const order: number[] = [];
      const waits = [1, 2, 3].map((i) => s.wait({ timeout: 10_000 }).then(() => order.push(i)));
      await sleep(20);
      for (let i = 0; i < 3; i++) s.post();
      await Promise.all(waits);
      assert.deepEqual(order, [1, 2, 3]);
      const peer = runFixture('mqsem-peer', ['sem-wait', name, '20000']);
      await new Promise((r) => peer.child.stdout!.once('data', r));
      await sleep(50);
      s.post();
      const r = await peer.done;
      assert.match(r.stdout, /"waited":true/);
    } finally {
      await s.close();
    }
  });

  it('a wait that times out or is aborted takes nothing; close() ends waits and takes nothing', async () => {
    const s = createSemaphore(sname());
    try {
      const started = Date.now();
      await rejectsWith(s.wait({ timeout: 80 }), 'ERR_IPCKIT_TIMEOUT');
      assert.ok(Date.now() - started >= 70);
      const ac = new AbortController();
      const reason = new Error('stop');
      const aborted = s.wait({ signal: ac.signal });
      setTimeout(() => ac.abort(reason), 10);
      const e = await rejectsWith(aborted, 'ERR_IPCKIT_ABORTED');
      assert.equal((e as Error & { cause?: unknown }).cause, reason);
      await rejectsWith(s.wait({ signal: AbortSignal.abort() }), 'ERR_IPCKIT_ABORTED');
      s.post();
      assert.equal(s.value(), 1, 'the cancelled waits left the permit alone');
      assert.equal(s.tryWait(), true);
      const pending = s.wait();
      await sleep(10);
      await s.close();
      await rejectsWith(pending, 'ERR_IPCKIT_CLOSED');
      await rejectsWith(s.wait(), 'ERR_IPCKIT_CLOSED');
      throwsWith(() => s.post(), 'ERR_IPCKIT_CLOSED');
    } finally {
      await s.close();
    }
  });

  it('never loses a permit when short waits race with posts from another process', async () => {
    const name = sname();
    const s = createSemaphore(name);
    try {
      const posting = runFixture('mqsem-peer', ['sem-post', name, '300']).done;
      let taken = 0;
      for (let i = 0; i < 600; i++) {
        try {
          await s.wait({ timeout: 1 });
          taken++;
        } catch (e) {
          assert.equal((e as { code?: string }).code, 'ERR_IPCKIT_TIMEOUT');
        }
      }
      assert.equal((await posting).code, 0);
      assert.equal(taken + s.value(), 300);
    } finally {
      await s.close();
    }
  });

  it('pending waits keep neither fs calls nor the event loop waiting (no thread-pool slot per wait)', async () => {
    const sems: Semaphore[] = [];
    try {
      for (let i = 0; i < 8; i++) sems.push(createSemaphore(sname('pool')));
      const waits = sems.map((s) => s.wait());
      for (let i = 0; i < 10; i++) await within(readFile(new URL(import.meta.url)), 5000, 'fs.readFile');
      for (const s of sems) s.post();
      await within(Promise.all(waits), 5000);
    } finally {
      for (const s of sems) await s.close();
    }
  });

  it('waitSync blocks a worker thread until a post, or until its timeout', async () => {
    const name = sname();
    const s = createSemaphore(name);
    try {
      const w1 = worker({ op: 'sem-waitSync', name, timeout: 10_000 });
      await sleep(50);
      s.post();
      assert.deepEqual(await w1.result, { waited: true });
      const w2 = worker({ op: 'sem-waitSync', name, timeout: 50 });
      assert.deepEqual(await w2.result, { error: 'ERR_IPCKIT_TIMEOUT' });
      await Promise.all([w1.worker.terminate(), w2.worker.terminate()]);
      throwsWith(() => s.waitSync({ timeout: 1 }), 'ERR_IPCKIT_TIMEOUT');
    } finally {
      await s.close();
    }
  });

  it('a pending wait keeps a process alive; an idle semaphore does not', async () => {
    const name = sname();
    const s = createSemaphore(name);
    try {
      const waiter = runFixture('mqsem-peer', ['sem-wait', name]);
      await new Promise((r) => waiter.child.stdout!.once('data', r));
      await sleep(200);
      assert.equal(waiter.child.exitCode, null, 'the waiting process stayed alive');
      s.post();
      assert.equal((await waiter.done).code, 0);
      const idle = await runFixture('mqsem-peer', ['sem-post', name, '1']).done; // opens, posts, exits
      assert.equal(idle.code, 0);
    } finally {
      await s.close();
    }
  });

  it('works the same with io_uring futex waits and with the waiter-thread fallback', async () => {
    const results = [];
    for (const env of [{}, { IPCKIT_NO_URING: '1' }]) {
      const prefix = sname('wb');
      made.add(`${prefix}-sem`);
      const r = await runFixture('wait-backends', [prefix], { env: { ...process.env, ...env } }).done;
      assert.equal(r.code, 0, r.stderr);
      results.push(JSON.parse(r.stdout.trim()));
    }
    const [ring, thread] = results;
    assert.deepEqual(thread.backends, { semaphore: 'thread', mutex: 'thread', pool: 'thread' });
    for (const r of results) {
      assert.equal(r.semWokenByPeer, 'resolved');
      assert.equal(r.semTimeout, 'ERR_IPCKIT_TIMEOUT');
      assert.equal(r.semAbort, 'ERR_IPCKIT_ABORTED');
      assert.equal(r.semValueAfterCancelledWaits, 1);
      assert.equal(r.semTryWait, true);
      assert.equal(r.semAccounting, 200);
      assert.equal(r.mutexPeerExit, 0);
      assert.equal(r.mutexLockAfterPeer, '{"ownerDied":false}');
      assert.equal(r.mutexHandOver, '{"ownerDied":false}');
      assert.equal(r.mutexTimeout, 'ERR_IPCKIT_TIMEOUT');
      assert.equal(r.poolWaited, 0);
    }
    // Which one a kernel gives is reported, not required (io_uring futex waits need Linux 6.7).
    assert.ok(['io_uring', 'thread'].includes(ring.backends.semaphore));
  });
});

describe('semaphore, mutex, pool: a worker that uses ipckit alone is terminated while it waits', () => {
  // The main thread of this child never loads ipckit: when the worker ends, Node unloads
  // the addon, and anything the addon still had to close must not run after that.
  const CHILD = `
    const { Worker } = require('node:worker_threads');
    const w = new Worker(\`
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.index).then(async (ipc) => {
        const [sem, mutex, pool] = workerData.names;
        const s = ipc.createSemaphore(sem);
        s.wait().catch(() => {});
        const m = ipc.createMutex(mutex);
        m.tryLock();
        (await ipc.openMutex(mutex)).lock().catch(() => {});
        const p = ipc.createBoundedPool(pool, { permits: 1 });
        p.tryAcquire();
        p.acquire().catch(() => {});
        parentPort.postMessage(s.backend);
      });
    \`, { eval: true, workerData: { index: process.argv[1], names: process.argv.slice(2) } });
    w.once('message', async (backend) => {
      await w.terminate();
      setTimeout(() => console.log(backend), 100);
    });
  `;

  for (const [env, backend] of [[{}, 'io_uring'], [{ IPCKIT_NO_URING: '1' }, 'thread']] as const) {
    it(`pending semaphore wait, mutex lock and pool acquire (${backend} backend): the process survives`, async () => {
      const names = [sname('wsem'), uniqueName('wmutex'), uniqueName('wpool')];
      try {
        const r = await run(process.execPath, ['-e', CHILD, join(repoRoot, 'dist', 'src', 'index.js'), ...names], { timeoutMs: 20_000, env: { ...process.env, ...env } }).done;
        assert.equal(r.signal, null, `the process died of ${r.signal}`);
        assert.equal(r.code, 0, r.stderr);
        if (backend === 'thread') assert.equal(r.stdout.trim(), 'thread');
      } finally {
        unlinkMutex(names[1]!);
        unlinkBoundedPool(names[2]!);
      }
    });
  }
});

describe('semaphore: permits', () => {
  it('acquire() gives a permit released exactly once, by release(), using or await using', async () => {
    const s = createSemaphore(sname(), { value: 1 });
    try {
      const p = await s.acquire();
      assert.equal(s.value(), 0);
      assert.equal(p.release(), true);
      assert.equal(p.release(), false);
      assert.equal(p.released, true);
      assert.equal(s.value(), 1);
      {
        using q = await s.acquire({ timeout: 1000 });
        assert.equal(s.value(), 0);
        assert.equal(q.released, false);
      }
      assert.equal(s.value(), 1);
      {
        await using q = await s.acquire({ timeout: 1000 });
        q.release(); // released early: the disposal does not post again
      }
      assert.equal(s.value(), 1);
      await rejectsWith(
        (async () => {
          await s.acquire();
          await s.acquire({ timeout: 30 });
        })(),
        'ERR_IPCKIT_TIMEOUT',
      );
    } finally {
      await s.close();
    }
  });
});

describe('semaphore: a corrupt sem_t', () => {
  // glibc's sem_t on 64-bit Linux: u64 value and waiters, then int private (the futex flags it uses).
  const PRIVATE_OFFSET = 8;
  // In a child process: a corrupt futex-flags field once made sem_post sleep forever on the
  // event loop thread, or made glibc abort ("The futex facility returned an unexpected error code").
  const CHILD = `
    import { openSync, writeSync, closeSync } from 'node:fs';
    const { openSemaphore, semaphorePath } = await import(process.argv[1]);
    const [name, flags] = [process.argv[2], Number(process.argv[3])];
    const code = async (f) => { try { await f(); return 'ok'; } catch (e) { return e.code ?? String(e); } };
    const s = await openSemaphore(name);
    const waiter = await openSemaphore(name);
    const waiting = waiter.wait({ timeout: 1000 }).then(() => 'ok', (e) => e.code); // glibc's post wakes only when someone waits
    await new Promise((r) => setTimeout(r, 50));
    const fd = openSync(semaphorePath(name), 'r+');
    const b = Buffer.alloc(4);
    b.writeInt32LE(flags);
    writeSync(fd, b, 0, 4, ${PRIVATE_OFFSET}); // a peer corrupts it while we have it open
    closeSync(fd);
    const out = {
      post: await code(() => s.post()),
      tryWait: await code(() => s.tryWait()),
      wait: await code(() => s.wait({ timeout: 500 })),
      waitSync: await code(() => s.waitSync({ timeout: 500 })),
      open: await code(async () => (await openSemaphore(name)).close()),
    };
    await waiter.close();
    await waiting;
    await s.close();
    console.log(JSON.stringify(out));
  `;

  for (const [flags, what] of [
    [129, 'a value that turns the wake into a wait'],
    [12345, 'garbage'],
    [0, 'process-private futexes'],
  ] as const) {
    it(`futex flags changed to ${what}: ERR_IPCKIT_CORRUPT for post, waits and open; no hang, no crash`, async () => {
      const name = sname('flags');
      await createSemaphore(name).close();
      const r = await run(process.execPath, ['--input-type=module', '-e', CHILD, join(repoRoot, 'dist', 'src', 'index.js'), name, String(flags)], { timeoutMs: 10_000 }).done;
      assert.equal(r.signal, null, `the process died of ${r.signal} (a hang is killed after 10 s): ${r.stderr}`);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), { post: 'ERR_IPCKIT_CORRUPT', tryWait: 'ERR_IPCKIT_CORRUPT', wait: 'ERR_IPCKIT_CORRUPT', waitSync: 'ERR_IPCKIT_CORRUPT', open: 'ERR_IPCKIT_CORRUPT' });
    });
  }
});

describe('semaphore: CLI', () => {
  it('create, post, value, wait (with timeout: exit 124), rm', async () => {
    const name = sname('cli');
    let r = await runCli(['semaphore', 'create', name, '--value', '1']).done;
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['sem', 'post', name, '--count', '2']).done;
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['sem', 'value', name]).done;
    assert.equal(r.stdout.trim(), '3');
    for (let i = 0; i < 3; i++) assert.equal((await runCli(['sem', 'wait', name, '--timeout', '1000']).done).code, 0);
    r = await runCli(['sem', 'wait', name, '--timeout', '100']).done;
    assert.equal(r.code, 124);
    assert.match(r.stderr, /ERR_IPCKIT_TIMEOUT/);
    r = await runCli(['sem', 'rm', name]).done;
    assert.equal(r.code, 0);
    r = await runCli(['sem', 'value', name]).done;
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERR_IPCKIT_NOT_FOUND/);
    r = await runCli(['sem', 'frobnicate']).done;
    assert.equal(r.code, 2);
  });
});

describe('semaphore: example', () => {
  it('examples/semaphore: at most 2 of 4 workers hold a pool permit; a semaphore counts them done', async () => {
    const prefix = sname('example');
    made.add(`${prefix}-done`);
    after(() => unlinkBoundedPool(`${prefix}-pool`));
    const r = await run(process.execPath, [join(repoRoot, 'dist', 'examples', 'semaphore', 'launcher.js'), prefix]).done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /all 4 workers done; permits free again: 2 of 2/);
    const inUse = [...r.stdout.matchAll(/\((\d) of 2 in use\)/g)].map((m) => Number(m[1]));
    assert.equal(inUse.length, 4);
    assert.ok(inUse.every((n) => n >= 1 && n <= 2), `never more than 2 holders: ${inUse}`);
  });
});
