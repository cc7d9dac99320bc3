/**
 * Bench: the process pool (issue 12 part 4) beside what Node users pick today, in one run:
 * - workerpool in process mode (child_process.fork + process.send, JSON), the target's
 *   baseline: tiny jobs at least 5x its rate;
 * - piscina (worker threads, structured clone: no process boundary), the upper bound.
 * Two figures: tiny jobs/s (a number in, a number out) and 1 MiB results/s (a full run; a
 * quick run measures the tiny jobs only, as every case its smallest size). Each pool has
 * the same number of workers and the same jobs in flight; the pools are started once and
 * the sides take turns in each round (the order rotates), so that the machine's load
 * falls on all alike; each figure is the median of the rounds, with the spread (min-max).
 * workerpool and piscina are devDependencies: without them (an installed package) their
 * figures are skipped with a note, and the target is NOT MEASURED.
 * Each figure carries the CPU and the minor page faults per job of the pool's process, and of
 * the workers where the pool tells their pids: where a 1 MiB result is a fresh buffer (each
 * pool's parent; workerpool's and piscina's workers), how many of its pages fault in depends
 * on what glibc gave back to the kernel before.
 * This case's process, where piscina's threads run, keeps its freed memory (caseEnv below)
 * and runs without V8's allocation-site pretenuring (caseExecArgv below); the pools' worker
 * processes start with the environment the bench was started with and node's default options.
 */
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { createProcessPool } from '../src/mechanisms/process-pool/pool.js';
import { procStat } from '../src/os/liveness.js';
import { closeAll, farther, Kept, probeNow, recentProbe, runEnv, throughputFigure, type BenchContext, type Figure, type Scenario, type Target } from './harness.js';
import { median, Steady, type SteadyOptions } from './stats.js';

/**
 * This module's process starts with glibc's trimming off (bench/run.ts, harness.ts
 * caseProcessEnv): there the pools' parent side and piscina's threads run, and a freed 1 MiB
 * buffer stays in the heap for the next one. With glibc's defaults, piscina's 1 MiB rate
 * followed what glibc happened to give back to the kernel after V8's collections, in
 * whatever else that process had allocated: 17-20k results/s at 0-2 page faults a result, 5k
 * at 85-90, for seconds at a time, and its medians moved 2.8x from run to run (4.7k-13.2k over
 * 4 quick runs of this case alone, against 13.3k-15.2k with these tunables, interleaved; a
 * 2-vCPU AMD EPYC VM): as an upper bound it was left to chance. Ours' and workerpool's workers
 * keep glibc's defaults (runEnv), as a program gets them (ours' make no fresh buffer per
 * result: docs/pool.md); the three pools' parent side is this process, tuned alike.
 * Tunables the user set are kept, after these: glibc takes the last, so theirs win.
 */
export const KEEP_FREED_MEMORY = 'glibc.malloc.trim_threshold=268435456:glibc.malloc.mmap_threshold=33554432';
export const caseEnv = (): Record<string, string> => ({ GLIBC_TUNABLES: [KEEP_FREED_MEMORY, process.env.GLIBC_TUNABLES].filter(Boolean).join(':') });

/**
 * This module's process also runs with V8's allocation-site pretenuring off. With it on, V8
 * may decide, at a scavenge that finds most objects of an allocation site alive, to allocate
 * that site's objects in the old generation from then on, and the decision sticks for the
 * process. workerpool's parent (its tasks wait in its queue while 2 are run) got there in most
 * processes, not all: then 40-60% of the young objects survived each scavenge, a mark-compact
 * ran every ~0.1 s and V8's freed pages faulted in again (`--trace-gc-nvp`;
 * `--trace-pretenuring-statistics` showed 4 sites tenured in the slow processes, none in the
 * fast one). workerpool alone, 8 processes each way, interleaved (a 2-vCPU AMD EPYC VM): by
 * default all 8 slow, 27-37 us of CPU and 0.8-1.0 page faults per tiny job (28.5k-37.0k
 * jobs/s); with the flag all 8 at 14-20 us and none (31.0k-48.2k). In bench runs its medians
 * moved between the two (quick 24.6k-40.8k against full runs' 33.1k-41.5k), and a quick run's
 * three rounds fell in the slow state more often than a full run's five. The three pools in
 * one process, 4 pairs interleaved: workerpool 25k-41k by default, 38k-44k with the flag;
 * ours' and piscina's rates moved no more than their spread. As with the tunables above, the
 * pools' worker processes keep V8's defaults (neither pool passes this process's options on),
 * and the three pools' parent side is this process, alike.
 */
