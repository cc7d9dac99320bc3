/** System V semaphore sets: atomic operations, waits off the loop and off libuv's pool, SEM_UNDO when a holder is killed, sysvLock. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, describe, it } from 'node:test';
import { createSysvSemaphoreSet, IPC_PRIVATE, openSysvSemaphoreSet, removeSysvSemaphoreSet, sysvLock, type SysvSemaphoreSet } from '../src/index.js';
import { lineFrom, rejectsWith, run, sleep, throwsWith, trackSysv, uniqueKey, waitUntil, within } from './helpers.js';

const made: number[] = [];
after(() => {
  for (const id of made) removeSysvSemaphoreSet({ id });
});

function set(options: Parameters<typeof createSysvSemaphoreSet>[1] = {}): SysvSemaphoreSet {
  const s = createSysvSemaphoreSet(uniqueKey(), options);
  made.push(s.id);
  return s;
}

const index = JSON.stringify(new URL('../src/index.js', import.meta.url).href);

/** A node process running `body` (ES module code with the ipckit exports in scope as `ipc`), killed at the end of the file. */
function child(body: string): ReturnType<typeof run> {
  return run(process.execPath, ['--input-type=module', '-e', `const ipc = await import(${index});\n${body}`]);
}

describe('sysv sem: values and operations', () => {
  it('creates a set with its values; get, getAll, set, setAll; stat; initialised before anyone sees it', async () => {
    const s = set({ count: 3, values: [1, 0, 5] });
    try {
      assert.equal(s.count, 3);
      assert.deepEqual(s.getAll(), [1, 0, 5]);
      assert.equal(s.get(2), 5);
      s.set(1, 7);
      s.setAll([2, 3, 4]);
      assert.deepEqual(s.getAll(), [2, 3, 4]);
      const st = s.stat();
      assert.equal(st.kind, 'sem');
      assert.equal(st.count, 3);
      assert.equal(st.mode, 0o600);
      assert.equal(st.cuid, process.geteuid!());
      assert.ok(st.opTime instanceof Date, 'marked initialised (sem_otime set)');
      assert.equal(s.lastPid(0), process.pid);
      throwsWith(() => createSysvSemaphoreSet(s.key), 'ERR_IPCKIT_EXISTS');
      const again = await openSysvSemaphoreSet(s.key, { wait: true, timeout: 1000 });
      assert.equal(again.count, 3);
      await again.close();
    } finally {
      await s.close();
    }
  });

  it('applies every operation at once or none', async () => {
    const s = set({ count: 2, values: [1, 0] });
    try {
      assert.equal(await s.op([{ index: 0, delta: -1 }, { index: 1, delta: -1 }], { wait: false }), false, 'semaphore 1 is 0: nothing happens');
      assert.deepEqual(s.getAll(), [1, 0], 'not even the first operation');
      assert.equal(s.tryOp([{ index: 0, delta: -1 }, { index: 1, delta: 2 }]), true);
      assert.deepEqual(s.getAll(), [0, 2]);
      assert.equal(s.tryOp([{ index: 0, delta: 0 }]), true, 'delta 0 waits for zero: it is zero');
      assert.equal(s.tryOp([{ index: 1, delta: 0 }]), false);
    } finally {
      await s.close();
    }
  });

  it('a wait ends when another process gives; a zero-wait when it reaches zero; the counts of waiters show them', async () => {
    const s = set({ count: 2, values: [0, 1] });
    try {
      const taking = s.op([{ index: 0, delta: -2 }]);
      const zero = s.op([{ index: 1, delta: 0 }]);
      assert.ok(await waitUntil(() => s.waitingToTake(0) === 1 && s.waitingForZero(1) === 1, 2000), 'GETNCNT and GETZCNT count our waits');
      const giver = child(`const s = await ipc.openSysvSemaphoreSet({ id: ${s.id} }); await s.op([{ index: 0, delta: 2 }, { index: 1, delta: -1 }]); console.log(process.pid); await s.close();`);
      const r = await giver.done;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await within(taking, 5000), true);
      assert.equal(await within(zero, 5000), true);
      assert.deepEqual(s.getAll(), [0, 0]);
      assert.equal(s.lastPid(0), process.pid, 'our wait was the last operation on 0');
    } finally {
      await s.close();
    }
  });

  it('timeout, abort and close end a wait having done nothing', async () => {
    const s = set({ count: 1, value: 0 });
    try {
      const started = Date.now();
      const t = await rejectsWith(s.op([{ index: 0, delta: -1 }], { timeout: 60 }), 'ERR_IPCKIT_TIMEOUT');
      assert.ok(Date.now() - started >= 55, 'not early');
      assert.match(t.message, /timed out after 60 ms/);
      const ac = new AbortController();
      const aborted = s.op([{ index: 0, delta: -1 }], { signal: ac.signal });
      setTimeout(() => ac.abort(new Error('no more')), 20);
      const e = await rejectsWith(within(aborted, 2000), 'ERR_IPCKIT_ABORTED');
      assert.equal((e.cause as Error).message, 'no more');
      const other = await openSysvSemaphoreSet(s.key);
      const closing = rejectsWith(other.op([{ index: 0, delta: -1 }]), 'ERR_IPCKIT_CLOSED');
      await sleep(20);
      await other.close();
      await within(closing, 2000);
      s.set(0, 1);
      await sleep(100);
      assert.equal(s.get(0), 1, 'no cancelled wait took the permit later');
      assert.equal(s.waitingToTake(0), 0, 'and none still waits in the kernel');
    } finally {
      await s.close();
    }
  });

  it('waits keep the event loop turning and libuv\'s pool free', async () => {
    const s = set({ count: 1, value: 0 });
    let ticks = 0;
    const iv = setInterval(() => ticks++, 5);
    try {
      const waits = Array.from({ length: 8 }, () => s.op([{ index: 0, delta: -1 }], { timeout: 10_000 }));
      const text = await within(readFile(new URL(import.meta.url), 'utf8'), 2000, 'fs.readFile while 8 semaphore waits are pending');
      assert.ok(text.length > 0);
      await sleep(100);
      assert.ok(ticks >= 5, `the loop ran ${ticks} timer ticks`);
      s.set(0, 8);
      assert.equal((await within(Promise.all(waits), 5000)).length, 8);
      assert.equal(s.get(0), 0);
    } finally {
      clearInterval(iv);
      await s.close();
    }
  });

  it('a set removed while we wait ends the wait with ERR_IPCKIT_CLOSED (details.removed)', async () => {
    const s = set({ count: 1, value: 0 });
    const other = await openSysvSemaphoreSet(s.key);
    try {
      const waiting = rejectsWith(within(other.op([{ index: 0, delta: -1 }]), 5000, 'a wait on a removed set'), 'ERR_IPCKIT_CLOSED');
      await sleep(30);
      const ipcrm = await run('ipcrm', ['-s', String(s.id)]).done;
      assert.equal(ipcrm.code, 0, ipcrm.stderr);
      const e = await waiting;
      assert.equal(e.details?.removed, true);
      throwsWith(() => other.get(0), 'ERR_IPCKIT_CLOSED');
    } finally {
      await other.close();
      await s.close();
    }
  });

  it('opSync blocks this thread up to its timeout; open { wait } waits for the key and for the creator to initialise it', async () => {
    const s = set({ count: 1, value: 1 });
    try {
      s.opSync([{ index: 0, delta: -1 }]);
      const started = Date.now();
      assert.throws(() => s.opSync([{ index: 0, delta: -1 }], { timeout: 80 }), (e: Error & { code?: string }) => e.code === 'ERR_IPCKIT_TIMEOUT');
      assert.ok(Date.now() - started >= 75);
    } finally {
      await s.close();
    }
    const key = uniqueKey();
    const opening = openSysvSemaphoreSet(key, { wait: true, timeout: 5000 });
    await sleep(30);
    const c = createSysvSemaphoreSet(key, { value: 3 });
    made.push(c.id);
    const o = await within(opening, 5000);
    assert.equal(o.get(0), 3, 'the value its creator set, never the zero before');
    await o.close();
    await c.close();
  });
});

