/**
 * Receives on byte streams and packet sockets that retry the read for a few µs before they
 * wait for the poll (spinMicros), semaphore waits and mutex locks that retry taking before
 * they sleep, and what they owe the rest of the event-loop turn
 * (src/os/turn.ts): the batches written before a spin, and a turn of the loop at least
 * every millisecond however fast the answers come.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import type { Receiver, Sender } from '../src/core/channel.js';
import { createPipe, spawnWithPipes } from '../src/mechanisms/pipe/pipe.js';
import { socketPair } from '../src/mechanisms/socket/socket.js';
import { createMessageQueue } from '../src/mechanisms/mqueue/mqueue.js';
import { createMutex, openMutex, unlinkMutex } from '../src/mechanisms/mutex/mutex.js';
import { createSemaphore, openSemaphore, unlinkSemaphore } from '../src/mechanisms/semaphore/semaphore.js';
import { mapFile } from '../src/mechanisms/shm/shm.js';
import { sendSignal, signalReceiver } from '../src/mechanisms/signal/signal.js';
import { createSysvSemaphoreSet, openSysvSemaphoreSetSync, removeSysvSemaphoreSet } from '../src/mechanisms/sysv/sem.js';
import { compileC, PY_READ_EXACT, rejectsWith, scratchPath, throwsWith, uniqueKey, within } from './helpers.js';

/** A python3 echo of length-framed messages (u32 LE + payload) on fd 3 (read) and fd 4 (write). */
const PY_ECHO = `
import os, struct, sys
r, w = int(sys.argv[1]), int(sys.argv[2])
os.set_blocking(r, True)
os.set_blocking(w, True)
${PY_READ_EXACT}
while True:
    h = exact(4)
    os.write(w, h + exact(struct.unpack('<I', h)[0]))
`;

/** A python3 echo of seqpacket messages on fd 3 (each message one recv and one send). */
const PY_SEQPACKET_ECHO = `
import socket
s = socket.socket(fileno=3)
s.setblocking(True)
while True:
    m = s.recv(65536)
    if not m: break
    s.send(m)
`;

async function roundTrips(tx: Sender<Uint8Array>, rx: Receiver<Uint8Array>, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const m = new Uint8Array(8 + (i % 300)).fill(i & 0xff);
    new DataView(m.buffer).setUint32(0, i, true);
    await tx.send(m);
    const echo = await rx.receive({ timeout: 10_000 });
    assert.equal(new DataView(echo.buffer, echo.byteOffset).getUint32(0, true), i, 'answers come in order');
    assert.deepEqual(new Uint8Array(echo), m, `answer ${i} is the request`);
  }
}

/** Starts `command` with the other end of `mine` at fd 3, runs 1000 round trips through it, and returns its exit code. */
async function echoOverInherited(mine: Sender<Uint8Array> & Receiver<Uint8Array> & { close(): Promise<unknown> }, theirs: { close(): Promise<unknown> }, command: string, args: string[]): Promise<number | null> {
  const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit', (theirs as unknown as { fd: number }).fd] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  await theirs.close();
  try {
    await roundTrips(mine, mine, 1000);
  } finally {
    await mine.close();
  }
  return exited;
}

