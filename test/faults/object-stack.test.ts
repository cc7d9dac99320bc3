/**
 * The shared-memory object stack (docs/design.md section 6), under the faults it exists
 * for: a live holder of the attach lock that never lets go (stopped), a dead one (killed),
 * a worker thread terminated while holding the lock or a pool permit, a creator that is
 * slow or dies before publishing its object, and objects of the wrong kind.
 */
import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  createBoundedPool,
  createMutex,
  createRing,
  createSharedMemory,
  createWorkQueue,
  openBoundedPool,
  openMutex,
  openRing,
  openWorkQueue,
  unlinkBoundedPool,
  unlinkMutex,
  unlinkRing,
  unlinkSharedMemory,
  unlinkWorkQueue,
} from '../../src/index.js';
import { checkFdLeaks, jsonLines, rejectsWith, runFixture, sleep, throwsWith, uniqueName, waitUntil, within, type Run } from '../helpers.js';

type Kind = 'ring' | 'workqueue' | 'mutex' | 'pool';
const KINDS: Kind[] = ['ring', 'workqueue', 'mutex', 'pool'];
const NAMES: Record<Kind, string> = { ring: 'ring', workqueue: 'work queue', mutex: 'mutex', pool: 'pool' };

/** What each kind's public API does: create (this process), open, unlink. */
const API: Record<Kind, { create(name: string): { close(): unknown }; open(name: string, o?: { timeout?: number; signal?: AbortSignal }): Promise<{ close(): unknown }>; unlink(name: string): boolean }> = {
  ring: { create: (n) => createRing(n, { capacity: 4096, producers: 'many', maxProducers: 4 }), open: (n, o) => openRing(n, o), unlink: unlinkRing },
  workqueue: { create: (n) => createWorkQueue(n, { capacity: 4 }), open: (n, o) => openWorkQueue(n, o), unlink: unlinkWorkQueue },
  mutex: { create: (n) => createMutex(n), open: (n, o) => openMutex(n, o), unlink: unlinkMutex },
  pool: { create: (n) => createBoundedPool(n, { permits: 1 }), open: (n, o) => openBoundedPool(n, o), unlink: unlinkBoundedPool },
};

// Names are removed raw at the end: some of these objects are left half made on purpose.
const names: string[] = [];
const peers: Run[] = [];
after(async () => {
  for (const p of peers) {
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.child.kill('SIGKILL');
      await p.done;
    }
  }
  for (const n of names) unlinkSharedMemory(n);
});
checkFdLeaks();

function name(tag: string): string {
  const n = uniqueName(tag);
  names.push(n);
  return n;
}

function peer(args: string[], fault?: string): Run {
  const r = runFixture('object-peer', args, fault === undefined ? {} : { env: { ...process.env, IPCKIT_FAULT: fault, IPCKIT_FAULT_ACTION: 'stop' } });
  peers.push(r);
  return r;
}

/** The state letter of a process (/proc/<pid>/stat field 3): 'T' once it is stopped. */
function stateOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

async function stopped(r: Run, what: string): Promise<void> {
  assert.ok(await waitUntil(() => stateOf(r.child.pid!) === 'T', 10_000), `${what} stopped itself`);
}

/** Two processes racing to attach (as a producer, a participant) with a timeout; what each printed. */
async function race(kind: Kind, n: string, timeoutMs: number): Promise<unknown[]> {
  const racers = [peer(['attach', kind, n, String(timeoutMs)]), peer(['attach', kind, n, String(timeoutMs)])];
  return Promise.all(racers.map(async (r) => JSON.parse((await within(r.done, 20_000, 'a racer')).stdout.trim().split('\n').pop()!)));
}

