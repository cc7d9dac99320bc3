/** System V shared memory: a SharedArrayBuffer over the segment, wait/notify across processes, read-only attach, IPC_RMID semantics, ipc_perm. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createSysvSharedMemory, IPC_PRIVATE, openSysvSharedMemory, openSysvSharedMemorySync, removeSysvSharedMemory } from '../src/index.js';
import { readSysvTable } from '../src/os/sysvipc.js';
import { lineFrom, rejectsWith, run, sleep, throwsWith, trackSysv, uniqueKey, waitUntil, within } from './helpers.js';

const made: number[] = [];
after(() => {
  for (const id of made) removeSysvSharedMemory({ id });
});

const index = JSON.stringify(new URL('../src/index.js', import.meta.url).href);
function child(body: string): ReturnType<typeof run> {
  return run(process.execPath, ['--input-type=module', '-e', `const ipc = await import(${index});\n${body}`]);
}

describe('sysv shm', () => {
  it('a SharedArrayBuffer over the segment: what one attachment writes another reads; zero-filled; stat and perm', async () => {
    const a = createSysvSharedMemory(uniqueKey(), 10_000);
    made.push(a.id);
    const b = await openSysvSharedMemory(a.key);
    try {
      assert.equal(a.size, 10_000);
      assert.equal(b.size, 10_000);
      assert.ok(a.buffer instanceof SharedArrayBuffer);
      assert.equal(a.buffer.byteLength, 10_000);
      assert.ok(b.read().every((x) => x === 0), 'a new segment is zero-filled');
      new Uint8Array(a.buffer).set(Buffer.from('hello'), 100);
      assert.equal(b.read(100, 5).toString(), 'hello');
      b.write(Buffer.from('world'), 9_995);
      assert.equal(Buffer.from(a.buffer, 9_995, 5).toString(), 'world');
      Atomics.store(new Int32Array(a.buffer), 3, 41);
      assert.equal(b.add(3, 1), 41);
      assert.equal(a.load(3), 42);
      assert.equal(b.compareExchange(3, 42, 7), 42);
      const s = a.stat();
      assert.deepEqual(
        { family: s.family, kind: s.kind, key: s.key, id: s.id, size: s.size, attached: s.attached, removed: s.removed, mode: s.mode, creatorPid: s.creatorPid },
        { family: 'sysv', kind: 'shm', key: a.key, id: a.id, size: 10_000, attached: 2, removed: false, mode: 0o600, creatorPid: process.pid },
      );
      assert.deepEqual(b.perm(), { family: 'sysv', kind: 'shm', key: a.key, id: a.id, uid: s.uid, gid: s.gid, cuid: s.cuid, cgid: s.cgid, mode: 0o600, seq: s.seq });
      throwsWith(() => createSysvSharedMemory(a.key, 10), 'ERR_IPCKIT_EXISTS');
    } finally {
      a.close();
      b.close();
    }
  });

  it('wait and notify on its words across processes, both ways', async () => {
    const seg = createSysvSharedMemory(uniqueKey(), 4096);
    made.push(seg.id);
    try {
      const c = child(`
        const seg = await ipc.openSysvSharedMemory({ id: ${seg.id} });
        console.log('waiting');
        const r = await seg.wait(0, 0, { timeout: 10000 });
        console.log('woken ' + r + ' ' + seg.load(0));
        seg.store(1, 99);
        seg.notify(1);
        seg.close();`);
      await within(lineFrom(c.child.stdout!, /^waiting/), 10_000, 'the child waits');
      await sleep(50);
      const mine = seg.wait(1, 0, { timeout: 10_000 });
      seg.store(0, 5);
      assert.ok(seg.notify(0) >= 0);
      assert.equal(await within(mine, 10_000), 'ok');
      assert.equal(seg.load(1), 99);
      const r = await c.done;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /woken (ok|not-equal) 5/);
      assert.equal(seg.waitSync(2, 1), 'not-equal');
      assert.equal(seg.waitSync(2, 0, 30), 'timed-out');
    } finally {
      seg.close();
    }
  });

  it('a read-only attach (SHM_RDONLY) reads, loads and waits, and refuses to write', async () => {
    const seg = createSysvSharedMemory(uniqueKey(), 64);
    made.push(seg.id);
    const ro = openSysvSharedMemorySync(seg.key, { readOnly: true });
    try {
      seg.store(0, 12);
      assert.equal(ro.readOnly, true);
      assert.equal(ro.load(0), 12);
      throwsWith(() => ro.buffer, 'ERR_IPCKIT_UNSUPPORTED');
      throwsWith(() => ro.write(Buffer.from('x')), 'ERR_IPCKIT_PERMISSION');
      throwsWith(() => ro.store(0, 1), 'ERR_IPCKIT_PERMISSION');
      assert.equal(ro.read(0, 4).readInt32LE(0), 12);
    } finally {
      ro.close();
      seg.close();
    }
  });

  it('IPC_RMID: the key no longer finds it, the attached keep using it, and it goes with the last detach', async () => {
    const key = uniqueKey();
    const seg = createSysvSharedMemory(key, 4096);
    made.push(seg.id);
    const c = child(`
      const seg = await ipc.openSysvSharedMemory({ id: ${seg.id} });
      console.log('attached');
      await seg.wait(0, 0, { timeout: 10000 });
      console.log('read ' + seg.read(8, 4).toString());
      seg.write(Buffer.from('back'), 16);
      seg.notify(1);
      await new Promise((r) => process.stdin.once('data', r));
      seg.close();
      console.log('detached');`);
    try {
      await within(lineFrom(c.child.stdout!, /^attached/), 10_000, 'the child attached');
      assert.equal(seg.stat().attached, 2);
      assert.equal(seg.remove(), true);
      assert.equal(seg.remove(), false);
      const s = seg.stat();
      assert.equal(s.removed, true);
      assert.equal(s.key, 0, 'the kernel gives a removed segment the key IPC_PRIVATE');
      await rejectsWith(openSysvSharedMemory(key), 'ERR_IPCKIT_NOT_FOUND');
      // The key is free for a new, different segment.
      const again = createSysvSharedMemory(key, 4096);
      made.push(again.id);
      assert.notEqual(again.id, seg.id);
      again.remove();
      again.close();
      // Both attachments still share the removed segment's memory.
      seg.write(Buffer.from('data'), 8);
      const back = seg.wait(1, 0, { timeout: 10_000 });
      seg.store(0, 1);
      seg.notify(0);
      await within(lineFrom(c.child.stdout!, /^read data/), 10_000, 'the child reads what we wrote');
      await within(back, 10_000);
      assert.equal(seg.read(16, 4).toString(), 'back');
      c.child.stdin!.end('go\n');
      await within(lineFrom(c.child.stdout!, /^detached/), 10_000, 'the child detached');
      assert.ok(await waitUntil(() => seg.stat().attached === 1, 5000), 'one attachment left: ours');
      seg.close();
      // Ours was the last: the segment is gone (our buffers of it went with close, none was taken).
      assert.ok(await waitUntil(() => !removeSysvSharedMemory({ id: seg.id }), 5000), 'gone after the last detach');
      assert.equal((await c.done).code, 0);
    } finally {
      seg.close();
    }
  });

  it('close() detaches at once; a buffer taken before stays valid memory, no longer the segment\'s', async () => {
    const seg = createSysvSharedMemory(IPC_PRIVATE, 4096, { removeOnClose: true });
    trackSysv('shm', seg.id);
    const view = new Uint8Array(seg.buffer);
    view[1] = 5;
    assert.equal(readSysvTable('shm').find((r) => r.shmid === seg.id)?.nattch, 1);
    seg.close();
    // Removed (removeOnClose) and detached (close): the segment is gone now, not at the next garbage collection.
    assert.equal(readSysvTable('shm').find((r) => r.shmid === seg.id), undefined);
    assert.equal(view[1], 0, 'private zero pages took its place');
    view[0] = 7; // no crash
    assert.equal(view[0], 7);
    throwsWith(() => seg.buffer, 'ERR_IPCKIT_CLOSED');
  });

  it('bad arguments throw synchronously', async () => {
    const seg = createSysvSharedMemory(uniqueKey(), 64);
    made.push(seg.id);
    try {
      const cases: Array<[string, () => unknown]> = [
        ['create: size 0', () => createSysvSharedMemory(IPC_PRIVATE, 0)],
        ['create: key', () => createSysvSharedMemory(0.5, 64)],
        ['create: external', () => createSysvSharedMemory(IPC_PRIVATE, 64, { external: 'yes' as never })],
        ['open: readOnly', () => openSysvSharedMemory(seg.key, { readOnly: 1 as never })],
        ['open: target', () => openSysvSharedMemory(null as never)],
        ['read: past the end', () => seg.read(60, 10)],
        ['write: past the end', () => seg.write(Buffer.alloc(10), 60)],
        ['load: index', () => seg.load(16)],
        ['wait: index', () => seg.wait(-1, 0)],
        ['notify: count', () => seg.notify(0, -1)],
        ['setMode', () => seg.setMode(0o2000)],
      ];
      for (const [what, call] of cases) assert.throws(call, (e: Error & { code?: string }) => e.code === 'ERR_IPCKIT_INVALID_ARGUMENT', what);
    } finally {
      seg.close();
    }
  });
});
