/**
 * System V IPC with peers we did not write: small C programs compiled here (msgsnd/msgrcv
 * with MSG_EXCEPT, semop with SEM_UNDO on several semaphores at once), and util-linux's
 * ipcmk, ipcs and ipcrm.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  createSysvMessageQueue,
  createSysvSemaphoreSet,
  createSysvSharedMemory,
  openSysvMessageQueue,
  openSysvSemaphoreSet,
  openSysvSharedMemory,
  removeSysvMessageQueue,
  removeSysvSemaphoreSet,
  removeSysvSharedMemory,
} from '../../src/index.js';
import { compileC, jsonLines, rejectsWith, run, sleep, trackSysv, uniqueKey, waitUntil, within } from '../helpers.js';

const queues: number[] = [];
const sets: number[] = [];
const segments: number[] = [];
after(() => {
  for (const id of queues) removeSysvMessageQueue({ id });
  for (const id of sets) removeSysvSemaphoreSet({ id });
  for (const id of segments) removeSysvSharedMemory({ id });
});

const SHM_PEER = `
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>
/* Shared (not FUTEX_PRIVATE_FLAG) futex calls on words of the segment. */
static long futex(uint32_t *w, int op, uint32_t v) { return syscall(SYS_futex, w, op, v, NULL, NULL, 0); }
int main(int argc, char **argv) {
  int id = shmget((key_t)strtoul(argv[1], 0, 0), 0, 0);
  if (id < 0) { perror("shmget"); return 1; }
  uint32_t *w = shmat(id, NULL, 0);
  if (w == (void *)-1) { perror("shmat"); return 1; }
  printf("attached %s\\n", (char *)(w + 16));
  fflush(stdout);
  /* wait while word 0 is 0, as our wait does */
  while (__atomic_load_n(&w[0], __ATOMIC_SEQ_CST) == 0) futex(&w[0], FUTEX_WAIT, 0);
  strcpy((char *)(w + 32), "c saw it");
  __atomic_store_n(&w[1], 1, __ATOMIC_SEQ_CST);
  futex(&w[1], FUTEX_WAKE, 1);
  shmdt(w);
  printf("done\\n");
  return 0;
}
`;

const MSG_PEER = `
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
struct m { long type; char text[256]; };
int main(int argc, char **argv) {
  int id = msgget((key_t)strtoul(argv[2], 0, 0), 0);
  if (id < 0) { perror("msgget"); return 1; }
  struct m b;
  if (strcmp(argv[1], "send") == 0) {
    for (int i = 3; i + 1 < argc; i += 2) {
      b.type = atol(argv[i]);
      size_t n = strlen(argv[i + 1]);
      memcpy(b.text, argv[i + 1], n);
      if (msgsnd(id, &b, n, 0) != 0) { perror("msgsnd"); return 1; }
    }
    return 0;
  }
  /* recv: each argument is a selector, "x" before it for MSG_EXCEPT */
  printf("[");
  for (int i = 3; i < argc; i++) {
    int except = argv[i][0] == 'x';
    long sel = atol(argv[i] + except);
    ssize_t n = msgrcv(id, &b, sizeof b.text, sel, except ? MSG_EXCEPT : 0);
    if (n < 0) { perror("msgrcv"); return 1; }
    printf("%s[\\"%.*s\\",%ld]", i > 3 ? "," : "", (int)n, b.text, b.type);
    fflush(stdout);
  }
  printf("]\\n");
  return 0;
}
`;

const SEM_PEER = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ipc.h>
#include <sys/sem.h>
int main(int argc, char **argv) {
  int id = semget((key_t)strtoul(argv[2], 0, 0), 0, 0);
  if (id < 0) { perror("semget"); return 1; }
  if (strcmp(argv[1], "hold") == 0) {
    /* take 1 of semaphore 0 and 2 of semaphore 1, at once, with undo; then sleep until killed */
    struct sembuf ops[2] = { {0, -1, SEM_UNDO}, {1, -2, SEM_UNDO} };
    if (semop(id, ops, 2) != 0) { perror("semop"); return 1; }
    printf("held\\n");
    fflush(stdout);
    pause();
    return 0;
  }
  /* handoff: wait for semaphore 1, then give semaphore 0 */
  struct sembuf take = {1, -1, 0}, give = {0, 1, 0};
  printf("waiting\\n");
  fflush(stdout);
  if (semop(id, &take, 1) != 0) { perror("semop take"); return 1; }
  if (semop(id, &give, 1) != 0) { perror("semop give"); return 1; }
  printf("done\\n");
  return 0;
}
`;

