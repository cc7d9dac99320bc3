/**
 * Senders whose callers do not await their sends: past maxPendingBytes of sends waiting
 * for room, `send` rejects with ERR_IPCKIT_LIMIT instead of holding memory without bound;
 * every send that resolved is delivered once and in order, and no refused one arrives.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessageQueue, createPipe, createRing, createWorkQueue, socketPair, unlinkMessageQueue, unlinkRing, unlinkWorkQueue, type Receiver, type Sender } from '../../src/index.js';
import { checkFdLeaks, uniqueName } from '../helpers.js';

checkFdLeaks();

interface Flood {
  /** Indexes of the sends that resolved, and the first byte of each message received. */
  accepted: number[];
  received: number[];
  refused: unknown[];
}

/**
 * Fires `count` unawaited sends of `size` bytes (message i filled with i) at a receiver that
 * does not read yet, checks that they wait, then drains and settles them all.
 */
async function flood(tx: Sender<Uint8Array>, rx: Receiver<Uint8Array>, count: number, size: number): Promise<Flood> {
  const sends = Array.from({ length: count }, (_, i) => tx.send(new Uint8Array(size).fill(i & 0xff)));
  const settled = Promise.allSettled(sends);
  const early = await Promise.race([settled, new Promise<null>((r) => setTimeout(() => r(null), 50))]);
  assert.equal(early, null, 'sends wait while the receiver does not read');
  const received: number[] = [];
  for (;;) {
    const m = await rx.receive({ timeout: 500 }).catch(() => undefined);
    if (m === undefined) break;
    received.push(m[0]!);
  }
  const outcomes = await settled;
  return {
    accepted: outcomes.map((o, i) => (o.status === 'fulfilled' ? i : -1)).filter((i) => i >= 0),
    received,
    refused: outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason),
  };
}

function check(f: Flood, count: number, minAccepted: number): void {
  assert.ok(f.refused.length > 0, 'some sends were refused');
  for (const e of f.refused) {
    assert.equal((e as { code?: string }).code, 'ERR_IPCKIT_LIMIT', String(e));
    assert.equal((e as { details?: { limit?: string } }).details?.limit, 'maxPendingBytes');
  }
  assert.ok(f.accepted.length >= minAccepted, `at least ${minAccepted} went through (${f.accepted.length})`);
  assert.ok(f.accepted.length < count, 'not every send was held');
  assert.deepEqual(f.received, f.accepted.map((i) => i & 0xff), 'what resolved arrived, in order, once');
}

const MESSAGE = 64 * 1024;
const LIMIT = 1024 * 1024;

describe('maxPendingBytes bounds what unawaited sends hold', () => {
  it('a pipe writer', async () => {
    const { reader, writer } = createPipe({ maxPendingBytes: LIMIT, maxMessageBytes: MESSAGE });
    try {
      check(await flood(writer, reader, 100, MESSAGE), 100, LIMIT / MESSAGE);
    } finally {
      await writer.close().catch(() => {});
      await reader.close();
    }
  });

  for (const kind of ['unix', 'unix-seqpacket'] as const) {
    it(`a ${kind} socket`, async () => {
      const [a, b] = socketPair(kind, { maxPendingBytes: LIMIT, maxMessageBytes: MESSAGE });
      try {
        check(await flood(a, b, 100, MESSAGE), 100, LIMIT / MESSAGE);
      } finally {
        await a.close().catch(() => {});
        await b.close();
      }
    });
  }

  it('a message queue', async () => {
    const name = uniqueName('pending');
    const q = createMessageQueue(name, { maxMessages: 4, maxMessageBytes: 8192, maxPendingBytes: 64 * 1024 });
    try {
      const f = await flood(q, q, 50, 8192);
      check(f, 50, 4 + 8);
      assert.equal(f.accepted.length, 4 + 8, "the queue's 4 messages plus 64 KiB of waiting sends");
    } finally {
      await q.close();
      unlinkMessageQueue(name);
    }
  });

  it('a ring sender (send and sendMany)', async () => {
    const name = uniqueName('pending');
    const ring = createRing(name, { capacityBytes: 64 * 1024, maxMessageBytes: 8192 });
    try {
      const tx = await ring.sender({ maxPendingBytes: 64 * 1024 });
      const rx = await ring.receiver();
      try {
        const f = await flood(tx, rx, 50, 8000);
        // The ring holds at most 8 records of 8000 bytes; 8 more wait (64 KiB); the rest are refused.
        check(f, 50, 8 + 1);
        assert.ok(f.accepted.length <= 8 + 8, `at most what fits plus 64 KiB waited (${f.accepted.length})`);
        // A batch counts what it has left to send when it waits: 4 of 12 here (32 000 bytes).
        const many = tx.sendMany(Array.from({ length: 12 }, () => new Uint8Array(8000).fill(1)));
        const refused = await tx.sendMany(Array.from({ length: 5 }, () => new Uint8Array(8000))).catch((e: unknown) => e);
        assert.equal((refused as { code?: string }).code, 'ERR_IPCKIT_LIMIT');
        assert.equal((refused as { details?: { limit?: string } }).details?.limit, 'maxPendingBytes');
        for (let i = 0; i < 12; i++) assert.equal((await rx.receive({ timeout: 5000 }))[0], 1);
        await many;
        assert.equal(await rx.receive({ timeout: 200 }).catch((e: { code?: string }) => e.code), 'ERR_IPCKIT_TIMEOUT', 'nothing of the refused batch went');
      } finally {
        await tx.close();
        await rx.close();
      }
    } finally {
      ring.close();
      unlinkRing(name);
    }
  });

  it('a work queue producer (put and putMany)', async () => {
    const name = uniqueName('pending');
    const q = createWorkQueue(name, { capacityJobs: 4, maxMessageBytes: 8192, maxPendingBytes: 64 * 1024 });
    try {
      const puts = Array.from({ length: 50 }, (_, i) => q.put(new Uint8Array(8192).fill(i)));
      const settled = Promise.allSettled(puts);
      const early = await Promise.race([settled, new Promise<null>((r) => setTimeout(() => r(null), 50))]);
      assert.equal(early, null, 'puts wait while nobody takes');
      const taken: number[] = [];
      for (;;) {
        const job = await q.take({ timeout: 500 }).catch(() => undefined);
        if (job === undefined) break;
        taken.push((job.data as Uint8Array)[0]!);
        q.ack(job);
      }
      const outcomes = await settled;
      const accepted = outcomes.map((o, i) => (o.status === 'fulfilled' ? i : -1)).filter((i) => i >= 0);
      const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason as { code?: string; details?: { limit?: string } });
      assert.equal(accepted.length, 4 + 8, "the queue's 4 slots plus 64 KiB of waiting puts");
      for (const e of refused) assert.equal(e.details?.limit, 'maxPendingBytes', String(e));
      assert.deepEqual(taken, accepted, 'what resolved was taken, in order, once');
      const big = await q.putMany(Array.from({ length: 20 }, () => new Uint8Array(8192))).catch((e: unknown) => e);
      assert.equal((big as { code?: string }).code, 'ERR_IPCKIT_LIMIT');
      assert.equal((big as { details?: { sent?: number } }).details?.sent, 4, 'the batch put what fit, then was refused');
    } finally {
      await q.close();
      unlinkWorkQueue(name);
    }
  });
});
