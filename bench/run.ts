/**
 * `ipckit bench`: runs every case (bench/<mechanism>.ts) and the Node baselines in rounds:
 * round 1 runs every case once (each case measures ours, then its C reference), round 2
 * again, and so on, so ours, C and Node are interleaved (A B A B ...) and a figure is the
 * median of its rounds with their spread; a ratio is the median of per-round ratios
 * (bench/report.ts). Prints the table and the targets, writes the JSON (docs/bench.md),
 * and on request an HTML page (bench/html.ts).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { IpcError } from '../src/core/errors.js';
import { compileC, FULL, haveCc, QUICK, type BenchContext, type Budget, type Figure, type Scenario, type Target } from './harness.js';
import { aggregate, evaluate, machineLine, mainTable, SCHEMA_VERSION, sizeLabel, table, targetLines, fmtFigure, type BenchReport } from './report.js';

/** Scenario modules, in the order they run. `node` (the baselines) always runs. */
export const MODULES = ['node', 'pipe', 'fifo', 'popen', 'mqueue', 'sysv', 'semaphore', 'mutex', 'shm', 'workqueue', 'process-pool', 'socket', 'signal', 'nats', 'process'];

/**
 * What is wrong with an `only` list (names that are no bench, and the choices), or undefined;
 * the CLI says it as a usage error, runBench as an IpcError.
 */
export function unknownBenches(only: readonly string[] | undefined): string | undefined {
  const unknown = (only ?? []).filter((m) => !MODULES.includes(m));
  if (!unknown.length) return undefined;
  // The ring is a shared-memory structure: its figures come from the shm case.
  const hint = unknown.includes('ring') ? ' (the shared-memory ring is measured by shm)' : '';
  return `${unknown.join(',')}: no such bench${hint}; choose from ${MODULES.filter((m) => m !== 'node').join(',')}`;
}

export interface BenchOptions {
  quick: boolean;
  only?: string[] | undefined;
  out: string;
  /** Rounds (default: the budget's: 3 quick, 5 full). */
  rounds?: number | undefined;
  /** Also write the HTML page here. */
  html?: string | undefined;
}

