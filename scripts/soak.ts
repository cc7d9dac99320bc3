/**
 * The soak (`npm run soak -- --minutes N [--out FILE] [--seed S]`): every mechanism at once
 * (the message carriers; signals with values; a semaphore's tokens; the robust mutex and
 * file locks, checked for mutual exclusion; a NATS JetStream work queue on a nats-server of
 * its own, when one is installed), each sender and receiver in its own process (scripts/soak-peer.ts),
 * with self-checking messages of mixed sizes (producer, sequence number, length, checksum),
 * while senders (and work-queue consumers) are killed with SIGKILL and any peer is stopped
 * (SIGSTOP, then SIGCONT) at random; senders close and reopen their endpoints all the time
 * and receivers of the persistent objects now and then.
 *
 * What counts, from the peers' log lines: a message is *sent* once its send resolved (and,
 * on a stream, was flushed into the kernel), so a SIGKILL of the sender cannot take it back;
 * *lost* if it was sent and never received; *duplicated* if received twice (the work queue:
 * apart when an earlier delivery was in the hands of a consumer that died, which its
 * at-least-once promise allows); *corrupted* if it arrived with a wrong length, byte or
 * checksum. Receivers are stopped but never killed (except work-queue consumers): a receiver
 * that dies takes what it had read with it, which no mechanism here promises to keep.
 *
 * Every kernel object is named `ipckit-soak-<pid>-<random>` and removed at the end, also on
 * failure or Ctrl-C. Writes the JSON report to --out (default: stdout) and a summary to stderr.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, connect as tcpConnect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createFifo,
  createMessageQueue,
  createMutex,
  createRing,
  createSemaphore,
  createSharedValue,
  createSysvMessageQueue,
  createWorkQueue,
  IPC_PRIVATE,
  openNatsWorkQueue,
  removeSysvMessageQueue,
  unlinkMessageQueue,
  unlinkMutex,
  unlinkRing,
  unlinkSemaphore,
  unlinkSharedValue,
  unlinkWorkQueue,
} from '../src/index.js';
import { MAX_BYTES } from './soak-plan.js';
import { seededRandom } from './seeded.js';

interface Args {
  minutes: number;
  out: string | undefined;
  seed: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { minutes: 1, out: undefined, seed: Date.now() % 1_000_000 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    if (k === '--minutes' && v !== undefined && Number(v) > 0) a.minutes = Number(v);
    else if (k === '--out' && v !== undefined) a.out = v;
    else if (k === '--seed' && v !== undefined && Number.isInteger(Number(v))) a.seed = Number(v);
    else {
      process.stderr.write(`usage: npm run soak -- --minutes N [--out FILE] [--seed S]  (bad argument ${k})\n`);
      process.exit(2);
    }
    i++;
  }
  return a;
}

/** Per sender: which sequence numbers were confirmed, and how often each arrived. */
class Book {
  sent = new Uint8Array(1024);
  recv = new Uint8Array(1024);
  /** Work queue: deliveries that a consumer had in hand when it died. */
  orphaned = new Uint8Array(1024);
  top = 0;
  grow(n: number): void {
    if (n < this.sent.length) return;
    let len = this.sent.length;
    while (len <= n) len *= 2;
    for (const k of ['sent', 'recv', 'orphaned'] as const) {
      const b = new Uint8Array(len);
      b.set(this[k]);
      this[k] = b;
    }
  }
}

interface Proc {
  mech: Mech;
  role: 'send' | 'receive';
  killable: boolean;
  child: ChildProcess;
  exited: boolean;
  stopped: boolean;
  /** Work queue consumer: (producer, seq) taken and not acknowledged yet. */
  inHand: Map<string, [number, number]>;
  samples: number[][];
  /** The pipe receiver's current sender child. */
  grandchild?: number;
}

