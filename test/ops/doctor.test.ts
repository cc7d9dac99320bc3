/**
 * `ipckit doctor`: on this machine as it is, and with limits and mounts changed for one test
 * inside private namespaces (unshare), so that nothing on the host changes.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { diagnose, type Diagnosis, type Finding } from '../../src/ops/doctor.js';
import { isRoot, repoRoot, run, runCli, scratchDir } from '../helpers.js';

const cli = join(repoRoot, 'dist', 'src', 'cli', 'main.js');

const LIMITS = [
  'fs.mqueue.msg_max',
  'fs.mqueue.msgsize_max',
  'fs.mqueue.queues_max',
  'RLIMIT_MSGQUEUE',
  '/dev/shm',
  'kernel.shmmax',
  'kernel.shmall',
  'kernel.shmmni',
  'kernel.msgmax',
  'kernel.msgmnb',
  'kernel.msgmni',
  'kernel.sem',
  'net.unix.max_dgram_qlen',
  'fs.pipe-max-size',
  'fs.pipe-user-pages-soft',
  'RLIMIT_NOFILE',
  'RLIMIT_MEMLOCK',
];
const FEATURES = ['feature.io_uring-futex', 'feature.futex_waitv', 'feature.pidfd', 'feature.memfd-seals', 'feature.ofd-locks'];
const HAZARDS = ['hazard.remove-ipc', 'hazard.mqueue-mount', 'hazard.runtime-path', 'hazard.hidepid', 'hazard.pid-namespace', 'hazard.dev-shm'];

const find = (d: Diagnosis, id: string): Finding => [...d.features, ...d.limits, ...d.hazards].find((f) => f.id === id) ?? assert.fail(`no finding ${id}`);
const sysctl = (name: string): number => Number(readFileSync(`/proc/sys/${name.replace(/\./g, '/')}`, 'utf8').trim());

describe('ipckit doctor on this machine', () => {
  it('lists every feature, limit and hazard, with the values the kernel shows', async () => {
    const d = await diagnose();
    assert.deepEqual(d.features.map((f) => f.id), FEATURES);
    assert.deepEqual(d.limits.map((f) => f.id), LIMITS);
    assert.deepEqual(d.hazards.map((f) => f.id), HAZARDS);
    for (const name of ['fs.mqueue.msg_max', 'fs.mqueue.msgsize_max', 'fs.mqueue.queues_max', 'kernel.shmmni', 'kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'net.unix.max_dgram_qlen', 'fs.pipe-max-size']) {
      assert.equal(find(d, name).value, sysctl(name), name);
    }
    assert.equal(find(d, 'kernel.sem').value, Number(readFileSync('/proc/sys/kernel/sem', 'utf8').trim().split(/\s+/)[3]));
    const nofile = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))![1];
    assert.equal(find(d, 'RLIMIT_NOFILE').value, Number(nofile));
    assert.ok((find(d, 'RLIMIT_NOFILE').use ?? 0) > 3, 'descriptors in use are counted');
    for (const f of [...d.features, ...d.limits, ...d.hazards]) {
      assert.ok(['ok', 'info', 'warning', 'problem'].includes(f.status), `${f.id}: ${f.status}`);
      assert.ok(f.detail.length > 10, `${f.id} says what it means`);
      if (f.status === 'problem') assert.ok(f.fix, `${f.id} has a fix`);
    }
    assert.equal(d.problems, [...d.features, ...d.limits, ...d.hazards].filter((f) => f.status === 'problem').length);
  });

  it('the report and --json agree, and the exit code says whether anything is wrong', async () => {
    const json = await runCli(['doctor', '--json']).done;
    const d = JSON.parse(json.stdout) as Diagnosis;
    assert.equal(json.code, d.problems === 0 ? 0 : 1, json.stderr);
    const human = await runCli(['doctor']).done;
    assert.equal(human.code, json.code);
    for (const id of [...FEATURES, ...LIMITS, ...HAZARDS]) assert.ok(human.stdout.includes(id), `${id} in the report`);
    assert.match(human.stdout, d.problems === 0 ? /^no problems/m : /^\d+ problems?/m);
  });

  it('a descriptor limit nearly used up is a problem with its fix', async () => {
    // prlimit lowers the limit for one process, which then opens descriptors up to 95% of it.
    const dir = scratchDir();
    const script = join(dir, 'nofile.mjs');
    writeFileSync(
      script,
      `import { openSync, readdirSync } from 'node:fs';
      const { diagnose } = await import(${JSON.stringify(join(repoRoot, 'dist', 'src', 'ops', 'doctor.js'))});
      while (readdirSync('/proc/self/fd').length < 61) openSync('/dev/null', 'r');
      process.stdout.write(JSON.stringify(await diagnose()));`,
    );
    const r = await run('prlimit', ['--nofile=64:64', process.execPath, script]).done;
    assert.equal(r.code, 0, r.stderr);
    const f = find(JSON.parse(r.stdout) as Diagnosis, 'RLIMIT_NOFILE');
    assert.equal(f.value, 64);
    assert.equal(f.status, 'problem', JSON.stringify(f));
    assert.match(f.detail, /of 64 in use/);
    assert.match(f.fix!, /ulimit -n/);
  });
});

describe('ipckit doctor with limits and mounts changed in private namespaces (root)', { skip: isRoot ? false : 'needs root for unshare' }, () => {
  it('a queue limit reached in a fresh IPC namespace, and the mqueue filesystem not mounted', async () => {
    // unshare -i: a new IPC namespace with its own fs.mqueue sysctls; -m: its own mounts.
    const dir = scratchDir();
    writeFileSync(join(dir, 'queues.mjs'), `const { createMessageQueue } = await import(${JSON.stringify(join(repoRoot, 'dist', 'src', 'index.js'))});\nawait createMessageQueue('/ipckit-test-doctor-a').close();\nawait createMessageQueue('/ipckit-test-doctor-b').close();\n`);
    const node = JSON.stringify(process.execPath);
    const script = `
      set -e
      mount -t mqueue none /dev/mqueue
      echo 2 > /proc/sys/fs/mqueue/queues_max
      ${node} queues.mjs
      ${node} ${JSON.stringify(cli)} doctor --json > full.json || true
      while grep -q ' mqueue ' /proc/self/mounts; do umount /dev/mqueue; done
      ${node} ${JSON.stringify(cli)} doctor --json > unmounted.json || true
    `;
    const r = await run('unshare', ['-im', 'sh', '-c', script], { cwd: dir }).done;
    assert.equal(r.code, 0, r.stderr);
    const full = JSON.parse(readFileSync(join(dir, 'full.json'), 'utf8')) as Diagnosis;
    const q = find(full, 'fs.mqueue.queues_max');
    assert.equal(q.value, 2);
    assert.equal(q.use, 2);
    assert.equal(q.status, 'problem');
    assert.match(q.fix!, /sysctl -w fs\.mqueue\.queues_max=/);
    const unmounted = JSON.parse(readFileSync(join(dir, 'unmounted.json'), 'utf8')) as Diagnosis;
    assert.equal(find(unmounted, 'hazard.mqueue-mount').status, 'problem');
    assert.match(find(unmounted, 'hazard.mqueue-mount').fix!, /mount -t mqueue none \/dev\/mqueue/);
    // The host's limit is untouched.
    assert.notEqual(sysctl('fs.mqueue.queues_max'), 2);
  });

  it('/proc with hidepid, a PID namespace of its own, and systemd-logind RemoveIPC for a regular user', async () => {
    const dir = scratchDir();
    writeFileSync(join(dir, 'logind.conf'), '[Login]\nRemoveIPC=no\n');
    const doctor = `${JSON.stringify(process.execPath)} ${JSON.stringify(cli)} doctor --json`;
    const script = `
      mount -t proc -o hidepid=2 proc /proc
      ${doctor} > hidden.json
      setpriv --reuid=65534 --regid=65534 --clear-groups ${doctor} > nobody.json
      if [ -e /etc/systemd/logind.conf ]; then mount --bind logind.conf /etc/systemd/logind.conf; fi
      setpriv --reuid=65534 --regid=65534 --clear-groups ${doctor} > kept.json
      true
    `;
    const r = await run('unshare', ['-mp', '--fork', 'sh', '-c', script], { cwd: dir }).done;
    assert.equal(r.code, 0, r.stderr);
    const hidden = JSON.parse(readFileSync(join(dir, 'hidden.json'), 'utf8')) as Diagnosis;
    assert.equal(find(hidden, 'hazard.hidepid').status, 'warning');
    assert.match(String(find(hidden, 'hazard.hidepid').value), /^hidepid=(2|invisible)$/);
    // unshare -p with a /proc of its own: NSpid there shows one pid, yet this is not the host's namespace.
    assert.equal(find(hidden, 'hazard.pid-namespace').status, 'warning', JSON.stringify(find(hidden, 'hazard.pid-namespace')));
    const nobody = JSON.parse(readFileSync(join(dir, 'nobody.json'), 'utf8')) as Diagnosis;
    const logind = find(nobody, 'hazard.remove-ipc');
    if (logind.status !== 'ok' || logind.value !== undefined) {
      // systemd-logind is installed: uid 65534 is a regular user, whose objects go at logout.
      assert.equal(logind.status, 'problem', JSON.stringify(logind));
      assert.match(logind.fix!, /RemoveIPC=no/);
      const kept = JSON.parse(readFileSync(join(dir, 'kept.json'), 'utf8')) as Diagnosis;
      assert.equal(find(kept, 'hazard.remove-ipc').status, 'ok');
    }
  });
});
