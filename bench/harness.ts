/**
 * What every bench scenario shares: the figure and target types, the run budget
 * (quick or full), latency statistics, starting the Node child side of a scenario, and
 * compiling and running the C reference programs of bench/c/.
 *
 * Method (the same for every mechanism, and the same as the reference measurements):
 * - RTT: the parent sends a message, the child echoes it; each round trip is timed in the
 *   parent; the first min(1000, n/20) are warm-up and dropped; p50 and p99 are reported.
 * - One-way throughput: the parent sends as fast as the mechanism lets it; the child
 *   receives and checks every message's sequence number and acknowledges the last one;
 *   msgs/s = messages / (first send .. acknowledgement).
 * - Every figure is measured between two real processes, in the same run as its baselines.
 */
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export type Metric = 'rtt' | 'throughput';
/** Whose figure: ours, the C limit, or what a Node user has today. */
export type Role = 'ipckit' | 'c' | 'node';

export interface Figure {
  mechanism: string;
  /** e.g. 'ipckit', 'ipckit (event loop)', 'C pipe(2)', 'process.send' */
  variant: string;
  role: Role;
  metric: Metric;
  /** Message size in bytes (0 when there is no payload). */
  size: number;
  /** Round trips or messages measured. */
  n: number;
  p50Us?: number;
  p99Us?: number;
  msgsPerSec?: number;
  mbPerSec?: number;
  note?: string;
}

/**
 * A target from an issue. `compareTo` names the variant of the same mechanism (or of
 * another) whose figure the ratio is taken against; ratios are of p50 RTT.
 */
/** Why round trips of 64 KiB messages on byte streams and sockets cost more than C's (a finding we measured). */
export const BIG_MESSAGE_RTT_CAUSE =
  'a received message is a fresh buffer the application owns: copying 64 KiB out of the hot read buffer into new memory costs ~9 us per message here (measured: without the copy a Unix stream round trip drops from 108 to 90 us); C reads into the same cached buffer every time';

export interface Target {
  mechanism: string;
  variant?: string;
  metric: Metric;
  size?: number;
  minMsgsPerSec?: number;
  minMBPerSec?: number;
  maxP50Us?: number;
  maxRatio?: number;
  compareTo?: { mechanism?: string; variant: string };
  text: string;
  /** The cause we measured for missing it, printed under a MISSED line (a finding, not an excuse). */
  ifMissed?: string;
}

export interface Scenario {
  /** The name `--only` matches (the mechanism's name). */
  name: string;
  title: string;
  run(ctx: BenchContext): Promise<Figure[]>;
  targets?: Target[];
}

export interface Budget {
  /** Max round trips per RTT figure. */
  rttMessages: number;
  /** Max seconds per RTT figure. */
  rttSeconds: number;
  /** Max messages per throughput figure. */
  thrMessages: number;
  /** Max seconds per throughput figure. */
  thrSeconds: number;
}

export const QUICK: Budget = { rttMessages: 3000, rttSeconds: 0.25, thrMessages: 2_000_000, thrSeconds: 0.25 };
export const FULL: Budget = { rttMessages: 50_000, rttSeconds: 1.0, thrMessages: 20_000_000, thrSeconds: 1.0 };

export const SIZES = [64, 1024, 65536];

export const packageRoot = fileURLToPath(new URL('../..', import.meta.url));
const childScript = fileURLToPath(new URL('./child.js', import.meta.url));

export interface BenchContext {
  quick: boolean;
  budget: Budget;
  /** Path of the compiled C reference program `bench/c/<name>.c`, or null (no compiler: noted). */
  cProgram(name: string, libs?: string[]): string | null;
  /** Records a remark printed under the table (a skipped figure, a kernel limit). */
  note(text: string): void;
  /** Updates the progress line (shown on a terminal only). */
  progress(text: string): void;
}

/** p50/p99 of round-trip samples in nanoseconds, after dropping the warm-up. */
export function latency(samplesNs: number[]): { p50Us: number; p99Us: number; n: number } {
  const warm = Math.min(1000, Math.floor(samplesNs.length / 20));
  const s = samplesNs.slice(warm).sort((a, b) => a - b);
  if (s.length === 0) return { p50Us: NaN, p99Us: NaN, n: 0 };
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))]! / 1000;
  return { p50Us: at(0.5), p99Us: at(0.99), n: s.length };
}

export function throughputFigure(base: Omit<Figure, 'n' | 'msgsPerSec' | 'mbPerSec' | 'metric'>, messages: number, seconds: number): Figure {
  const msgsPerSec = messages / seconds;
  return { ...base, metric: 'throughput', n: messages, msgsPerSec, mbPerSec: (msgsPerSec * base.size) / 1e6 };
}

export const now = (): bigint => process.hrtime.bigint();

/** A message of `size` bytes whose first 8 bytes hold `seq` (little-endian). */
export function stamp(buf: Uint8Array, seq: number): Uint8Array {
  if (buf.length >= 8) new DataView(buf.buffer, buf.byteOffset, buf.length).setFloat64(0, seq, true);
  return buf;
}

export function seqOf(buf: Uint8Array): number {
  return buf.length >= 8 ? new DataView(buf.buffer, buf.byteOffset, buf.length).getFloat64(0, true) : -1;
}

