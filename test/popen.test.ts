/**
 * popen: argv reaches the child verbatim, shell only when asked, pclose-like exit status,
 * no zombies, children die with their parent, an early exit while we write, Node streams.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Receiver } from '../src/core/channel.js';
import { createFifo, unlinkFifo } from '../src/mechanisms/fifo/fifo.js';
import { popen } from '../src/mechanisms/popen/popen.js';
import { channelConformance } from './conformance/channel.js';
import { checkFdLeaks, jsonLineReader, openFds, processGone, rejectsWith, runFixture, scratchPath, sleep, throwsWith, waitUntil, within, zombieChildren } from './helpers.js';

checkFdLeaks();

// A real two-program chain: PopenWriter -> `cat > fifo` -> `cat fifo` -> PopenReader.
channelConformance('popen (through two cat processes)', {
  senderCloseEndsReceiver: true,
  backpressure: true,
  async make(o) {
    const fifo = createFifo(scratchPath('popen-chain'));
    const receiver = popen(['cat', fifo], 'read', { codec: o.receiverCodec, maxMessageBytes: o.maxMessageBytes });
    const sender = popen(['sh', '-c', 'exec cat > "$0"', fifo], 'write', { codec: o.senderCodec, maxMessageBytes: o.maxMessageBytes });
    // close() waits for the child, like pclose; `cat fifo` waits for input and would not
    // notice that its stdout went away, so closing this end also ends it.
    const closingReceiver: Receiver<unknown> = {
      receive: (options) => receiver.receive(options),
      tryReceive: () => receiver.tryReceive(),
      [Symbol.asyncIterator]: () => receiver[Symbol.asyncIterator](),
      close: async () => {
        const closed = receiver.close();
        receiver.kill('SIGKILL');
        return closed;
      },
      [Symbol.asyncDispose]: async () => {
        await closingReceiver.close();
      },
    };
    return {
      sender,
      receiver: closingReceiver,
      cleanup: async () => {
        sender.kill('SIGKILL');
        receiver.kill('SIGKILL');
        await sender.close({ timeout: 1000 }).catch(() => {});
        await receiver.close({ timeout: 1000 }).catch(() => {});
        unlinkFifo(fifo);
      },
    };
  },
});

const PRINT_ARGV = 'import sys, json; sys.stdout.write(json.dumps(sys.argv[1:]))';

describe('popen: commands', () => {
  it('argv reaches the child verbatim: ; $(...) backticks quotes newlines and --', async () => {
    const marker = scratchPath('injected');
    const args = ['a;b', `$(touch ${marker})`, `\`touch ${marker}\``, '"double" \'single\'', 'line1\nline2', '--', '-x', '', '*', '$HOME', 'é ✓'];
    const r = popen(['python3', '-c', PRINT_ARGV, ...args], 'read', { framing: 'raw', codec: 'utf8' });
    let out = '';
    for await (const chunk of r) out += chunk;
    assert.deepEqual(await r.close(), { exitCode: 0, signal: null });
    assert.deepEqual(JSON.parse(out), args);
    assert.equal(existsSync(marker), false, 'something ran a shell on the arguments');
  });

  it('a shell string runs only with { shell: true }', async () => {
    throwsWith(() => popen('echo hi', 'read'), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => popen(['echo', 'hi'], 'read', { shell: true }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    const r = popen('echo $((6 * 7)); echo "$0" | cut -c1-2', 'read', { shell: true, framing: 'lines', codec: 'utf8' });
    const got: string[] = [];
    for await (const line of r) got.push(line);
    assert.deepEqual(got, ['42', '/b']);
    assert.deepEqual(await r.close(), { exitCode: 0, signal: null });
  });

  it('a shell command runs in a process group of its own: signals and SIGKILL reach what it started', async () => {
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      const r = popen('sleep 300 & echo $!; wait', 'read', { shell: true, framing: 'lines', codec: 'utf8' });
      const grandchild = Number(await within(r.receive(), 5000));
      assert.equal(processGone(grandchild), false);
      r.kill(signal);
      assert.deepEqual(await within(r.close(), 5000), { exitCode: null, signal });
      assert.ok(await waitUntil(() => processGone(grandchild), 1000), `${signal}: the shell's child ${grandchild} survived`);
    }
    const code = popen('exit 9', 'read', { shell: true });
    assert.deepEqual(await within(code.close(), 5000), { exitCode: 9, signal: null });
  });

  it('bad arguments throw at once and start nothing', () => {
    throwsWith(() => popen([], 'read'), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => popen(['cat'], 'r' as 'read'), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => popen(['cat'], 'read', { framing: 'bytes' as 'raw' }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => popen(['cat', 'a\0b'], 'read'), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => popen(['ipckit-test-no-such-program'], 'read'), 'ERR_IPCKIT_NOT_FOUND');
    throwsWith(() => popen(['/etc/passwd'], 'read'), 'ERR_IPCKIT_NOT_FOUND');
  });

  it('bad stream options throw before anything starts: no child, no fd left open', async () => {
    const marker = scratchPath('started');
    const pipesBefore = [...openFds().values()].filter((t) => t.startsWith('pipe:')).length;
    throwsWith(() => popen(['sh', '-c', `touch ${marker}`], 'write', { highWaterMark: 0 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => popen(['sh', '-c', `touch ${marker}`], 'read', { readBufferBytes: 1 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
    assert.equal([...openFds().values()].filter((t) => t.startsWith('pipe:')).length, pipesBefore, 'a pipe end was left open');
    await sleep(300);
    assert.equal(existsSync(marker), false, 'the command was started although popen() threw');
  });

  it("'w' mode: messages reach the child's stdin; close() flushes and returns its exit code", async () => {
    const out = scratchPath('w-out');
    const w = popen(['sh', '-c', 'cat > "$0"; exit 5', out], 'write', { framing: 'lines', codec: 'utf8' });
    for (let i = 0; i < 1000; i++) await w.send(`line ${i}`);
    assert.deepEqual(await within(w.close(), 10_000), { exitCode: 5, signal: null });
    const lines = readFileSync(out, 'utf8').split('\n');
    assert.equal(lines.length, 1001);
    assert.equal(lines[999], 'line 999');
  });

  it('close() reports a signal like pclose, and the child is reaped (no zombie)', async () => {
    const r = popen(['sleep', '30'], 'read');
    assert.ok(r.pid > 0);
    r.kill('SIGTERM');
    assert.deepEqual(await within(r.close(), 5000), { exitCode: null, signal: 'SIGTERM' });
    const self = popen(['sh', '-c', 'kill -9 $$'], 'write');
    assert.deepEqual(await within(self.close(), 5000), { exitCode: null, signal: 'SIGKILL' });
    assert.deepEqual(zombieChildren().filter((p) => p === r.pid || p === self.pid), []);
  });

  it('close() on a child that keeps running takes a timeout and leaves the child to us', async () => {
    const r = popen(['sleep', '30'], 'read');
    await rejectsWith(r.close({ timeout: 100 }), 'ERR_IPCKIT_TIMEOUT');
    r.kill('SIGKILL');
    assert.deepEqual(await within(r.exited, 5000), { exitCode: null, signal: 'SIGKILL' });
  });

  it("a child killed mid-frame: the reader's error is ERR_IPCKIT_PEER_GONE with the signal", async () => {
    const r = popen(['sh', '-c', 'printf "\\144\\000\\000\\000abc"; kill -9 $$'], 'read');
    const e = await rejectsWith(within(r.receive(), 5000), 'ERR_IPCKIT_PEER_GONE');
    assert.equal(e.details?.signal, 'SIGKILL');
    await r.close();
  });
});

describe('popen: a child that exits early while we write', () => {
  for (const [label, size] of [
    ['64 KiB messages', 64 * 1024],
    ['1 KiB messages', 1024],
  ] as const) {
    it(`64 MiB in ${label}: exactly one ERR_IPCKIT_PEER_GONE, carrying the exit status`, async () => {
      const w = popen(['sh', '-c', 'head -c 100000 >/dev/null; exit 3'], 'write');
      const chunk = Buffer.alloc(size, 7);
      const total = (64 * 1024 * 1024) / size;
      const errors: Array<{ code?: string; details?: Record<string, unknown> }> = [];
      await within(
        (async () => {
          for (let i = 0; i < total; i++) {
            try {
              await w.send(chunk);
            } catch (e) {
              errors.push(e as { code?: string });
              break;
            }
          }
        })(),
        30_000,
        'the writing loop',
      );
      assert.equal(errors.length, 1);
      assert.equal(errors[0]!.code, 'ERR_IPCKIT_PEER_GONE');
      assert.equal(errors[0]!.details?.exitCode, 3);
      // The loss was reported by that send: close() just returns the status, like pclose.
      assert.deepEqual(await within(w.close(), 5000), { exitCode: 3, signal: null });
      assert.deepEqual(zombieChildren().filter((p) => p === w.pid), []);
    });
  }
});

describe('popen: children die with their parent', () => {
  it('SIGKILL of a node parent with popen and pipe children: all are gone within 1 s', async () => {
    const parent = runFixture('streams', ['popen-parent']);
    const { pids } = (await within(jsonLineReader(parent.child)(), 10_000)) as { pids: number[] };
    assert.equal(pids.length, 5);
    for (const pid of pids) assert.equal(processGone(pid), false);
    parent.child.kill('SIGKILL');
    await parent.done;
    assert.ok(await waitUntil(() => pids.every(processGone), 1000), `still running: ${pids.filter((p) => !processGone(p)).join(', ')}`);
  });

  it('the parent dying right after popen() returns (the fork/prctl race) leaves no child, 10 times', async () => {
    const code = `
      import { popen } from ${JSON.stringify(new URL('../src/mechanisms/popen/popen.js', import.meta.url).href)};
      import { writeSync } from 'node:fs';
      const r = popen(['sleep', '300'], 'read');
      writeSync(1, String(r.pid));
      process.kill(process.pid, 'SIGKILL');`;
    for (let i = 0; i < 10; i++) {
      const { run } = await import('./helpers.js');
      const p = run(process.execPath, ['--input-type=module', '-e', code]);
      const r = await p.done;
      assert.equal(r.signal, 'SIGKILL');
      const pid = Number(r.stdout);
      assert.ok(pid > 0, r.stderr);
      assert.ok(await waitUntil(() => processGone(pid), 1000), `run ${i}: child ${pid} outlived its parent`);
    }
  });
});

describe('popen: Node streams', () => {
  it('stream() of a reader is a Readable; pipeline() into a writer stream() reaches the child', async () => {
    const source = scratchPath('stream-src');
    const target = scratchPath('stream-dst');
    const data = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13) & 0xff;
    writeFileSync(source, data);
    const r = popen(['cat', source], 'read', { framing: 'raw' });
    const w = popen(['sh', '-c', 'cat > "$0"', target], 'write', { framing: 'raw' });
    await within(pipeline(r.stream(), w.stream()), 20_000, 'pipeline');
    assert.deepEqual(await w.exited, { exitCode: 0, signal: null });
    assert.deepEqual(await r.exited, { exitCode: 0, signal: null });
    assert.ok(readFileSync(target).equals(data));
  });

  it('a Writable of length frames: one frame per chunk, read back by python3', async () => {
    const code = [
      'import sys, struct',
      'r = sys.stdin.buffer; out = []',
      'while (h := r.read(4)):',
      "    n, = struct.unpack('<I', h); out.append(r.read(n).decode())",
      "print('|'.join(out))",
    ].join('\n');
    const out = scratchPath('frames');
    const w = popen(['sh', '-c', 'python3 -c "$0" > "$1"', code, out], 'write');
    await pipeline(Readable.from(['a', 'bb', 'ccc'].map((s) => Buffer.from(s))), w.stream());
    assert.deepEqual(await w.exited, { exitCode: 0, signal: null });
    assert.equal(readFileSync(out, 'utf8'), 'a|bb|ccc\n');
  });

  it('destroying the Readable closes the reader: the child gets SIGPIPE', async () => {
    const r = popen(['yes'], 'read', { framing: 'raw' });
    const stream = r.stream();
    const first = await new Promise<Buffer>((resolve) => stream.once('data', resolve));
    assert.ok(first.length > 0);
    stream.destroy();
    assert.deepEqual(await within(r.exited, 5000), { exitCode: null, signal: 'SIGPIPE' });
  });
});