interface Mech {
  name: string;
  target: string;
  senders: number;
  receivers: number;
  killReceivers: boolean;
  books: Map<number, Book>;
  kills: number;
  stops: number;
  errors: Record<string, number>;
  corrupted: number;
  corruptSamples: string[];
  procs: Proc[];
  steadySamples: number[][][];
  /** Restarts scheduled and not made yet, by role: they count as present. */
  starting: { send: number; receive: number };
  /** The semaphore carries tokens, not messages: posts about to be made, posts made, tokens taken. */
  tokens: { attempted: number; posted: number; taken: number };
}

const args = parseArgs(process.argv.slice(2));
const here = fileURLToPath(new URL('.', import.meta.url));
const peerScript = join(here, 'soak-peer.js');
const prefix = `ipckit-soak-${process.pid}-${randomBytes(3).toString('hex')}`;
const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
const random = seededRandom(args.seed);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// --- the objects, all under our prefix, removed in cleanup() whatever happens ---
const cleanups: Array<() => void> = [];
const made: string[] = [];
function cleanup(): void {
  for (const m of mechs) for (const p of m.procs) killProc(p, 'SIGKILL', false);
  for (const p of allProcs) if (p.grandchild) tryKill(p.grandchild, 'SIGKILL');
  while (cleanups.length) {
    try {
      cleanups.pop()!();
    } catch {
      /* already gone */
    }
  }
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, () => process.exit(130));

const ringName = `/${prefix}-ring`;
const wqName = `/${prefix}-wq`;
const mqName = `/${prefix}-mq`;
const fifoPath = join(dir, 'fifo');
createRing(ringName, { producers: 'many', capacityBytes: 256 * 1024, maxMessageBytes: MAX_BYTES.ring! }).close();
cleanups.push(() => unlinkRing(ringName));
made.push(`/dev/shm${ringName}`);
void (await (async () => {
  const q = createWorkQueue(wqName, { capacityJobs: 256, maxMessageBytes: MAX_BYTES.workqueue! });
  await q.close();
})());
cleanups.push(() => unlinkWorkQueue(wqName));
made.push(`/dev/shm${wqName}`);
await createMessageQueue(mqName, { maxMessages: 10, maxMessageBytes: MAX_BYTES.mqueue! }).close();
cleanups.push(() => unlinkMessageQueue(mqName));
made.push(`/dev/mqueue${mqName}`);
const sysv = createSysvMessageQueue(IPC_PRIVATE, { maxMessageBytes: MAX_BYTES.sysv! });
const sysvId = sysv.id;
await sysv.close();
cleanups.push(() => removeSysvMessageQueue({ id: sysvId }));
createFifo(fifoPath);
const semName = `/${prefix}-sem`;
await createSemaphore(semName, { value: 0 }).close();
cleanups.push(() => unlinkSemaphore(semName));
made.push(`/dev/shm/sem.${semName.slice(1)}`);
const mutexName = `/${prefix}-mutex`;
await createMutex(mutexName).close();
cleanups.push(() => unlinkMutex(mutexName));
made.push(`/dev/shm${mutexName}`);
const lockPath = join(dir, 'lock');
const holders = [`/${prefix}-mutex-holder`, `/${prefix}-lock-holder`];
for (const h of holders) {
  createSharedValue(h, 'i32').close();
  cleanups.push(() => unlinkSharedValue(h));
  made.push(`/dev/shm${h}`);
}
writeFileSync(lockPath, '', { mode: 0o600 });

// NATS: a nats-server of our own (JetStream in our folder), when one is installed.
const natsServer = process.env.NATS_SERVER ?? 'nats-server';
let natsUrl: string | undefined;
if (spawnSync(natsServer, ['--version']).status === 0) {
  const port = await new Promise<number>((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
  const server = spawn(natsServer, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', join(dir, 'jetstream')], { stdio: 'ignore' });
  cleanups.push(() => server.kill('SIGKILL'));
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const c = tcpConnect(port, '127.0.0.1', () => {
        c.destroy();
        resolve(true);
      }).on('error', () => resolve(false));
    });
    if (up) break;
    await sleep(50);
  }
  natsUrl = `nats://127.0.0.1:${port}/soak`;
  const q = openNatsWorkQueue(natsUrl, { create: true, ackWait: 5000, maxDeliveries: 1_000_000 });
  await q.ready(); // the stream and its consumer are made
  await q.close();
} else {
  process.stderr.write(`soak: NATS not run: ${natsServer} is not installed (Debian: apt-get install nats-server)\n`);
}

