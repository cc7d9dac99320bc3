/**
 * `ipckit workqueue create|put|take|info|rm` (alias `wq`): the work queue, by address. A
 * shared-memory name (`/jobs`) is the work queue of src/mechanisms/workqueue on this host;
 * a nats:// (or tls://) address is a JetStream work queue across hosts. put, take and
 * info speak the work-queue contract, so they are the same for both.
 */
import type { Job, WorkQueueContract } from '../core/work-queue.js';
import { isNatsAddress } from '../mechanisms/nats/connection.js';
import { openNatsWorkQueue } from '../mechanisms/nats/workqueue.js';
import { createWorkQueue, openWorkQueue, unlinkWorkQueue } from '../mechanisms/workqueue/workqueue.js';
import { FLAGS, OWNER_FLAGS, RECEIVE_FLAGS, UsageError, type Group, type Invocation } from './command.js';
import { ownerCheck } from './mqueue.js';
import { printMessage, printResult, sendEach, timeLeft } from './output.js';
import { NATS_FLAGS, natsOptions } from './nats.js';
import { receiveLoop } from './receive.js';
import { removeNamed } from './remove.js';

/** Opens the queue QUEUE names, whatever carries it. */
async function openQueue(address: string, flags: Invocation['flags'], where: string): Promise<{ queue: WorkQueueContract<Uint8Array>; what: string }> {
  if (isNatsAddress(address)) {
    const queue = openNatsWorkQueue(address, natsOptions(flags, where));
    return { queue, what: `work queue ${queue.url}` };
  }
  if (!address.startsWith('/')) throw new UsageError(`QUEUE must be a shared-memory name like /jobs or a nats:// address, got ${JSON.stringify(address)}`, where);
  return { queue: await openWorkQueue(address, ownerCheck(flags)), what: `work queue ${address}` };
}

/** QUEUE flags: owner trust for a shared-memory queue, connection flags for NATS. */
const QUEUE_FLAGS = { ...OWNER_FLAGS, ...NATS_FLAGS } as const;

export const group: Group = {
  name: 'workqueue',
  aliases: ['wq'],
  summary: 'Work queues: jobs taken by one consumer each, acknowledged, delivered again if a consumer dies.',
  notes: 'QUEUE: a shared-memory name (/jobs, this host), or nats://host:port/NAME (JetStream across hosts;\nseveral servers separated by commas, tls:// for TLS). Sizes take 4096, 64K, 1M or 1G.',
  commands: [
    {
      verb: 'create',
      args: 'NAME',
      summary: 'create a shared-memory work queue (exclusive; owner-only unless --mode); it outlives this command',
      flags: {
        'capacity-jobs': { kind: 'int', value: 'N', min: 1, max: 1 << 24, help: 'jobs it holds at once, ready or in flight (default 1024)' },
        'max-message': { kind: 'size', value: 'BYTES', min: 1, max: 1 << 30, help: 'largest job (default 4K)' },
        mode: FLAGS.createMode,
      },
      examples: ['ipckit workqueue create /jobs --capacity-jobs 256 --max-message 64K'],
      async run({ args, flags }) {
        const name = args[0]!;
        if (isNatsAddress(name)) throw new UsageError('create makes a shared-memory queue: a JetStream queue is made by its first put or take', 'ipckit workqueue create');
        const queue = createWorkQueue(name, {
          persistent: true,
          mode: (flags.mode as number | undefined) ?? 0o600,
          ...(flags['capacity-jobs'] !== undefined ? { capacityJobs: flags['capacity-jobs'] as number } : {}),
          ...(flags['max-message'] !== undefined ? { maxMessageBytes: flags['max-message'] as number } : {}),
        });
        await queue.close();
        await printResult(false, undefined, queue.name);
        return 0;
      },
    },
    {
      verb: 'put',
      args: 'QUEUE [MESSAGE...]',
      summary: 'put each MESSAGE as a job (none: one per stdin line); waits while the queue is full',
      flags: { timeout: FLAGS.timeout, quiet: FLAGS.quiet, json: { kind: 'boolean', help: 'print {"id":N} for each job put' }, ...QUEUE_FLAGS },
      examples: ['ipckit workqueue put /jobs "resize a.png" "resize b.png"', 'ipckit workqueue put nats://127.0.0.1:4222/jobs "resize a.png"'],
      async run({ args, flags }) {
        const [address, ...messages] = args as [string, ...string[]];
        const left = timeLeft(flags.timeout as number | undefined);
        const { queue, what } = await openQueue(address, flags, 'ipckit workqueue put');
        try {
          await sendEach(messages, { left, waiting: `waiting for room on ${what}…`, quiet: flags.quiet === true }, async (m, opts) => {
            const id = await queue.put(m, opts);
            if (flags.json) process.stdout.write(`${JSON.stringify({ id })}\n`);
          });
        } finally {
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
      flags: { ...RECEIVE_FLAGS, ...QUEUE_FLAGS },
      examples: ['ipckit workqueue take /jobs --count 1 --timeout 5000', 'ipckit workqueue take nats://127.0.0.1:4222/jobs --drain --json'],
      async run({ args, flags }) {
        const { queue, what } = await openQueue(args[0]!, flags, 'ipckit workqueue take');
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
    {
      verb: 'info',
      args: 'QUEUE',
      summary: 'jobs ready and in flight, and the counts since creation (put, done, delivered again, dead letters)',
      flags: { json: FLAGS.json, ...QUEUE_FLAGS },
      examples: ['ipckit workqueue info /jobs', 'ipckit workqueue info nats://127.0.0.1:4222/jobs --json'],
      async run({ args, flags }) {
        const { queue, what } = await openQueue(args[0]!, flags, 'ipckit workqueue info');
        try {
          const s = await queue.stats();
          await printResult(
            flags.json === true,
            { queue: args[0], ...s },
            `${what}: ${s.ready} ready, ${s.inFlight} in flight${s.capacity !== undefined ? ` of ${s.capacity}` : ''}; since creation ${s.put} put, ${s.done} done, ${s.redelivered} delivered again, ${s.deadLettered} dead letters`,
          );
        } finally {
          await queue.close();
        }
        return 0;
      },
    },
    {
      verb: 'rm',
      args: 'NAME',
      summary: "remove a shared-memory work queue's name (refuses any other kind of object)",
      flags: { force: FLAGS.force },
      examples: ['ipckit workqueue rm /jobs'],
      async run({ args, flags }) {
        if (isNatsAddress(args[0]!)) throw new UsageError('rm removes a shared-memory queue; a JetStream stream is removed with the nats tools (nats stream rm)', 'ipckit workqueue rm');
        return removeNamed('work queue', args[0]!, flags.force === true, unlinkWorkQueue);
      },
    },
  ],
};
