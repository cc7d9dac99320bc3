/**
 * The hostile-peer campaign (`npm run hostile -- [--seconds S] [--rounds R] [--inputs N]
 * [--seed X] [--only TARGET,...] [--json FILE]`): peers we did not write (Python) feed ipckit what no honest
 * peer sends, through real kernel objects, while ipckit uses them:
 *
 * - shared memory: a Python process scribbles random and chosen 32-bit words (0, -1,
 *   lengths past the end, the segment's size...) into a live ring, work queue, mutex,
 *   bounded pool and shared value, in bursts, while an honest ipckit process
 *   (scripts/hostile-peer.ts) uses it: R rounds of S seconds per kind, each on a new object;
 * - byte streams and packets: N adversarial inputs per kind (random bytes, lengths past
 *   maxMessageBytes or past 4 GiB, frames cut short, floods of empty frames, payloads that
 *   are not JSON) into a Unix stream, seqpacket, TCP and Unix datagram server, and N/10
 *   streams into a popen'd pipe;
 * - message queues: N messages of random sizes and bytes into a POSIX queue and a System V
 *   queue (some longer than the receiver's maxMessageBytes).
 *
 * For each target: inputs tried, what ipckit answered (outcomes by error code), exceptions
 * that were not IpcErrors, processes that crashed (killed by a signal: a read out of
 * range is a SIGSEGV or SIGBUS), and waits that hung. Exits 1 when any of those three is
 * not 0, or a server stopped serving an honest peer afterwards. Prints a Markdown table
 * (the one in docs/reliability.md); --json writes the figures.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  connect,
  createBoundedPool,
  createMessageQueue,
  createMutex,
  createRing,
  createSharedValue,
  createSysvMessageQueue,
  createWorkQueue,
  IPC_PRIVATE,
  isIpcError,
  listen,
  openMessageQueue,
  popen,
  removeSysvMessageQueue,
  unlinkMessageQueue,
  unlinkSharedMemory,
  type Receiver,
} from '../src/index.js';

const argv = process.argv.slice(2);
const opt = (k: string, d: number): number => {
  const i = argv.indexOf(k);
  const v = i >= 0 ? Number(argv[i + 1]) : d;
  if (!(v > 0)) {
    process.stderr.write(`usage: npm run hostile -- [--seconds S] [--rounds R] [--inputs N] [--seed X] [--only TARGET,...] [--json FILE]  (bad ${k})\n`);
    process.exit(2);
  }
  return v;
};
const SECONDS = opt('--seconds', 5);
const ROUNDS = opt('--rounds', 6);
const INPUTS = Math.floor(opt('--inputs', 2000));
const SEED = Math.floor(opt('--seed', 15));
const jsonOut = argv.includes('--json') ? argv[argv.indexOf('--json') + 1] : undefined;
const MAX_MESSAGE = 4096;
const SLACK_MS = 15_000; // past its own deadline, a process that has not ended is a hang

const prefix = `ipckit-hostile-${process.pid}-${randomBytes(3).toString('hex')}`;
const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
const cleanups: Array<() => void> = [];
function cleanup(): void {
  for (const c of cleanups.splice(0)) {
    try {
      c();
    } catch {
      /* gone */
    }
  }
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, () => process.exit(130));

interface Target {
  target: string;
  inputs: number;
  operations: number;
  outcomes: Record<string, number>;
  notIpcError: number;
  crashes: number;
  hangs: number;
  servesAfter?: boolean;
  firstProblem?: string;
}
const results: Target[] = [];
function target(name: string): Target {
  const t: Target = { target: name, inputs: 0, operations: 0, outcomes: {}, notIpcError: 0, crashes: 0, hangs: 0 };
  results.push(t);
  return t;
}
function classify(t: Target, e: unknown): void {
  t.operations++;
  const k = e === undefined ? 'ok' : isIpcError(e) ? e.code : 'not an IpcError';
  t.outcomes[k] = (t.outcomes[k] ?? 0) + 1;
  if (e !== undefined && !isIpcError(e)) {
    t.notIpcError++;
    t.firstProblem ??= String((e as Error)?.stack ?? e);
  }
}

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  hung: boolean;
}
/** Runs a process to its end, killing it SLACK_MS after `seconds` (a hang). */
function runProcess(cmd: string, args: string[], seconds: number): Promise<Ran> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d));
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  let hung = false;
  const timer = setTimeout(() => {
    hung = true;
    child.kill('SIGKILL');
  }, seconds * 1000 + SLACK_MS);
  return new Promise<Ran>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, hung });
    }),
  );
}

