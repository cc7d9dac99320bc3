/**
 * Shared values and arrays (src/mechanisms/value): every kind's atomic operations, the
 * layout checks, and other processes: Node peers adding at once, a lock whose holder is
 * SIGKILLed, wait/notify across processes, and python3 reading and writing the numbers
 * at byte 192 of /dev/shm/<name>.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createRing, unlinkRing } from '../src/mechanisms/ring/ring.js';
import {
  createSharedArray,
  createSharedValue,
  openSharedArray,
  openSharedArraySync,
  openSharedValue,
  openSharedValueSync,
  unlinkSharedValue,
  type SharedValueKind,
} from '../src/mechanisms/value/value.js';
import { jsonLines, rejectsWith, runFixture, runPython, throwsWith, uniqueName, within } from './helpers.js';

const names: string[] = [];
function name(tag: string): string {
  const n = uniqueName(tag);
  names.push(n);
  return n;
}
after(() => {
  for (const n of names) {
    try {
      unlinkSharedValue(n);
    } catch {
      unlinkRing(n);
    }
  }
});

describe('shared values in one process', () => {
  it('every kind: load, store, add, sub, exchange, compareExchange, through a second handle', async () => {
    const cases: Array<[SharedValueKind, number | bigint, number | bigint]> = [
      ['f64', 1.5, 0.25], ['f32', 1.5, 0.25], ['i64', -(2n ** 40n), 3n], ['u64', 2n ** 63n, 5n],
      ['i32', -7, 3], ['u32', 4_000_000_000, 5], ['i16', -300, 2], ['u16', 60_000, 1], ['i8', -5, 1], ['u8', 200, 3],
    ];
    for (const [kind, x, d] of cases) {
      const n = name(kind);
      const a = createSharedValue(n, kind, { initial: x as never });
      const b = await openSharedValue(n);
      assert.equal(b.kind, kind);
      assert.equal(b.load(), x, kind);
      assert.equal(a.add(d as never), x);
      assert.equal(b.load(), (x as any) + (d as any), kind);
      assert.equal(b.sub(d as never), (x as any) + (d as any));
      assert.equal(a.load(), x);
      assert.equal(a.exchange(d as never), x);
      assert.equal(b.compareExchange(x as never, x as never), d, 'no swap: the value is not x');
      assert.equal(b.compareExchange(d as never, x as never), d, 'swapped');
      assert.equal(a.load(), x);
      a.close();
      b.close();
    }
  });

  it('integers wrap on add as Atomics do; a stored value out of range is refused', () => {
    const v = createSharedValue(name('u8'), 'u8', { initial: 255 });
    assert.equal(v.add(1), 255);
    assert.equal(v.load(), 0);
    throwsWith(() => v.store(256), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => v.store(1.5), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => v.store(1n as never), 'ERR_IPCKIT_INVALID_ARGUMENT');
    const w = createSharedValue(name('i64'), 'i64');
    throwsWith(() => w.store(1 as never), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => w.store(2n ** 63n), 'ERR_IPCKIT_INVALID_ARGUMENT');
    v.close();
    w.close();
  });

  it('arrays: typed array view, bounds, and the type check at open', async () => {
    const n = name('arr');
    const a = createSharedArray(n, Float64Array, 1000);
    assert.ok(a.array instanceof Float64Array);
    assert.equal(a.array.length, 1000);
    a.array[999] = 3.25;
    const b = openSharedArraySync(n, { type: Float64Array });
    assert.equal(b.load(999), 3.25);
    throwsWith(() => b.load(1000), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => b.load(-1), 'ERR_IPCKIT_INVALID_ARGUMENT');
    await rejectsWith(openSharedArray(n, { type: Int32Array }), 'ERR_IPCKIT_WRONG_KIND');
    await rejectsWith(openSharedValue(n), 'ERR_IPCKIT_WRONG_KIND'); // an array of 1000 is not a value
    a.close();
    b.close();
  });

  it('another kind of object is ERR_IPCKIT_WRONG_KIND, and stays', async () => {
    const n = name('ring');
    createRing(n).close();
    await rejectsWith(openSharedValue(n), 'ERR_IPCKIT_WRONG_KIND');
    throwsWith(() => unlinkSharedValue(n), 'ERR_IPCKIT_WRONG_KIND');
    const v = createSharedValue(name('k'), 'i32');
    await rejectsWith(openSharedValue(v.name, { kind: 'f64' }), 'ERR_IPCKIT_WRONG_KIND');
    v.close();
  });

  it('wait resolves after a change and notify; timeout and abort end it', async () => {
    const v = createSharedValue(name('w'), 'f64');
    const w = v.wait(0);
    setTimeout(() => {
      v.store(2.5);
      v.notify();
    }, 30);
    assert.equal(await within(w, 10_000), 2.5);
    assert.equal(await v.wait(0), 2.5); // not equal already: at once
    await rejectsWith(v.wait(2.5, { timeout: 50 }), 'ERR_IPCKIT_TIMEOUT');
    const ac = new AbortController();
    const p = v.wait(2.5, { signal: ac.signal });
    ac.abort();
    await rejectsWith(p, 'ERR_IPCKIT_ABORTED');
    throwsWith(() => v.waitSync(2.5, { timeout: -1 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    assert.throws(() => v.waitSync(2.5, { timeout: 20 }), (e: any) => e.code === 'ERR_IPCKIT_TIMEOUT');
    v.close();
  });

  it('withLock needs { lock: true }', () => {
    const v = createSharedValue(name('nolock'), 'i32');
    throwsWith(() => v.withLock(() => 1), 'ERR_IPCKIT_INVALID_ARGUMENT');
    assert.equal(v.hasLock, false);
    v.close();
    throwsWith(() => v.load(), 'ERR_IPCKIT_CLOSED');
  });
});

describe('shared values across processes', () => {
  it('4 processes add at once: no increment is lost (i64 and u32)', async () => {
    for (const kind of ['i64', 'u32'] as const) {
      const v = createSharedValue(name(kind), kind);
      const runs = Array.from({ length: 4 }, () => runFixture('value-peer', ['add', v.name, '20000'], { timeoutMs: 60_000 }).done);
      for (const r of await Promise.all(runs)) assert.equal(r.code, 0, r.stderr);
      assert.equal(v.load(), kind === 'i64' ? 80_000n : 80_000);
      v.close();
    }
  });

  it('compound updates under the lock, 3 processes and this one: exact', async () => {
    const v = createSharedValue(name('lock'), 'f64', { lock: true });
    const runs = Array.from({ length: 3 }, () => runFixture('value-peer', ['lock-add', v.name, '300'], { timeoutMs: 60_000 }).done);
    for (let i = 0; i < 300; i++) await v.withLock(() => v.store(v.load() + 1));
    for (const r of await Promise.all(runs)) assert.equal(r.code, 0, r.stderr);
    assert.equal(v.load(), 1200);
    v.close();
  });

  it('a lock holder SIGKILLed: the next locker gets ownerDied, repairs, and the lock works on', async () => {
    const v = createSharedValue(name('died'), 'f64', { lock: true, initial: 10 });
    const peer = runFixture('value-peer', ['die-holding', v.name]);
    const lines = jsonLines(peer);
    assert.deepEqual(await lines.next(20_000), { holding: true });
    assert.equal(v.load(), -1);
    assert.equal(v.lock.tryLock(), undefined, 'held by the peer');
    peer.child.kill('SIGKILL');
    await peer.done;
    const seen = await within(
      v.withLock((r) => {
        if (r.ownerDied) {
          v.store(10); // repair
          v.lock.markConsistent();
        }
        return r.ownerDied;
      }),
      10_000,
    );
    assert.equal(seen, true);
    assert.equal(await v.withLock((r) => r.ownerDied), false);
    assert.equal(v.load(), 10);
    v.close();
  });

  it('wait in one process, store and notify in another', async () => {
    const v = createSharedValue(name('wn'), 'i64', { initial: 5n });
    const peer = runFixture('value-peer', ['wait', v.name, '5']);
    const lines = jsonLines(peer);
    assert.deepEqual(await lines.next(20_000), { waiting: true });
    await new Promise((r) => setTimeout(r, 100));
    v.store(6n);
    v.notify();
    assert.deepEqual(await lines.next(20_000), { value: '6n' });
    assert.equal((await peer.done).code, 0);
    v.close();
  });

  it('python3 reads and writes the numbers at byte 192 of /dev/shm/<name>', async () => {
    const v = createSharedValue(name('py'), 'f64', { initial: 6.125 });
    const arr = createSharedArray(name('pyarr'), Int32Array, 4);
    const py = `
import mmap, struct, sys
def m(n):
    f = open('/dev/shm' + n, 'r+b')
    return mmap.mmap(f.fileno(), 0)
v = m(sys.argv[1]); a = m(sys.argv[2])
assert v[0:4] == b'IPKV', v[0:4]
print(struct.unpack_from('<d', v, 192)[0])
struct.pack_into('<4i', a, 192, 1, -2, 3, 2**31 - 1)
`;
    const r = await runPython(py, [v.name, arr.name]).done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(Number(r.stdout.trim()), 6.125);
    assert.deepEqual([...arr.array], [1, -2, 3, 2 ** 31 - 1]);
    const peer = await runFixture('value-peer', ['array', arr.name]).done;
    assert.equal(peer.code, 0, peer.stderr);
    assert.deepEqual([...arr.array], [2, -1, 4, -(2 ** 31)]); // the last one wrapped
    v.close();
    arr.close();
  });

  it('opened by name with openSharedValueSync', () => {
    const v = createSharedValue(name('sync'), 'u16', { initial: 7 });
    const w = openSharedValueSync(v.name, { kind: 'u16' });
    assert.equal(w.load(), 7);
    v.close();
    w.close();
  });
});

describe('shared values: arguments', () => {
  it('bad arguments throw at once', () => {
    throwsWith(() => createSharedValue(name('x'), 'f16' as never), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createSharedValue(name('x'), 'i32', { lock: 1 as never }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createSharedValue(name('x'), 'i32', { initial: 2 ** 31 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createSharedArray(name('x'), Array as never, 3), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => createSharedArray(name('x'), Int32Array, 0), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => openSharedValue('/x', { kind: 'f16' as never }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => openSharedValue('/x', { external: false }), 'ERR_IPCKIT_INVALID_ARGUMENT');
  });
});
