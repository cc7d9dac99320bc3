/**
 * The process pool: real worker processes over a real work queue and ring. Workers are
 * killed with SIGKILL at random during 10,000 jobs, jobs throw, never end, die every
 * time; close() drains, terminate() does not; every kernel object is gone afterwards.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createProcessPool, type ProcessPool, type ProcessPoolOptions } from '../src/mechanisms/process-pool/pool.js';
import { unlinkRing } from '../src/mechanisms/ring/ring.js';
import { unlinkSharedMemory } from '../src/mechanisms/shm/shm.js';
import { createWorkQueue, unlinkWorkQueue } from '../src/mechanisms/workqueue/workqueue.js';
import { jsonLines, processGone, rejectsWith, repoRoot, run, runFixture, sleep, throwsWith, uniqueName, waitUntil, within, zombieChildren } from './helpers.js';

const tasks = new URL('./fixtures/pool-tasks.js', import.meta.url);
const pools: ProcessPool[] = [];
const names: string[] = [];
after(async () => {
  for (const p of pools) await p.terminate();
  for (const n of names) {
    for (const remove of [() => unlinkWorkQueue(`${n}-jobs`), () => unlinkRing(`${n}-results`), () => unlinkSharedMemory(`${n}-tickets`)]) {
      try {
        remove();
      } catch {
        /* gone */
      }
    }
    rmSync(`/dev/shm${n}.files`, { recursive: true, force: true });
  }
});

async function pool(options: ProcessPoolOptions = {}): Promise<ProcessPool> {
  const name = uniqueName('pool');
  names.push(name);
  const p = await createProcessPool(tasks, { size: 2, name, ...options });
  pools.push(p);
  return p;
}

/** What the pool's name still has in /dev/shm (segments and its folder). */
function leftovers(p: ProcessPool): string[] {
  return readdirSync('/dev/shm').filter((f) => f.startsWith(p.name.slice(1)));
}

