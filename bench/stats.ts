/**
 * The statistics every bench figure goes through, in one place (pure functions, unit-tested
 * in test/bench.test.ts):
 * - `summarize`: a figure measured in several rounds is reported as the median of its
 *   rounds, with the spread (the smallest and largest round).
 * - `ratioOfRounds`: a ratio between two figures is the median of the per-round ratios
 *   (ours and the reference measured side by side in each round), not a ratio of medians:
 *   load that hits one round hits both sides of that round's ratio.
 * - `Steady`: warm-up until a rate is steady (two successive windows agree within a
 *   tolerance), with a cap, before a figure's measured part starts.
 * - `moved`: whether a figure moved beyond its spread between two runs (`--compare`).
 */

/** The median of `xs` (the mean of the two middle values for an even count); NaN when empty. */
export function median(xs: readonly number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  /** Rounds that produced a value. */
  rounds: number;
}

/** Median and spread (min-max) of the rounds' values; undefined values (failed rounds) are left out. */
export function summarize(values: ReadonlyArray<number | undefined>): Summary {
  const v = values.filter((x): x is number => x !== undefined && Number.isFinite(x));
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN, rounds: 0 };
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), rounds: v.length };
}

/**
 * Per-round ratios a[i] / b[i] over the rounds where both were measured, summarized:
 * the reported ratio is their median.
 */
export function ratioOfRounds(a: ReadonlyArray<number | undefined>, b: ReadonlyArray<number | undefined>): Summary {
  const r: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x !== undefined && y !== undefined && Number.isFinite(x) && Number.isFinite(y) && y !== 0) r.push(x / y);
  }
  return summarize(r);
}

/**
 * Whether a figure moved between two runs beyond the spread: the two runs' ranges of
 * rounds (min-max) do not overlap. A single-round figure has a zero-width range.
 */
export function moved(old: Summary, now: Summary): boolean {
  if (!old.rounds || !now.rounds) return false;
  return now.min > old.max || now.max < old.min;
}

export interface SteadyOptions {
  /** Two successive windows agree when their values differ by at most this fraction. */
  tolerance: number;
  /** Length of a warm-up window, in seconds. */
  windowSeconds: number;
  /** Warm-up ends after this many seconds even if the rate never settled. */
  capSeconds: number;
  /**
   * Warm-up lasts at least this many seconds, even when two windows agreed sooner (a new
   * peer's ramp: Budget.freshPeerWarmSeconds).
   */
  minSeconds?: number;
}

/**
 * Warm-up until steady. Feed it, at every window boundary it asks for, the window's value
 * (a rate, or a median round trip); it says when the last two windows agree within the
 * tolerance (steady), no sooner than minSeconds, or the cap has passed. Times are given by
 * the caller (seconds since the warm-up began), so it is testable without a clock.
 */
export class Steady {
  #last: number | undefined;
  #windows = 0;
  steady = false;
  done = false;
  constructor(readonly options: SteadyOptions) {}

  /** Records one window's value at `elapsed` seconds; returns true when warm-up is over. */
  window(value: number, elapsed: number): boolean {
    if (this.done) return true;
    this.#windows++;
    const last = this.#last;
    this.#last = value;
    const agree = last !== undefined && Number.isFinite(value) && Number.isFinite(last) && Math.abs(value - last) <= this.options.tolerance * Math.max(Math.abs(value), Math.abs(last));
    // Assigned on every window, not in a branch first taken at the end: the meters run the
    // warm-up's code in the measured part too (RateMeter.tick says why).
    this.steady = agree && elapsed >= (this.options.minSeconds ?? 0);
    this.done = this.steady || elapsed >= this.options.capSeconds;
    return this.done;
  }

  get windows(): number {
    return this.#windows;
  }
}
