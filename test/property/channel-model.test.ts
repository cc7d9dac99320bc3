/**
 * The Channel contract (docs/design.md, "the contract") as a model-based test with
 * fast-check: random sequences of commands (send, sendMany, receive, receiveMany, a
 * receive that times out, one that is aborted, close of the sender, receive after the
 * end) run against a real sender/receiver pair and against a model, a FIFO queue. After
 * every command the real pair must agree with the model: same messages, same order, each
 * once; a wait on an empty channel ends with ERR_IPCKIT_TIMEOUT or ERR_IPCKIT_ABORTED and
 * takes nothing; a closed sender refuses with ERR_IPCKIT_CLOSED; on a stream the receiver
 * gets everything sent before the close, then ERR_IPCKIT_CLOSED. Run on pipes, Unix stream
 * and seqpacket socket pairs, rings, POSIX and System V message queues. A failure is
 * shrunk to a smallest sequence of commands. IPCKIT_PROPERTY_RUNS (default 25 a
 * mechanism here: each run makes real objects) and IPCKIT_PROPERTY_SEED as in
 * codecs-framing.test.ts.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  createMessageQueue,
  createPipe,
  createRing,
  createSysvMessageQueue,
  IPC_PRIVATE,
  openMessageQueue,
  openSysvMessageQueue,
  removeSysvMessageQueue,
  socketPair,
  unlinkMessageQueue,
  unlinkRing,
} from '../../src/index.js';
import { checkFdLeaks, trackSysv, uniqueName, within } from '../helpers.js';

checkFdLeaks();
const runs = Number(process.env.IPCKIT_PROPERTY_RUNS ?? 25);
const seed = process.env.IPCKIT_PROPERTY_SEED === undefined ? undefined : Number(process.env.IPCKIT_PROPERTY_SEED);
const params = { numRuns: runs, ...(seed !== undefined ? { seed } : {}), ...(process.env.IPCKIT_PROPERTY_NO_SHRINK ? { endOnFailure: true } : {}) };

interface Tx {
  send(m: Uint8Array, o?: { timeout?: number }): Promise<void>;
  sendMany?(ms: Iterable<Uint8Array>, o?: { timeout?: number }): Promise<void>;
  close(): Promise<unknown>;
}
interface Rx {
  receive(o?: { timeout?: number; signal?: AbortSignal }): Promise<Uint8Array>;
  receiveMany(max?: number, o?: { timeout?: number }): Promise<Uint8Array[]>;
  close(): Promise<unknown>;
}
interface Real {
  tx: Tx;
  rx: Rx;
  /** Closes what is still open and removes the objects. */
  cleanup(): Promise<void>;
}
interface Mechanism {
  name: string;
  open(): Real;
  /** Messages it holds for certain without a reader (sends beyond would wait). */
  capacity: number;
  /** A stream: the receiver ends (ERR_IPCKIT_CLOSED) once the sender closed and all is read. */
  endsWhenSenderCloses: boolean;
}

interface Model {
  queue: Uint8Array[];
  txClosed: boolean;
}

const LONG = { timeout: 10_000 }; // a wait that must not time out (the machine may be slow)
const codeOf = async (p: Promise<unknown>): Promise<string> =>
  p.then(
    (v) => `resolved with ${JSON.stringify(v)}`,
    (e: { code?: string }) => e.code ?? String(e),
  );
const same = (a: Uint8Array, b: Uint8Array, what: string): void => assert.deepEqual(Buffer.from(a), Buffer.from(b), what);

/** Sends that fit what the mechanism holds without a reader (the model does not wait). */
const fits = (model: Readonly<Model>, mech: Mechanism, n: number): boolean => !model.txClosed && model.queue.length + n <= mech.capacity;

