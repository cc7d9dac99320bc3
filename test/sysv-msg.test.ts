/** System V message queues: the Channel promises, types and selectors, waits off the loop and off libuv's pool, removal, ipc_perm. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, describe, it } from 'node:test';
import { createSysvMessageQueue, IPC_PRIVATE, openSysvMessageQueue, openSysvMessageQueueSync, removeSysvMessageQueue, sysvLimits, type SysvMessageQueue } from '../src/index.js';
import { blockingThreads } from '../src/os/blocking.js';
import { channelConformance } from './conformance/channel.js';
import { sysvCensus } from './census.js';
import { rejectsWith, sleep, throwsWith, trackSysv, uniqueKey, within } from './helpers.js';

/** Every queue this file makes, removed at the end even when a test fails. */
const made: number[] = [];
after(() => {
  for (const id of made) removeSysvMessageQueue({ id });
});

function queue<C extends 'utf8' | 'json' | undefined = undefined>(options: Parameters<typeof createSysvMessageQueue<C>>[1] = {}): SysvMessageQueue<C extends 'utf8' ? string : C extends 'json' ? unknown : Uint8Array> {
  const q = createSysvMessageQueue(uniqueKey(), options);
  made.push(q.id);
  return q as never;
}

channelConformance('sysv msg', {
  senderCloseEndsReceiver: false,
  backpressure: true,
  maxMessage: 8192,
  async make(o) {
    const creator = queue();
    const sender = await openSysvMessageQueue(creator.key, { codec: o.senderCodec, ...(o.maxMessageBytes !== undefined ? { maxMessageBytes: o.maxMessageBytes } : {}) });
    const receiver = await openSysvMessageQueue(creator.key, { codec: o.receiverCodec, ...(o.maxMessageBytes !== undefined ? { maxMessageBytes: o.maxMessageBytes } : {}) });
    return {
      sender,
      receiver,
      cleanup: async () => {
        await sender.close();
        await receiver.close();
        creator.remove();
        await creator.close();
      },
    };
  },
});

