/**
 * `ipckit bench`: runs every case (bench/<mechanism>.ts) and the Node baselines in rounds:
 * round 1 runs every case once (each case measures ours, then its C reference), round 2
 * again, and so on, so ours, C and Node are interleaved (A B A B ...) and a figure is the
 * median of its rounds with their spread; a ratio is the median of per-round ratios
 * (bench/report.ts). Prints the table and the targets, writes the JSON (docs/bench.md),
 * and on request an HTML page (bench/html.ts).
 *
 * Each module's cases run in a process of their own, kept for the whole run
 * (bench/case-process.ts says why); this process orders the rounds, shows the progress and
 * writes the report.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { IpcError } from '../src/core/errors.js';
import { removeSysvMessageQueue } from '../src/mechanisms/sysv/msg.js';
import { removeSysvSemaphoreSet } from '../src/mechanisms/sysv/sem.js';
import { readSysvTable } from '../src/os/sysvipc.js';
import type { FromCase, ToCase } from './case-process.js';
import { distanceLine, distanceNote, probeCpuDistance, type CpuDistance } from './distance.js';
import { caseProcessEnv, caseTag, endChild, FULL, haveCc, QUICK, removeNamedBy, type Budget, type Figure, type Scenario, type SysvMade, type Target } from './harness.js';
import { ALLOWED_CPUS, CHILD_CPU, onePlacementWhy, PARENT_CPU } from './placement.js';
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
  return { cpuModel: cpu[0]?.model, cpus: cpu.length, ...(ALLOWED_CPUS.length < cpu.length ? { cpusAllowed: [...ALLOWED_CPUS] } : {}), memoryGiB: +(totalmem() / 2 ** 30).toFixed(1), kernel: release(), node: process.version, cc, load: loadavg().map((l) => +l.toFixed(2)) };
}

const secs = (s: number): string => (s >= 90 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${Math.round(s)} s`);

/**
 * While a run lasts: the first SIGINT or SIGTERM asks it to stop (`signal` says which; `then`
 * tells the case processes); a second one exits at once (the case processes see the run go
 * and exit, and their children see them go).
 */