function machine(): BenchReport['machine'] {
  const cpu = cpus();
  let cc = 'none';
  if (haveCc()) cc = execFileSync('cc', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? 'cc';
  return { cpuModel: cpu[0]?.model, cpus: cpu.length, memoryGiB: +(totalmem() / 2 ** 30).toFixed(1), kernel: release(), node: process.version, cc, load: loadavg().map((l) => +l.toFixed(2)) };
}

const secs = (s: number): string => (s >= 90 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${Math.round(s)} s`);

/** Thrown by a stopped run's progress calls: the case unwinds through its finally blocks. */
class BenchStopped extends Error {
  constructor(signal: string) {
    super(`stopped by ${signal}`);
  }
}

/**
 * While a run lasts: the first SIGINT or SIGTERM asks it to stop (`signal` says which); a
 * second one exits at once (the bench children see their parent go and exit too).
 */
function stopOnSignals(tty: boolean): { readonly signal: NodeJS.Signals | undefined; dispose(): void } {
  let signal: NodeJS.Signals | undefined;
  const on = (s: NodeJS.Signals): void => {
    if (signal) process.exit(s === 'SIGINT' ? 130 : 143);
    signal = s;
    process.stderr.write(`${tty ? '\r\x1b[K' : ''}ipckit bench: stopping after this measurement, removing what it made (${s} again: quit now)\n`);
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  return {
    get signal() {
      return signal;
    },
    dispose() {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
    },
  };
}

interface Case {
  module: string;
  scenario: Scenario;
  seconds: number[];
}

export async function runBench(options: BenchOptions): Promise<number> {
  const unknown = unknownBenches(options.only);
  if (unknown) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `only: ${unknown}`, { details: { only: options.only } });
  const base = options.quick ? QUICK : FULL;
  const budget: Budget = { ...base, rounds: options.rounds ?? base.rounds };
  const tty = process.stderr.isTTY === true;
  const started = Date.now();
  const notes: string[] = [];
  const roundNotes: string[][] = [];
  const cases: Case[] = [];
  // --quick leaves out nats (it starts a server) unless --only names it.
  for (const m of MODULES.filter((m) => m === 'node' || (options.only ? options.only.includes(m) : !(options.quick && m === 'nats')))) {
    const mod = (await import(`./${m}.js`)) as { scenarios?: Scenario[] };
    for (const scenario of mod.scenarios ?? []) cases.push({ module: m, scenario, seconds: [] });
  }

  // Progress on a terminal: round, case, what is being measured, time left (known after round 1).
  let current = '';
  let round = 1;
  let caseIndex = 0;
  const left = (): string => {
    if (round === 1) return 'time left: known after round 1';
    const perRound = cases.reduce((a, c) => a + (c.seconds[0] ?? 0), 0);
    const thisRound = cases.slice(caseIndex).reduce((a, c) => a + (c.seconds[0] ?? 0), 0);
    return `about ${secs(thisRound + perRound * (budget.rounds - round))} left`;
  };
  // Ctrl-C (or SIGTERM) stops between two measurements, so every case's finally blocks
  // remove what it made and end its children (and its close() what it kept between
  // rounds); a second one quits at once.
  const stop = stopOnSignals(tty);
  const progress = (text: string): void => {
    if (stop.signal) throw new BenchStopped(stop.signal);
    if (tty) process.stderr.write(`\r\x1b[K  round ${round}/${budget.rounds} · ${current}: ${text.slice(0, 60)} · ${left()}`);
  };

  const rounds: Figure[][] = [];
  try {
    for (round = 1; round <= budget.rounds && !stop.signal; round++) {
      const figures: Figure[] = [];
      const noted: string[] = [];
      const ctx: BenchContext = {
        quick: options.quick,
        round,
        rounds: budget.rounds,
        budget,
        cProgram: (name, libs) => {
          const bin = compileC(name, libs);
          if (!bin && !noted.some((n) => n.startsWith('no C compiler'))) noted.push('no C compiler (cc) on this machine: the C reference figures were skipped (NOT MEASURED)');
          return bin;
        },
        note: (text) => noted.push(text),
        progress,
      };
      for (caseIndex = 0; caseIndex < cases.length && !stop.signal; caseIndex++) {
        const c = cases[caseIndex]!;
        current = c.scenario.title;
        const t0 = Date.now();
        try {
          progress('starting');
          figures.push(...(await c.scenario.run(ctx)));
        } catch (e) {
          if (!stop.signal) noted.push(`${c.scenario.title}: round ${round} failed: ${(e as Error).message}`);
        }
        c.seconds.push(+((Date.now() - t0) / 1000).toFixed(2));
      }
      rounds.push(figures);
      roundNotes.push(noted);
    }
  } finally {
    for (const c of cases) await c.scenario.close?.().catch(() => {});
  }
  if (tty) process.stderr.write('\r\x1b[K');
  stop.dispose();
  if (stop.signal) {
    process.stderr.write(`ipckit bench: stopped by ${stop.signal} in round ${Math.min(round, budget.rounds)}, ${current}; what it made is removed, nothing was written\n`);
    return stop.signal === 'SIGINT' ? 130 : 143;
  }
  // Notes: the last round's (its remarks describe figures like every round's), plus every failure of any round.
  notes.push(...(roundNotes.at(-1) ?? []));
  for (const n of roundNotes.slice(0, -1).flat()) if (/failed|not measured|killed/i.test(n) && !notes.includes(n)) notes.push(n);
  for (const f of rounds.flat()) if (f.notMeasured) {
    const n = `NOT MEASURED: ${f.variant} (${f.mechanism}, ${f.metric}, ${sizeLabel(f.size)}): ${f.notMeasured}`;
    if (!notes.includes(n)) notes.push(n);
  }

  const figures = aggregate(rounds);
  const targets: Target[] = cases.flatMap((c) => c.scenario.targets ?? []);
  // A target whose figure this run does not measure (a size or placement --quick leaves out) is not listed.
  const all = targets.map((t) => evaluate(t, figures));
  const results = all.filter((t) => t.notMeasured !== 'not part of this run');
  if (all.length > results.length) notes.push(`${all.length - results.length} targets concern figures this run does not measure${options.quick ? ' (--quick measures 64 B only, the pinned placement, no one-CPU ring, no datagram socketpair and no nats: run the full bench)' : ''}`);
  const report: BenchReport = {
    schemaVersion: SCHEMA_VERSION,
    date: new Date().toISOString(),
    quick: options.quick,
    machine: machine(),
    budget,
    rounds: budget.rounds,
    seconds: +((Date.now() - started) / 1000).toFixed(1),
    cases: cases.map((c) => ({ name: c.module, title: c.scenario.title, seconds: c.seconds })),
    figures,
    targets: results,
    notes,
  };

  const out: string[] = [];
  out.push(`ipckit bench${options.quick ? ' --quick' : ''}: ${machineLine(report.machine)}; load average ${report.machine.load?.join(' ')}`);
  out.push(`${budget.rounds} rounds; each figure is the median of its rounds, (min-max) the spread; vs X is the median of per-round ratios ours / X (RTT: lower is better; one-way: higher is better).`);
  out.push('RTT: one round trip, p50. one-way: messages/s and payload bytes/s.');
  out.push('');
  out.push(mainTable(figures));
  const others = figures.filter((f) => f.role !== 'ipckit' && f.mechanism !== 'node' && !figures.some((o) => o.role === 'ipckit' && o.mechanism === f.mechanism && o.metric === f.metric && o.size === f.size));
  if (others.length) {
    out.push('', 'Reference figures with no ipckit counterpart:');
    out.push(table([['mechanism', 'variant', 'size', 'metric', 'figure'], ...others.map((f) => [f.mechanism, f.variant, sizeLabel(f.size), f.metric, fmtFigure(f)])]));
  }
  if (results.length) out.push('', 'Targets (from the issues; measured in this run):', ...targetLines(results));
  if (notes.length) out.push('', 'Notes:', ...notes.map((n) => `  - ${n}`));
  out.push('', `${figures.length} figures, ${budget.rounds} rounds, in ${report.seconds} s; written to ${options.out}${options.html ? ` and ${options.html}` : ''}`);
  process.stdout.write(`${out.join('\n')}\n`);
  writeFileSync(options.out, `${JSON.stringify(report, null, 2)}\n`);
  if (options.html) {
    const { renderHtml } = await import('./html.js');
    writeFileSync(options.html, renderHtml(report));
  }
  return 0;
}
