/**
 * `ipckit bench`: runs every scenario (bench/<mechanism>.ts) and the Node baselines in
 * one run, prints a table with each figure's ratio to the C reference and to what a Node
 * user has today, checks the issues' targets, and writes bench-results.json.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { compileC, FULL, haveCc, QUICK, type BenchContext, type Figure, type Scenario, type Target } from './harness.js';

/** Scenario modules, in the order they run. `node` (the baselines) always runs. */
export const MODULES = ['node', 'pipe', 'fifo', 'popen', 'mqueue', 'sysv', 'semaphore', 'mutex', 'shm', 'workqueue', 'process-pool', 'socket', 'signal', 'nats', 'process'];

export interface BenchOptions {
  quick: boolean;
  only?: string[] | undefined;
  out: string;
}

interface TargetResult extends Target {
  value?: number;
  reference?: number;
  met?: boolean;
}

function fmtRate(f: Figure): string {
  if (f.msgsPerSec === undefined) return '-';
  const r = f.msgsPerSec;
  const rate = r >= 1e6 ? `${(r / 1e6).toFixed(2)}M` : r >= 1e3 ? `${(r / 1e3).toFixed(1)}k` : r.toFixed(0);
  return `${rate}/s ${f.mbPerSec! >= 1000 ? `${(f.mbPerSec! / 1000).toFixed(2)} GB/s` : `${f.mbPerSec!.toFixed(0)} MB/s`}`;
}

function fmtRtt(f: Figure): string {
  return f.p50Us === undefined ? '-' : `${f.p50Us.toFixed(f.p50Us < 10 ? 2 : 1)} / ${f.p99Us!.toFixed(f.p99Us! < 10 ? 2 : 1)} us`;
}

const fmt = (f: Figure | undefined): string => (f === undefined ? '-' : f.metric === 'rtt' ? fmtRtt(f) : fmtRate(f));

/** ours relative to a baseline: throughput as a multiple (higher is better), RTT as a multiple of the baseline's p50 (lower is better). */
function ratio(ours: Figure, base: Figure | undefined): string {
  if (!base) return '';
  if (ours.metric === 'rtt') return ours.p50Us && base.p50Us ? `${(ours.p50Us / base.p50Us).toFixed(2)}x` : '';
  return ours.msgsPerSec && base.msgsPerSec ? `${(ours.msgsPerSec / base.msgsPerSec).toFixed(2)}x` : '';
}

