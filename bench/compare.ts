/**
 * `ipckit bench --compare OLD.json NEW.json`: a table of every figure that moved beyond its
 * spread between two runs (their ranges of rounds do not overlap: bench/stats.ts moved),
 * better or worse, and the figures only one run has. Reads the JSON `ipckit bench` writes.
 */
import { readFileSync } from 'node:fs';
import { IpcError, toIpcError } from '../src/core/errors.js';
import { distanceLine, farApart, figureDistance, placementCut } from './distance.js';
import { figureKey, fmtFigure, machineLine, sizeLabel, table, SCHEMA_VERSION, type BenchReport, type ReportFigure } from './report.js';
import { median, moved } from './stats.js';

/**
 * A run's JSON, checked: a file that is missing, not JSON, of another schemaVersion or without
 * the fields --compare and --readme read is an IpcError that says which, never a crash.
 */
export function readReport(path: string): BenchReport {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new IpcError('ERR_IPCKIT_NOT_FOUND', `${path}: no such file (ipckit bench --out FILE writes one)`, { path, cause: e });
    throw toIpcError(e, `reading ${path}`, { path });
  }
  let r: Partial<BenchReport> | null;
  try {
    r = JSON.parse(text) as Partial<BenchReport> | null;
  } catch (e) {
    throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `${path} is not the JSON ipckit bench writes (--out): ${(e as Error).message}`, { path, cause: e });
  }
  const bad = (why: string): IpcError => new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `${path}: ${why}; ipckit bench --out FILE writes one it can read`, { path });
  if (typeof r !== 'object' || r === null || Array.isArray(r)) throw bad('not the JSON ipckit bench writes (--out): no object at the top');
  if (r.schemaVersion !== SCHEMA_VERSION) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `${path}: schemaVersion ${r.schemaVersion ?? '(none: written before rounds existed)'}, this ipckit reads ${SCHEMA_VERSION}; run ipckit bench again to get one it can read`, { path });
  if (!Array.isArray(r.figures) || typeof r.machine !== 'object' || r.machine === null || typeof r.date !== 'string') throw bad('no figures, machine or date: not the JSON ipckit bench writes (--out)');
  r.figures.forEach((f, i) => {
    const ok = typeof f === 'object' && f !== null && typeof f.mechanism === 'string' && typeof f.variant === 'string' && (f.metric === 'rtt' || f.metric === 'throughput') && typeof f.size === 'number' && typeof f.rounds === 'number' && Array.isArray(f.perRound) && (f.rounds === 0 || [f.value, f.min, f.max].every((x) => typeof x === 'number'));
    if (!ok) throw bad(`figures[${i}] lacks a field ipckit bench writes (mechanism, variant, metric, size, rounds, perRound, value, min, max)`);
  });
  return r as BenchReport;
}

const summary = (f: ReportFigure): { median: number; min: number; max: number; rounds: number } => ({ median: f.value, min: f.min, max: f.max, rounds: f.rounds });

/** The CPU-distance probes a run's figures were placed by: those around each measurement and each case (bench/report.ts aggregate cuts the same ones). */
function placementProbes(run: BenchReport): number[] {
  return run.figures.flatMap((f) => [...(f.cpuRoundTripNs ?? []).flatMap((p) => p ?? []), ...(f.cpuProbeNs ?? [])]).filter((x): x is number => typeof x === 'number' && x > 0);
}

/**
 * A run the host kept at one placement has no `cpus` on its figures: its probes alone cannot
 * tell close from far (bench/report.ts placementOf), and it would be compared as if close.
 * Placed by the cut of both runs' probes together, a run measured entirely far says so, and
 * its figures are compared with the other run's far rounds (atOnePlacement). Only between
 * runs on one kind of machine: another one's close CPUs may be several times nearer.
 */
