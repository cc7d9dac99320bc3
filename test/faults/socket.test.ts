/** Bad input, crashes and restarts on sockets: each ends with its error code, none hangs. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connect, listen, socketPair, type SocketChannel } from '../../src/mechanisms/socket/socket.js';
import { readPackets } from '../../src/mechanisms/socket/packet.js';
import { native } from '../../src/os/native.js';
import { readdirSync, readlinkSync } from 'node:fs';
import { AS_NOBODY, checkFdLeaks, isRoot, rejectsWith, run, runFixture, runPython, scratchDir, scratchPath, sleep, uniqueName, within } from '../helpers.js';

checkFdLeaks();
scratchDir();

/**
 * A python client that connects to `path`, sends `hexBytes` (then half-closes if `shut`),
 * reports whether we disconnected it, then sleeps `thenSleep` s (or until killed).
 */
function rawClient(path: string, hexBytes: string, thenSleep = 30, shut = false): ReturnType<typeof runPython> {
  return runPython(
    `import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(bytes.fromhex(sys.argv[2]))
if sys.argv[4] == 'shut': s.shutdown(socket.SHUT_WR)
print('sent', flush=True)
try:
    got = s.recv(1)
    print('eof' if got == b'' else 'data', flush=True)
except ConnectionResetError:
    print('reset', flush=True)
time.sleep(float(sys.argv[3]))`,
    [path, hexBytes, String(thenSleep), shut ? 'shut' : 'keep'],
  );
}

async function goodRoundTrip(address: string, server: { accept(): Promise<SocketChannel<string>> }, codec: 'utf8' | 'json' = 'utf8'): Promise<void> {
  const accepting = server.accept();
  const c = await connect(address, { codec });
  const s = await within(accepting, 5000);
  await c.send('still fine?');
  assert.equal(await within(s.receive(), 5000), 'still fine?');
  await s.send('yes');
  assert.equal(await within(c.receive(), 5000), 'yes');
  await c.close();
  await s.close();
}