describe('process pool: jobs', () => {
  it('runs an exported function in a worker process and maps over items in order', async () => {
    const p = await pool();
    assert.deepEqual(p.functions.sort(), ['bytes', 'die', 'echo', 'fail', 'isBuffer', 'later', 'pidAfter', 'sum', 'spin', 'square'].sort());
    assert.equal(await p.run('square', 7), 49);
    const pid = await p.run<number>('pidAfter', 0);
    assert.notEqual(pid, process.pid);
    assert.ok(p.pids.includes(pid));
    const out: number[] = [];
    for await (const r of p.map<number>('later', Array.from({ length: 500 }, (_, i) => i), { concurrency: 16 })) out.push(r);
    assert.deepEqual(out, Array.from({ length: 500 }, (_, i) => i + 1));
    await p.close();
    assert.deepEqual(leftovers(p), []);
  });

  it('map over an endless iterable reads items only as results are taken, and ends at its signal', async () => {
    const p = await pool({ size: 2 });
    let pulled = 0;
    function* endless(): Generator<number> {
      for (;;) yield pulled++;
    }
    const ac = new AbortController();
    let got = 0;
    const e = await (async () => {
      for await (const r of p.map<number>('square', endless(), { concurrency: 8, signal: ac.signal })) {
        assert.equal(r, got * got);
        if (++got === 200) ac.abort();
        assert.ok(pulled <= got + 8, `pulled ${pulled} items for ${got} results`);
      }
    })().then(
      () => assert.fail('the map ended without its signal'),
      (x: unknown) => x as Error & { code?: string },
    );
    assert.equal(e.code, 'ERR_IPCKIT_ABORTED');
    assert.ok(pulled <= 200 + 8, `pulled ${pulled}`);
    let early = 0;
    for await (const r of p.map<number>('square', endless(), { concurrency: 4 })) {
      assert.equal(typeof r, 'number');
      if (++early === 10) break; // leaving early drops the rest
    }
    await p.join({ timeout: 30_000 });
    assert.equal(p.stats().queued, 0);
    await p.close();
  });

  it('a job that throws rejects with the worker error (name, message, stack, code) and the worker lives on', async () => {
    const p = await pool({ size: 1 });
    const [pid] = p.pids;
    const e = (await p.run('fail', 'no luck').then(
      () => assert.fail('resolved'),
      (x: unknown) => x,
    )) as Error & { code?: string };
    assert.equal(e.name, 'RangeError');
    assert.equal(e.message, 'no luck');
    assert.equal(e.code, 'E_TASK');
    assert.match(e.stack!, /at fail \(.*pool-tasks\.js/);
    assert.equal(await p.run('square', 3), 9);
    assert.deepEqual(p.pids, [pid]);
    assert.equal(p.stats().workersRestarted, 0);
    assert.equal(p.stats().failed, 1);
    await p.close();
  });

  it('a job that never ends is stopped by its timeout: its worker is killed and replaced', async () => {
    const p = await pool({ size: 1 });
    const [pid] = p.pids;
    const e = await rejectsWith(p.run('spin', 0, { timeout: 300 }), 'ERR_IPCKIT_TIMEOUT');
    assert.match(e.message, /killed and replaced/);
    assert.ok(await waitUntil(() => processGone(pid!), 10_000), 'the spinning worker is gone');
    assert.equal(await within(p.run('square', 5), 30_000, 'a job on the replacement'), 25);
    assert.notDeepEqual(p.pids, [pid]);
    assert.equal(p.stats().workersRestarted, 1);
    await p.close();
  });

  it('an AbortSignal drops a waiting job and kills the worker of a running one', async () => {
    const p = await pool({ size: 1 });
    const [pid] = p.pids;
    const running = new AbortController();
    const spinning = p.run('spin', 0, { signal: running.signal });
    const waiting = new AbortController();
    const queued = p.run('square', 2, { signal: waiting.signal });
    waiting.abort();
    await rejectsWith(queued, 'ERR_IPCKIT_ABORTED');
    await sleep(200); // let it start
    running.abort();
    await rejectsWith(spinning, 'ERR_IPCKIT_ABORTED');
    assert.ok(await waitUntil(() => processGone(pid!), 10_000));
    assert.equal(await within(p.run('square', 6), 30_000, 'a job after the abort'), 36);
    await p.close();
  });

  it('a job whose worker dies every time rejects after maxAttempts with ERR_IPCKIT_PEER_GONE', async () => {
    const p = await pool({ size: 2, maxAttempts: 2 });
    const e = await within(rejectsWith(p.run('die', 0), 'ERR_IPCKIT_PEER_GONE'), 60_000, 'the job to be given up');
    assert.match(e.message, /2 attempts/);
    assert.deepEqual(e.details, { attempts: 2, maxAttempts: 2 });
    assert.equal(p.stats().workersRestarted, 2);
    assert.equal(await p.run('square', 4), 16);
    await p.close();
  });

  it('big buffers go both ways (a file past the queue slot or the ring), as Buffers', async () => {
    const p = await pool({ size: 1 });
    const big = await p.run<Buffer>('bytes', { n: 6 << 20, seed: 5 }); // above the ring's 4 MiB
    assert.ok(Buffer.isBuffer(big));
    assert.equal(big.length, 6 << 20);
    assert.equal(big[0], 5);
    assert.equal(big[(6 << 20) - 1], ((6 << 20) - 1 + 5) & 255);
    const mid = await p.run<Buffer>('bytes', { n: 1 << 20, seed: 1 }); // through the ring
    assert.equal(mid.length, 1 << 20);
    assert.equal(mid[10], 11);
    assert.equal(await p.run('sum', Buffer.alloc(1 << 20, 2)), 2 << 20); // the argument through a file
    assert.equal(await p.run('sum', new Uint8Array([1, 2, 3])), 6);
    await p.close();
    assert.deepEqual(leftovers(p), []);
  });

  it('a result keeps its type and bytes: a Buffer (written raw), an empty one, other typed arrays and Buffers inside objects (serialized)', async () => {
    const p = await pool({ size: 1 });
    const small = await p.run<Buffer>('bytes', { n: 100, seed: 3 });
    assert.ok(Buffer.isBuffer(small));
    assert.deepEqual([...small.subarray(0, 3)], [3, 4, 5]);
    const empty = await p.run<Buffer>('bytes', { n: 0, seed: 0 });
    assert.ok(Buffer.isBuffer(empty) && empty.length === 0);
    const floats = await p.run<Float64Array>('echo', new Float64Array([1.5, -2]));
    assert.ok(floats instanceof Float64Array && !Buffer.isBuffer(floats));
    assert.deepEqual([...floats], [1.5, -2]);
    const plain = await p.run<Uint8Array>('echo', new Uint8Array([9, 8]));
    assert.ok(plain instanceof Uint8Array && !Buffer.isBuffer(plain), 'a Uint8Array stays a Uint8Array');
    const nested = await p.run<{ b: Buffer }>('echo', { b: Buffer.from('hi') });
    assert.ok(Buffer.isBuffer(nested.b));
    assert.equal(nested.b.toString(), 'hi');
    // A Buffer argument arrives as a Buffer.
    assert.equal(await p.run('isBuffer', Buffer.from([1])), true);
    await p.close();
    assert.deepEqual(leftovers(p), []);
  });
});

describe('process pool: results through a worker\'s reused buffer', () => {
  it('results of mixed sizes, sent while the ring is full, arrive whole: none is overwritten by the next', async () => {
    const p = await pool({ size: 1 });
    // 3 MiB results fill the 8 MiB ring while this process does not read it, so the worker's
    // sends wait for room; smaller results follow larger ones in the buffer it reuses, and a
    // 6 MiB one goes through a file.
    const sizes = [3 << 20, 3 << 20, 3 << 20, 3 << 20, 100, 5 << 10, 6 << 20, 1 << 20, 0, 2 << 20, 4097, 3 << 20];
    const results = sizes.map((n, k) => p.run<Buffer>('bytes', { n, seed: k + 1 }));
    await sleep(20); // the jobs are queued and the worker has begun
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300); // no reading meanwhile
    const got = await Promise.all(results);
    got.forEach((b, k) => {
      assert.ok(Buffer.isBuffer(b), `result ${k}`);
      assert.equal(b.length, sizes[k], `result ${k}'s length`);
      let bad = -1;
      for (let i = 0; i < b.length && bad < 0; i++) if (b[i] !== ((i + k + 1) & 255)) bad = i;
      assert.equal(bad, -1, `result ${k} (${sizes[k]} bytes) differs at byte ${bad}`);
    });
    await p.close();
    assert.deepEqual(leftovers(p), []);
  });
});

