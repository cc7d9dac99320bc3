/**
 * Consumer: opens the producer's queue (waiting for it to exist) and handles jobs,
 * highest priority first, until the stop message; then removes the queue.
 */
import { isIpcError, openMessageQueue, unlinkMessageQueue, type MessageQueueReceiver } from 'ipckit';

const name = process.argv[2] ?? '/ipckit-example-jobs';

async function open(): Promise<MessageQueueReceiver<unknown>> {
  for (let tries = 0; ; tries++) {
    try {
      return await openMessageQueue(name, 'read', { codec: 'json' });
    } catch (e) {
      if (!isIpcError(e, 'ERR_IPCKIT_NOT_FOUND') || tries > 200) throw e;
      await new Promise((r) => setTimeout(r, 25)); // the producer has not created it yet
    }
  }
}

await using queue = await open();
let handled = 0;
for (;;) {
  const { message, priority } = await queue.receiveWithPriority({ timeout: 30_000 });
  const job = message as { id?: number; task?: string; stop?: boolean };
  if (job.stop) break;
  handled++;
  console.log(`consumer: job ${job.id} (${job.task}, priority ${priority})`);
}
unlinkMessageQueue(name);
console.log(`consumer: handled ${handled} jobs`);
