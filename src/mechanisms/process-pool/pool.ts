/**
 * A pool of worker processes that run the exported functions of one module:
 * `createProcessPool(module, { size })`, `pool.run(fn, arg)`, `pool.map(fn, items)`.
 *
 * Built on the work queue (jobs, at least once: a worker that dies in a job leaves it to
 * another) and a ring with many producers (results); see protocol.ts for the messages and
 * the tickets that let a worker drop a job that has already settled. Every result reaches
 * its caller once: the parent settles a job at its first outcome and ignores the rest.
 * Workers are started through the die-with-parent helper (src/os/child.ts): they end
 * with the pool's process, and Node reaps them.
 */
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cancellableWait, type WaitOptions } from '../../core/channel.js';
import { abortedError, closedError, invalidArgument, IpcError, isIpcError, timeoutError, toIpcError } from '../../core/errors.js';
import * as validate from '../../core/validate.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { describeExit, startChild, type ChildExit, type StartedChild } from '../../os/child.js';
import { createRing, unlinkRing, type Ring, type RingReceiver, type RingSender } from '../ring/ring.js';
import { createSharedMemory, unlinkSharedMemory, type SharedMemory } from '../shm/shm.js';
import { createWorkQueue, unlinkWorkQueue, type WorkQueue } from '../workqueue/workqueue.js';
import * as p from './protocol.js';

export interface ProcessPoolOptions {
  /** Worker processes (default os.availableParallelism(), at most 60). */
  size?: number;
  /** Attempts of a job whose worker dies in it before the job rejects (default 3). */
  maxAttempts?: number;
  /** Jobs the work queue holds at once, waiting or running (default 1024). More wait in this process. */
  capacityJobs?: number;
  /** Prefix of the pool's kernel objects (default `/ipckit-pool-<pid>-<n>-<random>`). */
  name?: string;
  /** Environment of the workers (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Node options of the workers, before the worker script (default none): `['--max-old-space-size=512']`, `['--cpu-prof']`. */
  execArgv?: string[];
  /** How long the workers may take to start and load the module (ms, default 30000). */
  timeout?: number;
  signal?: AbortSignal;
}

export interface RunOptions {
  /** Milliseconds the job may run once a worker started it; past that its worker is killed and replaced, and the job rejects with ERR_IPCKIT_TIMEOUT. */
  timeout?: number;
  /** Aborting rejects the job with ERR_IPCKIT_ABORTED: a waiting job is dropped, a running one's worker is killed and replaced. */
  signal?: AbortSignal;
}

export interface MapOptions extends RunOptions {
  /** Jobs submitted and not yet yielded at once (default 64): memory stays bounded whatever the input's length. */
  concurrency?: number;
}

export interface ProcessPoolStats {
  /** Jobs waiting: in this process for room in the queue, or in the queue for a worker. */
  queued: number;
  /** Jobs a worker holds. */
  running: number;
  /** Jobs that resolved. */
  done: number;
  /** Jobs that rejected (threw, timed out, aborted, gave up after maxAttempts, or the pool ended first). */
  failed: number;
  /** Deliveries of a job again after its worker died. */
  retried: number;
  /** Workers that ended unexpectedly (killed, crashed, or killed by the pool at a timeout or abort) and were replaced. */
  workersRestarted: number;
}