describe('hostile clients', () => {
  it('a frame announcing 2^31 bytes, then nothing: FRAME_TOO_LARGE at once, no allocation; a good client still round-trips', async () => {
    const server = await listen(`unix:${scratchPath('huge')}`, { codec: 'utf8' });
    const accepting = server.accept();
    // Buffers, not RSS: an untouched 2 GiB allocation would not show in RSS, and RSS moves
    // with whatever else the process does (heap growth, the runner, the child's pipes).
    const buffersBefore = process.memoryUsage().arrayBuffers;
    const py = rawClient(server.path!, '00000080', 0); // 0x80000000 little-endian
    const s = await within(accepting, 10_000);
    const e = await rejectsWith(within(s.receive(), 5000), 'ERR_IPCKIT_FRAME_TOO_LARGE');
    assert.equal(e.details?.length, 2 ** 31);
    const grew = process.memoryUsage().arrayBuffers - buffersBefore;
    assert.ok(grew < 64 * 1024 * 1024, `no buffer was allocated for the announced frame (buffers grew by ${grew} bytes)`);
    await s.close(); // the server disconnects it
    const r = await py.done;
    assert.match(r.stdout, /sent\n(eof|reset)/);
    await goodRoundTrip(server.address, server as never);
    await server.close();
  });

  it('garbage bytes: FRAME_TOO_LARGE or BAD_FRAME, never a message; the server goes on', async () => {
    const server = await listen(`unix:${scratchPath('garbage')}`, { codec: 'json', maxMessageBytes: 4096 });
    // A length past the limit, random bytes, a payload that is not JSON, a stream that ends inside a frame.
    for (const [hex, shut] of [['ffffffff0102', false], ['deadbeefdeadbeef', false], ['050000007b6e6f7421', false], ['03000000', true]] as const) {
      const accepting = server.accept();
      const py = rawClient(server.path!, hex, 0, shut);
      const s = await within(accepting, 10_000);
      const err = await within(s.receive().then(() => 'a message?!', (x: { code?: string }) => x.code), 5000);
      assert.ok(['ERR_IPCKIT_FRAME_TOO_LARGE', 'ERR_IPCKIT_BAD_FRAME', 'ERR_IPCKIT_PEER_GONE'].includes(err as string), `${hex}: ${err}`);
      await s.close();
      await py.done;
    }
    await goodRoundTrip(server.address, server as never, 'json');
    await server.close();
  });

  it('a client piling descriptors into one unfinished frame cannot exhaust ours: a bounded few held, at most 16 given', async () => {
    const server = await listen(`unix:${scratchPath('fdflood')}`, { handles: true });
    const accepting = server.accept();
    // A header announcing 1 MiB, then 2000 one-byte writes each carrying 8 descriptors
    // (a legitimate frame carries its descriptors on one write); the rest of the frame
    // only when told.
    const py = runPython(
      `import os, socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(struct.pack('<I', 1 << 20))
fd = os.open('/dev/null', os.O_RDONLY)
n = int(sys.argv[2])
for i in range(n): socket.send_fds(s, [b'x'], [fd] * 8)
print('sent', flush=True)
sys.stdin.readline()
s.sendall(b'y' * ((1 << 20) - n))
s.recv(1)`,
      [server.path!, '2000'],
    );
    let out = '';
    const sent = new Promise<void>((r) => py.child.stdout!.on('data', (d: Buffer) => (out += d.toString()).includes('sent') && r()));
    const s = await within(accepting, 10_000);
    const base = readdirSync('/proc/self/fd').length;
    let peak = 0;
    const sampler = setInterval(() => void (peak = Math.max(peak, readdirSync('/proc/self/fd').length - base)), 5);
    try {
      const receiving = s.receiveWithHandles();
      await within(sent, 20_000, 'the flood of descriptors');
      py.child.stdin!.write('go\n');
      const m = await within(receiving, 20_000, 'the frame');
      assert.equal(m.message.length, 1 << 20);
      for (const h of m.handles) h.close();
      assert.ok(m.handles.length <= 16, `one message came with ${m.handles.length} descriptors`);
    } finally {
      clearInterval(sampler);
    }
    assert.ok(peak < 2000, `${peak} descriptors were held at once`);
    await s.close();
    await py.done;
    await server.close();
  });

  it('seqpacket messages each carrying more than 16 descriptors: LIMIT for each, all closed, and the next message is fine', async () => {
    // Our per-message control buffer also has room for credentials, so without them the
    // kernel fits up to 24 descriptors in it: more than we promise to hand over.
    const server = await listen(`unix-seqpacket:${scratchPath('fdmany')}`, { codec: 'utf8' });
    const accepting = server.accept();
    const py = runPython(
      `import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.connect(sys.argv[1])
fd = os.open('/dev/null', os.O_RDONLY)
for i in range(64): socket.send_fds(s, [b'many%d' % i], [fd] * 24)
socket.send_fds(s, [b'one'], [fd])
print('sent', flush=True)
sys.stdin.readline()`,
      [server.path!],
    );
    let out = '';
    const sent = new Promise<void>((r) => py.child.stdout!.on('data', (d: Buffer) => (out += d.toString()).includes('sent') && r()));
    const s = await within(accepting, 10_000);
    try {
      await within(sent, 10_000, 'the messages');
      const before = readdirSync('/proc/self/fd').length;
      for (let i = 0; i < 64; i++) {
        const e = await rejectsWith(within(s.receiveWithHandles(), 5000), 'ERR_IPCKIT_LIMIT');
        assert.match(e.message, /more than 16 descriptors/);
      }
      const m = await within(s.receiveWithHandles(), 5000);
      assert.equal(m.message, 'one');
      assert.equal(m.handles.length, 1);
      for (const h of m.handles) h.close();
      assert.ok(readdirSync('/proc/self/fd').length <= before, 'every refused descriptor was closed');
    } finally {
      py.child.stdin!.end('\n');
      await py.done;
      await s.close();
      await server.close();
    }
  });

  it('the native receive hands over at most 16 descriptors per message even without credentials sharing its buffer', async () => {
    // Every ipckit packet socket sets SO_PASSCRED, which happens to leave room for exactly 16;
    // the native layer must not depend on that. A raw pair without it, a python sender.
    const C = native.socketConstants;
    const [a, b] = native.socketpair(C.SOCK_SEQPACKET);
    try {
      const py = runPython(
        `import os, socket
s = socket.socket(fileno=3)
fd = os.open('/dev/null', os.O_RDONLY)
for i in range(8): socket.send_fds(s, [b'm'], [fd] * 24)`,
        [],
        { stdio: ['pipe', 'pipe', 'pipe', b] },
      );
      assert.equal((await py.done).code, 0);
      const before = readdirSync('/proc/self/fd').length;
      const batch = readPackets(a, 1024, false, false);
      assert.equal(batch.items.length, 8);
      for (const item of batch.items) {
        assert.equal(item.error?.code, 'ERR_IPCKIT_LIMIT');
        assert.equal(item.fds, null);
      }
      assert.ok(readdirSync('/proc/self/fd').length <= before, 'the descriptors past 16 were closed');
    } finally {
      native.close(a);
      native.close(b);
    }
  });

  it('a backlog full of refused connections is not drained in one go: the event loop runs in between', { skip: !isRoot && 'needs root to run the flood as nobody' }, async () => {
    // Refusing costs us what connecting costs the peer: a flood of connections from outside
    // `allow`, drained in one loop, held the event loop for seconds (good clients starved).
    const name = uniqueName('flood').slice(1);
    const server = await listen(`unix-abstract:${name}`, { codec: 'utf8' }); // only our uid is served
    const flood = run(AS_NOBODY[0]!, [
      ...AS_NOBODY.slice(1),
      '/usr/bin/python3',
      '-c',
      `import socket, sys
held = []
for i in range(400):
    s = socket.socket(socket.AF_UNIX); s.connect(b'\\0' + sys.argv[1].encode()); held.append(s)
print('ready', flush=True)
sys.stdin.readline()`,
      name,
    ]);
    let out = '';
    const ready = new Promise<void>((r) => flood.child.stdout!.on('data', (d: Buffer) => (out += d.toString()).includes('ready') && r()));
    try {
      await within(ready, 10_000, '400 connections waiting in the backlog');
      const accepting = server.accept();
      await new Promise((r) => setImmediate(r));
      assert.ok(server.refused < 400, `all ${server.refused} refused before the event loop had a turn`);
      await within((async () => {
        while (server.refused < 400) await new Promise((r) => setImmediate(r));
      })(), 10_000, 'the rest to be refused');
      const client = await connect(`unix-abstract:${name}`, { codec: 'utf8' });
      const s = await within(accepting, 5000);
      await client.send('still served');
      assert.equal(await within(s.receive(), 5000), 'still served');
      await client.close();
      await s.close();
    } finally {
      flood.child.stdin!.end('\n');
      await flood.done;
      await server.close();
    }
  });

  it('a sender SIGKILLed mid-frame: PEER_GONE, the partial frame is never delivered', async () => {
    const server = await listen(`unix:${scratchPath('midframe')}`, { codec: 'utf8' });
    const accepting = server.accept();
    // A whole frame ("whole"), then a header announcing 100 bytes and only 10 of them.
    const py = rawClient(server.path!, `05000000${Buffer.from('whole').toString('hex')}64000000${'41'.repeat(10)}`, 30);
    // Listening from the start: its "sent" may come before our receive resolves.
    let out = '';
    const sent = new Promise<void>((r) => py.child.stdout!.on('data', (d: Buffer) => (out += d.toString()).includes('sent') && r()));
    const s = await within(accepting, 10_000);
    assert.equal(await within(s.receive(), 5000), 'whole');
    await within(sent, 10_000, 'the partial frame');
    py.child.kill('SIGKILL');
    const e = await rejectsWith(within(s.receive(), 5000), 'ERR_IPCKIT_PEER_GONE');
    assert.match(e.message, /died/);
    await rejectsWith(s.receive(), 'ERR_IPCKIT_CLOSED');
    await s.close();
    await py.done;
    await server.close();
  });
});

