/** Shared memory segments and mapped files: ownership, the SharedArrayBuffer, cross-process atomics and futex wait/notify. */
import assert from 'node:assert/strict';
import { constants as bufferConstants } from 'node:buffer';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { createSharedMemory, mapFile, openSharedMemory, openSharedMemorySync, unlinkSharedMemory } from '../src/mechanisms/shm/shm.js';
import { native } from '../src/os/native.js';
import { AS_NOBODY, checkFdLeaks, fixturesDir, isRoot, repoRoot, jsonLines, run, rejectsWith, runFixture, runPython, scratchDir, scratchPath, sleep, throwsWith, uniqueName, within } from './helpers.js';

checkFdLeaks();
scratchDir(); // at the top level, so the folder lives as long as this file's tests

const made: string[] = [];
after(() => {
  for (const n of made) unlinkSharedMemory(n);
});
function name(tag = 'shm'): string {
  const n = uniqueName(tag);
  made.push(n);
  return n;
}

describe('segments: create, open, unlink', () => {
  it('creates exclusively with mode exactly 0600, whatever the umask', () => {
    const n = name();
    const old = process.umask(0);
    try {
      using seg = createSharedMemory(n, 4096);
      assert.equal(seg.info().mode, 0o600);
      assert.equal(lstatSync(`/dev/shm${n}`).mode & 0o777, 0o600);
      throwsWith(() => createSharedMemory(n, 4096), 'ERR_IPCKIT_EXISTS');
    } finally {
      process.umask(old);
    }
  });

  it('takes { mode, group } for sharing, and sets them exactly', () => {
    const n = name();
    const old = process.umask(0o077);
    try {
      using seg = createSharedMemory(n, 4096, { mode: 0o660, group: 65534 });
      const info = seg.info();
      assert.equal(info.mode, 0o660);
      assert.equal(info.gid, 65534);
    } finally {
      process.umask(old);
    }
  });

  it('POSIX names: a leading slash is added; inner slashes, empty and long names are refused', () => {
    const bare = uniqueName('bare').slice(1);
    made.push(`/${bare}`);
    using seg = createSharedMemory(bare, 64);
    assert.equal(seg.name, `/${bare}`);
    assert.ok(existsSync(`/dev/shm/${bare}`));
    throwsWith(() => createSharedMemory('/a/b', 64), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createSharedMemory('/', 64), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createSharedMemory(`/${'x'.repeat(300)}`, 64), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createSharedMemory(uniqueName(), 0), 'ERR_IPCKIT_INVALID_ARGUMENT');
  });

  it('open refuses a missing name, and unlink is idempotent', () => {
    const n = name();
    throwsWith(() => openSharedMemorySync(n), 'ERR_IPCKIT_NOT_FOUND');
    createSharedMemory(n, 64).close();
    assert.equal(unlinkSharedMemory(n), true);
    assert.equal(unlinkSharedMemory(n), false);
  });

  it('open refuses a segment wider than 0600 unless asked, and one of another owner unless trusted', { skip: !isRoot && 'needs root to make a segment of another user' }, async () => {
    const wide = name('wide');
    createSharedMemory(wide, 64, { mode: 0o644 }).close();
    throwsWith(() => openSharedMemorySync(wide), 'ERR_IPCKIT_PERMISSION');
    (await openSharedMemory(wide, { mode: 0o644 })).close();

    // A squatter (uid 65534) made the name first, world-writable.
    const squat = name('squat');
    const r = await runPython(
      `import os,sys; fd=os.open('/dev/shm'+sys.argv[1], os.O_CREAT|os.O_EXCL|os.O_RDWR, 0o666); os.fchmod(fd,0o666); os.ftruncate(fd,64)`,
      [squat],
      {},
    ).done;
    assert.equal(r.code, 0, r.stderr);
    const asNobody = await runPython('import os,sys; os.chown("/dev/shm"+sys.argv[1], 65534, 65534)', [squat]).done;
    assert.equal(asNobody.code, 0, asNobody.stderr);
    throwsWith(() => createSharedMemory(squat, 64), 'ERR_IPCKIT_EXISTS');
    throwsWith(() => openSharedMemorySync(squat), 'ERR_IPCKIT_PERMISSION');
    (await openSharedMemory(squat, { anyOwner: true })).close();
    (await openSharedMemory(squat, { owner: 65534, mode: 0o666 })).close();
  });

  it('another user cannot open an owner-only segment', { skip: !isRoot && 'needs root to run a peer as nobody' }, async () => {
    const n = name();
    using seg = createSharedMemory(n, 64);
    seg.write(Buffer.from('secret'));
    const nobody = await runNobody(['/usr/bin/python3', '-c', `import os,sys\ntry:\n  os.open('/dev/shm'+sys.argv[1], os.O_RDONLY)\n  print('opened')\nexcept PermissionError:\n  print('refused')`, n]);
    assert.equal(nobody.trim(), 'refused');
  });
});

