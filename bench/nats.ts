/**
 * Bench: what crossing to a broker costs. Everything goes through one local nats-server
 * (started here, on a free loopback port, JetStream in a temporary folder), between this
 * process and child processes, beside the local mechanisms in the same run:
 * - publish/subscribe one-way at 64 B and 1 KiB (NatsSender -> NatsReceiver in a child,
 *   which checks every sequence number and acknowledges the count on another subject);
 * - request/reply round trips (NatsRequester -> NatsResponder echo in a child);
 * - the JetStream work queue: 1 producer (putMany) + 2 consumer processes (takeMany, ack),
 *   small jobs; jobs/s = jobs / (first put .. join() resolved).
 * Without nats-server on the PATH the scenario is skipped and the notes say why.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openNatsReceiver, openNatsRequester, openNatsResponder, openNatsSender } from '../src/mechanisms/nats/channel.js';
import { openNatsWorkQueue } from '../src/mechanisms/nats/workqueue.js';
import { startChild as startProgram } from '../src/os/child.js';
import { benchPrefix, benchTag, endChild, stamp, startChild, tell, senderFigure, throughputFigure, type Figure, type Scenario } from './harness.js';
import { echoLoop, rttLoop, sinkLoop, throughputLoop } from './streams.js';

const NATS_SERVER = process.env.NATS_SERVER ?? 'nats-server';
const JOB_BYTES = 64;
const BATCH = 256;

interface BenchServer {
  url: string;
  version: string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Starts nats-server -js on a free loopback port; null (with the reason) when it is not installed. */
