/**
 * Bench: named pipes (mkfifo) between a parent and a child that opens them by path, one
 * FIFO per direction, against the C reference (bench/c/fifo.c).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFifo, openFifo, unlinkFifo, type FifoReader } from '../src/mechanisms/fifo/fifo.js';
import { benchPrefix, cFigures, KeptPeers, streamRttTargets, SIZES, sizesOf, startChild, senderFigure, type BenchChild, type BenchContext, type Figure, type Scenario } from './harness.js';
import { cPlacement, pinnedPair } from './placement.js';
import { echoLoop, RECEIVE_INTO_VARIANT, rttLoop, sinkRuns, startedTogether, streamCases, throughputLoop, type StreamCase } from './streams.js';

/** 1 MiB FIFOs (the default pipe-max-size): a 64 KiB message no longer fills the pipe. */
const CAPACITY = 1024 * 1024;

interface Paths {
  down: string;
  up: string;
}

/**
 * The FIFO case's peers (startedTogether) and the private folder of their FIFOs, kept from
 * its first round to the end of the run, then removed (Scenario.close): the bench leaves
 * nothing in /tmp or the runtime folder.
 */
const kept = new KeptPeers<Peer>();
let folder: string | undefined;

async function closeKept(): Promise<void> {
  await kept.close();
  if (folder) rmSync(folder, { recursive: true, force: true });
  folder = undefined;
}

export async function measureFifo(ctx: BenchContext, sizes = sizesOf(ctx)): Promise<Figure[]> {
  const out: Figure[] = [];
  if (!folder) {
    const made = mkdtempSync(join(tmpdir(), benchPrefix()));
    folder = made;
    // A second Ctrl-C exits at once, without close(): the folder goes anyway.
    process.once('exit', () => rmSync(made, { recursive: true, force: true }));
  }
  await measureIn(ctx, folder, sizes, out);
  return out;
}

async function measureIn(ctx: BenchContext, dir: string, sizes: number[], out: Figure[]): Promise<void> {
  for (const size of sizes) {
    ctx.progress(`fifo: starting the peers for ${size} B`);
    await startedTogether(streamCases(size), (role) => peer(dir, size, role), async (role, { tx, rx, pid }) => {
      ctx.progress(`fifo: ${role === 'sink' ? 'one-way' : role === 'echo' ? 'RTT' : 'RTT (receiveInto)'} ${size} B`);
      if (role !== 'sink') {
        const l = await pinnedPair(ctx, pid, () => rttLoop(tx, rx, size, ctx.budget, role === 'echoInto'));
        out.push({ mechanism: 'fifo', variant: role === 'echoInto' ? RECEIVE_INTO_VARIANT : 'ipckit', role: 'ipckit', metric: 'rtt', size, ...l });
      } else {
        const t = await throughputLoop(tx, rx, size, ctx.budget);
        out.push(senderFigure({ mechanism: 'fifo', variant: 'ipckit', role: 'ipckit', size }, t));
      }
    }, kept, String(size), ctx.budget.keepPeers);
  }
}

type Peer = Awaited<ReturnType<typeof peer>>;

/** A child that opens the case's two FIFOs by path: up once both ends are open. */
async function peer(dir: string, size: number, role: StreamCase) {
  const paths: Paths = { down: createFifo(join(dir, `down-${size}-${role}`)), up: createFifo(join(dir, `up-${size}-${role}`)) };
  const unlink = (): void => {
    unlinkFifo(paths.down);
    unlinkFifo(paths.up);
  };
  let rx: FifoReader<Uint8Array> | undefined;
  let child: BenchChild | undefined;
  try {
    rx = await openFifo(paths.up, 'read');
    child = startChild('fifo', role === 'sink' ? 'sink' : 'echo', { ...paths, into: role === 'echoInto' });
    const tx = await openFifo(paths.down, 'write', { capacityBytes: CAPACITY, timeout: 20_000 });
    const [r, c] = [rx, child];
    return {
      tx,
      rx: r,
      pid: c.child.pid!,
      end: async () => {
        try {
          await tx.close();
        } finally {
          await r.close();
          await c.finish();
          unlink();
        }
      },
    };
  } catch (e) {
    await rx?.close().catch(() => {});
    await child?.finish().catch(() => {});
    unlink();
    throw e;
  }
}

export const scenarios: Scenario[] = [
  {
    name: 'fifo',
    title: 'named pipe (FIFO)',
    async run(ctx) {
      return [...(await measureFifo(ctx)), ...cFigures(ctx, 'fifo', 'fifo', 'C FIFO (mkfifo)', sizesOf(ctx), [], cPlacement(ctx).cArgs)];
    },
    close: closeKept,
    targets: [
      { mechanism: 'fifo', metric: 'throughput', size: 64, minMsgsPerSec: 1_000_000, text: 'FIFO one-way at 64 B >= 1,000,000 msg/s' },
      { mechanism: 'fifo', metric: 'throughput', size: 65536, minMBPerSec: 2000, text: 'FIFO one-way at 64 KiB >= 2 GB/s' },
      ...streamRttTargets('fifo', 'C FIFO (mkfifo)', 'FIFO'),
    ],
  },
];

async function open(args: Paths) {
  const rx = await openFifo(args.down, 'read');
  const tx = await openFifo(args.up, 'write', { capacityBytes: CAPACITY, timeout: 20_000 });
  return { rx, tx };
}

export const children = {
  async echo(args: Paths & { into?: boolean }): Promise<void> {
    const { rx, tx } = await open(args);
    await echoLoop(rx, tx, args.into === true);
    await tx.close();
    await rx.close();
  },
  async sink(args: Paths): Promise<void> {
    const { rx, tx } = await open(args);
    await sinkRuns(rx, tx);
    await tx.close();
    await rx.close();
  },
};
