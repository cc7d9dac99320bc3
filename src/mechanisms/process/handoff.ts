/**
 * How a child started by spawnProcess learns where its channel to the parent is: one
 * environment variable, `IPCKIT_PARENT_CHANNEL`, holding JSON. parentChannel() reads it
 * and deletes it from `process.env`, so the child's own children do not inherit it.
 *
 *   { "v": 1, "transport": "ring", "send": "/ipckit-proc-…-up", "receive": "/ipckit-proc-…-down",
 *     "codec": "json", "spinMicros": 20, "batches": true }
 *   { "v": 1, "transport": "pipe", "readFd": 3, "writeFd": 4, "codec": "json", "batches": true }
 *
 * `batches`: the parent reads batch frames (batches.ts), so the child's `sendMany` may send
 * them; without it (a parent of an older ipckit) the child reads them but never sends them.
 * An older child ignores the field and does not know batch frames (each reaches it as one
 * ERR_IPCKIT_BAD_FRAME, its messages lost): parent and child must load the same ipckit.
 * `send`/`receive` and the fds are from the child's side. `codec` is the parent's codec
 * name, or "custom" when the parent passed a Codec object (the child must pass the same).
 * Ring names are unlinked by the child as soon as it has opened both, and by the parent
 * when the child exits, whichever comes first: only a parent killed before its child
 * opened them leaves them: named `/ipckit-proc-<parent pid>-…`, not persistent, with a
 * dead creator in their header (unlinkRing removes them).
 */
import { invalidArgument } from '../../core/errors.js';
import * as validate from '../../core/validate.js';

export const HANDOFF_ENV = 'IPCKIT_PARENT_CHANNEL';

export type Handoff =
  | { v: 1; transport: 'ring'; send: string; receive: string; codec: string; spinMicros?: number | null; batches?: boolean }
  | { v: 1; transport: 'pipe'; readFd: number; writeFd: number; codec: string; maxMessageBytes?: number; batches?: boolean };

export function encodeHandoff(h: Handoff): string {
  return JSON.stringify(h);
}

/** Reads the hand-off; a value that does not parse is refused (it came through the environment). */
export function decodeHandoff(text: string): Handoff {
  let h: unknown;
  try {
    h = JSON.parse(text);
  } catch {
    h = undefined;
  }
  const o = (typeof h === 'object' && h !== null ? h : {}) as Record<string, unknown>;
  const bad = (): never => {
    throw invalidArgument(`${HANDOFF_ENV} does not say where the parent's channel is (got ${validate.describe(text)}); it is set by spawnProcess()`);
  };
  if (o.v !== 1 || typeof o.codec !== 'string' || (o.batches !== undefined && typeof o.batches !== 'boolean')) bad();
  if (o.transport === 'ring') {
    if (typeof o.send !== 'string' || typeof o.receive !== 'string') bad();
    if (o.spinMicros !== undefined && o.spinMicros !== null && typeof o.spinMicros !== 'number') bad();
    return o as Handoff;
  }
  if (o.transport === 'pipe') {
    if (!Number.isInteger(o.readFd) || !Number.isInteger(o.writeFd)) bad();
    return o as Handoff;
  }
  return bad();
}
