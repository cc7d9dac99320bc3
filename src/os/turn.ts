/**
 * What a wait that spins on the event loop owes the rest of this event-loop turn: a
 * receive that finds nothing (FdReader, PacketChannel, the queues, semaphores, the mutex,
 * signals) or a queue's send that finds no room. `spinBeforeWait` is the one place that
 * applies both rules:
 *
 * - Batched writes. Writers hold small messages for the end of the turn (FdWriter,
 *   PacketWriter). A receive about to spin for its peer's answer writes them out first: in a
 *   request/response exchange the peer is waiting for exactly those bytes, and a spin that
 *   holds the event loop would otherwise keep them back until the turn ends.
 * - The loop itself. A receive answered in its spin resolves without the loop turning; a
 *   request/response exchange whose every answer comes within the spin (another process on
 *   another CPU, or two channels of this process) would then never let timers and I/O run.
 *   So receives spin only within MAX_SYNC_MS after the loop last turned; past that a receive
 *   that finds nothing waits for the poll, and the loop turns before it is answered. (What is
 *   already in the kernel is still read at once, as it always was: gating that too made a
 *   server that receives at accept lag hundreds of connections behind a client that never
 *   yields, and its RSS grow by 25-37 MB over 100,000 connections instead of 9.)
 */
import type { WaitOptions } from '../core/channel.js';
import { SlotSet, type Slot } from '../core/slot-set.js';
import { spinCap, type SpinBudget } from './spin.js';

/** A writer's "write what you have batched, now" (as its end-of-turn flush would). */
export type WriteBatchNow = () => void;

/** Writers of this thread with a batch waiting for the end of the turn (see slot-set.ts). */
const batched = new SlotSet<WriteBatchNow>();

/** A writer has scheduled its end-of-turn flush; `write.value` writes its batch now. */
export function batchScheduled(write: Slot<WriteBatchNow>): void {
  batched.add(write);
}

/** That writer's batch was written, or the writer closed. */
export function batchDone(write: Slot<WriteBatchNow>): void {
  batched.delete(write);
}

/** Writes every batch of this thread now (before a receive spins), in no particular order across writers. */
function writeBatchesNow(): void {
  if (batched.size === 0) return;
  for (const write of batched.take()) write();
}

/** How long receives may go on answering without the event loop turning (ms). */
const MAX_SYNC_MS = 1;
/** When the present run of answers without a turn began; -1 once the loop has turned. */
let syncSince = -1;
const turned = (): void => {
  syncSince = -1;
};

/** True while a receive may spin: the loop turned less than MAX_SYNC_MS ago (an immediate marks the turn). */
function maySpinThisTurn(): boolean {
  const t = performance.now();
  if (syncSince < 0) {
    syncSince = t;
    setImmediate(turned);
    return true;
  }
  return t - syncSince < MAX_SYNC_MS;
}

/**
 * Whether a receive that finds nothing queued may go to its spin or its wait without
 * reading first (FdReader, PacketChannel), given `drained`: its last read found the
 * kernel's queue empty, with no poll event since. That read would fail with EAGAIN (in a
 * request/response exchange, before the request is even written: the spin writes this
 * thread's batches first). What is in the kernel is still read at once: the spin's first
 * retry reads, and a wait without a timeout gets it from the poll (epoll reports data
 * already there). A wait with a timeout and no spin (spinMicros 0, a timeout of 0, past
 * MAX_SYNC_MS) reads first, so that its timer cannot fire before a message already there.
 */
export function skipsReadBeforeWait(drained: boolean, spinner: SpinBudget, options: WaitOptions | undefined): boolean {
  return drained && (options?.timeout === undefined || (spinner.max > 0 && spinCap(options) > 0 && !options.signal?.aborted && maySpinThisTurn()));
}

/**
 * A receive found nothing, or a send found no room: retries `found` for up to the
 * spinner's budget (never past the wait's timeout, not when its signal is aborted), after
 * writing this thread's batches, and only within MAX_SYNC_MS of the loop's last turn. True
 * once `found` returned true.
 */
export function spinBeforeWait(spinner: SpinBudget, found: () => boolean, options: WaitOptions | undefined): boolean {
  if (spinner.max <= 0 || options?.signal?.aborted || !maySpinThisTurn()) return false;
  writeBatchesNow();
  return spinner.spinFor(found, false, spinCap(options));
}
