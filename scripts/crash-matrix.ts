/**
 * The crash matrix (`npm run crash-matrix -- [--runs N] [--json FILE] [--seed S]`): every
 * fault-injection point of src/os/faults.ts, for every mechanism that has them, killed
 * there N times (default 20) in a process of its own (scripts/crash-victim.ts) while this
 * process is the survivor on the other side. For each cell it says how often the victim
 * really died there, what the survivor saw (error codes, or nothing), what was lost (a
 * message or job whose send/put resolved and that never arrived), what came twice or
 * torn, whether the object was usable afterwards (a new peer attached and carried
 * messages), and what was left behind (bytes or slots stuck, names left).
 *
 * Prints a Markdown table (the one in docs/reliability.md). Every object is named
 * `ipckit-crash-<pid>-<random>-<n>` and removed at the end, also on failure.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkMessage, makeMessage } from '../test/fixtures/checked-message.js';
import {
  createBoundedPool,
  createMutex,
  createRing,
  createWorkQueue,
  openBoundedPool,
  openMutex,
  openRing,
  openWorkQueue,
  unlinkBoundedPool,
  unlinkMutex,
  unlinkRing,
  unlinkSharedMemory,
  unlinkWorkQueue,
  type RingReceiver,
  type WorkQueue,
} from '../src/index.js';
import { seededRandom } from './seeded.js';

const argv = process.argv.slice(2);
const opt = (k: string): string | undefined => {
  const i = argv.indexOf(k);
  return i >= 0 ? argv[i + 1] : undefined;
};
const RUNS = Number(opt('--runs') ?? 20);
const jsonOut = opt('--json');
const only = opt('--only');
const random = seededRandom(Number(opt('--seed') ?? 15));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const code = (e: unknown): string => (e as { code?: string })?.code ?? String(e);

const victimScript = join(fileURLToPath(new URL('.', import.meta.url)), 'crash-victim.js');
const prefix = `ipckit-crash-${process.pid}-${randomBytes(3).toString('hex')}`;
let counter = 0;
const names = new Set<string>();
const newName = (): string => {
  const n = `/${prefix}-${++counter}`;
  names.add(n);
  return n;
};
function cleanup(): void {
  for (const n of names) {
    try {
      unlinkSharedMemory(n);
    } catch {
      /* gone */
    }
  }
  names.clear();
}
process.on('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, () => process.exit(130));

interface Victim {
  lines: string[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}
function victim(args: string[], fault: string): Victim {
  const child = spawn(process.execPath, [victimScript, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, IPCKIT_FAULT: fault } });
  const lines: string[] = [];
  let rest = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => {
    const ls = (rest + c).split('\n');
    rest = ls.pop()!;
    lines.push(...ls);
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('close', (c, s) => {
      clearTimeout(t);
      if (rest) lines.push(rest);
      resolve({ code: c, signal: s });
    });
  });
  return { lines, exit };
}

interface Run {
  killed: boolean;
  sees: string[];
  lost: number;
  duplicated: number;
  torn: number;
  /** Delivered although its send had not resolved (it was in flight at the kill). */
  inFlightDelivered: number;
  usable: boolean;
  left: string[];
  ms?: number;
}

/** Receives everything until `idleMs` pass without a message; records codes and torn ones. */
async function drain(take: (timeout: number) => Promise<Uint8Array[]>, got: Map<string, number>, run: Run, idleMs: number, until?: () => boolean): Promise<void> {
  for (;;) {
    let batch: Uint8Array[];
    try {
      batch = await take(idleMs);
    } catch (e) {
      if (code(e) === 'ERR_IPCKIT_TIMEOUT') {
        if (!until || until()) return;
        continue;
      }
      run.sees.push(code(e));
      return;
    }
    for (const m of batch) {
      try {
        const { producer, seq } = checkMessage(m);
        const k = `${producer} ${seq}`;
        got.set(k, (got.get(k) ?? 0) + 1);
      } catch {
        run.torn++;
      }
    }
  }
}