describe('sysv msg: types and selectors', () => {
  it('keeps each message\'s type; selectors 0, n, -n and except pick as the kernel does', async () => {
    const q = queue({ codec: 'utf8' });
    try {
      for (const [type, text] of [[5, 'five'], [2, 'two'], [9, 'nine'], [2, 'two again'], [1, 'one']] as const) await q.send(text, { type });
      assert.deepEqual(await q.receiveWithType({ type: 2 }), { type: 2, message: 'two' }, 'n > 0: the first of type n');
      assert.deepEqual(await q.receiveWithType({ type: 2, except: true }), { type: 5, message: 'five' }, 'except: the first not of type n');
      assert.deepEqual(await q.receiveWithType({ type: -3 }), { type: 1, message: 'one' }, '-n: the lowest type at most n');
      assert.deepEqual(await q.receiveWithType({ type: -3 }), { type: 2, message: 'two again' });
      assert.equal(q.tryReceive({ type: -3 }), undefined, 'nothing at most 3 is left');
      assert.deepEqual(await q.receiveWithType(), { type: 9, message: 'nine' }, '0: the first');
      await q.send('default type');
      assert.deepEqual(q.tryReceiveWithType(), { type: 1, message: 'default type' });
      const typed = createSysvMessageQueue(IPC_PRIVATE, { codec: 'utf8', type: 7 });
      trackSysv('msg', typed.id);
      made.push(typed.id);
      await typed.send('seven');
      assert.deepEqual(await typed.receiveWithType(), { type: 7, message: 'seven' }, 'the handle\'s default type');
      await typed.send('big', { type: Number.MAX_SAFE_INTEGER });
      assert.deepEqual(await typed.receiveWithType(), { type: Number.MAX_SAFE_INTEGER, message: 'big' }, 'types up to 2^53 - 1 are exact');
      await typed.close();
    } finally {
      await q.close();
    }
  });

  it('a waiting receive takes only what its selector matches; receives of one selector are served in order', async () => {
    const q = queue({ codec: 'utf8' });
    try {
      const sevens = [q.receiveWithType({ type: 7 }), q.receiveWithType({ type: 7 })];
      const low = q.receiveWithType({ type: -3 });
      await sleep(20);
      await q.send('not for anyone', { type: 5 });
      await q.send('seven a', { type: 7 });
      await q.send('two', { type: 2 });
      await q.send('seven b', { type: 7 });
      assert.deepEqual(await within(Promise.all(sevens), 5000), [{ type: 7, message: 'seven a' }, { type: 7, message: 'seven b' }]);
      assert.deepEqual(await within(low, 5000), { type: 2, message: 'two' });
      assert.deepEqual(q.tryReceiveWithType(), { type: 5, message: 'not for anyone' });
    } finally {
      await q.close();
    }
  });

  it('an empty message arrives with its type, whether it was waiting or waited for', async () => {
    const q = queue();
    try {
      await q.send(new Uint8Array(0), { type: 3 });
      assert.deepEqual(await q.receiveWithType(), { type: 3, message: Buffer.alloc(0) });
      const waiting = q.receiveWithType({ type: 4 });
      await sleep(20);
      await q.send(new Uint8Array(0), { type: 4 });
      const got = await within(waiting, 5000);
      assert.equal(got.type, 4);
      assert.equal(got.message.length, 0);
    } finally {
      await q.close();
    }
  });

  it('a message longer than maxMessageBytes stays in the queue: FRAME_TOO_LARGE, or cut with { truncate: true }', async () => {
    const q = queue();
    const small = await openSysvMessageQueue(q.key, { maxMessageBytes: 4 });
    try {
      await q.send(Buffer.from('0123456789'), { type: 1 });
      const e = await rejectsWith(small.receive(), 'ERR_IPCKIT_FRAME_TOO_LARGE');
      assert.match(e.message, /longer than maxMessageBytes \(4 bytes\); it stays in the queue; pass \{ truncate: true \} or \{ maxMessageBytes \}/);
      assert.equal(q.stat().messages, 1, 'nothing was taken');
      // A waiting receive meets it too.
      const waiting = small.receive({ type: 2 });
      await q.send(Buffer.from('abcdefgh'), { type: 2 });
      await rejectsWith(within(waiting, 5000), 'ERR_IPCKIT_FRAME_TOO_LARGE');
      assert.deepEqual(Buffer.from(await small.receive({ truncate: true })), Buffer.from('0123'));
      assert.deepEqual(Buffer.from(await q.receive()), Buffer.from('abcdefgh'));
      throwsWith(() => void small.send(Buffer.alloc(5)), 'ERR_IPCKIT_FRAME_TOO_LARGE');
    } finally {
      await small.close();
      await q.close();
    }
  });
});

describe('sysv msg: batches', () => {
  it('receiveMany waits for one, then takes what is waiting (up to max) in one call, keeping types and the selector', async () => {
    const q = queue({ codec: 'utf8' });
    try {
      const waiting = q.receiveManyWithType(10, { type: -5 });
      await sleep(20);
      await q.send('first', { type: 3 });
      assert.deepEqual(await within(waiting, 5000), [{ type: 3, message: 'first' }]);
      for (let i = 0; i < 8; i++) await q.send(`m${i}`, { type: i % 2 === 0 ? 2 : 9 });
      assert.deepEqual(await q.receiveMany(3, { type: 2 }), ['m0', 'm2', 'm4']);
      assert.deepEqual(await q.receiveMany(100, { type: 9 }), ['m1', 'm3', 'm5', 'm7']);
      assert.deepEqual(await q.receiveManyWithType(), [{ type: 2, message: 'm6' }]);
      assert.equal(q.stat().messages, 0);
    } finally {
      await q.close();
    }
  });

  it('a message that fails to decode is that receive\'s error; those after it in the batch come next, in order', async () => {
    const q = queue({ codec: 'json' });
    const raw = await openSysvMessageQueue(q.key);
    try {
      for (const m of ['{"a":1}', '{"a":2}', '{not json', '{"a":4}', '{"a":5}']) await raw.send(Buffer.from(m), { type: 1 });
      assert.deepEqual(await q.receiveMany(), [{ a: 1 }, { a: 2 }]);
      await rejectsWith(q.receiveMany(), 'ERR_IPCKIT_BAD_FRAME');
      assert.deepEqual(await q.receive(), { a: 4 }, 'held back, then given to the next receive of that selector');
      assert.deepEqual(await q.receiveMany(), [{ a: 5 }]);
      // Held messages left at close go back to the queue.
      for (const m of ['{"b":1}', 'oops', '{"b":3}']) await raw.send(Buffer.from(m), { type: 4 });
      assert.deepEqual(await q.receiveMany(10, { type: 4 }), [{ b: 1 }]);
    } finally {
      await q.close();
    }
    assert.deepEqual(
      [raw.tryReceiveWithType(), raw.tryReceiveWithType()].map((m) => m && { type: m.type, text: Buffer.from(m.message).toString() }),
      [{ type: 4, text: 'oops' }, { type: 4, text: '{"b":3}' }],
      'what close() put back, in order',
    );
    await raw.close();
  });
});

