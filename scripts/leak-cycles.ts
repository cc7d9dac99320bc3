/**
 * Leak cycles (`npm run leak-cycles -- [--cycles N] [--only KIND,...] [--json FILE]`): for
 * each kind, N open/use/close cycles (default 100,000) in a process of its own: make the
 * object (or connect to a server, for sockets), carry one 5-byte message or take and give
 * back a lock, close, remove. Every N/20 cycles the process samples its RSS, V8 heap,
 * external memory, descriptors, threads and the kernel objects left under the run's names.
 *
 * Growth is the last sample against the first one after a warm-up (the first twentieth of
 * the cycles, where allocators, JIT and pools settle), with no forced GC: what a server
 * that takes many short connections sees. A full GC after the last cycle gives the
 * "after GC" figure apart, and glibc's malloc_trim(0) after it the "after trim" one: freed
 * memory the allocator kept (fragmentation) against memory still held. The run fails (exit 1) when a kind leaves a kernel object, grows
 * descriptors or threads, or grows RSS by 20 MB or more. Prints a Markdown table (the one
 * in docs/reliability.md) and writes the samples to --json.
 *
 * The `control` kind uses no ipckit and does no I/O, only short-lived objects and settled
 * awaits (10.2 KB allocated a cycle, a datagram socket pair's 9.3, --trace-gc-nvp): what it
 * grows is the measure's own floor (Node, the samples).
 *
 * `--turn-loop` (a diagnosis, not the target's measure) lets the event loop turn once after
 * every cycle: what is freed only then (Node-API finalizers run from the loop, handles
 * closed by libuv) shows as the difference between the two runs.
 *
 * Every object is named `ipckit-leak-<pid>-<random>-<kind>` (System V: one key of the run
 * per kind) and removed at the end, also on failure.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  connect,
  createBoundedPool,
  createFifo,
  createMessageQueue,
  createMutex,
  createPipe,
  createRing,
  createSemaphore,
  createSharedMemory,
  createSysvMessageQueue,
  createSysvSemaphoreSet,
  createSysvSharedMemory,
  createWorkQueue,
  listen,
  onSignal,
  openFifo,
  openFileLock,
  openMessageQueue,
  openSharedMemory,
  popen,
  removeSysvMessageQueue,
  removeSysvSemaphoreSet,
  removeSysvSharedMemory,
  sendSignal,
  socketPair,
  unlinkBoundedPool,
  unlinkFifo,
  unlinkMessageQueue,
  unlinkMutex,
  unlinkRing,
  unlinkSemaphore,
  unlinkSharedMemory,
  unlinkWorkQueue,
  type SocketChannel,
} from '../src/index.js';
import { native } from '../src/os/native.js';

const RSS_LIMIT_MB = 20;
const SAMPLES = 20;
const MESSAGE = Buffer.from('hello');

interface Sample {
  cycle: number;
  rssMB: number;
  heapMB: number;
  externalMB: number;
  fds: number;
  threads: number;
}
interface KindResult {
  kind: string;
  cycles: number;
  seconds: number;
  samples: Sample[];
  rssGrowthMB: number;
  rssAfterGcMB: number;
  rssAfterTrimMB: number;
  heapGrowthMB: number;
  externalGrowthMB: number;
  fdGrowth: number;
  threadGrowth: number;
  objectsLeft: string[];
  error?: string;
}

/** One kind: `setup` once (a server, a temporary folder), then `cycle` N times, then `teardown`. */
interface Kind {
  setup?(ctx: Ctx): Promise<void>;
  cycle(ctx: Ctx, i: number): Promise<void>;
  teardown?(ctx: Ctx): Promise<void>;
}
interface Ctx {
  name: string; // POSIX name of this kind's objects: /ipckit-leak-<pid>-<random>-<kind>
  key: number; // System V key of this kind
  dir: string; // a private temporary folder (FIFOs, lock files, socket paths)
  server?: { close(): Promise<void> };
  serverChannels?: Promise<void>;
  address?: string;
}

function mb(bytes: number): number {
  return Math.round((bytes / 1048576) * 10) / 10;
}

