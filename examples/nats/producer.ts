/**
 * NATS: the same work queue and channels as on one host, across hosts. The producer puts
 * jobs on a JetStream work queue, starts two worker processes (on other machines they
 * would be started there, with the same URL), and collects their results from a subject.
 *
 *   node producer.js nats://127.0.0.1:4222 [JOBS]
 *
 * Start a server first: nats-server -js -sd /tmp/nats
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connectNats, natsReceiver, natsWorkQueue } from 'ipckit';

const url = process.argv[2] ?? 'nats://127.0.0.1:4222';
const jobs = Number(process.argv[3] ?? 1000);
const worker = fileURLToPath(new URL('./worker.js', import.meta.url));

// One connection carries the queue and the results subject.
const nats = connectNats(url, { name: 'example producer' });
const queue = natsWorkQueue(nats, 'squares', { codec: 'json' });
const results = natsReceiver(nats, 'squares.done', { codec: 'json' });
await results.ready();

const workers = [fork(worker, [url]), fork(worker, [url])];
const started = performance.now();
await queue.putMany(Array.from({ length: jobs }, (_, n) => ({ n })));

let sum = 0;
const by = new Map<number, number>();
for (let i = 0; i < jobs; i++) {
  const r = (await results.receive({ timeout: 30_000 })) as { n: number; square: number; pid: number };
  sum += r.square;
  by.set(r.pid, (by.get(r.pid) ?? 0) + 1);
}
await queue.join({ timeout: 30_000 });
const seconds = (performance.now() - started) / 1000;
console.log(`${jobs} jobs done by ${by.size} workers in ${seconds.toFixed(2)} s; sum of squares ${sum}`);

for (const w of workers) w.kill('SIGTERM');
await queue.close();
await results.close();
await nats.close();
