/**
 * Interop over pipes and FIFOs with programs we did not write: cat, sh's printf, and
 * python3 with a five-line reader and writer of the default length framing, in both
 * directions.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createFifo, openFifo, unlinkFifo } from '../../src/mechanisms/fifo/fifo.js';
import { spawnWithPipes } from '../../src/mechanisms/pipe/pipe.js';
import { checkFdLeaks, run, runPython, scratchPath, within } from '../helpers.js';

checkFdLeaks();

/** The five-line python reader of length frames (as in docs/pipe.md): prints each payload as JSON. */
const PY_READER = [
  'import sys, struct, json',
  "f = open(sys.argv[1], 'rb') if len(sys.argv) > 1 else sys.stdin.buffer",
  'while (h := f.read(4)) and len(h) == 4:',
  "    n, = struct.unpack('<I', h)",
  "    print(json.dumps(f.read(n).decode('utf-8')), flush=True)",
].join('\n');

/** The five-line python writer: one frame per argument (argv[1] is the path, '-' for stdout). */
const PY_WRITER = [
  'import sys, struct',
  "f = open(sys.argv[1], 'wb') if sys.argv[1] != '-' else sys.stdout.buffer",
  'for word in sys.argv[2:]:',
  "    data = word.encode('utf-8'); f.write(struct.pack('<I', len(data)) + data)",
  'f.close()',
].join('\n');

const MESSAGES = ['hello', '', 'ünïcødé ✓', 'x'.repeat(70_000), 'bye'];

describe('interop over an anonymous pipe', () => {
  it('cat copies our frames back untouched', async () => {
    const cat = spawnWithPipes(['cat'], { pipes: { 0: 'write', 1: 'read' }, codec: 'utf8' });
    const sending = (async () => {
      for (const m of MESSAGES) await cat.sender(0).send(m);
      await cat.sender(0).close();
    })();
    const got: string[] = [];
    for await (const m of cat.receiver(1)) got.push(m);
    await sending;
    assert.deepEqual(got, MESSAGES);
    assert.deepEqual(await cat.close(), { exitCode: 0, signal: null });
  });

  it("sh's printf writes a length frame and lines that we read", async () => {
    const child = spawnWithPipes(['sh', '-c', 'printf "\\005\\000\\000\\000hello" >&3; printf "one\\ntwo\\nlast" >&4'], {
      pipes: { 3: 'read', 4: { direction: 'read', framing: 'lines' } },
      codec: 'utf8',
    });
    assert.equal(await within(child.receiver(3).receive(), 5000), 'hello');
    const lines: string[] = [];
    for await (const l of child.receiver(4)) lines.push(l);
    assert.deepEqual(lines, ['one', 'two', 'last']);
    await child.close();
  });

  it('python3 reads our frames (five-line reader)', async () => {
    const py = spawnWithPipes(['python3', '-c', PY_READER], { pipes: { 0: 'write', 1: { direction: 'read', framing: 'lines' } }, codec: 'utf8' });
    for (const m of MESSAGES) await py.sender(0).send(m);
    await py.sender(0).close();
    const printed: string[] = [];
    for await (const line of py.receiver(1)) printed.push(JSON.parse(line) as string);
    assert.deepEqual(printed, MESSAGES);
    assert.equal((await py.close()).exitCode, 0);
  });

  it('python3 writes frames we read (five-line writer)', async () => {
    const py = spawnWithPipes(['python3', '-c', PY_WRITER, '-', ...MESSAGES], { pipes: { 1: 'read' }, codec: 'utf8' });
    const got: string[] = [];
    for await (const m of py.receiver(1)) got.push(m);
    assert.deepEqual(got, MESSAGES);
    assert.equal((await py.close()).exitCode, 0);
  });
});

describe('interop over a FIFO', () => {
  it('cat reads one FIFO and writes another: our frames come back untouched', async () => {
    const a = createFifo(scratchPath('to-cat'));
    const b = createFifo(scratchPath('from-cat'));
    const back = await openFifo(b, 'read', { codec: 'utf8' });
    const cat = run('sh', ['-c', 'exec cat "$0" > "$1"', a, b]);
    const out = await openFifo(a, 'write', { codec: 'utf8', timeout: 10_000 });
    const sending = (async () => {
      for (const m of MESSAGES) await out.send(m);
      await out.close();
    })();
    const got: string[] = [];
    for await (const m of back) got.push(m);
    await sending;
    assert.deepEqual(got, MESSAGES);
    assert.equal((await cat.done).code, 0);
    await back.close();
    unlinkFifo(a);
    unlinkFifo(b);
  });

  it("sh's printf writes into the FIFO", async () => {
    const path = createFifo(scratchPath('printf'));
    const reader = await openFifo(path, 'read', { framing: 'lines', codec: 'utf8' });
    const sh = run('sh', ['-c', 'printf "alpha\\nbeta\\n" > "$0"', path]);
    const got: string[] = [];
    for await (const l of reader) got.push(l);
    assert.deepEqual(got, ['alpha', 'beta']);
    assert.equal((await sh.done).code, 0);
    await reader.close();
    unlinkFifo(path);
  });

  it('python3 reads our frames from the FIFO and writes frames we read', async () => {
    const path = createFifo(scratchPath('py'));
    const pyReader = runPython(PY_READER, [path]);
    const writer = await openFifo(path, 'write', { codec: 'utf8', timeout: 10_000 });
    for (const m of MESSAGES) await writer.send(m);
    await writer.close();
    const r = await pyReader.done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n').map((l) => JSON.parse(l) as string), MESSAGES);

    const reader = await openFifo(path, 'read', { codec: 'utf8' });
    const pyWriter = runPython(PY_WRITER, [path, ...MESSAGES]);
    const got: string[] = [];
    for await (const m of reader) got.push(m);
    assert.deepEqual(got, MESSAGES);
    assert.equal((await pyWriter.done).code, 0);
    await reader.close();
    unlinkFifo(path);
  });
});
