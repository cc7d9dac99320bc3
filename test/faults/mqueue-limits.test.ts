/**
 * Message queues over the kernel's limits: attributes above msg_max / msgsize_max, too
 * many queues (queues_max), this user's RLIMIT_MSGQUEUE used up. Each is ERR_IPCKIT_LIMIT
 * naming the limit, its value and what to raise; nothing is left half-created.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessageQueue, messageQueueLimits, unlinkMessageQueue, type MessageQueue } from '../../src/index.js';
import { uniqueName } from '../helpers.js';

const made = new Set<string>();
function qname(tag = 'mq'): string {
  const n = uniqueName(tag);
  made.add(n);
  return n;
}
after(() => {
  for (const n of made) unlinkMessageQueue(n);
});

describe('mqueue: kernel limits', () => {
  it('names the limit, its value and the file to raise for oversized attributes', () => {
    const limits = messageQueueLimits();
    const name = qname();
    let e = assert.throws(() => createMessageQueue(name, { maxMessages: limits.msgMax + 1, maxMessageBytes: 8 }), (err: { code?: string; details?: Record<string, unknown>; message: string }) => {
      assert.equal(err.code, 'ERR_IPCKIT_LIMIT');
      assert.equal(err.details?.limit, 'fs.mqueue.msg_max');
      assert.equal(err.details?.value, limits.msgMax);
      assert.equal(err.details?.file, '/proc/sys/fs/mqueue/msg_max');
      assert.equal((err as { systemCode?: string }).systemCode, 'EINVAL');
      assert.match(err.message, /msg_max = \d+/);
      return true;
    });
    void e;
    e = assert.throws(() => createMessageQueue(name, { maxMessages: 1, maxMessageBytes: limits.msgsizeMax + 1 }), (err: { code?: string; details?: Record<string, unknown> }) => {
      assert.equal(err.code, 'ERR_IPCKIT_LIMIT');
      assert.equal(err.details?.limit, 'fs.mqueue.msgsize_max');
      assert.equal(err.details?.file, '/proc/sys/fs/mqueue/msgsize_max');
      return true;
    });
    assert.equal(unlinkMessageQueue(name), false, 'nothing was created');
  });

  it('reports RLIMIT_MSGQUEUE when this user\'s queues use it up', async () => {
    const limits = messageQueueLimits();
    if (!Number.isFinite(limits.rlimitMsgqueue.soft)) return; // unlimited here: nothing to reach
    const queues: MessageQueue[] = [];
    let error: { code?: string; details?: Record<string, unknown> } | undefined;
    try {
      for (let i = 0; i < 1000 && !error; i++) {
        try {
          queues.push(createMessageQueue(qname('rl'), { maxMessages: limits.msgMax, maxMessageBytes: limits.msgsizeMax }));
        } catch (e) {
          error = e as typeof error;
        }
      }
      assert.ok(error, 'RLIMIT_MSGQUEUE was never reached');
      assert.equal(error!.code, 'ERR_IPCKIT_LIMIT');
      assert.equal(error!.details?.limit, 'RLIMIT_MSGQUEUE');
      assert.equal((error as { systemCode?: string }).systemCode, 'EMFILE');
      assert.equal(error!.details?.value, limits.rlimitMsgqueue.soft);
    } finally {
      for (const q of queues) {
        await q.close();
        unlinkMessageQueue(q.name);
      }
    }
  });

  it('reports queues_max when the namespace has too many queues', async () => {
    const limits = messageQueueLimits();
    const queues: MessageQueue[] = [];
    let error: { code?: string; details?: Record<string, unknown> } | undefined;
    try {
      for (let i = 0; i < limits.queuesMax + 10 && !error; i++) {
        try {
          queues.push(createMessageQueue(qname('qm'), { maxMessages: 1, maxMessageBytes: 1 }));
        } catch (e) {
          error = e as typeof error;
        }
      }
      assert.ok(error, 'queues_max was never reached');
      assert.equal(error!.code, 'ERR_IPCKIT_LIMIT');
      assert.equal(error!.details?.limit, 'fs.mqueue.queues_max');
      assert.equal((error as { systemCode?: string }).systemCode, 'ENOSPC');
      assert.equal(error!.details?.file, '/proc/sys/fs/mqueue/queues_max');
    } finally {
      for (const q of queues) {
        await q.close();
        unlinkMessageQueue(q.name);
      }
    }
  });
});

