/**
 * Request/reply (src/core/request.ts) over three real duplex channels: a ring pair, a
 * socket pair and a pipe pair. Server and requester run in this process: the processes
 * are in test/process.test.ts.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { Channel } from '../src/core/channel.js';
import { IpcError, isIpcError } from '../src/core/errors.js';
import { createRequester, serve } from '../src/core/request.js';
import { createPipe } from '../src/mechanisms/pipe/pipe.js';
import { DuplexChannel } from '../src/core/duplex.js';
import { openRingChannel } from '../src/mechanisms/ring/channel.js';
import { createRing, unlinkRing } from '../src/mechanisms/ring/ring.js';
import { socketPair } from '../src/mechanisms/socket/socket.js';
import { rejectsWith, sleep, throwsWith, uniqueName, within } from './helpers.js';

const rings: string[] = [];
after(() => {
  for (const n of rings) unlinkRing(n);
});

type Pair = [Channel<unknown>, Channel<unknown>];

const pairs: Record<string, () => Promise<Pair>> = {
  async ring() {
    const a = uniqueName('rq-a');
    const b = uniqueName('rq-b');
    rings.push(a, b);
    createRing(a).close();
    createRing(b).close();
    const [x, y] = await Promise.all([openRingChannel({ send: a, receive: b }, { codec: 'json' }), openRingChannel({ send: b, receive: a }, { codec: 'json' })]);
    return [x, y];
  },
  async socket() {
    return socketPair('unix', { codec: 'json' }) as Pair;
  },
  async pipe() {
    const one = createPipe({ codec: 'json' });
    const two = createPipe({ codec: 'json' });
    return [new DuplexChannel<unknown>(one.writer, two.reader), new DuplexChannel<unknown>(two.writer, one.reader)];
  },
};

for (const [kind, make] of Object.entries(pairs)) {
  describe(`request/reply over a ${kind} pair`, () => {
    it('round trips, many at once, matched by id', async () => {
      const [a, b] = await make();
      const server = serve(b, async (m: any) => {
        await sleep(m.delay);
        return { twice: m.n * 2 };
      });
      const requester = createRequester(a);
      // Later requests answer first: replies must still go to their own caller.
      const results = await within(Promise.all(Array.from({ length: 200 }, (_, n) => requester.request({ n, delay: (200 - n) % 7 }))), 30_000);
      assert.deepEqual(results, Array.from({ length: 200 }, (_, n) => ({ twice: n * 2 })));
      assert.equal(requester.pending, 0);
      await a.close();
      await server.done;
      await b.close();
    });

    it("the handler's error travels back: name, message, stack, code; IpcErrors keep their code", async () => {
      const [a, b] = await make();
      const server = serve(b, (m: any) => {
        if (m === 'ipc') throw new IpcError('ERR_IPCKIT_LIMIT', 'too many', { details: { limit: 'x' } });
        if (m === 'str') throw 'plain string';
        const e = new TypeError('bad thing');
        (e as any).code = 'E_BAD';
        throw e;
      });
      const r = createRequester(a);
      const e = await r.request('x').then(() => assert.fail('resolved'), (err: any) => err);
      assert.equal(e.name, 'TypeError');
      assert.equal(e.message, 'bad thing');
      assert.equal(e.code, 'E_BAD');
      assert.equal(e.remote, true);
      assert.match(e.stack, /bad thing/);
      assert.match(e.stack, /request\.test/); // the handler's own stack
      const ipc = await rejectsWith(r.request('ipc'), 'ERR_IPCKIT_LIMIT');
      assert.equal(ipc.details?.limit, 'x');
      assert.ok(isIpcError(ipc));
      const s = await r.request('str').then(() => assert.fail('resolved'), (err: any) => err);
      assert.equal(s.message, 'plain string');
      // The server lives on after throwing.
      await a.close();
      await server.done;
      await b.close();
    });

    it('a timeout or an abort rejects that request only; its late reply is dropped', async () => {
      const [a, b] = await make();
      const server = serve(b, async (m: any) => {
        await sleep(m.delay);
        return m.tag;
      });
      const r = createRequester(a);
      const slow = rejectsWith(r.request({ delay: 300, tag: 'slow' }, { timeout: 50 }), 'ERR_IPCKIT_TIMEOUT');
      const ac = new AbortController();
      const aborted = rejectsWith(r.request({ delay: 300, tag: 'aborted' }, { signal: ac.signal }), 'ERR_IPCKIT_ABORTED');
      const fine = r.request({ delay: 400, tag: 'fine' });
      setTimeout(() => ac.abort(), 20);
      await slow;
      await aborted;
      assert.equal(await within(fine, 10_000), 'fine');
      assert.equal(await r.request({ delay: 0, tag: 'after' }), 'after');
      await a.close();
      await server.done;
      await b.close();
    });

    it('the peer going away rejects every pending request with ERR_IPCKIT_PEER_GONE', async () => {
      const [a, b] = await make();
      // A "server" that takes the requests and never answers, then goes.
      const r = createRequester(a);
      const pending = [r.request(1), r.request(2), r.request(3)];
      await b.receive();
      await b.close();
      for (const p of pending) await within(rejectsWith(p, 'ERR_IPCKIT_PEER_GONE'), 10_000);
      await rejectsWith(r.request(4), 'ERR_IPCKIT_PEER_GONE');
      await a.close().catch(() => {}); // a socket or pipe reports the bytes the peer never read
    });

    it('an envelope of the wrong shape is ERR_IPCKIT_BAD_FRAME for the requester; the server answers it with an error', async () => {
      const [a, b] = await make();
      const r = createRequester(a);
      const p = r.request('x');
      await b.receive();
      await b.send({ not: 'an envelope' });
      await rejectsWith(p, 'ERR_IPCKIT_BAD_FRAME');
      // Server side: a malformed request with an id gets an error back.
      const [c, d] = await make();
      const server = serve(d, (m) => m);
      await c.send(['q', 7]); // no body: still answered (body undefined)
      await c.send(['zz', 8, 1]);
      const answers = [await c.receive(), await c.receive()] as any[];
      assert.equal(answers[0][0], 'r');
      assert.deepEqual(answers[1].slice(0, 2), ['e', 8]);
      assert.match(answers[1][2].message, /not a request\/reply envelope/);
      await Promise.all([a.close(), b.close(), c.close()]);
      await server.done;
      await d.close();
    });

    it('serve() bounds the handlers running at once by concurrency', async () => {
      const [a, b] = await make();
      let running = 0;
      let most = 0;
      const server = serve(
        b,
        async () => {
          most = Math.max(most, ++running);
          await sleep(5);
          running--;
          return most;
        },
        { concurrency: 3 },
      );
      const r = createRequester(a);
      await Promise.all(Array.from({ length: 30 }, () => r.request(0)));
      assert.equal(most, 3);
      await server.close();
      await Promise.all([a.close(), b.close()]);
    });
  });
}

describe('request/reply: arguments', () => {
  it('bad arguments throw at once', async () => {
    throwsWith(() => createRequester({} as never), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => serve({} as never, () => 1), 'ERR_IPCKIT_INVALID_ARGUMENT');
    const [a, b] = socketPair('unix', { codec: 'json' });
    throwsWith(() => serve(b, 1 as never), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => serve(b, () => 1, { concurrency: 0 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    const r = createRequester(a);
    throwsWith(() => r.request(1, { timeout: -1 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => r.request(1n), 'ERR_IPCKIT_INVALID_ARGUMENT'); // JSON cannot carry a BigInt
    assert.equal(r.pending, 0);
    r.close();
    await rejectsWith(r.request(1), 'ERR_IPCKIT_CLOSED');
    await Promise.all([a.close(), b.close()]);
  });
});