/** Our open pidfds (a watchProcess in progress holds one). */
function pidfds(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).includes('pidfd')) n++;
    } catch {
      /* closed meanwhile */
    }
  }
  return n;
}

describe('acknowledged server', () => {
  it('a client sending faster than the application receives cannot make the server hold more than a few MiB', async () => {
    const server = await listen(`unix:${scratchPath('ackflood')}`, { acknowledged: true });
    const accepting = server.accept();
    // A client of the acknowledged protocol (HELLO, then DATA frames) that sends 200 MiB in
    // 1 MiB messages without waiting for acknowledgements, for as long as we read.
    const py = runPython(
      `import socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
def frame(t, b): return struct.pack('<I', len(b) + 1) + bytes([t]) + b
s.sendall(frame(3, b'ipckit-ack/1'))
data = frame(1, b'x' * (1 << 20))
s.settimeout(1.0)
n = 0
try:
    for i in range(200): s.sendall(data); n += 1
except socket.timeout: pass
print(n, flush=True)
s.settimeout(None)
s.recv(1)`,
      [server.path!],
    );
    let out = '';
    const reported = new Promise<void>((r) => py.child.stdout!.on('data', (d: Buffer) => (out += d.toString()).includes('\n') && r()));
    const s = await within(accepting, 10_000);
    const base = process.memoryUsage().arrayBuffers;
    let peak = 0;
    const sampler = setInterval(() => void (peak = Math.max(peak, process.memoryUsage().arrayBuffers - base)), 2);
    try {
      await within(reported, 30_000, 'the client to send what we would take');
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
      assert.ok(peak < 64 * 1024 * 1024, `the server held ${(peak / 2 ** 20).toFixed(0)} MiB of messages its application had not received (the client got ${out.trim()} in)`);
      // What was read is intact and in order.
      const first = await within(s.receive(), 5000);
      assert.equal(first.length, 1 << 20);
    } finally {
      clearInterval(sampler);
      await s.close();
      await py.done;
      await server.close();
    }
  });
  it('connections the application has not accepted yet are not read past the handshake: 20 of them hold a few MiB, and lose nothing', async () => {
    const server = await listen(`unix:${scratchPath('ackearly')}`, { acknowledged: true });
    // 20 clients of the acknowledged protocol, each sending HELLO then 8 messages of 1 MiB
    // at once (a thread each, blocking), before the application accepts any of them.
    const py = runPython(
      `import socket, struct, sys, threading
def frame(t, b): return struct.pack('<I', len(b) + 1) + bytes([t]) + b
socks = []
for i in range(20):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(frame(3, b'ipckit-ack/1')); socks.append(s)
def push(s):
    for i in range(8): s.sendall(frame(1, bytes([i]) * (1 << 20)))
threads = [threading.Thread(target=push, args=(s,)) for s in socks]
for t in threads: t.start()
print('sending', flush=True)
for t in threads: t.join()
print('sent', flush=True)
sys.stdin.readline()`,
      [server.path!],
      { timeoutMs: 60_000 },
    );
    let out = '';
    const started = new Promise<void>((r) => py.child.stdout!.on('data', (d: Buffer) => (out += d.toString()).includes('sending') && r()));
    const base = process.memoryUsage().arrayBuffers;
    let peak = 0;
    const sampler = setInterval(() => void (peak = Math.max(peak, process.memoryUsage().arrayBuffers - base)), 2);
    const channels: SocketChannel<Uint8Array>[] = [];
    try {
      await within(started, 20_000, 'the clients');
      await sleep(1500); // the clients push while nobody accepts
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
      assert.ok(peak < 48 * 1024 * 1024, `the server held ${(peak / 2 ** 20).toFixed(0)} MiB for connections its application had not accepted`);
      for (let c = 0; c < 20; c++) {
        const ch = await within(server.accept(), 5000);
        channels.push(ch);
        for (let i = 0; i < 8; i++) {
          const m = await within(ch.receive(), 10_000, `message ${i} of connection ${c}`);
          assert.equal(m.length, 1 << 20);
          assert.equal(m[0], i);
        }
      }
      py.child.stdin!.end('\n');
      const r = await within(py.done, 20_000, 'the clients to finish');
      assert.match(r.stdout, /sent/);
    } finally {
      clearInterval(sampler);
      py.child.stdin!.end('\n');
      await py.done;
      for (const ch of channels) await ch.close({ timeout: 100 });
      await server.close();
    }
  });
});

