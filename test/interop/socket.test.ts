/** Peers we did not write: socat (client and server) and python3's socket with send_fds/recv_fds. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { connect, createSealedMemory, listen, openSealedMemory } from '../../src/mechanisms/socket/socket.js';
import { checkFdLeaks, run, runPython, scratchDir, scratchPath, sleep, within } from '../helpers.js';

checkFdLeaks();
scratchDir();
const haveSocat = spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0;

/** Waits until `path` exists (a peer's socket file). */
async function appears(path: string): Promise<void> {
  await within((async () => {
    for (;;) {
      try {
        readFileSync(path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return;
      }
      await sleep(10);
    }
  })(), 10_000, `${path} to appear`);
}

describe('socat', { skip: !haveSocat && 'socat is not installed' }, () => {
  it('socat as a client of our Unix stream server (lines framing)', async () => {
    const server = await listen(`unix:${scratchPath('s')}`, { framing: 'lines', codec: 'utf8' });
    const accepting = server.accept();
    const socat = run('socat', ['-', `UNIX-CONNECT:${server.path}`], { input: 'first line\nsecond line\n' });
    const s = await within(accepting, 10_000);
    assert.equal(await s.receive(), 'first line');
    assert.equal(await s.receive(), 'second line');
    await s.send('reply from ipckit');
    await s.end();
    const r = await socat.done;
    assert.equal(r.stdout, 'reply from ipckit\n');
    await s.close();
    await server.close();
  });

  it('socat as the server of our Unix stream client (length frames pass through bytes intact)', async () => {
    const path = scratchPath('socat-srv');
    const out = scratchPath('out');
    const socat = run('socat', ['-u', `UNIX-LISTEN:${path}`, `CREATE:${out}`]);
    await appears(path);
    const c = await connect(`unix:${path}`, { codec: 'utf8' });
    await c.send('hello');
    await c.send('world');
    await c.close();
    await socat.done;
    const bytes = readFileSync(out);
    assert.deepEqual(bytes, Buffer.concat([Buffer.from([5, 0, 0, 0]), Buffer.from('hello'), Buffer.from([5, 0, 0, 0]), Buffer.from('world')]));
  });

  it('socat sends Unix datagrams to our datagram server; we answer its bound address', async () => {
    const server = await listen(`unix-dgram:${scratchPath('d')}`, { codec: 'utf8' });
    const client = scratchPath('socat-d');
    const socat = run('socat', ['-t', '2', '-', `UNIX-SENDTO:${server.path},bind=${client}`], { input: 'datagram one' });
    const peer = await within(server.accept(), 10_000);
    assert.equal(await peer.receive(), 'datagram one');
    assert.equal(peer.remoteAddress, `unix-dgram:${client}`);
    await peer.send('answer');
    const r = await socat.done;
    assert.equal(r.stdout, 'answer');
    await peer.close();
    await server.close();
  });

  it('socat receives our datagrams as a Unix datagram server', async () => {
    const path = scratchPath('socat-dsrv');
    const socat = run('socat', ['-u', `UNIX-RECV:${path}`, '-']);
    await appears(path);
    const c = await connect(`unix-dgram:${path}`, { codec: 'utf8' });
    await c.send('one datagram\n');
    await c.send('another\n');
    await c.flush();
    await sleep(300); // socat prints what it got; it has no end for a datagram stream
    socat.child.kill('SIGTERM');
    const r = await socat.done;
    assert.equal(r.stdout, 'one datagram\nanother\n');
    await c.close();
  });

  it('socat over TCP loopback, both ways', async () => {
    const server = await listen('tcp://127.0.0.1:0', { framing: 'raw', codec: 'utf8' });
    const accepting = server.accept();
    const socat = run('socat', ['-', `TCP:127.0.0.1:${server.port}`], { input: 'over tcp' });
    const s = await within(accepting, 10_000);
    assert.equal(await s.receive(), 'over tcp');
    await s.send('and back');
    await s.end();
    assert.equal((await socat.done).stdout, 'and back');
    await s.close();
    await server.close();

    const port = 20000 + (process.pid % 20000);
    const echo = run('socat', [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr`, 'EXEC:cat']);
    const c = await within((async () => {
      for (;;) {
        try {
          return await connect(`tcp://127.0.0.1:${port}`, { codec: 'json' });
        } catch {
          await sleep(20);
        }
      }
    })(), 10_000, 'socat TCP server');
    await c.send({ via: 'socat cat' });
    assert.deepEqual(await c.receive(), { via: 'socat cat' }); // our frames, echoed byte for byte
    await c.close();
    await echo.done;
  });
});

