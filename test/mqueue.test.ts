import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, describe, it } from 'node:test';
import {
  createMessageQueue,
  messageQueueLimits,
  openMessageQueue, openMessageQueueSync,
  unlinkMessageQueue,
  type MessageQueue,
  type MessageQueueReceiver,
  type MessageQueueSender,
} from '../src/index.js';
import { channelConformance } from './conformance/channel.js';
import { join } from 'node:path';
import { checkFdLeaks, rejectsWith, repoRoot, run, runCli, runFixture, sleep, throwsWith, uniqueName, within } from './helpers.js';

checkFdLeaks();

const made = new Set<string>();
/** A unique queue name, removed after this file even if a test fails. */
function qname(tag = 'mq'): string {
  const n = uniqueName(tag);
  made.add(n);
  return n;
}
after(() => {
  for (const n of made) unlinkMessageQueue(n);
});

channelConformance('mqueue', {
  senderCloseEndsReceiver: false,
  backpressure: true,
  maxMessage: 8192,
  async make(o) {
    const name = qname('conf');
    const creator = createMessageQueue(name, { maxMessages: 10, maxMessageBytes: o.maxMessageBytes ?? 8192 });
    const sender = await openMessageQueue(name, 'write', { codec: o.senderCodec });
    const receiver = await openMessageQueue(name, 'read', { codec: o.receiverCodec });
    return {
      sender,
      receiver,
      cleanup: async () => {
        await sender.close();
        await receiver.close();
        await creator.close();
        unlinkMessageQueue(name);
      },
    };
  },
});

