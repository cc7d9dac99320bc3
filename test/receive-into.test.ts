/**
 * Zero-copy receive (receiveInto): the next message's bytes land in a buffer the caller
 * reuses, on every stream kind (pipe, FIFO-like streams, Unix stream, TCP) and packet kind
 * (seqpacket, datagram), with peers we did not write (python3, sh, socat). What it must
 * keep: every byte and the order (mixed with receive()), a message too long for the
 * buffer stays for the next receive, a wait that ends part-way through a frame read
 * straight into the caller's buffer gives that buffer back (the frame is not lost), and
 * the channel's end and errors as receive() reports them.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { spawnWithPipes, type PipedChild } from '../src/mechanisms/pipe/pipe.js';
import { connect, listen, socketPair } from '../src/mechanisms/socket/socket.js';
import { PY_READ_EXACT, rejectsWith, scratchPath, throwsWith } from './helpers.js';

/** The bytes of message `i` of `n` bytes, as the python3 peers below make them. */
function payload(i: number, n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  for (let j = 0; j < n; j++) out[j] = (i + j) % 251;
  return out;
}

/** A Buffer over the same bytes (no copy), for comparing. */
function view(bytes: Uint8Array, length = bytes.length): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, length);
}

const PY_PAYLOAD = `
def payload(i, n):
    base = bytes(range(251)) * (n // 251 + 2)
    return base[i % 251:i % 251 + n]
`;

/**
 * A python3 writer of length frames on fd 4, driven by commands we send on fd 3 (each a
 * length frame): "frames I N1 N2 ..." writes whole frames (message I, I+1, ...), "part I N M"
 * a frame's header and its first M bytes, "rest I N M" the rest of it, "quit" ends.
 */
const PY_FRAME_WRITER = `
import os, struct, sys
${PY_PAYLOAD}
r, w = 3, 4
os.set_blocking(r, True)
os.set_blocking(w, True)
${PY_READ_EXACT}
def send_all(b):
    v = memoryview(b)
    while len(v): v = v[os.write(w, v):]
while True:
    op, *a = exact(struct.unpack('<I', exact(4))[0]).decode().split()
    if op == 'frames':
        for k, n in enumerate(map(int, a[1:])): send_all(struct.pack('<I', n) + payload(int(a[0]) + k, n))
    elif op == 'part':
        i, n, m = map(int, a); send_all(struct.pack('<I', n) + payload(i, n)[:m])
    elif op == 'rest':
        i, n, m = map(int, a); send_all(payload(i, n)[m:])
    else:
        break
`;

function frameWriter(): { child: PipedChild<Uint8Array>; command(text: string): Promise<void> } {
  const child = spawnWithPipes(['python3', '-c', PY_FRAME_WRITER], { pipes: { 3: 'write', 4: 'read' } });
  const control = child.sender(3);
  return { child, command: (text) => control.send(Buffer.from(text)) };
}

const haveSocat = spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0;

