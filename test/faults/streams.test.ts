/**
 * Bad input and dead peers on byte streams, each with its error code and no hang: a huge
 * announced frame, a stream cut inside a frame, a writer killed mid-message, a reader
 * that exits while we write 64 MiB, a timeout and an abort on a full pipe.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createFifo, openFifo, unlinkFifo } from '../../src/mechanisms/fifo/fifo.js';
import { createPipe, spawnWithPipes } from '../../src/mechanisms/pipe/pipe.js';
import { native } from '../../src/os/native.js';
import { unlinkMessageQueue } from '../../src/mechanisms/mqueue/mqueue.js';
import { checkFdLeaks, fixturesDir, jsonLineReader, rejectsWith, repoRoot, run, runPython, scratchPath, uniqueName, within } from '../helpers.js';
import { join } from 'node:path';

checkFdLeaks();

/** Bytes of ArrayBuffers (Buffers) allocated now, after a collection when --expose-gc allows it. */
function bufferBytes(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().arrayBuffers;
}

describe('faults: frames that are too large or cut short', () => {
  it('a peer announcing a 2^31-byte frame and sending nothing: ERR_IPCKIT_FRAME_TOO_LARGE at once, nothing allocated', async () => {
    const child = spawnWithPipes(['python3', '-c', "import os, struct, time; os.write(3, struct.pack('<I', 2**31)); time.sleep(30)"], {
      pipes: { 3: 'read' },
    });
    const before = bufferBytes();
    const e = await rejectsWith(within(child.receiver(3).receive(), 5000, 'the oversized frame'), 'ERR_IPCKIT_FRAME_TOO_LARGE');
    assert.equal(e.details?.length, 2 ** 31);
    assert.equal(e.details?.maxMessageBytes, 16 * 1024 * 1024);
    assert.ok(bufferBytes() - before < 4 * 1024 * 1024, 'the announced length was allocated');
    child.kill('SIGKILL');
    await child.close();
  });

  it('with a limit above it, the same frame grows only with the bytes that come (and a timeout ends the wait)', async () => {
    const { reader, writer } = createPipe({ maxMessageBytes: 2 ** 32 - 1 });
    const frame = Buffer.alloc(4 + 1000);
    frame.writeUInt32LE(2 ** 31);
    const before = bufferBytes();
    assert.equal(native.write(writer.fd, frame, 0, frame.length), frame.length); // by hand: a lying peer
    await rejectsWith(reader.receive({ timeout: 200 }), 'ERR_IPCKIT_TIMEOUT');
    assert.ok(bufferBytes() - before < 64 * 1024 * 1024, 'a 2 GiB frame was allocated up front');
    await writer.close();
    const e = await rejectsWith(within(reader.receive(), 5000), 'ERR_IPCKIT_BAD_FRAME');
    assert.deepEqual(e.details, { received: 1000, expected: 2 ** 31 });
    await reader.close();
  });

  it('a stream that ends inside a frame: ERR_IPCKIT_BAD_FRAME, the partial bytes never delivered', async () => {
    const path = createFifo(scratchPath('cut'));
    const reader = await openFifo(path, 'read', { codec: 'utf8' });
    const py = runPython("import sys, struct\nf = open(sys.argv[1], 'wb')\nf.write(struct.pack('<I', 2) + b'ok' + struct.pack('<I', 100) + b'only part')", [path]);
    assert.equal(await within(reader.receive(), 5000), 'ok');
    const e = await rejectsWith(within(reader.receive(), 5000), 'ERR_IPCKIT_BAD_FRAME');
    assert.deepEqual(e.details, { received: 9, expected: 100 });
    await rejectsWith(reader.receive(), 'ERR_IPCKIT_CLOSED');
    assert.equal((await py.done).code, 0);
    await reader.close();
    unlinkFifo(path);
  });
});