function mech(name: string, target: string, senders: number, receivers: number, killReceivers = false): Mech {
  return { name, target, senders, receivers, killReceivers, books: new Map(), kills: 0, stops: 0, errors: {}, corrupted: 0, corruptSamples: [], procs: [], steadySamples: [], starting: { send: 0, receive: 0 }, tokens: { attempted: 0, posted: 0, taken: 0 } };
}
const mechs: Mech[] = [
  mech('pipe', '-', 0, 1),
  mech('fifo', fifoPath, 1, 1),
  mech('socket', `unix:${join(dir, 'stream.sock')}`, 2, 1),
  mech('seqpacket', `unix-seqpacket:${join(dir, 'seqpacket.sock')}`, 2, 1),
  mech('mqueue', mqName, 2, 1),
  mech('sysv', `id:${sysvId}`, 2, 1),
  mech('ring', ringName, 2, 1),
  mech('workqueue', wqName, 2, 2, true),
  ...(natsUrl ? [mech('nats', natsUrl, 2, 2, true)] : []),
  mech('signal', '(the receiver\'s pid)', 2, 1),
  mech('semaphore', semName, 2, 1),
  mech('mutex', `${mutexName}|${holders[0]}`, 3, 0),
  mech('lock', `${lockPath}|${holders[1]}`, 3, 0),
];
const allProcs: Proc[] = [];
let nextSender = 1;

function book(m: Mech, producer: number): Book {
  let b = m.books.get(producer);
  if (!b) m.books.set(producer, (b = new Book()));
  return b;
}

function onLine(p: Proc, line: string): void {
  const m = p.mech;
  const [t, a, b, c] = line.split(' ');
  if (m.name === 'semaphore' && (t === 'a' || t === 's' || t === 't')) {
    m.tokens[t === 'a' ? 'attempted' : t === 's' ? 'posted' : 'taken']++;
    return;
  }
  switch (t) {
    case 's': {
      const bk = book(m, Number(a));
      const n = Number(b);
      bk.grow(n);
      bk.sent[n] = 1;
      bk.top = Math.max(bk.top, n + 1);
      return;
    }
    case 'r': {
      const bk = book(m, Number(a));
      const n = Number(b);
      bk.grow(n);
      if (bk.recv[n]! < 255) bk.recv[n]!++;
      if (m.killReceivers) p.inHand.set(`${a} ${b}`, [Number(a), n]);
      void c;
      return;
    }
    case 'd':
      p.inHand.delete(`${a} ${b}`);
      return;
    case 'c':
      m.corrupted++;
      if (m.corruptSamples.length < 5) m.corruptSamples.push(line);
      return;
    case 'e':
      m.errors[a!] = (m.errors[a!] ?? 0) + 1;
      return;
    case 'k':
      p.grandchild = Number(a);
      return;
    case 'm':
      p.samples.push([Number(a), Number(b), Number(c)]);
      return;
    default:
      if (line.trim()) process.stderr.write(`[${m.name} ${p.role}] ${line}\n`);
  }
}

