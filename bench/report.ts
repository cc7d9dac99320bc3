/**
 * From the rounds of a run to what `ipckit bench` reports (pure, no I/O; tested in
 * test/bench.test.ts): figures summarized over rounds, ratios as medians of per-round
 * ratios, the targets judged, the table and the JSON document (schema: docs/bench.md).
 */
import type { Budget, Figure, Metric, Role, Target } from './harness.js';
import { placementCut, roundProbe, roundsByDistance, type CpuDistance } from './distance.js';
import { ratioOfRounds, summarize, type Summary } from './stats.js';

/** Bump when a field changes meaning or goes away (docs/bench.md lists every field). */
export const SCHEMA_VERSION = 3;

/** A ratio between a figure of ours and a reference, over the rounds where both were measured. */
export interface Ratio {
  /** The reference's variant (e.g. 'C pipe(2)', 'process.send'). */
  against: string;
  /** Median of the per-round ratios. RTT: ours / theirs (lower is better); one-way: ours / theirs (higher is better). */
  ratio: number;
  min: number;
  max: number;
  rounds: number;
}

/** One figure of the report: a case's value over every round. */
export interface ReportFigure {
  mechanism: string;
  variant: string;
  role: Role;
  metric: Metric;
  size: number;
  /** The rounds `value` summarizes: those that measured it, or with `far`, those with the CPUs close. */
  rounds: number;
  /** The headline value per round (RTT: p50 in µs; one-way: messages/s); null where a round did not measure it. */
  perRound: Array<number | null>;
  /** Median of those rounds' values and their spread (smallest and largest round). */
  value: number;
  min: number;
  max: number;
  /**
   * Where the host moved the two CPUs during the run (cpuDistance): the placement of the
   * rounds `value` summarizes, 'close' or 'far' (all its rounds were far).
   */
  cpus?: 'close' | 'far';
  /** With cpus 'close': the figure's other rounds (a probe before or after its measurement read far or failed; without them, a probe around its case did), summarized. */
  far?: Summary;
  /** Medians over the rounds `value` summarizes. */
  p50Us?: number;
  p99Us?: number;
  msgsPerSec?: number;
  mbPerSec?: number;
  /** One-way, where measured (medians over the rounds): the sending and the receiving process's CPU per message (µs), the receiver's minor page faults per message. */
  senderCpuUs?: number;
  receiverCpuUs?: number;
  receiverPageFaults?: number;
  /** The process pool: its process's minor page faults per job (median over the rounds). */
  senderPageFaults?: number;
  /**
   * One-way: whose clock timed the rate (harness.ts DeliveryClock): 'receiver' in every round,
   * 'sender' (first send to acknowledgement) in every round, or 'mixed'.
   */
  timing?: 'receiver' | 'sender' | 'mixed';
  /** Round trips or messages measured, all rounds together. */
  n: number;
  /**
   * Per round, the CPU distance (a cache line's round trip between the two CPUs, ns) probed
   * just before and just after the figure's case (bench/distance.ts); null where not probed.
   */
  cpuRoundTripNs?: Array<[number | null, number | null] | null>;
  /** Per round, the farther of the probes taken just before and just after the figure's measurement, in ns, which places the round; null where one failed or the round did not measure the figure. */
  cpuProbeNs?: Array<number | null>;
  /** How many rounds' warm-ups reached a steady rate, and the median warm-up in seconds. */
  warmup?: { steadyRounds: number; seconds: number };
  note?: string;
  /** Why it was not measured (no round produced a value). */
  notMeasured?: string;
  /** Ours only: against the C reference and the Node baselines. */
  vsC?: Ratio;
  vsSend?: Ratio;
  vsStdio?: Ratio;
}

export interface TargetResult extends Omit<Target, 'ifMissed'> {
  /** The measured cause printed under MISSED (built from the run's figures where the target says how). */
  ifMissed?: string;
  /** The measured value: msg/s, MB/s, µs, or a ratio (median of per-round ratios). */
  value?: number;
  min?: number;
  max?: number;
  met?: boolean;
  /** Why it could not be judged (a reference that was not measured, with its cause). */
  notMeasured?: string;
}

/** The headline value of one figure of one round. */
export function headline(f: Figure): number | undefined {
  if (f.notMeasured) return undefined;
  const v = f.metric === 'rtt' ? f.p50Us : f.msgsPerSec;
  return v !== undefined && Number.isFinite(v) ? v : undefined;
}

export const figureKey = (f: Pick<Figure, 'mechanism' | 'variant' | 'metric' | 'size'>): string => `${f.mechanism}\u0000${f.variant}\u0000${f.metric}\u0000${f.size}`;