export const NO_PRETENURING = '--no-allocation-site-pretenuring';
export const caseExecArgv = (): string[] => [NO_PRETENURING];

const tasks = new URL('./pool-tasks.js', import.meta.url);
const TINY = 8; // bytes of a tiny job's argument and result, for the table's size column
const MIB = 1 << 20;
const OURS = 'ipckit process pool';

type Submit = (fn: 'tiny' | 'mib', i: number) => Promise<unknown>;
interface Side {
  variant: string;
  role: Figure['role'];
  submit: Submit;
  /** The worker processes' pids, where the pool tells them (their CPU time is read from /proc). */
  pids?: () => number[];
  close(): Promise<void>;
}

/**
 * Keeps `inFlight` jobs going, then drains them. `until` says when to stop starting jobs:
 * - `{ steady }`, a warm-up: once the completion rate of two successive windows agrees
 *   (bench/stats.ts Steady), or at its cap;
 * - `{ seconds }`, a measured part: `seconds` after the first `inFlight` jobs completed.
 *   The rate counts the completions inside that window only, with the pipeline full: not
 *   its filling nor its draining, which with 256 jobs in flight weigh on a 0.1 s window
 *   (quick runs) more than on a 0.4 s one, and did (quick tiny-job figures 0.75x-1.3x
 *   the full run's, each pool biased its own way);
 * - `{ steady, seconds }`, both in one go: the measured window opens when the warm-up ends,
 *   with the pipeline already full, and the pool is filled and drained once, not twice
 *   (workerpool's 1 MiB results come 30 a second: 8 in flight take 0.27 s each way).
 * Returns the window's jobs/s, the parent's CPU µs and minor page faults per job in it (a
 * thread pool's threads are the parent's), the jobs run in all and, with a warm-up, whether
 * it ended steady and when.
 */
export async function drive(
  submit: Submit,
  fn: 'tiny' | 'mib',
  inFlight: number,
  until: { seconds: number; steady?: SteadyOptions } | { steady: SteadyOptions; seconds?: number },
): Promise<{ rate: number; cpuUsPerJob: number; faultsPerJob: number; jobs: number; seconds: number; steady?: boolean; warmSeconds?: number }> {
  const start = process.hrtime.bigint();
  let warmSeconds: number | undefined;
  const steady = until.steady ? new Steady(until.steady) : undefined;
  // warm: Steady's windows; fill: until the first inFlight jobs complete; measure: the
  // measured window; drain: no new jobs, until every one started has completed.
  let phase: 'warm' | 'fill' | 'measure' | 'drain' = steady ? 'warm' : 'fill';
  let windowStart = start; // warm-up: the current Steady window; measured part: the measured window
  let windowDone = 0;
  let cpu0 = process.cpuUsage();
  let faults0 = process.resourceUsage().minorPageFault;
  let measured: { rate: number; cpuUsPerJob: number; faultsPerJob: number } | undefined;
  let started = 0;
  let done = 0;
  await new Promise<void>((resolve, reject) => {
    const open = (t: bigint): void => {
      phase = 'measure';
      windowStart = t;
      windowDone = done;
      cpu0 = process.cpuUsage();
      faults0 = process.resourceUsage().minorPageFault;
    };
    const next = (): void => {
      const t = process.hrtime.bigint();
      const inWindow = Number(t - windowStart) / 1e9;
      if (phase === 'warm' && inWindow >= steady!.options.windowSeconds) {
        const over = steady!.window((done - windowDone) / inWindow, Number(t - start) / 1e9);
        windowStart = t;
        windowDone = done;
        if (over) {
          warmSeconds = Number(t - start) / 1e9;
          if (until.seconds === undefined) phase = 'drain';
          else open(t); // the pipeline is full: the measured window opens now
        }
      } else if (phase === 'fill' && done >= inFlight) {
        open(t);
      } else if (phase === 'measure' && inWindow >= until.seconds!) {
        const cpu = process.cpuUsage(cpu0);
        const jobs = done - windowDone;
        measured = { rate: jobs / inWindow, cpuUsPerJob: (cpu.user + cpu.system) / jobs, faultsPerJob: (process.resourceUsage().minorPageFault - faults0) / jobs };
        phase = 'drain';
      }
      if (phase === 'drain') {
        if (done === started) resolve();
        return;
      }
      while (started - done < inFlight) {
        const i = started++;
        submit(fn, i).then(
          (r) => {
            if (fn === 'tiny' && r !== i + 1) return reject(new Error(`tiny(${i}) gave ${String(r)}`));
            // workerpool's process mode sends a Buffer as JSON: { type: 'Buffer', data: [...] }
            const length = (r as Uint8Array).length ?? (r as { data?: unknown[] }).data?.length;
            if (fn === 'mib' && length !== MIB) return reject(new Error(`a 1 MiB result of ${String(length)} bytes`));
            done++;
            next();
          },
          reject,
        );
      }
    };
    next();
  });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { rate: measured?.rate ?? NaN, cpuUsPerJob: measured?.cpuUsPerJob ?? NaN, faultsPerJob: measured?.faultsPerJob ?? NaN, jobs: done, seconds, ...(steady ? { steady: steady.steady, warmSeconds: warmSeconds ?? seconds } : {}) };
}

