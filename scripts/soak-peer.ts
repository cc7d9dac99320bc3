/**
 * One process of the soak (scripts/soak.ts): a sender or a receiver of one mechanism. It
 * writes what it did as lines on stderr (fd 2, written at once with writeSync, so that a
 * SIGKILL loses no line that matters):
 *
 *   s P N          sender P's message N was confirmed (in the kernel object / the segment)
 *   r P N [D]      a receiver got message N of sender P (D: deliveries, for the work queue)
 *   d P N          work queue: that job was acknowledged
 *   c TEXT         a message arrived torn (wrong length, bytes or checksum)
 *   e CODE         an operation failed with CODE (the peer reopens and goes on)
 *   k PID          the pipe receiver started a sender child PID (the soak may kill it)
 *   m FDS THREADS RSS_KB   a resource sample (receivers, every second)
 *
 * Usage: node dist/scripts/soak-peer.js MECH ROLE TARGET ID SEED
 *   MECH: pipe fifo socket seqpacket mqueue sysv ring workqueue; ROLE: send | receive;
 *   TARGET: the object (name, path, id:N); ID: the sender's number (unique per process).
 */
import { readdirSync, readFileSync, writeSync } from 'node:fs';
import { checkMessage, makeMessage } from '../test/fixtures/checked-message.js';
import {
  connect,
  listen,
  openFifo,
  openInheritedPipe,
  openMessageQueue,
  openRing,
  openSysvMessageQueue,
  openWorkQueue,
  popen,
  type SocketChannel,
} from '../src/index.js';
import { MAX_BYTES } from './soak-plan.js';
import { seededRandom } from './seeded.js';

const [mech, role, target, idArg, seedArg] = process.argv.slice(2) as [string, string, string, string, string];
const id = Number(idArg);
const random = seededRandom(Number(seedArg) ^ (id * 0x9e3779b1));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const log = (line: string): void => {
  writeSync(2, `${line}\n`);
};
const code = (e: unknown): string => (e as { code?: string })?.code ?? (e as Error)?.name ?? 'Error';

const SIZES = [16, 17, 23, 24, 64, 100, 255, 1000, 4095, 4096, 4097, 12_345];
const max = MAX_BYTES[mech] ?? 4096;
const size = (): number => Math.min(SIZES[random(SIZES.length)]!, max);

// Orphans end themselves: the soak may die without killing us.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(3);
}, 500).unref();

/** A receiver's resource sample, every second. */
function sampling(): void {
  const sample = (): void => {
    let fds = -1;
    let threads = -1;
    let rss = -1;
    try {
      fds = readdirSync('/proc/self/fd').length;
      threads = readdirSync('/proc/self/task').length;
      rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? -1);
    } catch {
      /* a sample missed */
    }
    log(`m ${fds} ${threads} ${rss}`);
  };
  sample();
  setInterval(sample, 1000);
}

function got(m: Uint8Array, deliveries?: number): { producer: number; seq: number } | undefined {
  try {
    const { producer, seq } = checkMessage(m);
    log(deliveries === undefined ? `r ${producer} ${seq}` : `r ${producer} ${seq} ${deliveries}`);
    return { producer, seq };
  } catch (e) {
    log(`c ${(e as Error).message}`);
    return undefined;
  }
}

interface Out {
  send(m: Uint8Array): Promise<unknown>;
  /** Resolves once what was sent is in the kernel (streams: out of our buffer). */
  flush?(): Promise<void>;
  close(): Promise<unknown>;
}

/** A sender: opens, sends a random number of messages in small confirmed batches, closes, again. */
async function sender(open: () => Promise<Out>): Promise<void> {
  let seq = 0;
  for (;;) {
    let out: Out | undefined;
    try {
      out = await open();
      const count = 20 + random(400);
      for (let i = 0; i < count; ) {
        const batch = 1 + random(16);
        const first = seq;
        const sends: Promise<unknown>[] = [];
        for (let j = 0; j < batch; j++) sends.push(out.send(makeMessage(id, seq++, size())));
        await Promise.all(sends);
        if (out.flush) await out.flush();
        for (let n = first; n < seq; n++) log(`s ${id} ${n}`);
        i += batch;
        if (random(4) === 0) await sleep(1 + random(5));
      }
    } catch (e) {
      log(`e ${code(e)}`);
      await sleep(20 + random(100));
    } finally {
      await out?.close().catch(() => {});
    }
  }
}

/** A receiver over endpoints that it closes and reopens now and then (persistent objects). */
async function receiver<R>(open: () => Promise<R>, take: (r: R) => Promise<Uint8Array[]>, close: (r: R) => Promise<unknown>): Promise<void> {
  sampling();
  for (;;) {
    let r: R | undefined;
    try {
      r = await open();
      const until = Date.now() + 1000 + random(4000);
      while (Date.now() < until) {
        const ms = await take(r).catch((e: unknown) => {
          if (code(e) === 'ERR_IPCKIT_TIMEOUT') return [];
          throw e;
        });
        for (const m of ms) got(m);
      }
    } catch (e) {
      log(`e ${code(e)}`);
      await sleep(50);
    } finally {
      if (r !== undefined) await close(r).catch(() => {});
    }
  }
}