async function startServer(): Promise<BenchServer | string> {
  const v = spawnSync(NATS_SERVER, ['--version'], { encoding: 'utf8' });
  if (v.status !== 0) return `nats: skipped: ${NATS_SERVER} is not installed (${v.error?.message ?? v.stderr.trim()}); install it (Debian: apt-get install nats-server) to measure NATS beside the local mechanisms`;
  const port = await freePort();
  const store = mkdtempSync(join(tmpdir(), `${benchPrefix()}nats-`));
  // Through the die-with-parent helper (src/os/child.ts): a case process killed with
  // SIGKILL takes its server with it (its store folder is removed by the run: removeNamedBy).
  let child: ChildProcess;
  try {
    ({ child } = startProgram([NATS_SERVER, '-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store], 'ignore'));
  } catch (e) {
    rmSync(store, { recursive: true, force: true });
    throw e;
  }
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = tcpConnect(port, '127.0.0.1');
      s.once('data', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      rmSync(store, { recursive: true, force: true });
      throw new Error(`nats-server did not start on port ${port}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, 200)); // JetStream comes up just after the port
  return {
    url: `nats://127.0.0.1:${port}`,
    version: v.stdout.trim(),
    stop: async () => {
      await endChild(child, () => child.kill('SIGTERM'));
      rmSync(store, { recursive: true, force: true });
    },
  };
}

let counter = 0;
const subjectBase = (): string => `ipckit.bench.${benchTag()}.${++counter}`;

async function pubsub(url: string, size: number, budget: Parameters<typeof throughputLoop>[3]): ReturnType<typeof throughputLoop> {
  const base = subjectBase();
  const ack = openNatsReceiver(url, `${base}.ack`);
  const tx = openNatsSender(url, `${base}.data`);
  const child = startChild('nats', 'sink', { url, data: `${base}.data`, ack: `${base}.ack` });
  try {
    await ack.ready();
    await child.nextLine(); // subscribed
    return await throughputLoop(tx, ack, size, budget);
  } finally {
    await child.finish();
    await tx.close();
    await ack.close();
  }
}

async function requestReply(url: string, size: number, budget: Parameters<typeof rttLoop>[3]): ReturnType<typeof rttLoop> {
  const subject = `${subjectBase()}.svc`;
  const child = startChild('nats', 'echo', { url, subject });
  const requester = openNatsRequester(url, subject);
  try {
    await requester.ready();
    await child.nextLine();
    const r = await rttLoop(requester, requester, size, budget);
    await requester.send(stamp(new Uint8Array(Math.max(size, 8)), -1)); // the echo's end marker
    return r;
  } finally {
    await child.finish();
    await requester.close();
  }
}

async function workQueue(url: string, seconds: number, maxJobs: number): Promise<{ jobs: number; seconds: number }> {
  const name = `${benchPrefix()}${++counter}`;
  const q = openNatsWorkQueue(`${url}/${name}`);
  await q.ready();
  const consumers = [0, 1].map(() => startChild('nats', 'consumer', { url: `${url}/${name}` }));
  try {
    for (const c of consumers) await c.nextLine();
    const jobs = Array.from({ length: BATCH }, () => new Uint8Array(JOB_BYTES).fill(7));
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(Math.round(seconds * 1e9));
    let n = 0;
    while (n < maxJobs) {
      await q.putMany(jobs);
      n += BATCH;
      if (process.hrtime.bigint() > deadline) break;
    }
    await q.join({ timeout: 60_000 });
    const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    const stats = await q.stats();
    if (stats.done !== n) throw new Error(`the consumers did ${stats.done} jobs, ${n} were put`);
    for (const c of consumers) c.child.kill('SIGTERM');
    return { jobs: n, seconds: elapsed };
  } finally {
    for (const c of consumers) await c.finish(5000);
    await q.close();
  }
}

export const scenarios: Scenario[] = [
  {
    name: 'nats',
    title: 'NATS through a local nats-server',
    async run(ctx) {
      const server = await startServer();
      if (typeof server === 'string') {
        ctx.note(server);
        return [];
      }
      const out: Figure[] = [];
      try {
        ctx.note(`nats: through one local ${server.version} on loopback (JetStream file store in a temporary folder); every message crosses two TCP connections and the server`);
        for (const size of [64, 1024]) {
          ctx.progress(`nats: publish/subscribe one-way ${size} B`);
          const t = await pubsub(server.url, size, ctx.budget);
          out.push(senderFigure({ mechanism: 'nats', variant: 'ipckit publish/subscribe', role: 'ipckit', size }, t));
          ctx.progress(`nats: request/reply ${size} B`);
          const l = await requestReply(server.url, size, ctx.budget);
          out.push({ mechanism: 'nats', variant: 'ipckit request/reply', role: 'ipckit', metric: 'rtt', size, ...l });
        }
        ctx.progress('nats: JetStream work queue');
        const w = await workQueue(server.url, ctx.budget.thrSeconds, Math.min(ctx.budget.thrMessages, 200_000));
        out.push(throughputFigure({ mechanism: 'nats', variant: 'ipckit JetStream work queue, batched (1P+2C)', role: 'ipckit', size: JOB_BYTES }, w.jobs, w.seconds));
      } finally {
        await server.stop();
      }
      return out;
    },
  },
];

export const children = {
  /** Receives and checks sequence numbers; acknowledges the count on the ack subject. */
  async sink(args: { url: string; data: string; ack: string }): Promise<void> {
    const rx = openNatsReceiver(args.url, args.data, { maxPending: 1 << 20, maxPendingBytes: 1 << 30 });
    const tx = openNatsSender(args.url, args.ack);
    await rx.ready();
    tell({ ready: true });
    await sinkLoop(rx, tx);
    await tx.close();
    await rx.close();
  },
  /** Answers each request with its own bytes until the end marker. */
  async echo(args: { url: string; subject: string }): Promise<void> {
    const responder = openNatsResponder(args.url, args.subject);
    await responder.ready();
    tell({ ready: true });
    await echoLoop(responder, responder);
    await responder.close();
  },
  async consumer(args: { url: string }): Promise<void> {
    const q = openNatsWorkQueue(args.url);
    await q.ready();
    tell({ ready: true });
    process.once('SIGTERM', () => void q.close().then(() => process.exit(0)));
    try {
      for (;;) {
        const jobs = await q.takeMany(BATCH);
        q.ack(jobs);
      }
    } catch (e) {
      if ((e as { code?: string }).code !== 'ERR_IPCKIT_CLOSED') throw e;
    }
  },
};
