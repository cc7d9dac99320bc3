/**
 * How far apart the bench's two CPUs are, measured before every case of every round.
 *
 * On a VM the host may move its virtual CPUs between close cores and distant ones while a
 * run lasts, and every figure whose two sides run on the two CPUs moves with it. Measured on
 * a 2-vCPU AMD EPYC VM (docs/bench.md, Limits): a cache line's round trip between CPU 0 and
 * CPU 1 took 49-61 ns for seconds to minutes, then 330-380 ns, and back; C's mq_send one
 * way ran at 1.25-1.35M msg/s in the first state and 0.53-0.65M in the second, in step with
 * it over 100 alternating probes. Nothing in the guest chooses this, so the bench measures it
 * (bench/c/cpu_distance.c: two threads pinned to the CPUs the round trips use, spinning on
 * one cache line) and reports it with each figure's rounds, so that a figure that moved
 * can be told from a host that moved.
 */
import { compileC, farther, runCJson } from './harness.js';
import { CHILD_CPU, onePlacementWhy, PARENT_CPU } from './placement.js';
import { median } from './stats.js';

/** One probe: nanoseconds per round trip of a cache line between the two CPUs, or why there is none. */
export type DistanceProbe = { ns: number } | { why: string };

/** What the run records (BenchReport.cpuDistance; docs/bench.md). */
export interface CpuDistance {
  /** The two CPUs: those the pinned round trips use (bench/placement.ts). */
  cpus: [number, number];
  /** probes[r][i]: before case i of round r+1; the last entry of a round is after its last case. null: that probe failed. */
  probes: Array<Array<number | null>>;
  /** Why no probe could run (one CPU, no C compiler), or why one failed. */
  why?: string;
}

/** The probe's program, or why this machine cannot run it (one CPU, no compiler, a failed compile); found once. */
let program: string | { why: string } | undefined;

function probeProgram(): string | { why: string } {
  if (program === undefined) {
    const one = onePlacementWhy();
    if (one) program = { why: one };
    else {
      try {
        program = compileC('cpu_distance') ?? { why: 'no C compiler (cc) to build bench/c/cpu_distance.c' };
      } catch (e) {
        program = { why: (e as Error).message };
      }
    }
  }
  return program;
}

/** Measures the distance now (1-10 ms; it gives up after 1 s when the other CPU is taken). */
export function probeCpuDistance(): DistanceProbe {
  const bin = probeProgram();
  if (typeof bin !== 'string') return bin;
  const r = runCJson<{ rtt_ns?: number }>('bench/c/cpu_distance', bin, [String(PARENT_CPU), String(CHILD_CPU)], { limitSeconds: 5 });
  if ('why' in r) return r;
  const ns = r.result.rtt_ns;
  return typeof ns === 'number' && ns > 0 ? { ns } : { why: `bench/c/cpu_distance printed no round trip: ${JSON.stringify(r.result)}` };
}

/**
 * A probe more than this many times the smallest is another placement, not noise: within
 * one placement probes spread up to 1.9x (68-129 ns on one instance of a 2-vCPU AMD EPYC
 * VM, 48-62 ns on another), the far placement read 2.3x-6x the close one's (300-420 ns).
 */
const MOVED_RATIO = 3;

/**
 * The probes split into the two placements when some are more than MOVED_RATIO times the smallest
 * (split at placementCut), or undefined when all are one.
 */
export function distanceModes(values: readonly number[]): { close: number[]; far: number[] } | undefined {
  const cut = placementCut(values);
  if (cut === undefined) return undefined;
  const v = values.filter((x) => Number.isFinite(x) && x > 0);
  return { close: v.filter((x) => x < cut), far: v.filter((x) => x >= cut) };
}

/**
 * The distance (ns) that splits a run's probes into its two placements: the geometric mean
 * of the smallest and the median of those more than MOVED_RATIO times it (a median, so that
 * one probe slowed by a busy CPU does not lift the cut above the far placement), or
 * undefined when there are none.
 */
export function placementCut(values: readonly number[]): number | undefined {
  const v = values.filter((x) => Number.isFinite(x) && x > 0);
  if (v.length < 2) return undefined;
  const lo = Math.min(...v);
  const far = v.filter((x) => x > MOVED_RATIO * lo);
  return far.length ? Math.sqrt(lo * median(far)) : undefined;
}

/**
 * The distance that places one round of a figure: the probe around its measurement
 * (cpuProbeNs, itself the farther of the two: harness.ts farther), else the farther of the
 * two around its case (a move during the case counts as far); null where a probe failed or
 * none was taken (the other CPU was busy, or no probe ran: the distance is unknown, and the
 * round is not counted close).
 */
export function roundProbe(own: number | null | undefined, around: readonly [number | null, number | null] | null | undefined): number | null {
  if (own !== undefined) return own;
  return around ? (farther(around[0], around[1]) ?? null) : null;
}