/** A stream receiver: reads one connection (or one writer) to its end. */
async function drain(ch: { receive(o?: { timeout?: number }): Promise<Uint8Array> }): Promise<void> {
  for (;;) {
    let m: Uint8Array;
    try {
      m = await ch.receive();
    } catch (e) {
      if (code(e) !== 'ERR_IPCKIT_CLOSED') log(`e ${code(e)}`); // CLOSED: the writer ended
      return;
    }
    got(m);
  }
}

const wait = { timeout: 1000 };

switch (`${mech} ${role}`) {
  case 'pipe send': {
    // The child of a pipe receiver: our stdout is the pipe.
    const w = openInheritedPipe(1, 'write', { maxMessageBytes: max });
    let seq = 0;
    const count = 20 + random(2000);
    while (seq < count) {
      const first = seq;
      const batch = 1 + random(16);
      for (let j = 0; j < batch; j++) await w.send(makeMessage(id, seq++, size()));
      await w.flush();
      for (let n = first; n < seq; n++) log(`s ${id} ${n}`);
    }
    await w.close(); // the end: the receiver starts another sender
    break;
  }
  case 'pipe receive': {
    sampling();
    // SIGUSR2: the soak is calming down; the sender child of the moment is the last.
    let calm = false;
    process.on('SIGUSR2', () => (calm = true));
    for (let child = 0; !calm; child++) {
      const sid = id * 100_000 + child; // each sender child has its own number
      try {
        const r = popen([process.execPath, process.argv[1]!, 'pipe', 'send', '-', String(sid), String(random(2 ** 31))], 'read', { maxMessageBytes: max, stderr: 'inherit' });
        log(`k ${r.pid}`);
        await drain(r);
        await r.close().catch(() => {});
      } catch (e) {
        log(`e ${code(e)}`);
        await sleep(50);
      }
    }
    for (;;) await sleep(1000); // until the soak ends us
  }
  case 'fifo send':
    await sender(() => openFifo(target, 'write', { maxMessageBytes: max, timeout: 5000, atomic: true }));
    break;
  case 'fifo receive':
    sampling();
    for (;;) {
      try {
        const r = await openFifo(target, 'read', { maxMessageBytes: max });
        await drain(r);
        await r.close();
      } catch (e) {
        log(`e ${code(e)}`);
        await sleep(50);
      }
    }
  case 'socket send':
  case 'seqpacket send':
    await sender(() => connect(target, { maxMessageBytes: max, timeout: 5000 }) as Promise<SocketChannel<Uint8Array>>);
    break;
  case 'socket receive':
  case 'seqpacket receive': {
    sampling();
    const server = await listen(target, { maxMessageBytes: max });
    for (;;) {
      const ch = await server.accept();
      void drain(ch).finally(() => ch.close().catch(() => {}));
    }
  }
  case 'mqueue send':
    await sender(() => openMessageQueue(target, 'write'));
    break;
  case 'mqueue receive':
    await receiver(
      () => openMessageQueue(target, 'read'),
      (q) => q.receiveMany(64, wait),
      (q) => q.close(),
    );
    break;
  case 'sysv send':
    await sender(() => openSysvMessageQueue({ id: Number(target.slice(3)) }) /* target: id:N */);
    break;
  case 'sysv receive':
    await receiver(
      () => openSysvMessageQueue({ id: Number(target.slice(3)) }) /* target: id:N */,
      (q) => q.receiveMany(64, wait),
      (q) => q.close(),
    );
    break;
  case 'ring send':
    await sender(async () => {
      const ring = await openRing(target);
      try {
        const tx = await ring.sender();
        return { send: (m) => tx.send(m), close: () => tx.close() };
      } finally {
        ring.close(); // the sender keeps its own mapping
      }
    });
    break;
  case 'ring receive':
    await receiver(
      async () => {
        const ring = await openRing(target);
        try {
          return await ring.receiver();
        } finally {
          ring.close();
        }
      },
      (rx) => rx.receiveMany(64, wait),
      (rx) => rx.close(),
    );
    break;
  case 'workqueue send':
    await sender(async () => {
      const q = await openWorkQueue(target);
      return { send: (m) => q.put(m), close: () => q.close() };
    });
    break;
  case 'workqueue receive': {
    // Consumers may be killed: every take is logged before its ack.
    sampling();
    for (;;) {
      const q = await openWorkQueue(target).catch((e: unknown) => {
        log(`e ${code(e)}`);
        return undefined;
      });
      if (!q) {
        await sleep(50);
        continue;
      }
      try {
        const until = Date.now() + 1000 + random(4000);
        while (Date.now() < until) {
          const jobs = await q.takeMany(16, wait).catch((e: unknown) => {
            if (code(e) === 'ERR_IPCKIT_TIMEOUT') return [];
            throw e;
          });
          for (const job of jobs) {
            const m = got(job.data as Uint8Array, job.deliveries);
            if (random(50) === 0) await sleep(1 + random(20)); // work in hand when a kill comes
            q.ack(job);
            if (m) log(`d ${m.producer} ${m.seq}`);
          }
        }
      } catch (e) {
        log(`e ${code(e)}`);
      } finally {
        await q.close().catch(() => {});
      }
    }
  }
  default:
    process.stderr.write(`soak-peer: unknown ${mech} ${role}\n`);
    process.exit(2);
}
