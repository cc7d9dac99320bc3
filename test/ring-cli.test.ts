/** `ipckit ring` and `ipckit shm` from the shell: create, send, recv, info, rm, and the exit codes. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, it } from 'node:test';
import { unlinkRing } from '../src/mechanisms/ring/ring.js';
import { runCli, uniqueName } from './helpers.js';

const names: string[] = [];
after(() => {
  for (const n of names) unlinkRing(n);
});

it('ring create / send / recv --json / info / rm', async () => {
  const n = uniqueName('cli');
  names.push(n);
  const c = await runCli(['ring', 'create', n, '--capacity', '64K', '--max-message', '1K']).done;
  assert.equal(c.code, 0, c.stderr);
  assert.equal(c.stdout.trim(), n);
  assert.equal((await runCli(['ring', 'create', n]).done).code, 1, 'exclusive');
  const s = await runCli(['ring', 'send', n, 'one', 'two words']).done;
  assert.equal(s.code, 0, s.stderr);
  const lines = await runCli(['ring', 'send', n], { input: 'three\nfour\n' }).done;
  assert.equal(lines.code, 0, lines.stderr);
  const info = await runCli(['ring', 'info', n, '--json']).done;
  const i = JSON.parse(info.stdout);
  assert.equal(i.capacityBytes, 65536);
  assert.equal(i.maxMessageBytes, 1024);
  assert.equal(i.producersEver, 2);
  const r = await runCli(['ring', 'recv', n, '--json']).done;
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    r.stdout.trim().split('\n').map((l) => JSON.parse(l).data),
    ['one', 'two words', 'three', 'four'],
  );
  const human = await runCli(['ring', 'info', n]).done;
  assert.match(human.stdout, /one producer, capacity 65536 bytes, 0 in use/);
  assert.equal((await runCli(['ring', 'rm', n]).done).code, 0);
  assert.equal(existsSync(`/dev/shm${n}`), false);
});

it('ring recv --count stops early; --timeout with nothing coming exits 124; a message too large exits 1', async () => {
  const n = uniqueName('cli');
  names.push(n);
  assert.equal((await runCli(['ring', 'create', n, '--capacity', '4096', '--max-message', '16']).done).code, 0);
  const waiting = await runCli(['ring', 'recv', n, '--timeout', '200']).done;
  assert.equal(waiting.code, 124, 'no producer ever came');
  assert.match(waiting.stderr, /ERR_IPCKIT_TIMEOUT/);
  await runCli(['ring', 'send', n, 'a', 'b', 'c']).done;
  const two = await runCli(['ring', 'recv', n, '--count', '2']).done;
  assert.equal(two.stdout, 'a\nb\n');
  const big = await runCli(['ring', 'send', n, 'x'.repeat(17)]).done;
  assert.equal(big.code, 1);
  assert.match(big.stderr, /ERR_IPCKIT_FRAME_TOO_LARGE/);
  const usage = await runCli(['ring', 'create', n, '--capacity', 'lots']).done;
  assert.equal(usage.code, 2);
  const bad = await runCli(['ring', 'create', uniqueName(), '--capacity', '5000']).done;
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /ERR_IPCKIT_INVALID_ARGUMENT/);
});
