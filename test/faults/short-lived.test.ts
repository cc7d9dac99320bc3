/**
 * Many short-lived endpoints, opened, used and closed by code that never lets the event
 * loop turn (an async loop whose every await is already settled). Nothing of a closed
 * endpoint may stay reachable until the loop turns: a writer's scheduled flush (a
 * setImmediate) once held every closed writer and its batch, so 100,000 pipes grew the
 * heap by 108 MB and RSS by 278 MB (scripts/leak-cycles.ts). Measured in a child with
 * --expose-gc: the heap after a full GC, before and after 20,000 pipes.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { repoRoot, run } from '../helpers.js';

/**
 * Runs `cycleBody` (the body of an async function that opens, uses and closes endpoints;
 * `m` is the package, `message` a 5-byte Buffer) 20,000 times in a child whose event loop
 * never turns, and returns by how much the heap grew across them, after a full GC.
 */
async function heapKeptOver20000(cycleBody: string): Promise<number> {
  const script = `
    import(process.argv[1]).then(async (m) => {
      const message = Buffer.from('hello');
      const cycle = async () => { ${cycleBody} };
      for (let i = 0; i < 500; i++) await cycle(); // warm: code, pools
      gc();
      const before = process.memoryUsage().heapUsed;
      let turns = 0;
      setImmediate(() => turns++);
      for (let i = 0; i < 20000; i++) await cycle();
      gc();
      console.log(JSON.stringify({ growthMB: (process.memoryUsage().heapUsed - before) / 1048576, loopTurned: turns > 0 }));
    });
  `;
  const r = await run(process.execPath, ['--expose-gc', '-e', script, join(repoRoot, 'dist', 'src', 'index.js')], { timeoutMs: 60_000 }).done;
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { growthMB: number; loopTurned: boolean };
  assert.equal(out.loopTurned, false, 'the loop turned: the test no longer tests what it says');
  return out.growthMB;
}

it('20,000 pipes opened and closed without turning the event loop: nothing of them is retained', async () => {
  const growthMB = await heapKeptOver20000(`
    const { reader, writer } = m.createPipe();
    await writer.send(message);
    // tryReceive: a receive() answered without waiting lets the loop turn every
    // millisecond (src/os/turn.ts), and this test needs a loop that never turns.
    const got = reader.tryReceive();
    if (got === undefined || Buffer.compare(Buffer.from(got), message) !== 0) throw new Error('wrong or missing message');
    await writer.close();
    await reader.close();
  `);
  // 20,000 retained writers are about 20 MB; what a full GC cannot free must stay near zero.
  assert.ok(growthMB < 3, `the heap grew by ${growthMB.toFixed(1)} MB over 20,000 closed pipes`);
});