describe('datagram server', () => {
  it('a sender faster than the application receives cannot make the server hold more than a few MiB', async () => {
    const name = uniqueName('dgflood').slice(1);
    const server = await listen(`unix-dgram:@${name}`);
    // The application takes each new sender but does not read it (yet).
    const peers: SocketChannel<Uint8Array>[] = [];
    const accepting = (async () => {
      for await (const p of server) peers.push(p);
    })();
    const py = runPython(
      `import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
s.connect(b'\\0' + sys.argv[1].encode()); s.settimeout(1.0)
n = 0
try:
    for i in range(3000): s.send(b'x' * 200000); n += 1
except (socket.timeout, BlockingIOError): pass
print(n, flush=True)`,
      [name],
    );
    const base = process.memoryUsage().arrayBuffers;
    let peak = 0;
    const sampler = setInterval(() => void (peak = Math.max(peak, process.memoryUsage().arrayBuffers - base)), 2);
    try {
      const r = await within(py.done, 30_000, 'the sender');
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
      assert.ok(peak < 64 * 1024 * 1024, `the server held ${(peak / 2 ** 20).toFixed(0)} MiB of datagrams its application had not received (${r.stdout.trim()} sent)`);
      assert.equal(peers.length, 1);
      assert.equal((await within(peers[0]!.receive(), 5000)).length, 200000);
    } finally {
      clearInterval(sampler);
      for (const p of peers) await p.close({ timeout: 100 });
      await server.close();
      await accepting;
    }
  });
});