describe('faults: a writer killed mid-message', () => {
  it('pipe: the complete message arrives, the partial one never; the end is ERR_IPCKIT_PEER_GONE with the signal', async () => {
    const child = spawnWithPipes([process.execPath, join(fixturesDir, 'streams.js'), 'partial-writer'], {
      pipes: { 3: 'read' },
      stdout: 'ignore',
      codec: 'utf8',
    });
    const rx = child.receiver(3);
    assert.equal(await within(rx.receive(), 10_000), 'complete');
    child.kill('SIGKILL');
    const e = await rejectsWith(within(rx.receive(), 5000), 'ERR_IPCKIT_PEER_GONE');
    assert.equal(e.details?.signal, 'SIGKILL');
    assert.equal(e.details?.received, 50);
    await rejectsWith(rx.receive(), 'ERR_IPCKIT_CLOSED');
    await child.close();
  });

  it('FIFO (an unrelated writer, no exit status known): ERR_IPCKIT_BAD_FRAME, the partial message never delivered', async () => {
    const path = createFifo(scratchPath('killed-writer'));
    const reader = await openFifo(path, 'read', { codec: 'utf8' });
    const code = `
      import { openFifo } from ${JSON.stringify(new URL('../../src/mechanisms/fifo/fifo.js', import.meta.url).href)};
      const w = await openFifo(${JSON.stringify(path)}, 'write', { framing: 'raw' });
      const h = Buffer.alloc(8); h.writeUInt32LE(4, 0); h.write('done', 4);
      const partial = Buffer.alloc(4 + 10); partial.writeUInt32LE(1000, 0);
      await w.send(Buffer.concat([h, partial])); await w.flush();
      process.stdout.write('{"ready":true}\\n');
      setInterval(() => {}, 1000);`;
    const writer = run(process.execPath, ['--input-type=module', '-e', code]);
    assert.deepEqual(await within(jsonLineReader(writer.child)(), 10_000), { ready: true });
    assert.equal(await within(reader.receive(), 5000), 'done');
    writer.child.kill('SIGKILL');
    await writer.done;
    await rejectsWith(within(reader.receive(), 5000), 'ERR_IPCKIT_BAD_FRAME');
    await reader.close();
    unlinkFifo(path);
  });
});

describe('faults: a reader that exits while we write 64 MiB', () => {
  it('FIFO: python3 reads 100 kB and exits; our sends end with one ERR_IPCKIT_PEER_GONE, no crash', async () => {
    const path = createFifo(scratchPath('reader-exits'));
    const py = runPython("import sys\nf = open(sys.argv[1], 'rb')\nf.read(100000)", [path]);
    const writer = await openFifo(path, 'write', { timeout: 10_000 });
    const chunk = Buffer.alloc(64 * 1024, 3);
    let sent = 0;
    await rejectsWith(
      within(
        (async () => {
          for (; sent < 1024; sent++) await writer.send(chunk);
        })(),
        20_000,
        'writing 64 MiB',
      ),
      'ERR_IPCKIT_PEER_GONE',
    );
    assert.ok(sent < 1024);
    await writer.close(); // reported already: no second error
    assert.equal((await py.done).code, 0);
    unlinkFifo(path);
  });
});

describe('faults: waits end', () => {
  it('a send on a full pipe times out (ERR_IPCKIT_TIMEOUT) or is aborted (ERR_IPCKIT_ABORTED), and sent nothing', async () => {
    const { reader, writer } = createPipe({ framing: 'raw', highWaterMark: 1024, capacityBytes: 4096 });
    let accepted = 0;
    while (writer.trySend(Buffer.alloc(512, 1))) accepted += 512; // the kernel pipe and our buffer are full now
    await rejectsWith(writer.send(Buffer.alloc(2048, 2), { timeout: 100 }), 'ERR_IPCKIT_TIMEOUT');
    const ac = new AbortController();
    const pending = writer.send(Buffer.alloc(2048, 2), { signal: ac.signal });
    ac.abort('stop');
    await rejectsWith(pending, 'ERR_IPCKIT_ABORTED');
    const reading = (async () => {
      let n = 0;
      for await (const chunk of reader) {
        assert.equal(chunk.indexOf(2), -1, 'bytes of a send that timed out or was aborted arrived');
        n += chunk.length;
      }
      return n;
    })();
    await within(writer.close(), 5000);
    assert.equal(await within(reading, 5000), accepted);
    await reader.close();
  });
});