function account(run: Run, confirmed: Set<string>, got: Map<string, number>): void {
  for (const k of confirmed) if (!got.has(k)) run.lost++;
  for (const [k, n] of got) {
    if (n > 1) run.duplicated += n - 1;
    if (!confirmed.has(k) && !k.startsWith('99 ')) run.inFlightDelivered++;
  }
}

const ringReceive = (rx: RingReceiver<Uint8Array>) => (timeout: number) => rx.receiveMany(64, { timeout });
const wqTake = (q: WorkQueue<Uint8Array>) => async (timeout: number) => {
  const jobs = await q.takeMany(16, { timeout });
  q.ack(jobs);
  return jobs.map((j) => j.data);
};

/** A producer dies at `point`; this process receives (ring) or consumes (work queue) all along. */
async function producerDies(kind: 'ring-one' | 'ring-many' | 'workqueue', point: string): Promise<Run> {
  const run: Run = { killed: false, sees: [], lost: 0, duplicated: 0, torn: 0, inFlightDelivered: 0, usable: false, left: [] };
  const name = newName();
  const got = new Map<string, number>();
  const n = 1 + random(40);
  if (kind === 'workqueue') {
    const q = createWorkQueue(name, { capacityJobs: 16, maxMessageBytes: 1024 });
    try {
      const v = victim(['produce', 'workqueue', name, '1', '100'], `workqueue:${point}:${n}`);
      let done = false;
      const draining = drain(wqTake(q), got, run, 300, () => done);
      const ex = await v.exit;
      done = true;
      await draining;
      run.killed = ex.signal === 'SIGKILL';
      v.lines.filter((l) => l.startsWith('e ')).forEach((l) => run.sees.push(`victim ${l.slice(2)}`));
      await drain(wqTake(q), got, run, 1500);
      // Usable: five more jobs from a new producer.
      const p = await openWorkQueue(name);
      try {
        for (let i = 0; i < 5; i++) await p.put(makeMessage(99, i, 100), { timeout: 5000 });
        await drain(wqTake(q), got, run, 1500);
        run.usable = [0, 1, 2, 3, 4].every((i) => got.has(`99 ${i}`));
      } finally {
        await p.close();
      }
      account(run, new Set(v.lines.filter((l) => l.startsWith('s ')).map((l) => `1 ${l.slice(2)}`)), got);
      const info = q.info();
      if (info.ready + info.inFlight + info.writing > 0) run.left.push(`${info.ready + info.inFlight + info.writing} slots stuck`);
      if (info.free !== info.capacity) run.left.push(`${info.capacity - info.free} slots not free`);
    } catch (e) {
      run.sees.push(code(e));
    } finally {
      await q.close().catch(() => {});
    }
    return run;
  }
  const ring = createRing(name, { capacityBytes: 16 * 1024, maxMessageBytes: 4096, producers: kind === 'ring-many' ? 'many' : 'one' });
  let rx: RingReceiver<Uint8Array> | undefined;
  try {
    rx = await ring.receiver();
    const v = victim(['produce', 'ring', name, '1', '100'], `ring:${point}:${n}`);
    let done = false;
    const draining = drain(ringReceive(rx), got, run, 300, () => done);
    const ex = await v.exit;
    done = true;
    await draining;
    run.killed = ex.signal === 'SIGKILL';
    v.lines.filter((l) => l.startsWith('e ')).forEach((l) => run.sees.push(`victim ${l.slice(2)}`));
    await drain(ringReceive(rx), got, run, 1500);
    try {
      const tx = await ring.sender({ timeout: 5000 });
      try {
        for (let i = 0; i < 5; i++) await tx.send(makeMessage(99, i, 100), { timeout: 5000 });
      } finally {
        await tx.close();
      }
      await drain(ringReceive(rx), got, run, 1500);
      run.usable = [0, 1, 2, 3, 4].every((i) => got.has(`99 ${i}`));
    } catch (e) {
      run.sees.push(`new producer ${code(e)}`);
    }
    account(run, new Set(v.lines.filter((l) => l.startsWith('s ')).map((l) => `1 ${l.slice(2)}`)), got);
    const info = ring.info();
    if (info.used > 0) run.left.push(`${info.used} bytes in use`);
  } catch (e) {
    run.sees.push(code(e));
  } finally {
    await rx?.close().catch(() => {});
    ring.close();
  }
  return run;
}

