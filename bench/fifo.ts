/**
 * Bench: named pipes (mkfifo) between a parent and a child that opens them by path, one
 * FIFO per direction, against the C reference (bench/c/fifo.c).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFifo, openFifo, unlinkFifo } from '../src/mechanisms/fifo/fifo.js';
import { cFigures, streamRttTargets, SIZES, sizesOf, startChild, senderFigure, type BenchContext, type Figure, type Scenario } from './harness.js';
import { cPlacement, pinnedPair } from './placement.js';
import { echoLoop, RECEIVE_INTO_VARIANT, rttLoop, sinkLoop, streamCases, throughputLoop } from './streams.js';

/** 1 MiB FIFOs (the default pipe-max-size): a 64 KiB message no longer fills the pipe. */
const CAPACITY = 1024 * 1024;

interface Paths {
  down: string;
  up: string;
}

export async function measureFifo(ctx: BenchContext, sizes = sizesOf(ctx)): Promise<Figure[]> {
  const out: Figure[] = [];
  // A private folder, removed after: the bench leaves nothing in /tmp or the runtime folder.
  const dir = mkdtempSync(join(tmpdir(), 'ipckit-bench-'));
  try {
    await measureIn(ctx, dir, sizes, out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

async function measureIn(ctx: BenchContext, dir: string, sizes: number[], out: Figure[]): Promise<void> {
  for (const size of sizes) {
    for (const role of streamCases(size)) {
      ctx.progress(`fifo: ${role === 'sink' ? 'one-way' : role === 'echo' ? 'RTT' : 'RTT (receiveInto)'} ${size} B`);
      const paths: Paths = { down: createFifo(join(dir, `down-${size}-${role}`)), up: createFifo(join(dir, `up-${size}-${role}`)) };
      try {
        const rx = await openFifo(paths.up, 'read');
        const child = startChild('fifo', role === 'sink' ? 'sink' : 'echo', { ...paths, into: role === 'echoInto' });
        try {
          const tx = await openFifo(paths.down, 'write', { capacityBytes: CAPACITY, timeout: 20_000 });
          try {
            if (role !== 'sink') {
              const l = await pinnedPair(ctx, child.child.pid!, () => rttLoop(tx, rx, size, ctx.budget, role === 'echoInto'));
              out.push({ mechanism: 'fifo', variant: role === 'echoInto' ? RECEIVE_INTO_VARIANT : 'ipckit', role: 'ipckit', metric: 'rtt', size, ...l });
            } else {
              const t = await throughputLoop(tx, rx, size, ctx.budget);
              out.push(senderFigure({ mechanism: 'fifo', variant: 'ipckit', role: 'ipckit', size }, t));
            }
          } finally {
            await tx.close();
          }
        } finally {
          await rx.close();
          await child.finish();
        }
      } finally {
        unlinkFifo(paths.down);
        unlinkFifo(paths.up);
      }
    }
  }
}

export const scenarios: Scenario[] = [
  {
    name: 'fifo',
    title: 'named pipe (FIFO)',
    async run(ctx) {
      return [...(await measureFifo(ctx)), ...cFigures(ctx, 'fifo', 'fifo', 'C FIFO (mkfifo)', sizesOf(ctx), [], cPlacement(ctx))];
    },
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
    await sinkLoop(rx, tx);
    await tx.close();
    await rx.close();
  },
};
