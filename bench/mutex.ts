/**
 * Bench: the robust cross-process mutex, ping-pong by handing locks over between a
 * parent and a child, against the C reference (bench/c/mutex.c, blocking
 * pthread_mutex_lock on the same kind of mutex). Three mutexes relay the turn: the parent
 * holds two and the child one; a round trip is the parent's unlock(i % 3) then
 * lock((i + 2) % 3), while the child locks i % 3 and unlocks (i + 2) % 3. A semaphore
 * tells the child to stop.
 */
import { createMutex, openMutex, unlinkMutex, type Mutex } from '../src/mutex.js';
import { createSemaphore, openSemaphore, unlinkSemaphore } from '../src/semaphore.js';
import { cFigure, latency, now, runC, startChild, tell, type BenchContext, type Figure, type Scenario } from './harness.js';

const C_VARIANT = 'C pthread_mutex (robust, pshared)';

async function measure(ctx: BenchContext): Promise<Figure> {
  const base = `/ipckit-bench-${process.pid}-mutex`;
  const names = [0, 1, 2].map((i) => `${base}-${i}`);
  const stopName = `${base}-stop`;
  const mutexes: Mutex[] = [];
  const stop = createSemaphore(stopName);
  try {
    for (const n of names) mutexes.push(createMutex(n));
    mutexes[0]!.tryLock();
    mutexes[1]!.tryLock();
    const child = startChild('mutex', 'relay', { names, stop: stopName });
    try {
      await child.nextLine(); // the child holds mutex 2
      for (const n of names) unlinkMutex(n);
      unlinkSemaphore(stopName);
      const samples: number[] = [];
      const deadline = now() + BigInt(Math.round(ctx.budget.rttSeconds * 1e9));
      let i = 0;
      while (i < ctx.budget.rttMessages) {
        const t0 = now();
        mutexes[i % 3]!.unlock();
        await mutexes[(i + 2) % 3]!.lock();
        const t1 = now();
        samples.push(Number(t1 - t0));
        i++;
        if (t1 > deadline) break;
      }
      // We hold i % 3 and (i + 1) % 3; the child waits for i % 3.
      stop.post();
      mutexes[i % 3]!.unlock();
      mutexes[(i + 1) % 3]!.unlock();
      return { mechanism: 'mutex', variant: 'ipckit', role: 'ipckit', metric: 'rtt', size: 0, ...latency(samples) };
    } finally {
      await child.finish();
    }
  } finally {
    for (const m of mutexes) await m.close();
    await stop.close();
    for (const n of names) unlinkMutex(n);
    unlinkSemaphore(stopName);
  }
}

export const scenarios: Scenario[] = [
  {
    name: 'mutex',
    title: 'robust cross-process mutex',
    async run(ctx) {
      ctx.progress('mutex: ping-pong');
      const out = [await measure(ctx)];
      const bin = ctx.cProgram('mutex');
      if (bin) {
        ctx.progress('mutex: C ping-pong');
        out.push(cFigure('mutex', C_VARIANT, 'rtt', 0, runC(bin, 'lat', 0, ctx.budget)));
      }
      return out;
    },
    targets: [{ mechanism: 'mutex', metric: 'rtt', size: 0, maxRatio: 1.5, compareTo: { variant: C_VARIANT }, text: 'mutex ping-pong RTT <= 1.5x C' }],
  },
];

export const children = {
  async relay(args: { names: string[]; stop: string }): Promise<void> {
    const mutexes = await Promise.all(args.names.map((n) => openMutex(n)));
    const stop = openSemaphore(args.stop);
    mutexes[2]!.tryLock();
    tell({ ready: true });
    for (let j = 0; ; j++) {
      await mutexes[j % 3]!.lock();
      if (stop.tryWait()) break;
      mutexes[(j + 2) % 3]!.unlock();
    }
    for (const m of mutexes) await m.close();
    await stop.close();
  },
};
