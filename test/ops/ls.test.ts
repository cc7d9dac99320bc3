/**
 * `ipckit ls` (listObjects): objects made by peers we did not write (python3, ipcmk,
 * mkfifo, socat, sh), by ipckit in processes that are alive, that hold or take part, and
 * that were SIGKILLed at random moments; corrupt headers; the CLI's table, JSON and watch.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createMessageQueue, createSemaphore, listObjects, listObjectsDetailed, unlinkMessageQueue, unlinkSemaphore } from '../../src/index.js';
import { removeSysvMessageQueue } from '../../src/mechanisms/sysv/msg.js';
import { removeSysvSharedMemory } from '../../src/mechanisms/sysv/shm.js';
import { run, runCli, runPython, scratchDir, sleep, trackSysv, uniqueName } from '../helpers.js';
import { eventually, IPCKIT_MADE, kill, named, peer, removeShm, untilPrinted } from './common.js';

const PREFIX = uniqueName('ls').slice(1);
after(() => removeShm(PREFIX));

/** python3 makes a segment with multiprocessing.shared_memory, tells its resource tracker to leave it, and (with hold) keeps it open. */
function pythonShm(name: string, hold: boolean) {
  return runPython(
    [
      'import sys, time',
      'from multiprocessing import shared_memory, resource_tracker',
      'm = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=10000)',
      'resource_tracker.unregister(m._name, "shared_memory")',
      'print("ready", flush=True)',
      'if sys.argv[2] == "hold": time.sleep(120)',
      'm.close()',
    ].join('\n'),
    [name, hold ? 'hold' : 'go'],
    { timeoutMs: 120_000 },
  );
}

