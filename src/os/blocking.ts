/**
 * Blocking system calls with nothing to poll (a file-lock wait, a System V queue or
 * semaphore wait), run on threads of ours (native/blocking.cc) so that neither the event
 * loop nor libuv's thread pool waits in them.
 *
 * A call that is no longer wanted (timeout, abort, close) is cancelled: its thread is
 * interrupted with a signal (native/blocking.cc says why not pthread_cancel), and reports
 * -ECANCELED having done nothing. It may have completed just before the cancel could act;
 * two ways to settle that:
 * - 'at-cancel' (the default): the promise rejects at once, and a call that completed
 *   anyway is given back by the caller's `undo` (a lock is unlocked).
 * - 'when-reported': the promise settles only once the thread has reported, a few
 *   microseconds later: with the cancel's error if
 *   the cancel acted, with the result if the call completed first. For calls that cannot be
 *   undone (a message sent, a semaphore operation done): the caller is told what happened.
 */
import { abortedError, timeoutError, toIpcError } from '../core/errors.js';
import { cancellableWait, type WaitOptions } from '../core/channel.js';
import * as validate from '../core/validate.js';
import { native, type NativeBlockingCalls } from './native.js';

const ECANCELED = 125;

let runner: NativeBlockingCalls | undefined;
const pending = new Map<number, (result: number, extra: number) => void>();

function calls(): NativeBlockingCalls {
  runner ??= new native.BlockingCalls((id, result, extra) => {
    const done = pending.get(id);
    pending.delete(id);
    done?.(result, extra);
  });
  return runner;
}

/**
 * Starts a native blocking call (`start` returns its id); `done(result, extra)` runs once on
 * the event loop when it is over, however it ended (-ECANCELED when a cancel acted). Returns
 * the function that cancels it.
 */
export function startBlocking(start: (calls: NativeBlockingCalls) => number, done: (result: number, extra: number) => void): () => void {
  const r = calls();
  const id = start(r);
  pending.set(id, done);
  let cancelled = false;
  return () => {
    if (cancelled || !pending.has(id)) return;
    cancelled = true;
    r.cancel(id);
  };
}

export interface BlockingCall {
  what: string;
  /** Starts the native call; returns its id. */
  start(calls: NativeBlockingCalls): number;
  /** The error for a -errno result. */
  failure(errno: number): unknown;
  /** How a call cancelled after it completed is settled (see above); default 'at-cancel'. */
  settle?: 'at-cancel' | 'when-reported';
  /** 'at-cancel': gives back what a call took when it completed after nobody wanted it any more. */
  undo?(result: number): void;
  /** Runs once the native call is over, whatever its outcome (its thread no longer uses the caller's descriptor). */
  settled?(): void;
  /** Receives a function that ends the wait with `error` (a close), as timeout and abort do. */
  onStop?(stop: (error: unknown) => void): void;
}

/**
 * Starts a blocking call and resolves with its result (>= 0), or rejects with what
 * `failure` makes of a -errno. Timeout and abort cancel it.
 */
export function runBlocking(call: BlockingCall, options: WaitOptions | undefined): Promise<number> {
  let started = false;
  const tracked: BlockingCall = {
    ...call,
    start: (calls) => {
      const id = call.start(calls);
      started = true;
      return id;
    },
  };
  try {
    return tracked.settle === 'when-reported' ? runToReport(tracked, options) : runAtCancel(tracked, options);
  } finally {
    // Refused before the native call started (a signal already aborted, bad options, a start
    // that threw): it is over, and whoever counts calls in flight must hear so (a close
    // waiting for them would wait forever).
    if (!started) call.settled?.();
  }
}

/** 'at-cancel': a cancel settles the wait at once; a result that comes after is undone. */
function runAtCancel(call: BlockingCall, options: WaitOptions | undefined): Promise<number> {
  return cancellableWait<number>(call.what, options, (resolve, reject) => {
    let wanted = true;
    const cancel = startBlocking(call.start, (result) => {
      call.settled?.();
      if (!wanted) {
        if (result >= 0) call.undo?.(result);
        return;
      }
      wanted = false;
      if (result >= 0) resolve(result);
      else reject(call.failure(-result));
    });
    const stop = (): void => {
      if (!wanted) return;
      wanted = false;
      cancel();
    };
    call.onStop?.((error) => {
      if (!wanted) return;
      stop();
      reject(error);
    });
    return stop;
  });
}

/** 'when-reported': a cancel only asks; the thread's report decides. */
function runToReport(call: BlockingCall, options: WaitOptions | undefined): Promise<number> {
  const ms = validate.timeout(options?.timeout);
  const signal = validate.abortSignal(options?.signal);
  return new Promise<number>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortedError(call.what, signal));
      return;
    }
    let why: unknown;
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => stop(abortedError(call.what, signal!));
    let cancel: () => void;
    try {
      cancel = startBlocking(call.start, (result) => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        call.settled?.();
        if (result >= 0) resolve(result);
        else if (why !== undefined && result === -ECANCELED) reject(why);
        else reject(call.failure(-result));
      });
    } catch (e) {
      reject(toIpcError(e, call.what));
      return;
    }
    const stop = (error: unknown): void => {
      if (why !== undefined) return;
      why = error;
      cancel();
    };
    if (ms !== undefined) timer = setTimeout(() => stop(timeoutError(call.what, ms)), ms);
    signal?.addEventListener('abort', onAbort, { once: true });
    call.onStop?.(stop);
  });
}

/** Threads the runner of this JS thread has now (for tests). */
export function blockingThreads(): number {
  return runner?.threads() ?? 0;
}