// ---- shared memory -------------------------------------------------------------------------

/** After 0.3 s, bursts of 1-8 words, then a pause of 0-10 ms: sometimes the object looks whole again. */
const SCRIBBLER = `
import mmap, os, random, sys, time
fd = os.open('/dev/shm' + sys.argv[1], os.O_RDWR)
size = os.fstat(fd).st_size
m = mmap.mmap(fd, size)
rng = random.Random(int(sys.argv[2]))
time.sleep(0.3)                                        # the honest user opens it first
end = time.time() + float(sys.argv[3]) - 0.3
n = 0
while time.time() < end:
    for _ in range(rng.randrange(1, 9)):
        r = rng.random()
        if r < 0.4:
            off = rng.randrange(0, min(size, 256) - 4) & ~3    # the common header, cursors, counters
        elif r < 0.7:
            off = rng.randrange(0, min(size, 4096) - 4) & ~3   # the rest of the header and tables
        else:
            off = rng.randrange(0, size - 4) & ~3
        val = rng.choice([0, 1, 2, 0xffffffff, 0x7fffffff, 0x80000000, size, size * 2, size - 1, 4096, rng.getrandbits(32), rng.getrandbits(8)])
        m[off:off + 4] = val.to_bytes(4, 'little')
        n += 1
    time.sleep(rng.random() * 0.01)
print(n)
`;

const peerScript = join(fileURLToPath(new URL('.', import.meta.url)), 'hostile-peer.js');

/** `make` creates the object; it is removed by name (a scribbled header no longer says its kind). */
async function sharedMemory(kind: string, make: (name: string) => { close(): unknown }): Promise<void> {
  const unlink = (name: string): boolean => unlinkSharedMemory(name);
  const t = target(`${kind}: random words into the segment while in use`);
  for (let round = 0; round < ROUNDS; round++) {
    const name = `/${prefix}-${kind}-${round}`;
    cleanups.push(() => unlink(name));
    const handle = make(name);
    const user = runProcess(process.execPath, [peerScript, kind, name, String(SECONDS)], SECONDS);
    const scribbler = runProcess('python3', ['-c', SCRIBBLER, name, String(SEED * 1000 + round), String(SECONDS)], SECONDS);
    const [u, s] = await Promise.all([user, scribbler]);
    await handle.close();
    unlink(name);
    if (s.code !== 0) throw new Error(`the scribbler failed: ${s.stderr}`);
    t.inputs += Number(s.stdout.trim());
    if (u.hung) t.hangs++;
    if (u.signal !== null && !u.hung) {
      t.crashes++;
      t.firstProblem ??= `the user process died of ${u.signal}: ${u.stderr.slice(-2000)}`;
    }
    const line = u.stdout.trim().split('\n').pop();
    if (u.code === 0 && line) {
      const r = JSON.parse(line) as { operations: number; outcomes: Record<string, number>; foreign: string[]; hangs: number };
      t.operations += r.operations;
      for (const [k, v] of Object.entries(r.outcomes)) t.outcomes[k] = (t.outcomes[k] ?? 0) + v;
      t.notIpcError += r.outcomes['not an IpcError'] ?? 0;
      t.hangs += r.hangs;
      if (r.foreign.length) t.firstProblem ??= r.foreign[0];
    } else if (!u.hung && u.signal === null) {
      t.crashes++;
      t.firstProblem ??= `the user process exited with ${u.code}: ${u.stderr.slice(-2000)}`;
    }
  }
}

// ---- streams and packets --------------------------------------------------------------------

/**
 * Adversarial inputs, one per connection (stream kinds) or per datagram, by kind of damage.
 * argv: mode (stream | packet | dgram | stdout), address, count, seed, max message bytes.
 */
