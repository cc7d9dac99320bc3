/**
 * Named pipes: the Channel promises, exclusive owner-only creation, refusal of what is
 * not ours (symlinks, regular files, another user's FIFO), end of stream and keepOpen,
 * a writer waiting for a reader (timeout, abort, and ten at once without stalling fs),
 * and unrelated processes (node, python3 os.mkfifo).
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { createFifo, openFifo, unlinkFifo, type FifoReader } from '../src/mechanisms/fifo/fifo.js';
import { channelConformance } from './conformance/channel.js';
import { AS_NOBODY, checkFdLeaks, fixturesDir, jsonLineReader, rejectsWith, run, runFixture, runPython, scratchDir, scratchPath, sleep, throwsWith, waitUntil, within } from './helpers.js';
import { join } from 'node:path';

checkFdLeaks();

channelConformance('fifo', {
  senderCloseEndsReceiver: true,
  backpressure: true,
  async make(o) {
    const path = createFifo(scratchPath('conformance'));
    const receiver = await openFifo(path, 'read', { codec: o.receiverCodec, maxMessageBytes: o.maxMessageBytes });
    const sender = await openFifo(path, 'write', { codec: o.senderCodec, maxMessageBytes: o.maxMessageBytes });
    return {
      sender,
      receiver,
      cleanup: async () => {
        await sender.close({ timeout: 1000 }).catch(() => {});
        await receiver.close();
        unlinkFifo(path);
      },
    };
  },
});

/** A folder another user can enter and write in (the scratch folder itself is 0700). */
function sharedDir(): string {
  const dir = join(scratchDir(), 'shared');
  if (!existsSync(dir)) {
    chmodSync(scratchDir(), 0o755);
    mkdirSync(dir);
    chmodSync(dir, 0o1777);
  }
  return dir;
}

describe('fifo: creating and removing', () => {
  it('createFifo is exclusive and owner-only (0600) by default; unlinkFifo is idempotent', () => {
    const path = createFifo(scratchPath('plain'));
    const st = lstatSync(path);
    assert.ok(st.isFIFO());
    assert.equal(st.mode & 0o7777, 0o600);
    assert.equal(st.uid, process.geteuid!());
    throwsWith(() => createFifo(path), 'ERR_IPCKIT_EXISTS');
    assert.equal(unlinkFifo(path), true);
    assert.equal(unlinkFifo(path), false);
  });

  it('the mode is exactly what was asked, whatever the umask (umask 000 and 022)', async () => {
    const loose = join(scratchDir(), 'umask-000');
    const r = await runFixture('streams', ['umask-create', loose]).done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { mode: 0o600, umask: 0 });
    const shared = await runFixture('streams', ['umask-create', join(scratchDir(), 'umask-000-660'), '660']).done;
    assert.equal(JSON.parse(shared.stdout).mode, 0o660);
    // Our own umask (022 here) would make mkfifo's 0660 a 0640: fchmod sets it exactly.
    const path = createFifo(scratchPath('m660'), { mode: 0o660 });
    assert.equal(statSync(path).mode & 0o7777, 0o660);
    unlinkFifo(path);
  });

  it('a path that exists (file, symlink, FIFO) is ERR_IPCKIT_EXISTS and is left untouched', () => {
    const file = scratchPath('file');
    writeFileSync(file, 'precious');
    const link = scratchPath('link');
    symlinkSync(file, link);
    throwsWith(() => createFifo(file), 'ERR_IPCKIT_EXISTS');
    throwsWith(() => createFifo(link), 'ERR_IPCKIT_EXISTS');
    assert.equal(readFileSync(file, 'utf8'), 'precious');
    assert.ok(lstatSync(link).isSymbolicLink());
  });

  it('unlinkFifo refuses to remove what is not a FIFO', () => {
    const file = scratchPath('not-a-fifo');
    writeFileSync(file, 'x');
    throwsWith(() => unlinkFifo(file), 'ERR_IPCKIT_INVALID_ARGUMENT');
    assert.ok(existsSync(file));
  });

  it('a FIFO without a path goes into the private runtime folder', async () => {
    const path = createFifo();
    try {
      assert.ok(path.startsWith(process.env.IPCKIT_RUNTIME_DIR ?? ''), path);
      assert.equal(statSync(path).mode & 0o7777, 0o600);
    } finally {
      unlinkFifo(path);
    }
  });
});

