/**
 * How long a wait spins before it sleeps, adapted to what spinning achieved lately
 * (the ring, the work queue, the POSIX and System V queues and the byte-stream and packet channels
 * use one per endpoint).
 *
 * Spinning pays off only when the peer runs at the same time on another CPU and answers
 * within the spin; then it saves a wake-up (tens of µs on a VM), and once both sides of a
 * busy channel spin, neither ever sleeps. When the peer shares our CPU (one CPU, or the
 * machine is busy), our spin only delays it. So: a wait that had to sleep halves the
 * budget, down to 1 µs; a wait that caught its event while spinning spins next time at
 * least twice as long as that one took (the full budget at least); and every 16th wait
 * probes with four times the full budget.
 *
 * Why the probe is longer than the budget: once both sides of a round trip sleep, each
 * side's wait lasts the peer's wake-up plus its handling (about 35-80 µs on a VM, more with
 * 1 KiB of JSON to handle), longer than any spin of the full budget, so probes of that
 * length never caught anything and both sides stayed asleep for good (spawnProcess's RTT
 * at 1 KiB: 86 µs where 64 B took 4 µs). A probe that outlasts one wake-up catches the
 * reply, the caught time sets the next budget, and the peer's next wait, answered at once,
 * catches too: both sides spin again within a few probes.
 */
import { availableParallelism } from 'node:os';
import type { WaitOptions } from '../core/channel.js';
import * as validate from '../core/validate.js';

/** Default spin before sleeping (µs): about one cross-CPU wake-up on the machines we measured. */
const DEFAULT_SPIN_MICROS = 20;

/**
 * An endpoint's `spinMicros` option, checked (µs). Undefined gives the default, or 0 where
 * the process has one CPU (a spinning waiter there only delays the peer it waits for).
 * `forever`: Infinity (never sleep) is allowed, for endpoints whose wait can spin forever.
 */
export function spinOption(value: unknown, forever = false): number {
  if (value === undefined) return availableParallelism() > 1 ? DEFAULT_SPIN_MICROS : 0;
  if (forever && value === Infinity) return Infinity;
  return validate.integer('spinMicros', value, 0, 10_000_000);
}

/** The most a wait with these options may spin (µs): never past its timeout. */
export function spinCap(options: WaitOptions | undefined): number {
  return options?.timeout === undefined ? Infinity : options.timeout * 1000;
}

const MIN_MICROS = 1;
const PROBE_EVERY = 16;
/** A probe spins this many times the full budget, and no budget grows beyond it. */
const PROBE_FACTOR = 4;

export class SpinBudget {
  #max: number;
  #budget: number;
  #waits = 0;

  /** `maxMicros`: 0 never spins, Infinity never sleeps. */
  constructor(maxMicros: number) {
    this.#max = maxMicros;
    this.#budget = maxMicros;
  }

  get max(): number {
    return this.#max;
  }

  /** The spin for the next wait, in µs. */
  next(): number {
    if (this.#max === 0 || this.#max === Infinity) return this.#max;
    return ++this.#waits % PROBE_EVERY === 0 ? this.#max * PROBE_FACTOR : this.#budget;
  }

  /** The event came while spinning (after `micros`): spin at least twice that long next time. */
  caught(micros: number): void {
    if (this.#max === 0 || this.#max === Infinity) return;
    this.#budget = Math.min(this.#max * PROBE_FACTOR, Math.max(this.#max, 2 * micros));
  }

  /** The spin ended without the event: we go to sleep. */
  missed(): void {
    if (this.#max === 0 || this.#max === Infinity) return;
    this.#budget = Math.max(MIN_MICROS, this.#budget / 2);
  }

  /**
   * An event-loop spin: calls `attempt` for up to the next budget (at most `capMicros`)
   * until it returns something other than `none`, and returns that (or `none`), recording
   * whether spinning caught the event.
   */
  spinFor<R>(attempt: () => R, none: R, capMicros: number): R {
    const budget = Math.min(this.next(), capMicros);
    if (budget <= 0) return none;
    const t0 = performance.now();
    const until = t0 + budget / 1000;
    // At least one attempt: a receive that skipped its read for the spin (os/turn.ts skipsReadBeforeWait) reads here.
    do {
      const r = attempt();
      if (r !== none) {
        this.caught((performance.now() - t0) * 1000);
        return r;
      }
    } while (performance.now() < until);
    this.missed();
    return none;
  }

  /**
   * The spin of a blocking (…Sync) wait: calls `attempt(deep)` until it returns something
   * other than undefined, for up to the next budget and never past `deadline` (a
   * performance.now() time), and returns that, or undefined once the spin is over and the
   * caller should sleep. `deep` is true once per `sliceMs`, so that a long spin (spinMicros:
   * Infinity) still checks the segment and its peers as a sleeper does after each slice;
   * `attempt` throws to end the wait. `idle` runs before each attempt (a cheap look that
   * saves a full one).
   */
  spinSync<R>(attempt: (deep: boolean) => R | undefined, deadline: number | undefined, sliceMs: number, idle?: () => void): R | undefined {
    const budget = this.next();
    if (budget <= 0) return undefined;
    const t0 = performance.now();
    const until = Math.min(t0 + budget / 1000, deadline ?? Infinity);
    let lastDeep = t0;
    for (;;) {
      idle?.();
      const t = performance.now();
      const deep = t - lastDeep >= sliceMs;
      if (deep) lastDeep = t;
      const got = attempt(deep);
      if (got !== undefined) {
        this.caught((performance.now() - t0) * 1000);
        return got;
      }
      if (t >= until) break;
    }
    this.missed();
    return undefined;
  }
}