describe('sysv sem: undo', () => {
  it('SEM_UNDO: the kernel gives back what a process took when it is killed with SIGKILL, taken at once or after a wait', async () => {
    const s = set({ count: 2, values: [3, 0] });
    try {
      // The child takes 2 of semaphore 0 at once (on the loop thread), then 1 of semaphore 1 after waiting for it (on a thread of ours).
      const holder = child(`
        const s = await ipc.openSysvSemaphoreSet({ id: ${s.id} });
        await s.op([{ index: 0, delta: -2 }], { undo: true });
        console.log('took 0');
        await s.op([{ index: 1, delta: -1 }], { undo: true });
        console.log('took 1');
        setInterval(() => {}, 1000);`);
      await within(lineFrom(holder.child.stdout!, /^took 0/), 10_000, 'the child takes at once');
      assert.deepEqual(s.getAll(), [1, 0]);
      assert.ok(await waitUntil(() => s.waitingToTake(1) === 1, 5000), 'the child waits for semaphore 1');
      s.set(1, 1);
      await within(lineFrom(holder.child.stdout!, /^took 1/), 10_000, 'the child takes after waiting');
      assert.deepEqual(s.getAll(), [1, 0]);
      holder.child.kill('SIGKILL');
      await holder.done;
      assert.deepEqual(s.getAll(), [3, 1], 'the kernel undid both');
    } finally {
      await s.close();
    }
  });

  it('sysvLock: one holder at a time across processes; a killed holder\'s lock is freed by the kernel', async () => {
    const s = set({ count: 1, value: 1 });
    const lock = sysvLock(s);
    try {
      const held = lock.tryLock()!;
      assert.ok(held);
      assert.equal(lock.tryLock(), undefined);
      assert.equal(lock.locked, true);
      assert.equal(held.release(), true);
      assert.equal(held.release(), false, 'released once');
      {
        using h = await lock.lock();
        assert.equal(h.released, false);
        assert.equal(lock.locked, true);
      }
      assert.equal(lock.locked, false, 'using released it');
      const holder = child(`
        const s = await ipc.openSysvSemaphoreSet({ id: ${s.id} });
        await ipc.sysvLock(s).lock();
        console.log('held');
        setInterval(() => {}, 1000);`);
      await within(lineFrom(holder.child.stdout!, /^held/), 10_000, 'the child holds the lock');
      await rejectsWith(lock.lock({ timeout: 50 }), 'ERR_IPCKIT_TIMEOUT');
      const waiting = lock.lock({ timeout: 10_000 });
      await sleep(30);
      holder.child.kill('SIGKILL');
      const mine = await within(waiting, 5000, 'the lock once its holder was killed');
      assert.equal(lock.locked, true);
      mine.release();
    } finally {
      await s.close();
    }
  });
});

