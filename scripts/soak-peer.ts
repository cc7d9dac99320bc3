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
 *   a P N          semaphore: sender P is about to post its N-th token (then `s P N` once posted)
 *   t              semaphore: a receiver took a token
 *   m FDS THREADS RSS_KB   a resource sample (receivers, every second)
 *
 * Usage: node dist/scripts/soak-peer.js MECH ROLE TARGET ID SEED
 *   MECH: pipe fifo socket seqpacket mqueue sysv ring workqueue nats signal semaphore mutex lock;
 *   ROLE: send | receive (mutex and lock: `send` is a worker that takes the lock);
 *   TARGET: the object (name, path, id:N; signal: the receiver's pid; mutex and lock:
 *   OBJECT|HOLDER, HOLDER a shared value naming who is inside); ID: the sender's number.
 *
 * Signals carry (ID mod 2^15) << 16 | N as their value, N < 2^16: a sender stops there.
 * The mutex and lock workers check mutual exclusion: inside, the holder value must be 0, or
 * name a process that died inside (the robust mutex must then say ownerDied); two live
 * processes inside at once is a `c` line (counted as corrupted).
 */
import { readdirSync, readFileSync, writeSync } from 'node:fs';
import { checkMessage, makeMessage } from '../test/fixtures/checked-message.js';
import {
  connect,
  isProcessAlive,
  listen,
  onSignal,
  droppedSignals,
  openFifo,
  openFileLock,
  openMutex,
  openNatsWorkQueue,
  openSemaphore,
  openSharedValue,
  sendSignal,
  openInheritedPipe,
  openMessageQueue,
  openRing,
  openSysvMessageQueue,
  openWorkQueue,
  popen,
  type SocketChannel,
  type WorkQueueContract,
} from '../src/index.js';
import { MAX_BYTES } from './soak-plan.js';
import { seededRandom } from './seeded.js';

const [mech, role, target, idArg, seedArg] = process.argv.slice(2) as [string, string, string, string, string];
const id = Number(idArg);
const random = seededRandom(Number(seedArg) ^ (id * 0x9e3779b1));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/**
 * One write per call (lines are far below PIPE_BUF, so a write is whole or nothing). The
 * pipe to the soak may be non-blocking and full when the soak falls behind: wait and retry.
 */
