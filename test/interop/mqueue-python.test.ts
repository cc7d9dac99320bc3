/**
 * POSIX message queues with a peer we did not write: python3 calling mq_open, mq_send
 * and mq_receive of librt through ctypes.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMessageQueue, unlinkMessageQueue } from '../../src/index.js';
import { jsonLines, runPython, sleep, uniqueName, within } from '../helpers.js';

const names: string[] = [];
after(() => names.forEach((n) => unlinkMessageQueue(n)));

const PRELUDE = `
import ctypes, os, sys, json
rt = ctypes.CDLL('librt.so.1', use_errno=True)
rt.mq_open.restype = ctypes.c_int
rt.mq_receive.restype = ctypes.c_ssize_t
def check(r):
    if r < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return r
`;

describe('mqueue interop: python3 ctypes', () => {
  it('python sends with priorities, Node receives them highest first', async () => {
    const name = uniqueName('py-mq');
    names.push(name);
    const q = createMessageQueue(name, { maxMessages: 10, maxMessageBytes: 128, codec: 'utf8' });
    try {
      const py = await runPython(
        `${PRELUDE}
fd = check(rt.mq_open(sys.argv[1].encode(), os.O_WRONLY))
for prio, text in [(1, 'one'), (30, 'thirty'), (5, 'five'), (30, 'thirty again'), (0, 'zero')]:
    b = text.encode()
    check(rt.mq_send(fd, b, len(b), prio))
os.close(fd)
`,
        [name],
      ).done;
      assert.equal(py.code, 0, py.stderr);
      const got = [];
      for (let i = 0; i < 5; i++) got.push(await q.receiveWithPriority({ timeout: 5000 }));
      assert.deepEqual(got, [
        { message: 'thirty', priority: 30 },
        { message: 'thirty again', priority: 30 },
        { message: 'five', priority: 5 },
        { message: 'one', priority: 1 },
        { message: 'zero', priority: 0 },
      ]);
    } finally {
      await q.close();
    }
  });

  it('Node sends with priorities, python receives them highest first; a blocked python mq_receive wakes', async () => {
    const name = uniqueName('py-mq-rx');
    names.push(name);
    const q = createMessageQueue(name, { maxMessages: 10, maxMessageBytes: 64, codec: 'utf8' });
    try {
      const py = runPython(
        `${PRELUDE}
fd = check(rt.mq_open(sys.argv[1].encode(), os.O_RDONLY))
buf = ctypes.create_string_buffer(64)
prio = ctypes.c_uint(0)
out = []
for i in range(4):
    n = check(rt.mq_receive(fd, buf, 64, ctypes.byref(prio)))
    out.append([buf.raw[:n].decode(), prio.value])
    if i == 0:
        print(json.dumps({"first": True}), flush=True)
print(json.dumps(out), flush=True)
`,
        [name],
      );
      const lines = jsonLines(py);
      await q.send('first alone', { priority: 2 });
      // Python has taken the first message; give it time to block in mq_receive again.
      assert.deepEqual(await lines.next(10_000), { first: true });
      await sleep(200);
      await q.sendMany(['low', 'also low'], { priority: 1 });
      await q.send('urgent', { priority: 31 });
      const r = await within(py.done, 10_000);
      assert.equal(r.code, 0, r.stderr);
      const got = (await lines.next(1000)) as Array<[string, number]>;
      assert.deepEqual(got[0], ['first alone', 2]);
      // The rest arrived while python was busy or blocked: order by priority, FIFO within one.
      assert.deepEqual(
        got.slice(1).map((m) => m[0]).filter((m) => m !== 'urgent'),
        ['low', 'also low'],
      );
      assert.ok(got.some(([m, p]) => m === 'urgent' && p === 31));
    } finally {
      await q.close();
    }
  });
});
