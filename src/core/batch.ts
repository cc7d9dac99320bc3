/**
 * "Send a batch and report how many were sent": the one way a batch send (a ring's
 * sendMany and trySendMany, a work queue's putMany, a message queue's sendMany) says how
 * far it got when it fails part-way (design.md section 2): the messages before the failure
 * went, and the error's `details.sent` (and its message) says how many.
 */
import { isIpcError, type IpcError } from './errors.js';

/** The error of a batch that failed after `sent` of its `total` messages went; `details` adds to what it says. */
export function batchError(e: unknown, sent: number, total: number, details?: Record<string, unknown>): unknown {
  if (!isIpcError(e)) return e;
  const told = e.amend({ ...(sent > 0 ? { note: `${sent} of ${total} messages were sent` } : {}), details: { sent, ...details } });
  untold.set(told, { error: e, details });
  return told;
}

/** Each batch error made here, with the error it was made from (for restateBatchError). */
const untold = new WeakMap<object, { error: unknown; details: Record<string, unknown> | undefined }>();

/**
 * A batch error from a layer below that sent frames of several messages each (its
 * `details.sent` counts frames), told again in messages: `sentMessages(frames)` of
 * `totalMessages`. Any other error is returned as it is.
 */
export function restateBatchError(e: unknown, sentMessages: (frames: number) => number, totalMessages: number): unknown {
  const made = isIpcError(e) ? untold.get(e) : undefined;
  if (!made) return e;
  return batchError(made.error, sentMessages((e as IpcError).details!.sent as number), totalMessages, made.details);
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