/**
 * Which rounds a figure's value summarizes. In a run where the host moved the two CPUs
 * (bench/distance.ts), a figure measured in rounds at both placements is the median of its
 * rounds with the CPUs close, and its other rounds are summarized beside it (`far`): a
 * median of the two would be a mixture whose value depends on how long the host kept each
 * placement, and no other run could reproduce it. A figure measured at one placement only
 * summarizes all its rounds, and `cpus` says which. Targets and ratios use every round.
 */
function placementOf(vals: ReadonlyArray<number | undefined>, per: ReadonlyArray<Figure | undefined>, cut: number | undefined): { rounds: boolean[]; cpus?: 'close' | 'far'; far?: Summary } {
  const all = vals.map((v) => v !== undefined);
  if (cut === undefined) return { rounds: all };
  // The probes just before and after the figure's measurement; without them, the two around its case (roundProbe).
  const close = vals.map((v, i) => {
    const p = v === undefined ? null : roundProbe(per[i]?.cpuProbeNs, per[i]?.cpuRoundTripNs);
    return p !== null && p < cut;
  });
  const others = vals.map((v, i) => v !== undefined && !close[i]);
  if (!close.some(Boolean)) return { rounds: all, cpus: 'far' };
  if (!others.some(Boolean)) return { rounds: all, cpus: 'close' };
  return { rounds: close, cpus: 'close', far: summarize(vals.map((v, i) => (others[i] ? v : undefined))) };
}

/** Figures of every round, grouped by case: `rounds[r]` holds round r+1's figures. */
export function aggregate(rounds: Figure[][]): ReportFigure[] {
  const keys: string[] = [];
  const first = new Map<string, Figure>();
  for (const round of rounds)
    for (const f of round) {
      const k = figureKey(f);
      if (!first.has(k)) {
        first.set(k, f);
        keys.push(k);
      }
    }
  const at = (k: string): Array<Figure | undefined> => rounds.map((round) => round.find((f) => figureKey(f) === k));
  // Where the host moved the CPUs during the run, a figure is given at one placement (placementOf).
  const cut = placementCut(rounds.flat().flatMap((f) => [...(f.cpuRoundTripNs ?? []), f.cpuProbeNs ?? null]).filter((x): x is number => x !== null));
  const out: ReportFigure[] = keys.map((k) => {
    const f0 = first.get(k)!;
    const per = at(k);
    const vals = per.map((f) => (f ? headline(f) : undefined));
    const placed = placementOf(vals, per, cut);
    const s = summarize(vals.map((v, i) => (placed.rounds[i] ? v : undefined)));
    const med = (pick: (f: Figure) => number | undefined): number | undefined => {
      const m = summarize(per.map((f, i) => (f && !f.notMeasured && placed.rounds[i] ? pick(f) : undefined)));
      return m.rounds ? m.median : undefined;
    };
    const warm = per.filter((f): f is Figure => f?.warmup !== undefined);
    const r: ReportFigure = {
      mechanism: f0.mechanism,
      variant: f0.variant,
      role: f0.role,
      metric: f0.metric,
      size: f0.size,
      rounds: s.rounds,
      perRound: vals.map((v) => v ?? null),
      value: s.median,
      min: s.min,
      max: s.max,
      n: per.reduce((a, f) => a + (f && !f.notMeasured ? f.n : 0), 0),
    };
    if (f0.metric === 'rtt') {
      r.p50Us = med((f) => f.p50Us);
      r.p99Us = med((f) => f.p99Us);
    } else {
      r.msgsPerSec = med((f) => f.msgsPerSec);
      r.mbPerSec = med((f) => f.mbPerSec);
      for (const k of ['senderCpuUs', 'senderPageFaults', 'receiverCpuUs', 'receiverPageFaults'] as const) {
        const v = med((f) => f[k]);
        if (v !== undefined) r[k] = v;
      }
      const measured = per.filter((f): f is Figure => f !== undefined && !f.notMeasured);
      const byReceiver = measured.filter((f) => f.timing === 'receiver').length;
      if (measured.length) r.timing = byReceiver === measured.length ? 'receiver' : byReceiver === 0 ? 'sender' : 'mixed';
    }
    if (per.some((f) => f?.cpuRoundTripNs)) r.cpuRoundTripNs = per.map((f) => f?.cpuRoundTripNs ?? null);
    if (per.some((f) => f?.cpuProbeNs !== undefined)) r.cpuProbeNs = per.map((f) => f?.cpuProbeNs ?? null);
    if (placed.cpus) r.cpus = placed.cpus;
    if (placed.far) r.far = placed.far;
    if (warm.length) r.warmup = { steadyRounds: warm.filter((f) => f.warmup!.steady).length, seconds: summarize(warm.map((f) => f.warmup!.seconds)).median };
    const note = per.find((f) => f?.note)?.note;
    if (note) r.note = note;
    if (s.rounds === 0) r.notMeasured = [...new Set(per.map((f) => f?.notMeasured).filter(Boolean))].join('; ') || 'no round produced it';
    return r;
  });
  // Ratios of ours against the C reference and the Node baselines, round by round.
  const ratio = (ours: ReportFigure, base: ReportFigure | undefined): Ratio | undefined => {
    if (!base) return undefined;
    const s = roundsRatio(ours, base);
    return s.rounds ? { against: base.variant, ratio: s.median, min: s.min, max: s.max, rounds: s.rounds } : undefined;
  };
  for (const f of out) {
    if (f.role !== 'ipckit') continue;
    const c = cReference(out, f);
    const send = sendReference(out, f);
    const stdio = out.find((b) => b.mechanism === 'node' && b.variant === 'stdio framing' && b.metric === f.metric && b.size === f.size);
    const vc = ratio(f, c);
    const vs = ratio(f, send);
    const vt = ratio(f, stdio);
    if (vc) f.vsC = vc;
    if (vs) f.vsSend = vs;
    if (vt) f.vsStdio = vt;
  }
  return out;
}

