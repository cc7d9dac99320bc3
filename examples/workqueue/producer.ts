/**
 * Work queue: one producer, four consumer processes, 100,000 jobs, with a live count of
 * done / in flight / redelivered. With --kill-one, one consumer is killed (SIGKILL) a third
 * of the way through and another started: the jobs it had taken are delivered again, and
 * none is lost.
 *
 *   node producer.js [/name] [--kill-one]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createWorkQueue } from 'ipckit';

const args = process.argv.slice(2);
const killOne = args.includes('--kill-one');
const name = args.find((a) => a.startsWith('/')) ?? '/ipckit-example-jobs';
const JOBS = 100_000;
const consumerScript = fileURLToPath(new URL('./consumer.js', import.meta.url));

const queue = createWorkQueue(name, { capacityJobs: 1024, maxMessageBytes: 256, codec: 'json' });
const start = (): ChildProcess => fork(consumerScript, [name], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const consumers = [start(), start(), start(), start()];
const status = (): string => {
  const s = queue.info();
  return `done ${s.done.toLocaleString('en-US')} / ${JOBS.toLocaleString('en-US')}, in flight ${s.inFlight}, waiting ${s.ready}, redelivered ${s.redelivered}`;
};
const live = setInterval(() => {
  if (process.stdout.isTTY) process.stdout.write(`\r\x1b[K${status()}`);
}, 200);
try {
  const started = performance.now();
  let killed = false;
  for (let n = 0; n < JOBS; n += 500) {
    const batch = Array.from({ length: Math.min(500, JOBS - n) }, (_, i) => ({ n: n + i, text: `job ${n + i}` }));
    await queue.putMany(batch); // waits while the queue is full
    if (killOne && !killed && queue.info().done > JOBS / 3) {
      killed = true;
      consumers[0]!.kill('SIGKILL'); // it dies with jobs in hand...
      consumers.push(start()); // ...and a new consumer picks them up again
      if (!process.stdout.isTTY) console.log('killed one consumer, started another');
    }
  }
  await queue.join(); // every job taken and marked done
  const seconds = (performance.now() - started) / 1000;
  queue.shutdown(); // consumers finish their loops
  await Promise.all(consumers.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
  if (process.stdout.isTTY) process.stdout.write('\r\x1b[K');
  console.log(`${status()}; ${Math.round(JOBS / seconds).toLocaleString('en-US')} jobs/s`);
} finally {
  clearInterval(live);
  for (const c of consumers) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await queue.close();
  queue.unlink();
}