function start(m: Mech, role: 'send' | 'receive'): Proc {
  const id = role === 'send' ? nextSender++ : 1000 + m.procs.length; // pipe: sender children are id * 100000 + n
  const child = spawn(process.execPath, [peerScript, m.name, role, m.target, String(id), String(random(1 << 30))], { stdio: ['ignore', 'inherit', 'pipe'] });
  const p: Proc = { mech: m, role, killable: role === 'send' || m.killReceivers, child, exited: false, stopped: false, inHand: new Map(), samples: [] };
  let rest = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop()!;
    for (const l of lines) onLine(p, l);
  });
  child.on('exit', () => {
    if (rest) onLine(p, rest);
    p.exited = true;
    // A consumer that died with jobs in hand: their next deliveries are allowed.
    for (const [producer, n] of p.inHand.values()) {
      const bk = book(m, producer);
      if (bk.orphaned[n]! < 255) bk.orphaned[n]!++;
    }
    p.inHand.clear();
  });
  m.procs.push(p);
  allProcs.push(p);
  return p;
}

function tryKill(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

function killProc(p: Proc, signal: NodeJS.Signals, count = true): void {
  if (p.exited || p.child.pid === undefined) return;
  if (tryKill(p.child.pid, signal) && count && signal === 'SIGKILL') p.mech.kills++;
  if (signal === 'SIGKILL' && p.stopped) p.stopped = false;
}

const started = Date.now();
const rss0 = process.memoryUsage().rss;
for (const m of mechs) {
  for (let i = 0; i < m.receivers; i++) start(m, 'receive');
}
// Signals go to the signal receiver's pid (it is never killed).
const signalMech = mechs.find((m) => m.name === 'signal')!;
signalMech.target = String(signalMech.procs[0]!.child.pid);
await sleep(500); // listeners up before their senders connect
for (const m of mechs) for (let i = 0; i < m.senders; i++) start(m, 'send');

// --- chaos ---
const endAt = started + args.minutes * 60_000;
const live = (m: Mech): Proc[] => m.procs.filter((p) => !p.exited);
const restarts: Array<Promise<void>> = [];
let tick = 0;
while (Date.now() < endAt) {
  await sleep(50 + random(200));
  tick++;
  const m = mechs[random(mechs.length)]!;
  const procs = live(m);
  const choice = random(10);
  if (choice < 4) {
    // SIGKILL a sender (the pipe: the receiver's sender child) or a work-queue consumer.
    if (m.name === 'pipe') {
      const r = procs[0];
      if (r?.grandchild && tryKill(r.grandchild, 'SIGKILL')) m.kills++;
    } else {
      const victims = procs.filter((p) => p.killable && !p.stopped);
      const v = victims[random(victims.length)];
      if (v) {
        killProc(v, 'SIGKILL');
        const role = v.role;
        m.starting[role]++;
        restarts.push(
          (async () => {
            await sleep(20 + random(300));
            m.starting[role]--;
            if (Date.now() < endAt) start(m, role);
          })(),
        );
      }
    }
  } else if (choice < 7) {
    // SIGSTOP anyone for a while, then SIGCONT.
    const v = procs[random(procs.length)];
    if (v && !v.stopped) {
      v.stopped = true;
      killProc(v, 'SIGSTOP');
      m.stops++;
      const ms = 30 + random(700);
      setTimeout(() => {
        v.stopped = false;
        killProc(v, 'SIGCONT');
      }, ms);
    }
  }
  // Whoever ended by itself (e.g. an error the peer could not survive) is started again.
  for (const mm of mechs) {
    const want = { send: mm.senders, receive: mm.receivers };
    for (const role of ['send', 'receive'] as const) {
      const have = live(mm).filter((p) => p.role === role).length + mm.starting[role];
      const pendingRestart = mm.procs.filter((p) => p.role === role && p.exited).length > 0 && have < want[role];
      if (pendingRestart && tick % 20 === 0) for (let i = have; i < want[role]; i++) start(mm, role);
    }
  }
  if (tick % 50 === 0) process.stderr.write(`soak: ${Math.round((Date.now() - started) / 1000)} s, ${summaryLine()}\n`);
}
await Promise.all(restarts);

// --- calm: senders stop (SIGKILL: what they confirmed is in the object already), receivers drain ---
for (const p of allProcs) if (p.stopped) killProc(p, 'SIGCONT');
for (const m of mechs) {
  for (const p of live(m)) if (p.role === 'send') killProc(p, 'SIGKILL', false);
  if (m.name === 'pipe') for (const p of live(m)) killProc(p, 'SIGUSR2'); // no more sender children
}
await sleep(200);
for (const p of live(mechs[0]!)) if (p.grandchild) tryKill(p.grandchild, 'SIGKILL');
const missing = (): number => mechs.reduce((n, m) => n + counts(m).lost, 0);
let last = -1;
let still = Date.now();
const drainEnd = Date.now() + 60_000;
while (Date.now() < drainEnd) {
  await sleep(1000);
  const now = missing();
  if (now === 0) break;
  if (now !== last) {
    last = now;
    still = Date.now();
  } else if (Date.now() - still > 15_000) break;
}
await sleep(1500); // a last resource sample of every receiver, idle

function counts(m: Mech): { sent: number; received: number; lost: number; duplicated: number; dupOrphan: number } {
  if (m.name === 'semaphore') {
    // Tokens have no identity: a post made and not taken is lost; a token taken beyond every
    // post that may have been made (a sender killed between post and its log line) is a duplicate.
    const { attempted, posted, taken } = m.tokens;
    return { sent: posted, received: taken, lost: Math.max(0, posted - taken), duplicated: Math.max(0, taken - attempted), dupOrphan: 0 };
  }
  let sent = 0;
  let received = 0;
  let lost = 0;
  let duplicated = 0;
  let dupOrphan = 0;
  for (const b of m.books.values()) {
    for (let i = 0; i < b.sent.length; i++) {
      const s = b.sent[i]!;
      const r = b.recv[i]!;
      sent += s;
      received += r > 0 ? 1 : 0;
      if (s && r === 0) lost++;
      if (r > 1) {
        const allowed = Math.min(r - 1, b.orphaned[i]!);
        dupOrphan += allowed;
        duplicated += r - 1 - allowed;
      }
    }
  }
  return { sent, received, lost, duplicated, dupOrphan };
}

function summaryLine(): string {
  return mechs.map((m) => `${m.name} ${counts(m).received}`).join(', ');
}

// --- leaks: receivers' descriptors, threads and RSS (first sample after warm-up vs the last, idle) ---
let fdGrowth = 0;
let threadGrowth = 0;
let rssGrowthKB = 0;
const perProc: string[] = [];
for (const p of allProcs) {
  if (p.role !== 'receive' || p.killable || p.samples.length < 4) continue;
  const warm = p.samples.slice(2); // after start-up
  const first = warm[0]!;
  const lastS = p.samples[p.samples.length - 1]!;
  const minFds = Math.min(...warm.map((s) => s[0]!));
  fdGrowth += Math.max(0, lastS[0]! - minFds);
  threadGrowth += Math.max(0, lastS[1]! - first[1]!);
  rssGrowthKB = Math.max(rssGrowthKB, lastS[2]! - first[2]!);
  perProc.push(`${p.mech.name}: fds ${minFds}->${lastS[0]}, threads ${first[1]}->${lastS[1]}, rss ${Math.round(first[2]! / 1024)}->${Math.round(lastS[2]! / 1024)} MB`);
}
const wqInfo = await (async () => {
  const { openWorkQueue } = await import('../src/index.js');
  const q = await openWorkQueue(wqName);
  try {
    return q.info();
  } finally {
    await q.close();
  }
})().catch((e: unknown) => ({ error: String(e) }));
const ringInfo = await (async () => {
  const { openRing } = await import('../src/index.js');
  const r = await openRing(ringName);
  try {
    return r.info();
  } finally {
    r.close();
  }
})().catch((e: unknown) => ({ error: String(e) }));

const seconds = Math.round((Date.now() - started) / 1000);
for (const p of allProcs) killProc(p, 'SIGKILL', false);
await Promise.all(allProcs.map((p) => (p.exited ? undefined : new Promise((r) => p.child.once('exit', r)))));
for (const p of allProcs) if (p.grandchild) tryKill(p.grandchild, 'SIGKILL');
cleanup();
// Objects left: anything under our prefix in /dev/shm, the mqueue filesystem and the temp
// folder, and our System V queue.
const left: string[] = [];
for (const d of ['/dev/shm', '/dev/mqueue', tmpdir()]) {
  try {
    for (const n of readdirSync(d)) if (n.includes(prefix)) left.push(join(d, n));
  } catch {
    /* not mounted */
  }
}
try {
  if (readFileSync('/proc/sysvipc/msg', 'utf8').split('\n').some((l) => l.trim().split(/\s+/)[1] === String(sysvId))) left.push(`sysv msg id ${sysvId}`);
} catch {
  /* no /proc/sysvipc */
}
const stuckJobs = 'ready' in wqInfo ? wqInfo.ready + wqInfo.inFlight + wqInfo.writing : -1;

const report = {
  mechanisms: mechs.map((m) => {
    const c = counts(m);
    return {
      name: m.name,
      sent: c.sent,
      received: c.received,
      lost: c.lost,
      duplicated: c.duplicated,
      corrupted: m.corrupted,
      kills: m.kills,
      errors: m.errors,
      ...(m.name === 'workqueue' ? { duplicatedAfterConsumerDied: c.dupOrphan, jobsLeftInQueue: stuckJobs } : {}),
      ...(m.name === 'nats' ? { duplicatedAfterConsumerDied: c.dupOrphan } : {}),
      stops: m.stops,
      ...(m.corruptSamples.length ? { corruptSamples: m.corruptSamples } : {}),
    };
  }),
  leaks: { objects: left.length, fds: fdGrowth, threads: threadGrowth, rssGrowthMB: Math.round(rssGrowthKB / 102.4) / 10 },
  seconds,
  seed: args.seed,
  detail: {
    leftBehind: left,
    receivers: perProc,
    ring: 'used' in ringInfo ? { used: ringInfo.used, producersEver: ringInfo.producersEver } : ringInfo,
    soakProcessRssGrowthMB: Math.round((process.memoryUsage().rss - rss0) / 1048576),
    processesStarted: allProcs.length,
    made,
  },
};
const json = `${JSON.stringify(report, null, 2)}\n`;
if (args.out) writeFileSync(args.out, json);
else process.stdout.write(json);

const pad = (s: string | number, n: number): string => String(s).padStart(n);
process.stderr.write(`\nsoak: ${seconds} s, seed ${args.seed}, ${allProcs.length} processes\n`);
process.stderr.write(`${'mechanism'.padEnd(10)}${pad('sent', 10)}${pad('received', 10)}${pad('lost', 6)}${pad('dup', 6)}${pad('corrupt', 8)}${pad('kills', 7)}${pad('stops', 7)}  errors\n`);
for (const m of report.mechanisms) {
  process.stderr.write(
    `${m.name.padEnd(10)}${pad(m.sent, 10)}${pad(m.received, 10)}${pad(m.lost, 6)}${pad(m.duplicated, 6)}${pad(m.corrupted, 8)}${pad(m.kills, 7)}${pad(m.stops, 7)}  ${Object.entries(m.errors).map(([k, v]) => `${k} ${v}`).join(', ')}${'duplicatedAfterConsumerDied' in m ? ` (redelivered after a consumer died: ${m.duplicatedAfterConsumerDied})` : ''}\n`,
  );
}
process.stderr.write(`leaks: ${left.length} objects left, fds +${fdGrowth}, threads +${threadGrowth}, receiver RSS growth ≤ ${report.leaks.rssGrowthMB} MB\n`);
const bad = report.mechanisms.some((m) => m.lost > 0 || m.corrupted > 0 || m.duplicated > 0) || left.length > 0;
process.exitCode = bad ? 1 : 0;
