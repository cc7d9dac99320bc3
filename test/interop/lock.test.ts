/**
 * File locks against peers we did not write, each direction, waiting and refused: Python's
 * fcntl.lockf (classic record locks) and fcntl.flock, util-linux flock(1), and a C program
 * with F_OFD_SETLKW. And `ipckit lock` from the shell.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { isProcessAlive, openFileLock } from '../../src/index.js';
import { compileC, lineFrom, processAlive, run, runCli, runPython, scratchPath, sleep, within } from '../helpers.js';

function lockFile(tag: string): string {
  const p = scratchPath(`${tag}.lock`);
  writeFileSync(p, 'x'.repeat(64));
  return p;
}

/** Python holds `how` on the file until a line arrives on stdin, then exits. */
const PY_HOLD = `
import fcntl, sys, os
f = open(sys.argv[1], 'r+')
how = sys.argv[2]
if how == 'lockf': fcntl.lockf(f, fcntl.LOCK_EX, 10, 0)
elif how == 'flock': fcntl.flock(f, fcntl.LOCK_EX)
print('held', os.getpid(), flush=True)
sys.stdin.readline()
`;

/** Python tries (nb) or waits for `how`, and says which. */
const PY_TAKE = `
import fcntl, sys, time
f = open(sys.argv[1], 'r+')
how, mode = sys.argv[2], sys.argv[3]
flags = fcntl.LOCK_EX | (fcntl.LOCK_NB if mode == 'try' else 0)
if mode == 'wait': print('waiting', flush=True)
t = time.time()
try:
    if how == 'lockf': fcntl.lockf(f, flags, 10, 0)
    else: fcntl.flock(f, flags)
    print('took after %.0f ms' % ((time.time() - t) * 1000), flush=True)
except BlockingIOError:
    print('refused', flush=True)
`;