describe('ipckit ls', () => {
  it('shows objects made by peers we did not write: python3, ipcmk, mkfifo, sh, socat', async () => {
    const dir = scratchDir();
    const idle = pythonShm(`${PREFIX}-py-idle`, false);
    assert.equal((await idle.done).code, 0);
    const held = pythonShm(`${PREFIX}-py-held`, true);
    await untilPrinted(held.child, 'ready', 'python3');
    const qid = Number(/id: (\d+)/.exec((await run('ipcmk', ['-Q', '-p', '0640']).done).stdout)![1]);
    trackSysv('msg', qid);
    const mid = Number(/id: (\d+)/.exec((await run('ipcmk', ['-M', '8192', '-p', '0600']).done).stdout)![1]);
    trackSysv('shm', mid);
    const fifo = join(dir, `${PREFIX}-fifo`);
    assert.equal((await run('mkfifo', ['-m', '0620', fifo]).done).code, 0);
    const fifoHolder = run('sh', ['-c', `exec 3<>"$1"; echo ready; exec sleep 120`, 'sh', fifo], { timeoutMs: 120_000 });
    await untilPrinted(fifoHolder.child, 'ready', 'sh');
    const sock = join(dir, `${PREFIX}-sock`);
    // socat opens its second address only once a client came: one socat per listening socket.
    const socat = run('socat', [`UNIX-LISTEN:${sock},fork`, 'STDOUT'], { timeoutMs: 120_000 });
    const socatAbs = run('socat', [`ABSTRACT-LISTEN:${PREFIX}-abs,fork`, 'STDOUT'], { timeoutMs: 120_000 });
    const sem = createSemaphore(`/${PREFIX}-sem`, { value: 3 });
    const mq = createMessageQueue(`/${PREFIX}-mq`, { maxMessages: 4, maxMessageBytes: 64 });
    try {
      await mq.send(Buffer.from('one'));
      await mq.send(Buffer.from('two'));
      let all: Map<string, import('../../src/index.js').IpcObject> = new Map();
      await eventually(async () => {
        all = new Map((await listObjects({ prefix: PREFIX, paths: [dir] })).map((o) => [o.name!, o]));
        return all.has(sock) && all.has(`@${PREFIX}-abs`);
      }, 'socat listening');

      const pyIdle = all.get(`/${PREFIX}-py-idle`)!;
      assert.equal(pyIdle.kind, 'shm');
      assert.equal(pyIdle.madeBy, 'foreign');
      assert.equal(pyIdle.state, 'unknown');
      assert.deepEqual(pyIdle.holders, []);
      assert.equal(pyIdle.size, 10000);
      assert.deepEqual(pyIdle.perm, { uid: process.geteuid!(), gid: process.getegid!(), mode: 0o600 });
      const pyHeld = all.get(`/${PREFIX}-py-held`)!;
      assert.equal(pyHeld.state, 'live');
      assert.deepEqual(pyHeld.holders.map((h) => h.pid), [held.child.pid]);
      assert.ok(pyHeld.holders[0]!.via.includes('mapping'));

      const s = all.get(`/${PREFIX}-sem`)!;
      assert.equal(s.kind, 'semaphore');
      assert.equal(s.madeBy, 'foreign');
      assert.ok(s.holders.some((h) => h.pid === process.pid), 'we have it mapped');

      const q = all.get(`/${PREFIX}-mq`)!;
      assert.equal(q.kind, 'mqueue');
      assert.equal(q.messages, 2);
      assert.equal(q.bytesInUse, 6);
      assert.ok(q.holders.some((h) => h.pid === process.pid && h.via.includes('fd')));

      const f = all.get(fifo)!;
      assert.equal(f.kind, 'fifo');
      assert.equal(f.perm?.mode, 0o620);
      assert.equal(f.state, 'live');
      assert.deepEqual(f.holders.map((h) => h.pid), [fifoHolder.child.pid]);

      const so = all.get(sock)!;
      assert.equal(so.kind, 'socket');
      assert.equal(so.state, 'live');
      assert.deepEqual(so.holders.map((h) => h.pid), [socat.child.pid]);
      const ab = all.get(`@${PREFIX}-abs`)!;
      assert.equal(ab.kind, 'abstract-socket');
      assert.equal(ab.perm, undefined);
      assert.deepEqual(ab.holders.map((h) => h.pid), [socatAbs.child.pid]);

      // System V objects have no names: found by id.
      const sysv = await listObjects({ kind: ['sysv-msg', 'sysv-shm'] });
      const mq2 = sysv.find((o) => o.kind === 'sysv-msg' && o.id === qid)!;
      assert.equal(mq2.perm?.mode, 0o640);
      assert.equal(mq2.perm?.cuid, process.geteuid!());
      assert.equal(mq2.messages, 0);
      assert.equal(mq2.madeBy, 'foreign');
      const seg = sysv.find((o) => o.kind === 'sysv-shm' && o.id === mid)!;
      assert.equal(seg.size, 8192);
      assert.equal(seg.sysv?.nattch, 0);
      assert.equal(seg.state, 'unknown');

      // Filters.
      assert.ok((await listObjects({ prefix: PREFIX, kind: 'fifo', paths: [dir] })).every((o) => o.kind === 'fifo'));
      assert.equal((await listObjects({ prefix: PREFIX, owner: 12345, paths: [dir] })).length, 0);
      assert.equal((await listObjects({ prefix: PREFIX, abandoned: true, paths: [dir] })).length, 0, 'nothing of peers we did not write is ever abandoned');

      // Once its holders go, a socket file is stale and the FIFO unheld.
      await kill(socat);
      await kill(socatAbs);
      await kill(fifoHolder);
      const later = await named(PREFIX);
      assert.equal(later.has(`@${PREFIX}-abs`), false, 'an abstract socket goes with its owner');
      const stale = (await listObjects({ prefix: PREFIX, paths: [dir] })).find((o) => o.name === sock)!;
      assert.equal(stale.state, 'unknown');
      assert.match(stale.reason, /no socket is bound/);
    } finally {
      await kill(held);
      await kill(fifoHolder);
      await kill(socat);
      await kill(socatAbs);
      sem.close();
      unlinkSemaphore(`/${PREFIX}-sem`);
      await mq.close();
      unlinkMessageQueue(`/${PREFIX}-mq`);
      removeSysvMessageQueue({ id: qid });
      removeSysvSharedMemory({ id: mid });
      removeShm(PREFIX);
    }
  });

  it('ipckit objects of a live process, of live participants and holders, and after SIGKILL at a random moment', async () => {
    const p = `${PREFIX}-busy`;
    const busy = await peer(['busy', p]);
    try {
      await sleep(Math.random() * 200);
      const live = await named(p);
      for (const kind of ['ring', 'wq', 'mutex', 'pool', 'persist']) {
        const o = live.get(`/${p}-${kind}`);
        assert.ok(o, `${kind} listed`);
        assert.equal(o.state, 'live', `${kind}: ${o.reason}`);
        assert.equal(o.layoutVersion, 2);
        assert.ok(o.holders.some((h) => h.pid === busy.child.pid && h.via.includes('mapping')), `${kind} held by the peer`);
        assert.ok(o.participants!.some((x) => x.role === 'creator' && x.pid === busy.child.pid && x.alive));
      }
      assert.equal(live.get(`/${p}-ring`)!.madeBy, 'ring');
      assert.equal(live.get(`/${p}-wq`)!.madeBy, 'workqueue');
      assert.equal(live.get(`/${p}-mutex`)!.madeBy, 'mutex');
      assert.equal(live.get(`/${p}-pool`)!.madeBy, 'pool');
      assert.equal(live.get(`/${p}-persist`)!.persistent, true);
      assert.equal(live.get(`/${p}-ring`)!.persistent, false);
      assert.equal(live.get(`/${p}-ring`)!.participants!.filter((x) => x.role === 'participant' && x.alive).length, 2, 'sender and receiver');
      await kill(busy);
      const dead = await named(p);
      for (const o of dead.values()) {
        if (o.madeBy === 'foreign') {
          // Killed inside a create, before the header was written: nothing tells it is ipckit's.
          assert.ok((o.size ?? 0) === 0 || o.state === 'unknown', JSON.stringify(o));
          continue;
        }
        assert.ok(IPCKIT_MADE.has(o.madeBy), `${o.name}: ${o.madeBy}`);
        assert.equal(o.state, 'abandoned', `${o.name}: ${o.reason}`);
        assert.deepEqual(o.holders, []);
        assert.ok(o.participants!.every((x) => !x.alive));
      }
      assert.equal(dead.get(`/${p}-persist`)!.state, 'abandoned');
      assert.match(dead.get(`/${p}-persist`)!.reason, /persistent/);
    } finally {
      await kill(busy);
      removeShm(p);
    }

    // A live participant keeps it live after its creator died; so does a process that only has it open.
    const ring = `/${PREFIX}-part-ring`;
    const mutex = `/${PREFIX}-held-mutex`;
    const creator = await peer(['create', 'ring', ring]);
    const creator2 = await peer(['create', 'mutex', mutex]);
    const attached = await peer(['attach', ring]);
    const holder = await peer(['hold', 'mutex', mutex]);
    try {
      await kill(creator);
      await kill(creator2);
      let all = await named(`${PREFIX}-`);
      assert.equal(all.get(ring)!.state, 'live');
      assert.match(all.get(ring)!.reason, new RegExp(`participant ${attached.child.pid}`));
      assert.equal(all.get(mutex)!.state, 'live');
      assert.deepEqual(all.get(mutex)!.holders.map((h) => [h.pid, h.via]), [[holder.child.pid, ['fd', 'mapping']]]);
      await kill(attached);
      await kill(holder);
      all = await named(`${PREFIX}-`);
      assert.equal(all.get(ring)!.state, 'abandoned', all.get(ring)!.reason);
      assert.equal(all.get(mutex)!.state, 'abandoned', all.get(mutex)!.reason);
    } finally {
      for (const r of [creator, creator2, attached, holder]) await kill(r);
      removeShm(PREFIX);
    }
  });

  it('reads headers defensively: corrupt, half-made and too small objects are reported, never thrown', async () => {
    const header = (magic: string, version: number, tableOffset: number, rows: number): Buffer => {
      const b = Buffer.alloc(4096);
      b.write(magic, 0, 'latin1');
      b.writeUInt32LE(version, 4);
      b.writeUInt32LE(64, 8);
      b.writeUInt32LE(999999, 16); // creator pid: nobody
      b.writeUInt32LE(tableOffset, 40);
      b.writeUInt32LE(rows, 44);
      return b;
    };
    writeFileSync(`/dev/shm/${PREFIX}-bad-table`, header('IPKR', 2, 512, 100000), { mode: 0o600 });
    writeFileSync(`/dev/shm/${PREFIX}-newer`, header('IPKQ', 99, 1024, 1), { mode: 0o600 });
    writeFileSync(`/dev/shm/${PREFIX}-unknown-kind`, header('IPKZ', 1, 0, 0), { mode: 0o600 });
    writeFileSync(`/dev/shm/${PREFIX}-half`, header('IPKr', 2, 512, 2), { mode: 0o600 });
    writeFileSync(`/dev/shm/${PREFIX}-tiny`, 'IPKR', { mode: 0o600 });
    const badRow = header('IPKM', 2, 64, 1);
    badRow.writeUInt32LE(7, 64 + 4); // row state 7
    writeFileSync(`/dev/shm/${PREFIX}-bad-row`, badRow, { mode: 0o600 });
    try {
      const all = await named(PREFIX);
      assert.equal(all.get(`/${PREFIX}-bad-table`)!.madeBy, 'ipckit (corrupt)');
      assert.equal(all.get(`/${PREFIX}-bad-table`)!.state, 'unknown');
      assert.equal(all.get(`/${PREFIX}-bad-row`)!.madeBy, 'ipckit (corrupt)');
      assert.equal(all.get(`/${PREFIX}-newer`)!.madeBy, 'ipckit (newer)');
      assert.equal(all.get(`/${PREFIX}-newer`)!.layoutVersion, 99);
      assert.equal(all.get(`/${PREFIX}-unknown-kind`)!.madeBy, 'ipckit (unknown kind)');
      assert.equal(all.get(`/${PREFIX}-tiny`)!.madeBy, 'foreign');
      // A creator that died before publishing: nobody will finish it, and nobody could have attached.
      assert.equal(all.get(`/${PREFIX}-half`)!.madeBy, 'ipckit (being made)');
      assert.equal(all.get(`/${PREFIX}-half`)!.state, 'abandoned');
      for (const name of ['bad-table', 'bad-row', 'newer', 'unknown-kind']) assert.equal(all.get(`/${PREFIX}-${name}`)!.state, 'unknown');
    } finally {
      removeShm(PREFIX);
    }
  });

  it('the CLI: a table with human sizes, --json, filters, --watch until SIGINT', async () => {
    const ring = `/${PREFIX}-cli-ring`;
    const r = await peer(['create', 'ring', ring]);
    try {
      const table = await runCli(['ls', '--kind', 'shm']).done;
      assert.equal(table.code, 0, table.stderr);
      assert.match(table.stdout, /^KIND\s+NAME\s+OWNER\s+MODE\s+SIZE\s+IN USE\s+MADE BY\s+STATE\s+HOLDERS/);
      assert.match(table.stdout, new RegExp(`shm\\s+${ring}\\s+root\\s+600\\s+8 KiB\\s+0 B used\\s+ring v2\\s+live\\s+${r.child.pid}`));
      const json = await runCli(['ls', '--json', '--owner', 'root', '--kind', 'shm']).done;
      assert.equal(json.code, 0, json.stderr);
      const objects = JSON.parse(json.stdout) as Array<{ name: string; madeBy: string; state: string }>;
      assert.ok(objects.some((o) => o.name === ring && o.madeBy === 'ring' && o.state === 'live'));
      const none = await runCli(['ls', '--json', '--abandoned', '--kind', 'shm']).done;
      assert.ok(!(JSON.parse(none.stdout) as Array<{ name: string }>).some((o) => o.name === ring));
      const bad = await runCli(['ls', '--kind', 'nonsense']).done;
      assert.equal(bad.code, 2);
      const both = await runCli(['ls', '--watch', '--json']).done; // --watch alone takes its default
      assert.equal(both.code, 2);
      assert.match(both.stderr, /--watch draws a table/);

      const watch = runCli(['ls', '--kind', 'shm', '--watch', '1'], { timeoutMs: 60_000 });
      let frames = '';
      watch.child.stdout!.on('data', (d: Buffer) => (frames += d.toString()));
      await eventually(() => (frames.match(/^ipckit ls: /gm) ?? []).length >= 2, 'two frames');
      watch.child.kill('SIGINT');
      const end = await watch.done;
      assert.equal(end.code, 0, end.stderr);
      assert.ok(frames.includes(ring));
    } finally {
      await kill(r);
      removeShm(PREFIX);
    }
  });
});