/** A consumer dies at `point` while this process produces; then a new consumer (here) takes the rest. */
async function consumerDies(kind: 'ring' | 'workqueue', point: string): Promise<Run> {
  const run: Run = { killed: false, sees: [], lost: 0, duplicated: 0, torn: 0, inFlightDelivered: 0, usable: false, left: [] };
  const name = newName();
  const got = new Map<string, number>();
  const confirmed = new Set<string>();
  const n = 1 + random(40);
  const COUNT = 80;
  const produce = async (send: (m: Uint8Array) => Promise<unknown>): Promise<void> => {
    for (let seq = 0; seq < COUNT; seq++) {
      try {
        await send(makeMessage(1, seq, 64 + random(900)));
        confirmed.add(`1 ${seq}`);
      } catch (e) {
        run.sees.push(`producer ${code(e)}`);
        return;
      }
      if (seq % 8 === 7) await sleep(2);
    }
  };
  const fromVictim = (v: Victim): void => {
    for (const l of v.lines) {
      if (l.startsWith('r ')) {
        const k = l.slice(2);
        got.set(k, (got.get(k) ?? 0) + 1);
      } else if (l.startsWith('e ')) run.sees.push(`victim ${l.slice(2)}`);
    }
  };
  if (kind === 'workqueue') {
    const q = createWorkQueue(name, { capacityJobs: 16, maxMessageBytes: 1024 });
    try {
      const v = victim(['consume', 'workqueue', name], `workqueue:${point}:${n}`);
      const producing = produce((m) => q.put(m, { timeout: 5000 }));
      const ex = await v.exit;
      run.killed = ex.signal === 'SIGKILL';
      fromVictim(v);
      // The victim took a job it never logged? The queue gives it again: that is at least once.
      let finished = false;
      void producing.then(() => (finished = true));
      await drain(wqTake(q), got, run, 1500, () => finished);
      await producing;
      run.usable = true;
      account(run, confirmed, got);
      const info = q.info();
      if (info.ready + info.inFlight + info.writing > 0) run.left.push(`${info.ready + info.inFlight + info.writing} slots stuck`);
    } catch (e) {
      run.sees.push(code(e));
    } finally {
      await q.close().catch(() => {});
    }
    return run;
  }
  const ring = createRing(name, { capacityBytes: 16 * 1024, maxMessageBytes: 4096 });
  try {
    const tx = await ring.sender();
    try {
      const v = victim(['consume', 'ring', name], `ring:${point}:${n}`);
      await sleep(100); // the victim attaches before we send
      const producing = produce((m) => tx.send(m, { timeout: 3000 }));
      const ex = await v.exit;
      run.killed = ex.signal === 'SIGKILL';
      fromVictim(v);
      // A new receiver takes the dead one's place and gets the rest.
      const rx = await ring.receiver({ timeout: 5000 });
      try {
        let finished = false;
        void producing.then(() => (finished = true));
        await drain(ringReceive(rx), got, run, 1500, () => finished);
        await producing;
        run.usable = true;
        account(run, confirmed, got);
      } finally {
        await rx.close();
      }
      const info = ring.info();
      if (info.used > 0) run.left.push(`${info.used} bytes in use`);
    } finally {
      await tx.close();
    }
  } catch (e) {
    run.sees.push(code(e));
  } finally {
    ring.close();
  }
  return run;
}

