/**
 * `ipckit nats send|recv` and `ipckit workqueue put|take` against a real nats-server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runCli, within } from '../helpers.js';
import { startNatsServer, type TestNatsServer } from '../nats-server.js';

let server: TestNatsServer;
before(async () => {
  server = await startNatsServer();
});
after(async () => {
  await server?.stop();
});

/** Starts `ipckit nats recv`, resolving once it is subscribed (a waiting note is not needed: we poll with a probe). */
async function subscribed(r: ReturnType<typeof runCli>, subject: string): Promise<void> {
  // Publish probes until one comes out: then the subscription is live.
  const deadline = Date.now() + 10_000;
  let out = '';
  r.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  while (!out.includes('probe') && Date.now() < deadline) {
    await runCli(['nats', 'send', server.url, subject, 'probe']).done;
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.ok(out.includes('probe'), 'the receiver never got a probe');
}

describe('ipckit nats', () => {
  it('send and recv: messages from the arguments and from stdin, --json, exits once --count arrived', async () => {
    const subject = `cli.${process.pid}.a`;
    const recv = runCli(['nats', 'recv', server.url, subject, '--count', '5', '--timeout', '15000', '--json', '--quiet']);
    await subscribed(recv, subject);
    const send = await runCli(['nats', 'send', server.url, subject, 'one', 'two']).done;
    assert.equal(send.code, 0, send.stderr);
    const piped = await runCli(['nats', 'send', server.url, subject], { input: 'three\nfour\n' }).done;
    assert.equal(piped.code, 0, piped.stderr);
    const r = await within(recv.done, 15_000);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { data: string; subject: string });
    assert.deepEqual(lines.map((l) => l.data).filter((d) => d !== 'probe'), ['one', 'two', 'three', 'four']);
    assert.equal(lines[0]!.subject, subject);
  });

  it('recv --timeout with nothing published exits 124; a server that is not there exits 1 with ERR_IPCKIT_NOT_FOUND', async () => {
    const t = await runCli(['nats', 'recv', server.url, 'cli.nothing', '--count', '1', '--timeout', '200', '--quiet']).done;
    assert.equal(t.code, 124, t.stderr);
    const gone = await runCli(['nats', 'send', 'nats://127.0.0.1:1', 'x', 'hi']).done;
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /ERR_IPCKIT_NOT_FOUND/);
    const usage = await runCli(['nats', 'send', 'http://x', 'x', 'hi']).done;
    assert.equal(usage.code, 1);
    assert.match(usage.stderr, /ERR_IPCKIT_INVALID_ARGUMENT/);
  });

  it('credentials flags: --user and --password against a server that requires them', async () => {
    const secured = await startNatsServer({ jetstream: false, user: 'bob', password: 'pw' });
    try {
      const denied = await runCli(['nats', 'send', secured.url, 'x', 'hi', '--user', 'bob', '--password', 'nope']).done;
      assert.equal(denied.code, 1);
      assert.match(denied.stderr, /ERR_IPCKIT_PERMISSION/);
      const ok = await runCli(['nats', 'send', secured.url, 'x', 'hi', '--user', 'bob', '--password', 'pw']).done;
      assert.equal(ok.code, 0, ok.stderr);
    } finally {
      await secured.stop();
    }
  });
});

describe('ipckit workqueue (nats://)', () => {
  it('put then take: each job printed once and acknowledged; --drain takes what is there and exits', async () => {
    const queue = `${server.url}/cli-${process.pid}`;
    const put = await runCli(['workqueue', 'put', queue, 'a', 'b', 'c', '--json']).done;
    assert.equal(put.code, 0, put.stderr);
    const ids = put.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { id: number }).id);
    assert.deepEqual(ids, [1, 2, 3]);
    const take = await runCli(['workqueue', 'take', queue, '--count', '2', '--timeout', '10000', '--json']).done;
    assert.equal(take.code, 0, take.stderr);
    assert.deepEqual(take.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { data: string; id: number; deliveries: number })).map((j) => [j.data, j.id, j.deliveries]), [['a', 1, 1], ['b', 2, 1]]);
    const drain = await runCli(['wq', 'take', queue, '--drain']).done;
    assert.equal(drain.code, 0, drain.stderr);
    assert.equal(drain.stdout, 'c\n');
    const empty = await runCli(['wq', 'take', queue, '--count', '1', '--timeout', '300', '--quiet']).done;
    assert.equal(empty.code, 124, 'nothing acknowledged is delivered again');
    const info = await runCli(['wq', 'info', queue, '--json']).done;
    assert.equal(info.code, 0, info.stderr);
    assert.deepEqual((({ ready, inFlight, put: p, done }) => ({ ready, inFlight, put: p, done }))(JSON.parse(info.stdout) as Record<string, number>), { ready: 0, inFlight: 0, put: 3, done: 3 });
  });
});