async function runNobody(argv: string[]): Promise<string> {
  const { run } = await import('./helpers.js');
  const r = await run(AS_NOBODY[0]!, [...AS_NOBODY.slice(1), ...argv]).done;
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

describe('the SharedArrayBuffer over the mapping', () => {
  it('is a real SharedArrayBuffer: Atomics from two processes add up', async () => {
    const n = name();
    using seg = createSharedMemory(n, 4096);
    assert.ok(seg.buffer instanceof SharedArrayBuffer);
    assert.equal(seg.external, native.externalBuffersAllowed);
    const i32 = new Int32Array(seg.buffer);
    const peer = runFixture('shm-peer', ['add', n, '5', '200000']);
    const lines = jsonLines(peer);
    await lines.next();
    for (let k = 0; k < 200_000; k++) Atomics.add(i32, 5, 1);
    await lines.next();
    assert.equal((await peer.done).code, 0);
    assert.equal(Atomics.load(i32, 5), 400_000);
    assert.equal(seg.load(5), 400_000);
  });

  it('can be posted to a worker thread without a copy', async () => {
    const n = name();
    using seg = createSharedMemory(n, 4096);
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const i32 = new Int32Array(workerData);
       Atomics.store(i32, 3, 4242);
       parentPort.postMessage(workerData.byteLength);`,
      { eval: true, workerData: seg.buffer },
    );
    const len = await within(new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    }), 10_000);
    await worker.terminate();
    assert.equal(len, 4096);
    assert.equal(seg.load(3), 4242, 'the worker wrote into the same pages');
    const peer = await runFixture('shm-peer', ['read', n, '12', '4']).done;
    assert.equal(JSON.parse(peer.stdout).hex, Buffer.from(new Int32Array([4242]).buffer).toString('hex'), 'and so did another process see it');
  });

  it('a buffer made in a worker outlives the worker in a thread that never loaded ipckit (collected, then exit)', async () => {
    const n = name();
    const r = await run(process.execPath, ['--expose-gc', join(fixturesDir, 'sab-from-worker.js'), n]).done;
    assert.deepEqual({ code: r.code, signal: r.signal, stdout: r.stdout.trim().split('\n') }, { code: 0, signal: null, stdout: ['{"read":42}', '{"collected":true}'] }, r.stderr);
  });

  it('stays usable after close(): the pages go when the last view is garbage', () => {
    const n = name();
    const seg = createSharedMemory(n, 1 << 20);
    const view = new Uint8Array(seg.buffer);
    view[100] = 7;
    seg.close();
    seg.close();
    assert.equal(view[100], 7);
    view[101] = 8;
    assert.equal(view[101], 8);
    throwsWith(() => seg.buffer, 'ERR_IPCKIT_CLOSED');
    throwsWith(() => seg.load(0), 'ERR_IPCKIT_CLOSED');
  });

  it('the copying path ({ external: false }) has no buffer, and read/write/atomics still work', () => {
    const n = name();
    using a = createSharedMemory(n, 4096, { external: false });
    assert.equal(a.external, false);
    throwsWith(() => a.buffer, 'ERR_IPCKIT_UNSUPPORTED');
    a.write(Buffer.from('hello'), 10);
    assert.equal(a.read(10, 5).toString(), 'hello');
    assert.equal(a.add(20, 5), 0);
    assert.equal(a.compareExchange(20, 5, 9), 5);
    using b = openSharedMemorySync(n);
    assert.equal(b.load(20), 9, 'the copying path writes the shared pages');
    assert.equal(Buffer.from(b.buffer, 10, 5).toString(), 'hello');
  });

  it('a read-only mapping reads, refuses writes, and has no buffer (a write through it would crash the process)', () => {
    const n = name();
    using w = createSharedMemory(n, 4096);
    w.write(Buffer.from('abc'));
    using r = openSharedMemorySync(n, { readOnly: true });
    assert.equal(r.read(0, 3).toString(), 'abc');
    throwsWith(() => r.buffer, 'ERR_IPCKIT_UNSUPPORTED');
    throwsWith(() => r.write(Buffer.from('x')), 'ERR_IPCKIT_PERMISSION');
    throwsWith(() => r.store(0, 1), 'ERR_IPCKIT_PERMISSION');
  });

  it('a segment over 4 GiB: every word is reachable on both paths, at the right byte', async () => {
    const n = name();
    const size = 2 ** 32 + 8192; // sparse: only the pages touched take memory
    for (const external of [true, false]) {
      const seg = createSharedMemory(n, size, { external });
      try {
        const last = size / 4 - 1;
        seg.store(last, 0x5a5a5a5a);
        assert.equal(seg.load(last), 0x5a5a5a5a);
        assert.equal(seg.add(2 ** 30 + 1, 7), 0);
        assert.equal(seg.read(2 ** 32 + 4, 4).readInt32LE(0), 7);
        assert.equal(seg.read(4, 4).readInt32LE(0), 0, 'word 1 is untouched');
        if (size > bufferConstants.MAX_LENGTH) throwsWith(() => seg.read(), 'ERR_IPCKIT_INVALID_ARGUMENT');
        const py = await runPython(`import os,sys\nfd=os.open('/dev/shm'+sys.argv[1],os.O_RDONLY)\nprint(os.pread(fd,4,int(sys.argv[2])).hex())`, [n, String(size - 4)]).done;
        assert.equal(py.stdout.trim(), '5a5a5a5a', py.stderr);
      } finally {
        seg.close();
        unlinkSharedMemory(n);
      }
    }
  });

  it('bounds-checks offsets and word indexes', () => {
    const n = name();
    using seg = createSharedMemory(n, 64);
    throwsWith(() => seg.read(60, 8), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => seg.write(new Uint8Array(8), 60), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => seg.load(16), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => seg.notify(-1), 'ERR_IPCKIT_INVALID_ARGUMENT');
  });
});

describe('builds without external buffers (the Electron path)', () => {
  // Node's headers: where node-gyp found them (a system install, or its cache).
  const headers = ['/usr/include/node', join(homedir(), '.cache', 'node-gyp', process.versions.node, 'include', 'node')].find((d) => existsSync(join(d, 'node_api.h')));
  it('native/shm.cc compiles with NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED (the V8 path compiled out)', { skip: (spawnSync('g++', ['--version']).status !== 0 && 'no g++') || (!headers && "Node's headers not found") }, () => {
    const addonApi = join(repoRoot, 'node_modules', 'node-addon-api');
    const r = spawnSync('g++', ['-fsyntax-only', '-std=c++17', '-Wall', `-I${headers}`, `-I${addonApi}`, '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', '-D_GNU_SOURCE', '-DNODE_API_NO_EXTERNAL_BUFFERS_ALLOWED', join(repoRoot, 'native', 'shm.cc')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '', 'no warnings');
  });
});

describe('futex wait and notify across processes', () => {
  it('our notify wakes a waiter in another process', async () => {
    const n = name();
    using seg = createSharedMemory(n, 4096);
    const peer = runFixture('shm-peer', ['wait', n, '4', '0', '10000']);
    const lines = jsonLines(peer);
    await lines.next();
    let woken = 0;
    for (let i = 0; i < 500 && woken === 0; i++) {
      await sleep(5);
      woken = seg.notify(4);
    }
    assert.equal(woken, 1, 'one waiter in the other process was woken');
    assert.deepEqual(await lines.next(), { result: 'ok' });
  });

  it("negative control: V8's Atomics.notify does not wake a waiter in another process", async () => {
    const n = name();
    using seg = createSharedMemory(n, 4096);
    const i32 = new Int32Array(seg.buffer);
    const peer = runFixture('shm-peer', ['v8wait', n, '4', '0', '600']);
    const lines = jsonLines(peer);
    await lines.next();
    let notified = 0;
    for (let i = 0; i < 40; i++) {
      await sleep(5);
      notified += Atomics.notify(i32, 4);
    }
    assert.equal(notified, 0, 'V8 sees no waiter: its wait list is per process');
    assert.deepEqual(await lines.next(), { result: 'timed-out' });
  });

  it('2000 wake-ups across processes, none lost', async () => {
    const n = name();
    using seg = createSharedMemory(n, 4096);
    const rounds = 2000;
    const peer = runFixture('shm-peer', ['pong', n, String(rounds)], { timeoutMs: 60_000 });
    const lines = jsonLines(peer);
    await lines.next();
    let woken = 0;
    for (let i = 1; i <= rounds; i++) {
      seg.store(0, i);
      woken += seg.notify(0);
      while (seg.load(1) !== i) assert.notEqual(seg.waitSync(1, i - 1, 5000), 'timed-out', `round ${i}: no answer`);
    }
    const summary = await lines.next();
    assert.equal(summary.rounds, rounds);
    // Every round woke the other side unless it had not gone to sleep yet (then no wake-up was needed).
    assert.ok(woken + summary.woken <= 2 * rounds);
  });

  it('wait keeps the event loop free and is woken by another process', async () => {
    const n = name();
    using seg = createSharedMemory(n, 4096);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    try {
      const p = seg.wait(8, 0, { timeout: 10_000 });
      const py = runPython(
        // futex(FUTEX_WAKE) from Python through ctypes: syscall 202 on x86-64, 98 on arm64.
        `import mmap,os,sys,time,ctypes\nfd=os.open('/dev/shm'+sys.argv[1],os.O_RDWR)\nm=mmap.mmap(fd,4096)\nlibc=ctypes.CDLL(None,use_errno=True)\ntime.sleep(0.3)\nm[32:36]=(1).to_bytes(4,'little')\naddr=ctypes.addressof(ctypes.c_char.from_buffer(m,32))\nnr=98 if os.uname().machine=='aarch64' else 202\nprint(libc.syscall(nr, ctypes.c_void_p(addr), 1, 0x7fffffff, None, None, 0))`,
        [n],
      );
      assert.equal(await p, 'ok');
      const r = await py.done;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), '1', 'python woke exactly one waiter: ours');
      assert.ok(ticks >= 10, `the event loop ran while waiting (${ticks} ticks)`);
    } finally {
      clearInterval(timer);
    }
  });

  it('wait: not-equal at once, timed-out, abort with its reason, ERR_IPCKIT_CLOSED on close', async () => {
    const n = name();
    const seg = createSharedMemory(n, 4096);
    seg.store(1, 5);
    assert.equal(await seg.wait(1, 4), 'not-equal');
    const t0 = Date.now();
    assert.equal(await seg.wait(1, 5, { timeout: 60 }), 'timed-out'); // as waitSync and Atomics.wait answer
    assert.ok(Date.now() - t0 >= 55);
    const ac = new AbortController();
    const waiting = seg.wait(1, 5, { signal: ac.signal });
    const reason = new Error('enough');
    ac.abort(reason);
    const e = await rejectsWith(waiting, 'ERR_IPCKIT_ABORTED');
    assert.equal((e as Error & { cause?: unknown }).cause, reason);
    const pending = seg.wait(1, 5);
    seg.close();
    await rejectsWith(pending, 'ERR_IPCKIT_CLOSED');
  });

  it("wait does not use libuv's thread pool: eight waits leave fs working", async () => {
    const n = name();
    using seg = createSharedMemory(n, 4096);
    const waits = Array.from({ length: 8 }, (_, i) => seg.wait(i, 0, { timeout: 5000 }).catch(() => 'gone'));
    await sleep(20);
    const text = await within(readFile(new URL(import.meta.url), 'utf8'), 2000, 'fs.readFile while 8 futex waits are pending');
    assert.ok(text.length > 0);
    for (let i = 0; i < 8; i++) seg.notify(i);
    seg.store(0, 1);
    for (let i = 0; i < 8; i++) seg.notify(i);
    assert.equal((await Promise.all(waits)).length, 8);
  });

  for (const path of ['io_uring', 'threads'] as const) {
    it(`one notify ends 200 wait calls of another process at once (${path} path), which then exits`, async () => {
      const n = name();
      using seg = createSharedMemory(n, 4096);
      const env = path === 'threads' ? { ...process.env, IPCKIT_NO_URING: '1' } : process.env;
      const peer = runFixture('shm-peer', ['waitmany', n, '2', '0', '200', '5000'], { env, timeoutMs: 15_000 });
      const lines = jsonLines(peer);
      await lines.next();
      await sleep(50);
      seg.store(2, 1);
      seg.notify(2);
      const { results } = await lines.next(10_000);
      // Woken, or (a waiter thread not yet asleep) saw the new value at once: never a timeout.
      assert.equal((results.ok ?? 0) + (results['not-equal'] ?? 0), 200, JSON.stringify(results));
      const r = await peer.done;
      assert.equal(r.code, 0, `the peer exits once its waits are settled (${r.signal ?? r.code}) ${r.stderr}`);
    });
  }

  it('the thread path takes 256 waits at once; more are ERR_IPCKIT_LIMIT', async () => {
    const n = name();
    using seg = createSharedMemory(n, 4096);
    const peer = runFixture('shm-peer', ['waitmany', n, '2', '0', '300', '5000'], { env: { ...process.env, IPCKIT_NO_URING: '1' }, timeoutMs: 15_000 });
    const lines = jsonLines(peer);
    await lines.next();
    await sleep(50);
    seg.store(2, 1);
    seg.notify(2);
    const { results } = await lines.next(10_000);
    assert.deepEqual({ settled: (results.ok ?? 0) + (results['not-equal'] ?? 0), limit: results.ERR_IPCKIT_LIMIT }, { settled: 256, limit: 44 }, JSON.stringify(results));
    assert.equal((await peer.done).code, 0);
  });

  it('a worker blocked in waitSync without a timeout can still be terminated, as in Atomics.wait', async () => {
    const n = name();
    using seg = createSharedMemory(n, 4096);
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       import(workerData.module).then(({ openSharedMemorySync }) => {
         const seg = openSharedMemorySync(workerData.name);
         parentPort.postMessage('waiting');
         seg.waitSync(0, 0);
       });`,
      { eval: true, workerData: { name: n, module: new URL('../src/mechanisms/shm/shm.js', import.meta.url).href } },
    );
    await within(new Promise((resolve) => worker.once('message', resolve)), 10_000, 'the worker starts waiting');
    await sleep(100);
    const t0 = Date.now();
    const terminated = worker.terminate();
    const stuck = setTimeout(() => {
      seg.store(0, 1); // let a worker that terminate() cannot reach go, so that the test ends
      seg.notify(0);
    }, 3000);
    await terminated;
    clearTimeout(stuck);
    assert.ok(Date.now() - t0 < 1000, `terminate() took ${Date.now() - t0} ms`);
  });

  it('waitSync returns not-equal and timed-out like Atomics.wait', () => {
    const n = name();
    using seg = createSharedMemory(n, 4096);
    seg.store(0, 3);
    assert.equal(seg.waitSync(0, 2), 'not-equal');
    assert.equal(seg.waitSync(0, 3, 20), 'timed-out');
  });
});

