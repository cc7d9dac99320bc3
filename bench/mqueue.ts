/**
 * Bench: POSIX message queues between a parent and a child, one queue per direction,
 * against the C reference (bench/c/mqueue.c, one blocking mq_send per message).
 *
 * Sizes: 64 B, 1 KiB and the largest message the kernel allows here (msgsize_max, and
 * two queues of 10 must fit in RLIMIT_MSGQUEUE); what cannot be measured is noted.
 * Variants: `send()` per message, and `sendMany()` (one native call per batch, still one
 * mq_send per message). The receiving child uses `receiveMany()` in both.
 */
import { RESOLVED } from '../src/core/channel.js';
import { createMessageQueue, messageQueueBytes, messageQueueLimits, openMessageQueue, unlinkMessageQueue, type MessageQueue, type MessageQueueReceiver, type MessageQueueSender } from '../src/mechanisms/mqueue/mqueue.js';
import { benchPrefix, cFigure, KeptPeers, RateMeter, runC, seqOf, sizesOf, stamp, startChild, tell, senderFigure, type BenchChild, type Budget, type BenchContext, type Figure, type KeptPeer, type Scenario } from './harness.js';
import { cPlacement, CROSS, pin, placements, SCHEDULER, withPlacement, type Placement } from './placement.js';
import { deliveredOf, echoLoop, receiverCost, rttLoop, sinkRuns, stopMessage, throughputLoop, type ReceiverCost } from './streams.js';

/** Queue depth: what fs.mqueue.msg_max allows, up to this (bench/c/mqueue.c chooses the same). */
const MAX_MESSAGES = 256;
const MQ_CAUSE =
  "each message is one mq_send and one mq_receive, and a queue holds fs.mqueue.msg_max messages (10 by default; the notes give the depth): the sender finds it full every 10 messages and sleeps until a cross-CPU wake-up when the receiver does not make room within spinMicros (20 us). Measured with perf on a 2-vCPU AMD EPYC VM (0.78-0.81M msg/s, C 1.21M): each side busy about 1.2 us per message, 0.85-0.95 us of it in the kernel's mq_send/mq_receive (the queue's lock, a wake-up of its pollers on every call, a msg_msg allocation), the rest JavaScript and the native call. See C's row (the same system calls, blocking); a miss with C far ahead means the receiver lost its CPU (other jobs) or the sides shared one CPU";
const C_VARIANT = 'C mq_send/mq_receive';

/** Sizes to measure and notes about those that cannot be. */
function plan(): { sizes: number[]; depth: (size: number) => number; notes: string[] } {
  const limits = messageQueueLimits();
  const notes: string[] = [];
  const rlimit = limits.rlimitMsgqueue.soft;
  // Per size: as deep as fs.mqueue.msg_max allows (up to MAX_MESSAGES) while two queues,
  // one per direction, fit in RLIMIT_MSGQUEUE; never below the kernel's default of 10.
  const depth = (size: number): number => {
    let d = Math.min(MAX_MESSAGES, limits.msgMax);
    while (d > 10 && 2 * messageQueueBytes(d, size) > rlimit) d = Math.floor(d / 2);
    return d;
  };
  const floor = Math.min(10, limits.msgMax);
  let largest = limits.msgsizeMax;
  while (largest > 64 && 2 * messageQueueBytes(floor, largest) > rlimit) largest = Math.floor(largest / 2);
  if (largest < 65536) {
    const why: string[] = [];
    if (limits.msgsizeMax < 65536) why.push(`fs.mqueue.msgsize_max is ${limits.msgsizeMax} (raising it needs root: sysctl fs.mqueue.msgsize_max=65536)`);
    if (2 * messageQueueBytes(floor, 65536) > rlimit) {
      why.push(`two queues of ${floor} x 64 KiB need ${2 * messageQueueBytes(floor, 65536)} bytes of RLIMIT_MSGQUEUE, which is ${rlimit} (hard ${limits.rlimitMsgqueue.hard}; raising it needs CAP_SYS_RESOURCE)`);
    }
    notes.push(`mqueue: 64 KiB messages not measured: ${why.join('; ')}. The largest size measured is ${largest} B.`);
  }
  const sizes = [64, 1024, largest].filter((s, i, a) => s <= largest && a.indexOf(s) === i);
  const depths = sizes.map((s) => `${depth(s)} at ${s} B`).join(', ');
  notes.push(
    `mqueue: queue depth ${depths}, for ipckit and C alike (fs.mqueue.msg_max is ${limits.msgMax}${limits.msgMax < MAX_MESSAGES ? `; as root, sysctl fs.mqueue.msg_max=${MAX_MESSAGES} lets a sender run further ahead of its receiver` : ''})`,
  );
  return { sizes, depth, notes };
}

