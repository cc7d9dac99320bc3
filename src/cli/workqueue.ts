/**
 * `ipckit workqueue put|take` (alias `wq`): the work queue, by address. A nats:// (or
 * tls://) address is a JetStream work queue across hosts; a shared-memory name is the
 * work queue of src/mechanisms/workqueue (to come here: openQueue is where it goes).
 */
import type { Job, WorkQueueContract } from '../core/work-queue.js';
import { openNatsWorkQueue } from '../mechanisms/nats/workqueue.js';
import { FLAGS, RECEIVE_FLAGS, UsageError, type Group, type Invocation } from './command.js';
import { messagesFrom, printMessage, waitingNote } from './output.js';
import { NATS_FLAGS, natsOptions } from './nats.js';
import { receiveLoop } from './receive.js';

const isNats = (address: string): boolean => /^(nats|tls):\/\//i.test(address);

/** A queue handle that can also say how many jobs wait now (for --drain). */
interface OpenedQueue extends WorkQueueContract<Uint8Array> {
  readonly url?: string;
}

/** Opens the queue QUEUE names, whatever carries it. */
function openQueue(address: string, flags: Invocation['flags'], where: string): { queue: OpenedQueue; what: string } {
  if (isNats(address)) {
    const queue = openNatsWorkQueue(address, natsOptions(flags, where));
    return { queue, what: `work queue ${queue.url}` };
  }
  throw new UsageError(`QUEUE ${JSON.stringify(address)} is not a nats:// address (shared-memory queues: coming)`, where);
}

export const group: Group = {
  name: 'workqueue',
  aliases: ['wq'],
  summary: 'Work queues: jobs taken by one consumer each, acknowledged, delivered again if a consumer dies.',
  notes: 'QUEUE: nats://host:port/NAME (JetStream; several servers separated by commas, tls:// for TLS)',
  commands: [
    {
      verb: 'put',
      args: 'QUEUE [MESSAGE...]',
      summary: 'put each MESSAGE as a job (none: one per stdin line); waits while the queue is full',
      flags: { timeout: FLAGS.timeout, quiet: FLAGS.quiet, json: { kind: 'boolean', help: 'print {"id":N} for each job put' }, ...NATS_FLAGS },
      examples: ['ipckit workqueue put nats://127.0.0.1:4222/jobs "resize a.png" "resize b.png"'],
      async run({ args, flags }) {
        const [address, ...messages] = args as [string, ...string[]];
        const deadline = flags.timeout === undefined ? undefined : performance.now() + (flags.timeout as number);
        const left = (): { timeout?: number } => (deadline === undefined ? {} : { timeout: Math.max(0, deadline - performance.now()) });
        const { queue, what } = openQueue(address, flags, 'ipckit workqueue put');
        const wait = waitingNote(`waiting for room on ${what}…`, flags.quiet === true);
        try {
          for await (const m of messagesFrom(messages)) {
            const id = await queue.put(m, left());
            wait.progress();
            if (flags.json) process.stdout.write(`${JSON.stringify({ id })}\n`);
          }
        } finally {
          wait.done();
          await queue.close();
        }
        return 0;
      },
    },
    {
      verb: 'take',
      args: 'QUEUE',
      summary: 'take jobs, print each, then acknowledge it, until --count were taken (--json adds id and deliveries)',
      details: 'A job is acknowledged once printed: if take is killed before, the job is delivered again.\nA queue never ends by itself: without --count, --timeout or --drain, take waits for jobs until stopped.',
      flags: { ...RECEIVE_FLAGS, ...NATS_FLAGS },
      examples: ['ipckit workqueue take nats://127.0.0.1:4222/jobs --count 1 --timeout 5000', 'ipckit workqueue take nats://127.0.0.1:4222/jobs --drain --json'],
      async run({ args, flags }) {
        const { queue, what } = openQueue(args[0]!, flags, 'ipckit workqueue take');
        try {
          // --drain: the jobs ready now (one look at the queue), taken without waiting for more.
          let readyNow: number | undefined;
          if (flags.drain === true) readyNow = (await queue.stats()).ready;
          const take = (o?: { timeout?: number }): Promise<Job<Uint8Array>> => {
            if (readyNow === undefined) return queue.take(o);
            if (readyNow-- <= 0) return queue.take({ timeout: 0 });
            return queue.take({ timeout: 5000 });
          };
          return await receiveLoop(
            { receive: take },
            {
              what,
              peer: 'a job',
              count: flags.count as number | undefined,
              timeout: flags.timeout as number | undefined,
              drain: flags.drain === true,
              quiet: flags.quiet === true,
              async print(job) {
                await printMessage(job.data, flags.json === true, { id: job.id, deliveries: job.deliveries });
                queue.ack(job);
              },
            },
          );
        } finally {
          await queue.close();
        }
      },
    },
  ],
};
