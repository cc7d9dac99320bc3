/**
 * Bench: the work queue with one producer and two consumers in three processes, small
 * jobs (64 bytes). The producer puts until its rate is steady (RateMeter: the consumers'
 * code gets optimized meanwhile), then for the measured part; jobs/s = the jobs put in the
 * measured part / (its start .. join() resolved, i.e. every job done).
 * - batched: putMany / takeMany / ack(batch), 256 at a time
 * - one by one: put / take / ack per job
 * Baseline in the same run: process.send from the node baselines (one-way, 64 B).
 */
import { createWorkQueue, openWorkQueue, unlinkWorkQueue, type WorkQueue } from '../src/mechanisms/workqueue/workqueue.js';
import { benchPrefix, KeptPeers, probedBy, RateMeter, tell, throughputFigure, whilePeerRuns, withChild, type BenchChild, type Budget, type Figure, type Scenario, type ServingChild } from './harness.js';

const JOB_BYTES = 64;
const BATCH = 256;
let counter = 0;

type Measured = { jobs: number; seconds: number; consumers: number[]; warmup: { seconds: number; steady: boolean }; cpuProbeNs?: number | null };

/** The consumers a quick run keeps from round to round, two per way of taking (harness.ts withChild). */
const kept = new KeptPeers<ServingChild>();

async function run(batched: boolean, budget: Budget): Promise<Measured> {
  const name = `/${benchPrefix()}${++counter}-wq`;
  const q = createWorkQueue(name, { capacityJobs: 4096, maxMessageBytes: JOB_BYTES });
  const args = { name, batched };
  const consumer = (i: number, body: (c: BenchChild) => Promise<Measured>): Promise<Measured> => withChild(kept, `consumer-${batched ? 'batched' : 'single'}-${i}`, budget.keepPeers, 'workqueue', 'consumer', args, body);
  try {
    return await consumer(0, (first) => consumer(1, (second) => measure(q, [first, second], batched, budget)));
  } finally {
    // measure() shut it down, unless starting the consumers failed.
    if (!q.isShutdown) q.shutdown();
    await q.close();
    unlinkWorkQueue(name);
  }
}

async function measure(q: WorkQueue<Uint8Array>, consumers: BenchChild[], batched: boolean, budget: Budget): Promise<Measured> {
  try {
    for (const c of consumers) await c.nextLine();
    const jobs = Array.from({ length: BATCH }, () => new Uint8Array(JOB_BYTES).fill(7));
    const meter = new RateMeter(budget);
    let n = 0;
    const produce = async (): Promise<void> => {
      for (;;) {
        if (batched) {
          await q.putMany(jobs);
          n += BATCH;
        } else {
          for (let i = 0; i < BATCH; i++) await q.put(jobs[i]!);
          n += BATCH;
        }
        if (meter.tick(n)) break;
      }
      await q.join({ timeout: 30_000 });
    };
    // A consumer's death fails the measurement: its jobs would be delivered again and the
    // rate would not be the pair's (with both dead, a full queue would wait for room for
    // ever); closing the queue ends the wait left behind.
    await whilePeerRuns(consumers, produce());
    const measured = meter.result(n);
    q.shutdown();
    const counts: number[] = [];
    for (const c of consumers) counts.push(((await c.nextLine()) as { done: number }).done);
    const total = counts.reduce((a, b) => a + b, 0);
    if (total !== n) throw new Error(`the consumers did ${total} jobs, ${n} were put`);
    return { jobs: measured.messages, seconds: measured.seconds, consumers: counts, warmup: measured.warmup, ...probedBy(measured) };
  } catch (e) {
    // Ended with their measurement (withChild kills them); the queue goes after.
    if (!q.isShutdown) q.shutdown();
    throw e;
  }
}

export const scenarios: Scenario[] = [
  {
    name: 'workqueue',
    title: 'work queue, 1 producer + 2 consumers',
    async run(ctx) {
      const out: Figure[] = [];
      for (const batched of [true, false]) {
        const variant = batched ? 'ipckit work queue, batched (1P+2C)' : 'ipckit work queue, one by one (1P+2C)';
        ctx.progress(variant);
        const r = await run(batched, ctx.budget);
        out.push(throughputFigure({ mechanism: 'workqueue', variant, role: 'ipckit', size: JOB_BYTES, note: `consumers did ${r.consumers.join(' + ')} jobs (warm-up included)`, ...probedBy(r) }, r.jobs, r.seconds, r.warmup));
      }
      return out;
    },
    close: () => kept.close(),
    targets: [
      { mechanism: 'workqueue', variant: 'ipckit work queue, batched (1P+2C)', metric: 'throughput', size: JOB_BYTES, minMsgsPerSec: 1_000_000, text: 'work queue, 1 producer + 2 consumers in 3 processes: >= 1M small jobs/s with batching' },
    ],
  },
];

export const children = {
  async consumer(args: { name: string; batched: boolean }): Promise<void> {
    const q = await openWorkQueue(args.name);
    tell({ ready: true });
    let done = 0;
    try {
      if (args.batched) {
        for (;;) {
          const jobs = await q.takeMany(BATCH);
          q.ack(jobs);
          done += jobs.length;
        }
      } else {
        for await (const job of q) {
          q.ack(job);
          done++;
        }
      }
    } catch (e) {
      if ((e as { code?: string }).code !== 'ERR_IPCKIT_CLOSED') throw e;
    }
    tell({ done });
    await q.close();
  },
};
