/**
 * Bench: the robust cross-process mutex, ping-pong by handing locks over between a
 * parent and a child, against the C reference (bench/c/mutex.c, blocking
 * pthread_mutex_lock on the same kind of mutex). Three mutexes relay the turn: the parent
 * holds two and the child one; a round trip is the parent's unlock(i % 3) then
 * lock((i + 2) % 3), while the child locks i % 3 and unlocks (i + 2) % 3. A semaphore
 * tells the child to stop.
 */
import { createMutex, openMutex, unlinkMutex, type Mutex } from '../src/mechanisms/mutex/mutex.js';
import { createSemaphore, openSemaphore, unlinkSemaphore } from '../src/mechanisms/semaphore/semaphore.js';
import { benchPrefix, cFigure, KeptPeers, now, placedAfter, RttMeter, runC, tell, whilePeerRuns, withChild, type BenchContext, type Figure, type Scenario, type ServingChild } from './harness.js';
import { CROSS, pin, placements, SCHEDULER, withPlacement, type Placement } from './placement.js';

const C_VARIANT = 'C pthread_mutex (robust, pshared)';
/** The relay child a quick run keeps from round to round, one per placement (harness.ts withChild). */
const kept = new KeptPeers<ServingChild>();

async function measure(ctx: BenchContext, placement: Placement): Promise<Figure> {
  const base = `/${benchPrefix()}mutex`;
  const names = [0, 1, 2].map((i) => `${base}-${i}`);
  const stopName = `${base}-stop`;
  const mutexes: Mutex[] = [];
  const stop = createSemaphore(stopName);
  try {
    for (const n of names) mutexes.push(createMutex(n));
    mutexes[0]!.tryLock();
    mutexes[1]!.tryLock();
    const ours = await withChild(kept, `relay${placement.suffix}`, ctx.budget.keepPeers, 'mutex', 'relay', { names, stop: stopName }, async (child): Promise<Figure> => {
      await child.nextLine(); // the child holds mutex 2
      pin(child.pid, placement.childCpu); // only now: see pin() in placement.ts
      for (const n of names) unlinkMutex(n);
      unlinkSemaphore(stopName);
      const meter = new RttMeter(ctx.budget);
      // The child's death fails the measurement: the lock it held comes back owner-died
      // (the kernel hands it over as the child exits, before its exit event), or its exit
      // ends a wait on another one (closing the mutexes then ends that wait).
      const relay = async (): Promise<number> => {
        let n = 0;
        for (;;) {
          const t0 = now();
          mutexes[n % 3]!.unlock();
          if ((await mutexes[(n + 2) % 3]!.lock()).ownerDied) throw new Error(`the peer (process ${child.pid}) died holding mutex ${(n + 2) % 3} during the measurement`);
          const t1 = now();
          n++;
          if (meter.add(Number(t1 - t0))) break;
        }
        return n;
      };
      const i = await withPlacement(placement, () => whilePeerRuns(child, relay()));
      // We hold i % 3 and (i + 1) % 3; the child waits for i % 3.
      stop.post();
      mutexes[i % 3]!.unlock();
      mutexes[(i + 1) % 3]!.unlock();
      return { mechanism: `mutex${placement.suffix}`, variant: 'ipckit', role: 'ipckit', metric: 'rtt', size: 0, ...meter.result({ probe: false }) };
    });
    return placedAfter(ours); // the child, told to stop, is gone or idle now
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
      const out: Figure[] = [];
      const bin = ctx.cProgram('mutex');
      for (const placement of placements(ctx, 'mutex')) {
        ctx.progress(`mutex${placement.suffix}: ping-pong`);
        out.push(await measure(ctx, placement));
        if (bin) {
          ctx.progress(`mutex${placement.suffix}: C ping-pong`);
          out.push(cFigure(`mutex${placement.suffix}`, C_VARIANT, 'rtt', 0, runC(bin, 'lat', 0, ctx.budget, placement.cArgs)));
        }
      }
      return out;
    },
    close: () => kept.close(),
    targets: [CROSS].map((p) => ({
      mechanism: `mutex${p.suffix}`,
      metric: 'rtt' as const,
      size: 0,
      maxRatio: 1.5,
      compareTo: { variant: C_VARIANT },
      text: `mutex ping-pong RTT${p.suffix ? ` (${p.suffix.slice(2)})` : ''} <= 1.5x C`,
    })),
  },
];

export const children = {
  async relay(args: { names: string[]; stop: string }): Promise<void> {
    const mutexes = await Promise.all(args.names.map((n) => openMutex(n)));
    const stop = await openSemaphore(args.stop);
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
