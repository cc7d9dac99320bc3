/**
 * `npm test`: prints the environment the suite runs in, runs every test file with Node's
 * runner (one file at a time: these machines have 2 cores and the tests use real
 * processes), then fails if the suite left anything behind: an `ipckit-test` object in
 * /dev/shm or the mqueue filesystem, a file in the test runtime folder, or a process.
 * The runner is a child subreaper, so an orphan a test leaves is reparented here and
 * counted.
 *
 * Usage: node dist/scripts/run-tests.js [name-filter...]
 */
import { spawnSync, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir, cpus } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { census, childrenOf, mqueueMount } from '../test/census.js';
import { native } from '../src/os/native.js';
import { isProcessAlive, processStartTime } from '../src/os/liveness.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const testRoot = join(root, 'dist', 'test');

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return 'n/a';
  }
}

function findTests(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...findTests(p));
    else if (entry.name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

function ensureMqueueMounted(): string | undefined {
  const existing = mqueueMount();
  if (existing) return existing;
  // Listing POSIX message queues needs the mqueue filesystem; mount it if we may (root).
  if (process.geteuid?.() !== 0) return undefined;
  try {
    mkdirSync('/dev/mqueue', { recursive: true });
    execFileSync('mount', ['-t', 'mqueue', 'none', '/dev/mqueue'], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  return mqueueMount();
}

const filters = process.argv.slice(2);
const mq = ensureMqueueMounted();
console.log('# environment');
console.log(`#   kernel ${release()}, node ${process.version}, ${cpus().length} cpus, uid ${process.geteuid?.()}`);
console.log(`#   mqueue: msg_max ${read('/proc/sys/fs/mqueue/msg_max')}, msgsize_max ${read('/proc/sys/fs/mqueue/msgsize_max')}, queues_max ${read('/proc/sys/fs/mqueue/queues_max')}, mounted at ${mq ?? 'nowhere (queues cannot be listed)'}`);
console.log(`#   fs.protected_fifos ${read('/proc/sys/fs/protected_fifos')}, protected_regular ${read('/proc/sys/fs/protected_regular')}, protected_symlinks ${read('/proc/sys/fs/protected_symlinks')}`);
console.log(`#   pipe-max-size ${read('/proc/sys/fs/pipe-max-size')}; python3 ${existsSync('/usr/bin/python3') ? 'yes' : 'NO'}; socat ${spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0 ? 'yes' : 'NO'}; cc ${spawnSync('cc', ['--version'], { stdio: 'ignore' }).status === 0 ? 'yes' : 'NO'}; nats-server ${spawnSync('nats-server', ['--version'], { encoding: 'utf8' }).stdout?.trim().replace(/^nats-server: /, '') || 'NO (the NATS tests will fail: apt-get install nats-server)'}`);
console.log(`#   System V: msgmax ${read('/proc/sys/kernel/msgmax')}, msgmnb ${read('/proc/sys/kernel/msgmnb')}, sem ${read('/proc/sys/kernel/sem').replace(/\s+/g, ' ')}, shmmax ${read('/proc/sys/kernel/shmmax')}; python3-sysv-ipc ${spawnSync('/usr/bin/python3', ['-c', 'import sysv_ipc'], { stdio: 'ignore' }).status === 0 ? 'yes' : 'NO'}; ipcmk ${spawnSync('ipcmk', ['-V'], { stdio: 'ignore' }).status === 0 ? 'yes' : 'NO'}`);

// One folder for the run: the runtime folder ipckit uses, and TMPDIR for the tests'
// scratch folders, so that nothing of a killed test outlives the run.
// A run killed before its end (SIGKILL, a closed terminal) cannot remove its folder: the
// next run removes the folders of runners that are dead (pid and start time, as recorded).
for (const entry of readdirSync(tmpdir())) {
  if (!entry.startsWith('ipckit-testrun-')) continue;
  const folder = join(tmpdir(), entry);
  try {
    const [pid, start] = readFileSync(join(folder, 'runner'), 'utf8').trim().split(' ').map(Number);
    if (!Number.isInteger(pid) || !Number.isInteger(start) || isProcessAlive(pid!, start)) continue;
  } catch {
    continue; // no record: not a folder this runner made, or one still being made
  }
  rmSync(folder, { recursive: true, force: true });
}
const runDir = mkdtempSync(join(tmpdir(), 'ipckit-testrun-'));
writeFileSync(join(runDir, 'runner'), `${process.pid} ${processStartTime(process.pid)}\n`);
const runtimeDir = join(runDir, 'runtime');
const testTmp = join(runDir, 'tmp');
mkdirSync(runtimeDir, { mode: 0o700 });
mkdirSync(testTmp, { mode: 0o700 });
// Traversable (not listable) by other users, as /tmp is: tests that run a peer as nobody
// open a path inside a scratch folder they made reachable (the folders themselves stay 0700).
chmodSync(runDir, 0o711);
chmodSync(testTmp, 0o711);
// This run's mark: the tests' names carry it, and the census counts only those.
const mark = `ipckit-test-${randomBytes(3).toString('hex')}`;
// System V objects no key finds (IPC_PRIVATE) are recorded here by the tests that make them.
const sysvLog = join(runDir, 'sysv-objects');
const before = census(runtimeDir, mark, sysvLog);
native.setChildSubreaper(true);

// Filters match paths under dist/test, with or without a leading test/.
const wanted = filters.map((x) => x.replace(/^(dist\/)?test\//, ''));
const files = findTests(testRoot).filter((f) => wanted.length === 0 || wanted.some((x) => relative(testRoot, f).includes(x)));
if (files.length === 0) {
  // `node --test` with no files would run everything it finds: say so instead.
  console.error(`no test file matches ${filters.map((f) => JSON.stringify(f)).join(', ')}`);
  process.exit(2);
}
console.log(`# running ${files.length} test files`);
// 5 minutes a test: a hang still ends the run, and the CLI's help walk (a process per
// command) fits on a loaded 2-CPU machine.
const result = spawnSync(process.execPath, ['--test', '--test-timeout=300000', ...files], {
  stdio: 'inherit',
  env: { ...process.env, IPCKIT_RUNTIME_DIR: runtimeDir, TMPDIR: testTmp, IPCKIT_TEST: '1', IPCKIT_TEST_MARK: mark, IPCKIT_TEST_SYSV_LOG: sysvLog },
});

// Orphans of the tests are reparented to us. Dead ones stay zombies here (we do not
// reap strangers), which is not a leak; a live one is. Give them a moment to die.
const live = (): string[] => childrenOf(process.pid).filter((p) => !p.includes('(zombie)'));
const deadline = Date.now() + 2000;
let leftoverProcs = live();
while (leftoverProcs.length > 0 && Date.now() < deadline) {
  spawnSync('sleep', ['0.1']);
  leftoverProcs = live().filter((p) => !p.includes('sleep 0.1'));
}
const after = census(runtimeDir, mark, sysvLog).filter((x) => !before.includes(x));
let failed = result.status !== 0;
if (after.length > 0) {
  failed = true;
  console.error(`# LEAK: the suite left ${after.length} IPC objects behind:\n#   ${after.join('\n#   ')}`);
}
if (leftoverProcs.length > 0) {
  failed = true;
  console.error(`# LEAK: the suite left ${leftoverProcs.length} processes behind:\n#   ${leftoverProcs.join('\n#   ')}`);
  for (const p of leftoverProcs) {
    try {
      process.kill(Number(p.split(' ')[0]), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}
const leftoverScratch = readdirSync(testTmp);
if (leftoverScratch.length > 0) {
  failed = true;
  console.error(`# LEAK: test processes left ${leftoverScratch.length} scratch folders (a test process did not exit cleanly?):\n#   ${leftoverScratch.join('\n#   ')}`);
}
rmSync(runDir, { recursive: true, force: true });
console.log(failed ? '# FAILED' : '# all tests passed; nothing left behind');
process.exit(failed ? 1 : 0);