type Kind = 'ring' | 'workqueue' | 'mutex' | 'pool';
const UNLINK: Record<Kind, (name: string) => boolean> = { ring: unlinkRing, workqueue: unlinkWorkQueue, mutex: unlinkMutex, pool: unlinkBoundedPool };
const create = (kind: Kind, name: string): { close(): unknown } =>
  kind === 'ring' ? createRing(name, { capacityBytes: 4096 }) : kind === 'workqueue' ? createWorkQueue(name, { capacityJobs: 4 }) : kind === 'mutex' ? createMutex(name) : createBoundedPool(name, { permits: 1 });
const attach = async (kind: Kind, name: string): Promise<{ close(): unknown }> => {
  if (kind === 'ring') {
    const ring = await openRing(name, { timeout: 5000 });
    try {
      return await ring.sender({ timeout: 5000 });
    } finally {
      ring.close();
    }
  }
  return kind === 'workqueue' ? openWorkQueue(name, { timeout: 5000 }) : kind === 'mutex' ? openMutex(name, { timeout: 5000 }) : openBoundedPool(name, { timeout: 5000 });
};

/** The creator dies after writing the header, before publishing: what an opener and a new creator see. */
async function creatorDies(kind: Kind): Promise<Run> {
  const run: Run = { killed: false, sees: [], lost: 0, duplicated: 0, torn: 0, inFlightDelivered: 0, usable: false, left: [] };
  const name = newName();
  const v = victim(['create', kind, name], 'create:before-publish');
  const ex = await v.exit;
  run.killed = ex.signal === 'SIGKILL';
  if (existsSync(`/dev/shm${name}`)) run.left.push('the half-made name');
  const t0 = performance.now();
  try {
    const h = await attach(kind, name);
    run.sees.push('open: ok');
    await h.close();
  } catch (e) {
    run.sees.push(`open: ${code(e)}`);
  }
  try {
    const h = create(kind, name);
    run.sees.push('create again: ok');
    run.usable = true;
    await h.close();
  } catch (e) {
    run.sees.push(`create again: ${code(e)}`);
    // The remedy the error names: remove the name (the kind's own unlink), then create.
    try {
      UNLINK[kind](name);
      const h = create(kind, name);
      run.sees.push('unlink + create: ok');
      run.usable = true;
      await h.close();
    } catch (e2) {
      run.sees.push(`unlink + create: ${code(e2)}`);
    }
  }
  run.ms = performance.now() - t0;
  return run;
}

/** A process dies holding the attach lock: how long the next attach takes, and whether it works. */
async function lockHolderDies(kind: Kind): Promise<Run> {
  const run: Run = { killed: false, sees: [], lost: 0, duplicated: 0, torn: 0, inFlightDelivered: 0, usable: false, left: [] };
  const name = newName();
  const h = create(kind, name);
  try {
    const v = victim(['attach', kind, name], 'attach:locked');
    const ex = await v.exit;
    run.killed = ex.signal === 'SIGKILL';
    const t0 = performance.now();
    try {
      const a = await attach(kind, name);
      run.ms = performance.now() - t0;
      run.sees.push('attach: ok');
      run.usable = true;
      await a.close();
    } catch (e) {
      run.sees.push(`attach: ${code(e)}`);
    }
  } finally {
    await h.close();
  }
  return run;
}

interface Cell {
  mechanism: string;
  point: string;
  victim: string;
  runs: Run[];
}
const cells: Array<{ mechanism: string; point: string; victim: string; go: () => Promise<Run> }> = [];
for (const mode of ['ring-one', 'ring-many'] as const) {
  for (const p of ['before-claim', 'after-claim', 'mid-copy', 'before-commit', 'before-wake']) {
    cells.push({ mechanism: mode === 'ring-one' ? 'ring (one producer)' : 'ring (many producers)', point: `ring:${p}`, victim: 'producer', go: () => producerDies(mode, p) });
  }
}
cells.push({ mechanism: 'ring', point: 'ring:mid-receive', victim: 'receiver', go: () => consumerDies('ring', 'mid-receive') });
for (const p of ['before-claim', 'after-claim', 'mid-copy', 'before-publish', 'before-wake']) cells.push({ mechanism: 'work queue', point: `workqueue:${p}`, victim: 'producer', go: () => producerDies('workqueue', p) });
for (const p of ['after-take', 'before-done']) cells.push({ mechanism: 'work queue', point: `workqueue:${p}`, victim: 'consumer', go: () => consumerDies('workqueue', p) });
for (const k of ['ring', 'workqueue', 'mutex', 'pool'] as const) {
  cells.push({ mechanism: k === 'workqueue' ? 'work queue' : k, point: 'create:before-publish', victim: 'creator', go: () => creatorDies(k) });
  cells.push({ mechanism: k === 'workqueue' ? 'work queue' : k, point: 'attach:locked', victim: 'attacher', go: () => lockHolderDies(k) });
}

