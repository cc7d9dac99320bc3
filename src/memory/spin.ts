/**
 * How long a wait spins before it sleeps, adapted to what spinning achieved lately
 * (the ring and the work queue use one per endpoint).
 *
 * Spinning pays off only when the peer runs at the same time on another CPU and answers
 * within the spin; then it saves a wake-up (tens of µs on a VM), and once both sides of a
 * busy channel spin, neither ever sleeps. When the peer shares our CPU (one CPU, or the
 * machine is busy), our spin only delays it. So: a wait that caught its event while
 * spinning restores the full budget; a wait that had to sleep halves it, down to 1 µs; and
 * every 16th wait probes with the full budget, so that spinning comes back when it pays.
 */
const MIN_MICROS = 1;
const PROBE_EVERY = 16;

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
    return ++this.#waits % PROBE_EVERY === 0 ? this.#max : this.#budget;
  }

  /** The event came while spinning (after `micros`). */
  caught(micros: number): void {
    void micros;
    this.#budget = this.#max;
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
    while (performance.now() < until) {
      const r = attempt();
      if (r !== none) {
        this.caught((performance.now() - t0) * 1000);
        return r;
      }
    }
    this.missed();
    return none;
  }
}
