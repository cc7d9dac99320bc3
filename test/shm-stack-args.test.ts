/**
 * Bad arguments to the shared-memory object stack (ring, work queue, mutex, pool, shm,
 * semaphore) throw ERR_IPCKIT_INVALID_ARGUMENT synchronously, from every public function
 * and method, before any fast path and before the first await: an async entry point never
 * turns a bad argument into a rejected promise, and nothing is done.
 */
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import {
  createBoundedPool,
  createMutex,
  createRing,
  createSemaphore,
  createSharedMemory,
  createWorkQueue,
  mapFile,
  openBoundedPool,
  openBoundedPoolSync,
  openMutex,
  openMutexSync,
  openRing,
  openRingChannel,
  openRingChannelSync,
  openRingSync,
  openSemaphore, openSemaphoreSync,
  openSharedMemory, openSharedMemorySync,
  openWorkQueue,
  openWorkQueueSync,
  unlinkBoundedPool,
  unlinkMutex,
  unlinkRing,
  unlinkSemaphore,
  unlinkSharedMemory,
  unlinkWorkQueue,} from '../src/index.js';
import { checkFdLeaks, scratchPath, uniqueName } from './helpers.js';

// Cleanup first (before the fd check): the handles, then the names.
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});
checkFdLeaks();

/** `fn` throws ERR_IPCKIT_INVALID_ARGUMENT at once (it does not return a promise that rejects). */
function refused(what: string, fn: () => unknown): void {
  let result: unknown;
  let error: unknown;
  try {
    result = fn();
  } catch (e) {
    error = e;
  }
  if (result instanceof Promise) result.catch(() => {});
  assert.ok(error !== undefined, `${what}: no synchronous throw${result instanceof Promise ? ' (it returned a promise)' : ''}`);
  assert.equal((error as { code?: string }).code, 'ERR_IPCKIT_INVALID_ARGUMENT', `${what}: ${(error as Error).message}`);
}

const bad = { timeout: -1 };
const badSignal = { signal: 'now' as unknown as AbortSignal };

it('ring: every entry point', async () => {
  const n = uniqueName('args-ring');
  const ring = createRing(n, { capacityBytes: 4096 });
  cleanups.push(() => unlinkRing(n));
  const tx = await ring.sender();
  const rx = await ring.receiver();
  cleanups.push(() => tx.close(), () => rx.close(), () => ring.close());
  refused('createRing capacity', () => createRing(uniqueName(), { capacityBytes: 'big' as unknown as number }));
  refused('createRing persistent', () => createRing(uniqueName(), { persistent: 'yes' as unknown as boolean }));
  refused('createRing name', () => createRing(''));
  refused('openRing timeout', () => openRing(n, bad));
  refused('openRing signal', () => openRing(n, badSignal));
  refused('openRing owner', () => openRing(n, { owner: -1 }));
  refused('openRing name', () => openRing(42 as unknown as string));
  refused('openRingSync timeout', () => openRingSync(n, bad));
  refused('unlinkRing', () => unlinkRing('/a/b'));
  refused('ring.sender codec', () => ring.sender({ codec: 'klingon' as never }));
  refused('ring.sender timeout', () => ring.sender(bad));
  refused('ring.receiver spin', () => ring.receiver({ spinMicros: -1 }));
  refused('ring.senderSync signal', () => ring.senderSync(badSignal));
  refused('ring.receiverSync timeout', () => ring.receiverSync(bad));
  refused('openRingChannel with two names (the 0.x shape)', () => openRingChannel(n as never, n as never));
  refused('openRingChannel name', () => openRingChannel({ send: '', receive: n }));
  refused('openRingChannel codec', () => openRingChannel({ send: n, receive: n }, { codec: 'klingon' as never }));
  refused('openRingChannelSync timeout', () => openRingChannelSync({ send: n, receive: n }, bad));
  const m = new Uint8Array(1);
  refused('send timeout (with room: before the fast path)', () => tx.send(m, bad));
  refused('send signal', () => tx.send(m, badSignal));
  refused('sendMany not iterable', () => tx.sendMany(5 as unknown as Uint8Array[]));
  refused('sendMany timeout', () => tx.sendMany([m], bad));
  refused('trySendMany not an array', () => tx.trySendMany('x' as unknown as Uint8Array[]));
  refused('trySendMany start', () => tx.trySendMany([m], -1));
  refused('sendSync timeout', () => tx.sendSync(m, -1));
  refused('receive timeout', () => rx.receive(bad));
  refused('receiveMany max', () => rx.receiveMany(0));
  refused('receiveMany signal', () => rx.receiveMany(1, badSignal));
  refused('receiveView timeout', () => rx.receiveView(bad));
  refused('tryReceiveMany max', () => rx.tryReceiveMany(0));
  refused('receiveSync timeout', () => rx.receiveSync(-1));
  refused('receiveManySync max', () => rx.receiveManySync(0));
  assert.equal(rx.tryReceive(), undefined, 'nothing was sent by the refused calls');
});