describe('datagram server: close with replies nobody reads', () => {
  it('server.close() rejects with the replies it could not deliver, instead of dropping them silently', async () => {
    const name = uniqueName('dgclose').slice(1);
    const server = await listen(`unix-dgram:@${name}`);
    const client = await connect(`unix-dgram:@${name}`);
    try {
      await client.send(new Uint8Array([1]));
      const peer = await within(server.accept(), 5000);
      assert.deepEqual([...(await within(peer.receive(), 5000))], [1]);
      // The client never reads: replies fill its queue, then wait in the peer's writer.
      let accepted = 0;
      while (peer.trySend!(new Uint8Array(512))) accepted++;
      const e = await within(rejectsWith(server.close(), 'ERR_IPCKIT_TIMEOUT'), 10_000, 'server.close');
      const lost = e.details?.lostMessages as number;
      assert.ok(lost > 0 && lost <= accepted, `lostMessages ${lost} of ${accepted} replies accepted`);
    } finally {
      await client.close();
      await server.close().catch(() => {});
    }
  });
});

describe('datagram server, many senders', () => {
  it('40 senders each under the per-sender limit cannot make the server hold more than 64 MiB together, and nothing is lost', async () => {
    const name = uniqueName('dgmany').slice(1);
    const server = await listen(`unix-dgram:@${name}`);
    // A first sender the application serves: while it waits on it, the server keeps reading.
    const first = await connect(`unix-dgram:@${name}`);
    await first.send(new Uint8Array([1]));
    const served = await within(server.accept(), 5000);
    assert.deepEqual([...(await served.receive())], [1]);
    const waiting = served.receive().catch(() => null);
    const py = runPython(
      `import json, os, socket, sys, time
path = b'\\0' + sys.argv[1].encode()
socks = []
for i in range(40):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(b'\\0ipckit-test-dgmany-%d-%d' % (os.getpid(), i)); s.setblocking(False); socks.append(s)
msg = b'x' * 65536
sent = [0] * len(socks)
idle = None
while min(sent) < 100:
    progress = False
    for i, s in enumerate(socks):
        if sent[i] >= 100: continue
        try: s.sendto(msg, path); sent[i] += 1; progress = True
        except BlockingIOError: pass
    if progress: idle = None
    elif idle is None: idle = time.time()
    elif time.time() - idle > 1.5: break
    else: time.sleep(0.001)
print(sum(sent), sum(1 for c in sent if c), flush=True)
sys.stdin.readline()`,
      [name],
    );
    let out = '';
    const sentCount = new Promise<number[]>((r) => py.child.stdout!.on('data', (d: Buffer) => (out += d.toString()).includes('\n') && r(out.trim().split(' ').map(Number))));
    const base = process.memoryUsage().arrayBuffers;
    let peak = 0;
    const sampler = setInterval(() => void (peak = Math.max(peak, process.memoryUsage().arrayBuffers - base)), 2);
    const peers: SocketChannel<Uint8Array>[] = [];
    try {
      const [sent = 0, senders = 0] = await within(sentCount, 30_000, 'the senders');
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
      assert.ok(peak < 80 * 1024 * 1024, `the server held ${(peak / 2 ** 20).toFixed(0)} MiB of datagrams its application had not received (${sent} of 64 KiB sent)`);
      // The application now serves everyone: every datagram sent arrives.
      let got = 0;
      const deadline = Date.now() + 30_000;
      while (got < sent && Date.now() < deadline) {
        const p = await server.accept({ timeout: 50 }).catch(() => null);
        if (p) peers.push(p);
        for (const peer of peers) {
          for (;;) {
            const m = await peer.receive({ timeout: 20 }).catch(() => null);
            if (!m) break;
            assert.equal(m.length, 65536);
            got++;
          }
        }
      }
      assert.equal(got, sent, 'every datagram sent was received');
      assert.equal(peers.length, senders, 'one channel per sender that got a datagram through');
    } finally {
      clearInterval(sampler);
      py.child.stdin!.end('\n');
      await py.done;
      for (const p of peers) await p.close({ timeout: 100 });
      await served.close({ timeout: 100 });
      await waiting;
      await first.close();
      await server.close();
    }
  });

  it('senders the application has not accepted are held up to 1024; the rest wait in the kernel, and all are served later', async () => {
    const name = uniqueName('dgpeers').slice(1);
    const server = await listen(`unix-dgram:@${name}`, { codec: 'utf8' });
    const first = await connect(`unix-dgram:@${name}`, { codec: 'utf8' });
    await first.send('first');
    const served = await within(server.accept(), 5000);
    assert.equal(await served.receive(), 'first');
    const waiting = served.receive().catch(() => null); // keeps the server reading
    const py = runPython(
      `import os, resource, socket, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
path = b'\\0' + sys.argv[1].encode()
socks = []
for i in range(1300):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(b'\\0ipckit-test-dgpeers-%d-%d' % (os.getpid(), i)); s.setblocking(False); socks.append(s)
pending = list(range(len(socks)))
end = time.time() + 3
while pending and time.time() < end:
    left = []
    for i in pending:
        try: socks[i].sendto(b'hello %d' % i, path)
        except BlockingIOError: left.append(i)
    if len(left) == len(pending): time.sleep(0.01)
    pending = left
print(len(socks) - len(pending), flush=True)
sys.stdin.readline()`,
      [name],
    );
    let out = '';
    const through = new Promise<number>((r) => py.child.stdout!.on('data', (d: Buffer) => (out += d.toString()).includes('\n') && r(Number(out.trim()))));
    const peers: SocketChannel<string>[] = [];
    try {
      const n = await within(through, 30_000, 'the senders');
      // 1024 held by us, at most the kernel's queue (net.unix.max_dgram_qlen) more.
      assert.ok(n >= 1024 && n < 1024 + 64, `${n} senders got a datagram through`);
      const deadline = Date.now() + 30_000;
      while (peers.length < n && Date.now() < deadline) {
        const p = await server.accept({ timeout: 1000 }).catch(() => null);
        if (!p) break;
        peers.push(p);
        assert.match(await within(p.receive(), 5000), /^hello \d+$/);
      }
      assert.equal(peers.length, n, 'every sender that got through was served');
    } finally {
      py.child.stdin!.end('\n');
      await py.done;
      for (const p of peers) await p.close({ timeout: 100 });
      await served.close({ timeout: 100 });
      await waiting;
      await first.close();
      await server.close();
    }
  });
});

