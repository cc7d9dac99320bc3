/**
 * A permit that is given back exactly once (a semaphore's `acquire()`, a pool's permit):
 * `release()` gives it back and says true the first time, false after; `using` and
 * `await using` release it too.
 */
export interface Releasable extends Disposable, AsyncDisposable {
  release(): boolean;
  readonly released: boolean;
}

/** A Releasable (with the fields of `extra`) whose first release() calls `giveBack`. */
export function releasable<E extends object>(giveBack: () => boolean, extra: E): E & Releasable {
  let released = false;
  const release = (): boolean => {
    if (released) return false;
    released = true;
    return giveBack();
  };
  return {
    ...extra,
    release,
    get released() {
      return released;
    },
    [Symbol.dispose]: () => void release(),
    [Symbol.asyncDispose]: async () => void release(),
  };
}