describe('mqueue: create, open, unlink', () => {
  it('creates exclusively with mode 0600, opens by the same name, unlink is idempotent', async () => {
    const name = qname();
    const q = createMessageQueue(name, { maxMessages: 4, maxMessageBytes: 128 });
    try {
      assert.equal(q.name, name);
      assert.deepEqual(q.attributes(), { maxMessages: 4, maxMessageBytes: 128, currentMessages: 0 });
      assert.equal(q.owner().mode, 0o600);
      assert.equal(q.owner().uid, process.geteuid!());
      assert.throws(() => createMessageQueue(name), (e: { code?: string }) => e.code === 'ERR_IPCKIT_EXISTS');
      const other = await openMessageQueue(name);
      await other.send(new Uint8Array([1, 2, 3]));
      assert.equal(q.attributes().currentMessages, 1);
      assert.deepEqual([...(await q.receive())], [1, 2, 3]);
      await other.close();
    } finally {
      await q.close();
    }
    assert.equal(unlinkMessageQueue(name), true);
    assert.equal(unlinkMessageQueue(name), false);
    assert.throws(() => openMessageQueueSync(name), (e: { code?: string }) => e.code === 'ERR_IPCKIT_NOT_FOUND');
  });

  it('takes names as C and Python peers give them: a leading slash is added, bad names are refused', () => {
    const bare = qname().slice(1);
    const q = createMessageQueue(bare, { maxMessages: 1, maxMessageBytes: 8 });
    assert.equal(q.name, `/${bare}`);
    void q.close();
    for (const bad of ['', '/', '/a/b', '/..', `/${'x'.repeat(255)}`, 'a\0b']) {
      throwsWith(() => createMessageQueue(bad), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => openMessageQueueSync(bad), 'ERR_IPCKIT_INVALID_ARGUMENT');
    }
    throwsWith(() => createMessageQueue(qname(), { maxMessages: 0 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createMessageQueue(qname(), { maxMessageBytes: -1 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createMessageQueue(qname(), { mode: 0o1777 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
  });

  it('composes roles: a reader has no send, a writer has no receive', async () => {
    const name = qname();
    const q = createMessageQueue(name, { maxMessages: 2, maxMessageBytes: 16 });
    const r: MessageQueueReceiver = await openMessageQueue(name, 'read');
    const w: MessageQueueSender = await openMessageQueue(name, 'write');
    assert.equal('send' in r, false);
    assert.equal('receive' in w, false);
    await w.send(Buffer.from('x'));
    assert.equal(Buffer.from(await r.receive()).toString(), 'x');
    for (const h of [q, r, w]) await h.close();
  });

  it('unlinkOnClose removes the name when the handle closes', async () => {
    const name = qname();
    const q = createMessageQueue(name, { maxMessages: 1, maxMessageBytes: 8, unlinkOnClose: true });
    await q.close();
    assert.equal(unlinkMessageQueue(name), false);
  });
});

describe('mqueue: priorities and batches', () => {
  it('delivers the highest priority first, FIFO within one priority, and reports it', async () => {
    const name = qname();
    const q = createMessageQueue(name, { maxMessages: 10, maxMessageBytes: 32, codec: 'utf8' });
    try {
      const sent: Array<[string, number]> = [['a', 0], ['b', 5], ['c', 31], ['d', 5], ['e', 0], ['f', 100]];
      for (const [m, p] of sent) await q.send(m, { priority: p });
      const got = [];
      for (let i = 0; i < sent.length; i++) got.push(await q.receiveWithPriority());
      assert.deepEqual(got, [
        { message: 'f', priority: 100 },
        { message: 'c', priority: 31 },
        { message: 'b', priority: 5 },
        { message: 'd', priority: 5 },
        { message: 'a', priority: 0 },
        { message: 'e', priority: 0 },
      ]);
      throwsWith(() => void q.send('x', { priority: -1 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => void q.send('x', { priority: 32768 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    } finally {
      await q.close();
    }
  });

  it('sendMany and receiveMany move batches in order with one native call each', async () => {
    const name = qname();
    const q = createMessageQueue(name, { maxMessages: 10, maxMessageBytes: 64, codec: 'json' });
    try {
      const messages = Array.from({ length: 500 }, (_, i) => ({ i }));
      const sending = q.sendMany(messages, { timeout: 10_000 });
      const got: unknown[] = [];
      while (got.length < messages.length) got.push(...(await within(q.receiveMany(1024), 10_000)));
      await sending;
      assert.deepEqual(got, messages);
      await q.sendMany([{ p: 1 }, { p: 2 }], { priority: 7 });
      assert.deepEqual(await q.receiveManyWithPriority(10), [
        { message: { p: 1 }, priority: 7 },
        { message: { p: 2 }, priority: 7 },
      ]);
    } finally {
      await q.close();
    }
  });

  it('a sendMany that times out says how many went in, and those arrive', async () => {
    const name = qname();
    const q = createMessageQueue(name, { maxMessages: 3, maxMessageBytes: 8, codec: 'utf8' });
    try {
      const e = await rejectsWith(q.sendMany(['1', '2', '3', '4', '5'], { timeout: 100 }), 'ERR_IPCKIT_TIMEOUT');
      assert.equal(e.details?.sent, 3);
      assert.deepEqual(await q.receiveMany(10), ['1', '2', '3']);
    } finally {
      await q.close();
    }
  });

  it('a message above maxMessageBytes is refused before any system call', async () => {
    const name = qname();
    const q = createMessageQueue(name, { maxMessages: 2, maxMessageBytes: 16 });
    try {
      throwsWith(() => void q.send(new Uint8Array(17)), 'ERR_IPCKIT_FRAME_TOO_LARGE');
      throwsWith(() => q.trySend(new Uint8Array(17)), 'ERR_IPCKIT_FRAME_TOO_LARGE');
      throwsWith(() => void q.sendMany([new Uint8Array(1), new Uint8Array(17)]), 'ERR_IPCKIT_FRAME_TOO_LARGE');
      assert.equal(q.attributes().currentMessages, 0, 'nothing of the refused batch was sent');
      await q.send(new Uint8Array(16));
      assert.equal((await q.receive()).length, 16);
    } finally {
      await q.close();
    }
  });

  it('close() rejects a waiting send with ERR_IPCKIT_CLOSED; an abort ends it with its reason', async () => {
    const name = qname();
    const q = createMessageQueue(name, { maxMessages: 1, maxMessageBytes: 8 });
    await q.send(new Uint8Array(1));
    const ac = new AbortController();
    const aborted = q.send(new Uint8Array(2), { signal: ac.signal });
    ac.abort(new Error('enough'));
    const e = await rejectsWith(aborted, 'ERR_IPCKIT_ABORTED');
    assert.equal(((e as Error & { cause?: Error }).cause as Error).message, 'enough');
    const waiting = q.send(new Uint8Array(3));
    await sleep(10);
    await q.close();
    await rejectsWith(waiting, 'ERR_IPCKIT_CLOSED');
    const again = await openMessageQueue(name);
    assert.deepEqual(again.attributes().currentMessages, 1, 'neither the aborted nor the closed send went in');
    await again.close();
  });
});

describe('mqueue: waiting', () => {
  it('a hundred queues with a pending receive do not stall fs calls or the event loop', async () => {
    const queues: Array<MessageQueue<string>> = [];
    try {
      for (let i = 0; i < 100; i++) queues.push(createMessageQueue(qname('many'), { maxMessages: 1, maxMessageBytes: 16, codec: 'utf8' }));
      const pending = queues.map((q) => q.receive());
      // With a thread (or a thread-pool slot) per wait, these would queue behind the receives.
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      const started = Date.now();
      for (let i = 0; i < 20; i++) await within(readFile(new URL(import.meta.url)), 5000, 'fs.readFile');
      await sleep(50);
      clearInterval(timer);
      assert.ok(ticks > 10, `the event loop ran only ${ticks} timer ticks in ${Date.now() - started} ms`);
      const senders = queues.map((q) => openMessageQueueSync(q.name, 'write', { codec: 'utf8' }));
      senders.forEach((s, i) => s.trySend(`m${i}`));
      assert.deepEqual(await within(Promise.all(pending), 10_000), queues.map((_, i) => `m${i}`));
      for (const s of senders) await s.close();
    } finally {
      for (const q of queues) {
        await q.close();
        unlinkMessageQueue(q.name);
      }
    }
  });

  it('a receive waits for a message from another process, without a thread per wait', async () => {
    const name = qname();
    const q = createMessageQueue(name, { maxMessages: 4, maxMessageBytes: 64, codec: 'utf8' });
    try {
      const got = q.receiveWithPriority({ timeout: 20_000 });
      const peer = runFixture('mqsem-peer', ['mq-send', name, '3:from node peer']);
      assert.deepEqual(await got, { message: 'from node peer', priority: 3 });
      assert.equal((await peer.done).code, 0);
    } finally {
      await q.close();
    }
  });

  // send one by one, and sendMany in batches 25x the queue: room is waited for, spinning or polling.
  for (const how of ['send', 'sendMany'] as const) {
    it(`streams 20,000 messages to another process in order, through a full queue (${how})`, async () => {
      const name = qname();
      const q = createMessageQueue(name, { maxMessages: 10, maxMessageBytes: 64, codec: 'json' });
      try {
        const peer = runFixture('mqsem-peer', ['mq-sink', name, '20000']);
        await new Promise((r) => peer.child.stdout!.once('data', r));
        if (how === 'send') for (let i = 0; i < 20_000; i++) await q.send({ i }, { timeout: 20_000 });
        else for (let i = 0; i < 20_000; i += 250) await q.sendMany(Array.from({ length: 250 }, (_, k) => ({ i: i + k })), { timeout: 20_000 });
        const r = await peer.done;
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!), { got: 20_000 });
      } finally {
        await q.close();
      }
    });
  }

  it('a send spinning on a full queue keeps its timeout and puts nothing in when it ends', async () => {
    const name = qname();
    const q = createMessageQueue(name, { maxMessages: 1, maxMessageBytes: 8, spinMicros: 10_000 });
    try {
      await q.send(new Uint8Array(1));
      await rejectsWith(q.send(new Uint8Array(1), { timeout: 30 }), 'ERR_IPCKIT_TIMEOUT');
      const e = await rejectsWith(q.sendMany([new Uint8Array(1), new Uint8Array(1)], { timeout: 30 }), 'ERR_IPCKIT_TIMEOUT');
      assert.equal(e.details?.sent, 0);
      const aborted = new AbortController();
      setTimeout(() => aborted.abort(), 30);
      await rejectsWith(q.send(new Uint8Array(1), { signal: aborted.signal }), 'ERR_IPCKIT_ABORTED');
      assert.equal(q.attributes().currentMessages, 1, 'the sends that ended put nothing in');
    } finally {
      await q.close();
    }
  });
});

describe('mqueue: CLI', () => {
  it('create, send (arguments and stdin lines), recv --json with priorities, info, rm', async () => {
    const name = qname('cli');
    let r = await runCli(['mqueue', 'create', name, '--max-messages', '8', '--max-message', '256', '--mode', '640']).done;
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['mq', 'send', name, 'low', '--priority', '1']).done;
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['mq', 'send', name, '--priority', '9'], { input: 'line one\nline two\n' }).done;
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['mqueue', 'info', name, '--json']).done;
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout);
    assert.equal(info.maxMessages, 8);
    assert.equal(info.maxMessageBytes, 256);
    assert.equal(info.currentMessages, 3);
    assert.equal(info.mode, 0o640);
    r = await runCli(['mqueue', 'recv', name, '--count', '3', '--json']).done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      r.stdout.trim().split('\n').map((l) => JSON.parse(l)),
      [
        { data: 'line one', encoding: 'utf8', length: 8, priority: 9 },
        { data: 'line two', encoding: 'utf8', length: 8, priority: 9 },
        { data: 'low', encoding: 'utf8', length: 3, priority: 1 },
      ],
    );
    r = await runCli(['mqueue', 'recv', name, '--timeout', '100']).done;
    assert.equal(r.code, 124, 'a receive that times out exits 124');
    r = await runCli(['mqueue', 'rm', name]).done;
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['mqueue', 'info', name]).done;
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERR_IPCKIT_NOT_FOUND/);
    r = await runCli(['mqueue', 'create']).done;
    assert.equal(r.code, 2, 'usage errors exit 2');
    r = await runCli(['mqueue', 'create', qname(), '--max-messages', '100000']).done;
    assert.equal(r.code, 2);
    r = await runCli(['mqueue', 'create', qname(), '--max-messages', '11']).done;
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERR_IPCKIT_LIMIT/);
    assert.match(r.stderr, /msg_max/);
  });
});

describe('mqueue: example', () => {
  it('examples/mqueue: the producer and the consumer', async () => {
    const name = qname('example');
    const consumer = run(process.execPath, [join(repoRoot, 'dist', 'examples', 'mqueue', 'consumer.js'), name]);
    const producer = run(process.execPath, [join(repoRoot, 'dist', 'examples', 'mqueue', 'producer.js'), name]);
    const [c, p] = await Promise.all([consumer.done, producer.done]);
    assert.equal(p.code, 0, p.stderr);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /handled 20 jobs/);
    const ids = [...c.stdout.matchAll(/job (\d+) /g)].map((m) => Number(m[1])).sort((a, b) => a - b);
    assert.deepEqual(ids, Array.from({ length: 20 }, (_, i) => i + 1));
    assert.match(c.stdout, /urgent job, priority 10/);
  });
});
