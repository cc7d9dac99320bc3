/** Named semaphores with python3 calling sem_open / sem_post / sem_timedwait through ctypes. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createSemaphore, openSemaphore, unlinkSemaphore } from '../../src/index.js';
import { runPython, sleep, uniqueName, within } from '../helpers.js';

const names: string[] = [];
after(() => names.forEach((n) => unlinkSemaphore(n)));

const PRELUDE = `
import ctypes, os, sys, time
libc = ctypes.CDLL('libc.so.6', use_errno=True)
libc.sem_open.restype = ctypes.c_void_p
def sem(name, create=False, value=0):
    s = libc.sem_open(name.encode(), os.O_CREAT | os.O_EXCL if create else 0, 0o600, value)
    if not s:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return ctypes.c_void_p(s)
class timespec(ctypes.Structure):
    _fields_ = [('tv_sec', ctypes.c_long), ('tv_nsec', ctypes.c_long)]
`;

describe('semaphore interop: python3 ctypes', () => {
  it("a python sem_post on the same name wakes Node's wait()", async () => {
    const name = uniqueName('py-sem');
    names.push(name);
    const s = createSemaphore(name);
    try {
      const waiting = s.wait({ timeout: 20_000 });
      await sleep(50);
      const py = await runPython(`${PRELUDE}\ns = sem(sys.argv[1])\nassert libc.sem_post(s) == 0\n`, [name]).done;
      assert.equal(py.code, 0, py.stderr);
      await within(waiting, 5000, 'wait() after the python post');
      assert.equal(s.value(), 0);
    } finally {
      await s.close();
    }
  });

  it('a Node post wakes a python sem_timedwait; a semaphore python made opens in Node', async () => {
    const name = uniqueName('py-sem2');
    names.push(name);
    const s = createSemaphore(name);
    try {
      const py = runPython(
        `${PRELUDE}
s = sem(sys.argv[1])
ts = timespec(int(time.time()) + 10, 0)
r = libc.sem_timedwait(s, ctypes.byref(ts))
print('woken' if r == 0 else 'error %d' % ctypes.get_errno())
`,
        [name],
      );
      await sleep(200);
      s.post();
      const r = await within(py.done, 15_000);
      assert.equal(r.stdout.trim(), 'woken', r.stderr);
    } finally {
      await s.close();
    }
    const made = uniqueName('py-made');
    names.push(made);
    const py = await runPython(`${PRELUDE}\nsem(sys.argv[1], True, 3)\n`, [made]).done;
    assert.equal(py.code, 0, py.stderr);
    const t = await openSemaphore(made);
    assert.equal(t.value(), 3);
    await t.wait({ timeout: 1000 });
    assert.equal(t.value(), 2);
    await t.close();
  });
});