describe('faults: a payload that fails to decode', () => {
  it('receiveMany stops before it and the next receive reports it (ERR_IPCKIT_BAD_FRAME): it is never dropped silently', async () => {
    const child = spawnWithPipes(['python3', '-c', "import os, struct\nframes = [b'1', b'{bad', b'3']\nos.write(3, b''.join(struct.pack('<I', len(f)) + f for f in frames))"], {
      pipes: { 3: 'read' },
      codec: 'json',
    });
    const rx = child.receiver<unknown>(3);
    await within(child.exited, 5000, 'python'); // all three frames wait in the pipe
    assert.deepEqual(await within(rx.receiveMany(10), 5000), [1]);
    await rejectsWith(within(rx.receive(), 5000), 'ERR_IPCKIT_BAD_FRAME');
    assert.equal(await within(rx.receive(), 5000), 3);
    await rejectsWith(within(rx.receive(), 5000), 'ERR_IPCKIT_CLOSED');
    await child.close();
  });
});

describe('faults: pipe ends nobody closed', () => {
  it('a pipe collected without close() closes both of its descriptors', async () => {
    // A writer nobody references any more used to keep its fd for the life of the thread
    // (the watcher's destructor dropped the env cleanup hook without closing): in a worker
    // collected before terminate(), its pipe end stayed open in the process.
    const code = `
      const { createPipe } = await import(process.argv[1]);
      const { readlinkSync } = await import('node:fs');
      let p = createPipe();
      const fds = [p.reader.fd, p.writer.fd];
      const inode = readlinkSync('/proc/self/fd/' + fds[1]);
      p = null;
      for (let i = 0; i < 20; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 5)); }
      console.log(JSON.stringify(fds.filter((fd) => { try { return readlinkSync('/proc/self/fd/' + fd) === inode; } catch { return false; } })));
    `;
    const r = await run(process.execPath, ['--expose-gc', '--input-type=module', '-e', code, join(repoRoot, 'dist', 'src', 'index.js')], { timeoutMs: 20_000 }).done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [], 'descriptors of the collected pipe are still open');
  });
});

describe('faults: pipe ends nobody closed, in a worker that ends', () => {
  for (const how of ['ends by itself', 'is terminated'] as const) {
    it(`pipes that never waited (no watcher was ever made) are closed when their worker ${how}`, async () => {
      // Until a pipe end first waits it has no native watcher: this thread's set of owned
      // descriptors (native ownFd) is what closes it when the worker ends.
      const code = `
        const { Worker } = await import('node:worker_threads');
        const { readlinkSync } = await import('node:fs');
        const w = new Worker(\`
          const { parentPort, workerData } = await import('node:worker_threads');
          const { readlinkSync } = await import('node:fs');
          import(workerData).then(async ({ createPipe }) => {
            const ends = [];
            for (let i = 0; i < 3; i++) {
              const p = createPipe();
              await p.writer.send(Buffer.from('x'));
              if (p.reader.tryReceive() === undefined) throw new Error('no message');
              ends.push(p); // kept, never closed
            }
            const fds = ends.flatMap((p) => [p.reader.fd, p.writer.fd]);
            globalThis.keep = ends;
            parentPort.postMessage(fds.map((fd) => [fd, readlinkSync('/proc/self/fd/' + fd)]));
            ${how === 'is terminated' ? "setInterval(() => {}, 1000); // keeps running until terminated" : ''}
          });
        \`, { eval: true, workerData: process.argv[1] });
        // Listened for at once: a worker that ends right after its message can have its exit
        // delivered with the message, before an await on the message returns (exit code 13).
        const exited = new Promise((r) => w.once('exit', r));
        const fds = await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
        ${how === 'is terminated' ? 'await w.terminate();' : 'await exited;'}
        console.log(JSON.stringify(fds.filter(([fd, link]) => { try { return readlinkSync('/proc/self/fd/' + fd) === link; } catch { return false; } })));
      `;
      const r = await run(process.execPath, ['--input-type=module', '-e', code, join(repoRoot, 'dist', 'src', 'index.js')], { timeoutMs: 20_000 }).done;
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), [], 'descriptors of the worker\'s pipes are still open');
    });
  }
});

