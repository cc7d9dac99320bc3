/**
 * The one receive loop every `recv` (and `take`, `listen`, `wait`) command shares, so they
 * all end the same way:
 *
 * - `--count N`: wait until N messages arrived (exit 0). If `--timeout` passes first, say
 *   so on stderr and exit 124; if the source ends for good first, exit 1 (ERR_IPCKIT_CLOSED).
 * - no `--count`: print until the source ends (exit 0). A message queue never ends by
 *   itself: use `--count` or `--drain`. If `--timeout` passes first, exit 124.
 * - `--drain`: print what is there now (at most `--count`), then exit 0; never waits.
 *
 * `--timeout` bounds the whole command's waiting, not each message. A note goes to stderr
 * once when nothing arrived for a second (`waiting for a sender on ring /x…`), unless
 * `--quiet`.
 */
import { IpcError, isIpcError } from '../core/errors.js';
import { waitingNote } from './output.js';

export interface Source<T> {
  receive(options?: { timeout?: number; signal?: AbortSignal }): Promise<T>;
  /** The next message if one is there now; for `--drain`. */
  tryReceive?(): T | undefined;
}

export interface ReceiveLoopOptions<T> {
  count?: number | undefined;
  timeout?: number | undefined;
  drain?: boolean | undefined;
  quiet?: boolean | undefined;
  /** `ring /jobs`: for notes and errors. */
  what: string;
  /** Who we wait for, for the note: `a sender`, `a writer`. */
  peer?: string;
  /**
   * Whether the source's end (ERR_IPCKIT_CLOSED) is final. A ring whose producers all left
   * may get a new producer: with `--count` we then keep waiting for it.
   */
  endIsFinal?: boolean;
  print(message: T): Promise<void>;
}

/** How often a source whose end is not final is asked again. */
const REOPEN_POLL_MS = 20;

/** Receives and prints per the rules above; returns the exit code. */
export async function receiveLoop<T>(source: Source<T>, options: ReceiveLoopOptions<T>): Promise<number> {
  const { count, timeout, what } = options;
  const deadline = timeout === undefined ? undefined : performance.now() + timeout;
  const left = (): number | undefined => (deadline === undefined ? undefined : Math.max(0, deadline - performance.now()));
  let n = 0;
  if (options.drain) {
    while (count === undefined || n < count) {
      let m: T | undefined;
      try {
        m = source.tryReceive ? source.tryReceive() : await source.receive({ timeout: 0 });
      } catch (e) {
        if (isIpcError(e, 'ERR_IPCKIT_CLOSED') || isIpcError(e, 'ERR_IPCKIT_TIMEOUT')) break;
        throw e;
      }
      if (m === undefined) break;
      await options.print(m);
      n++;
    }
    return 0;
  }
  const note = waitingNote(`waiting for ${options.peer ?? 'a sender'} on ${what}…`, options.quiet === true);
  try {
    while (count === undefined || n < count) {
      let m: T;
      try {
        const t = left();
        m = await source.receive(t === undefined ? undefined : { timeout: t });
      } catch (e) {
        if (isIpcError(e, 'ERR_IPCKIT_TIMEOUT') && deadline !== undefined) {
          // A source's timer may fire a moment before our deadline: wait out what is left.
          if (left() === 0) throw timedOut(what, timeout!, n, count);
          continue;
        }
        if (isIpcError(e, 'ERR_IPCKIT_CLOSED')) {
          if (count === undefined) return 0;
          if (options.endIsFinal === false && (deadline === undefined || left()! > 0)) {
            await new Promise((r) => setTimeout(r, Math.min(REOPEN_POLL_MS, left() ?? REOPEN_POLL_MS)));
            continue;
          }
          if (options.endIsFinal === false) throw timedOut(what, timeout!, n, count);
          throw e.amend({ note: `${what} ended after ${n} of ${count} messages`, details: { received: n, count } });
        }
        throw e;
      }
      note.progress();
      await options.print(m);
      n++;
    }
    return 0;
  } finally {
    note.done();
  }
}

function timedOut(what: string, timeout: number, n: number, count: number | undefined): IpcError {
  const got = count === undefined ? `${n} message${n === 1 ? '' : 's'} received` : `${n} of ${count} messages received`;
  return new IpcError('ERR_IPCKIT_TIMEOUT', `timed out after ${timeout} ms (--timeout) waiting on ${what}, ${got}`, { details: { timeout, received: n, ...(count !== undefined ? { count } : {}) } });
}