const hex = (key: number): string => `0x${key.toString(16)}`;

describe('sysv interop: C programs', () => {
  it('C sends typed messages; we receive with 0, n, -n and except', async () => {
    const bin = compileC('sysv-msg-peer', MSG_PEER);
    const q = createSysvMessageQueue(uniqueKey(), { codec: 'utf8' });
    queues.push(q.id);
    try {
      const r = await run(bin, ['send', hex(q.key), '4', 'four', '2', 'two', '6', 'six', '1', 'one']).done;
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await q.receiveWithType({ type: 6 }), { type: 6, message: 'six' });
      assert.deepEqual(await q.receiveWithType({ type: 4, except: true }), { type: 2, message: 'two' });
      assert.deepEqual(await q.receiveWithType({ type: -5 }), { type: 1, message: 'one' });
      assert.deepEqual(await q.receiveWithType(), { type: 4, message: 'four' });
    } finally {
      await q.close();
    }
  });

  it('we send typed messages; C receives with 0, n, -n and MSG_EXCEPT, blocking for the last', async () => {
    const bin = compileC('sysv-msg-peer', MSG_PEER);
    const q = createSysvMessageQueue(uniqueKey(), { codec: 'utf8' });
    queues.push(q.id);
    try {
      for (const [type, text] of [[3, 'three'], [8, 'eight'], [1, 'one'], [3, 'three again']] as const) await q.send(text, { type });
      const c = run(bin, ['recv', hex(q.key), '8', 'x3', '-3', '0', '5']);
      await sleep(100); // the last receive (type 5) blocks in C
      await q.send('five', { type: 5 });
      const r = await within(c.done, 10_000);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), [
        ['eight', 8],
        ['one', 1],
        ['three', 3],
        ['three again', 3],
        ['five', 5],
      ]);
    } finally {
      await q.close();
    }
  });

  it('C waits in semop for our operation, and we wait on a thread of ours for C\'s', async () => {
    const bin = compileC('sysv-sem-peer', SEM_PEER);
    const s = createSysvSemaphoreSet(uniqueKey(), { count: 2, values: [0, 0] });
    sets.push(s.id);
    try {
      const c = run(bin, ['handoff', hex(s.key)]);
      const lines = jsonLines(c);
      assert.deepEqual(await lines.next(10_000), { text: 'waiting' });
      assert.ok(await waitUntil(() => s.waitingToTake(1) === 1, 5000), 'C blocks in semop');
      const mine = s.op([{ index: 0, delta: -1 }], { timeout: 10_000 });
      await sleep(20);
      await s.op([{ index: 1, delta: 1 }]);
      assert.equal(await within(mine, 10_000), true);
      const r = await within(c.done, 10_000);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(s.getAll(), [0, 0]);
    } finally {
      await s.close();
    }
  });

  it('a C holder of two semaphores with SEM_UNDO killed by SIGKILL: the kernel gives both back', async () => {
    const bin = compileC('sysv-sem-peer', SEM_PEER);
    const s = createSysvSemaphoreSet(uniqueKey(), { count: 2, values: [1, 2] });
    sets.push(s.id);
    try {
      const c = run(bin, ['hold', hex(s.key)]);
      assert.deepEqual(await jsonLines(c).next(10_000), { text: 'held' });
      assert.deepEqual(s.getAll(), [0, 0]);
      const both = s.op([{ index: 0, delta: -1 }, { index: 1, delta: -2 }], { timeout: 10_000 });
      await sleep(30);
      c.child.kill('SIGKILL');
      assert.equal(await within(both, 10_000), true, 'our wait took both once the kernel undid C\'s');
      assert.equal(s.lastPid(1), process.pid);
    } finally {
      await s.close();
    }
  });
});

