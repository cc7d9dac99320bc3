/**
 * Counted soak: a million self-checking messages through a ring between processes, with
 * sizes that make it wrap and pad all the time. Counted: 0 lost, 0 duplicated, 0 torn
 * (and the same with four producer processes on a many-producer ring).
 */
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { createRing, unlinkRing } from '../../src/mechanisms/ring/ring.js';
import { checkMessage } from '../fixtures/checked-message.js';
import { checkFdLeaks, runFixture, uniqueName, within } from '../helpers.js';

const rings: string[] = [];
after(() => {
  for (const n of rings) unlinkRing(n);
});
checkFdLeaks();

async function soak(producers: number, perProducer: number, options: { producers: 'one' | 'many'; capacity: number }): Promise<void> {
  const n = uniqueName('soak');
  rings.push(n);
  using ring = createRing(n, { ...options, maxMessageSize: 4096 });
  const rx = await ring.receiver();
  const started = Date.now();
  const procs = Array.from({ length: producers }, (_, i) => runFixture('ring-peer', ['produce', n, String(i + 1), String(perProducer), '300'], { timeoutMs: 110_000 }));
  const next = new Map<number, number>();
  let total = 0;
  let lost = 0;
  let duplicated = 0;
  let torn = 0;
  try {
    while (total < producers * perProducer) {
      const batch = await within(rx.receiveMany(4096, { timeout: 20_000 }), 25_000, 'a batch');
      for (const m of batch) {
        let id: { producer: number; seq: number };
        try {
          id = checkMessage(m);
        } catch {
          torn++;
          continue;
        }
        const expected = next.get(id.producer) ?? 0;
        if (id.seq < expected) duplicated++;
        else if (id.seq > expected) lost += id.seq - expected;
        next.set(id.producer, Math.max(expected, id.seq + 1));
        total++;
      }
    }
    for (const p of procs) assert.equal((await p.done).code, 0);
    const end = await rx.receive({ timeout: 10_000 }).then(() => 'more messages', (e: { code?: string }) => e.code);
    assert.equal(end, 'ERR_IPCKIT_CLOSED');
  } finally {
    await rx.close();
  }
  const seconds = (Date.now() - started) / 1000;
  console.log(`soak, ${producers} producer(s): ${total} messages in ${seconds.toFixed(1)} s: ${lost} lost, ${duplicated} duplicated, ${torn} torn`);
  assert.deepEqual({ lost, duplicated, torn }, { lost: 0, duplicated: 0, torn: 0 });
  for (let p = 1; p <= producers; p++) assert.equal(next.get(p), perProducer);
}

it('one producer, 1,000,000 messages: 0 lost, 0 duplicated, 0 torn', { timeout: 115_000 }, async () => {
  await soak(1, 1_000_000, { producers: 'one', capacity: 64 * 1024 });
});

it('four producers on a many-producer ring, 4 x 250,000 messages: 0 lost, 0 duplicated, 0 torn', { timeout: 115_000 }, async () => {
  await soak(4, 250_000, { producers: 'many', capacity: 64 * 1024 });
});
