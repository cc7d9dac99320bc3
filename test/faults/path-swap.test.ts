/**
 * A user who can write the folder of a socket swaps a symlink (or another file) in right
 * after bind(): nothing ipckit does after bind may follow it. The target here is a file
 * of root's, mode 0600: listen with { mode: 0o666 } must never make it 0666, however the
 * race falls (reproduced before the fix within seconds).
 */
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, mkdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { listen } from '../../src/index.js';
import { checkFdLeaks, isRoot, lineFrom, runPython, scratchDir, within } from '../helpers.js';

checkFdLeaks();

/** Waits for a socket file to appear at the path, and at once renames a symlink over it. */
const RACER = `
import os, stat, sys, time
d, target = sys.argv[1], sys.argv[2]
sock = os.path.join(d, 's.sock')
tmp = os.path.join(d, 'link.tmp')
print('racing', flush=True)
end = time.time() + float(sys.argv[3])
swaps = 0
while time.time() < end:
    try:
        if not os.path.lexists(tmp): os.symlink(target, tmp)
        if stat.S_ISSOCK(os.lstat(sock).st_mode):
            os.rename(tmp, sock)   # atomic: the socket's name now names a symlink to the target
            swaps += 1
    except OSError:
        pass
print('swaps', swaps, flush=True)
`;

describe('paths another user can replace', () => {
  it('listen({ mode }) never changes the mode of what a swapped-in symlink points to', { skip: !isRoot && 'needs root: the attack makes a root-owned file world-writable' }, async () => {
    const dir = join(scratchDir(), 'shared');
    mkdirSync(dir);
    chmodSync(dir, 0o1777); // writable by anyone, like /tmp
    const target = join(scratchDir(), 'secret');
    writeFileSync(target, 'root only');
    chmodSync(target, 0o600);
    const racer = runPython(RACER, [dir, target, '4']);
    await within(lineFrom(racer.child.stdout!, /^racing/), 10_000, 'the racer starts');
    const sock = join(dir, 's.sock');
    const deadline = performance.now() + 4000;
    let listens = 0;
    let refused = 0;
    while (performance.now() < deadline) {
      // A symlink left by the racer would only make listen refuse: take it away first.
      try {
        if (lstatSync(sock).isSymbolicLink()) unlinkSync(sock);
      } catch {
        /* not there */
      }
      try {
        const server = await listen(`unix:${sock}`, { mode: 0o666 });
        listens++;
        await server.close();
      } catch (e) {
        refused++;
        assert.ok(['ERR_IPCKIT_PERMISSION', 'ERR_IPCKIT_EXISTS', 'ERR_IPCKIT_NOT_FOUND', 'ERR_IPCKIT_INVALID_ARGUMENT'].includes((e as { code: string }).code), String(e));
      }
      assert.equal(statSync(target).mode & 0o777, 0o600, `the target's mode changed after ${listens} listens`);
    }
    const r = await racer.done;
    assert.match(r.stdout, /swaps [1-9]/, 'the racer swapped');
    assert.ok(listens + refused > 20, `${listens} listens and ${refused} refusals`);
  });
});