const range = (xs: number[]): string => {
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return lo === hi ? `${lo} ns` : `${lo}-${hi} ns`;
};

/** Whether two probes are two different placements (one more than MOVED_RATIO times the other). */
export const farApart = (a: number, b: number): boolean => distanceModes([a, b]) !== undefined;

/** A run's probes that succeeded, and how many failed. */
function probesOf(d: CpuDistance): { all: number[]; failed: number } {
  const flat = d.probes.flat();
  const all = flat.filter((x): x is number => x !== null);
  return { all, failed: flat.length - all.length };
}

/** One line for the report's header: the distance through the run, or why it was not measured. */
export function distanceLine(d: CpuDistance | undefined): string | undefined {
  if (!d) return undefined;
  const { all, failed } = probesOf(d);
  const between = `CPUs ${d.cpus[0]} and ${d.cpus[1]}`;
  if (!all.length) return `${d.cpus[0] === d.cpus[1] ? 'CPU' : `${between}:`} distance not measured${d.why ? ` (${d.why})` : ''}`;
  const modes = distanceModes(all);
  const lost = failed ? ` (${failed} ${failed === 1 ? 'probe' : 'probes'} failed: ${d.why ?? 'no reason recorded'})` : '';
  if (!modes) return `${between}: a cache line's round trip ${range(all)} through the run${lost}`;
  return `${between}: a cache line's round trip ${range(modes.close)} in ${modes.close.length} probes, ${range(modes.far)} in ${modes.far.length}: the host moved them during the run${lost}`;
}

/** The note under the report when the host moved the CPUs during the run, or undefined. */
export function distanceNote(d: CpuDistance | undefined): string | undefined {
  const all = d ? probesOf(d).all : [];
  const modes = distanceModes(all);
  if (!d || !modes) return undefined;
  return (
    `the host moved CPUs ${d.cpus[0]} and ${d.cpus[1]} closer together or further apart during this run (a cache line's round trip between them: ${range(modes.close)} in ${modes.close.length} of the ${all.length} probes taken before each case, ${range(modes.far)} in ${modes.far.length}). ` +
    `Figures whose two sides run on both CPUs move with it, C's as much as ours (on a 2-vCPU AMD EPYC VM, C's mq_send one way: 1.3M msg/s close, 0.6M far); a ratio to C or Node is taken within a round, and moves when its two sides were measured at different placements. ` +
    `A figure measured at both placements is given with the CPUs close, its other rounds after it ('CPUs far'; \`far\` in the JSON). ` +
    `Each figure's rounds carry the probes taken around its measurement and around its case (cpuProbeNs and cpuRoundTripNs in the JSON; docs/bench.md, "CPU distance")`
  );
}

/** A figure's rounds and the probes around each (ReportFigure). */
type ProbedFigure = { perRound: ReadonlyArray<number | null>; cpuRoundTripNs?: ReadonlyArray<readonly [number | null, number | null] | null>; cpuProbeNs?: ReadonlyArray<number | null> };

/** The distances that place the rounds that measured the figure (roundProbe), those known. */
function measuredProbes(f: ProbedFigure): number[] {
  return f.perRound.flatMap((v, i): number[] => {
    const p = v === null ? null : roundProbe(f.cpuProbeNs?.[i], f.cpuRoundTripNs?.[i]);
    return p === null ? [] : [p];
  });
}

/** The median probe of the rounds that measured the figure, or undefined. */
export function figureDistance(f: ProbedFigure): number | undefined {
  const v = measuredProbes(f);
  return v.length ? median(v) : undefined;
}

/**
 * For a missed target's cause: when the host moved the CPUs during a figure's rounds, each
 * round's value (`format`) with the distance probed around its measurement (without one, the
 * distances probed before and after its case); else undefined.
 */
export function roundsByDistance(f: ProbedFigure, format: (v: number) => string): string | undefined {
  const probes = measuredProbes(f);
  if (!distanceModes(probes)) return undefined;
  const rounds = f.perRound.flatMap((v, i) => {
    if (v === null) return [];
    const own = f.cpuProbeNs?.[i];
    if (typeof own === 'number') return [`${format(v)} (${own} ns)`];
    if (own === null) return [`${format(v)} (probe failed: the other CPU was busy)`];
    const p = f.cpuRoundTripNs?.[i];
    return [`${format(v)} (${p ? p.map((x) => x ?? '?').join('/') : '?'} ns around its case)`];
  });
  return `the host moved CPUs ${PARENT_CPU} and ${CHILD_CPU} closer or further apart during its rounds (docs/bench.md, "CPU distance"); each round, with the distance probed around its measurement (the farther of before and after): ${rounds.join(', ')}`;
}