let counter = 0;

/** A child with a queue each way, up once it has opened both (their names are then unlinked: nothing is left behind). */
interface QueuePeer extends KeptPeer {
  tx: MessageQueue;
  rx: MessageQueueReceiver;
}

async function startQueues(size: number, maxMessages: number, role: 'echo' | 'sink', placement: Placement): Promise<QueuePeer> {
  const base = `/${benchPrefix()}${++counter}`;
  const to = `${base}-to`;
  const from = `${base}-from`;
  const tx = createMessageQueue(to, { maxMessages, maxMessageBytes: Math.max(size, 8) });
  let rx: MessageQueueReceiver | undefined;
  let child: BenchChild | undefined;
  const close = async (): Promise<void> => {
    try {
      await child?.finish();
    } finally {
      await tx.close();
      await rx?.close();
      unlinkMessageQueue(to);
      unlinkMessageQueue(from);
    }
  };
  try {
    rx = createMessageQueue(from, { maxMessages, maxMessageBytes: Math.max(size, 8) });
    child = startChild('mqueue', role, { to, from });
    await child.nextLine(); // the child has opened both
    pin(child.child.pid!, placement.childCpu); // only now: see pin() in placement.ts
    unlinkMessageQueue(to);
    unlinkMessageQueue(from);
  } catch (e) {
    await close().catch(() => {});
    throw e;
  }
  return {
    tx,
    rx,
    pid: child.child.pid!,
    exited: child.exited,
    end: async () => {
      // A queue has no end of stream: tell the child to stop.
      await tx.send(stopMessage(size, role), { timeout: 1000 }).catch(() => {});
      await close();
    },
  };
}

/** The case's queue peers, one per size, placement and kind of figure (streams.ts startedTogether says why they are kept). */
const kept = new KeptPeers<QueuePeer>();

/**
 * Whether this run keeps its queue peers from round to round: a quick one (Budget.keepPeers)
 * does, while its kept queues (per size, an echo per placement and two sinks, each with a
 * queue each way) leave the C reference's two queues room in RLIMIT_MSGQUEUE, which counts
 * every open queue's bytes: a full run that kept the queues of all three sizes (an
 * experiment) could not measure C's at 8 KiB (EMFILE).
 */
function keepsQueues(ctx: BenchContext, sizes: number[], depth: (size: number) => number, placementCount: number): boolean {
  if (!ctx.budget.keepPeers) return false;
  const pairBytes = (s: number): number => 2 * messageQueueBytes(depth(s), Math.max(s, 8));
  const keptBytes = sizes.reduce((a, s) => a + (placementCount + 2) * pairBytes(s), 0);
  const cBytes = Math.max(...sizes.map(pairBytes));
  const rlimit = messageQueueLimits().rlimitMsgqueue.soft;
  if (keptBytes + cBytes <= rlimit) return true;
  ctx.note(`mqueue: peers start afresh each round: kept, their queues would need ${keptBytes} bytes of RLIMIT_MSGQUEUE (${rlimit}) beside the C reference's ${cBytes}`);
  return false;
}

/** Measures `body` with the peer kept under `key`, kept to the end of the run when `keep`. */
function withQueues<R>(key: string, size: number, maxMessages: number, role: 'echo' | 'sink', keep: boolean, body: (tx: MessageQueue, rx: MessageQueueReceiver) => Promise<R>, placement: Placement = SCHEDULER): Promise<R> {
  return kept.use(key, () => startQueues(size, maxMessages, role, placement), ({ tx, rx }) => withPlacement(placement, () => body(tx, rx)), keep);
}

/** One-way with sendMany: batches of `batch` distinct buffers, each stamped with its sequence number. */
async function batchThroughputLoop(tx: MessageQueue, ack: MessageQueueReceiver, size: number, budget: Budget, batch = 256): Promise<ReturnType<RateMeter['result']> & { receiver?: ReceiverCost }> {
  const bufs = Array.from({ length: batch }, () => new Uint8Array(Math.max(size, 8)).fill(120));
  const meter = new RateMeter(budget);
  let n = 0;
  for (;;) {
    const k = batch;
    for (let i = 0; i < k; i++) stamp(bufs[i]!, meter.seq(n + i));
    const p = tx.sendMany(k === batch ? bufs : bufs.slice(0, k));
    if (p !== RESOLVED) await p;
    n += k;
    if (meter.tick(n)) break;
  }
  await tx.send(stamp(new Uint8Array(Math.max(size, 8)), -1));
  const reply = await ack.receive();
  if (seqOf(reply) !== n) throw new Error(`the receiver counted ${seqOf(reply)} messages, ${n} were sent`);
  return { ...meter.result(n, deliveredOf(reply)), ...receiverCost(reply, n) };
}

