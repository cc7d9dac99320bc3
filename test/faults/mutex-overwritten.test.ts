/**
 * The robust mutex when another process writes into it while we hold it. glibc keeps the
 * list of robust mutexes a thread holds as links inside each mutex, and its
 * pthread_mutex_unlock writes through them: a peer that overwrote them made our unlock
 * write to any address it chose (SIGSEGV, found by scripts/hostile.ts). Now unlock takes the
 * links from this thread's own record (native/robust_mutex.h): it unlocks, says
 * ERR_IPCKIT_CORRUPT, and the process lives. The kernel's robust list must stay right
 * too: a process killed holding mutexes it locked and unlocked out of order must leave
 * exactly the ones it held marked "owner died".
 *
 * The peers are a C program (compiled here) that writes into the mutex, and Node children
 * that hold the locks, so that a crash shows as a signal, not as the end of this file.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createMutex, openMutex, unlinkMutex } from '../../src/index.js';
import { compileC, jsonLines, repoRoot, run, uniqueName, within } from '../helpers.js';

const names: string[] = [];
after(() => names.forEach((n) => unlinkMutex(n)));
function mname(tag: string): string {
  const n = uniqueName(tag);
  names.push(n);
  return n;
}

// overwrite NAME links|word|waiters: writes into the pthread_mutex_t at offset 128
// (docs/mutex.md) what no honest peer writes: its list links (two non-canonical addresses),
// its lock word (another thread id), or a word with the waiters bit and no owner.
const SCRIBBLER = compileC(
  'mutexscribbler',
  String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int fd = shm_open(argv[1], O_RDWR, 0);
  if (fd < 0) { perror("shm_open"); return 2; }
  char *base = mmap(NULL, 192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) { perror("mmap"); return 2; }
  pthread_mutex_t *m = (pthread_mutex_t *)(base + 128);
  if (strcmp(argv[2], "links") == 0) {
    m->__data.__list.__prev = (void *)0x4141414141414141ULL;
    m->__data.__list.__next = (void *)0x4242424242424240ULL;
  } else if (strcmp(argv[2], "waiters") == 0) {
    __atomic_store_n(&m->__data.__lock, 0x80000000u, __ATOMIC_SEQ_CST); /* FUTEX_WAITERS, no owner */
  } else {
    __atomic_store_n(&m->__data.__lock, 4242, __ATOMIC_SEQ_CST);
  }
  return 0;
}
`,
  ['-lrt'],
);

const INDEX = join(repoRoot, 'dist', 'src', 'index.js');

/** A Node child that runs `body` (with `ipc`, `names`, `overwrite(name, what)` and `say(obj)`) and exits. */
function child(body: string, args: string[]): ReturnType<typeof run> {
  const script = `
    const { execFileSync } = require('node:child_process');
    const [index, scribbler, ...names] = process.argv.slice(1);
    const say = (o) => console.log(JSON.stringify(o));
    const overwrite = (name, what) => execFileSync(scribbler, [name, what]);
    import(index).then(async (ipc) => { ${body} }).catch((e) => { say({ failed: String(e && e.stack || e) }); process.exit(1); });
  `;
  return run(process.execPath, ['-e', script, INDEX, SCRIBBLER, ...args], { timeoutMs: 20_000 });
}

describe('mutex: another process writes into it while we hold it', () => {
  for (const [what, detail] of [
    ['links', /overwrote its pthread_mutex_t/],
    ['word', /overwrote its lock word/],
  ] as const) {
    it(`its ${what === 'links' ? 'list links' : 'lock word'}: unlock() is ERR_IPCKIT_CORRUPT, the process lives, and the handle no longer holds it`, async () => {
      const name = mname(`over-${what}`);
      names.push(`${name}-2`); // the child's second mutex: removed here too if the child dies
      createMutex(name).close();
      const r = child(
        `
        const m = await ipc.openMutex(names[0]);
        const other = await ipc.openMutex(names[0]);
        // Another mutex held across it: the list has a neighbour to get right.
        const second = ipc.createMutex(names[0] + '-2', { unlinkOnClose: true });
        await second.lock();
        await m.lock();
        overwrite(names[0], names[1]);
        let code = 'none';
        try { m.unlock(); } catch (e) { code = e.code; say({ message: e.message }); }
        say({ code, state: m.state(), again: (() => { try { m.unlock(); return 'unlocked'; } catch (e) { return e.code; } })() });
        second.unlock();
        await second.close();
        await m.close();
        await other.close();
        say({ done: true });
      `,
        [name, what],
      );
      const out = jsonLines(r);
      const msg = await out.next(10_000);
      assert.equal(msg.failed, undefined, msg.failed);
      assert.match(msg.message, detail);
      const res = await out.next(10_000);
      assert.equal(res.code, 'ERR_IPCKIT_CORRUPT');
      assert.equal(res.again, 'ERR_IPCKIT_PERMISSION', 'after the corrupt unlock the handle does not hold it');
      assert.deepEqual(await out.next(10_000), { done: true });
      const done = await within(r.done, 15_000, 'the child');
      assert.equal(done.signal, null, `the child died of ${done.signal}: ${done.stderr}`);
      assert.equal(done.code, 0, done.stderr);
      const m = await openMutex(name);
      try {
        if (what === 'links') {
          // Unlocked all the same: free for the next process, with no owner-died report.
          assert.deepEqual(m.tryLock(), { ownerDied: false });
          m.unlock();
        } else {
          // The word names a thread that never locked it: left as found (busy), not released by us.
          assert.equal(m.tryLock(), undefined);
        }
      } finally {
        await m.close();
      }
    });
  }

  it('a lock word with the waiters bit and no owner: lockSync and lock time out, without a busy loop', async () => {
    const name = mname('over-waiters');
    createMutex(name).close();
    execFileSync(SCRIBBLER, [name, 'waiters']);
    // In a child: a wait that never returns to JavaScript would hang this file, not fail it.
    const r = child(
      `
      const m = await ipc.openMutex(names[0]);
      const t0 = process.cpuUsage();
      const w0 = Date.now();
      let sync = 'none';
      try { m.lockSync({ timeout: 300 }); sync = 'locked'; } catch (e) { sync = e.code; }
      let async = 'none';
      try { await m.lock({ timeout: 300 }); async = 'locked'; } catch (e) { async = e.code; }
      const cpu = process.cpuUsage(t0);
      say({ sync, async, wallMs: Date.now() - w0, cpuMs: (cpu.user + cpu.system) / 1000 });
      await m.close();
    `,
      [name],
    );
    const res = await jsonLines(r).next(15_000);
    assert.equal(res.failed, undefined, res.failed);
    assert.deepEqual([res.sync, res.async], ['ERR_IPCKIT_TIMEOUT', 'ERR_IPCKIT_TIMEOUT']);
    // Asleep, not spinning: far less CPU than the 600 ms of waiting.
    assert.ok(res.cpuMs < res.wallMs / 2, `${res.cpuMs} ms of CPU in ${res.wallMs} ms of waiting`);
    const done = await within(r.done, 15_000, 'the child');
    assert.equal(done.code, 0, done.stderr);
  });

  it('a process killed holding mutexes it locked and unlocked out of order: exactly the ones it held say ownerDied', async () => {
    const base = mname('order');
    const all = [0, 1, 2, 3].map((i) => `${base}-${i}`);
    names.push(...all);
    for (const n of all) createMutex(n).close();
    // Locks 0, 1, 2, 3; unlocks 1 (in the middle of the list) and 3 (its top); then is killed.
    const r = child(
      `
      const ms = [];
      for (const n of names) { const m = await ipc.openMutex(n); await m.lock(); ms.push(m); }
      ms[1].unlock();
      ms[3].unlock();
      say({ holding: [0, 2] });
      setInterval(() => {}, 1000);
    `,
      all,
    );
    const out = jsonLines(r);
    const ready = await out.next(10_000);
    assert.equal(ready.failed, undefined, ready.failed);
    r.child.kill('SIGKILL');
    await r.done;
    const seen: boolean[] = [];
    for (const n of all) {
      const m = await openMutex(n);
      try {
        const got = await m.lock({ timeout: 5000 });
        seen.push(got.ownerDied);
        if (got.ownerDied) m.markConsistent();
        m.unlock();
      } finally {
        await m.close();
      }
    }
    assert.deepEqual(seen, [true, false, true, false]);
  });
});
