/**
 * The process the crash matrix (scripts/crash-matrix.ts) kills: started with
 * IPCKIT_FAULT=<point>:<n>, it SIGKILLs itself the n-th time it reaches that point. It logs
 * on stderr, at once (writeSync), what the survivor's accounting needs:
 *
 *   s SEQ              a send/put of message SEQ resolved
 *   r PRODUCER SEQ     a message was received (ring) or a job taken (work queue)
 *   d PRODUCER SEQ     a job was acknowledged
 *   e CODE             an operation failed
 *
 * Usage: node dist/scripts/crash-victim.js ROLE KIND NAME [ID COUNT]
 *   ROLE: produce | consume | create | attach;  KIND: ring | workqueue | mutex | pool
 */
import { writeSync } from 'node:fs';
import { checkMessage, makeMessage, sizeFor } from '../test/fixtures/checked-message.js';
import { createBoundedPool, createMutex, createRing, createWorkQueue, openBoundedPool, openMutex, openRing, openWorkQueue } from '../src/index.js';

const [role, kind, name, idArg, countArg] = process.argv.slice(2) as [string, string, string, string?, string?];
const id = Number(idArg ?? 1);
const count = Number(countArg ?? 100);
const log = (line: string): void => {
  writeSync(2, `${line}\n`);
};
const code = (e: unknown): string => (e as { code?: string })?.code ?? String(e);
const IDLE_MS = 1500; // a consumer ends after this long without a message

try {
  if (role === 'produce' && kind === 'ring') {
    const ring = await openRing(name);
    const tx = await ring.sender();
    ring.close();
    for (let seq = 0; seq < count; seq++) {
      await tx.send(makeMessage(id, seq, sizeFor(seq, 4096)), { timeout: 10_000 });
      log(`s ${seq}`);
      if (seq % 8 === 7) await new Promise((r) => setTimeout(r, 2)); // let the receiver sleep now and then
    }
    await tx.close();
  } else if (role === 'produce' && kind === 'workqueue') {
    const q = await openWorkQueue(name);
    for (let seq = 0; seq < count; seq++) {
      await q.put(makeMessage(id, seq, sizeFor(seq, 1024)), { timeout: 10_000 });
      log(`s ${seq}`);
      if (seq % 8 === 7) await new Promise((r) => setTimeout(r, 2));
    }
    await q.close();
  } else if (role === 'consume' && kind === 'ring') {
    const ring = await openRing(name);
    const rx = await ring.receiver();
    ring.close();
    for (;;) {
      const m = await rx.receive({ timeout: IDLE_MS }).catch((e: unknown) => (code(e) === 'ERR_IPCKIT_TIMEOUT' ? undefined : Promise.reject(e)));
      if (m === undefined) break;
      const { producer, seq } = checkMessage(m);
      log(`r ${producer} ${seq}`);
    }
    await rx.close();
  } else if (role === 'consume' && kind === 'workqueue') {
    const q = await openWorkQueue(name);
    for (;;) {
      const job = await q.take({ timeout: IDLE_MS }).catch((e: unknown) => (code(e) === 'ERR_IPCKIT_TIMEOUT' ? undefined : Promise.reject(e)));
      if (job === undefined) break;
      const { producer, seq } = checkMessage(job.data as Uint8Array);
      log(`r ${producer} ${seq}`);
      q.ack(job);
      log(`d ${producer} ${seq}`);
    }
    await q.close();
  } else if (role === 'create') {
    const h =
      kind === 'ring' ? createRing(name, { capacityBytes: 4096 }) : kind === 'workqueue' ? createWorkQueue(name, { capacityJobs: 4 }) : kind === 'mutex' ? createMutex(name) : createBoundedPool(name, { permits: 1 });
    log('created');
    await h.close();
  } else if (role === 'attach') {
    const h =
      kind === 'ring'
        ? await (async () => {
            const ring = await openRing(name);
            try {
              return await ring.sender();
            } finally {
              ring.close();
            }
          })()
        : kind === 'workqueue'
          ? await openWorkQueue(name)
          : kind === 'mutex'
            ? await openMutex(name)
            : await openBoundedPool(name);
    log('attached');
    await h.close();
  } else {
    log(`e usage`);
    process.exit(2);
  }
} catch (e) {
  log(`e ${code(e)}`);
  process.exitCode = 1;
}
