/**
 * Interop with a NATS client we did not write: a few lines of Python speaking NATS's text
 * protocol over a plain socket (INFO, CONNECT, PUB, SUB, MSG, PING/PONG), both directions,
 * through a real nats-server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openNatsReceiver, openNatsSender } from '../../src/mechanisms/nats/channel.js';
import { runPython, within } from '../helpers.js';
import { startNatsServer, type TestNatsServer } from '../nats-server.js';

/** argv: port, mode ('pub' SUBJECT MESSAGE... | 'sub' SUBJECT COUNT). */
const PEER = String.raw`
import socket, sys
port, mode, subject = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(('127.0.0.1', port))
f = s.makefile('rb')
info = f.readline()
assert info.startswith(b'INFO '), info
s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"lang":"python-raw","version":"0"}\r\n')
def ping():
    s.sendall(b'PING\r\n')
    while True:
        line = f.readline()
        if line.startswith(b'PONG'):
            return
        assert not line.startswith(b'-ERR'), line
if mode == 'pub':
    for m in sys.argv[4:]:
        data = m.encode()
        s.sendall(b'PUB %s %d\r\n%s\r\n' % (subject.encode(), len(data), data))
    ping()
else:
    count = int(sys.argv[4])
    s.sendall(b'SUB %s 1\r\n' % subject.encode())
    ping()
    print('subscribed', flush=True)
    got = 0
    while got < count:
        line = f.readline()
        if line.startswith(b'PING'):
            s.sendall(b'PONG\r\n')
            continue
        if not line.startswith(b'MSG '):
            continue
        parts = line.split()
        size = int(parts[-1])
        payload = f.read(size + 2)[:size]
        print(parts[1].decode(), payload.decode(), flush=True)
        got += 1
s.close()
`;

let server: TestNatsServer;
before(async () => {
  server = await startNatsServer({ jetstream: false });
});
after(async () => {
  await server?.stop();
});

describe('nats interop: a raw-protocol Python peer', () => {
  it('Python publishes (PUB), ipckit receives', async () => {
    const rx = openNatsReceiver(server.url, 'interop.from.python', { codec: 'utf8' });
    try {
      await rx.ready();
      const r = runPython(PEER, [String(server.port), 'pub', 'interop.from.python', 'one', 'two', 'héllo'], { timeoutMs: 10_000 });
      const got = [await within(rx.receive(), 10_000), await within(rx.receive(), 10_000), await within(rx.receive(), 10_000)];
      assert.deepEqual(got, ['one', 'two', 'héllo']);
      const done = await r.done;
      assert.equal(done.code, 0, done.stderr);
    } finally {
      await rx.close();
    }
  });

  it('ipckit publishes, Python receives (SUB, MSG)', async () => {
    const r = runPython(PEER, [String(server.port), 'sub', 'interop.to.python', '3'], { timeoutMs: 10_000 });
    await within(
      new Promise<void>((resolve) => {
        r.child.stdout!.on('data', (d: Buffer) => {
          if (d.toString().includes('subscribed')) resolve();
        });
      }),
      10_000,
      'the Python subscriber',
    );
    const tx = openNatsSender(server.url, 'interop.to.python', { codec: 'utf8' });
    try {
      for (const m of ['a', 'bb', 'ccc']) await tx.send(m);
      await tx.flush();
      const done = await r.done;
      assert.equal(done.code, 0, done.stderr);
      assert.deepEqual(done.stdout.trim().split('\n').slice(1), ['interop.to.python a', 'interop.to.python bb', 'interop.to.python ccc']);
    } finally {
      await tx.close();
    }
  });
});
