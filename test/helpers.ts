/**
 * Shared test helpers. Every test makes unique names (`/ipckit-test-<pid>-<n>`), removes
 * what it made in `after`/`finally`, and starts real processes with a timeout that are
 * killed in cleanup.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { IpcErrorCode } from '../src/core/errors.js';
import { readSysvTable } from '../src/os/sysvipc.js';
import { sysvKeyTag, TEST_MARK, trackSysv } from './census.js';

export { trackSysv };

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
/** Compiled test fixtures (test/fixtures/*.ts -> dist/test/fixtures/*.js). */
export const fixturesDir = fileURLToPath(new URL('./fixtures/', import.meta.url));

let counter = 0;
/** A unique POSIX IPC name for this test process: `/ipckit-test-<pid>-<n>`. */
export function uniqueName(tag = ''): string {
  return `/${TEST_MARK}-${process.pid}-${++counter}${tag ? `-${tag}` : ''}`;
}

const usedKeys = new Set<number>();
/**
 * A System V key of this run's range (test/census.ts), free now in all three tables: the
 * census counts any object with such a key that is left at the end of the suite.
 */
export function uniqueKey(): number {
  const taken = new Set((['msg', 'sem', 'shm'] as const).flatMap((t) => readSysvTable(t).map((r) => (r.key ?? 0) >>> 0)));
  const base = (sysvKeyTag() << 16) >>> 0;
  for (let n = (process.pid * 97) & 0xffff, tries = 0; tries < 0x10000; n = (n + 1) & 0xffff, tries++) {
    const key = (base | n) >>> 0;
    if (key === 0 || taken.has(key) || usedKeys.has(key)) continue;
    usedKeys.add(key);
    return key;
  }
  throw new Error('no free System V test key left in this run\'s range');
}

let scratch: string | undefined;
/**
 * A private temp folder for this test process, removed when the process exits (an
 * `after` hook would run at the end of whichever test first asked for the folder).
 */
export function scratchDir(): string {
  if (!scratch || !existsSync(scratch)) {
    const dir = mkdtempSync(join(tmpdir(), `${TEST_MARK}-`));
    scratch = dir;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return scratch;
}

/** A fresh path in the scratch folder (nothing created there). */
export function scratchPath(name = 'obj'): string {
  return join(scratchDir(), `${name}-${++counter}`);
}

const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

export interface Run {
  child: ChildProcess;
  /** Resolves with exit code/signal and all stdout/stderr once the process exits. */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** Starts a real process, killed (SIGKILL) after `timeoutMs` and at the end of the file. */
export function run(command: string, args: string[], options: SpawnOptions & { timeoutMs?: number; input?: string | Uint8Array } = {}): Run {
  const { timeoutMs = 30_000, input, ...spawnOptions } = options;
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...spawnOptions });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin?.on('error', () => {});
  if (input !== undefined) child.stdin?.end(input);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done };
}

/** Runs a compiled fixture (test/fixtures/<name>.ts) with node. */
export function runFixture(name: string, args: string[], options: SpawnOptions & { timeoutMs?: number; input?: string } = {}): Run {
  return run(process.execPath, [join(fixturesDir, `${name}.js`), ...args], options);
}

/** Runs python3 code (`-c`) with args. */
export function runPython(code: string, args: string[] = [], options: SpawnOptions & { timeoutMs?: number; input?: string } = {}): Run {
  return run('python3', ['-c', code, ...args], options);
}

/** The ipckit CLI (dist/src/cli/main.js). */
export function runCli(args: string[], options: SpawnOptions & { timeoutMs?: number; input?: string } = {}): Run {
  return run(process.execPath, [join(repoRoot, 'dist', 'src', 'cli', 'main.js'), ...args], options);
}

/** argv prefix that runs a command as user nobody (tests run as root here). */
export const AS_NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
export const isRoot = process.geteuid?.() === 0;

/**
 * Python: `exact(n)` reads exactly n bytes from the blocking fd `r` (which the script
 * defines first, with `os` and `sys` imported) and exits the script when the stream ends.
 */
export const PY_READ_EXACT = `
def exact(n):
    b = b''
    while len(b) < n:
        c = os.read(r, n - len(b))
        if not c: sys.exit(0)
        b += c
    return b
`;