describe('sysv msg: waiting', () => {
  it('pending receives keep the event loop turning and libuv\'s pool free; one thread per selector', async () => {
    const q = queue({ codec: 'utf8' });
    let ticks = 0;
    const iv = setInterval(() => ticks++, 5);
    try {
      const before = blockingThreads();
      // Eight receives of one selector wait in turn on one thread; four selectors, four threads.
      const same = Array.from({ length: 8 }, () => q.receive({ type: 1 }));
      const others = [2, 3, 4].map((type) => q.receive({ type }));
      const text = await within(readFile(new URL(import.meta.url), 'utf8'), 2000, 'fs.readFile while 11 receives wait');
      assert.ok(text.length > 0);
      await sleep(100);
      assert.ok(ticks >= 5, `the loop ran ${ticks} timer ticks`);
      assert.ok(blockingThreads() - before <= 4, `${blockingThreads() - before} threads for four selectors`);
      for (let i = 0; i < 8; i++) await q.send(`m${i}`, { type: 1 });
      for (const type of [2, 3, 4]) await q.send(`t${type}`, { type });
      assert.deepEqual(await within(Promise.all(same), 5000), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);
      assert.deepEqual(await within(Promise.all(others), 5000), ['t2', 't3', 't4']);
    } finally {
      clearInterval(iv);
      await q.close();
    }
  });

  it('a send on a full queue waits for room, loses nothing, and a timed-out send sent nothing', async () => {
    const q = queue({ codec: 'utf8', maxBytes: 10 });
    try {
      assert.equal(q.stat().maxBytes, 10);
      await q.send('12345');
      await q.send('67890');
      assert.equal(q.trySend('x'), false, 'full');
      const waiting = q.send('later');
      await sleep(50);
      assert.equal(q.stat().messages, 2);
      assert.equal(await q.receive(), '12345');
      await within(waiting, 5000, 'the waiting send');
      await rejectsWith(q.send('too much', { timeout: 50 }), 'ERR_IPCKIT_TIMEOUT');
      assert.deepEqual([await q.receive(), await q.receive()], ['67890', 'later']);
      assert.equal(q.stat().messages, 0, 'the timed-out send sent nothing');
      // A message the queue can never hold is refused instead of waiting forever.
      const e = await rejectsWith(q.send('x'.repeat(11)), 'ERR_IPCKIT_FRAME_TOO_LARGE');
      assert.match(e.message, /more than .* holds \(msg_qbytes = 10\)/);
      q.setMaxBytes(100);
      await q.send('x'.repeat(11));
      assert.equal((await q.receive()).length, 11);
    } finally {
      await q.close();
    }
  });

  it('timeout, abort and close end a wait having taken nothing; the queue goes on', async () => {
    const q = queue({ codec: 'utf8' });
    const other = await openSysvMessageQueue(q.key, { codec: 'utf8' });
    try {
      await rejectsWith(other.receive({ timeout: 30 }), 'ERR_IPCKIT_TIMEOUT');
      const ac = new AbortController();
      const aborted = other.receive({ signal: ac.signal });
      setTimeout(() => ac.abort(new Error('enough')), 20);
      const e = await rejectsWith(aborted, 'ERR_IPCKIT_ABORTED');
      assert.equal((e.cause as Error).message, 'enough');
      const pending = rejectsWith(other.receive(), 'ERR_IPCKIT_CLOSED');
      await sleep(20);
      await other.close();
      await pending;
      await q.send('kept');
      assert.equal(q.stat().messages, 1, 'no cancelled wait took it');
      assert.equal(await q.receive(), 'kept');
    } finally {
      await other.close();
      await q.close();
    }
  });

  it('a queue removed while we wait ends receives and sends with ERR_IPCKIT_CLOSED (details.removed), never a hang', async () => {
    const q = queue({ codec: 'utf8', maxBytes: 1 });
    const other = await openSysvMessageQueue(q.key, { codec: 'utf8' });
    const listener = queue({ codec: 'utf8' });
    try {
      await q.send('x');
      // Checked from the start: each rejects when the queue goes, before we look at the other.
      const receiving = rejectsWith(within(other.receive({ type: 99 }), 5000, 'a receive on a removed queue'), 'ERR_IPCKIT_CLOSED');
      const sending = rejectsWith(within(other.send('y'), 5000, 'a send on a removed queue'), 'ERR_IPCKIT_CLOSED');
      await listener.send('first');
      const iterating = (async () => {
        const got: string[] = [];
        for await (const m of listener) got.push(m);
        return got;
      })();
      await sleep(50);
      listener.remove();
      assert.ok(removeSysvMessageQueue({ id: q.id }), 'removed by id, as ipcrm -q does');
      for (const e of await Promise.all([receiving, sending])) {
        assert.deepEqual(e.details?.removed, true);
        assert.match(e.message, /was removed/);
      }
      assert.deepEqual(await within(iterating, 5000), ['first'], 'async iteration ends');
      await rejectsWith(other.receive(), 'ERR_IPCKIT_CLOSED');
      assert.equal(removeSysvMessageQueue({ id: q.id }), false);
      await rejectsWith(openSysvMessageQueue(q.key), 'ERR_IPCKIT_NOT_FOUND');
    } finally {
      await other.close();
      await q.close();
      await listener.close();
    }
  });

  it('open { wait: true } waits for the key to appear, with a timeout', async () => {
    const key = uniqueKey();
    await rejectsWith(openSysvMessageQueue(key), 'ERR_IPCKIT_NOT_FOUND');
    await rejectsWith(openSysvMessageQueue(key, { wait: true, timeout: 30 }), 'ERR_IPCKIT_TIMEOUT');
    const opening = openSysvMessageQueue(key, { wait: true, timeout: 5000, codec: 'utf8' });
    await sleep(30);
    const q = createSysvMessageQueue(key, { codec: 'utf8' });
    made.push(q.id);
    const o = await within(opening, 5000);
    try {
      assert.equal(o.id, q.id);
      await q.send('hello');
      assert.equal(await o.receive(), 'hello');
    } finally {
      await o.close();
      await q.close();
    }
  });
});

