/**
 * The program a pool's worker process runs (started by pool.ts through the die-with-parent
 * helper, so it ends with the pool's process). It imports the task module, says READY
 * with the names of its functions, then takes jobs one at a time from the work queue,
 * runs them, sends each result on the ring and only then acknowledges the job: a worker
 * that dies before the acknowledgement leaves the job to be delivered again.
 * It ends when the pool shuts the queue down and nothing is left to take.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { IpcError, isIpcError } from '../../core/errors.js';
import { openSharedMemorySync } from '../shm/shm.js';
import { openRingSync } from '../ring/ring.js';
import { openWorkQueueSync } from '../workqueue/workqueue.js';
import * as p from './protocol.js';

const config = JSON.parse(process.env[p.CONFIG_ENV] ?? 'null') as p.WorkerConfig | null;
if (config === null) {
  process.stderr.write('ipckit pool worker: started without its configuration (it is started by createProcessPool)\n');
  process.exit(2);
}
const me = config.worker;

const queue = openWorkQueueSync(config.queue);
const tx = openRingSync(config.ring).senderSync();
const tickets = openSharedMemorySync(config.tickets);

function post(message: p.Message | Uint8Array): void | Promise<void> {
  const bytes = message instanceof Uint8Array ? message : p.encodeMessage(message);
  if (!tx.trySend(bytes)) return tx.send(bytes);
}

let mod: Record<string, unknown>;
try {
  mod = (await import(config.module)) as Record<string, unknown>;
} catch (e) {
  const record = p.errorRecord(e);
  if ((e as { code?: unknown }).code === 'ERR_MODULE_NOT_FOUND') record.code = 'ERR_MODULE_NOT_FOUND';
  await post([p.FATAL, 0, me, record]);
  await tx.close();
  process.exit(p.EXIT_FATAL);
}
const names = Object.keys(mod).filter((k) => typeof mod[k] === 'function');
await post([p.READY, 0, me, names]);

/**
 * Where results are encoded, kept from job to job: a fresh buffer for each big result cost a
 * fresh page for each 4 KiB of it (the bench's 1 MiB results: 340-470 page faults a result
 * in the worker). It grows to the largest result that went through the ring (half the ring
 * at most); a result is in the ring before the next job runs (the loop below awaits it, and a
 * send that has to wait for room takes a copy of its own), so the next one may reuse it.
 */
let scratch: Buffer | undefined;

/** Runs one job and returns the message that carries its outcome. */
async function runJob(seq: number, fn: string, flags: number, arg: unknown): Promise<Uint8Array> {
  try {
    const f = mod[fn];
    if (typeof f !== 'function') throw new IpcError('ERR_IPCKIT_NOT_FOUND', `the task module exports no function ${JSON.stringify(fn)}`);
    const input = flags & p.FILE_ARG ? p.decode(readFileSync(p.argFile(config!.folder, seq))) : arg;
    let value = (f as (a: unknown) => unknown)(input);
    if (value !== null && typeof (value as PromiseLike<unknown>)?.then === 'function') value = await value;
    let bytes: Buffer;
    try {
      bytes = p.encodeMessage([p.OK, seq, me, value], scratch);
    } catch (e) {
      throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `the result of ${fn} cannot be sent to the pool: ${(e as Error).message}`, { cause: e });
    }
    if (bytes.length <= tx.maxMessageBytes) {
      // Kept when it has its memory to itself (not a slice of Node's pool of small buffers).
      if (bytes.buffer !== scratch?.buffer && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) scratch = bytes;
      return bytes;
    }
    // Too large for the ring: a file of the pool's folder (the parent reads and removes it).
    const file = p.resultFileName(seq, me);
    writeFileSync(`${config!.folder}/${file}`, bytes, { mode: 0o600, flag: 'wx' });
    return p.encodeMessage([p.OK_FILE, seq, me, file]);
  } catch (e) {
    return p.encodeMessage([p.THREW, seq, me, p.errorRecord(e)]);
  }
}

for (;;) {
  let job = queue.tryTake();
  if (job === undefined) {
    try {
      job = await queue.take();
    } catch (e) {
      if (isIpcError(e, 'ERR_IPCKIT_CLOSED')) break; // shut down and drained
      throw e;
    }
  }
  let item: p.JobItem;
  try {
    item = p.decodeJob(job.data as Uint8Array);
  } catch {
    queue.ack(job); // not a job of ours: nothing to run, nobody to answer
    continue;
  }
  const [seq, ticket, fn, flags, arg] = item;
  // Still wanted? (the parent zeroes the ticket once the job settled or was cancelled)
  if (!(Number.isInteger(ticket) && ticket >= 0 && ticket < config.ticketCount) || tickets.load(ticket) !== (seq | 0)) {
    queue.ack(job);
    continue;
  }
  if (job.deliveries > config.maxAttempts) {
    await post([p.GAVE_UP, seq, me, job.deliveries - 1]);
    queue.ack(job);
    continue;
  }
  if (flags & p.REPORT_START) await post([p.START, seq, me, job.deliveries]);
  await post(await runJob(seq, fn, flags, arg));
  queue.ack(job);
}
await tx.close();
await queue.close();
tickets.close();
process.exit(0);