describe('process pool: memory', () => {
  it("a settled job's result is not kept by the pool: 1 MiB results are collected once the caller drops them", async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const p = await pool();
    try {
      // Before the fix, the pool's list of jobs waiting for the queue kept every passed job
      // (and its promise, and so its result) until 1,024 had passed: up to 1 GiB of results.
      const refs: Array<WeakRef<Buffer>> = [];
      for (let i = 0; i < 40; i++) {
        const results = await Promise.all([0, 1].map((k) => p.run<Buffer>('bytes', { n: 1 << 20, seed: k })));
        for (const r of results) refs.push(new WeakRef(r));
      }
      await sleep(50); // a WeakRef holds its target until the job that made it has ended
      gc();
      await sleep(50);
      gc();
      const alive = refs.filter((r) => r.deref() !== undefined).length;
      assert.ok(alive <= 2, `${alive} of 80 results (1 MiB each) still reachable after gc`);
    } finally {
      await p.close();
    }
  });
});

describe('process pool: crashes', () => {
  it('the workers die with the pool process (SIGKILL), leaving no orphan', async () => {
    const name = uniqueName('pool');
    names.push(name);
    const parent = runFixture('pool-parent', [name], { timeoutMs: 60_000 });
    const lines = jsonLines(parent);
    const { pids } = (await lines.next(40_000)) as { pids: number[] };
    assert.equal(pids.length, 2);
    parent.child.kill('SIGKILL');
    await parent.done;
    assert.ok(await waitUntil(() => pids.every(processGone), 10_000), 'the workers are gone');
    const left = (): string[] => readdirSync('/dev/shm').filter((f) => f.startsWith(name.slice(1)));
    assert.ok(await waitUntil(() => left().length === 0, 10_000), `the janitor removed the pool's objects (left: ${left().join(', ')})`);
  });
});

describe('process pool: the end', () => {
  it('close() with jobs queued drains them, then refuses new ones and removes every object', async () => {
    const p = await pool({ size: 2 });
    const jobs = Array.from({ length: 300 }, (_, i) => p.run<number>('later', i));
    const closing = p.close();
    await rejectsWith(p.run('square', 1), 'ERR_IPCKIT_CLOSED');
    assert.deepEqual(await Promise.all(jobs), Array.from({ length: 300 }, (_, i) => i + 1));
    await closing;
    const pids = p.pids;
    assert.deepEqual(pids, []);
    assert.deepEqual(leftovers(p), []);
    assert.equal(p.stats().done, 300);
  });

  it('terminate() rejects what has not settled, kills the workers and removes every object', async () => {
    const p = await pool({ size: 2 });
    const pids = p.pids;
    const jobs = [p.run('spin', 0), p.run('spin', 0), p.run('square', 3)].map((j) => rejectsWith(j, 'ERR_IPCKIT_CLOSED'));
    await sleep(200);
    await p.terminate();
    await Promise.all(jobs);
    assert.ok(pids.every(processGone));
    assert.deepEqual(zombieChildren().filter((z) => pids.includes(z)), [], 'the workers were reaped');
    assert.deepEqual(leftovers(p), []);
    await rejectsWith(p.run('square', 1), 'ERR_IPCKIT_CLOSED');
  });

  it('join() resolves once every job has settled', async () => {
    const p = await pool({ size: 2 });
    const results: number[] = [];
    for (let i = 0; i < 100; i++) void p.run<number>('later', i).then((r) => results.push(r));
    await p.join({ timeout: 60_000 });
    assert.equal(results.length, 100);
    const s = p.stats();
    assert.equal(s.queued, 0);
    assert.equal(s.running, 0);
    await p.close();
  });
});

