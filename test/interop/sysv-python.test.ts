/**
 * System V IPC with a peer we did not write: Debian's python3-sysv-ipc (the `sysv_ipc`
 * module of /usr/bin/python3), both directions, for message queues and semaphores.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import {
  createSysvMessageQueue,
  createSysvSemaphoreSet,
  createSysvSharedMemory,
  ftok,
  openSysvMessageQueue,
  openSysvSemaphoreSet,
  openSysvSharedMemory,
  removeSysvMessageQueue,
  removeSysvSemaphoreSet,
  removeSysvSharedMemory,
} from '../../src/index.js';
import { jsonLines, run, scratchPath, sleep, uniqueKey, waitUntil, within } from '../helpers.js';
import { writeFileSync } from 'node:fs';

const PY = '/usr/bin/python3';
const haveSysvIpc = spawnSync(PY, ['-c', 'import sysv_ipc'], { stdio: 'ignore' }).status === 0;
const skip = haveSysvIpc ? false : 'needs python3-sysv-ipc (apt-get install python3-sysv-ipc; .ci/run installs it)';

const queues: number[] = [];
const sets: number[] = [];
const segments: number[] = [];
after(() => {
  for (const id of queues) removeSysvMessageQueue({ id });
  for (const id of sets) removeSysvSemaphoreSet({ id });
  for (const id of segments) removeSysvSharedMemory({ id });
});

/** python3 with sysv_ipc imported; `key` is passed as a signed C key_t, as sysv_ipc takes it. */
function python(code: string, key: number, extra: string[] = []): ReturnType<typeof run> {
  return run(PY, ['-c', `import sys, json, time, os, sysv_ipc\nkey = int(sys.argv[1])\n${code}`, String(key | 0), ...extra]);
}

describe('sysv interop: python3-sysv-ipc message queues', { skip }, () => {
  it('python sends typed messages; we receive them with the selectors 0, n, -n and except', async () => {
    const q = createSysvMessageQueue(uniqueKey(), { codec: 'utf8' });
    queues.push(q.id);
    try {
      const py = await python(
        `mq = sysv_ipc.MessageQueue(key)
for t, text in [(3, 'three'), (1, 'one'), (2, 'two'), (1, 'one again'), (5, 'five')]:
    mq.send(text.encode(), type=t)
print(mq.current_messages)`,
        q.key,
      ).done;
      assert.equal(py.code, 0, py.stderr);
      assert.equal(py.stdout.trim(), '5');
      assert.deepEqual(await q.receiveWithType({ type: 1 }), { type: 1, message: 'one' });
      assert.deepEqual(await q.receiveWithType({ type: -2 }), { type: 1, message: 'one again' });
      assert.deepEqual(await q.receiveWithType({ type: 3, except: true }), { type: 2, message: 'two' });
      assert.deepEqual(await q.receiveWithType(), { type: 3, message: 'three' });
      assert.deepEqual(await q.receiveWithType({ type: 5 }), { type: 5, message: 'five' });
    } finally {
      await q.close();
    }
  });

  it('we send typed messages; python receives them with its selectors, and a blocked python receive wakes', async () => {
    const q = createSysvMessageQueue(uniqueKey(), { codec: 'utf8' });
    queues.push(q.id);
    try {
      const py = python(
        `mq = sysv_ipc.MessageQueue(key)
out = []
m, t = mq.receive(type=7)
out.append([m.decode(), t])
print(json.dumps({"first": True}), flush=True)
for sel in [-4, 0, 0]:
    m, t = mq.receive(type=sel)
    out.append([m.decode(), t])
print(json.dumps(out), flush=True)`,
        q.key,
      );
      const lines = jsonLines(py);
      await sleep(100); // python blocks in msgrcv for type 7, passing over these
      await q.send('nine', { type: 9 });
      await q.send('four', { type: 4 });
      await q.send('two', { type: 2 });
      await sleep(50);
      await q.send('seven', { type: 7 });
      assert.deepEqual(await lines.next(10_000), { first: true });
      const r = await within(py.done, 10_000);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await lines.next(1000), [['seven', 7], ['two', 2], ['nine', 9], ['four', 4]]);
    } finally {
      await q.close();
    }
  });

  it('python\'s ftok gives our key, and python sees the queue\'s ipc_perm as stat() reports it', async () => {
    const path = scratchPath('ftok');
    writeFileSync(path, 'x');
    const key = ftok(path, 65);
    const py = await run(PY, ['-c', 'import sys, sysv_ipc\nprint(sysv_ipc.ftok(sys.argv[1], 65, True) & 0xffffffff)', path]).done;
    assert.equal(py.code, 0, py.stderr);
    assert.equal(Number(py.stdout.trim()), key);
    const q = createSysvMessageQueue(uniqueKey(), { mode: 0o640, maxBytes: 4096 });
    queues.push(q.id);
    try {
      const info = await python(`mq = sysv_ipc.MessageQueue(key)\nprint(json.dumps([mq.id, mq.uid, mq.cuid, mq.mode & 0o777, mq.max_size]))`, q.key).done;
      assert.equal(info.code, 0, info.stderr);
      const s = q.stat();
      assert.deepEqual(JSON.parse(info.stdout), [s.id, s.uid, s.cuid, s.mode, s.maxBytes]);
      assert.equal(s.mode, 0o640);
    } finally {
      await q.close();
    }
  });
});