function stopOnSignals(tty: boolean, then: (signal: NodeJS.Signals) => void): { readonly signal: NodeJS.Signals | undefined; dispose(): void } {
  let signal: NodeJS.Signals | undefined;
  const on = (s: NodeJS.Signals): void => {
    if (signal) process.exit(s === 'SIGINT' ? 130 : 143);
    signal = s;
    process.stderr.write(`${tty ? '\r\x1b[K' : ''}ipckit bench: stopping after this measurement, removing what it made (${s} again: quit now)\n`);
    then(s);
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
  /** Its index in its module's `scenarios`: what the case process runs. */
  index: number;
  scenario: Scenario;
  seconds: number[];
}

const caseScript = fileURLToPath(new URL('./case-process.js', import.meta.url));

/**
 * The run, once a case process has exited: removes those System V objects it had made that
 * are still there and still look like its own (a private key, created by this user). An id
 * is not given again until its slot's sequence number wraps (64 x 65,536 allocations by
 * default, 64 x 128 with ipcmni_extend), so a live id is the same object. One made just
 * before a kill, before its id was sent, stays.
 */
function removeSysvMade(made: Iterable<SysvMade>): void {
  const uid = process.geteuid?.(); // a creator's cuid is its effective uid
  const tables = { msg: readSysvTable('msg'), sem: readSysvTable('sem') };
  for (const { kind, id } of made) {
    const row = tables[kind].find((r) => r[kind === 'msg' ? 'msqid' : 'semid'] === id);
    if (!row || row.key !== 0 || (uid !== undefined && row.cuid !== uid)) continue;
    try {
      if (kind === 'msg') removeSysvMessageQueue({ id });
      else removeSysvSemaphoreSet({ id });
    } catch (e) {
      // The run goes on; `ipckit sysv msg rm` (sem rm) or ipcrm can remove it.
      process.stderr.write(`ipckit bench: could not remove System V ${kind} ${id} left by a killed case process: ${(e as Error).message}\n`);
    }
  }
}

/**
 * What a module's case process starts with, from the module's optional exports: `caseEnv()`,
 * variables (read once at a process's start, as glibc's tunables are), and `caseExecArgv()`,
 * options for its `node` (V8's flags among them, which NODE_OPTIONS does not take), after the
 * run's own. The processes a case starts get neither (harness.ts runEnv).
 */
interface CaseStart {
  env?: Record<string, string>;
  execArgv?: string[];
}

/** A module's case process (bench/case-process.ts), as the run sees it. */
class CaseProcess {
  readonly #child: ChildProcess;
  readonly #exited: Promise<string>;
  #waiting: ((m: FromCase) => void) | undefined;
  /** It said it is ending (a SIGTERM of its own, a crash): the next round starts another. */
  #ending = false;
  /** The System V objects it made (madeSysv): removed by the run once it has exited. */
  readonly #sysvMade: SysvMade[] = [];
  /** It has exited. */
  #gone = false;

  private constructor(readonly module: string, start: CaseStart) {
    // The run's pid names what the cases make (harness.ts benchTag), so it can be told whose it is.
    this.#child = fork(caseScript, [module], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
      env: caseProcessEnv(process.pid, start.env),
      execArgv: [...process.execArgv, ...(start.execArgv ?? [])],
    });
    this.#exited = new Promise((resolve) => {
      this.#child.once('exit', (code, signal) => {
        // One killed (SIGKILL, out of memory) or crashed could not remove all it had made:
        // the run does (after a clean exit there is nothing left to find).
        this.#gone = true;
        try {
          removeNamedBy(caseTag(process.pid, this.#child.pid!));
        } catch (e) {
          // A nats store its server (killed with it) was still writing: the run goes on.
          process.stderr.write(`ipckit bench: could not remove all that a case process had named: ${(e as Error).message}\n`);
        }
        removeSysvMade(this.#sysvMade);
        resolve(signal ? `killed by ${signal}` : `exit code ${code}`);
      });
      // A fork that fails (EAGAIN: no more processes) emits 'error' and no 'exit'.
      this.#child.once('error', (e) => resolve(`error: ${e.message}`));
    });
    this.#child.on('message', (m: FromCase) => {
      if (m.type === 'ending') this.#ending = true;
      else if (m.type === 'made') {
        this.#sysvMade.push({ kind: m.kind, id: m.id });
        // Node may deliver a message after the 'exit' event: its object goes at once.
        if (this.#gone) removeSysvMade([{ kind: m.kind, id: m.id }]);
      }
      else this.#waiting?.(m);
    });
  }

  /** Starts it; resolves once its module is loaded. */
  static async start(module: string, start: CaseStart): Promise<CaseProcess> {
    const p = new CaseProcess(module, start);
    const ready = new Promise<void>((resolve) => (p.#waiting = (m) => m.type === 'ready' && resolve()));
    const exit = await Promise.race([ready.then(() => undefined), p.#exited]);
    p.#waiting = undefined;
    if (exit !== undefined) throw new Error(`its process could not start (${exit})`);
    return p;
  }

  /** Whether it can run a case: it runs and has not said it is ending. */
  get usable(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null && !this.#ending;
  }

  /** Runs one of its scenarios for a round: its figures, or its error (the process's exit, too). */
  async run(ask: Extract<ToCase, { type: 'run' }>, on: { progress(text: string): void; note(text: string): void }): Promise<Figure[]> {
    let settle!: { resolve: (f: Figure[]) => void; reject: (e: Error) => void };
    const result = new Promise<Figure[]>((resolve, reject) => (settle = { resolve, reject }));
    this.#waiting = (m) => {
      if (m.type === 'progress') on.progress(m.text);
      else if (m.type === 'note') on.note(m.text);
      else if (m.type === 'done') settle.resolve(m.figures);
      else if (m.type === 'failed') settle.reject(new Error(m.message));
    };
    void this.#exited.then((how) => settle.reject(new Error(`its process (${this.#child.pid}) ended during the round (${how})`)));
    this.#child.send(ask, (e) => e && settle.reject(e));
    try {
      return await result;
    } finally {
      this.#waiting = undefined;
    }
  }

  stop(signal: string): void {
    if (this.usable) this.#child.send({ type: 'stop', signal } satisfies ToCase, () => {});
  }

  /**
   * Ends what its scenarios keep (Scenario.close) and waits for it to exit; after 60 s it is
   * killed: what it had made is removed then (removeNamedBy, removeSysvMade).
   */
  close(): Promise<void> {
    // A send that fails (the process is exiting) reports to its callback; its exit ends the wait.
    return endChild(this.#child, () => this.#child.send({ type: 'close' } satisfies ToCase, () => {}), 60_000);
  }
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
  const caseStarts = new Map<string, CaseStart>();
  // --quick leaves out nats (it starts a server) unless --only names it.
  for (const m of MODULES.filter((m) => m === 'node' || (options.only ? options.only.includes(m) : !(options.quick && m === 'nats')))) {
    // Loaded here too for the cases' titles and targets; their code runs in their process.
    const mod = (await import(`./${m}.js`)) as { scenarios?: Scenario[]; caseEnv?: () => Record<string, string>; caseExecArgv?: () => string[] };
    (mod.scenarios ?? []).forEach((scenario, index) => cases.push({ module: m, index, scenario, seconds: [] }));
    // What its process starts with: variables (harness.ts caseProcessEnv) and Node's or V8's options.
    caseStarts.set(m, { env: mod.caseEnv?.(), execArgv: mod.caseExecArgv?.() });
  }

  // Progress on a terminal: round, case, what is being measured, time left (known after round 1).
  let current = '';
  let round = 1;
  let caseIndex = 0;
  // Each case's latest time: round 1, with new peers and code not yet optimized, is slower
  // than the rounds after it (a quick run's about 24 s, then about 17 s, on a 2-vCPU VM).
  const latest = (c: (typeof cases)[number]): number => c.seconds.at(-1) ?? 0;
  const left = (): string => {
    if (round === 1) return 'time left: known after round 1';
    const perRound = cases.reduce((a, c) => a + latest(c), 0);
    const thisRound = cases.slice(caseIndex).reduce((a, c) => a + latest(c), 0);
    return `about ${secs(thisRound + perRound * (budget.rounds - round))} left`;
  };
  // Ctrl-C (or SIGTERM) stops between two measurements, so every case's finally blocks
  // remove what it made and end its children (and its close() what it kept between
  // rounds); a second one quits at once.
  const processes = new Map<string, CaseProcess>();
  const stop = stopOnSignals(tty, (signal) => {
    for (const p of processes.values()) p.stop(signal);
  });
  // Each module's process, started together before round 1, and again when one has exited
  // or is ending (the one ending is waited for first).
  const processOf = async (module: string): Promise<CaseProcess> => {
    const p = processes.get(module);
    if (p?.usable) return p;
    await p?.close();
    const started = await CaseProcess.start(module, caseStarts.get(module) ?? {});
    processes.set(module, started);
    // A stop that came while it started.
    if (stop.signal) started.stop(stop.signal);
    return started;
  };
  const progress = (text: string): void => {
    if (tty) process.stderr.write(`\r\x1b[K  round ${round}/${budget.rounds} · ${current}: ${text.slice(0, 60)} · ${left()}`);
  };

  const rounds: Figure[][] = [];
  const distance: CpuDistance = { cpus: [PARENT_CPU, CHILD_CPU], probes: [] };
  const probe = (): number | null => {
    const p = probeCpuDistance();
    if ('ns' in p) return p.ns;
    distance.why ??= p.why;
    return null;
  };
  try {
    current = 'starting a process per module';
    progress('starting');
    await Promise.allSettled([...new Set(cases.map((c) => c.module))].map(processOf));
    for (round = 1; round <= budget.rounds && !stop.signal; round++) {
      const figures: Figure[] = [];
      const noted: string[] = [];
      const note = (text: string): void => {
        if (!noted.includes(text)) noted.push(text);
      };
      // The CPU distance before each case and after the last (bench/distance.ts): a case's figures carry the two around them.
      const probes: Array<number | null> = [];
      distance.probes.push(probes);
      let before = probe();
      probes.push(before);
      for (caseIndex = 0; caseIndex < cases.length && !stop.signal; caseIndex++) {
        const c = cases[caseIndex]!;
        current = c.scenario.title;
        const t0 = Date.now();
        let got: Figure[] = [];
        try {
          progress('starting');
          const p = await processOf(c.module);
          if (stop.signal) break;
          got = await p.run({ type: 'run', scenario: c.index, quick: options.quick, round, rounds: budget.rounds, budget }, { progress, note });
        } catch (e) {
          if (!stop.signal) note(`${c.scenario.title}: round ${round} failed: ${(e as Error).message}`);
        }
        c.seconds.push(+((Date.now() - t0) / 1000).toFixed(2));
        const after = probe();
        probes.push(after);
        figures.push(...got.map((f): Figure => (before === null && after === null ? f : { ...f, cpuRoundTripNs: [before, after] })));
        before = after;
      }
      rounds.push(figures);
      roundNotes.push(noted);
    }
  } finally {
    // Together: each ends its own kept peers and children (0.4 s of a quick run one by one).
    await Promise.allSettled([...processes.values()].map((p) => p.close()));
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
  const moved = distanceNote(distance);
  if (moved) notes.push(moved);
  for (const f of rounds.flat()) if (f.notMeasured) {
    const n = `NOT MEASURED: ${f.variant} (${f.mechanism}, ${f.metric}, ${sizeLabel(f.size)}): ${f.notMeasured}`;
    if (!notes.includes(n)) notes.push(n);
  }

  const figures = aggregate(rounds);
  const targets: Target[] = cases.flatMap((c) => c.scenario.targets ?? []);
  // A target whose figure this run does not measure (a size or placement --quick leaves out) is not listed.
  const oneCpu = onePlacementWhy();
  const all = targets.map((t) => evaluate(t, figures, oneCpu));
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
    cpuDistance: distance,
  };

  const out: string[] = [];
  out.push(`ipckit bench${options.quick ? ' --quick' : ''}: ${machineLine(report.machine)}; load average ${report.machine.load?.join(' ')}`);
  const apart = distanceLine(distance);
  if (apart) out.push(apart);
  out.push(`${budget.rounds} rounds; each figure is the median of its rounds, (min-max) the spread; vs X is the median of per-round ratios ours / X (RTT: lower is better; one-way: higher is better).`);
  if (figures.some((f) => f.far)) out.push("The host moved the CPUs: a figure measured at both placements is the median of its rounds with the CPUs close, then the median of its other rounds ('CPUs far'); targets and ratios take every round.");
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
