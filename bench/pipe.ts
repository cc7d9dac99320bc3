/** Bench: anonymous pipe(2) between a parent and a child, against the C reference. */
import { openInheritedPipe, spawnWithPipes } from '../src/mechanisms/pipe/pipe.js';
import { cFigures, KeptPeers, seqOf, stamp, streamRttTargets, SIZES, sizesOf, senderFigure, type BenchContext, type Figure, type Scenario } from './harness.js';
import { cPlacement, pinnedPair } from './placement.js';
import { echoLoop, RECEIVE_INTO_VARIANT, rttLoop, sinkRuns, startedTogether, streamCases, throughputLoop, type StreamCase } from './streams.js';
import { fileURLToPath } from 'node:url';

const childScript = fileURLToPath(new URL('./child.js', import.meta.url));
/** 1 MiB pipes (the default pipe-max-size): a 64 KiB message no longer fills the pipe. */
const CAPACITY = 1024 * 1024;

/** The pipe case's peers, kept from its first round to the end of the run (startedTogether). */
const kept = new KeptPeers<Peer>();

export async function measurePipe(ctx: BenchContext, mechanism: string, variant: string, sizes = sizesOf(ctx)): Promise<Figure[]> {
  const out: Figure[] = [];
  for (const size of sizes) {
    ctx.progress(`${mechanism}: starting the peers for ${size} B`);
    await startedTogether(streamCases(size), (role) => peer(size, role), async (role, { tx, rx, pid }) => {
      ctx.progress(`${mechanism}: ${variant} ${role === 'sink' ? 'one-way' : role === 'echo' ? 'RTT' : 'RTT (receiveInto)'} ${size} B`);
      if (role !== 'sink') {
        const l = await pinnedPair(ctx, pid, () => rttLoop(tx, rx, size, ctx.budget, role === 'echoInto'));
        out.push({ mechanism, variant: role === 'echoInto' ? RECEIVE_INTO_VARIANT : variant, role: 'ipckit', metric: 'rtt', size, ...l });
      } else {
        const t = await throughputLoop(tx, rx, size, ctx.budget);
        out.push(senderFigure({ mechanism, variant, role: 'ipckit', size }, t));
      }
    }, kept, String(size), ctx.budget.keepPeers);
  }
  return out;
}

type Peer = Awaited<ReturnType<typeof peer>>;

/**
 * A child with a pipe each way, returned once it is up: an echo child has answered one
 * round trip, a sink child has said it is ready. The child makes its ends as it starts,
 * and each end's spin default comes from the CPUs the process may use then: pinned before
 * that, the child took itself for a one-CPU process and never spun (round trips of 53 µs
 * where the FIFO's, whose child is up before it is pinned, took 3 µs).
 */
async function peer(size: number, role: StreamCase) {
  const child = spawnWithPipes([process.execPath, childScript, 'pipe', role === 'sink' ? 'sink' : 'echo', JSON.stringify({ into: role === 'echoInto' })], {
    pipes: { 3: 'write', 4: 'read' },
    capacityBytes: CAPACITY,
  });
  const tx = child.sender(3);
  const rx = child.receiver(4);
  try {
    if (role === 'sink') {
      if (seqOf(await rx.receive()) !== READY) throw new Error('the sink child did not say it was ready');
    } else {
      await tx.send(stamp(new Uint8Array(Math.max(size, 8)), 0));
      await rx.receive();
    }
  } catch (e) {
    await child.close().catch(() => {});
    throw e;
  }
  return { tx, rx, pid: child.pid, end: async () => void (await child.close()) };
}

/** What a sink child sends first. */
const READY = -2;

export const scenarios: Scenario[] = [
  {
    name: 'pipe',
    title: 'anonymous pipe',
    async run(ctx) {
      return [...(await measurePipe(ctx, 'pipe', 'ipckit')), ...cFigures(ctx, 'pipe', 'pipe', 'C pipe(2)', sizesOf(ctx), [], cPlacement(ctx).cArgs)];
    },
    close: () => kept.close(),
    targets: [
      { mechanism: 'pipe', metric: 'throughput', size: 64, minMsgsPerSec: 1_000_000, text: 'pipe one-way at 64 B >= 1,000,000 msg/s' },
      { mechanism: 'pipe', metric: 'throughput', size: 65536, minMBPerSec: 2000, text: 'pipe one-way at 64 KiB >= 2 GB/s' },
      ...streamRttTargets('pipe', 'C pipe(2)', 'pipe'),
    ],
  },
];

export const children = {
  async echo(args: { into?: boolean }): Promise<void> {
    const rx = openInheritedPipe(3, 'read');
    const tx = openInheritedPipe(4, 'write');
    await echoLoop(rx, tx, args.into === true);
    await tx.close();
    await rx.close();
  },
  async sink(): Promise<void> {
    const rx = openInheritedPipe(3, 'read');
    const tx = openInheritedPipe(4, 'write');
    await tx.send(stamp(new Uint8Array(8), READY));
    await sinkRuns(rx, tx);
    await tx.close();
    await rx.close();
  },
};