function placedByBoth(run: BenchReport, other: BenchReport): BenchReport {
  if (run.figures.some((f) => f.cpus) || run.machine.cpuModel !== other.machine.cpuModel || run.machine.cpus !== other.machine.cpus) return run;
  const own = placementProbes(run);
  const cut = placementCut([...own, ...placementProbes(other)]);
  if (!own.length || cut === undefined || median(own) < cut) return run;
  return { ...run, figures: run.figures.map((f) => (f.rounds ? { ...f, cpus: 'far' as const } : f)) };
}

/** The comparison as text (what `--compare` prints). */
export function compareReports(oldRun: BenchReport, nowRun: BenchReport, names: [string, string] = ['OLD', 'NEW']): string {
  const [old, now] = [placedByBoth(oldRun, nowRun), placedByBoth(nowRun, oldRun)];
  const lines: string[] = [];
  lines.push(`${names[0]}: ${old.date}, ${machineLine(old.machine)}, ${old.rounds} rounds${old.quick ? ', --quick' : ''}`);
  lines.push(`${names[1]}: ${now.date}, ${machineLine(now.machine)}, ${now.rounds} rounds${now.quick ? ', --quick' : ''}`);
  if (old.machine.cpuModel !== now.machine.cpuModel || old.machine.cpus !== now.machine.cpus) lines.push('The two runs are from different machines: figures differ by machine, so a move here may be the machine.');
  const apart = [distanceLine(old.cpuDistance), distanceLine(now.cpuDistance)];
  if (apart[0] || apart[1]) lines.push(`CPU distance, ${names[0]}: ${apart[0] ?? 'not recorded'}; ${names[1]}: ${apart[1] ?? 'not recorded'}`);
  const oldBy = new Map(old.figures.map((f) => [figureKey(f), f]));
  const newBy = new Map(now.figures.map((f) => [figureKey(f), f]));
  const rows: string[][] = [['mechanism', 'variant', 'size', 'metric', names[0], names[1], 'change', '']];
  let count = 0;
  for (const [k, n] of newBy) {
    const o = oldBy.get(k);
    if (!o || !o.rounds || !n.rounds) continue;
    if (!moved(summary(o), summary(n))) continue;
    count++;
    const change = n.value / o.value;
    const better = n.metric === 'rtt' ? change < 1 : change > 1;
    // A one-way rate timed by another clock (bench/harness.ts DeliveryClock) moves for that reason too.
    const clocks = n.metric === 'throughput' && (o.timing ?? 'sender') !== (n.timing ?? 'sender') ? ` (timed by the ${o.timing ?? 'sender'}, then by the ${n.timing ?? 'sender'})` : '';
    // So does a figure whose two CPUs the host had placed further apart or closer (bench/distance.ts).
    const [was, is] = [figureDistance(o), figureDistance(n)];
    const host = was !== undefined && is !== undefined && farApart(was, is) ? ` (CPUs ${Math.round(was)} ns apart, then ${Math.round(is)} ns)` : '';
    rows.push([n.mechanism, n.variant, sizeLabel(n.size), n.metric === 'rtt' ? 'RTT p50' : 'one-way', fmtFigure(o), fmtFigure(n), `${change.toFixed(2)}x`, (better ? 'better' : 'worse') + clocks + host]);
  }
  lines.push('');
  if (count) {
    lines.push(`${count} figures moved beyond their spread (the two runs' ranges of rounds do not overlap):`, table(rows));
  } else {
    lines.push('No figure moved beyond its spread.');
  }
  lines.push('', agreement(oldBy, newBy, names));
  const onlyOld = [...oldBy.keys()].filter((k) => !newBy.has(k)).map((k) => oldBy.get(k)!);
  const onlyNew = [...newBy.keys()].filter((k) => !oldBy.has(k)).map((k) => newBy.get(k)!);
  const unmeasured = [...newBy.values()].filter((f) => !f.rounds && oldBy.get(figureKey(f))?.rounds);
  const list = (fs: ReportFigure[]): string => fs.map((f) => `${f.mechanism} / ${f.variant} ${sizeLabel(f.size)} ${f.metric}`).join('; ');
  if (onlyOld.length) lines.push('', `Only in ${names[0]}: ${list(onlyOld)}`);
  if (onlyNew.length) lines.push('', `Only in ${names[1]}: ${list(onlyNew)}`);
  if (unmeasured.length) lines.push('', `Measured in ${names[0]} but NOT MEASURED in ${names[1]}: ${unmeasured.map((f) => `${f.variant} ${sizeLabel(f.size)} ${f.metric} (${f.notMeasured})`).join('; ')}`);
  return lines.join('\n');
}