interface PoolJob {
  seq: number;
  fn: string;
  arg: unknown;
  flags: number;
  ticket: number; // -1 until it has one
  settled: boolean;
  file: boolean; // its argument is in a file
  timeout: number | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  worker: Worker | undefined; // the worker that said START
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  waiters: Array<() => void> | undefined; // join()
  promise: Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

interface Worker {
  id: number;
  child: StartedChild;
  ready: boolean;
  waitedFatal: boolean;
  /** Jobs it said START for and that have not settled. */
  running: Set<PoolJob>;
}

const MAX_SIZE = 60; // a ring takes at most 64 producers: the workers, the pool's own, and room for replacements
const RING_BYTES = 8 << 20; // results up to 4 MiB go through the ring, larger ones through a file
const SLOT_BYTES = 4096 - 32; // a job item; larger arguments go through a file
const STARTUP_FAILURES = 3; // workers in a row that die before READY: the pool stops replacing them

let pools = 0;
const workerScript = fileURLToPath(new URL('./worker.js', import.meta.url));

export class ProcessPool {
  /** The module the workers run, as a file: URL. */
  readonly module: string;
  readonly size: number;
  /** Prefix of the pool's kernel objects. */
  readonly name: string;
  #names: ReadonlySet<string> = new Set();
  #maxAttempts: number;
  #env: NodeJS.ProcessEnv;
  #execArgv: string[];
  #queue!: WorkQueue<Uint8Array>;
  #rx: RingReceiver<Uint8Array> | undefined;
  #tx: RingSender<Uint8Array> | undefined; // ours: keeps the receiver from ending when every worker is gone at once
  #tickets!: SharedMemory;
  #ticketCount: number;
  #freeTickets: number[];
  #folder: string;
  #jobs = new Map<number, PoolJob>();
  // Jobs not yet in the queue, from #pendingHead on. A slot is cleared as the head passes it:
  // a job passed but kept there held its promise and result (1 MiB results: up to 1 GiB).
  #pending: Array<PoolJob | undefined> = [];
  #pendingHead = 0;
  #putting = false;
  #seq = 0;
  #workerIds = 0;
  #workers = new Set<Worker>();
  #startupFailures = 0;
  #lastStartupError: Error | undefined;
  #killAtStart = new Set<number>(); // seqs cancelled while their START may be on its way
  #state: 'starting' | 'open' | 'closing' | 'terminated' | 'closed' = 'starting';
  #broken: Error | undefined;
  #ended: Promise<void> | undefined;
  #receiving: Promise<void> | undefined;
  #onStartup: ((w: Worker | undefined, error?: Error) => void) | undefined;
  #onFatal: (() => void) | undefined; // a worker exited EXIT_FATAL before READY: its FATAL message is on its way
  #done = 0;
  #failed = 0;
  #restarted = 0;
  #lastInfo = { ready: 0, inFlight: 0, redelivered: 0 };
  #ring: Ring | undefined; // until the pool's endpoints are attached
  #made: Array<() => void> = []; // removes what this pool made, in order
  #janitor: ChildProcess | undefined;

  /** @internal Use createProcessPool. */
  constructor(module: string, name: string, o: ProcessPoolOptions) {
    this.module = module;
    this.name = name;
    this.size = o.size ?? Math.min(MAX_SIZE, Math.max(1, availableParallelism()));
    this.#maxAttempts = o.maxAttempts ?? 3;
    this.#env = o.env ?? process.env;
    this.#execArgv = o.execArgv ?? [];
    const capacityJobs = o.capacityJobs ?? 1024;
    this.#ticketCount = capacityJobs * 2;
    this.#freeTickets = Array.from({ length: this.#ticketCount }, (_, i) => this.#ticketCount - 1 - i);
    const folder = (this.#folder = `/dev/shm/${name.slice(1)}.files`);
    // Each object is made exclusively; only what we made is ever removed (a name someone
    // else holds fails here with ERR_IPCKIT_EXISTS and stays theirs).
    try {
      this.#queue = createWorkQueue(`${name}-jobs`, { capacityJobs, maxMessageBytes: SLOT_BYTES, maxParticipants: Math.min(4096, this.size * 2 + 8) });
      this.#made.push(() => unlinkWorkQueue(`${name}-jobs`));
      this.#tickets = createSharedMemory(`${name}-tickets`, this.#ticketCount * 4);
      this.#made.push(() => unlinkSharedMemory(`${name}-tickets`));
      this.#ring = createRing(`${name}-results`, { capacityBytes: RING_BYTES, maxMessageBytes: RING_BYTES / 2, producers: 'many', maxProducers: 64 });
      this.#made.push(() => unlinkRing(`${name}-results`));
      try {
        mkdirSync(folder, { mode: 0o700 });
      } catch (e) {
        throw toIpcError(e, `cannot make the pool's folder ${folder}`, { path: folder });
      }
      this.#made.push(() => rmSync(folder, { recursive: true, force: true }));
    } catch (e) {
      void this.#queue?.close().catch(() => {});
      this.#tickets?.close();
      this.#ring?.close();
      this.#removeObjects();
      throw e;
    }
    this.#janitor = janitor([`/dev/shm${name}-jobs`, `/dev/shm${name}-tickets`, `/dev/shm${name}-results`, folder]);
    openPools.add(this);
  }

  /** @internal Makes the ring, starts the workers and waits for each to have loaded the module. */
  async start(options: WaitOptions): Promise<void> {
    const ring = this.#ring!;
    try {
      this.#rx = await ring.receiver();
      this.#tx = await ring.sender();
    } finally {
      ring.close();
    }
    this.#receiving = this.#receive();
    const ready = new Set<Worker>();
    try {
      await cancellableWait<void>(`starting the pool's ${this.size} workers (${this.module})`, options, (resolve, reject) => {
        this.#onStartup = (w, error) => {
          if (error || !w) return reject(error);
          ready.add(w);
          if (ready.size === this.size) resolve();
        };
        for (let i = 0; i < this.size; i++) this.#spawn();
      });
    } finally {
      this.#onStartup = undefined;
    }
    this.#state = 'open';
  }

