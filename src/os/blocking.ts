/**
 * Blocking system calls with nothing to poll (a file-lock wait, a System V queue or
 * semaphore wait), run on threads of ours (native/blocking.cc) so that neither the event
 * loop nor libuv's thread pool waits in them. A call that is no longer wanted (timeout,
 * abort, close) is cancelled; one that completed anyway is undone by the caller's `undo`.
 */
import { cancellableWait, type WaitOptions } from '../core/channel.js';
import { native, type NativeBlockingCalls } from './native.js';

let runner: NativeBlockingCalls | undefined;
const pending = new Map<number, (result: number) => void>();

function calls(): NativeBlockingCalls {
  runner ??= new native.BlockingCalls((id, result) => {
    const done = pending.get(id);
    pending.delete(id);
    done?.(result);
  });
  return runner;
}

export interface BlockingCall {
  what: string;
  /** Starts the native call; returns its id. */
  start(calls: NativeBlockingCalls): number;
  /** The error for a -errno result. */
  failure(errno: number): unknown;
  /** Gives back what a call took when it completed after nobody wanted it any more. */
  undo?(result: number): void;
  /** Runs once the native call is over, whatever its outcome (its thread no longer uses the caller's descriptor). */
  settled?(): void;
  /** Receives a function that ends the wait with `error` (a close), as timeout and abort do. */
  onStop?(stop: (error: unknown) => void): void;
}

/**
 * Starts a blocking call and resolves with its result (>= 0), or rejects with what
 * `failure` makes of a -errno. Timeout and abort cancel it (the promise rejects at once;
 * the thread stops a moment later, then `settled` runs).
 */
export function runBlocking(call: BlockingCall, options: WaitOptions | undefined): Promise<number> {
  return cancellableWait<number>(call.what, options, (resolve, reject) => {
    const r = calls();
    const id = call.start(r);
    let wanted = true;
    pending.set(id, (result) => {
      call.settled?.();
      if (!wanted) {
        if (result >= 0) call.undo?.(result);
        return;
      }
      wanted = false;
      if (result >= 0) resolve(result);
      else reject(call.failure(-result));
    });
    const cancel = (): void => {
      if (!wanted) return;
      wanted = false;
      r.cancel(id);
    };
    call.onStop?.((error) => {
      if (!wanted) return;
      cancel();
      reject(error);
    });
    return cancel;
  });
}

/** Threads the runner of this JS thread has now (for tests). */
export function blockingThreads(): number {
  return runner?.threads() ?? 0;
}
