/**
 * Every kind, asked for when the process has no free descriptor (RLIMIT_NOFILE reached):
 * ERR_IPCKIT_LIMIT naming RLIMIT_NOFILE, the limit actually hit; never another limit
 * (mq_open's EMFILE was blamed on RLIMIT_MSGQUEUE, because finding out read /proc, which
 * needs a descriptor too), never a crash, and nothing left behind.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { repoRoot, run, scratchDir, scratchPath, uniqueName } from '../helpers.js';

it('each kind at RLIMIT_NOFILE says RLIMIT_NOFILE, and makes nothing', async () => {
  const dir = scratchDir();
  const script = join(dir, 'exhaust.mjs');
  const base = uniqueName('nofile');
  const fifo = scratchPath('nofile.fifo');
  const lock = scratchPath('nofile.lock');
  writeFileSync(
    script,
    `import { openSync } from 'node:fs';
    const ipc = await import(${JSON.stringify(join(repoRoot, 'dist', 'src', 'index.js'))});
    const tries = {
      pipe: () => ipc.createPipe(),
      fifo: () => ipc.createFifo(${JSON.stringify(fifo)}),
      socketPair: () => ipc.socketPair('unix'),
      listen: () => ipc.listen('unix:' + ${JSON.stringify(scratchPath('nofile.sock'))}),
      mqueue: () => ipc.createMessageQueue(${JSON.stringify(`${base}-mq`)}),
      shm: () => ipc.createSharedMemory(${JSON.stringify(`${base}-shm`)}, 4096),
      semaphore: () => ipc.createSemaphore(${JSON.stringify(`${base}-sem`)}),
      fileLock: () => ipc.openFileLock(${JSON.stringify(lock)}, { create: true }),
      watchProcess: () => ipc.watchProcess(process.pid, { timeout: 10 }),
    };
    // Every descriptor taken first (the module is loaded already).
    const held = [];
    try { for (;;) held.push(openSync('/dev/null', 'r')); } catch (e) { if (e.code !== 'EMFILE') throw e; }
    const out = {};
    for (const [kind, f] of Object.entries(tries)) {
      try { await f(); out[kind] = { made: true }; }
      catch (e) { out[kind] = { code: e.code, limit: e.details?.limit, message: e.message }; }
    }
    process.stdout.write(JSON.stringify(out));
    `,
  );
  const r = await run('prlimit', ['--nofile=200:200', process.execPath, script]).done;
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, { code?: string; limit?: string; message?: string; made?: boolean }>;
  for (const [kind, e] of Object.entries(out)) {
    assert.equal(e.made, undefined, `${kind} was made with no descriptor free?`);
    assert.equal(e.code, 'ERR_IPCKIT_LIMIT', `${kind}: ${e.message}`);
    assert.equal(e.limit, 'RLIMIT_NOFILE', `${kind}: ${e.message}`);
    assert.match(e.message!, /RLIMIT_NOFILE/, kind);
    assert.doesNotMatch(e.message!, /RLIMIT_MSGQUEUE/, kind);
  }
});
