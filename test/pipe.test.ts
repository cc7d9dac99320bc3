/**
 * Anonymous pipes: the Channel promises, children with pipes at chosen fds (sh, python3,
 * node), capacity, PIPE_BUF atomicity with several writer processes, and a reader that
 * goes away.
 */
import assert from 'node:assert/strict';
import { openSync, closeSync } from 'node:fs';
import { describe, it } from 'node:test';
import { native } from '../src/os/native.js';
import { createPipe, openInheritedPipe, PipeReader, PipeWriter, spawnWithPipes } from '../src/mechanisms/pipe/pipe.js';
import { channelConformance } from './conformance/channel.js';
import { atomicPayload } from './fixtures/payloads.js';
import { AS_NOBODY, checkFdLeaks, fixturesDir, openFds, rejectsWith, run, runFixture, scratchPath, throwsWith, within, zombieChildren } from './helpers.js';
import { join } from 'node:path';

checkFdLeaks();

channelConformance('pipe', {
  senderCloseEndsReceiver: true,
  backpressure: true,
  async make(o) {
    // The two ends get different codecs, so they are made here over a raw pipe(2).
    const [r, w] = native.pipe();
    native.setNonBlocking(r, true);
    native.setNonBlocking(w, true);
    const receiver = new PipeReader(r, { codec: o.receiverCodec, maxMessageSize: o.maxMessageSize });
    const sender = new PipeWriter(w, { codec: o.senderCodec, maxMessageSize: o.maxMessageSize });
    return {
      sender,
      receiver,
      cleanup: async () => {
        await sender.close({ timeout: 1000 }).catch(() => {});
        await receiver.close();
      },
    };
  },
});