const pause = new Int32Array(new SharedArrayBuffer(4));
function writeLines(text: string): void {
  for (;;) {
    try {
      writeSync(2, text);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}
const log = (line: string): void => writeLines(`${line}\n`);
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
/** The soak's JetStream work queue: a job a killed consumer held comes back after 5 s. */
const NATS_QUEUE = { ackWait: 5000, maxDeliveries: 1_000_000 };

/** A work-queue consumer (shared memory or NATS), which may be killed: every take is logged before its ack. */
async function consumer(open: () => Promise<WorkQueueContract<Uint8Array>>): Promise<never> {
  sampling();
  for (;;) {
    const q = await open().catch((e: unknown) => {
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
        const done: string[] = [];
        for (const job of jobs) {
          const m = got(job.data as Uint8Array, job.deliveries);
          if (random(50) === 0) await sleep(1 + random(20)); // work in hand when a kill comes
          q.ack(job);
          if (m) done.push(`d ${m.producer} ${m.seq}`);
        }
        // Over NATS a job counts as acknowledged once the server confirmed it (docs/nats.md):
        // until then it is in hand, and a kill before the confirmation may bring it back.
        const flushAcks = (q as { flushAcks?: () => Promise<void> }).flushAcks;
        if (flushAcks) await flushAcks.call(q);
        for (const l of done) log(l);
      }
    } catch (e) {
      log(`e ${code(e)}`);
    } finally {
      await q.close().catch(() => {});
    }
  }
}
const SOAK_SIGNAL = 'SIGRTMIN+5';

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
  case 'workqueue receive':
    await consumer(() => openWorkQueue(target));
    break;
  case 'nats send':
    await sender(async () => {
      const q = openNatsWorkQueue(target, NATS_QUEUE);
      await q.ready();
      return { send: (m) => q.put(m, { timeout: 5000 }), close: () => q.close() };
    });
    break;
  case 'nats receive':
    await consumer(async () => {
      const q = openNatsWorkQueue(target, NATS_QUEUE);
      await q.ready();
      return q;
    });
    break;
  case 'signal send': {
    const pid = Number(target);
    const producer = id & 0x7fff;
    for (let seq = 0; seq < 0x10000; ) {
      const batch = 1 + random(16);
      try {
        for (let j = 0; j < batch && seq < 0x10000; j++, seq++) {
          sendSignal(pid, SOAK_SIGNAL, { value: (producer << 16) | seq });
          log(`s ${producer} ${seq}`);
        }
      } catch (e) {
        log(`e ${code(e)}`); // the receiver's queue is full (RLIMIT_SIGPENDING): back off
        await sleep(20 + random(100));
      }
      await sleep(1 + random(5));
    }
    for (;;) await sleep(1000); // all 2^16 sent: idle until killed
  }
  case 'signal receive': {
    sampling();
    onSignal(SOAK_SIGNAL, (info) => {
      if (info.value === undefined || info.code !== 'sigqueue') log(`c a delivery without a value (${info.code})`);
      else log(`r ${info.value >>> 16} ${info.value & 0xffff}`);
    }, { keepAlive: true });
    let dropped = 0;
    setInterval(() => {
      for (const now = droppedSignals(); dropped < now; dropped++) log('e DROPPED');
    }, 1000);
    break;
  }
  case 'semaphore send': {
    const sem = await openSemaphore(target);
    for (let seq = 0; ; ) {
      const batch = 1 + random(16);
      for (let j = 0; j < batch; j++, seq++) {
        log(`a ${id} ${seq}`);
        sem.post();
        log(`s ${id} ${seq}`);
      }
      await sleep(1 + random(5));
    }
  }
  case 'semaphore receive':
    sampling();
    for (;;) {
      const sem = await openSemaphore(target).catch((e: unknown) => {
        log(`e ${code(e)}`);
        return undefined;
      });
      if (!sem) {
        await sleep(50);
        continue;
      }
      try {
        const until = Date.now() + 1000 + random(4000);
        while (Date.now() < until) {
          try {
            await sem.wait(wait);
            log('t');
          } catch (e) {
            if (code(e) !== 'ERR_IPCKIT_TIMEOUT') throw e;
          }
        }
      } catch (e) {
        log(`e ${code(e)}`);
        await sleep(50);
      } finally {
        await sem.close();
      }
    }
  case 'mutex send':
  case 'lock send': {
    const [object, holderName] = target.split('|') as [string, string];
    const holder = await openSharedValue(holderName);
    const mutex = mech === 'mutex' ? await openMutex(object) : undefined;
    const file = mech === 'lock' ? await openFileLock(object) : undefined;
    /** A process named inside that is still alive (a dying one may need a moment to be seen dead). */
    const stillInside = async (pid: number): Promise<boolean> => {
      for (let i = 0; i < 40; i++) {
        if (!isProcessAlive(pid)) return false;
        await sleep(5);
      }
      return true;
    };
    for (let seq = 0; ; seq++) {
      try {
        let ownerDied = false;
        if (mutex) ownerDied = (await mutex.lock({ timeout: 5000 })).ownerDied;
        const held = file ? await file.lock({ timeout: 5000 }) : undefined;
        const before = holder.load() as number;
        if (before !== 0) {
          if (await stillInside(before)) log(`c ${process.pid} got the ${mech} while ${before} was inside and alive`);
          else if (mutex && !ownerDied) log(`c ${process.pid} got the mutex from ${before}, who died inside, without ownerDied`);
        }
        holder.store(process.pid);
        if (random(8) === 0) await sleep(random(3));
        holder.store(0);
        if (ownerDied) mutex!.markConsistent();
        mutex?.unlock();
        held?.release();
        writeLines(`s ${id} ${seq}\nr ${id} ${seq}\n`); // one write: a kill takes both lines or neither
      } catch (e) {
        log(`e ${code(e)}`);
        await sleep(20);
      }
      if (random(4) === 0) await sleep(1 + random(3));
    }
  }
  default:
    process.stderr.write(`soak-peer: unknown ${mech} ${role}\n`);
    process.exit(2);
}