it('shared-memory handles give everything back at close, without the event loop turning: no native handle left, no pages of a closed pool, mutex or work queue still mapped', async () => {
  // Node 20 runs native finalizers only when the loop turns: a native object per mapping
  // kept ~180 bytes per closed handle until then (18 MB per 100,000). And a closed object's
  // SharedArrayBuffer kept its pages mapped until the garbage collector freed it (a loop
  // of pools held 120 MB of them).
  const script = `
    const [index, nativeJs] = process.argv.slice(1);
    Promise.all([import(index), import(nativeJs)]).then(async ([m, { native }]) => {
      const base = '/ipckit-test-short-' + process.pid;
      let name = base;
      const key = 0x5a000000 + (process.pid & 0xffffff);
      const cycles = {
        shm: async () => { const s = m.createSharedMemory(name, 4096); s.write(Buffer.from('hi'), 8); s.close(); m.unlinkSharedMemory(name); },
        semaphore: async () => { const s = m.createSemaphore(name, { value: 1 }); await s.wait({ timeout: 1000 }); await s.close(); m.unlinkSemaphore(name); },
        sysvShm: async () => { const s = m.createSysvSharedMemory(key, 4096, { removeOnClose: true }); s.write(Buffer.from('hi'), 8); s.close(); },
        pool: async () => { const p = m.createBoundedPool(name, { permits: 1 }); (await p.acquire({ timeout: 1000 })).release(); await p.close(); m.unlinkBoundedPool(name); },
        mutex: async () => { const x = m.createMutex(name); await x.lock({ timeout: 1000 }); x.unlock(); await x.close(); m.unlinkMutex(name); },
        workQueue: async () => { const q = m.createWorkQueue(name, { capacityJobs: 4 }); await q.put(Buffer.from('j')); q.ack(await q.take({ timeout: 1000 })); await q.close(); m.unlinkWorkQueue(name); },
      };
      const shmMaps = () => require('fs').readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.includes('/dev/shm' + name + ' ')).length;
      let turns = 0;
      setImmediate(() => turns++);
      const out = { loopTurned: false };
      for (const [kind, cycle] of Object.entries(cycles)) {
        name = base + '-' + kind;
        const live = native.mapsLive();
        for (let i = 0; i < (kind === 'shm' || kind === 'semaphore' || kind === 'sysvShm' ? 5000 : 200); i++) await cycle();
        out[kind] = { handlesLeft: native.mapsLive() - live, pagesStillMapped: shmMaps() };
      }
      out.loopTurned = turns > 0;
      console.log(JSON.stringify(out));
    });
  `;
  const r = await run(process.execPath, ['-e', script, join(repoRoot, 'dist', 'src', 'index.js'), join(repoRoot, 'dist', 'src', 'os', 'native.js')], { timeoutMs: 120_000 }).done;
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, { handlesLeft: number; pagesStillMapped: number }> & { loopTurned: boolean };
  assert.equal(out.loopTurned, false, 'the loop turned: the test no longer tests what it says');
  for (const kind of ['shm', 'semaphore', 'sysvShm', 'pool', 'mutex', 'workQueue']) {
    assert.equal(out[kind]!.handlesLeft, 0, `${kind}: native mapping handles left after close`);
  }
  // The user's own segments keep their pages while a buffer of theirs may be alive (shm.md):
  // only the objects that never hand their buffer out give them back at close.
  for (const kind of ['pool', 'mutex', 'workQueue']) {
    assert.equal(out[kind]!.pagesStillMapped, 0, `${kind}: closed objects' pages still mapped (${out[kind]!.pagesStillMapped} mappings)`);
  }
});

it("a pool's and a semaphore's permits share one hidden class (V8 keeps a class per object in old space)", async () => {
  // A permit made as an object literal with its own getter over a closure had a hidden
  // class of its own: 100,000 pools that each took a permit grew the heap by 30 MB and RSS
  // by 20 MB more than pools that took none. %HaveSameMap asks V8 directly.
  const script = `
    import(process.argv[1]).then(async (m) => {
      const name = '/ipckit-test-permit-' + process.pid;
      const pool = m.createBoundedPool(name, { permits: 2 });
      const a = pool.tryAcquire(), b = pool.tryAcquire();
      const sem = m.createSemaphore(name, { value: 2 });
      const c = await sem.acquire({ timeout: 1000 }), d = await sem.acquire({ timeout: 1000 });
      console.log(JSON.stringify({ pool: %HaveSameMap(a, b), semaphore: %HaveSameMap(c, d), released: [a.release(), a.release(), a.released] }));
      b.release(); c.release(); d.release();
      await pool.close(); m.unlinkBoundedPool(name);
      await sem.close(); m.unlinkSemaphore(name);
    });
  `;
  const r = await run(process.execPath, ['--allow-natives-syntax', '-e', script, join(repoRoot, 'dist', 'src', 'index.js')], { timeoutMs: 30_000 }).done;
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { pool: true, semaphore: true, released: [true, false, true] });
});