describe('sysv msg: create, open, ipc_perm', () => {
  it('creates exclusively with mode 0600; stat gives ipc_perm and the queue\'s fields; setMode, setOwner, remove', async () => {
    const q = queue({ codec: 'utf8' });
    try {
      throwsWith(() => createSysvMessageQueue(q.key), 'ERR_IPCKIT_EXISTS');
      const s = q.stat();
      const uid = process.geteuid!();
      assert.deepEqual(
        { family: s.family, kind: s.kind, key: s.key, id: s.id, uid: s.uid, cuid: s.cuid, mode: s.mode, messages: s.messages, maxBytes: s.maxBytes },
        { family: 'sysv', kind: 'msg', key: q.key, id: q.id, uid, cuid: uid, mode: 0o600, messages: 0, maxBytes: sysvLimits().msgmnb },
      );
      assert.equal(s.sendTime, null);
      await q.send('x');
      const t = q.stat();
      assert.equal(t.messages, 1);
      assert.equal(t.bytes, 1);
      assert.equal(t.lastSendPid, process.pid);
      assert.ok(t.sendTime instanceof Date);
      assert.deepEqual(q.perm(), { family: 'sysv', kind: 'msg', key: q.key, id: q.id, uid, gid: s.gid, cuid: uid, cgid: s.cgid, mode: 0o600, seq: s.seq });
      q.setMode(0o640);
      assert.equal(q.perm().mode, 0o640);
      // Ours but wider than the default 0600: refused unless the mode is accepted.
      await rejectsWith(openSysvMessageQueue(q.key), 'ERR_IPCKIT_PERMISSION');
      const wide = await openSysvMessageQueue(q.key, { mode: 0o640 });
      await wide.close();
      const byId = openSysvMessageQueueSync({ id: q.id }, { anyOwner: true });
      assert.equal(byId.key, q.key);
      await byId.close();
      if (uid === 0) {
        q.setOwner({ gid: 65534 });
        assert.equal(q.perm().gid, 65534);
      }
      assert.equal(q.remove(), true);
      assert.equal(q.remove(), false);
      assert.throws(() => q.stat(), /was removed/);
    } finally {
      await q.close();
    }
  });

  it('IPC_PRIVATE: a new queue each time, found by its id only', async () => {
    const a = createSysvMessageQueue(IPC_PRIVATE, { removeOnClose: true });
    const b = createSysvMessageQueue(IPC_PRIVATE, { removeOnClose: true });
    trackSysv('msg', a.id);
    trackSysv('msg', b.id);
    try {
      assert.notEqual(a.id, b.id);
      assert.equal(a.key, 0);
      await rejectsWith(openSysvMessageQueue(IPC_PRIVATE), 'ERR_IPCKIT_INVALID_ARGUMENT');
      const o = await openSysvMessageQueue({ id: a.id });
      await o.send(Buffer.from('by id'));
      assert.equal(Buffer.from(await a.receive()).toString(), 'by id');
      await o.close();
    } finally {
      await a.close();
      await b.close();
    }
    await rejectsWith(openSysvMessageQueue({ id: a.id }), 'ERR_IPCKIT_NOT_FOUND');
  });

  it('the test census sees a queue of the run\'s key range until it is removed', async () => {
    const q = createSysvMessageQueue(uniqueKey());
    made.push(q.id);
    assert.ok(sysvCensus().some((l) => l.endsWith(`id ${q.id}`)), 'counted while it exists');
    q.remove();
    await q.close();
    assert.ok(!sysvCensus().some((l) => l.endsWith(`id ${q.id}`)), 'gone from the census once removed');
  });
});

