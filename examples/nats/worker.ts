/**
 * A worker of examples/nats/producer.ts: takes jobs from the work queue `squares`,
 * answers each on the subject `squares.done`, then acknowledges it. Killed mid-job, its
 * jobs go to another worker after the queue's ackWait.
 *
 *   node worker.js nats://127.0.0.1:4222
 */
import { connectNats, natsSender, natsWorkQueue } from 'ipckit';

const nats = connectNats(process.argv[2] ?? 'nats://127.0.0.1:4222', { name: `example worker ${process.pid}` });
const queue = natsWorkQueue(nats, 'squares', { codec: 'json' });
const done = natsSender(nats, 'squares.done', { codec: 'json' });

process.once('SIGTERM', () => {
  // Jobs in hand go back to the queue; acknowledgements sent are confirmed first.
  void queue.close().then(() => nats.close()).then(() => process.exit(0));
});

try {
  for await (const job of queue) {
    const { n } = job.data as { n: number };
    await done.send({ n, square: n * n, pid: process.pid });
    queue.ack(job);
  }
} catch (e) {
  if ((e as { code?: string }).code !== 'ERR_IPCKIT_CLOSED') throw e;
}