describe('a peer that dies while the event loop is late', () => {
  it('ends mid-frame, then dies while the loop is busy for longer than the death watch waits: still PEER_GONE', async () => {
    const server = await listen(`unix:${scratchPath('late')}`, { codec: 'utf8' });
    const accepting = server.accept();
    // Half a frame, then (when told) the end of the stream; the process itself ends 100 ms later.
    const py = runPython(
      `import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(bytes.fromhex('64000000' + '41' * 10))
print('sent', flush=True)
sys.stdin.readline()
s.close()
time.sleep(0.1)`,
      [server.path!],
    );
    let out = '';
    const sent = new Promise<void>((r) => py.child.stdout!.on('data', (d: Buffer) => (out += d.toString()).includes('sent') && r()));
    const s = await within(accepting, 10_000);
    const ending = s.receive().then(
      () => 'a message?!',
      (e: { code?: string }) => e.code,
    );
    await within(sent, 10_000, "the peer's half frame");
    const before = pidfds();
    py.child.stdin!.write('go\n');
    // The stream has ended inside a frame and the peer still lives: we watch it (a pidfd).
    await within((async () => {
      while (pidfds() === before) await new Promise((r) => setImmediate(r));
    })(), 10_000, 'the watch on the peer');
    // The loop is held (a long GC, a loaded machine) past the watch's wait; the peer exits meanwhile.
    const until = Date.now() + 800;
    while (Date.now() < until) {
      /* busy */
    }
    assert.equal(await within(ending, 5000), 'ERR_IPCKIT_PEER_GONE');
    await s.close();
    await py.done;
    await server.close();
  });
});

