/** `ipckit sysv`: ftok, message queues and semaphore sets from the shell, KEY forms, JSON, exit codes, errors in flags. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { createSysvMessageQueue, createSysvSemaphoreSet, ftok, openSysvSemaphoreSet, openSysvSharedMemory, removeSysvMessageQueue, removeSysvSemaphoreSet, removeSysvSharedMemory } from '../../src/index.js';
import { isRoot, runCli, scratchPath, uniqueKey } from '../helpers.js';

const queues: number[] = [];
const sets: number[] = [];
const segments: number[] = [];
after(() => {
  for (const id of queues) removeSysvMessageQueue({ id });
  for (const id of sets) removeSysvSemaphoreSet({ id });
  for (const id of segments) removeSysvSharedMemory({ id });
});

const hex = (key: number): string => `0x${key.toString(16).padStart(8, '0')}`;

async function cli(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli(args, input === undefined ? {} : { input }).done;
}

describe('ipckit sysv ftok', () => {
  it('prints libc\'s key for PATH and PROJ (a number or one character), as 0x… hex', async () => {
    const path = scratchPath('ftok');
    writeFileSync(path, 'x');
    const r = await cli(['sysv', 'ftok', path, '65']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${hex(ftok(path, 65))}\n`);
    assert.equal((await cli(['sysv', 'ftok', path, 'A'])).stdout, r.stdout, "'A' is 65");
    const missing = await cli(['sysv', 'ftok', `${path}-none`, '1']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /ftok needs an existing file.*ERR_IPCKIT_NOT_FOUND/);
    assert.equal((await cli(['sysv', 'ftok', path, '256'])).code, 2);
  });
});

describe('ipckit sysv msg', () => {
  it('create, send with types, recv with --type, --type=-T and --except, --json with the type, --drain, info, rm', async () => {
    const key = uniqueKey();
    const made = await cli(['sysv', 'msg', 'create', hex(key), '--mode', '640', '--max-bytes', '4K']);
    assert.equal(made.code, 0, made.stderr);
    const id = Number(/^id:(\d+)\n$/.exec(made.stdout)![1]);
    queues.push(id);
    assert.equal((await cli(['sysv', 'msg', 'create', hex(key)])).code, 1, 'exclusive');
    // Our own queue, 0640: the CLI checks the owner, not a mode we gave.
    assert.equal((await cli(['sysv', 'msg', 'send', hex(key), 'three', '--type', '3'])).code, 0);
    assert.equal((await cli(['sysv', 'msg', 'send', `id:${id}`, '--type', '1'], 'one\nuno\n')).code, 0, 'one message per stdin line');
    assert.equal((await cli(['sysv', 'msg', 'send', String(key), 'five', '--type', '5'])).code, 0, 'a decimal key');
    let r = await cli(['sysv', 'msg', 'recv', hex(key), '--type', '5', '--count', '1']);
    assert.equal(r.stdout, 'five\n');
    r = await cli(['sysv', 'msg', 'recv', hex(key), '--type', '3', '--except', '--count', '1', '--json']);
    assert.deepEqual(JSON.parse(r.stdout), { data: 'one', encoding: 'utf8', length: 3, type: 1 });
    r = await cli(['sysv', 'msg', 'recv', hex(key), '--type=-2', '--count', '1']);
    assert.equal(r.stdout, 'uno\n');
    r = await cli(['sysv', 'msg', 'recv', hex(key), '--drain', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n').map((l) => JSON.parse(l).type), [3]);
    r = await cli(['sysv', 'msg', 'recv', hex(key), '--count', '1', '--timeout', '200']);
    assert.equal(r.code, 124);
    assert.match(r.stderr, /timed out after 200 ms \(--timeout\) waiting on queue .*, 0 of 1 messages received/);
    const info = await cli(['sysv', 'msg', 'info', `id:${id}`, '--json']);
    assert.equal(info.code, 0, info.stderr);
    const o = JSON.parse(info.stdout);
    assert.deepEqual(
      { key: o.key, id: o.id, uid: o.uid, cuid: o.cuid, mode: o.mode, maxBytes: o.maxBytes, messages: o.messages },
      { key, id, uid: process.geteuid!(), cuid: process.geteuid!(), mode: 416, maxBytes: 4096, messages: 0 },
    );
    for (const field of ['gid', 'cgid', 'seq', 'lastSendPid', 'lastReceivePid', 'sendTime', 'receiveTime', 'changeTime']) assert.ok(field in o, field);
    const text = await cli(['sysv', 'msg', 'info', hex(key)]);
    assert.match(text.stdout, /^key 0x[0-9a-f]{8}\nid \d+\n/);
    assert.match(text.stdout, /\nmode 0640\n/);
    assert.equal((await cli(['sysv', 'msg', 'rm', hex(key)])).code, 0);
    const gone = await cli(['sysv', 'msg', 'rm', hex(key)]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /no System V message queue named 0x[0-9a-f]+; pass --force to ignore a missing name \(ERR_IPCKIT_NOT_FOUND\)/);
    assert.equal((await cli(['sysv', 'msg', 'rm', hex(key), '--force'])).code, 0);
  });

  it('a PATH:PROJ key is ftok\'s; recv waits for a message sent later; a bad KEY is a usage error', async () => {
    const path = scratchPath('keyfile');
    writeFileSync(path, 'x');
    const key = ftok(path, 7);
    const q = createSysvMessageQueue(key, { codec: 'utf8' });
    queues.push(q.id);
    try {
      const waiting = runCli(['sysv', 'msg', 'recv', `${path}:7`, '--count', '1', '--timeout', '10000', '--json']);
      await new Promise((r) => setTimeout(r, 300));
      await q.send('later', { type: 9 });
      const r = await waiting.done;
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), { data: 'later', encoding: 'utf8', length: 5, type: 9 });
    } finally {
      q.remove();
      await q.close();
    }
    const bad = await cli(['sysv', 'msg', 'recv', 'jobs']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /a System V key is 0x5e0001 or a decimal number, id:N .* or PATH:PROJ/);
    const except = await cli(['sysv', 'msg', 'recv', '0x1', '--except']);
    assert.equal(except.code, 2);
  });

  it('another user\'s queue is refused, and the way out is said as flags', { skip: !isRoot && 'needs root to give a queue to another user' }, async () => {
    const q = createSysvMessageQueue(uniqueKey());
    queues.push(q.id);
    try {
      q.setOwner({ uid: 65534 });
      const r = await cli(['sysv', 'msg', 'send', hex(q.key), 'x']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /belongs to uid 65534 \(mode 0600\), not uid 0; refusing it; pass --any-owner or --owner UID if that is expected \(ERR_IPCKIT_PERMISSION\)/);
      assert.doesNotMatch(r.stderr, /anyOwner/);
      assert.equal((await cli(['sysv', 'msg', 'send', hex(q.key), 'x', '--any-owner'])).code, 0);
      // Given to uid 65534 but created by us: naming the owner is not enough while the creator differs.
      const named = await cli(['sysv', 'msg', 'send', hex(q.key), 'y', '--owner', '65534']);
      assert.equal(named.code, 1);
      assert.match(named.stderr, /was created by uid 0, who keeps an owner's rights over it, and given to uid 65534/);
      assert.equal(q.stat().messages, 1);
    } finally {
      q.remove();
      await q.close();
    }
  });
});

describe('ipckit sysv sem', () => {
  it('create, op (several at once), --nowait and --timeout exit 124, get --json, set, info, rm', async () => {
    const key = uniqueKey();
    const made = await cli(['sysv', 'sem', 'create', hex(key), '--count', '3', '--value', '1']);
    assert.equal(made.code, 0, made.stderr);
    sets.push(Number(made.stdout.trim().slice(3)));
    let r = await cli(['sysv', 'sem', 'op', hex(key), '0:-1', '2:+2', '1:0', '--nowait']);
    assert.equal(r.code, 124, 'semaphore 1 is 1, not 0: nothing done');
    assert.match(r.stderr, /would wait \(--nowait\) \(ERR_IPCKIT_TIMEOUT\)/);
    r = await cli(['sysv', 'sem', 'op', hex(key), '0:-1', '2:+2', '1:-1']);
    assert.equal(r.code, 0, r.stderr);
    r = await cli(['sysv', 'sem', 'get', hex(key)]);
    assert.equal(r.stdout, '0 0 3\n');
    r = await cli(['sysv', 'sem', 'op', hex(key), '0:-1', '--timeout', '150']);
    assert.equal(r.code, 124);
    assert.match(r.stderr, /timed out after 150 ms/);
    assert.equal((await cli(['sysv', 'sem', 'op', hex(key), '2:-3', '--undo'])).code, 0);
    r = await cli(['sysv', 'sem', 'get', hex(key), '--json']);
    const got = JSON.parse(r.stdout);
    assert.deepEqual(got.values, [0, 0, 3], 'the kernel undid --undo when the command exited');
    assert.equal(got.semaphores[2].waitingToTake, 0);
    assert.equal((await cli(['sysv', 'sem', 'set', hex(key), '1', '7'])).code, 0);
    const s = await openSysvSemaphoreSet(key);
    assert.equal(s.get(1), 7);
    await s.close();
    assert.equal((await cli(['sysv', 'sem', 'set', hex(key), '3', '1'])).code, 2, 'INDEX past the set');
    assert.equal((await cli(['sysv', 'sem', 'op', hex(key), '0-1'])).code, 2, 'an OP is INDEX:DELTA');
    const info = JSON.parse((await cli(['sysv', 'sem', 'info', hex(key), '--json'])).stdout);
    assert.equal(info.count, 3);
    assert.equal(info.mode, 0o600);
    assert.equal(info.key, key);
    assert.equal((await cli(['sysv', 'sem', 'rm', hex(key)])).code, 0);
    assert.equal((await cli(['sysv', 'sem', 'rm', hex(key)])).code, 1);
  });

  it('op waits for another process, with a note after a second unless --quiet', async () => {
    const s = createSysvSemaphoreSet(uniqueKey(), { value: 0 });
    sets.push(s.id);
    try {
      const waiting = runCli(['sysv', 'sem', 'op', `id:${s.id}`, '0:-1', '--timeout', '10000']);
      await new Promise((r) => setTimeout(r, 1300));
      await s.op([{ index: 0, delta: 1 }]);
      const r = await waiting.done;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /waiting to apply 0:-1 to set id:\d+…/);
      assert.equal(s.get(0), 0);
    } finally {
      await s.close();
    }
  });
});

describe('ipckit sysv shm', () => {
  it('create with a size, write stdin at --offset, read --offset --length, info --json, rm', async () => {
    const key = uniqueKey();
    const made = await cli(['sysv', 'shm', 'create', hex(key), '64K', '--json']);
    assert.equal(made.code, 0, made.stderr);
    const { id } = JSON.parse(made.stdout) as { key: number; id: number };
    segments.push(id);
    assert.equal((await cli(['sysv', 'shm', 'write', hex(key), '--offset', '4K'], 'hello\n')).code, 0);
    const r = await cli(['sysv', 'shm', 'read', `id:${id}`, '--offset', '4K', '--length', '6']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hello\n');
    const seg = await openSysvSharedMemory(key);
    assert.equal(seg.read(4096, 5).toString(), 'hello');
    seg.close();
    const past = await cli(['sysv', 'shm', 'read', hex(key), '--offset', '64K', '--length', '1']);
    assert.equal(past.code, 2);
    const big = await cli(['sysv', 'shm', 'write', hex(key), '--offset', '65530'], '0123456789');
    assert.equal(big.code, 1);
    assert.match(big.stderr, /stdin has more than the 6 bytes/);
    const info = JSON.parse((await cli(['sysv', 'shm', 'info', hex(key), '--json'])).stdout);
    assert.deepEqual({ id: info.id, key: info.key, size: info.size, mode: info.mode, removed: info.removed }, { id, key, size: 65536, mode: 0o600, removed: false });
    assert.equal((await cli(['sysv', 'shm', 'rm', hex(key)])).code, 0);
    assert.equal((await cli(['sysv', 'shm', 'rm', hex(key)])).code, 1);
  });
});
