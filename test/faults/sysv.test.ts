/**
 * System V objects against other users and the kernel's limits: another user refused by
 * mode, a key squatted by another user refused (even one handed to us by its creator),
 * and every limit hit named with the sysctl that raises it, inside a private IPC namespace
 * (unshare -i) so that nothing on the host changes.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  createSysvMessageQueue,
  createSysvSemaphoreSet,
  createSysvSharedMemory,
  openSysvMessageQueue,
  openSysvSemaphoreSet,
  openSysvSharedMemory,
  removeSysvMessageQueue,
  removeSysvSemaphoreSet,
  removeSysvSharedMemory,
} from '../../src/index.js';
import { AS_NOBODY, isRoot, rejectsWith, repoRoot, run, scratchDir, throwsWith, uniqueKey } from '../helpers.js';

const PY = '/usr/bin/python3';
const haveSysvIpc = spawnSync(PY, ['-c', 'import sysv_ipc'], { stdio: 'ignore' }).status === 0;

const queues: number[] = [];
const sets: number[] = [];
const segments: number[] = [];
after(() => {
  for (const id of queues) removeSysvMessageQueue({ id });
  for (const id of sets) removeSysvSemaphoreSet({ id });
  for (const id of segments) removeSysvSharedMemory({ id });
});

/** python3 with sysv_ipc as user nobody; prints what it got or the exception's class. */
async function asNobody(code: string, key: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = `import sys, json, sysv_ipc\nkey = int(sys.argv[1])\ntry:\n${code.split('\n').map((l) => `    ${l}`).join('\n')}\nexcept sysv_ipc.Error as e:\n    print(type(e).__name__)`;
  return run(AS_NOBODY[0]!, [...AS_NOBODY.slice(1), PY, '-c', script, String(key | 0)]).done;
}