describe('receives that spin before they wait (spinMicros)', () => {
  for (const spinMicros of [0, 20, 2000]) {
    it(`round trips with a python3 echo over pipes, spinMicros ${spinMicros}: every answer, in order`, async () => {
      const child = spawnWithPipes(['python3', '-c', PY_ECHO, '3', '4'], { pipes: { 3: 'write', 4: 'read' }, spinMicros });
      try {
        await roundTrips(child.sender(3), child.receiver(4), 2000);
      } finally {
        await child.close();
      }
    });

    it(`round trips with a python3 echo over a Unix stream and a seqpacket socket, spinMicros ${spinMicros}`, async () => {
      for (const [kind, code, args] of [
        ['unix', PY_ECHO, ['3', '3']],
        ['unix-seqpacket', PY_SEQPACKET_ECHO, []],
      ] as const) {
        const [mine, theirs] = socketPair(kind, { spinMicros });
        await echoOverInherited(mine, theirs, 'python3', ['-c', code, ...args]);
      }
    });
  }

  it('the event loop turns during a request/response exchange answered within the spin (timers run)', async () => {
    // Two channels of this process answer each other at once: without the 1 ms bound every
    // receive would resolve in the spin or from a read, and the loop would never turn
    // (spinMicros set, so that a machine with one CPU spins too).
    const pipes = [createPipe({ spinMicros: 2000 }), createPipe({ spinMicros: 2000 })] as const;
    const kinds: Array<[string, Sender<Uint8Array> & Receiver<Uint8Array>, Sender<Uint8Array> & Receiver<Uint8Array>, () => Promise<void>]> = [];
    for (const kind of ['unix', 'unix-seqpacket'] as const) {
      const [a, b] = socketPair(kind, { spinMicros: 2000 });
      kinds.push([kind, a, b, async () => void (await Promise.all([a.close(), b.close()]))]);
    }
    const pipeA = { send: (m: Uint8Array) => pipes[0].writer.send(m), receive: () => pipes[1].reader.receive() } as Sender<Uint8Array> & Receiver<Uint8Array>;
    const pipeB = { send: (m: Uint8Array) => pipes[1].writer.send(m), receive: () => pipes[0].reader.receive() } as Sender<Uint8Array> & Receiver<Uint8Array>;
    kinds.push(['pipe', pipeA, pipeB, async () => void (await Promise.all(pipes.flatMap((p) => [p.reader.close(), p.writer.close()])))]);
    for (const [kind, a, b, close] of kinds) {
      // One function plays both sides in turn, so every receive finds its message already
      // sent (read at once, or caught by the spin after the batch went out).
      let ticks = 0;
      const timer = setInterval(() => void ticks++, 1);
      const m = new Uint8Array(16);
      let n = 0;
      for (; n < 50_000 && ticks < 5; n++) {
        await a.send(m);
        await b.send(await b.receive());
        await a.receive();
      }
      clearInterval(timer);
      await close();
      assert.ok(ticks >= 5, `${kind}: a 1 ms interval ran ${ticks} times during ${n} round trips`);
    }
  });

  it('POSIX message queues to a python3 (ctypes) echo: every answer in order with spinMicros 0, 20 and 2000, and the event loop turns while answers come within the spin', async () => {
    const PY_MQ_ECHO = `
import ctypes, os, sys
rt = ctypes.CDLL('librt.so.1', use_errno=True)
rt.mq_receive.restype = ctypes.c_ssize_t
rx = rt.mq_open(sys.argv[1].encode(), os.O_RDONLY)
tx = rt.mq_open(sys.argv[2].encode(), os.O_WRONLY)
buf = ctypes.create_string_buffer(512)
while True:
    n = rt.mq_receive(rx, buf, 512, None)
    if n <= 0: break
    rt.mq_send(tx, buf, n, 0)
`;
    for (const spinMicros of [0, 20, 2000]) {
      const down = `/ipckit-test-spin-${process.pid}-${spinMicros}-d`;
      const up = `/ipckit-test-spin-${process.pid}-${spinMicros}-u`;
      const tx = createMessageQueue(down, { maxMessages: 4, maxMessageBytes: 512, unlinkOnClose: true });
      const rx = createMessageQueue(up, { maxMessages: 4, maxMessageBytes: 512, unlinkOnClose: true, spinMicros });
      const py = spawn('python3', ['-c', PY_MQ_ECHO, down, up], { stdio: 'inherit' });
      const exited = new Promise((r) => py.once('exit', r));
      let ticks = 0;
      const timer = setInterval(() => void ticks++, 1);
      try {
        await roundTrips(tx, rx, 2000);
        await tx.send(new Uint8Array(0)); // python's loop ends on an empty message
      } finally {
        clearInterval(timer);
        py.kill(); // (already gone after the empty message; a failed exchange leaves it waiting)
        await tx.close();
        await rx.close();
      }
      await exited;
      // With answers caught by a 2 ms spin, only the 1 ms rule (os/turn.ts) lets the loop turn.
      assert.ok(ticks >= 5, `spinMicros ${spinMicros}: a 1 ms interval ran ${ticks} times during 2000 round trips`);
    }
  });

  it('the event loop turns while a C echo answers a POSIX queue within the spin every time', async () => {
    // The C peer polls its queue without sleeping, so every answer comes within a 2 ms
    // spin: only the 1 ms rule (os/turn.ts) lets the loop turn. Without it: 0 ticks.
    const echo = compileC('mq-busy-echo', `
#include <fcntl.h>
#include <mqueue.h>
#include <errno.h>
int main(int argc, char **argv) {
  mqd_t rx = mq_open(argv[1], O_RDONLY | O_NONBLOCK), tx = mq_open(argv[2], O_WRONLY);
  char buf[512];
  if (rx < 0 || tx < 0) return 2;
  for (;;) {
    ssize_t n = mq_receive(rx, buf, sizeof buf, 0);
    if (n < 0 && errno == EAGAIN) continue;
    if (n <= 0) return 0;
    if (mq_send(tx, buf, n, 0) != 0) return 3;
  }
}
`, ['-lrt']);
    const down = `/ipckit-test-spin-${process.pid}-cd`;
    const up = `/ipckit-test-spin-${process.pid}-cu`;
    const tx = createMessageQueue(down, { maxMessages: 4, maxMessageBytes: 512, unlinkOnClose: true });
    const rx = createMessageQueue(up, { maxMessages: 4, maxMessageBytes: 512, unlinkOnClose: true, spinMicros: 2000 });
    const child = spawn(echo, [down, up], { stdio: 'inherit' });
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    let ticks = 0;
    const timer = setInterval(() => void ticks++, 1);
    let n = 0;
    try {
      const m = new Uint8Array(16);
      for (; n < 50_000 && ticks < 5; n++) {
        await tx.send(m);
        await rx.receive({ timeout: 10_000 });
      }
      await tx.send(new Uint8Array(0));
    } finally {
      clearInterval(timer);
      child.kill();
      await tx.close();
      await rx.close();
    }
    await exited;
    assert.ok(ticks >= 5, `a 1 ms interval ran ${ticks} times during ${n} round trips`);
  });

  it('a stream end inherited by a child spins there too (openInheritedSocket takes spinMicros)', async () => {
    const [mine, theirs] = socketPair('unix');
    const script = `
      const { openInheritedSocket } = await import(${JSON.stringify(new URL('../src/mechanisms/socket/socket.js', import.meta.url).href)});
      const ch = openInheritedSocket(3, { spinMicros: 50 });
      for await (const m of ch) await ch.send(m);
    `;
    assert.equal(await echoOverInherited(mine, theirs, process.execPath, ['--input-type=module', '-e', script]), 0);
  });
});

