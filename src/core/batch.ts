/**
 * "Send a batch and report how many were sent": the one way a batch send (a ring's
 * sendMany and trySendMany, a work queue's putMany, a message queue's sendMany) says how
 * far it got when it fails part-way (design.md section 2): the messages before the failure
 * went, and the error's `details.sent` (and its message) says how many.
 */
import { isIpcError } from './errors.js';

/** The error of a batch that failed after `sent` of its `total` messages went; `details` adds to what it says. */
export function batchError(e: unknown, sent: number, total: number, details?: Record<string, unknown>): unknown {
  if (!isIpcError(e)) return e;
  return e.amend({ ...(sent > 0 ? { note: `${sent} of ${total} messages were sent` } : {}), details: { sent, ...details } });
}

/**
 * The promise of a batch that had to wait: if it fails (timeout, abort, close, a dead
 * peer), the error says how many had been sent by then (`progress()`, read at the failure).
 */
export function batchPromise<R>(p: Promise<R>, total: number, progress: () => number, details?: () => Record<string, unknown>): Promise<R> {
  return p.catch((e: unknown) => {
    throw batchError(e, progress(), total, details?.());
  });
}