const FEEDER = `
import json, os, random, socket, struct, sys, time
mode, address, count, seed, maxm = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed)
def frame(b): return struct.pack('<I', len(b)) + b
def one():
    k = rng.randrange(8)
    if k == 0: return [rng.randbytes(rng.randrange(0, 3 * maxm))]                       # noise
    if k == 1: return [struct.pack('<I', rng.choice([maxm + 1, 0x7fffffff, 0xffffffff])) + rng.randbytes(rng.randrange(0, 64))]
    if k == 2:                                                                         # cut short
        b = rng.randbytes(rng.randrange(1, maxm)); return [frame(b)[:rng.randrange(1, len(b) + 4)]]
    if k == 3: return [frame(b'')] * rng.randrange(1, 2000)                            # empty frames
    if k == 4: return [frame(rng.randbytes(rng.randrange(0, maxm)))]                   # not JSON
    if k == 5: return [frame(b'{"a":' * rng.randrange(1, 2000))[:maxm + 4]]           # deep, unfinished JSON
    if k == 6: return [frame(json.dumps({'ok': rng.random()}).encode())]               # honest
    return [frame(bytes([0xff, 0xfe]) + rng.randbytes(rng.randrange(0, 100)))]          # bad UTF-8
sent = 0
if mode == 'stdout':
    for part in one():
        try: os.write(1, part)
        except BrokenPipeError: break
    sent = 1
elif mode == 'dgram':
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    for i in range(count):
        parts = one()
        for p in parts[:50]:
            b = p if rng.random() < 0.5 else p[4:]                                      # with or without a header
            try: s.sendto(b[:200000], address)
            except (BlockingIOError, OSError): time.sleep(0.001)
        sent += 1
else:
    fam = socket.AF_INET if mode == 'tcp' else socket.AF_UNIX
    typ = socket.SOCK_SEQPACKET if mode == 'packet' else socket.SOCK_STREAM
    for i in range(count):
        s = socket.socket(fam, typ)
        try:
            if mode == 'tcp':
                host, port = address.rsplit(':', 1); s.connect((host, int(port)))
            else:
                s.connect(address)
            for p in one():
                if mode == 'packet': s.send((p if rng.random() < 0.5 else p[4:])[:200000])
                else: s.sendall(p)
            if rng.random() < 0.3: s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))   # reset, not FIN
        except OSError:
            pass
        finally:
            s.close()
        sent += 1
if mode != 'stdout': print(sent)
`;

/** Set when a server received the honest peer's message after the hostile ones. */
let honestSeen = false;

/**
 * Receives until the channel ends, counting every outcome. A message that does not decode
 * fails alone and the next one follows; a broken stream fails for good (stop at the second
 * failure in a row).
 */
async function drain(t: Target, ch: Receiver<unknown>): Promise<void> {
  let failures = 0;
  for (;;) {
    try {
      const m = await ch.receive({ timeout: 10_000 });
      if ((m as { honest?: boolean } | null)?.honest === true) honestSeen = true;
      classify(t, undefined);
      failures = 0;
    } catch (e) {
      classify(t, e);
      if (isIpcError(e, 'ERR_IPCKIT_TIMEOUT')) t.hangs++;
      if (isIpcError(e, 'ERR_IPCKIT_CLOSED') || isIpcError(e, 'ERR_IPCKIT_PEER_GONE') || isIpcError(e, 'ERR_IPCKIT_TIMEOUT') || ++failures >= 2) return;
    }
  }
}

async function server(kind: 'unix' | 'unix-seqpacket' | 'tcp' | 'unix-dgram', mode: string): Promise<void> {
  const t = target(`${kind} server: adversarial ${kind === 'unix-dgram' ? 'datagrams' : 'connections'}`);
  const path = join(dir, `${kind}.sock`);
  const srv = await listen(kind === 'tcp' ? 'tcp://127.0.0.1:0' : `${kind}:${path}`, { codec: 'json', maxMessageBytes: MAX_MESSAGE });
  const address = kind === 'tcp' ? `127.0.0.1:${srv.port}` : path;
  const drains: Array<Promise<void>> = [];
  const accepting = (async () => {
    for (;;) {
      try {
        const ch = await srv.accept();
        drains.push(kind === 'unix-dgram' ? drainDatagrams(t, ch) : drain(t, ch).finally(() => ch.close().catch(() => {})));
      } catch (e) {
        if (!isIpcError(e, 'ERR_IPCKIT_CLOSED')) classify(t, e);
        return;
      }
    }
  })();
  const feeder = runProcess('python3', ['-c', FEEDER, mode, address, String(INPUTS), String(SEED), String(MAX_MESSAGE)], 120);
  const f = await feeder;
  if (f.code !== 0) throw new Error(`the feeder failed: ${f.stderr}`);
  t.inputs += Number(f.stdout.trim());
  // An honest peer is still served.
  const honest = await connect(srv.address, { codec: 'json', timeout: 5000 });
  await honest.send({ honest: true });
  if (kind === 'unix-dgram') await new Promise((r) => setTimeout(r, 300));
  await honest.close();
  await new Promise((r) => setTimeout(r, 500));
  t.servesAfter = honestSeen;
  honestSeen = false;
  await srv.close();
  await accepting;
  await Promise.race([Promise.all(drains), new Promise((r) => setTimeout(r, 15_000))]);
}
/** A datagram channel never ends: take what is there, then stop. */
async function drainDatagrams(t: Target, ch: Receiver<unknown>): Promise<void> {
  for (;;) {
    try {
      const m = await ch.receive({ timeout: 1500 });
      if ((m as { honest?: boolean } | null)?.honest === true) honestSeen = true;
      classify(t, undefined);
    } catch (e) {
      if (isIpcError(e, 'ERR_IPCKIT_TIMEOUT') || isIpcError(e, 'ERR_IPCKIT_CLOSED')) return void (ch as { close(): Promise<void> }).close().catch(() => {});
      classify(t, e);
    }
  }
}