export interface BenchChild {
  child: ChildProcess;
  /** The next JSON line the child prints on stdout. */
  nextLine(): Promise<any>;
  /** Waits for the child to exit; kills it if it has not within `ms`. */
  finish(ms?: number): Promise<void>;
}

/**
 * Starts the child side of a scenario: `node dist/bench/child.js <module> <role> <json>`;
 * the child talks back in JSON lines on stdout. `stdio` entries from index 3 are passed on.
 */
export function startChild(module: string, role: string, args: unknown, extraStdio: Array<number | 'ignore' | 'pipe'> = []): BenchChild {
  const child = spawn(process.execPath, [childScript, module, role, JSON.stringify(args ?? {})], {
    stdio: ['ignore', 'pipe', 'inherit', ...extraStdio] as StdioOptions,
  });
  const rl = createInterface({ input: child.stdout! });
  const lines: string[] = [];
  const waiting: Array<{ resolve: (v: any) => void; reject: (e: Error) => void }> = [];
  rl.on('line', (line) => {
    const w = waiting.shift();
    if (w) w.resolve(JSON.parse(line));
    else lines.push(line);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => {
    for (const w of waiting.splice(0)) w.reject(new Error(`bench child ${module}/${role} exited before answering`));
  });
  return {
    child,
    nextLine: () =>
      new Promise((resolve, reject) => {
        const l = lines.shift();
        if (l !== undefined) resolve(JSON.parse(l));
        else if (child.exitCode !== null || child.signalCode !== null) reject(new Error(`bench child ${module}/${role} has exited`));
        else waiting.push({ resolve, reject });
      }),
    finish: async (ms = 5000) => {
      const t = setTimeout(() => child.kill('SIGKILL'), ms);
      await exited;
      clearTimeout(t);
    },
  };
}

/** In a child: prints one JSON line for the parent. */
export function tell(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

// --- C reference programs ---

const cDir = join(packageRoot, 'bench', 'c');
const cBuildDir = join(packageRoot, 'build', 'bench-c');
let ccChecked: boolean | undefined;

export function haveCc(): boolean {
  if (ccChecked === undefined) ccChecked = spawnSync('cc', ['--version'], { stdio: 'ignore' }).status === 0;
  return ccChecked;
}

/** Compiles bench/c/<name>.c (with harness.h) unless the binary is newer; null without a compiler. */
export function compileC(name: string, libs: string[] = []): string | null {
  if (!haveCc()) return null;
  const src = join(cDir, `${name}.c`);
  const bin = join(cBuildDir, name);
  const header = join(cDir, 'harness.h');
  mkdirSync(cBuildDir, { recursive: true });
  const fresh = existsSync(bin) && statSync(bin).mtimeMs >= Math.max(statSync(src).mtimeMs, statSync(header).mtimeMs);
  if (!fresh) {
    const r = spawnSync('cc', ['-O2', '-Wall', '-o', bin, src, ...libs, '-lrt', '-lpthread'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`cc failed for bench/c/${name}.c:\n${r.stderr}`);
  }
  return bin;
}

export interface CResult {
  p50_us?: number;
  p99_us?: number;
  n?: number;
  msgs_per_sec?: number;
  mb_per_sec?: number;
  note?: string;
}

/** Runs a C reference program: `<bin> lat|thr SIZE MAX_MSGS MAX_SECONDS [extra...]`, which prints one JSON line. */
export function runC(bin: string, mode: 'lat' | 'thr', size: number, budget: Budget, extra: string[] = []): CResult {
  const [msgs, secs] = mode === 'lat' ? [budget.rttMessages, budget.rttSeconds] : [budget.thrMessages, budget.thrSeconds];
  const r = spawnSync(bin, [mode, String(size), String(msgs), String(secs), ...extra], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${bin} ${mode} ${size} failed (${r.status ?? r.signal}): ${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop() ?? '{}';
  return JSON.parse(line) as CResult;
}

/** A Figure from a C program's result. */
export function cFigure(mechanism: string, variant: string, metric: Metric, size: number, r: CResult): Figure {
  if (metric === 'rtt') return { mechanism, variant, role: 'c', metric, size, n: r.n ?? 0, p50Us: r.p50_us!, p99Us: r.p99_us!, ...(r.note ? { note: r.note } : {}) };
  return { mechanism, variant, role: 'c', metric, size, n: r.n ?? 0, msgsPerSec: r.msgs_per_sec!, mbPerSec: r.mb_per_sec ?? (r.msgs_per_sec! * size) / 1e6, ...(r.note ? { note: r.note } : {}) };
}

/** Runs the C program for every size and both metrics (skips with a note when there is no compiler). */
export function cFigures(ctx: BenchContext, program: string, mechanism: string, variant: string, sizes: number[], libs: string[] = [], extra: string[] = []): Figure[] {
  const bin = ctx.cProgram(program, libs);
  if (!bin) return [];
  const out: Figure[] = [];
  for (const size of sizes) {
    ctx.progress(`${mechanism}: ${variant} ${size} B`);
    out.push(cFigure(mechanism, variant, 'rtt', size, runC(bin, 'lat', size, ctx.budget, extra)));
    out.push(cFigure(mechanism, variant, 'throughput', size, runC(bin, 'thr', size, ctx.budget, extra)));
  }
  return out;
}