function sizeLabel(size: number): string {
  return size === 0 ? '-' : size >= 1024 ? `${size / 1024} KiB` : `${size} B`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (c ?? '').padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

function evaluate(t: Target, figures: Figure[]): TargetResult {
  const ours = figures.find((f) => f.mechanism === t.mechanism && f.metric === t.metric && (t.size === undefined || f.size === t.size) && (t.variant === undefined ? f.role === 'ipckit' : f.variant === t.variant));
  if (!ours) return { ...t };
  if (t.minMsgsPerSec !== undefined) return { ...t, value: ours.msgsPerSec!, met: ours.msgsPerSec! >= t.minMsgsPerSec };
  if (t.minMBPerSec !== undefined) return { ...t, value: ours.mbPerSec!, met: ours.mbPerSec! >= t.minMBPerSec };
  if (t.maxP50Us !== undefined) return { ...t, value: ours.p50Us!, met: ours.p50Us! <= t.maxP50Us };
  if (t.maxRatio !== undefined && t.compareTo) {
    const base = figures.find((f) => f.mechanism === (t.compareTo!.mechanism ?? t.mechanism) && f.variant === t.compareTo!.variant && f.metric === t.metric && (t.size === undefined || f.size === t.size));
    if (!base) return { ...t, value: ours.p50Us! };
    const v = t.metric === 'rtt' ? ours.p50Us! / base.p50Us! : base.msgsPerSec! / ours.msgsPerSec!;
    return { ...t, value: v, reference: t.metric === 'rtt' ? base.p50Us! : base.msgsPerSec!, met: v <= t.maxRatio };
  }
  return { ...t };
}

function machine(): Record<string, unknown> {
  const cpu = cpus();
  let cc = 'none';
  if (haveCc()) cc = execFileSync('cc', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? 'cc';
  return { cpuModel: cpu[0]?.model, cpus: cpu.length, memoryGiB: +(totalmem() / 2 ** 30).toFixed(1), kernel: release(), node: process.version, cc };
}

export async function runBench(options: BenchOptions): Promise<number> {
  const notes: string[] = [];
  const tty = process.stderr.isTTY;
  const ctx: BenchContext = {
    quick: options.quick,
    budget: options.quick ? QUICK : FULL,
    cProgram: (name, libs) => {
      const bin = compileC(name, libs);
      if (!bin && !notes.some((n) => n.startsWith('no C compiler'))) notes.push('no C compiler (cc) on this machine: the C reference figures were skipped');
      return bin;
    },
    note: (text) => notes.push(text),
    progress: (text) => {
      if (tty) process.stderr.write(`\r\x1b[K  measuring ${text}`);
    },
  };
  const started = Date.now();
  const figures: Figure[] = [];
  const targets: Target[] = [];
  const selected = MODULES.filter((m) => m === 'node' || !options.only || options.only.includes(m));
  if (options.only) {
    const unknown = options.only.filter((m) => !MODULES.includes(m));
    if (unknown.length) throw new Error(`unknown bench ${unknown.join(', ')}; known: ${MODULES.join(', ')}`);
  }
  for (const m of selected) {
    const mod = (await import(`./${m}.js`)) as { scenarios?: Scenario[] };
    for (const s of mod.scenarios ?? []) {
      ctx.progress(s.title);
      try {
        figures.push(...(await s.run(ctx)));
      } catch (e) {
        notes.push(`${s.title}: failed: ${(e as Error).message}`);
      }
      targets.push(...(s.targets ?? []));
    }
  }
  if (tty) process.stderr.write('\r\x1b[K');

  // The table: one row per figure of ours, with the C reference and Node baselines beside it.
  const baseline = (variant: string, f: Figure): Figure | undefined =>
    figures.find((b) => b.mechanism === 'node' && b.variant === variant && b.metric === f.metric && b.size === f.size);
  const header = ['mechanism', 'variant', 'size', 'metric', 'ipckit', 'C reference', 'vs C', 'process.send', 'vs send', 'stdio framing', 'vs stdio'];
  const rows: string[][] = [header];
  for (const f of figures.filter((x) => x.role === 'ipckit')) {
    const c = figures.find((x) => x.role === 'c' && x.mechanism === f.mechanism && x.metric === f.metric && x.size === f.size);
    const send = baseline('process.send', f);
    const stdio = baseline('stdio framing', f);
    rows.push([
      f.mechanism,
      f.variant,
      sizeLabel(f.size),
      f.metric === 'rtt' ? 'RTT p50/p99' : 'one-way',
      fmt(f),
      fmt(c),
      c ? ratio(f, c) : '',
      fmt(send),
      ratio(f, send as Figure),
      fmt(stdio),
      ratio(f, stdio as Figure),
    ]);
  }
  const results = targets.map((t) => evaluate(t, figures));
  const out: string[] = [];
  out.push(`ipckit bench${options.quick ? ' --quick' : ''}: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), Linux ${release()}, Node ${process.version}`);
  out.push('RTT: one round trip, p50 / p99. one-way: messages/s and payload bytes/s. vs X: ours / X (RTT: lower is better; one-way: higher is better).');
  out.push('');
  out.push(table(rows));
  const others = figures.filter((f) => f.role !== 'ipckit' && f.mechanism !== 'node' && !figures.some((o) => o.role === 'ipckit' && o.mechanism === f.mechanism && o.metric === f.metric && o.size === f.size));
  if (others.length) {
    out.push('', 'Reference figures with no ipckit counterpart:');
    out.push(table([['mechanism', 'variant', 'size', 'metric', 'figure'], ...others.map((f) => [f.mechanism, f.variant, sizeLabel(f.size), f.metric, fmt(f)])]));
  }
  if (results.length) {
    out.push('', 'Targets (from the issues; measured in this run):');
    for (const r of results) {
      const status = r.met === undefined ? 'NOT MEASURED' : r.met ? 'met' : 'MISSED';
      const value = r.value === undefined ? '' : r.maxRatio !== undefined ? ` (${r.value.toFixed(2)}x)` : r.minMBPerSec !== undefined ? ` (${(r.value / 1000).toFixed(2)} GB/s)` : r.maxP50Us !== undefined ? ` (${r.value.toFixed(2)} us)` : ` (${Math.round(r.value).toLocaleString('en-US')} msg/s)`;
      out.push(`  [${status}] ${r.text}${value}`);
      if (r.met === false && r.ifMissed) out.push(`      why: ${r.ifMissed}`);
    }
  }
  if (notes.length) out.push('', 'Notes:', ...notes.map((n) => `  - ${n}`));
  out.push('', `${figures.length} figures in ${((Date.now() - started) / 1000).toFixed(1)} s; written to ${options.out}`);
  process.stdout.write(`${out.join('\n')}\n`);
  writeFileSync(
    options.out,
    `${JSON.stringify({ date: new Date().toISOString(), quick: options.quick, machine: machine(), budget: ctx.budget, figures, targets: results, notes }, null, 2)}\n`,
  );
  return 0;
}