it('pipes closed before the event loop turns put nothing in a FinalizationRegistry; pipes still open when it turns are registered', async () => {
  // Each registration costs a WeakCell that V8 allocates in its old space, garbage that only
  // a full collection frees: 100,000 pipes opened and closed without yielding grew RSS by
  // 15-23 MB with a registration per end, 2-4 MB without (scripts/leak-cycles.ts).
  // register() is counted by wrapping it before ipckit loads.
  const script = `
    let registered = 0;
    const register = FinalizationRegistry.prototype.register;
    FinalizationRegistry.prototype.register = function (...args) { registered++; return register.apply(this, args); };
    import(process.argv[1]).then(async ({ createPipe }) => {
      const message = Buffer.from('hello');
      let turns = 0;
      setImmediate(() => turns++);
      for (let i = 0; i < 1000; i++) {
        const { reader, writer } = createPipe();
        await writer.send(message);
        if (reader.tryReceive() === undefined) throw new Error('missing message');
        await writer.close();
        await reader.close();
      }
      const closedBeforeTurn = { registered, loopTurned: turns > 0 };
      const kept = createPipe(); // still open when the loop turns: its two ends are registered
      await new Promise((r) => setTimeout(r, 10));
      const keptAfterTurn = registered - closedBeforeTurn.registered;
      await kept.writer.close();
      await kept.reader.close();
      console.log(JSON.stringify({ closedBeforeTurn, keptAfterTurn }));
    });
  `;
  const r = await run(process.execPath, ['-e', script, join(repoRoot, 'dist', 'src', 'index.js')], { timeoutMs: 30_000 }).done;
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { closedBeforeTurn: { registered: 0, loopTurned: false }, keptAfterTurn: 2 });
});

it('20,000 socket pairs opened and closed without turning the event loop: nothing of them is retained', async () => {
  // A packet writer's end-of-turn flush (a setImmediate and its entry in the thread's list
  // of batches) outlived a successful close(): every closed pair stayed reachable until the
  // loop turned (37 MB of heap after a full GC over 20,000 pairs).
  const growthMB = await heapKeptOver20000(`
    const [a, b] = m.socketPair('unix-dgram');
    await a.send(message);
    await a.flush();
    const got = b.tryReceive(); // as in the pipe test: receive() may let the loop turn
    if (got === undefined || Buffer.compare(Buffer.from(got), message) !== 0) throw new Error('wrong or missing message');
    await a.close();
    await b.close();
  `);
  assert.ok(growthMB < 3, `the heap grew by ${growthMB.toFixed(1)} MB over 20,000 closed socket pairs`);
});

/**
 * V8's old space per cycle: what `cycleBody` (as in heapKeptOver20000) puts there, garbage
 * included, which only a full collection frees. Sampled every 50 cycles over 20,000 after a
 * warm-up, summing the rises (a collection's fall is not counted). Allocation-site
 * pretenuring is off in the child: V8 turns it on for a literal by chance (when a full
 * collection finds most of its recent objects alive), which would make the figure random.
 */
async function oldSpaceBytesPerCycle(cycleBody: string, nodeFlags: string[] = []): Promise<number> {
  const script = `
    const v8 = require('node:v8');
    const old = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_used_size;
    import(process.argv[1]).then(async (m) => {
      const message = Buffer.from('hello');
      const cycle = async () => { ${cycleBody} };
      for (let i = 0; i < 5000; i++) await cycle(); // warm: code, pools, feedback
      let prev = old(), inflow = 0;
      for (let i = 0; i < 20000; i++) {
        await cycle();
        if (i % 50 === 0) { const o = old(); if (o > prev) inflow += o - prev; prev = o; }
      }
      console.log(JSON.stringify({ bytesPerCycle: inflow / 20000 }));
    });
  `;
  const r = await run(process.execPath, ['--no-allocation-site-pretenuring', ...nodeFlags, '-e', script, join(repoRoot, 'dist', 'src', 'index.js')], { timeoutMs: 60_000 }).done;
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { bytesPerCycle: number }).bytesPerCycle;
}