class Send implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly mech: Mechanism,
    readonly m: Uint8Array,
  ) {}
  check = (model: Readonly<Model>): boolean => fits(model, this.mech, 1);
  async run(model: Model, real: Real): Promise<void> {
    await real.tx.send(this.m, LONG);
    model.queue.push(this.m);
  }
  toString = (): string => `send(${this.m.length} B)`;
}
class SendMany implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly mech: Mechanism,
    readonly ms: Uint8Array[],
  ) {}
  check = (model: Readonly<Model>): boolean => fits(model, this.mech, this.ms.length);
  async run(model: Model, real: Real): Promise<void> {
    if (real.tx.sendMany) await real.tx.sendMany(this.ms, LONG);
    else await Promise.all(this.ms.map((m) => real.tx.send(m, LONG))); // unawaited sends keep their order
    model.queue.push(...this.ms);
  }
  toString = (): string => `sendMany(${this.ms.length})`;
}
class SendAfterClose implements fc.AsyncCommand<Model, Real> {
  check = (model: Readonly<Model>): boolean => model.txClosed;
  async run(_model: Model, real: Real): Promise<void> {
    assert.equal(await codeOf(real.tx.send(new Uint8Array([1]))), 'ERR_IPCKIT_CLOSED', 'a closed sender refuses');
  }
  toString = (): string => 'send after close';
}
class Receive implements fc.AsyncCommand<Model, Real> {
  check = (model: Readonly<Model>): boolean => model.queue.length > 0;
  async run(model: Model, real: Real): Promise<void> {
    same(await real.rx.receive(LONG), model.queue.shift()!, 'receive gives the oldest message');
  }
  toString = (): string => 'receive';
}
class ReceiveMany implements fc.AsyncCommand<Model, Real> {
  constructor(readonly max: number) {}
  check = (model: Readonly<Model>): boolean => model.queue.length > 0;
  async run(model: Model, real: Real): Promise<void> {
    const got = await real.rx.receiveMany(this.max, LONG);
    assert.ok(got.length >= 1 && got.length <= this.max, `receiveMany(${this.max}) gave ${got.length}`);
    for (const m of got) {
      assert.ok(model.queue.length > 0, 'receiveMany gave more than was sent');
      same(m, model.queue.shift()!, 'receiveMany gives the oldest messages, in order');
    }
  }
  toString = (): string => `receiveMany(${this.max})`;
}
/** Waits on an empty channel (still open): they end with their code and take nothing. */
const idle = (model: Readonly<Model>, mech: Mechanism): boolean => model.queue.length === 0 && !(model.txClosed && mech.endsWhenSenderCloses);
class TimesOut implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly mech: Mechanism,
    readonly ms: number,
  ) {}
  check = (model: Readonly<Model>): boolean => idle(model, this.mech);
  async run(_model: Model, real: Real): Promise<void> {
    assert.equal(await codeOf(real.rx.receive({ timeout: this.ms })), 'ERR_IPCKIT_TIMEOUT');
  }
  toString = (): string => `receive({ timeout: ${this.ms} })`;
}
class Aborted implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly mech: Mechanism,
    readonly ms: number,
  ) {}
  check = (model: Readonly<Model>): boolean => idle(model, this.mech);
  async run(_model: Model, real: Real): Promise<void> {
    const ac = new AbortController();
    const p = real.rx.receive({ signal: ac.signal });
    setTimeout(() => ac.abort(), this.ms);
    assert.equal(await codeOf(p), 'ERR_IPCKIT_ABORTED');
  }
  toString = (): string => `receive({ signal }) aborted after ${this.ms} ms`;
}
class CloseSender implements fc.AsyncCommand<Model, Real> {
  check = (model: Readonly<Model>): boolean => !model.txClosed;
  async run(model: Model, real: Real): Promise<void> {
    await real.tx.close();
    model.txClosed = true;
  }
  toString = (): string => 'close the sender';
}
class ReceiveAtEnd implements fc.AsyncCommand<Model, Real> {
  constructor(readonly mech: Mechanism) {}
  check = (model: Readonly<Model>): boolean => model.txClosed && this.mech.endsWhenSenderCloses && model.queue.length === 0;
  async run(_model: Model, real: Real): Promise<void> {
    assert.equal(await codeOf(real.rx.receive(LONG)), 'ERR_IPCKIT_CLOSED', 'the receiver ends after the last message');
  }
  toString = (): string => 'receive at the end';
}

function commands(mech: Mechanism): fc.Arbitrary<Iterable<fc.AsyncCommand<Model, Real>>> {
  const msg = fc.uint8Array({ minLength: 1, maxLength: 300 });
  return fc.commands(
    [
      msg.map((m) => new Send(mech, m)),
      fc.array(msg, { minLength: 1, maxLength: 4 }).map((ms) => new SendMany(mech, ms)),
      fc.constant(new SendAfterClose()),
      fc.constant(new Receive()),
      fc.integer({ min: 1, max: 5 }).map((n) => new ReceiveMany(n)),
      fc.integer({ min: 1, max: 15 }).map((ms) => new TimesOut(mech, ms)),
      fc.integer({ min: 0, max: 10 }).map((ms) => new Aborted(mech, ms)),
      fc.constant(new CloseSender()),
      fc.constant(new ReceiveAtEnd(mech)),
    ],
    { maxCommands: 30 },
  );
}

/** A command that never settles is a failure with its name (and the commands before it), not a hung suite. */
function watched(cmds: Iterable<fc.AsyncCommand<Model, Real>>): Iterable<fc.AsyncCommand<Model, Real>> {
  const list = [...cmds];
  for (const c of list) {
    if ((c as { watched?: boolean }).watched) continue;
    const run = c.run.bind(c);
    c.run = (model, real) => within(run(model, real), 20_000, `${c.toString()} (after ${list.slice(0, list.indexOf(c)).map(String).join(', ')})`);
    (c as { watched?: boolean }).watched = true;
  }
  return list;
}