async function loadOptional(name: string): Promise<any> {
  try {
    return await import(name);
  } catch {
    return undefined;
  }
}

/** The pools, and the notes about the ones that could not be made (repeated in every round that uses them). */
async function sides(size: number): Promise<{ sides: Side[]; notes: string[] }> {
  const out: Side[] = [];
  const notes: string[] = [];
  try {
    const workerEnv = runEnv(); // the bench's own, not this process's tunables
    const pool = await createProcessPool(tasks, { size, env: workerEnv });
    out.push({ variant: OURS, role: 'ipckit', submit: (fn, i) => pool.run(fn, i), close: () => pool.close(), pids: () => pool.pids });
    const workerpool = await loadOptional('workerpool');
    if (workerpool) {
      const wp = workerpool.pool(fileURLToPath(new URL('./pool-workerpool-worker.js', import.meta.url)), { workerType: 'process', minWorkers: size, maxWorkers: size, forkOpts: { env: workerEnv } });
      out.push({ variant: 'workerpool (process mode)', role: 'node', submit: (fn, i) => wp.exec(fn, [i]), close: () => wp.terminate() });
    } else {
      notes.push('process pool: workerpool is not installed (a devDependency of the repository): its figures and the 5x target were skipped');
    }
    const piscina = await loadOptional('piscina');
    if (piscina) {
      const Piscina = piscina.Piscina ?? piscina.default;
      const ps = new Piscina({ filename: fileURLToPath(tasks), minThreads: size, maxThreads: size });
      out.push({ variant: 'piscina (threads)', role: 'node', submit: (fn, i) => ps.run(i, { name: fn }), close: () => ps.destroy() });
      notes.push(
        process.env.GLIBC_TUNABLES?.startsWith(KEEP_FREED_MEMORY)
          ? `process pool: piscina's threads run in the case's own process, which keeps its freed memory (GLIBC_TUNABLES=${process.env.GLIBC_TUNABLES}); with glibc's defaults its 1 MiB rate went with the page faults from run to run. The pools' worker processes start with the bench's own environment (docs/bench.md, Limits)`
          : "process pool: this process was started without the case's GLIBC_TUNABLES (bench/process-pool.ts caseEnv): piscina's 1 MiB rate goes with glibc's trimming (docs/bench.md, Limits)",
      );
    } else {
      notes.push('process pool: piscina is not installed (a devDependency of the repository): the threads figures were skipped');
    }
    notes.push(
      process.execArgv.includes(NO_PRETENURING)
        ? `process pool: the case's own process, the three pools' parent side, runs with ${NO_PRETENURING}: with V8's default, workerpool's parent fell at random, per process, into allocating its tasks in the old generation, at twice the CPU per job (docs/bench.md, Limits). The pools' worker processes start with V8's defaults`
        : `process pool: this process was started without ${NO_PRETENURING} (bench/process-pool.ts caseExecArgv): workerpool's tiny-job rate may fall by a third in some runs (docs/bench.md, Limits)`,
    );
  } catch (e) {
    await closeAll(out); // the pools made before the one that failed
    throw e;
  }
  return { sides: out, notes };
}

/**
 * CPU time (user + system, µs; clock ticks of 10 ms) and minor page faults the processes have
 * had, from /proc/<pid>/stat (a process that is gone counts nothing).
 */
export function usageOf(pids: number[]): { cpuUs: number; faults: number } {
  let ticks = 0;
  let faults = 0;
  for (const f of pids.map(procStat)) {
    if (!f) continue;
    ticks += Number(f[11]) + Number(f[12]); // fields 14 and 15: utime, stime
    faults += Number(f[7]); // field 10: minflt
  }
  return { cpuUs: ticks * 10_000, faults };
}