describe('semaphore waits and mutex locks that spin before they sleep (spinMicros)', () => {
  it('a semaphore ping-pong with a C peer blocking in sem_wait: every hand-over with spinMicros 0, 20 and 2000, and the loop turns while answers come within the spin', async () => {
    // The C peer waits on ping and posts pong until it is killed; ours posts ping and waits
    // on pong, at least 2000 times and until a 1 ms interval has run 5 times.
    const echo = compileC('sem-echo', `
#include <fcntl.h>
#include <semaphore.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  sem_t *ping = sem_open(argv[1], 0), *pong = sem_open(argv[2], 0);
  if (ping == SEM_FAILED || pong == SEM_FAILED) return 2;
  for (;;) {
    if (sem_wait(ping) != 0) return 3;
    if (sem_post(pong) != 0) return 4;
  }
}
`, ['-pthread']);
    for (const spinMicros of [0, 20, 2000]) {
      const ping = createSemaphore(`/ipckit-test-spin-${process.pid}-${spinMicros}-ping`, { unlinkOnClose: true });
      const pong = createSemaphore(`/ipckit-test-spin-${process.pid}-${spinMicros}-pong`, { unlinkOnClose: true, spinMicros });
      const child = spawn(echo, [ping.name, pong.name], { stdio: 'inherit' });
      let ticks = 0;
      const timer = setInterval(() => void ticks++, 1);
      let n = 0;
      try {
        for (; n < 2000 || (ticks < 5 && n < 200_000); n++) {
          ping.post();
          await pong.wait({ timeout: 10_000 });
        }
        assert.deepEqual([ping.value(), pong.value()], [0, 0], 'every permit taken once, none left over');
        assert.equal(child.exitCode, null, 'the C peer is still serving');
      } finally {
        clearInterval(timer);
        child.kill();
        await ping.close();
        await pong.close();
      }
      // With answers caught by a 2 ms spin, only the 1 ms rule (os/turn.ts) lets the loop turn.
      assert.ok(ticks >= 5, `spinMicros ${spinMicros}: a 1 ms interval ran ${ticks} times during ${n} hand-overs`);
    }
  });

  it('a semaphore wait spins no longer than its timeout, and an abort before it ends it at once', async () => {
    const sem = createSemaphore(`/ipckit-test-spin-${process.pid}-t`, { unlinkOnClose: true, spinMicros: 10_000_000 });
    try {
      await rejectsWith(within(sem.wait({ timeout: 5 }), 5000), 'ERR_IPCKIT_TIMEOUT');
      await rejectsWith(within(sem.wait({ signal: AbortSignal.abort() }), 5000), 'ERR_IPCKIT_ABORTED');
      sem.post();
      await within(sem.wait({ timeout: 5 }), 5000); // a permit there is taken at once, spin or not
    } finally {
      await sem.close();
    }
  });

  it('spinMicros is checked when a semaphore or mutex is made or opened', async () => {
    for (const bad of [-1, 1.5, 'x', Infinity]) {
      throwsWith(() => createSemaphore(`/ipckit-test-spin-${process.pid}-b`, { spinMicros: bad as number }), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => createMutex(`/ipckit-test-spin-${process.pid}-b`, { spinMicros: bad as number }), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => void openSemaphore(`/ipckit-test-spin-${process.pid}-b`, { spinMicros: bad as number }), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => void openMutex(`/ipckit-test-spin-${process.pid}-b`, { spinMicros: bad as number }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    }
    assert.equal(unlinkSemaphore(`/ipckit-test-spin-${process.pid}-b`), false, 'a refused create made nothing');
    assert.equal(unlinkMutex(`/ipckit-test-spin-${process.pid}-b`), false, 'a refused create made nothing');
  });

  it('a mutex shared with a C peer that takes it 2000 times: lock() with spinMicros 0 and 2000 excludes it every time (a shared counter loses nothing)', async () => {
    // The C peer knows only the documented layout (docs/mutex.md) and increments a counter
    // in a mapped file under the lock, reading and writing it apart; so do we. A lock that
    // overlapped the peer's would lose increments.
    const peer = compileC('mutex-counter', String.raw`
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
int main(int argc, char **argv) {
  int fd = shm_open(argv[1], O_RDWR, 0), cfd = open(argv[2], O_RDWR);
  if (fd < 0 || cfd < 0) return 2;
  char *obj = mmap(NULL, 192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  volatile int32_t *counter = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
  if (obj == MAP_FAILED || (void *)counter == MAP_FAILED || *(uint32_t *)obj != 0x4d4b5049) return 3;
  pthread_mutex_t *m = (pthread_mutex_t *)(obj + 128);
  for (int i = atoi(argv[3]); i > 0; i--) {
    if (pthread_mutex_lock(m) != 0) return 4;
    int32_t v = *counter;
    for (volatile int k = 0; k < 500; k++) {}
    *counter = v + 1;
    pthread_mutex_unlock(m);
    for (volatile int k = 0; k < 500; k++) {}
  }
  return 0;
}
`, ['-pthread', '-lrt']);
    const n = 2000;
    for (const spinMicros of [0, 2000]) {
      const name = `/ipckit-test-spin-${process.pid}-m${spinMicros}`;
      const mutex = createMutex(name, { unlinkOnClose: true, spinMicros });
      const file = scratchPath('mutex-counter');
      const shared = mapFile(file, { size: 4096 });
      const counter = new Int32Array(shared.buffer, 0, 1);
      const child = spawn(peer, [name, file, String(n)], { stdio: 'inherit' });
      const exited = new Promise<number | null>((r) => child.once('exit', r));
      try {
        for (let i = 0; i < n; i++) {
          await mutex.lock({ timeout: 10_000 });
          const v = counter[0]!;
          if (i % 64 === 0) await new Promise((r) => setImmediate(r)); // sometimes hold it across a turn
          counter[0] = v + 1;
          mutex.unlock();
        }
        assert.equal(await exited, 0, 'the C peer took the lock every time');
        assert.equal(counter[0], 2 * n, `spinMicros ${spinMicros}: no increment lost`);
      } finally {
        child.kill();
        await mutex.close();
        shared.close();
      }
    }
  });
});

describe('signal receives that spin before they wait (spinMicros)', () => {
  it('a signal ping-pong with a C peer (sigwaitinfo, sigqueue with the value): every value in order with spinMicros 0, 20 and 2000, and the loop turns while answers come within the spin', async () => {
    const echo = compileC('signal-echo', `
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
  pid_t parent = atoi(argv[1]);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGRTMIN + 1);
  sigprocmask(SIG_BLOCK, &set, NULL);
  printf("ready\\n");
  fflush(stdout);
  for (;;) {
    siginfo_t si;
    if (sigwaitinfo(&set, &si) < 0) return 2;
    if (si.si_value.sival_int == -1) return 0;
    union sigval v = { .sival_int = si.si_value.sival_int };
    if (sigqueue(parent, SIGRTMIN + 1, v) != 0) return 3;
  }
}
`);
    for (const spinMicros of [0, 20, 2000]) {
      const rx = signalReceiver('SIGRTMIN+1', { spinMicros });
      const child = spawn(echo, [String(process.pid)], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise<number | null>((r) => child.once('exit', r));
      let ticks = 0;
      let timer: NodeJS.Timeout | undefined;
      let n = 0;
      try {
        await new Promise((r) => child.stdout!.once('data', r)); // the peer blocks the signal now
        timer = setInterval(() => void ticks++, 1);
        for (; n < 1000 || (ticks < 5 && n < 100_000); n++) {
          sendSignal(child.pid!, 'SIGRTMIN+1', { value: n });
          const info = await rx.receive({ timeout: 10_000 });
          assert.deepEqual([info.value, info.pid], [n, child.pid], 'each answer is the value sent, from the peer');
        }
        sendSignal(child.pid!, 'SIGRTMIN+1', { value: -1 });
        assert.equal(await exited, 0);
      } finally {
        clearInterval(timer);
        child.kill();
        await rx.close();
      }
      assert.ok(ticks >= 5, `spinMicros ${spinMicros}: a 1 ms interval ran ${ticks} times during ${n} round trips`);
    }
  });

  it('spinMicros is checked when a signal receiver is made', () => {
    for (const bad of [-1, 1.5, 'x']) throwsWith(() => signalReceiver('SIGRTMIN+2', { spinMicros: bad as number }), 'ERR_IPCKIT_INVALID_ARGUMENT');
  });
});

describe('System V semaphore operations that spin before a thread waits (spinMicros)', () => {
  it('a ping-pong with a C peer blocking in semop: every change with spinMicros 0, 20 and 2000, and the loop turns while answers come within the spin', async () => {
    const echo = compileC('sysv-sem-echo', `
#include <stdlib.h>
#include <sys/sem.h>
int main(int argc, char **argv) {
  int id = semget(atoi(argv[1]), 0, 0);
  if (id < 0) return 2;
  struct sembuf take = { 0, -1, 0 }, give = { 1, 1, 0 };
  for (;;) {
    if (semop(id, &take, 1) != 0) return 0; /* removed: done */
    if (semop(id, &give, 1) != 0) return 3;
  }
}
`);
    for (const spinMicros of [0, 20, 2000]) {
      const key = uniqueKey();
      const set = createSysvSemaphoreSet(key, { count: 2, removeOnClose: true, spinMicros });
      const child = spawn(echo, [String(key)], { stdio: 'inherit' });
      const exited = new Promise<number | null>((r) => child.once('exit', r));
      let ticks = 0;
      const timer = setInterval(() => void ticks++, 1);
      let n = 0;
      try {
        for (; n < 1000 || (ticks < 5 && n < 100_000); n++) {
          await set.op([{ index: 0, delta: 1 }]);
          await set.op([{ index: 1, delta: -1 }], { timeout: 10_000 });
        }
        assert.deepEqual(set.getAll(), [0, 0], 'every change made once');
      } finally {
        clearInterval(timer);
        set.remove(); // the peer's semop fails and it ends; removed whatever close() does
        await set.close();
      }
      assert.equal(await within(exited, 10_000, 'the C peer ending'), 0);
      assert.ok(ticks >= 5, `spinMicros ${spinMicros}: a 1 ms interval ran ${ticks} times during ${n} round trips`);
    }
  });

  it('an op spins no longer than its timeout, an aborted one takes nothing and close() after it settles; spinMicros is checked when a set is made or opened', async () => {
    const set = createSysvSemaphoreSet(uniqueKey(), { removeOnClose: true, spinMicros: 10_000_000 });
    try {
      await rejectsWith(within(set.op([{ index: 0, delta: -1 }], { timeout: 5 }), 5000), 'ERR_IPCKIT_TIMEOUT');
      // Refused before its thread started: close() used to wait for it forever.
      await rejectsWith(within(set.op([{ index: 0, delta: -1 }], { signal: AbortSignal.abort() }), 5000), 'ERR_IPCKIT_ABORTED');
      for (const bad of [-1, 1.5, 'x']) {
        throwsWith(() => createSysvSemaphoreSet(uniqueKey(), { spinMicros: bad as number }), 'ERR_IPCKIT_INVALID_ARGUMENT');
        throwsWith(() => openSysvSemaphoreSetSync({ id: set.id }, { spinMicros: bad as number }), 'ERR_IPCKIT_INVALID_ARGUMENT');
      }
      assert.deepEqual(set.getAll(), [0]);
      await within(set.close(), 5000, 'close after an aborted op');
    } finally {
      // By key: removed even when close() above never settled (a handle's remove() is for its own set).
      removeSysvSemaphoreSet({ key: set.key });
    }
  });
});
