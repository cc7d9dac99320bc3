/**
 * examples/tickets: eight buyers sell the tickets of one JSON file under a lock while some
 * are killed with SIGKILL at random moments; no ticket is sold twice, none is lost, and the
 * file is whole after every kill (a killed holder's lock is released by the kernel, or
 * reported by the robust mutex).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createMutex, unlinkMutex } from '../../src/index.js';
import { repoRoot, run, scratchDir, sleep, type Run } from '../helpers.js';

const buyer = join(repoRoot, 'dist', 'examples', 'tickets', 'buyer.js');
const TICKETS = 400;

interface Office {
  total: number;
  left: number;
  sales: Array<{ ticket: number; buyer: number }>;
}

async function sell(how: 'file' | 'mutex'): Promise<void> {
  const file = join(scratchDir(), `office-${how}.json`);
  writeFileSync(file, JSON.stringify({ total: TICKETS, left: TICKETS, sales: [] }));
  const mutexName = `/${file.replace(/[^\w.-]/g, '_')}`;
  if (how === 'mutex') await createMutex(mutexName).close();
  try {
    const start = (): Run => run(process.execPath, [buyer, file, how], { timeoutMs: 60_000 });
    const buyers = Array.from({ length: 8 }, start);
    // Kill three of them at random moments while the sale goes on; each time the file must be whole.
    let kills = 0;
    for (const victim of [1, 4, 6]) {
      await sleep(30 + Math.floor(Math.random() * 120));
      buyers[victim]!.child.kill('SIGKILL');
      kills++;
      const now = JSON.parse(readFileSync(file, 'utf8')) as Office;
      assert.equal(now.sales.length + now.left, TICKETS, 'whole after a kill');
    }
    const ends = await Promise.all(buyers.map((b) => b.done));
    assert.equal(ends.filter((e) => e.signal === 'SIGKILL').length + ends.filter((e) => e.code === 0).length, 8);
    // If every survivor finished before a kill landed, a fresh buyer sells what is left.
    const last = await start().done;
    assert.equal(last.code, 0, last.stderr);
    const office = JSON.parse(readFileSync(file, 'utf8')) as Office;
    assert.equal(office.left, 0);
    assert.equal(office.sales.length, TICKETS, 'none lost');
    const tickets = office.sales.map((s) => s.ticket).sort((a, b) => a - b);
    assert.deepEqual(tickets, Array.from({ length: TICKETS }, (_, i) => i + 1), 'each ticket once');
    assert.equal(kills, 3);
  } finally {
    if (how === 'mutex') unlinkMutex(mutexName);
  }
}

describe('examples/tickets', () => {
  it('under a FileLock: 8 buyers, 3 killed at random, every ticket sold exactly once', () => sell('file'));
  it('under the robust mutex: the same', () => sell('mutex'));
});