async function pipes(): Promise<void> {
  const t = target('popen pipe: adversarial byte streams on a child\'s stdout');
  const streams = Math.max(1, Math.floor(INPUTS / 10));
  for (let i = 0; i < streams; i++) {
    const r = popen(['python3', '-c', FEEDER, 'stdout', '-', '1', String(SEED * 7919 + i), String(MAX_MESSAGE)], 'read', { codec: 'json', maxMessageBytes: MAX_MESSAGE });
    await drain(t, r);
    await r.close().catch((e: unknown) => {
      if (!isIpcError(e)) classify(t, e);
    });
    t.inputs++;
  }
}

// ---- message queues -------------------------------------------------------------------------

const MQ_FEEDER = `
import ctypes, json, os, random, struct, sys
kind, name, count, seed, maxm = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed)
libc = ctypes.CDLL(None, use_errno=True)
def payload():
    k = rng.randrange(4)
    if k == 0: return json.dumps({'ok': rng.random()}).encode()
    if k == 1: return rng.randbytes(rng.randrange(0, maxm + 1))
    if k == 2: return b'{"a":' * rng.randrange(1, maxm // 5)
    return b''
if kind == 'posix':
    rt = ctypes.CDLL('librt.so.1', use_errno=True)
    fd = rt.mq_open(name.encode(), os.O_WRONLY)
    assert fd >= 0, ctypes.get_errno()
    for i in range(count):
        b = payload()[:maxm]
        assert rt.mq_send(fd, b, len(b), rng.randrange(0, 32)) == 0, ctypes.get_errno()
else:
    qid = int(name)
    for i in range(count):
        b = payload() if rng.random() < 0.8 else rng.randbytes(rng.randrange(maxm + 1, 4 * maxm))   # some longer than the receiver takes
        buf = struct.pack('l', 1) + b
        assert libc.msgsnd(qid, buf, len(b), 0) == 0, ctypes.get_errno()
print(count)
`;

/**
 * Receives while the feeder runs and until the queue is empty after it ended. Nothing
 * arriving for 20 s while the feeder still runs is a hang.
 */
async function receiveUntilFed(t: Target, feeder: Promise<Ran>, receive: (o: { timeout: number }) => Promise<unknown>): Promise<void> {
  let fed = false;
  void feeder.then(() => (fed = true));
  let idleMs = 0;
  let failuresInRow = 0; // a receiver that fails without end, taking nothing, is stuck
  for (;;) {
    try {
      await receive({ timeout: 500 });
      classify(t, undefined);
      idleMs = failuresInRow = 0;
    } catch (e) {
      if (!isIpcError(e, 'ERR_IPCKIT_TIMEOUT')) {
        classify(t, e);
        if (++failuresInRow > 1000) {
          t.hangs++;
          return;
        }
        continue;
      }
      failuresInRow = 0;
      if (fed) return;
      idleMs += 500;
      if (idleMs >= 20_000) {
        t.hangs++;
        return;
      }
    }
  }
}

