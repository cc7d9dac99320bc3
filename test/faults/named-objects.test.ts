/**
 * The ownership model of named objects (permissions.ts), for message queues, semaphores,
 * mutexes and pools: exact modes whatever the umask, squatted names refused, sharing
 * with another user only when asked.
 */
import assert from 'node:assert/strict';
import { unlinkSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import {
  createBoundedPool,
  createMessageQueue,
  createMutex,
  createSemaphore,
  openBoundedPool,
  openMessageQueue,
  openMutex,
  openSemaphore,
  unlinkBoundedPool,
  unlinkMessageQueue,
  unlinkMutex,
  unlinkSemaphore,
} from '../../src/index.js';
import { AS_NOBODY, isRoot, rejectsWith, run, runFixture, throwsWith, uniqueName } from '../helpers.js';

const PY = '/usr/bin/python3'; // the system python: user nobody can run it

const cleanups: Array<() => void> = [];
after(() => {
  for (const c of cleanups) {
    try {
      c();
    } catch {
      /* already gone */
    }
  }
});

/** Runs Python as user nobody (umask 0, so the modes it asks for are the modes it gets). */
async function asNobody(code: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = `import ctypes, os, sys\nos.umask(0)\nrt = ctypes.CDLL('librt.so.1', use_errno=True)\nrt.sem_open.restype = ctypes.c_void_p\n${code}`;
  return run(AS_NOBODY[0]!, [...AS_NOBODY.slice(1), PY, '-c', script, ...args]).done;
}

describe('named objects: modes', () => {
  it('umask 000 does not widen the default 0600, and asked-for modes are exact under any umask', async () => {
    const prefix = uniqueName('umask');
    cleanups.push(() => unlinkMessageQueue(`${prefix}-mq`), () => unlinkSemaphore(`${prefix}-sem`), () => unlinkMutex(`${prefix}-mutex`), () => unlinkBoundedPool(`${prefix}-pool`));
    const r = await runFixture('mqsem-peer', ['umask-create', prefix]).done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { mqueue: '600', semaphore: '600', mutex: '600', pool: '600', semaphore660: '660', mqueue640: '640' });
  });
});

describe('named objects: squatting (a name created first by another user)', { skip: !isRoot && 'needs root to act as user nobody' }, () => {
  it('message queue: create is ERR_IPCKIT_EXISTS, open is ERR_IPCKIT_PERMISSION unless opted in', async () => {
    const name = uniqueName('squat-mq');
    cleanups.push(() => unlinkMessageQueue(name));
    const r = await asNobody(
      `rt.mq_open.restype = ctypes.c_int\nfd = rt.mq_open(sys.argv[1].encode(), os.O_CREAT | os.O_RDWR, 0o666, None)\nassert fd >= 0, ctypes.get_errno()\nprint(os.fstat(fd).st_uid)`,
      [name],
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '65534');
    throwsWith(() => createMessageQueue(name), 'ERR_IPCKIT_EXISTS');
    throwsWith(() => openMessageQueue(name), 'ERR_IPCKIT_PERMISSION');
    throwsWith(() => openMessageQueue(name, { mode: 0o666 }), 'ERR_IPCKIT_PERMISSION'); // still not ours
    const trusted = openMessageQueue(name, { trustAnyOwner: true });
    assert.equal(trusted.owner().uid, 65534);
    await trusted.close();
    const byOwner = openMessageQueue(name, { owner: 65534, mode: 0o666 });
    await byOwner.close();
  });

  it('semaphore: refused before its value is ever used', async () => {
    const name = uniqueName('squat-sem');
    cleanups.push(() => unlinkSemaphore(name));
    const r = await asNobody(`s = rt.sem_open(sys.argv[1].encode(), os.O_CREAT, 0o666, 5)\nassert s, ctypes.get_errno()`, [name]);
    assert.equal(r.code, 0, r.stderr);
    throwsWith(() => createSemaphore(name, { value: 1 }), 'ERR_IPCKIT_EXISTS');
    throwsWith(() => openSemaphore(name), 'ERR_IPCKIT_PERMISSION');
    // The refusals took nothing: the squatter's 5 permits are all still there.
    const trusted = openSemaphore(name, { trustAnyOwner: true });
    assert.equal(trusted.value(), 5);
    await trusted.close();
  });

  it('mutex and pool: create is ERR_IPCKIT_EXISTS, open is ERR_IPCKIT_PERMISSION', async () => {
    for (const kind of ['mutex', 'pool'] as const) {
      const name = uniqueName(`squat-${kind}`);
      cleanups.push(() => unlinkSync(`/dev/shm${name}`));
      const r = await asNobody(`fd = os.open('/dev/shm' + sys.argv[1], os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o666)\nos.ftruncate(fd, 4096)`, [name]);
      assert.equal(r.code, 0, r.stderr);
      if (kind === 'mutex') {
        throwsWith(() => createMutex(name), 'ERR_IPCKIT_EXISTS');
        await rejectsWith(openMutex(name), 'ERR_IPCKIT_PERMISSION');
        // Opting in is not enough to use garbage: it was never initialized.
        await rejectsWith(openMutex(name, { trustAnyOwner: true, timeout: 50 }), 'ERR_IPCKIT_CORRUPT');
      } else {
        throwsWith(() => createBoundedPool(name, { permits: 1 }), 'ERR_IPCKIT_EXISTS');
        await rejectsWith(openBoundedPool(name), 'ERR_IPCKIT_PERMISSION');
        await rejectsWith(openBoundedPool(name, { trustAnyOwner: true, timeout: 50 }), 'ERR_IPCKIT_CORRUPT');
      }
    }
  });
});

