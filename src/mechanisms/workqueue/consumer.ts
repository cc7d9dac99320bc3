/**
 * The consuming side of a work-queue handle: get (and its batch, try and Sync forms),
 * ack, retry and join. A take that finds nothing ready spins briefly, then sleeps on the
 * items signal in slices, recovering the slots of dead owners as it waits.
 */
import { RESOLVED, WaitQueue, type WaitOptions } from '../../core/channel.js';
import { closedError, errnoError, invalidArgument, IpcError, isIpcError, timeoutError } from '../../core/errors.js';
import * as validate from '../../core/validate.js';
import { LoopWait } from '../../memory/loop-wait.js';
import { SpinBudget } from '../../os/spin.js';
import { checkWaitOptions, SLICE_MS } from '../../memory/waits.js';
import { fault, FAULTS } from '../../os/faults.js';
import type { Job, JobImpl, QueueCore } from './core.js';
import { FREE, READY, W_DONE_SIGNAL, W_GETTERS_SLEEPING, W_ITEMS_SIGNAL, W_JOINERS_SLEEPING } from './layout.js';

const now = (): number => performance.now();

type Want = { many: false } | { many: true; max: number };

export class Consumer<T> {
  #core: QueueCore<T>;
  #spinner: SpinBudget;
  #getters = new WaitQueue<unknown, Want>('get', undefined, () => {
    if (this.#getters.length === 0) this.#items.stop();
  });
  #joiners = new WaitQueue<void>('join', undefined, () => {
    if (this.#joiners.length === 0) this.#done.stop();
  });
  #items: LoopWait;
  #done: LoopWait;

  constructor(core: QueueCore<T>, spinMicros: number) {
    this.#core = core;
    this.#spinner = new SpinBudget(spinMicros);
    this.#items = new LoopWait(core.mem, W_ITEMS_SIGNAL, SLICE_MS, (res) => (res < 0 ? core.waitFailed(res, 'items') : this.#armGet(res === 2)));
    this.#done = new LoopWait(core.mem, W_DONE_SIGNAL, SLICE_MS, (res) => (res < 0 ? core.waitFailed(res, 'done') : this.#armJoin(res === 2)));
    core.rejecters.push((e) => {
      this.#getters.rejectAll(e);
      this.#joiners.rejectAll(e);
    });
  }

  take(options?: WaitOptions): Promise<Job<T>> {
    return this.#request({ many: false }, options, checkWaitOptions(options, 'get')) as Promise<Job<T>>;
  }

  tryTake(): Job<T> | undefined {
    this.#core.usable();
    if (this.#getters.length > 0) return undefined;
    return this.#core.take();
  }

  takeMany(max: number, options?: WaitOptions): Promise<Array<Job<T>>> {
    if (max !== Infinity) validate.integer('max', max, 1);
    return this.#request({ many: true, max }, options, checkWaitOptions(options, 'get')) as Promise<Array<Job<T>>>;
  }

  tryTakeMany(max: number): Array<Job<T>> {
    if (max !== Infinity) validate.integer('max', max, 1);
    this.#core.usable();
    if (this.#getters.length > 0) return [];
    return this.#core.takeMany(max);
  }

  takeSync(timeoutMs?: number): Job<T> {
    const ms = validate.timeout(timeoutMs);
    const core = this.#core;
    core.usable();
    if (this.#getters.length > 0) throw invalidArgument('takeSync cannot overtake pending asynchronous takes');
    const deadline = ms === undefined ? undefined : now() + ms;
    const mem = core.mem;
    try {
      let job = core.take();
      if (job) return job;
      job = this.#spinner.spinSync((deep) => {
        if (deep) {
          core.checkIntact();
          core.maintain(true);
        }
        const j = core.take();
        if (j) return j;
        const end = core.drained();
        if (end) throw end;
        return undefined;
      }, deadline, SLICE_MS);
      if (job) return job;
      let deep = false;
      for (;;) {
        core.maintain(deep);
        const end = core.drained();
        if (end) throw end;
        if (deadline !== undefined && now() >= deadline) throw timeoutError('get', ms!);
        const seq = mem.prepareSleep(W_ITEMS_SIGNAL, W_GETTERS_SLEEPING);
        job = core.take();
        if (job) return job;
        const left = deadline === undefined ? SLICE_MS : Math.max(0, Math.min(SLICE_MS, deadline - now()));
        const r = mem.waitSync(W_ITEMS_SIGNAL, seq, left);
        if (r < 0) throw errnoError(-r, 'futex', 'get');
        deep = r === 2;
        if (deep) core.checkIntact();
        job = core.take();
        if (job) return job;
      }
    } catch (e) {
      throw isIpcError(e, 'ERR_IPCKIT_TIMEOUT') ? e : core.fail(e);
    }
  }

  ack(job?: Job<T> | ReadonlyArray<Job<T>>): void {
    const core = this.#core;
    if (job !== undefined && (job === null || typeof job !== 'object')) throw invalidArgument(`job must be a Job or an array of jobs, got ${validate.describe(job)}`);
    core.usable();
    const jobs: Array<Job<T>> = job === undefined ? [core.oldest()] : Array.isArray(job) ? [...(job as ReadonlyArray<Job<T>>)] : [job as Job<T>];
    let done = 0;
    try {
      for (const j of jobs) {
        const t = j !== null && typeof j === 'object' ? core.inFlight.get(j.id) : undefined;
        if (!t || t !== j) throw invalidArgument(`job ${(j as Job<T> | null)?.id} is not in progress on this handle (acknowledged twice, or taken by another handle)`);
        if (FAULTS) fault('workqueue:before-done');
        core.release(t as JobImpl<T>, FREE);
        if (FAULTS) fault('workqueue:after-release'); // freed, not yet counted (docs/workqueue.md, Limits)
        done++;
      }
    } finally {
      if (done > 0) core.afterDone(done);
    }
  }

  /**
   * Gives a job this handle took back to the queue, to be delivered again (to any
   * consumer, this one included), at once or after `delay` ms; until then it stays ours.
   */
  retry(job: Job<T>, delay: number | undefined): void {
    const core = this.#core;
    core.usable();
    const t = job !== null && typeof job === 'object' ? core.inFlight.get(job.id) : undefined;
    if (!t || t !== job) throw invalidArgument(`job ${(job as Job<T> | null)?.id} is not in progress on this handle (acknowledged, retried, or taken by another handle)`);
    const giveBack = (): void => {
      if (core.closed || core.inFlight.get(t.id) !== t) return; // close() gave it back already
      core.release(t as JobImpl<T>, READY);
      core.redelivered(1);
    };
    if (delay === undefined || delay === 0) giveBack();
    else setTimeout(giveBack, delay).unref();
  }

  join(options?: WaitOptions): Promise<void> {
    const core = this.#core;
    const aborted = checkWaitOptions(options, 'join');
    if (core.closed || core.error) return Promise.reject(core.error ?? closedError(`work queue ${core.name}`));
    if (aborted) return Promise.reject(aborted);
    try {
      if (core.unfinished() === 0) return RESOLVED;
    } catch (e) {
      return Promise.reject(core.fail(e));
    }
    const p = this.#joiners.enqueue(options, undefined);
    this.#armJoin();
    return p;
  }

  /** Ends every waiting get and join with `err` (close). */
  rejectAll(err: () => IpcError): void {
    this.#getters.rejectAll(err);
    this.#joiners.rejectAll(err);
  }

  /** close(): the waits go for good. */
  stop(): void {
    this.#items.stop(true);
    this.#done.stop(true);
  }

  // --- waiting ---

  #request(want: Want, options: WaitOptions | undefined, aborted: IpcError | undefined): Promise<unknown> {
    const core = this.#core;
    if (core.closed || core.error) return Promise.reject(core.error ?? closedError(`work queue ${core.name}`));
    if (aborted) return Promise.reject(aborted);
    if (this.#getters.length === 0) {
      try {
        const v = this.#serve(want);
        if (v !== undefined) return Promise.resolve(v);
        // Spin a little before going to sleep; an event-loop spin lasts at most 1 ms.
        const s = this.#spinner.spinFor(() => this.#serve(want), undefined, 1000);
        if (s !== undefined) return Promise.resolve(s);
      } catch (e) {
        return Promise.reject(core.fail(e));
      }
    }
    const p = this.#getters.enqueue(options, want);
    this.#armGet(false);
    return p;
  }

  #serve(want: Want): unknown {
    if (want.many) {
      const batch = this.#core.takeMany(want.max);
      return batch.length > 0 ? batch : undefined;
    }
    return this.#core.take();
  }

  #deliver(): void {
    for (;;) {
      const want = this.#getters.peek();
      if (!want) return;
      let v: unknown;
      try {
        v = this.#serve(want);
      } catch (e) {
        if (isIpcError(e, 'ERR_IPCKIT_CORRUPT')) throw e;
        this.#getters.rejectNext(e); // an item that failed to decode: that one only
        continue;
      }
      if (v === undefined) return;
      this.#getters.resolveNext(v);
    }
  }

  #armGet(deep: boolean): void {
    const core = this.#core;
    if (this.#items.pending || core.closed || core.error) return;
    const mem = core.mem;
    try {
      if (deep) core.checkIntact();
      core.maintain(deep);
      this.#deliver();
      if (this.#getters.length === 0) return;
      const end = core.drained();
      if (end) {
        this.#getters.rejectAll(end);
        return;
      }
      const seq = mem.prepareSleep(W_ITEMS_SIGNAL, W_GETTERS_SLEEPING);
      this.#deliver();
      if (this.#getters.length === 0) return;
      this.#items.sleep(seq);
    } catch (e) {
      this.#getters.rejectAll(core.fail(e));
    }
  }

  #armJoin(deep = false): void {
    const core = this.#core;
    if (this.#done.pending || core.closed || core.error) return;
    const mem = core.mem;
    try {
      if (deep) core.checkIntact();
      core.maintain(deep);
      if (core.unfinished() === 0) {
        while (this.#joiners.resolveNext(undefined));
        return;
      }
      if (this.#joiners.length === 0) return;
      const seq = mem.prepareSleep(W_DONE_SIGNAL, W_JOINERS_SLEEPING);
      if (core.unfinished() === 0) {
        while (this.#joiners.resolveNext(undefined));
        return;
      }
      this.#done.sleep(seq);
    } catch (e) {
      this.#joiners.rejectAll(core.fail(e));
    }
  }
}