describe('memory-mapped files', () => {
  it('creates a file (0600), and its bytes outlive the mapping', () => {
    const path = scratchPath('mapped');
    const m = mapFile(path, { size: 8192 });
    m.write(Buffer.from('persisted'), 100);
    m.sync();
    m.close();
    assert.equal(lstatSync(path).mode & 0o777, 0o600);
    assert.equal(readFileSync(path).subarray(100, 109).toString(), 'persisted');
    using again = mapFile(path);
    assert.equal(again.size, 8192);
    assert.equal(again.read(100, 9).toString(), 'persisted');
    assert.ok(again.buffer instanceof SharedArrayBuffer);
  });

  it("grows a smaller file to { size }, refuses create: 'never' on a missing file and 'always' on an existing one", () => {
    const path = scratchPath('grow');
    writeFileSync(path, 'abc', { mode: 0o600 });
    using m = mapFile(path, { size: 4096 });
    assert.equal(m.size, 4096);
    assert.equal(m.read(0, 3).toString(), 'abc');
    throwsWith(() => mapFile(scratchPath('missing'), { create: 'never' }), 'ERR_IPCKIT_NOT_FOUND');
    throwsWith(() => mapFile(path, { create: 'always', size: 10 }), 'ERR_IPCKIT_EXISTS');
    throwsWith(() => mapFile(scratchPath('nosize')), 'ERR_IPCKIT_INVALID_ARGUMENT');
  });

  it('refuses a symlink, and a file wider than allowed', () => {
    const target = scratchPath('target');
    writeFileSync(target, 'x'.repeat(64), { mode: 0o600 });
    const link = scratchPath('link');
    symlinkSync(target, link);
    throwsWith(() => mapFile(link), 'ERR_IPCKIT_PERMISSION');
    const wide = scratchPath('wide');
    writeFileSync(wide, 'x'.repeat(64), { mode: 0o644 });
    throwsWith(() => mapFile(wide), 'ERR_IPCKIT_PERMISSION');
    mapFile(wide, { mode: 0o644 }).close();
  });
});