async function messageQueues(): Promise<void> {
  {
    const t = target('POSIX message queue: random sizes and bytes');
    const name = `/${prefix}-mq`;
    cleanups.push(() => unlinkMessageQueue(name));
    const q = createMessageQueue(name, { maxMessages: 10, maxMessageBytes: 1024 });
    const rx = await openMessageQueue(name, 'read', { codec: 'json' });
    const feeder = runProcess('python3', ['-c', MQ_FEEDER, 'posix', name, String(INPUTS), String(SEED), '1024'], 120);
    await receiveUntilFed(t, feeder, (o) => rx.receive(o));
    const f = await feeder;
    if (f.code !== 0) throw new Error(`the feeder failed: ${f.stderr}`);
    t.inputs += Number(f.stdout.trim());
    await rx.close();
    await q.close();
    unlinkMessageQueue(name);
  }
  {
    const t = target('System V message queue: random sizes, some past maxMessageBytes');
    // IPC_PRIVATE: a key of its own, so two campaigns at once (two CI jobs on one kernel) cannot collide.
    const q = createSysvMessageQueue(IPC_PRIVATE, { codec: 'json', maxMessageBytes: 512 });
    cleanups.push(() => removeSysvMessageQueue({ id: q.id }));
    const feeder = runProcess('python3', ['-c', MQ_FEEDER, 'sysv', String(q.id), String(INPUTS), String(SEED), '512'], 120);
    await receiveUntilFed(t, feeder, async (o) => {
      try {
        return await q.receive(o);
      } catch (e) {
        // Too long for us: it stays in the queue until taken truncated (nothing is dropped unseen).
        if (!isIpcError(e, 'ERR_IPCKIT_FRAME_TOO_LARGE')) throw e;
        classify(t, e);
        return await q.receive({ ...o, truncate: true });
      }
    });
    const f = await feeder;
    if (f.code !== 0) throw new Error(`the feeder failed: ${f.stderr}`);
    t.inputs += Number(f.stdout.trim());
    await q.close();
    removeSysvMessageQueue({ id: q.id });
  }
}

// ---- the campaign ---------------------------------------------------------------------------

const t0 = Date.now();
process.stderr.write(`hostile peers: ${ROUNDS} rounds of ${SECONDS} s per shared-memory kind, ${INPUTS} inputs per stream and queue kind, seed ${SEED}\n`);
const step = async (what: string, f: () => Promise<void>): Promise<void> => {
  const s = Date.now();
  process.stderr.write(`  ${what}... `);
  await f();
  const r = results[results.length - 1]!;
  process.stderr.write(`${((Date.now() - s) / 1000).toFixed(1)} s, ${r.inputs} inputs, ${r.operations} operations\n`);
};
const TARGETS: Record<string, [string, () => Promise<void>]> = {
  ring: ['ring', () => sharedMemory('ring', (n) => createRing(n, { capacityBytes: 64 * 1024 }))],
  workqueue: ['work queue', () => sharedMemory('workqueue', (n) => createWorkQueue(n, { capacityJobs: 64 }))],
  mutex: ['mutex', () => sharedMemory('mutex', (n) => createMutex(n))],
  pool: ['bounded pool', () => sharedMemory('pool', (n) => createBoundedPool(n, { permits: 2 }))],
  value: ['shared value', () => sharedMemory('value', (n) => createSharedValue(n, 'i32', { lock: true }))],
  unix: ['Unix stream server', () => server('unix', 'stream')],
  seqpacket: ['Unix seqpacket server', () => server('unix-seqpacket', 'packet')],
  tcp: ['TCP server', () => server('tcp', 'tcp')],
  dgram: ['Unix datagram server', () => server('unix-dgram', 'dgram')],
  popen: ['popen', () => pipes()],
  queues: ['message queues', () => messageQueues()],
};
const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1]!.split(',') : Object.keys(TARGETS);
const unknownTargets = only.filter((k) => !(k in TARGETS));
if (unknownTargets.length) {
  process.stderr.write(`hostile: unknown target ${unknownTargets.join(', ')} (targets: ${Object.keys(TARGETS).join(',')})\n`);
  process.exit(2);
}
for (const k of only) await step(...TARGETS[k]!);

const outcomesText = (o: Record<string, number>): string =>
  Object.entries(o)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k.replace('ERR_IPCKIT_', '')} ${v.toLocaleString('en')}`)
    .join(', ');
const rows = [
  '| target | inputs tried | operations | outcomes | not an IpcError | crashes | hangs | serves an honest peer after |',
  '|---|---|---|---|---|---|---|---|',
  ...results.map((r) => `| ${r.target} | ${r.inputs.toLocaleString('en')} | ${r.operations.toLocaleString('en')} | ${outcomesText(r.outcomes)} | ${r.notIpcError} | ${r.crashes} | ${r.hangs} | ${r.servesAfter === undefined ? '—' : r.servesAfter ? 'yes' : 'NO'} |`),
];
process.stdout.write(`${rows.join('\n')}\n`);
const seconds = Math.round((Date.now() - t0) / 1000);
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify({ seconds, seed: SEED, rounds: ROUNDS, secondsPerRound: SECONDS, inputsPerKind: INPUTS, targets: results }, null, 2)}\n`);
const bad = results.filter((r) => r.notIpcError || r.crashes || r.hangs || r.servesAfter === false);
for (const r of bad) process.stderr.write(`FAILED ${r.target}: ${r.firstProblem ?? ''}\n`);
process.stderr.write(`${seconds} s\n`);
process.exit(bad.length ? 1 : 0);
