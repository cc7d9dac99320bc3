/**
 * The baselines: what a Node user has today, measured in the same run.
 * - process.send: child_process.fork + process.send (json serialization), backpressure
 *   by waiting for send's callback when it returns false.
 * - stdio framing: a child's stdin/stdout with a hand-written u32 length prefix, one
 *   write() per message, waiting for 'drain'.
 * Round trips are pinned like ours (bench/placement.ts), so the ratios compare like with like.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BaselinePeer, frame, FrameSplitter } from './framing.js';
import { deliveredOf, receiverCost } from './streams.js';
import { fullLengthBudget, DeliveryClock, endChild, KeptPeers, now, type KeptPeer, RateMeter, RttMeter, senderFigure, sizesOf, type BenchContext, type Delivered, type Figure, type Scenario } from './harness.js';
import { pinnedPair } from './placement.js';

const childScript = fileURLToPath(new URL('./child.js', import.meta.url));

function onceMessage(child: ChildProcess): Promise<any> {
  return new Promise((resolve) => child.once('message', resolve));
}

/** A forked child for process.send, up once it has said it is ready. */
async function startFork(): Promise<ForkPeer> {
  const child = fork(childScript, ['node', 'forkPeer', '{}'], { serialization: 'json', stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  // A child gone between two sends must fail the figure, not the bench (no listener: an 'error' event throws).
  child.on('error', () => {});
  const exited = new Promise<void>((r) => child.once('exit', () => r())); // its IPC has no end of stream to wait on
  try {
    await Promise.race([onceMessage(child), new Promise((_, reject) => child.once('exit', (code) => reject(new Error(`the process.send child exited (${code}) before it was ready`))))]);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return { child, pid: child.pid!, exited, end: () => endChild(child, () => (child.connected ? child.disconnect() : child.kill())) };
}

interface ForkPeer extends KeptPeer {
  child: ChildProcess;
}

/**
 * The baselines' children, one per size and kind, kept from the case's first round to the
 * end of the run as ours are (bench/streams.ts startedTogether): a fresh child's
 * process.send one-way rate sat at ~0.7 of its later rate for its first 0.25 s.
 */
const forks = new KeptPeers<ForkPeer>();
const stdios = new KeptPeers<StdioChild>();

async function forkFigures(ctx: BenchContext, size: number): Promise<Figure[]> {
  const budget = ctx.budget;
  const d = 'x'.repeat(size);
  return forks.use(String(size), startFork, async ({ child }) => {
    const meter = new RttMeter(fullLengthBudget(budget));
    await pinnedPair(ctx, child.pid!, async () => {
      for (let i = 0; ; i++) {
        const t0 = now();
        const reply = onceMessage(child);
        child.send({ s: i, d, echo: true });
        await reply;
        const t1 = now();
        if (meter.add(Number(t1 - t0))) break;
      }
    });
    const rtt = meter.result(); // as its round trips end (it probes the CPUs' distance)
    ctx.progress(`process.send one-way ${size} B`);
    const tmeter = new RateMeter(fullLengthBudget(budget));
    let n = 0;
    for (;; n++) {
      const m = { s: tmeter.seq(n), d };
      if (!child.send(m)) await new Promise<void>((r) => child.send({ ping: 1 }, () => r()));
      if ((n & 63) === 63 && tmeter.tick(n + 1)) {
        n++;
        break;
      }
    }
    const ack = onceMessage(child);
    child.send({ s: -1 });
    const got = (await ack) as { n: number; delivered?: Delivered };
    const measured = tmeter.result(n, got.delivered);
    if (got.n !== n) throw new Error(`process.send baseline lost messages: ${got.n} of ${n}`);
    const base = { mechanism: 'node', variant: 'process.send', role: 'node' as const, size };
    return [{ ...base, metric: 'rtt', ...rtt }, senderFigure(base, measured)];
  }, budget.keepPeers);
}

/** Yields the payloads of the length-prefixed frames of a stream. */
async function* frames(stream: NodeJS.ReadableStream): AsyncGenerator<Buffer> {
  const splitter = new FrameSplitter();
  for await (const chunk of stream as AsyncIterable<Buffer>) yield* splitter.push(chunk);
}

interface StdioChild extends KeptPeer {
  child: ChildProcess;
  incoming: AsyncGenerator<Buffer>;
  write(b: Buffer): Promise<void>;
}

async function startStdio(): Promise<StdioChild> {
  const child = spawn(process.execPath, [childScript, 'node', 'stdioPeer', '{}'], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdin!.on('error', () => {}); // a child gone fails the figure (its echo never comes), not the bench
  return {
    child,
    pid: child.pid!,
    incoming: frames(child.stdout!),
    write: async (b: Buffer): Promise<void> => {
      if (!child.stdin!.write(frame(b))) await new Promise((r) => child.stdin!.once('drain', r));
    },
    end: () => endChild(child, () => child.stdin!.end()),
  };
}

async function stdioFigures(ctx: BenchContext, size: number): Promise<Figure[]> {
  const budget = ctx.budget;
  return stdios.use(String(size), startStdio, async ({ child, incoming, write }) => {
    ctx.progress(`stdio framing RTT ${size} B`);
    const payload = Buffer.alloc(Math.max(8, size), 120);
    const meter = new RttMeter(fullLengthBudget(budget));
    await pinnedPair(ctx, child.pid!, async () => {
      for (let i = 0; ; i++) {
        const t0 = now();
        payload.writeDoubleLE(i, 0);
        await write(payload);
        const r = await incoming.next();
        const t1 = now();
        if (r.done || r.value.readDoubleLE(0) !== i) throw new Error('stdio baseline echo mismatch');
        if (meter.add(Number(t1 - t0))) break;
      }
    });
    const rtt = meter.result(); // as its round trips end (it probes the CPUs' distance)
    ctx.progress(`stdio framing one-way ${size} B`);
    payload.writeDoubleLE(-3, 0); // switch the child to counting
    await write(payload);
    const tmeter = new RateMeter(budget);
    let n = 0;
    for (;; n++) {
      payload.writeDoubleLE(tmeter.seq(n), 0);
      await write(payload);
      if ((n & 63) === 63 && tmeter.tick(n + 1)) {
        n++;
        break;
      }
    }
    payload.writeDoubleLE(-1, 0); // the count; the child is back to echoing
    await write(payload);
    const ack = await incoming.next();
    const measured = tmeter.result(n, ack.done ? undefined : deliveredOf(ack.value));
    if (ack.done || ack.value.readDoubleLE(0) !== n) throw new Error('stdio baseline lost messages');
    const base = { mechanism: 'node', variant: 'stdio framing', role: 'node' as const, size };
    return [{ ...base, metric: 'rtt', ...rtt }, senderFigure(base, { ...measured, ...receiverCost(ack.value, n) })];
  }, budget.keepPeers);
}

export const scenarios: Scenario[] = [
  {
    name: 'node',
    title: 'Node baselines (process.send, stdio framing)',
    async run(ctx) {
      const out: Figure[] = [];
      for (const size of sizesOf(ctx)) {
        ctx.progress(`Node baselines ${size} B`);
        out.push(...(await forkFigures(ctx, size)), ...(await stdioFigures(ctx, size)));
      }
      return out;
    },
    async close() {
      await forks.close();
      await stdios.close();
    },
  },
];

export const children = {
  async forkPeer(): Promise<void> {
    let n = 0;
    let clock = new DeliveryClock();
    process.on('message', (m: { s?: number; d?: string; echo?: boolean; ping?: number }) => {
      if (m.echo) process.send!(m);
      else if (m.s === -1) {
        process.send!({ n, delivered: clock.reading(n) });
        n = 0; // kept for the next round: its count starts again
        clock = new DeliveryClock();
      } else if (m.s === n || (m.s !== undefined && clock.mark(m.s, n))) n++; // not a ping (the sender's wait for send's callback)
    });
    process.on('disconnect', () => process.exit(0));
    process.send!('ready');
  },
  async stdioPeer(): Promise<void> {
    const peer = new BaselinePeer();
    for await (const m of frames(process.stdin)) {
      const answer = peer.take(m);
      if (answer && !process.stdout.write(answer)) await new Promise((r) => process.stdout.once('drain', r));
    }
  },
};