describe('receiveInto on byte streams', () => {
  it('a pipe from python3: frames of 0 B to 3 MiB arrive byte for byte in one reused buffer, in order with receive()', async () => {
    const sizes = [0, 1, 5, 4096, 65535, 65536, 70_000, 1024 * 1024, 3 * 1024 * 1024 + 7, 10, 200_000, 3];
    const { child, command } = frameWriter();
    const rx = child.receiver(4);
    const buf = new Uint8Array(4 * 1024 * 1024);
    try {
      // Every other message by receive(), both kinds waiting before the data comes (each
      // receiveInto with a buffer of its own: a buffer is ours until its receive settles).
      const targets = sizes.map((n) => new Uint8Array(n + 16));
      const pending = sizes.map((_, i) => (i % 2 === 0 ? rx.receiveInto(targets[i]!) : rx.receive()));
      await command(`frames 0 ${sizes.join(' ')}`);
      for (let i = 0; i < sizes.length; i++) {
        const got = await pending[i]!;
        const bytes = typeof got === 'number' ? targets[i]!.subarray(0, got) : got;
        assert.equal(bytes.length, sizes[i], `message ${i} has its length`);
        assert.ok(view(bytes).equals(payload(i, sizes[i]!)), `message ${i} has its bytes`);
      }
      // And one at a time, as an echo loop would: the same buffer every time.
      await command(`frames 100 ${sizes.join(' ')}`);
      for (let i = 0; i < sizes.length; i++) {
        const n = await rx.receiveInto(buf, { timeout: 20_000 });
        assert.equal(n, sizes[i]);
        assert.ok(Buffer.from(buf.buffer, 0, n).equals(payload(100 + i, n)), `message ${100 + i} has its bytes`);
      }
      await command('quit');
      await rejectsWith(rx.receiveInto(buf, { timeout: 10_000 }), 'ERR_IPCKIT_CLOSED');
    } finally {
      await child.close();
    }
  });

  it('a message longer than the buffer is not taken: the error names its length and receive() then gets it whole', async () => {
    const { child, command } = frameWriter();
    const rx = child.receiver(4);
    try {
      await command('frames 7 100 300000 8');
      const small = new Uint8Array(64);
      const e = await rejectsWith(rx.receiveInto(small, { timeout: 10_000 }), 'ERR_IPCKIT_FRAME_TOO_LARGE');
      assert.deepEqual(e.details, { length: 100, bufferBytes: 64 });
      assert.match(e.message, /at least 100 bytes/);
      throwsWith(() => rx.tryReceiveInto(small), 'ERR_IPCKIT_FRAME_TOO_LARGE');
      assert.ok(view(await rx.receive({ timeout: 10_000 })).equals(payload(7, 100)), 'the refused message is the next one');
      // Larger than the read buffer and than the target: refused before any byte lands in it.
      small.fill(0xee);
      const e2 = await rejectsWith(rx.receiveInto(small, { timeout: 10_000 }), 'ERR_IPCKIT_FRAME_TOO_LARGE');
      assert.equal(e2.details?.length, 300000);
      assert.ok(small.every((b) => b === 0xee), 'nothing was written into a buffer that was refused');
      const big = new Uint8Array(300000);
      assert.equal(await rx.receiveInto(big, { timeout: 10_000 }), 300000);
      assert.ok(Buffer.from(big.buffer).equals(payload(8, 300000)));
      assert.equal(await rx.receiveInto(small, { timeout: 10_000 }), 8);
      assert.ok(Buffer.from(small.buffer, 0, 8).equals(payload(9, 8)));
      await command('quit');
    } finally {
      await child.close();
    }
  });

  for (const how of ['timeout', 'abort', 'tryReceiveInto'] as const) {
    it(`a large frame read straight into the buffer, cut short by ${how}: the buffer is the caller's again and the frame arrives whole later`, async () => {
      const N = 500_000;
      const M = 200_000;
      const { child, command } = frameWriter();
      const rx = child.receiver(4);
      const buf = new Uint8Array(N);
      try {
        await command(`part 3 ${N} ${M}`);
        if (how === 'tryReceiveInto') {
          // Poll until the first part has been read (into buf, then moved out when the call returns).
          for (let k = 0; k < 2000 && rx.tryReceiveInto(buf) === undefined; k++) await new Promise((r) => setTimeout(r, 1));
        } else if (how === 'timeout') {
          await rejectsWith(rx.receiveInto(buf, { timeout: 300 }), 'ERR_IPCKIT_TIMEOUT');
        } else {
          const ac = new AbortController();
          const p = rx.receiveInto(buf, { signal: ac.signal });
          setTimeout(() => ac.abort(), 300);
          await rejectsWith(p, 'ERR_IPCKIT_ABORTED');
        }
        buf.fill(0xee); // the caller reuses its buffer at once
        await command(`rest 3 ${N} ${M}`);
        const whole = await rx.receive({ timeout: 20_000 });
        assert.equal(whole.length, N);
        assert.ok(view(whole).equals(payload(3, N)), 'the frame is whole: its first part was not left in the caller buffer');
        assert.ok(buf.every((b) => b === 0xee), 'nothing more was written into the buffer after the wait ended');
        await command('quit');
      } finally {
        await child.close();
      }
    });
  }

  it('a stream that ends inside a frame read into the buffer rejects, as receive() would', async () => {
    const { child, command } = frameWriter();
    const rx = child.receiver(4);
    const buf = new Uint8Array(1 << 20);
    try {
      const p = rx.receiveInto(buf, { timeout: 20_000 });
      await command('part 1 700000 100000');
      await command('quit');
      const e = await rejectsWith(p, 'ERR_IPCKIT_BAD_FRAME');
      assert.match(e.message, /inside a frame/);
    } finally {
      await child.close();
    }
  });

  it('framing "lines" and "raw" from sh: a line per receive; raw bytes fill the buffer and the rest stays', async () => {
    const lines = spawnWithPipes(['sh', '-c', 'printf "alpha\\nthis line is too long\\nb\\n" >&3'], { pipes: { 3: { direction: 'read', framing: 'lines' } } });
    try {
      const rx = lines.receiver(3);
      const buf = new Uint8Array(8);
      assert.equal(await rx.receiveInto(buf, { timeout: 10_000 }), 5);
      assert.equal(Buffer.from(buf.buffer, 0, 5).toString(), 'alpha');
      const e = await rejectsWith(rx.receiveInto(buf, { timeout: 10_000 }), 'ERR_IPCKIT_FRAME_TOO_LARGE');
      assert.equal(e.details?.length, 21);
      assert.equal((await rx.receive()).toString(), 'this line is too long');
      assert.equal(await rx.receiveInto(buf, { timeout: 10_000 }), 1);
      await rejectsWith(rx.receiveInto(buf, { timeout: 10_000 }), 'ERR_IPCKIT_CLOSED');
    } finally {
      await lines.close();
    }
    const raw = spawnWithPipes(['sh', '-c', 'printf "0123456789abcdef" >&3'], { pipes: { 3: { direction: 'read', framing: 'raw' } } });
    try {
      const rx = raw.receiver(3);
      let text = '';
      const buf = new Uint8Array(6);
      for (;;) {
        let n: number;
        try {
          n = await rx.receiveInto(buf, { timeout: 10_000 });
        } catch (e) {
          assert.equal((e as { code?: string }).code, 'ERR_IPCKIT_CLOSED');
          break;
        }
        assert.ok(n >= 1 && n <= 6);
        text += Buffer.from(buf.buffer, 0, n).toString();
      }
      assert.equal(text, '0123456789abcdef', 'every byte, in order, none twice');
      throwsWith(() => rx.tryReceiveInto(new Uint8Array(0)), 'ERR_IPCKIT_INVALID_ARGUMENT');
    } finally {
      await raw.close();
    }
  });

  it('framing "lines": a line longer than maxMessageBytes is ERR_IPCKIT_FRAME_TOO_LARGE for receiveInto too, as for receive()', async () => {
    // python3 writes 3 MiB with no newline; the reader's limit is 1000 bytes.
    for (const maxMessageBytes of [1000, 100_000]) {
      const child = spawnWithPipes(['python3', '-c', 'import os\nos.write(3, b"a" * 3 * 1024 * 1024)\nos.write(3, b"\\n")'], {
        pipes: { 3: { direction: 'read', framing: 'lines', maxMessageBytes } },
      });
      try {
        const rx = child.receiver(3);
        const e = await rejectsWith(rx.receiveInto(new Uint8Array(4096), { timeout: 20_000 }), 'ERR_IPCKIT_FRAME_TOO_LARGE');
        assert.match(e.message, /maxMessageBytes/);
      } finally {
        child.kill();
        await child.close().catch(() => {});
      }
    }
  });

  it('a Unix stream socket to python3 and a TCP connection to socat: 64 KiB round trips into one buffer', { skip: !haveSocat && 'socat is not installed' }, async () => {
    // Unix stream: python3 echoes length frames on its inherited end.
    const [mine, theirs] = socketPair('unix');
    const py = spawn('python3', ['-c', `
import os, socket, struct, sys
s = socket.socket(fileno=3)
s.setblocking(True)
def exact(n):
    b = b''
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: sys.exit(0)
        b += c
    return b
while True:
    h = exact(4)
    s.sendall(h + exact(struct.unpack('<I', h)[0]))
`], { stdio: ['ignore', 'inherit', 'inherit', (theirs as unknown as { fd: number }).fd] });
    const pyExit = new Promise((r) => py.once('exit', r));
    await theirs.close();
    // TCP: socat connects to our server and runs cat: every byte comes back.
    const server = await listen('tcp://127.0.0.1:0');
    const port = server.address.split(':').pop()!;
    const socat = spawn('socat', [`TCP:127.0.0.1:${port}`, 'EXEC:cat'], { stdio: 'ignore' });
    const socatExit = new Promise((r) => socat.once('exit', r));
    const tcp = await server.accept({ timeout: 10_000 });
    const buf = new Uint8Array(64 * 1024);
    try {
      for (const ch of [mine, tcp]) {
        for (let i = 0; i < 200; i++) {
          const m = payload(i, 65536 - (i % 3));
          await ch.send(m);
          const n = await ch.receiveInto(buf, { timeout: 10_000 });
          assert.equal(n, m.length);
          assert.ok(Buffer.from(buf.buffer, 0, n).equals(m), `round trip ${i} over ${ch.kind}`);
        }
      }
    } finally {
      await mine.close();
      await tcp.close();
      await server.close();
    }
    await pyExit;
    await socatExit;
  });

  it('not with descriptor passing or on acknowledged connections: ERR_IPCKIT_UNSUPPORTED', async () => {
    const [a, b] = socketPair('unix', { handles: true });
    try {
      throwsWith(() => b.receiveInto(new Uint8Array(8)), 'ERR_IPCKIT_UNSUPPORTED');
      throwsWith(() => b.tryReceiveInto(new Uint8Array(8)), 'ERR_IPCKIT_UNSUPPORTED');
    } finally {
      await a.close();
      await b.close();
    }
    const server = await listen(`unix:${scratchPath('acked')}`, { acknowledged: true });
    const client = await connect(server.address, { reconnect: { minDelay: 5, maxDelay: 50 }, timeout: 5000 });
    try {
      await rejectsWith(client.receiveInto(new Uint8Array(8)), 'ERR_IPCKIT_UNSUPPORTED');
    } finally {
      await client.close();
      await server.close();
    }
  });
});