describe('pipe: both ends in one process', () => {
  it('createPipe gives a real pipe(2): both fds are FIFOs, non-blocking, close-on-exec', async () => {
    const { reader, writer } = createPipe({ codec: 'utf8' });
    try {
      for (const fd of [reader.fd, writer.fd]) {
        assert.equal(native.fstat(fd).mode & 0o170000, 0o010000, 'S_IFIFO');
        assert.ok(native.getStatusFlags(fd) & 0o4000, 'O_NONBLOCK');
      }
      await writer.send('hello');
      assert.equal(await within(reader.receive(), 5000), 'hello');
    } finally {
      await writer.close();
      await reader.close();
    }
  });

  it('bad arguments throw at once', () => {
    throwsWith(() => createPipe({ framing: 'words' as 'raw' }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createPipe({ capacity: 0 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => spawnWithPipes('cat' as unknown as string[], { pipes: { 3: 'to-child' } }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => spawnWithPipes(['cat'], { pipes: {} }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => spawnWithPipes(['cat'], { pipes: { 3: 'sideways' as 'to-child' } }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => spawnWithPipes(['ipckit-test-no-such-program'], { pipes: { 3: 'to-child' } }), 'ERR_IPCKIT_NOT_FOUND');
    throwsWith(() => openInheritedPipe(-1, 'r'), 'ERR_IPCKIT_INVALID_ARGUMENT');
  });

  it('a bad receive option throws even when a message waits in the reader, which keeps it', async () => {
    const { reader, writer } = createPipe({ codec: 'utf8' });
    try {
      // Two frames in one write: the first receive reads both, and keeps the second.
      writer.trySend('one');
      writer.trySend('two');
      await writer.flush();
      assert.equal(await within(reader.receive(), 5000), 'one');
      throwsWith(() => void reader.receive({ timeout: -5 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => void reader.receiveMany(0), 'ERR_IPCKIT_INVALID_ARGUMENT');
      assert.equal(reader.tryReceive(), 'two', 'the refused receive took the message');
    } finally {
      await writer.close();
      await reader.close();
    }
  });

  it('bad stream options of spawnWithPipes leave no pipe end open', () => {
    const pipesBefore = [...openFds().values()].filter((t) => t.startsWith('pipe:')).length;
    throwsWith(() => spawnWithPipes(['cat'], { pipes: { 3: 'to-child' }, highWaterMark: 0 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => spawnWithPipes(['cat'], { pipes: { 3: 'to-child', 4: { direction: 'from-child', readBufferSize: 1 } } }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    assert.equal([...openFds().values()].filter((t) => t.startsWith('pipe:')).length, pipesBefore, 'a pipe end was left open');
  });

  it('openInheritedPipe refuses an fd that is not a pipe, or open the other way', async () => {
    const file = scratchPath('plain');
    const fd = openSync(file, 'w');
    try {
      throwsWith(() => openInheritedPipe(fd, 'w'), 'ERR_IPCKIT_INVALID_ARGUMENT');
    } finally {
      closeSync(fd);
    }
    const [r, w] = native.pipe();
    try {
      throwsWith(() => openInheritedPipe(r, 'w'), 'ERR_IPCKIT_INVALID_ARGUMENT');
      throwsWith(() => openInheritedPipe(w, 'r'), 'ERR_IPCKIT_INVALID_ARGUMENT');
    } finally {
      native.close(r);
      native.close(w);
    }
  });
});

describe('pipe: children with pipes at chosen fds', () => {
  it('sh reads fd 3 and writes fd 4 (lines), and its exit status comes back', async () => {
    const child = spawnWithPipes(['sh', '-c', 'while read -r line <&3; do printf "got:%s\\n" "$line" >&4; done; exit 7'], {
      pipes: { 3: 'to-child', 4: 'from-child' },
      framing: 'lines',
      codec: 'utf8',
    });
    const tx = child.sender(3);
    const rx = child.receiver(4);
    for (const m of ['one', 'two; $(rm -rf /)', 'três']) await tx.send(m);
    await tx.close();
    const got: string[] = [];
    for await (const m of rx) got.push(m);
    assert.deepEqual(got, ['got:one', 'got:two; $(rm -rf /)', 'got:três']);
    assert.deepEqual(await within(child.close(), 5000), { exitCode: 7, signal: null });
    assert.deepEqual(zombieChildren().filter((p) => p === child.pid), []);
  });

  it('sh passes length frames through cat untouched', async () => {
    const child = spawnWithPipes(['sh', '-c', 'exec cat <&3 >&4'], { pipes: { 3: 'to-child', 4: 'from-child' } });
    const sizes = [0, 1, 4096, 70_000, 1 << 20];
    const sending = (async () => {
      for (const s of sizes) await child.sender(3).send(Buffer.alloc(s, s & 0xff));
      await child.sender(3).close();
    })();
    for (const s of sizes) assert.deepEqual(await within(child.receiver(4).receive(), 10_000), Buffer.alloc(s, s & 0xff));
    await sending;
    await rejectsWith(child.receiver(4).receive(), 'ERR_IPCKIT_CLOSED');
    assert.deepEqual(await child.close(), { exitCode: 0, signal: null });
  });

  it('python3 reads length frames from fd 3 and answers on fd 4', async () => {
    const code = [
      'import os, struct',
      "r, w = os.fdopen(3, 'rb'), os.fdopen(4, 'wb')",
      'while (h := r.read(4)):',
      "    n, = struct.unpack('<I', h); p = r.read(n)",
      "    w.write(struct.pack('<I', n) + p[::-1]); w.flush()",
    ].join('\n');
    const child = spawnWithPipes(['python3', '-c', code], { pipes: { 3: 'to-child', 4: 'from-child' }, codec: 'utf8' });
    for (const m of ['abc', '', 'x'.repeat(100_000) + 'y']) {
      await child.sender(3).send(m);
      assert.equal(await within(child.receiver(4).receive(), 10_000), [...m].reverse().join(''));
    }
    assert.deepEqual(await within(child.close(), 10_000), { exitCode: 0, signal: null });
  });

  it('a node child opens the inherited fds with openInheritedPipe (direction from the fd)', async () => {
    const child = spawnWithPipes([process.execPath, join(fixturesDir, 'streams.js'), 'inherited-echo'], {
      pipes: { 3: 'to-child', 4: 'from-child' },
      codec: 'json',
    });
    const tx = child.sender(3);
    const rx = child.receiver(4);
    for (let i = 0; i < 100; i++) await tx.send({ i });
    await tx.close();
    let n = 0;
    for await (const m of rx) assert.deepEqual(m, { got: { i: n++ }, pid: child.pid });
    assert.equal(n, 100);
    assert.deepEqual(await within(child.close(), 10_000), { exitCode: 0, signal: null });
  });

  it('a child that writes a partial frame and exits 0: ERR_IPCKIT_BAD_FRAME with its exit status', async () => {
    const child = spawnWithPipes(['sh', '-c', 'printf "\\012\\000\\000\\000abc" >&3'], { pipes: { 3: 'from-child' } });
    const e = await rejectsWith(within(child.receiver(3).receive(), 10_000), 'ERR_IPCKIT_BAD_FRAME');
    assert.equal(e.details?.exitCode, 0);
    await child.close();
  });
});

describe('pipe: capacity', () => {
  it('reads and sets F_GETPIPE_SZ/F_SETPIPE_SZ; the kernel rounds up to pages', async () => {
    const { reader, writer } = createPipe({ capacity: 1 << 20 });
    try {
      assert.equal(writer.capacity, 1 << 20);
      assert.equal(reader.capacity, 1 << 20);
      assert.equal(writer.setCapacity(4096), 4096);
      assert.equal(reader.setCapacity(5000), 8192);
      assert.equal(writer.capacity, 8192);
    } finally {
      await writer.close();
      await reader.close();
    }
  });

  it('a capacity smaller than the data in the pipe is ERR_IPCKIT_INVALID_ARGUMENT', async () => {
    const { reader, writer } = createPipe({ framing: 'raw' });
    try {
      await writer.send(Buffer.alloc(20_000));
      await writer.flush();
      throwsWith(() => writer.setCapacity(4096), 'ERR_IPCKIT_INVALID_ARGUMENT');
    } finally {
      await writer.close();
      await reader.close();
    }
  });

  it('above /proc/sys/fs/pipe-max-size an unprivileged user gets ERR_IPCKIT_LIMIT naming the limit', async () => {
    const { done } = run(AS_NOBODY[0]!, [...AS_NOBODY.slice(1), process.execPath, join(fixturesDir, 'streams.js'), 'capacity', String(4 << 20)]);
    const r = await done;
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { error?: string; details?: { limit?: string } };
    assert.equal(out.error, 'ERR_IPCKIT_LIMIT');
    assert.equal(out.details?.limit, 'fs.pipe-max-size');
  });
});

describe('pipe: several writers', () => {
  it('{ atomic: true }: frames from four writer processes never interleave', async () => {
    const writers = 4;
    const count = 3000;
    const { reader, writer } = createPipe({ maxMessageSize: native.PIPE_BUF - 4 });
    const children = Array.from({ length: writers }, (_, id) =>
      run(process.execPath, [join(fixturesDir, 'streams.js'), 'atomic-writer', String(id), String(count)], { stdio: ['ignore', 'pipe', 'pipe', writer.fd] }),
    );
    await writer.close(); // only the children hold the write end now
    const next = new Array<number>(writers).fill(0);
    let total = 0;
    try {
      for await (const bytes of reader) {
        const m = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
        const id = m[0]!;
        const seq = m.readUInt32LE(1);
        assert.ok(id < writers, `a frame from an unknown writer ${id}: bytes interleaved`);
        assert.equal(seq, next[id], `writer ${id}: frame ${seq} after ${next[id]! - 1}`);
        assert.ok(m.equals(atomicPayload(id, seq, m.length)), `frame ${seq} of writer ${id} is torn`);
        next[id] = seq + 1;
        total++;
      }
    } finally {
      await reader.close();
    }
    for (const c of children) assert.equal((await c.done).code, 0);
    assert.equal(total, writers * count);
  });

  it('{ atomic: true } refuses a message that does not fit in PIPE_BUF with its header', async () => {
    const { reader, writer } = createPipe({ atomic: true });
    try {
      assert.equal(writer.maxMessageSize, native.PIPE_BUF - 4);
      throwsWith(() => void writer.send(new Uint8Array(native.PIPE_BUF - 3)), 'ERR_IPCKIT_FRAME_TOO_LARGE');
    } finally {
      await writer.close();
      await reader.close();
    }
  });
});

describe('pipe: the reader goes away', () => {
  it('EPIPE is an ERR_IPCKIT_PEER_GONE rejection, no crash, and close() does not report it twice', async () => {
    const { reader, writer } = createPipe({ codec: 'utf8' });
    await reader.close();
    await writer.send('accepted before the failure is known');
    const e = await rejectsWith(writer.flush(), 'ERR_IPCKIT_PEER_GONE');
    assert.equal((e as { systemCode?: string }).systemCode, 'EPIPE');
    await rejectsWith(writer.send('later'), 'ERR_IPCKIT_PEER_GONE');
    await writer.close(); // the loss was reported by flush()
  });

  it('a loss nobody was told about makes close() reject with the bytes lost', async () => {
    const { reader, writer } = createPipe({ codec: 'utf8' });
    await reader.close();
    assert.equal(writer.trySend('never delivered'), true);
    const e = await rejectsWith(writer.close(), 'ERR_IPCKIT_PEER_GONE');
    assert.equal(e.details?.lostBytes, 4 + 'never delivered'.length);
  });

  it('a child reader that exits while we write 64 MiB: one ERR_IPCKIT_PEER_GONE with its exit status', async () => {
    const child = spawnWithPipes(['sh', '-c', 'head -c 100000 <&3 >/dev/null; exit 4'], { pipes: { 3: 'to-child' } });
    const tx = child.sender(3);
    const chunk = Buffer.alloc(64 * 1024, 1);
    let sent = 0;
    const e = await rejectsWith(
      within(
        (async () => {
          for (; sent < 1024; sent++) await tx.send(chunk);
        })(),
        20_000,
        'writing 64 MiB',
      ),
      'ERR_IPCKIT_PEER_GONE',
    );
    assert.ok(sent < 1024);
    assert.equal(e.details?.exitCode, 4);
    assert.deepEqual(await within(child.close(), 5000), { exitCode: 4, signal: null });
  });
});