describe('fifo: opening what is not ours is refused', () => {
  it('a regular file is ERR_IPCKIT_INVALID_ARGUMENT; a missing path ERR_IPCKIT_NOT_FOUND', async () => {
    const file = scratchPath('regular');
    writeFileSync(file, 'x');
    await rejectsWith(openFifo(file, 'read'), 'ERR_IPCKIT_INVALID_ARGUMENT');
    await rejectsWith(openFifo(file, 'write', { timeout: 100 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    await rejectsWith(openFifo(scratchPath('missing'), 'read'), 'ERR_IPCKIT_NOT_FOUND');
    await rejectsWith(openFifo(scratchPath('missing'), 'write'), 'ERR_IPCKIT_NOT_FOUND');
  });

  it('a symlink, even to our own FIFO, is ERR_IPCKIT_PERMISSION', async () => {
    const fifo = createFifo(scratchPath('target'));
    const link = scratchPath('link-to-fifo');
    symlinkSync(fifo, link);
    await rejectsWith(openFifo(link, 'read'), 'ERR_IPCKIT_PERMISSION');
    await rejectsWith(openFifo(link, 'write', { timeout: 100 }), 'ERR_IPCKIT_PERMISSION');
  });

  it('a FIFO wider than 0600 is refused unless that mode is allowed', async () => {
    const path = createFifo(scratchPath('wide'), { mode: 0o666 });
    await rejectsWith(openFifo(path, 'read'), 'ERR_IPCKIT_PERMISSION');
    const reader = await openFifo(path, 'read', { mode: 0o666 });
    await reader.close();
  });

  it("another user's FIFO with mode 0600 is refused (ERR_IPCKIT_PERMISSION) unless trusted", async () => {
    const path = join(sharedDir(), 'nobodys');
    const made = await run(AS_NOBODY[0]!, [...AS_NOBODY.slice(1), '/usr/bin/python3', '-c', 'import os, sys; os.mkfifo(sys.argv[1], 0o600)', path]).done;
    assert.equal(made.code, 0, made.stderr);
    assert.equal(statSync(path).uid, 65534);
    const e = await rejectsWith(openFifo(path, 'read'), 'ERR_IPCKIT_PERMISSION');
    assert.equal(e.details?.uid, 65534);
    await rejectsWith(openFifo(path, 'write', { timeout: 100 }), 'ERR_IPCKIT_PERMISSION');
    const trusted = await openFifo(path, 'read', { anyOwner: true });
    await trusted.close();
    unlinkFifo(path);
  });

  it('our 0600 FIFO opened by nobody: refused, by our owner check and by the kernel', async () => {
    const path = createFifo(join(sharedDir(), 'roots'));
    const asNobody = (options: object) =>
      run(AS_NOBODY[0]!, [...AS_NOBODY.slice(1), process.execPath, join(fixturesDir, 'streams.js'), 'fifo', path, 'w', 'x'], {
        env: { ...process.env, FIFO_OPTIONS: JSON.stringify({ timeout: 2000, ...options }) },
      }).done;
    const reader = await openFifo(path, 'read');
    try {
      const ours = JSON.parse((await asNobody({})).stdout) as { error: string; message: string };
      assert.equal(ours.error, 'ERR_IPCKIT_PERMISSION');
      assert.match(ours.message, /belongs to uid 0/);
      const kernels = JSON.parse((await asNobody({ anyOwner: true })).stdout) as { error: string; message: string };
      assert.equal(kernels.error, 'ERR_IPCKIT_PERMISSION');
      assert.match(kernels.message, /EACCES/);
    } finally {
      await reader.close();
      unlinkFifo(path);
    }
  });
});

describe('fifo: end of stream', () => {
  it('a reader opened before any writer waits for one (it does not end at once)', async () => {
    const path = createFifo(scratchPath('early-reader'));
    const reader = await openFifo(path, 'read', { codec: 'utf8' });
    try {
      await rejectsWith(reader.receive({ timeout: 150 }), 'ERR_IPCKIT_TIMEOUT');
      const writer = await openFifo(path, 'write', { codec: 'utf8' });
      await writer.send('first');
      assert.equal(await within(reader.receive(), 5000), 'first');
      await writer.close();
      await rejectsWith(within(reader.receive(), 5000), 'ERR_IPCKIT_CLOSED');
    } finally {
      await reader.close();
      unlinkFifo(path);
    }
  });

  it('the stream ends when the last of several writers closes, not before', async () => {
    const path = createFifo(scratchPath('two-writers'));
    const reader = await openFifo(path, 'read', { codec: 'utf8' });
    try {
      const a = await openFifo(path, 'write', { codec: 'utf8' });
      const b = await openFifo(path, 'write', { codec: 'utf8' });
      await a.send('from a');
      await a.close();
      assert.equal(await within(reader.receive(), 5000), 'from a');
      await rejectsWith(reader.receive({ timeout: 100 }), 'ERR_IPCKIT_TIMEOUT');
      await b.send('from b');
      await b.close();
      assert.equal(await within(reader.receive(), 5000), 'from b');
      await rejectsWith(within(reader.receive(), 5000), 'ERR_IPCKIT_CLOSED');
    } finally {
      await reader.close();
      unlinkFifo(path);
    }
  });

  it('a writer that was already waiting in a blocking open (python3) and sends nothing: the end still comes', async () => {
    const path = createFifo(scratchPath('blocked-writer'));
    const py = runPython('import os, sys, time\nfd = os.open(sys.argv[1], os.O_WRONLY)\ntime.sleep(0.2)\nos.close(fd)', [path]);
    await sleep(100); // python is now blocked in open(), waiting for a reader
    const reader = await openFifo(path, 'read');
    try {
      await rejectsWith(within(reader.receive(), 5000, 'the end of stream'), 'ERR_IPCKIT_CLOSED');
      assert.equal((await py.done).code, 0);
    } finally {
      await reader.close();
      unlinkFifo(path);
    }
  });

  it('{ keepOpen: true } stays open across successive writer processes', async () => {
    const path = createFifo(scratchPath('keep-open'));
    const reader = await openFifo(path, 'read', { codec: 'utf8', keepOpen: true });
    try {
      for (const word of ['one', 'two', 'three']) {
        const w = await runFixture('streams', ['fifo', path, 'w', word]).done;
        assert.deepEqual(JSON.parse(w.stdout), { sent: 1 });
        assert.equal(await within(reader.receive(), 5000), word);
      }
      // No writer now, and still no end.
      await rejectsWith(reader.receive({ timeout: 150 }), 'ERR_IPCKIT_TIMEOUT');
    } finally {
      await reader.close();
      unlinkFifo(path);
    }
  });

  it('{ unlinkOnClose: true } removes the path with the last close of that end', async () => {
    const path = createFifo(scratchPath('unlink-on-close'));
    const reader = await openFifo(path, 'read', { unlinkOnClose: true });
    await reader.close();
    assert.equal(existsSync(path), false);
  });
});

describe('fifo: a writer waits for a reader', () => {
  it('with a timeout (ERR_IPCKIT_TIMEOUT) and with an abort (ERR_IPCKIT_ABORTED, cause kept)', async () => {
    const path = createFifo(scratchPath('no-reader'));
    try {
      const started = Date.now();
      await rejectsWith(openFifo(path, 'write', { timeout: 150 }), 'ERR_IPCKIT_TIMEOUT');
      assert.ok(Date.now() - started >= 140);
      const ac = new AbortController();
      const pending = openFifo(path, 'write', { signal: ac.signal });
      setTimeout(() => ac.abort(new Error('changed my mind')), 50);
      const e = await rejectsWith(pending, 'ERR_IPCKIT_ABORTED');
      assert.equal(((e as { cause?: Error }).cause as Error).message, 'changed my mind');
      await rejectsWith(openFifo(path, 'write', { signal: AbortSignal.abort() }), 'ERR_IPCKIT_ABORTED');
    } finally {
      unlinkFifo(path);
    }
  });

  it('and opens as soon as a reader (another process) comes', async () => {
    const path = createFifo(scratchPath('late-reader'));
    const opening = openFifo(path, 'write', { codec: 'utf8', timeout: 10_000 });
    await sleep(100);
    const reader = runFixture('streams', ['fifo', path, 'r']);
    const writer = await within(opening, 10_000);
    await writer.send('hello from far away');
    await writer.close();
    const out = (await reader.done).stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(out, [{ opened: true }, { message: 'hello from far away' }, { end: true }]);
    unlinkFifo(path);
  });

  it('ten writers waiting for readers at once do not stall fs calls in the same process', async () => {
    const paths = Array.from({ length: 10 }, (_, i) => createFifo(scratchPath(`waiting-${i}`)));
    let opened = 0;
    const openings = paths.map((p) =>
      openFifo(p, 'write', { codec: 'utf8', timeout: 30_000 }).then((w) => {
        opened++;
        return w;
      }),
    );
    const content = await within(readFile(join(fixturesDir, 'streams.js'), 'utf8'), 10_000, 'fs.readFile while ten FIFO opens wait');
    assert.ok(content.length > 0);
    assert.equal(opened, 0, 'the writers were still waiting when readFile finished');
    const readers: FifoReader<string>[] = [];
    for (const p of paths) readers.push(await openFifo(p, 'read', { codec: 'utf8' }));
    const writers = await within(Promise.all(openings), 10_000);
    for (const [i, w] of writers.entries()) await w.send(`to ${i}`);
    for (const [i, r] of readers.entries()) assert.equal(await within(r.receive(), 5000), `to ${i}`);
    for (const w of writers) await w.close();
    for (const r of readers) await r.close();
    for (const p of paths) unlinkFifo(p);
  });
});

describe('fifo: unrelated processes', () => {
  it('a node reader and a node writer that know only the path', async () => {
    const path = createFifo(scratchPath('unrelated'));
    const reader = runFixture('streams', ['fifo', path, 'r']);
    const next = jsonLineReader(reader.child);
    assert.deepEqual(await within(next(), 10_000), { opened: true });
    const writer = await runFixture('streams', ['fifo', path, 'w', 'α', 'β', 'γ']).done;
    assert.deepEqual(JSON.parse(writer.stdout), { sent: 3 });
    for (const m of ['α', 'β', 'γ']) assert.deepEqual(await within(next(), 5000), { message: m });
    assert.deepEqual(await within(next(), 5000), { end: true });
    unlinkFifo(path);
  });

  it('python3 makes the FIFO with os.mkfifo and reads our frames; then writes frames we read', async () => {
    const path = join(scratchDir(), 'python-made');
    const reader = runPython(
      [
        'import os, sys, struct',
        'os.mkfifo(sys.argv[1], 0o600)',
        "r = open(sys.argv[1], 'rb')",
        'while (h := r.read(4)):',
        "    n, = struct.unpack('<I', h); print(r.read(n).decode())",
      ].join('\n'),
      [path],
    );
    assert.ok(await waitUntil(() => existsSync(path), 5000), 'python made no FIFO');
    const writer = await openFifo(path, 'write', { codec: 'utf8', timeout: 5000 });
    for (const m of ['from', 'node', 'to python']) await writer.send(m);
    await writer.close();
    assert.equal((await reader.done).stdout, 'from\nnode\nto python\n');
    unlinkFifo(path);

    const py = runPython(
      [
        'import os, sys, struct',
        'os.mkfifo(sys.argv[1], 0o600)',
        "w = open(sys.argv[1], 'wb')",
        "for m in [b'from', b'python', b'']: w.write(struct.pack('<I', len(m)) + m)",
        'w.close()',
      ].join('\n'),
      [path],
    );
    assert.ok(await waitUntil(() => existsSync(path), 5000), 'python made no FIFO');
    const rx = await openFifo(path, 'read', { codec: 'utf8' });
    const got: string[] = [];
    for await (const m of rx) got.push(m);
    assert.deepEqual(got, ['from', 'python', '']);
    await rx.close();
    assert.equal((await py.done).code, 0);
    unlinkFifo(path);
  });
});

describe('fifo: the reader goes away', () => {
  it('a send after the reader closed is ERR_IPCKIT_PEER_GONE', async () => {
    const path = createFifo(scratchPath('gone'));
    const reader = await openFifo(path, 'read');
    const writer = await openFifo(path, 'write', { codec: 'utf8' });
    await reader.close();
    await writer.send('x');
    await rejectsWith(writer.flush(), 'ERR_IPCKIT_PEER_GONE');
    await writer.close();
    unlinkFifo(path);
  });

  it('capacity: F_SETPIPE_SZ on a FIFO', async () => {
    const path = createFifo(scratchPath('capacity'));
    const reader = await openFifo(path, 'read', { capacityBytes: 1 << 20 });
    const writer = await openFifo(path, 'write');
    assert.equal(writer.capacityBytes, 1 << 20);
    await writer.close();
    await reader.close();
    unlinkFifo(path);
  });
});