describe('sysv: another user', { skip: !isRoot ? 'needs root to act as user nobody' : !haveSysvIpc && 'needs python3-sysv-ipc' }, () => {
  it('the default mode 0600 keeps another user out of a queue and a set; { mode: 0o660, group } lets that group in', async () => {
    const q = createSysvMessageQueue(uniqueKey(), { codec: 'utf8' });
    const s = createSysvSemaphoreSet(uniqueKey(), { value: 1 });
    queues.push(q.id);
    sets.push(s.id);
    const shared = createSysvMessageQueue(uniqueKey(), { codec: 'utf8', mode: 0o660, group: 65534 });
    queues.push(shared.id);
    try {
      await q.send('private');
      let r = await asNobody(`mq = sysv_ipc.MessageQueue(key)\nprint(mq.receive(block=False))`, q.key);
      assert.equal(r.stdout.trim(), 'PermissionsError', r.stderr);
      r = await asNobody(`sem = sysv_ipc.Semaphore(key)\nsem.acquire(0)\nprint('took')`, s.key);
      assert.equal(r.stdout.trim(), 'PermissionsError', r.stderr);
      assert.equal(q.stat().messages, 1, 'the message is still there');
      assert.equal(s.get(0), 1, 'the permit is still there');
      r = await asNobody(`mq = sysv_ipc.MessageQueue(key)\nmq.send(b'from nobody', type=6)\nprint('sent')`, shared.key);
      assert.equal(r.stdout.trim(), 'sent', r.stderr);
      assert.deepEqual(await shared.receiveWithType(), { type: 6, message: 'from nobody' });
      // Our own open checks the mode too: a shared object must be opened as one.
      await rejectsWith(openSysvMessageQueue(shared.key), 'ERR_IPCKIT_PERMISSION');
      const o = await openSysvMessageQueue(shared.key, { mode: 0o660 });
      await o.close();
    } finally {
      await q.close();
      await s.close();
      await shared.close();
    }
  });

  it('a key squatted by another user (a queue, a set, a segment): create is ERR_IPCKIT_EXISTS, open ERR_IPCKIT_PERMISSION unless { anyOwner }, and nothing was used', async () => {
    const qkey = uniqueKey();
    const skey = uniqueKey();
    let r = await asNobody(`mq = sysv_ipc.MessageQueue(key, sysv_ipc.IPC_CREX, 0o666)\nmq.send(b'bait', type=1)\nprint(mq.id)`, qkey);
    assert.match(r.stdout, /^\d+\n$/, r.stderr);
    queues.push(Number(r.stdout));
    r = await asNobody(`sem = sysv_ipc.Semaphore(key, sysv_ipc.IPC_CREX, 0o666, 5)\nprint(sem.id)`, skey);
    assert.match(r.stdout, /^\d+\n$/, r.stderr);
    sets.push(Number(r.stdout));
    throwsWith(() => createSysvMessageQueue(qkey), 'ERR_IPCKIT_EXISTS');
    throwsWith(() => createSysvSemaphoreSet(skey), 'ERR_IPCKIT_EXISTS');
    const e = await rejectsWith(openSysvMessageQueue(qkey), 'ERR_IPCKIT_PERMISSION');
    assert.match(e.message, /belongs to uid 65534 \(mode 0666\), not uid 0; refusing it; pass \{ anyOwner: true \} or \{ owner \} if that is expected/);
    await rejectsWith(openSysvMessageQueue(qkey, { mode: 0o666 }), 'ERR_IPCKIT_PERMISSION'); // still not ours
    await rejectsWith(openSysvSemaphoreSet(skey), 'ERR_IPCKIT_PERMISSION');
    const mkey = uniqueKey();
    r = await asNobody(`m = sysv_ipc.SharedMemory(key, sysv_ipc.IPC_CREX, 0o666, 4096)\nm.write(b'bait')\nprint(m.id)`, mkey);
    assert.match(r.stdout, /^\d+\n$/, r.stderr);
    segments.push(Number(r.stdout));
    throwsWith(() => createSysvSharedMemory(mkey, 4096), 'ERR_IPCKIT_EXISTS');
    await rejectsWith(openSysvSharedMemory(mkey), 'ERR_IPCKIT_PERMISSION');
    const trusted = await openSysvSemaphoreSet(skey, { anyOwner: true });
    assert.equal(trusted.get(0), 5, 'the refusals took nothing');
    await trusted.close();
    const byOwner = await openSysvMessageQueue(qkey, { owner: 65534, mode: 0o666 });
    assert.equal(byOwner.stat().messages, 1);
    await byOwner.close();
  });

  it('a squatter that hands its object to us (IPC_SET uid 0, mode 0600) is still refused: the creator keeps an owner\'s rights', async () => {
    const key = uniqueKey();
    const r = await asNobody(
      `mq = sysv_ipc.MessageQueue(key, sysv_ipc.IPC_CREX, 0o600)\nmq.mode = 0o600\nmq.uid = 0\nprint(json.dumps([mq.id, mq.uid, mq.cuid]))`,
      key,
    );
    const [id, uid, cuid] = JSON.parse(r.stdout) as number[];
    queues.push(id!);
    assert.deepEqual([uid, cuid], [0, 65534], r.stderr);
    const e = await rejectsWith(openSysvMessageQueue(key), 'ERR_IPCKIT_PERMISSION');
    assert.match(e.message, /was created by uid 65534, who keeps an owner's rights over it, and given to uid 0; refusing it/);
  });
});

describe('sysv: the kernel\'s limits, named (a private IPC namespace)', { skip: !isRoot && 'needs root for unshare -i' }, () => {
  it('msgmax, msgmnb, msgmni, kernel.sem (SEMMSL, SEMOPM, SEMMNI), SEMVMX, shmmax, shmall and shmmni each name themselves and their sysctl', async () => {
    const dir = scratchDir();
    const script = join(dir, 'sysv-limits.mjs');
    writeFileSync(
      script,
      `const ipc = await import(${JSON.stringify(join(repoRoot, 'dist', 'src', 'index.js'))});
      const out = {};
      const catching = async (name, fn) => { try { await fn(); out[name] = 'no error'; } catch (e) { out[name] = { code: e.code, message: e.message, limit: e.details?.limit, value: e.details?.value }; } };
      const q = ipc.createSysvMessageQueue(0x1001);
      await catching('msgmax', () => q.send(new Uint8Array(200)));
      await catching('msgmnb', () => q.setMaxBytes(1000));
      ipc.createSysvMessageQueue(0x1002);
      await catching('msgmni', () => ipc.createSysvMessageQueue(0x1003));
      await catching('semmsl', () => ipc.createSysvSemaphoreSet(0x2001, { count: 5 }));
      const s = ipc.createSysvSemaphoreSet(0x2002, { count: 4 });
      await catching('semopm', () => s.op([{ index: 0, delta: 1 }, { index: 1, delta: 1 }, { index: 2, delta: 1 }]));
      ipc.createSysvSemaphoreSet(0x2003, { count: 1 });
      await catching('semmni', () => ipc.createSysvSemaphoreSet(0x2004, { count: 1 }));
      s.set(3, 32767);
      await catching('semvmx', () => s.op([{ index: 3, delta: 1 }]));
      await catching('shmmax', () => ipc.createSysvSharedMemory(0x3001, 16384));
      const seg = ipc.createSysvSharedMemory(0x3002, 8192);
      await catching('shmall', () => ipc.createSysvSharedMemory(0x3003, 8192));
      ipc.removeSysvSharedMemory({ id: seg.id });
      seg.close();
      ipc.createSysvSharedMemory(0x3004, 64).close();
      ipc.createSysvSharedMemory(0x3005, 64).close();
      await catching('shmmni', () => ipc.createSysvSharedMemory(0x3006, 64));
      process.stdout.write(JSON.stringify(out));`,
    );
    // unshare -i: a fresh IPC namespace, with its own sysctls and no objects; the objects go with it.
    const sh = `
      set -e
      echo 100 > /proc/sys/kernel/msgmax
      echo 500 > /proc/sys/kernel/msgmnb
      echo 2 > /proc/sys/kernel/msgmni
      echo '4 100 2 2' > /proc/sys/kernel/sem
      echo 8192 > /proc/sys/kernel/shmmax
      echo 3 > /proc/sys/kernel/shmall
      echo 2 > /proc/sys/kernel/shmmni
      setpriv --bounding-set=-sys_resource ${JSON.stringify(process.execPath)} sysv-limits.mjs
    `;
    const r = await run('unshare', ['-i', 'sh', '-c', sh], { cwd: dir }).done;
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(r.stdout) as Record<string, { code: string; message: string; limit: string; value: number }>;
    const expect = (name: string, code: string, limit: string, value: number, text: RegExp): void => {
      assert.equal(got[name]?.code, code, `${name}: ${JSON.stringify(got[name])}`);
      assert.equal(got[name]!.limit, limit, name);
      assert.equal(got[name]!.value, value, name);
      assert.match(got[name]!.message, text, name);
    };
    expect('msgmax', 'ERR_IPCKIT_FRAME_TOO_LARGE', 'kernel.msgmax', 100, /message to send is 200 bytes, more than the kernel's largest System V message: kernel\.msgmax = 100; raise it \(root: sysctl -w kernel\.msgmax=N\)/);
    expect('msgmnb', 'ERR_IPCKIT_LIMIT', 'kernel.msgmnb', 500, /maxBytes 1000 is above kernel\.msgmnb = 500; .*CAP_SYS_RESOURCE/);
    expect('msgmni', 'ERR_IPCKIT_LIMIT', 'kernel.msgmni', 2, /kernel\.msgmni = 2; remove unused queues \(ipcs -q, ipcrm\) or raise it/);
    expect('semmsl', 'ERR_IPCKIT_LIMIT', 'kernel.sem SEMMSL', 4, /a set of 5 semaphores is more than kernel\.sem SEMMSL = 4/);
    expect('semopm', 'ERR_IPCKIT_LIMIT', 'kernel.sem SEMOPM', 2, /too many operations for one semop .* kernel\.sem SEMOPM = 2/);
    expect('semmni', 'ERR_IPCKIT_LIMIT', 'kernel.sem SEMMNI', 2, /kernel\.sem SEMMNI = 2/);
    expect('semvmx', 'ERR_IPCKIT_LIMIT', 'SEMVMX', 32767, /past SEMVMX = 32767; it is fixed in the kernel/);
    expect('shmmax', 'ERR_IPCKIT_LIMIT', 'kernel.shmmax', 8192, /a segment of 16384 bytes is larger than kernel\.shmmax = 8192; raise it/);
    expect('shmall', 'ERR_IPCKIT_LIMIT', 'kernel.shmall', 3, /its 2 pages and the 2 in use pass the most in all segments, kernel\.shmall = 3/);
    expect('shmmni', 'ERR_IPCKIT_LIMIT', 'kernel.shmmni', 2, /kernel\.shmmni = 2; remove unused segments/);
  });
});