describe('server crashes under a reconnecting client', () => {
  it('20 SIGKILLs and restarts: every message whose send() resolved arrived exactly once, none twice', async (t) => {
    const path = scratchPath('restart');
    const outputs: string[] = [];
    const start = async (): Promise<ReturnType<typeof runFixture>> => {
      const srv = runFixture('acked-server', [path]);
      await within(new Promise<void>((r) => {
        let buf = '';
        const on = (d: Buffer): void => {
          buf += d.toString();
          if (buf.includes('ready\n')) {
            srv.child.stdout!.off('data', on);
            r();
          }
        };
        srv.child.stdout!.on('data', on);
      }), 15_000, 'the server to start');
      return srv;
    };
    let server = await start();
    const client = await connect(`unix:${path}`, { reconnect: { minDelay: 5, maxDelay: 100 }, codec: 'utf8', timeout: 10_000 });
    const resolved = new Set<number>();
    const outcomes = new Map<string, number>();
    let stop = false;
    let next = 0;
    const sending = (async () => {
      while (!stop) {
        const batch: Promise<void>[] = [];
        for (let k = 0; k < 25; k++) {
          const id = next++;
          batch.push(
            client.send(`m${id}`, { timeout: 2000 }).then(
              () => void resolved.add(id),
              (e: { code?: string }) => void outcomes.set(e.code ?? '?', (outcomes.get(e.code ?? '?') ?? 0) + 1),
            ),
          );
        }
        await Promise.all(batch);
      }
    })();
    for (let i = 0; i < 20; i++) {
      await sleep(40 + Math.floor(Math.random() * 80));
      server.child.kill('SIGKILL');
      const r = await server.done;
      outputs.push(r.stdout);
      server = await start();
    }
    await sleep(200);
    stop = true;
    await within(sending, 30_000, 'the last sends');
    await client.close({ timeout: 5000 });
    await sleep(100);
    server.child.kill('SIGKILL');
    outputs.push((await server.done).stdout);

    const seen = new Map<number, number>();
    for (const out of outputs) {
      for (const line of out.split('\n')) {
        const m = /^m(\d+)$/.exec(line);
        if (m) seen.set(Number(m[1]), (seen.get(Number(m[1])) ?? 0) + 1);
      }
    }
    const twice = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
    assert.deepEqual(twice, [], 'no message is delivered twice');
    const missing = [...resolved].filter((id) => seen.get(id) !== 1);
    assert.deepEqual(missing, [], 'every resolved send was delivered exactly once');
    assert.ok(resolved.size > 100, `only ${resolved.size} sends resolved`);
    t.diagnostic(`sent ${next}, resolved ${resolved.size}, delivered ${seen.size}, rejected ${JSON.stringify(Object.fromEntries(outcomes))}, over ${(client as unknown as { connections: number }).connections} connections`);
  });
});