describe('process pool: bad input', () => {
  it('a module that does not exist is ERR_IPCKIT_NOT_FOUND, and nothing is made', async () => {
    const name = uniqueName('pool');
    await rejectsWith(createProcessPool(new URL('./fixtures/no-such-tasks.js', import.meta.url), { name }), 'ERR_IPCKIT_NOT_FOUND');
    assert.deepEqual(readdirSync('/dev/shm').filter((f) => f.startsWith(name.slice(1))), []);
  });

  it('a module that throws while loading rejects the pool with its error, and leaves nothing', async () => {
    const name = uniqueName('pool');
    const e = await rejectsWith(createProcessPool(new URL('./fixtures/pool-broken.js', import.meta.url), { name, size: 1 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    assert.match(e.message, /broken on purpose at load/);
    assert.deepEqual(readdirSync('/dev/shm').filter((f) => f.startsWith(name.slice(1))), []);
  });

  it('a name that is taken is ERR_IPCKIT_EXISTS, and the object that holds it stays', async () => {
    const name = uniqueName('pool');
    names.push(name);
    const squatter = createWorkQueue(`${name}-jobs`);
    try {
      await rejectsWith(createProcessPool(tasks, { name, size: 1 }), 'ERR_IPCKIT_EXISTS');
      assert.deepEqual(readdirSync('/dev/shm').filter((f) => f.startsWith(name.slice(1))), [`${name.slice(1)}-jobs`]);
    } finally {
      await squatter.close();
      squatter.unlink();
    }
  });

  it('an unknown function name, and other bad arguments, throw at once', async () => {
    const p = await pool({ size: 1 });
    throwsWith(() => p.run('cube', 2), 'ERR_IPCKIT_INVALID_ARGUMENT');
    assert.throws(() => p.run('cube', 2), /exports no function "cube"; it exports: .*square/);
    throwsWith(() => p.run('notAFunction', 2), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => p.run(5 as unknown as string), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => p.run('square', 2, { timeout: -1 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => p.run('square', 2, { signal: 'x' as unknown as AbortSignal }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => p.map('square', 5 as unknown as number[]), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => p.map('square', [1], { concurrency: 0 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => p.map('cube', [1]), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => p.join({ timeout: -1 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    await rejectsWith(p.run('square', () => 1), 'ERR_IPCKIT_INVALID_ARGUMENT'); // cannot be serialized: that job only
    assert.equal(await p.run('square', 9), 81);
    await p.close();
    throwsWith(() => createProcessPool(5 as unknown as string), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createProcessPool(new URL('https://example.com/x.js')), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createProcessPool(tasks, { size: 0 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createProcessPool(tasks, { maxAttempts: 0 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createProcessPool(tasks, { timeout: -5 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createProcessPool(tasks, { execArgv: '--inspect' as unknown as string[] }), 'ERR_IPCKIT_INVALID_ARGUMENT');
  });
});

describe('process pool: docs/pool.md', () => {
  /** The `// tasks.mjs` and `// main.mjs` parts of each code block that has them. */
  function examples(): Array<{ tasks: string; main: string }> {
    const page = readFileSync(join(repoRoot, 'docs', 'pool.md'), 'utf8');
    return [...page.matchAll(/```(?:js|ts)\n([\s\S]*?)```/g)]
      .map((m) => m[1]!)
      .filter((b) => b.includes('// tasks.mjs') && b.includes('// main.mjs'))
      .map((b) => ({ tasks: b.slice(0, b.indexOf('// main.mjs')), main: b.slice(b.indexOf('// main.mjs')) }));
  }

  it('its snippets run as they are (Node 20, plain JavaScript)', async () => {
    const found = examples();
    assert.equal(found.length, 2, 'the first block and the Example');
    // Inside the package, so that `import ... from 'ipckit'` resolves to it (self-reference).
    const dir = join(repoRoot, 'dist', `pool-doc-example-${process.pid}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    try {
      for (const [i, { tasks, main }] of found.entries()) {
        writeFileSync(join(dir, 'tasks.mjs'), tasks);
        writeFileSync(join(dir, 'main.mjs'), main);
        const r = await run(process.execPath, [join(dir, 'main.mjs')], { timeoutMs: 100_000 }).done;
        assert.equal(r.code, 0, `example ${i + 1}: ${r.stderr}`);
        if (i === 0) assert.match(r.stdout, /^49\n333283335000\n$/);
        else assert.match(r.stdout, /^100 [0-9a-f]{64}\n200 [0-9a-f]{64}\n300 [0-9a-f]{64}\n400 [0-9a-f]{64}\n\{[\s\S]*done: 400,[\s\S]*\}\n$/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
