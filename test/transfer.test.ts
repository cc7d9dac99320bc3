/**
 * A received message can be handed to a worker with its buffer in the transfer list
 * (issue 15): that detaches the message itself and nothing else. Messages received before
 * keep their bytes, later receives work, a job whose payload was transferred can still be
 * acked (join() resolves), and a message's buffer shows no other message's bytes.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { createRing, unlinkRing } from '../src/mechanisms/ring/ring.js';
import { createWorkQueue, unlinkWorkQueue } from '../src/mechanisms/workqueue/workqueue.js';
import { createMessageQueue, openMessageQueue, unlinkMessageQueue } from '../src/mechanisms/mqueue/mqueue.js';
import { uniqueName, within } from './helpers.js';

const names: Array<() => void> = [];
after(() => {
  for (const unlink of names) unlink();
});

// Sizes on V8's heap (<= 64), the sizes the old shared chunk served (65 B .. 4 KiB), and above.
const SIZES = [10, 64, 65, 200, 1024, 4096, 5000];

function message(size: number, seed: number): Uint8Array {
  const m = new Uint8Array(size);
  for (let i = 0; i < size; i++) m[i] = (seed * 31 + i * 7) & 0xff;
  return m;
}

/** Transfers `m.buffer` through a MessageChannel and returns the bytes the other side got. */
function transfer(m: Uint8Array): Uint8Array {
  const { port1, port2 } = new MessageChannel();
  try {
    port1.postMessage(m, [m.buffer as ArrayBuffer]);
    const got = receiveMessageOnPort(port2);
    assert.ok(got, 'the transferred message arrived');
    return got.message as Uint8Array;
  } finally {
    port1.close();
    port2.close();
  }
}

for (const external of [true, false]) {
  describe(`ring (${external ? 'SharedArrayBuffer' : 'copying path'}): received messages own their memory`, () => {
    it('a message\'s buffer holds that message only, and transferring it detaches nothing else', async () => {
      const name = uniqueName('xfer');
      names.push(() => unlinkRing(name));
      const ring = createRing(name, { capacityBytes: 1024 * 1024, external });
      const receiver = await ring.receiver();
      const sender = await ring.sender();
      ring.close();
      try {
        const count = SIZES.length * 3;
        for (let i = 0; i < count; i++) await sender.send(message(SIZES[i % SIZES.length]!, i));
        const kept: Uint8Array[] = [];
        for (let i = 0; i < count; i++) {
          const m = (await receiver.receive({ timeout: 5000 })) as Uint8Array;
          const size = SIZES[i % SIZES.length]!;
          assert.equal(m.byteLength, size);
          assert.equal(m.byteOffset, 0, `message ${i} (${size} B) starts its own buffer`);
          assert.equal(m.buffer.byteLength, size, `message ${i} (${size} B): its buffer shows nothing else`);
          assert.ok(!(m.buffer instanceof SharedArrayBuffer), 'a copy, not the mapping');
          if (i % 2 === 0) {
            const moved = transfer(m);
            assert.equal(m.byteLength, 0, 'the transferred message is detached');
            assert.deepEqual(moved, message(size, i), 'the other side got the bytes');
          } else {
            kept.push(m);
          }
        }
        // Messages received before and after the transfers keep their bytes.
        kept.forEach((m, k) => assert.deepEqual(m, message(SIZES[(2 * k + 1) % SIZES.length]!, 2 * k + 1)));
        // And the ring still works: a batch, each message transferable on its own.
        await sender.sendMany(SIZES.map((s, i) => message(s, 100 + i)));
        const batch = (await receiver.receiveMany(SIZES.length, { timeout: 5000 })) as Uint8Array[];
        assert.equal(batch.length, SIZES.length);
        transfer(batch[0]!);
        batch.slice(1).forEach((m, i) => assert.deepEqual(m, message(SIZES[i + 1]!, 101 + i)));
      } finally {
        await sender.close();
        await receiver.close();
      }
    });
  });
}

describe('work queue: a taken job\'s payload owns its memory', () => {
  it('transferring a payload detaches nothing else; the job is still acked and join() resolves', async () => {
    const name = uniqueName('xferq');
    names.push(() => unlinkWorkQueue(name));
    const q = createWorkQueue(name, { capacityJobs: 64, maxMessageBytes: 8192 });
    try {
      for (let i = 0; i < SIZES.length * 2; i++) await q.put(message(SIZES[i % SIZES.length]!, i));
      const held: Array<{ data: Uint8Array; i: number }> = [];
      for (let i = 0; i < SIZES.length * 2; i++) {
        const job = await q.take({ timeout: 5000 });
        const data = job.data as Uint8Array;
        const size = SIZES[i % SIZES.length]!;
        assert.equal(data.buffer.byteLength, size, `job ${i} (${size} B): its buffer shows nothing else`);
        if (i % 2 === 0) {
          assert.deepEqual(transfer(data), message(size, i));
          assert.equal(data.byteLength, 0);
        } else {
          held.push({ data, i });
        }
        q.ack(job);
      }
      for (const { data, i } of held) assert.deepEqual(data, message(SIZES[i % SIZES.length]!, i));
      await within(q.join(), 5000);
      assert.equal(q.info().inFlight, 0);
    } finally {
      await q.close();
    }
  });
});

describe('message queue: receiveMany gives each message a buffer of its own', () => {
  it('transferring one message of a batch leaves the others whole', async () => {
    const name = uniqueName('xfermq');
    names.push(() => unlinkMessageQueue(name));
    const creator = createMessageQueue(name, { maxMessages: 10, maxMessageBytes: 8192 });
    const sender = await openMessageQueue(name, 'write');
    const receiver = await openMessageQueue(name, 'read');
    try {
      // Large enough that the old shared block (above Node's 4 KiB pool limit) was transferable.
      const sizes = [5000, 6000, 10, 300];
      await sender.sendMany(sizes.map((s, i) => message(s, i)));
      const batch = (await receiver.receiveMany(sizes.length, { timeout: 5000 })) as Uint8Array[];
      assert.equal(batch.length, sizes.length);
      assert.deepEqual(transfer(batch[0]!), message(sizes[0]!, 0));
      batch.slice(1).forEach((m, i) => assert.deepEqual(new Uint8Array(m), message(sizes[i + 1]!, i + 1), `message ${i + 1} kept its bytes`));
    } finally {
      await sender.close();
      await receiver.close();
      await creator.close();
    }
  });
});
