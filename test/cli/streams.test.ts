/**
 * The `ipckit fifo` and `ipckit popen` commands, run as real processes: create/send/recv/rm,
 * --framing, --json (utf8 or base64 payloads), exit codes 0/1/2/124 and the child's status.
 */
import assert from 'node:assert/strict';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { createFifo, openFifo, unlinkFifo } from '../../src/mechanisms/fifo/fifo.js';
import { checkFdLeaks, jsonLineReader, repoRoot, run, runCli, runPython, scratchPath, sleep, within } from '../helpers.js';

checkFdLeaks();

describe('ipckit fifo', () => {
  it('create, send and recv (length framing), rm', async () => {
    const path = scratchPath('cli');
    const created = await runCli(['fifo', 'create', path]).done;
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.stdout, `${path}\n`);
    assert.ok(statSync(path).isFIFO());
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal((await runCli(['fifo', 'create', path]).done).code, 1, 'exclusive');

    const recv = runCli(['fifo', 'recv', path]);
    await sleep(200);
    const sent = await runCli(['fifo', 'send', path, 'hello', 'two words', '--json']).done;
    assert.equal(sent.code, 0, sent.stderr);
    assert.deepEqual(JSON.parse(sent.stdout), { path, sent: 2 });
    const got = await recv.done;
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, 'hello\ntwo words\n');

    assert.equal((await runCli(['fifo', 'rm', path]).done).code, 0);
    assert.equal(existsSync(path), false);
  });

  it('send without MESSAGE sends one message per stdin line; recv --count stops early', async () => {
    const path = createFifo(scratchPath('stdin'));
    const recv = runCli(['fifo', 'recv', path, '--count', '2', '--framing', 'lines']);
    await sleep(200);
    const sent = await runCli(['fifo', 'send', path, '--framing', 'lines'], { input: 'a\nb\n' }).done;
    assert.equal(sent.code, 0, sent.stderr);
    const got = await recv.done;
    assert.equal(got.stdout, 'a\nb\n');
    unlinkFifo(path);
  });

  it('--json prints utf8 payloads as text and others as base64', async () => {
    const path = createFifo(scratchPath('json'));
    const recv = runCli(['fifo', 'recv', path, '--json']);
    await sleep(200);
    const py = runPython("import sys, struct\nf = open(sys.argv[1], 'wb')\nfor m in [b'text \\xe2\\x9c\\x93', b'\\xff\\x00\\x01']: f.write(struct.pack('<I', len(m)) + m)", [path]);
    assert.equal((await py.done).code, 0);
    const got = await recv.done;
    assert.equal(got.code, 0, got.stderr);
    assert.deepEqual(
      got.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown),
      [
        { data: 'text ✓', encoding: 'utf8', length: 8 },
        { data: Buffer.from([0xff, 0, 1]).toString('base64'), encoding: 'base64', length: 3 },
      ],
    );
    unlinkFifo(path);
  });

  it('--framing raw passes bytes through unchanged', async () => {
    const path = createFifo(scratchPath('raw'));
    const recv = runCli(['fifo', 'recv', path, '--framing', 'raw']);
    await sleep(200);
    const data = 'no\nframing\0at all\n';
    assert.equal((await runCli(['fifo', 'send', path, '--framing', 'raw'], { input: data }).done).code, 0);
    assert.equal((await recv.done).stdout, data);
    unlinkFifo(path);
  });

  it('recv --keep-open stays for successive writers', async () => {
    const path = createFifo(scratchPath('keep'));
    const recv = runCli(['fifo', 'recv', path, '--keep-open', '--count', '2', '--json']);
    const next = jsonLineReader(recv.child);
    await sleep(200);
    const writer1 = await openFifo(path, 'write', { codec: 'utf8' });
    await writer1.send('first');
    await writer1.close();
    assert.equal(((await within(next(), 5000)) as { data: string }).data, 'first');
    const writer2 = await openFifo(path, 'write', { codec: 'utf8' });
    await writer2.send('second');
    await writer2.close();
    assert.equal(((await within(next(), 5000)) as { data: string }).data, 'second');
    assert.equal((await recv.done).code, 0);
    unlinkFifo(path);
  });

  it('a FIFO made by mkfifo(1) under umask 022 (0644) is refused unless --mode allows it', async () => {
    const path = scratchPath('mkfifo');
    assert.equal((await run('sh', ['-c', 'umask 022; mkfifo "$0"', path]).done).code, 0);
    const refused = await runCli(['fifo', 'recv', path, '--timeout', '100']).done;
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /mode 0644.*ERR_IPCKIT_PERMISSION/);
    const recv = runCli(['fifo', 'recv', path, '--mode', '644']);
    const sent = await runCli(['fifo', 'send', path, 'ok', '--mode', '644', '--timeout', '10000']).done;
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal((await recv.done).stdout, 'ok\n');
    unlinkFifo(path);
  });

  it('exit codes: 124 on timeout, 1 with the error code named, 2 for usage', async () => {
    const path = createFifo(scratchPath('codes'));
    const timedOut = await runCli(['fifo', 'recv', path, '--timeout', '200']).done;
    assert.equal(timedOut.code, 124);
    assert.match(timedOut.stderr, /ERR_IPCKIT_TIMEOUT/);
    const noReader = await runCli(['fifo', 'send', path, 'x', '--timeout', '200']).done;
    assert.equal(noReader.code, 124);
    const file = scratchPath('plain');
    writeFileSync(file, '');
    const notFifo = await runCli(['fifo', 'recv', file]).done;
    assert.equal(notFifo.code, 1);
    assert.match(notFifo.stderr, /ERR_IPCKIT_INVALID_ARGUMENT/);
    const rmFile = await runCli(['fifo', 'rm', file]).done;
    assert.equal(rmFile.code, 1);
    assert.ok(existsSync(file));
    for (const args of [['fifo'], ['fifo', 'frobnicate'], ['fifo', 'recv'], ['fifo', 'recv', path, '--framing', 'xml'], ['fifo', 'recv', path, '--count', 'many'], ['fifo', 'create', path, '--mode', 'rw']]) {
      const r = await runCli(args).done;
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    }
    unlinkFifo(path);
  });
});