describe('sysv interop: ipcmk, ipcs, ipcrm', () => {
  it('a queue, a set and a segment made by ipcmk open here by id; ipcs shows what we did; ipcrm removes them', async () => {
    const mk = await run('ipcmk', ['-Q', '-p', '0600']).done;
    assert.equal(mk.code, 0, mk.stderr);
    const qid = Number(/id: (\d+)/.exec(mk.stdout)![1]);
    trackSysv('msg', qid);
    queues.push(qid);
    const q = await openSysvMessageQueue({ id: qid }, { codec: 'utf8' });
    try {
      await q.send('hello ipcs', { type: 2 });
      const ipcs = await run('ipcs', ['-q', '-i', String(qid)]).done;
      assert.equal(ipcs.code, 0, ipcs.stderr);
      assert.match(ipcs.stdout, /cbytes=10\s+qbytes=\d+\s+qnum=1/);
      assert.match(ipcs.stdout, new RegExp(`lspid=${process.pid}`));
      const rm = await run('ipcrm', ['-q', String(qid)]).done;
      assert.equal(rm.code, 0, rm.stderr);
      await rejectsWith(q.receive({ type: 99 }), 'ERR_IPCKIT_CLOSED');
    } finally {
      await q.close();
    }

    const mks = await run('ipcmk', ['-S', '3', '-p', '0640']).done;
    assert.equal(mks.code, 0, mks.stderr);
    const sid = Number(/id: (\d+)/.exec(mks.stdout)![1]);
    trackSysv('sem', sid);
    sets.push(sid);
    await rejectsWith(openSysvSemaphoreSet({ id: sid }), 'ERR_IPCKIT_PERMISSION'); // 0640 is wider than the default 0600
    const s = await openSysvSemaphoreSet({ id: sid }, { mode: 0o640 });
    try {
      assert.equal(s.count, 3);
      await s.op([{ index: 2, delta: 5 }]);
      const ipcs = await run('ipcs', ['-s', '-i', String(sid)]).done;
      assert.match(ipcs.stdout, new RegExp(`2\\s+5\\s+0\\s+0\\s+${process.pid}`), 'semnum value ncount zcount pid');
      // Our own objects appear in ipcs with the key and mode we gave.
      const q2 = createSysvMessageQueue(uniqueKey(), { mode: 0o620 });
      queues.push(q2.id);
      const list = await run('ipcs', ['-q']).done;
      assert.match(list.stdout, new RegExp(`0x${q2.key.toString(16).padStart(8, '0')}\\s+${q2.id}\\s+\\S+\\s+620`));
      q2.remove();
      await q2.close();
    } finally {
      await s.close();
      removeSysvSemaphoreSet({ id: sid });
    }

    const mkm = await run('ipcmk', ['-M', '8192', '-p', '0600']).done;
    assert.equal(mkm.code, 0, mkm.stderr);
    const mid = Number(/id: (\d+)/.exec(mkm.stdout)![1]);
    trackSysv('shm', mid);
    segments.push(mid);
    const seg = await openSysvSharedMemory({ id: mid });
    try {
      assert.equal(seg.size, 8192);
      seg.write(Buffer.from('made by ipcmk'), 100);
      const ipcs = await run('ipcs', ['-m', '-i', String(mid)]).done;
      assert.match(ipcs.stdout, /bytes=8192\s+lpid=\d+\s+cpid=\d+\s+nattch=1/);
      const rm = await run('ipcrm', ['-m', String(mid)]).done;
      assert.equal(rm.code, 0, rm.stderr);
      assert.equal(seg.stat().removed, true, 'ipcrm marks it; it stays while we are attached');
      assert.equal(seg.read(100, 13).toString(), 'made by ipcmk');
    } finally {
      seg.close();
    }
    assert.equal(removeSysvSharedMemory({ id: mid }), false, 'gone with our detach');
  });
});

describe('sysv interop: C programs and shared memory', () => {
  it('C attaches our segment, waits on a word with a shared futex we notify, and wakes our wait', async () => {
    const bin = compileC('sysv-shm-peer', SHM_PEER);
    const seg = createSysvSharedMemory(uniqueKey(), 4096);
    segments.push(seg.id);
    try {
      seg.write(Buffer.from('hello c\0'), 64);
      const c = run(bin, [hex(seg.key)]);
      const lines = jsonLines(c);
      assert.deepEqual(await lines.next(10_000), { text: 'attached hello c' });
      assert.equal(seg.stat().attached, 2);
      const woken = seg.wait(1, 0, { timeout: 10_000 });
      await sleep(50);
      seg.store(0, 1);
      seg.notify(0);
      assert.equal(await within(woken, 10_000), 'ok');
      assert.equal(seg.read(128, 8).toString(), 'c saw it');
      const r = await within(c.done, 10_000);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(await waitUntil(() => seg.stat().attached === 1, 5000), 'C detached');
    } finally {
      seg.close();
    }
    // ipcs shows the segment as we see it: its size, and one attachment (ours, opened now).
    const other = await openSysvSharedMemory({ id: seg.id });
    const ipcs = await run('ipcs', ['-m', '-i', String(seg.id)]).done;
    assert.match(ipcs.stdout, /bytes=4096\s+lpid=\d+\s+cpid=\d+\s+nattch=1/);
    other.close();
  });
});