/** Within this fraction, two runs' figures agree (issue 14: a --quick run against the full run). */
export const AGREE_WITHIN = 0.25;

/**
 * The two runs' values of one figure at one placement of the CPUs (bench/distance.ts): where
 * one run gave it close and the other only far, the first one's far rounds (ReportFigure.far)
 * stand for it, when it has any; otherwise the two values, placed as they are.
 */
function atOnePlacement(o: ReportFigure, n: ReportFigure): { was: number; is: number; far?: boolean } {
  const [was, is] = [o.cpus ?? 'close', n.cpus ?? 'close'];
  if (was === 'close' && is === 'far' && o.far) return { was: o.far.median, is: n.value, far: true };
  if (was === 'far' && is === 'close' && n.far) return { was: o.value, is: n.far.median, far: true };
  return { was: o.value, is: n.value };
}

/**
 * How many figures both runs measured agree within AGREE_WITHIN, and those that do not: the
 * check of a quick run against a full one (docs/bench.md, Limits). Each figure is its value,
 * at the CPUs' close placement where the host moved them (ReportFigure.far); a figure one run
 * measured only far is compared with the other run's far rounds (atOnePlacement).
 */
function agreement(oldBy: Map<string, ReportFigure>, newBy: Map<string, ReportFigure>, names: [string, string]): string {
  const both = [...newBy].flatMap(([k, n]) => {
    const o = oldBy.get(k);
    if (!o?.rounds || !n.rounds) return [];
    const at = atOnePlacement(o, n);
    return [{ o, n, far: at.far === true, change: at.is / at.was }];
  });
  const apart = both.filter(({ change }) => !(Math.abs(change - 1) <= AGREE_WITHIN));
  const farOnly = both.filter(({ far }) => far).length;
  const head = `${both.length - apart.length} of ${both.length} figures both runs measured are within ${AGREE_WITHIN * 100}% of ${names[0]}'s${farOnly ? ` (${farOnly} of them compared at the far placement: one run measured them only there)` : ''}`;
  if (!apart.length) return `${head}.`;
  // A figure given at the far placement in one run and the close one in the other (ReportFigure.cpus) says so.
  const unplaced = (o: ReportFigure, n: ReportFigure, far: boolean): boolean => !far && (o.cpus ?? 'close') !== (n.cpus ?? 'close');
  const placed = (o: ReportFigure, n: ReportFigure, far: boolean): string => (far ? ' (CPUs far)' : unplaced(o, n, far) ? ` (CPUs ${o.cpus ?? 'close'}, then ${n.cpus ?? 'close'})` : '');
  const list = apart.map(({ o, n, far, change }) => `${n.mechanism} / ${n.variant} ${sizeLabel(n.size)} ${n.metric === 'rtt' ? 'RTT' : 'one-way'} ${change.toFixed(2)}x${placed(o, n, far)}`);
  // Counted, not left out: such a pair compares the two placements, whatever the code did.
  const noCommon = apart.filter(({ o, n, far }) => unplaced(o, n, far)).length;
  const why = noCommon ? `; ${noCommon} of the ${apart.length} others have no rounds at one placement in both runs (only close in one, only far in the other)` : '';
  return `${head}${why}; not: ${list.join('; ')}.`;
}
