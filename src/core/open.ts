/**
 * The one opening discipline of named objects (docs/design.md §5): `create…` never waits
 * and is synchronous; `open…` returns a promise, and with `{ wait: true }` waits for the
 * name to exist (bounded by `timeout` and `signal`), where it would otherwise fail at once
 * with ERR_IPCKIT_NOT_FOUND; `open…Sync` is the same for workers and scripts, and never waits.
 */
import { cancellableWait, type WaitOptions } from './channel.js';
import { isIpcError } from './errors.js';
import * as validate from './validate.js';

export interface WaitToOpenOptions extends WaitOptions {
  /** Wait for the name to exist instead of ERR_IPCKIT_NOT_FOUND at once (bounded by `timeout` and `signal`). */
  wait?: boolean;
}

/** While a name does not exist yet, `wait` tries again after this many ms, doubling to POLL_MAX. */
const POLL_FIRST = 2;
const POLL_MAX = 100;

/** Checks the waiting options (a bad one throws at once); true when the open should wait for the name. */
export function checkWaitToOpen(options: WaitToOpenOptions): boolean {
  validate.waitOptions(options);
  return validate.optionalBoolean('wait', options.wait) ?? false;
}

/**
 * The async form of a synchronous `open`: runs it now; with `wait`, runs it again while it
 * fails with ERR_IPCKIT_NOT_FOUND, until it succeeds, fails otherwise, or the wait ends.
 * Check the options first (synchronously) with checkWaitToOpen.
 */
export function openWhenThere<T>(what: string, options: WaitToOpenOptions, open: () => T): Promise<T> {
  if (!options.wait) {
    try {
      return Promise.resolve(open());
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return cancellableWait<T>(what, options, (resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let delay = POLL_FIRST;
    const attempt = (): void => {
      timer = undefined;
      try {
        resolve(open());
      } catch (e) {
        if (!isIpcError(e, 'ERR_IPCKIT_NOT_FOUND')) {
          reject(e);
          return;
        }
        timer = setTimeout(attempt, delay);
        delay = Math.min(delay * 2, POLL_MAX);
      }
    };
    attempt();
    return () => {
      if (timer !== undefined) clearTimeout(timer);
    };
  });
}