async function expectMessage(got: Promise<unknown>): Promise<void> {
  const m = (await got) as Uint8Array;
  if (m.length !== MESSAGE.length || Buffer.compare(Buffer.from(m), MESSAGE) !== 0) throw new Error(`wrong message: ${Buffer.from(m).toString('hex')}`);
}

/** A server that echoes nothing: it reads one message from each connection and closes it. */
async function serveOnce(ctx: Ctx, address: string): Promise<void> {
  const server = await listen(address);
  ctx.server = server;
  ctx.address = server.address;
  ctx.serverChannels = (async () => {
    for await (const ch of server as AsyncIterable<SocketChannel<Uint8Array>>) {
      void (async () => {
        try {
          await expectMessage(ch.receive({ timeout: 10_000 }));
        } finally {
          await ch.close();
        }
      })();
    }
  })().catch(() => {});
}
async function connectSend(ctx: Ctx): Promise<void> {
  const ch = await connect(ctx.address!, { timeout: 10_000 });
  await ch.send(MESSAGE);
  await ch.end({ timeout: 10_000 });
  await ch.close();
}

/** What the `control` kind allocates and drops each cycle, about as much as a socket pair's cycle. */
class ControlEndpoint {
  readonly waiting: Array<{ n: number; done: () => void }> = [];
  readonly onEvent = (): number => this.waiting.length;
  constructor(readonly n: number) {}
  async close(): Promise<number> {
    await new Promise<void>((done) => this.waiting.push({ n: this.n, done }) && done());
    return this.onEvent();
  }
}

