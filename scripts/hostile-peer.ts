/**
 * The honest user in the hostile-peer campaign (scripts/hostile.ts): opens a shared-memory
 * object that a hostile process scribbles into, and uses it until its time is up, each
 * operation bounded by a short timeout. An object found corrupt is closed and opened again.
 * Prints one JSON line: how many operations, their outcomes by code, the exceptions that
 * were not IpcErrors (with the first message), and operations that overran their timeout.
 *
 *   node dist/scripts/hostile-peer.js KIND NAME SECONDS
 */
import {
  isIpcError,
  openBoundedPool,
  openMutex,
  openRing,
  openSharedValue,
  openWorkQueue,
  type RingReceiver,
  type RingSender,
} from '../src/index.js';

const [kind, name, secondsText] = process.argv.slice(2);
const OP_TIMEOUT = 100;
// An operation that takes this much longer than its timeout counts as a hang.
const HANG_SLACK_MS = 2000;

interface User {
  op(i: number): Promise<void>;
  close(): Promise<void>;
}

const payload = (i: number): Uint8Array => {
  const m = new Uint8Array(16 + (i % 200));
  m.fill(i & 0xff);
  return m;
};

async function open(): Promise<User> {
  const o = { timeout: 300 };
  switch (kind) {
    case 'ring': {
      const ring = await openRing(name!, o);
      let tx: RingSender<Uint8Array> | undefined;
      let rx: RingReceiver<Uint8Array> | undefined;
      try {
        tx = await ring.sender(o);
        rx = await ring.receiver(o);
      } finally {
        ring.close();
      }
      return {
        async op(i) {
          await tx!.send(payload(i), { timeout: OP_TIMEOUT });
          const m = await rx!.receive({ timeout: OP_TIMEOUT });
          if (!(m instanceof Uint8Array)) throw new Error('a message that is not bytes');
        },
        async close() {
          await tx!.close().catch(() => {});
          await rx!.close().catch(() => {});
        },
      };
    }
    case 'workqueue': {
      const q = await openWorkQueue(name!, o);
      return {
        async op(i) {
          await q.put(payload(i), { timeout: OP_TIMEOUT });
          const job = await q.take({ timeout: OP_TIMEOUT });
          q.ack(job);
        },
        close: () => q.close().catch(() => {}),
      };
    }
    case 'mutex': {
      const m = await openMutex(name!, o);
      return {
        async op() {
          await m.lock({ timeout: OP_TIMEOUT });
          m.unlock();
        },
        close: () => m.close().catch(() => {}),
      };
    }
    case 'pool': {
      const p = await openBoundedPool(name!, o);
      return {
        async op() {
          const permit = await p.acquire({ timeout: OP_TIMEOUT });
          permit.release();
        },
        close: () => p.close().catch(() => {}),
      };
    }
    case 'value': {
      const v = await openSharedValue(name!, o);
      return {
        async op(i) {
          await v.withLock(() => v.add(1), { timeout: OP_TIMEOUT });
          if (i % 8 === 0) await v.wait(-12345, { timeout: 1 });
        },
        async close() {
          v.close();
        },
      };
    }
    default:
      throw new Error(`unknown kind ${kind}`);
  }
}

const outcomes: Record<string, number> = {};
const foreign: string[] = [];
let operations = 0;
let hangs = 0;
let slowestMs = 0;
const count = (k: string): void => {
  outcomes[k] = (outcomes[k] ?? 0) + 1;
};
const classify = (e: unknown): void => {
  if (isIpcError(e)) count(e.code);
  else {
    count('not an IpcError');
    if (foreign.length < 5) foreign.push(String((e as Error)?.stack ?? e));
  }
};

const end = Date.now() + Number(secondsText) * 1000;
let user: User | undefined;
for (let i = 0; Date.now() < end; i++) {
  const t0 = Date.now();
  try {
    if (user === undefined) {
      operations++;
      user = await open();
      count('opened');
    }
    operations++;
    await user.op(i);
    count('ok');
  } catch (e) {
    classify(e);
    // Anything but a timeout: start over with a fresh handle (a corrupt object stays corrupt).
    if (!isIpcError(e, 'ERR_IPCKIT_TIMEOUT')) {
      await user?.close();
      user = undefined;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  const ms = Date.now() - t0;
  slowestMs = Math.max(slowestMs, ms);
  if (ms > 300 + OP_TIMEOUT + HANG_SLACK_MS) hangs++;
}
await user?.close();
process.stdout.write(`${JSON.stringify({ operations, outcomes, foreign, hangs, slowestMs })}\n`);