describe('the attach lock', () => {
  for (const kind of ['workqueue', 'ring', 'pool'] as const) {
    it(`${kind}: a stopped process holding the lock is never robbed (two racers and we time out); once it is killed, its lock is taken over`, async () => {
      const n = name(`lock-${kind}`);
      const own = API[kind].create(n);
      try {
        const holder = peer(['attach', kind, n, '5000'], 'attach:locked');
        await stopped(holder, 'the holder, with the attach lock');
        assert.deepEqual(await race(kind, n, 400), [{ error: 'ERR_IPCKIT_TIMEOUT' }, { error: 'ERR_IPCKIT_TIMEOUT' }]);
        if (kind === 'ring') await rejectsWith((own as ReturnType<typeof createRing>).sender({ timeout: 200 }), 'ERR_IPCKIT_TIMEOUT');
        else await rejectsWith(API[kind].open(n, { timeout: 200 }), 'ERR_IPCKIT_TIMEOUT');
        holder.child.kill('SIGKILL');
        await holder.done;
        assert.deepEqual(await race(kind, n, 5000), [{ attached: true }, { attached: true }]);
      } finally {
        await own.close();
      }
    });
  }

  it('a worker thread terminated while holding the lock: its lock is taken over (the owner is a thread, not the process)', async () => {
    const n = name('lock-worker');
    const q = createWorkQueue(n, { capacity: 4 });
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       (async () => {
         const { openObjectSync, planOpen } = await import(workerData.object);
         const { AttachLock } = await import(workerData.lock);
         const segment = openObjectSync(workerData.name, 'workqueue', 2, planOpen({}));
         new AttachLock(segment.mem, 'test').lockSync({ deadline: performance.now() + 5000 });
         parentPort.postMessage('held');
         for (;;);
       })();`,
      {
        eval: true,
        workerData: { name: n, object: new URL('../../src/memory/object.js', import.meta.url).href, lock: new URL('../../src/memory/attach-lock.js', import.meta.url).href },
      },
    );
    try {
      await within(new Promise((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      }), 10_000, 'the worker holds the lock');
      // A live thread holds it: nobody takes it, not even another thread of its process.
      await rejectsWith(openWorkQueue(n, { timeout: 300 }), 'ERR_IPCKIT_TIMEOUT');
    } finally {
      await worker.terminate();
    }
    const h = await within(openWorkQueue(n, { timeout: 5000 }), 10_000, 'the attach after the worker ended');
    await h.close();
    await q.close();
  });
});

describe('worker threads that end without closing', () => {
  it('a worker terminated while holding a pool permit gives it back', async () => {
    const n = name('pool-worker');
    const pool = createBoundedPool(n, { permits: 1, checkInterval: 50 });
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       import(workerData.index).then(({ openBoundedPoolSync }) => {
         const pool = openBoundedPoolSync(workerData.name);
         parentPort.postMessage(pool.tryAcquire()?.slot ?? -1);
         setInterval(() => {}, 1000);
       });`,
      { eval: true, workerData: { name: n, index: new URL('../../src/index.js', import.meta.url).href } },
    );
    try {
      const slot = await within(new Promise((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      }), 10_000, 'the worker takes the permit');
      assert.equal(slot, 0);
      assert.equal(pool.tryAcquire(), undefined, 'the worker holds the only permit');
      const waiting = pool.acquire({ timeout: 5000 });
      await worker.terminate();
      const permit = await within(waiting, 6000, 'the permit the worker held');
      assert.equal(permit.slot, 0);
      assert.deepEqual(pool.holders().map((h) => [h.pid, h.tid, h.alive]), [[process.pid, 0, true]]);
      permit.release();
    } finally {
      await worker.terminate();
      await pool.close();
    }
  });
});