async function measure(ctx: BenchContext, sizes: number[], depth: (size: number) => number): Promise<Figure[]> {
  const out: Figure[] = [];
  const bin = ctx.cProgram('mqueue');
  const measured = sizesOf(ctx, sizes);
  const places = placements(ctx, 'mqueue');
  const keep = keepsQueues(ctx, measured, depth, places.length);
  for (const size of measured) {
    for (const placement of places) {
      const mechanism = `mqueue${placement.suffix}`;
      ctx.progress(`${mechanism}: RTT ${size} B`);
      const l = await withQueues(`${size}:${mechanism}:echo`, size, depth(size), 'echo', keep, (tx, rx) => rttLoop(tx, rx, size, ctx.budget), placement);
      out.push({ mechanism, variant: 'ipckit', role: 'ipckit', metric: 'rtt', size, ...l });
      if (bin) out.push(cFigure(mechanism, C_VARIANT, 'rtt', size, runC(bin, 'lat', size, ctx.budget, placement.cArgs)));
    }
    ctx.progress(`mqueue: one-way ${size} B`);
    const t = await withQueues(`${size}:send`, size, depth(size), 'sink', keep, (tx, rx) => throughputLoop(tx, rx, size, ctx.budget));
    out.push(senderFigure({ mechanism: 'mqueue', variant: 'ipckit', role: 'ipckit', size }, t));
    ctx.progress(`mqueue: one-way sendMany ${size} B`);
    const b = await withQueues(`${size}:sendMany`, size, depth(size), 'sink', keep, (tx, rx) => batchThroughputLoop(tx, rx, size, ctx.budget));
    out.push(senderFigure({ mechanism: 'mqueue', variant: 'ipckit sendMany', role: 'ipckit', size }, b));
    if (bin) {
      ctx.progress(`mqueue: C one-way ${size} B`);
      out.push(cFigure('mqueue', C_VARIANT, 'throughput', size, runC(bin, 'thr', size, ctx.budget, cPlacement(ctx).cArgs)));
    }
  }
  return out;
}

const planned = plan();

export const scenarios: Scenario[] = [
  {
    name: 'mqueue',
    title: 'POSIX message queue',
    async run(ctx) {
      const { sizes, depth, notes } = plan();
      for (const n of notes) ctx.note(n);
      return measure(ctx, sizes, depth);
    },
    close: () => kept.close(),
    targets: [
      { mechanism: 'mqueue', variant: 'ipckit', metric: 'throughput', size: 64, minMsgsPerSec: 600_000, text: 'mqueue one-way at 64 B, send() per message >= 600,000 msg/s', ifMissed: MQ_CAUSE },
      { mechanism: 'mqueue', variant: 'ipckit sendMany', metric: 'throughput', size: 64, minMsgsPerSec: 600_000, text: 'mqueue one-way at 64 B, sendMany() >= 600,000 msg/s', ifMissed: MQ_CAUSE },
      ...[CROSS].flatMap((p) =>
        planned.sizes.map((size) => ({
          mechanism: `mqueue${p.suffix}`,
          metric: 'rtt' as const,
          size,
          maxRatio: 1.3,
          compareTo: { variant: C_VARIANT },
          text: `mqueue RTT at ${size} B${p.suffix ? ` (${p.suffix.slice(2)})` : ''} <= 1.3x C (issue 14)`,
        })),
      ),
    ],
  },
];

async function openPair(args: { to: string; from: string }): Promise<{ rx: MessageQueueReceiver; tx: MessageQueueSender }> {
  const rx = await openMessageQueue(args.to, 'read');
  const tx = await openMessageQueue(args.from, 'write');
  tell({ ready: true });
  return { rx, tx };
}

export const children = {
  async echo(args: { to: string; from: string }): Promise<void> {
    const { rx, tx } = await openPair(args);
    await echoLoop(rx, tx);
    await tx.close();
    await rx.close();
  },
  async sink(args: { to: string; from: string }): Promise<void> {
    const { rx, tx } = await openPair(args);
    await sinkRuns(rx, tx);
    await tx.close();
    await rx.close();
  },
};

