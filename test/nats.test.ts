/**
 * NATS channels (src/mechanisms/nats/channel.ts) against real nats-server processes, each
 * test with its own server on a free loopback port (test/nats-server.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectNats } from '../src/mechanisms/nats/connection.js';
import { natsReceiver, natsSender, openNatsReceiver, openNatsRequester, openNatsResponder, openNatsSender, type NatsReceiver } from '../src/mechanisms/nats/channel.js';
import { isIpcError } from '../src/core/errors.js';
import { channelConformance } from './conformance/channel.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { rejectsWith, repoRoot, run, scratchPath, sleep, throwsWith, within } from './helpers.js';
import { makeCertificates, startNatsServer, type TestNatsServer } from './nats-server.js';

let shared: TestNatsServer;
before(async () => {
  shared = await startNatsServer({ jetstream: false });
});
after(async () => {
  await shared?.stop();
});

let subjectCounter = 0;
const newSubject = (tag = 's'): string => `ipckit.test.${process.pid}.${tag}.${++subjectCounter}`;

/** A sender/receiver pair on a fresh subject; the receiver is subscribed before it returns. */
channelConformance('nats', {
  senderCloseEndsReceiver: false,
  backpressure: false,
  maxMessage: 512 * 1024,
  async make(o) {
    // max_payload is the server's: a pair that asks for a limit gets its own server.
    const server = o.maxMessageBytes === undefined ? shared : await startNatsServer({ jetstream: false, maxPayload: o.maxMessageBytes });
    const subject = newSubject('conf');
    const receiver = openNatsReceiver(server.url, subject, { codec: o.receiverCodec });
    const sender = openNatsSender(server.url, subject, { codec: o.senderCodec });
    await receiver.ready();
    await sender.client.ready();
    return {
      sender,
      receiver,
      cleanup: async () => {
        await sender.close().catch(() => {});
        await receiver.close().catch(() => {});
        if (server !== shared) await server.stop();
      },
    };
  },
});

