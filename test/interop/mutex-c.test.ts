/**
 * The cross-process mutex with a C program compiled here that knows only the documented
 * layout (docs/mutex.md): it opens the object with shm_open, checks the header and uses
 * pthread_mutex_lock / unlock / consistent on the mutex at its offset.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMutex, unlinkMutex, type Mutex } from '../../src/index.js';
import { compileC, run, runFixture, sleep, uniqueName, within, type Run } from '../helpers.js';

const C_SOURCE = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* docs/mutex.md: the layout of an ipckit mutex object (the common header, then the mutex's fields) */
struct ipckit_mutex {
  uint32_t magic;        /* 0x4d4b5049 "IPKM" */
  uint32_t version;      /* 2 */
  uint32_t header_bytes; /* 64 */
  uint8_t header_rest[52];
  uint32_t mutex_offset; /* 128 */
  uint32_t mutex_size;   /* sizeof(pthread_mutex_t) */
  uint8_t reserved[56];
  pthread_mutex_t mutex;
};

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  int fd = shm_open(argv[1], O_RDWR, 0);
  if (fd < 0) { perror("shm_open"); return 2; }
  struct ipckit_mutex *m = mmap(NULL, 192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) { perror("mmap"); return 2; }
  if (m->magic != 0x4d4b5049 || m->version != 2 || m->header_bytes != 64 || m->mutex_offset != 128 || (char *)&m->mutex - (char *)m != 128 || m->mutex_size != sizeof(pthread_mutex_t)) {
    fprintf(stderr, "not an ipckit mutex\n");
    return 3;
  }
  const char *mode = argv[2];
  if (strcmp(mode, "unlock-foreign") == 0) {
    int err = pthread_mutex_unlock(&m->mutex);
    printf("%s\n", err == EPERM ? "EPERM" : err == 0 ? "unlocked" : strerror(err));
    return 0;
  }
  int err = pthread_mutex_lock(&m->mutex);
  if (err == EOWNERDEAD) {
    printf("eownerdead\n");
    if (strcmp(mode, "hold-exit") != 0) pthread_mutex_consistent(&m->mutex);
  } else if (err != 0) {
    printf("error %s\n", strerror(err));
    return 1;
  } else {
    printf("locked\n");
  }
  if (strcmp(mode, "hold-exit") == 0) return 0; /* exit holding it */
  if (argc > 3) usleep(atoi(argv[3]) * 1000);
  err = pthread_mutex_unlock(&m->mutex);
  printf(err == 0 ? "unlocked\n" : "unlock failed\n");
  return 0;
}
`;

const peer = compileC('mutexpeer', C_SOURCE, ['-lpthread']);

/*
 * holdwait NAME: locks, prints "held"; at a line on stdin starts a thread that blocks in
 * pthread_mutex_lock, lets it fall asleep, unlocks (glibc wakes one sleeper), and prints
 * whether that thread got the lock within 2 s.
 */
const HOLD_WAIT_SOURCE = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

static pthread_mutex_t *mu;
static volatile int waiterLocked = 0;

static void *waiter(void *arg) {
  (void)arg;
  int err = pthread_mutex_lock(mu);
  if (err == 0 || err == EOWNERDEAD) {
    waiterLocked = 1;
    pthread_mutex_unlock(mu);
  }
  return NULL;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) return 2;
  int fd = shm_open(argv[1], O_RDWR, 0);
  if (fd < 0) { perror("shm_open"); return 2; }
  char *base = mmap(NULL, 192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) { perror("mmap"); return 2; }
  mu = (pthread_mutex_t *)(base + 128); /* docs/mutex.md: mutex_offset */
  if (pthread_mutex_lock(mu) != 0) return 3;
  printf("held\n");
  char line[16];
  if (!fgets(line, sizeof line, stdin)) return 4;
  pthread_t t;
  pthread_create(&t, NULL, waiter, NULL);
  usleep(5000); /* the thread is asleep in pthread_mutex_lock by now */
  pthread_mutex_unlock(mu);
  for (int i = 0; i < 200 && !waiterLocked; i++) usleep(10000);
  printf(waiterLocked ? "waiter-locked\n" : "waiter-stuck\n");
  return waiterLocked ? 0 : 1;
}
`;
const holdWait = compileC('mutexholdwait', HOLD_WAIT_SOURCE, ['-lpthread']);

const names: string[] = [];
after(() => names.forEach((n) => unlinkMutex(n)));

function lines(r: Run): { next(): Promise<string> } {
  const queue: string[] = [];
  const waiting: Array<(l: string) => void> = [];
  let buf = '';
  r.child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiting.shift();
      if (w) w(l);
      else queue.push(l);
    }
  });
  return { next: () => within(new Promise<string>((resolve) => (queue.length ? resolve(queue.shift()!) : waiting.push(resolve))), 10_000, 'a line from the C peer') };
}