describe('faults: a worker that uses ipckit alone is terminated while it waits', () => {
  // The main thread of this child never loads ipckit: when the worker ends, Node unloads
  // the addon, and anything the addon still had to close must not run after that.
  const CHILD = `
    const { Worker } = require('node:worker_threads');
    const w = new Worker(\`
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData).then(({ createPipe }) => {
        const { reader, writer } = createPipe();
        reader.receive().catch(() => {});
        parentPort.postMessage('waiting');
      });
    \`, { eval: true, workerData: process.argv[1] });
    w.once('message', async () => {
      await w.terminate();
      setTimeout(() => console.log('survived'), 100);
    });
  `;

  it('the descriptors it had open are closed when it ends (pipe ends, a FIFO reader, a message queue)', async () => {
    const fifo = createFifo(scratchPath('wfifo'));
    const queue = uniqueName('wq');
    const child = `
      const { Worker } = require('node:worker_threads');
      const { readdirSync, readlinkSync } = require('node:fs');
      const ours = () => readdirSync('/proc/self/fd').map((fd) => { try { return readlinkSync('/proc/self/fd/' + fd); } catch { return ''; } })
        .filter((t) => t.startsWith('pipe:') || t.includes('ipckit-test')).sort();
      const before = ours();
      const w = new Worker(\`
        const { parentPort, workerData } = require('node:worker_threads');
        import(workerData.index).then(async (ipc) => {
          const idle = ipc.createPipe();
          const waiting = ipc.createPipe();
          waiting.reader.receive().catch(() => {});
          const fifo = await ipc.openFifo(workerData.fifo, 'read', { keepOpen: true });
          fifo.receive().catch(() => {});
          const q = ipc.createMessageQueue(workerData.queue, { maxMessages: 1, maxMessageBytes: 8 });
          q.receive().catch(() => {});
          // Held, so that no handle is collected (a collected handle closes its descriptor) before the count.
          globalThis.keep = [idle, waiting, fifo, q];
          parentPort.postMessage('ready');
        });
      \`, { eval: true, workerData: { index: process.argv[1], fifo: process.argv[2], queue: process.argv[3] } });
      w.once('message', async () => {
        const opened = ours().filter((t) => !before.includes(t));
        const during = opened.length;
        await w.terminate();
        setTimeout(() => console.log(JSON.stringify({ during, opened, left: ours().filter((t) => !before.includes(t)) })), 100);
      });
    `;
    try {
      const r = await run(process.execPath, ['-e', child, join(repoRoot, 'dist', 'src', 'index.js'), fifo, queue], { timeoutMs: 20_000 }).done;
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { during: number; opened: string[]; left: string[] };
      // Two pipes (4), the FIFO and its kept-open write end (2), the queue (1).
      assert.ok(out.during >= 7, `the worker had ${out.during} of its descriptors open: ${out.opened.join(', ')}`);
      assert.deepEqual(out.left, [], 'descriptors of the ended worker are still open');
    } finally {
      unlinkFifo(fifo);
      unlinkMessageQueue(queue);
    }
  });

  it('a pending pipe receive: the process survives', async () => {
    const r = await run(process.execPath, ['-e', CHILD, join(repoRoot, 'dist', 'src', 'index.js')], { timeoutMs: 20_000 }).done;
    assert.equal(r.signal, null, `the process died of ${r.signal}`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'survived');
  });
});
