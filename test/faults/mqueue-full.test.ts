/**
 * A full message queue: trySend says no, a timed send times out having sent nothing, and
 * a consumer stopped (SIGSTOP) then resumed (SIGCONT) loses nothing.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessageQueue, unlinkMessageQueue } from '../../src/index.js';
import { rejectsWith, runFixture, sleep, uniqueName, within } from '../helpers.js';

const names: string[] = [];
after(() => names.forEach((n) => unlinkMessageQueue(n)));

describe('mqueue: full queue', () => {
  it('trySend is false, send({ timeout: 200 }) is ERR_IPCKIT_TIMEOUT and sent nothing', async () => {
    const name = uniqueName('full');
    names.push(name);
    const q = createMessageQueue(name, { maxMessages: 3, maxMessageBytes: 16, codec: 'utf8' });
    try {
      for (let i = 0; i < 3; i++) assert.equal(q.trySend(`m${i}`), true);
      assert.equal(q.trySend('extra'), false);
      const t0 = Date.now();
      await rejectsWith(q.send('late', { timeout: 200 }), 'ERR_IPCKIT_TIMEOUT');
      const waited = Date.now() - t0;
      assert.ok(waited >= 190 && waited < 2000, `waited ${waited} ms`);
      assert.equal(q.attributes().currentMessages, 3);
      assert.deepEqual(await q.receiveMany(10), ['m0', 'm1', 'm2']);
    } finally {
      await q.close();
    }
  });

  it('a consumer SIGSTOPped then resumed: the producer waits (a timed send times out, not "peer gone"), and every message arrives in order', async () => {
    const name = uniqueName('stopped');
    names.push(name);
    const q = createMessageQueue(name, { maxMessages: 10, maxMessageBytes: 64, codec: 'json' });
    const total = 5000;
    try {
      const consumer = runFixture('mqsem-peer', ['mq-sink', name, String(total)]);
      await within(new Promise((r) => consumer.child.stdout!.once('data', r)), 10_000);
      let i = 0;
      for (; i < 1000; i++) await q.send({ i }, { timeout: 10_000 });
      consumer.child.kill('SIGSTOP');
      await sleep(50);
      // The queue fills; a timed send then waits, times out, and must not have sent.
      for (;;) {
        try {
          await q.send({ i }, { timeout: 200 });
          i++;
        } catch (e) {
          assert.equal((e as { code?: string }).code, 'ERR_IPCKIT_TIMEOUT');
          break;
        }
      }
      const pending = q.send({ i: i++ }, { timeout: 10_000 }); // waits through the stop
      await sleep(200);
      consumer.child.kill('SIGCONT');
      await within(pending, 10_000);
      for (; i < total; i++) await q.send({ i }, { timeout: 10_000 });
      const r = await consumer.done;
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!), { got: total });
    } finally {
      await q.close();
    }
  });
});