describe('close with a timeout while the peer does not read', () => {
  for (const kind of ['unix-dgram', 'unix-seqpacket'] as const) {
    it(`${kind}: a flush cut short by close({ timeout }) rejects with ERR_IPCKIT_TIMEOUT and the number of messages dropped`, async () => {
      const [a, b] = socketPair(kind);
      try {
        // Accept messages until the kernel and the writer's own queue are full; a never reads.
        const message = new Uint8Array(512).fill(7);
        let accepted = 0;
        while (b.trySend!(message)) accepted++;
        assert.ok(accepted > 0);
        const e = await within(rejectsWith(b.close({ timeout: 100 }), 'ERR_IPCKIT_TIMEOUT'), 5000, 'close');
        const lost = e.details?.lostMessages as number;
        assert.ok(lost > 0 && lost <= accepted, `lostMessages ${lost} of ${accepted} accepted`);
        assert.match(e.message, /accepted messages were not delivered/);
        // What was delivered is intact and in order, and it is exactly what was not reported lost.
        let delivered = 0;
        for (;;) {
          let m: Uint8Array | undefined;
          try {
            m = a.tryReceive!();
          } catch (end) {
            // seqpacket: after the last message, the peer's close ends the stream
            assert.equal(kind, 'unix-seqpacket');
            assert.equal((end as { code?: string }).code, 'ERR_IPCKIT_CLOSED');
            break;
          }
          if (m === undefined) break;
          assert.equal(Buffer.compare(m, message), 0);
          delivered++;
        }
        assert.equal(delivered + lost, accepted);
        await b.close(); // once closed, closing again is a no-op
      } finally {
        await a.close();
        await b.close().catch(() => {});
      }
    });
  }

  for (const kind of ['unix-dgram', 'unix-seqpacket'] as const) {
    it(`${kind}: the peer closes while close({ timeout }) flushes: one ERR_IPCKIT_PEER_GONE with the messages dropped`, async () => {
      const [a, b] = socketPair(kind);
      try {
        const message = new Uint8Array(512).fill(7);
        let accepted = 0;
        while (b.trySend!(message)) accepted++;
        const closing = b.close({ timeout: 100 });
        await a.close(); // b's next write fails while its close still flushes
        const e = await within(rejectsWith(closing, 'ERR_IPCKIT_PEER_GONE'), 5000, 'close');
        const lost = e.details?.lostMessages as number;
        assert.ok(lost > 0 && lost <= accepted, `lostMessages ${lost} of ${accepted} accepted`);
      } finally {
        await a.close();
        await b.close().catch(() => {});
      }
    });

    it(`${kind}: a failure a send or flush already reported is not reported again by close()`, async () => {
      const [a, b] = socketPair(kind);
      await a.close();
      try {
        assert.equal(b.trySend!(new Uint8Array(8)), true);
        await rejectsWith(b.flush(), 'ERR_IPCKIT_PEER_GONE');
        await within(b.close(), 5000, 'close'); // told once, by flush()
      } finally {
        await b.close().catch(() => {});
      }
    });
  }

  it('unix (stream): the same close rejects with ERR_IPCKIT_TIMEOUT and the bytes dropped', async () => {
    const [a, b] = socketPair('unix');
    try {
      const message = new Uint8Array(512).fill(7);
      let accepted = 0;
      while (b.trySend!(message)) accepted++;
      const e = await within(rejectsWith(b.close({ timeout: 100 }), 'ERR_IPCKIT_TIMEOUT'), 5000, 'close');
      const lost = e.details?.lostBytes as number;
      assert.ok(lost > 0 && lost <= accepted * (4 + 512), `lostBytes ${lost} of ${accepted} accepted 516-byte frames`);
    } finally {
      await a.close();
      await b.close().catch(() => {});
    }
  });
});
