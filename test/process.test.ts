/**
 * spawnProcess / parentChannel (src/mechanisms/process): real Node children over rings and
 * over pipes; the child killed, the parent killed, a child that never opens its end, and
 * 1 GiB through in pieces with bounded memory on both sides.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { isIpcError } from '../src/core/errors.js';
import { spawnProcess, type SpawnedProcess } from '../src/mechanisms/process/process.js';
import { parentChannel } from '../src/mechanisms/process/parent.js';
import { spawnSync } from 'node:child_process';
import { fixturesDir, isRoot, processGone, rejectsWith, repoRoot, run, throwsWith, waitUntil, within, zombieChildren } from './helpers.js';

const child = `${fixturesDir}process-child.js`;
const started: SpawnedProcess<any>[] = [];
function start(args: string[], options: Parameters<typeof spawnProcess>[1] = {}): SpawnedProcess<any> {
  const p = spawnProcess(child, { args, ...options });
  started.push(p);
  return p;
}
const ourRings = (): string[] => readdirSync('/dev/shm').filter((n) => n.startsWith(`ipckit-proc-${process.pid}-`));

after(async () => {
  for (const p of started) if (p.exitStatus === null) p.kill('SIGKILL');
  await Promise.all(started.map((p) => p.exited));
  assert.deepEqual(ourRings(), [], 'ring names left in /dev/shm');
  assert.deepEqual(zombieChildren(), []);
});

for (const transport of ['ring', 'pipe'] as const) {
  describe(`spawnProcess over ${transport}s`, () => {
    it('requests round trip; the child answers with serve(parentChannel(), handler)', async () => {
      const p = start(['echo'], { transport });
      assert.equal(p.transport, transport);
      assert.equal(await within(p.request({ op: 'pid' }), 20_000), p.pid);
      const values = await Promise.all(Array.from({ length: 500 }, (_, i) => p.request({ op: 'echo', value: { i, s: 'x'.repeat(i) } })));
      values.forEach((v: any, i) => assert.deepEqual(v, { i, s: 'x'.repeat(i) }));
      const e = await p.request({ op: 'throw' }).then(() => assert.fail('resolved'), (err: any) => err);
      assert.equal(e.name, 'RangeError');
      assert.equal(e.code, 'E_NOPE');
      assert.match(e.stack, /process-child/);
      await rejectsWith(p.request({ op: 'throw-ipc' }), 'ERR_IPCKIT_LIMIT');
      // The channel ends; the child's serve loop ends, and so does the child.
      const exit = await within(p.close(), 20_000);
      assert.deepEqual(exit, { exitCode: 0, signal: null });
    });

    it('plain messages both ways, in order, until close()', async () => {
      const p = start(['pingpong'], { transport });
      for (let i = 0; i < 1000; i++) await p.send({ i });
      for (let i = 0; i < 1000; i++) assert.deepEqual(await within(p.receive(), 20_000), { i });
      assert.deepEqual(await within(p.close(), 20_000), { exitCode: 0, signal: null });
    });

    it('sendMany both ways: 20,000 JSON messages in batch frames arrive in order, as send would deliver them', async () => {
      const p = start(['many-echo'], { transport });
      const sent = Array.from({ length: 20_000 }, (_, i) => (i % 10 === 0 ? `m${i}` : { i, d: 'q'.repeat(i % 300), at: i % 1000 === 0 ? new Date(i) : null }));
      const sending = (async () => {
        for (let i = 0; i < sent.length; ) {
          const k = 1 + ((i * 7919) % 700); // batches of 1 to 700
          await p.sendMany(sent.slice(i, i + k));
          i += k;
        }
      })();
      const got: unknown[] = [];
      while (got.length < sent.length) got.push(await within(p.receive(), 20_000));
      await sending;
      assert.deepEqual(got, sent.map((m) => JSON.parse(JSON.stringify(m))));
      assert.deepEqual(await within(p.close(), 20_000), { exitCode: 0, signal: null });
    });

    it('a sendMany the child stops reading: ERR_IPCKIT_PEER_GONE, details.sent counts messages (not frames), with the exit code', async () => {
      const p = start(['take-exit'], { transport });
      await p.send('take this one');
      const total = 200_000;
      const e = await within(rejectsWith(p.sendMany(Array.from({ length: total }, (_, i) => ({ i }))), 'ERR_IPCKIT_PEER_GONE'), 20_000);
      const sent = e.details?.sent as number;
      // What the ring or pipe held before the child left: many batch frames of up to 256 messages each.
      assert.ok(Number.isInteger(sent) && sent >= 256 && sent < total, `details.sent ${sent}`);
      assert.match(e.message, new RegExp(`; ${sent} of ${total} messages were sent`));
      assert.equal(e.details?.exitCode, 3);
      await p.close();
    });

    it('the child SIGKILLed: pending requests reject with ERR_IPCKIT_PEER_GONE and its exit', async () => {
      const p = start(['echo'], { transport });
      await within(p.request({ op: 'pid' }), 20_000);
      const pending = [p.request({ op: 'hang' }), p.request({ op: 'hang' })];
      p.kill('SIGKILL');
      for (const r of pending) {
        const e = await within(rejectsWith(r, 'ERR_IPCKIT_PEER_GONE'), 10_000);
        assert.equal(e.details?.signal, 'SIGKILL');
        assert.equal(e.details?.pid, p.pid);
      }
      await rejectsWith(p.request({ op: 'pid' }), 'ERR_IPCKIT_PEER_GONE');
      await p.close();
    });

    it('a child that exits without opening its end: waits end with ERR_IPCKIT_PEER_GONE and its exit code', async () => {
      const p = start(['exit', '3'], { transport });
      const r = p.request({ op: 'pid' });
      const rx = p.receive().then(() => assert.fail('received'), (x: unknown) => x);
      const e = await within(rejectsWith(r, 'ERR_IPCKIT_PEER_GONE'), 10_000);
      assert.equal(e.details?.exitCode, 3);
      const e2 = await within(rx, 10_000);
      assert.ok(isIpcError(e2) && (e2.code === 'ERR_IPCKIT_PEER_GONE' || e2.code === 'ERR_IPCKIT_CLOSED'), String(e2));
      assert.deepEqual(await p.close(), { exitCode: 3, signal: null });
    });

    it('a reply sent just before the child exits still arrives', async () => {
      const p = start(['reply-exit'], { transport });
      assert.deepEqual(await within(p.request('hello'), 20_000), { got: 'hello' });
      assert.deepEqual(await within(p.exited, 20_000), { exitCode: 0, signal: null });
    });
  });
}

describe('spawnProcess: lifetime', () => {
  it('the parent SIGKILLed: its child goes too (no orphan), and the ring names are gone', async () => {
    const p = start(['echo']);
    const grandchild = (await within(p.request({ op: 'spawn-grandchild' }), 20_000)) as number;
    assert.ok(!processGone(grandchild));
    assert.equal(readdirSync('/dev/shm').filter((n) => n.startsWith(`ipckit-proc-${p.pid}-`)).length, 0, 'the grandchild removed its ring names');
    p.kill('SIGKILL');
    await p.exited;
    assert.ok(await waitUntil(() => processGone(grandchild), 10_000), `grandchild ${grandchild} outlived its parent`);
  });

  it('1 GiB sent through in 1 MiB pieces with bounded memory on both sides (ring)', async () => {
    const p = start(['sink', String(2 ** 30)], { codec: 'bytes', capacityBytes: 4 * 1024 * 1024, maxMessageBytes: 1024 * 1024 });
    const piece = new Uint8Array(1024 * 1024).fill(7);
    const rss0 = process.memoryUsage.rss();
    let maxRss = rss0;
    for (let i = 0; i < 1024; i++) {
      await p.send(piece);
      if (i % 32 === 0) maxRss = Math.max(maxRss, process.memoryUsage.rss());
    }
    const report = JSON.parse(Buffer.from((await within(p.receive(), 120_000)) as Uint8Array).toString()) as { bytes: number; pieces: number; maxRss: number };
    assert.equal(report.bytes, 1024 * 1024 * 1024);
    assert.equal(report.pieces, 1024);
    const MB = 1024 * 1024;
    assert.ok(maxRss - rss0 < 300 * MB, `parent RSS grew by ${((maxRss - rss0) / MB).toFixed(0)} MB`);
    assert.ok(report.maxRss < 300 * MB, `child RSS reached ${(report.maxRss / MB).toFixed(0)} MB`);
    await p.close();
  });

  it('1 GiB through pipes in pieces, bounded too', async () => {
    const p = start(['sink', String(2 ** 30)], { codec: 'bytes', transport: 'pipe' });
    const piece = new Uint8Array(1024 * 1024).fill(7);
    const rss0 = process.memoryUsage.rss();
    let maxRss = rss0;
    for (let i = 0; i < 1024; i++) {
      await p.send(piece);
      if (i % 32 === 0) maxRss = Math.max(maxRss, process.memoryUsage.rss());
    }
    const report = JSON.parse(Buffer.from((await within(p.receive(), 120_000)) as Uint8Array).toString()) as { bytes: number; maxRss: number };
    assert.equal(report.bytes, 1024 * 1024 * 1024);
    assert.ok(maxRss - rss0 < 300 * 1024 * 1024, `parent RSS grew by ${((maxRss - rss0) / 2 ** 20).toFixed(0)} MB`);
    assert.ok(report.maxRss < 300 * 1024 * 1024, `child RSS reached ${(report.maxRss / 2 ** 20).toFixed(0)} MB`);
    await p.close();
  });
});

describe('spawnProcess: where shared memory cannot be made', () => {
  // A mount namespace of its own with /dev/shm read-only: shm_open(O_CREAT) fails with EROFS.
  const canUnshare = isRoot && spawnSync('unshare', ['-m', 'true']).status === 0;
  it('falls back to pipes by itself (transport "auto"), and "ring" says why it cannot', { skip: !canUnshare && 'needs root and unshare(1)' }, async () => {
    const script = `
      import { spawnProcess } from ${JSON.stringify(`${repoRoot}dist/src/index.js`)};
      const p = spawnProcess(${JSON.stringify(child)}, { args: ['echo'] });
      console.log(p.transport, await p.request({ op: 'echo', value: 'via pipes' }, { timeout: 20000 }));
      await p.close();
      try { spawnProcess(${JSON.stringify(child)}, { transport: 'ring' }); } catch (e) { console.log(e.code); }
    `;
    const r = await run('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs -o ro tmpfs /dev/shm && exec "$0" --input-type=module -e "$1"', process.execPath, script], { timeoutMs: 60_000 }).done;
    assert.equal(r.code, 0, r.stderr);
    const [first, second] = r.stdout.trim().split('\n');
    assert.equal(first, 'pipe via pipes');
    assert.match(second!, /^ERR_IPCKIT_/);
  });
});

describe('spawnProcess: arguments', () => {
  it('bad arguments throw at once; a missing module is ERR_IPCKIT_NOT_FOUND', () => {
    throwsWith(() => spawnProcess(child, { transport: 'shm' as never }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => spawnProcess(child, { args: [1] as never }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => spawnProcess(child, { codec: 'yaml' as never }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => spawnProcess(child, { capacityBytes: 1000 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => spawnProcess(new URL('http://example.com/x.js')), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => spawnProcess(`${fixturesDir}no-such-module.js`), 'ERR_IPCKIT_NOT_FOUND');
    assert.deepEqual(ourRings(), []);
  });

  it('parentChannel() outside a spawnProcess child is ERR_IPCKIT_NOT_FOUND', () => {
    throwsWith(() => parentChannel(), 'ERR_IPCKIT_NOT_FOUND');
  });
});
