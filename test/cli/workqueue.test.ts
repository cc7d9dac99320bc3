/**
 * `ipckit workqueue` on a shared-memory queue and `ipckit pool`, from the shell, and kind
 * safety: a command of one kind refuses an object of another and never removes it.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { createRing, createWorkQueue, openWorkQueue, unlinkBoundedPool, unlinkRing, unlinkWorkQueue } from '../../src/index.js';
import { runCli, uniqueName, within } from '../helpers.js';

const shmFile = (n: string): string => `/dev/shm${n}`;

describe('ipckit workqueue (shared memory)', () => {
  it('create, put from arguments and stdin, info, take --count and --drain, rm', async () => {
    const q = uniqueName('cliwq');
    after(() => unlinkWorkQueue(q));
    const c = await runCli(['workqueue', 'create', q, '--capacity-jobs', '8', '--max-message', '1K']).done;
    assert.equal(c.code, 0, c.stderr);
    const put = await runCli(['wq', 'put', q, 'a', 'b', '--json']).done;
    const ids = put.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { id: number }).id);
    assert.equal(new Set(ids.filter((id) => Number.isSafeInteger(id))).size, 2, `two distinct job ids: ${put.stdout}`);
    assert.equal((await runCli(['wq', 'put', q], { input: 'c\nd\n' }).done).code, 0);
    const info = await runCli(['wq', 'info', q, '--json']).done;
    assert.equal(info.code, 0, info.stderr);
    assert.deepEqual(JSON.parse(info.stdout), { queue: q, ...JSON.parse(info.stdout), ready: 4, inFlight: 0, capacity: 8, put: 4, done: 0 });
    const take = await runCli(['wq', 'take', q, '--count', '2', '--timeout', '10000', '--json']).done;
    assert.equal(take.code, 0, take.stderr);
    assert.deepEqual(take.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { data: string }).data), ['a', 'b']);
    const drain = await runCli(['wq', 'take', q, '--drain']).done;
    assert.equal(drain.code, 0, drain.stderr);
    assert.equal(drain.stdout, 'c\nd\n');
    const empty = await runCli(['wq', 'take', q, '--count', '1', '--timeout', '300', '--quiet']).done;
    assert.equal(empty.code, 124);
    const after4 = JSON.parse((await runCli(['wq', 'info', q, '--json']).done).stdout) as { done: number; ready: number };
    assert.deepEqual([after4.ready, after4.done], [0, 4], 'every job printed was acknowledged');
    assert.equal((await runCli(['wq', 'rm', q]).done).code, 0);
    assert.equal(existsSync(shmFile(q)), false);
  });

  it('a take killed before it acknowledged: the job is delivered again, and info counts it', async () => {
    const q = uniqueName('cliwq');
    after(() => unlinkWorkQueue(q));
    const queue = createWorkQueue(q, { capacityJobs: 4, codec: 'utf8' });
    try {
      await queue.put('only');
      // A consumer that takes the job and never acknowledges it: it is killed holding it.
      const holder = await openWorkQueue(q, { codec: 'utf8' });
      const job = await holder.take({ timeout: 5000 });
      assert.equal(job.data, 'only');
      await holder.close(); // what a dead consumer's row recovery does: the job goes back
      const again = await runCli(['wq', 'take', q, '--count', '1', '--timeout', '10000', '--json']).done;
      assert.equal(again.code, 0, again.stderr);
      const got = JSON.parse(again.stdout) as { data: string; deliveries: number };
      assert.equal(got.data, 'only');
      const stats = await queue.stats();
      assert.equal(stats.redelivered, 1);
    } finally {
      await queue.close();
    }
  });

  it('a QUEUE that is neither a shared-memory name nor a nats:// address is a usage error', async () => {
    const r = await runCli(['workqueue', 'put', 'jobs', 'x']).done;
    assert.equal(r.code, 2);
    assert.match(r.stderr, /shared-memory name like \/jobs or a nats:\/\/ address/);
  });
});

describe('ipckit pool', () => {
  it('create, run (at most N commands at once), info, rm', async () => {
    const p = uniqueName('clipool');
    after(() => unlinkBoundedPool(p));
    assert.equal((await runCli(['pool', 'create', p, '--permits', '1']).done).code, 0);
    // Two runs of a command that records when it is inside: with one permit they never overlap.
    const script = 'echo in; sleep 0.3; echo out';
    const [a, b] = await within(Promise.all([runCli(['pool', 'run', p, '--quiet', '--', 'sh', '-c', script]).done, runCli(['pool', 'run', p, '--quiet', '--', 'sh', '-c', script]).done]), 20_000);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const info = await runCli(['pool', 'info', p, '--json']).done;
    assert.equal(info.code, 0, info.stderr);
    const parsed = JSON.parse(info.stdout) as { permits: number; available: number; holders: unknown[] };
    assert.deepEqual([parsed.permits, parsed.available, parsed.holders.length], [1, 1, 0]);
    const exit = await runCli(['pool', 'run', p, '--', 'sh', '-c', 'exit 7']).done;
    assert.equal(exit.code, 7, 'the command\'s status');
    const missing = await runCli(['pool', 'create', uniqueName('clipool')]).done;
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--permits N is required/);
    assert.equal((await runCli(['pool', 'rm', p]).done).code, 0);
  });
});

describe('kind safety from the shell', () => {
  it('rm of another kind is refused with ERR_IPCKIT_WRONG_KIND and removes nothing', async () => {
    const ring = uniqueName('kindring');
    after(() => unlinkRing(ring));
    createRing(ring, { capacityBytes: 4096 }).close();
    for (const group of ['mutex', 'workqueue', 'pool']) {
      const r = await runCli([group, 'rm', ring]).done;
      assert.equal(r.code, 1, `${group} rm on a ring`);
      assert.match(r.stderr, /ERR_IPCKIT_WRONG_KIND/);
      assert.match(r.stderr, /is a ring/);
      assert.doesNotMatch(r.stderr, /recreate|create it again/i);
      assert.ok(existsSync(shmFile(ring)), `${group} rm left the ring alone`);
    }
  });

  it('info of another kind says what the object is, never that it is corrupt', async () => {
    const q = uniqueName('kindwq');
    after(() => unlinkWorkQueue(q));
    await createWorkQueue(q, { capacityJobs: 2 }).close();
    for (const group of ['ring', 'mutex', 'pool']) {
      const r = await runCli([group, 'info', q]).done;
      assert.equal(r.code, 1, `${group} info on a work queue`);
      assert.match(r.stderr, /ERR_IPCKIT_WRONG_KIND/);
      assert.match(r.stderr, /is a work queue/);
      assert.doesNotMatch(r.stderr, /ERR_IPCKIT_CORRUPT|recreate|create it again/i);
    }
  });
});
