/**
 * Bench: a signal round trip between two processes, against the C reference (sigqueue +
 * sigwaitinfo with the signal blocked) in the same run. The parent queues SIGRTMIN+1 with
 * the sequence number as value; the child's handler answers with the same value.
 */
import { sendSignal, signalReceiver } from '../src/mechanisms/signal/signal.js';
import { cFigures, KeptPeers, now, RttMeter, tell, withChild, type Figure, type Scenario, type ServingChild } from './harness.js';
import { cPlacement, pinnedPair } from './placement.js';

/** The echo child a quick run keeps from round to round (harness.ts withChild). */
const kept = new KeptPeers<ServingChild>();

export const scenarios: Scenario[] = [
  {
    name: 'signal',
    title: 'signals (sigqueue with a value, SA_SIGINFO handler)',
    async run(ctx) {
      ctx.progress('signal: RTT');
      const rx = signalReceiver('SIGRTMIN+1');
      const meter = new RttMeter(ctx.budget);
      try {
        await withChild(kept, 'echo', ctx.budget.keepPeers, 'signal', 'echo', { parent: process.pid }, async (child) => {
          const ready = (await child.nextLine()) as { pid: number };
          await pinnedPair(ctx, ready.pid, async () => {
            for (let i = 0; ; i++) {
              const t0 = now();
              sendSignal(ready.pid, 'SIGRTMIN+1', { value: i });
              const info = await rx.receive({ timeout: 5000 });
              const t1 = now();
              if (info.value !== i) throw new Error(`signal echo out of order: ${info.value} != ${i}`);
              if (meter.add(Number(t1 - t0))) break;
            }
          });
          sendSignal(ready.pid, 'SIGRTMIN+1', { value: -1 });
        });
      } finally {
        await rx.close();
      }
      const ours: Figure = { mechanism: 'signal', variant: 'ipckit', role: 'ipckit', metric: 'rtt', size: 0, ...meter.result() };
      const c = cFigures(ctx, 'signal', 'signal', 'C sigqueue/sigwaitinfo', [0], [], cPlacement(ctx).cArgs).filter((f) => f.metric === 'rtt');
      return [ours, ...c];
    },
    close: () => kept.close(),
    targets: [{ mechanism: 'signal', metric: 'rtt', size: 0, maxRatio: 1.5, compareTo: { variant: 'C sigqueue/sigwaitinfo' }, text: 'signal RTT <= 1.5x C' }],
  },
];

export const children = {
  async echo(args: { parent: number }): Promise<void> {
    const rx = signalReceiver('SIGRTMIN+1');
    tell({ pid: process.pid });
    for (;;) {
      const info = await rx.receive();
      if (info.value === -1) break;
      sendSignal(args.parent, 'SIGRTMIN+1', { value: info.value! });
    }
    await rx.close();
  },
};
