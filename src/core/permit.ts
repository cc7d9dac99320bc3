/**
 * A permit that is given back exactly once (a semaphore's `acquire()`, a pool's permit):
 * `release()` gives it back and says true the first time, false after; `using` and
 * `await using` release it too.
 */
export interface Releasable extends Disposable, AsyncDisposable {
  release(): boolean;
  readonly released: boolean;
}

/**
 * A class, not an object literal: a literal with its own getter (`get released()` over a
 * closure) gave every permit its own hidden class, which V8 keeps in old space, so a loop of
 * pools that took a permit each grew the heap by 30 MB per 100,000 and RSS by 20 MB more
 * than one that took none (scripts/leak-cycles.ts).
 */
class Permit implements Releasable {
  #giveBack: (() => boolean) | undefined;
  /** Gives the permit back the first time (true), false after; may be called detached. */
  readonly release = (): boolean => {
    const giveBack = this.#giveBack;
    if (giveBack === undefined) return false;
    this.#giveBack = undefined;
    return giveBack();
  };

  constructor(giveBack: () => boolean) {
    this.#giveBack = giveBack;
  }

  get released(): boolean {
    return this.#giveBack === undefined;
  }

  [Symbol.dispose](): void {
    this.release();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.release();
  }
}

/** A Releasable (with the fields of `extra`) whose first release() calls `giveBack`. */
export function releasable<E extends object>(giveBack: () => boolean, extra: E): E & Releasable {
  return Object.assign(new Permit(giveBack), extra);
}
