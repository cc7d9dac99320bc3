/**
 * "Send a batch and report how many were sent": the one way a batch send (a ring's
 * sendMany and trySendMany, a work queue's putMany, a message queue's sendMany) says how
 * far it got when it fails part-way (design.md section 2): the messages before the failure
 * went, and the error's `details.sent` (and its message) says how many.
 */
import { isIpcError, retold } from './errors.js';

/** The error of a batch that failed after `sent` of its `total` messages went; `details` adds to what it says. */
export function batchError(e: unknown, sent: number, total: number, details?: Record<string, unknown>): unknown {
  if (!isIpcError(e)) return e;
  return e.amend({ ...(sent > 0 ? { note: sentNote(sent, total) } : {}), details: { sent, ...details } });
}

const sentNote = (sent: number, total: number): string => `${sent} of ${total} messages were sent`;

/**
 * A batch error from a layer below that sent frames of several messages each, told in
 * messages: its `details.sent` (frames, of `totalFrames`) becomes `sentMessages(frames)` of
 * `totalMessages`, in `details` and in its words. Later notes (an exit status) are kept.
 * Any other error is returned as it is.
 */
export function restateBatchError(e: unknown, totalFrames: number, sentMessages: (frames: number) => number, totalMessages: number): unknown {
  if (!isIpcError(e) || typeof e.details?.sent !== 'number') return e;
  const frames = e.details.sent;
  const sent = sentMessages(frames);
  const said = `; ${sentNote(frames, totalFrames)}`;
  const say = sent > 0 ? `; ${sentNote(sent, totalMessages)}` : '';
  const reason = e.reason.includes(said) ? e.reason.replace(said, say) : `${e.reason}${say}`;
  return retold(e, e.code, reason, { sent });
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