describe('named objects: sharing with another user', { skip: !isRoot && 'needs root to act as user nobody' }, () => {
  it('{ mode: 0o660, group } lets that group in; the default 0600 keeps it out', async () => {
    const shared = uniqueName('share-sem');
    const private_ = uniqueName('private-sem');
    const sharedQ = uniqueName('share-mq');
    cleanups.push(() => unlinkSemaphore(shared), () => unlinkSemaphore(private_), () => unlinkMessageQueue(sharedQ));
    const s = createSemaphore(shared, { mode: 0o660, group: 65534 });
    const p = createSemaphore(private_);
    const q = createMessageQueue(sharedQ, { mode: 0o620, group: 65534, maxMessages: 2, messageSize: 16, codec: 'utf8' });
    try {
      const code = `s = rt.sem_open(sys.argv[1].encode(), 0)\nif not s: print('refused', ctypes.get_errno()); sys.exit(0)\nrt.sem_post(ctypes.c_void_p(s)); print('posted')`;
      let r = await asNobody(code, [shared]);
      assert.equal(r.stdout.trim(), 'posted', r.stderr);
      assert.equal(s.value(), 1);
      r = await asNobody(code, [private_]);
      assert.equal(r.stdout.trim(), 'refused 13', 'EACCES for the owner-only semaphore');
      assert.equal(p.value(), 0);
      r = await asNobody(
        `rt.mq_open.restype = ctypes.c_int\nfd = rt.mq_open(sys.argv[1].encode(), os.O_WRONLY, 0, None)\nassert fd >= 0, ctypes.get_errno()\nassert rt.mq_send(fd, b'hi', 2, 4) == 0\nprint('sent')`,
        [sharedQ],
      );
      assert.equal(r.stdout.trim(), 'sent', r.stderr);
      assert.deepEqual(await q.receiveWithPriority({ timeout: 5000 }), { message: 'hi', priority: 4 });
      // Our own open checks the mode too: a shared object must be opened as one.
      throwsWith(() => openSemaphore(shared), 'ERR_IPCKIT_PERMISSION');
      const again = openSemaphore(shared, { mode: 0o660 });
      await again.close();
    } finally {
      await s.close();
      await p.close();
      await q.close();
    }
  });
});

describe('named objects: bad names', () => {
  it('every kind refuses an empty name, an inner slash, "." / "..", and one over NAME_MAX', async () => {
    const long = `/${'n'.repeat(300)}`;
    for (const bad of ['', '/', '/x/y', '/.', '/..', long, 'nul\0']) {
      throwsWith(() => createMessageQueue(bad), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => createSemaphore(bad), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => createMutex(bad), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => createBoundedPool(bad, { permits: 1 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => unlinkSemaphore(bad), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => openMutex(bad), 'ERR_IPCKIT_INVALID_ARGUMENT');
    }
    throwsWith(() => createMessageQueue(123 as unknown as string), 'ERR_IPCKIT_INVALID_ARGUMENT');
  });
});
