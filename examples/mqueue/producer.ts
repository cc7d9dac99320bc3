/**
 * Producer: creates a POSIX message queue and sends jobs with priorities; urgent jobs
 * overtake the others in the queue. Run the consumer alongside:
 *
 *   node producer.js /jobs &  node consumer.js /jobs
 *
 * Any program that speaks mq_receive(3) can be the consumer (C, Python, `ipckit mq recv /jobs`).
 */
import { createMessageQueue } from 'ipckit';

const name = process.argv[2] ?? '/ipckit-example-jobs';
await using queue = createMessageQueue(name, { maxMessages: 10, maxMessageBytes: 1024, codec: 'json' });

for (let id = 1; id <= 20; id++) {
  const urgent = id % 5 === 0;
  // send() waits while the queue is full (10 messages): backpressure, nothing dropped.
  await queue.send({ id, task: urgent ? 'urgent job' : 'job' }, { priority: urgent ? 10 : 1, timeout: 30_000 });
}
await queue.send({ stop: true }, { priority: 0, timeout: 30_000 }); // lowest priority: after every job
console.log('producer: sent 20 jobs');