describe('python3 socket send_fds / recv_fds', () => {
  it('python sends us a descriptor with a message, and receives one from us', async () => {
    const server = await listen(`unix-seqpacket:${scratchPath('py')}`, { codec: 'utf8' });
    const fileForUs = scratchPath('from-python');
    writeFileSync(fileForUs, 'python opened this');
    const py = runPython(
      `import socket, sys, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
fd = os.open(sys.argv[2], os.O_RDONLY)
socket.send_fds(s, [b'take this file'], [fd])
os.close(fd)
msg, fds, flags, addr = socket.recv_fds(s, 1024, 4)
os.lseek(fds[0], 0, 0)
print(msg.decode(), os.read(fds[0], 100).decode(), flush=True)
msg, fds, flags, addr = socket.recv_fds(s, 1024, 4)
import mmap
m = mmap.mmap(fds[0], 4096)
print(msg.decode(), m[:11].decode(), flush=True)
m[11:16] = b'+py!!'
s.send(b'done')
`,
      [server.path!, fileForUs],
    );
    const s = await within(server.accept(), 10_000);
    const got = await s.receiveHandle();
    assert.equal(got.message, 'take this file');
    assert.equal(got.handle.type, 'file');
    assert.equal(readFileSync(got.handle.fd, 'utf8'), 'python opened this');
    got.handle.close();

    const ours = scratchPath('from-node');
    writeFileSync(ours, 'node opened this');
    const fd = openSync(ours, 'r');
    await s.sendHandle(fd, 'your file');
    closeSync(fd);
    const mem = createSealedMemory(4096);
    mem.bytes.set(Buffer.from('shared page'));
    await s.sendHandle(mem, 'your memory');
    assert.equal(await s.receive({ timeout: 10_000 }), 'done');
    assert.equal(Buffer.from(mem.bytes.subarray(0, 16)).toString(), 'shared page+py!!');
    mem.close();
    const r = await py.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'your file node opened this\nyour memory shared page\n');
    await s.close();
    await server.close();
  });

  it('python send_fds on a Unix stream socket, to a server with { handles: true }', async () => {
    const server = await listen(`unix:${scratchPath('pys')}`, { codec: 'utf8', handles: true });
    const py = runPython(
      `import socket, sys, os, struct
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
def frame(b): return struct.pack('<I', len(b)) + b
s.sendall(frame(b'no descriptor'))
r, w = os.pipe()
socket.send_fds(s, [frame(b'a pipe')], [w])
os.close(w)
s.sendall(frame(b'after'))
print(os.read(r, 100).decode(), flush=True)`,
      [server.path!],
    );
    const s = await within(server.accept(), 10_000);
    assert.deepEqual((await s.receiveWithHandles()).handles, []);
    const got = await s.receiveHandle();
    assert.equal(got.message, 'a pipe');
    assert.equal(got.handle.type, 'pipe');
    const { writeSync } = await import('node:fs');
    writeSync(got.handle.fd, 'node wrote this');
    got.handle.close();
    assert.equal(await s.receive(), 'after');
    assert.equal((await py.done).stdout.trim(), 'node wrote this');
    await s.close();
    await server.close();
  });

  it('python on a Unix datagram socket: descriptors and SCM_CREDENTIALS', async () => {
    const server = await listen(`unix-dgram:${scratchPath('pyd')}`);
    const py = runPython(
      `import socket, sys, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[2]); s.connect(sys.argv[1])
r, w = os.pipe()
socket.send_fds(s, [b'pipe'], [w])
os.close(w)
print(os.read(r, 100).decode(), flush=True)
`,
      [server.path!, scratchPath('pyd-client')],
    );
    const peer = await within(server.accept(), 10_000);
    const got = await peer.receiveHandle();
    assert.equal(got.handle.type, 'pipe');
    assert.equal(got.sender!.pid, py.child.pid);
    const { writeSync } = await import('node:fs');
    writeSync(got.handle.fd, 'written by node into python\'s pipe');
    got.handle.close();
    assert.equal((await py.done).stdout.trim(), "written by node into python's pipe");
    await peer.close();
    await server.close();
  });

  it("python reads ipckit's length frames with five lines of code", async () => {
    const server = await listen(`unix:${scratchPath('frames')}`, { codec: 'json' });
    const accepting = server.accept();
    const py = runPython(
      `import socket, sys, struct, json
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
def recv_exact(n):
    b = b''
    while len(b) < n: b += s.recv(n - len(b))
    return b
n, = struct.unpack('<I', recv_exact(4)); msg = json.loads(recv_exact(n))
reply = json.dumps({'echo': msg}).encode(); s.sendall(struct.pack('<I', len(reply)) + reply)
`,
      [server.path!],
    );
    const s = await within(accepting, 10_000);
    await s.send({ n: 42 });
    assert.deepEqual(await s.receive({ timeout: 10_000 }), { echo: { n: 42 } });
    await py.done;
    await s.close();
    await server.close();
  });
});