const KINDS: Record<string, Kind> = {
  // The measure's floor (see the comment at the top).
  control: {
    async cycle(_ctx, i) {
      const ends = Array.from({ length: 7 }, (_, k) => new ControlEndpoint(i + k));
      for (const e of ends) await e.close();
    },
  },
  pipe: {
    async cycle() {
      const { reader, writer } = createPipe();
      await writer.send(MESSAGE);
      await expectMessage(reader.receive({ timeout: 10_000 }));
      await writer.close();
      await reader.close();
    },
  },
  popen: {
    async cycle() {
      const r = popen(['/bin/echo', '-n', 'hello'], 'read', { framing: 'raw' });
      await expectMessage(r.receive({ timeout: 10_000 }));
      await r.close();
    },
  },
  fifo: {
    async cycle(ctx) {
      const path = createFifo(join(ctx.dir, 'fifo'));
      const [reader, writer] = await Promise.all([openFifo(path, 'read', { timeout: 10_000 }), openFifo(path, 'write', { timeout: 10_000 })]);
      await writer.send(MESSAGE);
      await expectMessage(reader.receive({ timeout: 10_000 }));
      await writer.close();
      await reader.close();
      unlinkFifo(path);
    },
  },
  mqueue: {
    async cycle(ctx) {
      const q = createMessageQueue(ctx.name, { maxMessages: 4, maxMessageBytes: 64 });
      const w = await openMessageQueue(ctx.name, 'write');
      const r = await openMessageQueue(ctx.name, 'read');
      await w.send(MESSAGE);
      await expectMessage(r.receive({ timeout: 10_000 }));
      await w.close();
      await r.close();
      await q.close();
      unlinkMessageQueue(ctx.name);
    },
  },
  'sysv-msg': {
    async cycle(ctx) {
      const q = createSysvMessageQueue(ctx.key, { removeOnClose: true });
      await q.send(MESSAGE);
      await expectMessage(q.receive({ timeout: 10_000 }));
      await q.close();
    },
  },
  semaphore: {
    async cycle(ctx) {
      const s = createSemaphore(ctx.name, { value: 0 });
      s.post();
      await s.wait({ timeout: 10_000 });
      await s.close();
      unlinkSemaphore(ctx.name);
    },
  },
  'sysv-sem': {
    async cycle(ctx) {
      const set = createSysvSemaphoreSet(ctx.key, { value: 0, removeOnClose: true });
      set.tryOp([{ index: 0, delta: 1 }]);
      await set.op([{ index: 0, delta: -1 }], { timeout: 10_000 });
      await set.close();
    },
  },
  shm: {
    async cycle(ctx) {
      const seg = createSharedMemory(ctx.name, 4096);
      seg.write(MESSAGE, 8);
      const other = await openSharedMemory(ctx.name);
      if (Buffer.compare(other.read(8, MESSAGE.length), MESSAGE) !== 0) throw new Error('wrong bytes in shared memory');
      other.close();
      seg.close();
      unlinkSharedMemory(ctx.name);
    },
  },
  'sysv-shm': {
    async cycle(ctx) {
      const seg = createSysvSharedMemory(ctx.key, 4096, { removeOnClose: true });
      seg.write(MESSAGE, 8);
      if (Buffer.compare(seg.read(8, MESSAGE.length), MESSAGE) !== 0) throw new Error('wrong bytes in shared memory');
      seg.close();
    },
  },
  ring: {
    async cycle(ctx) {
      const ring = createRing(ctx.name, { capacityBytes: 64 * 1024 });
      const s = await ring.sender();
      const r = await ring.receiver();
      ring.close();
      await s.send(MESSAGE);
      await expectMessage(r.receive({ timeout: 10_000 }));
      await s.close();
      await r.close();
      unlinkRing(ctx.name);
    },
  },
  workqueue: {
    async cycle(ctx) {
      const q = createWorkQueue(ctx.name, { capacityJobs: 16 });
      await q.put(MESSAGE);
      const job = await q.take({ timeout: 10_000 });
      await expectMessage(Promise.resolve(job.data));
      q.ack(job);
      await q.close();
      unlinkWorkQueue(ctx.name);
    },
  },
  mutex: {
    async cycle(ctx) {
      const m = createMutex(ctx.name);
      await m.lock({ timeout: 10_000 });
      m.unlock();
      await m.close();
      unlinkMutex(ctx.name);
    },
  },
  pool: {
    async cycle(ctx) {
      const p = createBoundedPool(ctx.name, { permits: 1 });
      const permit = await p.acquire({ timeout: 10_000 });
      permit.release();
      await p.close();
      unlinkBoundedPool(ctx.name);
    },
  },
  lock: {
    async cycle(ctx) {
      const l = await openFileLock(join(ctx.dir, 'lock'), { create: true });
      const held = await l.lock({ timeout: 10_000 });
      held.release();
      await l.close();
    },
  },
  signal: {
    async cycle() {
      let resolve!: (v: number | undefined) => void;
      const got = new Promise<number | undefined>((r) => (resolve = r));
      const sub = onSignal('SIGRTMIN+2', (info) => resolve(info.value), { keepAlive: true });
      sendSignal(process.pid, 'SIGRTMIN+2', { value: 5 });
      if ((await got) !== 5) throw new Error('wrong signal value');
      sub.close();
    },
  },
  'unix-stream': {
    setup: (ctx) => serveOnce(ctx, `unix:${join(ctx.dir, 's.sock')}`),
    cycle: (ctx) => connectSend(ctx),
  },
  'unix-seqpacket': {
    setup: (ctx) => serveOnce(ctx, `unix-seqpacket:${join(ctx.dir, 'p.sock')}`),
    cycle: (ctx) => connectSend(ctx),
  },
  tcp: {
    setup: (ctx) => serveOnce(ctx, 'tcp://127.0.0.1:0'),
    cycle: (ctx) => connectSend(ctx),
  },
  'unix-dgram': {
    async cycle() {
      const [a, b] = socketPair('unix-dgram');
      await a.send(MESSAGE);
      await expectMessage(b.receive({ timeout: 10_000 }));
      await a.close();
      await b.close();
    },
  },
};

function countFds(): number {
  return readdirSync('/proc/self/fd').length;
}
function countThreads(): number {
  return Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
}
function sample(cycle: number): Sample {
  const m = process.memoryUsage();
  return { cycle, rssMB: mb(m.rss), heapMB: mb(m.heapUsed), externalMB: mb(m.external + m.arrayBuffers), fds: countFds(), threads: countThreads() };
}