  /** The workers' process ids now (a worker that died is replaced by a new one). */
  get pids(): number[] {
    return [...this.#workers].map((w) => w.child.pid);
  }

  /** Names of the functions the module exports. */
  get functions(): string[] {
    return [...this.#names];
  }

  /** Runs `fn(arg)` in a worker; resolves with what it returned (or resolved with), rejects with what it threw. */
  run<R = unknown>(fn: string, arg?: unknown, options?: RunOptions): Promise<R> {
    this.#checkFunction(fn);
    return this.#submit(fn, arg, runOptions(options)).promise as Promise<R>;
  }

  /**
   * Runs `fn` on each item, `concurrency` at a time, and yields the results in the order
   * of the items. The items are read only as room frees up, so an endless iterable is
   * fine. The first job that rejects ends the iteration with its error. Leaving the loop
   * early drops the jobs that have not started (running ones finish, unseen).
   */
  map<R = unknown>(fn: string, items: Iterable<unknown> | AsyncIterable<unknown>, options: MapOptions = {}): AsyncIterableIterator<R> {
    this.#checkFunction(fn);
    const o = validate.object<MapOptions>('options', options);
    const concurrency = validate.optionalInteger('concurrency', o.concurrency, 1, 1 << 20) ?? 64;
    const ro = runOptions({ timeout: o.timeout, signal: o.signal });
    const isIterable = items !== null && typeof items === 'object' && (typeof (items as Iterable<unknown>)[Symbol.iterator] === 'function' || typeof (items as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function');
    if (!isIterable) throw invalidArgument(`items must be an iterable or an async iterable, got ${validate.describe(items)}`);
    return this.#map(fn, items, concurrency, ro) as AsyncIterableIterator<R>;
  }

  async *#map(fn: string, items: Iterable<unknown> | AsyncIterable<unknown>, concurrency: number, options: RunOptions): AsyncGenerator<unknown> {
    const window: PoolJob[] = [];
    // The caller's signal, once for the map: each job listens to a signal of ours (as many
    // listeners as jobs in flight, more than an AbortSignal likes to have without a warning).
    let o = options;
    const outer = options.signal;
    const inner = new AbortController();
    const forward = (): void => inner.abort(outer!.reason);
    if (outer) {
      setMaxListeners(0, inner.signal);
      if (outer.aborted) forward();
      else outer.addEventListener('abort', forward, { once: true });
      o = { ...options, signal: inner.signal };
    }
    const it = Symbol.asyncIterator in items ? (items as AsyncIterable<unknown>)[Symbol.asyncIterator]() : (items as Iterable<unknown>)[Symbol.iterator]();
    let more = true;
    try {
      for (;;) {
        while (more && window.length < concurrency) {
          const next = await it.next();
          if (next.done) {
            more = false;
            break;
          }
          const job = this.#submit(fn, next.value, o);
          job.promise.catch(() => {}); // seen when yielded
          window.push(job);
        }
        const head = window.shift();
        if (head === undefined) return;
        const value = await head.promise;
        if (outer?.aborted) throw abortedError(`map() of ${fn}`, outer); // not a result more once aborted
        yield value;
      }
    } finally {
      // The caller left early (or a job failed): drop what has not started.
      outer?.removeEventListener('abort', forward);
      for (const job of window) this.#cancel(job, closedError('a map() the caller left'), false);
      if (more) await it.return?.();
    }
  }

  /** What the pool holds and has done. */
  stats(): ProcessPoolStats {
    if (this.#state === 'starting' || this.#state === 'open' || this.#state === 'closing') {
      try {
        this.#lastInfo = this.#queue.info();
      } catch {
        /* closed meanwhile: the last counts */
      }
    }
    let waiting = 0;
    for (let i = this.#pendingHead; i < this.#pending.length; i++) if (!this.#pending[i]!.settled) waiting++;
    return {
      queued: waiting + this.#lastInfo.ready,
      running: this.#lastInfo.inFlight,
      done: this.#done,
      failed: this.#failed,
      retried: this.#lastInfo.redelivered,
      workersRestarted: this.#restarted,
    };
  }

  /**
   * Resolves once the pool is idle: every job submitted has settled, and the work queue's
   * join() has resolved (a job dropped after it settled is acknowledged by a worker too).
   */
  join(options?: WaitOptions): Promise<void> {
    validate.waitOptions(options);
    return cancellableWait<void>('pool.join()', options, (resolve, reject) => {
      let stop = false;
      const step = async (): Promise<void> => {
        while (!stop) {
          if (this.#jobs.size > 0) {
            await Promise.all([...this.#jobs.values()].map((j) => new Promise<void>((r) => onSettle(j, r))));
            continue;
          }
          if (this.#broken || this.#state === 'terminated' || this.#state === 'closed' || this.#workers.size === 0) return;
          try {
            await this.#queue.join({ timeout: 250 }); // in slices: the pool may break meanwhile
          } catch (e) {
            if (isIpcError(e, 'ERR_IPCKIT_TIMEOUT')) continue;
            if (isIpcError(e, 'ERR_IPCKIT_CLOSED')) return;
            throw e;
          }
          if (this.#jobs.size === 0) return;
        }
      };
      step().then(resolve, reject);
      return () => {
        stop = true;
      };
    });
  }

  /** Drains: new jobs are refused, submitted ones run to the end; then the workers exit and the pool's objects are removed. */
  close(): Promise<void> {
    if (this.#ended) return this.#ended;
    this.#state = 'closing';
    this.#ended = (async () => {
      try {
        if (this.#broken === undefined) {
          await this.join();
          this.#queue.shutdown(); // the workers' takes end once nothing is left: they exit
          await Promise.all([...this.#workers].map((w) => w.child.exited.catch(() => {})));
        }
      } finally {
        await this.#end('closed');
      }
    })();
    return this.#ended;
  }

  /** Stops at once: jobs not settled reject with ERR_IPCKIT_CLOSED, the workers are killed, the pool's objects removed. */
  terminate(): Promise<void> {
    if (this.#state === 'terminated' || this.#state === 'closed') return this.#ended ?? Promise.resolve();
    const closing = this.#ended;
    this.#state = 'terminated';
    this.#failAll(new IpcError('ERR_IPCKIT_CLOSED', `the process pool ${this.name} was terminated before the job ended`));
    for (const w of this.#workers) w.child.kill('SIGKILL');
    this.#ended = (async () => {
      await closing?.catch(() => {});
      await this.#end('terminated');
    })();
    return this.#ended;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- jobs ---

  #checkFunction(fn: unknown): void {
    const name = validate.string('fn', fn);
    if (!this.#names.has(name)) {
      throw invalidArgument(`${this.module} exports no function ${JSON.stringify(name)}; it exports: ${[...this.#names].join(', ') || '(none)'}`);
    }
  }

  #submit(fn: string, arg: unknown, o: RunOptions): PoolJob {
    let settle!: Pick<PoolJob, 'resolve' | 'reject'>;
    const promise = new Promise<unknown>((resolve, reject) => (settle = { resolve, reject }));
    if (this.#state !== 'open' || this.#broken || o.signal?.aborted) {
      const error = o.signal?.aborted ? abortedError(`job ${fn}`, o.signal) : (this.#broken ?? closedError(`process pool ${this.name}${this.#state === 'closing' ? ' (closing: it takes no new jobs)' : ''}`));
      settle.reject(error);
      return { promise, settled: true } as PoolJob;
    }
    let seq = (this.#seq = (this.#seq + 1) >>> 0);
    if ((seq | 0) === 0) seq = this.#seq = 1; // a ticket word of 0 means "not wanted"
    const job: PoolJob = {
      seq,
      fn,
      arg,
      flags: o.timeout !== undefined || o.signal !== undefined ? p.REPORT_START : 0,
      ticket: -1,
      settled: false,
      file: false,
      timeout: o.timeout,
      timer: undefined,
      worker: undefined,
      signal: o.signal,
      onAbort: undefined,
      waiters: undefined,
      promise,
      ...settle,
    };
    if (o.signal) {
      const signal = o.signal;
      job.onAbort = () => this.#cancel(job, abortedError(`job ${fn}`, signal), true);
      signal.addEventListener('abort', job.onAbort, { once: true });
    }
    this.#jobs.set(seq, job);
    this.#pending.push(job);
    this.#pump();
    return job;
  }

  /** Moves waiting jobs into the queue while tickets are free; waits for room when it is full. */
  #pump(): void {
    while (!this.#putting && this.#pendingHead < this.#pending.length && this.#freeTickets.length > 0) {
      const job = this.#pending[this.#pendingHead]!;
      if (job.settled) {
        this.#pending[this.#pendingHead++] = undefined;
        continue;
      }
      let item: Uint8Array;
      try {
        item = this.#item(job);
      } catch (e) {
        this.#pending[this.#pendingHead++] = undefined;
        this.#settle(job, e, false);
        continue;
      }
      if (this.#queue.tryPut(item) === undefined) {
        this.#putting = true;
        this.#queue.put(item).then(
          () => {
            this.#putting = false;
            this.#pending[this.#pendingHead++] = undefined;
            this.#pump();
          },
          (e: unknown) => {
            this.#putting = false;
            if (this.#state === 'open' || this.#state === 'closing') this.#fail(e as Error);
          },
        );
        return;
      }
      this.#pending[this.#pendingHead++] = undefined;
    }
    if (this.#pendingHead > 1024 && this.#pendingHead * 2 > this.#pending.length) {
      this.#pending = this.#pending.slice(this.#pendingHead);
      this.#pendingHead = 0;
    }
  }

  /** The job's queue item (its ticket taken, its argument written to a file if it is too large for a slot). */
  #item(job: PoolJob): Uint8Array {
    if (job.ticket < 0) {
      job.ticket = this.#freeTickets.pop()!;
      this.#tickets.store(job.ticket, job.seq | 0);
    }
    let item: Uint8Array;
    try {
      item = p.encodeJob([job.seq, job.ticket, job.fn, job.flags, job.arg]);
    } catch (e) {
      throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `the argument of ${job.fn} cannot be sent to a worker: ${(e as Error).message}`, { cause: e });
    }
    if (item.length > this.#queue.maxMessageBytes) {
      writeFileSync(p.argFile(this.#folder, job.seq), p.encode(job.arg), { mode: 0o600 });
      job.file = true;
      item = p.encodeJob([job.seq, job.ticket, job.fn, job.flags | p.FILE_ARG, undefined]);
    }
    job.arg = undefined; // the queue (or the file) has it now
    return item;
  }

  /** A job that will not be run to its end here: drop it if waiting; kill its worker if it runs (when asked). */
  #cancel(job: PoolJob, error: Error, kill: boolean): void {
    if (job.settled) return;
    const worker = job.worker;
    this.#settle(job, error, false);
    if (!kill) return;
    if (worker) worker.child.kill('SIGKILL');
    else if (job.flags & p.REPORT_START) {
      this.#killAtStart.add(job.seq); // a START may be on its way
      if (this.#killAtStart.size > 10_000) this.#killAtStart.delete(this.#killAtStart.values().next().value!);
    }
  }

  #settle(job: PoolJob, outcome: unknown, ok: boolean): void {
    if (job.settled) return;
    job.settled = true;
    this.#jobs.delete(job.seq);
    if (job.ticket >= 0) {
      try {
        this.#tickets.store(job.ticket, 0);
      } catch {
        /* the segment is closed: the pool is ending */
      }
      this.#freeTickets.push(job.ticket);
    }
    if (job.timer) clearTimeout(job.timer);
    job.worker?.running.delete(job);
    if (job.onAbort) job.signal!.removeEventListener('abort', job.onAbort);
    if (job.file) rmSync(p.argFile(this.#folder, job.seq), { force: true });
    job.arg = undefined;
    if (ok) {
      this.#done++;
      job.resolve(outcome);
    } else {
      this.#failed++;
      job.reject(outcome);
    }
    if (job.waiters) for (const f of job.waiters) f();
    if (this.#freeTickets.length === 1) this.#pump();
  }

  #failAll(error: Error): void {
    for (const job of [...this.#jobs.values()]) this.#settle(job, error, false);
  }

  /** The pool cannot go on (its workers cannot start, or its queue failed): every job rejects, and so do new ones. */
  #fail(error: Error): void {
    if (this.#broken) return;
    this.#broken = error;
    this.#failAll(error);
  }

  // --- results ---

  async #receive(): Promise<void> {
    const rx = this.#rx!;
    for (;;) {
      let messages: Uint8Array[];
      try {
        messages = rx.tryReceiveMany(256);
        if (messages.length === 0) messages = await rx.receiveMany(256);
      } catch (e) {
        if (this.#state === 'closed' || this.#state === 'terminated' || isIpcError(e, 'ERR_IPCKIT_CLOSED')) return;
        this.#fail(e as Error);
        return;
      }
      for (const bytes of messages) {
        let message: p.Message;
        try {
          message = p.decodeMessage(bytes);
        } catch (e) {
          this.#fail(new IpcError('ERR_IPCKIT_CORRUPT', `process pool ${this.name}: a message from a worker cannot be read: ${(e as Error).message}`, { cause: e }));
          return;
        }
        this.#onMessage(message);
      }
    }
  }

  #worker(id: number): Worker | undefined {
    for (const w of this.#workers) if (w.id === id) return w;
    return undefined;
  }

  #onMessage(message: p.Message): void {
    if (!Array.isArray(message)) return;
    const [kind, seq, id, payload] = message;
    switch (kind) {
      case p.FATAL:
        this.#lastStartupError = moduleError(this.module, payload as p.ErrorRecord);
        this.#onFatal?.();
        return;
      case p.READY: {
        const w = this.#worker(id);
        if (!w) return;
        w.ready = true;
        this.#startupFailures = 0;
        if (this.#names.size === 0 && Array.isArray(payload)) this.#names = new Set(payload.map(String));
        this.#onStartup?.(w);
        return;
      }
      case p.OK_FILE: {
        // Read and remove the file even for a job already settled, so that nothing stays.
        const path = `${this.#folder}/${String(payload).replace(/\//g, '')}`;
        let bytes: Buffer | undefined;
        try {
          bytes = readFileSync(path);
        } catch {
          /* gone: the job will be settled otherwise (or was) */
        } finally {
          rmSync(path, { force: true });
        }
        const job = this.#jobs.get(seq);
        if (job && bytes) this.#settle(job, p.decodeMessage(bytes)[3], true);
        return;
      }
      case p.START: {
        const job = this.#jobs.get(seq);
        const w = this.#worker(id);
        if (!job) {
          // Cancelled while its START was on its way: the worker runs a job nobody wants.
          if (this.#killAtStart.delete(seq)) w?.child.kill('SIGKILL');
          return;
        }
        if (!w) return;
        if (job.timer) clearTimeout(job.timer);
        job.worker?.running.delete(job);
        job.worker = w;
        w.running.add(job);
        if (job.timeout !== undefined) {
          const ms = job.timeout;
          job.timer = setTimeout(() => {
            this.#cancel(job, timeoutError(`job ${job.fn}`, ms).amend({ note: `its worker (pid ${w.child.pid}) was killed and replaced` }), true);
          }, ms);
        }
        return;
      }
    }
    const job = this.#jobs.get(seq);
    if (!job) return; // settled already: a result delivered twice, or for a job that was cancelled
    if (kind === p.OK) this.#settle(job, payload, true);
    else if (kind === p.THREW) this.#settle(job, p.rebuildError(payload as p.ErrorRecord), false);
    else if (kind === p.GAVE_UP) {
      const attempts = Number(payload);
      const error = new IpcError('ERR_IPCKIT_PEER_GONE', `job ${job.fn} was given up: its worker died in each of its ${attempts} attempts (maxAttempts ${this.#maxAttempts})`, {
        details: { attempts, maxAttempts: this.#maxAttempts },
        remedy: { options: [{ maxAttempts: attempts + 1 }], when: "to createProcessPool if the job may be retried more" },
      });
      this.#settle(job, error, false);
    }
  }

  // --- workers ---

  #spawn(): void {
    const id = ++this.#workerIds;
    const config: p.WorkerConfig = {
      module: this.module,
      queue: `${this.name}-jobs`,
      ring: `${this.name}-results`,
      tickets: `${this.name}-tickets`,
      ticketCount: this.#ticketCount,
      folder: this.#folder,
      worker: id,
      maxAttempts: this.#maxAttempts,
    };
    let child: StartedChild;
    try {
      child = startChild([process.execPath, ...this.#execArgv, workerScript], ['ignore', 'inherit', 'inherit'], { env: { ...this.#env, [p.CONFIG_ENV]: JSON.stringify(config) } });
    } catch (e) {
      this.#startupFailed(e as Error);
      return;
    }
    const w: Worker = { id, child, ready: false, waitedFatal: false, running: new Set() };
    this.#workers.add(w);
    child.exited.then(
      (exit) => this.#exited(w, exit),
      (e: Error) => this.#exited(w, undefined, e),
    );
  }

  #exited(w: Worker, exit: ChildExit | undefined, error?: Error): void {
    this.#workers.delete(w);
    for (const job of w.running) {
      if (job.timer) clearTimeout(job.timer); // it comes back; its timeout starts again at its next START
      job.timer = undefined;
      job.worker = undefined;
    }
    w.running.clear();
    if (this.#state === 'terminated' || this.#state === 'closed' || this.#broken) return;
    if (this.#state === 'closing' && exit?.exitCode === 0) return; // drained
    if (!w.ready && exit?.signal !== 'SIGKILL' && exit?.signal !== 'SIGTERM') {
      // It died by itself before loading the module (a kill from outside is not the module's fault).
      if (exit?.exitCode === p.EXIT_FATAL && this.#lastStartupError === undefined && !w.waitedFatal) {
        // It sent FATAL before it exited: let the receive loop read it (2 s at most), then decide.
        w.waitedFatal = true;
        const t = setTimeout(() => this.#onFatal?.(), 2000);
        this.#onFatal = () => {
          clearTimeout(t);
          this.#onFatal = undefined;
          this.#exited(w, exit, error);
        };
        return;
      }
      const why = exit ? describeExit(exit) : `failed (${error?.message})`;
      this.#startupFailed(this.#lastStartupError ?? error ?? new IpcError('ERR_IPCKIT_PEER_GONE', `a worker of the pool ${why} before it had loaded ${this.module}`, { details: { ...exit } }));
      return;
    }
    this.#restarted++;
    this.#spawn();
  }

  #startupFailed(error: Error): void {
    if (this.#onStartup) return this.#onStartup(undefined, error);
    if (++this.#startupFailures >= STARTUP_FAILURES) {
      this.#fail(isIpcError(error) ? error.amend({ note: `${STARTUP_FAILURES} workers in a row failed to start: the pool stopped replacing them` }) : error);
      return;
    }
    this.#restarted++;
    this.#spawn();
  }

  // --- the end ---

  async #end(state: 'closed' | 'terminated'): Promise<void> {
    this.#state = state;
    this.#failAll(closedError(`process pool ${this.name}`));
    try {
      this.#lastInfo = this.#queue.info();
    } catch {
      /* keep the last counts */
    }
    for (const w of this.#workers) w.child.kill('SIGKILL');
    await Promise.all([...this.#workers].map((w) => w.child.exited.catch(() => {})));
    await this.#tx?.close().catch(() => {});
    await this.#rx?.close().catch(() => {});
    await this.#receiving;
    await this.#queue.close().catch(() => {});
    this.#tickets.close();
    this.#removeObjects();
    openPools.delete(this);
    this.#janitor?.kill('SIGKILL');
  }

  /** @internal Removes the names this pool made (also at process exit, if the pool was not closed). */
  removeObjects(): void {
    this.#removeObjects();
  }

  #removeObjects(): void {
    for (const remove of this.#made.splice(0)) {
      try {
        remove();
      } catch {
        /* gone already, or replaced by another kind: not ours to remove */
      }
    }
  }
}

// Pools not closed when the process exits normally: their names go with it.
const openPools = new Set<ProcessPool>();
process.on('exit', () => {
  for (const pool of openPools) pool.removeObjects();
});

/**
 * A small `sh` that outlives us: if this process dies without closing the pool (SIGKILL,
 * OOM), it removes the pool's names once we are gone (it polls every half second). The
 * workers are gone by then too (they die with us). Killed by close() and terminate().
 */
function janitor(paths: string[]): ChildProcess | undefined {
  const script = 'while kill -0 "$0" 2>/dev/null; do sleep 0.5; done; rm -rf -- "$@"';
  try {
    const child = spawn('/bin/sh', ['-c', script, String(process.pid), ...paths], { stdio: 'ignore' });
    child.on('error', () => {}); // no /bin/sh: then nothing cleans up after a crash
    child.unref();
    return child;
  } catch {
    return undefined;
  }
}

function onSettle(job: PoolJob, f: () => void): void {
  if (job.settled) return f();
  (job.waiters ??= []).push(f);
}

function runOptions(options: RunOptions | undefined): RunOptions {
  if (options === undefined) return {};
  const o = validate.object<RunOptions>('options', options);
  return { timeout: validate.timeout(o.timeout), signal: validate.abortSignal(o.signal) };
}

function moduleError(module: string, r: p.ErrorRecord): IpcError {
  const notFound = r.code === 'ERR_MODULE_NOT_FOUND';
  return new IpcError(notFound ? 'ERR_IPCKIT_NOT_FOUND' : 'ERR_IPCKIT_INVALID_ARGUMENT', `the pool's workers cannot load ${module}: ${r.name}: ${r.message}`, {
    cause: p.rebuildError(r),
    path: module,
  });
}

/** The module as a file: URL, from a URL or a path (relative to the current folder). */
function moduleUrl(module: unknown): URL {
  if (module instanceof URL) {
    if (module.protocol !== 'file:') throw invalidArgument(`module must be a file: URL or a path, got ${module.href}`);
    return module;
  }
  if (typeof module === 'string' && module !== '') {
    if (module.startsWith('file:')) return new URL(module);
    return pathToFileURL(resolvePath(module));
  }
  throw invalidArgument(`module must be the path or file: URL of a JavaScript module, got ${validate.describe(module)}`);
}

/**
 * Starts `size` worker processes that load `module` and resolves once each has loaded it.
 * Jobs call the module's exported functions by name: `pool.run('square', 7)`.
 */
export function createProcessPool(module: string | URL, options: ProcessPoolOptions = {}): Promise<ProcessPool> {
  const url = moduleUrl(module);
  const o = validate.object<ProcessPoolOptions>('options', options);
  validate.optionalInteger('size', o.size, 1, MAX_SIZE);
  validate.optionalInteger('maxAttempts', o.maxAttempts, 1, 1000);
  validate.optionalInteger('capacityJobs', o.capacityJobs, 1, 1 << 20);
  const name = o.name === undefined ? `/ipckit-pool-${process.pid}-${++pools}-${randomBytes(4).toString('hex')}` : validate.posixName(o.name, 200);
  if (o.env !== undefined) validate.object('env', o.env);
  if (o.execArgv !== undefined) {
    if (!Array.isArray(o.execArgv)) throw invalidArgument(`execArgv must be an array of strings, got ${validate.describe(o.execArgv)}`);
    o.execArgv.forEach((a, i) => validate.string(`execArgv[${i}]`, a));
  }
  const wait = validate.waitOptions({ timeout: o.timeout ?? 30_000, signal: o.signal })!;
  return (async () => {
    const path = fileURLToPath(url);
    if (!existsSync(path)) throw new IpcError('ERR_IPCKIT_NOT_FOUND', `cannot start a process pool: no module at ${path}`, { path });
    if (!statSync(path).isFile()) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `cannot start a process pool: ${path} is not a file`, { path });
    const pool = new ProcessPool(url.href, name, o);
    try {
      await pool.start(wait);
    } catch (e) {
      await pool.terminate();
      throw e;
    }
    return pool;
  })();
}