describe('nats: arguments', () => {
  it('bad addresses, subjects and options throw synchronously', () => {
    throwsWith(() => openNatsSender('http://127.0.0.1:4222', 'x'), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => openNatsSender('nats://127.0.0.1:99999', 'x'), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => openNatsSender('nats://127.0.0.1:4222', 'a.*'), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => openNatsSender('nats://127.0.0.1:4222', 'a..b'), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => openNatsReceiver('nats://127.0.0.1:4222', 'a b'), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => openNatsReceiver('nats://127.0.0.1:4222', 'a', { maxPending: 0 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => connectNats('nats://127.0.0.1:4222', { password: 'x' }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => connectNats('nats://127.0.0.1:4222', { user: 'u', password: 'p', token: 't' }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => connectNats('nats://127.0.0.1:4222', { tls: { certFile: '/x' } }), 'ERR_IPCKIT_INVALID_ARGUMENT');
  });

  it('a message the codec cannot encode, or a bad timeout, throws before anything is sent', async () => {
    const subject = newSubject();
    const rx = openNatsReceiver(shared.url, subject);
    const tx = openNatsSender(shared.url, subject, { codec: 'utf8' });
    try {
      await rx.ready();
      throwsWith(() => void tx.send(42 as unknown as string), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => void tx.send('x', { timeout: -1 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => void rx.receive({ timeout: Number.NaN }), 'ERR_IPCKIT_INVALID_ARGUMENT');
      await tx.send('ok');
      assert.equal(Buffer.from(await within(rx.receive(), 5000)).toString(), 'ok');
    } finally {
      await tx.close();
      await rx.close();
    }
  });

  it('a buffer reused after send resolved does not change what was sent', async () => {
    const subject = newSubject();
    const rx = openNatsReceiver(shared.url, subject);
    const tx = openNatsSender(shared.url, subject);
    try {
      await rx.ready();
      await tx.client.ready();
      const buf = new Uint8Array(4);
      // trySend in one synchronous loop: the client writes on a later microtask.
      for (let i = 0; i < 100; i++) {
        buf.fill(i);
        assert.equal(tx.trySend(buf), true);
      }
      for (let i = 0; i < 100; i++) assert.deepEqual([...(await within(rx.receive(), 5000))], [i, i, i, i]);
    } finally {
      await tx.close();
      await rx.close();
    }
  });

  it('several servers separated by commas: the client uses one that answers', async () => {
    const dead = `127.0.0.1:1`;
    const subject = newSubject();
    const rx = openNatsReceiver(`nats://${dead},nats://127.0.0.1:${shared.port}`, subject, { codec: 'utf8' });
    const tx = openNatsSender(`nats://127.0.0.1:${shared.port},${dead}`, subject, { codec: 'utf8' });
    try {
      await within(rx.ready(), 10_000, 'connecting with a dead server first');
      await tx.send('through the live one');
      assert.equal(await within(rx.receive(), 5000), 'through the live one');
    } finally {
      await tx.close();
      await rx.close();
    }
  });
});

describe('nats: connections and errors', () => {
  it('no server at the address is ERR_IPCKIT_NOT_FOUND, from ready() and from each call', async () => {
    const tx = openNatsSender('nats://127.0.0.1:1', 'x');
    await rejectsWith(tx.client.ready(), 'ERR_IPCKIT_NOT_FOUND');
    await rejectsWith(tx.send(new Uint8Array(1)), 'ERR_IPCKIT_NOT_FOUND');
    await tx.close();
  });

  it('user and password: wrong ones are ERR_IPCKIT_PERMISSION, right ones work (options or URL)', async () => {
    const server = await startNatsServer({ jetstream: false, user: 'alice', password: 's3cret' });
    try {
      const bad = openNatsSender(server.url, 'x', { user: 'alice', password: 'wrong' });
      await rejectsWith(bad.client.ready(), 'ERR_IPCKIT_PERMISSION');
      await bad.close();
      const none = openNatsSender(server.url, 'x');
      await rejectsWith(none.client.ready(), 'ERR_IPCKIT_PERMISSION');
      await none.close();
      const subject = newSubject();
      const rx = openNatsReceiver(server.url, subject, { user: 'alice', password: 's3cret', codec: 'utf8' });
      const tx = openNatsSender(`nats://alice:s3cret@127.0.0.1:${server.port}`, subject, { codec: 'utf8' });
      await rx.ready();
      await tx.send('authenticated');
      assert.equal(await within(rx.receive(), 5000), 'authenticated');
      await tx.close();
      await rx.close();
    } finally {
      await server.stop();
    }
  });

  it('a token, and an NKEY seed from a file: the right one gets in, another is ERR_IPCKIT_PERMISSION', async () => {
    const { nkeys } = await import('@nats-io/transport-node');
    const user = nkeys.createUser();
    const seedFile = scratchPath('user.nk');
    writeFileSync(seedFile, `${new TextDecoder().decode(user.getSeed())}\n`, { mode: 0o600 });
    const withNkey = await startNatsServer({ jetstream: false, nkeyUser: user.getPublicKey() });
    const withToken = await startNatsServer({ jetstream: false, token: 't0ken' });
    try {
      const other = openNatsSender(withNkey.url, 'x', { nkeySeed: new TextDecoder().decode(nkeys.createUser().getSeed()) });
      await rejectsWith(other.client.ready(), 'ERR_IPCKIT_PERMISSION');
      await other.close();
      const ok = openNatsSender(withNkey.url, 'x', { nkeySeedFile: seedFile });
      await within(ok.client.ready(), 10_000);
      await ok.close();
      const badToken = openNatsSender(withToken.url, 'x', { token: 'nope' });
      await rejectsWith(badToken.client.ready(), 'ERR_IPCKIT_PERMISSION');
      await badToken.close();
      const goodToken = openNatsSender(withToken.url, 'x', { token: 't0ken' });
      await within(goodToken.client.ready(), 10_000);
      await goodToken.close();
    } finally {
      await withNkey.stop();
      await withToken.stop();
    }
  });

  it('TLS with a certificate made by openssl: the CA file is needed, and a client certificate when the server verifies', async () => {
    const certs = makeCertificates();
    const server = await startNatsServer({ jetstream: false, tls: { certFile: certs.certFile, keyFile: certs.keyFile, caFile: certs.caFile, verify: true } });
    try {
      const untrusted = openNatsSender(server.url, 'x', { connectTimeout: 3000 });
      await rejectsWith(untrusted.client.ready(), 'ERR_IPCKIT_PERMISSION');
      await untrusted.close();
      const noClientCert = openNatsSender(server.url, 'x', { tls: { caFile: certs.caFile }, connectTimeout: 3000, reconnect: false });
      const e = await noClientCert.client.ready().then(
        () => undefined,
        (err: unknown) => err,
      );
      assert.ok(isIpcError(e), `a server that verifies clients refuses one without a certificate, got ${String(e)}`);
      await noClientCert.close().catch(() => {});
      const tls = { caFile: certs.caFile, certFile: certs.clientCertFile, keyFile: certs.clientKeyFile };
      const subject = newSubject();
      const rx = openNatsReceiver(server.url, subject, { tls, codec: 'utf8' });
      const tx = openNatsSender(server.url, subject, { tls, codec: 'utf8' });
      await rx.ready();
      await tx.send('over TLS');
      assert.equal(await within(rx.receive(), 5000), 'over TLS');
      await tx.close();
      await rx.close();
    } finally {
      await server.stop();
    }
  });

  it('a connection closed for good rejects pending calls with ERR_IPCKIT_PEER_GONE', async () => {
    const server = await startNatsServer({ jetstream: false });
    const subject = newSubject();
    const rx = openNatsReceiver(server.url, subject, { reconnect: false });
    const tx = openNatsSender(server.url, subject, { reconnect: false });
    try {
      await rx.ready();
      await tx.client.ready();
      const pending = rx.receive();
      const gone = rejectsWith(pending, 'ERR_IPCKIT_PEER_GONE');
      await server.kill();
      await within(gone, 10_000, 'the pending receive');
      await within(rejectsWith(tx.send(new Uint8Array(1)), 'ERR_IPCKIT_PEER_GONE'), 10_000, 'a send after the loss');
    } finally {
      await tx.close().catch(() => {});
      await rx.close().catch(() => {});
    }
  });

  it('the server restarting in the middle of traffic: sends wait while it is down, and traffic resumes in order', async () => {
    const server = await startNatsServer({ jetstream: false });
    const subject = newSubject();
    const opts = { reconnectWait: 50, reconnectMaxWait: 200, maxPendingBytes: 64 * 1024, codec: 'json' as const };
    const rx = openNatsReceiver(server.url, subject, opts);
    const tx = openNatsSender(server.url, subject, opts);
    try {
      await rx.ready();
      await tx.client.ready();
      const received: number[] = [];
      const receiving = (async () => {
        for await (const m of rx as NatsReceiver<unknown>) {
          const seq = (m as { seq: number }).seq;
          received.push(seq);
          if (seq === -1) return;
        }
      })();
      for (let i = 0; i < 200; i++) await tx.send({ seq: i, pad: 'x'.repeat(100) });
      await tx.flush();
      await server.stop();
      await within(
        (async () => {
          while (tx.client.connected) await sleep(10);
        })(),
        10_000,
        'the client noticing the server is gone',
      );
      // Down: nothing is handed to the client (it would drop it at its next reconnect
      // attempt); send waits for the connection.
      assert.equal(tx.trySend({ seq: 999 }), false);
      const waiting = tx.send({ seq: 5000, pad: '' });
      await rejectsWith(tx.send({ seq: 5001 }, { timeout: 50 }), 'ERR_IPCKIT_TIMEOUT');
      await server.start();
      await within(waiting, 15_000, 'the send that waited for the server');
      await within(rx.ready(), 15_000);
      // After the reconnect, new messages arrive in order, none twice.
      await within(
        (async () => {
          for (let i = 0; ; i++) {
            await tx.send({ seq: 10_000 + i });
            await tx.flush();
            if (received.some((s) => s >= 10_000)) break;
            await sleep(20);
          }
        })(),
        15_000,
        'traffic after the restart',
      );
      await tx.send({ seq: -1 });
      await within(receiving, 10_000);
      const before = received.filter((s) => s >= 0 && s < 200);
      assert.deepEqual(before, Array.from({ length: 200 }, (_, i) => i), 'everything sent before the stop arrived, in order');
      const nonNegative = received.filter((s) => s >= 0);
      assert.deepEqual(nonNegative, [...nonNegative].sort((a, b) => a - b), 'order per publisher holds across the restart');
      assert.equal(new Set(received).size, received.length, 'no message twice');
      assert.ok(tx.client.stats().reconnects >= 1);
    } finally {
      await tx.close().catch(() => {});
      await rx.close().catch(() => {});
      await server.stop();
    }
  });
});

describe('nats: slow receivers and queue groups', () => {
  it('a publisher that outruns a slow receiver: the drop is reported as ERR_IPCKIT_SLOW_CONSUMER where it happened, and nothing else is lost', async () => {
    const subject = newSubject('slow');
    const rx = openNatsReceiver(shared.url, subject, { codec: 'json', maxPending: 100 });
    const tx = openNatsSender(shared.url, subject, { codec: 'json' });
    try {
      await rx.ready();
      const n = 1000;
      for (let i = 0; i < n; i++) await tx.send({ seq: i });
      await tx.flush();
      await sleep(100); // every message is in the receiver's process now
      const got: number[] = [];
      let dropped = 0;
      let gapAt = -1;
      for (;;) {
        try {
          const m = (await rx.receive({ timeout: 300 })) as { seq: number };
          got.push(m.seq);
          if (m.seq === n - 1) break;
        } catch (e) {
          if (isIpcError(e, 'ERR_IPCKIT_TIMEOUT')) break;
          assert.ok(isIpcError(e, 'ERR_IPCKIT_SLOW_CONSUMER'), `expected SLOW_CONSUMER, got ${String(e)}`);
          dropped += (e.details as { dropped: number }).dropped;
          gapAt = got.length;
        }
      }
      assert.equal(got.length, 100, 'the receiver held maxPending messages');
      assert.equal(gapAt, 100, 'the gap is reported after the messages held before it');
      assert.equal(got.length + dropped, n, 'every message was received or counted as dropped');
      assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => i));
      assert.equal(rx.stats().dropped, n - 100);
      // The receiver goes on after the report.
      await tx.send({ seq: 'after' });
      assert.deepEqual(await within(rx.receive(), 5000), { seq: 'after' });
    } finally {
      await tx.close();
      await rx.close();
    }
  });

  it('a queue group of three: every message goes to exactly one of them', async () => {
    const subject = newSubject('group');
    const client = connectNats(shared.url);
    const receivers = [0, 1, 2].map(() => natsReceiver(client, subject, { queue: 'workers', codec: 'json' }));
    const tx = natsSender(connectNats(shared.url), subject, { codec: 'json' });
    try {
      await Promise.all(receivers.map((r) => r.ready()));
      const n = 3000;
      const seen = receivers.map(() => [] as number[]);
      const receiving = receivers.map(async (r, k) => {
        for (;;) {
          const m = (await r.receive()) as { seq: number };
          if (m.seq < 0) return;
          seen[k]!.push(m.seq);
        }
      });
      for (let i = 0; i < n; i++) await tx.send({ seq: i });
      await tx.flush();
      await within(
        (async () => {
          while (seen.reduce((a, s) => a + s.length, 0) < n) await sleep(10);
        })(),
        10_000,
        'every message received',
      );
      const all = seen.flat();
      assert.equal(all.length, n);
      assert.equal(new Set(all).size, n, 'no message went to two receivers');
      for (const s of seen) assert.ok(s.length > 0, 'each receiver of the group got a share');
      for (const r of receivers) void r.close();
      await Promise.allSettled(receiving);
    } finally {
      await tx.client.close();
      await client.close();
    }
  });
});

describe('nats: request/reply', () => {
  it('a requester is a Channel: send a request, receive its answer; request() waits for its own', async () => {
    const subject = newSubject('svc');
    const responder = openNatsResponder(shared.url, subject, { codec: 'json', queue: 'svc' });
    const requester = openNatsRequester(shared.url, subject, { codec: 'json' });
    try {
      await responder.ready();
      await requester.ready();
      const serving = (async () => {
        for await (const m of responder) {
          const { n } = m as { n: number };
          await responder.send({ n, doubled: n * 2 });
        }
      })();
      for (let i = 0; i < 5; i++) await requester.send({ n: i });
      for (let i = 0; i < 5; i++) assert.deepEqual(await within(requester.receive(), 5000), { n: i, doubled: i * 2 });
      const answers = await Promise.all([10, 11, 12].map((n) => requester.request({ n }, { timeout: 5000 })));
      assert.deepEqual(answers, [10, 11, 12].map((n) => ({ n, doubled: n * 2 })));
      await responder.close();
      await serving;
    } finally {
      await requester.close();
      await responder.close();
    }
  });

  it('a request nobody answers: ERR_IPCKIT_NOT_FOUND with no responder, ERR_IPCKIT_TIMEOUT with a silent one', async () => {
    const subject = newSubject('nobody');
    const requester = openNatsRequester(shared.url, subject, { codec: 'utf8' });
    const silent = openNatsReceiver(shared.url, `${subject}.silent`);
    const silentRequester = openNatsRequester(shared.url, `${subject}.silent`, { codec: 'utf8' });
    try {
      await requester.ready();
      await rejectsWith(requester.request('anyone?', { timeout: 5000 }), 'ERR_IPCKIT_NOT_FOUND');
      await requester.send('anyone there?');
      await rejectsWith(within(requester.receive(), 5000), 'ERR_IPCKIT_NOT_FOUND');
      await silent.ready();
      await silentRequester.ready();
      await rejectsWith(silentRequester.request('hello', { timeout: 100 }), 'ERR_IPCKIT_TIMEOUT');
      const ac = new AbortController();
      const aborted = silentRequester.request('hello', { signal: ac.signal });
      ac.abort(new Error('enough'));
      await rejectsWith(aborted, 'ERR_IPCKIT_ABORTED');
    } finally {
      await requester.close();
      await silentRequester.close();
      await silent.close();
    }
  });

  it('receiveRequest answers out of order; a responder with nothing to answer refuses send synchronously', async () => {
    const subject = newSubject('ooo');
    const responder = openNatsResponder(shared.url, subject, { codec: 'utf8' });
    const requester = openNatsRequester(shared.url, subject, { codec: 'utf8' });
    try {
      await responder.ready();
      await requester.ready();
      throwsWith(() => void responder.send('nothing asked'), 'ERR_IPCKIT_INVALID_ARGUMENT');
      const a = requester.request('a', { timeout: 5000 });
      const b = requester.request('b', { timeout: 5000 });
      const ra = await responder.receiveRequest();
      const rb = await responder.receiveRequest();
      await rb.respond(`${rb.data}!`);
      await ra.respond(`${ra.data}!`);
      assert.deepEqual(await Promise.all([a, b]), ['a!', 'b!']);
    } finally {
      await requester.close();
      await responder.close();
    }
  });
});

describe('nats: the client is loaded only when used', () => {
  it('importing ipckit, or running a command that is not NATS, loads no @nats-io module; connecting does', async () => {
    const hook = `${scratchPath('hook')}.mjs`;
    writeFileSync(hook, 'export async function resolve(s, c, next) { if (s.includes("@nats-io")) process.stderr.write(`LOADED ${s}\\n`); return next(s, c); }\n');
    const register = `data:text/javascript,import{register}from"node:module";register(${JSON.stringify(`file://${hook}`)})`;
    const index = join(repoRoot, 'dist', 'src', 'index.js');
    const cli = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
    const imported = await run(process.execPath, ['--import', register, '-e', `await import(${JSON.stringify(index)})`]).done;
    assert.equal(imported.code, 0, imported.stderr);
    assert.doesNotMatch(imported.stderr, /LOADED/);
    const help = await run(process.execPath, ['--import', register, cli, 'nats', '--help']).done;
    assert.equal(help.code, 0, help.stderr);
    assert.doesNotMatch(help.stderr, /LOADED/);
    const used = await run(process.execPath, ['--import', register, cli, 'nats', 'send', shared.url, 'loaded.check', 'x']).done;
    assert.equal(used.code, 0, used.stderr);
    assert.match(used.stderr, /LOADED @nats-io\/transport-node/);
  });
});