/**
 * The process.send figure beside one of ours: the scenario's own, measured in the same rounds
 * (the process scenario runs fork + process.send beside spawnProcess), else the Node
 * baseline's. Both are process.send, measured twice: a figure is compared with the one taken
 * alongside it.
 */
export function sendReference(figures: ReportFigure[], f: ReportFigure): ReportFigure | undefined {
  const same = (x: ReportFigure): boolean => x.role === 'node' && x.metric === f.metric && x.size === f.size;
  return (
    figures.find((x) => same(x) && x.mechanism === f.mechanism && x.variant.includes('process.send')) ??
    figures.find((x) => same(x) && x.mechanism === 'node' && x.variant === 'process.send')
  );
}

/** The C reference of a figure of ours: the C figure of the same mechanism, metric and size. */
export function cReference(figures: ReportFigure[], f: ReportFigure): ReportFigure | undefined {
  return figures.find((x) => x.role === 'c' && x.mechanism === f.mechanism && x.metric === f.metric && x.size === f.size);
}

/**
 * Why a target set for two CPUs is missed on one (`oneCpu`: why the run had one, from
 * bench/placement.ts onePlacementWhy), with the run's own figures at the target's size.
 */
function oneCpuCause(oneCpu: string, t: Omit<Target, 'ifMissed'>, figures: ReportFigure[]): string {
  const ours = targetFigure(t, figures);
  const c = ours && cReference(figures, ours);
  const send = t.metric === 'rtt' ? figures.find((f) => f.mechanism === 'node' && f.variant === 'process.send' && f.metric === 'rtt' && f.size === (t.size ?? 64)) : undefined;
  const at = (f: ReportFigure | undefined): string | undefined => (f?.value === undefined ? undefined : fmtValue(f.metric, f.value));
  const here = [at(ours) && `ours ${at(ours)}`, c && at(c) && `C's ${at(c)}`, send && at(send) && `process.send's round trip ${at(send)}`].filter(Boolean);
  const how =
    t.metric === 'rtt'
      ? `a blocking C hand-over is one context switch, while ours, as process.send, goes through Node's event loop (the poll's wake-up, libuv, a JavaScript callback and its promise) each way, and a side that spins only holds the CPU its peer needs`
      : `the sender and the receiver run in turns, not side by side, and a side that spins only holds the CPU its peer needs`;
  return `this run had one CPU (${oneCpu}), and the targets are set for two: on one CPU the two sides take turns on it: ${how}${here.length ? ` (here: ${here.join(', ')})` : ''}`;
}

/**
 * Judges a target on the report's figures (ratios: the median of per-round ratios).
 * `oneCpu`: the run had one CPU (why): a miss says so first.
 */
export function evaluate(target: Target, figures: ReportFigure[], oneCpu?: string): TargetResult {
  const { ifMissed, ...rest } = target;
  const r = judge(rest, figures);
  if (r.met !== false) return r;
  // A cause built from the run's figures is built for a miss only; if it fails, the report still stands.
  let cause: string | undefined;
  try {
    cause = typeof ifMissed === 'function' ? ifMissed(figures) : ifMissed;
  } catch (e) {
    cause = `(the cause could not be built from this run's figures: ${(e as Error).message})`;
  }
  // A host that moved the CPUs during the figure's rounds is a measured cause too.
  const ours = targetFigure(rest, figures);
  const moved = ours ? roundsByDistance(ours, (v) => fmtValue(ours.metric, v)) : undefined;
  const why = [oneCpu && oneCpuCause(oneCpu, rest, figures), cause && (oneCpu ? `As on two CPUs: ${cause}` : cause), moved && `In this run, ${moved}`].filter(Boolean).join('. ');
  return why ? { ...r, ifMissed: why } : r;
}