const rate = (r: number): string => (r >= 1e3 ? `${(r / 1e3).toFixed(1)}k/s` : `${r.toFixed(0)}/s`);

const target: Target = {
  mechanism: 'process-pool',
  metric: 'throughput',
  size: TINY,
  maxRatio: 0.2,
  compareTo: { variant: 'workerpool (process mode)' },
  text: "process pool: tiny jobs at least 5x workerpool's (process mode); shown: workerpool's rate / ours, at most 0.2 (issue 12)",
  // Built where the report is made (bench/run.ts, not the case's process) from the figures,
  // which carry each side's CPU per job (senderCpuUs: the pool's process; receiverCpuUs: its workers).
  ifMissed: (figures) => {
    const tiny = (variant: string) => figures.find((f) => f.mechanism === 'process-pool' && f.variant === variant && f.size === TINY);
    const ours = tiny(OURS);
    const wp = tiny('workerpool (process mode)');
    if (!ours?.rounds || !wp?.rounds || ours.senderCpuUs === undefined) return 'not measured: see the notes';
    const cpuOurs = ours.senderCpuUs;
    const cpuWorkers = ours.receiverCpuUs ?? NaN;
    const total = cpuOurs + cpuWorkers;
    const ceiling = (availableParallelism() * 1e6) / total;
    return (
      `measured: ours ${rate(ours.value)} against workerpool ${rate(wp.value)}; a tiny job cost ${cpuOurs.toFixed(1)} us of CPU in the pool's process ` +
      `(serialize, put, receive, settle) and ${cpuWorkers.toFixed(1)} us in the workers (take, run, send, ack): ${total.toFixed(1)} us, a ceiling of ${rate(ceiling)} on ${availableParallelism()} idle CPUs; ` +
      `ours reached ${((100 * ours.value) / ceiling).toFixed(0)}% of it (load average ${loadavg()[0]!.toFixed(1)}), and the ceiling itself is ${(ceiling / wp.value).toFixed(1)}x workerpool's rate. ` +
      `workerpool is bound by its own process (${(wp.senderCpuUs ?? NaN).toFixed(1)} us of CPU per job there, one CPU), which more CPUs do not help; ours spreads over the workers, so the ratio grows with the CPUs`
    );
  },
};

/**
 * A pool's measured part lasts at least this long, in a quick run too: over 80 ms the rate
 * swung from round to round (ours, tiny jobs: 62k-413k/s over 5 rounds of one
 * `--quick --only process-pool` run); over 0.2 s it held 242k-260k/s, the full run's 250k
 * (a 2-vCPU AMD EPYC VM). It costs a quick run about 0.7 s a round.
 */
const MIN_MEASURED_SECONDS = 0.2;

/**
 * The pools, kept from the case's first round to the end of the run (harness.ts Kept):
 * started fresh in each of a quick run's 0.1 s rounds, their worker processes were still
 * warming up when measured (quick tiny-job figures 0.55x-0.9x the full run's).
 */
const kept = new Kept<{ sides: Side[]; notes: string[] }>((made) => closeAll(made.sides));