const removals: Array<() => void> = [];
after(() => {
  for (const r of removals) {
    try {
      r();
    } catch {
      /* gone */
    }
  }
});

const MECHANISMS: Mechanism[] = [
  {
    name: 'pipe',
    capacity: 40,
    endsWhenSenderCloses: true,
    open() {
      const { reader, writer } = createPipe();
      return { tx: writer, rx: reader, cleanup: async () => void (await Promise.all([writer.close(), reader.close()])) };
    },
  },
  ...(['unix', 'unix-seqpacket'] as const).map(
    (kind): Mechanism => ({
      name: `${kind} socket pair`,
      capacity: 40,
      endsWhenSenderCloses: true,
      open() {
        const [a, b] = socketPair(kind);
        return { tx: a as unknown as Tx, rx: b as unknown as Rx, cleanup: async () => void (await Promise.all([a.close(), b.close()])) };
      },
    }),
  ),
  {
    name: 'ring',
    capacity: 40,
    endsWhenSenderCloses: true,
    open() {
      const name = uniqueName('model');
      const ring = createRing(name, { capacityBytes: 64 * 1024, maxMessageBytes: 1024 });
      removals.push(() => unlinkRing(name));
      const tx = ring.senderSync();
      const rx = ring.receiverSync();
      return {
        tx,
        rx,
        cleanup: async () => {
          await tx.close();
          await rx.close();
          ring.close();
          unlinkRing(name);
        },
      };
    },
  },
  {
    name: 'POSIX message queue',
    capacity: 10,
    endsWhenSenderCloses: false,
    open() {
      const name = uniqueName('model');
      createMessageQueue(name, { maxMessages: 10, maxMessageBytes: 1024 }).close();
      removals.push(() => unlinkMessageQueue(name));
      const tx = openMessageQueueSyncPair(name);
      return tx;
    },
  },
  {
    name: 'System V message queue',
    capacity: 40,
    endsWhenSenderCloses: false,
    open() {
      const q = createSysvMessageQueue(IPC_PRIVATE, { maxMessageBytes: 1024 });
      trackSysv('msg', q.id);
      const id = q.id;
      removals.push(() => removeSysvMessageQueue({ id }));
      let rx: Awaited<ReturnType<typeof openSysvMessageQueue>> | undefined;
      const ready = openSysvMessageQueue({ id }).then((r) => (rx = r));
      return {
        tx: q,
        rx: {
          receive: async (o) => (await ready, rx!.receive(o)),
          receiveMany: async (max, o) => (await ready, rx!.receiveMany(max, o)),
          close: async () => (await ready, rx!.close()),
        },
        cleanup: async () => {
          await ready;
          await q.close();
          await rx!.close();
          removeSysvMessageQueue({ id });
        },
      };
    },
  },
];

/** A POSIX queue opened twice: a write-only sender and a read-only receiver. */
function openMessageQueueSyncPair(name: string): Real {
  const tx = openMessageQueue(name, 'write');
  const rx = openMessageQueue(name, 'read');
  return {
    tx: { send: async (m, o) => (await tx).send(m, o), sendMany: async (ms, o) => (await tx).sendMany(ms, o), close: async () => (await tx).close() },
    rx: { receive: async (o) => (await rx).receive(o), receiveMany: async (max, o) => (await rx).receiveMany(max, o), close: async () => (await rx).close() },
    cleanup: async () => {
      await (await tx).close();
      await (await rx).close();
      unlinkMessageQueue(name);
    },
  };
}

describe('the Channel contract against a model queue', () => {
  for (const mech of MECHANISMS) {
    it(mech.name, { timeout: 600_000 }, async () => {
      await fc.assert(
        fc.asyncProperty(commands(mech), async (cmds) => {
          const real = mech.open();
          try {
            const model: Model = { queue: [], txClosed: false };
            await fc.asyncModelRun(() => ({ model, real }), watched(cmds));
            // The sender's close delivers what it holds (the receiver is still open); the
            // receiver's own close: a receive after it refuses.
            if (!model.txClosed) await within(real.tx.close(), 20_000, 'closing the sender');
            await within(real.rx.close(), 20_000, 'closing the receiver');
            assert.equal(await codeOf(real.rx.receive({ timeout: 1000 })), 'ERR_IPCKIT_CLOSED', 'a closed receiver refuses');
          } finally {
            await within(real.cleanup(), 20_000, 'cleanup');
          }
        }),
        params,
      );
    });
  }
});