describe('sysv interop: python3-sysv-ipc semaphores', { skip }, () => {
  it('python waits for our release; we wait for python\'s', async () => {
    const s = createSysvSemaphoreSet(uniqueKey(), { value: 0 });
    sets.push(s.id);
    try {
      const py = python(
        `sem = sysv_ipc.Semaphore(key)
sem.acquire(timeout=10)
print(json.dumps({"acquired": sem.value}), flush=True)
time.sleep(0.2)
sem.release(2)
print(json.dumps({"released": True}), flush=True)`,
        s.key,
      );
      const lines = jsonLines(py);
      await sleep(50);
      assert.equal(s.waitingToTake(0), 1, 'python waits in semop');
      await s.op([{ index: 0, delta: 1 }]);
      assert.deepEqual(await lines.next(10_000), { acquired: 0 });
      // Our op waits on a thread of ours until python releases.
      assert.equal(await within(s.op([{ index: 0, delta: -2 }], { timeout: 10_000 }), 10_000), true);
      assert.deepEqual(await lines.next(1000), { released: true });
      assert.equal((await py.done).code, 0);
    } finally {
      await s.close();
    }
  });

  it('a python holder with undo killed by SIGKILL: the kernel gives its permit back, and our wait gets it', async () => {
    const s = createSysvSemaphoreSet(uniqueKey(), { value: 1 });
    sets.push(s.id);
    try {
      const py = python(
        `sem = sysv_ipc.Semaphore(key)
sem.undo = True
sem.acquire()
print(json.dumps({"held": True}), flush=True)
time.sleep(60)`,
        s.key,
      );
      assert.deepEqual(await jsonLines(py).next(10_000), { held: true });
      assert.equal(s.get(0), 0);
      const waiting = s.op([{ index: 0, delta: -1 }], { undo: true, timeout: 10_000 });
      await sleep(30);
      py.child.kill('SIGKILL');
      assert.equal(await within(waiting, 10_000), true);
      assert.ok(await waitUntil(() => s.get(0) === 0, 1000), 'we hold it now');
    } finally {
      await s.close();
    }
  });

  it('a set python made (IPC_CREX, initial value) opens here by key, without waiting for an initialisation python never marks', async () => {
    const key = uniqueKey();
    const py = await python(`sem = sysv_ipc.Semaphore(key, sysv_ipc.IPC_CREX, 0o600, 3)\nprint(sem.id)`, key).done;
    assert.equal(py.code, 0, py.stderr);
    const id = Number(py.stdout.trim());
    sets.push(id);
    const s = await openSysvSemaphoreSet(key);
    try {
      assert.equal(s.id, id);
      assert.equal(s.get(0), 3);
      assert.equal(s.stat().opTime, null, 'python set the value with SETVAL: no semop yet');
    } finally {
      await s.close();
    }
  });
});

describe('sysv interop: python3-sysv-ipc message queue made by python, opened by key here', { skip }, () => {
  it('opens a queue python created, after its owner check', async () => {
    const key = uniqueKey();
    const py = await python(`mq = sysv_ipc.MessageQueue(key, sysv_ipc.IPC_CREX, 0o600)\nmq.send(b'from python', type=4)\nprint(mq.id)`, key).done;
    assert.equal(py.code, 0, py.stderr);
    queues.push(Number(py.stdout.trim()));
    const q = await openSysvMessageQueue(key, { codec: 'utf8' });
    try {
      assert.deepEqual(await q.receiveWithType(), { type: 4, message: 'from python' });
    } finally {
      await q.close();
    }
  });
});

describe('sysv interop: python3-sysv-ipc shared memory', { skip }, () => {
  it('python writes a segment we made; we write one python made; both read what the other wrote', async () => {
    const seg = createSysvSharedMemory(uniqueKey(), 4096);
    segments.push(seg.id);
    try {
      new Uint8Array(seg.buffer).set(Buffer.from('from node'), 0);
      const py = await python(`m = sysv_ipc.SharedMemory(key)\nprint(m.read(9).decode(), m.size, flush=True)\nm.write(b'from python', 100)\nm.detach()`, seg.key).done;
      assert.equal(py.code, 0, py.stderr);
      assert.equal(py.stdout.trim(), 'from node 4096');
      assert.equal(Buffer.from(seg.buffer, 100, 11).toString(), 'from python');
      assert.equal(seg.stat().lastPid > 0, true);
    } finally {
      seg.close();
    }
    const key = uniqueKey();
    const made = await python(`m = sysv_ipc.SharedMemory(key, sysv_ipc.IPC_CREX, 0o600, 8192)\nm.write(b'python made this', 0)\nprint(m.id)`, key).done;
    assert.equal(made.code, 0, made.stderr);
    segments.push(Number(made.stdout.trim()));
    const theirs = await openSysvSharedMemory(key);
    try {
      assert.equal(theirs.size, 8192);
      assert.equal(theirs.read(0, 16).toString(), 'python made this');
      theirs.write(Buffer.from('node was here'), 4000);
      const back = await python(`m = sysv_ipc.SharedMemory(key)\nprint(m.read(13, 4000).decode())`, key).done;
      assert.equal(back.stdout.trim(), 'node was here');
    } finally {
      theirs.close();
    }
  });
});