describe('receiveInto on packet sockets', () => {
  /** A python3 seqpacket peer on fd 3: each message "I N" we send makes it send message I of N bytes. */
  const PY_SEQPACKET = `
import socket
${PY_PAYLOAD}
s = socket.socket(fileno=3)
s.setblocking(True)
while True:
    m = s.recv(64)
    if not m: break
    i, n = map(int, m.split())
    s.send(payload(i, n))
`;

  it('seqpacket from python3: each message in one reused buffer; too long for the buffer stays; above maxMessageBytes is consumed and reported', async () => {
    const [mine, theirs] = socketPair('unix-seqpacket', { maxMessageBytes: 150_000 });
    const py = spawn('python3', ['-c', PY_SEQPACKET], { stdio: ['ignore', 'inherit', 'inherit', (theirs as unknown as { fd: number }).fd] });
    const pyExit = new Promise((r) => py.once('exit', r));
    await theirs.close();
    const buf = new Uint8Array(150_000);
    try {
      const ask = (i: number, n: number): Promise<void> => mine.send(Buffer.from(`${i} ${n}`));
      for (const [i, n] of [[0, 0], [1, 1], [2, 4096], [3, 65536], [4, 140_000], [5, 17]] as const) {
        const p = mine.receiveInto(buf, { timeout: 10_000 }); // waiting before the message is asked for
        await ask(i, n);
        const got = await p;
        assert.equal(got, n);
        assert.ok(Buffer.from(buf.buffer, 0, got).equals(payload(i, n)), `message ${i}`);
      }
      await ask(6, 1000);
      const e = await rejectsWith(mine.receiveInto(new Uint8Array(999), { timeout: 10_000 }), 'ERR_IPCKIT_FRAME_TOO_LARGE');
      assert.deepEqual(e.details, { length: 1000, bufferBytes: 999 });
      assert.ok(view(await mine.receive({ timeout: 10_000 })).equals(payload(6, 1000)), 'the refused message came next');
      await ask(7, 160_000); // above maxMessageBytes: consumed, reported to the receive that meets it
      await ask(8, 9);
      await rejectsWith(mine.receiveInto(buf, { timeout: 10_000 }), 'ERR_IPCKIT_FRAME_TOO_LARGE');
      assert.equal(await mine.receiveInto(buf, { timeout: 10_000 }), 9);
      assert.equal(mine.tryReceiveInto(buf), undefined);
    } finally {
      await mine.close();
    }
    await pyExit;
  });

  it('a datagram server: a python3 sender\'s datagrams into one buffer, through its peer channel', async () => {
    const path = scratchPath('dg');
    const server = await listen(`unix-dgram:${path}`);
    const py = spawn('python3', ['-c', `
import socket, sys
${PY_PAYLOAD}
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\\0ipckit-test-into-' + str(__import__('os').getpid()))
for i, n in enumerate([10, 0, 60000, 3]):
    s.sendto(payload(i, n), sys.argv[1])
`, path], { stdio: 'inherit' });
    const pyExit = new Promise((r) => py.once('exit', r));
    try {
      const peer = await server.accept({ timeout: 10_000 });
      const buf = new Uint8Array(65536);
      for (const [i, n] of [10, 0, 60000, 3].entries()) {
        const got = await peer.receiveInto(buf, { timeout: 10_000 });
        assert.equal(got, n);
        assert.ok(Buffer.from(buf.buffer, 0, got).equals(payload(i, n)), `datagram ${i}`);
      }
      await peer.close();
    } finally {
      await server.close();
    }
    await pyExit;
  });
});