async function withMutex(body: (m: Mutex, name: string) => Promise<void>): Promise<void> {
  const name = uniqueName('c-mutex');
  names.push(name);
  const m = createMutex(name);
  try {
    await body(m, name);
  } finally {
    await m.close();
  }
}

describe('mutex interop: a C program on the documented layout', () => {
  it("the C program's unlock wakes Node's waiting lock(), and Node's unlock wakes the C program's pthread_mutex_lock", () =>
    withMutex(async (m, name) => {
      const c = run(peer, [name, 'lock-unlock', '300']);
      const out = lines(c);
      assert.equal(await out.next(), 'locked');
      const t0 = Date.now();
      assert.deepEqual(await m.lock({ timeout: 5000 }), { ownerDied: false });
      assert.ok(Date.now() - t0 >= 250, 'Node got the lock only after the C program let go');
      assert.equal(await out.next(), 'unlocked');
      assert.equal((await c.done).code, 0);
      // Now the other way round.
      const c2 = run(peer, [name, 'lock-unlock', '0']);
      const out2 = lines(c2);
      await sleep(150);
      assert.equal(c2.child.exitCode, null, 'the C program waits in pthread_mutex_lock');
      m.unlock();
      assert.equal(await out2.next(), 'locked');
      assert.equal((await c2.done).code, 0);
    }));

  it('a C program that exits holding the lock: Node hears ownerDied and repairs it', () =>
    withMutex(async (m, name) => {
      const c = await run(peer, [name, 'hold-exit']).done;
      assert.equal(c.stdout.trim(), 'locked');
      assert.deepEqual(await m.lock({ timeout: 2000 }), { ownerDied: true });
      m.markConsistent();
      m.unlock();
      const again = await run(peer, [name, 'lock-unlock', '0']).done;
      assert.equal(again.stdout, 'locked\nunlocked\n');
    }));

  it('a Node holder SIGKILLed: the C program gets EOWNERDEAD, repairs with pthread_mutex_consistent, and Node sees a normal lock', () =>
    withMutex(async (m, name) => {
      const h = runFixture('mqsem-peer', ['mutex-hold', name]);
      await within(new Promise((r) => h.child.stdout!.once('data', r)), 10_000);
      h.child.kill('SIGKILL');
      await h.done;
      const c = await run(peer, [name, 'lock-repair']).done;
      assert.equal(c.stdout, 'eownerdead\nunlocked\n');
      assert.deepEqual(await m.lock({ timeout: 2000 }), { ownerDied: false });
      m.unlock();
    }));

  it('a lock() aborted while it waits does not swallow the unlock wake-up a C waiter needs (both wait backends)', async () => {
    for (const [env, backend] of [[{}, 'io_uring'], [{ IPCKIT_NO_URING: '1' }, 'thread']] as const) {
      await withMutex(async (_m, name) => {
        // A few rounds: the thread backend's watcher re-parks every 100 ms, which could
        // put it behind the C waiter in one round by chance.
        for (let round = 0; round < 3; round++) {
          const c = run(holdWait, [name]);
          const cOut = lines(c);
          assert.equal(await cOut.next(), 'held');
          const node = runFixture('mqsem-peer', ['mutex-abort', name], { env: { ...process.env, ...env } });
          const nodeOut = lines(node);
          const started = JSON.parse(await nodeOut.next()) as { backend: string };
          if (backend === 'thread') assert.equal(started.backend, 'thread');
          await sleep(50); // Node's wait sleeps in the kernel, ahead of the C waiter to come
          node.child.stdin!.write('abort\n');
          assert.deepEqual(JSON.parse(await nodeOut.next()), { aborted: 'ERR_IPCKIT_ABORTED' });
          // The C waiter falls asleep behind Node's dropped wait; the unlock wakes one sleeper.
          c.child.stdin!.write('go\n');
          assert.equal(await cOut.next(), 'waiter-locked', `round ${round}, ${started.backend} backend: the C waiter slept on while the mutex was free`);
          assert.equal((await c.done).code, 0);
          node.child.stdin!.end();
          assert.equal((await node.done).code, 0);
        }
      });
    }
  });

  it('an unlock by the C program while Node holds the lock is EPERM and changes nothing', () =>
    withMutex(async (m, name) => {
      await m.lock();
      const c = await run(peer, [name, 'unlock-foreign']).done;
      assert.equal(c.stdout.trim(), 'EPERM');
      assert.equal(m.state(), 'locked');
      assert.equal(m.locked, true);
      m.unlock();
      assert.equal(m.state(), 'free');
    }));
});
