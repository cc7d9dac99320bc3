/**
 * One bench module's own process: `node case-process.js <module>`, forked by bench/run.ts
 * (CaseProcess), runs that module's scenarios when the run asks, round after round, and keeps
 * what they keep between rounds (their peers) until the run closes it.
 *
 * Why a process per module: V8 optimizes the code every case shares (the channels' reader
 * and writer, the harness) for the types it has seen. In one process, after the whole case
 * list had run twice, popen's reader ran its queue's `#shift` uninlined, and popen's one-way
 * rates fell from 4.7-5.4M msg/s in a full run's first rounds to 2.5-3.5M in its later
 * ones, 1.27-1.47x slower than a quick run's (docs/bench.md, Limits). Here each mechanism's
 * code is optimized for that mechanism alone, as in a program that uses it, in every round.
 *
 * Messages (Node's IPC, control only: nothing here is measured):
 * - from the run: ToCase; to the run: FromCase.
 * - Ctrl-C reaches this process too (the terminal signals the whole group): ignored here,
 *   the run asks ({type: 'stop'}). SIGTERM sent to this process alone stops it as the run's
 *   stop would, then it closes and exits. If the run goes away (its IPC closes), this exits
 *   at once, unless it is already closing; the peers' 'exit' hooks remove what would outlive
 *   it (KeptPeers.abandon). It says 'ending' when it closes on its own (a SIGTERM, a crash).
 */
import { probeCpuDistance } from './distance.js';
import { compileC, probeFiguresWith, recentProbe, sendToRun, type BenchContext, type Budget, type Figure, type Scenario, type SysvMade } from './harness.js';

/** What the run asks. */
export type ToCase =
  | { type: 'run'; scenario: number; quick: boolean; round: number; rounds: number; budget: Budget }
  /** Stop at the next measurement boundary (the run was told to stop). */
  | { type: 'stop'; signal: string }
  /** End what the scenarios keep (Scenario.close), then exit. */
  | { type: 'close' };

/** What this process tells the run. */
export type FromCase =
  | { type: 'ready' }
  | { type: 'progress'; text: string }
  | { type: 'note'; text: string }
  | { type: 'done'; figures: Figure[] }
  | { type: 'failed'; message: string }
  /** It is closing on its own (a SIGTERM sent to it alone, a crash): the run starts another. */
  | { type: 'ending' }
  /** It made a System V object (harness.ts madeSysv): the run removes it if this process exits without doing so. */
  | { type: 'made'; kind: SysvMade['kind']; id: number };

const NO_CC_NOTE = 'no C compiler (cc) on this machine: the C reference figures were skipped (NOT MEASURED)';

/** Thrown by a stopped case's progress calls: the case unwinds through its finally blocks. */
class BenchStopped extends Error {
  constructor(signal: string) {
    super(`stopped by ${signal}`);
  }
}

async function main(module: string): Promise<void> {
  const tell = (m: FromCase): void => sendToRun(m);
  probeFiguresWith(() => {
    const probe = probeCpuDistance();
    return 'ns' in probe ? probe.ns : null;
  });
  // The bench children it starts watch this pid (bench/child.ts).
  process.env.IPCKIT_BENCH_PARENT = String(process.pid);
  const { scenarios = [] } = (await import(`./${module}.js`)) as { scenarios?: Scenario[] };
  let stopped: string | undefined;
  /** A SIGTERM sent to this process alone: stop, close and exit. */
  let terminated = false;
  let running = false;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      tell({ type: 'ending' });
      for (const s of scenarios) await s.close?.().catch(() => {});
      if (process.connected) process.disconnect();
      process.exit(0);
    })());

  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {
    terminated = true;
    stopped ??= 'SIGTERM';
    if (!running) void close();
  });
  process.on('disconnect', () => {
    if (!closing) process.exit(1);
  });
  // A crash in a case fails its round with the error (not only on stderr), then ends what
  // the scenarios keep.
  const crashed = (e: unknown): void => {
    process.stderr.write(`ipckit bench: the case process of bench/${module} crashed: ${(e as Error)?.stack ?? String(e)}\n`);
    tell({ type: 'failed', message: `its process crashed (its stack is on stderr): ${(e as Error)?.message ?? String(e)}` });
    void close();
  };
  process.on('uncaughtException', crashed);
  process.on('unhandledRejection', crashed);

  process.on('message', (m: ToCase) => {
    if (m.type === 'stop') stopped ??= m.signal;
    else if (m.type === 'close') void close();
    else void run(m);
  });

  async function run(m: Extract<ToCase, { type: 'run' }>): Promise<void> {
    const scenario = scenarios[m.scenario];
    const ctx: BenchContext = {
      quick: m.quick,
      round: m.round,
      rounds: m.rounds,
      budget: m.budget,
      cProgram: (name, libs) => {
        const bin = compileC(name, libs);
        if (!bin) tell({ type: 'note', text: NO_CC_NOTE });
        return bin;
      },
      note: (text) => tell({ type: 'note', text }),
      progress: (text) => {
        if (stopped) throw new BenchStopped(stopped);
        tell({ type: 'progress', text });
        // Between two parts of a case nothing is measured: the CPUs' distance now goes with the part's figures (harness.ts).
        recentProbe();
      },
    };
    if (closing) {
      tell({ type: 'failed', message: `its process is ending (${stopped ?? 'closed'})` });
      return;
    }
    running = true;
    let outcome: FromCase;
    try {
      if (!scenario) throw new Error(`bench/${module} has no scenario ${m.scenario}`);
      ctx.progress('starting');
      outcome = { type: 'done', figures: await scenario.run(ctx) };
    } catch (e) {
      outcome = { type: 'failed', message: (e as Error).message };
    } finally {
      running = false;
    }
    // Stopped by a SIGTERM of its own: it says it is ending before the outcome, so the run
    // starts another for the next round.
    if (terminated) void close();
    tell(outcome);
  }

  tell({ type: 'ready' });
}

const module = process.argv[2];
if (!module || !process.send) {
  process.stderr.write('bench case process: run by `ipckit bench` (node case-process.js <module>, with an IPC channel)\n');
  process.exit(2);
}
await main(module);