/** The figure a target judges: its mechanism, metric, size, and its variant (ours when it names none). */
function targetFigure(t: Omit<Target, 'ifMissed'>, figures: ReportFigure[]): ReportFigure | undefined {
  return figures.find((f) => f.mechanism === t.mechanism && f.metric === t.metric && (t.size === undefined || f.size === t.size) && (t.variant === undefined ? f.role === 'ipckit' : f.variant === t.variant));
}

/** `a` over `b`, round by round (the rounds that measured both): median and spread. */
export function roundsRatio(a: ReportFigure, b: ReportFigure): Summary {
  return ratioOfRounds(a.perRound.map((v) => v ?? undefined), b.perRound.map((v) => v ?? undefined));
}

function judge(t: TargetResult, figures: ReportFigure[]): TargetResult {
  const ours = targetFigure(t, figures);
  if (!ours) return { ...t, notMeasured: 'not part of this run' };
  if (ours.notMeasured) return { ...t, notMeasured: ours.notMeasured };
  const judged = (value: number, min: number, max: number, met: boolean): TargetResult => ({ ...t, value, min, max, met });
  // Every round, whatever the placement of the CPUs (ReportFigure.far): a target is not met by leaving rounds out.
  const all = summarize(ours.perRound.map((v) => v ?? undefined));
  if (t.minMsgsPerSec !== undefined) return judged(all.median, all.min, all.max, all.median >= t.minMsgsPerSec);
  if (t.minMBPerSec !== undefined) {
    const mb = (v: number): number => (v * ours.size) / 1e6;
    return judged(mb(all.median), mb(all.min), mb(all.max), mb(all.median) >= t.minMBPerSec);
  }
  if (t.maxP50Us !== undefined) return judged(all.median, all.min, all.max, all.median <= t.maxP50Us);
  if (t.maxRatio !== undefined && t.compareTo) {
    const base = figures.find((f) => f.mechanism === (t.compareTo!.mechanism ?? t.mechanism) && f.variant === t.compareTo!.variant && f.metric === t.metric && (t.size === undefined || f.size === t.size));
    if (!base) return { ...t, notMeasured: `the reference ${t.compareTo.variant} is not part of this run` };
    if (base.notMeasured) return { ...t, notMeasured: `the reference ${base.variant} was not measured: ${base.notMeasured}` };
    // RTT: ours / theirs; one-way: theirs / ours (both "how many times worse").
    const s: Summary = t.metric === 'rtt' ? roundsRatio(ours, base) : roundsRatio(base, ours);
    if (!s.rounds) return { ...t, notMeasured: `no round measured both this and ${base.variant}` };
    return judged(s.median, s.min, s.max, s.median <= t.maxRatio);
  }
  return { ...t, notMeasured: 'the target names no threshold' };
}

// --- formatting (the table, --compare, the README) ---

export function sizeLabel(size: number): string {
  return size === 0 ? '-' : size >= 1024 ? `${size / 1024} KiB` : `${size} B`;
}

export function fmtUs(us: number): string {
  return us < 10 ? us.toFixed(2) : us < 10_000 ? us.toFixed(1) : `${(us / 1000).toFixed(1)}k`;
}

export function fmtRate(r: number): string {
  return r >= 1e6 ? `${(r / 1e6).toFixed(2)}M` : r >= 1e3 ? `${(r / 1e3).toFixed(1)}k` : r.toFixed(0);
}

/** A figure's headline value with its unit: "69.1 us", "3.69M msg/s". */
export function fmtValue(metric: Metric, v: number): string {
  if (!Number.isFinite(v)) return '-';
  return metric === 'rtt' ? `${fmtUs(v)} us` : `${fmtRate(v)}/s`;
}

