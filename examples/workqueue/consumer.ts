/**
 * Work queue consumer: takes jobs until the queue is shut down and every job is done.
 * A job is finished with ack(); if this process dies before that, the job goes to
 * another consumer (job.redelivered is then true, and job.id is the same).
 */
import { createHash } from 'node:crypto';
import { openWorkQueue } from 'ipckit';

const queue = await openWorkQueue(process.argv[2] ?? '/ipckit-example-jobs', { codec: 'json' });
let done = 0;
for await (const job of queue) {
  const { text } = job.data as { n: number; text: string };
  createHash('sha256').update(text).digest(); // the "work"
  queue.ack(job);
  done++;
}
await queue.close();
process.send?.({ done });