const C_OFD = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  int fd = open(argv[1], O_RDWR);
  if (fd < 0) { perror("open"); return 2; }
  struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
  if (strcmp(argv[2], "try") == 0) {
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0) { printf("took\n"); return 0; }
    printf("refused %s\n", errno == EAGAIN ? "EAGAIN" : strerror(errno));
    return 0;
  }
  if (fcntl(fd, F_OFD_SETLKW, &fl) != 0) { perror("F_OFD_SETLKW"); return 2; }
  printf("held\n");
  if (strcmp(argv[2], "hold") == 0) { char b[8]; read(0, b, sizeof b); }
  return 0;
}
`;

describe('file locks with Python', () => {
  it('fcntl.lockf holds: our OFD lock is refused, names the holder pid, and waits for it', async () => {
    const path = lockFile('py-lockf');
    const py = runPython(PY_HOLD, [path, 'lockf']);
    const line = await within(lineFrom(py.child.stdout!, /^held/), 10_000, 'python holds');
    const pid = Number(line.split(' ')[1]);
    const lock = await openFileLock(path);
    try {
      assert.equal(lock.tryLock(), undefined);
      assert.deepEqual(lock.holder(), { kind: 'posix', shared: false, pid, start: 0, length: 10 });
      const waiting = lock.lock({ timeout: 10_000 });
      await sleep(50);
      py.child.stdin!.end('\n');
      await within(waiting, 5000, 'the lock once python let go');
    } finally {
      await lock.close();
      await py.done;
    }
  });

  it('we hold: fcntl.lockf is refused with LOCK_NB, and waits without it until we let go', async () => {
    const path = lockFile('py-lockf2');
    const lock = await openFileLock(path);
    const held = lock.tryLock()!;
    try {
      const refused = await runPython(PY_TAKE, [path, 'lockf', 'try']).done;
      assert.equal(refused.stdout.trim(), 'refused', refused.stderr);
      const waiter = runPython(PY_TAKE, [path, 'lockf', 'wait']);
      await within(lineFrom(waiter.child.stdout!, /^waiting/), 10_000, 'python is about to wait');
      await sleep(200);
      held.release();
      const r = await waiter.done;
      assert.match(r.stdout, /^waiting\ntook after \d+ ms/, r.stderr);
      assert.ok(Number(/after (\d+)/.exec(r.stdout)![1]) >= 100, 'python waited for us');
    } finally {
      await lock.close();
    }
  });

  it('fcntl.flock against our flock kind, both ways', async () => {
    const path = lockFile('py-flock');
    const py = runPython(PY_HOLD, [path, 'flock']);
    const line = await within(lineFrom(py.child.stdout!, /^held/), 10_000, 'python holds');
    const lock = await openFileLock(path, { kind: 'flock' });
    try {
      assert.equal(lock.tryLock(), undefined);
      assert.equal(lock.holder()?.pid, Number(line.split(' ')[1]));
      const waiting = lock.lock({ timeout: 10_000 });
      py.child.stdin!.end('\n');
      const held = await within(waiting, 5000, 'flock after python');
      const refused = await runPython(PY_TAKE, [path, 'flock', 'try']).done;
      assert.equal(refused.stdout.trim(), 'refused');
      held.release();
      const took = await runPython(PY_TAKE, [path, 'flock', 'try']).done;
      assert.match(took.stdout, /^took/);
    } finally {
      await lock.close();
      await py.done;
    }
  });
});

describe('file locks with flock(1) and C', () => {
  it('flock(1) and our flock kind exclude each other', async () => {
    const path = lockFile('flock1');
    const lock = await openFileLock(path, { kind: 'flock' });
    const held = lock.tryLock()!;
    try {
      const refused = await run('flock', ['-n', path, 'true']).done;
      assert.equal(refused.code, 1, 'flock -n fails while we hold it');
      const holder = run('flock', [path, 'sh', '-c', 'echo in; sleep 0.3']);
      await sleep(100);
      held.release();
      await within(lineFrom(holder.child.stdout!, /^in/), 5000, 'flock(1) got it after we let go');
      const t = performance.now();
      const ours = await within(lock.lock({ timeout: 5000 }), 5000, 'ours after flock(1)');
      assert.ok(performance.now() - t > 100, 'we waited for flock(1)');
      ours.release();
      await holder.done;
    } finally {
      await lock.close();
    }
  });

  it('a C program with F_OFD_SETLKW: it waits for us, and we for it', async () => {
    const bin = compileC('ofd-lock', C_OFD);
    const path = lockFile('c-ofd');
    const lock = await openFileLock(path);
    try {
      const held = lock.tryLock()!;
      assert.equal((await run(bin, [path, 'try']).done).stdout.trim(), 'refused EAGAIN');
      const waiter = run(bin, [path, 'wait']);
      await sleep(100);
      assert.equal(processAlive(waiter.child.pid!), true, 'C waits');
      held.release();
      assert.equal((await within(waiter.done, 5000, 'C got it')).stdout.trim(), 'held');
      const c = run(bin, [path, 'hold']);
      await within(lineFrom(c.child.stdout!, /^held/), 5000, 'C holds');
      assert.equal(lock.tryLock(), undefined);
      assert.equal(lock.holder()?.pid, undefined, 'an OFD holder has no pid');
      const ours = lock.lock({ timeout: 5000 });
      c.child.stdin!.end('x');
      await within(ours, 5000, 'ours after C');
      await c.done;
    } finally {
      await lock.close();
    }
  });
});

describe('ipckit lock', () => {
  it('runs the command holding the lock, exits with its status, 124 on timeout, and lock info lists holders', async () => {
    const path = lockFile('cli');
    const r = await runCli(['lock', path, '--', 'sh', '-c', 'flock -n "$0" true; echo "flock(1): $?"; exit 7', path]).done;
    assert.equal(r.stdout.trim(), 'flock(1): 0', 'an OFD lock does not stop flock(1)');
    assert.equal(r.code, 7);
    const f = await runCli(['lock', path, '--flock', '--', 'sh', '-c', 'flock -n "$0" true; echo "flock(1): $?"', path]).done;
    assert.equal(f.stdout.trim(), 'flock(1): 1', 'with --flock, flock(1) is refused');
    const lock = await openFileLock(path);
    const held = lock.tryLock({ range: { start: 0, length: 8 } })!;
    try {
      const t = await runCli(['lock', path, '--range', '4:4', '--timeout', '200', '--', 'true']).done;
      assert.equal(t.code, 124);
      assert.match(t.stderr, /ERR_IPCKIT_TIMEOUT/);
      const other = await runCli(['lock', path, '--range', '8:0', '--', 'true']).done;
      assert.equal(other.code, 0, 'a range that does not overlap');
      const info = await runCli(['lock', 'info', path, '--json']).done;
      // An OFD lock's pid is unknown to the kernel: the JSON has none.
      assert.deepEqual(JSON.parse(info.stdout), [{ kind: 'ofd', shared: false, start: 0, length: 8, waiting: false }]);
    } finally {
      held.release();
      await lock.close();
    }
    const missing = await runCli(['lock', scratchPath('nope.lock'), '--', 'true']).done;
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /pass --create/);
  });

  it('the command dies with ipckit, and the lock goes with them', async () => {
    const path = lockFile('cli-kill');
    const cli = runCli(['lock', path, '--', 'sh', '-c', 'echo $$; exec sleep 30']);
    const pid = Number(await within(lineFrom(cli.child.stdout!, /^\d+$/), 10_000, 'the command runs'));
    cli.child.kill('SIGKILL');
    await cli.done;
    // isProcessAlive: a killed orphan may stay a zombie of the test runner, which is not alive.
    for (let i = 0; i < 100 && isProcessAlive(pid); i++) await sleep(20);
    assert.equal(isProcessAlive(pid), false, 'the command was killed with ipckit');
    const lock = await openFileLock(path);
    assert.ok(lock.tryLock(), 'the lock is free');
    await lock.close();
  });
});
