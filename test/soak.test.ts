/**
 * The soak (scripts/soak.ts) for 20 seconds: every mechanism at once in separate processes,
 * senders killed and peers stopped at random. Nothing sent may be lost, corrupted or
 * duplicated (the work queue: only jobs whose consumer died come twice), and nothing may
 * be left behind: objects, descriptors, threads.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { repoRoot, run, scratchPath, within } from './helpers.js';

interface Report {
  mechanisms: Array<{ name: string; sent: number; received: number; lost: number; duplicated: number; corrupted: number; kills: number; errors: Record<string, number> }>;
  leaks: { objects: number; fds: number; threads: number; rssGrowthMB: number };
  seconds: number;
  seed: number;
}

it('a 20-second soak: nothing lost, corrupted or duplicated, nothing left behind', { timeout: 240_000 }, async () => {
  const out = scratchPath('soak.json');
  const r = run(process.execPath, [join(repoRoot, 'dist/scripts/soak.js'), '--minutes', String(20 / 60), '--out', out, '--seed', '15'], { timeoutMs: 200_000 });
  const done = await within(r.done, 220_000, 'the soak');
  try {
    const report = JSON.parse(readFileSync(out, 'utf8')) as Report;
    console.log(done.stderr.split('\n').slice(-13).join('\n'));
    assert.deepEqual(Object.keys(report).slice(0, 4), ['mechanisms', 'leaks', 'seconds', 'seed']);
    assert.deepEqual(report.mechanisms.map((m) => m.name), ['pipe', 'fifo', 'socket', 'seqpacket', 'mqueue', 'sysv', 'ring', 'workqueue', 'nats', 'signal', 'semaphore', 'mutex', 'lock']);
    for (const m of report.mechanisms) {
      assert.ok(m.sent > 0, `${m.name} carried messages`);
      assert.equal(m.lost, 0, `${m.name}: nothing lost`);
      assert.equal(m.corrupted, 0, `${m.name}: nothing corrupted`);
      assert.equal(m.duplicated, 0, `${m.name}: nothing duplicated`);
    }
    assert.ok(report.mechanisms.reduce((n, m) => n + m.kills, 0) > 0, 'peers were killed');
    assert.equal(report.leaks.objects, 0, 'no object left');
    assert.equal(report.leaks.fds, 0, 'no descriptor leaked by a receiver');
    assert.equal(report.leaks.threads, 0, 'no thread leaked by a receiver');
    assert.equal(done.code, 0, done.stderr.slice(-2000));
    for (const d of ['/dev/shm', '/dev/mqueue']) {
      try {
        assert.deepEqual(readdirSync(d).filter((n) => n.includes(`ipckit-soak-${r.child.pid}-`)), [], `nothing left in ${d}`);
      } catch (e) {
        if ((e as { code?: string }).code !== 'ENOENT') throw e;
      }
    }
  } finally {
    rmSync(out, { force: true });
  }
});