/** "69.1 us (66.0-75.2)" or "3.69M/s 236 MB/s (3.1M-3.8M)"; NOT MEASURED when it was not. */
export function fmtFigure(f: ReportFigure | undefined): string {
  if (!f) return '-';
  if (f.notMeasured) return 'NOT MEASURED';
  const spread = f.rounds > 1 ? ` (${f.metric === 'rtt' ? `${fmtUs(f.min)}-${fmtUs(f.max)}` : `${fmtRate(f.min)}-${fmtRate(f.max)}`})` : '';
  // The placement, where the host moved the CPUs: the far rounds' median beside the close ones'.
  const cpus = f.far ? `; CPUs far: ${fmtValue(f.metric, f.far.median)}` : f.cpus === 'far' ? '; CPUs far' : '';
  if (f.metric === 'rtt') return `${fmtValue('rtt', f.value)}${spread}${cpus}`;
  const mb = f.mbPerSec ?? 0;
  return `${fmtValue('throughput', f.value)} ${mb >= 1000 ? `${(mb / 1000).toFixed(2)} GB/s` : `${mb.toFixed(0)} MB/s`}${spread}${cpus}`;
}

export function fmtRatio(r: Ratio | undefined): string {
  if (!r) return '';
  return r.rounds > 1 ? `${r.ratio.toFixed(2)}x (${r.min.toFixed(2)}-${r.max.toFixed(2)})` : `${r.ratio.toFixed(2)}x`;
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (c ?? '').padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** The main table: one row per figure of ours, its C reference and the Node baselines beside it. */
export function mainTable(figures: ReportFigure[]): string {
  const node = (variant: string, f: ReportFigure): ReportFigure | undefined => figures.find((b) => b.mechanism === 'node' && b.variant === variant && b.metric === f.metric && b.size === f.size);
  const rows: string[][] = [['mechanism', 'variant', 'size', 'metric', 'ipckit', 'C reference', 'vs C', 'process.send', 'vs send', 'stdio framing', 'vs stdio']];
  for (const f of figures.filter((x) => x.role === 'ipckit')) {
    rows.push([
      f.mechanism,
      f.variant,
      sizeLabel(f.size),
      f.metric === 'rtt' ? 'RTT p50' : 'one-way',
      fmtFigure(f),
      fmtFigure(cReference(figures, f)),
      fmtRatio(f.vsC),
      fmtFigure(sendReference(figures, f)),
      fmtRatio(f.vsSend),
      fmtFigure(node('stdio framing', f)),
      fmtRatio(f.vsStdio),
    ]);
  }
  return table(rows);
}

/** One line per target: [met] / [MISSED] (with the measured cause) / [NOT MEASURED] (with why). */
export function targetLines(results: TargetResult[]): string[] {
  const out: string[] = [];
  for (const r of results) {
    const status = r.met === undefined ? 'NOT MEASURED' : r.met ? 'met' : 'MISSED';
    let value = '';
    if (r.value !== undefined) {
      const f = (v: number): string =>
        r.maxRatio !== undefined ? `${v.toFixed(2)}x` : r.minMBPerSec !== undefined ? `${(v / 1000).toFixed(2)} GB/s` : r.maxP50Us !== undefined ? `${v.toFixed(2)} us` : `${Math.round(v).toLocaleString('en-US')} msg/s`;
      value = ` (${f(r.value)}${r.min !== undefined && r.max !== undefined && r.min !== r.max ? `; rounds ${f(r.min)} to ${f(r.max)}` : ''})`;
    }
    out.push(`  [${status}] ${r.text}${value}`);
    if (r.met === false && r.ifMissed) out.push(`      why: ${r.ifMissed}`);
    if (r.met === undefined && r.notMeasured) out.push(`      why: ${r.notMeasured}`);
  }
  return out;
}

/** The JSON document `ipckit bench` writes (docs/bench.md). */
export interface BenchReport {
  schemaVersion: number;
  date: string;
  quick: boolean;
  machine: { cpuModel?: string; cpus: number; /** The CPUs the run was given (taskset, a cpuset), where fewer than all. */ cpusAllowed?: number[]; memoryGiB: number; kernel: string; node: string; cc: string; load?: number[] };
  budget: Budget;
  rounds: number;
  seconds: number;
  cases: Array<{ name: string; title: string; seconds: number[] }>;
  figures: ReportFigure[];
  targets: TargetResult[];
  notes: string[];
  /** How far apart the two CPUs were before each case of each round (bench/distance.ts). */
  cpuDistance?: CpuDistance;
}

/** A short machine line: "2 CPUs (AMD EPYC), Linux 6.18, Node v20.20.2". */
export function machineLine(m: BenchReport['machine']): string {
  return `${m.cpus} CPUs (${m.cpuModel ?? '?'})${m.cpusAllowed ? `, this run given ${m.cpusAllowed.length === 1 ? `CPU ${m.cpusAllowed[0]}` : `CPUs ${m.cpusAllowed.join(',')}`}` : ''}, Linux ${m.kernel}, Node ${m.node}`;
}