describe('ipckit popen', () => {
  it('prints what the command writes (lines), argv verbatim, and exits with its status', async () => {
    const r = await runCli(['popen', '--framing', 'lines', '--', 'sh', '-c', 'printf "%s\\n" "$@"; exit 3', 'sh', 'a;b', '$(x)', '--']).done;
    assert.equal(r.stdout, 'a;b\n$(x)\n--\n');
    assert.equal(r.code, 3);
  });

  it('--json, length framing by default, and 128+N for a signal', async () => {
    const r = await runCli(['popen', '--json', '--', 'sh', '-c', 'printf "\\002\\000\\000\\000hi"; kill -TERM $$']).done;
    assert.deepEqual(JSON.parse(r.stdout), { data: 'hi', encoding: 'utf8', length: 2 });
    assert.equal(r.code, 128 + 15);
  });

  it('our stdin is the command\'s stdin; --framing raw copies bytes', async () => {
    const r = await runCli(['popen', '--framing', 'raw', '--', 'tr', 'a-z', 'A-Z'], { input: 'shout\n' }).done;
    assert.equal(r.stdout, 'SHOUT\n');
    assert.equal(r.code, 0);
  });

  it('bad output is exit 1 naming the code; --timeout is 124 and stops the command; usage is 2', async () => {
    const bad = await runCli(['popen', '--', 'sh', '-c', 'printf "not a frame"']).done;
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /ERR_IPCKIT_(FRAME_TOO_LARGE|BAD_FRAME)/);
    const started = Date.now();
    const slow = await runCli(['popen', '--timeout', '300', '--', 'sleep', '30']).done;
    assert.equal(slow.code, 124);
    assert.ok(Date.now() - started < 10_000);
    assert.equal((await runCli(['popen', 'ls']).done).code, 2);
    assert.equal((await runCli(['popen', '--']).done).code, 2);
    const missing = await runCli(['popen', '--', 'ipckit-test-no-such-program']).done;
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /ERR_IPCKIT_NOT_FOUND/);
  });

  it('a reader of our output that goes away (| head -1) ends it quietly', async () => {
    const piped = await run('sh', ['-c', `"${process.execPath}" dist/src/cli/main.js popen --framing lines -- yes | head -1`], { cwd: repoRoot }).done;
    assert.equal(piped.stdout, 'y\n');
    assert.equal(piped.stderr, '');
  });
});
