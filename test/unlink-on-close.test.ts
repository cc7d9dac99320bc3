/**
 * `unlinkOnClose` on every named kind of the shared-memory stack and on shared memory:
 * closing the handle removes the name (a second process that has it open keeps working),
 * and it never removes an object that another process made later under the same name.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import {
  createBoundedPool,
  createMutex,
  createRing,
  createSharedMemory,
  createWorkQueue,
  openBoundedPool,
  openMutex,
  openRing,
  openSharedMemory,
  openWorkQueue,
  unlinkBoundedPool,
  unlinkMutex,
  unlinkRing,
  unlinkSharedMemory,
  unlinkWorkQueue,
} from '../src/index.js';
import { jsonLines, runFixture, uniqueName } from './helpers.js';

interface Kind {
  name: string;
  create(n: string, unlinkOnClose?: boolean): { close(): unknown };
  open(n: string, unlinkOnClose?: boolean): Promise<{ close(): unknown }>;
  unlink(n: string): boolean;
}

const KINDS: Kind[] = [
  { name: 'ring', create: (n, u) => createRing(n, { capacityBytes: 4096, unlinkOnClose: u }), open: (n, u) => openRing(n, { unlinkOnClose: u }), unlink: unlinkRing },
  { name: 'workqueue', create: (n, u) => createWorkQueue(n, { capacityJobs: 4, unlinkOnClose: u }), open: (n, u) => openWorkQueue(n, { unlinkOnClose: u }), unlink: unlinkWorkQueue },
  { name: 'mutex', create: (n, u) => createMutex(n, { unlinkOnClose: u }), open: (n, u) => openMutex(n, { unlinkOnClose: u }), unlink: unlinkMutex },
  { name: 'pool', create: (n, u) => createBoundedPool(n, { permits: 1, unlinkOnClose: u }), open: (n, u) => openBoundedPool(n, { unlinkOnClose: u }), unlink: unlinkBoundedPool },
  { name: 'shm', create: (n, u) => createSharedMemory(n, 4096, { unlinkOnClose: u }), open: (n, u) => openSharedMemory(n, { unlinkOnClose: u }), unlink: unlinkSharedMemory },
];

const shmFile = (n: string): string => `/dev/shm${n}`;

describe('unlinkOnClose', () => {
  for (const kind of KINDS) {
    it(`${kind.name}: the creator's handle removes the name on close; an opener's handle keeps working`, async () => {
      const n = uniqueName(`uoc-${kind.name}`);
      after(() => kind.unlink(n));
      const created = kind.create(n, true);
      const opened = await kind.open(n);
      assert.ok(existsSync(shmFile(n)));
      await created.close();
      assert.equal(existsSync(shmFile(n)), false, 'the name is gone after close');
      await opened.close(); // still a valid handle until now
    });

    it(`${kind.name}: an opener's handle with unlinkOnClose removes it; without, the name stays`, async () => {
      const n = uniqueName(`uoc-${kind.name}`);
      after(() => kind.unlink(n));
      const created = kind.create(n);
      const plain = await kind.open(n);
      await plain.close();
      assert.ok(existsSync(shmFile(n)), 'a plain close leaves the name');
      const opener = await kind.open(n, true);
      await opener.close();
      assert.equal(existsSync(shmFile(n)), false);
      await created.close();
    });

    it(`${kind.name}: a close never removes an object another process made since under the same name`, async () => {
      const n = uniqueName(`uoc-${kind.name}`);
      after(() => kind.unlink(n));
      const ours = kind.create(n, true);
      assert.ok(kind.unlink(n));
      // Another process makes a new object of the same kind under the name, and stays.
      const other = runFixture('object-peer', ['create', kind.name, n]);
      assert.deepEqual(await jsonLines(other).next(10_000), { created: true });
      await ours.close();
      assert.ok(existsSync(shmFile(n)), "the other process's object is still there");
      other.child.stdin!.end(); // it closes its handle and exits
      assert.equal((await other.done).code, 0);
    });
  }
});