/** Compiles a C program from source text; returns the binary's path. */
export function compileC(name: string, source: string, libs: string[] = []): string {
  const dir = scratchDir();
  const src = join(dir, `${name}.c`);
  const bin = join(dir, name);
  writeFileSync(src, source);
  const r = spawnSync('cc', ['-O2', '-Wall', '-o', bin, src, ...libs], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cc failed for ${name}:\n${r.stderr}`);
  return bin;
}

/** Asserts that a promise rejects with an IpcError of `code`; returns the error. */
export async function rejectsWith(promise: Promise<unknown> | (() => Promise<unknown>), code: IpcErrorCode): Promise<Error & { code: string; details?: Record<string, unknown> }> {
  let error: unknown;
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (e) {
    error = e;
  }
  assert.ok(error !== undefined, `expected a rejection with ${code}, but it resolved`);
  assert.equal((error as { code?: string }).code, code, `expected ${code}, got ${(error as Error).message ?? String(error)}`);
  return error as Error & { code: string };
}

/** Asserts that a function throws an IpcError of `code` synchronously. */
export function throwsWith(fn: () => unknown, code: IpcErrorCode): void {
  assert.throws(fn, (e: unknown) => (e as { code?: string }).code === code, `expected a synchronous throw with ${code}`);
}

/** Rejects if `promise` does not settle within `ms`: a hang becomes a failure. */
export function within<T>(promise: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The fds this process has open now (fd number -> target). */
export function openFds(): Map<number, string> {
  const out = new Map<number, string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      out.set(Number(fd), readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      /* the fd used by readdir itself */
    }
  }
  return out;
}

/**
 * Registers an fd-leak check for the current test file: fds of kinds ipckit opens
 * (pipes, sockets, anon inodes, files in /dev/shm or test folders) that are open at the
 * end but were not at the start fail the file.
 */
export function checkFdLeaks(): void {
  const before = openFds();
  after(async () => {
    await sleep(50);
    const leaked = [...openFds()].filter(([fd, target]) => !before.has(fd) && /^(pipe:|socket:|anon_inode:|\/dev\/shm|\/tmp\/)/.test(target) && !target.includes('/proc/'));
    // libuv and the test runner keep a few of their own; ours are the ones left pointing at test objects.
    const ours = leaked.filter(([, target]) => target.includes(TEST_MARK) || target.startsWith('pipe:') || target.startsWith('/dev/shm'));
    assert.deepEqual(ours, [], `file descriptors leaked: ${ours.map(([fd, t]) => `${fd} -> ${t}`).join(', ')}`);
  });
}

/** Whether `pid` has a zombie child (an unreaped process). */
export function zombieChildren(pid = process.pid): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (rest[0] === 'Z' && Number(rest[1]) === pid) out.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return out;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads a child's stdout as JSON lines as they come: `next()` resolves with the next
 * parsed line (rejects if the child exits first). For fixtures that report progress.
 */
export function jsonLines(r: Run): { next(timeoutMs?: number): Promise<any>; all: any[] } {
  const all: any[] = [];
  const queue: any[] = [];
  const waiting: Array<{ resolve: (v: any) => void; reject: (e: Error) => void }> = [];
  let buffered = '';
  let ended = false;
  r.child.stdout?.on('data', (d: Buffer) => {
    buffered += d.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (!line) continue;
      let v: any;
      try {
        v = JSON.parse(line);
      } catch {
        v = { text: line };
      }
      all.push(v);
      const w = waiting.shift();
      if (w) w.resolve(v);
      else queue.push(v);
    }
  });
  void r.done.then(() => {
    ended = true;
    for (const w of waiting.splice(0)) w.reject(new Error('the child exited before printing the expected line'));
  });
  return {
    all,
    next(timeoutMs = 20_000) {
      if (queue.length > 0) return Promise.resolve(queue.shift());
      if (ended) return Promise.reject(new Error('the child has exited'));
      return within(new Promise((resolve, reject) => waiting.push({ resolve, reject })), timeoutMs, 'a line from the child');
    },
  };
}

/** True once `pid` has exited: no such process, or a zombie waiting to be reaped. */
export function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state === 'Z' || state === 'X';
  } catch {
    return true;
  }
}

/** Polls `condition` every 10 ms until it holds or `ms` pass; returns whether it held. */
export async function waitUntil(condition: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (condition()) return true;
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
}

/** Reads JSON lines from a running child's stdout, one at a time (rejects if it exits first). */
export function jsonLineReader(child: ChildProcess): () => Promise<any> {
  const queue: unknown[] = [];
  const waiting: Array<{ resolve: (v: unknown) => void; reject: (e: Error) => void }> = [];
  let buffered = '';
  let ended = false;
  child.stdout!.on('data', (d: Buffer) => {
    buffered += d.toString();
    let i: number;
    while ((i = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, i);
      buffered = buffered.slice(i + 1);
      const value = JSON.parse(line) as unknown;
      const w = waiting.shift();
      if (w) w.resolve(value);
      else queue.push(value);
    }
  });
  child.stdout!.on('end', () => {
    ended = true;
    for (const w of waiting.splice(0)) w.reject(new Error('the child closed its stdout before the expected line'));
  });
  return () =>
    new Promise((resolve, reject) => {
      if (queue.length > 0) resolve(queue.shift());
      else if (ended) reject(new Error('the child closed its stdout before the expected line'));
      else waiting.push({ resolve, reject });
    });
}

/** Resolves with the first line printed on `stream` that matches `re`. */
export function lineFrom(stream: NodeJS.ReadableStream, re: RegExp): Promise<string> {
  return new Promise((resolve) => {
    let buf = '';
    const on = (d: Buffer): void => {
      buf += d.toString();
      // Whole lines only: a line still arriving could match before its end is there.
      const m = buf.split('\n').slice(0, -1).find((l) => re.test(l));
      if (m !== undefined) {
        stream.off('data', on);
        resolve(m);
      }
    };
    stream.on('data', on);
  });
}

/** Runs test/fixtures/mqsem-worker.js in a worker thread with `data`; `result` is its first message. */
export function mqsemWorker(data: Record<string, unknown>): { result: Promise<any>; worker: Worker } {
  const w = new Worker(new URL('mqsem-worker.js', `file://${fixturesDir}`), { workerData: data });
  const result = new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  return { result, worker: w };
}