/** Kernel objects left under this kind's name or key. */
function objectsLeft(ctx: Ctx): string[] {
  const left: string[] = [];
  const base = ctx.name.slice(1);
  for (const d of ['/dev/shm', '/dev/mqueue']) {
    for (const f of readdirSync(d)) if (f.includes(base)) left.push(`${d}/${f}`);
  }
  for (const table of ['msg', 'sem', 'shm']) {
    try {
      for (const line of readFileSync(`/proc/sysvipc/${table}`, 'utf8').split('\n').slice(1)) {
        const key = Number(line.trim().split(/\s+/)[0]);
        if (line.trim() && (key >>> 0) === ctx.key >>> 0) left.push(`System V ${table} key 0x${ctx.key.toString(16)}`);
      }
    } catch {
      /* no /proc/sysvipc */
    }
  }
  for (const f of readdirSync(ctx.dir)) if (!f.endsWith('.sock') && f !== 'lock') left.push(join(ctx.dir, f));
  return left;
}

async function runKind(kindName: string, cycles: number, prefix: string, key: number, turnLoop: boolean): Promise<KindResult> {
  const kind = KINDS[kindName]!;
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const ctx: Ctx = { name: `/${prefix}-${kindName}`, key, dir };
  const samples: Sample[] = [];
  const every = Math.max(1, Math.floor(cycles / SAMPLES));
  const warm = every; // the first sample is taken after the first twentieth of the cycles
  const t0 = Date.now();
  let error: string | undefined;
  try {
    await kind.setup?.(ctx);
    for (let i = 1; i <= cycles; i++) {
      await kind.cycle(ctx, i);
      if (turnLoop) await new Promise((r) => setImmediate(r));
      if (i % every === 0 || i === cycles) samples.push(sample(i));
    }
  } catch (e) {
    error = `${(e as { code?: string }).code ?? ''} ${(e as Error).message}`.trim();
  } finally {
    await ctx.server?.close().catch(() => {});
    await ctx.serverChannels;
  }
  await new Promise((r) => setTimeout(r, 200)); // closes that finish on a later turn
  const end = sample(cycles);
  (globalThis as { gc?: () => void }).gc?.();
  await new Promise((r) => setTimeout(r, 200));
  const afterGc = sample(cycles);
  // What glibc keeps of freed memory (fragmentation) is not held by anyone: give it back,
  // and what remains is memory still in use.
  native.mallocTrim();
  const afterTrim = sample(cycles);
  const objects = objectsLeft(ctx);
  rmSync(dir, { recursive: true, force: true });
  const first = samples.find((s) => s.cycle >= warm) ?? end;
  return {
    kind: kindName,
    cycles,
    seconds: Math.round((Date.now() - t0) / 100) / 10,
    samples,
    rssGrowthMB: Math.round((end.rssMB - first.rssMB) * 10) / 10,
    rssAfterGcMB: Math.round((afterGc.rssMB - first.rssMB) * 10) / 10,
    rssAfterTrimMB: Math.round((afterTrim.rssMB - first.rssMB) * 10) / 10,
    heapGrowthMB: Math.round((end.heapMB - first.heapMB) * 10) / 10,
    externalGrowthMB: Math.round((end.externalMB - first.externalMB) * 10) / 10,
    fdGrowth: end.fds - first.fds,
    threadGrowth: end.threads - first.threads,
    objectsLeft: objects,
    ...(error ? { error } : {}),
  };
}

function verdict(r: KindResult): string[] {
  const bad: string[] = [];
  if (r.error) bad.push(`failed: ${r.error}`);
  if (r.objectsLeft.length) bad.push(`left ${r.objectsLeft.join(', ')}`);
  if (r.fdGrowth > 0) bad.push(`${r.fdGrowth} descriptors more`);
  if (r.threadGrowth > 0) bad.push(`${r.threadGrowth} threads more`);
  if (r.rssGrowthMB >= RSS_LIMIT_MB) bad.push(`RSS grew ${r.rssGrowthMB} MB`);
  return bad;
}

const argv = process.argv.slice(2);
const opt = (k: string): string | undefined => {
  const i = argv.indexOf(k);
  return i >= 0 ? argv[i + 1] : undefined;
};

