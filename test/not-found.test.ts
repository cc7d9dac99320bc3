/**
 * One not-found message for every named kind: ERR_IPCKIT_NOT_FOUND saying "no <kind> <name>",
 * never a bare system call and errno.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as api from '../src/index.js';
import { scratchPath, uniqueName } from './helpers.js';

it('opening a name that does not exist says "no <kind> <name>" for every kind', async () => {
  const n = uniqueName('nf');
  const path = scratchPath('nf');
  const key = 0x7ffffff1;
  const opens: Array<[string, () => Promise<unknown>]> = [
    ['message queue', () => api.openMessageQueue(n)],
    ['semaphore', () => api.openSemaphore(n)],
    ['shared memory', () => api.openSharedMemory(n)],
    ['ring', () => api.openRing(n)],
    ['work queue', () => api.openWorkQueue(n)],
    ['mutex', () => api.openMutex(n)],
    ['pool', () => api.openBoundedPool(n)],
    ['shared value', () => api.openSharedValue(n)],
    ['FIFO', () => api.openFifo(path, 'read')],
    ['file', () => api.openFileLock(path)],
    ['System V message queue', () => api.openSysvMessageQueue(key)],
    ['System V semaphore set', () => api.openSysvSemaphoreSet(key)],
    ['System V shared memory segment', () => api.openSysvSharedMemory(key)],
  ];
  for (const [kind, open] of opens) {
    const e = await open().then(
      () => assert.fail(`${kind}: opened a name that does not exist`),
      (err: unknown) => err as { code: string; message: string },
    );
    assert.equal(e.code, 'ERR_IPCKIT_NOT_FOUND', kind);
    assert.match(e.message, new RegExp(`^no ${kind} \\S+`), kind);
    assert.doesNotMatch(e.message, /failed with ENOENT/, kind);
  }
});