describe('sysv sem: bad arguments throw synchronously', () => {
  it('every entry point refuses bad arguments before doing anything', async () => {
    const s = set({ count: 2 });
    try {
      const cases: Array<[string, () => unknown]> = [
        ['create: key', () => createSysvSemaphoreSet(-1.5)],
        ['create: count', () => createSysvSemaphoreSet(IPC_PRIVATE, { count: 0 })],
        ['create: value', () => createSysvSemaphoreSet(IPC_PRIVATE, { value: 32768 })],
        ['create: values length', () => createSysvSemaphoreSet(IPC_PRIVATE, { count: 2, values: [1] })],
        ['create: value and values', () => createSysvSemaphoreSet(IPC_PRIVATE, { value: 1, values: [1] })],
        ['open: target', () => openSysvSemaphoreSet('0x1' as never)],
        ['open: both key and id', () => openSysvSemaphoreSet({ key: 1, id: 1 } as never)],
        ['open: anyOwner', () => openSysvSemaphoreSet(1, { anyOwner: 'yes' as never })],
        ['open: timeout', () => openSysvSemaphoreSet(1, { wait: true, timeout: -1 })],
        ['op: empty', () => s.op([])],
        ['op: index', () => s.op([{ index: 2, delta: 1 }])],
        ['op: delta', () => s.op([{ index: 0, delta: 1.5 }])],
        ['op: delta range', () => s.op([{ index: 0, delta: 40000 }])],
        ['op: undo', () => s.op([{ index: 0, delta: 1 }], { undo: 1 as never })],
        ['op: signal', () => s.op([{ index: 0, delta: 1 }], { signal: {} as never })],
        ['tryOp: not an array', () => s.tryOp({ index: 0, delta: 1 } as never)],
        ['get: index', () => s.get(-1)],
        ['set: value', () => s.set(0, -1)],
        ['setAll: length', () => s.setAll([1, 2, 3])],
        ['setMode: mode', () => s.setMode(0o1777)],
        ['setOwner: nothing', () => s.setOwner({})],
        ['sysvLock: not a set', () => sysvLock({} as never)],
        ['sysvLock: index', () => sysvLock(s, { index: 5 })],
      ];
      for (const [what, call] of cases) throwsWith(call, 'ERR_IPCKIT_INVALID_ARGUMENT');
      assert.deepEqual(s.getAll(), [0, 0], 'nothing was done');
    } finally {
      await s.close();
    }
    // A private set, made here and recorded for the census, removed on close.
    const p = createSysvSemaphoreSet(IPC_PRIVATE, { removeOnClose: true });
    trackSysv('sem', p.id);
    await p.close();
    await rejectsWith(openSysvSemaphoreSet({ id: p.id }), 'ERR_IPCKIT_NOT_FOUND');
  });
});
