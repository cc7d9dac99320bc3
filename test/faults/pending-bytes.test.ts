/**
 * Senders whose callers do not await their sends: past maxPendingBytes of sends waiting
 * for room, `send` rejects with ERR_IPCKIT_LIMIT instead of holding memory without bound;
 * every send that resolved is delivered once and in order, and no refused one arrives.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessageQueue, createPipe, socketPair, unlinkMessageQueue, type Receiver, type Sender } from '../../src/index.js';
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
    const { reader, writer } = createPipe({ maxPendingBytes: LIMIT, maxMessageSize: MESSAGE });
    try {
      check(await flood(writer, reader, 100, MESSAGE), 100, LIMIT / MESSAGE);
    } finally {
      await writer.close().catch(() => {});
      await reader.close();
    }
  });

  for (const kind of ['unix', 'unix-seqpacket'] as const) {
    it(`a ${kind} socket`, async () => {
      const [a, b] = socketPair(kind, { maxPendingBytes: LIMIT, maxMessageSize: MESSAGE });
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
    const q = createMessageQueue(name, { maxMessages: 4, messageSize: 8192, maxPendingBytes: 64 * 1024 });
    try {
      const f = await flood(q, q, 50, 8192);
      check(f, 50, 4 + 8);
      assert.equal(f.accepted.length, 4 + 8, "the queue's 4 messages plus 64 KiB of waiting sends");
    } finally {
      await q.close();
      unlinkMessageQueue(name);
    }
  });
});