it('socket pairs that receive with a timeout put nothing in V8\'s old space per cycle', async () => {
  // Two causes, each measured with this loop (scripts/leak-cycles.ts: +13 to +28 MB RSS over
  // 100,000 datagram pairs, now -0.1 to 0.4): the thread's set of writers with a batch
  // waiting (src/os/turn.ts) was a Set, which V8 reallocates in its old space as it grows
  // and shrinks (120 bytes a cycle); and a wait's cleanup was a closure made per wait, which
  // made each waited-on channel outlive young-generation collections (31-35 bytes a cycle
  // promoted). Before both: 140-143 bytes a cycle; after: 0-5. spinMicros is set because
  // the closure showed only on that path (a receive that spins, and once a millisecond
  // waits with its timer), which a one-CPU machine does not take by default.
  const bytes = await oldSpaceBytesPerCycle(`
    const [a, b] = m.socketPair('unix-dgram', { spinMicros: 20 });
    await a.send(message);
    const got = await b.receive({ timeout: 10000 });
    if (Buffer.compare(Buffer.from(got), message) !== 0) throw new Error('wrong message');
    await a.close();
    await b.close();
  `);
  assert.ok(bytes < 15, `${bytes.toFixed(1)} bytes of V8's old space per cycle`);
});

it("endpoints made and closed by code V8 has not optimized yet put nothing in V8's old space per cycle", async () => {
  // Every endpoint's constructor gave its wait queue a closure afterwards
  // (\`this.#waiters.onCancel = () => ...\`). Run by V8's interpreter, that kept each
  // endpoint's objects through young-generation collections (5-7 MB of 8-16 surviving each
  // one, nearly all promoted, --trace-gc-nvp), and from that V8 decided, in half the runs,
  // to make some of their objects in the old space from then on (allocation-site
  // pretenuring: 8 of 16 runs of datagram pairs, 0 of 16 after): RSS +8 to +23 MB over
  // 100,000 datagram pairs or POSIX queues in those runs. The closure is now given to the
  // queue's constructor. --no-opt keeps the code unoptimized for the whole run.
  const pair = await oldSpaceBytesPerCycle(`
    const [a, b] = m.socketPair('unix-dgram');
    await a.close();
    await b.close();
  `, ['--no-opt']);
  assert.ok(pair < 15, `socket pairs: ${pair.toFixed(1)} bytes of V8's old space per cycle`);
  const pipe = await oldSpaceBytesPerCycle(`
    const { reader, writer } = m.createPipe();
    await writer.close();
    await reader.close();
  `, ['--no-opt']);
  assert.ok(pipe < 15, `pipes: ${pipe.toFixed(1)} bytes of V8's old space per cycle`);
});

it('making and closing System V and POSIX message queues reads /proc without a 64 KiB buffer per file', async () => {
  // readFileSync gives a /proc file (size 0) a fresh 64 KiB buffer; a System V queue's
  // create read ten sysctls twice each, and its RSS grew 25 MB over 100,000 queues.
  const script = `
    const fs = require('node:fs');
    const { syncBuiltinESMExports } = require('node:module');
    let procReads = 0;
    const readFileSync = fs.readFileSync;
    fs.readFileSync = function (path, ...rest) { if (String(path).startsWith('/proc/')) procReads++; return readFileSync.call(this, path, ...rest); };
    syncBuiltinESMExports();
    import(process.argv[1]).then(async (m) => {
      procReads = 0; // what loading the package read once (our own start time)
      const key = 0x5c000000 + (process.pid & 0xffffff);
      const name = '/ipckit-test-procreads-' + process.pid;
      for (let i = 0; i < 100; i++) {
        const q = m.createSysvMessageQueue(key, { removeOnClose: true });
        await q.send(Buffer.from('x'));
        await q.receive({ timeout: 1000 });
        await q.close();
        const p = m.createMessageQueue(name, { unlinkOnClose: true });
        await p.close();
      }
      console.log(JSON.stringify({ procReads }));
    });
  `;
  const r = await run(process.execPath, ['-e', script, join(repoRoot, 'dist', 'src', 'index.js')], { timeoutMs: 30_000 }).done;
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { procReads: 0 });
});
