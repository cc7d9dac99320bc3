/**
 * Python's multiprocessing.shared_memory and ipckit see the same bytes, both ways, through
 * the CLI and the library. On Python 3.8-3.12, SharedMemory registers every segment it
 * opens with its resource_tracker, which unlinks it when Python exits, even one it did
 * not create: the Python side unregisters it, and this file checks that nothing is left.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, it } from 'node:test';
import { openSharedMemory, unlinkSharedMemory } from '../../src/mechanisms/shm/shm.js';
import { checkFdLeaks, runCli, runPython, uniqueName } from '../helpers.js';

const made: string[] = [];
after(() => {
  for (const n of made) unlinkSharedMemory(n);
});
checkFdLeaks();

const UNTRACK = `
from multiprocessing import shared_memory, resource_tracker
def untrack(shm):
    # Python < 3.13 would unlink a segment it merely opened when it exits.
    try:
        resource_tracker.unregister(shm._name, 'shared_memory')
    except Exception:
        pass
`;

it('Python reads what `ipckit shm write` wrote', async () => {
  const n = uniqueName('py');
  made.push(n);
  const payload = Buffer.from('written by ipckit \u2713 \x00\x01\x02', 'utf8');
  assert.equal((await runCli(['shm', 'create', n, '4096']).done).code, 0);
  const w = await runCli(['shm', 'write', n, '--offset', '100'], { input: payload.toString('utf8') }).done;
  assert.equal(w.code, 0, w.stderr);
  const r = await runPython(
    `${UNTRACK}
import sys
shm = shared_memory.SharedMemory(name=sys.argv[1].lstrip('/'))
untrack(shm)
print(shm.size, bytes(shm.buf[100:100+int(sys.argv[2])]).hex())
shm.close()`,
    [n, String(payload.length)],
  ).done;
  assert.equal(r.code, 0, r.stderr);
  const [size, hex] = r.stdout.trim().split(' ');
  assert.ok(Number(size) >= 4096);
  assert.equal(hex, payload.toString('hex'));
  assert.ok(existsSync(`/dev/shm${n}`), "Python's resource tracker must not have removed our segment");
});

it('`ipckit shm read` and the library read what Python wrote', async () => {
  const n = uniqueName('py');
  made.push(n);
  const r = await runPython(
    `${UNTRACK}
import sys
shm = shared_memory.SharedMemory(name=sys.argv[1].lstrip('/'), create=True, size=1000)
untrack(shm)  # keep it after we exit: ipckit reads it next, and removes it
shm.buf[0:23] = b'written by Python 3 \\xe2\\x9c\\x93'
shm.close()`,
    [n],
  ).done;
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(`/dev/shm${n}`));
  const cli = await runCli(['shm', 'read', n, '--length', '23']).done;
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal(cli.stdout, 'written by Python 3 \u2713');
  // Python creates with mode 0600, owned by us: the default open check accepts it.
  using seg = await openSharedMemory(n);
  assert.equal(seg.read(0, 23).toString(), 'written by Python 3 \u2713');
  assert.equal(Buffer.from(seg.buffer, 0, 7).toString(), 'written');
  const info = await runCli(['shm', 'info', n, '--json']).done;
  assert.equal(JSON.parse(info.stdout).mode, 0o600);
  const rm = await runCli(['shm', 'rm', n]).done;
  assert.equal(rm.code, 0);
  assert.equal(existsSync(`/dev/shm${n}`), false);
});

it('the CLI refuses to write more than fits, and names the error code', async () => {
  const n = uniqueName('py');
  made.push(n);
  assert.equal((await runCli(['shm', 'create', n, '16']).done).code, 0);
  const w = await runCli(['shm', 'write', n], { input: 'x'.repeat(17) }).done;
  assert.equal(w.code, 1);
  assert.match(w.stderr, /ERR_IPCKIT_INVALID_ARGUMENT/);
  const missing = await runCli(['shm', 'read', uniqueName('none')]).done;
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /ERR_IPCKIT_NOT_FOUND/);
  const usage = await runCli(['shm', 'create', n]).done;
  assert.equal(usage.code, 2);
});
