/** The `ipckit socket` (alias `sock`) CLI against our library and against socat. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { connect, listen } from '../../src/mechanisms/socket/socket.js';
import { lineFrom, run, runCli, scratchDir, scratchPath, within } from '../helpers.js';

scratchDir();
const haveSocat = spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0;

describe('ipckit socket CLI', () => {
  it('listen --json prints each message with the sender pid/uid; send delivers argv messages', async () => {
    const path = scratchPath('cli');
    const listener = runCli(['socket', 'listen', `unix:${path}`, '--count', '3', '--json']);
    await within(lineFrom(listener.child.stderr!, /listening on/), 10_000);
    const sender = await runCli(['sock', 'send', `unix:${path}`, 'one', 'two']).done;
    assert.equal(sender.code, 0, sender.stderr);
    const c = await connect(`unix:${path}`, { codec: 'utf8' });
    await c.send('three');
    await c.close();
    const r = await listener.done;
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { data: string; pid: number; uid: number });
    assert.deepEqual(lines.map((l) => l.data), ['one', 'two', 'three']);
    assert.equal(lines[2]!.pid, process.pid);
    assert.equal(lines[0]!.uid, process.geteuid!());
  });

  it('send reads stdin lines; datagram and TCP addresses work too', async () => {
    const server = await listen(`unix-dgram:${scratchPath('clid')}`, { codec: 'utf8' });
    const accepting = server.accept();
    const s = await runCli(['socket', 'send', server.address], { input: 'from stdin\nsecond\n' }).done;
    assert.equal(s.code, 0, s.stderr);
    const peer = await within(accepting, 5000);
    assert.equal(await peer.receive(), 'from stdin');
    assert.equal(await peer.receive(), 'second');
    await peer.close();
    await server.close();

    const tcp = runCli(['socket', 'listen', 'tcp://127.0.0.1:0', '--count', '1', '--framing', 'lines']);
    const address = (await within(lineFrom(tcp.child.stderr!, /listening on/), 10_000)).split(' ').pop()!;
    const c = await connect(address, { framing: 'lines', codec: 'utf8' });
    await c.send('a line over tcp');
    await c.close();
    const r = await tcp.done;
    assert.equal(r.stdout, 'a line over tcp\n');
  });

  it('socat talks to `ipckit socket listen --framing lines`', { skip: !haveSocat && 'no socat' }, async () => {
    const path = scratchPath('cli-socat');
    const listener = runCli(['socket', 'listen', `unix:${path}`, '--count', '2', '--framing', 'lines']);
    await within(lineFrom(listener.child.stderr!, /listening on/), 10_000);
    await run('socat', ['-', `UNIX-CONNECT:${path}`], { input: 'alpha\nbeta\n' }).done;
    assert.equal((await listener.done).stdout, 'alpha\nbeta\n');
  });

  it('exit codes: 1 naming the code when nobody listens, 124 on timeout, 2 on usage', async () => {
    const r = await runCli(['socket', 'send', `unix:${scratchPath('none')}`, 'x']).done;
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERR_IPCKIT_NOT_FOUND/);
    assert.equal((await runCli(['socket', 'listen', 'tcp://127.0.0.1:0', '--timeout', '100']).done).code, 124);
    assert.equal((await runCli(['socket', 'bogus']).done).code, 2);
    assert.equal((await runCli(['socket', 'listen', `unix-dgram:${scratchPath('x')}`, '--framing', 'lines']).done).code, 2);
  });
});