it('work queue: every entry point', async () => {
  const n = uniqueName('args-wq');
  const q = createWorkQueue(n, { capacityJobs: 4 });
  cleanups.push(() => unlinkWorkQueue(n), () => q.close());
  refused('createWorkQueue capacity', () => createWorkQueue(uniqueName(), { capacityJobs: 0 }));
  refused('createWorkQueue spin', () => createWorkQueue(uniqueName(), { spinMicros: -1 }));
  refused('openWorkQueue timeout', () => openWorkQueue(n, bad));
  refused('openWorkQueue codec', () => openWorkQueue(n, { codec: 'klingon' as never }));
  refused('openWorkQueueSync signal', () => openWorkQueueSync(n, badSignal));
  refused('unlinkWorkQueue', () => unlinkWorkQueue(7 as unknown as string));
  const item = new Uint8Array(1);
  refused('put timeout (with room)', () => q.put(item, bad));
  refused('putMany not iterable', () => q.putMany(3 as unknown as Uint8Array[]));
  refused('putMany signal', () => q.putMany([item], badSignal));
  refused('get timeout', () => q.take(bad));
  refused('takeMany max', () => q.takeMany(0));
  refused('tryTakeMany max', () => q.tryTakeMany(-2));
  refused('takeSync timeout', () => q.takeSync(-1));
  refused('ack not a job', () => q.ack(5 as never));
  refused('join signal', () => q.join(badSignal));
  assert.equal(q.info().ready, 0, 'nothing was put by the refused calls');
});

it('mutex: every entry point', async () => {
  const n = uniqueName('args-mutex');
  const mu = createMutex(n);
  cleanups.push(() => unlinkMutex(n), () => mu.close());
  refused('createMutex unlinkOnClose', () => createMutex(uniqueName(), { unlinkOnClose: 1 as unknown as boolean }));
  refused('openMutex timeout', () => openMutex(n, bad));
  refused('openMutex unlinkOnClose', () => openMutex(n, { unlinkOnClose: 'x' as unknown as boolean }));
  refused('openMutexSync signal', () => openMutexSync(n, badSignal));
  refused('unlinkMutex', () => unlinkMutex(''));
  refused('lock timeout (free: before the fast path)', () => mu.lock(bad));
  refused('lockSync timeout', () => mu.lockSync(bad));
  refused('withLock fn', () => mu.withLock(5 as never));
  refused('withLock options', () => mu.withLock(() => 1, bad));
  assert.equal(mu.state(), 'free', 'the refused calls took nothing');
});

it('pool: every entry point', async () => {
  const n = uniqueName('args-pool');
  const pool = createBoundedPool(n, { permits: 1 });
  cleanups.push(() => unlinkBoundedPool(n), () => pool.close());
  refused('createBoundedPool permits', () => createBoundedPool(uniqueName(), { permits: 0 }));
  refused('createBoundedPool maxParticipants', () => createBoundedPool(uniqueName(), { permits: 1, maxParticipants: 0 }));
  refused('openBoundedPool checkInterval', () => openBoundedPool(n, { checkInterval: 0 }));
  refused('openBoundedPool timeout', () => openBoundedPool(n, bad));
  refused('openBoundedPoolSync unlinkOnClose', () => openBoundedPoolSync(n, { unlinkOnClose: 'x' as unknown as boolean }));
  refused('unlinkBoundedPool', () => unlinkBoundedPool('/x/y'));
  refused('acquire timeout (free: before the fast path)', () => pool.acquire(bad));
  refused('acquire signal', () => pool.acquire(badSignal));
  assert.equal(pool.available(), 1, 'the refused calls took nothing');
});

it('shared memory and mapped files: every entry point', async () => {
  const n = uniqueName('args-shm');
  const seg = createSharedMemory(n, 4096);
  cleanups.push(() => unlinkSharedMemory(n), () => seg.close());
  refused('createSharedMemory size', () => createSharedMemory(uniqueName(), 0));
  refused('createSharedMemory reserve', () => createSharedMemory(uniqueName(), 10, { reserve: 'y' as unknown as boolean }));
  refused('openSharedMemory readOnly', () => openSharedMemorySync(n, { readOnly: 'y' as unknown as boolean }));
  refused('openSharedMemory owner', () => openSharedMemory(n, { owner: -5 }));
  refused('unlinkSharedMemory', () => unlinkSharedMemory(''));
  refused('mapFile path', () => mapFile(''));
  refused('mapFile owner', () => mapFile(scratchPath('f'), { size: 10, owner: -1 }));
  refused('wait timeout', () => seg.wait(0, 1, bad));
  refused('wait expected', () => seg.wait(0, 'x' as unknown as number));
  refused('waitSync expected', () => seg.waitSync(0, 'x' as unknown as number, 1));
  refused('waitSync timeout', () => seg.waitSync(0, 0, -1));
  refused('notify count', () => seg.notify(0, -1));
  refused('sync async', () => seg.sync({ async: 'y' as unknown as boolean }));
  refused('read offset', () => seg.read(-1));
  refused('load index', () => seg.load(4096));
});

it('semaphore: every entry point', async () => {
  const n = uniqueName('args-sem');
  const s = createSemaphore(n, { value: 1 });
  cleanups.push(() => unlinkSemaphore(n), () => s.close());
  refused('createSemaphore value', () => createSemaphore(uniqueName(), { value: -1 }));
  refused('createSemaphore unlinkOnClose', () => createSemaphore(uniqueName(), { unlinkOnClose: 'y' as unknown as boolean }));
  refused('openSemaphore unlinkOnClose', () => openSemaphoreSync(n, { unlinkOnClose: 'y' as unknown as boolean }));
  refused('openSemaphore owner', () => openSemaphore(n, { owner: -1 }));
  refused('unlinkSemaphore', () => unlinkSemaphore('/a/b'));
  refused('wait timeout (a permit there: before the fast path)', () => s.wait(bad));
  refused('wait signal', () => s.wait(badSignal));
  refused('waitSync timeout', () => s.waitSync(bad));
  refused('acquire timeout', () => s.acquire(bad));
  assert.equal(s.value(), 1, 'the refused calls took nothing');
});