export const scenarios: Scenario[] = [
  {
    name: 'process-pool',
    title: 'process pool vs workerpool (process mode) and piscina (threads)',
    targets: [target],
    async run(ctx) {
      const size = Math.max(2, Math.min(4, availableParallelism()));
      // Interleaved rounds of its own; a quick run's 3 outer rounds interleave too.
      const rounds = ctx.quick ? 1 : 5;
      // Kept pools warmed up in the first round: after the other cases, a quick run gives
      // them a short one (4 windows at most).
      const warmBudget = ctx.quick && kept.kept ? { ...ctx.budget.warm, capSeconds: 4 * ctx.budget.warm.windowSeconds } : ctx.budget.warm;
      const made = await kept.get(() => sides(size));
      for (const n of made.notes) ctx.note(n);
      const all = made.sides;
      const figures: Figure[] = [];
      try {
        const jobs = [
          ['tiny', 256, TINY],
          ['mib', 8, MIB],
        ] as const;
        // --quick: tiny jobs only, as every case measures its smallest size only (sizesOf):
        // the 1 MiB results took a third of the case's 2-3 s a round.
        for (const [fn, inFlight, bytes] of ctx.quick ? jobs.slice(0, 1) : jobs) {
          const seconds = Math.max(ctx.budget.thrSeconds, MIN_MEASURED_SECONDS);
          // Warm-up, each side until its rate is steady (as every figure of the bench): a fixed
          // 2,000 jobs (10 ms) left a quick run's one round at a fifth of a full run's rate.
          // With one round (quick), each side's measured part follows its own warm-up in one
          // go (drive); with more, every side warms up before the interleaved rounds.
          const fused = rounds === 1;
          const warmups = new Map<Side, { seconds: number; steady: boolean }>();
          const warmed = (s: Side, w: { warmSeconds?: number; steady?: boolean }): void => void warmups.set(s, { seconds: +w.warmSeconds!.toFixed(3), steady: w.steady! });
          if (!fused) for (const s of all) warmed(s, await drive(s.submit, fn, inFlight, { steady: warmBudget }));
          const runs = new Map<Side, Array<{ rate: number; cpu: number; faults: number; workerCpu: number; workerFaults: number }>>(all.map((s) => [s, []]));
          // Each side's placement (harness.ts placedAfter): the farthest of the CPU distances
          // probed just before and after each of its measured parts. The probes around the
          // case alone are seconds apart, and a pool's rate follows the host's placement
          // (piscina's tiny jobs: 47k-51k/s close, 31k far, by hand).
          const placement = new Map<Side, number | null | undefined>();
          for (let r = 0; r < rounds; r++) {
            for (let k = 0; k < all.length; k++) {
              const s = all[(r + k) % all.length]!;
              ctx.progress(`process pool, ${fn}: ${s.variant} (round ${r + 1}/${rounds})`);
              const pids = s.pids?.() ?? [];
              const w0 = usageOf(pids);
              const before = recentProbe(); // the one progress() took
              const m = await drive(s.submit, fn, inFlight, fused ? { steady: warmBudget, seconds } : { seconds });
              if (fused) warmed(s, m);
              const probed = farther(before, probeNow());
              placement.set(s, farther(placement.get(s), probed)); // the first: probed itself
              const w1 = usageOf(pids);
              // A worker replaced during the round took its counts with it: no worker figures then.
              const same = (s.pids?.() ?? []).join() === pids.join();
              const workers = pids.length && same ? { workerCpu: (w1.cpuUs - w0.cpuUs) / m.jobs, workerFaults: (w1.faults - w0.faults) / m.jobs } : { workerCpu: NaN, workerFaults: NaN };
              runs.get(s)!.push({ rate: m.rate, cpu: m.cpuUsPerJob, faults: m.faultsPerJob, ...workers });
            }
          }
          const summary: string[] = [];
          for (const s of all) {
            const rs = runs.get(s)!;
            const rates = rs.map((x) => x.rate);
            const med = median(rates);
            const spread = `${rate(Math.min(...rates))}-${rate(Math.max(...rates))}`;
            const cpu = median(rs.map((x) => x.cpu));
            const faults = median(rs.map((x) => x.faults));
            const workerCpu = median(rs.map((x) => x.workerCpu));
            const workerFaults = median(rs.map((x) => x.workerFaults));
            const parent = `parent CPU ${cpu.toFixed(1)} us and ${faults.toFixed(1)} page faults per job`;
            const cpuProbeNs = placement.get(s);
            figures.push({
              ...throughputFigure({ mechanism: 'process-pool', variant: s.variant, role: s.role, size: bytes }, 1, 1 / med, warmups.get(s)),
              ...(cpuProbeNs === undefined ? {} : { cpuProbeNs }),
              n: rounds,
              senderCpuUs: cpu,
              senderPageFaults: faults,
              ...(Number.isFinite(workerCpu) ? { receiverCpuUs: workerCpu, receiverPageFaults: workerFaults } : {}),
              note: `median of ${rounds} interleaved rounds, spread ${spread}; ${parent}; ${size} workers, ${inFlight} jobs in flight`,
            });
            summary.push(`${s.variant} ${rate(med)} (spread ${spread}, ${parent})`);
          }
          const ours = figures.find((f) => f.role === 'ipckit' && f.size === bytes)!;
          const wp = figures.find((f) => f.variant === 'workerpool (process mode)' && f.size === bytes);
          const ratio = wp ? `; ipckit / workerpool ${(ours.msgsPerSec! / wp.msgsPerSec!).toFixed(1)}x` : '';
          ctx.note(`process pool, ${fn === 'tiny' ? 'tiny jobs' : '1 MiB results'} (${size} workers, medians of ${rounds} interleaved rounds, measured under load): ${summary.join('; ')}${ratio}`);
        }
      } catch (e) {
        await kept.close(); // the next round starts pools of its own
        throw e;
      }
      return figures;
    },
    close: () => kept.close(),
  },
];
