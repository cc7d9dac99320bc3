/**
 * Bench: POSIX named semaphores, ping-pong between a parent and a child (the parent
 * posts `ping`, the child's wait() wakes and posts `pong`), against the C reference
 * (bench/c/semaphore.c, blocking sem_wait). A third semaphore tells the child to stop.
 * A semaphore carries no payload: the figure is a round trip with size 0.
 */
import { createSemaphore, openSemaphore, unlinkSemaphore, type Semaphore } from '../src/mechanisms/semaphore/semaphore.js';
import { benchPrefix, cFigure, KeptPeers, now, RttMeter, runC, tell, whilePeerRuns, withChild, type BenchContext, type Figure, type Scenario, type ServingChild } from './harness.js';
import { CROSS, pin, placements, SCHEDULER, withPlacement, type Placement } from './placement.js';

const C_VARIANT = 'C sem_post/sem_wait';
/** The echo child a quick run keeps from round to round, one per placement (harness.ts withChild). */
const kept = new KeptPeers<ServingChild>();

export async function pingPong(ctx: BenchContext, ping: Semaphore, pong: Semaphore): Promise<ReturnType<RttMeter['result']>> {
  const meter = new RttMeter(ctx.budget);
  for (;;) {
    const t0 = now();
    ping.post();
    await pong.wait();
    if (meter.add(Number(now() - t0))) break;
  }
  return meter.result();
}

async function measure(ctx: BenchContext, placement: Placement): Promise<Figure> {
  const base = `/${benchPrefix()}sem`;
  const names = { ping: `${base}-ping`, pong: `${base}-pong`, stop: `${base}-stop` };
  const made: Semaphore[] = [];
  try {
    const ping = createSemaphore(names.ping);
    made.push(ping);
    const pong = createSemaphore(names.pong);
    made.push(pong);
    const stop = createSemaphore(names.stop);
    made.push(stop);
    return await withChild(kept, `echo${placement.suffix}`, ctx.budget.keepPeers, 'semaphore', 'echo', names, async (child) => {
      await child.nextLine(); // the child has opened all three
      pin(child.pid, placement.childCpu); // only now: see pin() in placement.ts
      for (const n of Object.values(names)) unlinkSemaphore(n);
      // The child's death fails the measurement; closing the semaphores below ends its wait.
      const l = await withPlacement(placement, () => whilePeerRuns(child, pingPong(ctx, ping, pong)));
      stop.post();
      ping.post();
      return { mechanism: `semaphore${placement.suffix}`, variant: 'ipckit', role: 'ipckit', metric: 'rtt', size: 0, ...l };
    });
  } finally {
    for (const s of made) await s.close();
    for (const n of Object.values(names)) unlinkSemaphore(n);
  }
}

export const scenarios: Scenario[] = [
  {
    name: 'semaphore',
    title: 'POSIX named semaphore',
    async run(ctx) {
      const out: Figure[] = [];
      const bin = ctx.cProgram('semaphore');
      for (const placement of placements(ctx, 'semaphore')) {
        ctx.progress(`semaphore${placement.suffix}: ping-pong`);
        out.push(await measure(ctx, placement));
        if (bin) {
          ctx.progress(`semaphore${placement.suffix}: C ping-pong`);
          out.push(cFigure(`semaphore${placement.suffix}`, C_VARIANT, 'rtt', 0, runC(bin, 'lat', 0, ctx.budget, placement.cArgs)));
        }
      }
      return out;
    },
    close: () => kept.close(),
    targets: [CROSS].map((p) => ({
      mechanism: `semaphore${p.suffix}`,
      metric: 'rtt' as const,
      size: 0,
      maxRatio: 1.5,
      compareTo: { variant: C_VARIANT },
      text: `semaphore ping-pong RTT${p.suffix ? ` (${p.suffix.slice(2)})` : ''} <= 1.5x C`,
    })),
  },
];

export const children = {
  async echo(names: { ping: string; pong: string; stop: string }): Promise<void> {
    const ping = await openSemaphore(names.ping);
    const pong = await openSemaphore(names.pong);
    const stop = await openSemaphore(names.stop);
    tell({ ready: true });
    for (;;) {
      await ping.wait();
      if (stop.tryWait()) break;
      pong.post();
    }
    for (const s of [ping, pong, stop]) await s.close();
  },
};