describe('sysv msg: bad arguments throw synchronously', () => {
  it('every entry point refuses bad arguments before doing anything', async () => {
    const q = queue({ codec: 'utf8' });
    try {
      const cases: Array<[string, () => unknown]> = [
        ['create: key', () => createSysvMessageQueue(2 ** 32)],
        ['create: mode', () => createSysvMessageQueue(IPC_PRIVATE, { mode: 0o4600 })],
        ['create: maxBytes', () => createSysvMessageQueue(IPC_PRIVATE, { maxBytes: 0 })],
        ['create: maxMessageBytes', () => createSysvMessageQueue(IPC_PRIVATE, { maxMessageBytes: -1 })],
        ['create: type', () => createSysvMessageQueue(IPC_PRIVATE, { type: 0 })],
        ['create: codec', () => createSysvMessageQueue(IPC_PRIVATE, { codec: 'nope' as never })],
        ['open: target', () => openSysvMessageQueue('jobs' as never)],
        ['open: id', () => openSysvMessageQueue({ id: -1 })],
        ['open: owner', () => openSysvMessageQueue(1, { owner: -1 })],
        ['open: wait', () => openSysvMessageQueue(1, { wait: 1 as never })],
        ['openSync: wait', () => openSysvMessageQueueSync(1, { wait: true } as never)],
        ['send: type 0', () => q.send('x', { type: 0 })],
        ['send: type fraction', () => q.send('x', { type: 1.5 })],
        ['send: timeout', () => q.send('x', { timeout: Number.NaN })],
        ['send: codec input', () => q.send(5 as never)],
        ['trySend: type', () => q.trySend('x', { type: -1 })],
        ['receive: type', () => q.receive({ type: 0.5 })],
        ['receive: except without a type', () => q.receive({ except: true })],
        ['receive: except with a negative type', () => q.receive({ type: -2, except: true })],
        ['receive: truncate', () => q.receive({ truncate: 'yes' as never })],
        ['receive: signal', () => q.receive({ signal: 'stop' as never })],
        ['tryReceive: type', () => q.tryReceive({ type: Number.MAX_SAFE_INTEGER + 2 })],
        ['setMode', () => q.setMode(-1)],
        ['setMaxBytes', () => q.setMaxBytes(0)],
        ['setOwner', () => q.setOwner({ uid: 'root' as never })],
        ['remove: target', () => removeSysvMessageQueue({} as never)],
      ];
      for (const [what, call] of cases) {
        assert.throws(call, (e: Error & { code?: string }) => e.code === 'ERR_IPCKIT_INVALID_ARGUMENT', what);
      }
      assert.equal(q.stat().messages, 0, 'nothing was sent');
      throwsWith(() => void q.send('x'.repeat(sysvLimits().msgmax + 1)), 'ERR_IPCKIT_FRAME_TOO_LARGE');
    } finally {
      await q.close();
    }
  });
});