if (opt('--child') !== undefined) {
  // One kind in this process; the result as one JSON line on stdout.
  const r = await runKind(opt('--child')!, Number(opt('--cycles')), opt('--prefix')!, Number(opt('--key')), argv.includes('--turn-loop'));
  process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exit(0);
}

const cycles = Number(opt('--cycles') ?? 100_000);
const only = opt('--only')?.split(',');
const jsonOut = opt('--json');
const unknown = only?.filter((k) => !(k in KINDS)) ?? [];
if (!Number.isInteger(cycles) || cycles < SAMPLES || unknown.length) {
  process.stderr.write(`usage: npm run leak-cycles -- [--cycles N (>= ${SAMPLES})] [--only ${Object.keys(KINDS).join(',')}] [--turn-loop] [--json FILE]${unknown.length ? `  (unknown kind ${unknown.join(', ')})` : ''}\n`);
  process.exit(2);
}
const prefix = `ipckit-leak-${process.pid}-${randomBytes(3).toString('hex')}`;
const keyBase = 0x1e000000 + (randomBytes(2).readUInt16LE() << 8);
const script = fileURLToPath(import.meta.url);
const results: KindResult[] = [];
const kinds = only ?? Object.keys(KINDS);
for (const [k, kindName] of kinds.entries()) {
  const key = keyBase + k;
  process.stderr.write(`${kindName}: ${cycles} cycles... `);
  const child = spawn(process.execPath, ['--expose-gc', script, '--child', kindName, '--cycles', String(cycles), '--prefix', prefix, '--key', String(key), ...(argv.includes('--turn-loop') ? ['--turn-loop'] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  const line = out.trim().split('\n').pop() ?? '';
  let r: KindResult;
  try {
    r = JSON.parse(line) as KindResult;
  } catch {
    r = { kind: kindName, cycles, seconds: 0, samples: [], rssGrowthMB: 0, rssAfterGcMB: 0, rssAfterTrimMB: 0, heapGrowthMB: 0, externalGrowthMB: 0, fdGrowth: 0, threadGrowth: 0, objectsLeft: [], error: `the child exited with ${code} and no result` };
  }
  // Whatever the child left (it may have died): remove it, and report it.
  for (const n of [`/${prefix}-${kindName}`]) {
    for (const f of [unlinkSharedMemory, unlinkMessageQueue, unlinkSemaphore]) {
      try {
        f(n);
      } catch {
        /* not that kind, or gone */
      }
    }
  }
  for (const f of [removeSysvMessageQueue, removeSysvSemaphoreSet, removeSysvSharedMemory]) {
    try {
      f(key);
    } catch {
      /* none */
    }
  }
  results.push(r);
  const bad = verdict(r);
  process.stderr.write(`${r.seconds} s, RSS ${r.rssGrowthMB >= 0 ? '+' : ''}${r.rssGrowthMB} MB${bad.length ? `  FAILED: ${bad.join('; ')}` : ''}\n`);
}

const table = [
  `| kind | cycles | seconds | RSS growth (MB) | after a full GC | after GC + malloc_trim | heap (MB) | external (MB) | descriptors | threads | objects left |`,
  `|---|---|---|---|---|---|---|---|---|---|---|`,
  ...results.map((r) => `| ${r.kind} | ${r.cycles.toLocaleString('en')} | ${r.seconds} | ${r.rssGrowthMB} | ${r.rssAfterGcMB} | ${r.rssAfterTrimMB} | ${r.heapGrowthMB} | ${r.externalGrowthMB} | ${r.fdGrowth} | ${r.threadGrowth} | ${r.objectsLeft.length}${r.error ? ` (failed: ${r.error})` : ''} |`),
];
process.stdout.write(`${table.join('\n')}\n`);
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify({ cycles, turnLoop: argv.includes('--turn-loop'), rssLimitMB: RSS_LIMIT_MB, node: process.version, results }, null, 2)}\n`);
process.exit(results.some((r) => verdict(r).length > 0) ? 1 : 0);