const results: Cell[] = [];
const t0 = Date.now();
try {
  for (const c of cells) {
    if (only && !`${c.mechanism} ${c.point}`.includes(only)) continue;
    const runs: Run[] = [];
    for (let i = 0; i < RUNS; i++) {
      runs.push(await c.go());
      cleanup();
    }
    results.push({ mechanism: c.mechanism, point: c.point, victim: c.victim, runs });
    process.stderr.write(`crash-matrix: ${c.mechanism} ${c.point}: ${summarize(runs, c.victim).join(' | ')}\n`);
  }
} finally {
  cleanup();
}

function tally(items: string[]): string {
  const m = new Map<string, number>();
  for (const i of items) m.set(i, (m.get(i) ?? 0) + 1);
  return [...m].map(([k, n]) => `${k} ×${n}`).join(', ');
}

function summarize(runs: Run[], victim = ''): string[] {
  const killed = runs.filter((r) => r.killed).length;
  const sees = tally(runs.flatMap((r) => r.sees)) || 'nothing (no error)';
  const lost = runs.reduce((n, r) => n + r.lost, 0);
  const dup = runs.reduce((n, r) => n + r.duplicated, 0);
  const torn = runs.reduce((n, r) => n + r.torn, 0);
  const inflight = runs.reduce((n, r) => n + r.inFlightDelivered, 0);
  const usable = runs.filter((r) => r.usable).length;
  const left = tally(runs.flatMap((r) => r.left)) || 'nothing';
  const ms = runs.filter((r) => r.ms !== undefined).map((r) => r.ms!).sort((a, b) => a - b);
  const msText = ms.length ? ` (median ${Math.round(ms[ms.length >> 1]!)} ms)` : '';
  const twice = victim === 'consumer' ? `${dup} redelivered (its consumer died)` : `${dup} twice`;
  const killedText = killed === 0 ? `0/${runs.length} (never passes this point)` : `${killed}/${runs.length}`;
  return [killedText, sees + msText, `${lost} lost, ${twice}, ${torn} torn; ${inflight} in flight delivered`, `${usable}/${runs.length}`, left];
}

const rows = results.map((c) => `| ${c.mechanism} | \`${c.point}\` | ${c.victim} | ${summarize(c.runs, c.victim).join(' | ')} |`);
const table = [
  `| mechanism | fault point | who dies | killed there | what the survivor sees | what was lost | usable after | left behind |`,
  `|---|---|---|---|---|---|---|---|`,
  ...rows,
].join('\n');
process.stdout.write(`${table}\n\n${RUNS} runs a cell, ${Math.round((Date.now() - t0) / 1000)} s, seed ${opt('--seed') ?? 15}\n`);
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify({ runs: RUNS, seconds: Math.round((Date.now() - t0) / 1000), cells: results.map((c) => ({ mechanism: c.mechanism, point: c.point, victim: c.victim, summary: summarize(c.runs, c.victim), runs: c.runs })) }, null, 2)}\n`);
// A failure: a torn message, a duplicate not explained by a dead consumer, a lost message
// whose send had resolved, or an object nobody could use again.
const bad = results.some((c) => c.runs.some((r) => r.torn > 0 || (r.duplicated > 0 && c.victim !== 'consumer') || r.lost > 0 || !r.usable));
process.exitCode = bad ? 1 : 0;
