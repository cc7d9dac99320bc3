/** One permission record (IpcPerm) from every kind of object, System V and POSIX, so that one table shows both families. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import {
  createFifo,
  createMessageQueue,
  createSemaphore,
  createSharedMemory,
  createSysvMessageQueue,
  createSysvSemaphoreSet,
  createSysvSharedMemory,
  listen,
  openFifo,
  unlinkFifo,
  unlinkMessageQueue,
  unlinkSemaphore,
  unlinkSharedMemory,
  type IpcPerm,
} from '../src/index.js';
import { scratchPath, uniqueKey, uniqueName } from './helpers.js';

it('perm() of every kind: owner, group and mode for all; key, id, creator and sequence number for System V only', async () => {
  const uid = process.geteuid!();
  const gid = process.getegid!();
  const names = { mq: uniqueName('perm-mq'), sem: uniqueName('perm-sem'), shm: uniqueName('perm-shm') };
  const fifo = scratchPath('perm.fifo');
  const sock = scratchPath('perm.sock');
  const mq = createMessageQueue(names.mq, { mode: 0o640, maxMessages: 1, maxMessageBytes: 8 });
  const sem = createSemaphore(names.sem, { mode: 0o660 });
  const shm = createSharedMemory(names.shm, 4096, { mode: 0o604 });
  createFifo(fifo, { mode: 0o620 });
  const reader = await openFifo(fifo, 'read', { mode: 0o620 });
  const server = await listen(`unix:${sock}`, { mode: 0o600 });
  const msg = createSysvMessageQueue(uniqueKey(), { mode: 0o640, removeOnClose: true });
  const set = createSysvSemaphoreSet(uniqueKey(), { mode: 0o600, removeOnClose: true });
  const seg = createSysvSharedMemory(uniqueKey(), 4096, { mode: 0o660, removeOnClose: true });
  try {
    const rows: IpcPerm[] = [mq.perm(), sem.perm(), shm.perm(), reader.perm(), server.perm()!, msg.perm(), set.perm(), seg.perm()];
    assert.deepEqual(
      rows.map((r) => [r.family, r.kind, r.family === 'posix' ? r.name : r.key, r.uid, r.gid, r.mode.toString(8)]),
      [
        ['posix', 'mqueue', names.mq, uid, gid, '640'],
        ['posix', 'semaphore', names.sem, uid, gid, '660'],
        ['posix', 'shm', names.shm, uid, gid, '604'],
        ['posix', 'fifo', fifo, uid, gid, '620'],
        ['posix', 'socket', sock, uid, gid, '600'],
        ['sysv', 'msg', msg.key, uid, gid, '640'],
        ['sysv', 'sem', set.key, uid, gid, '600'],
        ['sysv', 'shm', seg.key, uid, gid, '660'],
      ],
    );
    for (const r of rows) {
      if (r.family === 'posix') {
        // The kernel keeps none of these for a POSIX object (a file).
        assert.deepEqual([r.key, r.id, r.cuid, r.cgid, r.seq], [undefined, undefined, undefined, undefined, undefined], r.kind);
      } else {
        assert.equal(r.cuid, uid);
        assert.equal(r.cgid, gid);
        assert.equal(typeof r.seq, 'number');
        assert.ok(r.id >= 0);
      }
    }
    assert.equal(rows[5]!.family === 'sysv' && rows[5]!.id, msg.id);
    // The same record the System V stat() starts with.
    const { family, kind, key, id, uid: u, gid: g, cuid, cgid, mode, seq } = msg.stat();
    assert.deepEqual({ family, kind, key, id, uid: u, gid: g, cuid, cgid, mode, seq }, msg.perm());
  } finally {
    await mq.close();
    unlinkMessageQueue(names.mq);
    await sem.close();
    unlinkSemaphore(names.sem);
    shm.close();
    unlinkSharedMemory(names.shm);
    await reader.close();
    unlinkFifo(fifo);
    await server.close();
    await msg.close();
    await set.close();
    seg.close();
  }
});
