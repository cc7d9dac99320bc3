/**
 * The process pool under fire: workers killed with SIGKILL at random moments during
 * 10,000 small jobs. Every result must be correct and reach its caller once; the pool's
 * counts must say so. (Its own file: on a loaded machine it takes tens of seconds.)
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, it } from 'node:test';
import { createProcessPool, type ProcessPool } from '../../src/mechanisms/process-pool/pool.js';
import { sleep, uniqueName } from '../helpers.js';

const tasks = new URL('../fixtures/pool-tasks.js', import.meta.url);
const pools: ProcessPool[] = [];
after(async () => {
  for (const p of pools) await p.terminate();
});

async function pool(options: { size: number; maxAttempts: number }): Promise<ProcessPool> {
  const p = await createProcessPool(tasks, { name: uniqueName('pool'), ...options });
  pools.push(p);
  return p;
}

/** What the pool's name still has in /dev/shm (segments and its folder). */
function leftovers(p: ProcessPool): string[] {
  return readdirSync('/dev/shm').filter((f) => f.startsWith(p.name.slice(1)));
}

it('workers SIGKILLed at random during 10,000 jobs: every result correct, each counted once', async () => {
  const p = await pool({ size: 3, maxAttempts: 50 });
  const N = 10_000;
  let killing = true;
  let kills = 0;
  // A worker is killed every 150-450 ms, among those up for 500 ms at least, 40 kills at
  // most: a new worker takes 0.1-1 s to start on a loaded machine, and killing them while
  // they start would stall the run, not test it.
  const firstSeen = new Map<number, number>();
  const killer = (async () => {
    while (killing && kills < 40) {
      await sleep(150 + Math.random() * 300);
      for (const pid of p.pids) if (!firstSeen.has(pid)) firstSeen.set(pid, Date.now());
      const pids = p.pids.filter((pid) => Date.now() - firstSeen.get(pid)! >= 500);
      const victim = pids[Math.floor(Math.random() * pids.length)];
      if (killing && victim !== undefined) {
        try {
          process.kill(victim, 'SIGKILL');
          kills++;
        } catch {
          /* already gone */
        }
      }
    }
  })();
  const seen = new Array<number>(N).fill(0);
  const started = Date.now();
  let i = 0;
  try {
    for await (const r of p.map<number>('later', (function* () {
      for (let k = 0; k < N; k++) yield k;
    })(), { concurrency: 64 })) {
      assert.equal(r, i + 1, `result ${i}`);
      seen[i]!++;
      i++;
    }
  } finally {
    killing = false;
    await killer;
  }
  assert.equal(i, N);
  console.log(`# ${N} jobs, ${kills} workers killed, in ${Date.now() - started} ms; ${JSON.stringify(p.stats())}`);
  assert.ok(seen.every((c) => c === 1));
  await p.join({ timeout: 60_000 });
  const s = p.stats();
  assert.equal(s.done, N, 'each job counted once');
  assert.equal(s.failed, 0);
  assert.ok(kills > 3, `killed ${kills} workers`);
  assert.ok(s.workersRestarted >= kills - 1, `restarted ${s.workersRestarted} for ${kills} kills`);
  assert.ok(s.retried > 0, 'some jobs were delivered again');
  await p.close();
  assert.deepEqual(leftovers(p), []);
});