describe('opening an object its creator is still making', () => {
  for (const kind of KINDS) {
    it(`${kind}: open waits on the event loop (timers run), honours timeout and signal, and resolves once the creator publishes`, async () => {
      const n = name(`slow-${kind}`);
      const creator = peer(['create', kind, n], 'create:before-publish');
      await stopped(creator, 'the creator, before publishing');
      let ticks = 0;
      const timer = setInterval(() => ticks++, 5);
      try {
        await rejectsWith(API[kind].open(n, { timeout: 300 }), 'ERR_IPCKIT_TIMEOUT');
        assert.ok(ticks >= 5, `the event loop ran ${ticks} times during a 300 ms open`);
        const ac = new AbortController();
        const aborted = API[kind].open(n, { signal: ac.signal, timeout: 10_000 });
        setTimeout(() => ac.abort(), 50);
        await rejectsWith(aborted, 'ERR_IPCKIT_ABORTED');
        const pending = API[kind].open(n, { timeout: 10_000 });
        await sleep(100);
        process.kill(creator.child.pid!, 'SIGCONT');
        const h = await within(pending, 10_000, 'the open once the creator published');
        await h.close();
      } finally {
        clearInterval(timer);
        creator.child.stdin!.end();
        await creator.done;
      }
    });
  }

  it('a creator that dies before publishing: ERR_IPCKIT_CORRUPT at the first look after its death', async () => {
    const n = name('dead-creator');
    const creator = peer(['create', 'ring', n], 'create:before-publish');
    await stopped(creator, 'the creator');
    creator.child.kill('SIGKILL');
    await creator.done;
    await within(rejectsWith(openRing(n, { timeout: 60_000 }), 'ERR_IPCKIT_CORRUPT'), 10_000, 'the verdict on a dead creator');
  });

  it('the …Sync forms wait (blocking) in a worker thread', async () => {
    for (const [kind, fn] of [['ring', 'openRingSync'], ['workqueue', 'openWorkQueueSync'], ['mutex', 'openMutexSync'], ['pool', 'openBoundedPoolSync']] as const) {
      const n = name(`sync-${kind}`);
      const creator = peer(['create', kind, n], 'create:before-publish');
      await stopped(creator, 'the creator');
      const worker = new Worker(
        `const { parentPort, workerData } = require('node:worker_threads');
         import(workerData.index).then(async (m) => {
           parentPort.postMessage('opening');
           try {
             const h = m[workerData.fn](workerData.name, { timeout: 10000 });
             parentPort.postMessage('opened');
             await h.close();
           } catch (e) { parentPort.postMessage(e.code ?? String(e)); }
         });`,
        { eval: true, workerData: { name: n, fn, index: new URL('../../src/index.js', import.meta.url).href } },
      );
      const messages: unknown[] = [];
      worker.on('message', (m) => messages.push(m));
      const exited = new Promise((r) => worker.once('exit', r));
      try {
        assert.ok(await waitUntil(() => messages.length > 0, 10_000), 'the worker started');
        await sleep(100);
        assert.deepEqual(messages, ['opening'], `${fn} still waits`);
        process.kill(creator.child.pid!, 'SIGCONT');
        assert.ok(await waitUntil(() => messages.length > 1, 10_000), `${fn} returned`);
        assert.deepEqual(messages, ['opening', 'opened']);
        await within(exited, 10_000, 'the worker ends');
      } finally {
        await worker.terminate();
        creator.child.stdin!.end();
        await creator.done;
      }
    }
  });
});

describe('kind safety', () => {
  it('opening or removing an object as another kind is ERR_IPCKIT_WRONG_KIND, and the object is left intact', async () => {
    const made = Object.fromEntries(KINDS.map((k) => [k, name(`kind-${k}`)])) as Record<Kind, string>;
    const handles = KINDS.map((k) => API[k].create(made[k]));
    try {
      for (const is of KINDS) {
        for (const as of KINDS) {
          if (is === as) continue;
          const e = await rejectsWith(API[as].open(made[is]), 'ERR_IPCKIT_WRONG_KIND');
          assert.match(e.message, new RegExp(`is a ${NAMES[is]}, not a ${NAMES[as]}`));
          throwsWith(() => API[as].unlink(made[is]), 'ERR_IPCKIT_WRONG_KIND');
        }
      }
      // Every object is still there and works as what it is.
      for (const k of KINDS) {
        const h = await API[k].open(made[k]);
        await h.close();
      }
    } finally {
      for (const h of handles) await h.close();
    }
    for (const k of KINDS) assert.equal(API[k].unlink(made[k]), true);
  });

  it('an object that is not an ipckit object is refused by every kind: not opened, not removed', async () => {
    const foreign = name('foreign');
    const seg = createSharedMemory(foreign, 8192);
    seg.store(0, 0x12345678);
    seg.close();
    const small = name('small');
    const empty = name('empty');
    for (const [n, size] of [[small, 10], [empty, 0]] as const) {
      const fd = openSync(`/dev/shm${n}`, 'wx', 0o600);
      if (size > 0) writeSync(fd, Buffer.alloc(size, 0x49));
      closeSync(fd);
    }
    for (const k of KINDS) {
      await rejectsWith(API[k].open(foreign), 'ERR_IPCKIT_WRONG_KIND');
      await rejectsWith(API[k].open(small), 'ERR_IPCKIT_WRONG_KIND');
      await rejectsWith(API[k].open(empty, { timeout: 50 }), 'ERR_IPCKIT_CORRUPT'); // never sized: nothing to tell its kind by
      for (const n of [foreign, small, empty]) {
        const e = (() => {
          try {
            API[k].unlink(n);
          } catch (err) {
            return err as { code?: string; message?: string };
          }
          return undefined;
        })();
        assert.equal(e?.code, 'ERR_IPCKIT_WRONG_KIND');
        assert.match(e?.message ?? '', new RegExp(`is not an ipckit ${NAMES[k]} \\(foreign object`));
        assert.ok(existsSync(`/dev/shm${n}`), `${n} is still there`);
      }
    }
    unlinkSync(`/dev/shm${small}`);
    unlinkSync(`/dev/shm${empty}`);
  });
});
